/* test-task-group.c - afut 0.2's task groups (asyncio.TaskGroup of
 * CPython 3.11, /usr/lib/python3.11/asyncio/taskgroups.py): the exit
 * waits for every child, children spawned while exiting, the first
 * failure cancels the siblings and the parent's body, AFUT_ERROR_GROUP
 * with every child's error, a parent cancelled from outside, a body that
 * raises or returns inside the block, spawns refused, nesting, and the
 * parent's cancel requests balanced (Task.cancelling()).
 *
 * Every loop runs on the virtual clock.  What ran is logged as
 * "WHAT@TIME" and compared with what CPython 3.11 prints for the
 * equivalent program, kept in a comment beside each test: prepend the
 * prelude below and run it with python3.  The prelude gives asyncio
 * afut's virtual clock and afut's order for timers due at the same time
 * (creation order, DESIGN.md rule 3, which CPython's heap leaves
 * unspecified). */

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

/* "e1,e2": the messages of @future's sub-errors, in order */
static char *
sub_errors (AfutFuture *future)
{
  GString *s = g_string_new (NULL);
  size_t i, n = afut_future_get_n_sub_errors (future);
  for (i = 0; i < n; i++)
    {
      const AfutError *e = afut_future_get_sub_error (future, i);
      g_assert_nonnull (e);
      g_string_append_printf (s, "%s%s", i > 0 ? "," : "", e->message);
    }
  g_assert_null (afut_future_get_sub_error (future, n));
  return g_string_free (s, FALSE);
}

/* A group failed with @future: its code, and its message listing each
 * of @messages. */
static void
assert_group_error (const AfutError *error, const char *const *messages)
{
  g_assert_nonnull (error);
  assert_error (error, AFUT_ERROR, AFUT_ERROR_GROUP, NULL);
  for (; *messages != NULL; messages++)
    g_assert_nonnull (strstr (error->message, *messages));
}

#define MESSAGES(...) ((const char *const[]){ __VA_ARGS__, NULL })

/* The parent of most tests: what it does depends on its step
 * function. */
typedef struct
{
  AfutTask task;
  const char *label;
  AfutTaskGroup *group;
  AfutTaskGroup *inner;
  AfutFuture *child;   /* owned */
  AfutFuture *refused; /* owned: a coroutine the group refused */
  AfutFuture *k;       /* owned: a call_at handle */
  unsigned n_logged;
} Parent;

static void
parent_finalize (AfutTask *task)
{
  Parent *self = (Parent *) task;
  n_finalized++;
  afut_future_unref (self->child);
  afut_future_unref (self->refused);
  afut_future_unref (self->k);
}

static AfutFuture *
parent_new (AfutLoop *loop, AfutTaskFunc func)
{
  n_created++;
  return afut_task_new (loop, func, sizeof (Parent), NULL, "parent",
                        parent_finalize);
}

static AfutFuture *
spawn_worker (AfutTaskGroup *group, const Worker *init)
{
  AfutFuture *child = afut_task_group_spawn (group, worker_coro (NULL, init));
  g_assert_nonnull (child);
  return child;
}

#define SPAWN_IN(group, ...) spawn_worker ((group), &(Worker){ __VA_ARGS__ })

/* Spawns a coroutine into @group, which must refuse it (reported);
 * returns whether it was refused and left cancelled. */
static bool
spawn_refused (AfutTaskGroup *group, const char *why)
{
  AfutFuture *x = WORKER_CORO (.label = "x", .delay = 1);
  AfutFuture *r;
  guint n;
  bool ok;
  afut_future_ref (x);
  expect_log_begin (AFUT_LOG_CRITICAL, why);
  r = afut_task_group_spawn (group, x);
  n = expect_log_end ();
  ok = r == NULL && n == 1 && afut_future_is_cancelled (x);
  afut_future_unref (x);
  return ok;
}

/* ---- exit waits ---- */

static void
group_all (AfutTask *task)
{
  Parent *self = (Parent *) task;
  AFUT_BEGIN (task);
  self->group = afut_task_group_new (task);
  g_assert_nonnull (self->group);
  SPAWN_IN (self->group, .label = "a", .delay = 1, .value = 1);
  SPAWN_IN (self->group, .label = "b", .delay = 3, .value = 2);
  SPAWN_IN (self->group, .label = "c", .delay = 2, .value = 3);
  tev ("body:end:%zu", afut_task_group_get_n_children (self->group));
  AFUT_AWAIT (task, afut_task_group_exit (self->group));
  tev ("main:exited");
  AFUT_END (task);
}

static void
test_group_exit_waits_all (void)
{
  AfutLoop *loop = loop_new ();
  AfutFuture *p = parent_new (loop, group_all);

  run_until (loop, p);
  /* Python reference:
   *
   *   async def main():
   *       async with asyncio.TaskGroup() as g:
   *           g.create_task(worker("a", 1, value=1))
   *           g.create_task(worker("b", 3, value=2))
   *           g.create_task(worker("c", 2, value=3))
   *           ev(f"body:end:{len(g._tasks)}")
   *       ev("main:exited")
   *   run(main)
   *
   * prints: body:end:3@0 a:start@0 b:start@0 c:start@0 a:end@1 c:end@2
   *   b:end@3 main:exited@3
   */
  assert_events ("body:end:3@0 a:start@0 b:start@0 c:start@0 a:end@1 "
                 "c:end@2 b:end@3 main:exited@3");
  assert_state (p, AFUT_FUTURE_DONE);
  g_assert_cmpuint (afut_task_cancelling (AFUT_TASK (p)), ==, 0);
  assert_idle (loop);
  afut_future_unref (p);
  loop_free (loop);
}

typedef struct
{
  AfutTask task;
  const char *label;
  AfutTaskGroup *group;
} Spawner;

static void
spawner (AfutTask *task)
{
  Spawner *self = (Spawner *) task;
  AFUT_BEGIN (task);
  tev ("%s:start", self->label);
  AFUT_AWAIT (task, afut_sleep (1));
  SPAWN_IN (self->group, .label = "d", .delay = 2);
  tev ("%s:spawned", self->label);
  AFUT_END (task);
}

static void
group_spawning_child (AfutTask *task)
{
  Parent *self = (Parent *) task;
  AFUT_BEGIN (task);
  self->group = afut_task_group_new (task);
  n_created++;
  afut_task_group_spawn (self->group,
                         afut_coro_new (NULL, spawner, sizeof (Spawner),
                                        &(Spawner){ .label = "a",
                                                    .group = self->group },
                                        "a", count_finalize));
  AFUT_AWAIT (task, afut_task_group_exit (self->group));
  tev ("main:exited:%zu", afut_task_group_get_n_children (self->group));
  AFUT_END (task);
}

