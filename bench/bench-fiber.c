/* Fibers (issue 16) beside stackless tasks and GLib, on the embedded loop
 * and the GLib adapter:
 *
 *   hop            two coroutines hand a baton through one-shot futures:
 *                  each waits on its own future, makes a new one, resolves
 *                  the other's (per hop).  GLib's form: a callback per hop,
 *                  queued with g_idle_add.
 *   yield          one coroutine yielding N times: afut_fiber_yield() /
 *                  AFUT_YIELD() (per yield): a bare switch.
 *   spawn_end      N coroutines that return at once: spawn, first step and
 *                  end (per coroutine; a fiber's stack from the pool).
 *   spawn_resolve  N coroutines each waiting on its own future, spawned and
 *                  run to their await, then every future resolved and the
 *                  loop run until all ended (per coroutine): the second
 *                  round on the loop, its stacks pooled; cold_ns the
 *                  first, every stack mapped anew.
 *   pending        N coroutines suspended at once, each on its own future:
 *                  bytes per coroutine (RSS delta / N), the time to make
 *                  them and run them to their await, then all resolved and
 *                  ended (ok=0 if any did not end: 10^5 fibers must not
 *                  exhaust vm.max_map_count).
 *
 * Each case runs in a forked child and prints one line, as bench-suite:
 *   BENCH workload=W impl=I n=N rep=R ns_per_op=X cpu_ns_per_op=Y
 *         peak_rss_kb=K bytes_per_item=B ok=1
 * A benchmark, not a test: no time is asserted; the program fails (exit
 * 1) only if a case did not do its work (10^5 pending fibers included).
 *
 * Usage: bench-fiber [--quick] [--reps R] [--only WORKLOAD]
 *        bench-fiber --case WORKLOAD IMPL N
 *        bench-fiber --list */
#define _GNU_SOURCE
#define AFUT_IMPLEMENTATION
#define AFUT_GLIB
#include "afut.h"
#include "afut-glib.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

/* ---- measuring ---- */

static double
clock_ns (clockid_t id)
{
  struct timespec ts;
  clock_gettime (id, &ts);
  return (double) ts.tv_sec * 1e9 + (double) ts.tv_nsec;
}

static long
rss_bytes (void)
{
  long size = 0, resident = 0;
  FILE *f = fopen ("/proc/self/statm", "r");
  if (f != NULL)
    {
      if (fscanf (f, "%ld %ld", &size, &resident) != 2)
        resident = 0;
      fclose (f);
    }
  return resident * sysconf (_SC_PAGESIZE);
}

static struct
{
  double t0, c0, ns_per_op, cpu_ns_per_op, bytes_per_item, cold_ns;
  long rss0;
  int ok;
  char failure[256];
} R;

static void
timer_start (void)
{
  R.c0 = clock_ns (CLOCK_PROCESS_CPUTIME_ID);
  R.t0 = clock_ns (CLOCK_MONOTONIC);
}

static void
timer_stop (long ops)
{
  double t = clock_ns (CLOCK_MONOTONIC);
  double c = clock_ns (CLOCK_PROCESS_CPUTIME_ID);
  R.ns_per_op = (t - R.t0) / (double) ops;
  R.cpu_ns_per_op = (c - R.c0) / (double) ops;
}

static void
check (int ok, const char *what)
{
  if (!ok && R.ok)
    {
      R.ok = 0;
      snprintf (R.failure, sizeof R.failure, "%s", what);
    }
}

/* ---- loops ---- */

static GMainContext *ctx;

static AfutLoop *
new_loop (int glib)
{
  if (glib)
    {
      ctx = g_main_context_new ();
      return afut_glib_loop_new (ctx, AFUT_LOOP_NONE);
    }
  return afut_loop_new (AFUT_LOOP_NONE);
}

static void
free_loop (AfutLoop *loop)
{
  afut_loop_unref (loop);
  if (ctx != NULL)
    g_main_context_unref (ctx);
  ctx = NULL;
}

static void
run_until (AfutLoop *loop, int glib, AfutFuture *f)
{
  if (glib)
    while (!afut_future_is_done (f))
      g_main_context_iteration (ctx, TRUE);
  else
    afut_loop_run_until_complete (loop, f);
}

