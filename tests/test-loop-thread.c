/* test-loop-thread.c - the loop's thread (issue 13, section 2).
 *
 *   wrong thread     a loop-only function called from a thread that is
 *                    not the loop's does nothing but report a critical
 *                    naming itself and the call to use instead; before,
 *                    a resolve from a worker left the loop asleep
 *   every entry      the table: every loop-only entry point of afut.h,
 *                    called from a worker, reports with its own name
 *   hand-over        what keeps working: a loop made on one thread and
 *                    run on another, a last unref where nobody runs the
 *                    loop, the leftovers of a closed loop from any thread
 *
 * The cases that could hang run in a subprocess with a timeout.
 */
#define AFUT_IMPLEMENTATION
#include "afut.h"

#include <glib.h>

#include <string.h>
#include <unistd.h>

#define WRONG_THREAD "called from a thread that is not the loop's"

/* ---- what afut logged, from any thread ---- */

#include "capture-log.h"

/* ---- helpers ---- */

typedef gpointer (*WorkerFunc) (gpointer data);

static void
run_on_worker (WorkerFunc func, gpointer data)
{
  g_thread_join (g_thread_new ("worker", func, data));
}

typedef struct
{
  AfutTask task;
  AfutFuture *awaited; /* not owned */
  AfutTimeout timeout;
  AfutTaskGroup *group;
  gboolean cancelled;
  GThread *ended_on;
} Waiter;

/* Opens a task group and a timeout, then waits on ->awaited. */
static void
waiter_step (AfutTask *task)
{
  Waiter *self = (Waiter *) task;
  AFUT_BEGIN (task);
  self->group = afut_task_group_new (task);
  afut_timeout_enter (task, &self->timeout, 3600.0);
  AFUT_AWAIT_TRY (task, afut_future_ref (self->awaited));
  self->cancelled = afut_error_is_cancelled (afut_task_caught (task));
  self->ended_on = g_thread_self ();
  afut_timeout_exit (&self->timeout);
  AFUT_AWAIT (task, afut_task_group_exit (self->group));
  AFUT_END (task);
}

static void
nop_step (AfutTask *task)
{
  AFUT_BEGIN (task);
  AFUT_END (task);
}

static void
nop_call (void *data)
{
  (void) data;
}

static void
nop_callback (AfutFuture *future, void *data)
{
  (void) future;
  (void) data;
}

static void
nop_foreach (AfutTask *task, void *data)
{
  (void) task;
  (void) data;
}

static bool
always (void *data)
{
  (void) data;
  return true;
}

static const AfutFutureFuncs custom_funcs = { NULL, NULL };

/* ---- wrong thread: each kind of entry point, in a subprocess ---- */

typedef struct
{
  AfutLoop *loop;
  AfutFuture *future; /* the worker's reference */
  gboolean plain_result;
  gboolean threadsafe_result;
  AfutFuture *made;
  gboolean iterate_result;
  GThreadFunc worker_func;
  GThread *thread;
} Remote;

static void
start_worker (void *data)
{
  Remote *r = (Remote *) data;
  r->thread = g_thread_new ("worker", r->worker_func, r);
}

/* The case: a worker resolves with the loop-only call while the
 * loop waits in run_until_complete.  It must be refused (before, it set
 * the state from the wrong thread and never woke the loop: a hang); the
 * worker then does it right. */
static gpointer
resolve_from_worker (gpointer data)
{
  Remote *r = (Remote *) data;
  r->plain_result = afut_future_resolve_int (r->future, 7);
  if (!r->plain_result)
    r->threadsafe_result = afut_future_resolve_int_threadsafe (r->future, 7);
  return NULL;
}

static void
test_resolve_while_running (void)
{
  if (g_test_subprocess ())
    {
      Remote r = { 0 };
      r.loop = afut_loop_new (AFUT_LOOP_VIRTUAL_CLOCK);
      r.future = afut_future_new (r.loop);
      afut_future_ref (r.future);
      r.worker_func = resolve_from_worker;
      afut_loop_call_soon (r.loop, start_worker, &r);
      g_assert_true (afut_loop_run_until_complete (r.loop, r.future));
      g_thread_join (r.thread);
      g_assert_false (r.plain_result);
      g_assert_true (r.threadsafe_result);
      g_assert_cmpint (afut_future_get_int (r.future), ==, 7);
      afut_future_unref (r.future);
      afut_loop_unref (r.loop);
      return;
    }
  g_test_trap_subprocess (NULL, 20 * G_USEC_PER_SEC, G_TEST_SUBPROCESS_DEFAULT);
  g_test_trap_assert_passed ();
  g_test_trap_assert_stderr (
    "*afut-CRITICAL **: afut_future_resolve_int: " WRONG_THREAD
    "; use afut_future_resolve_int_threadsafe() instead\n*");
}

