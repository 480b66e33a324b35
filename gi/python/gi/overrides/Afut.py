# PyGObject overrides for Afut (the afut-gi typelib): Python coroutines
# on afut futures, with asyncio's names and exceptions.
#
# SPDX-License-Identifier: MIT
#
#   from gi.repository import Afut
#
#   async def cook(order):
#       print(f"Started cooking {order}")
#       await Afut.sleep(2)
#       print(f"Finished {order}")
#       return order
#
#   async def main():
#       await Afut.gather(cook("Pasta"), cook("Pizza"))
#
#   Afut.run(main())
#
# An Afut.Future is awaitable; an `async def` coroutine runs as an afut
# task (Afut.create_task), driven from afut's ready queue on the GLib main
# context, so it mixes with C tasks, gathers, wait_for and shield, and a
# cancellation reaches it at its await as asyncio.CancelledError.  Errors:
# afut's cancellation is asyncio.CancelledError, its timeout TimeoutError,
# other GErrors stay GLib.Error; a Python exception that ends a task
# crosses to C as a GError (afut-error-quark, FAILED, "Type: message") and
# comes back to Python code as the original exception object.

import asyncio

from gi.repository import GLib

from ..module import get_introspection_module
from ..overrides import override

Afut = get_introspection_module('Afut')

__all__ = []

CancelledError = asyncio.CancelledError
TimeoutError = asyncio.TimeoutError  # the builtin TimeoutError since 3.11
__all__ += ['CancelledError', 'TimeoutError']

_ERROR = Afut.error_quark()

# Exceptions of Python tasks, by the task future (boxed futures hash and
# compare by pointer), with the GError message they crossed as, to give
# the original object back to Python code that awaits the future.  Run()
# clears it when its loop goes.
_py_errors = {}


def _gerror(code, message):
    return GLib.Error.new_literal(_ERROR, message or '', code)


def _to_gerror(exc):
    """A Python exception as the GError a future fails with."""
    if isinstance(exc, CancelledError):
        return _gerror(Afut.Error.CANCELLED, exc.args[0] if exc.args else '')
    if isinstance(exc, GLib.Error):
        return exc
    if isinstance(exc, TimeoutError):
        return _gerror(Afut.Error.TIMEOUT, str(exc))
    return _gerror(Afut.Error.FAILED, '%s: %s' % (type(exc).__name__, exc))


def _from_gerror(future, error):
    """A future's GError as the exception Python code sees."""
    if error.matches(_ERROR, Afut.Error.CANCELLED):
        return CancelledError(error.message) if error.message else CancelledError()
    if error.matches(_ERROR, Afut.Error.TIMEOUT):
        return TimeoutError(error.message)
    if error.matches(_ERROR, Afut.Error.FAILED):
        saved = _py_errors.get(future)
        if saved is not None and saved[0] == error.message:
            return saved[1]
    return error


class Future(Afut.Future):
    """asyncio.Future on afut: awaitable, with asyncio's method names."""

    def __await__(self):
        if not self.is_done():
            # An asyncio task on afut's EventLoop waits on an asyncio
            # future that mirrors this one (_afut_asyncio.py).
            waiter = _afut_asyncio._asyncio_waiter(self)
            if waiter is not None:
                return (yield from waiter)
            yield self
        return self.result()

    __iter__ = __await__

    def result(self):
        if self.is_gather() and self.get_state() == Afut.FutureState.DONE:
            return [item._slot() for item in self.get_items()]
        try:
            return self.get_value()
        except GLib.Error as error:
            raise _from_gerror(self, error) from None

    def _slot(self):
        # A gather's item: its value, or its error with return_exceptions.
        if self.get_state() == Afut.FutureState.DONE:
            return self.result()
        return _from_gerror(self, self.get_error())

    def exception(self):
        if self.is_cancelled():
            raise _from_gerror(self, self.get_error())
        if not self.is_done():
            raise asyncio.InvalidStateError('Exception is not set.')
        error = self.get_error()
        return None if error is None else _from_gerror(self, error)

    def done(self):
        return self.is_done()

    def cancelled(self):
        return self.is_cancelled()

    def cancel(self, msg=None):
        return Afut.Future.cancel(self, msg)

    def set_result(self, value):
        return self.resolve(value)

    def set_exception(self, exc):
        return self.fail(_to_gerror(exc))


Future = override(Future)
__all__.append('Future')


# ---- tasks: Python coroutines as afut futures ----

_tasks = set()
_current = None


