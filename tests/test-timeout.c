/* test-timeout.c - afut 0.2's timers and deadlines: afut_loop_call_later
 * and afut_loop_call_at, Task.cancelling()/uncancel(), afut_shield,
 * afut_wait_for, the asyncio.timeout() scope (AfutTimeout), and the
 * diagnostics (afut_task_describe, afut_loop_foreach_task,
 * afut_loop_print_tasks, the exception handler naming a task).
 *
 * Every loop runs on the virtual clock.  What ran is logged as
 * "WHAT@TIME" and compared with what CPython 3.11 prints for the
 * equivalent program, kept in a comment beside each test: prepend the
 * prelude below and run it with python3.  The prelude gives asyncio
 * afut's virtual clock and afut's order for timers due at the same time
 * (creation order, DESIGN.md rule 3, which CPython's heap leaves
 * unspecified); wait_for() there is Python 3.12's, whose cancellation
 * afut follows (see afut_wait_for's documentation). */

/* PYTHON PRELUDE (put before each reference program of this file):
 *
 *   import asyncio
 *   class VLoop(asyncio.SelectorEventLoop):
 *       # AFUT_LOOP_VIRTUAL_CLOCK: with nothing ready, time jumps to the
 *       # next timer instead of sleeping.
 *       def __init__(self):
 *           super().__init__()
 *           self.vt = 0.0
 *           select = self._selector.select
 *           def vselect(timeout=None):
 *               if timeout:
 *                   self.vt += timeout
 *               return select(0)
 *           self._selector.select = vselect
 *       def time(self):
 *           return self.vt
 *   import heapq, itertools
 *   _serial = itertools.count()
 *   class _Timer(asyncio.TimerHandle):
 *       # afut breaks timer ties by creation order (DESIGN.md rule 3);
 *       # CPython's heapq leaves them unordered.
 *       __slots__ = ('_serial',)
 *       def __lt__(self, other):
 *           return (self._when, self._serial) < (other._when, other._serial)
 *   def _call_at(self, when, callback, *args, context=None):
 *       timer = _Timer(when, callback, args, self, context)
 *       timer._serial = next(_serial)
 *       heapq.heappush(self._scheduled, timer)
 *       timer._scheduled = True
 *       return timer
 *   VLoop.call_at = _call_at
 *   events = []
 *   def ev(s):
 *       events.append(f"{s}@{asyncio.get_running_loop().time():g}")
 *   def run(main):
 *       with asyncio.Runner(loop_factory=VLoop) as runner:
 *           runner.run(main())
 *       print(" ".join(events))
 *   async def worker(label, delay, value=None, fail=None, cleanup=0,
 *                    swallow=False, fail_on_cancel=None):
 *       ev(f"{label}:start")
 *       try:
 *           await asyncio.sleep(delay)
 *       except asyncio.CancelledError:
 *           ev(f"{label}:cancelled")
 *           if cleanup:
 *               await asyncio.sleep(cleanup)
 *               ev(f"{label}:cleaned")
 *           if swallow:
 *               return value
 *           if fail_on_cancel:
 *               raise ValueError(fail_on_cancel)
 *           raise
 *       if fail:
 *           ev(f"{label}:fail")
 *           raise ValueError(fail)
 *       ev(f"{label}:end")
 *       return value
 *   async def wait_for(fut, timeout):
 *       # Python 3.12's asyncio.wait_for, whose cancellation afut follows.
 *       if timeout is not None and timeout <= 0:
 *           fut = asyncio.ensure_future(fut)
 *           if fut.done():
 *               return fut.result()
 *           await asyncio.tasks._cancel_and_wait(fut, loop=fut.get_loop())
 *           try:
 *               return fut.result()
 *           except asyncio.CancelledError as exc:
 *               raise TimeoutError from exc
 *       async with asyncio.timeout(timeout):
 *           return await fut
 *   def at(when, label, func):
 *       def fire():
 *           ev(label)
 *           func()
 *       asyncio.get_running_loop().call_at(when, fire)
 *   def state(f):
 *       if not f.done():
 *           return "pending"
 *       if f.cancelled():
 *           return "cancelled"
 *       return "failed" if f.exception() is not None else "done"
 *   def log_done(label):
 *       return lambda f: ev(f"{label}:{state(f)}")
 *   async def waiter(label, aw, reraise=False):
 *       try:
 *           r = await aw
 *       except asyncio.CancelledError:
 *           ev(f"{label}:cancelled")
 *           if reraise:
 *               raise
 *       except TimeoutError:
 *           ev(f"{label}:timeout")
 *           if reraise:
 *               raise
 *       except ValueError as e:
 *           ev(f"{label}:error:{e}")
 *           if reraise:
 *               raise
 *       else:
 *           ev(f"{label}:ok" if r is None else f"{label}:got:{r}")
 */

#define AFUT_IMPLEMENTATION
#include "afut.h"

#include <glib.h>

#include "combinator-harness.h"

/* ---- call_later, call_at ---- */

typedef struct
{
  AfutTask task;
  const char *label;
} Sleeper;

static void
sleeper (AfutTask *task)
{
  Sleeper *self = (Sleeper *) task;
  AFUT_BEGIN (task);
  AFUT_AWAIT (task, afut_sleep (1));
  tev ("%s:woke", self->label);
  AFUT_END (task);
}

typedef struct
{
  AfutTask task;
  const char *label;
  AfutFuture *h[4];
} CallMain;

static void
call_main (AfutTask *task)
{
  CallMain *self = (CallMain *) task;
  AfutLoop *loop = afut_loop_get_running ();
  AFUT_BEGIN (task);
  self->h[0] = TASK (NULL, Sleeper, sleeper, "a", .label = "a");
  AFUT_YIELD (task);
  afut_future_unref (self->h[0]);
  self->h[0] = afut_loop_call_later (loop, 1, log_cb, "later1");
  self->h[1] = afut_loop_call_at (loop, 1.0, log_cb, "at1");
  afut_future_unref (TASK (NULL, Sleeper, sleeper, "b", .label = "b"));
  self->h[2] = afut_loop_call_later (loop, 1, log_cb, "later2");
  AFUT_YIELD (task);
  self->h[3] = afut_loop_call_later (loop, 0.5, log_cb, "half");
  AFUT_AWAIT (task, afut_sleep (2));
  AFUT_END (task);
}

static void
test_call_later_same_deadline (void)
{
  AfutLoop *loop = loop_new ();
  AfutFuture *m = TASK (loop, CallMain, call_main, "main", .label = "main");
  CallMain *cm = (CallMain *) m;
  int i;

  run_until (loop, m);
  /* Python reference:
   *
   *   async def sleeper(name):
   *       await asyncio.sleep(1)
   *       ev(f"{name}:woke")
   *   async def main():
   *       loop = asyncio.get_running_loop()
   *       asyncio.create_task(sleeper("a"))
   *       await asyncio.sleep(0)
   *       loop.call_later(1, ev, "later1")
   *       loop.call_at(1.0, ev, "at1")
   *       asyncio.create_task(sleeper("b"))
   *       loop.call_later(1, ev, "later2")
   *       await asyncio.sleep(0)
   *       loop.call_later(0.5, ev, "half")
   *       await asyncio.sleep(2)
   *   run(main)
   *
   * prints: half@0.5 later1@1 at1@1 later2@1 a:woke@1 b:woke@1
   */
  /* The calls due at 1 run in the batch where the sleeps of a and b end
   * (a's timer is older than theirs, b's younger), in the order they
   * were made; the sleepers resume in the next batch. */
  assert_events ("half@0.5 later1@1 at1@1 later2@1 a:woke@1 b:woke@1");
  for (i = 0; i < 4; i++)
    {
      assert_state (cm->h[i], AFUT_FUTURE_DONE);
      g_assert_cmpint (afut_future_get_value_type (cm->h[i]), ==,
                       AFUT_VALUE_NONE);
      /* TimerHandle.cancel() after the call: nothing to stop. */
      g_assert_false (afut_future_cancel (cm->h[i], NULL));
      afut_future_unref (cm->h[i]);
    }
  afut_future_unref (m);
  loop_free (loop);
}

typedef struct
{
  AfutTask task;
  const char *label;
  AfutFuture *h;
} ZeroMain;

static void
zero_main (AfutTask *task)
{
  ZeroMain *self = (ZeroMain *) task;
  AfutLoop *loop = afut_loop_get_running ();
  AFUT_BEGIN (task);
  self->h = afut_loop_call_later (loop, 0, log_cb, "zero");
  afut_loop_call_soon (loop, log_cb, "soon");
  AFUT_YIELD (task);
  tev ("main");
  AFUT_END (task);
}

static void
test_call_later_zero_delay (void)
{
  AfutLoop *loop = loop_new ();
  AfutFuture *m = TASK (loop, ZeroMain, zero_main, "main", .label = "main");
  AfutFuture *past;

  run_until (loop, m);
  drain (loop);
  /* Python reference:
   *
   *   async def main():
   *       loop = asyncio.get_running_loop()
   *       loop.call_later(0, ev, "zero")
   *       loop.call_soon(ev, "soon")
   *       await asyncio.sleep(0)
   *       ev("main")
   *   run(main)
   *
   * prints: soon@0 main@0 zero@0
   */
  /* A delay of 0 is a timer due now: it runs in the next iteration,
   * behind what was already in the ready queue. */
  assert_events ("soon@0 main@0 zero@0");
  assert_state (((ZeroMain *) m)->h, AFUT_FUTURE_DONE);
  afut_future_unref (((ZeroMain *) m)->h);
  afut_future_unref (m);

  /* A time in the past: the next iteration too; the clock stays. */
  g_string_truncate (events, 0);
  past = afut_loop_call_at (loop, -5.0, log_cb, "past");
  g_assert_nonnull (past);
  assert_state (past, AFUT_FUTURE_PENDING);
  g_assert_cmpstr (events->str, ==, "");
  run_until (loop, past);
  assert_events ("past@0");
  afut_future_unref (past);
  loop_free (loop);
}

static void
test_call_later_cancel (void)
{
  AfutLoop *loop = loop_new ();
  AfutFuture *x = afut_loop_call_later (loop, 1, log_cb, "x");
  AfutFuture *y = afut_loop_call_later (loop, 1, log_cb, "y");
  AfutFuture *k = afut_loop_call_at (loop, 0.5, cancel_cb, x);
  AfutFuture *s = afut_loop_sleep (loop, 2);

  run_until (loop, s);
  /* Python reference:
   *
   *   async def main():
   *       loop = asyncio.get_running_loop()
   *       x = loop.call_later(1, ev, "x")
   *       loop.call_later(1, ev, "y")
   *       at(0.5, "cancel", x.cancel)
   *       await asyncio.sleep(2)
   *   run(main)
   *
   * prints: cancel@0.5 y@1
   */
  assert_events ("cancel@0.5 y@1");
  assert_cancelled (x);
  assert_state (y, AFUT_FUTURE_DONE);
  assert_state (k, AFUT_FUTURE_DONE);
  g_assert_false (afut_future_cancel (x, NULL));
  g_assert_false (afut_future_cancel (y, NULL));
  assert_idle (loop);
  afut_future_unref (x);
  afut_future_unref (y);
  afut_future_unref (k);
  afut_future_unref (s);
  loop_free (loop);
}

static void
test_call_later_cancel_removes_timer (void)
{
  AfutLoop *loop = loop_new ();
  AfutFuture *h = afut_loop_call_later (loop, 100, log_cb, "never");

  assert_state (h, AFUT_FUTURE_PENDING);
  g_assert_true (afut_future_cancel (h, NULL));
  assert_cancelled (h);
  /* The virtual clock does not jump to the cancelled call's time. */
  assert_idle (loop);
  g_assert_cmpfloat (afut_loop_time (loop), ==, 0);
  g_assert_cmpstr (events->str, ==, "");
  afut_future_unref (h);
  loop_free (loop);
}

