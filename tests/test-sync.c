/* test-sync.c - asyncio's synchronisation primitives:
 * Event, Lock, Semaphore, BoundedSemaphore, Condition, Queue, LifoQueue,
 * PriorityQueue.
 *
 * The event logs are what CPython 3.11 prints for the equivalent program,
 * quoted beside each test.  Those programs share this prelude (virtual
 * seconds of the C test are S real seconds; t() prints the time in
 * virtual seconds; ev() appends to the log printed at the end):
 *
 *   import asyncio
 *   S = 0.1
 *   out = []
 *   def ev(s): out.append(s)
 *   def t(): return f"{round((loop.time() - T0) / S * 2) / 2:g}"
 *   async def sleep(x): await asyncio.sleep(x * S)
 *   def run(main): asyncio.run(main()) (setting T0), then
 *                  print(" ".join(out))
 *
 * Every loop runs on the virtual clock; any afut critical or warning the
 * test did not expect fails it (expect-log.h), and so does an error
 * nobody retrieved.
 */
#define AFUT_IMPLEMENTATION
#include "afut.h"

#include <glib.h>

#include "event-log.h"
#include "expect-log.h"

#include <string.h>

/* ---- harness ---- */

static GPtrArray *reports; /* what the loop's exception handler was told */
static unsigned n_destroyed;  /* items freed by a queue's item_destroy */
static unsigned n_freed;      /* items freed by the task that got them */
static unsigned n_created;    /* items made */

static void
record_report (AfutLoop *loop, const AfutExceptionContext *context,
               void *data)
{
  (void) loop;
  (void) data;
  g_ptr_array_add (reports,
                   g_strdup_printf ("%s|%s", context->message,
                                    context->error != NULL
                                      ? context->error->message
                                      : "-"));
}

static AfutLoop *
loop_new (void)
{
  AfutLoop *loop = afut_loop_new (AFUT_LOOP_VIRTUAL_CLOCK);
  g_assert_nonnull (loop);
  g_string_truncate (events, 0);
  g_ptr_array_set_size (reports, 0);
  n_destroyed = n_freed = n_created = 0;
  afut_loop_set_exception_handler (loop, record_report, NULL);
  return loop;
}

/* Frees the loop; nothing may have been reported as never retrieved. */
static void
loop_free (AfutLoop *loop)
{
  afut_loop_unref (loop);
  g_assert_cmpuint (reports->len, ==, 0);
}

/* The running loop's virtual time, in seconds. */
static double
now (void)
{
  return afut_loop_time (afut_loop_get_running ());
}

static const char *
state_name (AfutFuture *future)
{
  return afut_future_state_to_string (afut_future_get_state (future));
}

static void
assert_state (AfutFuture *future, AfutFutureState state)
{
  g_assert_cmpstr (state_name (future), ==,
                   afut_future_state_to_string (state));
}

static const char *
caught_message (AfutTask *task)
{
  const AfutError *e = afut_task_caught (task);
  return e != NULL ? e->message : "none";
}

/* A queue item: a string of its own, counted. */
static char *
item_new (const char *text)
{
  n_created++;
  return g_strdup (text);
}

static void
item_destroy (void *item)
{
  n_destroyed++;
  g_free (item);
}

/* What a task that got an item does with it. */
static void
item_free (void *item)
{
  n_freed++;
  g_free (item);
}

/* ---- the main task of a scenario ---- */

/* Each scenario's main task: the primitive under test (borrowed), the
 * tasks it spawns (released by main_finalize) and a counter. */
typedef struct
{
  AfutTask task;
  AfutEvent *event;
  AfutLock *lock;
  AfutSemaphore *sem;
  AfutCondition *cond;
  AfutQueue *queue;
  AfutFuture *t[8];
  size_t n;
  int i;
} Main;

static void
main_finalize (AfutTask *task)
{
  Main *self = (Main *) task;
  size_t i;
  for (i = 0; i < G_N_ELEMENTS (self->t); i++)
    afut_future_unref (self->t[i]);
}

/* Cancels @target if it is still pending at virtual time 1000: a
 * scenario stuck for good (a waiter nobody wakes) fails instead of
 * hanging, the virtual clock jumping straight there. */
typedef struct
{
  AfutTask task;
  AfutFuture *target; /* borrowed */
} Watchdog;

static void
watchdog (AfutTask *task)
{
  Watchdog *self = (Watchdog *) task;
  AFUT_BEGIN (task);
  AFUT_AWAIT (task, afut_sleep (1000));
  afut_future_cancel (self->target, "watchdog: still pending at t=1000");
  AFUT_END (task);
}

/* afut_loop_run_until_complete, under a watchdog. */
static void
run_until_complete (AfutLoop *loop, AfutFuture *future)
{
  AfutFuture *w = afut_task_new (loop, watchdog, sizeof (Watchdog),
                                 &(Watchdog){ .target = future }, "watchdog",
                                 NULL);
  g_assert_true (afut_loop_run_until_complete (loop, future));
  afut_future_cancel (w, NULL);
  afut_loop_run_until_complete (loop, w);
  afut_future_unref (w);
}

/* Runs @func as the main task until it completes; it must succeed and
 * log @expected. */
static void
run_main (AfutLoop *loop, AfutTaskFunc func, const Main *init,
          const char *expected)
{
  AfutFuture *m = afut_task_new (loop, func, sizeof (Main), init, "main",
                                 main_finalize);
  run_until_complete (loop, m);
  if (afut_future_get_error (m) != NULL)
    g_error ("main failed: %s (log: %s)", afut_future_get_error (m)->message,
             events->str);
  assert_state (m, AFUT_FUTURE_DONE);
  g_assert_cmpstr (events->str, ==, expected);
  afut_future_unref (m);
}

/* gather(*self->t[from..to), return_exceptions=True) */
static AfutFuture *
gather_re (Main *self, size_t from, size_t to)
{
  return afut_gather_return_exceptions_v (self->t + from, to - from);
}

static AfutFuture *
gather_all (Main *self, size_t from, size_t to)
{
  return afut_gather_v (self->t + from, to - from);
}

/* ---- event ---- */

/* async def waiter(e, name):
 *     ev(f"{name}:wait")
 *     try: await e.wait()
 *     except asyncio.CancelledError as c:
 *         ev(f"{name}:cancelled:{c.args[0] if c.args else ''}"); raise
 *     ev(f"{name}:woke") */
typedef struct
{
  AfutTask task;
  AfutEvent *event;
  const char *name;
} EventWaiter;

static void
event_waiter (AfutTask *task)
{
  EventWaiter *self = (EventWaiter *) task;
  AFUT_BEGIN (task);
  ev ("%s:wait", self->name);
  AFUT_AWAIT_TRY (task, afut_event_wait (self->event));
  if (afut_task_caught (task) != NULL)
    {
      ev ("%s:cancelled:%s", self->name, caught_message (task));
      AFUT_RERAISE (task);
    }
  ev ("%s:woke", self->name);
  AFUT_END (task);
}

static AfutFuture *
event_waiter_new (AfutEvent *event, const char *name)
{
  return afut_task_new (NULL, event_waiter, sizeof (EventWaiter),
                        &(EventWaiter){ .event = event, .name = name }, name,
                        NULL);
}

/* async def main():
 *     e = asyncio.Event()
 *     ts = [asyncio.create_task(waiter(e, n)) for n in "abc"]
 *     await asyncio.sleep(0)
 *     ev("set"); e.set(); e.clear(); ev(f"cleared:{int(e.is_set())}")
 *     d = asyncio.create_task(waiter(e, "d"))
 *     await asyncio.gather(*ts)
 *     ev("abc-done")
 *     await asyncio.sleep(0)
 *     ev("set-again"); e.set()
 *     await d
 *     ev("end") */
static void
event_set_main (AfutTask *task)
{
  Main *self = (Main *) task;
  AFUT_BEGIN (task);
  self->t[0] = event_waiter_new (self->event, "a");
  self->t[1] = event_waiter_new (self->event, "b");
  self->t[2] = event_waiter_new (self->event, "c");
  AFUT_YIELD (task);
  ev ("set");
  afut_event_set (self->event);
  afut_event_clear (self->event);
  ev ("cleared:%d", afut_event_is_set (self->event));
  self->t[3] = event_waiter_new (self->event, "d");
  AFUT_AWAIT (task, gather_all (self, 0, 3));
  ev ("abc-done");
  AFUT_YIELD (task);
  ev ("set-again");
  afut_event_set (self->event);
  AFUT_AWAIT (task, afut_future_ref (self->t[3]));
  ev ("end");
  AFUT_END (task);
}

static void
test_event_set_wakes_all (void)
{
  AfutLoop *loop = loop_new ();
  AfutEvent *event = afut_event_new (loop);

  g_assert_false (afut_event_is_set (event));
  /* Woken waiters return even though the flag was cleared before they
   * ran; a wait begun after the clear blocks until the next set. */
  run_main (loop, event_set_main, &(Main){ .event = event },
            "a:wait b:wait c:wait set cleared:0 a:woke b:woke c:woke d:wait "
            "abc-done set-again d:woke end");
  g_assert_true (afut_event_is_set (event));
  afut_event_unref (event);
  loop_free (loop);
}

/* async def a(e): ev("a:before"); await e.wait(); ev("a:after")
 * async def b(): ev("b")
 * async def main():
 *     e = asyncio.Event(); e.set()
 *     await asyncio.gather(asyncio.create_task(a(e)),
 *                          asyncio.create_task(b())) */
static void
set_event_waiter (AfutTask *task)
{
  EventWaiter *self = (EventWaiter *) task;
  AFUT_BEGIN (task);
  ev ("a:before");
  AFUT_AWAIT (task, afut_event_wait (self->event));
  ev ("a:after");
  AFUT_END (task);
}

static void
log_b (AfutTask *task)
{
  AFUT_BEGIN (task);
  ev ("b");
  AFUT_END (task);
}

static void
event_no_suspend_main (AfutTask *task)
{
  Main *self = (Main *) task;
  AFUT_BEGIN (task);
  self->t[0] = afut_task_new (NULL, set_event_waiter, sizeof (EventWaiter),
                              &(EventWaiter){ .event = self->event }, "a",
                              NULL);
  self->t[1] = afut_task_new (NULL, log_b, sizeof (AfutTask), NULL, "b",
                              NULL);
  AFUT_AWAIT (task, gather_all (self, 0, 2));
  AFUT_END (task);
}

static void
test_event_wait_set_no_suspend (void)
{
  AfutLoop *loop = loop_new ();
  AfutEvent *event = afut_event_new (loop);

  afut_event_set (event);
  afut_event_set (event); /* setting a set event changes nothing */
  /* Had the wait suspended, "b" would come between. */
  run_main (loop, event_no_suspend_main, &(Main){ .event = event },
            "a:before a:after b");
  afut_event_unref (event);
  loop_free (loop);
}

/* async def main():
 *     e = asyncio.Event()
 *     a = create_task(waiter(e, "a")); b = create_task(waiter(e, "b"))
 *     await asyncio.sleep(0)
 *     a.cancel("bye")
 *     await asyncio.sleep(0)
 *     ev(f"waiters:{len(e._waiters)}")
 *     e.set()
 *     await asyncio.gather(a, b, return_exceptions=True)
 *     ev(f"a:{'cancelled' if a.cancelled() else 'done'} "
 *        f"waiters:{len(e._waiters)}") */
static size_t
n_waiters (AfutSyncWaiters *list)
{
  size_t n = 0;
  AfutSyncWaiter *w;
  for (w = list->head; w != NULL; w = w->next)
    n++;
  return n;
}

static void
event_cancel_main (AfutTask *task)
{
  Main *self = (Main *) task;
  AFUT_BEGIN (task);
  self->t[0] = event_waiter_new (self->event, "a");
  self->t[1] = event_waiter_new (self->event, "b");
  AFUT_YIELD (task);
  afut_future_cancel (self->t[0], "bye");
  AFUT_YIELD (task);
  ev ("waiters:%zu", n_waiters (&self->event->waiters));
  afut_event_set (self->event);
  AFUT_AWAIT (task, gather_re (self, 0, 2));
  ev ("a:%s waiters:%zu", state_name (self->t[0]),
      n_waiters (&self->event->waiters));
  AFUT_END (task);
}

static void
test_event_wait_cancelled (void)
{
  AfutLoop *loop = loop_new ();
  AfutEvent *event = afut_event_new (loop);

  run_main (loop, event_cancel_main, &(Main){ .event = event },
            "a:wait b:wait a:cancelled:bye waiters:1 b:woke a:cancelled "
            "waiters:0");
  afut_event_unref (event);
  loop_free (loop);
}

/* ---- lock ---- */

/* async def worker(lock, name, hold):
 *     ev(f"{name}:want")
 *     try: await lock.acquire()
 *     except asyncio.CancelledError: ev(f"{name}:cancelled"); raise
 *     ev(f"{name}:got@{t()}")
 *     try: await sleep(hold)
 *     finally:
 *         ev(f"{name}:release"); lock.release() */
typedef struct
{
  AfutTask task;
  AfutLock *lock;
  const char *name;
  double hold;
} LockWorker;

