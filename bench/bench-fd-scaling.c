/* The cost of one fd event while other fds are awaited and idle (issue 17).
 *
 * One socketpair ping-pongs one byte between two tasks (afut_fd_wait, then
 * read() / write()) while N other sockets are awaited and stay idle: N
 * socketpairs, one end of each awaited (afut_loop_fd_wait), the other end
 * silent.  The same on:
 *   afut-embedded   afut's embedded loop (epoll on Linux, else poll())
 *   afut-glib       the GLib adapter on a fresh GMainContext
 *   g_unix_fd_add   plain GLib: a g_unix_fd source per socket, the two
 *                   active ones echoing, on a fresh context
 *   raw-poll        a hand-written poll() loop over all N + 2 fds (what
 *                   any poll()-based loop pays at best)
 * CPython's asyncio and uvloop run the same in bench_asyncio.py
 * (workload fd_scaling).
 *
 * Each case runs in a forked child (its own fd table).  A case runs about
 * --budget seconds after 200 warm-up round trips; figures are wall and CPU
 * (user + system) time per round trip.
 *
 * --check: the regression test that `meson test --benchmark` runs.  The
 * ratio of the CPU time per round trip at 10^3 idle sockets to that at 10,
 * best of the repetitions, must stay at most --max-ratio (2 by default) on
 * both afut loops: loose enough for a noisy shared machine, tight enough
 * to catch a cost that grows with the number of fds (the GLib adapter
 * measured 160x before it carried its fds in one epoll set, poll()
 * about 35x).  The machine's load is printed at start and end.
 *
 * Usage: bench-fd-scaling [--quick] [--check] [--reps R] [--budget S]
 *                         [--sizes N,N,...] [--max-ratio X] [--only IMPL]
 */
#define _GNU_SOURCE
#define AFUT_IMPLEMENTATION
#define AFUT_GLIB
#include "afut.h"
#include "afut-glib.h"

#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

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

#define WARMUP 200
#define MIN_ROUND_TRIPS 50
#define STOP_BYTE 0xff

typedef struct
{
  int ok;
  long round_trips;
  double ns_per_rt;
  double cpu_ns_per_rt;
  char error[200];
} Result;

static Result *result;
static double budget_s = 0.3;

static void
fail (const char *what)
{
  result->ok = 0;
  snprintf (result->error, sizeof result->error, "%s: %s", what,
            strerror (errno));
}

/* The timing, shared by every implementation: ping calls these. */
typedef struct
{
  long i;        /* round trips done, warm-up included */
  double t0, c0; /* after the warm-up */
} Clock;

static void
clock_tick (Clock *c)
{
  c->i++;
  if (c->i == WARMUP)
    {
      c->t0 = now_s ();
      c->c0 = cpu_s ();
    }
}

/* True when the run is over; the result is recorded then. */
static int
clock_done (Clock *c)
{
  double t;
  long n = c->i - WARMUP;
  if (n < MIN_ROUND_TRIPS)
    return 0;
  t = now_s () - c->t0;
  if (t < budget_s)
    return 0;
  result->round_trips = n;
  result->ns_per_rt = t * 1e9 / (double) n;
  result->cpu_ns_per_rt = (cpu_s () - c->c0) * 1e9 / (double) n;
  return 1;
}

static int
make_pairs (int (*pairs)[2], long n)
{
  long i;
  for (i = 0; i < n; i++)
    if (socketpair (AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0,
                    pairs[i])
        < 0)
      {
        fail ("socketpair");
        while (i-- > 0)
          {
            close (pairs[i][0]);
            close (pairs[i][1]);
          }
        return 0;
      }
  return 1;
}

static void
close_pairs (int (*pairs)[2], long n)
{
  long i;
  for (i = 0; i < n; i++)
    {
      close (pairs[i][0]);
      close (pairs[i][1]);
    }
}

/* ---- afut, both loops ---- */

typedef struct
{
  AfutTask task;
  int fd;
  int pinger;
  Clock *clock;
  unsigned char c;
} Pong;

static AfutError *
io_error (const char *what)
{
  return afut_error_new (AFUT_ERROR, AFUT_ERROR_FAILED, "%s: %s", what,
                         strerror (errno));
}

