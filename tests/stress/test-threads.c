/* test-threads.c - afut's thread-safe surface under load (issue 7):
 *
 *   one loop, many producers   8 threads complete futures of one loop
 *                              (every *_threadsafe call) and post
 *                              afut_loop_call_soon_threadsafe () into it,
 *                              10^6 operations: each arrives once, with
 *                              its value or error intact, on the loop's
 *                              thread; one thread's calls run in call
 *                              order; the loop's shutdown, held by each
 *                              producer until its last call, returns
 *                              with all of them arrived
 *   a loop per thread          4 threads each run a loop and complete
 *                              each other's futures (A to B to A, A to B
 *                              to C to A, A to B to A to B to A), tasks
 *                              awaiting them: each hop once, on the
 *                              right thread, then a clean shutdown that
 *                              frees everything
 *
 * AFUT_STRESS_OPS=N sets the number of operations of each test; without
 * it, 10^6, divided by 10 under valgrind and by 4 under
 * ThreadSanitizer (see stress_n_ops ()).
 *
 * The threads are plain pthreads and the hand-offs outside afut use
 * pthread mutexes, which ThreadSanitizer sees whatever GLib it runs
 * with.  Any afut critical or warning fails the test, from whichever
 * thread it comes.
 */
#define AFUT_IMPLEMENTATION
#include "afut.h"

#include <glib.h>

#include <pthread.h>
#include <stdio.h>
#include <string.h>

#if defined(__has_include)
#if __has_include(<valgrind/valgrind.h>)
#include <valgrind/valgrind.h>
#define STRESS_HAVE_VALGRIND_H 1
#endif
#endif

#if defined(__SANITIZE_THREAD__)
#define STRESS_TSAN 1
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define STRESS_TSAN 1
#endif
#endif

/* ---- helpers ---- */

#define DEFAULT_OPS 1000000
#define VALGRIND_DIVISOR 10
#define TSAN_DIVISOR 4

/* afut's criticals and warnings, from any thread: each test expects
 * none. */
static gint n_afut_logs; /* atomic */

static void
counting_log_func (AfutLogLevel level, const char *message, void *data)
{
  (void) data;
  g_atomic_int_inc (&n_afut_logs);
  g_printerr ("unexpected afut %s: %s\n",
              level == AFUT_LOG_CRITICAL ? "critical" : "warning", message);
}

static AfutQuark
test_domain (void)
{
  return afut_quark_from_static_string ("afut-stress-error-quark");
}

static gboolean
running_on_valgrind (void)
{
#ifdef STRESS_HAVE_VALGRIND_H
  return RUNNING_ON_VALGRIND != 0;
#else
  return FALSE;
#endif
}

/* How many operations a test does: AFUT_STRESS_OPS when set, else
 * 10^6, fewer where each operation is much slower (valgrind runs one
 * thread at a time, ThreadSanitizer checks every access), so that CI's
 * valgrind and TSan steps stay within their time. */
static guint
stress_n_ops (void)
{
  const char *env = g_getenv ("AFUT_STRESS_OPS");
  guint64 n;

  if (env != NULL && *env != '\0')
    {
      if (!g_ascii_string_to_unsigned (env, 10, 1, G_MAXINT32, &n, NULL))
        g_error ("AFUT_STRESS_OPS=%s: not a count from 1 to %d", env,
                 G_MAXINT32);
      return (guint) n;
    }
  if (running_on_valgrind ())
    return DEFAULT_OPS / VALGRIND_DIVISOR;
#ifdef STRESS_TSAN
  return DEFAULT_OPS / TSAN_DIVISOR;
#else
  return DEFAULT_OPS;
#endif
}

/* The int an operation carries: all 64 bits in use. */
static int64_t
op_int_value (guint id)
{
  guint64 bits = ((guint64) id + 1) * G_GUINT64_CONSTANT (0x9E3779B97F4A7C15);
  return (int64_t) bits;
}

/* The pointer an operation carries, freed through its destroy notify,
 * which must run on the thread of the future's loop, once. */
typedef struct
{
  guint32 id;
  guint32 check;
  pthread_t owner;
  gint *n_destroyed;           /* atomic */
  gint *n_destroyed_elsewhere; /* atomic */
} Payload;

static guint32
payload_check (guint id)
{
  return (guint32) id * 2654435761u ^ 0x5a5a5a5au;
}

static Payload *
payload_new (guint id, pthread_t owner, gint *n_destroyed,
             gint *n_destroyed_elsewhere)
{
  Payload *payload = g_new (Payload, 1);
  payload->id = id;
  payload->check = payload_check (id);
  payload->owner = owner;
  payload->n_destroyed = n_destroyed;
  payload->n_destroyed_elsewhere = n_destroyed_elsewhere;
  return payload;
}

static void
payload_free (void *data)
{
  Payload *payload = (Payload *) data;
  if (!pthread_equal (pthread_self (), payload->owner))
    g_atomic_int_inc (payload->n_destroyed_elsewhere);
  g_atomic_int_inc (payload->n_destroyed);
  g_free (payload);
}

