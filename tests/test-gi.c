/* test-gi.c - libafut-1 from C: what the Python and gjs overrides stand
 * on, tested without them (so valgrind and the sanitizers see it):
 *   - the boxed GTypes;
 *   - values as GValues (afut_future_resolve_value / _get_value), lent
 *     through shield and wait_for (afut_future_get_value_source);
 *   - AFUT_EXCEPTION_ERROR: the exception object rides through copies of
 *     the GError (a gather, a task group) and goes with the last one;
 *   - afut_stepped_task_new: a binding's coroutine as a real task (its
 *     awaits, cancellation, closure released once);
 *   - afut_future_new_with_cancel, the loop's _full calls and their
 *     destroy notifies, afut_gio_future_complete, afut_future_then;
 *   - bad arguments: criticals, no crash, closures still released.
 *
 * It links libafut-1 (no AFUT_IMPLEMENTATION here), as a C program that
 * shares its futures with Python plugins does.  Virtual clock. */

#include "afut.h"
#include "afut-glib.h"
#include "afut-gi.h"

#include <string.h>

static AfutLoop *
new_loop (void)
{
  AfutLoop *loop = afut_glib_loop_new (NULL, AFUT_LOOP_VIRTUAL_CLOCK);
  afut_loop_push_thread_default (loop);
  return loop;
}

static void
free_loop (AfutLoop *loop)
{
  afut_loop_pop_thread_default (loop);
  afut_loop_unref (loop);
}

static void
count_destroy (gpointer data)
{
  (*(int *) data)++;
}

/* ---- boxed types ---- */

static void
test_boxed_types (void)
{
  AfutLoop *loop = new_loop ();
  AfutFuture *f = afut_future_new (loop);
  AfutFuture *copy;
  g_assert_cmpstr (g_type_name (afut_future_get_type ()), ==, "AfutFuture");
  g_assert_cmpstr (g_type_name (afut_loop_get_type ()), ==, "AfutLoop");
  g_assert_cmpstr (g_type_name (afut_task_get_type ()), ==, "AfutTask");
  g_assert_cmpstr (g_type_name (afut_task_group_get_type ()), ==,
                   "AfutTaskGroup");
  g_assert_cmpstr (g_type_name (afut_queue_get_type ()), ==, "AfutQueue");
  g_assert_true (G_TYPE_IS_BOXED (afut_event_get_type ()));
  g_assert_true (G_TYPE_IS_BOXED (afut_lock_get_type ()));
  g_assert_true (G_TYPE_IS_BOXED (afut_semaphore_get_type ()));
  g_assert_true (G_TYPE_IS_BOXED (afut_condition_get_type ()));
  /* A boxed copy is a reference: the same future. */
  copy = g_boxed_copy (afut_future_get_type (), f);
  g_assert_true (copy == f);
  g_boxed_free (afut_future_get_type (), copy);
  afut_future_cancel (f, NULL);
  afut_future_unref (f);
  free_loop (loop);
}

/* ---- values ---- */

static void
test_value_round_trip (void)
{
  AfutLoop *loop = new_loop ();
  AfutFuture *f = afut_future_new (loop);
  AfutFuture *n = afut_future_new (loop);
  AfutFuture *i = afut_future_new (loop);
  GValue v = G_VALUE_INIT;
  const GValue *got;
  GError *error = NULL;

  /* Pending: asyncio's InvalidStateError. */
  g_assert_null (afut_future_get_value (f, &error));
  g_assert_error (error, AFUT_ERROR, AFUT_ERROR_INVALID_STATE);
  g_clear_error (&error);

  g_value_init (&v, G_TYPE_STRING);
  g_value_set_string (&v, "text");
  g_assert_true (afut_future_resolve_value (f, &v));
  g_value_unset (&v);
  got = afut_future_get_value (f, NULL);
  g_assert_true (G_VALUE_HOLDS_STRING (got));
  g_assert_cmpstr (g_value_get_string (got), ==, "text");
  /* The GValue is the future's pointer value, for C code too. */
  g_assert_true (afut_future_get_pointer (f) == (gpointer) got);

  g_assert_true (afut_future_resolve_value (n, NULL));
  g_assert_null (afut_future_get_value (n, NULL));

  afut_future_resolve_int (i, G_GINT64_CONSTANT (3000000000));
  got = afut_future_get_value (i, NULL);
  g_assert_true (G_VALUE_HOLDS_INT64 (got));
  g_assert_cmpint (g_value_get_int64 (got), ==, G_GINT64_CONSTANT (3000000000));

  afut_future_unref (f);
  afut_future_unref (n);
  afut_future_unref (i);
  free_loop (loop);
}

