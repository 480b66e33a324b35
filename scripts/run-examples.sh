#!/usr/bin/env bash
# The README's first command: installs what is missing, builds afut, then
# runs each example in real time (the tutorial's programs, errors, cancel,
# timeouts, task-group, the same written with fibers (fiber-*: they print
# what their stackless twins print), and the GLib ones), printing its output and wall
# time, and checks the output against the tutorial's (tests/seed) or the
# expected one (tests/expected).  It installs and builds only what the
# examples need (a C compiler, meson, GLib), in its own build directory
# (build-examples: no tests, no GObject Introspection, no docs; -O0, which
# compiles afut's implementation five times faster than -O2, and these
# programs mostly sleep), so it starts quickly on a fresh machine.
set -euo pipefail
cd "$(dirname "$0")/.."

bash scripts/install-deps.sh examples

names=()
for src in examples/seed-*.c examples/errors.c examples/cancel.c \
           examples/timeouts.c examples/task-group.c examples/fiber-*.c \
           examples/gio-read-files.c examples/echo-server.c examples/to-thread.c; do
  names+=("$(basename "$src" .c)")
done
[ -d build-examples ] || meson setup build-examples -Dbuildtype=debug \
  -Dtests=false -Dintrospection=disabled -Ddocs=disabled >/dev/null
meson compile -C build-examples "${names[@]/#/examples/}" >/dev/null

# Concurrency is the point of 01 and 06: their wall time is the longest
# sleep (2 s, 3 s), not the sum (6 s).  Loose bounds: a shared machine is
# noisy, and a sum would be far outside them.
declare -A max_ms=([seed-01-cook]=3000 [seed-06-gather-results]=4500)
declare -A min_ms=([seed-01-cook]=1990 [seed-06-gather-results]=2990)

status=0
for name in "${names[@]}"; do
  base=${name#fiber-}
  case "$base" in
    seed-08-*) expected=tests/expected/$base.out ;;
    seed-*) expected=tests/seed/${base#seed-}.out ;;
    *) expected=tests/expected/$base.out ;;
  esac
  args=()
  [ "$name" = echo-server ] && args=(--self-test)
  start=$(date +%s%N)
  out=$(./build-examples/examples/"$name" "${args[@]}")
  ms=$(( ($(date +%s%N) - start) / 1000000 ))
  printf '== %s (%d.%03d s)\n%s\n' "$name" $((ms / 1000)) $((ms % 1000)) "$out"
  # The lines must match; the times printed in them may be off by 0.2 s
  # (scripts/compare-output.py): a loaded machine wakes a task late.
  if ! python3 scripts/compare-output.py "$expected" <(printf '%s\n' "$out"); then
    echo "   ^ differs from $expected"
    status=1
  fi
  if [ -n "${max_ms[$base]:-}" ] && { [ "$ms" -gt "${max_ms[$base]}" ] || [ "$ms" -lt "${min_ms[$base]}" ]; }; then
    echo "   ^ took $ms ms, expected ${min_ms[$base]}..${max_ms[$base]} ms (the longest sleep, not the sum)"
    status=1
  fi
done
if [ $status -eq 0 ]; then
  echo "all examples print what the Python tutorial prints, 01 and 06 in the time of their longest sleep"
fi
exit $status
