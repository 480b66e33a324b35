#!/usr/bin/env python3
"""cxx-refuses.py SOURCE_ROOT CXX...: compiling
tests/compile/cxx-nontrivial.cpp (AFUT_SPAWN of a struct holding a
std::string) fails, with afut's static_assert message, not silently and
not with some other error."""

import os
import subprocess
import sys

root, cxx = sys.argv[1], sys.argv[2:]
src = os.path.join(root, 'tests', 'compile', 'cxx-nontrivial.cpp')
p = subprocess.run(cxx + ['-std=c++17', '-fsyntax-only', '-I' + root, src],
                   capture_output=True, text=True)
if p.returncode == 0:
    print('FAIL: a task struct holding a std::string compiled')
    sys.exit(1)
if 'must be trivially copyable' not in p.stderr:
    print('FAIL: the compiler refused it, but not with afut\'s message:')
    print(p.stderr)
    sys.exit(1)
print('ok - AFUT_SPAWN refuses a task struct that is not trivially copyable')
