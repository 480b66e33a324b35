/* fiber-cancel.c - cancel.c with fibers: cancellation, as asyncio's
 * Task.cancel(), arriving at an await as an error the code handles:
 *  - a fiber cancelled mid-sleep gets the cancellation at its await,
 *    cleans up (awaiting, even) and re-raises it, so it still ends
 *    cancelled;
 *  - cancelling a gather cancels each of its pending children;
 *  - a cancel message given to afut_future_cancel() reaches the awaiter
 *    as the message of the cancellation error.
 */

#define AFUT_IMPLEMENTATION
#include "afut.h"

#include <stdio.h>

/* ---- a fiber cancelled mid-sleep cleans up ---- */

/* async def download():
 *     try:
 *         await asyncio.sleep(10)
 *     except asyncio.CancelledError:
 *         await asyncio.sleep(0.1)  # clean up
 *         raise
 */
static AfutFuture *
download (void *data)
{
  AfutError *error = NULL;

  (void) data;
  printf ("download: started\n");
  if (!afut_await_check (afut_sleep (10), &error))
    {
      if (afut_error_is_cancelled (error))
        {
          printf ("download: cancelled, removing the partial file\n");
          afut_await_check (afut_sleep (0.1), NULL);
          printf ("download: cleanup done\n");
        }
      return afut_future_new_for_error (error); /* a bare `raise` */
    }
  printf ("download: finished\n");
  return NULL;
}

static void
cancel_mid_sleep (void)
{
  AfutFuture *task, *outcome;

  printf ("== cancelling a task mid-sleep ==\n");
  task = AFUT_FIBER (download, NULL);
  afut_await_check (afut_sleep (0.5), NULL);
  printf ("main: cancelling the download\n");
  afut_future_cancel (task, NULL);
  outcome = afut_await (task); /* gives our reference away */
  if (afut_future_is_cancelled (outcome))
    printf ("main: the download ended cancelled\n");
  afut_future_unref (outcome);
}

/* ---- cancelling a gather cancels its children ---- */

typedef struct
{
  const char *name;
  double delay;
} ChildArgs;

static AfutFuture *
child (void *data)
{
  const ChildArgs *args = data;
  AfutError *error = NULL;

  printf ("child %s: sleeping %g s\n", args->name, args->delay);
  if (!afut_await_check (afut_sleep (args->delay), &error))
    {
      if (afut_error_is_cancelled (error))
        printf ("child %s: cancelled\n", args->name);
      return afut_future_new_for_error (error);
    }
  printf ("child %s: finished\n", args->name);
  return NULL;
}

static void
cancel_gather (void)
{
  AfutFuture *gather, *outcome;
  size_t i;

  printf ("== cancelling a gather ==\n");
  gather = afut_gather (
      AFUT_FIBER_CORO (child, (&(ChildArgs){ "a", 1 })),
      AFUT_FIBER_CORO (child, (&(ChildArgs){ "b", 2 })),
      AFUT_FIBER_CORO (child, (&(ChildArgs){ "c", 3 })), NULL);
  afut_await_check (afut_sleep (0.5), NULL);
  printf ("main: cancelling the gather\n");
  afut_future_cancel (gather, NULL);
  outcome = afut_await (gather); /* gives our reference away */
  printf ("main: the gather is %s\n",
          afut_future_state_to_string (afut_future_get_state (outcome)));
  for (i = 0; i < afut_gather_get_n_items (outcome); i++)
    printf ("main: child %zu is %s\n", i,
            afut_future_state_to_string (
                afut_future_get_state (afut_gather_get_item (outcome, i))));
  afut_future_unref (outcome);
}

/* ---- the awaiter reads the cancel message ---- */

static AfutFuture *
worker (void *data)
{
  AfutError *error = NULL;

  (void) data;
  printf ("worker: waiting for a job\n");
  if (!afut_await_check (afut_sleep (60), &error))
    return afut_future_new_for_error (error);
  printf ("worker: got a job\n");
  return NULL;
}

static void
cancel_message (void)
{
  AfutFuture *task, *outcome;
  const AfutError *error;

  printf ("== a cancel message ==\n");
  task = AFUT_FIBER (worker, NULL);
  afut_await_check (afut_sleep (0.5), NULL);
  printf ("main: cancelling the worker: 'shutting down'\n");
  /* task.cancel(msg) */
  afut_future_cancel (task, "shutting down");
  outcome = afut_await (task); /* gives our reference away */
  error = afut_future_get_error (outcome);
  if (afut_error_is_cancelled (error))
    printf ("main: the worker was cancelled: '%s'\n", error->message);
  afut_future_unref (outcome);
}

static AfutFuture *
amain (void *data)
{
  (void) data;
  cancel_mid_sleep ();
  cancel_gather ();
  cancel_message ();
  return NULL;
}

int
main (void)
{
  return AFUT_RUN_FIBER (amain, NULL);
}
