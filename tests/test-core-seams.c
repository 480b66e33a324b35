/* test-core-seams.c - the seams afut.h opens to what runs it, on the
 * embedded backend and on a recording one:
 *
 *   thread-default loops   push / pop / get, what AFUT_SPAWN, afut_sleep,
 *                          afut_future_new (NULL), afut_fd_wait and
 *                          afut_fd_read pick when no loop runs, and that a
 *                          running loop wins; the stack, the reference it
 *                          holds, one stack per thread, misuse
 *   driving from outside   afut_loop_prepare / afut_loop_dispatch, as the
 *                          GLib adapter's GSource uses them; a backend's
 *                          wait called every iteration, dispatching from
 *                          inside it, nested runs refused, the close hook
 *   threadsafe completion  the *_threadsafe calls from GThreads into a
 *                          blocked loop: completion and release on the
 *                          loop's thread, late outcomes dropped silently,
 *                          many threads at once
 *   holds                  afut_loop_hold / afut_loop_release keep
 *                          shutdown, the last unref and afut_run going
 *   fd streams             afut_fd_read / afut_fd_read_exactly /
 *                          afut_fd_write_all on non-blocking sockets
 *
 * Correct use runs in-process: any afut critical or warning the test did
 * not scope with expect_log_begin () fails it (expect-log.h).  Criticals
 * of misuse are checked in a subprocess, on afut's default stderr log.
 */
#define AFUT_IMPLEMENTATION
#include "afut.h"

#include <glib.h>

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "expect-log.h"

/* ---- helpers ---- */

#define NS_PER_S G_GINT64_CONSTANT (1000000000)
#define NS_PER_MS G_GINT64_CONSTANT (1000000)

static AfutQuark
test_domain (void)
{
  return afut_quark_from_static_string ("afut-seams-test-error-quark");
}

static AfutLoop *
new_virtual_loop (void)
{
  AfutLoop *loop = afut_loop_new (AFUT_LOOP_VIRTUAL_CLOCK);
  g_assert_nonnull (loop);
  return loop;
}

static AfutLoop *
new_real_loop (void)
{
  AfutLoop *loop = afut_loop_new (AFUT_LOOP_NONE);
  g_assert_nonnull (loop);
  return loop;
}

static void
run (AfutLoop *loop, AfutFuture *future)
{
  g_assert_true (afut_loop_run_until_complete (loop, future));
  g_assert_true (afut_future_is_done (future));
}

static void
run_until_flag (AfutLoop *loop, const gboolean *flag)
{
  while (!*flag)
    g_assert_true (afut_loop_iterate (loop, TRUE));
}

static void
assert_error (const AfutError *error, AfutQuark domain, int code)
{
  g_assert_nonnull (error);
  g_assert_cmpstr (afut_quark_to_string (error->domain), ==,
                   afut_quark_to_string (domain));
  g_assert_cmpint (error->code, ==, code);
  g_assert_nonnull (error->message);
}

/* A trace of what ran, "A B C ". */
static GString *trace;

static void
trace_reset (void)
{
  if (trace == NULL)
    trace = g_string_new (NULL);
  g_string_truncate (trace, 0);
}

static void
trace_cb (void *data)
{
  g_string_append_printf (trace, "%s ", (const char *) data);
}

static void
trace_done_cb (AfutFuture *future, void *data)
{
  (void) future;
  g_string_append_printf (trace, "%s ", (const char *) data);
}

static void
set_flag_cb (void *data)
{
  *(gboolean *) data = TRUE;
}

static void
noop_step (AfutTask *task)
{
  AFUT_BEGIN (task);
  AFUT_END (task);
}

static void
make_socketpair (int sv[2])
{
  int i;
  g_assert_cmpint (socketpair (AF_UNIX, SOCK_STREAM, 0, sv), ==, 0);
  for (i = 0; i < 2; i++)
    g_assert_cmpint (fcntl (sv[i], F_SETFL,
                            fcntl (sv[i], F_GETFL) | O_NONBLOCK),
                     ==, 0);
}

/* Whether the main thread (the loop's) sleeps in a blocking call, as
 * /proc sees it: a helper thread posts once the loop blocks, so the post
 * has to wake it.  Without /proc it posts after a bounded busy wait. */
static gboolean
main_thread_is_sleeping (void)
{
  char path[64];
  char *contents = NULL;
  const char *p;
  gboolean sleeping;

  g_snprintf (path, sizeof path, "/proc/self/task/%d/stat", (int) getpid ());
  if (!g_file_get_contents (path, &contents, NULL, NULL))
    return FALSE;
  p = strrchr (contents, ')');
  sleeping = p != NULL && p[1] == ' ' && p[2] == 'S';
  g_free (contents);
  return sleeping;
}

static void
wait_for_main_thread_to_block (void)
{
  gint64 deadline = g_get_monotonic_time () + 5 * G_USEC_PER_SEC;
  while (!main_thread_is_sleeping () && g_get_monotonic_time () < deadline)
    g_thread_yield ();
}

/* ---- misuse, in a subprocess ---- */

typedef struct
{
  const char *path;
  void (*body) (void);
  /* glob stderr must match; exactly one afut-CRITICAL line is allowed */
  const char *stderr_glob;
} CriticalCase;

static void
run_critical_case (gconstpointer data)
{
  const CriticalCase *c = (const CriticalCase *) data;

  if (g_test_subprocess ())
    {
      /* afut's own stderr format, never fatal here. */
      g_setenv ("AFUT_DEBUG", "", TRUE);
      afut_set_log_func (NULL, NULL);
      c->body ();
      return;
    }
  g_test_trap_subprocess (NULL, 60 * G_USEC_PER_SEC,
                          G_TEST_SUBPROCESS_DEFAULT);
  g_test_trap_assert_passed ();
  g_test_trap_assert_stderr (c->stderr_glob);
  g_test_trap_assert_stderr_unmatched ("*afut-CRITICAL*afut-CRITICAL*");
}

/* ---- a recording backend ---- */

/* Records what afut asks of its backend.  Its wait can also poll the
 * watched fds, block until woken (for other threads), or call
 * afut_loop_prepare () and afut_loop_dispatch () itself, as the GLib
 * adapter's wait does through its GSource. */
typedef struct RecBackend RecBackend;
struct RecBackend
{
  /* behaviour */
  gboolean dispatch_in_wait;
  int64_t dispatch_budget_ns;
  gboolean poll_fds;
  gboolean block;   /* a wait without timeout blocks until woken */
  gulong linger_us; /* a wakeup stays up to this long after waking */
  void (*wait_hook) (RecBackend *rb, AfutLoop *loop);
  void *hook_data;

  /* the clock of a real-clock loop; each wait takes its timeout */
  int64_t now;

  /* what afut asked */
  guint n_waits;
  int64_t timeouts[64];
  guint n_dispatches;
  gboolean in_dispatch;
  guint n_watches;
  guint n_unwatches;
  GPtrArray *active;
  guint n_closes;
  guint n_frees;
  GString *events;
  AfutLoop *closed_loop;
  size_t n_tasks_at_close;
  gboolean prepare_at_close;
  int64_t timeout_at_close;

  /* shared with other threads */
  pthread_mutex_t lock;
  pthread_cond_t cond;
  gboolean woken; /* under lock */
  gint n_wakeups; /* atomic, as the three below */
  gint in_wakeup;
  gint freed;
  gint free_during_wakeup;
};

static int64_t
rec_now (void *data)
{
  return ((RecBackend *) data)->now;
}

static void
rec_poll (RecBackend *rb, AfutLoop *loop, int64_t timeout_ns)
{
  guint n = rb->active->len, i;
  struct pollfd *pfds = g_new0 (struct pollfd, n);
  AfutFdWatch **polled = g_new (AfutFdWatch *, n);
  int timeout_ms = timeout_ns < 0 ? -1
                                  : (int) ((timeout_ns + NS_PER_MS - 1) / NS_PER_MS);
  int r;

  for (i = 0; i < n; i++)
    {
      polled[i] = (AfutFdWatch *) g_ptr_array_index (rb->active, i);
      pfds[i].fd = polled[i]->fd;
      pfds[i].events = (short) polled[i]->events;
    }
  do
    r = poll (pfds, n, timeout_ms);
  while (r < 0 && errno == EINTR);
  /* Reporting a watch ready unwatches it: report from the snapshot. */
  for (i = 0; r > 0 && i < n; i++)
    if (pfds[i].revents != 0)
      afut_loop_fd_ready (loop, polled[i], (unsigned) pfds[i].revents);
  g_free (pfds);
  g_free (polled);
}

static void
rec_wait (void *data, AfutLoop *loop, int64_t timeout_ns)
{
  RecBackend *rb = (RecBackend *) data;

  if (rb->n_waits < G_N_ELEMENTS (rb->timeouts))
    rb->timeouts[rb->n_waits] = timeout_ns;
  rb->n_waits++;
  if (rb->poll_fds && rb->active->len > 0)
    rec_poll (rb, loop, timeout_ns);
  else if (rb->block)
    {
      pthread_mutex_lock (&rb->lock);
      while (timeout_ns < 0 && !rb->woken)
        pthread_cond_wait (&rb->cond, &rb->lock);
      rb->woken = FALSE;
      pthread_mutex_unlock (&rb->lock);
    }
  else if (timeout_ns > 0)
    rb->now += timeout_ns;
  if (rb->wait_hook != NULL)
    rb->wait_hook (rb, loop);
  if (rb->dispatch_in_wait && afut_loop_prepare (loop, NULL))
    {
      rb->in_dispatch = TRUE;
      afut_loop_dispatch (loop, rb->dispatch_budget_ns);
      rb->in_dispatch = FALSE;
      rb->n_dispatches++;
    }
}

static void
rec_wakeup (void *data)
{
  RecBackend *rb = (RecBackend *) data;
  g_atomic_int_inc (&rb->n_wakeups);
  if (rb->linger_us > 0)
    g_atomic_int_set (&rb->in_wakeup, 1);
  pthread_mutex_lock (&rb->lock);
  rb->woken = TRUE;
  pthread_cond_signal (&rb->cond);
  pthread_mutex_unlock (&rb->lock);
  if (rb->linger_us > 0)
    {
      /* What a real wakeup may still do after waking the waiter (GLib's
       * unlocks its context): backend_data must still be there.  Stay
       * until the backend is freed or linger_us passed. */
      gint64 until = g_get_monotonic_time () + (gint64) rb->linger_us;
      while (!g_atomic_int_get (&rb->freed) && g_get_monotonic_time () < until)
        g_usleep (100);
      g_atomic_int_set (&rb->in_wakeup, 0);
    }
}

static bool
rec_watch_fd (void *data, AfutFdWatch *watch)
{
  RecBackend *rb = (RecBackend *) data;
  rb->n_watches++;
  g_ptr_array_add (rb->active, watch);
  return true;
}

static void
rec_unwatch_fd (void *data, AfutFdWatch *watch)
{
  RecBackend *rb = (RecBackend *) data;
  rb->n_unwatches++;
  g_assert_true (g_ptr_array_remove (rb->active, watch));
}

static void
rec_free (void *data)
{
  RecBackend *rb = (RecBackend *) data;
  rb->n_frees++;
  g_string_append (rb->events, "free ");
  g_atomic_int_set (&rb->freed, 1);
  if (g_atomic_int_get (&rb->in_wakeup))
    g_atomic_int_set (&rb->free_during_wakeup, 1);
}

static void
rec_close (void *data, AfutLoop *loop)
{
  RecBackend *rb = (RecBackend *) data;
  rb->n_closes++;
  g_string_append (rb->events, "close ");
  rb->closed_loop = loop;
  rb->n_tasks_at_close = afut_loop_get_n_tasks (loop);
  rb->prepare_at_close = afut_loop_prepare (loop, &rb->timeout_at_close);
}

static const AfutBackend rec_backend = {
  rec_now,
  rec_wait,
  rec_wakeup,
  rec_watch_fd,
  rec_unwatch_fd,
  rec_free,
  rec_close,
  NULL,
  NULL,
};

static void
rec_init (RecBackend *rb)
{
  memset (rb, 0, sizeof *rb);
  rb->active = g_ptr_array_new ();
  rb->events = g_string_new (NULL);
  pthread_mutex_init (&rb->lock, NULL);
  pthread_cond_init (&rb->cond, NULL);
}

static void
rec_clear (RecBackend *rb)
{
  g_ptr_array_unref (rb->active);
  g_string_free (rb->events, TRUE);
  pthread_mutex_destroy (&rb->lock);
  pthread_cond_destroy (&rb->cond);
}

static AfutLoop *
rec_loop_new (RecBackend *rb, unsigned flags)
{
  AfutLoop *loop = afut_loop_new_with_backend (&rec_backend, rb, flags);
  g_assert_nonnull (loop);
  return loop;
}

/* ---- tasks used by several groups ---- */

/* Counts its steps (the code before AFUT_BEGIN runs at every resume) and
 * how many ran inside a dispatch made by the recording backend's wait. */
typedef struct
{
  AfutLoop *loop;
  RecBackend *rb;
  guint n_steps;
  guint n_in_dispatch;
  guint n_running_ok;
} StepLog;

typedef struct
{
  AfutTask task;
  StepLog *log;
  int n_yields;
  double sleep_seconds;
  int i;
} Yielder;

static void
yielder_step (AfutTask *task)
{
  Yielder *self = (Yielder *) task;
  self->log->n_steps++;
  if (self->log->rb != NULL && self->log->rb->in_dispatch)
    self->log->n_in_dispatch++;
  if (afut_loop_get_running () == self->log->loop)
    self->log->n_running_ok++;
  AFUT_BEGIN (task);
  for (self->i = 0; self->i < self->n_yields; self->i++)
    AFUT_YIELD (task);
  if (self->sleep_seconds > 0)
    {
      AFUT_AWAIT (task, afut_sleep (self->sleep_seconds));
    }
  AFUT_END (task);
}

static AfutFuture *
yielder_new (AfutLoop *loop, StepLog *log, int n_yields, double seconds)
{
  Yielder init = { .log = log,
                   .n_yields = n_yields,
                   .sleep_seconds = seconds };
  AfutFuture *f = afut_task_new (loop, yielder_step, sizeof init, &init,
                                 "yielder", NULL);
  g_assert_nonnull (f);
  return f;
}

/* Sleeps; cancelled, it notes it and re-raises. */
typedef struct
{
  gboolean started;
  gboolean cancelled;
  char message[64];
} SleeperState;

typedef struct
{
  AfutTask task;
  SleeperState *state;
  double seconds;
} Sleeper;

static void
sleeper_step (AfutTask *task)
{
  Sleeper *self = (Sleeper *) task;
  AFUT_BEGIN (task);
  self->state->started = TRUE;
  AFUT_AWAIT_TRY (task, afut_sleep (self->seconds));
  if (afut_task_caught (task) != NULL)
    {
      self->state->cancelled = afut_error_is_cancelled (afut_task_caught (task));
      g_strlcpy (self->state->message, afut_task_caught (task)->message,
                 sizeof self->state->message);
      AFUT_RERAISE (task);
    }
  AFUT_END (task);
}

static AfutFuture *
sleeper_new (AfutLoop *loop, SleeperState *state, double seconds)
{
  Sleeper init = { .state = state, .seconds = seconds };
  AfutFuture *f = afut_task_new (loop, sleeper_step, sizeof init, &init,
                                 "sleeper", NULL);
  g_assert_nonnull (f);
  return f;
}

/* ======================================================================
 * 1. thread-default loops
 * ====================================================================== */

