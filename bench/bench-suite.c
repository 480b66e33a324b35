/* The benchmark suite's C side: afut (embedded loop and GLib adapter)
 * beside raw GLib (g_idle_add, one GSource draining a plain C ready
 * queue), GTask and a minimal hand-written future, on the workloads of
 * issue 6 that are not timers or fds (those are in bench-glib.c):
 *
 *   resolve_cb      N futures: new + done callback + resolve, batched,
 *                   then dispatched and freed (per future)
 *   await_done      one task awaiting an already-done future N times
 *   resolve_task    N tasks awaiting their own future: resolve all, run
 *                   until every task resumed and ended (per task)
 *   yield_chain     one task yielding N times (per yield)
 *   tasks_2yields   N tasks that sleep(0) twice, gathered (per task,
 *                   spawn and gather included)
 *   gather          gather of N already-running tasks, resolved through
 *                   one shared future (per child)
 *   cancel_gather   cancelling a gather of N tasks that sleep an hour
 *                   (per child; bytes_per_item is what the gather adds
 *                   per child)
 *   memory          N pending futures / sleeps / tasks / GLib sources:
 *                   bytes per item (RSS delta / N) and creation time
 *
 * Each case runs in a forked child (its peak RSS is its own) and prints
 * one line:
 *   BENCH workload=W impl=I n=N rep=R ns_per_op=X cpu_ns_per_op=Y
 *         peak_rss_kb=K bytes_per_item=B ok=1
 * A benchmark, not a test: nothing is asserted on time; a case that did
 * not do its work prints ok=0 and the program exits 1.
 *
 * --check (issue 17) also fails memory/afut-future if a pending future
 * takes more heap than sizeof (AfutFuture) + 8 bytes (malloc's count, not
 * RSS: exact, whatever the machine's load): the future pool's point.
 *
 * Usage: bench-suite [--quick] [--check] [--reps R] [--max-n N]
 *                    [--only WORKLOAD]
 *        bench-suite --case WORKLOAD IMPL N     (one case, in-process:
 *                                                for perf / callgrind)
 *        bench-suite --list */
#define _GNU_SOURCE
#define AFUT_IMPLEMENTATION
#define AFUT_GLIB
#include "afut.h"
#include "afut-glib.h"

#include <errno.h>
#include <malloc.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

/* ---- measuring ---- */

static double
wall_ns (void)
{
  struct timespec ts;
  clock_gettime (CLOCK_MONOTONIC, &ts);
  return (double) ts.tv_sec * 1e9 + (double) ts.tv_nsec;
}

static double
cpu_ns (void)
{
  struct timespec ts;
  clock_gettime (CLOCK_PROCESS_CPUTIME_ID, &ts);
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
  double t0, c0, ns_per_op, cpu_ns_per_op, bytes_per_item;
  long rss0;
  int ok;
  char failure[256];
} R;

static void
timer_start (void)
{
  R.c0 = cpu_ns ();
  R.t0 = wall_ns ();
}

static void
timer_stop (long ops)
{
  double t = wall_ns (), c = cpu_ns ();
  R.ns_per_op = (t - R.t0) / (double) ops;
  R.cpu_ns_per_op = (c - R.c0) / (double) ops;
}

static void
rss_start (void)
{
  R.rss0 = rss_bytes ();
}

static void
rss_stop (long n)
{
  R.bytes_per_item = (double) (rss_bytes () - R.rss0) / (double) n;
}

static void
check (int cond, const char *what)
{
  if (!cond && R.ok)
    {
      R.ok = 0;
      snprintf (R.failure, sizeof R.failure, "%s", what);
    }
}

/* An array of n pointers, touched, so that its pages are not counted in
 * an RSS delta taken after. */
static void *
touched_array (long n)
{
  void **a = malloc (sizeof (void *) * (size_t) n);
  memset (a, 0, sizeof (void *) * (size_t) n);
  return a;
}

/* ======================================================================== */
/* The floor: a plain C ready queue drained inside one GSource dispatch     */
/* ======================================================================== */