static void
pong_step (AfutTask *task)
{
  Pong *self = (Pong *) task;
  AFUT_BEGIN (task);
  if (self->pinger)
    {
      self->c = 0;
      if (write (self->fd, &self->c, 1) != 1)
        AFUT_THROW (task, io_error ("write"));
    }
  for (;;)
    {
      AFUT_AWAIT (task, afut_fd_wait (self->fd, AFUT_IO_IN));
      if (read (self->fd, &self->c, 1) != 1)
        AFUT_THROW (task, io_error ("read"));
      if (!self->pinger)
        {
          if (write (self->fd, &self->c, 1) != 1)
            AFUT_THROW (task, io_error ("write"));
          if (self->c == STOP_BYTE)
            AFUT_RETURN (task);
          continue;
        }
      clock_tick (self->clock);
      self->c = clock_done (self->clock) ? STOP_BYTE : 0;
      if (write (self->fd, &self->c, 1) != 1)
        AFUT_THROW (task, io_error ("write"));
      if (self->c == STOP_BYTE)
        {
          /* The echo of the stop byte. */
          AFUT_AWAIT (task, afut_fd_wait (self->fd, AFUT_IO_IN));
          if (read (self->fd, &self->c, 1) != 1)
            AFUT_THROW (task, io_error ("read"));
          AFUT_RETURN (task);
        }
    }
  AFUT_END (task);
}

static void
run_afut (long n_idle, int glib)
{
  int (*pairs)[2] = calloc ((size_t) n_idle + 1, sizeof *pairs);
  AfutFuture **idle = calloc ((size_t) n_idle + 1, sizeof *idle);
  GMainContext *ctx = NULL;
  AfutLoop *loop;
  AfutFuture *a, *b, *all;
  Clock clock = { 0 };
  long i;

  if (!make_pairs (pairs, n_idle + 1))
    return;
  if (glib)
    {
      ctx = g_main_context_new ();
      loop = afut_glib_loop_new (ctx, AFUT_LOOP_NONE);
    }
  else
    loop = afut_loop_new (AFUT_LOOP_NONE);
  for (i = 0; i < n_idle; i++)
    idle[i] = afut_loop_fd_wait (loop, pairs[i + 1][0], AFUT_IO_IN);
  {
    Pong pi = { .fd = pairs[0][0], .pinger = 1, .clock = &clock };
    Pong po = { .fd = pairs[0][1], .pinger = 0, .clock = &clock };
    a = afut_task_new (loop, pong_step, sizeof pi, &pi, "ping", NULL);
    b = afut_task_new (loop, pong_step, sizeof po, &po, "pong", NULL);
  }
  all = afut_gather (afut_future_ref (a), afut_future_ref (b), NULL);
  if (glib)
    while (!afut_future_is_done (all))
      g_main_context_iteration (ctx, TRUE);
  else
    afut_loop_run_until_complete (loop, all);
  if (afut_future_get_state (all) != AFUT_FUTURE_DONE)
    {
      const AfutError *e = afut_future_get_error (all);
      result->ok = 0;
      snprintf (result->error, sizeof result->error, "ping-pong failed: %s",
                e != NULL ? e->message : "?");
    }
  for (i = 0; i < n_idle; i++)
    {
      if (afut_future_is_done (idle[i]))
        {
          result->ok = 0;
          snprintf (result->error, sizeof result->error,
                    "idle socket %ld reported ready", i);
        }
      afut_future_cancel (idle[i], NULL);
      afut_future_unref (idle[i]);
    }
  afut_future_unref (all);
  afut_future_unref (a);
  afut_future_unref (b);
  afut_loop_unref (loop);
  if (ctx != NULL)
    g_main_context_unref (ctx);
  close_pairs (pairs, n_idle + 1);
  free (pairs);
  free (idle);
}

static void
case_afut_embedded (long n_idle)
{
  run_afut (n_idle, 0);
}

static void
case_afut_glib (long n_idle)
{
  run_afut (n_idle, 1);
}

/* ---- plain GLib: g_unix_fd sources ---- */

typedef struct
{
  Clock clock;
  int done;
  int bad;
} GState;

static gboolean
on_ping (gint fd, GIOCondition condition, gpointer data)
{
  GState *st = (GState *) data;
  unsigned char c;
  (void) condition;
  if (read (fd, &c, 1) != 1)
    {
      st->bad = 1;
      return G_SOURCE_REMOVE;
    }
  if (c == STOP_BYTE)
    {
      st->done = 1;
      return G_SOURCE_REMOVE;
    }
  clock_tick (&st->clock);
  c = clock_done (&st->clock) ? STOP_BYTE : 0;
  if (write (fd, &c, 1) != 1)
    st->bad = 1;
  return G_SOURCE_CONTINUE;
}

