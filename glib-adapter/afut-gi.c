/* afut-gi.c - the introspectable surface of afut (see afut-gi.h), and the
 * one translation unit of libafut-1 that implements afut.h and the GLib
 * adapter.  Every afut_ / afut_glib_ symbol stays hidden in the library;
 * only the afut_gi_ ones are exported.
 *
 * SPDX-License-Identifier: MIT
 */

#define AFUT_IMPLEMENTATION
#define AFUT_GLIB
#include "afut.h"
#include "afut-glib.h"

#include "afut-gi.h"

#include <string.h>

G_STATIC_ASSERT ((int) AFUT_GI_ERROR_FAILED == (int) AFUT_ERROR_FAILED);
G_STATIC_ASSERT ((int) AFUT_GI_ERROR_CANCELLED == (int) AFUT_ERROR_CANCELLED);
G_STATIC_ASSERT ((int) AFUT_GI_ERROR_TIMEOUT == (int) AFUT_ERROR_TIMEOUT);
G_STATIC_ASSERT ((int) AFUT_GI_ERROR_INVALID_STATE
                 == (int) AFUT_ERROR_INVALID_STATE);
G_STATIC_ASSERT ((int) AFUT_GI_ERROR_GROUP == (int) AFUT_ERROR_GROUP);
G_STATIC_ASSERT ((int) AFUT_GI_FUTURE_PENDING == (int) AFUT_FUTURE_PENDING);
G_STATIC_ASSERT ((int) AFUT_GI_FUTURE_DONE == (int) AFUT_FUTURE_DONE);
G_STATIC_ASSERT ((int) AFUT_GI_FUTURE_FAILED == (int) AFUT_FUTURE_FAILED);
G_STATIC_ASSERT ((int) AFUT_GI_FUTURE_CANCELLED
                 == (int) AFUT_FUTURE_CANCELLED);
G_STATIC_ASSERT ((int) AFUT_GI_LOOP_VIRTUAL_CLOCK
                 == (int) AFUT_LOOP_VIRTUAL_CLOCK);

#define AFUT_GI__FUTURE(f) ((AfutFuture *) (f))
#define AFUT_GI__WRAP(f) ((AfutGiFuture *) (f))

/* ---- the boxed type ---- */

AfutGiFuture *
afut_gi_future_ref (AfutGiFuture *future)
{
  g_return_val_if_fail (future != NULL, NULL);
  return AFUT_GI__WRAP (afut_future_ref (AFUT_GI__FUTURE (future)));
}

void
afut_gi_future_unref (AfutGiFuture *future)
{
  g_return_if_fail (future != NULL);
  afut_future_unref (AFUT_GI__FUTURE (future));
}

/* By hand rather than G_DEFINE_BOXED_TYPE, whose copy/free casts to a
 * transparent union -Wpedantic rejects in C11. */
GType
afut_gi_future_get_type (void)
{
  static gsize type_id = 0;
  if (g_once_init_enter (&type_id))
    {
      GType t = g_boxed_type_register_static (
        g_intern_static_string ("AfutGiFuture"),
        (GBoxedCopyFunc) afut_gi_future_ref,
        (GBoxedFreeFunc) afut_gi_future_unref);
      g_once_init_leave (&type_id, t);
    }
  return (GType) type_id;
}

GQuark
afut_gi_error_quark (void)
{
  return (GQuark) afut_error_quark ();
}

/* ---- the thread's loop ---- */

/* The loop afut_gi_attach() (or first use) made on this thread; it is
 * also pushed as the thread-default afut loop, so afut's own calls that
 * take no loop find it outside a dispatch. */
static GPrivate afut_gi__attached = G_PRIVATE_INIT (NULL);

static AfutLoop *
afut_gi__make_loop (GMainContext *context, unsigned flags)
{
  GMainContext *ctx = context != NULL ? g_main_context_ref (context)
                                      : g_main_context_ref_thread_default ();
  AfutLoop *loop = afut_glib_loop_new (ctx, flags);
  g_main_context_unref (ctx);
  if (loop == NULL)
    return NULL;
  afut_loop_push_thread_default (loop);
  g_private_set (&afut_gi__attached, loop);
  return loop;
}

