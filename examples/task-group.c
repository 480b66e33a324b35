/* task-group.c - structured concurrency, as asyncio.TaskGroup:
 *  - a group waits for all its children where the `async with` block ends
 *    (afut_task_group_exit); their results are read afterwards;
 *  - when a child fails, the group cancels the others (they clean up) and
 *    interrupts the parent's body, then fails with AFUT_ERROR_GROUP, whose
 *    sub-errors are the children's errors (ExceptionGroup.exceptions);
 *  - afut_any (JavaScript's Promise.any, which asyncio lacks): the first
 *    mirror to succeed wins, the others are then cancelled.
 * Port of examples/task-group.py; times are printed from the start of each
 * section, on the loop's clock.
 */

#define AFUT_IMPLEMENTATION
#include "afut.h"

#include <stdarg.h>
#include <stdio.h>

#define DOWNLOAD_ERROR (afut_quark_from_static_string ("download-error"))
enum
{
  DOWNLOAD_ERROR_HTTP = 1
};

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

typedef struct
{
  AfutTask task;
  const char *name;
  double seconds;
  int kb;
  const char *error; /* NULL: the download succeeds */
} Download;

/* async def download(name, seconds, kb, error=None): returns kb */
static void
download (AfutTask *task)
{
  Download *self = (Download *) task;

  AFUT_BEGIN (task);
  say ("%s: downloading, %.1f s", self->name, self->seconds);
  AFUT_AWAIT_TRY (task, afut_sleep (self->seconds));
  if (afut_error_is_cancelled (afut_task_caught (task)))
    {
      say ("%s: cancelled, removing the partial file", self->name);
      AFUT_AWAIT (task, afut_sleep (0.1));
      say ("%s: partial file removed", self->name);
      AFUT_RERAISE (task);
    }
  if (self->error != NULL)
    {
      say ("%s: %s", self->name, self->error);
      AFUT_THROW (task, afut_error_new (DOWNLOAD_ERROR, DOWNLOAD_ERROR_HTTP,
                                        "%s: %s", self->name, self->error));
    }
  say ("%s: done, %d KB", self->name, self->kb);
  AFUT_RETURN_INT (task, self->kb);
  AFUT_END (task);
}

/* What the three demos below keep across their awaits. */
typedef struct
{
  AfutTask task;
  AfutTaskGroup *group;
  AfutFuture *downloads[3];
} Demo;

/* ---- a group whose children all succeed ---- */

static void
group_of_three (AfutTask *task)
{
  Demo *self = (Demo *) task;
  int64_t total = 0;
  size_t i;

  AFUT_BEGIN (task);
  section ("a task group whose downloads all succeed");
  self->group = afut_task_group_new (task); /* async with TaskGroup(): */
  /* The group owns its children: keep a reference to read their results
   * once the block has ended. */
  self->downloads[0] = afut_future_ref (afut_task_group_spawn (
      self->group, AFUT_CORO (Download, download, .name = "a.iso",
                              .seconds = 0.3, .kb = 300)));
  self->downloads[1] = afut_future_ref (afut_task_group_spawn (
      self->group, AFUT_CORO (Download, download, .name = "b.iso",
                              .seconds = 0.5, .kb = 500)));
  self->downloads[2] = afut_future_ref (afut_task_group_spawn (
      self->group, AFUT_CORO (Download, download, .name = "c.iso",
                              .seconds = 0.2, .kb = 200)));
  say ("main: three downloads started");
  AFUT_AWAIT (task, afut_task_group_exit (self->group)); /* end of block */
  for (i = 0; i < 3; i++)
    {
      total += afut_future_get_int (self->downloads[i]);
      afut_future_unref (self->downloads[i]);
    }
  say ("main: all done, %d KB in total", (int) total);
  AFUT_END (task);
}

/* ---- a group where one child fails ---- */

static void
group_with_a_failure (AfutTask *task)
{
  Demo *self = (Demo *) task;
  AfutFuture *group_exit;
  const AfutError *error;
  size_t i;

  AFUT_BEGIN (task);
  section ("a task group where one download fails");
  self->group = afut_task_group_new (task);
  afut_task_group_spawn (self->group,
                         AFUT_CORO (Download, download, .name = "d.iso",
                                    .seconds = 1.0, .kb = 900));
  afut_task_group_spawn (self->group,
                         AFUT_CORO (Download, download, .name = "e.iso",
                                    .seconds = 0.3, .error = "HTTP 503"));
  afut_task_group_spawn (self->group,
                         AFUT_CORO (Download, download, .name = "f.iso",
                                    .seconds = 0.2, .kb = 200));
  say ("main: writing the index meanwhile");
  AFUT_AWAIT_TRY (task, afut_sleep (1.0));
  /* Python re-raises into the `async with`.  In C a re-raise would end
   * this task (the group's error would reach our caller without its
   * sub-errors): go on to the block's end instead, where the group takes
   * back the cancellation it caused. */
  if (afut_error_is_cancelled (afut_task_caught (task)))
    say ("main: interrupted, no index");
  else
    say ("main: index written");
  AFUT_AWAIT_TRY (task, afut_task_group_exit (self->group));
  error = afut_task_caught (task);
  if (afut_error_matches (error, AFUT_ERROR, AFUT_ERROR_GROUP))
    {
      /* except ExceptionGroup as errors: the exit future holds them */
      group_exit = afut_task_awaited (task);
      say ("main: the group failed, %zu error(s):",
           afut_future_get_n_sub_errors (group_exit));
      for (i = 0; i < afut_future_get_n_sub_errors (group_exit); i++)
        say ("main:   %s", afut_future_get_sub_error (group_exit, i)->message);
    }
  else if (error != NULL)
    AFUT_RERAISE (task);
  AFUT_END (task);
}

/* ---- any: the first mirror that succeeds ---- */

static void
first_mirror (AfutTask *task)
{
  Demo *self = (Demo *) task;
  size_t i;

  AFUT_BEGIN (task);
  section ("any: the first mirror that succeeds");
  self->downloads[0] = AFUT_SPAWN (Download, download, .name = "mirror-1",
                                   .seconds = 0.1, .error = "HTTP 404");
  self->downloads[1] = AFUT_SPAWN (Download, download, .name = "mirror-2",
                                   .seconds = 0.3, .kb = 700);
  self->downloads[2] = AFUT_SPAWN (Download, download, .name = "mirror-3",
                                   .seconds = 0.5, .kb = 700);
  /* The array form takes references of its own: the mirrors stay ours. */
  AFUT_AWAIT (task, afut_any_v (self->downloads, 3));
  say ("main: got %d KB, cancelling the other mirrors",
       (int) afut_future_get_int (afut_task_awaited (task)));
  for (i = 0; i < 3; i++)
    afut_future_cancel (self->downloads[i], NULL);
  /* await asyncio.gather(*mirrors, return_exceptions=True) */
  AFUT_AWAIT (task, afut_gather_return_exceptions_v (self->downloads, 3));
  for (i = 0; i < 3; i++)
    afut_future_unref (self->downloads[i]);
  say ("main: done");
  AFUT_END (task);
}

static void
amain (AfutTask *task)
{
  AFUT_BEGIN (task);
  AFUT_AWAIT (task, AFUT_CORO (Demo, group_of_three));
  AFUT_AWAIT (task, AFUT_CORO (Demo, group_with_a_failure));
  AFUT_AWAIT (task, AFUT_CORO (Demo, first_mirror));
  AFUT_END (task);
}

int
main (void)
{
  return AFUT_RUN (AfutTask, amain);
}