static void
test_call_later_dropped_handle_runs (void)
{
  AfutLoop *loop = loop_new ();
  AfutFuture *s = afut_loop_sleep (loop, 2);

  afut_future_unref (afut_loop_call_later (loop, 1, log_cb, "dropped"));
  afut_future_unref (afut_loop_call_at (loop, 1.5, log_cb, "dropped-at"));
  run_until (loop, s);
  assert_events ("dropped@1 dropped-at@1.5");
  assert_idle (loop);
  afut_future_unref (s);
  loop_free (loop);
}

static void
test_call_later_bad_args (void)
{
  AfutLoop *loop = loop_new ();

  expect_log_begin (AFUT_LOG_CRITICAL, "afut_loop_call_later");
  g_assert_null (afut_loop_call_later (loop, 1, NULL, NULL));
  g_assert_null (afut_loop_call_later (NULL, 1, log_cb, "x"));
  g_assert_cmpuint (expect_log_end (), ==, 2);
  expect_log_begin (AFUT_LOG_CRITICAL, "afut_loop_call_at");
  g_assert_null (afut_loop_call_at (loop, 1, NULL, NULL));
  g_assert_null (afut_loop_call_at (NULL, 1, log_cb, "x"));
  g_assert_cmpuint (expect_log_end (), ==, 2);
  assert_idle (loop);
  loop_free (loop);
}

/* ---- cancelling, uncancel ---- */

typedef struct
{
  AfutTask task;
  const char *label;
} Uncanceller;

static void
uncanceller (AfutTask *task)
{
  AFUT_BEGIN (task);
  tev ("start:%u", afut_task_cancelling (task));
  AFUT_AWAIT_TRY (task, afut_sleep (10));
  if (afut_task_caught (task) != NULL)
    tev ("caught:%u", afut_task_cancelling (task));
  tev ("uncancel:%u", afut_task_uncancel (task));
  tev ("uncancel:%u", afut_task_uncancel (task));
  tev ("uncancel:%u", afut_task_uncancel (task));
  AFUT_AWAIT (task, afut_sleep (1));
  tev ("end");
  AFUT_RETURN_INT (task, 5);
  AFUT_END (task);
}

static void
test_cancelling_counts (void)
{
  AfutLoop *loop = loop_new ();
  AfutFuture *t = TASK (loop, Uncanceller, uncanceller, "t", .label = "t");
  AfutFuture *s = afut_loop_sleep (loop, 1);
  bool r;

  run_until (loop, s);
  r = afut_future_cancel (t, NULL);
  tev ("cancel:%d:%u", r, afut_task_cancelling (AFUT_TASK (t)));
  r = afut_future_cancel (t, NULL);
  tev ("cancel:%d:%u", r, afut_task_cancelling (AFUT_TASK (t)));
  run_until (loop, t);
  r = afut_future_cancel (t, NULL);
  tev ("result:%" PRId64 ":%u:%d:%u", afut_future_get_int (t),
       afut_task_cancelling (AFUT_TASK (t)), r,
       afut_task_cancelling (AFUT_TASK (t)));
  /* Python reference:
   *
   *   async def victim():
   *       me = asyncio.current_task()
   *       ev(f"start:{me.cancelling()}")
   *       try:
   *           await asyncio.sleep(10)
   *       except asyncio.CancelledError:
   *           ev(f"caught:{me.cancelling()}")
   *       ev(f"uncancel:{me.uncancel()}")
   *       ev(f"uncancel:{me.uncancel()}")
   *       ev(f"uncancel:{me.uncancel()}")
   *       await asyncio.sleep(1)
   *       ev("end")
   *       return 5
   *   async def main():
   *       t = asyncio.create_task(victim())
   *       await asyncio.sleep(1)
   *       ev(f"cancel:{int(t.cancel())}:{t.cancelling()}")
   *       ev(f"cancel:{int(t.cancel())}:{t.cancelling()}")
   *       r = await t
   *       ev(f"result:{r}:{t.cancelling()}:{int(t.cancel())}:{t.cancelling()}")
   *   run(main)
   *
   * prints: start:0@0 cancel:1:1@1 cancel:1:2@1 caught:2@1 uncancel:1@1
   *   uncancel:0@1 uncancel:0@1 end@2 result:5:0:0:0@2
   */
  /* Two requests, one cancellation delivered; uncancel stops at 0; a
   * done task counts no new request. */
  assert_events ("start:0@0 cancel:1:1@1 cancel:1:2@1 caught:2@1 "
                 "uncancel:1@1 uncancel:0@1 uncancel:0@1 end@2 "
                 "result:5:0:0:0@2");
  afut_future_unref (s);
  afut_future_unref (t);
  loop_free (loop);
}

static void
test_cancelling_before_first_step (void)
{
  AfutLoop *loop = loop_new ();
  AfutFuture *t = worker_new (loop, &(Worker){ .label = "t", .delay = 1 });

  g_assert_cmpuint (afut_task_cancelling (AFUT_TASK (t)), ==, 0);
  g_assert_true (afut_future_cancel (t, NULL));
  g_assert_cmpuint (afut_task_cancelling (AFUT_TASK (t)), ==, 1);
  run_until (loop, t);
  /* asyncio: the body never runs; the request stays counted. */
  g_assert_cmpstr (events->str, ==, "");
  assert_cancelled (t);
  g_assert_cmpuint (afut_task_cancelling (AFUT_TASK (t)), ==, 1);
  g_assert_cmpuint (afut_task_uncancel (AFUT_TASK (t)), ==, 0);
  afut_future_unref (t);
  loop_free (loop);
}

/* ---- shield ---- */

typedef struct
{
  AfutTask task;
  const char *label;
  AfutFuture *inner;  /* owned */
  AfutFuture *shield; /* owned */
} ShieldMain;

static void
shield_main (AfutTask *task)
{
  ShieldMain *self = (ShieldMain *) task;
  AFUT_BEGIN (task);
  self->shield = afut_shield (afut_future_ref (self->inner));
  AFUT_AWAIT_TRY (task, afut_future_ref (self->shield));
  tev ("main:%s:%d:%d", error_name (afut_task_caught (task)),
       afut_future_is_cancelled (self->shield),
       afut_future_is_done (self->inner));
  AFUT_AWAIT (task, afut_future_ref (self->inner));
  tev ("main:got:%" PRId64, afut_future_get_int (afut_task_awaited (task)));
  AFUT_END (task);
}

static void
test_shield_outer_cancelled (void)
{
  AfutLoop *loop = loop_new ();
  AfutFuture *inner = worker_new (loop, &(Worker){ .label = "inner",
                                                   .delay = 2,
                                                   .value = 7 });
  AfutFuture *m = TASK (loop, ShieldMain, shield_main, "main",
                        .inner = inner);
  ShieldMain *sm = (ShieldMain *) m;
  AfutFuture *k = afut_loop_call_at (loop, 1, cancel_cb, m);

  run_until (loop, m);
  /* Python reference:
   *
   *   async def main():
   *       me = asyncio.current_task()
   *       inner = asyncio.create_task(worker("inner", 2, value=7))
   *       at(1, "cancel", me.cancel)
   *       s = asyncio.shield(inner)
   *       try:
   *           await s
   *       except asyncio.CancelledError:
   *           ev(f"main:cancelled:{int(s.cancelled())}:{int(inner.done())}")
   *       ev(f"main:got:{await inner}")
   *   run(main)
   *
   * prints: inner:start@0 cancel@1 main:cancelled:1:0@1 inner:end@2
   *   main:got:7@2
   */
  assert_events ("inner:start@0 cancel@1 main:cancelled:1:0@1 inner:end@2 "
                 "main:got:7@2");
  assert_state (m, AFUT_FUTURE_DONE);
  assert_cancelled (sm->shield);
  assert_int (inner, 7);
  afut_future_unref (sm->shield);
  afut_future_unref (sm->inner);
  afut_future_unref (k);
  afut_future_unref (m);
  loop_free (loop);
}

static void
log_state_cb (void *data)
{
  AfutFuture *f = (AfutFuture *) data;
  tev ("state:%s", afut_future_state_to_string (afut_future_get_state (f)));
}

static void
test_shield_cancel_directly (void)
{
  AfutLoop *loop = loop_new ();
  AfutFuture *inner = worker_new (loop, &(Worker){ .label = "inner",
                                                   .delay = 2,
                                                   .value = 7 });
  AfutFuture *s = afut_shield (afut_future_ref (inner));
  AfutFuture *k = afut_loop_call_at (loop, 1, cancel_cb, s);
  AfutFuture *k2 = afut_loop_call_at (loop, 1.5, log_state_cb, inner);

  g_assert_nonnull (s);
  g_assert_true (s != inner);
  afut_future_add_done_callback (s, log_done, "shield");
  run_until (loop, inner);
  drain (loop);
  /* Python reference:
   *
   *   async def main():
   *       inner = asyncio.create_task(worker("inner", 2, value=7))
   *       s = asyncio.shield(inner)
   *       s.add_done_callback(log_done("shield"))
   *       at(1, "cancel", s.cancel)
   *       asyncio.get_running_loop().call_at(
   *           1.5, lambda: ev(f"state:{state(inner)}"))
   *       await inner
   *   run(main)
   *
   * prints: inner:start@0 cancel@1 shield:cancelled@1 state:pending@1.5
   *   inner:end@2
   */
  assert_events ("inner:start@0 cancel@1 shield:cancelled@1 "
                 "state:pending@1.5 inner:end@2");
  assert_cancelled (s);
  assert_int (inner, 7);
  afut_future_unref (k);
  afut_future_unref (k2);
  afut_future_unref (s);
  afut_future_unref (inner);
  loop_free (loop);
}

static void
test_shield_result_passes (void)
{
  AfutLoop *loop = loop_new ();
  AfutFuture *inner = worker_new (loop, &(Worker){ .label = "inner",
                                                   .delay = 1,
                                                   .value = 7 });
  AfutFuture *s = afut_shield (afut_future_ref (inner));

  afut_future_add_done_callback (s, log_done, "shield");
  run_until (loop, s);
  drain (loop);
  /* Python reference:
   *
   *   async def main():
   *       inner = asyncio.create_task(worker("inner", 1, value=7))
   *       s = asyncio.shield(inner)
   *       s.add_done_callback(log_done("shield"))
   *       await s
   *   run(main)
   *
   * prints: inner:start@0 inner:end@1 shield:done@1
   */
  assert_events ("inner:start@0 inner:end@1 shield:done@1");
  assert_int (s, 7);
  afut_future_unref (inner);
  afut_future_unref (s);
  loop_free (loop);
}

static void
test_shield_error_passes (void)
{
  AfutLoop *loop = loop_new ();
  AfutFuture *inner = worker_new (loop, &(Worker){ .label = "inner",
                                                   .delay = 1,
                                                   .fail = "boom" });
  AfutFuture *s = afut_shield (afut_future_ref (inner));

  run_until (loop, s);
  drain (loop);
  assert_events ("inner:start@0 inner:fail@1");
  assert_failed (s, "boom");
  /* The shield took the inner's error (asyncio's inner.exception()):
   * freeing the inner, whose error this test never read, reports
   * nothing. */
  assert_state (inner, AFUT_FUTURE_FAILED);
  afut_future_unref (inner);
  afut_future_unref (s);
  loop_free (loop);
}

