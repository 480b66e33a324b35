/* afut-gi.h - what GObject Introspection needs beyond afut.h and
 * afut-glib.h, for the Afut-1 typelib of libafut-1 (PyGObject, gjs).
 *
 * SPDX-License-Identifier: MIT
 *
 * Python and JavaScript see afut's own API: gi/meson.build scans afut.h,
 * afut-glib.h and this header, and libafut-1 is the one translation unit
 * that implements the first two (glib-adapter/afut-gi.c).  A C program
 * that links libafut-1 (instead of defining AFUT_IMPLEMENTATION itself)
 * shares its futures with the Python or JavaScript plugins it loads: an
 * #AfutFuture is the same object on both sides.
 *
 * This header adds only what a binding cannot do with the C API:
 *   - the boxed GTypes of afut's reference-counted objects (afut.h stays
 *     free of GLib; the scanner ties afut_future_get_type() to the
 *     AfutFuture record by name);
 *   - a task whose body is a binding's coroutine (a Python `async def`,
 *     a JavaScript generator): a real #AfutTask, so that cancellation,
 *     cancel counts, names, timeouts and task groups are afut's own, with
 *     a step callback where a C task has its AFUT_AWAIT macros;
 *   - the ways out of such a task (return a GValue, raise an error or a
 *     binding's exception), which C tasks take through macros.
 */

#ifndef AFUT_GI_H
#define AFUT_GI_H

#ifndef AFUT_GLIB_H
#error "include afut.h and afut-glib.h before afut-gi.h"
#endif

#include <glib-object.h>

G_BEGIN_DECLS

/* ---- boxed types ---- */

/**
 * afut_loop_get_type:
 *
 * The boxed GType of #AfutLoop (copy: afut_loop_ref(), free:
 * afut_loop_unref()).
 *
 * Returns: the GType "AfutLoop"
 * Since: 0.3
 */
AFUT_API GType afut_loop_get_type (void) G_GNUC_CONST;

/**
 * afut_future_get_type:
 *
 * The boxed GType of #AfutFuture (copy: afut_future_ref(), free:
 * afut_future_unref()).
 *
 * Returns: the GType "AfutFuture"
 * Since: 0.3
 */
AFUT_API GType afut_future_get_type (void) G_GNUC_CONST;

/**
 * afut_task_get_type:
 *
 * The boxed GType of #AfutTask, a future that is a task (copy and free
 * take and drop a reference to the future).
 *
 * Returns: the GType "AfutTask"
 * Since: 0.3
 */
AFUT_API GType afut_task_get_type (void) G_GNUC_CONST;

/**
 * afut_task_group_get_type:
 *
 * The boxed GType of #AfutTaskGroup (copy and free take and drop a
 * reference that keeps the group's memory, not the group open).
 *
 * Returns: the GType "AfutTaskGroup"
 * Since: 0.3
 */
AFUT_API GType afut_task_group_get_type (void) G_GNUC_CONST;

/**
 * afut_event_get_type:
 *
 * The boxed GType of #AfutEvent.
 *
 * Returns: the GType "AfutEvent"
 * Since: 0.3
 */
AFUT_API GType afut_event_get_type (void) G_GNUC_CONST;

/**
 * afut_lock_get_type:
 *
 * The boxed GType of #AfutLock.
 *
 * Returns: the GType "AfutLock"
 * Since: 0.3
 */
AFUT_API GType afut_lock_get_type (void) G_GNUC_CONST;

/**
 * afut_semaphore_get_type:
 *
 * The boxed GType of #AfutSemaphore.
 *
 * Returns: the GType "AfutSemaphore"
 * Since: 0.3
 */
AFUT_API GType afut_semaphore_get_type (void) G_GNUC_CONST;

/**
 * afut_condition_get_type:
 *
 * The boxed GType of #AfutCondition.
 *
 * Returns: the GType "AfutCondition"
 * Since: 0.3
 */
AFUT_API GType afut_condition_get_type (void) G_GNUC_CONST;

/**
 * afut_queue_get_type:
 *
 * The boxed GType of #AfutQueue.
 *
 * Returns: the GType "AfutQueue"
 * Since: 0.3
 */
