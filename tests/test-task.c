/* test-task.c - afut tasks: the coroutine macros, names, the finalize
 * hook, lazy coroutines, scheduling (DESIGN.md rule 3), errors (rule 4)
 * and cancellation (rule 5).  Every loop runs on the virtual clock; event
 * order is recorded in a log and compared with the expected sequence. */

#define AFUT_IMPLEMENTATION
#include "afut.h"

#include <glib.h>

#include "event-log.h"
#include <string.h>

/* ---- harness ---- */

#define TEST_ERROR (afut_quark_from_static_string ("test-error-quark"))

static GPtrArray *reports; /* what the loop's exception handler was told */
static GPtrArray *warnings;
static gboolean expecting_warnings;
static unsigned n_finalized;
static unsigned n_destroyed;


/* The running loop's virtual time, in seconds. */
static double
now (void)
{
  return afut_loop_time (afut_loop_get_running ());
}

/* These suites use afut correctly: any critical, and any warning outside
 * a warnings_begin()/warnings_end() scope, fails the test. */
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

static void
warnings_begin (void)
{
  g_ptr_array_set_size (warnings, 0);
  expecting_warnings = TRUE;
}

static char *
join (GPtrArray *array)
{
  GString *s = g_string_new (NULL);
  guint i;
  for (i = 0; i < array->len; i++)
    {
      if (i > 0)
        g_string_append (s, "; ");
      g_string_append (s, g_ptr_array_index (array, i));
    }
  return g_string_free (s, FALSE);
}

