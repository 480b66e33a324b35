/* fiber-seed-08-gather-return-exceptions.c - seed-08 with fibers: gather
 * with return_exceptions waits for every child, and each result slot
 * holds either the child's value or its error.  Python prints the error
 * slot as ValueError('boom'); this port prints an AfutError as
 * AfutError(DOMAIN, CODE, 'MESSAGE').  Port of
 * tests/seed/08-gather-return-exceptions.py.
 */

#define AFUT_IMPLEMENTATION
#include "afut.h"

#include <stdio.h>

/* Python's ValueError, as an error domain and code. */
#define VALUE_ERROR (afut_quark_from_static_string ("value-error"))
enum
{
  VALUE_ERROR_INVALID = 1
};

/* async def good_task() */
static AfutFuture *
good_task (void *data)
{
  AfutError *error = NULL;

  (void) data;
  if (!afut_await_check (afut_sleep (0.1), &error))
    return afut_future_new_for_error (error);
  return afut_future_new_for_pointer ("good", NULL);
}

/* async def failing_task() */
static AfutFuture *
failing_task (void *data)
{
  AfutError *error = NULL;

  (void) data;
  if (!afut_await_check (afut_sleep (0.05), &error))
    return afut_future_new_for_error (error);
  return afut_future_new_for_error (
      afut_error_new_literal (VALUE_ERROR, VALUE_ERROR_INVALID, "boom"));
}

/* print(results): each slot is a string value or an error */
static void
print_results (AfutFuture *gather)
{
  size_t i, n = afut_gather_get_n_items (gather);

  printf ("[");
  for (i = 0; i < n; i++)
    {
      AfutFuture *slot = afut_gather_get_item (gather, i);
      const AfutError *error = afut_future_get_error (slot);

      if (i > 0)
        printf (", ");
      if (error != NULL)
        printf ("AfutError(%s, %d, '%s')",
                afut_quark_to_string (error->domain), error->code,
                error->message);
      else
        printf ("'%s'", (const char *) afut_future_get_pointer (slot));
    }
  printf ("]\n");
}

/* async def main() */
static AfutFuture *
amain (void *data)
{
  AfutFuture *results;

  (void) data;
  /* Exceptions returned as results */
  results = afut_await (afut_gather_return_exceptions (
      AFUT_FIBER_CORO (good_task, NULL), AFUT_FIBER_CORO (failing_task, NULL),
      NULL));
  if (afut_future_get_error (results) == NULL)
    print_results (results);
  return results;
}

int
main (void)
{
  return AFUT_RUN_FIBER (amain, NULL); /* asyncio.run(main()) */
}
