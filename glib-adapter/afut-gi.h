/* afut-gi.h - the introspectable surface of afut: what Python (PyGObject)
 * and JavaScript (gjs) see through the Afut-1 typelib.
 *
 * SPDX-License-Identifier: MIT
 *
 * afut.h's own API is C: varargs, coroutine macros, raw pointers.  This
 * header is the part a GObject Introspection binding can call.  Its C
 * names carry the prefix afut_gi_ / AfutGi (afut_future_new and friends
 * are afut.h's), and the scanner strips that prefix, so bindings see the
 * namespace Afut with Afut.Future, Afut.sleep(), Afut.gather() ...
 *
 * THE MODEL
 *   - An #AfutGiFuture is an afut future (a plain future, a task, a sleep,
 *     a gather ...) as a boxed type: copying it takes a reference,
 *     freeing it drops one.
 *   - Values cross as GValue: afut_gi_future_resolve() stores a copy,
 *     afut_gi_future_get_value() hands one out.  Errors cross as GError;
 *     afut's own have the domain %AFUT_GI_ERROR ("afut-error-quark"), a
 *     cancellation is %AFUT_GI_ERROR_CANCELLED with the cancel message.
 *   - Coroutines stay the binding's own (Python `async def`, JavaScript
 *     `async function`): a binding runs one as a task through
 *     afut_gi_future_new_task() and afut_gi_call_soon(); its awaits are on
 *     afut futures; cancelling the task future (directly, or through a
 *     gather, wait_for ...) reaches the coroutine at its await.
 *   - The loop: each thread has at most one afut loop made here, on a
 *     GMainContext (the thread-default one unless told otherwise), made on
 *     first use or by afut_gi_attach(); afut_gi_run_until_complete()
 *     iterates that context until a future is done; under any GMainLoop
 *     (GTK's, GLib.MainLoop) afut runs by itself.  With AFUT_CLOCK=virtual
 *     in the environment, the loop made on first use has a virtual clock:
 *     sleeps take no wall time (for tests).
 *
 * Everything here is for the loop's thread.
 */

#ifndef AFUT_GI_H
#define AFUT_GI_H

#include <glib-object.h>

G_BEGIN_DECLS

#ifndef AFUT_GI_API
#if defined(__GNUC__) || defined(__clang__)
#define AFUT_GI_API __attribute__ ((visibility ("default"))) extern
#else
#define AFUT_GI_API extern
#endif
#endif

/* ---- errors ---- */

/**
 * AFUT_GI_ERROR:
 *
 * The error domain of afut's errors, the same quark as afut.h's
 * %AFUT_ERROR.
 */
#define AFUT_GI_ERROR (afut_gi_error_quark ())

/**
 * AfutGiError:
 * @AFUT_GI_ERROR_FAILED: a generic failure (an exception of a binding's
 *   coroutine that is not a GError)
 * @AFUT_GI_ERROR_CANCELLED: cancelled (asyncio's CancelledError)
 * @AFUT_GI_ERROR_TIMEOUT: timed out (asyncio's TimeoutError)
 * @AFUT_GI_ERROR_INVALID_STATE: asyncio's InvalidStateError: reading a
 *   pending future, running the loop from inside it ...
 * @AFUT_GI_ERROR_INVALID_ARGUMENT: a bad argument
 * @AFUT_GI_ERROR_CLOSED: the loop was closed
 * @AFUT_GI_ERROR_INCOMPLETE: end of stream before a full read
 * @AFUT_GI_ERROR_GROUP: several errors at once
 *
 * The codes of the %AFUT_GI_ERROR domain, afut.h's #AfutErrorCode.
 *
 * Since: 0.2
 */
typedef enum
{
  AFUT_GI_ERROR_FAILED,
  AFUT_GI_ERROR_CANCELLED,
  AFUT_GI_ERROR_TIMEOUT,
  AFUT_GI_ERROR_INVALID_STATE,
  AFUT_GI_ERROR_INVALID_ARGUMENT,
  AFUT_GI_ERROR_CLOSED,
  AFUT_GI_ERROR_INCOMPLETE,
  AFUT_GI_ERROR_GROUP
} AfutGiError;

