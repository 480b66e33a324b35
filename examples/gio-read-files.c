/* gio-read-files.c - GIO's async calls as afut futures:
 *  - several files read at once with g_file_load_contents_async(): each
 *    call is given a future's GCancellable and afut_gio_ready() as its
 *    callback; the task awaits the future and calls
 *    g_file_load_contents_finish() on the GAsyncResult it resolves with;
 *  - afut_gather_return_exceptions() collects the reads: one slot per
 *    read, in input order whatever order they finished in, each a value
 *    or an error;
 *  - a missing file fails its task with GIO's own GError
 *    (G_IO_ERROR_NOT_FOUND), printed as domain, code and message;
 *  - a read that would never finish (a FIFO nobody writes to) is cancelled
 *    by a timeout: a task that sleeps, then calls afut_future_cancel().
 *    Cancelling the future cancels its GCancellable, so GIO stops too.
 * The files live in a fresh directory under g_get_tmp_dir(), removed at
 * the end.
 */

#define AFUT_IMPLEMENTATION
#define AFUT_GLIB
#include "afut.h"
#include "afut-glib.h"

#include <errno.h>
#include <fcntl.h>
#include <gio/gunixinputstream.h>
#include <glib/gstdio.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define TIMEOUT 0.5 /* seconds */

static const struct
{
  const char *name;
  const char *contents; /* NULL: not created */
} regular_files[] = {
  { "alpha.txt", "Alpha: the first file.\n" },
  { "beta.txt", "Beta: the second file,\nover two lines.\n" },
  { "missing.txt", NULL },
  { "gamma.txt", "Gamma: the last one.\n" },
};

#define FIFO_NAME "slow.fifo"

/* ---- reading a file: g_file_load_contents_async() ---- */

typedef struct
{
  AfutTask task;
  GFile *file;
} LoadFile;

static void
load_file_finalize (AfutTask *task)
{
  g_object_unref (((LoadFile *) task)->file);
}

/* async def load_file(file): return the file's contents as a GBytes */
static void
load_file (AfutTask *task)
{
  LoadFile *self = (LoadFile *) task;
  AfutFuture *op;
  GAsyncResult *result;
  GError *error = NULL;
  char *contents;
  gsize length;

  AFUT_BEGIN (task);
  printf ("%s: loading\n", afut_task_get_name (task));
  op = afut_gio_future_new (NULL);
  g_file_load_contents_async (self->file,
                              afut_glib_future_get_cancellable (op),
                              afut_gio_ready, afut_future_ref (op));
  AFUT_AWAIT (task, op);
  result = afut_future_get_pointer (afut_task_awaited (task));
  if (!g_file_load_contents_finish (self->file, result, &contents, &length,
                                    NULL, &error))
    AFUT_THROW (task, afut_glib_error_from_gerror (error));
  AFUT_RETURN_POINTER (task, g_bytes_new_take (contents, length),
                       (AfutDestroyNotify) g_bytes_unref);
  AFUT_END (task);
}

/* load_file(dir / name), as a coroutine object named after the file */
static AfutFuture *
load_file_coro (const char *dir, const char *name)
{
  LoadFile init = { 0 };
  char *path = g_build_filename (dir, name, NULL);

  init.file = g_file_new_for_path (path);
  g_free (path);
  return afut_coro_new (NULL, load_file, sizeof init, &init, name,
                        load_file_finalize);
}

/* ---- reading a FIFO: a read that waits until it is cancelled ---- */

typedef struct
{
  AfutTask task;
  char *path;
  int writer; /* held open, never written to: with no writer at all, a
               * FIFO reads as the end of the file */
  GInputStream *stream;
  char buffer[256];
} ReadFifo;

static void
read_fifo_finalize (AfutTask *task)
{
  ReadFifo *self = (ReadFifo *) task;

  g_clear_object (&self->stream);
  if (self->writer >= 0)
    close (self->writer);
  g_free (self->path);
}

static AfutError *
error_from_errno (int errsv, const char *what, const char *path)
{
  return (AfutError *) g_error_new (G_IO_ERROR, g_io_error_from_errno (errsv),
                                    "%s %s: %s", what, path,
                                    g_strerror (errsv));
}