static void
test_group_child_spawns_while_exiting (void)
{
  AfutLoop *loop = loop_new ();
  AfutFuture *p = parent_new (loop, group_spawning_child);

  run_until (loop, p);
  /* Python reference:
   *
   *   async def spawner(g):
   *       ev("a:start")
   *       await asyncio.sleep(1)
   *       g.create_task(worker("d", 2))
   *       ev("a:spawned")
   *   async def main():
   *       async with asyncio.TaskGroup() as g:
   *           g.create_task(spawner(g))
   *       ev(f"main:exited:{len(g._tasks)}")
   *   run(main)
   *
   * prints: a:start@0 a:spawned@1 d:start@1 d:end@3 main:exited:0@3
   */
  assert_events ("a:start@0 a:spawned@1 d:start@1 d:end@3 main:exited:0@3");
  assert_state (p, AFUT_FUTURE_DONE);
  afut_future_unref (p);
  loop_free (loop);
}

static void
group_empty (AfutTask *task)
{
  Parent *self = (Parent *) task;
  AFUT_BEGIN (task);
  self->group = afut_task_group_new (task);
  g_assert_cmpuint (afut_task_group_get_n_children (self->group), ==, 0);
  AFUT_AWAIT (task, afut_task_group_exit (self->group));
  tev ("main:exited");
  AFUT_END (task);
}

static void
test_group_no_children (void)
{
  AfutLoop *loop = loop_new ();
  AfutFuture *p = parent_new (loop, group_empty);

  run_until (loop, p);
  assert_events ("main:exited@0");
  assert_state (p, AFUT_FUTURE_DONE);
  assert_idle (loop);
  afut_future_unref (p);
  loop_free (loop);
}

static void
resolve_cb (void *data)
{
  afut_future_resolve ((AfutFuture *) data);
}

static void
group_counts (AfutTask *task)
{
  Parent *self = (Parent *) task;
  AFUT_BEGIN (task);
  self->group = afut_task_group_new (task);
  SPAWN_IN (self->group, .label = "a", .delay = 1);
  SPAWN_IN (self->group, .label = "b", .delay = 3);
  /* any future: a plain one, resolved at 2 */
  self->child = afut_future_new (NULL);
  g_assert_true (afut_task_group_spawn (self->group,
                                        afut_future_ref (self->child))
                 == self->child);
  self->k = afut_loop_call_at (afut_loop_get_running (), 2, resolve_cb,
                               self->child);
  tev ("n:%zu", afut_task_group_get_n_children (self->group));
  AFUT_AWAIT (task, afut_sleep (1.5));
  tev ("n:%zu", afut_task_group_get_n_children (self->group));
  AFUT_AWAIT (task, afut_sleep (1));
  tev ("n:%zu", afut_task_group_get_n_children (self->group));
  AFUT_AWAIT (task, afut_task_group_exit (self->group));
  tev ("n:%zu", afut_task_group_get_n_children (self->group));
  AFUT_END (task);
}

static void
test_group_n_children (void)
{
  AfutLoop *loop = loop_new ();
  AfutFuture *p = parent_new (loop, group_counts);

  run_until (loop, p);
  assert_events ("n:3@0 a:start@0 b:start@0 a:end@1 n:2@1.5 n:1@2.5 "
                 "b:end@3 n:0@3");
  assert_state (((Parent *) p)->child, AFUT_FUTURE_DONE);
  afut_future_unref (p);
  loop_free (loop);
}

static void
group_child_cancelled (AfutTask *task)
{
  Parent *self = (Parent *) task;
  AfutFuture *a;
  AFUT_BEGIN (task);
  self->group = afut_task_group_new (task);
  a = SPAWN_IN (self->group, .label = "a", .delay = 5);
  SPAWN_IN (self->group, .label = "b", .delay = 2);
  self->k = afut_loop_call_at (afut_loop_get_running (), 1, cancel_cb, a);
  AFUT_AWAIT (task, afut_task_group_exit (self->group));
  tev ("main:exited:%u", afut_task_cancelling (task));
  AFUT_END (task);
}

static void
test_group_child_cancelled_alone (void)
{
  AfutLoop *loop = loop_new ();
  AfutFuture *p = parent_new (loop, group_child_cancelled);

  run_until (loop, p);
  /* Python reference:
   *
   *   async def main():
   *       me = asyncio.current_task()
   *       async with asyncio.TaskGroup() as g:
   *           a = g.create_task(worker("a", 5))
   *           g.create_task(worker("b", 2))
   *           at(1, "cancel", a.cancel)
   *       ev(f"main:exited:{me.cancelling()}")
   *   run(main)
   *
   * prints: a:start@0 b:start@0 cancel@1 a:cancelled@1 b:end@2
   *   main:exited:0@2
   */
  /* A child cancelled on its own is no failure: nothing is aborted. */
  assert_events ("a:start@0 b:start@0 cancel@1 a:cancelled@1 b:end@2 "
                 "main:exited:0@2");
  assert_state (p, AFUT_FUTURE_DONE);
  afut_future_unref (p);
  loop_free (loop);
}

/* A gather spawned into the group (afut takes any future; asyncio's
 * create_task takes a coroutine, whose task would end cancelled), whose
 * child is cancelled on its own: the gather fails with that cancellation,
 * which, as a cancelled child, is no failure of the group. */
static void
group_gather_child_cancelled (AfutTask *task)
{
  Parent *self = (Parent *) task;
  AfutFuture *a;
  AFUT_BEGIN (task);
  self->group = afut_task_group_new (task);
  a = WORKER_CORO (.label = "a", .delay = 5);
  afut_task_group_spawn (self->group, afut_gather (afut_future_ref (a), NULL));
  SPAWN_IN (self->group, .label = "b", .delay = 2);
  self->k = afut_loop_call_at (afut_loop_get_running (), 1, cancel_cb, a);
  afut_future_unref (a);
  AFUT_AWAIT (task, afut_task_group_exit (self->group));
  tev ("main:exited:%u", afut_task_cancelling (task));
  AFUT_END (task);
}

static void
test_group_gather_child_cancelled (void)
{
  AfutLoop *loop = loop_new ();
  AfutFuture *p = parent_new (loop, group_gather_child_cancelled);

  run_until (loop, p);
  assert_events ("a:start@0 b:start@0 cancel@1 a:cancelled@1 b:end@2 "
                 "main:exited:0@2");
  assert_state (p, AFUT_FUTURE_DONE);
  afut_future_unref (p);
  loop_free (loop);
}

/* ---- failures ---- */

