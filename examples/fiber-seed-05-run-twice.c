/* fiber-seed-05-run-twice.c - seed-05-run-twice.c with fibers: two
 * asyncio.run() calls in a row: each runs its coroutine to completion on
 * a fresh loop before the next starts, so nothing interleaves.  Port of
 * tests/seed/05-run-twice.py.
 */

#define AFUT_IMPLEMENTATION
#include "afut.h"

#include <stdio.h>

/* async def task1() */
static AfutFuture *
task1 (void *data)
{
  AfutError *error = NULL;

  (void) data;
  printf ("Task 1 started\n");
  if (!afut_await_check (afut_sleep (0), &error))
    return afut_future_new_for_error (error);
  printf ("Task 1 continued\n");
  return NULL;
}

/* async def task2() */
static AfutFuture *
task2 (void *data)
{
  AfutError *error = NULL;

  (void) data;
  printf ("Task 2 started\n");
  if (!afut_await_check (afut_sleep (0), &error))
    return afut_future_new_for_error (error);
  printf ("Task 2 continued\n");
  return NULL;
}

int
main (void)
{
  /* Sequential execution (not concurrent) */
  if (AFUT_RUN_FIBER (task1, NULL) != 0) /* Runs to completion first */
    return 1;
  return AFUT_RUN_FIBER (task2, NULL); /* Then runs separately */
}