static unsigned
afut_gi__env_flags (void)
{
  const char *clock = g_getenv ("AFUT_CLOCK");
  return clock != NULL && strcmp (clock, "virtual") == 0
           ? AFUT_LOOP_VIRTUAL_CLOCK
           : AFUT_LOOP_NONE;
}

/* The loop a call without one works on: the running loop, else the
 * thread-default one (ours, or a C program's), else a new one. */
static AfutLoop *
afut_gi__loop (void)
{
  AfutLoop *loop = afut_loop_get_running ();
  if (loop == NULL)
    loop = afut_loop_get_thread_default ();
  if (loop == NULL)
    loop = afut_gi__make_loop (NULL, afut_gi__env_flags ());
  return loop;
}

gboolean
afut_gi_attach (GMainContext *context, AfutGiLoopFlags flags, GError **error)
{
  g_return_val_if_fail (error == NULL || *error == NULL, FALSE);
  if (g_private_get (&afut_gi__attached) != NULL)
    {
      g_set_error_literal (error, AFUT_GI_ERROR, AFUT_GI_ERROR_INVALID_STATE,
                           "this thread has an afut loop already");
      return FALSE;
    }
  return afut_gi__make_loop (context, (unsigned) flags) != NULL;
}

void
afut_gi_detach (void)
{
  AfutLoop *loop = (AfutLoop *) g_private_get (&afut_gi__attached);
  if (loop == NULL)
    return;
  g_return_if_fail (afut_loop_get_running () == NULL);
  g_private_set (&afut_gi__attached, NULL);
  /* Pending tasks are cancelled and run to their end before the loop
   * goes, even if a binding still holds futures of it. */
  afut_loop_shutdown (loop);
  afut_loop_pop_thread_default (loop);
  afut_loop_unref (loop);
}

gboolean
afut_gi_is_attached (void)
{
  return g_private_get (&afut_gi__attached) != NULL;
}

GMainContext *
afut_gi_get_context (void)
{
  return afut_glib_loop_get_context (afut_gi__loop ());
}

double
afut_gi_time (void)
{
  return afut_loop_time (afut_gi__loop ());
}

/* ---- callbacks ---- */

typedef struct
{
  GCallback callback;
  gpointer user_data;
  GDestroyNotify destroy;
} AfutGiClosure;

static AfutGiClosure *
afut_gi__closure_new (GCallback callback, gpointer user_data,
                      GDestroyNotify destroy)
{
  AfutGiClosure *c = g_new (AfutGiClosure, 1);
  c->callback = callback;
  c->user_data = user_data;
  c->destroy = destroy;
  return c;
}

static void
afut_gi__closure_free (AfutGiClosure *c)
{
  if (c->destroy != NULL)
    c->destroy (c->user_data);
  g_free (c);
}

static void
afut_gi__call_soon_run (void *data)
{
  AfutGiClosure *c = (AfutGiClosure *) data;
  ((AfutGiCallback) c->callback) (c->user_data);
  afut_gi__closure_free (c);
}

gboolean
afut_gi_call_soon (AfutGiCallback callback, gpointer user_data,
                   GDestroyNotify destroy)
{
  AfutGiClosure *c;
  g_return_val_if_fail (callback != NULL, FALSE);
  c = afut_gi__closure_new ((GCallback) callback, user_data, destroy);
  if (!afut_loop_call_soon (afut_gi__loop (), afut_gi__call_soon_run, c))
    {
      afut_gi__closure_free (c);
      return FALSE;
    }
  return TRUE;
}

/* call_later: the timer runs the callback; the handle's completion (run
 * or cancelled) frees the closure. */
static void
afut_gi__call_later_run (void *data)
{
  AfutGiClosure *c = (AfutGiClosure *) data;
  ((AfutGiCallback) c->callback) (c->user_data);
}