typedef struct
{
  void (*fn) (void *);
  void *data;
} QEntry;

typedef struct
{
  GSource source;
  QEntry *buf;
  size_t head, len, cap; /* cap: a power of two */
} QueueSource;

static void
queue_push (QueueSource *q, void (*fn) (void *), void *data)
{
  if (q->len == q->cap)
    {
      size_t cap = q->cap ? q->cap * 2 : 64, i;
      QEntry *buf = malloc (sizeof (QEntry) * cap);
      for (i = 0; i < q->len; i++)
        buf[i] = q->buf[(q->head + i) & (q->cap - 1)];
      free (q->buf);
      q->buf = buf;
      q->head = 0;
      q->cap = cap;
    }
  q->buf[(q->head + q->len++) & (q->cap - 1)] = (QEntry) { fn, data };
}

static gboolean
queue_prepare (GSource *source, gint *timeout)
{
  *timeout = -1;
  return ((QueueSource *) source)->len > 0;
}

static gboolean
queue_check (GSource *source)
{
  return ((QueueSource *) source)->len > 0;
}

/* Drains everything, what the callbacks queue included. */
static gboolean
queue_dispatch (GSource *source, GSourceFunc cb, gpointer data)
{
  QueueSource *q = (QueueSource *) source;
  (void) cb;
  (void) data;
  while (q->len > 0)
    {
      QEntry e = q->buf[q->head];
      q->head = (q->head + 1) & (q->cap - 1);
      q->len--;
      e.fn (e.data);
    }
  return G_SOURCE_CONTINUE;
}

static void
queue_finalize (GSource *source)
{
  free (((QueueSource *) source)->buf);
}

static GSourceFuncs queue_funcs = {
  queue_prepare, queue_check, queue_dispatch, queue_finalize, NULL, NULL,
};

static QueueSource *
queue_source_new (GMainContext *ctx)
{
  QueueSource *q
    = (QueueSource *) g_source_new (&queue_funcs, sizeof (QueueSource));
  g_source_attach (&q->source, ctx);
  return q;
}

/* A minimal hand-written future: 32 bytes. */
typedef struct MiniFut MiniFut;
struct MiniFut
{
  void (*cb) (MiniFut *, void *);
  void *cb_data;
  int64_t value;
  int32_t state;
  int32_t ref_count;
};

static QueueSource *mini_queue;

static void
mini_fire (void *data)
{
  MiniFut *f = (MiniFut *) data;
  f->cb (f, f->cb_data);
}

static void
mini_resolve (MiniFut *f, int64_t value)
{
  f->value = value;
  f->state = 1;
  if (f->cb != NULL)
    queue_push (mini_queue, mini_fire, f);
}

/* ======================================================================== */
/* Loops                                                                    */
/* ======================================================================== */

static GMainContext *ctx; /* for afut-glib and the GLib peers */

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

/* Runs @loop until @f is done. */
static void
run_until (AfutLoop *loop, int glib, AfutFuture *f)
{
  if (glib)
    while (!afut_future_is_done (f))
      g_main_context_iteration (ctx, TRUE);
  else
    afut_loop_run_until_complete (loop, f);
}

/* Runs @loop until *@counter reaches @target. */
static void
run_until_count (AfutLoop *loop, int glib, long *counter, long target)
{
  while (*counter < target)
    {
      if (glib)
        g_main_context_iteration (ctx, TRUE);
      else
        afut_loop_iterate (loop, true);
    }
}

/* ======================================================================== */
/* 1. resolve -> continuation                                               */
/* ======================================================================== */

static long counter;

static void
on_done (AfutFuture *f, void *data)
{
  (void) f;
  (void) data;
  counter++;
}