static void
lock_worker (AfutTask *task)
{
  LockWorker *self = (LockWorker *) task;
  AFUT_BEGIN (task);
  ev ("%s:want", self->name);
  AFUT_AWAIT_TRY (task, afut_lock_acquire (self->lock));
  if (afut_task_caught (task) != NULL)
    {
      ev ("%s:cancelled", self->name);
      AFUT_RERAISE (task);
    }
  ev ("%s:got@%g", self->name, now ());
  AFUT_AWAIT_TRY (task, afut_sleep (self->hold));
  ev ("%s:release", self->name);
  g_assert_true (afut_lock_release (self->lock));
  if (afut_task_caught (task) != NULL)
    AFUT_RERAISE (task);
  AFUT_END (task);
}

static AfutFuture *
lock_worker_new (AfutLock *lock, const char *name, double hold)
{
  return afut_task_new (NULL, lock_worker, sizeof (LockWorker),
                        &(LockWorker){ .lock = lock, .name = name,
                                       .hold = hold },
                        name, NULL);
}

/* async def main():
 *     lock = asyncio.Lock()
 *     ts = [asyncio.create_task(worker(lock, n, 1)) for n in "abcd"]
 *     await asyncio.gather(*ts)
 *     ev(f"locked:{int(lock.locked())}") */
static void
lock_fifo_main (AfutTask *task)
{
  Main *self = (Main *) task;
  AFUT_BEGIN (task);
  self->t[0] = lock_worker_new (self->lock, "a", 1);
  self->t[1] = lock_worker_new (self->lock, "b", 1);
  self->t[2] = lock_worker_new (self->lock, "c", 1);
  self->t[3] = lock_worker_new (self->lock, "d", 1);
  AFUT_AWAIT (task, gather_all (self, 0, 4));
  ev ("locked:%d", afut_lock_is_locked (self->lock));
  AFUT_END (task);
}

static void
test_lock_fifo (void)
{
  AfutLoop *loop = loop_new ();
  AfutLock *lock = afut_lock_new (loop);

  run_main (loop, lock_fifo_main, &(Main){ .lock = lock },
            "a:want a:got@0 b:want c:want d:want a:release b:got@1 "
            "b:release c:got@2 c:release d:got@3 d:release locked:0");
  afut_lock_unref (lock);
  loop_free (loop);
}

/* async def main():
 *     lock = asyncio.Lock()
 *     ts = [asyncio.create_task(worker(lock, n, 1)) for n in "abcd"]
 *     await sleep(0.5)
 *     ts[2].cancel()
 *     await asyncio.gather(*ts, return_exceptions=True)
 *     ev(f"c:{'cancelled' if ts[2].cancelled() else 'done'}@{t()}") */
static void
lock_cancel_waiter_main (AfutTask *task)
{
  Main *self = (Main *) task;
  AFUT_BEGIN (task);
  self->t[0] = lock_worker_new (self->lock, "a", 1);
  self->t[1] = lock_worker_new (self->lock, "b", 1);
  self->t[2] = lock_worker_new (self->lock, "c", 1);
  self->t[3] = lock_worker_new (self->lock, "d", 1);
  AFUT_AWAIT (task, afut_sleep (0.5));
  afut_future_cancel (self->t[2], NULL);
  AFUT_AWAIT (task, gather_re (self, 0, 4));
  ev ("c:%s@%g", state_name (self->t[2]), now ());
  AFUT_END (task);
}

static void
test_lock_cancelled_waiter_skipped (void)
{
  AfutLoop *loop = loop_new ();
  AfutLock *lock = afut_lock_new (loop);

  run_main (loop, lock_cancel_waiter_main, &(Main){ .lock = lock },
            "a:want a:got@0 b:want c:want d:want c:cancelled a:release "
            "b:got@1 b:release d:got@2 d:release c:cancelled@3");
  afut_lock_unref (lock);
  loop_free (loop);
}

/* async def main():
 *     lock = asyncio.Lock()
 *     await lock.acquire()
 *     a = create_task(worker(lock, "a", 1))
 *     b = create_task(worker(lock, "b", 1))
 *     await asyncio.sleep(0)
 *     ev("main:release"); lock.release()
 *     a.cancel()
 *     ev(f"locked:{int(lock.locked())}")
 *     await asyncio.gather(a, b, return_exceptions=True)
 *     ev(f"a:{'cancelled' if a.cancelled() else 'done'}@{t()}") */
static void
lock_woken_cancelled_main (AfutTask *task)
{
  Main *self = (Main *) task;
  AFUT_BEGIN (task);
  AFUT_AWAIT (task, afut_lock_acquire (self->lock));
  self->t[0] = lock_worker_new (self->lock, "a", 1);
  self->t[1] = lock_worker_new (self->lock, "b", 1);
  AFUT_YIELD (task);
  ev ("main:release");
  afut_lock_release (self->lock);
  /* a's waiter is resolved: a is woken, but has not run yet. */
  afut_future_cancel (self->t[0], NULL);
  ev ("locked:%d", afut_lock_is_locked (self->lock));
  AFUT_AWAIT (task, gather_re (self, 0, 2));
  ev ("a:%s@%g", state_name (self->t[0]), now ());
  AFUT_END (task);
}

static void
test_lock_woken_cancelled_passes_on (void)
{
  AfutLoop *loop = loop_new ();
  AfutLock *lock = afut_lock_new (loop);

  run_main (loop, lock_woken_cancelled_main, &(Main){ .lock = lock },
            "a:want b:want main:release locked:0 a:cancelled b:got@0 "
            "b:release a:cancelled@1");
  afut_lock_unref (lock);
  loop_free (loop);
}

/* async def main():
 *     lock = asyncio.Lock()
 *     await lock.acquire()
 *     ev("main:got")
 *     a = asyncio.create_task(worker(lock, "a", 1))
 *     await asyncio.sleep(0)
 *     lock.release()
 *     ev(f"main:released locked:{int(lock.locked())}")
 *     await lock.acquire()
 *     ev(f"main:got-again@{t()}")
 *     lock.release()
 *     await a */
static void
lock_late_main (AfutTask *task)
{
  Main *self = (Main *) task;
  AFUT_BEGIN (task);
  AFUT_AWAIT (task, afut_lock_acquire (self->lock));
  ev ("main:got");
  self->t[0] = lock_worker_new (self->lock, "a", 1);
  AFUT_YIELD (task);
  afut_lock_release (self->lock);
  ev ("main:released locked:%d", afut_lock_is_locked (self->lock));
  /* Unlocked, but a was woken first: main queues behind it. */
  AFUT_AWAIT (task, afut_lock_acquire (self->lock));
  ev ("main:got-again@%g", now ());
  afut_lock_release (self->lock);
  AFUT_AWAIT (task, afut_future_ref (self->t[0]));
  AFUT_END (task);
}

static void
test_lock_late_arrival_queues (void)
{
  AfutLoop *loop = loop_new ();
  AfutLock *lock = afut_lock_new (loop);

  run_main (loop, lock_late_main, &(Main){ .lock = lock },
            "main:got a:want main:released locked:0 a:got@0 a:release "
            "main:got-again@1");
  afut_lock_unref (lock);
  loop_free (loop);
}

/* async def main():
 *     lock = asyncio.Lock()
 *     await lock.acquire()
 *     a = asyncio.create_task(worker(lock, "a", 1))
 *     await asyncio.sleep(0)
 *     a.cancel()
 *     lock.release()
 *     await lock.acquire()
 *     ev(f"main:got-at-once locked:{int(lock.locked())}")
 *     lock.release()
 *     await asyncio.gather(a, return_exceptions=True)
 *     ev(f"a:{'cancelled' if a.cancelled() else 'done'}") */
static void
lock_cancelled_only_main (AfutTask *task)
{
  Main *self = (Main *) task;
  AFUT_BEGIN (task);
  AFUT_AWAIT (task, afut_lock_acquire (self->lock));
  self->t[0] = lock_worker_new (self->lock, "a", 1);
  AFUT_YIELD (task);
  afut_future_cancel (self->t[0], NULL);
  afut_lock_release (self->lock);
  /* The only waiter is cancelled: no need to queue. */
  AFUT_AWAIT (task, afut_lock_acquire (self->lock));
  ev ("main:got-at-once locked:%d", afut_lock_is_locked (self->lock));
  afut_lock_release (self->lock);
  AFUT_AWAIT (task, gather_re (self, 0, 1));
  ev ("a:%s", state_name (self->t[0]));
  AFUT_END (task);
}

static void
test_lock_cancelled_waiters_only (void)
{
  AfutLoop *loop = loop_new ();
  AfutLock *lock = afut_lock_new (loop);

  run_main (loop, lock_cancelled_only_main, &(Main){ .lock = lock },
            "a:want main:got-at-once locked:1 a:cancelled a:cancelled");
  afut_lock_unref (lock);
  loop_free (loop);
}

static void
test_lock_release_unlocked (void)
{
  AfutLoop *loop = loop_new ();
  AfutLock *lock = afut_lock_new (loop);

  /* asyncio: RuntimeError('Lock is not acquired.') */
  expect_log_begin (AFUT_LOG_CRITICAL, "afut_lock_release: the lock is not "
                                       "acquired");
  g_assert_false (afut_lock_release (lock));
  g_assert_cmpuint (expect_log_end (), ==, 1);
  g_assert_false (afut_lock_is_locked (lock));
  afut_lock_unref (lock);
  loop_free (loop);
}

/* ---- semaphore ---- */

/* async def worker(sem, name, hold):
 *     ev(f"{name}:want")
 *     try: await sem.acquire()
 *     except asyncio.CancelledError: ev(f"{name}:cancelled"); raise
 *     ev(f"{name}:got@{t()}:v{sem._value}")
 *     try: await sleep(hold)
 *     finally: ev(f"{name}:release"); sem.release() */
typedef struct
{
  AfutTask task;
  AfutSemaphore *sem;
  const char *name;
  double hold;
} SemWorker;

static void
sem_worker (AfutTask *task)
{
  SemWorker *self = (SemWorker *) task;
  AFUT_BEGIN (task);
  ev ("%s:want", self->name);
  AFUT_AWAIT_TRY (task, afut_semaphore_acquire (self->sem));
  if (afut_task_caught (task) != NULL)
    {
      ev ("%s:cancelled", self->name);
      AFUT_RERAISE (task);
    }
  ev ("%s:got@%g:v%u", self->name, now (),
      afut_semaphore_get_value (self->sem));
  AFUT_AWAIT_TRY (task, afut_sleep (self->hold));
  ev ("%s:release", self->name);
  g_assert_true (afut_semaphore_release (self->sem));
  if (afut_task_caught (task) != NULL)
    AFUT_RERAISE (task);
  AFUT_END (task);
}

static AfutFuture *
sem_worker_new (AfutSemaphore *sem, const char *name, double hold)
{
  return afut_task_new (NULL, sem_worker, sizeof (SemWorker),
                        &(SemWorker){ .sem = sem, .name = name,
                                      .hold = hold },
                        name, NULL);
}

/* async def main():
 *     sem = asyncio.Semaphore(2)
 *     ts = [asyncio.create_task(worker(sem, n, 1)) for n in "abcde"]
 *     await asyncio.gather(*ts)
 *     ev(f"end:v{sem._value}:locked{int(sem.locked())}") */
static void
sem_counts_main (AfutTask *task)
{
  Main *self = (Main *) task;
  AFUT_BEGIN (task);
  self->t[0] = sem_worker_new (self->sem, "a", 1);
  self->t[1] = sem_worker_new (self->sem, "b", 1);
  self->t[2] = sem_worker_new (self->sem, "c", 1);
  self->t[3] = sem_worker_new (self->sem, "d", 1);
  self->t[4] = sem_worker_new (self->sem, "e", 1);
  AFUT_AWAIT (task, gather_all (self, 0, 5));
  ev ("end:v%u:locked%d", afut_semaphore_get_value (self->sem),
      afut_semaphore_is_locked (self->sem));
  AFUT_END (task);
}

static void
test_semaphore_counts (void)
{
  AfutLoop *loop = loop_new ();
  AfutSemaphore *sem = afut_semaphore_new (loop, 2);

  run_main (loop, sem_counts_main, &(Main){ .sem = sem },
            "a:want a:got@0:v1 b:want b:got@0:v0 c:want d:want e:want "
            "a:release b:release c:got@1:v0 d:got@1:v0 c:release d:release "
            "e:got@2:v1 e:release end:v2:locked0");
  afut_semaphore_unref (sem);
  loop_free (loop);
}

/* async def main():
 *     sem = asyncio.Semaphore(0)
 *     ts = [asyncio.create_task(worker(sem, n, 1)) for n in "abc"]
 *     await asyncio.sleep(0)
 *     sem.release()
 *     ev(f"released:v{sem._value}:locked{int(sem.locked())}")
 *     ts[0].cancel()
 *     await asyncio.sleep(0)
 *     ev(f"after-cancel:v{sem._value}")
 *     await asyncio.gather(*ts, return_exceptions=True)
 *     ev(f"end:v{sem._value}@{t()}") */
static void
sem_woken_cancelled_main (AfutTask *task)
{
  Main *self = (Main *) task;
  AFUT_BEGIN (task);
  self->t[0] = sem_worker_new (self->sem, "a", 1);
  self->t[1] = sem_worker_new (self->sem, "b", 1);
  self->t[2] = sem_worker_new (self->sem, "c", 1);
  AFUT_YIELD (task);
  afut_semaphore_release (self->sem);
  ev ("released:v%u:locked%d", afut_semaphore_get_value (self->sem),
      afut_semaphore_is_locked (self->sem));
  afut_future_cancel (self->t[0], NULL);
  AFUT_YIELD (task);
  ev ("after-cancel:v%u", afut_semaphore_get_value (self->sem));
  AFUT_AWAIT (task, gather_re (self, 0, 3));
  ev ("end:v%u@%g", afut_semaphore_get_value (self->sem), now ());
  AFUT_END (task);
}