/**
 * afut_gi_error_quark:
 *
 * Returns: the quark of the %AFUT_GI_ERROR domain
 * Since: 0.2
 */
AFUT_GI_API GQuark afut_gi_error_quark (void);

/* ---- the loop ---- */

/**
 * AfutGiLoopFlags:
 * @AFUT_GI_LOOP_NONE: a real-time loop
 * @AFUT_GI_LOOP_VIRTUAL_CLOCK: a virtual clock: whenever nothing is ready,
 *   time jumps to the next timer, so sleeps take no wall time (tests)
 *
 * Flags for afut_gi_attach().
 *
 * Since: 0.2
 */
typedef enum /*< flags >*/
{
  AFUT_GI_LOOP_NONE = 0,
  AFUT_GI_LOOP_VIRTUAL_CLOCK = 1 << 0
} AfutGiLoopFlags;

/**
 * afut_gi_attach:
 * @context: (nullable): the main context to run on, %NULL for the
 *   thread-default one
 * @flags: #AfutGiLoopFlags
 * @error: return location for an error
 *
 * Makes this thread's afut loop: one GSource on @context, run by whatever
 * iterates @context (a GMainLoop, GTK, afut_gi_run_until_complete()).
 * The other functions make one on first use (on the thread-default
 * context, with a virtual clock if the environment has
 * AFUT_CLOCK=virtual); call this first to choose.
 *
 * Returns: %TRUE, or %FALSE with %AFUT_GI_ERROR_INVALID_STATE if this
 *   thread has a loop already
 * Since: 0.2
 */
AFUT_GI_API gboolean afut_gi_attach (GMainContext *context,
                                     AfutGiLoopFlags flags, GError **error);

/**
 * afut_gi_detach:
 *
 * asyncio.run()'s ending: cancels the tasks still pending on this
 * thread's loop, runs the loop until they have ended, then closes and
 * frees the loop.  The next call that needs a loop makes a new one.
 * Without a loop, nothing happens.  Not from inside the loop's callbacks.
 *
 * Since: 0.2
 */
AFUT_GI_API void afut_gi_detach (void);

/**
 * afut_gi_is_attached:
 *
 * Returns: whether this thread has a loop made here
 * Since: 0.2
 */
AFUT_GI_API gboolean afut_gi_is_attached (void);

/**
 * afut_gi_get_context:
 *
 * Returns: (transfer none): the main context this thread's loop runs on
 *   (making the loop if needed)
 * Since: 0.2
 */
AFUT_GI_API GMainContext *afut_gi_get_context (void);

/**
 * afut_gi_time:
 *
 * Returns: the loop's clock in seconds, asyncio's loop.time() (virtual
 *   time under a virtual clock)
 * Since: 0.2
 */
AFUT_GI_API double afut_gi_time (void);

/**
 * AfutGiCallback:
 * @user_data: (closure): the data given with the callback
 *
 * A function run from the loop's ready queue.
 *
 * Since: 0.2
 */
typedef void (*AfutGiCallback) (gpointer user_data);

/**
 * afut_gi_call_soon:
 * @callback: (scope notified) (closure user_data) (destroy destroy): the
 *   function
 * @user_data: its data
 * @destroy: (nullable): frees @user_data once @callback ran (or could not)
 *
 * asyncio's loop.call_soon(): runs @callback at the back of the ready
 * queue, in the next batch.  A binding steps its coroutines with it.
 *
 * Returns: %FALSE if the loop is closed (@destroy then runs at once)
 * Since: 0.2
 */
AFUT_GI_API gboolean afut_gi_call_soon (AfutGiCallback callback,
                                        gpointer user_data,
                                        GDestroyNotify destroy);

/* ---- futures ---- */

/**
 * AfutGiFutureState:
 * @AFUT_GI_FUTURE_PENDING: not completed yet
 * @AFUT_GI_FUTURE_DONE: completed with a value (possibly none)
 * @AFUT_GI_FUTURE_FAILED: completed with an error
 * @AFUT_GI_FUTURE_CANCELLED: cancelled; its error is
 *   %AFUT_GI_ERROR_CANCELLED with the cancel message
 *
 * The state of a future.
 *
 * Since: 0.2
 */
