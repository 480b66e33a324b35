/* The GLib adapter measured beside what a GLib program would otherwise use.
 *
 *   1a. N concurrent sleeping tasks (10 ms on the real clock, deadlines
 *       10 ms + (i % 1000) us) gathered and run to completion on the GLib
 *       adapter, beside N plain g_timeout sources (10 + (i % 11) ms) on a
 *       fresh context: wall time, ns and CPU ns per timer, peak RSS and
 *       bytes per pending timer (RSS delta / N).
 *   1b. The same with deadlines spread over a second (10 + (i % 1000) ms
 *       for both): with 1a's deadlines every g_timeout has expired by the
 *       time the last is added, so GLib fires them all in 2-3 iterations;
 *       here GLib iterates, walking every pending source each time, while
 *       timers are pending.
 *   2. The cost of one GLib main-loop iteration (g_main_context_iteration
 *      (ctx, FALSE)) with 10^6 pending afut sleeps (bare futures; tasks
 *      awaiting them) and with N pending g_timeout sources, beside an
 *      empty context and an idle afut loop timed in the same process.
 *   3. socketpair ping-pong, one byte per round trip: afut on the GLib
 *      adapter (afut_fd_wait by hand; afut_fd_read / afut_fd_write_all),
 *      afut on its embedded poll() loop (the same two), g_unix_fd sources
 *      (default, as g_unix_fd_add, and with g_source_set_can_recurse) and
 *      a raw poll() loop; repeated, interleaved, best and median.
 *
 * Every case runs in a forked child, so that its peak RSS (getrusage
 * ru_maxrss, a process-wide high-water mark) is its own; the child sends
 * its report and figures back through a pipe and the parent prints them.
 * A benchmark, not a test: no timing is asserted, but every case checks
 * that it did its work (every task finished, every byte echoed) and the
 * program exits 1 if one did not.
 *
 * Usage: bench-glib [--quick]
 *   --quick: 10^4 sleeps and 10^4 round trips, one repetition (for
 *            meson's benchmark run); the default is the full run. */
#define _GNU_SOURCE
#define AFUT_IMPLEMENTATION
#define AFUT_GLIB
#include "afut.h"
#include "afut-glib.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#ifdef __linux__
#include <sys/epoll.h>
#endif
#include <sys/utsname.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

/* ---- measuring ---- */

static double
now_s (void)
{
  struct timespec ts;
  clock_gettime (CLOCK_MONOTONIC, &ts);
  return (double) ts.tv_sec + (double) ts.tv_nsec / 1e9;
}

static double
cpu_s (void)
{
  struct rusage ru;
  getrusage (RUSAGE_SELF, &ru);
  return (double) ru.ru_utime.tv_sec + (double) ru.ru_utime.tv_usec / 1e6
         + (double) ru.ru_stime.tv_sec + (double) ru.ru_stime.tv_usec / 1e6;
}

static long
peak_rss_kib (void)
{
  struct rusage ru;
  getrusage (RUSAGE_SELF, &ru);
  return ru.ru_maxrss;
}

/* ---- one case per child process ---- */

typedef struct
{
  int ok;           /* the case did all its work */
  double wall_s;    /* total wall time */
  double ns_per_op; /* wall time per timer / round trip / iteration */
  double cpu_ns_per_op;
  double bytes_per; /* RSS delta per pending timer, where it applies */
  double empty_ns;  /* 2.: one iteration of an empty context */
  long peak_rss_kib;
  char text[1536];
  char failures[512]; /* the child's, printed after its report */
} Result;

static Result *result; /* the child's */

static void
say (const char *format, ...) G_GNUC_PRINTF (1, 2);

static void
say (const char *format, ...)
{
  size_t len = strlen (result->text);
  va_list ap;
  va_start (ap, format);
  vsnprintf (result->text + len, sizeof result->text - len, format, ap);
  va_end (ap);
}

static void
fail (const char *format, ...) G_GNUC_PRINTF (1, 2);

static void
fail (const char *format, ...)
{
  char buf[256];
  size_t len = strlen (result->failures);
  va_list ap;
  va_start (ap, format);
  vsnprintf (buf, sizeof buf, format, ap);
  va_end (ap);
  result->ok = 0;
  snprintf (result->failures + len, sizeof result->failures - len,
            "    FAILED: %s\n", buf);
}

typedef void (*CaseFunc) (long n);

static int n_failures;

/* Runs @func (@n) in a child.  A child that dies or overruns @timeout_s
 * seconds fails the run unless @peer (a GLib peer may be slow: that is a
 * figure, not a failure of afut). */
static Result
run_case (CaseFunc func, long n, unsigned timeout_s, int peer)
{
  Result r;
  int fds[2];
  pid_t pid;
  size_t got = 0;
  int status = 0;

  memset (&r, 0, sizeof r);
  fflush (stdout);
  fflush (stderr);
  if (pipe (fds) < 0)
    {
      perror ("bench-glib: pipe");
      exit (1);
    }
  pid = fork ();
  if (pid < 0)
    {
      perror ("bench-glib: fork");
      exit (1);
    }
  if (pid == 0)
    {
      const char *p;
      size_t left;
      close (fds[0]);
      result = &r;
      r.ok = 1;
      alarm (timeout_s);
      func (n);
      say ("%s", r.failures);
      r.peak_rss_kib = peak_rss_kib ();
      p = (const char *) &r;
      left = sizeof r;
      while (left > 0)
        {
          ssize_t w = write (fds[1], p, left);
          if (w < 0 && errno == EINTR)
            continue;
          if (w <= 0)
            _exit (3);
          p += w;
          left -= (size_t) w;
        }
      fflush (stdout);
      fflush (stderr);
      _exit (0);
    }
  close (fds[1]);
  while (got < sizeof r)
    {
      ssize_t k = read (fds[0], (char *) &r + got, sizeof r - got);
      if (k < 0 && errno == EINTR)
        continue;
      if (k <= 0)
        break;
      got += (size_t) k;
    }
  close (fds[0]);
  while (waitpid (pid, &status, 0) < 0 && errno == EINTR)
    ;
  if (got < sizeof r || !WIFEXITED (status) || WEXITSTATUS (status) != 0)
    {
      int timed_out = WIFSIGNALED (status) && WTERMSIG (status) == SIGALRM;
      memset (&r, 0, sizeof r);
      r.ok = 0;
      if (timed_out)
        snprintf (r.text, sizeof r.text,
                  "    did not finish within %u s: stopped%s\n", timeout_s,
                  peer ? " (a peer: reported, not a failure)" : "");
      else if (WIFSIGNALED (status))
        snprintf (r.text, sizeof r.text, "    FAILED: child killed by signal %d\n",
                  WTERMSIG (status));
      else
        snprintf (r.text, sizeof r.text,
                  "    FAILED: child exited with status %d\n",
                  WIFEXITED (status) ? WEXITSTATUS (status) : -1);
      if (!(peer && timed_out))
        n_failures++;
      r.wall_s = timed_out ? (double) timeout_s : 0;
    }
  else if (!r.ok)
    n_failures++;
  fputs (r.text, stdout);
  fflush (stdout);
  return r;
}

