"""fuzzmodel.py - the reference model: a small discrete-event simulator of
the Semantics rules of DESIGN.md (asyncio 3.11), written without asyncio
and without looking at afut's code.

What it models, rule by rule:
  1. a future completes once; set_result on a done future returns False.
  2. done callbacks are queued (one ready-queue entry each, in
     registration order) when the future completes, never run inside it;
     one added to a done future is queued at once.
  3. one FIFO ready queue run in batches (what a batch queues runs in the
     next batch); a task's first step is queued at creation; sleep(0) and
     a bare yield go to the back of the queue; timers fire in deadline
     order, ties in creation order, and become ready-queue entries behind
     what is already queued; awaiting a done future does not yield.
  4. awaiting a failed future raises its error in the task.
  5. Task.cancel() cancels the future the task waits on, or makes the
     next step raise CancelledError; the task may catch it and go on;
     cancel messages reach the awaiter; a task cancelled right before it
     returns ends cancelled.
  6-8. gather as asyncio 3.11's (_GatheringFuture), deduplicating.
  9. a failed future whose error nobody retrieved is "unretrieved".
  10. asyncio.timeout, and asyncio.TaskGroup (3.11's taskgroups.py).

Where afut documents a choice that is not 3.11's, the model follows afut's
documentation: a future failed with a cancellation error is CANCELLED (its
awaiters all get the message), except a gather failed by a child's own
cancellation, which is FAILED as in asyncio (a gather cancelled itself is
CANCELLED, DESIGN.md rule 7, where 3.11 leaves it failed too); wait_for is a combinator future with
3.12's outcome rules (afut_wait_for's doc comment); shield passes the
inner's cancel message on; timeouts and task groups compare the cancel
count with the count at entry (README.md, Semantics), and a task group
takes back the cancel request it made once its children are done (3.13's
place for the uncancel(), gh-116720; 3.11 does it before waiting, so a
request made while it waits stays counted).  The one thing asyncio leaves
open, the order in which an aborting group cancels its children (3.11
keeps them in a set), the model takes from afut: see TaskGroup.
"""

import heapq
import types
from collections import deque

PENDING, DONE, FAILED, CANCELLED = 'pending', 'done', 'failed', 'cancelled'

# afut's known deviations from the model, each an open afut bug (README.md,
# "Known afut bugs"): the model reproduces them when they are listed here,
# so that runs stay green and look for new ones; `fuzz.py run --strict`
# and the regression tests use the faithful model.
KNOWN_DEVIATIONS = set()
# Fixed, their regressions kept: shield-detach, inline-self-cancel,
# cancel-retrieves, group-exit-cancel-early, group-exit-late-cancel.
DEVIATIONS = set()


class CancelledError(BaseException):
    def __init__(self, msg=None):
        super().__init__(msg)
        self.msg = '' if msg is None else msg


class TimeoutErr(Exception):
    pass


class InvalidState(Exception):
    pass


class Handle:
    __slots__ = ('fn', 'args', 'cancelled', 'when', 'seq')

    def __init__(self, fn, args, when=None, seq=0):
        self.fn, self.args, self.cancelled = fn, args, False
        self.when, self.seq = when, seq

    def cancel(self):
        self.cancelled = True

    def __lt__(self, other):
        return (self.when, self.seq) < (other.when, other.seq)


class Loop:
    def __init__(self):
        self.now = 0
        self.ready = deque()
        self.timers = []
        self.seq = 0
        self.current_task = None

    def call_soon(self, fn, *args):
        h = Handle(fn, args)
        self.ready.append(h)
        return h

    def call_at(self, when, fn, *args):
        self.seq += 1
        h = Handle(fn, args, when, self.seq)
        heapq.heappush(self.timers, h)
        return h

    def call_later(self, delay, fn, *args):
        # asyncio: a negative delay is a deadline in the past.
        return self.call_at(self.now + delay, fn, *args)

    def _drop_cancelled(self):
        while self.timers and self.timers[0].cancelled:
            heapq.heappop(self.timers)

    def idle(self):
        self._drop_cancelled()
        return not self.ready and not self.timers

    def run_once(self):
        self._drop_cancelled()
        if not self.ready and self.timers:
            self.now = max(self.now, self.timers[0].when)
        while self.timers and self.timers[0].when <= self.now:
            h = heapq.heappop(self.timers)
            if not h.cancelled:
                self.ready.append(h)
        for _ in range(len(self.ready)):
            h = self.ready.popleft()
            if not h.cancelled:
                h.fn(*h.args)

    def run_until_idle(self):
        while not self.idle():
            self.run_once()

    def create_future(self):
        return Future(self)