static void
group_catch_and_continue (AfutTask *task)
{
  Parent *self = (Parent *) task;
  char *subs;
  AFUT_BEGIN (task);
  self->group = afut_task_group_new (task);
  SPAWN_IN (self->group, .label = "a", .delay = 1, .fail = "boom");
  SPAWN_IN (self->group, .label = "b", .delay = 5, .cleanup = 1);
  AFUT_AWAIT_TRY (task, afut_sleep (10));
  tev ("body:%s:%u", error_name (afut_task_caught (task)),
       afut_task_cancelling (task));
  /* aborting: no more children */
  if (spawn_refused (self->group, "shutting down"))
    tev ("body:refused");
  AFUT_AWAIT_TRY (task, afut_task_group_exit (self->group));
  subs = sub_errors (afut_task_awaited (task));
  tev ("main:%s:%s:%u", error_name (afut_task_caught (task)), subs,
       afut_task_cancelling (task));
  g_free (subs);
  assert_group_error (afut_task_caught (task), MESSAGES ("boom"));
  AFUT_AWAIT (task, afut_sleep (1));
  tev ("main:after");
  AFUT_RETURN_INT (task, 8);
  AFUT_END (task);
}

static void
test_group_first_failure_cancels (void)
{
  AfutLoop *loop = loop_new ();
  AfutFuture *p = parent_new (loop, group_catch_and_continue);

  run_until (loop, p);
  /* Python reference:
   *
   *   async def main():
   *       me = asyncio.current_task()
   *       try:
   *           async with asyncio.TaskGroup() as g:
   *               g.create_task(worker("a", 1, fail="boom"))
   *               g.create_task(worker("b", 5, cleanup=1))
   *               try:
   *                   await asyncio.sleep(10)
   *               except asyncio.CancelledError:
   *                   ev(f"body:cancelled:{me.cancelling()}")
   *               coro = worker("x", 1)
   *               try:
   *                   g.create_task(coro)
   *               except RuntimeError:
   *                   ev("body:refused")
   *                   coro.close()
   *       except* ValueError as eg:
   *           ev("main:group:" + ",".join(str(e) for e in eg.exceptions)
   *              + f":{me.cancelling()}")
   *       await asyncio.sleep(1)
   *       ev("main:after")
   *   run(main)
   *
   * prints: a:start@0 b:start@0 a:fail@1 b:cancelled@1 body:cancelled:1@1
   *   body:refused@1 b:cleaned@2 main:group:boom:0@2 main:after@3
   */
  /* The failure cancels the sibling and the parent's pending await; the
   * exit waits for the sibling's cleanup, then fails with the group; the
   * parent's cancel request is taken back, so it goes on. */
  assert_events ("a:start@0 b:start@0 a:fail@1 b:cancelled@1 "
                 "body:cancelled:1@1 body:refused@1 b:cleaned@2 "
                 "main:group:boom:0@2 main:after@3");
  assert_int (p, 8);
  assert_idle (loop);
  afut_future_unref (p);
  loop_free (loop);
}

static void
group_several_fail (AfutTask *task)
{
  Parent *self = (Parent *) task;
  char *subs;
  AFUT_BEGIN (task);
  self->group = afut_task_group_new (task);
  SPAWN_IN (self->group, .label = "a", .delay = 1, .fail = "ea");
  SPAWN_IN (self->group, .label = "b", .delay = 1, .fail = "eb");
  SPAWN_IN (self->group, .label = "c", .delay = 1, .fail = "ec");
  SPAWN_IN (self->group, .label = "d", .delay = 5);
  AFUT_AWAIT_TRY (task, afut_task_group_exit (self->group));
  subs = sub_errors (afut_task_awaited (task));
  tev ("main:%s:%s:%u", error_name (afut_task_caught (task)), subs,
       afut_task_cancelling (task));
  g_free (subs);
  assert_group_error (afut_task_caught (task), MESSAGES ("ea", "eb", "ec"));
  AFUT_END (task);
}

static void
test_group_several_fail_together (void)
{
  AfutLoop *loop = loop_new ();
  AfutFuture *p = parent_new (loop, group_several_fail);

  run_until (loop, p);
  /* Python reference:
   *
   *   async def main():
   *       me = asyncio.current_task()
   *       try:
   *           async with asyncio.TaskGroup() as g:
   *               for n in "abc":
   *                   g.create_task(worker(n, 1, fail="e" + n))
   *               g.create_task(worker("d", 5))
   *       except* ValueError as eg:
   *           ev("main:group:" + ",".join(str(e) for e in eg.exceptions)
   *              + f":{me.cancelling()}")
   *   run(main)
   *
   * prints: a:start@0 b:start@0 c:start@0 d:start@0 a:fail@1 b:fail@1
   *   c:fail@1 d:cancelled@1 main:group:ea,eb,ec:1@1
   *
   * afut prints: a:start@0 b:start@0 c:start@0 d:start@0 a:fail@1
   *   b:fail@1 c:fail@1 d:cancelled@1 main:group:ea,eb,ec:0@1
   */
  /* Three children fail in the same iteration: the group holds all
   * three, in the order they failed.  The parent's cancel request made
   * by the group is taken back: cancelling() is 0 again.  (CPython 3.11
   * says 1: its __aexit__ calls uncancel() before waiting for the
   * children, so a request made while it waits stays counted: the bug
   * CPython gh-116720 fixed in 3.13.  afut's timeouts rely on the
   * balance.) */
  assert_events ("a:start@0 b:start@0 c:start@0 d:start@0 a:fail@1 b:fail@1 "
                 "c:fail@1 d:cancelled@1 main:group:ea,eb,ec:0@1");
  assert_state (p, AFUT_FUTURE_DONE);
  afut_future_unref (p);
  loop_free (loop);
}

/* ---- the parent cancelled from outside ---- */

static void
group_body_awaits (AfutTask *task)
{
  Parent *self = (Parent *) task;
  AFUT_BEGIN (task);
  self->group = afut_task_group_new (task);
  SPAWN_IN (self->group, .label = "a", .delay = 5, .cleanup = 1);
  SPAWN_IN (self->group, .label = "b", .delay = 5);
  AFUT_AWAIT (task, afut_sleep (10));
  tev ("body:not-reached");
  AFUT_AWAIT (task, afut_task_group_exit (self->group));
  AFUT_END (task);
}

static void
test_group_parent_cancelled_in_body (void)
{
  AfutLoop *loop = loop_new ();
  AfutFuture *p = parent_new (loop, group_body_awaits);
  AfutFuture *k = afut_loop_call_at (loop, 1, cancel_cb, p);

  run_until (loop, p);
  tev ("main:%s:%u", error_name (afut_future_get_error (p)),
       afut_task_cancelling (AFUT_TASK (p)));
  /* Python reference:
   *
   *   async def parent():
   *       async with asyncio.TaskGroup() as g:
   *           g.create_task(worker("a", 5, cleanup=1))
   *           g.create_task(worker("b", 5))
   *           await asyncio.sleep(10)
   *           ev("body:not-reached")
   *   async def main():
   *       p = asyncio.create_task(parent())
   *       at(1, "cancel", p.cancel)
   *       try:
   *           await p
   *       except asyncio.CancelledError:
   *           ev(f"main:cancelled:{p.cancelling()}")
   *   run(main)
   *
   * prints: a:start@0 b:start@0 cancel@1 a:cancelled@1 b:cancelled@1
   *   a:cleaned@2 main:cancelled:1@2
   */
  /* The children are cancelled and awaited; the parent ends cancelled,
   * not with a group error, after them, with only the outside request
   * counted. */
  assert_events ("a:start@0 b:start@0 cancel@1 a:cancelled@1 b:cancelled@1 "
                 "a:cleaned@2 main:cancelled:1@2");
  assert_cancelled (p);
  assert_idle (loop);
  afut_future_unref (k);
  afut_future_unref (p);
  loop_free (loop);
}

