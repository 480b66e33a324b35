// gtk-cxx.cpp - afut in a C++ GTK 4 program, with GTK's C API (no gtkmm):
// both headers, the implementation included, built as C++17.
//
// Start runs a job: a task that counts ten steps on a progress bar
// (afut_sleep) and then reads a file with GIO (g_file_load_contents_async
// through afut_gio_ready); Cancel cancels it wherever it waits, the GIO
// read included.  The window stays live throughout: the afut loop is one
// GSource on GTK's main context.
//
// --self-test clicks through a finished run, a cancelled one and a window
// closed while a job runs, checks the widgets, prints "PASS: N checks" or
// "FAIL: ..." and exits 0 or 1 (meson test --suite gtk runs it under
// Xvfb).
//
// C++ notes: AFUT_SPAWN in C++17 takes the fields in order after an empty
// {} for the AfutTask (C++20 takes `.win = this` as in C); a task struct is
// trivially copyable (a static_assert checks); locals a step function
// uses are declared before AFUT_BEGIN (a jump to an await's case label may
// not cross an initialization).
#define AFUT_IMPLEMENTATION
#define AFUT_GLIB
#include "afut.h"
#include "afut-glib.h"

#include <glib/gstdio.h>
#include <gtk/gtk.h>
#include <unistd.h>

#include <cstdio>
#include <string>

namespace {

constexpr int kSteps = 10;
constexpr double kStepSeconds = 0.05;
constexpr gsize kFileSize = 4096;

class Window;

// async def job(win): the task's struct.
struct Job
{
  AfutTask task;
  Window *win;
  int step;
};

class Window
{
public:
  Window (GtkApplication *app, const std::string &path);
  ~Window ();
  Window (const Window &) = delete;
  Window &operator= (const Window &) = delete;

  void start ();
  void cancel ();
  bool idle () const { return job_ == nullptr; }
  int step () const;
  std::string status () const { return gtk_label_get_text (status_); }
  double fraction () const
  {
    return gtk_progress_bar_get_fraction (progress_);
  }

  GtkWidget *widget () { return GTK_WIDGET (window_); }
  GtkWidget *start_button () { return start_; }
  GtkWidget *cancel_button () { return cancel_; }

private:
  static void job_step (AfutTask *task);
  static void on_job_done (AfutFuture *future, void *data);
  void set_running (bool running);

