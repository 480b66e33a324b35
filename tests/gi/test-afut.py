#!/usr/bin/python3
"""The Afut typelib from PyGObject: every introspected function, errors and
cancellation crossing the binding, and the Python overrides (awaitable
futures, tasks, gather of coroutines, wait_for, shield, timeout, run).

Run by `meson test --suite gi` with GI_TYPELIB_PATH, LD_LIBRARY_PATH and
PYTHONPATH (for gi/overrides/Afut.py) pointing at the build and source
trees.  Each test has its own virtual-clock loop: sleeps take no time.
"""

import asyncio
import gc
import io
import sys
import unittest
from contextlib import redirect_stderr

import gi

gi.require_version('Afut', '1')
from gi.repository import Afut, GLib  # noqa: E402

# The functions as introspected, under the overrides' Pythonic wrappers.
raw = Afut._introspection_module

CANCELLED = Afut.Error.CANCELLED


class CriticalCatcher:
    """Collects the "afut" domain's criticals instead of printing them."""

    def __init__(self):
        self.messages = []

    def __enter__(self):
        self.handler = GLib.log_set_handler(
            'afut', GLib.LogLevelFlags.LEVEL_CRITICAL,
            lambda domain, level, message, *data: self.messages.append(message))
        return self

    def __exit__(self, *exc):
        GLib.log_remove_handler('afut', self.handler)


class AfutTestCase(unittest.TestCase):

    def setUp(self):
        raw.attach(None, Afut.LoopFlags.VIRTUAL_CLOCK)

    def tearDown(self):
        Afut.detach()
        gc.collect()
        self.assertFalse(Afut.is_attached())

    def run_loop(self, aw):
        return Afut.run_until_complete(aw)

    def turn(self, n=1):
        for _ in range(n):
            raw.run_until_complete(Afut.sleep(0))


class TestLoop(AfutTestCase):

    def test_error_quark_is_afuts(self):
        self.assertEqual(Afut.error_quark(),
                         GLib.quark_from_string('afut-error-quark'))

    def test_attach_twice_is_an_error(self):
        self.assertTrue(Afut.is_attached())
        with self.assertRaises(GLib.Error) as cm:
            raw.attach(None, Afut.LoopFlags.NONE)
        self.assertTrue(cm.exception.matches(Afut.error_quark(),
                                             Afut.Error.INVALID_STATE))

    def test_detach_and_attach_on_first_use(self):
        Afut.detach()
        self.assertFalse(Afut.is_attached())
        Afut.detach()  # nothing to do
        fut = Afut.Future.new()  # makes a loop
        self.assertTrue(Afut.is_attached())
        fut.cancel()

    def test_context_is_the_default(self):
        self.assertEqual(Afut.get_context(), GLib.MainContext.default())

    def test_virtual_time(self):
        self.assertEqual(Afut.time(), 0.0)
        self.run_loop(Afut.sleep(2.5))
        self.assertEqual(Afut.time(), 2.5)

    def test_call_soon_is_fifo_and_not_inline(self):
        log = []
        self.assertTrue(Afut.call_soon(lambda: log.append('a')))
        Afut.call_soon(lambda data: log.append(data), 'b')
        self.assertEqual(log, [])
        self.turn()
        self.assertEqual(log, ['a', 'b'])

    def test_call_later(self):
        log = []
        handle = Afut.call_later(1.5, lambda: log.append(Afut.time()))
        cancelled = Afut.call_later(1.0, lambda: log.append('never'))
        self.assertTrue(cancelled.cancel())
        self.run_loop(handle)
        self.assertEqual(log, [1.5])
        self.assertTrue(cancelled.is_cancelled())

    def test_run_until_complete_inside_the_loop_is_an_error(self):
        errors = []

        def callback(future):
            try:
                raw.run_until_complete(Afut.sleep(1))
            except GLib.Error as e:
                errors.append(e)
        fut = Afut.sleep(0)
        fut.add_done_callback(callback)
        self.run_loop(fut)
        self.turn()
        self.assertEqual(len(errors), 1)
        self.assertTrue(errors[0].matches(Afut.error_quark(),
                                          Afut.Error.INVALID_STATE))

    def test_run_until_complete_gives_the_value_or_raises(self):
        fut = Afut.Future.new()
        Afut.call_soon(lambda: fut.resolve('v'))
        self.assertEqual(raw.run_until_complete(fut), 'v')
        bad = Afut.Future.new()
        Afut.call_soon(lambda: bad.fail(GLib.Error.new_literal(
            GLib.quark_from_string('my-domain'), 'boom', 3)))
        with self.assertRaises(GLib.Error) as cm:
            raw.run_until_complete(bad)
        self.assertEqual((cm.exception.domain, cm.exception.code,
                          cm.exception.message), ('my-domain', 3, 'boom'))


