/* test-fiber.c - fibers (stackful tasks): plain locals, loops and helper
 * calls that await, under the same rules as stackless tasks: values and
 * errors (rule 4), cancellation at every await, swallowed, re-raised or
 * cleaned up after (rule 5), timeouts, task groups, gather, shield,
 * wait_for and the sync primitives, fibers and stackless tasks awaiting
 * each other, the stack pool, overflow and misuse.  Every loop runs on
 * the virtual clock.  Built twice: with afut's own switch, and with
 * AFUT_FIBER_UCONTEXT (test-fiber-ucontext). */

#define AFUT_IMPLEMENTATION
#include "afut.h"

#include <glib.h>

#include "event-log.h"

G_GNUC_UNUSED static void (*unused_line) (const char *, ...) = line;
#include <string.h>

/* ---- harness ---- */

#define TEST_ERROR (afut_quark_from_static_string ("test-error-quark"))

static GPtrArray *warnings;
static gboolean expecting_warnings;
static unsigned n_destroyed;

static double
now (void)
{
  return afut_loop_time (afut_loop_get_running ());
}

static void
log_func (AfutLogLevel level, const char *message, void *data)
{
  (void) data;
  if (level == AFUT_LOG_WARNING && expecting_warnings)
    {
      g_ptr_array_add (warnings, g_strdup (message));
      return;
    }
  g_test_message ("unexpected afut %s: %s",
                  level == AFUT_LOG_CRITICAL ? "critical" : "warning",
                  message);
  g_test_fail ();
}

static AfutLoop *
loop_new (void)
{
  AfutLoop *loop = afut_loop_new (AFUT_LOOP_VIRTUAL_CLOCK);
  g_assert_nonnull (loop);
  g_string_truncate (events, 0);
  g_string_truncate (lines, 0);
  n_destroyed = 0;
  return loop;
}

static void
assert_events (const char *expected)
{
  g_assert_cmpstr (events->str, ==, expected);
  g_string_truncate (events, 0);
}

static void
count_destroy (void *data)
{
  n_destroyed++;
  g_free (data);
}

static void
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

static void
assert_state (AfutFuture *future, AfutFutureState state)
{
  g_assert_cmpstr (afut_future_state_to_string (afut_future_get_state (future)),
                   ==, afut_future_state_to_string (state));
}

/* Runs @future to completion on @loop and returns it (transfer full). */
static AfutFuture *
run (AfutLoop *loop, AfutFuture *future)
{
  g_assert_nonnull (future);
  afut_loop_run_until_complete (loop, future);
  g_assert_true (afut_future_is_done (future));
  return future;
}

/* ---- locals, loops, helper calls ---- */

/* A helper that awaits, recursing @depth times with an await at each
 * level and a local on each frame that must survive it. */
static int64_t
deep (int depth, AfutError **error)
{
  int64_t mine = depth * 10, below = 0;
  char buf[64];
  g_snprintf (buf, sizeof buf, "frame-%d", depth);
  if (!afut_await_check (afut_sleep (0.001), error))
    return -1;
  if (depth > 0)
    {
      below = deep (depth - 1, error);
      if (below < 0)
        return -1;
    }
  g_assert_cmpint (mine, ==, depth * 10);
  g_assert_true (g_str_has_prefix (buf, "frame-"));
  g_assert_cmpint (atoi (buf + 6), ==, depth);
  return mine + below;
}

static AfutFuture *
locals_body (void *data)
{
  const char *name = (const char *) data;
  g_autofree char *owned = g_strdup_printf ("%s-owned", name);
  double acc = 1.5;
  int i;
  AfutError *error = NULL;
  int64_t sum;
  for (i = 0; i < 5; i++)
    {
      switch (i % 3) /* awaits inside a switch: fine in a fiber */
        {
        case 0:
          if (!afut_fiber_yield (&error))
            return afut_future_new_for_error (error);
          break;
        default:
          if (!afut_await_check (afut_sleep (0.5), &error))
            return afut_future_new_for_error (error);
          break;
        }
      acc *= 2;
      ev ("%s:%d", name, i);
    }
  sum = deep (50, &error);
  if (error != NULL)
    return afut_future_new_for_error (error);
  g_assert_cmpstr (owned, ==, name[0] == 'a' ? "a-owned" : "b-owned");
  g_assert_cmpfloat (acc, ==, 48.0);
  return afut_future_new_for_int (sum);
}

static void
test_locals (void)
{
  AfutLoop *loop = loop_new ();
  AfutFuture *a, *b, *g;
  afut_loop_push_thread_default (loop);
  a = afut_fiber_new (locals_body, (void *) "a", NULL);
  b = afut_fiber_new (locals_body, (void *) "b", NULL);
  g = run (loop, afut_gather (afut_future_ref (a), afut_future_ref (b), NULL));
  assert_state (g, AFUT_FUTURE_DONE);
  assert_events ("a:0 b:0 a:1 b:1 a:2 b:2 a:3 b:3 a:4 b:4");
  g_assert_cmpint (afut_future_get_int (a), ==, 12750);
  g_assert_cmpint (afut_future_get_int (b), ==, 12750);
  afut_future_unref (g);
  afut_future_unref (a);
  afut_future_unref (b);
  afut_loop_pop_thread_default (loop);
  afut_loop_unref (loop);
}

/* ---- values and errors ---- */

typedef enum
{
  END_NULL,
  END_INT,
  END_DOUBLE,
  END_POINTER,
  END_ERROR,
  END_CANCELLED,
  END_PENDING,
  END_AWAITED
} EndMode;

static AfutFuture *
ender (void *data)
{
  EndMode mode = (EndMode) GPOINTER_TO_INT (data);
  if (!afut_await_check (afut_sleep (1), NULL))
    g_assert_not_reached ();
  switch (mode)
    {
    case END_NULL:
      return NULL;
    case END_INT:
      return afut_future_new_for_int (INT64_C (1) << 40);
    case END_DOUBLE:
      return afut_future_new_for_double (2.5);
    case END_POINTER:
      return afut_future_new_for_pointer (g_strdup ("value"), count_destroy);
    case END_ERROR:
      return afut_future_new_for_error (
        afut_error_new_literal (TEST_ERROR, 7, "boom"));
    case END_CANCELLED:
      return afut_future_new_for_error (
        afut_error_new_literal (AFUT_ERROR, AFUT_ERROR_CANCELLED, "gave up"));
    case END_PENDING:
      /* `return await sleep(1)`: the fiber ends when it does */
      return afut_sleep (1);
    case END_AWAITED:
      return afut_await (afut_future_new_for_int (5));
    }
  return NULL;
}