static const char *
pow10_name (long n)
{
  static char buf[32];
  long k = 0, m = n;
  while (m >= 10 && m % 10 == 0)
    {
      m /= 10;
      k++;
    }
  if (m == 1)
    snprintf (buf, sizeof buf, "10^%ld", k);
  else
    snprintf (buf, sizeof buf, "%ld", n);
  return buf;
}

/* One machine-readable line per case (scripts/bench.py reads them). */
static void
emit (const char *workload, const char *impl, long n, int rep,
      const Result *r, const char *extra)
{
  printf ("BENCH workload=%s impl=%s n=%ld rep=%d ns_per_op=%.2f "
          "cpu_ns_per_op=%.2f peak_rss_kb=%ld bytes_per_item=%.1f "
          "wall_ms=%.2f ok=%d%s%s\n",
          workload, impl, n, rep, r->ns_per_op, r->cpu_ns_per_op,
          r->peak_rss_kib, r->bytes_per, r->wall_s * 1e3, r->ok,
          extra != NULL ? " " : "", extra != NULL ? extra : "");
  fflush (stdout);
}

/* ======================================================================== */
/* 1. N concurrent sleeping tasks                                           */
/* ======================================================================== */

typedef struct
{
  AfutTask task;
  long i;
  long *done;
} Sleeper;

/* Deadlines: 1a, 10 ms + (i % 1000) us (10 + (i % 11) ms for g_timeout,
 * which counts in ms); 1b (sleep_wide), 10 + (i % 1000) ms for all. */
static int sleep_wide;

static double
delay_s (long i)
{
  return 0.010 + (double) (i % 1000) * (sleep_wide ? 1e-3 : 1e-6);
}

/* One line per timer case; the figures go back to the parent too. */
static void
report_timers (const char *what, long n, double t0, double t1, double t2,
               double t3, double c0, double c1, long rss0, long rss1,
               long iterations)
{
  result->wall_s = t3 - t0;
  result->ns_per_op = (t3 - t0) * 1e9 / (double) n;
  result->cpu_ns_per_op = (c1 - c0) * 1e9 / (double) n;
  result->bytes_per = (double) (rss1 - rss0) * 1024.0 / (double) n;
  say ("  %-27s %-5s wall %7.1f ms (add %6.1f, run %6.1f, free %5.1f)  "
       "%6.0f ns/timer  CPU %5.0f ns/timer  peak RSS %6ld KiB  +%3.0f "
       "B/pending  %4ld GLib iterations\n",
       what, pow10_name (n), (t3 - t0) * 1e3, (t1 - t0) * 1e3,
       (t2 - t1) * 1e3, (t3 - t2) * 1e3, result->ns_per_op,
       result->cpu_ns_per_op, peak_rss_kib (), result->bytes_per, iterations);
}

static void
sleeper (AfutTask *task)
{
  Sleeper *self = (Sleeper *) task;
  AFUT_BEGIN (task);
  AFUT_AWAIT (task, afut_sleep (delay_s (self->i)));
  (*self->done)++;
  AFUT_END (task);
}

/* N tasks, each awaiting one sleep, gathered. */
static void
case_afut_sleeps (long n)
{
  GMainContext *ctx = g_main_context_new ();
  AfutLoop *loop = afut_glib_loop_new (ctx, AFUT_LOOP_NONE);
  AfutFuture **tasks = g_new (AfutFuture *, n);
  AfutFuture *all;
  long done = 0, i, iterations = 0;
  long rss0, rss1;
  double t0, t1, t2, t3, c0, c1;

  memset (tasks, 0, sizeof (AfutFuture *) * (size_t) n); /* touched */
  rss0 = peak_rss_kib ();
  c0 = cpu_s ();
  t0 = now_s ();
  for (i = 0; i < n; i++)
    {
      Sleeper init = { .i = i, .done = &done };
      tasks[i] = afut_task_new (loop, sleeper, sizeof init, &init, NULL, NULL);
    }
  all = afut_gather_v (tasks, (size_t) n);
  t1 = now_s ();
  while (!afut_future_is_done (all))
    {
      g_main_context_iteration (ctx, TRUE);
      iterations++;
    }
  t2 = now_s ();
  c1 = cpu_s ();
  rss1 = peak_rss_kib ();

  if (afut_future_get_state (all) != AFUT_FUTURE_DONE)
    fail ("the gather ended %s",
          afut_future_state_to_string (afut_future_get_state (all)));
  if (done != n)
    fail ("%ld of %ld tasks finished", done, n);
  if (afut_loop_get_n_tasks (loop) != 0)
    fail ("%zu tasks still pending", afut_loop_get_n_tasks (loop));

  afut_future_unref (all);
  for (i = 0; i < n; i++)
    afut_future_unref (tasks[i]);
  g_free (tasks);
  afut_loop_unref (loop);
  g_main_context_unref (ctx);
  t3 = now_s ();
  report_timers ("afut tasks + gather", n, t0, t1, t2, t3, c0, c1, rss0,
                 rss1, iterations);
}

/* The same tasks on afut's embedded poll() loop. */
static void
case_afut_embedded_sleeps (long n)
{
  AfutLoop *loop = afut_loop_new (AFUT_LOOP_NONE);
  AfutFuture **tasks = g_new (AfutFuture *, n);
  AfutFuture *all;
  long done = 0, i;
  long rss0, rss1;
  double t0, t1, t2, t3, c0, c1;

  memset (tasks, 0, sizeof (AfutFuture *) * (size_t) n); /* touched */
  rss0 = peak_rss_kib ();
  c0 = cpu_s ();
  t0 = now_s ();
  for (i = 0; i < n; i++)
    {
      Sleeper init = { .i = i, .done = &done };
      tasks[i] = afut_task_new (loop, sleeper, sizeof init, &init, NULL, NULL);
    }
  all = afut_gather_v (tasks, (size_t) n);
  t1 = now_s ();
  afut_loop_run_until_complete (loop, all);
  t2 = now_s ();
  c1 = cpu_s ();
  rss1 = peak_rss_kib ();
  if (afut_future_get_state (all) != AFUT_FUTURE_DONE)
    fail ("the gather ended %s",
          afut_future_state_to_string (afut_future_get_state (all)));
  if (done != n)
    fail ("%ld of %ld tasks finished", done, n);
  afut_future_unref (all);
  for (i = 0; i < n; i++)
    afut_future_unref (tasks[i]);
  g_free (tasks);
  afut_loop_unref (loop);
  t3 = now_s ();
  report_timers ("afut tasks, embedded loop", n, t0, t1, t2, t3, c0, c1,
                 rss0, rss1, 0);
}

static void
on_sleep_done (AfutFuture *future, void *data)
{
  (void) future;
  (*(long *) data)--;
}

