/* test-limits.c - resource limits (issue 7, item 4): what afut does with
 * a million of something, and that it gives the memory back.
 *
 *   shutdown    10^6 pending tasks (on long sleeps, on futures of their
 *               own, on one shared future, on an Event, or left by
 *               afut_run's main) go through afut_loop_shutdown
 *               (asyncio.run's end): every task ends cancelled, every
 *               finalize runs once, nothing is left
 *   unref       the last afut_loop_unref without a shutdown first, which
 *               afut.h defines as the same shutdown: pending tasks, 10^6
 *               call_later handles, 10^6 ready callbacks (and threadsafe
 *               ones), with and without references that outlive the loop
 *   memory      a burst of tasks, gathers, sleeps, timeouts and errors on
 *               the virtual clock returns afut's allocations to their
 *               baseline exactly and the heap's in-use bytes (mallinfo2)
 *               to within 1 MiB; five bursts on one loop do not creep
 *   depth       a chain of that many nested futures (gathers, shields,
 *               wait_fors, races, anys, waits, as_completeds, tasks
 *               awaiting tasks, task groups, coroutines awaited inline)
 *               cancelled or completed, then freed, on a thread with a
 *               256 KiB stack: no recursion as deep as the chain
 *   scaling     shutdown time per task does not grow with the count
 *               (a benchmark: registered only with -m perf)
 *
 * afut's allocator seam (AFUT_MALLOC / AFUT_REALLOC / AFUT_FREE) counts
 * every block afut holds and its bytes, so the "nothing left" checks hold
 * under valgrind and ASan too, which also check leaks.  mallinfo2 means
 * nothing under them (their allocators replace malloc): those checks are
 * skipped there, the bursts still run.
 *
 * Counts: 10^6 in a plain build, 2.5 * 10^5 in a sanitizer build,
 * 5 * 10^4 under valgrind; AFUT_LIMITS_N=<count> overrides.  The test
 * prints the count it uses, and each test what it made of it.
 * Every loop has the virtual clock: nothing sleeps for real.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

/* ---- afut's allocations, counted ---- */

/* Each block carries its size in front, so that frees and reallocs can
 * keep a live byte count; the header keeps malloc's alignment. */
typedef union
{
  size_t size;
  max_align_t align;
} LimitsHeader;

static size_t limits_live_blocks;
static size_t limits_live_bytes;
static size_t limits_peak_bytes;
static size_t limits_n_allocs;

static void
limits_count (size_t add_blocks, size_t add_bytes, size_t sub_bytes)
{
  size_t live;
  __atomic_fetch_add (&limits_live_blocks, add_blocks, __ATOMIC_RELAXED);
  __atomic_fetch_add (&limits_n_allocs, add_blocks, __ATOMIC_RELAXED);
  live = __atomic_add_fetch (&limits_live_bytes, add_bytes - sub_bytes,
                             __ATOMIC_RELAXED);
  /* Approximate under threads, exact on one: only reported. */
  if (live > __atomic_load_n (&limits_peak_bytes, __ATOMIC_RELAXED))
    __atomic_store_n (&limits_peak_bytes, live, __ATOMIC_RELAXED);
}

static void *
limits_malloc (size_t size)
{
  LimitsHeader *h = (LimitsHeader *) malloc (sizeof *h + size);
  if (h == NULL)
    return NULL;
  h->size = size;
  limits_count (1, size, 0);
  return h + 1;
}

static void *
limits_realloc (void *ptr, size_t size)
{
  LimitsHeader *h;
  size_t old;
  if (ptr == NULL)
    return limits_malloc (size);
  h = (LimitsHeader *) ptr - 1;
  old = h->size;
  h = (LimitsHeader *) realloc (h, sizeof *h + size);
  if (h == NULL)
    return NULL;
  h->size = size;
  limits_count (0, size, old);
  return h + 1;
}

static void
limits_free (void *ptr)
{
  LimitsHeader *h;
  if (ptr == NULL)
    return;
  h = (LimitsHeader *) ptr - 1;
  __atomic_fetch_sub (&limits_live_blocks, 1, __ATOMIC_RELAXED);
  __atomic_fetch_sub (&limits_live_bytes, h->size, __ATOMIC_RELAXED);
  free (h);
}

#define AFUT_MALLOC(size) limits_malloc (size)
#define AFUT_REALLOC(ptr, size) limits_realloc ((ptr), (size))
#define AFUT_FREE(ptr) limits_free (ptr)
#define AFUT_IMPLEMENTATION
#include "afut.h"

#include <glib.h>
#include <pthread.h>
#include <string.h>

#ifdef LIMITS_HAVE_MALLINFO2
#include <malloc.h>
#endif
#ifdef LIMITS_HAVE_VALGRIND_H
#include <valgrind/valgrind.h>
#endif

/* ---- the tools we may run under ---- */

#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
#define LIMITS_SANITIZER 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer) || __has_feature(thread_sanitizer)     \
  || __has_feature(memory_sanitizer)
#define LIMITS_SANITIZER 1
#endif
#endif
#ifndef LIMITS_SANITIZER
#define LIMITS_SANITIZER 0
#endif

static gboolean
on_valgrind (void)
{
#ifdef RUNNING_ON_VALGRIND
  if (RUNNING_ON_VALGRIND)
    return TRUE;
#endif
  {
    /* Without valgrind.h: its preload library is in the environment. */
    const char *preload = g_getenv ("LD_PRELOAD");
    return preload != NULL && strstr (preload, "vgpreload") != NULL;
  }
}

static const char *
tool_name (void)
{
  if (on_valgrind ())
    return "valgrind";
  if (LIMITS_SANITIZER)
    return "sanitizer build";
  return "plain build";
}

/* The count of pending things a test makes: 10^6 in a plain build;
 * 2.5 * 10^5 in a sanitizer build (about 5 times slower), 5 * 10^4 under
 * valgrind (about 50 times slower), so that each stays well under a
 * minute; AFUT_LIMITS_N=<count> overrides. */
static guint
limits_n (void)
{
  static guint n;
  if (n == 0)
    {
      const char *env = g_getenv ("AFUT_LIMITS_N");
      if (env != NULL && *env != '\0')
        n = (guint) g_ascii_strtoull (env, NULL, 10);
      if (n == 0)
        n = on_valgrind () ? 50000 : LIMITS_SANITIZER ? 250000 : 1000000;
    }
  return n;
}

/* mallinfo2's in-use bytes: the main arena's allocated chunks plus
 * mmapped blocks (large arrays).  Meaningless where another allocator
 * replaced malloc. */
static gboolean
heap_measurable (const char **why)
{
#ifndef LIMITS_HAVE_MALLINFO2
  *why = "no mallinfo2 (not glibc >= 2.33)";
  return FALSE;
#else
  if (on_valgrind ())
    {
      *why = "under valgrind, whose malloc mallinfo2 does not see";
      return FALSE;
    }
  if (LIMITS_SANITIZER)
    {
      *why = "in a sanitizer build, whose malloc mallinfo2 does not see";
      return FALSE;
    }
  *why = NULL;
  return TRUE;
#endif
}

