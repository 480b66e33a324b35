/* fiber-seed-09-greet-not-awaited.c - seed-09 with fibers: calling a
 * coroutine function only makes a coroutine object; nothing runs until it
 * is awaited.  Dropping one that never ran is reported on stderr, as
 * Python's "coroutine 'greet' was never awaited" RuntimeWarning.  Port of
 * tests/seed/09-greet-not-awaited.py.
 */

#define AFUT_IMPLEMENTATION
#include "afut.h"

#include <stdio.h>

/* async def greet() */
static AfutFuture *
greet (void *data)
{
  AfutError *error = NULL;

  (void) data;
  if (!afut_await_check (afut_sleep (1), &error))
    return afut_future_new_for_error (error);
  printf ("greeted\n");
  return NULL;
}

int
main (void)
{
  AfutLoop *loop;

  /* greet()  # does nothing: just a coroutine object, not running
   *
   * An afut coroutine object belongs to a loop, and outside asyncio.run()
   * there is none: make one for it to belong to, which never runs.
   * Dropping the object warns that it was never awaited; its stack was
   * never taken. */
  loop = afut_loop_new (AFUT_LOOP_NONE);
  afut_future_unref (afut_fiber_new_full (
      loop, &(AfutFiberOptions){ .name = "greet", .lazy = true }, greet, NULL,
      NULL));
  afut_loop_unref (loop);

  printf ("after greet()\n");
  return AFUT_RUN_FIBER (greet, NULL); /* asyncio.run(greet())  # Now it runs */
}
