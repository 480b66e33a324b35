/* seed-02-hello.c - awaiting a coroutine: main() awaits say_hello(), which
 * runs at once inside the await, sleeps 1 s and prints.  Port of
 * tests/seed/02-hello.py.
 */

#define AFUT_IMPLEMENTATION
#include "afut.h"

#include <stdio.h>

/* async def say_hello() */
static void
say_hello (AfutTask *task)
{
  AFUT_BEGIN (task);
  AFUT_AWAIT (task, afut_sleep (1));
  printf ("Hello!\n");
  AFUT_END (task);
}

/* async def main() */
static void
amain (AfutTask *task)
{
  AFUT_BEGIN (task);
  AFUT_AWAIT (task, AFUT_CORO (AfutTask, say_hello));
  AFUT_END (task);
}

int
main (void)
{
  return AFUT_RUN (AfutTask, amain); /* asyncio.run(main()) */
}
