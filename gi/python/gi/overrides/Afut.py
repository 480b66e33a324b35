# PyGObject overrides for Afut (libafut-1's typelib): Python coroutines as
# afut tasks, with asyncio's names, values and exceptions.
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
# The typelib is afut's C API itself (afut.h, afut-glib.h, afut-gi.h),
# so a C program linking libafut-1 and its Python plugins share futures.
# This module adds asyncio's shape on top:
#   - an Afut.Future is awaitable; result(), exception(), set_result(),
#     set_exception(), done(), cancelled(), cancel(msg), and for tasks
#     get_name(), set_name(), cancelling(), uncancel();
#   - an `async def` coroutine runs as a real afut task
#     (afut_stepped_task_new): a cancellation reaches it at its await as
#     asyncio.CancelledError, cancel counts are afut's own;
#   - values and exceptions cross unchanged: any Python object is a valid
#     result (it rides in a GValue), and an exception raised in a task
#     comes back as the same object through every combinator (it rides
#     in the GError, see AFUT_EXCEPTION_ERROR); afut's cancellation is
#     asyncio.CancelledError, its timeout TimeoutError, a group of errors
#     an ExceptionGroup of the original exceptions, other GErrors stay
#     GLib.Error with their domain and code;
#   - gather, wait_for, shield, race, any, wait, as_completed, sleep,
#     TaskGroup, timeout, Event, Lock, Semaphore, BoundedSemaphore,
#     Condition, Queue, LifoQueue, PriorityQueue, to_thread, gio(), run(),
#     run_until_complete().
# C's bool crosses as 0 or 1 (see afut.h); the methods here return bools.

import asyncio
import collections
import concurrent.futures
import contextvars
import heapq
import importlib
import inspect
import os
import threading
import traceback

from gi.repository import GLib, GObject

from ..module import get_introspection_module
from ..overrides import override

Afut = get_introspection_module('Afut')

__all__ = []

CancelledError = asyncio.CancelledError
InvalidStateError = asyncio.InvalidStateError
TimeoutError = TimeoutError  # the builtin, asyncio.TimeoutError since 3.11
__all__ += ['CancelledError', 'InvalidStateError', 'TimeoutError']

_ERROR = Afut.error_quark()
_PENDING = Afut.FutureState.PENDING
_DONE = Afut.FutureState.DONE
_FAILED = Afut.FutureState.FAILED
_CANCELLED = Afut.FutureState.CANCELLED


# ---- values and exceptions ----

def _gvalue(value):
    """A Python value as the GValue it rides in; None is no value."""
    if value is None:
        return None
    return GObject.Value(GObject.TYPE_PYOBJECT, value)


def _message(exc):
    """What C code sees of a Python exception: "Type: text", then the
    traceback (printed by "never retrieved" reports)."""
    head = '%s: %s' % (type(exc).__name__, exc)
    if exc.__traceback__ is None:
        return head
    tb = ''.join(traceback.format_exception(exc))
    return head + '\n' + tb.rstrip('\n')


def _cancel_error(message):
    return GLib.Error.new_literal(_ERROR, message or '',
                                  Afut.ErrorCode.CANCELLED)


def _exception(error, value=None, group=None):
    """The exception Python code sees for @error (a GLib.Error): the
    object that rides with it, or afut's own errors as asyncio's."""
    if value is not None:
        return value
    if error.matches(_ERROR, Afut.ErrorCode.CANCELLED):
        return CancelledError(error.message) if error.message else CancelledError()
    if error.matches(_ERROR, Afut.ErrorCode.TIMEOUT):
        return TimeoutError(error.message) if error.message else TimeoutError()
    if (error.matches(_ERROR, Afut.ErrorCode.GROUP) and group is not None
            and group.get_n_sub_errors() > 0):
        subs = [_exception(group.get_sub_error(i), group.get_sub_error_value(i))
                for i in range(group.get_n_sub_errors())]
        message = error.message.split('\n', 1)[0]
        if all(isinstance(e, Exception) for e in subs):
            return ExceptionGroup(message, subs)
        return BaseExceptionGroup(message, subs)
    return error


def _future_exception(future):
    """The exception of a failed or cancelled future (retrieving it)."""
    return _exception(future.get_error(), future.get_error_value(), future)


# ---- the loop ----

_local = threading.local()


