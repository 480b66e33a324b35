"""asyncio_oracle.py - the second oracle: runs fuzzer programs on CPython's
own asyncio, on a loop with a virtual clock, and compares with the model.
It checks the model (fuzzmodel.py), not afut: asyncio is the reference
semantics, the model is what the fast runs use.

What is normalized away before comparing, and why:
  - cancel messages: 3.11 keeps a task's cancel message for its first
    awaiter only, gather's results and shield drop it; afut (and the
    model) pass it on to every awaiter (DESIGN.md rule 5);
  - the unretrieved lines are read from asyncio's futures
    (_log_traceback, what __del__ reports), except futures failed with a
    CancelledError: afut has them cancelled (but for a gather failed by a
    child's own cancellation, failed in both).
wait_for is afut's (3.12's rules, as a future) built on asyncio futures,
since 3.11's differs by design (afut_wait_for's doc comment); the timer
heap breaks ties in creation order (DESIGN.md rule 3), which 3.11's heapq
does not promise.

asyncio.TaskGroup is 3.11's own, patched in two places (_TaskGroup):
  - its children are kept in afut's order, not in a set: an aborting
    group cancels them in that order (a set's is by address, and any
    order is asyncio's, so the patch changes no rule);
  - the cancel request the group made of its parent is taken back after
    the children are done, and compared with the count at entry (README:
    the count-at-entry rule, 3.13's place for the uncancel()), where 3.11
    takes it back before waiting and compares with 0.
asyncio.timeout is CPython's own Timeout with the count-at-entry rule
(_Timeout): 3.11.3 and later have it, 3.11.2 (Debian 12's) compares with
0; so the oracle gives the same answer on every CPython from 3.11 on.
"""

import asyncio
import heapq
import itertools
import re
import sys

import fuzzinterp
import fuzzprog


class _Selector:
    def __init__(self, loop):
        self.loop = loop

    def select(self, timeout):
        if timeout:
            self.loop._vt += timeout
        return []

    def close(self):
        pass


class _SeqTimerHandle(asyncio.TimerHandle):
    __slots__ = ('_seq',)

    def __lt__(self, other):
        return (self._when, self._seq) < (other._when, other._seq)

    def __le__(self, other):
        return (self._when, self._seq) <= (other._when, other._seq)

    def __gt__(self, other):
        return (self._when, self._seq) > (other._when, other._seq)

    def __ge__(self, other):
        return (self._when, self._seq) >= (other._when, other._seq)


class VirtualLoop(asyncio.BaseEventLoop):
    """asyncio's own loop; time is in ticks and jumps to the next timer."""

    def __init__(self):
        super().__init__()
        self._vt = 0
        self._selector = _Selector(self)
        self._clock_resolution = 0.5
        self._seq = itertools.count()
        self.set_exception_handler(lambda loop, context: None)

    def time(self):
        return self._vt

    def _process_events(self, event_list):
        pass

    def _write_to_self(self):
        pass

    def call_at(self, when, callback, *args, context=None):
        self._check_closed()
        timer = _SeqTimerHandle(when, callback, args, self, context)
        timer._seq = next(self._seq)
        heapq.heappush(self._scheduled, timer)
        timer._scheduled = True
        return timer

    def idle(self):
        return not self._ready and all(h._cancelled for h in self._scheduled)

    def run_until_idle(self):
        asyncio.events._set_running_loop(self)
        try:
            while not self.idle():
                self._run_once()
        finally:
            asyncio.events._set_running_loop(None)


def _cancelled(f):
    """afut's (and the model's) cancelled state: asyncio's, or failed with
    a CancelledError (how asyncio's gather ends when cancelled), except a
    gather failed by a child's own cancellation, which afut leaves failed
    as asyncio does (only gather.cancel() makes a gather cancelled)."""
    if f.cancelled():
        return True
    if not isinstance(f._exception, asyncio.CancelledError):
        return False
    return not (isinstance(f, asyncio.tasks._GatheringFuture)
                and not f._cancel_requested)


