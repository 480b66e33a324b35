/* test-wait.c - afut 0.2's combinators over several futures: afut_wait
 * (asyncio.wait: FIRST_COMPLETED, FIRST_EXCEPTION, ALL_COMPLETED, a
 * timeout, the done and pending sets), afut_as_completed, afut_race
 * (JavaScript's Promise.race) and afut_any (Promise.any, failing with an
 * AFUT_ERROR_GROUP whose sub-errors come in input order).
 *
 * Every loop runs on the virtual clock.  What ran is logged as
 * "WHAT@TIME" and compared with what CPython 3.11 prints for the
 * equivalent program, kept in a comment beside each test: prepend the
 * prelude below and run it with python3.  The prelude gives asyncio
 * afut's virtual clock and afut's order for timers due at the same time
 * (creation order, DESIGN.md rule 3, which CPython's heap leaves
 * unspecified).  Where afut's documentation deliberately differs from
 * asyncio 3.11 (as_completed yields the input futures themselves; race
 * and any follow JavaScript), the tests follow afut's documentation. */

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

/* ---- names of the inputs, for the logs ---- */

static GHashTable *names; /* AfutFuture * -> label */

static AfutFuture *
named (AfutFuture *future, const char *name)
{
  g_hash_table_insert (names, future, (gpointer) name);
  return future;
}

static const char *
name_of (AfutFuture *future)
{
  const char *name = g_hash_table_lookup (names, future);
  return name != NULL ? name : "?";
}

/* A named worker on @loop. */
static AfutFuture *
spawn (AfutLoop *loop, const Worker *init)
{
  return named (worker_new (loop, init), init->label);
}

#define SPAWN_ON(loop, ...) spawn ((loop), &(Worker){ __VA_ARGS__ })

static AfutFuture *
coro (AfutLoop *loop, const Worker *init)
{
  return named (worker_coro (loop, init), init->label);
}

#define CORO_ON(loop, ...) coro ((loop), &(Worker){ __VA_ARGS__ })

/* "done:a,b:pending:c", the sets of a completed wait in input order */
static char *
wait_sets (AfutFuture *wait)
{
  GString *s = g_string_new ("done:");
  size_t i, n_done = 99, n_pending = 99;
  afut_wait_get_done (wait, 0, &n_done);
  g_assert_cmpuint (n_done, !=, 99);
  for (i = 0; i < n_done; i++)
    g_string_append_printf (s, "%s%s", i > 0 ? "," : "",
                            name_of (afut_wait_get_done (wait, i, NULL)));
  g_assert_null (afut_wait_get_done (wait, n_done, NULL));
  g_string_append (s, ":pending:");
  afut_wait_get_pending (wait, 0, &n_pending);
  g_assert_cmpuint (n_pending, !=, 99);
  for (i = 0; i < n_pending; i++)
    g_string_append_printf (s, "%s%s", i > 0 ? "," : "",
                            name_of (afut_wait_get_pending (wait, i, NULL)));
  g_assert_null (afut_wait_get_pending (wait, n_pending, NULL));
  return g_string_free (s, FALSE);
}

/* A done callback on a wait: "LABEL:done:...:pending:...@TIME" */
static void
log_wait (AfutFuture *wait, void *data)
{
  char *sets;
  assert_state (wait, AFUT_FUTURE_DONE);
  g_assert_cmpint (afut_future_get_value_type (wait), ==, AFUT_VALUE_NONE);
  sets = wait_sets (wait);
  tev ("%s:%s", (const char *) data, sets);
  g_free (sets);
}

/* ---- wait ---- */

static void
test_wait_first_completed (void)
{
  AfutLoop *loop = loop_new ();
  AfutFuture *fs[3];
  AfutFuture *w;
  int i;

  fs[0] = SPAWN_ON (loop, .label = "a", .delay = 2, .value = 1);
  fs[1] = SPAWN_ON (loop, .label = "b", .delay = 1, .value = 2);
  fs[2] = SPAWN_ON (loop, .label = "c", .delay = 3, .value = 3);
  w = afut_wait (fs, 3, AFUT_WAIT_FIRST_COMPLETED, AFUT_NO_TIMEOUT);
  afut_future_add_done_callback (w, log_wait, "main");
  run_until (loop, fs[2]);
  /* Python reference:
   *
   *   async def main():
   *       a = asyncio.create_task(worker("a", 2, value=1))
   *       b = asyncio.create_task(worker("b", 1, value=2))
   *       c = asyncio.create_task(worker("c", 3, value=3))
   *       fs = {a: "a", b: "b", c: "c"}
   *       done, pending = await asyncio.wait(
   *           fs, return_when=asyncio.FIRST_COMPLETED)
   *       ev(f"main:done:{','.join(fs[f] for f in fs if f in done)}"
   *          f":pending:{','.join(fs[f] for f in fs if f in pending)}")
   *       await asyncio.gather(a, c)
   *   run(main)
   *
   * prints: a:start@0 b:start@0 c:start@0 b:end@1 main:done:b:pending:a,c@1
   *   a:end@2 c:end@3
   */
  /* Nothing is cancelled: a and c run on. */
  assert_events ("a:start@0 b:start@0 c:start@0 b:end@1 "
                 "main:done:b:pending:a,c@1 a:end@2 c:end@3");
  /* The sets are as they were when the wait completed. */
  {
    char *sets = wait_sets (w);
    g_assert_cmpstr (sets, ==, "done:b:pending:a,c");
    g_free (sets);
  }
  for (i = 0; i < 3; i++)
    {
      assert_int (fs[i], i + 1);
      afut_future_unref (fs[i]);
    }
  afut_future_unref (w);
  loop_free (loop);
}

static void
test_wait_first_completed_together (void)
{
  AfutLoop *loop = loop_new ();
  AfutFuture *fs[3];
  AfutFuture *w;
  int i;

  fs[0] = SPAWN_ON (loop, .label = "c", .delay = 2);
  fs[1] = SPAWN_ON (loop, .label = "b", .delay = 1);
  fs[2] = SPAWN_ON (loop, .label = "a", .delay = 1);
  w = afut_wait (fs, 3, AFUT_WAIT_FIRST_COMPLETED, AFUT_NO_TIMEOUT);
  afut_future_add_done_callback (w, log_wait, "main");
  run_until (loop, fs[0]);
  /* Python reference:
   *
   *   async def main():
   *       c = asyncio.create_task(worker("c", 2))
   *       b = asyncio.create_task(worker("b", 1))
   *       a = asyncio.create_task(worker("a", 1))
   *       fs = {c: "c", b: "b", a: "a"}
   *       done, pending = await asyncio.wait(
   *           fs, return_when=asyncio.FIRST_COMPLETED)
   *       ev(f"main:done:{','.join(fs[f] for f in fs if f in done)}"
   *          f":pending:{','.join(fs[f] for f in fs if f in pending)}")
   *       await c
   *   run(main)
   *
   * prints: c:start@0 b:start@0 a:start@0 b:end@1 a:end@1
   *   main:done:b,a:pending:c@1 c:end@2
   */
  /* b and a end in the same batch: both are done when the wait
   * completes; the done set keeps the input order. */
  assert_events ("c:start@0 b:start@0 a:start@0 b:end@1 a:end@1 "
                 "main:done:b,a:pending:c@1 c:end@2");
  for (i = 0; i < 3; i++)
    afut_future_unref (fs[i]);
  afut_future_unref (w);
  loop_free (loop);
}