static void
test_value_lent_through_combinators (void)
{
  AfutLoop *loop = new_loop ();
  AfutFuture *inner = afut_future_new (loop);
  AfutFuture *w = afut_wait_for (afut_future_ref (inner), 10);
  AfutFuture *s = afut_shield (afut_future_ref (w));
  GValue v = G_VALUE_INIT;
  const GValue *got;

  g_value_init (&v, G_TYPE_INT);
  g_value_set_int (&v, 7);
  afut_future_resolve_value (inner, &v);
  g_value_unset (&v);
  afut_loop_run_until_complete (loop, s);
  got = afut_future_get_value (s, NULL);
  g_assert_nonnull (got);
  g_assert_cmpint (g_value_get_int (got), ==, 7);
  /* Through the shield and the wait_for to the future the value is from. */
  g_assert_true (afut_future_get_value_source (s) == inner);
  g_assert_true (afut_future_get_value_source (inner) == inner);
  afut_future_unref (s);
  afut_future_unref (w);
  afut_future_unref (inner);
  free_loop (loop);
}

static void
test_value_threadsafe (void)
{
  AfutLoop *loop = new_loop ();
  AfutFuture *f = afut_future_new (loop);
  GValue v = G_VALUE_INIT;
  g_value_init (&v, G_TYPE_DOUBLE);
  g_value_set_double (&v, 0.5);
  /* The caller's reference goes with the call. */
  g_assert_true (afut_future_resolve_value_threadsafe (afut_future_ref (f), &v));
  g_value_unset (&v);
  afut_loop_run_until_complete (loop, f);
  g_assert_cmpfloat (g_value_get_double (afut_future_get_value (f, NULL)), ==, 0.5);
  afut_future_unref (f);
  free_loop (loop);
}

/* Four threads complete 200 futures each at once: half with a GValue
 * (afut_future_resolve_value_threadsafe), half failed with an exception
 * error made on the thread; each arrives once, with its own value. */
#define N_THREADS 4
#define N_PER_THREAD 200

typedef struct
{
  AfutFuture **futures;
  int base;
} Job;

static gpointer
complete_from_thread (gpointer data)
{
  Job *job = data;
  int i;
  for (i = 0; i < N_PER_THREAD; i++)
    {
      AfutFuture *f = job->futures[job->base + i];
      GValue v = G_VALUE_INIT;
      g_value_init (&v, G_TYPE_INT);
      g_value_set_int (&v, job->base + i);
      if (i % 2 == 0)
        g_assert_true (afut_future_resolve_value_threadsafe (afut_future_ref (f),
                                                             &v));
      else
        g_assert_true (afut_future_fail_threadsafe (
          afut_future_ref (f),
          (AfutError *) afut_exception_error_new (&v, "from a thread")));
      g_value_unset (&v);
    }
  return NULL;
}

