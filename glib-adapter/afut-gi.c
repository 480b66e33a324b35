/* afut-gi.c - libafut-1: the one translation unit that implements afut.h
 * and the GLib adapter, with every public afut symbol exported, the
 * boxed GTypes, and the rest of afut-gi.h.  Its introspection data is
 * Afut-1.gir / Afut-1.typelib (gi/meson.build).
 *
 * SPDX-License-Identifier: MIT
 */

#if defined(__GNUC__) || defined(__clang__)
#define AFUT_API __attribute__ ((visibility ("default"))) extern
#endif

#define AFUT_IMPLEMENTATION
#define AFUT_GLIB
#include "afut.h"
#include "afut-glib.h"

#include "afut-gi.h"

/* ---- boxed types ---- */

/* By hand rather than G_DEFINE_BOXED_TYPE, whose copy/free casts to a
 * transparent union -Wpedantic rejects in C11. */
#define AFUT_GI__BOXED(TypeName, type_name, ref, unref)                       \
  GType type_name##_get_type (void)                                           \
  {                                                                           \
    static gsize type_id = 0;                                                 \
    if (g_once_init_enter (&type_id))                                         \
      {                                                                       \
        GType t = g_boxed_type_register_static (                              \
          g_intern_static_string (#TypeName), (GBoxedCopyFunc) ref,           \
          (GBoxedFreeFunc) unref);                                            \
        g_once_init_leave (&type_id, t);                                      \
      }                                                                       \
    return (GType) type_id;                                                   \
  }

/* A task and a task group are futures: their references are the
 * future's. */
static gpointer
afut_gi__future_copy (gpointer p)
{
  return afut_future_ref ((AfutFuture *) p);
}

static void
afut_gi__future_free (gpointer p)
{
  afut_future_unref ((AfutFuture *) p);
}

AFUT_GI__BOXED (AfutLoop, afut_loop, afut_loop_ref, afut_loop_unref)
AFUT_GI__BOXED (AfutFuture, afut_future, afut_future_ref, afut_future_unref)
AFUT_GI__BOXED (AfutTask, afut_task, afut_gi__future_copy,
                afut_gi__future_free)
AFUT_GI__BOXED (AfutTaskGroup, afut_task_group, afut_gi__future_copy,
                afut_gi__future_free)
AFUT_GI__BOXED (AfutEvent, afut_event, afut_event_ref, afut_event_unref)
AFUT_GI__BOXED (AfutLock, afut_lock, afut_lock_ref, afut_lock_unref)
AFUT_GI__BOXED (AfutSemaphore, afut_semaphore, afut_semaphore_ref,
                afut_semaphore_unref)
AFUT_GI__BOXED (AfutCondition, afut_condition, afut_condition_ref,
                afut_condition_unref)
AFUT_GI__BOXED (AfutQueue, afut_queue, afut_queue_ref, afut_queue_unref)

/* ---- a binding's coroutine as a task ---- */

typedef struct
{
  AfutTask task;
  AfutTaskStepFunc step;
  gpointer user_data;
  GDestroyNotify destroy;
} AfutGiTask;

/* Lets go of the binding's closure, once. */
static void
afut_gi__task_release (AfutGiTask *t)
{
  GDestroyNotify destroy = t->destroy;
  gpointer user_data = t->user_data;
  t->step = NULL;
  t->user_data = NULL;
  t->destroy = NULL;
  if (destroy != NULL)
    destroy (user_data);
}

/* The C step function: what AFUT_BEGIN / AFUT_AWAIT_TRY do for a C task,
 * with the binding's step callback as the body between two awaits.
 * Every await catches (afut_task_caught()): the binding throws the error
 * into its coroutine, which may handle it, as `try: await` does. */
static void
afut_gi__task_func (AfutTask *task)
{
  AfutGiTask *t = (AfutGiTask *) task;
  int point = afut__task_begin (task);
  if (point < 0)
    return;
  if (point != 0)
    afut__task_resume (task, 1);
  for (;;)
    {
      AfutFuture *next;
      if (t->step == NULL)
        {
          afut__task_throw (task, afut_error_new_literal (
                                    AFUT_ERROR, AFUT_ERROR_INVALID_STATE,
                                    "the binding's coroutine is gone"));
          return;
        }
      next = t->step (task, t->user_data);
      if (task->future.state != AFUT_FUTURE_PENDING)
        {
          afut_gi__task_release (t);
          return;
        }
      if (next == NULL)
        return; /* a return the task is unwinding for, or an implicit one */
      if (afut__task_await (task, afut_future_ref (next), 1))
        return; /* suspended */
      afut__task_resume (task, 1); /* done already: on at once */
    }
}

static void
afut_gi__task_finalize (AfutTask *task)
{
  afut_gi__task_release ((AfutGiTask *) task);
}

static void
afut_gi__task_done (AfutFuture *future, void *data)
{
  (void) data;
  afut_gi__task_release ((AfutGiTask *) future);
}

AfutFuture *
afut_stepped_task_new (AfutLoop *loop, const char *name,
                       AfutTaskStepFunc step, gpointer user_data,
                       GDestroyNotify destroy)
{
  AfutFuture *f;
  AfutGiTask *t;
  if (step == NULL)
    {
      g_critical ("%s: assertion 'step != NULL' failed", G_STRFUNC);
      if (destroy != NULL)
        destroy (user_data);
      return NULL;
    }
  f = afut_task_new (loop, afut_gi__task_func, sizeof (AfutGiTask), NULL,
                     name, afut_gi__task_finalize);
  if (f == NULL)
    {
      if (destroy != NULL)
        destroy (user_data);
      return NULL;
    }
  t = (AfutGiTask *) f;
  t->step = step;
  t->user_data = user_data;
  t->destroy = destroy;
  /* A task cancelled before its first step never runs its body. */
  afut_future_add_done_callback (f, afut_gi__task_done, NULL);
  return f;
}

void
afut_task_return_value (AfutTask *task, const GValue *value)
{
  g_return_if_fail (task != NULL);
  if (value == NULL || !G_IS_VALUE (value))
    afut__task_return_none (task);
  else
    afut__task_return_pointer (task, afut_glib__value_new (value),
                               afut_glib__value_free);
}

void
afut_task_throw_error (AfutTask *task, const GError *error)
{
  g_return_if_fail (task != NULL);
  g_return_if_fail (error != NULL);
  afut__task_throw (task, (AfutError *) g_error_copy (error));
}

void
afut_task_throw_value (AfutTask *task, const GValue *exception,
                       const char *message)
{
  g_return_if_fail (task != NULL);
  g_return_if_fail (G_IS_VALUE (exception));
  afut__task_throw (task, (AfutError *) afut_exception_error_new (exception,
                                                                  message));
}

const GValue *
afut_task_get_caught_value (AfutTask *task)
{
  g_return_val_if_fail (task != NULL, NULL);
  return afut_exception_error_get_value (
    (const GError *) afut_task_caught (task));
}

gboolean
afut_future_is_gather (AfutFuture *future)
{
  g_return_val_if_fail (future != NULL, FALSE);
  /* afut.h has no public test for a gather; this file implements afut,
   * so the future's kind is in view. */
  return future->kind == AFUT__KIND_GATHER;
}

AfutFuture *
afut_task_get_future (AfutTask *task)
{
  g_return_val_if_fail (task != NULL, NULL);
  return &task->future;
}

gboolean
afut_future_is_task (AfutFuture *future)
{
  g_return_val_if_fail (future != NULL, FALSE);
  return future->kind == AFUT__KIND_TASK;
}

gboolean
afut_future_then (AfutFuture *future, GError **error)
{
  (void) future;
  g_set_error_literal (
    error, AFUT_ERROR, AFUT_ERROR_INVALID_STATE,
    "the Afut override (Afut.js) did not load, so an Afut.Future cannot be "
    "awaited: install afut's gjs override into gjs's overrides directory, "
    "or point GJS_PATH at the directory holding overrides/Afut.js");
  return FALSE;
}

char *
afut_task_to_string (AfutTask *task)
{
  size_t n;
  char *text;
  g_return_val_if_fail (task != NULL, NULL);
  n = afut_task_describe (task, NULL, 0);
  text = (char *) g_malloc (n + 1);
  afut_task_describe (task, text, n + 1);
  return text;
}

AfutFuture *
afut_future_get_value_source (AfutFuture *future)
{
  g_return_val_if_fail (future != NULL, NULL);
  /* The structs of the following futures are in view here, in the file
   * that implements afut; each keeps its input while it lends its value. */
  while (future->state == AFUT_FUTURE_DONE)
    {
      AfutFuture *from = NULL;
      switch (future->kind)
        {
        case AFUT__KIND_SHIELD:
          from = ((AfutShield *) future)->inner;
          break;
        case AFUT__KIND_WAIT_FOR:
          from = ((AfutWaitFor *) future)->inner;
          break;
        case AFUT__KIND_RACE:
          from = ((AfutMulti *) future)->winner;
          break;
        default:
          break;
        }
      if (from == NULL || from->state != AFUT_FUTURE_DONE)
        break;
      future = from;
    }
  return future;
}

/* ---- a future whose cancel a binding answers ---- */

typedef struct
{
  AfutCustomFuture base;
  AfutFutureCancelFunc cancel;
  gpointer user_data;
  GDestroyNotify destroy;
} AfutGiCancellable;

static void
afut_gi__cancellable_release (AfutGiCancellable *c)
{
  GDestroyNotify destroy = c->destroy;
  gpointer user_data = c->user_data;
  c->cancel = NULL;
  c->user_data = NULL;
  c->destroy = NULL;
  if (destroy != NULL)
    destroy (user_data);
}

static bool
afut_gi__cancellable_cancel (AfutFuture *future, const char *message)
{
  AfutGiCancellable *c = (AfutGiCancellable *) future;
  if (c->cancel == NULL)
    return false;
  return c->cancel (future, message, c->user_data) != FALSE;
}

static void
afut_gi__cancellable_finalize (AfutFuture *future)
{
  afut_gi__cancellable_release ((AfutGiCancellable *) future);
}

static void
afut_gi__cancellable_done (AfutFuture *future, void *data)
{
  (void) data;
  /* The binding's closure usually holds the future: letting go of it
   * once the future is done breaks that cycle. */
  afut_gi__cancellable_release ((AfutGiCancellable *) future);
}

static const AfutFutureFuncs afut_gi__cancellable_funcs = {
  afut_gi__cancellable_cancel,
  afut_gi__cancellable_finalize,
};

AfutFuture *
afut_future_new_with_cancel (AfutLoop *loop, AfutFutureCancelFunc cancel,
                             gpointer user_data, GDestroyNotify destroy)
{
  AfutFuture *f;
  AfutGiCancellable *c;
  if (cancel == NULL)
    {
      g_critical ("%s: assertion 'cancel != NULL' failed", G_STRFUNC);
      if (destroy != NULL)
        destroy (user_data);
      return NULL;
    }
  f = afut_future_new_custom (loop, &afut_gi__cancellable_funcs,
                              sizeof (AfutGiCancellable));
  if (f == NULL)
    {
      if (destroy != NULL)
        destroy (user_data);
      return NULL;
    }
  c = (AfutGiCancellable *) f;
  c->cancel = cancel;
  c->user_data = user_data;
  c->destroy = destroy;
  afut_future_add_done_callback (f, afut_gi__cancellable_done, NULL);
  return f;
}