static void
test_values (void)
{
  AfutLoop *loop = loop_new ();
  AfutFuture *f;
  double t0;
  afut_loop_push_thread_default (loop);

  f = run (loop, afut_fiber_new (ender, GINT_TO_POINTER (END_NULL), NULL));
  assert_state (f, AFUT_FUTURE_DONE);
  g_assert_cmpint (afut_future_get_value_type (f), ==, AFUT_VALUE_NONE);
  afut_future_unref (f);

  f = run (loop, afut_fiber_new (ender, GINT_TO_POINTER (END_INT), NULL));
  g_assert_cmpint (afut_future_get_int (f), ==, INT64_C (1) << 40);
  afut_future_unref (f);

  f = run (loop, afut_fiber_new (ender, GINT_TO_POINTER (END_DOUBLE), NULL));
  g_assert_cmpfloat (afut_future_get_double (f), ==, 2.5);
  afut_future_unref (f);

  f = run (loop, afut_fiber_new (ender, GINT_TO_POINTER (END_POINTER), NULL));
  g_assert_cmpstr (afut_future_get_pointer (f), ==, "value");
  g_assert_cmpuint (n_destroyed, ==, 0);
  afut_future_unref (f);
  g_assert_cmpuint (n_destroyed, ==, 1);

  f = run (loop, afut_fiber_new (ender, GINT_TO_POINTER (END_POINTER), NULL));
  g_free (afut_future_steal_pointer (f));
  afut_future_unref (f);
  g_assert_cmpuint (n_destroyed, ==, 1);

  f = run (loop, afut_fiber_new (ender, GINT_TO_POINTER (END_ERROR), NULL));
  assert_state (f, AFUT_FUTURE_FAILED);
  assert_error (afut_future_get_error (f), TEST_ERROR, 7, "boom");
  afut_future_unref (f);

  f = run (loop, afut_fiber_new (ender, GINT_TO_POINTER (END_CANCELLED), NULL));
  assert_state (f, AFUT_FUTURE_CANCELLED);
  assert_error (afut_future_get_error (f), AFUT_ERROR, AFUT_ERROR_CANCELLED,
                "gave up");
  afut_future_unref (f);

  t0 = afut_loop_time (loop);
  f = run (loop, afut_fiber_new (ender, GINT_TO_POINTER (END_PENDING), NULL));
  assert_state (f, AFUT_FUTURE_DONE);
  g_assert_cmpfloat (afut_loop_time (loop) - t0, ==, 2.0);
  afut_future_unref (f);

  f = run (loop, afut_fiber_new (ender, GINT_TO_POINTER (END_AWAITED), NULL));
  g_assert_cmpint (afut_future_get_int (f), ==, 5);
  afut_future_unref (f);

  afut_loop_pop_thread_default (loop);
  afut_loop_unref (loop);
}

/* A shared pointer value: the fiber lends it from the future it returned. */
static AfutFuture *shared_value;

static AfutFuture *
return_shared (void *data)
{
  (void) data;
  return afut_future_ref (shared_value);
}

static void
test_values_shared (void)
{
  AfutLoop *loop = loop_new ();
  AfutFuture *f;
  char *p;
  afut_loop_push_thread_default (loop);
  shared_value = afut_future_new_for_pointer (g_strdup ("shared"),
                                              count_destroy);
  f = run (loop, afut_fiber_new (return_shared, NULL, NULL));
  g_assert_cmpstr (afut_future_get_pointer (f), ==, "shared");
  /* Stealing from the fiber steals from the future that lends it. */
  p = afut_future_steal_pointer (f);
  afut_future_unref (shared_value);
  afut_future_unref (f);
  g_assert_cmpuint (n_destroyed, ==, 0);
  g_assert_cmpstr (p, ==, "shared");
  g_free (p);
  afut_loop_pop_thread_default (loop);
  afut_loop_unref (loop);
}

/* ---- awaits of done futures, yields ---- */

static AfutFuture *
await_done_body (void *data)
{
  AfutFuture *done = afut_future_new_for_int (3);
  (void) data;
  ev ("f:start");
  afut_loop_call_soon (afut_loop_get_running (), (AfutCallback) ev, "soon");
  /* No switch: the callback queued before it has not run. */
  g_assert_cmpint (afut_await_int (done, NULL), ==, 3);
  ev ("f:after-done");
  afut_fiber_yield (NULL);
  ev ("f:after-yield");
  return NULL;
}

static void
test_await_done (void)
{
  AfutLoop *loop = loop_new ();
  afut_loop_push_thread_default (loop);
  afut_future_unref (run (loop, afut_fiber_new (await_done_body, NULL, NULL)));
  assert_events ("f:start f:after-done soon f:after-yield");
  afut_loop_pop_thread_default (loop);
  afut_loop_unref (loop);
}

/* Fibers and stackless tasks yield in one FIFO. */
typedef struct
{
  AfutTask task;
  int i;
} Yielder;

static void
stackless_yielder (AfutTask *task)
{
  Yielder *self = (Yielder *) task;
  AFUT_BEGIN (task);
  for (self->i = 0; self->i < 3; self->i++)
    {
      ev ("s%d", self->i);
      AFUT_YIELD (task);
    }
  AFUT_END (task);
}

static AfutFuture *
fiber_yielder (void *data)
{
  int i;
  (void) data;
  for (i = 0; i < 3; i++)
    {
      ev ("f%d", i);
      afut_fiber_yield (NULL);
    }
  return NULL;
}

static void
test_yield_order (void)
{
  AfutLoop *loop = loop_new ();
  AfutFuture *g;
  afut_loop_push_thread_default (loop);
  g = afut_fiber_new (fiber_yielder, NULL, NULL);
  g = afut_gather (g, AFUT_SPAWN (Yielder, stackless_yielder), NULL);
  afut_future_unref (run (loop, g));
  assert_events ("f0 s0 f1 s1 f2 s2");
  afut_loop_pop_thread_default (loop);
  afut_loop_unref (loop);
}

/* ---- cancellation (rule 5) ---- */

typedef enum
{
  ON_CANCEL_RERAISE,
  ON_CANCEL_CLEANUP_RERAISE,
  ON_CANCEL_SWALLOW,
  ON_CANCEL_IN_HELPER
} OnCancel;

static gboolean
helper_waits (AfutError **error)
{
  ev ("helper:wait");
  return afut_await_check (afut_sleep (10), error);
}

static AfutFuture *
cancellee (void *data)
{
  OnCancel mode = (OnCancel) GPOINTER_TO_INT (data);
  AfutError *error = NULL;
  gboolean ok;
  ev ("start");
  ok = mode == ON_CANCEL_IN_HELPER ? helper_waits (&error)
                                   : afut_await_check (afut_sleep (10), &error);
  g_assert_false (ok);
  assert_error (error, AFUT_ERROR, AFUT_ERROR_CANCELLED, "stop");
  ev ("caught@%g", now ());
  switch (mode)
    {
    case ON_CANCEL_RERAISE:
    case ON_CANCEL_IN_HELPER:
      return afut_future_new_for_error (error);
    case ON_CANCEL_CLEANUP_RERAISE:
      /* cleanup awaits, then re-raise */
      if (!afut_await_check (afut_sleep (1), NULL))
        g_assert_not_reached ();
      ev ("cleaned@%g", now ());
      return afut_future_new_for_error (error);
    case ON_CANCEL_SWALLOW:
      afut_error_free (error);
      if (!afut_await_check (afut_sleep (1), NULL))
        g_assert_not_reached ();
      ev ("swallowed@%g", now ());
      return afut_future_new_for_int (9);
    }
  return NULL;
}

