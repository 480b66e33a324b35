/* fiber-aarch64.c - the fiber switch without GLib, so that it cross-
 * compiles: built for AArch64 and run under qemu-aarch64 (test
 * fiber-aarch64), and natively (test fiber-switch).  It checks what the
 * switch must preserve (callee-saved integer and FP registers, the FP
 * control state: a rounding mode set in one context does not leak into
 * another), then the core of the fiber semantics: locals and helper
 * chains across awaits, values, cancellation cleaned up after and
 * swallowed, a stackless task and a fiber awaiting each other, and a
 * thousand pending fibers.  Exit status 0 when all hold. */

#define AFUT_IMPLEMENTATION
#include "afut.h"

#include <fenv.h>
#include <stdlib.h>
#include <string.h>

static int failures;

#define CHECK(cond)                                                           \
  do                                                                          \
    {                                                                         \
      if (!(cond))                                                            \
        {                                                                     \
          fprintf (stderr, "FAIL %s:%d: %s\n", __FILE__, __LINE__, #cond);    \
          failures++;                                                         \
        }                                                                     \
    }                                                                         \
  while (0)

/* Values held in callee-saved registers by the compiler across an await:
 * a long dependency chain of integer and double arithmetic. */
static double
mix (int depth, AfutError **error)
{
  volatile int round_seen;
  long a = 3 + depth, b = 5 * depth, c = 7, d = 11;
  double x = 1.25 * depth, y = 0.5, z = 3.0;
  if (!afut_await_check (afut_sleep (0.01), error))
    return -1;
  round_seen = fegetround ();
  CHECK (round_seen == FE_TONEAREST);
  /* a rounding mode set here is the fiber's own (FPCR / MXCSR) */
  fesetround (FE_UPWARD);
  if (!afut_fiber_yield (error))
    return -1;
  CHECK (fegetround () == FE_UPWARD);
  fesetround (FE_TONEAREST);
  if (depth > 0)
    x += mix (depth - 1, error);
  CHECK (a == 3 + depth && b == 5 * depth && c == 7 && d == 11);
  CHECK (y == 0.5 && z == 3.0);
  return x + (double) (a + b + c + d) + y * z;
}

static AfutFuture *
mixer (void *data)
{
  AfutError *error = NULL;
  double r = mix (20, &error);
  (void) data;
  if (error != NULL)
    return afut_future_new_for_error (error);
  return afut_future_new_for_double (r);
}

static AfutFuture *
cancelled_cleans_up (void *data)
{
  AfutError *error = NULL;
  int *log = (int *) data;
  if (afut_await_check (afut_sleep (10), &error))
    return NULL;
  *log = afut_error_is_cancelled (error) ? 1 : -1;
  if (!afut_await_check (afut_sleep (1), NULL)) /* cleanup await */
    *log = -2;
  else
    *log = 2;
  if (data != NULL && ((int *) data)[1] == 1)
    {
      afut_error_free (error); /* swallowed */
      return afut_future_new_for_int (7);
    }
  return afut_future_new_for_error (error);
}

typedef struct
{
  AfutTask task;
} Waiter;

static AfutFuture *
leaf (void *data)
{
  (void) data;
  afut_await_check (afut_sleep (0.5), NULL);
  return afut_future_new_for_int (40);
}

static void
stackless (AfutTask *task)
{
  AFUT_BEGIN (task);
  AFUT_AWAIT (task, afut_fiber_new (leaf, NULL, NULL));
  AFUT_RETURN_INT (task, afut_future_get_int (afut_task_awaited (task)) + 2);
  AFUT_END (task);
}

static AfutFuture *gate;

static AfutFuture *
pending_one (void *data)
{
  if (!afut_await_check (afut_future_ref (gate), NULL))
    return NULL;
  return afut_future_new_for_int ((int64_t) (intptr_t) data);
}

static AfutFuture *
amain (void *data)
{
  AfutError *error = NULL;
  AfutFuture *f, *fs[1000];
  int log[2] = { 0, 0 }, i;
  int64_t sum = 0;
  double r;
  (void) data;

  r = afut_await_double (afut_fiber_new (mixer, NULL, NULL), &error);
  CHECK (error == NULL && r > 0);

  /* cancelled, cleans up, re-raises */
  f = afut_fiber_new (cancelled_cleans_up, log, NULL);
  afut_await_check (afut_sleep (1), NULL);
  afut_future_cancel (f, "stop");
  CHECK (!afut_await_check (f, &error));
  CHECK (error != NULL && afut_error_is_cancelled (error)
         && strcmp (error->message, "stop") == 0);
  afut_error_free (error);
  error = NULL;
  CHECK (log[0] == 2);

  /* cancelled, swallows */
  log[0] = 0;
  log[1] = 1;
  f = afut_fiber_new (cancelled_cleans_up, log, NULL);
  afut_await_check (afut_sleep (1), NULL);
  afut_future_cancel (f, NULL);
  CHECK (afut_await_int (f, &error) == 7 && error == NULL);

  /* a stackless task awaiting a fiber, awaited by this fiber */
  CHECK (afut_await_int (AFUT_SPAWN (Waiter, stackless), &error) == 42);

  /* a thousand pending fibers */
  gate = afut_future_new (NULL);
  for (i = 0; i < 1000; i++)
    fs[i] = afut_fiber_new (pending_one, (void *) (intptr_t) i, NULL);
  afut_await_check (afut_sleep (0), NULL);
  CHECK (afut_loop_get_n_tasks (afut_loop_get_running ()) == 1002); /* with run_main and amain */
  afut_future_resolve (gate);
  for (i = 0; i < 1000; i++)
    sum += afut_await_int (fs[i], NULL);
  CHECK (sum == 999 * 1000 / 2);
  afut_future_unref (gate);
  return NULL;
}

static void
run_main (AfutTask *task)
{
  AFUT_BEGIN (task);
  AFUT_AWAIT (task, afut_fiber_new (amain, NULL, NULL));
  AFUT_END (task);
}

int
main (void)
{
  int rc;
  setenv ("AFUT_CLOCK", "virtual", 1);
  rc = AFUT_RUN (AfutTask, run_main);
  if (rc != 0 || failures > 0)
    {
      fprintf (stderr, "%d failures, exit %d\n", failures, rc);
      return 1;
    }
  printf ("fibers ok\n");
  return 0;
}
