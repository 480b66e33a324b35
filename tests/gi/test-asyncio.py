#!/usr/bin/python3
"""asyncio on afut's GLib event loop (gi/overrides/_afut_asyncio.py):
CPython's own asyncio test ideas run on Afut.EventLoop.

Timers, call_soon order, readers and writers, sockets, subprocesses,
cancellation, task groups, threads, stop/close, exceptions out of the
loop, signals, the policy, a GLib main loop (GTK's case) driving asyncio,
and afut futures and asyncio futures awaiting each other.

Run by `meson test --suite gi` with the typelib and overrides of the
build and source trees.  Timer tests use the loop's virtual clock; I/O
tests the real one, with no timeouts: nothing depends on wall time.
"""

import asyncio
import contextlib
import gc
import importlib
import os
import signal
import socket
import subprocess
import sys
import threading
import unittest

import gi

gi.require_version('Afut', '1')
from gi.repository import Afut, GLib  # noqa: E402

EventLoop = Afut.EventLoop


class LoopTestCase(unittest.TestCase):
    """Each test has its own loop, on a context of its own unless the
    test asks for GLib's default one."""

    virtual_clock = True
    default_context = False

    def setUp(self):
        Afut.install()
        context = GLib.MainContext.default() if self.default_context else GLib.MainContext()
        self.loop = EventLoop(context, virtual_clock=self.virtual_clock)
        asyncio.set_event_loop(self.loop)

    def tearDown(self):
        asyncio.set_event_loop(None)
        if not self.loop.is_closed():
            self.loop.close()
        self.loop = None
        gc.collect()

    def run_loop(self, aw):
        return self.loop.run_until_complete(aw)


class TestTimers(LoopTestCase):

    def test_call_later_runs_in_deadline_order(self):
        order = []
        for delay in (0.3, 0.1, 0.2, 0.0):
            self.loop.call_later(delay, order.append, delay)
        self.loop.call_later(0.4, self.loop.stop)
        self.loop.run_forever()
        self.assertEqual(order, [0.0, 0.1, 0.2, 0.3])

    def test_equal_deadlines_run_in_cpythons_order(self):
        # CPython's timer heap compares deadlines only: equal ones do not
        # come out in scheduling order.  The loop keeps CPython's order.
        def order_on(loop):
            order = []
            when = loop.time() + 0.01
            for i in range(7):
                loop.call_at(when, order.append, i)
            loop.call_at(when + 0.01, loop.stop)
            loop.run_forever()
            return order
        stock = asyncio.SelectorEventLoop()
        try:
            expected = order_on(stock)
        finally:
            stock.close()
        self.assertEqual(sorted(expected), list(range(7)))
        self.assertEqual(order_on(self.loop), expected)

    def test_call_at_fires_at_its_deadline(self):
        start = self.loop.time()
        seen = []
        self.loop.call_at(start + 5, lambda: (seen.append(self.loop.time()),
                                              self.loop.stop()))
        self.loop.run_forever()
        self.assertEqual(seen, [start + 5])

    def test_cancelled_timer_does_not_run(self):
        order = []
        handle = self.loop.call_later(0.1, order.append, 'cancelled')
        self.loop.call_later(0.2, order.append, 'kept')
        self.loop.call_later(0.3, self.loop.stop)
        handle.cancel()
        self.loop.run_forever()
        self.assertEqual(order, ['kept'])

    def test_virtual_sleep_moves_time_by_its_delay(self):
        async def main():
            start = self.loop.time()
            await asyncio.sleep(3600)
            return self.loop.time() - start
        self.assertEqual(self.run_loop(main()), 3600)

    def test_timers_of_a_real_clock_fire_in_order(self):
        loop = EventLoop(GLib.MainContext())
        try:
            order = []

            async def sleeper(delay):
                await asyncio.sleep(delay)
                order.append(delay)
            async def main():
                await asyncio.gather(sleeper(0.03), sleeper(0.01), sleeper(0.02))
            loop.run_until_complete(main())
            self.assertEqual(order, [0.01, 0.02, 0.03])
        finally:
            loop.close()


class TestCallSoon(LoopTestCase):

    def test_fifo(self):
        order = []
        for i in range(10):
            self.loop.call_soon(order.append, i)
        self.loop.call_soon(self.loop.stop)
        self.loop.run_forever()
        self.assertEqual(order, list(range(10)))

    def test_callbacks_added_by_callbacks_run_after_the_batch(self):
        order = []

        def first():
            order.append('first')
            self.loop.call_soon(order.append, 'added')
        self.loop.call_soon(first)
        self.loop.call_soon(order.append, 'second')
        self.loop.call_soon(self.loop.call_soon, self.loop.stop)
        self.loop.run_forever()
        self.assertEqual(order, ['first', 'second', 'added'])

    def test_cancelled_handle_does_not_run(self):
        order = []
        handle = self.loop.call_soon(order.append, 'no')
        self.loop.call_soon(order.append, 'yes')
        self.loop.call_soon(self.loop.stop)
        handle.cancel()
        self.loop.run_forever()
        self.assertEqual(order, ['yes'])

    def test_sleep_zero_interleaves_tasks(self):
        order = []

        async def task(name):
            for i in range(3):
                order.append((name, i))
                await asyncio.sleep(0)

        async def main():
            await asyncio.gather(task('a'), task('b'))
        self.run_loop(main())
        self.assertEqual(order, [('a', 0), ('b', 0), ('a', 1), ('b', 1),
                                 ('a', 2), ('b', 2)])