/* async def read_fifo(path): read what comes, as a GBytes */
static void
read_fifo (AfutTask *task)
{
  ReadFifo *self = (ReadFifo *) task;
  AfutFuture *op;
  GAsyncResult *result;
  GError *error = NULL;
  gssize n;
  int fd;

  AFUT_BEGIN (task);
  printf ("%s: reading\n", afut_task_get_name (task));
  /* Both ends open without blocking: a plain open() of a FIFO waits for
   * its other end (g_file_read_async() would block a GIO worker thread in
   * open() for good, out of the reach of its GCancellable). */
  fd = open (self->path, O_RDONLY | O_NONBLOCK | O_CLOEXEC);
  if (fd < 0)
    AFUT_THROW (task, error_from_errno (errno, "cannot open", self->path));
  self->stream = g_unix_input_stream_new (fd, TRUE);
  self->writer = open (self->path, O_WRONLY | O_NONBLOCK | O_CLOEXEC);
  if (self->writer < 0)
    AFUT_THROW (task, error_from_errno (errno, "cannot open", self->path));

  /* A GIO future: cancelling it asks GIO to stop and waits for GIO's
   * answer, so the call is done with self->buffer before this task goes
   * on (the answer is G_IO_ERROR_CANCELLED, from the _finish below). */
  op = afut_gio_future_new (NULL);
  g_input_stream_read_async (self->stream, self->buffer, sizeof self->buffer,
                             G_PRIORITY_DEFAULT,
                             afut_glib_future_get_cancellable (op),
                             afut_gio_ready, afut_future_ref (op));
  AFUT_AWAIT (task, op);
  result = afut_future_get_pointer (afut_task_awaited (task));
  n = g_input_stream_read_finish (self->stream, result, &error);
  if (n < 0)
    AFUT_THROW (task, afut_glib_error_from_gerror (error));
  AFUT_RETURN_POINTER (task, g_bytes_new (self->buffer, (gsize) n),
                       (AfutDestroyNotify) g_bytes_unref);
  AFUT_END (task);
}

static AfutFuture *
read_fifo_coro (const char *dir, const char *name)
{
  ReadFifo init = { 0 };

  init.path = g_build_filename (dir, name, NULL);
  init.writer = -1;
  return afut_coro_new (NULL, read_fifo, sizeof init, &init, name,
                        read_fifo_finalize);
}

/* ---- the timeout ---- */

typedef struct
{
  AfutTask task;
  AfutFuture *target; /* borrowed: main outlives this task */
  double seconds;
} Timeout;

/* afut has no wait_for() yet: sleep, then cancel what is still running. */
static void
timeout (AfutTask *task)
{
  Timeout *self = (Timeout *) task;
  char *message;

  AFUT_BEGIN (task);
  AFUT_AWAIT (task, afut_sleep (self->seconds));
  if (!afut_future_is_done (self->target))
    {
      printf ("timeout: %s still running after %g s, cancelling it\n",
              afut_task_get_name (AFUT_TASK (self->target)), self->seconds);
      message = g_strdup_printf ("timed out after %g s", self->seconds);
      afut_future_cancel (self->target, message);
      g_free (message);
    }
  AFUT_END (task);
}

/* ---- main ---- */

typedef struct
{
  AfutTask task;
  const char *dir;
  AfutFuture *slow;
  AfutFuture *timeout;
} Main;

/* GIO's messages name the file by its path: print the temporary
 * directory's part of it as <tmpdir>, so the output is the same on every
 * run. */
static void
print_message (const char *message, const char *dir)
{
  const char *at = strstr (message, dir);

  if (at == NULL)
    printf ("%s", message);
  else
    printf ("%.*s<tmpdir>%s", (int) (at - message), message,
            at + strlen (dir));
}