/* A creation call (here a future of a loop given by a worker that pushed
 * it as its default, as AFUT_SPAWN would use it) is refused too. */
static gpointer
create_from_worker (gpointer data)
{
  Remote *r = (Remote *) data;
  afut_loop_push_thread_default (r->loop);
  r->made = afut_future_new (NULL);
  afut_loop_pop_thread_default (r->loop);
  return NULL;
}

static void
test_create_from_worker (void)
{
  if (g_test_subprocess ())
    {
      Remote r = { 0 };
      r.loop = afut_loop_new (AFUT_LOOP_VIRTUAL_CLOCK);
      run_on_worker (create_from_worker, &r);
      g_assert_null (r.made);
      afut_loop_unref (r.loop);
      return;
    }
  g_test_trap_subprocess (NULL, 20 * G_USEC_PER_SEC, G_TEST_SUBPROCESS_DEFAULT);
  g_test_trap_assert_passed ();
  g_test_trap_assert_stderr ("*afut-CRITICAL **: afut_future_new: "
                             WRONG_THREAD "; call it on the loop's thread*");
}

/* A run call from a worker while the loop runs on its own thread. */
static gpointer
iterate_from_worker (gpointer data)
{
  Remote *r = (Remote *) data;
  r->iterate_result = afut_loop_iterate (r->loop, FALSE);
  r->threadsafe_result = afut_future_resolve_threadsafe (r->future);
  return NULL;
}

static void
test_run_while_running_elsewhere (void)
{
  if (g_test_subprocess ())
    {
      Remote r = { 0 };
      r.loop = afut_loop_new (AFUT_LOOP_VIRTUAL_CLOCK);
      r.future = afut_future_new (r.loop);
      afut_future_ref (r.future);
      /* Started from inside the run: the loop runs on this thread. */
      r.worker_func = iterate_from_worker;
      afut_loop_call_soon (r.loop, start_worker, &r);
      g_assert_true (afut_loop_run_until_complete (r.loop, r.future));
      g_thread_join (r.thread);
      g_assert_false (r.iterate_result);
      g_assert_true (r.threadsafe_result);
      afut_future_unref (r.future);
      afut_loop_unref (r.loop);
      return;
    }
  g_test_trap_subprocess (NULL, 20 * G_USEC_PER_SEC, G_TEST_SUBPROCESS_DEFAULT);
  g_test_trap_assert_passed ();
  g_test_trap_assert_stderr ("*afut-CRITICAL **: afut_loop_iterate: "
                             WRONG_THREAD ": the loop runs on another "
                             "thread\n*");
}

/* ---- hand-over: what keeps working ---- */

typedef struct
{
  AfutLoop *loop;
  AfutFuture *task;
  AfutFuture *never; /* what the task awaits */
  gboolean ran;
} HandOver;

static gpointer
run_on_this_thread (gpointer data)
{
  HandOver *h = (HandOver *) data;
  /* The loop was made on the main thread: its first run here makes it
   * this thread's; everything after is legitimate here. */
  h->ran = afut_loop_run_until_complete (h->loop, h->task);
  afut_future_unref (h->task);
  afut_loop_unref (h->loop);
  return NULL;
}

static void
test_made_here_run_there (void)
{
  HandOver h = { 0 };
  char *log;
  capture_begin ();
  h.loop = afut_loop_new (AFUT_LOOP_VIRTUAL_CLOCK);
  h.task = afut_task_new (h.loop, nop_step, sizeof (AfutTask), NULL, "nop",
                          NULL);
  run_on_worker (run_on_this_thread, &h);
  g_assert_true (h.ran);
  log = capture_end ();
  g_assert_cmpstr (log, ==, "");
  g_free (log);
}

static gpointer
last_unref_here (gpointer data)
{
  HandOver *h = (HandOver *) data;
  afut_loop_unref (h->loop);
  return NULL;
}

/* Nobody runs the loop: the last unref on a worker shuts it down there,
 * as a run there would (the task is cancelled and ends on the worker). */
static void
test_last_unref_on_idle_loop (void)
{
  HandOver h = { 0 };
  Waiter *w;
  char *log;
  capture_begin ();
  h.loop = afut_loop_new (AFUT_LOOP_VIRTUAL_CLOCK);
  h.never = afut_future_new (h.loop);
  h.task = afut_task_new (h.loop, waiter_step, sizeof (Waiter),
                          &(Waiter){ .awaited = h.never }, "waiter", NULL);
  w = (Waiter *) h.task;
  g_assert_true (afut_loop_iterate (h.loop, FALSE));
  run_on_worker (last_unref_here, &h);
  g_assert_true (w->cancelled);
  g_assert_true (w->ended_on != g_thread_self ());
  g_assert_true (afut_future_is_done (h.task));
  /* The loop is closed: its leftovers go from any thread. */
  afut_future_unref (h.task);
  afut_future_unref (h.never);
  log = capture_end ();
  g_assert_cmpstr (log, ==, "");
  g_free (log);
}