static void
group_exit_catches (AfutTask *task)
{
  Parent *self = (Parent *) task;
  AFUT_BEGIN (task);
  self->group = afut_task_group_new (task);
  SPAWN_IN (self->group, .label = "a", .delay = 5, .cleanup = 1);
  SPAWN_IN (self->group, .label = "b", .delay = 5);
  AFUT_AWAIT_TRY (task, afut_task_group_exit (self->group));
  tev ("parent:%s:%u", error_name (afut_task_caught (task)),
       afut_task_cancelling (task));
  AFUT_RERAISE (task);
  AFUT_END (task);
}

static void
test_group_parent_cancelled_in_exit (void)
{
  AfutLoop *loop = loop_new ();
  AfutFuture *p = parent_new (loop, group_exit_catches);
  AfutFuture *k = afut_loop_call_at (loop, 1, cancel_cb, p);

  run_until (loop, p);
  tev ("main:%s:%u", error_name (afut_future_get_error (p)),
       afut_task_cancelling (AFUT_TASK (p)));
  /* Python reference:
   *
   *   async def parent():
   *       me = asyncio.current_task()
   *       try:
   *           async with asyncio.TaskGroup() as g:
   *               g.create_task(worker("a", 5, cleanup=1))
   *               g.create_task(worker("b", 5))
   *       except asyncio.CancelledError:
   *           ev(f"parent:cancelled:{me.cancelling()}")
   *           raise
   *   async def main():
   *       p = asyncio.create_task(parent())
   *       at(1, "cancel", p.cancel)
   *       try:
   *           await p
   *       except asyncio.CancelledError:
   *           ev(f"main:cancelled:{p.cancelling()}")
   *   run(main)
   *
   * prints: a:start@0 b:start@0 cancel@1 a:cancelled@1 b:cancelled@1
   *   a:cleaned@2 parent:cancelled:1@2 main:cancelled:1@2
   */
  assert_events ("a:start@0 b:start@0 cancel@1 a:cancelled@1 b:cancelled@1 "
                 "a:cleaned@2 parent:cancelled:1@2 main:cancelled:1@2");
  assert_cancelled (p);
  afut_future_unref (k);
  afut_future_unref (p);
  loop_free (loop);
}

/* ---- the body ends inside the block ---- */

static void
group_body_raises (AfutTask *task)
{
  Parent *self = (Parent *) task;
  AFUT_BEGIN (task);
  self->group = afut_task_group_new (task);
  SPAWN_IN (self->group, .label = "a", .delay = 5, .cleanup = 1);
  AFUT_AWAIT (task, WORKER (.label = "f", .delay = 1, .fail = "body-error"));
  tev ("body:not-reached");
  AFUT_AWAIT (task, afut_task_group_exit (self->group));
  AFUT_END (task);
}

static void
log_parent_done (AfutFuture *p, void *data)
{
  (void) data;
  tev ("parent:%s",
       afut_future_state_to_string (afut_future_get_state (p)));
}

static void
test_group_body_raises (void)
{
  AfutLoop *loop = loop_new ();
  AfutFuture *p = parent_new (loop, group_body_raises);

  afut_future_add_done_callback (p, log_parent_done, NULL);
  run_until (loop, p);
  drain (loop);
  /* Python reference:
   *
   *   async def parent():
   *       async with asyncio.TaskGroup() as g:
   *           g.create_task(worker("a", 5, cleanup=1))
   *           await asyncio.create_task(worker("f", 1, fail="body-error"))
   *           ev("body:not-reached")
   *   async def main():
   *       p = asyncio.create_task(parent())
   *       p.add_done_callback(log_done("parent"))
   *       try:
   *           await p
   *       except* ValueError as eg:
   *           ev("main:group")
   *   run(main)
   *
   * prints: a:start@0 f:start@0 f:fail@1 a:cancelled@1 a:cleaned@2
   *   parent:failed@2 main:group@2
   */
  /* The parent completes only after its children, with a group holding
   * the body's error. */
  tev ("main:%s", error_name (afut_future_get_error (p)));
  assert_events ("a:start@0 f:start@0 f:fail@1 a:cancelled@1 a:cleaned@2 "
                 "parent:failed@2 main:group@2");
  assert_group_error (afut_future_get_error (p), MESSAGES ("body-error"));
  /* eg.exceptions: the task that failed with the group has them. */
  {
    char *subs = sub_errors (p);
    g_assert_cmpstr (subs, ==, "body-error");
    g_free (subs);
  }
  assert_idle (loop);
  afut_future_unref (p);
  loop_free (loop);
}

/* ---- the block raises, and the task handles the group ---- */

static void
group_exit_with_error (AfutTask *task)
{
  Parent *self = (Parent *) task;
  AFUT_BEGIN (task);
  self->group = afut_task_group_new (task);
  SPAWN_IN (self->group, .label = "a", .delay = 5);
  AFUT_AWAIT_TRY (task, afut_sleep (1));
  /* raise KeyError ("body"): __aexit__ gets it. */
  AFUT_AWAIT_TRY (task, afut_task_group_exit_with_error (
                          self->group, afut_error_new_literal (
                                         TEST_ERROR, 1, "body")));
  {
    char *subs = sub_errors (afut_task_awaited (task));
    tev ("parent:caught:%s:%s", error_name (afut_task_caught (task)), subs);
    g_free (subs);
  }
  afut_task_clear_caught (task); /* except* KeyError: handled */
  tev ("parent:goes-on");
  AFUT_RETURN_INT (task, 7);
  AFUT_END (task);
}