static void
cancel_soon (void *data)
{
  afut_future_cancel ((AfutFuture *) data, "stop");
}

static void
test_cancel_modes (void)
{
  static const struct
  {
    OnCancel mode;
    const char *events;
    AfutFutureState state;
  } cases[] = {
    { ON_CANCEL_RERAISE, "start caught@2", AFUT_FUTURE_CANCELLED },
    { ON_CANCEL_CLEANUP_RERAISE, "start caught@2 cleaned@3",
      AFUT_FUTURE_CANCELLED },
    { ON_CANCEL_SWALLOW, "start caught@2 swallowed@3", AFUT_FUTURE_DONE },
    { ON_CANCEL_IN_HELPER, "start helper:wait caught@2",
      AFUT_FUTURE_CANCELLED },
  };
  guint i;
  for (i = 0; i < G_N_ELEMENTS (cases); i++)
    {
      AfutLoop *loop = loop_new ();
      AfutFuture *f, *h;
      afut_loop_push_thread_default (loop);
      f = afut_fiber_new (cancellee, GINT_TO_POINTER (cases[i].mode), NULL);
      h = afut_loop_call_later (loop, 2, cancel_soon, f);
      run (loop, f);
      assert_events (cases[i].events);
      assert_state (f, cases[i].state);
      if (cases[i].state == AFUT_FUTURE_CANCELLED)
        assert_error (afut_future_get_error (f), AFUT_ERROR,
                      AFUT_ERROR_CANCELLED, "stop");
      else
        g_assert_cmpint (afut_future_get_int (f), ==, 9);
      afut_future_unref (h);
      afut_future_unref (f);
      afut_loop_pop_thread_default (loop);
      afut_loop_unref (loop);
    }
}

/* Cancelled before its first step: the body never runs, no stack is
 * taken, the user data is destroyed. */
static AfutFuture *
never_runs (void *data)
{
  (void) data;
  g_assert_not_reached ();
  return NULL;
}

static void
test_cancel_before_start (void)
{
  AfutLoop *loop = loop_new ();
  AfutFuture *f;
  afut_loop_push_thread_default (loop);
  f = afut_fiber_new (never_runs, g_strdup ("data"), count_destroy);
  g_assert_true (afut_future_cancel (f, "early"));
  run (loop, f);
  assert_state (f, AFUT_FUTURE_CANCELLED);
  assert_error (afut_future_get_error (f), AFUT_ERROR, AFUT_ERROR_CANCELLED,
                "early");
  afut_future_unref (f);
  g_assert_cmpuint (n_destroyed, ==, 1);
  /* A lazy fiber cancelled before anyone awaited it. */
  f = afut_fiber_new_full (NULL, &(AfutFiberOptions){ .lazy = true },
                           never_runs, g_strdup ("data"), count_destroy);
  g_assert_true (afut_future_cancel (f, NULL));
  assert_state (f, AFUT_FUTURE_CANCELLED);
  afut_future_unref (f);
  g_assert_cmpuint (n_destroyed, ==, 2);
  afut_loop_pop_thread_default (loop);
  afut_loop_unref (loop);
}

/* The awaited future completes, then the fiber is cancelled before its
 * wakeup runs: the await raises the cancellation, as in asyncio, and
 * afut_await() says so with a failed future of its own. */
static AfutFuture *pending_future;

static AfutFuture *
await_then_cancelled (void *data)
{
  AfutFuture *r;
  (void) data;
  r = afut_await (afut_future_ref (pending_future));
  g_assert_true (r != pending_future);
  assert_state (r, AFUT_FUTURE_CANCELLED);
  assert_error (afut_future_get_error (r), AFUT_ERROR, AFUT_ERROR_CANCELLED,
                "late");
  assert_state (pending_future, AFUT_FUTURE_DONE);
  return r;
}

static void
resolve_and_cancel (void *data)
{
  afut_future_resolve_int (pending_future, 1);
  afut_future_cancel ((AfutFuture *) data, "late");
}

static void
test_cancel_after_completion (void)
{
  AfutLoop *loop = loop_new ();
  AfutFuture *f, *h;
  afut_loop_push_thread_default (loop);
  pending_future = afut_future_new (loop);
  f = afut_fiber_new (await_then_cancelled, NULL, NULL);
  h = afut_loop_call_later (loop, 1, resolve_and_cancel, f);
  run (loop, f);
  assert_state (f, AFUT_FUTURE_CANCELLED);
  afut_future_unref (h);
  afut_future_unref (f);
  afut_future_unref (pending_future);
  afut_loop_pop_thread_default (loop);
  afut_loop_unref (loop);
}

/* A cancel that comes while the fiber runs is delivered at its next
 * suspension; one that comes right before it returns ends it cancelled. */
static AfutFuture *
self_cancelling (void *data)
{
  AfutError *error = NULL;
  AfutTask *me = afut_fiber_get_current ();
  g_assert_nonnull (me);
  afut_future_cancel (AFUT_FUTURE (me), "self");
  g_assert_cmpuint (afut_task_cancelling (me), ==, 1);
  if (GPOINTER_TO_INT (data) == 1)
    return afut_future_new_for_int (1);
  g_assert_false (afut_await_check (afut_sleep (5), &error));
  assert_error (error, AFUT_ERROR, AFUT_ERROR_CANCELLED, "self");
  g_assert_cmpfloat (now (), ==, 0);
  afut_task_uncancel (me);
  afut_error_free (error);
  return afut_future_new_for_int (2);
}

static void
test_cancel_self (void)
{
  AfutLoop *loop = loop_new ();
  AfutFuture *f;
  afut_loop_push_thread_default (loop);
  f = run (loop, afut_fiber_new (self_cancelling, GINT_TO_POINTER (1), NULL));
  assert_state (f, AFUT_FUTURE_CANCELLED);
  afut_future_unref (f);
  f = run (loop, afut_fiber_new (self_cancelling, GINT_TO_POINTER (2), NULL));
  g_assert_cmpint (afut_future_get_int (f), ==, 2);
  afut_future_unref (f);
  afut_loop_pop_thread_default (loop);
  afut_loop_unref (loop);
}

/* ---- timeouts, wait_for, shield ---- */

