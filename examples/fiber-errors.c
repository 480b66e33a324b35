/* fiber-errors.c - errors.c with fibers: errors in afut, as asyncio's
 * exceptions, where each await hands its error back to plain C:
 *  - a fiber returns an error (`raise`) and the fiber awaiting it gets
 *    it from the await (`except`);
 *  - gather without return_exceptions fails with the first child error,
 *    at once, while the other children keep running to the end;
 *  - gather with return_exceptions waits for every child: each result
 *    slot holds a value or an error.
 * The three parts are helper functions that await, called in turn.
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
  const char *text;
  double delay;
} ParseArgs;

/* parse_number(text, delay): a fiber coroutine object; the arguments
 * live in the caller's frame, which outlives the await. */
#define PARSE_NUMBER(text, delay)                                             \
  AFUT_FIBER_CORO (parse_number, (&(ParseArgs){ (text), (delay) }))

/* async def parse_number(text, delay): int(text) after delay, or raise */
static AfutFuture *
parse_number (void *data)
{
  const ParseArgs *args = data;
  AfutError *error = NULL;
  char *end;
  long value;

  if (!afut_await_check (afut_sleep (args->delay), &error))
    return afut_future_new_for_error (error);
  value = strtol (args->text, &end, 10);
  if (end == args->text || *end != '\0')
    {
      printf ("parse_number('%s') raises\n", args->text);
      return afut_future_new_for_error (afut_error_new (
          PARSE_ERROR, PARSE_ERROR_NOT_A_NUMBER, "not a number: %s",
          args->text));
    }
  printf ("parse_number('%s') returns %ld\n", args->text, value);
  return afut_future_new_for_int (value);
}

/* try: await parse_number(...) except ParseError as e: ... */
static void
catch_in_awaiter (void)
{
  AfutError *error = NULL;
  int64_t value;

  printf ("== an error raised in a task, caught by its awaiter ==\n");
  value = afut_await_int (PARSE_NUMBER ("42", 0.1), &error);
  if (error == NULL)
    printf ("got %lld\n", (long long) value);
  else
    afut_error_free (error);

  error = NULL;
  afut_await_int (PARSE_NUMBER ("forty-two", 0.1), &error);
  if (error != NULL)
    {
      printf ("caught ");
      print_error (error);
      printf ("\n");
      afut_error_free (error);
    }
}

/* gather(slow, failing): the gather raises when `failing` does; `slow`
 * is not cancelled, and we await it afterwards. */
static void
gather_first_error (void)
{
  double start = now ();
  AfutFuture *slow, *gather;
  AfutError *error = NULL;
  int64_t value;

  printf ("== gather: the first error fails it, the others keep running ==\n");
  /* Keep a reference to `slow`: the gather takes the one it is given. */
  slow = PARSE_NUMBER ("7", 0.3);
  gather = afut_await (afut_gather (afut_future_ref (slow),
                                    PARSE_NUMBER ("seven", 0.1), NULL));
  if (afut_future_get_error (gather) != NULL)
    {
      printf ("gather failed after %.1f s: ", now () - start);
      print_error (afut_future_get_error (gather));
      printf ("\n");
    }
  afut_future_unref (gather);
  printf ("'7' is %s\n", afut_future_is_done (slow) ? "done" : "still running");

  value = afut_await_int (slow, &error); /* gives our reference to the await */
  if (error == NULL)
    printf ("'7' finished after %.1f s: %lld\n", now () - start,
            (long long) value);
  else
    afut_error_free (error);
}

/* gather(..., return_exceptions=True): slots in input order, whatever the
 * order the children finished in. */
static void
gather_return_exceptions (void)
{
  AfutFuture *gather;
  size_t i;

  printf ("== gather with return_exceptions: a value or an error in each "
          "slot ==\n");
  gather = afut_await (afut_gather_return_exceptions (
      PARSE_NUMBER ("1", 0.3), PARSE_NUMBER ("two", 0.1),
      PARSE_NUMBER ("3", 0.2), NULL));
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
  afut_future_unref (gather);
}

static AfutFuture *
amain (void *data)
{
  (void) data;
  catch_in_awaiter ();
  gather_first_error ();
  gather_return_exceptions ();
  return NULL;
}

int
main (void)
{
  return AFUT_RUN_FIBER (amain, NULL);
}