static void
test_shield_inner_error_after_cancel (void)
{
  AfutLoop *loop = loop_new ();
  AfutFuture *inner = worker_new (loop, &(Worker){ .label = "inner",
                                                   .delay = 2,
                                                   .fail = "late" });
  AfutFuture *s = afut_shield (afut_future_ref (inner));
  AfutFuture *f = afut_future_new (loop);
  AfutFuture *s2 = afut_shield (afut_future_ref (f));

  g_assert_true (afut_future_cancel (s, NULL));
  g_assert_true (afut_future_cancel (s2, NULL));
  run_until (loop, inner);
  drain (loop);
  assert_events ("inner:start@0 inner:fail@2");
  assert_cancelled (s);
  /* As CPython 3.11 (afut_shield's documentation): a cancelled shield
   * lets go of its inner, so an error the inner fails with later is
   * nobody's, reported when the inner is freed ("Task exception was
   * never retrieved").  The state is read, not the error. */
  assert_state (inner, AFUT_FUTURE_FAILED);
  afut_future_unref (inner);
  /* The same with a plain future failed after the cancel. */
  afut_future_fail (f, afut_error_new_literal (TEST_ERROR, 7, "late"));
  drain (loop);
  assert_cancelled (s2);
  assert_state (f, AFUT_FUTURE_FAILED);
  afut_future_unref (f);
  assert_reports ("");
  /* The shields held the inners: freeing them frees the inners. */
  afut_future_unref (s);
  afut_future_unref (s2);
  assert_reports ("Task exception was never retrieved|inner|late; "
                  "Future exception was never retrieved|-|late");
  loop_free (loop);
}

/* asyncio lets go of the inner in the cancelled shield's done callback,
 * a loop turn after the cancel: an inner that fails before that has its
 * error retrieved by the shield.
 *
 *   f = loop.create_future(); s = asyncio.shield(f)
 *   s.cancel(); f.set_exception(E("early"))
 *   await asyncio.sleep(0); del f, s      # nothing reported
 */
static void
test_shield_inner_error_before_let_go (void)
{
  AfutLoop *loop = loop_new ();
  AfutFuture *f = afut_future_new (loop);
  AfutFuture *s = afut_shield (afut_future_ref (f));

  g_assert_true (afut_future_cancel (s, NULL));
  afut_future_fail (f, afut_error_new_literal (TEST_ERROR, 7, "early"));
  drain (loop);
  assert_cancelled (s);
  assert_state (f, AFUT_FUTURE_FAILED);
  afut_future_unref (f);
  afut_future_unref (s);
  assert_reports ("");
  loop_free (loop);
}

static void
test_shield_done_future (void)
{
  AfutLoop *loop = loop_new ();
  AfutFuture *f = afut_future_new (loop);
  AfutFuture *g = afut_future_new (loop);
  AfutFuture *s;

  afut_future_resolve_int (f, 3);
  s = afut_shield (afut_future_ref (f));
  /* Returned as it is, with the reference given. */
  g_assert_true (s == f);
  afut_future_unref (s);
  assert_int (f, 3);

  afut_future_fail (g, afut_error_new_literal (TEST_ERROR, 7, "done"));
  s = afut_shield (afut_future_ref (g));
  g_assert_true (s == g);
  afut_future_unref (s);
  assert_failed (g, "done");

  expect_log_begin (AFUT_LOG_CRITICAL, "afut_shield");
  g_assert_null (afut_shield (NULL));
  g_assert_cmpuint (expect_log_end (), ==, 1);
  afut_future_unref (f);
  afut_future_unref (g);
  assert_idle (loop);
  loop_free (loop);
}

static void
test_shield_starts_coroutine (void)
{
  AfutLoop *loop = loop_new ();
  AfutFuture *c = worker_coro (loop, &(Worker){ .label = "c", .delay = 1,
                                                .value = 4 });
  AfutFuture *s = afut_shield (c);

  g_assert_nonnull (s);
  /* Started as asyncio.ensure_future() does: scheduled, not run inside
   * the call. */
  g_assert_cmpstr (events->str, ==, "");
  g_assert_cmpuint (afut_loop_get_n_tasks (loop), ==, 1);
  run_until (loop, s);
  assert_events ("c:start@0 c:end@1");
  assert_int (s, 4);
  afut_future_unref (s);
  loop_free (loop);
}

static void
test_shield_inner_cancelled (void)
{
  AfutLoop *loop = loop_new ();
  AfutFuture *inner = worker_new (loop, &(Worker){ .label = "inner",
                                                   .delay = 5 });
  AfutFuture *s = afut_shield (afut_future_ref (inner));
  AfutFuture *k = afut_loop_call_at (loop, 1, cancel_cb, inner);

  afut_future_add_done_callback (s, log_done, "shield");
  run_until (loop, s);
  drain (loop);
  /* Python reference:
   *
   *   async def main():
   *       inner = asyncio.create_task(worker("inner", 5))
   *       s = asyncio.shield(inner)
   *       s.add_done_callback(log_done("shield"))
   *       at(1, "cancel", inner.cancel)
   *       await asyncio.wait([s])
   *   run(main)
   *
   * prints: inner:start@0 cancel@1 inner:cancelled@1 shield:cancelled@1
   */
  assert_events ("inner:start@0 cancel@1 inner:cancelled@1 "
                 "shield:cancelled@1");
  assert_cancelled (s);
  assert_cancelled (inner);
  afut_future_unref (k);
  afut_future_unref (s);
  afut_future_unref (inner);
  loop_free (loop);
}

/* ---- wait_for ---- */

static void
test_wait_for_in_time (void)
{
  AfutLoop *loop = loop_new ();
  AfutFuture *w = worker_new (loop, &(Worker){ .label = "w", .delay = 1,
                                               .value = 5 });
  AfutFuture *m = TASK (loop, Waiter, waiter, "main", .label = "main",
                        .future = afut_wait_for (w, 2));

  run_until (loop, m);
  /* Python reference:
   *
   *   async def main():
   *       w = asyncio.create_task(worker("w", 1, value=5))
   *       await waiter("main", wait_for(w, 2))
   *   run(main)
   *
   * prints: w:start@0 w:end@1 main:got:5@1
   */
  assert_events ("w:start@0 w:end@1 main:got:5@1");
  assert_state (m, AFUT_FUTURE_DONE);
  /* The deadline's timer went with it: the clock stays at 1. */
  assert_idle (loop);
  g_assert_cmpfloat (afut_loop_time (loop), ==, 1);
  afut_future_unref (m);
  loop_free (loop);
}

static void
test_wait_for_deadline_ties_inner (void)
{
  AfutLoop *loop = loop_new ();
  AfutFuture *w = worker_new (loop, &(Worker){ .label = "w", .delay = 2,
                                               .value = 5 });
  AfutFuture *m = TASK (loop, Waiter, waiter, "main", .label = "main",
                        .future = afut_wait_for (w, 2));

  run_until (loop, m);
  /* Python reference:
   *
   *   async def main():
   *       w = asyncio.create_task(worker("w", 2, value=5))
   *       await waiter("main", wait_for(w, 2))
   *   run(main)
   *
   * prints: w:start@0 w:cancelled@2 main:timeout@2
   */
  /* The deadline's timer is older than the inner's sleep, due at the
   * same time: it fires first and the inner is cancelled. */
  assert_events ("w:start@0 w:cancelled@2 main:timeout@2");
  afut_future_unref (m);
  loop_free (loop);
}

static void
test_wait_for_expiry_waits_cleanup (void)
{
  AfutLoop *loop = loop_new ();
  AfutFuture *w = worker_new (loop, &(Worker){ .label = "w", .delay = 10,
                                               .cleanup = 1 });
  AfutFuture *wf = afut_wait_for (afut_future_ref (w), 2);
  AfutFuture *m = TASK (loop, Waiter, waiter, "main", .label = "main",
                        .future = afut_future_ref (wf));

  run_until (loop, m);
  /* Python reference:
   *
   *   async def main():
   *       w = asyncio.create_task(worker("w", 10, cleanup=1))
   *       await waiter("main", wait_for(w, 2))
   *   run(main)
   *
   * prints: w:start@0 w:cancelled@2 w:cleaned@3 main:timeout@3
   */
  /* The inner's cleanup ends before the timeout reaches the awaiter. */
  assert_events ("w:start@0 w:cancelled@2 w:cleaned@3 main:timeout@3");
  assert_timeout (wf);
  assert_cancelled (w);
  assert_idle (loop);
  afut_future_unref (wf);
  afut_future_unref (w);
  afut_future_unref (m);
  loop_free (loop);
}

static void
test_wait_for_zero_timeout_done (void)
{
  AfutLoop *loop = loop_new ();
  AfutFuture *f = afut_future_new (loop);
  AfutFuture *a, *b;

  afut_future_resolve_int (f, 3);
  a = afut_wait_for (afut_future_ref (f), 0);
  b = afut_wait_for (afut_future_ref (f), -1);
  run_until (loop, a);
  run_until (loop, b);
  assert_int (a, 3);
  assert_int (b, 3);
  g_assert_cmpfloat (afut_loop_time (loop), ==, 0);
  assert_int (f, 3);
  assert_idle (loop);
  afut_future_unref (a);
  afut_future_unref (b);
  afut_future_unref (f);
  loop_free (loop);
}

static void
test_wait_for_zero_timeout_pending_future (void)
{
  AfutLoop *loop = loop_new ();
  AfutFuture *f = afut_future_new (loop);
  AfutFuture *a = afut_wait_for (afut_future_ref (f), 0);

  run_until (loop, a);
  /* asyncio: a pending future is cancelled, then TimeoutError. */
  assert_timeout (a);
  assert_cancelled (f);
  g_assert_cmpfloat (afut_loop_time (loop), ==, 0);
  assert_idle (loop);
  afut_future_unref (a);
  afut_future_unref (f);
  loop_free (loop);
}

typedef struct
{
  AfutTask task;
  const char *label;
  AfutFuture *w;
  double timeout;
} ZeroWaitMain;

static void
zero_wait_main (AfutTask *task)
{
  ZeroWaitMain *self = (ZeroWaitMain *) task;
  AFUT_BEGIN (task);
  self->w = WORKER (.label = "w", .delay = 10, .cleanup = 1);
  AFUT_YIELD (task);
  AFUT_AWAIT_TRY (task, afut_wait_for (afut_future_ref (self->w),
                                       self->timeout));
  tev ("main:%s:%d", error_name (afut_task_caught (task)),
       afut_future_is_cancelled (self->w));
  afut_future_unref (self->w);
  self->w = NULL;
  AFUT_END (task);
}

static void
test_wait_for_zero_timeout_pending_task (void)
{
  AfutLoop *loop = loop_new ();
  AfutFuture *m = TASK (loop, ZeroWaitMain, zero_wait_main, "main",
                        .timeout = -1);

  run_until (loop, m);
  /* Python reference:
   *
   *   async def main():
   *       w = asyncio.create_task(worker("w", 10, cleanup=1))
   *       await asyncio.sleep(0)
   *       try:
   *           await wait_for(w, -1)
   *       except TimeoutError:
   *           ev(f"main:timeout:{int(w.cancelled())}")
   *   run(main)
   *
   * prints: w:start@0 w:cancelled@0 w:cleaned@1 main:timeout:1@1
   */
  assert_events ("w:start@0 w:cancelled@0 w:cleaned@1 main:timeout:1@1");
  assert_state (m, AFUT_FUTURE_DONE);
  afut_future_unref (m);
  loop_free (loop);
}

static void
test_wait_for_inner_swallows (void)
{
  AfutLoop *loop = loop_new ();
  AfutFuture *w = worker_new (loop, &(Worker){ .label = "w", .delay = 10,
                                               .value = 42, .cleanup = 1,
                                               .swallow = true });
  AfutFuture *wf = afut_wait_for (w, 2);
  AfutFuture *m = TASK (loop, Waiter, waiter, "main", .label = "main",
                        .future = afut_future_ref (wf));

  run_until (loop, m);
  /* Python reference:
   *
   *   async def main():
   *       w = asyncio.create_task(worker("w", 10, value=42, cleanup=1,
   *                                      swallow=True))
   *       await waiter("main", wait_for(w, 2))
   *   run(main)
   *
   * prints: w:start@0 w:cancelled@2 w:cleaned@3 main:got:42@3
   */
  assert_events ("w:start@0 w:cancelled@2 w:cleaned@3 main:got:42@3");
  assert_int (wf, 42);
  afut_future_unref (wf);
  afut_future_unref (m);
  loop_free (loop);
}

