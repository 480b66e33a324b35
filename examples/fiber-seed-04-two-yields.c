/* fiber-seed-04-two-yields.c - seed-04-two-yields.c with fibers: the
 * ready queue is FIFO, so the two coroutines alternate at every
 * `await asyncio.sleep(0)`.  One function serves both, its number in a
 * local: stackless tasks would need a struct for it.  Port of
 * tests/seed/04-two-yields.py.
 */

#define AFUT_IMPLEMENTATION
#include "afut.h"

#include <stdio.h>

/* async def task1() and async def task2(): the same body */
static AfutFuture *
task (void *data)
{
  const char *n = data;
  const char *step[] = { "first", "second" };
  AfutError *error = NULL;
  int i;

  printf ("Task %s started\n", n);
  for (i = 0; i < 2; i++)
    {
      if (!afut_await_check (afut_sleep (0), &error))
        return afut_future_new_for_error (error);
      printf ("Task %s after %s yield\n", n, step[i]);
    }
  return NULL;
}

/* async def main() */
static AfutFuture *
amain (void *data)
{
  (void) data;
  return afut_await (afut_gather (AFUT_FIBER_CORO (task, "1"),
                                  AFUT_FIBER_CORO (task, "2"), NULL));
}

int
main (void)
{
  return AFUT_RUN_FIBER (amain, NULL); /* asyncio.run(main()) */
}