static char *
cancel_message (char *buffer, size_t size, guint id)
{
  g_snprintf (buffer, size, "cancel %u", id);
  return buffer;
}

/* ======================================================================
 * 1. one loop, many producers
 * ====================================================================== */

#define N_PRODUCERS 8
/* Futures are made on the loop's thread, a batch at a time: a producer
 * asks for the next batch before it sends the current one. */
#define BATCH_SIZE 256

typedef enum
{
  OP_CALL,    /* afut_loop_call_soon_threadsafe () */
  OP_RESOLVE, /* afut_future_resolve_threadsafe () */
  OP_POINTER, /* afut_future_resolve_pointer_threadsafe () */
  OP_INT,     /* afut_future_resolve_int_threadsafe () */
  OP_FAIL,    /* afut_future_fail_threadsafe () */
  OP_CANCEL,  /* afut_future_cancel_threadsafe () */
  N_OP_KINDS
} OpKind;

static OpKind
op_kind (guint id)
{
  return (OpKind) (id % N_OP_KINDS);
}

typedef struct Fanin Fanin;
typedef struct Producer Producer;

/* One operation, as the loop's thread sees it. */
typedef struct
{
  Fanin *fanin;
  AfutFuture *held; /* the loop thread's reference, until its callback */
  guint32 id;
  guint16 n_runs;   /* its callback or done callback */
  guint8 producer;
} OpSlot;

typedef struct
{
  Producer *producer;
  guint first; /* op ids [first, end) */
  guint end;
  gboolean ready; /* under the producer's lock */
  AfutFuture *futures[BATCH_SIZE]; /* the producer's references */
} Batch;

struct Producer
{
  Fanin *fanin;
  guint index;
  guint first; /* op ids [first, end) */
  guint end;
  pthread_t thread;
  pthread_mutex_t lock;
  pthread_cond_t cond;
  Batch batches[2];
  guint n_failed_posts; /* the producer's, read after the join */
  /* the loop thread's */
  guint n_arrived;
  guint last_call; /* 1 + the id of the last call that ran */
  guint last_done; /* 1 + the id of the last done callback that ran */
};

struct Fanin
{
  AfutLoop *loop;
  pthread_t loop_thread;
  AfutQuark domain;
  guint n_ops;
  OpSlot *slots;
  Producer producers[N_PRODUCERS];
  guint n_arrived;
  guint n_released;
  gint n_destroyed;           /* atomic */
  gint n_destroyed_elsewhere; /* atomic */
};

static void
assert_on_loop_thread (Fanin *fanin)
{
  g_assert_true (pthread_equal (pthread_self (), fanin->loop_thread));
  g_assert_true (afut_loop_get_running () == fanin->loop);
}

/* Before anything else in an operation's callback. */
static void
op_check_first_run (OpSlot *slot)
{
  if (slot->n_runs != 0)
    g_error ("operation %u ran twice", slot->id);
}

static void
op_arrived (OpSlot *slot)
{
  Fanin *fanin = slot->fanin;
  slot->n_runs++;
  fanin->producers[slot->producer].n_arrived++;
  fanin->n_arrived++;
  g_assert_cmpuint (fanin->n_arrived, <=, fanin->n_ops);
}

static void
check_outcome (AfutFuture *future, guint id, AfutQuark domain)
{
  const AfutError *error;
  const Payload *payload;
  char expected[32];

  switch (op_kind (id))
    {
    case OP_RESOLVE:
      g_assert_cmpint (afut_future_get_state (future), ==, AFUT_FUTURE_DONE);
      g_assert_cmpint (afut_future_get_value_type (future), ==,
                       AFUT_VALUE_NONE);
      break;
    case OP_POINTER:
      g_assert_cmpint (afut_future_get_state (future), ==, AFUT_FUTURE_DONE);
      g_assert_cmpint (afut_future_get_value_type (future), ==,
                       AFUT_VALUE_POINTER);
      payload = (const Payload *) afut_future_get_pointer (future);
      g_assert_nonnull (payload);
      g_assert_cmpuint (payload->id, ==, id);
      g_assert_cmpuint (payload->check, ==, payload_check (id));
      break;
    case OP_INT:
      g_assert_cmpint (afut_future_get_state (future), ==, AFUT_FUTURE_DONE);
      g_assert_cmpint (afut_future_get_value_type (future), ==,
                       AFUT_VALUE_INT);
      g_assert_cmpint (afut_future_get_int (future), ==, op_int_value (id));
      break;
    case OP_FAIL:
      g_assert_cmpint (afut_future_get_state (future), ==,
                       AFUT_FUTURE_FAILED);
      error = afut_future_get_error (future);
      g_assert_cmpuint (error->domain, ==, domain);
      g_assert_cmpint (error->code, ==, (int) id);
      g_snprintf (expected, sizeof expected, "op %u", id);
      g_assert_cmpstr (error->message, ==, expected);
      break;
    case OP_CANCEL:
      g_assert_cmpint (afut_future_get_state (future), ==,
                       AFUT_FUTURE_CANCELLED);
      error = afut_future_get_error (future);
      g_assert_true (afut_error_is_cancelled (error));
      g_assert_cmpstr (error->message, ==,
                       cancel_message (expected, sizeof expected, id));
      break;
    case OP_CALL:
    default:
      g_assert_not_reached ();
    }
}