static void
test_group_exit_with_error (void)
{
  AfutLoop *loop = loop_new ();
  AfutFuture *p = parent_new (loop, group_exit_with_error);

  run_until (loop, p);
  log_outcome ("main", p);
  /* Python reference:
   *
   *   async def parent():
   *       try:
   *           async with asyncio.TaskGroup() as g:
   *               g.create_task(worker("a", 5))
   *               await asyncio.sleep(1)
   *               raise KeyError("body")
   *       except* KeyError as eg:
   *           ev(f"parent:caught:group:"
   *              + ",".join(e.args[0] for e in eg.exceptions))
   *       ev("parent:goes-on")
   *       return 7
   *   async def main():
   *       await waiter("main", asyncio.create_task(parent()))
   *   run(main)
   *
   * prints: a:start@0 a:cancelled@1 parent:caught:group:body@1
   *   parent:goes-on@1 main:got:7@1
   */
  assert_events ("a:start@0 a:cancelled@1 parent:caught:group:body@1 "
                 "parent:goes-on@1 main:got:7@1");
  assert_int (p, 7);
  assert_idle (loop);
  afut_future_unref (p);
  loop_free (loop);
}

static void
group_exit_with_error_after_child (AfutTask *task)
{
  Parent *self = (Parent *) task;
  AFUT_BEGIN (task);
  self->group = afut_task_group_new (task);
  SPAWN_IN (self->group, .label = "f", .delay = 1, .fail = "child-1");
  SPAWN_IN (self->group, .label = "a", .delay = 5);
  AFUT_AWAIT_TRY (task, afut_sleep (2));
  tev ("parent:body:%s", error_name (afut_task_caught (task)));
  /* except CancelledError: raise KeyError ("body") */
  AFUT_AWAIT_TRY (task, afut_task_group_exit_with_error (
                          self->group, afut_error_new_literal (
                                         TEST_ERROR, 1, "body")));
  {
    char *subs = sub_errors (afut_task_awaited (task));
    tev ("parent:caught:%s:%s", error_name (afut_task_caught (task)), subs);
    g_free (subs);
  }
  AFUT_RERAISE (task);
  AFUT_END (task);
}

/* The children's errors come first, the body's last; the re-raised
 * group keeps them (eg.exceptions of the task's exception). */
static void
test_group_exit_with_error_after_child (void)
{
  AfutLoop *loop = loop_new ();
  AfutFuture *p = parent_new (loop, group_exit_with_error_after_child);
  char *subs;

  run_until (loop, p);
  log_outcome ("main", p);
  /* Python reference:
   *
   *   async def parent():
   *       try:
   *           async with asyncio.TaskGroup() as g:
   *               g.create_task(worker("f", 1, fail="child-1"))
   *               g.create_task(worker("a", 5))
   *               try:
   *                   await asyncio.sleep(2)
   *               except asyncio.CancelledError:
   *                   ev("parent:body:cancelled")
   *                   raise KeyError("body")
   *       except* (KeyError, ValueError) as eg:
   *           ev(f"parent:caught:group:"
   *              + ",".join(e.args[0] for e in eg.exceptions))
   *           raise
   *   async def main():
   *       p = asyncio.create_task(parent())
   *       try:
   *           await p
   *       except ExceptionGroup:
   *           ev("main:group")
   *   run(main)
   *
   * prints: f:start@0 a:start@0 f:fail@1 a:cancelled@1
   *   parent:body:cancelled@1 parent:caught:group:child-1,body@1
   *   main:group@1
   */
  assert_events ("f:start@0 a:start@0 f:fail@1 a:cancelled@1 "
                 "parent:body:cancelled@1 parent:caught:group:child-1,body@1 "
                 "main:group@1");
  subs = sub_errors (p);
  g_assert_cmpstr (subs, ==, "child-1,body");
  g_free (subs);
  assert_idle (loop);
  afut_future_unref (p);
  loop_free (loop);
}

static void
group_exit_with_cancel (AfutTask *task)
{
  Parent *self = (Parent *) task;
  AFUT_BEGIN (task);
  self->group = afut_task_group_new (task);
  SPAWN_IN (self->group, .label = "f", .delay = 1, .fail = "child-1");
  AFUT_AWAIT_TRY (task, afut_sleep (2));
  /* except CancelledError: raise -- the group's own cancellation: the
   * group's error replaces it, the cancel request taken back. */
  AFUT_AWAIT_TRY (task, afut_task_group_exit_with_error (
                          self->group,
                          afut_error_copy (afut_task_caught (task))));
  tev ("parent:caught:%s:%u", error_name (afut_task_caught (task)),
       afut_task_cancelling (task));
  AFUT_END (task);
}

static void
test_group_exit_with_cancel (void)
{
  AfutLoop *loop = loop_new ();
  AfutFuture *p = parent_new (loop, group_exit_with_cancel);

  run_until (loop, p);
  log_outcome ("main", p);
  /* Python reference:
   *
   *   async def parent():
   *       me = asyncio.current_task()
   *       try:
   *           async with asyncio.TaskGroup() as g:
   *               g.create_task(worker("f", 1, fail="child-1"))
   *               try:
   *                   await asyncio.sleep(2)
   *               except asyncio.CancelledError:
   *                   raise
   *       except* ValueError:
   *           ev(f"parent:caught:group:{me.cancelling()}")
   *   async def main():
   *       await waiter("main", asyncio.create_task(parent()))
   *   run(main)
   *
   * prints: f:start@0 f:fail@1 parent:caught:group:0@1 main:ok@1
   */
  assert_events ("f:start@0 f:fail@1 parent:caught:group:0@1 main:ok@1");
  assert_idle (loop);
  afut_future_unref (p);
  loop_free (loop);
}

/* ---- sub-errors reach whoever fails with the group error ---- */

typedef struct
{
  AfutTask task;
  AfutFuture *inner; /* awaited */
  bool catch_then_reraise;
} Relay;

/* async def outer(): await body() -- or, caught, cleaned up and
 * re-raised. */
static void
relay (AfutTask *task)
{
  Relay *self = (Relay *) task;
  AFUT_BEGIN (task);
  if (!self->catch_then_reraise)
    AFUT_AWAIT (task, self->inner);
  else
    {
      AFUT_AWAIT_TRY (task, self->inner);
      AFUT_AWAIT (task, afut_sleep (1)); /* cleanup awaits something else */
      AFUT_RERAISE (task);
    }
  AFUT_END (task);
}

static void
group_fails_inside (AfutTask *task)
{
  Parent *self = (Parent *) task;
  AFUT_BEGIN (task);
  self->group = afut_task_group_new (task);
  SPAWN_IN (self->group, .label = "f", .delay = 1, .fail = "one");
  SPAWN_IN (self->group, .label = "g", .delay = 1, .fail = "two");
  AFUT_AWAIT (task, afut_sleep (10));
  AFUT_AWAIT (task, afut_task_group_exit (self->group));
  AFUT_END (task);
}

static void
assert_sub_errors (AfutFuture *future, const char *expected)
{
  char *subs = sub_errors (future);
  g_assert_cmpstr (subs, ==, expected);
  g_free (subs);
}

