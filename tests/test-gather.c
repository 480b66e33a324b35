/* test-gather.c - afut_gather and afut_gather_return_exceptions: results
 * and errors (DESIGN.md rule 6), cancellation (rule 7), no children and
 * duplicates (rule 8), nesting, done children, the array forms, and
 * errors that must not be reported as never retrieved (rule 9).  Every
 * loop runs on the virtual clock; event order is recorded in a log and
 * compared with the expected sequence. */

#define AFUT_IMPLEMENTATION
#include "afut.h"

#include <glib.h>

#include "event-log.h"
#include <string.h>

/* ---- harness ---- */

#define TEST_ERROR (afut_quark_from_static_string ("test-error-quark"))

static GPtrArray *reports; /* what the loop's exception handler was told */


/* The running loop's virtual time, in seconds. */
static double
now (void)
{
  return afut_loop_time (afut_loop_get_running ());
}

/* These suites use afut correctly: any critical or warning fails the
 * test. */
static void
log_func (AfutLogLevel level, const char *message, void *data)
{
  (void) data;
  g_test_message ("unexpected afut %s: %s",
                  level == AFUT_LOG_CRITICAL ? "critical" : "warning",
                  message);
  g_test_fail ();
}

static void
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

static void
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

static AfutLoop *
loop_new (void)
{
  AfutLoop *loop = afut_loop_new (AFUT_LOOP_VIRTUAL_CLOCK);
  g_assert_nonnull (loop);
  g_string_truncate (events, 0);
  g_string_truncate (lines, 0);
  g_ptr_array_set_size (reports, 0);
  afut_loop_set_exception_handler (loop, record_report, NULL);
  return loop;
}

/* Frees the loop; nothing may have been reported as never retrieved. */
static void
loop_free (AfutLoop *loop)
{
  afut_loop_unref (loop);
  assert_reports ("");
}

/* Runs @loop until @future is done, then one more batch without moving
 * the clock, so that the done callbacks just queued (log_done) run. */
static void
run_until_done (AfutLoop *loop, AfutFuture *future)
{
  g_assert_true (afut_loop_run_until_complete (loop, future));
  g_assert_true (afut_loop_iterate (loop, false));
}

static void
log_callback (void *data)
{
  ev ("%s", (const char *) data);
}

/* A done callback: "LABEL:STATE@TIME". */
static void
log_done (AfutFuture *future, void *data)
{
  ev ("%s:%s@%g", (const char *) data,
      afut_future_state_to_string (afut_future_get_state (future)), now ());
}

static const char *
error_kind (const AfutError *error)
{
  return afut_error_is_cancelled (error) ? "cancelled" : "error";
}

static void
assert_error (const AfutError *error, AfutQuark domain, int code,
              const char *message)
{
  g_assert_nonnull (error);
  g_assert_cmpstr (afut_quark_to_string (error->domain), ==,
                   afut_quark_to_string (domain));
  g_assert_cmpint (error->code, ==, code);
  g_assert_cmpstr (error->message, ==, message);
}

static void
assert_state (AfutFuture *future, AfutFutureState state)
{
  g_assert_cmpstr (afut_future_state_to_string (afut_future_get_state (future)),
                   ==, afut_future_state_to_string (state));
}

static void
assert_cancelled (AfutFuture *future, const char *message)
{
  assert_state (future, AFUT_FUTURE_CANCELLED);
  g_assert_true (afut_future_is_cancelled (future));
  assert_error (afut_future_get_error (future), AFUT_ERROR,
                AFUT_ERROR_CANCELLED, message);
}

static void
assert_failed (AfutFuture *future, const char *message)
{
  assert_state (future, AFUT_FUTURE_FAILED);
  assert_error (afut_future_get_error (future), TEST_ERROR, 7, message);
}

static void
assert_int (AfutFuture *future, int64_t value)
{
  assert_state (future, AFUT_FUTURE_DONE);
  g_assert_cmpint (afut_future_get_int (future), ==, value);
}

/* ---- task bodies ---- */

/* Sleeps @delay, then returns @value or fails with @fail.  A cancellation
 * is logged, then re-raised or, with @swallow, turned into @value. */
typedef struct
{
  AfutTask task;
  const char *label;
  double delay;
  int64_t value;
  const char *fail;
  bool swallow;
} Worker;

static void
worker (AfutTask *task)
{
  Worker *self = (Worker *) task;
  AFUT_BEGIN (task);
  ev ("%s:start@%g", self->label, now ());
  AFUT_AWAIT_TRY (task, afut_sleep (self->delay));
  if (afut_task_caught (task) != NULL)
    {
      ev ("%s:%s:%s@%g", self->label, error_kind (afut_task_caught (task)),
          afut_task_caught (task)->message, now ());
      if (self->swallow)
        AFUT_RETURN_INT (task, self->value);
      AFUT_RERAISE (task);
    }
  if (self->fail != NULL)
    {
      ev ("%s:fail@%g", self->label, now ());
      AFUT_THROW (task, afut_error_new_literal (TEST_ERROR, 7, self->fail));
    }
  ev ("%s:end@%g", self->label, now ());
  AFUT_RETURN_INT (task, self->value);
  AFUT_END (task);
}

static AfutFuture *
worker_new (AfutLoop *loop, const Worker *init)
{
  return afut_task_new (loop, worker, sizeof (Worker), init, init->label,
                        NULL);
}

/* Cancels @target after @at seconds. */
typedef struct
{
  AfutTask task;
  AfutFuture *target; /* borrowed */
  double at;
  const char *message;
  bool returned;
} Canceller;

static void
canceller (AfutTask *task)
{
  Canceller *self = (Canceller *) task;
  AFUT_BEGIN (task);
  AFUT_AWAIT (task, afut_sleep (self->at));
  ev ("cancel@%g", now ());
  self->returned = afut_future_cancel (self->target, self->message);
  AFUT_END (task);
}

static AfutFuture *
canceller_new (AfutLoop *loop, AfutFuture *target, double at,
               const char *message)
{
  return afut_task_new (loop, canceller, sizeof (Canceller),
                        &(Canceller){ .target = target,
                                      .at = at,
                                      .message = message },
                        "canceller", NULL);
}

static bool
canceller_returned (AfutFuture *c)
{
  assert_state (c, AFUT_FUTURE_DONE);
  return ((Canceller *) c)->returned;
}

