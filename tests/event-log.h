/* event-log.h - what ran, in order, for the suites that compare event
 * sequences: ev () appends "word" to @events, space-separated; line ()
 * appends a line of program output to @lines.  The suite creates both
 * with g_string_new () before its tests run and frees them after.
 * Include after <glib.h>. */

#ifndef AFUT_TEST_EVENT_LOG_H
#define AFUT_TEST_EVENT_LOG_H

#include <stdarg.h>

static GString *events; /* "a b c": what ran, in order */
static GString *lines;  /* the tutorial programs' output */

static void ev (const char *format, ...) G_GNUC_PRINTF (1, 2);
static void line (const char *format, ...) G_GNUC_PRINTF (1, 2);

static void
ev (const char *format, ...)
{
  va_list args;
  if (events->len > 0)
    g_string_append_c (events, ' ');
  va_start (args, format);
  g_string_append_vprintf (events, format, args);
  va_end (args);
}

static void
line (const char *format, ...)
{
  va_list args;
  va_start (args, format);
  g_string_append_vprintf (lines, format, args);
  va_end (args);
  g_string_append_c (lines, '\n');
}

#endif