static void
op_done_cb (AfutFuture *future, void *data)
{
  OpSlot *slot = (OpSlot *) data;
  Fanin *fanin = slot->fanin;
  Producer *p = &fanin->producers[slot->producer];

  op_check_first_run (slot);
  assert_on_loop_thread (fanin);
  g_assert_true (future == slot->held);
  check_outcome (future, slot->id, fanin->domain);
  /* A producer's completions are call_soon_threadsafe calls, which run
   * in its call order; each queues the done callback at the back of the
   * FIFO ready queue: the done callbacks run in that order too. */
  if (p->last_done > slot->id)
    g_error ("producer %u: the done callback of operation %u ran after "
             "that of operation %u", p->index, slot->id, p->last_done - 1);
  p->last_done = slot->id + 1;
  slot->held = NULL;
  afut_future_unref (future);
  op_arrived (slot);
}

static void
op_call_cb (void *data)
{
  OpSlot *slot = (OpSlot *) data;
  Fanin *fanin = slot->fanin;
  Producer *p = &fanin->producers[slot->producer];
  OpSlot *before, *after;

  op_check_first_run (slot);
  assert_on_loop_thread (fanin);
  /* "Calls from one thread run in the order they were made." */
  if (p->last_call > slot->id)
    g_error ("producer %u: call %u ran after call %u", p->index, slot->id,
             p->last_call - 1);
  p->last_call = slot->id + 1;
  /* The completion the producer sent just before this call went through
   * call_soon_threadsafe too: the future is done by now (its done
   * callback may not have run yet). */
  if (slot->id > p->first)
    {
      before = &fanin->slots[slot->id - 1];
      g_assert_cmpint (op_kind (before->id), !=, OP_CALL);
      if (before->n_runs == 0)
        {
          g_assert_nonnull (before->held);
          if (!afut_future_is_done (before->held))
            g_error ("producer %u: call %u ran before the completion of "
                     "operation %u sent before it", p->index, slot->id,
                     before->id);
        }
    }
  /* And the one it sends next has not run (its future may not even
   * exist yet). */
  if (slot->id + 1 < p->end)
    {
      after = &fanin->slots[slot->id + 1];
      g_assert_cmpuint (after->n_runs, ==, 0);
      if (after->held != NULL && afut_future_is_done (after->held))
        g_error ("producer %u: call %u ran after the completion of "
                 "operation %u sent after it", p->index, slot->id,
                 after->id);
    }
  op_arrived (slot);
}

/* On the loop's thread: makes the futures of a batch, each with a done
 * callback and a reference for the producer. */
static void
batch_make_cb (void *data)
{
  Batch *batch = (Batch *) data;
  Producer *p = batch->producer;
  Fanin *fanin = p->fanin;
  guint id;

  assert_on_loop_thread (fanin);
  for (id = batch->first; id < batch->end; id++)
    {
      OpSlot *slot = &fanin->slots[id];
      AfutFuture *future;
      if (op_kind (id) == OP_CALL)
        {
          batch->futures[id - batch->first] = NULL;
          continue;
        }
      future = afut_future_new (fanin->loop);
      g_assert_nonnull (future);
      afut_future_add_done_callback (future, op_done_cb, slot);
      slot->held = future;
      batch->futures[id - batch->first] = afut_future_ref (future);
    }
  pthread_mutex_lock (&p->lock);
  batch->ready = TRUE;
  pthread_cond_signal (&p->cond);
  pthread_mutex_unlock (&p->lock);
}

static void
batch_request (Batch *batch, guint first, guint end)
{
  Fanin *fanin = batch->producer->fanin;
  batch->first = first;
  batch->end = end;
  if (!afut_loop_call_soon_threadsafe (fanin->loop, batch_make_cb, batch))
    g_error ("producer %u: could not ask for a batch",
             batch->producer->index);
}

static void
batch_wait (Batch *batch)
{
  Producer *p = batch->producer;
  pthread_mutex_lock (&p->lock);
  while (!batch->ready)
    pthread_cond_wait (&p->cond, &p->lock);
  batch->ready = FALSE;
  pthread_mutex_unlock (&p->lock);
}