/* Returns: (transfer full): the warnings seen in the scope, "; "-joined */
static char *
warnings_end (void)
{
  expecting_warnings = FALSE;
  return join (warnings);
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
  char *joined = join (reports);
  g_assert_cmpstr (joined, ==, expected);
  g_free (joined);
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
  n_finalized = 0;
  n_destroyed = 0;
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

static void
log_callback (void *data)
{
  ev ("%s", (const char *) data);
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
  g_assert_cmpstr (error->message, ==, message);
}

static void
assert_cancelled (AfutFuture *future, const char *message)
{
  g_assert_cmpstr (afut_future_state_to_string (afut_future_get_state (future)),
                   ==, "cancelled");
  g_assert_true (afut_future_is_cancelled (future));
  assert_error (afut_future_get_error (future), AFUT_ERROR,
                AFUT_ERROR_CANCELLED, message);
}

static void
assert_state (AfutFuture *future, AfutFutureState state)
{
  g_assert_cmpstr (afut_future_state_to_string (afut_future_get_state (future)),
                   ==, afut_future_state_to_string (state));
}

static const char *
caught_message (AfutTask *task)
{
  const AfutError *e = afut_task_caught (task);
  return e != NULL ? e->message : "none";
}

/* ---- task bodies ---- */

/* Logs, yields once, logs, then ends the way @mode says. */
typedef enum
{
  RET_END,
  RET_NONE,
  RET_POINTER,
  RET_INT,
  RET_DOUBLE,
  RET_THROW,
  RET_THROW_CANCELLED
} ReturnMode;

typedef struct
{
  AfutTask task;
  ReturnMode mode;
  const char *label;
} Returner;

#define BIG_INT (INT64_C (1) << 40)

static void
returner (AfutTask *task)
{
  Returner *self = (Returner *) task;
  AFUT_BEGIN (task);
  ev ("%s:start", self->label);
  AFUT_YIELD (task);
  ev ("%s:resumed", self->label);
  if (self->mode == RET_NONE)
    AFUT_RETURN (task);
  else if (self->mode == RET_POINTER)
    AFUT_RETURN_POINTER (task, g_strdup ("payload"), count_destroy);
  else if (self->mode == RET_INT)
    AFUT_RETURN_INT (task, BIG_INT);
  else if (self->mode == RET_DOUBLE)
    AFUT_RETURN_DOUBLE (task, 2.5);
  else if (self->mode == RET_THROW)
    AFUT_THROW (task, afut_error_new (TEST_ERROR, 7, "boom %d", 7));
  else if (self->mode == RET_THROW_CANCELLED)
    AFUT_THROW (task, afut_error_new_literal (AFUT_ERROR, AFUT_ERROR_CANCELLED,
                                              "thrown"));
  ev ("%s:end", self->label);
  AFUT_END (task);
}

static AfutFuture *
returner_new (AfutLoop *loop, ReturnMode mode, const char *label)
{
  return afut_task_new (loop, returner, sizeof (Returner),
                        &(Returner){ .mode = mode, .label = label }, label,
                        NULL);
}

/* Completes in its first step, without awaiting anything. */
typedef struct
{
  AfutTask task;
  const char *label;
  int64_t value;
} Immediate;

static void
immediate (AfutTask *task)
{
  Immediate *self = (Immediate *) task;
  AFUT_BEGIN (task);
  ev ("%s:run", self->label);
  AFUT_RETURN_INT (task, self->value);
  AFUT_END (task);
}

/* Sleeps 10 s (or awaits @awaited) catching the error, and reacts to a
 * cancellation: swallows it, or cleans up for @cleanup seconds and
 * re-raises it. */
typedef struct
{
  AfutTask task;
  AfutFuture *awaited; /* borrowed; NULL: a 10 s sleep */
  double cleanup;
  bool swallow;
  char *owned; /* freed by the finalize hook */
} Victim;

static void
victim (AfutTask *task)
{
  Victim *self = (Victim *) task;
  AFUT_BEGIN (task);
  ev ("victim:start@%g", now ());
  AFUT_AWAIT_TRY (task, self->awaited != NULL ? afut_future_ref (self->awaited)
                                              : afut_sleep (10));
  if (afut_task_caught (task) == NULL)
    {
      ev ("victim:not-cancelled@%g", now ());
      AFUT_RETURN_INT (task, 1);
    }
  ev ("victim:caught:%s:%s@%g",
      afut_error_code_to_string (afut_task_caught (task)->code),
      afut_task_caught (task)->message, now ());
  if (self->swallow)
    {
      AFUT_AWAIT (task, afut_sleep (self->cleanup));
      ev ("victim:swallowed@%g", now ());
      AFUT_RETURN_INT (task, 99);
    }
  if (self->cleanup > 0)
    {
      AFUT_AWAIT (task, afut_sleep (self->cleanup));
      ev ("victim:cleaned@%g", now ());
    }
  /* `except CancelledError: await cleanup(); raise` */
  AFUT_RERAISE (task);
  AFUT_END (task);
}

static void
victim_finalize (AfutTask *task)
{
  Victim *self = (Victim *) task;
  n_finalized++;
  g_free (self->owned);
}

static AfutFuture *
victim_new (AfutLoop *loop, const Victim *init)
{
  return afut_task_new (loop, victim, sizeof (Victim), init, "victim",
                        victim_finalize);
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

/* Awaits @child, catching; logs what it caught; re-raises if asked. */
typedef struct
{
  AfutTask task;
  AfutFuture *child; /* borrowed */
  bool reraise;
} Awaiter;

static void
awaiter (AfutTask *task)
{
  Awaiter *self = (Awaiter *) task;
  AFUT_BEGIN (task);
  AFUT_AWAIT_TRY (task, afut_future_ref (self->child));
  if (afut_task_caught (task) == NULL)
    {
      ev ("awaiter:ok@%g", now ());
      AFUT_RETURN (task);
    }
  ev ("awaiter:caught:%s:%s@%g",
      afut_error_code_to_string (afut_task_caught (task)->code),
      afut_task_caught (task)->message, now ());
  if (self->reraise)
    AFUT_RERAISE (task);
  AFUT_END (task);
}

static AfutFuture *
awaiter_new (AfutLoop *loop, AfutFuture *child, bool reraise)
{
  return afut_task_new (loop, awaiter, sizeof (Awaiter),
                        &(Awaiter){ .child = child, .reraise = reraise },
                        "awaiter", NULL);
}

/* ---- returning ---- */

static void
test_return_end (void)
{
  AfutLoop *loop = loop_new ();
  AfutFuture *t = returner_new (loop, RET_END, "t");

  g_assert_true (afut_loop_run_until_complete (loop, t));
  assert_state (t, AFUT_FUTURE_DONE);
  g_assert_cmpint (afut_future_get_value_type (t), ==, AFUT_VALUE_NONE);
  g_assert_null (afut_future_get_error (t));
  g_assert_cmpstr (events->str, ==, "t:start t:resumed t:end");
  afut_future_unref (t);
  loop_free (loop);
}

static void
test_return_none (void)
{
  AfutLoop *loop = loop_new ();
  AfutFuture *t = returner_new (loop, RET_NONE, "t");

  afut_loop_run_until_complete (loop, t);
  assert_state (t, AFUT_FUTURE_DONE);
  g_assert_cmpint (afut_future_get_value_type (t), ==, AFUT_VALUE_NONE);
  /* AFUT_RETURN leaves the body: "t:end" never runs. */
  g_assert_cmpstr (events->str, ==, "t:start t:resumed");
  afut_future_unref (t);
  loop_free (loop);
}

static void
test_return_pointer (void)
{
  AfutLoop *loop = loop_new ();
  AfutFuture *t = returner_new (loop, RET_POINTER, "t");

  afut_loop_run_until_complete (loop, t);
  assert_state (t, AFUT_FUTURE_DONE);
  g_assert_cmpint (afut_future_get_value_type (t), ==, AFUT_VALUE_POINTER);
  g_assert_cmpstr (afut_future_get_pointer (t), ==, "payload");
  g_assert_cmpstr (events->str, ==, "t:start t:resumed");
  /* The destroy notify goes with the task, not before. */
  g_assert_cmpuint (n_destroyed, ==, 0);
  afut_future_unref (t);
  g_assert_cmpuint (n_destroyed, ==, 1);
  loop_free (loop);
  g_assert_cmpuint (n_destroyed, ==, 1);
}

static void
test_return_int (void)
{
  AfutLoop *loop = loop_new ();
  AfutFuture *t = returner_new (loop, RET_INT, "t");

  afut_loop_run_until_complete (loop, t);
  assert_state (t, AFUT_FUTURE_DONE);
  g_assert_cmpint (afut_future_get_value_type (t), ==, AFUT_VALUE_INT);
  g_assert_cmpint (afut_future_get_int (t), ==, BIG_INT);
  g_assert_cmpstr (events->str, ==, "t:start t:resumed");
  afut_future_unref (t);
  loop_free (loop);
}

static void
test_return_double (void)
{
  AfutLoop *loop = loop_new ();
  AfutFuture *t = returner_new (loop, RET_DOUBLE, "t");

  afut_loop_run_until_complete (loop, t);
  assert_state (t, AFUT_FUTURE_DONE);
  g_assert_cmpint (afut_future_get_value_type (t), ==, AFUT_VALUE_DOUBLE);
  g_assert_cmpfloat (afut_future_get_double (t), ==, 2.5);
  afut_future_unref (t);
  loop_free (loop);
}

static void
test_throw_fails_task (void)
{
  AfutLoop *loop = loop_new ();
  AfutFuture *t = returner_new (loop, RET_THROW, "t");

  afut_loop_run_until_complete (loop, t);
  assert_state (t, AFUT_FUTURE_FAILED);
  g_assert_false (afut_future_is_cancelled (t));
  assert_error (afut_future_get_error (t), TEST_ERROR, 7, "boom 7");
  g_assert_cmpstr (events->str, ==, "t:start t:resumed");
  afut_future_unref (t);
  loop_free (loop);
}

static void
test_throw_cancelled (void)
{
  AfutLoop *loop = loop_new ();
  AfutFuture *t = returner_new (loop, RET_THROW_CANCELLED, "t");

  afut_loop_run_until_complete (loop, t);
  /* Raising a cancellation ends the task cancelled, not failed. */
  assert_cancelled (t, "thrown");
  afut_future_unref (t);
  loop_free (loop);
}

/* ---- awaiting: afut_task_awaited, AFUT_AWAIT_TRY, AFUT_RERAISE ---- */

typedef struct
{
  AfutTask task;
  int64_t got_int;
  double got_double;
  AfutValueType none_type;
  char *got_string;
  unsigned destroyed_while_awaited;
  bool awaited_cleared;
} Reader;

static void
reader (AfutTask *task)
{
  Reader *self = (Reader *) task;
  AFUT_BEGIN (task);
  AFUT_AWAIT (task, returner_new (NULL, RET_INT, "i"));
  self->got_int = afut_future_get_int (afut_task_awaited (task));
  AFUT_AWAIT (task, returner_new (NULL, RET_DOUBLE, "d"));
  self->got_double = afut_future_get_double (afut_task_awaited (task));
  AFUT_AWAIT (task, returner_new (NULL, RET_NONE, "n"));
  self->none_type = afut_future_get_value_type (afut_task_awaited (task));
  /* Only the await holds this child now: its value lives until the next
   * await. */
  AFUT_AWAIT (task, returner_new (NULL, RET_POINTER, "p"));
  self->got_string
    = g_strdup (afut_future_get_pointer (afut_task_awaited (task)));
  self->destroyed_while_awaited = n_destroyed;
  AFUT_YIELD (task);
  self->awaited_cleared = afut_task_awaited (task) == NULL;
  AFUT_END (task);
}

static void
test_await_value (void)
{
  AfutLoop *loop = loop_new ();
  AfutFuture *t = afut_task_new (loop, reader, sizeof (Reader), NULL,
                                 "reader", NULL);
  Reader *r = (Reader *) t;

  afut_loop_run_until_complete (loop, t);
  assert_state (t, AFUT_FUTURE_DONE);
  /* Each child ran to its end before the next started. */
  g_assert_cmpstr (events->str, ==,
                   "i:start i:resumed d:start d:resumed n:start n:resumed "
                   "p:start p:resumed");
  g_assert_cmpint (r->got_int, ==, BIG_INT);
  g_assert_cmpfloat (r->got_double, ==, 2.5);
  g_assert_cmpint (r->none_type, ==, AFUT_VALUE_NONE);
  g_assert_cmpstr (r->got_string, ==, "payload");
  g_assert_cmpuint (r->destroyed_while_awaited, ==, 0);
  g_assert_true (r->awaited_cleared);
  g_free (r->got_string);
  afut_future_unref (t);
  loop_free (loop);
  g_assert_cmpuint (n_destroyed, ==, 1);
}

typedef struct
{
  AfutTask task;
  const char *label;
} Labelled;

static void
catch_reraise (AfutTask *task)
{
  Labelled *self = (Labelled *) task;
  AFUT_BEGIN (task);
  AFUT_AWAIT_TRY (task, returner_new (NULL, RET_INT, "ok"));
  ev ("%s:ok-caught:%s:%" G_GINT64_FORMAT, self->label,
      afut_task_caught (task) != NULL ? "error" : "none",
      afut_future_get_int (afut_task_awaited (task)));
  AFUT_AWAIT_TRY (task, returner_new (NULL, RET_THROW, "bad"));
  ev ("%s:bad-caught:%s", self->label, caught_message (task));
  AFUT_RERAISE (task);
  AFUT_END (task);
}

static void
test_await_try_reraise (void)
{
  AfutLoop *loop = loop_new ();
  AfutFuture *t = afut_task_new (loop, catch_reraise, sizeof (Labelled),
                                 &(Labelled){ .label = "c" }, "c", NULL);

  afut_loop_run_until_complete (loop, t);
  g_assert_cmpstr (events->str, ==,
                   "ok:start ok:resumed c:ok-caught:none:1099511627776 "
                   "bad:start bad:resumed c:bad-caught:boom 7");
  /* A bare `raise`: the task ends with the very error it caught. */
  assert_state (t, AFUT_FUTURE_FAILED);
  assert_error (afut_future_get_error (t), TEST_ERROR, 7, "boom 7");
  afut_future_unref (t);
  /* The child's error was retrieved by the await: nothing reported. */
  loop_free (loop);
}

/* ---- names, current task ---- */

typedef struct
{
  AfutTask task;
  AfutTask *current;
} Probe;

static void
probe (AfutTask *task)
{
  Probe *self = (Probe *) task;
  AFUT_BEGIN (task);
  self->current = afut_task_get_current (NULL);
  ev ("%s", afut_task_get_name (task));
  AFUT_YIELD (task);
  ev ("%s", afut_task_get_name (afut_task_get_current (NULL)));
  AFUT_END (task);
}

static void
test_name_given (void)
{
  AfutLoop *loop = loop_new ();
  char name[] = "worker";
  AfutFuture *t = afut_task_new (loop, probe, sizeof (Probe), NULL, name,
                                 NULL);

  name[0] = 'X'; /* the name was copied */
  g_assert_cmpstr (afut_task_get_name (AFUT_TASK (t)), ==, "worker");
  g_assert_null (afut_task_get_current (loop));
  afut_loop_run_until_complete (loop, t);
  g_assert_cmpstr (events->str, ==, "worker worker");
  g_assert_true (((Probe *) t)->current == AFUT_TASK (t));
  g_assert_null (afut_task_get_current (loop));
  g_assert_null (afut_task_get_current (NULL));
  g_assert_cmpstr (afut_task_get_name (AFUT_TASK (t)), ==, "worker");
  afut_future_unref (t);
  loop_free (loop);
}

static guint64
task_number (AfutFuture *t)
{
  const char *name = afut_task_get_name (AFUT_TASK (t));
  char *end = NULL;
  guint64 n;
  g_assert_true (g_str_has_prefix (name, "Task-"));
  n = g_ascii_strtoull (name + 5, &end, 10);
  g_assert_true (end != name + 5 && *end == '\0');
  return n;
}

static void
test_name_default (void)
{
  AfutLoop *loop = loop_new ();
  AfutFuture *a = afut_task_new (loop, probe, sizeof (Probe), NULL, NULL,
                                 NULL);
  AfutFuture *b = afut_task_new (loop, probe, sizeof (Probe), NULL, NULL,
                                 NULL);

  /* asyncio: "Task-N", N counting up. */
  g_assert_cmpuint (task_number (b), ==, task_number (a) + 1);
  afut_loop_run_until_complete (loop, b);
  g_assert_cmpuint (task_number (b), ==, task_number (a) + 1);
  afut_future_unref (a);
  afut_future_unref (b);
  loop_free (loop);
}

typedef struct
{
  AfutTask task;
  char *spawn_name;
  char *coro_name;
  AfutFuture *child;
} Spawner;

static void
spawner (AfutTask *task)
{
  Spawner *self = (Spawner *) task;
  AFUT_BEGIN (task);
  self->child = AFUT_SPAWN (Probe, probe);
  self->spawn_name = g_strdup (afut_task_get_name (AFUT_TASK (self->child)));
  AFUT_AWAIT (task, self->child);
  self->child = AFUT_CORO (Probe, probe);
  self->coro_name = g_strdup (afut_task_get_name (AFUT_TASK (self->child)));
  AFUT_AWAIT (task, self->child);
  AFUT_END (task);
}

static void
test_name_from_macro (void)
{
  AfutLoop *loop = loop_new ();
  AfutFuture *t = afut_task_new (loop, spawner, sizeof (Spawner), NULL,
                                 "spawner", NULL);
  Spawner *s = (Spawner *) t;

  afut_loop_run_until_complete (loop, t);
  assert_state (t, AFUT_FUTURE_DONE);
  /* AFUT_SPAWN and AFUT_CORO name the task after its step function. */
  g_assert_cmpstr (s->spawn_name, ==, "probe");
  g_assert_cmpstr (s->coro_name, ==, "probe");
  /* After its yield the coroutine awaited inline finds its awaiter's
   * task current, as asyncio.current_task() does in a coroutine. */
  g_assert_cmpstr (events->str, ==, "probe probe probe spawner");
  g_free (s->spawn_name);
  g_free (s->coro_name);
  afut_future_unref (t);
  loop_free (loop);
}

static void
named_spawner (AfutTask *task)
{
  Spawner *self = (Spawner *) task;
  AFUT_BEGIN (task);
  /* asyncio.create_task (probe (), name = "given") */
  self->child = AFUT_SPAWN_NAMED ("given", Probe, probe);
  self->spawn_name = g_strdup (afut_task_get_name (AFUT_TASK (self->child)));
  AFUT_AWAIT (task, self->child);
  /* With initializers, and a name built at run time. */
  self->child = AFUT_CORO_NAMED (self->spawn_name, Immediate, immediate,
                                 .label = "coro");
  self->coro_name = g_strdup (afut_task_get_name (AFUT_TASK (self->child)));
  AFUT_AWAIT (task, afut_gather (self->child, NULL));
  /* NULL: asyncio's default, "Task-N". */
  self->child = AFUT_SPAWN_NAMED (NULL, Immediate, immediate, .label = "y");
  g_assert_true (g_str_has_prefix (
    afut_task_get_name (AFUT_TASK (self->child)), "Task-"));
  AFUT_AWAIT (task, self->child);
  AFUT_END (task);
}

static void
test_name_named_macros (void)
{
  AfutLoop *loop = loop_new ();
  AfutFuture *t = afut_task_new (loop, named_spawner, sizeof (Spawner), NULL,
                                 "spawner", NULL);
  Spawner *s = (Spawner *) t;

  afut_loop_run_until_complete (loop, t);
  assert_state (t, AFUT_FUTURE_DONE);
  g_assert_cmpstr (s->spawn_name, ==, "given");
  g_assert_cmpstr (s->coro_name, ==, "given");
  /* The probe logs its name at each step, the others their labels. */
  g_assert_cmpstr (events->str, ==, "given given coro:run y:run");
  g_free (s->spawn_name);
  g_free (s->coro_name);
  afut_future_unref (t);
  loop_free (loop);
}

static void
test_name_set (void)
{
  AfutLoop *loop = loop_new ();
  AfutFuture *t = afut_task_new (loop, probe, sizeof (Probe), NULL, "before",
                                 NULL);
  char name[] = "after";

  afut_loop_iterate (loop, false);
  g_assert_cmpstr (events->str, ==, "before");
  afut_task_set_name (AFUT_TASK (t), name);
  name[0] = 'X';
  g_assert_cmpstr (afut_task_get_name (AFUT_TASK (t)), ==, "after");
  afut_loop_run_until_complete (loop, t);
  /* The running task sees its new name. */
  g_assert_cmpstr (events->str, ==, "before after");
  afut_task_set_name (AFUT_TASK (t), "done");
  g_assert_cmpstr (afut_task_get_name (AFUT_TASK (t)), ==, "done");
  afut_future_unref (t);
  loop_free (loop);
}

/* ---- the finalize hook ---- */

typedef struct
{
  AfutTask task;
  char *owned;
  bool fail;
} Owner;

static void
owner (AfutTask *task)
{
  Owner *self = (Owner *) task;
  AFUT_BEGIN (task);
  ev ("owner:%s", self->owned);
  AFUT_AWAIT (task, afut_sleep (1));
  if (self->fail)
    AFUT_THROW (task, afut_error_new_literal (TEST_ERROR, 1, "owner failed"));
  AFUT_END (task);
}

static void
owner_finalize (AfutTask *task)
{
  Owner *self = (Owner *) task;
  n_finalized++;
  g_free (self->owned);
  self->owned = NULL;
}

static AfutFuture *
owner_new (AfutLoop *loop, bool fail)
{
  return afut_task_new (loop, owner, sizeof (Owner),
                        &(Owner){ .owned = g_strdup ("x"), .fail = fail },
                        "owner", owner_finalize);
}

static void
test_finalize_once (void)
{
  AfutLoop *loop = loop_new ();
  AfutFuture *t = owner_new (loop, false);

  afut_loop_run_until_complete (loop, t);
  assert_state (t, AFUT_FUTURE_DONE);
  g_assert_cmpstr (events->str, ==, "owner:x");
  /* Completion does not finalize: the last reference does. */
  g_assert_cmpuint (n_finalized, ==, 0);
  afut_future_ref (t);
  afut_future_unref (t);
  g_assert_cmpuint (n_finalized, ==, 0);
  afut_future_unref (t);
  g_assert_cmpuint (n_finalized, ==, 1);
  loop_free (loop);
  g_assert_cmpuint (n_finalized, ==, 1);
}

static void
test_finalize_failed (void)
{
  AfutLoop *loop = loop_new ();
  AfutFuture *t = owner_new (loop, true);

  afut_loop_run_until_complete (loop, t);
  assert_error (afut_future_get_error (t), TEST_ERROR, 1, "owner failed");
  g_assert_cmpuint (n_finalized, ==, 0);
  afut_future_unref (t);
  g_assert_cmpuint (n_finalized, ==, 1);
  loop_free (loop);
  g_assert_cmpuint (n_finalized, ==, 1);
}

static void
test_finalize_cancelled_before_first_step (void)
{
  AfutLoop *loop = loop_new ();
  AfutFuture *t = owner_new (loop, false);

  g_assert_true (afut_future_cancel (t, NULL));
  afut_loop_run_until_complete (loop, t);
  assert_cancelled (t, "");
  g_assert_cmpstr (events->str, ==, "");
  g_assert_cmpuint (n_finalized, ==, 0);
  afut_future_unref (t);
  g_assert_cmpuint (n_finalized, ==, 1);
  loop_free (loop);
  g_assert_cmpuint (n_finalized, ==, 1);
}

static void
test_finalize_pending_at_loop_free (void)
{
  AfutLoop *loop = loop_new ();
  AfutFuture *t = owner_new (loop, false);

  /* The loop keeps a pending task alive; freeing the loop cancels it and
   * the finalize hook runs once, with no reference left in the test. */
  afut_loop_iterate (loop, false);
  g_assert_cmpstr (events->str, ==, "owner:x");
  afut_future_unref (t);
  g_assert_cmpuint (n_finalized, ==, 0);
  loop_free (loop);
  g_assert_cmpuint (n_finalized, ==, 1);
}

/* ---- lazy coroutines: afut_coro_new, AFUT_CORO, afut_task_start ---- */

typedef struct
{
  AfutTask task;
  AfutFuture *coro;
} LazyParent;

static void
lazy_parent (AfutTask *task)
{
  LazyParent *self = (LazyParent *) task;
  AFUT_BEGIN (task);
  self->coro = AFUT_CORO (Returner, returner, .mode = RET_INT, .label = "c");
  ev ("created");
  AFUT_YIELD (task);
  AFUT_AWAIT (task, afut_sleep (1));
  ev ("slept@%g", now ());
  AFUT_AWAIT (task, self->coro);
  ev ("awaited:%" G_GINT64_FORMAT,
      afut_future_get_int (afut_task_awaited (task)));
  AFUT_END (task);
}

static void
test_coro_not_started_until_awaited (void)
{
  AfutLoop *loop = loop_new ();
  AfutFuture *t = afut_task_new (loop, lazy_parent, sizeof (LazyParent), NULL,
                                 "parent", NULL);

  afut_loop_run_until_complete (loop, t);
  assert_state (t, AFUT_FUTURE_DONE);
  /* Neither a yield nor a sleep of its creator starts a coroutine. */
  g_assert_cmpstr (events->str, ==,
                   "created slept@1 c:start c:resumed awaited:1099511627776");
  afut_future_unref (t);
  loop_free (loop);
}

static void
inline_parent (AfutTask *task)
{
  Labelled *self = (Labelled *) task;
  AFUT_BEGIN (task);
  afut_loop_call_soon (afut_loop_get_running (), log_callback, "cb1");
  AFUT_AWAIT (task, AFUT_CORO (Immediate, immediate, .label = "i",
                               .value = 7));
  ev ("%s:got:%" G_GINT64_FORMAT, self->label,
      afut_future_get_int (afut_task_awaited (task)));
  afut_loop_call_soon (afut_loop_get_running (), log_callback, "cb2");
  AFUT_AWAIT (task, AFUT_CORO (Returner, returner, .mode = RET_INT,
                               .label = "r"));
  ev ("%s:after-r", self->label);
  AFUT_END (task);
}

static void
test_coro_await_runs_first_step_at_once (void)
{
  AfutLoop *loop = loop_new ();
  AfutFuture *t = afut_task_new (loop, inline_parent, sizeof (Labelled),
                                 &(Labelled){ .label = "p" }, "p", NULL);

  afut_loop_run_until_complete (loop, t);
  /* `await coro()`: "i" runs inside the await, before cb1 that was queued
   * earlier, and the parent continues at once since "i" completed; "r"
   * starts at once too, then suspends behind both callbacks. */
  g_assert_cmpstr (events->str, ==,
                   "i:run p:got:7 r:start cb1 cb2 r:resumed p:after-r");
  afut_future_unref (t);
  loop_free (loop);
}

/* A coroutine that suspends once and queues a callback in its last
 * step. */
static void
tail_coro (AfutTask *task)
{
  Labelled *self = (Labelled *) task;
  AFUT_BEGIN (task);
  ev ("%s:start", self->label);
  AFUT_YIELD (task);
  ev ("%s:resumed", self->label);
  afut_loop_call_soon (afut_loop_get_running (), log_callback, "cb");
  AFUT_RETURN_INT (task, 1);
  AFUT_END (task);
}

static void
tail_parent (AfutTask *task)
{
  Labelled *self = (Labelled *) task;
  AFUT_BEGIN (task);
  AFUT_AWAIT (task, AFUT_CORO (Labelled, tail_coro, .label = "r"));
  ev ("%s:after-r", self->label);
  AFUT_YIELD (task);
  AFUT_END (task);
}

static void
test_coro_await_resumes_at_once (void)
{
  AfutLoop *loop = loop_new ();
  AfutFuture *t = afut_task_new (loop, tail_parent, sizeof (Labelled),
                                 &(Labelled){ .label = "p" }, "p", NULL);
  const char *expected = "r:start r:resumed p:after-r cb";

  afut_loop_run_until_complete (loop, t);
  assert_state (t, AFUT_FUTURE_DONE);
  /* `await coro()` runs the coroutine inside the awaiting task: CPython
   * 3.11 continues the awaiter in the coroutine's last step, before the
   * callback that step queued. */
  g_assert_cmpstr (events->str, ==, expected);
  afut_future_unref (t);
  loop_free (loop);
}

typedef struct
{
  AfutTask task;
  AfutFuture *gather;
} GatherParent;

static void
gather_coros (AfutTask *task)
{
  GatherParent *self = (GatherParent *) task;
  AFUT_BEGIN (task);
  self->gather
    = afut_gather (AFUT_CORO (Returner, returner, .mode = RET_INT,
                              .label = "a"),
                   AFUT_CORO (Returner, returner, .mode = RET_INT,
                              .label = "b"),
                   AFUT_CORO (Returner, returner, .mode = RET_INT,
                              .label = "c"),
                   NULL);
  ev ("gathered");
  AFUT_AWAIT (task, self->gather);
  ev ("done:%zu", afut_gather_get_n_items (afut_task_awaited (task)));
  AFUT_END (task);
}

static void
test_coro_gather_starts_in_input_order (void)
{
  AfutLoop *loop = loop_new ();
  AfutFuture *t = afut_task_new (loop, gather_coros, sizeof (GatherParent),
                                 NULL, "parent", NULL);

  afut_loop_run_until_complete (loop, t);
  assert_state (t, AFUT_FUTURE_DONE);
  /* Started by the gather in input order, whatever order C evaluated the
   * arguments in; scheduled, not run inside the gather call. */
  g_assert_cmpstr (events->str, ==,
                   "gathered a:start b:start c:start a:resumed b:resumed "
                   "c:resumed done:3");
  afut_future_unref (t);
  loop_free (loop);
}

/* A chain of coroutines awaited inline (`await coro()` in each): deeper
 * than afut keeps on the C stack (16 levels), the rest is stepped from a
 * loop (afut__task_run_step), which must keep every ordering of a shallow
 * chain: no loop turn going down or coming back up, the task awaiting the
 * chain is the current task at the bottom, a cancel lands at the bottom.
 * /usr/bin/python3 (3.11.2) prints "bottom:start:main cb1 bottom:resumed
 * p:got:<N - 1> cb2" for N = 1, 3, 17, 100 (any N below its recursion
 * limit):
 *
 *   import asyncio
 *   out = []
 *   async def chain(level):
 *       if level == 0:
 *           out.append("bottom:start:" + asyncio.current_task().get_name())
 *           asyncio.get_running_loop().call_soon(out.append, "cb1")
 *           await asyncio.sleep(0)
 *           out.append("bottom:resumed")
 *           asyncio.get_running_loop().call_soon(out.append, "cb2")
 *           return 0
 *       return await chain(level - 1) + 1
 *   async def main():
 *       asyncio.current_task().set_name("main")
 *       out.append("p:got:%d" % await chain(N - 1))
 *       await asyncio.sleep(0)
 *       print(" ".join(out))
 *   asyncio.run(main())
 */
typedef struct
{
  AfutTask task;
  int level;
} ChainCoro;

static unsigned n_chain_finalized;

static void
chain_finalize (AfutTask *task)
{
  (void) task;
  n_chain_finalized++;
}

static void
chain_coro (AfutTask *task)
{
  ChainCoro *self = (ChainCoro *) task;
  AFUT_BEGIN (task);
  if (self->level == 0)
    {
      ev ("bottom:start:%s",
          afut_task_get_name (afut_task_get_current (NULL)));
      afut_loop_call_soon (afut_loop_get_running (), log_callback, "cb1");
      AFUT_YIELD (task);
      ev ("bottom:resumed");
      afut_loop_call_soon (afut_loop_get_running (), log_callback, "cb2");
      AFUT_RETURN_INT (task, 0);
    }
  AFUT_AWAIT (task, afut_coro_new (NULL, chain_coro, sizeof (ChainCoro),
                                   &(ChainCoro){ .level = self->level - 1 },
                                   NULL, chain_finalize));
  AFUT_RETURN_INT (task, afut_future_get_int (afut_task_awaited (task)) + 1);
  AFUT_END (task);
}

static void
chain_main (AfutTask *task)
{
  ChainCoro *self = (ChainCoro *) task;
  AFUT_BEGIN (task);
  AFUT_AWAIT (task, afut_coro_new (NULL, chain_coro, sizeof (ChainCoro),
                                   &(ChainCoro){ .level = self->level - 1 },
                                   NULL, chain_finalize));
  ev ("p:got:%d", (int) afut_future_get_int (afut_task_awaited (task)));
  AFUT_YIELD (task);
  AFUT_END (task);
}

static void
test_coro_deep_chain (void)
{
  static const int depths[] = { 1, 3, 16, 17, 100, 5000 };
  gsize i;

  for (i = 0; i < G_N_ELEMENTS (depths); i++)
    {
      AfutLoop *loop = loop_new ();
      AfutFuture *t = afut_task_new (loop, chain_main, sizeof (ChainCoro),
                                     &(ChainCoro){ .level = depths[i] },
                                     "main", NULL);
      char *expected = g_strdup_printf (
        "bottom:start:main cb1 bottom:resumed p:got:%d cb2", depths[i] - 1);

      n_chain_finalized = 0;
      afut_loop_run_until_complete (loop, t);
      assert_state (t, AFUT_FUTURE_DONE);
      g_assert_cmpstr (events->str, ==, expected);
      afut_future_unref (t);
      loop_free (loop);
      g_assert_cmpuint (n_chain_finalized, ==, depths[i]);
      g_free (expected);
    }
}

/* The same chains, cancelled while the bottom yields: the cancel lands
 * there and every level ends cancelled with its message. */
static void
test_coro_deep_chain_cancel (void)
{
  static const int depths[] = { 3, 17, 5000 };
  gsize i;

  for (i = 0; i < G_N_ELEMENTS (depths); i++)
    {
      AfutLoop *loop = loop_new ();
      AfutFuture *t = afut_task_new (loop, chain_main, sizeof (ChainCoro),
                                     &(ChainCoro){ .level = depths[i] },
                                     "main", NULL);

      n_chain_finalized = 0;
      g_assert_true (afut_loop_iterate (loop, FALSE));
      g_assert_cmpstr (events->str, ==, "bottom:start:main");
      g_assert_true (afut_future_cancel (t, "deep"));
      afut_loop_run_until_complete (loop, t);
      g_assert_true (afut_future_is_cancelled (t));
      g_assert_cmpstr (afut_future_get_error (t)->message, ==, "deep");
      /* The bottom never resumed: the cancel was raised at its yield. */
      g_assert_cmpstr (events->str, ==, "bottom:start:main cb1");
      afut_future_unref (t);
      loop_free (loop);
      g_assert_cmpuint (n_chain_finalized, ==, depths[i]);
    }
}

static void
test_coro_task_start (void)
{
  AfutLoop *loop = loop_new ();
  AfutFuture *c = afut_coro_new (loop, returner, sizeof (Returner),
                                 &(Returner){ .mode = RET_INT, .label = "c" },
                                 "c", NULL);
  AfutFuture *plain = afut_future_new (loop);

  g_assert_cmpstr (afut_task_get_name (AFUT_TASK (c)), ==, "c");
  g_assert_cmpuint (afut_loop_get_n_tasks (loop), ==, 0);
  afut_loop_iterate (loop, false);
  g_assert_cmpstr (events->str, ==, "");
  assert_state (c, AFUT_FUTURE_PENDING);

  g_assert_true (afut_task_start (c) == c);
  /* Scheduled, not run inside afut_task_start(). */
  g_assert_cmpstr (events->str, ==, "");
  g_assert_cmpuint (afut_loop_get_n_tasks (loop), ==, 1);
  /* Starting twice changes nothing. */
  g_assert_true (afut_task_start (c) == c);
  afut_loop_iterate (loop, false);
  g_assert_cmpstr (events->str, ==, "c:start");
  afut_loop_run_until_complete (loop, c);
  g_assert_cmpstr (events->str, ==, "c:start c:resumed");
  g_assert_cmpint (afut_future_get_int (c), ==, BIG_INT);
  g_assert_cmpuint (afut_loop_get_n_tasks (loop), ==, 0);

  /* Anything but a coroutine is left as it is. */
  g_assert_true (afut_task_start (plain) == plain);
  assert_state (plain, AFUT_FUTURE_PENDING);

  afut_future_unref (plain);
  afut_future_unref (c);
  loop_free (loop);
}

static void
test_coro_never_awaited (void)
{
  AfutLoop *loop = loop_new ();
  AfutFuture *c = afut_coro_new (loop, owner, sizeof (Owner),
                                 &(Owner){ .owned = g_strdup ("x") },
                                 "lonely", owner_finalize);
  AfutFuture *started = afut_coro_new (loop, owner, sizeof (Owner),
                                       &(Owner){ .owned = g_strdup ("y") },
                                       "started", owner_finalize);
  char *seen;

  afut_task_start (started);
  afut_loop_run_until_complete (loop, started);
  afut_loop_iterate (loop, false);
  g_assert_cmpstr (events->str, ==, "owner:y");

  warnings_begin ();
  afut_future_unref (started); /* started: not reported */
  afut_future_unref (c);
  seen = warnings_end ();
  g_assert_nonnull (strstr (seen, "lonely"));
  g_assert_nonnull (strstr (seen, "was never awaited"));
  g_assert_null (strstr (seen, "started"));
  g_assert_cmpuint (warnings->len, ==, 1);
  g_free (seen);
  /* Its body never ran; its finalize hook did. */
  g_assert_cmpstr (events->str, ==, "owner:y");
  g_assert_cmpuint (n_finalized, ==, 2);
  loop_free (loop);
}

/* ---- rule 3: scheduling ---- */

typedef struct
{
  AfutTask task;
  const char *label;
  AfutFuture *child;
} SpawnParent;

static void
spawn_parent (AfutTask *task)
{
  SpawnParent *self = (SpawnParent *) task;
  AFUT_BEGIN (task);
  ev ("%s:start", self->label);
  self->child = AFUT_SPAWN (Immediate, immediate, .label = "child",
                            .value = 1);
  ev ("%s:spawned", self->label);
  AFUT_AWAIT (task, self->child);
  ev ("%s:after", self->label);
  AFUT_END (task);
}

static void
test_schedule_first_step_later (void)
{
  AfutLoop *loop = loop_new ();
  AfutFuture *t = afut_task_new (loop, spawn_parent, sizeof (SpawnParent),
                                 &(SpawnParent){ .label = "p" }, "p", NULL);

  /* Not inside its creator, from outside the loop... */
  g_assert_cmpstr (events->str, ==, "");
  g_assert_true (afut_loop_iterate (loop, false));
  /* ...nor from inside a task: the child waits for the next iteration. */
  g_assert_cmpstr (events->str, ==, "p:start p:spawned");
  g_assert_true (afut_loop_iterate (loop, false));
  g_assert_cmpstr (events->str, ==, "p:start p:spawned child:run");
  assert_state (t, AFUT_FUTURE_PENDING);
  g_assert_true (afut_loop_iterate (loop, false));
  g_assert_cmpstr (events->str, ==, "p:start p:spawned child:run p:after");
  assert_state (t, AFUT_FUTURE_DONE);
  afut_future_unref (t);
  loop_free (loop);
}

typedef struct
{
  AfutTask task;
  const char *label;
  int n;
  int i;
  bool use_sleep0;
  const char *callback; /* queued with call_soon before each yield */
} Yielder;

static void
yielder (AfutTask *task)
{
  Yielder *self = (Yielder *) task;
  AFUT_BEGIN (task);
  ev ("%s0", self->label);
  for (self->i = 1; self->i <= self->n; self->i++)
    {
      if (self->callback != NULL)
        afut_loop_call_soon (afut_loop_get_running (), log_callback,
                             (void *) self->callback);
      if (self->use_sleep0)
        {
          AFUT_AWAIT (task, afut_sleep (0));
        }
      else
        {
          AFUT_YIELD (task);
        }
      ev ("%s%d", self->label, self->i);
    }
  AFUT_END (task);
}

static AfutFuture *
yielder_new (AfutLoop *loop, const Yielder *init)
{
  return afut_task_new (loop, yielder, sizeof (Yielder), init, init->label,
                        NULL);
}

static void
check_back_of_queue (bool use_sleep0)
{
  AfutLoop *loop = loop_new ();
  AfutFuture *a = yielder_new (loop, &(Yielder){ .label = "A",
                                                 .n = 1,
                                                 .use_sleep0 = use_sleep0,
                                                 .callback = "cb" });
  AfutFuture *b = yielder_new (loop, &(Yielder){ .label = "B",
                                                 .n = 1,
                                                 .use_sleep0 = use_sleep0 });
  AfutFuture *c = yielder_new (loop, &(Yielder){ .label = "C",
                                                 .n = 1,
                                                 .use_sleep0 = use_sleep0 });

  afut_loop_run_until_complete (loop, c);
  /* Tasks start in creation order; a yielding task goes behind what is
   * already queued, the callback A queued just before included. */
  g_assert_cmpstr (events->str, ==, "A0 B0 C0 cb A1 B1 C1");
  g_assert_cmpfloat (afut_loop_time (loop), ==, 0.0);
  afut_future_unref (a);
  afut_future_unref (b);
  afut_future_unref (c);
  loop_free (loop);
}

static void
test_schedule_yield_back_of_queue (void)
{
  check_back_of_queue (false);
}

static void
test_schedule_sleep0_back_of_queue (void)
{
  check_back_of_queue (true);
}

/* The tutorial's 04-two-yields.py. */
typedef struct
{
  AfutTask task;
  int id;
  bool use_sleep0;
} Tutorial;

static void
tutorial_task (AfutTask *task)
{
  Tutorial *self = (Tutorial *) task;
  AFUT_BEGIN (task);
  line ("Task %d started", self->id);
  if (self->use_sleep0)
    {
      AFUT_AWAIT (task, afut_sleep (0));
    }
  else
    {
      AFUT_YIELD (task);
    }
  line ("Task %d after first yield", self->id);
  if (self->use_sleep0)
    {
      AFUT_AWAIT (task, afut_sleep (0));
    }
  else
    {
      AFUT_YIELD (task);
    }
  line ("Task %d after second yield", self->id);
  AFUT_END (task);
}

typedef struct
{
  AfutTask task;
  bool use_sleep0;
} TutorialMain;

static void
tutorial_main (AfutTask *task)
{
  TutorialMain *self = (TutorialMain *) task;
  AFUT_BEGIN (task);
  AFUT_AWAIT (task, afut_gather (AFUT_CORO (Tutorial, tutorial_task, .id = 1,
                                            .use_sleep0 = self->use_sleep0),
                                 AFUT_CORO (Tutorial, tutorial_task, .id = 2,
                                            .use_sleep0 = self->use_sleep0),
                                 NULL));
  AFUT_END (task);
}

static void
check_two_yields (bool use_sleep0)
{
  AfutLoop *loop = loop_new ();
  AfutFuture *t = afut_task_new (loop, tutorial_main, sizeof (TutorialMain),
                                 &(TutorialMain){ .use_sleep0 = use_sleep0 },
                                 "main", NULL);

  afut_loop_run_until_complete (loop, t);
  assert_state (t, AFUT_FUTURE_DONE);
  /* tests/seed/04-two-yields.out, CPython's output */
  g_assert_cmpstr (lines->str, ==,
                   "Task 1 started\n"
                   "Task 2 started\n"
                   "Task 1 after first yield\n"
                   "Task 2 after first yield\n"
                   "Task 1 after second yield\n"
                   "Task 2 after second yield\n");
  g_assert_cmpfloat (afut_loop_time (loop), ==, 0.0);
  afut_future_unref (t);
  loop_free (loop);
}

static void
test_schedule_two_yields_interleave (void)
{
  check_two_yields (false);
}

static void
test_schedule_two_sleep0_interleave (void)
{
  check_two_yields (true);
}

typedef struct
{
  AfutTask task;
  AfutFuture *done;   /* borrowed, already done */
  AfutFuture *failed; /* borrowed, already failed */
  AfutFuture *child;  /* a spawned task */
} DoneAwaiter;

static void
done_awaiter (AfutTask *task)
{
  DoneAwaiter *self = (DoneAwaiter *) task;
  AFUT_BEGIN (task);
  afut_loop_call_soon (afut_loop_get_running (), log_callback, "cb1");
  AFUT_AWAIT (task, afut_future_ref (self->done));
  ev ("after-done:%" G_GINT64_FORMAT,
      afut_future_get_int (afut_task_awaited (task)));
  AFUT_AWAIT_TRY (task, afut_future_ref (self->failed));
  ev ("after-failed:%s", caught_message (task));
  afut_loop_call_soon (afut_loop_get_running (), log_callback, "cb2");
  AFUT_YIELD (task);
  ev ("after-yield");
  /* A task that already completed is also a done future. */
  self->child = AFUT_SPAWN (Immediate, immediate, .label = "child",
                            .value = 4);
  AFUT_YIELD (task);
  AFUT_YIELD (task);
  afut_loop_call_soon (afut_loop_get_running (), log_callback, "cb3");
  AFUT_AWAIT (task, self->child);
  ev ("after-task:%" G_GINT64_FORMAT,
      afut_future_get_int (afut_task_awaited (task)));
  AFUT_YIELD (task);
  ev ("end");
  AFUT_END (task);
}

static void
test_schedule_await_done_no_loop_turn (void)
{
  AfutLoop *loop = loop_new ();
  AfutFuture *done = afut_future_new (loop);
  AfutFuture *failed = afut_future_new (loop);
  AfutFuture *t;

  afut_future_resolve_int (done, 5);
  afut_future_fail (failed, afut_error_new_literal (TEST_ERROR, 2, "early"));
  t = afut_task_new (loop, done_awaiter, sizeof (DoneAwaiter),
                     &(DoneAwaiter){ .done = done, .failed = failed },
                     "t", NULL);
  afut_loop_run_until_complete (loop, t);
  assert_state (t, AFUT_FUTURE_DONE);
  /* Awaiting a done future (value, error or finished task) continues in
   * the same step, ahead of a callback queued before the await; the yield
   * goes behind it. */
  g_assert_cmpstr (events->str, ==,
                   "after-done:5 after-failed:early cb1 cb2 after-yield "
                   "child:run after-task:4 cb3 end");
  afut_future_unref (t);
  afut_future_unref (done);
  afut_future_unref (failed);
  loop_free (loop);
}

typedef struct
{
  AfutTask task;
  AfutFuture *pending; /* borrowed */
} PendingAwaiter;

static void
pending_awaiter (AfutTask *task)
{
  PendingAwaiter *self = (PendingAwaiter *) task;
  AFUT_BEGIN (task);
  afut_loop_call_soon (afut_loop_get_running (), log_callback, "cb");
  AFUT_AWAIT (task, afut_future_ref (self->pending));
  ev ("after:%" G_GINT64_FORMAT,
      afut_future_get_int (afut_task_awaited (task)));
  AFUT_END (task);
}

static void
resolve_later (void *data)
{
  ev ("resolve");
  afut_future_resolve_int ((AfutFuture *) data, 6);
}

static void
test_schedule_await_pending_waits (void)
{
  AfutLoop *loop = loop_new ();
  AfutFuture *pending = afut_future_new (loop);
  AfutFuture *t = afut_task_new (loop, pending_awaiter,
                                 sizeof (PendingAwaiter),
                                 &(PendingAwaiter){ .pending = pending }, "t",
                                 NULL);

  afut_loop_iterate (loop, false);
  g_assert_cmpstr (events->str, ==, "");
  afut_loop_call_soon (loop, resolve_later, pending);
  afut_loop_run_until_complete (loop, t);
  /* The contrast to await-done: a pending future suspends the task until
   * a later iteration delivers the result. */
  g_assert_cmpstr (events->str, ==, "cb resolve after:6");
  afut_future_unref (t);
  afut_future_unref (pending);
  loop_free (loop);
}

/* ---- rule 4: errors ---- */

typedef struct
{
  AfutTask task;
  AfutFuture *awaited; /* borrowed */
  bool catching;
} Raiser;

static void
raiser (AfutTask *task)
{
  Raiser *self = (Raiser *) task;
  AFUT_BEGIN (task);
  ev ("r:before");
  if (self->catching)
    {
      AFUT_AWAIT_TRY (task, afut_future_ref (self->awaited));
      ev ("r:caught:%s:%d:%s",
          afut_quark_to_string (afut_task_caught (task)->domain),
          afut_task_caught (task)->code, afut_task_caught (task)->message);
      /* As a Python `except` block: the caught error stays through a
       * plain await, and a catching await that succeeds clears it. */
      AFUT_AWAIT (task, afut_sleep (1));
      ev ("r:continued@%g:%s", now (), caught_message (task));
      AFUT_AWAIT_TRY (task, afut_sleep (1));
      ev ("r:tried@%g:%s", now (), caught_message (task));
      AFUT_RETURN_INT (task, 1);
    }
  AFUT_AWAIT (task, afut_future_ref (self->awaited));
  ev ("r:after");
  AFUT_END (task);
}

static void
test_error_await_failed_future (void)
{
  AfutLoop *loop = loop_new ();
  AfutFuture *f = afut_future_new (loop);
  AfutFuture *t = afut_task_new (loop, raiser, sizeof (Raiser),
                                 &(Raiser){ .awaited = f }, "r", NULL);

  afut_loop_iterate (loop, false);
  g_assert_cmpstr (events->str, ==, "r:before");
  afut_future_fail (f, afut_error_new_literal (TEST_ERROR, 3, "bad"));
  afut_loop_run_until_complete (loop, t);
  /* Raised at the await: the rest of the body never ran. */
  g_assert_cmpstr (events->str, ==, "r:before");
  assert_state (t, AFUT_FUTURE_FAILED);
  assert_error (afut_future_get_error (t), TEST_ERROR, 3, "bad");
  afut_future_unref (t);
  /* f's error was retrieved by the await: not reported. */
  afut_future_unref (f);
  loop_free (loop);
}

static void
test_error_await_failed_task (void)
{
  AfutLoop *loop = loop_new ();
  AfutFuture *child = returner_new (loop, RET_THROW, "child");
  AfutFuture *t = afut_task_new (loop, raiser, sizeof (Raiser),
                                 &(Raiser){ .awaited = child }, "r", NULL);

  afut_loop_run_until_complete (loop, t);
  g_assert_cmpstr (events->str, ==, "child:start r:before child:resumed");
  assert_state (t, AFUT_FUTURE_FAILED);
  /* Same domain, code and message as the child's. */
  assert_error (afut_future_get_error (t), TEST_ERROR, 7, "boom 7");
  assert_error (afut_future_get_error (child), TEST_ERROR, 7, "boom 7");
  afut_future_unref (t);
  afut_future_unref (child);
  loop_free (loop);
}

static void
test_error_try_continues (void)
{
  AfutLoop *loop = loop_new ();
  AfutFuture *child = returner_new (loop, RET_THROW, "child");
  AfutFuture *t = afut_task_new (loop, raiser, sizeof (Raiser),
                                 &(Raiser){ .awaited = child,
                                            .catching = true },
                                 "r", NULL);

  afut_loop_run_until_complete (loop, t);
  g_assert_cmpstr (events->str, ==,
                   "child:start r:before child:resumed "
                   "r:caught:test-error-quark:7:boom 7 r:continued@1:boom 7 "
                   "r:tried@2:none");
  assert_state (t, AFUT_FUTURE_DONE);
  g_assert_cmpint (afut_future_get_int (t), ==, 1);
  afut_future_unref (t);
  /* The child's error was caught, so it counts as retrieved. */
  afut_future_unref (child);
  loop_free (loop);
}

typedef struct
{
  AfutTask task;
  AfutLoop *other;
  bool uncaught;
} Misuser;

static void
misuser (AfutTask *task)
{
  Misuser *self = (Misuser *) task;
  AFUT_BEGIN (task);
  if (self->uncaught)
    {
      AFUT_AWAIT (task, afut_future_ref (AFUT_FUTURE (task)));
      ev ("unreachable");
    }
  AFUT_AWAIT_TRY (task, afut_future_ref (AFUT_FUTURE (task)));
  g_assert_nonnull (afut_task_caught (task));
  g_assert_false (afut_error_is_cancelled (afut_task_caught (task)));
  g_assert_true (afut_task_caught (task)->domain == AFUT_ERROR);
  ev ("self:error");
  if (self->other != NULL)
    {
      AFUT_AWAIT_TRY (task, afut_future_new (self->other));
      g_assert_nonnull (afut_task_caught (task));
      g_assert_false (afut_error_is_cancelled (afut_task_caught (task)));
      g_assert_true (afut_task_caught (task)->domain == AFUT_ERROR);
      ev ("other:error");
    }
  AFUT_RETURN_INT (task, 3);
  AFUT_END (task);
}

static void
test_error_await_self (void)
{
  AfutLoop *loop = loop_new ();
  AfutFuture *t = afut_task_new (loop, misuser, sizeof (Misuser), NULL, "m",
                                 NULL);
  AfutFuture *u = afut_task_new (loop, misuser, sizeof (Misuser),
                                 &(Misuser){ .uncaught = true }, "u", NULL);

  afut_loop_run_until_complete (loop, u);
  afut_loop_run_until_complete (loop, t);
  /* Caught, the task goes on... */
  g_assert_cmpstr (events->str, ==, "self:error");
  assert_state (t, AFUT_FUTURE_DONE);
  g_assert_cmpint (afut_future_get_int (t), ==, 3);
  /* ...uncaught, it fails with that error. */
  assert_state (u, AFUT_FUTURE_FAILED);
  g_assert_true (afut_future_get_error (u)->domain == AFUT_ERROR);
  g_assert_false (afut_error_is_cancelled (afut_future_get_error (u)));
  afut_future_unref (t);
  afut_future_unref (u);
  loop_free (loop);
}

static void
test_error_await_other_loop (void)
{
  AfutLoop *loop = loop_new ();
  AfutLoop *other = afut_loop_new (AFUT_LOOP_VIRTUAL_CLOCK);
  AfutFuture *t = afut_task_new (loop, misuser, sizeof (Misuser),
                                 &(Misuser){ .other = other }, "m", NULL);

  afut_loop_run_until_complete (loop, t);
  g_assert_cmpstr (events->str, ==,
                   "self:error other:error");
  assert_state (t, AFUT_FUTURE_DONE);
  g_assert_cmpint (afut_future_get_int (t), ==, 3);
  afut_future_unref (t);
  afut_loop_unref (other);
  loop_free (loop);
}

/* ---- rule 5: cancellation ---- */

static void
test_cancel_awaited_future (void)
{
  AfutLoop *loop = loop_new ();
  AfutFuture *f = afut_future_new (loop);
  AfutFuture *v = victim_new (loop, &(Victim){ .awaited = f });
  AfutFuture *c = canceller_new (loop, v, 1, NULL);

  afut_loop_run_until_complete (loop, v);
  g_assert_true (canceller_returned (c));
  /* The awaited future was cancelled; the task resumed at that await. */
  assert_cancelled (f, "");
  g_assert_cmpstr (events->str, ==,
                   "victim:start@0 cancel@1 victim:caught:cancelled:@1");
  assert_cancelled (v, "");
  g_assert_cmpfloat (afut_loop_time (loop), ==, 1.0);
  afut_future_unref (c);
  afut_future_unref (v);
  afut_future_unref (f);
  loop_free (loop);
}

static void
test_cancel_cleanup_then_cancelled (void)
{
  AfutLoop *loop = loop_new ();
  AfutFuture *v = victim_new (loop, &(Victim){ .cleanup = 2 });
  AfutFuture *c = canceller_new (loop, v, 1, "stop");

  afut_loop_run_until_complete (loop, v);
  g_assert_true (canceller_returned (c));
  /* The cleanup awaited a 2 s sleep; the 10 s sleep was cancelled. */
  g_assert_cmpstr (events->str, ==,
                   "victim:start@0 cancel@1 victim:caught:cancelled:stop@1 "
                   "victim:cleaned@3");
  assert_cancelled (v, "stop");
  g_assert_cmpfloat (afut_loop_time (loop), ==, 3.0);
  afut_future_unref (c);
  afut_future_unref (v);
  loop_free (loop);
}

static void
test_cancel_swallowed (void)
{
  AfutLoop *loop = loop_new ();
  AfutFuture *v
    = victim_new (loop, &(Victim){ .swallow = true, .cleanup = 1 });
  AfutFuture *c = canceller_new (loop, v, 1, "stop");

  afut_loop_run_until_complete (loop, v);
  g_assert_true (canceller_returned (c));
  g_assert_cmpstr (events->str, ==,
                   "victim:start@0 cancel@1 victim:caught:cancelled:stop@1 "
                   "victim:swallowed@2");
  /* It chose to swallow: it completes normally, with its value. */
  assert_state (v, AFUT_FUTURE_DONE);
  g_assert_false (afut_future_is_cancelled (v));
  g_assert_cmpint (afut_future_get_int (v), ==, 99);
  afut_future_unref (c);
  afut_future_unref (v);
  loop_free (loop);
}

static void
test_cancel_message_reaches_awaiter (void)
{
  AfutLoop *loop = loop_new ();
  AfutFuture *child = victim_new (loop, &(Victim){ 0 });
  AfutFuture *a = awaiter_new (loop, child, false);
  AfutFuture *c = canceller_new (loop, child, 1, "bye");

  afut_loop_run_until_complete (loop, a);
  g_assert_true (canceller_returned (c));
  g_assert_cmpstr (events->str, ==,
                   "victim:start@0 cancel@1 victim:caught:cancelled:bye@1 "
                   "awaiter:caught:cancelled:bye@1");
  assert_cancelled (child, "bye");
  assert_state (a, AFUT_FUTURE_DONE);
  afut_future_unref (c);
  afut_future_unref (a);
  afut_future_unref (child);
  loop_free (loop);
}

static void
test_cancel_before_first_step (void)
{
  AfutLoop *loop = loop_new ();
  AfutFuture *v = victim_new (loop, &(Victim){ .owned = g_strdup ("v") });

  g_assert_true (afut_future_cancel (v, "early"));
  /* As asyncio: requested, not done yet. */
  assert_state (v, AFUT_FUTURE_PENDING);
  afut_loop_run_until_complete (loop, v);
  /* The body never ran. */
  g_assert_cmpstr (events->str, ==, "");
  assert_cancelled (v, "early");
  g_assert_cmpuint (n_finalized, ==, 0);
  afut_future_unref (v);
  g_assert_cmpuint (n_finalized, ==, 1);
  loop_free (loop);
}

typedef struct
{
  AfutTask task;
  bool catching;
} YieldVictim;

static void
yield_victim (AfutTask *task)
{
  YieldVictim *self = (YieldVictim *) task;
  AFUT_BEGIN (task);
  ev ("y:start");
  if (self->catching)
    {
      AFUT_YIELD_TRY (task);
      ev ("y:caught:%s", caught_message (task));
      AFUT_RETURN_INT (task, 5);
    }
  AFUT_YIELD (task);
  ev ("y:resumed");
  AFUT_END (task);
}

static void
test_cancel_at_yield (void)
{
  AfutLoop *loop = loop_new ();
  AfutFuture *t = afut_task_new (loop, yield_victim, sizeof (YieldVictim),
                                 NULL, "y", NULL);

  afut_loop_iterate (loop, false);
  g_assert_cmpstr (events->str, ==, "y:start");
  /* The task sits in the ready queue: the cancellation is raised where it
   * resumes. */
  g_assert_true (afut_future_cancel (t, "at-yield"));
  assert_state (t, AFUT_FUTURE_PENDING);
  afut_loop_run_until_complete (loop, t);
  g_assert_cmpstr (events->str, ==, "y:start");
  assert_cancelled (t, "at-yield");
  afut_future_unref (t);
  loop_free (loop);
}

static void
test_cancel_at_yield_try (void)
{
  AfutLoop *loop = loop_new ();
  AfutFuture *t = afut_task_new (loop, yield_victim, sizeof (YieldVictim),
                                 &(YieldVictim){ .catching = true }, "y",
                                 NULL);
  AfutFuture *u;

  afut_loop_iterate (loop, false);
  g_assert_true (afut_future_cancel (t, "at-yield"));
  afut_loop_run_until_complete (loop, t);
  g_assert_cmpstr (events->str, ==, "y:start y:caught:at-yield");
  assert_state (t, AFUT_FUTURE_DONE);
  g_assert_cmpint (afut_future_get_int (t), ==, 5);

  /* Not cancelled, AFUT_YIELD_TRY catches nothing. */
  g_string_truncate (events, 0);
  u = afut_task_new (loop, yield_victim, sizeof (YieldVictim),
                     &(YieldVictim){ .catching = true }, "u", NULL);
  afut_loop_run_until_complete (loop, u);
  g_assert_cmpstr (events->str, ==, "y:start y:caught:none");
  afut_future_unref (u);
  afut_future_unref (t);
  loop_free (loop);
}

typedef struct
{
  AfutTask task;
  bool then_await;
  bool cancel_result;
} SelfCanceller;

static void
self_canceller (AfutTask *task)
{
  SelfCanceller *self = (SelfCanceller *) task;
  AFUT_BEGIN (task);
  self->cancel_result = afut_future_cancel (AFUT_FUTURE (task), "self");
  ev ("s:%s", afut_future_state_to_string (
                afut_future_get_state (AFUT_FUTURE (task))));
  if (self->then_await)
    {
      AFUT_AWAIT_TRY (task, afut_sleep (5));
      ev ("s:caught:%s@%g", caught_message (task), now ());
      AFUT_RERAISE (task);
    }
  AFUT_RETURN_POINTER (task, g_strdup ("lost"), count_destroy);
  AFUT_END (task);
}

static void
test_cancel_self_then_return (void)
{
  AfutLoop *loop = loop_new ();
  AfutFuture *t = afut_task_new (loop, self_canceller, sizeof (SelfCanceller),
                                 NULL, "s", NULL);

  afut_loop_run_until_complete (loop, t);
  g_assert_true (((SelfCanceller *) t)->cancel_result);
  g_assert_cmpstr (events->str, ==, "s:pending");
  /* asyncio's must_cancel: cancelled right before returning, the task
   * ends cancelled and its value is dropped. */
  assert_cancelled (t, "self");
  g_assert_cmpuint (n_destroyed, ==, 1);
  afut_future_unref (t);
  loop_free (loop);
}

static void
test_cancel_self_then_await (void)
{
  AfutLoop *loop = loop_new ();
  AfutFuture *t = afut_task_new (loop, self_canceller, sizeof (SelfCanceller),
                                 &(SelfCanceller){ .then_await = true }, "s",
                                 NULL);

  afut_loop_run_until_complete (loop, t);
  /* The pending cancellation cancels the next thing awaited. */
  g_assert_cmpstr (events->str, ==, "s:pending s:caught:self@0");
  assert_cancelled (t, "self");
  g_assert_cmpfloat (afut_loop_time (loop), ==, 0.0);
  afut_future_unref (t);
  loop_free (loop);
}

static void
test_cancel_chain (void)
{
  AfutLoop *loop = loop_new ();
  AfutFuture *inner = victim_new (loop, &(Victim){ 0 });
  AfutFuture *outer = awaiter_new (loop, inner, true);
  AfutFuture *c = canceller_new (loop, outer, 1, "chain");

  afut_loop_run_until_complete (loop, outer);
  g_assert_true (canceller_returned (c));
  /* Cancelling the outer task cancelled the task it awaits, which
   * cancelled its sleep; inner ends first, then outer. */
  g_assert_cmpstr (events->str, ==,
                   "victim:start@0 cancel@1 victim:caught:cancelled:chain@1 "
                   "awaiter:caught:cancelled:chain@1");
  assert_cancelled (inner, "chain");
  assert_cancelled (outer, "chain");
  g_assert_cmpfloat (afut_loop_time (loop), ==, 1.0);
  afut_future_unref (c);
  afut_future_unref (outer);
  afut_future_unref (inner);
  loop_free (loop);
}

typedef struct
{
  AfutTask task;
  AfutFuture *child; /* borrowed */
} PlainAwaiter;

static void
plain_awaiter (AfutTask *task)
{
  PlainAwaiter *self = (PlainAwaiter *) task;
  AFUT_BEGIN (task);
  AFUT_AWAIT (task, afut_future_ref (self->child));
  ev ("outer:got:%" G_GINT64_FORMAT "@%g",
      afut_future_get_int (afut_task_awaited (task)), now ());
  AFUT_RETURN_INT (task, afut_future_get_int (afut_task_awaited (task)));
  AFUT_END (task);
}

static void
test_cancel_chain_inner_swallows (void)
{
  AfutLoop *loop = loop_new ();
  AfutFuture *inner
    = victim_new (loop, &(Victim){ .swallow = true, .cleanup = 1 });
  AfutFuture *outer = afut_task_new (loop, plain_awaiter,
                                     sizeof (PlainAwaiter),
                                     &(PlainAwaiter){ .child = inner },
                                     "outer", NULL);
  AfutFuture *c = canceller_new (loop, outer, 1, "chain");

  afut_loop_run_until_complete (loop, outer);
  g_assert_true (canceller_returned (c));
  /* As asyncio: the request went to the inner task, which swallowed it;
   * the outer task was not cancelled itself and gets the inner's value. */
  g_assert_cmpstr (events->str, ==,
                   "victim:start@0 cancel@1 victim:caught:cancelled:chain@1 "
                   "victim:swallowed@2 outer:got:99@2");
  assert_state (inner, AFUT_FUTURE_DONE);
  assert_state (outer, AFUT_FUTURE_DONE);
  g_assert_cmpint (afut_future_get_int (outer), ==, 99);
  afut_future_unref (c);
  afut_future_unref (outer);
  afut_future_unref (inner);
  loop_free (loop);
}

static void
test_cancel_done_returns_false (void)
{
  AfutLoop *loop = loop_new ();
  AfutFuture *ok = returner_new (loop, RET_INT, "ok");
  AfutFuture *bad = returner_new (loop, RET_THROW, "bad");
  AfutFuture *gone = returner_new (loop, RET_INT, "gone");

  g_assert_true (afut_future_cancel (gone, NULL));
  afut_loop_run_until_complete (loop, ok);
  afut_loop_run_until_complete (loop, bad);
  afut_loop_run_until_complete (loop, gone);

  g_assert_false (afut_future_cancel (ok, "late"));
  g_assert_false (afut_future_cancel (bad, "late"));
  g_assert_false (afut_future_cancel (gone, "late"));
  assert_state (ok, AFUT_FUTURE_DONE);
  g_assert_cmpint (afut_future_get_int (ok), ==, BIG_INT);
  assert_error (afut_future_get_error (bad), TEST_ERROR, 7, "boom 7");
  assert_cancelled (gone, "");
  afut_future_unref (ok);
  afut_future_unref (bad);
  afut_future_unref (gone);
  loop_free (loop);
}

static void
test_cancel_after_awaited_done (void)
{
  AfutLoop *loop = loop_new ();
  AfutFuture *f = afut_future_new (loop);
  AfutFuture *v = victim_new (loop, &(Victim){ .awaited = f });

  afut_loop_iterate (loop, false);
  g_assert_cmpstr (events->str, ==, "victim:start@0");
  /* The future completes, the task's wakeup is queued, then the task is
   * cancelled: asyncio raises the cancellation at that await anyway. */
  afut_future_resolve_int (f, 3);
  g_assert_true (afut_future_cancel (v, "late"));
  afut_loop_run_until_complete (loop, v);
  g_assert_cmpstr (events->str, ==,
                   "victim:start@0 victim:caught:cancelled:late@0");
  assert_cancelled (v, "late");
  assert_state (f, AFUT_FUTURE_DONE);
  g_assert_cmpint (afut_future_get_int (f), ==, 3);
  afut_future_unref (v);
  afut_future_unref (f);
  loop_free (loop);
}

/* ---- main ---- */

/* ---- inline coroutines: part of the awaiting task ---- */

/* `await inner()`: what the coroutine does, by @mode. */
typedef enum
{
  INNER_SELF_CANCEL,  /* sleep 1, cancel the current task, return 7 */
  INNER_SWALLOW,      /* sleep 5 catching; on a cancel uncancel, return 5 */
  INNER_CATCH_RETURN  /* log; sleep 1 catching; return 3 */
} InnerMode;

typedef struct
{
  AfutTask task;
  InnerMode mode;
  unsigned cancelling_seen;
  AfutTask *current_seen;
} Inner;

static void
inner_step (AfutTask *task)
{
  Inner *self = (Inner *) task;
  AFUT_BEGIN (task);
  self->current_seen = afut_task_get_current (NULL);
  if (self->mode == INNER_SELF_CANCEL)
    {
      AFUT_AWAIT (task, afut_sleep (1));
      g_assert_true (afut_future_cancel (
        &afut_task_get_current (NULL)->future, "self"));
      ev ("inner:returns@%g", now ());
      AFUT_RETURN_INT (task, 7);
    }
  if (self->mode == INNER_SWALLOW)
    {
      AFUT_AWAIT_TRY (task, afut_sleep (5));
      self->cancelling_seen = afut_task_cancelling (task);
      ev ("inner:caught:%s@%g", caught_message (task), now ());
      if (afut_task_caught (task) != NULL)
        afut_task_uncancel (task);
      AFUT_RETURN_INT (task, 5);
    }
  ev ("inner:start");
  AFUT_AWAIT_TRY (task, afut_sleep (1));
  self->cancelling_seen = afut_task_cancelling (task);
  ev ("inner:caught:%s@%g", caught_message (task), now ());
  AFUT_RETURN_INT (task, 3);
  AFUT_END (task);
}

typedef struct
{
  AfutTask task;
  InnerMode mode;
  bool cancel_first; /* cancel itself before the call */
  bool then_return;  /* return at once after the call, no suspension */
  unsigned inner_cancelling; /* what the coroutine saw */
  AfutTask *inner_current;
  int64_t got;
} Outer;

static void
outer_step (AfutTask *task)
{
  Outer *self = (Outer *) task;
  AFUT_BEGIN (task);
  if (self->cancel_first)
    afut_future_cancel (&task->future, "first");
  AFUT_AWAIT (task, AFUT_CORO (Inner, inner_step, .mode = self->mode));
  self->inner_cancelling
    = ((Inner *) afut_task_awaited (task))->cancelling_seen;
  self->inner_current = ((Inner *) afut_task_awaited (task))->current_seen;
  self->got = afut_future_get_int (afut_task_awaited (task));
  ev ("outer:got:%" G_GINT64_FORMAT "@%g", self->got, now ());
  if (self->then_return)
    AFUT_RETURN_INT (task, self->got);
  AFUT_AWAIT_TRY (task, afut_sleep (1));
  ev ("outer:after-sleep:%s@%g", caught_message (task), now ());
  if (afut_task_caught (task) != NULL)
    AFUT_RERAISE (task);
  AFUT_RETURN_INT (task, self->got + 1);
  AFUT_END (task);
}

static AfutFuture *
outer_new (AfutLoop *loop, const Outer *init)
{
  return afut_task_new (loop, outer_step, sizeof (Outer), init, "outer",
                        NULL);
}

/* asyncio:
 *   async def inner():
 *       await asyncio.sleep(1)
 *       asyncio.current_task().cancel("self")
 *       return 7                       # the value still reaches outer
 *   async def outer():
 *       got = await inner()
 *       await asyncio.sleep(1)         # cancelled here, at once
 */
static void
test_inline_self_cancel_returns_value (void)
{
  AfutLoop *loop = loop_new ();
  AfutFuture *t = outer_new (loop, &(Outer){ .mode = INNER_SELF_CANCEL });

  afut_loop_run_until_complete (loop, t);
  g_assert_cmpstr (events->str, ==,
                   "inner:returns@1 outer:got:7@1 "
                   "outer:after-sleep:self@1");
  assert_cancelled (t, "self");
  g_assert_true (((Outer *) t)->inner_current == AFUT_TASK (t));
  afut_future_unref (t);
  loop_free (loop);
}

/* As above, but outer returns right after the call: a task cancelled
 * right before its coroutine returns ends cancelled. */
static void
test_inline_self_cancel_then_return (void)
{
  AfutLoop *loop = loop_new ();
  AfutFuture *t = outer_new (
    loop, &(Outer){ .mode = INNER_SELF_CANCEL, .then_return = true });

  afut_loop_run_until_complete (loop, t);
  g_assert_cmpstr (events->str, ==, "inner:returns@1 outer:got:7@1");
  assert_cancelled (t, "self");
  afut_future_unref (t);
  loop_free (loop);
}

/* A cancel of the awaiting task reaches the sleep the coroutine waits
 * on; the coroutine sees the task's count, and its uncancel() is the
 * task's: outer goes on as if never cancelled. */
static void
test_inline_shares_cancel_count (void)
{
  AfutLoop *loop = loop_new ();
  AfutFuture *t = outer_new (loop, &(Outer){ .mode = INNER_SWALLOW });
  AfutFuture *c = canceller_new (loop, t, 2, "outside");

  afut_loop_run_until_complete (loop, t);
  g_assert_cmpstr (events->str, ==,
                   "cancel@2 inner:caught:outside@2 outer:got:5@2 "
                   "outer:after-sleep:none@3");
  g_assert_cmpuint (((Outer *) t)->inner_cancelling, ==, 1);
  g_assert_cmpuint (afut_task_cancelling (AFUT_TASK (t)), ==, 0);
  g_assert_cmpint (afut_future_get_int (t), ==, 6);
  afut_future_unref (c);
  afut_future_unref (t);
  loop_free (loop);
}

/* asyncio:
 *   async def outer():
 *       asyncio.current_task().cancel("first")
 *       got = await inner()  # starts normally; its first await is
 *                            # cancelled, at once
 *       await asyncio.sleep(1)  # runs: the cancel was delivered
 */
static void
test_inline_pending_cancel_lands_in_coroutine (void)
{
  AfutLoop *loop = loop_new ();
  AfutFuture *t = outer_new (
    loop, &(Outer){ .mode = INNER_CATCH_RETURN, .cancel_first = true });

  afut_loop_run_until_complete (loop, t);
  g_assert_cmpstr (events->str, ==,
                   "inner:start inner:caught:first@0 outer:got:3@0 "
                   "outer:after-sleep:none@1");
  g_assert_cmpuint (((Outer *) t)->inner_cancelling, ==, 1);
  g_assert_cmpint (afut_future_get_int (t), ==, 4);
  afut_future_unref (t);
  loop_free (loop);
}

static void
count_task (AfutTask *task, void *data)
{
  (void) task;
  (*(unsigned *) data)++;
}

/* all_tasks() lists the task, not the coroutine it awaits; closing the
 * loop cancels the task once, which ends both, with nothing reported. */
static void
test_inline_not_a_task_of_its_own (void)
{
  AfutLoop *loop = loop_new ();
  AfutFuture *t = outer_new (loop, &(Outer){ .mode = INNER_SWALLOW });
  unsigned n = 0;

  afut_loop_iterate (loop, false); /* outer's first step: inner sleeps */
  afut_loop_foreach_task (loop, count_task, &n);
  g_assert_cmpuint (n, ==, 1);
  afut_loop_shutdown (loop);
  /* The coroutine swallowed the cancel (and uncancelled): outer went on
   * and completed. */
  g_assert_cmpstr (events->str, ==,
                   "inner:caught:@0 outer:got:5@0 outer:after-sleep:none@1");
  g_assert_cmpint (afut_future_get_int (t), ==, 6);
  afut_future_unref (t);
  loop_free (loop);
}

int
main (int argc, char **argv)
{
  int status;

  g_test_init (&argc, &argv, NULL);
  events = g_string_new (NULL);
  lines = g_string_new (NULL);
  reports = g_ptr_array_new_with_free_func (g_free);
  warnings = g_ptr_array_new_with_free_func (g_free);
  afut_set_log_func (log_func, NULL);

  g_test_add_func ("/task/return/end", test_return_end);
  g_test_add_func ("/task/return/none", test_return_none);
  g_test_add_func ("/task/return/pointer", test_return_pointer);
  g_test_add_func ("/task/return/int", test_return_int);
  g_test_add_func ("/task/return/double", test_return_double);
  g_test_add_func ("/task/throw/fails-task", test_throw_fails_task);
  g_test_add_func ("/task/throw/cancelled", test_throw_cancelled);
  g_test_add_func ("/task/await/value", test_await_value);
  g_test_add_func ("/task/await/try-reraise", test_await_try_reraise);
  g_test_add_func ("/task/name/given", test_name_given);
  g_test_add_func ("/task/name/default", test_name_default);
  g_test_add_func ("/task/name/from-macro", test_name_from_macro);
  g_test_add_func ("/task/name/named-macros", test_name_named_macros);
  g_test_add_func ("/task/name/set", test_name_set);
  g_test_add_func ("/task/finalize/once", test_finalize_once);
  g_test_add_func ("/task/finalize/failed", test_finalize_failed);
  g_test_add_func ("/task/finalize/cancelled-before-first-step",
                   test_finalize_cancelled_before_first_step);
  g_test_add_func ("/task/finalize/pending-at-loop-free",
                   test_finalize_pending_at_loop_free);
  g_test_add_func ("/task/coro/not-started-until-awaited",
                   test_coro_not_started_until_awaited);
  g_test_add_func ("/task/coro/await-runs-first-step-at-once",
                   test_coro_await_runs_first_step_at_once);
  g_test_add_func ("/task/coro/await-resumes-at-once",
                   test_coro_await_resumes_at_once);
  g_test_add_func ("/task/coro/gather-starts-in-input-order",
                   test_coro_gather_starts_in_input_order);
  g_test_add_func ("/task/coro/deep-chain", test_coro_deep_chain);
  g_test_add_func ("/task/coro/deep-chain-cancel",
                   test_coro_deep_chain_cancel);
  g_test_add_func ("/task/coro/task-start", test_coro_task_start);
  g_test_add_func ("/task/coro/never-awaited", test_coro_never_awaited);
  g_test_add_func ("/task/schedule/first-step-later",
                   test_schedule_first_step_later);
  g_test_add_func ("/task/schedule/yield-back-of-queue",
                   test_schedule_yield_back_of_queue);
  g_test_add_func ("/task/schedule/sleep0-back-of-queue",
                   test_schedule_sleep0_back_of_queue);
  g_test_add_func ("/task/schedule/two-yields-interleave",
                   test_schedule_two_yields_interleave);
  g_test_add_func ("/task/schedule/two-sleep0-interleave",
                   test_schedule_two_sleep0_interleave);
  g_test_add_func ("/task/schedule/await-done-no-loop-turn",
                   test_schedule_await_done_no_loop_turn);
  g_test_add_func ("/task/schedule/await-pending-waits",
                   test_schedule_await_pending_waits);
  g_test_add_func ("/task/error/await-failed-future",
                   test_error_await_failed_future);
  g_test_add_func ("/task/error/await-failed-task",
                   test_error_await_failed_task);
  g_test_add_func ("/task/error/try-continues", test_error_try_continues);
  g_test_add_func ("/task/error/await-self", test_error_await_self);
  g_test_add_func ("/task/error/await-other-loop",
                   test_error_await_other_loop);
  g_test_add_func ("/task/cancel/awaited-future", test_cancel_awaited_future);
  g_test_add_func ("/task/cancel/cleanup-then-cancelled",
                   test_cancel_cleanup_then_cancelled);
  g_test_add_func ("/task/cancel/swallowed", test_cancel_swallowed);
  g_test_add_func ("/task/cancel/message-reaches-awaiter",
                   test_cancel_message_reaches_awaiter);
  g_test_add_func ("/task/cancel/before-first-step",
                   test_cancel_before_first_step);
  g_test_add_func ("/task/cancel/at-yield", test_cancel_at_yield);
  g_test_add_func ("/task/cancel/at-yield-try", test_cancel_at_yield_try);
  g_test_add_func ("/task/cancel/self-then-return",
                   test_cancel_self_then_return);
  g_test_add_func ("/task/cancel/self-then-await",
                   test_cancel_self_then_await);
  g_test_add_func ("/task/cancel/chain", test_cancel_chain);
  g_test_add_func ("/task/inline/self-cancel-returns-value",
                   test_inline_self_cancel_returns_value);
  g_test_add_func ("/task/inline/self-cancel-then-return",
                   test_inline_self_cancel_then_return);
  g_test_add_func ("/task/inline/shares-cancel-count",
                   test_inline_shares_cancel_count);
  g_test_add_func ("/task/inline/pending-cancel-lands-in-coroutine",
                   test_inline_pending_cancel_lands_in_coroutine);
  g_test_add_func ("/task/inline/not-a-task-of-its-own",
                   test_inline_not_a_task_of_its_own);
  g_test_add_func ("/task/cancel/chain-inner-swallows",
                   test_cancel_chain_inner_swallows);
  g_test_add_func ("/task/cancel/done-returns-false",
                   test_cancel_done_returns_false);
  g_test_add_func ("/task/cancel/after-awaited-done",
                   test_cancel_after_awaited_done);

  status = g_test_run ();
  afut_set_log_func (NULL, NULL);
  g_string_free (events, TRUE);
  g_string_free (lines, TRUE);
  g_ptr_array_unref (reports);
  g_ptr_array_unref (warnings);
  return status;
}
