/* combinator-harness.h - the harness the 0.2 suites share (test-timeout.c,
 * test-wait.c, test-task-group.c): the event log with virtual times, the
 * expected-log hooks, worker tasks and coroutines that sleep, fail or
 * return, loop helpers and the counted finalize.  Included once, by each
 * suite's only translation unit, after afut.h's implementation and
 * glib.h. */

#include "event-log.h"
#include "expect-log.h"
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

/* ---- harness ---- */

#define TEST_ERROR (afut_quark_from_static_string ("test-error-quark"))

static AfutLoop *the_loop;  /* the test's loop */
static GPtrArray *reports;  /* what the loop's exception handler was told */
static unsigned n_created;  /* workers made by the test */
static unsigned n_finalized;
static unsigned n_destroyed;

/* The test loop's virtual time, in seconds. */
G_GNUC_UNUSED static double
now (void)
{
  return afut_loop_time (the_loop);
}

/* Logs "WHAT@TIME", as the Python references' ev () does. */
static void tev (const char *format, ...) G_GNUC_PRINTF (1, 2);

G_GNUC_UNUSED static void
tev (const char *format, ...)
{
  va_list args;
  char *s;
  va_start (args, format);
  s = g_strdup_vprintf (format, args);
  va_end (args);
  ev ("%s@%g", s, now ());
  g_free (s);
}

G_GNUC_UNUSED static void
assert_events (const char *expected)
{
  g_assert_cmpstr (events->str, ==, expected);
}

G_GNUC_UNUSED static void
record_report (AfutLoop *loop, const AfutExceptionContext *context,
               void *data)
{
  (void) loop;
  (void) data;
  g_ptr_array_add (reports,
                   g_strdup_printf ("%s|%s|%s", context->message,
                                    context->task_name != NULL
                                      ? context->task_name
                                      : "-",
                                    context->error != NULL
                                      ? context->error->message
                                      : "-"));
}

G_GNUC_UNUSED static void
assert_reports (const char *expected)
{
  GString *s = g_string_new (NULL);
  guint i;
  for (i = 0; i < reports->len; i++)
    {
      if (i > 0)
        g_string_append (s, "; ");
      g_string_append (s, g_ptr_array_index (reports, i));
    }
  g_assert_cmpstr (s->str, ==, expected);
  g_string_free (s, TRUE);
  g_ptr_array_set_size (reports, 0);
}

G_GNUC_UNUSED static AfutLoop *
loop_new (void)
{
  AfutLoop *loop = afut_loop_new (AFUT_LOOP_VIRTUAL_CLOCK);
  g_assert_nonnull (loop);
  g_string_truncate (events, 0);
  g_string_truncate (lines, 0);
  g_ptr_array_set_size (reports, 0);
  n_created = n_finalized = n_destroyed = 0;
  afut_loop_set_exception_handler (loop, record_report, NULL);
  the_loop = loop;
  return loop;
}

/* Frees the loop (the test has dropped its references): nothing may have
 * been reported as never retrieved, and every worker was freed. */
G_GNUC_UNUSED static void
loop_free (AfutLoop *loop)
{
  afut_loop_unref (loop);
  the_loop = NULL;
  assert_reports ("");
  g_assert_cmpuint (n_finalized, ==, n_created);
}

/* Runs @loop until @future is done, as afut_loop_run_until_complete ()
 * does, but fails the test instead of blocking forever when nothing is
 * left that could complete it. */
G_GNUC_UNUSED static void
run_until (AfutLoop *loop, AfutFuture *future)
{
  guint n = 0;
  while (afut_future_get_state (future) == AFUT_FUTURE_PENDING)
    {
      int64_t timeout = 0;
      if (!afut_loop_prepare (loop, &timeout) && timeout < 0)
        g_error ("deadlock at %g: the future is pending and nothing is "
                 "left to run",
                 afut_loop_time (loop));
      g_assert_true (afut_loop_iterate (loop, false));
      g_assert_cmpuint (++n, <, 100000);
    }
}

/* Runs what is queued now (done callbacks just scheduled) without moving
 * the clock. */