static void
test_thread_default_stack_order (void)
{
  AfutLoop *a = new_virtual_loop ();
  AfutLoop *b = new_virtual_loop ();
  AfutFuture *f;

  g_assert_null (afut_loop_get_thread_default ());
  g_assert_null (afut_loop_get_running ());

  afut_loop_push_thread_default (a);
  g_assert_true (afut_loop_get_thread_default () == a);
  afut_loop_push_thread_default (b);
  g_assert_true (afut_loop_get_thread_default () == b);
  /* The same loop may be pushed again, as a GMainContext may. */
  afut_loop_push_thread_default (a);
  g_assert_true (afut_loop_get_thread_default () == a);

  /* Calls that take no loop use the top of the stack. */
  afut_loop_pop_thread_default (a);
  f = afut_future_new (NULL);
  g_assert_nonnull (f);
  g_assert_true (afut_future_get_loop (f) == b);
  afut_future_unref (f);

  afut_loop_pop_thread_default (b);
  g_assert_true (afut_loop_get_thread_default () == a);
  f = afut_future_new (NULL);
  g_assert_true (afut_future_get_loop (f) == a);
  afut_future_unref (f);

  afut_loop_pop_thread_default (a);
  g_assert_null (afut_loop_get_thread_default ());

  afut_loop_unref (a);
  afut_loop_unref (b);
}

typedef struct
{
  AfutLoop *running;
  AfutLoop *thread_default;
  AfutLoop *spawned;
  AfutLoop *created;
  AfutLoop *slept;
  AfutLoop *fd_waited;
  AfutLoop *fd_read;
  int64_t revents;
  int64_t n_read;
  double time_after_sleep;
} Seen;

/* From inside a running loop: where each loop-less call lands. */
typedef struct
{
  AfutTask task;
  Seen *seen;
  int write_fd;
  int read_fd;
  char buffer[8];
} Probe;

static void
probe_step (AfutTask *task)
{
  Probe *self = (Probe *) task;
  AfutFuture *f;

  AFUT_BEGIN (task);
  self->seen->running = afut_loop_get_running ();
  self->seen->thread_default = afut_loop_get_thread_default ();

  f = AFUT_SPAWN (AfutTask, noop_step);
  self->seen->spawned = afut_future_get_loop (f);
  AFUT_AWAIT (task, f);

  f = afut_future_new (NULL);
  self->seen->created = afut_future_get_loop (f);
  afut_future_unref (f);

  f = afut_sleep (0.5);
  self->seen->slept = afut_future_get_loop (f);
  AFUT_AWAIT (task, f);
  self->seen->time_after_sleep = afut_loop_time (afut_loop_get_running ());

  f = afut_fd_wait (self->write_fd, AFUT_IO_OUT);
  self->seen->fd_waited = afut_future_get_loop (f);
  AFUT_AWAIT (task, f);
  self->seen->revents = afut_future_get_int (afut_task_awaited (task));

  g_assert_cmpint (write (self->write_fd, "ok", 2), ==, 2);
  f = afut_fd_read (self->read_fd, self->buffer, sizeof self->buffer);
  self->seen->fd_read = afut_future_get_loop (f);
  AFUT_AWAIT (task, f);
  self->seen->n_read = afut_future_get_int (afut_task_awaited (task));
  AFUT_END (task);
}

static void
test_thread_default_used_outside_running_loop (void)
{
  AfutLoop *loop = new_virtual_loop ();
  AfutFuture *created, *slept, *spawned, *waited, *reading;
  int sv[2];
  char buffer[8] = { 0 };

  make_socketpair (sv);
  afut_loop_push_thread_default (loop);
  g_assert_null (afut_loop_get_running ());

  created = afut_future_new (NULL);
  slept = afut_sleep (1.5);
  spawned = AFUT_SPAWN (AfutTask, noop_step);
  waited = afut_fd_wait (sv[0], AFUT_IO_OUT);
  g_assert_cmpint (write (sv[1], "hi", 2), ==, 2);
  reading = afut_fd_read (sv[0], buffer, sizeof buffer);
  g_assert_nonnull (created);
  g_assert_nonnull (slept);
  g_assert_nonnull (spawned);
  g_assert_nonnull (waited);
  g_assert_nonnull (reading);
  g_assert_true (afut_future_get_loop (created) == loop);
  g_assert_true (afut_future_get_loop (slept) == loop);
  g_assert_true (afut_future_get_loop (spawned) == loop);
  g_assert_true (afut_future_get_loop (waited) == loop);
  g_assert_true (afut_future_get_loop (reading) == loop);
  /* The task and the read are the loop's tasks, scheduled, not run. */
  g_assert_cmpuint (afut_loop_get_n_tasks (loop), ==, 2);
  g_assert_false (afut_future_is_done (spawned));

  run (loop, spawned);
  run (loop, waited);
  g_assert_true (afut_future_get_int (waited) & AFUT_IO_OUT);
  run (loop, reading);
  g_assert_cmpint (afut_future_get_int (reading), ==, 2);
  g_assert_cmpmem (buffer, 2, "hi", 2);
  run (loop, slept);
  g_assert_cmpint (afut_loop_time_ns (loop), ==, 3 * NS_PER_S / 2);
  g_assert_true (afut_future_resolve (created));

  afut_future_unref (created);
  afut_future_unref (slept);
  afut_future_unref (spawned);
  afut_future_unref (waited);
  afut_future_unref (reading);
  afut_loop_pop_thread_default (loop);
  afut_loop_unref (loop);
  close (sv[0]);
  close (sv[1]);
}

static void
test_thread_default_running_loop_wins (void)
{
  AfutLoop *pushed = new_virtual_loop ();
  AfutLoop *running = new_virtual_loop ();
  Seen seen = { 0 };
  AfutFuture *task;
  int sv[2];
  int64_t timeout = 0;

  make_socketpair (sv);
  afut_loop_push_thread_default (pushed);
  task = afut_task_new (running, probe_step, sizeof (Probe),
                        &(Probe){ .seen = &seen,
                                  .write_fd = sv[1],
                                  .read_fd = sv[0] },
                        "probe", NULL);
  g_assert_nonnull (task);
  run (running, task);
  g_assert_cmpint (afut_future_get_state (task), ==, AFUT_FUTURE_DONE);

  g_assert_true (seen.running == running);
  /* The stack is untouched by a run; it just loses to the running loop. */
  g_assert_true (seen.thread_default == pushed);
  g_assert_true (seen.spawned == running);
  g_assert_true (seen.created == running);
  g_assert_true (seen.slept == running);
  g_assert_true (seen.fd_waited == running);
  g_assert_true (seen.fd_read == running);
  g_assert_cmpfloat (seen.time_after_sleep, ==, 0.5);
  g_assert_true (seen.revents & AFUT_IO_OUT);
  g_assert_cmpint (seen.n_read, ==, 2);

  /* Nothing landed on the pushed loop. */
  g_assert_cmpuint (afut_loop_get_n_tasks (pushed), ==, 0);
  g_assert_false (afut_loop_prepare (pushed, &timeout));
  g_assert_cmpint (timeout, ==, -1);
  g_assert_cmpint (afut_loop_time_ns (pushed), ==, 0);

  afut_future_unref (task);
  afut_loop_pop_thread_default (pushed);
  afut_loop_unref (pushed);
  afut_loop_unref (running);
  close (sv[0]);
  close (sv[1]);
}

static void
test_thread_default_keeps_loop_alive (void)
{
  RecBackend rb;
  AfutLoop *loop;
  AfutFuture *slept;

  rec_init (&rb);
  loop = rec_loop_new (&rb, AFUT_LOOP_VIRTUAL_CLOCK);
  afut_loop_push_thread_default (loop);
  /* The stack's reference is now the only one. */
  afut_loop_unref (loop);
  g_assert_cmpuint (rb.n_closes, ==, 0);
  g_assert_cmpuint (rb.n_frees, ==, 0);
  g_assert_true (afut_loop_get_thread_default () == loop);

  slept = afut_sleep (2.0);
  g_assert_nonnull (slept);
  run (afut_loop_get_thread_default (), slept);
  g_assert_cmpint (afut_loop_time_ns (loop), ==, 2 * NS_PER_S);
  afut_future_unref (slept);
  g_assert_cmpuint (rb.n_closes, ==, 0);

  /* Popping drops the last reference: the loop closes and goes. */
  afut_loop_pop_thread_default (loop);
  g_assert_null (afut_loop_get_thread_default ());
  g_assert_cmpuint (rb.n_closes, ==, 1);
  g_assert_cmpuint (rb.n_frees, ==, 1);
  g_assert_cmpstr (rb.events->str, ==, "close free ");
  rec_clear (&rb);
}

typedef struct
{
  AfutLoop *seen_default;
  AfutLoop *seen_running;
  gboolean sleep_was_null;
  guint n_sleep_criticals;
  gboolean own_on_top;
  gboolean future_on_own;
  AfutLoop *after_pop;
} OtherThread;

static gpointer
other_thread_func (gpointer data)
{
  OtherThread *ot = (OtherThread *) data;
  AfutLoop *own;
  AfutFuture *f;

  ot->seen_default = afut_loop_get_thread_default ();
  ot->seen_running = afut_loop_get_running ();

  expect_log_begin (AFUT_LOG_CRITICAL, "afut_sleep: no running loop");
  f = afut_sleep (1.0);
  ot->n_sleep_criticals = expect_log_end ();
  ot->sleep_was_null = f == NULL;
  afut_future_unref (f);

  own = afut_loop_new (AFUT_LOOP_VIRTUAL_CLOCK);
  afut_loop_push_thread_default (own);
  ot->own_on_top = afut_loop_get_thread_default () == own;
  f = afut_future_new (NULL);
  ot->future_on_own = f != NULL && afut_future_get_loop (f) == own;
  afut_future_unref (f);
  afut_loop_pop_thread_default (own);
  ot->after_pop = afut_loop_get_thread_default ();
  afut_loop_unref (own);
  return NULL;
}

static void
test_thread_default_per_thread (void)
{
  AfutLoop *loop = new_virtual_loop ();
  OtherThread ot;
  GThread *thread;

  memset (&ot, 0xaa, sizeof ot);
  afut_loop_push_thread_default (loop);
  thread = g_thread_new ("other", other_thread_func, &ot);
  g_thread_join (thread);

  g_assert_null (ot.seen_default);
  g_assert_null (ot.seen_running);
  g_assert_true (ot.sleep_was_null);
  g_assert_cmpuint (ot.n_sleep_criticals, ==, 1);
  g_assert_true (ot.own_on_top);
  g_assert_true (ot.future_on_own);
  g_assert_null (ot.after_pop);
  /* That thread's pushes and pops left this thread's stack alone. */
  g_assert_true (afut_loop_get_thread_default () == loop);

  afut_loop_pop_thread_default (loop);
  afut_loop_unref (loop);
}

static void
body_pop_not_on_top (void)
{
  AfutLoop *a = new_virtual_loop ();
  AfutLoop *b = new_virtual_loop ();
  afut_loop_push_thread_default (a);
  afut_loop_push_thread_default (b);
  afut_loop_pop_thread_default (a);
  /* Refused: the stack is as it was. */
  g_assert_true (afut_loop_get_thread_default () == b);
  afut_loop_pop_thread_default (b);
  g_assert_true (afut_loop_get_thread_default () == a);
  afut_loop_pop_thread_default (a);
  g_assert_null (afut_loop_get_thread_default ());
  afut_loop_unref (a);
  afut_loop_unref (b);
}

static void
body_pop_empty_stack (void)
{
  AfutLoop *a = new_virtual_loop ();
  AfutFuture *f;
  afut_loop_pop_thread_default (a);
  g_assert_null (afut_loop_get_thread_default ());
  /* The loop kept its reference: it still works. */
  f = afut_loop_sleep (a, 1.0);
  run (a, f);
  afut_future_unref (f);
  afut_loop_unref (a);
}

static void
body_pop_null (void)
{
  AfutLoop *a = new_virtual_loop ();
  afut_loop_push_thread_default (a);
  afut_loop_pop_thread_default (NULL);
  g_assert_true (afut_loop_get_thread_default () == a);
  afut_loop_pop_thread_default (a);
  afut_loop_unref (a);
}

static void
body_push_null (void)
{
  afut_loop_push_thread_default (NULL);
  g_assert_null (afut_loop_get_thread_default ());
}

/* ======================================================================
 * 2. driving a loop from another main loop
 * ====================================================================== */

static void
test_prepare_idle_waits_forever (void)
{
  AfutLoop *loop = new_virtual_loop ();
  int64_t timeout = 12345;

  g_assert_false (afut_loop_prepare (loop, &timeout));
  g_assert_cmpint (timeout, ==, -1);
  /* The timeout is optional. */
  g_assert_false (afut_loop_prepare (loop, NULL));
  /* Preparing ran nothing and moved no clock. */
  g_assert_cmpint (afut_loop_time_ns (loop), ==, 0);
  afut_loop_unref (loop);
}

static void
test_prepare_ready_work_is_zero (void)
{
  AfutLoop *loop = new_virtual_loop ();
  AfutFuture *timer;
  int64_t timeout = -7;

  trace_reset ();
  /* A far timer does not matter when something is ready. */
  timer = afut_loop_sleep (loop, 100.0);
  g_assert_true (afut_loop_call_soon (loop, trace_cb, "A"));
  g_assert_true (afut_loop_prepare (loop, &timeout));
  g_assert_cmpint (timeout, ==, 0);
  g_assert_true (afut_loop_prepare (loop, NULL));
  /* Prepare runs no callback and leaves the virtual clock. */
  g_assert_cmpstr (trace->str, ==, "");
  g_assert_cmpint (afut_loop_time_ns (loop), ==, 0);

  afut_loop_dispatch (loop, 0);
  g_assert_cmpstr (trace->str, ==, "A ");
  g_assert_false (afut_future_is_done (timer));
  g_assert_true (afut_future_cancel (timer, NULL));
  afut_future_unref (timer);
  afut_loop_unref (loop);
}

static void
test_prepare_time_to_next_timer (void)
{
  RecBackend rb;
  AfutLoop *loop;
  AfutFuture *near, *far;
  int64_t timeout = 0;

  rec_init (&rb);
  rb.now = 1000 * NS_PER_S;
  loop = rec_loop_new (&rb, AFUT_LOOP_NONE);
  trace_reset ();
  far = afut_loop_sleep (loop, 4.0);
  near = afut_loop_sleep (loop, 1.5);
  afut_future_add_done_callback (near, trace_done_cb, "near");
  afut_future_add_done_callback (far, trace_done_cb, "far");

  g_assert_false (afut_loop_prepare (loop, &timeout));
  g_assert_cmpint (timeout, ==, 3 * NS_PER_S / 2);
  rb.now += NS_PER_S / 2;
  g_assert_false (afut_loop_prepare (loop, &timeout));
  g_assert_cmpint (timeout, ==, NS_PER_S);

  /* Due: work now; dispatching fires it, the other timer stays. */
  rb.now += NS_PER_S;
  g_assert_true (afut_loop_prepare (loop, &timeout));
  g_assert_cmpint (timeout, ==, 0);
  afut_loop_dispatch (loop, NS_PER_S);
  g_assert_cmpstr (trace->str, ==, "near ");
  g_assert_false (afut_future_is_done (far));
  g_assert_false (afut_loop_prepare (loop, &timeout));
  g_assert_cmpint (timeout, ==, 5 * NS_PER_S / 2);

  /* Past its deadline: still 0, never negative. */
  rb.now += 10 * NS_PER_S;
  g_assert_true (afut_loop_prepare (loop, &timeout));
  g_assert_cmpint (timeout, ==, 0);
  afut_loop_dispatch (loop, NS_PER_S);
  g_assert_cmpstr (trace->str, ==, "near far ");
  /* The loop never needed to wait in its backend. */
  g_assert_cmpuint (rb.n_waits, ==, 0);

  afut_future_unref (near);
  afut_future_unref (far);
  afut_loop_unref (loop);
  rec_clear (&rb);
}

