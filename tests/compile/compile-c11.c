/* Proves afut.h, implementation included, builds warning-free as strict
 * C11 (-std=c11 -Wall -Wextra -Wpedantic -Werror), and that the result
 * runs: a task awaiting a sleep on a virtual-clock loop, and the
 * combinators of nothing (`afut_gather (NULL)`), which a sentinel
 * attribute alone would warn about. */
#define AFUT_IMPLEMENTATION
#include "afut.h"

#include <stdio.h>

typedef struct
{
  AfutTask task;
  int steps;
} Probe;

static void
probe (AfutTask *task)
{
  Probe *self = (Probe *) task;
  AFUT_BEGIN (task);
  self->steps++;
  AFUT_AWAIT (task, afut_sleep (1.0));
  self->steps++;
  /* asyncio.gather() of nothing, without a -Wformat sentinel warning. */
  AFUT_AWAIT (task, afut_gather (NULL));
  if (afut_gather_get_n_items (afut_task_awaited (task)) != 0)
    AFUT_RETURN_INT (task, -1);
  AFUT_AWAIT (task, afut_gather_return_exceptions (NULL));
  /* Promise.any([]) rejects with an empty group. */
  AFUT_AWAIT_TRY (task, afut_any (NULL));
  if (!afut_error_matches (afut_task_caught (task), AFUT_ERROR,
                           AFUT_ERROR_GROUP))
    AFUT_RETURN_INT (task, -1);
  AFUT_RETURN_INT (task, self->steps);
  AFUT_END (task);
}

int
main (void)
{
  AfutLoop *loop = afut_loop_new (AFUT_LOOP_VIRTUAL_CLOCK);
  Probe init = { .steps = 0 };
  AfutFuture *task = afut_task_new (loop, probe, sizeof (Probe), &init,
                                    "probe", NULL);
  int ok;

  afut_loop_run_until_complete (loop, task);
  ok = afut_future_get_int (task) == 2 && afut_loop_time (loop) == 1.0;
  afut_future_unref (task);
  afut_loop_unref (loop);
  if (!ok)
    {
      fprintf (stderr, "compile-c11: the probe task did not run as expected\n");
      return 1;
    }
  return 0;
}