G_GNUC_UNUSED static void
drain (AfutLoop *loop)
{
  int i;
  for (i = 0; i < 8; i++)
    g_assert_true (afut_loop_iterate (loop, false));
}

/* The loop has nothing left to do: no callback queued and no timer (a
 * virtual clock would jump to a timer's deadline). */
G_GNUC_UNUSED static void
assert_idle (AfutLoop *loop)
{
  int64_t timeout = 0;
  double t;
  drain (loop);
  t = afut_loop_time (loop);
  g_assert_false (afut_loop_prepare (loop, &timeout));
  g_assert_cmpint (timeout, ==, -1);
  g_assert_cmpfloat (afut_loop_time (loop), ==, t);
}

G_GNUC_UNUSED static void
log_cb (void *data)
{
  tev ("%s", (const char *) data);
}

/* A done callback: "LABEL:STATE@TIME". */
G_GNUC_UNUSED static void
log_done (AfutFuture *future, void *data)
{
  tev ("%s:%s", (const char *) data,
       afut_future_state_to_string (afut_future_get_state (future)));
}

G_GNUC_UNUSED static void
cancel_cb (void *data)
{
  tev ("cancel");
  afut_future_cancel ((AfutFuture *) data, NULL);
}

G_GNUC_UNUSED static void
count_destroy (void *data)
{
  n_destroyed++;
  g_free (data);
}

G_GNUC_UNUSED static void
assert_state (AfutFuture *future, AfutFutureState state)
{
  g_assert_cmpstr (afut_future_state_to_string (afut_future_get_state (future)),
                   ==, afut_future_state_to_string (state));
}

G_GNUC_UNUSED static void
assert_error (const AfutError *error, AfutQuark domain, int code,
              const char *message)
{
  g_assert_nonnull (error);
  g_assert_cmpstr (afut_quark_to_string (error->domain), ==,
                   afut_quark_to_string (domain));
  g_assert_cmpint (error->code, ==, code);
  if (message != NULL)
    g_assert_cmpstr (error->message, ==, message);
}

G_GNUC_UNUSED static void
assert_cancelled (AfutFuture *future)
{
  assert_state (future, AFUT_FUTURE_CANCELLED);
  assert_error (afut_future_get_error (future), AFUT_ERROR,
                AFUT_ERROR_CANCELLED, NULL);
}

G_GNUC_UNUSED static void
assert_timeout (AfutFuture *future)
{
  assert_state (future, AFUT_FUTURE_FAILED);
  assert_error (afut_future_get_error (future), AFUT_ERROR, AFUT_ERROR_TIMEOUT,
                NULL);
}

G_GNUC_UNUSED static void
assert_failed (AfutFuture *future, const char *message)
{
  assert_state (future, AFUT_FUTURE_FAILED);
  assert_error (afut_future_get_error (future), TEST_ERROR, 7, message);
}

G_GNUC_UNUSED static void
assert_int (AfutFuture *future, int64_t value)
{
  assert_state (future, AFUT_FUTURE_DONE);
  g_assert_cmpint (afut_future_get_value_type (future), ==, AFUT_VALUE_INT);
  g_assert_cmpint (afut_future_get_int (future), ==, value);
}

/* "none", "cancelled", "timeout", "group", or "error:MESSAGE" */
G_GNUC_UNUSED static const char *
error_name (const AfutError *error)
{
  static char buf[256];
  if (error == NULL)
    return "none";
  if (error->domain == AFUT_ERROR)
    return afut_error_code_to_string (error->code);
  g_snprintf (buf, sizeof buf, "error:%s", error->message);
  return buf;
}

/* "LABEL:got:N", "LABEL:ok" or "LABEL:ERROR" for a done @future, as the
 * prelude's waiter () logs it.  Reading the error retrieves it. */
G_GNUC_UNUSED static void
log_outcome (const char *label, AfutFuture *future)
{
  const AfutError *error = afut_future_get_error (future);
  if (error != NULL)
    tev ("%s:%s", label, error_name (error));
  else if (afut_future_get_value_type (future) == AFUT_VALUE_INT)
    tev ("%s:got:%" PRId64, label, afut_future_get_int (future));
  else
    tev ("%s:ok", label);
}