static void
test_prepare_virtual_clock_jumps (void)
{
  AfutLoop *loop = new_virtual_loop ();
  AfutFuture *s1, *s3;
  int64_t timeout = -7;

  trace_reset ();
  s3 = afut_loop_sleep (loop, 3.0);
  s1 = afut_loop_sleep (loop, 1.0);
  afut_future_add_done_callback (s1, trace_done_cb, "s1");
  afut_future_add_done_callback (s3, trace_done_cb, "s3");

  /* Nothing ready: the clock jumps to the first timer, work now. */
  g_assert_true (afut_loop_prepare (loop, &timeout));
  g_assert_cmpint (timeout, ==, 0);
  g_assert_cmpint (afut_loop_time_ns (loop), ==, NS_PER_S);
  g_assert_cmpstr (trace->str, ==, "");

  /* Dispatch runs what is due and does not jump on its own. */
  afut_loop_dispatch (loop, 10 * NS_PER_S);
  g_assert_cmpstr (trace->str, ==, "s1 ");
  g_assert_false (afut_future_is_done (s3));
  g_assert_cmpint (afut_loop_time_ns (loop), ==, NS_PER_S);

  g_assert_true (afut_loop_prepare (loop, &timeout));
  g_assert_cmpint (timeout, ==, 0);
  g_assert_cmpint (afut_loop_time_ns (loop), ==, 3 * NS_PER_S);
  afut_loop_dispatch (loop, 10 * NS_PER_S);
  g_assert_cmpstr (trace->str, ==, "s1 s3 ");

  g_assert_false (afut_loop_prepare (loop, &timeout));
  g_assert_cmpint (timeout, ==, -1);
  g_assert_cmpint (afut_loop_time_ns (loop), ==, 3 * NS_PER_S);

  afut_future_unref (s1);
  afut_future_unref (s3);
  afut_loop_unref (loop);
}

typedef struct
{
  AfutLoop *loop;
  const char *name;
} Poster;

static gpointer
poster_thread (gpointer data)
{
  Poster *p = (Poster *) data;
  return GINT_TO_POINTER (
      afut_loop_call_soon_threadsafe (p->loop, trace_cb, (void *) p->name));
}

static void
test_prepare_sees_threadsafe_calls (void)
{
  AfutLoop *loop = new_virtual_loop ();
  Poster p = { loop, "T" };
  GThread *thread;
  int64_t timeout = -7;

  AfutFuture *timer;

  trace_reset ();
  g_assert_false (afut_loop_prepare (loop, NULL));
  timer = afut_loop_sleep (loop, 5.0);
  thread = g_thread_new ("poster", poster_thread, &p);
  g_assert_true (GPOINTER_TO_INT (g_thread_join (thread)));
  /* The posted call is work now: no jump to the timer for it. */
  g_assert_true (afut_loop_prepare (loop, &timeout));
  g_assert_cmpint (timeout, ==, 0);
  g_assert_cmpint (afut_loop_time_ns (loop), ==, 0);
  g_assert_cmpstr (trace->str, ==, "");
  afut_loop_dispatch (loop, 0);
  g_assert_cmpstr (trace->str, ==, "T ");
  g_assert_false (afut_future_is_done (timer));
  g_assert_true (afut_future_cancel (timer, NULL));
  afut_future_unref (timer);
  g_assert_false (afut_loop_prepare (loop, NULL));
  afut_loop_unref (loop);
}

typedef struct
{
  AfutLoop *loop;
  gboolean other_ran;
  gboolean ready;
  int64_t timeout;
  gboolean called;
} PrepareInside;

static void
prepare_inside_cb (void *data)
{
  PrepareInside *pi = (PrepareInside *) data;
  /* Work is queued, yet while the loop runs the answer is "not now". */
  g_assert_true (afut_loop_call_soon (pi->loop, set_flag_cb, &pi->other_ran));
  pi->timeout = 12345;
  pi->ready = afut_loop_prepare (pi->loop, &pi->timeout);
  pi->called = TRUE;
}

static void
test_prepare_false_while_running (void)
{
  AfutLoop *loop = new_virtual_loop ();
  AfutFuture *timer = afut_loop_sleep (loop, 1.0);
  PrepareInside pi = { .loop = loop };

  /* From a callback run by afut_loop_iterate. */
  g_assert_true (afut_loop_call_soon (loop, prepare_inside_cb, &pi));
  g_assert_true (afut_loop_iterate (loop, FALSE));
  g_assert_true (pi.called);
  g_assert_false (pi.ready);
  g_assert_cmpint (pi.timeout, ==, -1);
  /* It jumped no clock and ran nothing. */
  g_assert_cmpint (afut_loop_time_ns (loop), ==, 0);
  g_assert_false (pi.other_ran);
  g_assert_true (afut_loop_iterate (loop, FALSE));
  g_assert_true (pi.other_ran);

  /* From a callback run by afut_loop_dispatch. */
  memset (&pi, 0, sizeof pi);
  pi.loop = loop;
  g_assert_true (afut_loop_call_soon (loop, prepare_inside_cb, &pi));
  afut_loop_dispatch (loop, 0);
  g_assert_true (pi.called);
  g_assert_false (pi.ready);
  g_assert_cmpint (pi.timeout, ==, -1);
  g_assert_cmpint (afut_loop_time_ns (loop), ==, 0);

  /* Outside, the answer is back. */
  g_assert_true (afut_loop_prepare (loop, NULL));
  afut_loop_dispatch (loop, 0);
  g_assert_true (pi.other_ran);

  afut_future_cancel (timer, NULL);
  afut_future_unref (timer);
  afut_loop_unref (loop);
}

/* A callback that queues its own next step, @n times. */
typedef struct
{
  AfutLoop *loop;
  const char *name;
  int step;
  int n;
} Chain;

static void
chain_cb (void *data)
{
  Chain *c = (Chain *) data;
  g_string_append_printf (trace, "%s%d ", c->name, c->step);
  if (c->step < c->n)
    {
      c->step++;
      g_assert_true (afut_loop_call_soon (c->loop, chain_cb, c));
    }
}

static void
test_dispatch_budget_zero_runs_one_batch (void)
{
  AfutLoop *loop = new_virtual_loop ();
  Chain a = { loop, "A", 1, 3 }, b = { loop, "B", 1, 3 };
  int64_t timeout = -42; /* poison: prepare must set it */

  trace_reset ();
  g_assert_true (afut_loop_call_soon (loop, chain_cb, &a));
  g_assert_true (afut_loop_call_soon (loop, chain_cb, &b));
  /* What a batch schedules runs in the next one, not in this call. */
  afut_loop_dispatch (loop, 0);
  g_assert_cmpstr (trace->str, ==, "A1 B1 ");
  g_assert_true (afut_loop_prepare (loop, &timeout));
  g_assert_cmpint (timeout, ==, 0);
  afut_loop_dispatch (loop, 0);
  g_assert_cmpstr (trace->str, ==, "A1 B1 A2 B2 ");
  afut_loop_dispatch (loop, 0);
  g_assert_cmpstr (trace->str, ==, "A1 B1 A2 B2 A3 B3 ");
  g_assert_false (afut_loop_prepare (loop, &timeout));
  g_assert_cmpint (timeout, ==, -1);
  /* Nothing ready: a dispatch is harmless. */
  afut_loop_dispatch (loop, 0);
  g_assert_cmpstr (trace->str, ==, "A1 B1 A2 B2 A3 B3 ");
  afut_loop_unref (loop);
}

static void
test_dispatch_budget_runs_until_idle (void)
{
  AfutLoop *loop = new_virtual_loop ();
  Chain a = { loop, "A", 1, 3 }, b = { loop, "B", 1, 3 };
  StepLog log = { .loop = loop };
  AfutFuture *task;
  int64_t timeout = -42; /* poison: prepare must set it */

  trace_reset ();
  g_assert_true (afut_loop_call_soon (loop, chain_cb, &a));
  g_assert_true (afut_loop_call_soon (loop, chain_cb, &b));
  task = yielder_new (loop, &log, 4, 0);
  /* One call, batch after batch, in asyncio's order. */
  afut_loop_dispatch (loop, 10 * NS_PER_S);
  g_assert_cmpstr (trace->str, ==, "A1 B1 A2 B2 A3 B3 ");
  g_assert_cmpint (afut_future_get_state (task), ==, AFUT_FUTURE_DONE);
  g_assert_cmpuint (log.n_steps, ==, 5);
  g_assert_cmpuint (log.n_running_ok, ==, 5);
  g_assert_false (afut_loop_prepare (loop, &timeout));
  g_assert_cmpint (timeout, ==, -1);
  afut_future_unref (task);
  afut_loop_unref (loop);
}

typedef struct
{
  AfutLoop *loop;
  AfutFuture *future;
} ResolveThenQueue;

static void
resolve_then_queue_cb (void *data)
{
  ResolveThenQueue *r = (ResolveThenQueue *) data;
  g_string_append (trace, "X ");
  g_assert_true (afut_future_resolve (r->future));
  g_assert_true (afut_loop_call_soon (r->loop, trace_cb, "Y"));
}

static void
test_dispatch_next_batch_order (void)
{
  AfutLoop *loop = new_virtual_loop ();
  ResolveThenQueue r = { loop, afut_future_new (loop) };

  trace_reset ();
  afut_future_add_done_callback (r.future, trace_done_cb, "F");
  g_assert_true (afut_loop_call_soon (loop, resolve_then_queue_cb, &r));
  g_assert_true (afut_loop_call_soon (loop, trace_cb, "Z"));
  /* Batch 1 is what was ready when it began: X Z.  X completed F's
   * future before queueing Y: batch 2 is F then Y. */
  afut_loop_dispatch (loop, 0);
  g_assert_cmpstr (trace->str, ==, "X Z ");
  afut_loop_dispatch (loop, 0);
  g_assert_cmpstr (trace->str, ==, "X Z F Y ");
  g_assert_false (afut_loop_prepare (loop, NULL));

  /* The same with a budget: one call, same order. */
  afut_future_unref (r.future);
  r.future = afut_future_new (loop);
  trace_reset ();
  afut_future_add_done_callback (r.future, trace_done_cb, "F");
  g_assert_true (afut_loop_call_soon (loop, resolve_then_queue_cb, &r));
  g_assert_true (afut_loop_call_soon (loop, trace_cb, "Z"));
  afut_loop_dispatch (loop, 10 * NS_PER_S);
  g_assert_cmpstr (trace->str, ==, "X Z F Y ");

  afut_future_unref (r.future);
  afut_loop_unref (loop);
}

typedef struct
{
  RecBackend *rb;
  AfutLoop *loop;
} AdvanceClock;

static void
advance_clock_cb (void *data)
{
  AdvanceClock *ac = (AdvanceClock *) data;
  g_string_append (trace, "A ");
  ac->rb->now += 2 * NS_PER_S;
  g_assert_true (afut_loop_call_soon (ac->loop, trace_cb, "B"));
}

static void
test_dispatch_due_timers_join_next_batch (void)
{
  RecBackend rb;
  AfutLoop *loop;
  AfutFuture *timer;
  AdvanceClock ac;

  rec_init (&rb);
  loop = rec_loop_new (&rb, AFUT_LOOP_NONE);
  ac.rb = &rb;
  ac.loop = loop;
  trace_reset ();
  timer = afut_loop_sleep (loop, 1.0);
  afut_future_add_done_callback (timer, trace_done_cb, "T");
  g_assert_true (afut_loop_call_soon (loop, advance_clock_cb, &ac));

  /* Batch 1: A, which passes the deadline and queues B.  Batch 2: B, then
   * the expired timer, which completes its future.  Batch 3: its done
   * callback.  A dispatch with a budget goes on while a timer is due. */
  afut_loop_dispatch (loop, 0);
  g_assert_cmpstr (trace->str, ==, "A ");
  afut_loop_dispatch (loop, 0);
  g_assert_cmpstr (trace->str, ==, "A B ");
  g_assert_true (afut_future_is_done (timer));
  afut_loop_dispatch (loop, 0);
  g_assert_cmpstr (trace->str, ==, "A B T ");
  g_assert_false (afut_loop_prepare (loop, NULL));

  afut_future_unref (timer);
  timer = afut_loop_sleep (loop, 1.0);
  trace_reset ();
  afut_future_add_done_callback (timer, trace_done_cb, "T");
  g_assert_true (afut_loop_call_soon (loop, advance_clock_cb, &ac));
  afut_loop_dispatch (loop, 10 * NS_PER_S);
  g_assert_cmpstr (trace->str, ==, "A B T ");

  afut_future_unref (timer);
  afut_loop_unref (loop);
  rec_clear (&rb);
}

typedef struct
{
  AfutLoop *loop;
  guint n_runs;
  gboolean stop;
  gint64 give_up_at;
  gboolean overran;
} Endless;

static void
endless_cb (void *data)
{
  Endless *e = (Endless *) data;
  e->n_runs++;
  /* A dispatch that ignored its budget would never return: fail instead
   * of hanging. */
  if (g_get_monotonic_time () > e->give_up_at)
    {
      e->overran = TRUE;
      e->stop = TRUE;
    }
  if (!e->stop)
    g_assert_true (afut_loop_call_soon (e->loop, endless_cb, e));
}

static void
test_dispatch_budget_bounds_endless_work (void)
{
  AfutLoop *loop = new_virtual_loop ();
  Endless e = { .loop = loop };
  gint64 start, elapsed_us;
  guint most_batches = 0;
  int attempt;

  g_assert_true (afut_loop_call_soon (loop, endless_cb, &e));
  /* Work that never ends: the budget, 2 ms of wall time, ends each
   * dispatch, with the work still pending.  More than one batch fits in
   * it, in one try of ten at least: a single batch may take a whole
   * budget on a loaded machine, or under valgrind, whose first run of the
   * code translates it. */
  for (attempt = 0; attempt < 10 && most_batches <= 1; attempt++)
    {
      guint before = e.n_runs;
      start = g_get_monotonic_time ();
      e.give_up_at = start + 5 * G_USEC_PER_SEC;
      afut_loop_dispatch (loop, 2 * NS_PER_MS);
      elapsed_us = g_get_monotonic_time () - start;
      g_assert_false (e.overran);
      g_assert_cmpint (elapsed_us, >=, 2000);
      g_assert_cmpint (elapsed_us, <, 5 * G_USEC_PER_SEC);
      g_assert_true (afut_loop_prepare (loop, NULL));
      most_batches = MAX (most_batches, e.n_runs - before);
    }
  g_assert_cmpuint (most_batches, >, 1);

  e.stop = TRUE;
  afut_loop_dispatch (loop, 10 * NS_PER_S);
  g_assert_false (afut_loop_prepare (loop, NULL));
  afut_loop_unref (loop);
}

typedef struct
{
  AfutLoop *loop;
  gboolean queued_ran;
  gboolean queued_ran_inside;
  guint n_criticals;
} NestedDispatch;

static void
nested_dispatch_cb (void *data)
{
  NestedDispatch *nd = (NestedDispatch *) data;
  g_assert_true (afut_loop_call_soon (nd->loop, set_flag_cb, &nd->queued_ran));
  expect_log_begin (AFUT_LOG_CRITICAL,
                    "afut_loop_dispatch: the loop is already running");
  afut_loop_dispatch (nd->loop, 10 * NS_PER_S);
  nd->n_criticals = expect_log_end ();
  nd->queued_ran_inside = nd->queued_ran;
}

