#define AFUT_IMPLEMENTATION
#define AFUT_GLIB
#include "afut.h"
#include "afut-glib.h"

#include "event-log.h"

/* test-glib.c - the GLib adapter (glib-adapter/afut-glib.h):
 *   - the loop as ONE GSource on a GMainContext (fresh or default), run by
 *     g_main_loop_run(), g_main_context_iteration(), run_until_complete
 *     and afut_run(); priority, the dispatch budget and asyncio's batch
 *     order, unrelated GLib sources, N sleeps = one source, the virtual
 *     clock;
 *   - errors are GErrors; GError <-> cancellation; propagate;
 *   - GCancellable links both ways, from the loop thread and others;
 *   - GIO async calls as futures; futures as GTasks (foo_async/finish);
 *   - afut_to_thread(); threads completing futures; a loop per thread;
 *   - fd readiness and the fd stream helpers through the source;
 *   - the seed tutorial's ordering on GLib.
 *
 * Timers run on the virtual clock.  Real time only bounds thread
 * hand-offs and the spin checks, a few milliseconds each; every wait has
 * a deadline, so a lost wakeup fails instead of hanging.  Test-side
 * synchronization between threads uses atomics and pthreads (TSan sees
 * those; GLib's own GMutex is invisible to it). */

#include <errno.h>
#include <fcntl.h>
#include <gio/gunixinputstream.h>
#include <glib-unix.h>
#include <glib/gstdio.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

/* ---- harness ---- */

#define WAIT_LIMIT_US (20 * G_USEC_PER_SEC)

static pthread_mutex_t reports_lock = PTHREAD_MUTEX_INITIALIZER;
static GPtrArray *reports; /* what exception handlers were told */


static void
record_report (AfutLoop *loop, const AfutExceptionContext *context,
               void *data)
{
  (void) loop;
  (void) data;
  pthread_mutex_lock (&reports_lock);
  g_ptr_array_add (reports,
                   g_strdup_printf ("%s|%s|%s", context->message,
                                    context->task_name != NULL
                                      ? context->task_name
                                      : "-",
                                    context->error != NULL
                                      ? context->error->message
                                      : "-"));
  pthread_mutex_unlock (&reports_lock);
}

/* Nothing may have been reported as never retrieved, or failing during
 * a shutdown. */
static void
assert_no_reports (void)
{
  GString *all = g_string_new (NULL);
  guint i;
  pthread_mutex_lock (&reports_lock);
  for (i = 0; i < reports->len; i++)
    g_string_append_printf (all, "%s; ",
                            (const char *) g_ptr_array_index (reports, i));
  g_ptr_array_set_size (reports, 0);
  pthread_mutex_unlock (&reports_lock);
  g_assert_cmpstr (all->str, ==, "");
  g_string_free (all, TRUE);
}

static void
reset_logs (void)
{
  g_string_truncate (events, 0);
  g_string_truncate (lines, 0);
}

static AfutLoop *
glib_loop_new (GMainContext *ctx, unsigned flags)
{
  AfutLoop *loop = afut_glib_loop_new (ctx, flags);
  g_assert_nonnull (loop);
  afut_loop_set_exception_handler (loop, record_report, NULL);
  return loop;
}

static void
glib_loop_free (AfutLoop *loop)
{
  afut_loop_unref (loop);
  assert_no_reports ();
}

/* One test's context, pushed as this thread's default so GIO calls and
 * GTasks made during the test complete on it, and its loop. */
typedef struct
{
  GMainContext *ctx;
  AfutLoop *loop;
} Env;

static void
env_init (Env *env, unsigned flags)
{
  reset_logs ();
  env->ctx = g_main_context_new ();
  g_main_context_push_thread_default (env->ctx);
  env->loop = glib_loop_new (env->ctx, flags);
}

static void
env_clear (Env *env)
{
  glib_loop_free (env->loop);
  while (g_main_context_iteration (env->ctx, FALSE))
    ;
  g_main_context_pop_thread_default (env->ctx);
  g_main_context_unref (env->ctx);
}

static gboolean
tick_cb (gpointer data)
{
  if (data != NULL)
    (*(guint *) data)++;
  return G_SOURCE_CONTINUE;
}

static GSource *
tick_attach (GMainContext *ctx, guint interval_ms, guint *count)
{
  GSource *s = g_timeout_source_new (interval_ms);
  g_source_set_callback (s, tick_cb, count, NULL);
  g_source_attach (s, ctx);
  return s;
}

static void
source_drop (GSource *s)
{
  g_source_destroy (s);
  g_source_unref (s);
}

/* For cases that show a known adapter bug: the body runs in a child
 * process (its output inherited), so that its failure fails this case
 * while the rest of the suite still runs.  Returns TRUE in the child. */
static gboolean
body_in_subprocess (void)
{
  if (g_test_subprocess ())
    return TRUE;
  g_test_trap_subprocess (NULL, 0,
                          G_TEST_SUBPROCESS_INHERIT_STDOUT
                            | G_TEST_SUBPROCESS_INHERIT_STDERR);
  if (!g_test_trap_has_passed ())
    g_test_fail_printf ("%s failed in its subprocess (output above)",
                        g_test_get_path ());
  return FALSE;
}

/* Iterates @ctx, blocking, until @cond holds.  A 50 ms tick bounds each
 * block, so a lost wakeup shows up as the time limit, not a hang. */