static void
resolve_cb_afut (long n, int glib)
{
  AfutLoop *loop = new_loop (glib);
  AfutFuture **futs = touched_array (n);
  long i;
  counter = 0;
  timer_start ();
  for (i = 0; i < n; i++)
    {
      futs[i] = afut_future_new (loop);
      afut_future_add_done_callback (futs[i], on_done, NULL);
    }
  for (i = 0; i < n; i++)
    afut_future_resolve_int (futs[i], i);
  run_until_count (loop, glib, &counter, n);
  for (i = 0; i < n; i++)
    afut_future_unref (futs[i]);
  timer_stop (n);
  check (counter == n, "not every callback ran");
  free (futs);
  free_loop (loop);
}

static void
case_resolve_cb_afut_embedded (long n)
{
  resolve_cb_afut (n, 0);
}

static void
case_resolve_cb_afut_glib (long n)
{
  resolve_cb_afut (n, 1);
}

static void
on_mini_done (MiniFut *f, void *data)
{
  (void) f;
  (void) data;
  counter++;
}

static void
case_resolve_cb_c_queue (long n)
{
  MiniFut **futs = touched_array (n);
  long i;
  ctx = g_main_context_new ();
  mini_queue = queue_source_new (ctx);
  counter = 0;
  timer_start ();
  for (i = 0; i < n; i++)
    {
      futs[i] = malloc (sizeof (MiniFut));
      *futs[i] = (MiniFut) { on_mini_done, NULL, 0, 0, 1 };
    }
  for (i = 0; i < n; i++)
    mini_resolve (futs[i], i);
  while (counter < n)
    g_main_context_iteration (ctx, TRUE);
  for (i = 0; i < n; i++)
    free (futs[i]);
  timer_stop (n);
  check (counter == n, "not every callback ran");
  free (futs);
  g_source_destroy (&mini_queue->source);
  g_source_unref (&mini_queue->source);
  g_main_context_unref (ctx);
  ctx = NULL;
}

static gboolean
on_idle (gpointer data)
{
  (void) data;
  counter++;
  return G_SOURCE_REMOVE;
}

/* g_idle_add per callback: "resolve" adds the idle, the loop runs it. */
static void
case_resolve_cb_g_idle (long n)
{
  long i;
  counter = 0;
  timer_start ();
  for (i = 0; i < n; i++)
    g_idle_add (on_idle, NULL);
  while (counter < n)
    g_main_context_iteration (NULL, TRUE);
  timer_stop (n);
  check (counter == n, "not every idle ran");
}

static void
on_gtask_done (GObject *source, GAsyncResult *res, gpointer data)
{
  (void) source;
  (void) data;
  if (g_task_propagate_pointer (G_TASK (res), NULL) == &counter)
    counter++;
}

/* GTask: new + return_pointer + callback round trip, batched. */
static void
case_resolve_cb_gtask (long n)
{
  GTask **tasks = touched_array (n);
  long i;
  counter = 0;
  timer_start ();
  for (i = 0; i < n; i++)
    tasks[i] = g_task_new (NULL, NULL, on_gtask_done, NULL);
  for (i = 0; i < n; i++)
    {
      g_task_return_pointer (tasks[i], &counter, NULL);
      g_object_unref (tasks[i]);
    }
  while (counter < n)
    g_main_context_iteration (NULL, TRUE);
  timer_stop (n);
  check (counter == n, "not every GTask callback ran");
  free (tasks);
}

/* ---- await of an already-done future ---- */

typedef struct
{
  AfutTask task;
  AfutFuture *done;
  long n, i;
} Awaiter;

static void
awaiter (AfutTask *task)
{
  Awaiter *self = (Awaiter *) task;
  AFUT_BEGIN (task);
  for (self->i = 0; self->i < self->n; self->i++)
    AFUT_AWAIT (task, afut_future_ref (self->done));
  AFUT_END (task);
}

static void
await_done (long n, int glib)
{
  AfutLoop *loop = new_loop (glib);
  Awaiter init = { .n = n };
  AfutFuture *t;
  init.done = afut_future_new (loop);
  afut_future_resolve_int (init.done, 1);
  t = afut_task_new (loop, awaiter, sizeof init, &init, NULL, NULL);
  timer_start ();
  run_until (loop, glib, t);
  timer_stop (n);
  check (afut_future_get_state (t) == AFUT_FUTURE_DONE, "the task failed");
  afut_future_unref (t);
  afut_future_unref (init.done);
  free_loop (loop);
}