static void
test_wait_for_inner_raises_other (void)
{
  AfutLoop *loop = loop_new ();
  AfutFuture *w = worker_new (loop, &(Worker){ .label = "w", .delay = 10,
                                               .fail_on_cancel = "other" });
  AfutFuture *wf = afut_wait_for (w, 2);
  AfutFuture *m = TASK (loop, Waiter, waiter, "main", .label = "main",
                        .future = afut_future_ref (wf));

  run_until (loop, m);
  /* Python reference:
   *
   *   async def main():
   *       w = asyncio.create_task(worker("w", 10, fail_on_cancel="other"))
   *       await waiter("main", wait_for(w, 2))
   *   run(main)
   *
   * prints: w:start@0 w:cancelled@2 main:error:other@2
   */
  assert_events ("w:start@0 w:cancelled@2 main:error:other@2");
  assert_failed (wf, "other");
  afut_future_unref (wf);
  afut_future_unref (m);
  loop_free (loop);
}

static void
test_wait_for_outer_cancelled (void)
{
  AfutLoop *loop = loop_new ();
  AfutFuture *w = worker_new (loop, &(Worker){ .label = "w", .delay = 10,
                                               .cleanup = 1 });
  AfutFuture *wf = afut_wait_for (afut_future_ref (w), 5);
  AfutFuture *m = TASK (loop, Waiter, waiter, "main", .label = "main",
                        .future = afut_future_ref (wf), .reraise = true);
  AfutFuture *k = afut_loop_call_at (loop, 1, cancel_cb, m);

  run_until (loop, m);
  /* Python reference:
   *
   *   async def main():
   *       w = asyncio.create_task(worker("w", 10, cleanup=1))
   *       m = asyncio.create_task(waiter("main", wait_for(w, 5), reraise=True))
   *       at(1, "cancel", m.cancel)
   *       await asyncio.wait([m])
   *   run(main)
   *
   * prints: w:start@0 cancel@1 w:cancelled@1 w:cleaned@2 main:cancelled@2
   */
  /* The awaiter sees its cancellation once the inner has ended (Python
   * 3.12's wait_for). */
  assert_events ("w:start@0 cancel@1 w:cancelled@1 w:cleaned@2 "
                 "main:cancelled@2");
  assert_cancelled (m);
  assert_cancelled (wf);
  assert_cancelled (w);
  assert_idle (loop);
  afut_future_unref (k);
  afut_future_unref (wf);
  afut_future_unref (w);
  afut_future_unref (m);
  loop_free (loop);
}

static void
test_wait_for_cancel_result (void)
{
  AfutLoop *loop = loop_new ();
  AfutFuture *w = worker_new (loop, &(Worker){ .label = "w", .delay = 10,
                                               .cleanup = 1 });
  AfutFuture *wf = afut_wait_for (afut_future_ref (w), 5);
  AfutFuture *k = afut_loop_call_at (loop, 1, cancel_cb, wf);
  AfutFuture *k2 = afut_loop_call_at (loop, 1.5, log_state_cb, wf);

  afut_future_add_done_callback (wf, log_done, "wf");
  run_until (loop, wf);
  drain (loop);
  /* Cancelling the result itself: it stays pending while the inner
   * cleans up, and ends cancelled after it (as the task-level test
   * above, whose Python reference this follows). */
  assert_events ("w:start@0 cancel@1 w:cancelled@1 state:pending@1.5 "
                 "w:cleaned@2 wf:cancelled@2");
  assert_cancelled (wf);
  assert_cancelled (w);
  assert_idle (loop);
  afut_future_unref (k);
  afut_future_unref (k2);
  afut_future_unref (wf);
  afut_future_unref (w);
  loop_free (loop);
}

static void
test_wait_for_plain_future_expires (void)
{
  AfutLoop *loop = loop_new ();
  AfutFuture *f = afut_future_new (loop);
  AfutFuture *wf = afut_wait_for (afut_future_ref (f), 1);

  afut_future_add_done_callback (f, log_done, "f");
  afut_future_add_done_callback (wf, log_done, "wf");
  run_until (loop, wf);
  drain (loop);
  assert_events ("f:cancelled@1 wf:failed@1");
  assert_timeout (wf);
  assert_cancelled (f);
  afut_future_unref (wf);
  afut_future_unref (f);
  loop_free (loop);
}

static void
test_wait_for_no_timeout (void)
{
  AfutLoop *loop = loop_new ();
  AfutFuture *w = worker_new (loop, &(Worker){ .label = "w", .delay = 1000,
                                               .value = 9 });
  AfutFuture *wf = afut_wait_for (w, AFUT_NO_TIMEOUT);

  g_assert_nonnull (wf);
  run_until (loop, wf);
  assert_events ("w:start@0 w:end@1000");
  assert_int (wf, 9);
  assert_idle (loop);
  afut_future_unref (wf);
  loop_free (loop);
}

static void
test_wait_for_pointer_lent (void)
{
  AfutLoop *loop = loop_new ();
  AfutFuture *p = TASK (loop, Sleeper, pointer_task, "p", .label = "p");
  AfutFuture *wf = afut_wait_for (afut_future_ref (p), 5);

  run_until (loop, wf);
  drain (loop);
  afut_future_unref (p);
  /* The result keeps the inner, whose value it lends, alive. */
  assert_state (wf, AFUT_FUTURE_DONE);
  g_assert_cmpint (afut_future_get_value_type (wf), ==, AFUT_VALUE_POINTER);
  g_assert_cmpstr ((const char *) afut_future_get_pointer (wf), ==,
                   "payload");
  g_assert_cmpuint (n_destroyed, ==, 0);
  afut_future_unref (wf);
  g_assert_cmpuint (n_destroyed, ==, 1);
  loop_free (loop);
}

static void
test_wait_for_starts_coroutine (void)
{
  AfutLoop *loop = loop_new ();
  AfutFuture *c = worker_coro (loop, &(Worker){ .label = "c", .delay = 1,
                                                .value = 4 });
  AfutFuture *wf = afut_wait_for (c, 5);

  g_assert_cmpstr (events->str, ==, "");
  run_until (loop, wf);
  assert_events ("c:start@0 c:end@1");
  assert_int (wf, 4);
  assert_idle (loop);
  afut_future_unref (wf);
  loop_free (loop);
}

/* ---- timeout scopes ---- */

typedef struct
{
  AfutTask task;
  const char *label;
  AfutTimeout timeout;
  AfutTimeout inner;
  bool flag;
  bool expired;
} Scoped;

#define SCOPED(loop, func) TASK (loop, Scoped, func, "body", .label = "body")

static const char *
when_text (double when)
{
  static char buf[64];
  if (isinf (when))
    return "None";
  g_snprintf (buf, sizeof buf, "%g", when);
  return buf;
}

static void
scope_plain (AfutTask *task)
{
  Scoped *self = (Scoped *) task;
  AFUT_BEGIN (task);
  afut_timeout_enter (task, &self->timeout, 1);
  tev ("body:enter");
  AFUT_AWAIT (task, afut_sleep (10));
  tev ("body:not-reached");
  afut_timeout_exit (&self->timeout);
  AFUT_END (task);
}

static void
test_scope_plain_await_expires (void)
{
  AfutLoop *loop = loop_new ();
  AfutFuture *t = SCOPED (loop, scope_plain);

  run_until (loop, t);
  tev ("main:%s:%u", error_name (afut_future_get_error (t)),
       afut_task_cancelling (AFUT_TASK (t)));
  /* Python reference:
   *
   *   async def body():
   *       async with asyncio.timeout(1):
   *           ev("body:enter")
   *           await asyncio.sleep(10)
   *           ev("body:not-reached")
   *   async def main():
   *       t = asyncio.create_task(body())
   *       try:
   *           await t
   *       except TimeoutError:
   *           ev(f"main:timeout:{t.cancelling()}")
   *   run(main)
   *
   * prints: body:enter@0 main:timeout:0@1
   */
  assert_events ("body:enter@0 main:timeout:0@1");
  assert_timeout (t);
  g_assert_true (afut_timeout_expired (&((Scoped *) t)->timeout));
  assert_idle (loop);
  afut_future_unref (t);
  loop_free (loop);
}

static void
scope_try_exit (AfutTask *task)
{
  Scoped *self = (Scoped *) task;
  AFUT_BEGIN (task);
  afut_timeout_enter (task, &self->timeout, 1);
  AFUT_AWAIT_TRY (task, afut_sleep (10));
  tev ("body:caught:%s:%u", error_name (afut_task_caught (task)),
       afut_task_cancelling (task));
  self->expired = afut_timeout_exit (&self->timeout);
  tev ("body:exit:%d:%s:%u", self->expired,
       error_name (afut_task_caught (task)), afut_task_cancelling (task));
  AFUT_RETURN_INT (task, 3);
  AFUT_END (task);
}

static void
test_scope_try_exit_converts (void)
{
  AfutLoop *loop = loop_new ();
  AfutFuture *t = SCOPED (loop, scope_try_exit);

  run_until (loop, t);
  log_outcome ("main", t);
  /* Python reference:
   *
   *   async def body():
   *       me = asyncio.current_task()
   *       try:
   *           async with asyncio.timeout(1) as cm:
   *               try:
   *                   await asyncio.sleep(10)
   *               except asyncio.CancelledError:
   *                   ev(f"body:caught:cancelled:{me.cancelling()}")
   *                   raise
   *       except TimeoutError:
   *           ev(f"body:exit:{int(cm.expired())}:timeout:{me.cancelling()}")
   *       return 3
   *   async def main():
   *       await waiter("main", asyncio.create_task(body()))
   *   run(main)
   *
   * prints: body:caught:cancelled:1@1 body:exit:1:timeout:0@1 main:got:3@1
   */
  assert_events ("body:caught:cancelled:1@1 body:exit:1:timeout:0@1 "
                 "main:got:3@1");
  assert_int (t, 3);
  afut_future_unref (t);
  loop_free (loop);
}

static void
scope_handled (AfutTask *task)
{
  Scoped *self = (Scoped *) task;
  AFUT_BEGIN (task);
  afut_timeout_enter (task, &self->timeout, 1);
  AFUT_AWAIT_TRY (task, afut_sleep (10));
  tev ("body:caught:%s:%u", error_name (afut_task_caught (task)),
       afut_task_cancelling (task));
  afut_task_clear_caught (task); /* except CancelledError: pass */
  self->expired = afut_timeout_exit (&self->timeout);
  tev ("body:exit:%d:%s:%u", self->expired,
       error_name (afut_task_caught (task)), afut_task_cancelling (task));
  AFUT_RETURN_INT (task, 3);
  AFUT_END (task);
}

/* A block that handles the expiry's cancellation and falls out of the
 * `async with` leaves it with nothing raised. */
static void
test_scope_handled_cancel_raises_nothing (void)
{
  AfutLoop *loop = loop_new ();
  AfutFuture *t = SCOPED (loop, scope_handled);

  run_until (loop, t);
  log_outcome ("main", t);
  /* Python reference (CPython 3.11.2, /usr/bin/python3):
   *
   *   async def body():
   *       me = asyncio.current_task()
   *       async with asyncio.timeout(1) as cm:
   *           try:
   *               await asyncio.sleep(10)
   *           except asyncio.CancelledError:
   *               ev(f"body:caught:cancelled:{me.cancelling()}")
   *       ev(f"body:exit:{int(cm.expired())}:none:{me.cancelling()}")
   *       return 3
   *   async def main():
   *       await waiter("main", asyncio.create_task(body()))
   *   run(main)
   *
   * prints: body:caught:cancelled:1@1 body:exit:1:none:0@1 main:got:3@1
   */
  assert_events ("body:caught:cancelled:1@1 body:exit:1:none:0@1 "
                 "main:got:3@1");
  assert_int (t, 3);
  afut_future_unref (t);
  loop_free (loop);
}