class TestStopAndRun(LoopTestCase):

    def test_stop_before_run_forever_runs_one_iteration(self):
        order = []
        self.loop.call_soon(order.append, 1)
        self.loop.call_soon(self.loop.call_soon, order.append, 'next')
        self.loop.stop()
        self.loop.run_forever()
        self.assertEqual(order, [1])
        self.loop.call_soon(self.loop.stop)
        self.loop.run_forever()
        self.assertEqual(order, [1, 'next'])

    def test_run_forever_twice_and_is_running(self):
        seen = []
        self.loop.call_soon(lambda: seen.append(self.loop.is_running()))
        self.loop.call_soon(self.loop.stop)
        self.loop.run_forever()
        self.assertFalse(self.loop.is_running())
        self.loop.call_soon(self.loop.stop)
        self.loop.run_forever()
        self.assertEqual(seen, [True])

    def test_running_loop_is_set_only_while_running(self):
        async def main():
            return asyncio.get_running_loop()
        self.assertIs(self.run_loop(main()), self.loop)
        with self.assertRaises(RuntimeError):
            asyncio.get_running_loop()

    def test_nested_run_is_an_error(self):
        async def main():
            coro = asyncio.sleep(0)
            try:
                self.loop.run_until_complete(coro)
            finally:
                coro.close()
        with self.assertRaises(RuntimeError):
            self.run_loop(main())

    def test_a_nested_main_loop_pauses_asyncio_and_its_clock(self):
        # A modal dialog's main loop, run from a callback: asyncio's
        # virtual clock waits until it returns, as its callbacks do.
        log = []
        start = self.loop.time()

        def in_modal(nested):
            log.append(('modal', self.loop.time()))
            nested.quit()
            return GLib.SOURCE_REMOVE

        def modal():
            nested = GLib.MainLoop.new(self.loop.context, False)
            # Below the virtual clock's own priority: it runs only when
            # the clock has nothing to do.
            idle = GLib.idle_source_new()
            idle.set_priority(GLib.PRIORITY_LOW + 10)
            idle.set_callback(in_modal, nested)
            idle.attach(self.loop.context)
            nested.run()
            log.append('modal done')
        self.loop.call_later(5, self.loop.stop)
        self.loop.call_soon(modal)
        self.loop.run_forever()
        self.assertEqual(log, [('modal', start), 'modal done'])
        self.assertEqual(self.loop.time(), start + 5)

    def test_system_exit_from_a_task_leaves_the_loop(self):
        async def main():
            await asyncio.sleep(0)
            raise SystemExit(3)
        with self.assertRaises(SystemExit) as caught:
            self.run_loop(main())
        self.assertEqual(caught.exception.code, 3)
        # The loop is usable again.
        self.assertEqual(self.run_loop(asyncio.sleep(0, 'again')), 'again')

    def test_keyboard_interrupt_from_a_callback_leaves_run_forever(self):
        def interrupt():
            raise KeyboardInterrupt
        self.loop.call_soon(interrupt)
        with self.assertRaises(KeyboardInterrupt):
            self.loop.run_forever()
        self.assertFalse(self.loop.is_running())

    def test_exception_in_a_callback_goes_to_the_handler(self):
        errors = []
        self.loop.set_exception_handler(lambda loop, ctx: errors.append(ctx['exception']))

        def fail():
            raise ValueError('in callback')
        self.loop.call_soon(fail)
        self.loop.call_soon(self.loop.stop)
        self.loop.run_forever()
        self.assertEqual([str(e) for e in errors], ['in callback'])


class TestClose(LoopTestCase):

    def test_close(self):
        self.run_loop(asyncio.sleep(0))
        self.loop.close()
        self.assertTrue(self.loop.is_closed())
        self.loop.close()  # twice is fine
        with self.assertRaises(RuntimeError):
            self.loop.call_soon(print)
        with self.assertRaises(RuntimeError):
            self.loop.run_forever()

    def test_close_while_running_is_an_error(self):
        async def main():
            self.loop.close()
        with self.assertRaises(RuntimeError):
            self.run_loop(main())

    def test_no_source_is_left_on_the_context(self):
        context = self.loop.context
        self.loop.call_later(10, print)
        self.run_loop(asyncio.sleep(0))
        # Not running: nothing of the loop is on the context.
        self.assertFalse(context.pending())
        self.loop.close()
        self.assertFalse(context.pending())
        self.assertFalse(context.iteration(False))

    def test_a_dropped_loop_is_collected(self):
        # The GSource holds the loop weakly: no cycle through GLib.
        import warnings
        import weakref
        loop = EventLoop(GLib.MainContext(), virtual_clock=True)
        loop.run_until_complete(asyncio.sleep(1))
        ref = weakref.ref(loop)
        with warnings.catch_warnings():
            warnings.simplefilter('ignore', ResourceWarning)
            del loop
            gc.collect()
        self.assertIsNone(ref())

    def test_not_running_loop_leaves_fds_unwatched(self):
        a, b = socket.socketpair()
        with a, b:
            seen = []
            self.loop.add_reader(a, seen.append, 'read')
            b.send(b'x')
            self.assertFalse(self.loop.context.iteration(False))
            self.assertEqual(seen, [])
            self.loop.call_later(0, self.loop.stop)
            self.loop.run_forever()
            self.assertEqual(seen, ['read'])
            self.loop.remove_reader(a)


class IOTestCase(LoopTestCase):
    virtual_clock = False