static void
case_await_done_afut_embedded (long n)
{
  await_done (n, 0);
}

static void
case_await_done_afut_glib (long n)
{
  await_done (n, 1);
}

/* ---- resolve -> awaiting task resumed ---- */

typedef struct
{
  AfutTask task;
  AfutFuture *future;
} Waiter;

static void
waiter (AfutTask *task)
{
  Waiter *self = (Waiter *) task;
  AFUT_BEGIN (task);
  counter++;
  AFUT_AWAIT (task, afut_future_ref (self->future));
  counter++;
  AFUT_END (task);
}

static void
resolve_task (long n, int glib)
{
  AfutLoop *loop = new_loop (glib);
  AfutFuture **futs = touched_array (n);
  AfutFuture **tasks = touched_array (n);
  long i;
  counter = 0;
  for (i = 0; i < n; i++)
    {
      Waiter init = { .future = afut_future_new (loop) };
      futs[i] = init.future;
      tasks[i] = afut_task_new (loop, waiter, sizeof init, &init, NULL, NULL);
    }
  run_until_count (loop, glib, &counter, n); /* all await */
  timer_start ();
  for (i = 0; i < n; i++)
    afut_future_resolve (futs[i]);
  run_until_count (loop, glib, &counter, 2 * n);
  timer_stop (n);
  check (counter == 2 * n, "not every task resumed");
  check (afut_loop_get_n_tasks (loop) == 0, "tasks still pending");
  for (i = 0; i < n; i++)
    {
      afut_future_unref (futs[i]);
      afut_future_unref (tasks[i]);
    }
  free (futs);
  free (tasks);
  free_loop (loop);
}

static void
case_resolve_task_afut_embedded (long n)
{
  resolve_task (n, 0);
}

static void
case_resolve_task_afut_glib (long n)
{
  resolve_task (n, 1);
}

/* ======================================================================== */
/* 2. task steps                                                            */
/* ======================================================================== */

typedef struct
{
  AfutTask task;
  long n, i;
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
  counter++;
  AFUT_END (task);
}

static void
yield_chain (long n, int glib, int use_sleep)
{
  AfutLoop *loop = new_loop (glib);
  Yielder init = { .n = n, .use_sleep = use_sleep };
  AfutFuture *t;
  counter = 0;
  timer_start ();
  t = afut_task_new (loop, yielder, sizeof init, &init, NULL, NULL);
  run_until (loop, glib, t);
  timer_stop (n);
  check (counter == 1 && afut_future_get_state (t) == AFUT_FUTURE_DONE,
         "the task did not end");
  afut_future_unref (t);
  free_loop (loop);
}

static void
case_yield_chain_afut_embedded (long n)
{
  yield_chain (n, 0, 0);
}

static void
case_yield_chain_afut_embedded_sleep0 (long n)
{
  yield_chain (n, 0, 1);
}

static void
case_yield_chain_afut_glib (long n)
{
  yield_chain (n, 1, 0);
}

static void
case_yield_chain_afut_glib_sleep0 (long n)
{
  yield_chain (n, 1, 1);
}

static long chain_n;

static void
chain_step (void *data)
{
  QueueSource *q = (QueueSource *) data;
  if (++counter < chain_n)
    queue_push (q, chain_step, q);
}

/* The floor: a callback that queues itself again, N times, on a plain C
 * queue drained inside one GLib dispatch. */
static void
case_yield_chain_c_queue (long n)
{
  QueueSource *q;
  ctx = g_main_context_new ();
  q = queue_source_new (ctx);
  counter = 0;
  chain_n = n;
  timer_start ();
  queue_push (q, chain_step, q);
  while (counter < n)
    g_main_context_iteration (ctx, TRUE);
  timer_stop (n);
  check (counter == n, "the chain stopped");
  g_source_destroy (&q->source);
  g_source_unref (&q->source);
  g_main_context_unref (ctx);
  ctx = NULL;
}