def _env_flags():
    if os.environ.get('AFUT_CLOCK') == 'virtual':
        return Afut.LoopFlags.VIRTUAL_CLOCK
    return Afut.LoopFlags.NONE


def attach(context=None, virtual_clock=None):
    """Makes this thread's afut loop, on @context (the thread-default main
    context if None), and pushes it as the thread-default afut loop: GTK's
    or any GLib main loop then runs it.  A virtual clock (sleeps take no
    time; tests) if asked, or if AFUT_CLOCK=virtual is set."""
    if getattr(_local, 'loop', None) is not None:
        raise RuntimeError('this thread has an afut loop already')
    if context is None:
        context = GLib.MainContext.ref_thread_default()
    if virtual_clock is None:
        flags = _env_flags()
    else:
        flags = (Afut.LoopFlags.VIRTUAL_CLOCK if virtual_clock
                 else Afut.LoopFlags.NONE)
    loop = Afut.glib_loop_new(context, flags)
    loop.push_thread_default()
    _local.loop = loop
    return loop


def detach():
    """asyncio.run()'s ending for the loop attach() made: cancels its
    pending tasks, runs it until they end, and lets it go."""
    loop = getattr(_local, 'loop', None)
    if loop is None:
        return
    if Afut.loop_get_running() is not None:
        raise RuntimeError('detach() cannot be called from a running event loop')
    _local.loop = None
    try:
        loop.shutdown()
    finally:
        loop.pop_thread_default()


def is_attached():
    return getattr(_local, 'loop', None) is not None


def get_running_loop():
    """asyncio.get_running_loop(): the loop running on this thread."""
    loop = Afut.loop_get_running()
    if loop is None:
        raise RuntimeError('no running event loop')
    return loop


def get_event_loop():
    """The running loop, else this thread's default one (made if none)."""
    loop = Afut.loop_get_running() or Afut.loop_get_thread_default()
    if loop is None:
        loop = attach()
    return loop


def _off_thread(loop):
    """Whether this thread is not @loop's (a threadsafe call is needed)."""
    here = Afut.loop_get_running() or Afut.loop_get_thread_default()
    return here is None or here != loop


def call_soon(callback, *args):
    """loop.call_soon() on the running or this thread's default loop."""
    return get_event_loop().call_soon(lambda *unused: callback(*args))


def call_later(delay, callback, *args):
    """loop.call_later(): the handle (an Afut.Future) cancels it."""
    return get_event_loop().call_later(delay, lambda *unused: callback(*args))


def call_soon_threadsafe(callback, *args, loop=None):
    """loop.call_soon_threadsafe(), from any thread, on @loop (by default
    the running or this thread's default loop)."""
    if loop is None:
        loop = get_event_loop()
    return loop.call_soon_threadsafe(lambda *unused: callback(*args))


def time():
    """loop.time() of the running or this thread's default loop."""
    return get_event_loop().time()


__all__ += ['attach', 'detach', 'is_attached', 'get_running_loop',
            'get_event_loop', 'call_soon', 'call_later',
            'call_soon_threadsafe', 'time']


# ---- futures ----