static AfutFuture *
timed (void *data)
{
  double limit = *(double *) data;
  AfutTimeout timeout;
  AfutError *error = NULL;
  gboolean expired;
  afut_timeout_enter (afut_fiber_get_current (), &timeout, limit);
  afut_await_check (afut_sleep (2), &error);
  expired = afut_timeout_exit_with_error (&timeout, &error);
  ev ("expired=%d", expired);
  return error != NULL ? afut_future_new_for_error (error)
                       : afut_future_new_for_int (1);
}

static void
test_timeout (void)
{
  AfutLoop *loop = loop_new ();
  AfutFuture *f, *h;
  double limit = 1;
  afut_loop_push_thread_default (loop);
  f = run (loop, afut_fiber_new (timed, &limit, NULL));
  assert_state (f, AFUT_FUTURE_FAILED);
  assert_error (afut_future_get_error (f), AFUT_ERROR, AFUT_ERROR_TIMEOUT,
                NULL);
  g_assert_cmpfloat (afut_loop_time (loop), ==, 1);
  afut_future_unref (f);
  assert_events ("expired=1");
  limit = 3;
  f = run (loop, afut_fiber_new (timed, &limit, NULL));
  g_assert_cmpint (afut_future_get_int (f), ==, 1);
  afut_future_unref (f);
  assert_events ("expired=0");
  /* A cancel from outside stays a cancellation. */
  f = afut_fiber_new (timed, &limit, NULL);
  h = afut_loop_call_later (loop, 1, cancel_soon, f);
  run (loop, f);
  assert_state (f, AFUT_FUTURE_CANCELLED);
  assert_events ("expired=0");
  afut_future_unref (h);
  afut_future_unref (f);
  afut_loop_pop_thread_default (loop);
  afut_loop_unref (loop);
}

static AfutFuture *
slow (void *data)
{
  AfutError *error = NULL;
  (void) data;
  if (!afut_await_check (afut_sleep (5), &error))
    {
      ev ("slow:cancelled");
      return afut_future_new_for_error (error);
    }
  return afut_future_new_for_int (5);
}

static AfutFuture *
waits_for (void *data)
{
  AfutError *error = NULL;
  AfutFuture *inner;
  (void) data;
  g_assert_cmpint (afut_await_int (afut_wait_for (afut_fiber_new (slow, NULL,
                                                                  NULL),
                                                  1),
                                   &error),
                   ==, 0);
  assert_error (error, AFUT_ERROR, AFUT_ERROR_TIMEOUT, NULL);
  afut_error_free (error);
  error = NULL;
  /* shield: cancelling the outer leaves the fiber running */
  inner = afut_fiber_new (slow, NULL, NULL);
  {
    AfutFuture *s = afut_shield (afut_future_ref (inner));
    AfutFuture *h = afut_loop_call_later (afut_loop_get_running (), 1,
                                          cancel_soon, s);
    g_assert_false (afut_await_check (s, &error));
    afut_future_unref (h);
  }
  assert_error (error, AFUT_ERROR, AFUT_ERROR_CANCELLED, "stop");
  afut_error_free (error);
  g_assert_cmpint (afut_await_int (inner, NULL), ==, 5);
  g_assert_cmpfloat (now (), ==, 6);
  return NULL;
}

static void
test_wait_for_shield (void)
{
  AfutLoop *loop = loop_new ();
  AfutFuture *f;
  afut_loop_push_thread_default (loop);
  f = run (loop, afut_fiber_new (waits_for, NULL, NULL));
  assert_state (f, AFUT_FUTURE_DONE);
  assert_events ("slow:cancelled");
  afut_future_unref (f);
  afut_loop_pop_thread_default (loop);
  afut_loop_unref (loop);
}

/* ---- task groups ---- */

static AfutFuture *
child (void *data)
{
  int n = GPOINTER_TO_INT (data);
  AfutError *error = NULL;
  if (!afut_await_check (afut_sleep (n), &error))
    {
      ev ("child%d:cancelled", n);
      return afut_future_new_for_error (error);
    }
  if (n == 2)
    return afut_future_new_for_error (
      afut_error_new_literal (TEST_ERROR, 2, "child 2 failed"));
  ev ("child%d:done", n);
  return afut_future_new_for_int (n);
}

static AfutFuture *
group_body (void *data)
{
  AfutTaskGroup *g = afut_task_group_new (afut_fiber_get_current ());
  AfutFuture *exit;
  AfutError *error = NULL;
  (void) data;
  afut_task_group_spawn (g, afut_fiber_new (child, GINT_TO_POINTER (1), NULL));
  afut_task_group_spawn (g, afut_fiber_new (child, GINT_TO_POINTER (2), NULL));
  afut_task_group_spawn (g, afut_fiber_new (child, GINT_TO_POINTER (3), NULL));
  if (!afut_await_check (afut_sleep (10), &error))
    {
      /* a child failed: the group cancelled this await */
      assert_error (error, AFUT_ERROR, AFUT_ERROR_CANCELLED, NULL);
      ev ("body:cancelled@%g", now ());
      afut_error_free (error);
    }
  exit = afut_await (afut_task_group_exit (g));
  assert_state (exit, AFUT_FUTURE_FAILED);
  g_assert_cmpuint (afut_future_get_n_sub_errors (exit), ==, 1);
  assert_error (afut_future_get_sub_error (exit, 0), TEST_ERROR, 2,
                "child 2 failed");
  return exit;
}

static void
test_group (void)
{
  AfutLoop *loop = loop_new ();
  AfutFuture *f;
  afut_loop_push_thread_default (loop);
  f = run (loop, afut_fiber_new (group_body, NULL, NULL));
  assert_state (f, AFUT_FUTURE_FAILED);
  assert_error (afut_future_get_error (f), AFUT_ERROR, AFUT_ERROR_GROUP, NULL);
  assert_events ("child1:done child3:cancelled body:cancelled@2");
  afut_future_unref (f);
  afut_loop_pop_thread_default (loop);
  afut_loop_unref (loop);
}

/* A fiber that returns inside a group it never exited: the group exits
 * then, waiting for its children, as a stackless task's does. */
static AfutFuture *
group_left_open (void *data)
{
  AfutTaskGroup *g = afut_task_group_new (afut_fiber_get_current ());
  (void) data;
  afut_task_group_spawn (g, afut_fiber_new (child, GINT_TO_POINTER (3), NULL));
  ev ("body:return");
  return afut_future_new_for_int (7);
}

static void
test_group_left_open (void)
{
  AfutLoop *loop = loop_new ();
  AfutFuture *f;
  afut_loop_push_thread_default (loop);
  f = run (loop, afut_fiber_new (group_left_open, NULL, NULL));
  g_assert_cmpint (afut_future_get_int (f), ==, 7);
  g_assert_cmpfloat (afut_loop_time (loop), ==, 3);
  assert_events ("body:return child3:done");
  afut_future_unref (f);
  afut_loop_pop_thread_default (loop);
  afut_loop_unref (loop);
}