static void
test_value_from_threads (void)
{
  AfutLoop *loop = new_loop ();
  AfutFuture *futures[N_THREADS * N_PER_THREAD];
  GThread *threads[N_THREADS];
  Job jobs[N_THREADS];
  AfutFuture *all;
  int i;

  for (i = 0; i < N_THREADS * N_PER_THREAD; i++)
    futures[i] = afut_future_new (loop);
  all = afut_gather_return_exceptions_v (futures, N_THREADS * N_PER_THREAD);
  for (i = 0; i < N_THREADS; i++)
    {
      jobs[i].futures = futures;
      jobs[i].base = i * N_PER_THREAD;
      threads[i] = g_thread_new ("completer", complete_from_thread, &jobs[i]);
    }
  afut_loop_run_until_complete (loop, all);
  for (i = 0; i < N_THREADS; i++)
    g_thread_join (threads[i]);
  for (i = 0; i < N_THREADS * N_PER_THREAD; i++)
    {
      const GValue *v = (i % N_PER_THREAD) % 2 == 0
                          ? afut_future_get_value (futures[i], NULL)
                          : afut_future_get_error_value (futures[i]);
      g_assert_nonnull (v);
      g_assert_cmpint (g_value_get_int (v), ==, i);
      afut_future_unref (futures[i]);
    }
  afut_future_unref (all);
  free_loop (loop);
}

/* ---- exceptions ---- */

static void
test_exception_rides_and_goes (void)
{
  AfutLoop *loop = new_loop ();
  GObject *exc = g_object_new (G_TYPE_OBJECT, NULL);
  GValue v = G_VALUE_INIT;
  AfutFuture *a = afut_future_new (loop);
  AfutFuture *b = afut_future_new (loop);
  AfutFuture *g;
  const GValue *got;
  GError *error = NULL;

  g_object_add_weak_pointer (exc, (gpointer *) &exc);
  g_value_init (&v, G_TYPE_OBJECT);
  g_value_set_object (&v, exc);
  g_object_unref (exc); /* the GValue holds it now */
  g_assert_nonnull (exc);

  g = afut_gather (afut_future_ref (a), afut_future_ref (b), NULL);
  g_assert_true (afut_future_fail_value (a, &v, "MyError: bad"));
  g_value_unset (&v);
  afut_loop_run_until_complete (loop, g);

  /* The gather failed with a copy of a's error: the same object. */
  got = afut_future_get_error_value (g);
  g_assert_nonnull (got);
  g_assert_true (g_value_get_object (got) == (gpointer) exc);
  g_assert_null (afut_future_get_value (g, &error));
  g_assert_error (error, AFUT_EXCEPTION_ERROR, AFUT_EXCEPTION_ERROR_RAISED);
  g_assert_cmpstr (error->message, ==, "MyError: bad");
  g_clear_error (&error); /* a copy: the object is still held */
  g_assert_true (g_value_get_object (afut_future_get_error_value (a))
                 == (gpointer) exc);
  g_assert_nonnull (exc);

  afut_future_cancel (b, NULL);
  afut_future_unref (g);
  afut_future_unref (a);
  afut_future_unref (b);
  free_loop (loop); /* runs b's cancellation callbacks, which hold it */
  /* The last error carrying it went: so did the object. */
  g_assert_null (exc);
}

/* A stepped task that fails with an exception in each of two children of
 * a task group: the group's sub-errors carry both. */
typedef struct
{
  const char *name;
  double delay;
  int steps;
  AfutFuture *held; /* what the step returned: it keeps its reference */
} Child;

static AfutFuture *
child_step (AfutTask *task, gpointer data)
{
  Child *c = data;
  GValue v = G_VALUE_INIT;
  g_clear_pointer (&c->held, afut_future_unref);
  if (c->steps++ == 0)
    return c->held = afut_sleep (c->delay); /* the running loop, in a step */
  g_value_init (&v, G_TYPE_STRING);
  g_value_set_static_string (&v, c->name);
  afut_task_throw_value (task, &v, c->name);
  g_value_unset (&v);
  return NULL;
}

typedef struct
{
  int steps;
  AfutTaskGroup *group;
  Child a, b;
  AfutFuture *exit;
} Parent;