class _Task:
    """Steps one coroutine, as asyncio.Task does, from afut's ready queue."""

    def __init__(self, coro):
        self.coro = coro
        self.waiting = None
        self.must_cancel = False
        self.cancel_message = None
        self.future = Future.new_task(self._cancel)
        _tasks.add(self)
        Afut.call_soon(self._step)

    def _cancel(self, future, message):
        # Task.cancel(): cancel what the coroutine awaits; if that refuses
        # (or there is nothing), throw the cancellation in at the next step.
        self.cancel_message = message
        if self.waiting is not None and self.waiting.cancel(message):
            return True
        self.must_cancel = True
        return True

    def _step(self, *unused):
        global _current
        coro, self.waiting = self.coro, None
        _current = self
        # asyncio.current_task() too, while asyncio's loop runs here.
        stepping = _afut_asyncio._enter_afut_step(self.future)
        try:
            if self.must_cancel:
                self.must_cancel = False
                msg = self.cancel_message
                result = coro.throw(CancelledError(msg) if msg else CancelledError())
            else:
                result = coro.send(None)
            # An asyncio future (on afut's EventLoop): its afut mirror.
            result = _afut_asyncio._afut_future_for(result)
        except StopIteration as stop:
            self._finish(stop.value, None)
        except (KeyboardInterrupt, SystemExit) as exc:
            self._finish(None, exc)
            raise
        except BaseException as exc:
            self._finish(None, exc)
        else:
            if isinstance(result, Afut.Future):
                self.waiting = result
                if self.must_cancel and result.cancel(self.cancel_message):
                    self.must_cancel = False
                result.add_done_callback(self._step)
            elif result is None:  # a bare yield: sleep(0)
                Afut.call_soon(self._step)
            else:
                coro.close()
                self._finish(None, RuntimeError('Task got bad yield: %r' % (result,)))
        finally:
            _current = None
            _afut_asyncio._leave_afut_step(stepping, self.future)

    def _finish(self, value, exc):
        _tasks.discard(self)
        self.coro = None
        if exc is None:
            self.future.resolve(value)
            return
        error = _to_gerror(exc)
        if error.matches(_ERROR, Afut.Error.FAILED) and not isinstance(exc, GLib.Error):
            _py_errors[self.future] = (error.message, exc)
        self.future.fail(error)


def create_task(coro):
    """asyncio.create_task(): runs @coro as an afut task; returns its future."""
    return _Task(coro).future


def ensure_future(aw):
    """A future for @aw: an Afut.Future as it is, a coroutine as a task."""
    if isinstance(aw, Afut.Future):
        return aw
    if asyncio.iscoroutine(aw):
        return create_task(aw)
    raise TypeError('An Afut.Future or a coroutine is required, not %r' % (aw,))


def current_task():
    """asyncio.current_task(): the future of the Python task being stepped."""
    return None if _current is None else _current.future


__all__ += ['create_task', 'ensure_future', 'current_task']


# ---- combinators that take coroutines too ----

def _futures(aws):
    if len(aws) == 1 and isinstance(aws[0], (list, tuple)):
        aws = aws[0]
    return [ensure_future(aw) for aw in aws]


@override(Afut.gather)
def gather(*aws, return_exceptions=False):
    """asyncio.gather(*aws, return_exceptions=...); also takes one list."""
    futures = _futures(aws)
    if return_exceptions:
        return Afut.gather_return_exceptions(futures)
    return Afut.gather(futures)


@override(Afut.gather_return_exceptions)
def gather_return_exceptions(*aws):
    return Afut.gather_return_exceptions(_futures(aws))


def _timeout(seconds):
    return float('inf') if seconds is None else float(seconds)


@override(Afut.wait_for)
def wait_for(aw, timeout):
    """asyncio.wait_for(); timeout None waits without limit."""
    return Afut.wait_for(ensure_future(aw), _timeout(timeout))


@override(Afut.shield)
def shield(aw):
    return Afut.shield(ensure_future(aw))


@override(Afut.run_until_complete)
def run_until_complete(aw):
    """loop.run_until_complete(): the result, or its exception raised."""
    future = ensure_future(aw)
    try:
        Afut.run_until_complete(future)
    except GLib.Error as error:
        if not future.is_done():
            raise
    return future.result()


__all__ += ['gather', 'gather_return_exceptions', 'wait_for', 'shield',
            'run_until_complete']


class timeout:
    """asyncio.timeout(delay): `async with Afut.timeout(1):` in a task."""

    def __init__(self, delay):
        self._delay = delay
        self._handle = None
        self._expired = False
        self._task = None

    def expired(self):
        return self._expired

    async def __aenter__(self):
        self._task = current_task()
        if self._task is None:
            raise RuntimeError('Afut.timeout() should be used inside a task')
        if self._delay is not None:
            self._handle = Afut.call_later(self._delay, self._on_timeout)
        return self

    def _on_timeout(self, *unused):
        self._expired = True
        self._task.cancel()

    async def __aexit__(self, exc_type, exc, tb):
        if self._handle is not None:
            self._handle.cancel()
            self._handle = None
        if self._expired and exc_type is not None and issubclass(exc_type, CancelledError):
            raise TimeoutError() from exc
        return None


def run(main):
    """asyncio.run(): runs @main (a coroutine or future) to its end on this
    thread's loop, cancels the Python tasks left and waits for them, then
    lets the loop go if run() made it."""
    if Afut.is_attached() and _current is not None:
        raise RuntimeError('Afut.run() cannot be called from a running event loop')
    made_here = not Afut.is_attached()
    # Once Afut.install()ed, asyncio's event loop runs on the context too
    # (_afut_asyncio.py), and its tasks left are cancelled first.
    with _afut_asyncio._running_for_afut() as cancel_asyncio_tasks:
        try:
            return run_until_complete(main)
        finally:
            try:
                cancel_asyncio_tasks()
                left = [task.future for task in list(_tasks)]
                for future in left:
                    future.cancel()
                if left:
                    Afut.run_until_complete(Afut.gather_return_exceptions(left))
            finally:
                if made_here:
                    Afut.detach()
                    _py_errors.clear()


__all__ += ['timeout', 'run']


# ---- asyncio on afut's GLib context (gi/overrides/_afut_asyncio.py) ----

from . import _afut_asyncio  # noqa: E402
from ._afut_asyncio import EventLoop, EventLoopPolicy, install  # noqa: E402

__all__ += ['EventLoop', 'EventLoopPolicy', 'install']