static gboolean
idle_chain_step (gpointer data)
{
  (void) data;
  if (++counter < chain_n)
    g_idle_add (idle_chain_step, NULL);
  return G_SOURCE_REMOVE;
}

/* The per-turn chain: each step adds the next g_idle_add. */
static void
case_yield_chain_g_idle (long n)
{
  counter = 0;
  chain_n = n;
  timer_start ();
  g_idle_add (idle_chain_step, NULL);
  while (counter < n)
    g_main_context_iteration (NULL, TRUE);
  timer_stop (n);
  check (counter == n, "the chain stopped");
}

/* ---- N tasks that sleep(0) twice, gathered ---- */

typedef struct
{
  AfutTask task;
} Twice;

static void
twice (AfutTask *task)
{
  AFUT_BEGIN (task);
  AFUT_AWAIT (task, afut_sleep (0));
  AFUT_AWAIT (task, afut_sleep (0));
  counter++;
  AFUT_END (task);
}

static void
tasks_2yields (long n, int glib)
{
  AfutLoop *loop = new_loop (glib);
  AfutFuture **tasks = touched_array (n);
  AfutFuture *all;
  long i;
  counter = 0;
  timer_start ();
  for (i = 0; i < n; i++)
    tasks[i] = afut_task_new (loop, twice, sizeof (Twice), NULL, NULL, NULL);
  all = afut_gather_v (tasks, (size_t) n);
  run_until (loop, glib, all);
  for (i = 0; i < n; i++)
    afut_future_unref (tasks[i]);
  afut_future_unref (all);
  timer_stop (n);
  check (counter == n, "not every task ended");
  free (tasks);
  free_loop (loop);
}

static void
case_tasks_2yields_afut_embedded (long n)
{
  tasks_2yields (n, 0);
}

static void
case_tasks_2yields_afut_glib (long n)
{
  tasks_2yields (n, 1);
}

/* ======================================================================== */
/* 3. gather of N already-running tasks                                     */
/* 6. cancellation of a gather over N children                              */
/* ======================================================================== */

typedef struct
{
  AfutTask task;
  AfutFuture *trigger; /* NULL: sleep an hour */
} Child;

static void
child (AfutTask *task)
{
  Child *self = (Child *) task;
  AFUT_BEGIN (task);
  counter++;
  if (self->trigger != NULL)
    AFUT_AWAIT (task, afut_future_ref (self->trigger));
  else
    AFUT_AWAIT (task, afut_sleep (3600));
  AFUT_END (task);
}

static void
gather_running (long n, int glib)
{
  AfutLoop *loop = new_loop (glib);
  AfutFuture **tasks = touched_array (n);
  AfutFuture *all;
  Child init;
  long i;
  init.trigger = afut_future_new (loop);
  counter = 0;
  for (i = 0; i < n; i++)
    tasks[i] = afut_task_new (loop, child, sizeof init, &init, NULL, NULL);
  run_until_count (loop, glib, &counter, n);
  timer_start ();
  all = afut_gather_v (tasks, (size_t) n);
  afut_future_resolve (init.trigger);
  run_until (loop, glib, all);
  timer_stop (n);
  check (afut_future_get_state (all) == AFUT_FUTURE_DONE,
         "the gather did not succeed");
  for (i = 0; i < n; i++)
    afut_future_unref (tasks[i]);
  afut_future_unref (all);
  afut_future_unref (init.trigger);
  free (tasks);
  free_loop (loop);
}

static void
case_gather_afut_embedded (long n)
{
  gather_running (n, 0);
}

static void
case_gather_afut_glib (long n)
{
  gather_running (n, 1);
}

/* N tasks sleep an hour; a gather over them is cancelled.  ns_per_op:
 * the cancel until the gather is done, per child; bytes_per_item: what
 * the gather adds per child. */
