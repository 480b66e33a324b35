# asyncio's event loop on a GLib main context: the one afut and GTK run on.
#
# SPDX-License-Identifier: MIT
#
#   from gi.repository import Afut
#   import asyncio
#
#   Afut.install()            # asyncio's loops are now afut's EventLoop
#   asyncio.run(main())       # iterates the GLib main context
#
#   with asyncio.new_event_loop().running(app.quit):  # a GTK app: GTK's
#       app.run(sys.argv)                               # loop drives asyncio
#
# EventLoop is CPython's own unix SelectorEventLoop with CPython's own
# selector (epoll); only the waiting changes.  GLib waits instead of
# epoll_wait(): the loop's GSource polls the epoll fd, which is readable
# while any fd registered in it is ready, and the source's prepare, check
# and dispatch are the three parts of asyncio's _run_once: prepare gives
# GLib the timeout (0 with callbacks ready, else the first timer's
# deadline), check says whether the epoll fd or a timer is ready, dispatch
# runs _run_once, whose select() reads epoll without waiting.  So
# call_soon's FIFO, timer order, add_reader/add_writer, transports,
# subprocesses (asyncio's child watcher), executors and
# call_soon_threadsafe (its self-pipe is in the epoll set) are CPython's
# code, and every other source of the context (afut's, GTK's redraws,
# GLib timeouts) runs in between.
#
# run_forever() iterates the context itself until stop(); running() marks
# the loop running and attaches the source without blocking, so that some
# other code (Gtk.Application.run, GLib.MainLoop.run) iterates the context.
# With AFUT_CLOCK=virtual in the environment the policy's loops use a
# virtual clock, as afut_run() does: when nothing is ready, time jumps to
# the next timer, so a sleep takes no wall time (for tests).
#
# afut and asyncio on one context: an asyncio task awaits an Afut.Future
# through an asyncio future that mirrors it (_AfutWaiter), and an afut
# task awaits an asyncio future through an afut task that mirrors it
# (_mirror); a cancel crosses either way and the canceller resumes once
# the other side has cleaned up.  While asyncio's loop runs here, an afut
# task's step is asyncio.current_task(), so asyncio.TaskGroup works in it,
# and Afut.run() runs asyncio's loop too once install()ed.
#
# CPython 3.11's BaseEventLoop internals (_ready, _scheduled, _stopping,
# _run_once ...) are used here, as PyGObject 3.50's gi.events uses them.

import asyncio
import contextlib
import heapq
import math
import os
import selectors
import signal
import sys
import threading
import weakref

from gi.repository import GLib

__all__ = ['EventLoop', 'EventLoopPolicy', 'install']

# asyncio's own cap on a select() timeout, in GLib's milliseconds.
_MAX_TIMEOUT_MS = 24 * 3600 * 1000


def _check_internals():
    # The loop steps CPython's private _run_once; fail at import, loudly,
    # on an interpreter that lacks what it relies on.
    needed = ('_run_once', '_check_running', '_check_closed',
              '_set_coroutine_origin_tracking', '_asyncgen_firstiter_hook',
              '_asyncgen_finalizer_hook')
    missing = [name for name in needed
               if not hasattr(asyncio.BaseEventLoop, name)]
    if missing:
        raise ImportError('afut EventLoop: this Python\'s asyncio lacks %s'
                          % ', '.join(missing))


_check_internals()


_context_iteration = super(GLib.MainContext, GLib.MainContext).iteration

# CPython's own selector for this platform: epoll on Linux, kqueue on the
# BSDs and macOS.  Its file descriptor is readable while any fd it watches
# is ready, so GLib polls that one fd for all of them.
_PlatformSelector = selectors.DefaultSelector
if not hasattr(_PlatformSelector, 'fileno'):
    raise ImportError('afut EventLoop: %s has no file descriptor for GLib '
                      'to poll' % _PlatformSelector.__name__)


class _Selector(_PlatformSelector):
    """CPython's selector, whose select() never waits: GLib has waited on
    its file descriptor already, in the loop's GSource."""

    def select(self, timeout=None):
        return super().select(0)