/* After a worker ran the loop, the loop is the worker's; the main thread
 * takes it back by running it. */
static void
test_take_back_by_running (void)
{
  HandOver h = { 0 };
  AfutFuture *f;
  char *log;
  capture_begin ();
  h.loop = afut_loop_new (AFUT_LOOP_VIRTUAL_CLOCK);
  f = afut_future_new (h.loop);
  h.task = afut_task_new (h.loop, nop_step, sizeof (AfutTask), NULL, "nop",
                          NULL);
  afut_loop_ref (h.loop);
  run_on_worker (run_on_this_thread, &h);
  g_assert_false (afut_future_is_done (f)); /* refused: the worker's now */
  log = capture_end ();
  g_assert_nonnull (strstr (log, "afut_future_is_done: " WRONG_THREAD));
  g_free (log);
  capture_begin ();
  g_assert_true (afut_loop_iterate (h.loop, FALSE));
  g_assert_false (afut_future_is_done (f));
  afut_future_unref (f);
  afut_loop_unref (h.loop);
  log = capture_end ();
  g_assert_cmpstr (log, ==, "");
  g_free (log);
}

/* ---- any thread: references to futures ---- */

static gpointer
refs_from_worker (gpointer data)
{
  Remote *r = (Remote *) data;
  /* A binding's pattern: a reference for the _threadsafe call, taken
   * here; and one taken and dropped, as a garbage collector would. */
  afut_future_ref (r->future);
  afut_future_ref (r->future);
  afut_future_unref (r->future);
  r->threadsafe_result = afut_future_resolve_int_threadsafe (
    afut_future_ref (r->future), 5);
  return NULL;
}

static void
test_future_refs_from_any_thread (void)
{
  Remote r = { 0 };
  char *log;
  capture_begin ();
  r.loop = afut_loop_new (AFUT_LOOP_VIRTUAL_CLOCK);
  r.future = afut_future_new (r.loop);
  run_on_worker (refs_from_worker, &r);
  g_assert_true (r.threadsafe_result);
  /* Applied on the loop's thread, in order, not on the worker. */
  g_assert_cmpuint (r.future->ref_count, ==, 1);
  g_assert_false (afut_future_is_done (r.future));
  g_assert_true (afut_loop_iterate (r.loop, FALSE));
  g_assert_cmpint (afut_future_get_int (r.future), ==, 5);
  g_assert_cmpuint (r.future->ref_count, ==, 2); /* ours, the worker's */
  afut_future_unref (r.future);
  afut_future_unref (r.future);
  afut_loop_unref (r.loop);
  log = capture_end ();
  g_assert_cmpstr (log, ==, "");
  g_free (log);
}

/* ---- every loop-only entry point, from a worker ---- */

typedef struct
{
  AfutLoop *loop;
  AfutFuture *pending, *done, *failed, *task, *gather, *wait, *iterator;
  Waiter *waiter;
  AfutEvent *event;
  AfutLock *lock;
  AfutSemaphore *semaphore;
  AfutCondition *condition;
  AfutQueue *queue;
  AfutError *error; /* handed to a refused call: still ours */
  AfutFdWatch watch;
  int fds[2];
  char buffer[8];
  void *item;
  AfutExceptionContext context;
} Fixture;

typedef struct
{
  const char *name;
  const char *instead; /* the _threadsafe call named, or NULL */
  void (*call) (Fixture *x);
  gboolean consumes; /* takes a reference to ->pending */
} Entry;

/* One entry: a function that makes the call, and its table row. */
#define E(fn, body)                                                           \
  static void call_##fn (Fixture *x)                                          \
  {                                                                           \
    (void) x;                                                                 \
    body;                                                                     \
  }
#define P (x->pending)

/* A refused fiber call leaves its user data alone: never destroyed. */
static void
fail_destroy (void *data)
{
  (void) data;
  g_assert_not_reached ();
}

static AfutFuture *
nop_fiber (void *data)
{
  (void) data;
  return NULL;
}

E (afut_loop_time_ns, afut_loop_time_ns (x->loop))
E (afut_loop_time, afut_loop_time (x->loop))
E (afut_loop_call_soon, afut_loop_call_soon (x->loop, nop_call, NULL))
E (afut_loop_hold, afut_loop_hold (x->loop))
E (afut_loop_release, afut_loop_release (x->loop))
E (afut_loop_get_n_tasks, afut_loop_get_n_tasks (x->loop))
E (afut_loop_set_exception_handler,
   afut_loop_set_exception_handler (x->loop, NULL, NULL))
E (afut_loop_set_exception_handler_full,
   afut_loop_set_exception_handler_full (x->loop, NULL, NULL, NULL))
