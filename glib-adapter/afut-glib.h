/* afut-glib.h - afut on GLib's main loop: one GSource per afut loop, fd
 * readiness through that source, GError / GCancellable / GAsyncResult /
 * GTask bridges, and afut_to_thread() on a GThreadPool.
 *
 * SPDX-License-Identifier: MIT
 *
 * USAGE
 *   Every file that uses it includes afut.h first, then this header.  The
 *   one file that implements afut defines AFUT_IMPLEMENTATION and
 *   AFUT_GLIB before both: afut.h then leaves its implementation to this
 *   header, which first points afut's error-type hooks at GLib, so that
 *   afut's quarks are GQuarks, an AfutError is a GError (same domain, code
 *   and message; g_error_free() frees it) and afut's criticals, warnings
 *   and the default exception handler's reports ("Task exception was
 *   never retrieved", as warnings) go through g_log() in the "afut"
 *   domain (G_DEBUG=fatal-criticals works):
 *
 *     #define AFUT_IMPLEMENTATION
 *     #define AFUT_GLIB
 *     #include "afut.h"
 *     #include "afut-glib.h"
 *
 *   Build with glib-2.0 and gio-unix-2.0 (pkg-config).
 *
 * THE LOOP
 *   afut_glib_loop_new (context, flags) makes an afut loop that lives on a
 *   GMainContext as ONE GSource: its ready queue and timer heap drive the
 *   source's prepare/check/dispatch and its timeout, so GLib's cost per
 *   main-loop iteration does not grow with the number of pending tasks,
 *   sleeps or fds.  One dispatch runs afut's own iterations back to back
 *   (what a batch schedules runs in the next batch, as asyncio does) until
 *   nothing is ready or a time budget (1 ms by default) is spent, then
 *   returns to GLib, so GTK still redraws on time.  It runs under
 *   g_main_loop_run(), g_main_context_iteration() or GTK's main loop;
 *   afut_loop_run_until_complete() and afut_run() iterate the context
 *   themselves, holding it (g_main_context_acquire()) for the whole run,
 *   as g_main_loop_run() does.  With AFUT_GLIB, afut_run() runs on the
 *   thread-default main context.
 *
 * NESTED MAIN LOOPS
 *   A task step or a callback may run a nested main loop on the context
 *   (g_main_context_iteration() until something happens, a nested
 *   GMainLoop, a modal dialog): afut's other work runs in it, the rest of
 *   the current batch first.  A task whose step is on the C stack is not
 *   re-entered: what wakes it there steps it once that step returns.  In
 *   a plain GLib callback of such a nested iteration,
 *   afut_task_get_current() is %NULL: it is outside any task.
 */

#ifndef AFUT_GLIB_H
#define AFUT_GLIB_H

#ifndef AFUT_H
#error "include afut.h before afut-glib.h"
#endif

#include <gio/gio.h>
#include <glib-unix.h>
#include <glib.h>

G_BEGIN_DECLS

/* ---- the loop ---- */

/**
 * afut_glib_loop_new:
 * @context: (nullable): the main context, %NULL for the global default
 * @flags: #AfutLoopFlags
 *
 * Creates an afut loop that runs as one GSource on @context (attached at
 * %G_PRIORITY_DEFAULT).  Dropping the last reference shuts the loop down
 * (cancelling its tasks, iterating @context until they end) and removes
 * the source.
 *
 * Returns: (transfer full): a new loop
 * Since: 0.1
 */
AFUT_API AfutLoop *afut_glib_loop_new (GMainContext *context, unsigned flags);

/**
 * afut_glib_loop_get_context:
 * @loop: a loop made by afut_glib_loop_new()
 *
 * The GMainContext a GLib loop runs on.
 *
 * Returns: (transfer none) (nullable): its main context, %NULL for a loop
 *   of another backend (reported)
 * Since: 0.1
 */
AFUT_API GMainContext *afut_glib_loop_get_context (AfutLoop *loop);

/**
 * afut_glib_loop_get_source:
 * @loop: a loop made by afut_glib_loop_new()
 *
 * The GSource that runs a GLib loop, to inspect or re-prioritize.  It
 * is afut's: destroying it (g_source_destroy()) is a programmer error,
 * reported, after which the loop goes on with a new source (end a loop
 * with afut_loop_unref()).
 *
 * Returns: (transfer none) (nullable): the one GSource that runs @loop,
 *   %NULL once the loop is closed
 * Since: 0.1
 */
AFUT_API GSource *afut_glib_loop_get_source (AfutLoop *loop);

/**
 * afut_glib_loop_set_priority:
 * @loop: a loop made by afut_glib_loop_new()
 * @priority: a GLib priority; %G_PRIORITY_DEFAULT_IDLE puts afut's work
 *   below GTK's redraws (%G_PRIORITY_HIGH_IDLE + 20)
 *
 * Sets the priority of the loop's GSource.
 *
 * Since: 0.1
 */
AFUT_API void afut_glib_loop_set_priority (AfutLoop *loop, int priority);

/**
 * afut_glib_loop_set_budget:
 * @loop: a loop made by afut_glib_loop_new()
 * @budget_ns: how long one dispatch of the source may run afut batches;
 *   0 runs one batch per dispatch
 *
 * Sets how long one dispatch of the loop's GSource may run afut's
 * iterations before it returns to GLib (1 ms by default).
 *
 * Since: 0.1
 */
AFUT_API void afut_glib_loop_set_budget (AfutLoop *loop, int64_t budget_ns);

/* ---- errors ---- */

/**
 * afut_glib_error_from_gerror:
 * @error: (transfer full): a GError, from a GIO `_finish` call say
 *
 * Converts a GError into an afut error for afut_future_fail() or
 * AFUT_THROW(): the same error, except %G_IO_ERROR_CANCELLED, which
 * becomes afut's cancellation (same message), so a GIO call cancelled
 * under a task ends that task cancelled.
 *
 * Returns: (transfer full): the error
 * Since: 0.1
 */
AFUT_API AfutError *afut_glib_error_from_gerror (GError *error);

/**
 * afut_glib_future_propagate:
 * @future: a done future
 * @error: (out) (optional): where a failure goes
 *
 * For GLib-style APIs: %TRUE if @future is done with a value; otherwise
 * sets @error to a copy of its error, a cancellation becoming
 * %G_IO_ERROR_CANCELLED (with the cancel message, or "Operation was
 * cancelled").
 *
 * Returns: whether @future succeeded
 * Since: 0.1
 */
AFUT_API gboolean afut_glib_future_propagate (AfutFuture *future,
                                              GError **error);

/* ---- GCancellable ---- */

/**
 * afut_glib_future_get_cancellable:
 * @future: a future
 *
 * The GCancellable that goes with @future, made on the first call:
 * cancelling @future cancels it, and cancelling it, from any thread,
 * cancels @future (each by the next loop iteration).  For a future of
 * afut_gio_future_new(), its own cancellable, which the GIO call reports
 * through.  @future's loop must come from afut_glib_loop_new().
 *
 * Returns: (transfer none): the cancellable, valid while @future is
 *   pending and until the loop's next iteration after that
 * Since: 0.1
 */
AFUT_API GCancellable *afut_glib_future_get_cancellable (AfutFuture *future);

/**
 * afut_glib_future_link_cancellable:
 * @future: a pending future of a loop made by afut_glib_loop_new()
 * @cancellable: a GCancellable, from a caller say
 *
 * Cancelling @cancellable, from any thread, cancels @future (by the next
 * loop iteration), race-free: one already cancelled cancels @future at
 * once.  One way only: @cancellable may be shared with other operations,
 * so cancelling @future leaves it alone.
 *
 * Since: 0.1
 */
AFUT_API void afut_glib_future_link_cancellable (AfutFuture *future,
                                                 GCancellable *cancellable);

/* ---- GIO async calls as futures ---- */

/**
 * afut_gio_future_new:
 * @loop: (nullable): a loop made by afut_glib_loop_new(), %NULL for the
 *   current one
 *
 * The future to hand a GIO `_async` call, with its cancellable
 * (afut_glib_future_get_cancellable()) and afut_gio_ready().  Cancelling
 * it is a request, as a task's cancel is: it cancels the GCancellable and
 * stays pending until GIO calls back, so GIO is done with the buffers the
 * call was given before the awaiting task resumes; then it ends
 * cancelled, with the cancel message, whatever the call's outcome.
 * (Cancelling the GCancellable alone lets the call answer: its `_finish`
 * gives %G_IO_ERROR_CANCELLED.)  The loop's shutdown waits for GIO's
 * callback (afut_loop_hold()).
 *
 * All this once GIO has the future: its cancellable went out
 * (afut_glib_future_get_cancellable()) and GIO holds it, as every GIO
 * call holds its cancellable until it has called back.  A future GIO
 * never got (an error path that returns before the `_async` call) holds
 * nothing: cancelled, it ends at once, and the shutdown does not wait for
 * it.  Give the call the future's own cancellable: a call given none
 * cannot be waited for (its late callback is reported).
 *
 * Returns: (transfer full): the future
 * Since: 0.1
 */
AFUT_API AfutFuture *afut_gio_future_new (AfutLoop *loop);

/**
 * afut_glib_future_get_error:
 * @future: a done future
 *
 * afut_future_get_error() as a GError: on this backend they are the same.
 *
 * Returns: (nullable) (transfer none): the error, %NULL if @future has a
 *   value
 * Since: 0.1
 */
static inline const GError *
afut_glib_future_get_error (AfutFuture *future)
{
  return (const GError *) afut_future_get_error (future);
}

/**
 * afut_gio_ready:
 * @source_object: (nullable): the GIO call's source object
 * @result: the result
 * @future: (transfer full): the future to resolve, given as user data
 *
 * A GAsyncReadyCallback that resolves @future with @result (a reference
 * to it), for the awaiting task to pass to the matching `_finish`:
 *
 *   self->op = afut_gio_future_new (NULL);
 *   g_file_load_contents_async (file,
 *                               afut_glib_future_get_cancellable (self->op),
 *                               afut_gio_ready, afut_future_ref (self->op));
 *   AFUT_AWAIT (task, self->op);
 *   res = afut_future_get_pointer (afut_task_awaited (task));
 *   if (!g_file_load_contents_finish (file, res, ..., &error))
 *     AFUT_THROW (task, afut_glib_error_from_gerror (error));
 *
 * It also resolves a plain future; one done by then (cancelled) stays as
 * it is.
 *
 * Since: 0.1
 */
AFUT_API void afut_gio_ready (GObject *source_object, GAsyncResult *result,
                              gpointer future);

/* ---- futures as GTasks: publishing foo_async / foo_finish ---- */

/**
 * afut_glib_future_to_task:
 * @future: (transfer full): the future behind the operation, a task say
 * @source_object: (nullable): the GTask's source object
 * @cancellable: (nullable): the caller's cancellable: cancelling it
 *   cancels @future
 * @callback: (scope async): the caller's callback
 * @user_data: its data
 *
 * Makes @future the body of a standard `foo_async()`: when @future is
 * done, a GTask completes and @callback runs, in the thread-default main
 * context of this call.  `foo_finish()` calls afut_glib_task_propagate().
 *
 * Since: 0.1
 */
AFUT_API void afut_glib_future_to_task (AfutFuture *future,
                                        gpointer source_object,
                                        GCancellable *cancellable,
                                        GAsyncReadyCallback callback,
                                        gpointer user_data);

/**
 * afut_glib_task_propagate:
 * @result: the GAsyncResult given to a callback of afut_glib_future_to_task()
 * @error: (out) (optional): the failure: the future's error, or
 *   %G_IO_ERROR_CANCELLED
 *
 * The body of a `foo_finish()`.
 *
 * Returns: (transfer full) (nullable): the future, done with a value, to
 *   read that value from; %NULL with @error set on failure
 * Since: 0.1
 */
AFUT_API AfutFuture *afut_glib_task_propagate (GAsyncResult *result,
                                               GError **error);

/* ---- threads ---- */

/**
 * AfutThreadFunc:
 * @data: the data given to afut_to_thread()
 * @cancellable: cancelled when the future is; check it in long work
 * @error: set it and return %NULL to fail
 *
 * A blocking function run on a worker thread.
 *
 * Returns: (nullable): the result
 */
typedef gpointer (*AfutThreadFunc) (gpointer data, GCancellable *cancellable,
                                    GError **error);

/**
 * afut_to_thread:
 * @loop: (nullable): a loop made by afut_glib_loop_new(), %NULL for the
 *   current one
 * @func: the blocking function
 * @data: its data
 * @data_destroy: (nullable): frees @data once @func returned
 * @result_destroy: (nullable): frees the result
 *
 * asyncio.to_thread(): runs @func on a shared GThreadPool and resolves
 * the future on @loop's thread with what it returns (a pointer value),
 * or fails it with its GError.  Cancelling the future cancels the
 * cancellable @func is given; a result arriving after that is freed.
 * The loop's shutdown waits for the thread (afut_loop_hold()).
 *
 * Returns: (transfer full): the future
 * Since: 0.1
 */
AFUT_API AfutFuture *afut_to_thread (AfutLoop *loop, AfutThreadFunc func,
                                     gpointer data,
                                     GDestroyNotify data_destroy,
                                     GDestroyNotify result_destroy);

/* ---- values and exceptions that cross a language binding ----
 *
 * What PyGObject and gjs need to hand their own values through afut
 * unchanged (gi/'s overrides use them; C code may too): a future's value
 * as a GValue (a Python object or a JavaScript value rides in one of the
 * binding's own boxed types), and an error that carries a binding's
 * exception object, so that the same object comes back out of gather,
 * wait_for, shield, race, any, wait, as_completed and task groups, which
 * copy errors with g_error_copy(). */

/**
 * AFUT_EXCEPTION_ERROR:
 *
 * The error domain of errors that carry a binding's exception object
 * (quark "afut-exception-error-quark"): the code is
 * %AFUT_EXCEPTION_ERROR_RAISED, the message "Type: text", and the object
 * rides in the GError itself (an extended error domain: g_error_copy()
 * keeps it, g_error_free() lets it go).
 *
 * Since: 0.3
 */
#define AFUT_EXCEPTION_ERROR (afut_exception_error_quark ())

/**
 * AfutExceptionError:
 * @AFUT_EXCEPTION_ERROR_RAISED: a binding's exception (a Python exception
 *   that is not a GLib.Error, a JavaScript Error ...)
 *
 * The one code of the %AFUT_EXCEPTION_ERROR domain.
 *
 * Since: 0.3
 */
typedef enum
{
  AFUT_EXCEPTION_ERROR_RAISED
} AfutExceptionError;

/**
 * afut_exception_error_quark:
 *
 * The quark of the %AFUT_EXCEPTION_ERROR domain, which that macro calls.
 *
 * Returns: the quark of the %AFUT_EXCEPTION_ERROR domain
 * Since: 0.3
 */
AFUT_API GQuark afut_exception_error_quark (void);

/**
 * afut_exception_error_new: (skip)
 * @exception: the exception object, in a GValue (copied)
 * @message: (nullable): the error message, "Type: text"
 *
 * An %AFUT_EXCEPTION_ERROR carrying @exception.  Not for bindings, whose
 * GLib.Error copies would lose the object: they fail a future with
 * afut_future_fail_value() or end a task with afut_task_throw_value().
 *
 * Returns: (transfer full): the error, %NULL if @exception is not a
 *   GValue (reported)
 * Since: 0.3
 */
AFUT_API GError *afut_exception_error_new (const GValue *exception,
                                           const char *message);

/**
 * afut_exception_error_get_value: (skip)
 * @error: (nullable): an error
 *
 * The exception object an %AFUT_EXCEPTION_ERROR carries.  Not for
 * bindings: they read it from the future (afut_future_get_error_value()).
 *
 * Returns: (transfer none) (nullable): the object, %NULL if @error is not
 *   an %AFUT_EXCEPTION_ERROR
 * Since: 0.3
 */
AFUT_API const GValue *afut_exception_error_get_value (const GError *error);

/**
 * afut_future_resolve_value:
 * @future: a pending future
 * @value: (nullable): the value, copied; %NULL or an unset GValue for no
 *   value (Python's None)
 *
 * Completes @future with a copy of @value, held as its pointer value
 * (afut_future_get_pointer() gives the GValue).  A binding's own value
 * (a Python object, a JavaScript value) rides in the GValue unchanged.
 *
 * Returns: %TRUE if @future was pending
 * Since: 0.3
 */
AFUT_API gboolean afut_future_resolve_value (AfutFuture *future,
                                             const GValue *value);

/**
 * afut_future_resolve_value_threadsafe:
 * @future: (transfer full): a future of a loop running on this or another
 *   thread
 * @value: (nullable): the value, copied on the calling thread
 *
 * afut_future_resolve_value() from any thread, through
 * afut_future_resolve_pointer_threadsafe(): the loop wakes at once.
 *
 * Returns: %FALSE if the loop is closed (reported)
 * Since: 0.3
 */
AFUT_API gboolean afut_future_resolve_value_threadsafe (AfutFuture *future,
                                                        const GValue *value);

/**
 * afut_future_get_value:
 * @future: a done future
 * @error: return location for the future's error
 *
 * asyncio's result(): the value of a future done with one, as a GValue:
 * the GValue given to afut_future_resolve_value() (or lent by a shield,
 * wait_for, race or any), an int value as a #gint64, a double as a
 * #gdouble, a future of afut_signal_next() or afut_property_next() as
 * the signal's first argument or the property's new value (%NULL for a
 * signal without arguments), another pointer as a #gpointer.  A failed
 * or cancelled future sets @error to a copy of its error, which counts as
 * retrieving it; a pending one sets %AFUT_ERROR_INVALID_STATE.
 *
 * Returns: (transfer none) (nullable): the value, valid until the next
 *   call on this thread or until @future goes; %NULL for no value or on
 *   error
 * Since: 0.3
 */
AFUT_API const GValue *afut_future_get_value (AfutFuture *future,
                                              GError **error);

/**
 * afut_future_fail_value:
 * @future: a pending future
 * @exception: the exception object, in a GValue (copied)
 * @message: (nullable): the error message C code sees, "Type: text"
 *
 * Fails @future with an %AFUT_EXCEPTION_ERROR carrying @exception:
 * set_exception() for an exception of a binding's own.
 *
 * Returns: %TRUE if @future was pending
 * Since: 0.3
 */
AFUT_API gboolean afut_future_fail_value (AfutFuture *future,
                                          const GValue *exception,
                                          const char *message);

/**
 * afut_future_fail_error:
 * @future: a pending future
 * @error: the error, copied
 *
 * afut_future_fail() for bindings, which keep their own copy of @error.
 *
 * Returns: %TRUE if @future was pending
 * Since: 0.3
 */
AFUT_API gboolean afut_future_fail_error (AfutFuture *future,
                                          const GError *error);

/**
 * afut_future_get_error_value:
 * @future: a done future
 *
 * The exception object @future's error carries (see
 * %AFUT_EXCEPTION_ERROR).  It does not count as retrieving the error.
 *
 * Returns: (transfer none) (nullable): the object, %NULL if @future is
 *   pending, has a value or an error without one
 * Since: 0.3
 */
AFUT_API const GValue *afut_future_get_error_value (AfutFuture *future);

/**
 * afut_future_get_sub_error_value:
 * @future: a future that failed with %AFUT_ERROR_GROUP
 * @index: below afut_future_get_n_sub_errors()
 *
 * The exception object one of the grouped errors carries:
 * ExceptionGroup.exceptions[index] as it was raised.
 *
 * Returns: (transfer none) (nullable): the object, %NULL if that error
 *   carries none or @index is past the end
 * Since: 0.3
 */
AFUT_API const GValue *afut_future_get_sub_error_value (AfutFuture *future,
                                                        gsize index);