typedef enum
{
  AFUT_GI_FUTURE_PENDING,
  AFUT_GI_FUTURE_DONE,
  AFUT_GI_FUTURE_FAILED,
  AFUT_GI_FUTURE_CANCELLED
} AfutGiFutureState;

/**
 * AfutGiFuture:
 *
 * An afut future (asyncio.Future): reference counted, completed once with
 * a value, an error or a cancellation.  Tasks, sleeps and gathers are
 * futures too.
 *
 * Since: 0.2
 */
typedef struct AfutGiFuture AfutGiFuture;

#define AFUT_GI_TYPE_FUTURE (afut_gi_future_get_type ())

AFUT_GI_API GType afut_gi_future_get_type (void) G_GNUC_CONST;

/**
 * AfutGiFutureCallback:
 * @future: the future that completed
 * @user_data: (closure): the data given with the callback
 *
 * A done callback: it runs from the loop's ready queue, never inside the
 * call that completed @future.
 *
 * Since: 0.2
 */
typedef void (*AfutGiFutureCallback) (AfutGiFuture *future,
                                      gpointer user_data);

/**
 * AfutGiCancelFunc:
 * @future: the task future being cancelled
 * @message: (nullable): the cancel message
 * @user_data: (closure): the data given to afut_gi_future_new_task()
 *
 * Asked to cancel a binding's task: cancel what the coroutine awaits (or
 * throw the cancellation into it at its next step), then complete the
 * future when the coroutine ends, failing it with the cancellation if the
 * coroutine let it through.
 *
 * Returns: %TRUE if a cancellation was requested
 * Since: 0.2
 */
typedef gboolean (*AfutGiCancelFunc) (AfutGiFuture *future,
                                      const char *message,
                                      gpointer user_data);

/**
 * afut_gi_future_ref: (skip)
 * @future: a future
 *
 * Returns: (transfer full): @future
 * Since: 0.2
 */
AFUT_GI_API AfutGiFuture *afut_gi_future_ref (AfutGiFuture *future);

/**
 * afut_gi_future_unref: (skip)
 * @future: (transfer full): a future
 *
 * Since: 0.2
 */
AFUT_GI_API void afut_gi_future_unref (AfutGiFuture *future);

/**
 * afut_gi_future_new:
 *
 * A pending future on this thread's loop (loop.create_future()).
 *
 * Returns: (transfer full): the future
 * Since: 0.2
 */
AFUT_GI_API AfutGiFuture *afut_gi_future_new (void);

/**
 * afut_gi_future_new_task:
 * @cancel_func: (scope notified) (closure user_data) (destroy destroy):
 *   called when the future is cancelled
 * @user_data: data for @cancel_func
 * @destroy: (nullable): frees @user_data, once the future is done
 *
 * The future of a task whose coroutine lives in the binding: cancelling
 * it (afut_gi_future_cancel(), a gather or wait_for it is in ...) does not
 * complete it but asks @cancel_func, as asyncio's Task.cancel() asks the
 * coroutine.  The binding completes it with afut_gi_future_resolve() or
 * afut_gi_future_fail() when the coroutine ends.  @cancel_func is
 * released when the future completes.
 *
 * Returns: (transfer full): the future
 * Since: 0.2
 */
AFUT_GI_API AfutGiFuture *afut_gi_future_new_task (AfutGiCancelFunc cancel_func,
                                                   gpointer user_data,
                                                   GDestroyNotify destroy);

/**
 * afut_gi_future_resolve:
 * @future: a pending future
 * @value: (nullable): the value, copied; %NULL (or an unset GValue) for
 *   none
 *
 * set_result(): completes @future with @value.  Its done callbacks are
 * queued.  A future that is done already stays as it is (reported).
 *
 * Returns: %TRUE if @future was pending
 * Since: 0.2
 */
AFUT_GI_API gboolean afut_gi_future_resolve (AfutGiFuture *future,
                                             const GValue *value);

/**
 * afut_gi_future_fail:
 * @future: a pending future
 * @error: the error, copied; %AFUT_GI_ERROR_CANCELLED cancels @future
 *
 * set_exception(): completes @future with @error.
 *
 * Returns: %TRUE if @future was pending
 * Since: 0.2
 */
