#!/usr/bin/python3
"""A GTK 4 window that reads a file through GIO on afut, in chunks, with a
progress bar and a Cancel button.

    python3 gtk-read-file.py [FILE]      (a 32 MiB scratch file by default)
    python3 gtk-read-file.py --self-test (clicks through it, exit 0 if fine)

The afut loop is one GSource on GTK's main context (Afut.attach()), so the
window stays live while the task awaits each read.  Read starts a task
(an `async def` run by afut); Cancel cancels it: the read in flight is
cancelled through the future's GCancellable, the task resumes only once
GIO has let go of the stream (Afut.gio), closes it and says so.  Errors
(a missing file) show in the window.
"""

import asyncio
import os
import sys
import tempfile

import gi

gi.require_version('Gtk', '4.0')
gi.require_version('Afut', '1')
from gi.repository import Afut, Gio, GLib, Gtk  # noqa: E402

CHUNK = 64 * 1024


class Reader:
    def __init__(self, app, path):
        self.path = path
        self.task = None
        self.progressed = None  # an Afut.Event per read, for the self-test
        self.status = Gtk.Label(label='Press Read', xalign=0)
        self.bar = Gtk.ProgressBar(show_text=True)
        self.read_button = Gtk.Button(label='Read')
        self.cancel_button = Gtk.Button(label='Cancel', sensitive=False)
        self.read_button.connect('clicked', self.on_read)
        self.cancel_button.connect('clicked', self.on_cancel)
        buttons = Gtk.Box(spacing=6)
        buttons.append(self.read_button)
        buttons.append(self.cancel_button)
        box = Gtk.Box(orientation=Gtk.Orientation.VERTICAL, spacing=12,
                      margin_top=12, margin_bottom=12, margin_start=12,
                      margin_end=12)
        for widget in (Gtk.Label(label=os.path.basename(path), xalign=0),
                       self.bar, self.status, buttons):
            box.append(widget)
        self.window = Gtk.ApplicationWindow(application=app, child=box,
                                            title='afut: read a file',
                                            default_width=420)
        self.window.present()

    def on_read(self, button):
        self.progressed = Afut.Event()
        self.task = Afut.create_task(self.read(), name='read')
        self.read_button.set_sensitive(False)
        self.cancel_button.set_sensitive(True)

    def on_cancel(self, button):
        if self.task is not None:
            self.task.cancel('Cancel pressed')

    async def read(self):
        total = 0
        try:
            file = Gio.File.new_for_path(self.path)
            info = await Afut.gio(file.query_info_async, 'standard::size',
                                  Gio.FileQueryInfoFlags.NONE,
                                  GLib.PRIORITY_DEFAULT, None)
            size = max(1, info.get_size())
            stream = await Afut.gio(file.read_async, GLib.PRIORITY_DEFAULT, None)
        except GLib.Error as e:
            self.finish(f'Error: {e.message}')
            return
        except asyncio.CancelledError:
            self.finish('Cancelled before reading')
            raise
        try:
            while True:
                data = await Afut.gio(stream.read_bytes_async, CHUNK,
                                      GLib.PRIORITY_DEFAULT, None)
                if data.get_size() == 0:
                    break
                total += data.get_size()
                self.bar.set_fraction(total / size)
                self.status.set_text(f'{total} of {size} bytes')
                self.progressed.set()
        except asyncio.CancelledError as e:
            # GIO has let go of the stream: it can be closed.
            await Afut.gio(stream.close_async, GLib.PRIORITY_DEFAULT, None)
            self.finish(f'Cancelled after {total} bytes ({e.args[0]}); '
                        f'stream closed: {stream.is_closed()}')
            raise
        except GLib.Error as e:
            self.finish(f'Error: {e.message}')
            return
        await Afut.gio(stream.close_async, GLib.PRIORITY_DEFAULT, None)
        self.finish(f'Done: {total} bytes')
        return total

    def finish(self, text):
        self.status.set_text(text)
        self.read_button.set_sensitive(True)
        self.cancel_button.set_sensitive(False)


async def self_test(app, reader):
    """Clicks Read, then Cancel once the first chunk came; Read again to
    the end; then a missing file.  Checks what the window says; quits
    the app whatever happens."""
    try:
        return await clicks(reader)
    finally:
        app.quit()


async def clicks(reader):
    failures = []

    def check(condition, what):
        if not condition:
            failures.append(what)

    reader.read_button.emit('clicked')
    await reader.progressed.wait()
    reader.cancel_button.emit('clicked')
    try:
        await reader.task
        check(False, 'the cancelled read finished')
    except asyncio.CancelledError:
        pass
    text = reader.status.get_text()
    check(text.startswith('Cancelled after ') and text.endswith(
        'stream closed: True'), 'after Cancel: ' + text)
    check(0 < reader.bar.get_fraction() < 1, 'the bar shows partial progress')
    check(reader.read_button.get_sensitive(), 'Read is clickable again')

    reader.read_button.emit('clicked')
    total = await reader.task
    check(reader.status.get_text() == f'Done: {total} bytes',
          'after a full read: ' + reader.status.get_text())
    check(total == os.path.getsize(reader.path), 'read every byte')
    check(reader.bar.get_fraction() == 1.0, 'the bar is full')

    reader.path = reader.path + '.missing'
    reader.read_button.emit('clicked')
    await reader.task
    check(reader.status.get_text().startswith('Error: '),
          'a missing file: ' + reader.status.get_text())
    for f in failures:
        print('FAIL:', f, file=sys.stderr)
    print('self-test:', 'ok' if not failures else f'{len(failures)} failures')
    return not failures


def main():
    self_testing = '--self-test' in sys.argv
    args = [a for a in sys.argv[1:] if a != '--self-test']
    scratch = None
    if args:
        path = args[0]
    else:
        fd, path = tempfile.mkstemp(prefix='afut-gtk-read-')
        with os.fdopen(fd, 'wb') as f:
            f.write(os.urandom(1024) * (32 * 1024))  # 32 MiB
        scratch = path
    Afut.attach()  # afut on GTK's main context
    app = Gtk.Application(application_id='org.example.AfutReadFile',
                          flags=Gio.ApplicationFlags.NON_UNIQUE)
    result = {}

    def activate(app):
        reader = Reader(app, path)
        if self_testing:
            result['test'] = Afut.create_task(self_test(app, reader))

    app.connect('activate', activate)
    status = app.run([sys.argv[0]])
    if self_testing:
        test = result['test']
        status = 0 if test.done() and test.result() else 1
    Afut.detach()  # cancels what still runs
    if scratch is not None:
        os.unlink(scratch)
    return status


if __name__ == '__main__':
    sys.exit(main())