/* Awaits @gather (its reference), catching or not; logs the outcome;
 * lingers; re-raises what it caught if asked. */
typedef struct
{
  AfutTask task;
  AfutFuture *gather; /* given to the await */
  bool catching;
  bool reraise;
  double linger;
} GatherMain;

static void
gather_main (AfutTask *task)
{
  GatherMain *self = (GatherMain *) task;
  AFUT_BEGIN (task);
  if (self->catching)
    {
      AFUT_AWAIT_TRY (task, self->gather);
    }
  else
    {
      AFUT_AWAIT (task, self->gather);
    }
  self->gather = NULL;
  if (afut_task_caught (task) != NULL)
    ev ("main:%s:%s@%g", error_kind (afut_task_caught (task)),
        afut_task_caught (task)->message, now ());
  else
    ev ("main:ok:%zu@%g", afut_gather_get_n_items (afut_task_awaited (task)),
        now ());
  if (self->linger > 0)
    {
      AFUT_AWAIT (task, afut_sleep (self->linger));
      ev ("main:end@%g", now ());
    }
  if (self->reraise && afut_task_caught (task) != NULL)
    AFUT_RERAISE (task);
  AFUT_END (task);
}

static AfutFuture *
gather_main_new (AfutLoop *loop, const GatherMain *init)
{
  return afut_task_new (loop, gather_main, sizeof (GatherMain), init, "main",
                        NULL);
}

/* ---- rule 6: results ---- */

static void
test_results_input_order (void)
{
  AfutLoop *loop = loop_new ();
  AfutFuture *a = worker_new (loop, &(Worker){ .label = "a", .delay = 2,
                                               .value = 1 });
  AfutFuture *b = worker_new (loop, &(Worker){ .label = "b", .delay = 1,
                                               .value = 2 });
  AfutFuture *c = worker_new (loop, &(Worker){ .label = "c", .delay = 3,
                                               .value = 3 });
  AfutFuture *g = afut_gather (a, b, c, NULL);

  afut_future_add_done_callback (g, log_done, "gather");
  run_until_done (loop, g);
  g_assert_cmpstr (events->str, ==,
                   "a:start@0 b:start@0 c:start@0 b:end@1 a:end@2 c:end@3 "
                   "gather:done@3");
  assert_state (g, AFUT_FUTURE_DONE);
  g_assert_null (afut_future_get_error (g));
  /* Input order, not completion order. */
  g_assert_cmpuint (afut_gather_get_n_items (g), ==, 3);
  g_assert_true (afut_gather_get_item (g, 0) == a);
  g_assert_true (afut_gather_get_item (g, 1) == b);
  g_assert_true (afut_gather_get_item (g, 2) == c);
  assert_int (afut_gather_get_item (g, 0), 1);
  assert_int (afut_gather_get_item (g, 1), 2);
  assert_int (afut_gather_get_item (g, 2), 3);
  afut_future_unref (g);
  loop_free (loop);
}