AFUT_GI_API gboolean afut_gi_future_fail (AfutGiFuture *future,
                                          const GError *error);

/**
 * afut_gi_future_cancel:
 * @future: a future
 * @message: (nullable): the cancel message the awaiter reads
 *
 * cancel(msg): a plain future or a sleep is cancelled at once; a task
 * (a binding's too) is asked and ends when its coroutine does; a gather
 * cancels its pending children and ends cancelled.
 *
 * Returns: %TRUE if a cancellation was requested, %FALSE if @future was
 *   done
 * Since: 0.2
 */
AFUT_GI_API gboolean afut_gi_future_cancel (AfutGiFuture *future,
                                            const char *message);

/**
 * afut_gi_future_get_state:
 * @future: a future
 *
 * Returns: the state of @future
 * Since: 0.2
 */
AFUT_GI_API AfutGiFutureState afut_gi_future_get_state (AfutGiFuture *future);

/**
 * afut_gi_future_is_done:
 * @future: a future
 *
 * Returns: whether @future completed (value, error or cancelled)
 * Since: 0.2
 */
AFUT_GI_API gboolean afut_gi_future_is_done (AfutGiFuture *future);

/**
 * afut_gi_future_is_cancelled:
 * @future: a future
 *
 * Returns: whether @future was cancelled
 * Since: 0.2
 */
AFUT_GI_API gboolean afut_gi_future_is_cancelled (AfutGiFuture *future);

/**
 * afut_gi_future_get_value:
 * @future: a done future
 * @error: return location for @future's error
 *
 * result(): the value of @future.  A failed or cancelled future gives its
 * error instead (which counts as retrieved), a pending one
 * %AFUT_GI_ERROR_INVALID_STATE.  A value set by afut_gi_future_resolve()
 * comes back as it was given; an integer or double value of a C future as
 * a gint64 or a double; another pointer value as a gpointer.  A gather's
 * own value is none: read its items (afut_gi_future_get_items()).
 *
 * Returns: (transfer none) (nullable): the value, valid until the next
 *   afut_gi_future_get_value() or afut_gi_run_until_complete() on this
 *   thread (copy it to keep it); %NULL for no value or on error
 * Since: 0.2
 */
AFUT_GI_API const GValue *afut_gi_future_get_value (AfutGiFuture *future,
                                              GError **error);

/**
 * afut_gi_future_get_error:
 * @future: a future
 *
 * exception(): the error of a failed or cancelled future, which then
 * counts as retrieved (it is not reported when @future is freed).
 *
 * Returns: (transfer full) (nullable): a copy of the error, %NULL if
 *   @future is pending or done with a value
 * Since: 0.2
 */
AFUT_GI_API GError *afut_gi_future_get_error (AfutGiFuture *future);

/**
 * afut_gi_future_add_done_callback:
 * @future: a future
 * @callback: (scope notified) (closure user_data) (destroy destroy): called
 *   once @future is done
 * @user_data: data for @callback
 * @destroy: (nullable): frees @user_data after @callback ran
 *
 * add_done_callback(): @callback runs from the ready queue, in the order
 * callbacks were added, never inside the call that completed @future; one
 * added to a done future is queued at once.
 *
 * Since: 0.2
 */
AFUT_GI_API void afut_gi_future_add_done_callback (AfutGiFuture *future,
                                                   AfutGiFutureCallback callback,
                                                   gpointer user_data,
                                                   GDestroyNotify destroy);

/**
 * afut_gi_future_is_gather:
 * @future: a future
 *
 * Returns: whether @future was made by afut_gi_gather() or
 *   afut_gi_gather_return_exceptions()
 * Since: 0.2
 */
AFUT_GI_API gboolean afut_gi_future_is_gather (AfutGiFuture *future);

/**
 * afut_gi_future_get_items:
 * @future: a gather
 * @n_items: (out): the number of items
 *
 * The children of a gather in input order (a child given twice appears
 * twice): once the gather is done, each one's value (or error, with
 * return_exceptions) is the result slot.
 *
 * Returns: (array length=n_items) (transfer container): the children;
 *   empty for a future that is not a gather
 * Since: 0.2
 */
