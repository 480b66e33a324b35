#!/usr/bin/env python3
"""compare-output.py EXPECTED ACTUAL [TOLERANCE]: run-examples.sh's check
of an example run in real time.  The lines must be the expected ones, in
order; only the times in them ("[0.3]", "after 0.1 s", "moved to 0.9")
may be off, each by at most TOLERANCE seconds (default 0.2): on a loaded
machine a wakeup comes tens of milliseconds late and a time printed to a
tenth rounds the other way.  The exact times are checked under the
virtual clock by `meson test --suite examples`.  Exit 1, with a unified
diff, when they differ otherwise."""

import difflib
import re
import sys

NUMBER = re.compile(r'\d+\.\d+')


def close(expected, actual, tolerance):
    if NUMBER.sub('#', expected) != NUMBER.sub('#', actual):
        return False
    return all(abs(float(a) - float(b)) <= tolerance + 1e-9
               for a, b in zip(NUMBER.findall(expected),
                               NUMBER.findall(actual)))


def main():
    with open(sys.argv[1]) as f:
        expected = f.read().splitlines()
    with open(sys.argv[2]) as f:
        actual = f.read().splitlines()
    tolerance = float(sys.argv[3]) if len(sys.argv) > 3 else 0.2
    if len(expected) == len(actual) and all(
            close(e, a, tolerance) for e, a in zip(expected, actual)):
        return 0
    sys.stdout.writelines(l + '\n' for l in difflib.unified_diff(
        expected, actual, sys.argv[1], 'output', lineterm=''))
    return 1


if __name__ == '__main__':
    sys.exit(main())
