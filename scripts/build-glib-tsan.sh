#!/usr/bin/env bash
# Builds Debian 12's own GLib (the version the system has) with
# ThreadSanitizer into DIR (default build-glib-tsan/), for .ci/run's TSan
# step: GLib's locks are futexes TSan cannot see unless GLib itself is
# instrumented, so against the system GLib every hand-off through GLib
# (thread pools, main contexts) looks like a race.  Tests then run with
# LD_LIBRARY_PATH=DIR/lib (same sonames, same version).  Needs root for
# apt-get; prints the lib directory on its last line.
set -euo pipefail
dir=$(realpath -m "${1:-build-glib-tsan}")
lib="$dir/lib"
if [ -e "$lib/libglib-2.0.so.0" ] && [ -e "$lib/libgio-2.0.so.0" ]; then
  echo "$lib"
  exit 0
fi

version=$(dpkg-query -W -f='${Version}' libglib2.0-0)
mkdir -p "$dir/src"
if ! ls "$dir"/src/glib2.0-*/meson.build >/dev/null 2>&1; then
  export DEBIAN_FRONTEND=noninteractive
  dpkg-query -W -f='${Status}' dpkg-dev 2>/dev/null | grep -q 'install ok installed' \
    || apt-get install -y -qq --no-install-recommends dpkg-dev >/dev/null
  # Debian's own sources, for this release only; the entry is removed after.
  sed 's/^Types: deb$/Types: deb-src/' /etc/apt/sources.list.d/debian.sources \
    > /etc/apt/sources.list.d/afut-glib-src.sources
  trap 'rm -f /etc/apt/sources.list.d/afut-glib-src.sources' EXIT
  apt-get update -qq >/dev/null
  (cd "$dir/src" && apt-get source -qq "glib2.0=$version" >/dev/null 2>&1)
  rm -f /etc/apt/sources.list.d/afut-glib-src.sources
  apt-get update -qq >/dev/null || true
fi
src=$(ls -d "$dir"/src/glib2.0-*/ | head -n1)

[ -d "$dir/build" ] || meson setup "$dir/build" "$src" -Dbuildtype=debugoptimized \
  -Db_sanitize=thread -Db_lundef=false -Dtests=false -Dinstalled_tests=false \
  -Dman=false -Dgtk_doc=false -Dnls=disabled -Dselinux=disabled -Dxattr=false \
  -Dsysprof=disabled -Dlibmount=disabled >/dev/null
meson compile -C "$dir/build" glib-2.0 gobject-2.0 gio-2.0 gmodule-2.0 \
  gthread-2.0 >/dev/null
mkdir -p "$lib"
for f in glib/libglib-2.0.so.0 gobject/libgobject-2.0.so.0 gio/libgio-2.0.so.0 \
         gmodule/libgmodule-2.0.so.0 gthread/libgthread-2.0.so.0; do
  cp -L "$dir/build/$f" "$lib/"
done
echo "$lib"