class TestReadersWriters(IOTestCase):

    def test_add_reader(self):
        a, b = socket.socketpair()
        with a, b:
            a.setblocking(False)
            got = []

            def readable():
                got.append(a.recv(100))
                self.loop.remove_reader(a)
                self.loop.stop()
            self.loop.add_reader(a, readable)
            self.loop.call_soon(b.send, b'hello')
            self.loop.run_forever()
            self.assertEqual(got, [b'hello'])

    def test_remove_reader_answers_whether_one_was_there(self):
        a, b = socket.socketpair()
        with a, b:
            self.assertFalse(self.loop.remove_reader(a))
            self.loop.add_reader(a, print)
            self.assertTrue(self.loop.remove_reader(a))
            self.assertFalse(self.loop.remove_reader(a))

    def test_add_writer_and_remove(self):
        a, b = socket.socketpair()
        with a, b:
            calls = []

            def writable():
                calls.append('w')
                self.assertTrue(self.loop.remove_writer(a))
                self.loop.stop()
            self.loop.add_writer(a, writable)
            self.loop.run_forever()
            self.assertEqual(calls, ['w'])
            self.assertFalse(self.loop.remove_writer(a))

    def test_reader_and_writer_on_one_fd(self):
        a, b = socket.socketpair()
        with a, b:
            a.setblocking(False)
            seen = []

            def writable():
                seen.append('writable')
                self.loop.remove_writer(a)
                b.send(b'x')

            def readable():
                seen.append(a.recv(1))
                self.loop.remove_reader(a)
                self.loop.stop()
            self.loop.add_reader(a, readable)
            self.loop.add_writer(a, writable)
            self.loop.run_forever()
            self.assertEqual(seen, ['writable', b'x'])

    def test_replaced_reader(self):
        a, b = socket.socketpair()
        with a, b:
            a.setblocking(False)
            seen = []
            self.loop.add_reader(a, seen.append, 'old')
            self.loop.add_reader(a, lambda: (seen.append(a.recv(1)),
                                             self.loop.stop()))
            b.send(b'n')
            self.loop.run_forever()
            self.loop.remove_reader(a)
            self.assertEqual(seen, [b'n'])

    def test_peer_closed_wakes_the_reader(self):
        a, b = socket.socketpair()
        with a:
            a.setblocking(False)
            got = []

            def readable():
                got.append(a.recv(10))
                self.loop.remove_reader(a)
                self.loop.stop()
            self.loop.add_reader(a, readable)
            b.close()
            self.loop.run_forever()
            self.assertEqual(got, [b''])

    def test_bad_file_objects(self):
        with self.assertRaises(ValueError):
            self.loop.add_reader(-1, print)
        with self.assertRaises(ValueError):
            self.loop.add_reader(object(), print)


class TestSockets(IOTestCase):

    def test_sock_sendall_and_recv(self):
        a, b = socket.socketpair()
        with a, b:
            a.setblocking(False)
            b.setblocking(False)

            async def main():
                payload = b'x' * (1 << 20)  # more than a socket buffer
                sender = asyncio.create_task(self.loop.sock_sendall(a, payload))
                received = bytearray()
                while len(received) < len(payload):
                    chunk = await self.loop.sock_recv(b, 65536)
                    self.assertTrue(chunk)
                    received += chunk
                await sender
                return bytes(received) == payload
            self.assertTrue(self.run_loop(main()))

    def test_sock_accept_and_connect(self):
        async def main():
            with socket.socket() as listener:
                listener.bind(('127.0.0.1', 0))
                listener.listen()
                listener.setblocking(False)
                with socket.socket() as client:
                    client.setblocking(False)
                    accept = asyncio.create_task(self.loop.sock_accept(listener))
                    await self.loop.sock_connect(client, listener.getsockname())
                    conn, _ = await accept
                    with conn:
                        await self.loop.sock_sendall(client, b'ping')
                        return await self.loop.sock_recv(conn, 4)
        self.assertEqual(self.run_loop(main()), b'ping')

    def test_open_connection_to_a_local_server(self):
        async def handle(reader, writer):
            line = await reader.readline()
            writer.write(line.upper())
            await writer.drain()
            writer.close()
            await writer.wait_closed()

        async def main():
            server = await asyncio.start_server(handle, '127.0.0.1', 0)
            async with server:
                port = server.sockets[0].getsockname()[1]
                replies = []
                for word in (b'one\n', b'two\n'):
                    reader, writer = await asyncio.open_connection('127.0.0.1', port)
                    writer.write(word)
                    await writer.drain()
                    replies.append(await reader.read())
                    writer.close()
                    await writer.wait_closed()
                return replies
        self.assertEqual(self.run_loop(main()), [b'ONE\n', b'TWO\n'])

    def test_unix_socket_server(self):
        path = os.path.join(GLib.get_tmp_dir(), 'afut-asyncio-%d.sock' % os.getpid())

        async def handle(reader, writer):
            writer.write(await reader.read(5))
            writer.close()

        async def main():
            server = await asyncio.start_unix_server(handle, path)
            async with server:
                reader, writer = await asyncio.open_unix_connection(path)
                writer.write(b'hello')
                data = await reader.read()
                writer.close()
                await writer.wait_closed()
                return data
        try:
            self.assertEqual(self.run_loop(main()), b'hello')
        finally:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(path)


class TestAsyncioLibrary(IOTestCase):
    """An asyncio library as it is: aiohttp's server and client
    (python3-aiohttp, which scripts/install-deps.sh installs)."""

    def setUp(self):
        try:
            importlib.import_module('aiohttp.web')
        except ImportError:
            self.skipTest('python3-aiohttp is not installed')
        super().setUp()

    def test_aiohttp_server_and_client(self):
        import aiohttp
        from aiohttp import web

        async def hello(request):
            await asyncio.sleep(0)
            return web.json_response({'hello': request.match_info['name'],
                                      'loop': type(asyncio.get_running_loop()).__name__})

        async def main():
            app = web.Application()
            app.router.add_get('/hello/{name}', hello)
            runner = web.AppRunner(app)
            await runner.setup()
            site = web.TCPSite(runner, '127.0.0.1', 0)
            await site.start()
            port = runner.addresses[0][1]
            try:
                async with aiohttp.ClientSession() as session:
                    async with session.get('http://127.0.0.1:%d/hello/afut' % port) as reply:
                        return reply.status, await reply.json()
            finally:
                await runner.cleanup()
        self.assertEqual(self.run_loop(main()),
                         (200, {'hello': 'afut', 'loop': 'EventLoop'}))