static void
scope_cleanup (AfutTask *task)
{
  Scoped *self = (Scoped *) task;
  AFUT_BEGIN (task);
  afut_timeout_enter (task, &self->timeout, 1);
  AFUT_AWAIT_TRY (task, afut_sleep (10));
  tev ("body:caught");
  AFUT_AWAIT (task, afut_sleep (1));
  tev ("body:cleaned");
  if (self->flag)
    afut_timeout_exit (&self->timeout);
  AFUT_RERAISE (task);
  AFUT_END (task);
}

static void
check_scope_cleanup (bool exit_first)
{
  AfutLoop *loop = loop_new ();
  AfutFuture *t = TASK (loop, Scoped, scope_cleanup, "body",
                        .flag = exit_first);

  run_until (loop, t);
  log_outcome ("main", t);
  /* Python reference:
   *
   *   async def body():
   *       async with asyncio.timeout(1):
   *           try:
   *               await asyncio.sleep(10)
   *           except asyncio.CancelledError:
   *               ev("body:caught")
   *               await asyncio.sleep(1)
   *               ev("body:cleaned")
   *               raise
   *   async def main():
   *       await waiter("main", asyncio.create_task(body()))
   *   run(main)
   *
   * prints: body:caught@1 body:cleaned@2 main:timeout@2
   */
  /* The cleanup await after the expiry is not cancelled again; the
   * re-raised cancellation becomes a timeout where it leaves the scope:
   * at afut_timeout_exit () or, raised inside it, as the task ends. */
  assert_events ("body:caught@1 body:cleaned@2 main:timeout@2");
  assert_timeout (t);
  g_assert_cmpuint (afut_task_cancelling (AFUT_TASK (t)), ==, 0);
  assert_idle (loop);
  afut_future_unref (t);
  loop_free (loop);
}

static void
test_scope_cleanup_then_exit (void)
{
  check_scope_cleanup (true);
}

static void
test_scope_cleanup_reraise_inside (void)
{
  check_scope_cleanup (false);
}

static void
scope_swallow (AfutTask *task)
{
  Scoped *self = (Scoped *) task;
  AFUT_BEGIN (task);
  afut_timeout_enter (task, &self->timeout, 1);
  AFUT_AWAIT_TRY (task, afut_sleep (10));
  tev ("body:caught:%s", error_name (afut_task_caught (task)));
  /* returns inside the scope, the cancellation swallowed */
  AFUT_RETURN_INT (task, 4);
  AFUT_END (task);
}

static void
test_scope_swallowed_return_inside (void)
{
  AfutLoop *loop = loop_new ();
  AfutFuture *t = SCOPED (loop, scope_swallow);

  run_until (loop, t);
  log_outcome ("main", t);
  /* Python reference:
   *
   *   async def body():
   *       async with asyncio.timeout(1):
   *           try:
   *               await asyncio.sleep(10)
   *           except asyncio.CancelledError:
   *               ev("body:caught:cancelled")
   *           return 4
   *   async def main():
   *       await waiter("main", asyncio.create_task(body()))
   *   run(main)
   *
   * prints: body:caught:cancelled@1 main:got:4@1
   */
  assert_events ("body:caught:cancelled@1 main:got:4@1");
  assert_int (t, 4);
  g_assert_cmpuint (afut_task_cancelling (AFUT_TASK (t)), ==, 0);
  g_assert_true (afut_timeout_expired (&((Scoped *) t)->timeout));
  afut_future_unref (t);
  loop_free (loop);
}

static void
scope_reschedule_earlier (AfutTask *task)
{
  Scoped *self = (Scoped *) task;
  AFUT_BEGIN (task);
  afut_timeout_enter (task, &self->timeout, 10);
  AFUT_AWAIT (task, afut_sleep (1));
  afut_timeout_reschedule (&self->timeout, now () + 1);
  tev ("body:when:%s", when_text (afut_timeout_when (&self->timeout)));
  AFUT_AWAIT (task, afut_sleep (10));
  tev ("body:not-reached");
  afut_timeout_exit (&self->timeout);
  AFUT_END (task);
}

static void
test_scope_reschedule_earlier (void)
{
  AfutLoop *loop = loop_new ();
  AfutFuture *t = SCOPED (loop, scope_reschedule_earlier);

  run_until (loop, t);
  log_outcome ("main", t);
  /* Python reference:
   *
   *   async def body():
   *       loop = asyncio.get_running_loop()
   *       async with asyncio.timeout(10) as cm:
   *           await asyncio.sleep(1)
   *           cm.reschedule(loop.time() + 1)
   *           ev(f"body:when:{cm.when():g}")
   *           await asyncio.sleep(10)
   *           ev("body:not-reached")
   *   async def main():
   *       await waiter("main", asyncio.create_task(body()))
   *   run(main)
   *
   * prints: body:when:2@1 main:timeout@2
   */
  assert_events ("body:when:2@1 main:timeout@2");
  assert_idle (loop);
  afut_future_unref (t);
  loop_free (loop);
}

static void
scope_reschedule_later (AfutTask *task)
{
  Scoped *self = (Scoped *) task;
  AFUT_BEGIN (task);
  afut_timeout_enter (task, &self->timeout, 1);
  afut_timeout_reschedule (&self->timeout, now () + 5);
  AFUT_AWAIT (task, afut_sleep (3));
  tev ("body:slept");
  AFUT_AWAIT (task, afut_sleep (10));
  tev ("body:not-reached");
  afut_timeout_exit (&self->timeout);
  AFUT_END (task);
}

static void
test_scope_reschedule_later (void)
{
  AfutLoop *loop = loop_new ();
  AfutFuture *t = SCOPED (loop, scope_reschedule_later);

  run_until (loop, t);
  log_outcome ("main", t);
  /* Python reference:
   *
   *   async def body():
   *       loop = asyncio.get_running_loop()
   *       async with asyncio.timeout(1) as cm:
   *           cm.reschedule(loop.time() + 5)
   *           await asyncio.sleep(3)
   *           ev("body:slept")
   *           await asyncio.sleep(10)
   *           ev("body:not-reached")
   *   async def main():
   *       await waiter("main", asyncio.create_task(body()))
   *   run(main)
   *
   * prints: body:slept@3 main:timeout@5
   */
  assert_events ("body:slept@3 main:timeout@5");
  assert_idle (loop);
  afut_future_unref (t);
  loop_free (loop);
}

static void
scope_reschedule_none (AfutTask *task)
{
  Scoped *self = (Scoped *) task;
  AFUT_BEGIN (task);
  afut_timeout_enter (task, &self->timeout, 1);
  afut_timeout_reschedule (&self->timeout, AFUT_NO_TIMEOUT);
  tev ("body:when:%s", when_text (afut_timeout_when (&self->timeout)));
  AFUT_AWAIT (task, afut_sleep (3));
  tev ("body:slept");
  self->expired = afut_timeout_exit (&self->timeout);
  tev ("body:exit:%d", self->expired);
  AFUT_RETURN_INT (task, 3);
  AFUT_END (task);
}

static void
test_scope_reschedule_none (void)
{
  AfutLoop *loop = loop_new ();
  AfutFuture *t = SCOPED (loop, scope_reschedule_none);

  run_until (loop, t);
  log_outcome ("main", t);
  /* Python reference:
   *
   *   async def body():
   *       async with asyncio.timeout(1) as cm:
   *           cm.reschedule(None)
   *           ev(f"body:when:{cm.when()}")
   *           await asyncio.sleep(3)
   *           ev("body:slept")
   *       ev(f"body:exit:{int(cm.expired())}")
   *       return 3
   *   async def main():
   *       await waiter("main", asyncio.create_task(body()))
   *   run(main)
   *
   * prints: body:when:None@0 body:slept@3 body:exit:0@3 main:got:3@3
   */
  assert_events ("body:when:None@0 body:slept@3 body:exit:0@3 main:got:3@3");
  assert_int (t, 3);
  g_assert_false (afut_timeout_expired (&((Scoped *) t)->timeout));
  assert_idle (loop);
  afut_future_unref (t);
  loop_free (loop);
}

static void
scope_reschedule_past (AfutTask *task)
{
  Scoped *self = (Scoped *) task;
  AFUT_BEGIN (task);
  afut_timeout_enter (task, &self->timeout, 10);
  AFUT_AWAIT (task, afut_sleep (1));
  afut_timeout_reschedule (&self->timeout, 0.5);
  tev ("body:rescheduled:%d", afut_timeout_expired (&self->timeout));
  AFUT_AWAIT (task, afut_sleep (10));
  tev ("body:not-reached");
  afut_timeout_exit (&self->timeout);
  AFUT_END (task);
}

static void
test_scope_reschedule_past (void)
{
  AfutLoop *loop = loop_new ();
  AfutFuture *t = SCOPED (loop, scope_reschedule_past);

  run_until (loop, t);
  log_outcome ("main", t);
  /* Python reference:
   *
   *   async def body():
   *       async with asyncio.timeout(10) as cm:
   *           await asyncio.sleep(1)
   *           cm.reschedule(0.5)
   *           ev(f"body:rescheduled:{int(cm.expired())}")
   *           await asyncio.sleep(10)
   *           ev("body:not-reached")
   *   async def main():
   *       await waiter("main", asyncio.create_task(body()))
   *   run(main)
   *
   * prints: body:rescheduled:0@1 main:timeout@1
   */
  /* A deadline in the past expires at once, on the next iteration. */
  assert_events ("body:rescheduled:0@1 main:timeout@1");
  assert_idle (loop);
  afut_future_unref (t);
  loop_free (loop);
}

static void
scope_enter_none (AfutTask *task)
{
  Scoped *self = (Scoped *) task;
  AFUT_BEGIN (task);
  afut_timeout_enter (task, &self->timeout, AFUT_NO_TIMEOUT);
  tev ("body:when:%s", when_text (afut_timeout_when (&self->timeout)));
  AFUT_AWAIT (task, afut_sleep (1));
  afut_timeout_reschedule (&self->timeout, now () + 1);
  AFUT_AWAIT (task, afut_sleep (10));
  tev ("body:not-reached");
  afut_timeout_exit (&self->timeout);
  AFUT_END (task);
}

static void
test_scope_enter_none_then_reschedule (void)
{
  AfutLoop *loop = loop_new ();
  AfutFuture *t = SCOPED (loop, scope_enter_none);

  run_until (loop, t);
  log_outcome ("main", t);
  /* Python reference:
   *
   *   async def body():
   *       loop = asyncio.get_running_loop()
   *       async with asyncio.timeout(None) as cm:
   *           ev(f"body:when:{cm.when()}")
   *           await asyncio.sleep(1)
   *           cm.reschedule(loop.time() + 1)
   *           await asyncio.sleep(10)
   *           ev("body:not-reached")
   *   async def main():
   *       await waiter("main", asyncio.create_task(body()))
   *   run(main)
   *
   * prints: body:when:None@0 main:timeout@2
   */
  assert_events ("body:when:None@0 main:timeout@2");
  assert_idle (loop);
  afut_future_unref (t);
  loop_free (loop);
}

static void
scope_enter_at (AfutTask *task)
{
  Scoped *self = (Scoped *) task;
  AFUT_BEGIN (task);
  AFUT_AWAIT (task, afut_sleep (1));
  afut_timeout_enter_at (task, &self->timeout, 5.0);
  tev ("body:when:%s", when_text (afut_timeout_when (&self->timeout)));
  AFUT_AWAIT (task, afut_sleep (10));
  tev ("body:not-reached");
  afut_timeout_exit (&self->timeout);
  AFUT_END (task);
}