class TestFuture(AfutTestCase):

    def test_values_cross_as_gvalues(self):
        obj = object()
        for value in ['text', 42, 2.5, True, obj, [1, 'two'], None]:
            fut = Afut.Future.new()
            self.assertEqual(fut.get_state(), Afut.FutureState.PENDING)
            self.assertTrue(fut.resolve(value))
            self.assertEqual(fut.get_state(), Afut.FutureState.DONE)
            self.assertTrue(fut.is_done())
            self.assertFalse(fut.is_cancelled())
            self.assertIsNone(fut.get_error())
            if value is obj:
                self.assertIs(fut.get_value(), obj)
            else:
                self.assertEqual(fut.get_value(), value)

    def test_resolve_twice_is_reported_and_changes_nothing(self):
        fut = Afut.Future.new()
        fut.resolve('first')
        with CriticalCatcher() as c:
            self.assertFalse(fut.resolve('second'))
            self.assertFalse(fut.fail(GLib.Error.new_literal(
                Afut.error_quark(), 'x', Afut.Error.FAILED)))
        self.assertEqual(len(c.messages), 2)
        self.assertEqual(fut.get_value(), 'first')

    def test_pending_value_is_invalid_state(self):
        fut = Afut.Future.new()
        with self.assertRaises(GLib.Error) as cm:
            fut.get_value()
        self.assertTrue(cm.exception.matches(Afut.error_quark(),
                                             Afut.Error.INVALID_STATE))
        self.assertIsNone(fut.get_error())
        with self.assertRaises(asyncio.InvalidStateError):
            fut.exception()
        fut.cancel()

    def test_fail_crosses_as_gerror(self):
        fut = Afut.Future.new()
        error = GLib.Error.new_literal(GLib.quark_from_string('my-domain'),
                                       'boom', 7)
        self.assertTrue(fut.fail(error))
        self.assertEqual(fut.get_state(), Afut.FutureState.FAILED)
        got = fut.get_error()
        self.assertEqual((got.domain, got.code, got.message),
                         ('my-domain', 7, 'boom'))
        with self.assertRaises(GLib.Error) as cm:
            fut.get_value()
        self.assertEqual(cm.exception.message, 'boom')
        self.assertEqual(fut.exception().code, 7)

    def test_cancel_with_message(self):
        fut = Afut.Future.new()
        self.assertTrue(raw.Future.cancel(fut, 'stop'))
        self.assertFalse(fut.cancel('again'))
        self.assertEqual(fut.get_state(), Afut.FutureState.CANCELLED)
        self.assertTrue(fut.is_cancelled() and fut.cancelled() and fut.done())
        error = fut.get_error()
        self.assertTrue(error.matches(Afut.error_quark(), CANCELLED))
        self.assertEqual(error.message, 'stop')
        with self.assertRaises(asyncio.CancelledError) as cm:
            fut.result()
        self.assertEqual(cm.exception.args, ('stop',))

    def test_done_callbacks_run_later_in_order(self):
        log = []
        fut = Afut.Future.new()
        fut.add_done_callback(lambda f: log.append(('a', f.get_value())))
        fut.add_done_callback(lambda f, data: log.append((data, f == fut)), 'b')
        fut.resolve(1)
        self.assertEqual(log, [])  # never inside the completing call
        self.turn()
        self.assertEqual(log, [('a', 1), ('b', True)])
        fut.add_done_callback(lambda f: log.append('late'))  # done: queued
        self.assertEqual(len(log), 2)
        self.turn()
        self.assertEqual(log[-1], 'late')

    def test_a_raising_callback_does_not_break_the_loop(self):
        log = []

        def bad(future):
            raise ValueError('inside a callback')
        fut = Afut.Future.new()
        fut.add_done_callback(bad)
        fut.add_done_callback(lambda f: log.append('after'))
        Afut.call_soon(lambda: fut.resolve(None))
        stderr = io.StringIO()
        with redirect_stderr(stderr):
            self.run_loop(Afut.sleep(1))
            self.run_loop(Afut.sleep(1))
        self.assertEqual(log, ['after'])
        self.assertIn('ValueError: inside a callback', stderr.getvalue())
        self.assertEqual(Afut.time(), 2.0)

    def test_new_task_asks_its_cancel_func(self):
        asked = []
        fut = Afut.Future.new_task(
            lambda f, message: asked.append(message) or True)
        self.assertTrue(fut.cancel('please'))
        self.assertEqual(asked, ['please'])
        self.assertFalse(fut.is_done())  # a request: pending until completed
        fut.fail(GLib.Error.new_literal(Afut.error_quark(), 'please', CANCELLED))
        self.assertTrue(fut.is_cancelled())

    def test_new_task_refusing(self):
        fut = Afut.Future.new_task(lambda f, message: False)
        self.assertFalse(fut.cancel(None))
        self.assertTrue(fut.resolve(5))
        self.assertEqual(fut.get_value(), 5)

    def test_new_task_releases_its_closure_once_done(self):
        class Marker:
            pass
        marker = Marker()
        import weakref
        ref = weakref.ref(marker)
        fut = Afut.Future.new_task(lambda f, m, data: True, marker)
        del marker
        gc.collect()
        self.assertIsNotNone(ref())
        fut.resolve(None)
        self.turn()
        gc.collect()
        self.assertIsNone(ref())

    def test_items_of_a_future_that_is_no_gather(self):
        fut = Afut.Future.new()
        self.assertFalse(fut.is_gather())
        self.assertEqual(fut.get_items(), [])
        fut.cancel()


