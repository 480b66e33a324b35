/* fiber-seed-02-hello.c - seed-02-hello.c with fibers: main() awaits
 * say_hello(), which runs at once inside the await, sleeps 1 s and
 * prints.  Port of tests/seed/02-hello.py.
 */

#define AFUT_IMPLEMENTATION
#include "afut.h"

#include <stdio.h>

/* async def say_hello() */
static AfutFuture *
say_hello (void *data)
{
  AfutError *error = NULL;

  (void) data;
  if (!afut_await_check (afut_sleep (1), &error))
    return afut_future_new_for_error (error);
  printf ("Hello!\n");
  return NULL;
}

/* async def main() */
static AfutFuture *
amain (void *data)
{
  (void) data;
  return afut_await (AFUT_FIBER_CORO (say_hello, NULL));
}

int
main (void)
{
  return AFUT_RUN_FIBER (amain, NULL); /* asyncio.run(main()) */
}
