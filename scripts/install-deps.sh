#!/usr/bin/env bash
# Installs what a README command needs, on Debian 12, if missing; each
# command gets only its own set, so the examples start quickly on a fresh
# machine.
#   scripts/install-deps.sh examples   the examples: gcc, meson, ninja,
#                                      pkg-config, GLib (the GLib examples)
#   scripts/install-deps.sh [tests]    the test suite: also g++, Python,
#                                      GObject Introspection, PyGObject,
#                                      gjs, GTK 4, Xvfb, gi-docgen, aiohttp
#                                      (an asyncio library the gi suite runs
#                                      on afut's asyncio loop)
#   scripts/install-deps.sh ci         also valgrind, clang, and an AArch64
#                                      cross compiler with qemu-user, which
#                                      run the fiber switch test (.ci/run)
# Runs apt-get only when a package is missing; needs root then.
set -euo pipefail

what=${1:-tests}
packages=(meson ninja-build gcc pkg-config libglib2.0-dev)
case "$what" in
  examples) ;;
  tests|ci)
    packages+=(g++ python3 gobject-introspection libgirepository1.0-dev
      python3-gi gjs libgtk-4-dev xvfb xauth gi-docgen python3-aiohttp
      dbus-daemon)
    [ "$what" = ci ] && packages+=(valgrind clang gcc-aarch64-linux-gnu
      libc6-dev-arm64-cross qemu-user)
    ;;
  *) echo "usage: $0 [examples|tests|ci]" >&2; exit 2 ;;
esac

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