static void
batch_send (Batch *batch)
{
  Producer *p = batch->producer;
  Fanin *fanin = p->fanin;
  char message[32];
  guint id;

  for (id = batch->first; id < batch->end; id++)
    {
      AfutFuture *future = batch->futures[id - batch->first];
      bool ok = false;
      switch (op_kind (id))
        {
        case OP_CALL:
          ok = afut_loop_call_soon_threadsafe (fanin->loop, op_call_cb,
                                               &fanin->slots[id]);
          break;
        case OP_RESOLVE:
          ok = afut_future_resolve_threadsafe (future);
          break;
        case OP_POINTER:
          ok = afut_future_resolve_pointer_threadsafe (
              future,
              payload_new (id, fanin->loop_thread, &fanin->n_destroyed,
                           &fanin->n_destroyed_elsewhere),
              payload_free);
          break;
        case OP_INT:
          ok = afut_future_resolve_int_threadsafe (future, op_int_value (id));
          break;
        case OP_FAIL:
          ok = afut_future_fail_threadsafe (
              future, afut_error_new (fanin->domain, (int) id, "op %u", id));
          break;
        case OP_CANCEL:
          ok = afut_future_cancel_threadsafe (
              future, cancel_message (message, sizeof message, id));
          break;
        case N_OP_KINDS:
        default:
          g_assert_not_reached ();
        }
      if (!ok)
        p->n_failed_posts++;
    }
}

/* On the loop's thread: a producer's last call. */
static void
producer_release_cb (void *data)
{
  Producer *p = (Producer *) data;
  Fanin *fanin = p->fanin;

  guint id;

  assert_on_loop_thread (fanin);
  /* Sent after all the others, which ran before it: the calls, and the
   * completions (whose done callbacks may still be queued). */
  for (id = p->first; id < p->end; id++)
    {
      OpSlot *slot = &fanin->slots[id];
      if (slot->n_runs == 1)
        continue;
      if (op_kind (id) == OP_CALL)
        g_error ("producer %u: its last call ran before call %u", p->index,
                 id);
      g_assert_nonnull (slot->held);
      if (!afut_future_is_done (slot->held))
        g_error ("producer %u: its last call ran before the completion of "
                 "operation %u", p->index, id);
    }
  fanin->n_released++;
  afut_loop_release (fanin->loop);
}

static void *
producer_thread (void *data)
{
  Producer *p = (Producer *) data;
  Fanin *fanin = p->fanin;
  guint first, b = 0;

  /* Thread-safe, racing the loop thread's own references. */
  afut_loop_ref (fanin->loop);
  if (p->first < p->end)
    batch_request (&p->batches[0], p->first,
                   MIN (p->end, p->first + BATCH_SIZE));
  for (first = p->first; first < p->end; first += BATCH_SIZE, b ^= 1)
    {
      guint next = first + BATCH_SIZE;
      batch_wait (&p->batches[b]);
      if (next < p->end)
        batch_request (&p->batches[b ^ 1], next,
                       MIN (p->end, next + BATCH_SIZE));
      batch_send (&p->batches[b]);
    }
  if (!afut_loop_call_soon_threadsafe (fanin->loop, producer_release_cb, p))
    g_error ("producer %u: could not post its release", p->index);
  afut_loop_unref (fanin->loop);
  return NULL;
}

/* 8 threads send 10^6 completions and calls into one loop: each arrives
 * exactly once on the loop's thread with its value or error, one
 * thread's calls run in call order, the held shutdown returns only with
 * all arrived, and every pointer value is freed once, on the loop's
 * thread. */
