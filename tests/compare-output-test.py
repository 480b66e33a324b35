#!/usr/bin/env python3
"""compare-output-test.py SOURCE_ROOT: scripts/compare-output.py, which
run-examples.sh uses on real-time runs, lets a printed time be 0.2 s off
and nothing else: a late wakeup passes; a later one, a changed word, a
missing or extra line fail."""

import os
import subprocess
import sys
import tempfile

root = sys.argv[1]
script = os.path.join(root, 'scripts', 'compare-output.py')
with open(os.path.join(root, 'tests', 'expected', 'timeouts.out')) as f:
    expected = f.read()
line = '[0.4] download x: chunk 1 received, deadline moved to 0.9'
assert line in expected
cases = [
    ('the same output', expected, 0),
    ('every time in a line 0.1 s late',
     expected.replace(line, '[0.5] download x: chunk 1 received, '
                      'deadline moved to 1.0'), 0),
    ('a time 0.3 s late',
     expected.replace(line, '[0.7] download x: chunk 1 received, '
                      'deadline moved to 0.9'), 1),
    ('a changed word', expected.replace('chunk 1', 'chunk 2', 1), 1),
    ('a missing line', expected.replace(line + '\n', ''), 1),
    ('an extra line', expected + 'one more\n', 1),
]
failed = 0
with tempfile.TemporaryDirectory() as tmp:
    exp_path = os.path.join(tmp, 'expected')
    with open(exp_path, 'w') as f:
        f.write(expected)
    for i, (what, actual, want) in enumerate(cases, 1):
        path = os.path.join(tmp, 'actual')
        with open(path, 'w') as f:
            f.write(actual)
        rc = subprocess.run([sys.executable, script, exp_path, path],
                            stdout=subprocess.DEVNULL).returncode
        ok = rc == want
        failed += not ok
        print('%s %d - %s: %s' % ('ok' if ok else 'not ok', i, what,
                                  'passes' if want == 0 else 'fails'))
print('1..%d' % len(cases))
sys.exit(1 if failed else 0)