class Future(Afut.Future):
    """asyncio.Future (and Task) on afut: awaitable, asyncio's methods."""

    @classmethod
    def new(cls, loop=None):
        """loop.create_future(): on @loop, else the running or this
        thread's default loop."""
        return Afut.Future.new(loop if loop is not None else get_event_loop())

    def __await__(self):
        if not self.is_done():
            # An asyncio task on afut's EventLoop waits on an asyncio
            # future that mirrors this one (_afut_asyncio.py).
            waiter = _afut_asyncio._asyncio_waiter(self)
            if waiter is not None:
                return (yield from waiter)
            yield self
        value, exc = _outcome(self)
        # No frame that raises holds the future: the exception's traceback
        # keeps its frames, and a future holding that exception (in C,
        # where Python's collector cannot see) would make a cycle.
        del self
        if exc is not None:
            raise exc
        return value

    __iter__ = __await__

    def __repr__(self):
        state = Afut.future_state_to_string(self.get_state())
        if self.is_task():
            return '<Afut task %r %s>' % (self.get_name(), state)
        return '<Afut.Future %s>' % state

    def done(self):
        return bool(self.is_done())

    def cancelled(self):
        return bool(self.is_cancelled())

    def result(self):
        value, exc = _outcome(self)
        del self  # see __await__
        if exc is not None:
            raise exc
        return value

    def exception(self):
        state = self.get_state()
        if state == _PENDING:
            raise InvalidStateError('Exception is not set.')
        if state == _DONE:
            return None
        exc = _future_exception(self)
        del self  # see __await__
        if isinstance(exc, CancelledError):
            raise exc
        return exc

    def cancel(self, msg=None):
        loop = self.get_loop()
        if _off_thread(loop):
            return bool(Afut.Future.cancel_threadsafe(self, msg))
        return bool(Afut.Future.cancel(self, msg))

    def set_result(self, result):
        """From the loop's thread, or any other: then the loop wakes at
        once (afut_future_resolve_value_threadsafe)."""
        if _off_thread(self.get_loop()):
            if not self.resolve_value_threadsafe(_gvalue(result)):
                raise RuntimeError('the future\'s loop is closed')
            return
        if self.is_done():
            raise InvalidStateError('invalid state')
        self.resolve_value(_gvalue(result))

    def set_exception(self, exception):
        if isinstance(exception, type):
            exception = exception()
        if isinstance(exception, (StopIteration, CancelledError)):
            raise TypeError('%s cannot be raised into a Future'
                            % type(exception).__name__)
        loop = self.get_loop()
        if _off_thread(loop):
            def fail(*unused):
                if not self.is_done():
                    self._fail(exception)
            if not loop.call_soon_threadsafe(fail):
                raise RuntimeError('the future\'s loop is closed')
            return
        if self.is_done():
            raise InvalidStateError('invalid state')
        self._fail(exception)

    def _fail(self, exception):
        if isinstance(exception, GLib.Error):
            self.fail_error(exception)
        else:
            self.fail_value(_gvalue(exception), _message(exception))

    def add_done_callback(self, fn, *, context=None):
        if context is None:
            context = contextvars.copy_context()
        Afut.Future.add_done_callback(
            self, lambda *unused: context.run(fn, self))

    def remove_done_callback(self, fn):
        raise NotImplementedError(
            'Afut futures cannot remove a Python done callback')

    # Tasks (a future that is a task)

    def _task(self):
        if not self.is_task():
            raise TypeError('%r is not a task' % (self,))
        return self.get_task()

    def get_name(self):
        return self._task().get_name()

    def set_name(self, name):
        self._task().set_name(str(name))

    def cancelling(self):
        return self._task().cancelling()

    def uncancel(self):
        return self._task().uncancel()

    def describe(self):
        """One line saying what the task does (afut_task_describe)."""
        return self._task().to_string()

    def print_stack(self, *, limit=None, file=None):
        print(self.describe(), file=file)


Future = override(Future)
__all__.append('Future')


def _outcome(future):
    """(value, None) of a done future, or (None, exception)."""
    state = future.get_state()
    if state == _PENDING:
        return None, InvalidStateError('Result is not set.')
    if state != _DONE:
        return None, _future_exception(future)
    source = future.get_value_source()
    if source.is_gather():
        return [_slot(Afut.gather_get_item(source, i))
                for i in range(Afut.gather_get_n_items(source))], None
    return future.get_value(), None


def _slot(item):
    """A gather's item: its value, or its exception (return_exceptions)."""
    value, exc = _outcome(item)
    return value if exc is None else exc


# ---- tasks: Python coroutines as afut tasks ----

_interrupts = []


