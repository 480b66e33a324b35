#!/usr/bin/env python3
"""Where to install the Python override and the typelib so that PyGObject
and gjs find them with no environment variable (gi/meson.build runs it
with the Python that has gi, at configure time).

    install-dirs.py PREFIX LIBDIR

Prints two lines:
  - the site directory for gi/overrides/: the first dist-packages or
    site-packages directory on this Python's sys.path in PREFIX/lib (where
    pkgutil.extend_path, which gi.overrides uses, finds it); else the one
    gi itself lives in;
  - the directory for the typelib: PREFIX/LIBDIR/girepository-1.0 when
    libgirepository searches it by default, else the first directory it
    does search (its own, /usr/lib/<arch>/girepository-1.0 on Debian).
"""
import os
import sys

prefix = os.path.normpath(sys.argv[1])
libdir = sys.argv[2]

os.environ.pop('GI_TYPELIB_PATH', None)
import gi  # noqa: E402
gi.require_version('GIRepository', '2.0')
from gi.repository import GIRepository  # noqa: E402

site = None
for path in sys.path:
    rel = os.path.relpath(path, prefix)
    if (rel.split(os.sep)[0] in ('lib', 'lib64')  # not /usr/local for /usr
            and os.path.basename(path) in ('dist-packages', 'site-packages')):
        site = path
        break
if site is None:
    site = os.path.dirname(os.path.dirname(os.path.abspath(gi.__file__)))
print(site)

typelib = os.path.join(prefix, libdir, 'girepository-1.0')
searched = [os.path.normpath(p)
            for p in GIRepository.Repository.get_search_path()]
print(typelib if os.path.normpath(typelib) in searched else searched[0])
