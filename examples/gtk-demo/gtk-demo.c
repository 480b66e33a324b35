/* gtk-demo.c - afut in a GTK 4 application: tasks instead of callback
 * chains.  "Start" runs four jobs at once, each a task with its own row
 * (a progress bar, a status line, a cancel button):
 *  - reading a large file in chunks with GIO futures (afut_file_read(),
 *    afut_input_stream_read(), afut_input_stream_close());
 *  - a countdown with afut_sleep(), written as a fiber: a plain C loop
 *    with its counter in a local;
 *  - number crunching on a worker thread (afut_to_thread()), reporting its
 *    progress with afut_loop_call_soon_threadsafe();
 *  - loading a settings file that is not there: it fails, and the error
 *    shows in the window.
 * The jobs run under one afut_gather_return_exceptions(): "Cancel all"
 * cancels the gather, which cancels every job still running; each job
 * catches the cancellation at its await, cleans up (closes its stream,
 * waits for its worker thread) and says so in its row.  A row's own
 * cancel button cancels that job alone.  Closing the window while jobs
 * run cancels them, and the window goes once they have cleaned up.
 * The UI never blocks: every wait is an await on GTK's main context.
 *
 * --self-test drives the window through its widgets (three rounds: a job
 * cancelled alone while the others finish or fail, "Cancel all", closing
 * the window), checks what the rows show and exits 0 or 1;
 * --screenshot FILE saves the window as a PNG after the first round.
 */

#define AFUT_IMPLEMENTATION
#define AFUT_GLIB
#include "afut.h"
#include "afut-glib.h"

#include <glib/gstdio.h>
#include <gtk/gtk.h>
#include <stdarg.h>
#include <string.h>

#define READ_CHUNK (64 * 1024)
#define FILE_SIZE (4 * 1024 * 1024)
#define PRIME_BLOCK 20000

typedef enum
{
  JOB_READ,
  JOB_COUNTDOWN,
  JOB_THREAD,
  JOB_SETTINGS,
  N_JOBS
} JobKind;

static const char *const job_titles[N_JOBS] = {
  "Read a 4 MB file",
  "Countdown",
  "Count primes (thread)",
  "Load settings",
};

/* How slowly the jobs go: watchable by default, quick for the self-test
 * (whose checks do not depend on these: see self_test()). */
typedef struct
{
  double read_pace;      /* seconds between two chunks: a slow disk */
  double tick;           /* the countdown's and the settings' step */
  int countdown;         /* steps */
  unsigned n_blocks;     /* the thread's blocks of numbers */
  gulong block_pace_us;  /* the thread's pause per block */
} Pace;

static const Pace pace_normal = { 0.03, 1.0, 10, 100, 30000 };
static const Pace pace_self_test = { 0.005, 0.05, 10, 100, 5000 };

typedef struct Demo Demo;

typedef struct
{
  Demo *demo;
  JobKind kind;
  GtkProgressBar *progress;
  GtkLabel *status;
  GtkWidget *cancel;
  AfutFuture *task; /* the running job, NULL when idle */
  char *note;       /* how the job cleaned up, once cancelled */
} Row;

struct Demo
{
  GtkApplication *app;
  AfutLoop *loop;
  const Pace *pace;
  char *dir;      /* the temporary directory */
  char *big_file; /* FILE_SIZE bytes in it */

  GtkWindow *window; /* NULL once destroyed */
  GtkWidget *start;
  GtkWidget *cancel_all;
  GtkLabel *banner;  /* errors */
  GtkLabel *summary; /* how the last run ended */
  Row rows[N_JOBS];

  AfutFuture *gather; /* the running jobs, NULL when idle */
  AfutFuture *run;    /* the task that awaits the gather */
  gboolean closing;   /* the window goes when the run ends */

  gboolean self_test;
  char *screenshot;
  int n_checks;
  int n_failed;
};

/* ---- rows ---- */

static void G_GNUC_PRINTF (2, 3)
row_set_status (Row *row, const char *format, ...)
{
  va_list args;
  char *text;

  va_start (args, format);
  text = g_strdup_vprintf (format, args);
  va_end (args);
  gtk_label_set_text (row->status, text);
  gtk_widget_set_tooltip_text (GTK_WIDGET (row->status), text);
  g_free (text);
}

static void
row_set_fraction (Row *row, double fraction)
{
  gtk_progress_bar_set_fraction (row->progress, CLAMP (fraction, 0.0, 1.0));
}

/* What the row says once the job is cancelled: "Cancelled: <note>". */
static void G_GNUC_PRINTF (2, 3)
row_set_note (Row *row, const char *format, ...)
{
  va_list args;

  g_free (row->note);
  va_start (args, format);
  row->note = g_strdup_vprintf (format, args);
  va_end (args);
}

static void
row_reset (Row *row)
{
  g_clear_pointer (&row->note, g_free);
  row_set_fraction (row, 0.0);
  row_set_status (row, "Queued");
  gtk_widget_remove_css_class (GTK_WIDGET (row->status), "error");
  gtk_widget_set_sensitive (row->cancel, TRUE);
}

static char *
format_size (goffset size)
{
  return g_format_size_full ((guint64) size, G_FORMAT_SIZE_IEC_UNITS);
}

/* ---- job 1: reading a large file in chunks, with GIO ---- */

typedef struct
{
  AfutTask task;
  Row *row;
  GFile *file;
  GInputStream *stream;
  GChecksum *checksum;
  guint8 *buffer;
  goffset size;
  goffset done;
  double pace;
  gboolean opened;
} ReadFile;