E (afut_loop_call_exception_handler,
   afut_loop_call_exception_handler (x->loop, &x->context))
E (afut_loop_fd_ready, afut_loop_fd_ready (x->loop, &x->watch, AFUT_IO_IN))
E (afut_loop_call_soon_full,
   afut_loop_call_soon_full (x->loop, nop_call, NULL, NULL))
E (afut_loop_call_later_full, afut_future_unref (afut_loop_call_later_full (
                                x->loop, 1.0, nop_call, NULL, NULL)))
E (afut_loop_call_at_full, afut_future_unref (afut_loop_call_at_full (
                             x->loop, 1.0, nop_call, NULL, NULL)))
E (afut_loop_call_later, afut_future_unref (afut_loop_call_later (
                           x->loop, 1.0, nop_call, NULL)))
E (afut_loop_call_at,
   afut_future_unref (afut_loop_call_at (x->loop, 1.0, nop_call, NULL)))
E (afut_loop_foreach_task, afut_loop_foreach_task (x->loop, nop_foreach, NULL))
E (afut_loop_print_tasks, afut_loop_print_tasks (x->loop, NULL))
E (afut_loop_sleep, afut_loop_sleep (x->loop, 1.0))
E (afut_loop_fd_wait, afut_loop_fd_wait (x->loop, x->fds[0], AFUT_IO_IN))
E (afut_future_new, afut_future_new (x->loop))
E (afut_future_new_custom,
   afut_future_new_custom (x->loop, &custom_funcs, sizeof (AfutCustomFuture)))
E (afut_future_get_state, afut_future_get_state (P))
E (afut_future_is_done, afut_future_is_done (P))
E (afut_future_is_cancelled, afut_future_is_cancelled (P))
E (afut_future_resolve, afut_future_resolve (P))
E (afut_future_resolve_pointer, afut_future_resolve_pointer (P, x, NULL))
E (afut_future_resolve_int, afut_future_resolve_int (P, 1))
E (afut_future_resolve_double, afut_future_resolve_double (P, 1.0))
E (afut_future_fail, afut_future_fail (P, x->error))
E (afut_future_cancel, afut_future_cancel (P, NULL))
E (afut_future_get_value_type, afut_future_get_value_type (x->done))
E (afut_future_get_pointer, afut_future_get_pointer (x->done))
E (afut_future_steal_pointer, afut_future_steal_pointer (x->done))
E (afut_future_get_int, afut_future_get_int (x->done))
E (afut_future_get_double, afut_future_get_double (x->done))
E (afut_future_get_error, afut_future_get_error (x->failed))
E (afut_future_add_done_callback,
   afut_future_add_done_callback (P, nop_callback, NULL))
E (afut_future_remove_done_callback,
   afut_future_remove_done_callback (P, nop_callback, NULL))
E (afut_future_get_n_sub_errors, afut_future_get_n_sub_errors (x->failed))
E (afut_future_get_sub_error, afut_future_get_sub_error (x->failed, 0))
E (afut_task_new,
   afut_task_new (x->loop, nop_step, sizeof (AfutTask), NULL, NULL, NULL))
E (afut_coro_new,
   afut_coro_new (x->loop, nop_step, sizeof (AfutTask), NULL, NULL, NULL))
E (afut_task_start, afut_task_start (x->task))
E (afut_future_get_task, afut_future_get_task (x->task))
E (afut_task_set_finalize, afut_task_set_finalize (&x->waiter->task, NULL))
E (afut_task_get_name, afut_task_get_name (&x->waiter->task))
E (afut_task_set_name, afut_task_set_name (&x->waiter->task, "renamed"))
E (afut_task_get_current, afut_task_get_current (x->loop))
E (afut_task_awaited, afut_task_awaited (&x->waiter->task))
E (afut_task_caught, afut_task_caught (&x->waiter->task))
E (afut_task_cancelling, afut_task_cancelling (&x->waiter->task))
E (afut_task_uncancel, afut_task_uncancel (&x->waiter->task))
E (afut_task_describe, afut_task_describe (&x->waiter->task, x->buffer,
                                           sizeof x->buffer))
