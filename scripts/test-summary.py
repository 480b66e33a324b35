#!/usr/bin/env python3
"""Counts test cases in meson testlog.json files and prints, last, the line
`N passed, N failed`.  `--result NAME=STATUS` adds one check that
passed (STATUS 0) or failed.  A TAP test (the GTest suites) counts each of its
`ok` / `not ok` lines; any other test counts once.  A `not ok ... # TODO`
line is a known failure (TAP's TODO directive: the fuzzer's replayed
programs where afut still differs from asyncio): listed apart, not failed.  A TAP test that died
before reporting its plan counts one extra failure, so a crash is never
a pass.  Exit status: 0 only if nothing failed and something ran."""
import json
import re
import sys

OK = re.compile(r"^ok \d+")
NOT_OK = re.compile(r"^not ok \d+")
SKIP = re.compile(r"# SKIP", re.I)
TODO = re.compile(r"# TODO", re.I)


def count(path):
    passed = failed = skipped = todo = 0
    with open(path) as f:
        for line in f:
            line = line.strip()
            if not line:
                continue
            t = json.loads(line)
            result = t.get("result")
            if t.get("protocol") == "tap" or re.search(r"^1\.\.\d+", t.get("stdout") or "", re.M):
                p = fl = 0
                for l in (t.get("stdout") or "").splitlines():
                    if NOT_OK.match(l) and TODO.search(l):
                        todo += 1
                    elif NOT_OK.match(l):
                        fl += 1
                    elif OK.match(l):
                        if SKIP.search(l):
                            skipped += 1
                        else:
                            p += 1
                if result not in ("OK", "SKIP", "EXPECTEDFAIL") and fl == 0:
                    fl = 1  # crashed, timed out or bad plan
                passed += p
                failed += fl
            elif result in ("OK", "EXPECTEDFAIL"):
                passed += 1
            elif result == "SKIP":
                skipped += 1
            else:
                failed += 1
    return passed, failed, skipped, todo


def main():
    total_p = total_f = total_s = total_t = 0
    args = sys.argv[1:]
    paths = []
    while args:
        a = args.pop(0)
        if a == "--result":
            # --result NAME=STATUS: a whole step that is one check (the
            # examples run), 0 for pass.
            name, _, status = args.pop(0).partition("=")
            ok = status == "0"
            print(f"{name}: {'passed' if ok else 'FAILED'}")
            total_p += ok
            total_f += not ok
        else:
            paths.append(a)
    for path in paths:
        try:
            p, f, s, t = count(path)
        except FileNotFoundError:
            print(f"{path}: missing (the run did not happen)")
            p, f, s, t = 0, 1, 0, 0
        if len(paths) > 1:
            print(f"{path}: {p} passed, {f} failed, {s} skipped, {t} todo")
        total_p, total_f = total_p + p, total_f + f
        total_s, total_t = total_s + s, total_t + t
    if total_s:
        print(f"({total_s} skipped)")
    if total_t:
        print(f"({total_t} known failures marked TODO, not counted as failed)")
    print(f"{total_p} passed, {total_f} failed")
    return 0 if total_f == 0 and total_p > 0 else 1


if __name__ == "__main__":
    sys.exit(main())