static void
afut_gi__call_later_done (AfutFuture *handle, void *data)
{
  (void) handle;
  afut_gi__closure_free ((AfutGiClosure *) data);
}

AfutGiFuture *
afut_gi_call_later (double delay, AfutGiCallback callback, gpointer user_data,
                    GDestroyNotify destroy)
{
  AfutGiClosure *c;
  AfutFuture *handle;
  g_return_val_if_fail (callback != NULL, NULL);
  c = afut_gi__closure_new ((GCallback) callback, user_data, destroy);
  handle = afut_loop_call_later (afut_gi__loop (), delay,
                                 afut_gi__call_later_run, c);
  if (handle == NULL)
    {
      afut_gi__closure_free (c);
      return NULL;
    }
  afut_future_add_done_callback (handle, afut_gi__call_later_done, c);
  return AFUT_GI__WRAP (handle);
}

/* ---- values ---- */

/* Every GValue a future holds as its pointer value, so that one can be
 * told from another pointer (a C future's) when it comes back: futures
 * that follow another one (wait_for, shield) lend its pointer without
 * its destroy notify. */
static GMutex afut_gi__values_lock;
static GHashTable *afut_gi__values;

static GValue *
afut_gi__value_new (const GValue *src)
{
  GValue *v = g_new0 (GValue, 1);
  g_value_init (v, G_VALUE_TYPE (src));
  g_value_copy (src, v);
  g_mutex_lock (&afut_gi__values_lock);
  if (afut_gi__values == NULL)
    afut_gi__values = g_hash_table_new (NULL, NULL);
  g_hash_table_add (afut_gi__values, v);
  g_mutex_unlock (&afut_gi__values_lock);
  return v;
}

static void
afut_gi__value_free (void *data)
{
  GValue *v = (GValue *) data;
  g_mutex_lock (&afut_gi__values_lock);
  g_hash_table_remove (afut_gi__values, v);
  if (g_hash_table_size (afut_gi__values) == 0)
    g_clear_pointer (&afut_gi__values, g_hash_table_unref);
  g_mutex_unlock (&afut_gi__values_lock);
  g_value_unset (v);
  g_free (v);
}

static gboolean
afut_gi__value_known (gpointer p)
{
  gboolean known;
  g_mutex_lock (&afut_gi__values_lock);
  known = afut_gi__values != NULL && g_hash_table_contains (afut_gi__values, p);
  g_mutex_unlock (&afut_gi__values_lock);
  return known;
}

/* Where the value handed out last lives: bindings copy it at once, and
 * PyGObject 3.42 leaks a GValue returned (transfer full). */
static void
afut_gi__scratch_free (gpointer data)
{
  GValue *v = (GValue *) data;
  if (G_IS_VALUE (v))
    g_value_unset (v);
  g_free (v);
}

static GPrivate afut_gi__scratch = G_PRIVATE_INIT (afut_gi__scratch_free);

static GValue *
afut_gi__scratch_value (GType type)
{
  GValue *v = (GValue *) g_private_get (&afut_gi__scratch);
  if (v == NULL)
    {
      v = g_new0 (GValue, 1);
      g_private_set (&afut_gi__scratch, v);
    }
  if (G_IS_VALUE (v))
    g_value_unset (v);
  return g_value_init (v, type);
}

