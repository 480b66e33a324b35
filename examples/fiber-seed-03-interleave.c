/* fiber-seed-03-interleave.c - seed-03-interleave.c with fibers:
 * `await asyncio.sleep(0)` hands control back to the loop, so two
 * gathered coroutines take turns.  Port of tests/seed/03-interleave.py.
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
  if (!afut_await_check (afut_sleep (0), &error)) /* Yield control */
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
  if (!afut_await_check (afut_sleep (0), &error)) /* Yield control */
    return afut_future_new_for_error (error);
  printf ("Task 2 continued\n");
  return NULL;
}

/* async def main() */
static AfutFuture *
amain (void *data)
{
  (void) data;
  return afut_await (afut_gather (AFUT_FIBER_CORO (task1, NULL),
                                  AFUT_FIBER_CORO (task2, NULL), NULL));
}

int
main (void)
{
  return AFUT_RUN_FIBER (amain, NULL); /* asyncio.run(main()) */
}
