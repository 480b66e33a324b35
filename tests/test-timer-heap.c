/* afut - the timer heap's lazy removal of cancelled sleeps
 *
 * A cancelled sleep stays in the heap until it reaches the top, or until
 * cancelled entries are more than half of it (then all go at once).
 * These tests count afut's live allocations (AFUT_MALLOC, AFUT_REALLOC
 * and AFUT_FREE, with each future allocated on its own) to see when the heap lets go, and check
 * that what is left still fires in (deadline, creation) order.
 *
 * SPDX-License-Identifier: MIT
 */

#include <glib.h>
#include <stdlib.h>

static long live_allocs;

static void *
counting_malloc (size_t size)
{
  live_allocs++;
  return malloc (size);
}

static void
counting_free (void *p)
{
  if (p != NULL)
    live_allocs--;
  free (p);
}

static void *
counting_realloc (void *p, size_t size)
{
  if (p == NULL)
    live_allocs++;
  return realloc (p, size);
}

#define AFUT_MALLOC(size) counting_malloc (size)
#define AFUT_REALLOC(p, size) counting_realloc ((p), (size))
#define AFUT_FREE(p) counting_free (p)
#ifndef AFUT_NO_FUTURE_POOL
#define AFUT_NO_FUTURE_POOL 1 /* one allocation per future, to count */
#endif
#define AFUT_IMPLEMENTATION
#include "afut.h"

#define NS_PER_S G_GINT64_CONSTANT (1000000000)

static AfutLoop *
new_loop (void)
{
  return afut_loop_new (AFUT_LOOP_VIRTUAL_CLOCK);
}

/* Many cancelled sleeps under one pending one: one loop turn frees them
 * all (they are more than half of the heap), without waiting for their
 * deadlines. */
static void
test_cancelled_majority_freed_at_next_turn (void)
{
  AfutLoop *loop = new_loop ();
  AfutFuture *keep = afut_loop_sleep (loop, 1000.0);
  long before;
  int i;

  g_assert_true (afut_loop_iterate (loop, FALSE));
  before = live_allocs;
  for (i = 0; i < 1000; i++)
    {
      AfutFuture *s = afut_loop_sleep (loop, 10.0 + i);
      g_assert_true (afut_future_cancel (s, NULL));
      afut_future_unref (s);
    }
  g_assert_true (afut_loop_iterate (loop, FALSE));
  g_assert_cmpint (live_allocs, <=, before);
  g_assert_cmpfloat (afut_loop_time (loop), ==, 0.0);
  g_assert_false (afut_future_is_done (keep));

  afut_future_unref (keep);
  afut_loop_unref (loop);
}

/* A few cancelled sleeps among many pending ones stay until they reach
 * the top; the virtual clock does not stop at their deadlines. */
static void
test_cancelled_minority_freed_at_top (void)
{
  AfutLoop *loop = new_loop ();
  AfutFuture *pending[100];
  AfutFuture *cancelled[10];
  long before;
  int i;

  for (i = 0; i < 100; i++)
    pending[i] = afut_loop_sleep (loop, 20.0 + i);
  g_assert_true (afut_loop_iterate (loop, FALSE));
  before = live_allocs;
  for (i = 0; i < 10; i++)
    {
      cancelled[i] = afut_loop_sleep (loop, 1.0 + i);
      g_assert_true (afut_future_cancel (cancelled[i], NULL));
      afut_future_unref (cancelled[i]);
    }

  /* One blocking turn: the clock goes to 20 s, the first pending
   * deadline, not to 1 s; the cancelled sleeps are gone. */
  g_assert_true (afut_loop_iterate (loop, TRUE));
  g_assert_cmpint (afut_loop_time_ns (loop), ==, 20 * NS_PER_S);
  g_assert_true (afut_future_is_done (pending[0]));
  g_assert_false (afut_future_is_done (pending[1]));
  g_assert_cmpint (live_allocs, <=, before);

  for (i = 0; i < 100; i++)
    afut_future_unref (pending[i]);
  afut_loop_unref (loop);
}

typedef struct
{
  GArray *order; /* of int: which sleep fired */
} Trace;

typedef struct
{
  Trace *trace;
  int id;
} Tag;

static void
on_fired (AfutFuture *future, void *data)
{
  Tag *tag = (Tag *) data;
  if (afut_future_get_state (future) == AFUT_FUTURE_DONE)
    g_array_append_val (tag->trace->order, tag->id);
}

/* Sleeps with equal deadlines fire in creation order, also when
 * cancelled ones among them are dropped (at the top and in a cleanup),
 * and when new ones are added after a cleanup. */