/* result(): the value of a done future, or its error. */
static const GValue *
afut_gi__outcome (AfutFuture *f, GError **error)
{
  GValue *v;
  gpointer p;

  switch (afut_future_get_state (f))
    {
    case AFUT_FUTURE_PENDING:
      g_set_error_literal (error, AFUT_GI_ERROR, AFUT_GI_ERROR_INVALID_STATE,
                           "Result is not set.");
      return NULL;
    case AFUT_FUTURE_FAILED:
    case AFUT_FUTURE_CANCELLED:
      g_propagate_error (error,
                         g_error_copy (afut_glib_future_get_error (f)));
      return NULL;
    case AFUT_FUTURE_DONE:
    default:
      break;
    }
  switch (afut_future_get_value_type (f))
    {
    case AFUT_VALUE_INT:
      v = afut_gi__scratch_value (G_TYPE_INT64);
      g_value_set_int64 (v, afut_future_get_int (f));
      return v;
    case AFUT_VALUE_DOUBLE:
      v = afut_gi__scratch_value (G_TYPE_DOUBLE);
      g_value_set_double (v, afut_future_get_double (f));
      return v;
    case AFUT_VALUE_POINTER:
      p = afut_future_get_pointer (f);
      if (p != NULL && afut_gi__value_known (p))
        {
          v = afut_gi__scratch_value (G_VALUE_TYPE ((GValue *) p));
          g_value_copy ((GValue *) p, v);
        }
      else
        {
          v = afut_gi__scratch_value (G_TYPE_POINTER);
          g_value_set_pointer (v, p);
        }
      return v;
    case AFUT_VALUE_NONE:
    default:
      return NULL;
    }
}

/* ---- futures ---- */

AfutGiFuture *
afut_gi_future_new (void)
{
  return AFUT_GI__WRAP (afut_future_new (afut_gi__loop ()));
}

/* A binding's task: a custom future whose cancel is a request. */
typedef struct
{
  AfutCustomFuture base;
  AfutGiCancelFunc cancel_func;
  gpointer user_data;
  GDestroyNotify destroy;
} AfutGiTask;

static void
afut_gi__task_release (AfutGiTask *t)
{
  GDestroyNotify destroy = t->destroy;
  gpointer user_data = t->user_data;
  t->cancel_func = NULL;
  t->user_data = NULL;
  t->destroy = NULL;
  if (destroy != NULL)
    destroy (user_data);
}

static bool
afut_gi__task_cancel (AfutFuture *future, const char *message)
{
  AfutGiTask *t = (AfutGiTask *) future;
  if (t->cancel_func == NULL)
    return afut_future_fail (future,
                             afut_error_new_literal (AFUT_ERROR,
                                                     AFUT_ERROR_CANCELLED,
                                                     message ? message : ""));
  return t->cancel_func (AFUT_GI__WRAP (future), message, t->user_data);
}

static void
afut_gi__task_finalize (AfutFuture *future)
{
  afut_gi__task_release ((AfutGiTask *) future);
}

/* The binding's closure usually holds the future (through the binding's
 * task object): letting go of it once the future is done breaks that
 * cycle, which neither side's collector can see. */
static void
afut_gi__task_done (AfutFuture *future, void *data)
{
  (void) data;
  afut_gi__task_release ((AfutGiTask *) future);
}

static const AfutFutureFuncs afut_gi__task_funcs = {
  afut_gi__task_cancel,
  afut_gi__task_finalize,
};

AfutGiFuture *
afut_gi_future_new_task (AfutGiCancelFunc cancel_func, gpointer user_data,
                         GDestroyNotify destroy)
{
  AfutFuture *f = afut_future_new_custom (afut_gi__loop (),
                                          &afut_gi__task_funcs,
                                          sizeof (AfutGiTask));
  AfutGiTask *t = (AfutGiTask *) f;
  if (f == NULL)
    {
      if (destroy != NULL)
        destroy (user_data);
      return NULL;
    }
  t->cancel_func = cancel_func;
  t->user_data = user_data;
  t->destroy = destroy;
  afut_future_add_done_callback (f, afut_gi__task_done, NULL);
  return AFUT_GI__WRAP (f);
}

gboolean
afut_gi_future_resolve (AfutGiFuture *future, const GValue *value)
{
  AfutFuture *f = AFUT_GI__FUTURE (future);
  g_return_val_if_fail (f != NULL, FALSE);
  if (value == NULL || !G_IS_VALUE (value))
    return afut_future_resolve (f);
  return afut_future_resolve_pointer (f, afut_gi__value_new (value),
                                      afut_gi__value_free);
}

