#define AFUT_IMPLEMENTATION   /* in one file */
#define AFUT_GLIB
#include "afut.h"
#include "afut-glib.h"
#include <gtk/gtk.h>

typedef struct { AfutTask task; GtkLabel *label; } Work;

static void
work_finalize (AfutTask *task)
{
  g_object_unref (((Work *) task)->label);
}

static void
work (AfutTask *task)                /* async def work(label): */
{
  Work *self = (Work *) task;
  AFUT_BEGIN (task);
  gtk_label_set_text (self->label, "Working...");
  AFUT_AWAIT (task, afut_sleep (2.0));        /* the window stays live */
  gtk_label_set_text (self->label, "Done after 2 s");
  AFUT_END (task);
}

static void
on_clicked (GtkButton *button, GtkLabel *label)
{
  AfutFuture *task = AFUT_SPAWN (Work, work, .label = g_object_ref (label));
  afut_task_set_finalize (AFUT_TASK (task), work_finalize);
  afut_future_unref (task);          /* the loop keeps it until it ends */
  (void) button;
}

static void
on_activate (GtkApplication *app, gpointer data)
{
  GtkWidget *window = gtk_application_window_new (app);
  GtkWidget *box = gtk_box_new (GTK_ORIENTATION_VERTICAL, 12);
  GtkWidget *label = gtk_label_new ("Press the button");
  GtkWidget *button = gtk_button_new_with_label ("Start");
  g_signal_connect (button, "clicked", G_CALLBACK (on_clicked), label);
  gtk_box_append (GTK_BOX (box), label);
  gtk_box_append (GTK_BOX (box), button);
  gtk_window_set_child (GTK_WINDOW (window), box);
  gtk_window_present (GTK_WINDOW (window));
  (void) data;
}

int
main (int argc, char **argv)
{
  AfutLoop *loop = afut_glib_loop_new (NULL, 0);   /* on GTK's main context */
  GtkApplication *app = gtk_application_new ("org.example.AfutMinimal",
                                             G_APPLICATION_DEFAULT_FLAGS);
  int status;
  afut_loop_push_thread_default (loop);   /* AFUT_SPAWN in signal handlers */
  g_signal_connect (app, "activate", G_CALLBACK (on_activate), NULL);
  status = g_application_run (G_APPLICATION (app), argc, argv);
  g_object_unref (app);
  afut_loop_pop_thread_default (loop);
  afut_loop_unref (loop);                 /* cancels what still runs */
  return status;
}