class _WaitFor(asyncio.Future):
    """afut_wait_for on asyncio futures (the model's _WaitFor)."""

    def __init__(self, loop, inner):
        super().__init__(loop=loop)
        self.inner = inner
        self.timer = None
        self.expired = False
        self.cancel_requested = False
        self.cancel_missed = False

    def cancel(self, msg=None):
        # wait_for() is a coroutine in asyncio, cancelled through its
        # Task, whose cancel() silences the report even when done (the
        # model's _WaitFor.cancel).
        self._log_traceback = False
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
        if self.cancel_requested and (_cancelled(inner) or self.cancel_missed):
            if not inner.cancelled():
                inner.exception()
            super().cancel()
        elif self.expired and _cancelled(inner):
            self.set_exception(TimeoutError('wait_for timed out'))
        elif _cancelled(inner):
            super().cancel()
        else:
            exc = inner.exception()
            if exc is not None:
                self.set_exception(exc)
            else:
                self.set_result(inner.result())


class _SwapList:
    """A TaskGroup's _tasks in afut's order: an array from which a
    completed child is swap-removed (the last one takes its place); an
    abort iterates it in array order."""

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


class _TaskGroup(asyncio.TaskGroup):
    """CPython 3.11's TaskGroup with the two patches of the module's
    docstring; __aexit__ is 3.11's, the uncancel() moved (marked)."""

    def __init__(self):
        super().__init__()
        self._tasks = _SwapList()

    async def __aenter__(self):
        r = await super().__aenter__()
        self._cancelling_at_entry = self._parent_task.cancelling()
        return r

    async def __aexit__(self, et, exc, tb):
        exceptions = asyncio.exceptions
        self._exiting = True

        if (exc is not None and
                self._is_base_error(exc) and
                self._base_error is None):
            self._base_error = exc

        propagate_cancellation_error = \
            exc if et is exceptions.CancelledError else None
        # PATCHED: 3.11 calls uncancel() here, compared with 0.

        if et is not None:
            if not self._aborting:
                self._abort()

        while self._tasks:
            if self._on_completed_fut is None:
                self._on_completed_fut = self._loop.create_future()

            try:
                await self._on_completed_fut
            except exceptions.CancelledError as ex:
                if not self._aborting:
                    propagate_cancellation_error = ex
                    self._abort()

            self._on_completed_fut = None

        assert not self._tasks

        # PATCHED: the uncancel(), after the wait, against the count at
        # entry.
        if self._parent_cancel_requested:
            if self._parent_task.uncancel() <= self._cancelling_at_entry:
                propagate_cancellation_error = None

        if self._base_error is not None:
            raise self._base_error

        if propagate_cancellation_error and not self._errors:
            raise propagate_cancellation_error

        if et is not None and et is not exceptions.CancelledError:
            self._errors.append(exc)

        if self._errors:
            try:
                me = BaseExceptionGroup('unhandled errors in a TaskGroup',
                                        self._errors)
                raise me from None
            finally:
                self._errors = None


class _Timeout(asyncio.timeouts.Timeout):
    """asyncio's Timeout with the count-at-entry rule on every CPython:
    __aenter__ and __aexit__ are 3.11.3's, which 3.11.2
    lacks (it compares uncancel() with 0).  Only the timer, the state and
    the task of the base class are used, which 3.11 to 3.13 share."""

    async def __aenter__(self):
        task = asyncio.current_task()
        if task is None:
            raise RuntimeError("Timeout should be used inside a task")
        self._state = asyncio.timeouts._State.ENTERED
        self._task = task
        # PATCHED: the count at entry (3.11.3).
        self._cancelling_at_entry = task.cancelling()
        self.reschedule(self._when)
        return self

    async def __aexit__(self, exc_type, exc_val, exc_tb):
        State = asyncio.timeouts._State
        assert self._state in (State.ENTERED, State.EXPIRING)
        if self._timeout_handler is not None:
            self._timeout_handler.cancel()
            self._timeout_handler = None
        if self._state is State.EXPIRING:
            self._state = State.EXPIRED
            # PATCHED: compared with the count at entry, not with 0.
            if (self._task.uncancel() <= self._cancelling_at_entry
                    and exc_type is asyncio.CancelledError):
                raise TimeoutError from exc_val
        elif self._state is State.ENTERED:
            self._state = State.EXITED
        return None


