/* timeouts.c - deadlines, as asyncio's wait_for, timeout and shield:
 *  - afut_wait_for: a fetch that takes too long is cancelled, its cleanup
 *    runs (awaiting, even), and only then does the wait fail with
 *    AFUT_ERROR_TIMEOUT; a fetch that finishes in time gives its value;
 *  - afut_timeout_enter ... afut_timeout_exit (asyncio.timeout): one
 *    deadline over several awaits, pushed back with
 *    afut_timeout_reschedule each time a chunk arrives; a download that
 *    stalls times out inside the scope;
 *  - afut_shield: cancelling the task that waits for a save does not stop
 *    the save.
 * Port of examples/timeouts.py; times are printed from the start of each
 * section, on the loop's clock.
 */

#define AFUT_IMPLEMENTATION
#include "afut.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>

static double t0;

static double
now (void)
{
  return afut_loop_time (afut_loop_get_running ());
}

static void
section (const char *title)
{
  t0 = now ();
  printf ("== %s ==\n", title);
}

/* printf with the time in front: "[0.5] ..." */
static void
say (const char *format, ...)
{
  va_list args;

  printf ("[%.1f] ", now () - t0);
  va_start (args, format);
  vprintf (format, args);
  va_end (args);
  printf ("\n");
}

/* ---- wait_for: a fetch that takes too long, one in time ---- */

typedef struct
{
  AfutTask task;
  const char *name;
  double seconds;
} Fetch;

/* async def fetch(name, seconds): returns the page */
static void
fetch (AfutTask *task)
{
  Fetch *self = (Fetch *) task;
  char *page;

  AFUT_BEGIN (task);
  say ("fetch %s: started, needs %.1f s", self->name, self->seconds);
  AFUT_AWAIT_TRY (task, afut_sleep (self->seconds));
  if (afut_error_is_cancelled (afut_task_caught (task)))
    {
      say ("fetch %s: cancelled, closing the connection", self->name);
      AFUT_AWAIT (task, afut_sleep (0.1));
      say ("fetch %s: connection closed", self->name);
      AFUT_RERAISE (task);
    }
  say ("fetch %s: done", self->name);
  page = malloc (64);
  snprintf (page, 64, "<html>%s</html>", self->name);
  AFUT_RETURN_POINTER (task, page, free);
  AFUT_END (task);
}

static void
wait_for_demo (AfutTask *task)
{
  const AfutError *error;

  AFUT_BEGIN (task);
  section ("wait_for: a fetch that takes too long");
  /* try: page = await asyncio.wait_for(fetch("a", 3.0), timeout=0.5) */
  AFUT_AWAIT_TRY (task, afut_wait_for (AFUT_CORO (Fetch, fetch, .name = "a",
                                                  .seconds = 3.0),
                                       0.5));
  error = afut_task_caught (task);
  if (afut_error_matches (error, AFUT_ERROR, AFUT_ERROR_TIMEOUT))
    say ("fetch a: timed out");
  else if (error != NULL)
    AFUT_RERAISE (task);
  else
    say ("fetch a: got %s",
         (char *) afut_future_get_pointer (afut_task_awaited (task)));

  section ("wait_for: a fetch in time");
  AFUT_AWAIT (task, afut_wait_for (AFUT_CORO (Fetch, fetch, .name = "b",
                                              .seconds = 0.3),
                                   0.5));
  /* The page belongs to the fetch, which the wait_for keeps alive. */
  say ("fetch b: got %s",
       (char *) afut_future_get_pointer (afut_task_awaited (task)));
  AFUT_END (task);
}

/* ---- timeout: one deadline over several awaits ---- */

typedef struct
{
  AfutTask task;
  const char *name;
  const double *chunk_seconds;
  size_t n_chunks;
  size_t i;             /* the loop counter lives across awaits */
  AfutTimeout deadline; /* the scope too */
} Download;

