/* test-glib-loop.c - the GLib adapter's loop under hostile use (issue 13,
 * sections 2 and 6):
 *
 *   wrong thread     every loop-only entry point of afut-glib.h, called
 *                    from a worker, reports with its own name
 *
 * Cases that could hang run in a subprocess with a timeout.
 */
#define AFUT_IMPLEMENTATION
#define AFUT_GLIB
#include "afut.h"
#include "afut-glib.h"

#include <fcntl.h>
#include <glib-unix.h>
#include <string.h>
#include <unistd.h>

#define WRONG_THREAD "called from a thread that is not the loop's"

/* ---- what afut logged, from any thread ---- */

#include "capture-log.h"

static void
run_on_worker (GThreadFunc func, gpointer data)
{
  g_thread_join (g_thread_new ("worker", func, data));
}

/* ---- every loop-only entry point of afut-glib.h, from a worker ---- */

typedef struct
{
  GMainContext *context;
  AfutLoop *loop;
  AfutFuture *pending; /* a plain future */
  AfutFuture *done;
  GCancellable *cancellable;
  GTask *result;
  GValue value;
  GError *error;
} Fixture;

typedef struct
{
  const char *name;
  void (*call) (Fixture *x);
  gboolean consumes; /* takes a reference to ->pending */
  const char *instead;
} Entry;

static gpointer
never_run (gpointer data, GCancellable *cancellable, GError **error)
{
  (void) cancellable;
  (void) error;
  return data;
}

#define E(fn, body)                                                           \
  static void call_##fn (Fixture *x)                                          \
  {                                                                           \
    body;                                                                     \
  }

E (afut_glib_loop_get_source, afut_glib_loop_get_source (x->loop))
E (afut_glib_loop_set_priority,
   afut_glib_loop_set_priority (x->loop, G_PRIORITY_LOW))
E (afut_glib_loop_set_budget, afut_glib_loop_set_budget (x->loop, 1))
E (afut_glib_future_propagate, afut_glib_future_propagate (x->done, NULL))
E (afut_glib_future_get_cancellable,
   afut_glib_future_get_cancellable (x->pending))
E (afut_glib_future_link_cancellable,
   afut_glib_future_link_cancellable (x->pending, x->cancellable))
E (afut_gio_future_new, afut_gio_future_new (x->loop))
E (afut_gio_ready, afut_gio_ready (NULL, G_ASYNC_RESULT (x->result),
                                   x->pending))
E (afut_glib_future_to_task,
   afut_glib_future_to_task (x->pending, NULL, NULL, NULL, NULL))
E (afut_to_thread, afut_to_thread (x->loop, never_run, NULL, NULL, NULL))
E (afut_future_resolve_value, afut_future_resolve_value (x->pending, &x->value))
E (afut_future_get_value, afut_future_get_value (x->done, NULL))
E (afut_future_fail_value, afut_future_fail_value (x->pending, &x->value, "m"))
E (afut_future_fail_error, afut_future_fail_error (x->pending, x->error))
E (afut_future_get_error_value, afut_future_get_error_value (x->done))
E (afut_future_get_sub_error_value,
   afut_future_get_sub_error_value (x->done, 0))
E (afut_gio_future_complete,
   afut_gio_future_complete (x->pending, G_ASYNC_RESULT (x->result)))

#undef E

#define ROW(fn) { #fn, call_##fn, FALSE, NULL }
#define ROW_CONSUMES(fn) { #fn, call_##fn, TRUE, NULL }
#define ROW_USE(fn, instead) { #fn, call_##fn, FALSE, instead }

/* Not here, on purpose: afut_glib_loop_new() (a new loop),
 * afut_glib_loop_get_context() (a constant of the loop),
 * afut_glib_error_from_gerror() and afut_glib_task_propagate(), which
 * touch no loop; afut_glib_future_get_error() is afut_future_get_error(),
 * tested with afut.h's. */
static const Entry entries[] = {
  ROW (afut_glib_loop_get_source),
  ROW (afut_glib_loop_set_priority),
  ROW (afut_glib_loop_set_budget),
  ROW (afut_glib_future_propagate),
  ROW (afut_glib_future_get_cancellable),
  ROW (afut_glib_future_link_cancellable),
  ROW (afut_gio_future_new),
  ROW_CONSUMES (afut_gio_ready),
  ROW_CONSUMES (afut_glib_future_to_task),
  ROW (afut_to_thread),
  ROW_USE (afut_future_resolve_value, "afut_future_resolve_value_threadsafe()"),
  ROW (afut_future_get_value),
  ROW_USE (afut_future_fail_value, "afut_future_fail_threadsafe()"),
  ROW_USE (afut_future_fail_error, "afut_future_fail_threadsafe()"),
  ROW (afut_future_get_error_value),
  ROW (afut_future_get_sub_error_value),
  ROW (afut_gio_future_complete),
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
  c->entry->call (c->x);
  return NULL;
}

