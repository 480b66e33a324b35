#!/usr/bin/env bash
# Installs what afut needs to build and test, on Debian 12, if missing.
#   scripts/install-deps.sh          build + tests: meson, ninja, gcc, g++, GLib,
#                                    GObject Introspection, PyGObject, gjs,
#                                    aiohttp (an asyncio library the gi suite
#                                    runs on afut's asyncio loop)
#   scripts/install-deps.sh ci       also valgrind (for .ci/run)
# Runs apt-get only when a package is missing; needs root then.
set -euo pipefail

packages=(meson ninja-build gcc g++ pkg-config libglib2.0-dev python3
  gobject-introspection libgirepository1.0-dev python3-gi gjs
  libgtk-4-dev xvfb xauth gi-docgen python3-aiohttp)
if [ "${1:-}" = ci ]; then
  packages+=(valgrind)
fi

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' \
    || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0

echo "installing: ${missing[*]}"
sudo_cmd=()
[ "$(id -u)" -ne 0 ] && sudo_cmd=(sudo)
export DEBIAN_FRONTEND=noninteractive
"${sudo_cmd[@]}" apt-get update -qq
"${sudo_cmd[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