AFUT_API GType afut_queue_get_type (void) G_GNUC_CONST;

/* ---- a binding's coroutine as a task ---- */

/**
 * AfutTaskStepFunc:
 * @task: the task being stepped
 * @user_data: the data given to afut_stepped_task_new()
 *
 * One step of a binding's coroutine, called where a C task's step
 * function would run: first when the task starts, then each time what
 * it awaited is done.  afut_task_awaited() is that future (%NULL at the
 * first step), afut_task_caught() the error the await raised (its error,
 * or the task's own cancellation) and afut_task_get_caught_value() the
 * binding's exception riding with it.  The step resumes the coroutine
 * with that outcome, and either returns the next future to await or ends
 * the task with afut_task_return_value(), afut_task_throw_error() or
 * afut_task_throw_value() and returns %NULL.  Returning %NULL without
 * that ends the task with no value.  A future done already is taken at
 * once (the step is called again, no loop turn); afut_sleep (0) is a
 * bare yield.
 *
 * Returns: (transfer none) (nullable): the future to await next; the
 *   task takes a reference of its own, and the step keeps its own (a
 *   binding's wrapper object holds it; a C step keeps it in its data
 *   and lets go of it at its next step)
 * Since: 0.3
 */
typedef AfutFuture *(*AfutTaskStepFunc) (AfutTask *task, gpointer user_data);

/**
 * AfutFutureCancelFunc:
 * @future: the future asked to cancel
 * @message: (nullable): the cancel message
 * @user_data: the data given to afut_future_new_with_cancel()
 *
 * Asked to cancel a pending future of afut_future_new_with_cancel().
 *
 * Returns: %TRUE if a cancellation was requested (the binding completes
 *   @future later, cancelled or not), %FALSE to refuse
 * Since: 0.3
 */
typedef gboolean (*AfutFutureCancelFunc) (AfutFuture *future,
                                          const char *message,
                                          gpointer user_data);

/**
 * afut_future_new_with_cancel:
 * @loop: (nullable): the loop, %NULL for the running or thread-default
 *   one
 * @cancel: (scope notified) (closure user_data) (destroy destroy): asked
 *   when the future is cancelled
 * @user_data: its data
 * @destroy: (nullable): frees @user_data once the future is done
 *
 * afut_future_new_custom() for bindings: a future completed like a
 * plain one (afut_future_resolve_value() ...) whose cancellation is a
 * request @cancel answers, for work a binding runs that cannot stop at
 * once, or at all (a JavaScript promise, an async function's body).
 *
 * Returns: (transfer full): the future; %NULL if no loop is found
 *   (reported; @destroy is called)
 * Since: 0.3
 */
AFUT_API AfutFuture *afut_future_new_with_cancel (AfutLoop *loop,
                                                  AfutFutureCancelFunc cancel,
                                                  gpointer user_data,
                                                  GDestroyNotify destroy);

/**
 * afut_stepped_task_new:
 * @loop: (nullable): the loop, %NULL for the running or thread-default
 *   one
 * @name: (nullable): the task's name, %NULL for "Task-N"
 * @step: (scope notified) (closure user_data) (destroy destroy): the
 *   step callback
 * @user_data: its data
 * @destroy: (nullable): frees @user_data once the task is done (or
 *   freed without having run)
 *
 * asyncio.create_task() for a binding's coroutine: a task whose body is
 * @step, scheduled to start on a later loop iteration.  It is a real
 * #AfutTask: cancelling it cancels what it awaits and resumes it with
 * the cancellation; afut_task_cancelling(), afut_task_uncancel(), names,
 * afut_task_describe(), task groups and timeouts work on it as on a C
 * task.  @user_data is let go of as soon as the task is done, which
 * breaks the cycle a binding's closure holding the task would make.
 *
 * Returns: (transfer full): the task, as a future; %NULL if no loop is
 *   found (reported; @destroy is called)
 * Since: 0.3
 */
AFUT_API AfutFuture *afut_stepped_task_new (AfutLoop *loop, const char *name,
                                            AfutTaskStepFunc step,
                                            gpointer user_data,
                                            GDestroyNotify destroy);

