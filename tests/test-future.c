/* Tests of afut's futures: states, values, errors, reference counting,
 * done callbacks and the "exception was never retrieved" report.
 *
 * Semantics rules (DESIGN.md) covered here:
 *   1  a future completes once; reading a pending result is an error
 *   2  done callbacks run from the ready queue, in registration order
 *   5  (the part about futures) a cancel message the awaiter can read
 *   9  an error nobody retrieved is reported when the future is freed
 */
#define AFUT_IMPLEMENTATION
#include "afut.h"

#include <glib.h>
#include <math.h>
#include <string.h>

#include "expect-log.h"

/* ---- helpers ---- */

static AfutQuark
test_domain (void)
{
  return afut_quark_from_static_string ("afut-test-error-quark");
}

static AfutError *
test_error (int code, const char *message)
{
  return afut_error_new_literal (test_domain (), code, message);
}

static AfutLoop *
new_loop (void)
{
  AfutLoop *loop = afut_loop_new (AFUT_LOOP_VIRTUAL_CLOCK);
  g_assert_nonnull (loop);
  return loop;
}

static void
iterate_n (AfutLoop *loop, guint n)
{
  while (n-- > 0)
    g_assert_true (afut_loop_iterate (loop, FALSE));
}

/* A trace of what ran, "A B C ", shared by the callbacks below. */
static GString *trace;

static void
trace_reset (void)
{
  if (trace == NULL)
    trace = g_string_new (NULL);
  g_string_truncate (trace, 0);
}

static void
trace_future_cb (AfutFuture *future, void *data)
{
  g_assert_nonnull (future);
  g_string_append_printf (trace, "%s ", (const char *) data);
}

static void
trace_call_cb (void *data)
{
  g_string_append_printf (trace, "%s ", (const char *) data);
}

static void
count_future_cb (AfutFuture *future, void *data)
{
  g_assert_true (afut_future_is_done (future));
  (*(guint *) data)++;
}

static void
count_destroy (void *data)
{
  (*(guint *) data)++;
}

/* What the exception handler was told. */
typedef struct
{
  guint n_reports;
  AfutLoop *loop;
  char *message;
  char *task_name;
  gboolean has_error;
  AfutQuark domain;
  int code;
  char *error_message;
} Reports;

static void
reports_handler (AfutLoop *loop, const AfutExceptionContext *context,
                 void *data)
{
  Reports *r = (Reports *) data;
  r->n_reports++;
  r->loop = loop;
  g_free (r->message);
  g_free (r->task_name);
  g_free (r->error_message);
  r->message = g_strdup (context->message);
  r->task_name = g_strdup (context->task_name);
  r->has_error = context->error != NULL;
  r->domain = context->error ? context->error->domain : 0;
  r->code = context->error ? context->error->code : -1;
  r->error_message
    = context->error ? g_strdup (context->error->message) : NULL;
}

static void
reports_clear (Reports *r)
{
  g_free (r->message);
  g_free (r->task_name);
  g_free (r->error_message);
  memset (r, 0, sizeof *r);
}

static AfutLoop *
new_loop_with_reports (Reports *r)
{
  AfutLoop *loop = new_loop ();
  memset (r, 0, sizeof *r);
  afut_loop_set_exception_handler (loop, reports_handler, r);
  return loop;
}

/* ---- tasks used by the tests ---- */

/* Awaits target (with its own reference) and records what the await
 * gave; with catch_errors the error is caught instead of propagated. */
typedef struct
{
  AfutTask task;
  AfutFuture *target;
  gboolean catch_errors;
  gboolean resumed;
  gboolean caught;
  int caught_code;
  AfutQuark caught_domain;
  char caught_message[64];
} Awaiter;

static void
awaiter_step (AfutTask *task)
{
  Awaiter *self = (Awaiter *) task;
  AFUT_BEGIN (task);
  if (self->catch_errors)
    {
      AFUT_AWAIT_TRY (task, afut_future_ref (self->target));
      if (afut_task_caught (task) != NULL)
        {
          const AfutError *e = afut_task_caught (task);
          self->caught = TRUE;
          self->caught_code = e->code;
          self->caught_domain = e->domain;
          g_strlcpy (self->caught_message, e->message,
                     sizeof self->caught_message);
        }
    }
  else
    {
      AFUT_AWAIT (task, afut_future_ref (self->target));
    }
  self->resumed = TRUE;
  AFUT_END (task);
}

static AfutFuture *
awaiter_new (AfutLoop *loop, AfutFuture *target, gboolean catch_errors,
             const char *name)
{
  Awaiter init = { .target = target, .catch_errors = catch_errors };
  AfutFuture *f = afut_task_new (loop, awaiter_step, sizeof (Awaiter), &init,
                                 name, NULL);
  g_assert_nonnull (f);
  return f;
}

static void
failer_step (AfutTask *task)
{
  AFUT_BEGIN (task);
  AFUT_THROW (task, afut_error_new (test_domain (), 7, "boom %d", 7));
  AFUT_END (task);
}

typedef struct
{
  AfutTask task;
  guint *n_destroyed;
} PointerReturner;

static void
pointer_returner_step (AfutTask *task)
{
  PointerReturner *self = (PointerReturner *) task;
  AFUT_BEGIN (task);
  AFUT_RETURN_POINTER (task, self->n_destroyed, count_destroy);
  AFUT_END (task);
}

/* ---- states ---- */

static void
test_state_new_is_pending (void)
{
  AfutLoop *loop = new_loop ();
  AfutFuture *f = afut_future_new (loop);

  g_assert_nonnull (f);
  g_assert_cmpint (afut_future_get_state (f), ==, AFUT_FUTURE_PENDING);
  g_assert_false (afut_future_is_done (f));
  g_assert_false (afut_future_is_cancelled (f));
  g_assert_true (afut_future_get_loop (f) == loop);

  afut_future_unref (f);
  afut_loop_unref (loop);
}

static void
test_state_to_string (void)
{
  g_assert_cmpstr (afut_future_state_to_string (AFUT_FUTURE_PENDING), ==,
                   "pending");
  g_assert_cmpstr (afut_future_state_to_string (AFUT_FUTURE_DONE), ==,
                   "done");
  g_assert_cmpstr (afut_future_state_to_string (AFUT_FUTURE_FAILED), ==,
                   "failed");
  g_assert_cmpstr (afut_future_state_to_string (AFUT_FUTURE_CANCELLED), ==,
                   "cancelled");
}

static void
new_with_null_loop_cb (void *data)
{
  AfutFuture **out = (AfutFuture **) data;
  *out = afut_future_new (NULL);
}

static void
test_state_new_uses_running_loop (void)
{
  AfutLoop *loop = new_loop ();
  AfutFuture *f = NULL;

  g_assert_true (afut_loop_call_soon (loop, new_with_null_loop_cb, &f));
  iterate_n (loop, 1);
  g_assert_nonnull (f);
  g_assert_true (afut_future_get_loop (f) == loop);
  g_assert_cmpint (afut_future_get_state (f), ==, AFUT_FUTURE_PENDING);

  afut_future_unref (f);
  afut_loop_unref (loop);
}

/* ---- resolving ---- */

static void
test_resolve_none (void)
{
  AfutLoop *loop = new_loop ();
  AfutFuture *f = afut_future_new (loop);

  g_assert_true (afut_future_resolve (f));
  g_assert_cmpint (afut_future_get_state (f), ==, AFUT_FUTURE_DONE);
  g_assert_true (afut_future_is_done (f));
  g_assert_false (afut_future_is_cancelled (f));
  g_assert_cmpint (afut_future_get_value_type (f), ==, AFUT_VALUE_NONE);
  g_assert_null (afut_future_get_error (f));

  afut_future_unref (f);
  afut_loop_unref (loop);
}

static void
test_resolve_pointer (void)
{
  AfutLoop *loop = new_loop ();
  AfutFuture *f = afut_future_new (loop);
  guint n_destroyed = 0;
  char *value = g_strdup ("value");

  g_assert_true (afut_future_resolve_pointer (f, value, g_free));
  g_assert_cmpint (afut_future_get_state (f), ==, AFUT_FUTURE_DONE);
  g_assert_cmpint (afut_future_get_value_type (f), ==, AFUT_VALUE_POINTER);
  g_assert_true (afut_future_get_pointer (f) == value);
  g_assert_cmpstr (afut_future_get_pointer (f), ==, "value");
  g_assert_null (afut_future_get_error (f));
  afut_future_unref (f);

  /* A NULL pointer is a value too. */
  f = afut_future_new (loop);
  g_assert_true (afut_future_resolve_pointer (f, NULL, NULL));
  g_assert_cmpint (afut_future_get_value_type (f), ==, AFUT_VALUE_POINTER);
  g_assert_null (afut_future_get_pointer (f));
  afut_future_unref (f);

  /* Without a destroy notify the pointer is only borrowed. */
  f = afut_future_new (loop);
  g_assert_true (afut_future_resolve_pointer (f, &n_destroyed, NULL));
  g_assert_true (afut_future_get_pointer (f) == &n_destroyed);
  afut_future_unref (f);
  g_assert_cmpuint (n_destroyed, ==, 0);

  afut_loop_unref (loop);
}

static void
test_resolve_int (void)
{
  static const int64_t values[] = { 0, 1, -1, 42, INT64_MAX, INT64_MIN };
  AfutLoop *loop = new_loop ();
  gsize i;

  for (i = 0; i < G_N_ELEMENTS (values); i++)
    {
      AfutFuture *f = afut_future_new (loop);
      g_assert_true (afut_future_resolve_int (f, values[i]));
      g_assert_cmpint (afut_future_get_state (f), ==, AFUT_FUTURE_DONE);
      g_assert_cmpint (afut_future_get_value_type (f), ==, AFUT_VALUE_INT);
      g_assert_cmpint (afut_future_get_int (f), ==, values[i]);
      g_assert_null (afut_future_get_error (f));
      afut_future_unref (f);
    }

  afut_loop_unref (loop);
}

static void
test_resolve_double (void)
{
  static const double values[] = { 0.0, -0.0, 1.5, -2.25, 1e300, -1e-300,
                                   HUGE_VAL, -HUGE_VAL };
  AfutLoop *loop = new_loop ();
  AfutFuture *f;
  gsize i;

  for (i = 0; i < G_N_ELEMENTS (values); i++)
    {
      f = afut_future_new (loop);
      g_assert_true (afut_future_resolve_double (f, values[i]));
      g_assert_cmpint (afut_future_get_value_type (f), ==, AFUT_VALUE_DOUBLE);
      g_assert_cmpfloat (afut_future_get_double (f), ==, values[i]);
      g_assert_true (signbit (afut_future_get_double (f))
                     == signbit (values[i]));
      afut_future_unref (f);
    }

  f = afut_future_new (loop);
  g_assert_true (afut_future_resolve_double (f, NAN));
  g_assert_true (isnan (afut_future_get_double (f)));
  afut_future_unref (f);

  afut_loop_unref (loop);
}

