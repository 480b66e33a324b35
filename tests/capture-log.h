/* capture-log.h - what afut logged, from any thread: the suites that
 * check criticals raised on other threads (test-loop-thread,
 * test-glib-loop).  capture_begin () installs the log func; capture_end ()
 * removes it and returns the lines, "LEVEL message", joined by newlines
 * (the caller frees).  Include after afut.h and <glib.h>. */

#ifndef AFUT_TEST_CAPTURE_LOG_H
#define AFUT_TEST_CAPTURE_LOG_H

static GMutex log_lock;
static GPtrArray *log_lines; /* "LEVEL message" */

static void
capture_log (AfutLogLevel level, const char *message, void *data)
{
  (void) data;
  g_mutex_lock (&log_lock);
  g_ptr_array_add (log_lines,
                   g_strdup_printf ("%s %s",
                                    level == AFUT_LOG_CRITICAL  ? "CRITICAL"
                                    : level == AFUT_LOG_WARNING ? "WARNING"
                                                                : "ERROR",
                                    message));
  g_mutex_unlock (&log_lock);
}

static void
capture_begin (void)
{
  g_mutex_lock (&log_lock);
  if (log_lines == NULL)
    log_lines = g_ptr_array_new_with_free_func (g_free);
  g_ptr_array_set_size (log_lines, 0);
  g_mutex_unlock (&log_lock);
  afut_set_log_func (capture_log, NULL);
}

static char *
capture_end (void)
{
  char *all;
  afut_set_log_func (NULL, NULL);
  g_mutex_lock (&log_lock);
  g_ptr_array_add (log_lines, NULL);
  all = g_strjoinv ("\n", (char **) log_lines->pdata);
  g_ptr_array_set_size (log_lines, 0);
  g_mutex_unlock (&log_lock);
  return all;
}

#endif