/* N bare sleep futures with a done callback each: afut's timer alone. */
static void
case_afut_bare_sleeps (long n)
{
  GMainContext *ctx = g_main_context_new ();
  AfutLoop *loop = afut_glib_loop_new (ctx, AFUT_LOOP_NONE);
  AfutFuture **sleeps = g_new (AfutFuture *, n);
  long left = n, i, iterations = 0;
  long rss0, rss1;
  double t0, t1, t2, t3, c0, c1;

  memset (sleeps, 0, sizeof (AfutFuture *) * (size_t) n); /* touched */
  rss0 = peak_rss_kib ();
  c0 = cpu_s ();
  t0 = now_s ();
  for (i = 0; i < n; i++)
    {
      sleeps[i] = afut_loop_sleep (loop, delay_s (i));
      afut_future_add_done_callback (sleeps[i], on_sleep_done, &left);
    }
  t1 = now_s ();
  while (left > 0)
    {
      g_main_context_iteration (ctx, TRUE);
      iterations++;
    }
  t2 = now_s ();
  c1 = cpu_s ();
  rss1 = peak_rss_kib ();
  for (i = 0; i < n; i++)
    if (afut_future_get_state (sleeps[i]) != AFUT_FUTURE_DONE)
      {
        fail ("sleep %ld ended %s", i,
              afut_future_state_to_string (afut_future_get_state (sleeps[i])));
        break;
      }
  for (i = 0; i < n; i++)
    afut_future_unref (sleeps[i]);
  g_free (sleeps);
  afut_loop_unref (loop);
  g_main_context_unref (ctx);
  t3 = now_s ();
  report_timers ("afut bare sleeps + callback", n, t0, t1, t2, t3, c0, c1,
                 rss0, rss1, iterations);
}

/* The floor: a plain C binary heap of {deadline, callback, data} that
 * one GSource drives (prepare: the earliest deadline; dispatch: pop what
 * expired).  No futures, no cancellation, no ordering of equal
 * deadlines. */
typedef struct
{
  gint64 when; /* monotonic us */
  GSourceFunc func;
  gpointer data;
} HeapTimer;

typedef struct
{
  GSource source;
  HeapTimer *heap;
  size_t len;
  size_t cap;
} HeapSource;

static void
heap_timer_add (HeapSource *h, gint64 when, GSourceFunc func, gpointer data)
{
  size_t i;
  if (h->len == h->cap)
    {
      h->cap = h->cap ? h->cap * 2 : 64;
      h->heap = g_renew (HeapTimer, h->heap, h->cap);
    }
  i = h->len++;
  while (i > 0 && h->heap[(i - 1) / 2].when > when)
    {
      h->heap[i] = h->heap[(i - 1) / 2];
      i = (i - 1) / 2;
    }
  h->heap[i].when = when;
  h->heap[i].func = func;
  h->heap[i].data = data;
}

static HeapTimer
heap_timer_pop (HeapSource *h)
{
  HeapTimer top = h->heap[0], last = h->heap[--h->len];
  size_t i = 0;
  for (;;)
    {
      size_t c = 2 * i + 1;
      if (c >= h->len)
        break;
      if (c + 1 < h->len && h->heap[c + 1].when < h->heap[c].when)
        c++;
      if (h->heap[c].when >= last.when)
        break;
      h->heap[i] = h->heap[c];
      i = c;
    }
  if (h->len > 0)
    h->heap[i] = last;
  return top;
}

static gboolean
heap_prepare (GSource *source, gint *timeout)
{
  HeapSource *h = (HeapSource *) source;
  gint64 now;
  if (h->len == 0)
    {
      *timeout = -1;
      return FALSE;
    }
  now = g_source_get_time (source);
  if (h->heap[0].when <= now)
    return TRUE;
  *timeout = (gint) MIN ((h->heap[0].when - now + 999) / 1000, G_MAXINT);
  return FALSE;
}

static gboolean
heap_check (GSource *source)
{
  HeapSource *h = (HeapSource *) source;
  return h->len > 0 && h->heap[0].when <= g_source_get_time (source);
}

static gboolean
heap_dispatch (GSource *source, GSourceFunc callback, gpointer data)
{
  HeapSource *h = (HeapSource *) source;
  gint64 now = g_get_monotonic_time ();
  (void) callback;
  (void) data;
  while (h->len > 0 && h->heap[0].when <= now)
    {
      HeapTimer t = heap_timer_pop (h);
      t.func (t.data);
    }
  return G_SOURCE_CONTINUE;
}

static void
heap_finalize (GSource *source)
{
  g_free (((HeapSource *) source)->heap);
}

static GSourceFuncs heap_source_funcs = {
  heap_prepare, heap_check, heap_dispatch, heap_finalize, NULL, NULL,
};

static gboolean
on_timeout (gpointer data)
{
  (*(long *) data)--;
  return G_SOURCE_REMOVE;
}

static void
case_heap_source (long n)
{
  GMainContext *ctx = g_main_context_new ();
  HeapSource *h;
  long left = n, i, iterations = 0;
  long rss0, rss1;
  double t0, t1, t2, t3, c0, c1;

  rss0 = peak_rss_kib ();
  c0 = cpu_s ();
  t0 = now_s ();
  h = (HeapSource *) g_source_new (&heap_source_funcs, sizeof (HeapSource));
  g_source_attach (&h->source, ctx);
  for (i = 0; i < n; i++)
    heap_timer_add (h, g_get_monotonic_time () + (gint64) (delay_s (i) * 1e6),
                    on_timeout, &left);
  t1 = now_s ();
  while (left > 0)
    {
      g_main_context_iteration (ctx, TRUE);
      iterations++;
    }
  t2 = now_s ();
  c1 = cpu_s ();
  rss1 = peak_rss_kib ();
  if (left != 0 || h->len != 0)
    fail ("%ld timers did not fire", left);
  g_source_destroy (&h->source);
  g_source_unref (&h->source);
  g_main_context_unref (ctx);
  t3 = now_s ();
  report_timers ("C heap GSource (floor)", n, t0, t1, t2, t3, c0, c1,
                 rss0, rss1, iterations);
}

static void
case_gtimeout_sleeps (long n)
{
  GMainContext *ctx = g_main_context_new ();
  long left = n, i, iterations = 0;
  long rss0, rss1;
  double t0, t1, t2, t3, c0, c1;

  rss0 = peak_rss_kib ();
  c0 = cpu_s ();
  t0 = now_s ();
  for (i = 0; i < n; i++)
    {
      GSource *s = g_timeout_source_new (
        (guint) (sleep_wide ? 10 + i % 1000 : 10 + i % 11));
      g_source_set_callback (s, on_timeout, &left, NULL);
      g_source_attach (s, ctx);
      g_source_unref (s);
    }
  t1 = now_s ();
  while (left > 0)
    {
      g_main_context_iteration (ctx, TRUE);
      iterations++;
    }
  t2 = now_s ();
  c1 = cpu_s ();
  rss1 = peak_rss_kib ();
  if (left != 0)
    fail ("%ld timeouts did not fire", left);
  g_main_context_unref (ctx);
  t3 = now_s ();
  report_timers ("g_timeout sources", n, t0, t1, t2, t3, c0, c1, rss0, rss1,
                 iterations);
}

/* ======================================================================== */
/* 2. one GLib iteration with many pending timers                          */
/* ======================================================================== */

typedef struct
{
  AfutTask task;
  long *started;
} Dozer;

static void
dozer (AfutTask *task)
{
  Dozer *self = (Dozer *) task;
  AFUT_BEGIN (task);
  (*self->started)++;
  AFUT_AWAIT (task, afut_sleep (3600));
  AFUT_END (task);
}