static gboolean
on_pong (gint fd, GIOCondition condition, gpointer data)
{
  GState *st = (GState *) data;
  unsigned char c;
  (void) condition;
  if (read (fd, &c, 1) != 1 || write (fd, &c, 1) != 1)
    {
      st->bad = 1;
      return G_SOURCE_REMOVE;
    }
  return c == STOP_BYTE ? G_SOURCE_REMOVE : G_SOURCE_CONTINUE;
}

static gboolean
on_idle_ready (gint fd, GIOCondition condition, gpointer data)
{
  (void) fd;
  (void) condition;
  ((GState *) data)->bad = 1;
  return G_SOURCE_REMOVE;
}

static void
case_gunix (long n_idle)
{
  int (*pairs)[2] = calloc ((size_t) n_idle + 1, sizeof *pairs);
  GMainContext *ctx = g_main_context_new ();
  GState st = { 0 };
  unsigned char c = 0;
  long i;

  if (!make_pairs (pairs, n_idle + 1))
    return;
  for (i = 0; i < n_idle; i++)
    {
      GSource *s = g_unix_fd_source_new (pairs[i + 1][0], G_IO_IN);
      g_source_set_callback (s, G_SOURCE_FUNC (on_idle_ready), &st, NULL);
      g_source_attach (s, ctx);
      g_source_unref (s);
    }
  {
    GSource *s0 = g_unix_fd_source_new (pairs[0][0], G_IO_IN);
    GSource *s1 = g_unix_fd_source_new (pairs[0][1], G_IO_IN);
    g_source_set_callback (s0, G_SOURCE_FUNC (on_ping), &st, NULL);
    g_source_set_callback (s1, G_SOURCE_FUNC (on_pong), &st, NULL);
    g_source_attach (s0, ctx);
    g_source_attach (s1, ctx);
    g_source_unref (s0);
    g_source_unref (s1);
  }
  if (write (pairs[0][0], &c, 1) != 1)
    st.bad = 1;
  while (!st.done && !st.bad)
    g_main_context_iteration (ctx, TRUE);
  if (st.bad)
    {
      result->ok = 0;
      snprintf (result->error, sizeof result->error,
                "bad echo or an idle socket reported ready");
    }
  g_main_context_unref (ctx); /* destroys the sources */
  close_pairs (pairs, n_idle + 1);
  free (pairs);
}

/* ---- a raw poll() loop over every fd ---- */

static void
case_poll (long n_idle)
{
  int (*pairs)[2] = calloc ((size_t) n_idle + 1, sizeof *pairs);
  struct pollfd *p = calloc ((size_t) n_idle + 2, sizeof *p);
  Clock clock = { 0 };
  unsigned char c = 0;
  long i;
  int done = 0;

  if (!make_pairs (pairs, n_idle + 1))
    return;
  p[0].fd = pairs[0][0];
  p[1].fd = pairs[0][1];
  for (i = 0; i < n_idle; i++)
    p[i + 2].fd = pairs[i + 1][0];
  for (i = 0; i < n_idle + 2; i++)
    p[i].events = POLLIN;
  if (write (pairs[0][0], &c, 1) != 1)
    fail ("write");
  while (!done && result->ok)
    {
      int r = poll (p, (nfds_t) n_idle + 2, -1);
      if (r < 0 && errno == EINTR)
        continue;
      if (r <= 0)
        {
          fail ("poll");
          break;
        }
      for (i = 2; i < n_idle + 2; i++)
        if (p[i].revents)
          {
            result->ok = 0;
            snprintf (result->error, sizeof result->error,
                      "idle socket reported ready");
          }
      if (p[1].revents)
        {
          if (read (p[1].fd, &c, 1) != 1 || write (p[1].fd, &c, 1) != 1)
            fail ("echo");
        }
      if (p[0].revents)
        {
          if (read (p[0].fd, &c, 1) != 1)
            fail ("read");
          if (c == STOP_BYTE)
            done = 1;
          else
            {
              clock_tick (&clock);
              c = clock_done (&clock) ? STOP_BYTE : 0;
              if (write (p[0].fd, &c, 1) != 1)
                fail ("write");
            }
        }
    }
  close_pairs (pairs, n_idle + 1);
  free (pairs);
  free (p);
}

/* ---- running the cases ---- */

typedef void (*CaseFunc) (long n_idle);