/* ---- fibers and stackless tasks awaiting each other ---- */

typedef struct
{
  AfutTask task;
  int n;
} Stackless;

static AfutFuture *fiber_leaf (void *data);

/* A stackless task that awaits a fiber and returns its value plus one. */
static void
stackless_awaits_fiber (AfutTask *task)
{
  Stackless *self = (Stackless *) task;
  AFUT_BEGIN (task);
  AFUT_AWAIT (task, afut_fiber_new (fiber_leaf, GINT_TO_POINTER (self->n),
                                    NULL));
  AFUT_RETURN_INT (task, afut_future_get_int (afut_task_awaited (task)) + 1);
  AFUT_END (task);
}

static AfutFuture *
fiber_leaf (void *data)
{
  if (!afut_await_check (afut_sleep (0.5), NULL))
    return NULL;
  return afut_future_new_for_int (GPOINTER_TO_INT (data) * 100);
}

static AfutFuture *
fiber_awaits_stackless (void *data)
{
  AfutError *error = NULL;
  int64_t v = afut_await_int (AFUT_SPAWN (Stackless, stackless_awaits_fiber,
                                          .n = GPOINTER_TO_INT (data)),
                              &error);
  if (error != NULL)
    return afut_future_new_for_error (error);
  return afut_future_new_for_int (v * 2);
}

static void
test_mixed_gather (void)
{
  AfutLoop *loop = loop_new ();
  AfutFuture *g, *a, *b, *c;
  afut_loop_push_thread_default (loop);
  a = afut_fiber_new (fiber_awaits_stackless, GINT_TO_POINTER (1), NULL);
  b = AFUT_SPAWN (Stackless, stackless_awaits_fiber, .n = 2);
  c = afut_fiber_new (fiber_leaf, GINT_TO_POINTER (3), NULL);
  g = run (loop, afut_gather (a, b, c, NULL));
  assert_state (g, AFUT_FUTURE_DONE);
  g_assert_cmpint (afut_future_get_int (afut_gather_get_item (g, 0)), ==, 202);
  g_assert_cmpint (afut_future_get_int (afut_gather_get_item (g, 1)), ==, 201);
  g_assert_cmpint (afut_future_get_int (afut_gather_get_item (g, 2)), ==, 300);
  afut_future_unref (g);
  afut_loop_pop_thread_default (loop);
  afut_loop_unref (loop);
}

/* Lazy fibers: `await coro()` runs them inline, as part of the awaiting
 * task, stackless or fiber; a cancel of that task reaches them. */
static AfutFuture *
lazy_child (void *data)
{
  AfutError *error = NULL;
  AfutTask *me = afut_fiber_get_current ();
  g_assert_nonnull (me);
  ev ("lazy:%s", (const char *) data);
  if (!afut_await_check (afut_sleep (1), &error))
    {
      ev ("lazy:cancelled");
      return afut_future_new_for_error (error);
    }
  return afut_future_new_for_int (1);
}

static AfutFuture *
lazy_new (const char *label)
{
  return afut_fiber_new_full (NULL, &(AfutFiberOptions){ .lazy = true },
                              lazy_child, (void *) label, NULL);
}

static void
stackless_awaits_lazy (AfutTask *task)
{
  AFUT_BEGIN (task);
  ev ("s:before");
  AFUT_AWAIT (task, lazy_new ("s"));
  ev ("s:after");
  AFUT_END (task);
}

static AfutFuture *
fiber_awaits_lazy (void *data)
{
  AfutError *error = NULL;
  int64_t v;
  (void) data;
  ev ("f:before");
  v = afut_await_int (lazy_new ("f"), &error);
  if (error != NULL)
    return afut_future_new_for_error (error);
  g_assert_cmpint (v, ==, 1);
  ev ("f:after");
  return NULL;
}

static void
test_lazy (void)
{
  AfutLoop *loop = loop_new ();
  AfutFuture *f;
  afut_loop_push_thread_default (loop);
  afut_future_unref (run (loop, AFUT_SPAWN (AfutTask, stackless_awaits_lazy)));
  assert_events ("s:before lazy:s s:after");
  afut_future_unref (run (loop, afut_fiber_new (fiber_awaits_lazy, NULL, NULL)));
  assert_events ("f:before lazy:f f:after");
  /* Cancelling the host cancels where the inline fiber waits. */
  f = afut_fiber_new (fiber_awaits_lazy, NULL, NULL);
  afut_future_unref (afut_loop_call_later (loop, 0.5, cancel_soon, f));
  run (loop, f);
  assert_state (f, AFUT_FUTURE_CANCELLED);
  assert_events ("f:before lazy:f lazy:cancelled");
  afut_future_unref (f);
  afut_loop_pop_thread_default (loop);
  afut_loop_unref (loop);
}

/* ---- resumed from another fiber's stack ----
 * A fiber completes a future that another fiber awaits: the waiter is
 * handed the result inline, resumed on the first fiber's stack, and
 * switches back there when it suspends. */
static AfutFuture *baton[4];

static AfutFuture *
relay (void *data)
{
  int i = GPOINTER_TO_INT (data), round;
  for (round = 0; round < 3; round++)
    {
      if (!afut_await_check (afut_future_ref (baton[i]), NULL))
        return NULL;
      afut_future_unref (baton[i]);
      baton[i] = afut_future_new (NULL);
      ev ("r%d.%d", i, round);
      if (i < 3)
        afut_future_resolve (baton[i + 1]);
    }
  return NULL;
}

static AfutFuture *
relay_main (void *data)
{
  AfutFuture *fibers[4];
  int i;
  (void) data;
  for (i = 0; i < 4; i++)
    baton[i] = afut_future_new (NULL);
  for (i = 0; i < 4; i++)
    fibers[i] = afut_fiber_new (relay, GINT_TO_POINTER (i), NULL);
  afut_await_check (afut_sleep (0), NULL);
  for (i = 0; i < 3; i++)
    {
      afut_future_resolve (baton[0]);
      afut_await_check (afut_sleep (1), NULL);
    }
  for (i = 0; i < 4; i++)
    {
      afut_await_check (fibers[i], NULL);
      afut_future_unref (baton[i]);
    }
  return NULL;
}

static void
test_relay (void)
{
  AfutLoop *loop = loop_new ();
  afut_loop_push_thread_default (loop);
  afut_future_unref (run (loop, afut_fiber_new (relay_main, NULL, NULL)));
  assert_events ("r0.0 r1.0 r2.0 r3.0 r0.1 r1.1 r2.1 r3.1 r0.2 r1.2 r2.2 r3.2");
  afut_loop_pop_thread_default (loop);
  afut_loop_unref (loop);
}

/* ---- sync primitives and queues between fibers ---- */