static double
median_of (double *v, int n)
{
  int b;
  for (b = 1; b < n; b++) /* insertion sort */
    {
      double x = v[b];
      int j = b - 1;
      while (j >= 0 && v[j] > x)
        {
          v[j + 1] = v[j];
          j--;
        }
      v[j + 1] = x;
    }
  return v[n / 2];
}

static double
time_block (GMainContext *ctx, long iterations)
{
  double t0 = now_s ();
  long i;
  for (i = 0; i < iterations; i++)
    g_main_context_iteration (ctx, FALSE);
  return (now_s () - t0) * 1e9 / (double) iterations;
}

enum
{
  ITER_AFUT_SLEEPS, /* an afut loop with n pending bare sleep futures */
  ITER_AFUT_TASKS,  /* n tasks, each awaiting a sleep */
  ITER_GTIMEOUT     /* n pending g_timeout sources */
};

static int iter_kind;

#define ITER_ROUNDS 9

/* Three contexts in one process: an empty one, one with an idle afut
 * loop, and the loaded one; blocks of g_main_context_iteration (ctx,
 * FALSE) on each in turn, so that the machine's drifts hit all three
 * alike.  Figures are per iteration: the best block and the median. */
static void
case_iteration (long n)
{
  GMainContext *c_empty = g_main_context_new ();
  GMainContext *c_idle = g_main_context_new ();
  GMainContext *c_load = g_main_context_new ();
  AfutLoop *l_idle = afut_glib_loop_new (c_idle, AFUT_LOOP_NONE);
  AfutLoop *l_load = NULL;
  AfutFuture **futures = NULL;
  double empty[ITER_ROUNDS], idle[ITER_ROUNDS], load[ITER_ROUNDS];
  double t_setup, t_start, best_e, best_i, best_l, med_e, med_i, med_l;
  long i, started = 0, load_block, rss0, rss1;
  int k = 0;
  const char *what = "";

  futures = g_new (AfutFuture *, n);
  memset (futures, 0, sizeof (AfutFuture *) * (size_t) n); /* touched */
  rss0 = peak_rss_kib ();
  t_setup = now_s ();
  switch (iter_kind)
    {
    case ITER_AFUT_SLEEPS:
      what = "pending afut sleeps (bare futures)";
      l_load = afut_glib_loop_new (c_load, AFUT_LOOP_NONE);
      for (i = 0; i < n; i++)
        futures[i] = afut_loop_sleep (l_load,
                                      3600 + (double) (i % 1000) * 1e-6);
      break;
    case ITER_AFUT_TASKS:
      what = "afut tasks awaiting sleeps";
      l_load = afut_glib_loop_new (c_load, AFUT_LOOP_NONE);
      for (i = 0; i < n; i++)
        {
          Dozer init = { .started = &started };
          futures[i] = afut_task_new (l_load, dozer, sizeof init, &init, NULL,
                                      NULL);
        }
      while (started < n)
        g_main_context_iteration (c_load, FALSE);
      break;
    case ITER_GTIMEOUT:
      what = "pending g_timeout sources";
      for (i = 0; i < n; i++)
        {
          GSource *s = g_timeout_source_new_seconds (3600);
          g_source_set_callback (s, on_timeout, &started, NULL);
          g_source_attach (s, c_load);
          g_source_unref (s);
        }
      break;
    }
  t_setup = now_s () - t_setup;
  rss1 = peak_rss_kib ();

  /* About 5 ms a block, but at least 2 iterations. */
  for (i = 0; i < 10; i++) /* warm up */
    {
      g_main_context_iteration (c_empty, FALSE);
      g_main_context_iteration (c_idle, FALSE);
    }
  g_main_context_iteration (c_load, FALSE);
  {
    double one = time_block (c_load, 2);
    load_block = (long) (5e6 / (one > 1 ? one : 1));
    load_block = load_block < 2 ? 2 : load_block > 10000 ? 10000 : load_block;
  }
  t_start = now_s ();
  for (k = 0; k < ITER_ROUNDS; k++)
    {
      empty[k] = time_block (c_empty, 10000);
      idle[k] = time_block (c_idle, 10000);
      load[k] = time_block (c_load, load_block);
      if (now_s () - t_start > 10)
        {
          k++;
          break;
        }
    }
  med_e = median_of (empty, k);
  med_i = median_of (idle, k);
  med_l = median_of (load, k);
  best_e = empty[0];
  best_i = idle[0];
  best_l = load[0];

  if (iter_kind == ITER_GTIMEOUT && started != 0)
    fail ("a 1-hour timeout fired");
  if (iter_kind == ITER_AFUT_SLEEPS)
    for (i = 0; i < n; i++)
      if (afut_future_is_done (futures[i]))
        {
          fail ("a 1-hour sleep is done");
          break;
        }
  if (iter_kind == ITER_AFUT_TASKS
      && afut_loop_get_n_tasks (l_load) != (size_t) n)
    fail ("%zu tasks pending, expected %ld", afut_loop_get_n_tasks (l_load),
          n);

  result->ns_per_op = med_l;
  result->cpu_ns_per_op = med_i; /* here: the idle afut loop's */
  result->empty_ns = med_e;
  result->bytes_per = (double) (rss1 - rss0) * 1024.0 / (double) n;
  say ("  %-5s %-34s setup %5.0f ms  +%3.0f B/pending  |  ns per "
       "iteration, best/median of %d blocks: empty context %4.0f/%4.0f, "
       "idle afut loop %4.0f/%4.0f, loaded %9.0f/%9.0f  =>  loaded/idle "
       "%.2fx (median), %.2fx (best)\n",
       pow10_name (n), what, t_setup * 1e3, result->bytes_per, k, best_e,
       med_e, best_i, med_i, best_l, med_l, med_l / med_i, best_l / best_i);
  /* The child exits here: tearing down 10^6 pending timers tells
   * nothing more. */
  (void) l_idle;
}

/* ======================================================================== */
/* 3. socketpair ping-pong                                                  */
/* ======================================================================== */

typedef struct
{
  AfutTask task;
  int fd;
  int pinger;
  long n;
  long i;
  long *count;
  unsigned char out;
  unsigned char in;
} Pong;

/* @what failed at round trip @i: an I/O error (errno), or with
 * "wrong byte" or "short read" a bad echo. */
static AfutError *
pp_error (const char *what, long i)
{
  int errsv = errno;
  if (strcmp (what, "read") == 0 || strcmp (what, "write") == 0)
    return afut_error_new (AFUT_ERROR, AFUT_ERROR_FAILED,
                           "%s at round trip %ld: %s", what, i,
                           g_strerror (errsv));
  return afut_error_new (AFUT_ERROR, AFUT_ERROR_FAILED,
                         "%s at round trip %ld", what, i);
}

