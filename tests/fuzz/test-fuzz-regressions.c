/* test-fuzz-regressions.c - programs the schedule fuzzer found, replayed
 * on afut: regressions/seed-N.prog runs and its trace must equal
 * regressions/seed-N.expected (what the reference model, faithful to
 * asyncio, computed; asyncio_oracle.py agrees).  A seed-N.bug file marks
 * an afut bug not fixed yet: a mismatch then is g_test_incomplete() (TAP
 * "# TODO"), so the suite stays green; once afut is fixed the case
 * passes, and the .bug file and the matching KNOWN_DEVIATIONS entry of
 * fuzzmodel.py go (README.md). */

#define AFUT_FUZZ_NO_MAIN
#include "afut-fuzz.c"

#include <glib.h>

static char *
read_file (const char *path, gboolean required)
{
  char *text = NULL;
  GError *error = NULL;
  if (!g_file_get_contents (path, &text, NULL, &error))
    {
      if (required)
        g_error ("%s", error->message);
      g_clear_error (&error);
      return NULL;
    }
  return text;
}

/* The first line where @expected and @got differ, with some context. */
static char *
first_difference (const char *expected, const char *got)
{
  char **a = g_strsplit (expected, "\n", -1);
  char **b = g_strsplit (got, "\n", -1);
  GString *s = g_string_new (NULL);
  guint i = 0, j;
  while (a[i] != NULL && b[i] != NULL && strcmp (a[i], b[i]) == 0)
    i++;
  g_string_append_printf (s, "first difference at line %u:\n", i + 1);
  for (j = i > 4 ? i - 4 : 0; j < i; j++)
    g_string_append_printf (s, "    %s\n", a[j]);
  for (j = i; j < i + 5 && a[j] != NULL; j++)
    g_string_append_printf (s, "  - %s\n", a[j]);
  for (j = i; j < i + 5 && b[j] != NULL; j++)
    g_string_append_printf (s, "  + %s\n", b[j]);
  g_strfreev (a);
  g_strfreev (b);
  return g_string_free (s, FALSE);
}

static void
test_regression (gconstpointer data)
{
  const char *base = data;
  char *prog_path = g_strconcat (base, ".prog", NULL);
  char *expected_path = g_strconcat (base, ".expected", NULL);
  char *bug_path = g_strconcat (base, ".bug", NULL);
  char *text = read_file (prog_path, TRUE);
  char *expected = read_file (expected_path, TRUE);
  char *bug = read_file (bug_path, FALSE);
  FzProg prog;
  FzResult res;
  const char *error = fz_prog_parse (&prog, text);

  g_assert_null (error);
  fz_run_program (&prog, &res);
  if (res.violations == NULL && strcmp (res.trace, expected) == 0)
    {
      if (bug != NULL)
        g_test_message ("fixed: remove %s and its KNOWN_DEVIATIONS entry "
                        "in fuzzmodel.py", bug_path);
    }
  else
    {
      char *diff = first_difference (expected, res.trace);
      g_test_message ("%s (expected: the model's, got: afut's)\n%s%s",
                      prog_path, diff,
                      res.violations != NULL ? res.violations : "");
      if (bug != NULL)
        g_test_incomplete (g_strstrip (bug));
      else
        g_test_fail ();
      g_free (diff);
    }
  fz_result_clear (&res);
  fz_prog_free (&prog);
  g_free (text);
  g_free (expected);
  g_free (bug);
  g_free (prog_path);
  g_free (expected_path);
  g_free (bug_path);
}

static gint
compare_names (gconstpointer a, gconstpointer b)
{
  return g_strcmp0 (*(char *const *) a, *(char *const *) b);
}

int
main (int argc, char **argv)
{
  char *dir;
  GDir *d;
  GPtrArray *names = g_ptr_array_new_with_free_func (g_free);
  const char *name;
  guint i;

  g_test_init (&argc, &argv, NULL);
  dir = g_test_build_filename (G_TEST_DIST, "regressions", NULL);
  d = g_dir_open (dir, 0, NULL);
  if (d == NULL)
    g_error ("no %s (set G_TEST_SRCDIR to tests/fuzz)", dir);
  while ((name = g_dir_read_name (d)) != NULL)
    if (g_str_has_suffix (name, ".prog"))
      g_ptr_array_add (names, g_strndup (name, strlen (name) - 5));
  g_dir_close (d);
  g_ptr_array_sort (names, compare_names);
  for (i = 0; i < names->len; i++)
    {
      const char *seed = g_ptr_array_index (names, i);
      char *path = g_strdup_printf ("/fuzz/regression/%s", seed);
      g_test_add_data_func_full (path, g_build_filename (dir, seed, NULL),
                                 test_regression, g_free);
      g_free (path);
    }
  g_ptr_array_unref (names);
  g_free (dir);
  return g_test_run ();
}