/* ---- failing and cancelling ---- */

static void
test_fail_sets_error (void)
{
  Reports reports;
  AfutLoop *loop = new_loop_with_reports (&reports);
  AfutFuture *f = afut_future_new (loop);
  AfutError *error = test_error (3, "it broke");
  const AfutError *got;

  g_assert_true (afut_future_fail (f, error));
  g_assert_cmpint (afut_future_get_state (f), ==, AFUT_FUTURE_FAILED);
  g_assert_true (afut_future_is_done (f));
  g_assert_false (afut_future_is_cancelled (f));
  got = afut_future_get_error (f);
  g_assert_nonnull (got);
  /* (transfer full): the future keeps the very error it was given. */
  g_assert_true (got == error);
  g_assert_true (afut_error_matches (got, test_domain (), 3));
  g_assert_cmpstr (got->message, ==, "it broke");
  g_assert_false (afut_error_is_cancelled (got));

  afut_future_unref (f);
  g_assert_cmpuint (reports.n_reports, ==, 0);
  afut_loop_unref (loop);
  reports_clear (&reports);
}

static void
test_fail_cancelled_error_makes_cancelled (void)
{
  Reports reports;
  AfutLoop *loop = new_loop_with_reports (&reports);
  AfutFuture *f = afut_future_new (loop);
  const AfutError *got;

  g_assert_true (afut_future_fail (
    f, afut_error_new_literal (AFUT_ERROR, AFUT_ERROR_CANCELLED, "via fail")));
  g_assert_cmpint (afut_future_get_state (f), ==, AFUT_FUTURE_CANCELLED);
  g_assert_true (afut_future_is_cancelled (f));
  g_assert_true (afut_future_is_done (f));
  got = afut_future_get_error (f);
  g_assert_true (afut_error_is_cancelled (got));
  g_assert_cmpstr (got->message, ==, "via fail");

  afut_future_unref (f);

  /* The same code in another domain is an ordinary failure. */
  f = afut_future_new (loop);
  g_assert_true (afut_future_fail (f, test_error (AFUT_ERROR_CANCELLED,
                                                  "lookalike")));
  g_assert_cmpint (afut_future_get_state (f), ==, AFUT_FUTURE_FAILED);
  g_assert_false (afut_future_is_cancelled (f));
  g_assert_cmpstr (afut_future_get_error (f)->message, ==, "lookalike");
  afut_future_unref (f);

  afut_loop_unref (loop);
  g_assert_cmpuint (reports.n_reports, ==, 0);
  reports_clear (&reports);
}

static void
test_cancel_pending_with_message (void)
{
  AfutLoop *loop = new_loop ();
  AfutFuture *f = afut_future_new (loop);
  const AfutError *got;

  g_assert_true (afut_future_cancel (f, "stop now"));
  g_assert_cmpint (afut_future_get_state (f), ==, AFUT_FUTURE_CANCELLED);
  g_assert_true (afut_future_is_cancelled (f));
  g_assert_true (afut_future_is_done (f));
  got = afut_future_get_error (f);
  g_assert_nonnull (got);
  g_assert_true (afut_error_matches (got, AFUT_ERROR, AFUT_ERROR_CANCELLED));
  g_assert_true (afut_error_is_cancelled (got));
  g_assert_cmpstr (got->message, ==, "stop now");

  afut_future_unref (f);
  afut_loop_unref (loop);
}

static void
test_cancel_without_message (void)
{
  AfutLoop *loop = new_loop ();
  AfutFuture *f = afut_future_new (loop);
  const AfutError *got;

  g_assert_true (afut_future_cancel (f, NULL));
  got = afut_future_get_error (f);
  g_assert_true (afut_error_is_cancelled (got));
  g_assert_nonnull (got->message);
  g_assert_cmpstr (got->message, ==, "");

  afut_future_unref (f);
  afut_loop_unref (loop);
}

static void
test_cancel_done_returns_false (void)
{
  AfutLoop *loop = new_loop ();
  AfutFuture *done = afut_future_new (loop);
  AfutFuture *failed = afut_future_new (loop);
  AfutFuture *cancelled = afut_future_new (loop);

  g_assert_true (afut_future_resolve_int (done, 5));
  g_assert_true (afut_future_fail (failed, test_error (1, "failed")));
  g_assert_true (afut_future_cancel (cancelled, "first"));

  /* Not an error (no critical): it just reports that nothing happened. */
  g_assert_false (afut_future_cancel (done, "late"));
  g_assert_false (afut_future_cancel (failed, "late"));
  g_assert_false (afut_future_cancel (cancelled, "second"));

  g_assert_cmpint (afut_future_get_state (done), ==, AFUT_FUTURE_DONE);
  g_assert_cmpint (afut_future_get_int (done), ==, 5);
  g_assert_cmpint (afut_future_get_state (failed), ==, AFUT_FUTURE_FAILED);
  g_assert_cmpstr (afut_future_get_error (failed)->message, ==, "failed");
  g_assert_cmpint (afut_future_get_state (cancelled), ==,
                   AFUT_FUTURE_CANCELLED);
  g_assert_cmpstr (afut_future_get_error (cancelled)->message, ==, "first");

  afut_future_unref (done);
  afut_future_unref (failed);
  afut_future_unref (cancelled);
  afut_loop_unref (loop);
}

static void
test_cancel_sleep_message (void)
{
  AfutLoop *loop = new_loop ();
  AfutFuture *sleep = afut_loop_sleep (loop, 10.0);
  const AfutError *got;

  g_assert_nonnull (sleep);
  g_assert_true (afut_future_cancel (sleep, "no more sleeping"));
  g_assert_true (afut_future_is_cancelled (sleep));
  got = afut_future_get_error (sleep);
  g_assert_true (afut_error_is_cancelled (got));
  g_assert_cmpstr (got->message, ==, "no more sleeping");

  afut_future_unref (sleep);
  afut_loop_unref (loop);
}

/* Rule 5, seen from the future: a task awaiting a future is cancelled with
 * a message; the awaited future and the task both carry it. */
static void
test_cancel_message_reaches_awaiting_task (void)
{
  AfutLoop *loop = new_loop ();
  AfutFuture *target = afut_future_new (loop);
  AfutFuture *catcher = awaiter_new (loop, target, TRUE, "catcher");
  AfutFuture *target2 = afut_future_new (loop);
  AfutFuture *plain = awaiter_new (loop, target2, FALSE, "plain");
  Awaiter *c = (Awaiter *) catcher;
  Awaiter *p = (Awaiter *) plain;

  iterate_n (loop, 1); /* both now wait on their targets */
  g_assert_false (afut_future_is_done (catcher));
  g_assert_true (afut_future_cancel (catcher, "go home"));
  g_assert_true (afut_future_cancel (plain, "you too"));
  /* The awaited futures are cancelled at once, with the message. */
  g_assert_true (afut_future_is_cancelled (target));
  g_assert_cmpstr (afut_future_get_error (target)->message, ==, "go home");
  g_assert_true (afut_future_is_cancelled (target2));
  g_assert_cmpstr (afut_future_get_error (target2)->message, ==, "you too");

  g_assert_true (afut_loop_run_until_complete (loop, catcher));
  g_assert_true (afut_loop_run_until_complete (loop, plain));

  /* The catcher read the message at its await and swallowed it. */
  g_assert_true (c->caught);
  g_assert_cmpint (c->caught_domain, ==, AFUT_ERROR);
  g_assert_cmpint (c->caught_code, ==, AFUT_ERROR_CANCELLED);
  g_assert_cmpstr (c->caught_message, ==, "go home");
  g_assert_true (c->resumed);
  g_assert_cmpint (afut_future_get_state (catcher), ==, AFUT_FUTURE_DONE);

  /* The other one ends cancelled, its error carrying the message. */
  g_assert_false (p->resumed);
  g_assert_cmpint (afut_future_get_state (plain), ==, AFUT_FUTURE_CANCELLED);
  g_assert_true (afut_error_is_cancelled (afut_future_get_error (plain)));
  g_assert_cmpstr (afut_future_get_error (plain)->message, ==, "you too");

  afut_future_unref (catcher);
  afut_future_unref (plain);
  afut_future_unref (target);
  afut_future_unref (target2);
  afut_loop_unref (loop);
}

/* ---- rule 1: a future completes once ---- */

static void
test_complete_once_after_resolve (void)
{
  AfutLoop *loop = new_loop ();
  AfutFuture *f = afut_future_new (loop);
  guint n_called = 0, n_destroyed = 0;

  afut_future_add_done_callback (f, count_future_cb, &n_called);
  g_assert_true (afut_future_resolve_int (f, 1));

  expect_log_begin (AFUT_LOG_CRITICAL, "invalid state");
  g_assert_false (afut_future_resolve (f));
  g_assert_false (afut_future_resolve_int (f, 2));
  g_assert_false (afut_future_resolve_double (f, 3.0));
  /* A refused pointer is destroyed at once, exactly once. */
  g_assert_false (afut_future_resolve_pointer (f, &n_destroyed,
                                               count_destroy));
  g_assert_cmpuint (n_destroyed, ==, 1);
  /* A refused error is freed (valgrind checks). */
  g_assert_false (afut_future_fail (f, test_error (1, "too late")));
  g_assert_cmpuint (expect_log_end (), ==, 5);
  g_assert_false (afut_future_cancel (f, "too late"));

  g_assert_cmpint (afut_future_get_state (f), ==, AFUT_FUTURE_DONE);
  g_assert_cmpint (afut_future_get_value_type (f), ==, AFUT_VALUE_INT);
  g_assert_cmpint (afut_future_get_int (f), ==, 1);

  iterate_n (loop, 3);
  g_assert_cmpuint (n_called, ==, 1);

  afut_future_unref (f);
  g_assert_cmpuint (n_destroyed, ==, 1);
  afut_loop_unref (loop);
}