static AfutFuture *
parent_step (AfutTask *task, gpointer data)
{
  Parent *p = data;
  switch (p->steps++)
    {
    case 0:
      p->group = afut_task_group_new (task);
      afut_task_group_spawn (p->group,
                             afut_stepped_task_new (NULL, "a", child_step,
                                                    &p->a, NULL));
      afut_task_group_spawn (p->group,
                             afut_stepped_task_new (NULL, "b", child_step,
                                                    &p->b, NULL));
      p->exit = afut_task_group_exit (p->group);
      return p->exit;
    default:
      g_assert_nonnull (afut_task_caught (task));
      afut_task_throw_error (task, (const GError *) afut_task_caught (task));
      return NULL;
    }
}

static void
test_exception_task_group (void)
{
  AfutLoop *loop = new_loop ();
  Parent p = { 0, NULL, { "first", 1, 0, NULL }, { "second", 1, 0, NULL },
               NULL };
  AfutFuture *t = afut_stepped_task_new (loop, "parent", parent_step, &p, NULL);
  afut_loop_run_until_complete (loop, t);
  g_assert_cmpint (afut_future_get_n_sub_errors (p.exit), ==, 2);
  g_assert_cmpstr (g_value_get_string (afut_future_get_sub_error_value (p.exit, 0)),
                   ==, "first");
  g_assert_cmpstr (g_value_get_string (afut_future_get_sub_error_value (p.exit, 1)),
                   ==, "second");
  g_assert_null (afut_future_get_sub_error_value (p.exit, 2));
  g_assert_true (afut_error_matches (afut_future_get_error (t), AFUT_ERROR,
                                     AFUT_ERROR_GROUP));
  afut_future_unref (p.exit);
  afut_future_unref (t);
  free_loop (loop);
}

/* ---- stepped tasks ---- */

typedef struct
{
  int steps;
  int destroyed;
  gboolean swallow;
  GString *log;
  AfutFuture *held; /* what the step returned: it keeps its reference */
} Stepper;

static void
stepper_destroy (gpointer data)
{
  ((Stepper *) data)->destroyed++;
}

static AfutFuture *
sleeper_step (AfutTask *task, gpointer data)
{
  Stepper *s = data;
  const AfutError *caught = afut_task_caught (task);
  AfutFuture *held = s->held;
  s->held = NULL;
  s->steps++;
  g_string_append_printf (s->log, "step%d:%s;", s->steps,
                          caught == NULL ? "-" : caught->message);
  if (s->steps == 1)
    return s->held = afut_sleep (10);
  if (caught != NULL && !s->swallow)
    {
      afut_task_throw_error (task, (const GError *) caught);
      afut_future_unref (held); /* after: @caught may be its error */
      return NULL;
    }
  afut_future_unref (held);
  if (s->steps == 2)
    return s->held = afut_sleep (1); /* cleanup, awaiting more */
  {
    GValue v = G_VALUE_INIT;
    g_value_init (&v, G_TYPE_INT);
    g_value_set_int (&v, 42);
    afut_task_return_value (task, &v);
    g_value_unset (&v);
  }
  return NULL;
}

static void
test_stepped_runs_and_releases (void)
{
  AfutLoop *loop = new_loop ();
  Stepper s = { 0, 0, TRUE, g_string_new (NULL), NULL };
  AfutFuture *t = afut_stepped_task_new (loop, "sleeper", sleeper_step, &s,
                                         stepper_destroy);
  g_assert_true (afut_future_is_task (t));
  g_assert_cmpstr (afut_task_get_name (afut_future_get_task (t)), ==, "sleeper");
  afut_loop_run_until_complete (loop, t);
  g_assert_cmpstr (s.log->str, ==, "step1:-;step2:-;step3:-;");
  g_assert_cmpint (g_value_get_int (afut_future_get_value (t, NULL)), ==, 42);
  g_assert_cmpfloat (afut_loop_time (loop), ==, 11);
  g_assert_cmpint (s.destroyed, ==, 1);
  afut_future_unref (t);
  g_assert_cmpint (s.destroyed, ==, 1);
  g_string_free (s.log, TRUE);
  free_loop (loop);
}

static void
stepped_cancel (void *data)
{
  afut_future_cancel (data, "stop");
}