static void
read_file_finalize (AfutTask *task)
{
  ReadFile *self = (ReadFile *) task;

  g_clear_object (&self->stream);
  g_object_unref (self->file);
  g_checksum_free (self->checksum);
  g_free (self->buffer);
}

static void
read_file (AfutTask *task)
{
  ReadFile *self = (ReadFile *) task;
  gssize n;
  char *done, *size;

  AFUT_BEGIN (task);
  row_set_status (self->row, "Opening the file");
  AFUT_AWAIT_TRY (task, afut_file_read (self->file, G_PRIORITY_DEFAULT));
  if (afut_task_caught (task) == NULL)
    {
      self->stream = afut_future_steal_pointer (afut_task_awaited (task));
      self->opened = TRUE;
    }

  while (afut_task_caught (task) == NULL && self->done < self->size)
    {
      /* A GIO future: cancelling it waits for GIO's answer, so GIO is
       * done with self->buffer before this task goes on. */
      AFUT_AWAIT_TRY (task, afut_input_stream_read (self->stream, self->buffer,
                                                    READ_CHUNK,
                                                    G_PRIORITY_DEFAULT));
      if (afut_task_caught (task) != NULL)
        break;
      n = afut_future_get_int (afut_task_awaited (task));
      if (n == 0)
        break;
      g_checksum_update (self->checksum, self->buffer, (gsize) n);
      self->done += n;
      done = format_size (self->done);
      size = format_size (self->size);
      row_set_status (self->row, "%s of %s read", done, size);
      row_set_fraction (self->row, (double) self->done / (double) self->size);
      g_free (done);
      g_free (size);
      AFUT_AWAIT_TRY (task, afut_sleep (self->pace));
    }

  /* Cancelled, failed or not, the stream is closed before the task ends;
   * what was caught stays through this plain await. */
  if (self->stream != NULL)
    {
      row_set_status (self->row, "Closing the file");
      AFUT_AWAIT (task, afut_input_stream_close (self->stream,
                                                 G_PRIORITY_DEFAULT));
      g_clear_object (&self->stream);
    }
  if (afut_task_caught (task) != NULL)
    {
      if (!afut_error_is_cancelled (afut_task_caught (task)))
        ; /* a read error: it shows in the row */
      else if (!self->opened)
        row_set_note (self->row, "stopped while opening the file");
      else
        {
          done = format_size (self->done);
          row_set_note (self->row, "file closed after %s", done);
          g_free (done);
        }
      AFUT_RERAISE (task);
    }
  if (self->done != self->size)
    AFUT_THROW (task, (AfutError *) g_error_new (
                          G_IO_ERROR, G_IO_ERROR_PARTIAL_INPUT,
                          "the file ended after %" G_GOFFSET_FORMAT " bytes",
                          self->done));
  size = format_size (self->size);
  row_set_status (self->row, "Done: %s read, SHA-256 %.12s…", size,
                  g_checksum_get_string (self->checksum));
  g_free (size);
  AFUT_RETURN_INT (task, self->done);
  AFUT_END (task);
}

static AfutFuture *
read_file_new (Row *row)
{
  ReadFile init = { 0 };

  init.row = row;
  init.file = g_file_new_for_path (row->demo->big_file);
  init.checksum = g_checksum_new (G_CHECKSUM_SHA256);
  init.buffer = g_malloc (READ_CHUNK);
  init.size = FILE_SIZE;
  init.pace = row->demo->pace->read_pace;
  return afut_coro_new (row->demo->loop, read_file, sizeof init, &init,
                        "read-file", read_file_finalize);
}

/* ---- job 2: a countdown, written as a fiber ---- */

/* A fiber (issue 16): the loop, its counter and the row are plain C
 * locals that stay put across the await; the cancellation comes back from
 * afut_await_check(), the row notes where it stopped, and returning the
 * error re-raises it.  To the gather, the buttons and the window it is a
 * task like the other jobs. */
static AfutFuture *
countdown (void *data)
{
  Row *row = data;
  const int seconds = row->demo->pace->countdown;
  const double tick = row->demo->pace->tick;
  AfutError *error = NULL;
  int left;

  for (left = seconds; left > 0; left--)
    {
      row_set_status (row, "%d s left", left);
      row_set_fraction (row, (double) (seconds - left) / seconds);
      if (!afut_await_check (afut_sleep (tick), &error))
        {
          row_set_note (row, "stopped with %d s left", left);
          return afut_future_new_for_error (error); /* raise */
        }
    }
  row_set_fraction (row, 1.0);
  row_set_status (row, "Done: lift-off!");
  return afut_future_new_for_int (seconds);
}

static AfutFuture *
countdown_new (Row *row)
{
  /* A coroutine object, started by the gather with the others. */
  AfutFiberOptions options = { .name = "countdown", .lazy = true };

  return afut_fiber_new_full (row->demo->loop, &options, countdown, row,
                              NULL);
}

/* ---- job 3: counting primes on a worker thread ---- */

/* Shared by the task (loop thread), the worker thread and the progress
 * messages the worker posts to the loop: reference counted. */
typedef struct
{
  gint ref_count;
  AfutLoop *loop;
  unsigned n_blocks;
  gulong block_pace_us;
  Row *row;            /* loop thread only; NULL once the task ended */
  AfutFuture *stopped; /* loop thread only: resolved when the worker ends */
} Crunch;