static void
test_semaphore_woken_cancelled_passes_on (void)
{
  AfutLoop *loop = loop_new ();
  AfutSemaphore *sem = afut_semaphore_new (loop, 0);

  run_main (loop, sem_woken_cancelled_main, &(Main){ .sem = sem },
            "a:want b:want c:want released:v0:locked1 a:cancelled "
            "after-cancel:v0 b:got@0:v0 b:release c:got@1:v0 c:release "
            "end:v1@2");
  afut_semaphore_unref (sem);
  loop_free (loop);
}

/* async def main():
 *     sem = asyncio.Semaphore(1)
 *     await sem.acquire()
 *     a = asyncio.create_task(worker(sem, "a", 1))
 *     await asyncio.sleep(0)
 *     sem.release()
 *     ev(f"main:released:v{sem._value}:locked{int(sem.locked())}")
 *     await sem.acquire()
 *     ev(f"main:got-again@{t()}")
 *     sem.release()
 *     await a */
static void
sem_late_main (AfutTask *task)
{
  Main *self = (Main *) task;
  AFUT_BEGIN (task);
  AFUT_AWAIT (task, afut_semaphore_acquire (self->sem));
  self->t[0] = sem_worker_new (self->sem, "a", 1);
  AFUT_YIELD (task);
  afut_semaphore_release (self->sem);
  ev ("main:released:v%u:locked%d", afut_semaphore_get_value (self->sem),
      afut_semaphore_is_locked (self->sem));
  AFUT_AWAIT (task, afut_semaphore_acquire (self->sem));
  ev ("main:got-again@%g", now ());
  afut_semaphore_release (self->sem);
  AFUT_AWAIT (task, afut_future_ref (self->t[0]));
  AFUT_END (task);
}

static void
test_semaphore_late_arrival_queues (void)
{
  AfutLoop *loop = loop_new ();
  AfutSemaphore *sem = afut_semaphore_new (loop, 1);

  run_main (loop, sem_late_main, &(Main){ .sem = sem },
            "a:want main:released:v0:locked1 a:got@0:v0 a:release "
            "main:got-again@1");
  afut_semaphore_unref (sem);
  loop_free (loop);
}

/* async def main():
 *     sem = asyncio.Semaphore(0)
 *     a = asyncio.create_task(worker(sem, "a", 1))
 *     await asyncio.sleep(0)
 *     a.cancel()
 *     sem.release()
 *     ev(f"v{sem._value}:locked{int(sem.locked())}")
 *     await asyncio.gather(a, return_exceptions=True)
 *     ev(f"end:v{sem._value}") */
static void
sem_cancelled_only_main (AfutTask *task)
{
  Main *self = (Main *) task;
  AFUT_BEGIN (task);
  self->t[0] = sem_worker_new (self->sem, "a", 1);
  AFUT_YIELD (task);
  afut_future_cancel (self->t[0], NULL);
  afut_semaphore_release (self->sem);
  ev ("v%u:locked%d", afut_semaphore_get_value (self->sem),
      afut_semaphore_is_locked (self->sem));
  AFUT_AWAIT (task, gather_re (self, 0, 1));
  ev ("end:v%u", afut_semaphore_get_value (self->sem));
  AFUT_END (task);
}

static void
test_semaphore_cancelled_waiters_only (void)
{
  AfutLoop *loop = loop_new ();
  AfutSemaphore *sem = afut_semaphore_new (loop, 0);

  run_main (loop, sem_cancelled_only_main, &(Main){ .sem = sem },
            "a:want v1:locked0 a:cancelled end:v1");
  afut_semaphore_unref (sem);
  loop_free (loop);
}

/* async def main():
 *     sem = asyncio.Semaphore(0)
 *     a = asyncio.create_task(worker(sem, "a", 1))
 *     await asyncio.sleep(0)
 *     sem.release()
 *     sem.release()
 *     ev(f"released-twice:v{sem._value}:locked{int(sem.locked())}")
 *     await sem.acquire()
 *     ev(f"main:got@{t()}:v{sem._value}")
 *     sem.release()
 *     await a
 *     ev(f"end:v{sem._value}") */
static void
sem_two_releases_main (AfutTask *task)
{
  Main *self = (Main *) task;
  AFUT_BEGIN (task);
  self->t[0] = sem_worker_new (self->sem, "a", 1);
  AFUT_YIELD (task);
  afut_semaphore_release (self->sem);
  afut_semaphore_release (self->sem);
  ev ("released-twice:v%u:locked%d", afut_semaphore_get_value (self->sem),
      afut_semaphore_is_locked (self->sem));
  /* A unit is free, but a (woken, not run yet) counts as waiting: main
   * queues, and a, once it has its unit, wakes main. */
  AFUT_AWAIT (task, afut_semaphore_acquire (self->sem));
  ev ("main:got@%g:v%u", now (), afut_semaphore_get_value (self->sem));
  afut_semaphore_release (self->sem);
  AFUT_AWAIT (task, afut_future_ref (self->t[0]));
  ev ("end:v%u", afut_semaphore_get_value (self->sem));
  AFUT_END (task);
}

static void
test_semaphore_woken_waiter_counts (void)
{
  AfutLoop *loop = loop_new ();
  AfutSemaphore *sem = afut_semaphore_new (loop, 0);

  run_main (loop, sem_two_releases_main, &(Main){ .sem = sem },
            "a:want released-twice:v1:locked1 a:got@0:v0 main:got@0:v0 "
            "a:release end:v2");
  afut_semaphore_unref (sem);
  loop_free (loop);
}

/* BoundedSemaphore(1): release() -> ValueError; acquire, release: fine;
 * release again -> ValueError. */
static void
bounded_main (AfutTask *task)
{
  Main *self = (Main *) task;
  AFUT_BEGIN (task);
  AFUT_AWAIT (task, afut_semaphore_acquire (self->sem));
  ev ("got:v%u", afut_semaphore_get_value (self->sem));
  ev ("release:%d", afut_semaphore_release (self->sem));
  AFUT_END (task);
}

static void
test_semaphore_bounded_over_release (void)
{
  AfutLoop *loop = loop_new ();
  AfutSemaphore *bounded = afut_bounded_semaphore_new (loop, 1);
  AfutSemaphore *plain = afut_semaphore_new (loop, 1);

  expect_log_begin (AFUT_LOG_CRITICAL, "afut_semaphore_release: bounded "
                                       "semaphore released too many times");
  g_assert_false (afut_semaphore_release (bounded));
  g_assert_cmpuint (expect_log_end (), ==, 1);
  g_assert_cmpuint (afut_semaphore_get_value (bounded), ==, 1);

  run_main (loop, bounded_main, &(Main){ .sem = bounded },
            "got:v0 release:1");
  g_assert_cmpuint (afut_semaphore_get_value (bounded), ==, 1);
  expect_log_begin (AFUT_LOG_CRITICAL, "released too many times");
  g_assert_false (afut_semaphore_release (bounded));
  g_assert_cmpuint (expect_log_end (), ==, 1);
  g_assert_cmpuint (afut_semaphore_get_value (bounded), ==, 1);

  /* A plain semaphore has no bound. */
  g_assert_true (afut_semaphore_release (plain));
  g_assert_true (afut_semaphore_release (plain));
  g_assert_cmpuint (afut_semaphore_get_value (plain), ==, 3);
  g_assert_false (afut_semaphore_is_locked (plain));
  afut_semaphore_unref (bounded);
  afut_semaphore_unref (plain);
  loop_free (loop);
}

/* ---- condition ---- */

/* async def waiter(cond, name):
 *     async with cond:
 *         ev(f"{name}:wait")
 *         try: await cond.wait()
 *         except asyncio.CancelledError as c:
 *             ev(f"{name}:cancelled:[{c.args[0] if c.args else ''}]"
 *                f"@{t()}:locked{int(cond.locked())}")
 *             raise
 *         ev(f"{name}:woke@{t()}") */
typedef struct
{
  AfutTask task;
  AfutCondition *cond;
  const char *name;
} CondWaiter;

static void
cond_waiter (AfutTask *task)
{
  CondWaiter *self = (CondWaiter *) task;
  AFUT_BEGIN (task);
  AFUT_AWAIT (task, afut_condition_acquire (self->cond));
  ev ("%s:wait", self->name);
  AFUT_AWAIT_TRY (task, afut_condition_wait (self->cond));
  if (afut_task_caught (task) != NULL)
    {
      ev ("%s:cancelled:[%s]@%g:locked%d", self->name, caught_message (task),
          now (), afut_condition_is_locked (self->cond));
      g_assert_true (afut_condition_release (self->cond));
      AFUT_RERAISE (task);
    }
  ev ("%s:woke@%g", self->name, now ());
  g_assert_true (afut_condition_release (self->cond));
  AFUT_END (task);
}

static AfutFuture *
cond_waiter_new (AfutCondition *cond, const char *name)
{
  return afut_task_new (NULL, cond_waiter, sizeof (CondWaiter),
                        &(CondWaiter){ .cond = cond, .name = name }, name,
                        NULL);
}

/* async def main():
 *     cond = asyncio.Condition()
 *     ts = [asyncio.create_task(waiter(cond, n)) for n in "abcd"]
 *     await asyncio.sleep(0)
 *     async with cond:
 *         cond.notify(2)
 *         ev("notified2")
 *         await sleep(1)
 *         ev("main:release")
 *     await sleep(1)
 *     async with cond:
 *         cond.notify_all()
 *         ev("notified-all")
 *     await asyncio.gather(*ts)
 *     ev(f"locked:{int(cond.locked())}") */
static void
cond_notify_main (AfutTask *task)
{
  Main *self = (Main *) task;
  AFUT_BEGIN (task);
  self->t[0] = cond_waiter_new (self->cond, "a");
  self->t[1] = cond_waiter_new (self->cond, "b");
  self->t[2] = cond_waiter_new (self->cond, "c");
  self->t[3] = cond_waiter_new (self->cond, "d");
  AFUT_YIELD (task);
  AFUT_AWAIT (task, afut_condition_acquire (self->cond));
  g_assert_true (afut_condition_notify (self->cond, 2));
  ev ("notified2");
  AFUT_AWAIT (task, afut_sleep (1));
  ev ("main:release");
  afut_condition_release (self->cond);
  AFUT_AWAIT (task, afut_sleep (1));
  AFUT_AWAIT (task, afut_condition_acquire (self->cond));
  g_assert_true (afut_condition_notify_all (self->cond));
  ev ("notified-all");
  afut_condition_release (self->cond);
  AFUT_AWAIT (task, gather_all (self, 0, 4));
  ev ("locked:%d", afut_condition_is_locked (self->cond));
  AFUT_END (task);
}

static void
test_condition_notify (void)
{
  AfutLoop *loop = loop_new ();
  AfutCondition *cond = afut_condition_new (loop, NULL);

  run_main (loop, cond_notify_main, &(Main){ .cond = cond },
            "a:wait b:wait c:wait d:wait notified2 main:release a:woke@1 "
            "b:woke@1 notified-all c:woke@2 d:woke@2 locked:0");
  afut_condition_unref (cond);
  loop_free (loop);
}

/* counter = 0
 * async def consumer(cond, name, n):
 *     async with cond:
 *         ev(f"{name}:wait-for-{n}")
 *         await cond.wait_for(lambda: counter >= n)
 *         ev(f"{name}:saw-{counter}@{t()}")
 * async def producer(cond):
 *     global counter
 *     for i in range(4):
 *         await sleep(1)
 *         async with cond:
 *             counter += 1; ev(f"p:{counter}"); cond.notify_all()
 * async def main():
 *     cond = asyncio.Condition()
 *     await asyncio.gather(consumer(cond, "c2", 2), consumer(cond, "c0", 0),
 *                          consumer(cond, "c3", 3), producer(cond)) */
static int counter;

typedef struct
{
  AfutTask task;
  AfutCondition *cond;
  const char *name;
  int n;
} Consumer;

static bool
counter_reached (void *data)
{
  return counter >= ((Consumer *) data)->n;
}

static void
consumer (AfutTask *task)
{
  Consumer *self = (Consumer *) task;
  AFUT_BEGIN (task);
  AFUT_AWAIT (task, afut_condition_acquire (self->cond));
  ev ("%s:wait-for-%d", self->name, self->n);
  AFUT_AWAIT_TRY (task,
                  afut_condition_wait_for (self->cond, counter_reached, self));
  g_assert_true (afut_condition_is_locked (self->cond));
  afut_condition_release (self->cond);
  if (afut_task_caught (task) != NULL)
    AFUT_RERAISE (task);
  ev ("%s:saw-%d@%g", self->name, counter, now ());
  AFUT_END (task);
}

typedef struct
{
  AfutTask task;
  AfutCondition *cond;
  int i;
} Producer;

static void
producer (AfutTask *task)
{
  Producer *self = (Producer *) task;
  AFUT_BEGIN (task);
  for (self->i = 0; self->i < 4; self->i++)
    {
      AFUT_AWAIT (task, afut_sleep (1));
      AFUT_AWAIT (task, afut_condition_acquire (self->cond));
      counter++;
      ev ("p:%d", counter);
      afut_condition_notify_all (self->cond);
      afut_condition_release (self->cond);
    }
  AFUT_END (task);
}

