/* The consumer's program: afut on GLib, one task that sleeps on the
 * virtual clock; exits 0 when it ran. */
#define AFUT_IMPLEMENTATION
#define AFUT_GLIB
#include "afut.h"
#include "afut-glib.h"

static void
nap (AfutTask *task)
{
  AFUT_BEGIN (task);
  AFUT_AWAIT (task, afut_sleep (1.0));
  AFUT_RETURN_INT (task, 42);
  AFUT_END (task);
}

int
main (void)
{
  AfutLoop *loop = afut_glib_loop_new (NULL, AFUT_LOOP_VIRTUAL_CLOCK);
  AfutFuture *task = afut_task_new (loop, nap, sizeof (AfutTask), NULL,
                                    "nap", NULL);
  int ok;

  afut_loop_run_until_complete (loop, task);
  ok = afut_future_get_int (task) == 42;
  afut_future_unref (task);
  afut_loop_unref (loop);
  return ok ? 0 : 1;
}
