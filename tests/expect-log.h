/* expect-log.h - the afut log harness of the correct-use suites: any
 * afut critical or warning fails the test, unless the test scoped an
 * expectation for it with expect_log_begin () / expect_log_end ().
 * Include after afut.h and <glib.h>; install with
 * afut_set_log_func (test_log_func, NULL). */

#ifndef AFUT_TEST_EXPECT_LOG_H
#define AFUT_TEST_EXPECT_LOG_H

#include <string.h>

typedef struct
{
  gboolean active;
  AfutLogLevel level;
  const char *pattern;
  guint count;
} ExpectedLog;

static ExpectedLog expected_log;

static void
test_log_func (AfutLogLevel level, const char *message, void *data)
{
  (void) data;
  if (expected_log.active && level == expected_log.level
      && strstr (message, expected_log.pattern) != NULL)
    {
      expected_log.count++;
      return;
    }
  g_printerr ("unexpected afut %s: %s\n",
              level == AFUT_LOG_CRITICAL ? "critical" : "warning", message);
  g_test_fail_printf ("unexpected afut %s: %s",
                      level == AFUT_LOG_CRITICAL ? "critical" : "warning",
                      message);
}

static void
expect_log_begin (AfutLogLevel level, const char *pattern)
{
  g_assert_false (expected_log.active);
  expected_log.active = TRUE;
  expected_log.level = level;
  expected_log.pattern = pattern;
  expected_log.count = 0;
}

static guint
expect_log_end (void)
{
  guint count = expected_log.count;
  g_assert_true (expected_log.active);
  memset (&expected_log, 0, sizeof expected_log);
  return count;
}

#endif