E (afut_sleep, afut_sleep (1.0))
E (afut_gather, afut_gather (P, NULL))
E (afut_gather_return_exceptions, afut_gather_return_exceptions (P, NULL))
E (afut_gather_v, afut_gather_v (&P, 1))
E (afut_gather_return_exceptions_v, afut_gather_return_exceptions_v (&P, 1))
E (afut_gather_get_n_items, afut_gather_get_n_items (x->gather))
E (afut_gather_get_item, afut_gather_get_item (x->gather, 0))
E (afut_fd_wait, afut_fd_wait (x->fds[0], AFUT_IO_IN))
E (afut_fd_read, afut_fd_read (x->fds[0], x->buffer, 1))
E (afut_fd_read_exactly, afut_fd_read_exactly (x->fds[0], x->buffer, 1))
E (afut_fd_write_all, afut_fd_write_all (x->fds[1], x->buffer, 1))
E (afut_shield, afut_shield (P))
E (afut_wait_for, afut_wait_for (P, 1.0))
E (afut_wait, afut_wait (&P, 1, AFUT_WAIT_ALL_COMPLETED, AFUT_NO_TIMEOUT))
E (afut_wait_get_done, afut_wait_get_done (x->wait, 0, NULL))
E (afut_wait_get_pending, afut_wait_get_pending (x->wait, 0, NULL))
E (afut_as_completed, afut_as_completed (&P, 1, AFUT_NO_TIMEOUT))
E (afut_as_completed_next, afut_as_completed_next (x->iterator))
E (afut_race, afut_race (P, NULL))
E (afut_race_v, afut_race_v (&P, 1))
E (afut_any, afut_any (P, NULL))
E (afut_any_v, afut_any_v (&P, 1))
E (afut_timeout_enter,
   afut_timeout_enter (&x->waiter->task, &x->waiter->timeout, 1.0))
E (afut_timeout_enter_at,
   afut_timeout_enter_at (&x->waiter->task, &x->waiter->timeout, 1.0))
E (afut_timeout_reschedule, afut_timeout_reschedule (&x->waiter->timeout, 1.0))
E (afut_timeout_exit, afut_timeout_exit (&x->waiter->timeout))
E (afut_task_group_new, afut_task_group_new (&x->waiter->task))
E (afut_task_group_spawn, afut_task_group_spawn (x->waiter->group, P))
E (afut_task_group_exit, afut_task_group_exit (x->waiter->group))
E (afut_task_group_get_n_children,
   afut_task_group_get_n_children (x->waiter->group))
E (afut_event_new, afut_event_new (x->loop))
E (afut_event_ref, afut_event_ref (x->event))
E (afut_event_unref, afut_event_unref (x->event))
E (afut_event_set, afut_event_set (x->event))
E (afut_event_clear, afut_event_clear (x->event))
E (afut_event_is_set, afut_event_is_set (x->event))
E (afut_event_wait, afut_event_wait (x->event))
E (afut_lock_new, afut_lock_new (x->loop))
E (afut_lock_ref, afut_lock_ref (x->lock))
E (afut_lock_unref, afut_lock_unref (x->lock))
E (afut_lock_acquire, afut_lock_acquire (x->lock))
E (afut_lock_release, afut_lock_release (x->lock))
E (afut_lock_is_locked, afut_lock_is_locked (x->lock))
E (afut_semaphore_new, afut_semaphore_new (x->loop, 1))
E (afut_bounded_semaphore_new, afut_bounded_semaphore_new (x->loop, 1))
E (afut_semaphore_ref, afut_semaphore_ref (x->semaphore))
E (afut_semaphore_unref, afut_semaphore_unref (x->semaphore))
E (afut_semaphore_acquire, afut_semaphore_acquire (x->semaphore))
E (afut_semaphore_release, afut_semaphore_release (x->semaphore))
E (afut_semaphore_is_locked, afut_semaphore_is_locked (x->semaphore))
E (afut_semaphore_get_value, afut_semaphore_get_value (x->semaphore))
E (afut_condition_new, afut_condition_new (x->loop, NULL))
E (afut_condition_ref, afut_condition_ref (x->condition))
E (afut_condition_unref, afut_condition_unref (x->condition))
E (afut_condition_acquire, afut_condition_acquire (x->condition))
E (afut_condition_release, afut_condition_release (x->condition))
E (afut_condition_is_locked, afut_condition_is_locked (x->condition))
E (afut_condition_wait, afut_condition_wait (x->condition))
E (afut_condition_wait_for,
   afut_condition_wait_for (x->condition, always, NULL))
E (afut_condition_notify, afut_condition_notify (x->condition, 1))
E (afut_condition_notify_all, afut_condition_notify_all (x->condition))
E (afut_queue_new, afut_queue_new (x->loop, AFUT_QUEUE_FIFO, 0, NULL, NULL))
E (afut_queue_ref, afut_queue_ref (x->queue))
E (afut_queue_unref, afut_queue_unref (x->queue))
E (afut_queue_put, afut_queue_put (x->queue, x))
E (afut_queue_put_nowait, afut_queue_put_nowait (x->queue, x))
E (afut_queue_get, afut_queue_get (x->queue))
E (afut_queue_get_nowait, afut_queue_get_nowait (x->queue, &x->item))
E (afut_queue_task_done, afut_queue_task_done (x->queue))
E (afut_queue_join, afut_queue_join (x->queue))
E (afut_queue_get_size, afut_queue_get_size (x->queue))
E (afut_queue_get_maxsize, afut_queue_get_maxsize (x->queue))
E (afut_queue_is_empty, afut_queue_is_empty (x->queue))
E (afut_queue_is_full, afut_queue_is_full (x->queue))
E (afut_fiber_new, afut_fiber_new (nop_fiber, x, fail_destroy))
E (afut_fiber_new_full,
   afut_fiber_new_full (x->loop, NULL, nop_fiber, x, fail_destroy))