class TestSubprocess(IOTestCase):

    def test_communicate(self):
        async def main():
            proc = await asyncio.create_subprocess_exec(
                'cat', stdin=subprocess.PIPE, stdout=subprocess.PIPE)
            out, err = await proc.communicate(b'through cat\n')
            return out, err, proc.returncode
        self.assertEqual(self.run_loop(main()), (b'through cat\n', None, 0))

    def test_exit_status_and_stderr(self):
        async def main():
            proc = await asyncio.create_subprocess_exec(
                sys.executable, '-c',
                'import sys; sys.stderr.write("oops"); sys.exit(3)',
                stderr=subprocess.PIPE)
            _, err = await proc.communicate()
            return err, proc.returncode
        self.assertEqual(self.run_loop(main()), (b'oops', 3))

    def test_shell_and_kill(self):
        async def main():
            proc = await asyncio.create_subprocess_shell(
                'read line', stdin=subprocess.PIPE)
            proc.kill()
            return await proc.wait()
        self.assertEqual(self.run_loop(main()), -signal.SIGKILL)

    def test_stdout_lines(self):
        async def main():
            proc = await asyncio.create_subprocess_exec(
                'printf', 'a\\nb\\nc\\n', stdout=subprocess.PIPE)
            lines = [line async for line in proc.stdout]
            await proc.wait()
            return lines
        self.assertEqual(self.run_loop(main()), [b'a\n', b'b\n', b'c\n'])


class TestCancellation(LoopTestCase):

    def test_cancel_a_sleeping_task_with_a_message(self):
        async def sleeper():
            await asyncio.sleep(10)

        async def main():
            task = asyncio.create_task(sleeper())
            await asyncio.sleep(1)
            task.cancel('enough')
            try:
                await task
            except asyncio.CancelledError as exc:
                return task.cancelled(), exc.args
        self.assertEqual(self.run_loop(main()), (True, ('enough',)))

    def test_task_cleans_up_after_cancel(self):
        order = []

        async def worker():
            try:
                await asyncio.sleep(10)
            except asyncio.CancelledError:
                order.append('cleanup')
                await asyncio.sleep(1)
                order.append('cleaned')
                raise

        async def main():
            task = asyncio.create_task(worker())
            await asyncio.sleep(0)
            task.cancel()
            with self.assertRaises(asyncio.CancelledError):
                await task
            order.append('awaited')
        self.run_loop(main())
        self.assertEqual(order, ['cleanup', 'cleaned', 'awaited'])

    def test_wait_for_times_out(self):
        async def main():
            start = self.loop.time()
            with self.assertRaises(asyncio.TimeoutError):
                await asyncio.wait_for(asyncio.sleep(10), 2)
            return self.loop.time() - start
        self.assertEqual(self.run_loop(main()), 2)

    def test_cancelling_a_wait_for_cancels_its_inner_task(self):
        inner_cancelled = []

        async def inner():
            try:
                await asyncio.sleep(10)
            except asyncio.CancelledError:
                inner_cancelled.append(True)
                raise

        async def main():
            waiter = asyncio.create_task(asyncio.wait_for(inner(), 5))
            await asyncio.sleep(1)
            waiter.cancel()
            with self.assertRaises(asyncio.CancelledError):
                await waiter
        self.run_loop(main())
        self.assertEqual(inner_cancelled, [True])

    def test_shield(self):
        async def work():
            await asyncio.sleep(2)
            return 'done'

        async def main():
            inner = asyncio.create_task(work())
            outer = asyncio.create_task(asyncio.wait_for(asyncio.shield(inner), 1))
            with self.assertRaises(asyncio.TimeoutError):
                await outer
            return await inner
        self.assertEqual(self.run_loop(main()), 'done')

    def test_timeout_context(self):
        async def main():
            with self.assertRaises(TimeoutError):
                async with asyncio.timeout(1):
                    await asyncio.sleep(5)
            return self.loop.time()
        start = self.loop.time()
        self.assertEqual(self.run_loop(main()) - start, 1)


class TestTaskGroupAndSync(LoopTestCase):

    def test_task_group_cancels_siblings_on_error(self):
        order = []

        async def fails():
            await asyncio.sleep(1)
            raise ValueError('boom')

        async def sibling():
            try:
                await asyncio.sleep(10)
            except asyncio.CancelledError:
                order.append('sibling cancelled')
                raise

        async def main():
            try:
                async with asyncio.TaskGroup() as group:
                    group.create_task(fails())
                    group.create_task(sibling())
            except ExceptionGroup as eg:
                return [type(e).__name__ for e in eg.exceptions]
        self.assertEqual(self.run_loop(main()), ['ValueError'])
        self.assertEqual(order, ['sibling cancelled'])

    def test_task_group_results(self):
        async def square(n):
            await asyncio.sleep(n)
            return n * n

        async def main():
            async with asyncio.TaskGroup() as group:
                tasks = [group.create_task(square(n)) for n in (3, 1, 2)]
            return [t.result() for t in tasks]
        self.assertEqual(self.run_loop(main()), [9, 1, 4])

    def test_event_and_queue(self):
        async def producer(queue, event):
            await event.wait()
            for i in range(3):
                await queue.put(i)
                await asyncio.sleep(1)
            await queue.put(None)

        async def main():
            queue, event = asyncio.Queue(maxsize=1), asyncio.Event()
            task = asyncio.create_task(producer(queue, event))
            self.loop.call_later(1, event.set)
            items = []
            while (item := await queue.get()) is not None:
                items.append(item)
            await task
            return items
        self.assertEqual(self.run_loop(main()), [0, 1, 2])

    def test_async_generators_are_finalized(self):
        closed = []

        async def agen():
            try:
                yield 1
                yield 2
            finally:
                closed.append(True)

        async def main():
            async for value in agen():
                return value
        self.assertEqual(self.run_loop(main()), 1)
        self.run_loop(self.loop.shutdown_asyncgens())
        self.assertEqual(closed, [True])