static void
test_wait_first_exception (void)
{
  AfutLoop *loop = loop_new ();
  AfutFuture *fs[3];
  AfutFuture *w;
  int i;

  fs[0] = SPAWN_ON (loop, .label = "a", .delay = 1, .value = 1);
  fs[1] = SPAWN_ON (loop, .label = "b", .delay = 2, .fail = "boom");
  fs[2] = SPAWN_ON (loop, .label = "c", .delay = 3, .value = 3);
  w = afut_wait (fs, 3, AFUT_WAIT_FIRST_EXCEPTION, AFUT_NO_TIMEOUT);
  afut_future_add_done_callback (w, log_wait, "main");
  run_until (loop, fs[2]);
  /* Python reference:
   *
   *   async def main():
   *       a = asyncio.create_task(worker("a", 1, value=1))
   *       b = asyncio.create_task(worker("b", 2, fail="boom"))
   *       c = asyncio.create_task(worker("c", 3, value=3))
   *       fs = {a: "a", b: "b", c: "c"}
   *       done, pending = await asyncio.wait(
   *           fs, return_when=asyncio.FIRST_EXCEPTION)
   *       ev(f"main:done:{','.join(fs[f] for f in fs if f in done)}"
   *          f":pending:{','.join(fs[f] for f in fs if f in pending)}")
   *       await c
   *   run(main)
   *
   * prints: a:start@0 b:start@0 c:start@0 a:end@1 b:fail@2
   *   main:done:a,b:pending:c@2 c:end@3
   */
  assert_events ("a:start@0 b:start@0 c:start@0 a:end@1 b:fail@2 "
                 "main:done:a,b:pending:c@2 c:end@3");
  /* The wait itself never fails. */
  assert_state (w, AFUT_FUTURE_DONE);
  assert_failed (fs[1], "boom");
  for (i = 0; i < 3; i++)
    afut_future_unref (fs[i]);
  afut_future_unref (w);
  loop_free (loop);
}

static void
test_wait_first_exception_none_fails (void)
{
  AfutLoop *loop = loop_new ();
  AfutFuture *fs[2];
  AfutFuture *w;

  fs[0] = SPAWN_ON (loop, .label = "a", .delay = 1);
  fs[1] = SPAWN_ON (loop, .label = "b", .delay = 2);
  w = afut_wait (fs, 2, AFUT_WAIT_FIRST_EXCEPTION, AFUT_NO_TIMEOUT);
  afut_future_add_done_callback (w, log_wait, "main");
  run_until (loop, w);
  drain (loop);
  /* No failure: as ALL_COMPLETED. */
  assert_events ("a:start@0 b:start@0 a:end@1 b:end@2 "
                 "main:done:a,b:pending:@2");
  afut_future_unref (fs[0]);
  afut_future_unref (fs[1]);
  afut_future_unref (w);
  loop_free (loop);
}

static void
test_wait_first_exception_ignores_cancelled (void)
{
  AfutLoop *loop = loop_new ();
  AfutFuture *fs[3];
  AfutFuture *w, *k;
  int i;

  fs[0] = SPAWN_ON (loop, .label = "a", .delay = 5);
  fs[1] = SPAWN_ON (loop, .label = "b", .delay = 5);
  fs[2] = SPAWN_ON (loop, .label = "c", .delay = 3);
  k = afut_loop_call_at (loop, 1, cancel_cb, fs[1]);
  w = afut_wait (fs, 3, AFUT_WAIT_FIRST_EXCEPTION, AFUT_NO_TIMEOUT);
  afut_future_add_done_callback (w, log_wait, "main");
  run_until (loop, w);
  drain (loop);
  /* As CPython 3.11: a cancelled input is not an exception to
   * FIRST_EXCEPTION, so the wait goes on until all are done. */
  assert_events ("a:start@0 b:start@0 c:start@0 cancel@1 b:cancelled@1 "
                 "c:end@3 a:end@5 main:done:a,b,c:pending:@5");
  for (i = 0; i < 3; i++)
    afut_future_unref (fs[i]);
  afut_future_unref (k);
  afut_future_unref (w);
  loop_free (loop);
}

static void
test_wait_all_completed (void)
{
  AfutLoop *loop = loop_new ();
  AfutFuture *fs[3];
  AfutFuture *w;
  int i;

  fs[0] = SPAWN_ON (loop, .label = "a", .delay = 3, .value = 1);
  fs[1] = SPAWN_ON (loop, .label = "b", .delay = 1, .fail = "boom");
  fs[2] = SPAWN_ON (loop, .label = "c", .delay = 2, .value = 3);
  w = afut_wait (fs, 3, AFUT_WAIT_ALL_COMPLETED, AFUT_NO_TIMEOUT);
  afut_future_add_done_callback (w, log_wait, "main");
  run_until (loop, w);
  drain (loop);
  /* Python reference:
   *
   *   async def main():
   *       a = asyncio.create_task(worker("a", 3, value=1))
   *       b = asyncio.create_task(worker("b", 1, fail="boom"))
   *       c = asyncio.create_task(worker("c", 2, value=3))
   *       fs = {a: "a", b: "b", c: "c"}
   *       done, pending = await asyncio.wait(fs)
   *       ev(f"main:done:{','.join(fs[f] for f in fs if f in done)}"
   *          f":pending:{','.join(fs[f] for f in fs if f in pending)}")
   *       b.exception()
   *   run(main)
   *
   * prints: a:start@0 b:start@0 c:start@0 b:fail@1 c:end@2 a:end@3
   *   main:done:a,b,c:pending:@3
   */
  assert_events ("a:start@0 b:start@0 c:start@0 b:fail@1 c:end@2 a:end@3 "
                 "main:done:a,b,c:pending:@3");
  assert_failed (fs[1], "boom");
  for (i = 0; i < 3; i++)
    afut_future_unref (fs[i]);
  afut_future_unref (w);
  loop_free (loop);
}

static void
test_wait_timeout (void)
{
  AfutLoop *loop = loop_new ();
  AfutFuture *fs[2];
  AfutFuture *w;

  fs[0] = SPAWN_ON (loop, .label = "a", .delay = 1);
  fs[1] = SPAWN_ON (loop, .label = "b", .delay = 5);
  w = afut_wait (fs, 2, AFUT_WAIT_ALL_COMPLETED, 2);
  afut_future_add_done_callback (w, log_wait, "main");
  run_until (loop, fs[1]);
  /* Python reference:
   *
   *   async def main():
   *       a = asyncio.create_task(worker("a", 1))
   *       b = asyncio.create_task(worker("b", 5))
   *       fs = {a: "a", b: "b"}
   *       done, pending = await asyncio.wait(fs, timeout=2)
   *       ev(f"main:done:{','.join(fs[f] for f in fs if f in done)}"
   *          f":pending:{','.join(fs[f] for f in fs if f in pending)}")
   *       await b
   *   run(main)
   *
   * prints: a:start@0 b:start@0 a:end@1 main:done:a:pending:b@2 b:end@5
   */
  /* The timeout completes the wait (it does not fail it) and cancels
   * nothing. */
  assert_events ("a:start@0 b:start@0 a:end@1 main:done:a:pending:b@2 "
                 "b:end@5");
  assert_state (w, AFUT_FUTURE_DONE);
  afut_future_unref (fs[0]);
  afut_future_unref (fs[1]);
  afut_future_unref (w);
  loop_free (loop);
}

static void
test_wait_timeout_timer_gone (void)
{
  AfutLoop *loop = loop_new ();
  AfutFuture *fs[1];
  AfutFuture *w;

  fs[0] = SPAWN_ON (loop, .label = "a", .delay = 1);
  w = afut_wait (fs, 1, AFUT_WAIT_FIRST_COMPLETED, 10);
  run_until (loop, w);
  g_assert_cmpfloat (afut_loop_time (loop), ==, 1);
  /* Completed by its mode: the timeout's timer went. */
  assert_idle (loop);
  afut_future_unref (fs[0]);
  afut_future_unref (w);
  loop_free (loop);
}