class Future:
    def __init__(self, loop):
        self.loop = loop
        self.state = PENDING
        self.value = None
        self.exc = None        # the error of a FAILED or CANCELLED future
        self.callbacks = []
        self.log_tb = False    # failed, error not retrieved yet
        self.blocking = False

    def done(self):
        return self.state != PENDING

    def cancelled(self):
        return self.state == CANCELLED

    def _schedule_callbacks(self):
        cbs, self.callbacks = self.callbacks, []
        for cb in cbs:
            self.loop.call_soon(cb, self)

    def add_done_callback(self, fn):
        if self.done():
            self.loop.call_soon(fn, self)
        else:
            self.callbacks.append(fn)

    def remove_done_callback(self, fn):
        n = len(self.callbacks)
        self.callbacks = [c for c in self.callbacks if c != fn]
        return n - len(self.callbacks)

    def cancel(self, msg=None):
        # asyncio: cancel() silences the "never retrieved" report, even on
        # a future already done.
        self.log_tb = False
        if self.done():
            return False
        self._finish_error(CancelledError(msg))
        return True

    def _finish_error(self, exc):
        if isinstance(exc, CancelledError):
            self.state = CANCELLED
        else:
            self.state = FAILED
            self.log_tb = True
        self.exc = exc
        self._schedule_callbacks()

    def set_result(self, value):
        if self.done():
            return False
        self.state = DONE
        self.value = value
        self._schedule_callbacks()
        return True

    def set_exception(self, exc):
        if self.done():
            return False
        self._finish_error(exc)
        return True

    def result(self):
        if self.state == PENDING:
            raise InvalidState('result of a pending future')
        self.log_tb = False
        if self.exc is not None:
            raise self.exc
        return self.value

    def exception(self):
        if self.state == PENDING:
            raise InvalidState('exception of a pending future')
        self.log_tb = False
        return self.exc

    def __await__(self):
        if not self.done():
            self.blocking = True
            yield self
        return self.result()


@types.coroutine
def _bare_yield():
    yield


class Task(Future):
    def __init__(self, loop, coro):
        super().__init__(loop)
        self.coro = coro
        self.fut_waiter = None
        self.must_cancel = False
        self.cancel_msg = None
        self.num_cancels = 0
        self.name = None
        loop.call_soon(self._step)

    def cancel(self, msg=None):
        self.log_tb = False
        if self.done():
            return False
        self.num_cancels += 1
        if self.fut_waiter is not None and self.fut_waiter.cancel(msg):
            return True
        self.must_cancel = True
        self.cancel_msg = msg
        return True

    def cancelling(self):
        return self.num_cancels

    def uncancel(self):
        if self.num_cancels > 0:
            self.num_cancels -= 1
        return self.num_cancels

    def _step(self, exc=None):
        assert not self.done(), 'a task stepped after it completed'
        if self.must_cancel:
            if not isinstance(exc, CancelledError):
                exc = CancelledError(self.cancel_msg)
            self.must_cancel = False
        self.fut_waiter = None
        loop = self.loop
        prev, loop.current_task = loop.current_task, self
        try:
            if exc is None:
                result = self.coro.send(None)
            else:
                result = self.coro.throw(exc)
        except StopIteration as e:
            if self.must_cancel:
                self.must_cancel = False
                Future.cancel(self, self.cancel_msg)
            else:
                Future.set_result(self, e.value)
        except CancelledError as e:
            Future.cancel(self, e.msg)
        except Exception as e:
            Future.set_exception(self, e)
        else:
            if result is None:
                loop.call_soon(self._step)
            else:
                assert isinstance(result, Future) and result.blocking
                result.blocking = False
                result.add_done_callback(self._wakeup)
                self.fut_waiter = result
                if self.must_cancel and result.cancel(self.cancel_msg):
                    self.must_cancel = False
        finally:
            loop.current_task = prev

    def _wakeup(self, fut):
        try:
            fut.result()
        except BaseException as e:
            self._step(e)
        else:
            self._step()