static AfutFuture *
producer (void *data)
{
  AfutQueue *q = (AfutQueue *) data;
  int i;
  for (i = 0; i < 5; i++)
    {
      if (!afut_await_check (afut_queue_put (q, g_strdup_printf ("item%d", i)), NULL))
        return NULL;
      ev ("put%d", i);
    }
  return NULL;
}

static AfutFuture *
consumer (void *data)
{
  AfutQueue *q = (AfutQueue *) data;
  int i;
  for (i = 0; i < 5; i++)
    {
      g_autofree char *item = afut_await_pointer (afut_queue_get (q), NULL);
      ev ("got:%s", item);
      afut_await_check (afut_sleep (1), NULL);
    }
  return NULL;
}

static AfutFuture *
locker (void *data)
{
  AfutLock *lock = (AfutLock *) data;
  const char *me = afut_task_get_name (afut_fiber_get_current ());
  if (!afut_await_check (afut_lock_acquire (lock), NULL))
    return NULL;
  ev ("%s:in", me);
  afut_await_check (afut_sleep (1), NULL);
  ev ("%s:out", me);
  afut_lock_release (lock);
  return NULL;
}

static void
test_sync (void)
{
  AfutLoop *loop = loop_new ();
  AfutQueue *q;
  AfutLock *lock;
  AfutFuture *a, *b;
  afut_loop_push_thread_default (loop);
  q = afut_queue_new (loop, AFUT_QUEUE_FIFO, 2, NULL, g_free);
  /* C evaluates arguments in no set order: spawn first */
  a = afut_fiber_new (producer, q, NULL);
  b = afut_fiber_new (consumer, q, NULL);
  afut_future_unref (run (loop, afut_gather (a, b, NULL)));
  assert_events ("put0 put1 got:item0 put2 got:item1 put3 got:item2 put4 "
                 "got:item3 got:item4");
  afut_queue_unref (q);
  lock = afut_lock_new (loop);
  a = afut_fiber_new_full (NULL, &(AfutFiberOptions){ .name = "x" }, locker,
                           lock, NULL);
  b = afut_fiber_new_full (NULL, &(AfutFiberOptions){ .name = "y" }, locker,
                           lock, NULL);
  afut_future_unref (run (loop, afut_gather (a, b, NULL)));
  assert_events ("x:in x:out y:in y:out");
  afut_lock_unref (lock);
  afut_loop_pop_thread_default (loop);
  afut_loop_unref (loop);
}

/* ---- names, describe, stacks ---- */

static AfutFuture *
sleeper (void *data)
{
  (void) data;
  afut_await_check (afut_sleep (3), NULL);
  return NULL;
}

static void
test_describe (void)
{
  AfutLoop *loop = loop_new ();
  AfutFuture *f;
  char buf[256];
  afut_loop_push_thread_default (loop);
  f = AFUT_FIBER (sleeper, NULL);
  g_assert_cmpstr (afut_task_get_name (AFUT_TASK (f)), ==, "sleeper");
  afut_loop_iterate (loop, false);
  afut_task_describe (AFUT_TASK (f), buf, sizeof buf);
  g_assert_true (g_str_has_prefix (buf, "Task 'sleeper' ("));
  g_assert_nonnull (strstr (buf, "pending, awaiting sleep"));
  g_assert_cmpuint (afut_loop_get_n_tasks (loop), ==, 1);
  run (loop, f);
  afut_future_unref (f);
  /* A bigger stack than the default, named. */
  f = run (loop, afut_fiber_new_full (loop, &(AfutFiberOptions){ .name = "big", .stack_size = 4 << 20 },
                                      sleeper, NULL, NULL));
  assert_state (f, AFUT_FUTURE_DONE);
  g_assert_cmpstr (afut_task_get_name (AFUT_TASK (f)), ==, "big");
  afut_future_unref (f);
  afut_loop_pop_thread_default (loop);
  afut_loop_unref (loop);
}

/* A big frame needs a big stack: 1 MiB of locals in a fiber of 2 MiB. */
static AfutFuture *
big_frame (void *data)
{
  volatile char buf[1 << 20];
  (void) data;
  buf[0] = 1;
  buf[sizeof buf - 1] = 2;
  afut_await_check (afut_sleep (1), NULL);
  return afut_future_new_for_int (buf[0] + buf[sizeof buf - 1]);
}

static void
test_stack_size (void)
{
  AfutLoop *loop = loop_new ();
  AfutFuture *f;
  afut_loop_push_thread_default (loop);
  f = run (loop, afut_fiber_new_full (loop, &(AfutFiberOptions){ .stack_size = 2 << 20 },
                                      big_frame, NULL, NULL));
  g_assert_cmpint (afut_future_get_int (f), ==, 3);
  afut_future_unref (f);
  afut_loop_pop_thread_default (loop);
  afut_loop_unref (loop);
}

/* Many pending fibers at once, each on a stack of its own; then all
 * complete and their stacks go back. */
/* ThreadSanitizer maps about 1.2 MiB of trace per fiber it is told of:
 * 10^4 fibers exhaust it (ENOMEM), so fewer there. */
#if defined(__SANITIZE_THREAD__)
#define N_MANY 300
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define N_MANY 300
#endif
#endif
#ifndef N_MANY
#define N_MANY 10000
#endif
static AfutFuture *many_gate;

static AfutFuture *
many_body (void *data)
{
  int i = GPOINTER_TO_INT (data);
  if (!afut_await_check (afut_future_ref (many_gate), NULL))
    return NULL;
  return afut_future_new_for_int (i);
}

static void
test_many (void)
{
  AfutLoop *loop = loop_new ();
  AfutFuture **fs = g_new (AfutFuture *, N_MANY);
  int i;
  afut_loop_push_thread_default (loop);
  many_gate = afut_future_new (loop);
  for (i = 0; i < N_MANY; i++)
    fs[i] = afut_fiber_new (many_body, GINT_TO_POINTER (i), NULL);
  afut_loop_iterate (loop, false);
  g_assert_cmpuint (afut_loop_get_n_tasks (loop), ==, N_MANY);
  afut_future_resolve (many_gate);
  for (i = 0; i < N_MANY; i++)
    {
      run (loop, fs[i]);
      g_assert_cmpint (afut_future_get_int (fs[i]), ==, i);
      afut_future_unref (fs[i]);
    }
  afut_future_unref (many_gate);
  g_free (fs);
  afut_loop_pop_thread_default (loop);
  afut_loop_unref (loop);
}

/* ---- shutdown ---- */

static AfutFuture *
cleans_up_at_shutdown (void *data)
{
  AfutError *error = NULL;
  (void) data;
  if (!afut_await_check (afut_sleep (100), &error))
    {
      ev ("cleanup");
      /* cleanup awaits still run while the loop closes */
      afut_await_check (afut_sleep (0), NULL);
      ev ("cleaned");
      return afut_future_new_for_error (error);
    }
  return NULL;
}

