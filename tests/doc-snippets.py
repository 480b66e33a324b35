#!/usr/bin/env python3
"""Keeps the documentation honest (suite 'compile'):

1. Every ```c block of docs/asyncio-to-afut.md compiles warning-free as C11
   (-std=c11 -Wall -Wextra -Wpedantic -Werror) and runs to exit status 0
   under the virtual clock with fatal criticals.  A block that starts with
   `#define AFUT_IMPLEMENTATION` is a whole program; any other block gets
   the prelude `#define AFUT_IMPLEMENTATION`, `#include "afut.h"`,
   `#include <stdio.h>` before it and, when it defines no main(),
   `int main (void) { return AFUT_RUN (AfutTask, amain); }` after it.  A
   block whose first line is `/* glib */` uses the GLib adapter and is built
   with pkg-config's gio-unix-2.0 flags (skipped, and said so, without them).
   AFUT_TEST_WRAPPER, if set, is a command put before each program (as for
   run-example.py: valgrind), and the time limit grows tenfold.
2. Every ```python block of it passes /usr/bin/python3 -m py_compile.
3. Every afut_*, AFUT_* and Afut* name in docs/*.md exists in afut.h,
   glib-adapter/afut-glib.h or glib-adapter/afut-gi.h.

Usage: doc-snippets.py GUIDE.md SOURCE_ROOT CC [CC ARGS...]
(DOC_SNIPPETS_VERBOSE=1 in the environment prints what each C block printed.)
"""
import concurrent.futures
import glob
import os
import re
import shlex
import subprocess
import sys
import tempfile

guide, root, cc = sys.argv[1], sys.argv[2], sys.argv[3:]
if not cc:
    sys.exit(__doc__)
text = open(guide, encoding="utf-8").read()
failures = []

PRELUDE = '#define AFUT_IMPLEMENTATION\n#include "afut.h"\n#include <stdio.h>\n'
MAIN = "\nint\nmain (void)\n{\n  return AFUT_RUN (AfutTask, amain);\n}\n"
CFLAGS = ["-std=c11", "-Wall", "-Wextra", "-Wpedantic", "-Werror"]


def blocks(language):
    """(line number, body) of each fenced block in that language."""
    for m in re.finditer(r"^```" + language + r"\n(.*?)^```$", text,
                         re.S | re.M):
        yield text.count("\n", 0, m.start()) + 1, m.group(1)


def pkg_config(package):
    try:
        r = subprocess.run(["pkg-config", "--cflags", "--libs", package],
                           capture_output=True, text=True)
    except OSError:
        return None
    return r.stdout.split() if r.returncode == 0 else None


# ---- 1. the C blocks ----
wrapper = shlex.split(os.environ.get("AFUT_TEST_WRAPPER", ""))
glib_flags = pkg_config("gio-unix-2.0") if "```c\n/* glib */" in text else []


def check_c_block(tmp, line, body):
    """None if the block compiles and runs, else what went wrong; 'skip'
    for a GLib block without GLib."""
    where = f"{guide}:{line}"
    uses_glib = body.startswith("/* glib */")
    if body.lstrip().startswith("#define AFUT_IMPLEMENTATION") or (
            uses_glib and "#define AFUT_IMPLEMENTATION" in body):
        source = body
    else:
        source = PRELUDE + body
        if not re.search(r"^main \(|\bmain \(void\)", body, re.M):
            if not re.search(r"^amain \(", body, re.M):
                return f"{where}: a C block with neither main() nor amain()"
            source += MAIN
    extra = []
    if uses_glib:
        if not glib_flags:
            return "skip"
        extra = glib_flags
    src = os.path.join(tmp, f"snippet-{line}.c")
    exe = os.path.join(tmp, f"snippet-{line}")
    with open(src, "w", encoding="utf-8") as f:
        f.write(f'#line 1 "{os.path.basename(guide)}:{line}"\n' + source)
    cmd = (cc + CFLAGS + ["-I", root, "-I", os.path.join(root, "glib-adapter"),
                          src, "-o", exe] + extra + ["-pthread", "-lm"])
    r = subprocess.run(cmd, capture_output=True, text=True)
    if r.returncode != 0:
        return (f"{where}: the C block does not compile:\n"
                + " ".join(cmd) + "\n" + r.stderr)
    env = dict(os.environ, AFUT_CLOCK="virtual", AFUT_DEBUG="fatal-criticals",
               G_DEBUG="fatal-criticals")
    limit = 30 * (10 if wrapper else 1)
    try:
        r = subprocess.run(wrapper + [exe], capture_output=True, text=True,
                           timeout=limit, env=env)
    except subprocess.TimeoutExpired:
        return f"{where}: the C block did not end within {limit} s"
    if r.returncode != 0 or r.stderr:
        return (f"{where}: the C block exited {r.returncode}:\n"
                f"stdout: {r.stdout}\nstderr: {r.stderr}")
    if os.environ.get("DOC_SNIPPETS_VERBOSE"):
        print(f"---- {where}\n{r.stdout}", end="")
    return None


