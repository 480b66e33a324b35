/* to-thread.c - blocking work on GLib's thread pool, with afut_to_thread()
 * (asyncio.to_thread):
 *  - a slow checksum runs on a worker thread while a ticker task keeps
 *    running on the loop: the loop stays responsive;
 *  - a gather of several afut_to_thread() calls: they run at once on the
 *    pool, and the results come in input order;
 *  - a function that fails sets a GError: the awaiting task catches it;
 *  - cancelling the future cancels the GCancellable the function is given:
 *    it notices between two chunks and stops early.  A function reports
 *    how far it got through futures of its own, resolved from its thread
 *    with afut_future_resolve_*_threadsafe().
 * Only what happens in a fixed order is printed: the ticker's count is
 * checked, not shown.
 */

#define AFUT_IMPLEMENTATION
#define AFUT_GLIB
#include "afut.h"
#include "afut-glib.h"

#include <stdio.h>
#include <string.h>

#define CHUNK_SIZE 4096
#define CHUNK_DELAY_US 5000 /* each chunk comes from a slow disk */
#define TICK 0.005          /* seconds */

/* This program's own error domain. */
#define CHECKSUM_ERROR (g_quark_from_static_string ("checksum-error"))
enum
{
  CHECKSUM_ERROR_MISMATCH = 1
};

/* "NAME: line 1\nNAME: line 2\n..." up to @size bytes */
static GBytes *
make_data (const char *name, gsize size)
{
  GString *text = g_string_sized_new (size + 64);
  unsigned line = 1;

  while (text->len < size)
    g_string_append_printf (text, "%s: line %u\n", name, line++);
  g_string_truncate (text, size);
  return g_string_free_to_bytes (text);
}

/* ---- the blocking function ---- */

typedef struct
{
  char *name;
  GBytes *data;
  char *expected;      /* (nullable) the SHA-256 the data must have */
  AfutFuture *started; /* (nullable) resolved as the work starts */
  AfutFuture *stopped; /* (nullable) resolved with the chunks done */
} Job;

static Job *
job_new (const char *name, gsize size, const char *expected)
{
  Job *job = g_new0 (Job, 1);

  job->name = g_strdup (name);
  job->data = make_data (name, size);
  job->expected = g_strdup (expected);
  return job;
}

/* Runs on the worker thread, once the function returned. */
static void
job_free (gpointer data)
{
  Job *job = data;

  g_free (job->name);
  g_bytes_unref (job->data);
  g_free (job->expected);
  g_free (job);
}

/* def checksum(job): the SHA-256 of job's data, read chunk by chunk.
 * Blocking: it runs on a worker thread, never on the loop's. */
static gpointer
checksum (gpointer data, GCancellable *cancellable, GError **error)
{
  Job *job = data;
  GChecksum *sha256 = g_checksum_new (G_CHECKSUM_SHA256);
  gsize size, offset;
  const guchar *bytes = g_bytes_get_data (job->data, &size);
  int64_t n_chunks = 0;
  char *digest = NULL;

  /* From another thread, only the _threadsafe calls; each is handed the
   * future's reference the job holds. */
  if (job->started != NULL)
    afut_future_resolve_threadsafe (job->started);
  for (offset = 0; offset < size; offset += CHUNK_SIZE)
    {
      if (g_cancellable_set_error_if_cancelled (cancellable, error))
        break;
      g_usleep (CHUNK_DELAY_US);
      g_checksum_update (sha256, bytes + offset,
                         MIN (CHUNK_SIZE, size - offset));
      n_chunks++;
    }
  if (job->stopped != NULL)
    afut_future_resolve_int_threadsafe (job->stopped, n_chunks);

  if (offset >= size)
    {
      digest = g_strdup (g_checksum_get_string (sha256));
      if (job->expected != NULL && strcmp (digest, job->expected) != 0)
        {
          g_set_error (error, CHECKSUM_ERROR, CHECKSUM_ERROR_MISMATCH,
                       "%s: expected SHA-256 %.16s..., got %.16s...",
                       job->name, job->expected, digest);
          g_clear_pointer (&digest, g_free);
        }
    }
  g_checksum_free (sha256);
  return digest;
}

/* checksum(job) on the thread pool; the future resolves with the digest */
static AfutFuture *
checksum_to_thread (Job *job)
{
  return afut_to_thread (NULL, checksum, job, job_free, g_free);
}

/* ---- the loop stays responsive ---- */

typedef struct
{
  AfutTask task;
  unsigned *ticks;
} Ticker;

static void
ticker (AfutTask *task)
{
  Ticker *self = (Ticker *) task;

  AFUT_BEGIN (task);
  for (;;)
    {
      AFUT_AWAIT (task, afut_sleep (TICK));
      (*self->ticks)++;
    }
  AFUT_END (task);
}

typedef struct
{
  AfutTask task;
  AfutFuture *ticker;
  unsigned ticks;
} Responsive;

