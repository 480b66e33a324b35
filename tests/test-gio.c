#define AFUT_IMPLEMENTATION
#define AFUT_GLIB
#include "afut.h"
#include "afut-glib.h"

/* test-gio.c - GIO calls as futures (glib-adapter/afut-glib.h, "GIO
 * futures"): files, streams, sockets, names, subprocesses, D-Bus, GObject
 * signals and properties, signal streams, AFUT_GIO() for any
 * _async/_finish pair; and the GLib conveniences (g_autoptr, typed
 * accessors).
 *
 * Each future is run three ways: it completes, it fails with GIO's error,
 * and it is cancelled while GIO works, after which the test checks that
 * GIO let go: the stream has no outstanding operation and closes, the
 * file is no longer open, the process or the listener can be used again.
 * Real GIO calls on a temporary directory, pipes, a unix socket, a
 * private D-Bus daemon (GTestDBus) and `sh`; no assertion depends on how
 * long anything takes: every wait iterates until a condition holds, with
 * a deadline only against hangs. */

#include <errno.h>
#include <fcntl.h>
#include <gio/gunixinputstream.h>
#include <gio/gunixoutputstream.h>
#include <glib/gstdio.h>
#include <signal.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* ---- harness ---- */

#define WAIT_LIMIT_US (60 * G_USEC_PER_SEC)

static GPtrArray *reports; /* what the exception handler was told */

static void
record_report (AfutLoop *loop, const AfutExceptionContext *context,
               void *data)
{
  (void) loop;
  (void) data;
  g_ptr_array_add (reports, g_strdup_printf (
                              "%s|%s", context->message,
                              context->error != NULL ? context->error->message
                                                     : "-"));
}

typedef struct
{
  GMainContext *ctx;
  AfutLoop *loop;
  char *dir;
} Env;

static void
env_init (Env *env)
{
  env->ctx = g_main_context_new ();
  g_main_context_push_thread_default (env->ctx);
  env->loop = afut_glib_loop_new (env->ctx, AFUT_LOOP_VIRTUAL_CLOCK);
  g_assert_nonnull (env->loop);
  afut_loop_set_exception_handler (env->loop, record_report, NULL);
  afut_loop_push_thread_default (env->loop);
  env->dir = g_dir_make_tmp ("afut-gio-XXXXXX", NULL);
  g_assert_nonnull (env->dir);
}

static void
remove_tree (const char *path)
{
  GDir *dir = g_dir_open (path, 0, NULL);
  const char *name;
  if (dir != NULL)
    {
      while ((name = g_dir_read_name (dir)) != NULL)
        {
          char *child = g_build_filename (path, name, NULL);
          remove_tree (child);
          g_free (child);
        }
      g_dir_close (dir);
      g_rmdir (path);
    }
  else
    g_unlink (path);
}

static void
env_clear (Env *env)
{
  GString *all = g_string_new (NULL);
  guint i;
  afut_loop_pop_thread_default (env->loop);
  afut_loop_unref (env->loop);
  while (g_main_context_iteration (env->ctx, FALSE))
    ;
  g_main_context_pop_thread_default (env->ctx);
  g_main_context_unref (env->ctx);
  remove_tree (env->dir);
  g_free (env->dir);
  for (i = 0; i < reports->len; i++)
    g_string_append_printf (all, "%s; ",
                            (const char *) g_ptr_array_index (reports, i));
  g_ptr_array_set_size (reports, 0);
  g_assert_cmpstr (all->str, ==, "");
  g_string_free (all, TRUE);
}

static gboolean
tick (gpointer data)
{
  (void) data;
  return G_SOURCE_CONTINUE;
}

/* Iterates @ctx, blocking, until @cond holds; a 20 ms tick bounds each
 * block and a deadline turns a hang into a failure. */