gboolean
afut_gi_future_fail (AfutGiFuture *future, const GError *error)
{
  AfutFuture *f = AFUT_GI__FUTURE (future);
  g_return_val_if_fail (f != NULL, FALSE);
  g_return_val_if_fail (error != NULL, FALSE);
  return afut_future_fail (f, (AfutError *) g_error_copy (error));
}

gboolean
afut_gi_future_cancel (AfutGiFuture *future, const char *message)
{
  g_return_val_if_fail (future != NULL, FALSE);
  return afut_future_cancel (AFUT_GI__FUTURE (future), message);
}

AfutGiFutureState
afut_gi_future_get_state (AfutGiFuture *future)
{
  g_return_val_if_fail (future != NULL, AFUT_GI_FUTURE_PENDING);
  return (AfutGiFutureState) afut_future_get_state (AFUT_GI__FUTURE (future));
}

gboolean
afut_gi_future_is_done (AfutGiFuture *future)
{
  g_return_val_if_fail (future != NULL, FALSE);
  return afut_future_is_done (AFUT_GI__FUTURE (future));
}

gboolean
afut_gi_future_is_cancelled (AfutGiFuture *future)
{
  g_return_val_if_fail (future != NULL, FALSE);
  return afut_future_is_cancelled (AFUT_GI__FUTURE (future));
}

const GValue *
afut_gi_future_get_value (AfutGiFuture *future, GError **error)
{
  g_return_val_if_fail (future != NULL, NULL);
  g_return_val_if_fail (error == NULL || *error == NULL, NULL);
  return afut_gi__outcome (AFUT_GI__FUTURE (future), error);
}

GError *
afut_gi_future_get_error (AfutGiFuture *future)
{
  AfutFuture *f = AFUT_GI__FUTURE (future);
  const GError *e;
  g_return_val_if_fail (f != NULL, NULL);
  if (!afut_future_is_done (f))
    return NULL;
  e = afut_glib_future_get_error (f);
  return e != NULL ? g_error_copy (e) : NULL;
}

static void
afut_gi__done_run (AfutFuture *future, void *data)
{
  AfutGiClosure *c = (AfutGiClosure *) data;
  ((AfutGiFutureCallback) c->callback) (AFUT_GI__WRAP (future), c->user_data);
  afut_gi__closure_free (c);
}

void
afut_gi_future_add_done_callback (AfutGiFuture *future,
                                  AfutGiFutureCallback callback,
                                  gpointer user_data, GDestroyNotify destroy)
{
  g_return_if_fail (future != NULL);
  g_return_if_fail (callback != NULL);
  afut_future_add_done_callback (
    AFUT_GI__FUTURE (future), afut_gi__done_run,
    afut_gi__closure_new ((GCallback) callback, user_data, destroy));
}

gboolean
afut_gi_future_is_gather (AfutGiFuture *future)
{
  g_return_val_if_fail (future != NULL, FALSE);
  /* afut.h has no public test for a gather; this file implements afut,
   * so the future's kind is in view. */
  return AFUT_GI__FUTURE (future)->kind == AFUT__KIND_GATHER;
}

AfutGiFuture **
afut_gi_future_get_items (AfutGiFuture *future, guint *n_items)
{
  AfutFuture *f = AFUT_GI__FUTURE (future);
  AfutGiFuture **items;
  size_t i, n = 0;

  g_return_val_if_fail (f != NULL, NULL);
  g_return_val_if_fail (n_items != NULL, NULL);
  if (afut_gi_future_is_gather (future))
    n = afut_gather_get_n_items (f);
  items = g_new0 (AfutGiFuture *, n + 1);
  for (i = 0; i < n; i++)
    items[i] = AFUT_GI__WRAP (afut_gather_get_item (f, i));
  *n_items = (guint) n;
  return items;
}

/* ---- combinators ---- */