static void
test_wait_cancel_leaves_inputs (void)
{
  AfutLoop *loop = loop_new ();
  AfutFuture *fs[2];
  AfutFuture *w, *m, *k, *w2, *k2;

  fs[0] = SPAWN_ON (loop, .label = "a", .delay = 2);
  fs[1] = SPAWN_ON (loop, .label = "b", .delay = 3);
  w = afut_wait (fs, 2, AFUT_WAIT_ALL_COMPLETED, AFUT_NO_TIMEOUT);
  m = TASK (loop, Waiter, waiter, "main", .label = "main",
            .future = afut_future_ref (w));
  k = afut_loop_call_at (loop, 1, cancel_cb, m);
  /* A second wait on the same inputs, cancelled itself. */
  w2 = afut_wait (fs, 2, AFUT_WAIT_FIRST_COMPLETED, 10);
  k2 = afut_loop_call_at (loop, 1.5, cancel_cb, w2);
  afut_future_add_done_callback (w2, log_done, "w2");
  run_until (loop, fs[1]);
  /* Python reference:
   *
   *   async def main():
   *       a = asyncio.create_task(worker("a", 2))
   *       b = asyncio.create_task(worker("b", 3))
   *       m = asyncio.create_task(waiter("main", asyncio.wait([a, b])))
   *       at(1, "cancel", m.cancel)
   *       w2 = asyncio.ensure_future(
   *           asyncio.wait([a, b], timeout=10,
   *                        return_when=asyncio.FIRST_COMPLETED))
   *       at(1.5, "cancel", w2.cancel)
   *       w2.add_done_callback(log_done("w2"))
   *       await b
   *   run(main)
   *
   * prints: a:start@0 b:start@0 cancel@1 main:cancelled@1 cancel@1.5
   *   w2:cancelled@1.5 a:end@2 b:end@3
   */
  assert_events ("a:start@0 b:start@0 cancel@1 main:cancelled@1 "
                 "cancel@1.5 w2:cancelled@1.5 a:end@2 b:end@3");
  assert_cancelled (w);
  assert_cancelled (w2);
  assert_state (fs[0], AFUT_FUTURE_DONE);
  assert_state (fs[1], AFUT_FUTURE_DONE);
  /* w2's timeout timer went with it. */
  assert_idle (loop);
  afut_future_unref (fs[0]);
  afut_future_unref (fs[1]);
  afut_future_unref (k);
  afut_future_unref (k2);
  afut_future_unref (m);
  afut_future_unref (w);
  afut_future_unref (w2);
  loop_free (loop);
}

static void
test_wait_duplicates (void)
{
  AfutLoop *loop = loop_new ();
  AfutFuture *a = SPAWN_ON (loop, .label = "a", .delay = 1);
  AfutFuture *b = SPAWN_ON (loop, .label = "b", .delay = 2);
  AfutFuture *fs[4] = { a, a, b, a };
  AfutFuture *all = afut_wait (fs, 4, AFUT_WAIT_ALL_COMPLETED,
                               AFUT_NO_TIMEOUT);
  AfutFuture *first = afut_wait (fs, 4, AFUT_WAIT_FIRST_COMPLETED,
                                 AFUT_NO_TIMEOUT);
  char *sets;

  run_until (loop, first);
  sets = wait_sets (first);
  g_assert_cmpstr (sets, ==, "done:a:pending:b");
  g_free (sets);
  run_until (loop, all);
  g_assert_cmpfloat (afut_loop_time (loop), ==, 2);
  sets = wait_sets (all);
  g_assert_cmpstr (sets, ==, "done:a,b:pending:");
  g_free (sets);
  afut_future_unref (a);
  afut_future_unref (b);
  afut_future_unref (all);
  afut_future_unref (first);
  loop_free (loop);
}

static void
test_wait_bad_input (void)
{
  AfutLoop *loop = loop_new ();

  /* asyncio: ValueError('Set of Tasks/Futures is empty.') */
  expect_log_begin (AFUT_LOG_CRITICAL, "afut_wait");
  g_assert_null (afut_wait (NULL, 0, AFUT_WAIT_ALL_COMPLETED,
                            AFUT_NO_TIMEOUT));
  g_assert_cmpuint (expect_log_end (), ==, 1);
  assert_idle (loop);
  loop_free (loop);
}

static void
test_wait_starts_coroutines (void)
{
  AfutLoop *loop = loop_new ();
  AfutFuture *fs[2];
  AfutFuture *w;

  fs[0] = CORO_ON (loop, .label = "c1", .delay = 2);
  fs[1] = CORO_ON (loop, .label = "c2", .delay = 1);
  w = afut_wait (fs, 2, AFUT_WAIT_FIRST_COMPLETED, AFUT_NO_TIMEOUT);
  g_assert_cmpstr (events->str, ==, "");
  afut_future_add_done_callback (w, log_wait, "main");
  run_until (loop, fs[0]);
  assert_events ("c1:start@0 c2:start@0 c2:end@1 main:done:c2:pending:c1@1 "
                 "c1:end@2");
  afut_future_unref (fs[0]);
  afut_future_unref (fs[1]);
  afut_future_unref (w);
  loop_free (loop);
}

static void
test_wait_already_done (void)
{
  AfutLoop *loop = loop_new ();
  AfutFuture *fs[2];
  AfutFuture *w;
  char *sets;

  fs[0] = named (afut_future_new (loop), "g");
  fs[1] = named (afut_future_new (loop), "f");
  afut_future_resolve_int (fs[1], 3);
  w = afut_wait (fs, 2, AFUT_WAIT_FIRST_COMPLETED, AFUT_NO_TIMEOUT);
  run_until (loop, w);
  g_assert_cmpfloat (afut_loop_time (loop), ==, 0);
  sets = wait_sets (w);
  g_assert_cmpstr (sets, ==, "done:f:pending:g");
  g_free (sets);
  /* The sets stay as they were when the wait completed. */
  afut_future_resolve (fs[0]);
  drain (loop);
  sets = wait_sets (w);
  g_assert_cmpstr (sets, ==, "done:f:pending:g");
  g_free (sets);
  afut_future_unref (fs[0]);
  afut_future_unref (fs[1]);
  afut_future_unref (w);
  loop_free (loop);
}

/* ---- as_completed ---- */

typedef struct
{
  AfutTask task;
  const char *label;
  AfutFuture *it;      /* owned */
  AfutFuture *next;    /* given to the await */
  AfutFuture *after;   /* awaited once the iterator is exhausted */
  unsigned n_nexts;
  unsigned max_nexts;
} Consumer;

static void
consumer (AfutTask *task)
{
  Consumer *self = (Consumer *) task;
  AfutFuture *input;
  AFUT_BEGIN (task);
  while ((self->next = afut_as_completed_next (self->it)) != NULL)
    {
      /* one per input, then NULL: not one more */
      g_assert_cmpuint (++self->n_nexts, <=, self->max_nexts);
      AFUT_AWAIT_TRY (task, self->next);
      if (afut_task_caught (task) != NULL)
        tev ("main:%s", error_name (afut_task_caught (task)));
      else
        {
          /* the next completed input, itself */
          g_assert_cmpint (afut_future_get_value_type (
                             afut_task_awaited (task)),
                           ==, AFUT_VALUE_POINTER);
          input = afut_future_get_pointer (afut_task_awaited (task));
          if (afut_future_get_state (input) == AFUT_FUTURE_DONE)
            tev ("main:got:%s:%" PRId64, name_of (input),
                 afut_future_get_int (input));
          else
            tev ("main:got:%s:%s", name_of (input),
                 error_name (afut_future_get_error (input)));
        }
    }
  g_assert_null (afut_as_completed_next (self->it));
  if (self->after != NULL)
    {
      AFUT_AWAIT (task, self->after);
      self->after = NULL;
    }
  AFUT_END (task);
}