  GtkWindow *window_;
  GtkProgressBar *progress_;
  GtkLabel *status_;
  GtkWidget *start_;
  GtkWidget *cancel_;
  GFile *file_;
  AfutFuture *job_ = nullptr; // the running job, or nullptr
};

Window::Window (GtkApplication *app, const std::string &path)
  : window_ (GTK_WINDOW (gtk_application_window_new (app))),
    progress_ (GTK_PROGRESS_BAR (gtk_progress_bar_new ())),
    status_ (GTK_LABEL (gtk_label_new ("Press Start"))),
    start_ (gtk_button_new_with_label ("Start")),
    cancel_ (gtk_button_new_with_label ("Cancel")),
    file_ (g_file_new_for_path (path.c_str ()))
{
  GtkWidget *box = gtk_box_new (GTK_ORIENTATION_VERTICAL, 12);
  GtkWidget *buttons = gtk_box_new (GTK_ORIENTATION_HORIZONTAL, 6);

  gtk_window_set_title (window_, "afut from C++");
  gtk_window_set_default_size (window_, 360, -1);
  gtk_widget_set_margin_top (box, 12);
  gtk_widget_set_margin_bottom (box, 12);
  gtk_widget_set_margin_start (box, 12);
  gtk_widget_set_margin_end (box, 12);
  gtk_box_append (GTK_BOX (buttons), start_);
  gtk_box_append (GTK_BOX (buttons), cancel_);
  gtk_box_append (GTK_BOX (box), GTK_WIDGET (progress_));
  gtk_box_append (GTK_BOX (box), GTK_WIDGET (status_));
  gtk_box_append (GTK_BOX (box), buttons);
  gtk_window_set_child (window_, box);

  // Captureless lambdas convert to the C callbacks GLib wants.
  g_signal_connect_swapped (start_, "clicked",
                            G_CALLBACK (+[] (Window *self) { self->start (); }),
                            this);
  g_signal_connect_swapped (cancel_, "clicked",
                            G_CALLBACK (+[] (Window *self) { self->cancel (); }),
                            this);
  // The job and its done callback touch these after the window may have
  // gone (closed while a job runs): hold them until this object goes.
  g_object_ref (progress_);
  g_object_ref (status_);
  g_object_ref (start_);
  g_object_ref (cancel_);
  // Closing the window cancels the job.
  g_signal_connect_swapped (window_, "close-request",
                            G_CALLBACK (+[] (Window *self) -> gboolean {
                              self->cancel ();
                              return FALSE;
                            }),
                            this);
  set_running (false);
}

Window::~Window ()
{
  // main() deletes the window state after the loop's last unref, which
  // cancelled a job still running and waited for it to end.
  g_object_unref (progress_);
  g_object_unref (status_);
  g_object_unref (start_);
  g_object_unref (cancel_);
  g_object_unref (file_);
}

int
Window::step () const
{
  return job_ != nullptr ? reinterpret_cast<Job *> (AFUT_TASK (job_))->step
                         : -1;
}

void
Window::set_running (bool running)
{
  gtk_widget_set_sensitive (start_, !running);
  gtk_widget_set_sensitive (cancel_, running);
}

void
Window::job_step (AfutTask *task)
{
  Job *self = reinterpret_cast<Job *> (task);
  Window *win = self->win;
  AfutFuture *op;
  GBytes *bytes;
  GError *error = nullptr;
  char *contents;
  gsize length;

  AFUT_BEGIN (task);
  for (self->step = 0; self->step < kSteps; self->step++)
    {
      gtk_progress_bar_set_fraction (win->progress_,
                                     static_cast<double> (self->step) / kSteps);
      AFUT_AWAIT (task, afut_sleep (kStepSeconds));
    }
  gtk_progress_bar_set_fraction (win->progress_, 1.0);
  gtk_label_set_text (win->status_, "Reading...");

  op = afut_gio_future_new (nullptr);
  g_file_load_contents_async (win->file_, afut_glib_future_get_cancellable (op),
                              afut_gio_ready, afut_future_ref (op));
  AFUT_AWAIT (task, op);
  if (!g_file_load_contents_finish (
        win->file_,
        static_cast<GAsyncResult *> (
          afut_future_get_pointer (afut_task_awaited (task))),
        &contents, &length, nullptr, &error))
    AFUT_THROW (task, afut_glib_error_from_gerror (error));
  bytes = g_bytes_new_take (contents, length);
  AFUT_RETURN_POINTER (task, bytes, reinterpret_cast<AfutDestroyNotify> (g_bytes_unref));
  AFUT_END (task);
}

void
Window::on_job_done (AfutFuture *future, void *data)
{
  Window *win = static_cast<Window *> (data);
  std::string text;

  if (afut_future_is_cancelled (future))
    text = "Cancelled at step " + std::to_string (win->step () + 1) + " of "
           + std::to_string (kSteps);
  else if (const GError *error = afut_glib_future_get_error (future))
    text = std::string ("Failed: ") + error->message;
  else
    text = "Done: read "
           + std::to_string (g_bytes_get_size (static_cast<GBytes *> (
               afut_future_get_pointer (future))))
           + " bytes";
  gtk_label_set_text (win->status_, text.c_str ());
  afut_future_unref (win->job_);
  win->job_ = nullptr;
  win->set_running (false);
}

void
Window::start ()
{
  if (job_ != nullptr)
    return;
  gtk_progress_bar_set_fraction (progress_, 0.0);
  gtk_label_set_text (status_, "Counting...");
#if __cplusplus >= 202002L
  job_ = AFUT_SPAWN (Job, job_step, .win = this);
#else
  job_ = AFUT_SPAWN (Job, job_step, {}, this);
#endif
  afut_future_add_done_callback (job_, on_job_done, this);
  set_running (true);
}

void
Window::cancel ()
{
  if (job_ != nullptr)
    afut_future_cancel (job_, "cancelled by the user");
}

// ---- the self-test: clicks, waits, checks ----

struct Checks
{
  int run = 0;
  int failed = 0;