/* The tutorial's 06-gather-results.py. */
typedef struct
{
  AfutTask task;
  int id;
  double delay;
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

typedef struct
{
  AfutTask task;
  size_t i;
  GString *printed;
} FetchMain;

static void
fetch_main (AfutTask *task)
{
  FetchMain *self = (FetchMain *) task;
  AFUT_BEGIN (task);
  AFUT_AWAIT (task, afut_gather (AFUT_CORO (Fetch, fetch_data, .id = 1,
                                            .delay = 2),
                                 AFUT_CORO (Fetch, fetch_data, .id = 2,
                                            .delay = 1),
                                 AFUT_CORO (Fetch, fetch_data, .id = 3,
                                            .delay = 3),
                                 NULL));
  self->printed = g_string_new ("[");
  for (self->i = 0;
       self->i < afut_gather_get_n_items (afut_task_awaited (task));
       self->i++)
    g_string_append_printf (
      self->printed, "%s'%s'", self->i > 0 ? ", " : "",
      (const char *) afut_future_get_pointer (
        afut_gather_get_item (afut_task_awaited (task), self->i)));
  g_string_append_c (self->printed, ']');
  line ("%s", self->printed->str);
  g_string_free (self->printed, TRUE);
  self->printed = NULL;
  AFUT_END (task);
}

static void
test_results_tutorial (void)
{
  AfutLoop *loop = loop_new ();
  AfutFuture *t = afut_task_new (loop, fetch_main, sizeof (FetchMain), NULL,
                                 "main", NULL);

  afut_loop_run_until_complete (loop, t);
  assert_state (t, AFUT_FUTURE_DONE);
  /* tests/seed/06-gather-results.out, CPython's output */
  g_assert_cmpstr (lines->str, ==,
                   "Task 1 started\n"
                   "Task 2 started\n"
                   "Task 3 started\n"
                   "Task 2 completed\n"
                   "Task 1 completed\n"
                   "Task 3 completed\n"
                   "['data-1', 'data-2', 'data-3']\n");
  g_assert_cmpfloat (afut_loop_time (loop), ==, 3.0);
  afut_future_unref (t);
  loop_free (loop);
}

/* ---- rule 6: errors without return_exceptions ---- */

static void
test_error_first_fails_outer (void)
{
  AfutLoop *loop = loop_new ();
  AfutFuture *a = worker_new (loop, &(Worker){ .label = "a", .delay = 2,
                                               .value = 1 });
  AfutFuture *b = worker_new (loop, &(Worker){ .label = "b", .delay = 1,
                                               .fail = "boom" });
  AfutFuture *c = worker_new (loop, &(Worker){ .label = "c", .delay = 3,
                                               .value = 3 });
  AfutFuture *g = afut_gather (a, b, c, NULL);

  afut_future_add_done_callback (g, log_done, "gather");
  run_until_done (loop, g);
  /* At once: at 1 s, the others still running. */
  g_assert_cmpfloat (afut_loop_time (loop), ==, 1.0);
  assert_failed (g, "boom");
  assert_state (a, AFUT_FUTURE_PENDING);
  assert_state (c, AFUT_FUTURE_PENDING);

  /* They are not cancelled: they finish with their values. */
  afut_loop_run_until_complete (loop, c);
  g_assert_cmpstr (events->str, ==,
                   "a:start@0 b:start@0 c:start@0 b:fail@1 gather:failed@1 "
                   "a:end@2 c:end@3");
  assert_int (a, 1);
  assert_failed (b, "boom");
  assert_int (c, 3);
  assert_failed (g, "boom");
  afut_future_unref (g);
  loop_free (loop);
}

static void
test_error_awaiting_task_catches (void)
{
  AfutLoop *loop = loop_new ();
  AfutFuture *a = worker_new (loop, &(Worker){ .label = "a", .delay = 2,
                                               .value = 1 });
  AfutFuture *b = worker_new (loop, &(Worker){ .label = "b", .delay = 1,
                                               .fail = "boom" });
  AfutFuture *c = worker_new (loop, &(Worker){ .label = "c", .delay = 3,
                                               .value = 3 });
  AfutFuture *m = gather_main_new (
    loop, &(GatherMain){ .gather = afut_gather (afut_future_ref (a),
                                                afut_future_ref (b),
                                                afut_future_ref (c), NULL),
                         .catching = true,
                         .linger = 5 });

  afut_loop_run_until_complete (loop, m);
  /* 07-gather-error.py: the awaiting task gets the first error at once;
   * the other children go on meanwhile. */
  g_assert_cmpstr (events->str, ==,
                   "a:start@0 b:start@0 c:start@0 b:fail@1 "
                   "main:error:boom@1 a:end@2 c:end@3 main:end@6");
  assert_state (m, AFUT_FUTURE_DONE);
  assert_int (a, 1);
  assert_int (c, 3);
  afut_future_unref (m);
  afut_future_unref (a);
  afut_future_unref (b);
  afut_future_unref (c);
  loop_free (loop);
}

static void
test_error_awaiting_task_fails (void)
{
  AfutLoop *loop = loop_new ();
  AfutFuture *a = worker_new (loop, &(Worker){ .label = "a", .delay = 2 });
  AfutFuture *b = worker_new (loop, &(Worker){ .label = "b", .delay = 1,
                                               .fail = "boom" });
  AfutFuture *m = gather_main_new (
    loop, &(GatherMain){ .gather = afut_gather (a, b, NULL) });

  afut_loop_run_until_complete (loop, m);
  /* Uncaught, the task fails with the child's error. */
  assert_failed (m, "boom");
  g_assert_cmpfloat (afut_loop_time (loop), ==, 1.0);
  g_assert_null (strstr (events->str, "main:"));
  afut_future_unref (m);
  /* "a" is still sleeping: freeing the loop cancels it. */
  loop_free (loop);
  g_assert_cmpstr (events->str, ==,
                   "a:start@0 b:start@0 b:fail@1 a:cancelled:@1");
}

/* A child cancelled on its own (not through the gather) fails the gather
 * with the child's cancellation, at once; the gather is not cancelled,
 * its awaiter gets the cancellation but is not cancel-requested, and the
 * siblings keep running.  /usr/bin/python3 (3.11.2) prints
 *   a cancelled
 *   awaiter got CancelledError ('direct',)
 *   awaiter cancelling=0
 *   g.done=True g.cancelled=False
 *   g.result raises CancelledError ('direct',)
 *   b done
 * for:
 *
 *   import asyncio
 *   async def child(name, d, out):
 *       try:
 *           await asyncio.sleep(d)
 *           out.append(name + " done")
 *       except asyncio.CancelledError:
 *           out.append(name + " cancelled")
 *           raise
 *   async def main():
 *       out = []
 *       a = asyncio.ensure_future(child("a", 1, out))
 *       b = asyncio.ensure_future(child("b", 2, out))
 *       g = asyncio.gather(a, b)
 *       async def awaiter():
 *           try:
 *               await g
 *           except asyncio.CancelledError as e:
 *               out.append("awaiter got CancelledError %r" % (e.args,))
 *               out.append("awaiter cancelling=%d"
 *                          % asyncio.current_task().cancelling())
 *       w = asyncio.ensure_future(awaiter())
 *       await asyncio.sleep(0)
 *       a.cancel("direct")
 *       await w
 *       out.append("g.done=%s g.cancelled=%s" % (g.done(), g.cancelled()))
 *       try:
 *           g.result()
 *       except asyncio.CancelledError as e:
 *           out.append("g.result raises CancelledError %r" % (e.args,))
 *       await b
 *       print("\n".join(out))
 *   asyncio.run(main())
 *
 * afut marked the gather itself cancelled. */
static void
test_error_child_cancelled (void)
{
  AfutLoop *loop = loop_new ();
  AfutFuture *a = worker_new (loop, &(Worker){ .label = "a", .delay = 2,
                                               .value = 1 });
  AfutFuture *b = worker_new (loop, &(Worker){ .label = "b", .delay = 5 });
  AfutFuture *c = worker_new (loop, &(Worker){ .label = "c", .delay = 3,
                                               .value = 3 });
  AfutFuture *g = afut_gather (a, b, c, NULL);
  AfutFuture *k = canceller_new (loop, b, 1, "own");
  AfutFuture *m;

  afut_future_add_done_callback (g, log_done, "gather");
  m = gather_main_new (loop, &(GatherMain){ .gather = afut_future_ref (g),
                                            .catching = true,
                                            .linger = 0.5 });
  run_until_done (loop, g);
  g_assert_true (canceller_returned (k));
  /* The gather fails with b's cancellation, at once; it is not cancelled
   * (asyncio: done, cancelled() False, result() raises it). */
  assert_state (g, AFUT_FUTURE_FAILED);
  g_assert_false (afut_future_is_cancelled (g));
  assert_error (afut_future_get_error (g), AFUT_ERROR, AFUT_ERROR_CANCELLED,
                "own");
  g_assert_cmpfloat (afut_loop_time (loop), ==, 1.0);
  assert_state (a, AFUT_FUTURE_PENDING);
  assert_state (c, AFUT_FUTURE_PENDING);
  /* The awaiter got the cancellation, but nobody asked to cancel it: it
   * caught it and goes on. */
  afut_loop_run_until_complete (loop, m);
  g_assert_cmpuint (afut_task_cancelling (AFUT_TASK (m)), ==, 0);
  assert_state (m, AFUT_FUTURE_DONE);
  afut_loop_run_until_complete (loop, c);
  g_assert_cmpstr (events->str, ==,
                   "a:start@0 b:start@0 c:start@0 cancel@1 "
                   "b:cancelled:own@1 gather:failed@1 "
                   "main:cancelled:own@1 main:end@1.5 a:end@2 c:end@3");
  assert_int (a, 1);
  assert_cancelled (b, "own");
  assert_int (c, 3);
  /* Cancelling it now changes nothing: only a gather cancelled while
   * pending ends cancelled. */
  g_assert_false (afut_future_cancel (g, NULL));
  assert_state (g, AFUT_FUTURE_FAILED);
  afut_future_unref (m);
  afut_future_unref (k);
  afut_future_unref (g);
  loop_free (loop);
}

/* Nobody retrieved the cancellation such a gather failed with: reported
 * when it is freed, as asyncio's "_GatheringFuture exception was never
 * retrieved" (CPython 3.11.2 logs it for
 *     a = asyncio.ensure_future(asyncio.sleep(1)); g = asyncio.gather(a)
 *     await asyncio.sleep(0); a.cancel(); ...; del g). */
static void
test_error_child_cancelled_unretrieved (void)
{
  AfutLoop *loop = loop_new ();
  AfutFuture *a = worker_new (loop, &(Worker){ .label = "a", .delay = 2 });
  AfutFuture *g = afut_gather (afut_future_ref (a), NULL);

  afut_loop_iterate (loop, FALSE);
  g_assert_true (afut_future_cancel (a, "own"));
  run_until_done (loop, g);
  assert_state (g, AFUT_FUTURE_FAILED);
  afut_future_unref (g);
  assert_reports ("Future exception was never retrieved|-|own");
  afut_future_unref (a);
  loop_free (loop);
}

/* ---- rule 6: return_exceptions ---- */

static void
test_return_exceptions_waits_for_all (void)
{
  AfutLoop *loop = loop_new ();
  AfutFuture *a = worker_new (loop, &(Worker){ .label = "a", .delay = 2,
                                               .value = 1 });
  AfutFuture *b = worker_new (loop, &(Worker){ .label = "b", .delay = 1,
                                               .fail = "boom" });
  AfutFuture *c = worker_new (loop, &(Worker){ .label = "c", .delay = 3,
                                               .value = 3 });
  AfutFuture *g = afut_gather_return_exceptions (a, b, c, NULL);

  afut_future_add_done_callback (g, log_done, "gather");
  run_until_done (loop, g);
  g_assert_cmpstr (events->str, ==,
                   "a:start@0 b:start@0 c:start@0 b:fail@1 a:end@2 c:end@3 "
                   "gather:done@3");
  assert_state (g, AFUT_FUTURE_DONE);
  g_assert_null (afut_future_get_error (g));
  /* 08-gather-return-exceptions.py: ['good', ValueError('boom')] */
  g_assert_cmpuint (afut_gather_get_n_items (g), ==, 3);
  assert_int (afut_gather_get_item (g, 0), 1);
  assert_failed (afut_gather_get_item (g, 1), "boom");
  assert_int (afut_gather_get_item (g, 2), 3);
  afut_future_unref (g);
  loop_free (loop);
}

static void
test_return_exceptions_cancelled_child (void)
{
  AfutLoop *loop = loop_new ();
  AfutFuture *a = worker_new (loop, &(Worker){ .label = "a", .delay = 2,
                                               .value = 1 });
  AfutFuture *b = worker_new (loop, &(Worker){ .label = "b", .delay = 5 });
  AfutFuture *f = afut_future_new (loop);
  AfutFuture *g = afut_gather_return_exceptions (a, b, afut_future_ref (f),
                                                 NULL);
  AfutFuture *k = canceller_new (loop, b, 1, "own");

  afut_future_add_done_callback (g, log_done, "gather");
  g_assert_true (afut_future_cancel (f, NULL));
  run_until_done (loop, g);
  g_assert_true (canceller_returned (k));
  g_assert_cmpstr (events->str, ==,
                   "a:start@0 b:start@0 cancel@1 b:cancelled:own@1 a:end@2 "
                   "gather:done@2");
  /* Children cancelled on their own are cancellation items; the outer is
   * not cancelled. */
  assert_state (g, AFUT_FUTURE_DONE);
  assert_int (afut_gather_get_item (g, 0), 1);
  /* (CPython 3.11 puts CancelledError('') in b's slot: a task's cancel
   * message goes to what it awaited, not to task._cancel_message.  afut's
   * item is the child itself, so only the cancellation is checked.) */
  assert_state (afut_gather_get_item (g, 1), AFUT_FUTURE_CANCELLED);
  g_assert_true (afut_error_is_cancelled (
    afut_future_get_error (afut_gather_get_item (g, 1))));
  assert_cancelled (afut_gather_get_item (g, 2), "");
  afut_future_unref (k);
  afut_future_unref (f);
  afut_future_unref (g);
  loop_free (loop);
}

/* ---- rule 7: cancelling the outer future ---- */

static void
check_outer_cancels_children (bool return_exceptions)
{
  AfutLoop *loop = loop_new ();
  AfutFuture *a = worker_new (loop, &(Worker){ .label = "a", .delay = 1,
                                               .value = 1 });
  AfutFuture *b = worker_new (loop, &(Worker){ .label = "b", .delay = 5 });
  AfutFuture *c = worker_new (loop, &(Worker){ .label = "c", .delay = 10 });
  AfutFuture *f = afut_future_new (loop);
  AfutFuture *s = afut_loop_sleep (loop, 20);
  AfutFuture *g = return_exceptions
                    ? afut_gather_return_exceptions (a, b, c, f, s, NULL)
                    : afut_gather (a, b, c, f, s, NULL);
  AfutFuture *k = canceller_new (loop, g, 2, "stop");

  afut_future_add_done_callback (g, log_done, "gather");
  run_until_done (loop, g);
  g_assert_true (canceller_returned (k));
  g_assert_cmpstr (events->str, ==,
                   "a:start@0 b:start@0 c:start@0 a:end@1 cancel@2 "
                   "b:cancelled:stop@2 c:cancelled:stop@2 "
                   "gather:cancelled@2");
  /* Every pending child got the cancellation and its message: tasks,
   * a plain future, a sleep; the child done before is left alone. */
  assert_int (a, 1);
  assert_cancelled (b, "stop");
  assert_cancelled (c, "stop");
  assert_cancelled (f, "stop");
  assert_cancelled (s, "stop");
  /* The outer ends cancelled, return_exceptions or not. */
  assert_cancelled (g, "stop");
  g_assert_cmpfloat (afut_loop_time (loop), ==, 2.0);
  afut_future_unref (k);
  afut_future_unref (g);
  loop_free (loop);
}

static void
test_cancel_outer_cancels_children (void)
{
  check_outer_cancels_children (false);
}

static void
test_cancel_outer_cancels_children_return_exceptions (void)
{
  check_outer_cancels_children (true);
}

static void
test_cancel_awaiting_task (void)
{
  AfutLoop *loop = loop_new ();
  AfutFuture *a = worker_new (loop, &(Worker){ .label = "a", .delay = 5 });
  AfutFuture *b = worker_new (loop, &(Worker){ .label = "b", .delay = 10 });
  AfutFuture *g = afut_gather (afut_future_ref (a), afut_future_ref (b),
                               NULL);
  AfutFuture *m = gather_main_new (
    loop, &(GatherMain){ .gather = afut_future_ref (g),
                         .catching = true,
                         .reraise = true });
  AfutFuture *k = canceller_new (loop, m, 1, "halt");

  afut_loop_run_until_complete (loop, m);
  g_assert_true (canceller_returned (k));
  /* Cancelling the task cancels the gather it awaits, which cancels the
   * children: children first, then the task. */
  g_assert_cmpstr (events->str, ==,
                   "a:start@0 b:start@0 cancel@1 a:cancelled:halt@1 "
                   "b:cancelled:halt@1 main:cancelled:halt@1");
  assert_cancelled (a, "halt");
  assert_cancelled (b, "halt");
  assert_cancelled (g, "halt");
  assert_cancelled (m, "halt");
  afut_future_unref (k);
  afut_future_unref (m);
  afut_future_unref (g);
  afut_future_unref (a);
  afut_future_unref (b);
  loop_free (loop);
}

static void
check_children_swallow (bool return_exceptions)
{
  AfutLoop *loop = loop_new ();
  AfutFuture *a = worker_new (loop, &(Worker){ .label = "a", .delay = 5,
                                               .value = 1,
                                               .swallow = true });
  AfutFuture *b = worker_new (loop, &(Worker){ .label = "b", .delay = 5,
                                               .value = 2,
                                               .swallow = true });
  AfutFuture *g = return_exceptions
                    ? afut_gather_return_exceptions (a, b, NULL)
                    : afut_gather (a, b, NULL);
  AfutFuture *k = canceller_new (loop, g, 1, "stop");

  run_until_done (loop, g);
  g_assert_true (canceller_returned (k));
  g_assert_cmpstr (events->str, ==,
                   "a:start@0 b:start@0 cancel@1 a:cancelled:stop@1 "
                   "b:cancelled:stop@1");
  /* The children swallowed the cancellation and returned values; asyncio
   * 3.11 still ends the gather cancelled, as it was asked to. */
  assert_int (a, 1);
  assert_int (b, 2);
  assert_state (g, AFUT_FUTURE_CANCELLED);
  g_assert_true (afut_error_is_cancelled (afut_future_get_error (g)));
  afut_future_unref (k);
  afut_future_unref (g);
  loop_free (loop);
}

static void
test_cancel_children_swallow (void)
{
  check_children_swallow (false);
}

static void
test_cancel_children_swallow_return_exceptions (void)
{
  check_children_swallow (true);
}

static void
test_cancel_done_returns_false (void)
{
  AfutLoop *loop = loop_new ();
  AfutFuture *a = worker_new (loop, &(Worker){ .label = "a", .delay = 1,
                                               .value = 1 });
  AfutFuture *g = afut_gather (a, NULL);

  run_until_done (loop, g);
  assert_state (g, AFUT_FUTURE_DONE);
  g_assert_false (afut_future_cancel (g, "late"));
  assert_state (g, AFUT_FUTURE_DONE);
  assert_int (a, 1);
  afut_future_unref (g);
  loop_free (loop);
}

/* ---- rule 8: no children, duplicates ---- */

typedef enum
{
  EMPTY_GATHER,
  EMPTY_RETURN_EXCEPTIONS,
  EMPTY_V,
  EMPTY_RETURN_EXCEPTIONS_V
} EmptyKind;

typedef struct
{
  AfutTask task;
  EmptyKind kind;
  AfutFuture *gather;
  bool done_at_once;
  size_t n_items;
} EmptyMain;

static void
empty_main (AfutTask *task)
{
  EmptyMain *self = (EmptyMain *) task;
  AFUT_BEGIN (task);
  /* afut_gather (NULL) is the documented call, but its sentinel
   * attribute makes -Wformat reject it: pass a second NULL. */
  if (self->kind == EMPTY_GATHER)
    self->gather = afut_gather (NULL, NULL);
  else if (self->kind == EMPTY_RETURN_EXCEPTIONS)
    self->gather = afut_gather_return_exceptions (NULL, NULL);
  else if (self->kind == EMPTY_V)
    self->gather = afut_gather_v (NULL, 0);
  else
    self->gather = afut_gather_return_exceptions_v (NULL, 0);
  self->done_at_once = afut_future_is_done (self->gather);
  self->n_items = afut_gather_get_n_items (self->gather);
  afut_loop_call_soon (afut_loop_get_running (), log_callback, "cb");
  AFUT_AWAIT (task, self->gather);
  ev ("after:%s:%zu", afut_future_state_to_string (afut_future_get_state (
                        afut_task_awaited (task))),
      afut_gather_get_n_items (afut_task_awaited (task)));
  AFUT_END (task);
}

static void
check_empty (EmptyKind kind)
{
  AfutLoop *loop = loop_new ();
  AfutFuture *t = afut_task_new (loop, empty_main, sizeof (EmptyMain),
                                 &(EmptyMain){ .kind = kind }, "main", NULL);
  EmptyMain *m = (EmptyMain *) t;

  run_until_done (loop, t);
  assert_state (t, AFUT_FUTURE_DONE);
  /* Done at creation, with no items; the await goes on at once, before a
   * callback queued ahead of it. */
  g_assert_true (m->done_at_once);
  g_assert_cmpuint (m->n_items, ==, 0);
  g_assert_cmpstr (events->str, ==, "after:done:0 cb");
  afut_future_unref (t);
  loop_free (loop);
}

static void
test_empty_gather (void)
{
  check_empty (EMPTY_GATHER);
}

static void
test_empty_return_exceptions (void)
{
  check_empty (EMPTY_RETURN_EXCEPTIONS);
}

static void
test_empty_v (void)
{
  check_empty (EMPTY_V);
}

static void
test_empty_return_exceptions_v (void)
{
  check_empty (EMPTY_RETURN_EXCEPTIONS_V);
}

static void
test_duplicate_future (void)
{
  AfutLoop *loop = loop_new ();
  AfutFuture *f = afut_future_new (loop);
  AfutFuture *g = afut_gather (afut_future_ref (f), afut_future_ref (f),
                               NULL);

  afut_future_add_done_callback (g, log_done, "gather");
  g_assert_cmpuint (afut_gather_get_n_items (g), ==, 2);
  g_assert_true (afut_gather_get_item (g, 0) == f);
  g_assert_true (afut_gather_get_item (g, 1) == f);
  afut_loop_iterate (loop, false);
  assert_state (g, AFUT_FUTURE_PENDING);

  afut_future_resolve_int (f, 5);
  run_until_done (loop, g);
  /* One result, in both slots; the outer completed once. */
  g_assert_cmpstr (events->str, ==, "gather:done@0");
  assert_int (afut_gather_get_item (g, 0), 5);
  assert_int (afut_gather_get_item (g, 1), 5);
  afut_future_unref (g);
  afut_future_unref (f);
  loop_free (loop);
}

static void
test_duplicate_coroutine (void)
{
  AfutLoop *loop = loop_new ();
  AfutFuture *c = afut_coro_new (loop, worker, sizeof (Worker),
                                 &(Worker){ .label = "c", .delay = 1,
                                            .value = 9 },
                                 "c", NULL);
  AfutFuture *g = afut_gather (c, afut_future_ref (c), NULL);

  afut_future_add_done_callback (g, log_done, "gather");
  run_until_done (loop, g);
  /* Awaited once: the coroutine's body ran once. */
  g_assert_cmpstr (events->str, ==, "c:start@0 c:end@1 gather:done@1");
  g_assert_true (afut_gather_get_item (g, 0) == afut_gather_get_item (g, 1));
  assert_int (afut_gather_get_item (g, 0), 9);
  assert_int (afut_gather_get_item (g, 1), 9);
  afut_future_unref (g);
  loop_free (loop);
}

static void
test_duplicate_failed_return_exceptions (void)
{
  AfutLoop *loop = loop_new ();
  AfutFuture *b = worker_new (loop, &(Worker){ .label = "b", .delay = 1,
                                               .fail = "boom" });
  AfutFuture *a = worker_new (loop, &(Worker){ .label = "a", .delay = 2,
                                               .value = 1 });
  AfutFuture *g = afut_gather_return_exceptions (afut_future_ref (b), a, b,
                                                 NULL);

  run_until_done (loop, g);
  assert_state (g, AFUT_FUTURE_DONE);
  g_assert_cmpuint (afut_gather_get_n_items (g), ==, 3);
  assert_failed (afut_gather_get_item (g, 0), "boom");
  assert_int (afut_gather_get_item (g, 1), 1);
  assert_failed (afut_gather_get_item (g, 2), "boom");
  g_assert_cmpstr (events->str, ==,
                   "b:start@0 a:start@0 b:fail@1 a:end@2");
  afut_future_unref (g);
  loop_free (loop);
}

/* ---- nesting ---- */

static void
test_nested_results (void)
{
  AfutLoop *loop = loop_new ();
  AfutFuture *a = worker_new (loop, &(Worker){ .label = "a", .delay = 2,
                                               .value = 1 });
  AfutFuture *b = worker_new (loop, &(Worker){ .label = "b", .delay = 1,
                                               .value = 2 });
  AfutFuture *c = worker_new (loop, &(Worker){ .label = "c", .delay = 3,
                                               .value = 3 });
  AfutFuture *inner = afut_gather (a, b, NULL);
  AfutFuture *outer = afut_gather (afut_future_ref (inner), c, NULL);

  afut_future_add_done_callback (inner, log_done, "inner");
  afut_future_add_done_callback (outer, log_done, "outer");
  run_until_done (loop, outer);
  g_assert_cmpstr (events->str, ==,
                   "a:start@0 b:start@0 c:start@0 b:end@1 a:end@2 "
                   "inner:done@2 c:end@3 outer:done@3");
  assert_state (outer, AFUT_FUTURE_DONE);
  g_assert_cmpuint (afut_gather_get_n_items (outer), ==, 2);
  g_assert_true (afut_gather_get_item (outer, 0) == inner);
  g_assert_cmpuint (afut_gather_get_n_items (inner), ==, 2);
  assert_int (afut_gather_get_item (inner, 0), 1);
  assert_int (afut_gather_get_item (inner, 1), 2);
  assert_int (afut_gather_get_item (outer, 1), 3);
  afut_future_unref (outer);
  afut_future_unref (inner);
  loop_free (loop);
}

static void
test_nested_error (void)
{
  AfutLoop *loop = loop_new ();
  AfutFuture *a = worker_new (loop, &(Worker){ .label = "a", .delay = 1,
                                               .fail = "deep" });
  AfutFuture *b = worker_new (loop, &(Worker){ .label = "b", .delay = 2,
                                               .value = 2 });
  AfutFuture *c = worker_new (loop, &(Worker){ .label = "c", .delay = 3,
                                               .value = 3 });
  AfutFuture *inner = afut_gather (a, b, NULL);
  AfutFuture *outer = afut_gather (afut_future_ref (inner), c, NULL);

  afut_future_add_done_callback (outer, log_done, "outer");
  run_until_done (loop, outer);
  /* The inner child's error fails the inner gather, then the outer. */
  assert_failed (outer, "deep");
  assert_failed (inner, "deep");
  g_assert_cmpfloat (afut_loop_time (loop), ==, 1.0);
  afut_loop_run_until_complete (loop, c);
  g_assert_cmpstr (events->str, ==,
                   "a:start@0 b:start@0 c:start@0 a:fail@1 outer:failed@1 "
                   "b:end@2 c:end@3");
  assert_int (b, 2);
  assert_int (c, 3);
  afut_future_unref (outer);
  afut_future_unref (inner);
  loop_free (loop);
}

static void
test_nested_cancel (void)
{
  AfutLoop *loop = loop_new ();
  AfutFuture *a = worker_new (loop, &(Worker){ .label = "a", .delay = 5 });
  AfutFuture *b = worker_new (loop, &(Worker){ .label = "b", .delay = 6 });
  AfutFuture *c = worker_new (loop, &(Worker){ .label = "c", .delay = 7 });
  AfutFuture *inner = afut_gather_return_exceptions (a, b, NULL);
  AfutFuture *outer = afut_gather (afut_future_ref (inner), c, NULL);
  AfutFuture *k = canceller_new (loop, outer, 1, "stop");

  run_until_done (loop, outer);
  afut_loop_run_until_complete (loop, inner);
  g_assert_true (canceller_returned (k));
  /* The cancellation reached the grandchildren, with its message. */
  g_assert_cmpstr (events->str, ==,
                   "a:start@0 b:start@0 c:start@0 cancel@1 "
                   "a:cancelled:stop@1 b:cancelled:stop@1 "
                   "c:cancelled:stop@1");
  assert_cancelled (a, "stop");
  assert_cancelled (b, "stop");
  assert_cancelled (c, "stop");
  assert_cancelled (inner, "stop");
  assert_cancelled (outer, "stop");
  afut_future_unref (k);
  afut_future_unref (outer);
  afut_future_unref (inner);
  loop_free (loop);
}

/* ---- children already done ---- */

static void
test_done_children (void)
{
  AfutLoop *loop = loop_new ();
  AfutFuture *one = afut_future_new (loop);
  AfutFuture *two = afut_future_new (loop);
  AfutFuture *bad = afut_future_new (loop);
  AfutFuture *g, *r, *e;

  afut_future_resolve_int (one, 1);
  afut_future_resolve_int (two, 2);
  afut_future_fail (bad, afut_error_new_literal (TEST_ERROR, 7, "done-bad"));
  g = afut_gather (afut_future_ref (one), afut_future_ref (two), NULL);
  r = afut_gather_return_exceptions (afut_future_ref (one),
                                     afut_future_ref (bad), NULL);
  e = afut_gather (afut_future_ref (two), afut_future_ref (bad), NULL);
  /* As asyncio: the children's done callbacks go through the ready
   * queue, so even a gather of done futures completes one turn later. */
  assert_state (g, AFUT_FUTURE_PENDING);
  assert_state (r, AFUT_FUTURE_PENDING);
  assert_state (e, AFUT_FUTURE_PENDING);
  afut_loop_iterate (loop, false);
  assert_state (g, AFUT_FUTURE_DONE);
  assert_int (afut_gather_get_item (g, 0), 1);
  assert_int (afut_gather_get_item (g, 1), 2);
  assert_state (r, AFUT_FUTURE_DONE);
  assert_int (afut_gather_get_item (r, 0), 1);
  assert_failed (afut_gather_get_item (r, 1), "done-bad");
  assert_failed (e, "done-bad");
  afut_future_unref (g);
  afut_future_unref (r);
  afut_future_unref (e);
  afut_future_unref (one);
  afut_future_unref (two);
  afut_future_unref (bad);
  loop_free (loop);
}

/* ---- the array forms keep the caller's references ---- */

static void
test_array_keeps_references (void)
{
  AfutLoop *loop = loop_new ();
  AfutFuture *futures[3];
  AfutFuture *g;
  size_t i;

  for (i = 0; i < 3; i++)
    futures[i] = afut_future_new (loop);
  g = afut_gather_v (futures, 3);
  g_assert_cmpuint (afut_gather_get_n_items (g), ==, 3);
  for (i = 0; i < 3; i++)
    g_assert_true (afut_gather_get_item (g, i) == futures[i]);
  /* Dropped while pending: the children and the caller's references
   * outlive it. */
  afut_future_unref (g);
  for (i = 0; i < 3; i++)
    afut_future_resolve_int (futures[i], (int64_t) i * 10);
  afut_loop_iterate (loop, false);
  afut_loop_iterate (loop, false);
  for (i = 0; i < 3; i++)
    assert_int (futures[i], (int64_t) i * 10);

  /* Once more, with the gather done and freed first. */
  g = afut_gather_v (futures, 3);
  run_until_done (loop, g);
  assert_state (g, AFUT_FUTURE_DONE);
  afut_future_unref (g);
  for (i = 0; i < 3; i++)
    {
      assert_int (futures[i], (int64_t) i * 10);
      afut_future_unref (futures[i]);
    }
  loop_free (loop);
}

static void
test_array_return_exceptions_keeps_references (void)
{
  AfutLoop *loop = loop_new ();
  AfutFuture *futures[2];
  AfutFuture *g;

  futures[0] = afut_future_new (loop);
  futures[1] = afut_future_new (loop);
  g = afut_gather_return_exceptions_v (futures, 2);
  g_assert_cmpuint (afut_gather_get_n_items (g), ==, 2);
  g_assert_true (afut_gather_get_item (g, 0) == futures[0]);
  g_assert_true (afut_gather_get_item (g, 1) == futures[1]);
  afut_future_fail (futures[0],
                    afut_error_new_literal (TEST_ERROR, 7, "array"));
  afut_future_resolve_int (futures[1], 4);
  run_until_done (loop, g);
  assert_state (g, AFUT_FUTURE_DONE);
  afut_future_unref (g);
  assert_failed (futures[0], "array");
  assert_int (futures[1], 4);
  afut_future_unref (futures[0]);
  afut_future_unref (futures[1]);
  loop_free (loop);
}

/* ---- rule 9: errors never retrieved ---- */

static void
test_unretrieved_late_child_errors (void)
{
  AfutLoop *loop = loop_new ();
  AfutFuture *a = worker_new (loop, &(Worker){ .label = "a", .delay = 1,
                                               .fail = "first" });
  AfutFuture *b = worker_new (loop, &(Worker){ .label = "b", .delay = 2,
                                               .fail = "second" });
  AfutFuture *c = worker_new (loop, &(Worker){ .label = "c", .delay = 3,
                                               .fail = "third" });
  AfutFuture *m = gather_main_new (
    loop, &(GatherMain){ .gather = afut_gather (afut_future_ref (a),
                                                afut_future_ref (b),
                                                afut_future_ref (c), NULL),
                         .catching = true,
                         .linger = 5 });

  afut_loop_run_until_complete (loop, m);
  g_assert_cmpstr (events->str, ==,
                   "a:start@0 b:start@0 c:start@0 a:fail@1 "
                   "main:error:first@1 b:fail@2 c:fail@3 main:end@6");
  assert_state (m, AFUT_FUTURE_DONE);
  afut_future_unref (m);
  /* b and c failed after the gather had failed: the gather took their
   * errors, so dropping the last references reports nothing (nobody
   * else read them). */
  afut_future_unref (a);
  afut_future_unref (b);
  afut_future_unref (c);
  assert_reports ("");
  loop_free (loop);
}

static void
test_unretrieved_return_exceptions (void)
{
  AfutLoop *loop = loop_new ();
  AfutFuture *a = worker_new (loop, &(Worker){ .label = "a", .delay = 1,
                                               .fail = "one" });
  AfutFuture *b = worker_new (loop, &(Worker){ .label = "b", .delay = 2,
                                               .fail = "two" });
  AfutFuture *g = afut_gather_return_exceptions (a, b, NULL);

  run_until_done (loop, g);
  assert_state (g, AFUT_FUTURE_DONE);
  /* The errors are the gather's result: not reported, though the test
   * never reads them. */
  afut_future_unref (g);
  assert_reports ("");
  loop_free (loop);
}

static void
test_unretrieved_control (void)
{
  AfutLoop *loop = loop_new ();
  AfutFuture *lone = worker_new (loop, &(Worker){ .label = "lone",
                                                  .delay = 1,
                                                  .fail = "solo" });
  AfutFuture *a = worker_new (loop, &(Worker){ .label = "a", .delay = 2,
                                               .fail = "first" });
  AfutFuture *b = worker_new (loop, &(Worker){ .label = "b", .delay = 3,
                                               .fail = "second" });
  AfutFuture *g = afut_gather (a, b, NULL);

  /* The handler does see what nobody retrieved: a lone failed task, and a
   * failed gather (asyncio: "_GatheringFuture exception was never
   * retrieved") - but not its children. */
  afut_loop_run_until_complete (loop, lone);
  run_until_done (loop, g);
  run_until_done (loop, b);
  assert_state (lone, AFUT_FUTURE_FAILED);
  assert_state (g, AFUT_FUTURE_FAILED);
  assert_state (a, AFUT_FUTURE_FAILED);
  assert_state (b, AFUT_FUTURE_FAILED);
  assert_reports ("");
  afut_future_unref (lone);
  assert_reports ("Task exception was never retrieved|lone|solo");
  afut_future_unref (g);
  assert_reports ("Future exception was never retrieved|-|first");
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
  afut_set_log_func (log_func, NULL);

  g_test_add_func ("/gather/results/input-order", test_results_input_order);
  g_test_add_func ("/gather/results/tutorial", test_results_tutorial);
  g_test_add_func ("/gather/error/first-fails-outer",
                   test_error_first_fails_outer);
  g_test_add_func ("/gather/error/awaiting-task-catches",
                   test_error_awaiting_task_catches);
  g_test_add_func ("/gather/error/awaiting-task-fails",
                   test_error_awaiting_task_fails);
  g_test_add_func ("/gather/error/child-cancelled",
                   test_error_child_cancelled);
  g_test_add_func ("/gather/error/child-cancelled-unretrieved",
                   test_error_child_cancelled_unretrieved);
  g_test_add_func ("/gather/return-exceptions/waits-for-all",
                   test_return_exceptions_waits_for_all);
  g_test_add_func ("/gather/return-exceptions/cancelled-child",
                   test_return_exceptions_cancelled_child);
  g_test_add_func ("/gather/cancel/outer-cancels-children",
                   test_cancel_outer_cancels_children);
  g_test_add_func ("/gather/cancel/outer-cancels-children-return-exceptions",
                   test_cancel_outer_cancels_children_return_exceptions);
  g_test_add_func ("/gather/cancel/awaiting-task", test_cancel_awaiting_task);
  g_test_add_func ("/gather/cancel/children-swallow",
                   test_cancel_children_swallow);
  g_test_add_func ("/gather/cancel/children-swallow-return-exceptions",
                   test_cancel_children_swallow_return_exceptions);
  g_test_add_func ("/gather/cancel/done-returns-false",
                   test_cancel_done_returns_false);
  g_test_add_func ("/gather/empty/gather", test_empty_gather);
  g_test_add_func ("/gather/empty/return-exceptions",
                   test_empty_return_exceptions);
  g_test_add_func ("/gather/empty/v", test_empty_v);
  g_test_add_func ("/gather/empty/return-exceptions-v",
                   test_empty_return_exceptions_v);
  g_test_add_func ("/gather/duplicate/future", test_duplicate_future);
  g_test_add_func ("/gather/duplicate/coroutine", test_duplicate_coroutine);
  g_test_add_func ("/gather/duplicate/failed-return-exceptions",
                   test_duplicate_failed_return_exceptions);
  g_test_add_func ("/gather/nested/results", test_nested_results);
  g_test_add_func ("/gather/nested/error", test_nested_error);
  g_test_add_func ("/gather/nested/cancel", test_nested_cancel);
  g_test_add_func ("/gather/done-children/next-turn", test_done_children);
  g_test_add_func ("/gather/array/keeps-references",
                   test_array_keeps_references);
  g_test_add_func ("/gather/array/return-exceptions-keeps-references",
                   test_array_return_exceptions_keeps_references);
  g_test_add_func ("/gather/unretrieved/late-child-errors",
                   test_unretrieved_late_child_errors);
  g_test_add_func ("/gather/unretrieved/return-exceptions",
                   test_unretrieved_return_exceptions);
  g_test_add_func ("/gather/unretrieved/control", test_unretrieved_control);

  status = g_test_run ();
  afut_set_log_func (NULL, NULL);
  g_string_free (events, TRUE);
  g_string_free (lines, TRUE);
  g_ptr_array_unref (reports);
  return status;
}