/* Awaits @future (the reference is the await's), catching, and logs the
 * outcome as the prelude's waiter () does; re-raises if asked. */
typedef struct
{
  AfutTask task;
  const char *label;
  AfutFuture *future;
  bool reraise;
} Waiter;

G_GNUC_UNUSED static void
waiter (AfutTask *task)
{
  Waiter *self = (Waiter *) task;
  AFUT_BEGIN (task);
  AFUT_AWAIT_TRY (task, self->future);
  self->future = NULL;
  if (afut_task_caught (task) != NULL)
    tev ("%s:%s", self->label, error_name (afut_task_caught (task)));
  else
    log_outcome (self->label, afut_task_awaited (task));
  if (self->reraise && afut_task_caught (task) != NULL)
    AFUT_RERAISE (task);
  AFUT_END (task);
}

/* event-log.h's line () is for suites that print lines of output. */
G_GNUC_UNUSED static void (*const print_line) (const char *format, ...) =
  line;

/* ---- a worker: Python's worker () in the prelude ---- */

/* Sleeps @delay, then returns @value or fails with @fail.  On a
 * cancellation it logs, cleans up for @cleanup seconds, then re-raises,
 * swallows it (returning @value) or raises @fail_on_cancel. */
typedef struct
{
  AfutTask task;
  const char *label;
  double delay;
  int64_t value;
  const char *fail;
  double cleanup;
  bool swallow;
  const char *fail_on_cancel;
} Worker;

G_GNUC_UNUSED static void
worker (AfutTask *task)
{
  Worker *self = (Worker *) task;
  AFUT_BEGIN (task);
  tev ("%s:start", self->label);
  AFUT_AWAIT_TRY (task, afut_sleep (self->delay));
  if (afut_task_caught (task) != NULL)
    {
      tev ("%s:cancelled", self->label);
      if (self->cleanup > 0)
        {
          AFUT_AWAIT (task, afut_sleep (self->cleanup));
          tev ("%s:cleaned", self->label);
        }
      if (self->swallow)
        AFUT_RETURN_INT (task, self->value);
      if (self->fail_on_cancel != NULL)
        AFUT_THROW (task, afut_error_new_literal (TEST_ERROR, 7,
                                                  self->fail_on_cancel));
      AFUT_RERAISE (task);
    }
  if (self->fail != NULL)
    {
      tev ("%s:fail", self->label);
      AFUT_THROW (task, afut_error_new_literal (TEST_ERROR, 7, self->fail));
    }
  tev ("%s:end", self->label);
  AFUT_RETURN_INT (task, self->value);
  AFUT_END (task);
}

G_GNUC_UNUSED static void
count_finalize (AfutTask *task)
{
  (void) task;
  n_finalized++;
}

/* A worker task on @loop (%NULL: the running one), started. */
G_GNUC_UNUSED static AfutFuture *
worker_new (AfutLoop *loop, const Worker *init)
{
  n_created++;
  return afut_task_new (loop, worker, sizeof (Worker), init, init->label,
                        count_finalize);
}

/* The same as a coroutine object, not started. */
G_GNUC_UNUSED static AfutFuture *
worker_coro (AfutLoop *loop, const Worker *init)
{
  n_created++;
  return afut_coro_new (loop, worker, sizeof (Worker), init, init->label,
                        count_finalize);
}

/* Sleeps 1 s, then returns a string freed by count_destroy (). */
G_GNUC_UNUSED static void
pointer_task (AfutTask *task)
{
  AFUT_BEGIN (task);
  AFUT_AWAIT (task, afut_sleep (1));
  AFUT_RETURN_POINTER (task, g_strdup ("payload"), count_destroy);
  AFUT_END (task);
}

#define WORKER(...) worker_new (NULL, &(Worker){ __VA_ARGS__ })
#define WORKER_CORO(...) worker_coro (NULL, &(Worker){ __VA_ARGS__ })

/* A task of @Type running @func, with a finalize that is counted. */
#define TASK(loop, Type, func, name, ...)                                     \
  (n_created++,                                                               \
   afut_task_new ((loop), (func), sizeof (Type), &(Type){ __VA_ARGS__ },      \
                  (name), count_finalize))
