"""Runs a Python program with asyncio on afut's event loop.

    python3 -m afut_asyncio_run PROGRAM.py [ARGUMENT...]
    python3 -m afut_asyncio_run -m MODULE [ARGUMENT...]
    python3 -m afut_asyncio_run -c CODE [ARGUMENT...]

The program runs as `python3 PROGRAM.py` (or -m, -c) would: as __main__,
with its arguments in sys.argv, unchanged, after Afut.install(): its
asyncio.run() and new_event_loop() make afut's EventLoop, on the GLib main
context that afut and GTK use.

SPDX-License-Identifier: MIT
"""

import os
import runpy
import sys


def main(argv):
    if len(argv) < 2 or argv[1] in ('-h', '--help') or (
            argv[1] in ('-m', '-c') and len(argv) < 3):
        print(__doc__.split('\n\n')[1], file=sys.stderr)
        return 2
    import gi
    gi.require_version('Afut', '1')
    from gi.repository import Afut
    Afut.install()
    if argv[1] == '-c':
        sys.argv = ['-c'] + argv[3:]
        sys.path[0] = ''
        code = compile(argv[2], '<string>', 'exec')
        exec(code, {'__name__': '__main__', '__builtins__': __builtins__})
    elif argv[1] == '-m':
        sys.argv = [argv[2]] + argv[3:]
        sys.path[0] = os.getcwd()
        runpy.run_module(argv[2], run_name='__main__', alter_sys=True)
    else:
        program = argv[1]
        sys.argv = argv[1:]
        sys.path[0] = os.path.dirname(os.path.abspath(program))
        runpy.run_path(program, run_name='__main__')
    return 0


if __name__ == '__main__':
    sys.exit(main(sys.argv))