E (AFUT_FIBER, AFUT_FIBER (nop_fiber, x))
E (afut_await, afut_await (P))
E (afut_await_check, afut_await_check (P, NULL))
E (afut_await_int, afut_await_int (P, NULL))
E (afut_await_double, afut_await_double (P, NULL))
E (afut_await_pointer, afut_await_pointer (P, NULL))
E (afut_future_new_for_int, afut_future_new_for_int (1))
E (afut_future_new_for_double, afut_future_new_for_double (1.0))
E (afut_future_new_for_pointer, afut_future_new_for_pointer (x, fail_destroy))
E (afut_future_new_for_error, afut_future_new_for_error (x->error))
E (afut_timeout_exit_with_error,
   afut_timeout_exit_with_error (&x->waiter->timeout, NULL))

#undef P
#undef E

#define ROW(fn) { #fn, NULL, call_##fn, FALSE }
#define ROW_USE(fn, instead) { #fn, instead, call_##fn, FALSE }
#define ROW_CONSUMES(fn) { #fn, NULL, call_##fn, TRUE }

/* Not here, on purpose: the run calls (afut_loop_run_until_complete,
 * afut_loop_iterate, afut_loop_shutdown, afut_loop_dispatch,
 * afut_loop_prepare, the last afut_loop_unref), which make the calling
 * thread the loop's when nobody runs it (their refusal is tested above);
 * the calls of any thread (the _threadsafe ones, afut_loop_ref and
 * afut_loop_unref, afut_future_ref and afut_future_unref (tested below), afut_loop_wakeup, afut_loop_new, the thread-default
 * stack, afut_loop_get_running, afut_future_get_loop, the error and quark
 * functions, afut_run with its own loop); afut_timeout_when() and
 * afut_timeout_expired(), which read the caller's struct only; and the
 * private afut__task_* of the AFUT_* macros, which only a task's step
 * calls; afut_fiber_yield() and afut_fiber_get_current(), which know
 * only the calling thread's own running fiber (none, on a worker). */
