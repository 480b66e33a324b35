#!/usr/bin/env python3
"""Compiles the README's first C example exactly as shown and runs it under
the virtual clock: the example a new user copies must build warning-free
and print what the README says.
Usage: readme-example.py README SOURCE_ROOT CC [CC ARGS...]"""
import os
import re
import subprocess
import sys
import tempfile

readme, root, cc = sys.argv[1], sys.argv[2], sys.argv[3:]
text = open(readme).read()
m = re.search(r"```c\n(.*?)```", text, re.S)
if not m:
    sys.exit("no ```c block in the README")
with tempfile.TemporaryDirectory() as tmp:
    src = os.path.join(tmp, "cook.c")
    exe = os.path.join(tmp, "cook")
    open(src, "w").write(m.group(1))
    cmd = cc + ["-std=c11", "-Wall", "-Wextra", "-Wpedantic", "-Werror",
                "-I", root, src, "-pthread", "-o", exe]
    r = subprocess.run(cmd, capture_output=True, text=True)
    if r.returncode != 0:
        sys.exit("README example does not compile:\n" + " ".join(cmd) + "\n" + r.stderr)
    r = subprocess.run([exe], capture_output=True, text=True, timeout=30,
                       env=dict(os.environ, AFUT_CLOCK="virtual"))
    expected = ("Started cooking Pasta\nStarted cooking Pizza\n"
                "Finished Pasta\nFinished Pizza\n")
    if r.returncode != 0 or r.stdout != expected:
        sys.exit(f"README example printed {r.stdout!r} (exit {r.returncode}),"
                 f" expected {expected!r}\n{r.stderr}")
print("README example compiles and prints the two cooks overlapping")