static void
test_complete_once_after_fail (void)
{
  AfutLoop *loop = new_loop ();
  AfutFuture *f = afut_future_new (loop);
  guint n_called = 0, n_destroyed = 0;

  afut_future_add_done_callback (f, count_future_cb, &n_called);
  g_assert_true (afut_future_fail (f, test_error (9, "first error")));

  expect_log_begin (AFUT_LOG_CRITICAL, "invalid state");
  g_assert_false (afut_future_resolve (f));
  g_assert_false (afut_future_resolve_int (f, 2));
  g_assert_false (afut_future_resolve_pointer (f, &n_destroyed,
                                               count_destroy));
  g_assert_false (afut_future_fail (f, test_error (10, "second error")));
  g_assert_cmpuint (expect_log_end (), ==, 4);
  g_assert_false (afut_future_cancel (f, NULL));
  g_assert_cmpuint (n_destroyed, ==, 1);

  g_assert_cmpint (afut_future_get_state (f), ==, AFUT_FUTURE_FAILED);
  g_assert_true (afut_error_matches (afut_future_get_error (f), test_domain (),
                                     9));
  g_assert_cmpstr (afut_future_get_error (f)->message, ==, "first error");

  iterate_n (loop, 3);
  g_assert_cmpuint (n_called, ==, 1);

  afut_future_unref (f);
  afut_loop_unref (loop);
}

static void
test_complete_once_after_cancel (void)
{
  AfutLoop *loop = new_loop ();
  AfutFuture *f = afut_future_new (loop);
  guint n_called = 0;

  afut_future_add_done_callback (f, count_future_cb, &n_called);
  g_assert_true (afut_future_cancel (f, "cancelled first"));

  expect_log_begin (AFUT_LOG_CRITICAL, "invalid state");
  g_assert_false (afut_future_resolve (f));
  g_assert_false (afut_future_resolve_double (f, 1.0));
  g_assert_false (afut_future_fail (f, test_error (1, "then failed")));
  g_assert_false (afut_future_fail (
    f, afut_error_new_literal (AFUT_ERROR, AFUT_ERROR_CANCELLED, "again")));
  g_assert_cmpuint (expect_log_end (), ==, 4);
  g_assert_false (afut_future_cancel (f, "cancelled twice"));

  g_assert_cmpint (afut_future_get_state (f), ==, AFUT_FUTURE_CANCELLED);
  g_assert_cmpstr (afut_future_get_error (f)->message, ==, "cancelled first");

  iterate_n (loop, 3);
  g_assert_cmpuint (n_called, ==, 1);

  afut_future_unref (f);
  afut_loop_unref (loop);
}

/* Reading a pending future's result is a reported error with a safe
 * return value, and changes nothing. */
static void
test_getters_pending_result_is_reported (void)
{
  AfutLoop *loop = new_loop ();
  AfutFuture *f = afut_future_new (loop);

  expect_log_begin (AFUT_LOG_CRITICAL, "pending");
  g_assert_null (afut_future_get_pointer (f));
  g_assert_cmpint (afut_future_get_int (f), ==, 0);
  g_assert_cmpfloat (afut_future_get_double (f), ==, 0.0);
  g_assert_null (afut_future_get_error (f));
  g_assert_cmpuint (expect_log_end (), ==, 4);

  g_assert_cmpint (afut_future_get_state (f), ==, AFUT_FUTURE_PENDING);
  g_assert_true (afut_future_resolve_int (f, 8));
  g_assert_cmpint (afut_future_get_int (f), ==, 8);

  afut_future_unref (f);
  afut_loop_unref (loop);
}

static void
test_getters_error_null_when_done (void)
{
  AfutLoop *loop = new_loop ();
  AfutFuture *f = afut_future_new (loop);

  g_assert_true (afut_future_resolve_double (f, 0.5));
  g_assert_null (afut_future_get_error (f));
  g_assert_cmpfloat (afut_future_get_double (f), ==, 0.5);

  afut_future_unref (f);
  afut_loop_unref (loop);
}

/* ---- reference counting and value destruction ---- */

static void
test_refcount_ref_keeps_alive (void)
{
  AfutLoop *loop = new_loop ();
  AfutFuture *f = afut_future_new (loop);
  guint n_destroyed = 0;

  g_assert_true (afut_future_ref (f) == f);
  g_assert_true (afut_future_ref (f) == f);
  g_assert_true (afut_future_resolve_pointer (f, &n_destroyed, count_destroy));

  afut_future_unref (f);
  g_assert_cmpuint (n_destroyed, ==, 0);
  g_assert_true (afut_future_get_pointer (f) == &n_destroyed);
  afut_future_unref (f);
  g_assert_cmpuint (n_destroyed, ==, 0);
  g_assert_cmpint (afut_future_get_state (f), ==, AFUT_FUTURE_DONE);
  afut_future_unref (f);
  g_assert_cmpuint (n_destroyed, ==, 1);

  afut_loop_unref (loop);
  g_assert_cmpuint (n_destroyed, ==, 1);
}

static void
test_refcount_unref_null (void)
{
  /* Documented as ignored: no critical, no crash. */
  afut_future_unref (NULL);
  afut_error_free (NULL);
}

static void
test_destroy_called_once (void)
{
  AfutLoop *loop = new_loop ();
  AfutFuture *f = afut_future_new (loop);
  guint n_destroyed = 0, n_called = 0;

  /* Not at resolve, not when callbacks run, only when the last reference
   * goes. */
  afut_future_add_done_callback (f, count_future_cb, &n_called);
  g_assert_true (afut_future_resolve_pointer (f, &n_destroyed, count_destroy));
  g_assert_cmpuint (n_destroyed, ==, 0);
  iterate_n (loop, 2);
  g_assert_cmpuint (n_called, ==, 1);
  g_assert_cmpuint (n_destroyed, ==, 0);

  afut_future_unref (f);
  g_assert_cmpuint (n_destroyed, ==, 1);
  iterate_n (loop, 2);
  afut_loop_unref (loop);
  g_assert_cmpuint (n_destroyed, ==, 1);
}

static void
test_destroy_after_queued_callbacks (void)
{
  AfutLoop *loop = new_loop ();
  AfutFuture *f = afut_future_new (loop);
  guint n_destroyed = 0, n_called = 0;

  /* The caller drops its reference before the callbacks ran: the queued
   * dispatch keeps the future (and its value) alive until they did. */
  afut_future_add_done_callback (f, count_future_cb, &n_called);
  g_assert_true (afut_future_resolve_pointer (f, &n_destroyed, count_destroy));
  afut_future_unref (f);
  g_assert_cmpuint (n_destroyed, ==, 0);
  iterate_n (loop, 1);
  g_assert_cmpuint (n_called, ==, 1);
  g_assert_cmpuint (n_destroyed, ==, 1);

  afut_loop_unref (loop);
  g_assert_cmpuint (n_destroyed, ==, 1);
}

static void
test_destroy_pending_future_freed (void)
{
  AfutLoop *loop = new_loop ();
  AfutFuture *f = afut_future_new (loop);
  guint n_called = 0;

  /* Freed pending, with a callback registered: the callback never runs
   * and nothing leaks. */
  afut_future_add_done_callback (f, count_future_cb, &n_called);
  afut_future_add_done_callback (f, count_future_cb, &n_called);
  afut_future_unref (f);
  iterate_n (loop, 2);
  g_assert_cmpuint (n_called, ==, 0);

  afut_loop_unref (loop);
}

static void
test_destroy_failed_and_cancelled_hold_no_value (void)
{
  AfutLoop *loop = new_loop ();
  AfutFuture *failed = afut_future_new (loop);
  AfutFuture *cancelled = afut_future_new (loop);
  guint n_destroyed = 0;

  g_assert_true (afut_future_fail (failed, test_error (1, "x")));
  g_assert_true (afut_future_cancel (cancelled, NULL));
  g_assert_nonnull (afut_future_get_error (failed));
  g_assert_nonnull (afut_future_get_error (cancelled));

  /* A value offered later is refused and destroyed once, not kept. */
  expect_log_begin (AFUT_LOG_CRITICAL, "invalid state");
  g_assert_false (afut_future_resolve_pointer (failed, &n_destroyed,
                                               count_destroy));
  g_assert_false (afut_future_resolve_pointer (cancelled, &n_destroyed,
                                               count_destroy));
  g_assert_cmpuint (expect_log_end (), ==, 2);
  g_assert_cmpuint (n_destroyed, ==, 2);

  afut_future_unref (failed);
  afut_future_unref (cancelled);
  g_assert_cmpuint (n_destroyed, ==, 2);
  afut_loop_unref (loop);
}

static void
test_destroy_task_return_pointer (void)
{
  AfutLoop *loop = new_loop ();
  guint n_destroyed = 0;
  PointerReturner init = { .n_destroyed = &n_destroyed };
  AfutFuture *task = afut_task_new (loop, pointer_returner_step,
                                    sizeof (PointerReturner), &init,
                                    "pointer-returner", NULL);
  guint n_called = 0;

  afut_future_add_done_callback (task, count_future_cb, &n_called);
  g_assert_true (afut_loop_run_until_complete (loop, task));
  g_assert_cmpint (afut_future_get_state (task), ==, AFUT_FUTURE_DONE);
  g_assert_cmpint (afut_future_get_value_type (task), ==, AFUT_VALUE_POINTER);
  g_assert_true (afut_future_get_pointer (task) == &n_destroyed);
  iterate_n (loop, 2);
  g_assert_cmpuint (n_called, ==, 1);
  g_assert_cmpuint (n_destroyed, ==, 0);

  afut_future_unref (task);
  g_assert_cmpuint (n_destroyed, ==, 1);
  afut_loop_unref (loop);
  g_assert_cmpuint (n_destroyed, ==, 1);
}

/* ---- rule 2: done callbacks ---- */

typedef enum
{
  COMPLETE_RESOLVE,
  COMPLETE_RESOLVE_POINTER,
  COMPLETE_RESOLVE_INT,
  COMPLETE_RESOLVE_DOUBLE,
  COMPLETE_FAIL,
  COMPLETE_CANCEL,
  N_COMPLETIONS
} Completion;

static void
complete (AfutFuture *f, Completion how)
{
  switch (how)
    {
    case COMPLETE_RESOLVE:
      g_assert_true (afut_future_resolve (f));
      break;
    case COMPLETE_RESOLVE_POINTER:
      g_assert_true (afut_future_resolve_pointer (f, g_strdup ("p"), g_free));
      break;
    case COMPLETE_RESOLVE_INT:
      g_assert_true (afut_future_resolve_int (f, 1));
      break;
    case COMPLETE_RESOLVE_DOUBLE:
      g_assert_true (afut_future_resolve_double (f, 1.0));
      break;
    case COMPLETE_FAIL:
      g_assert_true (afut_future_fail (f, test_error (1, "failed")));
      break;
    case COMPLETE_CANCEL:
    default:
      g_assert_true (afut_future_cancel (f, "cancelled"));
      break;
    }
}

static void
test_callbacks_not_run_inside_completion (void)
{
  AfutLoop *loop = new_loop ();
  int how;

  for (how = 0; how < N_COMPLETIONS; how++)
    {
      AfutFuture *f = afut_future_new (loop);
      guint n_called = 0;

      afut_future_add_done_callback (f, count_future_cb, &n_called);
      complete (f, (Completion) how);
      g_assert_cmpuint (n_called, ==, 0);
      iterate_n (loop, 1);
      g_assert_cmpuint (n_called, ==, 1);
      iterate_n (loop, 2);
      g_assert_cmpuint (n_called, ==, 1);

      if (how == COMPLETE_FAIL)
        g_assert_nonnull (afut_future_get_error (f));
      afut_future_unref (f);
    }

  afut_loop_unref (loop);
}