static void
run_until_count (AfutLoop *loop, int glib, const long *counter, long target)
{
  while (*counter < target)
    {
      if (glib)
        g_main_context_iteration (ctx, TRUE);
      else
        afut_loop_iterate (loop, true);
    }
}

static long counter;

/* ======================================================================== */
/* hop: a baton through one-shot futures                                    */
/* ======================================================================== */

static AfutFuture *inbox[2];
static long hops_each;

static AfutFuture *
hop_fiber (void *data)
{
  int i = (int) (intptr_t) data;
  long k;
  for (k = 0; k < hops_each; k++)
    {
      AfutFuture *mine = inbox[i];
      if (!afut_await_check (afut_future_ref (mine), NULL))
        return NULL;
      afut_future_unref (mine);
      inbox[i] = afut_future_new (NULL);
      counter++;
      afut_future_resolve (inbox[1 - i]);
    }
  return NULL;
}

typedef struct
{
  AfutTask task;
  int i;
  long k;
} HopTask;

static void
hop_task (AfutTask *task)
{
  HopTask *self = (HopTask *) task;
  AFUT_BEGIN (task);
  for (self->k = 0; self->k < hops_each; self->k++)
    {
      AFUT_AWAIT (task, afut_future_ref (inbox[self->i]));
      afut_future_unref (inbox[self->i]);
      inbox[self->i] = afut_future_new (NULL);
      counter++;
      afut_future_resolve (inbox[1 - self->i]);
    }
  AFUT_END (task);
}

static void
hop (long n, int glib, int fiber)
{
  AfutLoop *loop = new_loop (glib);
  AfutFuture *side[2], *both;
  int i;
  counter = 0;
  hops_each = n / 2;
  afut_loop_push_thread_default (loop);
  for (i = 0; i < 2; i++)
    inbox[i] = afut_future_new (loop);
  timer_start ();
  for (i = 0; i < 2; i++)
    side[i] = fiber ? afut_fiber_new (hop_fiber, (void *) (intptr_t) i, NULL)
                    : afut_task_new (loop, hop_task, sizeof (HopTask),
                                     &(HopTask){ .i = i }, NULL, NULL);
  both = afut_gather (side[0], side[1], NULL);
  afut_future_resolve (inbox[0]);
  run_until (loop, glib, both);
  timer_stop (2 * hops_each);
  check (counter == 2 * hops_each, "the baton stopped");
  check (afut_future_get_state (both) == AFUT_FUTURE_DONE, "a side failed");
  afut_future_unref (both);
  for (i = 0; i < 2; i++)
    afut_future_unref (inbox[i]);
  afut_loop_pop_thread_default (loop);
  free_loop (loop);
}

static void case_hop_fiber_embedded (long n) { hop (n, 0, 1); }
static void case_hop_fiber_glib (long n) { hop (n, 1, 1); }
static void case_hop_task_embedded (long n) { hop (n, 0, 0); }
static void case_hop_task_glib (long n) { hop (n, 1, 0); }

static long idle_target;

static gboolean
idle_hop (gpointer data)
{
  /* The other side's turn: a callback queued per hop. */
  if (++counter < idle_target)
    g_idle_add (idle_hop, (gpointer) (intptr_t) (1 - (intptr_t) data));
  return G_SOURCE_REMOVE;
}

static void
case_hop_g_idle (long n)
{
  counter = 0;
  idle_target = n;
  timer_start ();
  g_idle_add (idle_hop, (gpointer) (intptr_t) 0);
  while (counter < n)
    g_main_context_iteration (NULL, TRUE);
  timer_stop (n);
  check (counter == n, "the chain stopped");
}

/* ======================================================================== */
/* yield: a bare switch                                                     */
/* ======================================================================== */

static long yield_n;

static AfutFuture *
yield_fiber (void *data)
{
  long k;
  (void) data;
  for (k = 0; k < yield_n; k++)
    {
      if (!afut_fiber_yield (NULL))
        return NULL;
      counter++;
    }
  return NULL;
}

typedef struct
{
  AfutTask task;
  long k;
} YieldTask;

static void
yield_task (AfutTask *task)
{
  YieldTask *self = (YieldTask *) task;
  AFUT_BEGIN (task);
  for (self->k = 0; self->k < yield_n; self->k++)
    {
      AFUT_YIELD (task);
      counter++;
    }
  AFUT_END (task);
}