# ---- combinators ----

async def sleep(loop, n):
    if n <= 0:
        await _bare_yield()
        return None
    fut = loop.create_future()
    h = loop.call_later(n, _set_unless_done, fut)
    try:
        return await fut
    finally:
        h.cancel()


def _set_unless_done(fut):
    if not fut.done():
        fut.set_result(None)


def ensure_future(loop, x):
    if isinstance(x, Future):
        return x
    return Task(loop, x)


class _Gathering(Future):
    def __init__(self, loop, children):
        super().__init__(loop)
        self.children = children
        self.cancel_requested = False

    def cancel(self, msg=None):
        if self.done():
            return False
        ret = False
        for child in self.children:
            if child.cancel(msg):
                ret = True
        if ret:
            self.cancel_requested = True
        return ret

    def fail(self, exc):
        """outer.set_exception(exc).  A child's own cancellation fails the
        gather with it, not cancelled (asyncio: cancelled() False, the
        error never retrieved reported); only a gather cancelled itself
        ends cancelled (DESIGN.md rules 6 and 7)."""
        if isinstance(exc, CancelledError) and not self.cancel_requested:
            self.state = FAILED
            self.log_tb = True
            self.exc = exc
            self._schedule_callbacks()
        else:
            self.set_exception(exc)


def gather(loop, items, return_exceptions):
    if not items:
        outer = _Gathering(loop, [])
        outer.set_result([])
        return outer
    state = {'finished': 0}
    children = []
    outer = _Gathering(loop, children)

    def done_cb(fut):
        state['finished'] += 1
        if outer.done():
            if not fut.cancelled():
                fut.exception()
            return
        if not return_exceptions:
            if fut.cancelled():
                outer.fail(CancelledError(fut.exc.msg))
                return
            exc = fut.exception()
            if exc is not None:
                outer.fail(exc)
                return
        if state['finished'] == nfuts:
            results = []
            for c in children:
                if c.cancelled():
                    results.append(CancelledError(c.exc.msg))
                else:
                    e = c.exception()
                    results.append(e if e is not None else c.value)
            if outer.cancel_requested:
                # asyncio: the last child's cancellation, or a bare one.
                last = children[-1]
                outer.set_exception(CancelledError(
                    last.exc.msg if last.cancelled() else None))
            else:
                outer.set_result(results)

    # Each new child is started, then watched, in input order (a done
    # one's callback is queued right there).
    arg_to_fut = {}
    for arg in items:
        if id(arg) not in arg_to_fut:
            fut = arg_to_fut[id(arg)] = ensure_future(loop, arg)
            fut.add_done_callback(done_cb)
        children.append(arg_to_fut[id(arg)])
    nfuts = len(arg_to_fut)
    return outer


def shield(loop, arg):
    inner = ensure_future(loop, arg)
    if inner.done():
        return inner
    outer = loop.create_future()

    def inner_done(inner):
        if outer.cancelled():
            if not inner.cancelled():
                inner.exception()
            return
        if inner.cancelled():
            outer.cancel(inner.exc.msg)
        else:
            exc = inner.exception()
            if exc is not None:
                outer.set_exception(exc)
            else:
                outer.set_result(inner.value)

    def outer_done(outer):
        if not inner.done():
            inner.remove_done_callback(inner_done)

    inner.add_done_callback(inner_done)
    outer.add_done_callback(outer_done)
    return outer