static Result
run_case (CaseFunc func, long n_idle)
{
  Result r;
  int fds[2];
  pid_t pid;
  size_t got = 0;
  int status = 0;

  memset (&r, 0, sizeof r);
  fflush (stdout);
  if (pipe (fds) < 0)
    {
      perror ("pipe");
      exit (1);
    }
  pid = fork ();
  if (pid < 0)
    {
      perror ("fork");
      exit (1);
    }
  if (pid == 0)
    {
      const char *p = (const char *) &r;
      size_t left = sizeof r;
      close (fds[0]);
      result = &r;
      r.ok = 1;
      alarm (120);
      func (n_idle);
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
      memset (&r, 0, sizeof r);
      snprintf (r.error, sizeof r.error, "child %s %d",
                WIFSIGNALED (status) ? "killed by signal" : "exited with",
                WIFSIGNALED (status) ? WTERMSIG (status)
                                     : WEXITSTATUS (status));
    }
  return r;
}

#define N_IMPLS 4
#define MAX_SIZES 8
#define MAX_REPS 9

static int
cmp_double (const void *a, const void *b)
{
  double x = *(const double *) a, y = *(const double *) b;
  return x < y ? -1 : x > y;
}

static void
print_load (const char *when)
{
  double load[3];
  if (getloadavg (load, 3) == 3)
    printf ("load average at %s: %.2f %.2f %.2f\n", when, load[0], load[1],
            load[2]);
}