static void
print_slot (AfutFuture *slot, const char *dir)
{
  const char *name = afut_task_get_name (AFUT_TASK (slot));
  const GError *error = (const GError *) afut_future_get_error (slot);
  GBytes *bytes;
  char *text, *escaped;

  if (error == NULL)
    {
      bytes = afut_future_get_pointer (slot);
      text = g_strndup (g_bytes_get_data (bytes, NULL),
                        g_bytes_get_size (bytes));
      escaped = g_strescape (text, NULL);
      printf ("  %s: %zu bytes: \"%s\"\n", name, g_bytes_get_size (bytes),
              escaped);
      g_free (escaped);
      g_free (text);
    }
  else if (afut_error_is_cancelled ((const AfutError *) error))
    printf ("  %s: cancelled: %s\n", name, error->message);
  else
    {
      GEnumClass *codes = g_type_class_ref (G_TYPE_IO_ERROR_ENUM);
      GEnumValue *code = error->domain == G_IO_ERROR
                             ? g_enum_get_value (codes, error->code)
                             : NULL;

      printf ("  %s: error: %s %s (%d): ", name,
              g_quark_to_string (error->domain),
              code != NULL ? code->value_nick : "?", error->code);
      print_message (error->message, dir);
      printf ("\n");
      g_type_class_unref (codes);
    }
}

static void
amain (AfutTask *task)
{
  Main *self = (Main *) task;
  AfutFuture *reads;
  size_t i;

  AFUT_BEGIN (task);
  printf ("== reading %zu files at once ==\n",
          G_N_ELEMENTS (regular_files) + 1);
  /* The timeout covers the FIFO only.  Under AFUT_CLOCK=virtual (the
   * test suite's clock) time jumps to the next timer whenever the loop
   * has nothing to run, however long GIO's threads take: a timeout on
   * every read would cancel quick reads there too. */
  self->slow = read_fifo_coro (self->dir, FIFO_NAME);
  self->timeout = AFUT_SPAWN (Timeout, timeout, .target = self->slow,
                              .seconds = TIMEOUT);
  AFUT_AWAIT (task, afut_gather_return_exceptions (
                        load_file_coro (self->dir, regular_files[0].name),
                        load_file_coro (self->dir, regular_files[1].name),
                        load_file_coro (self->dir, regular_files[2].name),
                        afut_future_ref (self->slow),
                        load_file_coro (self->dir, regular_files[3].name),
                        NULL));
  reads = afut_task_awaited (task);
  printf ("== results, in input order ==\n");
  for (i = 0; i < afut_gather_get_n_items (reads); i++)
    print_slot (afut_gather_get_item (reads, i), self->dir);

  /* Everything finished: the timeout goes (a no-op here, as it fired). */
  afut_future_cancel (self->timeout, NULL);
  AFUT_AWAIT_TRY (task, self->timeout);
  self->timeout = NULL;
  g_clear_pointer (&self->slow, afut_future_unref);
  AFUT_END (task);
}

/* ---- the files ---- */

static char *
make_files (void)
{
  GError *error = NULL;
  char *dir = g_dir_make_tmp ("afut-gio-read-files-XXXXXX", &error);
  char *path;
  size_t i;

  if (dir == NULL)
    {
      g_printerr ("%s\n", error->message);
      g_error_free (error);
      return NULL;
    }
  for (i = 0; i < G_N_ELEMENTS (regular_files); i++)
    {
      if (regular_files[i].contents == NULL)
        continue;
      path = g_build_filename (dir, regular_files[i].name, NULL);
      if (!g_file_set_contents (path, regular_files[i].contents, -1, &error))
        {
          g_printerr ("%s\n", error->message);
          g_clear_error (&error);
        }
      g_free (path);
    }
  path = g_build_filename (dir, FIFO_NAME, NULL);
  if (mkfifo (path, 0600) < 0)
    g_printerr ("mkfifo %s: %s\n", path, g_strerror (errno));
  g_free (path);
  return dir;
}

static void
remove_files (const char *dir)
{
  char *path;
  size_t i;

  for (i = 0; i < G_N_ELEMENTS (regular_files); i++)
    {
      path = g_build_filename (dir, regular_files[i].name, NULL);
      g_remove (path); /* missing.txt is not there: that is fine */
      g_free (path);
    }
  path = g_build_filename (dir, FIFO_NAME, NULL);
  g_remove (path);
  g_free (path);
  if (g_rmdir (dir) < 0)
    g_printerr ("cannot remove %s: %s\n", dir, g_strerror (errno));
}

int
main (void)
{
  char *dir = make_files ();
  int status;

  if (dir == NULL)
    return 1;
  status = AFUT_RUN (Main, amain, .dir = dir);
  remove_files (dir);
  g_free (dir);
  return status;
}