class _WaitFor(Future):
    """afut_wait_for: completes as the inner does unless the timeout
    passes first; then the inner is cancelled, waited for, and the result
    fails with a timeout.  Cancelling it cancels the inner; it ends
    cancelled once the inner has ended (3.12's rules)."""

    def __init__(self, loop, inner):
        super().__init__(loop)
        self.inner = inner
        self.timer = None
        self.expired = False
        self.cancel_requested = False
        self.cancel_missed = False

    def cancel(self, msg=None):
        # In asyncio wait_for() is a coroutine, cancelled through its Task,
        # whose cancel() silences the report as Future.cancel() does.
        self.log_tb = False
        if self.done():
            return False
        self.cancel_requested = True
        if not self.inner.cancel(msg):
            self.cancel_missed = True
        return True

    def expire(self):
        self.timer = None
        self.expired = True
        self.inner.cancel()

    def inner_done(self, inner):
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None
        if self.done():
            return
        if self.cancel_requested and (inner.cancelled() or self.cancel_missed):
            if inner.cancelled():
                Future.cancel(self, inner.exc.msg)
            else:
                inner.exception()
                Future.cancel(self)
        elif self.expired and inner.cancelled():
            self.set_exception(TimeoutErr('wait_for timed out'))
        elif inner.cancelled():
            Future.cancel(self, inner.exc.msg)
        else:
            exc = inner.exception()
            if exc is not None:
                self.set_exception(exc)
            else:
                self.set_result(inner.value)


def wait_for(loop, arg, timeout):
    if arg.done() if isinstance(arg, Future) else False:
        return arg
    inner = ensure_future(loop, arg)
    w = _WaitFor(loop, inner)
    inner.add_done_callback(w.inner_done)
    if timeout <= 0:
        w.expire()
    else:
        w.timer = loop.call_later(timeout, w.expire)
    return w


class Timeout:
    """asyncio.timeout (3.11)."""

    def __init__(self, loop, delay):
        self.loop = loop
        self.when = loop.now + delay
        self.state = 'created'
        self.handle = None

    async def __aenter__(self):
        self.task = self.loop.current_task
        assert self.task is not None
        self.state = 'entered'
        self.cancelling = self.task.cancelling()
        if self.when <= self.loop.now:
            self.handle = self.loop.call_soon(self._on_timeout)
        else:
            self.handle = self.loop.call_at(self.when, self._on_timeout)
        return self

    async def __aexit__(self, exc_type, exc, tb):
        if self.handle is not None:
            self.handle.cancel()
            self.handle = None
        if self.state == 'expiring':
            self.state = 'expired'
            if (self.task.uncancel() <= self.cancelling
                    and isinstance(exc, CancelledError)):
                raise TimeoutErr('timed out') from exc
        else:
            self.state = 'exited'
        return None

    def _on_timeout(self):
        self.task.cancel()
        self.state = 'expiring'
        self.handle = None

    def expired(self):
        return self.state in ('expiring', 'expired')


class _Children:
    """A group's pending children, in the order an abort cancels them.
    asyncio (3.11 to 3.13) keeps them in a set, cancelled in hash order:
    any order is asyncio's.  afut keeps an array from which a child that
    completes is swap-removed (the last one takes its place), and cancels
    in array order; this is that order, so that traces compare."""

    def __init__(self):
        self.items = []

    def add(self, t):
        self.items.append(t)

    def discard(self, t):
        if t in self.items:
            i = self.items.index(t)
            last = self.items.pop()
            if i < len(self.items):
                self.items[i] = last

    def __iter__(self):
        return iter(list(self.items))

    def __len__(self):
        return len(self.items)