static void
test_callbacks_registration_order (void)
{
  AfutLoop *loop = new_loop ();
  AfutFuture *f = afut_future_new (loop);

  trace_reset ();
  afut_future_add_done_callback (f, trace_future_cb, "A");
  afut_future_add_done_callback (f, trace_future_cb, "B");
  afut_future_add_done_callback (f, trace_future_cb, "C");
  g_assert_true (afut_future_resolve (f));
  g_assert_cmpstr (trace->str, ==, "");
  iterate_n (loop, 1);
  g_assert_cmpstr (trace->str, ==, "A B C ");

  afut_future_unref (f);
  afut_loop_unref (loop);
}

static void
test_callbacks_many_keep_order (void)
{
  static const char *const names[] = { "0", "1", "2", "3", "4", "5", "6",
                                       "7", "8", "9", "10", "11", "12", "13",
                                       "14", "15", "16", "17" };
  AfutLoop *loop = new_loop ();
  AfutFuture *f = afut_future_new (loop);
  GString *expected = g_string_new (NULL);
  gsize i;

  trace_reset ();
  for (i = 0; i < G_N_ELEMENTS (names); i++)
    {
      afut_future_add_done_callback (f, trace_future_cb, (void *) names[i]);
      g_string_append_printf (expected, "%s ", names[i]);
    }
  g_assert_true (afut_future_cancel (f, NULL));
  iterate_n (loop, 1);
  g_assert_cmpstr (trace->str, ==, expected->str);

  g_string_free (expected, TRUE);
  afut_future_unref (f);
  afut_loop_unref (loop);
}

typedef struct
{
  AfutFuture *expected_future;
  AfutLoop *expected_loop;
  gboolean saw_done;
  gboolean saw_running_loop;
  guint n_called;
} CallbackCheck;

static void
check_future_cb (AfutFuture *future, void *data)
{
  CallbackCheck *check = (CallbackCheck *) data;
  check->n_called++;
  g_assert_true (future == check->expected_future);
  check->saw_done = afut_future_is_done (future)
                    && afut_future_get_int (future) == 99;
  check->saw_running_loop = afut_loop_get_running () == check->expected_loop;
}

static void
test_callbacks_receive_future_and_data (void)
{
  AfutLoop *loop = new_loop ();
  AfutFuture *f = afut_future_new (loop);
  CallbackCheck check = { .expected_future = f, .expected_loop = loop };

  afut_future_add_done_callback (f, check_future_cb, &check);
  g_assert_true (afut_future_resolve_int (f, 99));
  iterate_n (loop, 1);
  g_assert_cmpuint (check.n_called, ==, 1);
  g_assert_true (check.saw_done);
  g_assert_true (check.saw_running_loop);

  afut_future_unref (f);
  afut_loop_unref (loop);
}

static void
test_callbacks_follow_completion_order (void)
{
  AfutLoop *loop = new_loop ();
  AfutFuture *f1 = afut_future_new (loop);
  AfutFuture *f2 = afut_future_new (loop);

  trace_reset ();
  afut_future_add_done_callback (f1, trace_future_cb, "f1a");
  afut_future_add_done_callback (f2, trace_future_cb, "f2a");
  afut_future_add_done_callback (f1, trace_future_cb, "f1b");
  afut_future_add_done_callback (f2, trace_future_cb, "f2b");
  g_assert_true (afut_future_resolve (f2));
  g_assert_true (afut_loop_call_soon (loop, trace_call_cb, "soon"));
  g_assert_true (afut_future_resolve (f1));
  iterate_n (loop, 1);
  g_assert_cmpstr (trace->str, ==, "f2a f2b soon f1a f1b ");

  afut_future_unref (f1);
  afut_future_unref (f2);
  afut_loop_unref (loop);
}

static void
test_callbacks_added_to_done_future_is_queued (void)
{
  AfutLoop *loop = new_loop ();
  int how;

  for (how = 0; how < N_COMPLETIONS; how++)
    {
      AfutFuture *f = afut_future_new (loop);
      guint n_called = 0;

      complete (f, (Completion) how);
      iterate_n (loop, 1);
      afut_future_add_done_callback (f, count_future_cb, &n_called);
      /* Queued, not run inside the add. */
      g_assert_cmpuint (n_called, ==, 0);
      iterate_n (loop, 1);
      g_assert_cmpuint (n_called, ==, 1);
      iterate_n (loop, 2);
      g_assert_cmpuint (n_called, ==, 1);

      if (how == COMPLETE_FAIL)
        g_assert_nonnull (afut_future_get_error (f));
      afut_future_unref (f);
    }

  afut_loop_unref (loop);
}

static void
test_callbacks_added_to_done_future_runs_after_earlier_entries (void)
{
  AfutLoop *loop = new_loop ();
  AfutFuture *f = afut_future_new (loop);

  trace_reset ();
  afut_future_add_done_callback (f, trace_future_cb, "A");
  g_assert_true (afut_future_resolve (f)); /* queues A */
  g_assert_true (afut_loop_call_soon (loop, trace_call_cb, "X"));
  afut_future_add_done_callback (f, trace_future_cb, "B"); /* late */
  g_assert_true (afut_loop_call_soon (loop, trace_call_cb, "Y"));
  afut_future_add_done_callback (f, trace_future_cb, "C"); /* late */
  iterate_n (loop, 1);
  g_assert_cmpstr (trace->str, ==, "A X B Y C ");

  afut_future_unref (f);
  afut_loop_unref (loop);
}

static void
add_b_cb (AfutFuture *future, void *data)
{
  (void) data;
  g_string_append (trace, "A ");
  afut_future_add_done_callback (future, trace_future_cb, "B");
}

static void
test_callbacks_added_during_dispatch_run_next_iteration (void)
{
  AfutLoop *loop = new_loop ();
  AfutFuture *f = afut_future_new (loop);

  trace_reset ();
  afut_future_add_done_callback (f, add_b_cb, NULL);
  afut_future_add_done_callback (f, trace_future_cb, "A2");
  g_assert_true (afut_future_resolve (f));
  iterate_n (loop, 1);
  /* B was added to a done future while A's batch ran: it is queued and
   * runs in the next iteration, after the callbacks already scheduled. */
  g_assert_cmpstr (trace->str, ==, "A A2 ");
  iterate_n (loop, 1);
  g_assert_cmpstr (trace->str, ==, "A A2 B ");

  afut_future_unref (f);
  afut_loop_unref (loop);
}

static void
resolve_other_cb (AfutFuture *future, void *data)
{
  (void) future;
  g_string_append (trace, "first ");
  g_assert_true (afut_future_resolve ((AfutFuture *) data));
}

static void
test_callbacks_completion_in_batch_runs_next_iteration (void)
{
  AfutLoop *loop = new_loop ();
  AfutFuture *f1 = afut_future_new (loop);
  AfutFuture *f2 = afut_future_new (loop);

  trace_reset ();
  afut_future_add_done_callback (f1, resolve_other_cb, f2);
  afut_future_add_done_callback (f2, trace_future_cb, "second");
  g_assert_true (afut_future_resolve (f1));
  iterate_n (loop, 1);
  g_assert_cmpstr (trace->str, ==, "first ");
  g_assert_true (afut_future_is_done (f2));
  iterate_n (loop, 1);
  g_assert_cmpstr (trace->str, ==, "first second ");

  afut_future_unref (f1);
  afut_future_unref (f2);
  afut_loop_unref (loop);
}

static void
drop_ref_cb (AfutFuture *future, void *data)
{
  AfutFuture **ref = (AfutFuture **) data;
  g_assert_true (*ref == future);
  afut_future_unref (*ref);
  *ref = NULL;
  g_string_append (trace, "dropped ");
}

static void
read_value_cb (AfutFuture *future, void *data)
{
  guint *n_destroyed = (guint *) data;
  /* The dispatch holds the future: still alive, value not destroyed. */
  g_assert_cmpuint (*n_destroyed, ==, 0);
  g_assert_true (afut_future_get_pointer (future) == n_destroyed);
  g_string_append (trace, "read ");
}

static void
test_callbacks_dropping_last_ref_in_callback (void)
{
  AfutLoop *loop = new_loop ();
  AfutFuture *f = afut_future_new (loop);
  AfutFuture *ref = f;
  guint n_destroyed = 0;

  trace_reset ();
  afut_future_add_done_callback (f, drop_ref_cb, &ref);
  afut_future_add_done_callback (f, read_value_cb, &n_destroyed);
  g_assert_true (afut_future_resolve_pointer (f, &n_destroyed, count_destroy));
  iterate_n (loop, 1);
  g_assert_cmpstr (trace->str, ==, "dropped read ");
  g_assert_null (ref);
  g_assert_cmpuint (n_destroyed, ==, 1);

  afut_loop_unref (loop);
}

static void
test_callbacks_remove_single (void)
{
  AfutLoop *loop = new_loop ();
  AfutFuture *f = afut_future_new (loop);
  guint n_called = 0;

  afut_future_add_done_callback (f, count_future_cb, &n_called);
  g_assert_cmpuint (afut_future_remove_done_callback (f, count_future_cb,
                                                      &n_called),
                    ==, 1);
  g_assert_cmpuint (afut_future_remove_done_callback (f, count_future_cb,
                                                      &n_called),
                    ==, 0);
  g_assert_true (afut_future_resolve (f));
  iterate_n (loop, 2);
  g_assert_cmpuint (n_called, ==, 0);

  afut_future_unref (f);
  afut_loop_unref (loop);
}

static void
test_callbacks_remove_every_registration (void)
{
  AfutLoop *loop = new_loop ();
  AfutFuture *f = afut_future_new (loop);
  guint n_called = 0;

  trace_reset ();
  afut_future_add_done_callback (f, count_future_cb, &n_called);
  afut_future_add_done_callback (f, trace_future_cb, "A");
  afut_future_add_done_callback (f, count_future_cb, &n_called);
  afut_future_add_done_callback (f, trace_future_cb, "B");
  afut_future_add_done_callback (f, count_future_cb, &n_called);
  afut_future_add_done_callback (f, trace_future_cb, "C");

  g_assert_cmpuint (afut_future_remove_done_callback (f, count_future_cb,
                                                      &n_called),
                    ==, 3);
  g_assert_true (afut_future_resolve (f));
  iterate_n (loop, 1);
  g_assert_cmpuint (n_called, ==, 0);
  /* The others kept their order. */
  g_assert_cmpstr (trace->str, ==, "A B C ");

  afut_future_unref (f);
  afut_loop_unref (loop);
}