/**
 * afut_gio_future_complete:
 * @future: a future of afut_gio_future_new(), or a plain one
 * @result: the GAsyncResult the GIO call's callback got
 *
 * afut_gio_ready() for bindings, which cannot pass a future as a
 * callback's user data: called from the binding's GAsyncReadyCallback,
 * it resolves @future with @result (a GValue holding it, for
 * afut_future_get_value()), or, if @future was cancelled meanwhile, ends
 * it cancelled, now that GIO has let go of the call's buffers and
 * stream.  A future done already stays as it is.
 *
 * Since: 0.3
 */
AFUT_API void afut_gio_future_complete (AfutFuture *future,
                                        GAsyncResult *result);

/* ---- g_autoptr and typed accessors ---- */

G_DEFINE_AUTOPTR_CLEANUP_FUNC (AfutFuture, afut_future_unref)
G_DEFINE_AUTOPTR_CLEANUP_FUNC (AfutLoop, afut_loop_unref)
G_DEFINE_AUTOPTR_CLEANUP_FUNC (AfutError, afut_error_free)
G_DEFINE_AUTOPTR_CLEANUP_FUNC (AfutEvent, afut_event_unref)
G_DEFINE_AUTOPTR_CLEANUP_FUNC (AfutLock, afut_lock_unref)
G_DEFINE_AUTOPTR_CLEANUP_FUNC (AfutSemaphore, afut_semaphore_unref)
G_DEFINE_AUTOPTR_CLEANUP_FUNC (AfutCondition, afut_condition_unref)
G_DEFINE_AUTOPTR_CLEANUP_FUNC (AfutQueue, afut_queue_unref)

/**
 * AFUT_TASK_DEFINE_AUTOPTR:
 * @TypeName: a task struct type, whose first member is an #AfutTask
 *
 * Lets `g_autoptr (TypeName)` hold a reference to a task of that type,
 * dropped with afut_future_unref() at the end of the scope: for code
 * that makes a task, sets it up and hands it on (a plain function, a
 * signal handler).  Use it at file scope, once per type.  Not across an
 * await: a stackless task's step function returns at each await, so a
 * `g_autoptr` local lives only between two awaits (C forbids the jump
 * into its scope that resuming would be, and compilers say so).
 *
 * Since: 0.3
 */