static void
consumer_finalize (AfutTask *task)
{
  Consumer *self = (Consumer *) task;
  n_finalized++;
  afut_future_unref (self->it);
}

static AfutFuture *
consumer_new (AfutLoop *loop, AfutFuture *it, AfutFuture *after,
              unsigned n_inputs)
{
  n_created++;
  return afut_task_new (loop, consumer, sizeof (Consumer),
                        &(Consumer){ .it = it, .after = after,
                                     .max_nexts = n_inputs },
                        "main", consumer_finalize);
}

static void
test_as_completed_order (void)
{
  AfutLoop *loop = loop_new ();
  AfutFuture *fs[3];
  AfutFuture *it, *m;
  int i;

  fs[0] = SPAWN_ON (loop, .label = "a", .delay = 3, .value = 1);
  fs[1] = SPAWN_ON (loop, .label = "b", .delay = 1, .value = 2);
  fs[2] = SPAWN_ON (loop, .label = "c", .delay = 2, .value = 3);
  it = afut_as_completed (fs, 3, AFUT_NO_TIMEOUT);
  g_assert_nonnull (it);
  m = consumer_new (loop, afut_future_ref (it), NULL, 3);
  run_until (loop, m);
  /* Python reference:
   *
   *   async def main():
   *       a = asyncio.create_task(worker("a", 3, value=1))
   *       b = asyncio.create_task(worker("b", 1, value=2))
   *       c = asyncio.create_task(worker("c", 2, value=3))
   *       names = {a: "a", b: "b", c: "c"}
   *       for f in asyncio.as_completed([a, b, c]):
   *           r = await f
   *           ev(f"main:got:{names[next(t for t in names if t.done() and t.result() == r)]}:{r}")
   *   run(main)
   *
   * prints: a:start@0 b:start@0 c:start@0 b:end@1 main:got:b:2@1 c:end@2
   *   main:got:c:3@2 a:end@3 main:got:a:1@3
   */
  /* Completion order, not input order; then next() returns NULL. */
  assert_events ("a:start@0 b:start@0 c:start@0 b:end@1 main:got:b:2@1 "
                 "c:end@2 main:got:c:3@2 a:end@3 main:got:a:1@3");
  g_assert_cmpuint (((Consumer *) m)->n_nexts, ==, 3);
  /* The iterator is done once every input is. */
  drain (loop);
  g_assert_true (afut_future_is_done (it));
  for (i = 0; i < 3; i++)
    afut_future_unref (fs[i]);
  afut_future_unref (m);
  afut_future_unref (it);
  loop_free (loop);
}

static void
test_as_completed_timeout (void)
{
  AfutLoop *loop = loop_new ();
  AfutFuture *fs[3];
  AfutFuture *it, *m;
  int i;

  fs[0] = SPAWN_ON (loop, .label = "a", .delay = 1, .value = 1);
  fs[1] = SPAWN_ON (loop, .label = "b", .delay = 5, .value = 2);
  fs[2] = SPAWN_ON (loop, .label = "c", .delay = 6, .value = 3);
  it = afut_as_completed (fs, 3, 2);
  m = consumer_new (loop, it,
                    afut_gather (afut_future_ref (fs[1]),
                                 afut_future_ref (fs[2]), NULL),
                    3);
  run_until (loop, m);
  /* Python reference:
   *
   *   async def main():
   *       a = asyncio.create_task(worker("a", 1, value=1))
   *       b = asyncio.create_task(worker("b", 5, value=2))
   *       c = asyncio.create_task(worker("c", 6, value=3))
   *       for f in asyncio.as_completed([a, b, c], timeout=2):
   *           try:
   *               ev(f"main:got:a:{await f}")
   *           except TimeoutError:
   *               ev("main:timeout")
   *       await asyncio.gather(b, c)
   *   run(main)
   *
   * prints: a:start@0 b:start@0 c:start@0 a:end@1 main:got:a:1@1
   *   main:timeout@2 main:timeout@2 b:end@5 c:end@6
   */
  /* One timeout per input left, and they are not cancelled. */
  assert_events ("a:start@0 b:start@0 c:start@0 a:end@1 main:got:a:1@1 "
                 "main:timeout@2 main:timeout@2 b:end@5 c:end@6");
  g_assert_cmpuint (((Consumer *) m)->n_nexts, ==, 3);
  assert_state (m, AFUT_FUTURE_DONE);
  for (i = 0; i < 3; i++)
    afut_future_unref (fs[i]);
  afut_future_unref (m);
  loop_free (loop);
}

static void
test_as_completed_errors_readable (void)
{
  AfutLoop *loop = loop_new ();
  AfutFuture *fs[3];
  AfutFuture *it, *m, *k;
  int i;

  fs[0] = SPAWN_ON (loop, .label = "a", .delay = 2, .value = 1);
  fs[1] = SPAWN_ON (loop, .label = "b", .delay = 1, .fail = "boom");
  fs[2] = SPAWN_ON (loop, .label = "c", .delay = 5);
  k = afut_loop_call_at (loop, 3, cancel_cb, fs[2]);
  it = afut_as_completed (fs, 3, AFUT_NO_TIMEOUT);
  m = consumer_new (loop, it, NULL, 3);
  run_until (loop, m);
  /* Each next future resolves (it does not fail) with the input, whose
   * error is read from it (Python 3.13's `async for`). */
  assert_events ("a:start@0 b:start@0 c:start@0 b:fail@1 "
                 "main:got:b:error:boom@1 a:end@2 main:got:a:1@2 cancel@3 "
                 "c:cancelled@3 main:got:c:cancelled@3");
  for (i = 0; i < 3; i++)
    afut_future_unref (fs[i]);
  afut_future_unref (k);
  afut_future_unref (m);
  loop_free (loop);
}

static void
log_next (AfutFuture *next, void *data)
{
  assert_state (next, AFUT_FUTURE_DONE);
  tev ("%s:%s", (const char *) data,
       name_of (afut_future_get_pointer (next)));
}

static void
test_as_completed_next_ahead (void)
{
  AfutLoop *loop = loop_new ();
  AfutFuture *fs[3];
  AfutFuture *it, *n[3];
  int i;

  fs[0] = SPAWN_ON (loop, .label = "a", .delay = 3);
  fs[1] = SPAWN_ON (loop, .label = "b", .delay = 1);
  fs[2] = SPAWN_ON (loop, .label = "c", .delay = 2);
  it = afut_as_completed (fs, 3, AFUT_NO_TIMEOUT);
  /* All three asked for before anything completes. */
  n[0] = afut_as_completed_next (it);
  n[1] = afut_as_completed_next (it);
  n[2] = afut_as_completed_next (it);
  g_assert_null (afut_as_completed_next (it));
  afut_future_add_done_callback (n[0], log_next, "n1");
  afut_future_add_done_callback (n[1], log_next, "n2");
  afut_future_add_done_callback (n[2], log_next, "n3");
  run_until (loop, n[2]);
  drain (loop);
  assert_events ("a:start@0 b:start@0 c:start@0 b:end@1 n1:b@1 c:end@2 "
                 "n2:c@2 a:end@3 n3:a@3");
  for (i = 0; i < 3; i++)
    {
      afut_future_unref (n[i]);
      afut_future_unref (fs[i]);
    }
  afut_future_unref (it);
  loop_free (loop);
}