static void
test_dispatch_from_own_callback_refused (void)
{
  AfutLoop *loop = new_virtual_loop ();
  NestedDispatch nd = { .loop = loop };

  g_assert_true (afut_loop_call_soon (loop, nested_dispatch_cb, &nd));
  afut_loop_dispatch (loop, 0);
  g_assert_cmpuint (nd.n_criticals, ==, 1);
  /* The refused dispatch ran nothing. */
  g_assert_false (nd.queued_ran_inside);
  g_assert_false (nd.queued_ran);
  /* And the outer one still keeps to its single batch. */
  afut_loop_dispatch (loop, 0);
  g_assert_true (nd.queued_ran);

  /* The same from a callback run by afut_loop_iterate. */
  memset (&nd, 0, sizeof nd);
  nd.loop = loop;
  g_assert_true (afut_loop_call_soon (loop, nested_dispatch_cb, &nd));
  g_assert_true (afut_loop_iterate (loop, FALSE));
  g_assert_cmpuint (nd.n_criticals, ==, 1);
  g_assert_false (nd.queued_ran_inside);
  g_assert_true (afut_loop_iterate (loop, FALSE));
  g_assert_true (nd.queued_ran);
  afut_loop_unref (loop);
}

static void
test_backend_wait_every_iteration (void)
{
  RecBackend rb;
  AfutLoop *loop;
  StepLog log;
  AfutFuture *task;
  guint i;

  rec_init (&rb);
  rb.now = 50 * NS_PER_S;
  loop = rec_loop_new (&rb, AFUT_LOOP_NONE);
  memset (&log, 0, sizeof log);
  log.loop = loop;

  /* Four steps, four iterations, each with work ready: the embedded
   * backend would skip its poll() then, another backend gets its turn. */
  task = yielder_new (loop, &log, 3, 0);
  run (loop, task);
  g_assert_cmpuint (log.n_steps, ==, 4);
  g_assert_cmpuint (rb.n_waits, ==, 4);
  for (i = 0; i < 4; i++)
    g_assert_cmpint (rb.timeouts[i], ==, 0);
  afut_future_unref (task);

  /* A sleep: a step (work ready), a wait for the timer's full delay,
   * then the timer's batch, the task's wakeup. */
  rb.n_waits = 0;
  log.n_steps = 0;
  task = yielder_new (loop, &log, 0, 1.25);
  run (loop, task);
  g_assert_cmpuint (log.n_steps, ==, 2);
  g_assert_cmpuint (rb.n_waits, ==, 3);
  g_assert_cmpint (rb.timeouts[0], ==, 0);
  g_assert_cmpint (rb.timeouts[1], ==, 5 * NS_PER_S / 4);
  g_assert_cmpint (rb.timeouts[2], ==, 0);
  g_assert_cmpint (afut_loop_time_ns (loop), ==, 50 * NS_PER_S + 5 * NS_PER_S / 4);
  afut_future_unref (task);

  afut_loop_unref (loop);
  rec_clear (&rb);
}

static void
test_backend_dispatch_from_wait (void)
{
  RecBackend rb;
  AfutLoop *loop;
  StepLog log;
  AfutFuture *task;
  Chain chain;

  rec_init (&rb);
  rb.dispatch_in_wait = TRUE;
  rb.dispatch_budget_ns = 10 * NS_PER_S;
  loop = rec_loop_new (&rb, AFUT_LOOP_VIRTUAL_CLOCK);
  memset (&log, 0, sizeof log);
  log.loop = loop;
  log.rb = &rb;
  chain = (Chain){ loop, "C", 1, 3 };
  trace_reset ();

  task = yielder_new (loop, &log, 3, 2.0);
  g_assert_true (afut_loop_call_soon (loop, chain_cb, &chain));
  run (loop, task);
  g_assert_cmpint (afut_future_get_state (task), ==, AFUT_FUTURE_DONE);
  /* Every step ran inside the backend's dispatch, with the loop running. */
  g_assert_cmpuint (log.n_steps, ==, 5);
  g_assert_cmpuint (log.n_in_dispatch, ==, 5);
  g_assert_cmpuint (log.n_running_ok, ==, 5);
  g_assert_cmpuint (rb.n_dispatches, >=, 2);
  g_assert_cmpstr (trace->str, ==, "C1 C2 C3 ");
  g_assert_cmpint (afut_loop_time_ns (loop), ==, 2 * NS_PER_S);
  /* The run call is back to waiting: afut_loop_get_running is clear. */
  g_assert_null (afut_loop_get_running ());

  afut_future_unref (task);
  afut_loop_unref (loop);
  rec_clear (&rb);
}

typedef struct
{
  AfutFuture *other;
  gboolean tried;
  gboolean run_result;
  gboolean iterate_result;
  guint n_run_criticals;
  guint n_iterate_criticals;
} NestedTry;

static void
nested_run_hook (RecBackend *rb, AfutLoop *loop)
{
  NestedTry *nt = (NestedTry *) rb->hook_data;
  if (nt->tried)
    return;
  nt->tried = TRUE;
  expect_log_begin (AFUT_LOG_CRITICAL,
                    "afut_loop_run_until_complete: the loop is already "
                    "running");
  nt->run_result = afut_loop_run_until_complete (loop, nt->other);
  nt->n_run_criticals = expect_log_end ();
  expect_log_begin (AFUT_LOG_CRITICAL,
                    "afut_loop_iterate: the loop is already running");
  nt->iterate_result = afut_loop_iterate (loop, FALSE);
  nt->n_iterate_criticals = expect_log_end ();
}

static void
test_backend_nested_run_from_wait_refused (void)
{
  RecBackend rb;
  AfutLoop *loop;
  StepLog log;
  AfutFuture *task;
  NestedTry nt;

  rec_init (&rb);
  rb.dispatch_in_wait = TRUE;
  rb.dispatch_budget_ns = 10 * NS_PER_S;
  rb.wait_hook = nested_run_hook;
  rb.hook_data = &nt;
  loop = rec_loop_new (&rb, AFUT_LOOP_VIRTUAL_CLOCK);
  memset (&log, 0, sizeof log);
  log.loop = loop;
  log.rb = &rb;
  memset (&nt, 0, sizeof nt);
  nt.other = afut_future_new (loop);

  task = yielder_new (loop, &log, 2, 0);
  run (loop, task);
  g_assert_true (nt.tried);
  g_assert_false (nt.run_result);
  g_assert_cmpuint (nt.n_run_criticals, ==, 1);
  g_assert_false (nt.iterate_result);
  g_assert_cmpuint (nt.n_iterate_criticals, ==, 1);
  /* The refused calls ran nothing; the dispatch of the same wait did. */
  g_assert_false (afut_future_is_done (nt.other));
  g_assert_cmpuint (log.n_steps, ==, 3);
  g_assert_cmpuint (log.n_in_dispatch, ==, 3);

  afut_future_unref (nt.other);
  afut_future_unref (task);
  afut_loop_unref (loop);
  rec_clear (&rb);
}

static void
test_backend_close_hook_once_before_free (void)
{
  RecBackend rb;
  AfutLoop *loop;
  SleeperState st = { 0 };
  AfutFuture *task, *kept;

  rec_init (&rb);
  loop = rec_loop_new (&rb, AFUT_LOOP_VIRTUAL_CLOCK);
  task = sleeper_new (loop, &st, 10.0);
  kept = afut_future_new (loop);
  g_assert_true (afut_loop_iterate (loop, FALSE));
  g_assert_true (st.started);

  /* Shutting down is not closing. */
  afut_loop_shutdown (loop);
  g_assert_cmpuint (rb.n_closes, ==, 0);
  g_assert_true (st.cancelled);
  g_assert_cmpint (afut_future_get_state (task), ==, AFUT_FUTURE_CANCELLED);
  afut_future_unref (task);

  /* A second task, pending when the last reference goes. */
  memset (&st, 0, sizeof st);
  task = sleeper_new (loop, &st, 10.0);
  g_assert_true (afut_loop_iterate (loop, FALSE));
  afut_loop_unref (loop);
  /* Closed once, after its tasks ended; freed only when the future that
   * outlives it goes. */
  g_assert_true (st.cancelled);
  g_assert_cmpuint (rb.n_closes, ==, 1);
  g_assert_cmpuint (rb.n_frees, ==, 0);
  g_assert_cmpstr (rb.events->str, ==, "close ");
  g_assert_true (rb.closed_loop == loop);
  g_assert_cmpuint (rb.n_tasks_at_close, ==, 0);
  g_assert_false (rb.prepare_at_close);
  g_assert_cmpint (rb.timeout_at_close, ==, -1);
  g_assert_cmpint (afut_future_get_state (task), ==, AFUT_FUTURE_CANCELLED);

  afut_future_unref (task);
  g_assert_cmpuint (rb.n_frees, ==, 0);
  afut_future_unref (kept);
  g_assert_cmpuint (rb.n_closes, ==, 1);
  g_assert_cmpuint (rb.n_frees, ==, 1);
  g_assert_cmpstr (rb.events->str, ==, "close free ");
  rec_clear (&rb);

  /* A loop with nothing left: close, then free, in one unref. */
  rec_init (&rb);
  loop = rec_loop_new (&rb, AFUT_LOOP_NONE);
  afut_loop_unref (loop);
  g_assert_cmpstr (rb.events->str, ==, "close free ");
  g_assert_cmpuint (rb.n_closes, ==, 1);
  rec_clear (&rb);
}

/* ======================================================================
 * 3. completing from other threads
 * ====================================================================== */

typedef enum
{
  OP_RESOLVE,
  OP_POINTER,
  OP_INT,
  OP_FAIL,
  OP_CANCEL,
  N_OPS
} ThreadOp;

static const char *const op_names[N_OPS] = { "resolve", "pointer", "int",
                                             "fail", "cancel" };

typedef struct
{
  gint n;
  GThread *thread;
} DestroyLog;

static DestroyLog destroy_log;

static void
logged_destroy (void *data)
{
  destroy_log.thread = g_thread_self ();
  g_atomic_int_inc (&destroy_log.n);
  g_free (data);
}

/* One completion from another thread; then, if @marker is set, a
 * threadsafe call that sets it: the loop has seen the completion once
 * the marker is set (one thread's calls run in order). */
typedef struct
{
  AfutLoop *loop;
  AfutFuture *future; /* the reference handed to the thread */
  ThreadOp op;
  gboolean wait_for_block;
  gboolean *marker;
} OneShot;

static gboolean
send_op (AfutFuture *future, ThreadOp op)
{
  switch (op)
    {
    case OP_RESOLVE:
      return afut_future_resolve_threadsafe (future);
    case OP_POINTER:
      return afut_future_resolve_pointer_threadsafe (
          future, g_strdup ("from thread"), logged_destroy);
    case OP_INT:
      return afut_future_resolve_int_threadsafe (future, 42);
    case OP_FAIL:
      return afut_future_fail_threadsafe (
          future, afut_error_new_literal (test_domain (), 7, "thread failed"));
    case OP_CANCEL:
      return afut_future_cancel_threadsafe (future, "from thread");
    default:
      g_assert_not_reached ();
    }
  return FALSE;
}

static gpointer
one_shot_thread (gpointer data)
{
  OneShot *os = (OneShot *) data;
  gboolean ok;
  if (os->wait_for_block)
    wait_for_main_thread_to_block ();
  ok = send_op (os->future, os->op);
  if (os->marker != NULL)
    ok = afut_loop_call_soon_threadsafe (os->loop, set_flag_cb, os->marker) && ok;
  return GINT_TO_POINTER (ok);
}

typedef struct
{
  GThread *thread;
  gboolean done;
  AfutLoop *running;
  AfutFutureState state;
  AfutValueType value_type;
  int64_t v_int;
  char *text;
  AfutQuark domain;
  int code;
  char *message;
} Completion;

static void
record_completion_cb (AfutFuture *future, void *data)
{
  Completion *c = (Completion *) data;
  const AfutError *error;
  c->thread = g_thread_self ();
  c->running = afut_loop_get_running ();
  c->state = afut_future_get_state (future);
  if (c->state == AFUT_FUTURE_DONE)
    {
      c->value_type = afut_future_get_value_type (future);
      if (c->value_type == AFUT_VALUE_INT)
        c->v_int = afut_future_get_int (future);
      else if (c->value_type == AFUT_VALUE_POINTER)
        c->text = g_strdup ((const char *) afut_future_get_pointer (future));
    }
  else
    {
      error = afut_future_get_error (future);
      c->domain = error->domain;
      c->code = error->code;
      c->message = g_strdup (error->message);
    }
  c->done = TRUE;
}

static void
completion_clear (Completion *c)
{
  g_free (c->text);
  g_free (c->message);
  memset (c, 0, sizeof *c);
}

static void
assert_completion (const Completion *c, ThreadOp op)
{
  switch (op)
    {
    case OP_RESOLVE:
      g_assert_cmpint (c->state, ==, AFUT_FUTURE_DONE);
      g_assert_cmpint (c->value_type, ==, AFUT_VALUE_NONE);
      break;
    case OP_POINTER:
      g_assert_cmpint (c->state, ==, AFUT_FUTURE_DONE);
      g_assert_cmpint (c->value_type, ==, AFUT_VALUE_POINTER);
      g_assert_cmpstr (c->text, ==, "from thread");
      break;
    case OP_INT:
      g_assert_cmpint (c->state, ==, AFUT_FUTURE_DONE);
      g_assert_cmpint (c->value_type, ==, AFUT_VALUE_INT);
      g_assert_cmpint (c->v_int, ==, 42);
      break;
    case OP_FAIL:
      g_assert_cmpint (c->state, ==, AFUT_FUTURE_FAILED);
      g_assert_cmpuint (c->domain, ==, test_domain ());
      g_assert_cmpint (c->code, ==, 7);
      g_assert_cmpstr (c->message, ==, "thread failed");
      break;
    case OP_CANCEL:
      g_assert_cmpint (c->state, ==, AFUT_FUTURE_CANCELLED);
      g_assert_cmpuint (c->domain, ==, AFUT_ERROR);
      g_assert_cmpint (c->code, ==, AFUT_ERROR_CANCELLED);
      g_assert_cmpstr (c->message, ==, "from thread");
      break;
    default:
      g_assert_not_reached ();
    }
}

static void
test_threadsafe_completes_on_loop_thread (gconstpointer data)
{
  ThreadOp op = (ThreadOp) GPOINTER_TO_INT (data);
  AfutLoop *loop = new_real_loop ();
  Completion c = { 0 };
  OneShot os = { 0 };
  GThread *thread;

  memset (&destroy_log, 0, sizeof destroy_log);
  os.loop = loop;
  os.future = afut_future_new (loop);
  os.op = op;
  os.wait_for_block = TRUE;
  afut_future_add_done_callback (os.future, record_completion_cb, &c);
  /* This thread's only reference goes to the other thread. */
  thread = g_thread_new ("completer", one_shot_thread, &os);
  /* Blocked in poll() until the completion wakes the loop. */
  run_until_flag (loop, &c.done);
  g_assert_true (GPOINTER_TO_INT (g_thread_join (thread)));

  g_assert_true (c.thread == g_thread_self ());
  g_assert_true (c.running == loop);
  assert_completion (&c, op);
  /* The handed reference was the last one, released on this thread
   * right after the callbacks: the value went with it. */
  if (op == OP_POINTER)
    {
      g_assert_cmpint (g_atomic_int_get (&destroy_log.n), ==, 1);
      g_assert_true (destroy_log.thread == g_thread_self ());
    }
  else
    g_assert_cmpint (g_atomic_int_get (&destroy_log.n), ==, 0);

  completion_clear (&c);
  afut_loop_unref (loop);
}

/* The reference handed over is released: the loop's memory (which waits
 * for its last future) goes with its last unref. */