static Crunch *
crunch_ref (Crunch *crunch)
{
  g_atomic_int_inc (&crunch->ref_count);
  return crunch;
}

static void
crunch_unref (gpointer data)
{
  Crunch *crunch = data;

  /* The last reference may go on the worker thread: by then `stopped`
   * was released on the loop's thread (crunch_posted). */
  if (g_atomic_int_dec_and_test (&crunch->ref_count))
    g_free (crunch);
}

typedef struct
{
  Crunch *crunch;
  unsigned n_done;
  gboolean last; /* the worker has stopped */
} CrunchMessage;

/* On the loop's thread, in the order the worker posted them. */
static void
crunch_posted (void *data)
{
  CrunchMessage *message = data;
  Crunch *crunch = message->crunch;

  if (crunch->row != NULL && !message->last)
    {
      row_set_fraction (crunch->row,
                        (double) message->n_done / crunch->n_blocks);
      row_set_status (crunch->row, "Block %u of %u", message->n_done,
                      crunch->n_blocks);
    }
  if (message->last)
    {
      if (!afut_future_is_done (crunch->stopped))
        afut_future_resolve_int (crunch->stopped, message->n_done);
      g_clear_pointer (&crunch->stopped, afut_future_unref);
    }
  crunch_unref (crunch);
  g_free (message);
}

static void
crunch_post (Crunch *crunch, unsigned n_done, gboolean last)
{
  CrunchMessage *message = g_new (CrunchMessage, 1);

  message->crunch = crunch_ref (crunch);
  message->n_done = n_done;
  message->last = last;
  afut_loop_call_soon_threadsafe (crunch->loop, crunch_posted, message);
}

static gboolean
is_prime (guint64 n)
{
  guint64 d;

  if (n < 2)
    return FALSE;
  for (d = 2; d * d <= n; d++)
    if (n % d == 0)
      return FALSE;
  return TRUE;
}

/* Blocking: runs on a worker thread. */
static gpointer
count_primes (gpointer data, GCancellable *cancellable, GError **error)
{
  Crunch *crunch = data;
  guint64 n_primes = 0, n;
  unsigned block;

  for (block = 0; block < crunch->n_blocks; block++)
    {
      if (g_cancellable_set_error_if_cancelled (cancellable, error))
        break;
      for (n = (guint64) block * PRIME_BLOCK;
           n < (guint64) (block + 1) * PRIME_BLOCK; n++)
        n_primes += is_prime (n);
      g_usleep (crunch->block_pace_us);
      crunch_post (crunch, block + 1, FALSE);
    }
  crunch_post (crunch, block, TRUE);
  if (block < crunch->n_blocks)
    return NULL;
  return g_strdup_printf ("%" G_GUINT64_FORMAT, n_primes);
}

typedef struct
{
  AfutTask task;
  Row *row;
  Crunch *crunch;
} Thread;

static void
thread_finalize (AfutTask *task)
{
  Thread *self = (Thread *) task;

  self->crunch->row = NULL;
  crunch_unref (self->crunch);
}

static void
thread_job (AfutTask *task)
{
  Thread *self = (Thread *) task;

  AFUT_BEGIN (task);
  row_set_status (self->row, "Starting a worker thread");
  AFUT_AWAIT_TRY (task, afut_to_thread (NULL, count_primes,
                                        crunch_ref (self->crunch),
                                        crunch_unref, g_free));
  if (afut_task_caught (task) != NULL)
    {
      /* The future is cancelled at once; the worker stops at its next
       * look at the GCancellable.  Wait for it, so nothing it posts
       * arrives after the task. */
      row_set_status (self->row, "Stopping the worker thread");
      AFUT_AWAIT (task, afut_future_ref (self->crunch->stopped));
      row_set_note (self->row, "worker stopped after %d of %u blocks",
                    (int) afut_future_get_int (afut_task_awaited (task)),
                    self->crunch->n_blocks);
      AFUT_RERAISE (task);
    }
  row_set_fraction (self->row, 1.0);
  row_set_status (self->row, "Done: %s primes below %u",
                  (const char *) afut_future_get_pointer (
                      afut_task_awaited (task)),
                  self->crunch->n_blocks * PRIME_BLOCK);
  AFUT_RETURN (task);
  AFUT_END (task);
}

static AfutFuture *
thread_job_new (Row *row)
{
  Thread init = { 0 };
  Crunch *crunch = g_new0 (Crunch, 1);

  crunch->ref_count = 1;
  crunch->loop = row->demo->loop;
  crunch->n_blocks = row->demo->pace->n_blocks;
  crunch->block_pace_us = row->demo->pace->block_pace_us;
  crunch->row = row;
  crunch->stopped = afut_future_new (row->demo->loop);
  init.row = row;
  init.crunch = crunch;
  return afut_coro_new (row->demo->loop, thread_job, sizeof init, &init,
                        "count-primes", thread_finalize);
}

/* ---- job 4: loading a settings file that is not there ---- */

typedef struct
{
  AfutTask task;
  Row *row;
  GFile *file;
  double tick;
  int step;
} Settings;

#define SETTINGS_STEPS 3

static void
settings_finalize (AfutTask *task)
{
  g_object_unref (((Settings *) task)->file);
}

