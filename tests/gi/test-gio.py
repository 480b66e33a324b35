#!/usr/bin/python3
"""The GIO futures of afut-glib.h from PyGObject: each resolves with the
value its _finish gives, typed (a Gio.FileInputStream, GLib.Bytes, a str),
signal futures give their arguments, and a cancel resumes the task only
once GIO has let go, so the stream closes cleanly afterwards.

Run by `meson test --suite gi` (gi-python-gio) with GI_TYPELIB_PATH,
LD_LIBRARY_PATH and PYTHONPATH pointing at the build and source trees.
"""

import asyncio
import os
import tempfile
import unittest

import gi

gi.require_version('Afut', '1')
from gi.repository import Afut, GLib, Gio  # noqa: E402

PRIORITY = GLib.PRIORITY_DEFAULT


class GioTestCase(unittest.TestCase):
    def setUp(self):
        self.loop = Afut.attach(virtual_clock=True)
        self.dir = tempfile.TemporaryDirectory()

    def tearDown(self):
        Afut.detach()
        self.dir.cleanup()

    def path(self, name, contents=None):
        path = os.path.join(self.dir.name, name)
        if contents is not None:
            with open(path, 'wb') as f:
                f.write(contents)
        return path


class TestFiles(GioTestCase):
    def test_load_contents_is_bytes(self):
        file = Gio.File.new_for_path(self.path('a', b'hello'))

        async def main():
            return await Afut.file_load_contents(file)

        data = Afut.run_until_complete(main())
        self.assertIsInstance(data, GLib.Bytes)
        self.assertEqual(data.get_data(), b'hello')

    def test_read_is_a_stream(self):
        file = Gio.File.new_for_path(self.path('a', b'0123456789'))

        async def main():
            stream = await Afut.file_read(file, PRIORITY)
            chunk = await Afut.input_stream_read_bytes(stream, 4, PRIORITY)
            await Afut.input_stream_close(stream, PRIORITY)
            return stream, chunk

        stream, chunk = Afut.run_until_complete(main())
        self.assertIsInstance(stream, Gio.FileInputStream)
        self.assertEqual(chunk.get_data(), b'0123')
        self.assertTrue(stream.is_closed())

    def test_missing_file_raises_its_gerror(self):
        file = Gio.File.new_for_path(self.path('missing'))

        async def main():
            await Afut.file_load_contents(file)

        with self.assertRaises(GLib.Error) as caught:
            Afut.run_until_complete(main())
        self.assertTrue(caught.exception.matches(
            Gio.io_error_quark(), Gio.IOErrorEnum.NOT_FOUND))

    def test_enumerate_gives_infos(self):
        for name in ('x', 'y'):
            self.path(name, b'')
        folder = Gio.File.new_for_path(self.dir.name)

        async def main():
            enumerator = await Afut.file_enumerate_children(
                folder, 'standard::name', Gio.FileQueryInfoFlags.NONE,
                PRIORITY)
            self.assertIsInstance(enumerator, Gio.FileEnumerator)
            info = await Afut.file_query_info(
                folder, 'standard::type', Gio.FileQueryInfoFlags.NONE,
                PRIORITY)
            return info.get_file_type()

        self.assertEqual(Afut.run_until_complete(main()),
                         Gio.FileType.DIRECTORY)


class TestStreams(GioTestCase):
    def test_cancelled_read_leaves_the_stream_free(self):
        # A read on an empty pipe, cancelled: the task resumes only after
        # GIO's callback, so closing the stream right then works.
        rfd, wfd = os.pipe()
        stream = Gio.UnixInputStream.new(rfd, True)
        outcome = []

        async def reader():
            try:
                await Afut.input_stream_read_bytes(stream, 16, PRIORITY)
            except asyncio.CancelledError:
                outcome.append(stream.has_pending())
                stream.close(None)  # no "outstanding operation"
                outcome.append(stream.is_closed())
                raise

        async def main():
            task = Afut.create_task(reader())
            await Afut.sleep(0.1)
            task.cancel()
            try:
                await task
            except asyncio.CancelledError:
                outcome.append('cancelled')

        Afut.run_until_complete(main())
        os.close(wfd)
        self.assertEqual(outcome, [False, True, 'cancelled'])


class TestSubprocess(GioTestCase):
    def test_communicate_utf8_is_a_str(self):
        proc = Gio.Subprocess.new(
            ['sh', '-c', 'tr a-z A-Z; echo note >&2'],
            Gio.SubprocessFlags.STDIN_PIPE | Gio.SubprocessFlags.STDOUT_PIPE
            | Gio.SubprocessFlags.STDERR_PIPE)

        async def main():
            fut = Afut.subprocess_communicate_utf8(proc, 'shout\n')
            out = await fut
            return out, Afut.subprocess_communicate_get_stderr_utf8(fut)

        self.assertEqual(Afut.run_until_complete(main()),
                         ('SHOUT\n', 'note\n'))

    def test_wait_check_raises(self):
        proc = Gio.Subprocess.new(['sh', '-c', 'exit 3'],
                                  Gio.SubprocessFlags.NONE)

        async def main():
            await Afut.subprocess_wait_check(proc)

        with self.assertRaises(GLib.Error) as caught:
            Afut.run_until_complete(main())
        self.assertEqual(caught.exception.code, 3)


class TestSignals(GioTestCase):
    def test_signal_next_gives_the_arguments(self):
        action = Gio.SimpleAction.new('go', GLib.VariantType.new('i'))

        async def main():
            fut = Afut.signal_next(action, 'activate')
            Afut.call_soon(action.activate, GLib.Variant('i', 7))
            value = await fut
            return (value, Afut.signal_get_n_args(fut),
                    Afut.signal_get_arg(fut, 0))

        value, n, arg = Afut.run_until_complete(main())
        # The value is the first argument; signal_get_arg() gives each.
        self.assertEqual(value.unpack(), 7)
        self.assertEqual(n, 1)
        self.assertEqual(arg.unpack(), 7)

    def test_property_next_gives_the_value(self):
        action = Gio.SimpleAction.new('go', None)

        async def main():
            fut = Afut.property_next(action, 'enabled')
            Afut.call_soon(action.set_enabled, False)
            await fut
            return Afut.property_get_value(fut)

        self.assertIs(Afut.run_until_complete(main()), False)

    def test_signal_stream(self):
        action = Gio.SimpleAction.new('go', GLib.VariantType.new('i'))

        async def main():
            stream = Afut.signal_stream_new(action, 'activate')
            for n in (1, 2, 3):
                action.activate(GLib.Variant('i', n))
            Afut.signal_stream_close(stream)
            got = []
            while True:
                event = Afut.signal_stream_next(stream)
                await event
                if Afut.signal_get_n_args(event) == 0:
                    break
                got.append(Afut.signal_get_arg(event, 0).unpack())
            return got

        self.assertEqual(Afut.run_until_complete(main()), [1, 2, 3])


if __name__ == '__main__':
    unittest.main(verbosity=2)