static void
test_callbacks_remove_only_matching_data (void)
{
  AfutLoop *loop = new_loop ();
  AfutFuture *f = afut_future_new (loop);
  guint n_a = 0, n_b = 0;

  afut_future_add_done_callback (f, count_future_cb, &n_a);
  /* Same function, other data; other function, same data. */
  g_assert_cmpuint (afut_future_remove_done_callback (f, count_future_cb,
                                                      &n_b),
                    ==, 0);
  g_assert_cmpuint (afut_future_remove_done_callback (f, trace_future_cb,
                                                      &n_a),
                    ==, 0);
  afut_future_add_done_callback (f, count_future_cb, &n_b);
  afut_future_add_done_callback (f, count_future_cb, &n_a);
  g_assert_cmpuint (afut_future_remove_done_callback (f, count_future_cb,
                                                      &n_b),
                    ==, 1);
  g_assert_true (afut_future_resolve (f));
  iterate_n (loop, 1);
  g_assert_cmpuint (n_a, ==, 2);
  g_assert_cmpuint (n_b, ==, 0);

  afut_future_unref (f);
  afut_loop_unref (loop);
}

static void
test_callbacks_remove_after_done (void)
{
  AfutLoop *loop = new_loop ();
  AfutFuture *f = afut_future_new (loop);
  guint n_called = 0;

  afut_future_add_done_callback (f, count_future_cb, &n_called);
  afut_future_add_done_callback (f, count_future_cb, &n_called);
  g_assert_true (afut_future_resolve (f));
  /* Already scheduled: nothing is removed, both run. */
  g_assert_cmpuint (afut_future_remove_done_callback (f, count_future_cb,
                                                      &n_called),
                    ==, 0);
  iterate_n (loop, 1);
  g_assert_cmpuint (n_called, ==, 2);

  /* Nor is a callback added late. */
  afut_future_add_done_callback (f, count_future_cb, &n_called);
  g_assert_cmpuint (afut_future_remove_done_callback (f, count_future_cb,
                                                      &n_called),
                    ==, 0);
  iterate_n (loop, 1);
  g_assert_cmpuint (n_called, ==, 3);

  afut_future_unref (f);
  afut_loop_unref (loop);
}

static void
test_callbacks_remove_all_then_add (void)
{
  AfutLoop *loop = new_loop ();
  AfutFuture *f = afut_future_new (loop);
  static char a[] = "A";
  guint n_called = 0;

  trace_reset ();
  afut_future_add_done_callback (f, trace_future_cb, a);
  afut_future_add_done_callback (f, trace_future_cb, a);
  afut_future_add_done_callback (f, trace_future_cb, a);
  g_assert_cmpuint (afut_future_remove_done_callback (f, trace_future_cb, a),
                    ==, 3);
  afut_future_add_done_callback (f, trace_future_cb, "B");
  afut_future_add_done_callback (f, count_future_cb, &n_called);
  afut_future_add_done_callback (f, trace_future_cb, "C");
  g_assert_true (afut_future_resolve (f));
  iterate_n (loop, 1);
  g_assert_cmpstr (trace->str, ==, "B C ");
  g_assert_cmpuint (n_called, ==, 1);

  afut_future_unref (f);
  afut_loop_unref (loop);
}

/* ---- rule 9: errors nobody retrieved ---- */

static void
test_unretrieved_failed_future_reported (void)
{
  Reports reports;
  AfutLoop *loop = new_loop_with_reports (&reports);
  AfutFuture *f = afut_future_new (loop);

  g_assert_true (afut_future_fail (f, test_error (4, "nobody looked")));
  afut_future_unref (f);

  g_assert_cmpuint (reports.n_reports, ==, 1);
  g_assert_true (reports.loop == loop);
  g_assert_cmpstr (reports.message, ==, "Future exception was never retrieved");
  g_assert_null (reports.task_name);
  g_assert_true (reports.has_error);
  g_assert_cmpuint (reports.domain, ==, test_domain ());
  g_assert_cmpint (reports.code, ==, 4);
  g_assert_cmpstr (reports.error_message, ==, "nobody looked");

  afut_loop_unref (loop);
  g_assert_cmpuint (reports.n_reports, ==, 1);
  reports_clear (&reports);
}

/* asyncio's Future.cancel() clears _log_traceback before it looks at
 * the state: cancelling a failed future retrieves its error.  A
 * gather's cancel() does not (_GatheringFuture.cancel). */
static void
test_cancel_failed_retrieves (void)
{
  Reports reports;
  AfutLoop *loop = new_loop_with_reports (&reports);
  AfutFuture *f = afut_future_new (loop);
  AfutFuture *g = afut_future_new (loop);
  AfutFuture *all;

  g_assert_true (afut_future_fail (f, test_error (4, "cancelled late")));
  g_assert_false (afut_future_cancel (f, NULL));
  afut_future_unref (f);
  g_assert_cmpuint (reports.n_reports, ==, 0);

  all = afut_gather (afut_future_ref (g), NULL);
  g_assert_true (afut_future_fail (g, test_error (5, "in a gather")));
  iterate_n (loop, 2);
  g_assert_cmpint (afut_future_get_state (all), ==, AFUT_FUTURE_FAILED);
  g_assert_false (afut_future_cancel (all, NULL));
  afut_future_unref (all);
  g_assert_cmpuint (reports.n_reports, ==, 1);
  g_assert_cmpstr (reports.error_message, ==, "in a gather");
  afut_future_unref (g);

  afut_loop_unref (loop);
  g_assert_cmpuint (reports.n_reports, ==, 1);
  reports_clear (&reports);
}

static void
test_unretrieved_reported_only_when_freed (void)
{
  Reports reports;
  AfutLoop *loop = new_loop_with_reports (&reports);
  AfutFuture *f = afut_future_new (loop);
  guint n_called = 0;

  afut_future_ref (f);
  /* A callback that does not read the error does not retrieve it. */
  afut_future_add_done_callback (f, count_future_cb, &n_called);
  g_assert_true (afut_future_fail (f, test_error (4, "later")));
  iterate_n (loop, 2);
  g_assert_cmpuint (n_called, ==, 1);
  g_assert_cmpuint (reports.n_reports, ==, 0);
  afut_future_unref (f);
  g_assert_cmpuint (reports.n_reports, ==, 0);
  afut_future_unref (f);
  g_assert_cmpuint (reports.n_reports, ==, 1);
  g_assert_cmpstr (reports.error_message, ==, "later");

  afut_loop_unref (loop);
  reports_clear (&reports);
}

static void
test_unretrieved_get_error_suppresses_report (void)
{
  Reports reports;
  AfutLoop *loop = new_loop_with_reports (&reports);
  AfutFuture *f = afut_future_new (loop);

  g_assert_true (afut_future_fail (f, test_error (4, "looked at")));
  g_assert_nonnull (afut_future_get_error (f));
  afut_future_unref (f);
  g_assert_cmpuint (reports.n_reports, ==, 0);

  afut_loop_unref (loop);
  g_assert_cmpuint (reports.n_reports, ==, 0);
  reports_clear (&reports);
}

static void
read_error_cb (AfutFuture *future, void *data)
{
  (void) data;
  g_assert_nonnull (afut_future_get_error (future));
}

static void
test_unretrieved_callback_reading_error_suppresses_report (void)
{
  Reports reports;
  AfutLoop *loop = new_loop_with_reports (&reports);
  AfutFuture *f = afut_future_new (loop);

  afut_future_add_done_callback (f, read_error_cb, NULL);
  g_assert_true (afut_future_fail (f, test_error (4, "seen by callback")));
  afut_future_unref (f); /* the queued dispatch keeps it alive */
  g_assert_cmpuint (reports.n_reports, ==, 0);
  iterate_n (loop, 1);
  g_assert_cmpuint (reports.n_reports, ==, 0);

  afut_loop_unref (loop);
  g_assert_cmpuint (reports.n_reports, ==, 0);
  reports_clear (&reports);
}

static void
test_unretrieved_cancelled_not_reported (void)
{
  Reports reports;
  AfutLoop *loop = new_loop_with_reports (&reports);
  AfutFuture *cancelled = afut_future_new (loop);
  AfutFuture *failed_cancelled = afut_future_new (loop);
  AfutFuture *sleep = afut_loop_sleep (loop, 5.0);

  g_assert_true (afut_future_cancel (cancelled, "bye"));
  g_assert_true (afut_future_fail (
    failed_cancelled,
    afut_error_new_literal (AFUT_ERROR, AFUT_ERROR_CANCELLED, "bye")));
  g_assert_true (afut_future_cancel (sleep, NULL));
  afut_future_unref (cancelled);
  afut_future_unref (failed_cancelled);
  afut_future_unref (sleep);
  iterate_n (loop, 2);

  afut_loop_unref (loop);
  g_assert_cmpuint (reports.n_reports, ==, 0);
  reports_clear (&reports);
}

static void
test_unretrieved_done_not_reported (void)
{
  Reports reports;
  AfutLoop *loop = new_loop_with_reports (&reports);
  AfutFuture *f = afut_future_new (loop);
  AfutFuture *pending = afut_future_new (loop);

  g_assert_true (afut_future_resolve_int (f, 1));
  afut_future_unref (f);
  afut_future_unref (pending);

  afut_loop_unref (loop);
  g_assert_cmpuint (reports.n_reports, ==, 0);
  reports_clear (&reports);
}

static void
test_unretrieved_task_reported_with_name (void)
{
  Reports reports;
  AfutLoop *loop = new_loop_with_reports (&reports);
  AfutFuture *named = afut_task_new (loop, failer_step, sizeof (AfutTask),
                                     NULL, "the-failer", NULL);
  AfutFuture *unnamed = afut_task_new (loop, failer_step, sizeof (AfutTask),
                                       NULL, NULL, NULL);
  char *default_name;

  g_assert_true (afut_loop_run_until_complete (loop, named));
  g_assert_true (afut_loop_run_until_complete (loop, unnamed));
  g_assert_cmpint (afut_future_get_state (named), ==, AFUT_FUTURE_FAILED);
  g_assert_cmpint (afut_future_get_state (unnamed), ==, AFUT_FUTURE_FAILED);
  g_assert_cmpuint (reports.n_reports, ==, 0);

  afut_future_unref (named);
  g_assert_cmpuint (reports.n_reports, ==, 1);
  g_assert_true (reports.loop == loop);
  g_assert_cmpstr (reports.message, ==, "Task exception was never retrieved");
  g_assert_cmpstr (reports.task_name, ==, "the-failer");
  g_assert_cmpuint (reports.domain, ==, test_domain ());
  g_assert_cmpint (reports.code, ==, 7);
  g_assert_cmpstr (reports.error_message, ==, "boom 7");

  default_name = g_strdup (afut_task_get_name (AFUT_TASK (unnamed)));
  g_assert_true (g_str_has_prefix (default_name, "Task-"));
  afut_future_unref (unnamed);
  g_assert_cmpuint (reports.n_reports, ==, 2);
  g_assert_cmpstr (reports.message, ==, "Task exception was never retrieved");
  g_assert_cmpstr (reports.task_name, ==, default_name);

  g_free (default_name);
  afut_loop_unref (loop);
  g_assert_cmpuint (reports.n_reports, ==, 2);
  reports_clear (&reports);
}

