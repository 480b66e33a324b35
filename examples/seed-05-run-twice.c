/* seed-05-run-twice.c - two asyncio.run() calls in a row: each runs its
 * coroutine to completion on a fresh loop before the next starts, so
 * nothing interleaves.  Port of tests/seed/05-run-twice.py.
 */

#define AFUT_IMPLEMENTATION
#include "afut.h"

#include <stdio.h>

/* async def task1() */
static void
task1 (AfutTask *task)
{
  AFUT_BEGIN (task);
  printf ("Task 1 started\n");
  AFUT_AWAIT (task, afut_sleep (0));
  printf ("Task 1 continued\n");
  AFUT_END (task);
}

/* async def task2() */
static void
task2 (AfutTask *task)
{
  AFUT_BEGIN (task);
  printf ("Task 2 started\n");
  AFUT_AWAIT (task, afut_sleep (0));
  printf ("Task 2 continued\n");
  AFUT_END (task);
}

int
main (void)
{
  /* Sequential execution (not concurrent) */
  if (AFUT_RUN (AfutTask, task1) != 0) /* Runs to completion first */
    return 1;
  return AFUT_RUN (AfutTask, task2); /* Then runs separately */
}
