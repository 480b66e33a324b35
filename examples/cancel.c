/* cancel.c - cancellation, as asyncio's Task.cancel():
 *  - a task cancelled mid-sleep gets the cancellation at its await, cleans
 *    up (awaiting, even) and re-raises it, so it still ends cancelled;
 *  - cancelling a gather cancels each of its pending children;
 *  - a cancel message given to afut_future_cancel() reaches the awaiter
 *    as the message of the cancellation error.
 */

#define AFUT_IMPLEMENTATION
#include "afut.h"

#include <stdio.h>

/* ---- a task cancelled mid-sleep cleans up ---- */

/* async def download():
 *     try:
 *         await asyncio.sleep(10)
 *     except asyncio.CancelledError:
 *         await asyncio.sleep(0.1)  # clean up
 *         raise
 */
static void
download (AfutTask *task)
{
  AFUT_BEGIN (task);
  printf ("download: started\n");
  AFUT_AWAIT_TRY (task, afut_sleep (10));
  if (afut_error_is_cancelled (afut_task_caught (task)))
    {
      printf ("download: cancelled, removing the partial file\n");
      AFUT_AWAIT (task, afut_sleep (0.1));
      printf ("download: cleanup done\n");
      AFUT_RERAISE (task); /* the cancellation, as a bare `raise` */
    }
  printf ("download: finished\n");
  AFUT_END (task);
}

typedef struct
{
  AfutTask task;
  AfutFuture *download;
} CancelMidSleep;

static void
cancel_mid_sleep (AfutTask *task)
{
  CancelMidSleep *self = (CancelMidSleep *) task;

  AFUT_BEGIN (task);
  printf ("== cancelling a task mid-sleep ==\n");
  self->download = AFUT_SPAWN (AfutTask, download);
  AFUT_AWAIT (task, afut_sleep (0.5));
  printf ("main: cancelling the download\n");
  afut_future_cancel (self->download, NULL);
  AFUT_AWAIT_TRY (task, self->download); /* gives our reference away */
  self->download = NULL;
  if (afut_error_is_cancelled (afut_task_caught (task)))
    printf ("main: the download ended cancelled\n");
  AFUT_END (task);
}

/* ---- cancelling a gather cancels its children ---- */

typedef struct
{
  AfutTask task;
  const char *name;
  double delay;
} Child;

static void
child (AfutTask *task)
{
  Child *self = (Child *) task;

  AFUT_BEGIN (task);
  printf ("child %s: sleeping %g s\n", self->name, self->delay);
  AFUT_AWAIT_TRY (task, afut_sleep (self->delay));
  if (afut_error_is_cancelled (afut_task_caught (task)))
    {
      printf ("child %s: cancelled\n", self->name);
      AFUT_RERAISE (task);
    }
  printf ("child %s: finished\n", self->name);
  AFUT_END (task);
}

typedef struct
{
  AfutTask task;
  AfutFuture *gather;
} CancelGather;

static void
cancel_gather (AfutTask *task)
{
  CancelGather *self = (CancelGather *) task;
  AfutFuture *gather;
  size_t i;

  AFUT_BEGIN (task);
  printf ("== cancelling a gather ==\n");
  self->gather
    = afut_gather (AFUT_CORO (Child, child, .name = "a", .delay = 1),
                   AFUT_CORO (Child, child, .name = "b", .delay = 2),
                   AFUT_CORO (Child, child, .name = "c", .delay = 3), NULL);
  AFUT_AWAIT (task, afut_sleep (0.5));
  printf ("main: cancelling the gather\n");
  afut_future_cancel (self->gather, NULL);
  AFUT_AWAIT_TRY (task, self->gather); /* gives our reference away */
  self->gather = NULL;
  gather = afut_task_awaited (task);
  printf ("main: the gather is %s\n",
          afut_future_state_to_string (afut_future_get_state (gather)));
  for (i = 0; i < afut_gather_get_n_items (gather); i++)
    printf ("main: child %zu is %s\n", i,
            afut_future_state_to_string (
                afut_future_get_state (afut_gather_get_item (gather, i))));
  AFUT_END (task);
}

/* ---- the awaiter reads the cancel message ---- */

static void
worker (AfutTask *task)
{
  AFUT_BEGIN (task);
  printf ("worker: waiting for a job\n");
  AFUT_AWAIT (task, afut_sleep (60));
  printf ("worker: got a job\n");
  AFUT_END (task);
}

typedef struct
{
  AfutTask task;
  AfutFuture *worker;
} CancelMessage;

static void
cancel_message (AfutTask *task)
{
  CancelMessage *self = (CancelMessage *) task;
  const AfutError *error;

  AFUT_BEGIN (task);
  printf ("== a cancel message ==\n");
  self->worker = AFUT_SPAWN (AfutTask, worker);
  AFUT_AWAIT (task, afut_sleep (0.5));
  printf ("main: cancelling the worker: 'shutting down'\n");
  /* task.cancel(msg) */
  afut_future_cancel (self->worker, "shutting down");
  AFUT_AWAIT_TRY (task, self->worker); /* gives our reference away */
  self->worker = NULL;
  error = afut_task_caught (task);
  if (afut_error_is_cancelled (error))
    printf ("main: the worker was cancelled: '%s'\n", error->message);
  AFUT_END (task);
}

static void
amain (AfutTask *task)
{
  AFUT_BEGIN (task);
  AFUT_AWAIT (task, AFUT_CORO (CancelMidSleep, cancel_mid_sleep));
  AFUT_AWAIT (task, AFUT_CORO (CancelGather, cancel_gather));
  AFUT_AWAIT (task, AFUT_CORO (CancelMessage, cancel_message));
  AFUT_END (task);
}

int
main (void)
{
  return AFUT_RUN (AfutTask, amain);
}