static size_t
heap_in_use (void)
{
#ifdef LIMITS_HAVE_MALLINFO2
  struct mallinfo2 mi = mallinfo2 ();
  return mi.uordblks + mi.hblkhd;
#else
  return 0;
#endif
}

#define KIB ((size_t) 1024)
#define MIB (KIB * KIB)

/* ---- helpers ---- */

typedef struct
{
  size_t blocks;
  size_t bytes;
} Live;

static Live
live_now (void)
{
  Live l;
  l.blocks = __atomic_load_n (&limits_live_blocks, __ATOMIC_RELAXED);
  l.bytes = __atomic_load_n (&limits_live_bytes, __ATOMIC_RELAXED);
  return l;
}

static void
assert_live_is (Live expected, const char *when)
{
  Live now = live_now ();
  if (now.blocks != expected.blocks || now.bytes != expected.bytes)
    g_test_message ("%s: afut holds %zu blocks, %zu bytes; expected %zu, %zu",
                    when, now.blocks, now.bytes, expected.blocks,
                    expected.bytes);
  g_assert_cmpuint (now.blocks, ==, expected.blocks);
  g_assert_cmpuint (now.bytes, ==, expected.bytes);
}

/* Correct use only here: any afut critical or warning fails the test. */
static void
fail_on_log (AfutLogLevel level, const char *message, void *data)
{
  (void) data;
  g_printerr ("unexpected afut %s: %s\n",
              level == AFUT_LOG_CRITICAL ? "critical" : "warning", message);
  g_test_fail_printf ("unexpected afut %s: %s",
                      level == AFUT_LOG_CRITICAL ? "critical" : "warning",
                      message);
}

static guint n_reports;

static void
count_reports_handler (AfutLoop *loop, const AfutExceptionContext *context,
                       void *data)
{
  (void) loop;
  (void) data;
  if (n_reports++ < 5)
    g_test_message ("exception handler: %s", context->message);
}

static AfutLoop *
new_loop (void)
{
  AfutLoop *loop = afut_loop_new (AFUT_LOOP_VIRTUAL_CLOCK);
  g_assert_nonnull (loop);
  afut_loop_set_exception_handler (loop, count_reports_handler, NULL);
  n_reports = 0;
  return loop;
}

static double
seconds_since (gint64 start)
{
  return (double) (g_get_monotonic_time () - start) / G_USEC_PER_SEC;
}

/* Per index, how often something happened; must end all ones. */
static guint8 *
slots_new (guint n)
{
  return g_new0 (guint8, n);
}

static void
assert_slots_once (const guint8 *slots, guint n, const char *what)
{
  guint i, bad = 0, first_bad = 0;
  for (i = 0; i < n; i++)
    if (slots[i] != 1)
      {
        if (bad++ == 0)
          first_bad = i;
      }
  if (bad > 0)
    g_test_message ("%s: %u of %u not exactly once (first: #%u, %u times)",
                    what, bad, n, first_bad, slots[first_bad]);
  g_assert_cmpuint (bad, ==, 0);
}

static AfutQuark
test_domain (void)
{
  return afut_quark_from_static_string ("afut-limits-test-error-quark");
}

/* ---- pending tasks ---- */

typedef enum
{
  WAIT_SLEEP,       /* await asyncio.sleep(86400) */
  WAIT_OWN_FUTURE,  /* await loop.create_future(), never resolved */
  WAIT_SHARED,      /* all await one future, never resolved */
  WAIT_EVENT,       /* await event.wait(), never set */
  WAIT_SHIELD,      /* all await a shield of one future, never resolved */
  WAIT_MIXED        /* task i: sleep, own future, event by i % 3 */
} WaitKind;

static const char *const wait_kind_names[]
  = { "sleep", "own-future", "shared-future", "event", "shielded-future",
      "mixed" };

/* What the pending tasks did, per index and in total. */
static struct
{
  guint8 *finalized;
  guint n;
  guint n_started;
  guint n_finalized;
  guint n_cancelled;
  guint n_other_end; /* done or failed: must stay 0 */
  guint n_resumed;   /* went past their await: must stay 0 */
} pending;

static void
pending_reset (guint n)
{
  g_free (pending.finalized);
  memset (&pending, 0, sizeof pending);
  pending.finalized = slots_new (n);
  pending.n = n;
}

static void
pending_clear (void)
{
  g_free (pending.finalized);
  memset (&pending, 0, sizeof pending);
}

typedef struct
{
  AfutTask task;
  guint index;
  WaitKind kind;
  AfutFuture *shared; /* WAIT_SHARED, WAIT_SHIELD: not owned */
  AfutEvent *event;   /* WAIT_EVENT, WAIT_MIXED: owned */
} Pending;

static AfutFuture *
pending_future (Pending *self)
{
  WaitKind kind = self->kind;
  if (kind == WAIT_MIXED)
    kind = (WaitKind) (self->index % 3 == 0   ? WAIT_SLEEP
                       : self->index % 3 == 1 ? WAIT_OWN_FUTURE
                                              : WAIT_EVENT);
  switch (kind)
    {
    case WAIT_SLEEP:
      return afut_sleep (86400.0);
    case WAIT_OWN_FUTURE:
      return afut_future_new (NULL);
    case WAIT_SHARED:
      return afut_future_ref (self->shared);
    case WAIT_EVENT:
      return afut_event_wait (self->event);
    case WAIT_SHIELD:
      return afut_shield (afut_future_ref (self->shared));
    case WAIT_MIXED:
    default:
      g_assert_not_reached ();
    }
  return NULL;
}

static void
pending_step (AfutTask *task)
{
  Pending *self = (Pending *) task;
  AFUT_BEGIN (task);
  pending.n_started++;
  AFUT_AWAIT (task, pending_future (self));
  pending.n_resumed++;
  AFUT_END (task);
}

static void
pending_finalize (AfutTask *task)
{
  Pending *self = (Pending *) task;
  g_assert_cmpuint (self->index, <, pending.n);
  pending.finalized[self->index]++;
  pending.n_finalized++;
  if (afut_future_is_cancelled (&task->future))
    pending.n_cancelled++;
  else
    pending.n_other_end++;
  if (self->event != NULL)
    afut_event_unref (self->event);
}

/* Spawns task @index of @kind; returns its reference. */
static AfutFuture *
pending_spawn (AfutLoop *loop, guint index, WaitKind kind, AfutFuture *shared,
               AfutEvent *event)
{
  Pending init;
  AfutFuture *f;
  memset (&init, 0, sizeof init);
  init.index = index;
  init.kind = kind;
  init.shared = shared;
  if (kind == WAIT_EVENT || kind == WAIT_MIXED)
    init.event = afut_event_ref (event);
  /* No name: the default one is made only if asked for. */
  f = afut_task_new (loop, pending_step, sizeof (Pending), &init, NULL,
                     pending_finalize);
  g_assert_nonnull (f);
  return f;
}

static void
assert_all_cancelled_once (guint n)
{
  g_assert_cmpuint (pending.n_finalized, ==, n);
  g_assert_cmpuint (pending.n_cancelled, ==, n);
  g_assert_cmpuint (pending.n_other_end, ==, 0);
  g_assert_cmpuint (pending.n_resumed, ==, 0);
  assert_slots_once (pending.finalized, n, "task finalize");
}