static void
test_shutdown (void)
{
  AfutLoop *loop = loop_new ();
  AfutFuture *f;
  afut_loop_push_thread_default (loop);
  f = afut_fiber_new (cleans_up_at_shutdown, NULL, NULL);
  afut_loop_iterate (loop, false);
  afut_loop_pop_thread_default (loop);
  afut_loop_unref (loop);
  assert_state (f, AFUT_FUTURE_CANCELLED);
  assert_events ("cleanup cleaned");
  afut_future_unref (f);

}

/* ---- misuse ---- */

static void
stackless_calls_fiber_await (AfutTask *task)
{
  AfutFuture *r;
  AFUT_BEGIN (task);
  r = afut_await (afut_sleep (1));
  assert_state (r, AFUT_FUTURE_FAILED);
  assert_error (afut_future_get_error (r), AFUT_ERROR, AFUT_ERROR_INVALID_STATE,
                "afut_await called outside a fiber's body");
  afut_future_unref (r);
  AFUT_END (task);
}

static void
test_misuse_outside (void)
{
  if (g_test_subprocess ())
    {
      AfutLoop *loop = afut_loop_new (AFUT_LOOP_VIRTUAL_CLOCK);
      AfutError *error = NULL;
      AfutFuture *f;
      afut_set_log_func (NULL, NULL);
      /* no loop running at all */
      g_assert_false (afut_await_check (NULL, &error));
      assert_error (error, AFUT_ERROR, AFUT_ERROR_INVALID_STATE, NULL);
      afut_error_free (error);
      g_assert_null (afut_await (NULL));
      g_assert_false (afut_fiber_yield (NULL));
      g_assert_null (afut_fiber_get_current ());
      /* inside a stackless step */
      afut_loop_push_thread_default (loop);
      f = AFUT_SPAWN (AfutTask, stackless_calls_fiber_await);
      run (loop, f);
      assert_state (f, AFUT_FUTURE_DONE);
      afut_future_unref (f);
      g_assert_null (afut_fiber_new (NULL, NULL, NULL));
      afut_loop_pop_thread_default (loop);
      afut_loop_unref (loop);
      return;
    }
  g_test_trap_subprocess (NULL, 0, G_TEST_SUBPROCESS_DEFAULT);
  g_test_trap_assert_passed ();
  g_test_trap_assert_stderr ("*CRITICAL*afut_await_check: not inside a fiber*"
                             "*CRITICAL*afut_await: not inside a fiber*"
                             "*CRITICAL*afut_fiber_yield: not inside*"
                             "*CRITICAL*afut_await: not inside a fiber*"
                             "*CRITICAL*func != NULL*");
}

static AfutFuture *
leaves_timeout_open (void *data)
{
  AfutTimeout timeout;
  (void) data;
  afut_timeout_enter (afut_fiber_get_current (), &timeout, 10);
  return NULL;
}

static void
test_misuse_open_timeout (void)
{
  if (g_test_subprocess ())
    {
      AfutLoop *loop = afut_loop_new (AFUT_LOOP_VIRTUAL_CLOCK);
      afut_set_log_func (NULL, NULL);
      afut_loop_push_thread_default (loop);
      run (loop, afut_fiber_new (leaves_timeout_open, NULL, NULL));
      return;
    }
  g_test_trap_subprocess (NULL, 0, G_TEST_SUBPROCESS_DEFAULT);
  g_test_trap_assert_failed ();
  g_test_trap_assert_stderr ("*CRITICAL*fiber 'Task-1' returned inside a "
                             "timeout*");
}

/* An overflow ends the process with a clear error, never silently: on a
 * guard page (SIGSEGV), or at the canary check. */
static int
recurse (int n)
{
  volatile char pad[512];
  pad[0] = (char) n;
  if (n == 0)
    return pad[0];
  return recurse (n - 1) + pad[0];
}

static AfutFuture *
overflows (void *data)
{
  (void) data;
  return afut_future_new_for_int (recurse (1 << 20));
}

static void
test_overflow (void)
{
  if (g_test_subprocess ())
    {
      AfutLoop *loop = afut_loop_new (AFUT_LOOP_VIRTUAL_CLOCK);
      afut_set_log_func (NULL, NULL);
      afut_loop_push_thread_default (loop);
      run (loop, afut_fiber_new (overflows, NULL, NULL));
      return;
    }
  g_test_trap_subprocess (NULL, 0, G_TEST_SUBPROCESS_DEFAULT);
  g_test_trap_assert_failed ();
}

/* ---- stacks without a guard page: the canary ---- */

/* Beyond a quarter of vm.max_map_count guarded stacks, a new stack gets
 * no guard page, only the zeroed canary checked at each switch out.  The
 * count is process-wide: these tests set it at the budget (white box)
 * rather than map 16382 stacks. */
static size_t
use_up_guards (void)
{
  size_t saved = __atomic_load_n (&afut__fiber_n_guarded, __ATOMIC_RELAXED);
  __atomic_store_n (&afut__fiber_n_guarded, afut__fiber_guard_budget (),
                    __ATOMIC_RELAXED);
  return saved;
}

static AfutFuture *
canary_body (void *data)
{
  int *guarded = data;
  int i;
  *guarded = afut__fiber_current->stack->guarded;
  for (i = 0; i < 3; i++)
    if (!afut_await_check (afut_sleep (0.5), NULL))
      return NULL;
  return afut_future_new_for_int (7);
}

static void
test_canary_stack (void)
{
  AfutLoop *loop = loop_new ();
  size_t saved;
  int guarded = -1;
  AfutFuture *f;
  afut_loop_push_thread_default (loop);
  saved = use_up_guards ();
  /* Not the default size: a new stack, not one from the pool. */
  f = run (loop, afut_fiber_new_full (loop,
                                      &(AfutFiberOptions){ .stack_size = 96 << 10 },
                                      canary_body, &guarded, NULL));
  g_assert_cmpint (guarded, ==, 0);
  g_assert_cmpint (afut_future_get_int (f), ==, 7);
  /* An unguarded stack gave back no guard when it was freed. */
  g_assert_cmpuint (__atomic_load_n (&afut__fiber_n_guarded, __ATOMIC_RELAXED),
                    ==, afut__fiber_guard_budget ());
  __atomic_store_n (&afut__fiber_n_guarded, saved, __ATOMIC_RELAXED);
  afut_future_unref (f);
  afut_loop_pop_thread_default (loop);
  afut_loop_unref (loop);
}

static AfutFuture *
tramples_canary (void *data)
{
  (void) data;
  /* What a frame running off the stack's low end would do first. */
  afut__fiber_current->stack->lo[5] = 1;
  afut_await_check (afut_sleep (1), NULL);
  return NULL;
}