static void
test_as_completed_cancelled_next (void)
{
  AfutLoop *loop = loop_new ();
  AfutFuture *fs[2];
  AfutFuture *it, *n1, *n2, *n3;

  fs[0] = SPAWN_ON (loop, .label = "a", .delay = 1);
  fs[1] = SPAWN_ON (loop, .label = "b", .delay = 2);
  it = afut_as_completed (fs, 2, AFUT_NO_TIMEOUT);
  n1 = afut_as_completed_next (it);
  /* Its awaiter gave up: no input is lost with it. */
  g_assert_true (afut_future_cancel (n1, NULL));
  n2 = afut_as_completed_next (it);
  n3 = afut_as_completed_next (it);
  g_assert_nonnull (n2);
  g_assert_nonnull (n3);
  g_assert_null (afut_as_completed_next (it));
  afut_future_add_done_callback (n2, log_next, "n2");
  afut_future_add_done_callback (n3, log_next, "n3");
  run_until (loop, n3);
  drain (loop);
  assert_events ("a:start@0 b:start@0 a:end@1 n2:a@1 b:end@2 n3:b@2");
  assert_cancelled (n1);
  afut_future_unref (n1);
  afut_future_unref (n2);
  afut_future_unref (n3);
  afut_future_unref (it);
  afut_future_unref (fs[0]);
  afut_future_unref (fs[1]);
  loop_free (loop);
}

static void
test_as_completed_duplicates_and_done (void)
{
  AfutLoop *loop = loop_new ();
  AfutFuture *f = named (afut_future_new (loop), "f");
  AfutFuture *a = SPAWN_ON (loop, .label = "a", .delay = 1);
  AfutFuture *fs[4] = { a, f, a, f };
  AfutFuture *it, *n1, *n2;

  afut_future_resolve_int (f, 3);
  it = afut_as_completed (fs, 4, AFUT_NO_TIMEOUT);
  n1 = afut_as_completed_next (it);
  n2 = afut_as_completed_next (it);
  /* each input once */
  g_assert_null (afut_as_completed_next (it));
  run_until (loop, n1);
  /* The done one comes first, with no wait. */
  g_assert_cmpfloat (afut_loop_time (loop), ==, 0);
  g_assert_true (afut_future_get_pointer (n1) == f);
  run_until (loop, n2);
  g_assert_cmpfloat (afut_loop_time (loop), ==, 1);
  g_assert_true (afut_future_get_pointer (n2) == a);
  afut_future_unref (n1);
  afut_future_unref (n2);
  afut_future_unref (it);
  afut_future_unref (a);
  afut_future_unref (f);
  loop_free (loop);
}

static void
test_as_completed_starts_coroutines (void)
{
  AfutLoop *loop = loop_new ();
  AfutFuture *fs[2];
  AfutFuture *it, *m;

  fs[0] = CORO_ON (loop, .label = "c1", .delay = 2, .value = 1);
  fs[1] = CORO_ON (loop, .label = "c2", .delay = 1, .value = 2);
  it = afut_as_completed (fs, 2, AFUT_NO_TIMEOUT);
  g_assert_cmpstr (events->str, ==, "");
  m = consumer_new (loop, it, NULL, 2);
  run_until (loop, m);
  assert_events ("c1:start@0 c2:start@0 c2:end@1 main:got:c2:2@1 c1:end@2 "
                 "main:got:c1:1@2");
  afut_future_unref (fs[0]);
  afut_future_unref (fs[1]);
  afut_future_unref (m);
  loop_free (loop);
}

typedef struct
{
  AfutTask task;
  const char *label;
} Empty;

static void
empty_as_completed (AfutTask *task)
{
  AfutFuture *it;
  AFUT_BEGIN (task);
  it = afut_as_completed (NULL, 0, AFUT_NO_TIMEOUT);
  g_assert_nonnull (it);
  g_assert_null (afut_as_completed_next (it));
  AFUT_AWAIT (task, it);
  tev ("main:done");
  AFUT_END (task);
}

static void
test_as_completed_empty (void)
{
  AfutLoop *loop = loop_new ();
  AfutFuture *m = TASK (loop, Empty, empty_as_completed, "main",
                        .label = "main");

  run_until (loop, m);
  /* As `for f in asyncio.as_completed([])`: nothing to hand out. */
  assert_events ("main:done@0");
  assert_state (m, AFUT_FUTURE_DONE);
  afut_future_unref (m);
  loop_free (loop);
}

static void
test_as_completed_dropped_early (void)
{
  AfutLoop *loop = loop_new ();
  AfutFuture *fs[2];
  AfutFuture *it, *n1, *s;

  fs[0] = SPAWN_ON (loop, .label = "a", .delay = 1);
  fs[1] = SPAWN_ON (loop, .label = "b", .delay = 2);
  it = afut_as_completed (fs, 2, 5);
  n1 = afut_as_completed_next (it);
  afut_future_unref (it);
  afut_future_unref (fs[0]);
  afut_future_unref (fs[1]);
  s = afut_loop_sleep (loop, 3);
  run_until (loop, s);
  /* The next future handed out still completes; nothing leaks (run
   * under valgrind) and nothing is cancelled. */
  assert_events ("a:start@0 b:start@0 a:end@1 b:end@2");
  assert_state (n1, AFUT_FUTURE_DONE);
  afut_future_unref (n1);
  afut_future_unref (s);
  loop_free (loop);
}

/* ---- race ---- */

static void
test_race_first_value_wins (void)
{
  AfutLoop *loop = loop_new ();
  AfutFuture *a = SPAWN_ON (loop, .label = "a", .delay = 2, .value = 1);
  AfutFuture *b = SPAWN_ON (loop, .label = "b", .delay = 1, .value = 2);
  AfutFuture *r = afut_race (afut_future_ref (a), afut_future_ref (b), NULL);

  g_assert_nonnull (r);
  afut_future_add_done_callback (r, log_done, "race");
  run_until (loop, a);
  /* Promise.race: settles with the first; the other runs on. */
  assert_events ("a:start@0 b:start@0 b:end@1 race:done@1 a:end@2");
  assert_int (r, 2);
  assert_int (a, 1);
  afut_future_unref (a);
  afut_future_unref (b);
  afut_future_unref (r);
  loop_free (loop);
}

static void
test_race_first_error_wins (void)
{
  AfutLoop *loop = loop_new ();
  AfutFuture *a = SPAWN_ON (loop, .label = "a", .delay = 2, .value = 1);
  AfutFuture *b = SPAWN_ON (loop, .label = "b", .delay = 1, .fail = "boom");
  AfutFuture *r = afut_race (afut_future_ref (a), b, NULL);

  afut_future_add_done_callback (r, log_done, "race");
  run_until (loop, a);
  assert_events ("a:start@0 b:start@0 b:fail@1 race:failed@1 a:end@2");
  assert_failed (r, "boom");
  assert_int (a, 1);
  afut_future_unref (a);
  afut_future_unref (r);
  loop_free (loop);
}

static void
test_race_losers_errors_retrieved (void)
{
  AfutLoop *loop = loop_new ();
  AfutFuture *a = SPAWN_ON (loop, .label = "a", .delay = 1, .value = 1);
  AfutFuture *b = SPAWN_ON (loop, .label = "b", .delay = 2, .fail = "late");
  AfutFuture *c = SPAWN_ON (loop, .label = "c", .delay = 3, .fail = "later");
  AfutFuture *r = afut_race (a, b, c, NULL);
  AfutFuture *s = afut_loop_sleep (loop, 4);

  run_until (loop, s);
  assert_events ("a:start@0 b:start@0 c:start@0 a:end@1 b:fail@2 c:fail@3");
  assert_int (r, 1);
  afut_future_unref (r);
  afut_future_unref (s);
  /* The losers' errors are nobody's business: not reported. */
  loop_free (loop);
}