/* Shutdown of N tasks on KIND: each cancelled, finalized once, all freed. */
static void
test_shutdown_pending_tasks (gconstpointer data)
{
  WaitKind kind = (WaitKind) GPOINTER_TO_INT (data);
  guint n = limits_n (), i;
  Live before = live_now ();
  AfutLoop *loop;
  AfutFuture *shared = NULL;
  AfutEvent *event = NULL;
  gint64 start;
  double spawn_s, start_s, shutdown_s;

  g_test_message ("%u tasks pending on %s (%s)", n, wait_kind_names[kind],
                  tool_name ());
  pending_reset (n);
  loop = new_loop ();
  if (kind == WAIT_SHARED)
    shared = afut_future_new (loop);
  if (kind == WAIT_EVENT || kind == WAIT_MIXED)
    event = afut_event_new (loop);

  start = g_get_monotonic_time ();
  for (i = 0; i < n; i++)
    afut_future_unref (pending_spawn (loop, i, kind, shared, event));
  spawn_s = seconds_since (start);
  g_assert_cmpuint (afut_loop_get_n_tasks (loop), ==, n);

  /* One iteration runs every first step: all of them wait now. */
  start = g_get_monotonic_time ();
  g_assert_true (afut_loop_iterate (loop, FALSE));
  start_s = seconds_since (start);
  g_assert_cmpuint (pending.n_started, ==, n);
  g_assert_cmpuint (afut_loop_get_n_tasks (loop), >=, n);
  g_assert_cmpuint (pending.n_finalized, ==, 0);

  start = g_get_monotonic_time ();
  afut_loop_shutdown (loop);
  shutdown_s = seconds_since (start);
  g_test_message ("spawn %.3f s, first steps %.3f s, shutdown %.3f s; "
                  "afut peak %.1f MiB",
                  spawn_s, start_s, shutdown_s,
                  (double) limits_peak_bytes / MIB);

  g_assert_cmpuint (afut_loop_get_n_tasks (loop), ==, 0);
  assert_all_cancelled_once (n);
  g_assert_cmpuint (n_reports, ==, 0);
  if (shared != NULL)
    {
      /* Cancelling the first task cancelled what it awaited. */
      g_assert_true (afut_future_is_cancelled (shared));
      afut_future_unref (shared);
    }
  if (event != NULL)
    {
      g_assert_false (afut_event_is_set (event));
      afut_event_unref (event);
    }
  afut_loop_unref (loop);
  assert_live_is (before, "after the loop's unref");
  pending_clear ();
}

/* Last unref, no shutdown, 1.5 N tasks pending: all cancelled and freed. */
static void
test_unref_pending_tasks (gconstpointer data)
{
  /* afut_loop_unref documents it: the last unref shuts the loop down as
   * afut_run does.  With HELD, references to the first N tasks outlive
   * the loop: they see their tasks cancelled and keep the loop's memory
   * until the last of them goes. */
  gboolean held = GPOINTER_TO_INT (data);
  guint n = limits_n (), i;
  Live before = live_now ();
  AfutLoop *loop;
  AfutEvent *event;
  AfutFuture **tasks = NULL;
  gint64 start;

  g_test_message ("%u mixed pending tasks and %u new ones, %s (%s)", n, n / 2,
                  held ? "references held past the loop" : "none held",
                  tool_name ());
  pending_reset (n + n / 2);
  loop = new_loop ();
  event = afut_event_new (loop);
  if (held)
    tasks = g_new (AfutFuture *, n);
  for (i = 0; i < n; i++)
    {
      AfutFuture *f = pending_spawn (loop, i, WAIT_MIXED, NULL, event);
      if (held)
        tasks[i] = f;
      else
        afut_future_unref (f);
    }
  afut_event_unref (event);
  /* These start waiting; n / 2 more never run a step. */
  g_assert_true (afut_loop_iterate (loop, FALSE));
  g_assert_cmpuint (pending.n_started, ==, n);
  for (i = 0; i < n / 2; i++)
    afut_future_unref (pending_spawn (loop, n + i, WAIT_SLEEP, NULL, NULL));

  start = g_get_monotonic_time ();
  afut_loop_unref (loop);
  g_test_message ("last unref: %.3f s", seconds_since (start));
  g_assert_cmpuint (pending.n_started, ==, n);
  g_assert_cmpuint (pending.n_resumed, ==, 0);
  g_assert_cmpuint (n_reports, ==, 0);

  if (held)
    {
      Live kept = live_now ();
      /* Only the held tasks are left, cancelled, and the loop's memory
       * waits for them. */
      g_assert_cmpuint (pending.n_finalized, ==, n / 2);
      for (i = 0; i < n; i++)
        g_assert_cmpint (afut_future_get_state (tasks[i]), ==,
                         AFUT_FUTURE_CANCELLED);
      g_assert_cmpuint (kept.blocks, >, before.blocks);
      for (i = 0; i < n; i++)
        afut_future_unref (tasks[i]);
      g_free (tasks);
    }
  assert_all_cancelled_once (n + n / 2);
  assert_live_is (before, "after the last reference");
  pending_clear ();
}

typedef struct
{
  AfutTask task;
  guint n;
} RunMain;

static void
run_main_step (AfutTask *task)
{
  RunMain *self = (RunMain *) task;
  guint i;
  AFUT_BEGIN (task);
  for (i = 0; i < self->n; i++)
    afut_future_unref (pending_spawn (NULL, i, WAIT_SLEEP, NULL, NULL));
  AFUT_YIELD (task);
  g_assert_cmpuint (pending.n_started, ==, self->n);
  AFUT_END (task);
}

/* afut_run leaving N tasks on sleeps: all cancelled, finalized, freed. */
static void
test_run_pending_tasks (void)
{
  guint n = limits_n ();
  Live before = live_now ();
  RunMain init;
  gint64 start;

  g_test_message ("afut_run leaving %u tasks on sleeps (%s)", n, tool_name ());
  pending_reset (n);
  memset (&init, 0, sizeof init);
  init.n = n;
  start = g_get_monotonic_time ();
  g_assert_cmpint (afut_run (run_main_step, sizeof init, &init, "main"), ==,
                   0);
  g_test_message ("afut_run: %.3f s", seconds_since (start));
  assert_all_cancelled_once (n);
  assert_live_is (before, "after afut_run");
  pending_clear ();
}

/* ---- timers ---- */

static struct
{
  guint8 *ran;      /* the handle's function, per index */
  guint8 *finished; /* its done callback, per index */
  guint n_cancelled_done;
} timers;

typedef struct
{
  guint index;
} TimerData;

static void
timer_fired (void *data)
{
  timers.ran[GPOINTER_TO_UINT (data)]++;
}

static void
timer_done (AfutFuture *handle, void *data)
{
  timers.finished[GPOINTER_TO_UINT (data)]++;
  if (afut_future_is_cancelled (handle))
    timers.n_cancelled_done++;
}