static void
test_threadsafe_handed_references_released (void)
{
  RecBackend rb;
  AfutLoop *loop;
  Completion c[N_OPS];
  OneShot os[N_OPS];
  GThread *threads[N_OPS];
  guint i;
  gboolean all_done = FALSE;

  rec_init (&rb);
  rb.block = TRUE;
  loop = rec_loop_new (&rb, AFUT_LOOP_NONE);
  memset (&destroy_log, 0, sizeof destroy_log);
  memset (c, 0, sizeof c);
  memset (os, 0, sizeof os);
  for (i = 0; i < N_OPS; i++)
    {
      os[i].loop = loop;
      os[i].future = afut_future_new (loop);
      os[i].op = (ThreadOp) i;
      afut_future_add_done_callback (os[i].future, record_completion_cb, &c[i]);
      threads[i] = g_thread_new ("completer", one_shot_thread, &os[i]);
    }
  while (!all_done)
    {
      g_assert_true (afut_loop_iterate (loop, TRUE));
      all_done = TRUE;
      for (i = 0; i < N_OPS; i++)
        all_done = all_done && c[i].done;
    }
  for (i = 0; i < N_OPS; i++)
    {
      g_assert_true (GPOINTER_TO_INT (g_thread_join (threads[i])));
      g_assert_true (c[i].thread == g_thread_self ());
      assert_completion (&c[i], (ThreadOp) i);
      completion_clear (&c[i]);
    }
  g_assert_cmpint (g_atomic_int_get (&destroy_log.n), ==, 1);
  g_assert_true (destroy_log.thread == g_thread_self ());
  g_assert_cmpint (g_atomic_int_get (&rb.n_wakeups), >=, 1);

  afut_loop_unref (loop);
  g_assert_cmpuint (rb.n_closes, ==, 1);
  g_assert_cmpuint (rb.n_frees, ==, 1);
  rec_clear (&rb);
}

/* An outcome that arrives after the future was cancelled (or otherwise
 * completed) is dropped: no critical, the value's destroy notify once, on
 * the loop's thread; the future stays as it was. */
static void
test_threadsafe_after_cancel_dropped (gconstpointer data)
{
  ThreadOp op = (ThreadOp) GPOINTER_TO_INT (data);
  AfutLoop *loop = new_real_loop ();
  Completion c = { 0 };
  OneShot os = { 0 };
  gboolean marker = FALSE;
  GThread *thread;
  AfutFuture *future;

  memset (&destroy_log, 0, sizeof destroy_log);
  future = afut_future_new (loop);
  afut_future_add_done_callback (future, record_completion_cb, &c);
  g_assert_true (afut_future_cancel (future, "cancelled first"));
  run_until_flag (loop, &c.done);

  os.loop = loop;
  os.future = afut_future_ref (future);
  os.op = op;
  os.wait_for_block = TRUE;
  os.marker = &marker;
  thread = g_thread_new ("late", one_shot_thread, &os);
  run_until_flag (loop, &marker);
  g_assert_true (GPOINTER_TO_INT (g_thread_join (thread)));

  g_assert_cmpint (afut_future_get_state (future), ==, AFUT_FUTURE_CANCELLED);
  g_assert_cmpstr (afut_future_get_error (future)->message, ==,
                   "cancelled first");
  g_assert_cmpint (g_atomic_int_get (&destroy_log.n), ==,
                   (op == OP_POINTER ? 1 : 0));
  if (op == OP_POINTER)
    g_assert_true (destroy_log.thread == g_thread_self ());

  completion_clear (&c);
  afut_future_unref (future);
  afut_loop_unref (loop);
}

static void
test_threadsafe_after_done_dropped (gconstpointer data)
{
  ThreadOp op = (ThreadOp) GPOINTER_TO_INT (data);
  AfutLoop *loop = new_real_loop ();
  OneShot os = { 0 };
  gboolean marker = FALSE;
  GThread *thread;
  AfutFuture *future;

  memset (&destroy_log, 0, sizeof destroy_log);
  future = afut_future_new (loop);
  g_assert_true (afut_future_resolve_int (future, 1));

  os.loop = loop;
  os.future = afut_future_ref (future);
  os.op = op;
  os.wait_for_block = TRUE;
  os.marker = &marker;
  thread = g_thread_new ("late", one_shot_thread, &os);
  run_until_flag (loop, &marker);
  g_assert_true (GPOINTER_TO_INT (g_thread_join (thread)));

  g_assert_cmpint (afut_future_get_state (future), ==, AFUT_FUTURE_DONE);
  g_assert_cmpint (afut_future_get_int (future), ==, 1);
  g_assert_cmpint (g_atomic_int_get (&destroy_log.n), ==,
                   (op == OP_POINTER ? 1 : 0));

  afut_future_unref (future);
  afut_loop_unref (loop);
}

/* A task awaiting a plain future, cancelled from another thread. */
typedef struct
{
  gboolean caught;
  char message[64];
  GThread *thread;
} WaiterState;

typedef struct
{
  AfutTask task;
  WaiterState *state;
  AfutFuture *awaited;
} Waiter;

static void
waiter_step (AfutTask *task)
{
  Waiter *self = (Waiter *) task;
  AFUT_BEGIN (task);
  AFUT_AWAIT_TRY (task, afut_future_ref (self->awaited));
  if (afut_task_caught (task) != NULL)
    {
      self->state->caught = afut_error_is_cancelled (afut_task_caught (task));
      g_strlcpy (self->state->message, afut_task_caught (task)->message,
                 sizeof self->state->message);
      self->state->thread = g_thread_self ();
      AFUT_RERAISE (task);
    }
  AFUT_END (task);
}

static void
test_threadsafe_cancel_task_from_thread (void)
{
  AfutLoop *loop = new_real_loop ();
  WaiterState st = { 0 };
  AfutFuture *awaited = afut_future_new (loop);
  AfutFuture *task;
  OneShot os = { 0 };
  GThread *thread;

  task = afut_task_new (loop, waiter_step, sizeof (Waiter),
                        &(Waiter){ .state = &st, .awaited = awaited },
                        "waiter", NULL);
  g_assert_true (afut_loop_iterate (loop, FALSE));
  os.loop = loop;
  os.future = afut_future_ref (task);
  os.op = OP_CANCEL;
  os.wait_for_block = TRUE;
  thread = g_thread_new ("canceller", one_shot_thread, &os);
  run (loop, task);
  g_assert_true (GPOINTER_TO_INT (g_thread_join (thread)));

  /* The task cleaned up on the loop's thread and ended cancelled; the
   * future it awaited was cancelled with the message. */
  g_assert_true (st.caught);
  g_assert_cmpstr (st.message, ==, "from thread");
  g_assert_true (st.thread == g_thread_self ());
  g_assert_cmpint (afut_future_get_state (task), ==, AFUT_FUTURE_CANCELLED);
  g_assert_cmpstr (afut_future_get_error (task)->message, ==, "from thread");
  g_assert_cmpint (afut_future_get_state (awaited), ==, AFUT_FUTURE_CANCELLED);

  afut_future_unref (awaited);
  afut_future_unref (task);
  afut_loop_unref (loop);
}

/* Many threads, many completions: each exactly once, none lost. */
#define N_STRESS_THREADS 8
#define N_STRESS_PER_THREAD 400
#define N_STRESS (N_STRESS_THREADS * N_STRESS_PER_THREAD)

typedef struct StressShared StressShared;

typedef struct
{
  StressShared *shared;
  guint index;
  guint n_callbacks;
} StressSlot;

struct StressShared
{
  AfutLoop *loop;
  GThread *loop_thread;
  AfutFuture *futures[N_STRESS];
  StressSlot slots[N_STRESS];
  guint n_done;
  guint n_wrong_thread;
  gint n_destroyed;    /* atomic */
  gint n_failed_sends; /* atomic */
};

typedef struct
{
  StressShared *shared;
  guint first;
} StressWorker;

static void
stress_destroy (void *data)
{
  StressShared *s = *(StressShared **) data;
  g_atomic_int_inc (&s->n_destroyed);
  g_free (data);
}

static void
stress_done_cb (AfutFuture *future, void *data)
{
  StressSlot *slot = (StressSlot *) data;
  (void) future;
  slot->n_callbacks++;
  slot->shared->n_done++;
  if (g_thread_self () != slot->shared->loop_thread)
    slot->shared->n_wrong_thread++;
}

static gpointer
stress_thread (gpointer data)
{
  StressWorker *w = (StressWorker *) data;
  StressShared *s = w->shared;
  guint i;
  char message[32];

  wait_for_main_thread_to_block ();
  for (i = w->first; i < w->first + N_STRESS_PER_THREAD; i++)
    {
      /* The reference main set aside for this thread. */
      AfutFuture *f = s->futures[i];
      gboolean ok = FALSE;
      switch (i % N_OPS)
        {
        case OP_RESOLVE:
          ok = afut_future_resolve_threadsafe (f);
          break;
        case OP_POINTER:
          {
            StressShared **p = g_new (StressShared *, 2);
            p[0] = s;
            p[1] = GUINT_TO_POINTER (i);
            ok = afut_future_resolve_pointer_threadsafe (f, p,
                                                         stress_destroy);
          }
          break;
        case OP_INT:
          ok = afut_future_resolve_int_threadsafe (f, (int64_t) i * 3);
          break;
        case OP_FAIL:
          ok = afut_future_fail_threadsafe (
              f, afut_error_new (test_domain (), (int) i, "failed %u", i));
          break;
        case OP_CANCEL:
          g_snprintf (message, sizeof message, "cancel %u", i);
          ok = afut_future_cancel_threadsafe (f, message);
          break;
        default:
          break;
        }
      if (!ok)
        g_atomic_int_inc (&s->n_failed_sends);
      if (i % 64 == 0)
        g_thread_yield ();
    }
  return NULL;
}

static void
test_threadsafe_many_threads (void)
{
  StressShared *s = g_new0 (StressShared, 1);
  StressWorker workers[N_STRESS_THREADS];
  GThread *threads[N_STRESS_THREADS];
  guint i, t, n_pointers = 0, n_iterations = 0;
  char expected[32];

  s->loop = new_real_loop ();
  s->loop_thread = g_thread_self ();
  for (i = 0; i < N_STRESS; i++)
    {
      s->futures[i] = afut_future_new (s->loop);
      afut_future_ref (s->futures[i]); /* the thread's */
      s->slots[i].shared = s;
      s->slots[i].index = i;
      afut_future_add_done_callback (s->futures[i], stress_done_cb,
                                     &s->slots[i]);
    }
  for (t = 0; t < N_STRESS_THREADS; t++)
    {
      workers[t].shared = s;
      workers[t].first = t * N_STRESS_PER_THREAD;
      threads[t] = g_thread_new ("stress", stress_thread, &workers[t]);
    }
  while (s->n_done < N_STRESS)
    {
      g_assert_true (afut_loop_iterate (s->loop, TRUE));
      n_iterations++;
    }
  for (t = 0; t < N_STRESS_THREADS; t++)
    g_thread_join (threads[t]);
  /* Anything sent twice would run now. */
  for (i = 0; i < 3; i++)
    g_assert_true (afut_loop_iterate (s->loop, FALSE));

  g_assert_cmpint (g_atomic_int_get (&s->n_failed_sends), ==, 0);
  g_assert_cmpuint (s->n_done, ==, N_STRESS);
  g_assert_cmpuint (s->n_wrong_thread, ==, 0);
  for (i = 0; i < N_STRESS; i++)
    {
      AfutFuture *f = s->futures[i];
      const AfutError *e;
      g_assert_cmpuint (s->slots[i].n_callbacks, ==, 1);
      switch (i % N_OPS)
        {
        case OP_RESOLVE:
          g_assert_cmpint (afut_future_get_state (f), ==, AFUT_FUTURE_DONE);
          g_assert_cmpint (afut_future_get_value_type (f), ==,
                           AFUT_VALUE_NONE);
          break;
        case OP_POINTER:
          n_pointers++;
          g_assert_cmpint (afut_future_get_state (f), ==, AFUT_FUTURE_DONE);
          g_assert_cmpuint (
              GPOINTER_TO_UINT (((StressShared **) afut_future_get_pointer (f))[1]),
              ==, i);
          break;
        case OP_INT:
          g_assert_cmpint (afut_future_get_int (f), ==, (int64_t) i * 3);
          break;
        case OP_FAIL:
          g_assert_cmpint (afut_future_get_state (f), ==, AFUT_FUTURE_FAILED);
          e = afut_future_get_error (f);
          g_assert_cmpint (e->code, ==, (int) i);
          break;
        case OP_CANCEL:
          g_assert_cmpint (afut_future_get_state (f), ==,
                           AFUT_FUTURE_CANCELLED);
          g_snprintf (expected, sizeof expected, "cancel %u", i);
          g_assert_cmpstr (afut_future_get_error (f)->message, ==, expected);
          break;
        default:
          break;
        }
    }
  g_test_message ("%d completions in %u iterations", N_STRESS, n_iterations);
  g_assert_cmpint (g_atomic_int_get (&s->n_destroyed), ==, 0);
  for (i = 0; i < N_STRESS; i++)
    afut_future_unref (s->futures[i]);
  g_assert_cmpint (g_atomic_int_get (&s->n_destroyed), ==, (gint) n_pointers);
  afut_loop_unref (s->loop);
  g_free (s);
}

/* ======================================================================
 * 4. holds
 * ====================================================================== */

typedef struct
{
  AfutLoop *loop;
  gulong delay_us;
  gboolean released; /* loop thread */
  GThread *release_thread;
  GString *events;
  gboolean post_ok;
} Releaser;

static void
release_cb (void *data)
{
  Releaser *r = (Releaser *) data;
  afut_loop_release (r->loop);
  r->released = TRUE;
  r->release_thread = g_thread_self ();
  if (r->events != NULL)
    g_string_append (r->events, "release ");
}

static gpointer
releaser_thread (gpointer data)
{
  Releaser *r = (Releaser *) data;
  wait_for_main_thread_to_block ();
  g_usleep (r->delay_us);
  r->post_ok = afut_loop_call_soon_threadsafe (r->loop, release_cb, r);
  return NULL;
}

static void
test_hold_shutdown_waits_for_release (void)
{
  AfutLoop *loop = new_real_loop ();
  Releaser r = { .loop = loop, .delay_us = 3000 };
  SleeperState st = { 0 };
  AfutFuture *task;
  GThread *thread;
  gint64 start;
  gboolean ran = FALSE;

  task = sleeper_new (loop, &st, 3600.0);
  g_assert_true (afut_loop_iterate (loop, FALSE));
  afut_loop_hold (loop);
  start = g_get_monotonic_time ();
  thread = g_thread_new ("releaser", releaser_thread, &r);
  afut_loop_shutdown (loop);
  /* Back only once the thread's release ran, on this thread; the task
   * was cancelled first, not waited for. */
  g_assert_true (r.released);
  g_assert_true (r.release_thread == g_thread_self ());
  g_assert_cmpint (g_get_monotonic_time () - start, >=, 3000);
  g_assert_true (st.cancelled);
  g_assert_cmpint (afut_future_get_state (task), ==, AFUT_FUTURE_CANCELLED);
  g_thread_join (thread);
  g_assert_true (r.post_ok);

  /* Still usable, and not held any more: a second shutdown returns. */
  g_assert_true (afut_loop_call_soon (loop, set_flag_cb, &ran));
  afut_loop_shutdown (loop);
  g_assert_true (ran);

  afut_future_unref (task);
  afut_loop_unref (loop);
}