static void
load_settings (AfutTask *task)
{
  Settings *self = (Settings *) task;

  AFUT_BEGIN (task);
  for (self->step = 1; self->step <= SETTINGS_STEPS; self->step++)
    {
      row_set_status (self->row, "Looking for the settings (%d of %d)",
                      self->step, SETTINGS_STEPS);
      row_set_fraction (self->row,
                        (double) self->step / (SETTINGS_STEPS + 1));
      AFUT_AWAIT_TRY (task, afut_sleep (self->tick));
      if (afut_task_caught (task) != NULL)
        {
          row_set_note (self->row, "gave up at step %d", self->step);
          AFUT_RERAISE (task);
        }
    }
  row_set_status (self->row, "Loading settings.json");
  AFUT_AWAIT (task, afut_file_load_contents (self->file));
  row_set_fraction (self->row, 1.0);
  row_set_status (self->row, "Done: %" G_GSIZE_FORMAT " bytes of settings",
                  g_bytes_get_size (
                    afut_future_get_pointer (afut_task_awaited (task))));
  AFUT_RETURN (task);
  AFUT_END (task);
}

static AfutFuture *
load_settings_new (Row *row)
{
  Settings init = { 0 };
  char *path = g_build_filename (row->demo->dir, "settings.json", NULL);

  init.row = row;
  init.file = g_file_new_for_path (path);
  init.tick = row->demo->pace->tick;
  g_free (path);
  return afut_coro_new (row->demo->loop, load_settings, sizeof init, &init,
                        "load-settings", settings_finalize);
}

/* ---- running the jobs ---- */

static void G_GNUC_PRINTF (2, 3)
demo_show_error (Demo *demo, const char *format, ...)
{
  va_list args;
  char *text;

  va_start (args, format);
  text = g_strdup_vprintf (format, args);
  va_end (args);
  gtk_label_set_text (demo->banner, text);
  gtk_widget_set_visible (GTK_WIDGET (demo->banner), TRUE);
  g_free (text);
}

/* A job ended, whichever way: its row says how. */
static void
job_done (AfutFuture *job, void *data)
{
  Row *row = data;
  const GError *error = afut_glib_future_get_error (job);

  if (afut_future_is_cancelled (job))
    row_set_status (row, "Cancelled: %s",
                    row->note != NULL ? row->note : "before it started");
  else if (error != NULL)
    {
      row_set_status (row, "Failed: %s", error->message);
      gtk_widget_add_css_class (GTK_WIDGET (row->status), "error");
      demo_show_error (row->demo, "%s failed: %s", job_titles[row->kind],
                       error->message);
    }
  gtk_widget_set_sensitive (row->cancel, FALSE);
  g_clear_pointer (&row->task, afut_future_unref);
}

typedef struct
{
  AfutTask task;
  Demo *demo;
} Run;

/* async def run(): results = await gather(*jobs, return_exceptions=True) */
static void
run_jobs (AfutTask *task)
{
  Run *self = (Run *) task;
  AfutFuture *gather, *item;
  unsigned n_done = 0, n_failed = 0, n_cancelled = 0;
  size_t i;
  char *text;

  AFUT_BEGIN (task);
  gtk_label_set_text (self->demo->summary, "Running…");
  AFUT_AWAIT_TRY (task, afut_future_ref (self->demo->gather));
  gather = afut_task_awaited (task);
  if (afut_future_is_cancelled (gather))
    {
      gtk_label_set_text (self->demo->summary, "All jobs cancelled");
      AFUT_RERAISE (task);
    }
  for (i = 0; i < afut_gather_get_n_items (gather); i++)
    {
      item = afut_gather_get_item (gather, i);
      if (afut_future_is_cancelled (item))
        n_cancelled++;
      else if (afut_future_get_error (item) != NULL)
        n_failed++;
      else
        n_done++;
    }
  text = g_strdup_printf ("%u done, %u failed, %u cancelled", n_done,
                          n_failed, n_cancelled);
  gtk_label_set_text (self->demo->summary, text);
  g_free (text);
  AFUT_END (task);
}

static void
run_done (AfutFuture *run, void *data)
{
  Demo *demo = data;

  (void) run;
  g_clear_pointer (&demo->run, afut_future_unref);
  g_clear_pointer (&demo->gather, afut_future_unref);
  gtk_widget_set_sensitive (demo->start, TRUE);
  gtk_widget_set_sensitive (demo->cancel_all, FALSE);
  if (demo->closing && demo->window != NULL)
    gtk_window_destroy (demo->window);
}

static void
on_start_clicked (GtkButton *button, Demo *demo)
{
  static AfutFuture *(*const job_new[N_JOBS]) (Row *) = {
    read_file_new, countdown_new, thread_job_new, load_settings_new,
  };
  AfutFuture *jobs[N_JOBS];
  int i;

  (void) button;
  if (demo->run != NULL)
    return;
  gtk_widget_set_visible (GTK_WIDGET (demo->banner), FALSE);
  for (i = 0; i < N_JOBS; i++)
    {
      row_reset (&demo->rows[i]);
      jobs[i] = demo->rows[i].task = job_new[i] (&demo->rows[i]);
      afut_future_add_done_callback (jobs[i], job_done, &demo->rows[i]);
    }
  /* Starts the jobs (coroutines) in row order; the rows keep their
   * references, for their cancel buttons. */
  demo->gather = afut_gather_return_exceptions_v (jobs, N_JOBS);
  demo->run = afut_task_new (demo->loop, run_jobs, sizeof (Run),
                             &(Run){ .demo = demo }, "run-jobs", NULL);
  afut_future_add_done_callback (demo->run, run_done, demo);
  gtk_widget_set_sensitive (demo->start, FALSE);
  gtk_widget_set_sensitive (demo->cancel_all, TRUE);
}