/* N call_later handles: unref cancels the unfired half, none runs twice. */
static void
test_unref_pending_timers (gconstpointer data)
{
  /* Half are due before the point the loop runs to, each fires once; the
   * last unref cancels the other half without running them; every done
   * callback runs once.  With HELD the handles outlive the loop, and the
   * last of them frees its memory. */
  gboolean held = GPOINTER_TO_INT (data);
  guint n = limits_n (), i, n_ran = 0;
  Live before = live_now ();
  AfutLoop *loop;
  AfutFuture **handles = NULL, *until;
  gint64 start;

  g_test_message ("%u call_later handles, %s (%s)", n,
                  held ? "references held past the loop" : "none held",
                  tool_name ());
  timers.ran = slots_new (n);
  timers.finished = slots_new (n);
  timers.n_cancelled_done = 0;
  loop = new_loop ();
  if (held)
    handles = g_new (AfutFuture *, n);
  start = g_get_monotonic_time ();
  for (i = 0; i < n; i++)
    {
      /* Deadlines 0.5, 1.5, ... 999.5 s, in no order. */
      guint k = (guint) (((guint64) i * 7919) % 1000);
      AfutFuture *h = afut_loop_call_later (loop, k + 0.5, timer_fired,
                                            GUINT_TO_POINTER (i));
      g_assert_nonnull (h);
      afut_future_add_done_callback (h, timer_done, GUINT_TO_POINTER (i));
      if (held)
        handles[i] = h;
      else
        afut_future_unref (h);
    }
  g_test_message ("scheduling: %.3f s", seconds_since (start));

  /* Run to t = 500 s: deadlines up to 499.5 s fire, each once. */
  start = g_get_monotonic_time ();
  until = afut_loop_sleep (loop, 500.0);
  g_assert_true (afut_loop_run_until_complete (loop, until));
  afut_future_unref (until);
  g_test_message ("running half: %.3f s", seconds_since (start));
  for (i = 0; i < n; i++)
    {
      guint k = (guint) (((guint64) i * 7919) % 1000);
      g_assert_cmpuint (timers.ran[i], ==, k < 500 ? 1 : 0);
      n_ran += timers.ran[i];
    }
  g_assert_cmpuint (n_ran, >=, n / 2 - n / 1000 - 1);
  g_assert_cmpuint (n_ran, <=, n / 2 + n / 1000 + 1);

  start = g_get_monotonic_time ();
  afut_loop_unref (loop);
  g_test_message ("last unref with %u timers pending: %.3f s", n - n_ran,
                  seconds_since (start));

  /* The rest never ran; their done callbacks did, cancelled. */
  for (i = 0; i < n; i++)
    g_assert_cmpuint (timers.ran[i], <=, 1);
  g_assert_cmpuint (timers.n_cancelled_done, ==, n - n_ran);
  assert_slots_once (timers.finished, n, "handle done callback");
  {
    guint total = 0;
    for (i = 0; i < n; i++)
      total += timers.ran[i];
    g_assert_cmpuint (total, ==, n_ran);
  }
  g_assert_cmpuint (n_reports, ==, 0);
  if (held)
    {
      g_assert_cmpuint (live_now ().blocks, >, before.blocks);
      for (i = 0; i < n; i++)
        {
          guint k = (guint) (((guint64) i * 7919) % 1000);
          g_assert_cmpint (afut_future_get_state (handles[i]), ==,
                           k < 500 ? AFUT_FUTURE_DONE : AFUT_FUTURE_CANCELLED);
          afut_future_unref (handles[i]);
        }
      g_free (handles);
    }
  assert_live_is (before, "after the last handle");
  g_clear_pointer (&timers.ran, g_free);
  g_clear_pointer (&timers.finished, g_free);
}

/* ---- ready callbacks ---- */

static struct
{
  guint8 *ran;
  guint n;
  guint n_spawned;
} ready;

static void
ready_cb (void *data)
{
  guint i = GPOINTER_TO_UINT (data);
  ready.ran[i]++;
  /* Every 10th spawns a task that waits forever: shutdown must go round
   * again for what its last callbacks started. */
  if (i % 10 == 0)
    {
      afut_future_unref (pending_spawn (NULL, ready.n_spawned, WAIT_SLEEP,
                                        NULL, NULL));
      ready.n_spawned++;
    }
}

typedef enum
{
  END_BY_SHUTDOWN, /* afut_loop_shutdown, then the unref */
  END_BY_UNREF     /* the last unref alone */
} EndKind;

/* 1.1 N callbacks queued at the end run once; their tasks end cancelled. */
static void
test_ready_callbacks_at_end (gconstpointer data)
{
  EndKind end = (EndKind) GPOINTER_TO_INT (data);
  guint n = limits_n (), n_threadsafe = n / 10, i;
  Live before = live_now ();
  AfutLoop *loop;
  gint64 start;

  g_test_message ("%u call_soon + %u call_soon_threadsafe callbacks at %s "
                  "(%s)",
                  n, n_threadsafe,
                  end == END_BY_SHUTDOWN ? "shutdown" : "the last unref",
                  tool_name ());
  memset (&ready, 0, sizeof ready);
  ready.n = n + n_threadsafe;
  ready.ran = slots_new (ready.n);
  /* One spawned task per 10 callbacks. */
  pending_reset (ready.n / 10 + 1);

  loop = new_loop ();
  for (i = 0; i < n; i++)
    g_assert_true (afut_loop_call_soon (loop, ready_cb, GUINT_TO_POINTER (i)));
  for (i = 0; i < n_threadsafe; i++)
    g_assert_true (afut_loop_call_soon_threadsafe (loop, ready_cb,
                                                   GUINT_TO_POINTER (n + i)));
  g_assert_cmpuint (ready.n_spawned, ==, 0);

  start = g_get_monotonic_time ();
  if (end == END_BY_SHUTDOWN)
    {
      afut_loop_shutdown (loop);
      g_assert_cmpuint (afut_loop_get_n_tasks (loop), ==, ready.n_spawned);
      g_test_message ("shutdown: %.3f s", seconds_since (start));
      /* The tasks the callbacks spawned started after the shutdown's
       * cancellation: they still wait; the unref ends them. */
      g_assert_cmpuint (pending.n_finalized, ==, 0);
    }
  afut_loop_unref (loop);
  g_test_message ("to the end: %.3f s", seconds_since (start));

  assert_slots_once (ready.ran, ready.n, "ready callback");
  g_assert_cmpuint (ready.n_spawned, ==, (ready.n + 9) / 10);
  pending.n = ready.n_spawned;
  assert_all_cancelled_once (ready.n_spawned);
  g_assert_cmpuint (n_reports, ==, 0);
  assert_live_is (before, "after the loop's unref");
  g_clear_pointer (&ready.ran, g_free);
  pending_clear ();
}

/* ---- bursts ---- */

/* A child of a burst: sleeps, gathers two leaves, every 8th times out on
 * a wait_for, every 16th (from 1) fails, every 32nd (from 3) cancels a
 * task of its own; returns what its leaves returned. */
typedef struct
{
  AfutTask task;
  guint index;
  int64_t sum;
  AfutFuture *victim;
} Child;