#define ITERATE_UNTIL(ctx, cond)                                              \
  G_STMT_START                                                                \
  {                                                                           \
    GSource *tick_ = tick_attach ((ctx), 50, NULL);                           \
    gint64 limit_ = g_get_monotonic_time () + WAIT_LIMIT_US;                  \
    while (!(cond))                                                           \
      {                                                                       \
        if (g_get_monotonic_time () > limit_)                                 \
          g_error ("%s:%d: timed out waiting for %s", __FILE__, __LINE__,     \
                   #cond);                                                    \
        g_main_context_iteration ((ctx), TRUE);                               \
      }                                                                       \
    source_drop (tick_);                                                      \
  }                                                                           \
  G_STMT_END

static void
iterate_n (GMainContext *ctx, guint n)
{
  while (n-- > 0)
    g_main_context_iteration (ctx, FALSE);
}

static gboolean
main_loop_timed_out (gpointer data)
{
  (void) data;
  g_error ("the main loop never quit");
  return G_SOURCE_REMOVE;
}

static void
main_loop_run_guarded (GMainLoop *ml)
{
  GSource *guard = g_timeout_source_new_seconds (20);
  g_source_set_callback (guard, main_loop_timed_out, NULL, NULL);
  g_source_attach (guard, g_main_loop_get_context (ml));
  g_main_loop_run (ml);
  source_drop (guard);
}

static void
quit_on_done (AfutFuture *future, void *data)
{
  (void) future;
  g_main_loop_quit ((GMainLoop *) data);
}

static gboolean
set_flag (gpointer data)
{
  *(gboolean *) data = TRUE;
  return G_SOURCE_REMOVE;
}

/* Blocking iterations of @ctx over @ms milliseconds: 1 or 2 when GLib
 * sleeps in poll, thousands when something keeps waking it (a ready fd
 * left in the poll set). */
static guint
blocking_iterations_during (GMainContext *ctx, guint ms)
{
  gboolean elapsed = FALSE;
  guint n = 0;
  GSource *t = g_timeout_source_new (ms);
  g_source_set_callback (t, set_flag, &elapsed, NULL);
  g_source_attach (t, ctx);
  while (!elapsed)
    {
      g_main_context_iteration (ctx, TRUE);
      n++;
    }
  g_source_unref (t);
  return n;
}

/* Non-blocking iterations of @ctx over @ms milliseconds that dispatched
 * something: 0 when nothing has work. */
static guint
dispatches_during (GMainContext *ctx, guint ms)
{
  gint64 end = g_get_monotonic_time () + ms * 1000;
  guint n = 0;
  while (g_get_monotonic_time () < end)
    if (g_main_context_iteration (ctx, FALSE))
      n++;
  return n;
}

/* Whether @epfd, an epoll fd, holds @fd, and for which events (the
 * kernel's own view, from /proc/self/fdinfo). */
static gboolean
epoll_holds_fd (int epfd, int fd, gushort *events_out)
{
  char path[64], link[64], *info = NULL, *line;
  ssize_t len;
  gboolean found = FALSE;
  g_snprintf (path, sizeof path, "/proc/self/fd/%d", epfd);
  len = readlink (path, link, sizeof link - 1);
  if (len < 0)
    return FALSE;
  link[len] = '\0';
  if (strcmp (link, "anon_inode:[eventpoll]") != 0)
    return FALSE;
  g_snprintf (path, sizeof path, "/proc/self/fdinfo/%d", epfd);
  g_assert_true (g_file_get_contents (path, &info, NULL, NULL));
  for (line = strtok (info, "\n"); line != NULL; line = strtok (NULL, "\n"))
    {
      int tfd;
      unsigned events;
      if (sscanf (line, "tfd: %d events: %x", &tfd, &events) == 2
          && tfd == fd)
        {
          found = TRUE;
          if (events_out != NULL)
            *events_out = (gushort) (((events & 0x1) ? G_IO_IN : 0)
                                     | ((events & 0x4) ? G_IO_OUT : 0));
        }
    }
  g_free (info);
  return found;
}

/* Runs one iteration by hand to see what GLib will poll: whether @fd is
 * in the poll set (with which events), itself or through an epoll fd in
 * it (the adapter's, on Linux), and the poll timeout. */
static gboolean
context_polls_fd (GMainContext *ctx, int fd, gushort *events_out,
                  gint *timeout_out)
{
  GPollFD fds[64];
  gint max_priority, timeout, n, i;
  gboolean found = FALSE;
  g_assert_true (g_main_context_acquire (ctx));
  g_main_context_prepare (ctx, &max_priority);
  n = g_main_context_query (ctx, max_priority, &timeout, fds,
                            G_N_ELEMENTS (fds));
  g_assert_cmpint (n, <=, (gint) G_N_ELEMENTS (fds));
  for (i = 0; i < n; i++)
    if (fds[i].fd == fd)
      {
        found = TRUE;
        if (events_out != NULL)
          *events_out = fds[i].events;
      }
    else if (fd >= 0 && epoll_holds_fd (fds[i].fd, fd, events_out))
      found = TRUE;
  if (timeout_out != NULL)
    *timeout_out = timeout;
  /* Polled without waiting, so that check sees what is ready. */
  g_assert_cmpint (g_poll (fds, (guint) n, 0), >=, 0);
  if (g_main_context_check (ctx, max_priority, fds, n))
    g_main_context_dispatch (ctx);
  g_main_context_release (ctx);
  return found;
}

/* Whether @fd leaves the poll set: at once where GLib polls each fd,
 * within one more iteration where an epoll set holds it (it leaves at
 * its first event once nobody waits on it). */
static gboolean
context_drops_fd (GMainContext *ctx, int fd)
{
  return !context_polls_fd (ctx, fd, NULL, NULL)
         || (AFUT__HAVE_EPOLL && !context_polls_fd (ctx, fd, NULL, NULL));
}

static void
socketpair_nonblocking (int sv[2])
{
  g_assert_cmpint (socketpair (AF_UNIX, SOCK_STREAM, 0, sv), ==, 0);
  g_assert_true (g_unix_set_fd_nonblocking (sv[0], TRUE, NULL));
  g_assert_true (g_unix_set_fd_nonblocking (sv[1], TRUE, NULL));
}

static void
assert_gerror (const AfutError *error, GQuark domain, int code,
               const char *message)
{
  g_assert_nonnull (error);
  g_assert_error ((GError *) error, domain, code);
  if (message != NULL)
    g_assert_cmpstr (error->message, ==, message);
}

static void
assert_cancelled (AfutFuture *future, const char *message)
{
  g_assert_cmpstr (afut_future_state_to_string (afut_future_get_state (future)),
                   ==, "cancelled");
  assert_gerror (afut_future_get_error (future), AFUT_ERROR,
                 AFUT_ERROR_CANCELLED, message);
}

static void
assert_state (AfutFuture *future, AfutFutureState state)
{
  g_assert_cmpstr (afut_future_state_to_string (afut_future_get_state (future)),
                   ==, afut_future_state_to_string (state));
}

/* ---- task bodies used across groups ---- */

/* Logs "<label>.start", then yields @n times logging "<label>.<i>" at
 * each resume; returns @n. */
typedef struct
{
  AfutTask task;
  const char *label;
  int n;
  int i;
} Yielder;

static void
yielder (AfutTask *task)
{
  Yielder *self = (Yielder *) task;
  AFUT_BEGIN (task);
  ev ("%s.start", self->label);
  for (self->i = 1; self->i <= self->n; self->i++)
    {
      AFUT_YIELD (task);
      ev ("%s.%d", self->label, self->i);
    }
  AFUT_RETURN_INT (task, self->n);
  AFUT_END (task);
}

static AfutFuture *
yielder_new (AfutLoop *loop, const char *label, int n)
{
  return afut_task_new (loop, yielder, sizeof (Yielder),
                        &(Yielder){ .label = label, .n = n }, label, NULL);
}

/* Steps @n + 1 times (yielding in between), recording at each step how
 * many steps its peer had made: asyncio's batch order makes that exact. */
typedef struct
{
  AfutTask task;
  int n;
  int steps;
  const int *peer_steps;
  int *seen;
} Stepper;

static void
stepper (AfutTask *task)
{
  Stepper *self = (Stepper *) task;
  AFUT_BEGIN (task);
  for (;;)
    {
      if (self->seen != NULL)
        self->seen[self->steps]
          = self->peer_steps != NULL ? *self->peer_steps : -1;
      self->steps++;
      if (self->steps > self->n)
        break;
      AFUT_YIELD (task);
    }
  AFUT_RETURN_INT (task, self->steps);
  AFUT_END (task);
}

static Stepper *
stepper_of (AfutFuture *future)
{
  return (Stepper *) afut_future_get_task (future);
}

/* Sleeps @seconds and returns the loop's time when it woke. */
typedef struct
{
  AfutTask task;
  double seconds;
  const char *label;
} Sleeper;

static void
sleeper (AfutTask *task)
{
  Sleeper *self = (Sleeper *) task;
  AFUT_BEGIN (task);
  AFUT_AWAIT (task, afut_sleep (self->seconds));
  if (self->label != NULL)
    ev ("%s", self->label);
  AFUT_RETURN_DOUBLE (task, afut_loop_time (afut_loop_get_running ()));
  AFUT_END (task);
}

static AfutFuture *
sleeper_new (AfutLoop *loop, double seconds, const char *label)
{
  return afut_task_new (loop, sleeper, sizeof (Sleeper),
                        &(Sleeper){ .seconds = seconds, .label = label },
                        label, NULL);
}

/* Awaits @future (a reference of its own), logging how the await ended,
 * and ends the same way. */
typedef struct
{
  AfutTask task;
  AfutFuture *future;
  const char *label;
} Awaiter;

static void
awaiter_finalize (AfutTask *task)
{
  afut_future_unref (((Awaiter *) task)->future);
}

static void
awaiter (AfutTask *task)
{
  Awaiter *self = (Awaiter *) task;
  AFUT_BEGIN (task);
  ev ("%s.waiting", self->label);
  AFUT_AWAIT_TRY (task, afut_future_ref (self->future));
  if (afut_task_caught (task) != NULL)
    {
      ev ("%s.caught:%s:%s", self->label,
          afut_error_is_cancelled (afut_task_caught (task)) ? "cancelled"
                                                            : "error",
          afut_task_caught (task)->message);
      AFUT_RERAISE (task);
    }
  ev ("%s.done", self->label);
  AFUT_END (task);
}

static AfutFuture *
awaiter_new (AfutLoop *loop, AfutFuture *future, const char *label)
{
  return afut_task_new (loop, awaiter, sizeof (Awaiter),
                        &(Awaiter){ .future = afut_future_ref (future),
                                    .label = label },
                        label, awaiter_finalize);
}

static gpointer job_func (gpointer data, GCancellable *cancellable,
                          GError **error);

/* ==================================================================== */
/* ---- the loop on a context ---- */

typedef struct
{
  AfutTask task;
  AfutLoop *running;
  GMainContext *ctx;
} WhereAmI;

static void
where_am_i (AfutTask *task)
{
  WhereAmI *self = (WhereAmI *) task;
  AFUT_BEGIN (task);
  self->running = afut_loop_get_running ();
  self->ctx = afut_glib_loop_get_context (self->running);
  ev ("step1");
  AFUT_YIELD (task);
  ev ("step2");
  AFUT_RETURN_INT (task, 42);
  AFUT_END (task);
}

/* afut_glib_loop_new on a fresh context: one source, named, at the
 * default priority, run by g_main_context_iteration; freeing the loop
 * destroys the source. */
static void
test_loop_fresh_context (void)
{
  GMainContext *ctx = g_main_context_new ();
  AfutLoop *loop;
  GSource *source;
  AfutFuture *t;
  guint n = 0;

  reset_logs ();
  loop = glib_loop_new (ctx, AFUT_LOOP_NONE);
  source = afut_glib_loop_get_source (loop);
  g_assert_true (afut_glib_loop_get_context (loop) == ctx);
  g_assert_nonnull (source);
  g_assert_true (g_source_get_context (source) == ctx);
  g_assert_cmpstr (g_source_get_name (source), ==, "afut");
  g_assert_cmpint (g_source_get_priority (source), ==, G_PRIORITY_DEFAULT);
  g_assert_true (g_main_context_find_source_by_id (ctx,
                                                   g_source_get_id (source))
                 == source);
  g_source_ref (source);

  /* Nothing to do: GLib has nothing pending for afut. */
  g_assert_false (g_main_context_pending (ctx));
  t = afut_task_new (loop, where_am_i, sizeof (WhereAmI), NULL, "where",
                     NULL);
  /* A new task's first step is ready work. */
  g_assert_true (g_main_context_pending (ctx));
  g_assert_cmpstr (events->str, ==, "");
  while (!afut_future_is_done (t))
    {
      g_assert_cmpuint (++n, <, 100);
      g_main_context_iteration (ctx, TRUE);
    }
  g_assert_cmpstr (events->str, ==, "step1 step2");
  g_assert_cmpint (afut_future_get_int (t), ==, 42);
  g_assert_true (((WhereAmI *) t)->running == loop);
  g_assert_true (((WhereAmI *) t)->ctx == ctx);
  g_assert_null (afut_loop_get_running ());
  g_assert_false (g_main_context_pending (ctx));
  afut_future_unref (t);

  glib_loop_free (loop);
  g_assert_true (g_source_is_destroyed (source));
  g_source_unref (source);
  g_main_context_unref (ctx);
}

/* A closed loop (its memory kept by a future) has no source any more;
 * its source is gone from the context. */
static void
test_loop_closed_has_no_source (void)
{
  GMainContext *ctx = g_main_context_new ();
  AfutLoop *loop = glib_loop_new (ctx, AFUT_LOOP_NONE);
  GSource *source = g_source_ref (afut_glib_loop_get_source (loop));
  guint id = g_source_get_id (source);
  AfutFuture *f = afut_future_new (loop);

  afut_loop_unref (loop);
  g_assert_true (g_source_is_destroyed (source));
  g_assert_null (g_main_context_find_source_by_id (ctx, id));
  g_assert_null (afut_glib_loop_get_source (afut_future_get_loop (f)));
  g_assert_true (afut_glib_loop_get_context (afut_future_get_loop (f))
                 == ctx);
  afut_future_unref (f);
  assert_no_reports ();
  g_source_unref (source);
  g_main_context_unref (ctx);
}

/* afut_loop_close() on the adapter: the source goes at once, though the
 * caller still holds the loop; the context is still known. */
static void
test_loop_close_destroys_source (void)
{
  GMainContext *ctx = g_main_context_new ();
  AfutLoop *loop = glib_loop_new (ctx, AFUT_LOOP_VIRTUAL_CLOCK);
  GSource *source = g_source_ref (afut_glib_loop_get_source (loop));

  g_assert_true (afut_loop_close (loop));
  g_assert_true (afut_loop_is_closed (loop));
  g_assert_true (g_source_is_destroyed (source));
  g_assert_null (afut_glib_loop_get_source (loop));
  g_assert_true (afut_glib_loop_get_context (loop) == ctx);
  g_assert_false (g_main_context_pending (ctx));
  afut_loop_unref (loop);
  assert_no_reports ();
  g_source_unref (source);
  g_main_context_unref (ctx);
}

typedef struct
{
  AfutTask task;
  AfutLoop **held;
} HoldingMain;

static void
holding_main (AfutTask *task)
{
  HoldingMain *self = (HoldingMain *) task;
  AFUT_BEGIN (task);
  *self->held = afut_loop_ref (afut_loop_get_running ());
  AFUT_AWAIT (task, afut_sleep (0));
  AFUT_END (task);
}

/* afut_run() closes the GLib loop it made even while the main task's
 * reference keeps it: no afut source is left on the context. */
static void
test_loop_afut_run_closes_held_loop (void)
{
  GMainContext *ctx = g_main_context_new ();
  AfutLoop *held = NULL;
  HoldingMain init = { .held = &held };

  g_main_context_push_thread_default (ctx);
  g_assert_cmpint (afut_run (holding_main, sizeof (HoldingMain), &init,
                             "main"),
                   ==, 0);
  g_main_context_pop_thread_default (ctx);
  g_assert_nonnull (held);
  g_assert_true (afut_loop_is_closed (held));
  g_assert_null (afut_glib_loop_get_source (held));
  g_assert_false (g_main_context_pending (ctx));
  afut_loop_unref (held);
  g_main_context_unref (ctx);
}

/* afut_glib_loop_new (NULL) lives on the global default context, and
 * runs under g_main_loop_run(), quit from a task's done callback. */
static void
test_loop_default_context_main_loop (void)
{
  AfutLoop *loop;
  GMainLoop *ml;
  AfutFuture *t;

  reset_logs ();
  loop = glib_loop_new (NULL, AFUT_LOOP_VIRTUAL_CLOCK);
  g_assert_true (afut_glib_loop_get_context (loop)
                 == g_main_context_default ());
  g_assert_true (g_source_get_context (afut_glib_loop_get_source (loop))
                 == g_main_context_default ());
  ml = g_main_loop_new (NULL, FALSE);
  t = sleeper_new (loop, 2.0, "woke");
  afut_future_add_done_callback (t, quit_on_done, ml);
  main_loop_run_guarded (ml);
  g_assert_cmpstr (events->str, ==, "woke");
  g_assert_cmpfloat (afut_future_get_double (t), ==, 2.0);
  afut_future_unref (t);
  g_main_loop_unref (ml);
  glib_loop_free (loop);
  while (g_main_context_iteration (NULL, FALSE))
    ;
}

/* g_main_loop_run() on a fresh context, a gather of tasks. */
static void
test_loop_fresh_context_main_loop (void)
{
  Env env;
  GMainLoop *ml;
  AfutFuture *g;

  env_init (&env, AFUT_LOOP_VIRTUAL_CLOCK);
  ml = g_main_loop_new (env.ctx, FALSE);
  g = afut_gather (sleeper_new (env.loop, 3, "c"),
                   sleeper_new (env.loop, 1, "a"),
                   sleeper_new (env.loop, 2, "b"), NULL);
  afut_future_add_done_callback (g, quit_on_done, ml);
  main_loop_run_guarded (ml);
  g_assert_cmpstr (events->str, ==, "a b c");
  g_assert_cmpfloat (afut_future_get_double (afut_gather_get_item (g, 0)), ==,
                     3.0);
  g_assert_cmpfloat (afut_loop_time (env.loop), ==, 3.0);
  afut_future_unref (g);
  g_main_loop_unref (ml);
  env_clear (&env);
}

static gboolean
log_idle (gpointer data)
{
  ev ("%s", (const char *) data);
  return G_SOURCE_REMOVE;
}

static void
add_idle (GMainContext *ctx, int priority, const char *label)
{
  GSource *s = g_idle_source_new ();
  g_source_set_priority (s, priority);
  g_source_set_callback (s, log_idle, (gpointer) label, NULL);
  g_source_attach (s, ctx);
  g_source_unref (s);
}

/* afut_loop_run_until_complete() iterates the context itself: other
 * sources on it run meanwhile, and callbacks see the loop running. */
static void
test_loop_run_until_complete (void)
{
  GMainContext *ctx = g_main_context_new ();
  AfutLoop *loop;
  AfutFuture *t;

  reset_logs ();
  loop = glib_loop_new (ctx, AFUT_LOOP_NONE);
  t = afut_task_new (loop, where_am_i, sizeof (WhereAmI), NULL, "where",
                     NULL);
  add_idle (ctx, G_PRIORITY_HIGH, "idle");
  g_assert_true (afut_loop_run_until_complete (loop, t));
  g_assert_cmpstr (events->str, ==, "idle step1 step2");
  g_assert_true (((WhereAmI *) t)->running == loop);
  g_assert_cmpint (afut_future_get_int (t), ==, 42);
  afut_future_unref (t);
  glib_loop_free (loop);
  g_main_context_unref (ctx);
}

typedef struct
{
  AfutLoop *loop;
  AfutFuture *future;
  gboolean ok;
} NestedRun;

static gboolean
run_until_complete_from_idle (gpointer data)
{
  NestedRun *n = (NestedRun *) data;
  ev ("idle.enter");
  n->ok = afut_loop_run_until_complete (n->loop, n->future);
  ev ("idle.leave");
  return G_SOURCE_REMOVE;
}

/* A GLib callback (a GTK signal handler, say) may run the loop until a
 * future is done: a nested iteration of the context. */
static void
test_loop_run_until_complete_from_glib_callback (void)
{
  Env env;
  GMainLoop *ml;
  NestedRun n;
  GSource *idle;

  env_init (&env, AFUT_LOOP_VIRTUAL_CLOCK);
  ml = g_main_loop_new (env.ctx, FALSE);
  n.loop = env.loop;
  n.future = sleeper_new (env.loop, 5, "slept");
  n.ok = FALSE;
  idle = g_idle_source_new ();
  g_source_set_priority (idle, G_PRIORITY_HIGH);
  g_source_set_callback (idle, run_until_complete_from_idle, &n, NULL);
  g_source_attach (idle, env.ctx);
  g_source_unref (idle);
  afut_future_add_done_callback (n.future, quit_on_done, ml);
  main_loop_run_guarded (ml);
  g_assert_true (n.ok);
  g_assert_cmpstr (events->str, ==, "idle.enter slept idle.leave");
  g_assert_cmpfloat (afut_future_get_double (n.future), ==, 5.0);
  afut_future_unref (n.future);
  g_main_loop_unref (ml);
  env_clear (&env);
}

/* A task that runs a nested iteration of the context: other sources run,
 * and so does afut's other work (the other task steps there, ahead of
 * the idle of a lower priority); the nester is not re-entered. */
typedef struct
{
  AfutTask task;
  GMainContext *ctx;
} Nester;

static void
nester (AfutTask *task)
{
  Nester *self = (Nester *) task;
  AFUT_BEGIN (task);
  ev ("nester.in");
  add_idle (self->ctx, G_PRIORITY_DEFAULT_IDLE, "idle");
  iterate_n (self->ctx, 3);
  g_assert_true (afut_loop_get_running ()
                 == afut_future_get_loop (&task->future));
  ev ("nester.out");
  AFUT_END (task);
}

static void
test_loop_nested_iteration_in_task (void)
{
  Env env;
  AfutFuture *a, *b;

  env_init (&env, AFUT_LOOP_NONE);
  a = afut_task_new (env.loop, nester, sizeof (Nester),
                     &(Nester){ .ctx = env.ctx }, "nester", NULL);
  b = yielder_new (env.loop, "other", 1);
  ITERATE_UNTIL (env.ctx, afut_future_is_done (a) && afut_future_is_done (b));
  g_assert_cmpstr (events->str, ==,
                   "nester.in other.start other.1 idle nester.out");
  afut_future_unref (a);
  afut_future_unref (b);
  env_clear (&env);
}

typedef struct
{
  AfutTask task;
  GMainContext *ctx;
  int idles;
} RunMain;

static gboolean
count_idle (gpointer data)
{
  (*(int *) data)++;
  return G_SOURCE_REMOVE;
}

/* afut_run()'s main task: records its context; waits (yielding, bounded)
 * for an idle source of that context to run meanwhile. */
static void
run_main (AfutTask *task)
{
  RunMain *self = (RunMain *) task;
  GSource *idle;
  AFUT_BEGIN (task);
  afut_loop_set_exception_handler (afut_loop_get_running (), record_report,
                                   NULL);
  self->ctx = afut_glib_loop_get_context (afut_loop_get_running ());
  idle = g_idle_source_new ();
  g_source_set_priority (idle, G_PRIORITY_DEFAULT);
  g_source_set_callback (idle, count_idle, &self->idles, NULL);
  g_source_attach (idle, self->ctx);
  g_source_unref (idle);
  while (self->idles == 0)
    AFUT_AWAIT (task, afut_sleep (0.0005));
  ev ("main.done");
  AFUT_END (task);
}

static RunMain run_main_result;

static void
run_main_copy (AfutTask *task)
{
  run_main (task);
  if (afut_future_is_done (&task->future))
    run_main_result = *(RunMain *) task;
}

/* afut_run() uses the thread-default main context. */
static void
test_loop_afut_run_thread_default (void)
{
  GMainContext *ctx = g_main_context_new ();
  reset_logs ();
  memset (&run_main_result, 0, sizeof run_main_result);
  g_main_context_push_thread_default (ctx);
  g_assert_cmpint (afut_run (run_main_copy, sizeof (RunMain), NULL, "main"),
                   ==, 0);
  g_main_context_pop_thread_default (ctx);
  g_assert_true (run_main_result.ctx == ctx);
  g_assert_cmpint (run_main_result.idles, ==, 1);
  g_assert_cmpstr (events->str, ==, "main.done");
  assert_no_reports ();
  g_main_context_unref (ctx);
}

/* Without a pushed context afut_run() runs on the global default one. */
static void
test_loop_afut_run_default_context (void)
{
  reset_logs ();
  memset (&run_main_result, 0, sizeof run_main_result);
  g_assert_cmpint (afut_run (run_main_copy, sizeof (RunMain), NULL, "main"),
                   ==, 0);
  g_assert_true (run_main_result.ctx == g_main_context_default ());
  g_assert_cmpint (run_main_result.idles, ==, 1);
  assert_no_reports ();
}

static void
nested_run_main (AfutTask *task)
{
  AFUT_BEGIN (task);
  g_test_expect_message ("afut", G_LOG_LEVEL_CRITICAL,
                         "*afut_run*cannot be called from a running*");
  g_assert_cmpint (afut_run (yielder, sizeof (Yielder), NULL, "inner"), ==, 1);
  g_test_assert_expected_messages ();
  AFUT_END (task);
}

/* The default exception handler writes through afut's log seam: on the
 * adapter that is g_log, a warning in the "afut" domain (GLib's own
 * ERROR level aborts), so a program can capture it with a log writer. */
static void
test_loop_default_exception_handler_logs (void)
{
  AfutLoop *loop = afut_glib_loop_new (NULL, AFUT_LOOP_VIRTUAL_CLOCK);
  AfutFuture *f = afut_future_new (loop);
  AfutExceptionContext context = { "Exception in callback", NULL, "cb" };
  GError *error = g_error_new_literal (G_IO_ERROR, G_IO_ERROR_FAILED, "boom");

  context.error = (const AfutError *) error;
  g_test_expect_message ("afut", G_LOG_LEVEL_WARNING,
                         "Exception in callback: task 'cb': "
                         "g-io-error-quark:0: boom");
  afut_loop_call_exception_handler (loop, &context);
  g_test_assert_expected_messages ();

  g_assert_true (afut_future_fail (f, (AfutError *) error));
  g_test_expect_message ("afut", G_LOG_LEVEL_WARNING,
                         "Future exception was never retrieved: "
                         "g-io-error-quark:0: boom");
  afut_future_unref (f);
  g_test_assert_expected_messages ();
  afut_loop_unref (loop);
}

/* asyncio.run() inside a running loop is an error, reported through
 * g_log in the "afut" domain (not a hang). */
static void
test_loop_afut_run_nested_is_error (void)
{
  Env env;
  AfutFuture *t;
  env_init (&env, AFUT_LOOP_NONE);
  t = afut_task_new (env.loop, nested_run_main, sizeof (AfutTask), NULL,
                     "outer", NULL);
  ITERATE_UNTIL (env.ctx, afut_future_is_done (t));
  assert_state (t, AFUT_FUTURE_DONE);
  afut_future_unref (t);
  env_clear (&env);
}

static gboolean
log_idle_three_times (gpointer data)
{
  int *n = (int *) data;
  ev ("idle");
  return ++*n < 3 ? G_SOURCE_CONTINUE : G_SOURCE_REMOVE;
}

/* With afut at @priority against a G_PRIORITY_DEFAULT idle that fires
 * three times: GLib dispatches the higher priority first. */
static void
run_priority_case (int priority, const char *expected)
{
  GMainContext *ctx = g_main_context_new ();
  AfutLoop *loop;
  AfutFuture *t;
  GSource *idle;
  int n_idle = 0;

  reset_logs ();
  loop = glib_loop_new (ctx, AFUT_LOOP_NONE);
  afut_glib_loop_set_priority (loop, priority);
  g_assert_cmpint (g_source_get_priority (afut_glib_loop_get_source (loop)),
                   ==, priority);
  idle = g_idle_source_new ();
  g_source_set_priority (idle, G_PRIORITY_DEFAULT);
  g_source_set_callback (idle, log_idle_three_times, &n_idle, NULL);
  g_source_attach (idle, ctx);
  t = yielder_new (loop, "afut", 1);
  ITERATE_UNTIL (ctx, afut_future_is_done (t) && n_idle == 3);
  g_assert_cmpstr (events->str, ==, expected);
  afut_future_unref (t);
  g_source_unref (idle);
  glib_loop_free (loop);
  g_main_context_unref (ctx);
}

static void
test_loop_priority_default_idle (void)
{
  run_priority_case (G_PRIORITY_DEFAULT_IDLE,
                     "idle idle idle afut.start afut.1");
}

static void
test_loop_priority_high (void)
{
  run_priority_case (G_PRIORITY_HIGH, "afut.start afut.1 idle idle idle");
}

/* Budget 0: one GLib dispatch runs exactly one afut batch. */
static void
test_loop_budget_zero_one_batch (void)
{
  enum { N = 50 };
  GMainContext *ctx = g_main_context_new ();
  AfutLoop *loop = glib_loop_new (ctx, AFUT_LOOP_NONE);
  AfutFuture *a, *b;
  int k = 0;

  afut_glib_loop_set_budget (loop, 0);
  a = afut_task_new (loop, stepper, sizeof (Stepper),
                     &(Stepper){ .n = N }, "a", NULL);
  b = afut_task_new (loop, stepper, sizeof (Stepper),
                     &(Stepper){ .n = N }, "b", NULL);
  while (!afut_future_is_done (b))
    {
      g_assert_true (g_main_context_iteration (ctx, FALSE));
      k++;
      g_assert_cmpint (stepper_of (a)->steps, ==, k);
      g_assert_cmpint (stepper_of (b)->steps, ==, k);
    }
  g_assert_cmpint (k, ==, N + 1);
  g_assert_true (afut_future_is_done (a));
  afut_future_unref (a);
  afut_future_unref (b);
  glib_loop_free (loop);
  g_main_context_unref (ctx);
}

/* The default budget: a chain of 10000 yields (two tasks, 5000 each)
 * takes few GLib iterations, and asyncio's batch order holds: at each
 * of its steps, a task sees its peer exactly one batch behind or level. */
static void
test_loop_budget_default_few_iterations (void)
{
  enum { N = 5000 };
  GMainContext *ctx = g_main_context_new ();
  AfutLoop *loop = glib_loop_new (ctx, AFUT_LOOP_NONE);
  int *seen_a = g_new0 (int, N + 1), *seen_b = g_new0 (int, N + 1);
  AfutFuture *a, *b;
  guint iterations = 0;
  int k;

  a = afut_task_new (loop, stepper, sizeof (Stepper),
                     &(Stepper){ .n = N, .seen = seen_a }, "a", NULL);
  b = afut_task_new (loop, stepper, sizeof (Stepper),
                     &(Stepper){ .n = N, .seen = seen_b }, "b", NULL);
  stepper_of (a)->peer_steps = &stepper_of (b)->steps;
  stepper_of (b)->peer_steps = &stepper_of (a)->steps;
  while (!afut_future_is_done (a) || !afut_future_is_done (b))
    {
      g_main_context_iteration (ctx, FALSE);
      g_assert_cmpuint (++iterations, <, 2 * N);
    }
  g_test_message ("10000 yields took %u GLib iterations", iterations);
  /* 1 ms per dispatch: a few ms of work, even under valgrind or TSan,
   * not one iteration per yield. */
  g_assert_cmpuint (iterations, <=, 2 * N / 50);
  for (k = 0; k <= N; k++)
    {
      g_assert_cmpint (seen_a[k], ==, k);
      g_assert_cmpint (seen_b[k], ==, k + 1);
    }
  afut_future_unref (a);
  afut_future_unref (b);
  g_free (seen_a);
  g_free (seen_b);
  glib_loop_free (loop);
  g_main_context_unref (ctx);
}

/* Between two batches of one dispatch afut looks at its timers, as
 * asyncio's _run_once does: with a long budget, a task spinning on
 * sleep(0) until a 2 ms timer fires ends within one or two GLib
 * iterations. */
static gboolean timer_fired;

typedef struct
{
  AfutTask task;
  int spins;
  gint64 limit;
} Spinner;

static void
spinner (AfutTask *task)
{
  Spinner *self = (Spinner *) task;
  AFUT_BEGIN (task);
  self->limit = g_get_monotonic_time () + WAIT_LIMIT_US;
  while (!timer_fired)
    {
      if (g_get_monotonic_time () > self->limit)
        AFUT_THROW (task, afut_error_new_literal (AFUT_ERROR,
                                                  AFUT_ERROR_TIMEOUT,
                                                  "the timer never fired"));
      self->spins++;
      AFUT_YIELD (task);
    }
  AFUT_RETURN_INT (task, self->spins);
  AFUT_END (task);
}

static void
timer_setter (AfutTask *task)
{
  AFUT_BEGIN (task);
  AFUT_AWAIT (task, afut_sleep (0.002));
  timer_fired = TRUE;
  AFUT_END (task);
}

static void
test_loop_budget_timers_between_batches (void)
{
  GMainContext *ctx = g_main_context_new ();
  AfutLoop *loop = glib_loop_new (ctx, AFUT_LOOP_NONE);
  AfutFuture *s, *t;
  guint iterations = 0;

  timer_fired = FALSE;
  afut_glib_loop_set_budget (loop, G_GINT64_CONSTANT (60000000000));
  s = afut_task_new (loop, spinner, sizeof (Spinner), NULL, "spinner", NULL);
  t = afut_task_new (loop, timer_setter, sizeof (AfutTask), NULL, "timer",
                     NULL);
  while (!afut_future_is_done (s))
    {
      g_main_context_iteration (ctx, TRUE);
      iterations++;
    }
  assert_state (s, AFUT_FUTURE_DONE);
  g_assert_cmpint (afut_future_get_int (s), >, 0);
  g_assert_cmpuint (iterations, <=, 2);
  afut_future_unref (s);
  afut_future_unref (t);
  glib_loop_free (loop);
  g_main_context_unref (ctx);
}

/* One scenario (yields, call_soon, sleep(0) futures, timers with equal
 * deadlines, done callbacks, a gather) runs in the same order on the
 * embedded poll() loop and on GLib, whatever the budget. */
static void
scenario_callback (void *data)
{
  ev ("%s", (const char *) data);
}

static void
scenario_done_cb (AfutFuture *future, void *data)
{
  (void) future;
  ev ("%s", (const char *) data);
}

typedef struct
{
  AfutTask task;
  AfutFuture *plain;
} ScenarioA;

static void
scenario_a (AfutTask *task)
{
  ScenarioA *self = (ScenarioA *) task;
  AFUT_BEGIN (task);
  ev ("a1");
  afut_loop_call_soon (afut_loop_get_running (), scenario_callback, "soon1");
  AFUT_YIELD (task);
  ev ("a2");
  afut_future_resolve_int (self->plain, 7);
  afut_loop_call_soon (afut_loop_get_running (), scenario_callback, "soon2");
  AFUT_AWAIT (task, afut_sleep (1));
  ev ("a3");
  AFUT_AWAIT (task, afut_sleep (0));
  ev ("a4");
  AFUT_END (task);
}

typedef struct
{
  AfutTask task;
  AfutFuture *plain;
} ScenarioB;

static void
scenario_b (AfutTask *task)
{
  ScenarioB *self = (ScenarioB *) task;
  AFUT_BEGIN (task);
  ev ("b1");
  AFUT_AWAIT (task, afut_sleep (0));
  ev ("b2");
  AFUT_AWAIT (task, afut_future_ref (self->plain));
  ev ("b3:%d", (int) afut_future_get_int (afut_task_awaited (task)));
  AFUT_AWAIT (task, afut_sleep (1));
  ev ("b4");
  AFUT_END (task);
}

static char *
scenario_run (AfutLoop *loop, GMainContext *ctx, int64_t budget_ns)
{
  AfutFuture *plain, *g, *a, *b, *c;
  char *result;
  int i;

  g_string_truncate (events, 0);
  if (ctx != NULL && budget_ns >= 0)
    afut_glib_loop_set_budget (loop, budget_ns);
  plain = afut_future_new (loop);
  afut_future_add_done_callback (plain, scenario_done_cb, "plain.cb1");
  afut_future_add_done_callback (plain, scenario_done_cb, "plain.cb2");
  /* Made one by one: C evaluates a call's arguments in no set order. */
  a = afut_task_new (loop, scenario_a, sizeof (ScenarioA),
                     &(ScenarioA){ .plain = plain }, "a", NULL);
  b = afut_task_new (loop, scenario_b, sizeof (ScenarioB),
                     &(ScenarioB){ .plain = plain }, "b", NULL);
  c = sleeper_new (loop, 1, "c");
  g = afut_gather (a, b, c, NULL);
  afut_future_add_done_callback (g, scenario_done_cb, "gather.done");
  if (ctx == NULL || budget_ns == -2)
    g_assert_true (afut_loop_run_until_complete (loop, g));
  else
    ITERATE_UNTIL (ctx, afut_future_is_done (g));
  /* Flush what is left (the done callbacks), the same on both. */
  for (i = 0; i < 5; i++)
    {
      if (ctx != NULL)
        g_main_context_iteration (ctx, FALSE);
      else
        afut_loop_iterate (loop, false);
    }
  assert_state (g, AFUT_FUTURE_DONE);
  afut_future_unref (g);
  afut_future_unref (plain);
  result = g_strdup (events->str);
  return result;
}

static void
test_loop_budget_batch_order_as_poll_backend (void)
{
  AfutLoop *poll_loop = afut_loop_new (AFUT_LOOP_VIRTUAL_CLOCK);
  char *reference, *got;
  int64_t budgets[] = { -1, 0, 1, G_GINT64_CONSTANT (60000000000), -2 };
  guint i;

  afut_loop_set_exception_handler (poll_loop, record_report, NULL);
  reference = scenario_run (poll_loop, NULL, 0);
  afut_loop_unref (poll_loop);
  g_test_message ("reference order: %s", reference);
  g_assert_true (g_str_has_prefix (reference, "a1 b1 soon1 a2 b2"));
  for (i = 0; i < G_N_ELEMENTS (budgets); i++)
    {
      GMainContext *ctx = g_main_context_new ();
      AfutLoop *loop = glib_loop_new (ctx, AFUT_LOOP_VIRTUAL_CLOCK);
      got = scenario_run (loop, ctx, budgets[i]);
      g_assert_cmpstr (got, ==, reference);
      g_free (got);
      glib_loop_free (loop);
      g_main_context_unref (ctx);
    }
  assert_no_reports ();
  g_free (reference);
}

/* Unrelated GLib sources keep firing while an afut task is always ready,
 * in priority order: a g_timeout and an idle at afut's priority share
 * the iterations with it; a HIGH idle goes first; a LOW idle waits until
 * afut has nothing to do. */
static guint coexist_timeouts;
static guint coexist_idles;
static gboolean coexist_busy_done;

static gboolean
coexist_timeout_cb (gpointer data)
{
  (void) data;
  coexist_timeouts++;
  return G_SOURCE_CONTINUE;
}

static gboolean
coexist_idle_cb (gpointer data)
{
  (void) data;
  if (coexist_busy_done)
    return G_SOURCE_REMOVE;
  coexist_idles++;
  return G_SOURCE_CONTINUE;
}

typedef struct
{
  AfutTask task;
  GMainContext *ctx;
  guint steps;
  gint64 limit;
} Busy;

static void
busy (AfutTask *task)
{
  Busy *self = (Busy *) task;
  AFUT_BEGIN (task);
  self->limit = g_get_monotonic_time () + WAIT_LIMIT_US;
  while (coexist_timeouts < 3 || self->steps < 20)
    {
      if (g_get_monotonic_time () > self->limit)
        AFUT_THROW (task, afut_error_new_literal (AFUT_ERROR,
                                                  AFUT_ERROR_TIMEOUT,
                                                  "GLib sources starved"));
      self->steps++;
      if (self->steps == 10)
        {
          ev ("afut@10");
          add_idle (self->ctx, G_PRIORITY_HIGH, "high");
          add_idle (self->ctx, G_PRIORITY_LOW, "low");
        }
      else if (self->steps == 11)
        ev ("afut@11");
      AFUT_YIELD (task);
    }
  ev ("afut.done");
  coexist_busy_done = TRUE;
  AFUT_END (task);
}

static void
run_coexist_case (int64_t budget_ns)
{
  GMainContext *ctx = g_main_context_new ();
  AfutLoop *loop;
  AfutFuture *t;
  GSource *timeout, *idle;

  reset_logs ();
  coexist_timeouts = coexist_idles = 0;
  coexist_busy_done = FALSE;
  loop = glib_loop_new (ctx, AFUT_LOOP_NONE);
  if (budget_ns >= 0)
    afut_glib_loop_set_budget (loop, budget_ns);
  timeout = g_timeout_source_new (1);
  g_source_set_callback (timeout, coexist_timeout_cb, NULL, NULL);
  g_source_attach (timeout, ctx);
  idle = g_idle_source_new ();
  g_source_set_priority (idle, G_PRIORITY_DEFAULT);
  g_source_set_callback (idle, coexist_idle_cb, NULL, NULL);
  g_source_attach (idle, ctx);
  t = afut_task_new (loop, busy, sizeof (Busy), &(Busy){ .ctx = ctx }, "busy",
                     NULL);
  ITERATE_UNTIL (ctx, afut_future_is_done (t) && strstr (events->str, "low"));
  assert_state (t, AFUT_FUTURE_DONE);
  g_assert_cmpuint (coexist_timeouts, >=, 3);
  g_test_message ("busy steps %u, idle dispatches %u", ((Busy *) t)->steps,
                  coexist_idles);
  if (budget_ns == 0)
    {
      /* One batch per iteration: exact order, and the DEFAULT idle ran
       * in (almost) every iteration afut did. */
      g_assert_cmpstr (events->str, ==, "afut@10 high afut@11 afut.done low");
      g_assert_cmpuint (coexist_idles + 4, >=, ((Busy *) t)->steps);
    }
  else
    {
      g_assert_nonnull (strstr (events->str, "high"));
      g_assert_true (strstr (events->str, "high")
                     < strstr (events->str, "afut.done"));
      g_assert_true (g_str_has_suffix (events->str, "afut.done low"));
      g_assert_cmpuint (coexist_idles, >=, 2);
    }
  afut_future_unref (t);
  source_drop (timeout);
  source_drop (idle);
  glib_loop_free (loop);
  g_main_context_unref (ctx);
}

static void
test_loop_coexist_budget_zero (void)
{
  run_coexist_case (0);
}

static void
test_loop_coexist_default_budget (void)
{
  run_coexist_case (-1);
}

/* N pending sleeps (tasks sleeping, bare sleep futures) and fd waits add
 * no GSource: a probe attached before them and one after get consecutive
 * ids, and the id range holds nothing else. */
static void
test_loop_one_source_for_many_sleeps (void)
{
  enum { N_TASKS = 5000, N_BARE = 5000, N_FD = 500 };
  GMainContext *ctx = g_main_context_new ();
  AfutLoop *loop = glib_loop_new (ctx, AFUT_LOOP_NONE);
  guint loop_id = g_source_get_id (afut_glib_loop_get_source (loop));
  AfutFuture **tasks = g_new (AfutFuture *, N_TASKS);
  AfutFuture **bare = g_new (AfutFuture *, N_BARE);
  AfutFuture **fdw = g_new (AfutFuture *, N_FD);
  GSource *before, *after;
  guint id_before, id_after, id, found = 0;
  int sv[2];
  int i;

  socketpair_nonblocking (sv);
  /* Probes that never fire: a timeout of a day each. */
  before = tick_attach (ctx, 86400 * 1000, NULL);
  id_before = g_source_get_id (before);
  g_assert_cmpuint (id_before, ==, loop_id + 1);
  for (i = 0; i < N_TASKS; i++)
    tasks[i] = sleeper_new (loop, 3600 + i, NULL);
  for (i = 0; i < N_BARE; i++)
    bare[i] = afut_loop_sleep (loop, 7200 + i);
  for (i = 0; i < N_FD; i++)
    fdw[i] = afut_loop_fd_wait (loop, sv[i % 2], AFUT_IO_IN);
  /* Every task runs its first step and sleeps. */
  iterate_n (ctx, 5);
  g_assert_cmpuint (afut_loop_get_n_tasks (loop), ==, N_TASKS);
  g_assert_cmpint (((Sleeper *) tasks[N_TASKS - 1])->seconds, ==,
                   3600 + N_TASKS - 1);
  after = tick_attach (ctx, 86400 * 1000, NULL);
  id_after = g_source_get_id (after);
  g_assert_cmpuint (id_after, ==, id_before + 1);
  for (id = 1; id <= id_after + 100; id++)
    if (g_main_context_find_source_by_id (ctx, id) != NULL)
      {
        found++;
        g_assert_true (id == loop_id || id == id_before || id == id_after);
      }
  g_assert_cmpuint (found, ==, 3);
  /* The earliest deadline is the source's timeout: an hour. */
  {
    gint timeout;
    source_drop (before);
    source_drop (after);
    context_polls_fd (ctx, sv[0], NULL, &timeout);
    g_assert_cmpint (timeout, >, 3500 * 1000);
    g_assert_cmpint (timeout, <=, 3600 * 1000);
  }
  for (i = 0; i < N_BARE; i++)
    {
      afut_future_cancel (bare[i], NULL);
      afut_future_unref (bare[i]);
    }
  for (i = 0; i < N_FD; i++)
    {
      afut_future_cancel (fdw[i], NULL);
      afut_future_unref (fdw[i]);
    }
  for (i = 0; i < N_TASKS; i++)
    afut_future_unref (tasks[i]);
  glib_loop_free (loop);
  g_main_context_unref (ctx);
  close (sv[0]);
  close (sv[1]);
  g_free (tasks);
  g_free (bare);
  g_free (fdw);
}

/* The source's timeout follows the earliest timer, re-armed when it
 * goes. */
static void
test_loop_one_source_timeout_follows_earliest (void)
{
  GMainContext *ctx = g_main_context_new ();
  AfutLoop *loop = glib_loop_new (ctx, AFUT_LOOP_NONE);
  AfutFuture *hour = afut_loop_sleep (loop, 3600);
  AfutFuture *half = afut_loop_sleep (loop, 0.5);
  AfutFuture *seven = afut_loop_sleep (loop, 7);
  gint timeout;

  context_polls_fd (ctx, -1, NULL, &timeout);
  g_assert_cmpint (timeout, >, 400);
  g_assert_cmpint (timeout, <=, 500);
  afut_future_cancel (half, NULL);
  iterate_n (ctx, 2);
  context_polls_fd (ctx, -1, NULL, &timeout);
  g_assert_cmpint (timeout, >, 6900);
  g_assert_cmpint (timeout, <=, 7000);
  afut_future_cancel (seven, NULL);
  afut_future_cancel (hour, NULL);
  iterate_n (ctx, 2);
  context_polls_fd (ctx, -1, NULL, &timeout);
  g_assert_cmpint (timeout, ==, -1);
  afut_future_unref (hour);
  afut_future_unref (half);
  afut_future_unref (seven);
  glib_loop_free (loop);
  g_main_context_unref (ctx);
}

/* The virtual clock on GLib: sleeps of hours finish at once, with exact
 * loop times, under g_main_context_iteration and g_main_loop_run. */
typedef struct
{
  AfutTask task;
  double t[3];
} Hours;

static void
hours (AfutTask *task)
{
  Hours *self = (Hours *) task;
  AFUT_BEGIN (task);
  AFUT_AWAIT (task, afut_sleep (5 * 3600));
  self->t[0] = afut_loop_time (afut_loop_get_running ());
  AFUT_AWAIT (task, afut_sleep (0.25));
  self->t[1] = afut_loop_time (afut_loop_get_running ());
  AFUT_AWAIT (task, afut_sleep (24 * 3600));
  self->t[2] = afut_loop_time (afut_loop_get_running ());
  AFUT_END (task);
}

static void
test_loop_virtual_clock (void)
{
  Env env;
  GMainLoop *ml;
  AfutFuture *t, *u;
  gint64 start = g_get_monotonic_time ();

  env_init (&env, AFUT_LOOP_VIRTUAL_CLOCK);
  g_assert_cmpfloat (afut_loop_time (env.loop), ==, 0.0);
  t = afut_task_new (env.loop, hours, sizeof (Hours), NULL, "hours", NULL);
  ITERATE_UNTIL (env.ctx, afut_future_is_done (t));
  g_assert_cmpfloat (((Hours *) t)->t[0], ==, 18000.0);
  g_assert_cmpfloat (((Hours *) t)->t[1], ==, 18000.25);
  g_assert_cmpfloat (((Hours *) t)->t[2], ==, 18000.25 + 86400);
  g_assert_cmpint (afut_loop_time_ns (env.loop), ==,
                   G_GINT64_CONSTANT (104400250000000));

  ml = g_main_loop_new (env.ctx, FALSE);
  u = afut_task_new (env.loop, hours, sizeof (Hours), NULL, "hours2", NULL);
  afut_future_add_done_callback (u, quit_on_done, ml);
  main_loop_run_guarded (ml);
  g_assert_cmpfloat (((Hours *) u)->t[0], ==, 104400.25 + 18000);
  g_assert_cmpfloat (((Hours *) u)->t[2], ==, 2 * 104400.25);
  g_assert_cmpint (g_get_monotonic_time () - start, <, 10 * G_USEC_PER_SEC);
  g_main_loop_unref (ml);
  afut_future_unref (t);
  afut_future_unref (u);
  env_clear (&env);
}

/* Bad input: a loop of another backend is reported, with a safe return
 * value (criticals made non-fatal in the child to see them all). */
static void
test_loop_foreign_loop_is_reported (void)
{
  if (g_test_subprocess ())
    {
      AfutLoop *loop = afut_loop_new (AFUT_LOOP_NONE);
      AfutFuture *f = afut_future_new (loop);
      g_log_set_always_fatal (G_LOG_FATAL_MASK);
      g_assert_null (afut_glib_loop_get_context (loop));
      g_assert_null (afut_glib_loop_get_source (loop));
      g_assert_null (afut_glib_future_get_cancellable (f));
      g_assert_null (afut_to_thread (loop, job_func, NULL, NULL, NULL));
      afut_future_unref (f);
      afut_loop_unref (loop);
      return;
    }
  g_test_trap_subprocess (NULL, 0, G_TEST_SUBPROCESS_DEFAULT);
  g_test_trap_assert_passed ();
  g_test_trap_assert_stderr ("*CRITICAL*afut_glib_loop_get_context*not made "
                             "by afut_glib_loop_new*"
                             "*CRITICAL*afut_glib_loop_get_source*"
                             "*CRITICAL*afut_glib_future_get_cancellable*"
                             "*CRITICAL*afut_to_thread*");
}

/* ==================================================================== */
/* ---- errors are GErrors ---- */

typedef struct
{
  AfutTask task;
  GError *error;
} Thrower;

static void
thrower (AfutTask *task)
{
  Thrower *self = (Thrower *) task;
  AFUT_BEGIN (task);
  AFUT_YIELD (task);
  AFUT_THROW (task, afut_glib_error_from_gerror (self->error));
  AFUT_END (task);
}

static void
test_error_is_gerror (void)
{
  Env env;
  AfutError *e;
  GError *g;
  AfutFuture *t, *c;

  env_init (&env, AFUT_LOOP_NONE);
  g_assert_cmpuint (AFUT_ERROR, ==, g_quark_from_string ("afut-error-quark"));
  g_assert_cmpuint (AFUT_ERRNO_ERROR, ==,
                    g_quark_from_string ("afut-errno-quark"));
  g_assert_cmpuint (afut_quark_from_string ("afut-test-domain"), ==,
                    g_quark_from_string ("afut-test-domain"));
  g_assert_cmpstr (afut_quark_to_string (G_IO_ERROR), ==,
                   g_quark_to_string (G_IO_ERROR));

  /* afut's errors are GErrors: GLib reads and frees them, and back. */
  e = afut_error_new (AFUT_ERROR, AFUT_ERROR_TIMEOUT, "late by %d s", 3);
  g_assert_error ((GError *) e, AFUT_ERROR, AFUT_ERROR_TIMEOUT);
  g_assert_cmpstr (((GError *) e)->message, ==, "late by 3 s");
  g = g_error_copy ((GError *) e);
  g_error_free ((GError *) e);
  g_assert_true (afut_error_matches ((AfutError *) g, AFUT_ERROR,
                                     AFUT_ERROR_TIMEOUT));
  afut_error_free ((AfutError *) g);

  /* A task failing with a GError: the future's error is that GError. */
  g = g_error_new (G_IO_ERROR, G_IO_ERROR_NOT_FOUND, "no %s", "such thing");
  t = afut_task_new (env.loop, thrower, sizeof (Thrower),
                     &(Thrower){ .error = g }, "thrower", NULL);
  c = yielder_new (env.loop, "cancelled", 3);
  afut_future_cancel (c, "why not");
  ITERATE_UNTIL (env.ctx, afut_future_is_done (t) && afut_future_is_done (c));
  assert_state (t, AFUT_FUTURE_FAILED);
  g_assert_true ((gpointer) afut_future_get_error (t) == (gpointer) g);
  assert_gerror (afut_future_get_error (t), G_IO_ERROR, G_IO_ERROR_NOT_FOUND,
                 "no such thing");
  g_assert_true (g_error_matches ((const GError *) afut_future_get_error (c),
                                  AFUT_ERROR, AFUT_ERROR_CANCELLED));
  assert_cancelled (c, "why not");
  afut_future_unref (t);
  afut_future_unref (c);
  env_clear (&env);
}

/* G_IO_ERROR_CANCELLED becomes afut's cancellation (same message): the
 * task ends CANCELLED; any other GError is kept as it is. */
static void
test_error_from_gerror (void)
{
  Env env;
  GError *other, *cancelled;
  AfutError *e;
  AfutFuture *t;

  env_init (&env, AFUT_LOOP_NONE);
  other = g_error_new_literal (G_IO_ERROR, G_IO_ERROR_PERMISSION_DENIED,
                               "denied");
  e = afut_glib_error_from_gerror (other);
  g_assert_true ((gpointer) e == (gpointer) other);
  assert_gerror (e, G_IO_ERROR, G_IO_ERROR_PERMISSION_DENIED, "denied");
  afut_error_free (e);

  cancelled = g_error_new_literal (G_IO_ERROR, G_IO_ERROR_CANCELLED,
                                   "Operation was cancelled by the user");
  e = afut_glib_error_from_gerror (cancelled);
  assert_gerror (e, AFUT_ERROR, AFUT_ERROR_CANCELLED,
                 "Operation was cancelled by the user");
  g_assert_true (afut_error_is_cancelled (e));
  afut_error_free (e);

  t = afut_task_new (env.loop, thrower, sizeof (Thrower),
                     &(Thrower){ .error = g_error_new_literal (
                                   G_IO_ERROR, G_IO_ERROR_CANCELLED,
                                   "stopped by GIO") },
                     "gio-cancelled", NULL);
  ITERATE_UNTIL (env.ctx, afut_future_is_done (t));
  g_assert_true (afut_future_is_cancelled (t));
  assert_cancelled (t, "stopped by GIO");
  afut_future_unref (t);
  env_clear (&env);
}

/* afut_glib_future_propagate: value -> TRUE; error -> a copy of the same
 * GError; cancelled -> G_IO_ERROR_CANCELLED with the cancel message. */
static void
test_error_future_propagate (void)
{
  Env env;
  AfutFuture *ok, *failed, *cancelled, *plain_cancel;
  GError *error = NULL;

  env_init (&env, AFUT_LOOP_NONE);
  ok = afut_future_new (env.loop);
  failed = afut_future_new (env.loop);
  cancelled = afut_future_new (env.loop);
  plain_cancel = afut_future_new (env.loop);
  afut_future_resolve_int (ok, 5);
  afut_future_fail (failed, (AfutError *) g_error_new_literal (
                              G_IO_ERROR, G_IO_ERROR_NOT_FOUND, "missing"));
  afut_future_cancel (cancelled, "stop it");
  afut_future_cancel (plain_cancel, NULL);

  g_assert_true (afut_glib_future_propagate (ok, &error));
  g_assert_no_error (error);
  g_assert_true (afut_glib_future_propagate (ok, NULL));

  g_assert_false (afut_glib_future_propagate (failed, &error));
  g_assert_error (error, G_IO_ERROR, G_IO_ERROR_NOT_FOUND);
  g_assert_cmpstr (error->message, ==, "missing");
  g_assert_true ((gpointer) error != (gpointer) afut_future_get_error (failed));
  g_clear_error (&error);
  g_assert_false (afut_glib_future_propagate (failed, NULL));

  g_assert_false (afut_glib_future_propagate (cancelled, &error));
  g_assert_error (error, G_IO_ERROR, G_IO_ERROR_CANCELLED);
  g_assert_cmpstr (error->message, ==, "stop it");
  g_clear_error (&error);
  g_assert_false (afut_glib_future_propagate (cancelled, NULL));

  g_assert_false (afut_glib_future_propagate (plain_cancel, &error));
  g_assert_error (error, G_IO_ERROR, G_IO_ERROR_CANCELLED);
  g_assert_cmpstr (error->message, ==, "Operation was cancelled");
  g_clear_error (&error);

  afut_future_unref (ok);
  afut_future_unref (failed);
  afut_future_unref (cancelled);
  afut_future_unref (plain_cancel);
  env_clear (&env);
}

/* ==================================================================== */
/* ---- GCancellable ---- */

static void
test_cancellable_same_object (void)
{
  Env env;
  AfutFuture *f, *g;
  GCancellable *c;

  env_init (&env, AFUT_LOOP_NONE);
  f = afut_future_new (env.loop);
  c = afut_glib_future_get_cancellable (f);
  g_assert_true (G_IS_CANCELLABLE (c));
  g_assert_true (afut_glib_future_get_cancellable (f) == c);
  g_assert_true (afut_glib_future_get_cancellable (f) == c);
  g_assert_false (g_cancellable_is_cancelled (c));
  g = afut_future_new (env.loop);
  g_assert_true (afut_glib_future_get_cancellable (g) != c);
  g_object_ref (c);
  afut_future_resolve (f);
  afut_future_resolve (g);
  iterate_n (env.ctx, 2);
  /* Resolved, not cancelled: the cancellable stays uncancelled. */
  g_assert_false (g_cancellable_is_cancelled (c));
  g_object_unref (c);
  afut_future_unref (f);
  afut_future_unref (g);
  env_clear (&env);
}

/* Asked after the future is done: a cancellable that tells how it
 * ended. */
static void
test_cancellable_of_done_future (void)
{
  Env env;
  AfutFuture *cancelled, *resolved;

  env_init (&env, AFUT_LOOP_NONE);
  cancelled = afut_future_new (env.loop);
  resolved = afut_future_new (env.loop);
  afut_future_cancel (cancelled, NULL);
  afut_future_resolve (resolved);
  g_assert_true (g_cancellable_is_cancelled (
    afut_glib_future_get_cancellable (cancelled)));
  g_assert_false (g_cancellable_is_cancelled (
    afut_glib_future_get_cancellable (resolved)));
  iterate_n (env.ctx, 2);
  afut_future_unref (cancelled);
  afut_future_unref (resolved);
  env_clear (&env);
}

/* Cancelling the future cancels its cancellable within the next
 * iteration; cancelling a task cancels the cancellable of the future it
 * awaits. */
static void
test_cancellable_future_cancels_it (void)
{
  Env env;
  AfutFuture *f, *g, *t;
  GCancellable *c, *d;

  env_init (&env, AFUT_LOOP_NONE);
  f = afut_future_new (env.loop);
  c = g_object_ref (afut_glib_future_get_cancellable (f));
  afut_future_cancel (f, "stop");
  g_main_context_iteration (env.ctx, FALSE);
  g_assert_true (g_cancellable_is_cancelled (c));

  g = afut_future_new (env.loop);
  d = g_object_ref (afut_glib_future_get_cancellable (g));
  t = awaiter_new (env.loop, g, "t");
  ITERATE_UNTIL (env.ctx, strstr (events->str, "t.waiting") != NULL);
  afut_future_cancel (t, "task cancelled");
  ITERATE_UNTIL (env.ctx, afut_future_is_done (t));
  g_assert_true (g_cancellable_is_cancelled (d));
  assert_cancelled (g, "task cancelled");
  assert_cancelled (t, "task cancelled");
  g_assert_cmpstr (events->str, ==,
                   "t.waiting t.caught:cancelled:task cancelled");

  g_object_unref (c);
  g_object_unref (d);
  afut_future_unref (f);
  afut_future_unref (g);
  afut_future_unref (t);
  env_clear (&env);
}

/* Cancelling the cancellable on the loop thread (outside afut, and from
 * inside a task's step) cancels the future by the next iteration. */
typedef struct
{
  AfutTask task;
  GCancellable *cancellable;
} CancelIt;

static void
cancel_it (AfutTask *task)
{
  CancelIt *self = (CancelIt *) task;
  AFUT_BEGIN (task);
  ev ("cancelling");
  g_cancellable_cancel (self->cancellable);
  AFUT_END (task);
}

static void
test_cancellable_cancel_on_loop_thread (void)
{
  Env env;
  AfutFuture *f, *g, *t, *u;
  GCancellable *c;

  env_init (&env, AFUT_LOOP_NONE);
  f = afut_future_new (env.loop);
  c = g_object_ref (afut_glib_future_get_cancellable (f));
  g_cancellable_cancel (c);
  g_main_context_iteration (env.ctx, FALSE);
  g_assert_true (afut_future_is_cancelled (f));
  g_object_unref (c);

  g = afut_future_new (env.loop);
  t = awaiter_new (env.loop, g, "t");
  u = afut_task_new (env.loop, cancel_it, sizeof (CancelIt),
                     &(CancelIt){ .cancellable =
                                    afut_glib_future_get_cancellable (g) },
                     "canceller", NULL);
  ITERATE_UNTIL (env.ctx, afut_future_is_done (t));
  assert_state (u, AFUT_FUTURE_DONE);
  g_assert_true (afut_future_is_cancelled (g));
  g_assert_true (afut_future_is_cancelled (t));
  g_assert_cmpstr (events->str, ==, "t.waiting cancelling t.caught:cancelled:");
  afut_future_unref (f);
  afut_future_unref (g);
  afut_future_unref (t);
  afut_future_unref (u);
  env_clear (&env);
}

/* Another thread cancels the cancellable while the loop blocks in poll;
 * half of the rounds also cancel the future on the loop thread at the
 * same time.  No race (TSan), no lost or doubled cancel, no leak. */
typedef struct
{
  GCancellable *cancellable;
  gint go;
} CancelJob;

static gpointer
cancel_thread (gpointer data)
{
  CancelJob *job = (CancelJob *) data;
  gint64 limit = g_get_monotonic_time () + WAIT_LIMIT_US;
  while (!g_atomic_int_get (&job->go) && g_get_monotonic_time () < limit)
    g_usleep (50);
  g_cancellable_cancel (job->cancellable);
  return NULL;
}

static void
test_cancellable_cancel_from_thread (void)
{
  enum { ROUNDS = 100 };
  Env env;
  int round;

  env_init (&env, AFUT_LOOP_NONE);
  for (round = 0; round < ROUNDS; round++)
    {
      AfutFuture *f = afut_future_new (env.loop);
      AfutFuture *t = awaiter_new (env.loop, f, "t");
      CancelJob job;
      GThread *thread;

      g_string_truncate (events, 0);
      job.cancellable = g_object_ref (afut_glib_future_get_cancellable (f));
      job.go = 0;
      ITERATE_UNTIL (env.ctx, events->len > 0);
      thread = g_thread_new ("canceller", cancel_thread, &job);
      g_atomic_int_set (&job.go, 1);
      if (round % 2 == 1)
        afut_future_cancel (f, "loop side");
      ITERATE_UNTIL (env.ctx, afut_future_is_done (t));
      g_thread_join (thread);
      g_assert_true (afut_future_is_cancelled (f));
      g_assert_true (afut_future_is_cancelled (t));
      g_assert_true (g_cancellable_is_cancelled (job.cancellable));
      /* Whatever the other side still had in flight lands now. */
      iterate_n (env.ctx, 3);
      g_object_unref (job.cancellable);
      afut_future_unref (f);
      afut_future_unref (t);
    }
  env_clear (&env);
}

/* A cancellable already cancelled when linked cancels the future at
 * once (the docs' word), and a task awaiting it ends cancelled. */
static void
test_cancellable_link_already_cancelled (void)
{
  Env env;
  GCancellable *c;
  AfutFuture *f, *g, *t;
  gboolean at_once;

  if (!body_in_subprocess ())
    return;
  c = g_cancellable_new ();
  env_init (&env, AFUT_LOOP_NONE);
  g_cancellable_cancel (c);
  f = afut_future_new (env.loop);
  afut_glib_future_link_cancellable (f, c);
  at_once = afut_future_is_cancelled (f);
  g_main_context_iteration (env.ctx, FALSE);
  g_assert_true (afut_future_is_cancelled (f));

  g = afut_future_new (env.loop);
  t = awaiter_new (env.loop, g, "t");
  ITERATE_UNTIL (env.ctx, events->len > 0);
  afut_glib_future_link_cancellable (g, c);
  ITERATE_UNTIL (env.ctx, afut_future_is_done (t));
  g_assert_true (afut_future_is_cancelled (t));
  /* afut-glib.h: "one already cancelled cancels @future at once". */
  g_assert_true (at_once);

  afut_future_unref (f);
  afut_future_unref (g);
  afut_future_unref (t);
  g_object_unref (c);
  env_clear (&env);
}

/* The link is one way: cancelling the future leaves the caller's
 * cancellable alone; cancelling the cancellable after the future is done
 * changes nothing; one cancellable shared by several futures cancels
 * them all. */
static void
count_cancelled (GCancellable *cancellable, gpointer data)
{
  (void) cancellable;
  (*(int *) data)++;
}

static void
test_cancellable_link_one_way (void)
{
  Env env;
  GCancellable *c = g_cancellable_new (), *shared = g_cancellable_new ();
  AfutFuture *f, *done, *a, *b;
  int plain_handler = 0;

  env_init (&env, AFUT_LOOP_NONE);
  f = afut_future_new (env.loop);
  afut_glib_future_link_cancellable (f, c);
  afut_future_cancel (f, NULL);
  iterate_n (env.ctx, 3);
  g_assert_false (g_cancellable_is_cancelled (c));

  done = afut_future_new (env.loop);
  afut_glib_future_link_cancellable (done, c);
  afut_future_resolve_int (done, 3);
  iterate_n (env.ctx, 3);
  g_cancellable_cancel (c);
  iterate_n (env.ctx, 3);
  assert_state (done, AFUT_FUTURE_DONE);
  g_assert_cmpint (afut_future_get_int (done), ==, 3);

  a = afut_future_new (env.loop);
  b = afut_future_new (env.loop);
  g_cancellable_connect (shared, G_CALLBACK (count_cancelled),
                         &plain_handler, NULL);
  afut_glib_future_link_cancellable (a, shared);
  afut_glib_future_link_cancellable (b, shared);
  g_cancellable_cancel (shared);
  g_main_context_iteration (env.ctx, FALSE);
  g_assert_true (afut_future_is_cancelled (a));
  g_assert_true (afut_future_is_cancelled (b));
  g_assert_cmpint (plain_handler, ==, 1);

  afut_future_unref (f);
  afut_future_unref (done);
  afut_future_unref (a);
  afut_future_unref (b);
  g_object_unref (c);
  g_object_unref (shared);
  env_clear (&env);
}

/* A task awaiting a future whose cancellable gets cancelled (from
 * another thread here) ends cancelled. */
static void
test_cancellable_task_awaiting_ends_cancelled (void)
{
  Env env;
  AfutFuture *f, *t;
  CancelJob job;
  GThread *thread;

  env_init (&env, AFUT_LOOP_NONE);
  f = afut_future_new (env.loop);
  t = awaiter_new (env.loop, f, "t");
  job.cancellable = g_object_ref (afut_glib_future_get_cancellable (f));
  job.go = 1;
  ITERATE_UNTIL (env.ctx, events->len > 0);
  thread = g_thread_new ("canceller", cancel_thread, &job);
  ITERATE_UNTIL (env.ctx, afut_future_is_done (t));
  g_thread_join (thread);
  assert_state (t, AFUT_FUTURE_CANCELLED);
  g_assert_cmpstr (events->str, ==, "t.waiting t.caught:cancelled:");
  g_object_unref (job.cancellable);
  afut_future_unref (f);
  afut_future_unref (t);
  env_clear (&env);
}

/* The loop closes with links in place: they are let go; cancelling
 * their cancellables later reaches nothing (no critical about a closed
 * loop), and the future outliving the loop frees cleanly. */
static void
test_cancellable_loop_closes_with_links (void)
{
  GMainContext *ctx = g_main_context_new ();
  AfutLoop *loop = glib_loop_new (ctx, AFUT_LOOP_NONE);
  AfutFuture *f = afut_future_new (loop);
  GCancellable *own = g_object_ref (afut_glib_future_get_cancellable (f));
  GCancellable *user = g_cancellable_new ();

  afut_glib_future_link_cancellable (f, user);
  afut_loop_unref (loop);
  g_cancellable_cancel (user);
  g_cancellable_cancel (own);
  assert_state (f, AFUT_FUTURE_PENDING);
  afut_future_unref (f);
  assert_no_reports ();
  g_object_unref (own);
  g_object_unref (user);
  g_main_context_unref (ctx);
}

/* A thread is in the middle of cancelling a linked cancellable (another
 * "cancelled" handler, connected first, still runs) when the loop
 * closes: the loop thread's disconnect waits for the emission, the
 * link's handler posts its cancel, and the closing loop still runs it
 * in its last drain: "cancelling it, from any thread, cancels @future",
 * race-free, silently, leaking nothing. */
static gint close_race_in_handler;
static gint close_race_closing;

static void
slow_cancelled_handler (GCancellable *cancellable, gpointer data)
{
  gint64 limit = g_get_monotonic_time () + WAIT_LIMIT_US;
  (void) cancellable;
  (void) data;
  g_atomic_int_set (&close_race_in_handler, 1);
  while (!g_atomic_int_get (&close_race_closing)
         && g_get_monotonic_time () < limit)
    g_usleep (100);
  /* The loop thread reaches the link's disconnect meanwhile. */
  g_usleep (10000);
}

static gpointer
cancel_cancellable_thread (gpointer data)
{
  g_cancellable_cancel (G_CANCELLABLE (data));
  return NULL;
}

static void
test_cancellable_cancel_from_thread_while_loop_closes (void)
{
  GMainContext *ctx;
  AfutLoop *loop;
  AfutFuture *f;
  GCancellable *user;
  GThread *thread;
  gint64 limit;

  if (!body_in_subprocess ())
    return;
  ctx = g_main_context_new ();
  loop = glib_loop_new (ctx, AFUT_LOOP_NONE);
  f = afut_future_new (loop);
  user = g_cancellable_new ();
  g_atomic_int_set (&close_race_in_handler, 0);
  g_atomic_int_set (&close_race_closing, 0);
  g_cancellable_connect (user, G_CALLBACK (slow_cancelled_handler), NULL,
                         NULL);
  afut_glib_future_link_cancellable (f, user);
  thread = g_thread_new ("canceller", cancel_cancellable_thread, user);
  limit = g_get_monotonic_time () + WAIT_LIMIT_US;
  while (!g_atomic_int_get (&close_race_in_handler)
         && g_get_monotonic_time () < limit)
    g_usleep (100);
  g_atomic_int_set (&close_race_closing, 1);
  afut_loop_unref (loop);
  g_thread_join (thread);
  assert_state (f, AFUT_FUTURE_CANCELLED);
  afut_future_unref (f); /* the closed loop's memory goes with it */
  assert_no_reports ();
  g_object_unref (user);
  g_main_context_unref (ctx);
}

/* ==================================================================== */
/* ---- GIO async calls as futures ---- */

typedef struct
{
  AfutTask task;
  GFile *file;
  AfutFuture *op;
  char *contents;
  gsize length;
} Loader;

static void
loader_finalize (AfutTask *task)
{
  Loader *self = (Loader *) task;
  g_clear_object (&self->file);
  g_free (self->contents);
}

static void
loader (AfutTask *task)
{
  Loader *self = (Loader *) task;
  GError *error = NULL;
  GAsyncResult *res;
  AFUT_BEGIN (task);
  self->op = afut_future_new (NULL);
  g_file_load_contents_async (self->file,
                              afut_glib_future_get_cancellable (self->op),
                              afut_gio_ready, afut_future_ref (self->op));
  AFUT_AWAIT (task, self->op);
  res = G_ASYNC_RESULT (afut_future_get_pointer (afut_task_awaited (task)));
  if (!g_file_load_contents_finish (self->file, res, &self->contents,
                                    &self->length, NULL, &error))
    AFUT_THROW (task, afut_glib_error_from_gerror (error));
  AFUT_RETURN_POINTER (task, g_strndup (self->contents, self->length),
                       g_free);
  AFUT_END (task);
}

static AfutFuture *
loader_new (AfutLoop *loop, GFile *file)
{
  return afut_task_new (loop, loader, sizeof (Loader),
                        &(Loader){ .file = g_object_ref (file) }, "loader",
                        loader_finalize);
}

static GFile *
temp_file_with (const char *contents, char **path_out)
{
  GError *error = NULL;
  char *path;
  int fd = g_file_open_tmp ("afut-glib-test-XXXXXX", &path, &error);
  GFile *file;
  g_assert_no_error (error);
  g_assert_cmpint (write (fd, contents, strlen (contents)), ==,
                   (gssize) strlen (contents));
  close (fd);
  file = g_file_new_for_path (path);
  *path_out = path;
  return file;
}

/* g_file_load_contents_async through afut_gio_ready: the task calls the
 * _finish on the GAsyncResult it gets. */
static void
test_gio_load_contents (void)
{
  Env env;
  char *path;
  GFile *file = temp_file_with ("hello from a file\n", &path);
  AfutFuture *t;

  env_init (&env, AFUT_LOOP_NONE);
  t = loader_new (env.loop, file);
  ITERATE_UNTIL (env.ctx, afut_future_is_done (t));
  assert_state (t, AFUT_FUTURE_DONE);
  g_assert_cmpstr (afut_future_get_pointer (t), ==, "hello from a file\n");
  afut_future_unref (t);
  env_clear (&env);
  g_object_unref (file);
  g_unlink (path);
  g_free (path);
}

/* A missing file: the task fails with GIO's own error. */
static void
test_gio_missing_file (void)
{
  Env env;
  GFile *file = g_file_new_for_path ("/nonexistent-afut-dir/no-such-file");
  AfutFuture *t;

  env_init (&env, AFUT_LOOP_NONE);
  t = loader_new (env.loop, file);
  ITERATE_UNTIL (env.ctx, afut_future_is_done (t));
  assert_state (t, AFUT_FUTURE_FAILED);
  assert_gerror (afut_future_get_error (t), G_IO_ERROR, G_IO_ERROR_NOT_FOUND,
                 NULL);
  afut_future_unref (t);
  g_object_unref (file);
  env_clear (&env);
}

/* Several loads at once, gathered with return_exceptions. */
static void
test_gio_gather_files (void)
{
  Env env;
  char *paths[3];
  GFile *files[3], *missing = g_file_new_for_path ("/nonexistent-afut/x");
  AfutFuture *g;
  int i;

  env_init (&env, AFUT_LOOP_NONE);
  for (i = 0; i < 3; i++)
    {
      char *text = g_strdup_printf ("file %d", i);
      files[i] = temp_file_with (text, &paths[i]);
      g_free (text);
    }
  g = afut_gather_return_exceptions (loader_new (env.loop, files[0]),
                                     loader_new (env.loop, missing),
                                     loader_new (env.loop, files[1]),
                                     loader_new (env.loop, files[2]), NULL);
  ITERATE_UNTIL (env.ctx, afut_future_is_done (g));
  g_assert_cmpstr (afut_future_get_pointer (afut_gather_get_item (g, 0)), ==,
                   "file 0");
  assert_gerror (afut_future_get_error (afut_gather_get_item (g, 1)),
                 G_IO_ERROR, G_IO_ERROR_NOT_FOUND, NULL);
  g_assert_cmpstr (afut_future_get_pointer (afut_gather_get_item (g, 2)), ==,
                   "file 1");
  g_assert_cmpstr (afut_future_get_pointer (afut_gather_get_item (g, 3)), ==,
                   "file 2");
  afut_future_unref (g);
  env_clear (&env);
  for (i = 0; i < 3; i++)
    {
      g_object_unref (files[i]);
      g_unlink (paths[i]);
      g_free (paths[i]);
    }
  g_object_unref (missing);
}

/* g_input_stream_read_async on a pipe that never gets data. */
typedef struct
{
  AfutTask task;
  GInputStream *stream;
  GCancellable *cancellable;
  gboolean started;
  gboolean gio_future; /* afut_gio_future_new rather than a plain future */
  char buf[16];
} PipeReader;

static void
pipe_reader_finalize (AfutTask *task)
{
  PipeReader *self = (PipeReader *) task;
  g_clear_object (&self->stream);
  g_clear_object (&self->cancellable);
}

static void
pipe_reader (AfutTask *task)
{
  PipeReader *self = (PipeReader *) task;
  AfutFuture *op;
  GError *error = NULL;
  gssize n;
  AFUT_BEGIN (task);
  op = self->gio_future ? afut_gio_future_new (NULL) : afut_future_new (NULL);
  self->cancellable = g_object_ref (afut_glib_future_get_cancellable (op));
  g_input_stream_read_async (self->stream, self->buf, sizeof self->buf - 1,
                             G_PRIORITY_DEFAULT, self->cancellable,
                             afut_gio_ready, afut_future_ref (op));
  self->started = TRUE;
  AFUT_AWAIT_TRY (task, op);
  if (afut_task_caught (task) != NULL)
    {
      if (self->gio_future) /* GIO is done with self->buf by now */
        ev ("reader.caught:%s:pending=%d", afut_task_caught (task)->message,
            g_input_stream_has_pending (self->stream));
      else
        ev ("reader.caught:%s", afut_task_caught (task)->message);
      AFUT_RERAISE (task);
    }
  n = g_input_stream_read_finish (
    self->stream,
    G_ASYNC_RESULT (afut_future_get_pointer (afut_task_awaited (task))),
    &error);
  if (n < 0)
    {
      /* GIO is done with self->buf: its callback ran before this. */
      ev ("reader.finish:%s:pending=%d", g_quark_to_string (error->domain),
          g_input_stream_has_pending (self->stream));
      AFUT_THROW (task, afut_glib_error_from_gerror (error));
    }
  AFUT_RETURN_INT (task, n);
  AFUT_END (task);
}

typedef enum
{
  PIPE_DATA,
  PIPE_CANCEL_TASK,
  PIPE_CANCEL_CANCELLABLE,
  PIPE_GIO_CANCEL_TASK
} PipeCase;

static void
run_pipe_case (PipeCase which)
{
  Env env;
  int p[2];
  GInputStream *stream;
  AfutFuture *t;
  PipeReader *r;

  env_init (&env, AFUT_LOOP_NONE);
  g_assert_cmpint (pipe (p), ==, 0);
  stream = g_unix_input_stream_new (p[0], TRUE);
  t = afut_task_new (env.loop, pipe_reader, sizeof (PipeReader),
                     &(PipeReader){ .stream = g_object_ref (stream),
                                    .gio_future = which == PIPE_GIO_CANCEL_TASK },
                     "reader", pipe_reader_finalize);
  r = (PipeReader *) t;
  ITERATE_UNTIL (env.ctx, r->started);
  iterate_n (env.ctx, 3);
  g_assert_false (afut_future_is_done (t));
  g_assert_true (g_input_stream_has_pending (stream));
  switch (which)
    {
    case PIPE_DATA:
      g_assert_cmpint (write (p[1], "ping", 4), ==, 4);
      break;
    case PIPE_CANCEL_TASK:
    case PIPE_GIO_CANCEL_TASK:
      afut_future_cancel (t, "enough");
      break;
    case PIPE_CANCEL_CANCELLABLE:
      g_cancellable_cancel (r->cancellable);
      break;
    }
  ITERATE_UNTIL (env.ctx, afut_future_is_done (t));
  if (which == PIPE_GIO_CANCEL_TASK)
    {
      /* The task resumed only once GIO had answered the cancellation:
       * no operation pending any more, and the cancel message kept. */
      g_assert_cmpstr (events->str, ==, "reader.caught:enough:pending=0");
      assert_cancelled (t, "enough");
      g_assert_true (g_cancellable_is_cancelled (r->cancellable));
    }
  /* The GIO operation itself ends: its callback ran, the future's
   * reference went. */
  ITERATE_UNTIL (env.ctx, !g_input_stream_has_pending (stream));
  switch (which)
    {
    case PIPE_DATA:
      g_assert_cmpint (afut_future_get_int (t), ==, 4);
      g_assert_cmpstr (r->buf, ==, "ping");
      g_assert_false (g_cancellable_is_cancelled (r->cancellable));
      break;
    case PIPE_CANCEL_TASK:
      assert_cancelled (t, "enough");
      g_assert_cmpstr (events->str, ==, "reader.caught:enough");
      g_assert_true (g_cancellable_is_cancelled (r->cancellable));
      break;
    case PIPE_CANCEL_CANCELLABLE:
      g_assert_true (afut_future_is_cancelled (t));
      g_test_message ("cancelled through: %s", events->str);
      break;
    case PIPE_GIO_CANCEL_TASK:
      break; /* checked above, as soon as the task was done */
    }
  afut_future_unref (t);
  g_object_unref (stream);
  close (p[1]);
  env_clear (&env);
}

static void
test_gio_stream_read (void)
{
  run_pipe_case (PIPE_DATA);
}

static void
test_gio_cancel_task_mid_call (void)
{
  run_pipe_case (PIPE_CANCEL_TASK);
}

static void
test_gio_cancel_cancellable_mid_call (void)
{
  run_pipe_case (PIPE_CANCEL_CANCELLABLE);
}

/* afut_gio_future_new: cancelling the task waits for GIO to let go of
 * the buffer before the task goes on. */
static void
test_gio_future_cancel_waits_for_gio (void)
{
  run_pipe_case (PIPE_GIO_CANCEL_TASK);
}

/* afut_run's shutdown waits for a GIO callback still to come: the main
 * task leaves a reader behind, shutdown cancels it, and by the time
 * afut_run returns GIO has called back. */
static GInputStream *orphan_stream;

static void
leave_reader_behind (AfutTask *task)
{
  AFUT_BEGIN (task);
  afut_future_unref (afut_task_new (NULL, pipe_reader, sizeof (PipeReader),
                                    &(PipeReader){
                                      .stream = g_object_ref (orphan_stream),
                                      .gio_future = TRUE },
                                    "orphan", pipe_reader_finalize));
  AFUT_AWAIT (task, afut_sleep (0.01));
  g_assert_true (g_input_stream_has_pending (orphan_stream));
  AFUT_END (task);
}

static void
test_gio_future_shutdown_waits (void)
{
  Env env;
  int p[2];

  env_init (&env, AFUT_LOOP_NONE);
  g_assert_cmpint (pipe (p), ==, 0);
  orphan_stream = g_unix_input_stream_new (p[0], TRUE);
  g_assert_cmpint (afut_run (leave_reader_behind, sizeof (AfutTask), NULL,
                             "main"),
                   ==, 0);
  g_assert_false (g_input_stream_has_pending (orphan_stream));
  g_assert_cmpstr (events->str, ==, "reader.caught::pending=0");
  g_clear_object (&orphan_stream);
  close (p[1]);
  env_clear (&env);
}

/* ==================================================================== */
/* ---- futures as GTasks: my_op_async / my_op_finish ---- */

typedef enum
{
  MY_OP_VALUE,
  MY_OP_FAIL
} MyOpMode;

typedef struct
{
  AfutTask task;
  int64_t x;
  MyOpMode mode;
  double delay;
} MyOp;

static int my_op_started;
static int my_op_cancelled;
static int my_op_finalized;

static void
my_op_finalize (AfutTask *task)
{
  (void) task;
  my_op_finalized++;
}

static void
my_op_body (AfutTask *task)
{
  MyOp *self = (MyOp *) task;
  AFUT_BEGIN (task);
  my_op_started++;
  AFUT_AWAIT_TRY (task, afut_sleep (self->delay));
  if (afut_task_caught (task) != NULL)
    {
      if (afut_error_is_cancelled (afut_task_caught (task)))
        my_op_cancelled++;
      AFUT_RERAISE (task);
    }
  if (self->mode == MY_OP_FAIL)
    AFUT_THROW (task, (AfutError *) g_error_new (
                        G_IO_ERROR, G_IO_ERROR_NOT_SUPPORTED,
                        "cannot double %" G_GINT64_FORMAT, self->x));
  AFUT_RETURN_INT (task, self->x * 2);
  AFUT_END (task);
}

/* The published pair, as a library built on afut would write it. */
static void
my_op_async (AfutLoop *loop, GObject *source, int64_t x, MyOpMode mode,
             double delay, GCancellable *cancellable,
             GAsyncReadyCallback callback, gpointer user_data)
{
  AfutFuture *body = afut_task_new (
    loop, my_op_body, sizeof (MyOp),
    &(MyOp){ .x = x, .mode = mode, .delay = delay }, "my-op", my_op_finalize);
  afut_glib_future_to_task (body, source, cancellable, callback, user_data);
}

static int64_t
my_op_finish (GAsyncResult *result, GError **error)
{
  AfutFuture *done = afut_glib_task_propagate (result, error);
  int64_t value;
  if (done == NULL)
    return -1;
  value = afut_future_get_int (done);
  afut_future_unref (done);
  return value;
}

/* The plain GLib caller: nothing afut in here. */
typedef struct
{
  GMainLoop *main_loop;
  GMainContext *expected_ctx;
  GObject *source;
  int64_t value;
  GError *error;
  int calls;
} Caller;

static void
caller_ready (GObject *source, GAsyncResult *result, gpointer data)
{
  Caller *c = (Caller *) data;
  c->calls++;
  g_assert_true (g_main_context_is_owner (c->expected_ctx));
  g_assert_true (source == c->source);
  {
    GObject *s = g_async_result_get_source_object (result);
    g_assert_true (s == c->source);
    g_clear_object (&s);
  }
  c->value = my_op_finish (result, &c->error);
  g_main_loop_quit (c->main_loop);
}

static gboolean
cancel_later (gpointer data)
{
  g_cancellable_cancel (G_CANCELLABLE (data));
  return G_SOURCE_REMOVE;
}

typedef enum
{
  GTASK_VALUE,
  GTASK_ERROR,
  GTASK_CANCEL,
  GTASK_PRECANCELLED
} GTaskCase;

static void
run_gtask_case (GTaskCase which, gboolean with_source)
{
  Env env;
  Caller c;
  GCancellable *cancellable = NULL;
  GObject *source = with_source ? g_object_new (G_TYPE_OBJECT, NULL) : NULL;

  env_init (&env, which == GTASK_CANCEL || which == GTASK_PRECANCELLED
                    ? AFUT_LOOP_NONE
                    : AFUT_LOOP_VIRTUAL_CLOCK);
  my_op_started = my_op_cancelled = my_op_finalized = 0;
  memset (&c, 0, sizeof c);
  c.main_loop = g_main_loop_new (env.ctx, FALSE);
  c.expected_ctx = env.ctx;
  c.source = source;
  if (which == GTASK_CANCEL || which == GTASK_PRECANCELLED)
    cancellable = g_cancellable_new ();
  if (which == GTASK_PRECANCELLED)
    g_cancellable_cancel (cancellable);
  my_op_async (env.loop, source, 21, which == GTASK_ERROR ? MY_OP_FAIL
                                                         : MY_OP_VALUE,
               which == GTASK_CANCEL || which == GTASK_PRECANCELLED ? 3600
                                                                    : 2,
               cancellable, caller_ready, &c);
  if (which == GTASK_CANCEL)
    {
      GSource *later = g_timeout_source_new (1);
      g_source_set_callback (later, cancel_later, cancellable, NULL);
      g_source_attach (later, env.ctx);
      g_source_unref (later);
    }
  main_loop_run_guarded (c.main_loop);
  g_assert_cmpint (c.calls, ==, 1);
  switch (which)
    {
    case GTASK_VALUE:
      g_assert_no_error (c.error);
      g_assert_cmpint (c.value, ==, 42);
      g_assert_cmpfloat (afut_loop_time (env.loop), ==, 2.0);
      break;
    case GTASK_ERROR:
      g_assert_error (c.error, G_IO_ERROR, G_IO_ERROR_NOT_SUPPORTED);
      g_assert_cmpstr (c.error->message, ==, "cannot double 21");
      g_assert_cmpint (c.value, ==, -1);
      break;
    case GTASK_CANCEL:
      g_assert_error (c.error, G_IO_ERROR, G_IO_ERROR_CANCELLED);
      g_assert_cmpint (my_op_started, ==, 1);
      g_assert_cmpint (my_op_cancelled, ==, 1);
      break;
    case GTASK_PRECANCELLED:
      g_assert_error (c.error, G_IO_ERROR, G_IO_ERROR_CANCELLED);
      g_assert_cmpint (my_op_cancelled, ==, my_op_started);
      break;
    }
  g_clear_error (&c.error);
  iterate_n (env.ctx, 3);
  /* The afut task behind the GTask is gone once the GTask is. */
  g_assert_cmpint (my_op_finalized, ==, 1);
  g_main_loop_unref (c.main_loop);
  g_clear_object (&cancellable);
  g_clear_object (&source);
  env_clear (&env);
}

static void
test_gtask_value (void)
{
  run_gtask_case (GTASK_VALUE, FALSE);
}

static void
test_gtask_error (void)
{
  run_gtask_case (GTASK_ERROR, FALSE);
}

static void
test_gtask_cancelled (void)
{
  run_gtask_case (GTASK_CANCEL, FALSE);
}

static void
test_gtask_already_cancelled (void)
{
  run_gtask_case (GTASK_PRECANCELLED, FALSE);
}

/* A foo_async method has a source object (the instance): the GTask
 * carries it to the callback, and foo_finish still works. */
static void
test_gtask_with_source_object (void)
{
  if (!body_in_subprocess ())
    return;
  run_gtask_case (GTASK_VALUE, TRUE);
  run_gtask_case (GTASK_ERROR, TRUE);
}

/* afut_glib_task_propagate on a GTask afut did not make: reported. */
static void
test_gtask_foreign_task_is_reported (void)
{
  if (g_test_subprocess ())
    {
      GTask *task = g_task_new (NULL, NULL, NULL, NULL);
      g_task_return_boolean (task, TRUE);
      g_assert_null (afut_glib_task_propagate (G_ASYNC_RESULT (task), NULL));
      g_object_unref (task);
      return;
    }
  g_test_trap_subprocess (NULL, 0, G_TEST_SUBPROCESS_DEFAULT);
  g_test_trap_assert_failed ();
  g_test_trap_assert_stderr ("*CRITICAL*afut_glib_task_propagate*");
}

/* ==================================================================== */
/* ---- afut_to_thread ---- */

typedef struct
{
  int mode;
  GThread *func_thread;    /* atomic */
  gint started;            /* atomic */
  gint saw_cancel;         /* atomic */
  gint data_destroyed;     /* atomic */
  gint result_destroyed;   /* atomic */
  gint64 value;
  gint wait_for;           /* for SHUTDOWN: atomic flag to wait on */
  GThread *done_thread;    /* loop thread */
  AfutFutureState done_state;
} Job;

enum
{
  JOB_VALUE,
  JOB_ERROR,
  JOB_ERROR_WITH_RESULT,
  JOB_GIO_CANCELLED,
  JOB_WAIT_CANCEL,
  JOB_WAIT_FLAG
};

typedef struct
{
  Job *job;
  gint64 value;
} JobResult;

static void
job_data_destroy (gpointer data)
{
  g_atomic_int_inc (&((Job *) data)->data_destroyed);
}

static void
job_result_destroy (gpointer data)
{
  JobResult *r = (JobResult *) data;
  g_atomic_int_inc (&r->job->result_destroyed);
  g_free (r);
}

static gpointer
job_func (gpointer data, GCancellable *cancellable, GError **error)
{
  Job *job = (Job *) data;
  JobResult *r = g_new0 (JobResult, 1);
  r->job = job;
  r->value = job->value * 2;
  g_atomic_pointer_set (&job->func_thread, g_thread_self ());
  g_atomic_int_set (&job->started, 1);
  switch (job->mode)
    {
    case JOB_ERROR:
      g_free (r);
      g_set_error (error, G_IO_ERROR, G_IO_ERROR_NOT_FOUND, "job %d failed",
                   (int) job->value);
      return NULL;
    case JOB_ERROR_WITH_RESULT:
      g_set_error_literal (error, G_IO_ERROR, G_IO_ERROR_BUSY, "busy");
      return r;
    case JOB_GIO_CANCELLED:
      g_free (r);
      g_set_error_literal (error, G_IO_ERROR, G_IO_ERROR_CANCELLED,
                           "gave up");
      return NULL;
    case JOB_WAIT_CANCEL:
      {
        GPollFD pfd;
        g_assert_true (g_cancellable_make_pollfd (cancellable, &pfd));
        g_poll (&pfd, 1, WAIT_LIMIT_US / 1000);
        g_cancellable_release_fd (cancellable);
        g_atomic_int_set (&job->saw_cancel,
                          g_cancellable_is_cancelled (cancellable));
        return r; /* late: to be freed */
      }
    case JOB_WAIT_FLAG:
      {
        gint64 limit = g_get_monotonic_time () + WAIT_LIMIT_US;
        while (!g_atomic_int_get (&job->wait_for)
               && g_get_monotonic_time () < limit)
          g_usleep (100);
        /* The loop is shutting down by now: make it wait a little. */
        g_usleep (2000);
        return r;
      }
    default:
      return r;
    }
}

static void
job_done (AfutFuture *future, void *data)
{
  Job *job = (Job *) data;
  job->done_thread = g_thread_self ();
  job->done_state = afut_future_get_state (future);
}

static gint64
job_result_value (AfutFuture *f)
{
  return ((JobResult *) afut_future_get_pointer (f))->value;
}

/* The result arrives on the loop's thread; the function ran on another;
 * data_destroy and result_destroy run once each. */
static void
test_to_thread_result (void)
{
  Env env;
  Job job = { .mode = JOB_VALUE, .value = 21 };
  AfutFuture *f;

  env_init (&env, AFUT_LOOP_NONE);
  f = afut_to_thread (env.loop, job_func, &job, job_data_destroy,
                      job_result_destroy);
  afut_future_add_done_callback (f, job_done, &job);
  ITERATE_UNTIL (env.ctx, job.done_thread != NULL);
  assert_state (f, AFUT_FUTURE_DONE);
  g_assert_cmpint (job_result_value (f), ==, 42);
  g_assert_true (job.done_thread == g_thread_self ());
  g_assert_nonnull (g_atomic_pointer_get (&job.func_thread));
  g_assert_true (g_atomic_pointer_get (&job.func_thread) != g_thread_self ());
  g_assert_cmpint (g_atomic_int_get (&job.data_destroyed), ==, 1);
  g_assert_cmpint (g_atomic_int_get (&job.result_destroyed), ==, 0);
  afut_future_unref (f);
  g_assert_cmpint (g_atomic_int_get (&job.result_destroyed), ==, 1);
  env_clear (&env);
}

/* Errors arrive as the GError; a result returned with an error is
 * freed; G_IO_ERROR_CANCELLED is afut's cancellation. */
static void
test_to_thread_error (void)
{
  Env env;
  Job failing = { .mode = JOB_ERROR, .value = 7 };
  Job with_result = { .mode = JOB_ERROR_WITH_RESULT };
  Job cancelled = { .mode = JOB_GIO_CANCELLED };
  AfutFuture *f, *g, *h;

  env_init (&env, AFUT_LOOP_NONE);
  f = afut_to_thread (env.loop, job_func, &failing, job_data_destroy,
                      job_result_destroy);
  g = afut_to_thread (env.loop, job_func, &with_result, job_data_destroy,
                      job_result_destroy);
  h = afut_to_thread (env.loop, job_func, &cancelled, NULL,
                      job_result_destroy);
  ITERATE_UNTIL (env.ctx, afut_future_is_done (f) && afut_future_is_done (g)
                            && afut_future_is_done (h));
  assert_state (f, AFUT_FUTURE_FAILED);
  assert_gerror (afut_future_get_error (f), G_IO_ERROR, G_IO_ERROR_NOT_FOUND,
                 "job 7 failed");
  assert_state (g, AFUT_FUTURE_FAILED);
  assert_gerror (afut_future_get_error (g), G_IO_ERROR, G_IO_ERROR_BUSY,
                 "busy");
  g_assert_cmpint (g_atomic_int_get (&with_result.result_destroyed), ==, 1);
  assert_cancelled (h, "gave up");
  g_assert_cmpint (g_atomic_int_get (&failing.data_destroyed), ==, 1);
  g_assert_cmpint (g_atomic_int_get (&with_result.data_destroyed), ==, 1);
  g_assert_cmpint (g_atomic_int_get (&cancelled.data_destroyed), ==, 0);
  afut_future_unref (f);
  afut_future_unref (g);
  afut_future_unref (h);
  env_clear (&env);
}

/* Cancelling the future cancels the cancellable the function sees; the
 * late result is freed, once; data_destroy runs once. */
static void
test_to_thread_cancel (void)
{
  Env env;
  Job job = { .mode = JOB_WAIT_CANCEL };
  AfutFuture *f;

  env_init (&env, AFUT_LOOP_NONE);
  f = afut_to_thread (env.loop, job_func, &job, job_data_destroy,
                      job_result_destroy);
  ITERATE_UNTIL (env.ctx, g_atomic_int_get (&job.started));
  afut_future_cancel (f, "stop");
  assert_cancelled (f, "stop");
  ITERATE_UNTIL (env.ctx, g_atomic_int_get (&job.result_destroyed) > 0);
  g_assert_true (g_atomic_int_get (&job.saw_cancel));
  iterate_n (env.ctx, 3);
  g_assert_cmpint (g_atomic_int_get (&job.result_destroyed), ==, 1);
  g_assert_cmpint (g_atomic_int_get (&job.data_destroyed), ==, 1);
  assert_cancelled (f, "stop");
  afut_future_unref (f);
  env_clear (&env);
}

/* Several jobs run at once (each waits until all have started). */
#define N_JOBS 4
static gint barrier_arrived;

static gpointer
barrier_func (gpointer data, GCancellable *cancellable, GError **error)
{
  gint64 limit = g_get_monotonic_time () + WAIT_LIMIT_US;
  (void) cancellable;
  g_atomic_int_inc (&barrier_arrived);
  while (g_atomic_int_get (&barrier_arrived) < N_JOBS)
    {
      if (g_get_monotonic_time () > limit)
        {
          g_set_error_literal (error, G_IO_ERROR, G_IO_ERROR_TIMED_OUT,
                               "the jobs did not run concurrently");
          return NULL;
        }
      g_usleep (100);
    }
  return GINT_TO_POINTER (GPOINTER_TO_INT (data) * 10);
}

static void
test_to_thread_concurrent (void)
{
  Env env;
  AfutFuture *futures[N_JOBS], *g;
  int i;

  env_init (&env, AFUT_LOOP_NONE);
  g_atomic_int_set (&barrier_arrived, 0);
  for (i = 0; i < N_JOBS; i++)
    futures[i] = afut_to_thread (env.loop, barrier_func,
                                 GINT_TO_POINTER (i + 1), NULL, NULL);
  g = afut_gather_v (futures, N_JOBS);
  ITERATE_UNTIL (env.ctx, afut_future_is_done (g));
  assert_state (g, AFUT_FUTURE_DONE);
  for (i = 0; i < N_JOBS; i++)
    g_assert_cmpint (GPOINTER_TO_INT (afut_future_get_pointer (futures[i])), ==,
                     (i + 1) * 10);
  for (i = 0; i < N_JOBS; i++)
    afut_future_unref (futures[i]);
  afut_future_unref (g);
  env_clear (&env);
}

/* afut_run()'s shutdown waits for a running job (afut_loop_hold): the
 * main task returns while the function still runs; afut_run returns
 * only after the result came back and its callbacks ran. */
static Job shutdown_job;

static void
shutdown_main_returning (AfutTask *task)
{
  AFUT_BEGIN (task);
  afut_loop_set_exception_handler (afut_loop_get_running (), record_report,
                                   NULL);
  {
    AfutFuture *f = afut_to_thread (NULL, job_func, &shutdown_job,
                                    job_data_destroy, job_result_destroy);
    afut_future_add_done_callback (f, job_done, &shutdown_job);
    afut_future_unref (f);
  }
  AFUT_YIELD (task);
  g_atomic_int_set (&shutdown_job.wait_for, 1);
  AFUT_END (task);
}

static void
test_to_thread_shutdown_waits (void)
{
  memset (&shutdown_job, 0, sizeof shutdown_job);
  shutdown_job.mode = JOB_WAIT_FLAG;
  shutdown_job.value = 4;
  g_assert_cmpint (afut_run (shutdown_main_returning, sizeof (AfutTask), NULL,
                             "main"),
                   ==, 0);
  g_assert_true (shutdown_job.done_thread == g_thread_self ());
  g_assert_cmpint (shutdown_job.done_state, ==, AFUT_FUTURE_DONE);
  g_assert_cmpint (g_atomic_int_get (&shutdown_job.data_destroyed), ==, 1);
  g_assert_cmpint (g_atomic_int_get (&shutdown_job.result_destroyed), ==, 1);
  assert_no_reports ();
}

/* A child task awaiting a job is cancelled by the shutdown: the function
 * sees the cancellation, the late result is freed, and afut_run waits
 * for it all. */
static Job shutdown_cancel_job;

typedef struct
{
  AfutTask task;
} ShutdownChild;

static void
shutdown_child (AfutTask *task)
{
  AFUT_BEGIN (task);
  AFUT_AWAIT_TRY (task, afut_to_thread (NULL, job_func, &shutdown_cancel_job,
                                        job_data_destroy,
                                        job_result_destroy));
  if (afut_task_caught (task) != NULL)
    {
      ev ("child.caught:%s",
          afut_error_is_cancelled (afut_task_caught (task)) ? "cancelled"
                                                            : "error");
      AFUT_RERAISE (task);
    }
  ev ("child.done");
  AFUT_END (task);
}

static void
shutdown_cancel_main (AfutTask *task)
{
  AFUT_BEGIN (task);
  afut_loop_set_exception_handler (afut_loop_get_running (), record_report,
                                   NULL);
  afut_future_unref (afut_task_new (NULL, shutdown_child,
                                    sizeof (ShutdownChild), NULL, "child",
                                    NULL));
  while (!g_atomic_int_get (&shutdown_cancel_job.started))
    AFUT_AWAIT (task, afut_sleep (0.0005));
  AFUT_END (task);
}

static void
test_to_thread_shutdown_cancels (void)
{
  reset_logs ();
  memset (&shutdown_cancel_job, 0, sizeof shutdown_cancel_job);
  shutdown_cancel_job.mode = JOB_WAIT_CANCEL;
  g_assert_cmpint (afut_run (shutdown_cancel_main, sizeof (AfutTask), NULL,
                             "main"),
                   ==, 0);
  g_assert_cmpstr (events->str, ==, "child.caught:cancelled");
  g_assert_true (g_atomic_int_get (&shutdown_cancel_job.saw_cancel));
  g_assert_cmpint (g_atomic_int_get (&shutdown_cancel_job.data_destroyed),
                   ==, 1);
  g_assert_cmpint (g_atomic_int_get (&shutdown_cancel_job.result_destroyed),
                   ==, 1);
  assert_no_reports ();
}

/* ==================================================================== */
/* ---- threads completing futures of one loop; a loop per thread ---- */

#define N_RESOLVERS 4
#define N_PER_RESOLVER 200

typedef struct Resolver Resolver;

typedef struct
{
  Resolver *resolver;
  int j;
} ResolverArg;

struct Resolver
{
  AfutLoop *loop;
  int index;
  gint *go;
  AfutFuture *futures[N_PER_RESOLVER]; /* a reference each, handed over */
  ResolverArg args[N_PER_RESOLVER];
  int called[N_PER_RESOLVER]; /* loop thread */
  GArray *call_order;         /* loop thread */
  GArray *done_order;         /* loop thread */
};

static void
resolver_called (void *data)
{
  ResolverArg *a = (ResolverArg *) data;
  a->resolver->called[a->j]++;
  g_array_append_val (a->resolver->call_order, a->j);
}

static void
resolver_done (AfutFuture *future, void *data)
{
  ResolverArg *a = (ResolverArg *) data;
  (void) future;
  g_array_append_val (a->resolver->done_order, a->j);
}

static gpointer
resolver_thread (gpointer data)
{
  Resolver *r = (Resolver *) data;
  gint64 limit = g_get_monotonic_time () + WAIT_LIMIT_US;
  int j;
  while (!g_atomic_int_get (r->go) && g_get_monotonic_time () < limit)
    g_usleep (100);
  /* Let the loop block in its poll before the first post. */
  g_usleep (2000);
  for (j = 0; j < N_PER_RESOLVER; j++)
    switch (j % 4)
      {
      case 0:
        afut_future_resolve_int_threadsafe (r->futures[j],
                                            r->index * 1000 + j);
        break;
      case 1:
        afut_future_fail_threadsafe (
          r->futures[j],
          (AfutError *) g_error_new (G_IO_ERROR, G_IO_ERROR_FAILED,
                                     "resolver %d job %d", r->index, j));
        break;
      case 2:
        afut_future_cancel_threadsafe (r->futures[j], "cancelled by a thread");
        break;
      default:
        afut_loop_call_soon_threadsafe (r->loop, resolver_called, &r->args[j]);
        afut_future_resolve_threadsafe (r->futures[j]);
        break;
      }
  return NULL;
}

static void
assert_increasing (GArray *a)
{
  guint i;
  for (i = 1; i < a->len; i++)
    g_assert_cmpint (g_array_index (a, int, i - 1), <,
                     g_array_index (a, int, i));
}

static void
test_thread_resolvers_one_loop (void)
{
  Env env;
  Resolver *rs = g_new0 (Resolver, N_RESOLVERS);
  AfutFuture *all[N_RESOLVERS * N_PER_RESOLVER], *g;
  GThread *threads[N_RESOLVERS];
  GSource *tick;
  guint ticks = 0;
  gint go = 0;
  gint64 limit;
  int i, j;

  env_init (&env, AFUT_LOOP_NONE);
  for (i = 0; i < N_RESOLVERS; i++)
    {
      Resolver *r = &rs[i];
      r->loop = env.loop;
      r->index = i;
      r->go = &go;
      r->call_order = g_array_new (FALSE, FALSE, sizeof (int));
      r->done_order = g_array_new (FALSE, FALSE, sizeof (int));
      for (j = 0; j < N_PER_RESOLVER; j++)
        {
          AfutFuture *f = afut_future_new (env.loop);
          r->args[j].resolver = r;
          r->args[j].j = j;
          afut_future_add_done_callback (f, resolver_done, &r->args[j]);
          r->futures[j] = afut_future_ref (f);
          all[i * N_PER_RESOLVER + j] = f;
        }
    }
  g = afut_gather_return_exceptions_v (all, G_N_ELEMENTS (all));
  for (i = 0; i < N_RESOLVERS; i++)
    threads[i] = g_thread_new ("resolver", resolver_thread, &rs[i]);
  g_atomic_int_set (&go, 1);
  /* Blocked in poll with nothing else to wake it: every wakeup must come
   * from the threads' posts (a 5 s tick would show a lost one). */
  tick = tick_attach (env.ctx, 5000, &ticks);
  limit = g_get_monotonic_time () + WAIT_LIMIT_US;
  while (!afut_future_is_done (g) && g_get_monotonic_time () < limit)
    g_main_context_iteration (env.ctx, TRUE);
  source_drop (tick);
  for (i = 0; i < N_RESOLVERS; i++)
    g_thread_join (threads[i]);
  iterate_n (env.ctx, 3);
  g_assert_true (afut_future_is_done (g));
  g_assert_cmpuint (ticks, ==, 0);

  for (i = 0; i < N_RESOLVERS; i++)
    {
      Resolver *r = &rs[i];
      for (j = 0; j < N_PER_RESOLVER; j++)
        {
          AfutFuture *f = all[i * N_PER_RESOLVER + j];
          switch (j % 4)
            {
            case 0:
              g_assert_cmpint (afut_future_get_int (f), ==, i * 1000 + j);
              break;
            case 1:
              {
                char *msg = g_strdup_printf ("resolver %d job %d", i, j);
                assert_state (f, AFUT_FUTURE_FAILED);
                assert_gerror (afut_future_get_error (f), G_IO_ERROR,
                               G_IO_ERROR_FAILED, msg);
                g_free (msg);
                break;
              }
            case 2:
              assert_cancelled (f, "cancelled by a thread");
              break;
            default:
              assert_state (f, AFUT_FUTURE_DONE);
              break;
            }
          g_assert_cmpint (r->called[j], ==, j % 4 == 3 ? 1 : 0);
        }
      /* Nothing lost or run twice, and each thread's calls in order. */
      g_assert_cmpuint (r->call_order->len, ==, N_PER_RESOLVER / 4);
      g_assert_cmpuint (r->done_order->len, ==, N_PER_RESOLVER);
      assert_increasing (r->call_order);
      assert_increasing (r->done_order);
      g_array_unref (r->call_order);
      g_array_unref (r->done_order);
    }
  for (i = 0; i < (int) G_N_ELEMENTS (all); i++)
    afut_future_unref (all[i]);
  afut_future_unref (g);
  g_free (rs);
  env_clear (&env);
}

/* A thread posts while the loop blocks in g_main_context_iteration with
 * no timeout: g_main_context_wakeup makes the iteration return. */
typedef struct
{
  AfutLoop *loop;
  AfutFuture *future;
} Poster;

static void
posted_callback (void *data)
{
  ev ("%s", (const char *) data);
}

static gpointer
poster_thread (gpointer data)
{
  Poster *p = (Poster *) data;
  g_usleep (3000);
  afut_loop_call_soon_threadsafe (p->loop, posted_callback, "posted");
  afut_future_resolve_int_threadsafe (p->future, 99);
  return NULL;
}

static void
test_thread_wakeup_blocked_iteration (void)
{
  Env env;
  Poster p;
  GThread *thread;
  GSource *tick;
  guint ticks = 0;
  gint64 start;

  env_init (&env, AFUT_LOOP_NONE);
  p.loop = env.loop;
  p.future = afut_future_new (env.loop);
  afut_future_ref (p.future);
  tick = tick_attach (env.ctx, 5000, &ticks);
  start = g_get_monotonic_time ();
  thread = g_thread_new ("poster", poster_thread, &p);
  while (!afut_future_is_done (p.future) && ticks == 0)
    g_main_context_iteration (env.ctx, TRUE);
  g_thread_join (thread);
  source_drop (tick);
  g_assert_cmpuint (ticks, ==, 0);
  g_assert_cmpint (g_get_monotonic_time () - start, <, 4 * G_USEC_PER_SEC);
  g_assert_cmpint (afut_future_get_int (p.future), ==, 99);
  g_assert_cmpstr (events->str, ==, "posted");
  afut_future_unref (p.future);
  env_clear (&env);
}

/* A loop per thread: each thread makes its own context, pushes it, and
 * runs its own loop (afut_glib_loop_new + run_until_complete, or
 * afut_run).  In a ring, each loop's main task resolves the next loop's
 * future and posts a callback to it, through the threadsafe calls. */
#define N_LOOPS 4

typedef struct
{
  int index;
  gboolean use_run;
  GThread *thread;
  GMainContext *context;
  AfutFuture *published;      /* atomic: a reference for the peer */
  AfutLoop *published_loop;   /* atomic */
  int n_callbacks;            /* this loop's thread */
  int64_t received;
  int status;
} Ring;

static Ring rings[N_LOOPS];

typedef struct
{
  AfutTask task;
  Ring *ring;
  AfutFuture *mine;
  AfutFuture *peer;
  gint64 limit;
} RingMain;

static void
ring_callback (void *data)
{
  Ring *r = (Ring *) data;
  g_assert_true (g_thread_self () == r->thread);
  r->n_callbacks++;
}

static void
ring_main (AfutTask *task)
{
  RingMain *self = (RingMain *) task;
  Ring *r = self->ring;
  Ring *peer = &rings[(r->index + 1) % N_LOOPS];
  AFUT_BEGIN (task);
  afut_loop_set_exception_handler (afut_loop_get_running (), record_report,
                                   NULL);
  g_assert_true (afut_glib_loop_get_context (afut_loop_get_running ())
                 == r->context);
  self->mine = afut_future_new (NULL);
  g_atomic_pointer_set (&r->published_loop, afut_loop_get_running ());
  g_atomic_pointer_set (&r->published, afut_future_ref (self->mine));
  self->limit = g_get_monotonic_time () + WAIT_LIMIT_US;
  while ((self->peer = (AfutFuture *) g_atomic_pointer_get (&peer->published))
         == NULL)
    {
      if (g_get_monotonic_time () > self->limit)
        AFUT_THROW (task, afut_error_new_literal (AFUT_ERROR,
                                                  AFUT_ERROR_TIMEOUT,
                                                  "the peer never published"));
      AFUT_AWAIT (task, afut_sleep (0.0005));
    }
  /* One thread's threadsafe calls run in order: the callback first. */
  afut_loop_call_soon_threadsafe (
    (AfutLoop *) g_atomic_pointer_get (&peer->published_loop), ring_callback,
    peer);
  afut_future_resolve_int_threadsafe (self->peer, 100 + r->index);
  AFUT_AWAIT (task, afut_future_ref (self->mine));
  r->received = afut_future_get_int (afut_task_awaited (task));
  g_assert_cmpint (r->n_callbacks, ==, 1);
  afut_future_unref (self->mine);
  AFUT_RETURN_INT (task, r->received);
  AFUT_END (task);
}

static gpointer
ring_thread (gpointer data)
{
  Ring *r = (Ring *) data;
  r->thread = g_thread_self ();
  r->context = g_main_context_new ();
  g_main_context_push_thread_default (r->context);
  if (r->use_run)
    r->status = afut_run (ring_main, sizeof (RingMain),
                          &(RingMain){ .ring = r }, "ring");
  else
    {
      AfutLoop *loop = afut_glib_loop_new (r->context, AFUT_LOOP_NONE);
      AfutFuture *t = afut_task_new (loop, ring_main, sizeof (RingMain),
                                     &(RingMain){ .ring = r }, "ring", NULL);
      afut_loop_run_until_complete (loop, t);
      r->status = afut_future_get_state (t) == AFUT_FUTURE_DONE ? 0 : 1;
      afut_future_unref (t);
      afut_loop_unref (loop);
    }
  g_main_context_pop_thread_default (r->context);
  g_main_context_unref (r->context);
  return NULL;
}

static void
run_rings (gboolean use_run)
{
  GThread *threads[N_LOOPS];
  int i;
  memset (rings, 0, sizeof rings);
  for (i = 0; i < N_LOOPS; i++)
    {
      rings[i].index = i;
      rings[i].use_run = use_run;
    }
  for (i = 0; i < N_LOOPS; i++)
    threads[i] = g_thread_new ("ring", ring_thread, &rings[i]);
  for (i = 0; i < N_LOOPS; i++)
    g_thread_join (threads[i]);
  for (i = 0; i < N_LOOPS; i++)
    {
      g_assert_cmpint (rings[i].status, ==, 0);
      g_assert_cmpint (rings[i].received, ==,
                       100 + (i + N_LOOPS - 1) % N_LOOPS);
      g_assert_cmpint (rings[i].n_callbacks, ==, 1);
    }
  assert_no_reports ();
}

static void
test_thread_loop_per_thread (void)
{
  run_rings (FALSE);
}

static void
test_thread_afut_run_per_thread (void)
{
  run_rings (TRUE);
}

/* ==================================================================== */
/* ---- fds through the source ---- */

typedef struct
{
  AfutTask task;
  int fd;
  unsigned events;
} FdWaiter;

static void
fd_waiter (AfutTask *task)
{
  FdWaiter *self = (FdWaiter *) task;
  AFUT_BEGIN (task);
  AFUT_AWAIT (task, afut_fd_wait (self->fd, self->events));
  AFUT_RETURN_INT (task, afut_future_get_int (afut_task_awaited (task)));
  AFUT_END (task);
}

static AfutFuture *
fd_waiter_new (AfutLoop *loop, int fd, unsigned events)
{
  return afut_task_new (loop, fd_waiter, sizeof (FdWaiter),
                        &(FdWaiter){ .fd = fd, .events = events }, "fd-waiter",
                        NULL);
}

/* Readable after a write; writable at once; the poll set holds the fd
 * only while someone waits. */
static void
test_fd_readable_writable (void)
{
  Env env;
  int sv[2];
  AfutFuture *r, *w;
  gushort polled = 0;

  env_init (&env, AFUT_LOOP_NONE);
  socketpair_nonblocking (sv);
  r = fd_waiter_new (env.loop, sv[0], AFUT_IO_IN);
  w = fd_waiter_new (env.loop, sv[1], AFUT_IO_OUT);
  ITERATE_UNTIL (env.ctx, afut_future_is_done (w));
  g_assert_cmpint (afut_future_get_int (w), ==, AFUT_IO_OUT);
  iterate_n (env.ctx, 3);
  g_assert_false (afut_future_is_done (r));
  g_assert_true (context_polls_fd (env.ctx, sv[0], &polled, NULL));
  g_assert_cmpuint (polled & G_IO_IN, ==, G_IO_IN);
  g_assert_true (context_drops_fd (env.ctx, sv[1]));
  g_assert_cmpint (write (sv[1], "x", 1), ==, 1);
  ITERATE_UNTIL (env.ctx, afut_future_is_done (r));
  g_assert_cmpint (afut_future_get_int (r) & AFUT_IO_IN, ==, AFUT_IO_IN);
  iterate_n (env.ctx, 2);
  g_assert_true (context_drops_fd (env.ctx, sv[0]));
  afut_future_unref (r);
  afut_future_unref (w);
  close (sv[0]);
  close (sv[1]);
  env_clear (&env);
}

/* GLib reports G_IO_NVAL for an fd that is not open: the wait fails with
 * EBADF, as on the embedded loop (/loop/fd/not-open-fails). */
static void
test_fd_not_open_fails (void)
{
  Env env;
  int sv[2];
  AfutFuture *f;
  const AfutError *error;

  env_init (&env, AFUT_LOOP_NONE);
  socketpair_nonblocking (sv);
  close (sv[0]);
  close (sv[1]);
  f = afut_loop_fd_wait (env.loop, sv[0], AFUT_IO_IN);
  g_assert_nonnull (f);
  ITERATE_UNTIL (env.ctx, afut_future_is_done (f));
  g_assert_cmpint (afut_future_get_state (f), ==, AFUT_FUTURE_FAILED);
  error = afut_future_get_error (f);
  g_assert_true (afut_error_matches (error, AFUT_ERRNO_ERROR, EBADF));
  afut_future_unref (f);
  env_clear (&env);
}

/* Cancelling a wait (directly, or by cancelling the task awaiting it)
 * removes the watch: the fd leaves the poll set and the loop does not
 * spin once the fd becomes ready. */
static void
test_fd_cancel_removes_watch (void)
{
  Env env;
  int sv[2];
  AfutFuture *f, *t;
  guint n;

  env_init (&env, AFUT_LOOP_NONE);
  socketpair_nonblocking (sv);
  f = afut_loop_fd_wait (env.loop, sv[0], AFUT_IO_IN);
  iterate_n (env.ctx, 2);
  g_assert_true (context_polls_fd (env.ctx, sv[0], NULL, NULL));
  afut_future_cancel (f, NULL);
  assert_cancelled (f, "");
  g_assert_cmpint (write (sv[1], "x", 1), ==, 1);
  g_assert_true (context_drops_fd (env.ctx, sv[0]));
  n = blocking_iterations_during (env.ctx, 10);
  g_assert_cmpuint (n, <=, 5);
  g_assert_cmpuint (dispatches_during (env.ctx, 5), ==, 0);

  t = fd_waiter_new (env.loop, sv[1], AFUT_IO_IN);
  iterate_n (env.ctx, 3);
  g_assert_true (context_polls_fd (env.ctx, sv[1], NULL, NULL));
  afut_future_cancel (t, "task cancelled");
  ITERATE_UNTIL (env.ctx, afut_future_is_done (t));
  assert_cancelled (t, "task cancelled");
  g_assert_cmpint (write (sv[0], "y", 1), ==, 1);
  g_assert_true (context_drops_fd (env.ctx, sv[1]));
  n = blocking_iterations_during (env.ctx, 10);
  g_assert_cmpuint (n, <=, 5);
  g_assert_cmpuint (dispatches_during (env.ctx, 5), ==, 0);

  afut_future_unref (f);
  afut_future_unref (t);
  close (sv[0]);
  close (sv[1]);
  env_clear (&env);
}

/* Two waits on one fd, IN and OUT: OUT fires at once; the registration
 * then narrows to IN, so an always-writable socket does not make GLib
 * spin; IN fires on data.  One wait for IN|OUT reports OUT. */
static void
test_fd_in_and_out_on_one_fd (void)
{
  Env env;
  int sv[2];
  AfutFuture *in, *outw, *both;
  gushort polled = 0;

  env_init (&env, AFUT_LOOP_NONE);
  socketpair_nonblocking (sv);
  in = fd_waiter_new (env.loop, sv[0], AFUT_IO_IN);
  outw = fd_waiter_new (env.loop, sv[0], AFUT_IO_OUT);
  ITERATE_UNTIL (env.ctx, afut_future_is_done (outw));
  g_assert_cmpint (afut_future_get_int (outw), ==, AFUT_IO_OUT);
  g_assert_false (afut_future_is_done (in));
  g_assert_true (context_polls_fd (env.ctx, sv[0], &polled, NULL));
  /* An epoll set narrows at the first OUT event nobody waits for. */
  if (AFUT__HAVE_EPOLL)
    g_assert_true (context_polls_fd (env.ctx, sv[0], &polled, NULL));
  g_assert_cmpuint (polled & (G_IO_IN | G_IO_OUT), ==, G_IO_IN);
  g_assert_cmpuint (blocking_iterations_during (env.ctx, 10), <=, 5);
  g_assert_cmpint (write (sv[1], "x", 1), ==, 1);
  ITERATE_UNTIL (env.ctx, afut_future_is_done (in));
  g_assert_cmpint (afut_future_get_int (in), ==, AFUT_IO_IN);

  both = afut_loop_fd_wait (env.loop, sv[1], AFUT_IO_IN | AFUT_IO_OUT);
  ITERATE_UNTIL (env.ctx, afut_future_is_done (both));
  g_assert_cmpint (afut_future_get_int (both), ==, AFUT_IO_OUT);

  afut_future_unref (in);
  afut_future_unref (outw);
  afut_future_unref (both);
  close (sv[0]);
  close (sv[1]);
  env_clear (&env);
}

/* The same fd awaited again inside the same dispatch (a read loop): each
 * new watch fires on its own; switching to OUT and back works; no spin
 * while the last wait has nothing. */
typedef struct
{
  AfutTask task;
  int fd;
  int n;
  int got;
  char c;
} ByteReader;

static void
byte_reader (AfutTask *task)
{
  ByteReader *self = (ByteReader *) task;
  AFUT_BEGIN (task);
  for (self->got = 0; self->got < self->n; self->got++)
    {
      AFUT_AWAIT (task, afut_fd_wait (self->fd, AFUT_IO_IN));
      if (read (self->fd, &self->c, 1) != 1)
        AFUT_THROW (task, afut_error_new_literal (AFUT_ERROR, AFUT_ERROR_FAILED,
                                                  "readable, nothing read"));
      ev ("%c", self->c);
    }
  AFUT_AWAIT (task, afut_fd_wait (self->fd, AFUT_IO_OUT));
  ev ("writable");
  AFUT_AWAIT (task, afut_fd_wait (self->fd, AFUT_IO_IN));
  if (read (self->fd, &self->c, 1) != 1)
    AFUT_THROW (task, afut_error_new_literal (AFUT_ERROR, AFUT_ERROR_FAILED,
                                              "readable, nothing read"));
  ev ("%c", self->c);
  AFUT_END (task);
}

static void
test_fd_rewait_in_same_dispatch (void)
{
  Env env;
  int sv[2];
  AfutFuture *t;

  env_init (&env, AFUT_LOOP_NONE);
  socketpair_nonblocking (sv);
  g_assert_cmpint (write (sv[1], "abcde", 5), ==, 5);
  t = afut_task_new (env.loop, byte_reader, sizeof (ByteReader),
                     &(ByteReader){ .fd = sv[0], .n = 5 }, "bytes", NULL);
  ITERATE_UNTIL (env.ctx, strstr (events->str, "writable") != NULL);
  g_assert_cmpstr (events->str, ==, "a b c d e writable");
  iterate_n (env.ctx, 3);
  g_assert_false (afut_future_is_done (t));
  g_assert_cmpuint (blocking_iterations_during (env.ctx, 10), <=, 5);
  g_assert_cmpint (write (sv[1], "z", 1), ==, 1);
  ITERATE_UNTIL (env.ctx, afut_future_is_done (t));
  assert_state (t, AFUT_FUTURE_DONE);
  g_assert_cmpstr (events->str, ==, "a b c d e writable z");
  afut_future_unref (t);
  close (sv[0]);
  close (sv[1]);
  env_clear (&env);
}

/* Several fds at once: every waiter fires on its own fd's data, in the
 * order the data comes. */
static void
test_fd_many_fds (void)
{
  enum { N = 16 };
  Env env;
  int sv[N][2];
  AfutFuture *t[N];
  int i;

  env_init (&env, AFUT_LOOP_NONE);
  for (i = 0; i < N; i++)
    {
      socketpair_nonblocking (sv[i]);
      t[i] = fd_waiter_new (env.loop, sv[i][0], AFUT_IO_IN);
    }
  iterate_n (env.ctx, 3);
  for (i = N - 1; i >= 0; i--)
    {
      int k;
      g_assert_cmpint (write (sv[i][1], "x", 1), ==, 1);
      ITERATE_UNTIL (env.ctx, afut_future_is_done (t[i]));
      for (k = 0; k < N; k++)
        g_assert_cmpint (afut_future_is_done (t[k]), ==, k >= i);
    }
  for (i = 0; i < N; i++)
    {
      g_assert_cmpint (afut_future_get_int (t[i]), ==, AFUT_IO_IN);
      afut_future_unref (t[i]);
      close (sv[i][0]);
      close (sv[i][1]);
    }
  env_clear (&env);
}

/* How many fds GLib polls for @ctx now. */
static gint
context_n_poll_fds (GMainContext *ctx)
{
  GPollFD fds[1];
  gint max_priority, timeout, n;
  g_assert_true (g_main_context_acquire (ctx));
  g_main_context_prepare (ctx, &max_priority);
  n = g_main_context_query (ctx, G_MAXINT, &timeout, fds, 1);
  g_main_context_check (ctx, max_priority, fds, 0);
  g_main_context_release (ctx);
  return n;
}

/* 3000 idle sockets awaited: GLib polls one fd for all of them (epoll),
 * and each write completes exactly its own wait. */
static void
test_fd_thousands_of_idle_fds (void)
{
  enum { N = 3000 };
  Env env;
  int (*pairs)[2];
  AfutFuture **waits;
  struct rlimit rl;
  gint n_before;
  int i, round, n_done;

  g_assert_cmpint (getrlimit (RLIMIT_NOFILE, &rl), ==, 0);
  if (rl.rlim_cur < 2 * N + 64 && rl.rlim_max >= 2 * N + 64)
    {
      rl.rlim_cur = 2 * N + 64;
      g_assert_cmpint (setrlimit (RLIMIT_NOFILE, &rl), ==, 0);
    }
  if (rl.rlim_cur < 2 * N + 64)
    {
      g_test_skip ("needs 6064 open files");
      return;
    }
  env_init (&env, AFUT_LOOP_NONE);
  n_before = context_n_poll_fds (env.ctx);
  pairs = (int (*)[2]) g_malloc_n (N, sizeof *pairs);
  waits = g_new (AfutFuture *, N);
  for (i = 0; i < N; i++)
    {
      socketpair_nonblocking (pairs[i]);
      waits[i] = afut_loop_fd_wait (env.loop, pairs[i][0], AFUT_IO_IN);
    }
  iterate_n (env.ctx, 3);
  if (AFUT__HAVE_EPOLL)
    g_assert_cmpint (context_n_poll_fds (env.ctx), <=, n_before + 1);
  else
    g_assert_cmpint (context_n_poll_fds (env.ctx), >=, N);
  for (round = 0; round < 5; round++)
    {
      int k = (round * 997 + 13) % N;
      g_assert_cmpint (write (pairs[k][1], "x", 1), ==, 1);
      ITERATE_UNTIL (env.ctx, afut_future_is_done (waits[k]));
      for (i = 0, n_done = 0; i < N; i++)
        n_done += afut_future_is_done (waits[i]);
      g_assert_cmpint (n_done, ==, round + 1);
      g_assert_cmpint (afut_future_get_int (waits[k]), ==, AFUT_IO_IN);
    }
  for (i = 0; i < N; i++)
    {
      afut_future_cancel (waits[i], NULL);
      afut_future_unref (waits[i]);
      close (pairs[i][0]);
      close (pairs[i][1]);
    }
  g_free (waits);
  g_free (pairs);
  env_clear (&env);
}

/* Makes @fd (a closed number) an end of a new socketpair; the other end
 * goes to *@peer. */
static void
socketpair_at (int fd, int *peer)
{
  int sv[2];
  socketpair_nonblocking (sv);
  if (sv[1] == fd)
    {
      /* The ends are alike: take that one. */
      sv[1] = sv[0];
      sv[0] = fd;
    }
  if (sv[0] != fd)
    {
      g_assert_cmpint (dup2 (sv[0], fd), ==, fd);
      close (sv[0]);
    }
  *peer = sv[1];
}

/* An fd awaited, closed, its number given to a new file (kept alive
 * meanwhile through a dup, so that epoll keeps the old entry), awaited
 * again: the new file is polled, the old one's events are not taken for
 * it, and nothing spins; then the same with the new file closed in the
 * batch its wait fired (seen within 50 ms). */
static void
test_fd_reused_number (void)
{
  Env env;
  int sv[2], fd, keep, peer;
  AfutFuture *w;
  char c;

  env_init (&env, AFUT_LOOP_NONE);
  socketpair_nonblocking (sv);
  fd = sv[0];
  w = afut_loop_fd_wait (env.loop, fd, AFUT_IO_IN);
  g_assert_cmpint (write (sv[1], "a", 1), ==, 1);
  ITERATE_UNTIL (env.ctx, afut_future_is_done (w));
  afut_future_unref (w);
  g_assert_cmpint (read (fd, &c, 1), ==, 1);
  iterate_n (env.ctx, 1);
  keep = dup (fd);
  close (fd);
  socketpair_at (fd, &peer);
  w = afut_loop_fd_wait (env.loop, fd, AFUT_IO_IN);
  iterate_n (env.ctx, 1);
  g_assert_cmpint (write (sv[1], "b", 1), ==, 1);
  iterate_n (env.ctx, 3);
  g_assert_false (afut_future_is_done (w));
  g_assert_cmpuint (blocking_iterations_during (env.ctx, 10), <=, 5);
  g_assert_cmpint (write (peer, "c", 1), ==, 1);
  ITERATE_UNTIL (env.ctx, afut_future_is_done (w));
  g_assert_cmpint (afut_future_get_int (w), ==, AFUT_IO_IN);
  g_assert_cmpint (read (fd, &c, 1), ==, 1);
  g_assert_cmpint (c, ==, 'c');
  afut_future_unref (w);

  /* Closed and reopened right after its wait fired. */
  w = afut_loop_fd_wait (env.loop, fd, AFUT_IO_IN);
  g_assert_cmpint (write (peer, "d", 1), ==, 1);
  ITERATE_UNTIL (env.ctx, afut_future_is_done (w));
  afut_future_unref (w);
  close (fd);
  close (peer);
  socketpair_at (fd, &peer);
  w = afut_loop_fd_wait (env.loop, fd, AFUT_IO_IN);
  g_assert_cmpint (write (peer, "e", 1), ==, 1);
  ITERATE_UNTIL (env.ctx, afut_future_is_done (w));
  g_assert_cmpint (afut_future_get_int (w), ==, AFUT_IO_IN);
  afut_future_unref (w);

  close (fd);
  close (peer);
  close (keep);
  close (sv[1]);
  env_clear (&env);
}

/* Regular files and /dev/null (epoll refuses them, poll() calls them
 * ready) and an fd that is not open (EBADF), on the adapter. */
static void
test_fd_files_epoll_refuses (void)
{
  Env env;
  char *path = NULL;
  int file, null, bad;
  AfutFuture *wf, *wn, *wb;

  env_init (&env, AFUT_LOOP_NONE);
  file = g_file_open_tmp ("afut-test-glib-XXXXXX", &path, NULL);
  g_assert_cmpint (file, >=, 0);
  null = open ("/dev/null", O_RDWR | O_CLOEXEC);
  g_assert_cmpint (null, >=, 0);
  bad = dup (null);
  close (bad);
  wf = afut_loop_fd_wait (env.loop, file, AFUT_IO_IN | AFUT_IO_OUT);
  wn = afut_loop_fd_wait (env.loop, null, AFUT_IO_OUT);
  wb = afut_loop_fd_wait (env.loop, bad, AFUT_IO_IN);
  ITERATE_UNTIL (env.ctx, afut_future_is_done (wf) && afut_future_is_done (wn)
                            && afut_future_is_done (wb));
  g_assert_cmpint (afut_future_get_int (wf), ==, AFUT_IO_IN | AFUT_IO_OUT);
  g_assert_cmpint (afut_future_get_int (wn), ==, AFUT_IO_OUT);
  g_assert_true (afut_error_matches (afut_future_get_error (wb),
                                     AFUT_ERRNO_ERROR, EBADF));
  afut_future_unref (wf);
  afut_future_unref (wn);
  afut_future_unref (wb);
  close (file);
  close (null);
  g_unlink (path);
  g_free (path);
  env_clear (&env);
}

/* The stream helpers: echo through a socketpair with read_exactly,
 * write_all and read (some). */
typedef struct
{
  AfutTask task;
  int fd;
  char buf[64];
  size_t len;
} Echo;

static void
echo_server (AfutTask *task)
{
  Echo *self = (Echo *) task;
  AFUT_BEGIN (task);
  AFUT_AWAIT (task, afut_fd_read_exactly (self->fd, self->buf, 11));
  ev ("server got %.11s", self->buf);
  AFUT_AWAIT (task, afut_fd_write_all (self->fd, self->buf, 11));
  AFUT_END (task);
}

static void
echo_client (AfutTask *task)
{
  Echo *self = (Echo *) task;
  AFUT_BEGIN (task);
  AFUT_AWAIT (task, afut_fd_write_all (self->fd, "hello world", 11));
  g_assert_cmpint (afut_future_get_int (afut_task_awaited (task)), ==, 11);
  while (self->len < 11)
    {
      AFUT_AWAIT (task, afut_fd_read (self->fd, self->buf + self->len,
                                      sizeof self->buf - self->len));
      g_assert_cmpint (afut_future_get_int (afut_task_awaited (task)), >, 0);
      self->len += (size_t) afut_future_get_int (afut_task_awaited (task));
    }
  ev ("client got %.*s", (int) self->len, self->buf);
  AFUT_END (task);
}

static void
test_fd_stream_echo (void)
{
  Env env;
  int sv[2];
  AfutFuture *client, *server;

  env_init (&env, AFUT_LOOP_NONE);
  socketpair_nonblocking (sv);
  server = afut_task_new (env.loop, echo_server, sizeof (Echo),
                          &(Echo){ .fd = sv[1] }, "server", NULL);
  client = afut_task_new (env.loop, echo_client, sizeof (Echo),
                          &(Echo){ .fd = sv[0] }, "client", NULL);
  ITERATE_UNTIL (env.ctx, afut_future_is_done (client)
                            && afut_future_is_done (server));
  assert_state (client, AFUT_FUTURE_DONE);
  assert_state (server, AFUT_FUTURE_DONE);
  g_assert_cmpstr (events->str, ==,
                   "server got hello world client got hello world");
  afut_future_unref (client);
  afut_future_unref (server);
  close (sv[0]);
  close (sv[1]);
  env_clear (&env);
}

/* End of stream before read_exactly has all: AFUT_ERROR_INCOMPLETE; a
 * read at end of stream gives 0. */
static void
test_fd_stream_eof_incomplete (void)
{
  Env env;
  int sv[2];
  char buf[8], buf2[8];
  AfutFuture *r, *some;

  env_init (&env, AFUT_LOOP_NONE);
  socketpair_nonblocking (sv);
  afut_loop_push_thread_default (env.loop);
  r = afut_fd_read_exactly (sv[0], buf, 5);
  iterate_n (env.ctx, 3);
  g_assert_false (afut_future_is_done (r));
  g_assert_cmpint (write (sv[1], "abc", 3), ==, 3);
  iterate_n (env.ctx, 3);
  g_assert_false (afut_future_is_done (r));
  close (sv[1]);
  ITERATE_UNTIL (env.ctx, afut_future_is_done (r));
  assert_state (r, AFUT_FUTURE_FAILED);
  assert_gerror (afut_future_get_error (r), AFUT_ERROR, AFUT_ERROR_INCOMPLETE,
                 NULL);
  g_assert_cmpmem (buf, 3, "abc", 3);
  some = afut_fd_read (sv[0], buf2, sizeof buf2);
  ITERATE_UNTIL (env.ctx, afut_future_is_done (some));
  g_assert_cmpint (afut_future_get_int (some), ==, 0);
  afut_loop_pop_thread_default (env.loop);
  afut_future_unref (r);
  afut_future_unref (some);
  close (sv[0]);
  env_clear (&env);
}

/* A write larger than the socket buffer: it waits for writability and
 * completes once the peer reads. */
typedef struct
{
  AfutTask task;
  int fd;
  char *buf;
  size_t size;
  size_t done;
} Drainer;

static void
drainer (AfutTask *task)
{
  Drainer *self = (Drainer *) task;
  int64_t n;
  AFUT_BEGIN (task);
  while (self->done < self->size)
    {
      AFUT_AWAIT (task, afut_fd_read (self->fd, self->buf + self->done,
                                      MIN ((size_t) 65536,
                                           self->size - self->done)));
      n = afut_future_get_int (afut_task_awaited (task));
      if (n == 0)
        AFUT_THROW (task, afut_error_new_literal (AFUT_ERROR,
                                                  AFUT_ERROR_INCOMPLETE,
                                                  "early end"));
      self->done += (size_t) n;
    }
  AFUT_RETURN_INT (task, (int64_t) self->done);
  AFUT_END (task);
}

static void
test_fd_stream_large_write (void)
{
  enum { SIZE = 8 * 1024 * 1024 };
  Env env;
  int sv[2];
  char *data = g_malloc (SIZE), *got = g_malloc0 (SIZE);
  AfutFuture *w, *r;
  size_t i;

  for (i = 0; i < SIZE; i++)
    data[i] = (char) (i * 7 + i / 4096);
  env_init (&env, AFUT_LOOP_NONE);
  socketpair_nonblocking (sv);
  afut_loop_push_thread_default (env.loop);
  w = afut_fd_write_all (sv[0], data, SIZE);
  iterate_n (env.ctx, 10);
  /* The socket buffer is full: the writer waits for the peer. */
  g_assert_false (afut_future_is_done (w));
  r = afut_task_new (env.loop, drainer, sizeof (Drainer),
                     &(Drainer){ .fd = sv[1], .buf = got, .size = SIZE },
                     "drainer", NULL);
  ITERATE_UNTIL (env.ctx, afut_future_is_done (w) && afut_future_is_done (r));
  g_assert_cmpint (afut_future_get_int (w), ==, SIZE);
  g_assert_cmpint (afut_future_get_int (r), ==, SIZE);
  g_assert_true (memcmp (data, got, SIZE) == 0);
  afut_loop_pop_thread_default (env.loop);
  afut_future_unref (w);
  afut_future_unref (r);
  close (sv[0]);
  close (sv[1]);
  env_clear (&env);
  g_free (data);
  g_free (got);
}

/* ==================================================================== */
/* ---- the seed tutorial's ordering on GLib ---- */

static void
seed_task1 (AfutTask *task)
{
  AFUT_BEGIN (task);
  line ("Task 1 started");
  AFUT_AWAIT (task, afut_sleep (0));
  line ("Task 1 after first yield");
  AFUT_AWAIT (task, afut_sleep (0));
  line ("Task 1 after second yield");
  AFUT_END (task);
}

static void
seed_task2 (AfutTask *task)
{
  AFUT_BEGIN (task);
  line ("Task 2 started");
  AFUT_AWAIT (task, afut_sleep (0));
  line ("Task 2 after first yield");
  AFUT_AWAIT (task, afut_sleep (0));
  line ("Task 2 after second yield");
  AFUT_END (task);
}

static void
seed_two_yields_main (AfutTask *task)
{
  AFUT_BEGIN (task);
  AFUT_AWAIT (task, afut_gather (AFUT_CORO (AfutTask, seed_task1),
                                 AFUT_CORO (AfutTask, seed_task2), NULL));
  AFUT_END (task);
}

static const char seed_04_out[] = "Task 1 started\n"
                                  "Task 2 started\n"
                                  "Task 1 after first yield\n"
                                  "Task 2 after first yield\n"
                                  "Task 1 after second yield\n"
                                  "Task 2 after second yield\n";

/* tests/seed/04-two-yields: under afut_run() on GLib, and under
 * g_main_loop_run() with budget 0 and the default budget. */
static void
test_seed_two_yields (void)
{
  int64_t budgets[] = { -1, 0 };
  guint i;

  reset_logs ();
  g_assert_cmpint (afut_run (seed_two_yields_main, sizeof (AfutTask), NULL,
                             "main"),
                   ==, 0);
  g_assert_cmpstr (lines->str, ==, seed_04_out);
  for (i = 0; i < G_N_ELEMENTS (budgets); i++)
    {
      Env env;
      GMainLoop *ml;
      AfutFuture *t;
      env_init (&env, AFUT_LOOP_NONE);
      if (budgets[i] >= 0)
        afut_glib_loop_set_budget (env.loop, budgets[i]);
      ml = g_main_loop_new (env.ctx, FALSE);
      t = afut_task_new (env.loop, seed_two_yields_main, sizeof (AfutTask),
                         NULL, "main", NULL);
      afut_future_add_done_callback (t, quit_on_done, ml);
      main_loop_run_guarded (ml);
      g_assert_cmpstr (lines->str, ==, seed_04_out);
      afut_future_unref (t);
      g_main_loop_unref (ml);
      env_clear (&env);
    }
}

typedef struct
{
  AfutTask task;
  int id;
  double delay;
  char *result;
} Fetch;

static void
fetch_data (AfutTask *task)
{
  Fetch *self = (Fetch *) task;
  AFUT_BEGIN (task);
  line ("Task %d started", self->id);
  AFUT_AWAIT (task, afut_sleep (self->delay));
  line ("Task %d completed", self->id);
  AFUT_RETURN_POINTER (task, g_strdup_printf ("data-%d", self->id), g_free);
  AFUT_END (task);
}

static void
seed_gather_main (AfutTask *task)
{
  AfutFuture *g;
  AFUT_BEGIN (task);
  AFUT_AWAIT (task,
              afut_gather (AFUT_CORO (Fetch, fetch_data, .id = 1, .delay = 2),
                           AFUT_CORO (Fetch, fetch_data, .id = 2, .delay = 1),
                           AFUT_CORO (Fetch, fetch_data, .id = 3, .delay = 3),
                           NULL));
  g = afut_task_awaited (task);
  line ("['%s', '%s', '%s']",
        (char *) afut_future_get_pointer (afut_gather_get_item (g, 0)),
        (char *) afut_future_get_pointer (afut_gather_get_item (g, 1)),
        (char *) afut_future_get_pointer (afut_gather_get_item (g, 2)));
  AFUT_END (task);
}

/* tests/seed/06-gather-results on the virtual clock: 3 s, not 6. */
static void
test_seed_gather_results (void)
{
  Env env;
  AfutFuture *t;
  env_init (&env, AFUT_LOOP_VIRTUAL_CLOCK);
  t = afut_task_new (env.loop, seed_gather_main, sizeof (AfutTask), NULL,
                     "main", NULL);
  g_assert_true (afut_loop_run_until_complete (env.loop, t));
  g_assert_cmpstr (lines->str, ==,
                   "Task 1 started\n"
                   "Task 2 started\n"
                   "Task 3 started\n"
                   "Task 2 completed\n"
                   "Task 1 completed\n"
                   "Task 3 completed\n"
                   "['data-1', 'data-2', 'data-3']\n");
  g_assert_cmpfloat (afut_loop_time (env.loop), ==, 3.0);
  afut_future_unref (t);
  env_clear (&env);
}

/* ==================================================================== */

int
main (int argc, char **argv)
{
  /* --keep-going: a case that fails without aborting (the bug-showing
   * cases run in a subprocess) does not stop the cases after it. */
  char **args = g_new0 (char *, argc + 2);
  int n_args = argc + 1;
  int status;

  args[0] = argv[0];
  args[1] = (char *) "--keep-going";
  memcpy (args + 2, argv + 1, (size_t) (argc - 1) * sizeof (char *));
  g_test_init (&n_args, &args, NULL);
  events = g_string_new (NULL);
  lines = g_string_new (NULL);
  reports = g_ptr_array_new_with_free_func (g_free);

  g_test_add_func ("/glib/loop/fresh-context", test_loop_fresh_context);
  g_test_add_func ("/glib/loop/default-exception-handler-logs",
                   test_loop_default_exception_handler_logs);
  g_test_add_func ("/glib/loop/closed-loop-has-no-source",
                   test_loop_closed_has_no_source);
  g_test_add_func ("/glib/loop/close-destroys-source",
                   test_loop_close_destroys_source);
  g_test_add_func ("/glib/loop/afut-run-closes-held-loop",
                   test_loop_afut_run_closes_held_loop);
  g_test_add_func ("/glib/loop/default-context/main-loop",
                   test_loop_default_context_main_loop);
  g_test_add_func ("/glib/loop/fresh-context/main-loop",
                   test_loop_fresh_context_main_loop);
  g_test_add_func ("/glib/loop/run-until-complete",
                   test_loop_run_until_complete);
  g_test_add_func ("/glib/loop/run-until-complete/from-glib-callback",
                   test_loop_run_until_complete_from_glib_callback);
  g_test_add_func ("/glib/loop/nested-iteration-in-task",
                   test_loop_nested_iteration_in_task);
  g_test_add_func ("/glib/loop/afut-run/thread-default-context",
                   test_loop_afut_run_thread_default);
  g_test_add_func ("/glib/loop/afut-run/default-context",
                   test_loop_afut_run_default_context);
  g_test_add_func ("/glib/loop/afut-run/nested-is-error",
                   test_loop_afut_run_nested_is_error);
  g_test_add_func ("/glib/loop/priority/default-idle-after-default",
                   test_loop_priority_default_idle);
  g_test_add_func ("/glib/loop/priority/high-before-default",
                   test_loop_priority_high);
  g_test_add_func ("/glib/loop/budget/zero-runs-one-batch",
                   test_loop_budget_zero_one_batch);
  g_test_add_func ("/glib/loop/budget/default-few-iterations",
                   test_loop_budget_default_few_iterations);
  g_test_add_func ("/glib/loop/budget/timers-between-batches",
                   test_loop_budget_timers_between_batches);
  g_test_add_func ("/glib/loop/budget/batch-order-as-poll-backend",
                   test_loop_budget_batch_order_as_poll_backend);
  g_test_add_func ("/glib/loop/coexist/budget-zero",
                   test_loop_coexist_budget_zero);
  g_test_add_func ("/glib/loop/coexist/default-budget",
                   test_loop_coexist_default_budget);
  g_test_add_func ("/glib/loop/one-source/many-sleeps-and-fds",
                   test_loop_one_source_for_many_sleeps);
  g_test_add_func ("/glib/loop/one-source/timeout-follows-earliest",
                   test_loop_one_source_timeout_follows_earliest);
  g_test_add_func ("/glib/loop/virtual-clock", test_loop_virtual_clock);
  g_test_add_func ("/glib/loop/foreign-loop-is-reported",
                   test_loop_foreign_loop_is_reported);

  g_test_add_func ("/glib/error/is-gerror", test_error_is_gerror);
  g_test_add_func ("/glib/error/from-gerror", test_error_from_gerror);
  g_test_add_func ("/glib/error/future-propagate",
                   test_error_future_propagate);

  g_test_add_func ("/glib/cancellable/same-object",
                   test_cancellable_same_object);
  g_test_add_func ("/glib/cancellable/of-done-future",
                   test_cancellable_of_done_future);
  g_test_add_func ("/glib/cancellable/future-cancels-it",
                   test_cancellable_future_cancels_it);
  g_test_add_func ("/glib/cancellable/cancel-on-loop-thread",
                   test_cancellable_cancel_on_loop_thread);
  g_test_add_func ("/glib/cancellable/cancel-from-thread",
                   test_cancellable_cancel_from_thread);
  g_test_add_func ("/glib/cancellable/link-already-cancelled",
                   test_cancellable_link_already_cancelled);
  g_test_add_func ("/glib/cancellable/link-one-way",
                   test_cancellable_link_one_way);
  g_test_add_func ("/glib/cancellable/task-awaiting-ends-cancelled",
                   test_cancellable_task_awaiting_ends_cancelled);
  g_test_add_func ("/glib/cancellable/loop-closes-with-links",
                   test_cancellable_loop_closes_with_links);
  g_test_add_func ("/glib/cancellable/cancel-from-thread-while-loop-closes",
                   test_cancellable_cancel_from_thread_while_loop_closes);

  g_test_add_func ("/glib/gio/load-contents", test_gio_load_contents);
  g_test_add_func ("/glib/gio/missing-file", test_gio_missing_file);
  g_test_add_func ("/glib/gio/gather-files", test_gio_gather_files);
  g_test_add_func ("/glib/gio/stream-read", test_gio_stream_read);
  g_test_add_func ("/glib/gio/cancel-task-mid-call",
                   test_gio_cancel_task_mid_call);
  g_test_add_func ("/glib/gio/future-cancel-waits-for-gio",
                   test_gio_future_cancel_waits_for_gio);
  g_test_add_func ("/glib/gio/future-shutdown-waits",
                   test_gio_future_shutdown_waits);
  g_test_add_func ("/glib/gio/cancel-cancellable-mid-call",
                   test_gio_cancel_cancellable_mid_call);

  g_test_add_func ("/glib/gtask/value", test_gtask_value);
  g_test_add_func ("/glib/gtask/error", test_gtask_error);
  g_test_add_func ("/glib/gtask/cancelled", test_gtask_cancelled);
  g_test_add_func ("/glib/gtask/already-cancelled",
                   test_gtask_already_cancelled);
  g_test_add_func ("/glib/gtask/with-source-object",
                   test_gtask_with_source_object);
  g_test_add_func ("/glib/gtask/foreign-task-is-reported",
                   test_gtask_foreign_task_is_reported);

  g_test_add_func ("/glib/to-thread/result-on-loop-thread",
                   test_to_thread_result);
  g_test_add_func ("/glib/to-thread/error", test_to_thread_error);
  g_test_add_func ("/glib/to-thread/cancel", test_to_thread_cancel);
  g_test_add_func ("/glib/to-thread/concurrent", test_to_thread_concurrent);
  g_test_add_func ("/glib/to-thread/shutdown-waits",
                   test_to_thread_shutdown_waits);
  g_test_add_func ("/glib/to-thread/shutdown-cancels",
                   test_to_thread_shutdown_cancels);

  g_test_add_func ("/glib/thread/resolvers-one-loop",
                   test_thread_resolvers_one_loop);
  g_test_add_func ("/glib/thread/wakeup-blocked-iteration",
                   test_thread_wakeup_blocked_iteration);
  g_test_add_func ("/glib/thread/loop-per-thread",
                   test_thread_loop_per_thread);
  g_test_add_func ("/glib/thread/afut-run-per-thread",
                   test_thread_afut_run_per_thread);

  g_test_add_func ("/glib/fd/readable-writable", test_fd_readable_writable);
  g_test_add_func ("/glib/fd/not-open-fails", test_fd_not_open_fails);
  g_test_add_func ("/glib/fd/cancel-removes-watch",
                   test_fd_cancel_removes_watch);
  g_test_add_func ("/glib/fd/in-and-out-on-one-fd",
                   test_fd_in_and_out_on_one_fd);
  g_test_add_func ("/glib/fd/rewait-in-same-dispatch",
                   test_fd_rewait_in_same_dispatch);
  g_test_add_func ("/glib/fd/many-fds", test_fd_many_fds);
  g_test_add_func ("/glib/fd/thousands-of-idle-fds",
                   test_fd_thousands_of_idle_fds);
  g_test_add_func ("/glib/fd/reused-number", test_fd_reused_number);
  g_test_add_func ("/glib/fd/files-epoll-refuses",
                   test_fd_files_epoll_refuses);
  g_test_add_func ("/glib/fd/stream/echo", test_fd_stream_echo);
  g_test_add_func ("/glib/fd/stream/eof-incomplete",
                   test_fd_stream_eof_incomplete);
  g_test_add_func ("/glib/fd/stream/large-write", test_fd_stream_large_write);

  g_test_add_func ("/glib/seed/04-two-yields", test_seed_two_yields);
  g_test_add_func ("/glib/seed/06-gather-results", test_seed_gather_results);

  status = g_test_run ();
  g_string_free (events, TRUE);
  g_string_free (lines, TRUE);
  g_ptr_array_unref (reports);
  g_free (args);
  return status;
}
