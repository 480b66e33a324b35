#!/usr/bin/env python3
"""doc-reference.py GIR INDEX_HTML FILE...: the C API reference (docs/)
tells a reader how to build against afut: its "pkg-config files" are
afut's own (afut-glib, afut), not the GLib package it needs; and no page
or file given (the gi-docgen config, the .pc files) carries a placeholder
URL (example.invalid)."""

import re
import sys

gir, index, others = sys.argv[1], sys.argv[2], sys.argv[3:]
failures = []

with open(gir) as f:
    packages = sorted(re.findall(r'<package name="([^"]+)"/>', f.read()))
if packages != ['afut', 'afut-glib']:
    failures.append('the GIR names pkg-config packages %s, not afut and '
                    'afut-glib' % packages)
with open(index) as f:
    page = f.read()
m = re.search(r'pkg-config files</td><td><code>([^<]*)</code>', page)
if m is None or m.group(1) != 'afut, afut-glib':
    failures.append('the reference\'s pkg-config line reads %r'
                    % (m.group(1) if m else None))
for path in [index] + others:
    with open(path) as f:
        if 'example.invalid' in f.read():
            failures.append('%s has a placeholder URL (example.invalid)' % path)

for failure in failures:
    print('FAIL:', failure)
sys.exit(1 if failures else 0)