class _Source(GLib.Source):
    """The loop as a GSource: it polls the selector's file descriptor, and
    its prepare, check and dispatch are the parts of asyncio's _run_once.
    It holds the loop weakly, so that a loop dropped without close() can
    still be collected."""

    def __init__(self, loop, fd):
        super().__init__()
        self._loop = weakref.ref(loop)
        self.set_name('asyncio event loop (afut)')
        # asyncio callbacks never run inside one another: a GLib main loop
        # run from a callback (a modal dialog) pauses asyncio until it ends.
        self.set_can_recurse(False)
        self._tag = self.add_unix_fd(fd, GLib.IOCondition.IN)

    # The callbacks return plain values: GLib.SOURCE_CONTINUE is a lookup
    # through PyGObject's module on every iteration.

    def prepare(self):
        loop = self._loop()
        if loop is None:
            return False, -1
        return loop._glib_prepare()

    def check(self):
        loop = self._loop()
        if loop is None:
            return False
        return bool(self.query_unix_fd(self._tag)) or loop._glib_check()

    def dispatch(self, callback, args):
        loop = self._loop()
        if loop is not None:
            loop._glib_dispatch()
        return True     # GLib.SOURCE_CONTINUE


class _ClockSource(GLib.Source):
    """A virtual clock's time: at the lowest priority, so that it is
    ready only when nothing else on the context is (afut's source, GTK's
    redraws, GLib idles), it moves the loop's time to the next timer."""

    def __init__(self, loop):
        super().__init__()
        self._loop = weakref.ref(loop)
        self.set_name('asyncio virtual clock (afut)')
        self.set_priority(GLib.PRIORITY_LOW)

    def prepare(self):
        loop = self._loop()
        return (loop is not None and loop._virtual_jump(False)), -1

    def check(self):
        loop = self._loop()
        return loop is not None and loop._virtual_jump(False)

    def dispatch(self, callback, args):
        loop = self._loop()
        if loop is not None:
            loop._virtual_jump(True)
        return GLib.SOURCE_CONTINUE