static void
on_cancel_all_clicked (GtkButton *button, Demo *demo)
{
  (void) button;
  if (demo->gather != NULL)
    afut_future_cancel (demo->gather, "Cancel all");
}

static void
on_cancel_clicked (GtkButton *button, Row *row)
{
  (void) button;
  if (row->task != NULL)
    afut_future_cancel (row->task, "cancelled by the user");
}

/* Closing the window cancels the jobs; it goes once they cleaned up. */
static gboolean
on_close_request (GtkWindow *window, Demo *demo)
{
  (void) window;
  if (demo->gather == NULL)
    return FALSE;
  demo->closing = TRUE;
  gtk_label_set_text (demo->summary, "Stopping the jobs before closing…");
  afut_future_cancel (demo->gather, "the window was closed");
  return TRUE;
}

static void
on_destroy (GtkWidget *window, Demo *demo)
{
  (void) window;
  demo->window = NULL;
}

/* ---- the window ---- */

static const char demo_css[] =
  ".banner { background-color: #c01c28; color: white; padding: 8px 12px;"
  "          border-radius: 6px; font-weight: bold; }"
  ".job-title { font-weight: bold; }";

static GtkWidget *
demo_build_window (Demo *demo)
{
  GtkWidget *window, *header, *box, *grid, *title, *column;
  GtkCssProvider *css;
  Row *row;
  int i;

  css = gtk_css_provider_new ();
#if GTK_CHECK_VERSION(4, 12, 0)
  gtk_css_provider_load_from_string (css, demo_css);
#else
  gtk_css_provider_load_from_data (css, demo_css, -1);
#endif
  gtk_style_context_add_provider_for_display (
      gdk_display_get_default (), GTK_STYLE_PROVIDER (css),
      GTK_STYLE_PROVIDER_PRIORITY_APPLICATION);
  g_object_unref (css);

  window = gtk_application_window_new (demo->app);
  gtk_window_set_title (GTK_WINDOW (window), "afut GTK demo");
  gtk_window_set_default_size (GTK_WINDOW (window), 720, -1);

  header = gtk_header_bar_new ();
  demo->start = gtk_button_new_with_mnemonic ("_Start");
  gtk_widget_add_css_class (demo->start, "suggested-action");
  demo->cancel_all = gtk_button_new_with_mnemonic ("Cancel _all");
  gtk_widget_add_css_class (demo->cancel_all, "destructive-action");
  gtk_widget_set_sensitive (demo->cancel_all, FALSE);
  gtk_header_bar_pack_start (GTK_HEADER_BAR (header), demo->start);
  gtk_header_bar_pack_end (GTK_HEADER_BAR (header), demo->cancel_all);
  gtk_window_set_titlebar (GTK_WINDOW (window), header);
  g_signal_connect (demo->start, "clicked", G_CALLBACK (on_start_clicked),
                    demo);
  g_signal_connect (demo->cancel_all, "clicked",
                    G_CALLBACK (on_cancel_all_clicked), demo);

  box = gtk_box_new (GTK_ORIENTATION_VERTICAL, 12);
  gtk_widget_set_margin_top (box, 18);
  gtk_widget_set_margin_bottom (box, 18);
  gtk_widget_set_margin_start (box, 18);
  gtk_widget_set_margin_end (box, 18);
  gtk_window_set_child (GTK_WINDOW (window), box);

  demo->banner = GTK_LABEL (gtk_label_new (NULL));
  gtk_label_set_wrap (demo->banner, TRUE);
  gtk_label_set_xalign (demo->banner, 0.0f);
  gtk_widget_add_css_class (GTK_WIDGET (demo->banner), "banner");
  gtk_widget_set_visible (GTK_WIDGET (demo->banner), FALSE);
  gtk_box_append (GTK_BOX (box), GTK_WIDGET (demo->banner));

  grid = gtk_grid_new ();
  gtk_grid_set_row_spacing (GTK_GRID (grid), 12);
  gtk_grid_set_column_spacing (GTK_GRID (grid), 12);
  gtk_box_append (GTK_BOX (box), grid);
  for (i = 0; i < N_JOBS; i++)
    {
      row = &demo->rows[i];
      row->demo = demo;
      row->kind = (JobKind) i;

      title = gtk_label_new (job_titles[i]);
      gtk_label_set_xalign (GTK_LABEL (title), 0.0f);
      gtk_widget_add_css_class (title, "job-title");
      gtk_grid_attach (GTK_GRID (grid), title, 0, i, 1, 1);

      column = gtk_box_new (GTK_ORIENTATION_VERTICAL, 4);
      gtk_widget_set_hexpand (column, TRUE);
      row->progress = GTK_PROGRESS_BAR (gtk_progress_bar_new ());
      row->status = GTK_LABEL (gtk_label_new ("Idle"));
      gtk_label_set_xalign (row->status, 0.0f);
      gtk_label_set_ellipsize (row->status, PANGO_ELLIPSIZE_MIDDLE);
      gtk_label_set_width_chars (row->status, 48);
      gtk_widget_add_css_class (GTK_WIDGET (row->status), "caption");
      gtk_box_append (GTK_BOX (column), GTK_WIDGET (row->progress));
      gtk_box_append (GTK_BOX (column), GTK_WIDGET (row->status));
      gtk_grid_attach (GTK_GRID (grid), column, 1, i, 1, 1);

      row->cancel = gtk_button_new_from_icon_name ("process-stop-symbolic");
      gtk_widget_set_tooltip_text (row->cancel, "Cancel this job");
      gtk_widget_set_valign (row->cancel, GTK_ALIGN_CENTER);
      gtk_widget_set_sensitive (row->cancel, FALSE);
      gtk_grid_attach (GTK_GRID (grid), row->cancel, 2, i, 1, 1);
      g_signal_connect (row->cancel, "clicked",
                        G_CALLBACK (on_cancel_clicked), row);

      /* Kept past the window's end: a job finishing while the window
       * goes still has a row to write to. */
      g_object_ref (row->progress);
      g_object_ref (row->status);
      g_object_ref (row->cancel);
    }

  demo->summary = GTK_LABEL (gtk_label_new ("Press Start to run the jobs"));
  gtk_label_set_xalign (demo->summary, 0.0f);
  gtk_widget_add_css_class (GTK_WIDGET (demo->summary), "dim-label");
  gtk_box_append (GTK_BOX (box), GTK_WIDGET (demo->summary));
  g_object_ref (demo->summary);
  g_object_ref (demo->banner);
  g_object_ref (demo->start);
  g_object_ref (demo->cancel_all);

  g_signal_connect (window, "close-request", G_CALLBACK (on_close_request),
                    demo);
  g_signal_connect (window, "destroy", G_CALLBACK (on_destroy), demo);
  return window;
}