class TestThreads(IOTestCase):

    def test_to_thread(self):
        async def main():
            return await asyncio.to_thread(threading.get_ident)
        self.assertNotEqual(self.run_loop(main()), threading.get_ident())

    def test_run_in_executor(self):
        async def main():
            return await self.loop.run_in_executor(None, sum, [1, 2, 3])
        self.assertEqual(self.run_loop(main()), 6)
        self.run_loop(self.loop.shutdown_default_executor())

    def test_call_soon_threadsafe_wakes_a_waiting_loop(self):
        # Nothing on the loop but a pending future: GLib's poll waits with
        # no timeout, and only the self-pipe can wake it.
        future = self.loop.create_future()
        started = threading.Event()

        def thread():
            started.wait()
            self.loop.call_soon_threadsafe(future.set_result, 'from thread')
        worker = threading.Thread(target=thread)
        worker.start()
        self.loop.call_soon(started.set)
        self.assertEqual(self.run_loop(future), 'from thread')
        worker.join()

    def test_call_soon_threadsafe_from_many_threads(self):
        n_threads, n_calls = 8, 500
        count = [0]
        done = self.loop.create_future()

        def add():
            count[0] += 1
            if count[0] == n_threads * n_calls:
                done.set_result(count[0])

        def thread():
            for _ in range(n_calls):
                self.loop.call_soon_threadsafe(add)
        workers = [threading.Thread(target=thread) for _ in range(n_threads)]
        for worker in workers:
            worker.start()
        self.assertEqual(self.run_loop(done), n_threads * n_calls)
        for worker in workers:
            worker.join()

    def test_asyncio_run_in_a_thread_gets_its_own_context(self):
        result = []

        def thread():
            async def main():
                loop = asyncio.get_running_loop()
                await asyncio.sleep(0)
                return (type(loop), loop.context == GLib.MainContext.default(),
                        GLib.MainContext.get_thread_default() == loop.context)
            result.append(asyncio.run(main()))
        worker = threading.Thread(target=thread)
        worker.start()
        worker.join()
        self.assertEqual(result, [(EventLoop, False, True)])

    def test_context_owned_by_another_thread(self):
        context = GLib.MainContext()
        acquired, release = threading.Event(), threading.Event()

        def owner():
            context.acquire()
            acquired.set()
            release.wait()
            context.release()
        worker = threading.Thread(target=owner)
        worker.start()
        acquired.wait()
        loop = EventLoop(context)
        try:
            with self.assertRaises(RuntimeError):
                loop.run_until_complete(asyncio.sleep(0))
        finally:
            release.set()
            worker.join()
        self.assertEqual(loop.run_until_complete(asyncio.sleep(0, 'ok')), 'ok')
        loop.close()