class _Stepper:
    """The step callback of one coroutine: Task.__step."""

    __slots__ = ('coro', 'waiting', 'marker')

    def __init__(self, coro):
        self.coro = coro
        self.waiting = None
        self.marker = False

    def _reads_its_outcome(self, caught):
        # What the coroutine awaited failed with @caught: as asyncio's
        # Task.__step, send None and let Future.__await__ read the
        # outcome from the future itself.  Only a cancellation of the task
        # that the future did not end with (and a bad yield) is thrown in.
        fut = self.waiting
        if fut is None or self.marker or fut.get_state() in (_PENDING, _DONE):
            return False
        error = fut.get_error()
        return (error.domain == caught.domain and error.code == caught.code
                and error.message == caught.message)

    def step(self, task, *unused):
        coro = self.coro
        if coro is None:
            return None
        # asyncio.current_task() too, while asyncio's loop runs here.
        # One wrapper for both: asyncio compares the tasks by identity.
        future = task.get_future()
        stepping = _afut_asyncio._enter_afut_step(future)
        try:
            return self._step(task, coro)
        finally:
            _afut_asyncio._leave_afut_step(stepping, future)

    def _step(self, task, coro):
        try:
            caught = task.caught()
            if caught is None or self._reads_its_outcome(caught):
                self.waiting = None
                yielded = coro.send(None)
            else:
                self.waiting = None
                yielded = coro.throw(_exception(caught, task.get_caught_value(),
                                                task.awaited()))
            # An asyncio future (on afut's EventLoop): its afut mirror.
            yielded = _afut_asyncio._afut_future_for(yielded)
        except StopIteration as stop:
            self.coro = None
            task.return_value(_gvalue(stop.value))
            return None
        except BaseException as exc:  # noqa: B902 - a task's outcome
            self.coro = None
            _forget_frames(exc)
            _throw(task, exc)
            if isinstance(exc, (KeyboardInterrupt, SystemExit)):
                _interrupts.append(exc)
            return None
        self.marker = False
        if yielded is None:  # a bare yield: sleep(0)
            self.waiting = Afut.sleep(0)
        elif isinstance(yielded, Afut.Future):
            self.waiting = yielded
        else:
            # asyncio raises this into the coroutine at its next step.
            bad = Afut.Future.new(task.get_future().get_loop())
            bad.fail_value(_gvalue(RuntimeError(
                'Task got bad yield: %r' % (yielded,))), 'bad yield')
            self.waiting = bad
            self.marker = True
        return self.waiting

    def __del__(self):
        # The task is done or freed, and PyGObject let go of this step
        # callback: a coroutine it never started (it was cancelled first)
        # is closed without a "never awaited" warning, as asyncio does.
        coro, self.coro = self.coro, None
        if coro is not None:
            coro.close()


def _forget_frames(exc):
    """The exception goes into the task's GError, which C holds: Python's
    collector cannot see that reference, so a cycle through it (the
    traceback's frames holding the task, which holds the error) would
    never be freed.  The step's own frames leave the traceback, and the
    finished frames let go of their locals (the lines stay)."""
    tb, kept = exc.__traceback__, []
    while tb is not None:
        if tb.tb_frame.f_code not in _STEP_CODES:
            kept.append(tb)
        tb = tb.tb_next
    for a, b in zip(kept, kept[1:] + [None]):
        a.tb_next = b
    exc.__traceback__ = kept[0] if kept else None
    traceback.clear_frames(exc.__traceback__)


def _throw(task, exc):
    if isinstance(exc, CancelledError):
        task.throw_error(_cancel_error(exc.args[0] if exc.args else None))
    elif isinstance(exc, GLib.Error):
        task.throw_error(exc)
    else:
        task.throw_value(_gvalue(exc), _message(exc))


_STEP_CODES = (_Stepper.step.__code__, _Stepper._step.__code__)


def create_task(coro, *, name=None, loop=None):
    """asyncio.create_task(): runs @coro as an afut task; its future."""
    if not asyncio.iscoroutine(coro):
        raise TypeError('a coroutine was expected, got %r' % (coro,))
    if loop is None:
        loop = get_event_loop()
    stepper = _Stepper(coro)
    return Afut.stepped_task_new(loop, name, stepper.step)


def ensure_future(aw, *, loop=None):
    """A future for @aw: an Afut.Future as it is, a coroutine as a task."""
    if isinstance(aw, Afut.Future):
        return aw
    if asyncio.iscoroutine(aw):
        return create_task(aw, loop=loop)
    if inspect.isawaitable(aw):
        # Any other awaitable (an asyncio future or task on afut's
        # EventLoop, _afut_asyncio.py): a task awaits it, as in asyncio.
        return create_task(_wrap_awaitable(aw), loop=loop)
    raise TypeError('An Afut.Future, a coroutine or an awaitable is '
                    'required, not %r' % (aw,))


async def _wrap_awaitable(aw):
    return await aw


def current_task():
    """asyncio.current_task(): the task being stepped, as a future."""
    task = Afut.task_get_current(None)
    return None if task is None else task.get_future()


def all_tasks():
    """asyncio.all_tasks(): the running loop's pending tasks."""
    tasks = []
    get_running_loop().foreach_task(lambda task, *u: tasks.append(task.get_future()))
    return set(tasks)


__all__ += ['create_task', 'ensure_future', 'current_task', 'all_tasks']


# ---- combinators ----

def _futures(aws):
    if len(aws) == 1 and isinstance(aws[0], (list, tuple, set)):
        aws = list(aws[0])
    return [ensure_future(aw) for aw in aws]