static void
test_canary_overflow (void)
{
  if (g_test_subprocess ())
    {
      AfutLoop *loop = afut_loop_new (AFUT_LOOP_VIRTUAL_CLOCK);
      afut_set_log_func (NULL, NULL);
      afut_loop_push_thread_default (loop);
      use_up_guards ();
      run (loop, afut_fiber_new_full (loop,
                                      &(AfutFiberOptions){ .name = "deep", .stack_size = 96 << 10 },
                                      tramples_canary, NULL, NULL));
      return;
    }
  g_test_trap_subprocess (NULL, 0, G_TEST_SUBPROCESS_DEFAULT);
  g_test_trap_assert_failed ();
  g_test_trap_assert_stderr ("*fiber 'deep' overflowed its stack*");
}

/* ---- afut_run_fiber: asyncio.run() with a fiber as main ---- */

static AfutFuture *
run_child (void *data)
{
  int64_t *n = data;
  if (!afut_await_check (afut_sleep (1), NULL))
    return NULL;
  return afut_future_new_for_int (++*n);
}

static AfutFuture *
run_main_ok (void *data)
{
  int64_t n = 0, got;
  AfutError *error = NULL;
  (void) data;
  g_assert_nonnull (afut_fiber_get_current ());
  g_assert_cmpstr (afut_task_get_name (afut_fiber_get_current ()), ==,
                   "run_main_ok");
  /* A lazy fiber runs inline in the await, named after its body. */
  got = afut_await_int (AFUT_FIBER_CORO (run_child, &n), &error);
  g_assert_null (error);
  g_assert_cmpint (got, ==, 1);
  g_assert_cmpfloat (afut_loop_time (afut_loop_get_running ()), ==, 1.0);
  return afut_future_new_for_int (n);
}

static AfutFuture *
run_main_fails (void *data)
{
  (void) data;
  /* Left pending: the run's cleanup cancels it, with main done. */
  afut_future_unref (AFUT_FIBER (run_child, data));
  return afut_future_new_for_error (
    afut_error_new_literal (TEST_ERROR, 3, "main broke"));
}

static void
test_run_fiber (void)
{
  if (g_test_subprocess ())
    {
      int64_t n = 0;
      g_setenv ("AFUT_CLOCK", "virtual", TRUE);
      g_assert_cmpint (AFUT_RUN_FIBER (run_main_ok, NULL), ==, 0);
      g_assert_cmpint (AFUT_RUN_FIBER (run_main_fails, &n), ==, 1);
      /* The child never ran past its await: the loop was closed. */
      g_assert_cmpint (n, ==, 0);
      afut_set_log_func (NULL, NULL);
      g_assert_cmpint (afut_run_fiber (NULL, NULL, "x"), ==, 1);
      return;
    }
  g_test_trap_subprocess (NULL, 0, G_TEST_SUBPROCESS_DEFAULT);
  g_test_trap_assert_passed ();
  /* (Leading '*': under ASan, the ucontext switch's first swapcontext
   * prints ASan's warning about it before anything of ours.) */
  g_test_trap_assert_stderr ("*afut: main task 'run_main_fails' failed: "
                             "test-error-quark:3: main broke\n"
                             "*CRITICAL*afut_run_fiber*func != NULL*");
}

/* afut_run_fiber() inside a running loop is refused, not a nested run. */
static AfutFuture *
runs_nested (void *data)
{
  (void) data;
  return afut_future_new_for_int (afut_run_fiber (run_main_ok, NULL, NULL));
}

static void
test_run_fiber_nested (void)
{
  if (g_test_subprocess ())
    {
      AfutLoop *loop = afut_loop_new (AFUT_LOOP_VIRTUAL_CLOCK);
      AfutFuture *f;
      afut_set_log_func (NULL, NULL);
      afut_loop_push_thread_default (loop);
      f = run (loop, afut_fiber_new (runs_nested, NULL, NULL));
      g_assert_cmpint (afut_future_get_int (f), ==, 1);
      afut_future_unref (f);
      afut_loop_pop_thread_default (loop);
      afut_loop_unref (loop);
      return;
    }
  g_test_trap_subprocess (NULL, 0, G_TEST_SUBPROCESS_DEFAULT);
  g_test_trap_assert_passed ();
  g_test_trap_assert_stderr ("*CRITICAL*afut_run_fiber: cannot be called from "
                             "a running event loop*");
}

int
main (int argc, char **argv)
{
  g_test_init (&argc, &argv, NULL);
  events = g_string_new (NULL);
  lines = g_string_new (NULL);
  warnings = g_ptr_array_new_with_free_func (g_free);
  afut_set_log_func (log_func, NULL);

  g_test_add_func ("/fiber/locals/loops-switch-helpers", test_locals);
  g_test_add_func ("/fiber/values/returns", test_values);
  g_test_add_func ("/fiber/values/shared-pointer", test_values_shared);
  g_test_add_func ("/fiber/await/done-does-not-switch", test_await_done);
  g_test_add_func ("/fiber/await/yield-order", test_yield_order);
  g_test_add_func ("/fiber/cancel/modes", test_cancel_modes);
  g_test_add_func ("/fiber/cancel/before-first-step", test_cancel_before_start);
  g_test_add_func ("/fiber/cancel/after-completion", test_cancel_after_completion);
  g_test_add_func ("/fiber/cancel/self", test_cancel_self);
  g_test_add_func ("/fiber/timeout/scope", test_timeout);
  g_test_add_func ("/fiber/timeout/wait-for-shield", test_wait_for_shield);
  g_test_add_func ("/fiber/group/child-fails", test_group);
  g_test_add_func ("/fiber/group/left-open", test_group_left_open);
  g_test_add_func ("/fiber/mixed/gather", test_mixed_gather);
  g_test_add_func ("/fiber/mixed/lazy", test_lazy);
  g_test_add_func ("/fiber/mixed/relay", test_relay);
  g_test_add_func ("/fiber/sync/queue-lock", test_sync);
  g_test_add_func ("/fiber/task/describe-name-size", test_describe);
  g_test_add_func ("/fiber/stack/size", test_stack_size);
  g_test_add_func ("/fiber/stack/many", test_many);
  g_test_add_func ("/fiber/shutdown/pending", test_shutdown);
  g_test_add_func ("/fiber/misuse/outside", test_misuse_outside);
  g_test_add_func ("/fiber/misuse/open-timeout", test_misuse_open_timeout);
  g_test_add_func ("/fiber/stack/overflow", test_overflow);
  g_test_add_func ("/fiber/stack/canary", test_canary_stack);
  g_test_add_func ("/fiber/stack/canary-overflow", test_canary_overflow);
  g_test_add_func ("/fiber/run/main", test_run_fiber);
  g_test_add_func ("/fiber/run/nested-refused", test_run_fiber_nested);

  {
    int rc = g_test_run ();
    g_string_free (events, TRUE);
    g_string_free (lines, TRUE);
    g_ptr_array_unref (warnings);
    return rc;
  }
}