/* ---- self-test: drives the window through its widgets ---- */

static void G_GNUC_PRINTF (3, 4)
check (Demo *demo, gboolean ok, const char *format, ...)
{
  va_list args;
  char *text;

  va_start (args, format);
  text = g_strdup_vprintf (format, args);
  va_end (args);
  demo->n_checks++;
  if (!ok)
    demo->n_failed++;
  printf ("%s %d - %s\n", ok ? "ok" : "not ok", demo->n_checks, text);
  fflush (stdout);
  g_free (text);
}

static const char *
row_text (Demo *demo, JobKind kind)
{
  return gtk_label_get_text (demo->rows[kind].status);
}

static double
row_fraction (Demo *demo, JobKind kind)
{
  return gtk_progress_bar_get_fraction (demo->rows[kind].progress);
}

static gboolean
row_says (Demo *demo, JobKind kind, const char *prefix, const char *part)
{
  const char *text = row_text (demo, kind);

  return g_str_has_prefix (text, prefix)
         && (part == NULL || strstr (text, part) != NULL);
}

/* Each job's first step changes its row from "Queued". */
static gboolean
all_started (Demo *demo)
{
  int i;

  for (i = 0; i < N_JOBS; i++)
    if (strcmp (row_text (demo, (JobKind) i), "Queued") == 0)
      return FALSE;
  return TRUE;
}

static gboolean
is_idle (Demo *demo)
{
  return gtk_widget_get_sensitive (demo->start);
}

static void
check_row (Demo *demo, JobKind kind, const char *prefix, const char *part,
           gboolean full)
{
  double fraction = row_fraction (demo, kind);

  check (demo, row_says (demo, kind, prefix, part),
         "%s: status \"%s\" (expected \"%s…%s\")", job_titles[kind],
         row_text (demo, kind), prefix, part != NULL ? part : "");
  check (demo, full ? fraction == 1.0 : fraction < 1.0,
         "%s: progress %.2f (expected %s)", job_titles[kind], fraction,
         full ? "1.00" : "below 1");
}

/* A future resolved once @widget's frame clock has ticked @n times: by
 * then the window has laid out and drawn what the labels say. */
typedef struct
{
  AfutFuture *future;
  int n;
} FrameWait;

static gboolean
frame_tick (GtkWidget *widget, GdkFrameClock *clock, gpointer data)
{
  FrameWait *wait = data;

  (void) widget;
  (void) clock;
  if (--wait->n > 0)
    return G_SOURCE_CONTINUE;
  if (!afut_future_is_done (wait->future))
    afut_future_resolve (wait->future);
  afut_future_unref (wait->future);
  g_free (wait);
  return G_SOURCE_REMOVE;
}

static AfutFuture *
wait_frames (AfutLoop *loop, GtkWidget *widget, int n)
{
  FrameWait *wait = g_new (FrameWait, 1);
  AfutFuture *future = afut_future_new (loop);

  wait->future = afut_future_ref (future);
  wait->n = n;
  gtk_widget_add_tick_callback (widget, frame_tick, wait, NULL);
  return future;
}

/* The window as GTK draws it, rendered by its own renderer to a PNG. */
static gboolean
save_screenshot (GtkWidget *window, const char *path)
{
  GdkPaintable *paintable = gtk_widget_paintable_new (window);
  GtkSnapshot *snapshot = gtk_snapshot_new ();
  GskRenderNode *node;
  GdkTexture *texture;
  graphene_rect_t bounds;
  gboolean saved = FALSE;

  gdk_paintable_snapshot (paintable, GDK_SNAPSHOT (snapshot),
                          gtk_widget_get_width (window),
                          gtk_widget_get_height (window));
  node = gtk_snapshot_free_to_node (snapshot);
  if (node != NULL)
    {
      gsk_render_node_get_bounds (node, &bounds);
      texture = gsk_renderer_render_texture (
          gtk_native_get_renderer (GTK_NATIVE (window)), node, &bounds);
      saved = gdk_texture_save_to_png (texture, path);
      g_object_unref (texture);
      gsk_render_node_unref (node);
    }
  g_object_unref (paintable);
  return saved;
}

