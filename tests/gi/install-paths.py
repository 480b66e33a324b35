#!/usr/bin/python3
"""The installed bindings are found with no environment variable (issue
14): each file `meson install` would put down lands where its consumer
looks by default.  Reads BUILD_DIR/meson-info/intro-installed.json and
asks a fresh python3, libgirepository and gjs (GI_TYPELIB_PATH,
PYTHONPATH and GJS_PATH removed) where they search.

    install-paths.py BUILD_DIR PYTHON GJS|-
"""
import glob
import json
import os
import subprocess
import sys

build, python, gjs = sys.argv[1:4]
with open(os.path.join(build, 'meson-info', 'intro-installed.json')) as f:
    installed = json.load(f)

env = {k: v for k, v in os.environ.items()
       if k not in ('GI_TYPELIB_PATH', 'PYTHONPATH', 'GJS_PATH',
                    'LD_LIBRARY_PATH')}


def dest(name):
    for src, dst in installed.items():
        if os.path.basename(src) == name:
            return os.path.dirname(os.path.normpath(dst))
    sys.exit(f'FAIL: {name} is not installed')


failures = []


def check(ok, what):
    print(('ok: ' if ok else 'FAIL: ') + what)
    if not ok:
        failures.append(what)


out = subprocess.run([python, '-c', 'import sys; print("\\n".join(sys.path))'],
                     env=env, capture_output=True, text=True, check=True).stdout
sys_path = [os.path.normpath(p) for p in out.split('\n') if p]
override = dest('Afut.py')
check(any(os.path.join(p, 'gi', 'overrides') == override for p in sys_path),
      f'the Python override ({override}) is in gi/overrides of a sys.path entry')

script = ('import gi; gi.require_version("GIRepository", "2.0"); '
          'from gi.repository import GIRepository; '
          'print("\\n".join(GIRepository.Repository.get_search_path()))')
out = subprocess.run([python, '-c', script], env=env, capture_output=True,
                     text=True, check=True).stdout
searched = [os.path.normpath(p) for p in out.split('\n') if p]
typelib = dest('Afut-1.typelib')
check(typelib in searched,
      f'the typelib ({typelib}) is where libgirepository looks: {searched}')

if gjs != '-':
    out = subprocess.run([gjs, '-c', 'print(imports.searchPath.join("\\n"))'],
                         env=env, capture_output=True, text=True, check=True).stdout
    gjs_path = [os.path.normpath(p) for p in out.split('\n') if p]
    js = dest('Afut.js')
    check(any(os.path.join(p, 'overrides') == js for p in gjs_path),
          f'the gjs override ({js}) is in overrides/ of gjs\'s search path')

lib = None
for src, dst in installed.items():
    if os.path.basename(src).startswith('libafut-1.so'):
        lib = os.path.dirname(dst)
ld_dirs = ['/lib', '/usr/lib']
for conf in glob.glob('/etc/ld.so.conf.d/*.conf'):
    with open(conf) as f:
        ld_dirs += [line.strip() for line in f
                    if line.strip() and not line.startswith('#')]
check(lib in ld_dirs or lib in ('/lib64', '/usr/lib64'),
      f'libafut-1 ({lib}) is where the dynamic linker looks')

sys.exit(1 if failures else 0)