static void
yield_case (long n, int glib, int fiber)
{
  AfutLoop *loop = new_loop (glib);
  AfutFuture *f;
  counter = 0;
  yield_n = n;
  timer_start ();
  f = fiber ? afut_fiber_new_full (loop, NULL, yield_fiber, NULL, NULL)
            : afut_task_new (loop, yield_task, sizeof (YieldTask), NULL, NULL,
                             NULL);
  run_until (loop, glib, f);
  timer_stop (n);
  check (counter == n, "the yields stopped");
  afut_future_unref (f);
  free_loop (loop);
}

static void case_yield_fiber_embedded (long n) { yield_case (n, 0, 1); }
static void case_yield_fiber_glib (long n) { yield_case (n, 1, 1); }
static void case_yield_task_embedded (long n) { yield_case (n, 0, 0); }
static void case_yield_task_glib (long n) { yield_case (n, 1, 0); }

/* ======================================================================== */
/* spawn_end: spawn, first step, end                                        */
/* ======================================================================== */

static AfutFuture *
ends_fiber (void *data)
{
  (void) data;
  counter++;
  return NULL;
}

static void
ends_task (AfutTask *task)
{
  AFUT_BEGIN (task);
  counter++;
  AFUT_END (task);
}

/* In batches of 1000 (created, run, freed): a steady state, the pool
 * warm after the first batch. */
static void
spawn_end (long n, int glib, int fiber)
{
  AfutLoop *loop = new_loop (glib);
  AfutFuture *batch[1000];
  long done = 0;
  counter = 0;
  timer_start ();
  while (done < n)
    {
      long m = n - done < 1000 ? n - done : 1000, i;
      for (i = 0; i < m; i++)
        batch[i] = fiber ? afut_fiber_new_full (loop, NULL, ends_fiber, NULL,
                                                NULL)
                         : afut_task_new (loop, ends_task, sizeof (AfutTask),
                                          NULL, NULL, NULL);
      run_until_count (loop, glib, &counter, done + m);
      for (i = 0; i < m; i++)
        afut_future_unref (batch[i]);
      done += m;
    }
  timer_stop (n);
  check (counter == n, "not every coroutine ended");
  free_loop (loop);
}

static void case_spawn_end_fiber_embedded (long n) { spawn_end (n, 0, 1); }
static void case_spawn_end_fiber_glib (long n) { spawn_end (n, 1, 1); }
static void case_spawn_end_task_embedded (long n) { spawn_end (n, 0, 0); }
static void case_spawn_end_task_glib (long n) { spawn_end (n, 1, 0); }

/* ======================================================================== */
/* spawn_resolve and pending: N coroutines on their own futures             */
/* ======================================================================== */

static AfutFuture *
waits_fiber (void *data)
{
  AfutFuture *own = data;
  counter++;
  if (!afut_await_check (afut_future_ref (own), NULL))
    return NULL;
  counter++;
  return NULL;
}

typedef struct
{
  AfutTask task;
  AfutFuture *own;
} WaitsTask;

static void
waits_task (AfutTask *task)
{
  WaitsTask *self = (WaitsTask *) task;
  AFUT_BEGIN (task);
  counter++;
  AFUT_AWAIT (task, afut_future_ref (self->own));
  counter++;
  AFUT_END (task);
}

/* One round on @loop.  @measure_memory: the RSS of the N suspended
 * coroutines, and the time to make them and run them to their await;
 * else the whole round trip. */