/* afut_fd_wait by hand: wait readable, then one read() / write(). */
static void
pp_fd_wait (AfutTask *task)
{
  Pong *self = (Pong *) task;
  unsigned char c;
  AFUT_BEGIN (task);
  for (self->i = 0; self->i < self->n; self->i++)
    {
      if (self->pinger)
        {
          c = (unsigned char) self->i;
          if (write (self->fd, &c, 1) != 1)
            AFUT_THROW (task, pp_error ("write", self->i));
        }
      AFUT_AWAIT (task, afut_fd_wait (self->fd, AFUT_IO_IN));
      if (read (self->fd, &c, 1) != 1)
        AFUT_THROW (task, pp_error ("read", self->i));
      if (c != (unsigned char) self->i)
        AFUT_THROW (task, pp_error ("wrong byte", self->i));
      if (!self->pinger && write (self->fd, &c, 1) != 1)
        AFUT_THROW (task, pp_error ("write", self->i));
      (*self->count)++;
    }
  AFUT_END (task);
}

/* The stream helpers: afut_fd_write_all, afut_fd_read. */
static void
pp_helpers (AfutTask *task)
{
  Pong *self = (Pong *) task;
  AFUT_BEGIN (task);
  for (self->i = 0; self->i < self->n; self->i++)
    {
      if (self->pinger)
        {
          self->out = (unsigned char) self->i;
          AFUT_AWAIT (task, afut_fd_write_all (self->fd, &self->out, 1));
        }
      AFUT_AWAIT (task, afut_fd_read (self->fd, &self->in, 1));
      if (afut_future_get_int (afut_task_awaited (task)) != 1)
        AFUT_THROW (task, pp_error ("short read", self->i));
      if (self->in != (unsigned char) self->i)
        AFUT_THROW (task, pp_error ("wrong byte", self->i));
      if (!self->pinger)
        {
          self->out = self->in;
          AFUT_AWAIT (task, afut_fd_write_all (self->fd, &self->out, 1));
        }
      (*self->count)++;
    }
  AFUT_END (task);
}

static void
make_socketpair (int fds[2])
{
  if (socketpair (AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, fds)
      < 0)
    {
      fail ("socketpair: %s", g_strerror (errno));
      fds[0] = fds[1] = -1;
    }
}

static double pp_cpu0;

static double
pp_start (void)
{
  pp_cpu0 = cpu_s ();
  return now_s ();
}

/* Wall time, and CPU time (user + system): on a shared machine the
 * latter is the steadier of the two. */
static void
report_pp (const char *name, long n, double seconds)
{
  double cpu = cpu_s () - pp_cpu0;
  result->wall_s = seconds;
  result->ns_per_op = seconds * 1e9 / (double) n;
  result->cpu_ns_per_op = cpu * 1e9 / (double) n;
  say ("  %-46s %7.0f round trips/s  %6.0f ns/round trip  CPU %6.0f "
       "ns/round trip\n",
       name, (double) n / seconds, result->ns_per_op, result->cpu_ns_per_op);
}

static int pp_glib; /* on the GLib adapter, else the embedded loop */
static int pp_use_helpers;

static void
case_pp_afut (long n)
{
  GMainContext *ctx = NULL;
  AfutLoop *loop;
  AfutFuture *a, *b, *all;
  long pings = 0, pongs = 0;
  int fds[2];
  double t0, t1;
  char name[64];
  AfutTaskFunc func = pp_use_helpers ? pp_helpers : pp_fd_wait;

  make_socketpair (fds);
  if (fds[0] < 0)
    return;
  if (pp_glib)
    {
      ctx = g_main_context_new ();
      loop = afut_glib_loop_new (ctx, AFUT_LOOP_NONE);
    }
  else
    loop = afut_loop_new (AFUT_LOOP_NONE);
  {
    Pong pi = { .fd = fds[0], .pinger = 1, .n = n, .count = &pings };
    Pong po = { .fd = fds[1], .pinger = 0, .n = n, .count = &pongs };
    t0 = pp_start ();
    a = afut_task_new (loop, func, sizeof pi, &pi, "ping", NULL);
    b = afut_task_new (loop, func, sizeof po, &po, "pong", NULL);
  }
  all = afut_gather (afut_future_ref (a), afut_future_ref (b), NULL);
  if (pp_glib)
    while (!afut_future_is_done (all))
      g_main_context_iteration (ctx, TRUE);
  else
    afut_loop_run_until_complete (loop, all);
  t1 = now_s ();
  snprintf (name, sizeof name, "afut %s, %s", pp_glib ? "GLib adapter" : "embedded poll()",
            pp_use_helpers ? "fd_read/fd_write_all" : "fd_wait + read/write");
  report_pp (name, n, t1 - t0);
  if (afut_future_get_state (all) != AFUT_FUTURE_DONE)
    {
      /* The one that failed; else the one still pending. */
      AfutFuture *bad;
      const AfutError *e;
      if (afut_future_is_done (a) && afut_future_get_error (a) != NULL)
        bad = a;
      else if (afut_future_is_done (b) && afut_future_get_error (b) != NULL)
        bad = b;
      else
        bad = afut_future_is_done (a) ? b : a;
      e = afut_future_is_done (bad) ? afut_future_get_error (bad) : NULL;
      if (afut_future_is_done (all))
        (void) afut_future_get_error (all); /* reported here, not at free */
      fail ("%s ended %s: %s", afut_task_get_name (AFUT_TASK (bad)),
            afut_future_state_to_string (afut_future_get_state (bad)),
            e != NULL ? e->message : "?");
    }
  if (pings != n || pongs != n)
    fail ("%ld pings and %ld pongs, expected %ld", pings, pongs, n);
  afut_future_unref (all);
  afut_future_unref (a);
  afut_future_unref (b);
  afut_loop_unref (loop);
  if (ctx != NULL)
    g_main_context_unref (ctx);
  close (fds[0]);
  close (fds[1]);
}

static void
case_pp_afut_glib_fd_wait (long n)
{
  pp_glib = 1;
  pp_use_helpers = 0;
  case_pp_afut (n);
}

static void
case_pp_afut_glib_helpers (long n)
{
  pp_glib = 1;
  pp_use_helpers = 1;
  case_pp_afut (n);
}

static void
case_pp_afut_embedded_fd_wait (long n)
{
  pp_glib = 0;
  pp_use_helpers = 0;
  case_pp_afut (n);
}

static void
case_pp_afut_embedded_helpers (long n)
{
  pp_glib = 0;
  pp_use_helpers = 1;
  case_pp_afut (n);
}

typedef struct
{
  long n;
  long pings;
  long pongs;
  int bad;
} GPingPong;

static gboolean
on_ping_fd (gint fd, GIOCondition condition, gpointer data)
{
  GPingPong *pp = (GPingPong *) data;
  unsigned char c;
  (void) condition;
  if (read (fd, &c, 1) != 1 || c != (unsigned char) pp->pings)
    {
      pp->bad = 1;
      return G_SOURCE_REMOVE;
    }
  pp->pings++;
  if (pp->pings < pp->n)
    {
      c = (unsigned char) pp->pings;
      if (write (fd, &c, 1) != 1)
        pp->bad = 1;
    }
  return G_SOURCE_CONTINUE;
}

static gboolean
on_pong_fd (gint fd, GIOCondition condition, gpointer data)
{
  GPingPong *pp = (GPingPong *) data;
  unsigned char c;
  (void) condition;
  if (read (fd, &c, 1) != 1 || write (fd, &c, 1) != 1)
    {
      pp->bad = 1;
      return G_SOURCE_REMOVE;
    }
  pp->pongs++;
  return G_SOURCE_CONTINUE;
}