static void
test_scope_enter_at (void)
{
  AfutLoop *loop = loop_new ();
  AfutFuture *t = SCOPED (loop, scope_enter_at);

  run_until (loop, t);
  log_outcome ("main", t);
  /* Python reference:
   *
   *   async def body():
   *       await asyncio.sleep(1)
   *       async with asyncio.timeout_at(5) as cm:
   *           ev(f"body:when:{cm.when():g}")
   *           await asyncio.sleep(10)
   *           ev("body:not-reached")
   *   async def main():
   *       await waiter("main", asyncio.create_task(body()))
   *   run(main)
   *
   * prints: body:when:5@1 main:timeout@5
   */
  assert_events ("body:when:5@1 main:timeout@5");
  assert_idle (loop);
  afut_future_unref (t);
  loop_free (loop);
}

static void
scope_when_expired (AfutTask *task)
{
  Scoped *self = (Scoped *) task;
  AFUT_BEGIN (task);
  AFUT_AWAIT (task, afut_sleep (1));
  afut_timeout_enter (task, &self->timeout, 2);
  tev ("body:when:%s:%d", when_text (afut_timeout_when (&self->timeout)),
       afut_timeout_expired (&self->timeout));
  AFUT_AWAIT_TRY (task, afut_sleep (10));
  tev ("body:caught:%d", afut_timeout_expired (&self->timeout));
  self->expired = afut_timeout_exit (&self->timeout);
  tev ("body:exit:%d:%s", afut_timeout_expired (&self->timeout),
       when_text (afut_timeout_when (&self->timeout)));
  AFUT_END (task);
}

static void
test_scope_when_and_expired (void)
{
  AfutLoop *loop = loop_new ();
  AfutFuture *t = SCOPED (loop, scope_when_expired);

  run_until (loop, t);
  /* Python reference:
   *
   *   async def body():
   *       await asyncio.sleep(1)
   *       cm = asyncio.timeout(2)
   *       try:
   *           async with cm:
   *               ev(f"body:when:{cm.when():g}:{int(cm.expired())}")
   *               try:
   *                   await asyncio.sleep(10)
   *               except asyncio.CancelledError:
   *                   ev(f"body:caught:{int(cm.expired())}")
   *                   raise
   *       except TimeoutError:
   *           ev(f"body:exit:{int(cm.expired())}:{cm.when():g}")
   *   run(body)
   *
   * prints: body:when:3:0@1 body:caught:1@3 body:exit:1:3@3
   */
  assert_events ("body:when:3:0@1 body:caught:1@3 body:exit:1:3@3");
  g_assert_true (((Scoped *) t)->expired);
  assert_state (t, AFUT_FUTURE_DONE);
  afut_future_unref (t);
  loop_free (loop);
}

static void
scope_nested_inner (AfutTask *task)
{
  Scoped *self = (Scoped *) task;
  AFUT_BEGIN (task);
  afut_timeout_enter (task, &self->timeout, 5);
  afut_timeout_enter (task, &self->inner, 1);
  AFUT_AWAIT_TRY (task, afut_sleep (10));
  self->expired = afut_timeout_exit (&self->inner);
  tev ("body:inner-exit:%d:%s:%d:%d:%u", self->expired,
       error_name (afut_task_caught (task)),
       afut_timeout_expired (&self->inner),
       afut_timeout_expired (&self->timeout), afut_task_cancelling (task));
  AFUT_AWAIT (task, afut_sleep (1));
  tev ("body:after");
  self->expired = afut_timeout_exit (&self->timeout);
  tev ("body:outer-exit:%d", self->expired);
  AFUT_RETURN_INT (task, 3);
  AFUT_END (task);
}

static void
test_scope_nested_inner_expires (void)
{
  AfutLoop *loop = loop_new ();
  AfutFuture *t = SCOPED (loop, scope_nested_inner);

  run_until (loop, t);
  log_outcome ("main", t);
  /* Python reference:
   *
   *   async def body():
   *       me = asyncio.current_task()
   *       async with asyncio.timeout(5) as outer:
   *           try:
   *               async with asyncio.timeout(1) as inner:
   *                   await asyncio.sleep(10)
   *           except TimeoutError:
   *               ev(f"body:inner-exit:{int(inner.expired())}:timeout:"
   *                  f"{int(inner.expired())}:{int(outer.expired())}:"
   *                  f"{me.cancelling()}")
   *           await asyncio.sleep(1)
   *           ev("body:after")
   *       ev(f"body:outer-exit:{int(outer.expired())}")
   *       return 3
   *   async def main():
   *       await waiter("main", asyncio.create_task(body()))
   *   run(main)
   *
   * prints: body:inner-exit:1:timeout:1:0:0@1 body:after@2
   *   body:outer-exit:0@2 main:got:3@2
   */
  assert_events ("body:inner-exit:1:timeout:1:0:0@1 body:after@2 "
                 "body:outer-exit:0@2 main:got:3@2");
  /* The outer deadline (5) went with its scope. */
  assert_idle (loop);
  afut_future_unref (t);
  loop_free (loop);
}

static void
scope_nested_outer (AfutTask *task)
{
  Scoped *self = (Scoped *) task;
  AFUT_BEGIN (task);
  afut_timeout_enter (task, &self->timeout, 1);
  afut_timeout_enter (task, &self->inner, 5);
  AFUT_AWAIT_TRY (task, afut_sleep (10));
  self->expired = afut_timeout_exit (&self->inner);
  tev ("body:inner-exit:%d:%s:%u", self->expired,
       error_name (afut_task_caught (task)), afut_task_cancelling (task));
  self->expired = afut_timeout_exit (&self->timeout);
  tev ("body:outer-exit:%d:%s:%u", self->expired,
       error_name (afut_task_caught (task)), afut_task_cancelling (task));
  AFUT_RERAISE (task);
  AFUT_END (task);
}

static void
test_scope_nested_outer_expires (void)
{
  AfutLoop *loop = loop_new ();
  AfutFuture *t = SCOPED (loop, scope_nested_outer);

  run_until (loop, t);
  log_outcome ("main", t);
  /* Python reference:
   *
   *   async def body():
   *       me = asyncio.current_task()
   *       try:
   *           async with asyncio.timeout(1) as outer:
   *               try:
   *                   async with asyncio.timeout(5) as inner:
   *                       await asyncio.sleep(10)
   *               except asyncio.CancelledError:
   *                   ev(f"body:inner-exit:{int(inner.expired())}:cancelled:"
   *                      f"{me.cancelling()}")
   *                   raise
   *       except TimeoutError:
   *           ev(f"body:outer-exit:{int(outer.expired())}:timeout:"
   *              f"{me.cancelling()}")
   *           raise
   *   async def main():
   *       await waiter("main", asyncio.create_task(body()))
   *   run(main)
   *
   * prints: body:inner-exit:0:cancelled:1@1 body:outer-exit:1:timeout:0@1
   *   main:timeout@1
   */
  /* Only the scope that expired converts. */
  assert_events ("body:inner-exit:0:cancelled:1@1 "
                 "body:outer-exit:1:timeout:0@1 main:timeout@1");
  assert_idle (loop);
  afut_future_unref (t);
  loop_free (loop);
}

static void
scope_nested_plain (AfutTask *task)
{
  Scoped *self = (Scoped *) task;
  AFUT_BEGIN (task);
  afut_timeout_enter (task, &self->timeout, self->flag ? 1 : 5);
  afut_timeout_enter (task, &self->inner, self->flag ? 5 : 1);
  AFUT_AWAIT (task, afut_sleep (10));
  tev ("body:not-reached");
  AFUT_END (task);
}

static void
test_scope_nested_plain_await (void)
{
  int outer_expires;
  for (outer_expires = 0; outer_expires < 2; outer_expires++)
    {
      AfutLoop *loop = loop_new ();
      AfutFuture *t = TASK (loop, Scoped, scope_nested_plain, "body",
                            .flag = outer_expires);
      Scoped *s = (Scoped *) t;

      run_until (loop, t);
      /* Whichever expires, the task ends with a timeout at 1, both
       * scopes left, both deadlines gone. */
      assert_timeout (t);
      g_assert_cmpfloat (afut_loop_time (loop), ==, 1);
      g_assert_cmpint (afut_timeout_expired (&s->timeout), ==,
                       outer_expires);
      g_assert_cmpint (afut_timeout_expired (&s->inner), ==, !outer_expires);
      g_assert_cmpuint (afut_task_cancelling (AFUT_TASK (t)), ==, 0);
      assert_idle (loop);
      afut_future_unref (t);
      loop_free (loop);
    }
}

static void
scope_box (AfutTask *task)
{
  Scoped *self = (Scoped *) task;
  AFUT_BEGIN (task);
  afut_timeout_enter (task, &self->timeout, AFUT_NO_TIMEOUT);
  AFUT_AWAIT (task, afut_sleep (1));
  tev ("body:slept");
  afut_timeout_exit (&self->timeout);
  AFUT_END (task);
}

static void
reschedule_cb (void *data)
{
  afut_timeout_reschedule (&((Scoped *) data)->timeout, 1.0);
}

static void
test_scope_expires_as_await_completes (void)
{
  AfutLoop *loop = loop_new ();
  AfutFuture *t = SCOPED (loop, scope_box);
  AfutFuture *k = afut_loop_call_at (loop, 0.5, reschedule_cb, t);

  run_until (loop, t);
  log_outcome ("main", t);
  /* Python reference:
   *
   *   async def body(box):
   *       async with asyncio.timeout(None) as cm:
   *           box.append(cm)
   *           await asyncio.sleep(1)
   *           ev("body:slept")
   *   async def main():
   *       box = []
   *       t = asyncio.create_task(body(box))
   *       await asyncio.sleep(0.5)
   *       box[0].reschedule(1.0)
   *       await waiter("main", t)
   *   run(main)
   *
   * prints: main:timeout@1
   */
  /* The deadline's timer, made after the sleep's, fires in the batch
   * where the sleep ended but before the task resumed: the cancellation
   * wins over the completed await. */
  assert_events ("main:timeout@1");
  assert_timeout (t);
  assert_idle (loop);
  afut_future_unref (k);
  afut_future_unref (t);
  loop_free (loop);
}

static void
scope_outside (AfutTask *task)
{
  Scoped *self = (Scoped *) task;
  AFUT_BEGIN (task);
  afut_timeout_enter (task, &self->timeout, 1);
  AFUT_AWAIT_TRY (task, afut_sleep (10));
  tev ("body:caught:%u", afut_task_cancelling (task));
  AFUT_RERAISE (task);
  AFUT_END (task);
}

static void
test_scope_outside_cancel_same_time (void)
{
  AfutLoop *loop = loop_new ();
  AfutFuture *t = SCOPED (loop, scope_outside);
  /* made before the task's first step, so before its deadline's timer */
  AfutFuture *k = afut_loop_call_at (loop, 1, cancel_cb, t);

  run_until (loop, t);
  tev ("main:%s:%u", error_name (afut_future_get_error (t)),
       afut_task_cancelling (AFUT_TASK (t)));
  /* Python reference:
   *
   *   async def body():
   *       me = asyncio.current_task()
   *       async with asyncio.timeout(1):
   *           try:
   *               await asyncio.sleep(10)
   *           except asyncio.CancelledError:
   *               ev(f"body:caught:{me.cancelling()}")
   *               raise
   *   async def main():
   *       t = asyncio.create_task(body())
   *       at(1, "cancel", t.cancel)
   *       try:
   *           await t
   *       except asyncio.CancelledError:
   *           ev(f"main:cancelled:{t.cancelling()}")
   *   run(main)
   *
   * prints: cancel@1 body:caught:2@1 main:cancelled:1@1
   */
  /* The scope expired too, but a request from outside is left: the
   * cancellation stays one. */
  assert_events ("cancel@1 body:caught:2@1 main:cancelled:1@1");
  assert_cancelled (t);
  g_assert_true (afut_timeout_expired (&((Scoped *) t)->timeout));
  assert_idle (loop);
  afut_future_unref (k);
  afut_future_unref (t);
  loop_free (loop);
}