static void
own_round (AfutLoop *loop, long n, int glib, int fiber, int measure_memory)
{
  AfutFuture **own = malloc ((size_t) n * sizeof *own);
  AfutFuture **co = malloc ((size_t) n * sizeof *co);
  long i, ended = 0;
  /* Touched now: the arrays' pages are not counted as the coroutines'. */
  memset (own, 0, (size_t) n * sizeof *own);
  memset (co, 0, (size_t) n * sizeof *co);
  counter = 0;
  R.rss0 = rss_bytes ();
  timer_start ();
  for (i = 0; i < n; i++)
    {
      own[i] = afut_future_new (loop);
      co[i] = fiber ? afut_fiber_new_full (loop, NULL, waits_fiber, own[i],
                                           NULL)
                    : afut_task_new (loop, waits_task, sizeof (WaitsTask),
                                     &(WaitsTask){ .own = own[i] }, NULL,
                                     NULL);
    }
  run_until_count (loop, glib, &counter, n);
  if (measure_memory)
    {
      timer_stop (n);
      R.bytes_per_item = (double) (rss_bytes () - R.rss0) / (double) n;
    }
  for (i = 0; i < n; i++)
    afut_future_resolve (own[i]);
  run_until_count (loop, glib, &counter, 2 * n);
  if (!measure_memory)
    timer_stop (n);
  for (i = 0; i < n; i++)
    {
      ended += afut_future_get_state (co[i]) == AFUT_FUTURE_DONE;
      afut_future_unref (co[i]);
      afut_future_unref (own[i]);
    }
  check (counter == 2 * n && ended == n, "not every coroutine ended");
  free (own);
  free (co);
}

/* spawn_resolve: two rounds on one loop; the second is reported (a
 * program's steady state: the fibers' stacks come from the pool), the
 * first as cold_ns (each stack mapped and its pages faulted in). */
static void
own_futures (long n, int glib, int fiber, int measure_memory)
{
  AfutLoop *loop = new_loop (glib);
  if (!measure_memory)
    {
      own_round (loop, n, glib, fiber, 0);
      R.cold_ns = R.ns_per_op;
    }
  own_round (loop, n, glib, fiber, measure_memory);
  free_loop (loop);
}

static void case_spawn_resolve_fiber_embedded (long n) { own_futures (n, 0, 1, 0); }
static void case_spawn_resolve_fiber_glib (long n) { own_futures (n, 1, 1, 0); }
static void case_spawn_resolve_task_embedded (long n) { own_futures (n, 0, 0, 0); }
static void case_spawn_resolve_task_glib (long n) { own_futures (n, 1, 0, 0); }
static void case_pending_fiber (long n) { own_futures (n, 0, 1, 1); }
static void case_pending_task (long n) { own_futures (n, 0, 0, 1); }

/* ======================================================================== */
/* main                                                                     */
/* ======================================================================== */

typedef struct
{
  const char *workload;
  const char *impl;
  void (*func) (long n);
  long n, quick_n;
} Case;

static const Case cases[] = {
  { "hop", "fiber-embedded", case_hop_fiber_embedded, 1000000, 100000 },
  { "hop", "task-embedded", case_hop_task_embedded, 1000000, 100000 },
  { "hop", "fiber-glib", case_hop_fiber_glib, 1000000, 100000 },
  { "hop", "task-glib", case_hop_task_glib, 1000000, 100000 },
  { "hop", "g_idle_add", case_hop_g_idle, 1000000, 100000 },
  { "yield", "fiber-embedded", case_yield_fiber_embedded, 1000000, 100000 },
  { "yield", "task-embedded", case_yield_task_embedded, 1000000, 100000 },
  { "yield", "fiber-glib", case_yield_fiber_glib, 1000000, 100000 },
  { "yield", "task-glib", case_yield_task_glib, 1000000, 100000 },
  { "spawn_end", "fiber-embedded", case_spawn_end_fiber_embedded, 1000000,
    100000 },
  { "spawn_end", "task-embedded", case_spawn_end_task_embedded, 1000000,
    100000 },
  { "spawn_end", "fiber-glib", case_spawn_end_fiber_glib, 1000000, 100000 },
  { "spawn_end", "task-glib", case_spawn_end_task_glib, 1000000, 100000 },
  { "spawn_resolve", "fiber-embedded", case_spawn_resolve_fiber_embedded,
    1000, 1000 },
  { "spawn_resolve", "task-embedded", case_spawn_resolve_task_embedded, 1000,
    1000 },
  { "spawn_resolve", "fiber-glib", case_spawn_resolve_fiber_glib, 1000,
    1000 },
  { "spawn_resolve", "task-glib", case_spawn_resolve_task_glib, 1000, 1000 },
  { "pending", "fiber", case_pending_fiber, 100000, 100000 },
  { "pending", "task", case_pending_task, 100000, 100000 },
};

#define N_CASES (sizeof cases / sizeof cases[0])