static void
test_stepped_cancel (void)
{
  AfutLoop *loop = new_loop ();
  Stepper s = { 0, 0, FALSE, g_string_new (NULL), NULL };
  AfutFuture *t = afut_stepped_task_new (loop, NULL, sleeper_step, &s,
                                         stepper_destroy);
  AfutFuture *h = afut_loop_call_later (loop, 2, stepped_cancel, t);
  afut_loop_run_until_complete (loop, t);
  g_assert_true (afut_future_is_cancelled (t));
  g_assert_cmpstr (s.log->str, ==, "step1:-;step2:stop;");
  g_assert_cmpuint (afut_task_cancelling (afut_future_get_task (t)), ==, 1);
  g_assert_cmpint (s.destroyed, ==, 1);
  g_assert_true (strstr (afut_task_get_name (afut_future_get_task (t)), "Task-")
                 != NULL);
  afut_future_unref (h);
  afut_future_unref (t);
  g_string_free (s.log, TRUE);
  free_loop (loop);
}

static void
test_stepped_cancel_before_start (void)
{
  AfutLoop *loop = new_loop ();
  Stepper s = { 0, 0, FALSE, g_string_new (NULL), NULL };
  AfutFuture *t = afut_stepped_task_new (loop, NULL, sleeper_step, &s,
                                         stepper_destroy);
  afut_future_cancel (t, NULL);
  afut_loop_run_until_complete (loop, t);
  g_assert_true (afut_future_is_cancelled (t));
  g_assert_cmpint (s.steps, ==, 0);
  g_assert_cmpint (s.destroyed, ==, 1);
  afut_future_unref (t);
  g_string_free (s.log, TRUE);
  free_loop (loop);
}

static AfutFuture *done_one; /* a future done already, held by the test */

static AfutFuture *
done_step (AfutTask *task, gpointer data)
{
  int *steps = data;
  if (++*steps < 3)
    return done_one; /* done already: the step is called again at once */
  afut_task_return_value (task, NULL);
  return NULL;
}

static void
test_stepped_done_future_no_turn (void)
{
  AfutLoop *loop = new_loop ();
  int steps = 0;
  AfutFuture *t;
  done_one = afut_future_new (loop);
  afut_future_resolve (done_one);
  t = afut_stepped_task_new (loop, NULL, done_step, &steps, NULL);
  /* The first step runs on the next iteration; all three in it. */
  afut_loop_iterate (loop, FALSE);
  g_assert_cmpint (steps, ==, 3);
  g_assert_true (afut_future_is_done (t));
  g_assert_null (afut_future_get_value (t, NULL));
  afut_future_unref (t);
  g_clear_pointer (&done_one, afut_future_unref);
  free_loop (loop);
}

/* ---- binding-answered cancellation ---- */

static gboolean
refuse_cancel (AfutFuture *future, const char *message, gpointer data)
{
  (void) future;
  (void) message;
  (*(int *) data)++;
  return FALSE;
}

static void
test_new_with_cancel (void)
{
  AfutLoop *loop = new_loop ();
  int asked = 0;
  AfutFuture *f = afut_future_new_with_cancel (loop, refuse_cancel, &asked,
                                               count_destroy);
  g_assert_false (afut_future_cancel (f, "no"));
  g_assert_cmpint (asked, ==, 1);
  g_assert_false (afut_future_is_done (f));
  afut_future_resolve (f);
  afut_loop_run_until_complete (loop, f);
  afut_loop_iterate (loop, FALSE); /* the done callback lets go */
  g_assert_cmpint (asked, ==, 2);   /* count_destroy ran once */
  afut_future_unref (f);
  g_assert_cmpint (asked, ==, 2);
  free_loop (loop);
}

/* ---- _full calls ---- */

static void
count_call (void *data)
{
  (*(int *) data) += 10;
}