static void
responsive (AfutTask *task)
{
  Responsive *self = (Responsive *) task;

  AFUT_BEGIN (task);
  printf ("== a slow checksum on a worker thread, a ticker on the loop ==\n");
  self->ticker = AFUT_SPAWN (Ticker, ticker, .ticks = &self->ticks);
  /* 20 chunks of 5 ms on the thread; a tick every 5 ms on the loop */
  AFUT_AWAIT (task, checksum_to_thread (job_new ("big.log", 20 * CHUNK_SIZE,
                                                 NULL)));
  printf ("big.log: sha256 %.16s...\n",
          (const char *) afut_future_get_pointer (afut_task_awaited (task)));
  printf ("the ticker ran at least 3 times while the thread worked: %s\n",
          self->ticks >= 3 ? "yes" : "NO");

  afut_future_cancel (self->ticker, NULL);
  AFUT_AWAIT_TRY (task, self->ticker);
  self->ticker = NULL;
  AFUT_END (task);
}

/* ---- a gather of several calls ---- */

static void
gather_threads (AfutTask *task)
{
  static const char *const names[] = { "a.log", "b.log", "c.log" };
  AfutFuture *gather;
  size_t i;

  AFUT_BEGIN (task);
  printf ("== three checksums at once, on the thread pool ==\n");
  /* The longest first: they finish in another order than they started. */
  AFUT_AWAIT (task,
              afut_gather (checksum_to_thread (job_new (names[0],
                                                        12 * CHUNK_SIZE,
                                                        NULL)),
                           checksum_to_thread (job_new (names[1],
                                                        4 * CHUNK_SIZE,
                                                        NULL)),
                           checksum_to_thread (job_new (names[2],
                                                        8 * CHUNK_SIZE,
                                                        NULL)),
                           NULL));
  gather = afut_task_awaited (task);
  for (i = 0; i < afut_gather_get_n_items (gather); i++)
    printf ("%s: sha256 %.16s...\n", names[i],
            (const char *) afut_future_get_pointer (
                afut_gather_get_item (gather, i)));
  AFUT_END (task);
}

/* ---- the function fails ---- */

static void
thread_error (AfutTask *task)
{
  const GError *error;

  AFUT_BEGIN (task);
  printf ("== the function fails with a GError ==\n");
  AFUT_AWAIT_TRY (task, checksum_to_thread (job_new (
                            "c.log", 8 * CHUNK_SIZE,
                            "0000000000000000000000000000000000000000000000000"
                            "000000000000000")));
  error = (const GError *) afut_task_caught (task);
  if (error != NULL)
    printf ("caught %s %d: %s\n", g_quark_to_string (error->domain),
            error->code, error->message);
  AFUT_END (task);
}

/* ---- cancelling a call ---- */

#define CANCEL_CHUNKS 200

typedef struct
{
  AfutTask task;
  AfutFuture *call;
  AfutFuture *started;
  AfutFuture *stopped;
} CancelThread;

static void
cancel_thread (AfutTask *task)
{
  CancelThread *self = (CancelThread *) task;
  const AfutError *error;
  Job *job;

  AFUT_BEGIN (task);
  printf ("== cancelling a call: the function stops early ==\n");
  job = job_new ("huge.log", CANCEL_CHUNKS * CHUNK_SIZE, NULL);
  self->started = afut_future_new (NULL);
  self->stopped = afut_future_new (NULL);
  job->started = afut_future_ref (self->started);
  job->stopped = afut_future_ref (self->stopped);
  self->call = checksum_to_thread (job);

  AFUT_AWAIT (task, self->started);
  self->started = NULL;
  printf ("main: the checksum has started, cancelling it\n");
  afut_future_cancel (self->call, "not needed any more");
  AFUT_AWAIT_TRY (task, self->call);
  self->call = NULL;
  error = afut_task_caught (task);
  if (afut_error_is_cancelled (error))
    printf ("main: the call ended cancelled: '%s'\n", error->message);

  /* The future is done at once; the thread goes on until it looks at its
   * GCancellable. */
  AFUT_AWAIT (task, self->stopped);
  self->stopped = NULL;
  printf ("checksum: saw the cancellation and stopped early: %s\n",
          afut_future_get_int (afut_task_awaited (task)) < CANCEL_CHUNKS
              ? "yes"
              : "NO");
  AFUT_END (task);
}

static void
amain (AfutTask *task)
{
  AFUT_BEGIN (task);
  AFUT_AWAIT (task, AFUT_CORO (Responsive, responsive));
  AFUT_AWAIT (task, AFUT_CORO (AfutTask, gather_threads));
  AFUT_AWAIT (task, AFUT_CORO (AfutTask, thread_error));
  AFUT_AWAIT (task, AFUT_CORO (CancelThread, cancel_thread));
  AFUT_END (task);
}

int
main (void)
{
  return AFUT_RUN (AfutTask, amain);
}