n_c = n_skipped = 0
with tempfile.TemporaryDirectory() as tmp, \
        concurrent.futures.ThreadPoolExecutor(os.cpu_count() or 1) as pool:
    c_blocks = list(blocks("c"))
    for (line, _), result in zip(c_blocks, pool.map(
            lambda b: check_c_block(tmp, *b), c_blocks)):
        if result == "skip":
            print(f"SKIP {guide}:{line}: needs gio-unix-2.0 (pkg-config)")
            n_skipped += 1
        elif result:
            failures.append(result)
        else:
            n_c += 1

# ---- 2. the Python blocks ----
python = "/usr/bin/python3" if os.path.exists("/usr/bin/python3") \
    else sys.executable
n_py = 0
with tempfile.TemporaryDirectory() as tmp:
    for line, body in blocks("python"):
        src = os.path.join(tmp, f"snippet_{line}.py")
        open(src, "w", encoding="utf-8").write(body)
        r = subprocess.run([python, "-m", "py_compile", src],
                           capture_output=True, text=True)
        if r.returncode != 0:
            failures.append(f"{guide}:{line}: the Python block does not "
                            f"compile:\n{r.stderr}")
        n_py += 1

# ---- 3. the names in docs/*.md ----
headers = [os.path.join(root, "afut.h"),
           os.path.join(root, "glib-adapter", "afut-glib.h"),
           os.path.join(root, "glib-adapter", "afut-gi.h")]
known = set()
for h in headers:
    known.update(re.findall(r"\b[A-Za-z_][A-Za-z0-9_]*\b",
                            open(h, encoding="utf-8").read()))
name_re = re.compile(r"(?<![A-Za-z0-9_.-])(afut_[a-z0-9_]+|AFUT_[A-Z0-9_]+"
                     r"|Afut[A-Z][A-Za-z0-9]*)(?![A-Za-z0-9_])")
docs = sorted(glob.glob(os.path.join(os.path.dirname(os.path.abspath(guide)),
                                     "*.md")))
# Names a page may mention that no header has, each with the reason.
NOT_IN_HEADERS = {
    # python-asyncio.md: the Python runner module (gi/python/).
    "afut_asyncio_run",
}
n_names = 0
for doc in docs:
    for i, doc_line in enumerate(open(doc, encoding="utf-8"), 1):
        for name in name_re.findall(doc_line):
            n_names += 1
            if name in known or name in NOT_IN_HEADERS:
                continue
            # `afut_future_resolve_*`, `AFUT_QUARK_*`: a prefix of names.
            if name.endswith("_") and any(k.startswith(name) for k in known):
                continue
            failures.append(f"{doc}:{i}: {name} is in no public header")

if failures:
    sys.exit("\n\n".join(failures) + f"\n\n{len(failures)} problem(s)")
print(f"{n_c} C blocks compile and run ({n_skipped} skipped), {n_py} Python "
      f"blocks compile, {n_names} names in {len(docs)} pages exist")