static void
test_unretrieved_task_error_retrieved_not_reported (void)
{
  Reports reports;
  AfutLoop *loop = new_loop_with_reports (&reports);
  AfutFuture *task = afut_task_new (loop, failer_step, sizeof (AfutTask),
                                    NULL, "retrieved", NULL);

  g_assert_true (afut_loop_run_until_complete (loop, task));
  g_assert_cmpstr (afut_future_get_error (task)->message, ==, "boom 7");
  afut_future_unref (task);

  afut_loop_unref (loop);
  g_assert_cmpuint (reports.n_reports, ==, 0);
  reports_clear (&reports);
}

static void
test_unretrieved_awaited_not_reported (void)
{
  Reports reports;
  AfutLoop *loop = new_loop_with_reports (&reports);
  AfutFuture *f = afut_future_new (loop);
  AfutFuture *awaiter = awaiter_new (loop, f, FALSE, "propagates");

  iterate_n (loop, 1);
  g_assert_true (afut_future_fail (f, test_error (5, "raised in awaiter")));
  afut_future_unref (f);
  g_assert_true (afut_loop_run_until_complete (loop, awaiter));

  /* The awaiter failed with the same error; it retrieved f's. */
  g_assert_cmpint (afut_future_get_state (awaiter), ==, AFUT_FUTURE_FAILED);
  g_assert_true (afut_error_matches (afut_future_get_error (awaiter),
                                     test_domain (), 5));
  g_assert_cmpstr (afut_future_get_error (awaiter)->message, ==,
                   "raised in awaiter");
  afut_future_unref (awaiter);

  afut_loop_unref (loop);
  g_assert_cmpuint (reports.n_reports, ==, 0);
  reports_clear (&reports);
}

static void
test_unretrieved_awaited_task_not_reported (void)
{
  Reports reports;
  AfutLoop *loop = new_loop_with_reports (&reports);
  AfutFuture *child = afut_task_new (loop, failer_step, sizeof (AfutTask),
                                     NULL, "child", NULL);
  AfutFuture *parent = awaiter_new (loop, child, TRUE, "parent");
  Awaiter *p = (Awaiter *) parent;

  g_assert_true (afut_loop_run_until_complete (loop, parent));
  g_assert_true (p->caught);
  g_assert_cmpstr (p->caught_message, ==, "boom 7");
  g_assert_cmpint (afut_future_get_state (parent), ==, AFUT_FUTURE_DONE);
  g_assert_cmpint (afut_future_get_state (child), ==, AFUT_FUTURE_FAILED);
  afut_future_unref (parent);
  afut_future_unref (child);

  afut_loop_unref (loop);
  g_assert_cmpuint (reports.n_reports, ==, 0);
  reports_clear (&reports);
}

static void
test_unretrieved_gathered_not_reported (void)
{
  Reports reports;
  AfutLoop *loop = new_loop_with_reports (&reports);
  AfutFuture *f1 = afut_future_new (loop);
  AfutFuture *f2 = afut_future_new (loop);
  AfutFuture *g = afut_gather (afut_future_ref (f1), afut_future_ref (f2),
                               NULL);

  g_assert_nonnull (g);
  g_assert_true (afut_future_fail (f1, test_error (1, "first")));
  g_assert_true (afut_loop_run_until_complete (loop, g));
  g_assert_cmpint (afut_future_get_state (g), ==, AFUT_FUTURE_FAILED);
  g_assert_cmpstr (afut_future_get_error (g)->message, ==, "first");

  /* A child failing after the gather failed: too late to matter, counts
   * as retrieved (asyncio's _done_callback calls fut.exception()). */
  g_assert_true (afut_future_fail (f2, test_error (2, "second")));
  iterate_n (loop, 2);

  afut_future_unref (f1);
  afut_future_unref (f2);
  afut_future_unref (g);
  afut_loop_unref (loop);
  g_assert_cmpuint (reports.n_reports, ==, 0);
  reports_clear (&reports);
}

static void
test_unretrieved_gathered_return_exceptions_not_reported (void)
{
  Reports reports;
  AfutLoop *loop = new_loop_with_reports (&reports);
  AfutFuture *f1 = afut_future_new (loop);
  AfutFuture *f2 = afut_future_new (loop);
  AfutFuture *g = afut_gather_return_exceptions (afut_future_ref (f1),
                                                 afut_future_ref (f2), NULL);

  g_assert_nonnull (g);
  g_assert_true (afut_future_fail (f1, test_error (1, "slot error")));
  g_assert_true (afut_future_resolve_int (f2, 2));
  g_assert_true (afut_loop_run_until_complete (loop, g));
  g_assert_cmpint (afut_future_get_state (g), ==, AFUT_FUTURE_DONE);

  afut_future_unref (f1);
  afut_future_unref (f2);
  afut_future_unref (g);
  afut_loop_unref (loop);
  g_assert_cmpuint (reports.n_reports, ==, 0);
  reports_clear (&reports);
}

static void
test_unretrieved_gather_outer_reported (void)
{
  Reports reports;
  AfutLoop *loop = new_loop_with_reports (&reports);
  AfutFuture *f = afut_future_new (loop);
  AfutFuture *g = afut_gather (afut_future_ref (f), NULL);

  g_assert_true (afut_future_fail (f, test_error (6, "outer carries it")));
  g_assert_true (afut_loop_run_until_complete (loop, g));
  g_assert_cmpint (afut_future_get_state (g), ==, AFUT_FUTURE_FAILED);
  afut_future_unref (f);
  g_assert_cmpuint (reports.n_reports, ==, 0);

  /* The child's error was retrieved by the gather; the gather's own
   * error was not. */
  afut_future_unref (g);
  g_assert_cmpuint (reports.n_reports, ==, 1);
  g_assert_nonnull (strstr (reports.message, "exception was never retrieved"));
  g_assert_null (reports.task_name);
  g_assert_cmpint (reports.code, ==, 6);
  g_assert_cmpstr (reports.error_message, ==, "outer carries it");

  afut_loop_unref (loop);
  g_assert_cmpuint (reports.n_reports, ==, 1);
  reports_clear (&reports);
}

/* ---- error helpers ---- */

static void
test_errors_new_formats (void)
{
  AfutError *e = afut_error_new (test_domain (), 12, "x=%d %s %.1f", 42, "y",
                                 0.5);
  char *long_text = g_strnfill (2000, 'z');
  AfutError *l;

  g_assert_nonnull (e);
  g_assert_cmpuint (e->domain, ==, test_domain ());
  g_assert_cmpint (e->code, ==, 12);
  g_assert_cmpstr (e->message, ==, "x=42 y 0.5");
  afut_error_free (e);

  /* No fixed-size buffer: a long message is kept whole. */
  l = afut_error_new (test_domain (), 1, "<%s>", long_text);
  g_assert_cmpuint (strlen (l->message), ==, 2002);
  g_assert_true (l->message[0] == '<' && l->message[2001] == '>');
  afut_error_free (l);

  e = afut_error_new (test_domain (), -3, "%s", "");
  g_assert_cmpstr (e->message, ==, "");
  g_assert_cmpint (e->code, ==, -3);
  afut_error_free (e);
  g_free (long_text);
}

static void
test_errors_new_literal (void)
{
  char text[] = "100% %s %d";
  AfutError *e = afut_error_new_literal (test_domain (), 2, text);

  g_assert_nonnull (e);
  g_assert_cmpstr (e->message, ==, "100% %s %d");
  /* The message is a copy. */
  g_assert_true (e->message != text);
  text[0] = 'X';
  g_assert_cmpstr (e->message, ==, "100% %s %d");
  g_assert_cmpint (e->code, ==, 2);
  g_assert_cmpuint (e->domain, ==, test_domain ());
  afut_error_free (e);
}

static void
test_errors_copy_is_deep (void)
{
  AfutError *e = afut_error_new_literal (AFUT_ERROR, AFUT_ERROR_TIMEOUT,
                                         "took too long");
  AfutError *copy = afut_error_copy (e);

  g_assert_nonnull (copy);
  g_assert_true (copy != e);
  g_assert_true (copy->message != e->message);
  g_assert_cmpuint (copy->domain, ==, AFUT_ERROR);
  g_assert_cmpint (copy->code, ==, AFUT_ERROR_TIMEOUT);
  g_assert_cmpstr (copy->message, ==, "took too long");
  afut_error_free (e);
  g_assert_cmpstr (copy->message, ==, "took too long");
  afut_error_free (copy);
}

static void
test_errors_matches (void)
{
  AfutQuark other = afut_quark_from_static_string ("afut-test-other-quark");
  AfutError *e = test_error (3, "m");

  g_assert_true (afut_error_matches (e, test_domain (), 3));
  g_assert_false (afut_error_matches (e, test_domain (), 4));
  g_assert_false (afut_error_matches (e, other, 3));
  g_assert_false (afut_error_matches (e, AFUT_ERROR, 3));
  g_assert_false (afut_error_matches (NULL, test_domain (), 3));
  g_assert_false (afut_error_matches (NULL, 0, 0));
  afut_error_free (e);
}

static void
test_errors_is_cancelled (void)
{
  AfutError *cancelled = afut_error_new_literal (AFUT_ERROR,
                                                 AFUT_ERROR_CANCELLED, "");
  /* Same code number in another domain is not a cancellation. */
  AfutError *lookalike = test_error (AFUT_ERROR_CANCELLED, "");
  AfutError *failed = afut_error_new_literal (AFUT_ERROR, AFUT_ERROR_FAILED,
                                              "");

  g_assert_true (afut_error_is_cancelled (cancelled));
  g_assert_false (afut_error_is_cancelled (lookalike));
  g_assert_false (afut_error_is_cancelled (failed));
  g_assert_false (afut_error_is_cancelled (NULL));

  afut_error_free (cancelled);
  afut_error_free (lookalike);
  afut_error_free (failed);
}