static void
test_hold_nested (void)
{
  AfutLoop *loop = new_virtual_loop ();
  Releaser r1 = { .loop = loop, .delay_us = 1000 };
  Releaser r2 = { .loop = loop, .delay_us = 3000 };
  GThread *t1, *t2;

  afut_loop_hold (loop);
  afut_loop_hold (loop);
  t1 = g_thread_new ("releaser", releaser_thread, &r1);
  t2 = g_thread_new ("releaser", releaser_thread, &r2);
  /* A virtual clock with nothing to do blocks too, until both release. */
  afut_loop_shutdown (loop);
  g_assert_true (r1.released);
  g_assert_true (r2.released);
  g_thread_join (t1);
  g_thread_join (t2);
  afut_loop_unref (loop);
}

static void
test_hold_last_unref_waits_for_release (void)
{
  RecBackend rb;
  AfutLoop *loop;
  Releaser r = { .delay_us = 2000 };
  GThread *thread;

  rec_init (&rb);
  rb.block = TRUE;
  loop = rec_loop_new (&rb, AFUT_LOOP_VIRTUAL_CLOCK);
  r.loop = loop;
  r.events = rb.events;
  afut_loop_hold (loop);
  thread = g_thread_new ("releaser", releaser_thread, &r);
  afut_loop_unref (loop);
  g_thread_join (thread);
  g_assert_true (r.post_ok);
  g_assert_true (r.released);
  /* Held open until the release, closed and freed after. */
  g_assert_cmpstr (rb.events->str, ==, "release close free ");
  g_assert_cmpint (g_atomic_int_get (&rb.n_wakeups), >=, 1);
  rec_clear (&rb);
}

/* The hold's purpose is a worker thread that completes the loop's work
 * and lets go (afut_to_thread does it so): once the loop sees the
 * release it may shut down and free itself, while the worker is still
 * inside afut_loop_call_soon_threadsafe (), waking the loop through the
 * backend.  The backend must not be freed under that wakeup. */
static void
test_hold_free_waits_for_posting_thread (void)
{
  RecBackend rb;
  AfutLoop *loop;
  Releaser r = { .delay_us = 0 };
  GThread *thread;

  rec_init (&rb);
  rb.block = TRUE;
  rb.linger_us = 10000;
  loop = rec_loop_new (&rb, AFUT_LOOP_VIRTUAL_CLOCK);
  r.loop = loop;
  afut_loop_hold (loop);
  thread = g_thread_new ("releaser", releaser_thread, &r);
  afut_loop_unref (loop);
  g_thread_join (thread);
  g_assert_true (r.released);
  g_assert_cmpuint (rb.n_frees, ==, 1);
  /* Failed, not aborted: the cases after this one still run. */
  if (g_atomic_int_get (&rb.free_during_wakeup))
    g_test_fail_printf ("the backend was freed while a thread was still "
                        "inside its wakeup, called from "
                        "afut_loop_call_soon_threadsafe ()");
  rec_clear (&rb);
}

static Releaser run_releaser;
static GThread *run_releaser_thread;

static void
hold_main_step (AfutTask *task)
{
  AFUT_BEGIN (task);
  run_releaser.loop = afut_loop_get_running ();
  run_releaser.delay_us = 2000;
  afut_loop_hold (run_releaser.loop);
  run_releaser_thread = g_thread_new ("releaser", releaser_thread, &run_releaser);
  AFUT_END (task);
}

static void
test_hold_afut_run_waits_for_release (void)
{
  memset (&run_releaser, 0, sizeof run_releaser);
  g_assert_cmpint (afut_run (hold_main_step, sizeof (AfutTask), NULL,
                             "hold-main"),
                   ==, 0);
  /* The main task returned at once; afut_run waited for the release. */
  g_assert_true (run_releaser.released);
  g_thread_join (run_releaser_thread);
  g_assert_true (run_releaser.post_ok);
}

static void
body_release_without_hold (void)
{
  AfutLoop *loop = new_virtual_loop ();
  gboolean ran = FALSE;
  afut_loop_hold (loop);
  afut_loop_release (loop);
  afut_loop_release (loop);
  /* The count did not go below zero: shutdown does not wait. */
  g_assert_true (afut_loop_call_soon (loop, set_flag_cb, &ran));
  afut_loop_shutdown (loop);
  g_assert_true (ran);
  afut_loop_unref (loop);
}

/* ======================================================================
 * 5. fd streams
 * ====================================================================== */

/* Writes its chunks, a virtual-clock gap between them; may close after. */
typedef struct
{
  AfutTask task;
  int fd;
  const char *const *chunks;
  double gap;
  gboolean close_after;
  int i;
} ChunkWriter;

static void
chunk_writer_step (AfutTask *task)
{
  ChunkWriter *self = (ChunkWriter *) task;
  size_t len;
  AFUT_BEGIN (task);
  for (self->i = 0; self->chunks[self->i] != NULL; self->i++)
    {
      if (self->i > 0)
        {
          AFUT_AWAIT (task, afut_sleep (self->gap));
        }
      len = strlen (self->chunks[self->i]);
      g_assert_cmpint (write (self->fd, self->chunks[self->i], len), ==,
                       (gssize) len);
    }
  if (self->close_after)
    close (self->fd);
  AFUT_END (task);
}

static AfutFuture *
chunk_writer_new (AfutLoop *loop, int fd, const char *const *chunks, double gap, gboolean close_after)
{
  ChunkWriter init = { .fd = fd,
                       .chunks = chunks,
                       .gap = gap,
                       .close_after = close_after };
  AfutFuture *f = afut_task_new (loop, chunk_writer_step, sizeof init, &init,
                                 "writer", NULL);
  g_assert_nonnull (f);
  return f;
}

static void
record_time_cb (AfutFuture *future, void *data)
{
  (void) future;
  *(int64_t *) data = afut_loop_time_ns (afut_future_get_loop (future));
}

static void
test_fd_read_returns_what_is_there (void)
{
  AfutLoop *loop = new_virtual_loop ();
  int sv[2];
  char buffer[64];
  AfutFuture *r;

  make_socketpair (sv);
  afut_loop_push_thread_default (loop);
  g_assert_cmpint (write (sv[1], "hello", 5), ==, 5);
  g_assert_cmpint (write (sv[1], "world", 5), ==, 5);
  memset (buffer, 0, sizeof buffer);
  r = afut_fd_read (sv[0], buffer, sizeof buffer);
  g_assert_nonnull (r);
  g_assert_cmpstr (afut_task_get_name (AFUT_TASK (r)), ==, "afut_fd_read");
  run (loop, r);
  /* All that was there, not the size asked for, no waiting. */
  g_assert_cmpint (afut_future_get_int (r), ==, 10);
  g_assert_cmpmem (buffer, 10, "helloworld", 10);
  g_assert_cmpint (afut_loop_time_ns (loop), ==, 0);
  afut_future_unref (r);

  /* At most the size asked for; the rest stays for the next read. */
  g_assert_cmpint (write (sv[1], "abcdef", 6), ==, 6);
  r = afut_fd_read (sv[0], buffer, 4);
  run (loop, r);
  g_assert_cmpint (afut_future_get_int (r), ==, 4);
  g_assert_cmpmem (buffer, 4, "abcd", 4);
  afut_future_unref (r);
  r = afut_fd_read (sv[0], buffer, sizeof buffer);
  run (loop, r);
  g_assert_cmpint (afut_future_get_int (r), ==, 2);
  g_assert_cmpmem (buffer, 2, "ef", 2);
  afut_future_unref (r);

  afut_loop_pop_thread_default (loop);
  afut_loop_unref (loop);
  close (sv[0]);
  close (sv[1]);
}

static void
test_fd_read_waits_until_readable (void)
{
  AfutLoop *loop = new_virtual_loop ();
  static const char *const chunks[] = { "", "late", NULL };
  int sv[2];
  char buffer[16];
  AfutFuture *r, *w;
  int64_t done_at = -1;

  make_socketpair (sv);
  afut_loop_push_thread_default (loop);
  r = afut_fd_read (sv[0], buffer, sizeof buffer);
  afut_future_add_done_callback (r, record_time_cb, &done_at);
  w = chunk_writer_new (loop, sv[1], chunks, 2.0, FALSE);
  run (loop, r);
  g_assert_cmpint (afut_future_get_int (r), ==, 4);
  g_assert_cmpmem (buffer, 4, "late", 4);
  g_assert_cmpint (afut_loop_time_ns (loop), ==, 2 * NS_PER_S);
  /* Its done callbacks run in the next batch, still at 2 s. */
  g_assert_true (afut_loop_iterate (loop, FALSE));
  g_assert_cmpint (done_at, ==, 2 * NS_PER_S);
  run (loop, w);
  afut_future_unref (r);
  afut_future_unref (w);
  afut_loop_pop_thread_default (loop);
  afut_loop_unref (loop);
  close (sv[0]);
  close (sv[1]);
}

static void
test_fd_read_zero_at_eof (void)
{
  AfutLoop *loop = new_virtual_loop ();
  int sv[2];
  char buffer[16];
  AfutFuture *r;

  make_socketpair (sv);
  afut_loop_push_thread_default (loop);
  g_assert_cmpint (write (sv[1], "xy", 2), ==, 2);
  close (sv[1]);
  r = afut_fd_read (sv[0], buffer, sizeof buffer);
  run (loop, r);
  g_assert_cmpint (afut_future_get_int (r), ==, 2);
  afut_future_unref (r);
  r = afut_fd_read (sv[0], buffer, sizeof buffer);
  run (loop, r);
  g_assert_cmpint (afut_future_get_state (r), ==, AFUT_FUTURE_DONE);
  g_assert_cmpint (afut_future_get_int (r), ==, 0);
  afut_future_unref (r);

  /* End of stream while a read waits. */
  close (sv[0]);
  make_socketpair (sv);
  r = afut_fd_read (sv[0], buffer, sizeof buffer);
  g_assert_true (afut_loop_iterate (loop, FALSE));
  g_assert_false (afut_future_is_done (r));
  close (sv[1]);
  run (loop, r);
  g_assert_cmpint (afut_future_get_int (r), ==, 0);
  afut_future_unref (r);

  afut_loop_pop_thread_default (loop);
  afut_loop_unref (loop);
  close (sv[0]);
}

static void
test_fd_read_exactly_partial_reads (void)
{
  AfutLoop *loop = new_virtual_loop ();
  static const char *const chunks[] = { "abcd", "efgh", "ijkl", NULL };
  int sv[2];
  char buffer[13] = { 0 };
  AfutFuture *r, *w;
  int64_t done_at = -1;

  make_socketpair (sv);
  afut_loop_push_thread_default (loop);
  r = afut_fd_read_exactly (sv[0], buffer, 12);
  g_assert_cmpstr (afut_task_get_name (AFUT_TASK (r)), ==,
                   "afut_fd_read_exactly");
  afut_future_add_done_callback (r, record_time_cb, &done_at);
  w = chunk_writer_new (loop, sv[1], chunks, 1.0, FALSE);
  run (loop, r);
  g_assert_cmpint (afut_future_get_state (r), ==, AFUT_FUTURE_DONE);
  g_assert_cmpint (afut_future_get_int (r), ==, 12);
  g_assert_cmpstr (buffer, ==, "abcdefghijkl");
  /* It waited for the last chunk, at 2 s. */
  g_assert_cmpint (afut_loop_time_ns (loop), ==, 2 * NS_PER_S);
  g_assert_true (afut_loop_iterate (loop, FALSE));
  g_assert_cmpint (done_at, ==, 2 * NS_PER_S);
  run (loop, w);
  afut_future_unref (r);
  afut_future_unref (w);
  afut_loop_pop_thread_default (loop);
  afut_loop_unref (loop);
  close (sv[0]);
  close (sv[1]);
}

static void
test_fd_read_exactly_incomplete (void)
{
  AfutLoop *loop = new_virtual_loop ();
  static const char *const chunks[] = { "ab", "cd", NULL };
  int sv[2];
  char buffer[10];
  AfutFuture *r, *w;
  const AfutError *e;

  make_socketpair (sv);
  afut_loop_push_thread_default (loop);
  r = afut_fd_read_exactly (sv[0], buffer, sizeof buffer);
  w = chunk_writer_new (loop, sv[1], chunks, 1.0, TRUE);
  run (loop, r);
  g_assert_cmpint (afut_future_get_state (r), ==, AFUT_FUTURE_FAILED);
  e = afut_future_get_error (r);
  assert_error (e, AFUT_ERROR, AFUT_ERROR_INCOMPLETE);
  g_assert_cmpstr (afut_error_code_to_string (e->code), ==, "incomplete");
  /* The message says how far it got. */
  g_assert_nonnull (strstr (e->message, "4"));
  g_assert_nonnull (strstr (e->message, "10"));
  g_assert_cmpmem (buffer, 4, "abcd", 4);
  run (loop, w);
  afut_future_unref (r);
  afut_future_unref (w);
  afut_loop_pop_thread_default (loop);
  afut_loop_unref (loop);
  close (sv[0]);
}

/* Reads until @size bytes came or the stream ended. */
typedef struct
{
  AfutTask task;
  int fd;
  char *buffer;
  size_t size;
  size_t got;
  int64_t n;
} ReadAll;

static void
read_all_step (AfutTask *task)
{
  ReadAll *self = (ReadAll *) task;
  AFUT_BEGIN (task);
  while (self->got < self->size)
    {
      AFUT_AWAIT (task, afut_fd_read (self->fd, self->buffer + self->got,
                                      self->size - self->got));
      self->n = afut_future_get_int (afut_task_awaited (task));
      if (self->n == 0)
        break;
      self->got += (size_t) self->n;
    }
  AFUT_RETURN_INT (task, (int64_t) self->got);
  AFUT_END (task);
}

static void
set_small_buffers (int sv[2])
{
  int size = 4096;
  g_assert_cmpint (setsockopt (sv[0], SOL_SOCKET, SO_SNDBUF, &size,
                               sizeof size),
                   ==, 0);
  g_assert_cmpint (setsockopt (sv[1], SOL_SOCKET, SO_RCVBUF, &size,
                               sizeof size),
                   ==, 0);
}

static void
test_fd_write_all_larger_than_buffer (void)
{
  AfutLoop *loop = new_virtual_loop ();
  const size_t size = 1 << 20;
  guint8 *src = g_malloc (size), *dst = g_malloc0 (size);
  AfutFuture *w, *r;
  int sv[2];
  size_t i;
  guint n;

  for (i = 0; i < size; i++)
    src[i] = (guint8) (i * 7 + i / 251);
  make_socketpair (sv);
  set_small_buffers (sv);
  afut_loop_push_thread_default (loop);

  w = afut_fd_write_all (sv[0], src, size);
  g_assert_cmpstr (afut_task_get_name (AFUT_TASK (w)), ==,
                   "afut_fd_write_all");
  /* With nobody reading it fills the socket and waits. */
  for (n = 0; n < 5; n++)
    g_assert_true (afut_loop_iterate (loop, FALSE));
  g_assert_false (afut_future_is_done (w));

  r = afut_task_new (loop, read_all_step, sizeof (ReadAll),
                     &(ReadAll){ .fd = sv[1], .buffer = (char *) dst, .size = size },
                     "reader", NULL);
  run (loop, w);
  g_assert_cmpint (afut_future_get_state (w), ==, AFUT_FUTURE_DONE);
  g_assert_cmpint (afut_future_get_int (w), ==, (int64_t) size);
  run (loop, r);
  g_assert_cmpint (afut_future_get_int (r), ==, (int64_t) size);
  g_assert_true (memcmp (src, dst, size) == 0);

  afut_future_unref (w);
  afut_future_unref (r);
  afut_loop_pop_thread_default (loop);
  afut_loop_unref (loop);
  close (sv[0]);
  close (sv[1]);
  g_free (src);
  g_free (dst);
}