static void
cond_wait_for_main (AfutTask *task)
{
  Main *self = (Main *) task;
  AFUT_BEGIN (task);
  AFUT_AWAIT (task,
              afut_gather (AFUT_CORO (Consumer, consumer, .cond = self->cond,
                                      .name = "c2", .n = 2),
                           AFUT_CORO (Consumer, consumer, .cond = self->cond,
                                      .name = "c0", .n = 0),
                           AFUT_CORO (Consumer, consumer, .cond = self->cond,
                                      .name = "c3", .n = 3),
                           AFUT_CORO (Producer, producer, .cond = self->cond),
                           NULL));
  AFUT_END (task);
}

static void
test_condition_wait_for (void)
{
  AfutLoop *loop = loop_new ();
  AfutCondition *cond = afut_condition_new (loop, NULL);

  counter = 0;
  run_main (loop, cond_wait_for_main, &(Main){ .cond = cond },
            "c2:wait-for-2 c0:wait-for-0 c0:saw-0@0 c3:wait-for-3 p:1 p:2 "
            "c2:saw-2@2 p:3 c3:saw-3@3 p:4");
  afut_condition_unref (cond);
  loop_free (loop);
}

/* async def main():
 *     cond = asyncio.Condition()
 *     w = asyncio.create_task(waiter(cond, "w"))
 *     await asyncio.sleep(0)
 *     async with cond:
 *         w.cancel("stop")
 *         ev("main:cancelled-w")
 *         await sleep(1)
 *         ev("main:release")
 *     await asyncio.gather(w, return_exceptions=True)
 *     ev(f"w:{'cancelled' if w.cancelled() else 'done'}"
 *        f":locked{int(cond.locked())}") */
static void
cond_cancel_main (AfutTask *task)
{
  Main *self = (Main *) task;
  AFUT_BEGIN (task);
  self->t[0] = cond_waiter_new (self->cond, "w");
  AFUT_YIELD (task);
  AFUT_AWAIT (task, afut_condition_acquire (self->cond));
  afut_future_cancel (self->t[0], "stop");
  ev ("main:cancelled-w");
  AFUT_AWAIT (task, afut_sleep (1));
  ev ("main:release");
  afut_condition_release (self->cond);
  AFUT_AWAIT (task, gather_re (self, 0, 1));
  ev ("w:%s:locked%d", state_name (self->t[0]),
      afut_condition_is_locked (self->cond));
  AFUT_END (task);
}

static void
test_condition_cancel_reacquires (void)
{
  AfutLoop *loop = loop_new ();
  AfutCondition *cond = afut_condition_new (loop, NULL);

  /* The cancelled wait completes only once it holds the lock again. */
  run_main (loop, cond_cancel_main, &(Main){ .cond = cond },
            "w:wait main:cancelled-w main:release "
            "w:cancelled:[stop]@1:locked1 w:cancelled:locked0");
  afut_condition_unref (cond);
  loop_free (loop);
}

/* async def main():
 *     cond = asyncio.Condition()
 *     w = asyncio.create_task(waiter(cond, "w"))
 *     await asyncio.sleep(0)
 *     async with cond:
 *         cond.notify()
 *         await sleep(1)
 *         w.cancel("first")
 *         await sleep(1)
 *         w.cancel("second")
 *         await sleep(1)
 *         ev("main:release")
 *     await asyncio.gather(w, return_exceptions=True)
 *     ev(f"w:{'cancelled' if w.cancelled() else 'done'}") */
static void
cond_cancel_reacquire_main (AfutTask *task)
{
  Main *self = (Main *) task;
  AFUT_BEGIN (task);
  self->t[0] = cond_waiter_new (self->cond, "w");
  AFUT_YIELD (task);
  AFUT_AWAIT (task, afut_condition_acquire (self->cond));
  afut_condition_notify (self->cond, 1);
  AFUT_AWAIT (task, afut_sleep (1));
  afut_future_cancel (self->t[0], "first");
  AFUT_AWAIT (task, afut_sleep (1));
  afut_future_cancel (self->t[0], "second");
  AFUT_AWAIT (task, afut_sleep (1));
  ev ("main:release");
  afut_condition_release (self->cond);
  AFUT_AWAIT (task, gather_re (self, 0, 1));
  ev ("w:%s", state_name (self->t[0]));
  AFUT_END (task);
}

static void
test_condition_cancel_while_reacquiring (void)
{
  AfutLoop *loop = loop_new ();
  AfutLock *lock = afut_lock_new (loop);
  AfutCondition *cond = afut_condition_new (loop, lock);

  /* Notified, then cancelled twice while taking the lock back: it keeps
   * trying, and raises a bare CancelledError (no message) once it has the
   * lock. */
  run_main (loop, cond_cancel_reacquire_main, &(Main){ .cond = cond },
            "w:wait main:release w:cancelled:[]@3:locked1 w:cancelled");
  /* The lock given is the condition's. */
  g_assert_false (afut_lock_is_locked (lock));
  afut_condition_unref (cond);
  g_assert_false (afut_lock_is_locked (lock));
  afut_lock_unref (lock);
  loop_free (loop);
}

/* A waiter notified, then cancelled before it resumes, passes the
 * notification on (README rule 13), as CPython 3.13 does (gh-112202).
 * CPython 3.11.2 loses it: b is never woken.  /usr/bin/python3 prints
 * "a:wait b:wait main:notified-a:cancelled-a a:cancelled:[stop]@0:locked1
 * b:pending b:cancelled:[]@5:locked1" for:
 *
 * async def main():
 *     cond = asyncio.Condition()
 *     a = asyncio.create_task(waiter(cond, "a"))
 *     b = asyncio.create_task(waiter(cond, "b"))
 *     await asyncio.sleep(0)
 *     async with cond:
 *         cond.notify(1)
 *         a.cancel("stop")
 *         ev("main:notified-a:cancelled-a")
 *     await sleep(5)
 *     ev(f"b:{'pending' if not b.done() else 'done'}")
 *     b.cancel()
 *     await asyncio.gather(a, b, return_exceptions=True) */
static void
cond_lost_notify_main (AfutTask *task)
{
  Main *self = (Main *) task;
  AFUT_BEGIN (task);
  self->t[0] = cond_waiter_new (self->cond, "a");
  self->t[1] = cond_waiter_new (self->cond, "b");
  AFUT_YIELD (task);
  AFUT_AWAIT (task, afut_condition_acquire (self->cond));
  g_assert_true (afut_condition_notify (self->cond, 1));
  g_assert_true (afut_future_cancel (self->t[0], "stop"));
  ev ("main:notified-a:cancelled-a");
  afut_condition_release (self->cond);
  AFUT_AWAIT (task, afut_sleep (5));
  ev ("b:%s", afut_future_is_done (self->t[1]) ? "done" : "pending");
  afut_future_cancel (self->t[1], NULL);
  AFUT_AWAIT (task, gather_re (self, 0, 2));
  AFUT_END (task);
}

static void
test_condition_cancel_passes_notification_on (void)
{
  AfutLoop *loop = loop_new ();
  AfutCondition *cond = afut_condition_new (loop, NULL);

  run_main (loop, cond_lost_notify_main, &(Main){ .cond = cond },
            "a:wait b:wait main:notified-a:cancelled-a "
            "a:cancelled:[stop]@0:locked1 b:woke@0 b:done");
  g_assert_false (afut_condition_is_locked (cond));
  afut_condition_unref (cond);
  loop_free (loop);
}

/* A waiter cancelled before any notify had no wakeup to pass on: the
 * others are not woken (no spurious wakeup; CPython 3.13 wakes one). */
static void
cond_cancel_unnotified_main (AfutTask *task)
{
  Main *self = (Main *) task;
  AFUT_BEGIN (task);
  self->t[0] = cond_waiter_new (self->cond, "a");
  self->t[1] = cond_waiter_new (self->cond, "b");
  AFUT_YIELD (task);
  g_assert_true (afut_future_cancel (self->t[0], "stop"));
  AFUT_AWAIT (task, afut_sleep (5));
  ev ("b:%s", afut_future_is_done (self->t[1]) ? "done" : "pending");
  AFUT_AWAIT (task, afut_condition_acquire (self->cond));
  g_assert_true (afut_condition_notify (self->cond, 1));
  afut_condition_release (self->cond);
  AFUT_AWAIT (task, gather_re (self, 0, 2));
  AFUT_END (task);
}

static void
test_condition_cancel_unnotified (void)
{
  AfutLoop *loop = loop_new ();
  AfutCondition *cond = afut_condition_new (loop, NULL);

  run_main (loop, cond_cancel_unnotified_main, &(Main){ .cond = cond },
            "a:wait b:wait a:cancelled:[stop]@0:locked1 b:pending "
            "b:woke@5");
  afut_condition_unref (cond);
  loop_free (loop);
}

static bool
always (void *data)
{
  (void) data;
  return true;
}

/* async def main():
 *     cond = asyncio.Condition()
 *     try: await cond.wait()
 *     except RuntimeError as e: ev(f"wait:{e}")
 *     try: cond.notify()
 *     except RuntimeError as e: ev(f"notify:{e}")
 *     r = await cond.wait_for(lambda: True)
 *     ev(f"wait_for-true:{r}")
 * -> wait:cannot wait on un-acquired lock
 *    notify:cannot notify on un-acquired lock wait_for-true:True
 * afut: the wait fails with an invalid-state error; notify, not a
 * coroutine, reports a critical and returns false. */
static void
cond_errors_main (AfutTask *task)
{
  Main *self = (Main *) task;
  AFUT_BEGIN (task);
  AFUT_AWAIT_TRY (task, afut_condition_wait (self->cond));
  g_assert_true (afut_error_matches (afut_task_caught (task), AFUT_ERROR,
                                     AFUT_ERROR_INVALID_STATE));
  ev ("wait:%s", caught_message (task));
  expect_log_begin (AFUT_LOG_CRITICAL, "cannot notify on un-acquired lock");
  ev ("notify:%d", afut_condition_notify (self->cond, 1));
  ev ("notify-all:%d", afut_condition_notify_all (self->cond));
  g_assert_cmpuint (expect_log_end (), ==, 2);
  AFUT_AWAIT (task, afut_condition_wait_for (self->cond, always, NULL));
  ev ("wait_for-true");
  AFUT_AWAIT_TRY (task, afut_condition_wait_for (self->cond, counter_reached,
                                                 &(Consumer){ .n = 1 }));
  ev ("wait_for-false:%s", caught_message (task));
  AFUT_END (task);
}

static void
test_condition_without_lock (void)
{
  AfutLoop *loop = loop_new ();
  AfutCondition *cond = afut_condition_new (loop, NULL);

  counter = 0;
  run_main (loop, cond_errors_main, &(Main){ .cond = cond },
            "wait:cannot wait on un-acquired lock notify:0 notify-all:0 "
            "wait_for-true wait_for-false:cannot wait on un-acquired lock");
  g_assert_false (afut_condition_is_locked (cond));
  afut_condition_unref (cond);
  loop_free (loop);
}

/* ---- queue ---- */

typedef struct
{
  int prio;
  const char *name;
} Prio;

static int
prio_compare (const void *a, const void *b)
{
  return ((const Prio *) a)->prio - ((const Prio *) b)->prio;
}

/* for name, q in (("fifo", Queue()), ("lifo", LifoQueue())):
 *     for x in "abcd": q.put_nowait(x)
 *     ev(name + ":" + "".join(q.get_nowait() for _ in range(4)))
 * q = PriorityQueue()
 * for seq, (prio, x) in enumerate([(2, "a"), (1, "b"), (2, "c"), (0, "d"),
 *                                  (1, "e"), (2, "f"), (0, "g")]):
 *     q.put_nowait((prio, seq, x))
 * ev("prio:" + "".join(q.get_nowait()[2] for _ in range(7)))
 * -> fifo:abcd lifo:dcba prio:dgbeacf */
static void
test_queue_orders (void)
{
  static const char *letters[] = { "a", "b", "c", "d" };
  static Prio prios[] = { { 2, "a" }, { 1, "b" }, { 2, "c" }, { 0, "d" },
                          { 1, "e" }, { 2, "f" }, { 0, "g" } };
  AfutLoop *loop = loop_new ();
  AfutQueue *fifo = afut_queue_new (loop, AFUT_QUEUE_FIFO, 0, NULL, NULL);
  AfutQueue *lifo = afut_queue_new (loop, AFUT_QUEUE_LIFO, 0, NULL, NULL);
  AfutQueue *prio = afut_queue_new (loop, AFUT_QUEUE_PRIORITY, 0,
                                    prio_compare, NULL);
  GString *got = g_string_new (NULL);
  void *item;
  size_t i;

  for (i = 0; i < 4; i++)
    {
      g_assert_true (afut_queue_put_nowait (fifo, (void *) letters[i]));
      g_assert_true (afut_queue_put_nowait (lifo, (void *) letters[i]));
    }
  g_assert_cmpuint (afut_queue_get_size (fifo), ==, 4);
  g_string_append (got, "fifo:");
  while (afut_queue_get_nowait (fifo, &item))
    g_string_append (got, item);
  g_string_append (got, " lifo:");
  while (afut_queue_get_nowait (lifo, &item))
    g_string_append (got, item);
  for (i = 0; i < G_N_ELEMENTS (prios); i++)
    g_assert_true (afut_queue_put_nowait (prio, &prios[i]));
  g_string_append (got, " prio:");
  while (afut_queue_get_nowait (prio, &item))
    g_string_append (got, ((Prio *) item)->name);
  g_assert_cmpstr (got->str, ==, "fifo:abcd lifo:dcba prio:dgbeacf");
  g_assert_true (afut_queue_is_empty (prio));

  g_string_free (got, TRUE);
  afut_queue_unref (fifo);
  afut_queue_unref (lifo);
  afut_queue_unref (prio);
  loop_free (loop);
}