static void
test_one_loop_many_producers (void)
{
  Fanin *fanin = g_new0 (Fanin, 1);
  guint n = stress_n_ops (), i, p, n_pointers = 0;
  gint64 start = g_get_monotonic_time ();

  fanin->n_ops = n;
  fanin->domain = test_domain ();
  fanin->loop = afut_loop_new (AFUT_LOOP_NONE);
  g_assert_nonnull (fanin->loop);
  fanin->loop_thread = pthread_self ();
  fanin->slots = g_new0 (OpSlot, n);
  for (p = 0; p < N_PRODUCERS; p++)
    {
      Producer *producer = &fanin->producers[p];
      producer->fanin = fanin;
      producer->index = p;
      producer->first = (guint) ((guint64) n * p / N_PRODUCERS);
      producer->end = (guint) ((guint64) n * (p + 1) / N_PRODUCERS);
      producer->batches[0].producer = producer;
      producer->batches[1].producer = producer;
      pthread_mutex_init (&producer->lock, NULL);
      pthread_cond_init (&producer->cond, NULL);
      for (i = producer->first; i < producer->end; i++)
        {
          fanin->slots[i].fanin = fanin;
          fanin->slots[i].id = i;
          fanin->slots[i].producer = (guint8) p;
        }
    }

  /* Each producer's last call releases a hold: the loop cannot shut
   * down before. */
  for (p = 0; p < N_PRODUCERS; p++)
    afut_loop_hold (fanin->loop);
  for (p = 0; p < N_PRODUCERS; p++)
    g_assert_cmpint (pthread_create (&fanin->producers[p].thread, NULL,
                                     producer_thread, &fanin->producers[p]),
                     ==, 0);

  /* Runs the loop until every producer has released its hold, then
   * through the done callbacks still queued: all operations have
   * arrived by then (a lost one fails the checks rather than hanging
   * the run). */
  afut_loop_shutdown (fanin->loop);
  g_assert_cmpuint (fanin->n_released, ==, N_PRODUCERS);
  g_assert_cmpuint (fanin->n_arrived, ==, n);
  for (p = 0; p < N_PRODUCERS; p++)
    {
      Producer *producer = &fanin->producers[p];
      g_assert_cmpint (pthread_join (producer->thread, NULL), ==, 0);
      g_assert_cmpuint (producer->n_failed_posts, ==, 0);
      g_assert_cmpuint (producer->n_arrived, ==,
                        producer->end - producer->first);
    }
  /* Every thread is gone: anything queued twice would run now. */
  for (i = 0; i < 3; i++)
    g_assert_true (afut_loop_iterate (fanin->loop, FALSE));
  g_assert_cmpuint (fanin->n_arrived, ==, n);

  for (i = 0; i < n; i++)
    {
      g_assert_cmpuint (fanin->slots[i].n_runs, ==, 1);
      g_assert_null (fanin->slots[i].held);
      if (op_kind (i) == OP_POINTER)
        n_pointers++;
    }
  /* Each future went with its done callback, and its value with it. */
  g_assert_cmpint (g_atomic_int_get (&fanin->n_destroyed), ==,
                   (gint) n_pointers);
  g_assert_cmpint (g_atomic_int_get (&fanin->n_destroyed_elsewhere), ==, 0);

  afut_loop_unref (fanin->loop);
  for (p = 0; p < N_PRODUCERS; p++)
    {
      pthread_mutex_destroy (&fanin->producers[p].lock);
      pthread_cond_destroy (&fanin->producers[p].cond);
    }
  g_assert_cmpint (g_atomic_int_get (&n_afut_logs), ==, 0);
  g_test_message ("%u operations from %d threads in %.2f s", n, N_PRODUCERS,
                  (double) (g_get_monotonic_time () - start) / G_USEC_PER_SEC);
  g_free (fanin->slots);
  g_free (fanin);
}

/* ======================================================================
 * 2. a loop per thread
 * ====================================================================== */

#define N_NODES 4
/* Client tasks per loop, each with one operation in flight. */
#define N_CLIENTS 8

/* The way an operation goes, A being the client's loop. */
typedef enum
{
  ROUTE_DIRECT,    /* A -> B -> A: B resolves A's future with an int */
  ROUTE_FORWARD,   /* A -> B -> C -> A: C resolves it with a pointer */
  ROUTE_PING_PONG, /* A -> B -> A -> B -> A: a task on B awaits a future
                    * of B that A resolves, then resolves A's */
  ROUTE_FAIL,      /* A -> B -> A: B fails A's future */
  ROUTE_CANCEL,    /* A -> B -> A: B cancels A's future */
  N_ROUTES
} Route;

/* What happened to an operation, each field written on one thread. */
typedef struct
{
  guint8 served;    /* B got the request */
  guint8 forwarded; /* C got it (ROUTE_FORWARD) */
  guint8 pinged;    /* A got B's future (ROUTE_PING_PONG) */
  guint8 resumed;   /* B's task got it back, resolved (ROUTE_PING_PONG) */
  guint8 noted;     /* A got the note sent just before the outcome */
  guint8 finished;  /* A's client task got the outcome */
} OpTrace;

typedef struct Mesh Mesh;
typedef struct Node Node;

struct Node
{
  Mesh *mesh;
  guint index;
  pthread_t thread; /* main's handle */
  pthread_t self;   /* the node's own */
  AfutLoop *loop;
  AfutFuture *clients_done;
  AfutFuture *all_nodes_done;
  guint n_clients_left;
  guint n_nodes_done;
  guint n_errors;
  char first_error[256];
  gint n_destroyed;           /* atomic */
  gint n_destroyed_elsewhere; /* atomic */
};

struct Mesh
{
  guint n_ops;
  AfutQuark domain;
  OpTrace *trace;
  pthread_barrier_t loops_made;
  Node nodes[N_NODES];
};

/* Made and freed by the client, once it has the outcome. */
typedef struct
{
  Mesh *mesh;
  guint id;
  guint client;   /* A */
  guint server;   /* B */
  AfutFuture *fa; /* A's future: the reference handed to B (or C) */
  AfutFuture *fb; /* B's future: the reference handed to A */
} Request;

typedef struct
{
  AfutTask task;
  Node *node;
  guint client;
  guint id;
  Request *request;
} Client;

typedef struct
{
  AfutTask task;
  Node *node;
  Request *request;
  AfutFuture *fb;
} Server;

/* Failures on the nodes' threads are counted, not asserted there; the
 * first is kept for the message.  @expr is evaluated once, always. */
