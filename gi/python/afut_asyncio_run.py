"""Runs a Python program with asyncio on afut's event loop.

    python3 -m afut_asyncio_run PROGRAM.py [ARGUMENT...]

The program runs as `python3 PROGRAM.py` would (as __main__, with its
arguments in sys.argv and its directory first in sys.path), unchanged,
after Afut.install(): its asyncio.run() and new_event_loop() make afut's
EventLoop, on the GLib main context that afut and GTK use.

SPDX-License-Identifier: MIT
"""

import os
import runpy
import sys


def main(argv):
    if len(argv) < 2 or argv[1] in ('-h', '--help'):
        print(__doc__.split('\n\n')[1], file=sys.stderr)
        return 2
    import gi
    gi.require_version('Afut', '1')
    from gi.repository import Afut
    Afut.install()
    program = argv[1]
    sys.argv = argv[1:]
    sys.path[0] = os.path.dirname(os.path.abspath(program))
    runpy.run_path(program, run_name='__main__')
    return 0


if __name__ == '__main__':
    sys.exit(main(sys.argv))