static void
test_wrong_thread_every_entry_point (void)
{
  Fixture x;
  size_t i;
  unsigned n_wrong = 0;

  memset (&x, 0, sizeof x);
  x.context = g_main_context_new ();
  x.loop = afut_glib_loop_new (x.context, AFUT_LOOP_VIRTUAL_CLOCK);
  x.pending = afut_future_new (x.loop);
  x.done = afut_future_new (x.loop);
  afut_future_resolve (x.done);
  x.cancellable = g_cancellable_new ();
  x.result = g_task_new (NULL, NULL, NULL, NULL);
  g_value_init (&x.value, G_TYPE_INT);
  x.error = g_error_new_literal (G_IO_ERROR, G_IO_ERROR_FAILED, "x");

  for (i = 0; i < G_N_ELEMENTS (entries); i++)
    {
      const Entry *e = &entries[i];
      Call c = { &x, e };
      char *log, *expected;
      if (e->consumes)
        afut_future_ref (x.pending);
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
  g_assert_false (afut_future_is_done (x.pending));

  g_error_free (x.error);
  g_value_unset (&x.value);
  g_task_return_boolean (x.result, TRUE);
  g_object_unref (x.result);
  g_object_unref (x.cancellable);
  afut_future_unref (x.done);
  afut_future_unref (x.pending);
  afut_loop_unref (x.loop);
  g_main_context_unref (x.context);
}

/* ---- another thread iterating the loop's context (section 2) ---- */

typedef struct
{
  AfutTask task;
  gint *stop; /* atomic */
  GThread *home;
  guint n_steps;
  guint limit;
  guint n_foreign; /* steps run on another thread */
} Spinner;

static void
spinner_step (AfutTask *task)
{
  Spinner *self = (Spinner *) task;
  AFUT_BEGIN (task);
  while (!g_atomic_int_get (self->stop) && self->n_steps < self->limit)
    {
      self->n_steps++;
      if (g_thread_self () != self->home)
        self->n_foreign++;
      g_thread_yield (); /* the other thread's chance, if it has one */
      AFUT_YIELD (task);
    }
  AFUT_END (task);
}

typedef struct
{
  GMainContext *context;
  AfutLoop *loop;
  gint stop;
  guint n_dispatched;
  GThread *thread;
  GThreadFunc func;
  gboolean result;
} Intruder;

static gpointer
iterate_other_thread (gpointer data)
{
  Intruder *in = (Intruder *) data;
  /* Blocking: before, it got the context between two of the run's
   * iterations; now it waits until the run is over. */
  while (!g_atomic_int_get (&in->stop))
    g_main_context_iteration (in->context, TRUE);
  return NULL;
}

static void
start_intruder (void *data)
{
  Intruder *in = (Intruder *) data;
  in->thread = g_thread_new ("intruder", in->func, in);
}

/* The main thread is in afut_loop_run_until_complete; another thread
 * iterates the same GMainContext.  Before, it dispatched afut's source
 * between the run's own iterations: task steps on the wrong thread, and
 * TSan's races in the ready queue and the timer heap.  The run holds the
 * context, as g_main_loop_run() does: the other thread's iterations do
 * nothing (with may_block, they would wait for the run to end). */
static void
test_other_thread_iterates_context (void)
{
  Intruder in = { 0 };
  AfutFuture *task;
  Spinner *spinner;
  in.context = g_main_context_new ();
  in.loop = afut_glib_loop_new (in.context, AFUT_LOOP_VIRTUAL_CLOCK);
  in.func = iterate_other_thread;
  /* One batch per dispatch: the run's own iterations come and go, and
   * before, the context was free between them. */
  afut_glib_loop_set_budget (in.loop, 0);
  task = afut_task_new (in.loop, spinner_step, sizeof (Spinner),
                        &(Spinner){ .stop = &in.stop, .limit = 500,
                                    .home = g_thread_self () },
                        "spinner", NULL);
  spinner = (Spinner *) task;
  afut_loop_call_soon (in.loop, start_intruder, &in);
  g_assert_true (afut_loop_run_until_complete (in.loop, task));
  g_atomic_int_set (&in.stop, 1);
  g_main_context_wakeup (in.context);
  g_thread_join (in.thread);
  g_assert_cmpuint (spinner->n_steps, ==, 500);
  g_assert_cmpuint (spinner->n_foreign, ==, 0);
  /* The other thread's iterations after the run may have taken the
   * loop over (its source's prepare): running it takes it back. */
  g_assert_true (afut_loop_iterate (in.loop, FALSE));
  afut_future_unref (task);
  afut_loop_unref (in.loop);
  g_main_context_unref (in.context);
}

static gpointer
dispatch_other_thread (gpointer data)
{
  Intruder *in = (Intruder *) data;
  afut_loop_dispatch (in->loop, 0); /* refused: the loop runs elsewhere */
  g_atomic_int_set (&in->stop, 1);
  return NULL;
}

/* A dispatch forced from another thread (the GSource's own, or a direct
 * call) never steps afut there: it is refused, reported. */
static void
test_dispatch_from_other_thread (void)
{
  if (g_test_subprocess ())
    {
      /* Reported criticals are what these cases check: not fatal. */
      g_log_set_always_fatal (G_LOG_FATAL_MASK);
      Intruder in = { 0 };
      AfutFuture *task;
      in.context = g_main_context_new ();
      in.loop = afut_glib_loop_new (in.context, AFUT_LOOP_VIRTUAL_CLOCK);
      in.func = dispatch_other_thread;
      task = afut_task_new (in.loop, spinner_step, sizeof (Spinner),
                            &(Spinner){ .stop = &in.stop, .limit = G_MAXUINT,
                                        .home = g_thread_self () },
                            "spinner", NULL);
      afut_loop_call_soon (in.loop, start_intruder, &in);
      g_assert_true (afut_loop_run_until_complete (in.loop, task));
      g_thread_join (in.thread);
      g_assert_cmpuint (((Spinner *) task)->n_foreign, ==, 0);
      afut_future_unref (task);
      afut_loop_unref (in.loop);
      g_main_context_unref (in.context);
      return;
    }
  g_test_trap_subprocess (NULL, 30 * G_USEC_PER_SEC, G_TEST_SUBPROCESS_DEFAULT);
  g_test_trap_assert_passed ();
  g_test_trap_assert_stderr ("*afut_loop_dispatch: " WRONG_THREAD
                             ": the loop runs on another thread*");
}

typedef struct
{
  GMainContext *context;
  GMainLoop *main_loop;
  AfutLoop *loop;   /* the worker's reference, the last */
  AfutFuture *task;
  GThread *thread;
  gboolean run_result;
  GThread *closed_on;
} Gtkish;

static void
gtkish_task_done (AfutFuture *future, void *data)
{
  Gtkish *g = (Gtkish *) data;
  (void) future;
  g->closed_on = g_thread_self ();
  g_main_loop_quit (g->main_loop);
}

static gpointer
gtkish_worker (gpointer data)
{
  Gtkish *g = (Gtkish *) data;
  AfutFuture *f = g->task;
  /* The main thread runs a GMainLoop on the context, as GTK does: a run
   * here is refused, and the last unref hands the close to that thread
   * (before, it waited for the context forever). */
  g->run_result = afut_loop_run_until_complete (g->loop, f);
  afut_loop_unref (g->loop);
  return NULL;
}

static gboolean
gtkish_start (gpointer data)
{
  Gtkish *g = (Gtkish *) data;
  g->thread = g_thread_new ("worker", gtkish_worker, g);
  return G_SOURCE_REMOVE;
}

static void
forever_step (AfutTask *task)
{
  AFUT_BEGIN (task);
  AFUT_AWAIT (task, afut_sleep (3600.0));
  AFUT_END (task);
}

static void
test_worker_while_main_loop_runs (void)
{
  if (g_test_subprocess ())
    {
      /* Reported criticals are what these cases check: not fatal. */
      g_log_set_always_fatal (G_LOG_FATAL_MASK);
      Gtkish g = { 0 };
      GSource *idle;
      g.context = g_main_context_new ();
      g.main_loop = g_main_loop_new (g.context, FALSE);
      g.loop = afut_glib_loop_new (g.context, 0);
      g.task = afut_task_new (g.loop, forever_step, sizeof (AfutTask), NULL,
                              "forever", NULL);
      afut_future_add_done_callback (g.task, gtkish_task_done, &g);
      idle = g_idle_source_new ();
      g_source_set_callback (idle, gtkish_start, &g, NULL);
      g_source_attach (idle, g.context);
      g_source_unref (idle);
      g_main_loop_run (g.main_loop);
      g_thread_join (g.thread);
      g_assert_false (g.run_result);
      g_assert_true (g.closed_on == g_thread_self ());
      g_assert_true (afut_future_is_cancelled (g.task));
      afut_future_unref (g.task);
      g_main_loop_unref (g.main_loop);
      g_main_context_unref (g.context);
      return;
    }
  g_test_trap_subprocess (NULL, 30 * G_USEC_PER_SEC, G_TEST_SUBPROCESS_DEFAULT);
  g_test_trap_assert_passed ();
  g_test_trap_assert_stderr ("*afut_loop_run_until_complete: " WRONG_THREAD
                             ": another thread runs the loop's main "
                             "context*afut_loop_unref: " WRONG_THREAD
                             ": another thread runs the loop's main "
                             "context*");
}

/* A loop made on the main thread and run by a worker's GMainLoop: the
 * worker's first iteration makes the loop the worker's, silently. */
typedef struct
{
  GMainContext *context;
  GMainLoop *main_loop;
  AfutFuture *task;
  GThread *ran_on;
} Handover;

static void
handover_done (AfutFuture *future, void *data)
{
  Handover *h = (Handover *) data;
  (void) future;
  h->ran_on = g_thread_self ();
  g_main_loop_quit (h->main_loop);
}

static gpointer
handover_worker (gpointer data)
{
  Handover *h = (Handover *) data;
  g_main_context_push_thread_default (h->context);
  g_main_loop_run (h->main_loop);
  g_main_context_pop_thread_default (h->context);
  return NULL;
}

static void
test_made_here_run_by_worker_main_loop (void)
{
  Handover h = { 0 };
  AfutLoop *loop;
  char *log;
  capture_begin ();
  h.context = g_main_context_new ();
  h.main_loop = g_main_loop_new (h.context, FALSE);
  loop = afut_glib_loop_new (h.context, AFUT_LOOP_VIRTUAL_CLOCK);
  h.task = afut_task_new (loop, forever_step, sizeof (AfutTask), NULL,
                          "sleeper", NULL);
  afut_future_add_done_callback (h.task, handover_done, &h);
  run_on_worker (handover_worker, &h);
  g_assert_true (h.ran_on != NULL && h.ran_on != g_thread_self ());
  /* The worker's now: the main thread takes it back by running it. */
  g_assert_true (afut_loop_iterate (loop, FALSE));
  afut_future_unref (h.task);
  afut_loop_unref (loop);
  g_main_loop_unref (h.main_loop);
  g_main_context_unref (h.context);
  log = capture_end ();
  g_assert_cmpstr (log, ==, "");
  g_free (log);
}

/* ---- a destroyed GSource (section 2) ---- */

typedef struct
{
  AfutTask task;
  int fd;
  char byte;
} Reader;

static void
reader_step (AfutTask *task)
{
  Reader *self = (Reader *) task;
  AFUT_BEGIN (task);
  AFUT_AWAIT (task, afut_fd_read (self->fd, &self->byte, 1));
  AFUT_RETURN_INT (task, afut_future_get_int (afut_task_awaited (task)));
  AFUT_END (task);
}

static void
write_byte (void *data)
{
  int fd = GPOINTER_TO_INT (data);
  g_assert_cmpint (write (fd, "x", 1), ==, 1);
}

/* g_source_destroy() on the loop's source left run_until_complete asleep
 * with no message.  The loop reports it and goes on with a new source:
 * timers and fd waits, registered or not yet, still fire. */
static void
test_source_destroyed_during_run (void)
{
  if (g_test_subprocess ())
    {
      /* Reported criticals are what these cases check: not fatal. */
      g_log_set_always_fatal (G_LOG_FATAL_MASK);
      GMainContext *context = g_main_context_new ();
      AfutLoop *loop = afut_glib_loop_new (context, 0);
      int fds[2];
      AfutFuture *task, *later;
      GSource *old;
      g_assert_true (g_unix_open_pipe (fds, FD_CLOEXEC, NULL));
      g_assert_true (g_unix_set_fd_nonblocking (fds[0], TRUE, NULL));
      afut_glib_loop_set_priority (loop, G_PRIORITY_LOW);
      task = afut_task_new (loop, reader_step, sizeof (Reader),
                            &(Reader){ .fd = fds[0] }, "reader", NULL);
      g_assert_true (afut_loop_iterate (loop, FALSE));
      old = afut_glib_loop_get_source (loop);
      g_source_destroy (old);
      later = afut_loop_call_later (loop, 0.2, write_byte,
                                    GINT_TO_POINTER (fds[1]));
      g_assert_true (afut_loop_run_until_complete (loop, task));
      g_assert_cmpint (afut_future_get_int (task), ==, 1);
      g_assert_true (afut_glib_loop_get_source (loop) != old);
      g_assert_cmpint (g_source_get_priority (afut_glib_loop_get_source (loop)),
                       ==, G_PRIORITY_LOW);
      afut_future_unref (later);
      afut_future_unref (task);
      afut_loop_unref (loop);
      g_main_context_unref (context);
      close (fds[0]);
      close (fds[1]);
      return;
    }
  g_test_trap_subprocess (NULL, 30 * G_USEC_PER_SEC, G_TEST_SUBPROCESS_DEFAULT);
  g_test_trap_assert_passed ();
  g_test_trap_assert_stderr ("*CRITICAL*the GSource of an afut loop was "
                             "destroyed*");
}

/* The same from inside a task, with a GMainLoop driving the context. */
static void
destroy_source_step (AfutTask *task)
{
  AFUT_BEGIN (task);
  g_source_destroy (afut_glib_loop_get_source (afut_loop_get_running ()));
  AFUT_AWAIT (task, afut_sleep (0.01));
  AFUT_END (task);
}

static void
quit_main_loop (AfutFuture *future, void *data)
{
  (void) future;
  g_main_loop_quit ((GMainLoop *) data);
}

static void
test_source_destroyed_under_main_loop (void)
{
  if (g_test_subprocess ())
    {
      /* Reported criticals are what these cases check: not fatal. */
      g_log_set_always_fatal (G_LOG_FATAL_MASK);
      GMainContext *context = g_main_context_new ();
      GMainLoop *main_loop = g_main_loop_new (context, FALSE);
      AfutLoop *loop = afut_glib_loop_new (context, 0);
      AfutFuture *task = afut_task_new (loop, destroy_source_step,
                                        sizeof (AfutTask), NULL, "destroyer",
                                        NULL);
      afut_future_add_done_callback (task, quit_main_loop, main_loop);
      g_main_loop_run (main_loop);
      g_assert_true (afut_future_is_done (task));
      afut_future_unref (task);
      afut_loop_unref (loop);
      g_main_loop_unref (main_loop);
      g_main_context_unref (context);
      return;
    }
  g_test_trap_subprocess (NULL, 30 * G_USEC_PER_SEC, G_TEST_SUBPROCESS_DEFAULT);
  g_test_trap_assert_passed ();
  g_test_trap_assert_stderr ("*CRITICAL*the GSource of an afut loop was "
                             "destroyed*");
}

/* ---- GIO futures at shutdown (section 2) ---- */

typedef enum
{
  GIO_RESOLVED,
  GIO_CANCELLED,
  GIO_UNTOUCHED,
  GIO_CANCELLABLE_TAKEN, /* its cancellable went out, but not to GIO */
} GioEnd;

/* The minimal form: a future of afut_gio_future_new() that GIO
 * never got, still held by the user when the loop goes.  Before, the
 * last afut_loop_unref() waited for a GIO callback that never comes. */
static void
gio_future_at_shutdown (GioEnd end)
{
  GMainContext *context = g_main_context_new ();
  AfutLoop *loop = afut_glib_loop_new (context, AFUT_LOOP_VIRTUAL_CLOCK);
  AfutFuture *f = afut_gio_future_new (loop);
  switch (end)
    {
    case GIO_RESOLVED:
      afut_future_resolve (f);
      break;
    case GIO_CANCELLED:
      g_assert_true (afut_future_cancel (f, "bye"));
      /* GIO never had it: cancelled at once, no callback to wait for. */
      g_assert_true (afut_future_is_cancelled (f));
      break;
    case GIO_UNTOUCHED:
      break;
    case GIO_CANCELLABLE_TAKEN:
      g_assert_nonnull (afut_glib_future_get_cancellable (f));
      break;
    }
  afut_loop_unref (loop);
  afut_future_unref (f);
  g_main_context_unref (context);
}

static void
test_gio_future_at_shutdown (gconstpointer data)
{
  GioEnd end = (GioEnd) GPOINTER_TO_INT (data);
  if (g_test_subprocess ())
    {
      gio_future_at_shutdown (end);
      return;
    }
  g_test_trap_subprocess (NULL, 20 * G_USEC_PER_SEC, G_TEST_SUBPROCESS_DEFAULT);
  g_test_trap_assert_passed ();
  g_test_trap_assert_stderr_unmatched ("*CRITICAL*");
}

/* The realistic form: a task's error path that throws before it starts
 * the _async call, under afut_run(). */
static void
error_path_step (AfutTask *task)
{
  AfutFuture *op;
  AFUT_BEGIN (task);
  op = afut_gio_future_new (NULL);
  g_assert_nonnull (afut_glib_future_get_cancellable (op));
  afut_future_unref (op);
  AFUT_THROW (task, afut_error_new_literal (AFUT_ERROR, AFUT_ERROR_FAILED,
                                            "bad input"));
  AFUT_END (task);
}

typedef struct
{
  AfutTask task;
  AfutFuture *op; /* kept: a leaked one would keep the loop */
} Keeper;

static void
keeper_step (AfutTask *task)
{
  Keeper *self = (Keeper *) task;
  AFUT_BEGIN (task);
  self->op = afut_gio_future_new (NULL);
  (void) afut_glib_future_get_cancellable (self->op);
  AFUT_AWAIT (task, afut_future_ref (self->op)); /* never started */
  AFUT_END (task);
}

static void
keeper_finalize (AfutTask *task)
{
  afut_future_unref (((Keeper *) task)->op);
}

static void
test_gio_future_error_path (void)
{
  if (g_test_subprocess ())
    {
      /* Reported criticals are what these cases check: not fatal. */
      g_log_set_always_fatal (G_LOG_FATAL_MASK);
      AfutFuture *keeper;
      GMainContext *context = g_main_context_new ();
      AfutLoop *loop;
      g_main_context_push_thread_default (context);
      g_assert_cmpint (afut_run (error_path_step, sizeof (AfutTask), NULL,
                                 "error-path"),
                       ==, 1);
      /* Awaiting a future GIO never got: the shutdown cancels the task,
       * the future is cancelled at once, the task ends. */
      loop = afut_glib_loop_new (context, AFUT_LOOP_VIRTUAL_CLOCK);
      keeper = afut_task_new (loop, keeper_step, sizeof (Keeper), NULL,
                              "keeper", keeper_finalize);
      g_assert_true (afut_loop_iterate (loop, FALSE));
      afut_loop_unref (loop);
      g_assert_true (afut_future_is_cancelled (keeper));
      afut_future_unref (keeper);
      g_main_context_pop_thread_default (context);
      g_main_context_unref (context);
      return;
    }
  g_test_trap_subprocess (NULL, 20 * G_USEC_PER_SEC, G_TEST_SUBPROCESS_DEFAULT);
  g_test_trap_assert_passed ();
}

/* What GIO does have is still waited for: a cancel completes after GIO's
 * callback, and so does the shutdown. */
typedef struct
{
  AfutTask task;
  GFile *file;
  AfutFuture *op;
  gboolean saw_cancel;
} Loader;

static void
loader_step (AfutTask *task)
{
  Loader *self = (Loader *) task;
  AFUT_BEGIN (task);
  self->op = afut_gio_future_new (NULL);
  g_file_load_contents_async (self->file,
                              afut_glib_future_get_cancellable (self->op),
                              afut_gio_ready, afut_future_ref (self->op));
  AFUT_AWAIT_TRY (task, afut_future_ref (self->op));
  self->saw_cancel = afut_error_is_cancelled (afut_task_caught (task));
  if (afut_task_caught (task) != NULL)
    AFUT_RERAISE (task);
  AFUT_END (task);
}

static void
test_gio_future_in_gio_waits (void)
{
  GMainContext *context = g_main_context_new ();
  AfutLoop *loop;
  AfutFuture *task;
  Loader *loader;
  GFile *file = g_file_new_for_path ("/proc/self/status");
  g_main_context_push_thread_default (context);
  loop = afut_glib_loop_new (context, 0);
  task = afut_task_new (loop, loader_step, sizeof (Loader),
                        &(Loader){ .file = file }, "loader", NULL);
  loader = (Loader *) task;
  g_assert_true (afut_loop_iterate (loop, FALSE));
  g_assert_nonnull (loader->op);
  g_assert_true (afut_future_cancel (task, "stop"));
  /* Requested, not done: GIO has the call. */
  g_assert_false (afut_future_is_done (loader->op));
  afut_loop_unref (loop); /* waits for GIO's callback */
  g_assert_true (afut_future_is_cancelled (loader->op));
  g_assert_true (loader->saw_cancel);
  afut_future_unref (loader->op);
  afut_future_unref (task);
  g_object_unref (file);
  g_main_context_pop_thread_default (context);
  g_main_context_unref (context);
}

/* ---- nested main loops (section 6) ---- */

typedef struct
{
  AfutTask task;
  double delay;
  GThread *ran_on;
} Sleeper;

static void
sleeper_step (AfutTask *task)
{
  Sleeper *self = (Sleeper *) task;
  AFUT_BEGIN (task);
  AFUT_AWAIT (task, afut_sleep (self->delay));
  self->ran_on = g_thread_self ();
  AFUT_RETURN_INT (task, 42);
  AFUT_END (task);
}

typedef struct
{
  AfutTask task;
  GMainContext *context;
  AfutFuture *other;
  gboolean spinning;
  guint n_reentries;
  gboolean other_done_in_spin;
  gboolean cancel_seen;
} Spinner2;

/* A step that spins the context until another task ends, as a modal
 * wait does.  Before, afut's source said "wait forever" while afut was
 * mid-dispatch: the other task never stepped, its sleep never fired. */
static void
modal_step (AfutTask *task)
{
  Spinner2 *self = (Spinner2 *) task;
  AFUT_BEGIN (task);
  if (self->spinning)
    self->n_reentries++; /* re-entered from the nested loop: wrong */
  self->other = afut_task_new (NULL, sleeper_step, sizeof (Sleeper),
                               &(Sleeper){ .delay = 2.0 }, "other", NULL);
  self->spinning = TRUE;
  while (!afut_future_is_done (self->other))
    g_main_context_iteration (self->context, TRUE);
  self->spinning = FALSE;
  self->other_done_in_spin = afut_future_get_int (self->other) == 42;
  AFUT_AWAIT_TRY (task, afut_sleep (0));
  self->cancel_seen = afut_error_is_cancelled (afut_task_caught (task));
  AFUT_END (task);
}

static void
modal_finalize (AfutTask *task)
{
  afut_future_unref (((Spinner2 *) task)->other);
}

static void
test_nested_iteration_runs_other_tasks (void)
{
  if (g_test_subprocess ())
    {
      /* Reported criticals are what these cases check: not fatal. */
      g_log_set_always_fatal (G_LOG_FATAL_MASK);
      GMainContext *context = g_main_context_new ();
      AfutLoop *loop = afut_glib_loop_new (context, AFUT_LOOP_VIRTUAL_CLOCK);
      AfutFuture *task;
      Spinner2 *modal;
      task = afut_task_new (loop, modal_step, sizeof (Spinner2),
                            &(Spinner2){ .context = context }, "modal",
                            modal_finalize);
      modal = (Spinner2 *) task;
      g_assert_true (afut_loop_run_until_complete (loop, task));
      g_assert_true (modal->other_done_in_spin);
      g_assert_cmpuint (modal->n_reentries, ==, 0);
      g_assert_false (modal->cancel_seen);
      g_assert_cmpfloat (afut_loop_time (loop), >=, 2.0);
      afut_future_unref (task);
      afut_loop_unref (loop);
      g_main_context_unref (context);
      return;
    }
  g_test_trap_subprocess (NULL, 20 * G_USEC_PER_SEC, G_TEST_SUBPROCESS_DEFAULT);
  g_test_trap_assert_passed ();
  g_test_trap_assert_stderr_unmatched ("*CRITICAL*");
}

/* The task on the C stack is cancelled from the nested loop: it is not
 * re-entered there; the cancellation reaches it at its next await. */
static void
canceller_step (AfutTask *task)
{
  AFUT_BEGIN (task);
  afut_future_cancel (AFUT_FUTURE (((Sleeper *) task)->ran_on), "from nested");
  AFUT_END (task);
}

typedef struct
{
  AfutTask task;
  GMainContext *context;
  AfutFuture *other;
  gboolean spinning;
  guint n_reentries;
  gboolean cancel_seen;
} Cancelled;

static void
cancelled_step (AfutTask *task)
{
  Cancelled *self = (Cancelled *) task;
  AFUT_BEGIN (task);
  if (self->spinning)
    self->n_reentries++;
  /* ran_on carries the task to cancel: a Sleeper-sized struct. */
  self->other = afut_task_new (NULL, canceller_step, sizeof (Sleeper),
                               &(Sleeper){ .ran_on = (GThread *) task },
                               "canceller", NULL);
  self->spinning = TRUE;
  while (!afut_future_is_done (self->other))
    g_main_context_iteration (self->context, TRUE);
  self->spinning = FALSE;
  AFUT_AWAIT_TRY (task, afut_sleep (1.0));
  self->cancel_seen = afut_error_is_cancelled (afut_task_caught (task));
  AFUT_END (task);
}

static void
cancelled_finalize (AfutTask *task)
{
  afut_future_unref (((Cancelled *) task)->other);
}

static void
test_nested_task_on_stack_not_reentered (void)
{
  if (g_test_subprocess ())
    {
      /* Reported criticals are what these cases check: not fatal. */
      g_log_set_always_fatal (G_LOG_FATAL_MASK);
      GMainContext *context = g_main_context_new ();
      AfutLoop *loop = afut_glib_loop_new (context, AFUT_LOOP_VIRTUAL_CLOCK);
      AfutFuture *task = afut_task_new (loop, cancelled_step,
                                        sizeof (Cancelled),
                                        &(Cancelled){ .context = context },
                                        "cancelled", cancelled_finalize);
      Cancelled *c = (Cancelled *) task;
      g_assert_true (afut_loop_run_until_complete (loop, task));
      g_assert_cmpuint (c->n_reentries, ==, 0);
      g_assert_true (c->cancel_seen);
      afut_future_unref (task);
      afut_loop_unref (loop);
      g_main_context_unref (context);
      return;
    }
  g_test_trap_subprocess (NULL, 20 * G_USEC_PER_SEC, G_TEST_SUBPROCESS_DEFAULT);
  g_test_trap_assert_passed ();
  g_test_trap_assert_stderr_unmatched ("*CRITICAL*");
}

/* A done callback runs a nested GMainLoop until a GIO call of another
 * task completes: the GIO future resolves in the nested loop and its
 * awaiting task resumes there (before, only once the callback returned:
 * never). */
typedef struct
{
  GMainLoop *nested;
  AfutFuture *loader;
  gboolean loader_done_in_nested;
} Modal;

static void
modal_quit_when_done (AfutFuture *future, void *data)
{
  Modal *m = (Modal *) data;
  (void) future;
  g_main_loop_quit (m->nested);
}

static void
modal_done_callback (AfutFuture *future, void *data)
{
  Modal *m = (Modal *) data;
  (void) future;
  afut_future_add_done_callback (m->loader, modal_quit_when_done, m);
  g_main_loop_run (m->nested);
  m->loader_done_in_nested = afut_future_is_done (m->loader);
}

static void
test_nested_main_loop_in_done_callback (void)
{
  if (g_test_subprocess ())
    {
      /* Reported criticals are what these cases check: not fatal. */
      g_log_set_always_fatal (G_LOG_FATAL_MASK);
      GMainContext *context = g_main_context_new ();
      AfutLoop *loop;
      AfutFuture *trigger, *main_task;
      GFile *file = g_file_new_for_path ("/proc/self/status");
      Modal m = { 0 };
      g_main_context_push_thread_default (context);
      loop = afut_glib_loop_new (context, 0);
      m.nested = g_main_loop_new (context, FALSE);
      m.loader = afut_task_new (loop, loader_step, sizeof (Loader),
                                &(Loader){ .file = file }, "loader", NULL);
      trigger = afut_future_new (loop);
      afut_future_add_done_callback (trigger, modal_done_callback, &m);
      afut_future_resolve (trigger);
      main_task = afut_task_new (loop, sleeper_step, sizeof (Sleeper),
                                 &(Sleeper){ .delay = 0.05 }, "main", NULL);
      g_assert_true (afut_loop_run_until_complete (loop, main_task));
      g_assert_true (m.loader_done_in_nested);
      g_assert_true (afut_future_is_done (m.loader));
      afut_future_unref (((Loader *) m.loader)->op);
      afut_future_unref (m.loader);
      afut_future_unref (main_task);
      afut_future_unref (trigger);
      afut_loop_unref (loop);
      g_main_loop_unref (m.nested);
      g_object_unref (file);
      g_main_context_pop_thread_default (context);
      g_main_context_unref (context);
      return;
    }
  g_test_trap_subprocess (NULL, 20 * G_USEC_PER_SEC, G_TEST_SUBPROCESS_DEFAULT);
  g_test_trap_assert_passed ();
  g_test_trap_assert_stderr_unmatched ("*CRITICAL*");
}

/* The rest of a batch runs in the nested loop first, in order, then
 * what the batch scheduled. */
static GString *order;

static void
note (void *data)
{
  g_string_append_printf (order, "%s ", (const char *) data);
}

static void
note_later (void *data)
{
  g_string_append_printf (order, "%s ", (const char *) data);
}

static void
spin_once (void *data)
{
  GMainContext *context = (GMainContext *) data;
  g_string_append (order, "spin[ ");
  afut_loop_call_soon (afut_loop_get_running (), note_later, (void *) "d");
  while (g_main_context_iteration (context, FALSE))
    ;
  g_string_append (order, "] ");
}

static void
test_nested_batch_order (void)
{
  GMainContext *context = g_main_context_new ();
  AfutLoop *loop = afut_glib_loop_new (context, AFUT_LOOP_VIRTUAL_CLOCK);
  AfutFuture *end;
  order = g_string_new (NULL);
  afut_loop_call_soon (loop, note, (void *) "a");
  afut_loop_call_soon (loop, spin_once, context);
  afut_loop_call_soon (loop, note, (void *) "b");
  afut_loop_call_soon (loop, note, (void *) "c");
  end = afut_loop_sleep (loop, 0.0);
  g_assert_true (afut_loop_run_until_complete (loop, end));
  g_assert_cmpstr (order->str, ==, "a spin[ b c d ] ");
  g_string_free (order, TRUE);
  afut_future_unref (end);
  afut_loop_unref (loop);
  g_main_context_unref (context);
}

/* asyncio.current_task() is None outside a task: so is
 * afut_task_get_current() in a plain GLib callback that a nested
 * iteration inside a step dispatches. */
typedef struct
{
  AfutTask task;
  GMainContext *context;
  AfutTask *seen_in_callback;
  AfutTask *seen_in_step;
  gboolean called;
} Current;

static gboolean
record_current (gpointer data)
{
  Current *c = (Current *) data;
  c->seen_in_callback = afut_task_get_current (NULL);
  c->called = TRUE;
  return G_SOURCE_REMOVE;
}

static void
current_step (AfutTask *task)
{
  Current *self = (Current *) task;
  GSource *idle;
  AFUT_BEGIN (task);
  idle = g_idle_source_new ();
  g_source_set_callback (idle, record_current, self, NULL);
  g_source_attach (idle, self->context);
  g_source_unref (idle);
  while (!self->called)
    g_main_context_iteration (self->context, TRUE);
  self->seen_in_step = afut_task_get_current (NULL);
  AFUT_END (task);
}

static void
test_nested_current_task_in_plain_callback (void)
{
  GMainContext *context = g_main_context_new ();
  AfutLoop *loop = afut_glib_loop_new (context, AFUT_LOOP_VIRTUAL_CLOCK);
  AfutFuture *task = afut_task_new (loop, current_step, sizeof (Current),
                                    &(Current){ .context = context },
                                    "current", NULL);
  Current *c = (Current *) task;
  g_assert_true (afut_loop_run_until_complete (loop, task));
  g_assert_true (c->called);
  g_assert_null (c->seen_in_callback);
  g_assert_true (c->seen_in_step == &c->task);
  afut_future_unref (task);
  afut_loop_unref (loop);
  g_main_context_unref (context);
}

/* ---- fibers on the GLib loop, and nested main loops inside them ---- */

typedef struct
{
  GMainContext *context;
  AfutFuture *other;
  gboolean spinning;
  guint n_reentries;
  gboolean other_done_in_spin;
  gboolean awaited_after;
} FiberModal;

static AfutFuture *
fiber_sleeper (void *data)
{
  (void) data;
  if (!afut_await_check (afut_sleep (2.0), NULL))
    return NULL;
  return afut_future_new_for_int (42);
}

/* A fiber's body spins the context until another fiber ends, as a modal
 * wait does: the other fiber switches in and out from this one's stack,
 * this one is not re-entered, and it awaits again afterwards. */
static AfutFuture *
fiber_modal (void *data)
{
  FiberModal *self = (FiberModal *) data;
  if (self->spinning)
    self->n_reentries++;
  self->other = afut_fiber_new (fiber_sleeper, NULL, NULL);
  self->spinning = TRUE;
  while (!afut_future_is_done (self->other))
    g_main_context_iteration (self->context, TRUE);
  self->spinning = FALSE;
  self->other_done_in_spin = afut_future_get_int (self->other) == 42;
  self->awaited_after = afut_await_check (afut_sleep (0.5), NULL);
  return afut_future_new_for_int (7);
}

static void
test_fiber_nested_iteration_runs_other_fibers (void)
{
  if (g_test_subprocess ())
    {
      GMainContext *context = g_main_context_new ();
      AfutLoop *loop = afut_glib_loop_new (context, AFUT_LOOP_VIRTUAL_CLOCK);
      FiberModal m = { .context = context };
      AfutFuture *fiber = afut_fiber_new_full (loop, NULL, fiber_modal, &m,
                                               NULL);
      g_assert_true (afut_loop_run_until_complete (loop, fiber));
      g_assert_cmpint (afut_future_get_int (fiber), ==, 7);
      g_assert_true (m.other_done_in_spin);
      g_assert_cmpuint (m.n_reentries, ==, 0);
      g_assert_true (m.awaited_after);
      g_assert_cmpfloat (afut_loop_time (loop), >=, 2.5);
      afut_future_unref (m.other);
      afut_future_unref (fiber);
      afut_loop_unref (loop);
      g_main_context_unref (context);
      return;
    }
  g_test_trap_subprocess (NULL, 20 * G_USEC_PER_SEC, G_TEST_SUBPROCESS_DEFAULT);
  g_test_trap_assert_passed ();
  g_test_trap_assert_stderr_unmatched ("*CRITICAL*");
}

/* A plain GLib callback that a fiber's nested iteration dispatches is
 * not the fiber's body: an await there is refused (before, it switched
 * the fiber out with the nested main loop's frames on its stack), and
 * afut_fiber_get_current() is NULL there, as afut_task_get_current(). */
typedef struct
{
  GMainContext *context;
  gboolean called;
  AfutTask *current_in_callback;
  AfutFuture *awaited_in_callback;
  AfutTask *current_in_body;
} FiberPlain;

static gboolean
fiber_plain_callback (gpointer data)
{
  FiberPlain *p = (FiberPlain *) data;
  p->current_in_callback = afut_fiber_get_current ();
  p->awaited_in_callback = afut_await (afut_sleep (0));
  p->called = TRUE;
  return G_SOURCE_REMOVE;
}

static AfutFuture *
fiber_plain (void *data)
{
  FiberPlain *p = (FiberPlain *) data;
  GSource *idle = g_idle_source_new ();
  g_source_set_callback (idle, fiber_plain_callback, p, NULL);
  g_source_attach (idle, p->context);
  g_source_unref (idle);
  while (!p->called)
    g_main_context_iteration (p->context, TRUE);
  p->current_in_body = afut_fiber_get_current ();
  if (!afut_await_check (afut_sleep (1.0), NULL))
    return NULL;
  return afut_future_new_for_int (1);
}

static void
test_fiber_nested_await_in_plain_callback (void)
{
  GMainContext *context = g_main_context_new ();
  AfutLoop *loop = afut_glib_loop_new (context, AFUT_LOOP_VIRTUAL_CLOCK);
  FiberPlain p = { .context = context };
  AfutFuture *fiber;
  char *log;
  capture_begin ();
  fiber = afut_fiber_new_full (loop, &(AfutFiberOptions){ .name = "plain" },
                               fiber_plain, &p, NULL);
  g_assert_true (afut_loop_run_until_complete (loop, fiber));
  log = capture_end ();
  g_assert_cmpstr (log, ==,
                   "CRITICAL afut_await: called in a callback of a main loop "
                   "nested inside fiber 'plain', not in the fiber's body: a "
                   "fiber awaits only where its own step runs");
  g_free (log);
  g_assert_true (p.called);
  g_assert_null (p.current_in_callback);
  g_assert_nonnull (p.awaited_in_callback);
  g_assert_cmpint (afut_future_get_state (p.awaited_in_callback), ==,
                   AFUT_FUTURE_FAILED);
  g_assert_cmpint (afut_future_get_error (p.awaited_in_callback)->code, ==,
                   AFUT_ERROR_INVALID_STATE);
  g_assert_true (p.current_in_body == afut_future_get_task (fiber));
  g_assert_cmpint (afut_future_get_int (fiber), ==, 1);
  afut_future_unref (p.awaited_in_callback);
  afut_future_unref (fiber);
  afut_loop_unref (loop);
  g_main_context_unref (context);
}

/* A fiber is cancelled from inside the nested loop its body runs: it is
 * not re-entered there, and the cancellation reaches its next await,
 * where it cleans up and re-raises. */
typedef struct
{
  GMainContext *context;
  AfutFuture *self;
  AfutFuture *canceller;
  gboolean spinning;
  guint n_reentries;
  gboolean cancel_seen;
} FiberCancelled;

static AfutFuture *
fiber_canceller (void *data)
{
  FiberCancelled *c = (FiberCancelled *) data;
  afut_future_cancel (c->self, "from nested");
  return NULL;
}

static AfutFuture *
fiber_cancelled (void *data)
{
  FiberCancelled *c = (FiberCancelled *) data;
  AfutFuture *done;
  if (c->spinning)
    c->n_reentries++;
  c->canceller = afut_fiber_new (fiber_canceller, c, NULL);
  c->spinning = TRUE;
  while (!afut_future_is_done (c->canceller))
    g_main_context_iteration (c->context, TRUE);
  c->spinning = FALSE;
  done = afut_await (afut_sleep (1.0));
  c->cancel_seen = afut_future_is_cancelled (done);
  return done;
}

static void
test_fiber_nested_cancelled_not_reentered (void)
{
  if (g_test_subprocess ())
    {
      GMainContext *context = g_main_context_new ();
      AfutLoop *loop = afut_glib_loop_new (context, AFUT_LOOP_VIRTUAL_CLOCK);
      FiberCancelled c = { .context = context };
      AfutFuture *fiber = afut_fiber_new_full (loop, NULL, fiber_cancelled,
                                               &c, NULL);
      c.self = fiber;
      g_assert_true (afut_loop_run_until_complete (loop, fiber));
      g_assert_cmpuint (c.n_reentries, ==, 0);
      g_assert_true (c.cancel_seen);
      g_assert_true (afut_future_is_cancelled (fiber));
      g_assert_cmpstr (afut_future_get_error (fiber)->message, ==,
                       "from nested");
      afut_future_unref (c.canceller);
      afut_future_unref (fiber);
      afut_loop_unref (loop);
      g_main_context_unref (context);
      return;
    }
  g_test_trap_subprocess (NULL, 20 * G_USEC_PER_SEC, G_TEST_SUBPROCESS_DEFAULT);
  g_test_trap_assert_passed ();
  g_test_trap_assert_stderr_unmatched ("*CRITICAL*");
}

int
main (int argc, char **argv)
{
  g_test_init (&argc, &argv, NULL);
  g_test_add_func ("/glib-loop/wrong-thread/every-entry-point",
                   test_wrong_thread_every_entry_point);
  g_test_add_func ("/glib-loop/other-thread/iterates-context-during-run",
                   test_other_thread_iterates_context);
  g_test_add_func ("/glib-loop/other-thread/dispatch-during-run",
                   test_dispatch_from_other_thread);
  g_test_add_func ("/glib-loop/other-thread/while-main-loop-runs",
                   test_worker_while_main_loop_runs);
  g_test_add_func ("/glib-loop/other-thread/made-here-run-by-worker-main-loop",
                   test_made_here_run_by_worker_main_loop);
  g_test_add_func ("/glib-loop/source/destroyed-during-run",
                   test_source_destroyed_during_run);
  g_test_add_func ("/glib-loop/source/destroyed-under-main-loop",
                   test_source_destroyed_under_main_loop);
  g_test_add_data_func ("/glib-loop/gio-future/shutdown/resolved",
                        GINT_TO_POINTER (GIO_RESOLVED),
                        test_gio_future_at_shutdown);
  g_test_add_data_func ("/glib-loop/gio-future/shutdown/cancelled",
                        GINT_TO_POINTER (GIO_CANCELLED),
                        test_gio_future_at_shutdown);
  g_test_add_data_func ("/glib-loop/gio-future/shutdown/untouched",
                        GINT_TO_POINTER (GIO_UNTOUCHED),
                        test_gio_future_at_shutdown);
  g_test_add_data_func ("/glib-loop/gio-future/shutdown/cancellable-taken",
                        GINT_TO_POINTER (GIO_CANCELLABLE_TAKEN),
                        test_gio_future_at_shutdown);
  g_test_add_func ("/glib-loop/gio-future/error-path",
                   test_gio_future_error_path);
  g_test_add_func ("/glib-loop/gio-future/in-gio-waits",
                   test_gio_future_in_gio_waits);
  g_test_add_func ("/glib-loop/nested/iteration-runs-other-tasks",
                   test_nested_iteration_runs_other_tasks);
  g_test_add_func ("/glib-loop/nested/task-on-stack-not-reentered",
                   test_nested_task_on_stack_not_reentered);
  g_test_add_func ("/glib-loop/nested/main-loop-in-done-callback",
                   test_nested_main_loop_in_done_callback);
  g_test_add_func ("/glib-loop/nested/batch-order",
                   test_nested_batch_order);
  g_test_add_func ("/glib-loop/nested/current-task-in-plain-callback",
                   test_nested_current_task_in_plain_callback);
  g_test_add_func ("/glib-loop/fiber/nested/iteration-runs-other-fibers",
                   test_fiber_nested_iteration_runs_other_fibers);
  g_test_add_func ("/glib-loop/fiber/nested/await-in-plain-callback",
                   test_fiber_nested_await_in_plain_callback);
  g_test_add_func ("/glib-loop/fiber/nested/cancelled-not-reentered",
                   test_fiber_nested_cancelled_not_reentered);
  return g_test_run ();
}