#define NODE_CHECK(node, expr)                                                \
  G_STMT_START                                                                \
  {                                                                           \
    if (G_UNLIKELY (!(expr)))                                                 \
      node_fail ((node), __LINE__, #expr);                                    \
  }                                                                           \
  G_STMT_END

static void
node_fail (Node *node, int line, const char *what)
{
  if (node->n_errors++ == 0)
    g_snprintf (node->first_error, sizeof node->first_error,
                "node %u, line %d: %s", node->index, line, what);
}

static void
node_check_thread (Node *node)
{
  NODE_CHECK (node, pthread_equal (pthread_self (), node->self));
  NODE_CHECK (node, afut_loop_get_running () == node->loop);
}

static Route
op_route (guint id)
{
  return (Route) (id / (N_NODES * N_CLIENTS) % N_ROUTES);
}

static guint
op_client_node (guint id)
{
  return id % N_NODES;
}

/* Any node but the client's. */
static guint
op_server_node (guint id)
{
  return (op_client_node (id) + 1 + id / N_NODES % (N_NODES - 1)) % N_NODES;
}

/* Neither the client's nor the server's. */
static guint
op_forward_node (guint id)
{
  guint c = op_client_node (id), s = op_server_node (id), f = s;
  do
    f = (f + 1) % N_NODES;
  while (f == c || f == s);
  return f;
}

static void
post (Node *from, guint to, AfutCallback func, void *data)
{
  NODE_CHECK (from, afut_loop_call_soon_threadsafe (
                      from->mesh->nodes[to].loop, func, data));
}


/* On A: a call the thread completing A's future makes just before:
 * "calls from one thread run in the order they were made", and the
 * completion is one of them. */
static void
note_cb (void *data)
{
  Request *request = (Request *) data;
  Node *node = &request->mesh->nodes[request->client];

  node_check_thread (node);
  NODE_CHECK (node, afut_future_get_state (request->fa)
                      == AFUT_FUTURE_PENDING);
  request->mesh->trace[request->id].noted++;
}

static void
send_note (Node *from, Request *request)
{
  post (from, request->client, note_cb, request);
}

/* On A: B's future of a ping-pong, to resolve from here. */
static void
ping_cb (void *data)
{
  Request *request = (Request *) data;
  Node *node = &request->mesh->nodes[request->client];

  node_check_thread (node);
  request->mesh->trace[request->id].pinged++;
  NODE_CHECK (node, afut_future_resolve_int_threadsafe (
                      request->fb, op_int_value (request->id)));
}

/* On B: a ping-pong's task, awaiting a future of B that A resolves. */
static void
server_step (AfutTask *task)
{
  Server *self = (Server *) task;
  Node *node = self->node;
  Request *request = self->request;

  AFUT_BEGIN (task);
  self->fb = afut_future_new (node->loop);
  request->fb = afut_future_ref (self->fb);
  post (node, request->client, ping_cb, request);
  AFUT_AWAIT (task, self->fb);
  node_check_thread (node);
  NODE_CHECK (node, afut_future_get_int (afut_task_awaited (task))
                      == op_int_value (request->id));
  node->mesh->trace[request->id].resumed++;
  send_note (node, request);
  NODE_CHECK (node, afut_future_resolve_int_threadsafe (
                      request->fa, ~op_int_value (request->id)));
  AFUT_END (task);
}

/* On C: resolves A's future with a pointer, freed on A's thread. */
static void
forward_cb (void *data)
{
  Request *request = (Request *) data;
  Mesh *mesh = request->mesh;
  Node *node = &mesh->nodes[op_forward_node (request->id)];
  Node *client = &mesh->nodes[request->client];

  node_check_thread (node);
  mesh->trace[request->id].forwarded++;
  send_note (node, request);
  NODE_CHECK (node, afut_future_resolve_pointer_threadsafe (
                      request->fa,
                      payload_new (request->id, client->self,
                                   &client->n_destroyed,
                                   &client->n_destroyed_elsewhere),
                      payload_free));
}

/* On B: a client's request. */
static void
serve_cb (void *data)
{
  Request *request = (Request *) data;
  Mesh *mesh = request->mesh;
  Node *node = &mesh->nodes[request->server];
  char message[32];
  AfutFuture *task;

  node_check_thread (node);
  mesh->trace[request->id].served++;
  switch (op_route (request->id))
    {
    case ROUTE_DIRECT:
      send_note (node, request);
      NODE_CHECK (node, afut_future_resolve_int_threadsafe (
                          request->fa, op_int_value (request->id)));
      break;
    case ROUTE_FORWARD:
      post (node, op_forward_node (request->id), forward_cb, request);
      break;
    case ROUTE_PING_PONG:
      task = afut_task_new (node->loop, server_step, sizeof (Server),
                            &(Server){ .node = node, .request = request },
                            "server", NULL);
      NODE_CHECK (node, task != NULL);
      afut_future_unref (task);
      break;
    case ROUTE_FAIL:
      send_note (node, request);
      NODE_CHECK (node, afut_future_fail_threadsafe (
                          request->fa,
                          afut_error_new (mesh->domain, (int) request->id,
                                          "op %u", request->id)));
      break;
    case ROUTE_CANCEL:
      send_note (node, request);
      NODE_CHECK (node, afut_future_cancel_threadsafe (
                          request->fa, cancel_message (message, sizeof message,
                                                       request->id)));
      break;
    case N_ROUTES:
    default:
      g_assert_not_reached ();
    }
}

static void
client_check_outcome (Node *node, guint id, AfutFuture *fa,
                      const AfutError *caught)
{
  Mesh *mesh = node->mesh;
  const Payload *payload;
  char expected[32];

  switch (op_route (id))
    {
    case ROUTE_DIRECT:
      NODE_CHECK (node, caught == NULL);
      NODE_CHECK (node, afut_future_get_int (fa) == op_int_value (id));
      break;
    case ROUTE_FORWARD:
      NODE_CHECK (node, caught == NULL);
      payload = (const Payload *) afut_future_get_pointer (fa);
      NODE_CHECK (node, payload != NULL && payload->id == id
                          && payload->check == payload_check (id));
      break;
    case ROUTE_PING_PONG:
      NODE_CHECK (node, caught == NULL);
      NODE_CHECK (node, afut_future_get_int (fa) == ~op_int_value (id));
      break;
    case ROUTE_FAIL:
      g_snprintf (expected, sizeof expected, "op %u", id);
      NODE_CHECK (node, afut_future_get_state (fa) == AFUT_FUTURE_FAILED);
      NODE_CHECK (node, afut_error_matches (caught, mesh->domain, (int) id));
      NODE_CHECK (node, caught != NULL
                          && strcmp (caught->message, expected) == 0);
      break;
    case ROUTE_CANCEL:
      cancel_message (expected, sizeof expected, id);
      NODE_CHECK (node, afut_future_get_state (fa) == AFUT_FUTURE_CANCELLED);
      NODE_CHECK (node, afut_error_is_cancelled (caught));
      NODE_CHECK (node, caught != NULL
                          && strcmp (caught->message, expected) == 0);
      break;
    case N_ROUTES:
    default:
      g_assert_not_reached ();
    }
}

/* A client task on A: its operations one after the other, each awaiting
 * a future of A that another loop's thread completes, after a note that
 * must have arrived first. */
static void
client_step (AfutTask *task)
{
  Client *self = (Client *) task;
  Node *node = self->node;
  Mesh *mesh = node->mesh;
  Request *request;
  AfutFuture *fa;
  OpTrace *trace;

  AFUT_BEGIN (task);
  for (self->id = node->index + N_NODES * self->client; self->id < mesh->n_ops;
       self->id += N_NODES * N_CLIENTS)
    {
      fa = afut_future_new (node->loop);
      request = g_new0 (Request, 1);
      request->mesh = mesh;
      request->id = self->id;
      request->client = node->index;
      request->server = op_server_node (self->id);
      request->fa = afut_future_ref (fa);
      self->request = request;
      /* The request is the other threads' until the outcome; the
       * client's own reference goes to the await. */
      post (node, request->server, serve_cb, request);
      AFUT_AWAIT_TRY (task, fa);
      node_check_thread (node);
      client_check_outcome (node, self->id, afut_task_awaited (task),
                            afut_task_caught (task));
      trace = &mesh->trace[self->id];
      NODE_CHECK (node, trace->noted == 1);
      trace->finished++;
      g_free (self->request);
    }
  AFUT_END (task);
}

static void
client_done_cb (AfutFuture *future, void *data)
{
  Node *node = (Node *) data;
  node_check_thread (node);
  NODE_CHECK (node, afut_future_get_state (future) == AFUT_FUTURE_DONE);
  NODE_CHECK (node, node->n_clients_left > 0);
  if (--node->n_clients_left == 0)
    NODE_CHECK (node, afut_future_resolve (node->clients_done));
}

/* On each node, once from every node (itself included), when that
 * node's clients are all done.  Once all have come, no more work will:
 * every operation of every client is over.  The sender's reference on
 * this loop comes along and is dropped here. */
static void
node_done_cb (void *data)
{
  Node *node = (Node *) data;

  node_check_thread (node);
  node->n_nodes_done++;
  NODE_CHECK (node, node->n_nodes_done <= N_NODES);
  if (node->n_nodes_done == N_NODES)
    NODE_CHECK (node, afut_future_resolve (node->all_nodes_done));
  afut_loop_unref (node->loop);
}

static void *
node_thread (void *data)
{
  Node *node = (Node *) data;
  Mesh *mesh = node->mesh;
  AfutFuture *clients[N_CLIENTS];
  guint c, j;

  node->self = pthread_self ();
  node->loop = afut_loop_new (AFUT_LOOP_NONE);
  NODE_CHECK (node, node->loop != NULL);
  pthread_barrier_wait (&mesh->loops_made);
  /* A reference on every loop, handed back by node_done_cb. */
  for (j = 0; j < N_NODES; j++)
    afut_loop_ref (mesh->nodes[j].loop);

  node->clients_done = afut_future_new (node->loop);
  node->all_nodes_done = afut_future_new (node->loop);
  node->n_clients_left = N_CLIENTS;
  for (c = 0; c < N_CLIENTS; c++)
    {
      clients[c] = afut_task_new (node->loop, client_step, sizeof (Client),
                                  &(Client){ .node = node, .client = c },
                                  "client", NULL);
      afut_future_add_done_callback (clients[c], client_done_cb, node);
    }
  NODE_CHECK (node, afut_loop_run_until_complete (node->loop,
                                                  node->clients_done));
  for (j = 0; j < N_NODES; j++)
    post (node, j, node_done_cb, &mesh->nodes[j]);
  /* Every node's clients are done: no more work will come to this loop,
   * and every server task here has ended. */
  NODE_CHECK (node, afut_loop_run_until_complete (node->loop,
                                                  node->all_nodes_done));
  NODE_CHECK (node, node->n_nodes_done == N_NODES);
  NODE_CHECK (node, afut_loop_get_n_tasks (node->loop) == 0);

  for (c = 0; c < N_CLIENTS; c++)
    afut_future_unref (clients[c]);
  afut_future_unref (node->clients_done);
  afut_future_unref (node->all_nodes_done);
  /* The last reference: closes the loop and frees it. */
  afut_loop_unref (node->loop);
  return NULL;
}

/* 4 threads, each running its own loop, complete each other's futures
 * through the _threadsafe calls (A to B to A, A to B to C to A, and a
 * task on B awaiting a future of B resolved from A): every hop of every
 * operation happens once, on the right thread, values and errors arrive
 * intact, a call made just before a completion runs before it, and each
 * loop shuts down with nothing left. */
static void
test_loop_per_thread (void)
{
  Mesh *mesh = g_new0 (Mesh, 1);
  guint n = stress_n_ops (), i, j, expected_pointers[N_NODES] = { 0 };
  gint64 start = g_get_monotonic_time ();

  mesh->n_ops = n;
  mesh->domain = test_domain ();
  mesh->trace = g_new0 (OpTrace, n);
  g_assert_cmpint (pthread_barrier_init (&mesh->loops_made, NULL, N_NODES),
                   ==, 0);
  for (j = 0; j < N_NODES; j++)
    {
      mesh->nodes[j].mesh = mesh;
      mesh->nodes[j].index = j;
    }
  for (j = 0; j < N_NODES; j++)
    g_assert_cmpint (pthread_create (&mesh->nodes[j].thread, NULL,
                                     node_thread, &mesh->nodes[j]),
                     ==, 0);
  for (j = 0; j < N_NODES; j++)
    g_assert_cmpint (pthread_join (mesh->nodes[j].thread, NULL), ==, 0);

  for (j = 0; j < N_NODES; j++)
    {
      g_assert_cmpstr (mesh->nodes[j].first_error, ==, "");
      g_assert_cmpuint (mesh->nodes[j].n_errors, ==, 0);
    }
  for (i = 0; i < n; i++)
    {
      const OpTrace *t = &mesh->trace[i];
      Route route = op_route (i);
      g_assert_cmpuint (t->served, ==, 1);
      g_assert_cmpuint (t->forwarded, ==, route == ROUTE_FORWARD);
      g_assert_cmpuint (t->pinged, ==, route == ROUTE_PING_PONG);
      g_assert_cmpuint (t->resumed, ==, route == ROUTE_PING_PONG);
      g_assert_cmpuint (t->noted, ==, 1);
      g_assert_cmpuint (t->finished, ==, 1);
      if (route == ROUTE_FORWARD)
        expected_pointers[op_client_node (i)]++;
    }
  for (j = 0; j < N_NODES; j++)
    {
      g_assert_cmpint (g_atomic_int_get (&mesh->nodes[j].n_destroyed), ==,
                       (gint) expected_pointers[j]);
      g_assert_cmpint (
          g_atomic_int_get (&mesh->nodes[j].n_destroyed_elsewhere), ==, 0);
    }

  g_assert_cmpint (g_atomic_int_get (&n_afut_logs), ==, 0);
  pthread_barrier_destroy (&mesh->loops_made);
  g_test_message ("%u operations across %d loops in %.2f s", n, N_NODES,
                  (double) (g_get_monotonic_time () - start) / G_USEC_PER_SEC);
  g_free (mesh->trace);
  g_free (mesh);
}

int
main (int argc, char **argv)
{
  g_test_init (&argc, &argv, NULL);
  afut_set_log_func (counting_log_func, NULL);

  g_test_add_func ("/stress/threads/one-loop-many-producers",
                   test_one_loop_many_producers);
  g_test_add_func ("/stress/threads/loop-per-thread",
                   test_loop_per_thread);

  return g_test_run ();
}
