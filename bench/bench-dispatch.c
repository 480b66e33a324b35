/* First measurements of afut's core on the embedded loop:
 *   - resolve -> done callback dispatch (N futures resolved in one batch)
 *   - resolve -> awaiting task resumed
 *   - task step: one task yielding N times (AFUT_YIELD and sleep(0))
 *   - N tasks that each yield once
 *   - a plain C ring-buffer queue of {fn, data}, the floor to compare with
 * Prints ns per operation.  A benchmark, not a test: no pass/fail on time.
 * Usage: bench-dispatch [N]   (default 1000000) */
#define AFUT_IMPLEMENTATION
#include "afut.h"

#include <stdio.h>
#include <stdlib.h>
#include <sys/resource.h>
#include <time.h>

static double
now_s (void)
{
  struct timespec ts;
  clock_gettime (CLOCK_MONOTONIC, &ts);
  return (double) ts.tv_sec + (double) ts.tv_nsec / 1e9;
}

static long
peak_rss_kib (void)
{
  struct rusage ru;
  getrusage (RUSAGE_SELF, &ru);
  return ru.ru_maxrss;
}

static void
report (const char *name, long n, double seconds)
{
  printf ("%-44s n=%-8ld %8.1f ns/op   peak RSS %ld KiB\n", name, n,
          seconds * 1e9 / (double) n, peak_rss_kib ());
}

/* ---- plain queue floor ---- */

typedef struct
{
  void (*fn) (void *);
  void *data;
} Entry;

static long plain_count;

static void
plain_cb (void *data)
{
  (void) data;
  plain_count++;
}

static void
bench_plain_queue (long n)
{
  Entry *q = malloc (sizeof (Entry) * (size_t) n);
  double t0 = now_s ();
  long i;
  for (i = 0; i < n; i++)
    {
      q[i].fn = plain_cb;
      q[i].data = NULL;
    }
  for (i = 0; i < n; i++)
    q[i].fn (q[i].data);
  report ("plain C queue push+pop+call", n, now_s () - t0);
  free (q);
}

/* ---- resolve -> callback ---- */

static long callbacks_run;

static void
on_done (AfutFuture *f, void *data)
{
  (void) f;
  (void) data;
  callbacks_run++;
}

static void
bench_resolve_callback (long n)
{
  AfutLoop *loop = afut_loop_new (AFUT_LOOP_NONE);
  AfutFuture **futs = malloc (sizeof (AfutFuture *) * (size_t) n);
  double t0;
  long i;

  callbacks_run = 0;
  t0 = now_s ();
  for (i = 0; i < n; i++)
    {
      futs[i] = afut_future_new (loop);
      afut_future_add_done_callback (futs[i], on_done, NULL);
    }
  for (i = 0; i < n; i++)
    afut_future_resolve_int (futs[i], i);
  afut_loop_iterate (loop, false);
  for (i = 0; i < n; i++)
    afut_future_unref (futs[i]);
  report ("future new+callback+resolve+dispatch+free", n, now_s () - t0);
  if (callbacks_run != n)
    fprintf (stderr, "bench: %ld callbacks ran, expected %ld\n",
             callbacks_run, n);
  free (futs);
  afut_loop_unref (loop);
}

/* ---- resolve -> awaiting task resumed ---- */

typedef struct
{
  AfutTask task;
  AfutFuture *future;
  long *resumed;
} Waiter;

static void
waiter (AfutTask *task)
{
  Waiter *self = (Waiter *) task;
  AFUT_BEGIN (task);
  AFUT_AWAIT (task, afut_future_ref (self->future));
  (*self->resumed)++;
  AFUT_END (task);
}

static void
bench_resolve_task (long n)
{
  AfutLoop *loop = afut_loop_new (AFUT_LOOP_NONE);
  AfutFuture **futs = malloc (sizeof (AfutFuture *) * (size_t) n);
  AfutFuture **tasks = malloc (sizeof (AfutFuture *) * (size_t) n);
  long resumed = 0, i;
  double t0;

  for (i = 0; i < n; i++)
    {
      Waiter init = { .resumed = &resumed };
      futs[i] = init.future = afut_future_new (loop);
      tasks[i] = afut_task_new (loop, waiter, sizeof (Waiter), &init, "w",
                                NULL);
    }
  afut_loop_iterate (loop, false); /* every task now awaits its future */
  t0 = now_s ();
  for (i = 0; i < n; i++)
    afut_future_resolve (futs[i]);
  afut_loop_iterate (loop, false);
  report ("resolve -> awaiting task resumed", n, now_s () - t0);
  if (resumed != n)
    fprintf (stderr, "bench: %ld tasks resumed, expected %ld\n", resumed, n);
  for (i = 0; i < n; i++)
    {
      afut_future_unref (futs[i]);
      afut_future_unref (tasks[i]);
    }
  free (futs);
  free (tasks);
  afut_loop_unref (loop);
}

/* ---- task steps ---- */

typedef struct
{
  AfutTask task;
  long n;
  long i;
  int use_sleep;
} Yielder;

static void
yielder (AfutTask *task)
{
  Yielder *self = (Yielder *) task;
  AFUT_BEGIN (task);
  for (self->i = 0; self->i < self->n; self->i++)
    {
      if (self->use_sleep)
        AFUT_AWAIT (task, afut_sleep (0));
      else
        AFUT_YIELD (task);
    }
  AFUT_END (task);
}

static void
bench_one_task_yields (long n, int use_sleep)
{
  AfutLoop *loop = afut_loop_new (AFUT_LOOP_NONE);
  Yielder init = { .n = n, .use_sleep = use_sleep };
  AfutFuture *t;
  double t0 = now_s ();
  t = afut_task_new (loop, yielder, sizeof init, &init, "yielder", NULL);
  afut_loop_run_until_complete (loop, t);
  report (use_sleep ? "one task, N x AFUT_AWAIT (sleep (0))"
                    : "one task, N x AFUT_YIELD",
          n, now_s () - t0);
  afut_future_unref (t);
  afut_loop_unref (loop);
}

static void
bench_n_tasks_yield_once (long n)
{
  AfutLoop *loop = afut_loop_new (AFUT_LOOP_NONE);
  AfutFuture **tasks = malloc (sizeof (AfutFuture *) * (size_t) n);
  Yielder init = { .n = 1 };
  AfutFuture *all;
  double t0 = now_s ();
  long i;
  for (i = 0; i < n; i++)
    tasks[i] = afut_task_new (loop, yielder, sizeof init, &init, "y", NULL);
  all = afut_gather_v (tasks, (size_t) n);
  afut_loop_run_until_complete (loop, all);
  report ("N tasks: spawn, yield once, end, gather", n, now_s () - t0);
  afut_future_unref (all);
  for (i = 0; i < n; i++)
    afut_future_unref (tasks[i]);
  free (tasks);
  afut_loop_unref (loop);
}

int
main (int argc, char **argv)
{
  long n = argc > 1 ? atol (argv[1]) : 1000000;
  if (n <= 0)
    n = 1000000;
  printf ("afut %d.%d.%d, embedded poll() loop, sizeof (AfutFuture) = %zu, "
          "sizeof (AfutTask) = %zu\n",
          AFUT_VERSION_MAJOR, AFUT_VERSION_MINOR, AFUT_VERSION_MICRO,
          sizeof (AfutFuture), sizeof (AfutTask));
  bench_plain_queue (n);
  bench_resolve_callback (n);
  bench_resolve_task (n);
  bench_one_task_yields (n, 0);
  bench_one_task_yields (n, 1);
  bench_n_tasks_yield_once (n);
  return 0;
}
