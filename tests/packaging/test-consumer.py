#!/usr/bin/env python3
"""test-consumer.py - afut as a GTK app takes it (issue 15, item 4).

    test-consumer.py MESON SOURCE_ROOT BUILD_ROOT WORK_DIR

A consumer project (tests/packaging/consumer: `dependency('afut-glib')`,
no fallback:, one installed program) is built both ways, and what its
`meson install --dry-run` would install is checked:

  1. afut as a subproject through packaging/afut.wrap: the dependency is
     found by name; nothing of afut's is installed; with
     -Dafut:install=enabled afut's headers and .pc files are, under
     include/afut-1/;
  2. afut installed into a prefix (headers and .pc files), the consumer
     through pkg-config: it compiles against include/afut-1/ and runs;
     nothing of afut's is installed again.

And afut's own install set (BUILD_ROOT, the build under test): headers
under include/afut-1/ only, a .pc for each of afut, afut-glib and, with
introspection, libafut-1.
"""

import os
import re
import shutil
import subprocess
import sys

MESON, SOURCE, BUILD, WORK = sys.argv[1:5]
CONSUMER = os.path.join(SOURCE, 'tests', 'packaging', 'consumer')
failures = []


def check(ok, what):
    print('%s - %s' % ('ok' if ok else 'not ok', what))
    if not ok:
        failures.append(what)


def run(*args, env=None, cwd=None):
    p = subprocess.run([MESON] + list(args), cwd=cwd, env=env,
                       stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                       text=True)
    if p.returncode != 0:
        print(p.stdout)
        print('FAIL: meson %s exited %d' % (' '.join(args), p.returncode))
        sys.exit(1)
    return p.stdout


def installed(build):
    """The destinations `meson install --dry-run` lists: file paths."""
    out = run('install', '-C', build, '--dry-run', '--no-rebuild')
    dests = []
    for line in out.splitlines():
        m = re.match(r'Installing (?:symlink pointing to )?(\S+) to (\S+)$',
                     line)
        if m:
            dests.append(os.path.join(m.group(2),
                                      os.path.basename(m.group(1))))
    return dests


def of_afut(dests):
    return [d for d in dests if 'afut' in d.lower()]


def consumer_copy(name):
    d = os.path.join(WORK, name)
    shutil.copytree(CONSUMER, d)
    return d


shutil.rmtree(WORK, ignore_errors=True)
os.makedirs(WORK)
env = dict(os.environ)
for var in ('PKG_CONFIG_PATH', 'PKG_CONFIG_LIBDIR'):
    env.pop(var, None)

# 1. As a subproject, through the wrap, with no fallback: keyword.
sub = consumer_copy('as-subproject')
os.makedirs(os.path.join(sub, 'subprojects'))
os.symlink(SOURCE, os.path.join(sub, 'subprojects', 'afut'))
shutil.copy(os.path.join(SOURCE, 'packaging', 'afut.wrap'),
            os.path.join(sub, 'subprojects'))
out = run('setup', os.path.join(sub, 'b'), sub, '--wrap-mode=nodownload',
          env=env)
check(re.search(r'Dependency afut-glib found: YES .*\(overridden\)', out)
      is not None, 'as a subproject: dependency(\'afut-glib\') found through the wrap')
run('compile', '-C', os.path.join(sub, 'b'), env=env)
dests = installed(os.path.join(sub, 'b'))
check(any(d.endswith('/bin/demo-app') for d in dests),
      'as a subproject: the consumer installs its program')
check(of_afut(dests) == [],
      'as a subproject: nothing of afut\'s is installed (%s)'
      % (of_afut(dests) or 'none'))
# setup --reconfigure: `meson configure` would leave the install plan to
# the next build, which --no-rebuild skips.
run('setup', '--reconfigure', os.path.join(sub, 'b'), sub,
    '-Dafut:install=enabled', '-Dafut:introspection=disabled', env=env)
dests = installed(os.path.join(sub, 'b'))
wanted = ['include/afut-1/afut.h', 'include/afut-1/afut-glib.h',
          'pkgconfig/afut.pc', 'pkgconfig/afut-glib.pc']
check(all(any(d.endswith(w) for d in dests) for w in wanted),
      'as a subproject with install=enabled: afut\'s headers and .pc files '
      'are installed')

# 2. Installed into a prefix; the consumer through pkg-config.
prefix = os.path.join(WORK, 'prefix')
afut_build = os.path.join(WORK, 'afut-build')
run('setup', afut_build, SOURCE, '--prefix=' + prefix, '--libdir=lib',
    '-Dtests=false', '-Dintrospection=disabled', '-Ddocs=disabled', env=env)
run('install', '-C', afut_build, '--no-rebuild', '--quiet')
files = sorted(os.path.relpath(os.path.join(d, f), prefix)
               for d, _, fs in os.walk(prefix) for f in fs)
check(files == ['include/afut-1/afut-glib.h', 'include/afut-1/afut.h',
                'lib/pkgconfig/afut-glib.pc', 'lib/pkgconfig/afut.pc'],
      'installed without introspection: headers under include/afut-1/, '
      'two .pc files (%s)' % ', '.join(files))
inst = consumer_copy('installed')
env['PKG_CONFIG_PATH'] = os.path.join(prefix, 'lib', 'pkgconfig')
out = run('setup', os.path.join(inst, 'b'), inst, '--wrap-mode=nofallback',
          env=env)
check(re.search(r'^Run-time dependency afut-glib found: YES \d+\.\d+\.\d+$',
                out, re.M) is not None, 'installed: dependency(\'afut-glib\') found by pkg-config')
run('compile', '-C', os.path.join(inst, 'b'), env=env)
p = subprocess.run([os.path.join(inst, 'b', 'demo-app')])
check(p.returncode == 0,
      'installed: the consumer compiles against include/afut-1/ and runs')
dests = installed(os.path.join(inst, 'b'))
check(of_afut(dests) == [] and len(dests) == 1,
      'installed: the consumer installs its program alone (%s)' % dests)

# afut's own install set, from the build under test.
dests = installed(BUILD)
headers = [d for d in dests if d.endswith('.h')]
check(headers != [] and all('/include/afut-1/' in h for h in headers),
      'afut installs its headers under include/afut-1/ (%s)'
      % ', '.join(os.path.basename(h) for h in headers))
pcs = sorted(os.path.basename(d) for d in dests if d.endswith('.pc'))
gi = any(os.path.basename(d).startswith('libafut-1.so') for d in dests)
check(pcs == (['afut-1.pc'] if gi else []) + ['afut-glib.pc', 'afut.pc'],
      'afut installs a .pc for afut, afut-glib%s (%s)'
      % (' and libafut-1' if gi else '', ', '.join(pcs)))
if gi:
    with open(os.path.join(BUILD, 'meson-private', 'afut-1.pc')) as f:
        pc = f.read()
    check('-lafut-1' in pc and '${includedir}/afut-1' in pc,
          'afut-1.pc links libafut-1 and points at include/afut-1/')

if failures:
    print('FAIL: %d of the checks above' % len(failures))
    sys.exit(1)
shutil.rmtree(WORK, ignore_errors=True)