def _timeout(seconds):
    return float('inf') if seconds is None else float(seconds)


def sleep(delay, result=None):
    """asyncio.sleep(delay, result) as an awaitable future."""
    loop = get_event_loop()
    if result is None:
        return loop.sleep(float(delay))

    async def sleeping():
        await sleep(delay)
        return result
    return sleeping()


def gather(*aws, return_exceptions=False):
    """asyncio.gather(*aws, return_exceptions=...); also takes one list."""
    futures = _futures(aws)
    if not futures:
        get_event_loop()  # afut gathers nothing on the running or default loop
    if return_exceptions:
        return Afut.gather_return_exceptions(futures)
    return Afut.gather(futures)


def wait_for(aw, timeout):
    """asyncio.wait_for(); timeout None waits without limit."""
    return Afut.wait_for(ensure_future(aw), _timeout(timeout))


def shield(aw):
    """asyncio.shield()."""
    return Afut.shield(ensure_future(aw))


def race(*aws):
    """JavaScript's Promise.race: settles as the first input does."""
    return Afut.race(_futures(aws))


def any(*aws):  # noqa: A001 - Promise.any's name
    """JavaScript's Promise.any: the first success, or an ExceptionGroup
    of every input's exception."""
    return Afut.any(_futures(aws))


FIRST_COMPLETED = Afut.WaitMode.FIRST_COMPLETED
FIRST_EXCEPTION = Afut.WaitMode.FIRST_EXCEPTION
ALL_COMPLETED = Afut.WaitMode.ALL_COMPLETED


async def wait(fs, *, timeout=None, return_when=ALL_COMPLETED):
    """asyncio.wait(): (done, pending) sets of the futures."""
    futures = _futures([fs])
    if not futures:
        raise ValueError('Set of Tasks/Futures is empty.')
    w = Afut.wait(futures, return_when, _timeout(timeout))
    await w
    done, pending = set(), set()
    n = Afut.wait_get_done(w, 0)[1]
    for i in range(n):
        done.add(Afut.wait_get_done(w, i)[0])
    n = Afut.wait_get_pending(w, 0)[1]
    for i in range(n):
        pending.add(Afut.wait_get_pending(w, i)[0])
    return done, pending


def as_completed(fs, *, timeout=None):
    """asyncio.as_completed(): awaitables in completion order; each gives
    the next input's result (or raises its exception)."""
    futures = _futures([fs])
    # Boxed wrappers hash by their C pointer, and a next future's value
    # is the input itself, as a gpointer.
    by_pointer = {hash(f): f for f in futures}
    iterator = Afut.as_completed(futures, _timeout(timeout))

    async def next_one():
        nxt = Afut.as_completed_next(iterator)
        await nxt
        return await by_pointer[hash(nxt.get_value())]

    for _ in range(len(by_pointer)):
        yield next_one()


__all__ += ['sleep', 'gather', 'wait_for', 'shield', 'race', 'any', 'wait',
            'as_completed', 'FIRST_COMPLETED', 'FIRST_EXCEPTION',
            'ALL_COMPLETED']


# ---- running ----

def run_until_complete(aw):
    """loop.run_until_complete(): the result, or its exception raised."""
    loop = get_event_loop()
    if Afut.loop_get_running() is not None:
        raise RuntimeError('This event loop is already running')
    future = ensure_future(aw, loop=loop)
    loop.run_until_complete(future)
    if _interrupts:
        raise _interrupts.pop()
    return future.result()


def run(main, *, debug=None):
    """asyncio.run(): runs @main (a coroutine or future) to its end on
    this thread's loop, cancels the tasks left and waits for them; the
    loop goes if run() made it.  Once Afut.install()ed, asyncio's event
    loop runs on the context too (_afut_asyncio.py), and its tasks left
    are cancelled first."""
    if Afut.loop_get_running() is not None:
        raise RuntimeError('Afut.run() cannot be called from a running event loop')
    made_here = Afut.loop_get_thread_default() is None
    with _afut_asyncio._running_for_afut() as cancel_asyncio_tasks:
        if made_here:
            attach()
        try:
            return run_until_complete(main)
        finally:
            try:
                cancel_asyncio_tasks()
            finally:
                if made_here:
                    detach()
                else:
                    get_event_loop().shutdown()


__all__ += ['run_until_complete', 'run']