/* The heap, with many priorities interleaved with gets, against a stable
 * sort of what was put. */
typedef struct
{
  int prio;
  int order; /* put order */
} HeapEntry;

static int
heap_entry_compare (const void *a, const void *b)
{
  const HeapEntry *x = (const HeapEntry *) a, *y = (const HeapEntry *) b;
  if (x->prio != y->prio)
    return x->prio - y->prio;
  return x->order - y->order;
}

static int
heap_prio_compare (const void *a, const void *b)
{
  return ((const HeapEntry *) a)->prio - ((const HeapEntry *) b)->prio;
}

static void
test_queue_priority_heap (void)
{
  AfutLoop *loop = loop_new ();
  AfutQueue *q = afut_queue_new (loop, AFUT_QUEUE_PRIORITY, 0,
                                 heap_prio_compare, NULL);
  GRand *rand = g_rand_new_with_seed (7);
  HeapEntry *entries = g_new (HeapEntry, 2000);
  GArray *pending = g_array_new (FALSE, FALSE, sizeof (HeapEntry));
  int n_put = 0, n_got = 0;
  void *item;

  while (n_got < 2000)
    {
      if (n_put < 2000 && (afut_queue_is_empty (q) || g_rand_boolean (rand)))
        {
          entries[n_put].prio = g_rand_int_range (rand, 0, 20);
          entries[n_put].order = n_put;
          g_assert_true (afut_queue_put_nowait (q, &entries[n_put]));
          g_array_append_val (pending, entries[n_put]);
          n_put++;
        }
      else
        {
          /* What comes out is the smallest pending, ties by put order. */
          HeapEntry *got, *want;
          g_array_sort (pending, heap_entry_compare);
          want = &g_array_index (pending, HeapEntry, 0);
          g_assert_true (afut_queue_get_nowait (q, &item));
          got = (HeapEntry *) item;
          g_assert_cmpint (got->prio, ==, want->prio);
          g_assert_cmpint (got->order, ==, want->order);
          g_array_remove_index (pending, 0);
          n_got++;
        }
      g_assert_cmpuint (afut_queue_get_size (q), ==, pending->len);
    }
  g_assert_false (afut_queue_get_nowait (q, &item));
  g_array_free (pending, TRUE);
  g_free (entries);
  g_rand_free (rand);
  afut_queue_unref (q);
  loop_free (loop);
}

/* A compare function that puts into, or takes from, its own queue. */
static AfutQueue *reentrant_queue;
static HeapEntry reentrant_extra = { .prio = -1, .order = 99 };
static guint n_reentries;

static int
reentrant_compare (const void *a, const void *b)
{
  void *item = NULL;
  if (reentrant_queue != NULL)
    {
      n_reentries++;
      g_assert_false (afut_queue_put_nowait (reentrant_queue,
                                             &reentrant_extra));
      g_assert_false (afut_queue_get_nowait (reentrant_queue, &item));
      g_assert_null (item);
    }
  return heap_prio_compare (a, b);
}

/* A put from inside the compare function grew the heap's array under
 * the outer push, which then wrote through the freed pointer (ASan:
 * heap-use-after-free in afut__queue_heap_push).  Such calls are refused
 * now, with a critical, and the heap stays whole.  (Python's heapq raises
 * RuntimeError, "list changed size during iteration", for the outer put
 * instead.) */
static void
test_queue_compare_reentry_refused (void)
{
  AfutLoop *loop = loop_new ();
  AfutQueue *q = afut_queue_new (loop, AFUT_QUEUE_PRIORITY, 0,
                                 reentrant_compare, NULL);
  HeapEntry entries[8];
  void *item;
  int i;

  /* Seven items: the eighth fills the array (8 slots) as it goes in. */
  for (i = 0; i < 7; i++)
    {
      entries[i].prio = 10 - i;
      entries[i].order = i;
      g_assert_true (afut_queue_put_nowait (q, &entries[i]));
    }
  entries[7].prio = 0;
  entries[7].order = 7;
  reentrant_queue = q;
  n_reentries = 0;
  expect_log_begin (AFUT_LOG_CRITICAL, "called from the queue's own compare "
                                       "function");
  g_assert_true (afut_queue_put_nowait (q, &entries[7]));
  g_assert_true (afut_queue_get_nowait (q, &item));
  g_assert_cmpuint (expect_log_end (), ==, 2 * n_reentries);
  g_assert_cmpuint (n_reentries, >, 0);
  reentrant_queue = NULL;

  /* Nothing was added or lost, and the order holds. */
  g_assert_true (item == &entries[7]);
  for (i = 6; i >= 0; i--)
    {
      g_assert_true (afut_queue_get_nowait (q, &item));
      g_assert_true (item == &entries[i]);
    }
  g_assert_true (afut_queue_is_empty (q));
  afut_queue_unref (q);
  loop_free (loop);
}

static void
test_queue_nowait_full_empty (void)
{
  AfutLoop *loop = loop_new ();
  AfutQueue *q = afut_queue_new (loop, AFUT_QUEUE_FIFO, 2, NULL,
                                 item_destroy);
  char *a = item_new ("a"), *b = item_new ("b"), *c = item_new ("c");
  void *item = &n_freed;

  g_assert_cmpuint (afut_queue_get_maxsize (q), ==, 2);
  g_assert_true (afut_queue_is_empty (q));
  g_assert_false (afut_queue_is_full (q));
  /* QueueEmpty: false, the out argument untouched. */
  g_assert_false (afut_queue_get_nowait (q, &item));
  g_assert_true (item == &n_freed);
  g_assert_true (afut_queue_put_nowait (q, a));
  g_assert_true (afut_queue_put_nowait (q, b));
  g_assert_true (afut_queue_is_full (q));
  /* QueueFull: false, and the item stays the caller's. */
  g_assert_false (afut_queue_put_nowait (q, c));
  g_assert_cmpuint (n_destroyed, ==, 0);
  g_assert_cmpuint (afut_queue_get_size (q), ==, 2);
  g_assert_true (afut_queue_get_nowait (q, &item));
  g_assert_cmpstr (item, ==, "a");
  item_free (item);
  g_assert_true (afut_queue_put_nowait (q, c));
  /* Items left at the last unref go to item_destroy. */
  afut_queue_unref (q);
  g_assert_cmpuint (n_destroyed, ==, 2);
  g_assert_cmpuint (n_created, ==, n_destroyed + n_freed);
  loop_free (loop);
}

/* async def producer(q):
 *     for i in range(4):
 *         ev(f"put{i}"); await q.put(i)
 *         ev(f"put{i}:done@{t()}:size{q.qsize()}")
 * async def consumer(q):
 *     for i in range(4):
 *         await sleep(1); item = await q.get(); ev(f"got{item}@{t()}")
 * async def main():
 *     q = asyncio.Queue(maxsize=2)
 *     await asyncio.gather(producer(q), consumer(q)) */
typedef struct
{
  AfutTask task;
  AfutQueue *queue;
  int i;
} QueueUser;

static void
queue_producer (AfutTask *task)
{
  QueueUser *self = (QueueUser *) task;
  AFUT_BEGIN (task);
  for (self->i = 0; self->i < 4; self->i++)
    {
      ev ("put%d", self->i);
      AFUT_AWAIT (task,
                  afut_queue_put (self->queue, GINT_TO_POINTER (self->i)));
      ev ("put%d:done@%g:size%zu", self->i, now (),
          afut_queue_get_size (self->queue));
    }
  AFUT_END (task);
}

static void
queue_consumer (AfutTask *task)
{
  QueueUser *self = (QueueUser *) task;
  AFUT_BEGIN (task);
  for (self->i = 0; self->i < 4; self->i++)
    {
      AFUT_AWAIT (task, afut_sleep (1));
      AFUT_AWAIT (task, afut_queue_get (self->queue));
      ev ("got%d@%g",
          GPOINTER_TO_INT (afut_future_get_pointer (afut_task_awaited (task))),
          now ());
    }
  AFUT_END (task);
}

static void
queue_backpressure_main (AfutTask *task)
{
  Main *self = (Main *) task;
  AFUT_BEGIN (task);
  AFUT_AWAIT (task, afut_gather (AFUT_CORO (QueueUser, queue_producer,
                                            .queue = self->queue),
                                 AFUT_CORO (QueueUser, queue_consumer,
                                            .queue = self->queue),
                                 NULL));
  AFUT_END (task);
}

static void
test_queue_maxsize_backpressure (void)
{
  AfutLoop *loop = loop_new ();
  AfutQueue *q = afut_queue_new (loop, AFUT_QUEUE_FIFO, 2, NULL, NULL);

  run_main (loop, queue_backpressure_main, &(Main){ .queue = q },
            "put0 put0:done@0:size1 put1 put1:done@0:size2 put2 got0@1 "
            "put2:done@1:size2 put3 got1@2 put3:done@2:size2 got2@3 got3@4");
  afut_queue_unref (q);
  loop_free (loop);
}

/* async def worker(q, name):
 *     while True:
 *         item = await q.get()
 *         ev(f"{name}:got{item}@{t()}")
 *         await sleep(item)
 *         ev(f"{name}:done{item}@{t()}")
 *         q.task_done()
 * async def joiner(q, name):
 *     await q.join(); ev(f"{name}:joined@{t()}")
 * async def main():
 *     q = asyncio.Queue()
 *     await q.join(); ev("empty-join-no-wait")
 *     for i in [3, 1, 2]: q.put_nowait(i)
 *     j = asyncio.create_task(joiner(q, "j"))
 *     ws = [asyncio.create_task(worker(q, n)) for n in ("w1", "w2")]
 *     await q.join(); ev(f"main:joined@{t()}")
 *     await j
 *     for w in ws: w.cancel()
 *     await asyncio.gather(*ws, return_exceptions=True) */
typedef struct
{
  AfutTask task;
  AfutQueue *queue;
  const char *name;
  int item;
} JoinWorker;

static void
join_worker (AfutTask *task)
{
  JoinWorker *self = (JoinWorker *) task;
  AFUT_BEGIN (task);
  for (;;)
    {
      AFUT_AWAIT (task, afut_queue_get (self->queue));
      self->item
        = GPOINTER_TO_INT (afut_future_get_pointer (afut_task_awaited (task)));
      ev ("%s:got%d@%g", self->name, self->item, now ());
      AFUT_AWAIT (task, afut_sleep (self->item));
      ev ("%s:done%d@%g", self->name, self->item, now ());
      g_assert_true (afut_queue_task_done (self->queue));
    }
  AFUT_END (task);
}

static void
joiner (AfutTask *task)
{
  JoinWorker *self = (JoinWorker *) task;
  AFUT_BEGIN (task);
  AFUT_AWAIT (task, afut_queue_join (self->queue));
  ev ("%s:joined@%g", self->name, now ());
  AFUT_END (task);
}

static void
queue_join_main (AfutTask *task)
{
  Main *self = (Main *) task;
  AFUT_BEGIN (task);
  AFUT_AWAIT (task, afut_queue_join (self->queue));
  ev ("empty-join-no-wait");
  afut_queue_put_nowait (self->queue, GINT_TO_POINTER (3));
  afut_queue_put_nowait (self->queue, GINT_TO_POINTER (1));
  afut_queue_put_nowait (self->queue, GINT_TO_POINTER (2));
  self->t[0] = afut_task_new (NULL, joiner, sizeof (JoinWorker),
                              &(JoinWorker){ .queue = self->queue,
                                             .name = "j" },
                              "j", NULL);
  self->t[1] = afut_task_new (NULL, join_worker, sizeof (JoinWorker),
                              &(JoinWorker){ .queue = self->queue,
                                             .name = "w1" },
                              "w1", NULL);
  self->t[2] = afut_task_new (NULL, join_worker, sizeof (JoinWorker),
                              &(JoinWorker){ .queue = self->queue,
                                             .name = "w2" },
                              "w2", NULL);
  AFUT_AWAIT (task, afut_queue_join (self->queue));
  ev ("main:joined@%g", now ());
  AFUT_AWAIT (task, afut_future_ref (self->t[0]));
  afut_future_cancel (self->t[1], NULL);
  afut_future_cancel (self->t[2], NULL);
  AFUT_AWAIT (task, gather_re (self, 1, 3));
  AFUT_END (task);
}

static void
test_queue_join_task_done (void)
{
  AfutLoop *loop = loop_new ();
  AfutQueue *q = afut_queue_new (loop, AFUT_QUEUE_FIFO, 0, NULL, NULL);

  run_main (loop, queue_join_main, &(Main){ .queue = q },
            "empty-join-no-wait w1:got3@0 w2:got1@0 w2:done1@1 w2:got2@1 "
            "w1:done3@3 w2:done2@3 main:joined@3 j:joined@3");
  /* ValueError('task_done() called too many times') */
  expect_log_begin (AFUT_LOG_CRITICAL,
                    "afut_queue_task_done: called too many times");
  g_assert_false (afut_queue_task_done (q));
  g_assert_cmpuint (expect_log_end (), ==, 1);
  afut_queue_unref (q);
  loop_free (loop);
}

