/* seed-01-cook.c - three cooks at once: asyncio.gather() of three
 * coroutines that each sleep 2 s.  They overlap, so the whole dinner takes
 * 2 s, not 6.  Port of tests/seed/01-cook.py.
 */

#define AFUT_IMPLEMENTATION
#include "afut.h"

#include <stdio.h>

typedef struct
{
  AfutTask task;
  const char *order;
} Cook;

/* async def cook(order) */
static void
cook (AfutTask *task)
{
  Cook *self = (Cook *) task;

  AFUT_BEGIN (task);
  printf ("Started cooking %s\n", self->order);
  AFUT_AWAIT (task, afut_sleep (2)); /* simulates cooking time */
  printf ("Finished %s\n", self->order);
  AFUT_RETURN_POINTER (task, (char *) self->order, NULL);
  AFUT_END (task);
}

/* async def main() */
static void
amain (AfutTask *task)
{
  AFUT_BEGIN (task);
  AFUT_AWAIT (task, afut_gather (AFUT_CORO (Cook, cook, .order = "Pasta"),
                                 AFUT_CORO (Cook, cook, .order = "Pizza"),
                                 AFUT_CORO (Cook, cook, .order = "Salad"),
                                 NULL));
  AFUT_END (task);
}

int
main (void)
{
  return AFUT_RUN (AfutTask, amain); /* asyncio.run(main()) */
}
