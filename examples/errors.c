/* errors.c - errors in afut, as asyncio's exceptions:
 *  - a task raises (AFUT_THROW) and the task awaiting it catches the error
 *    (AFUT_AWAIT_TRY, afut_task_caught);
 *  - gather without return_exceptions fails with the first child error, at
 *    once, while the other children keep running to the end;
 *  - gather with return_exceptions waits for every child: each result slot
 *    holds a value or an error.
 */

#define AFUT_IMPLEMENTATION
#include "afut.h"

#include <stdio.h>
#include <stdlib.h>

/* This program's own error domain, as a Python program has its own
 * exception classes. */
#define PARSE_ERROR (afut_quark_from_static_string ("parse-error"))
enum
{
  PARSE_ERROR_NOT_A_NUMBER = 1
};

static void
print_error (const AfutError *error)
{
  printf ("AfutError(%s, %d, '%s')", afut_quark_to_string (error->domain),
          error->code, error->message);
}

static double
now (void)
{
  return afut_loop_time (afut_loop_get_running ());
}

typedef struct
{
  AfutTask task;
  const char *text;
  double delay;
} ParseNumber;

/* async def parse_number(text, delay): int(text) after delay, or raise */
static void
parse_number (AfutTask *task)
{
  ParseNumber *self = (ParseNumber *) task;
  char *end;
  long value;

  AFUT_BEGIN (task);
  AFUT_AWAIT (task, afut_sleep (self->delay));
  value = strtol (self->text, &end, 10);
  if (end == self->text || *end != '\0')
    {
      printf ("parse_number('%s') raises\n", self->text);
      AFUT_THROW (task, afut_error_new (PARSE_ERROR, PARSE_ERROR_NOT_A_NUMBER,
                                        "not a number: %s", self->text));
    }
  printf ("parse_number('%s') returns %ld\n", self->text, value);
  AFUT_RETURN_INT (task, value);
  AFUT_END (task);
}

/* try: await parse_number(...) except ParseError as e: ... */
static void
catch_in_awaiter (AfutTask *task)
{
  const AfutError *error;

  AFUT_BEGIN (task);
  printf ("== an error raised in a task, caught by its awaiter ==\n");
  AFUT_AWAIT_TRY (task, AFUT_CORO (ParseNumber, parse_number, .text = "42",
                                   .delay = 0.1));
  error = afut_task_caught (task);
  if (error == NULL)
    printf ("got %lld\n",
            (long long) afut_future_get_int (afut_task_awaited (task)));

  AFUT_AWAIT_TRY (task, AFUT_CORO (ParseNumber, parse_number,
                                   .text = "forty-two", .delay = 0.1));
  error = afut_task_caught (task);
  if (error != NULL)
    {
      printf ("caught ");
      print_error (error);
      printf ("\n");
    }
  AFUT_END (task);
}

typedef struct
{
  AfutTask task;
  double start;
  AfutFuture *slow;
} GatherFirstError;

/* gather(slow, failing): the gather raises when `failing` does; `slow`
 * is not cancelled, and we await it afterwards. */
static void
gather_first_error (AfutTask *task)
{
  GatherFirstError *self = (GatherFirstError *) task;
  const AfutError *error;

  AFUT_BEGIN (task);
  printf ("== gather: the first error fails it, the others keep running ==\n");
  self->start = now ();
  /* Keep a reference to `slow`: the gather takes the one it is given. */
  self->slow = AFUT_CORO (ParseNumber, parse_number, .text = "7",
                          .delay = 0.3);
  AFUT_AWAIT_TRY (task, afut_gather (afut_future_ref (self->slow),
                                     AFUT_CORO (ParseNumber, parse_number,
                                                .text = "seven",
                                                .delay = 0.1),
                                     NULL));
  error = afut_task_caught (task);
  if (error != NULL)
    {
      printf ("gather failed after %.1f s: ", now () - self->start);
      print_error (error);
      printf ("\n");
    }
  printf ("'7' is %s\n",
          afut_future_is_done (self->slow) ? "done" : "still running");

  AFUT_AWAIT (task, self->slow); /* gives our reference to the await */
  self->slow = NULL;
  printf ("'7' finished after %.1f s: %lld\n", now () - self->start,
          (long long) afut_future_get_int (afut_task_awaited (task)));
  AFUT_END (task);
}

/* gather(..., return_exceptions=True): slots in input order, whatever the
 * order the children finished in. */
static void
gather_return_exceptions (AfutTask *task)
{
  AfutFuture *gather;
  size_t i;

  AFUT_BEGIN (task);
  printf ("== gather with return_exceptions: a value or an error in each "
          "slot ==\n");
  AFUT_AWAIT (task, afut_gather_return_exceptions (
                        AFUT_CORO (ParseNumber, parse_number, .text = "1",
                                   .delay = 0.3),
                        AFUT_CORO (ParseNumber, parse_number, .text = "two",
                                   .delay = 0.1),
                        AFUT_CORO (ParseNumber, parse_number, .text = "3",
                                   .delay = 0.2),
                        NULL));
  gather = afut_task_awaited (task);
  for (i = 0; i < afut_gather_get_n_items (gather); i++)
    {
      AfutFuture *slot = afut_gather_get_item (gather, i);
      const AfutError *error = afut_future_get_error (slot);

      printf ("slot %zu: ", i);
      if (error != NULL)
        print_error (error);
      else
        printf ("%lld", (long long) afut_future_get_int (slot));
      printf ("\n");
    }
  AFUT_END (task);
}

static void
amain (AfutTask *task)
{
  AFUT_BEGIN (task);
  AFUT_AWAIT (task, AFUT_CORO (AfutTask, catch_in_awaiter));
  AFUT_AWAIT (task, AFUT_CORO (GatherFirstError, gather_first_error));
  AFUT_AWAIT (task, AFUT_CORO (AfutTask, gather_return_exceptions));
  AFUT_END (task);
}

int
main (void)
{
  return AFUT_RUN (AfutTask, amain);
}