static void
cancel_gather (long n, int glib)
{
  AfutLoop *loop = new_loop (glib);
  AfutFuture **tasks = touched_array (n);
  AfutFuture *all;
  Child init = { .trigger = NULL };
  long i;
  counter = 0;
  for (i = 0; i < n; i++)
    tasks[i] = afut_task_new (loop, child, sizeof init, &init, NULL, NULL);
  run_until_count (loop, glib, &counter, n);
  rss_start ();
  all = afut_gather_v (tasks, (size_t) n);
  rss_stop (n);
  timer_start ();
  afut_future_cancel (all, "bench");
  run_until (loop, glib, all);
  timer_stop (n);
  check (afut_future_get_state (all) == AFUT_FUTURE_CANCELLED,
         "the gather did not end cancelled");
  check (afut_loop_get_n_tasks (loop) == 0, "tasks still pending");
  for (i = 0; i < n; i++)
    afut_future_unref (tasks[i]);
  afut_future_unref (all);
  free (tasks);
  free_loop (loop);
}

static void
case_cancel_gather_afut_embedded (long n)
{
  cancel_gather (n, 0);
}

static void
case_cancel_gather_afut_glib (long n)
{
  cancel_gather (n, 1);
}

/* ======================================================================== */
/* memory: N pending items                                                  */
/* ======================================================================== */

static int check_limits;

static size_t
heap_in_use (void)
{
#if defined(__GLIBC__) && (__GLIBC__ > 2 || __GLIBC_MINOR__ >= 33)
  return mallinfo2 ().uordblks;
#else
  return 0;
#endif
}

static void
case_memory_afut_future (long n)
{
  AfutLoop *loop = new_loop (0);
  AfutFuture **futs = touched_array (n);
  size_t heap0;
  long i;
  rss_start ();
  heap0 = heap_in_use ();
  timer_start ();
  for (i = 0; i < n; i++)
    futs[i] = afut_future_new (loop);
  timer_stop (n);
  rss_stop (n);
  if (check_limits && heap0 > 0)
    {
      double per = (double) (heap_in_use () - heap0) / (double) n;
      if (per > (double) sizeof (AfutFuture) + 8)
        {
          R.ok = 0;
          snprintf (R.failure, sizeof R.failure,
                    "a pending future takes %.1f B of heap, over "
                    "sizeof (AfutFuture) + 8 = %zu B",
                    per, sizeof (AfutFuture) + 8);
        }
    }
  for (i = 0; i < n; i++)
    afut_future_unref (futs[i]);
  free (futs);
  free_loop (loop);
}

/* A bare pending sleep: the future and its heap slot. */
static void
case_memory_afut_sleep (long n)
{
  AfutLoop *loop = new_loop (0);
  AfutFuture **futs = touched_array (n);
  long i;
  rss_start ();
  timer_start ();
  for (i = 0; i < n; i++)
    futs[i] = afut_loop_sleep (loop, 3600 + (double) (i % 1000) * 1e-6);
  timer_stop (n);
  rss_stop (n);
  for (i = 0; i < n; i++)
    afut_future_unref (futs[i]);
  free (futs);
  free_loop (loop);
}

/* Tasks that await: a shared future (the task alone: header + an
 * 8-byte coroutine struct), or a sleep of their own. */
static void
memory_tasks (long n, int sleeping)
{
  AfutLoop *loop = new_loop (0);
  AfutFuture **tasks = touched_array (n);
  Child init;
  long i;
  init.trigger = sleeping ? NULL : afut_future_new (loop);
  counter = 0;
  rss_start ();
  timer_start ();
  for (i = 0; i < n; i++)
    tasks[i] = afut_task_new (loop, child, sizeof init, &init, NULL, NULL);
  run_until_count (loop, 0, &counter, n);
  timer_stop (n);
  rss_stop (n);
  check (counter == n, "not every task started");
  for (i = 0; i < n; i++)
    afut_future_unref (tasks[i]);
  free (tasks);
  if (init.trigger != NULL)
    afut_future_resolve (init.trigger);
  free_loop (loop);
  afut_future_unref (init.trigger);
}

