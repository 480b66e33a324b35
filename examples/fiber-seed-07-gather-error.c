/* fiber-seed-07-gather-error.c - seed-07-gather-error.c with fibers: a
 * failing child fails the gather: by default (no return_exceptions)
 * gather raises the first child error as soon as it happens, and main()
 * catches it: the await gives the error back, as `except` would.
 * ValueError becomes an error of this program's own "value-error" domain.
 * Port of tests/seed/07-gather-error.py.
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
  /* raise ValueError("boom") */
  return afut_future_new_for_error (
      afut_error_new_literal (VALUE_ERROR, VALUE_ERROR_INVALID, "boom"));
}

/* async def main() */
static AfutFuture *
amain (void *data)
{
  AfutError *e = NULL;

  (void) data;
  /* try: await asyncio.gather(...)  (return_exceptions=False, the default:
   * raises immediately) */
  afut_await_check (afut_gather (AFUT_FIBER_CORO (good_task, NULL),
                                 AFUT_FIBER_CORO (failing_task, NULL), NULL),
                    &e);
  /* except Exception as e */
  if (e != NULL)
    {
      printf ("Caught: %s\n", e->message);
      afut_error_free (e);
    }
  return NULL;
}

int
main (void)
{
  return AFUT_RUN_FIBER (amain, NULL); /* asyncio.run(main()) */
}