# ---- scopes: timeouts and task groups ----

class Timeout:
    """asyncio.Timeout, as CPython's, on afut's own cancel counts."""

    def __init__(self, when):
        self._when = when
        self._state = 'created'
        self._handle = None
        self._task = None
        self._cancelling = 0

    def when(self):
        return self._when

    def expired(self):
        return self._state in ('expiring', 'expired')

    def reschedule(self, when):
        if self._state not in ('created', 'entered'):
            raise RuntimeError('Cannot change state of %s Timeout' % self._state)
        self._when = when
        if self._handle is not None:
            self._handle.cancel()
            self._handle = None
        if when is None or self._task is None:
            return
        loop = self._task.get_loop()
        if when <= loop.time():
            self._handle = loop.call_later(0, self._on_timeout)
        else:
            self._handle = loop.call_at(when, self._on_timeout)

    async def __aenter__(self):
        task = current_task()
        if task is None:
            raise RuntimeError('Timeout should be used inside a task')
        self._task = task
        self._cancelling = task.cancelling()
        self._state = 'entered'
        self.reschedule(self._when)
        return self

    async def __aexit__(self, exc_type, exc_val, exc_tb):
        if self._handle is not None:
            self._handle.cancel()
            self._handle = None
        if self._state == 'expiring':
            self._state = 'expired'
            if (self._task.uncancel() <= self._cancelling
                    and exc_type is not None
                    and issubclass(exc_type, CancelledError)):
                raise TimeoutError from exc_val
        elif self._state == 'entered':
            self._state = 'exited'
        return None

    def _on_timeout(self, *unused):
        self._task.cancel()
        self._state = 'expiring'
        self._handle = None


def timeout(delay):
    """asyncio.timeout(delay): `async with Afut.timeout(1):` in a task."""
    if delay is None:
        return Timeout(None)
    return Timeout(get_event_loop().time() + delay)


def timeout_at(when):
    return Timeout(when)


class TaskGroup(Afut.TaskGroup):
    """asyncio.TaskGroup on afut's task groups (AfutTaskGroup).  It opens
    when made, in the current task: `async with Afut.TaskGroup() as tg:`."""

    def __new__(cls):
        task = Afut.task_get_current(None)
        if task is None:
            raise RuntimeError('TaskGroup should be used inside a task')
        return Afut.TaskGroup.new(task)

    def __init__(self):
        self._children = []
        self._exit = None

    async def __aenter__(self):
        return self

    def create_task(self, coro, *, name=None):
        if self._exit is not None:
            coro.close()
            raise RuntimeError('TaskGroup is finished')
        if asyncio.iscoroutine(coro):
            coro = create_task(coro, name=name)
        child = self.spawn(ensure_future(coro))
        if child is None:
            raise RuntimeError('TaskGroup is shutting down')
        self._children.append(child)
        return child

    async def __aexit__(self, exc_type, exc_val, exc_tb):
        body_error = None
        if exc_type is not None:
            # The block raised: the children are cancelled, as asyncio's
            # _abort() does, and awaited.
            for child in self._children:
                child.cancel()
            if not issubclass(exc_type, CancelledError):
                body_error = exc_val
        self._exit = self.exit()
        try:
            await self._exit
        except BaseExceptionGroup as group:
            if body_error is not None:
                raise BaseExceptionGroup(
                    'unhandled errors in a TaskGroup',
                    [body_error] + list(group.exceptions)) from None
            raise
        finally:
            self._children = []
        if body_error is not None:
            raise BaseExceptionGroup('unhandled errors in a TaskGroup',
                                     [body_error])
        return None


TaskGroup = override(TaskGroup)
__all__ += ['Timeout', 'timeout', 'timeout_at', 'TaskGroup']


# ---- synchronisation primitives ----

class _ContextManagerMixin:
    async def __aenter__(self):
        await self.acquire()
        return None

    async def __aexit__(self, exc_type, exc, tb):
        self.release()


# Each is afut's own object (a C program can hand one to Python), with
# asyncio's methods: the C coroutine methods are awaited inside them.

class Event(Afut.Event):
    """asyncio.Event (AfutEvent)."""

    def __new__(cls):
        return Afut.Event.new(get_event_loop())

    def __init__(self):
        pass

    def is_set(self):
        return bool(Afut.Event.is_set(self))

    async def wait(self):
        await Afut.Event.wait(self)
        return True


Event = override(Event)


