/* seed-04-two-yields.c - two yields each: the ready queue is FIFO, so the
 * two coroutines alternate at every `await asyncio.sleep(0)`.  Port of
 * tests/seed/04-two-yields.py.
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
  printf ("Task 1 after first yield\n");
  AFUT_AWAIT (task, afut_sleep (0));
  printf ("Task 1 after second yield\n");
  AFUT_END (task);
}

/* async def task2() */
static void
task2 (AfutTask *task)
{
  AFUT_BEGIN (task);
  printf ("Task 2 started\n");
  AFUT_AWAIT (task, afut_sleep (0));
  printf ("Task 2 after first yield\n");
  AFUT_AWAIT (task, afut_sleep (0));
  printf ("Task 2 after second yield\n");
  AFUT_END (task);
}

/* async def main() */
static void
amain (AfutTask *task)
{
  AFUT_BEGIN (task);
  AFUT_AWAIT (task, afut_gather (AFUT_CORO (AfutTask, task1),
                                 AFUT_CORO (AfutTask, task2), NULL));
  AFUT_END (task);
}

int
main (void)
{
  return AFUT_RUN (AfutTask, amain); /* asyncio.run(main()) */
}
