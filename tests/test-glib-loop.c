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

#include <string.h>

#define WRONG_THREAD "called from a thread that is not the loop's"

/* ---- what afut logged, from any thread ---- */

static GMutex log_lock;
static GPtrArray *log_lines; /* "LEVEL message" */

static void
capture_log (AfutLogLevel level, const char *message, void *data)
{
  (void) data;
  g_mutex_lock (&log_lock);
  g_ptr_array_add (log_lines,
                   g_strdup_printf ("%s %s",
                                    level == AFUT_LOG_CRITICAL ? "CRITICAL"
                                                               : "WARNING",
                                    message));
  g_mutex_unlock (&log_lock);
}

static void
capture_begin (void)
{
  g_mutex_lock (&log_lock);
  if (log_lines == NULL)
    log_lines = g_ptr_array_new_with_free_func (g_free);
  g_ptr_array_set_size (log_lines, 0);
  g_mutex_unlock (&log_lock);
  afut_set_log_func (capture_log, NULL);
}

/* The lines logged since capture_begin(), joined; the caller frees. */
static char *
capture_end (void)
{
  char *all;
  afut_set_log_func (NULL, NULL);
  g_mutex_lock (&log_lock);
  g_ptr_array_add (log_lines, NULL);
  all = g_strjoinv ("\n", (char **) log_lines->pdata);
  g_ptr_array_set_size (log_lines, 0);
  g_mutex_unlock (&log_lock);
  return all;
}

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

int
main (int argc, char **argv)
{
  g_test_init (&argc, &argv, NULL);
  g_test_add_func ("/glib-loop/wrong-thread/every-entry-point",
                   test_wrong_thread_every_entry_point);
  return g_test_run ();
}