class Lock(_ContextManagerMixin, Afut.Lock):
    """asyncio.Lock (AfutLock)."""

    def __new__(cls):
        return Afut.Lock.new(get_event_loop())

    def __init__(self):
        pass

    def locked(self):
        return bool(self.is_locked())

    async def acquire(self):
        await Afut.Lock.acquire(self)
        return True

    def release(self):
        if not self.is_locked():
            raise RuntimeError('Lock is not acquired.')
        Afut.Lock.release(self)


Lock = override(Lock)


class Semaphore(_ContextManagerMixin, Afut.Semaphore):
    """asyncio.Semaphore (AfutSemaphore); BoundedSemaphore() makes a
    bounded one."""

    def __new__(cls, value=1):
        if value < 0:
            raise ValueError('Semaphore initial value must be >= 0')
        return Afut.Semaphore.new(get_event_loop(), value)

    def __init__(self, value=1):
        pass

    def locked(self):
        return bool(self.is_locked())

    async def acquire(self):
        await Afut.Semaphore.acquire(self)
        return True

    def release(self):
        bound = getattr(self, '_bound', None)
        if bound is not None and self.get_value() >= bound:
            raise ValueError('BoundedSemaphore released too many times')
        Afut.Semaphore.release(self)


Semaphore = override(Semaphore)


def BoundedSemaphore(value=1):  # noqa: N802 - asyncio's name
    """asyncio.BoundedSemaphore: a bounded AfutSemaphore."""
    if value < 0:
        raise ValueError('Semaphore initial value must be >= 0')
    sem = Afut.bounded_semaphore_new(get_event_loop(), value)
    sem._bound = value
    return sem


class Condition(_ContextManagerMixin, Afut.Condition):
    """asyncio.Condition (AfutCondition)."""

    def __new__(cls, lock=None):
        return Afut.Condition.new(get_event_loop(), lock)

    def __init__(self, lock=None):
        pass

    def locked(self):
        return bool(self.is_locked())

    async def acquire(self):
        await Afut.Condition.acquire(self)
        return True

    def release(self):
        if not self.is_locked():
            raise RuntimeError('Lock is not acquired.')
        Afut.Condition.release(self)

    async def wait(self):
        if not self.is_locked():
            raise RuntimeError('cannot wait on un-acquired lock')
        await Afut.Condition.wait(self)
        return True

    async def wait_for(self, predicate):
        result = predicate()
        while not result:
            await self.wait()
            result = predicate()
        return result

    def notify(self, n=1):
        if not self.is_locked():
            raise RuntimeError('cannot notify on un-acquired lock')
        Afut.Condition.notify(self, n)

    def notify_all(self):
        if not self.is_locked():
            raise RuntimeError('cannot notify on un-acquired lock')
        Afut.Condition.notify_all(self)


Condition = override(Condition)
class Queue(Afut.Queue):
    """asyncio.Queue on an AfutQueue: afut's queue does the waiting, the
    first-come-first-served wakeups, maxsize, task_done() and join(),
    over None items that count the Python items, which stay here (a
    deque; a list for LifoQueue, a heap for PriorityQueue).  A put's item
    goes in, and a get's comes out, in the same step as afut's own put
    or get completes, so the two stay in step."""

    _kind = Afut.QueueKind.FIFO

    def __new__(cls, maxsize=0):
        queue = Afut.Queue.new(get_event_loop(), Afut.QueueKind.FIFO,
                               max(0, maxsize), None, None)
        queue.__class__ = cls
        return queue

    def __init__(self, maxsize=0):
        self._maxsize = max(0, maxsize)
        self._items = collections.deque()
        self._unfinished = 0

    def _push(self, item):
        self._items.append(item)

    def _pop(self):
        return self._items.popleft()

    @property
    def maxsize(self):
        return self._maxsize

    def qsize(self):
        return len(self._items)

    def empty(self):
        return not self._items

    def full(self):
        return 0 < self._maxsize <= len(self._items)

    async def put(self, item):
        await Afut.Queue.put(self, None)
        self._push(item)
        self._unfinished += 1

    def put_nowait(self, item):
        if not Afut.Queue.put_nowait(self, None):
            raise asyncio.QueueFull
        self._push(item)
        self._unfinished += 1

    async def get(self):
        await Afut.Queue.get(self)
        return self._pop()

    def get_nowait(self):
        ok, unused = Afut.Queue.get_nowait(self)
        if not ok:
            raise asyncio.QueueEmpty
        return self._pop()

    def task_done(self):
        if self._unfinished <= 0:
            raise ValueError('task_done() called too many times')
        self._unfinished -= 1
        Afut.Queue.task_done(self)

    async def join(self):
        await Afut.Queue.join(self)


