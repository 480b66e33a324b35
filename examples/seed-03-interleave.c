/* seed-03-interleave.c - cooperative scheduling: `await asyncio.sleep(0)`
 * hands control back to the loop, so two gathered coroutines take turns.
 * Port of tests/seed/03-interleave.py.
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
  AFUT_AWAIT (task, afut_sleep (0)); /* Yield control */
  printf ("Task 1 continued\n");
  AFUT_END (task);
}

/* async def task2() */
static void
task2 (AfutTask *task)
{
  AFUT_BEGIN (task);
  printf ("Task 2 started\n");
  AFUT_AWAIT (task, afut_sleep (0)); /* Yield control */
  printf ("Task 2 continued\n");
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