class TestCombinators(AfutTestCase):

    def test_sleep(self):
        fut = Afut.sleep(3)
        self.assertFalse(fut.is_done())
        self.assertIsNone(self.run_loop(fut))
        self.assertEqual(Afut.time(), 3.0)
        stopped = Afut.sleep(10)
        self.assertTrue(stopped.cancel())
        self.assertTrue(stopped.is_cancelled())

    def test_gather_in_input_order(self):
        a, b = Afut.sleep(2), Afut.Future.new()
        Afut.call_later(1, lambda: b.resolve('B'))
        gather = raw.gather([a, b, a])
        self.assertTrue(gather.is_gather())
        self.assertEqual(self.run_loop(gather), [None, 'B', None])
        items = gather.get_items()
        self.assertEqual(len(items), 3)
        self.assertEqual(items[0], items[2])
        self.assertEqual(items[1].get_value(), 'B')

    def test_gather_of_nothing_is_done(self):
        gather = raw.gather([])
        self.assertTrue(gather.is_done())
        self.assertEqual(gather.result(), [])

    def test_gather_fails_first_others_run_on(self):
        slow = Afut.sleep(5)
        bad = Afut.Future.new()
        Afut.call_later(1, lambda: bad.fail(GLib.Error.new_literal(
            GLib.quark_from_string('my-domain'), 'boom', 1)))
        gather = Afut.gather(slow, bad)
        with self.assertRaises(GLib.Error):
            self.run_loop(gather)
        self.assertEqual(Afut.time(), 1.0)
        self.assertFalse(slow.is_done())
        self.run_loop(slow)

    def test_gather_return_exceptions(self):
        ok = Afut.Future.new()
        ok.resolve('fine')
        bad = Afut.Future.new()
        bad.fail(GLib.Error.new_literal(GLib.quark_from_string('d'), 'boom', 2))
        off = Afut.Future.new()
        off.cancel('off')
        gather = raw.gather_return_exceptions([ok, bad, off])
        result = self.run_loop(gather)
        self.assertEqual(result[0], 'fine')
        self.assertIsInstance(result[1], GLib.Error)
        self.assertEqual(result[1].message, 'boom')
        self.assertIsInstance(result[2], asyncio.CancelledError)
        self.assertEqual(Afut.gather(ok, bad, return_exceptions=True).get_items()[1], bad)
        self.assertTrue(Afut.gather_return_exceptions(ok).is_gather())

    def test_cancelling_a_gather_cancels_its_children(self):
        children = [Afut.sleep(1), Afut.Future.new(), Afut.sleep(3)]
        gather = raw.gather(children)
        Afut.call_later(0.5, lambda: gather.cancel('enough'))
        with self.assertRaises(asyncio.CancelledError):
            self.run_loop(gather)
        self.assertTrue(all(c.is_cancelled() for c in children))

    def test_wait_for_in_time(self):
        fut = Afut.Future.new()
        Afut.call_later(1, lambda: fut.resolve('in time'))
        self.assertEqual(self.run_loop(raw.wait_for(fut, 2)), 'in time')
        again = Afut.Future.new()
        Afut.call_later(100, lambda: again.resolve('late but fine'))
        self.assertEqual(self.run_loop(raw.wait_for(again, float('inf'))),
                         'late but fine')

    def test_wait_for_times_out(self):
        inner = Afut.sleep(10)
        outer = raw.wait_for(inner, 1)
        with self.assertRaises(GLib.Error) as cm:
            raw.run_until_complete(outer)
        self.assertTrue(cm.exception.matches(Afut.error_quark(),
                                             Afut.Error.TIMEOUT))
        self.assertTrue(inner.is_cancelled())
        with self.assertRaises(TimeoutError):
            outer.result()

    def test_shield(self):
        inner = Afut.sleep(2)
        shield = raw.shield(inner)
        Afut.call_later(1, lambda: shield.cancel())
        with self.assertRaises(asyncio.CancelledError):
            self.run_loop(shield)
        self.assertFalse(inner.is_done())
        self.run_loop(inner)
        self.assertEqual(Afut.time(), 2.0)
        value = Afut.Future.new()
        Afut.call_soon(lambda: value.resolve('through'))
        self.assertEqual(self.run_loop(Afut.shield(value)), 'through')