Queue = override(Queue)


class LifoQueue(Queue):
    """asyncio.LifoQueue."""

    def _pop(self):
        return self._items.pop()


class PriorityQueue(Queue):
    """asyncio.PriorityQueue: Python's heapq orders the items."""

    def __init__(self, maxsize=0):
        super().__init__(maxsize)
        self._items = []

    def _push(self, item):
        heapq.heappush(self._items, item)

    def _pop(self):
        return heapq.heappop(self._items)


QueueEmpty = asyncio.QueueEmpty
QueueFull = asyncio.QueueFull

__all__ += ['Event', 'Lock', 'Semaphore', 'BoundedSemaphore', 'Condition',
            'Queue', 'LifoQueue', 'PriorityQueue', 'QueueEmpty', 'QueueFull']


# ---- threads ----

_executor = None
_executor_lock = threading.Lock()


def _default_executor():
    global _executor
    with _executor_lock:
        if _executor is None:
            _executor = concurrent.futures.ThreadPoolExecutor(
                thread_name_prefix='afut-to-thread')
        return _executor


async def to_thread(func, /, *args, **kwargs):
    """asyncio.to_thread(): runs func(*args, **kwargs) on a worker thread;
    the loop wakes as soon as it returns (a threadsafe completion), and
    shutdown waits for it (afut_loop_hold)."""
    loop = get_running_loop()
    future = Future.new(loop)
    context = contextvars.copy_context()
    loop.hold()

    def release(*unused):
        loop.release()

    def work():
        try:
            try:
                result = context.run(func, *args, **kwargs)
            except BaseException as exc:  # noqa: B902 - handed to the awaiter
                def fail(*unused, exc=exc):
                    if not future.is_done():
                        future._fail(exc)
                loop.call_soon_threadsafe(fail)
            else:
                future.resolve_value_threadsafe(_gvalue(result))
        finally:
            loop.call_soon_threadsafe(release)

    _default_executor().submit(work)
    return await future


__all__ += ['to_thread']


# ---- GIO ----

def _finish_of(method):
    """The `_finish` function that goes with a bound GIO `_async` method
    (an introspected one, or an override's), as an unbound function."""
    name = getattr(method, '__name__', '')
    if not name.endswith('_async'):
        raise TypeError('Afut.gio() takes a bound GIO method named *_async, '
                        'not %r' % (method,))
    finish_name = name[:-len('_async')] + '_finish'
    owner = getattr(method, '__self__', None)
    if owner is not None:  # a Python method (an override's)
        return getattr(type(owner), finish_name)
    container = method.get_container()  # an introspected gi.FunctionInfo
    module = importlib.import_module('gi.repository.'
                                     + container.get_namespace())
    return getattr(getattr(module, container.get_name()), finish_name)


def gio(method, *args):
    """Awaits a GIO `_async` call: `await Afut.gio(file.load_contents_async,
    None)` gives what `load_contents_finish()` returns.  @args are the
    call's arguments; its cancellable (None, or left out) is the
    future's own (afut_glib_future_get_cancellable).  Cancelling the
    awaiting task cancels the call, and the task resumes only once GIO's
    callback has run, so that the stream is free for cleanup
    (afut_gio_future_new)."""
    finish = _finish_of(method)
    loop = get_event_loop()
    future = Afut.gio_future_new(loop)
    cancellable = Afut.glib_future_get_cancellable(future)
    call_args = list(args)
    if call_args and call_args[-1] is None:
        call_args.pop()  # the cancellable slot
    sources = []

    def ready(source, result, *unused):
        sources.append(source)
        Afut.gio_future_complete(future, result)

    method(*call_args, cancellable, ready)

    async def finished():
        result = await future
        return finish(sources[0], result)
    return finished()


__all__ += ['gio']


# ---- asyncio on afut's GLib context (gi/overrides/_afut_asyncio.py) ----

from . import _afut_asyncio  # noqa: E402
from ._afut_asyncio import EventLoop, EventLoopPolicy, install  # noqa: E402

__all__ += ['EventLoop', 'EventLoopPolicy', 'install']