typedef struct
{
  AfutTask task;
  guint index;
} Leaf;

static void
leaf_step (AfutTask *task)
{
  Leaf *self = (Leaf *) task;
  AFUT_BEGIN (task);
  AFUT_YIELD (task);
  AFUT_AWAIT (task, afut_sleep (0.001 * (self->index % 4 + 1)));
  AFUT_RETURN_INT (task, 1);
  AFUT_END (task);
}

static AfutFuture *
leaf_new (guint index)
{
  Leaf init;
  memset (&init, 0, sizeof init);
  init.index = index;
  return afut_coro_new (NULL, leaf_step, sizeof init, &init, NULL, NULL);
}

static void
victim_step (AfutTask *task)
{
  AFUT_BEGIN (task);
  AFUT_AWAIT (task, afut_sleep (100.0));
  g_assert_not_reached ();
  AFUT_END (task);
}

static void
child_step (AfutTask *task)
{
  Child *self = (Child *) task;
  AfutFuture *g;
  const AfutError *e;

  AFUT_BEGIN (task);
  AFUT_AWAIT (task, afut_sleep (0.001 * (self->index % 64)));
  AFUT_AWAIT (task, afut_gather (leaf_new (2 * self->index),
                                 leaf_new (2 * self->index + 1), NULL));
  g = afut_task_awaited (task);
  self->sum = afut_future_get_int (afut_gather_get_item (g, 0))
              + afut_future_get_int (afut_gather_get_item (g, 1));
  if (self->index % 8 == 0)
    {
      AFUT_AWAIT_TRY (task, afut_wait_for (afut_sleep (10.0), 0.01));
      e = afut_task_caught (task);
      g_assert_nonnull (e);
      g_assert_true (afut_error_matches (e, AFUT_ERROR, AFUT_ERROR_TIMEOUT));
      self->sum += 10;
    }
  if (self->index % 32 == 3)
    {
      self->victim = afut_task_new (NULL, victim_step, sizeof (AfutTask),
                                    NULL, NULL, NULL);
      AFUT_YIELD (task);
      afut_future_cancel (self->victim, "burst");
      AFUT_AWAIT_TRY (task, self->victim);
      self->victim = NULL;
      e = afut_task_caught (task);
      g_assert_nonnull (e);
      g_assert_true (afut_error_is_cancelled (e));
      self->sum += 100;
    }
  if (self->index % 16 == 1)
    AFUT_THROW (task, afut_error_new (test_domain (), 1, "child %u failed",
                                      self->index));
  AFUT_RETURN_INT (task, self->sum);
  AFUT_END (task);
}

static int64_t
child_expected (guint i)
{
  return 2 + (i % 8 == 0 ? 10 : 0) + (i % 32 == 3 ? 100 : 0);
}

typedef struct
{
  AfutTask task;
  guint n;
  AfutFuture **children;
} BurstMain;

static size_t burst_heap_peak;

static void
burst_main_step (AfutTask *task)
{
  BurstMain *self = (BurstMain *) task;
  AfutFuture *g;
  guint i;

  AFUT_BEGIN (task);
  self->children = g_new (AfutFuture *, self->n);
  for (i = 0; i < self->n; i++)
    {
      Child init;
      memset (&init, 0, sizeof init);
      init.index = i;
      self->children[i] = afut_coro_new (NULL, child_step, sizeof init, &init,
                                         NULL, NULL);
    }
  AFUT_AWAIT (task, afut_gather_return_exceptions_v (self->children, self->n));
  /* Every child is still held: near the burst's peak. */
  burst_heap_peak = heap_in_use ();
  g = afut_task_awaited (task);
  for (i = 0; i < self->n; i++)
    {
      AfutFuture *item = afut_gather_get_item (g, i);
      if (i % 16 == 1)
        g_assert_true (afut_error_matches (afut_future_get_error (item),
                                           test_domain (), 1));
      else
        g_assert_cmpint (afut_future_get_int (item), ==, child_expected (i));
      afut_future_unref (self->children[i]);
    }
  g_clear_pointer (&self->children, g_free);
  AFUT_END (task);
}

/* One burst of @n children (3n tasks, n gathers, about 3.3n timers) on
 * @loop, run to completion. */
static void
burst (AfutLoop *loop, guint n)
{
  BurstMain init;
  AfutFuture *main_task;
  int64_t t0 = afut_loop_time_ns (loop);

  memset (&init, 0, sizeof init);
  init.n = n;
  main_task = afut_task_new (loop, burst_main_step, sizeof init, &init,
                             "burst", NULL);
  g_assert_true (afut_loop_run_until_complete (loop, main_task));
  g_assert_cmpint (afut_future_get_state (main_task), ==, AFUT_FUTURE_DONE);
  afut_future_unref (main_task);
  g_assert_cmpuint (afut_loop_get_n_tasks (loop), ==, 0);
  /* Virtual time: the longest child slept 63 ms, then leaves and a
   * wait_for; nothing really waited. */
  g_assert_cmpint (afut_loop_time_ns (loop) - t0, <,
                   G_GINT64_CONSTANT (200000000));
  g_assert_cmpuint (n_reports, ==, 0);
}

/* Children per burst: n children make 3n tasks, 3 * 10^5 in a plain
 * build. */
static guint
burst_n (void)
{
  return MAX (limits_n () / 10, 64u);
}

/* Warms what is allocated once and kept (afut's quark table, GLib's and
 * stdio's buffers), so that baselines taken after it are steady. */
static void
warm_up (void)
{
  AfutLoop *loop = new_loop ();
  burst (loop, 64);
  afut_loop_unref (loop);
  g_test_message ("warm-up done");
}

/* A burst, then its loop's unref: afut gives back every block and byte. */
static void
test_burst_afut_allocations (void)
{
  guint n = burst_n ();
  Live before;
  size_t allocs_before;
  AfutLoop *loop;
  gint64 start;

  warm_up ();
  before = live_now ();
  allocs_before = limits_n_allocs;
  limits_peak_bytes = before.bytes;
  g_test_message ("burst of %u children, %u tasks (%s)", n, 3 * n + 1,
                  tool_name ());
  start = g_get_monotonic_time ();
  loop = new_loop ();
  burst (loop, n);
  g_test_message ("burst: %.3f s, %zu allocations, afut peak %.1f MiB, "
                  "%.1f MiB kept by the loop until its unref",
                  seconds_since (start), limits_n_allocs - allocs_before,
                  (double) (limits_peak_bytes - before.bytes) / MIB,
                  (double) (live_now ().bytes - before.bytes) / MIB);
  afut_loop_unref (loop);
  assert_live_is (before, "after the burst's loop");
}