static void
test_fd_write_all_epipe (void)
{
  AfutLoop *loop = new_virtual_loop ();
  AfutFuture *w;
  const AfutError *e;
  int sv[2];

  make_socketpair (sv);
  close (sv[1]);
  afut_loop_push_thread_default (loop);
  w = afut_fd_write_all (sv[0], "hello", 5);
  run (loop, w);
  g_assert_cmpint (afut_future_get_state (w), ==, AFUT_FUTURE_FAILED);
  e = afut_future_get_error (w);
  assert_error (e, AFUT_ERRNO_ERROR, EPIPE);
  g_assert_cmpstr (e->message, ==, strerror (EPIPE));
  afut_future_unref (w);
  afut_loop_pop_thread_default (loop);
  afut_loop_unref (loop);
  close (sv[0]);
}

/* Reads @size bytes, then closes its end. */
typedef struct
{
  AfutTask task;
  int fd;
  char buffer[1000];
} ReadThenClose;

static void
read_then_close_step (AfutTask *task)
{
  ReadThenClose *self = (ReadThenClose *) task;
  AFUT_BEGIN (task);
  AFUT_AWAIT (task, afut_fd_read_exactly (self->fd, self->buffer,
                                          sizeof self->buffer));
  close (self->fd);
  AFUT_END (task);
}

static void
test_fd_write_all_peer_closes_midway (void)
{
  AfutLoop *loop = new_virtual_loop ();
  const size_t size = 1 << 20;
  guint8 *src = g_malloc0 (size);
  AfutFuture *w, *r;
  const AfutError *e;
  int sv[2];

  make_socketpair (sv);
  set_small_buffers (sv);
  afut_loop_push_thread_default (loop);
  w = afut_fd_write_all (sv[0], src, size);
  r = afut_task_new (loop, read_then_close_step, sizeof (ReadThenClose),
                     &(ReadThenClose){ .fd = sv[1] }, "reader", NULL);
  run (loop, w);
  run (loop, r);
  g_assert_cmpint (afut_future_get_state (r), ==, AFUT_FUTURE_DONE);
  g_assert_cmpint (afut_future_get_state (w), ==, AFUT_FUTURE_FAILED);
  e = afut_future_get_error (w);
  g_assert_cmpuint (e->domain, ==, AFUT_ERRNO_ERROR);
  g_assert_true (e->code == EPIPE || e->code == ECONNRESET);
  afut_future_unref (w);
  afut_future_unref (r);
  afut_loop_pop_thread_default (loop);
  afut_loop_unref (loop);
  close (sv[0]);
  g_free (src);
}

static void
test_fd_errors_ebadf (void)
{
  AfutLoop *loop = new_virtual_loop ();
  AfutFuture *f[3];
  char buffer[8];
  int p[2], bad, i;

  afut_loop_push_thread_default (loop);
  g_assert_cmpint (pipe (p), ==, 0);
  close (p[0]);
  close (p[1]);
  bad = p[0];
  f[0] = afut_fd_read (bad, buffer, sizeof buffer);
  f[1] = afut_fd_read_exactly (bad, buffer, sizeof buffer);
  f[2] = afut_fd_write_all (bad, "x", 1);
  for (i = 0; i < 3; i++)
    {
      const AfutError *e;
      run (loop, f[i]);
      g_assert_cmpint (afut_future_get_state (f[i]), ==, AFUT_FUTURE_FAILED);
      e = afut_future_get_error (f[i]);
      assert_error (e, AFUT_ERRNO_ERROR, EBADF);
      g_assert_cmpstr (e->message, ==, strerror (EBADF));
      afut_future_unref (f[i]);
    }
  afut_loop_pop_thread_default (loop);
  afut_loop_unref (loop);
}

static void
test_fd_errors_errno_domain (void)
{
  AfutLoop *loop = new_virtual_loop ();
  AfutFuture *f;
  const AfutError *e;
  char buffer[8];
  int p[2];

  g_assert_cmpstr (afut_quark_to_string (AFUT_ERRNO_ERROR), ==,
                   "afut-errno-quark");
  g_assert_cmpuint (AFUT_ERRNO_ERROR, !=, AFUT_ERROR);
  g_assert_cmpuint (AFUT_ERRNO_ERROR, ==, afut_errno_error_quark ());

  /* Reading a pipe's write end: EBADF, on an open fd. */
  g_assert_cmpint (pipe (p), ==, 0);
  afut_loop_push_thread_default (loop);
  f = afut_fd_read (p[1], buffer, sizeof buffer);
  run (loop, f);
  e = afut_future_get_error (f);
  g_assert_true (afut_error_matches (e, AFUT_ERRNO_ERROR, EBADF));
  g_assert_false (afut_error_matches (e, AFUT_ERROR, EBADF));
  g_assert_false (afut_error_is_cancelled (e));
  afut_future_unref (f);
  afut_loop_pop_thread_default (loop);
  afut_loop_unref (loop);
  close (p[0]);
  close (p[1]);
}

static void
test_fd_cancel_read_in_progress (void)
{
  RecBackend rb;
  AfutLoop *loop;
  static const char *const chunks[] = { "", "again", NULL };
  AfutFuture *r, *w;
  char buffer[16];
  int sv[2];

  rec_init (&rb);
  rb.poll_fds = TRUE;
  loop = rec_loop_new (&rb, AFUT_LOOP_VIRTUAL_CLOCK);
  make_socketpair (sv);
  afut_loop_push_thread_default (loop);

  r = afut_fd_read (sv[0], buffer, sizeof buffer);
  /* Its first step finds nothing and waits on the fd. */
  g_assert_true (afut_loop_iterate (loop, FALSE));
  g_assert_cmpuint (rb.active->len, ==, 1);
  g_assert_cmpuint (rb.n_watches, ==, 1);
  g_assert_false (afut_future_is_done (r));

  g_assert_true (afut_future_cancel (r, "stop reading"));
  run (loop, r);
  g_assert_cmpint (afut_future_get_state (r), ==, AFUT_FUTURE_CANCELLED);
  g_assert_cmpstr (afut_future_get_error (r)->message, ==, "stop reading");
  /* The watch is gone: the backend was told, nothing reads the fd. */
  g_assert_cmpuint (rb.active->len, ==, 0);
  g_assert_cmpuint (rb.n_unwatches, ==, 1);
  g_assert_cmpint (write (sv[1], "left", 4), ==, 4);
  g_assert_true (afut_loop_iterate (loop, FALSE));
  g_assert_true (afut_loop_iterate (loop, FALSE));
  g_assert_cmpint (read (sv[0], buffer, sizeof buffer), ==, 4);
  g_assert_cmpmem (buffer, 4, "left", 4);
  afut_future_unref (r);

  /* A read on this backend still works afterwards. */
  r = afut_fd_read (sv[0], buffer, sizeof buffer);
  w = chunk_writer_new (loop, sv[1], chunks, 1.0, FALSE);
  run (loop, r);
  g_assert_cmpint (afut_future_get_int (r), ==, 5);
  g_assert_cmpmem (buffer, 5, "again", 5);
  run (loop, w);
  g_assert_cmpuint (rb.active->len, ==, 0);
  g_assert_cmpuint (rb.n_watches, ==, rb.n_unwatches);
  afut_future_unref (r);
  afut_future_unref (w);

  afut_loop_pop_thread_default (loop);
  afut_loop_unref (loop);
  rec_clear (&rb);
  close (sv[0]);
  close (sv[1]);
}

/* Awaits a read; cancelled, the cancellation reaches the read. */
typedef struct
{
  AfutTask task;
  int fd;
  char buffer[16];
} AwaitRead;

static void
await_read_step (AfutTask *task)
{
  AwaitRead *self = (AwaitRead *) task;
  AFUT_BEGIN (task);
  AFUT_AWAIT (task, afut_fd_read (self->fd, self->buffer,
                                  sizeof self->buffer));
  AFUT_END (task);
}

static void
test_fd_cancel_task_awaiting_read (void)
{
  RecBackend rb;
  AfutLoop *loop;
  AfutFuture *outer, *inner;
  char buffer[8];
  int sv[2];

  rec_init (&rb);
  rb.poll_fds = TRUE;
  loop = rec_loop_new (&rb, AFUT_LOOP_VIRTUAL_CLOCK);
  make_socketpair (sv);
  outer = afut_task_new (loop, await_read_step, sizeof (AwaitRead),
                         &(AwaitRead){ .fd = sv[0] }, "outer", NULL);
  /* outer starts the read; the read starts its watch. */
  while (rb.active->len == 0)
    g_assert_true (afut_loop_iterate (loop, FALSE));
  inner = afut_future_ref (afut_task_awaited (AFUT_TASK (outer)));
  g_assert_cmpstr (afut_task_get_name (AFUT_TASK (inner)), ==, "afut_fd_read");

  g_assert_true (afut_future_cancel (outer, "outer stop"));
  run (loop, outer);
  g_assert_cmpint (afut_future_get_state (outer), ==, AFUT_FUTURE_CANCELLED);
  g_assert_cmpstr (afut_future_get_error (outer)->message, ==, "outer stop");
  g_assert_cmpint (afut_future_get_state (inner), ==, AFUT_FUTURE_CANCELLED);
  g_assert_cmpuint (rb.active->len, ==, 0);
  g_assert_cmpuint (rb.n_unwatches, ==, rb.n_watches);
  g_assert_cmpuint (afut_loop_get_n_tasks (loop), ==, 0);
  /* Nothing consumes what arrives now. */
  g_assert_cmpint (write (sv[1], "kept", 4), ==, 4);
  g_assert_true (afut_loop_iterate (loop, FALSE));
  g_assert_cmpint (read (sv[0], buffer, sizeof buffer), ==, 4);

  afut_future_unref (inner);
  afut_future_unref (outer);
  afut_loop_unref (loop);
  rec_clear (&rb);
  close (sv[0]);
  close (sv[1]);
}

/* Two tasks on the ends of one socketpair: ping, pong, N rounds. */
#define N_ROUNDS 8

typedef struct
{
  AfutTask task;
  int fd;
  gboolean server;
  int round;
  char out[16];
  char in[16];
} Pinger;

static void
pinger_step (AfutTask *task)
{
  Pinger *self = (Pinger *) task;
  AFUT_BEGIN (task);
  for (self->round = 0; self->round < N_ROUNDS; self->round++)
    {
      if (self->server)
        {
          AFUT_AWAIT (task, afut_fd_read_exactly (self->fd, self->in, 6));
          self->in[6] = '\0';
          g_string_append_printf (trace, "s:%s ", self->in);
          g_snprintf (self->out, sizeof self->out, "pong%02d", self->round);
          AFUT_AWAIT (task, afut_fd_write_all (self->fd, self->out, 6));
        }
      else
        {
          g_snprintf (self->out, sizeof self->out, "ping%02d", self->round);
          AFUT_AWAIT (task, afut_fd_write_all (self->fd, self->out, 6));
          AFUT_AWAIT (task, afut_fd_read_exactly (self->fd, self->in, 6));
          self->in[6] = '\0';
          g_string_append_printf (trace, "c:%s ", self->in);
        }
    }
  AFUT_END (task);
}

static void custom_noop_step (AfutTask *task);

/* ---- 6. custom futures and task finalizers ---- */

typedef struct
{
  AfutCustomFuture custom;
  int n_cancel_calls;
  char *last_message;
  bool refuse;
  int *n_finalized;
} Custom;

static bool
custom_cancel (AfutFuture *future, const char *message)
{
  Custom *c = (Custom *) future;
  c->n_cancel_calls++;
  g_free (c->last_message);
  c->last_message = g_strdup (message);
  return !c->refuse;
}

static void
custom_finalize (AfutFuture *future)
{
  Custom *c = (Custom *) future;
  g_free (c->last_message);
  (*c->n_finalized)++;
}

static const AfutFutureFuncs custom_funcs = { custom_cancel, custom_finalize };
static const AfutFutureFuncs custom_funcs_no_hooks = { NULL, NULL };

/* The cancel hook is a request: the future stays pending until whatever
 * stands behind it completes it, and the awaiting task resumes only then,
 * with the cancellation. */
typedef struct
{
  AfutTask task;
  AfutFuture *custom; /* given to the await */
  bool resumed;
} CustomAwaiter;

static void
custom_awaiter (AfutTask *task)
{
  CustomAwaiter *self = (CustomAwaiter *) task;
  AFUT_BEGIN (task);
  AFUT_AWAIT (task, self->custom);
  self->resumed = true;
  AFUT_END (task);
}

static void
test_custom_cancel_is_a_request (void)
{
  AfutLoop *loop = new_virtual_loop ();
  int n_finalized = 0;
  AfutFuture *f = afut_future_new_custom (loop, &custom_funcs, sizeof (Custom));
  Custom *c = (Custom *) f;
  AfutFuture *t;
  CustomAwaiter *a;
  int i;

  c->n_finalized = &n_finalized;
  t = afut_task_new (loop, custom_awaiter, sizeof (CustomAwaiter),
                     &(CustomAwaiter){ .custom = afut_future_ref (f) },
                     "awaiter", NULL);
  a = (CustomAwaiter *) t;
  afut_loop_iterate (loop, false);
  g_assert_true (afut_future_cancel (t, "stop"));
  for (i = 0; i < 5; i++)
    afut_loop_iterate (loop, false);
  /* Requested, not done: the task still waits. */
  g_assert_cmpint (c->n_cancel_calls, ==, 1);
  g_assert_cmpstr (c->last_message, ==, "stop");
  g_assert_cmpint (afut_future_get_state (f), ==, AFUT_FUTURE_PENDING);
  g_assert_false (afut_future_is_done (t));
  /* What stands behind the future answers the request. */
  g_assert_true (afut_future_fail (
    f, afut_error_new_literal (AFUT_ERROR, AFUT_ERROR_CANCELLED, "stop")));
  afut_loop_run_until_complete (loop, t);
  g_assert_false (a->resumed);
  g_assert_true (afut_future_is_cancelled (t));
  g_assert_cmpstr (afut_future_get_error (t)->message, ==, "stop");
  afut_future_unref (t);
  g_assert_cmpint (n_finalized, ==, 0);
  afut_future_unref (f);
  g_assert_cmpint (n_finalized, ==, 1);
  afut_loop_unref (loop);
}

static void
test_custom_cancel_refused (void)
{
  AfutLoop *loop = new_virtual_loop ();
  int n_finalized = 0;
  AfutFuture *f = afut_future_new_custom (loop, &custom_funcs, sizeof (Custom));
  Custom *c = (Custom *) f;

  c->n_finalized = &n_finalized;
  c->refuse = true;
  g_assert_false (afut_future_cancel (f, NULL));
  g_assert_cmpint (c->n_cancel_calls, ==, 1);
  g_assert_null (c->last_message);
  g_assert_true (afut_future_resolve_int (f, 7));
  g_assert_false (afut_future_cancel (f, NULL)); /* done: no hook call */
  g_assert_cmpint (c->n_cancel_calls, ==, 1);
  g_assert_cmpint (afut_future_get_int (f), ==, 7);
  afut_future_unref (f);
  g_assert_cmpint (n_finalized, ==, 1);
  afut_loop_unref (loop);
}

static void
test_custom_without_hooks_is_plain (void)
{
  AfutLoop *loop = new_virtual_loop ();
  AfutFuture *f = afut_future_new_custom (loop, &custom_funcs_no_hooks,
                                          sizeof (AfutCustomFuture) + 64);
  /* The struct past the header starts zeroed. */
  const unsigned char *extra
    = (const unsigned char *) f + sizeof (AfutCustomFuture);
  int i;
  for (i = 0; i < 64; i++)
    g_assert_cmpint (extra[i], ==, 0);
  g_assert_true (afut_future_cancel (f, "now"));
  g_assert_true (afut_future_is_cancelled (f));
  g_assert_cmpstr (afut_future_get_error (f)->message, ==, "now");
  afut_future_unref (f);
  afut_loop_unref (loop);
}