#define ITERATE_UNTIL(ctx, cond)                                              \
  G_STMT_START                                                                \
  {                                                                           \
    GSource *tick_ = g_timeout_source_new (20);                               \
    gint64 limit_ = g_get_monotonic_time () + WAIT_LIMIT_US;                  \
    g_source_set_callback (tick_, tick, NULL, NULL);                          \
    g_source_attach (tick_, (ctx));                                           \
    while (!(cond))                                                           \
      {                                                                       \
        if (g_get_monotonic_time () > limit_)                                 \
          g_error ("%s:%d: timed out waiting for %s", __FILE__, __LINE__,     \
                   #cond);                                                    \
        g_main_context_iteration ((ctx), TRUE);                               \
      }                                                                       \
    g_source_destroy (tick_);                                                 \
    g_source_unref (tick_);                                                   \
  }                                                                           \
  G_STMT_END

static void
iterate_n (GMainContext *ctx, guint n)
{
  while (n-- > 0)
    g_main_context_iteration (ctx, FALSE);
}

/* Runs @future to its end on @env's context; returns it. */
static AfutFuture *
settle (Env *env, AfutFuture *future)
{
  g_assert_nonnull (future);
  ITERATE_UNTIL (env->ctx, afut_future_is_done (future));
  return future;
}

static void
assert_state (AfutFuture *future, AfutFutureState state)
{
  const GError *error = afut_future_is_done (future)
                          ? afut_glib_future_get_error (future)
                          : NULL;
  if (afut_future_get_state (future) != state)
    g_error ("future %s (%s), expected %s",
             afut_future_state_to_string (afut_future_get_state (future)),
             error != NULL ? error->message : "no error",
             afut_future_state_to_string (state));
}

static void
assert_failed_with (AfutFuture *future, GQuark domain, int code)
{
  assert_state (future, AFUT_FUTURE_FAILED);
  g_assert_error ((GError *) afut_glib_future_get_error (future), domain,
                  code);
}

static void
assert_cancelled (AfutFuture *future, const char *message)
{
  assert_state (future, AFUT_FUTURE_CANCELLED);
  g_assert_cmpstr (afut_glib_future_get_error (future)->message, ==, message);
}

/* Cancels @future as a task's cancel would reach it, and checks the rule
 * every GIO future keeps: it stays pending until GIO has called back. */
static void
cancel_midway (AfutFuture *future, const char *message)
{
  g_assert_false (afut_future_is_done (future));
  g_assert_true (afut_future_cancel (future, message));
  g_assert_false (afut_future_is_done (future));
}

static char *
env_path (Env *env, const char *name)
{
  return g_build_filename (env->dir, name, NULL);
}

static GFile *
env_file (Env *env, const char *name)
{
  char *path = env_path (env, name);
  GFile *file = g_file_new_for_path (path);
  g_free (path);
  return file;
}

static GFile *
env_file_with (Env *env, const char *name, const char *contents)
{
  char *path = env_path (env, name);
  GFile *file = g_file_new_for_path (path);
  g_assert_true (g_file_set_contents (path, contents, -1, NULL));
  g_free (path);
  return file;
}

/* A FIFO in the test directory: a GIO call on it blocks in GIO's worker
 * thread (in open() until a writer comes, in read() until data or the end
 * comes), which is what "cancelled midway" needs. */
static GFile *
env_fifo (Env *env, const char *name, char **path_out)
{
  char *path = env_path (env, name);
  GFile *file = g_file_new_for_path (path);
  g_assert_cmpint (mkfifo (path, 0600), ==, 0);
  *path_out = path;
  return file;
}

/* Whether this process has a file descriptor open on @path. */
static gboolean
fd_open_on (const char *path)
{
  GDir *dir = g_dir_open ("/proc/self/fd", 0, NULL);
  const char *name;
  gboolean found = FALSE;
  g_assert_nonnull (dir);
  while (!found && (name = g_dir_read_name (dir)) != NULL)
    {
      char *link = g_build_filename ("/proc/self/fd", name, NULL);
      char *target = g_file_read_link (link, NULL);
      found = target != NULL && strcmp (target, path) == 0;
      g_free (target);
      g_free (link);
    }
  g_dir_close (dir);
  return found;
}

static guint
n_entries (const char *path)
{
  GDir *dir = g_dir_open (path, 0, NULL);
  guint n = 0;
  g_assert_nonnull (dir);
  while (g_dir_read_name (dir) != NULL)
    n++;
  g_dir_close (dir);
  return n;
}

/* In a subprocess of a bad-input case: criticals are what it checks, so
 * they do not abort it. */
static void
criticals_not_fatal (void)
{
  g_log_set_always_fatal (G_LOG_FATAL_MASK);
}

/* GIO let go of @path: no fd of this process is open on it.  GIO's
 * worker thread may drop its last reference to a stream it made (and so
 * close it) just after the callback, so this waits for that, within the
 * hang deadline. */
#define assert_fd_released(env, path)                                         \
  ITERATE_UNTIL ((env)->ctx, !fd_open_on (path))

/* A pipe as GIO streams, both ends closing their fd. */
typedef struct
{
  GInputStream *in;
  GOutputStream *out;
} Pipe;

static void
pipe_open (Pipe *p)
{
  int fds[2];
  g_assert_cmpint (pipe (fds), ==, 0);
  g_assert_true (g_unix_set_fd_nonblocking (fds[0], TRUE, NULL));
  g_assert_true (g_unix_set_fd_nonblocking (fds[1], TRUE, NULL));
  p->in = g_unix_input_stream_new (fds[0], TRUE);
  p->out = g_unix_output_stream_new (fds[1], TRUE);
}

static void
pipe_clear (Pipe *p)
{
  g_clear_object (&p->in);
  g_clear_object (&p->out);
}

/* The cleanup a cancelled stream call must leave: no operation pending,
 * and the stream closes without "outstanding operation". */
static void
assert_input_free (GInputStream *stream)
{
  GError *error = NULL;
  g_assert_false (g_input_stream_has_pending (stream));
  g_assert_true (g_input_stream_close (stream, NULL, &error));
  g_assert_no_error (error);
}

static void
assert_output_free (GOutputStream *stream)
{
  GError *error = NULL;
  g_assert_false (g_output_stream_has_pending (stream));
  g_assert_true (g_output_stream_close (stream, NULL, &error));
  g_assert_no_error (error);
}

/* Awaits a future in a task, catching what it raises: for the futures
 * that are coroutines (a signal stream's next) and for AFUT_GIO. */
typedef struct
{
  AfutTask task;
  AfutFuture *target;
  AfutFuture *got; /* the awaited future, once done */
} Awaiter;

static void
awaiter_finalize (AfutTask *task)
{
  Awaiter *self = (Awaiter *) task;
  afut_future_unref (self->got);
}

static void
awaiter (AfutTask *task)
{
  Awaiter *self = (Awaiter *) task;
  AFUT_BEGIN (task);
  AFUT_AWAIT_TRY (task, self->target);
  self->got = afut_future_ref (afut_task_awaited (task));
  if (afut_task_caught (task) != NULL)
    AFUT_RERAISE (task);
  AFUT_END (task);
}

static AfutFuture *
await_in_task (AfutFuture *target)
{
  Awaiter init;
  memset (&init, 0, sizeof init);
  init.target = target;
  return afut_task_new (NULL, awaiter, sizeof init, &init, "awaiter",
                        awaiter_finalize);
}

static const char *
bytes_str (GBytes *bytes)
{
  static char buffer[256];
  gsize n = bytes != NULL ? g_bytes_get_size (bytes) : 0;
  g_assert_cmpuint (n, <, sizeof buffer);
  if (n > 0)
    memcpy (buffer, g_bytes_get_data (bytes, NULL), n);
  buffer[n] = '\0';
  return buffer;
}

/* ==================================================================== */
/* ---- files ---- */

static void
test_file_load_contents_done (void)
{
  Env env;
  GFile *file;
  AfutFuture *f;

  env_init (&env);
  file = env_file_with (&env, "a.txt", "hello, file");
  f = settle (&env, afut_file_load_contents (file));
  assert_state (f, AFUT_FUTURE_DONE);
  g_assert_cmpstr (bytes_str ((GBytes *) afut_future_get_pointer (f)), ==,
                   "hello, file");
  afut_future_unref (f);
  g_object_unref (file);
  env_clear (&env);
}

static void
test_file_load_contents_fail (void)
{
  Env env;
  GFile *file;
  AfutFuture *f;

  env_init (&env);
  file = env_file (&env, "missing.txt");
  f = settle (&env, afut_file_load_contents (file));
  assert_failed_with (f, G_IO_ERROR, G_IO_ERROR_NOT_FOUND);
  afut_future_unref (f);
  g_object_unref (file);
  env_clear (&env);
}

/* Reading a FIFO with no data: GIO's worker blocks in read().  The cancel
 * waits for it; once the writer goes the worker returns, GIO calls back,
 * and the future ends cancelled with the FIFO closed. */
static void
test_file_load_contents_cancel (void)
{
  Env env;
  GFile *file;
  char *path;
  AfutFuture *f;
  int writer;

  env_init (&env);
  file = env_fifo (&env, "fifo", &path);
  writer = open (path, O_RDWR); /* a writer: GIO's open does not block */
  g_assert_cmpint (writer, >=, 0);
  f = afut_file_load_contents (file);
  iterate_n (env.ctx, 5);
  cancel_midway (f, "stop loading");
  iterate_n (env.ctx, 5);
  close (writer); /* the end of the FIFO: GIO's read returns */
  settle (&env, f);
  assert_cancelled (f, "stop loading");
  assert_fd_released (&env, path);
  afut_future_unref (f);
  g_object_unref (file);
  g_free (path);
  env_clear (&env);
}

static void
test_file_read_done (void)
{
  Env env;
  GFile *file;
  AfutFuture *f, *r;
  GInputStream *stream;

  env_init (&env);
  file = env_file_with (&env, "a.txt", "0123456789");
  f = settle (&env, afut_file_read (file, G_PRIORITY_DEFAULT));
  assert_state (f, AFUT_FUTURE_DONE);
  stream = G_INPUT_STREAM (afut_future_steal_pointer (f));
  g_assert_true (G_IS_FILE_INPUT_STREAM (stream));
  r = settle (&env, afut_input_stream_read_bytes (stream, 4,
                                                  G_PRIORITY_DEFAULT));
  g_assert_cmpstr (bytes_str ((GBytes *) afut_future_get_pointer (r)), ==,
                   "0123");
  afut_future_unref (r);
  assert_input_free (stream);
  g_object_unref (stream);
  afut_future_unref (f);
  g_object_unref (file);
  env_clear (&env);
}

static void
test_file_read_fail (void)
{
  Env env;
  GFile *file;
  AfutFuture *f;

  env_init (&env);
  file = env_file (&env, "missing.txt");
  f = settle (&env, afut_file_read (file, G_PRIORITY_DEFAULT));
  assert_failed_with (f, G_IO_ERROR, G_IO_ERROR_NOT_FOUND);
  afut_future_unref (f);
  g_object_unref (file);
  env_clear (&env);
}

/* Opening a FIFO nobody writes to: GIO's worker blocks in open().  A
 * writer then lets it open; the stream GIO made is dropped, since the
 * future was asked to cancel. */
static void
test_file_read_cancel (void)
{
  Env env;
  GFile *file;
  char *path;
  AfutFuture *f;
  int writer;

  env_init (&env);
  file = env_fifo (&env, "fifo", &path);
  f = afut_file_read (file, G_PRIORITY_DEFAULT);
  iterate_n (env.ctx, 5);
  cancel_midway (f, NULL);
  writer = open (path, O_RDWR);
  g_assert_cmpint (writer, >=, 0);
  settle (&env, f);
  assert_cancelled (f, "");
  close (writer);
  assert_fd_released (&env, path);
  afut_future_unref (f);
  g_object_unref (file);
  g_free (path);
  env_clear (&env);
}

static void
test_file_create_done (void)
{
  Env env;
  GFile *file;
  AfutFuture *f, *w, *c;
  GOutputStream *out;
  char *contents, *path;

  env_init (&env);
  file = env_file (&env, "new.txt");
  f = settle (&env, afut_file_create (file, G_FILE_CREATE_NONE,
                                      G_PRIORITY_DEFAULT));
  assert_state (f, AFUT_FUTURE_DONE);
  out = G_OUTPUT_STREAM (afut_future_get_pointer (f));
  g_assert_true (G_IS_FILE_OUTPUT_STREAM (out));
  w = settle (&env, afut_output_stream_write_all (out, "created", 7,
                                                  G_PRIORITY_DEFAULT));
  g_assert_cmpint (afut_future_get_int (w), ==, 7);
  c = settle (&env, afut_output_stream_close (out, G_PRIORITY_DEFAULT));
  assert_state (c, AFUT_FUTURE_DONE);
  path = g_file_get_path (file);
  g_assert_true (g_file_get_contents (path, &contents, NULL, NULL));
  g_assert_cmpstr (contents, ==, "created");
  g_free (contents);
  g_free (path);
  afut_future_unref (c);
  afut_future_unref (w);
  afut_future_unref (f);
  g_object_unref (file);
  env_clear (&env);
}

static void
test_file_create_fail (void)
{
  Env env;
  GFile *file;
  AfutFuture *f;

  env_init (&env);
  file = env_file_with (&env, "there.txt", "x");
  f = settle (&env, afut_file_create (file, G_FILE_CREATE_NONE,
                                      G_PRIORITY_DEFAULT));
  assert_failed_with (f, G_IO_ERROR, G_IO_ERROR_EXISTS);
  afut_future_unref (f);
  g_object_unref (file);
  env_clear (&env);
}

/* Cancelled as it starts (GIO's worker has it): whatever the worker did,
 * the future ends cancelled and no stream is left open on the file. */
static void
test_file_create_cancel (void)
{
  Env env;
  GFile *file;
  AfutFuture *f;
  char *path;

  env_init (&env);
  file = env_file (&env, "new.txt");
  f = afut_file_create (file, G_FILE_CREATE_NONE, G_PRIORITY_DEFAULT);
  cancel_midway (f, "no file");
  settle (&env, f);
  assert_cancelled (f, "no file");
  path = g_file_get_path (file);
  assert_fd_released (&env, path);
  g_free (path);
  afut_future_unref (f);
  g_object_unref (file);
  env_clear (&env);
}

static void
test_file_replace_done (void)
{
  Env env;
  GFile *file;
  AfutFuture *f, *w, *c;
  GOutputStream *out;
  char *contents, *path;
  GBytes *bytes;

  env_init (&env);
  file = env_file_with (&env, "r.txt", "old contents");
  f = settle (&env, afut_file_replace (file, NULL, FALSE, G_FILE_CREATE_NONE,
                                       G_PRIORITY_DEFAULT));
  assert_state (f, AFUT_FUTURE_DONE);
  out = G_OUTPUT_STREAM (afut_future_get_pointer (f));
  bytes = g_bytes_new_static ("new", 3);
  w = settle (&env, afut_output_stream_write_bytes (out, bytes,
                                                    G_PRIORITY_DEFAULT));
  g_bytes_unref (bytes);
  g_assert_cmpint (afut_future_get_int (w), ==, 3);
  c = settle (&env, afut_output_stream_close (out, G_PRIORITY_DEFAULT));
  assert_state (c, AFUT_FUTURE_DONE);
  path = g_file_get_path (file);
  g_assert_true (g_file_get_contents (path, &contents, NULL, NULL));
  g_assert_cmpstr (contents, ==, "new");
  g_free (contents);
  g_free (path);
  afut_future_unref (c);
  afut_future_unref (w);
  afut_future_unref (f);
  g_object_unref (file);
  env_clear (&env);
}

static void
test_file_replace_fail (void)
{
  Env env;
  GFile *file;
  AfutFuture *f;

  env_init (&env);
  file = env_file_with (&env, "r.txt", "old contents");
  f = settle (&env, afut_file_replace (file, "no-such-etag", FALSE,
                                       G_FILE_CREATE_NONE,
                                       G_PRIORITY_DEFAULT));
  assert_failed_with (f, G_IO_ERROR, G_IO_ERROR_WRONG_ETAG);
  afut_future_unref (f);
  g_object_unref (file);
  env_clear (&env);
}

static void
test_file_replace_cancel (void)
{
  Env env;
  GFile *file;
  AfutFuture *f;
  char *path, *contents;

  env_init (&env);
  file = env_file_with (&env, "r.txt", "old contents");
  f = afut_file_replace (file, NULL, FALSE, G_FILE_CREATE_NONE,
                         G_PRIORITY_DEFAULT);
  cancel_midway (f, NULL);
  settle (&env, f);
  assert_cancelled (f, "");
  path = g_file_get_path (file);
  /* Where the future saw the stream GIO opened, it closed it cancelled:
   * the old contents stay.  GIO drops a stream it opened after the
   * cancel itself (on its worker thread, maybe just after the callback),
   * and that close replaces the file with nothing (GLib 2.74): either
   * way the temporary file goes, and no fd is left on the file. */
  ITERATE_UNTIL (env.ctx, n_entries (env.dir) == 1);
  assert_fd_released (&env, path);
  g_assert_true (g_file_get_contents (path, &contents, NULL, NULL));
  if (contents[0] != '\0')
    g_assert_cmpstr (contents, ==, "old contents");
  g_free (contents);
  g_free (path);
  afut_future_unref (f);
  g_object_unref (file);
  env_clear (&env);
}

static void
test_file_query_info_done (void)
{
  Env env;
  GFile *file;
  AfutFuture *f;
  GFileInfo *info;

  env_init (&env);
  file = env_file_with (&env, "a.txt", "12345");
  f = settle (&env, afut_file_query_info (file, "standard::size,standard::type",
                                          G_FILE_QUERY_INFO_NONE,
                                          G_PRIORITY_DEFAULT));
  assert_state (f, AFUT_FUTURE_DONE);
  info = G_FILE_INFO (afut_future_get_pointer (f));
  g_assert_cmpint (g_file_info_get_size (info), ==, 5);
  g_assert_cmpint (g_file_info_get_file_type (info), ==, G_FILE_TYPE_REGULAR);
  afut_future_unref (f);
  g_object_unref (file);
  env_clear (&env);
}

static void
test_file_query_info_fail (void)
{
  Env env;
  GFile *file;
  AfutFuture *f;

  env_init (&env);
  file = env_file (&env, "missing.txt");
  f = settle (&env, afut_file_query_info (file, "standard::size",
                                          G_FILE_QUERY_INFO_NONE,
                                          G_PRIORITY_DEFAULT));
  assert_failed_with (f, G_IO_ERROR, G_IO_ERROR_NOT_FOUND);
  afut_future_unref (f);
  g_object_unref (file);
  env_clear (&env);
}

static void
test_file_query_info_cancel (void)
{
  Env env;
  GFile *file;
  AfutFuture *f;

  env_init (&env);
  file = env_file_with (&env, "a.txt", "12345");
  f = afut_file_query_info (file, "standard::size", G_FILE_QUERY_INFO_NONE,
                            G_PRIORITY_DEFAULT);
  cancel_midway (f, "enough");
  settle (&env, f);
  assert_cancelled (f, "enough");
  afut_future_unref (f);
  g_object_unref (file);
  env_clear (&env);
}

static gint
compare_names (gconstpointer a, gconstpointer b)
{
  return g_strcmp0 (*(char *const *) a, *(char *const *) b);
}

static void
test_file_enumerate_done (void)
{
  Env env;
  GFile *dir, *a, *b, *c;
  AfutFuture *e, *batch, *last, *close_f;
  GFileEnumerator *enumerator;
  GPtrArray *infos;
  GPtrArray *names = g_ptr_array_new_with_free_func (g_free);
  guint i;

  env_init (&env);
  a = env_file_with (&env, "a", "");
  b = env_file_with (&env, "b", "");
  c = env_file_with (&env, "c", "");
  dir = g_file_new_for_path (env.dir);
  e = settle (&env, afut_file_enumerate_children (dir, "standard::name",
                                                  G_FILE_QUERY_INFO_NONE,
                                                  G_PRIORITY_DEFAULT));
  assert_state (e, AFUT_FUTURE_DONE);
  enumerator = G_FILE_ENUMERATOR (afut_future_get_pointer (e));
  batch = settle (&env, afut_file_enumerator_next_files (enumerator, 10,
                                                         G_PRIORITY_DEFAULT));
  infos = (GPtrArray *) afut_future_get_pointer (batch);
  for (i = 0; i < infos->len; i++)
    g_ptr_array_add (names, g_strdup (g_file_info_get_name (
                              G_FILE_INFO (g_ptr_array_index (infos, i)))));
  g_ptr_array_sort (names, compare_names);
  g_assert_cmpuint (names->len, ==, 3);
  g_assert_cmpstr (g_ptr_array_index (names, 0), ==, "a");
  g_assert_cmpstr (g_ptr_array_index (names, 2), ==, "c");
  last = settle (&env, afut_file_enumerator_next_files (enumerator, 10,
                                                        G_PRIORITY_DEFAULT));
  g_assert_cmpuint (((GPtrArray *) afut_future_get_pointer (last))->len, ==,
                    0);
  close_f = settle (&env, AFUT_GIO (g_file_enumerator_close_async,
                                    enumerator, G_PRIORITY_DEFAULT));
  g_assert_true (g_file_enumerator_close_finish (
    enumerator, afut_gio_future_get_result (close_f), NULL));
  afut_future_unref (close_f);
  afut_future_unref (last);
  afut_future_unref (batch);
  afut_future_unref (e);
  g_ptr_array_unref (names);
  g_object_unref (dir);
  g_object_unref (a);
  g_object_unref (b);
  g_object_unref (c);
  env_clear (&env);
}

static void
test_file_enumerate_fail (void)
{
  Env env;
  GFile *file;
  AfutFuture *f;

  env_init (&env);
  file = env_file_with (&env, "not-a-dir", "x");
  f = settle (&env, afut_file_enumerate_children (file, "standard::name",
                                                  G_FILE_QUERY_INFO_NONE,
                                                  G_PRIORITY_DEFAULT));
  assert_failed_with (f, G_IO_ERROR, G_IO_ERROR_NOT_DIRECTORY);
  afut_future_unref (f);
  g_object_unref (file);
  env_clear (&env);
}

/* Cancelled while listing: the enumerator GIO made, if any, is dropped
 * (its directory closed); a next_files cancelled leaves the enumerator
 * usable. */
static void
test_file_enumerate_cancel (void)
{
  Env env;
  GFile *dir, *a;
  AfutFuture *e, *batch, *again;
  GFileEnumerator *enumerator;

  env_init (&env);
  a = env_file_with (&env, "a", "");
  dir = g_file_new_for_path (env.dir);
  e = afut_file_enumerate_children (dir, "standard::name",
                                    G_FILE_QUERY_INFO_NONE,
                                    G_PRIORITY_DEFAULT);
  cancel_midway (e, NULL);
  settle (&env, e);
  assert_cancelled (e, "");
  assert_fd_released (&env, env.dir);
  afut_future_unref (e);

  enumerator = g_file_enumerate_children (dir, "standard::name",
                                          G_FILE_QUERY_INFO_NONE, NULL, NULL);
  batch = afut_file_enumerator_next_files (enumerator, 10,
                                           G_PRIORITY_DEFAULT);
  cancel_midway (batch, NULL);
  settle (&env, batch);
  assert_cancelled (batch, "");
  g_assert_false (g_file_enumerator_has_pending (enumerator));
  again = settle (&env, afut_file_enumerator_next_files (enumerator, 10,
                                                         G_PRIORITY_DEFAULT));
  assert_state (again, AFUT_FUTURE_DONE);
  g_assert_true (g_file_enumerator_close (enumerator, NULL, NULL));
  afut_future_unref (again);
  afut_future_unref (batch);
  g_object_unref (enumerator);
  g_object_unref (dir);
  g_object_unref (a);
  env_clear (&env);
}

static void
test_file_delete (void)
{
  Env env;
  GFile *file, *missing, *other;
  AfutFuture *f;

  env_init (&env);
  file = env_file_with (&env, "doomed", "x");
  f = settle (&env, afut_file_delete (file, G_PRIORITY_DEFAULT));
  assert_state (f, AFUT_FUTURE_DONE);
  g_assert_false (g_file_query_exists (file, NULL));
  afut_future_unref (f);

  missing = env_file (&env, "missing");
  f = settle (&env, afut_file_delete (missing, G_PRIORITY_DEFAULT));
  assert_failed_with (f, G_IO_ERROR, G_IO_ERROR_NOT_FOUND);
  afut_future_unref (f);

  other = env_file_with (&env, "other", "x");
  f = afut_file_delete (other, G_PRIORITY_DEFAULT);
  cancel_midway (f, "keep it");
  settle (&env, f);
  assert_cancelled (f, "keep it");
  afut_future_unref (f);

  g_object_unref (other);
  g_object_unref (missing);
  g_object_unref (file);
  env_clear (&env);
}

static void
test_file_make_directory (void)
{
  Env env;
  GFile *sub, *other;
  AfutFuture *f;

  env_init (&env);
  sub = env_file (&env, "sub");
  f = settle (&env, afut_file_make_directory (sub, G_PRIORITY_DEFAULT));
  assert_state (f, AFUT_FUTURE_DONE);
  g_assert_cmpint (g_file_query_file_type (sub, G_FILE_QUERY_INFO_NONE, NULL),
                   ==, G_FILE_TYPE_DIRECTORY);
  afut_future_unref (f);

  f = settle (&env, afut_file_make_directory (sub, G_PRIORITY_DEFAULT));
  assert_failed_with (f, G_IO_ERROR, G_IO_ERROR_EXISTS);
  afut_future_unref (f);

  other = env_file (&env, "other");
  f = afut_file_make_directory (other, G_PRIORITY_DEFAULT);
  cancel_midway (f, NULL);
  settle (&env, f);
  assert_cancelled (f, "");
  afut_future_unref (f);

  g_object_unref (other);
  g_object_unref (sub);
  env_clear (&env);
}

/* Progress reports for copy and move: each one counted, the last one
 * kept; the destroy notify counted (it must run once, after GIO called
 * back); a report may cancel the future. */
typedef struct
{
  guint n_reports;
  goffset current;
  goffset total;
  guint n_destroyed;
  AfutFuture *cancel_at_first;
  gboolean done_when_destroyed;
  AfutFuture *watched;
} Progress;

static void
progress_cb (goffset current, goffset total, gpointer data)
{
  Progress *p = (Progress *) data;
  g_assert_cmpuint (p->n_destroyed, ==, 0);
  p->n_reports++;
  p->current = current;
  p->total = total;
  if (p->cancel_at_first != NULL && p->n_reports == 1)
    afut_future_cancel (p->cancel_at_first, "copy stopped");
}

static void
progress_destroy (gpointer data)
{
  Progress *p = (Progress *) data;
  p->n_destroyed++;
  /* GIO has called back by now: the future is done, or settles in this
   * very callback; either way no report comes after. */
  p->done_when_destroyed = p->watched != NULL;
}

static GFile *
env_big_file (Env *env, const char *name, gsize size)
{
  char *data = (char *) g_malloc (size), *path = env_path (env, name);
  GFile *file = g_file_new_for_path (path);
  gsize i;
  for (i = 0; i < size; i++)
    data[i] = (char) ('a' + i % 26);
  g_assert_true (g_file_set_contents (path, data, (gssize) size, NULL));
  g_free (data);
  g_free (path);
  return file;
}

static void
test_file_copy_done (void)
{
  Env env;
  GFile *src, *dst;
  AfutFuture *f;
  Progress p;
  GFileInfo *info;

  env_init (&env);
  memset (&p, 0, sizeof p);
  src = env_big_file (&env, "src", 1 << 20);
  dst = env_file (&env, "dst");
  f = afut_file_copy (src, dst, G_FILE_COPY_NONE, G_PRIORITY_DEFAULT,
                      progress_cb, &p, progress_destroy);
  p.watched = f;
  settle (&env, f);
  assert_state (f, AFUT_FUTURE_DONE);
  g_assert_cmpuint (p.n_destroyed, ==, 1);
  g_assert_cmpuint (p.n_reports, >, 0);
  g_assert_cmpint (p.current, ==, 1 << 20);
  g_assert_cmpint (p.total, ==, 1 << 20);
  info = g_file_query_info (dst, "standard::size", G_FILE_QUERY_INFO_NONE,
                            NULL, NULL);
  g_assert_cmpint (g_file_info_get_size (info), ==, 1 << 20);
  g_object_unref (info);
  afut_future_unref (f);
  g_object_unref (src);
  g_object_unref (dst);
  env_clear (&env);
}

static void
test_file_copy_fail (void)
{
  Env env;
  GFile *src, *dst;
  AfutFuture *f;
  Progress p;

  env_init (&env);
  memset (&p, 0, sizeof p);
  src = env_file (&env, "missing");
  dst = env_file (&env, "dst");
  f = afut_file_copy (src, dst, G_FILE_COPY_NONE, G_PRIORITY_DEFAULT,
                      progress_cb, &p, progress_destroy);
  settle (&env, f);
  assert_failed_with (f, G_IO_ERROR, G_IO_ERROR_NOT_FOUND);
  g_assert_cmpuint (p.n_destroyed, ==, 1);
  afut_future_unref (f);
  /* Without a progress callback, its destroy runs at once. */
  memset (&p, 0, sizeof p);
  f = afut_file_copy (src, dst, G_FILE_COPY_NONE, G_PRIORITY_DEFAULT, NULL,
                      &p, progress_destroy);
  g_assert_cmpuint (p.n_destroyed, ==, 1);
  settle (&env, f);
  assert_failed_with (f, G_IO_ERROR, G_IO_ERROR_NOT_FOUND);
  afut_future_unref (f);
  g_object_unref (src);
  g_object_unref (dst);
  env_clear (&env);
}

/* Cancelled from its own first progress report, as a Cancel button
 * would: the future ends cancelled after GIO called back, the progress
 * data is destroyed once, and nothing is left open. */
static void
test_file_copy_cancel (void)
{
  Env env;
  GFile *src, *dst;
  AfutFuture *f;
  Progress p;
  char *src_path, *dst_path;

  env_init (&env);
  memset (&p, 0, sizeof p);
  src = env_big_file (&env, "src", 8 << 20);
  dst = env_file (&env, "dst");
  f = afut_file_copy (src, dst, G_FILE_COPY_NONE, G_PRIORITY_DEFAULT,
                      progress_cb, &p, progress_destroy);
  p.cancel_at_first = f;
  settle (&env, f);
  assert_cancelled (f, "copy stopped");
  g_assert_cmpuint (p.n_reports, >=, 1);
  g_assert_cmpuint (p.n_destroyed, ==, 1);
  src_path = g_file_get_path (src);
  dst_path = g_file_get_path (dst);
  assert_fd_released (&env, src_path);
  assert_fd_released (&env, dst_path);
  g_free (src_path);
  g_free (dst_path);
  afut_future_unref (f);
  g_object_unref (src);
  g_object_unref (dst);
  env_clear (&env);
}

static void
test_file_move (void)
{
  Env env;
  GFile *src, *dst, *missing, *src2, *dst2;
  AfutFuture *f;
  Progress p;

  env_init (&env);
  memset (&p, 0, sizeof p);
  src = env_file_with (&env, "src", "moving");
  dst = env_file (&env, "dst");
  f = settle (&env, afut_file_move (src, dst, G_FILE_COPY_NONE,
                                    G_PRIORITY_DEFAULT, progress_cb, &p,
                                    progress_destroy));
  assert_state (f, AFUT_FUTURE_DONE);
  g_assert_false (g_file_query_exists (src, NULL));
  g_assert_true (g_file_query_exists (dst, NULL));
  g_assert_cmpuint (p.n_destroyed, ==, 1);
  afut_future_unref (f);

  missing = env_file (&env, "missing");
  f = settle (&env, afut_file_move (missing, src, G_FILE_COPY_NONE,
                                    G_PRIORITY_DEFAULT, NULL, NULL, NULL));
  assert_failed_with (f, G_IO_ERROR, G_IO_ERROR_NOT_FOUND);
  afut_future_unref (f);

  src2 = env_file_with (&env, "src2", "x");
  dst2 = env_file (&env, "dst2");
  memset (&p, 0, sizeof p);
  f = afut_file_move (src2, dst2, G_FILE_COPY_NONE, G_PRIORITY_DEFAULT,
                      progress_cb, &p, progress_destroy);
  cancel_midway (f, NULL);
  settle (&env, f);
  assert_cancelled (f, "");
  g_assert_cmpuint (p.n_destroyed, ==, 1);
  /* Moved or not, exactly one of the two is there. */
  g_assert_true (g_file_query_exists (src2, NULL)
                 != g_file_query_exists (dst2, NULL));
  afut_future_unref (f);

  g_object_unref (src2);
  g_object_unref (dst2);
  g_object_unref (missing);
  g_object_unref (src);
  g_object_unref (dst);
  env_clear (&env);
}

/* ==================================================================== */
/* ---- streams ---- */

static void
test_stream_read (void)
{
  Env env;
  Pipe p;
  AfutFuture *f;
  char buffer[16];

  env_init (&env);
  pipe_open (&p);
  /* Completes: what is there. */
  g_assert_cmpint (g_output_stream_write (p.out, "abc", 3, NULL, NULL), ==, 3);
  memset (buffer, 0, sizeof buffer);
  f = settle (&env, afut_input_stream_read (p.in, buffer, sizeof buffer,
                                            G_PRIORITY_DEFAULT));
  assert_state (f, AFUT_FUTURE_DONE);
  g_assert_cmpint (afut_future_get_int (f), ==, 3);
  g_assert_cmpstr (buffer, ==, "abc");
  afut_future_unref (f);

  /* Cancelled while GIO waits for data: still pending right after the
   * cancel, cancelled once GIO let go; the stream is free. */
  f = afut_input_stream_read (p.in, buffer, sizeof buffer,
                              G_PRIORITY_DEFAULT);
  iterate_n (env.ctx, 5);
  g_assert_true (g_input_stream_has_pending (p.in));
  cancel_midway (f, "no more");
  settle (&env, f);
  assert_cancelled (f, "no more");
  g_assert_false (g_input_stream_has_pending (p.in));
  afut_future_unref (f);

  /* The end of the stream: 0. */
  g_assert_true (g_output_stream_close (p.out, NULL, NULL));
  f = settle (&env, afut_input_stream_read (p.in, buffer, sizeof buffer,
                                            G_PRIORITY_DEFAULT));
  g_assert_cmpint (afut_future_get_int (f), ==, 0);
  afut_future_unref (f);
  assert_input_free (p.in);

  /* Fails: a closed stream. */
  f = settle (&env, afut_input_stream_read (p.in, buffer, sizeof buffer,
                                            G_PRIORITY_DEFAULT));
  assert_failed_with (f, G_IO_ERROR, G_IO_ERROR_CLOSED);
  afut_future_unref (f);
  pipe_clear (&p);
  env_clear (&env);
}

static void
test_stream_read_bytes (void)
{
  Env env;
  Pipe p;
  AfutFuture *f;

  env_init (&env);
  pipe_open (&p);
  g_assert_cmpint (g_output_stream_write (p.out, "chunk", 5, NULL, NULL), ==,
                   5);
  f = settle (&env, afut_input_stream_read_bytes (p.in, 64,
                                                  G_PRIORITY_DEFAULT));
  g_assert_cmpstr (bytes_str ((GBytes *) afut_future_get_pointer (f)), ==,
                   "chunk");
  afut_future_unref (f);

  f = afut_input_stream_read_bytes (p.in, 64, G_PRIORITY_DEFAULT);
  iterate_n (env.ctx, 5);
  cancel_midway (f, NULL);
  settle (&env, f);
  assert_cancelled (f, "");
  g_assert_false (g_input_stream_has_pending (p.in));
  afut_future_unref (f);

  g_assert_true (g_output_stream_close (p.out, NULL, NULL));
  f = settle (&env, afut_input_stream_read_bytes (p.in, 64,
                                                  G_PRIORITY_DEFAULT));
  g_assert_cmpuint (g_bytes_get_size ((GBytes *) afut_future_get_pointer (f)),
                    ==, 0);
  afut_future_unref (f);
  assert_input_free (p.in);
  f = settle (&env, afut_input_stream_read_bytes (p.in, 64,
                                                  G_PRIORITY_DEFAULT));
  assert_failed_with (f, G_IO_ERROR, G_IO_ERROR_CLOSED);
  afut_future_unref (f);
  pipe_clear (&p);
  env_clear (&env);
}

static void
test_stream_read_all (void)
{
  Env env;
  Pipe p;
  AfutFuture *f;
  char buffer[16];

  env_init (&env);
  pipe_open (&p);
  /* Cancelled with part of the data in: GIO has read it, the future
   * still ends cancelled, the stream is free. */
  g_assert_cmpint (g_output_stream_write (p.out, "ab", 2, NULL, NULL), ==, 2);
  f = afut_input_stream_read_all (p.in, buffer, 8, G_PRIORITY_DEFAULT);
  iterate_n (env.ctx, 5);
  cancel_midway (f, NULL);
  settle (&env, f);
  assert_cancelled (f, "");
  g_assert_false (g_input_stream_has_pending (p.in));
  afut_future_unref (f);

  /* Completes: all 8, or fewer at the end. */
  g_assert_cmpint (g_output_stream_write (p.out, "12345678xyz", 11, NULL,
                                          NULL),
                   ==, 11);
  memset (buffer, 0, sizeof buffer);
  f = settle (&env, afut_input_stream_read_all (p.in, buffer, 8,
                                                G_PRIORITY_DEFAULT));
  g_assert_cmpint (afut_future_get_int (f), ==, 8);
  g_assert_cmpstr (buffer, ==, "12345678");
  afut_future_unref (f);
  g_assert_true (g_output_stream_close (p.out, NULL, NULL));
  memset (buffer, 0, sizeof buffer);
  f = settle (&env, afut_input_stream_read_all (p.in, buffer, 8,
                                                G_PRIORITY_DEFAULT));
  g_assert_cmpint (afut_future_get_int (f), ==, 3);
  g_assert_cmpstr (buffer, ==, "xyz");
  afut_future_unref (f);
  assert_input_free (p.in);
  f = settle (&env, afut_input_stream_read_all (p.in, buffer, 8,
                                                G_PRIORITY_DEFAULT));
  assert_failed_with (f, G_IO_ERROR, G_IO_ERROR_CLOSED);
  afut_future_unref (f);
  pipe_clear (&p);
  env_clear (&env);
}

static void
test_stream_write_all (void)
{
  Env env;
  Pipe p;
  AfutFuture *f;
  char got[8];
  gsize big = 1 << 20;
  char *data = (char *) g_malloc0 (big);

  env_init (&env);
  pipe_open (&p);
  f = settle (&env, afut_output_stream_write_all (p.out, "hello", 5,
                                                  G_PRIORITY_DEFAULT));
  g_assert_cmpint (afut_future_get_int (f), ==, 5);
  g_assert_cmpint (g_input_stream_read (p.in, got, sizeof got, NULL, NULL),
                   ==, 5);
  afut_future_unref (f);

  /* More than the pipe holds, with nobody reading: GIO waits for room;
   * cancelled there, it lets go of the buffer and the stream. */
  f = afut_output_stream_write_all (p.out, data, big, G_PRIORITY_DEFAULT);
  iterate_n (env.ctx, 5);
  g_assert_true (g_output_stream_has_pending (p.out));
  cancel_midway (f, "full");
  settle (&env, f);
  assert_cancelled (f, "full");
  afut_future_unref (f);
  assert_output_free (p.out);

  f = settle (&env, afut_output_stream_write_all (p.out, "x", 1,
                                                  G_PRIORITY_DEFAULT));
  assert_failed_with (f, G_IO_ERROR, G_IO_ERROR_CLOSED);
  afut_future_unref (f);
  g_free (data);
  pipe_clear (&p);
  env_clear (&env);
}

static void
test_stream_write_bytes (void)
{
  Env env;
  Pipe p;
  AfutFuture *f;
  GBytes *bytes = g_bytes_new ("some bytes", 10);
  GBytes *big;
  char got[16];

  env_init (&env);
  pipe_open (&p);
  f = settle (&env, afut_output_stream_write_bytes (p.out, bytes,
                                                    G_PRIORITY_DEFAULT));
  g_assert_cmpint (afut_future_get_int (f), ==, 10);
  g_assert_cmpint (g_input_stream_read (p.in, got, sizeof got, NULL, NULL),
                   ==, 10);
  afut_future_unref (f);

  /* Fill the pipe, then a write waits for room. */
  big = g_bytes_new_take (g_malloc0 (1 << 20), 1 << 20);
  while (g_pollable_output_stream_write_nonblocking (
           G_POLLABLE_OUTPUT_STREAM (p.out), "z", 1, NULL, NULL)
         == 1)
    ;
  f = afut_output_stream_write_bytes (p.out, big, G_PRIORITY_DEFAULT);
  iterate_n (env.ctx, 5);
  cancel_midway (f, NULL);
  settle (&env, f);
  assert_cancelled (f, "");
  afut_future_unref (f);
  assert_output_free (p.out);
  f = settle (&env, afut_output_stream_write_bytes (p.out, bytes,
                                                    G_PRIORITY_DEFAULT));
  assert_failed_with (f, G_IO_ERROR, G_IO_ERROR_CLOSED);
  afut_future_unref (f);
  g_bytes_unref (big);
  g_bytes_unref (bytes);
  pipe_clear (&p);
  env_clear (&env);
}

static void
test_stream_splice (void)
{
  Env env;
  Pipe p;
  GInputStream *src;
  GOutputStream *dst;
  AfutFuture *f;

  env_init (&env);
  src = g_memory_input_stream_new_from_data ("spliced", 7, NULL);
  dst = g_memory_output_stream_new_resizable ();
  f = settle (&env, afut_output_stream_splice (
                      dst, src,
                      (GOutputStreamSpliceFlags) (
                        G_OUTPUT_STREAM_SPLICE_CLOSE_SOURCE
                        | G_OUTPUT_STREAM_SPLICE_CLOSE_TARGET),
                      G_PRIORITY_DEFAULT));
  g_assert_cmpint (afut_future_get_int (f), ==, 7);
  g_assert_cmpuint (g_memory_output_stream_get_data_size (
                      G_MEMORY_OUTPUT_STREAM (dst)),
                    ==, 7);
  g_assert_true (g_output_stream_is_closed (dst));
  afut_future_unref (f);

  /* Fails: the source is closed. */
  g_object_unref (dst);
  dst = g_memory_output_stream_new_resizable ();
  f = settle (&env, afut_output_stream_splice (dst, src,
                                               G_OUTPUT_STREAM_SPLICE_NONE,
                                               G_PRIORITY_DEFAULT));
  assert_failed_with (f, G_IO_ERROR, G_IO_ERROR_CLOSED);
  afut_future_unref (f);
  g_object_unref (dst);
  g_object_unref (src);

  /* Cancelled while the source, a pipe, has no data. */
  pipe_open (&p);
  dst = g_memory_output_stream_new_resizable ();
  g_assert_cmpint (g_output_stream_write (p.out, "part", 4, NULL, NULL), ==,
                   4);
  f = afut_output_stream_splice (dst, p.in, G_OUTPUT_STREAM_SPLICE_NONE,
                                 G_PRIORITY_DEFAULT);
  iterate_n (env.ctx, 5);
  cancel_midway (f, NULL);
  settle (&env, f);
  assert_cancelled (f, "");
  afut_future_unref (f);
  assert_input_free (p.in);
  assert_output_free (dst);
  g_object_unref (dst);
  pipe_clear (&p);
  env_clear (&env);
}

static void
test_stream_close (void)
{
  Env env;
  Pipe p;
  AfutFuture *f;
  GInputStream *in;
  GOutputStream *out;

  env_init (&env);
  pipe_open (&p);
  f = settle (&env, afut_input_stream_close (p.in, G_PRIORITY_DEFAULT));
  assert_state (f, AFUT_FUTURE_DONE);
  g_assert_true (g_input_stream_is_closed (p.in));
  afut_future_unref (f);
  f = settle (&env, afut_output_stream_close (p.out, G_PRIORITY_DEFAULT));
  assert_state (f, AFUT_FUTURE_DONE);
  g_assert_true (g_output_stream_is_closed (p.out));
  afut_future_unref (f);
  pipe_clear (&p);

  /* Fails: the fd under the streams is not open (a number far above
   * any this process opens). */
  in = g_unix_input_stream_new (9999, TRUE);
  out = g_unix_output_stream_new (9998, TRUE);
  f = settle (&env, afut_input_stream_close (in, G_PRIORITY_DEFAULT));
  assert_failed_with (f, G_IO_ERROR, G_IO_ERROR_FAILED);
  afut_future_unref (f);
  f = settle (&env, afut_output_stream_close (out, G_PRIORITY_DEFAULT));
  assert_failed_with (f, G_IO_ERROR, G_IO_ERROR_FAILED);
  afut_future_unref (f);
  g_object_unref (in);
  g_object_unref (out);

  /* Cancelled: GIO closes the stream anyway; the future ends cancelled
   * once it has. */
  pipe_open (&p);
  f = afut_input_stream_close (p.in, G_PRIORITY_DEFAULT);
  cancel_midway (f, NULL);
  settle (&env, f);
  assert_cancelled (f, "");
  g_assert_true (g_input_stream_is_closed (p.in));
  g_assert_false (g_input_stream_has_pending (p.in));
  afut_future_unref (f);
  f = afut_output_stream_close (p.out, G_PRIORITY_DEFAULT);
  cancel_midway (f, NULL);
  settle (&env, f);
  assert_cancelled (f, "");
  g_assert_true (g_output_stream_is_closed (p.out));
  afut_future_unref (f);
  pipe_clear (&p);
  env_clear (&env);
}

/* ==================================================================== */
/* ---- sockets and names ---- */

static GSocketAddress *
env_socket_address (Env *env, const char *name)
{
  char *path = env_path (env, name);
  GSocketAddress *address = g_unix_socket_address_new (path);
  g_free (path);
  return address;
}

/* A listener on a unix socket of the test directory; the client connects
 * while the accept waits, both complete, and bytes go through. */
static void
test_socket_connect_and_accept (void)
{
  Env env;
  GSocketListener *listener = g_socket_listener_new ();
  GSocketClient *client = g_socket_client_new ();
  GSocketAddress *address;
  AfutFuture *accept_f, *connect_f, *w, *r;
  GSocketConnection *server_side, *client_side;

  env_init (&env);
  address = env_socket_address (&env, "sock");
  g_assert_true (g_socket_listener_add_address (
    listener, address, G_SOCKET_TYPE_STREAM, G_SOCKET_PROTOCOL_DEFAULT, NULL,
    NULL, NULL));
  accept_f = afut_socket_listener_accept (listener);
  connect_f = afut_socket_client_connect (client,
                                          G_SOCKET_CONNECTABLE (address));
  settle (&env, accept_f);
  settle (&env, connect_f);
  assert_state (accept_f, AFUT_FUTURE_DONE);
  assert_state (connect_f, AFUT_FUTURE_DONE);
  server_side = G_SOCKET_CONNECTION (afut_future_get_pointer (accept_f));
  client_side = G_SOCKET_CONNECTION (afut_future_get_pointer (connect_f));
  w = settle (&env, afut_output_stream_write_all (
                      g_io_stream_get_output_stream (G_IO_STREAM (client_side)),
                      "ping", 4, G_PRIORITY_DEFAULT));
  r = settle (&env, afut_input_stream_read_bytes (
                      g_io_stream_get_input_stream (G_IO_STREAM (server_side)),
                      16, G_PRIORITY_DEFAULT));
  g_assert_cmpstr (bytes_str ((GBytes *) afut_future_get_pointer (r)), ==,
                   "ping");
  afut_future_unref (r);
  afut_future_unref (w);
  afut_future_unref (accept_f);
  afut_future_unref (connect_f);
  g_socket_listener_close (listener);
  g_object_unref (address);
  g_object_unref (client);
  g_object_unref (listener);
  env_clear (&env);
}

static void
test_socket_connect_fail (void)
{
  Env env;
  GSocketClient *client = g_socket_client_new ();
  GSocketAddress *address;
  AfutFuture *f;

  env_init (&env);
  address = env_socket_address (&env, "nobody-listens");
  f = settle (&env, afut_socket_client_connect (client,
                                                G_SOCKET_CONNECTABLE (address)));
  assert_state (f, AFUT_FUTURE_FAILED);
  g_assert_true (afut_glib_future_get_error (f)->domain == G_IO_ERROR);
  afut_future_unref (f);
  /* A port nobody listens on, through the host name API. */
  f = settle (&env, afut_socket_client_connect_to_host (client, "127.0.0.1",
                                                        1));
  assert_failed_with (f, G_IO_ERROR, G_IO_ERROR_CONNECTION_REFUSED);
  afut_future_unref (f);
  g_object_unref (address);
  g_object_unref (client);
  env_clear (&env);
}

static void
test_socket_connect_to_host_done (void)
{
  Env env;
  GSocketListener *listener = g_socket_listener_new ();
  GSocketClient *client = g_socket_client_new ();
  GInetAddress *loopback = g_inet_address_new_loopback (G_SOCKET_FAMILY_IPV4);
  GSocketAddress *any = g_inet_socket_address_new (loopback, 0);
  GSocketAddress *effective = NULL;
  AfutFuture *accept_f, *connect_f;
  char *host;

  env_init (&env);
  g_assert_true (g_socket_listener_add_address (
    listener, any, G_SOCKET_TYPE_STREAM, G_SOCKET_PROTOCOL_TCP, NULL,
    &effective, NULL));
  host = g_strdup_printf ("127.0.0.1:%u",
                          g_inet_socket_address_get_port (
                            G_INET_SOCKET_ADDRESS (effective)));
  accept_f = afut_socket_listener_accept (listener);
  connect_f = afut_socket_client_connect_to_host (client, host, 0);
  settle (&env, connect_f);
  settle (&env, accept_f);
  assert_state (connect_f, AFUT_FUTURE_DONE);
  assert_state (accept_f, AFUT_FUTURE_DONE);
  g_assert_true (G_IS_TCP_CONNECTION (afut_future_get_pointer (connect_f)));
  afut_future_unref (accept_f);
  afut_future_unref (connect_f);
  g_free (host);
  g_socket_listener_close (listener);
  g_object_unref (effective);
  g_object_unref (any);
  g_object_unref (loopback);
  g_object_unref (client);
  g_object_unref (listener);
  env_clear (&env);
}

/* An accept nobody connects to, cancelled: the listener is free, and the
 * next accept gets the next client.  A connect cancelled as it starts
 * leaves no connection behind. */
static void
test_socket_cancel (void)
{
  Env env;
  GSocketListener *listener = g_socket_listener_new ();
  GSocketClient *client = g_socket_client_new ();
  GSocketAddress *address;
  AfutFuture *accept_f, *connect_f;

  env_init (&env);
  address = env_socket_address (&env, "sock");
  g_assert_true (g_socket_listener_add_address (
    listener, address, G_SOCKET_TYPE_STREAM, G_SOCKET_PROTOCOL_DEFAULT, NULL,
    NULL, NULL));
  accept_f = afut_socket_listener_accept (listener);
  iterate_n (env.ctx, 5);
  cancel_midway (accept_f, "no clients");
  settle (&env, accept_f);
  assert_cancelled (accept_f, "no clients");
  afut_future_unref (accept_f);

  connect_f = afut_socket_client_connect (client,
                                          G_SOCKET_CONNECTABLE (address));
  cancel_midway (connect_f, NULL);
  settle (&env, connect_f);
  assert_cancelled (connect_f, "");
  afut_future_unref (connect_f);

  accept_f = afut_socket_listener_accept (listener);
  connect_f = afut_socket_client_connect (client,
                                          G_SOCKET_CONNECTABLE (address));
  settle (&env, accept_f);
  settle (&env, connect_f);
  assert_state (accept_f, AFUT_FUTURE_DONE);
  assert_state (connect_f, AFUT_FUTURE_DONE);
  afut_future_unref (accept_f);
  afut_future_unref (connect_f);

  /* A closed listener fails the accept. */
  g_socket_listener_close (listener);
  accept_f = settle (&env, afut_socket_listener_accept (listener));
  assert_state (accept_f, AFUT_FUTURE_FAILED);
  afut_future_unref (accept_f);
  g_object_unref (address);
  g_object_unref (client);
  g_object_unref (listener);
  env_clear (&env);
}

/* A resolver of the test's own: "ok.test" is 127.0.0.1, "fail.test" is
 * not found, "hang.test" answers only when cancelled.  The lookups
 * answer from the main context, as GLib's threaded resolver does. */
typedef GResolver TestResolver;
typedef GResolverClass TestResolverClass;
static GType test_resolver_get_type (void);
G_DEFINE_TYPE (TestResolver, test_resolver, G_TYPE_RESOLVER)

static guint test_resolver_n_hanging;

static void
test_resolver_hang_cancelled (GCancellable *cancellable, gpointer data)
{
  (void) cancellable;
  g_task_return_error_if_cancelled (G_TASK (data));
}

static gboolean
test_resolver_answer (gpointer data)
{
  GTask *task = G_TASK (data);
  const char *name = (const char *) g_task_get_task_data (task);
  if (g_strcmp0 (name, "ok.test") == 0)
    g_task_return_pointer (
      task, g_list_append (NULL, g_inet_address_new_from_string ("127.0.0.1")),
      (GDestroyNotify) g_resolver_free_addresses);
  else
    g_task_return_new_error (task, G_RESOLVER_ERROR,
                             G_RESOLVER_ERROR_NOT_FOUND, "no %s here", name);
  return G_SOURCE_REMOVE;
}

static void
test_resolver_lookup_async (GResolver *resolver, const gchar *hostname,
                            GCancellable *cancellable,
                            GAsyncReadyCallback callback, gpointer data)
{
  GTask *task = g_task_new (resolver, cancellable, callback, data);
  g_task_set_task_data (task, g_strdup (hostname), g_free);
  if (g_strcmp0 (hostname, "hang.test") == 0)
    {
      /* Answers with GTask's own cancellation, when cancelled. */
      test_resolver_n_hanging++;
      g_cancellable_connect (cancellable,
                             G_CALLBACK (test_resolver_hang_cancelled),
                             g_object_ref (task), g_object_unref);
    }
  else
    {
      GSource *idle = g_idle_source_new ();
      g_source_set_callback (idle, test_resolver_answer, g_object_ref (task),
                             g_object_unref);
      g_source_attach (idle, g_main_context_get_thread_default ());
      g_source_unref (idle);
    }
  g_object_unref (task);
}

static GList *
test_resolver_lookup_finish (GResolver *resolver, GAsyncResult *result,
                             GError **error)
{
  (void) resolver;
  return (GList *) g_task_propagate_pointer (G_TASK (result), error);
}

static void
test_resolver_class_init (TestResolverClass *klass)
{
  klass->lookup_by_name_async = test_resolver_lookup_async;
  klass->lookup_by_name_finish = test_resolver_lookup_finish;
}

static void
test_resolver_init (TestResolver *self)
{
  (void) self;
}

static void
test_resolver_lookup (void)
{
  Env env;
  GResolver *resolver;
  AfutFuture *f;
  GPtrArray *addresses;
  char *text;

  env_init (&env);
  resolver = G_RESOLVER (g_object_new (test_resolver_get_type (), NULL));
  f = settle (&env, afut_resolver_lookup_by_name (resolver, "ok.test"));
  assert_state (f, AFUT_FUTURE_DONE);
  addresses = (GPtrArray *) afut_future_get_pointer (f);
  g_assert_cmpuint (addresses->len, ==, 1);
  text = g_inet_address_to_string (
    G_INET_ADDRESS (g_ptr_array_index (addresses, 0)));
  g_assert_cmpstr (text, ==, "127.0.0.1");
  g_free (text);
  afut_future_unref (f);

  f = settle (&env, afut_resolver_lookup_by_name (resolver, "fail.test"));
  assert_failed_with (f, G_RESOLVER_ERROR, G_RESOLVER_ERROR_NOT_FOUND);
  afut_future_unref (f);

  f = afut_resolver_lookup_by_name (resolver, "hang.test");
  iterate_n (env.ctx, 5);
  g_assert_cmpuint (test_resolver_n_hanging, ==, 1);
  cancel_midway (f, "never mind");
  settle (&env, f);
  assert_cancelled (f, "never mind");
  afut_future_unref (f);

  /* GLib's own resolver with an address literal: no lookup at all. */
  f = settle (&env, afut_resolver_lookup_by_name (resolver, "::1"));
  assert_state (f, AFUT_FUTURE_DONE);
  afut_future_unref (f);
  g_object_unref (resolver);
  env_clear (&env);
}

/* ==================================================================== */
/* ---- subprocesses ---- */

static GSubprocess *
spawn (GSubprocessFlags flags, const char *script)
{
  GError *error = NULL;
  GSubprocess *p = g_subprocess_new (flags, &error, "sh", "-c", script, NULL);
  g_assert_no_error (error);
  return p;
}

static void
test_subprocess_wait (void)
{
  Env env;
  GSubprocess *p;
  AfutFuture *f;

  env_init (&env);
  p = spawn (G_SUBPROCESS_FLAGS_NONE, "exit 3");
  f = settle (&env, afut_subprocess_wait (p));
  assert_state (f, AFUT_FUTURE_DONE);
  g_assert_true (g_subprocess_get_if_exited (p));
  g_assert_cmpint (g_subprocess_get_exit_status (p), ==, 3);
  afut_future_unref (f);
  g_object_unref (p);

  /* Cancelled while the process waits for its input: the process goes
   * on; closing its input ends it, and a new wait sees that. */
  p = spawn (G_SUBPROCESS_FLAGS_STDIN_PIPE, "read x; exit 7");
  f = afut_subprocess_wait (p);
  iterate_n (env.ctx, 5);
  cancel_midway (f, "stop waiting");
  settle (&env, f);
  assert_cancelled (f, "stop waiting");
  afut_future_unref (f);
  g_assert_nonnull (g_subprocess_get_identifier (p));
  g_assert_true (g_output_stream_close (g_subprocess_get_stdin_pipe (p), NULL,
                                        NULL));
  f = settle (&env, afut_subprocess_wait (p));
  assert_state (f, AFUT_FUTURE_DONE);
  g_assert_cmpint (g_subprocess_get_exit_status (p), ==, 7);
  afut_future_unref (f);
  g_object_unref (p);
  env_clear (&env);
}

static void
test_subprocess_wait_check (void)
{
  Env env;
  GSubprocess *p;
  AfutFuture *f;

  env_init (&env);
  p = spawn (G_SUBPROCESS_FLAGS_NONE, "true");
  f = settle (&env, afut_subprocess_wait_check (p));
  assert_state (f, AFUT_FUTURE_DONE);
  afut_future_unref (f);
  g_object_unref (p);

  p = spawn (G_SUBPROCESS_FLAGS_NONE, "exit 3");
  f = settle (&env, afut_subprocess_wait_check (p));
  assert_failed_with (f, G_SPAWN_EXIT_ERROR, 3);
  afut_future_unref (f);
  g_object_unref (p);

  p = spawn (G_SUBPROCESS_FLAGS_STDIN_PIPE, "read x");
  f = afut_subprocess_wait_check (p);
  iterate_n (env.ctx, 5);
  cancel_midway (f, NULL);
  settle (&env, f);
  assert_cancelled (f, "");
  afut_future_unref (f);
  g_subprocess_force_exit (p);
  f = settle (&env, afut_subprocess_wait (p));
  assert_state (f, AFUT_FUTURE_DONE);
  g_assert_false (g_subprocess_get_if_exited (p));
  afut_future_unref (f);
  g_object_unref (p);
  env_clear (&env);
}

static void
test_subprocess_communicate (void)
{
  Env env;
  GSubprocess *p;
  AfutFuture *f;
  GBytes *in = g_bytes_new_static ("to cat\n", 7);
  GBytes *big = g_bytes_new_take (g_malloc0 (1 << 20), 1 << 20);

  env_init (&env);
  p = spawn ((GSubprocessFlags) (G_SUBPROCESS_FLAGS_STDIN_PIPE
                                 | G_SUBPROCESS_FLAGS_STDOUT_PIPE
                                 | G_SUBPROCESS_FLAGS_STDERR_PIPE),
             "cat; echo oops >&2");
  f = settle (&env, afut_subprocess_communicate (p, in));
  assert_state (f, AFUT_FUTURE_DONE);
  g_assert_cmpstr (bytes_str ((GBytes *) afut_future_get_pointer (f)), ==,
                   "to cat\n");
  g_assert_cmpstr (bytes_str (afut_subprocess_communicate_get_stderr (f)), ==,
                   "oops\n");
  afut_future_unref (f);
  g_object_unref (p);

  /* Standard output not piped: no bytes for it. */
  p = spawn (G_SUBPROCESS_FLAGS_STDERR_PIPE, "echo err >&2");
  f = settle (&env, afut_subprocess_communicate (p, NULL));
  assert_state (f, AFUT_FUTURE_DONE);
  g_assert_null (afut_future_get_pointer (f));
  g_assert_cmpstr (bytes_str (afut_subprocess_communicate_get_stderr (f)), ==,
                   "err\n");
  afut_future_unref (f);
  g_object_unref (p);

  /* Fails: the process leaves without reading the input it is given. */
  p = spawn ((GSubprocessFlags) (G_SUBPROCESS_FLAGS_STDIN_PIPE
                                 | G_SUBPROCESS_FLAGS_STDOUT_PIPE),
             "exec true");
  f = settle (&env, afut_subprocess_communicate (p, big));
  assert_failed_with (f, G_IO_ERROR, G_IO_ERROR_BROKEN_PIPE);
  afut_future_unref (f);
  g_object_unref (p);

  /* Cancelled while the process keeps its output open: it runs on until
   * killed, and its pipes are free. */
  p = spawn ((GSubprocessFlags) (G_SUBPROCESS_FLAGS_STDIN_PIPE
                                 | G_SUBPROCESS_FLAGS_STDOUT_PIPE),
             "cat; exec sleep 1000");
  f = afut_subprocess_communicate (p, in);
  iterate_n (env.ctx, 5);
  cancel_midway (f, "hung");
  settle (&env, f);
  assert_cancelled (f, "hung");
  afut_future_unref (f);
  g_subprocess_force_exit (p);
  f = settle (&env, afut_subprocess_wait (p));
  assert_state (f, AFUT_FUTURE_DONE);
  afut_future_unref (f);
  g_assert_false (g_input_stream_has_pending (g_subprocess_get_stdout_pipe (p)));
  g_object_unref (p);
  g_bytes_unref (big);
  g_bytes_unref (in);
  env_clear (&env);
}

static void
test_subprocess_communicate_utf8 (void)
{
  Env env;
  GSubprocess *p;
  AfutFuture *f;

  env_init (&env);
  p = spawn ((GSubprocessFlags) (G_SUBPROCESS_FLAGS_STDIN_PIPE
                                 | G_SUBPROCESS_FLAGS_STDOUT_PIPE
                                 | G_SUBPROCESS_FLAGS_STDERR_PIPE),
             "tr a-z A-Z; echo warning >&2");
  f = settle (&env, afut_subprocess_communicate_utf8 (p, "shout\n"));
  assert_state (f, AFUT_FUTURE_DONE);
  g_assert_cmpstr ((const char *) afut_future_get_pointer (f), ==, "SHOUT\n");
  g_assert_cmpstr (afut_subprocess_communicate_get_stderr_utf8 (f), ==,
                   "warning\n");
  afut_future_unref (f);
  g_object_unref (p);

  /* Fails: output that is not UTF-8. */
  p = spawn (G_SUBPROCESS_FLAGS_STDOUT_PIPE, "printf '\\377\\376'");
  f = settle (&env, afut_subprocess_communicate_utf8 (p, NULL));
  assert_failed_with (f, G_IO_ERROR, G_IO_ERROR_FAILED);
  afut_future_unref (f);
  g_object_unref (p);

  p = spawn (G_SUBPROCESS_FLAGS_STDOUT_PIPE, "exec sleep 1000");
  f = afut_subprocess_communicate_utf8 (p, NULL);
  iterate_n (env.ctx, 5);
  cancel_midway (f, NULL);
  settle (&env, f);
  assert_cancelled (f, "");
  afut_future_unref (f);
  g_subprocess_force_exit (p);
  f = settle (&env, afut_subprocess_wait (p));
  afut_future_unref (f);
  g_object_unref (p);
  env_clear (&env);
}

/* The stderr accessors check what they are given. */
static void
test_subprocess_bad_input (void)
{
  Env env;
  AfutFuture *plain;

  if (g_test_subprocess ())
    {
      criticals_not_fatal ();
      env_init (&env);
      plain = afut_future_new (NULL);
      afut_future_resolve (plain);
      g_assert_null (afut_subprocess_communicate_get_stderr (plain));
      afut_future_unref (plain);
      env_clear (&env);
      return;
    }
  g_test_trap_subprocess (NULL, 0, G_TEST_SUBPROCESS_DEFAULT);
  g_test_trap_assert_stderr ("*CRITICAL*not a future of*");
}

/* ==================================================================== */
/* ---- D-Bus ---- */

static GTestDBus *test_bus;

static const char test_iface_xml[]
  = "<node>"
    "  <interface name='org.afut.Test'>"
    "    <method name='Echo'>"
    "      <arg type='s' name='text' direction='in'/>"
    "      <arg type='s' name='text' direction='out'/>"
    "    </method>"
    "    <method name='Fail'/>"
    "    <method name='Hang'/>"
    "  </interface>"
    "</node>";

typedef struct
{
  GDBusConnection *server;
  GDBusConnection *client;
  guint registration;
  GDBusMethodInvocation *hanging;
  GDBusProxy *proxy;
} Bus;

static void
bus_method_call (GDBusConnection *connection, const gchar *sender,
                 const gchar *object_path, const gchar *interface_name,
                 const gchar *method_name, GVariant *parameters,
                 GDBusMethodInvocation *invocation, gpointer data)
{
  Bus *bus = (Bus *) data;
  (void) connection;
  (void) sender;
  (void) object_path;
  (void) interface_name;
  if (g_strcmp0 (method_name, "Echo") == 0)
    g_dbus_method_invocation_return_value (invocation, parameters);
  else if (g_strcmp0 (method_name, "Fail") == 0)
    g_dbus_method_invocation_return_dbus_error (
      invocation, "org.afut.Error.Failed", "it failed on purpose");
  else
    bus->hanging = invocation; /* answered by the test, later */
}

static const GDBusInterfaceVTable bus_vtable = { bus_method_call, NULL, NULL,
                                                 { 0 } };

static GDBusConnection *
bus_connect (void)
{
  GError *error = NULL;
  GDBusConnection *c = g_dbus_connection_new_for_address_sync (
    g_test_dbus_get_bus_address (test_bus),
    (GDBusConnectionFlags) (G_DBUS_CONNECTION_FLAGS_AUTHENTICATION_CLIENT
                            | G_DBUS_CONNECTION_FLAGS_MESSAGE_BUS_CONNECTION),
    NULL, NULL, &error);
  g_assert_no_error (error);
  return c;
}

static gboolean
bus_setup (Bus *bus)
{
  GDBusNodeInfo *info;
  GError *error = NULL;
  if (test_bus == NULL)
    {
      g_test_skip ("no dbus-daemon to run a private bus");
      return FALSE;
    }
  memset (bus, 0, sizeof *bus);
  bus->server = bus_connect ();
  bus->client = bus_connect ();
  info = g_dbus_node_info_new_for_xml (test_iface_xml, &error);
  g_assert_no_error (error);
  bus->registration = g_dbus_connection_register_object (
    bus->server, "/org/afut/Test", info->interfaces[0], &bus_vtable, bus,
    NULL, &error);
  g_assert_no_error (error);
  g_dbus_node_info_unref (info);
  bus->proxy = g_dbus_proxy_new_sync (
    bus->client,
    (GDBusProxyFlags) (G_DBUS_PROXY_FLAGS_DO_NOT_LOAD_PROPERTIES
                       | G_DBUS_PROXY_FLAGS_DO_NOT_CONNECT_SIGNALS
                       | G_DBUS_PROXY_FLAGS_DO_NOT_AUTO_START),
    NULL, g_dbus_connection_get_unique_name (bus->server), "/org/afut/Test",
    "org.afut.Test", NULL, &error);
  g_assert_no_error (error);
  return TRUE;
}

static void
bus_clear (Env *env, Bus *bus)
{
  g_dbus_connection_unregister_object (bus->server, bus->registration);
  g_object_unref (bus->proxy);
  g_assert_true (g_dbus_connection_close_sync (bus->client, NULL, NULL));
  g_assert_true (g_dbus_connection_close_sync (bus->server, NULL, NULL));
  g_object_unref (bus->client);
  g_object_unref (bus->server);
  iterate_n (env->ctx, 10);
}

static AfutFuture *
bus_call (Bus *bus, const char *method, GVariant *args)
{
  return afut_dbus_connection_call (
    bus->client, g_dbus_connection_get_unique_name (bus->server),
    "/org/afut/Test", "org.afut.Test", method, args, NULL,
    G_DBUS_CALL_FLAGS_NONE, -1);
}

static void
assert_dbus_failed (AfutFuture *f)
{
  char *remote;
  assert_state (f, AFUT_FUTURE_FAILED);
  remote = g_dbus_error_get_remote_error (
    (GError *) afut_glib_future_get_error (f));
  g_assert_cmpstr (remote, ==, "org.afut.Error.Failed");
  g_free (remote);
}

/* A hanging call, cancelled once the peer has it: the future ends
 * cancelled, the peer's late reply is dropped, and the connection goes on
 * working. */
static void
assert_dbus_cancel (Env *env, Bus *bus, AfutFuture *f)
{
  AfutFuture *again;
  ITERATE_UNTIL (env->ctx, bus->hanging != NULL);
  cancel_midway (f, "no answer");
  settle (env, f);
  assert_cancelled (f, "no answer");
  g_dbus_method_invocation_return_value (bus->hanging, NULL);
  bus->hanging = NULL;
  again = settle (env, bus_call (bus, "Echo", g_variant_new ("(s)", "after")));
  assert_state (again, AFUT_FUTURE_DONE);
  afut_future_unref (again);
}

static void
test_dbus_connection_call (void)
{
  Env env;
  Bus bus;
  AfutFuture *f;
  const char *text;

  env_init (&env);
  if (!bus_setup (&bus))
    {
      env_clear (&env);
      return;
    }
  f = settle (&env, bus_call (&bus, "Echo", g_variant_new ("(s)", "hi")));
  assert_state (f, AFUT_FUTURE_DONE);
  g_variant_get ((GVariant *) afut_future_get_pointer (f), "(&s)", &text);
  g_assert_cmpstr (text, ==, "hi");
  afut_future_unref (f);

  f = settle (&env, bus_call (&bus, "Fail", NULL));
  assert_dbus_failed (f);
  afut_future_unref (f);

  f = bus_call (&bus, "Hang", NULL);
  assert_dbus_cancel (&env, &bus, f);
  afut_future_unref (f);
  bus_clear (&env, &bus);
  env_clear (&env);
}

static void
test_dbus_proxy_call (void)
{
  Env env;
  Bus bus;
  AfutFuture *f;
  const char *text;

  env_init (&env);
  if (!bus_setup (&bus))
    {
      env_clear (&env);
      return;
    }
  f = settle (&env, afut_dbus_proxy_call (bus.proxy, "Echo",
                                          g_variant_new ("(s)", "via proxy"),
                                          G_DBUS_CALL_FLAGS_NONE, -1));
  assert_state (f, AFUT_FUTURE_DONE);
  g_variant_get ((GVariant *) afut_future_get_pointer (f), "(&s)", &text);
  g_assert_cmpstr (text, ==, "via proxy");
  afut_future_unref (f);

  f = settle (&env, afut_dbus_proxy_call (bus.proxy, "Fail", NULL,
                                          G_DBUS_CALL_FLAGS_NONE, -1));
  assert_dbus_failed (f);
  afut_future_unref (f);

  f = afut_dbus_proxy_call (bus.proxy, "Hang", NULL, G_DBUS_CALL_FLAGS_NONE,
                            -1);
  assert_dbus_cancel (&env, &bus, f);
  afut_future_unref (f);
  bus_clear (&env, &bus);
  env_clear (&env);
}

/* ==================================================================== */
/* ---- GObject signals and properties ---- */

/* How many handlers @instance has for @signal, whatever their detail. */
static guint
n_handlers (gpointer instance, const char *signal)
{
  guint id = g_signal_lookup (signal, G_OBJECT_TYPE (instance));
  return g_signal_handler_find (instance, G_SIGNAL_MATCH_ID, id, 0, NULL,
                                NULL, NULL)
             != 0
           ? 1
           : 0;
}

static void
test_signal_next_done (void)
{
  Env env;
  GSimpleAction *action;
  AfutFuture *f;
  const GValue *arg;

  env_init (&env);
  action = g_simple_action_new ("go", G_VARIANT_TYPE_INT32);
  f = afut_signal_next (action, "activate");
  g_assert_true (g_signal_has_handler_pending (
    action, g_signal_lookup ("activate", G_TYPE_SIMPLE_ACTION), 0, FALSE));
  g_action_activate (G_ACTION (action), g_variant_new_int32 (5));
  /* Resolved inside the emission; the handler is gone. */
  assert_state (f, AFUT_FUTURE_DONE);
  g_assert_false (g_signal_has_handler_pending (
    action, g_signal_lookup ("activate", G_TYPE_SIMPLE_ACTION), 0, FALSE));
  g_action_activate (G_ACTION (action), g_variant_new_int32 (6));
  g_assert_cmpuint (afut_signal_get_n_args (f), ==, 1);
  arg = afut_signal_get_arg (f, 0);
  g_assert_true (G_VALUE_HOLDS (arg, G_TYPE_VARIANT));
  g_assert_cmpint (g_variant_get_int32 (g_value_get_variant (arg)), ==, 5);
  afut_future_unref (f);
  g_object_unref (action);
  env_clear (&env);
}

static void
test_signal_next_object_finalized (void)
{
  Env env;
  GSimpleAction *action;
  AfutFuture *f;

  env_init (&env);
  action = g_simple_action_new ("go", NULL);
  f = afut_signal_next (action, "activate");
  g_object_unref (action);
  assert_failed_with (f, G_IO_ERROR, G_IO_ERROR_CLOSED);
  afut_future_unref (f);
  env_clear (&env);
}

static void
test_signal_next_cancel (void)
{
  Env env;
  GSimpleAction *action;
  AfutFuture *f;

  env_init (&env);
  action = g_simple_action_new ("go", NULL);
  f = afut_signal_next (action, "activate");
  /* Nothing to wait for: cancelled at once, handler gone. */
  g_assert_true (afut_future_cancel (f, "not now"));
  assert_cancelled (f, "not now");
  g_assert_cmpuint (n_handlers (action, "activate"), ==, 0);
  g_action_activate (G_ACTION (action), NULL);
  afut_future_unref (f);
  /* Dropped while pending: disconnected too. */
  f = afut_signal_next (action, "activate");
  afut_future_unref (f);
  g_assert_cmpuint (n_handlers (action, "activate"), ==, 0);
  g_action_activate (G_ACTION (action), NULL);
  g_object_unref (action);
  env_clear (&env);
}

static void
test_signal_next_in_task (void)
{
  Env env;
  GSimpleAction *action;
  AfutFuture *t;

  env_init (&env);
  action = g_simple_action_new ("go", NULL);
  t = await_in_task (afut_signal_next (action, "activate"));
  iterate_n (env.ctx, 3);
  g_assert_false (afut_future_is_done (t));
  g_action_activate (G_ACTION (action), NULL);
  settle (&env, t);
  assert_state (t, AFUT_FUTURE_DONE);
  g_assert_cmpuint (afut_signal_get_n_args (((Awaiter *) t)->got), ==, 1);
  afut_future_unref (t);

  /* Cancelling the waiting task disconnects the handler. */
  t = await_in_task (afut_signal_next (action, "activate"));
  iterate_n (env.ctx, 3);
  g_assert_cmpuint (n_handlers (action, "activate"), ==, 1);
  afut_future_cancel (t, "bye");
  settle (&env, t);
  assert_cancelled (t, "bye");
  g_assert_cmpuint (n_handlers (action, "activate"), ==, 0);
  afut_future_unref (t);
  g_object_unref (action);
  env_clear (&env);
}

static void
test_signal_bad_input (void)
{
  Env env;
  GSimpleAction *action;
  AfutFuture *plain;

  if (g_test_subprocess ())
    {
      criticals_not_fatal ();
      env_init (&env);
      action = g_simple_action_new ("go", NULL);
      g_assert_null (afut_signal_next (action, "no-such-signal"));
      g_assert_null (afut_property_next (action, "no-such-property"));
      g_assert_null (afut_signal_next (NULL, "activate"));
      g_assert_null (afut_signal_stream_next (NULL));
      plain = afut_future_new (NULL);
      afut_future_resolve_int (plain, 3);
      g_assert_null (afut_signal_get_arg (plain, 0));
      afut_future_unref (plain);
      g_object_unref (action);
      env_clear (&env);
      return;
    }
  g_test_trap_subprocess (NULL, 0, G_TEST_SUBPROCESS_DEFAULT);
  g_test_trap_assert_stderr ("*CRITICAL*has no signal \"no-such-signal\"*"
                             "CRITICAL*has no readable property*");
}

static void
test_property_next (void)
{
  Env env;
  GSimpleAction *action;
  AfutFuture *f;

  env_init (&env);
  action = g_simple_action_new ("go", NULL);
  f = afut_property_next (action, "enabled");
  g_simple_action_set_enabled (action, FALSE);
  assert_state (f, AFUT_FUTURE_DONE);
  g_assert_false (g_value_get_boolean (afut_property_get_value (f)));
  g_assert_cmpuint (n_handlers (action, "notify"), ==, 0);
  afut_future_unref (f);

  /* Another property's change does not count. */
  f = afut_property_next (action, "enabled");
  g_object_notify (G_OBJECT (action), "name");
  g_assert_false (afut_future_is_done (f));
  g_assert_true (afut_future_cancel (f, NULL));
  assert_cancelled (f, "");
  g_assert_cmpuint (n_handlers (action, "notify"), ==, 0);
  afut_future_unref (f);

  f = afut_property_next (action, "enabled");
  g_object_unref (action);
  assert_failed_with (f, G_IO_ERROR, G_IO_ERROR_CLOSED);
  afut_future_unref (f);
  env_clear (&env);
}

/* ---- signal streams ---- */

/* Reads a stream until its end, logging each emission's first argument
 * (an int32 GVariant) as " <n>", and " end" for the end. */
typedef struct
{
  AfutTask task;
  AfutFuture *stream;
  GString *log;
  guint max; /* stop after this many, 0 for none */
  guint n;
} Reader;

static void
reader_finalize (AfutTask *task)
{
  Reader *self = (Reader *) task;
  afut_future_unref (self->stream);
}

static void
reader (AfutTask *task)
{
  Reader *self = (Reader *) task;
  AfutFuture *event;
  const GValue *arg;

  AFUT_BEGIN (task);
  for (;;)
    {
      AFUT_AWAIT (task, afut_signal_stream_next (self->stream));
      event = afut_task_awaited (task);
      if (afut_future_get_pointer (event) == NULL)
        {
          g_string_append (self->log, " end");
          break;
        }
      arg = afut_signal_get_arg (event, 0);
      g_string_append_printf (
        self->log, " %d",
        g_value_get_variant (arg) != NULL
          ? g_variant_get_int32 (g_value_get_variant (arg))
          : -1);
      if (self->max != 0 && ++self->n == self->max)
        break;
    }
  AFUT_END (task);
}

static AfutFuture *
reader_new (AfutFuture *stream, GString *log, guint max)
{
  Reader init;
  memset (&init, 0, sizeof init);
  init.stream = afut_future_ref (stream);
  init.log = log;
  init.max = max;
  return afut_task_new (NULL, reader, sizeof init, &init, "reader",
                        reader_finalize);
}

static void
activate (GSimpleAction *action, int n)
{
  g_action_activate (G_ACTION (action), g_variant_new_int32 (n));
}

/* Emissions that come while nobody waits are kept, in order; closing
 * gives out what is kept, then the end, to every reader. */
static void
test_signal_stream_buffered_and_closed (void)
{
  Env env;
  GSimpleAction *action;
  AfutFuture *stream, *r1, *r2;
  GString *log = g_string_new (NULL);

  env_init (&env);
  action = g_simple_action_new ("go", G_VARIANT_TYPE_INT32);
  stream = afut_signal_stream_new (action, "activate");
  activate (action, 1);
  activate (action, 2);
  activate (action, 3);
  r1 = reader_new (stream, log, 2);
  settle (&env, r1);
  assert_state (r1, AFUT_FUTURE_DONE);
  g_assert_cmpstr (log->str, ==, " 1 2");
  activate (action, 4);
  afut_signal_stream_close (stream);
  assert_state (stream, AFUT_FUTURE_DONE);
  g_assert_cmpuint (n_handlers (action, "activate"), ==, 0);
  activate (action, 5); /* closed: not kept */
  g_string_truncate (log, 0);
  r2 = reader_new (stream, log, 0);
  settle (&env, r2);
  g_assert_cmpstr (log->str, ==, " 3 4 end");
  afut_future_unref (r2);
  /* After the end, the end again. */
  g_string_truncate (log, 0);
  r2 = reader_new (stream, log, 0);
  settle (&env, r2);
  g_assert_cmpstr (log->str, ==, " end");
  afut_future_unref (r2);
  afut_signal_stream_close (stream); /* twice: nothing */
  afut_future_unref (r1);
  afut_future_unref (stream);
  g_object_unref (action);
  g_string_free (log, TRUE);
  env_clear (&env);
}

/* A reader waiting on next, cancelled: no emission is lost; two readers
 * waiting when the stream closes both get the end. */
static void
test_signal_stream_cancel (void)
{
  Env env;
  GSimpleAction *action;
  AfutFuture *stream, *r1, *r2, *r3;
  GString *log1 = g_string_new (NULL), *log2 = g_string_new (NULL);

  env_init (&env);
  action = g_simple_action_new ("go", G_VARIANT_TYPE_INT32);
  stream = afut_signal_stream_new (action, "activate");
  r1 = reader_new (stream, log1, 0);
  iterate_n (env.ctx, 3);
  afut_future_cancel (r1, "reader gone");
  activate (action, 7); /* in the same iteration as the cancel */
  settle (&env, r1);
  assert_cancelled (r1, "reader gone");
  g_assert_cmpstr (log1->str, ==, "");
  r2 = reader_new (stream, log2, 1);
  settle (&env, r2);
  g_assert_cmpstr (log2->str, ==, " 7");
  afut_future_unref (r2);

  g_string_truncate (log1, 0);
  g_string_truncate (log2, 0);
  r2 = reader_new (stream, log1, 0);
  r3 = reader_new (stream, log2, 0);
  iterate_n (env.ctx, 3);
  /* Cancelling the stream closes it: both readers end. */
  g_assert_true (afut_future_cancel (stream, "closing"));
  assert_cancelled (stream, "closing");
  g_assert_cmpuint (n_handlers (action, "activate"), ==, 0);
  settle (&env, r2);
  settle (&env, r3);
  g_assert_cmpstr (log1->str, ==, " end");
  g_assert_cmpstr (log2->str, ==, " end");
  afut_future_unref (r1);
  afut_future_unref (r2);
  afut_future_unref (r3);
  afut_future_unref (stream);
  g_object_unref (action);
  g_string_free (log1, TRUE);
  g_string_free (log2, TRUE);
  env_clear (&env);
}

/* The object finalized: the stream fails with G_IO_ERROR_CLOSED and its
 * reader gets what was kept, then the end.  A stream dropped while
 * connected disconnects. */
static void
test_signal_stream_object_finalized (void)
{
  Env env;
  GSimpleAction *action;
  AfutFuture *stream, *r;
  GString *log = g_string_new (NULL);

  env_init (&env);
  action = g_simple_action_new ("go", G_VARIANT_TYPE_INT32);
  stream = afut_signal_stream_new (action, "activate");
  activate (action, 1);
  g_object_unref (action);
  assert_failed_with (stream, G_IO_ERROR, G_IO_ERROR_CLOSED);
  r = reader_new (stream, log, 0);
  settle (&env, r);
  g_assert_cmpstr (log->str, ==, " 1 end");
  afut_future_unref (r);
  afut_future_unref (stream);

  action = g_simple_action_new ("go", G_VARIANT_TYPE_INT32);
  stream = afut_signal_stream_new (action, "activate");
  activate (action, 1);
  afut_future_unref (stream);
  g_assert_cmpuint (n_handlers (action, "activate"), ==, 0);
  activate (action, 2);
  g_object_unref (action);
  g_string_free (log, TRUE);
  env_clear (&env);
}

/* A GFileMonitor's "changed" as a stream: a directory made in the watched
 * directory comes as a CREATED event for it. */
typedef struct
{
  AfutTask task;
  AfutFuture *stream;
  GFile *created;
  gboolean seen;
} Watcher;

static void
watcher_finalize (AfutTask *task)
{
  Watcher *self = (Watcher *) task;
  afut_future_unref (self->stream);
}

static void
watcher (AfutTask *task)
{
  Watcher *self = (Watcher *) task;
  AfutFuture *event;

  AFUT_BEGIN (task);
  while (!self->seen)
    {
      AFUT_AWAIT (task, afut_signal_stream_next (self->stream));
      event = afut_task_awaited (task);
      g_assert_nonnull (afut_future_get_pointer (event));
      g_assert_cmpuint (afut_signal_get_n_args (event), ==, 3);
      if (g_value_get_enum (afut_signal_get_arg (event, 2))
            == G_FILE_MONITOR_EVENT_CREATED
          && g_file_equal (G_FILE (g_value_get_object (
                             afut_signal_get_arg (event, 0))),
                           self->created))
        self->seen = TRUE;
    }
  AFUT_END (task);
}

static void
test_signal_stream_file_monitor (void)
{
  Env env;
  GFile *dir, *sub;
  GFileMonitor *monitor;
  AfutFuture *stream, *t;
  Watcher init;
  char *sub_path;

  env_init (&env);
  dir = g_file_new_for_path (env.dir);
  sub_path = env_path (&env, "made");
  sub = g_file_new_for_path (sub_path);
  monitor = g_file_monitor_directory (dir, G_FILE_MONITOR_NONE, NULL, NULL);
  g_assert_nonnull (monitor);
  stream = afut_signal_stream_new (monitor, "changed");
  memset (&init, 0, sizeof init);
  init.stream = afut_future_ref (stream);
  init.created = sub;
  t = afut_task_new (NULL, watcher, sizeof init, &init, "watcher",
                     watcher_finalize);
  iterate_n (env.ctx, 3);
  g_assert_cmpint (g_mkdir (sub_path, 0700), ==, 0);
  settle (&env, t);
  assert_state (t, AFUT_FUTURE_DONE);
  afut_signal_stream_close (stream);
  afut_future_unref (t);
  afut_future_unref (stream);
  g_file_monitor_cancel (monitor);
  g_object_unref (monitor);
  g_object_unref (sub);
  g_object_unref (dir);
  g_free (sub_path);
  env_clear (&env);
}

/* ==================================================================== */
/* ---- AFUT_GIO: any _async/_finish pair ---- */

typedef struct
{
  AfutTask task;
  GFile *file;
  char *contents;
  gsize length;
  gboolean ok;
} Loader;

static void
loader_finalize (AfutTask *task)
{
  Loader *self = (Loader *) task;
  g_object_unref (self->file);
  g_free (self->contents);
}

static void
loader (AfutTask *task)
{
  Loader *self = (Loader *) task;

  AFUT_BEGIN (task);
  AFUT_AWAIT (task, AFUT_GIO (g_file_load_contents_async, self->file));
  AFUT_GIO_FINISH (task, self->ok = g_file_load_contents_finish (
                           self->file, AFUT_GIO_RESULT, &self->contents,
                           &self->length, NULL, AFUT_GIO_ERROR));
  AFUT_END (task);
}

static AfutFuture *
loader_new (GFile *file)
{
  Loader init;
  memset (&init, 0, sizeof init);
  init.file = (GFile *) g_object_ref (file);
  return afut_task_new (NULL, loader, sizeof init, &init, "loader",
                        loader_finalize);
}

static void
test_generic_done_and_fail (void)
{
  Env env;
  GFile *file, *missing;
  AfutFuture *t;

  env_init (&env);
  file = env_file_with (&env, "a.txt", "generic");
  t = settle (&env, loader_new (file));
  assert_state (t, AFUT_FUTURE_DONE);
  g_assert_true (((Loader *) t)->ok);
  g_assert_cmpstr (((Loader *) t)->contents, ==, "generic");
  afut_future_unref (t);

  missing = env_file (&env, "missing");
  t = settle (&env, loader_new (missing));
  assert_failed_with (t, G_IO_ERROR, G_IO_ERROR_NOT_FOUND);
  afut_future_unref (t);
  g_object_unref (missing);
  g_object_unref (file);
  env_clear (&env);
}

/* A read on an empty pipe through AFUT_GIO, in a task that is cancelled:
 * the task ends cancelled after GIO's callback, the stream free. */
typedef struct
{
  AfutTask task;
  GInputStream *stream;
  char buffer[8];
  gssize n;
} PipeReader;

static void
pipe_reader (AfutTask *task)
{
  PipeReader *self = (PipeReader *) task;

  AFUT_BEGIN (task);
  AFUT_AWAIT (task, AFUT_GIO (g_input_stream_read_async, self->stream,
                              self->buffer, sizeof self->buffer,
                              G_PRIORITY_DEFAULT));
  AFUT_GIO_FINISH (task, self->n = g_input_stream_read_finish (
                           self->stream, AFUT_GIO_RESULT, AFUT_GIO_ERROR));
  AFUT_RETURN_INT (task, self->n);
  AFUT_END (task);
}

static void
test_generic_cancel (void)
{
  Env env;
  Pipe p;
  AfutFuture *t;
  PipeReader init;

  env_init (&env);
  pipe_open (&p);
  memset (&init, 0, sizeof init);
  init.stream = p.in;
  t = afut_task_new (NULL, pipe_reader, sizeof init, &init, "pipe-reader",
                     NULL);
  iterate_n (env.ctx, 5);
  g_assert_true (g_input_stream_has_pending (p.in));
  afut_future_cancel (t, "stop");
  iterate_n (env.ctx, 1);
  settle (&env, t);
  assert_cancelled (t, "stop");
  afut_future_unref (t);
  assert_input_free (p.in);
  pipe_clear (&p);
  env_clear (&env);
}

/* An _async function that starts another AFUT_GIO call itself, while
 * AFUT_GIO evaluates its arguments: each future gets its own call. */
static AfutFuture *inner_future;

static void
outer_load_async (GFile *file, GCancellable *cancellable,
                  GAsyncReadyCallback callback, gpointer data)
{
  inner_future = AFUT_GIO (g_file_query_info_async, file, "standard::size",
                           G_FILE_QUERY_INFO_NONE, G_PRIORITY_DEFAULT);
  g_file_load_contents_async (file, cancellable, callback, data);
}

static void
test_generic_nested (void)
{
  Env env;
  GFile *file;
  AfutFuture *outer;
  GFileInfo *info;
  char *contents;

  env_init (&env);
  file = env_file_with (&env, "a.txt", "nested");
  outer = AFUT_GIO (outer_load_async, file);
  settle (&env, outer);
  settle (&env, inner_future);
  g_assert_true (g_file_load_contents_finish (
    file, afut_gio_future_get_result (outer), &contents, NULL, NULL, NULL));
  g_assert_cmpstr (contents, ==, "nested");
  info = g_file_query_info_finish (
    file, afut_gio_future_get_result (inner_future), NULL);
  g_assert_cmpint (g_file_info_get_size (info), ==, 6);
  g_object_unref (info);
  g_free (contents);
  afut_future_unref (outer);
  g_clear_pointer (&inner_future, afut_future_unref);
  g_object_unref (file);
  env_clear (&env);
}

static void
test_generic_bad_input (void)
{
  Env env;
  AfutFuture *plain;

  if (g_test_subprocess ())
    {
      criticals_not_fatal ();
      env_init (&env);
      plain = afut_future_new (NULL);
      g_assert_null (afut_gio_future_get_result (plain));
      afut_future_resolve_int (plain, 1);
      g_assert_null (afut_gio_future_get_result (plain));
      afut_future_unref (plain);
      env_clear (&env);
      return;
    }
  g_test_trap_subprocess (NULL, 0, G_TEST_SUBPROCESS_DEFAULT);
  g_test_trap_assert_stderr ("*CRITICAL*not done with a GAsyncResult*");
}

/* Without a loop, a wrapper is a reported error and starts nothing. */
static void
test_no_loop (void)
{
  GFile *file;
  if (g_test_subprocess ())
    {
      criticals_not_fatal ();
      Progress p;
      memset (&p, 0, sizeof p);
      file = g_file_new_for_path ("/");
      g_assert_null (afut_file_query_info (file, "standard::size",
                                           G_FILE_QUERY_INFO_NONE,
                                           G_PRIORITY_DEFAULT));
      /* The progress data is still destroyed, once. */
      g_assert_null (afut_file_copy (file, file, G_FILE_COPY_NONE,
                                     G_PRIORITY_DEFAULT, progress_cb, &p,
                                     progress_destroy));
      g_assert_cmpuint (p.n_destroyed, ==, 1);
      g_object_unref (file);
      return;
    }
  g_test_trap_subprocess (NULL, 0, G_TEST_SUBPROCESS_DEFAULT);
  g_test_trap_assert_stderr ("*CRITICAL*no running loop*");
}

/* The loop's shutdown cancels a task awaiting a GIO call, and waits for
 * GIO's callback before it ends. */
static void
test_shutdown_waits (void)
{
  Env env;
  Pipe p;
  AfutFuture *t;

  env_init (&env);
  pipe_open (&p);
  t = await_in_task (afut_input_stream_read_bytes (p.in, 16,
                                                   G_PRIORITY_DEFAULT));
  iterate_n (env.ctx, 3);
  g_assert_true (g_input_stream_has_pending (p.in));
  afut_future_unref (t);
  env_clear (&env);
  g_assert_false (g_input_stream_has_pending (p.in));
  pipe_clear (&p);
}

/* ==================================================================== */
/* ---- GLib conveniences ---- */

typedef struct
{
  AfutTask task;
  int value;
} Job;

AFUT_TASK_DEFINE_AUTOPTR (Job)

static void
job (AfutTask *task)
{
  AFUT_BEGIN (task);
  AFUT_RETURN_INT (task, ((Job *) task)->value);
  AFUT_END (task);
}

static guint n_values_freed;

static void
count_free (gpointer data)
{
  (void) data;
  n_values_freed++;
}

static void
test_autoptr (void)
{
  Env env;
  int dummy;

  env_init (&env);
  n_values_freed = 0;
  {
    g_autoptr (AfutFuture) f = afut_future_new (NULL);
    g_autoptr (AfutEvent) event = afut_event_new (NULL);
    g_autoptr (AfutLock) lock = afut_lock_new (NULL);
    g_autoptr (AfutSemaphore) sem = afut_semaphore_new (NULL, 1);
    g_autoptr (AfutCondition) cond = afut_condition_new (NULL, NULL);
    g_autoptr (AfutQueue) queue = afut_queue_new (NULL, AFUT_QUEUE_FIFO, 0,
                                                  NULL, count_free);
    g_autoptr (AfutError) error = afut_error_new_literal (AFUT_ERROR, 1, "x");
    g_autoptr (AfutLoop) loop = afut_loop_ref (env.loop);
    afut_future_resolve_pointer (f, &dummy, count_free);
    afut_queue_put_nowait (queue, &dummy);
    g_assert_nonnull (event);
    g_assert_nonnull (lock);
    g_assert_nonnull (sem);
    g_assert_nonnull (cond);
    g_assert_nonnull (error);
    g_assert_nonnull (loop);
  }
  /* The future's value and the queue's item went with them. */
  g_assert_cmpuint (n_values_freed, ==, 2);
  {
    Job init;
    memset (&init, 0, sizeof init);
    init.value = 21;
    g_autoptr (Job) j = (Job *) afut_task_new (NULL, job, sizeof init, &init,
                                               "job", NULL);
    settle (&env, AFUT_FUTURE (j));
    g_assert_cmpint (afut_future_get_int (AFUT_FUTURE (j)), ==, 21);
  }
  env_clear (&env);
}

/* afut_glib_task_caught: the caught error, typed. */
typedef struct
{
  AfutTask task;
  GFile *file;
  int code;
} Catcher;

static void
catcher (AfutTask *task)
{
  Catcher *self = (Catcher *) task;
  const GError *error;

  AFUT_BEGIN (task);
  AFUT_AWAIT_TRY (task, afut_file_load_contents (self->file));
  error = afut_glib_task_caught (task);
  g_assert_nonnull (error);
  g_assert_true (error->domain == G_IO_ERROR);
  self->code = error->code;
  AFUT_END (task);
}

static void
test_task_caught (void)
{
  Env env;
  AfutFuture *t;
  Catcher init;

  env_init (&env);
  memset (&init, 0, sizeof init);
  init.file = env_file (&env, "missing");
  t = settle (&env, afut_task_new (NULL, catcher, sizeof init, &init,
                                   "catcher", NULL));
  assert_state (t, AFUT_FUTURE_DONE);
  g_assert_cmpint (((Catcher *) t)->code, ==, G_IO_ERROR_NOT_FOUND);
  g_object_unref (((Catcher *) t)->file);
  afut_future_unref (t);
  env_clear (&env);
}

int
main (int argc, char **argv)
{
  int status;
  char *daemon;

  g_test_init (&argc, &argv, NULL);
  reports = g_ptr_array_new_with_free_func (g_free);
  /* A write to a pipe whose reader went is an error, not a signal. */
  signal (SIGPIPE, SIG_IGN);

  g_test_add_func ("/gio/file/load-contents/done",
                   test_file_load_contents_done);
  g_test_add_func ("/gio/file/load-contents/fail",
                   test_file_load_contents_fail);
  g_test_add_func ("/gio/file/load-contents/cancel",
                   test_file_load_contents_cancel);
  g_test_add_func ("/gio/file/read/done", test_file_read_done);
  g_test_add_func ("/gio/file/read/fail", test_file_read_fail);
  g_test_add_func ("/gio/file/read/cancel", test_file_read_cancel);
  g_test_add_func ("/gio/file/create/done", test_file_create_done);
  g_test_add_func ("/gio/file/create/fail", test_file_create_fail);
  g_test_add_func ("/gio/file/create/cancel", test_file_create_cancel);
  g_test_add_func ("/gio/file/replace/done", test_file_replace_done);
  g_test_add_func ("/gio/file/replace/fail", test_file_replace_fail);
  g_test_add_func ("/gio/file/replace/cancel", test_file_replace_cancel);
  g_test_add_func ("/gio/file/query-info/done", test_file_query_info_done);
  g_test_add_func ("/gio/file/query-info/fail", test_file_query_info_fail);
  g_test_add_func ("/gio/file/query-info/cancel",
                   test_file_query_info_cancel);
  g_test_add_func ("/gio/file/enumerate/done", test_file_enumerate_done);
  g_test_add_func ("/gio/file/enumerate/fail", test_file_enumerate_fail);
  g_test_add_func ("/gio/file/enumerate/cancel", test_file_enumerate_cancel);
  g_test_add_func ("/gio/file/delete", test_file_delete);
  g_test_add_func ("/gio/file/make-directory", test_file_make_directory);
  g_test_add_func ("/gio/file/copy/done", test_file_copy_done);
  g_test_add_func ("/gio/file/copy/fail", test_file_copy_fail);
  g_test_add_func ("/gio/file/copy/cancel-from-progress",
                   test_file_copy_cancel);
  g_test_add_func ("/gio/file/move", test_file_move);

  g_test_add_func ("/gio/stream/read", test_stream_read);
  g_test_add_func ("/gio/stream/read-bytes", test_stream_read_bytes);
  g_test_add_func ("/gio/stream/read-all", test_stream_read_all);
  g_test_add_func ("/gio/stream/write-all", test_stream_write_all);
  g_test_add_func ("/gio/stream/write-bytes", test_stream_write_bytes);
  g_test_add_func ("/gio/stream/splice", test_stream_splice);
  g_test_add_func ("/gio/stream/close", test_stream_close);

  g_test_add_func ("/gio/socket/connect-and-accept",
                   test_socket_connect_and_accept);
  g_test_add_func ("/gio/socket/connect-to-host",
                   test_socket_connect_to_host_done);
  g_test_add_func ("/gio/socket/connect-fail", test_socket_connect_fail);
  g_test_add_func ("/gio/socket/cancel", test_socket_cancel);
  g_test_add_func ("/gio/resolver/lookup-by-name", test_resolver_lookup);

  g_test_add_func ("/gio/subprocess/wait", test_subprocess_wait);
  g_test_add_func ("/gio/subprocess/wait-check", test_subprocess_wait_check);
  g_test_add_func ("/gio/subprocess/communicate",
                   test_subprocess_communicate);
  g_test_add_func ("/gio/subprocess/communicate-utf8",
                   test_subprocess_communicate_utf8);
  g_test_add_func ("/gio/subprocess/bad-input", test_subprocess_bad_input);

  g_test_add_func ("/gio/dbus/connection-call", test_dbus_connection_call);
  g_test_add_func ("/gio/dbus/proxy-call", test_dbus_proxy_call);

  g_test_add_func ("/gio/signal/next/done", test_signal_next_done);
  g_test_add_func ("/gio/signal/next/object-finalized",
                   test_signal_next_object_finalized);
  g_test_add_func ("/gio/signal/next/cancel", test_signal_next_cancel);
  g_test_add_func ("/gio/signal/next/in-task", test_signal_next_in_task);
  g_test_add_func ("/gio/signal/bad-input", test_signal_bad_input);
  g_test_add_func ("/gio/signal/property-next", test_property_next);
  g_test_add_func ("/gio/signal/stream/buffered-and-closed",
                   test_signal_stream_buffered_and_closed);
  g_test_add_func ("/gio/signal/stream/cancel", test_signal_stream_cancel);
  g_test_add_func ("/gio/signal/stream/object-finalized",
                   test_signal_stream_object_finalized);
  g_test_add_func ("/gio/signal/stream/file-monitor",
                   test_signal_stream_file_monitor);

  g_test_add_func ("/gio/generic/done-and-fail", test_generic_done_and_fail);
  g_test_add_func ("/gio/generic/cancel", test_generic_cancel);
  g_test_add_func ("/gio/generic/nested", test_generic_nested);
  g_test_add_func ("/gio/generic/bad-input", test_generic_bad_input);
  g_test_add_func ("/gio/no-loop", test_no_loop);
  g_test_add_func ("/gio/shutdown-waits", test_shutdown_waits);

  g_test_add_func ("/gio/glib/autoptr", test_autoptr);
  g_test_add_func ("/gio/glib/task-caught", test_task_caught);

  /* One private bus for the D-Bus cases, if dbus-daemon is there. */
  daemon = g_find_program_in_path ("dbus-daemon");
  if (daemon != NULL && !g_test_subprocess ())
    {
      test_bus = g_test_dbus_new (G_TEST_DBUS_NONE);
      g_test_dbus_up (test_bus);
    }
  g_free (daemon);
  status = g_test_run ();
  if (test_bus != NULL)
    {
      g_test_dbus_down (test_bus);
      g_clear_object (&test_bus);
    }
  g_ptr_array_unref (reports);
  return status;
}
