#!/usr/bin/env bash
# The README's second command: installs what is missing, builds afut with
# its tests, runs the whole suite, and ends with "N passed, N failed".
#   AFUT_WERROR=1 scripts/run-tests.sh    warnings are errors (CI)
set -uo pipefail
cd "$(dirname "$0")/.."

bash scripts/install-deps.sh tests || exit 1
werror=false
[ "${AFUT_WERROR:-0}" = 1 ] && werror=true
if [ -d build ]; then
  meson configure build -Dwerror=$werror >/dev/null || exit 1
else
  meson setup build -Dwerror=$werror >/dev/null || exit 1
fi
meson compile -C build || exit 1
meson test -C build --print-errorlogs --no-rebuild --suite unit --suite examples --suite compile --suite gi --suite gtk --suite docs --suite fuzz
python3 scripts/test-summary.py build/meson-logs/testlog.json