  void check (bool ok, const std::string &what)
  {
    run++;
    if (!ok)
      failed++;
    std::printf ("%s %s\n", ok ? "ok" : "not ok", what.c_str ());
  }
};

struct App
{
  Window *win = nullptr;
  std::string path;
  gboolean self_test = FALSE;
  Checks checks;
};

struct SelfTest
{
  AfutTask task;
  App *app;
  gint64 deadline;
  int cancelled_at;
};

void
click (GtkWidget *button)
{
  g_signal_emit_by_name (button, "clicked");
}

// Polls @cond on the loop until it holds, for at most 30 s (a hang is a
// failed check, not a stuck test).
#define SELF_TEST_WAIT(cond, what)                                            \
  for (self->deadline = g_get_monotonic_time () + 30 * G_USEC_PER_SEC;       \
       !(cond);)                                                              \
    {                                                                         \
      if (g_get_monotonic_time () > self->deadline)                           \
        {                                                                     \
          checks.check (false, std::string ("timed out waiting until ")      \
                                 + (what));                                   \
          break;                                                              \
        }                                                                     \
      AFUT_AWAIT (task, afut_sleep (0.01));                                   \
    }

void
self_test (AfutTask *task)
{
  SelfTest *self = reinterpret_cast<SelfTest *> (task);
  Window *win = self->app->win;
  Checks &checks = self->app->checks;

  AFUT_BEGIN (task);
  checks.check (win->idle () && win->status () == "Press Start",
                "the window opens idle");

  click (win->start_button ());
  checks.check (!win->idle ()
                  && !gtk_widget_get_sensitive (win->start_button ())
                  && gtk_widget_get_sensitive (win->cancel_button ()),
                "Start starts the job: Start greyed out, Cancel active");
  SELF_TEST_WAIT (win->idle (), "the job ended");
  checks.check (win->status () == "Done: read " + std::to_string (kFileSize)
                                    + " bytes",
                "the job read the file: \"" + win->status () + "\"");
  checks.check (win->fraction () == 1.0, "the progress bar is full");
  checks.check (gtk_widget_get_sensitive (win->start_button ())
                  && !gtk_widget_get_sensitive (win->cancel_button ()),
                "idle again: Start active, Cancel greyed out");

  click (win->start_button ());
  SELF_TEST_WAIT (win->step () >= 3, "the job reached step 4");
  self->cancelled_at = win->step ();
  click (win->cancel_button ());
  SELF_TEST_WAIT (win->idle (), "the cancelled job ended");
  checks.check (win->status () == "Cancelled at step "
                                    + std::to_string (self->cancelled_at + 1)
                                    + " of " + std::to_string (kSteps),
                "Cancel stops the job where it waits: \"" + win->status ()
                  + "\"");
  checks.check (win->fraction () > 0.0 && win->fraction () < 1.0,
                "the progress bar stopped midway");

  // Closing the window while a job runs cancels it; the window goes at
  // once, the job's cleanup still finds the widgets it updates.
  click (win->start_button ());
  SELF_TEST_WAIT (win->step () >= 1, "the job reached step 2");
  gtk_window_close (GTK_WINDOW (win->widget ()));
  SELF_TEST_WAIT (win->idle (), "the job ended after the window closed");
  checks.check (win->status ().rfind ("Cancelled at step ", 0) == 0,
                "closing the window cancelled the job: \"" + win->status ()
                  + "\"");

  std::printf ("%s: %d checks, %d failed\n",
               checks.failed != 0 ? "FAIL" : "PASS", checks.run,
               checks.failed);
  g_application_release (g_application_get_default ());
  AFUT_END (task);
}

void
on_activate (GtkApplication *gtk_app, App *app)
{
  if (app->win != nullptr)
    {
      gtk_window_present (GTK_WINDOW (app->win->widget ()));
      return;
    }
  app->win = new Window (gtk_app, app->path);
  gtk_window_present (GTK_WINDOW (app->win->widget ()));
  if (app->self_test)
    {
      // The test ends the application, not the window it closes.
      g_application_hold (G_APPLICATION (gtk_app));
#if __cplusplus >= 202002L
      AfutFuture *test = AFUT_SPAWN (SelfTest, self_test, .app = app);
#else
      AfutFuture *test = AFUT_SPAWN (SelfTest, self_test, {}, app);
#endif
      afut_future_unref (test); // the loop keeps it until it ends
    }
}

// The file the job reads: kFileSize bytes in a fresh temporary file.
bool
make_file (std::string &path)
{
  GError *error = nullptr;
  char *name = nullptr;
  int fd = g_file_open_tmp ("afut-gtk-cxx-XXXXXX", &name, &error);
  std::string text (kFileSize, 'x');

  if (fd < 0 || !g_file_set_contents (name, text.data (),
                                      static_cast<gssize> (text.size ()),
                                      &error))
    {
      std::fprintf (stderr, "%s\n", error->message);
      g_error_free (error);
      if (fd >= 0)
        close (fd);
      g_free (name);
      return false;
    }
  close (fd);
  path = name;
  g_free (name);
  return true;
}

} // namespace

int
main (int argc, char **argv)
{
  App app;
  const GOptionEntry options[] = {
    { "self-test", 0, 0, G_OPTION_ARG_NONE, &app.self_test,
      "Run a job to its end and cancel another, check the window and exit",
      nullptr },
    { nullptr, 0, 0, G_OPTION_ARG_NONE, nullptr, nullptr, nullptr },
  };
  GtkApplication *gtk_app;
  AfutLoop *loop;
  int status;

  if (!make_file (app.path))
    return 1;
  // afut's loop, as one GSource on GTK's (default) main context;
  // AFUT_SPAWN in signal handlers finds it as the thread default.
  loop = afut_glib_loop_new (nullptr, 0);
  afut_loop_push_thread_default (loop);

  gtk_app = gtk_application_new ("org.example.AfutGtkCxx",
                                 G_APPLICATION_NON_UNIQUE);
  g_application_add_main_option_entries (G_APPLICATION (gtk_app), options);
  g_signal_connect (gtk_app, "activate", G_CALLBACK (on_activate), &app);
  status = g_application_run (G_APPLICATION (gtk_app), argc, argv);

  // Cancels what still runs and waits for it.
  afut_loop_pop_thread_default (loop);
  afut_loop_unref (loop);
  g_object_unref (gtk_app);
  delete app.win;
  g_remove (app.path.c_str ());
  if (status == 0 && app.self_test && app.checks.failed > 0)
    status = 1;
  return status;
}