static void
case_memory_afut_task (long n)
{
  memory_tasks (n, 0);
}

static void
case_memory_afut_task_sleep (long n)
{
  memory_tasks (n, 1);
}

static void
case_memory_g_timeout (long n)
{
  long i;
  ctx = g_main_context_new ();
  rss_start ();
  timer_start ();
  for (i = 0; i < n; i++)
    {
      GSource *s = g_timeout_source_new_seconds (3600);
      g_source_set_callback (s, on_idle, NULL, NULL);
      g_source_attach (s, ctx);
      g_source_unref (s);
    }
  timer_stop (n);
  rss_stop (n);
  /* the child exits: freeing 10^6 sources tells nothing more */
}

static void
case_memory_gtask (long n)
{
  GTask **tasks = touched_array (n);
  long i;
  rss_start ();
  timer_start ();
  for (i = 0; i < n; i++)
    tasks[i] = g_task_new (NULL, NULL, on_gtask_done, NULL);
  timer_stop (n);
  rss_stop (n);
}

/* ======================================================================== */
/* main                                                                     */
/* ======================================================================== */

typedef struct
{
  const char *workload;
  const char *impl;
  void (*func) (long n);
  int warm; /* run twice, report the second pass (cold_ns: the first) */
} Case;

static const Case cases[] = {
  { "resolve_cb", "c-future-queue", case_resolve_cb_c_queue, 1 },
  { "resolve_cb", "afut-embedded", case_resolve_cb_afut_embedded, 1 },
  { "resolve_cb", "afut-glib", case_resolve_cb_afut_glib, 1 },
  { "resolve_cb", "g_idle_add", case_resolve_cb_g_idle, 1 },
  { "resolve_cb", "gtask", case_resolve_cb_gtask, 1 },
  { "await_done", "afut-embedded", case_await_done_afut_embedded, 0 },
  { "await_done", "afut-glib", case_await_done_afut_glib, 0 },
  { "resolve_task", "afut-embedded", case_resolve_task_afut_embedded, 0 },
  { "resolve_task", "afut-glib", case_resolve_task_afut_glib, 0 },
  { "yield_chain", "c-queue", case_yield_chain_c_queue, 0 },
  { "yield_chain", "afut-embedded", case_yield_chain_afut_embedded, 0 },
  { "yield_chain", "afut-embedded-sleep0",
    case_yield_chain_afut_embedded_sleep0, 0 },
  { "yield_chain", "afut-glib", case_yield_chain_afut_glib, 0 },
  { "yield_chain", "afut-glib-sleep0", case_yield_chain_afut_glib_sleep0, 0 },
  { "yield_chain", "g_idle_add", case_yield_chain_g_idle, 0 },
  { "tasks_2yields", "afut-embedded", case_tasks_2yields_afut_embedded, 0 },
  { "tasks_2yields", "afut-glib", case_tasks_2yields_afut_glib, 0 },
  { "gather", "afut-embedded", case_gather_afut_embedded, 0 },
  { "gather", "afut-glib", case_gather_afut_glib, 0 },
  { "cancel_gather", "afut-embedded", case_cancel_gather_afut_embedded, 0 },
  { "cancel_gather", "afut-glib", case_cancel_gather_afut_glib, 0 },
  { "memory", "afut-future", case_memory_afut_future, 0 },
  { "memory", "afut-sleep", case_memory_afut_sleep, 0 },
  { "memory", "afut-task", case_memory_afut_task, 0 },
  { "memory", "afut-task-sleep", case_memory_afut_task_sleep, 0 },
  { "memory", "g_timeout", case_memory_g_timeout, 0 },
  { "memory", "gtask", case_memory_gtask, 0 },
};

#define N_CASES (sizeof cases / sizeof cases[0])