class EventLoop(asyncio.SelectorEventLoop):
    """asyncio's event loop on a GLib main context.

    @context is the GLib.MainContext it runs on (the global default one
    when None).  With @virtual_clock, time() is virtual: it stands still
    while anything is ready and jumps to the next timer when nothing is,
    so sleeps take no wall time.

    Since: 0.3
    """

    def __init__(self, context=None, *, virtual_clock=False):
        self._context = context if context is not None else GLib.MainContext.default()
        # A virtual clock starts at 0, as afut's does.
        self._virtual_now = 0.0 if virtual_clock else None
        self._quit_func = None
        self._stop_seen = False      # a dispatch ran while stop() was asked
        self._dispatching = False    # inside _run_once
        self._glib_error = None      # a BaseException a GLib callback caught
        self._pushed_context = False
        self._glib_source = None
        self._clock_source = None
        self._saved_agen_hooks = None
        self._wakeup_fd_ours = False  # _watch_signals() set it
        super().__init__(_Selector())

    @property
    def context(self):
        """The GLib.MainContext this loop runs on."""
        return self._context

    def time(self):
        if self._virtual_now is not None:
            return self._virtual_now
        return super().time()

    # ---- running ----

    def run_forever(self):
        """Iterates the GLib main context until stop() (asyncio's
        run_forever); the context's other sources run in between."""
        # g_main_context_iteration itself, not PyGObject's Python wrapper
        # of it: one call less on every iteration.
        iterate = _context_iteration
        context = self._context
        with self.running():
            while not self._stop_seen:
                iterate(context, True)
                if self._glib_error is not None:
                    self._raise_glib_error()

    @contextlib.contextmanager
    def running(self, quit_func=None):
        """Runs the loop on its context while the with-block runs, without
        iterating the context itself: for GTK apps, whose own main loop
        iterates it (`with loop.running(app.quit): app.run(argv)`).

        The loop is this thread's running loop meanwhile (asyncio.run()
        there is an error, asyncio.create_task() works from GTK signal
        handlers).  stop(), or a KeyboardInterrupt or SystemExit out of a
        callback, calls @quit_func, which should end that main loop; the
        exception is raised again when the block ends.
        """
        self._enter_running(quit_func)
        try:
            yield self
        finally:
            self._leave_running()
            error, self._glib_error = self._glib_error, None
        if error is not None:
            try:
                raise error
            finally:
                error = None

    def _enter_running(self, quit_func):
        self._check_closed()
        self._check_running()
        if not self._context.acquire():
            raise RuntimeError('the GLib main context of this loop is owned '
                               'by another thread')
        try:
            self._set_coroutine_origin_tracking(self._debug)
            self._saved_agen_hooks = sys.get_asyncgen_hooks()
            self._thread_id = threading.get_ident()
            sys.set_asyncgen_hooks(firstiter=self._asyncgen_firstiter_hook,
                                   finalizer=self._asyncgen_finalizer_hook)
            asyncio._set_running_loop(self)
            # GIO calls made from tasks complete on the loop's context.
            self._context.push_thread_default()
            self._pushed_context = True
            self._watch_signals()
            self._quit_func = quit_func
            self._stop_seen = False
            self._glib_source = _Source(self, self._selector.fileno())
            self._glib_source.attach(self._context)
            if self._virtual_now is not None:
                self._clock_source = _ClockSource(self)
                self._clock_source.attach(self._context)
        except BaseException:
            self._leave_running()
            raise

    def _leave_running(self):
        # A destroyed GSource cannot be attached again: the next run makes
        # a new one.
        if self._glib_source is not None:
            self._glib_source.destroy()
            self._glib_source = None
        if self._clock_source is not None:
            self._clock_source.destroy()
            self._clock_source = None
        self._unwatch_signals()
        if self._pushed_context:
            self._context.pop_thread_default()
            self._pushed_context = False
        self._quit_func = None
        self._stopping = False
        self._stop_seen = False
        self._thread_id = None
        asyncio._set_running_loop(None)
        self._set_coroutine_origin_tracking(False)
        if self._saved_agen_hooks is not None:
            sys.set_asyncgen_hooks(*self._saved_agen_hooks)
            self._saved_agen_hooks = None
        self._context.release()

    def _raise_glib_error(self):
        error, self._glib_error = self._glib_error, None
        if error is not None:
            try:
                raise error
            finally:
                error = None

    def _watch_signals(self):
        # A Python signal handler (asyncio.run's SIGINT one) runs only when
        # this thread runs Python code: the signal's byte on the self-pipe
        # wakes GLib's poll for it, as in asyncio's own loop.
        if threading.current_thread() is not threading.main_thread():
            return
        try:
            old = signal.set_wakeup_fd(self._csock.fileno())
        except (ValueError, OSError):
            return
        if old != -1:
            # Someone else's wakeup fd (PyGObject's, around app.run()).
            signal.set_wakeup_fd(old)
        else:
            self._wakeup_fd_ours = True

    def _unwatch_signals(self):
        if not self._wakeup_fd_ours:
            return
        self._wakeup_fd_ours = False
        if self._signal_handlers:
            return   # add_signal_handler() wants it set
        try:
            fd = signal.set_wakeup_fd(-1)
            if fd not in (-1, self._csock.fileno()):
                signal.set_wakeup_fd(fd)  # not ours: put it back
        except (ValueError, OSError):
            pass

    # ---- the GSource's three parts of _run_once ----

    def _next_deadline(self):
        scheduled = self._scheduled
        # As _run_once: cancelled timers at the head go first.
        while scheduled and scheduled[0]._cancelled:
            self._timer_cancelled_count -= 1
            handle = heapq.heappop(scheduled)
            handle._scheduled = False
        return scheduled[0]._when if scheduled else None

    def _glib_prepare(self):
        # (ready, timeout).  Ready or not, GLib polls the selector's fd;
        # _run_once's select() then reads the selector without waiting.
        try:
            if self._ready or self._stopping or self._glib_error is not None:
                return True, 0
            when = self._next_deadline()
            if when is None:
                return False, -1
            if self._virtual_now is not None:
                # A due timer is ready; a later one waits for the clock
                # source to move time.
                return (True, 0) if when <= self._virtual_now else (False, -1)
            delay = when - self.time()
            if delay <= 0:
                return True, 0
            # Rounded up: waking a little late costs nothing, waking early
            # costs an iteration with nothing to do.
            return False, min(math.ceil(delay * 1000), _MAX_TIMEOUT_MS)
        except BaseException as exc:
            self._glib_failed(exc)
            return True, 0

    def _glib_check(self):
        # The selector's fd was not ready: whether anything else is.
        try:
            if self._ready or self._stopping or self._glib_error is not None:
                return True
            when = self._next_deadline()
            if when is None:
                return False
            if self._virtual_now is not None:
                return when <= self._virtual_now
            return when < self.time() + self._clock_resolution
        except BaseException as exc:
            self._glib_failed(exc)
            return True

    def _glib_dispatch(self):
        if self._glib_error is None:
            self._dispatching = True
            try:
                self._run_once()
            except BaseException as exc:
                # KeyboardInterrupt, SystemExit (asyncio lets them out of
                # run_forever) or a bug: GLib cannot carry it, so it waits
                # here for run_forever or running() to raise it.
                self._glib_failed(exc)
            finally:
                self._dispatching = False
        if self._stopping:
            self._stop_seen = True
            self._stopping = False
            if self._quit_func is not None:
                self._quit_func()

    def _virtual_jump(self, dispatch):
        """The clock source: with nothing ready here, whether time should
        jump to the next timer; with @dispatch, jump.  Never while a
        callback runs a nested main loop: the timer could not fire."""
        if (self._ready or self._stopping or self._dispatching
                or self._glib_error is not None):
            return False
        when = self._next_deadline()
        if when is None or when <= self._virtual_now:
            return False
        if dispatch:
            self._virtual_now = when
        return True

    def _glib_failed(self, exc):
        if self._glib_error is None:
            self._glib_error = exc
        self._stopping = True

    # ---- signals ----

    def add_signal_handler(self, sig, callback, *args):
        super().add_signal_handler(sig, callback, *args)
        # asyncio's handler only writes to the wakeup fd, which
        # PyGObject replaces by its own while Gtk.Application.run() or
        # GLib.MainLoop.run() runs.  A Python-level handler runs in either
        # case, as soon as this thread runs Python code.
        signal.signal(sig, self._python_signal_handler)

    def _python_signal_handler(self, signum, frame):
        self._handle_signal(signum)

    def _process_self_data(self, data):
        pass    # the Python-level handler does the signals' work

    def __repr__(self):
        return ('<%s running=%s closed=%s debug=%s virtual_clock=%s>'
                % (type(self).__name__, self.is_running(), self.is_closed(),
                   self.get_debug(), self._virtual_now is not None))