static void
test_group_sub_errors_reach_awaiters (void)
{
  AfutLoop *loop = loop_new ();
  AfutFuture *p = parent_new (loop, group_fails_inside);
  AfutFuture *outer, *caught_outer, *gathered;

  outer = TASK (loop, Relay, relay, "outer",
                .inner = afut_future_ref (p));
  caught_outer = TASK (loop, Relay, relay, "caught-outer",
                       .inner = afut_future_ref (p),
                       .catch_then_reraise = true);
  gathered = afut_gather_v (&outer, 1);
  run_until (loop, gathered);
  run_until (loop, caught_outer);
  /* Python reference (the task's exception is the group; whoever
   * awaited it raises the same object):
   *
   *   async def body():
   *       async with asyncio.TaskGroup() as g:
   *           g.create_task(worker("f", 1, fail="one"))
   *           g.create_task(worker("g", 1, fail="two"))
   *           await asyncio.sleep(10)
   *   async def outer(t): await t
   *   async def main():
   *       t = asyncio.create_task(body())
   *       o = asyncio.create_task(outer(t))
   *       try:
   *           await asyncio.gather(o)
   *       except ExceptionGroup as eg:
   *           ev(",".join(e.args[0] for e in eg.exceptions))
   *           ev(",".join(e.args[0] for e in t.exception().exceptions))
   *   run(main)
   *
   * prints: f:start@0 g:start@0 f:fail@1 g:fail@1 one,two@1 one,two@1
   */
  assert_sub_errors (p, "one,two");
  assert_sub_errors (outer, "one,two");
  assert_sub_errors (gathered, "one,two");
  assert_sub_errors (caught_outer, "one,two");
  /* Each carries the error itself too, listing them. */
  assert_group_error (afut_future_get_error (gathered), MESSAGES ("one", "two"));
  afut_future_unref (gathered);
  afut_future_unref (outer);
  afut_future_unref (caught_outer);
  /* The group's exit future outlives its parent while they need it. */
  afut_future_unref (p);
  loop_free (loop);
}

static void
group_body_returns (AfutTask *task)
{
  Parent *self = (Parent *) task;
  AFUT_BEGIN (task);
  self->group = afut_task_group_new (task);
  SPAWN_IN (self->group, .label = "a", .delay = 1);
  SPAWN_IN (self->group, .label = "b", .delay = 2);
  AFUT_RETURN_INT (task, 7); /* inside the block */
  AFUT_END (task);
}

static void
test_group_body_returns (void)
{
  AfutLoop *loop = loop_new ();
  AfutFuture *p = parent_new (loop, group_body_returns);

  run_until (loop, p);
  log_outcome ("main", p);
  /* Python reference:
   *
   *   async def parent():
   *       async with asyncio.TaskGroup() as g:
   *           g.create_task(worker("a", 1))
   *           g.create_task(worker("b", 2))
   *           return 7
   *   async def main():
   *       await waiter("main", asyncio.create_task(parent()))
   *   run(main)
   *
   * prints: a:start@0 b:start@0 a:end@1 b:end@2 main:got:7@2
   */
  assert_events ("a:start@0 b:start@0 a:end@1 b:end@2 main:got:7@2");
  assert_int (p, 7);
  assert_idle (loop);
  afut_future_unref (p);
  loop_free (loop);
}

static void
group_body_returns_child_fails (AfutTask *task)
{
  Parent *self = (Parent *) task;
  AFUT_BEGIN (task);
  self->group = afut_task_group_new (task);
  SPAWN_IN (self->group, .label = "a", .delay = 2, .fail = "late");
  SPAWN_IN (self->group, .label = "b", .delay = 5, .cleanup = 1);
  AFUT_RETURN_INT (task, 7);
  AFUT_END (task);
}

static void
test_group_body_returns_child_fails (void)
{
  AfutLoop *loop = loop_new ();
  AfutFuture *p = parent_new (loop, group_body_returns_child_fails);

  run_until (loop, p);
  tev ("main:%s", error_name (afut_future_get_error (p)));
  /* Python reference:
   *
   *   async def parent():
   *       async with asyncio.TaskGroup() as g:
   *           g.create_task(worker("a", 2, fail="late"))
   *           g.create_task(worker("b", 5, cleanup=1))
   *           return 7
   *   async def main():
   *       try:
   *           await asyncio.create_task(parent())
   *       except* ValueError as eg:
   *           ev("main:group")
   *   run(main)
   *
   * prints: a:start@0 b:start@0 a:fail@2 b:cancelled@2 b:cleaned@3
   *   main:group@3
   */
  /* The return value is lost to the child's failure. */
  assert_events ("a:start@0 b:start@0 a:fail@2 b:cancelled@2 b:cleaned@3 "
                 "main:group@3");
  assert_group_error (afut_future_get_error (p), MESSAGES ("late"));
  afut_future_unref (p);
  loop_free (loop);
}

/* ---- spawns refused ---- */

typedef struct
{
  AfutTask task;
  const char *label;
  AfutTaskGroup *group;
} LateSpawner;

static void
late_spawner (AfutTask *task)
{
  LateSpawner *self = (LateSpawner *) task;
  AFUT_BEGIN (task);
  AFUT_AWAIT_TRY (task, afut_sleep (5));
  if (afut_task_caught (task) != NULL
      && spawn_refused (self->group, "shutting down"))
    tev ("%s:refused", self->label);
  AFUT_RERAISE (task);
  AFUT_END (task);
}

static void
group_late_spawn (AfutTask *task)
{
  Parent *self = (Parent *) task;
  AFUT_BEGIN (task);
  self->group = afut_task_group_new (task);
  SPAWN_IN (self->group, .label = "a", .delay = 1, .fail = "boom");
  n_created++;
  afut_task_group_spawn (
    self->group,
    afut_coro_new (NULL, late_spawner, sizeof (LateSpawner),
                   &(LateSpawner){ .label = "b", .group = self->group }, "b",
                   count_finalize));
  AFUT_AWAIT_TRY (task, afut_task_group_exit (self->group));
  tev ("main:%s", error_name (afut_task_caught (task)));
  AFUT_END (task);
}

static void
test_group_spawn_while_aborting (void)
{
  AfutLoop *loop = loop_new ();
  AfutFuture *p = parent_new (loop, group_late_spawn);

  run_until (loop, p);
  /* Python reference:
   *
   *   async def late_spawner(g):
   *       try:
   *           await asyncio.sleep(5)
   *       except asyncio.CancelledError:
   *           coro = worker("x", 1)
   *           try:
   *               g.create_task(coro)
   *           except RuntimeError:
   *               ev("b:refused")
   *               coro.close()
   *           raise
   *   async def main():
   *       try:
   *           async with asyncio.TaskGroup() as g:
   *               g.create_task(worker("a", 1, fail="boom"))
   *               g.create_task(late_spawner(g))
   *       except* ValueError:
   *           ev("main:group")
   *   run(main)
   *
   * prints: a:start@0 a:fail@1 b:refused@1 main:group@1
   */
  /* TaskGroup.create_task() raises "is shutting down": afut reports it
   * and cancels the coroutine, which never runs. */
  assert_events ("a:start@0 a:fail@1 b:refused@1 main:group@1");
  assert_state (p, AFUT_FUTURE_DONE);
  afut_future_unref (p);
  loop_free (loop);
}