/* A burst, then its loop's unref: mallinfo2's in-use within 1 MiB again. */
static void
test_burst_heap_in_use (void)
{
  guint n = burst_n ();
  const char *why;
  gboolean measurable = heap_measurable (&why);
  size_t before, peak, after;
  AfutLoop *loop;

  warm_up ();
  before = heap_in_use ();
  g_test_message ("burst of %u children (%s)", n, tool_name ());
  loop = new_loop ();
  burst (loop, n);
  peak = burst_heap_peak;
  afut_loop_unref (loop);
  after = heap_in_use ();
  if (!measurable)
    {
      g_test_skip_printf ("mallinfo2 not checked %s (the burst ran)", why);
      return;
    }
  g_test_message ("in use: before %.2f MiB, at the burst's end %.2f MiB, "
                  "after %.2f MiB",
                  (double) before / MIB, (double) peak / MIB,
                  (double) after / MIB);
  /* The burst itself was seen: its children and their results. */
  g_assert_cmpuint (peak, >, before + (size_t) n * 100);
  g_assert_cmpuint (after, <, before + MIB);
}

/* What a loop keeps between bursts: its ready ring, timer heap and task
 * array grow by doubling to the peak of their burst and never shrink
 * (afut.h frees them with the loop).  A burst of n children makes about
 * 3n tasks and 3.3n timers, and queues no more callbacks at once than
 * that, so the three hold under 2 * 4n entries of 16, 16 and 8 bytes:
 * 320 bytes per child.  (Seen: 2^17 entries each for 10^5 children, 5 MiB
 * or 52 bytes per child.) */
#define KEPT_BYTES_PER_CHILD 320

/* Five bursts on one loop: what it keeps is bounded and does not grow. */
static void
test_repeated_bursts (void)
{
  /* After each burst, what afut holds (blocks and bytes, exactly) and
   * mallinfo2's in-use bytes (within 64 KiB) are what they were after the
   * first; what the loop keeps is under KEPT_BYTES_PER_CHILD; its unref
   * gives back everything. */
  guint n = burst_n (), k;
  const char *why;
  gboolean measurable = heap_measurable (&why);
  Live before, first = { 0, 0 };
  size_t heap_before, heap_first = 0;
  AfutLoop *loop;

  warm_up ();
  before = live_now ();
  heap_before = heap_in_use ();
  g_test_message ("5 bursts of %u children on one loop (%s)", n, tool_name ());
  loop = new_loop ();
  for (k = 0; k < 5; k++)
    {
      gint64 start = g_get_monotonic_time ();
      Live now;
      size_t heap_now;

      burst (loop, n);
      now = live_now ();
      heap_now = heap_in_use ();
      g_test_message ("burst %u: %.3f s; afut holds %zu blocks, %zu bytes "
                      "more than before the loop; heap in use %s%.2f MiB",
                      k + 1, seconds_since (start),
                      now.blocks - before.blocks, now.bytes - before.bytes,
                      measurable ? "+" : "(not measured) ",
                      ((double) heap_now - (double) heap_before) / MIB);
      g_assert_cmpuint (now.bytes - before.bytes, <=,
                        (size_t) n * KEPT_BYTES_PER_CHILD + 64 * KIB);
      if (k == 0)
        {
          first = now;
          heap_first = heap_now;
        }
      else
        {
          g_assert_cmpuint (now.blocks, ==, first.blocks);
          g_assert_cmpuint (now.bytes, ==, first.bytes);
          if (measurable)
            g_assert_cmpuint (heap_now, <=, heap_first + 64 * KIB);
        }
    }
  afut_loop_unref (loop);
  assert_live_is (before, "after the loop's unref");
  if (!measurable)
    g_test_skip_printf ("mallinfo2 not checked %s (afut's own counts were)",
                        why);
}

/* ---- scaling ---- */

static double
time_shutdown (guint n, WaitKind kind)
{
  AfutLoop *loop = new_loop ();
  AfutFuture *shared = NULL;
  AfutEvent *event = NULL;
  gint64 start;
  double s;
  guint i;

  if (kind == WAIT_SHARED || kind == WAIT_SHIELD)
    shared = afut_future_new (loop);
  if (kind == WAIT_EVENT)
    event = afut_event_new (loop);
  pending_reset (n);
  for (i = 0; i < n; i++)
    afut_future_unref (pending_spawn (loop, i, kind, shared, event));
  g_assert_true (afut_loop_iterate (loop, FALSE));
  start = g_get_monotonic_time ();
  afut_loop_shutdown (loop);
  s = seconds_since (start);
  assert_all_cancelled_once (n);
  /* A shield leaves its inner pending. */
  if (shared != NULL)
    g_assert_cmpint (afut_future_get_state (shared), ==,
                     kind == WAIT_SHIELD ? AFUT_FUTURE_PENDING
                                         : AFUT_FUTURE_CANCELLED);
  afut_future_unref (shared);
  if (event != NULL)
    afut_event_unref (event);
  afut_loop_unref (loop);
  pending_clear ();
  return s;
}

/* Shutdown time per task on KIND: < 8x for 32x the tasks (not quadratic). */
static void
test_shutdown_scales_linearly (gconstpointer data)
{
  WaitKind kind = (WaitKind) GPOINTER_TO_INT (data);
  guint big = limits_n () / 16, small = limits_n () / 512, r;
  double t_small = G_MAXDOUBLE, t_big = G_MAXDOUBLE, ratio = 0.0;

  /* N/512 tasks (best of three) against N/16: linear, where quadratic
   * would be 32 times.  Asserted in a plain build only.  Shields of one
   * future were quadratic (each cancelled shield scanned and compacted
   * the inner's callback array, as CPython's does) until their watches
   * were removed by marking. */
  for (r = 0; r < 3; r++)
    t_small = MIN (t_small, time_shutdown (small, kind));
  /* A second try only to confirm a failure. */
  for (r = 0; r < 2; r++)
    {
      t_big = MIN (t_big, time_shutdown (big, kind));
      ratio = (t_big / big) / (MAX (t_small, 1e-6) / small);
      if (ratio < 8.0)
        break;
    }
  g_test_message ("%s: shutdown of %u tasks %.4f s, of %u tasks %.4f s: "
                  "%.2f times the time per task (%s)",
                  wait_kind_names[kind], small, t_small, big, t_big, ratio,
                  tool_name ());
  if (on_valgrind () || LIMITS_SANITIZER)
    {
      /* The code ran under the tool; the timings mean little there. */
      g_test_skip_printf ("time ratio not asserted in a %s (it ran; too "
                          "few tasks to tell, or too slow to run more)",
                          on_valgrind () ? "run under valgrind"
                                         : tool_name ());
      return;
    }
  g_assert_cmpfloat (ratio, <, 8.0);
}

/* ---- depth: chains of nested futures, on a small C stack ----
 *
 * A chain of limits_n () nested futures of one kind (a gather of a gather
 * of ... a plain future; shields, wait_fors, races, anys, waits,
 * as_completeds; tasks each awaiting the one before; tasks each in a
 * task group around the one before) is cancelled from the top, or
 * completed from the bottom, then freed from the top.  Cancelling used to
 * recurse once per level (afut_future_cancel -> afut__gather_cancel ->
 * ...) and freeing too (afut_future_unref -> afut__gather_finalize ->
 * ...): 2 * 10^5 levels overflowed an 8 MiB stack.  Each chain runs on a
 * thread with a 256 KiB stack, where a few thousand levels of recursion
 * would already crash, so that the test fails on any recursion whose
 * depth the chain decides. */