static const Entry entries[] = {
  ROW (afut_loop_time_ns),
  ROW (afut_loop_time),
  ROW_USE (afut_loop_call_soon, "afut_loop_call_soon_threadsafe()"),
  ROW (afut_loop_hold),
  ROW (afut_loop_release),
  ROW (afut_loop_get_n_tasks),
  ROW (afut_loop_set_exception_handler),
  ROW (afut_loop_set_exception_handler_full),
  ROW (afut_loop_call_exception_handler),
  ROW (afut_loop_fd_ready),
  ROW_USE (afut_loop_call_soon_full, "afut_loop_call_soon_threadsafe()"),
  ROW (afut_loop_call_later_full),
  ROW (afut_loop_call_at_full),
  ROW (afut_loop_call_later),
  ROW (afut_loop_call_at),
  ROW (afut_loop_foreach_task),
  ROW (afut_loop_print_tasks),
  ROW (afut_loop_sleep),
  ROW (afut_loop_fd_wait),
  ROW (afut_future_new),
  ROW (afut_future_new_custom),
  ROW (afut_future_get_state),
  ROW (afut_future_is_done),
  ROW (afut_future_is_cancelled),
  ROW_USE (afut_future_resolve, "afut_future_resolve_threadsafe()"),
  ROW_USE (afut_future_resolve_pointer,
           "afut_future_resolve_pointer_threadsafe()"),
  ROW_USE (afut_future_resolve_int, "afut_future_resolve_int_threadsafe()"),
  ROW (afut_future_resolve_double),
  ROW_USE (afut_future_fail, "afut_future_fail_threadsafe()"),
  ROW_USE (afut_future_cancel, "afut_future_cancel_threadsafe()"),
  ROW (afut_future_get_value_type),
  ROW (afut_future_get_pointer),
  ROW (afut_future_steal_pointer),
  ROW (afut_future_get_int),
  ROW (afut_future_get_double),
  ROW (afut_future_get_error),
  ROW (afut_future_add_done_callback),
  ROW (afut_future_remove_done_callback),
  ROW (afut_future_get_n_sub_errors),
  ROW (afut_future_get_sub_error),
  ROW (afut_task_new),
  ROW (afut_coro_new),
  ROW (afut_task_start),
  ROW (afut_future_get_task),
  ROW (afut_task_set_finalize),
  ROW (afut_task_get_name),
  ROW (afut_task_set_name),
  ROW (afut_task_get_current),
  ROW (afut_task_awaited),
  ROW (afut_task_caught),
  ROW (afut_task_cancelling),
  ROW (afut_task_uncancel),
  ROW (afut_task_describe),
  ROW (afut_sleep),
  ROW_CONSUMES (afut_gather),
  ROW_CONSUMES (afut_gather_return_exceptions),
  ROW (afut_gather_v),
  ROW (afut_gather_return_exceptions_v),
  ROW (afut_gather_get_n_items),
  ROW (afut_gather_get_item),
  ROW (afut_fd_wait),
  ROW (afut_fd_read),
  ROW (afut_fd_read_exactly),
  ROW (afut_fd_write_all),
  ROW_CONSUMES (afut_shield),
  ROW_CONSUMES (afut_wait_for),
  ROW (afut_wait),
  ROW (afut_wait_get_done),
  ROW (afut_wait_get_pending),
  ROW (afut_as_completed),
  ROW (afut_as_completed_next),
  ROW_CONSUMES (afut_race),
  ROW (afut_race_v),
  ROW_CONSUMES (afut_any),
  ROW (afut_any_v),
  ROW (afut_timeout_enter),
  ROW (afut_timeout_enter_at),
  ROW (afut_timeout_reschedule),
  ROW (afut_timeout_exit),
  ROW (afut_task_group_new),
  ROW_CONSUMES (afut_task_group_spawn),
  ROW (afut_task_group_exit),
  ROW (afut_task_group_get_n_children),
  ROW (afut_event_new),
  ROW (afut_event_ref),
  ROW (afut_event_unref),
  ROW (afut_event_set),
  ROW (afut_event_clear),
  ROW (afut_event_is_set),
  ROW (afut_event_wait),
  ROW (afut_lock_new),
  ROW (afut_lock_ref),
  ROW (afut_lock_unref),
  ROW (afut_lock_acquire),
  ROW (afut_lock_release),
  ROW (afut_lock_is_locked),
  ROW (afut_semaphore_new),
  ROW (afut_bounded_semaphore_new),
  ROW (afut_semaphore_ref),
  ROW (afut_semaphore_unref),
  ROW (afut_semaphore_acquire),
  ROW (afut_semaphore_release),
  ROW (afut_semaphore_is_locked),
  ROW (afut_semaphore_get_value),
  ROW (afut_condition_new),
  ROW (afut_condition_ref),
  ROW (afut_condition_unref),
  ROW (afut_condition_acquire),
  ROW (afut_condition_release),
  ROW (afut_condition_is_locked),
  ROW (afut_condition_wait),
  ROW (afut_condition_wait_for),
  ROW (afut_condition_notify),
  ROW (afut_condition_notify_all),
  ROW (afut_queue_new),
  ROW (afut_queue_ref),
  ROW (afut_queue_unref),
  ROW (afut_queue_put),
  ROW (afut_queue_put_nowait),
  ROW (afut_queue_get),
  ROW (afut_queue_get_nowait),
  ROW (afut_queue_task_done),
  ROW (afut_queue_join),
  ROW (afut_queue_get_size),
  ROW (afut_queue_get_maxsize),
  ROW (afut_queue_is_empty),
  ROW (afut_queue_is_full),
  ROW (afut_fiber_new),
  ROW (afut_fiber_new_full),
  ROW (AFUT_FIBER),
  ROW_CONSUMES (afut_await),
  ROW_CONSUMES (afut_await_check),
  ROW_CONSUMES (afut_await_int),
  ROW_CONSUMES (afut_await_double),
  ROW_CONSUMES (afut_await_pointer),
  ROW (afut_future_new_for_int),
  ROW (afut_future_new_for_double),
  ROW (afut_future_new_for_pointer),
  ROW (afut_future_new_for_error),
  ROW (afut_timeout_exit_with_error),
};

typedef struct
{
  Fixture *x;
  const Entry *entry;
} Call;

static gpointer
call_on_worker (gpointer data)
{
  Call *c = (Call *) data;
  /* For the calls that take no loop: this thread's default is the loop
   * (pushing is per thread, from any thread). */
  afut_loop_push_thread_default (c->x->loop);
  c->entry->call (c->x);
  afut_loop_pop_thread_default (c->x->loop);
  return NULL;
}