static void
group_spawn_after_exit (AfutTask *task)
{
  Parent *self = (Parent *) task;
  AFUT_BEGIN (task);
  self->group = afut_task_group_new (task);
  SPAWN_IN (self->group, .label = "a", .delay = 1);
  AFUT_AWAIT (task, afut_task_group_exit (self->group));
  /* The exit future, which this task still holds, keeps the group. */
  if (spawn_refused (self->group, "finished"))
    tev ("main:refused");
  AFUT_END (task);
}

static void
test_group_spawn_after_exit (void)
{
  AfutLoop *loop = loop_new ();
  AfutFuture *p = parent_new (loop, group_spawn_after_exit);

  run_until (loop, p);
  /* Python reference:
   *
   *   async def main():
   *       async with asyncio.TaskGroup() as g:
   *           g.create_task(worker("a", 1))
   *       coro = worker("x", 1)
   *       try:
   *           g.create_task(coro)
   *       except RuntimeError:
   *           ev("main:refused")
   *           coro.close()
   *   run(main)
   *
   * prints: a:start@0 a:end@1 main:refused@1
   */
  assert_events ("a:start@0 a:end@1 main:refused@1");
  assert_state (p, AFUT_FUTURE_DONE);
  assert_idle (loop);
  afut_future_unref (p);
  loop_free (loop);
}

/* ---- nesting ---- */

static void
group_nested (AfutTask *task)
{
  Parent *self = (Parent *) task;
  char *subs;
  AFUT_BEGIN (task);
  self->group = afut_task_group_new (task);
  SPAWN_IN (self->group, .label = "A", .delay = 5, .value = 1);
  self->inner = afut_task_group_new (task);
  SPAWN_IN (self->inner, .label = "B", .delay = 1, .fail = "boom");
  SPAWN_IN (self->inner, .label = "C", .delay = 5, .cleanup = 1);
  AFUT_AWAIT_TRY (task, afut_task_group_exit (self->inner));
  subs = sub_errors (afut_task_awaited (task));
  tev ("main:inner-%s:%s:%u", error_name (afut_task_caught (task)), subs,
       afut_task_cancelling (task));
  g_free (subs);
  tev ("main:body-end:%zu", afut_task_group_get_n_children (self->group));
  AFUT_AWAIT (task, afut_task_group_exit (self->group));
  tev ("main:exited");
  AFUT_END (task);
}

static void
test_group_nested_inner_fails (void)
{
  AfutLoop *loop = loop_new ();
  AfutFuture *p = parent_new (loop, group_nested);

  run_until (loop, p);
  /* Python reference:
   *
   *   async def main():
   *       me = asyncio.current_task()
   *       async with asyncio.TaskGroup() as outer:
   *           outer.create_task(worker("A", 5, value=1))
   *           try:
   *               async with asyncio.TaskGroup() as inner:
   *                   inner.create_task(worker("B", 1, fail="boom"))
   *                   inner.create_task(worker("C", 5, cleanup=1))
   *           except* ValueError as eg:
   *               ev("main:inner-group:"
   *                  + ",".join(str(e) for e in eg.exceptions)
   *                  + f":{me.cancelling()}")
   *           ev(f"main:body-end:{len(outer._tasks)}")
   *       ev("main:exited")
   *   run(main)
   *
   * prints: A:start@0 B:start@0 C:start@0 B:fail@1 C:cancelled@1
   *   C:cleaned@2 main:inner-group:boom:1@2 main:body-end:1@2 A:end@5
   *   main:exited@5
   *
   * afut prints: A:start@0 B:start@0 C:start@0 B:fail@1 C:cancelled@1
   *   C:cleaned@2 main:inner-group:boom:0@2 main:body-end:1@2 A:end@5
   *   main:exited@5
   */
  /* The inner group's failure aborts only the inner group.  The
   * cancelling() count is balanced again (CPython 3.11's 1 is the
   * uncancel-too-early bug of the test above). */
  assert_events ("A:start@0 B:start@0 C:start@0 B:fail@1 C:cancelled@1 "
                 "C:cleaned@2 main:inner-group:boom:0@2 main:body-end:1@2 "
                 "A:end@5 main:exited@5");
  assert_state (p, AFUT_FUTURE_DONE);
  afut_future_unref (p);
  loop_free (loop);
}

static void
group_nested_uncaught (AfutTask *task)
{
  Parent *self = (Parent *) task;
  AFUT_BEGIN (task);
  self->group = afut_task_group_new (task);
  SPAWN_IN (self->group, .label = "A", .delay = 5, .cleanup = 1);
  self->inner = afut_task_group_new (task);
  SPAWN_IN (self->inner, .label = "B", .delay = 1, .fail = "boom");
  AFUT_AWAIT (task, afut_task_group_exit (self->inner));
  tev ("body:not-reached");
  AFUT_AWAIT (task, afut_task_group_exit (self->group));
  AFUT_END (task);
}

static void
test_group_nested_uncaught (void)
{
  AfutLoop *loop = loop_new ();
  AfutFuture *p = parent_new (loop, group_nested_uncaught);

  run_until (loop, p);
  tev ("main:%s", error_name (afut_future_get_error (p)));
  /* Python reference:
   *
   *   async def parent():
   *       async with asyncio.TaskGroup() as outer:
   *           outer.create_task(worker("A", 5, cleanup=1))
   *           async with asyncio.TaskGroup() as inner:
   *               inner.create_task(worker("B", 1, fail="boom"))
   *           ev("body:not-reached")
   *   async def main():
   *       try:
   *           await asyncio.create_task(parent())
   *       except* ValueError:
   *           ev("main:group")
   *   run(main)
   *
   * prints: A:start@0 B:start@0 B:fail@1 A:cancelled@1 A:cleaned@2
   *   main:group@2
   */
  /* The inner group's error ends the outer block: the outer cancels its
   * child, awaits it, and fails with a group holding the inner one. */
  assert_events ("A:start@0 B:start@0 B:fail@1 A:cancelled@1 A:cleaned@2 "
                 "main:group@2");
  assert_group_error (afut_future_get_error (p), MESSAGES ("boom"));
  assert_idle (loop);
  afut_future_unref (p);
  loop_free (loop);
}

/* ---- with timeout scopes ---- */

typedef struct
{
  AfutTask task;
  const char *label;
  AfutTimeout timeout;
  AfutTaskGroup *group;
} ScopedParent;