static int
run_here (const Case *c, long n, int rep)
{
  struct rusage ru;
  memset (&R, 0, sizeof R);
  R.ok = 1;
  c->func (n);
  getrusage (RUSAGE_SELF, &ru);
  printf ("BENCH workload=%s impl=%s n=%ld rep=%d ns_per_op=%.2f "
          "cpu_ns_per_op=%.2f peak_rss_kb=%ld bytes_per_item=%.1f ok=%d",
          c->workload, c->impl, n, rep, R.ns_per_op, R.cpu_ns_per_op,
          ru.ru_maxrss, R.bytes_per_item, R.ok);
  if (R.cold_ns > 0)
    printf (" cold_ns=%.2f", R.cold_ns);
  printf ("\n");
  if (!R.ok)
    fprintf (stderr, "bench-fiber: %s/%s n=%ld: %s\n", c->workload, c->impl,
             n, R.failure);
  fflush (stdout);
  return R.ok;
}

static int
run_forked (const Case *c, long n, int rep)
{
  pid_t pid;
  int status = 0;
  fflush (stdout);
  fflush (stderr);
  pid = fork ();
  if (pid < 0)
    {
      perror ("bench-fiber: fork");
      exit (1);
    }
  if (pid == 0)
    {
      alarm (600);
      _exit (run_here (c, n, rep) ? 0 : 1);
    }
  while (waitpid (pid, &status, 0) < 0 && errno == EINTR)
    ;
  if (WIFEXITED (status) && WEXITSTATUS (status) == 0)
    return 1;
  if (!WIFEXITED (status))
    printf ("BENCH workload=%s impl=%s n=%ld rep=%d ok=0 signal=%d\n",
            c->workload, c->impl, n, rep,
            WIFSIGNALED (status) ? WTERMSIG (status) : -1);
  return 0;
}

int
main (int argc, char **argv)
{
  int quick = 0, reps = 3, i, r, failures = 0;
  const char *only = NULL;
  size_t k;

  for (i = 1; i < argc; i++)
    {
      if (strcmp (argv[i], "--quick") == 0)
        {
          quick = 1;
          reps = 1;
        }
      else if (strcmp (argv[i], "--reps") == 0 && i + 1 < argc)
        reps = atoi (argv[++i]);
      else if (strcmp (argv[i], "--only") == 0 && i + 1 < argc)
        only = argv[++i];
      else if (strcmp (argv[i], "--list") == 0)
        {
          for (k = 0; k < N_CASES; k++)
            printf ("%s %s\n", cases[k].workload, cases[k].impl);
          return 0;
        }
      else if (strcmp (argv[i], "--case") == 0 && i + 3 < argc)
        {
          for (k = 0; k < N_CASES; k++)
            if (strcmp (cases[k].workload, argv[i + 1]) == 0
                && strcmp (cases[k].impl, argv[i + 2]) == 0)
              return run_here (&cases[k], atol (argv[i + 3]), 0) ? 0 : 1;
          fprintf (stderr, "bench-fiber: no case %s %s\n", argv[i + 1],
                   argv[i + 2]);
          return 2;
        }
      else
        {
          fprintf (stderr,
                   "usage: %s [--quick] [--reps R] [--only "
                   "WORKLOAD] | --case WORKLOAD IMPL N | --list\n",
                   argv[0]);
          return 2;
        }
    }
  printf ("# bench-fiber: afut %d.%d.%d, GLib %u.%u.%u, default stack %d "
          "KiB, vm.max_map_count guard budget: a quarter\n",
          AFUT_VERSION_MAJOR, AFUT_VERSION_MINOR, AFUT_VERSION_MICRO,
          glib_major_version, glib_minor_version, glib_micro_version,
          AFUT_FIBER_STACK_SIZE / 1024);
  /* Repetitions interleaved, so that a drift of the machine's load hits
   * every implementation alike. */
  for (r = 0; r < reps; r++)
    for (k = 0; k < N_CASES; k++)
      {
        const Case *c = &cases[k];
        if (only != NULL && strcmp (only, c->workload) != 0)
          continue;
        if (!run_forked (c, quick ? c->quick_n : c->n, r))
          failures++;
      }
  if (failures > 0)
    {
      fprintf (stderr, "bench-fiber: %d case(s) failed\n", failures);
      return 1;
    }
  return 0;
}
