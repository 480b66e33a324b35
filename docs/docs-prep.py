#!/usr/bin/env python3
"""Prepares the inputs of the API reference (docs/meson.build).

  docs-prep.py header IN OUT
      Copies the public part of a single header (afut.h, afut-glib.h,
      afut-gi.h) for g-ir-scanner: everything up to the end of its include guard
      (`#endif /* AFUT_H */`), without the implementation that follows,
      whose private #defines (MSG_NOSIGNAL ...) the scanner would otherwise
      take for constants.  A #define continued over several lines is joined
      into one, with blank lines after it so that every line keeps its
      number: the scanner's macro parser silently drops a function macro
      whose parameter list is split by a backslash (AFUT__PICK35), and
      every function macro after it.

  docs-prep.py scan G-IR-SCANNER [ARGS...]
      Runs g-ir-scanner with --warn-all and fails on any warning (a doc
      comment's syntax, an unknown annotation, a bad cross-reference ...)
      except the two kinds that only matter to language bindings, which a
      documentation-only GIR has none of: functions returning a pointer
      to a plain (not boxed) struct, and callbacks without a (scope)
      annotation.  (--warn-error cannot tell them apart.)

  docs-prep.py page IN OUT
      Copies a Markdown page for gi-docgen: a `Title:` line (gi-docgen's
      page title) from the page's first `# ` heading, and links to sibling
      pages (`foo.md`, `foo.md#anchor`) pointed at their `.html`.
"""
import re
import subprocess
import sys

BINDINGS_ONLY = (
    "Invalid non-constant return of bare structure or union",
    "Missing (scope) annotation for callback without GDestroyNotify",
)


def header(src, dst):
    lines = open(src, encoding="utf-8").read().split("\n")
    guard = re.compile(r"^#endif /\* AFUT(_GLIB|_GI)?_H \*/")
    out = []
    i = 0
    while i < len(lines):
        line = lines[i]
        if line.lstrip().startswith("#") and line.endswith("\\"):
            joined, n = line[:-1], 1
            while lines[i + n - 1].endswith("\\"):
                joined += " " + lines[i + n].rstrip("\\").strip()
                n += 1
            out.append(joined)
            out.extend([""] * (n - 1))
            i += n
            continue
        out.append(line)
        i += 1
        if guard.match(line):
            break
    else:
        sys.exit(f"{src}: no `#endif /* ..._H */` include guard end found")
    with open(dst, "w", encoding="utf-8") as f:
        f.write("\n".join(out) + "\n")


def page(src, dst):
    text = open(src, encoding="utf-8").read()
    m = re.search(r"^# (.+)$", text, re.M)
    if not m:
        sys.exit(f"{src}: no `# ` heading to take the title from")
    text = re.sub(r"\]\(([A-Za-z0-9_-]+)\.md(#[^)]*)?\)",
                  lambda m: f"]({m.group(1)}.html{m.group(2) or ''})", text)
    with open(dst, "w", encoding="utf-8") as f:
        f.write(f"Title: {m.group(1)}\n\n{text}")


def scan(cmd):
    r = subprocess.run(cmd + ["--warn-all"], stdout=subprocess.PIPE,
                       stderr=subprocess.STDOUT, text=True)
    kept = [line for line in r.stdout.splitlines()
            if line.strip() and not any(k in line for k in BINDINGS_ONLY)]
    if kept:
        print("\n".join(kept), file=sys.stderr)
    if r.returncode != 0:
        sys.exit(r.returncode)
    if kept:
        sys.exit("g-ir-scanner: warnings in the documented headers (above)")


if __name__ == "__main__":
    if len(sys.argv) >= 3 and sys.argv[1] == "scan":
        scan(sys.argv[2:])
    elif len(sys.argv) == 4 and sys.argv[1] in ("header", "page"):
        {"header": header, "page": page}[sys.argv[1]](sys.argv[2], sys.argv[3])
    else:
        sys.exit(__doc__)