static void
test_call_full_destroy_once (void)
{
  AfutLoop *loop = new_loop ();
  int soon = 0, later = 0, cancelled = 0;
  AfutFuture *h1, *h2;
  g_assert_true (afut_loop_call_soon_full (loop, count_call, &soon,
                                           count_destroy));
  h1 = afut_loop_call_later_full (loop, 1, count_call, &later, count_destroy);
  h2 = afut_loop_call_at_full (loop, 0.5, count_call, &cancelled,
                               count_destroy);
  g_assert_true (afut_future_cancel (h2, NULL));
  afut_loop_run_until_complete (loop, h1);
  afut_loop_iterate (loop, FALSE);
  g_assert_cmpint (soon, ==, 11);      /* ran, then destroyed */
  g_assert_cmpint (later, ==, 11);
  g_assert_cmpint (cancelled, ==, 1);  /* never ran, destroyed */
  afut_future_unref (h1);
  afut_future_unref (h2);
  free_loop (loop);
}

static void
count_report (AfutLoop *loop, const AfutExceptionContext *context,
              void *data)
{
  (void) loop;
  (void) context;
  (*(int *) data) += 10;
}

static void
test_exception_handler_full (void)
{
  AfutLoop *loop = new_loop ();
  int first = 0, second = 0;
  AfutExceptionContext ctx = { "test report", NULL, NULL };
  afut_loop_set_exception_handler_full (loop, count_report, &first,
                                        count_destroy);
  afut_loop_call_exception_handler (loop, &ctx);
  g_assert_cmpint (first, ==, 10);
  /* Replacing it lets go of the first; the loop's end of the second. */
  afut_loop_set_exception_handler_full (loop, count_report, &second,
                                        count_destroy);
  g_assert_cmpint (first, ==, 11);
  free_loop (loop);
  g_assert_cmpint (second, ==, 1);
}

/* ---- GIO and the rest ---- */

static void
loaded (GObject *source, GAsyncResult *result, gpointer data)
{
  (void) source;
  afut_gio_future_complete (data, result);
  afut_future_unref (data);
}

static void
test_gio_complete (void)
{
  AfutLoop *loop = new_loop ();
  GFile *file = g_file_new_for_path ("/nonexistent/afut-test-gi");
  AfutFuture *ok = afut_gio_future_new (loop);
  AfutFuture *cancelled = afut_gio_future_new (loop);
  const GValue *got;
  GError *error = NULL;
  char *contents = NULL;

  g_file_load_contents_async (file, afut_glib_future_get_cancellable (ok),
                              loaded, afut_future_ref (ok));
  afut_loop_run_until_complete (loop, ok);
  got = afut_future_get_value (ok, NULL);
  g_assert_true (G_VALUE_HOLDS (got, G_TYPE_ASYNC_RESULT));
  g_assert_false (g_file_load_contents_finish (file, g_value_get_object (got),
                                               &contents, NULL, NULL, &error));
  g_assert_error (error, G_IO_ERROR, G_IO_ERROR_NOT_FOUND);
  g_clear_error (&error);

  /* Cancelled: pending until GIO's callback, then cancelled. */
  g_file_load_contents_async (file,
                              afut_glib_future_get_cancellable (cancelled),
                              loaded, afut_future_ref (cancelled));
  g_assert_true (afut_future_cancel (cancelled, "stop"));
  g_assert_false (afut_future_is_done (cancelled));
  afut_loop_run_until_complete (loop, cancelled);
  g_assert_true (afut_future_is_cancelled (cancelled));
  g_assert_cmpstr (afut_future_get_error (cancelled)->message, ==, "stop");

  afut_future_unref (ok);
  afut_future_unref (cancelled);
  g_object_unref (file);
  free_loop (loop);
}