class TestCoroutines(AfutTestCase):

    def test_await_and_return(self):
        async def add(a, b):
            await Afut.sleep(1)
            return a + b
        self.assertEqual(self.run_loop(add(1, 2)), 3)

    def test_tasks_interleave_and_gather_coroutines(self):
        log = []

        async def step(name, delay):
            log.append(f'{name} start')
            await Afut.sleep(delay)
            log.append(f'{name} end')
            return name

        async def main():
            return await Afut.gather(step('a', 2), step('b', 1))
        self.assertEqual(self.run_loop(main()), ['a', 'b'])
        self.assertEqual(log, ['a start', 'b start', 'b end', 'a end'])

    def test_python_exception_crosses_and_comes_back(self):
        boom = ValueError('boom')

        async def fails():
            await Afut.sleep(0)
            raise boom
        task = Afut.create_task(fails())
        with self.assertRaises(ValueError) as cm:
            self.run_loop(task)
        self.assertIs(cm.exception, boom)
        # What C and the other bindings see: a GError.
        with self.assertRaises(GLib.Error) as cm:
            raw.Future.get_value(task)
        self.assertTrue(cm.exception.matches(Afut.error_quark(),
                                             Afut.Error.FAILED))
        self.assertEqual(cm.exception.message, 'ValueError: boom')

    def test_gerror_raised_in_python_keeps_its_domain(self):
        async def fails():
            raise GLib.Error.new_literal(GLib.quark_from_string('d'), 'gio-ish', 4)
        with self.assertRaises(GLib.Error) as cm:
            self.run_loop(fails())
        self.assertEqual((cm.exception.domain, cm.exception.code), ('d', 4))

    def test_cancel_reaches_the_await_and_cleanup_can_await(self):
        log = []

        async def worker():
            try:
                await Afut.sleep(10)
            except asyncio.CancelledError as e:
                log.append(('cancelled', e.args))
                await Afut.sleep(1)
                log.append('cleaned up')
                raise

        async def main():
            task = Afut.create_task(worker())
            await Afut.sleep(1)
            task.cancel('bye')
            try:
                await task
            except asyncio.CancelledError as e:
                log.append(('main', e.args))
            return task
        task = self.run_loop(main())
        self.assertEqual(log, [('cancelled', ('bye',)), 'cleaned up',
                               ('main', ('bye',))])
        self.assertTrue(task.is_cancelled())
        self.assertEqual(Afut.time(), 2.0)

    def test_swallowed_cancellation(self):
        async def stubborn():
            try:
                await Afut.sleep(10)
            except asyncio.CancelledError:
                return 'kept going'
        task = Afut.create_task(stubborn())
        Afut.call_later(1, lambda: task.cancel())
        self.assertEqual(self.run_loop(task), 'kept going')

    def test_cancel_before_first_step(self):
        async def never():
            raise AssertionError('ran')
        task = Afut.create_task(never())
        task.cancel()
        with self.assertRaises(asyncio.CancelledError):
            self.run_loop(task)

    def test_gather_cancel_propagates_to_python_tasks(self):
        log = []

        async def child(name):
            try:
                await Afut.sleep(5)
            except asyncio.CancelledError:
                log.append(name)
                raise
        gather = Afut.gather(child('a'), child('b'))
        Afut.call_later(1, lambda: gather.cancel())
        with self.assertRaises(asyncio.CancelledError):
            self.run_loop(gather)
        self.assertEqual(log, ['a', 'b'])
        self.assertTrue(all(i.is_cancelled() for i in gather.get_items()))

    def test_wait_for_a_coroutine(self):
        log = []

        async def slow():
            try:
                await Afut.sleep(10)
            except asyncio.CancelledError:
                log.append('cancelled')
                raise

        async def main():
            try:
                await Afut.wait_for(slow(), 1)
            except TimeoutError:
                log.append('timeout')
            return await Afut.wait_for(Afut.sleep(1), None)
        self.run_loop(main())
        self.assertEqual(log, ['cancelled', 'timeout'])

    def test_shield_a_coroutine(self):
        async def inner():
            await Afut.sleep(2)
            return 'survived'

        async def main():
            task = Afut.create_task(inner())
            shield = Afut.shield(task)
            Afut.call_later(1, lambda: shield.cancel())
            try:
                await shield
            except asyncio.CancelledError:
                pass
            return await task
        self.assertEqual(self.run_loop(main()), 'survived')

    def test_timeout_scope(self):
        async def main():
            self.assertIsNotNone(Afut.current_task())
            try:
                async with Afut.timeout(1) as scope:
                    await Afut.sleep(10)
            except TimeoutError:
                return ('timed out', scope.expired(), Afut.time())
        self.assertEqual(self.run_loop(main()), ('timed out', True, 1.0))
        self.assertIsNone(Afut.current_task())

    def test_bare_yield_and_bad_yield(self):
        class Yield:
            def __await__(self):
                yield

        class Bad:
            def __await__(self):
                yield 'not a future'

        async def polite():
            await Yield()
            return 'yielded'

        async def rude():
            await Bad()
        self.assertEqual(self.run_loop(polite()), 'yielded')
        with self.assertRaises(RuntimeError):
            self.run_loop(rude())

    def test_ensure_future(self):
        fut = Afut.Future.new()
        self.assertIs(Afut.ensure_future(fut), fut)
        with self.assertRaises(TypeError):
            Afut.ensure_future(42)
        fut.set_result('x')
        self.assertEqual(fut.result(), 'x')
        other = Afut.Future.new()
        other.set_exception(KeyError('k'))
        self.assertIsInstance(other.exception(), GLib.Error)

    def test_run(self):
        Afut.detach()

        async def forever():
            await Afut.sleep(100)

        async def main():
            Afut.create_task(forever())  # left over: cancelled by run()
            await Afut.sleep(1)
            return 'ran'
        self.assertEqual(Afut.run(main()), 'ran')
        self.assertFalse(Afut.is_attached())

        async def nested():
            Afut.run(Afut.sleep(1))
        with self.assertRaises(RuntimeError):
            Afut.run(nested())
        raw.attach(None, Afut.LoopFlags.VIRTUAL_CLOCK)  # for tearDown


if __name__ == '__main__':
    unittest.main(verbosity=2)
