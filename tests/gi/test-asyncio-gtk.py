#!/usr/bin/python3
"""asyncio on afut's event loop in a GTK 4 app, under Xvfb (suite gtk).

A Gtk.Application runs its own main loop; asyncio runs on it through
loop.running(app.quit).  The window draws while asyncio tasks wait, a
button's signal handler starts a task with asyncio.create_task(), a task
runs a subprocess and awaits an afut future, and loop.stop() quits the
app.  Exit status 0 when every check holds; 1 with the failures listed.
No check depends on how long anything takes.
"""

import asyncio
import sys

import gi

gi.require_version('Gtk', '4.0')
gi.require_version('Afut', '1')
from gi.repository import Afut, GLib, Gtk  # noqa: E402

failures = []
log = []


def check(condition, what):
    if not condition:
        failures.append(what)


class Area(Gtk.Widget):
    """Counts its snapshots (GTK 4's drawing) and says each one."""

    def __init__(self, on_draw):
        super().__init__()
        self.on_draw = on_draw
        self.set_size_request(100, 40)

    def do_snapshot(self, snapshot):
        self.on_draw()


class Window:

    def __init__(self, app):
        self.drawn = asyncio.Event()
        self.n_draws = 0
        self.label = Gtk.Label(label='waiting')
        self.area = Area(self.draw)
        self.button = Gtk.Button(label='Run')
        self.button.connect('clicked', self.clicked)
        box = Gtk.Box(orientation=Gtk.Orientation.VERTICAL)
        for widget in (self.label, self.area, self.button):
            box.append(widget)
        self.window = Gtk.ApplicationWindow(application=app, child=box)
        self.window.present()

    def draw(self):
        self.n_draws += 1
        self.drawn.set()

    def clicked(self, button):
        # A GTK signal handler: no await here, a task.
        log.append('clicked')
        asyncio.create_task(self.run_uname())

    async def run_uname(self):
        proc = await asyncio.create_subprocess_exec(
            'echo', 'from a subprocess', stdout=asyncio.subprocess.PIPE)
        out, _ = await proc.communicate()
        self.label.set_text(out.decode().strip())
        log.append('label set')
        self.done.set_result(None)

    async def main(self):
        loop = asyncio.get_running_loop()
        check(isinstance(loop, Afut.EventLoop), 'the running loop is afut\'s')
        # GTK draws while asyncio waits.
        for i in range(3):
            self.drawn.clear()
            self.area.queue_draw()
            await self.drawn.wait()
            log.append('drawn %d' % i)
        # An afut future from an asyncio task.
        await Afut.sleep(0)
        self.done = loop.create_future()
        GLib.idle_add(lambda: self.button.emit('clicked') and False)
        await self.done
        check(self.label.get_text() == 'from a subprocess',
              'label text: %r' % self.label.get_text())
        loop.stop()   # quits the app through running()'s quit_func


def main():
    Afut.install()
    app = Gtk.Application(application_id='org.afut.AsyncioGtkTest')
    windows = []
    tasks = []

    def activate(app):
        windows.append(Window(app))
        tasks.append(asyncio.create_task(windows[0].main()))

    app.connect('activate', activate)
    loop = asyncio.new_event_loop()
    with loop.running(app.quit):
        status = app.run([])
    check(status == 0, 'app.run() returned %r' % status)
    check(tasks and tasks[0].done() and tasks[0].exception() is None,
          'the main task finished: %r' % tasks)
    check(log == ['drawn 0', 'drawn 1', 'drawn 2', 'clicked', 'label set'],
          'order: %r' % log)
    check(windows and windows[0].n_draws >= 3, 'draws: %d' % windows[0].n_draws)
    check(not loop.is_running(), 'the loop stopped running')
    loop.close()
    for failure in failures:
        print('FAIL:', failure)
    print('ok' if not failures else '%d failures' % len(failures))
    return 1 if failures else 0


if __name__ == '__main__':
    sys.exit(main())