/* A click, as the user's: the button emits "clicked".  (gtk_widget_activate
 * would animate the press and click 250 ms later.) */
static void
click (GtkWidget *button)
{
  g_signal_emit_by_name (button, "clicked");
}

typedef struct
{
  AfutTask task;
  Demo *demo;
  gint64 deadline;
  GtkLabel *kept[N_JOBS];
} SelfTest;

#define WAIT_LIMIT_US (60 * G_USEC_PER_SEC)

/* Polls @cond; @poll 0 looks again on each loop iteration, so the test
 * acts one iteration after a job reached its state, whatever the load:
 * the checks below never depend on how long a sleep really took. */
#define SELF_TEST_WAIT(task, cond, poll, what)                                \
  for (self->deadline = g_get_monotonic_time () + WAIT_LIMIT_US; !(cond);)   \
    {                                                                         \
      if (g_get_monotonic_time () > self->deadline)                           \
        {                                                                     \
          check (self->demo, FALSE, "timed out waiting until %s", what);      \
          break;                                                              \
        }                                                                     \
      AFUT_AWAIT (task, afut_sleep (poll));                                   \
    }

static void
self_test (AfutTask *task)
{
  SelfTest *self = (SelfTest *) task;
  Demo *demo = self->demo;
  int i;

  AFUT_BEGIN (task);
  AFUT_AWAIT (task, wait_frames (demo->loop, GTK_WIDGET (demo->window), 2));

  /* Round 1: one job cancelled alone; the others finish, one fails. */
  printf ("# round 1: the countdown's own cancel button\n");
  click (demo->start);
  check (demo, !is_idle (demo) && gtk_widget_get_sensitive (demo->cancel_all),
         "Start starts a run: Start greyed out, Cancel all active");
  SELF_TEST_WAIT (task, row_fraction (demo, JOB_COUNTDOWN) > 0.25, 0,
                  "the countdown reached 7 s left");
  click (demo->rows[JOB_COUNTDOWN].cancel);
  SELF_TEST_WAIT (task, is_idle (demo), 0.01, "the run ended");
  check_row (demo, JOB_READ, "Done: ", " read, SHA-256 ", TRUE);
  check_row (demo, JOB_COUNTDOWN, "Cancelled: stopped with 7 s left", NULL,
             FALSE);
  check_row (demo, JOB_THREAD, "Done: ", "primes below 2000000", TRUE);
  check_row (demo, JOB_SETTINGS, "Failed: ", "No such file", FALSE);
  check (demo, gtk_widget_has_css_class (
                   GTK_WIDGET (demo->rows[JOB_SETTINGS].status), "error"),
         "Load settings: its status is styled as an error");
  check (demo, gtk_widget_get_visible (GTK_WIDGET (demo->banner))
                   && g_str_has_prefix (gtk_label_get_text (demo->banner),
                                        "Load settings failed: "),
         "the error banner shows \"%s\"", gtk_label_get_text (demo->banner));
  check (demo, strcmp (gtk_label_get_text (demo->summary),
                       "2 done, 1 failed, 1 cancelled") == 0,
         "summary \"%s\"", gtk_label_get_text (demo->summary));
  for (i = 0; i < N_JOBS; i++)
    check (demo, !gtk_widget_get_sensitive (demo->rows[i].cancel),
           "%s: its cancel button is greyed out", job_titles[i]);
  if (demo->screenshot != NULL)
    {
      AFUT_AWAIT (task, wait_frames (demo->loop, GTK_WIDGET (demo->window),
                                     3));
      check (demo, save_screenshot (GTK_WIDGET (demo->window),
                                    demo->screenshot),
             "screenshot saved to %s", demo->screenshot);
    }

  /* Round 2: "Cancel all" as soon as every job runs. */
  printf ("# round 2: Cancel all\n");
  click (demo->start);
  check (demo, !gtk_widget_get_visible (GTK_WIDGET (demo->banner))
                   && row_says (demo, JOB_SETTINGS, "Queued", NULL)
                   && row_fraction (demo, JOB_READ) == 0.0,
         "a new run clears the banner and the rows");
  SELF_TEST_WAIT (task, all_started (demo) && row_fraction (demo, JOB_READ) > 0,
                  0, "every job started and the file is being read");
  click (demo->cancel_all);
  SELF_TEST_WAIT (task, is_idle (demo), 0.01, "the run ended");
  check_row (demo, JOB_READ, "Cancelled: file closed after", NULL, FALSE);
  check_row (demo, JOB_COUNTDOWN, "Cancelled: stopped with", NULL, FALSE);
  check_row (demo, JOB_THREAD, "Cancelled: worker stopped after", NULL,
             FALSE);
  check_row (demo, JOB_SETTINGS, "Cancelled: gave up at step", NULL, FALSE);
  check (demo, !gtk_widget_get_visible (GTK_WIDGET (demo->banner)),
         "no error banner");
  check (demo, strcmp (gtk_label_get_text (demo->summary),
                       "All jobs cancelled") == 0,
         "summary \"%s\"", gtk_label_get_text (demo->summary));

  /* Round 3: closing the window cancels the jobs, then it goes. */
  printf ("# round 3: closing the window\n");
  click (demo->start);
  SELF_TEST_WAIT (task, all_started (demo), 0, "every job started");
  for (i = 0; i < N_JOBS; i++)
    self->kept[i] = g_object_ref (demo->rows[i].status);
  gtk_window_close (demo->window);
  check (demo, demo->window != NULL && demo->closing,
         "the window stays while the jobs clean up");
  SELF_TEST_WAIT (task, demo->window == NULL, 0.01, "the window went");
  for (i = 0; i < N_JOBS; i++)
    {
      check (demo,
             g_str_has_prefix (gtk_label_get_text (self->kept[i]),
                               "Cancelled: "),
             "%s: status \"%s\" after the window closed", job_titles[i],
             gtk_label_get_text (self->kept[i]));
      g_clear_object (&self->kept[i]);
    }
  check (demo, demo->gather == NULL && demo->run == NULL,
         "nothing runs once the window went");

  printf ("%s: %d checks, %d failed\n", demo->n_failed ? "FAIL" : "PASS",
          demo->n_checks, demo->n_failed);
  g_application_release (G_APPLICATION (demo->app));
  AFUT_END (task);
}