static void
test_race_cancel_cancels_pending (void)
{
  AfutLoop *loop = loop_new ();
  AfutFuture *a = SPAWN_ON (loop, .label = "a", .delay = 5, .cleanup = 1);
  AfutFuture *b = SPAWN_ON (loop, .label = "b", .delay = 3);
  AfutFuture *r = afut_race (afut_future_ref (a), afut_future_ref (b), NULL);
  AfutFuture *k = afut_loop_call_at (loop, 1, cancel_cb, r);

  afut_future_add_done_callback (r, log_done, "race");
  run_until (loop, a);
  run_until (loop, r);
  drain (loop);
  g_assert_nonnull (strstr (events->str,
                            "a:start@0 b:start@0 cancel@1 a:cancelled@1 "
                            "b:cancelled@1 "));
  g_assert_nonnull (strstr (events->str, "a:cleaned@2"));
  g_assert_nonnull (strstr (events->str, "race:cancelled@"));
  assert_cancelled (r);
  assert_cancelled (a);
  assert_cancelled (b);
  afut_future_unref (a);
  afut_future_unref (b);
  afut_future_unref (k);
  afut_future_unref (r);
  loop_free (loop);
}

static void
test_race_cancel_after_settled (void)
{
  AfutLoop *loop = loop_new ();
  AfutFuture *a = SPAWN_ON (loop, .label = "a", .delay = 2, .value = 1);
  AfutFuture *b = SPAWN_ON (loop, .label = "b", .delay = 1, .value = 2);
  AfutFuture *r = afut_race (afut_future_ref (a), b, NULL);

  run_until (loop, r);
  g_assert_false (afut_future_cancel (r, NULL));
  run_until (loop, a);
  assert_events ("a:start@0 b:start@0 b:end@1 a:end@2");
  assert_int (a, 1);
  assert_int (r, 2);
  afut_future_unref (a);
  afut_future_unref (r);
  loop_free (loop);
}

static void
test_race_no_input (void)
{
  AfutLoop *loop = loop_new ();

  expect_log_begin (AFUT_LOG_CRITICAL, "afut_race");
  g_assert_null (afut_race (NULL, NULL));
  g_assert_null (afut_race_v (NULL, 0));
  g_assert_cmpuint (expect_log_end (), ==, 2);
  assert_idle (loop);
  loop_free (loop);
}

static void
test_race_pointer_lent (void)
{
  AfutLoop *loop = loop_new ();
  AfutFuture *p = TASK (loop, Empty, pointer_task, "p", .label = "p");
  AfutFuture *a = SPAWN_ON (loop, .label = "a", .delay = 5);
  AfutFuture *r = afut_race (p, afut_future_ref (a), NULL);

  run_until (loop, r);
  g_assert_cmpint (afut_future_get_value_type (r), ==, AFUT_VALUE_POINTER);
  g_assert_cmpstr ((const char *) afut_future_get_pointer (r), ==, "payload");
  run_until (loop, a);
  drain (loop);
  /* Lent: the winner stays alive with the race, and its value is freed
   * once, with it. */
  g_assert_cmpstr ((const char *) afut_future_get_pointer (r), ==, "payload");
  g_assert_cmpuint (n_destroyed, ==, 0);
  afut_future_unref (r);
  g_assert_cmpuint (n_destroyed, ==, 1);
  afut_future_unref (a);
  loop_free (loop);
}

static void
test_race_coroutines_input_order (void)
{
  AfutLoop *loop = loop_new ();
  AfutFuture *r = afut_race (CORO_ON (loop, .label = "c1", .delay = 2,
                                      .value = 1),
                             CORO_ON (loop, .label = "c2", .delay = 1,
                                      .value = 2),
                             CORO_ON (loop, .label = "c3", .delay = 3,
                                      .value = 3),
                             NULL);
  AfutFuture *s = afut_loop_sleep (loop, 4);

  g_assert_cmpstr (events->str, ==, "");
  run_until (loop, r);
  assert_int (r, 2);
  run_until (loop, s);
  assert_events ("c1:start@0 c2:start@0 c3:start@0 c2:end@1 c1:end@2 "
                 "c3:end@3");
  afut_future_unref (r);
  afut_future_unref (s);
  loop_free (loop);
}

static void
test_race_done_input (void)
{
  AfutLoop *loop = loop_new ();
  AfutFuture *f = afut_future_new (loop);
  AfutFuture *g = afut_future_new (loop);
  AfutFuture *r;

  afut_future_resolve_int (f, 3);
  r = afut_race (afut_future_ref (g), afut_future_ref (f), NULL);
  run_until (loop, r);
  assert_int (r, 3);
  g_assert_cmpfloat (afut_loop_time (loop), ==, 0);
  assert_state (g, AFUT_FUTURE_PENDING);
  /* (A loser that never completes would keep the race, which watches
   * it, alive: complete it, as a gather's child must be.) */
  afut_future_resolve (g);
  drain (loop);
  afut_future_unref (r);
  afut_future_unref (f);
  afut_future_unref (g);
  loop_free (loop);
}

/* ---- any ---- */

static void
assert_group (AfutFuture *future, size_t n)
{
  assert_state (future, AFUT_FUTURE_FAILED);
  assert_error (afut_future_get_error (future), AFUT_ERROR, AFUT_ERROR_GROUP,
                NULL);
  g_assert_cmpuint (afut_future_get_n_sub_errors (future), ==, n);
  g_assert_null (afut_future_get_sub_error (future, n));
}

static void
test_any_first_success (void)
{
  AfutLoop *loop = loop_new ();
  AfutFuture *a = SPAWN_ON (loop, .label = "a", .delay = 1, .fail = "ea");
  AfutFuture *b = SPAWN_ON (loop, .label = "b", .delay = 2, .value = 5);
  AfutFuture *c = SPAWN_ON (loop, .label = "c", .delay = 3, .value = 6);
  AfutFuture *y = afut_any (afut_future_ref (a), afut_future_ref (b),
                            afut_future_ref (c), NULL);

  g_assert_nonnull (y);
  afut_future_add_done_callback (y, log_done, "any");
  run_until (loop, c);
  /* Promise.any: a failure does not settle it; the first success does;
   * the others run on. */
  assert_events ("a:start@0 b:start@0 c:start@0 a:fail@1 b:end@2 "
                 "any:done@2 c:end@3");
  assert_int (y, 5);
  g_assert_cmpuint (afut_future_get_n_sub_errors (y), ==, 0);
  assert_failed (a, "ea");
  assert_int (c, 6);
  afut_future_unref (a);
  afut_future_unref (b);
  afut_future_unref (c);
  afut_future_unref (y);
  loop_free (loop);
}

static void
test_any_all_fail (void)
{
  AfutLoop *loop = loop_new ();
  AfutFuture *c = SPAWN_ON (loop, .label = "c", .delay = 5);
  AfutFuture *k = afut_loop_call_at (loop, 0.5, cancel_cb, c);
  AfutFuture *a = SPAWN_ON (loop, .label = "a", .delay = 2, .fail = "ea");
  AfutFuture *b = SPAWN_ON (loop, .label = "b", .delay = 1, .fail = "eb");
  AfutFuture *y = afut_any (a, b, c, NULL);
  const AfutError *e;

  afut_future_add_done_callback (y, log_done, "any");
  run_until (loop, y);
  drain (loop);
  /* Settled when the last input failed. */
  assert_events ("c:start@0 a:start@0 b:start@0 cancel@0.5 c:cancelled@0.5 "
                 "b:fail@1 a:fail@2 any:failed@2");
  /* AggregateError.errors: in input order, a cancellation counting as a
   * failure. */
  assert_group (y, 3);
  assert_error (afut_future_get_sub_error (y, 0), TEST_ERROR, 7, "ea");
  assert_error (afut_future_get_sub_error (y, 1), TEST_ERROR, 7, "eb");
  assert_error (afut_future_get_sub_error (y, 2), AFUT_ERROR,
                AFUT_ERROR_CANCELLED, NULL);
  /* The message lists them. */
  e = afut_future_get_error (y);
  g_assert_nonnull (strstr (e->message, "ea"));
  g_assert_nonnull (strstr (e->message, "eb"));
  afut_future_unref (k);
  afut_future_unref (y);
  /* The inputs' errors went into the group: nothing is reported. */
  loop_free (loop);
}

