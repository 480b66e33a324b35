#!/usr/bin/env python3
"""Run an example and compare what it prints with the expected output.

    python3 run-example.py EXECUTABLE EXPECTED_FILE [ARGUMENT...]

The environment is inherited (the test suite sets AFUT_CLOCK=virtual, so
sleeps take no wall time).  The test fails, with a unified diff where
stdout differs, if stdout is not exactly EXPECTED_FILE, if the exit status
is not 0, if the run takes more than 10 s of wall time, or if stderr
reports a CRITICAL (a programmer error).  Stderr is passed through but not
compared otherwise: afut's warnings there are part of some examples.

AFUT_TEST_WRAPPER, if set, is a command put before the executable (CI runs
the examples under valgrind this way); the time limit then grows tenfold.
"""

import difflib
import os
import shlex
import subprocess
import sys
import time

TIME_LIMIT = 10.0  # seconds of wall time


def main():
    if len(sys.argv) < 3:
        print(f"usage: {sys.argv[0]} EXECUTABLE EXPECTED_FILE [ARGUMENT...]",
              file=sys.stderr)
        return 2
    executable, expected_file = sys.argv[1], sys.argv[2]
    arguments = sys.argv[3:]
    with open(expected_file, encoding="utf-8") as f:
        expected = f.read()

    wrapper = shlex.split(os.environ.get("AFUT_TEST_WRAPPER", ""))
    limit = TIME_LIMIT * (10 if wrapper else 1)
    start = time.monotonic()
    try:
        proc = subprocess.run(
            wrapper + [executable] + arguments, capture_output=True,
            timeout=limit
        )
    except subprocess.TimeoutExpired as e:
        sys.stderr.write((e.stderr or b"").decode("utf-8", "replace"))
        print(f"FAIL: {executable} still running after {limit:g} s")
        return 1
    elapsed = time.monotonic() - start
    stdout = proc.stdout.decode("utf-8", "replace")
    stderr = proc.stderr.decode("utf-8", "replace")
    sys.stderr.write(stderr)

    failed = False
    if stdout != expected:
        failed = True
        print(f"FAIL: stdout of {executable} differs from {expected_file}:")
        sys.stdout.writelines(
            difflib.unified_diff(
                expected.splitlines(keepends=True),
                stdout.splitlines(keepends=True),
                fromfile=expected_file,
                tofile=f"{executable} (stdout)",
            )
        )
    if proc.returncode != 0:
        failed = True
        print(f"FAIL: {executable} exited with status {proc.returncode}")
    if elapsed > limit:
        failed = True
        print(f"FAIL: {executable} took {elapsed:.1f} s "
              f"(limit {limit:g} s)")
    if "CRITICAL" in stderr:
        failed = True
        print(f"FAIL: {executable} reported a CRITICAL on stderr")
    if failed:
        return 1
    print(f"ok: {executable} ({elapsed:.3f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