class TestSignals(IOTestCase):
    default_context = True

    def test_add_signal_handler(self):
        seen = []

        def on_signal(name):
            seen.append(name)
            self.loop.stop()
        self.loop.add_signal_handler(signal.SIGUSR1, on_signal, 'usr1')
        try:
            self.loop.call_soon(os.kill, os.getpid(), signal.SIGUSR1)
            self.loop.run_forever()
        finally:
            self.assertTrue(self.loop.remove_signal_handler(signal.SIGUSR1))
        self.assertEqual(seen, ['usr1'])
        self.assertIs(signal.getsignal(signal.SIGUSR1), signal.SIG_DFL)

    def test_ctrl_c_cancels_asyncio_run(self):
        # asyncio.run()'s SIGINT handler, while GLib's poll waits: the
        # main task is cancelled and KeyboardInterrupt ends the program,
        # as with CPython's loop.
        program = ('import asyncio\n'
                   'async def main():\n'
                   '    print("ready", flush=True)\n'
                   '    try:\n'
                   '        await asyncio.sleep(3600)\n'
                   '    except asyncio.CancelledError:\n'
                   '        print("cancelled", flush=True)\n'
                   '        raise\n'
                   'asyncio.run(main())\n')
        env = dict(os.environ)
        env.pop('AFUT_CLOCK', None)   # a real hour: only the signal ends it
        child = subprocess.Popen(
            [sys.executable, '-m', 'afut_asyncio_run', '-c', program], env=env,
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
        self.assertEqual(child.stdout.readline(), 'ready\n')
        child.send_signal(signal.SIGINT)
        out, err = child.communicate()
        self.assertEqual(out, 'cancelled\n')
        self.assertIn('KeyboardInterrupt', err)
        self.assertEqual(child.returncode, -signal.SIGINT)

    def test_signal_under_a_glib_main_loop(self):
        # PyGObject's GLib.MainLoop.run() puts its own wakeup fd in place
        # of asyncio's; the handler still runs.
        seen = []
        main_loop = GLib.MainLoop.new(self.loop.context, False)
        self.loop.add_signal_handler(signal.SIGUSR2, lambda: (seen.append('usr2'),
                                                              self.loop.stop()))
        try:
            with self.loop.running(main_loop.quit):
                self.loop.call_soon(os.kill, os.getpid(), signal.SIGUSR2)
                main_loop.run()
        finally:
            self.loop.remove_signal_handler(signal.SIGUSR2)
        self.assertEqual(seen, ['usr2'])


class TestGLibMainLoop(LoopTestCase):
    """GTK's case: a GLib main loop iterates the context, asyncio runs on
    it through running(), GLib sources run in between."""

    default_context = True

    def test_asyncio_and_glib_sources_alternate(self):
        log = []
        main_loop = GLib.MainLoop.new(self.loop.context, False)

        async def main():
            for i in range(3):
                future = self.loop.create_future()

                def from_glib(i=i, future=future):
                    log.append('glib %d' % i)
                    future.set_result(i)
                    return GLib.SOURCE_REMOVE
                GLib.timeout_add(0, from_glib)
                log.append('asyncio %d' % i)
                self.assertEqual(await future, i)
            self.loop.stop()

        with self.loop.running(main_loop.quit):
            self.assertTrue(self.loop.is_running())
            task = self.loop.create_task(main())
            main_loop.run()
        self.assertFalse(self.loop.is_running())
        self.assertTrue(task.done())
        self.assertEqual(log, ['asyncio 0', 'glib 0', 'asyncio 1', 'glib 1',
                               'asyncio 2', 'glib 2'])

    def test_redraw_priority_runs_while_asyncio_waits(self):
        # GTK draws at G_PRIORITY_HIGH_IDLE + 20.  It runs whenever asyncio
        # has nothing ready, also while a virtual clock waits to jump.
        main_loop = GLib.MainLoop.new(self.loop.context, False)
        log = []

        def draw():
            log.append('draw')
            return GLib.SOURCE_REMOVE

        async def main():
            for i in range(3):
                GLib.idle_add(draw, priority=GLib.PRIORITY_HIGH_IDLE + 20)
                log.append('sleep')
                await asyncio.sleep(1)
            main_loop.quit()

        with self.loop.running():
            self.loop.create_task(main())
            main_loop.run()
        self.assertEqual(log, ['sleep', 'draw'] * 3)

    def test_create_task_from_a_glib_callback(self):
        main_loop = GLib.MainLoop.new(self.loop.context, False)
        results = []

        async def job():
            await asyncio.sleep(1)
            results.append(asyncio.get_running_loop())
            main_loop.quit()

        def clicked():
            # A GTK signal handler: no await, a task.
            asyncio.create_task(job())
            return GLib.SOURCE_REMOVE

        with self.loop.running():
            GLib.idle_add(clicked)
            main_loop.run()
        self.assertEqual(results, [self.loop])

    def test_exception_out_of_a_callback_quits_and_is_raised(self):
        main_loop = GLib.MainLoop.new(self.loop.context, False)

        def interrupt():
            raise KeyboardInterrupt
        with self.assertRaises(KeyboardInterrupt):
            with self.loop.running(main_loop.quit):
                self.loop.call_soon(interrupt)
                main_loop.run()
        self.assertFalse(self.loop.is_running())

    def test_running_twice_is_an_error(self):
        with self.loop.running():
            with self.assertRaises(RuntimeError):
                with self.loop.running():
                    pass
            with self.assertRaises(RuntimeError):
                self.loop.close()
            self.assertTrue(self.loop.is_running())
        self.assertFalse(self.loop.is_running())

    def test_running_without_quit_func_ignores_stop(self):
        # stop() has nothing to quit: the loop stays on the context.
        main_loop = GLib.MainLoop.new(self.loop.context, False)
        log = []

        async def main():
            self.loop.stop()
            await asyncio.sleep(1)
            log.append('still running')
            main_loop.quit()
        with self.loop.running():
            self.loop.create_task(main())
            main_loop.run()
        self.assertEqual(log, ['still running'])

    def test_asyncio_run_inside_running_is_an_error(self):
        coro = asyncio.sleep(0)
        with self.loop.running():
            with self.assertRaises(RuntimeError):
                asyncio.run(coro)
            with self.assertRaises(RuntimeError):
                self.loop.run_forever()
        coro.close()


class TestPolicy(unittest.TestCase):

    def test_install_is_idempotent(self):
        policy = Afut.install()
        self.assertIsInstance(policy, Afut.EventLoopPolicy)
        self.assertIs(Afut.install(), policy)
        self.assertIs(asyncio.get_event_loop_policy(), policy)

    def test_asyncio_run_uses_the_default_context(self):
        Afut.install()

        async def main():
            loop = asyncio.get_running_loop()
            return type(loop), loop.context == GLib.MainContext.default()
        self.assertEqual(asyncio.run(main()), (EventLoop, True))

    def test_runner_with_a_loop_factory_needs_no_policy(self):
        async def main():
            await asyncio.sleep(60)
            return type(asyncio.get_running_loop()), asyncio.get_running_loop().time()
        with asyncio.Runner(loop_factory=lambda: EventLoop(virtual_clock=True)) as runner:
            self.assertEqual(runner.run(main()), (EventLoop, 60))

    def test_virtual_clock_from_the_environment(self):
        Afut.install()
        old = os.environ.get('AFUT_CLOCK')
        try:
            os.environ['AFUT_CLOCK'] = 'virtual'
            loop = asyncio.new_event_loop()
            self.assertIn('virtual_clock=True', repr(loop))
            loop.close()
            os.environ['AFUT_CLOCK'] = 'real'
            loop = asyncio.new_event_loop()
            self.assertIn('virtual_clock=False', repr(loop))
            loop.close()
        finally:
            if old is None:
                del os.environ['AFUT_CLOCK']
            else:
                os.environ['AFUT_CLOCK'] = old

    def test_runner_runs_a_program_on_afut(self):
        program = ('import asyncio, sys\n'
                   'async def main():\n'
                   '    print(type(asyncio.get_running_loop()).__name__, sys.argv[1:])\n'
                   'asyncio.run(main())\n')
        path = os.path.join(GLib.get_tmp_dir(), 'afut-runner-%d.py' % os.getpid())
        with open(path, 'w') as f:
            f.write(program)
        try:
            out = subprocess.run([sys.executable, '-m', 'afut_asyncio_run', path, 'x'],
                                 capture_output=True, text=True, check=True).stdout
        finally:
            os.unlink(path)
        self.assertEqual(out, "EventLoop ['x']\n")



def new_afut_future():
    """A plain afut future of this thread's afut loop."""
    return Afut.Future.new(Afut.get_event_loop())


def afut_later(func, *args):
    """Calls func(*args) from an afut task, after one afut turn."""
    async def later():
        await Afut.sleep(0)
        func(*args)
    return Afut.create_task(later())


class InteropTestCase(LoopTestCase):
    """asyncio and afut on one context.  afut's own loop is made on first
    use (with AFUT_CLOCK=virtual, a virtual clock that jumps as soon as
    afut has nothing ready), so the order between the two sides is made
    by futures and events here, not by sleeps."""

    default_context = True

    def tearDown(self):
        super().tearDown()
        if Afut.is_attached():
            Afut.detach()


class TestAsyncioAwaitsAfut(InteropTestCase):

    def test_an_afut_future(self):
        async def main():
            future = new_afut_future()
            afut_later(future.set_result, 'from afut')
            return await future
        self.assertEqual(self.run_loop(main()), 'from afut')

    def test_afut_sleep_and_an_afut_task(self):
        async def afut_side():
            await Afut.sleep(1)
            return 'afut task'

        async def main():
            await Afut.sleep(1)
            return await Afut.create_task(afut_side())
        self.assertEqual(self.run_loop(main()), 'afut task')

    def test_the_same_exception_object(self):
        error = ValueError('the same object')

        async def afut_side():
            await Afut.sleep(0)
            raise error

        async def main():
            try:
                await Afut.create_task(afut_side())
            except ValueError as exc:
                return exc
        self.assertIs(self.run_loop(main()), error)

    def test_cancelling_the_asyncio_task_cancels_the_afut_future(self):
        future = new_afut_future()

        async def waiter():
            await future

        async def main():
            task = asyncio.create_task(waiter())
            await asyncio.sleep(0)
            task.cancel('bye')
            with self.assertRaises(asyncio.CancelledError) as caught:
                await task
            return future.cancelled(), task.cancelled(), caught.exception.args
        self.assertEqual(self.run_loop(main()), (True, True, ('bye',)))

    def test_cancel_resumes_after_the_afut_task_cleaned_up(self):
        log = []
        never = new_afut_future()

        async def afut_worker(started):
            started.set()
            try:
                await never
            except asyncio.CancelledError:
                log.append('afut cleanup')
                await Afut.sleep(0)
                await Afut.sleep(0)
                log.append('afut cleaned')
                raise

        async def asyncio_side(afut_task):
            try:
                await afut_task
            except asyncio.CancelledError:
                log.append('asyncio resumed')
                raise

        async def main():
            started = asyncio.Event()
            afut_task = Afut.create_task(afut_worker(started))
            task = asyncio.create_task(asyncio_side(afut_task))
            await started.wait()
            await asyncio.sleep(0)
            task.cancel()
            with self.assertRaises(asyncio.CancelledError):
                await task
            return afut_task.cancelled()
        self.assertTrue(self.run_loop(main()))
        self.assertEqual(log, ['afut cleanup', 'afut cleaned', 'asyncio resumed'])
        never.cancel()

    def test_an_afut_future_cancelled_on_its_side(self):
        future = new_afut_future()

        async def main():
            afut_later(future.cancel, 'afut side')
            try:
                await future
            except asyncio.CancelledError as exc:
                return exc.args
        self.assertEqual(self.run_loop(main()), ('afut side',))

    def test_an_afut_task_that_swallows_the_cancel(self):
        async def afut_side(started):
            started.set()
            try:
                await new_afut_future()
            except asyncio.CancelledError:
                return 'swallowed'

        async def asyncio_side(afut_task):
            return await afut_task

        async def main():
            started = asyncio.Event()
            afut_task = Afut.create_task(afut_side(started))
            task = asyncio.create_task(asyncio_side(afut_task))
            await started.wait()
            await asyncio.sleep(0)
            task.cancel()
            # As with an asyncio task that swallows it: the awaiter gets
            # the value, and is not cancelled.
            return await task, task.cancelling()
        self.assertEqual(self.run_loop(main()), ('swallowed', 1))

    def test_asyncio_combinators_take_afut_futures(self):
        async def main():
            results = await asyncio.gather(Afut.sleep(1), asyncio.sleep(1, 'asyncio'))
            pending = new_afut_future()
            with self.assertRaises(TimeoutError):
                await asyncio.wait_for(pending, 1)
            return results, pending.cancelled()
        self.assertEqual(self.run_loop(main()), ([None, 'asyncio'], True))

    def test_a_stock_asyncio_loop_refuses_afut_futures(self):
        # It never iterates GLib: a clear error, not a hang.
        stock = asyncio.SelectorEventLoop()
        future = new_afut_future()

        async def main():
            await future
        try:
            with self.assertRaises(RuntimeError):
                stock.run_until_complete(main())
        finally:
            stock.close()
            future.cancel()


class TestAfutAwaitsAsyncio(InteropTestCase):

    def test_under_a_glib_main_loop(self):
        # A GTK app: GTK's loop iterates the context for both.
        main_loop = GLib.MainLoop.new(self.loop.context, False)

        async def afut_side():
            await asyncio.sleep(1)
            await Afut.sleep(1)
            return 'afut'

        async def main():
            try:
                return await Afut.create_task(afut_side())
            finally:
                main_loop.quit()
        with self.loop.running():
            task = self.loop.create_task(main())
            main_loop.run()
        self.assertEqual(task.result(), 'afut')

    def test_asyncio_futures_tasks_and_sleep(self):
        async def afut_side():
            loop = asyncio.get_running_loop()
            await asyncio.sleep(1)
            future = loop.create_future()
            loop.call_soon(future.set_result, 'asyncio future')
            task = asyncio.create_task(asyncio.sleep(0, 'asyncio task'))
            return await future, await task

        async def main():
            return await Afut.create_task(afut_side())
        self.assertEqual(self.run_loop(main()), ('asyncio future', 'asyncio task'))

    def test_an_asyncio_exception_object(self):
        error = KeyError('asyncio side')

        async def asyncio_side():
            await asyncio.sleep(0)
            raise error

        async def afut_side():
            try:
                await asyncio.create_task(asyncio_side())
            except KeyError as exc:
                return exc

        async def main():
            return await Afut.create_task(afut_side())
        self.assertIs(self.run_loop(main()), error)

    def test_cancelling_the_afut_task_cancels_the_asyncio_task(self):
        log = []

        async def asyncio_worker(started):
            started.set()
            try:
                await asyncio.sleep(3600)
            except asyncio.CancelledError as exc:
                log.append(('asyncio cleanup', exc.args))
                await asyncio.sleep(0)
                log.append('asyncio cleaned')
                raise

        async def afut_side(started):
            try:
                await asyncio.create_task(asyncio_worker(started))
            except asyncio.CancelledError:
                log.append('afut resumed')
                raise

        async def main():
            started = asyncio.Event()
            afut_task = Afut.create_task(afut_side(started))
            await started.wait()
            afut_task.cancel('stop')
            with self.assertRaises(asyncio.CancelledError):
                await afut_task
            return afut_task.cancelled()
        self.assertTrue(self.run_loop(main()))
        self.assertEqual(log, [('asyncio cleanup', ('stop',)), 'asyncio cleaned',
                               'afut resumed'])

    def test_afut_combinators_take_asyncio_futures(self):
        async def main():
            loop = asyncio.get_running_loop()
            task = asyncio.create_task(asyncio.sleep(1, 'asyncio task'))
            future = loop.create_future()
            loop.call_later(2, future.set_result, 'asyncio future')
            results = await Afut.gather(task, future, Afut.sleep(1))
            slow = asyncio.create_task(asyncio.sleep(3600))
            with self.assertRaises(TimeoutError):
                await Afut.wait_for(slow, 1)
            return results, slow.cancelled()
        self.assertEqual(self.run_loop(main()),
                         (['asyncio task', 'asyncio future', None], True))

    def test_a_future_of_a_loop_not_running_here_is_a_bad_yield(self):
        stock = asyncio.SelectorEventLoop()
        future = stock.create_future()

        async def afut_side():
            await future
        try:
            with self.assertRaisesRegex(RuntimeError, 'bad yield'):
                Afut.run_until_complete(Afut.create_task(afut_side()))
        finally:
            stock.close()


class TestAfutRun(unittest.TestCase):
    """Afut.run() after Afut.install(): its tasks can use asyncio."""

    def setUp(self):
        Afut.install()

    def tearDown(self):
        if Afut.is_attached():
            Afut.detach()

    def test_asyncio_task_group_inside_an_afut_task(self):
        async def child(n):
            await asyncio.sleep(n)
            return n

        async def main():
            self.assertIsInstance(asyncio.current_task(), Afut.Future)
            async with asyncio.TaskGroup() as group:
                tasks = [group.create_task(child(n)) for n in (2, 1)]
            return [t.result() for t in tasks]
        self.assertEqual(Afut.run(main()), [2, 1])

    def test_asyncio_task_group_error_inside_an_afut_task(self):
        # The group cancels its parent, the afut task, and counts the
        # cancel as CPython's does with its own task (3.11 leaves one).
        async def fails():
            await asyncio.sleep(0)
            raise ValueError('child')

        async def sibling():
            await asyncio.sleep(3600)

        async def main():
            try:
                async with asyncio.TaskGroup() as group:
                    group.create_task(fails())
                    group.create_task(sibling())
            except ExceptionGroup as eg:
                errors = [str(e) for e in eg.exceptions]
            await asyncio.sleep(0)
            return errors, asyncio.current_task().cancelling()
        with asyncio.Runner(loop_factory=asyncio.SelectorEventLoop) as runner:
            on_cpython = runner.run(main())
        self.assertEqual(on_cpython[0], ['child'])
        self.assertEqual(Afut.run(main()), on_cpython)

    def test_asyncio_timeout_inside_an_afut_task(self):
        async def main():
            with self.assertRaises(TimeoutError):
                async with asyncio.timeout(1):
                    await asyncio.sleep(10)
            await asyncio.sleep(0)
            return asyncio.current_task().cancelling()
        self.assertEqual(Afut.run(main()), 0)

    def test_asyncio_inside_afut_run(self):
        async def main():
            loop = asyncio.get_running_loop()
            await asyncio.sleep(1)
            event = asyncio.Event()
            loop.call_soon(event.set)
            await event.wait()
            queue = asyncio.Queue()
            await queue.put('queued')
            async with asyncio.TaskGroup() as group:
                task = group.create_task(asyncio.sleep(0, 'grouped'))
            in_thread = await asyncio.to_thread(lambda: 'threaded')
            return type(loop), await queue.get(), task.result(), in_thread
        self.assertEqual(Afut.run(main()), (EventLoop, 'queued', 'grouped', 'threaded'))
        with self.assertRaises(RuntimeError):
            asyncio.get_running_loop()

    def test_asyncio_tasks_left_are_cancelled(self):
        log = []

        async def forever(started):
            started.set()
            try:
                await asyncio.sleep(3600)
            except asyncio.CancelledError:
                log.append('cancelled')
                raise

        async def main():
            started = asyncio.Event()
            asyncio.create_task(forever(started))
            await started.wait()
        Afut.run(main())
        self.assertEqual(log, ['cancelled'])

    def test_afut_run_inside_asyncio_run_is_an_error(self):
        async def main():
            coro = Afut.sleep(0)
            with self.assertRaises(RuntimeError):
                Afut.run(coro)
            return 'refused'
        self.assertEqual(asyncio.run(main()), 'refused')


if __name__ == '__main__':
    unittest.main(verbosity=2)
