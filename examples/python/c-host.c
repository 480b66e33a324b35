/* c-host.c - a C program that links libafut-1 and runs a Python plugin on
 * its own afut loop: the two sides share their futures, one object each.
 *
 *   - C starts a C task, "c-producer", that sleeps a second and returns 42;
 *   - the Python plugin (PLUGIN below, run in this process) finds that
 *     task among the loop's tasks, awaits it as any future, and starts a
 *     Python task, "py-plugin", that returns a string;
 *   - C's main task finds "py-plugin", awaits it with AFUT_AWAIT, and
 *     reads its value: a GValue holding the Python object.
 *
 * Build: libafut-1, its typelib and python3-embed (examples/meson.build);
 * run with GI_TYPELIB_PATH and PYTHONPATH pointing at the build and the
 * override, as the gi suite does.  AFUT_CLOCK=virtual: no wall time. */

#include <Python.h> /* first, as Python asks */

#include "afut.h"
#include "afut-glib.h"
#include "afut-gi.h"

#include <string.h>

static const char PLUGIN[] =
  "import gi\n"
  "gi.require_version('Afut', '1')\n"
  "from gi.repository import Afut\n"
  "\n"
  "def find(name):\n"
  "    found = []\n"
  "    def visit(task, *unused):\n"
  "        if task.get_name() == name:\n"
  "            found.append(task.get_future())\n"
  "    Afut.get_event_loop().foreach_task(visit)\n"
  "    return found[0]\n"
  "\n"
  "async def plugin():\n"
  "    producer = find('c-producer')  # the C task itself\n"
  "    print(f'plugin: awaiting the C task {producer.get_name()!r}', flush=True)\n"
  "    value = await producer\n"
  "    print(f'plugin: the C task gave {value!r}', flush=True)\n"
  "    await Afut.sleep(0.5)\n"
  "    return f'python saw {value}'\n"
  "\n"
  "Afut.create_task(plugin(), name='py-plugin')\n";

typedef struct
{
  AfutTask task;
} Producer;

static void
producer (AfutTask *task)
{
  AFUT_BEGIN (task);
  AFUT_AWAIT (task, afut_sleep (1.0));
  printf ("C: c-producer returns 42\n");
  fflush (stdout); /* in order with Python's prints */
  AFUT_RETURN_INT (task, 42);
  AFUT_END (task);
}

typedef struct
{
  const char *name;
  AfutFuture *found;
} Find;

static void
find_task (AfutTask *task, void *data)
{
  Find *f = data;
  if (f->found == NULL && strcmp (afut_task_get_name (task), f->name) == 0)
    f->found = afut_future_ref (AFUT_FUTURE (task));
}

typedef struct
{
  AfutTask task;
  AfutFuture *plugin;
} Main;

static void
main_finalize (AfutTask *task)
{
  afut_future_unref (((Main *) task)->plugin);
}

static void
amain (AfutTask *task)
{
  Main *self = (Main *) task;
  const GValue *value;
  AFUT_BEGIN (task);
  {
    Find f = { "py-plugin", NULL };
    afut_loop_foreach_task (afut_future_get_loop (AFUT_FUTURE (task)),
                            find_task, &f);
    self->plugin = f.found;
  }
  if (self->plugin == NULL)
    AFUT_THROW (task, afut_error_new_literal (AFUT_ERROR, AFUT_ERROR_FAILED,
                                              "no py-plugin task"));
  printf ("C: awaiting the Python task '%s'\n",
          afut_task_get_name (afut_future_get_task (self->plugin)));
  fflush (stdout);
  AFUT_AWAIT (task, afut_future_ref (self->plugin));
  value = afut_future_get_value (afut_task_awaited (task), NULL);
  /* A Python value rides in a GValue of PyGObject's "PyObject" type. */
  if (value != NULL && strcmp (G_VALUE_TYPE_NAME (value), "PyObject") == 0)
    printf ("C: the Python task gave '%s'\n",
            PyUnicode_AsUTF8 ((PyObject *) g_value_get_boxed (value)));
  AFUT_END (task);
}

int
main (void)
{
  const char *clock = g_getenv ("AFUT_CLOCK");
  AfutLoop *loop;
  AfutFuture *c_task, *main_task;
  int status = 0;

  loop = afut_glib_loop_new (NULL, clock != NULL && strcmp (clock, "virtual") == 0
                                     ? AFUT_LOOP_VIRTUAL_CLOCK
                                     : AFUT_LOOP_NONE);
  afut_loop_push_thread_default (loop); /* the plugin's loop too */
  c_task = afut_task_new (loop, producer, sizeof (Producer), NULL,
                          "c-producer", NULL);

  {
    /* The Python whose site has PyGObject (the build names it): found in
     * PATH, another python3 would bring its own sys.path. */
    PyConfig config;
    PyConfig_InitPythonConfig (&config);
#ifdef AFUT_PYTHON
    PyConfig_SetBytesString (&config, &config.program_name, AFUT_PYTHON);
#endif
    Py_InitializeFromConfig (&config);
    PyConfig_Clear (&config);
  }
  if (PyRun_SimpleString (PLUGIN) != 0)
    status = 1;
  else
    {
      main_task = afut_task_new (loop, amain, sizeof (Main), NULL, "main",
                                 main_finalize);
      afut_loop_run_until_complete (loop, main_task);
      if (afut_future_get_error (main_task) != NULL)
        {
          fprintf (stderr, "main failed: %s\n",
                   afut_future_get_error (main_task)->message);
          status = 1;
        }
      afut_future_unref (main_task);
    }
  afut_future_unref (c_task);
  afut_loop_pop_thread_default (loop);
  afut_loop_unref (loop); /* Python still runs: its values can go */
  fflush (stdout);
  if (Py_FinalizeEx () < 0)
    status = 1;
  return status;
}
