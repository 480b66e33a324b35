/* seed-08-gather-return-exceptions.c - gather with return_exceptions: it
 * waits for every child, and each result slot holds either the child's
 * value or its error.  Python prints the error slot as ValueError('boom');
 * this port prints an AfutError as AfutError(DOMAIN, CODE, 'MESSAGE').
 * Port of tests/seed/08-gather-return-exceptions.py.
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
static void
good_task (AfutTask *task)
{
  AFUT_BEGIN (task);
  AFUT_AWAIT (task, afut_sleep (0.1));
  AFUT_RETURN_POINTER (task, "good", NULL);
  AFUT_END (task);
}

/* async def failing_task() */
static void
failing_task (AfutTask *task)
{
  AFUT_BEGIN (task);
  AFUT_AWAIT (task, afut_sleep (0.05));
  AFUT_THROW (task, afut_error_new_literal (VALUE_ERROR, VALUE_ERROR_INVALID,
                                            "boom"));
  AFUT_END (task);
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
static void
amain (AfutTask *task)
{
  AFUT_BEGIN (task);
  /* Exceptions returned as results */
  AFUT_AWAIT (task, afut_gather_return_exceptions (
                        AFUT_CORO (AfutTask, good_task),
                        AFUT_CORO (AfutTask, failing_task), NULL));
  print_results (afut_task_awaited (task));
  AFUT_END (task);
}

int
main (void)
{
  return AFUT_RUN (AfutTask, amain); /* asyncio.run(main()) */
}