def _virtual_clock_from_env():
    return os.environ.get('AFUT_CLOCK') == 'virtual'


class EventLoopPolicy(asyncio.DefaultEventLoopPolicy):
    """asyncio's default policy, whose loops are EventLoops: on this
    thread's default GLib.MainContext (GLib's global default one on the
    main thread, a new one on another thread that has none).  With
    AFUT_CLOCK=virtual in the environment, they use a virtual clock.

    Since: 0.3
    """

    def new_event_loop(self):
        context = GLib.MainContext.get_thread_default()
        if context is None:
            if threading.current_thread() is threading.main_thread():
                context = GLib.MainContext.default()
            else:
                context = GLib.MainContext()
        return EventLoop(context, virtual_clock=_virtual_clock_from_env())


def install():
    """Makes afut's EventLoopPolicy asyncio's policy (once; calling it
    again keeps the one installed), so that asyncio.run() and
    asyncio.new_event_loop() run on GLib.  Returns the policy.

    Since: 0.3
    """
    policy = asyncio.get_event_loop_policy()
    if not isinstance(policy, EventLoopPolicy):
        policy = EventLoopPolicy()
        asyncio.set_event_loop_policy(policy)
    return policy


# ---- afut futures and asyncio futures awaiting each other ----

class _AfutWaiter(asyncio.Future):
    """What an asyncio task awaits for an afut future: an asyncio future
    that completes when the afut future does, with its value, its
    exception object or its cancellation.  The task's cancel() cancels the
    afut future, and the waiter completes only once that has finished, so
    the task resumes after the afut side's cleanup, as it does after an
    asyncio task's."""

    def __init__(self, afut_future, loop):
        super().__init__(loop=loop)
        self._afut_future = afut_future
        afut_future.add_done_callback(self._afut_done)

    def cancel(self, msg=None):
        if self.done():
            return False
        if self._afut_future.cancel(msg):
            return True     # done later, through _afut_done
        return super().cancel(msg=msg)

    def _afut_done(self, *unused):
        future = self._afut_future
        if self.done():
            return
        try:
            value = future.result()
        except asyncio.CancelledError as exc:
            super().cancel(msg=exc.args[0] if exc.args else None)
        except BaseException as exc:
            self.set_exception(exc)
        else:
            self.set_result(value)