#define DEPTH_STACK_SIZE (256 * KIB)

typedef enum
{
  DEPTH_GATHER,
  DEPTH_SHIELD,
  DEPTH_WAIT_FOR,
  DEPTH_RACE,
  DEPTH_ANY,
  DEPTH_WAIT,
  DEPTH_AS_COMPLETED,
  DEPTH_TASKS,
  DEPTH_GROUPS,
  DEPTH_INLINE,
  DEPTH_INLINE_DONE
} DepthKind;

/* Whether cancelling the top reaches the bottom of the chain (shield,
 * wait and as_completed leave their inputs running: those chains are
 * completed from the bottom instead). */
static gboolean
depth_cancel_reaches_bottom (DepthKind kind)
{
  return kind != DEPTH_SHIELD && kind != DEPTH_WAIT
         && kind != DEPTH_AS_COMPLETED;
}

static guint depth_n_finalized;
static gboolean depth_reached_bottom; /* a task awaits the bottom future */

static void
depth_count_finalize (AfutTask *task)
{
  (void) task;
  depth_n_finalized++;
}

/* Awaits its inner future (owned, released when it is freed: so that
 * freeing the top task frees the chain below it). */
typedef struct
{
  AfutTask task;
  AfutFuture *inner;
} DepthTask;

static void
depth_task_step (AfutTask *task)
{
  DepthTask *self = (DepthTask *) task;
  AFUT_BEGIN (task);
  AFUT_AWAIT (task, afut_future_ref (self->inner));
  AFUT_END (task);
}

static void
depth_task_finalize (AfutTask *task)
{
  depth_n_finalized++;
  afut_future_unref (((DepthTask *) task)->inner);
}

/* async with TaskGroup() as g: g.create_task(<the level below>); level 0
 * awaits the bottom future instead. */
typedef struct
{
  AfutTask task;
  guint level;
  AfutFuture *bottom; /* not owned */
  AfutTaskGroup *group;
} DepthGroup;

static void
depth_group_step (AfutTask *task)
{
  DepthGroup *self = (DepthGroup *) task;
  AFUT_BEGIN (task);
  if (self->level == 0)
    {
      depth_reached_bottom = TRUE;
      AFUT_AWAIT (task, afut_future_ref (self->bottom));
      AFUT_RETURN (task);
    }
  self->group = afut_task_group_new (task);
  afut_task_group_spawn (
    self->group,
    afut_task_new (NULL, depth_group_step, sizeof (DepthGroup),
                   &(DepthGroup){ .level = self->level - 1,
                                  .bottom = self->bottom },
                   NULL, depth_count_finalize));
  AFUT_AWAIT (task, afut_task_group_exit (self->group));
  AFUT_END (task);
}

/* One level more on top of *@top (whose reference it takes). */
static AfutFuture *
depth_wrap (AfutLoop *loop, DepthKind kind, AfutFuture *top)
{
  AfutFuture *f;
  switch (kind)
    {
    case DEPTH_GATHER:
      return afut_gather (top, NULL);
    case DEPTH_SHIELD:
      return afut_shield (top);
    case DEPTH_WAIT_FOR:
      return afut_wait_for (top, 1e6);
    case DEPTH_RACE:
      return afut_race (top, NULL);
    case DEPTH_ANY:
      return afut_any (top, NULL);
    case DEPTH_WAIT:
      f = afut_wait (&top, 1, AFUT_WAIT_ALL_COMPLETED, AFUT_NO_TIMEOUT);
      afut_future_unref (top);
      return f;
    case DEPTH_AS_COMPLETED:
      f = afut_as_completed (&top, 1, AFUT_NO_TIMEOUT);
      afut_future_unref (top);
      return f;
    case DEPTH_TASKS:
      return afut_task_new (loop, depth_task_step, sizeof (DepthTask),
                            &(DepthTask){ .inner = top }, NULL,
                            depth_task_finalize);
    default:
      g_assert_not_reached ();
    }
  return NULL;
}

/* return 1 + await <the level below>, a coroutine awaited inline
 * (Python's `await coro()`); level 0 awaits the bottom future, which
 * gives 0 (or fails, or is cancelled). */
typedef struct
{
  AfutTask task;
  guint level;
  AfutFuture *bottom; /* not owned */
} DepthInline;

static void
depth_inline_step (AfutTask *task)
{
  DepthInline *self = (DepthInline *) task;
  AFUT_BEGIN (task);
  if (self->level == 0)
    {
      depth_reached_bottom = TRUE;
      AFUT_AWAIT (task, afut_future_ref (self->bottom));
    }
  else
    {
      AFUT_AWAIT (task, afut_coro_new (NULL, depth_inline_step,
                                       sizeof (DepthInline),
                                       &(DepthInline){
                                         .level = self->level - 1,
                                         .bottom = self->bottom },
                                       NULL, depth_count_finalize));
    }
  AFUT_RETURN_INT (task, afut_future_get_int (afut_task_awaited (task)) + 1);
  AFUT_END (task);
}

/* The top task of a chain built by its own steps, level by level. */
static AfutFuture *
depth_top_task (AfutLoop *loop, DepthKind kind, guint n, AfutFuture *bottom)
{
  if (kind == DEPTH_GROUPS)
    return afut_task_new (loop, depth_group_step, sizeof (DepthGroup),
                          &(DepthGroup){ .level = n - 1, .bottom = bottom },
                          NULL, depth_count_finalize);
  return afut_task_new (loop, depth_inline_step, sizeof (DepthInline),
                        &(DepthInline){ .level = n - 1, .bottom = bottom },
                        NULL, depth_count_finalize);
}

typedef struct
{
  DepthKind kind;
  guint n;
} DepthRun;