static void
scope_outside_cleanup (AfutTask *task)
{
  Scoped *self = (Scoped *) task;
  AFUT_BEGIN (task);
  afut_timeout_enter (task, &self->timeout, 1);
  AFUT_AWAIT_TRY (task, afut_sleep (10));
  tev ("body:caught:%u", afut_task_cancelling (task));
  if (!self->flag)
    {
      AFUT_AWAIT (task, afut_sleep (1)); /* cancelled from outside */
      tev ("body:not-reached");
    }
  AFUT_AWAIT_TRY (task, afut_sleep (1));
  self->expired = afut_timeout_exit (&self->timeout);
  tev ("body:exit:%d:%s:%u", self->expired,
       error_name (afut_task_caught (task)), afut_task_cancelling (task));
  AFUT_RERAISE (task);
  AFUT_END (task);
}

static void
check_scope_outside_cancel_during_cleanup (bool catching, const char *expected)
{
  AfutLoop *loop = loop_new ();
  AfutFuture *t = TASK (loop, Scoped, scope_outside_cleanup, "body",
                        .flag = catching);
  AfutFuture *k = afut_loop_call_at (loop, 1.5, cancel_cb, t);

  run_until (loop, t);
  tev ("main:%s:%u", error_name (afut_future_get_error (t)),
       afut_task_cancelling (AFUT_TASK (t)));
  assert_events (expected);
  assert_cancelled (t);
  g_assert_true (afut_timeout_expired (&((Scoped *) t)->timeout));
  assert_idle (loop);
  afut_future_unref (k);
  afut_future_unref (t);
  loop_free (loop);
}

static void
test_scope_outside_cancel_during_cleanup (void)
{
  /* Python reference:
   *
   *   async def body():
   *       me = asyncio.current_task()
   *       async with asyncio.timeout(1):
   *           try:
   *               await asyncio.sleep(10)
   *           except asyncio.CancelledError:
   *               ev(f"body:caught:{me.cancelling()}")
   *               await asyncio.sleep(1)
   *               ev("body:not-reached")
   *               raise
   *   async def main():
   *       t = asyncio.create_task(body())
   *       at(1.5, "cancel", t.cancel)
   *       try:
   *           await t
   *       except asyncio.CancelledError:
   *           ev(f"main:cancelled:{t.cancelling()}")
   *   run(main)
   *
   * prints: body:caught:1@1 cancel@1.5 main:cancelled:1@1.5
   */
  /* The plain cleanup await raises the outside cancellation inside the
   * expired scope: it stays a cancellation. */
  check_scope_outside_cancel_during_cleanup (
    false, "body:caught:1@1 cancel@1.5 main:cancelled:1@1.5");
}

static void
test_scope_outside_cancel_caught_exit (void)
{
  /* Python reference:
   *
   *   async def body():
   *       me = asyncio.current_task()
   *       try:
   *           async with asyncio.timeout(1) as cm:
   *               try:
   *                   await asyncio.sleep(10)
   *               except asyncio.CancelledError:
   *                   ev(f"body:caught:{me.cancelling()}")
   *               await asyncio.sleep(1)
   *       except asyncio.CancelledError:
   *           ev(f"body:exit:{int(cm.expired())}:cancelled:{me.cancelling()}")
   *           raise
   *   async def main():
   *       t = asyncio.create_task(body())
   *       at(1.5, "cancel", t.cancel)
   *       try:
   *           await t
   *       except asyncio.CancelledError:
   *           ev(f"main:cancelled:{t.cancelling()}")
   *   run(main)
   *
   * prints: body:caught:1@1 cancel@1.5 body:exit:1:cancelled:1@1.5
   *   main:cancelled:1@1.5
   */
  /* afut_timeout_exit () on an expired scope leaves the caught outside
   * cancellation as it is. */
  check_scope_outside_cancel_during_cleanup (
    true, "body:caught:1@1 cancel@1.5 body:exit:1:cancelled:1@1.5 "
          "main:cancelled:1@1.5");
}

static void
scope_in_time (AfutTask *task)
{
  Scoped *self = (Scoped *) task;
  AFUT_BEGIN (task);
  afut_timeout_enter (task, &self->timeout, 10);
  AFUT_AWAIT (task, afut_sleep (1));
  if (self->flag)
    AFUT_RETURN_INT (task, 7); /* returns inside the scope */
  self->expired = afut_timeout_exit (&self->timeout);
  tev ("body:exit:%d:%u", self->expired, afut_task_cancelling (task));
  AFUT_RETURN_INT (task, 7);
  AFUT_END (task);
}

static void
test_scope_finishes_in_time (void)
{
  AfutLoop *loop = loop_new ();
  AfutFuture *t = SCOPED (loop, scope_in_time);

  run_until (loop, t);
  log_outcome ("main", t);
  /* Python reference:
   *
   *   async def body():
   *       me = asyncio.current_task()
   *       async with asyncio.timeout(10) as cm:
   *           await asyncio.sleep(1)
   *       ev(f"body:exit:{int(cm.expired())}:{me.cancelling()}")
   *       return 7
   *   async def main():
   *       await waiter("main", asyncio.create_task(body()))
   *   run(main)
   *
   * prints: body:exit:0:0@1 main:got:7@1
   */
  assert_events ("body:exit:0:0@1 main:got:7@1");
  /* No cancellation, and no timer left: the clock stays at 1. */
  assert_idle (loop);
  g_assert_cmpfloat (afut_loop_time (loop), ==, 1);
  afut_future_unref (t);
  loop_free (loop);
}

static void
test_scope_return_inside_in_time (void)
{
  AfutLoop *loop = loop_new ();
  AfutFuture *t = TASK (loop, Scoped, scope_in_time, "body", .flag = true);

  run_until (loop, t);
  assert_int (t, 7);
  g_assert_false (afut_timeout_expired (&((Scoped *) t)->timeout));
  g_assert_cmpuint (afut_task_cancelling (AFUT_TASK (t)), ==, 0);
  assert_idle (loop);
  g_assert_cmpfloat (afut_loop_time (loop), ==, 1);
  afut_future_unref (t);
  loop_free (loop);
}

typedef struct
{
  AfutTask task;
  const char *label;
  AfutTimeout timeout;
} ScopedError;

static void
scope_error (AfutTask *task)
{
  ScopedError *self = (ScopedError *) task;
  AFUT_BEGIN (task);
  afut_timeout_enter (task, &self->timeout, 10);
  AFUT_AWAIT (task, WORKER (.label = "w", .delay = 1, .fail = "boom"));
  tev ("body:not-reached");
  afut_timeout_exit (&self->timeout);
  AFUT_END (task);
}

static void
test_scope_other_error_passes (void)
{
  AfutLoop *loop = loop_new ();
  AfutFuture *t = TASK (loop, ScopedError, scope_error, "body",
                        .label = "body");

  run_until (loop, t);
  assert_events ("w:start@0 w:fail@1");
  /* Not a timeout: the error goes through the scope as it is. */
  assert_failed (t, "boom");
  assert_idle (loop);
  afut_future_unref (t);
  loop_free (loop);
}

/* ---- diagnostics ---- */

static int cook_line;

static void
cook (AfutTask *task)
{
  AFUT_BEGIN (task);
  cook_line = __LINE__; AFUT_AWAIT (task, afut_sleep (1.5));
  AFUT_END (task);
}

static char *
describe (AfutFuture *task)
{
  size_t n = afut_task_describe (AFUT_TASK (task), NULL, 0);
  char *buf = g_malloc (n + 1);
  g_assert_cmpuint (afut_task_describe (AFUT_TASK (task), buf, n + 1), ==, n);
  g_assert_cmpuint (strlen (buf), ==, n);
  return buf;
}

static void
assert_describe (AfutFuture *task, const char *expected)
{
  char *d = describe (task);
  g_assert_cmpstr (d, ==, expected);
  g_free (d);
}

static void
test_describe_sleep (void)
{
  AfutLoop *loop = loop_new ();
  AfutFuture *t = TASK (loop, Sleeper, cook, "cook", .label = "cook");
  AfutFuture *s = afut_loop_sleep (loop, 1);
  char *expected, *d;

  drain (loop);
  /* The documentation's own example. */
  expected = g_strdup_printf ("Task 'cook' (Task-1) pending at line %d, "
                              "awaiting sleep (1.5 s left)",
                              cook_line);
  assert_describe (t, expected);
  g_free (expected);
  run_until (loop, s);
  expected = g_strdup_printf ("Task 'cook' (Task-1) pending at line %d, "
                              "awaiting sleep (0.5 s left)",
                              cook_line);
  assert_describe (t, expected);
  g_free (expected);
  run_until (loop, t);
  d = describe (t);
  g_assert_nonnull (strstr (d, "Task 'cook' (Task-1)"));
  g_assert_null (strstr (d, "pending"));
  g_free (d);
  afut_future_unref (s);
  afut_future_unref (t);
  loop_free (loop);
}

typedef struct
{
  AfutTask task;
  const char *label;
  AfutFuture *child; /* borrowed */
} Parent;

static int parent_line;

static void
parent_body (AfutTask *task)
{
  Parent *self = (Parent *) task;
  AFUT_BEGIN (task);
  parent_line = __LINE__; AFUT_AWAIT (task, afut_future_ref (self->child));
  AFUT_END (task);
}

static void
test_describe_awaiting_task (void)
{
  AfutLoop *loop = loop_new ();
  AfutFuture *child = worker_new (loop, &(Worker){ .label = "child",
                                                   .delay = 2 });
  AfutFuture *p = TASK (loop, Parent, parent_body, "parent", .child = child);
  AfutFuture *anon, *fresh;
  char *d, *at_line;

  n_created++;
  anon = afut_task_new (loop, parent_body, sizeof (Parent),
                        &(Parent){ .child = child }, NULL, count_finalize);
  drain (loop);
  d = describe (p);
  at_line = g_strdup_printf ("Task 'parent' (Task-2) pending at line %d, "
                             "awaiting ",
                             parent_line);
  /* what it awaits: the child task, by name */
  g_assert_true (g_str_has_prefix (d, at_line));
  g_assert_nonnull (strstr (d + strlen (at_line), "child"));
  g_free (d);
  g_free (at_line);
  d = describe (anon);
  g_assert_true (g_str_has_prefix (d, "Task 'Task-3' (Task-3) pending at "
                                      "line "));
  g_free (d);
  /* Not run yet: at no await. */
  fresh = worker_new (loop, &(Worker){ .label = "fresh", .delay = 1 });
  d = describe (fresh);
  g_assert_true (g_str_has_prefix (d, "Task 'fresh' (Task-4) "));
  g_assert_null (strstr (d, " at line "));
  g_assert_null (strstr (d, "awaiting"));
  g_free (d);
  run_until (loop, p);
  run_until (loop, anon);
  run_until (loop, fresh);
  afut_future_unref (fresh);
  afut_future_unref (anon);
  afut_future_unref (p);
  afut_future_unref (child);
  loop_free (loop);
}

static void
test_describe_truncates (void)
{
  AfutLoop *loop = loop_new ();
  AfutFuture *t = TASK (loop, Sleeper, cook, "cook", .label = "cook");
  char *full, small[10];
  size_t n;

  drain (loop);
  full = describe (t);
  n = strlen (full);
  g_assert_cmpuint (n, >, sizeof small);
  memset (small, 'x', sizeof small);
  /* As snprintf (): cut to fit, NUL-terminated, the whole length told */
  g_assert_cmpuint (afut_task_describe (AFUT_TASK (t), small, sizeof small),
                    ==, n);
  g_assert_cmpuint (strlen (small), ==, sizeof small - 1);
  g_assert_true (strncmp (small, full, sizeof small - 1) == 0);
  small[0] = 'x';
  g_assert_cmpuint (afut_task_describe (AFUT_TASK (t), small, 0), ==, n);
  g_assert_cmpint (small[0], ==, 'x');
  g_free (full);
  run_until (loop, t);
  afut_future_unref (t);
  loop_free (loop);
}