/* async def getter(q, name):
 *     ev(f"{name}:get")
 *     try: item = await q.get()
 *     except asyncio.CancelledError:
 *         ev(f"{name}:cancelled:size{q.qsize()}"); raise
 *     ev(f"{name}:got-{item}")
 * async def main():
 *     q = asyncio.Queue()
 *     g1 = asyncio.create_task(getter(q, "g1"))
 *     g2 = asyncio.create_task(getter(q, "g2"))
 *     await asyncio.sleep(0)
 *     q.put_nowait("x")
 *     g1.cancel()
 *     await asyncio.gather(g1, g2, return_exceptions=True)
 *     ev(f"g1:{'cancelled' if g1.cancelled() else 'done'} "
 *        f"size{q.qsize()}") */
typedef struct
{
  AfutTask task;
  AfutQueue *queue;
  const char *name;
} QueueGetter;

static void
queue_getter (AfutTask *task)
{
  QueueGetter *self = (QueueGetter *) task;
  char *item;
  AFUT_BEGIN (task);
  ev ("%s:get", self->name);
  AFUT_AWAIT_TRY (task, afut_queue_get (self->queue));
  if (afut_task_caught (task) != NULL)
    {
      ev ("%s:cancelled:size%zu", self->name,
          afut_queue_get_size (self->queue));
      AFUT_RERAISE (task);
    }
  item = (char *) afut_future_steal_pointer (afut_task_awaited (task));
  ev ("%s:got-%s", self->name, item);
  item_free (item);
  AFUT_END (task);
}

static AfutFuture *
queue_getter_new (AfutQueue *queue, const char *name)
{
  return afut_task_new (NULL, queue_getter, sizeof (QueueGetter),
                        &(QueueGetter){ .queue = queue, .name = name }, name,
                        NULL);
}

static void
queue_get_woken_cancelled_main (AfutTask *task)
{
  Main *self = (Main *) task;
  AFUT_BEGIN (task);
  self->t[0] = queue_getter_new (self->queue, "g1");
  self->t[1] = queue_getter_new (self->queue, "g2");
  AFUT_YIELD (task);
  afut_queue_put_nowait (self->queue, item_new ("x"));
  /* g1's getter is resolved: woken, not run yet. */
  afut_future_cancel (self->t[0], NULL);
  AFUT_AWAIT (task, gather_re (self, 0, 2));
  ev ("g1:%s size%zu", state_name (self->t[0]),
      afut_queue_get_size (self->queue));
  AFUT_END (task);
}

static void
test_queue_get_woken_cancelled_keeps_item (void)
{
  AfutLoop *loop = loop_new ();
  AfutQueue *q = afut_queue_new (loop, AFUT_QUEUE_FIFO, 0, NULL,
                                 item_destroy);

  run_main (loop, queue_get_woken_cancelled_main, &(Main){ .queue = q },
            "g1:get g2:get g1:cancelled:size1 g2:got-x g1:cancelled size0");
  afut_queue_unref (q);
  g_assert_cmpuint (n_created, ==, 1);
  g_assert_cmpuint (n_freed, ==, 1);
  g_assert_cmpuint (n_destroyed, ==, 0);
  loop_free (loop);
}

/* async def putter(q, name):
 *     ev(f"{name}:put")
 *     try: await q.put(name)
 *     except asyncio.CancelledError:
 *         ev(f"{name}:cancelled:size{q.qsize()}"); raise
 *     ev(f"{name}:done:size{q.qsize()}")
 * async def main():
 *     q = asyncio.Queue(maxsize=1)
 *     q.put_nowait("x")
 *     p1 = asyncio.create_task(putter(q, "p1"))
 *     p2 = asyncio.create_task(putter(q, "p2"))
 *     await asyncio.sleep(0)
 *     ev(f"took-{q.get_nowait()}")
 *     p1.cancel()
 *     await asyncio.gather(p1, p2, return_exceptions=True)
 *     ev(f"p1:{'cancelled' if p1.cancelled() else 'done'} "
 *        f"left-{q.get_nowait()} size{q.qsize()}") */
static void
queue_putter (AfutTask *task)
{
  QueueGetter *self = (QueueGetter *) task;
  AFUT_BEGIN (task);
  ev ("%s:put", self->name);
  AFUT_AWAIT_TRY (task, afut_queue_put (self->queue, item_new (self->name)));
  if (afut_task_caught (task) != NULL)
    {
      ev ("%s:cancelled:size%zu", self->name,
          afut_queue_get_size (self->queue));
      AFUT_RERAISE (task);
    }
  ev ("%s:done:size%zu", self->name, afut_queue_get_size (self->queue));
  AFUT_END (task);
}

static AfutFuture *
queue_putter_new (AfutQueue *queue, const char *name)
{
  return afut_task_new (NULL, queue_putter, sizeof (QueueGetter),
                        &(QueueGetter){ .queue = queue, .name = name }, name,
                        NULL);
}

static void
queue_put_woken_cancelled_main (AfutTask *task)
{
  Main *self = (Main *) task;
  void *item;
  AFUT_BEGIN (task);
  afut_queue_put_nowait (self->queue, item_new ("x"));
  self->t[0] = queue_putter_new (self->queue, "p1");
  self->t[1] = queue_putter_new (self->queue, "p2");
  AFUT_YIELD (task);
  g_assert_true (afut_queue_get_nowait (self->queue, &item));
  ev ("took-%s", (char *) item);
  item_free (item);
  afut_future_cancel (self->t[0], NULL);
  AFUT_AWAIT (task, gather_re (self, 0, 2));
  g_assert_true (afut_queue_get_nowait (self->queue, &item));
  ev ("p1:%s left-%s size%zu", state_name (self->t[0]), (char *) item,
      afut_queue_get_size (self->queue));
  item_free (item);
  AFUT_END (task);
}

static void
test_queue_put_woken_cancelled_passes_on (void)
{
  AfutLoop *loop = loop_new ();
  AfutQueue *q = afut_queue_new (loop, AFUT_QUEUE_FIFO, 1, NULL,
                                 item_destroy);

  run_main (loop, queue_put_woken_cancelled_main, &(Main){ .queue = q },
            "p1:put p2:put took-x p1:cancelled:size0 p2:done:size1 "
            "p1:cancelled left-p2 size0");
  /* p1's item never got in: the put destroyed it, once. */
  g_assert_cmpuint (n_destroyed, ==, 1);
  afut_queue_unref (q);
  g_assert_cmpuint (n_created, ==, 3);
  g_assert_cmpuint (n_freed + n_destroyed, ==, 3);
  loop_free (loop);
}

/* async def main():
 *     q = asyncio.Queue(maxsize=1)
 *     q.put_nowait("x")
 *     p1 = asyncio.create_task(putter(q, "p1"))
 *     p2 = asyncio.create_task(putter(q, "p2"))
 *     await asyncio.sleep(0)
 *     p1.cancel()
 *     await asyncio.sleep(0)
 *     ev(f"took-{q.get_nowait()}")
 *     await asyncio.gather(p1, p2, return_exceptions=True)
 *     ev(f"left-{q.get_nowait()}") */
static void
queue_put_cancelled_main (AfutTask *task)
{
  Main *self = (Main *) task;
  void *item;
  AFUT_BEGIN (task);
  afut_queue_put_nowait (self->queue, item_new ("x"));
  self->t[0] = queue_putter_new (self->queue, "p1");
  self->t[1] = queue_putter_new (self->queue, "p2");
  AFUT_YIELD (task);
  afut_future_cancel (self->t[0], NULL);
  AFUT_YIELD (task);
  ev ("destroyed:%u", n_destroyed);
  g_assert_true (afut_queue_get_nowait (self->queue, &item));
  ev ("took-%s", (char *) item);
  item_free (item);
  AFUT_AWAIT (task, gather_re (self, 0, 2));
  g_assert_true (afut_queue_get_nowait (self->queue, &item));
  ev ("left-%s", (char *) item);
  item_free (item);
  AFUT_END (task);
}

static void
test_queue_put_cancelled_while_full (void)
{
  AfutLoop *loop = loop_new ();
  AfutQueue *q = afut_queue_new (loop, AFUT_QUEUE_FIFO, 1, NULL,
                                 item_destroy);

  /* CPython: p1:put p2:put p1:cancelled:size1 took-x p2:done:size1
   * left-p2; "destroyed:1" is afut's: p1's item is freed when its put
   * gives up, not later. */
  run_main (loop, queue_put_cancelled_main, &(Main){ .queue = q },
            "p1:put p2:put p1:cancelled:size1 destroyed:1 took-x "
            "p2:done:size1 left-p2");
  afut_queue_unref (q);
  g_assert_cmpuint (n_created, ==, 3);
  g_assert_cmpuint (n_freed, ==, 2);
  g_assert_cmpuint (n_destroyed, ==, 1);
  loop_free (loop);
}

/* A put never awaited still owns its item: freed with the coroutine (and
 * the coroutine reported as never awaited, as Python warns).  The same
 * for a put cancelled before it ran. */
static void
test_queue_put_never_awaited (void)
{
  AfutLoop *loop = loop_new ();
  AfutQueue *q = afut_queue_new (loop, AFUT_QUEUE_FIFO, 0, NULL,
                                 item_destroy);
  AfutFuture *put = afut_queue_put (q, item_new ("never"));
  AfutFuture *cancelled = afut_queue_put (q, item_new ("cancelled"));
  AfutFuture *get = afut_queue_get (q);

  g_assert_nonnull (put);
  g_assert_true (afut_future_cancel (cancelled, NULL));
  g_assert_true (afut_future_is_cancelled (cancelled));
  afut_future_unref (cancelled);
  g_assert_cmpuint (n_destroyed, ==, 1);
  /* The coroutines hold the queue. */
  afut_queue_unref (q);
  expect_log_begin (AFUT_LOG_WARNING, "was never awaited");
  afut_future_unref (put);
  afut_future_unref (get);
  g_assert_cmpuint (expect_log_end (), ==, 2);
  g_assert_cmpuint (n_destroyed, ==, 2);
  g_assert_cmpuint (afut_loop_get_n_tasks (loop), ==, 0);
  loop_free (loop);
}

/* ---- with afut_wait_for ---- */

/* async def put_later(q, delay, item):
 *     await sleep(delay); ev(f"put-{item}@{t()}"); q.put_nowait(item)
 * async def main():
 *     lock = asyncio.Lock()
 *     await lock.acquire()
 *     try: await asyncio.wait_for(lock.acquire(), 1 * S)
 *     except asyncio.TimeoutError:
 *         ev(f"lock-timeout@{t()}:waiters{len(lock._waiters)}"
 *            f":locked{int(lock.locked())}")
 *     lock.release()
 *     await asyncio.wait_for(lock.acquire(), 1 * S)
 *     ev(f"lock-got@{t()}")
 *     q = asyncio.Queue()
 *     try: await asyncio.wait_for(q.get(), 1 * S)
 *     except asyncio.TimeoutError:
 *         ev(f"get-timeout@{t()}:getters{len(q._getters)}")
 *     p = asyncio.create_task(put_later(q, 1, "x"))
 *     item = await asyncio.wait_for(q.get(), 2 * S)
 *     ev(f"got-{item}@{t()}:size{q.qsize()}")
 *     await p */
static void
put_later (AfutTask *task)
{
  QueueUser *self = (QueueUser *) task;
  AFUT_BEGIN (task);
  AFUT_AWAIT (task, afut_sleep (1));
  ev ("put-x@%g", now ());
  afut_queue_put_nowait (self->queue, item_new ("x"));
  AFUT_END (task);
}

static void
wait_for_main (AfutTask *task)
{
  Main *self = (Main *) task;
  char *item;
  AFUT_BEGIN (task);
  AFUT_AWAIT (task, afut_lock_acquire (self->lock));
  AFUT_AWAIT_TRY (task, afut_wait_for (afut_lock_acquire (self->lock), 1));
  g_assert_true (afut_error_matches (afut_task_caught (task), AFUT_ERROR,
                                     AFUT_ERROR_TIMEOUT));
  ev ("lock-timeout@%g:waiters%zu:locked%d", now (),
      n_waiters (&self->lock->waiters), afut_lock_is_locked (self->lock));
  afut_lock_release (self->lock);
  AFUT_AWAIT (task, afut_wait_for (afut_lock_acquire (self->lock), 1));
  ev ("lock-got@%g", now ());
  AFUT_AWAIT_TRY (task, afut_wait_for (afut_queue_get (self->queue), 1));
  g_assert_true (afut_error_matches (afut_task_caught (task), AFUT_ERROR,
                                     AFUT_ERROR_TIMEOUT));
  ev ("get-timeout@%g:getters%zu", now (),
      n_waiters (&self->queue->getters));
  self->t[0] = afut_task_new (NULL, put_later, sizeof (QueueUser),
                              &(QueueUser){ .queue = self->queue },
                              "put_later", NULL);
  AFUT_AWAIT (task, afut_wait_for (afut_queue_get (self->queue), 2));
  /* stolen through the wait_for that lends the get's value */
  item = (char *) afut_future_steal_pointer (afut_task_awaited (task));
  ev ("got-%s@%g:size%zu", item, now (), afut_queue_get_size (self->queue));
  item_free (item);
  AFUT_AWAIT (task, afut_future_ref (self->t[0]));
  afut_lock_release (self->lock);
  AFUT_END (task);
}