/* Runs one case here and prints its line. */
static int
run_here (const Case *c, long n, int rep)
{
  struct rusage ru;
  double cold = 0;
  memset (&R, 0, sizeof R);
  R.ok = 1;
  c->func (n);
  if (c->warm && R.ok)
    {
      cold = R.ns_per_op;
      c->func (n);
    }
  getrusage (RUSAGE_SELF, &ru);
  printf ("BENCH workload=%s impl=%s n=%ld rep=%d ns_per_op=%.2f "
          "cpu_ns_per_op=%.2f peak_rss_kb=%ld bytes_per_item=%.1f ok=%d",
          c->workload, c->impl, n, rep, R.ns_per_op, R.cpu_ns_per_op,
          ru.ru_maxrss, R.bytes_per_item, R.ok);
  if (c->warm)
    printf (" cold_ns=%.2f", cold);
  printf ("\n");
  if (!R.ok)
    fprintf (stderr, "bench-suite: %s/%s n=%ld: %s\n", c->workload, c->impl,
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
      perror ("bench-suite: fork");
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

static const Case *
find_case (const char *workload, const char *impl)
{
  size_t i;
  for (i = 0; i < N_CASES; i++)
    if (strcmp (cases[i].workload, workload) == 0
        && strcmp (cases[i].impl, impl) == 0)
      return &cases[i];
  return NULL;
}

int
main (int argc, char **argv)
{
  long sizes[] = { 1000, 10000, 100000, 1000000 };
  int n_sizes = 4, reps = 3, i, r, failures = 0;
  long max_n = 0;
  const char *only = NULL;
  size_t k;

  for (i = 1; i < argc; i++)
    {
      if (strcmp (argv[i], "--quick") == 0)
        {
          n_sizes = 2;
          reps = 1;
        }
      else if (strcmp (argv[i], "--check") == 0)
        check_limits = 1;
      else if (strcmp (argv[i], "--reps") == 0 && i + 1 < argc)
        reps = atoi (argv[++i]);
      else if (strcmp (argv[i], "--max-n") == 0 && i + 1 < argc)
        max_n = atol (argv[++i]);
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
          const Case *c = find_case (argv[i + 1], argv[i + 2]);
          if (c == NULL)
            {
              fprintf (stderr, "bench-suite: no case %s %s\n", argv[i + 1],
                       argv[i + 2]);
              return 2;
            }
          return run_here (c, atol (argv[i + 3]), 0) ? 0 : 1;
        }
      else
        {
          fprintf (stderr,
                   "usage: %s [--quick] [--check] [--reps R] [--max-n N] [--only "
                   "WORKLOAD] | --case WORKLOAD IMPL N | --list\n",
                   argv[0]);
          return 2;
        }
    }
  printf ("# bench-suite: afut %d.%d.%d, GLib %u.%u.%u, sizeof (AfutFuture) "
          "= %zu, sizeof (AfutTask) = %zu\n",
          AFUT_VERSION_MAJOR, AFUT_VERSION_MINOR, AFUT_VERSION_MICRO,
          glib_major_version, glib_minor_version, glib_micro_version,
          sizeof (AfutFuture), sizeof (AfutTask));
  printf ("BENCH workload=sizeof impl=AfutFuture n=1 rep=0 bytes_per_item=%zu "
          "ok=1\n",
          sizeof (AfutFuture));
  printf ("BENCH workload=sizeof impl=AfutTask n=1 rep=0 bytes_per_item=%zu "
          "ok=1\n",
          sizeof (AfutTask));
  /* Repetitions interleaved, so that a drift of the machine's load hits
   * every implementation alike. */
  for (r = 0; r < reps; r++)
    for (i = 0; i < n_sizes; i++)
      for (k = 0; k < N_CASES; k++)
        {
          const Case *c = &cases[k];
          long n = sizes[i];
          if (only != NULL && strcmp (only, c->workload) != 0)
            continue;
          if (max_n > 0 && n > max_n)
            continue;
          if (!run_forked (c, n, r))
            failures++;
        }
  if (failures > 0)
    {
      fprintf (stderr, "bench-suite: %d case(s) failed\n", failures);
      return 1;
    }
  return 0;
}