static void
test_errors_code_to_string (void)
{
  g_assert_cmpstr (afut_error_code_to_string (AFUT_ERROR_FAILED), ==,
                   "failed");
  g_assert_cmpstr (afut_error_code_to_string (AFUT_ERROR_CANCELLED), ==,
                   "cancelled");
  g_assert_cmpstr (afut_error_code_to_string (AFUT_ERROR_TIMEOUT), ==,
                   "timeout");
  g_assert_cmpstr (afut_error_code_to_string (AFUT_ERROR_INVALID_STATE), ==,
                   "invalid-state");
  g_assert_cmpstr (afut_error_code_to_string (AFUT_ERROR_INVALID_ARGUMENT),
                   ==, "invalid-argument");
  g_assert_cmpstr (afut_error_code_to_string (AFUT_ERROR_CLOSED), ==,
                   "closed");
  g_assert_cmpstr (afut_error_code_to_string (AFUT_ERROR_INCOMPLETE), ==,
                   "incomplete");
  g_assert_cmpstr (afut_error_code_to_string (AFUT_ERROR_GROUP), ==, "group");
  g_assert_cmpstr (afut_error_code_to_string (-1), ==, "unknown");
  g_assert_cmpstr (afut_error_code_to_string (AFUT_ERROR_GROUP + 1), ==,
                   "unknown");
  g_assert_cmpstr (afut_error_code_to_string (INT32_MAX), ==, "unknown");
}

/* ---- quarks ---- */

static void
test_quarks_from_string_interns (void)
{
  AfutQuark a = afut_quark_from_string ("afut-test-quark-a");
  AfutQuark b = afut_quark_from_string ("afut-test-quark-b");
  char *dup = g_strdup ("afut-test-quark-a");

  g_assert_cmpuint (a, !=, 0);
  g_assert_cmpuint (b, !=, 0);
  g_assert_cmpuint (a, !=, b);
  g_assert_cmpuint (afut_quark_from_string (dup), ==, a);
  g_assert_cmpuint (afut_quark_from_static_string ("afut-test-quark-a"), ==,
                    a);
  g_assert_cmpstr (afut_quark_to_string (a), ==, "afut-test-quark-a");
  g_assert_cmpstr (afut_quark_to_string (b), ==, "afut-test-quark-b");
  g_free (dup);
}

static void
test_quarks_from_string_copies (void)
{
  char buf[] = "afut-test-quark-copied";
  AfutQuark q = afut_quark_from_string (buf);

  buf[0] = 'X';
  g_assert_cmpstr (afut_quark_to_string (q), ==, "afut-test-quark-copied");
  g_assert_cmpuint (afut_quark_from_string ("afut-test-quark-copied"), ==, q);
  g_assert_cmpuint (afut_quark_from_string (buf), !=, q);
}

static void
test_quarks_static (void)
{
  static const char name[] = "afut-test-quark-static";
  AfutQuark q = afut_quark_from_static_string (name);

  g_assert_cmpuint (q, !=, 0);
  /* Not copied: the quark names the very string it was given. */
  g_assert_true (afut_quark_to_string (q) == name);
  g_assert_cmpuint (afut_quark_from_string ("afut-test-quark-static"), ==, q);
}

static void
test_quarks_null_and_unknown (void)
{
  g_assert_cmpuint (afut_quark_from_string (NULL), ==, 0);
  g_assert_cmpuint (afut_quark_from_static_string (NULL), ==, 0);
  g_assert_null (afut_quark_to_string (0));
  g_assert_null (afut_quark_to_string (1000000));
  g_assert_null (afut_quark_to_string (UINT32_MAX));
}

static void
test_quarks_error_quark (void)
{
  AfutQuark q = afut_error_quark ();

  g_assert_cmpuint (q, !=, 0);
  g_assert_cmpuint (AFUT_ERROR, ==, q);
  g_assert_cmpuint (afut_error_quark (), ==, q);
  g_assert_cmpstr (afut_quark_to_string (q), ==, "afut-error-quark");
  g_assert_cmpuint (afut_quark_from_string ("afut-error-quark"), ==, q);
  g_assert_cmpuint (q, !=, test_domain ());
}

#define N_QUARK_THREADS 6
#define N_QUARK_STRINGS 64

typedef struct
{
  guint index;
  AfutQuark quarks[N_QUARK_STRINGS];
} QuarkThread;

static gpointer
quark_thread (gpointer data)
{
  QuarkThread *qt = (QuarkThread *) data;
  guint k;

  /* Each thread interns the same strings, in its own order. */
  for (k = 0; k < N_QUARK_STRINGS; k++)
    {
      guint i = (k * 7 + qt->index * 13) % N_QUARK_STRINGS;
      char name[64];
      g_snprintf (name, sizeof name, "afut-test-thread-quark-%u", i);
      qt->quarks[i] = afut_quark_from_string (name);
    }
  return NULL;
}

static void
test_quarks_threads (void)
{
  QuarkThread threads[N_QUARK_THREADS];
  GThread *handles[N_QUARK_THREADS];
  guint t, i, j;

  for (t = 0; t < N_QUARK_THREADS; t++)
    {
      memset (&threads[t], 0, sizeof threads[t]);
      threads[t].index = t;
      handles[t] = g_thread_new ("quarks", quark_thread, &threads[t]);
    }
  for (t = 0; t < N_QUARK_THREADS; t++)
    g_thread_join (handles[t]);

  for (i = 0; i < N_QUARK_STRINGS; i++)
    {
      char name[64];
      g_snprintf (name, sizeof name, "afut-test-thread-quark-%u", i);
      g_assert_cmpuint (threads[0].quarks[i], !=, 0);
      g_assert_cmpstr (afut_quark_to_string (threads[0].quarks[i]), ==, name);
      for (t = 1; t < N_QUARK_THREADS; t++)
        g_assert_cmpuint (threads[t].quarks[i], ==, threads[0].quarks[i]);
      for (j = 0; j < i; j++)
        g_assert_cmpuint (threads[0].quarks[j], !=, threads[0].quarks[i]);
    }
}

/* ---- done callbacks with a destroy notify (_full) ---- */

/* Traces "~<name>" when a _full registration's data is destroyed. */
static void
trace_destroy (void *data)
{
  g_string_append_printf (trace, "~%s ", (const char *) data);
}

/* The destroy runs right after the callback, once; the registration
 * keeps its place among the plain ones. */
static void
test_callbacks_full_destroy_after_callback (void)
{
  AfutLoop *loop = new_loop ();
  AfutFuture *f = afut_future_new (loop);

  trace_reset ();
  afut_future_add_done_callback (f, trace_future_cb, "A");
  afut_future_add_done_callback_full (f, trace_future_cb, "B", trace_destroy);
  afut_future_add_done_callback (f, trace_future_cb, "C");
  afut_future_add_done_callback_full (f, trace_future_cb, "D", NULL);
  g_assert_true (afut_future_resolve (f));
  g_assert_cmpstr (trace->str, ==, "");
  iterate_n (loop, 1);
  g_assert_cmpstr (trace->str, ==, "A B ~B C D ");
  afut_future_unref (f);
  afut_loop_unref (loop);
  g_assert_cmpstr (trace->str, ==, "A B ~B C D ");
}

/* The only registration (stored inline, not in an array) too. */
static void
test_callbacks_full_single (void)
{
  AfutLoop *loop = new_loop ();
  AfutFuture *f = afut_future_new (loop);

  trace_reset ();
  afut_future_add_done_callback_full (f, trace_future_cb, "A", trace_destroy);
  g_assert_true (afut_future_cancel (f, NULL));
  iterate_n (loop, 1);
  g_assert_cmpstr (trace->str, ==, "A ~A ");
  afut_future_unref (f);
  afut_loop_unref (loop);
}

/* Added to a done future: queued, then destroyed after it ran. */
static void
test_callbacks_full_on_done_future (void)
{
  AfutLoop *loop = new_loop ();
  AfutFuture *f = afut_future_new (loop);

  trace_reset ();
  g_assert_true (afut_future_resolve_int (f, 3));
  afut_future_add_done_callback_full (f, trace_future_cb, "A", trace_destroy);
  g_assert_cmpstr (trace->str, ==, "");
  iterate_n (loop, 1);
  g_assert_cmpstr (trace->str, ==, "A ~A ");
  afut_future_unref (f);
  afut_loop_unref (loop);
}

/* Removed: the destroy runs in the remove call, the callback never. */
static void
test_callbacks_full_removed (void)
{
  guint k;

  for (k = 0; k < 2; k++)
    {
      AfutLoop *loop = new_loop ();
      AfutFuture *f = afut_future_new (loop);

      trace_reset ();
      /* k = 1: among other registrations (the array form). */
      if (k == 1)
        afut_future_add_done_callback (f, trace_future_cb, "A");
      afut_future_add_done_callback_full (f, trace_future_cb, "B",
                                          trace_destroy);
      if (k == 1)
        afut_future_add_done_callback_full (f, trace_future_cb, "C",
                                            trace_destroy);
      g_assert_cmpuint (
        afut_future_remove_done_callback (f, trace_future_cb, "B"), ==, 1);
      g_assert_cmpstr (trace->str, ==, "~B ");
      g_assert_cmpuint (
        afut_future_remove_done_callback (f, trace_future_cb, "B"), ==, 0);
      g_assert_true (afut_future_resolve (f));
      iterate_n (loop, 1);
      g_assert_cmpstr (trace->str, ==, k == 1 ? "~B A C ~C " : "~B ");
      afut_future_unref (f);
      afut_loop_unref (loop);
      g_assert_cmpstr (trace->str, ==, k == 1 ? "~B A C ~C " : "~B ");
    }
}

/* Freed without completing: each pending registration's destroy runs
 * once, the callbacks never. */
static void
test_callbacks_full_future_freed_pending (void)
{
  guint k;

  for (k = 0; k < 2; k++)
    {
      AfutLoop *loop = new_loop ();
      AfutFuture *f = afut_future_new (loop);

      trace_reset ();
      afut_future_add_done_callback_full (f, trace_future_cb, "A",
                                          trace_destroy);
      if (k == 1)
        {
          afut_future_add_done_callback (f, trace_future_cb, "B");
          afut_future_add_done_callback_full (f, trace_future_cb, "C",
                                              trace_destroy);
        }
      afut_future_unref (f);
      g_assert_cmpstr (trace->str, ==, k == 1 ? "~A ~C " : "~A ");
      afut_loop_unref (loop);
      g_assert_cmpstr (trace->str, ==, k == 1 ? "~A ~C " : "~A ");
    }
}

/* The loop closed: the callback can never run, so its destroy runs at
 * once, with the critical the plain form gives. */
