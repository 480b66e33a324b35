/* seed-07-gather-error.c - a failing child fails the gather: by default
 * (no return_exceptions) gather raises the first child error as soon as it
 * happens, and main() catches it.  ValueError becomes an error of this
 * program's own "value-error" domain.  Port of tests/seed/07-gather-error.py.
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

/* async def main() */
static void
amain (AfutTask *task)
{
  const AfutError *e;

  AFUT_BEGIN (task);
  /* try: await asyncio.gather(...)  (return_exceptions=False, the default:
   * raises immediately) */
  AFUT_AWAIT_TRY (task, afut_gather (AFUT_CORO (AfutTask, good_task),
                                     AFUT_CORO (AfutTask, failing_task),
                                     NULL));
  /* except Exception as e */
  e = afut_task_caught (task);
  if (e != NULL)
    printf ("Caught: %s\n", e->message);
  AFUT_END (task);
}

int
main (void)
{
  return AFUT_RUN (AfutTask, amain); /* asyncio.run(main()) */
}