static void
test_wait_for_timeouts (void)
{
  AfutLoop *loop = loop_new ();
  AfutLock *lock = afut_lock_new (loop);
  AfutQueue *q = afut_queue_new (loop, AFUT_QUEUE_FIFO, 0, NULL,
                                 item_destroy);

  /* A timed-out acquire or get leaves no waiter behind. */
  run_main (loop, wait_for_main, &(Main){ .lock = lock, .queue = q },
            "lock-timeout@1:waiters0:locked1 lock-got@1 "
            "get-timeout@2:getters0 put-x@3 got-x@3:size0");
  afut_lock_unref (lock);
  afut_queue_unref (q);
  g_assert_cmpuint (n_freed, ==, 1);
  g_assert_cmpuint (n_destroyed, ==, 0);
  loop_free (loop);
}

/* ---- lifetimes ---- */

/* Awaits an operation it was handed, and logs how it ended. */
typedef struct
{
  AfutTask task;
  const char *name;
  AfutFuture *op; /* owned until awaited */
} OpAwaiter;

static AfutFuture *
take_op (OpAwaiter *self)
{
  AfutFuture *op = self->op;
  self->op = NULL;
  return op;
}

static void
op_awaiter (AfutTask *task)
{
  OpAwaiter *self = (OpAwaiter *) task;
  AfutFuture *done;
  AFUT_BEGIN (task);
  AFUT_AWAIT_TRY (task, take_op (self));
  done = afut_task_awaited (task);
  if (afut_task_caught (task) != NULL)
    {
      ev ("%s:%s:%s", self->name, state_name (done), caught_message (task));
      AFUT_RERAISE (task);
    }
  if (afut_future_get_value_type (done) == AFUT_VALUE_POINTER)
    {
      ev ("%s:got-%s", self->name, (char *) afut_future_get_pointer (done));
      item_free (afut_future_steal_pointer (done));
    }
  else
    ev ("%s:ok", self->name);
  AFUT_END (task);
}

static void
op_awaiter_finalize (AfutTask *task)
{
  afut_future_unref (((OpAwaiter *) task)->op);
}

static AfutFuture *
op_awaiter_new (AfutLoop *loop, const char *name, AfutFuture *op)
{
  g_assert_nonnull (op);
  return afut_task_new (loop, op_awaiter, sizeof (OpAwaiter),
                        &(OpAwaiter){ .name = name, .op = op }, name,
                        op_awaiter_finalize);
}

static void
test_unref_while_pending (void)
{
  AfutLoop *loop = loop_new ();
  AfutEvent *event = afut_event_new (loop);
  AfutLock *lock = afut_lock_new (loop);
  AfutSemaphore *sem = afut_semaphore_new (loop, 0);
  AfutQueue *q = afut_queue_new (loop, AFUT_QUEUE_FIFO, 0, NULL,
                                 item_destroy);
  AfutFuture *t[6], *all;
  size_t i;

  t[0] = op_awaiter_new (loop, "event", afut_event_wait (event));
  t[1] = op_awaiter_new (loop, "lock1", afut_lock_acquire (lock));
  t[2] = op_awaiter_new (loop, "lock2", afut_lock_acquire (lock));
  t[3] = op_awaiter_new (loop, "sem", afut_semaphore_acquire (sem));
  t[4] = op_awaiter_new (loop, "get", afut_queue_get (q));
  t[5] = op_awaiter_new (loop, "join", afut_queue_join (q));
  afut_loop_iterate (loop, false);
  g_assert_cmpstr (events->str, ==, "lock1:ok join:ok");
  /* Everyone else waits; the objects lose all references but theirs. */
  afut_event_set (event);
  afut_lock_release (lock);
  afut_semaphore_release (sem);
  afut_queue_put_nowait (q, item_new ("x"));
  afut_event_unref (event);
  afut_lock_unref (lock);
  afut_semaphore_unref (sem);
  afut_queue_unref (q);
  all = afut_gather_v (t, 6);
  run_until_complete (loop, all);
  assert_state (all, AFUT_FUTURE_DONE);
  g_assert_cmpstr (events->str, ==,
                   "lock1:ok join:ok event:ok lock2:ok sem:ok get:got-x");
  afut_future_unref (all);
  for (i = 0; i < 6; i++)
    afut_future_unref (t[i]);
  g_assert_cmpuint (n_freed, ==, 1);
  loop_free (loop);
}

/* Tasks left waiting on every kind of operation when the loop goes: its
 * shutdown cancels them; every operation ends cancelled, the blocked put
 * frees its item, the queue frees what it held. */
static AfutEvent *shutdown_event;
static AfutLock *shutdown_lock;
static AfutSemaphore *shutdown_sem;
static AfutCondition *shutdown_cond;
static AfutQueue *shutdown_queue;
static AfutQueue *shutdown_empty;

static void
shutdown_main (AfutTask *task)
{
  AFUT_BEGIN (task);
  shutdown_event = afut_event_new (NULL);
  shutdown_lock = afut_lock_new (NULL);
  shutdown_sem = afut_semaphore_new (NULL, 0);
  shutdown_cond = afut_condition_new (NULL, NULL);
  shutdown_queue = afut_queue_new (NULL, AFUT_QUEUE_LIFO, 1, NULL,
                                   item_destroy);
  shutdown_empty = afut_queue_new (NULL, AFUT_QUEUE_FIFO, 0, NULL,
                                   item_destroy);
  AFUT_AWAIT (task, afut_lock_acquire (shutdown_lock));
  AFUT_AWAIT (task, afut_queue_put (shutdown_queue, item_new ("kept")));
  afut_future_unref (op_awaiter_new (NULL, "event",
                                     afut_event_wait (shutdown_event)));
  afut_future_unref (op_awaiter_new (NULL, "lock",
                                     afut_lock_acquire (shutdown_lock)));
  afut_future_unref (op_awaiter_new (NULL, "sem",
                                     afut_semaphore_acquire (shutdown_sem)));
  afut_future_unref (op_awaiter_new (NULL, "put",
                                     afut_queue_put (shutdown_queue,
                                                     item_new ("blocked"))));
  afut_future_unref (op_awaiter_new (NULL, "get",
                                     afut_queue_get (shutdown_empty)));
  afut_future_unref (op_awaiter_new (NULL, "join",
                                     afut_queue_join (shutdown_queue)));
  afut_future_unref (afut_task_new (NULL, cond_waiter, sizeof (CondWaiter),
                                    &(CondWaiter){ .cond = shutdown_cond,
                                                   .name = "cond" },
                                    "cond", NULL));
  /* Let them all start waiting. */
  AFUT_YIELD (task);
  AFUT_YIELD (task);
  ev ("main:return");
  AFUT_END (task);
}

static void
test_shutdown_with_pending_operations (void)
{
  g_string_truncate (events, 0);
  n_destroyed = n_freed = n_created = 0;
  g_setenv ("AFUT_CLOCK", "virtual", TRUE);
  g_assert_cmpint (AFUT_RUN (AfutTask, shutdown_main), ==, 0);
  g_unsetenv ("AFUT_CLOCK");
  /* asyncio.run() cancels the tasks left in creation order, afut in its
   * own: each one's line is checked, not their order. */
  g_assert_true (g_str_has_prefix (events->str, "cond:wait main:return "));
  g_assert_nonnull (strstr (events->str, "event:cancelled:"));
  g_assert_nonnull (strstr (events->str, "lock:cancelled:"));
  g_assert_nonnull (strstr (events->str, "sem:cancelled:"));
  g_assert_nonnull (strstr (events->str, "put:cancelled:"));
  g_assert_nonnull (strstr (events->str, "get:cancelled:"));
  g_assert_nonnull (strstr (events->str, "join:cancelled:"));
  g_assert_nonnull (strstr (events->str, "cond:cancelled:[]@0:locked1"));
  /* The blocked put's item went with it. */
  g_assert_cmpuint (n_destroyed, ==, 1);
  g_assert_false (afut_condition_is_locked (shutdown_cond));
  afut_event_unref (shutdown_event);
  afut_lock_unref (shutdown_lock);
  afut_semaphore_unref (shutdown_sem);
  afut_condition_unref (shutdown_cond);
  afut_queue_unref (shutdown_queue);
  afut_queue_unref (shutdown_empty);
  g_assert_cmpuint (n_destroyed, ==, 2);
  g_assert_cmpuint (n_created, ==, 2);
}

/* An object outliving its loop: operations report the closed loop
 * instead of touching freed memory. */
static void
test_object_outlives_loop (void)
{
  AfutLoop *loop = loop_new ();
  AfutLock *lock = afut_lock_new (loop);
  AfutQueue *q = afut_queue_new (loop, AFUT_QUEUE_FIFO, 0, NULL,
                                 item_destroy);

  afut_loop_unref (loop);
  expect_log_begin (AFUT_LOG_CRITICAL, "the loop is closed");
  g_assert_null (afut_lock_acquire (lock));
  /* The put takes its item even when it fails: freed. */
  g_assert_null (afut_queue_put (q, item_new ("late")));
  g_assert_cmpuint (expect_log_end (), ==, 2);
  g_assert_cmpuint (n_destroyed, ==, 1);
  g_assert_true (afut_queue_put_nowait (q, item_new ("kept")));
  afut_lock_unref (lock);
  afut_queue_unref (q); /* the last thing holding the loop's memory */
  g_assert_cmpuint (n_destroyed, ==, 2);
}

/* ---- properties under random load ---- */

/* Random actors lock, acquire, wait, put, get and notify, with random
 * sleeps, while a chaos task cancels them at random; then the loop shuts
 * down with whatever is left pending.  Checked: every operation's future
 * completes exactly once; the lock has at most one holder and the
 * semaphore at most its value; every item made is freed exactly once
 * (by the getter or by item_destroy); nothing leaks (valgrind/ASan). */
typedef struct
{
  AfutFuture *future;
  unsigned n_done;
} OpRecord;

typedef struct
{
  GRand *rand;
  AfutEvent *event;
  AfutLock *lock;
  AfutSemaphore *sem;
  AfutCondition *cond;
  AfutQueue *queue;
  GPtrArray *ops; /* OpRecord *, owning a reference */
  GPtrArray *actors;
  int lock_holders;
  int sem_holders;
  int cond_value;
} Stress;

static Stress stress;

static void
op_done (AfutFuture *future, void *data)
{
  OpRecord *r = (OpRecord *) data;
  g_assert_true (r->future == future);
  g_assert_true (afut_future_is_done (future));
  r->n_done++;
}

static AfutFuture *
track (AfutFuture *future)
{
  OpRecord *r = g_new0 (OpRecord, 1);
  g_assert_nonnull (future);
  r->future = afut_future_ref (future);
  afut_future_add_done_callback (future, op_done, r);
  g_ptr_array_add (stress.ops, r);
  return future;
}

static double
random_delay (void)
{
  return g_rand_int_range (stress.rand, 0, 4) * 0.25;
}

static int
str_compare (const void *a, const void *b)
{
  return strcmp ((const char *) a, (const char *) b);
}

static bool
cond_value_reached (void *data)
{
  return stress.cond_value >= GPOINTER_TO_INT (data);
}

typedef struct
{
  AfutTask task;
  int round;
  int op;
  int target;
} Actor;

static void
actor (AfutTask *task)
{
  Actor *self = (Actor *) task;
  void *item;
  AFUT_BEGIN (task);
  for (self->round = 0; self->round < 6; self->round++)
    {
      self->op = g_rand_int_range (stress.rand, 0, 8);
      if (self->op == 0)
        {
          AFUT_AWAIT (task, track (afut_lock_acquire (stress.lock)));
          g_assert_cmpint (++stress.lock_holders, ==, 1);
          AFUT_AWAIT_TRY (task, afut_sleep (random_delay ()));
          stress.lock_holders--;
          g_assert_true (afut_lock_release (stress.lock));
          if (afut_task_caught (task) != NULL)
            AFUT_RERAISE (task);
        }
      else if (self->op == 1)
        {
          AFUT_AWAIT (task, track (afut_semaphore_acquire (stress.sem)));
          g_assert_cmpint (++stress.sem_holders, <=, 2);
          AFUT_AWAIT_TRY (task, afut_sleep (random_delay ()));
          stress.sem_holders--;
          g_assert_true (afut_semaphore_release (stress.sem));
          if (afut_task_caught (task) != NULL)
            AFUT_RERAISE (task);
        }
      else if (self->op == 2)
        {
          if (g_rand_boolean (stress.rand))
            afut_event_set (stress.event);
          else
            afut_event_clear (stress.event);
          AFUT_AWAIT (task, track (afut_event_wait (stress.event)));
        }
      else if (self->op == 3 || self->op == 4)
        {
          AFUT_AWAIT (task, track (afut_queue_put (stress.queue,
                                                   item_new ("item"))));
        }
      else if (self->op == 5)
        {
          AFUT_AWAIT (task, track (afut_queue_get (stress.queue)));
          item = afut_future_steal_pointer (afut_task_awaited (task));
          g_assert_cmpstr (item, ==, "item");
          item_free (item);
          afut_queue_task_done (stress.queue);
        }
      else if (self->op == 6)
        {
          AFUT_AWAIT (task, track (afut_condition_acquire (stress.cond)));
          self->target = stress.cond_value + 1;
          AFUT_AWAIT_TRY (task,
                          track (afut_condition_wait_for (
                            stress.cond, cond_value_reached,
                            GINT_TO_POINTER (self->target))));
          /* Locked again, whatever happened. */
          g_assert_true (afut_condition_is_locked (stress.cond));
          afut_condition_release (stress.cond);
          if (afut_task_caught (task) != NULL)
            AFUT_RERAISE (task);
        }
      else
        {
          AFUT_AWAIT (task, track (afut_condition_acquire (stress.cond)));
          stress.cond_value++;
          afut_condition_notify (stress.cond,
                                 (unsigned) g_rand_int_range (stress.rand, 1,
                                                              3));
          AFUT_AWAIT_TRY (task, afut_sleep (random_delay ()));
          afut_condition_release (stress.cond);
          if (afut_task_caught (task) != NULL)
            AFUT_RERAISE (task);
        }
      AFUT_AWAIT (task, afut_sleep (random_delay ()));
    }
  AFUT_END (task);
}