static void
test_callbacks_full_closed_loop (void)
{
  AfutLoop *loop = new_loop ();
  AfutFuture *f = afut_future_new (loop);

  afut_future_resolve (f);
  afut_loop_unref (loop);
  trace_reset ();
  expect_log_begin (AFUT_LOG_CRITICAL, "the loop is closed");
  afut_future_add_done_callback_full (f, trace_future_cb, "A", trace_destroy);
  g_assert_cmpuint (expect_log_end (), ==, 1);
  g_assert_cmpstr (trace->str, ==, "~A ");
  afut_future_unref (f);
  g_assert_cmpstr (trace->str, ==, "~A ");
}

/* Completed after its loop closed: the callbacks are dropped (reported)
 * and the destroys run then. */
static void
test_callbacks_full_completed_after_close (void)
{
  AfutLoop *loop = new_loop ();
  AfutFuture *f = afut_future_new (loop);

  trace_reset ();
  afut_future_add_done_callback_full (f, trace_future_cb, "A", trace_destroy);
  afut_future_add_done_callback_full (f, trace_future_cb, "B", trace_destroy);
  afut_loop_unref (loop);
  g_assert_cmpstr (trace->str, ==, "");
  expect_log_begin (AFUT_LOG_CRITICAL, "after its loop was closed");
  afut_future_resolve (f);
  g_assert_cmpuint (expect_log_end (), ==, 1);
  g_assert_cmpstr (trace->str, ==, "~A ~B ");
  afut_future_unref (f);
  g_assert_cmpstr (trace->str, ==, "~A ~B ");
}

/* The destroy notify may drop the last reference to the future. */
static void
unref_future_destroy (void *data)
{
  g_string_append (trace, "~unref ");
  afut_future_unref ((AfutFuture *) data);
}

static void
noop_future_cb (AfutFuture *future, void *data)
{
  (void) future;
  (void) data;
}

static void
test_callbacks_full_destroy_drops_future (void)
{
  AfutLoop *loop = new_loop ();
  AfutFuture *f = afut_future_new (loop);

  trace_reset ();
  afut_future_add_done_callback_full (f, trace_future_cb, "A", NULL);
  afut_future_add_done_callback_full (f, noop_future_cb,
                                      afut_future_ref (f),
                                      unref_future_destroy);
  afut_future_unref (f);
  g_assert_true (afut_future_resolve (f));
  iterate_n (loop, 1);
  g_assert_cmpstr (trace->str, ==, "A ~unref ");
  afut_loop_unref (loop);
}

int
main (int argc, char **argv)
{
  int status;

  g_test_init (&argc, &argv, NULL);
  afut_set_log_func (test_log_func, NULL);

  g_test_add_func ("/future/state/new-is-pending", test_state_new_is_pending);
  g_test_add_func ("/future/state/to-string", test_state_to_string);
  g_test_add_func ("/future/state/new-uses-running-loop",
                   test_state_new_uses_running_loop);

  g_test_add_func ("/future/resolve/none", test_resolve_none);
  g_test_add_func ("/future/resolve/pointer", test_resolve_pointer);
  g_test_add_func ("/future/resolve/int", test_resolve_int);
  g_test_add_func ("/future/resolve/double", test_resolve_double);

  g_test_add_func ("/future/fail/sets-error", test_fail_sets_error);
  g_test_add_func ("/future/fail/cancelled-error-makes-cancelled",
                   test_fail_cancelled_error_makes_cancelled);

  g_test_add_func ("/future/cancel/pending-with-message",
                   test_cancel_pending_with_message);
  g_test_add_func ("/future/cancel/without-message-is-empty",
                   test_cancel_without_message);
  g_test_add_func ("/future/cancel/done-returns-false",
                   test_cancel_done_returns_false);
  g_test_add_func ("/future/cancel/sleep-carries-message",
                   test_cancel_sleep_message);
  g_test_add_func ("/future/cancel/message-reaches-awaiting-task",
                   test_cancel_message_reaches_awaiting_task);

  g_test_add_func ("/future/complete-once/after-resolve",
                   test_complete_once_after_resolve);
  g_test_add_func ("/future/complete-once/after-fail",
                   test_complete_once_after_fail);
  g_test_add_func ("/future/complete-once/after-cancel",
                   test_complete_once_after_cancel);

  g_test_add_func ("/future/getters/pending-result-is-reported",
                   test_getters_pending_result_is_reported);
  g_test_add_func ("/future/getters/error-is-null-when-done",
                   test_getters_error_null_when_done);

  g_test_add_func ("/future/refcount/ref-keeps-alive",
                   test_refcount_ref_keeps_alive);
  g_test_add_func ("/future/refcount/unref-null-is-ignored",
                   test_refcount_unref_null);

  g_test_add_func ("/future/destroy/called-once-on-last-unref",
                   test_destroy_called_once);
  g_test_add_func ("/future/destroy/after-queued-callbacks",
                   test_destroy_after_queued_callbacks);
  g_test_add_func ("/future/destroy/pending-future-freed",
                   test_destroy_pending_future_freed);
  g_test_add_func ("/future/destroy/refused-value-destroyed-at-once",
                   test_destroy_failed_and_cancelled_hold_no_value);
  g_test_add_func ("/future/destroy/task-return-pointer",
                   test_destroy_task_return_pointer);

  g_test_add_func ("/future/callbacks/not-run-inside-completion",
                   test_callbacks_not_run_inside_completion);
  g_test_add_func ("/future/callbacks/registration-order",
                   test_callbacks_registration_order);
  g_test_add_func ("/future/callbacks/many-keep-order",
                   test_callbacks_many_keep_order);
  g_test_add_func ("/future/callbacks/receive-future-and-data",
                   test_callbacks_receive_future_and_data);
  g_test_add_func ("/future/callbacks/follow-completion-order",
                   test_callbacks_follow_completion_order);
  g_test_add_func ("/future/callbacks/added-to-done-future-is-queued",
                   test_callbacks_added_to_done_future_is_queued);
  g_test_add_func (
    "/future/callbacks/added-to-done-future-runs-after-earlier-entries",
    test_callbacks_added_to_done_future_runs_after_earlier_entries);
  g_test_add_func ("/future/callbacks/added-during-dispatch-run-next-iteration",
                   test_callbacks_added_during_dispatch_run_next_iteration);
  g_test_add_func ("/future/callbacks/completion-in-batch-runs-next-iteration",
                   test_callbacks_completion_in_batch_runs_next_iteration);
  g_test_add_func ("/future/callbacks/dropping-last-ref-in-callback",
                   test_callbacks_dropping_last_ref_in_callback);
  g_test_add_func ("/future/callbacks/remove/single",
                   test_callbacks_remove_single);
  g_test_add_func ("/future/callbacks/remove/every-registration",
                   test_callbacks_remove_every_registration);
  g_test_add_func ("/future/callbacks/remove/only-matching-data",
                   test_callbacks_remove_only_matching_data);
  g_test_add_func ("/future/callbacks/remove/after-done-removes-nothing",
                   test_callbacks_remove_after_done);
  g_test_add_func ("/future/callbacks/remove/all-then-add",
                   test_callbacks_remove_all_then_add);
  g_test_add_func ("/future/callbacks/full/destroy-after-callback",
                   test_callbacks_full_destroy_after_callback);
  g_test_add_func ("/future/callbacks/full/single",
                   test_callbacks_full_single);
  g_test_add_func ("/future/callbacks/full/on-done-future",
                   test_callbacks_full_on_done_future);
  g_test_add_func ("/future/callbacks/full/removed",
                   test_callbacks_full_removed);
  g_test_add_func ("/future/callbacks/full/future-freed-pending",
                   test_callbacks_full_future_freed_pending);
  g_test_add_func ("/future/callbacks/full/closed-loop",
                   test_callbacks_full_closed_loop);
  g_test_add_func ("/future/callbacks/full/completed-after-close",
                   test_callbacks_full_completed_after_close);
  g_test_add_func ("/future/callbacks/full/destroy-drops-future",
                   test_callbacks_full_destroy_drops_future);

  g_test_add_func ("/future/unretrieved/failed-future-reported-on-free",
                   test_unretrieved_failed_future_reported);
  g_test_add_func ("/future/unretrieved/cancel-failed-retrieves",
                   test_cancel_failed_retrieves);
  g_test_add_func ("/future/unretrieved/reported-only-when-freed",
                   test_unretrieved_reported_only_when_freed);
  g_test_add_func ("/future/unretrieved/get-error-suppresses-report",
                   test_unretrieved_get_error_suppresses_report);
  g_test_add_func (
    "/future/unretrieved/callback-reading-error-suppresses-report",
    test_unretrieved_callback_reading_error_suppresses_report);
  g_test_add_func ("/future/unretrieved/cancelled-not-reported",
                   test_unretrieved_cancelled_not_reported);
  g_test_add_func ("/future/unretrieved/done-not-reported",
                   test_unretrieved_done_not_reported);
  g_test_add_func ("/future/unretrieved/task-reported-with-name",
                   test_unretrieved_task_reported_with_name);
  g_test_add_func ("/future/unretrieved/task-error-retrieved-not-reported",
                   test_unretrieved_task_error_retrieved_not_reported);
  g_test_add_func ("/future/unretrieved/awaited-not-reported",
                   test_unretrieved_awaited_not_reported);
  g_test_add_func ("/future/unretrieved/awaited-task-not-reported",
                   test_unretrieved_awaited_task_not_reported);
  g_test_add_func ("/future/unretrieved/gathered-not-reported",
                   test_unretrieved_gathered_not_reported);
  g_test_add_func (
    "/future/unretrieved/gathered-return-exceptions-not-reported",
    test_unretrieved_gathered_return_exceptions_not_reported);
  g_test_add_func ("/future/unretrieved/gather-outer-reported",
                   test_unretrieved_gather_outer_reported);

  g_test_add_func ("/future/errors/new-formats", test_errors_new_formats);
  g_test_add_func ("/future/errors/new-literal-copies-verbatim",
                   test_errors_new_literal);
  g_test_add_func ("/future/errors/copy-is-deep", test_errors_copy_is_deep);
  g_test_add_func ("/future/errors/matches", test_errors_matches);
  g_test_add_func ("/future/errors/is-cancelled", test_errors_is_cancelled);
  g_test_add_func ("/future/errors/code-to-string",
                   test_errors_code_to_string);

  g_test_add_func ("/future/quarks/from-string-interns",
                   test_quarks_from_string_interns);
  g_test_add_func ("/future/quarks/from-string-copies",
                   test_quarks_from_string_copies);
  g_test_add_func ("/future/quarks/static-not-copied", test_quarks_static);
  g_test_add_func ("/future/quarks/null-and-unknown",
                   test_quarks_null_and_unknown);
  g_test_add_func ("/future/quarks/error-quark", test_quarks_error_quark);
  g_test_add_func ("/future/quarks/thread-safe", test_quarks_threads);

  status = g_test_run ();
  if (trace != NULL)
    g_string_free (trace, TRUE);
  return status;
}