static void
empty_any (AfutTask *task)
{
  AfutFuture *y;
  AFUT_BEGIN (task);
  y = afut_any (NULL, NULL);
  g_assert_nonnull (y);
  /* at once, as Promise.any([]) */
  assert_group (y, 0);
  afut_future_unref (y);
  y = afut_any_v (NULL, 0);
  g_assert_nonnull (y);
  assert_group (y, 0);
  AFUT_AWAIT_TRY (task, y);
  tev ("main:%s:%zu", error_name (afut_task_caught (task)),
       afut_future_get_n_sub_errors (afut_task_awaited (task)));
  AFUT_END (task);
}

static void
test_any_zero_inputs (void)
{
  AfutLoop *loop = loop_new ();
  AfutFuture *m = TASK (loop, Empty, empty_any, "main", .label = "main");

  run_until (loop, m);
  assert_events ("main:group:0@0");
  assert_state (m, AFUT_FUTURE_DONE);
  afut_future_unref (m);
  loop_free (loop);
}

static void
test_any_cancelled_input_is_failure (void)
{
  AfutLoop *loop = loop_new ();
  AfutFuture *a = SPAWN_ON (loop, .label = "a", .delay = 5);
  AfutFuture *k = afut_loop_call_at (loop, 1, cancel_cb, a);
  AfutFuture *y = afut_any (afut_future_ref (a),
                            SPAWN_ON (loop, .label = "b", .delay = 2,
                                      .value = 5),
                            NULL);
  AfutFuture *f = afut_future_new (loop);
  AfutFuture *z = afut_any (afut_future_ref (f), NULL);

  afut_future_add_done_callback (y, log_done, "any");
  run_until (loop, y);
  drain (loop);
  assert_events ("a:start@0 b:start@0 cancel@1 a:cancelled@1 b:end@2 "
                 "any:done@2");
  assert_int (y, 5);
  /* Every input cancelled: a group of cancellations. */
  afut_future_cancel (f, "gone");
  run_until (loop, z);
  assert_group (z, 1);
  assert_error (afut_future_get_sub_error (z, 0), AFUT_ERROR,
                AFUT_ERROR_CANCELLED, "gone");
  assert_cancelled (a);
  afut_future_unref (a);
  afut_future_unref (f);
  afut_future_unref (k);
  afut_future_unref (y);
  afut_future_unref (z);
  loop_free (loop);
}

static void
test_any_cancel_cancels_inputs (void)
{
  AfutLoop *loop = loop_new ();
  AfutFuture *a = SPAWN_ON (loop, .label = "a", .delay = 5, .cleanup = 1);
  AfutFuture *b = SPAWN_ON (loop, .label = "b", .delay = 5);
  AfutFuture *y = afut_any (afut_future_ref (a), afut_future_ref (b), NULL);
  AfutFuture *k = afut_loop_call_at (loop, 1, cancel_cb, y);

  run_until (loop, a);
  run_until (loop, y);
  drain (loop);
  g_assert_nonnull (strstr (events->str,
                            "a:start@0 b:start@0 cancel@1 a:cancelled@1 "
                            "b:cancelled@1 "));
  g_assert_nonnull (strstr (events->str, "a:cleaned@2"));
  assert_cancelled (y);
  assert_cancelled (a);
  assert_cancelled (b);
  afut_future_unref (a);
  afut_future_unref (b);
  afut_future_unref (k);
  afut_future_unref (y);
  loop_free (loop);
}

static void
cancel_with_stop_cb (void *data)
{
  tev ("cancel");
  afut_future_cancel ((AfutFuture *) data, "stop");
}

/* A cancel message reaches the awaiter of an any, as it reaches those of
 * a gather and a race (DESIGN.md rule 5); an any used to end with an
 * empty one.  The awaiter is cancelled: asyncio's Task.cancel(msg)
 * cancels what it awaits with msg.  For the gather, CPython 3.11.2
 * prints "a:start@0 b:start@0 cancel@1 a:cancelled@1 b:cancelled@1
 * w:cancelled:stop@1" (asyncio has no race or any):
 *
 *   async def main():
 *       a = asyncio.ensure_future(worker("a", 5, cleanup=1))
 *       b = asyncio.ensure_future(worker("b", 5))
 *       async def w():
 *           try:
 *               await asyncio.gather(a, b)
 *           except asyncio.CancelledError as e:
 *               ev(f"w:cancelled:{e.args[0]}")
 *               raise
 *       t = asyncio.ensure_future(w())
 *       at(1, "cancel", lambda: t.cancel("stop"))
 *       try:
 *           await t
 *       except asyncio.CancelledError:
 *           pass
 *   run(main)
 */
static void
test_any_cancel_message (gconstpointer data)
{
  const char *kind = data;
  AfutLoop *loop = loop_new ();
  AfutFuture *a = SPAWN_ON (loop, .label = "a", .delay = 5, .cleanup = 1);
  AfutFuture *b = SPAWN_ON (loop, .label = "b", .delay = 5);
  AfutFuture *combined, *w, *k;

  if (g_str_equal (kind, "gather"))
    combined = afut_gather (afut_future_ref (a), afut_future_ref (b), NULL);
  else if (g_str_equal (kind, "race"))
    combined = afut_race (afut_future_ref (a), afut_future_ref (b), NULL);
  else
    combined = afut_any (afut_future_ref (a), afut_future_ref (b), NULL);
  w = afut_task_new (loop, waiter, sizeof (Waiter),
                     &(Waiter){ .label = "w",
                                .future = afut_future_ref (combined),
                                .reraise = true },
                     "w", NULL);
  k = afut_loop_call_at (loop, 1, cancel_with_stop_cb, w);

  run_until (loop, w);
  drain (loop);
  g_assert_nonnull (strstr (events->str, "cancel@1 a:cancelled@1 "
                                         "b:cancelled@1 "));
  assert_cancelled (combined);
  g_assert_cmpstr (afut_future_get_error (combined)->message, ==, "stop");
  assert_cancelled (w);
  g_assert_cmpstr (afut_future_get_error (w)->message, ==, "stop");
  afut_future_unref (a);
  afut_future_unref (b);
  afut_future_unref (k);
  afut_future_unref (w);
  afut_future_unref (combined);
  loop_free (loop);
}

static void
test_any_coroutines (void)
{
  AfutLoop *loop = loop_new ();
  AfutFuture *y = afut_any (CORO_ON (loop, .label = "c1", .delay = 3,
                                     .value = 1),
                            CORO_ON (loop, .label = "c2", .delay = 2,
                                     .value = 2),
                            NULL);
  AfutFuture *s = afut_loop_sleep (loop, 4);

  g_assert_cmpstr (events->str, ==, "");
  run_until (loop, y);
  assert_int (y, 2);
  run_until (loop, s);
  assert_events ("c1:start@0 c2:start@0 c2:end@2 c1:end@3");
  afut_future_unref (y);
  afut_future_unref (s);
  loop_free (loop);
}