static void
fixture_init (Fixture *x)
{
  AfutFuture *children[1];
  memset (x, 0, sizeof *x);
  x->loop = afut_loop_new (AFUT_LOOP_VIRTUAL_CLOCK);
  g_assert_no_errno (pipe (x->fds));
  x->watch.fd = x->fds[0];
  x->watch.events = AFUT_IO_IN;
  x->context.message = "from a worker";
  x->pending = afut_future_new (x->loop);
  x->done = afut_future_new (x->loop);
  afut_future_resolve_pointer (x->done, x, NULL);
  x->failed = afut_future_new (x->loop);
  afut_future_fail (x->failed,
                    afut_error_new_literal (AFUT_ERROR, AFUT_ERROR_FAILED, "x"));
  x->error = afut_error_new_literal (AFUT_ERROR, AFUT_ERROR_FAILED, "mine");
  x->task = afut_task_new (x->loop, waiter_step, sizeof (Waiter),
                           &(Waiter){ .awaited = x->pending }, "waiter", NULL);
  x->waiter = (Waiter *) x->task;
  x->gather = afut_gather (afut_future_ref (x->done), NULL);
  children[0] = x->done;
  x->wait = afut_wait (children, 1, AFUT_WAIT_ALL_COMPLETED, AFUT_NO_TIMEOUT);
  x->iterator = afut_as_completed (children, 1, AFUT_NO_TIMEOUT);
  g_assert_true (afut_loop_run_until_complete (x->loop, x->wait));
  g_assert_nonnull (x->waiter->group);
  x->event = afut_event_new (x->loop);
  x->lock = afut_lock_new (x->loop);
  x->semaphore = afut_semaphore_new (x->loop, 1);
  x->condition = afut_condition_new (x->loop, NULL);
  x->queue = afut_queue_new (x->loop, AFUT_QUEUE_FIFO, 0, NULL, NULL);
}

static void
fixture_clear (Fixture *x)
{
  afut_future_get_error (x->failed);
  afut_error_free (x->error);
  afut_queue_unref (x->queue);
  afut_condition_unref (x->condition);
  afut_semaphore_unref (x->semaphore);
  afut_lock_unref (x->lock);
  afut_event_unref (x->event);
  afut_future_unref (x->iterator);
  afut_future_unref (x->wait);
  afut_future_unref (x->gather);
  afut_future_resolve (x->pending);
  g_assert_true (afut_loop_run_until_complete (x->loop, x->task));
  afut_future_unref (x->task);
  afut_future_unref (x->failed);
  afut_future_unref (x->done);
  afut_future_unref (x->pending);
  afut_loop_unref (x->loop);
  close (x->fds[0]);
  close (x->fds[1]);
}

static void
test_every_entry_point (void)
{
  Fixture x;
  size_t i;
  unsigned n_wrong = 0;
  fixture_init (&x);
  for (i = 0; i < G_N_ELEMENTS (entries); i++)
    {
      const Entry *e = &entries[i];
      Call c = { &x, e };
      char *log, *expected;
      if (e->consumes)
        afut_future_ref (x.pending); /* the reference a refused call keeps */
      capture_begin ();
      run_on_worker (call_on_worker, &c);
      log = capture_end ();
      if (e->instead != NULL)
        expected = g_strdup_printf ("CRITICAL %s: " WRONG_THREAD "; use %s "
                                    "instead",
                                    e->name, e->instead);
      else
        expected = g_strdup_printf ("CRITICAL %s: " WRONG_THREAD
                                    "; call it on the loop's thread "
                                    "(afut_loop_call_soon_threadsafe() gets "
                                    "there)",
                                    e->name);
      /* The first thing logged, and the only thing. */
      if (g_strcmp0 (log, expected) != 0)
        {
          g_printerr ("%s from a worker: expected\n  %s\ngot\n  %s\n",
                      e->name, expected, log);
          n_wrong++;
        }
      g_free (expected);
      g_free (log);
      if (e->consumes)
        afut_future_unref (x.pending);
    }
  g_assert_cmpuint (n_wrong, ==, 0);
  /* Nothing changed: the task still waits, the future is pending. */
  g_assert_false (afut_future_is_done (x.pending));
  g_assert_true (afut_task_awaited (&x.waiter->task) != NULL);
  fixture_clear (&x);
}

int
main (int argc, char **argv)
{
  g_test_init (&argc, &argv, NULL);
  g_test_add_func ("/loop-thread/wrong-thread/resolve-while-running",
                   test_resolve_while_running);
  g_test_add_func ("/loop-thread/wrong-thread/create-from-worker",
                   test_create_from_worker);
  g_test_add_func ("/loop-thread/wrong-thread/run-while-running-elsewhere",
                   test_run_while_running_elsewhere);
  g_test_add_func ("/loop-thread/wrong-thread/every-entry-point",
                   test_every_entry_point);
  g_test_add_func ("/loop-thread/any-thread/future-refs",
                   test_future_refs_from_any_thread);
  g_test_add_func ("/loop-thread/hand-over/made-here-run-there",
                   test_made_here_run_there);
  g_test_add_func ("/loop-thread/hand-over/last-unref-on-idle-loop",
                   test_last_unref_on_idle_loop);
  g_test_add_func ("/loop-thread/hand-over/take-back-by-running",
                   test_take_back_by_running);
  return g_test_run ();
}