class TaskGroup:
    """asyncio.TaskGroup, after 3.11's Lib/asyncio/taskgroups.py, with
    the count-at-entry rule: the cancel request the group made of its
    parent (a child failed) is taken back once the children are done, and
    a cancellation propagates unless the count is then back to the one at
    entry (3.11: uncancel() == 0, before waiting).  No BaseException other
    than CancelledError occurs here (no base_error)."""

    def __init__(self, loop):
        self.loop = loop
        self.exiting = False
        self.aborting = False
        self.parent_task = None
        self.parent_cancel_requested = False
        self.tasks = _Children()
        self.errors = []
        self.on_completed_fut = None
        self.cancelling = 0

    async def __aenter__(self):
        self.parent_task = self.loop.current_task
        assert self.parent_task is not None
        self.cancelling = self.parent_task.cancelling()
        return self

    async def __aexit__(self, et, exc, tb):
        self.exiting = True
        self.propagate = exc if isinstance(exc, CancelledError) else None
        if exc is not None and not self.aborting:
            # The body raised, or the parent is being cancelled.
            self._abort()
        while len(self.tasks):
            if self.on_completed_fut is None:
                self.on_completed_fut = self.loop.create_future()
            try:
                await self.on_completed_fut
            except CancelledError as ex:
                if not self.aborting:
                    # The parent cancelled while it waits here.
                    self.propagate = ex
                    self._abort()
            self.on_completed_fut = None
        propagate = self.propagate
        if self.parent_cancel_requested:
            if self.parent_task.uncancel() <= self.cancelling:
                propagate = None  # the cancellation was the group's
        if propagate is not None and not self.errors:
            raise propagate
        if exc is not None and not isinstance(exc, CancelledError):
            self.errors.append(exc)
        if self.errors:
            raise BaseExceptionGroup('unhandled errors in a TaskGroup',
                                     self.errors) from None
        return None

    def create_task(self, coro):
        if self.exiting and not len(self.tasks):
            raise RuntimeError('the task group is finished')
        if self.aborting:
            raise RuntimeError('the task group is shutting down')
        task = Task(self.loop, coro)
        task.add_done_callback(self._on_task_done)
        self.tasks.add(task)
        return task

    def _abort(self):
        self.aborting = True
        for t in self.tasks:
            if not t.done():
                t.cancel()

    def _on_task_done(self, task):
        self.tasks.discard(task)
        self._wake_exit()
        self._child_error(task)

    def _wake_exit(self):
        if self.on_completed_fut is not None and not len(self.tasks):
            if not self.on_completed_fut.done():
                self.on_completed_fut.set_result(True)

    def _child_error(self, task):
        if task.cancelled():
            return
        exc = task.exception()
        if exc is None:
            return
        self.errors.append(exc)
        # (3.11 reports a child failing after its parent completed; the
        # parent waits for its children here, so that cannot happen.)
        assert not self.parent_task.done()
        if not self.aborting and not self.parent_cancel_requested:
            # Stop the body: the siblings, and the parent's await.
            self._abort()
            self.parent_cancel_requested = True
            self.parent_task.cancel()


class ModelRuntime:
    """What the interpreter (fuzzinterp.py) needs, on the model."""
    CancelledError = CancelledError
    TimeoutError = TimeoutErr
    name = 'model'

    def __init__(self):
        self.loop = Loop()

    def now(self):
        return self.loop.now

    def sleep(self, n):
        return sleep(self.loop, n)

    def yield_(self):
        return sleep(self.loop, 0)

    def create_future(self):
        return self.loop.create_future()

    def create_task(self, coro):
        return Task(self.loop, coro)

    def ensure_future(self, x):
        return ensure_future(self.loop, x)

    def gather(self, items, return_exceptions):
        return gather(self.loop, items, return_exceptions)

    def gather_children(self, g):
        return g.children

    def shield(self, x):
        return shield(self.loop, x)

    def wait_for(self, x, n):
        return wait_for(self.loop, x, n)

    def timeout(self, n):
        return Timeout(self.loop, n)

    def task_group(self):
        return TaskGroup(self.loop)

    def group_spawn(self, tg, coro):
        return tg.create_task(coro)

    def call_later(self, n, fn, *args):
        self.loop.call_later(n, fn, *args)

    def set_result(self, f, v):
        return f.set_result(v)

    def set_exception(self, f, e):
        return f.set_exception(e)

    def cancel(self, f, msg):
        return f.cancel(msg)

    def cancel_msg(self, e):
        return e.msg

    def set_name(self, t, name):
        t.name = name

    def is_task(self, f):
        return isinstance(f, Task)

    def peek(self, f):
        """(state, value, error) without retrieving anything."""
        return f.state, f.value, f.exc

    def unretrieved(self, f):
        return f.state == FAILED and f.log_tb

    def run_until_idle(self):
        self.loop.run_until_idle()

    def close(self):
        pass