static void
test_any_failed_inputs_not_reported (void)
{
  AfutLoop *loop = loop_new ();
  AfutFuture *a = SPAWN_ON (loop, .label = "a", .delay = 1, .fail = "ea");
  AfutFuture *b = SPAWN_ON (loop, .label = "b", .delay = 2, .value = 5);
  AfutFuture *y = afut_any (a, b, NULL);

  run_until (loop, y);
  drain (loop);
  assert_events ("a:start@0 b:start@0 a:fail@1 b:end@2");
  assert_int (y, 5);
  afut_future_unref (y);
  /* a's error was handed to the any (a's only reference went with it),
   * which took it as a failure: as race does with its losers' errors,
   * and as it does when every input fails, it is not reported as never
   * retrieved. */
  loop_free (loop);
}

static void
test_sub_errors_of_others (void)
{
  AfutLoop *loop = loop_new ();
  AfutFuture *f = afut_future_new (loop);
  AfutFuture *g = afut_future_new (loop);

  afut_future_fail (f, afut_error_new_literal (TEST_ERROR, 7, "plain"));
  afut_future_resolve (g);
  /* Not a group: no sub-errors. */
  g_assert_cmpuint (afut_future_get_n_sub_errors (f), ==, 0);
  g_assert_cmpuint (afut_future_get_n_sub_errors (g), ==, 0);
  assert_failed (f, "plain");
  afut_future_unref (f);
  afut_future_unref (g);
  /* A group error made by hand has none to hand out either. */
  f = afut_future_new (loop);
  afut_future_fail (f, afut_error_new_literal (AFUT_ERROR, AFUT_ERROR_GROUP,
                                               "by hand"));
  g_assert_cmpuint (afut_future_get_n_sub_errors (f), ==, 0);
  g_assert_null (afut_future_get_sub_error (f, 0));
  g_assert_nonnull (afut_future_get_error (f));
  afut_future_unref (f);
  loop_free (loop);
}

/* A future that fails with another's group error hands out the same
 * sub-errors (in Python, the same ExceptionGroup object travels), even
 * once the future that made the group is gone. */
static void
test_sub_errors_through_combinators (void)
{
  AfutLoop *loop = loop_new ();
  AfutFuture *a = SPAWN_ON (loop, .label = "a", .delay = 1, .fail = "ea");
  AfutFuture *b = SPAWN_ON (loop, .label = "b", .delay = 2, .fail = "eb");
  AfutFuture *y = afut_any (a, b, NULL);
  AfutFuture *shield = afut_shield (afut_future_ref (y));
  AfutFuture *wait_for = afut_wait_for (afut_future_ref (y), 10);
  AfutFuture *race = afut_race (afut_future_ref (y), NULL);
  AfutFuture *all[3] = { shield, wait_for, race };
  AfutFuture *gathered = afut_gather_v (all, 3);
  size_t i;

  run_until (loop, gathered);
  drain (loop);
  assert_events ("a:start@0 b:start@0 a:fail@1 b:fail@2");
  afut_future_unref (y);
  for (i = 0; i < 3; i++)
    {
      g_assert_cmpuint (afut_future_get_n_sub_errors (all[i]), ==, 2);
      assert_error (afut_future_get_sub_error (all[i], 0), TEST_ERROR, 7,
                    "ea");
      assert_error (afut_future_get_sub_error (all[i], 1), TEST_ERROR, 7,
                    "eb");
      g_assert_null (afut_future_get_sub_error (all[i], 2));
    }
  /* The gather failed with its first child's error: the same group. */
  g_assert_cmpuint (afut_future_get_n_sub_errors (gathered), ==, 2);
  assert_error (afut_future_get_sub_error (gathered, 1), TEST_ERROR, 7, "eb");
  afut_future_unref (gathered);
  for (i = 0; i < 3; i++)
    afut_future_unref (all[i]);
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
  names = g_hash_table_new (NULL, NULL);
  afut_set_log_func (test_log_func, NULL);

  g_test_add_func ("/wait/first-completed", test_wait_first_completed);
  g_test_add_func ("/wait/first-completed-together",
                   test_wait_first_completed_together);
  g_test_add_func ("/wait/first-exception", test_wait_first_exception);
  g_test_add_func ("/wait/first-exception-none-fails",
                   test_wait_first_exception_none_fails);
  g_test_add_func ("/wait/first-exception-ignores-cancelled",
                   test_wait_first_exception_ignores_cancelled);
  g_test_add_func ("/wait/all-completed", test_wait_all_completed);
  g_test_add_func ("/wait/timeout", test_wait_timeout);
  g_test_add_func ("/wait/timeout-timer-gone", test_wait_timeout_timer_gone);
  g_test_add_func ("/wait/cancel-leaves-inputs",
                   test_wait_cancel_leaves_inputs);
  g_test_add_func ("/wait/duplicates", test_wait_duplicates);
  g_test_add_func ("/wait/bad-input", test_wait_bad_input);
  g_test_add_func ("/wait/starts-coroutines", test_wait_starts_coroutines);
  g_test_add_func ("/wait/already-done", test_wait_already_done);
  g_test_add_func ("/as-completed/completion-order", test_as_completed_order);
  g_test_add_func ("/as-completed/timeout", test_as_completed_timeout);
  g_test_add_func ("/as-completed/errors-readable",
                   test_as_completed_errors_readable);
  g_test_add_func ("/as-completed/next-ahead", test_as_completed_next_ahead);
  g_test_add_func ("/as-completed/cancelled-next-loses-nothing",
                   test_as_completed_cancelled_next);
  g_test_add_func ("/as-completed/duplicates-and-done",
                   test_as_completed_duplicates_and_done);
  g_test_add_func ("/as-completed/starts-coroutines",
                   test_as_completed_starts_coroutines);
  g_test_add_func ("/as-completed/empty", test_as_completed_empty);
  g_test_add_func ("/as-completed/dropped-early",
                   test_as_completed_dropped_early);
  g_test_add_func ("/race/first-value-wins", test_race_first_value_wins);
  g_test_add_func ("/race/first-error-wins", test_race_first_error_wins);
  g_test_add_func ("/race/losers-errors-retrieved",
                   test_race_losers_errors_retrieved);
  g_test_add_func ("/race/cancel-cancels-pending",
                   test_race_cancel_cancels_pending);
  g_test_add_func ("/race/cancel-after-settled",
                   test_race_cancel_after_settled);
  g_test_add_func ("/race/no-input", test_race_no_input);
  g_test_add_func ("/race/pointer-lent", test_race_pointer_lent);
  g_test_add_func ("/race/coroutines-input-order",
                   test_race_coroutines_input_order);
  g_test_add_func ("/race/done-input", test_race_done_input);
  g_test_add_func ("/any/first-success", test_any_first_success);
  g_test_add_func ("/any/all-fail-group", test_any_all_fail);
  g_test_add_func ("/any/zero-inputs", test_any_zero_inputs);
  g_test_add_func ("/any/cancelled-input-is-failure",
                   test_any_cancelled_input_is_failure);
  g_test_add_func ("/any/cancel-cancels-inputs",
                   test_any_cancel_cancels_inputs);
  g_test_add_data_func ("/any/cancel-message/any", "any",
                        test_any_cancel_message);
  g_test_add_data_func ("/any/cancel-message/race", "race",
                        test_any_cancel_message);
  g_test_add_data_func ("/any/cancel-message/gather", "gather",
                        test_any_cancel_message);
  g_test_add_func ("/any/coroutines", test_any_coroutines);
  g_test_add_func ("/any/failed-inputs-not-reported",
                   test_any_failed_inputs_not_reported);
  g_test_add_func ("/any/sub-errors-of-others", test_sub_errors_of_others);
  g_test_add_func ("/any/sub-errors-through-combinators",
                   test_sub_errors_through_combinators);

  status = g_test_run ();
  afut_set_log_func (NULL, NULL);
  g_string_free (events, TRUE);
  g_string_free (lines, TRUE);
  g_ptr_array_unref (reports);
  g_hash_table_unref (names);
  return status;
}