def _asyncio_waiter(afut_future):
    """For Afut.Future.__await__: the asyncio future an asyncio task
    waits on for @afut_future, or None outside an asyncio task."""
    loop = asyncio._get_running_loop()
    if loop is None:
        return None
    task = asyncio.current_task(loop)
    if task is None or isinstance(task, Afut().Future):
        return None     # an afut task's step: it waits on afut futures
    if not isinstance(loop, EventLoop):
        raise RuntimeError('an Afut.Future can be awaited from asyncio only '
                           'on afut\'s event loop (Afut.install()), not %r'
                           % (loop,))
    return _AfutWaiter(afut_future, loop)


def _afut_future_for(obj):
    """For afut's task runner, given what a coroutine yielded: @obj as it
    is, unless it is an asyncio future (an asyncio Future.__await__ in an
    afut task), which becomes an afut task that mirrors it."""
    if not asyncio.isfuture(obj) or isinstance(obj, Afut().Future):
        return obj
    if obj.get_loop() is not asyncio._get_running_loop():
        return obj      # its callbacks would never come: a bad yield
    obj._asyncio_future_blocking = False
    return Afut().create_task(_mirror(obj))


async def _mirror(asyncio_future):
    # It ends when the asyncio future is done, with None: the awaiting
    # coroutine resumes in asyncio's Future.__await__, which reads that
    # future's own outcome.  Cancelled (the afut task that awaits it was),
    # it cancels the asyncio future and still waits for it, as an asyncio
    # task waits for what it awaits to clean up.
    while not asyncio_future.done():
        done = Afut().Future.new()
        asyncio_future.add_done_callback(lambda *unused: done.done() or done.set_result(None))
        try:
            await done
        except asyncio.CancelledError as exc:
            asyncio_future.cancel(exc.args[0] if exc.args else None)


def _enter_afut_step(task_future):
    """Around an afut task's step, while an asyncio loop runs on this
    thread: asyncio.current_task() is that task's future, so asyncio's
    TaskGroup and timeout find their task."""
    loop = asyncio._get_running_loop()
    if loop is not None:
        asyncio.tasks._enter_task(loop, task_future)
    return loop


def _leave_afut_step(loop, task_future):
    if loop is not None:
        asyncio.tasks._leave_task(loop, task_future)


def Afut():
    # The Afut module with its overrides, imported by it first.
    from gi.repository import Afut
    return Afut


@contextlib.contextmanager
def _running_for_afut():
    """Around Afut.run(), once install()ed: an EventLoop runs on the same
    context meanwhile, so that afut tasks can await asyncio code
    (asyncio.sleep, Event, Queue, TaskGroup, to_thread).  Gives the
    function that cancels its tasks left and lets them finish, as
    asyncio.run() does, for Afut.run() to call before its own cleanup."""
    if asyncio._get_running_loop() is not None:
        # asyncio.run()'s rule: a run inside a running loop would block it.
        raise RuntimeError('Afut.run() cannot be called from a running '
                           'asyncio event loop')
    if not isinstance(asyncio.get_event_loop_policy(), EventLoopPolicy):
        yield lambda: None
        return
    loop = asyncio.new_event_loop()

    def cancel_tasks():
        left = asyncio.all_tasks(loop)
        for task in left:
            task.cancel()
        while not all(task.done() for task in left):
            loop.context.iteration(True)
            loop._raise_glib_error()

    try:
        with loop.running():
            yield cancel_tasks
    finally:
        loop.close()
