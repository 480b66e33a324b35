/* seed-09-greet-not-awaited.c - calling a coroutine function only makes a
 * coroutine object; nothing runs until it is awaited.  Dropping one that
 * never ran is reported on stderr, as Python's "coroutine 'greet' was
 * never awaited" RuntimeWarning.  Port of tests/seed/09-greet-not-awaited.py.
 */

#define AFUT_IMPLEMENTATION
#include "afut.h"

#include <stdio.h>

/* async def greet() */
static void
greet (AfutTask *task)
{
  AFUT_BEGIN (task);
  AFUT_AWAIT (task, afut_sleep (1));
  printf ("greeted\n");
  AFUT_END (task);
}

int
main (void)
{
  AfutLoop *loop;

  /* greet()  # does nothing: just a coroutine object, not running
   *
   * An afut coroutine object belongs to a loop, and outside asyncio.run()
   * there is none: make one for it to belong to, which never runs.
   * Dropping the object warns that it was never awaited. */
  loop = afut_loop_new (AFUT_LOOP_NONE);
  afut_future_unref (
      afut_coro_new (loop, greet, sizeof (AfutTask), NULL, "greet", NULL));
  afut_loop_unref (loop);

  printf ("after greet()\n");
  return AFUT_RUN (AfutTask, greet); /* asyncio.run(greet())  # Now it runs */
}