typedef struct
{
  GString *visited;
  AfutFuture *cancel_at_t3; /* borrowed */
  AfutFuture *spawned;      /* owned */
} Visit;

static void
visit_task (AfutTask *task, void *data)
{
  Visit *v = (Visit *) data;
  if (v->visited->len > 0)
    g_string_append_c (v->visited, ' ');
  g_string_append (v->visited, afut_task_get_name (task));
  if (strcmp (afut_task_get_name (task), "t3") == 0 && v->cancel_at_t3)
    {
      g_assert_true (afut_future_cancel (v->cancel_at_t3, NULL));
      v->cancel_at_t3 = NULL;
      v->spawned = worker_new (afut_future_get_loop (AFUT_FUTURE (task)),
                               &(Worker){ .label = "t7", .delay = 1 });
    }
}

static void
test_foreach_oldest_first (void)
{
  AfutLoop *loop = loop_new ();
  AfutFuture *t[6];
  AfutFuture *lazy;
  Visit v = { g_string_new (NULL), NULL, NULL };
  int i;

  for (i = 1; i <= 5; i++)
    {
      char *label = g_strdup_printf ("t%d", i);
      t[i] = worker_new (loop, &(Worker){ .label = g_intern_string (label),
                                          .delay = i == 2 ? 1 : 10 });
      g_free (label);
    }
  lazy = worker_coro (loop, &(Worker){ .label = "lazy", .delay = 1 });
  run_until (loop, t[2]);
  /* t2 is done, and t5 is the youngest of the rest; the lazy coroutine
   * never started.  While visiting t3, t4 is cancelled (a request: it
   * is still pending when visited) and t7 spawned (not visited). */
  v.cancel_at_t3 = t[4];
  afut_loop_foreach_task (loop, visit_task, &v);
  g_assert_cmpstr (v.visited->str, ==, "t1 t3 t4 t5");
  g_assert_nonnull (v.spawned);
  run_until (loop, t[4]);
  assert_cancelled (t[4]);
  run_until (loop, v.spawned);
  g_string_truncate (v.visited, 0);
  afut_loop_foreach_task (loop, visit_task, &v);
  g_assert_cmpstr (v.visited->str, ==, "t1 t3 t5");
  g_assert_true (afut_future_cancel (lazy, NULL));
  afut_future_unref (lazy);
  afut_future_unref (v.spawned);
  for (i = 1; i <= 5; i++)
    afut_future_unref (t[i]);
  g_string_free (v.visited, TRUE);
  loop_free (loop);
}

static void
collect_task (AfutTask *task, void *data)
{
  g_ptr_array_add ((GPtrArray *) data, afut_future_ref (AFUT_FUTURE (task)));
}

static void
test_print_tasks (void)
{
  AfutLoop *loop = loop_new ();
  AfutFuture *a = TASK (loop, Sleeper, cook, "cook", .label = "cook");
  AfutFuture *b = worker_new (loop, &(Worker){ .label = "w", .delay = 3 });
  AfutFuture *c = TASK (loop, Parent, parent_body, "parent", .child = b);
  GPtrArray *tasks = g_ptr_array_new_with_free_func (
    (GDestroyNotify) afut_future_unref);
  FILE *f = tmpfile ();
  char buf[4096];
  size_t n;
  guint i;

  drain (loop);
  afut_loop_foreach_task (loop, collect_task, tasks);
  g_assert_cmpuint (tasks->len, ==, 3);
  g_assert_true (g_ptr_array_index (tasks, 0) == a);
  g_assert_true (g_ptr_array_index (tasks, 1) == b);
  g_assert_true (g_ptr_array_index (tasks, 2) == c);
  for (i = 0; i < tasks->len; i++)
    {
      char *d = describe (g_ptr_array_index (tasks, i));
      line ("%s", d);
      g_free (d);
    }
  g_assert_nonnull (f);
  afut_loop_print_tasks (loop, f);
  fflush (f);
  rewind (f);
  n = fread (buf, 1, sizeof buf - 1, f);
  buf[n] = '\0';
  fclose (f);
  /* One line per pending task, oldest first, as described. */
  g_assert_cmpstr (buf, ==, lines->str);
  g_ptr_array_unref (tasks);
  run_until (loop, c);
  run_until (loop, a);
  afut_future_unref (a);
  afut_future_unref (b);
  afut_future_unref (c);
  loop_free (loop);
}

static void
test_report_never_retrieved_names_task (void)
{
  AfutLoop *loop = loop_new ();
  AfutFuture *t = worker_new (loop, &(Worker){ .label = "doomed",
                                               .delay = 1,
                                               .fail = "boom" });

  run_until (loop, t);
  assert_state (t, AFUT_FUTURE_FAILED);
  assert_reports ("");
  afut_future_unref (t);
  assert_reports ("Task exception was never retrieved|doomed|boom");
  loop_free (loop);
}

/* ---- main ---- */

int
main (int argc, char **argv)
{
  int status;

  g_test_init (&argc, &argv, NULL);
  events = g_string_new (NULL);
  lines = g_string_new (NULL);
  reports = g_ptr_array_new_with_free_func (g_free);
  afut_set_log_func (test_log_func, NULL);

  g_test_add_func ("/timeout/call-later/same-deadline-as-sleeps",
                   test_call_later_same_deadline);
  g_test_add_func ("/timeout/call-later/zero-delay",
                   test_call_later_zero_delay);
  g_test_add_func ("/timeout/call-later/cancel", test_call_later_cancel);
  g_test_add_func ("/timeout/call-later/cancel-removes-timer",
                   test_call_later_cancel_removes_timer);
  g_test_add_func ("/timeout/call-later/dropped-handle-runs",
                   test_call_later_dropped_handle_runs);
  g_test_add_func ("/timeout/call-later/bad-args", test_call_later_bad_args);
  g_test_add_func ("/timeout/cancelling/counts", test_cancelling_counts);
  g_test_add_func ("/timeout/cancelling/before-first-step",
                   test_cancelling_before_first_step);
  g_test_add_func ("/timeout/shield/outer-cancelled-inner-runs-on",
                   test_shield_outer_cancelled);
  g_test_add_func ("/timeout/shield/cancel-directly",
                   test_shield_cancel_directly);
  g_test_add_func ("/timeout/shield/result-passes", test_shield_result_passes);
  g_test_add_func ("/timeout/shield/error-passes", test_shield_error_passes);
  g_test_add_func ("/timeout/shield/inner-error-after-cancel-reported",
                   test_shield_inner_error_after_cancel);
  g_test_add_func ("/timeout/shield/inner-error-before-let-go",
                   test_shield_inner_error_before_let_go);
  g_test_add_func ("/timeout/shield/done-future", test_shield_done_future);
  g_test_add_func ("/timeout/shield/starts-coroutine",
                   test_shield_starts_coroutine);
  g_test_add_func ("/timeout/shield/inner-cancelled",
                   test_shield_inner_cancelled);
  g_test_add_func ("/timeout/wait-for/in-time", test_wait_for_in_time);
  g_test_add_func ("/timeout/wait-for/deadline-ties-inner",
                   test_wait_for_deadline_ties_inner);
  g_test_add_func ("/timeout/wait-for/expiry-waits-cleanup",
                   test_wait_for_expiry_waits_cleanup);
  g_test_add_func ("/timeout/wait-for/zero-timeout-done",
                   test_wait_for_zero_timeout_done);
  g_test_add_func ("/timeout/wait-for/zero-timeout-pending-future",
                   test_wait_for_zero_timeout_pending_future);
  g_test_add_func ("/timeout/wait-for/negative-timeout-pending-task",
                   test_wait_for_zero_timeout_pending_task);
  g_test_add_func ("/timeout/wait-for/inner-swallows",
                   test_wait_for_inner_swallows);
  g_test_add_func ("/timeout/wait-for/inner-raises-other",
                   test_wait_for_inner_raises_other);
  g_test_add_func ("/timeout/wait-for/outer-cancelled",
                   test_wait_for_outer_cancelled);
  g_test_add_func ("/timeout/wait-for/cancel-result",
                   test_wait_for_cancel_result);
  g_test_add_func ("/timeout/wait-for/plain-future-expires",
                   test_wait_for_plain_future_expires);
  g_test_add_func ("/timeout/wait-for/no-timeout", test_wait_for_no_timeout);
  g_test_add_func ("/timeout/wait-for/pointer-lent",
                   test_wait_for_pointer_lent);
  g_test_add_func ("/timeout/wait-for/starts-coroutine",
                   test_wait_for_starts_coroutine);
  g_test_add_func ("/timeout/scope/handled-cancel-raises-nothing",
                   test_scope_handled_cancel_raises_nothing);
  g_test_add_func ("/timeout/scope/plain-await-expires",
                   test_scope_plain_await_expires);
  g_test_add_func ("/timeout/scope/try-exit-converts",
                   test_scope_try_exit_converts);
  g_test_add_func ("/timeout/scope/cleanup-then-exit",
                   test_scope_cleanup_then_exit);
  g_test_add_func ("/timeout/scope/cleanup-reraise-inside",
                   test_scope_cleanup_reraise_inside);
  g_test_add_func ("/timeout/scope/swallowed-return-inside",
                   test_scope_swallowed_return_inside);
  g_test_add_func ("/timeout/scope/reschedule-earlier",
                   test_scope_reschedule_earlier);
  g_test_add_func ("/timeout/scope/reschedule-later",
                   test_scope_reschedule_later);
  g_test_add_func ("/timeout/scope/reschedule-none",
                   test_scope_reschedule_none);
  g_test_add_func ("/timeout/scope/reschedule-past",
                   test_scope_reschedule_past);
  g_test_add_func ("/timeout/scope/enter-none-then-reschedule",
                   test_scope_enter_none_then_reschedule);
  g_test_add_func ("/timeout/scope/enter-at", test_scope_enter_at);
  g_test_add_func ("/timeout/scope/when-and-expired",
                   test_scope_when_and_expired);
  g_test_add_func ("/timeout/scope/nested-inner-expires",
                   test_scope_nested_inner_expires);
  g_test_add_func ("/timeout/scope/nested-outer-expires",
                   test_scope_nested_outer_expires);
  g_test_add_func ("/timeout/scope/nested-plain-await",
                   test_scope_nested_plain_await);
  g_test_add_func ("/timeout/scope/expires-as-await-completes",
                   test_scope_expires_as_await_completes);
  g_test_add_func ("/timeout/scope/outside-cancel-same-time",
                   test_scope_outside_cancel_same_time);
  g_test_add_func ("/timeout/scope/outside-cancel-during-cleanup",
                   test_scope_outside_cancel_during_cleanup);
  g_test_add_func ("/timeout/scope/outside-cancel-caught-exit",
                   test_scope_outside_cancel_caught_exit);
  g_test_add_func ("/timeout/scope/finishes-in-time",
                   test_scope_finishes_in_time);
  g_test_add_func ("/timeout/scope/return-inside-in-time",
                   test_scope_return_inside_in_time);
  g_test_add_func ("/timeout/scope/other-error-passes",
                   test_scope_other_error_passes);
  g_test_add_func ("/timeout/describe/sleep", test_describe_sleep);
  g_test_add_func ("/timeout/describe/awaiting-task",
                   test_describe_awaiting_task);
  g_test_add_func ("/timeout/describe/truncates", test_describe_truncates);
  g_test_add_func ("/timeout/foreach/oldest-first",
                   test_foreach_oldest_first);
  g_test_add_func ("/timeout/print-tasks", test_print_tasks);
  g_test_add_func ("/timeout/report/never-retrieved-names-task",
                   test_report_never_retrieved_names_task);

  status = g_test_run ();
  afut_set_log_func (NULL, NULL);
  g_string_free (events, TRUE);
  g_string_free (lines, TRUE);
  g_ptr_array_unref (reports);
  return status;
}