/* ---- the application ---- */

static void
on_activate (GtkApplication *app, Demo *demo)
{
  AfutFuture *test;

  if (demo->window != NULL)
    {
      gtk_window_present (demo->window);
      return;
    }
  demo->app = app;
  demo->window = GTK_WINDOW (demo_build_window (demo));
  gtk_window_present (demo->window);
  if (demo->self_test)
    {
      /* The test ends the application, not the window it closes. */
      g_application_hold (G_APPLICATION (app));
      test = afut_task_new (demo->loop, self_test, sizeof (SelfTest),
                            &(SelfTest){ .demo = demo }, "self-test", NULL);
      afut_future_unref (test);
    }
}

static int
on_handle_local_options (GApplication *app, GVariantDict *options,
                         Demo *demo)
{
  (void) options;
  demo->pace = demo->self_test ? &pace_self_test : &pace_normal;
  if (demo->self_test)
    g_application_set_flags (app, g_application_get_flags (app)
                                      | G_APPLICATION_NON_UNIQUE);
  return -1; /* go on */
}

/* The file the first job reads: FILE_SIZE bytes of text. */
static gboolean
make_files (Demo *demo)
{
  GError *error = NULL;
  GString *text;
  guint line = 0;

  demo->dir = g_dir_make_tmp ("afut-gtk-demo-XXXXXX", &error);
  if (demo->dir == NULL)
    {
      g_printerr ("%s\n", error->message);
      g_error_free (error);
      return FALSE;
    }
  demo->big_file = g_build_filename (demo->dir, "big.txt", NULL);
  text = g_string_sized_new (FILE_SIZE + 64);
  while (text->len < FILE_SIZE)
    g_string_append_printf (text, "line %u: the quick brown fox\n", ++line);
  g_string_truncate (text, FILE_SIZE);
  if (!g_file_set_contents (demo->big_file, text->str, (gssize) text->len,
                            &error))
    {
      g_printerr ("%s\n", error->message);
      g_error_free (error);
      g_string_free (text, TRUE);
      return FALSE;
    }
  g_string_free (text, TRUE);
  return TRUE;
}

static void
demo_clear (Demo *demo)
{
  int i;

  if (demo->big_file != NULL)
    g_remove (demo->big_file);
  if (demo->dir != NULL)
    g_rmdir (demo->dir);
  g_free (demo->big_file);
  g_free (demo->dir);
  g_free (demo->screenshot);
  for (i = 0; i < N_JOBS; i++)
    {
      g_clear_object (&demo->rows[i].progress);
      g_clear_object (&demo->rows[i].status);
      g_clear_object (&demo->rows[i].cancel);
      g_free (demo->rows[i].note);
    }
  g_clear_object (&demo->summary);
  g_clear_object (&demo->banner);
  g_clear_object (&demo->start);
  g_clear_object (&demo->cancel_all);
}

int
main (int argc, char **argv)
{
  Demo demo = { 0 };
  const GOptionEntry options[] = {
    { "self-test", 0, 0, G_OPTION_ARG_NONE, &demo.self_test,
      "Run the jobs, cancel some, check the window and exit", NULL },
    { "screenshot", 0, 0, G_OPTION_ARG_FILENAME, &demo.screenshot,
      "With --self-test: save the window as a PNG", "FILE" },
    { NULL, 0, 0, 0, NULL, NULL, NULL },
  };
  GtkApplication *app;
  int status;

  if (!make_files (&demo))
    return 1;
  /* afut's loop, as one GSource on GTK's (default) main context. */
  demo.loop = afut_glib_loop_new (NULL, 0);
  afut_loop_push_thread_default (demo.loop);

  app = gtk_application_new ("org.example.AfutGtkDemo",
                             G_APPLICATION_DEFAULT_FLAGS);
  g_application_add_main_option_entries (G_APPLICATION (app), options);
  g_signal_connect (app, "handle-local-options",
                    G_CALLBACK (on_handle_local_options), &demo);
  g_signal_connect (app, "activate", G_CALLBACK (on_activate), &demo);
  status = g_application_run (G_APPLICATION (app), argc, argv);

  /* Cancels what still runs and waits for it (threads included). */
  afut_loop_pop_thread_default (demo.loop);
  afut_loop_unref (demo.loop);
  g_object_unref (app);
  if (status == 0 && demo.self_test && demo.n_failed > 0)
    status = 1;
  demo_clear (&demo);
  return status;
}