static void
group_in_timeout (AfutTask *task)
{
  ScopedParent *self = (ScopedParent *) task;
  AFUT_BEGIN (task);
  afut_timeout_enter (task, &self->timeout, 1);
  self->group = afut_task_group_new (task);
  SPAWN_IN (self->group, .label = "a", .delay = 5, .cleanup = 1);
  AFUT_AWAIT (task, afut_task_group_exit (self->group));
  tev ("body:not-reached");
  afut_timeout_exit (&self->timeout);
  AFUT_END (task);
}

static void
test_group_inside_timeout (void)
{
  AfutLoop *loop = loop_new ();
  AfutFuture *p = TASK (loop, ScopedParent, group_in_timeout, "parent",
                        .label = "parent");

  run_until (loop, p);
  log_outcome ("main", p);
  /* Python reference:
   *
   *   async def body():
   *       async with asyncio.timeout(1):
   *           async with asyncio.TaskGroup() as g:
   *               g.create_task(worker("a", 5, cleanup=1))
   *           ev("body:not-reached")
   *   async def main():
   *       await waiter("main", asyncio.create_task(body()))
   *   run(main)
   *
   * prints: a:start@0 a:cancelled@1 a:cleaned@2 main:timeout@2
   */
  /* The deadline cancels the parent while it waits for the group: the
   * group cancels its child, awaits it and passes the cancellation on,
   * which the scope turns into a timeout. */
  assert_events ("a:start@0 a:cancelled@1 a:cleaned@2 main:timeout@2");
  assert_timeout (p);
  g_assert_cmpuint (afut_task_cancelling (AFUT_TASK (p)), ==, 0);
  assert_idle (loop);
  afut_future_unref (p);
  loop_free (loop);
}

static void
timeout_in_group (AfutTask *task)
{
  ScopedParent *self = (ScopedParent *) task;
  AFUT_BEGIN (task);
  self->group = afut_task_group_new (task);
  SPAWN_IN (self->group, .label = "a", .delay = 1, .fail = "boom");
  afut_timeout_enter (task, &self->timeout, 5);
  AFUT_AWAIT_TRY (task, afut_sleep (10));
  afut_timeout_exit (&self->timeout);
  tev ("body:%s:%d", error_name (afut_task_caught (task)),
       afut_timeout_expired (&self->timeout));
  AFUT_AWAIT (task, afut_task_group_exit (self->group));
  tev ("body:not-reached");
  AFUT_END (task);
}

static void
test_group_failure_inside_timeout (void)
{
  AfutLoop *loop = loop_new ();
  AfutFuture *p = TASK (loop, ScopedParent, timeout_in_group, "parent",
                        .label = "parent");

  run_until (loop, p);
  tev ("main:%s:%u", error_name (afut_future_get_error (p)),
       afut_task_cancelling (AFUT_TASK (p)));
  /* Python reference:
   *
   *   async def body():
   *       async with asyncio.TaskGroup() as g:
   *           g.create_task(worker("a", 1, fail="boom"))
   *           try:
   *               async with asyncio.timeout(5) as cm:
   *                   await asyncio.sleep(10)
   *           except asyncio.CancelledError:
   *               ev(f"body:cancelled:{int(cm.expired())}")
   *   async def main():
   *       t = asyncio.create_task(body())
   *       try:
   *           await t
   *       except* ValueError:
   *           ev(f"main:group:{t.cancelling()}")
   *   run(main)
   *
   * prints: a:start@0 a:fail@1 body:cancelled:0@1 main:group:0@1
   */
  /* The group's cancellation goes through the scope that did not
   * expire as a cancellation, not a timeout; the deadline goes with the
   * scope. */
  assert_events ("a:start@0 a:fail@1 body:cancelled:0@1 main:group:0@1");
  assert_group_error (afut_future_get_error (p), MESSAGES ("boom"));
  assert_idle (loop);
  afut_future_unref (p);
  loop_free (loop);
}

static void
test_group_bad_args (void)
{
  AfutLoop *loop = loop_new ();

  /* Outside a running task. */
  expect_log_begin (AFUT_LOG_CRITICAL, "afut_task_group_new");
  g_assert_null (afut_task_group_new (NULL));
  g_assert_cmpuint (expect_log_end (), ==, 1);
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

  g_test_add_func ("/task-group/exit-waits-all", test_group_exit_waits_all);
  g_test_add_func ("/task-group/child-spawns-while-exiting",
                   test_group_child_spawns_while_exiting);
  g_test_add_func ("/task-group/no-children", test_group_no_children);
  g_test_add_func ("/task-group/n-children", test_group_n_children);
  g_test_add_func ("/task-group/child-cancelled-alone",
                   test_group_child_cancelled_alone);
  g_test_add_func ("/task-group/gather-child-cancelled",
                   test_group_gather_child_cancelled);
  g_test_add_func ("/task-group/first-failure-cancels",
                   test_group_first_failure_cancels);
  g_test_add_func ("/task-group/several-fail-together",
                   test_group_several_fail_together);
  g_test_add_func ("/task-group/parent-cancelled-in-body",
                   test_group_parent_cancelled_in_body);
  g_test_add_func ("/task-group/parent-cancelled-in-exit",
                   test_group_parent_cancelled_in_exit);
  g_test_add_func ("/task-group/body-raises", test_group_body_raises);
  g_test_add_func ("/task-group/body-returns", test_group_body_returns);
  g_test_add_func ("/task-group/exit-with-error/body",
                   test_group_exit_with_error);
  g_test_add_func ("/task-group/exit-with-error/after-child-failure",
                   test_group_exit_with_error_after_child);
  g_test_add_func ("/task-group/exit-with-error/own-cancellation",
                   test_group_exit_with_cancel);
  g_test_add_func ("/task-group/sub-errors/reach-awaiters",
                   test_group_sub_errors_reach_awaiters);
  g_test_add_func ("/task-group/body-returns-child-fails",
                   test_group_body_returns_child_fails);
  g_test_add_func ("/task-group/spawn-while-aborting",
                   test_group_spawn_while_aborting);
  g_test_add_func ("/task-group/spawn-after-exit",
                   test_group_spawn_after_exit);
  g_test_add_func ("/task-group/nested-inner-fails",
                   test_group_nested_inner_fails);
  g_test_add_func ("/task-group/nested-uncaught",
                   test_group_nested_uncaught);
  g_test_add_func ("/task-group/inside-timeout", test_group_inside_timeout);
  g_test_add_func ("/task-group/failure-inside-timeout",
                   test_group_failure_inside_timeout);
  g_test_add_func ("/task-group/bad-args", test_group_bad_args);

  status = g_test_run ();
  afut_set_log_func (NULL, NULL);
  g_string_free (events, TRUE);
  g_string_free (lines, TRUE);
  g_ptr_array_unref (reports);
  return status;
}