static int pp_can_recurse;

static void
case_pp_gunix (long n)
{
  GMainContext *ctx = g_main_context_new ();
  GPingPong pp = { .n = n };
  GSource *s0, *s1;
  int fds[2];
  unsigned char c = 0;
  double t0, t1;

  make_socketpair (fds);
  if (fds[0] < 0)
    return;
  t0 = pp_start ();
  /* What g_unix_fd_add() does, on a fresh context. */
  s0 = g_unix_fd_source_new (fds[0], G_IO_IN);
  s1 = g_unix_fd_source_new (fds[1], G_IO_IN);
  g_source_set_callback (s0, G_SOURCE_FUNC (on_ping_fd), &pp, NULL);
  g_source_set_callback (s1, G_SOURCE_FUNC (on_pong_fd), &pp, NULL);
  if (pp_can_recurse)
    {
      g_source_set_can_recurse (s0, TRUE);
      g_source_set_can_recurse (s1, TRUE);
    }
  g_source_attach (s0, ctx);
  g_source_attach (s1, ctx);
  if (write (fds[0], &c, 1) != 1)
    pp.bad = 1;
  while (pp.pings < n && !pp.bad)
    g_main_context_iteration (ctx, TRUE);
  t1 = now_s ();
  report_pp (pp_can_recurse ? "g_unix_fd sources, can_recurse"
                            : "g_unix_fd sources (as g_unix_fd_add)",
             n, t1 - t0);
  if (pp.bad || pp.pings != n || pp.pongs != n)
    fail ("%ld pings and %ld pongs, expected %ld%s", pp.pings, pp.pongs, n,
          pp.bad ? " (wrong byte or I/O error)" : "");
  g_source_destroy (s0);
  g_source_destroy (s1);
  g_source_unref (s0);
  g_source_unref (s1);
  g_main_context_unref (ctx);
  close (fds[0]);
  close (fds[1]);
}

static void
case_pp_gunix_default (long n)
{
  pp_can_recurse = 0;
  case_pp_gunix (n);
}

static void
case_pp_gunix_recurse (long n)
{
  pp_can_recurse = 1;
  case_pp_gunix (n);
}

/* The raw loops' two ends: what each does when its fd is readable. */
typedef struct
{
  int fds[2];
  long n, pings, pongs;
  int bad;
  unsigned char c;
} RawPP;

/* fds[1] echoes the byte back. */
static void
raw_pong (RawPP *pp)
{
  if (read (pp->fds[1], &pp->c, 1) != 1 || write (pp->fds[1], &pp->c, 1) != 1)
    pp->bad = 1;
  pp->pongs++;
}

/* fds[0] checks the echo and sends the next byte, n in all. */
static void
raw_ping (RawPP *pp)
{
  if (read (pp->fds[0], &pp->c, 1) != 1 || pp->c != (unsigned char) pp->pings)
    pp->bad = 1;
  pp->pings++;
  pp->c = (unsigned char) pp->pings;
  if (pp->pings < pp->n && write (pp->fds[0], &pp->c, 1) != 1)
    pp->bad = 1;
}

static void
raw_finish (RawPP *pp, const char *name, double t0)
{
  report_pp (name, pp->n, now_s () - t0);
  if (pp->bad || pp->pings != pp->n || pp->pongs != pp->n)
    fail ("%ld pings and %ld pongs, expected %ld%s", pp->pings, pp->pongs,
          pp->n, pp->bad ? " (wrong byte or I/O error)" : "");
  close (pp->fds[0]);
  close (pp->fds[1]);
}

static void
case_pp_poll (long n)
{
  RawPP pp = { .n = n };
  struct pollfd p[2];
  double t0;

  make_socketpair (pp.fds);
  if (pp.fds[0] < 0)
    return;
  p[0].fd = pp.fds[0];
  p[1].fd = pp.fds[1];
  p[0].events = p[1].events = POLLIN;
  t0 = pp_start ();
  if (write (pp.fds[0], &pp.c, 1) != 1)
    pp.bad = 1;
  while (pp.pings < n && !pp.bad)
    {
      int r = poll (p, 2, -1);
      if (r < 0 && errno == EINTR)
        continue;
      if (r <= 0)
        {
          pp.bad = 1;
          break;
        }
      if (p[1].revents)
        raw_pong (&pp);
      if (p[0].revents)
        raw_ping (&pp);
    }
  raw_finish (&pp, "raw poll() loop", t0);
}

#ifdef __linux__
/* The floor of an epoll loop (afut's on Linux): both ends registered once,
 * level-triggered, one epoll_wait per wakeup.  Beside raw poll(), it
 * shows what epoll itself costs on two fds: each write runs the epoll
 * callback in the kernel under the set's lock, which poll() avoids when
 * nobody is asleep in it. */
static void
case_pp_epoll (long n)
{
  RawPP pp = { .n = n };
  struct epoll_event ev, got[2];
  int ep, i;
  double t0;

  make_socketpair (pp.fds);
  if (pp.fds[0] < 0)
    return;
  ep = epoll_create1 (EPOLL_CLOEXEC);
  for (i = 0; i < 2; i++)
    {
      memset (&ev, 0, sizeof ev);
      ev.events = EPOLLIN;
      ev.data.fd = pp.fds[i];
      if (ep < 0 || epoll_ctl (ep, EPOLL_CTL_ADD, pp.fds[i], &ev) != 0)
        pp.bad = 1;
    }
  t0 = pp_start ();
  if (!pp.bad && write (pp.fds[0], &pp.c, 1) != 1)
    pp.bad = 1;
  while (pp.pings < n && !pp.bad)
    {
      int r = epoll_wait (ep, got, 2, -1), k;
      if (r < 0 && errno == EINTR)
        continue;
      if (r <= 0)
        {
          pp.bad = 1;
          break;
        }
      for (k = 0; k < r && !pp.bad; k++)
        if (got[k].data.fd == pp.fds[1])
          raw_pong (&pp);
        else
          raw_ping (&pp);
    }
  if (ep >= 0)
    close (ep);
  raw_finish (&pp, "raw epoll loop", t0);
}
#endif

/* ======================================================================== */
/* main                                                                     */
/* ======================================================================== */

static int
cmp_double (const void *a, const void *b)
{
  double x = *(const double *) a, y = *(const double *) b;
  return x < y ? -1 : x > y;
}

#ifdef __linux__
#define N_PP 8
#else
#define N_PP 7
#endif
#define N_TIMER 5 /* the last one is g_timeout */
#define N_SIZES 4
#define MAX_REPS 5