typedef struct
{
  AfutTask task;
  int i;
} Chaos;

static void
chaos (AfutTask *task)
{
  Chaos *self = (Chaos *) task;
  AFUT_BEGIN (task);
  for (self->i = 0; self->i < 40; self->i++)
    {
      AFUT_AWAIT (task, afut_sleep (random_delay ()));
      afut_future_cancel (g_ptr_array_index (
                            stress.actors,
                            g_rand_int_range (stress.rand, 0,
                                              (gint32) stress.actors->len)),
                          "chaos");
    }
  AFUT_END (task);
}

static void
test_random_load (void)
{
  guint32 seed;
  for (seed = 1; seed <= 12; seed++)
    {
      AfutLoop *loop = loop_new ();
      AfutFuture *c;
      guint i, n_pending_at_end = 0;

      memset (&stress, 0, sizeof stress);
      stress.rand = g_rand_new_with_seed (seed);
      stress.event = afut_event_new (loop);
      stress.lock = afut_lock_new (loop);
      stress.sem = afut_semaphore_new (loop, 2);
      stress.cond = afut_condition_new (loop, NULL);
      stress.queue = afut_queue_new (loop,
                                     (AfutQueueKind) (seed % 3),
                                     seed % 4, str_compare, item_destroy);
      stress.ops = g_ptr_array_new ();
      stress.actors = g_ptr_array_new_with_free_func (
        (GDestroyNotify) afut_future_unref);
      for (i = 0; i < 30; i++)
        g_ptr_array_add (stress.actors,
                         afut_task_new (loop, actor, sizeof (Actor), NULL,
                                        NULL, NULL));
      c = afut_task_new (loop, chaos, sizeof (Chaos), NULL, "chaos", NULL);
      run_until_complete (loop, c);
      assert_state (c, AFUT_FUTURE_DONE);
      afut_future_unref (c);
      for (i = 0; i < stress.ops->len; i++)
        {
          OpRecord *r = (OpRecord *) g_ptr_array_index (stress.ops, i);
          if (!afut_future_is_done (r->future))
            n_pending_at_end++;
        }
      /* What is still pending ends in the shutdown. */
      afut_loop_shutdown (loop);
      for (i = 0; i < stress.ops->len; i++)
        {
          OpRecord *r = (OpRecord *) g_ptr_array_index (stress.ops, i);
          g_assert_true (afut_future_is_done (r->future));
          g_assert_cmpuint (r->n_done, ==, 1);
          afut_future_unref (r->future);
          g_free (r);
        }
      g_test_message ("seed %u: %u operations, %u pending at the end", seed,
                      stress.ops->len, n_pending_at_end);
      g_assert_cmpint (stress.lock_holders, ==, 0);
      g_assert_cmpint (stress.sem_holders, ==, 0);
      g_assert_false (afut_lock_is_locked (stress.lock));
      g_assert_cmpuint (afut_semaphore_get_value (stress.sem), ==, 2);
      g_assert_false (afut_condition_is_locked (stress.cond));
      g_ptr_array_free (stress.ops, TRUE);
      g_ptr_array_free (stress.actors, TRUE);
      afut_event_unref (stress.event);
      afut_lock_unref (stress.lock);
      afut_semaphore_unref (stress.sem);
      afut_condition_unref (stress.cond);
      afut_queue_unref (stress.queue);
      g_rand_free (stress.rand);
      g_assert_cmpuint (n_created, ==, n_freed + n_destroyed);
      loop_free (loop);
    }
}

/* ---- bad arguments ---- */

static void
test_bad_arguments (void)
{
  AfutLoop *loop = loop_new ();
  AfutLoop *other = afut_loop_new (AFUT_LOOP_VIRTUAL_CLOCK);
  AfutLock *other_lock = afut_lock_new (other);
  AfutQueue *q = afut_queue_new (loop, AFUT_QUEUE_FIFO, 0, NULL, NULL);
  void *item = NULL;

  expect_log_begin (AFUT_LOG_CRITICAL, "assertion");
  g_assert_null (afut_event_ref (NULL));
  afut_event_set (NULL);
  afut_event_clear (NULL);
  g_assert_false (afut_event_is_set (NULL));
  g_assert_null (afut_event_wait (NULL));
  g_assert_null (afut_lock_ref (NULL));
  g_assert_null (afut_lock_acquire (NULL));
  g_assert_false (afut_lock_release (NULL));
  g_assert_false (afut_lock_is_locked (NULL));
  g_assert_null (afut_semaphore_ref (NULL));
  g_assert_null (afut_semaphore_acquire (NULL));
  g_assert_false (afut_semaphore_release (NULL));
  g_assert_false (afut_semaphore_is_locked (NULL));
  g_assert_cmpuint (afut_semaphore_get_value (NULL), ==, 0);
  g_assert_null (afut_condition_ref (NULL));
  g_assert_null (afut_condition_acquire (NULL));
  g_assert_false (afut_condition_release (NULL));
  g_assert_false (afut_condition_is_locked (NULL));
  g_assert_null (afut_condition_wait (NULL));
  g_assert_null (afut_condition_wait_for (NULL, always, NULL));
  g_assert_false (afut_condition_notify (NULL, 1));
  g_assert_false (afut_condition_notify_all (NULL));
  g_assert_null (afut_queue_ref (NULL));
  g_assert_null (afut_queue_put (NULL, &item));
  g_assert_false (afut_queue_put_nowait (NULL, &item));
  g_assert_null (afut_queue_get (NULL));
  g_assert_false (afut_queue_get_nowait (NULL, &item));
  g_assert_false (afut_queue_task_done (NULL));
  g_assert_null (afut_queue_join (NULL));
  g_assert_cmpuint (afut_queue_get_size (NULL), ==, 0);
  g_assert_cmpuint (afut_queue_get_maxsize (NULL), ==, 0);
  g_assert_true (afut_queue_is_empty (NULL));
  g_assert_false (afut_queue_is_full (NULL));
  g_assert_cmpuint (expect_log_end (), ==, 33);

  expect_log_begin (AFUT_LOG_CRITICAL, "assertion");
  {
    AfutCondition *cond = afut_condition_new (loop, NULL);
    g_assert_null (afut_condition_wait_for (cond, NULL, NULL));
    afut_condition_unref (cond);
  }
  g_assert_false (afut_queue_get_nowait (q, NULL));
  g_assert_null (afut_queue_new (loop, AFUT_QUEUE_PRIORITY, 0, NULL, NULL));
  g_assert_null (afut_queue_new (loop, (AfutQueueKind) 7, 0, NULL, NULL));
  g_assert_cmpuint (expect_log_end (), ==, 4);

  /* asyncio: "is bound to a different event loop" */
  expect_log_begin (AFUT_LOG_CRITICAL, "bound to a different loop");
  g_assert_null (afut_condition_new (loop, other_lock));
  g_assert_cmpuint (expect_log_end (), ==, 1);

  /* No loop given, none running. */
  expect_log_begin (AFUT_LOG_CRITICAL, "no running loop");
  g_assert_null (afut_event_new (NULL));
  g_assert_null (afut_lock_new (NULL));
  g_assert_null (afut_semaphore_new (NULL, 1));
  g_assert_null (afut_bounded_semaphore_new (NULL, 1));
  g_assert_null (afut_condition_new (NULL, NULL));
  g_assert_null (afut_queue_new (NULL, AFUT_QUEUE_FIFO, 0, NULL, NULL));
  g_assert_cmpuint (expect_log_end (), ==, 6);

  /* Unref of NULL is ignored, as afut_future_unref's. */
  afut_event_unref (NULL);
  afut_lock_unref (NULL);
  afut_semaphore_unref (NULL);
  afut_condition_unref (NULL);
  afut_queue_unref (NULL);

  afut_queue_unref (q);
  afut_lock_unref (other_lock);
  afut_loop_unref (other);
  loop_free (loop);
}

int
main (int argc, char **argv)
{
  int status;

  g_test_init (&argc, &argv, NULL);
  events = g_string_new (NULL);
  lines = g_string_new (NULL);
  (void) line; /* event-log.h's program output; this suite logs events */
  reports = g_ptr_array_new_with_free_func (g_free);
  afut_set_log_func (test_log_func, NULL);

  g_test_add_func ("/sync/event/set-wakes-all", test_event_set_wakes_all);
  g_test_add_func ("/sync/event/wait-set-no-suspend",
                   test_event_wait_set_no_suspend);
  g_test_add_func ("/sync/event/wait-cancelled", test_event_wait_cancelled);
  g_test_add_func ("/sync/lock/fifo", test_lock_fifo);
  g_test_add_func ("/sync/lock/cancelled-waiter-skipped",
                   test_lock_cancelled_waiter_skipped);
  g_test_add_func ("/sync/lock/woken-cancelled-passes-on",
                   test_lock_woken_cancelled_passes_on);
  g_test_add_func ("/sync/lock/late-arrival-queues",
                   test_lock_late_arrival_queues);
  g_test_add_func ("/sync/lock/cancelled-waiters-only",
                   test_lock_cancelled_waiters_only);
  g_test_add_func ("/sync/lock/release-unlocked", test_lock_release_unlocked);
  g_test_add_func ("/sync/semaphore/counts", test_semaphore_counts);
  g_test_add_func ("/sync/semaphore/woken-cancelled-passes-on",
                   test_semaphore_woken_cancelled_passes_on);
  g_test_add_func ("/sync/semaphore/late-arrival-queues",
                   test_semaphore_late_arrival_queues);
  g_test_add_func ("/sync/semaphore/cancelled-waiters-only",
                   test_semaphore_cancelled_waiters_only);
  g_test_add_func ("/sync/semaphore/woken-waiter-counts",
                   test_semaphore_woken_waiter_counts);
  g_test_add_func ("/sync/semaphore/bounded-over-release",
                   test_semaphore_bounded_over_release);
  g_test_add_func ("/sync/condition/notify", test_condition_notify);
  g_test_add_func ("/sync/condition/wait-for", test_condition_wait_for);
  g_test_add_func ("/sync/condition/cancel-reacquires",
                   test_condition_cancel_reacquires);
  g_test_add_func ("/sync/condition/cancel-while-reacquiring",
                   test_condition_cancel_while_reacquiring);
  g_test_add_func ("/sync/condition/cancel-passes-notification-on",
                   test_condition_cancel_passes_notification_on);
  g_test_add_func ("/sync/condition/cancel-unnotified",
                   test_condition_cancel_unnotified);
  g_test_add_func ("/sync/condition/without-lock",
                   test_condition_without_lock);
  g_test_add_func ("/sync/queue/orders", test_queue_orders);
  g_test_add_func ("/sync/queue/priority-heap", test_queue_priority_heap);
  g_test_add_func ("/sync/queue/compare-reentry-refused",
                   test_queue_compare_reentry_refused);
  g_test_add_func ("/sync/queue/nowait-full-empty",
                   test_queue_nowait_full_empty);
  g_test_add_func ("/sync/queue/maxsize-backpressure",
                   test_queue_maxsize_backpressure);
  g_test_add_func ("/sync/queue/join-task-done", test_queue_join_task_done);
  g_test_add_func ("/sync/queue/get-woken-cancelled-keeps-item",
                   test_queue_get_woken_cancelled_keeps_item);
  g_test_add_func ("/sync/queue/put-woken-cancelled-passes-on",
                   test_queue_put_woken_cancelled_passes_on);
  g_test_add_func ("/sync/queue/put-cancelled-while-full",
                   test_queue_put_cancelled_while_full);
  g_test_add_func ("/sync/queue/put-never-awaited",
                   test_queue_put_never_awaited);
  g_test_add_func ("/sync/wait-for/timeouts", test_wait_for_timeouts);
  g_test_add_func ("/sync/lifetime/unref-while-pending",
                   test_unref_while_pending);
  g_test_add_func ("/sync/lifetime/shutdown-with-pending-operations",
                   test_shutdown_with_pending_operations);
  g_test_add_func ("/sync/lifetime/object-outlives-loop",
                   test_object_outlives_loop);
  g_test_add_func ("/sync/property/random-load", test_random_load);
  g_test_add_func ("/sync/bad-input/arguments", test_bad_arguments);

  status = g_test_run ();
  afut_set_log_func (NULL, NULL);
  g_string_free (events, TRUE);
  g_string_free (lines, TRUE);
  g_ptr_array_unref (reports);
  return status;
}