/**
 * afut_task_return_value:
 * @task: the running task, inside its step
 * @value: (nullable): the value, copied; %NULL for no value
 *
 * `return value` in a binding's coroutine: completes @task with a copy
 * of @value (see afut_future_resolve_value()).  A task inside a task
 * group or timeout completes once those have ended.
 *
 * Since: 0.3
 */
AFUT_API void afut_task_return_value (AfutTask *task, const GValue *value);

/**
 * afut_task_throw_error:
 * @task: the running task, inside its step
 * @error: the error, copied
 *
 * `raise` of a GError: @task fails with @error (ends cancelled for an
 * %AFUT_ERROR_CANCELLED).
 *
 * Since: 0.3
 */
AFUT_API void afut_task_throw_error (AfutTask *task, const GError *error);

/**
 * afut_task_throw_value:
 * @task: the running task, inside its step
 * @exception: the binding's exception object, in a GValue (copied)
 * @message: (nullable): what C code sees, "Type: text"
 *
 * `raise` of a binding's own exception: @task fails with an
 * %AFUT_EXCEPTION_ERROR carrying @exception, so whoever awaits it,
 * directly or through any combinator, gets the same object back.
 *
 * Since: 0.3
 */
AFUT_API void afut_task_throw_value (AfutTask *task, const GValue *exception,
                                     const char *message);

/**
 * afut_task_get_caught_value:
 * @task: a task
 *
 * The binding's exception riding with afut_task_caught(), if any (see
 * %AFUT_EXCEPTION_ERROR).
 *
 * Returns: (transfer none) (nullable): the exception object
 * Since: 0.3
 */
AFUT_API const GValue *afut_task_get_caught_value (AfutTask *task);

/**
 * afut_task_to_string:
 * @task: a task
 *
 * afut_task_describe() for bindings, which cannot hand it a buffer.
 *
 * Returns: (transfer full): the line describing @task
 * Since: 0.3
 */
AFUT_API char *afut_task_to_string (AfutTask *task);

/**
 * afut_task_get_future:
 * @task: a task
 *
 * AFUT_FUTURE() for bindings: the task as the future it is.
 *
 * Returns: (transfer none): @task, as an #AfutFuture
 * Since: 0.3
 */
AFUT_API AfutFuture *afut_task_get_future (AfutTask *task);

/**
 * afut_future_is_task:
 * @future: a future
 *
 * Whether @future is a task (afut_future_get_task() would cast it).
 *
 * Returns: whether @future is a task
 * Since: 0.3
 */
AFUT_API gboolean afut_future_is_task (AfutFuture *future);

/**
 * afut_future_is_gather:
 * @future: a future
 *
 * Whether @future was made by a gather, whose result a binding shows as
 * the list of its items (afut_gather_get_item()).
 *
 * Returns: whether @future is a gather
 * Since: 0.3
 */
AFUT_API gboolean afut_future_is_gather (AfutFuture *future);

/**
 * afut_future_get_value_source:
 * @future: a future
 *
 * The future whose value @future took: for a shield, a wait_for, a race
 * or an any done with a value, the input it took it from (through
 * nested ones); @future itself otherwise.  A binding shows a gather's
 * value as the list of its items' values, and through this, a
 * wait_for's or shield's of a gather too (C reads the items from the
 * gather it made).
 *
 * Returns: (transfer none): the future the value comes from
 * Since: 0.3
 */
AFUT_API AfutFuture *afut_future_get_value_source (AfutFuture *future);

/**
 * afut_future_then:
 * @future: a future
 * @error: return location for the error
 *
 * Not to be called.  JavaScript's `await future` calls `future.then()`;
 * the gjs override (Afut.js) replaces this method with one that makes a
 * future a thenable.  Without the override, `await` lands here and
 * throws, rather than handing the future itself on as if it were its
 * value.
 *
 * Returns: %FALSE, with @error set to %AFUT_ERROR_INVALID_STATE saying
 *   that the override did not load
 * Since: 0.3
 */
AFUT_API gboolean afut_future_then (AfutFuture *future, GError **error);

G_END_DECLS

#endif /* AFUT_GI_H */