static void *
depth_thread (void *data)
{
  const DepthRun *run = data;
  AfutLoop *loop = new_loop ();
  AfutFuture *bottom = afut_future_new (loop), *top;
  gint64 start = g_get_monotonic_time ();
  guint i;

  depth_n_finalized = 0;
  depth_reached_bottom = FALSE;
  if (run->kind == DEPTH_INLINE_DONE)
    {
      /* The bottom is done: the whole chain runs down and back up in
       * the top task's first step. */
      g_assert_true (afut_future_resolve_int (bottom, 0));
      top = depth_top_task (loop, run->kind, run->n, bottom);
      g_assert_true (afut_loop_run_until_complete (loop, top));
      g_test_message ("ran %u levels down and up in one step: %.3f s", run->n,
                      seconds_since (start));
      g_assert_true (depth_reached_bottom);
      g_assert_cmpint (afut_future_get_int (top), ==, run->n);
      afut_future_unref (top);
      afut_future_unref (bottom);
      /* (The frames' done callbacks, queued, hold them until they run.) */
      afut_loop_unref (loop);
      g_assert_cmpuint (depth_n_finalized, ==, run->n);
      g_assert_cmpuint (n_reports, ==, 0);
      return NULL;
    }
  if (run->kind == DEPTH_GROUPS || run->kind == DEPTH_INLINE)
    top = depth_top_task (loop, run->kind, run->n, bottom);
  else
    {
      top = afut_future_ref (bottom);
      for (i = 0; i < run->n; i++)
        top = depth_wrap (loop, run->kind, top);
    }
  /* Every task has started, and waits. */
  afut_loop_iterate (loop, FALSE);
  if (run->kind == DEPTH_GROUPS || run->kind == DEPTH_INLINE)
    while (!afut_future_is_done (top) && !depth_reached_bottom)
      afut_loop_iterate (loop, FALSE);
  g_test_message ("built %u levels: %.3f s", run->n, seconds_since (start));
  g_assert_false (afut_future_is_done (top));

  start = g_get_monotonic_time ();
  if (depth_cancel_reaches_bottom (run->kind))
    {
      /* At once, but for task groups, which take a cancellation a loop
       * turn later (asyncio's __aexit__). */
      g_assert_true (afut_future_cancel (top, "deep"));
      g_assert_true (afut_future_is_cancelled (bottom)
                     || run->kind == DEPTH_GROUPS);
      g_assert_true (afut_loop_run_until_complete (loop, top));
      g_assert_true (afut_future_is_cancelled (top));
      g_assert_true (afut_future_is_cancelled (bottom));
      g_assert_cmpstr (afut_future_get_error (bottom)->message, ==,
                       run->kind == DEPTH_GROUPS ? "" : "deep");
    }
  else
    {
      g_assert_true (afut_future_resolve (bottom));
      g_assert_true (afut_loop_run_until_complete (loop, top));
      g_assert_cmpint (afut_future_get_state (top), ==, AFUT_FUTURE_DONE);
    }
  g_test_message ("%s the chain: %.3f s",
                  depth_cancel_reaches_bottom (run->kind) ? "cancelled"
                                                          : "completed",
                  seconds_since (start));

  start = g_get_monotonic_time ();
  afut_future_unref (top);
  afut_future_unref (bottom);
  g_test_message ("freed the chain: %.3f s", seconds_since (start));
  afut_loop_unref (loop);
  if (run->kind == DEPTH_TASKS || run->kind == DEPTH_GROUPS
      || run->kind == DEPTH_INLINE)
    g_assert_cmpuint (depth_n_finalized, ==, run->n);
  g_assert_cmpuint (n_reports, ==, 0);
  return NULL;
}

static void
test_depth (gconstpointer data)
{
  DepthRun run = { (DepthKind) GPOINTER_TO_INT (data), limits_n () };
  pthread_attr_t attr;
  pthread_t thread;
  Live before = live_now ();

  g_test_message ("%u levels, on a %zu KiB stack (%s)", run.n,
                  DEPTH_STACK_SIZE / KIB, tool_name ());
  g_assert_cmpint (pthread_attr_init (&attr), ==, 0);
  g_assert_cmpint (pthread_attr_setstacksize (&attr, DEPTH_STACK_SIZE), ==, 0);
  g_assert_cmpint (pthread_create (&thread, &attr, depth_thread, &run), ==, 0);
  g_assert_cmpint (pthread_join (thread, NULL), ==, 0);
  pthread_attr_destroy (&attr);
  assert_live_is (before, "after the chain");
}

int
main (int argc, char **argv)
{
  g_test_init (&argc, &argv, NULL);
  afut_set_log_func (fail_on_log, NULL);
  /* afut_run's loop: virtual clock. */
  g_setenv ("AFUT_CLOCK", "virtual", TRUE);
  /* What afut allocates once and keeps (its quark table) is made before
   * any test takes its baseline. */
  warm_up ();
  g_test_message ("count: %u (%s; 10^6 in a plain build, AFUT_LIMITS_N "
                  "overrides)",
                  limits_n (), tool_name ());

  g_test_add_data_func ("/limits/shutdown/tasks-on-sleeps",
                        GINT_TO_POINTER (WAIT_SLEEP),
                        test_shutdown_pending_tasks);
  g_test_add_data_func ("/limits/shutdown/tasks-on-own-futures",
                        GINT_TO_POINTER (WAIT_OWN_FUTURE),
                        test_shutdown_pending_tasks);
  g_test_add_data_func ("/limits/shutdown/tasks-on-one-future",
                        GINT_TO_POINTER (WAIT_SHARED),
                        test_shutdown_pending_tasks);
  g_test_add_data_func ("/limits/shutdown/tasks-on-event",
                        GINT_TO_POINTER (WAIT_EVENT),
                        test_shutdown_pending_tasks);
  g_test_add_func ("/limits/shutdown/afut-run", test_run_pending_tasks);
  g_test_add_data_func ("/limits/unref/tasks", GINT_TO_POINTER (FALSE),
                        test_unref_pending_tasks);
  g_test_add_data_func ("/limits/unref/tasks-held", GINT_TO_POINTER (TRUE),
                        test_unref_pending_tasks);
  g_test_add_data_func ("/limits/unref/timers", GINT_TO_POINTER (FALSE),
                        test_unref_pending_timers);
  g_test_add_data_func ("/limits/unref/timers-held", GINT_TO_POINTER (TRUE),
                        test_unref_pending_timers);
  g_test_add_data_func ("/limits/ready/at-shutdown",
                        GINT_TO_POINTER (END_BY_SHUTDOWN),
                        test_ready_callbacks_at_end);
  g_test_add_data_func ("/limits/ready/at-unref",
                        GINT_TO_POINTER (END_BY_UNREF),
                        test_ready_callbacks_at_end);
  g_test_add_func ("/limits/memory/burst/afut-allocations",
                   test_burst_afut_allocations);
  g_test_add_func ("/limits/memory/burst/heap-in-use",
                   test_burst_heap_in_use);
  g_test_add_func ("/limits/memory/repeated-bursts", test_repeated_bursts);
  {
    static const char *const depth_names[]
      = { "gathers", "shields", "wait-fors", "races", "anys", "waits",
          "as-completeds", "tasks-awaiting-tasks", "task-groups",
          "inline-coroutines", "inline-coroutines-done" };
    guint k;
    for (k = 0; k < G_N_ELEMENTS (depth_names); k++)
      {
        char *path = g_strdup_printf ("/limits/depth/%s", depth_names[k]);
        g_test_add_data_func (path, GINT_TO_POINTER (k), test_depth);
        g_free (path);
      }
  }
  /* Timings are benchmarks, not unit tests: only with -m perf, as
   * `meson test --benchmark` runs it (tests/limits/meson.build). */
  if (!g_test_perf ())
    return g_test_run ();
  g_test_add_data_func ("/limits/scaling/shutdown-sleeps",
                        GINT_TO_POINTER (WAIT_SLEEP),
                        test_shutdown_scales_linearly);
  g_test_add_data_func ("/limits/scaling/shutdown-one-future",
                        GINT_TO_POINTER (WAIT_SHARED),
                        test_shutdown_scales_linearly);
  g_test_add_data_func ("/limits/scaling/shutdown-event",
                        GINT_TO_POINTER (WAIT_EVENT),
                        test_shutdown_scales_linearly);
  g_test_add_data_func ("/limits/scaling/shutdown-shielded-future",
                        GINT_TO_POINTER (WAIT_SHIELD),
                        test_shutdown_scales_linearly);

  return g_test_run ();
}
