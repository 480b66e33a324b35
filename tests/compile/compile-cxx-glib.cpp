// Proves afut.h and glib-adapter/afut-glib.h, implementation included,
// build warning-free as C++17 and C++20 (-Wall -Wextra -Wpedantic
// -Werror), with g++ and clang++, and that the result runs on a GLib
// main context: AFUT_SPAWN and AFUT_CORO in their C++ forms, a GIO call
// through afut_gio_ready(), a GIO call cancelled through its future, and
// a GError thrown and caught.
#define AFUT_IMPLEMENTATION
#define AFUT_GLIB
#include "afut.h"
#include "afut-glib.h"

#include <cstdio>

namespace {

struct QueryType
{
  AfutTask task;
  GFile *file;
  bool cancel; // cancel the call through its future at once
};

// async def query_type(file): the file's GFileType, from GIO.
void
query_type (AfutTask *task)
{
  QueryType *self = reinterpret_cast<QueryType *> (task);
  AfutFuture *op;
  GFileInfo *info;
  GError *error = nullptr;
  GFileType type;
  AFUT_BEGIN (task);
  op = afut_gio_future_new (nullptr);
  g_file_query_info_async (self->file, G_FILE_ATTRIBUTE_STANDARD_TYPE,
                           G_FILE_QUERY_INFO_NONE, G_PRIORITY_DEFAULT,
                           afut_glib_future_get_cancellable (op),
                           afut_gio_ready, afut_future_ref (op));
  if (self->cancel)
    afut_future_cancel (op, "not needed");
  AFUT_AWAIT (task, op);
  info = g_file_query_info_finish (
    self->file,
    static_cast<GAsyncResult *> (afut_future_get_pointer (afut_task_awaited (task))),
    &error);
  if (info == nullptr)
    AFUT_THROW (task, afut_glib_error_from_gerror (error));
  type = g_file_info_get_file_type (info);
  g_object_unref (info);
  AFUT_RETURN_INT (task, type);
  AFUT_END (task);
}

void
query_type_finalize (AfutTask *task)
{
  g_object_unref (reinterpret_cast<QueryType *> (task)->file);
}

struct Main
{
  AfutTask task;
  int failures;
  AfutFuture *cancelled;
};

#if __cplusplus >= 202002L
#define QUERY(path, cancel_)                                                  \
  AFUT_CORO (QueryType, query_type, .file = g_file_new_for_path (path),       \
             .cancel = cancel_)
#define SPAWN_QUERY(path, cancel_)                                            \
  AFUT_SPAWN (QueryType, query_type, .file = g_file_new_for_path (path),      \
              .cancel = cancel_)
#else
#define QUERY(path, cancel_)                                                  \
  AFUT_CORO (QueryType, query_type, {}, g_file_new_for_path (path), cancel_)
#define SPAWN_QUERY(path, cancel_)                                            \
  AFUT_SPAWN (QueryType, query_type, {}, g_file_new_for_path (path), cancel_)
#endif

AfutFuture *
with_finalize (AfutFuture *task)
{
  afut_task_set_finalize (AFUT_TASK (task), query_type_finalize);
  return task;
}

void
amain (AfutTask *task)
{
  Main *self = reinterpret_cast<Main *> (task);
  const GError *error;
  AFUT_BEGIN (task);
  self->cancelled = with_finalize (SPAWN_QUERY ("/", true));
  AFUT_AWAIT (task, afut_sleep (1.0));
  AFUT_AWAIT (task, with_finalize (QUERY ("/", false)));
  if (afut_future_get_int (afut_task_awaited (task)) != G_FILE_TYPE_DIRECTORY)
    self->failures++;
  AFUT_AWAIT_TRY (task, with_finalize (QUERY ("/nonexistent/afut", false)));
  error = reinterpret_cast<const GError *> (afut_task_caught (task));
  if (error == nullptr
      || !g_error_matches (error, G_IO_ERROR, G_IO_ERROR_NOT_FOUND))
    self->failures++;
  AFUT_AWAIT_TRY (task, self->cancelled);
  self->cancelled = nullptr;
  if (!afut_future_is_cancelled (afut_task_awaited (task)))
    self->failures++;
  AFUT_RETURN_INT (task, self->failures);
  AFUT_END (task);
}

} // namespace

int
main ()
{
  GMainContext *context = g_main_context_new ();
  AfutLoop *loop;
  AfutFuture *main_task;
  int failures;

  g_main_context_push_thread_default (context);
  loop = afut_glib_loop_new (context, AFUT_LOOP_VIRTUAL_CLOCK);
#if __cplusplus >= 202002L
  main_task = afut_task_new (loop, amain, sizeof (Main),
                             AFUT__INIT (Main, .failures = 0), "amain",
                             nullptr);
#else
  main_task = afut_task_new (loop, amain, sizeof (Main), nullptr, "amain",
                             nullptr);
#endif
  afut_loop_run_until_complete (loop, main_task);
  failures = afut_future_is_done (main_task) && !afut_future_get_error (main_task)
               ? static_cast<int> (afut_future_get_int (main_task))
               : -1;
  afut_future_unref (main_task);
  afut_loop_unref (loop);
  g_main_context_pop_thread_default (context);
  g_main_context_unref (context);
  if (failures != 0)
    {
      std::fprintf (stderr, "compile-cxx-glib: %d checks failed\n", failures);
      return 1;
    }
  return 0;
}