#define AFUT_TASK_DEFINE_AUTOPTR(TypeName)                                    \
  static inline void afut__task_autoptr_unref_##TypeName (TypeName *task)     \
  {                                                                           \
    afut_future_unref ((AfutFuture *) task);                                  \
  }                                                                           \
  G_DEFINE_AUTOPTR_CLEANUP_FUNC (TypeName, afut__task_autoptr_unref_##TypeName)

/**
 * afut_glib_task_caught: (skip)
 * @task: the running task
 *
 * afut_task_caught() as a GError: on this backend they are the same.
 * (A C convenience; bindings use afut_task_caught().)
 *
 * Returns: (nullable) (transfer none): the error the last
 *   AFUT_AWAIT_TRY() caught, %NULL if it caught none
 * Since: 0.3
 */
static inline const GError *
afut_glib_task_caught (AfutTask *task)
{
  return (const GError *) afut_task_caught (task);
}

/* ---- GIO futures ----
 *
 * Each function below starts a GIO `_async` call and returns its future.
 * It takes the `_async` call's arguments without the cancellable, the
 * callback and the user data, runs on the running (or thread-default)
 * afut loop, and resolves with what the `_finish` call returns, already
 * taken: an object or a GBytes that the future owns (read it with
 * afut_future_get_pointer(), take it with afut_future_steal_pointer()),
 * a count as an int (afut_future_get_int()), or no value.  It fails with
 * the GError `_finish` gave, except %G_IO_ERROR_CANCELLED, which is
 * afut's cancellation.
 *
 * Cancelling the future cancels the call's GCancellable, and the future
 * stays pending until GIO calls back: when the awaiting task goes on,
 * GIO is done with the stream, the buffer, the file.  The future then
 * ends cancelled, with the cancel message, whatever the call's outcome
 * (an object it made anyway is dropped).  The loop's shutdown waits for
 * GIO's callback.  GIO calls back on the loop's main context.
 *
 * For a call not wrapped here, AFUT_GIO() starts any `_async` call and
 * AFUT_GIO_FINISH() finishes it in one line.  From Python or JavaScript,
 * afut_gio_future_new() with afut_glib_future_get_cancellable() and
 * afut_gio_ready() does the same, and afut_gio_future_get_result() gives
 * the GAsyncResult. */

/**
 * afut_gio_future_get_result:
 * @future: a done future of afut_gio_future_new(), AFUT_GIO() or
 *   afut_gio_ready()
 *
 * The GAsyncResult afut_gio_ready() resolved @future with, for the
 * `_finish` call.
 *
 * Returns: (transfer none) (nullable): the result, owned by @future;
 *   %NULL if @future is not done with one (reported)
 * Since: 0.3
 */
AFUT_API GAsyncResult *afut_gio_future_get_result (AfutFuture *future);

/**
 * AFUT_GIO:
 * @func: a GIO `_async` function, g_file_read_async for instance
 * @...: its arguments up to the cancellable, which AFUT_GIO() adds with
 *   the callback and the user data
 *
 * Starts any GIO `_async` call and gives its future, resolving with the
 * GAsyncResult (an expression; C only: bindings use
 * afut_gio_future_new(), which it calls):
 *
 *   AFUT_AWAIT (task, AFUT_GIO (g_file_read_async, self->file,
 *                               G_PRIORITY_DEFAULT));
 *   AFUT_GIO_FINISH (task, self->stream = g_file_read_finish (
 *                            self->file, AFUT_GIO_RESULT, AFUT_GIO_ERROR));
 *
 * The future is afut_gio_future_new()'s: cancelling it waits for GIO's
 * callback.  One AFUT_GIO() per full expression: two among the arguments
 * of one call could interleave, since C leaves the order in which
 * arguments are evaluated open (assign each to a variable first).
 *
 * Returns: (transfer full): the future, %NULL without a loop (reported)
 * Since: 0.3
 */
#define AFUT_GIO(func, ...)                                                   \
  (afut__gio_push (),                                                         \
   (func) (__VA_ARGS__, afut__gio_cancellable (), afut_gio_ready,             \
           afut__gio_user_data ()),                                           \
   afut__gio_pop ())

/**
 * AFUT_GIO_FINISH:
 * @task: the running task, just back from awaiting an AFUT_GIO() future
 * @call: the `_finish` call, given AFUT_GIO_RESULT and AFUT_GIO_ERROR,
 *   with its return value stored where the task keeps it
 *
 * Runs @call, and if it set its error, the task raises it (a
 * %G_IO_ERROR_CANCELLED becomes afut's cancellation), as AFUT_THROW()
 * does.  A statement.
 *
 * Since: 0.3
 */
#define AFUT_GIO_FINISH(task, call)                                           \
  do                                                                          \
    {                                                                         \
      GAsyncResult *afut__gio_result = afut_gio_future_get_result (           \
        afut_task_awaited ((AfutTask *) (task)));                             \
      GError *afut__gio_error = NULL;                                         \
      (void) (call);                                                          \
      if (afut__gio_error != NULL)                                            \
        AFUT_THROW (task, afut_glib_error_from_gerror (afut__gio_error));     \
    }                                                                         \
  while (0)

/**
 * AFUT_GIO_RESULT:
 *
 * Inside AFUT_GIO_FINISH(): the GAsyncResult to pass to `_finish`.
 *
 * Since: 0.3
 */
#define AFUT_GIO_RESULT afut__gio_result

/**
 * AFUT_GIO_ERROR:
 *
 * Inside AFUT_GIO_FINISH(): the `GError **` to pass to `_finish`.
 *
 * Since: 0.3
 */
#define AFUT_GIO_ERROR (&afut__gio_error)

/* Called by AFUT_GIO(); not for direct use (the cancellable comes as a
 * gpointer, which the scanner of the reference leaves alone). */
AFUT_API void afut__gio_push (void);
AFUT_API gpointer afut__gio_cancellable (void);
AFUT_API gpointer afut__gio_user_data (void);
AFUT_API AfutFuture *afut__gio_pop (void);

/* ---- GIO futures: files ---- */

/**
 * afut_file_load_contents:
 * @file: the file
 *
 * g_file_load_contents_async(): reads the whole file.
 *
 * Returns: (transfer full): a future resolving with the contents, a
 *   #GBytes
 * Since: 0.3
 */
AFUT_API AfutFuture *afut_file_load_contents (GFile *file);

/**
 * afut_file_read:
 * @file: the file
 * @io_priority: the I/O priority, %G_PRIORITY_DEFAULT say
 *
 * g_file_read_async(): opens the file for reading.
 *
 * Returns: (transfer full): a future resolving with a #GFileInputStream
 * Since: 0.3
 */
AFUT_API AfutFuture *afut_file_read (GFile *file, int io_priority);

/**
 * afut_file_create:
 * @file: the file
 * @flags: #GFileCreateFlags
 * @io_priority: the I/O priority
 *
 * g_file_create_async(): creates a new file for writing; it fails with
 * %G_IO_ERROR_EXISTS if there is one.
 *
 * Returns: (transfer full): a future resolving with a #GFileOutputStream
 * Since: 0.3
 */
AFUT_API AfutFuture *afut_file_create (GFile *file, GFileCreateFlags flags,
                                       int io_priority);

/**
 * afut_file_replace:
 * @file: the file
 * @etag: (nullable): the entity tag the current file must have
 * @make_backup: whether to keep a backup of the current file
 * @flags: #GFileCreateFlags
 * @io_priority: the I/O priority
 *
 * g_file_replace_async(): opens the file for replacing its contents
 * (written in place once the stream is closed).
 *
 * Returns: (transfer full): a future resolving with a #GFileOutputStream
 * Since: 0.3
 */
AFUT_API AfutFuture *afut_file_replace (GFile *file, const char *etag,
                                        gboolean make_backup,
                                        GFileCreateFlags flags,
                                        int io_priority);

/**
 * afut_file_query_info:
 * @file: the file
 * @attributes: the attributes to query, "standard::size,time::modified"
 *   say
 * @flags: #GFileQueryInfoFlags
 * @io_priority: the I/O priority
 *
 * g_file_query_info_async().
 *
 * Returns: (transfer full): a future resolving with a #GFileInfo
 * Since: 0.3
 */
AFUT_API AfutFuture *afut_file_query_info (GFile *file, const char *attributes,
                                           GFileQueryInfoFlags flags,
                                           int io_priority);

/**
 * afut_file_enumerate_children:
 * @file: a directory
 * @attributes: the attributes each child's #GFileInfo gets
 * @flags: #GFileQueryInfoFlags
 * @io_priority: the I/O priority
 *
 * g_file_enumerate_children_async(): lists a directory; read the
 * enumerator with afut_file_enumerator_next_files().
 *
 * Returns: (transfer full): a future resolving with a #GFileEnumerator
 * Since: 0.3
 */
AFUT_API AfutFuture *afut_file_enumerate_children (GFile *file,
                                                   const char *attributes,
                                                   GFileQueryInfoFlags flags,
                                                   int io_priority);

/**
 * afut_file_enumerator_next_files:
 * @enumerator: an enumerator
 * @num_files: at most how many
 * @io_priority: the I/O priority
 *
 * g_file_enumerator_next_files_async(): the next batch of children.
 *
 * Returns: (transfer full): a future resolving with a #GPtrArray of
 *   #GFileInfo (it owns them), empty once the directory is all read
 * Since: 0.3
 */
AFUT_API AfutFuture *afut_file_enumerator_next_files (
  GFileEnumerator *enumerator, int num_files, int io_priority);

/**
 * afut_file_delete:
 * @file: the file, or an empty directory
 * @io_priority: the I/O priority
 *
 * g_file_delete_async().
 *
 * Returns: (transfer full): a future resolving with no value
 * Since: 0.3
 */
AFUT_API AfutFuture *afut_file_delete (GFile *file, int io_priority);

/**
 * afut_file_make_directory:
 * @file: the directory to make
 * @io_priority: the I/O priority
 *
 * g_file_make_directory_async(); fails with %G_IO_ERROR_EXISTS if it
 * is there already.
 *
 * Returns: (transfer full): a future resolving with no value
 * Since: 0.3
 */
AFUT_API AfutFuture *afut_file_make_directory (GFile *file, int io_priority);

/**
 * afut_file_copy:
 * @source: the file to copy
 * @destination: where to
 * @flags: #GFileCopyFlags
 * @io_priority: the I/O priority
 * @progress: (nullable) (scope notified) (closure progress_data)
 *   (destroy progress_destroy): called on the loop's thread as bytes are
 *   copied
 * @progress_data: its data
 * @progress_destroy: (nullable): frees @progress_data once GIO has
 *   called back (after the last progress report)
 *
 * g_file_copy_async().
 *
 * Returns: (transfer full): a future resolving with no value
 * Since: 0.3
 */
AFUT_API AfutFuture *afut_file_copy (GFile *source, GFile *destination,
                                     GFileCopyFlags flags, int io_priority,
                                     GFileProgressCallback progress,
                                     gpointer progress_data,
                                     GDestroyNotify progress_destroy);

#if GLIB_CHECK_VERSION(2, 72, 0)
/**
 * afut_file_move:
 * @source: the file to move
 * @destination: where to
 * @flags: #GFileCopyFlags
 * @io_priority: the I/O priority
 * @progress: (nullable) (scope notified) (closure progress_data)
 *   (destroy progress_destroy): called on the loop's thread as bytes are
 *   copied (a move within one file system copies none)
 * @progress_data: its data
 * @progress_destroy: (nullable): frees @progress_data once GIO has
 *   called back
 *
 * g_file_move_async() (GLib 2.72 and later).
 *
 * Returns: (transfer full): a future resolving with no value
 * Since: 0.3
 */
AFUT_API AfutFuture *afut_file_move (GFile *source, GFile *destination,
                                     GFileCopyFlags flags, int io_priority,
                                     GFileProgressCallback progress,
                                     gpointer progress_data,
                                     GDestroyNotify progress_destroy);
#endif

/* ---- GIO futures: streams ---- */

/**
 * afut_input_stream_read: (skip)
 * @stream: the stream
 * @buffer: (array length=count) (element-type guint8): where the bytes go;
 *   it must stay valid until the future is done (a cancel waits for
 *   GIO, so a task's own buffer is safe)
 * @count: at most how many bytes
 * @io_priority: the I/O priority
 *
 * g_input_stream_read_async().  (C only: a binding's buffer would not
 * outlive the call; bindings use afut_input_stream_read_bytes().)
 *
 * Returns: (transfer full): a future resolving with the number of bytes
 *   read as an int, 0 at the end of the stream
 * Since: 0.3
 */
AFUT_API AfutFuture *afut_input_stream_read (GInputStream *stream,
                                             void *buffer, gsize count,
                                             int io_priority);

/**
 * afut_input_stream_read_bytes:
 * @stream: the stream
 * @count: at most how many bytes
 * @io_priority: the I/O priority
 *
 * g_input_stream_read_bytes_async().
 *
 * Returns: (transfer full): a future resolving with a #GBytes, empty at
 *   the end of the stream
 * Since: 0.3
 */
AFUT_API AfutFuture *afut_input_stream_read_bytes (GInputStream *stream,
                                                   gsize count,
                                                   int io_priority);

/**
 * afut_input_stream_read_all: (skip)
 * @stream: the stream
 * @buffer: where the bytes go; valid until the future is done
 * @count: how many bytes
 * @io_priority: the I/O priority
 *
 * g_input_stream_read_all_async(): reads @count bytes, fewer only at the
 * end of the stream.  (C only, as afut_input_stream_read().)
 *
 * Returns: (transfer full): a future resolving with the number of bytes
 *   read as an int
 * Since: 0.3
 */
AFUT_API AfutFuture *afut_input_stream_read_all (GInputStream *stream,
                                                 void *buffer, gsize count,
                                                 int io_priority);

/**
 * afut_input_stream_close:
 * @stream: the stream
 * @io_priority: the I/O priority
 *
 * g_input_stream_close_async().
 *
 * Returns: (transfer full): a future resolving with no value
 * Since: 0.3
 */
AFUT_API AfutFuture *afut_input_stream_close (GInputStream *stream,
                                              int io_priority);

/**
 * afut_output_stream_write_all: (skip)
 * @stream: the stream
 * @buffer: the bytes; valid until the future is done
 * @count: how many
 * @io_priority: the I/O priority
 *
 * g_output_stream_write_all_async().  (C only, as
 * afut_input_stream_read(); bindings use afut_output_stream_write_bytes().)
 *
 * Returns: (transfer full): a future resolving with the number of bytes
 *   written as an int (@count)
 * Since: 0.3
 */
AFUT_API AfutFuture *afut_output_stream_write_all (GOutputStream *stream,
                                                   const void *buffer,
                                                   gsize count,
                                                   int io_priority);

/**
 * afut_output_stream_write_bytes:
 * @stream: the stream
 * @bytes: the bytes (the call keeps a reference)
 * @io_priority: the I/O priority
 *
 * g_output_stream_write_bytes_async(): writes some of @bytes.
 *
 * Returns: (transfer full): a future resolving with the number of bytes
 *   written as an int
 * Since: 0.3
 */
AFUT_API AfutFuture *afut_output_stream_write_bytes (GOutputStream *stream,
                                                     GBytes *bytes,
                                                     int io_priority);

/**
 * afut_output_stream_splice:
 * @stream: the stream written to
 * @source: the stream read from, to its end
 * @flags: #GOutputStreamSpliceFlags
 * @io_priority: the I/O priority
 *
 * g_output_stream_splice_async().
 *
 * Returns: (transfer full): a future resolving with the number of bytes
 *   spliced as an int
 * Since: 0.3
 */
AFUT_API AfutFuture *afut_output_stream_splice (GOutputStream *stream,
                                                GInputStream *source,
                                                GOutputStreamSpliceFlags flags,
                                                int io_priority);

/**
 * afut_output_stream_close:
 * @stream: the stream
 * @io_priority: the I/O priority
 *
 * g_output_stream_close_async(): flushes and closes (for a stream of
 * afut_file_replace(), puts the new contents in place).
 *
 * Returns: (transfer full): a future resolving with no value
 * Since: 0.3
 */
AFUT_API AfutFuture *afut_output_stream_close (GOutputStream *stream,
                                               int io_priority);

/* ---- GIO futures: sockets and names ---- */

/**
 * afut_socket_client_connect:
 * @client: a socket client
 * @connectable: what to connect to: a #GSocketAddress, a
 *   #GNetworkAddress ...
 *
 * g_socket_client_connect_async().
 *
 * Returns: (transfer full): a future resolving with a #GSocketConnection
 * Since: 0.3
 */
AFUT_API AfutFuture *afut_socket_client_connect (GSocketClient *client,
                                                 GSocketConnectable *connectable);

/**
 * afut_socket_client_connect_to_host:
 * @client: a socket client
 * @host_and_port: "host:port", or a host name
 * @default_port: the port if @host_and_port has none
 *
 * g_socket_client_connect_to_host_async().
 *
 * Returns: (transfer full): a future resolving with a #GSocketConnection
 * Since: 0.3
 */
AFUT_API AfutFuture *afut_socket_client_connect_to_host (
  GSocketClient *client, const char *host_and_port, guint16 default_port);

/**
 * afut_socket_listener_accept:
 * @listener: a listener with an address added
 *
 * g_socket_listener_accept_async(): the next incoming connection.
 *
 * Returns: (transfer full): a future resolving with a #GSocketConnection
 * Since: 0.3
 */
AFUT_API AfutFuture *afut_socket_listener_accept (GSocketListener *listener);

/**
 * afut_resolver_lookup_by_name:
 * @resolver: a resolver, g_resolver_get_default() say
 * @hostname: the name
 *
 * g_resolver_lookup_by_name_async().
 *
 * Returns: (transfer full): a future resolving with a #GPtrArray of
 *   #GInetAddress (it owns them)
 * Since: 0.3
 */
AFUT_API AfutFuture *afut_resolver_lookup_by_name (GResolver *resolver,
                                                   const char *hostname);

/* ---- GIO futures: subprocesses ---- */

/**
 * afut_subprocess_wait:
 * @subprocess: the process
 *
 * g_subprocess_wait_async(): waits for it to end; then read
 * g_subprocess_get_exit_status() and the like.  Cancelling the wait
 * leaves the process running.
 *
 * Returns: (transfer full): a future resolving with no value
 * Since: 0.3
 */
AFUT_API AfutFuture *afut_subprocess_wait (GSubprocess *subprocess);

/**
 * afut_subprocess_wait_check:
 * @subprocess: the process
 *
 * g_subprocess_wait_check_async(): waits for it to end, and fails
 * (%G_SPAWN_EXIT_ERROR, the exit status as code) unless it exited with
 * status 0.
 *
 * Returns: (transfer full): a future resolving with no value
 * Since: 0.3
 */
AFUT_API AfutFuture *afut_subprocess_wait_check (GSubprocess *subprocess);

/**
 * afut_subprocess_communicate:
 * @subprocess: a process started with the pipes it is given or read
 *   through
 * @stdin_buf: (nullable): what to write to its standard input, which is
 *   then closed
 *
 * g_subprocess_communicate_async(): writes @stdin_buf, reads standard
 * output and error to their end, and waits for the process.
 *
 * Returns: (transfer full): a future resolving with the standard output
 *   as a #GBytes (%NULL if it was not piped); the standard error is
 *   afut_subprocess_communicate_get_stderr()'s
 * Since: 0.3
 */
AFUT_API AfutFuture *afut_subprocess_communicate (GSubprocess *subprocess,
                                                  GBytes *stdin_buf);

/**
 * afut_subprocess_communicate_utf8:
 * @subprocess: a process
 * @stdin_buf: (nullable): what to write to its standard input
 *
 * g_subprocess_communicate_utf8_async(): as afut_subprocess_communicate(),
 * with strings (it fails on output that is not UTF-8).
 *
 * Returns: (transfer full): a future resolving with the standard output
 *   as a string (%NULL if it was not piped); the standard error is
 *   afut_subprocess_communicate_get_stderr_utf8()'s
 * Since: 0.3
 */
AFUT_API AfutFuture *afut_subprocess_communicate_utf8 (GSubprocess *subprocess,
                                                       const char *stdin_buf);

/**
 * afut_subprocess_communicate_get_stderr:
 * @future: a done future of afut_subprocess_communicate()
 *
 * The standard error it read.
 *
 * Returns: (transfer none) (nullable): the bytes, %NULL if standard error
 *   was not piped or @future has no value (reported)
 * Since: 0.3
 */
AFUT_API GBytes *afut_subprocess_communicate_get_stderr (AfutFuture *future);

/**
 * afut_subprocess_communicate_get_stderr_utf8:
 * @future: a done future of afut_subprocess_communicate_utf8()
 *
 * The standard error it read.
 *
 * Returns: (transfer none) (nullable): the string, %NULL if standard
 *   error was not piped or @future has no value (reported)
 * Since: 0.3
 */
AFUT_API const char *afut_subprocess_communicate_get_stderr_utf8 (
  AfutFuture *future);

/* ---- GIO futures: D-Bus ---- */

/**
 * afut_dbus_connection_call:
 * @connection: the connection
 * @bus_name: (nullable): the peer's name, %NULL on a peer-to-peer
 *   connection
 * @object_path: the object
 * @interface_name: its interface
 * @method_name: the method
 * @parameters: (nullable): the arguments, a tuple (a floating one is
 *   sunk)
 * @reply_type: (nullable): the type the reply must have, %NULL for any
 * @flags: #GDBusCallFlags
 * @timeout_msec: how long to wait for the reply, -1 for D-Bus's default
 *
 * g_dbus_connection_call(): a method call.  Cancelling it stops waiting
 * for the reply (the peer may have run the method).
 *
 * Returns: (transfer full): a future resolving with the reply, a
 *   #GVariant tuple; a D-Bus error fails it (g_dbus_error_get_remote_error()
 *   reads its name)
 * Since: 0.3
 */
AFUT_API AfutFuture *afut_dbus_connection_call (
  GDBusConnection *connection, const char *bus_name, const char *object_path,
  const char *interface_name, const char *method_name, GVariant *parameters,
  const GVariantType *reply_type, GDBusCallFlags flags, int timeout_msec);

/**
 * afut_dbus_proxy_call:
 * @proxy: the proxy
 * @method_name: the method, of the proxy's interface
 * @parameters: (nullable): the arguments, a tuple (a floating one is
 *   sunk)
 * @flags: #GDBusCallFlags
 * @timeout_msec: how long to wait for the reply, -1 for the proxy's
 *   default
 *
 * g_dbus_proxy_call().
 *
 * Returns: (transfer full): a future resolving with the reply, a
 *   #GVariant tuple
 * Since: 0.3
 */
AFUT_API AfutFuture *afut_dbus_proxy_call (GDBusProxy *proxy,
                                           const char *method_name,
                                           GVariant *parameters,
                                           GDBusCallFlags flags,
                                           int timeout_msec);

/* ---- GObject signals and properties as futures ---- */

/**
 * afut_signal_next:
 * @instance: (type GObject.Object): the object
 * @detailed_signal: the signal, "clicked" or "notify::label" say
 *
 * The next emission of a signal, as a future: it connects a handler,
 * which on the first emission copies the signal's arguments, disconnects
 * and resolves the future.  Read them with afut_signal_get_arg().  If
 * the signal returns a value, the handler returns the type's default
 * (%FALSE for a boolean: the emission goes on).  Cancelling the future
 * disconnects the handler at once; an object finalized first fails it
 * with %G_IO_ERROR_CLOSED.  The object is not kept alive.  The signal
 * must be emitted on the loop's thread.
 *
 * Returns: (transfer full): a future resolving with the arguments;
 *   %NULL on a bad argument (reported)
 * Since: 0.3
 */
AFUT_API AfutFuture *afut_signal_next (gpointer instance,
                                       const char *detailed_signal);

/**
 * afut_property_next:
 * @object: (type GObject.Object): the object
 * @property_name: one of its properties
 *
 * The next change of a property (its next "notify" emission), as a
 * future that holds the value it had then: afut_property_get_value().
 * As afut_signal_next() otherwise.
 *
 * Returns: (transfer full): a future resolving with the new value;
 *   %NULL on a bad argument (reported)
 * Since: 0.3
 */
AFUT_API AfutFuture *afut_property_next (gpointer object,
                                         const char *property_name);

/**
 * afut_signal_get_n_args:
 * @future: a done future of afut_signal_next() or
 *   afut_signal_stream_next()
 *
 * How many arguments the emission had, the instance not counted.
 *
 * Returns: the number of arguments; 0 for the end of a stream
 * Since: 0.3
 */
AFUT_API guint afut_signal_get_n_args (AfutFuture *future);

/**
 * afut_signal_get_arg:
 * @future: a done future of afut_signal_next() or
 *   afut_signal_stream_next()
 * @index: which argument: 0 is the first after the instance
 *
 * One argument of the emission, as a GValue (g_value_get_int() ...).
 *
 * Returns: (transfer none) (nullable): the argument, owned by @future;
 *   %NULL out of range or for a future of another kind (reported)
 * Since: 0.3
 */
AFUT_API const GValue *afut_signal_get_arg (AfutFuture *future, guint index);

/**
 * afut_property_get_value:
 * @future: a done future of afut_property_next()
 *
 * The value the property had right after it changed.
 *
 * Returns: (transfer none) (nullable): the value, owned by @future
 * Since: 0.3
 */
AFUT_API const GValue *afut_property_get_value (AfutFuture *future);

/* ---- signal emissions as an async stream ---- */

/**
 * afut_signal_stream_new:
 * @instance: (type GObject.Object): the object: a #GFileMonitor, a
 *   button ...
 * @detailed_signal: the signal, "changed" say
 *
 * Every emission of a signal from now on, as a stream to await item by
 * item (`async for event in stream:`): afut_signal_stream_next() gives
 * a future per emission, in order; emissions that come while nobody
 * waits are kept (without bound) until asked for.  The returned future
 * stands for the stream: it stays pending while the stream is connected
 * and ends when it is closed: resolved by afut_signal_stream_close(),
 * cancelled by afut_future_cancel(), or failed with %G_IO_ERROR_CLOSED
 * when the object is finalized.  Each closes the stream: the handler is
 * disconnected, the emissions kept are still given out, then every next
 * resolves with %NULL.  Dropping the last reference closes it too.
 * Emissions must come on the loop's thread.
 *
 * Returns: (transfer full): the stream; %NULL on a bad argument
 *   (reported)
 * Since: 0.3
 */
AFUT_API AfutFuture *afut_signal_stream_new (gpointer instance,
                                             const char *detailed_signal);

/**
 * afut_signal_stream_next:
 * @stream: a stream of afut_signal_stream_new()
 *
 * The next emission, as the queue's get is: a coroutine that waits while
 * none is kept; cancelling it loses no emission.  Read the arguments
 * with afut_signal_get_arg().
 *
 * Returns: (transfer full): a future resolving with the emission's
 *   arguments, or with %NULL once the stream is closed and every kept
 *   emission given out
 * Since: 0.3
 */
AFUT_API AfutFuture *afut_signal_stream_next (AfutFuture *stream);

/**
 * afut_signal_stream_close:
 * @stream: a stream of afut_signal_stream_new()
 *
 * Disconnects the stream's handler and resolves @stream (with no
 * value); emissions kept are still given out, then nexts resolve with
 * %NULL.  Closing a closed stream does nothing.
 *
 * Since: 0.3
 */
AFUT_API void afut_signal_stream_close (AfutFuture *stream);

G_END_DECLS

#endif /* AFUT_GLIB_H */

/* ======================================================================== */
/* implementation                                                           */
/* ======================================================================== */

#if defined(AFUT_IMPLEMENTATION) && !defined(AFUT_GLIB__IMPLEMENTED)
#define AFUT_GLIB__IMPLEMENTED

#if defined(AFUT__IMPLEMENTED)
#error "afut-glib.h: afut.h was implemented without AFUT_GLIB: define AFUT_GLIB with AFUT_IMPLEMENTATION, before including afut.h"
#endif
#ifndef AFUT_GLIB
#error "afut-glib.h: define AFUT_GLIB with AFUT_IMPLEMENTATION, before including afut.h"
#endif

/* ---- the error-type seam: afut's quarks and errors are GLib's ---- */

G_STATIC_ASSERT (sizeof (AfutQuark) == sizeof (GQuark));
G_STATIC_ASSERT (sizeof (AfutError) == sizeof (GError));
G_STATIC_ASSERT (G_STRUCT_OFFSET (AfutError, domain)
                 == G_STRUCT_OFFSET (GError, domain));
G_STATIC_ASSERT (G_STRUCT_OFFSET (AfutError, code)
                 == G_STRUCT_OFFSET (GError, code));
G_STATIC_ASSERT (G_STRUCT_OFFSET (AfutError, message)
                 == G_STRUCT_OFFSET (GError, message));

#define AFUT_QUARK_FROM_STRING(s) g_quark_from_string (s)
#define AFUT_QUARK_FROM_STATIC_STRING(s) g_quark_from_static_string (s)
#define AFUT_QUARK_TO_STRING(q) g_quark_to_string (q)
#define AFUT_ERROR_NEW_LITERAL(domain, code, message)                         \
  ((AfutError *) g_error_new_literal ((domain), (code), (message)))
#define AFUT_ERROR_COPY(error)                                                \
  ((AfutError *) g_error_copy ((const GError *) (error)))
#define AFUT_ERROR_FREE(error) g_error_free ((GError *) (error))
/* An unhandled error the default exception handler reports
 * (AFUT_LOG_ERROR) is a warning: GLib's G_LOG_LEVEL_ERROR aborts. */
#define AFUT_LOG_DEFAULT(level, message)                                      \
  g_log ("afut",                                                              \
         (level) == AFUT_LOG_CRITICAL ? G_LOG_LEVEL_CRITICAL                  \
                                      : G_LOG_LEVEL_WARNING,                  \
         "%s", (message))
#define AFUT_RUN_LOOP_NEW(flags) afut_glib__run_loop_new (flags)
#define AFUT_NESTING_DEPTH() g_main_depth ()

static AfutLoop *afut_glib__run_loop_new (unsigned flags);

#define AFUT_GLIB__HOOKED
#include "afut.h"

/* ---- the GSource ---- */

#define AFUT_GLIB__DEFAULT_BUDGET_NS ((int64_t) 1000000)

typedef struct
{
  GSource source;
  AfutLoop *loop; /* weak: the loop owns the source */
  int64_t budget_ns;
} AfutGlibSource;

/* One fd as GLib polls it.  Registrations outlive the one-shot afut
 * watches on purpose: an fd awaited again in the same dispatch (a socket
 * read loop) keeps its registration, with no syscall and no wakeup of
 * the context; registrations nobody waits on any more are dropped in
 * prepare, before GLib polls. */
typedef struct
{
  int fd;
  gpointer tag;
  GIOCondition registered;
  GPtrArray *watches; /* AfutFdWatch*, waiting on this fd */
  guint index;        /* in fd_list */
} AfutGlibFd;

typedef struct
{
  GMainContext *context;
  AfutGlibSource *source;
#if AFUT__HAVE_EPOLL
  /* afut's fds, all in one epoll set: GLib polls its one fd, however many
   * fds afut waits on (see afut.h, "fd set: epoll"). */
  AfutEpollSet fd_set;
  gpointer fd_set_tag;      /* the epoll fd on the source */
  gboolean fd_set_taken;    /* its events were read in this iteration */
#else
  GHashTable *fds;          /* fd -> AfutGlibFd */
  GPtrArray *fd_list;       /* the same AfutGlibFd, dense, for walking */
#endif
  GHashTable *links;        /* every AfutGlibLink of the loop's futures */
  GHashTable *cancellables; /* AfutFuture* -> its own AfutGlibLink */
  GHashTable *gio_held;     /* AfutGioFuture* the loop holds for */
  gint closing;             /* atomic: the close destroys the source */
  GSource *repair;          /* atomic: replaces a source destroyed by hand */
} AfutGlibBackend;

/* C++ has no tentative definition of a static: the table, defined below,
 * is reached through this function. */
static const AfutBackend *afut_glib__backend_table (void);

static AfutGlibBackend *
afut_glib__backend_of (AfutLoop *loop, const char *func)
{
  /* A loop is the adapter's when its backend is; the loop's struct is
   * visible here, in the one file that implements both. */
  if (loop != NULL && loop->backend == afut_glib__backend_table ())
    return (AfutGlibBackend *) loop->backend_data;
  g_critical ("%s: the loop was not made by afut_glib_loop_new()", func);
  return NULL;
}

#if AFUT__HAVE_EPOLL

/* Reads the epoll set's events (GLib said its fd is readable) and
 * reports them to afut. */
static void
afut_glib__fd_set_take (AfutGlibBackend *b, AfutLoop *loop)
{
  int epfd = b->fd_set.epfd, n;
  bool woken = false;
  b->fd_set_taken = TRUE;
  n = afut__epoll_wait (&b->fd_set, 0);
  afut__epoll_process (&b->fd_set, loop, n, &woken);
  if (b->fd_set.epfd != epfd && b->source != NULL)
    {
      /* Rebuilt: a new epoll fd. */
      g_source_remove_unix_fd (&b->source->source, b->fd_set_tag);
      b->fd_set_tag = g_source_add_unix_fd (&b->source->source,
                                            b->fd_set.epfd, G_IO_IN);
    }
}

static void
afut_glib__fds_prepare (AfutGlibBackend *b, AfutLoop *loop)
{
  b->fd_set_taken = FALSE;
  /* Files epoll does not take (always ready) and bad fds are reported
   * here, without a poll; so is the confirmation of fds watched on
   * trust. */
  if (b->fd_set.n_pending > 0 || afut__epoll_confirm_due (&b->fd_set))
    {
      bool woken = false;
      afut__epoll_process (&b->fd_set, loop, 0, &woken);
    }
}

/* After GLib polled: reads the set's events if its fd is readable.
 * Either way a new batch starts (see "Trust for one batch" in afut.h). */
static void
afut_glib__fds_check (AfutGlibBackend *b, AfutLoop *loop)
{
  if (b->fd_set_taken)
    return;
  if (b->fd_set_tag != NULL
      && (g_source_query_unix_fd (&b->source->source, b->fd_set_tag)
          & G_IO_IN))
    afut_glib__fd_set_take (b, loop);
  else
    {
      b->fd_set.epoch++;
      b->fd_set_taken = TRUE;
    }
}

#else /* poll() through GLib: each fd on the source */

static void
afut_glib__fd_free (gpointer data)
{
  AfutGlibFd *f = (AfutGlibFd *) data;
  g_ptr_array_unref (f->watches);
  g_free (f);
}

static void
afut_glib__fds_prepare (AfutGlibBackend *b, AfutLoop *loop)
{
  GSource *source = &b->source->source;
  guint k;
  (void) loop;

  /* Registrations nobody waits on any more stop here, before the poll:
   * left in, a readable fd would make every poll return at once. */
  for (k = b->fd_list->len; k-- > 0;)
    {
      AfutGlibFd *f = (AfutGlibFd *) g_ptr_array_index (b->fd_list, k);
      GIOCondition wanted = (GIOCondition) 0;
      guint i;
      /* C++ has no |= on an enum: the sum is made as an int. */
      for (i = 0; i < f->watches->len; i++)
        wanted = (GIOCondition) (wanted
                                 | ((AfutFdWatch *) g_ptr_array_index (
                                      f->watches, i))
                                       ->events);
      if (wanted == 0)
        {
          AfutGlibFd *last;
          g_source_remove_unix_fd (source, f->tag);
          last = (AfutGlibFd *) g_ptr_array_index (b->fd_list,
                                                   b->fd_list->len - 1);
          last->index = f->index;
          g_ptr_array_remove_index_fast (b->fd_list, f->index);
          g_hash_table_remove (b->fds, GINT_TO_POINTER (f->fd));
        }
      else if (wanted != f->registered)
        {
          g_source_modify_unix_fd (source, f->tag, wanted);
          f->registered = wanted;
        }
    }
}

static void
afut_glib__fds_check (AfutGlibBackend *b, AfutLoop *loop)
{
  GSource *source = &b->source->source;
  AfutFdWatch *fired_stack[16];
  unsigned revents_stack[16];
  AfutFdWatch **fired = fired_stack;
  unsigned *revents = revents_stack;
  guint n_fired = 0, cap = 16, i, k;

  /* Collect first: reporting a watch ready unwatches it, which edits the
   * watch arrays. */
  for (k = 0; k < b->fd_list->len; k++)
    {
      AfutGlibFd *f = (AfutGlibFd *) g_ptr_array_index (b->fd_list, k);
      GIOCondition got = g_source_query_unix_fd (source, f->tag);
      if (got == 0)
        continue;
      for (i = 0; i < f->watches->len; i++)
        {
          AfutFdWatch *w = (AfutFdWatch *) g_ptr_array_index (f->watches, i);
          unsigned hit = (unsigned) got
                         & (w->events | G_IO_ERR | G_IO_HUP | G_IO_NVAL);
          if (hit == 0)
            continue;
          if (n_fired == cap)
            {
              cap *= 2;
              if (fired == fired_stack)
                {
                  fired = g_new (AfutFdWatch *, cap);
                  revents = g_new (unsigned, cap);
                  memcpy (fired, fired_stack, sizeof fired_stack);
                  memcpy (revents, revents_stack, sizeof revents_stack);
                }
              else
                {
                  fired = g_renew (AfutFdWatch *, fired, cap);
                  revents = g_renew (unsigned, revents, cap);
                }
            }
          fired[n_fired] = w;
          revents[n_fired++] = hit;
        }
    }
  for (i = 0; i < n_fired; i++)
    afut_loop_fd_ready (loop, fired[i], revents[i]);
  if (fired != fired_stack)
    {
      g_free (fired);
      g_free (revents);
    }
}

#endif /* AFUT__HAVE_EPOLL */

static gboolean
afut_glib__prepare (GSource *source, gint *timeout)
{
  AfutGlibSource *s = (AfutGlibSource *) source;
  AfutGlibBackend *b = (AfutGlibBackend *) s->loop->backend_data;
  int64_t t = -1;
  gboolean ready;

  afut_glib__fds_prepare (b, s->loop);
  ready = afut__loop_prepare (s->loop, &t, TRUE);
  if (t < 0)
    *timeout = -1;
  else
    {
      /* Round up: waking before the deadline would spin. */
      int64_t ms = (t + 999999) / 1000000;
      *timeout = ms > G_MAXINT ? G_MAXINT : (gint) ms;
    }
#if AFUT__HAVE_EPOLL
  *timeout = afut__epoll_timeout (&b->fd_set, *timeout);
#endif
  return ready;
}

static gboolean
afut_glib__check (GSource *source)
{
  AfutGlibSource *s = (AfutGlibSource *) source;
  AfutGlibBackend *b = (AfutGlibBackend *) s->loop->backend_data;
  afut_glib__fds_check (b, s->loop);
  return afut__loop_prepare (s->loop, NULL, TRUE);
}

static gboolean
afut_glib__dispatch (GSource *source, GSourceFunc callback, gpointer data)
{
  AfutGlibSource *s = (AfutGlibSource *) source;
  (void) callback;
  (void) data;
#if AFUT__HAVE_EPOLL
  /* Ready at prepare, the source was not checked: its fds were polled
   * all the same. */
  afut_glib__fds_check ((AfutGlibBackend *) s->loop->backend_data, s->loop);
#endif
  afut_loop_dispatch (s->loop, s->budget_ns);
  return G_SOURCE_CONTINUE;
}

static GSourceFuncs afut_glib__source_funcs = {
  afut_glib__prepare, afut_glib__check, afut_glib__dispatch, NULL, NULL, NULL,
};

/* ---- the backend ---- */

static int64_t
afut_glib__now (void *data)
{
  (void) data;
  return g_get_monotonic_time () * 1000;
}

static gboolean afut_gio__drop_dead_holds (AfutGlibBackend *b);

static void
afut_glib__wait (void *data, AfutLoop *loop, int64_t timeout_ns)
{
  AfutGlibBackend *b = (AfutGlibBackend *) data;
  if (loop->draining_holds && g_hash_table_size (b->gio_held) > 0
      && afut_gio__drop_dead_holds (b))
    timeout_ns = 0; /* the shutdown sees the release at once */
  /* The source's prepare gives GLib the timeout; one iteration runs
   * afut's work through the source, with everything else on the
   * context. */
  g_main_context_iteration (b->context, timeout_ns != 0);
}

static void
afut_glib__wakeup (void *data)
{
  g_main_context_wakeup (((AfutGlibBackend *) data)->context);
}

/* A run call holds the context for its whole run, as g_main_loop_run()
 * does: another thread's g_main_context_iteration() on it then waits (or
 * returns at once, not blocking) instead of dispatching afut's source on
 * the wrong thread. */
static bool
afut_glib__acquire (void *data)
{
  return g_main_context_acquire (((AfutGlibBackend *) data)->context);
}

static void
afut_glib__release (void *data)
{
  g_main_context_release (((AfutGlibBackend *) data)->context);
}

#if AFUT__HAVE_EPOLL

static bool
afut_glib__watch_fd (void *data, AfutFdWatch *watch)
{
  AfutGlibBackend *b = (AfutGlibBackend *) data;
  if (b->source == NULL)
    return false;
  if (b->fd_set.epfd < 0)
    {
      errno = EMFILE; /* epoll_create1() failed when the loop was made */
      return false;
    }
  /* No wakeup needed: the loop's thread makes watches, and the next
   * prepare or poll on it sees this one. */
  return afut__epoll_watch (&b->fd_set, watch);
}

static void
afut_glib__unwatch_fd (void *data, AfutFdWatch *watch)
{
  afut__epoll_unwatch (&((AfutGlibBackend *) data)->fd_set, watch);
}

#else

static bool
afut_glib__watch_fd (void *data, AfutFdWatch *watch)
{
  AfutGlibBackend *b = (AfutGlibBackend *) data;
  AfutGlibFd *f;
  if (b->source == NULL)
    return false;
  f = (AfutGlibFd *) g_hash_table_lookup (b->fds, GINT_TO_POINTER (watch->fd));
  if (f == NULL)
    {
      f = g_new0 (AfutGlibFd, 1);
      f->fd = watch->fd;
      f->watches = g_ptr_array_new ();
      f->registered = (GIOCondition) watch->events;
      f->tag = g_source_add_unix_fd (&b->source->source, watch->fd,
                                     f->registered);
      g_hash_table_insert (b->fds, GINT_TO_POINTER (watch->fd), f);
      f->index = b->fd_list->len;
      g_ptr_array_add (b->fd_list, f);
    }
  else if ((f->registered & watch->events) != watch->events)
    {
      f->registered = (GIOCondition) (f->registered | watch->events);
      g_source_modify_unix_fd (&b->source->source, f->tag, f->registered);
    }
  g_ptr_array_add (f->watches, watch);
  watch->backend_data = f;
  return true;
}

static void
afut_glib__unwatch_fd (void *data, AfutFdWatch *watch)
{
  AfutGlibFd *f = (AfutGlibFd *) watch->backend_data;
  (void) data;
  /* The registration stays until prepare sees nobody needs it. */
  g_ptr_array_remove_fast (f->watches, watch);
  watch->backend_data = NULL;
}

#endif /* AFUT__HAVE_EPOLL */

typedef struct AfutGlibLink AfutGlibLink;

/* A link between a future and a GCancellable.  The cancelled handler may
 * run on any thread, where the future's reference count must not be
 * touched: the link holds one reference set aside for it, which the
 * handler hands to afut_future_cancel_threadsafe() at most once.  A link
 * to the future's own cancellable also works the other way: the future
 * cancelled, the cancellable is too. */
struct AfutGlibLink
{
  AfutFuture *future;
  AfutFuture *spare; /* atomic: the reference the handler may take */
  GCancellable *cancellable;
  gulong handler;
  gboolean two_way;
};

static void afut_glib__link_release (AfutGlibLink *link, gboolean cancel);
static void afut_glib__link_future_done (AfutFuture *future, gpointer data);

static void
afut_glib__close (void *data, AfutLoop *loop)
{
  AfutGlibBackend *b = (AfutGlibBackend *) data;
  GHashTableIter iter;
  gpointer value;
  (void) loop;
  /* Links hold a reference to their future: release those of pending
   * futures, or such a future would keep the closed loop's memory
   * forever.  A done future's link has its done callback queued: that
   * callback releases it in the loop's last drain. */
  g_hash_table_iter_init (&iter, b->links);
  while (g_hash_table_iter_next (&iter, &value, NULL))
    {
      AfutGlibLink *link = (AfutGlibLink *) value;
      if (afut_future_remove_done_callback (link->future,
                                            afut_glib__link_future_done, link)
          == 0)
        continue;
      if (g_hash_table_lookup (b->cancellables, link->future) == link)
        g_hash_table_remove (b->cancellables, link->future);
      g_hash_table_iter_remove (&iter);
      afut_glib__link_release (link, FALSE);
    }
  g_atomic_int_set (&b->closing, TRUE);
  {
    GSource *repair = (GSource *) g_atomic_pointer_get (&b->repair);
    if (repair != NULL)
      g_source_destroy (repair); /* its notify drops the reference */
  }
  if (b->source != NULL)
    {
      g_source_destroy (&b->source->source);
      g_source_unref (&b->source->source);
      b->source = NULL;
    }
#if !AFUT__HAVE_EPOLL
  g_ptr_array_set_size (b->fd_list, 0);
  g_hash_table_remove_all (b->fds);
#endif
}

static void
afut_glib__free (void *data)
{
  AfutGlibBackend *b = (AfutGlibBackend *) data;
#if AFUT__HAVE_EPOLL
  afut__epoll_set_clear (&b->fd_set);
#else
  g_ptr_array_unref (b->fd_list);
  g_hash_table_unref (b->fds);
#endif
  g_hash_table_unref (b->links);
  g_hash_table_unref (b->cancellables);
  g_hash_table_unref (b->gio_held);
  g_main_context_unref (b->context);
  g_free (b);
}

static const AfutBackend afut_glib__backend = {
  afut_glib__now,      afut_glib__wait,       afut_glib__wakeup,
  afut_glib__watch_fd, afut_glib__unwatch_fd, afut_glib__free,
  afut_glib__close,    afut_glib__acquire,    afut_glib__release,
};

static const AfutBackend *
afut_glib__backend_table (void)
{
  return &afut_glib__backend;
}

static gboolean
afut_glib__no_callback (gpointer data)
{
  (void) data;
  return G_SOURCE_CONTINUE;
}

static void afut_glib__source_lost (gpointer data);

static AfutGlibSource *
afut_glib__source_new (AfutGlibBackend *b, AfutLoop *loop, int priority,
                       int64_t budget_ns)
{
  AfutGlibSource *s = (AfutGlibSource *) g_source_new (
    &afut_glib__source_funcs, sizeof (AfutGlibSource));
  s->loop = loop;
  s->budget_ns = budget_ns;
  g_source_set_name (&s->source, "afut");
  g_source_set_priority (&s->source, priority);
  /* A source is blocked while it dispatches: GLib takes its fds out of
   * the poll set and puts them back, waking the context each time, which
   * doubles the syscalls of an fd ping-pong.  afut guards against its own
   * recursion (afut_loop_prepare answers false while the loop runs). */
  g_source_set_can_recurse (&s->source, TRUE);
  /* Dispatch ignores the callback; its destroy notify is how afut learns
   * that someone destroyed the source (g_source_destroy() on
   * afut_glib_loop_get_source()), which would leave the loop asleep. */
  g_source_set_callback (&s->source, afut_glib__no_callback, b,
                         afut_glib__source_lost);
#if AFUT__HAVE_EPOLL
  if (b->fd_set.epfd >= 0)
    b->fd_set_tag = g_source_add_unix_fd (&s->source, b->fd_set.epfd,
                                          G_IO_IN);
#endif
  return s;
}

/* On the context's thread: a source destroyed by hand is replaced, with
 * its priority, budget and fd registrations, so the loop runs on; the
 * misuse is reported. */
static gboolean
afut_glib__repair (gpointer data)
{
  AfutGlibBackend *b = (AfutGlibBackend *) data;
  AfutGlibSource *old = b->source, *s;
#if !AFUT__HAVE_EPOLL
  guint k;
#endif
  if (old == NULL || g_atomic_int_get (&b->closing)
      || !g_source_is_destroyed (&old->source))
    return G_SOURCE_REMOVE;
  if (!afut__on_loop_thread (old->loop))
    {
      /* Like the source's prepare: this thread takes the loop over, or
       * leaves the repair to the thread that runs it. */
      if (!afut__loop_claim (old->loop, "afut_glib_loop_get_source", false))
        return G_SOURCE_CONTINUE;
      afut__loop_unclaim (old->loop);
    }
  afut__log (AFUT_LOG_CRITICAL,
             "the GSource of an afut loop was destroyed (g_source_destroy() "
             "on afut_glib_loop_get_source()?): the loop goes on with a new "
             "one; end a loop with afut_loop_unref()");
  s = afut_glib__source_new (b, old->loop,
                             g_source_get_priority (&old->source),
                             old->budget_ns);
#if !AFUT__HAVE_EPOLL
  /* (With epoll, the new source has the one epoll fd already.) */
  for (k = 0; k < b->fd_list->len; k++)
    {
      AfutGlibFd *f = (AfutGlibFd *) g_ptr_array_index (b->fd_list, k);
      f->tag = g_source_add_unix_fd (&s->source, f->fd, f->registered);
    }
#endif
  b->source = s;
  g_source_attach (&s->source, b->context);
  g_source_unref (&old->source);
  return G_SOURCE_REMOVE;
}

static void
afut_glib__repair_done (gpointer data)
{
  AfutGlibBackend *b = (AfutGlibBackend *) data;
  GSource *repair = (GSource *) g_atomic_pointer_exchange (&b->repair, NULL);
  if (repair != NULL)
    g_source_unref (repair);
}

/* The destroy notify of the source's callback: the source was destroyed,
 * on any thread, with the context unlocked.  Unless afut's own close did
 * it, a repair goes to the context (attaching wakes it). */
static void
afut_glib__source_lost (gpointer data)
{
  AfutGlibBackend *b = (AfutGlibBackend *) data;
  GSource *repair;
  if (g_atomic_int_get (&b->closing))
    return;
  repair = g_idle_source_new ();
  g_source_set_name (repair, "afut repair");
  g_source_set_priority (repair, G_PRIORITY_HIGH);
  g_source_set_callback (repair, afut_glib__repair, b, afut_glib__repair_done);
  if (!g_atomic_pointer_compare_and_exchange (&b->repair, NULL, repair))
    {
      g_source_unref (repair); /* one is on its way */
      return;
    }
  g_source_attach (repair, b->context);
}

AfutLoop *
afut_glib_loop_new (GMainContext *context, unsigned flags)
{
  AfutGlibBackend *b = g_new0 (AfutGlibBackend, 1);
  AfutGlibSource *s;
  AfutLoop *loop;

  b->context = g_main_context_ref (context != NULL ? context
                                                   : g_main_context_default ());
#if AFUT__HAVE_EPOLL
  if (!afut__epoll_set_init (&b->fd_set, -1))
    g_warning ("afut_glib_loop_new: no epoll set, fds cannot be awaited: "
               "%s",
               g_strerror (errno));
#else
  b->fds = g_hash_table_new_full (NULL, NULL, NULL, afut_glib__fd_free);
  b->fd_list = g_ptr_array_new ();
#endif
  b->links = g_hash_table_new (NULL, NULL);
  b->cancellables = g_hash_table_new (NULL, NULL);
  b->gio_held = g_hash_table_new (NULL, NULL);
  loop = afut_loop_new_with_backend (&afut_glib__backend, b, flags);
  if (loop == NULL)
    {
      afut_glib__free (b);
      return NULL;
    }
  s = afut_glib__source_new (b, loop, G_PRIORITY_DEFAULT,
                             AFUT_GLIB__DEFAULT_BUDGET_NS);
  g_source_attach (&s->source, b->context);
  b->source = s;
  return loop;
}

static AfutLoop *
afut_glib__run_loop_new (unsigned flags)
{
  GMainContext *context = g_main_context_ref_thread_default ();
  AfutLoop *loop = afut_glib_loop_new (context, flags);
  g_main_context_unref (context);
  return loop;
}

GMainContext *
afut_glib_loop_get_context (AfutLoop *loop)
{
  AfutGlibBackend *b = afut_glib__backend_of (loop, G_STRFUNC);
  return b != NULL ? b->context : NULL;
}

GSource *
afut_glib_loop_get_source (AfutLoop *loop)
{
  AfutGlibBackend *b = afut_glib__backend_of (loop, G_STRFUNC);
  if (b != NULL)
    AFUT__RETURN_IF_WRONG_THREAD (loop, NULL, NULL);
  return b != NULL && b->source != NULL ? &b->source->source : NULL;
}

void
afut_glib_loop_set_priority (AfutLoop *loop, int priority)
{
  GSource *source;
  g_return_if_fail (afut_glib__backend_of (loop, G_STRFUNC) != NULL);
  AFUT__RETURN_IF_WRONG_THREAD (loop, NULL, );
  source = afut_glib_loop_get_source (loop);
  g_return_if_fail (source != NULL);
  g_source_set_priority (source, priority);
}

void
afut_glib_loop_set_budget (AfutLoop *loop, int64_t budget_ns)
{
  GSource *source;
  g_return_if_fail (afut_glib__backend_of (loop, G_STRFUNC) != NULL);
  AFUT__RETURN_IF_WRONG_THREAD (loop, NULL, );
  source = afut_glib_loop_get_source (loop);
  g_return_if_fail (source != NULL);
  g_return_if_fail (budget_ns >= 0);
  ((AfutGlibSource *) source)->budget_ns = budget_ns;
}

/* ---- errors ---- */

AfutError *
afut_glib_error_from_gerror (GError *error)
{
  g_return_val_if_fail (error != NULL, NULL);
  if (g_error_matches (error, G_IO_ERROR, G_IO_ERROR_CANCELLED))
    {
      AfutError *cancelled = afut_error_new_literal (
        AFUT_ERROR, AFUT_ERROR_CANCELLED, error->message);
      g_error_free (error);
      return cancelled;
    }
  return (AfutError *) error;
}

gboolean
afut_glib_future_propagate (AfutFuture *future, GError **error)
{
  const AfutError *e;
  g_return_val_if_fail (future != NULL, FALSE);
  g_return_val_if_fail (error == NULL || *error == NULL, FALSE);
  AFUT__RETURN_IF_WRONG_THREAD (future->loop, NULL, FALSE);
  g_return_val_if_fail (afut_future_is_done (future), FALSE);
  e = afut_future_get_error (future);
  if (e == NULL)
    return TRUE;
  if (afut_error_is_cancelled (e))
    g_set_error_literal (error, G_IO_ERROR, G_IO_ERROR_CANCELLED,
                         e->message[0] != '\0' ? e->message
                                               : "Operation was cancelled");
  else if (error != NULL)
    *error = g_error_copy ((const GError *) e);
  return FALSE;
}

/* ---- GCancellable links ---- */

static void
afut_glib__link_cancelled (GCancellable *cancellable, gpointer data)
{
  AfutGlibLink *link = (AfutGlibLink *) data;
  AfutFuture *spare;
  (void) cancellable;
  spare = (AfutFuture *) g_atomic_pointer_exchange (&link->spare, NULL);
  if (spare != NULL)
    afut_future_cancel_threadsafe (spare, NULL);
}

static void
afut_glib__link_release (AfutGlibLink *link, gboolean cancel)
{
  AfutFuture *spare;
  /* Waits for a handler running on another thread to finish. */
  g_cancellable_disconnect (link->cancellable, link->handler);
  if (cancel)
    g_cancellable_cancel (link->cancellable);
  spare = (AfutFuture *) g_atomic_pointer_exchange (&link->spare, NULL);
  afut_future_unref (spare);
  g_object_unref (link->cancellable);
  g_free (link);
}

static void
afut_glib__link_future_done (AfutFuture *future, gpointer data)
{
  AfutGlibLink *link = (AfutGlibLink *) data;
  AfutGlibBackend *b = (AfutGlibBackend *) future->loop->backend_data;
  if (g_hash_table_lookup (b->cancellables, future) == link)
    g_hash_table_remove (b->cancellables, future);
  g_hash_table_remove (b->links, link);
  afut_glib__link_release (link, link->two_way
                                   && afut_future_is_cancelled (future));
}

static AfutGlibLink *
afut_glib__link_new (AfutGlibBackend *b, AfutFuture *future,
                     GCancellable *cancellable, gboolean two_way)
{
  AfutGlibLink *link = g_new0 (AfutGlibLink, 1);
  link->future = future;
  link->spare = afut_future_ref (future);
  link->cancellable = (GCancellable *) g_object_ref (cancellable);
  link->two_way = two_way;
  g_hash_table_add (b->links, link);
  afut_future_add_done_callback (future, afut_glib__link_future_done, link);
  /* Runs the handler at once if @cancellable is already cancelled. */
  link->handler = g_cancellable_connect (
    cancellable, G_CALLBACK (afut_glib__link_cancelled), link, NULL);
  return link;
}

static void
afut_glib__unref_later (AfutFuture *future, gpointer data)
{
  (void) future;
  g_object_unref (data);
}

/* ---- GIO futures: cancelling is a request GIO answers ---- */

/* GIO has a future once its cancellable went out (the documented way to
 * start the call) and GIO holds that cancellable: every GIO call keeps
 * its cancellable until it has called back.  Only then does a cancel wait
 * for GIO's callback, and the loop's shutdown with it: a future that GIO
 * never got (an error path before the _async call) is cancelled at once
 * and holds nothing, since no callback will ever come. */
typedef struct
{
  AfutCustomFuture custom;
  GCancellable *cancellable;
  gboolean held;       /* the loop waits for GIO's callback */
  gboolean handed;     /* the cancellable went out */
  gboolean called_back;
  gboolean cancelled_early; /* at once: GIO did not hold the cancellable */
  gboolean cancel_requested;
  char *cancel_message;
  /* A typed wrapper's: what the call alone needs, freed once GIO called
   * back (a progress closure); and a second result an accessor reads,
   * tagged with that accessor's kind (a process's standard error). */
  gpointer call_data;
  GDestroyNotify call_data_destroy;
  gpointer extra;
  GDestroyNotify extra_destroy;
  const void *extra_tag;
  GType value_gtype; /* a typed wrapper's value, for bindings */
} AfutGioFuture;

static void
afut_gio__release (AfutGioFuture *g)
{
  if (g->held)
    {
      AfutGlibBackend *b
        = (AfutGlibBackend *) g->custom.future.loop->backend_data;
      g->held = FALSE;
      g_hash_table_remove (b->gio_held, g);
      afut_loop_release (g->custom.future.loop);
    }
}

static gboolean
afut_gio__in_gio (AfutGioFuture *g)
{
  return g->handed && !g->called_back
         && g_atomic_int_get (&G_OBJECT (g->cancellable)->ref_count) > 1;
}

static bool
afut_gio__cancel (AfutFuture *future, const char *message)
{
  AfutGioFuture *g = (AfutGioFuture *) future;
  if (g->cancel_requested)
    return true;
  g->cancel_requested = TRUE;
  g->cancel_message = g_strdup (message);
  g_cancellable_cancel (g->cancellable);
  if (!afut_gio__in_gio (g))
    {
      g->cancelled_early = TRUE;
      afut_gio__release (g);
      afut_future_fail (future,
                        afut_error_new_literal (AFUT_ERROR,
                                                AFUT_ERROR_CANCELLED,
                                                message != NULL ? message
                                                                : ""));
    }
  return true;
}

/* The loop's shutdown runs on for the holds alone: the ones of futures
 * GIO does not have (their cancellable went out, but not to GIO) would
 * never be released.  True if it let go of one. */
static gboolean
afut_gio__drop_dead_holds (AfutGlibBackend *b)
{
  GHashTableIter iter;
  gpointer key;
  GPtrArray *dead = NULL;
  guint i;
  g_hash_table_iter_init (&iter, b->gio_held);
  while (g_hash_table_iter_next (&iter, &key, NULL))
    if (!afut_gio__in_gio ((AfutGioFuture *) key))
      {
        if (dead == NULL)
          dead = g_ptr_array_new ();
        g_ptr_array_add (dead, key);
      }
  if (dead == NULL)
    return FALSE;
  for (i = 0; i < dead->len; i++)
    afut_gio__release ((AfutGioFuture *) g_ptr_array_index (dead, i));
  g_ptr_array_unref (dead);
  return TRUE;
}

static void
afut_gio__finalize (AfutFuture *future)
{
  AfutGioFuture *g = (AfutGioFuture *) future;
  afut_gio__release (g);
  g_object_unref (g->cancellable);
  g_free (g->cancel_message);
  if (g->call_data_destroy != NULL)
    g->call_data_destroy (g->call_data);
  if (g->extra_destroy != NULL && g->extra != NULL)
    g->extra_destroy (g->extra);
}

static const AfutFutureFuncs afut_gio__funcs = {
  afut_gio__cancel,
  afut_gio__finalize,
};

static AfutGioFuture *
afut_gio__cast (AfutFuture *future)
{
  return future->kind == AFUT__KIND_CUSTOM
             && ((AfutCustomFuture *) future)->funcs == &afut_gio__funcs
           ? (AfutGioFuture *) future
           : NULL;
}

/* The GType of a typed wrapper's pointer value (an object, a GBytes ...),
 * G_TYPE_INVALID for any other future: afut_future_get_value() gives
 * bindings the value as that type. */
static GType
afut_gio__value_gtype (AfutFuture *future)
{
  AfutGioFuture *g = afut_gio__cast (future);
  return g != NULL ? g->value_gtype : G_TYPE_INVALID;
}

AfutFuture *
afut_gio_future_new (AfutLoop *loop)
{
  AfutFuture *future;
  AfutGioFuture *g;
  if (loop != NULL)
    AFUT__RETURN_IF_WRONG_THREAD (loop, NULL, NULL);
  future = afut_future_new_custom (loop, &afut_gio__funcs,
                                   sizeof (AfutGioFuture));
  if (future == NULL)
    return NULL;
  g = (AfutGioFuture *) future;
  g->cancellable = g_cancellable_new ();
  return future;
}

GCancellable *
afut_glib_future_get_cancellable (AfutFuture *future)
{
  AfutGlibBackend *b;
  AfutGlibLink *link;
  GCancellable *cancellable;

  g_return_val_if_fail (future != NULL, NULL);
  AFUT__RETURN_IF_WRONG_THREAD (future->loop, NULL, NULL);
  if (afut_gio__cast (future) != NULL)
    {
      /* Handed to a GIO call: from now on the loop's shutdown waits for
       * its callback, while GIO holds the cancellable. */
      AfutGioFuture *g = afut_gio__cast (future);
      if (!g->handed && !afut_future_is_done (future))
        {
          b = (AfutGlibBackend *) future->loop->backend_data;
          g->handed = TRUE;
          g->held = TRUE;
          g_hash_table_add (b->gio_held, g);
          afut_loop_hold (future->loop);
        }
      return g->cancellable;
    }
  b = afut_glib__backend_of (afut_future_get_loop (future), G_STRFUNC);
  g_return_val_if_fail (b != NULL, NULL);
  link = (AfutGlibLink *) g_hash_table_lookup (b->cancellables, future);
  if (link != NULL)
    return link->cancellable;
  cancellable = g_cancellable_new ();
  if (afut_future_is_done (future))
    {
      /* Nothing left to link: the cancellable tells how the future ended
       * and lasts until the loop's next iteration (GIO calls take their
       * own reference). */
      if (afut_future_is_cancelled (future))
        g_cancellable_cancel (cancellable);
      afut_future_add_done_callback (future, afut_glib__unref_later,
                                     cancellable);
      return cancellable;
    }
  link = afut_glib__link_new (b, future, cancellable, TRUE);
  g_object_unref (cancellable);
  g_hash_table_insert (b->cancellables, future, link);
  return link->cancellable;
}

void
afut_glib_future_link_cancellable (AfutFuture *future,
                                   GCancellable *cancellable)
{
  AfutGlibBackend *b;
  g_return_if_fail (future != NULL);
  g_return_if_fail (G_IS_CANCELLABLE (cancellable));
  AFUT__RETURN_IF_WRONG_THREAD (future->loop, NULL, );
  b = afut_glib__backend_of (afut_future_get_loop (future), G_STRFUNC);
  g_return_if_fail (b != NULL);
  if (afut_future_is_done (future))
    return;
  afut_glib__link_new (b, future, cancellable, FALSE);
  /* Already cancelled: at once, not by the next iteration (the handler's
   * posted cancel then finds the future done). */
  if (g_cancellable_is_cancelled (cancellable))
    afut_future_cancel (future, NULL);
}

/* ---- GIO async calls ---- */

void
afut_gio_ready (GObject *source_object, GAsyncResult *result, gpointer future)
{
  AfutFuture *f = (AfutFuture *) future;
  AfutGioFuture *g;
  (void) source_object;
  g_return_if_fail (f != NULL);
  g_return_if_fail (G_IS_ASYNC_RESULT (result));
  AFUT__RETURN_IF_WRONG_THREAD (f->loop, NULL, );
  g = afut_gio__cast (f);
  if (g != NULL)
    g->called_back = TRUE;
  if (g != NULL && g->cancelled_early)
    afut__log (AFUT_LOG_WARNING,
               "afut_gio_ready: a GIO call called back after its future was "
               "cancelled without waiting for it: the call was not given the "
               "future's cancellable (afut_glib_future_get_cancellable())");
  if (afut_future_is_done (f) || f->loop->closed)
    ;
  else if (g != NULL && g->cancel_requested)
    /* Asked to cancel: GIO has let go now; the awaiter gets afut's
     * cancellation, with its message, whatever the call's own outcome. */
    afut_future_fail (f, afut_error_new_literal (AFUT_ERROR,
                                                 AFUT_ERROR_CANCELLED,
                                                 g->cancel_message != NULL
                                                   ? g->cancel_message
                                                   : ""));
  else
    afut_future_resolve_pointer (f, g_object_ref (result), g_object_unref);
  if (g != NULL)
    afut_gio__release (g);
  afut_future_unref (f);
}

/* ---- futures as GTasks ---- */

/* Marks the GTasks made here, for afut_glib_task_propagate() to check. */
static const char afut_glib__task_tag = 0;

static void
afut_glib__task_future_done (AfutFuture *future, gpointer data)
{
  GTask *task = G_TASK (data);
  GError *error = NULL;
  if (afut_glib_future_propagate (future, &error))
    g_task_return_pointer (task, afut_future_ref (future),
                           (GDestroyNotify) afut_future_unref);
  else
    g_task_return_error (task, error);
  g_object_unref (task);
}

void
afut_glib_future_to_task (AfutFuture *future, gpointer source_object,
                          GCancellable *cancellable,
                          GAsyncReadyCallback callback, gpointer user_data)
{
  GTask *task;
  g_return_if_fail (future != NULL);
  g_return_if_fail (cancellable == NULL || G_IS_CANCELLABLE (cancellable));
  AFUT__RETURN_IF_WRONG_THREAD (future->loop, NULL, );
  task = g_task_new (source_object, cancellable, callback, user_data);
  g_task_set_source_tag (task, (gpointer) &afut_glib__task_tag);
  g_task_set_check_cancellable (task, FALSE);
  if (cancellable != NULL)
    afut_glib_future_link_cancellable (future, cancellable);
  afut_future_add_done_callback (future, afut_glib__task_future_done, task);
  afut_future_unref (future);
}

AfutFuture *
afut_glib_task_propagate (GAsyncResult *result, GError **error)
{
  g_return_val_if_fail (G_IS_TASK (result), NULL);
  g_return_val_if_fail (g_task_get_source_tag (G_TASK (result))
                          == (gpointer) &afut_glib__task_tag,
                        NULL);
  return (AfutFuture *) g_task_propagate_pointer (G_TASK (result), error);
}

/* ---- threads ---- */

/* A job holds the loop (its shutdown waits for the thread, as asyncio's
 * does for its executor) and a future reference; both go back on the
 * loop's thread, in afut_glib__job_done. */
typedef struct
{
  AfutLoop *loop;
  AfutFuture *future;
  AfutThreadFunc func;
  gpointer data;
  GDestroyNotify data_destroy;
  gpointer result;
  GDestroyNotify result_destroy;
  GError *error;
  GCancellable *cancellable;
} AfutGlibJob;

static void
afut_glib__job_done (void *data)
{
  AfutGlibJob *job = (AfutGlibJob *) data;
  if (afut_future_is_done (job->future))
    {
      /* Cancelled while the thread worked: the late outcome goes. */
      if (job->result != NULL && job->result_destroy != NULL)
        job->result_destroy (job->result);
      g_clear_error (&job->error);
    }
  else if (job->error != NULL)
    afut_future_fail (job->future, afut_glib_error_from_gerror (job->error));
  else
    afut_future_resolve_pointer (job->future, job->result,
                                 job->result_destroy);
  afut_loop_release (job->loop);
  afut_future_unref (job->future);
  g_object_unref (job->cancellable);
  g_free (job);
}

static void
afut_glib__job_run (gpointer data, gpointer pool_data)
{
  AfutGlibJob *job = (AfutGlibJob *) data;
  (void) pool_data;
  job->result = job->func (job->data, job->cancellable, &job->error);
  if (job->error != NULL && job->result != NULL
      && job->result_destroy != NULL)
    {
      job->result_destroy (job->result);
      job->result = NULL;
    }
  if (job->data_destroy != NULL)
    job->data_destroy (job->data);
  /* The hold keeps the loop open until this has run. */
  afut_loop_call_soon_threadsafe (job->loop, afut_glib__job_done, job);
}

static GThreadPool *
afut_glib__pool (void)
{
  static gsize once;
  static GThreadPool *pool;
  if (g_once_init_enter (&once))
    {
      /* asyncio's default executor: min(32, CPUs + 4) threads. */
      gint n = (gint) MIN (32, g_get_num_processors () + 4);
      pool = g_thread_pool_new (afut_glib__job_run, NULL, n, FALSE, NULL);
      g_once_init_leave (&once, 1);
    }
  return pool;
}

AfutFuture *
afut_to_thread (AfutLoop *loop, AfutThreadFunc func, gpointer data,
                GDestroyNotify data_destroy, GDestroyNotify result_destroy)
{
  AfutFuture *future;
  AfutGlibJob *job;
  g_return_val_if_fail (func != NULL, NULL);
  if (loop != NULL)
    AFUT__RETURN_IF_WRONG_THREAD (loop, NULL, NULL);
  future = afut_future_new (loop);
  if (future == NULL)
    return NULL;
  loop = afut_future_get_loop (future);
  if (afut_glib__backend_of (loop, G_STRFUNC) == NULL)
    {
      afut_future_unref (future);
      return NULL;
    }
  job = g_new0 (AfutGlibJob, 1);
  job->loop = loop;
  job->future = afut_future_ref (future);
  job->func = func;
  job->data = data;
  job->data_destroy = data_destroy;
  job->result_destroy = result_destroy;
  job->cancellable = (GCancellable *) g_object_ref (
    afut_glib_future_get_cancellable (future));
  afut_loop_hold (loop);
  g_thread_pool_push (afut_glib__pool (), job, NULL);
  return future;
}

/* ---- values and exceptions that cross a language binding ---- */

/* Every GValue a future holds as its pointer value, so that one can be
 * told from another pointer (a C future's) when it is read back: futures
 * that follow another one (wait_for, shield, race) lend its pointer
 * without its destroy notify. */
static GMutex afut_glib__values_lock;
static GHashTable *afut_glib__values;

static GValue *
afut_glib__value_new (const GValue *src)
{
  GValue *v = g_new0 (GValue, 1);
  g_value_init (v, G_VALUE_TYPE (src));
  g_value_copy (src, v);
  g_mutex_lock (&afut_glib__values_lock);
  if (afut_glib__values == NULL)
    afut_glib__values = g_hash_table_new (NULL, NULL);
  g_hash_table_add (afut_glib__values, v);
  g_mutex_unlock (&afut_glib__values_lock);
  return v;
}

static void
afut_glib__value_free (void *data)
{
  GValue *v = (GValue *) data;
  g_mutex_lock (&afut_glib__values_lock);
  g_hash_table_remove (afut_glib__values, v);
  if (g_hash_table_size (afut_glib__values) == 0)
    g_clear_pointer (&afut_glib__values, g_hash_table_unref);
  g_mutex_unlock (&afut_glib__values_lock);
  /* A binding's value (a Python object) is released by the binding's own
   * boxed free function, which takes the interpreter's lock itself. */
  g_value_unset (v);
  g_free (v);
}

static gboolean
afut_glib__value_known (gconstpointer p)
{
  gboolean known;
  g_mutex_lock (&afut_glib__values_lock);
  known = afut_glib__values != NULL
          && g_hash_table_contains (afut_glib__values, p);
  g_mutex_unlock (&afut_glib__values_lock);
  return known;
}

/* The int, double or plain pointer value handed out last on this
 * thread: bindings copy it at once (PyGObject 3.42 would leak a GValue
 * returned with transfer full). */
static void
afut_glib__scratch_free (gpointer data)
{
  GValue *v = (GValue *) data;
  if (G_IS_VALUE (v))
    g_value_unset (v);
  g_free (v);
}

static GPrivate afut_glib__scratch = G_PRIVATE_INIT (afut_glib__scratch_free);

static GValue *
afut_glib__scratch_value (GType type)
{
  GValue *v = (GValue *) g_private_get (&afut_glib__scratch);
  if (v == NULL)
    {
      v = g_new0 (GValue, 1);
      g_private_set (&afut_glib__scratch, v);
    }
  if (G_IS_VALUE (v))
    g_value_unset (v);
  return g_value_init (v, type);
}

/* The extended error domain (GLib 2.68): each error has a GValue in
 * front of it, which g_error_copy() copies and g_error_free() unsets.
 * G_DEFINE_EXTENDED_ERROR spelled out, where the private part is found
 * as that macro finds it. */
typedef struct
{
  GValue value;
} AfutExceptionErrorPrivate;

static AfutExceptionErrorPrivate *
afut_exception_error__private (const GError *error)
{
  const gsize sa = 2 * sizeof (gsize);
  const gsize as = (sizeof (AfutExceptionErrorPrivate) + (sa - 1)) & -sa;
  return (AfutExceptionErrorPrivate *) (void *) (((guint8 *) error) - as);
}

static void
afut_exception_error__init (GError *error)
{
  (void) error; /* zeroed: an unset GValue */
}

static void
afut_exception_error__copy (const GError *src, GError *dest)
{
  const GValue *from = &afut_exception_error__private (src)->value;
  GValue *to = &afut_exception_error__private (dest)->value;
  if (G_IS_VALUE (from))
    {
      g_value_init (to, G_VALUE_TYPE (from));
      g_value_copy (from, to);
    }
}

static void
afut_exception_error__clear (GError *error)
{
  GValue *v = &afut_exception_error__private (error)->value;
  if (G_IS_VALUE (v))
    g_value_unset (v);
}

GQuark
afut_exception_error_quark (void)
{
  static gsize q = 0;
  if (g_once_init_enter (&q))
    {
      GQuark domain = g_error_domain_register_static (
        "afut-exception-error-quark", sizeof (AfutExceptionErrorPrivate),
        afut_exception_error__init, afut_exception_error__copy,
        afut_exception_error__clear);
      g_once_init_leave (&q, (gsize) domain);
    }
  return (GQuark) q;
}

GError *
afut_exception_error_new (const GValue *exception, const char *message)
{
  GError *error;
  GValue *v;
  g_return_val_if_fail (G_IS_VALUE (exception), NULL);
  error = g_error_new_literal (AFUT_EXCEPTION_ERROR,
                               AFUT_EXCEPTION_ERROR_RAISED,
                               message != NULL ? message : "");
  v = &afut_exception_error__private (error)->value;
  g_value_init (v, G_VALUE_TYPE (exception));
  g_value_copy (exception, v);
  return error;
}

const GValue *
afut_exception_error_get_value (const GError *error)
{
  const GValue *v;
  if (error == NULL || error->domain != AFUT_EXCEPTION_ERROR)
    return NULL;
  v = &afut_exception_error__private (error)->value;
  return G_IS_VALUE (v) ? v : NULL;
}

gboolean
afut_future_resolve_value (AfutFuture *future, const GValue *value)
{
  g_return_val_if_fail (future != NULL, FALSE);
  AFUT__RETURN_IF_WRONG_THREAD (future->loop,
                                "afut_future_resolve_value_threadsafe()",
                                FALSE);
  if (value == NULL || !G_IS_VALUE (value))
    return afut_future_resolve (future);
  return afut_future_resolve_pointer (future, afut_glib__value_new (value),
                                      afut_glib__value_free);
}

gboolean
afut_future_resolve_value_threadsafe (AfutFuture *future, const GValue *value)
{
  g_return_val_if_fail (future != NULL, FALSE);
  if (value == NULL || !G_IS_VALUE (value))
    return afut_future_resolve_threadsafe (future);
  return afut_future_resolve_pointer_threadsafe (
    future, afut_glib__value_new (value), afut_glib__value_free);
}

/* The arguments a signal future holds (see "GIO futures: signals"). */
typedef struct
{
  guint32 magic;
  guint n_args;
  GValue *args;
} AfutSignalArgs;
static void afut_signal__args_free (gpointer data);

const GValue *
afut_future_get_value (AfutFuture *future, GError **error)
{
  GValue *v;
  gpointer p;

  g_return_val_if_fail (future != NULL, NULL);
  g_return_val_if_fail (error == NULL || *error == NULL, NULL);
  AFUT__RETURN_IF_WRONG_THREAD (future->loop, NULL, NULL);
  switch (afut_future_get_state (future))
    {
    case AFUT_FUTURE_PENDING:
      g_set_error_literal (error, AFUT_ERROR, AFUT_ERROR_INVALID_STATE,
                           "Result is not set.");
      return NULL;
    case AFUT_FUTURE_FAILED:
    case AFUT_FUTURE_CANCELLED:
      g_propagate_error (error,
                         g_error_copy (afut_glib_future_get_error (future)));
      return NULL;
    case AFUT_FUTURE_DONE:
    default:
      break;
    }
  switch (afut_future_get_value_type (future))
    {
    case AFUT_VALUE_INT:
      v = afut_glib__scratch_value (G_TYPE_INT64);
      g_value_set_int64 (v, afut_future_get_int (future));
      return v;
    case AFUT_VALUE_DOUBLE:
      v = afut_glib__scratch_value (G_TYPE_DOUBLE);
      g_value_set_double (v, afut_future_get_double (future));
      return v;
    case AFUT_VALUE_POINTER:
      p = afut_future_get_pointer (future);
      if (p != NULL && afut_glib__value_known (p))
        return (const GValue *) p;
      if (p != NULL && afut_gio__value_gtype (future) != G_TYPE_INVALID)
        {
          /* A GIO future's object, GBytes, GVariant or string. */
          GType type = afut_gio__value_gtype (future);
          v = afut_glib__scratch_value (type);
          if (G_TYPE_IS_OBJECT (type))
            g_value_set_object (v, p);
          else if (type == G_TYPE_VARIANT)
            g_value_set_variant (v, (GVariant *) p);
          else if (type == G_TYPE_STRING)
            g_value_set_string (v, (const char *) p);
          else
            g_value_set_boxed (v, p);
          return v;
        }
      if (p != NULL && future->u.value.destroy == afut_signal__args_free)
        {
          /* A signal's or property's future: its first argument (the new
           * value); afut_signal_get_arg() gives each. */
          const AfutSignalArgs *a = (const AfutSignalArgs *) p;
          return a->n_args > 0 ? &a->args[0] : NULL;
        }
      v = afut_glib__scratch_value (G_TYPE_POINTER);
      g_value_set_pointer (v, p);
      return v;
    case AFUT_VALUE_NONE:
    default:
      return NULL;
    }
}

gboolean
afut_future_fail_value (AfutFuture *future, const GValue *exception,
                        const char *message)
{
  g_return_val_if_fail (future != NULL, FALSE);
  g_return_val_if_fail (G_IS_VALUE (exception), FALSE);
  AFUT__RETURN_IF_WRONG_THREAD (future->loop, "afut_future_fail_threadsafe()",
                                FALSE);
  return afut_future_fail (
    future, (AfutError *) afut_exception_error_new (exception, message));
}

gboolean
afut_future_fail_error (AfutFuture *future, const GError *error)
{
  g_return_val_if_fail (future != NULL, FALSE);
  g_return_val_if_fail (error != NULL, FALSE);
  AFUT__RETURN_IF_WRONG_THREAD (future->loop, "afut_future_fail_threadsafe()",
                                FALSE);
  return afut_future_fail (future, (AfutError *) g_error_copy (error));
}

const GValue *
afut_future_get_error_value (AfutFuture *future)
{
  g_return_val_if_fail (future != NULL, NULL);
  AFUT__RETURN_IF_WRONG_THREAD (future->loop, NULL, NULL);
  if (!afut_future_is_done (future)
      || afut_future_get_state (future) == AFUT_FUTURE_DONE)
    return NULL;
  /* Read the error without marking it retrieved. */
  return afut_exception_error_get_value ((const GError *) future->u.error);
}

const GValue *
afut_future_get_sub_error_value (AfutFuture *future, gsize index)
{
  g_return_val_if_fail (future != NULL, NULL);
  AFUT__RETURN_IF_WRONG_THREAD (future->loop, NULL, NULL);
  if (index >= afut_future_get_n_sub_errors (future))
    return NULL;
  return afut_exception_error_get_value (
    (const GError *) afut_future_get_sub_error (future, index));
}

void
afut_gio_future_complete (AfutFuture *future, GAsyncResult *result)
{
  AfutGioFuture *g;
  g_return_if_fail (future != NULL);
  g_return_if_fail (G_IS_ASYNC_RESULT (result));
  AFUT__RETURN_IF_WRONG_THREAD (future->loop, NULL, );
  g = afut_gio__cast (future);
  if (afut_future_is_done (future))
    {
      if (g != NULL)
        {
          g->called_back = TRUE;
          afut_gio__release (g);
        }
      return;
    }
  if (g != NULL && g->cancel_requested)
    /* afut_gio_ready() ends it cancelled, with the cancel message. */
    afut_gio_ready (NULL, result, afut_future_ref (future));
  else
    {
      GValue v = G_VALUE_INIT;
      g_value_init (&v, G_TYPE_ASYNC_RESULT);
      g_value_set_object (&v, result);
      afut_future_resolve_value (future, &v);
      g_value_unset (&v);
      if (g != NULL)
        {
          g->called_back = TRUE;
          afut_gio__release (g);
        }
    }
}

/* ---- GIO futures: the typed wrappers ---- */

/* The thread-default main context is where GIO calls back; a GIO future
 * settles on its loop's thread, so the call is made with the loop's
 * context pushed when they differ. */
typedef struct
{
  AfutFuture *future;
  GCancellable *cancellable;
  GMainContext *pushed;
} AfutGioCall;

static gboolean
afut_gio__begin (AfutGioCall *call)
{
  AfutGlibBackend *b;
  GMainContext *current;
  call->pushed = NULL;
  call->future = afut_gio_future_new (NULL);
  if (call->future == NULL)
    return FALSE;
  b = afut_glib__backend_of (afut_future_get_loop (call->future), G_STRFUNC);
  if (b == NULL)
    {
      afut_future_unref (call->future);
      call->future = NULL;
      return FALSE;
    }
  call->cancellable = afut_glib_future_get_cancellable (call->future);
  current = g_main_context_get_thread_default ();
  if (current == NULL)
    current = g_main_context_default ();
  if (current != b->context)
    {
      call->pushed = b->context;
      g_main_context_push_thread_default (call->pushed);
    }
  /* GIO's callback owns one reference: afut_gio__settle drops it. */
  afut_future_ref (call->future);
  return TRUE;
}

static AfutFuture *
afut_gio__end (AfutGioCall *call)
{
  if (call->pushed != NULL)
    g_main_context_pop_thread_default (call->pushed);
  return call->future;
}

static void
afut_gio__clear_extra (AfutGioFuture *g)
{
  gpointer data = g->extra;
  GDestroyNotify destroy = g->extra_destroy;
  g->extra = NULL;
  g->extra_destroy = NULL;
  if (data != NULL && destroy != NULL)
    destroy (data);
}

/* GIO has called back with @error or a value: the future settles (unless
 * it was asked to cancel, or is done already: then the value goes), and
 * the reference GIO's callback held goes. */
static void
afut_gio__settle (AfutFuture *future, GError *error, AfutValueType type,
                  gpointer pointer, GDestroyNotify destroy, gint64 v_int)
{
  AfutGioFuture *g = afut_gio__cast (future);
  gboolean keep = error == NULL && !afut_future_is_done (future)
                  && !g->cancel_requested;

  if (!keep && pointer != NULL && destroy != NULL)
    destroy (pointer);
  if (afut_future_is_done (future))
    g_clear_error (&error);
  else if (g->cancel_requested)
    {
      g_clear_error (&error);
      afut_future_fail (future,
                        afut_error_new_literal (AFUT_ERROR,
                                                AFUT_ERROR_CANCELLED,
                                                g->cancel_message != NULL
                                                  ? g->cancel_message
                                                  : ""));
    }
  else if (error != NULL)
    afut_future_fail (future, afut_glib_error_from_gerror (error));
  else if (type == AFUT_VALUE_POINTER)
    {
      /* The destroy notify says what the value is (g_free: a string, in
       * the wrappers that use it). */
      if (pointer == NULL)
        g->value_gtype = G_TYPE_INVALID;
      else if (destroy == g_object_unref)
        g->value_gtype = G_OBJECT_TYPE (pointer);
      else if (destroy == (GDestroyNotify) g_bytes_unref)
        g->value_gtype = G_TYPE_BYTES;
      else if (destroy == (GDestroyNotify) g_variant_unref)
        g->value_gtype = G_TYPE_VARIANT;
      else if (destroy == (GDestroyNotify) g_ptr_array_unref)
        g->value_gtype = G_TYPE_PTR_ARRAY;
      else if (destroy == g_free)
        g->value_gtype = G_TYPE_STRING;
      afut_future_resolve_pointer (future, pointer, destroy);
    }
  else if (type == AFUT_VALUE_INT)
    afut_future_resolve_int (future, v_int);
  else
    afut_future_resolve (future);
  /* What only the call needed (a progress closure) goes now: GIO is done
   * with it. */
  if (g->call_data_destroy != NULL)
    g->call_data_destroy (g->call_data);
  g->call_data = NULL;
  g->call_data_destroy = NULL;
  if (!keep)
    afut_gio__clear_extra (g);
  afut_gio__release (g);
  afut_future_unref (future);
}

static void
afut_gio__settle_object (AfutFuture *future, gpointer object, GError *error)
{
  afut_gio__settle (future, error, AFUT_VALUE_POINTER, object,
                    object != NULL ? g_object_unref : NULL, 0);
}

static void
afut_gio__settle_bool (AfutFuture *future, gboolean ok, GError *error)
{
  (void) ok;
  afut_gio__settle (future, error, AFUT_VALUE_NONE, NULL, NULL, 0);
}

static void
afut_gio__settle_int (AfutFuture *future, gint64 n, GError *error)
{
  afut_gio__settle (future, error, AFUT_VALUE_INT, NULL, NULL, n);
}

static GPtrArray *
afut_gio__objects_from_list (GList *list)
{
  GPtrArray *array = g_ptr_array_new_with_free_func (g_object_unref);
  GList *l;
  for (l = list; l != NULL; l = l->next)
    g_ptr_array_add (array, l->data);
  g_list_free (list);
  return array;
}

/* ---- files ---- */

static void
afut_file__load_contents_done (GObject *source, GAsyncResult *result,
                               gpointer data)
{
  GError *error = NULL;
  char *contents = NULL;
  gsize length = 0;
  GBytes *bytes = NULL;
  if (g_file_load_contents_finish (G_FILE (source), result, &contents,
                                   &length, NULL, &error))
    bytes = g_bytes_new_take (contents, length);
  afut_gio__settle ((AfutFuture *) data, error, AFUT_VALUE_POINTER, bytes,
                    (GDestroyNotify) g_bytes_unref, 0);
}

AfutFuture *
afut_file_load_contents (GFile *file)
{
  AfutGioCall call;
  g_return_val_if_fail (G_IS_FILE (file), NULL);
  if (!afut_gio__begin (&call))
    return NULL;
  g_file_load_contents_async (file, call.cancellable,
                              afut_file__load_contents_done, call.future);
  return afut_gio__end (&call);
}

static void
afut_file__read_done (GObject *source, GAsyncResult *result, gpointer data)
{
  GError *error = NULL;
  GFileInputStream *stream = g_file_read_finish (G_FILE (source), result,
                                                 &error);
  afut_gio__settle_object ((AfutFuture *) data, stream, error);
}

AfutFuture *
afut_file_read (GFile *file, int io_priority)
{
  AfutGioCall call;
  g_return_val_if_fail (G_IS_FILE (file), NULL);
  if (!afut_gio__begin (&call))
    return NULL;
  g_file_read_async (file, io_priority, call.cancellable,
                     afut_file__read_done, call.future);
  return afut_gio__end (&call);
}

static void
afut_file__create_done (GObject *source, GAsyncResult *result, gpointer data)
{
  GError *error = NULL;
  GFileOutputStream *stream = g_file_create_finish (G_FILE (source), result,
                                                    &error);
  afut_gio__settle_object ((AfutFuture *) data, stream, error);
}

AfutFuture *
afut_file_create (GFile *file, GFileCreateFlags flags, int io_priority)
{
  AfutGioCall call;
  g_return_val_if_fail (G_IS_FILE (file), NULL);
  if (!afut_gio__begin (&call))
    return NULL;
  g_file_create_async (file, flags, io_priority, call.cancellable,
                       afut_file__create_done, call.future);
  return afut_gio__end (&call);
}

static void
afut_file__replace_done (GObject *source, GAsyncResult *result,
                         gpointer data)
{
  AfutGioFuture *g = afut_gio__cast ((AfutFuture *) data);
  GError *error = NULL;
  GFileOutputStream *stream = g_file_replace_finish (G_FILE (source), result,
                                                     &error);
  /* Opened, but the future was cancelled meanwhile: closed with the
   * cancelled cancellable, the stream leaves the file as it was (dropped,
   * it would replace it with nothing). */
  if (stream != NULL && g->cancel_requested)
    g_output_stream_close (G_OUTPUT_STREAM (stream), g->cancellable, NULL);
  afut_gio__settle_object ((AfutFuture *) data, stream, error);
}

AfutFuture *
afut_file_replace (GFile *file, const char *etag, gboolean make_backup,
                   GFileCreateFlags flags, int io_priority)
{
  AfutGioCall call;
  g_return_val_if_fail (G_IS_FILE (file), NULL);
  if (!afut_gio__begin (&call))
    return NULL;
  g_file_replace_async (file, etag, make_backup, flags, io_priority,
                        call.cancellable, afut_file__replace_done,
                        call.future);
  return afut_gio__end (&call);
}

static void
afut_file__query_info_done (GObject *source, GAsyncResult *result,
                            gpointer data)
{
  GError *error = NULL;
  GFileInfo *info = g_file_query_info_finish (G_FILE (source), result,
                                              &error);
  afut_gio__settle_object ((AfutFuture *) data, info, error);
}

AfutFuture *
afut_file_query_info (GFile *file, const char *attributes,
                      GFileQueryInfoFlags flags, int io_priority)
{
  AfutGioCall call;
  g_return_val_if_fail (G_IS_FILE (file), NULL);
  g_return_val_if_fail (attributes != NULL, NULL);
  if (!afut_gio__begin (&call))
    return NULL;
  g_file_query_info_async (file, attributes, flags, io_priority,
                           call.cancellable, afut_file__query_info_done,
                           call.future);
  return afut_gio__end (&call);
}

static void
afut_file__enumerate_children_done (GObject *source, GAsyncResult *result,
                                    gpointer data)
{
  GError *error = NULL;
  GFileEnumerator *enumerator = g_file_enumerate_children_finish (
    G_FILE (source), result, &error);
  afut_gio__settle_object ((AfutFuture *) data, enumerator, error);
}

AfutFuture *
afut_file_enumerate_children (GFile *file, const char *attributes,
                              GFileQueryInfoFlags flags, int io_priority)
{
  AfutGioCall call;
  g_return_val_if_fail (G_IS_FILE (file), NULL);
  g_return_val_if_fail (attributes != NULL, NULL);
  if (!afut_gio__begin (&call))
    return NULL;
  g_file_enumerate_children_async (file, attributes, flags, io_priority,
                                   call.cancellable,
                                   afut_file__enumerate_children_done,
                                   call.future);
  return afut_gio__end (&call);
}

static void
afut_file__next_files_done (GObject *source, GAsyncResult *result,
                            gpointer data)
{
  GError *error = NULL;
  GList *infos = g_file_enumerator_next_files_finish (
    G_FILE_ENUMERATOR (source), result, &error);
  afut_gio__settle ((AfutFuture *) data, error, AFUT_VALUE_POINTER,
                    error == NULL ? afut_gio__objects_from_list (infos)
                                  : NULL,
                    (GDestroyNotify) g_ptr_array_unref, 0);
}

AfutFuture *
afut_file_enumerator_next_files (GFileEnumerator *enumerator, int num_files,
                                 int io_priority)
{
  AfutGioCall call;
  g_return_val_if_fail (G_IS_FILE_ENUMERATOR (enumerator), NULL);
  g_return_val_if_fail (num_files > 0, NULL);
  if (!afut_gio__begin (&call))
    return NULL;
  g_file_enumerator_next_files_async (enumerator, num_files, io_priority,
                                      call.cancellable,
                                      afut_file__next_files_done,
                                      call.future);
  return afut_gio__end (&call);
}

static void
afut_file__delete_done (GObject *source, GAsyncResult *result, gpointer data)
{
  GError *error = NULL;
  gboolean ok = g_file_delete_finish (G_FILE (source), result, &error);
  afut_gio__settle_bool ((AfutFuture *) data, ok, error);
}

AfutFuture *
afut_file_delete (GFile *file, int io_priority)
{
  AfutGioCall call;
  g_return_val_if_fail (G_IS_FILE (file), NULL);
  if (!afut_gio__begin (&call))
    return NULL;
  g_file_delete_async (file, io_priority, call.cancellable,
                       afut_file__delete_done, call.future);
  return afut_gio__end (&call);
}

static void
afut_file__make_directory_done (GObject *source, GAsyncResult *result,
                                gpointer data)
{
  GError *error = NULL;
  gboolean ok = g_file_make_directory_finish (G_FILE (source), result,
                                              &error);
  afut_gio__settle_bool ((AfutFuture *) data, ok, error);
}

AfutFuture *
afut_file_make_directory (GFile *file, int io_priority)
{
  AfutGioCall call;
  g_return_val_if_fail (G_IS_FILE (file), NULL);
  if (!afut_gio__begin (&call))
    return NULL;
  g_file_make_directory_async (file, io_priority, call.cancellable,
                               afut_file__make_directory_done, call.future);
  return afut_gio__end (&call);
}

/* A progress callback and its data, freed once GIO has called back. */
typedef struct
{
  GFileProgressCallback func;
  gpointer data;
  GDestroyNotify destroy;
} AfutFileProgress;

static void
afut_file__progress_free (gpointer data)
{
  AfutFileProgress *p = (AfutFileProgress *) data;
  if (p->destroy != NULL)
    p->destroy (p->data);
  g_free (p);
}

static void
afut_file__progress (goffset current, goffset total, gpointer data)
{
  AfutFileProgress *p = (AfutFileProgress *) data;
  p->func (current, total, p->data);
}

static void
afut_file__copy_done (GObject *source, GAsyncResult *result, gpointer data)
{
  GError *error = NULL;
  gboolean ok = g_file_copy_finish (G_FILE (source), result, &error);
  afut_gio__settle_bool ((AfutFuture *) data, ok, error);
}

static AfutFileProgress *
afut_file__progress_new (AfutFuture *future, GFileProgressCallback func,
                         gpointer data, GDestroyNotify destroy)
{
  AfutGioFuture *g = afut_gio__cast (future);
  AfutFileProgress *p;
  if (func == NULL)
    {
      if (destroy != NULL)
        destroy (data);
      return NULL;
    }
  p = g_new0 (AfutFileProgress, 1);
  p->func = func;
  p->data = data;
  p->destroy = destroy;
  g->call_data = p;
  g->call_data_destroy = afut_file__progress_free;
  return p;
}

AfutFuture *
afut_file_copy (GFile *source, GFile *destination, GFileCopyFlags flags,
                int io_priority, GFileProgressCallback progress,
                gpointer progress_data, GDestroyNotify progress_destroy)
{
  AfutGioCall call;
  AfutFileProgress *p;
  g_return_val_if_fail (G_IS_FILE (source), NULL);
  g_return_val_if_fail (G_IS_FILE (destination), NULL);
  if (!afut_gio__begin (&call))
    {
      /* No loop (reported): the callback never runs. */
      if (progress_destroy != NULL)
        progress_destroy (progress_data);
      return NULL;
    }
  p = afut_file__progress_new (call.future, progress, progress_data,
                               progress_destroy);
  g_file_copy_async (source, destination, flags, io_priority,
                     call.cancellable,
                     p != NULL ? afut_file__progress : NULL, p,
                     afut_file__copy_done, call.future);
  return afut_gio__end (&call);
}

#if GLIB_CHECK_VERSION(2, 72, 0)
static void
afut_file__move_done (GObject *source, GAsyncResult *result, gpointer data)
{
  GError *error = NULL;
  gboolean ok = g_file_move_finish (G_FILE (source), result, &error);
  afut_gio__settle_bool ((AfutFuture *) data, ok, error);
}

AfutFuture *
afut_file_move (GFile *source, GFile *destination, GFileCopyFlags flags,
                int io_priority, GFileProgressCallback progress,
                gpointer progress_data, GDestroyNotify progress_destroy)
{
  AfutGioCall call;
  AfutFileProgress *p;
  g_return_val_if_fail (G_IS_FILE (source), NULL);
  g_return_val_if_fail (G_IS_FILE (destination), NULL);
  if (!afut_gio__begin (&call))
    {
      /* No loop (reported): the callback never runs. */
      if (progress_destroy != NULL)
        progress_destroy (progress_data);
      return NULL;
    }
  p = afut_file__progress_new (call.future, progress, progress_data,
                               progress_destroy);
  g_file_move_async (source, destination, flags, io_priority,
                     call.cancellable,
                     p != NULL ? afut_file__progress : NULL, p,
                     afut_file__move_done, call.future);
  return afut_gio__end (&call);
}
#endif

/* ---- streams ---- */

static void
afut_stream__read_done (GObject *source, GAsyncResult *result, gpointer data)
{
  GError *error = NULL;
  gssize n = g_input_stream_read_finish (G_INPUT_STREAM (source), result,
                                         &error);
  afut_gio__settle_int ((AfutFuture *) data, n, error);
}

AfutFuture *
afut_input_stream_read (GInputStream *stream, void *buffer, gsize count,
                        int io_priority)
{
  AfutGioCall call;
  g_return_val_if_fail (G_IS_INPUT_STREAM (stream), NULL);
  g_return_val_if_fail (buffer != NULL || count == 0, NULL);
  g_return_val_if_fail (count <= G_MAXSSIZE, NULL);
  if (!afut_gio__begin (&call))
    return NULL;
  g_input_stream_read_async (stream, buffer, count, io_priority,
                             call.cancellable, afut_stream__read_done,
                             call.future);
  return afut_gio__end (&call);
}

static void
afut_stream__read_bytes_done (GObject *source, GAsyncResult *result,
                              gpointer data)
{
  GError *error = NULL;
  GBytes *bytes = g_input_stream_read_bytes_finish (G_INPUT_STREAM (source),
                                                    result, &error);
  afut_gio__settle ((AfutFuture *) data, error, AFUT_VALUE_POINTER, bytes,
                    (GDestroyNotify) g_bytes_unref, 0);
}

AfutFuture *
afut_input_stream_read_bytes (GInputStream *stream, gsize count,
                              int io_priority)
{
  AfutGioCall call;
  g_return_val_if_fail (G_IS_INPUT_STREAM (stream), NULL);
  g_return_val_if_fail (count <= G_MAXSSIZE, NULL);
  if (!afut_gio__begin (&call))
    return NULL;
  g_input_stream_read_bytes_async (stream, count, io_priority,
                                   call.cancellable,
                                   afut_stream__read_bytes_done, call.future);
  return afut_gio__end (&call);
}

static void
afut_stream__read_all_done (GObject *source, GAsyncResult *result,
                            gpointer data)
{
  GError *error = NULL;
  gsize n = 0;
  g_input_stream_read_all_finish (G_INPUT_STREAM (source), result, &n,
                                  &error);
  afut_gio__settle_int ((AfutFuture *) data, (gint64) n, error);
}

AfutFuture *
afut_input_stream_read_all (GInputStream *stream, void *buffer, gsize count,
                            int io_priority)
{
  AfutGioCall call;
  g_return_val_if_fail (G_IS_INPUT_STREAM (stream), NULL);
  g_return_val_if_fail (buffer != NULL || count == 0, NULL);
  g_return_val_if_fail (count <= G_MAXSSIZE, NULL);
  if (!afut_gio__begin (&call))
    return NULL;
  g_input_stream_read_all_async (stream, buffer, count, io_priority,
                                 call.cancellable, afut_stream__read_all_done,
                                 call.future);
  return afut_gio__end (&call);
}

static void
afut_stream__input_close_done (GObject *source, GAsyncResult *result,
                               gpointer data)
{
  GError *error = NULL;
  gboolean ok = g_input_stream_close_finish (G_INPUT_STREAM (source), result,
                                             &error);
  afut_gio__settle_bool ((AfutFuture *) data, ok, error);
}

AfutFuture *
afut_input_stream_close (GInputStream *stream, int io_priority)
{
  AfutGioCall call;
  g_return_val_if_fail (G_IS_INPUT_STREAM (stream), NULL);
  if (!afut_gio__begin (&call))
    return NULL;
  g_input_stream_close_async (stream, io_priority, call.cancellable,
                              afut_stream__input_close_done, call.future);
  return afut_gio__end (&call);
}

static void
afut_stream__write_all_done (GObject *source, GAsyncResult *result,
                             gpointer data)
{
  GError *error = NULL;
  gsize n = 0;
  g_output_stream_write_all_finish (G_OUTPUT_STREAM (source), result, &n,
                                    &error);
  afut_gio__settle_int ((AfutFuture *) data, (gint64) n, error);
}

AfutFuture *
afut_output_stream_write_all (GOutputStream *stream, const void *buffer,
                              gsize count, int io_priority)
{
  AfutGioCall call;
  g_return_val_if_fail (G_IS_OUTPUT_STREAM (stream), NULL);
  g_return_val_if_fail (buffer != NULL || count == 0, NULL);
  g_return_val_if_fail (count <= G_MAXSSIZE, NULL);
  if (!afut_gio__begin (&call))
    return NULL;
  g_output_stream_write_all_async (stream, buffer, count, io_priority,
                                   call.cancellable,
                                   afut_stream__write_all_done, call.future);
  return afut_gio__end (&call);
}

static void
afut_stream__write_bytes_done (GObject *source, GAsyncResult *result,
                               gpointer data)
{
  GError *error = NULL;
  gssize n = g_output_stream_write_bytes_finish (G_OUTPUT_STREAM (source),
                                                 result, &error);
  afut_gio__settle_int ((AfutFuture *) data, n, error);
}

AfutFuture *
afut_output_stream_write_bytes (GOutputStream *stream, GBytes *bytes,
                                int io_priority)
{
  AfutGioCall call;
  g_return_val_if_fail (G_IS_OUTPUT_STREAM (stream), NULL);
  g_return_val_if_fail (bytes != NULL, NULL);
  if (!afut_gio__begin (&call))
    return NULL;
  g_output_stream_write_bytes_async (stream, bytes, io_priority,
                                     call.cancellable,
                                     afut_stream__write_bytes_done,
                                     call.future);
  return afut_gio__end (&call);
}

static void
afut_stream__splice_done (GObject *source, GAsyncResult *result,
                          gpointer data)
{
  GError *error = NULL;
  gssize n = g_output_stream_splice_finish (G_OUTPUT_STREAM (source), result,
                                            &error);
  afut_gio__settle_int ((AfutFuture *) data, n, error);
}

AfutFuture *
afut_output_stream_splice (GOutputStream *stream, GInputStream *source,
                           GOutputStreamSpliceFlags flags, int io_priority)
{
  AfutGioCall call;
  g_return_val_if_fail (G_IS_OUTPUT_STREAM (stream), NULL);
  g_return_val_if_fail (G_IS_INPUT_STREAM (source), NULL);
  if (!afut_gio__begin (&call))
    return NULL;
  g_output_stream_splice_async (stream, source, flags, io_priority,
                                call.cancellable, afut_stream__splice_done,
                                call.future);
  return afut_gio__end (&call);
}

static void
afut_stream__output_close_done (GObject *source, GAsyncResult *result,
                                gpointer data)
{
  GError *error = NULL;
  gboolean ok = g_output_stream_close_finish (G_OUTPUT_STREAM (source),
                                              result, &error);
  afut_gio__settle_bool ((AfutFuture *) data, ok, error);
}

AfutFuture *
afut_output_stream_close (GOutputStream *stream, int io_priority)
{
  AfutGioCall call;
  g_return_val_if_fail (G_IS_OUTPUT_STREAM (stream), NULL);
  if (!afut_gio__begin (&call))
    return NULL;
  g_output_stream_close_async (stream, io_priority, call.cancellable,
                               afut_stream__output_close_done, call.future);
  return afut_gio__end (&call);
}

/* ---- sockets and names ---- */

static void
afut_socket__connect_done (GObject *source, GAsyncResult *result,
                           gpointer data)
{
  GError *error = NULL;
  GSocketConnection *connection = g_socket_client_connect_finish (
    G_SOCKET_CLIENT (source), result, &error);
  afut_gio__settle_object ((AfutFuture *) data, connection, error);
}

AfutFuture *
afut_socket_client_connect (GSocketClient *client,
                            GSocketConnectable *connectable)
{
  AfutGioCall call;
  g_return_val_if_fail (G_IS_SOCKET_CLIENT (client), NULL);
  g_return_val_if_fail (G_IS_SOCKET_CONNECTABLE (connectable), NULL);
  if (!afut_gio__begin (&call))
    return NULL;
  g_socket_client_connect_async (client, connectable, call.cancellable,
                                 afut_socket__connect_done, call.future);
  return afut_gio__end (&call);
}

static void
afut_socket__connect_to_host_done (GObject *source, GAsyncResult *result,
                                   gpointer data)
{
  GError *error = NULL;
  GSocketConnection *connection = g_socket_client_connect_to_host_finish (
    G_SOCKET_CLIENT (source), result, &error);
  afut_gio__settle_object ((AfutFuture *) data, connection, error);
}

AfutFuture *
afut_socket_client_connect_to_host (GSocketClient *client,
                                    const char *host_and_port,
                                    guint16 default_port)
{
  AfutGioCall call;
  g_return_val_if_fail (G_IS_SOCKET_CLIENT (client), NULL);
  g_return_val_if_fail (host_and_port != NULL, NULL);
  if (!afut_gio__begin (&call))
    return NULL;
  g_socket_client_connect_to_host_async (client, host_and_port, default_port,
                                         call.cancellable,
                                         afut_socket__connect_to_host_done,
                                         call.future);
  return afut_gio__end (&call);
}

static void
afut_socket__accept_done (GObject *source, GAsyncResult *result,
                          gpointer data)
{
  GError *error = NULL;
  GSocketConnection *connection = g_socket_listener_accept_finish (
    G_SOCKET_LISTENER (source), result, NULL, &error);
  afut_gio__settle_object ((AfutFuture *) data, connection, error);
}

AfutFuture *
afut_socket_listener_accept (GSocketListener *listener)
{
  AfutGioCall call;
  g_return_val_if_fail (G_IS_SOCKET_LISTENER (listener), NULL);
  if (!afut_gio__begin (&call))
    return NULL;
  g_socket_listener_accept_async (listener, call.cancellable,
                                  afut_socket__accept_done, call.future);
  return afut_gio__end (&call);
}

static void
afut_resolver__lookup_done (GObject *source, GAsyncResult *result,
                            gpointer data)
{
  GError *error = NULL;
  GList *addresses = g_resolver_lookup_by_name_finish (G_RESOLVER (source),
                                                       result, &error);
  afut_gio__settle ((AfutFuture *) data, error, AFUT_VALUE_POINTER,
                    error == NULL ? afut_gio__objects_from_list (addresses)
                                  : NULL,
                    (GDestroyNotify) g_ptr_array_unref, 0);
}

AfutFuture *
afut_resolver_lookup_by_name (GResolver *resolver, const char *hostname)
{
  AfutGioCall call;
  g_return_val_if_fail (G_IS_RESOLVER (resolver), NULL);
  g_return_val_if_fail (hostname != NULL, NULL);
  if (!afut_gio__begin (&call))
    return NULL;
  g_resolver_lookup_by_name_async (resolver, hostname, call.cancellable,
                                   afut_resolver__lookup_done, call.future);
  return afut_gio__end (&call);
}

/* ---- subprocesses ---- */

static void
afut_subprocess__wait_done (GObject *source, GAsyncResult *result,
                            gpointer data)
{
  GError *error = NULL;
  gboolean ok = g_subprocess_wait_finish (G_SUBPROCESS (source), result,
                                          &error);
  afut_gio__settle_bool ((AfutFuture *) data, ok, error);
}

AfutFuture *
afut_subprocess_wait (GSubprocess *subprocess)
{
  AfutGioCall call;
  g_return_val_if_fail (G_IS_SUBPROCESS (subprocess), NULL);
  if (!afut_gio__begin (&call))
    return NULL;
  g_subprocess_wait_async (subprocess, call.cancellable,
                           afut_subprocess__wait_done, call.future);
  return afut_gio__end (&call);
}

static void
afut_subprocess__wait_check_done (GObject *source, GAsyncResult *result,
                                  gpointer data)
{
  GError *error = NULL;
  gboolean ok = g_subprocess_wait_check_finish (G_SUBPROCESS (source), result,
                                                &error);
  afut_gio__settle_bool ((AfutFuture *) data, ok, error);
}

AfutFuture *
afut_subprocess_wait_check (GSubprocess *subprocess)
{
  AfutGioCall call;
  g_return_val_if_fail (G_IS_SUBPROCESS (subprocess), NULL);
  if (!afut_gio__begin (&call))
    return NULL;
  g_subprocess_wait_check_async (subprocess, call.cancellable,
                                 afut_subprocess__wait_check_done,
                                 call.future);
  return afut_gio__end (&call);
}

/* Tags what a GIO future's extra holds, for the accessors to check. */
static const char afut_subprocess__stderr_bytes_tag = 0;
static const char afut_subprocess__stderr_utf8_tag = 0;

static void
afut_subprocess__communicate_done (GObject *source, GAsyncResult *result,
                                   gpointer data)
{
  AfutFuture *future = (AfutFuture *) data;
  AfutGioFuture *g = afut_gio__cast (future);
  GError *error = NULL;
  GBytes *out = NULL, *err = NULL;
  g_subprocess_communicate_finish (G_SUBPROCESS (source), result, &out, &err,
                                   &error);
  g->extra = err;
  g->extra_destroy = (GDestroyNotify) g_bytes_unref;
  g->extra_tag = &afut_subprocess__stderr_bytes_tag;
  afut_gio__settle (future, error, AFUT_VALUE_POINTER, out,
                    (GDestroyNotify) g_bytes_unref, 0);
}

AfutFuture *
afut_subprocess_communicate (GSubprocess *subprocess, GBytes *stdin_buf)
{
  AfutGioCall call;
  g_return_val_if_fail (G_IS_SUBPROCESS (subprocess), NULL);
  if (!afut_gio__begin (&call))
    return NULL;
  g_subprocess_communicate_async (subprocess, stdin_buf, call.cancellable,
                                  afut_subprocess__communicate_done,
                                  call.future);
  return afut_gio__end (&call);
}

static void
afut_subprocess__communicate_utf8_done (GObject *source,
                                        GAsyncResult *result, gpointer data)
{
  AfutFuture *future = (AfutFuture *) data;
  AfutGioFuture *g = afut_gio__cast (future);
  GError *error = NULL;
  char *out = NULL, *err = NULL;
  g_subprocess_communicate_utf8_finish (G_SUBPROCESS (source), result, &out,
                                        &err, &error);
  g->extra = err;
  g->extra_destroy = g_free;
  g->extra_tag = &afut_subprocess__stderr_utf8_tag;
  afut_gio__settle (future, error, AFUT_VALUE_POINTER, out, g_free, 0);
}

AfutFuture *
afut_subprocess_communicate_utf8 (GSubprocess *subprocess,
                                  const char *stdin_buf)
{
  AfutGioCall call;
  g_return_val_if_fail (G_IS_SUBPROCESS (subprocess), NULL);
  if (!afut_gio__begin (&call))
    return NULL;
  g_subprocess_communicate_utf8_async (subprocess, stdin_buf,
                                       call.cancellable,
                                       afut_subprocess__communicate_utf8_done,
                                       call.future);
  return afut_gio__end (&call);
}

static gpointer
afut_gio__get_extra (AfutFuture *future, const char *tag, const char *func)
{
  AfutGioFuture *g;
  if (future == NULL || (g = afut_gio__cast (future)) == NULL
      || g->extra_tag != tag)
    {
      g_critical ("%s: not a future of the matching "
                  "afut_subprocess_communicate call", func);
      return NULL;
    }
  if (afut_future_get_state (future) != AFUT_FUTURE_DONE)
    {
      g_critical ("%s: the future is not done with a value", func);
      return NULL;
    }
  return g->extra;
}

GBytes *
afut_subprocess_communicate_get_stderr (AfutFuture *future)
{
  return (GBytes *) afut_gio__get_extra (
    future, &afut_subprocess__stderr_bytes_tag, G_STRFUNC);
}

const char *
afut_subprocess_communicate_get_stderr_utf8 (AfutFuture *future)
{
  return (const char *) afut_gio__get_extra (
    future, &afut_subprocess__stderr_utf8_tag, G_STRFUNC);
}

/* ---- D-Bus ---- */

static void
afut_dbus__call_done (GObject *source, GAsyncResult *result, gpointer data)
{
  GError *error = NULL;
  GVariant *reply = g_dbus_connection_call_finish (
    G_DBUS_CONNECTION (source), result, &error);
  afut_gio__settle ((AfutFuture *) data, error, AFUT_VALUE_POINTER, reply,
                    (GDestroyNotify) g_variant_unref, 0);
}

AfutFuture *
afut_dbus_connection_call (GDBusConnection *connection, const char *bus_name,
                           const char *object_path,
                           const char *interface_name,
                           const char *method_name, GVariant *parameters,
                           const GVariantType *reply_type,
                           GDBusCallFlags flags, int timeout_msec)
{
  AfutGioCall call;
  g_return_val_if_fail (G_IS_DBUS_CONNECTION (connection), NULL);
  g_return_val_if_fail (object_path != NULL, NULL);
  g_return_val_if_fail (interface_name != NULL, NULL);
  g_return_val_if_fail (method_name != NULL, NULL);
  if (!afut_gio__begin (&call))
    {
      if (parameters != NULL)
        g_variant_unref (g_variant_ref_sink (parameters));
      return NULL;
    }
  g_dbus_connection_call (connection, bus_name, object_path, interface_name,
                          method_name, parameters, reply_type, flags,
                          timeout_msec, call.cancellable,
                          afut_dbus__call_done, call.future);
  return afut_gio__end (&call);
}

static void
afut_dbus__proxy_call_done (GObject *source, GAsyncResult *result,
                            gpointer data)
{
  GError *error = NULL;
  GVariant *reply = g_dbus_proxy_call_finish (G_DBUS_PROXY (source), result,
                                              &error);
  afut_gio__settle ((AfutFuture *) data, error, AFUT_VALUE_POINTER, reply,
                    (GDestroyNotify) g_variant_unref, 0);
}

AfutFuture *
afut_dbus_proxy_call (GDBusProxy *proxy, const char *method_name,
                      GVariant *parameters, GDBusCallFlags flags,
                      int timeout_msec)
{
  AfutGioCall call;
  g_return_val_if_fail (G_IS_DBUS_PROXY (proxy), NULL);
  g_return_val_if_fail (method_name != NULL, NULL);
  if (!afut_gio__begin (&call))
    {
      if (parameters != NULL)
        g_variant_unref (g_variant_ref_sink (parameters));
      return NULL;
    }
  g_dbus_proxy_call (proxy, method_name, parameters, flags, timeout_msec,
                     call.cancellable, afut_dbus__proxy_call_done,
                     call.future);
  return afut_gio__end (&call);
}

/* ---- AFUT_GIO: any _async call ---- */

/* The futures AFUT_GIO() is starting on this thread, innermost first: an
 * `_async` function may itself start one while its arguments are
 * evaluated. */
typedef struct AfutGioStarting AfutGioStarting;
struct AfutGioStarting
{
  AfutFuture *future;
  AfutGioStarting *below;
};

static GPrivate afut_gio__starting = G_PRIVATE_INIT (NULL);

void
afut__gio_push (void)
{
  AfutGioStarting *s = g_new0 (AfutGioStarting, 1);
  s->future = afut_gio_future_new (NULL);
  s->below = (AfutGioStarting *) g_private_get (&afut_gio__starting);
  g_private_set (&afut_gio__starting, s);
}

gpointer
afut__gio_cancellable (void)
{
  AfutGioStarting *s = (AfutGioStarting *) g_private_get (&afut_gio__starting);
  g_return_val_if_fail (s != NULL, NULL);
  return s->future != NULL ? afut_glib_future_get_cancellable (s->future)
                           : NULL;
}

gpointer
afut__gio_user_data (void)
{
  AfutGioStarting *s = (AfutGioStarting *) g_private_get (&afut_gio__starting);
  g_return_val_if_fail (s != NULL, NULL);
  return s->future != NULL ? afut_future_ref (s->future) : NULL;
}

AfutFuture *
afut__gio_pop (void)
{
  AfutGioStarting *s = (AfutGioStarting *) g_private_get (&afut_gio__starting);
  AfutFuture *future;
  g_return_val_if_fail (s != NULL, NULL);
  g_private_set (&afut_gio__starting, s->below);
  future = s->future;
  g_free (s);
  return future;
}

GAsyncResult *
afut_gio_future_get_result (AfutFuture *future)
{
  gpointer result;
  g_return_val_if_fail (future != NULL, NULL);
  if (afut_future_get_state (future) != AFUT_FUTURE_DONE
      || afut_future_get_value_type (future) != AFUT_VALUE_POINTER)
    {
      g_critical ("%s: the future is not done with a GAsyncResult",
                  G_STRFUNC);
      return NULL;
    }
  result = afut_future_get_pointer (future);
  /* A binding's afut_gio_future_complete() holds it in a GValue. */
  if (result != NULL && afut_glib__value_known (result)
      && G_VALUE_HOLDS ((const GValue *) result, G_TYPE_ASYNC_RESULT))
    result = g_value_get_object ((const GValue *) result);
  g_return_val_if_fail (G_IS_ASYNC_RESULT (result), NULL);
  return G_ASYNC_RESULT (result);
}

/* ---- GObject signals and properties as futures ---- */

/* The arguments of one emission, as a future's pointer value.  The magic
 * lets the accessors refuse another kind of pointer. */
#define AFUT_SIGNAL__ARGS_MAGIC 0x41667553u

static AfutSignalArgs *
afut_signal__args_new (guint n_args)
{
  AfutSignalArgs *a = g_new0 (AfutSignalArgs, 1);
  a->magic = AFUT_SIGNAL__ARGS_MAGIC;
  a->n_args = n_args;
  a->args = g_new0 (GValue, MAX (n_args, 1));
  return a;
}

static void
afut_signal__args_free (gpointer data)
{
  AfutSignalArgs *a = (AfutSignalArgs *) data;
  guint i;
  if (a == NULL)
    return;
  for (i = 0; i < a->n_args; i++)
    if (G_IS_VALUE (&a->args[i]))
      g_value_unset (&a->args[i]);
  g_free (a->args);
  a->magic = 0;
  g_free (a);
}

/* What an emission gives: the arguments after the instance, or for a
 * property, the value it has now. */
static AfutSignalArgs *
afut_signal__capture (GParamSpec *pspec, guint n_param_values,
                      const GValue *param_values)
{
  AfutSignalArgs *a;
  guint i;
  if (pspec != NULL)
    {
      a = afut_signal__args_new (1);
      g_value_init (&a->args[0], G_PARAM_SPEC_VALUE_TYPE (pspec));
      g_object_get_property (G_OBJECT (g_value_get_object (&param_values[0])),
                             pspec->name, &a->args[0]);
      return a;
    }
  a = afut_signal__args_new (n_param_values > 0 ? n_param_values - 1 : 0);
  for (i = 0; i < a->n_args; i++)
    {
      g_value_init (&a->args[i], G_VALUE_TYPE (&param_values[i + 1]));
      g_value_copy (&param_values[i + 1], &a->args[i]);
    }
  return a;
}

/* A handler of one signal on one instance, for a future: the instance is
 * not kept alive; when it goes, GObject destroys the handler, which
 * invalidates the closure, which tells the owner. */
typedef struct
{
  gpointer instance; /* NULL once the handler is gone */
  gulong handler;
  GClosure *closure;
  GParamSpec *pspec; /* a property's change: its value is captured */
  gboolean disconnecting;
} AfutSignalHandler;

static gboolean
afut_signal__connect (AfutSignalHandler *h, gpointer instance,
                      const char *detailed_signal, GParamSpec *pspec,
                      AfutFuture *owner, GClosureMarshal marshal,
                      GClosureNotify invalidated)
{
  /* The handler owns the closure: when it goes (disconnected, or
   * destroyed with the instance) the closure is invalidated. */
  h->instance = instance;
  h->pspec = pspec != NULL ? g_param_spec_ref (pspec) : NULL;
  h->closure = g_closure_new_simple (sizeof (GClosure), owner);
  g_closure_set_marshal (h->closure, marshal);
  g_closure_add_invalidate_notifier (h->closure, owner, invalidated);
  h->handler = g_signal_connect_closure (instance, detailed_signal,
                                         h->closure, FALSE);
  if (h->handler == 0)
    {
      h->disconnecting = TRUE;
      h->instance = NULL;
      g_closure_sink (h->closure);
      h->closure = NULL;
      return FALSE;
    }
  return TRUE;
}

static void
afut_signal__disconnect (AfutSignalHandler *h)
{
  if (h->instance != NULL && h->handler != 0)
    {
      gpointer instance = h->instance;
      gulong handler = h->handler;
      h->disconnecting = TRUE;
      h->instance = NULL;
      h->handler = 0;
      g_signal_handler_disconnect (instance, handler);
    }
  h->closure = NULL;
}

static void
afut_signal__handler_clear (AfutSignalHandler *h)
{
  afut_signal__disconnect (h);
  if (h->pspec != NULL)
    g_param_spec_unref (h->pspec);
  h->pspec = NULL;
}

static gboolean
afut_signal__check (gpointer instance, const char *detailed_signal,
                    const char *func)
{
  guint signal_id;
  GQuark detail;
  if (!G_IS_OBJECT (instance))
    {
      g_critical ("%s: assertion 'G_IS_OBJECT (instance)' failed", func);
      return FALSE;
    }
  if (detailed_signal == NULL
      || !g_signal_parse_name (detailed_signal, G_OBJECT_TYPE (instance),
                               &signal_id, &detail, TRUE))
    {
      g_critical ("%s: %s has no signal \"%s\"", func,
                  G_OBJECT_TYPE_NAME (instance),
                  detailed_signal != NULL ? detailed_signal : "(null)");
      return FALSE;
    }
  return TRUE;
}

static AfutError *
afut_signal__finalized_error (void)
{
  return (AfutError *) g_error_new_literal (
    G_IO_ERROR, G_IO_ERROR_CLOSED,
    "the object was finalized before the signal came");
}

/* ---- the next emission ---- */

typedef struct
{
  AfutCustomFuture custom;
  AfutSignalHandler h;
} AfutSignalFuture;

static bool
afut_signal__cancel (AfutFuture *future, const char *message)
{
  AfutSignalFuture *s = (AfutSignalFuture *) future;
  afut_signal__disconnect (&s->h);
  afut_future_fail (future, afut_error_new_literal (
                              AFUT_ERROR, AFUT_ERROR_CANCELLED,
                              message != NULL ? message : ""));
  return true;
}

static void
afut_signal__finalize (AfutFuture *future)
{
  afut_signal__handler_clear (&((AfutSignalFuture *) future)->h);
}

static const AfutFutureFuncs afut_signal__funcs = {
  afut_signal__cancel,
  afut_signal__finalize,
};

static void
afut_signal__marshal (GClosure *closure, GValue *return_value,
                      guint n_param_values, const GValue *param_values,
                      gpointer invocation_hint, gpointer marshal_data)
{
  AfutFuture *future = (AfutFuture *) closure->data;
  AfutSignalFuture *s = (AfutSignalFuture *) future;
  AfutSignalArgs *args;
  (void) return_value;
  (void) invocation_hint;
  (void) marshal_data;
  if (s->h.instance == NULL || afut_future_is_done (future))
    return;
  args = afut_signal__capture (s->h.pspec, n_param_values, param_values);
  afut_signal__disconnect (&s->h);
  afut_future_resolve_pointer (future, args, afut_signal__args_free);
}

static void
afut_signal__invalidated (gpointer data, GClosure *closure)
{
  AfutFuture *future = (AfutFuture *) data;
  AfutSignalFuture *s = (AfutSignalFuture *) future;
  (void) closure;
  if (s->h.disconnecting)
    return;
  s->h.instance = NULL;
  s->h.handler = 0;
  s->h.closure = NULL;
  if (!afut_future_is_done (future))
    afut_future_fail (future, afut_signal__finalized_error ());
}

static AfutFuture *
afut_signal__next_new (gpointer instance, const char *detailed_signal,
                       GParamSpec *pspec)
{
  AfutFuture *future = afut_future_new_custom (NULL, &afut_signal__funcs,
                                               sizeof (AfutSignalFuture));
  AfutSignalFuture *s;
  if (future == NULL)
    return NULL;
  s = (AfutSignalFuture *) future;
  if (!afut_signal__connect (&s->h, instance, detailed_signal, pspec, future,
                             afut_signal__marshal, afut_signal__invalidated))
    {
      afut_future_unref (future);
      return NULL;
    }
  return future;
}

AfutFuture *
afut_signal_next (gpointer instance, const char *detailed_signal)
{
  if (!afut_signal__check (instance, detailed_signal, G_STRFUNC))
    return NULL;
  return afut_signal__next_new (instance, detailed_signal, NULL);
}

AfutFuture *
afut_property_next (gpointer object, const char *property_name)
{
  GParamSpec *pspec;
  AfutFuture *future;
  char *detailed;
  g_return_val_if_fail (G_IS_OBJECT (object), NULL);
  g_return_val_if_fail (property_name != NULL, NULL);
  pspec = g_object_class_find_property (G_OBJECT_GET_CLASS (object),
                                        property_name);
  if (pspec == NULL || !(pspec->flags & G_PARAM_READABLE))
    {
      g_critical ("%s: %s has no readable property \"%s\"", G_STRFUNC,
                  G_OBJECT_TYPE_NAME (object), property_name);
      return NULL;
    }
  detailed = g_strconcat ("notify::", pspec->name, NULL);
  future = afut_signal__next_new (object, detailed, pspec);
  g_free (detailed);
  return future;
}

static AfutSignalArgs *
afut_signal__args_of (AfutFuture *future, const char *func)
{
  AfutSignalArgs *a;
  if (future == NULL || afut_future_get_state (future) != AFUT_FUTURE_DONE
      || afut_future_get_value_type (future) != AFUT_VALUE_POINTER)
    {
      g_critical ("%s: the future is not done with a signal's arguments",
                  func);
      return NULL;
    }
  a = (AfutSignalArgs *) afut_future_get_pointer (future);
  if (a != NULL && a->magic != AFUT_SIGNAL__ARGS_MAGIC)
    {
      g_critical ("%s: the future holds no signal's arguments", func);
      return NULL;
    }
  return a;
}

guint
afut_signal_get_n_args (AfutFuture *future)
{
  AfutSignalArgs *a = afut_signal__args_of (future, G_STRFUNC);
  return a != NULL ? a->n_args : 0;
}

const GValue *
afut_signal_get_arg (AfutFuture *future, guint index)
{
  AfutSignalArgs *a = afut_signal__args_of (future, G_STRFUNC);
  if (a == NULL)
    return NULL;
  if (index >= a->n_args)
    {
      g_critical ("%s: argument %u of %u", G_STRFUNC, index, a->n_args);
      return NULL;
    }
  return &a->args[index];
}

const GValue *
afut_property_get_value (AfutFuture *future)
{
  AfutSignalArgs *a = afut_signal__args_of (future, G_STRFUNC);
  if (a == NULL || a->n_args != 1)
    {
      if (a != NULL)
        g_critical ("%s: not a future of afut_property_next()", G_STRFUNC);
      return NULL;
    }
  return &a->args[0];
}

/* ---- signal streams ---- */

/* Emissions go into an afut queue, whose get loses no item to a cancel.
 * Closing puts a NULL at the end; a get that takes it puts it back, so
 * every later get ends too. */
typedef struct
{
  AfutCustomFuture custom;
  AfutSignalHandler h;
  AfutQueue *queue;
  gboolean closed;
} AfutSignalStream;

static void
afut_signal_stream__end (AfutSignalStream *s)
{
  if (s->closed)
    return;
  s->closed = TRUE;
  afut_signal__disconnect (&s->h);
  afut_queue_put_nowait (s->queue, NULL);
}

static bool
afut_signal_stream__cancel (AfutFuture *future, const char *message)
{
  afut_signal_stream__end ((AfutSignalStream *) future);
  afut_future_fail (future, afut_error_new_literal (
                              AFUT_ERROR, AFUT_ERROR_CANCELLED,
                              message != NULL ? message : ""));
  return true;
}

static void
afut_signal_stream__finalize (AfutFuture *future)
{
  AfutSignalStream *s = (AfutSignalStream *) future;
  /* Gets still waiting end, unless the loop is closed (it cancelled
   * them). */
  if (!future->loop->closed)
    afut_signal_stream__end (s);
  afut_signal__handler_clear (&s->h);
  afut_queue_unref (s->queue);
}

static const AfutFutureFuncs afut_signal_stream__funcs = {
  afut_signal_stream__cancel,
  afut_signal_stream__finalize,
};

static void
afut_signal_stream__marshal (GClosure *closure, GValue *return_value,
                             guint n_param_values, const GValue *param_values,
                             gpointer invocation_hint, gpointer marshal_data)
{
  AfutSignalStream *s = (AfutSignalStream *) closure->data;
  (void) return_value;
  (void) invocation_hint;
  (void) marshal_data;
  if (s->closed)
    return;
  afut_queue_put_nowait (s->queue, afut_signal__capture (NULL, n_param_values,
                                                         param_values));
}

static void
afut_signal_stream__invalidated (gpointer data, GClosure *closure)
{
  AfutFuture *future = (AfutFuture *) data;
  AfutSignalStream *s = (AfutSignalStream *) future;
  (void) closure;
  if (s->h.disconnecting)
    return;
  s->h.instance = NULL;
  s->h.handler = 0;
  s->h.closure = NULL;
  afut_signal_stream__end (s);
  if (!afut_future_is_done (future))
    afut_future_fail (future, afut_signal__finalized_error ());
}

static AfutSignalStream *
afut_signal_stream__cast (AfutFuture *future)
{
  return future != NULL && future->kind == AFUT__KIND_CUSTOM
             && ((AfutCustomFuture *) future)->funcs
                  == &afut_signal_stream__funcs
           ? (AfutSignalStream *) future
           : NULL;
}

AfutFuture *
afut_signal_stream_new (gpointer instance, const char *detailed_signal)
{
  AfutFuture *future;
  AfutSignalStream *s;
  if (!afut_signal__check (instance, detailed_signal, G_STRFUNC))
    return NULL;
  future = afut_future_new_custom (NULL, &afut_signal_stream__funcs,
                                   sizeof (AfutSignalStream));
  if (future == NULL)
    return NULL;
  s = (AfutSignalStream *) future;
  s->queue = afut_queue_new (future->loop, AFUT_QUEUE_FIFO, 0, NULL,
                             afut_signal__args_free);
  if (!afut_signal__connect (&s->h, instance, detailed_signal, NULL, future,
                             afut_signal_stream__marshal,
                             afut_signal_stream__invalidated))
    {
      s->closed = TRUE;
      afut_future_unref (future);
      return NULL;
    }
  return future;
}

static void
afut_signal_stream__got (AfutFuture *get, void *data)
{
  /* The end taken out: it goes back for the gets after this one. */
  if (afut_future_get_state (get) == AFUT_FUTURE_DONE
      && afut_future_get_pointer (get) == NULL)
    afut_queue_put_nowait ((AfutQueue *) data, NULL);
}

AfutFuture *
afut_signal_stream_next (AfutFuture *stream)
{
  AfutSignalStream *s = afut_signal_stream__cast (stream);
  AfutFuture *get;
  if (s == NULL)
    {
      g_critical ("%s: not a stream of afut_signal_stream_new()", G_STRFUNC);
      return NULL;
    }
  get = afut_queue_get (s->queue);
  if (get != NULL)
    afut_future_add_done_callback_full (get, afut_signal_stream__got,
                                        afut_queue_ref (s->queue),
                                        (AfutDestroyNotify) afut_queue_unref);
  return get;
}

void
afut_signal_stream_close (AfutFuture *stream)
{
  AfutSignalStream *s = afut_signal_stream__cast (stream);
  if (s == NULL)
    {
      g_critical ("%s: not a stream of afut_signal_stream_new()", G_STRFUNC);
      return;
    }
  afut_signal_stream__end (s);
  if (!afut_future_is_done (stream))
    afut_future_resolve (stream);
}

#endif /* AFUT_IMPLEMENTATION */