AFUT_GI_API AfutGiFuture **afut_gi_future_get_items (AfutGiFuture *future,
                                                     guint *n_items);

/* ---- combinators ---- */

/**
 * afut_gi_sleep:
 * @seconds: how long
 *
 * asyncio.sleep(): a future resolving with no value after @seconds.
 * Cancelling it removes its timer.  With 0 or less it resolves on the
 * loop's next iteration, so awaiting it lets the other tasks run.
 *
 * Returns: (transfer full): the future
 * Since: 0.2
 */
AFUT_GI_API AfutGiFuture *afut_gi_sleep (double seconds);

/**
 * afut_gi_call_later:
 * @delay: seconds from now
 * @callback: (scope notified) (closure user_data) (destroy destroy): the
 *   function
 * @user_data: its data
 * @destroy: (nullable): frees @user_data once @callback ran or the call
 *   was cancelled
 *
 * loop.call_later(): runs @callback once after @delay.  The returned
 * handle completes when @callback has run; cancelling it before then
 * stops the call (TimerHandle.cancel()).
 *
 * Returns: (transfer full): the handle
 * Since: 0.2
 */
AFUT_GI_API AfutGiFuture *afut_gi_call_later (double delay,
                                              AfutGiCallback callback,
                                              gpointer user_data,
                                              GDestroyNotify destroy);

/**
 * afut_gi_gather:
 * @futures: (array length=n_futures): the
 *   children
 * @n_futures: how many
 *
 * asyncio.gather(): done when every child is, with the children as items
 * (afut_gi_future_get_items()).  The first child error fails it at once,
 * the other children keep running.  Cancelling it cancels every pending
 * child, and it ends cancelled.  No children: done at once.
 *
 * Returns: (transfer full): the gather
 * Since: 0.2
 */
AFUT_GI_API AfutGiFuture *afut_gi_gather (AfutGiFuture **futures,
                                          guint n_futures);

/**
 * afut_gi_gather_return_exceptions:
 * @futures: (array length=n_futures): the
 *   children
 * @n_futures: how many
 *
 * asyncio.gather(..., return_exceptions=True): waits for every child;
 * each item holds a value or an error (a child cancelled on its own: a
 * cancellation).  Cancelling it still ends it cancelled.
 *
 * Returns: (transfer full): the gather
 * Since: 0.2
 */
AFUT_GI_API AfutGiFuture *afut_gi_gather_return_exceptions (
  AfutGiFuture **futures, guint n_futures);

/**
 * afut_gi_wait_for:
 * @future: the future to wait for
 * @timeout: seconds; infinity for no limit
 *
 * asyncio.wait_for(): completes as @future does, unless @timeout passes
 * first: then @future is cancelled, waited for, and the result fails with
 * %AFUT_GI_ERROR_TIMEOUT.  Cancelling the result cancels @future.
 *
 * Returns: (transfer full): the result future
 * Since: 0.2
 */
AFUT_GI_API AfutGiFuture *afut_gi_wait_for (AfutGiFuture *future,
                                            double timeout);

/**
 * afut_gi_shield:
 * @future: the future to protect
 *
 * asyncio.shield(): completes as @future does, but cancelling it leaves
 * @future running.
 *
 * Returns: (transfer full): the shield
 * Since: 0.2
 */
AFUT_GI_API AfutGiFuture *afut_gi_shield (AfutGiFuture *future);

/**
 * afut_gi_run_until_complete:
 * @future: a future of this thread's loop
 * @error: return location for @future's error
 *
 * loop.run_until_complete(): iterates the loop's main context until
 * @future is done, then gives its value or error as
 * afut_gi_future_get_value() does.  Calling it from inside the loop (a
 * callback, a coroutine step) is %AFUT_GI_ERROR_INVALID_STATE.
 *
 * Returns: (transfer none) (nullable): the value, as
 *   afut_gi_future_get_value() gives it; %NULL for none or on error
 * Since: 0.2
 */
AFUT_GI_API const GValue *afut_gi_run_until_complete (AfutGiFuture *future,
                                                GError **error);

G_END_DECLS

#endif /* AFUT_GI_H */
