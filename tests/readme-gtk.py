#!/usr/bin/env python3
"""Extracts the README's GTK program ("Use it in your GTK app") as shown,
checks it is the same program as examples/gtk-demo/minimal.c (so neither
can drift) and writes it out for meson to compile, warning-free against
gtk4 (tests/meson.build: werror, warning_level 3).  The build fails if
the README's program does not compile.
Usage: readme-gtk.py README MINIMAL_C OUTPUT_C"""
import re
import sys

readme, minimal, output = sys.argv[1:4]
text = open(readme).read()
m = re.search(r"^## Use it in your GTK app\n(.*?)^## ", text, re.S | re.M)
if not m:
    sys.exit("no \"Use it in your GTK app\" section in the README")
code = re.search(r"```c\n(.*?)```", m.group(1), re.S)
if not code:
    sys.exit("no ```c block in the README's GTK section")
program = code.group(1)
if program != open(minimal).read():
    sys.exit(f"the README's GTK program differs from {minimal}")
open(output, "w").write(program)