int
main (int argc, char **argv)
{
  static const struct
  {
    const char *name;
    CaseFunc func;
  } impls[N_IMPLS] = {
    { "afut-embedded", case_afut_embedded },
    { "afut-glib", case_afut_glib },
    { "g_unix_fd_add", case_gunix },
    { "raw-poll", case_poll },
  };
  long sizes[MAX_SIZES] = { 0, 10, 100, 1000, 5000 };
  int n_sizes = 5;
  static double cpu[N_IMPLS][MAX_SIZES][MAX_REPS];
  static double wall[N_IMPLS][MAX_SIZES][MAX_REPS];
  int reps = 3, quick = 0, check = 0, failures = 0, i, k, r;
  double max_ratio = 2.0;
  const char *only = NULL;
  struct rlimit rl;
  long max_idle;

  for (i = 1; i < argc; i++)
    {
      if (strcmp (argv[i], "--quick") == 0)
        quick = 1;
      else if (strcmp (argv[i], "--check") == 0)
        check = 1;
      else if (strcmp (argv[i], "--reps") == 0 && i + 1 < argc)
        reps = atoi (argv[++i]);
      else if (strcmp (argv[i], "--budget") == 0 && i + 1 < argc)
        budget_s = atof (argv[++i]);
      else if (strcmp (argv[i], "--max-ratio") == 0 && i + 1 < argc)
        max_ratio = atof (argv[++i]);
      else if (strcmp (argv[i], "--only") == 0 && i + 1 < argc)
        only = argv[++i];
      else if (strcmp (argv[i], "--sizes") == 0 && i + 1 < argc)
        {
          char *s = argv[++i], *end;
          n_sizes = 0;
          while (*s != '\0' && n_sizes < MAX_SIZES)
            {
              sizes[n_sizes++] = strtol (s, &end, 10);
              s = *end == ',' ? end + 1 : end;
              if (end == s && *s != '\0')
                break;
            }
        }
      else if (strcmp (argv[i], "--max-n") == 0 && i + 1 < argc)
        {
          long m = atol (argv[++i]);
          while (n_sizes > 1 && sizes[n_sizes - 1] > m)
            n_sizes--;
        }
      else
        {
          fprintf (stderr,
                   "usage: %s [--quick] [--check] [--reps R] [--budget S] "
                   "[--sizes N,N,...] [--max-ratio X] [--only IMPL] "
                   "[--max-n N]\n",
                   argv[0]);
          return 2;
        }
    }
  if (quick)
    {
      static const long quick_sizes[] = { 10, 1000 };
      memcpy (sizes, quick_sizes, sizeof quick_sizes);
      n_sizes = 2;
      budget_s = 0.15;
    }
  if (reps < 1)
    reps = 1;
  if (reps > MAX_REPS)
    reps = MAX_REPS;

  /* 2 fds per idle socket, 2 for the active pair, a few for the loop. */
  max_idle = 0;
  if (getrlimit (RLIMIT_NOFILE, &rl) == 0)
    {
      if (rl.rlim_cur < rl.rlim_max)
        {
          rl.rlim_cur = rl.rlim_max;
          setrlimit (RLIMIT_NOFILE, &rl);
          getrlimit (RLIMIT_NOFILE, &rl);
        }
      max_idle = ((long) rl.rlim_cur - 64) / 2;
    }

  printf ("bench-fd-scaling%s: afut %d.%d.%d (%s), GLib %u.%u.%u; one "
          "socketpair ping-pong while N other sockets are awaited and "
          "idle; %d repetition(s) of ~%.2f s, interleaved; fd limit %ld\n",
          quick ? " --quick" : "", AFUT_VERSION_MAJOR, AFUT_VERSION_MINOR,
          AFUT_VERSION_MICRO, AFUT__HAVE_EPOLL ? "epoll" : "poll()",
          glib_major_version, glib_minor_version, glib_micro_version, reps,
          budget_s, (long) rl.rlim_cur);
  print_load ("start");

  for (r = 0; r < reps; r++)
    for (k = 0; k < n_sizes; k++)
      for (i = 0; i < N_IMPLS; i++)
        {
          Result res;
          cpu[i][k][r] = wall[i][k][r] = 0;
          if (only != NULL && strcmp (only, impls[i].name) != 0)
            continue;
          if (max_idle > 0 && sizes[k] > max_idle)
            {
              if (r == 0)
                printf ("  %-14s N=%-5ld skipped: needs %ld fds, the limit "
                        "is %ld\n",
                        impls[i].name, sizes[k], 2 * sizes[k] + 64,
                        (long) rl.rlim_cur);
              continue;
            }
          res = run_case (impls[i].func, sizes[k]);
          printf ("BENCH workload=fd_scaling impl=%s n=%ld rep=%d "
                  "ns_per_op=%.2f cpu_ns_per_op=%.2f round_trips=%ld ok=%d\n",
                  impls[i].name, sizes[k], r, res.ns_per_rt,
                  res.cpu_ns_per_rt, res.round_trips, res.ok);
          if (!res.ok)
            {
              printf ("  FAILED: %s N=%ld: %s\n", impls[i].name, sizes[k],
                      res.error);
              failures++;
              continue;
            }
          cpu[i][k][r] = res.cpu_ns_per_rt;
          wall[i][k][r] = res.ns_per_rt;
        }

  printf ("\nµs per round trip, median of %d [best]; CPU (user + system), "
          "then wall\n",
          reps);
  printf ("  %-14s", "idle sockets");
  for (k = 0; k < n_sizes; k++)
    printf (" | %16ld", sizes[k]);
  printf ("\n");
  for (i = 0; i < N_IMPLS; i++)
    {
      int f;
      for (f = 0; f < 2; f++)
        {
          if (only != NULL && strcmp (only, impls[i].name) != 0)
            continue;
          printf ("  %-14s", f == 0 ? impls[i].name : "  wall");
          for (k = 0; k < n_sizes; k++)
            {
              double v[MAX_REPS];
              memcpy (v, f == 0 ? cpu[i][k] : wall[i][k],
                      sizeof (double) * (size_t) reps);
              qsort (v, (size_t) reps, sizeof (double), cmp_double);
              if (v[reps - 1] <= 0)
                printf (" | %16s", "-");
              else
                printf (" | %7.2f [%6.2f]", v[reps / 2] / 1e3, v[0] / 1e3);
            }
          printf ("\n");
        }
    }
  print_load ("end");

  if (check)
    {
      long lo = 10, hi = 1000;
      int klo = -1, khi = -1;
      for (k = 0; k < n_sizes; k++)
        {
          if (sizes[k] == lo)
            klo = k;
          if (sizes[k] == hi)
            khi = k;
        }
      printf ("\ncheck: CPU per round trip at %ld idle sockets over %ld, "
              "best of %d, at most %.2fx\n",
              hi, lo, reps, max_ratio);
      for (i = 0; i < 2; i++)
        {
          double blo = 0, bhi = 0, ratio;
          if (klo < 0 || khi < 0
              || (only != NULL && strcmp (only, impls[i].name) != 0))
            continue;
          for (r = 0; r < reps; r++)
            {
              if (cpu[i][klo][r] > 0 && (blo == 0 || cpu[i][klo][r] < blo))
                blo = cpu[i][klo][r];
              if (cpu[i][khi][r] > 0 && (bhi == 0 || cpu[i][khi][r] < bhi))
                bhi = cpu[i][khi][r];
            }
          if (blo <= 0 || bhi <= 0)
            {
              printf ("  %-14s no figures: FAILED\n", impls[i].name);
              failures++;
              continue;
            }
          ratio = bhi / blo;
          printf ("  %-14s %.2f µs / %.2f µs = %.2fx: %s\n", impls[i].name,
                  bhi / 1e3, blo / 1e3, ratio,
                  ratio <= max_ratio ? "ok" : "FAILED (grows with the "
                                              "number of fds)");
          if (ratio > max_ratio)
            failures++;
        }
    }
  if (failures > 0)
    {
      printf ("\n%d FAILED\n", failures);
      return 1;
    }
  return 0;
}