int
main (int argc, char **argv)
{
  static const struct
  {
    const char *name;
    CaseFunc func;
  } pp_cases[N_PP] = {
    { "afut GLib adapter, fd_wait + read/write", case_pp_afut_glib_fd_wait },
    { "afut GLib adapter, fd_read/fd_write_all", case_pp_afut_glib_helpers },
    { "afut embedded poll(), fd_wait + read/write",
      case_pp_afut_embedded_fd_wait },
    { "afut embedded poll(), fd_read/fd_write_all",
      case_pp_afut_embedded_helpers },
    { "g_unix_fd sources (as g_unix_fd_add)", case_pp_gunix_default },
    { "g_unix_fd sources, can_recurse", case_pp_gunix_recurse },
    { "raw poll() loop", case_pp_poll },
#ifdef __linux__
    { "raw epoll loop", case_pp_epoll },
#endif
  };
  long sleep_ns[N_SIZES] = { 1000, 10000, 100000, 1000000 };
  long gt_iter_ns[N_SIZES] = { 1000, 10000, 100000, 1000000 };
  static const char *const pp_impls[N_PP] = {
    "afut-glib-fd_wait", "afut-glib-fd_read", "afut-embedded-fd_wait",
    "afut-embedded-fd_read", "g_unix_fd_add", "g_unix_fd-can_recurse",
    "raw-poll",
#ifdef __linux__
    "raw-epoll",
#endif
  };
  static const char *const timer_impls[N_TIMER] = {
    "afut-glib-tasks", "afut-glib-bare", "c-heap-gsource",
    "afut-embedded-tasks", "g_timeout",
  };
  static const struct
  {
    const char *name;
    CaseFunc func;
  } timer_cases[N_TIMER] = {
    { "afut tasks", case_afut_sleeps },
    { "afut bare", case_afut_bare_sleeps },
    { "C heap", case_heap_source },
    { "afut embed", case_afut_embedded_sleeps },
    { "g_timeout", case_gtimeout_sleeps },
  };
  static Result timer_r[2][N_TIMER][N_SIZES];
  int timer_ran[2][N_TIMER][N_SIZES];
  Result gt_iter_r[N_SIZES];
  int timer_reps, tr;
  char extra[128];
  int k;
  double pp_ns[N_PP][MAX_REPS], pp_cpu[N_PP][MAX_REPS];
  int n_sizes, reps, i, r, w;
  long pp_n, iter_n;
  int quick = 0, reps_arg = 0;
  long max_n = 0;
  const char *only = NULL;
  struct utsname un;
  Result sleeps_r, tasks_r;
  double load[1];

  for (i = 1; i < argc; i++)
    {
      if (strcmp (argv[i], "--quick") == 0)
        quick = 1;
      else if (strcmp (argv[i], "--reps") == 0 && i + 1 < argc)
        reps_arg = atoi (argv[++i]);
      else if (strcmp (argv[i], "--max-n") == 0 && i + 1 < argc)
        max_n = atol (argv[++i]);
      else if (strcmp (argv[i], "--only") == 0 && i + 1 < argc)
        only = argv[++i];
      else
        {
          fprintf (stderr,
                   "usage: %s [--quick] [--reps R] [--max-n N] [--only "
                   "sleeps|sleeps_wide|glib_iteration|pingpong]\n",
                   argv[0]);
          return 2;
        }
    }
  n_sizes = quick ? 2 : N_SIZES;
  reps = quick ? 1 : MAX_REPS;
  timer_reps = quick ? 1 : 3;
  if (reps_arg > 0)
    {
      reps = reps_arg > MAX_REPS ? MAX_REPS : reps_arg;
      timer_reps = reps;
    }
  while (max_n > 0 && n_sizes > 1 && sleep_ns[n_sizes - 1] > max_n)
    n_sizes--;
  pp_n = quick ? 10000 : 100000;
  iter_n = quick ? 10000 : 1000000;
  if (max_n > 0 && iter_n > max_n)
    iter_n = max_n;

  uname (&un);
  printf ("bench-glib%s: afut %d.%d.%d on GLib %u.%u.%u, %s %s, %ld CPUs\n",
          quick ? " --quick" : "", AFUT_VERSION_MAJOR, AFUT_VERSION_MINOR,
          AFUT_VERSION_MICRO, glib_major_version, glib_minor_version,
          glib_micro_version, un.sysname, un.release,
          sysconf (_SC_NPROCESSORS_ONLN));
  printf ("sizeof (AfutFuture) = %zu, sizeof (AfutTask) = %zu, sizeof "
          "(Sleeper) = %zu; each case runs in its own child process\n",
          sizeof (AfutFuture), sizeof (AfutTask), sizeof (Sleeper));
  if (getloadavg (load, 1) == 1)
    printf ("load average (1 min) at start: %.2f\n", load[0]);

  /* ---- 1 ---- */
  memset (&sleeps_r, 0, sizeof sleeps_r);
  memset (&tasks_r, 0, sizeof tasks_r);
  memset (timer_ran, 0, sizeof timer_ran);
  for (tr = 0; tr < timer_reps; tr++)
  for (w = 0; w < 2; w++)
    {
      if (only != NULL
          && strcmp (only, w == 0 ? "sleeps" : "sleeps_wide") != 0)
        continue;
      sleep_wide = w;
      if (tr > 0)
        printf ("\n1%c, repetition %d\n", w == 0 ? 'a' : 'b', tr + 1);
      else if (w == 0)
        printf ("\n1a. N concurrent sleeping tasks, 10 ms + (i %% 1000) us "
                "on the real clock, gathered, on the GLib adapter; beside "
                "them bare afut sleeps,\n    a plain C heap in one GSource "
                "(the floor) and N g_timeout sources of 10 + (i %% 11) "
                "ms, each on a fresh GMainContext\n");
      else
        printf ("\n1b. the same with deadlines spread over a second, 10 + "
                "(i %% 1000) ms for all, so that GLib iterates while "
                "timers are pending\n");
      for (i = 0; i < n_sizes; i++)
        for (k = 0; k < N_TIMER; k++)
          {
            Result *g10_5 = &timer_r[w][N_TIMER - 1][2];
            if (k == N_TIMER - 1 && i == 3 && timer_ran[w][k][2]
                && g10_5->wall_s > 60 / timer_reps)
              {
                printf ("  %-27s %-5s skipped: 10^5 took %.1f s (> 60 s)\n",
                        "g_timeout sources", pow10_name (sleep_ns[i]),
                        g10_5->wall_s);
                continue;
              }
            timer_r[w][k][i] = run_case (timer_cases[k].func, sleep_ns[i],
                                         600, k == N_TIMER - 1);
            timer_ran[w][k][i] = 1;
            emit (w == 0 ? "sleeps" : "sleeps_wide", timer_impls[k],
                  sleep_ns[i], tr, &timer_r[w][k][i], NULL);
          }
    }

  /* ---- 2 ---- */
  printf ("\n2. cost of one g_main_context_iteration (ctx, FALSE) with N "
          "pending timers, beside an empty context and an idle afut loop in "
          "the same process (blocks interleaved)\n");
  /* ns_per_op: one iteration, loaded; cpu_ns_per_op is (here) the idle
   * afut loop's, empty_ns the empty context's, in the same process. */
  if (only != NULL && strcmp (only, "glib_iteration") != 0)
    goto pingpong;
  iter_kind = ITER_AFUT_SLEEPS;
  sleeps_r = run_case (case_iteration, iter_n, 300, 0);
  snprintf (extra, sizeof extra, "idle_ns=%.2f empty_ns=%.2f",
            sleeps_r.cpu_ns_per_op, sleeps_r.empty_ns);
  emit ("glib_iteration", "afut-glib-bare-sleeps", iter_n, 0, &sleeps_r,
        extra);
  iter_kind = ITER_AFUT_TASKS;
  tasks_r = run_case (case_iteration, iter_n, 300, 0);
  snprintf (extra, sizeof extra, "idle_ns=%.2f empty_ns=%.2f",
            tasks_r.cpu_ns_per_op, tasks_r.empty_ns);
  emit ("glib_iteration", "afut-glib-tasks", iter_n, 0, &tasks_r, extra);
  iter_kind = ITER_GTIMEOUT;
  for (i = 0; i < n_sizes; i++)
    {
      gt_iter_r[i] = run_case (case_iteration, gt_iter_ns[i], 300, 1);
      snprintf (extra, sizeof extra, "idle_ns=%.2f empty_ns=%.2f",
                gt_iter_r[i].cpu_ns_per_op, gt_iter_r[i].empty_ns);
      emit ("glib_iteration", "g_timeout", gt_iter_ns[i], 0, &gt_iter_r[i],
            extra);
    }

  /* ---- 3 ---- */
pingpong:
  if (only != NULL && strcmp (only, "pingpong") != 0)
    goto summary;
  printf ("\n3. socketpair ping-pong, %s round trips, one byte each way; %d "
          "repetition%s, interleaved\n",
          pow10_name (pp_n), reps, reps > 1 ? "s" : "");
  for (r = 0; r < reps; r++)
    for (i = 0; i < N_PP; i++)
      {
        Result res = run_case (pp_cases[i].func, pp_n, 300, 0);
        emit ("pingpong", pp_impls[i], pp_n, r, &res, NULL);
        pp_ns[i][r] = res.ok ? res.ns_per_op : 0;
        pp_cpu[i][r] = res.ok ? res.cpu_ns_per_op : 0;
      }

  /* ---- summary ---- */
summary:
  if (only != NULL)
    return n_failures > 0 ? 1 : 0;
  printf ("\nSummary\n");
  for (w = 0; w < 2; w++)
    {
      printf ("  %s timers to completion: CPU ns per timer (user + system, "
              "adding and running), RSS bytes per pending timer, wall ms\n",
              w == 0 ? "1a." : "1b.");
      printf ("    %-6s|", "N");
      for (k = 0; k < N_TIMER; k++)
        printf (" %10s", timer_cases[k].name);
      printf (" | tasks/heap  bare/heap  g_t/tasks |");
      for (k = 0; k < N_TIMER; k++)
        printf (" %10s", timer_cases[k].name);
      printf (" |");
      for (k = 0; k < N_TIMER; k++)
        printf (" %10s", timer_cases[k].name);
      printf ("\n");
      for (i = 0; i < n_sizes; i++)
        {
          double cpu[N_TIMER];
          printf ("    %-6s|", pow10_name (sleep_ns[i]));
          for (k = 0; k < N_TIMER; k++)
            {
              Result *t = &timer_r[w][k][i];
              cpu[k] = timer_ran[w][k][i] && t->ok ? t->cpu_ns_per_op : 0;
              if (cpu[k] > 0)
                printf (" %10.0f", cpu[k]);
              else
                printf (" %10s", timer_ran[w][k][i] ? "failed" : "skipped");
            }
          printf (" | %9.2fx %9.2fx %9.2fx |",
                  cpu[2] > 0 ? cpu[0] / cpu[2] : 0,
                  cpu[2] > 0 ? cpu[1] / cpu[2] : 0,
                  cpu[0] > 0 ? cpu[N_TIMER - 1] / cpu[0] : 0);
          for (k = 0; k < N_TIMER; k++)
            printf (" %10.0f", cpu[k] > 0 ? timer_r[w][k][i].bytes_per : 0);
          printf (" |");
          for (k = 0; k < N_TIMER; k++)
            printf (" %10.1f", cpu[k] > 0 ? timer_r[w][k][i].wall_s * 1e3 : 0);
          printf ("\n");
        }
    }
  printf ("  2. one GLib iteration (median ns), loaded / idle afut loop in "
          "the same process:\n");
  printf ("    %s pending afut sleeps: %.0f / %.0f ns = %.2fx; %s afut tasks "
          "awaiting sleeps: %.0f / %.0f ns = %.2fx\n",
          pow10_name (iter_n), sleeps_r.ns_per_op, sleeps_r.cpu_ns_per_op,
          sleeps_r.ns_per_op / sleeps_r.cpu_ns_per_op, pow10_name (iter_n),
          tasks_r.ns_per_op, tasks_r.cpu_ns_per_op,
          tasks_r.ns_per_op / tasks_r.cpu_ns_per_op);
  printf ("    pending g_timeout sources:");
  for (i = 0; i < n_sizes; i++)
    if (gt_iter_r[i].ok)
      printf ("%s %s: %.0f ns = %.0fx", i > 0 ? ";" : "",
              pow10_name (gt_iter_ns[i]), gt_iter_r[i].ns_per_op,
              gt_iter_r[i].ns_per_op / gt_iter_r[i].cpu_ns_per_op);
  printf ("\n");
  printf ("  3. ping-pong, %s round trips, %d repetition%s: round trips/s "
          "and wall ns per round trip, best [median]; over raw poll()'s: "
          "best/best [median/median];\n     CPU (user + system) ns per "
          "round trip, median, and over raw poll()'s\n",
          pow10_name (pp_n), reps, reps > 1 ? "s" : "");
  {
    double sorted[N_PP][MAX_REPS], sorted_cpu[N_PP][MAX_REPS];
    double raw_best, raw_median, raw_cpu;
    int m = reps / 2;
    for (i = 0; i < N_PP; i++)
      {
        memcpy (sorted[i], pp_ns[i], sizeof (double) * (size_t) reps);
        qsort (sorted[i], (size_t) reps, sizeof (double), cmp_double);
        memcpy (sorted_cpu[i], pp_cpu[i], sizeof (double) * (size_t) reps);
        qsort (sorted_cpu[i], (size_t) reps, sizeof (double), cmp_double);
      }
    raw_best = sorted[N_PP - 1][0];
    raw_median = sorted[N_PP - 1][m];
    raw_cpu = sorted_cpu[N_PP - 1][m];
    for (i = 0; i < N_PP; i++)
      {
        if (sorted[i][0] <= 0)
          {
            printf ("    %-44s (failed)\n", pp_cases[i].name);
            continue;
          }
        printf ("    %-44s %6.0f [%6.0f] rt/s %6.0f [%6.0f] ns  %5.2fx "
                "[%5.2fx]  CPU %6.0f ns %5.2fx\n",
                pp_cases[i].name, 1e9 / sorted[i][0], 1e9 / sorted[i][m],
                sorted[i][0], sorted[i][m],
                raw_best > 0 ? sorted[i][0] / raw_best : 0,
                raw_median > 0 ? sorted[i][m] / raw_median : 0,
                sorted_cpu[i][m], raw_cpu > 0 ? sorted_cpu[i][m] / raw_cpu : 0);
      }
  }

  if (getloadavg (load, 1) == 1)
    printf ("  load average (1 min) at the end: %.2f (other work on the "
            "machine inflates wall times)\n",
            load[0]);
  if (n_failures > 0)
    {
      printf ("\n%d case(s) FAILED\n", n_failures);
      return 1;
    }
  printf ("\nall cases did their work\n");
  return 0;
}
