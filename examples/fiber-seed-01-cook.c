/* fiber-seed-01-cook.c - seed-01-cook.c with fibers: three cooks at once,
 * asyncio.gather() of three coroutines that each sleep 2 s.  They
 * overlap, so the whole dinner takes 2 s, not 6.  Each coroutine is a
 * plain C function: its argument and locals stay where they are across
 * the await.  Port of tests/seed/01-cook.py.
 */

#define AFUT_IMPLEMENTATION
#include "afut.h"

#include <stdio.h>

/* async def cook(order) */
static AfutFuture *
cook (void *data)
{
  const char *order = data;
  AfutError *error = NULL;

  printf ("Started cooking %s\n", order);
  if (!afut_await_check (afut_sleep (2), &error)) /* simulates cooking time */
    return afut_future_new_for_error (error);      /* a cancellation: raise */
  printf ("Finished %s\n", order);
  return afut_future_new_for_pointer ((char *) order, NULL); /* return order */
}

/* async def main() */
static AfutFuture *
amain (void *data)
{
  (void) data;
  /* await asyncio.gather(...): its outcome is main's */
  return afut_await (afut_gather (AFUT_FIBER_CORO (cook, "Pasta"),
                                  AFUT_FIBER_CORO (cook, "Pizza"),
                                  AFUT_FIBER_CORO (cook, "Salad"), NULL));
}

int
main (void)
{
  return AFUT_RUN_FIBER (amain, NULL); /* asyncio.run(main()) */
}
