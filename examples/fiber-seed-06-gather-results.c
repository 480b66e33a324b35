/* fiber-seed-06-gather-results.c - seed-06-gather-results.c with fibers:
 * gather's results come in input order, not completion order; the whole
 * gather takes as long as its longest child (3 s), not the sum.  The
 * arguments of each call live in main's frame, which outlives them.
 * Port of tests/seed/06-gather-results.py.
 */

#define AFUT_IMPLEMENTATION
#include "afut.h"

#include <stdio.h>
#include <stdlib.h>

typedef struct
{
  int id;
  double delay;
} FetchArgs;

/* async def fetch_data(id, delay) */
static AfutFuture *
fetch_data (void *data)
{
  const FetchArgs *args = data;
  AfutError *error = NULL;
  char *result;

  printf ("Task %d started\n", args->id);
  if (!afut_await_check (afut_sleep (args->delay), &error))
    return afut_future_new_for_error (error);
  printf ("Task %d completed\n", args->id);
  result = malloc (32);
  snprintf (result, 32, "data-%d", args->id);
  return afut_future_new_for_pointer (result, free); /* return f"data-{id}" */
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
static AfutFuture *
amain (void *data)
{
  AfutFuture *results;

  (void) data;
  results = afut_await (afut_gather (
      AFUT_FIBER_CORO (fetch_data, (&(FetchArgs){ 1, 2 })), /* 2 seconds */
      AFUT_FIBER_CORO (fetch_data, (&(FetchArgs){ 2, 1 })), /* 1 second */
      AFUT_FIBER_CORO (fetch_data, (&(FetchArgs){ 3, 3 })), /* 3 seconds */
      NULL));
  if (afut_future_get_error (results) == NULL)
    print_string_list (results); /* ['data-1', 'data-2', 'data-3'] */
  return results;
}

int
main (void)
{
  return AFUT_RUN_FIBER (amain, NULL); /* asyncio.run(main()) */
}