static int spawned_finalized;

static void
count_finalize (AfutTask *task)
{
  (void) task;
  spawned_finalized++;
}

static void
spawns_with_finalize (AfutTask *task)
{
  AFUT_BEGIN (task);
  {
    AfutFuture *child = AFUT_SPAWN (AfutTask, custom_noop_step);
    afut_task_set_finalize (AFUT_TASK (child), count_finalize);
    AFUT_AWAIT (task, child);
  }
  AFUT_END (task);
}

static void
test_task_set_finalize (void)
{
  AfutLoop *loop = new_virtual_loop ();
  AfutFuture *t = afut_task_new (loop, spawns_with_finalize,
                                 sizeof (AfutTask), NULL, "parent", NULL);
  spawned_finalized = 0;
  afut_loop_run_until_complete (loop, t);
  g_assert_cmpint (afut_future_get_state (t), ==, AFUT_FUTURE_DONE);
  afut_future_unref (t);
  afut_loop_unref (loop);
  g_assert_cmpint (spawned_finalized, ==, 1);
}

static void
custom_noop_step (AfutTask *task)
{
  AFUT_BEGIN (task);
  AFUT_END (task);
}

static void
test_fd_interleaved_reader_and_writer (void)
{
  AfutLoop *loop = new_virtual_loop ();
  AfutFuture *client, *server, *both;
  GString *expected = g_string_new (NULL);
  char byte;
  int sv[2], i;

  make_socketpair (sv);
  trace_reset ();
  /* The server starts first and must wait for the client's ping. */
  server = afut_task_new (loop, pinger_step, sizeof (Pinger),
                          &(Pinger){ .fd = sv[1], .server = TRUE },
                          "server", NULL);
  client = afut_task_new (loop, pinger_step, sizeof (Pinger),
                          &(Pinger){ .fd = sv[0], .server = FALSE },
                          "client", NULL);
  both = afut_gather (client, server, NULL);
  run (loop, both);
  g_assert_cmpint (afut_future_get_state (both), ==, AFUT_FUTURE_DONE);
  for (i = 0; i < N_ROUNDS; i++)
    g_string_append_printf (expected, "s:ping%02d c:pong%02d ", i, i);
  g_assert_cmpstr (trace->str, ==, expected->str);
  /* No byte left over either way. */
  g_assert_cmpint (read (sv[0], &byte, 1), ==, -1);
  g_assert_cmpint (errno, ==, EAGAIN);
  g_assert_cmpint (read (sv[1], &byte, 1), ==, -1);
  g_assert_cmpint (errno, ==, EAGAIN);

  g_string_free (expected, TRUE);
  afut_future_unref (both);
  afut_loop_unref (loop);
  close (sv[0]);
  close (sv[1]);
}

/* Bad arguments: a critical naming the function, NULL, no task made. */
#define FD_BAD_ARG_BODY(name, call)                         \
  static void name (void)                                   \
  {                                                         \
    AfutLoop *loop = new_virtual_loop ();                   \
    char buf[4];                                            \
    (void) buf;                                             \
    afut_loop_push_thread_default (loop);                   \
    g_assert_null (call);                                   \
    g_assert_cmpuint (afut_loop_get_n_tasks (loop), ==, 0); \
    g_assert_false (afut_loop_prepare (loop, NULL));        \
    afut_loop_pop_thread_default (loop);                    \
    afut_loop_unref (loop);                                 \
  }

FD_BAD_ARG_BODY (body_read_null_buffer, afut_fd_read (0, NULL, 4))
FD_BAD_ARG_BODY (body_read_zero_size, afut_fd_read (0, buf, 0))
FD_BAD_ARG_BODY (body_read_bad_fd, afut_fd_read (-1, buf, 4))
FD_BAD_ARG_BODY (body_read_exactly_null_buffer,
                 afut_fd_read_exactly (0, NULL, 4))
FD_BAD_ARG_BODY (body_read_exactly_zero_size, afut_fd_read_exactly (0, buf, 0))
FD_BAD_ARG_BODY (body_read_exactly_bad_fd, afut_fd_read_exactly (-1, buf, 4))
FD_BAD_ARG_BODY (body_write_all_null_buffer, afut_fd_write_all (1, NULL, 4))
FD_BAD_ARG_BODY (body_write_all_zero_size, afut_fd_write_all (1, "x", 0))
FD_BAD_ARG_BODY (body_write_all_bad_fd, afut_fd_write_all (-1, "x", 1))

static void
body_read_without_loop (void)
{
  char buf[4];
  g_assert_null (afut_loop_get_thread_default ());
  g_assert_null (afut_fd_read (0, buf, sizeof buf));
}

#define CRIT(message) "*afut-CRITICAL **: " message "*"

static void
body_custom_null_funcs (void)
{
  AfutLoop *loop = new_virtual_loop ();
  g_assert_null (afut_future_new_custom (loop, NULL, sizeof (Custom)));
  afut_loop_unref (loop);
}

static void
body_custom_too_small (void)
{
  AfutLoop *loop = new_virtual_loop ();
  g_assert_null (afut_future_new_custom (loop, &custom_funcs_no_hooks,
                                         sizeof (AfutFuture)));
  afut_loop_unref (loop);
}

static void
body_set_finalize_not_a_task (void)
{
  AfutLoop *loop = new_virtual_loop ();
  AfutFuture *f = afut_future_new (loop);
  afut_task_set_finalize ((AfutTask *) f, count_finalize);
  g_assert_false (afut_future_is_done (f));
  afut_future_unref (f);
  afut_loop_unref (loop);
}

static const CriticalCase critical_cases[] = {
  { "/seams/thread-default/misuse/pop-not-on-top", body_pop_not_on_top,
    CRIT ("afut_loop_pop_thread_default: assertion") },
  { "/seams/thread-default/misuse/pop-empty-stack", body_pop_empty_stack,
    CRIT ("afut_loop_pop_thread_default: assertion") },
  { "/seams/thread-default/misuse/pop-null", body_pop_null,
    CRIT ("afut_loop_pop_thread_default: assertion 'loop != NULL' failed") },
  { "/seams/thread-default/misuse/push-null", body_push_null,
    CRIT ("afut_loop_push_thread_default: assertion 'loop != NULL' "
          "failed") },
  { "/seams/hold/misuse/release-without-hold", body_release_without_hold,
    CRIT ("afut_loop_release: assertion") },
  { "/seams/custom/misuse/null-funcs", body_custom_null_funcs,
    CRIT ("afut_future_new_custom: assertion 'funcs != NULL' failed") },
  { "/seams/custom/misuse/struct-too-small", body_custom_too_small,
    CRIT ("afut_future_new_custom: assertion 'struct_size >= sizeof "
          "(AfutCustomFuture)' failed") },
  { "/seams/task/misuse/set-finalize-not-a-task", body_set_finalize_not_a_task,
    CRIT ("afut_task_set_finalize: assertion 'task->future.kind == "
          "AFUT__KIND_TASK' failed") },
  { "/seams/fd/bad-args/read-null-buffer", body_read_null_buffer,
    CRIT ("afut_fd_read: assertion 'buffer != NULL' failed") },
  { "/seams/fd/bad-args/read-zero-size", body_read_zero_size,
    CRIT ("afut_fd_read: assertion 'size > 0' failed") },
  { "/seams/fd/bad-args/read-bad-fd", body_read_bad_fd,
    CRIT ("afut_fd_read: assertion 'fd >= 0' failed") },
  { "/seams/fd/bad-args/read-exactly-null-buffer",
    body_read_exactly_null_buffer,
    CRIT ("afut_fd_read_exactly: assertion 'buffer != NULL' failed") },
  { "/seams/fd/bad-args/read-exactly-zero-size", body_read_exactly_zero_size,
    CRIT ("afut_fd_read_exactly: assertion 'size > 0' failed") },
  { "/seams/fd/bad-args/read-exactly-bad-fd", body_read_exactly_bad_fd,
    CRIT ("afut_fd_read_exactly: assertion 'fd >= 0' failed") },
  { "/seams/fd/bad-args/write-all-null-buffer", body_write_all_null_buffer,
    CRIT ("afut_fd_write_all: assertion 'buffer != NULL' failed") },
  { "/seams/fd/bad-args/write-all-zero-size", body_write_all_zero_size,
    CRIT ("afut_fd_write_all: assertion 'size > 0' failed") },
  { "/seams/fd/bad-args/write-all-bad-fd", body_write_all_bad_fd,
    CRIT ("afut_fd_write_all: assertion 'fd >= 0' failed") },
  { "/seams/fd/bad-args/read-without-loop", body_read_without_loop,
    CRIT ("afut_fd_read: no running loop") },
};

/* ---- main ---- */

static void
add_op_tests (const char *prefix, GTestDataFunc func)
{
  int op;
  for (op = 0; op < N_OPS; op++)
    {
      char *path = g_strdup_printf ("%s/%s", prefix, op_names[op]);
      g_test_add_data_func (path, GINT_TO_POINTER (op), func);
      g_free (path);
    }
}

int
main (int argc, char **argv)
{
  size_t i;

  g_test_init (&argc, &argv, NULL);
  afut_set_log_func (test_log_func, NULL);
  /* A write to a socket whose peer closed must fail with EPIPE, not kill
   * the test. */
  signal (SIGPIPE, SIG_IGN);

  /* 1. thread-default loops */
  g_test_add_func ("/seams/thread-default/stack-order",
                   test_thread_default_stack_order);
  g_test_add_func ("/seams/thread-default/used-outside-running-loop",
                   test_thread_default_used_outside_running_loop);
  g_test_add_func ("/seams/thread-default/running-loop-wins",
                   test_thread_default_running_loop_wins);
  g_test_add_func ("/seams/thread-default/keeps-loop-alive",
                   test_thread_default_keeps_loop_alive);
  g_test_add_func ("/seams/thread-default/per-thread",
                   test_thread_default_per_thread);

  /* 2. driving a loop from another main loop */
  g_test_add_func ("/seams/prepare/idle-loop-waits-forever",
                   test_prepare_idle_waits_forever);
  g_test_add_func ("/seams/prepare/ready-work-is-zero",
                   test_prepare_ready_work_is_zero);
  g_test_add_func ("/seams/prepare/time-to-next-timer",
                   test_prepare_time_to_next_timer);
  g_test_add_func ("/seams/prepare/virtual-clock-jumps",
                   test_prepare_virtual_clock_jumps);
  g_test_add_func ("/seams/prepare/sees-threadsafe-calls",
                   test_prepare_sees_threadsafe_calls);
  g_test_add_func ("/seams/prepare/false-while-running",
                   test_prepare_false_while_running);
  g_test_add_func ("/seams/dispatch/budget-zero-runs-one-batch",
                   test_dispatch_budget_zero_runs_one_batch);
  g_test_add_func ("/seams/dispatch/budget-runs-until-idle",
                   test_dispatch_budget_runs_until_idle);
  g_test_add_func ("/seams/dispatch/next-batch-order",
                   test_dispatch_next_batch_order);
  g_test_add_func ("/seams/dispatch/due-timers-join-next-batch",
                   test_dispatch_due_timers_join_next_batch);
  g_test_add_func ("/seams/dispatch/budget-bounds-endless-work",
                   test_dispatch_budget_bounds_endless_work);
  g_test_add_func ("/seams/dispatch/from-own-callback-refused",
                   test_dispatch_from_own_callback_refused);
  g_test_add_func ("/seams/backend/wait-every-iteration",
                   test_backend_wait_every_iteration);
  g_test_add_func ("/seams/backend/dispatch-from-wait",
                   test_backend_dispatch_from_wait);
  g_test_add_func ("/seams/backend/nested-run-from-wait-refused",
                   test_backend_nested_run_from_wait_refused);
  g_test_add_func ("/seams/backend/close-hook-once-before-free",
                   test_backend_close_hook_once_before_free);

  /* 3. threadsafe completion */
  add_op_tests ("/seams/threadsafe/completes-on-loop-thread",
                test_threadsafe_completes_on_loop_thread);
  add_op_tests ("/seams/threadsafe/after-cancel-dropped",
                test_threadsafe_after_cancel_dropped);
  add_op_tests ("/seams/threadsafe/after-done-dropped",
                test_threadsafe_after_done_dropped);
  g_test_add_func ("/seams/threadsafe/handed-references-released",
                   test_threadsafe_handed_references_released);
  g_test_add_func ("/seams/threadsafe/cancel-task-from-thread",
                   test_threadsafe_cancel_task_from_thread);
  g_test_add_func ("/seams/threadsafe/many-threads",
                   test_threadsafe_many_threads);

  /* 4. holds */
  g_test_add_func ("/seams/hold/shutdown-waits-for-release",
                   test_hold_shutdown_waits_for_release);
  g_test_add_func ("/seams/hold/nested", test_hold_nested);
  g_test_add_func ("/seams/hold/last-unref-waits-for-release",
                   test_hold_last_unref_waits_for_release);
  g_test_add_func ("/seams/hold/free-waits-for-posting-thread",
                   test_hold_free_waits_for_posting_thread);
  g_test_add_func ("/seams/hold/afut-run-waits-for-release",
                   test_hold_afut_run_waits_for_release);

  /* 5. fd streams */
  g_test_add_func ("/seams/fd/read/returns-what-is-there",
                   test_fd_read_returns_what_is_there);
  g_test_add_func ("/seams/fd/read/waits-until-readable",
                   test_fd_read_waits_until_readable);
  g_test_add_func ("/seams/fd/read/zero-at-eof", test_fd_read_zero_at_eof);
  g_test_add_func ("/seams/fd/read-exactly/partial-reads",
                   test_fd_read_exactly_partial_reads);
  g_test_add_func ("/seams/fd/read-exactly/incomplete",
                   test_fd_read_exactly_incomplete);
  g_test_add_func ("/seams/fd/write-all/larger-than-socket-buffer",
                   test_fd_write_all_larger_than_buffer);
  g_test_add_func ("/seams/fd/write-all/epipe", test_fd_write_all_epipe);
  g_test_add_func ("/seams/fd/write-all/peer-closes-midway",
                   test_fd_write_all_peer_closes_midway);
  g_test_add_func ("/seams/fd/errors/ebadf", test_fd_errors_ebadf);
  g_test_add_func ("/seams/fd/errors/errno-domain",
                   test_fd_errors_errno_domain);
  g_test_add_func ("/seams/fd/cancel/read-in-progress",
                   test_fd_cancel_read_in_progress);
  g_test_add_func ("/seams/fd/cancel/task-awaiting-read",
                   test_fd_cancel_task_awaiting_read);
  g_test_add_func ("/seams/fd/interleave/reader-and-writer",
                   test_fd_interleaved_reader_and_writer);

  /* 6. custom futures, task finalizers */
  g_test_add_func ("/seams/custom/cancel-is-a-request",
                   test_custom_cancel_is_a_request);
  g_test_add_func ("/seams/custom/cancel-refused",
                   test_custom_cancel_refused);
  g_test_add_func ("/seams/custom/without-hooks-is-plain",
                   test_custom_without_hooks_is_plain);
  g_test_add_func ("/seams/task/set-finalize", test_task_set_finalize);

  for (i = 0; i < G_N_ELEMENTS (critical_cases); i++)
    g_test_add_data_func (critical_cases[i].path, &critical_cases[i],
                          run_critical_case);

  return g_test_run ();
}