static void
test_order_kept_across_cleanups (void)
{
  enum { N = 3000, DEADLINES = 7 };
  AfutLoop *loop = new_loop ();
  AfutFuture **sleeps = g_new0 (AfutFuture *, 2 * N);
  Tag *tags = g_new0 (Tag, 2 * N);
  Trace trace = { g_array_new (FALSE, FALSE, sizeof (int)) };
  GRand *rand = g_rand_new_with_seed (17);
  int i, n = 0, n_kept = 0;
  const int n_expected = N / 3 + N - N / 10;
  guint k;

  for (i = 0; i < N; i++, n++)
    {
      tags[n].trace = &trace;
      tags[n].id = n;
      sleeps[n] = afut_loop_sleep (loop, 1.0 + g_rand_int_range (rand, 0, DEADLINES));
      afut_future_add_done_callback (sleeps[n], on_fired, &tags[n]);
    }
  /* Two thirds cancelled: the next turn cleans up. */
  for (i = 0; i < N; i++)
    if (i % 3 != 0)
      g_assert_true (afut_future_cancel (sleeps[i], NULL));
  g_assert_true (afut_loop_iterate (loop, FALSE));
  /* More, with the same deadlines, after the cleanup; a few cancelled. */
  for (i = 0; i < N; i++, n++)
    {
      tags[n].trace = &trace;
      tags[n].id = n;
      sleeps[n] = afut_loop_sleep (loop, 1.0 + g_rand_int_range (rand, 0, DEADLINES));
      afut_future_add_done_callback (sleeps[n], on_fired, &tags[n]);
      if (i % 10 == 0)
        g_assert_true (afut_future_cancel (sleeps[n], NULL));
    }
  /* A turn per deadline fires everything still pending (a few more
   * turns allowed; never blocked with nothing left to fire). */
  for (i = 0; i < 4 * DEADLINES && trace.order->len < (guint) n_expected; i++)
    g_assert_true (afut_loop_iterate (loop, TRUE));
  for (i = 0; i < n; i++)
    if (afut_future_get_state (sleeps[i]) == AFUT_FUTURE_DONE)
      n_kept++;
    else
      g_assert_cmpint (afut_future_get_state (sleeps[i]), ==,
                       AFUT_FUTURE_CANCELLED);
  g_assert_cmpint (n_kept, ==, n_expected);
  g_assert_cmpuint (trace.order->len, ==, (guint) n_kept);
  /* Each fired by (deadline, creation). */
  {
    /* Compare against the deadlines the sleeps were given: recompute them
     * with the same seed. */
    GRand *again = g_rand_new_with_seed (17);
    int *deadline = g_new (int, n);
    for (i = 0; i < n; i++)
      deadline[i] = g_rand_int_range (again, 0, DEADLINES);
    for (k = 1; k < trace.order->len; k++)
      {
        int a = g_array_index (trace.order, int, k - 1);
        int b = g_array_index (trace.order, int, k);
        g_assert_true (deadline[a] < deadline[b]
                       || (deadline[a] == deadline[b] && a < b));
      }
    g_free (deadline);
    g_rand_free (again);
  }

  for (i = 0; i < n; i++)
    afut_future_unref (sleeps[i]);
  g_free (sleeps);
  g_free (tags);
  g_array_unref (trace.order);
  g_rand_free (rand);
  afut_loop_unref (loop);
}

/* Timer handles (call_later) cancelled and rescheduled, as a timeout
 * that keeps moving does: the heap does not grow without bound. */
static void
noop (void *data)
{
  (void) data;
}

static void
test_rescheduled_handles_bounded (void)
{
  long base = live_allocs;
  AfutLoop *loop = new_loop ();
  AfutFuture *h = afut_loop_call_later (loop, 5.0, noop, NULL);
  long before = live_allocs, peak = 0;
  int i;

  for (i = 0; i < 100000; i++)
    {
      g_assert_true (afut_future_cancel (h, NULL));
      afut_future_unref (h);
      h = afut_loop_call_later (loop, 5.0 + i * 1e-6, noop, NULL);
      if (i % 1000 == 0)
        g_assert_true (afut_loop_iterate (loop, FALSE));
      if (live_allocs - before > peak)
        peak = live_allocs - before;
    }
  /* At most the cancelled handles of one turn (1000) plus a cleanup's
   * slack, never the 100000 made. */
  g_assert_cmpint (peak, <, 3000);
  afut_future_cancel (h, NULL);
  afut_future_unref (h);
  afut_loop_unref (loop);
  g_assert_cmpint (live_allocs, ==, base);
}

/* Closing a loop drops cancelled sleeps the heap still holds. */
static void
test_close_drops_cancelled (void)
{
  long before = live_allocs;
  AfutLoop *loop = new_loop ();
  int i;
  for (i = 0; i < 50; i++)
    {
      AfutFuture *s = afut_loop_sleep (loop, 3.0);
      g_assert_true (afut_future_cancel (s, NULL));
      afut_future_unref (s);
    }
  afut_loop_unref (loop);
  g_assert_cmpint (live_allocs, ==, before);
}

int
main (int argc, char **argv)
{
  g_test_init (&argc, &argv, NULL);
  {
    /* What stays allocated for the process (the error domain's quark)
     * is allocated here, before any test counts. */
    AfutLoop *loop = new_loop ();
    AfutFuture *s = afut_loop_sleep (loop, 1.0);
    afut_future_cancel (s, NULL);
    afut_future_unref (s);
    afut_loop_unref (loop);
  }
  g_test_add_func ("/timer-heap/cancelled-majority-freed-at-next-turn",
                   test_cancelled_majority_freed_at_next_turn);
  g_test_add_func ("/timer-heap/cancelled-minority-freed-at-top",
                   test_cancelled_minority_freed_at_top);
  g_test_add_func ("/timer-heap/order-kept-across-cleanups",
                   test_order_kept_across_cleanups);
  g_test_add_func ("/timer-heap/rescheduled-handles-bounded",
                   test_rescheduled_handles_bounded);
  g_test_add_func ("/timer-heap/close-drops-cancelled",
                   test_close_drops_cancelled);
  return g_test_run ();
}