static void
download (AfutTask *task)
{
  Download *self = (Download *) task;
  const AfutError *error;

  AFUT_BEGIN (task);
  say ("download %s: started, 0.5 s allowed without progress", self->name);
  /* async with asyncio.timeout(0.5) as deadline: */
  afut_timeout_enter (task, &self->deadline, 0.5);
  for (self->i = 0; self->i < self->n_chunks; self->i++)
    {
      AFUT_AWAIT_TRY (task, afut_sleep (self->chunk_seconds[self->i]));
      if (afut_task_caught (task) != NULL)
        break; /* leave the block with the error */
      afut_timeout_reschedule (&self->deadline, now () + 0.5);
      say ("download %s: chunk %zu received, deadline moved to %.1f",
           self->name, self->i + 1, afut_timeout_when (&self->deadline) - t0);
    }
  /* The end of the block: an expiry's cancellation becomes a timeout. */
  afut_timeout_exit (&self->deadline);
  error = afut_task_caught (task);
  if (afut_error_matches (error, AFUT_ERROR, AFUT_ERROR_TIMEOUT))
    {
      say ("download %s: stalled, timed out (expired: %s)", self->name,
           afut_timeout_expired (&self->deadline) ? "yes" : "no");
      AFUT_RETURN (task);
    }
  if (error != NULL)
    AFUT_RERAISE (task); /* a cancellation from outside stays one */
  say ("download %s: complete", self->name);
  AFUT_END (task);
}

static const double steady[] = { 0.4, 0.4, 0.4 };
static const double stalling[] = { 0.4, 0.8 };

static void
timeout_demo (AfutTask *task)
{
  AFUT_BEGIN (task);
  section ("timeout: a deadline pushed back at each chunk");
  AFUT_AWAIT (task, AFUT_CORO (Download, download, .name = "x",
                               .chunk_seconds = steady, .n_chunks = 3));
  section ("timeout: a download that stalls");
  AFUT_AWAIT (task, AFUT_CORO (Download, download, .name = "y",
                               .chunk_seconds = stalling, .n_chunks = 2));
  AFUT_END (task);
}

/* ---- shield: a save survives the cancellation of its caller ---- */

typedef struct
{
  AfutTask task;
  const char *document;
  AfutFuture *saving; /* the save task, owned by shield_demo */
} Save;

static void
save (AfutTask *task)
{
  Save *self = (Save *) task;

  AFUT_BEGIN (task);
  say ("save %s: writing", self->document);
  AFUT_AWAIT (task, afut_sleep (0.5));
  say ("save %s: written", self->document);
  AFUT_END (task);
}

static void
close_document (AfutTask *task)
{
  Save *self = (Save *) task;

  AFUT_BEGIN (task);
  say ("close %s: waiting for the save", self->document);
  /* await asyncio.shield(saving); the shield takes its own reference */
  AFUT_AWAIT_TRY (task, afut_shield (afut_future_ref (self->saving)));
  if (afut_error_is_cancelled (afut_task_caught (task)))
    {
      say ("close %s: cancelled, the save goes on", self->document);
      AFUT_RERAISE (task);
    }
  say ("close %s: closed", self->document);
  AFUT_END (task);
}

typedef struct
{
  AfutTask task;
  AfutFuture *saving;
  AfutFuture *closing;
} ShieldDemo;

static void
shield_demo (AfutTask *task)
{
  ShieldDemo *self = (ShieldDemo *) task;

  AFUT_BEGIN (task);
  section ("shield: a cancellation does not stop the save");
  self->saving = AFUT_SPAWN (Save, save, .document = "notes.txt");
  self->closing = AFUT_SPAWN (Save, close_document, .document = "notes.txt",
                              .saving = self->saving);
  AFUT_AWAIT (task, afut_sleep (0.2));
  say ("main: the user quits, cancelling the close");
  afut_future_cancel (self->closing, NULL);
  AFUT_AWAIT_TRY (task, self->closing); /* gives our reference away */
  self->closing = NULL;
  if (afut_error_is_cancelled (afut_task_caught (task)))
    say ("main: close cancelled, the save is %s",
         afut_future_is_done (self->saving) ? "done" : "still running");
  AFUT_AWAIT (task, self->saving);
  self->saving = NULL;
  say ("main: save finished, quitting");
  AFUT_END (task);
}

static void
amain (AfutTask *task)
{
  AFUT_BEGIN (task);
  AFUT_AWAIT (task, AFUT_CORO (AfutTask, wait_for_demo));
  AFUT_AWAIT (task, AFUT_CORO (AfutTask, timeout_demo));
  AFUT_AWAIT (task, AFUT_CORO (ShieldDemo, shield_demo));
  AFUT_END (task);
}

int
main (void)
{
  return AFUT_RUN (AfutTask, amain);
}
