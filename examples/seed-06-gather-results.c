/* seed-06-gather-results.c - gather's results come in input order, not
 * completion order; the whole gather takes as long as its longest child
 * (3 s), not the sum.  Port of tests/seed/06-gather-results.py.
 */

#define AFUT_IMPLEMENTATION
#include "afut.h"

#include <stdio.h>
#include <stdlib.h>

typedef struct
{
  AfutTask task;
  int id;
  double delay;
} FetchData;

/* async def fetch_data(id, delay) */
static void
fetch_data (AfutTask *task)
{
  FetchData *self = (FetchData *) task;
  char *data;

  AFUT_BEGIN (task);
  printf ("Task %d started\n", self->id);
  AFUT_AWAIT (task, afut_sleep (self->delay));
  printf ("Task %d completed\n", self->id);
  data = malloc (32);
  snprintf (data, 32, "data-%d", self->id);
  AFUT_RETURN_POINTER (task, data, free); /* return f"data-{id}" */
  AFUT_END (task);
}

/* print(results) for a list of strings */
static void
print_string_list (AfutFuture *gather)
{
  size_t i, n = afut_gather_get_n_items (gather);

  printf ("[");
  for (i = 0; i < n; i++)
    printf ("%s'%s'", i > 0 ? ", " : "",
            (const char *) afut_future_get_pointer (
                afut_gather_get_item (gather, i)));
  printf ("]\n");
}

/* async def main() */
static void
amain (AfutTask *task)
{
  AFUT_BEGIN (task);
  /* The children take 2 s, 1 s and 3 s. */
  AFUT_AWAIT (task, afut_gather (
                        AFUT_CORO (FetchData, fetch_data, .id = 1, .delay = 2),
                        AFUT_CORO (FetchData, fetch_data, .id = 2, .delay = 1),
                        AFUT_CORO (FetchData, fetch_data, .id = 3, .delay = 3),
                        NULL));
  /* results = the awaited gather's items */
  print_string_list (afut_task_awaited (task));
  AFUT_END (task);
}

int
main (void)
{
  return AFUT_RUN (AfutTask, amain); /* asyncio.run(main()) */
}
