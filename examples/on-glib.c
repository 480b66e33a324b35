/* on-glib.c - builds an afut example on the GLib adapter, unchanged:
 * meson compiles this file once per example with AFUT_EXAMPLE set to the
 * example's source.  afut's implementation comes from afut-glib.h here,
 * so afut_run() runs on GLib's main context and errors are GErrors; the
 * example's own `#define AFUT_IMPLEMENTATION` and `#include "afut.h"`
 * then change nothing.  Its output must not change either. */
#define AFUT_IMPLEMENTATION
#define AFUT_GLIB
#include "afut.h"
#include "afut-glib.h"

#include AFUT_EXAMPLE