static void
afut_gi__resolve_now (void *data)
{
  AfutFuture *f = (AfutFuture *) data;
  if (!afut_future_is_done (f))
    afut_future_resolve (f);
  afut_future_unref (f);
}

AfutGiFuture *
afut_gi_sleep (double seconds)
{
  AfutLoop *loop = afut_gi__loop ();
  AfutFuture *f;
  g_return_val_if_fail (!isnan (seconds), NULL);
  if (seconds > 0)
    return AFUT_GI__WRAP (afut_loop_sleep (loop, seconds));
  /* afut's sleep(0) is a marker only a C task's await completes; a
   * binding's coroutine awaits a future, which resolves on the next
   * iteration instead. */
  f = afut_future_new (loop);
  if (f != NULL && !afut_loop_call_soon (loop, afut_gi__resolve_now,
                                         afut_future_ref (f)))
    afut_future_unref (f);
  return AFUT_GI__WRAP (f);
}

static AfutGiFuture *
afut_gi__gather (AfutGiFuture **futures, guint n_futures,
                 gboolean return_exceptions)
{
  guint i;
  g_return_val_if_fail (futures != NULL || n_futures == 0, NULL);
  for (i = 0; i < n_futures; i++)
    g_return_val_if_fail (futures[i] != NULL, NULL);
  /* With no children, afut gathers on the running or thread-default
   * loop: make sure there is one. */
  (void) afut_gi__loop ();
  if (return_exceptions)
    return AFUT_GI__WRAP (afut_gather_return_exceptions_v (
      (AfutFuture *const *) futures, n_futures));
  return AFUT_GI__WRAP (
    afut_gather_v ((AfutFuture *const *) futures, n_futures));
}

AfutGiFuture *
afut_gi_gather (AfutGiFuture **futures, guint n_futures)
{
  return afut_gi__gather (futures, n_futures, FALSE);
}

AfutGiFuture *
afut_gi_gather_return_exceptions (AfutGiFuture **futures, guint n_futures)
{
  return afut_gi__gather (futures, n_futures, TRUE);
}

AfutGiFuture *
afut_gi_wait_for (AfutGiFuture *future, double timeout)
{
  g_return_val_if_fail (future != NULL, NULL);
  return AFUT_GI__WRAP (
    afut_wait_for (afut_future_ref (AFUT_GI__FUTURE (future)), timeout));
}

AfutGiFuture *
afut_gi_shield (AfutGiFuture *future)
{
  g_return_val_if_fail (future != NULL, NULL);
  return AFUT_GI__WRAP (
    afut_shield (afut_future_ref (AFUT_GI__FUTURE (future))));
}

/* ---- running ---- */

const GValue *
afut_gi_run_until_complete (AfutGiFuture *future, GError **error)
{
  AfutFuture *f = AFUT_GI__FUTURE (future);
  GMainContext *context;
  const GValue *value;

  g_return_val_if_fail (f != NULL, NULL);
  g_return_val_if_fail (error == NULL || *error == NULL, NULL);
  if (afut_loop_get_running () != NULL)
    {
      g_set_error_literal (error, AFUT_GI_ERROR, AFUT_GI_ERROR_INVALID_STATE,
                           "This event loop is already running");
      return NULL;
    }
  context = afut_glib_loop_get_context (afut_future_get_loop (f));
  if (context == NULL)
    {
      g_set_error_literal (error, AFUT_GI_ERROR,
                           AFUT_GI_ERROR_INVALID_ARGUMENT,
                           "the future's loop does not run on GLib");
      return NULL;
    }
  /* Iterate the context rather than afut_loop_run_until_complete(): a
   * virtual clock then jumps only when GLib runs afut's source, after
   * sources of higher priority (gjs's promise jobs) had their turn. */
  afut_future_ref (f);
  afut_task_start (f);
  while (!afut_future_is_done (f))
    g_main_context_iteration (context, TRUE);
  value = afut_gi__outcome (f, error);
  afut_future_unref (f);
  return value;
}