class AsyncioRuntime:
    CancelledError = asyncio.CancelledError
    TimeoutError = TimeoutError
    name = 'asyncio'

    def __init__(self):
        self.loop = VirtualLoop()

    def now(self):
        return int(self.loop.time())

    def sleep(self, n):
        return asyncio.sleep(n)

    def yield_(self):
        return asyncio.sleep(0)

    def create_future(self):
        return self.loop.create_future()

    def create_task(self, coro):
        return self.loop.create_task(coro)

    def ensure_future(self, x):
        return asyncio.ensure_future(x, loop=self.loop)

    def gather(self, items, return_exceptions):
        if not items:
            f = self.loop.create_future()
            f.set_result([])
            return f
        return asyncio.gather(*items, return_exceptions=return_exceptions)

    def gather_children(self, g):
        return list(getattr(g, '_children', []))

    def shield(self, x):
        return asyncio.shield(x)

    def wait_for(self, x, n):
        if x.done():
            return x
        inner = asyncio.ensure_future(x, loop=self.loop)
        w = _WaitFor(self.loop, inner)
        inner.add_done_callback(w.inner_done)
        if n <= 0:
            w.expire()
        else:
            w.timer = self.loop.call_later(n, w.expire)
        return w

    def timeout(self, n):
        return _Timeout(self.loop.time() + n)

    def task_group(self):
        return _TaskGroup()

    def group_spawn(self, tg, coro):
        return tg.create_task(coro)

    def call_later(self, n, fn, *args):
        self.loop.call_later(n, fn, *args)

    def set_result(self, f, v):
        try:
            f.set_result(v)
            return True
        except asyncio.InvalidStateError:
            return False

    def set_exception(self, f, e):
        try:
            f.set_exception(e)
            return True
        except asyncio.InvalidStateError:
            return False

    def cancel(self, f, msg):
        return f.cancel(msg)

    def cancel_msg(self, e):
        return str(e.args[0]) if e.args and e.args[0] is not None else ''

    def set_name(self, t, name):
        t.set_name(name)

    def peek(self, f):
        if not f.done():
            return 'pending', None, None
        if f.cancelled():
            return 'cancelled', None, asyncio.CancelledError(f._cancel_message)
        if f._exception is not None:
            exc = f._exception
            return ('cancelled' if _cancelled(f) else 'failed'), None, exc
        return 'done', f._result, None

    def unretrieved(self, f):
        # What asyncio's __del__ would report; a future failed with a
        # CancelledError is a cancelled one for afut, never reported,
        # unless it is a gather failed by a child's own cancellation.
        return (f.done() and f._log_traceback and not _cancelled(f))

    def run_until_idle(self):
        self.loop.run_until_idle()

    def close(self):
        pass


def run_asyncio(prog):
    return fuzzinterp.Interp(prog, AsyncioRuntime()).run()


_CANCEL = re.compile(r'cancel:[^ ,\]]*')


def normalize(text):
    return '\n'.join(_CANCEL.sub('cancel:', line)
                     for line in text.splitlines()) + '\n'


def compare(model_text, asyncio_text):
    """None if equal after normalizing, else the first difference."""
    a, b = normalize(model_text), normalize(asyncio_text)
    if a == b:
        return None
    la, lb = a.splitlines(), b.splitlines()
    i = 0
    while i < len(la) and i < len(lb) and la[i] == lb[i]:
        i += 1
    out = ['  (line %d)' % (i + 1)]
    out += ['    ' + x for x in la[max(0, i - 4):i]]
    out += ['  - ' + x for x in la[i:i + 5]] or ['  - (end)']
    out += ['  + ' + x for x in lb[i:i + 5]] or ['  + (end)']
    return '\n'.join(out)


def _check(seed):
    import fuzzmodel
    prog = fuzzprog.generate(seed, avoid=fuzzmodel.DEVIATIONS)
    return _check_prog(prog)


def _check_prog(prog):
    m = fuzzinterp.trace_text(fuzzinterp.run_model(prog))
    try:
        a = fuzzinterp.trace_text(run_asyncio(prog))
    except RecursionError:
        return None
    return compare(m, a)


def main(seeds, jobs, max_reports):
    import fuzzmodel
    fuzzmodel.DEVIATIONS.clear()
    seeds = list(seeds)
    if jobs > 1:
        import multiprocessing
        with multiprocessing.Pool(jobs) as pool:
            diffs = pool.map(_check, seeds, chunksize=200)
    else:
        diffs = [_check(s) for s in seeds]
    bad = [(s, d) for s, d in zip(seeds, diffs) if d is not None]
    print('%d programs: the model and asyncio differ on %d' % (len(seeds), len(bad)))
    for s, d in bad[:max_reports]:
        prog = fuzzprog.generate(s)
        small = fuzzprog.shrink(prog, lambda p: _check_prog(p) is not None)
        print('seed %d, shrunk:' % s)
        print(small.text())
        print(_check_prog(small))
    return 1 if bad else 0


if __name__ == '__main__':
    sys.exit(main(range(int(sys.argv[1]), int(sys.argv[2])), 2, 3))