static void
test_then_and_inspection (void)
{
  AfutLoop *loop = new_loop ();
  AfutFuture *f = afut_future_new (loop);
  AfutFuture *g = afut_gather_v (&f, 1);
  GError *error = NULL;
  int steps = 0;
  AfutFuture *t;
  char *text;
  done_one = afut_future_new (loop);
  afut_future_resolve (done_one);
  t = afut_stepped_task_new (loop, "inspected", done_step, &steps, NULL);
  g_assert_false (afut_future_then (f, &error));
  g_assert_error (error, AFUT_ERROR, AFUT_ERROR_INVALID_STATE);
  g_assert_nonnull (strstr (error->message, "Afut.js"));
  g_clear_error (&error);
  g_assert_true (afut_future_is_gather (g));
  g_assert_false (afut_future_is_gather (f));
  g_assert_false (afut_future_is_task (f));
  text = afut_task_to_string (afut_future_get_task (t));
  g_assert_nonnull (strstr (text, "'inspected'"));
  g_free (text);
  g_assert_true (afut_task_get_future (afut_future_get_task (t)) == t);
  afut_future_cancel (g, NULL);
  afut_loop_run_until_complete (loop, t);
  afut_future_unref (t);
  afut_future_unref (g);
  afut_future_unref (f);
  g_clear_pointer (&done_one, afut_future_unref);
  free_loop (loop);
}

/* ---- bad arguments: criticals (in a subprocess), no crash, and every
 * closure still released ---- */

static void
test_bad_arguments (void)
{
  if (g_test_subprocess ())
    {
      AfutLoop *loop;
      g_log_set_always_fatal (G_LOG_FATAL_MASK); /* see every critical */
      loop = new_loop ();
      int destroyed = 0;
      g_assert_null (afut_stepped_task_new (loop, NULL, NULL, &destroyed,
                                            count_destroy));
      g_assert_cmpint (destroyed, ==, 1);
      g_assert_null (afut_future_new_with_cancel (loop, NULL, &destroyed,
                                                  count_destroy));
      g_assert_cmpint (destroyed, ==, 2);
      g_assert_false (afut_future_fail_value (NULL, NULL, NULL));
      g_assert_null (afut_future_get_value (NULL, NULL));
      g_assert_false (afut_loop_call_soon_full (loop, NULL, &destroyed,
                                                count_destroy));
      g_assert_cmpint (destroyed, ==, 3);
      free_loop (loop);
      return;
    }
  g_test_trap_subprocess (NULL, 0, G_TEST_SUBPROCESS_DEFAULT);
  g_test_trap_assert_passed ();
  g_test_trap_assert_stderr ("*CRITICAL*step != NULL*");
  g_test_trap_assert_stderr ("*CRITICAL*cancel != NULL*");
  g_test_trap_assert_stderr ("*CRITICAL*future != NULL*");
}

int
main (int argc, char **argv)
{
  g_test_init (&argc, &argv, NULL);
  g_test_add_func ("/gi/boxed/types", test_boxed_types);
  g_test_add_func ("/gi/value/round-trip", test_value_round_trip);
  g_test_add_func ("/gi/value/lent-through-combinators",
                   test_value_lent_through_combinators);
  g_test_add_func ("/gi/value/threadsafe", test_value_threadsafe);
  g_test_add_func ("/gi/value/from-threads", test_value_from_threads);
  g_test_add_func ("/gi/exception/rides-and-goes",
                   test_exception_rides_and_goes);
  g_test_add_func ("/gi/exception/task-group", test_exception_task_group);
  g_test_add_func ("/gi/stepped/runs-and-releases",
                   test_stepped_runs_and_releases);
  g_test_add_func ("/gi/stepped/cancel", test_stepped_cancel);
  g_test_add_func ("/gi/stepped/cancel-before-start",
                   test_stepped_cancel_before_start);
  g_test_add_func ("/gi/stepped/done-future-no-turn",
                   test_stepped_done_future_no_turn);
  g_test_add_func ("/gi/future/new-with-cancel", test_new_with_cancel);
  g_test_add_func ("/gi/loop/call-full-destroy-once",
                   test_call_full_destroy_once);
  g_test_add_func ("/gi/loop/exception-handler-full",
                   test_exception_handler_full);
  g_test_add_func ("/gi/gio/complete", test_gio_complete);
  g_test_add_func ("/gi/future/then-and-inspection", test_then_and_inspection);
  g_test_add_func ("/gi/bad/arguments", test_bad_arguments);
  return g_test_run ();
}
