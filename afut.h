/* afut.h - Python asyncio's model for C: futures, tasks, sleep, gather,
 * cancellation that propagates.  Single header, C11, no dependencies
 * beyond POSIX (poll, pthreads).
 *
 * SPDX-License-Identifier: MIT
 *
 * USAGE
 *   In exactly one C (or C++) file, define AFUT_IMPLEMENTATION before the
 *   include; every other file includes the header alone:
 *
 *     #define AFUT_IMPLEMENTATION
 *     #include "afut.h"
 *
 * COMPILE-TIME OPTIONS (define before the implementing #include)
 *   AFUT_MALLOC(size) / AFUT_FREE(ptr)   allocator; define both or neither.
 *                                        AFUT_REALLOC(ptr, size) goes with
 *                                        them (defaults to realloc).
 *   AFUT_ASSERT(expr)                    internal invariants (default: assert)
 *   AFUT_API                             decoration of every public function
 *                                        (default: extern)
 *   The error-type seam, all or none (glib-adapter/afut-glib.h sets them so
 *   that afut's quarks are GQuarks and an AfutError is a GError):
 *   AFUT_QUARK_FROM_STRING(s), AFUT_QUARK_FROM_STATIC_STRING(s),
 *   AFUT_QUARK_TO_STRING(q), AFUT_ERROR_NEW_LITERAL(domain, code, message),
 *   AFUT_ERROR_COPY(error), AFUT_ERROR_FREE(error).
 *   AFUT_LOG_DEFAULT(level, message)     where criticals go when no log func
 *                                        is set (default: stderr)
 *   AFUT_RUN_LOOP_NEW(flags)             the loop afut_run() creates
 *                                        (default: afut_loop_new)
 *   AFUT_GLIB                            afut runs on GLib: the implementation
 *                                        comes from glib-adapter/afut-glib.h,
 *                                        included next (see there)
 *   AFUT_NO_EPOLL                        wait on fds with poll() on Linux too
 *                                        (elsewhere poll() is all there is);
 *                                        by default Linux uses one epoll set
 *                                        (see "fd set: epoll" below)
 *   AFUT_FIBER_UCONTEXT                  fibers switch with ucontext, not afut's
 *                                        own x86-64 / AArch64 code (always so
 *                                        on other CPUs)
 *   AFUT_FIBER_STACK_SIZE                a fiber's default stack (256 KiB of
 *                                        address space; only touched pages
 *                                        take memory)
 *   AFUT_NO_FUTURE_POOL                  malloc and free each bare future
 *                                        (plain, sleep, yield) instead of
 *                                        taking it from its loop's pool, so
 *                                        that valgrind sees each one (ASan
 *                                        builds do so by themselves; see
 *                                        "the future pool" below)
 *
 * RUN-TIME OPTIONS (environment)
 *   AFUT_CLOCK=virtual     afut_run() uses a virtual clock: when nothing is
 *                          ready, time jumps to the next timer, so sleeps
 *                          take no wall time (for tests of whole programs).
 *                          Real I/O and threads do not stop the jump: a
 *                          timeout racing them fires at once.
 *   AFUT_DEBUG=fatal-criticals   abort() after a critical (a programmer
 *                          error reported by an argument check).
 *
 * EXAMPLE (asyncio's "three cooks" in C)
 *
 *   typedef struct { AfutTask task; const char *order; } Cook;
 *
 *   static void
 *   cook (AfutTask *task)
 *   {
 *     Cook *self = (Cook *) task;
 *     AFUT_BEGIN (task);
 *     printf ("Started cooking %s\n", self->order);
 *     AFUT_AWAIT (task, afut_sleep (2.0));
 *     printf ("Finished %s\n", self->order);
 *     AFUT_END (task);
 *   }
 *
 *   static void
 *   amain (AfutTask *task)
 *   {
 *     AFUT_BEGIN (task);
 *     AFUT_AWAIT (task, afut_gather (AFUT_SPAWN (Cook, cook, .order = "Pasta"),
 *                                    AFUT_SPAWN (Cook, cook, .order = "Pizza"),
 *                                    NULL));
 *     AFUT_END (task);
 *   }
 *
 *   int main (void) { return AFUT_RUN (AfutTask, amain); }
 *
 * COROUTINE CAVEATS (afut tasks are stackless, like Protothreads)
 *   - A task's step function is re-entered from the top at every resume and
 *     jumps to the await it left.  Plain locals do NOT survive an await:
 *     keep what must live across one in the task's struct.  That holds
 *     for an await of a coroutine that completes at once too: in a chain
 *     of `await coro()` deeper than 16, the step is left and entered again
 *     at the await (with no loop turn), so that the chain's depth is
 *     limited only by memory, never by the C stack.
 *   - AFUT_BEGIN opens a `switch`.  Do not put an await inside a `switch`
 *     statement of your own, and put at most one await on a source line.
 *   - In C++, a local declared with an initializer between two awaits is a
 *     compile error ("jump to case label crosses initialization"): declare
 *     it before AFUT_BEGIN or in its own block.
 *
 * FIBERS (stackful tasks: plain C locals, loops, awaits in helpers)
 *   A fiber is a task whose body is an ordinary function on its own stack;
 *   afut_await() and its typed forms suspend it anywhere:
 *
 *     static AfutFuture *
 *     cook (void *order)
 *     {
 *       AfutError *error = NULL;
 *       printf ("Started cooking %s\n", (char *) order);
 *       if (!afut_await_check (afut_sleep (2.0), &error))
 *         return afut_future_new_for_error (error);  // cancelled: re-raise
 *       printf ("Finished %s\n", (char *) order);
 *       return NULL;
 *     }
 *     ... AFUT_FIBER (cook, "Pasta") ...
 *
 *   Stackless tasks stay the smallest form (10^6 fit); a fiber costs a
 *   stack (the pages it touches, 4-8 KiB typically) and a switch.  See
 *   the "fibers" section below.
 *
 * C++ (C++17 and later; both headers, implementation included)
 *   AFUT_SPAWN, AFUT_CORO and AFUT_RUN take the struct's initializers as C
 *   does in C++20: `AFUT_CORO (Cook, cook, .order = "Pasta")` (designated
 *   initializers, in declaration order).  C++17 has none: list the fields
 *   in order after an empty `{}` for the AfutTask, `AFUT_CORO (Cook, cook,
 *   {}, "Pasta")`.  A task struct must be trivially copyable and standard
 *   layout (afut copies it and never runs its destructor; the AfutTask is
 *   at its start): a static_assert says so.
 *
 * THREADS
 *   Everything afut does with a loop happens on the loop's thread.  The
 *   functions callable from any thread are the ones named *_threadsafe,
 *   afut_loop_wakeup(), afut_loop_ref() and afut_loop_unref() (but for
 *   the last unref, see below), afut_future_ref() and afut_future_unref()
 *   (applied on the loop's thread: bindings free futures anywhere),
 *   afut_loop_new(), the thread-default stack
 *   (it is per thread) and the error and quark functions.  Every other
 *   function that takes a loop, a future, a task or a sync primitive is
 *   loop-only: called from another thread it does nothing but report a
 *   critical naming itself and the call to use instead (asyncio's debug
 *   mode raises RuntimeError there).
 *
 *   The loop's thread is the thread that made it, until another thread
 *   runs it: afut_loop_run_until_complete(), afut_loop_iterate(),
 *   afut_loop_shutdown(), afut_loop_dispatch() (so a GLib loop's GSource
 *   dispatched by an iteration of its main context) and the last
 *   afut_loop_unref() make the calling thread the loop's thread, from
 *   then on, unless another thread is inside one of those calls (that is
 *   reported).  So a loop made on one thread and handed to another that
 *   runs it belongs to that other thread from its first run.  Once the
 *   loop is closed, what is left of it (futures that outlive it) may be
 *   released from any thread.
 *
 * OWNERSHIP
 *   Futures are reference counted.  Functions document (transfer full) or
 *   (transfer none) on each future argument and return value.  AFUT_AWAIT
 *   and the varargs gathers consume the reference they are given, so
 *   `AFUT_AWAIT (task, afut_sleep (1))` leaks nothing.
 */

/* The implementation needs POSIX 2008 (clock_gettime, poll, pthreads);
 * strict -std=c11 hides it unless asked for before the first system
 * header. */
#if defined(AFUT_IMPLEMENTATION) && !defined(AFUT__IMPLEMENTED)             \
  && !defined(_POSIX_C_SOURCE) && !defined(_XOPEN_SOURCE)                   \
  && !defined(_GNU_SOURCE) && !defined(_DEFAULT_SOURCE)
#define _POSIX_C_SOURCE 200809L
#endif

#ifndef AFUT_H
#define AFUT_H

/**
 * AFUT_VERSION_MAJOR:
 *
 * The major version of this afut.h.
 */
#define AFUT_VERSION_MAJOR 0
/**
 * AFUT_VERSION_MINOR:
 *
 * The minor version of this afut.h.
 */
#define AFUT_VERSION_MINOR 2
/**
 * AFUT_VERSION_MICRO:
 *
 * The micro version of this afut.h.
 */
#define AFUT_VERSION_MICRO 0

/**
 * AFUT_CHECK_VERSION:
 * @major: required major version
 * @minor: required minor version
 * @micro: required micro version
 *
 * Compile-time check: true when this afut.h is at least the given version.
 */
#define AFUT_CHECK_VERSION(major, minor, micro)                               \
  (AFUT_VERSION_MAJOR > (major)                                               \
   || (AFUT_VERSION_MAJOR == (major) && AFUT_VERSION_MINOR > (minor))         \
   || (AFUT_VERSION_MAJOR == (major) && AFUT_VERSION_MINOR == (minor)         \
       && AFUT_VERSION_MICRO >= (micro)))

#ifndef AFUT_API
#define AFUT_API extern
#endif

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>

/* What GObject Introspection sees when gi/meson.build scans this header
 * for libafut-1 (AFUT_GLIB: an AfutError is a GError there):
 *   - AfutError is GError, so bindings get GLib.Error with its domain
 *     and code;
 *   - a C11 bool is one byte, and GI's gboolean is a four-byte int read
 *     from the whole return register, whose upper bytes a bool-returning
 *     function leaves undefined: bool crosses as an unsigned 8-bit
 *     integer instead, 0 or 1.  The overrides turn the ones they use
 *     into the language's booleans. */
#ifdef __GI_SCANNER__
#ifdef AFUT_GLIB
#include <glib.h>
#define AFUT__GI_SCAN
#undef bool
#define bool uint8_t
#endif
#endif

#if defined(__GNUC__) || defined(__clang__)
#define AFUT__PRINTF(fmt_idx, arg_idx)                                        \
  __attribute__ ((format (printf, fmt_idx, arg_idx)))
#define AFUT__SENTINEL __attribute__ ((sentinel))
#define AFUT__WARN_UNUSED __attribute__ ((warn_unused_result))
#else
#define AFUT__PRINTF(fmt_idx, arg_idx)
#define AFUT__SENTINEL
#define AFUT__WARN_UNUSED
#endif

/* The case labels AFUT_AWAIT plants are reached by falling through from the
 * statement before them; say so to -Wimplicit-fallthrough. */
#if defined(__cplusplus) && __cplusplus >= 201703L
#define AFUT__FALLTHROUGH [[fallthrough]]
#elif defined(__GNUC__) && !defined(__clang__) && __GNUC__ >= 7
#define AFUT__FALLTHROUGH __attribute__ ((fallthrough))
#elif defined(__clang__) && defined(__has_attribute)
#if __has_attribute(fallthrough)
#define AFUT__FALLTHROUGH __attribute__ ((fallthrough))
#else
#define AFUT__FALLTHROUGH ((void) 0)
#endif
#else
#define AFUT__FALLTHROUGH ((void) 0)
#endif

#ifdef __cplusplus
extern "C" {
#endif

/* ---- basic types ---- */

/**
 * AfutLoop:
 *
 * An event loop (asyncio's event loop): its ready queue, timers, fd
 * watches and tasks.  Opaque and reference counted; make one with
 * afut_loop_new() or afut_glib_loop_new(), or let afut_run() make it.
 */
typedef struct AfutLoop AfutLoop;
typedef struct AfutFuture AfutFuture;
typedef struct AfutTask AfutTask;
#ifdef AFUT__GI_SCAN
typedef GError AfutError;
#else
typedef struct AfutError AfutError;
#endif
typedef struct AfutBackend AfutBackend;
typedef struct AfutFdWatch AfutFdWatch;
typedef struct AfutScope AfutScope;
typedef struct AfutTimeout AfutTimeout;
/**
 * AfutTaskGroup:
 *
 * asyncio.TaskGroup: children spawned in a task that the task waits for
 * at the group's exit; the first failure cancels the others.  Opaque;
 * see afut_task_group_new().
 */
typedef struct AfutTaskGroup AfutTaskGroup;

/**
 * AfutQuark:
 *
 * An interned string naming an error domain, as GLib's GQuark.  Zero is no
 * quark.
 */
typedef uint32_t AfutQuark;

/**
 * AfutDestroyNotify:
 * @data: the data to release
 *
 * Releases a value stored in a future, or user data.
 */
typedef void (*AfutDestroyNotify) (void *data);

/**
 * AfutCallback:
 * @data: the user data given with the callback
 *
 * A function queued on the loop with afut_loop_call_soon().
 */
typedef void (*AfutCallback) (void *data);

/**
 * AfutFutureCallback:
 * @future: (transfer none): the future that completed
 * @data: the user data given to afut_future_add_done_callback()
 *
 * A done callback.  It runs from the loop's ready queue, never inside the
 * call that completed @future.
 */
typedef void (*AfutFutureCallback) (AfutFuture *future, void *data);

/**
 * AfutTaskFunc:
 * @task: the task being stepped
 *
 * A task's step function: the body of a coroutine, written between
 * AFUT_BEGIN() and AFUT_END().  It is called once per resume.
 */
typedef void (*AfutTaskFunc) (AfutTask *task);

/**
 * AfutTaskFinalize:
 * @task: the task being freed
 *
 * Releases what the task's own struct owns.  Runs once, when the last
 * reference to the task goes, whether the task ran, failed or was cancelled
 * before its first step.
 */
typedef void (*AfutTaskFinalize) (AfutTask *task);

/* ---- errors ---- */

#ifndef AFUT__GI_SCAN
/**
 * AfutError:
 * @domain: the error domain, a quark
 * @code: the error code within the domain
 * @message: a human readable message (never %NULL)
 *
 * A runtime failure carried by a future.  Laid out as GLib's GError, so
 * the GLib adapter can hand GErrors through unchanged.
 */
struct AfutError
{
  AfutQuark domain;
  int code;
  char *message;
};
#endif

/**
 * AFUT_ERROR_CODES:
 * @X: a macro taking (NAME, nick, description)
 *
 * The table of the %AFUT_ERROR domain's codes, as an X macro: it calls
 * @X once per code, in #AfutErrorCode order.  afut.h builds the enum and
 * afut_error_code_to_string() from it.
 */
#define AFUT_ERROR_CODES(X)                                                   \
  X (FAILED, "failed", "Operation failed")                                    \
  X (CANCELLED, "cancelled", "Operation was cancelled")                       \
  X (TIMEOUT, "timeout", "Operation timed out")                               \
  X (INVALID_STATE, "invalid-state", "Invalid state")                         \
  X (INVALID_ARGUMENT, "invalid-argument", "Invalid argument")                \
  X (CLOSED, "closed", "Event loop is closed")                                \
  X (INCOMPLETE, "incomplete", "End of stream before the full read")        \
  X (GROUP, "group", "Several operations failed")

/**
 * AfutErrorCode:
 * @AFUT_ERROR_FAILED: a generic failure
 * @AFUT_ERROR_CANCELLED: the operation was cancelled (asyncio's
 *   CancelledError); a future failed with this code is in the
 *   %AFUT_FUTURE_CANCELLED state
 * @AFUT_ERROR_TIMEOUT: the operation timed out
 * @AFUT_ERROR_INVALID_STATE: asyncio's InvalidStateError
 * @AFUT_ERROR_INVALID_ARGUMENT: a bad argument reached a task
 * @AFUT_ERROR_CLOSED: the loop was closed
 * @AFUT_ERROR_INCOMPLETE: end of stream before afut_fd_read_exactly() got
 *   all it asked for (asyncio's IncompleteReadError)
 * @AFUT_ERROR_GROUP: several errors at once (Python's ExceptionGroup, JS's
 *   AggregateError): a task group's children failed, or every input of
 *   afut_any() did.  The message lists them; the future that failed with
 *   it hands each one out through afut_future_get_sub_error().
 *
 * Codes of the %AFUT_ERROR domain.
 */
typedef enum
{
#define AFUT__ERROR_ENUM(name, nick, text) AFUT_ERROR_##name,
  AFUT_ERROR_CODES (AFUT__ERROR_ENUM)
#undef AFUT__ERROR_ENUM
} AfutErrorCode;

/**
 * AFUT_ERROR:
 *
 * The error domain of afut's own errors (quark "afut-error-quark").
 */
#define AFUT_ERROR (afut_error_quark ())

/**
 * AFUT_ERRNO_ERROR:
 *
 * The error domain of system call failures (quark "afut-errno-quark"):
 * the code is the errno value, the message its strerror().
 */
#define AFUT_ERRNO_ERROR (afut_errno_error_quark ())

/**
 * afut_errno_error_quark:
 *
 * The quark of the %AFUT_ERRNO_ERROR domain, which that macro calls.
 *
 * Returns: the quark of the %AFUT_ERRNO_ERROR domain
 * Since: 0.1
 */
AFUT_API AfutQuark afut_errno_error_quark (void);

/**
 * afut_error_quark:
 *
 * The quark of the %AFUT_ERROR domain, which that macro calls.
 *
 * Returns: the quark of the %AFUT_ERROR domain
 * Since: 0.1
 */
AFUT_API AfutQuark afut_error_quark (void);

/**
 * afut_quark_from_string:
 * @string: (nullable): a string
 *
 * Interns @string (copying it).  Thread-safe.
 *
 * Returns: the quark naming @string, 0 for %NULL
 * Since: 0.1
 */
AFUT_API AfutQuark afut_quark_from_string (const char *string);

/**
 * afut_quark_from_static_string:
 * @string: (nullable): a string that lives as long as the program
 *
 * As afut_quark_from_string(), without copying @string.
 *
 * Returns: the quark naming @string, 0 for %NULL
 * Since: 0.1
 */
AFUT_API AfutQuark afut_quark_from_static_string (const char *string);

/**
 * afut_quark_to_string:
 * @quark: a quark
 *
 * The string a quark names, as GLib's g_quark_to_string().
 *
 * Returns: (nullable): the string @quark names, %NULL for an unknown quark
 * Since: 0.1
 */
AFUT_API const char *afut_quark_to_string (AfutQuark quark);

/**
 * afut_error_new:
 * @domain: the error domain
 * @code: the error code
 * @format: printf() format of the message
 * @...: its arguments
 *
 * Creates an error whose message is printf()-formatted.
 *
 * Returns: (transfer full): a new error, for afut_future_fail() or
 *   AFUT_THROW(); %NULL if @domain is 0 or @format is %NULL
 * Since: 0.1
 */
AFUT_API AfutError *afut_error_new (AfutQuark domain, int code,
                                    const char *format, ...)
  AFUT__PRINTF (3, 4);

/**
 * afut_error_new_literal:
 * @domain: the error domain
 * @code: the error code
 * @message: the message, copied
 *
 * Creates an error with a message used as it is (no format).
 *
 * Returns: (transfer full): a new error; %NULL if @domain is 0 or @message
 *   is %NULL
 * Since: 0.1
 */
AFUT_API AfutError *afut_error_new_literal (AfutQuark domain, int code,
                                            const char *message);

/**
 * afut_error_copy:
 * @error: an error
 *
 * Copies an error: domain, code and message.
 *
 * Returns: (transfer full): a copy of @error
 * Since: 0.1
 */
AFUT_API AfutError *afut_error_copy (const AfutError *error);

/**
 * afut_error_free:
 * @error: (nullable) (transfer full): an error
 *
 * Frees @error.  %NULL is ignored.
 *
 * Since: 0.1
 */
AFUT_API void afut_error_free (AfutError *error);

/**
 * afut_error_matches:
 * @error: (nullable): an error
 * @domain: a domain
 * @code: a code
 *
 * Tests an error's domain and code, as Python's `except E:`.
 *
 * Returns: whether @error is not %NULL and has @domain and @code
 * Since: 0.1
 */
AFUT_API bool afut_error_matches (const AfutError *error, AfutQuark domain,
                                  int code);

/**
 * afut_error_is_cancelled:
 * @error: (nullable): an error
 *
 * Tests for a cancellation, as `except asyncio.CancelledError:`.
 *
 * Returns: whether @error is a cancellation (%AFUT_ERROR_CANCELLED)
 * Since: 0.1
 */
AFUT_API bool afut_error_is_cancelled (const AfutError *error);

/**
 * afut_error_code_to_string:
 * @code: an #AfutErrorCode
 *
 * Names a code of the %AFUT_ERROR domain.
 *
 * Returns: the short name of @code ("cancelled", "timeout", ...), or
 *   "unknown"
 * Since: 0.1
 */
AFUT_API const char *afut_error_code_to_string (int code);

/* ---- logging of programmer errors ---- */

/**
 * AfutLogLevel:
 * @AFUT_LOG_CRITICAL: a programmer error (bad argument, invalid state)
 * @AFUT_LOG_WARNING: something went wrong that afut recovered from
 * @AFUT_LOG_ERROR: an error nobody handled, as the default exception
 *   handler reports it ("Task exception was never retrieved", ...):
 *   asyncio's logger.error().  Since: 0.3
 *
 * Severity of a message afut logs.
 */
typedef enum
{
  AFUT_LOG_CRITICAL,
  AFUT_LOG_WARNING,
  AFUT_LOG_ERROR
} AfutLogLevel;

/**
 * AfutLogFunc:
 * @level: the severity
 * @message: the message, without trailing newline
 * @data: user data
 *
 * Receives afut's log messages.
 */
typedef void (*AfutLogFunc) (AfutLogLevel level, const char *message,
                             void *data);

/**
 * afut_set_log_func: (skip)
 * @func: (nullable): the new log function, %NULL for the default
 * @data: user data for @func
 *
 * Replaces the process-wide function that reports criticals (failed
 * argument checks, invalid states), warnings, and the errors the default
 * exception handler reports (%AFUT_LOG_ERROR).  The default prints
 * `afut-CRITICAL **: ...`, `afut-WARNING **: ...` or `afut: ...` to
 * stderr, and aborts after a critical when the environment has
 * AFUT_DEBUG=fatal-criticals.  The GLib adapter routes them to g_log()
 * (an %AFUT_LOG_ERROR as a warning).
 *
 * Not for bindings: with the GLib adapter, afut's criticals and
 * warnings go to g_log() (GLib.log_set_handler('afut', ...)).
 *
 * Since: 0.1
 */
AFUT_API void afut_set_log_func (AfutLogFunc func, void *data);

/* ---- the loop ---- */

/**
 * AfutLoopFlags:
 * @AFUT_LOOP_NONE: a real-time loop
 * @AFUT_LOOP_VIRTUAL_CLOCK: the clock starts at 0 and, whenever nothing is
 *   ready to run, jumps straight to the next timer's deadline: sleeps take
 *   no wall time.  For tests.
 *
 * Flags for afut_loop_new().
 */
typedef enum
{
  AFUT_LOOP_NONE = 0,
  AFUT_LOOP_VIRTUAL_CLOCK = 1 << 0
} AfutLoopFlags;

/**
 * AfutIOEvents:
 * @AFUT_IO_IN: readable
 * @AFUT_IO_OUT: writable
 * @AFUT_IO_ERR: error condition (reported, never requested)
 * @AFUT_IO_HUP: hung up (reported, never requested)
 *
 * File descriptor conditions, numerically equal to poll()'s and GLib's
 * GIOCondition values.
 */
typedef enum
{
  AFUT_IO_IN = 0x001,
  AFUT_IO_OUT = 0x004,
  AFUT_IO_ERR = 0x008,
  AFUT_IO_HUP = 0x010
} AfutIOEvents;

/**
 * AfutFdWatch:
 * @fd: the file descriptor
 * @events: the #AfutIOEvents waited for
 * @backend_data: the backend's own handle for this watch
 *
 * One pending wait for fd readiness, as a backend sees it.  afut owns it;
 * a backend reports readiness with afut_loop_fd_ready().
 */
struct AfutFdWatch
{
  int fd;
  unsigned events;
  void *backend_data;
};

/**
 * AfutBackend:
 * @now: monotonic time in nanoseconds
 * @wait: block until a watched fd is ready, afut_loop_wakeup() is called
 *   or @timeout_ns passes (-1: no timeout, 0: do not block); report ready
 *   fds with afut_loop_fd_ready()
 * @wakeup: make a @wait in progress return; called from any thread
 * @watch_fd: start watching @watch; return false on failure
 * @unwatch_fd: stop watching @watch
 * @free: release @backend_data when the loop's memory goes
 * @close: (nullable): the loop is closing: it has shut down, and after
 *   this it only runs what is already queued; let go of what the backend
 *   holds of it
 * @acquire: (nullable): a run call starts on this thread
 *   (afut_loop_run_until_complete(), afut_loop_iterate(),
 *   afut_loop_shutdown(), the close of the last afut_loop_unref()): take
 *   what the backend runs on for the whole run, as g_main_loop_run()
 *   acquires its GMainContext, so that no other thread runs the loop's
 *   work meanwhile; false if another thread has it (the run is refused,
 *   reported).  Since: 0.3
 * @release: (nullable): the run call ends: undo @acquire.  Since: 0.3
 *
 * What afut needs from whatever runs it.  afut.h brings the embedded
 * backend (epoll or poll(), and an eventfd); the GLib adapter brings one
 * on a GMainContext.  Watches are one-shot: afut calls @unwatch_fd when
 * a watch ends, reported or cancelled; a backend may keep the fd
 * registered with the system a while longer (both of afut's do).  Every function gets the `backend_data` given to
 * afut_loop_new_with_backend().
 */
struct AfutBackend
{
  int64_t (*now) (void *backend_data);
  void (*wait) (void *backend_data, AfutLoop *loop, int64_t timeout_ns);
  void (*wakeup) (void *backend_data);
  bool (*watch_fd) (void *backend_data, AfutFdWatch *watch);
  void (*unwatch_fd) (void *backend_data, AfutFdWatch *watch);
  void (*free) (void *backend_data);
  void (*close) (void *backend_data, AfutLoop *loop);
  bool (*acquire) (void *backend_data);
  void (*release) (void *backend_data);
};

/**
 * afut_loop_new:
 * @flags: #AfutLoopFlags
 *
 * Creates a loop on the embedded backend: an epoll set on Linux (poll()
 * with AFUT_NO_EPOLL defined, and on other systems), and an eventfd (a pipe
 * elsewhere) for wakeups.
 *
 * Returns: (transfer full): a new loop, or %NULL if the wakeup fd or the
 *   epoll set could not be created
 * Since: 0.1
 */
AFUT_API AfutLoop *afut_loop_new (unsigned flags);

/**
 * afut_loop_new_with_backend:
 * @backend: the backend's functions (must outlive the loop)
 * @backend_data: (nullable): passed to each of them
 * @flags: #AfutLoopFlags
 *
 * Creates a loop run by another backend (the GLib adapter's, a test's).
 * With %AFUT_LOOP_VIRTUAL_CLOCK, @backend's @now is not used.
 *
 * Returns: (transfer full): a new loop
 * Since: 0.1
 */
AFUT_API AfutLoop *afut_loop_new_with_backend (const AfutBackend *backend,
                                               void *backend_data,
                                               unsigned flags);

/**
 * afut_loop_ref:
 * @loop: a loop
 *
 * Thread-safe.
 *
 * Returns: (transfer full): @loop
 * Since: 0.1
 */
AFUT_API AfutLoop *afut_loop_ref (AfutLoop *loop);

/**
 * afut_loop_unref:
 * @loop: (transfer full): a loop
 *
 * Drops a reference, from any thread.  Unless afut_loop_close() closed
 * the loop already, the last one closes it as that function does (pending
 * tasks are cancelled and run until they end, remaining callbacks are
 * run).  That runs the loop, as afut_loop_run_until_complete() would: on
 * the calling thread, which becomes the loop's, unless another thread
 * runs the loop right then; that is reported, and the close is left to
 * the loop's thread.  Futures that outlive the loop keep its memory until
 * they go, but can no longer schedule anything.
 *
 * Since: 0.1
 */
AFUT_API void afut_loop_unref (AfutLoop *loop);

/**
 * afut_loop_close:
 * @loop: a loop, not running
 *
 * asyncio's loop.close(), with asyncio.run()'s cleanup before it: cancels
 * every pending task and runs the loop until they have ended (as
 * afut_loop_shutdown()), cancels the timers and fd waits left, runs what
 * is left in the ready queue, lets go of the backend (the GLib adapter's
 * GSource), and marks the loop closed.  From then on every call that
 * would schedule something on it is a reported error ("the loop is
 * closed"), and futures of it that complete run no callbacks; its memory
 * lives until the last reference to it and to its futures goes.  Closing
 * a closed loop does nothing; closing a running loop (from one of its own
 * callbacks, or while a run call is in progress) is refused, as asyncio's
 * RuntimeError "Cannot close a running event loop".  Loop thread only.
 *
 * asyncio's close() drops pending tasks ("Task was destroyed but it is
 * pending!"); in C their cleanup would never run and their memory would
 * leak, so afut cancels them and lets them end first.
 *
 * Returns: true if @loop is closed on return, false if it was refused
 * Since: 0.3
 */
AFUT_API bool afut_loop_close (AfutLoop *loop);

/**
 * afut_loop_is_closed:
 * @loop: a loop
 *
 * asyncio's loop.is_closed().
 *
 * Returns: whether @loop has been closed (afut_loop_close(), afut_run(),
 *   or its last unref)
 * Since: 0.3
 */
AFUT_API bool afut_loop_is_closed (AfutLoop *loop);

/**
 * afut_loop_get_running:
 *
 * asyncio.get_running_loop(), without raising.
 *
 * Returns: (nullable) (transfer none): the loop running on this thread
 *   (asyncio's get_running_loop()), %NULL outside a running loop
 * Since: 0.1
 */
AFUT_API AfutLoop *afut_loop_get_running (void);

/**
 * afut_loop_push_thread_default:
 * @loop: a loop
 *
 * Makes @loop the one AFUT_SPAWN(), afut_sleep() and the other calls that
 * take no loop use on this thread when no loop is running (in a GTK
 * signal handler, say), as g_main_context_push_thread_default().  Holds a
 * reference until the matching pop.
 *
 * Since: 0.1
 */
AFUT_API void afut_loop_push_thread_default (AfutLoop *loop);

/**
 * afut_loop_pop_thread_default:
 * @loop: the loop pushed last on this thread
 *
 * Undoes afut_loop_push_thread_default().
 *
 * Since: 0.1
 */
AFUT_API void afut_loop_pop_thread_default (AfutLoop *loop);

/**
 * afut_loop_get_thread_default:
 *
 * The loop on top of this thread's stack of default loops (see
 * afut_loop_push_thread_default()), as asyncio.get_event_loop().
 *
 * Returns: (nullable) (transfer none): the loop pushed last on this
 *   thread, %NULL if none
 * Since: 0.1
 */
AFUT_API AfutLoop *afut_loop_get_thread_default (void);

/**
 * afut_loop_time_ns:
 * @loop: a loop
 *
 * The loop's clock, in nanoseconds.
 *
 * Returns: the loop's monotonic clock in nanoseconds (virtual time for a
 *   virtual-clock loop)
 * Since: 0.1
 */
AFUT_API int64_t afut_loop_time_ns (AfutLoop *loop);

/**
 * afut_loop_time:
 * @loop: a loop
 *
 * The loop's clock, in seconds (asyncio's loop.time()).
 *
 * Returns: the loop's clock in seconds, as asyncio's loop.time()
 * Since: 0.1
 */
AFUT_API double afut_loop_time (AfutLoop *loop);

/**
 * afut_loop_call_soon:
 * @loop: a loop
 * @func: (scope async) (closure data): the function to call
 * @data: its argument
 *
 * Queues @func at the back of the ready queue; it runs in the next batch.
 * Loop thread only.
 *
 * Returns: false if @loop is closed or an argument is bad (reported)
 * Since: 0.1
 */
AFUT_API bool afut_loop_call_soon (AfutLoop *loop, AfutCallback func,
                                   void *data);

/**
 * afut_loop_call_soon_threadsafe:
 * @loop: a loop
 * @func: (scope async) (closure data): the function to call on the loop's
 *   thread
 * @data: its argument
 *
 * From any thread: queues @func on @loop and wakes it up.  Calls from one
 * thread run in the order they were made.
 *
 * Returns: false if @loop is closed or an argument is bad (reported)
 * Since: 0.1
 */
AFUT_API bool afut_loop_call_soon_threadsafe (AfutLoop *loop,
                                              AfutCallback func, void *data);

/**
 * afut_loop_iterate:
 * @loop: a loop, not running
 * @may_block: whether to wait for a timer, fd or wakeup when nothing is
 *   ready
 *
 * Runs one iteration, as asyncio's _run_once: collects ready fds and
 * expired timers, then runs the callbacks that were ready when the batch
 * started (what they schedule runs in the next iteration).
 *
 * Returns: false if the loop could not run (closed, already running, or
 *   another loop runs on this thread), true otherwise
 * Since: 0.1
 */
AFUT_API bool afut_loop_iterate (AfutLoop *loop, bool may_block);

/**
 * afut_loop_run_until_complete:
 * @loop: a loop, not running
 * @future: (transfer none): a future of @loop
 *
 * Runs @loop until @future is done (asyncio's run_until_complete).
 * Calling it while any loop runs on this thread is a reported error, not
 * a hang.
 *
 * Returns: true once @future is done, false on a reported error
 * Since: 0.1
 */
AFUT_API bool afut_loop_run_until_complete (AfutLoop *loop,
                                            AfutFuture *future);

/**
 * afut_loop_shutdown:
 * @loop: a loop, not running
 *
 * What asyncio.run() does after the main coroutine: cancels every pending
 * task, runs the loop until they all end, reports those that ended with an
 * error through the exception handler, runs on while afut_loop_hold() is
 * in force, then runs what is left in the ready queue.  The loop stays
 * usable.
 *
 * Since: 0.1
 */
AFUT_API void afut_loop_shutdown (AfutLoop *loop);

/**
 * afut_loop_hold:
 * @loop: a loop
 *
 * Loop thread only.  Makes afut_loop_shutdown() (so afut_run() and the
 * last unref) keep running @loop, after its tasks have ended, until the
 * matching afut_loop_release(): for work outside afut that will complete
 * a future of @loop, a worker thread say (asyncio.run() waits for its
 * executor's threads the same way).
 *
 * Since: 0.1
 */
AFUT_API void afut_loop_hold (AfutLoop *loop);

/**
 * afut_loop_release:
 * @loop: a loop
 *
 * Loop thread only.  Undoes afut_loop_hold().
 *
 * Since: 0.1
 */
AFUT_API void afut_loop_release (AfutLoop *loop);

/**
 * afut_loop_get_n_tasks:
 * @loop: a loop
 *
 * Counts the loop's tasks that have not completed.
 *
 * Returns: how many tasks of @loop have not completed yet
 * Since: 0.1
 */
AFUT_API size_t afut_loop_get_n_tasks (AfutLoop *loop);

/**
 * AfutExceptionContext:
 * @message: what happened ("Future exception was never retrieved", ...)
 * @error: (nullable): the error concerned
 * @task_name: (nullable): the name of the task concerned
 *
 * What an #AfutExceptionHandler is told; asyncio's context dict.
 */
typedef struct
{
  const char *message;
  const AfutError *error;
  const char *task_name;
} AfutExceptionContext;

/**
 * AfutExceptionHandler:
 * @loop: the loop
 * @context: what happened
 * @data: user data
 *
 * Receives errors nobody retrieved (asyncio's exception handler).
 */
typedef void (*AfutExceptionHandler) (AfutLoop *loop,
                                      const AfutExceptionContext *context,
                                      void *data);

/**
 * afut_loop_set_exception_handler:
 * @loop: a loop
 * @handler: (scope forever) (closure data) (nullable): the handler, %NULL for the default
 * @data: user data for @handler
 *
 * Replaces the function told about a failed future whose error nobody
 * retrieved (reported when the future is freed) and about tasks that
 * failed during shutdown.
 *
 * Since: 0.1
 */
AFUT_API void afut_loop_set_exception_handler (AfutLoop *loop,
                                               AfutExceptionHandler handler,
                                               void *data);

/**
 * afut_loop_set_exception_handler_full: (rename-to afut_loop_set_exception_handler)
 * @loop: a loop
 * @handler: (nullable) (scope notified) (closure data) (destroy destroy):
 *   the handler, %NULL for the default
 * @data: user data for @handler
 * @destroy: (nullable): frees @data when the handler is replaced or the
 *   loop's memory goes
 *
 * afut_loop_set_exception_handler() with a destroy notify, for bindings.
 *
 * Since: 0.3
 */
AFUT_API void afut_loop_set_exception_handler_full (
  AfutLoop *loop, AfutExceptionHandler handler, void *data,
  AfutDestroyNotify destroy);

/**
 * afut_loop_default_exception_handler:
 * @loop: a loop
 * @context: what happened
 *
 * The default handler: logs `MESSAGE: task 'NAME': DOMAIN:CODE: TEXT`
 * at %AFUT_LOG_ERROR through afut's log function (afut_set_log_func()),
 * as asyncio's logs through its logger.  Without a log function that is
 * `afut: MESSAGE...` on stderr; under the GLib adapter, a g_log()
 * warning in the "afut" domain.
 *
 * Since: 0.1
 */
AFUT_API void afut_loop_default_exception_handler (
  AfutLoop *loop, const AfutExceptionContext *context);

/**
 * afut_loop_call_exception_handler:
 * @loop: a loop
 * @context: what happened: a message (not %NULL), and the error and task
 *   concerned if any
 *
 * asyncio's loop.call_exception_handler(): reports @context through
 * @loop's exception handler (afut_loop_set_exception_handler(), by
 * default afut_loop_default_exception_handler()), for an error that has
 * nowhere to go: one in a callback (asyncio's "Exception in callback"),
 * or in cleanup that cannot fail.  Loop thread only; a closed loop still
 * reports.
 *
 * Since: 0.3
 */
AFUT_API void afut_loop_call_exception_handler (
  AfutLoop *loop, const AfutExceptionContext *context);

/**
 * afut_loop_prepare:
 * @loop: a loop
 * @timeout_ns: (out) (optional): -1 when afut waits for nothing but fds
 *   and wakeups, else the nanoseconds until its next timer (0: work now)
 *
 * For backends driven by another main loop (the GLib adapter's GSource):
 * whether afut has work now.  Runs no callback.  A virtual-clock loop
 * with nothing ready jumps to its next timer here.  Called from one of
 * the loop's own callbacks it answers false with -1: a callback does not
 * run the loop it is part of.  (The GLib adapter's source, asked by a
 * nested main loop inside a callback, does run afut's other work there:
 * see afut-glib.h.)
 *
 * Returns: true if afut_loop_dispatch() would run something
 * Since: 0.1
 */
AFUT_API bool afut_loop_prepare (AfutLoop *loop, int64_t *timeout_ns);

/**
 * afut_loop_dispatch:
 * @loop: a loop
 * @budget_ns: how long to go on, in nanoseconds; 0 for one batch
 *
 * For backends driven by another main loop: runs afut iterations back to
 * back, without blocking, until nothing is ready or @budget_ns of wall
 * time is spent.  asyncio's batch order holds: what one batch schedules
 * runs in the next.  It may be called from inside the backend's @wait
 * while afut_loop_run_until_complete() runs.
 *
 * Since: 0.1
 */
AFUT_API void afut_loop_dispatch (AfutLoop *loop, int64_t budget_ns);

/**
 * afut_loop_fd_ready:
 * @loop: the loop
 * @watch: a watch the backend was given
 * @revents: the #AfutIOEvents that happened
 *
 * For backends: reports @watch ready.  The watch ends (afut calls
 * @unwatch_fd) and its future resolves with @revents, or, when @revents
 * has poll()'s POLLNVAL (G_IO_NVAL: the fd is not open), fails with
 * %AFUT_ERRNO_ERROR %EBADF.
 *
 * Since: 0.1
 */
AFUT_API void afut_loop_fd_ready (AfutLoop *loop, AfutFdWatch *watch,
                                  unsigned revents);

/**
 * afut_loop_wakeup:
 * @loop: a loop
 *
 * From any thread: makes a blocking wait of @loop's backend return.
 *
 * Since: 0.1
 */
AFUT_API void afut_loop_wakeup (AfutLoop *loop);

/**
 * afut_loop_call_later:
 * @loop: a loop
 * @delay: seconds from now; negative: a time in the past
 * @func: (scope async) (closure data): the callback
 * @data: its argument
 *
 * asyncio's loop.call_later(): runs @func (@data) once, from the ready
 * queue, when @delay seconds have passed.  Timers run in the order of
 * their deadlines, calls due at the same time in the order they were
 * made, in the same batch as the sleeps that end then.  As in asyncio,
 * the deadline is afut_loop_time() + @delay even when @delay is negative:
 * such a call runs at the next iteration, before any timer due later (a
 * call_later (0) made before it included).  A deadline past the clock's
 * range (%INFINITY) never comes (afut_sleep()).  The returned handle completes (with no value) when @func has
 * run; afut_future_cancel() on it before then stops the call
 * (TimerHandle.cancel()).  Unreferencing the handle does not cancel the
 * call; not unreferencing it leaks it, unlike a Python TimerHandle.
 *
 * Returns: (transfer full): the handle, %NULL on bad arguments (reported)
 * Since: 0.2
 */
AFUT_API AfutFuture *afut_loop_call_later (AfutLoop *loop, double delay,
                                           AfutCallback func,
                                           void *data) AFUT__WARN_UNUSED;

/**
 * afut_loop_call_at:
 * @loop: a loop
 * @when: the time to run, on afut_loop_time()'s clock
 * @func: (scope async) (closure data): the callback
 * @data: its argument
 *
 * asyncio's loop.call_at(): as afut_loop_call_later() with an absolute
 * time; a time in the past runs at the next iteration, in the order of
 * the deadlines.
 *
 * Returns: (transfer full): the handle, %NULL on bad arguments (reported)
 * Since: 0.2
 */
AFUT_API AfutFuture *afut_loop_call_at (AfutLoop *loop, double when,
                                        AfutCallback func,
                                        void *data) AFUT__WARN_UNUSED;

/**
 * afut_loop_call_soon_full: (rename-to afut_loop_call_soon)
 * @loop: a loop
 * @func: (scope notified) (closure data) (destroy destroy): the function
 *   to call
 * @data: its argument
 * @destroy: (nullable): frees @data once @func has run, or at once if it
 *   cannot be queued
 *
 * afut_loop_call_soon() with a destroy notify, for bindings.
 *
 * Returns: false if @loop is closed or an argument is bad (reported)
 * Since: 0.3
 */
AFUT_API bool afut_loop_call_soon_full (AfutLoop *loop, AfutCallback func,
                                        void *data, AfutDestroyNotify destroy);

/**
 * afut_loop_call_later_full: (rename-to afut_loop_call_later)
 * @loop: a loop
 * @delay: seconds from now; negative: a time in the past
 * @func: (scope notified) (closure data) (destroy destroy): the callback
 * @data: its argument
 * @destroy: (nullable): frees @data once the handle has completed: @func
 *   ran, or the handle was cancelled
 *
 * afut_loop_call_later() with a destroy notify, for bindings: cancelling
 * the handle lets go of @data too.
 *
 * Returns: (transfer full): the handle, %NULL on bad arguments (reported;
 *   @data is destroyed)
 * Since: 0.3
 */
AFUT_API AfutFuture *afut_loop_call_later_full (AfutLoop *loop, double delay,
                                                AfutCallback func, void *data,
                                                AfutDestroyNotify destroy)
  AFUT__WARN_UNUSED;

/**
 * afut_loop_call_at_full: (rename-to afut_loop_call_at)
 * @loop: a loop
 * @when: the time to run, on afut_loop_time()'s clock
 * @func: (scope notified) (closure data) (destroy destroy): the callback
 * @data: its argument
 * @destroy: (nullable): frees @data once the handle has completed
 *
 * afut_loop_call_at() with a destroy notify, for bindings.
 *
 * Returns: (transfer full): the handle, %NULL on bad arguments (reported;
 *   @data is destroyed)
 * Since: 0.3
 */
AFUT_API AfutFuture *afut_loop_call_at_full (AfutLoop *loop, double when,
                                             AfutCallback func, void *data,
                                             AfutDestroyNotify destroy)
  AFUT__WARN_UNUSED;

/**
 * AfutTaskForeachFunc:
 * @task: a pending task
 * @data: user data
 *
 * Called by afut_loop_foreach_task() for each pending task.
 */
typedef void (*AfutTaskForeachFunc) (AfutTask *task, void *data);

/**
 * afut_loop_foreach_task:
 * @loop: a loop
 * @func: (scope call): called for each task
 * @data: user data for @func
 *
 * asyncio.all_tasks(): calls @func for every task of @loop that has not
 * completed, oldest first (coroutine objects not yet started are not
 * tasks yet).  It walks a snapshot, holding
 * a reference to each task, so @func may cancel tasks or spawn new ones
 * (those are not visited).
 *
 * Since: 0.2
 */
AFUT_API void afut_loop_foreach_task (AfutLoop *loop, AfutTaskForeachFunc func,
                                      void *data);

/**
 * afut_loop_print_tasks: (skip)
 * @loop: a loop
 * @stream: (nullable): where to print, %NULL for stderr
 *
 * Task.print_stack() for every pending task, as far as C allows: one
 * line per task, oldest first, as afut_task_describe() words it.  Call it
 * from a debugger (`call afut_loop_print_tasks (loop, 0)`) or a signal
 * handler's deferred callback to see what a stuck program waits for.
 *
 * Since: 0.2
 */
AFUT_API void afut_loop_print_tasks (AfutLoop *loop, FILE *stream);

/* ---- futures ---- */

/**
 * AfutFutureState:
 * @AFUT_FUTURE_PENDING: not completed yet
 * @AFUT_FUTURE_DONE: completed with a value
 * @AFUT_FUTURE_FAILED: completed with an error (a gather whose child was
 *   cancelled on its own: with an %AFUT_ERROR_CANCELLED one)
 * @AFUT_FUTURE_CANCELLED: cancelled; its error is an %AFUT_ERROR_CANCELLED
 *   carrying the cancel message
 *
 * The state of a future.
 */
typedef enum
{
  AFUT_FUTURE_PENDING,
  AFUT_FUTURE_DONE,
  AFUT_FUTURE_FAILED,
  AFUT_FUTURE_CANCELLED
} AfutFutureState;

/**
 * AfutValueType:
 * @AFUT_VALUE_NONE: no value (Python's None)
 * @AFUT_VALUE_POINTER: a pointer, with an optional destroy notify
 * @AFUT_VALUE_INT: an int64_t
 * @AFUT_VALUE_DOUBLE: a double
 *
 * What a done future holds.
 */
typedef enum
{
  AFUT_VALUE_NONE,
  AFUT_VALUE_POINTER,
  AFUT_VALUE_INT,
  AFUT_VALUE_DOUBLE
} AfutValueType;

/**
 * AfutFuture:
 *
 * A reference-counted result that arrives later: asyncio.Future.  Its
 * fields are private; the struct is public only so a task can embed it.
 */
#ifndef AFUT__GI_SCAN /* opaque to bindings: no private fields as properties */
struct AfutFuture
{
  /*< private >*/
  AfutLoop *loop;
  uint32_t ref_count;
  uint8_t state;
  uint8_t kind;
  uint8_t value_type;
  uint8_t flags;
  union
  {
    struct
    {
      union
      {
        void *pointer;
        int64_t v_int;
        double v_double;
      } v;
      AfutDestroyNotify destroy;
    } value;
    AfutError *error;
    /* A failed future whose error is an AFUT_ERROR_GROUP it took from
     * another (a task that awaited a task group's exit, a gather of such
     * a task): error is u.error, group the future whose sub-errors they
     * are (a reference), or NULL.  A pending task keeps there the one of
     * the error it caught (afut_task_caught()). */
    struct
    {
      AfutError *error;
      AfutFuture *group;
    } failure;
    /* A sleep's, while pending.  seq is second: cancelling a sleep writes
     * u.error over the first word while the heap still holds the sleep
     * (lazy removal), and seq must stay for the heap's order. */
    struct
    {
      int64_t when;
      uint64_t seq;
    } timer;
  } u;
  /* One callback inline; more move to an array that callback_data then
   * points to. */
  AfutFutureCallback callback;
  void *callback_data;
};
#endif

/**
 * AFUT_FUTURE:
 * @x: a task, or a struct whose first member is a task or a future
 *
 * Casts to #AfutFuture (a task is a future).
 */
#define AFUT_FUTURE(x) ((AfutFuture *) (x))

/**
 * afut_future_new:
 * @loop: (nullable): the loop, %NULL for the running loop
 *
 * Creates a pending future (asyncio's loop.create_future()).
 *
 * Returns: (transfer full): a new future, %NULL if @loop is %NULL and no
 *   loop is running (reported)
 * Since: 0.1
 */
AFUT_API AfutFuture *afut_future_new (AfutLoop *loop);

/**
 * AfutFutureFuncs:
 * @cancel: (nullable): asked to cancel a pending custom future: start
 *   cancelling whatever completes it and return true (the future stays
 *   pending until completed, by afut_future_fail() with a cancellation
 *   error for instance), or return false to refuse; %NULL cancels at once
 * @finalize: (nullable): releases the custom struct's own fields
 *
 * What a custom future does differently from a plain one.
 */
typedef struct
{
  bool (*cancel) (AfutFuture *future, const char *message);
  void (*finalize) (AfutFuture *future);
} AfutFutureFuncs;

/**
 * AfutCustomFuture:
 *
 * The first member of a custom future's struct (see
 * afut_future_new_custom()).  Fields are private.
 */
typedef struct
{
  /*< private >*/
  AfutFuture future;
  const AfutFutureFuncs *funcs;
} AfutCustomFuture;

/**
 * afut_future_new_custom:
 * @loop: (nullable): the loop, %NULL for the running loop
 * @funcs: its functions; must outlive the future
 * @struct_size: size of a struct whose first member is #AfutCustomFuture
 *
 * A future completed like a plain one (afut_future_resolve() ...) whose
 * cancellation is a request, as a task's is: for adapters whose futures
 * stand for work outside afut that must end before the future does (a
 * GIO call writing into a buffer).  The struct past the header starts
 * zeroed.
 *
 * Returns: (transfer full): the future; %NULL on bad arguments (reported)
 * Since: 0.1
 */
AFUT_API AfutFuture *afut_future_new_custom (AfutLoop *loop,
                                             const AfutFutureFuncs *funcs,
                                             size_t struct_size);

/**
 * afut_future_ref:
 * @future: a future
 *
 * Takes a reference to @future.  From any thread, by a caller that holds
 * a reference already (a binding hands one to a _threadsafe call): off
 * the loop's thread, the count changes on the loop's thread, in the
 * order of the calls, through afut_loop_call_soon_threadsafe().
 *
 * Returns: (transfer full): @future
 * Since: 0.1
 */
AFUT_API AfutFuture *afut_future_ref (AfutFuture *future);

/**
 * afut_future_unref:
 * @future: (nullable) (transfer full): a future
 *
 * Drops a reference; %NULL is ignored.  When the last one goes, the value
 * is destroyed, and a failed future whose error nobody retrieved is
 * reported to the loop's exception handler (asyncio's "exception was never
 * retrieved").  From any thread (a binding's garbage collector): off the
 * loop's thread, the reference goes on the loop's thread, as
 * afut_future_ref() says.  Once the loop is closed, the count is atomic
 * and a reference dropped on any thread goes there (the future is then
 * freed on that thread).
 *
 * Since: 0.1
 */
AFUT_API void afut_future_unref (AfutFuture *future);

/**
 * afut_future_get_loop:
 * @future: a future
 *
 * The loop @future belongs to (asyncio's get_loop()).
 *
 * Returns: (transfer none): the loop @future belongs to
 * Since: 0.1
 */
AFUT_API AfutLoop *afut_future_get_loop (AfutFuture *future);

/**
 * afut_future_get_state:
 * @future: a future
 *
 * Whether @future is pending, done, failed or cancelled.
 *
 * Returns: the #AfutFutureState of @future
 * Since: 0.1
 */
AFUT_API AfutFutureState afut_future_get_state (AfutFuture *future);

/**
 * afut_future_is_done:
 * @future: a future
 *
 * asyncio's Future.done().
 *
 * Returns: whether @future completed (with a value, an error, or
 *   cancelled), as asyncio's done()
 * Since: 0.1
 */
AFUT_API bool afut_future_is_done (AfutFuture *future);

/**
 * afut_future_is_cancelled:
 * @future: a future
 *
 * asyncio's Future.cancelled().
 *
 * Returns: whether @future is %AFUT_FUTURE_CANCELLED
 * Since: 0.1
 */
AFUT_API bool afut_future_is_cancelled (AfutFuture *future);

/**
 * afut_future_state_to_string:
 * @state: an #AfutFutureState
 *
 * Names a future state, for messages.
 *
 * Returns: "pending", "done", "failed" or "cancelled"
 * Since: 0.1
 */
AFUT_API const char *afut_future_state_to_string (AfutFutureState state);

/**
 * afut_future_resolve:
 * @future: a pending future
 *
 * Completes @future with no value (set_result(None)).  Its done callbacks
 * are queued, in registration order.  Completing a done future changes
 * nothing and is reported (asyncio's InvalidStateError).
 *
 * Returns: true if @future was pending
 * Since: 0.1
 */
AFUT_API bool afut_future_resolve (AfutFuture *future);

/**
 * afut_future_resolve_pointer: (skip)
 * @future: a pending future
 * @pointer: (nullable): the value
 * @destroy: (nullable): frees @pointer when @future is freed
 *
 * Completes @future with @pointer.  If @future is not pending, @pointer
 * is destroyed at once and the misuse reported.
 *
 * Not for bindings, which have no C pointers to give: they call
 * afut_future_resolve_value().
 *
 * Returns: true if @future was pending
 * Since: 0.1
 */
AFUT_API bool afut_future_resolve_pointer (AfutFuture *future, void *pointer,
                                           AfutDestroyNotify destroy);

/**
 * afut_future_resolve_int:
 * @future: a pending future
 * @value: the value
 *
 * Completes @future with an integer.
 *
 * Returns: true if @future was pending
 * Since: 0.1
 */
AFUT_API bool afut_future_resolve_int (AfutFuture *future, int64_t value);

/**
 * afut_future_resolve_double:
 * @future: a pending future
 * @value: the value
 *
 * Completes @future with a double.
 *
 * Returns: true if @future was pending
 * Since: 0.1
 */
AFUT_API bool afut_future_resolve_double (AfutFuture *future, double value);

/**
 * afut_future_fail:
 * @future: a pending future
 * @error: (transfer full): the error
 *
 * Completes @future with @error (set_exception).  An %AFUT_ERROR_CANCELLED
 * error makes it %AFUT_FUTURE_CANCELLED.  If @future is not pending,
 * @error is freed and the misuse reported.
 *
 * Returns: true if @future was pending
 * Since: 0.1
 */
AFUT_API bool afut_future_fail (AfutFuture *future, AfutError *error);

/**
 * afut_future_cancel:
 * @future: a future, or a task, a gather, a sleep
 * @message: (nullable): the cancel message the awaiter can read
 *
 * asyncio's cancel(msg).  A plain future or a sleep is cancelled at once
 * (its error: %AFUT_ERROR_CANCELLED with @message, or "" without one).  A
 * task cancels what it awaits and resumes there with the cancellation; it
 * may clean up, awaiting more, and ends cancelled unless it swallows the
 * cancellation.  A gather cancels each pending child and then ends
 * cancelled.  Cancelling a done future returns false; it is not an error,
 * and, as in asyncio, counts as retrieving the error of one that failed
 * (no "never retrieved" report), except for a gather, whose cancel() in
 * asyncio does not.
 *
 * Returns: true if a cancellation was requested
 * Since: 0.1
 */
AFUT_API bool afut_future_cancel (AfutFuture *future, const char *message);

/**
 * afut_future_resolve_threadsafe:
 * @future: (transfer full): a future of a loop running on another thread
 *
 * From any thread: resolves @future with no value on its loop's thread,
 * through afut_loop_call_soon_threadsafe().  The caller gives up its
 * reference, which is released on the loop's thread: a thread that is to
 * complete a future is handed a reference for that purpose.  A future
 * done by the time this arrives (cancelled meanwhile) stays as it is, and
 * a value or error sent with the _threadsafe calls is dropped, silently.
 *
 * A loop closed meanwhile (the call fails): the call still consumes the
 * reference, dropping it on the calling thread.  That is safe: once its
 * loop is closed, a future's reference count is atomic and it may be
 * released from any thread.  If it was the last reference, the future is
 * freed there, running its value's destroy notify, a task's finalize and
 * the exception handler's "never retrieved" on that thread, as Python
 * frees an object on the thread that drops it.
 *
 * Returns: false if the loop is closed (reported): the reference and a
 *   value or error sent are dropped here, on the calling thread
 * Since: 0.1
 */
AFUT_API bool afut_future_resolve_threadsafe (AfutFuture *future);

/**
 * afut_future_resolve_pointer_threadsafe: (skip)
 * @future: (transfer full): a future
 * @pointer: (nullable): the value
 * @destroy: (nullable): frees @pointer; called on the loop's thread
 *
 * As afut_future_resolve_threadsafe(), with a pointer value.
 *
 * Not for bindings: they call afut_future_resolve_value_threadsafe().
 *
 * Returns: false if the loop is closed (reported): the reference and a
 *   value or error sent are dropped here, on the calling thread (see
 *   afut_future_resolve_threadsafe())
 * Since: 0.1
 */
AFUT_API bool afut_future_resolve_pointer_threadsafe (AfutFuture *future,
                                                      void *pointer,
                                                      AfutDestroyNotify destroy);

/**
 * afut_future_resolve_int_threadsafe:
 * @future: (transfer full): a future
 * @value: the value
 *
 * As afut_future_resolve_threadsafe(), with an integer value.
 *
 * Returns: false if the loop is closed (reported): the reference and a
 *   value or error sent are dropped here, on the calling thread (see
 *   afut_future_resolve_threadsafe())
 * Since: 0.1
 */
AFUT_API bool afut_future_resolve_int_threadsafe (AfutFuture *future,
                                                  int64_t value);

/**
 * afut_future_fail_threadsafe:
 * @future: (transfer full): a future
 * @error: (transfer full): the error
 *
 * As afut_future_resolve_threadsafe(), failing @future with @error.
 *
 * Returns: false if the loop is closed (reported): the reference and a
 *   value or error sent are dropped here, on the calling thread (see
 *   afut_future_resolve_threadsafe())
 * Since: 0.1
 */
AFUT_API bool afut_future_fail_threadsafe (AfutFuture *future,
                                           AfutError *error);

/**
 * afut_future_cancel_threadsafe:
 * @future: (transfer full): a future, or a task, a gather...
 * @message: (nullable): the cancel message, copied
 *
 * As afut_future_cancel(), from any thread: the cancel happens on the
 * loop's thread (a future done by then stays as it is).
 *
 * Returns: false if the loop is closed (reported): the reference and a
 *   value or error sent are dropped here, on the calling thread (see
 *   afut_future_resolve_threadsafe())
 * Since: 0.1
 */
AFUT_API bool afut_future_cancel_threadsafe (AfutFuture *future,
                                             const char *message);

/**
 * afut_future_get_value_type:
 * @future: a done future
 *
 * Which getter reads @future's value.
 *
 * Returns: the #AfutValueType of @future's value
 * Since: 0.1
 */
AFUT_API AfutValueType afut_future_get_value_type (AfutFuture *future);

/**
 * afut_future_get_pointer:
 * @future: a future in the %AFUT_FUTURE_DONE state
 *
 * Reading the value of a future that is pending, failed or cancelled is a
 * reported error (it returns %NULL): check afut_future_get_error() first.
 *
 * Returns: (transfer none) (nullable): the pointer value, owned by
 *   @future
 * Since: 0.1
 */
AFUT_API void *afut_future_get_pointer (AfutFuture *future);

/**
 * afut_future_steal_pointer:
 * @future: a future in the %AFUT_FUTURE_DONE state holding a pointer
 *
 * Takes the pointer value out, as g_task_propagate_pointer() does: the
 * caller owns it from now on, and neither @future nor the future it lends
 * its value from (a shield, wait_for, race or any result lends its
 * input's) will free it.  The pointer stays readable with
 * afut_future_get_pointer().  The same checks as that function apply.
 *
 * Returns: (transfer full) (nullable): the pointer value
 * Since: 0.2
 */
AFUT_API void *afut_future_steal_pointer (AfutFuture *future);

/**
 * afut_future_get_int:
 * @future: a future in the %AFUT_FUTURE_DONE state with an int value
 *
 * Reads the integer value of a done future (asyncio's result()).
 *
 * Returns: the integer value; 0 on a reported misuse
 * Since: 0.1
 */
AFUT_API int64_t afut_future_get_int (AfutFuture *future);

/**
 * afut_future_get_double:
 * @future: a future in the %AFUT_FUTURE_DONE state with a double value
 *
 * Reads the double value of a done future (asyncio's result()).
 *
 * Returns: the double value; 0 on a reported misuse
 * Since: 0.1
 */
AFUT_API double afut_future_get_double (AfutFuture *future);

/**
 * afut_future_get_error:
 * @future: a done future
 *
 * Marks the error retrieved: it will not be reported when @future is
 * freed.  Asking a pending future is a reported error.
 *
 * Returns: (nullable) (transfer none): the error of a failed or cancelled
 *   future, %NULL for a future done with a value
 * Since: 0.1
 */
AFUT_API const AfutError *afut_future_get_error (AfutFuture *future);

/**
 * afut_future_add_done_callback:
 * @future: a future
 * @callback: (scope async) (closure data): called once @future is done
 * @data: passed to @callback
 *
 * Adds a done callback.  Callbacks run from the ready queue, never inside
 * the call that completes @future, in the order they were added; one added
 * to a future that is already done is queued at once.
 *
 * Since: 0.1
 */
AFUT_API void afut_future_add_done_callback (AfutFuture *future,
                                             AfutFutureCallback callback,
                                             void *data);

/**
 * afut_future_add_done_callback_full: (rename-to afut_future_add_done_callback)
 * @future: a future
 * @callback: (scope notified) (closure data) (destroy destroy): called
 *   once @future is done
 * @data: passed to @callback
 * @destroy: (nullable): frees @data
 *
 * afut_future_add_done_callback() with a destroy notify, as GLib's
 * `_full` calls take: @destroy runs exactly once, whatever happens to
 * the callback: right after @callback ran, when the registration is
 * removed (afut_future_remove_done_callback() with @callback and
 * @data), when @future is freed without ever completing, or at once if
 * the callback can never run (the loop is closed: reported).  The
 * callback keeps its place in the registration order among the plain
 * ones.
 *
 * Since: 0.3
 */
AFUT_API void afut_future_add_done_callback_full (AfutFuture *future,
                                                  AfutFutureCallback callback,
                                                  void *data,
                                                  AfutDestroyNotify destroy);

/**
 * afut_future_remove_done_callback: (skip)
 * @future: a future
 * @callback: a callback
 * @data: its data
 *
 * Removes every registration of @callback with @data, those of
 * afut_future_add_done_callback_full() too (their destroy notify runs
 * now).  Once @future is done its callbacks are already scheduled and
 * nothing is removed.
 *
 * Not for bindings: a binding makes a new C callback for each
 * function it passes, which never matches one added before.
 *
 * Returns: how many were removed
 * Since: 0.1
 */
AFUT_API size_t afut_future_remove_done_callback (AfutFuture *future,
                                                  AfutFutureCallback callback,
                                                  void *data);

/* ---- tasks ---- */

/**
 * AfutTask:
 *
 * A stackless coroutine wrapped in a future (asyncio.Task).  Put it first
 * in your own struct, write the step function with AFUT_BEGIN() ...
 * AFUT_END(), and create it with AFUT_SPAWN() or afut_task_new().  A task
 * is a future: await it, gather it, cancel it.  Fields are private.
 */
#ifndef AFUT__GI_SCAN /* opaque to bindings: no private fields as properties */
struct AfutTask
{
  /*< private >*/
  AfutFuture future;
  AfutTaskFunc func;
  AfutTaskFinalize finalize;
  AfutFuture *awaiting;
  AfutError *raised; /* what the await being resumed raised, if anything */
  AfutError *caught; /* what the last catching await caught */
  union
  {
    char *cancel_message; /* a task's: of its pending cancellation */
    AfutTask *root;       /* an inline frame's: the task it is part of */
  } c;
  const char *name;
  AfutScope *scopes; /* innermost open timeout or task group */
  int resume_point;
  uint32_t id;          /* creation serial: Task-<id> */
  uint32_t list_index;  /* in the loop's task array */
  uint16_t task_flags;
  uint16_t n_cancels;   /* cancel requests not yet uncancelled */
};
#endif

/* Hidden from libafut-1's scan (not for bindings), where g-ir-scanner would
 * take it for a constructor of AfutTask. */
#ifndef AFUT__GI_SCAN
/**
 * afut_task_new: (skip)
 * @loop: (nullable): the loop, %NULL for the running loop
 * @func: the step function
 * @struct_size: size of the task's struct, at least sizeof (AfutTask)
 * @init: (nullable): @struct_size bytes copied into the new task (the
 *   #AfutTask header part is ignored); %NULL for zeroes
 * @name: (nullable): the task's name, copied; %NULL for "Task-N"
 * @finalize: (nullable): releases what the struct owns, when freed
 *
 * Creates a task and schedules its first step (asyncio.create_task): it
 * runs on a later loop iteration, never inside this call.  The loop keeps
 * the task alive until it completes.
 *
 * Not for bindings, whose tasks have no C struct: they use
 * afut_stepped_task_new().
 *
 * Returns: (transfer full): the task, as a future; %NULL on bad arguments
 *   (reported)
 * Since: 0.1
 */
AFUT_API AfutFuture *afut_task_new (AfutLoop *loop, AfutTaskFunc func,
                                    size_t struct_size, const void *init,
                                    const char *name,
                                    AfutTaskFinalize finalize);
#endif

/**
 * afut_coro_new: (skip)
 * @loop: (nullable): the loop, %NULL for the running loop
 * @func: the step function
 * @struct_size: size of the task's struct, at least sizeof (AfutTask)
 * @init: (nullable): initial contents of the struct, as afut_task_new()
 * @name: (nullable): the name, copied; %NULL for "Task-N"
 * @finalize: (nullable): releases what the struct owns, when freed
 *
 * Creates a coroutine object: a task that does not run yet, as calling
 * an `async def` in Python.  It starts when it is awaited (its first step
 * runs at once, inside the await, as `await coro()` does), when a gather
 * takes it (gathers start their coroutines in input order, whatever order
 * C evaluated the arguments in), or with afut_task_start().  One that
 * never starts is reported when freed ("was never awaited").
 *
 * Started by an await, it runs as part of the awaiting task, as `await
 * coro()` does in Python, until it completes: afut_task_get_current()
 * inside it returns that task; it shares the task's cancel state (a
 * cancel of either is the task's, counted by afut_task_cancelling() and
 * delivered where the coroutine waits, or at its next suspension if it
 * is running; one requested while it runs does not end it: its value
 * reaches the awaiter, which is cancelled at its next suspension); and
 * afut_loop_foreach_task() does not list it.  Its own step function
 * still takes it as its @task, for AFUT_AWAIT() and its scopes.  Started
 * any other way, it is a task like any other.
 *
 * Not for bindings, whose coroutines are their own (a Python
 * coroutine awaited inline runs in the awaiting task already).
 *
 * Returns: (transfer full): the coroutine, as a future; %NULL on bad
 *   arguments (reported)
 * Since: 0.1
 */
AFUT_API AfutFuture *afut_coro_new (AfutLoop *loop, AfutTaskFunc func,
                                    size_t struct_size, const void *init,
                                    const char *name,
                                    AfutTaskFinalize finalize);

/**
 * afut_task_start:
 * @future: a future
 *
 * Schedules the first step of a coroutine made by afut_coro_new()
 * (asyncio.ensure_future()); anything else is left as it is.
 *
 * Returns: (transfer none): @future
 * Since: 0.1
 */
AFUT_API AfutFuture *afut_task_start (AfutFuture *future);

/**
 * AFUT_SPAWN:
 * @Type: the task's struct type, whose first member is an #AfutTask
 * @func: its step function
 * @...: designated initializers of the struct's other fields
 *
 * asyncio.create_task() on the running loop, with a task named after
 * @func (C++: see the top of afut.h): `AFUT_SPAWN (Cook, cook, .order =
 * "Pasta")`.  The first step is scheduled at once, so tasks start in the
 * order they are spawned; C evaluates function arguments in no set order,
 * so hand a gather AFUT_CORO() objects, not spawns, when the order of
 * their first steps matters.
 *
 * Returns: (transfer full): the task, as an #AfutFuture
 */
#define AFUT_SPAWN(...)                                                       \
  AFUT__CAT (AFUT__SPAWN_, AFUT__HAS_INIT (__VA_ARGS__)) (__VA_ARGS__)
#define AFUT__SPAWN_0(Type, func)                                             \
  afut_task_new (NULL, (func), sizeof (Type), AFUT__NO_INIT (Type), #func,    \
                 NULL)
#define AFUT__SPAWN_1(Type, func, ...)                                        \
  afut_task_new (NULL, (func), sizeof (Type), AFUT__INIT (Type, __VA_ARGS__), \
                 #func, NULL)

/**
 * AFUT_CORO:
 * @Type: the task's struct type, whose first member is an #AfutTask
 * @func: its step function
 * @...: designated initializers of the struct's other fields
 *
 * afut_coro_new() on the running loop: `cook ("Pasta")` in Python is
 * `AFUT_CORO (Cook, cook, .order = "Pasta")` (C++: see the top of
 * afut.h).
 *
 * Returns: (transfer full): the coroutine, as an #AfutFuture
 */
#define AFUT_CORO(...)                                                        \
  AFUT__CAT (AFUT__CORO_, AFUT__HAS_INIT (__VA_ARGS__)) (__VA_ARGS__)
#define AFUT__CORO_0(Type, func)                                              \
  afut_coro_new (NULL, (func), sizeof (Type), AFUT__NO_INIT (Type), #func,    \
                 NULL)
#define AFUT__CORO_1(Type, func, ...)                                         \
  afut_coro_new (NULL, (func), sizeof (Type), AFUT__INIT (Type, __VA_ARGS__), \
                 #func, NULL)

/* AFUT__INIT (Type, inits...): the address of a Type made from the
 * initializers, alive until the end of the full expression (afut copies
 * it).  C: a compound literal.  C++ has none, nor the address of a
 * temporary: a lambda returns the struct, whose -Wmissing-field-
 * initializers g++ would report for every field a designated list
 * leaves out (C does not), and afut__cxx_init() takes its address. */
#ifdef __cplusplus
#define AFUT__INIT(Type, ...)                                                 \
  afut__cxx_init<Type> ([&] () -> Type {                                      \
    _Pragma ("GCC diagnostic push")                                           \
    _Pragma ("GCC diagnostic ignored \"-Wmissing-field-initializers\"")       \
    return Type{ __VA_ARGS__ };                                               \
    _Pragma ("GCC diagnostic pop")                                            \
  }())
#define AFUT__NO_INIT(Type) afut__cxx_no_init<Type> ()
#else
#define AFUT__INIT(Type, ...) (&(Type){ __VA_ARGS__ })
#define AFUT__NO_INIT(Type) NULL
#endif

/**
 * AFUT_SPAWN_NAMED:
 * @name: (nullable): the task's name, copied; %NULL for "Task-N"
 * @Type: the task's struct type, whose first member is an #AfutTask
 * @func: its step function
 * @...: designated initializers of the struct's other fields
 *
 * AFUT_SPAWN() with a name, asyncio's `create_task(coro, name=name)`:
 * `AFUT_SPAWN_NAMED ("pasta", Cook, cook, .order = "Pasta")` (C++: see the
 * top of afut.h).
 *
 * Returns: (transfer full): the task, as an #AfutFuture
 * Since: 0.3
 */
#define AFUT_SPAWN_NAMED(name, ...)                                           \
  AFUT__CAT (AFUT__SPAWN_NAMED_, AFUT__HAS_INIT (__VA_ARGS__)) (name,         \
                                                               __VA_ARGS__)
#define AFUT__SPAWN_NAMED_0(name, Type, func)                                 \
  afut_task_new (NULL, (func), sizeof (Type), AFUT__NO_INIT (Type), (name),   \
                 NULL)
#define AFUT__SPAWN_NAMED_1(name, Type, func, ...)                            \
  afut_task_new (NULL, (func), sizeof (Type), AFUT__INIT (Type, __VA_ARGS__), \
                 (name), NULL)

/**
 * AFUT_CORO_NAMED:
 * @name: (nullable): the name, copied; %NULL for "Task-N"
 * @Type: the task's struct type, whose first member is an #AfutTask
 * @func: its step function
 * @...: designated initializers of the struct's other fields
 *
 * AFUT_CORO() with a name (C++: see the top of afut.h): the name the
 * coroutine has when a gather, a task group or afut_task_start() makes a
 * task of it (asyncio's `create_task(coro, name=name)`,
 * `group.create_task(coro, name=name)`).
 *
 * Returns: (transfer full): the coroutine, as an #AfutFuture
 * Since: 0.3
 */
#define AFUT_CORO_NAMED(name, ...)                                            \
  AFUT__CAT (AFUT__CORO_NAMED_, AFUT__HAS_INIT (__VA_ARGS__)) (name,          \
                                                              __VA_ARGS__)
#define AFUT__CORO_NAMED_0(name, Type, func)                                  \
  afut_coro_new (NULL, (func), sizeof (Type), AFUT__NO_INIT (Type), (name),   \
                 NULL)
#define AFUT__CORO_NAMED_1(name, Type, func, ...)                             \
  afut_coro_new (NULL, (func), sizeof (Type), AFUT__INIT (Type, __VA_ARGS__), \
                 (name), NULL)

/* AFUT__HAS_INIT (Type, func, inits...): 1 if any initializer follows
 * (up to 32), else 0; so a spawn without initializers passes NULL rather
 * than an empty brace list, which C11 forbids. */
#define AFUT__CAT(a, b) AFUT__CAT_ (a, b)
#define AFUT__CAT_(a, b) a##b
#define AFUT__HAS_INIT(...)                                                   \
  AFUT__PICK35 (__VA_ARGS__, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 0, 0)
#define AFUT__PICK35(_1, _2, _3, _4, _5, _6, _7, _8, _9, _10, _11, _12, _13,  \
                     _14, _15, _16, _17, _18, _19, _20, _21, _22, _23, _24,   \
                     _25, _26, _27, _28, _29, _30, _31, _32, _33, _34, n,     \
                     ...)                                                     \
  n

/**
 * AFUT_TASK:
 * @future: a future that is a task
 *
 * Checked cast: the #AfutTask, or %NULL (reported) if @future is not one.
 */
#define AFUT_TASK(future) afut_future_get_task (future)

/**
 * afut_future_get_task:
 * @future: a future
 *
 * The checked cast behind AFUT_TASK().
 *
 * Returns: (nullable) (transfer none): @future as a task, %NULL if it is
 *   not a task
 * Since: 0.1
 */
AFUT_API AfutTask *afut_future_get_task (AfutFuture *future);

/**
 * afut_task_set_finalize: (skip)
 * @task: a task that has not completed
 * @finalize: (nullable): releases what the task's struct owns, once, when
 *   the task is freed
 *
 * For tasks made with AFUT_SPAWN() or AFUT_CORO(), which take no
 * finalize: set it right after, before the first step can run.
 *
 * Not for bindings: the finalize releases fields of a C task's struct.
 *
 * Since: 0.1
 */
AFUT_API void afut_task_set_finalize (AfutTask *task,
                                      AfutTaskFinalize finalize);

/**
 * afut_task_get_name:
 * @task: a task
 *
 * asyncio's Task.get_name().
 *
 * Returns: the task's name
 * Since: 0.1
 */
AFUT_API const char *afut_task_get_name (AfutTask *task);

/**
 * afut_task_set_name:
 * @task: a task
 * @name: the new name, copied
 *
 * asyncio's Task.set_name().
 *
 * Since: 0.1
 */
AFUT_API void afut_task_set_name (AfutTask *task, const char *name);

/**
 * afut_task_get_current:
 * @loop: (nullable): a loop, %NULL for the running loop
 *
 * asyncio.current_task().  In a coroutine awaited inline (afut_coro_new())
 * it is the task that awaits it, not the coroutine.
 *
 * Returns: (nullable) (transfer none): the task whose step is running on
 *   @loop (asyncio.current_task())
 * Since: 0.1
 */
AFUT_API AfutTask *afut_task_get_current (AfutLoop *loop);

/**
 * afut_task_awaited:
 * @task: the running task
 *
 * Inside a step: the future of the last await, whose value to read
 * (`x = await f` is AFUT_AWAIT() then afut_future_get_pointer
 * (afut_task_awaited (task))).  It stays valid until the next await.
 *
 * Returns: (nullable) (transfer none): the last awaited future
 * Since: 0.1
 */
AFUT_API AfutFuture *afut_task_awaited (AfutTask *task);

/**
 * afut_task_caught:
 * @task: the running task
 *
 * After AFUT_AWAIT_TRY() or AFUT_YIELD_TRY(): the error the await raised
 * (the awaited future's error, or the task's own cancellation), %NULL if
 * it succeeded.  Like the exception of a Python `except` block, it stays
 * through later plain awaits (cleanup), until the next catching await
 * replaces it; re-raise it with AFUT_RERAISE().
 *
 * Returns: (nullable) (transfer none): the caught error
 * Since: 0.1
 */
AFUT_API const AfutError *afut_task_caught (AfutTask *task);

/**
 * afut_task_clear_caught:
 * @task: the running task
 *
 * Says the error afut_task_caught() holds is handled: the end of a
 * Python `except` block that did not re-raise (`except CancelledError:
 * pass`).  afut_task_caught() then returns %NULL, AFUT_RERAISE() has
 * nothing to raise, and a scope exit finds nothing passing through it:
 * afut_timeout_exit() after a handled cancellation raises nothing, as
 * `async with timeout()` raises nothing when its block caught the
 * cancellation and fell out of the `async with`.  Not needed after a
 * catching await that succeeded: it caught nothing.
 *
 * Since: 0.3
 */
AFUT_API void afut_task_clear_caught (AfutTask *task);

/**
 * afut_task_cancelling:
 * @task: a task
 *
 * asyncio's Task.cancelling(): how many cancel requests the task has
 * had that afut_task_uncancel() did not take back.  Timeouts and task
 * groups use it to tell their own cancellation from one that came from
 * outside.
 *
 * Returns: the number of pending cancel requests
 * Since: 0.2
 */
AFUT_API unsigned afut_task_cancelling (AfutTask *task);

/**
 * afut_task_uncancel:
 * @task: a task
 *
 * asyncio's Task.uncancel(): takes back one cancel request, for the
 * party that made it and handled the resulting cancellation.  It does not
 * stop a cancellation already delivered.
 *
 * Returns: the number of cancel requests left
 * Since: 0.2
 */
AFUT_API unsigned afut_task_uncancel (AfutTask *task);

/**
 * afut_task_describe:
 * @task: a task
 * @buffer: (array length=size) (nullable): where to write, %NULL to measure
 * @size: the size of @buffer in bytes
 *
 * One line saying what @task is doing, for diagnostics, as `Task 'cook'
 * (Task-3) pending at line 42, awaiting sleep (1.5 s left)`.  The line
 * number is the source line of the await the task is suspended at.  The
 * text is truncated to fit @buffer and always NUL-terminated, as
 * snprintf() does.
 *
 * Returns: the length of the whole line, without the NUL
 * Since: 0.2
 */
AFUT_API size_t afut_task_describe (AfutTask *task, char *buffer, size_t size);

/**
 * AFUT_BEGIN:
 * @task: the #AfutTask (or a pointer to the struct that starts with one)
 *
 * Opens a step function's body.  Code before it runs at every resume.
 */
#define AFUT_BEGIN(task)                                                      \
  switch (afut__task_begin ((AfutTask *) (task)))                             \
    {                                                                         \
    case 0:

/**
 * AFUT_END:
 * @task: the task
 *
 * Closes the body; falling off it completes the task with no value.
 */
#define AFUT_END(task)                                                        \
  afut__task_return_none ((AfutTask *) (task));                               \
  return;                                                                     \
  default:                                                                    \
    afut__task_bad_resume ((AfutTask *) (task));                              \
    return;                                                                   \
    }

#define AFUT__AWAIT(task, future, catching)                                   \
  do                                                                          \
    {                                                                         \
      if (afut__task_await ((AfutTask *) (task), (future), __LINE__))         \
        return;                                                               \
      AFUT__FALLTHROUGH;                                                      \
    case __LINE__:                                                            \
      if (afut__task_resume ((AfutTask *) (task), (catching)))                \
        return;                                                               \
    }                                                                         \
  while (0)

/**
 * AFUT_AWAIT:
 * @task: the running task
 * @future: (transfer full): the future to await
 *
 * `await future`: suspends the task until @future is done (a future
 * already done continues at once, with no loop turn).  A coroutine
 * (afut_coro_new(), AFUT_CORO()) runs inside the await, as Python's `await
 * coro()`: a chain of them may be as deep as memory allows (no recursion
 * limit, no RecursionError), its C stack use bounded; below the 16th level
 * the awaiting step function returns and is entered again at this await,
 * with no loop turn between, so no plain local survives it (the coroutine
 * caveats at the top).  If @future failed
 * or was cancelled, or the task is cancelled meanwhile, the error
 * propagates: the task ends with it.  Read the value with
 * afut_task_awaited().
 */
#define AFUT_AWAIT(task, future) AFUT__AWAIT (task, future, 0)

/**
 * AFUT_AWAIT_TRY:
 * @task: the running task
 * @future: (transfer full): the future to await
 *
 * `try: await future`: as AFUT_AWAIT(), but an error does not end the
 * task; read it with afut_task_caught().  Catching a cancellation and not
 * re-raising it swallows it: the task goes on.
 */
#define AFUT_AWAIT_TRY(task, future) AFUT__AWAIT (task, future, 1)

#define AFUT__YIELD(task, catching)                                           \
  do                                                                          \
    {                                                                         \
      afut__task_yield ((AfutTask *) (task), __LINE__);                       \
      return;                                                                 \
    case __LINE__:                                                            \
      if (afut__task_resume ((AfutTask *) (task), (catching)))                \
        return;                                                               \
    }                                                                         \
  while (0)

/**
 * AFUT_YIELD:
 * @task: the running task
 *
 * `await asyncio.sleep(0)` without allocating: the task goes to the back
 * of the ready queue.  A cancellation requested meanwhile is raised here.
 */
#define AFUT_YIELD(task) AFUT__YIELD (task, 0)

/**
 * AFUT_YIELD_TRY:
 * @task: the running task
 *
 * As AFUT_YIELD(), catching a cancellation in afut_task_caught().
 */
#define AFUT_YIELD_TRY(task) AFUT__YIELD (task, 1)

/**
 * AFUT_RETURN:
 * @task: the running task
 *
 * Completes the task with no value.
 */
#define AFUT_RETURN(task)                                                     \
  do                                                                          \
    {                                                                         \
      afut__task_return_none ((AfutTask *) (task));                           \
      return;                                                                 \
    }                                                                         \
  while (0)

/**
 * AFUT_RETURN_POINTER:
 * @task: the running task
 * @pointer: the value
 * @destroy: (nullable): frees it with the task
 *
 * Completes the task with a pointer value.
 */
#define AFUT_RETURN_POINTER(task, pointer, destroy)                           \
  do                                                                          \
    {                                                                         \
      afut__task_return_pointer ((AfutTask *) (task), (pointer), (destroy));  \
      return;                                                                 \
    }                                                                         \
  while (0)

/**
 * AFUT_RETURN_INT:
 * @task: the running task
 * @value: the value
 *
 * Completes the task with an integer value.
 */
#define AFUT_RETURN_INT(task, value)                                          \
  do                                                                          \
    {                                                                         \
      afut__task_return_int ((AfutTask *) (task), (value));                   \
      return;                                                                 \
    }                                                                         \
  while (0)

/**
 * AFUT_RETURN_DOUBLE:
 * @task: the running task
 * @value: the value
 *
 * Completes the task with a double value.
 */
#define AFUT_RETURN_DOUBLE(task, value)                                       \
  do                                                                          \
    {                                                                         \
      afut__task_return_double ((AfutTask *) (task), (value));                \
      return;                                                                 \
    }                                                                         \
  while (0)

/**
 * AFUT_THROW:
 * @task: the running task
 * @error: (transfer full): the error
 *
 * `raise`: the task fails with @error (cancelled, for a cancellation).
 */
#define AFUT_THROW(task, error)                                               \
  do                                                                          \
    {                                                                         \
      afut__task_throw ((AfutTask *) (task), (error));                        \
      return;                                                                 \
    }                                                                         \
  while (0)

/**
 * AFUT_RERAISE:
 * @task: the running task
 *
 * A bare `raise` in an except block: the task ends with the error
 * afut_task_caught() holds, even after awaits made while cleaning up.
 */
#define AFUT_RERAISE(task)                                                    \
  do                                                                          \
    {                                                                         \
      afut__task_reraise ((AfutTask *) (task));                               \
      return;                                                                 \
    }                                                                         \
  while (0)

/* Called by the macros above; not for direct use. */
#ifndef __GI_SCANNER__
AFUT_API int afut__task_begin (AfutTask *task);
AFUT_API int afut__task_await (AfutTask *task, AfutFuture *future, int line);
AFUT_API int afut__task_resume (AfutTask *task, int catching);
AFUT_API void afut__task_yield (AfutTask *task, int line);
AFUT_API void afut__task_return_none (AfutTask *task);
AFUT_API void afut__task_return_pointer (AfutTask *task, void *pointer,
                                         AfutDestroyNotify destroy);
AFUT_API void afut__task_return_int (AfutTask *task, int64_t value);
AFUT_API void afut__task_return_double (AfutTask *task, double value);
AFUT_API void afut__task_throw (AfutTask *task, AfutError *error);
AFUT_API void afut__task_reraise (AfutTask *task);
AFUT_API void afut__task_bad_resume (AfutTask *task);
#endif

/* ---- fibers ---- */

/**
 * AfutFiberFunc:
 * @user_data: the data given when the fiber was made
 *
 * A fiber's body: plain C on a stack of its own, which may call
 * afut_await() and its typed forms anywhere, in any function it calls.
 * What it returns completes the fiber, as `return` ends an `async def`:
 * %NULL for no value; a done future (afut_future_new_for_int() ...,
 * afut_future_new_for_error(), or the result of afut_await()) for its
 * value or error; a pending future is awaited first (`return await f`).
 *
 * Returns: (transfer full) (nullable): the fiber's outcome
 * Since: 0.3
 */
typedef AfutFuture *(*AfutFiberFunc) (void *user_data);

/**
 * AfutFiberOptions:
 * @name: (nullable): the fiber's name, copied; %NULL for "Task-N"
 * @stack_size: the stack's size in bytes, rounded up to whole pages; 0
 *   for the default, %AFUT_FIBER_STACK_SIZE
 * @lazy: a coroutine object (afut_coro_new()): it starts when awaited,
 *   gathered or given to afut_task_start(), not at once
 *
 * How afut_fiber_new_full() makes a fiber.  Zero-initialize it and set
 * what you need: `&(AfutFiberOptions){ .stack_size = 1 << 20 }`.
 *
 * Since: 0.3
 */
typedef struct
{
  const char *name;
  size_t stack_size;
  bool lazy;
} AfutFiberOptions;

/**
 * AFUT_FIBER_STACK_SIZE:
 *
 * The default size of a fiber's stack: 256 KiB of address space, of
 * which only the pages the fiber touches take memory (one or two for a
 * fiber that awaits in a few nested calls).  Define it before the
 * implementing #include to change it.
 *
 * Since: 0.3
 */
#ifndef AFUT_FIBER_STACK_SIZE
#define AFUT_FIBER_STACK_SIZE (256 * 1024)
#endif

/**
 * afut_fiber_new: (skip)
 * @func: the fiber's body
 * @user_data: (closure): passed to @func
 * @destroy: (nullable) (destroy user_data): frees @user_data once the body
 *   has returned, or when the fiber is freed without having run it
 *
 * Creates a fiber on the running loop and schedules its first step, as
 * afut_task_new() does: a stackful task whose body awaits with
 * afut_await() anywhere in plain C, keeping its locals.  A fiber is an
 * #AfutTask: gather it, cancel it, shield it, put it in a task group,
 * await it from a stackless task or from another fiber.  Its stack is
 * taken at its first step from a pool and goes back there when the body
 * returns; a fiber cancelled before its first step never takes one.
 *
 * Not for bindings (every fiber call is skipped by GI): the
 * body runs on a C stack of its own, switched in and out under the
 * interpreter, which keeps its own state for the thread's stack (Python's
 * recursion count and frames, SpiderMonkey's stack limit); and a Python
 * or JavaScript coroutine already is its language's fiber.
 *
 * Returns: (transfer full): the fiber, as a future; %NULL if no loop is
 *   running or @func is %NULL (reported)
 * Since: 0.3
 */
AFUT_API AfutFuture *afut_fiber_new (AfutFiberFunc func, void *user_data,
                                     AfutDestroyNotify destroy);

/**
 * afut_fiber_new_full: (skip)
 * @loop: (nullable): the loop, %NULL for the running loop
 * @options: (nullable): name, stack size, laziness; %NULL for defaults
 * @func: the fiber's body
 * @user_data: (closure): passed to @func
 * @destroy: (nullable) (destroy user_data): frees @user_data, as
 *   afut_fiber_new()
 *
 * afut_fiber_new() with options.  A lazy fiber is a coroutine object, as
 * afut_coro_new() makes: awaited, it runs inline as part of the awaiting
 * task (`await coro()`), whether that task is a fiber or stackless.
 *
 * Not for bindings (see afut_fiber_new()).
 *
 * Returns: (transfer full): the fiber, as a future; %NULL on bad
 *   arguments (reported)
 * Since: 0.3
 */
AFUT_API AfutFuture *afut_fiber_new_full (AfutLoop *loop,
                                          const AfutFiberOptions *options,
                                          AfutFiberFunc func, void *user_data,
                                          AfutDestroyNotify destroy);

/**
 * AFUT_FIBER:
 * @func: the fiber's body, an #AfutFiberFunc
 * @user_data: passed to @func
 *
 * afut_fiber_new() with the fiber named after @func, as AFUT_SPAWN()
 * names a task: `AFUT_FIBER (cook, "Pasta")`.
 *
 * Returns: (transfer full): the fiber, as an #AfutFuture
 * Since: 0.3
 */
#define AFUT_FIBER(func, user_data)                                           \
  afut__fiber_new_named (#func, (func), (user_data))

/**
 * AFUT_FIBER_CORO:
 * @func: the fiber's body, an #AfutFiberFunc
 * @user_data: passed to @func
 *
 * A lazy fiber named after @func, as AFUT_CORO() makes a coroutine
 * object: `cook ("Pasta")` in `await asyncio.gather (cook ("Pasta"), ...)`
 * is `AFUT_FIBER_CORO (cook, "Pasta")`.  It starts when awaited (inline,
 * as part of the awaiting task), gathered or given to afut_task_start().
 *
 * Returns: (transfer full): the fiber, as an #AfutFuture
 * Since: 0.3
 */
#define AFUT_FIBER_CORO(func, user_data)                                      \
  afut__fiber_coro_named (#func, (func), (user_data))

/* Called by AFUT_FIBER() and AFUT_FIBER_CORO(); not for direct use. */
#ifndef __GI_SCANNER__
AFUT_API AfutFuture *afut__fiber_new_named (const char *name,
                                            AfutFiberFunc func,
                                            void *user_data);
AFUT_API AfutFuture *afut__fiber_coro_named (const char *name,
                                             AfutFiberFunc func,
                                             void *user_data);
#endif

/**
 * afut_fiber_get_current: (skip)
 *
 * The fiber whose body is running, for the calls that take the running
 * task (afut_timeout_enter(), afut_task_group_new() ...).  In a lazy
 * fiber awaited inline it is that fiber, as a stackless coroutine's step
 * gets its own @task.
 *
 * Not for bindings (see afut_fiber_new()).
 *
 * Returns: (nullable) (transfer none): the running fiber, %NULL outside
 *   one
 * Since: 0.3
 */
AFUT_API AfutTask *afut_fiber_get_current (void);

/**
 * afut_await: (skip)
 * @future: (transfer full): the future to await
 *
 * `await future` in a fiber: returns once @future is done, having
 * suspended the fiber meanwhile (a future already done returns at once,
 * with no switch).  The returned future says what the await gave: @future
 * itself, done or failed; or, when the fiber was cancelled while @future
 * completed (or @future was a misuse, as %NULL), a failed future with
 * that error.  A cancellation of the fiber arrives here as an
 * %AFUT_ERROR_CANCELLED error: clean up (awaiting more is fine), then
 * return it to end cancelled, or go on to swallow it, as rule 5 says.
 * Called outside a fiber it reports a critical and returns a failed
 * future (%NULL if @future is %NULL and no loop is running).
 *
 * Not for bindings (see afut_fiber_new()).
 *
 * Returns: (transfer full) (nullable): a done future
 * Since: 0.3
 */
AFUT_API AfutFuture *afut_await (AfutFuture *future);

/**
 * afut_await_check: (skip)
 * @future: (transfer full): the future to await
 * @error: (out) (optional) (nullable): where the await's error goes
 *
 * afut_await() for a future whose value is not needed: `await future`
 * with the error, if any, in @error (a cancellation of the fiber too).
 * Outside a fiber: a critical and an %AFUT_ERROR_INVALID_STATE error.
 *
 * Not for bindings (see afut_fiber_new()).
 *
 * Returns: true if the await succeeded, false with @error set
 * Since: 0.3
 */
AFUT_API bool afut_await_check (AfutFuture *future, AfutError **error);

/**
 * afut_await_int: (skip)
 * @future: (transfer full): a future with an integer value
 * @error: (out) (optional) (nullable): where the await's error goes
 *
 * afut_await_check() that returns the integer value.
 *
 * Not for bindings (see afut_fiber_new()).
 *
 * Returns: the value; 0 with @error set if the await failed
 * Since: 0.3
 */
AFUT_API int64_t afut_await_int (AfutFuture *future, AfutError **error);

/**
 * afut_await_double: (skip)
 * @future: (transfer full): a future with a double value
 * @error: (out) (optional) (nullable): where the await's error goes
 *
 * afut_await_check() that returns the double value.
 *
 * Not for bindings (see afut_fiber_new()).
 *
 * Returns: the value; 0 with @error set if the await failed
 * Since: 0.3
 */
AFUT_API double afut_await_double (AfutFuture *future, AfutError **error);

/**
 * afut_await_pointer: (skip)
 * @future: (transfer full): a future with a pointer value
 * @error: (out) (optional) (nullable): where the await's error goes
 *
 * afut_await_check() that takes the pointer value out, as
 * afut_future_steal_pointer() does: the caller owns it.  For a future
 * whose value others read too, use afut_await() and
 * afut_future_get_pointer().
 *
 * Not for bindings (see afut_fiber_new()).
 *
 * Returns: (transfer full) (nullable): the value; %NULL with @error set
 *   if the await failed
 * Since: 0.3
 */
AFUT_API void *afut_await_pointer (AfutFuture *future, AfutError **error);

/**
 * afut_fiber_yield: (skip)
 * @error: (out) (optional) (nullable): where a cancellation goes
 *
 * AFUT_YIELD() in a fiber: `await asyncio.sleep(0)` without allocating;
 * the fiber goes to the back of the ready queue.  A cancellation
 * requested meanwhile arrives here.
 *
 * Not for bindings (see afut_fiber_new()).
 *
 * Returns: true, or false with @error set
 * Since: 0.3
 */
AFUT_API bool afut_fiber_yield (AfutError **error);

/**
 * afut_future_new_for_int: (skip)
 * @value: the value
 *
 * A future of the running loop already done with @value: what a fiber
 * returns to end with it (`return afut_future_new_for_int (42);`).
 *
 * Not for bindings: their own values cross as values.
 *
 * Returns: (transfer full) (nullable): the future; %NULL if no loop is
 *   running (reported)
 * Since: 0.3
 */
AFUT_API AfutFuture *afut_future_new_for_int (int64_t value);

/**
 * afut_future_new_for_double: (skip)
 * @value: the value
 *
 * As afut_future_new_for_int(), with a double.
 *
 * Not for bindings: their own values cross as values.
 *
 * Returns: (transfer full) (nullable): the future; %NULL if no loop is
 *   running (reported)
 * Since: 0.3
 */
AFUT_API AfutFuture *afut_future_new_for_double (double value);

/**
 * afut_future_new_for_pointer: (skip)
 * @pointer: (nullable): the value
 * @destroy: (nullable): frees it with the future
 *
 * As afut_future_new_for_int(), with a pointer.
 *
 * Not for bindings: their own values cross as values.
 *
 * Returns: (transfer full) (nullable): the future; %NULL if no loop is
 *   running (reported; @pointer is destroyed)
 * Since: 0.3
 */
AFUT_API AfutFuture *afut_future_new_for_pointer (void *pointer,
                                                  AfutDestroyNotify destroy);

/**
 * afut_future_new_for_error: (skip)
 * @error: (transfer full): the error
 *
 * A future of the running loop already failed with @error (cancelled,
 * for a cancellation): what a fiber returns to end with it, as `raise`.
 *
 * Not for bindings: their exceptions cross as errors already.
 *
 * Returns: (transfer full) (nullable): the future; %NULL if no loop is
 *   running (reported; @error is freed)
 * Since: 0.3
 */
AFUT_API AfutFuture *afut_future_new_for_error (AfutError *error);

/**
 * afut_timeout_exit_with_error: (skip)
 * @timeout: the innermost open scope of the running task
 * @error: (inout) (optional) (nullable): the error the block ends with,
 *   %NULL (or pointing to %NULL) for none
 *
 * afut_timeout_exit() for code that holds its error in a variable, as a
 * fiber does: `__aexit__` with the block's exception.  If the scope
 * expired and *@error is the cancellation it caused, *@error becomes
 * %AFUT_ERROR_TIMEOUT; anything else passes unchanged.  A fiber must
 * leave every scope it entered before the function holding the
 * #AfutTimeout returns.
 *
 * Not for bindings (see afut_fiber_new()).
 *
 * Returns: true if the scope expired
 * Since: 0.3
 */
AFUT_API bool afut_timeout_exit_with_error (AfutTimeout *timeout,
                                            AfutError **error);

/* ---- sleep, gather, fds ---- */

/**
 * afut_sleep:
 * @seconds: how long; 0 or less yields once (the task goes to the back
 *   of the ready queue)
 *
 * asyncio.sleep() on the running loop.  Timers with equal deadlines fire
 * in the order they were created.  Cancelling the future removes its
 * timer.  Deadlines saturate: %INFINITY, or a delay that would pass the
 * clock's range (about 292 years of nanoseconds, counted from the loop's
 * time 0), never fires, however late the loop's clock is (the virtual
 * clock too).
 *
 * Returns: (transfer full): a future that resolves with no value; %NULL
 *   outside a running loop (reported)
 * Since: 0.1
 */
AFUT_API AfutFuture *afut_sleep (double seconds);

/**
 * afut_loop_sleep:
 * @loop: a loop
 * @seconds: how long
 *
 * As afut_sleep(), on @loop whether or not it runs.
 *
 * Returns: (transfer full): a new future
 * Since: 0.1
 */
AFUT_API AfutFuture *afut_loop_sleep (AfutLoop *loop, double seconds);

/**
 * afut_gather:
 * @first: (transfer full): the first future
 * @...: (transfer full): more futures, then %NULL
 *
 * asyncio.gather(): a future done when all the children are, whose items
 * (afut_gather_get_item()) are the children in input order, whatever the
 * completion order.  The first child error (or a child's own
 * cancellation) fails the gather at once; the other children keep
 * running.  A child cancelled on its own (not through the gather) fails
 * the gather with the child's cancellation, as asyncio does: its awaiter
 * gets that cancellation, but the gather is not cancelled
 * (afut_future_is_cancelled() is false, its state %AFUT_FUTURE_FAILED).
 * Cancelling the gather cancels every pending child; the gather ends
 * cancelled.  No children (`afut_gather (NULL)`, asyncio.gather()):
 * done at once.  The same future twice is awaited once and appears twice.
 * All children must belong to one loop.
 *
 * In C, afut_gather() is also a macro that ends the list with one more
 * %NULL, so `afut_gather (NULL)` compiles warning-free (a function with a
 * sentinel needs one past its named argument) and a forgotten terminator
 * is harmless; `(afut_gather) (...)` calls the function itself.  The same
 * goes for afut_gather_return_exceptions(), afut_race() and afut_any().
 *
 * Returns: (transfer full): the gathering future; %NULL on bad arguments
 *   (reported; the children are released)
 * Since: 0.1
 */
AFUT_API AfutFuture *afut_gather (AfutFuture *first, ...) AFUT__SENTINEL;
#define afut_gather(...) (afut_gather) (__VA_ARGS__, (AfutFuture *) NULL)

/**
 * afut_gather_return_exceptions:
 * @first: (transfer full): the first future
 * @...: (transfer full): more futures, then %NULL
 *
 * asyncio.gather(..., return_exceptions=True): waits for every child;
 * each item holds a value or an error (a child cancelled on its own: a
 * cancellation error).  Cancelling the gather still ends it cancelled.
 * No children: done at once.  A macro ends the list, as afut_gather()'s.
 *
 * Returns: (transfer full): the gathering future
 * Since: 0.1
 */
AFUT_API AfutFuture *afut_gather_return_exceptions (AfutFuture *first, ...)
  AFUT__SENTINEL;
#define afut_gather_return_exceptions(...)                                    \
  (afut_gather_return_exceptions) (__VA_ARGS__, (AfutFuture *) NULL)

/**
 * afut_gather_v: (rename-to afut_gather)
 * @futures: (array length=n_futures) (transfer none): the children
 * @n_futures: how many
 *
 * Array form of afut_gather(), for bindings; the caller keeps its
 * references.  With no children, the running loop is used.
 *
 * Returns: (transfer full): the gathering future
 * Since: 0.1
 */
AFUT_API AfutFuture *afut_gather_v (AfutFuture *const *futures,
                                    size_t n_futures);

/**
 * afut_gather_return_exceptions_v: (rename-to afut_gather_return_exceptions)
 * @futures: (array length=n_futures) (transfer none): the children
 * @n_futures: how many
 *
 * Array form of afut_gather_return_exceptions().
 *
 * Returns: (transfer full): the gathering future
 * Since: 0.1
 */
AFUT_API AfutFuture *afut_gather_return_exceptions_v (
  AfutFuture *const *futures, size_t n_futures);

/**
 * afut_gather_get_n_items:
 * @gather: a future made by a gather
 *
 * The number of children of a gather (the length of its result list).
 *
 * Returns: how many children were given (duplicates included)
 * Since: 0.1
 */
AFUT_API size_t afut_gather_get_n_items (AfutFuture *gather);

/**
 * afut_gather_get_item:
 * @gather: a future made by a gather
 * @index: which child, in input order
 *
 * One child of a gather, whose value (or error) is the item at @index
 * of the result list.
 *
 * Returns: (transfer none) (nullable): the child at @index: its value, or
 *   its error with return_exceptions, is the result slot
 * Since: 0.1
 */
AFUT_API AfutFuture *afut_gather_get_item (AfutFuture *gather, size_t index);

/**
 * afut_fd_wait:
 * @fd: a file descriptor
 * @events: %AFUT_IO_IN, %AFUT_IO_OUT or both
 *
 * Waits, on the running loop, until @fd is ready.  Cancelling the future
 * removes the watch.  Several waits on one fd are fine.  A file poll()
 * calls always ready (a regular file) is ready at once.  An fd that is not
 * open fails the future with %AFUT_ERRNO_ERROR %EBADF; so does one closed
 * while watched with poll(), but on Linux (epoll) a close cannot be seen:
 * do not close @fd while a wait is on it, or the wait stays pending until
 * cancelled.
 *
 * Returns: (transfer full): a future resolving with the #AfutIOEvents
 *   that happened, as an int; %NULL outside a running loop (reported)
 * Since: 0.1
 */
AFUT_API AfutFuture *afut_fd_wait (int fd, unsigned events);

/**
 * afut_loop_fd_wait:
 * @loop: a loop
 * @fd: a file descriptor
 * @events: %AFUT_IO_IN, %AFUT_IO_OUT or both
 *
 * As afut_fd_wait(), on @loop.
 *
 * Returns: (transfer full): a new future
 * Since: 0.1
 */
AFUT_API AfutFuture *afut_loop_fd_wait (AfutLoop *loop, int fd,
                                        unsigned events);

/**
 * afut_fd_read:
 * @fd: a file descriptor in non-blocking mode
 * @buffer: where the bytes go; it must stay valid until the future is done
 * @size: how many bytes at most (more than 0)
 *
 * Reads what is there, waiting on the running (or thread-default) loop
 * until @fd is readable: asyncio's `await reader.read(size)`.  Works on
 * every backend.  Cancelling the future stops the wait.
 *
 * Returns: (transfer full): a task resolving with the number of bytes
 *   read as an int, 0 at end of stream; failing with %AFUT_ERRNO_ERROR
 * Since: 0.1
 */
AFUT_API AfutFuture *afut_fd_read (int fd, void *buffer, size_t size);

/**
 * afut_fd_read_exactly:
 * @fd: a file descriptor in non-blocking mode
 * @buffer: where the bytes go; valid until the future is done
 * @size: how many bytes
 *
 * As afut_fd_read(), until @size bytes came (readexactly()).
 *
 * Returns: (transfer full): a task resolving with @size; failing with
 *   %AFUT_ERROR_INCOMPLETE if the stream ends first, or %AFUT_ERRNO_ERROR
 * Since: 0.1
 */
AFUT_API AfutFuture *afut_fd_read_exactly (int fd, void *buffer, size_t size);

/**
 * afut_fd_write_all:
 * @fd: a file descriptor in non-blocking mode
 * @buffer: the bytes; valid until the future is done
 * @size: how many
 *
 * Writes all of @buffer, waiting until @fd is writable whenever it is
 * full (asyncio's `writer.write(); await writer.drain()`).  On a socket
 * whose peer has gone it fails with EPIPE rather than raising SIGPIPE (a
 * pipe still raises it: ignore SIGPIPE to get EPIPE there).
 *
 * Returns: (transfer full): a task resolving with @size; failing with
 *   %AFUT_ERRNO_ERROR
 * Since: 0.1
 */
AFUT_API AfutFuture *afut_fd_write_all (int fd, const void *buffer,
                                        size_t size);

/* ---- timeouts, shield, wait, races ---- */

/**
 * AFUT_NO_TIMEOUT:
 *
 * A timeout that never expires (Python's `timeout=None`).
 */
#define AFUT_NO_TIMEOUT ((double) INFINITY)

/**
 * afut_shield:
 * @future: (transfer full): the future to protect
 *
 * asyncio.shield(): a future that completes as @future does, except that
 * cancelling it does not cancel @future, which runs on.  As in asyncio,
 * a cancelled shield lets go of @future on the next loop turn (asyncio's
 * done callback): an error @future fails with after that is reported
 * when it is freed unless someone else retrieves it; one it failed with
 * before is taken as retrieved.
 * A coroutine is started.  A @future already done is returned as it is.
 *
 * Returns: (transfer full): the shield, %NULL if @future is %NULL
 *   (reported)
 * Since: 0.2
 */
AFUT_API AfutFuture *afut_shield (AfutFuture *future);

/**
 * afut_wait_for:
 * @future: (transfer full): the future to wait for
 * @timeout: seconds; 0 or less: @future must be done already;
 *   %AFUT_NO_TIMEOUT: no limit
 *
 * asyncio.wait_for(): a future that completes as @future does, unless
 * @timeout passes first: then @future is cancelled, afut waits for it to
 * end (a task may clean up, awaiting more), and the result fails with
 * %AFUT_ERROR_TIMEOUT.  If @future swallows the cancellation and
 * completes with a value or another error, that is the result, as in
 * asyncio.  Cancelling the result cancels @future and ends cancelled once
 * @future has ended (the behaviour of Python 3.12, which fixed 3.11's
 * lost cancellations).  A coroutine is started.  A pointer value is lent
 * by @future, which the result keeps alive.
 *
 * Returns: (transfer full): the result future, %NULL on bad arguments
 *   (reported)
 * Since: 0.2
 */
AFUT_API AfutFuture *afut_wait_for (AfutFuture *future, double timeout);

/**
 * AfutScope:
 *
 * The private part shared by the scopes a task opens (#AfutTimeout, task
 * groups).
 */
#ifndef AFUT__GI_SCAN /* opaque to bindings: no private fields as properties */
struct AfutScope
{
  /*< private >*/
  AfutScope *outer;
  AfutTask *task;
  int kind;
  int state;
};
#endif

/**
 * AfutTimeout:
 *
 * asyncio.timeout(): a deadline on a stretch of a task's code.  Put one
 * in the task's struct; its fields are private.
 *
 * |[<!-- language="C" -->
 * afut_timeout_enter (&s->task, &s->timeout, 10.0);
 * AFUT_AWAIT (s, fetch (s->url));        // an expiry ends s with a timeout
 * afut_timeout_exit (&s->timeout);
 * ]|
 *
 * When the deadline passes, the task is cancelled; the cancellation
 * raised by the await it is suspended at becomes an %AFUT_ERROR_TIMEOUT
 * where it leaves the scope.  Leaving happens when the task ends inside
 * the scope (an await raised, or the task returned), or at
 * afut_timeout_exit(), which converts the error AFUT_AWAIT_TRY() caught
 * (afut_task_caught()).  A cancellation that came from outside the
 * scope stays a cancellation.  Scopes nest.
 */
#ifndef AFUT__GI_SCAN /* opaque to bindings: no private fields as properties */
struct AfutTimeout
{
  /*< private >*/
  AfutScope scope;
  AfutFuture *handle;
  int64_t when;
  unsigned cancelling;
};
#endif

/**
 * afut_timeout_enter:
 * @task: the running task
 * @timeout: the scope, in @task's struct
 * @delay: seconds from now; %AFUT_NO_TIMEOUT for no deadline (yet)
 *
 * `async with asyncio.timeout(delay)`: opens the scope.  @timeout must
 * stay where it is until the scope is left.
 *
 * Since: 0.2
 */
AFUT_API void afut_timeout_enter (AfutTask *task, AfutTimeout *timeout,
                                  double delay);

/**
 * afut_timeout_enter_at:
 * @task: the running task
 * @timeout: the scope, in @task's struct
 * @when: the deadline on afut_loop_time()'s clock; %AFUT_NO_TIMEOUT for
 *   none
 *
 * `async with asyncio.timeout_at(when)`.
 *
 * Since: 0.2
 */
AFUT_API void afut_timeout_enter_at (AfutTask *task, AfutTimeout *timeout,
                                     double when);

/**
 * afut_timeout_reschedule:
 * @timeout: an open scope that has not expired
 * @when: the new deadline on afut_loop_time()'s clock, in the past for
 *   "at once", %AFUT_NO_TIMEOUT for none
 *
 * Timeout.reschedule().
 *
 * Since: 0.2
 */
AFUT_API void afut_timeout_reschedule (AfutTimeout *timeout, double when);

/**
 * afut_timeout_when:
 * @timeout: a scope
 *
 * asyncio's Timeout.when().
 *
 * Returns: the deadline, %AFUT_NO_TIMEOUT if it has none
 * Since: 0.2
 */
AFUT_API double afut_timeout_when (const AfutTimeout *timeout);

/**
 * afut_timeout_expired:
 * @timeout: a scope
 *
 * asyncio's Timeout.expired().
 *
 * Returns: true once the deadline has passed and cancelled the task
 * Since: 0.2
 */
AFUT_API bool afut_timeout_expired (const AfutTimeout *timeout);

/**
 * afut_timeout_exit:
 * @timeout: the innermost open scope of the running task
 *
 * Leaves the scope.  The error leaving with the block is the task's
 * caught one (afut_task_caught()), as `__aexit__` gets the exception the
 * block raised: if the scope expired and that is the cancellation it
 * caused, it becomes %AFUT_ERROR_TIMEOUT.  A block that handled the
 * cancellation (`except CancelledError: pass`) says so first with
 * afut_task_clear_caught(); then nothing is raised, though the scope
 * still reports that it expired.
 *
 * Returns: true if the scope expired
 * Since: 0.2
 */
AFUT_API bool afut_timeout_exit (AfutTimeout *timeout);

/**
 * AfutWaitMode:
 * @AFUT_WAIT_FIRST_COMPLETED: when any future completes
 * @AFUT_WAIT_FIRST_EXCEPTION: when any future fails, or when all are done
 *   (a cancelled future does not count as failed, as in asyncio)
 * @AFUT_WAIT_ALL_COMPLETED: when all are done
 *
 * When afut_wait() returns (asyncio's return_when).
 */
typedef enum
{
  AFUT_WAIT_FIRST_COMPLETED,
  AFUT_WAIT_FIRST_EXCEPTION,
  AFUT_WAIT_ALL_COMPLETED
} AfutWaitMode;

/**
 * afut_wait:
 * @futures: (array length=n_futures): the futures, at least one
 * @n_futures: how many
 * @mode: when to complete
 * @timeout: seconds, %AFUT_NO_TIMEOUT for no limit
 *
 * asyncio.wait(): a future that completes with no value when @mode is
 * satisfied or @timeout passes, whichever comes first.  It never fails
 * and cancels nothing; cancelling it leaves @futures running.  Then
 * afut_wait_get_done() and afut_wait_get_pending() tell which are done.
 * Coroutines are started; a future listed twice counts once.
 *
 * Returns: (transfer full): the wait, %NULL on bad arguments (reported)
 * Since: 0.2
 */
AFUT_API AfutFuture *afut_wait (AfutFuture *const *futures, size_t n_futures,
                                AfutWaitMode mode, double timeout);

/**
 * afut_wait_get_done:
 * @wait: a completed afut_wait() future
 * @index: an index below the count
 * @n_done: (out) (optional): the number of done futures
 *
 * The done set, in input order, as it was when @wait completed.
 *
 * Returns: (transfer none) (nullable): the future at @index, %NULL past
 *   the end
 * Since: 0.2
 */
AFUT_API AfutFuture *afut_wait_get_done (AfutFuture *wait, size_t index,
                                         size_t *n_done);

/**
 * afut_wait_get_pending:
 * @wait: a completed afut_wait() future
 * @index: an index below the count
 * @n_pending: (out) (optional): the number of pending futures
 *
 * The pending set, in input order, as it was when @wait completed.
 *
 * Returns: (transfer none) (nullable): the future at @index, %NULL past
 *   the end
 * Since: 0.2
 */
AFUT_API AfutFuture *afut_wait_get_pending (AfutFuture *wait, size_t index,
                                            size_t *n_pending);

/**
 * afut_as_completed:
 * @futures: (array length=n_futures): the futures
 * @n_futures: how many
 * @timeout: seconds, %AFUT_NO_TIMEOUT for no limit
 *
 * asyncio.as_completed(): an iterator over @futures in the order they
 * complete.  Each afut_as_completed_next() gives a future that resolves
 * with the next input to complete as its pointer value (the input
 * itself, as `async for` over as_completed yields since Python 3.13;
 * read its value or error from it).  Once @timeout passes, the next
 * futures fail with %AFUT_ERROR_TIMEOUT.  Coroutines are started; a
 * future listed twice comes once.  The iterator is itself a future,
 * done when every input is.
 *
 * Returns: (transfer full): the iterator, %NULL on bad arguments
 *   (reported)
 * Since: 0.2
 */
AFUT_API AfutFuture *afut_as_completed (AfutFuture *const *futures,
                                        size_t n_futures, double timeout);

/**
 * afut_as_completed_next:
 * @iterator: an afut_as_completed() iterator
 *
 * The next completion: a future that resolves with the completed input
 * (transfer none, alive while @iterator is), at once if one completed
 * already.
 *
 * Returns: (transfer full) (nullable): the future to await, %NULL when
 *   every input has been handed out
 * Since: 0.2
 */
AFUT_API AfutFuture *afut_as_completed_next (AfutFuture *iterator);

/**
 * afut_race:
 * @first: (transfer full): the first future
 * @...: (transfer full): more futures, then %NULL
 *
 * JavaScript's Promise.race(): a future that settles as the first of
 * its inputs to complete does: with its value (a pointer lent, the input
 * kept alive) or its error.  The others keep running; their later
 * errors count as retrieved.  Cancelling the race cancels every input
 * still pending.  Coroutines are started, in input order.  A macro ends
 * the list, as afut_gather()'s: `afut_race (NULL)` compiles, and is
 * reported when it runs (a race of nothing would never settle).
 *
 * Returns: (transfer full): the race, %NULL on bad arguments or no input
 *   (reported)
 * Since: 0.2
 */
AFUT_API AfutFuture *afut_race (AfutFuture *first, ...) AFUT__SENTINEL;
#define afut_race(...) (afut_race) (__VA_ARGS__, (AfutFuture *) NULL)

/**
 * afut_race_v: (rename-to afut_race)
 * @futures: (array length=n_futures): the futures, at least one
 * @n_futures: how many
 *
 * afut_race() over an array (transfer none: references are taken).
 *
 * Returns: (transfer full): the race, %NULL on bad arguments (reported)
 * Since: 0.2
 */
AFUT_API AfutFuture *afut_race_v (AfutFuture *const *futures,
                                  size_t n_futures);

/**
 * afut_any:
 * @first: (transfer full): the first future
 * @...: (transfer full): more futures, then %NULL
 *
 * JavaScript's Promise.any(): a future that resolves as the first of its
 * inputs to succeed does.  When every input failed or was cancelled, it
 * fails with %AFUT_ERROR_GROUP, whose sub-errors
 * (afut_future_get_sub_error()) are the inputs' errors in input order.
 * The others keep running.  Cancelling it cancels every input still
 * pending; once they have failed it ends cancelled, with the cancel's
 * message.  No input (`afut_any (NULL)`): fails at once with an empty
 * group, as JS does.  A macro ends the list, as afut_gather()'s.
 *
 * Returns: (transfer full): the future, %NULL on bad arguments
 *   (reported)
 * Since: 0.2
 */
AFUT_API AfutFuture *afut_any (AfutFuture *first, ...) AFUT__SENTINEL;
#define afut_any(...) (afut_any) (__VA_ARGS__, (AfutFuture *) NULL)

/**
 * afut_any_v: (rename-to afut_any)
 * @futures: (array length=n_futures): the futures
 * @n_futures: how many
 *
 * afut_any() over an array (transfer none: references are taken).
 *
 * Returns: (transfer full): the future, %NULL on bad arguments
 *   (reported)
 * Since: 0.2
 */
AFUT_API AfutFuture *afut_any_v (AfutFuture *const *futures,
                                 size_t n_futures);

/**
 * afut_future_get_n_sub_errors:
 * @future: a future
 *
 * The number of errors in an %AFUT_ERROR_GROUP failure (Python's
 * `len(eg.exceptions)`).
 *
 * Returns: the number of errors grouped in @future's %AFUT_ERROR_GROUP
 *   error; 0 if it did not fail with one
 * Since: 0.2
 */
AFUT_API size_t afut_future_get_n_sub_errors (AfutFuture *future);

/**
 * afut_future_get_sub_error:
 * @future: a future that failed with %AFUT_ERROR_GROUP
 * @index: below afut_future_get_n_sub_errors()
 *
 * One of the errors grouped: ExceptionGroup.exceptions[index].  Reading
 * them retrieves the group.  The future that made the group (a task
 * group's exit, an afut_any()) has them, and so does every future that
 * failed with that error by taking it from another: a task whose body
 * ended inside the group's block, a task that awaited one of those (with
 * AFUT_AWAIT(), or caught and AFUT_RERAISE()d), a gather, shield,
 * wait_for or race of one, as Python's exception object travels with its
 * `exceptions`.  A group error made by hand (afut_error_new()), or
 * thrown as a copy with AFUT_THROW(), has none.  A sub-error that is
 * itself a group has no sub-errors of its own here.
 *
 * Returns: (transfer none) (nullable): the error, %NULL past the end
 * Since: 0.2
 */
AFUT_API const AfutError *afut_future_get_sub_error (AfutFuture *future,
                                                     size_t index);

/* ---- task groups ---- */

/**
 * afut_task_group_new:
 * @task: the running task, the group's parent
 *
 * `async with asyncio.TaskGroup() as group`: opens a task group in
 * @task.  Spawn children into it with afut_task_group_spawn(), then
 * `AFUT_AWAIT (task, afut_task_group_exit (group))` where the `async
 * with` block ends: it completes when every child has.  The first child
 * to fail cancels the other children and @task itself (so the await it is
 * suspended at raises), and the group ends with %AFUT_ERROR_GROUP
 * holding every child's error (and @task's own, if one ended the
 * block); read them with afut_future_get_sub_error() on the exit future,
 * or on @task when the group's error ended it.  For a block that raises
 * and handles the group in the same task, see
 * afut_task_group_exit_with_error().
 * A cancellation of @task from outside cancels the children and stays a
 * plain cancellation.  If @task ends inside the block (an await raised,
 * or it returned), the group exits then: its children are cancelled on
 * an error, awaited either way, and @task completes after them, with the
 * group's error if there is one.
 *
 * Returns: (transfer none): the group, owned by @task until its exit
 *   completes; %NULL outside a running task (reported)
 * Since: 0.2
 */
AFUT_API AfutTaskGroup *afut_task_group_new (AfutTask *task);

/**
 * afut_task_group_spawn:
 * @group: an open task group
 * @future: (transfer full): a coroutine (AFUT_CORO()) or any future
 *
 * TaskGroup.create_task(): starts @future as a child of @group.  A group
 * whose exit has completed, or that is cancelling its children after a
 * failure, takes no more: @future is cancelled (reported).
 *
 * Returns: (transfer none) (nullable): the child, alive while @group
 *   is (until the exit future is freed): afut_future_ref() it to read its
 *   value after that; %NULL if it was refused
 * Since: 0.2
 */
AFUT_API AfutFuture *afut_task_group_spawn (AfutTaskGroup *group,
                                            AfutFuture *future);

/**
 * afut_task_group_exit:
 * @group: the innermost open task group of the running task
 *
 * The end of the `async with` block.  Children may still be spawned
 * while it waits, by the children themselves.  A cancel of the waiting
 * task is taken as `__aexit__` takes it: a loop turn later the children
 * are cancelled, the wait goes on, and the task ends cancelled, unless
 * the group is aborting (a child failed, the block raised), which
 * absorbs it, even when it comes after the children are done.
 *
 * Returns: (transfer full): the future to await: it completes with no
 *   value when every child has, or fails as afut_task_group_new() says
 * Since: 0.2
 */
AFUT_API AfutFuture *afut_task_group_exit (AfutTaskGroup *group);

/**
 * afut_task_group_exit_with_error:
 * @group: the innermost open task group of the running task
 * @error: (transfer full) (nullable): the error the block ends with,
 *   %NULL for none
 *
 * The end of an `async with` block that raises: `__aexit__` with the
 * block's exception, which afut_task_group_exit() never gets (an
 * AFUT_THROW ends the task, so nothing in it could catch the group's
 * error).  The children are cancelled (as a failing child would have
 * them) and waited for; then the exit future fails with
 * %AFUT_ERROR_GROUP holding the children's errors and @error last, as
 * TaskGroup does, whose sub-errors afut_future_get_sub_error() reads on
 * the awaited exit future.  Await it with AFUT_AWAIT_TRY() to handle the
 * group in the same task (`except* E:` around the `async with`).  A
 * cancellation for @error ends the group cancelled unless it was the
 * group's own (a child failed): re-raising a caught cancellation is
 * `afut_error_copy (afut_task_caught (task))`.  %NULL is
 * afut_task_group_exit().
 *
 * Returns: (transfer full): the future to await, as afut_task_group_exit()
 * Since: 0.3
 */
AFUT_API AfutFuture *afut_task_group_exit_with_error (AfutTaskGroup *group,
                                                      AfutError *error);

/**
 * afut_task_group_get_n_children:
 * @group: a task group
 *
 * Counts the group's running children.
 *
 * Returns: the number of children not yet completed
 * Since: 0.2
 */
AFUT_API size_t afut_task_group_get_n_children (AfutTaskGroup *group);

/* ---- synchronisation primitives ----
 *
 * asyncio's Event, Lock, Semaphore, BoundedSemaphore, Condition, Queue,
 * LifoQueue and PriorityQueue (locks.py and queues.py of CPython 3.11).
 * Each coroutine method (Lock.acquire, Event.wait, Semaphore.acquire,
 * Condition.wait and wait_for, Queue.put, get and join) returns an afut
 * coroutine object: `AFUT_AWAIT (task, afut_lock_acquire (lock))` runs it
 * inside the await, as `await lock.acquire()` does, so an uncontended
 * acquire does not suspend.  Inside, each is the asyncio method line for
 * line, try/except/finally included: the wake-up order, fairness (first
 * come, first served; a cancelled waiter is skipped; a late arrival cannot
 * jump the queue) and cancellation rules are asyncio's.
 *
 * The objects are reference counted, bound to one loop and used from that
 * loop's thread only.  A pending operation holds a reference to its
 * object, so dropping yours while tasks still wait on it is safe.
 *
 *     typedef struct { AfutTask task; AfutLock *lock; } Worker;
 *
 *     static void
 *     worker (AfutTask *task)              // async def worker(lock):
 *     {
 *       Worker *self = (Worker *) task;
 *       AFUT_BEGIN (task);
 *       AFUT_AWAIT (task, afut_lock_acquire (self->lock)); // async with lock:
 *       AFUT_AWAIT_TRY (task, afut_sleep (1.0));           //   await sleep(1)
 *       afut_lock_release (self->lock);
 *       if (afut_task_caught (task) != NULL)
 *         AFUT_RERAISE (task);
 *       AFUT_END (task);
 *     }
 */

/**
 * AfutEvent:
 *
 * asyncio.Event: a flag tasks wait for.  Reference counted; fields are
 * private.
 *
 * Since: 0.2
 */
typedef struct AfutEvent AfutEvent;

/**
 * AfutLock:
 *
 * asyncio.Lock: a non-reentrant mutual exclusion lock for tasks, handed to
 * waiters first come, first served.  Not owned by a task: any code may
 * release it.  Reference counted; fields are private.
 *
 * Since: 0.2
 */
typedef struct AfutLock AfutLock;

/**
 * AfutSemaphore:
 *
 * asyncio.Semaphore, or asyncio.BoundedSemaphore when made with
 * afut_bounded_semaphore_new().  Reference counted; fields are private.
 *
 * Since: 0.2
 */
typedef struct AfutSemaphore AfutSemaphore;

/**
 * AfutCondition:
 *
 * asyncio.Condition: waiting for a notification while a lock is released.
 * Reference counted; fields are private.
 *
 * Since: 0.2
 */
typedef struct AfutCondition AfutCondition;

/**
 * AfutQueue:
 *
 * asyncio.Queue, LifoQueue or PriorityQueue of `void *` items.  Reference
 * counted; fields are private.
 *
 * Since: 0.2
 */
typedef struct AfutQueue AfutQueue;

/**
 * AfutPredicateFunc:
 * @data: the user data given to afut_condition_wait_for()
 *
 * The predicate of afut_condition_wait_for().  It runs inside the waiting
 * coroutine, with the condition's lock held.
 *
 * Returns: whether the awaited state is reached
 * Since: 0.2
 */
typedef bool (*AfutPredicateFunc) (void *data);

/**
 * AfutCompareFunc:
 * @a: an item
 * @b: another item
 *
 * Orders the items of a %AFUT_QUEUE_PRIORITY queue: it receives the items
 * themselves (the pointers that were put), as GLib's GCompareFunc, not
 * pointers to them as qsort() does.
 *
 * Returns: negative if @a comes out before @b, positive if after, 0 if
 *   they are equal (equal items come out in the order they were put)
 * Since: 0.2
 */
typedef int (*AfutCompareFunc) (const void *a, const void *b);

/**
 * AfutQueueKind:
 * @AFUT_QUEUE_FIFO: first in, first out (asyncio.Queue)
 * @AFUT_QUEUE_LIFO: last in, first out (asyncio.LifoQueue)
 * @AFUT_QUEUE_PRIORITY: smallest first by the queue's #AfutCompareFunc,
 *   equal items in the order they were put (asyncio.PriorityQueue, whose
 *   entries are usually `(priority, count, data)` tuples for that reason)
 *
 * The order in which a queue hands out its items.
 *
 * Since: 0.2
 */
typedef enum
{
  AFUT_QUEUE_FIFO,
  AFUT_QUEUE_LIFO,
  AFUT_QUEUE_PRIORITY
} AfutQueueKind;

/* ---- event ---- */

/**
 * afut_event_new:
 * @loop: (nullable): the loop, %NULL for the running loop
 *
 * Creates an event, not set (asyncio.Event()).
 *
 * Returns: (transfer full): a new event; %NULL if @loop is %NULL and no
 *   loop is running, or the loop is closed (reported)
 * Since: 0.2
 */
AFUT_API AfutEvent *afut_event_new (AfutLoop *loop);

/**
 * afut_event_ref:
 * @event: an event
 *
 * Takes a reference to @event.
 *
 * Returns: (transfer full): @event
 * Since: 0.2
 */
AFUT_API AfutEvent *afut_event_ref (AfutEvent *event);

/**
 * afut_event_unref:
 * @event: (nullable) (transfer full): an event
 *
 * Drops a reference; %NULL is ignored.  Pending waits hold references of
 * their own.
 *
 * Since: 0.2
 */
AFUT_API void afut_event_unref (AfutEvent *event);

/**
 * afut_event_set:
 * @event: an event
 *
 * Sets the flag and wakes every task waiting on @event (they resume on
 * later loop iterations, in the order they began to wait).  Until
 * afut_event_clear(), waits complete at once.  Setting a set event does
 * nothing.
 *
 * Since: 0.2
 */
AFUT_API void afut_event_set (AfutEvent *event);

/**
 * afut_event_clear:
 * @event: an event
 *
 * Clears the flag: later waits block until the next afut_event_set().
 * Waiters already woken by a set still return.
 *
 * Since: 0.2
 */
AFUT_API void afut_event_clear (AfutEvent *event);

/**
 * afut_event_is_set:
 * @event: an event
 *
 * asyncio's Event.is_set().
 *
 * Returns: whether the flag is set
 * Since: 0.2
 */
AFUT_API bool afut_event_is_set (AfutEvent *event);

/**
 * afut_event_wait:
 * @event: an event
 *
 * `await event.wait()`: a coroutine that, once awaited, completes at once
 * if the flag is set (the awaiting task does not suspend), else when
 * afut_event_set() is called.  Cancelling it stops the wait.
 *
 * Returns: (transfer full): a coroutine resolving with no value (asyncio
 *   returns True); %NULL on a bad argument (reported)
 * Since: 0.2
 */
AFUT_API AfutFuture *afut_event_wait (AfutEvent *event);

/* ---- lock ---- */

/**
 * afut_lock_new:
 * @loop: (nullable): the loop, %NULL for the running loop
 *
 * Creates an unlocked lock (asyncio.Lock()).
 *
 * Returns: (transfer full): a new lock; %NULL if @loop is %NULL and no
 *   loop is running, or the loop is closed (reported)
 * Since: 0.2
 */
AFUT_API AfutLock *afut_lock_new (AfutLoop *loop);

/**
 * afut_lock_ref:
 * @lock: a lock
 *
 * Takes a reference to @lock.
 *
 * Returns: (transfer full): @lock
 * Since: 0.2
 */
AFUT_API AfutLock *afut_lock_ref (AfutLock *lock);

/**
 * afut_lock_unref:
 * @lock: (nullable) (transfer full): a lock
 *
 * Drops a reference; %NULL is ignored.  Pending acquires hold references
 * of their own.
 *
 * Since: 0.2
 */
AFUT_API void afut_lock_unref (AfutLock *lock);

/**
 * afut_lock_acquire:
 * @lock: a lock
 *
 * `await lock.acquire()`: a coroutine that takes the lock.  If the lock is
 * free and no one waits for it, it takes it without suspending the
 * awaiting task; else it queues: afut_lock_release() hands the lock to
 * the first waiter still waiting, and a task arriving while a woken
 * waiter has not run yet queues behind it.  A waiter cancelled before it
 * got the lock leaves the queue, and passes the wake-up on if it had
 * already been woken.
 *
 * Returns: (transfer full): a coroutine resolving with no value (asyncio
 *   returns True) once @lock is held; %NULL on a bad argument (reported)
 * Since: 0.2
 */
AFUT_API AfutFuture *afut_lock_acquire (AfutLock *lock);

/**
 * afut_lock_release:
 * @lock: a locked lock
 *
 * Unlocks @lock and wakes the first waiter, if any (asyncio's
 * Lock.release()).  Releasing an unlocked lock is a reported error
 * (asyncio raises RuntimeError) that changes nothing.
 *
 * Returns: true if @lock was locked
 * Since: 0.2
 */
AFUT_API bool afut_lock_release (AfutLock *lock);

/**
 * afut_lock_is_locked:
 * @lock: a lock
 *
 * asyncio's Lock.locked().
 *
 * Returns: whether @lock is held (asyncio's locked())
 * Since: 0.2
 */
AFUT_API bool afut_lock_is_locked (AfutLock *lock);

/* ---- semaphore ---- */

/**
 * afut_semaphore_new:
 * @loop: (nullable): the loop, %NULL for the running loop
 * @value: the initial counter
 *
 * Creates a semaphore (asyncio.Semaphore(value)).
 *
 * Returns: (transfer full): a new semaphore; %NULL if @loop is %NULL and
 *   no loop is running, or the loop is closed (reported)
 * Since: 0.2
 */
AFUT_API AfutSemaphore *afut_semaphore_new (AfutLoop *loop, unsigned value);

/**
 * afut_bounded_semaphore_new:
 * @loop: (nullable): the loop, %NULL for the running loop
 * @value: the initial counter, also its bound
 *
 * Creates a bounded semaphore (asyncio.BoundedSemaphore(value)): a
 * release that would raise the counter above @value is a reported error.
 *
 * Returns: (transfer full): a new semaphore; %NULL if @loop is %NULL and
 *   no loop is running, or the loop is closed (reported)
 * Since: 0.2
 */
AFUT_API AfutSemaphore *afut_bounded_semaphore_new (AfutLoop *loop,
                                                    unsigned value);

/**
 * afut_semaphore_ref:
 * @semaphore: a semaphore
 *
 * Takes a reference to @semaphore.
 *
 * Returns: (transfer full): @semaphore
 * Since: 0.2
 */
AFUT_API AfutSemaphore *afut_semaphore_ref (AfutSemaphore *semaphore);

/**
 * afut_semaphore_unref:
 * @semaphore: (nullable) (transfer full): a semaphore
 *
 * Drops a reference; %NULL is ignored.  Pending acquires hold references
 * of their own.
 *
 * Since: 0.2
 */
AFUT_API void afut_semaphore_unref (AfutSemaphore *semaphore);

/**
 * afut_semaphore_acquire:
 * @semaphore: a semaphore
 *
 * `await semaphore.acquire()`: a coroutine that decrements the counter.
 * Unless afut_semaphore_is_locked(), it does so without suspending the
 * awaiting task; else it queues, and each release wakes the first waiter
 * still waiting.  A woken waiter cancelled before it resumes gives its
 * unit back and wakes the next one.
 *
 * Returns: (transfer full): a coroutine resolving with no value (asyncio
 *   returns True); %NULL on a bad argument (reported)
 * Since: 0.2
 */
AFUT_API AfutFuture *afut_semaphore_acquire (AfutSemaphore *semaphore);

/**
 * afut_semaphore_release:
 * @semaphore: a semaphore
 *
 * Increments the counter and wakes the first waiter, if any.  On a
 * bounded semaphore whose counter is at its bound, it is a reported error
 * (asyncio raises ValueError) that changes nothing.
 *
 * Returns: true if the counter was incremented
 * Since: 0.2
 */
AFUT_API bool afut_semaphore_release (AfutSemaphore *semaphore);

/**
 * afut_semaphore_is_locked:
 * @semaphore: a semaphore
 *
 * asyncio's Semaphore.locked().
 *
 * Returns: whether an acquire would wait: the counter is 0, or a task is
 *   still waiting (asyncio 3.11's locked())
 * Since: 0.2
 */
AFUT_API bool afut_semaphore_is_locked (AfutSemaphore *semaphore);

/**
 * afut_semaphore_get_value:
 * @semaphore: a semaphore
 *
 * The semaphore's counter.
 *
 * Returns: the counter (asyncio's `_value`); a waiter that was woken but
 *   has not resumed yet already took its unit
 * Since: 0.2
 */
AFUT_API unsigned afut_semaphore_get_value (AfutSemaphore *semaphore);

/* ---- condition ---- */

/**
 * afut_condition_new:
 * @loop: (nullable): the loop, %NULL for the running loop
 * @lock: (nullable) (transfer none): the lock to use, of the same loop;
 *   %NULL for a new one
 *
 * Creates a condition variable (asyncio.Condition(lock)).  It holds a
 * reference to @lock.
 *
 * Returns: (transfer full): a new condition; %NULL if no loop is found or
 *   @lock belongs to another loop (reported)
 * Since: 0.2
 */
AFUT_API AfutCondition *afut_condition_new (AfutLoop *loop, AfutLock *lock);

/**
 * afut_condition_ref:
 * @condition: a condition
 *
 * Takes a reference to @condition.
 *
 * Returns: (transfer full): @condition
 * Since: 0.2
 */
AFUT_API AfutCondition *afut_condition_ref (AfutCondition *condition);

/**
 * afut_condition_unref:
 * @condition: (nullable) (transfer full): a condition
 *
 * Drops a reference; %NULL is ignored.  Pending waits hold references of
 * their own.
 *
 * Since: 0.2
 */
AFUT_API void afut_condition_unref (AfutCondition *condition);

/**
 * afut_condition_acquire:
 * @condition: a condition
 *
 * afut_lock_acquire() on the condition's lock.
 *
 * Returns: (transfer full): a coroutine; %NULL on a bad argument
 *   (reported)
 * Since: 0.2
 */
AFUT_API AfutFuture *afut_condition_acquire (AfutCondition *condition);

/**
 * afut_condition_release:
 * @condition: a condition
 *
 * afut_lock_release() on the condition's lock.
 *
 * Returns: true if the lock was locked
 * Since: 0.2
 */
AFUT_API bool afut_condition_release (AfutCondition *condition);

/**
 * afut_condition_is_locked:
 * @condition: a condition
 *
 * asyncio's Condition.locked().
 *
 * Returns: whether the condition's lock is held
 * Since: 0.2
 */
AFUT_API bool afut_condition_is_locked (AfutCondition *condition);

/**
 * afut_condition_wait:
 * @condition: a condition whose lock the caller holds
 *
 * `await condition.wait()`: a coroutine that releases the lock, waits for
 * afut_condition_notify() or afut_condition_notify_all(), then takes the
 * lock again before it completes.  It takes the lock again whatever
 * happens: cancelled while waiting, it completes (cancelled) only once it
 * holds the lock; cancelled while taking the lock back, it keeps trying
 * and ends cancelled.  Awaited while the lock is not held, it fails with
 * %AFUT_ERROR_INVALID_STATE ("cannot wait on un-acquired lock", asyncio's
 * RuntimeError).
 *
 * Returns: (transfer full): a coroutine resolving with no value (asyncio
 *   returns True); %NULL on a bad argument (reported)
 * Since: 0.2
 */
AFUT_API AfutFuture *afut_condition_wait (AfutCondition *condition);

/**
 * afut_condition_wait_for: (skip)
 * @condition: a condition whose lock the caller holds
 * @predicate: the awaited state, called with @data until it returns true
 *   or the coroutine ends
 * @data: (nullable) (closure predicate): passed to @predicate; must
 *   outlive the coroutine
 *
 * `await condition.wait_for(predicate)`: a coroutine that calls
 * @predicate and, while it returns false, afut_condition_wait().  If
 * @predicate holds at once, it completes without waiting (and without
 * checking the lock, as asyncio).
 *
 * Not for bindings, which loop over afut_condition_wait() while
 * their predicate is false, as asyncio's Condition.wait_for() does.
 *
 * Returns: (transfer full): a coroutine resolving with no value once
 *   @predicate returned true (asyncio returns the predicate's value); it
 *   fails as afut_condition_wait() does; %NULL on a bad argument
 *   (reported)
 * Since: 0.2
 */
AFUT_API AfutFuture *afut_condition_wait_for (AfutCondition *condition,
                                              AfutPredicateFunc predicate,
                                              void *data);

/**
 * afut_condition_notify:
 * @condition: a condition whose lock the caller holds
 * @n: how many waiters to wake at most
 *
 * Wakes the first @n tasks waiting on @condition (asyncio's notify(n)).
 * They resume once they get the lock back, which this call does not
 * release.  Calling it without the lock held is a reported error (asyncio
 * raises RuntimeError) that wakes no one.
 *
 * Returns: true if the lock was held
 * Since: 0.2
 */
AFUT_API bool afut_condition_notify (AfutCondition *condition, unsigned n);

/**
 * afut_condition_notify_all:
 * @condition: a condition whose lock the caller holds
 *
 * Wakes every task waiting on @condition, as afut_condition_notify().
 *
 * Returns: true if the lock was held
 * Since: 0.2
 */
AFUT_API bool afut_condition_notify_all (AfutCondition *condition);

/* ---- queue ---- */

/**
 * afut_queue_new:
 * @loop: (nullable): the loop, %NULL for the running loop
 * @kind: the order items come out in
 * @maxsize: how many items the queue holds at most; 0 for no limit
 * @compare: (nullable) (scope forever): orders the items of an
 *   %AFUT_QUEUE_PRIORITY queue (required for it); ignored for the other
 *   kinds.  It must not put
 *   items into the queue or take them out: such a call from inside it is
 *   refused (reported), as Python's heapq refuses a list that changed
 *   size during a comparison
 * @item_destroy: (nullable) (scope forever): frees an item the queue or
 *   a put still owns when it goes: items left in the queue when it is freed, the item of a
 *   put that failed or was cancelled, or never awaited
 *
 * Creates a queue (asyncio.Queue(maxsize), LifoQueue, PriorityQueue).
 * Items are `void *`, %NULL included.
 *
 * Bindings pass %NULL for both functions and keep their items on their
 * side: the queue's %NULL items count them, and it gives them asyncio's
 * waiting, fairness, maxsize and join.
 *
 * Returns: (transfer full): a new queue; %NULL on a bad argument or when
 *   no loop is found (reported)
 * Since: 0.2
 */
AFUT_API AfutQueue *afut_queue_new (AfutLoop *loop, AfutQueueKind kind,
                                    size_t maxsize, AfutCompareFunc compare,
                                    AfutDestroyNotify item_destroy);

/**
 * afut_queue_ref:
 * @queue: a queue
 *
 * Takes a reference to @queue.
 *
 * Returns: (transfer full): @queue
 * Since: 0.2
 */
AFUT_API AfutQueue *afut_queue_ref (AfutQueue *queue);

/**
 * afut_queue_unref:
 * @queue: (nullable) (transfer full): a queue
 *
 * Drops a reference; %NULL is ignored.  When the last goes, the items
 * left in the queue are freed with its item_destroy.  Pending puts, gets
 * and joins hold references of their own.
 *
 * Since: 0.2
 */
AFUT_API void afut_queue_unref (AfutQueue *queue);

/**
 * afut_queue_put:
 * @queue: a queue
 * @item: (transfer full) (nullable): the item
 *
 * `await queue.put(item)`: a coroutine that enqueues @item, first waiting
 * while the queue is full (then it does not suspend the awaiting task if
 * there is room).  The coroutine owns @item until it enqueues it: if it
 * fails or is cancelled (then @item is never enqueued), @item is freed
 * with the queue's item_destroy at once; if it never ran (never awaited,
 * or cancelled before its first step), when the coroutine is freed.  A
 * woken put cancelled before it resumes wakes the next waiting put.
 *
 * Returns: (transfer full): a coroutine resolving with no value once
 *   @item is in the queue; %NULL if @queue is %NULL (reported; @item is
 *   not freed) or its loop is closed (reported; @item is freed)
 * Since: 0.2
 */
AFUT_API AfutFuture *afut_queue_put (AfutQueue *queue, void *item);

/**
 * afut_queue_put_nowait:
 * @queue: a queue
 * @item: (nullable): the item; taken only on success
 *
 * Enqueues @item if the queue is not full, and wakes the first waiting
 * get (asyncio's put_nowait()).  A full queue is not an error: it
 * returns false (asyncio raises QueueFull) and @item stays the caller's.
 * Called from the queue's own compare function, it is refused
 * (reported) and returns false.
 *
 * Returns: true if @item was enqueued (the queue owns it now)
 * Since: 0.2
 */
AFUT_API bool afut_queue_put_nowait (AfutQueue *queue, void *item);

/**
 * afut_queue_get:
 * @queue: a queue
 *
 * `item = await queue.get()`: a coroutine that takes the next item, first
 * waiting while the queue is empty (without suspending the awaiting task
 * if there is one).  Only the completed coroutine takes an item out: a
 * get cancelled, even after a put woke it, leaves the item in the queue
 * and wakes the next waiting get.
 *
 * Returns: (transfer full): a coroutine resolving with the item as a
 *   pointer value that the future owns, with the queue's item_destroy:
 *   take it with afut_future_steal_pointer (afut_task_awaited (task)), or
 *   only read it (afut_future_get_pointer()) and let the future free it;
 *   %NULL on a bad argument (reported)
 * Since: 0.2
 */
AFUT_API AfutFuture *afut_queue_get (AfutQueue *queue);

/**
 * afut_queue_get_nowait:
 * @queue: a queue
 * @item: (out) (transfer full): where the item goes; untouched on failure
 *
 * Takes the next item if there is one, and wakes the first waiting put
 * (asyncio's get_nowait()).  An empty queue is not an error: it returns
 * false (asyncio raises QueueEmpty).  Called from the queue's own compare
 * function, it is refused (reported) and returns false.
 *
 * Returns: true if an item was taken (the caller owns it now)
 * Since: 0.2
 */
AFUT_API bool afut_queue_get_nowait (AfutQueue *queue, void **item);

/**
 * afut_queue_task_done:
 * @queue: a queue
 *
 * Tells @queue that an item taken out is processed (asyncio's
 * task_done()); when every item ever put is, joins complete.  More calls
 * than items put is a reported error (asyncio raises ValueError) that
 * changes nothing.
 *
 * Returns: true if the count of unfinished items went down
 * Since: 0.2
 */
AFUT_API bool afut_queue_task_done (AfutQueue *queue);

/**
 * afut_queue_join:
 * @queue: a queue
 *
 * `await queue.join()`: a coroutine that completes once every item put
 * was taken out and marked with afut_queue_task_done(); at once (the
 * awaiting task does not suspend) if that is already so.
 *
 * Returns: (transfer full): a coroutine resolving with no value; %NULL on
 *   a bad argument (reported)
 * Since: 0.2
 */
AFUT_API AfutFuture *afut_queue_join (AfutQueue *queue);

/**
 * afut_queue_get_size:
 * @queue: a queue
 *
 * asyncio's Queue.qsize().
 *
 * Returns: how many items are in @queue (asyncio's qsize())
 * Since: 0.2
 */
AFUT_API size_t afut_queue_get_size (AfutQueue *queue);

/**
 * afut_queue_get_maxsize:
 * @queue: a queue
 *
 * asyncio's Queue.maxsize.
 *
 * Returns: the maxsize given to afut_queue_new(), 0 for no limit
 * Since: 0.2
 */
AFUT_API size_t afut_queue_get_maxsize (AfutQueue *queue);

/**
 * afut_queue_is_empty:
 * @queue: a queue
 *
 * asyncio's Queue.empty().
 *
 * Returns: whether @queue holds no item (asyncio's empty())
 * Since: 0.2
 */
AFUT_API bool afut_queue_is_empty (AfutQueue *queue);

/**
 * afut_queue_is_full:
 * @queue: a queue
 *
 * asyncio's Queue.full().
 *
 * Returns: whether @queue holds maxsize items; never for an unbounded one
 *   (asyncio's full())
 * Since: 0.2
 */
AFUT_API bool afut_queue_is_full (AfutQueue *queue);


/* ---- run ---- */

/**
 * afut_run: (skip)
 * @func: the main task's step function
 * @struct_size: size of its struct
 * @init: (nullable): initial contents of the struct
 * @name: (nullable): the main task's name
 *
 * asyncio.run() for a program's main(): creates a fresh loop (virtual
 * clock with AFUT_CLOCK=virtual in the environment), runs the main task
 * to completion, then closes the loop as afut_loop_close() does (what is
 * left is cancelled and run until it ends), even if someone still holds
 * a reference to it.  The main task's error is printed after that
 * cleanup, as an uncaught exception would be.  Calling it while a loop
 * runs on this thread is a reported error, not a hang.  To read the main
 * task's value or error, use afut_run_task().
 *
 * Not for bindings: their override's run() runs their own
 * coroutine as a task.
 *
 * Returns: 0 if the main task completed with a value; 1 if it failed or
 *   was cancelled (its error is printed on stderr) or on misuse
 * Since: 0.1
 */
AFUT_API int afut_run (AfutTaskFunc func, size_t struct_size,
                       const void *init, const char *name);

/**
 * afut_run_task: (skip)
 * @func: the main task's step function
 * @struct_size: size of its struct
 * @init: (nullable): initial contents of the struct
 * @name: (nullable): the main task's name
 *
 * asyncio.run() with its outcome: as afut_run(), but prints nothing and
 * hands the main task back, done, after the loop's cleanup: its value is
 * what main() returned (read it with afut_future_get_int() and the
 * others), its error (afut_future_get_error()) what asyncio.run() would
 * raise.  An error nobody reads is reported as never retrieved when the
 * task is freed.  The loop is closed; the task outlives it.
 *
 * C only: the task's struct is C's (afut_run_future() binds).
 *
 * Returns: (transfer full) (nullable): the main task, done; %NULL on
 *   misuse (reported)
 * Since: 0.3
 */
AFUT_API AfutFuture *afut_run_task (AfutTaskFunc func, size_t struct_size,
                                    const void *init, const char *name);

/**
 * AfutRunFunc:
 * @loop: the loop afut_run_future() made; it is the thread-default loop
 *   while this runs, so AFUT_CORO() and AFUT_SPAWN() use it
 * @data: the user data given to afut_run_future()
 *
 * Makes afut_run_future()'s main future: `main()` in `asyncio.run(main())`.
 *
 * Returns: (transfer full) (nullable): a future of @loop: a coroutine
 *   (started as the main task), a task or any other future
 */
typedef AfutFuture *(*AfutRunFunc) (AfutLoop *loop, void *data);

/**
 * afut_run_future:
 * @func: (scope call) (closure data): makes the main future on the new
 *   loop
 * @data: user data for @func
 *
 * asyncio.run(main()) for any future, the form bindings use: creates a
 * fresh loop as afut_run() does, calls @func to make the main future on
 * it, runs the loop until that future is done, closes the loop (what is
 * left is cancelled and run until it ends), then hands the future back:
 * its value, or its error, is what asyncio.run() returns or raises.
 * Nothing is printed.
 *
 * Returns: (transfer full) (nullable): the main future, done; %NULL on
 *   misuse, or when @func returned %NULL or a future of another loop
 *   (reported)
 * Since: 0.3
 */
AFUT_API AfutFuture *afut_run_future (AfutRunFunc func, void *data);

/**
 * AFUT_RUN:
 * @Type: the main task's struct type
 * @func: its step function
 * @...: designated initializers of the struct's fields
 *
 * afut_run() with the struct made from the initializers (C++: see the
 * top of afut.h).  `return AFUT_RUN (Main, amain);` from main().
 */
#define AFUT_RUN(...)                                                         \
  AFUT__CAT (AFUT__RUN_, AFUT__HAS_INIT (__VA_ARGS__)) (__VA_ARGS__)
#define AFUT__RUN_0(Type, func)                                               \
  afut_run ((func), sizeof (Type), AFUT__NO_INIT (Type), #func)
#define AFUT__RUN_1(Type, func, ...)                                          \
  afut_run ((func), sizeof (Type), AFUT__INIT (Type, __VA_ARGS__), #func)

/**
 * AFUT_RUN_TASK:
 * @Type: the main task's struct type
 * @func: its step function
 * @...: designated initializers of the struct's fields
 *
 * C only: afut_run_task() with a compound literal, `result =
 * asyncio.run(main())`: `AfutFuture *main = AFUT_RUN_TASK (Main, amain);`
 * then read main's value or error, and unref it.
 *
 * Returns: (transfer full) (nullable): the main task, done
 * Since: 0.3
 */
#define AFUT_RUN_TASK(...)                                                    \
  AFUT__CAT (AFUT__RUN_TASK_, AFUT__HAS_INIT (__VA_ARGS__)) (__VA_ARGS__)
#define AFUT__RUN_TASK_0(Type, func)                                          \
  afut_run_task ((func), sizeof (Type), AFUT__NO_INIT (Type), #func)
#define AFUT__RUN_TASK_1(Type, func, ...)                                     \
  afut_run_task ((func), sizeof (Type), AFUT__INIT (Type, __VA_ARGS__), #func)

/**
 * afut_run_fiber: (skip)
 * @func: the main fiber's body
 * @user_data: (closure): passed to @func
 * @name: (nullable): the main fiber's name
 *
 * afut_run() with a fiber as the main task: `asyncio.run(main())` where
 * main() is plain C that awaits with afut_await().  The same fresh loop,
 * the same cleanup (the loop is closed, what is left cancelled and run
 * until it ends), the same report of main's error on stderr.
 *
 * Not for bindings (see afut_fiber_new()).
 *
 * Returns: 0 if the main fiber completed with a value (or none); 1 if it
 *   failed or was cancelled, or on misuse
 * Since: 0.3
 */
AFUT_API int afut_run_fiber (AfutFiberFunc func, void *user_data,
                             const char *name);

/**
 * AFUT_RUN_FIBER:
 * @func: the main fiber's body, an #AfutFiberFunc
 * @user_data: passed to @func
 *
 * afut_run_fiber() with the fiber named after @func:
 * `return AFUT_RUN_FIBER (amain, NULL);` from main().
 *
 * Returns: 0 on success, 1 if main failed
 * Since: 0.3
 */
#define AFUT_RUN_FIBER(func, user_data)                                       \
  afut_run_fiber ((func), (user_data), #func)

#ifdef __cplusplus
}

#include <type_traits>

/* AFUT__INIT's C++ side: afut copies a task struct byte for byte, zeroes
 * its AfutTask, casts an AfutTask * back to it, and never runs its
 * destructor. */
template <typename T>
static inline void
afut__cxx_check ()
{
  static_assert (std::is_standard_layout<T>::value,
                 "an afut task struct must be standard layout, its AfutTask "
                 "first");
  static_assert (std::is_trivially_copyable<T>::value,
                 "afut copies a task struct and never runs its destructor: "
                 "it must be trivially copyable");
}

template <typename T>
static inline const T *
afut__cxx_init (const T &init)
{
  afut__cxx_check<T> ();
  return &init;
}

template <typename T>
static inline const T *
afut__cxx_no_init ()
{
  afut__cxx_check<T> ();
  return nullptr;
}
#endif

#endif /* AFUT_H */

/* ======================================================================== */
/* implementation                                                           */
/* ======================================================================== */

/* With AFUT_GLIB, glib-adapter/afut-glib.h emits the implementation, once
 * it has set the error-type hooks. */
#if defined(AFUT_IMPLEMENTATION) && !defined(AFUT__IMPLEMENTED)               \
  && (!defined(AFUT_GLIB) || defined(AFUT_GLIB__HOOKED))
#define AFUT__IMPLEMENTED

#if defined(AFUT_MALLOC) && defined(AFUT_FREE)
/* both given */
#elif !defined(AFUT_MALLOC) && !defined(AFUT_FREE)
#include <stdlib.h>
#define AFUT_MALLOC(size) malloc (size)
#define AFUT_FREE(ptr) free (ptr)
#else
#error "define both AFUT_MALLOC and AFUT_FREE, or neither"
#endif
#ifndef AFUT_REALLOC
#include <stdlib.h>
#define AFUT_REALLOC(ptr, size) realloc ((ptr), (size))
#endif
#ifndef AFUT_ASSERT
#include <assert.h>
#define AFUT_ASSERT(expr) assert (expr)
#endif
#if defined(AFUT_QUARK_FROM_STRING) != defined(AFUT_QUARK_TO_STRING)          \
  || defined(AFUT_QUARK_FROM_STRING) != defined(AFUT_QUARK_FROM_STATIC_STRING)  \
  || defined(AFUT_QUARK_FROM_STRING) != defined(AFUT_ERROR_NEW_LITERAL)       \
  || defined(AFUT_ERROR_NEW_LITERAL) != defined(AFUT_ERROR_COPY)              \
  || defined(AFUT_ERROR_NEW_LITERAL) != defined(AFUT_ERROR_FREE)
#error "the error-type hooks (AFUT_QUARK_*, AFUT_ERROR_*) go together: define all or none"
#endif
/* How deep the thread is in nested main loops (GLib: g_main_depth()):
 * a callback run deeper than a task's step is outside any task. */
#ifndef AFUT_NESTING_DEPTH
#define AFUT_NESTING_DEPTH() 0
#endif
#ifndef AFUT_RUN_LOOP_NEW
#define AFUT_RUN_LOOP_NEW(flags) afut_loop_new (flags)
#endif

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <sys/socket.h>
#ifdef __linux__
#include <sys/eventfd.h>
#endif
#if defined(__linux__) && !defined(AFUT_NO_EPOLL)
#define AFUT__HAVE_EPOLL 1
#include <sys/epoll.h>
#else
#define AFUT__HAVE_EPOLL 0
#endif
#include <sys/mman.h>

/* Fibers switch with afut's own code on x86-64 SysV and AArch64 AAPCS64
 * (ELF), with ucontext elsewhere or when AFUT_FIBER_UCONTEXT is defined. */
#if !defined(AFUT_FIBER_UCONTEXT) && defined(__ELF__)                        \
  && (defined(__x86_64__) || defined(__aarch64__))
#define AFUT__FIBER_ASM 1
#else
#define AFUT__FIBER_ASM 0
#include <ucontext.h>
#endif
/* Strict POSIX hides the name, not the flag. */
#if defined(MAP_ANONYMOUS)
#define AFUT__MAP_ANONYMOUS MAP_ANONYMOUS
#elif defined(MAP_ANON)
#define AFUT__MAP_ANONYMOUS MAP_ANON
#elif defined(__linux__)
#define AFUT__MAP_ANONYMOUS 0x20
#endif
#if defined(__linux__) && !defined(MAP_NORESERVE)
#define MAP_NORESERVE 0x4000
#endif

/* The tools that must hear of every stack switch. */
#if defined(__SANITIZE_ADDRESS__)
#define AFUT__ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define AFUT__ASAN 1
#endif
#endif
#if defined(__SANITIZE_THREAD__)
#define AFUT__TSAN 1
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define AFUT__TSAN 1
#endif
#endif
#if defined(__has_include)
#if __has_include(<valgrind/valgrind.h>)
#include <valgrind/valgrind.h>
#define AFUT__VALGRIND 1
#endif
#endif
#ifndef __GI_SCANNER__
#ifndef MSG_NOSIGNAL
#define MSG_NOSIGNAL 0
#endif
#endif

#ifndef CLOCK_MONOTONIC
#error "afut: include afut.h before any system header in the file that defines AFUT_IMPLEMENTATION, or build with -D_POSIX_C_SOURCE=200809L"
#endif

#ifdef __cplusplus
#define AFUT__THREAD_LOCAL thread_local
#else
#define AFUT__THREAD_LOCAL _Thread_local
#endif

#if defined(__GNUC__) || defined(__clang__)
#define AFUT__LIKELY(x) __builtin_expect (!!(x), 1)
#define AFUT__UNLIKELY(x) __builtin_expect (!!(x), 0)
/* Keeps a hot function small (its cold part out of line), or a loop's
 * body in the loop. */
#define AFUT__NOINLINE __attribute__ ((noinline))
#define AFUT__ALWAYS_INLINE inline __attribute__ ((always_inline))
#else
#define AFUT__LIKELY(x) (x)
#define AFUT__UNLIKELY(x) (x)
#define AFUT__NOINLINE
#define AFUT__ALWAYS_INLINE inline
#endif

#ifdef __cplusplus
extern "C" {
#endif

/* ---- private declarations ---- */

#ifdef AFUT__ASAN
void __sanitizer_start_switch_fiber (void **fake_stack_save,
                                     const void *bottom, size_t size);
void __sanitizer_finish_switch_fiber (void *fake_stack_save,
                                      const void **bottom_old,
                                      size_t *size_old);
void __asan_unpoison_memory_region (void const volatile *addr, size_t size);
#endif
#ifdef AFUT__TSAN
void *__tsan_get_current_fiber (void);
void *__tsan_create_fiber (unsigned flags);
void __tsan_destroy_fiber (void *fiber);
void __tsan_switch_to_fiber (void *fiber, unsigned flags);
#endif

enum
{
  AFUT__KIND_PLAIN,
  AFUT__KIND_TASK,
  AFUT__KIND_GATHER,
  AFUT__KIND_SLEEP,
  AFUT__KIND_YIELD,
  AFUT__KIND_FD,
  AFUT__KIND_CUSTOM,
  AFUT__KIND_SHIELD,
  AFUT__KIND_WAIT_FOR,
  AFUT__KIND_WAIT,
  AFUT__KIND_AS_COMPLETED,
  AFUT__KIND_RACE, /* race and any */
  AFUT__KIND_GROUP /* a task group's exit */
};

/* AfutFuture.flags */
enum
{
  AFUT__FUTURE_ERROR_RETRIEVED = 1 << 0,
  AFUT__FUTURE_GATHER_MARK = 1 << 1, /* transient, while deduplicating */
  AFUT__FUTURE_YIELD_ARMED = 1 << 2,
  AFUT__FUTURE_HANDLE = 1 << 3, /* a SLEEP that runs a callback: call_later */
  /* Freeing it may unref others: a combinator, a task, a custom future,
   * a value with a destroy notify (afut_future_unref's slow path). */
  AFUT__FUTURE_MAY_HOLD = 1 << 4,
  AFUT__FUTURE_POOLED = 1 << 5, /* a slot of its loop's future pool */
  AFUT__FUTURE_IN_HEAP = 1 << 6 /* a SLEEP the timer heap holds */
};

/* AfutTask.task_flags */
enum
{
  AFUT__TASK_STARTED = 1 << 0,
  AFUT__TASK_MUST_CANCEL = 1 << 1,
  AFUT__TASK_WAITING = 1 << 2,   /* a wakeup callback sits on awaiting */
  AFUT__TASK_SCHEDULED = 1 << 3, /* a step is in the ready queue */
  AFUT__TASK_NAME_OWNED = 1 << 4,
  AFUT__TASK_RUNNING = 1 << 5,
  AFUT__TASK_LAZY = 1 << 6, /* a coroutine object not started yet */
  /* Started by an await, as `await coro()`: an inline frame of its
   * awaiter's task (c.root: the awaiter's own root) until it completes. */
  AFUT__TASK_AWAITED_INLINE = 1 << 7,
  AFUT__TASK_UNWINDING = 1 << 8, /* ended inside a task group: waits for it */
  AFUT__TASK_STASHED_ERROR = 1 << 9 /* future.u.error holds that ending */
};

/* How many `await coro()` steps nest on the C stack (afut__task_await);
 * deeper ones run from a loop. */
#define AFUT__INLINE_DEPTH_MAX 16

typedef struct
{
  AfutCallback func;
  void *data;
} AfutReadyEntry;

typedef struct
{
  int64_t when;
  AfutFuture *timer; /* a sleep; its u.timer.seq breaks ties */
} AfutHeapEntry;

typedef struct
{
  AfutFutureCallback func;
  void *data;
} AfutCallbackSlot;

typedef struct
{
  size_t len;   /* slots used, removed ones (func NULL) included */
  size_t cap;
  size_t dead;  /* removed slots among them */
  size_t first; /* no live slot comes before this one */
  /* AfutCallbackSlot slots[cap] follow */
} AfutCallbackArray;

typedef struct
{
  AfutFuture future;
  size_t n_items;
  size_t n_unique;
  size_t n_finished;
  bool return_exceptions;
  bool cancel_requested;
  AfutFuture **items;
} AfutGather;

typedef struct AfutFdFuture AfutFdFuture;
struct AfutFdFuture
{
  AfutFuture future;
  AfutFdWatch watch;
  unsigned revents;
  bool watching;
  AfutFdFuture *prev; /* the loop's list of watching fd futures */
  AfutFdFuture *next;
};

typedef struct
{
  AfutFuture *future;
  AfutFutureCallback func;
  void *data;
} AfutLateCallback;

/* A registration of afut_future_add_done_callback_full(): its slot holds
 * afut__full_callback_run with this record as data. */
typedef struct
{
  AfutFutureCallback func;
  void *data;
  AfutDestroyNotify destroy;
  void *next; /* AfutFullCallback *: a list of those being discarded */
} AfutFullCallback;

struct AfutLoop
{
  int ref_count; /* atomic */
  /* atomic: the loop's thread (afut__thread_id ()), with AFUT__OWNER_IN_RUN
   * set while that thread is inside a run call or a dispatch */
  uintptr_t owner;
  unsigned run_depth; /* run calls of the owner, nested */
  bool acquired;      /* the backend's acquire() holds for this run */
  bool draining_holds; /* shutdown runs on only for afut_loop_hold() */
  /* The current batch's entries not run yet: a nested main loop inside
   * one of them (GLib) runs the rest of the batch, and the batch sees it. */
  size_t batch_left;
  unsigned n_nested;  /* nested dispatches in progress */
  int step_depth;     /* AFUT_NESTING_DEPTH () where tasks step now */
  /* Steps of tasks whose step is on the C stack, reached by a nested
   * dispatch: they run when that step returns. */
  AfutTask **deferred;
  size_t n_deferred;
  size_t deferred_cap;
  uint32_t n_futures;
  unsigned flags;
  bool closed;
  bool running; /* entered: running callbacks, or in a run call */
  bool in_wait; /* a run call waits in the backend, stepped out of running */
  bool closing; /* afut_loop_unref is closing it */
  bool waited;  /* the last iteration waited in the backend */
  const AfutBackend *backend;
  void *backend_data;
  int64_t virtual_now;

  /* ready queue: a ring buffer, capacity a power of two */
  AfutReadyEntry *ready;
  size_t ready_head;
  size_t ready_len;
  size_t ready_cap;

  /* timer heap: min-heap on (when, seq); heap_cancelled of its entries
   * are cancelled sleeps, left in place until they reach the top or a
   * cleanup (afut__heap_tidy) */
  AfutHeapEntry *heap;
  uint32_t heap_len;
  uint32_t heap_cap;
  uint32_t heap_cancelled;
  uint64_t timer_seq;

  /* inbox for call_soon_threadsafe */
  pthread_mutex_t inbox_lock;
  AfutReadyEntry *inbox;
  size_t inbox_len;
  size_t inbox_cap;
  int inbox_pending; /* atomic: set when inbox is non-empty */

  AfutTask **tasks; /* started, pending tasks; unordered (swap-remove) */
  size_t n_tasks;
  size_t tasks_cap;
  size_t n_holds;
  uint32_t task_counter;
  AfutTask *current_task;
  /* `await coro()` nests the coroutine's steps in its awaiter's on the C
   * stack only so deep (afut__task_await); a deeper one waits here for
   * the step loop (afut__task_run_step). */
  unsigned inline_depth;
  AfutTask *inline_pending;
  AfutFdFuture *fd_watches;
  size_t n_fd_watches;

  AfutExceptionHandler exception_handler;
  void *exception_handler_data;
  AfutDestroyNotify exception_handler_destroy; /* the _full call's */

  /* The future pool (afut__future_new_bare): free slots, linked through
   * their first word, and the slabs they are cut from. */
  void *future_free;
  void *future_slabs;
};

static AFUT__THREAD_LOCAL AfutLoop *afut__running_loop;

/* A thread's identity: the address of a thread-local, computed without a
 * call or a syscall (an int's, so the low bit is free). */
static AFUT__THREAD_LOCAL int afut__thread_token;
#define AFUT__OWNER_IN_RUN ((uintptr_t) 1)

static inline uintptr_t
afut__thread_id (void)
{
  return (uintptr_t) &afut__thread_token;
}

static void afut__future_schedule_callbacks (AfutFuture *future);
static bool afut__future_complete_error (AfutFuture *future, AfutError *error);
static bool afut__future_complete_error_from (AfutFuture *future,
                                              AfutError *error,
                                              AfutFuture *group);
static AfutFuture *afut__group_owner (AfutFuture *future);
static inline bool afut__is_group_error (const AfutError *error);
static void afut__task_step (void *data);
static void afut__task_run_step (AfutTask *task, bool resumed);
static AFUT__NOINLINE void afut__task_run_chain (AfutTask *task);
static void afut__task_defer_step (AfutTask *task);
static void afut__task_replay_deferred (AfutTask *task);
static void afut__task_wakeup (AfutFuture *future, void *data);
static void afut__task_continue (AfutTask *task, AfutFuture *future,
                                 bool resumed);
static void afut__task_deliver_cancel (AfutTask *task, AfutFuture *future);
static bool afut__group_absorbs_cancel (AfutFuture *awaited);

/* An inline frame: a coroutine that `await coro()` runs inside its
 * awaiter's task, while it has not completed.  asyncio has no task for it
 * (its Task steps the whole chain of coroutines), so a frame has no
 * cancel state of its own: requests, the pending cancel and its message
 * are its root task's, and a cancel is delivered where the chain waits. */
static inline bool
afut__task_is_frame (const AfutTask *task)
{
  return (task->task_flags & AFUT__TASK_AWAITED_INLINE) && task->c.root != NULL;
}

/* The task that @task's steps run as part of: itself, or an inline
 * frame's root, kept in the frame (a chain of 10^6 frames has one root,
 * and finding it must not cost 10^6 steps). */
static inline AfutTask *
afut__task_root (AfutTask *task)
{
  return afut__task_is_frame (task) ? task->c.root : task;
}

/* Whether @future, which @task awaits, is an inline frame run by that
 * await: a frame of @task's own root.  (The chain of frames is a line:
 * the only pending frame of that root a task awaits is the one its await
 * started.) */
static inline bool
afut__is_frame_of (const AfutFuture *future, AfutTask *task)
{
  return future != NULL && future->kind == AFUT__KIND_TASK
         && afut__task_is_frame ((const AfutTask *) future)
         && ((const AfutTask *) future)->c.root == afut__task_root (task);
}
static void afut__task_schedule_step (AfutTask *task);
static bool afut__cancel_chain (AfutFuture *future, const char *message);
static bool afut__cancel_leaf (AfutFuture *future, const char *message);
static void afut__task_finish (AfutTask *task, AfutError *error,
                               AfutFuture *group);
static void afut__task_throw_from (AfutTask *task, AfutError *error,
                                   AfutFuture *group);

static inline bool
afut__is_group_error (const AfutError *error)
{
  return error != NULL && error->domain == AFUT_ERROR
         && error->code == AFUT_ERROR_GROUP;
}

/* A pending task keeps, where a failed future keeps the owner of its
 * group error's sub-errors (u.failure.group), the owner of its caught
 * error's: AFUT_RERAISE hands them on.  Not while the task holds a
 * returned pointer, whose destroy notify is there. */
static AfutFuture *
afut__task_take_caught_group (AfutTask *task)
{
  AfutFuture *group = NULL;
  if (task->future.state == AFUT_FUTURE_PENDING
      && task->future.value_type != AFUT_VALUE_POINTER)
    {
      group = task->future.u.failure.group;
      task->future.u.failure.group = NULL;
    }
  return group;
}
static void afut__yield_arm (AfutFuture *future);
static bool afut__combinator_cancel (AfutFuture *future, const char *message);
static void afut__combinator_finalize (AfutFuture *future);
static void afut__task_resume_unwind (AfutTask *task);
static void afut__loop_close (AfutLoop *loop);
static void afut__loop_free_memory (AfutLoop *loop);
static void afut__loop_drop_exception_handler (AfutLoop *loop);
static const char *afut__task_name (AfutTask *task);
static void afut__fd_stop_watch (AfutFdFuture *fdf);
static void afut__fiber_step (AfutTask *task);
static void afut__fiber_pool_trim (void);

/* ---- logging ---- */

static AfutLogFunc afut__log_func;
static void *afut__log_data;

#ifndef AFUT_LOG_DEFAULT
static void
afut__default_log (AfutLogLevel level, const char *message, void *data)
{
  static int fatal = -1;
  (void) data;
  if (level == AFUT_LOG_ERROR)
    fprintf (stderr, "afut: %s\n", message);
  else
    fprintf (stderr, "afut-%s **: %s\n",
             level == AFUT_LOG_CRITICAL ? "CRITICAL" : "WARNING", message);
  fflush (stderr);
  if (fatal < 0)
    {
      const char *env = getenv ("AFUT_DEBUG");
      fatal = env != NULL && strstr (env, "fatal-criticals") != NULL;
    }
  if (fatal && level == AFUT_LOG_CRITICAL)
    abort ();
}
#endif

void
afut_set_log_func (AfutLogFunc func, void *data)
{
  afut__log_func = func;
  afut__log_data = data;
}

static void afut__log (AfutLogLevel level, const char *format, ...)
  AFUT__PRINTF (2, 3);

static void *afut__alloc (size_t size);

static void
afut__log (AfutLogLevel level, const char *format, ...)
{
  char buf[512], *text = buf;
  va_list args;
  int len;
  va_start (args, format);
  len = vsnprintf (buf, sizeof buf, format, args);
  va_end (args);
  /* A group error's message lists every sub-error: not cut short. */
  if (len >= (int) sizeof buf)
    {
      text = (char *) afut__alloc ((size_t) len + 1);
      va_start (args, format);
      vsnprintf (text, (size_t) len + 1, format, args);
      va_end (args);
    }
  if (afut__log_func != NULL)
    afut__log_func (level, text, afut__log_data);
  else
    {
#ifdef AFUT_LOG_DEFAULT
      AFUT_LOG_DEFAULT (level, text);
#else
      afut__default_log (level, text, NULL);
#endif
    }
  if (text != buf)
    AFUT_FREE (text);
}

#define AFUT__RETURN_IF_FAIL(expr)                                            \
  AFUT__CHECK_OR_RETURN (__func__, expr, #expr, )

/* The _IN form is for private helpers shared by several public
 * functions: the critical names the public one the user called.  Both
 * stringify the expression here, before any macro in it expands. */
#define AFUT__CHECK_OR_RETURN(func, expr, text, val)                          \
  do                                                                          \
    {                                                                         \
      if (AFUT__UNLIKELY (!(expr)))                                           \
        {                                                                     \
          afut__log (AFUT_LOG_CRITICAL, "%s: assertion '%s' failed", (func),  \
                     text);                                                   \
          return val;                                                         \
        }                                                                     \
    }                                                                         \
  while (0)
#define AFUT__RETURN_VAL_IF_FAIL_IN(func, expr, val)                          \
  AFUT__CHECK_OR_RETURN (func, expr, #expr, (val))
#define AFUT__RETURN_IF_FAIL_IN(func, expr)                                   \
  AFUT__CHECK_OR_RETURN (func, expr, #expr, )
#define AFUT__RETURN_VAL_IF_FAIL(expr, val)                                   \
  AFUT__CHECK_OR_RETURN (__func__, expr, #expr, (val))

/* ---- the loop's thread ---- */

static inline bool
afut__on_loop_thread (AfutLoop *loop)
{
  return (__atomic_load_n (&loop->owner, __ATOMIC_RELAXED)
          & ~AFUT__OWNER_IN_RUN)
         == afut__thread_id ();
}

/* Off the hot path: false, with a critical naming @func and what to call
 * instead, unless the loop is closed (then nobody runs it any more, and
 * its leftovers may go from any thread). */
static bool
afut__wrong_thread (AfutLoop *loop, const char *func, const char *instead)
{
  if (__atomic_load_n (&loop->closed, __ATOMIC_ACQUIRE))
    return true;
  if (instead != NULL)
    afut__log (AFUT_LOG_CRITICAL,
               "%s: called from a thread that is not the loop's; use %s "
               "instead",
               func, instead);
  else
    afut__log (AFUT_LOG_CRITICAL,
               "%s: called from a thread that is not the loop's; call it on "
               "the loop's thread (afut_loop_call_soon_threadsafe() gets "
               "there)",
               func);
  return false;
}

/* The first line of every loop-only entry point, after its NULL checks:
 * returns @val, reporting, when called from another thread than @loop's.
 * @instead: the call to use there (a _threadsafe one), or NULL.  On the
 * right thread it costs a load and a compare. */
#define AFUT__RETURN_IF_WRONG_THREAD(loop, instead, val)                      \
  AFUT__RETURN_IF_WRONG_THREAD_IN (__func__, loop, instead, val)
/* The _IN form names @func, the public function a private helper serves. */
#define AFUT__RETURN_IF_WRONG_THREAD_IN(func, loop, instead, val)             \
  do                                                                          \
    {                                                                         \
      if (AFUT__UNLIKELY (!afut__on_loop_thread (loop))                       \
          && !afut__wrong_thread ((loop), (func), (instead)))                 \
        return val;                                                           \
    }                                                                         \
  while (0)

/* ---- memory ---- */

static void *
afut__alloc (size_t size)
{
  void *p = AFUT_MALLOC (size);
  if (AFUT__UNLIKELY (p == NULL))
    {
      fprintf (stderr, "afut: failed to allocate %zu bytes\n", size);
      abort ();
    }
  return p;
}

static void *
afut__realloc (void *ptr, size_t size)
{
  void *p = AFUT_REALLOC (ptr, size);
  if (AFUT__UNLIKELY (p == NULL))
    {
      fprintf (stderr, "afut: failed to allocate %zu bytes\n", size);
      abort ();
    }
  return p;
}

static char *
afut__strdup (const char *s)
{
  size_t n = strlen (s) + 1;
  char *copy = (char *) afut__alloc (n);
  memcpy (copy, s, n);
  return copy;
}

/* ---- quarks ---- */

#ifndef AFUT_QUARK_FROM_STRING
typedef struct
{
  const char *string;
  bool owned;
} AfutQuarkEntry;

static pthread_mutex_t afut__quark_lock = PTHREAD_MUTEX_INITIALIZER;
static AfutQuarkEntry *afut__quarks;
static uint32_t afut__n_quarks;
static uint32_t afut__quarks_cap;

static AfutQuark
afut__quark_intern (const char *string, bool copy)
{
  AfutQuark q = 0;
  uint32_t i;
  if (string == NULL)
    return 0;
  pthread_mutex_lock (&afut__quark_lock);
  /* Domains are few: a linear scan is fine. */
  for (i = 0; i < afut__n_quarks; i++)
    if (strcmp (afut__quarks[i].string, string) == 0)
      {
        q = i + 1;
        break;
      }
  if (q == 0)
    {
      if (afut__n_quarks == afut__quarks_cap)
        {
          afut__quarks_cap = afut__quarks_cap ? afut__quarks_cap * 2 : 16;
          afut__quarks = (AfutQuarkEntry *) afut__realloc (
            afut__quarks, afut__quarks_cap * sizeof (AfutQuarkEntry));
        }
      afut__quarks[afut__n_quarks].string
        = copy ? afut__strdup (string) : string;
      afut__quarks[afut__n_quarks].owned = copy;
      q = ++afut__n_quarks;
    }
  pthread_mutex_unlock (&afut__quark_lock);
  return q;
}

#define AFUT_QUARK_FROM_STRING(s) afut__quark_intern ((s), true)
#define AFUT_QUARK_FROM_STATIC_STRING(s) afut__quark_intern ((s), false)
#define AFUT_QUARK_TO_STRING(q) afut__quark_lookup (q)

static const char *
afut__quark_lookup (AfutQuark quark)
{
  const char *s = NULL;
  pthread_mutex_lock (&afut__quark_lock);
  if (quark > 0 && quark <= afut__n_quarks)
    s = afut__quarks[quark - 1].string;
  pthread_mutex_unlock (&afut__quark_lock);
  return s;
}
#endif /* !AFUT_QUARK_FROM_STRING */

AfutQuark
afut_quark_from_string (const char *string)
{
  return string != NULL ? AFUT_QUARK_FROM_STRING (string) : 0;
}

AfutQuark
afut_quark_from_static_string (const char *string)
{
  return string != NULL ? AFUT_QUARK_FROM_STATIC_STRING (string) : 0;
}

const char *
afut_quark_to_string (AfutQuark quark)
{
  return quark != 0 ? AFUT_QUARK_TO_STRING (quark) : NULL;
}

AfutQuark
afut_errno_error_quark (void)
{
  static AfutQuark q; /* atomic: written once, same value by any racer */
  AfutQuark v = __atomic_load_n (&q, __ATOMIC_ACQUIRE);
  if (AFUT__UNLIKELY (v == 0))
    {
      v = afut_quark_from_static_string ("afut-errno-quark");
      __atomic_store_n (&q, v, __ATOMIC_RELEASE);
    }
  return v;
}

AfutQuark
afut_error_quark (void)
{
  static AfutQuark q; /* atomic: written once, same value by any racer */
  AfutQuark v = __atomic_load_n (&q, __ATOMIC_ACQUIRE);
  if (AFUT__UNLIKELY (v == 0))
    {
      v = afut_quark_from_static_string ("afut-error-quark");
      __atomic_store_n (&q, v, __ATOMIC_RELEASE);
    }
  return v;
}

/* ---- errors ---- */

#ifndef AFUT_ERROR_NEW_LITERAL
static AfutError *
afut__error_new_literal (AfutQuark domain, int code, const char *message)
{
  AfutError *e = (AfutError *) afut__alloc (sizeof (AfutError));
  e->domain = domain;
  e->code = code;
  e->message = afut__strdup (message);
  return e;
}

static void
afut__error_free (AfutError *error)
{
  AFUT_FREE (error->message);
  AFUT_FREE (error);
}

#define AFUT_ERROR_NEW_LITERAL(domain, code, message)                         \
  afut__error_new_literal ((domain), (code), (message))
#define AFUT_ERROR_COPY(error)                                                \
  afut__error_new_literal ((error)->domain, (error)->code, (error)->message)
#define AFUT_ERROR_FREE(error) afut__error_free (error)
#endif /* !AFUT_ERROR_NEW_LITERAL */

AfutError *
afut_error_new_literal (AfutQuark domain, int code, const char *message)
{
  AFUT__RETURN_VAL_IF_FAIL (domain != 0, NULL);
  AFUT__RETURN_VAL_IF_FAIL (message != NULL, NULL);
  return AFUT_ERROR_NEW_LITERAL (domain, code, message);
}

AfutError *
afut_error_new (AfutQuark domain, int code, const char *format, ...)
{
  va_list args;
  int n;
  char *message;
  AFUT__RETURN_VAL_IF_FAIL (domain != 0, NULL);
  AFUT__RETURN_VAL_IF_FAIL (format != NULL, NULL);
  va_start (args, format);
  n = vsnprintf (NULL, 0, format, args);
  va_end (args);
  if (n < 0)
    n = 0;
  message = (char *) afut__alloc ((size_t) n + 1);
  va_start (args, format);
  vsnprintf (message, (size_t) n + 1, format, args);
  va_end (args);
  {
    AfutError *e = AFUT_ERROR_NEW_LITERAL (domain, code, message);
    AFUT_FREE (message);
    return e;
  }
}

AfutError *
afut_error_copy (const AfutError *error)
{
  AFUT__RETURN_VAL_IF_FAIL (error != NULL, NULL);
  return AFUT_ERROR_COPY (error);
}

void
afut_error_free (AfutError *error)
{
  if (error == NULL)
    return;
  AFUT_ERROR_FREE (error);
}

bool
afut_error_matches (const AfutError *error, AfutQuark domain, int code)
{
  return error != NULL && error->domain == domain && error->code == code;
}

bool
afut_error_is_cancelled (const AfutError *error)
{
  return afut_error_matches (error, AFUT_ERROR, AFUT_ERROR_CANCELLED);
}

const char *
afut_error_code_to_string (int code)
{
  switch (code)
    {
#define AFUT__ERROR_CASE(name, nick, text)                                    \
  case AFUT_ERROR_##name:                                                     \
    return nick;
      AFUT_ERROR_CODES (AFUT__ERROR_CASE)
#undef AFUT__ERROR_CASE
    default:
      return "unknown";
    }
}

static AfutError *
afut__cancelled_error (const char *message)
{
  return afut_error_new_literal (AFUT_ERROR, AFUT_ERROR_CANCELLED,
                                 message != NULL ? message : "");
}

/* poll()'s POLLNVAL, GLib's G_IO_NVAL: the fd is not open. */
#define AFUT__IO_NVAL 0x020u

/* ---- fd set: epoll (Linux) ---- */

/* The embedded loop and the GLib adapter keep afut's fds in one epoll
 * set, so that the cost of an event does not grow with the number of
 * idle fds.  afut's watches are one-shot and the application owns its
 * fds, closes them and gets their numbers back for new files, which
 * epoll is not made for; the rules below make that safe:
 *
 * - Lazy removal.  A watch that ends leaves its fd in the kernel: the
 *   fd awaited again (a read loop, a ping-pong) costs no syscall.  An
 *   event for an fd nobody waits on any more takes it out then
 *   (EPOLL_CTL_DEL, or MOD to what is still wanted).
 * - Trust for one batch.  The kernel's state of an fd is taken as known
 *   only within the batch in which it was last confirmed (by an event, or
 *   by an epoll_ctl): a new watch after that re-adds the fd
 *   (EPOLL_CTL_ADD: EEXIST says the same open file is still registered),
 *   so an fd closed in between, and a new file that got its number, is
 *   seen.  The one window left: in the same batch, a watch ends on an fd,
 *   the application closes it, a new file gets the number and is awaited
 *   for a subset of the same events.  An event with HUP, ERR or RDHUP
 *   (the peer is gone, the fd is likely to be closed next) is not
 *   trusted, which closes that window for the usual close-at-EOF.
 * - Generations.  epoll_event.data carries the fd number and a
 *   generation bumped at every successful ADD.  An event of an older
 *   generation comes from a file that was closed under afut's feet but
 *   lives on elsewhere (dup, fork): epoll keeps reporting it and no
 *   epoll_ctl can reach it any more, so the set is rebuilt.
 * - Files epoll refuses (EPERM: regular files, /dev/null) are always
 *   ready, as poll() says, reported without the kernel at the next wait.
 *   An fd that is not open fails its watch at once (EBADF); one found
 *   closed later (when a set is rebuilt or an fd confirmed) is reported
 *   as poll() reports it (POLLNVAL).
 * - fork: the child shares the parent's epoll set.  A loop does not
 *   survive fork(); the child makes its own. */

#if AFUT__HAVE_EPOLL

#define AFUT__EPOLL_WAKE UINT64_MAX

enum
{
  AFUT__EP_NONE,   /* not in the kernel */
  AFUT__EP_KERNEL, /* in the kernel, with events `kernel` */
  AFUT__EP_ALWAYS, /* epoll refused it (EPERM): always ready */
  AFUT__EP_BAD     /* not an open fd (EBADF) */
};

typedef struct
{
  AfutFdWatch **watches; /* waiting on this fd; watch->backend_data: index */
  uint32_t n_watches;
  uint32_t watches_cap;
  uint32_t n_in;   /* how many of them want AFUT_IO_IN */
  uint32_t n_out;  /* ... AFUT_IO_OUT */
  uint32_t gen;    /* of the last successful EPOLL_CTL_ADD */
  uint32_t kernel; /* epoll events the kernel has, in state KERNEL */
  uint64_t verified; /* the batch (epoch) in which the state was last known */
  uint8_t state;
  bool pending;     /* on the set's list of fds reported without the kernel */
  bool unconfirmed; /* watched on trust, no event since */
  bool listed;      /* on the set's list of those */
} AfutEpollFd;

typedef struct
{
  int epfd;
  int wake_fd; /* registered with data AFUT__EPOLL_WAKE; -1: none */
  AfutEpollFd *fds; /* indexed by fd number */
  size_t fds_cap;
  int *pending; /* fds in state ALWAYS or BAD with watches */
  size_t n_pending;
  size_t pending_cap;
  struct epoll_event *events;
  int events_cap;
  AfutFdWatch **fired; /* scratch: the watches one event completes */
  unsigned *fired_revents;
  size_t fired_cap;
  size_t n_kernel; /* fds in state KERNEL */
  uint64_t epoch; /* bumped at each wait: one batch */
  bool stale;     /* an event came from an fd the set lost track of */
  int *trusted;   /* fds watched on trust: confirmed by syscall after a while */
  size_t n_trusted;
  size_t trusted_cap;
  int64_t trusted_since; /* monotonic ns: the first of them */
} AfutEpollSet;

static uint32_t
afut__epoll_events_for (uint32_t n_in, uint32_t n_out)
{
  return (n_in > 0 ? (uint32_t) (EPOLLIN | EPOLLRDHUP) : 0u)
         | (n_out > 0 ? (uint32_t) EPOLLOUT : 0u);
}

static void
afut__epoll_set_state (AfutEpollSet *set, AfutEpollFd *r, uint8_t state)
{
  if (r->state == AFUT__EP_KERNEL)
    set->n_kernel--;
  if (state == AFUT__EP_KERNEL)
    set->n_kernel++;
  r->state = state;
}

static bool
afut__epoll_ctl (AfutEpollSet *set, int op, int fd, uint32_t gen,
                 uint32_t events)
{
  struct epoll_event ev;
  memset (&ev, 0, sizeof ev);
  ev.events = events;
  ev.data.u64 = (uint64_t) (uint32_t) fd | ((uint64_t) gen << 32);
  return epoll_ctl (set->epfd, op, fd, &ev) == 0;
}

/* How long an fd watched on trust may go without an event before a
 * syscall confirms that the kernel has it (see "Trust for one batch"). */
#define AFUT__EPOLL_CONFIRM_NS ((int64_t) 50000000)

static int64_t afut__monotonic_ns (void *data);

static void
afut__epoll_trust (AfutEpollSet *set, int fd, AfutEpollFd *r)
{
  r->unconfirmed = true;
  if (r->listed)
    return;
  if (set->n_trusted == set->trusted_cap)
    {
      set->trusted_cap = set->trusted_cap ? set->trusted_cap * 2 : 8;
      set->trusted = (int *) afut__realloc (set->trusted,
                                            set->trusted_cap * sizeof (int));
    }
  if (set->n_trusted == 0)
    set->trusted_since = afut__monotonic_ns (NULL);
  set->trusted[set->n_trusted++] = fd;
  r->listed = true;
}

/* Makes the kernel hold @events for @fd, or finds it cannot: state
 * KERNEL, ALWAYS or BAD.  False (errno set) on another failure. */
static bool
afut__epoll_arm (AfutEpollSet *set, int fd, AfutEpollFd *r, uint32_t events)
{
  if (r->verified == set->epoch && r->state != AFUT__EP_NONE)
    {
      /* Known in this batch. */
      if (r->state != AFUT__EP_KERNEL)
        return true;
      if ((events & ~r->kernel) == 0)
        {
          /* An fd nobody waited on since its last event is where a
           * close and a new file with its number can hide. */
          if (r->n_watches == 0)
            afut__epoll_trust (set, fd, r);
          return true;
        }
      if (afut__epoll_ctl (set, EPOLL_CTL_MOD, fd, r->gen, events))
        {
          r->kernel = events;
          return true;
        }
      if (errno != ENOENT && errno != EBADF)
        return false;
      /* Gone after all: added below. */
    }
  if (afut__epoll_ctl (set, EPOLL_CTL_ADD, fd, r->gen + 1, events))
    {
      r->gen++;
      afut__epoll_set_state (set, r, AFUT__EP_KERNEL);
      r->kernel = events;
    }
  else if (errno == EEXIST)
    {
      /* The same open file is registered: ours, unless the set lost
       * track of it, and then its events and data are rewritten. */
      if ((r->state != AFUT__EP_KERNEL || r->kernel != events)
          && !afut__epoll_ctl (set, EPOLL_CTL_MOD, fd, r->gen, events))
        return false;
      afut__epoll_set_state (set, r, AFUT__EP_KERNEL);
      r->kernel = events;
    }
  else if (errno == EPERM)
    afut__epoll_set_state (set, r, AFUT__EP_ALWAYS);
  else if (errno == EBADF)
    afut__epoll_set_state (set, r, AFUT__EP_BAD);
  else
    return false;
  r->verified = set->epoch;
  return true;
}

static bool
afut__epoll_set_init (AfutEpollSet *set, int wake_fd)
{
  memset (set, 0, sizeof *set);
  set->epfd = epoll_create1 (EPOLL_CLOEXEC);
  set->wake_fd = wake_fd;
  set->epoch = 1;
  if (set->epfd < 0)
    return false;
  if (wake_fd >= 0)
    {
      struct epoll_event ev;
      memset (&ev, 0, sizeof ev);
      ev.events = EPOLLIN;
      ev.data.u64 = AFUT__EPOLL_WAKE;
      if (epoll_ctl (set->epfd, EPOLL_CTL_ADD, wake_fd, &ev) < 0)
        {
          int errsv = errno;
          close (set->epfd);
          set->epfd = -1;
          errno = errsv;
          return false;
        }
    }
  set->events_cap = 64;
  set->events = (struct epoll_event *) afut__alloc (
    (size_t) set->events_cap * sizeof (struct epoll_event));
  return true;
}

static void
afut__epoll_set_clear (AfutEpollSet *set)
{
  size_t i;
  if (set->epfd >= 0)
    close (set->epfd);
  for (i = 0; i < set->fds_cap; i++)
    AFUT_FREE (set->fds[i].watches);
  AFUT_FREE (set->fds);
  AFUT_FREE (set->pending);
  AFUT_FREE (set->trusted);
  AFUT_FREE (set->events);
  AFUT_FREE (set->fired);
  AFUT_FREE (set->fired_revents);
  memset (set, 0, sizeof *set);
  set->epfd = -1;
}

static void
afut__epoll_mark_pending (AfutEpollSet *set, int fd, AfutEpollFd *r)
{
  if (r->pending)
    return;
  if (set->n_pending == set->pending_cap)
    {
      set->pending_cap = set->pending_cap ? set->pending_cap * 2 : 8;
      set->pending = (int *) afut__realloc (set->pending,
                                            set->pending_cap * sizeof (int));
    }
  set->pending[set->n_pending++] = fd;
  r->pending = true;
}

static bool
afut__epoll_watch (AfutEpollSet *set, AfutFdWatch *watch)
{
  int fd = watch->fd;
  AfutEpollFd *r;
  uint32_t n_in, n_out;

  if ((size_t) fd >= set->fds_cap)
    {
      size_t cap = set->fds_cap ? set->fds_cap : 64;
      while (cap <= (size_t) fd)
        cap *= 2;
      set->fds = (AfutEpollFd *) afut__realloc (set->fds,
                                                cap * sizeof (AfutEpollFd));
      memset (set->fds + set->fds_cap, 0,
              (cap - set->fds_cap) * sizeof (AfutEpollFd));
      set->fds_cap = cap;
    }
  r = &set->fds[fd];
  n_in = r->n_in + ((watch->events & AFUT_IO_IN) != 0);
  n_out = r->n_out + ((watch->events & AFUT_IO_OUT) != 0);
  if (!afut__epoll_arm (set, fd, r, afut__epoll_events_for (n_in, n_out)))
    return false;
  if (r->state == AFUT__EP_BAD)
    {
      /* Not open: afut_loop_fd_wait() fails it at once. */
      errno = EBADF;
      return false;
    }
  if (r->n_watches == r->watches_cap)
    {
      r->watches_cap = r->watches_cap ? r->watches_cap * 2 : 2;
      r->watches = (AfutFdWatch **) afut__realloc (
        r->watches, r->watches_cap * sizeof (AfutFdWatch *));
    }
  watch->backend_data = (void *) (uintptr_t) r->n_watches;
  r->watches[r->n_watches++] = watch;
  r->n_in = n_in;
  r->n_out = n_out;
  if (r->state == AFUT__EP_ALWAYS || r->state == AFUT__EP_BAD)
    afut__epoll_mark_pending (set, fd, r);
  return true;
}

static void
afut__epoll_unwatch (AfutEpollSet *set, AfutFdWatch *watch)
{
  AfutEpollFd *r = &set->fds[watch->fd];
  size_t i = (size_t) (uintptr_t) watch->backend_data;
  AFUT_ASSERT (i < r->n_watches && r->watches[i] == watch);
  r->watches[i] = r->watches[--r->n_watches];
  r->watches[i]->backend_data = (void *) (uintptr_t) i;
  r->n_in -= (watch->events & AFUT_IO_IN) != 0;
  r->n_out -= (watch->events & AFUT_IO_OUT) != 0;
  watch->backend_data = NULL;
  /* The kernel keeps it: see "Lazy removal" above. */
}

static void
afut__epoll_fired_reserve (AfutEpollSet *set, size_t n)
{
  if (n <= set->fired_cap)
    return;
  while (set->fired_cap < n)
    set->fired_cap = set->fired_cap ? set->fired_cap * 2 : 16;
  set->fired = (AfutFdWatch **) afut__realloc (
    set->fired, set->fired_cap * sizeof (AfutFdWatch *));
  set->fired_revents = (unsigned *) afut__realloc (
    set->fired_revents, set->fired_cap * sizeof (unsigned));
}

/* Reports the watches of @r that @revents (afut's bits) completes.
 * afut_loop_fd_ready() unwatches, which reorders r->watches: collect
 * first.  Nothing in between runs user code. */
static void
afut__epoll_report (AfutEpollSet *set, AfutLoop *loop, AfutEpollFd *r,
                    unsigned revents, bool as_requested)
{
  size_t i, n = 0;
  afut__epoll_fired_reserve (set, r->n_watches);
  for (i = 0; i < r->n_watches; i++)
    {
      AfutFdWatch *w = r->watches[i];
      unsigned hit
        = as_requested ? w->events
                       : revents & (w->events | AFUT_IO_ERR | AFUT_IO_HUP
                                    | AFUT__IO_NVAL);
      if (hit == 0)
        continue;
      set->fired[n] = w;
      set->fired_revents[n++] = hit;
    }
  for (i = 0; i < n; i++)
    afut_loop_fd_ready (loop, set->fired[i], set->fired_revents[i]);
}

/* A fresh kernel set with the fds that have watches: the old one has an
 * entry the set lost track of, that nothing but closing it removes. */
static void
afut__epoll_rebuild (AfutEpollSet *set)
{
  int epfd = epoll_create1 (EPOLL_CLOEXEC);
  size_t fd;
  if (epfd < 0)
    return; /* the old one stays; a lost entry is only spurious wakeups */
  if (set->wake_fd >= 0)
    {
      struct epoll_event ev;
      memset (&ev, 0, sizeof ev);
      ev.events = EPOLLIN;
      ev.data.u64 = AFUT__EPOLL_WAKE;
      if (epoll_ctl (epfd, EPOLL_CTL_ADD, set->wake_fd, &ev) < 0)
        {
          close (epfd);
          return;
        }
    }
  close (set->epfd);
  set->epfd = epfd;
  set->stale = false;
  set->epoch++;
  for (fd = 0; fd < set->fds_cap; fd++)
    {
      AfutEpollFd *r = &set->fds[fd];
      if (r->state == AFUT__EP_KERNEL)
        afut__epoll_set_state (set, r, AFUT__EP_NONE);
      if (r->n_watches > 0
          && !afut__epoll_arm (set, (int) fd, r,
                               afut__epoll_events_for (r->n_in, r->n_out)))
        {
          /* Cannot watch it any more (ENOMEM, ENOSPC): an error. */
          afut__epoll_set_state (set, r, AFUT__EP_BAD);
          r->verified = set->epoch;
        }
      if (r->n_watches > 0
          && (r->state == AFUT__EP_ALWAYS || r->state == AFUT__EP_BAD))
        afut__epoll_mark_pending (set, (int) fd, r);
    }
}

static bool
afut__epoll_confirm_due (AfutEpollSet *set)
{
  return set->n_trusted > 0
         && afut__monotonic_ns (NULL) - set->trusted_since
              >= AFUT__EPOLL_CONFIRM_NS;
}

/* The fds watched on trust that had no event since: an epoll_ctl says
 * whether the kernel still has them (EEXIST), or adds them (an fd
 * closed, and its number taken by a new file, in the batch its last
 * watch ended: the new file is polled from here on). */
static void
afut__epoll_confirm (AfutEpollSet *set)
{
  size_t k;
  for (k = 0; k < set->n_trusted; k++)
    {
      int fd = set->trusted[k];
      AfutEpollFd *r = &set->fds[fd];
      r->listed = false;
      if (!r->unconfirmed)
        continue;
      r->unconfirmed = false;
      if (r->n_watches == 0 || r->state != AFUT__EP_KERNEL)
        continue;
      r->verified = 0;
      if (!afut__epoll_arm (set, fd, r,
                            afut__epoll_events_for (r->n_in, r->n_out)))
        {
          afut__epoll_set_state (set, r, AFUT__EP_BAD);
          r->verified = set->epoch;
        }
      if (r->state == AFUT__EP_ALWAYS || r->state == AFUT__EP_BAD)
        afut__epoll_mark_pending (set, fd, r);
    }
  set->n_trusted = 0;
}

/* Turns @n events of epoll_wait() into afut_loop_fd_ready() calls, then
 * reports the fds that bypass the kernel.  Starts a new batch. */
static void
afut__epoll_process (AfutEpollSet *set, AfutLoop *loop, int n,
                     bool *woken)
{
  int i;
  size_t k, n_pending;
  set->epoch++;
  for (i = 0; i < n; i++)
    {
      uint64_t data = set->events[i].data.u64;
      uint32_t got = set->events[i].events;
      int fd;
      AfutEpollFd *r;
      uint32_t wanted;
      if (data == AFUT__EPOLL_WAKE)
        {
          *woken = true;
          continue;
        }
      fd = (int) (uint32_t) data;
      r = (size_t) fd < set->fds_cap ? &set->fds[fd] : NULL;
      if (r == NULL || r->state != AFUT__EP_KERNEL
          || r->gen != (uint32_t) (data >> 32))
        {
          set->stale = true;
          continue;
        }
      /* See "Trust for one batch" above. */
      r->unconfirmed = false;
      r->verified
        = (got & (EPOLLHUP | EPOLLERR | EPOLLRDHUP)) ? 0 : set->epoch;
      wanted = afut__epoll_events_for (r->n_in, r->n_out);
      if (wanted == 0)
        {
          /* Nobody waits: lazy removal ends here. */
          if (epoll_ctl (set->epfd, EPOLL_CTL_DEL, fd, NULL) < 0)
            set->stale = true; /* not reachable by its number any more */
          afut__epoll_set_state (set, r, AFUT__EP_NONE);
          r->kernel = 0;
          r->verified = 0;
          continue;
        }
      if ((got & (EPOLLIN | EPOLLOUT) & ~wanted) != 0)
        {
          if (afut__epoll_ctl (set, EPOLL_CTL_MOD, fd, r->gen, wanted))
            r->kernel = wanted;
          else
            set->stale = true;
        }
      /* A read side shut down reads as end of file: readable, as poll()
       * reports it. */
      if (got & EPOLLRDHUP)
        got |= EPOLLIN;
      afut__epoll_report (set, loop, r,
                          got
                            & (unsigned) (AFUT_IO_IN | AFUT_IO_OUT
                                          | AFUT_IO_ERR | AFUT_IO_HUP),
                          false);
    }
  if (afut__epoll_confirm_due (set))
    afut__epoll_confirm (set);
  if (set->stale)
    afut__epoll_rebuild (set);
  /* The fds epoll does not take (reporting runs no user code: the list
   * does not change meanwhile). */
  n_pending = set->n_pending;
  for (k = 0; k < n_pending; k++)
    {
      AfutEpollFd *r = &set->fds[set->pending[k]];
      r->pending = false;
      if (r->n_watches == 0)
        continue;
      if (r->state == AFUT__EP_ALWAYS)
        afut__epoll_report (set, loop, r, 0, true);
      else if (r->state == AFUT__EP_BAD)
        afut__epoll_report (set, loop, r, AFUT__IO_NVAL, false);
    }
  if (n_pending > 0)
    {
      memmove (set->pending, set->pending + n_pending,
               (set->n_pending - n_pending) * sizeof (int));
      set->n_pending -= n_pending;
    }
}

/* @timeout_ms (-1: none), shortened for what the set must do itself:
 * report fds without the kernel, confirm fds watched on trust. */
static int
afut__epoll_timeout (AfutEpollSet *set, int timeout_ms)
{
  if (set->n_pending > 0)
    return 0;
  if (set->n_trusted > 0)
    {
      int64_t left = set->trusted_since + AFUT__EPOLL_CONFIRM_NS
                     - afut__monotonic_ns (NULL);
      int ms = left <= 0 ? 0 : (int) ((left + 999999) / 1000000);
      if (timeout_ms < 0 || ms < timeout_ms)
        return ms;
    }
  return timeout_ms;
}

/* epoll_wait() on the set, @timeout_ms as poll() takes it. */
static int
afut__epoll_wait (AfutEpollSet *set, int timeout_ms)
{
  int n;
  /* Room for every fd in the kernel: all that are ready are reported in
   * one batch, as poll() (and asyncio) does. */
  if (set->n_kernel + 1 > (size_t) set->events_cap)
    {
      while (set->n_kernel + 1 > (size_t) set->events_cap)
        set->events_cap *= 2;
      set->events = (struct epoll_event *) afut__realloc (
        set->events, (size_t) set->events_cap * sizeof (struct epoll_event));
    }
  timeout_ms = afut__epoll_timeout (set, timeout_ms);
  do
    n = epoll_wait (set->epfd, set->events, set->events_cap, timeout_ms);
  while (n < 0 && errno == EINTR);
  return n < 0 ? 0 : n;
}

#endif /* AFUT__HAVE_EPOLL */

/* ---- embedded backend: epoll (Linux) or poll(), and an eventfd ---- */

typedef struct
{
  int wake_read;
  int wake_write;
  int wake_pending; /* atomic: a byte is in the wakeup fd */
#if AFUT__HAVE_EPOLL
  AfutEpollSet set;
#else
  AfutFdWatch **watches;
  size_t n_watches;
  size_t watches_cap;
  struct pollfd *pollfds;
  AfutFdWatch **polled; /* the watch behind each pollfds[i + 1] */
  size_t pollfds_cap;
#endif
} AfutPollBackend;

static int64_t
afut__monotonic_ns (void *data)
{
  struct timespec ts;
  (void) data;
  clock_gettime (CLOCK_MONOTONIC, &ts);
  return (int64_t) ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static void
afut__poll_drain_wakeup (AfutPollBackend *pb)
{
  char buf[64];
  while (read (pb->wake_read, buf, sizeof buf) > 0)
    ;
  __atomic_store_n (&pb->wake_pending, 0, __ATOMIC_RELEASE);
}

static int
afut__timeout_ms (int64_t timeout_ns)
{
  int64_t ms;
  if (timeout_ns < 0)
    return -1;
  if (timeout_ns == 0)
    return 0;
  /* Round up: waking before the deadline would spin. */
  ms = (timeout_ns + 999999) / 1000000;
  return ms > 86400000 ? 86400000 : (int) ms;
}

#if AFUT__HAVE_EPOLL

static void
afut__poll_wait (void *data, AfutLoop *loop, int64_t timeout_ns)
{
  AfutPollBackend *pb = (AfutPollBackend *) data;
  bool woken = false;
  int n = afut__epoll_wait (&pb->set, afut__timeout_ms (timeout_ns));
  afut__epoll_process (&pb->set, loop, n, &woken);
  if (woken)
    afut__poll_drain_wakeup (pb);
}

static bool
afut__poll_watch_fd (void *data, AfutFdWatch *watch)
{
  return afut__epoll_watch (&((AfutPollBackend *) data)->set, watch);
}

static void
afut__poll_unwatch_fd (void *data, AfutFdWatch *watch)
{
  afut__epoll_unwatch (&((AfutPollBackend *) data)->set, watch);
}

#else /* poll() */

static void
afut__poll_wait (void *data, AfutLoop *loop, int64_t timeout_ns)
{
  AfutPollBackend *pb = (AfutPollBackend *) data;
  size_t i, n = pb->n_watches + 1;
  int r;

  if (n > pb->pollfds_cap)
    {
      pb->pollfds_cap = n * 2;
      pb->pollfds = (struct pollfd *) afut__realloc (
        pb->pollfds, pb->pollfds_cap * sizeof (struct pollfd));
      pb->polled = (AfutFdWatch **) afut__realloc (
        pb->polled, pb->pollfds_cap * sizeof (AfutFdWatch *));
    }
  pb->pollfds[0].fd = pb->wake_read;
  pb->pollfds[0].events = POLLIN;
  pb->pollfds[0].revents = 0;
  for (i = 0; i < pb->n_watches; i++)
    {
      pb->polled[i] = pb->watches[i];
      pb->pollfds[i + 1].fd = pb->watches[i]->fd;
      pb->pollfds[i + 1].events = (short) pb->watches[i]->events;
      pb->pollfds[i + 1].revents = 0;
    }
  do
    r = poll (pb->pollfds, (nfds_t) n, afut__timeout_ms (timeout_ns));
  while (r < 0 && errno == EINTR);
  if (r <= 0)
    return;
  if (pb->pollfds[0].revents)
    afut__poll_drain_wakeup (pb);
  /* afut_loop_fd_ready() unwatches, which reorders pb->watches: report
   * through the snapshot taken when polling.  Nothing in between runs user
   * code, so every watch in it is still alive. */
  for (i = 1; i < n; i++)
    if (pb->pollfds[i].revents)
      afut_loop_fd_ready (loop, pb->polled[i - 1],
                          (unsigned) pb->pollfds[i].revents);
}

static bool
afut__poll_watch_fd (void *data, AfutFdWatch *watch)
{
  AfutPollBackend *pb = (AfutPollBackend *) data;
  if (pb->n_watches == pb->watches_cap)
    {
      pb->watches_cap = pb->watches_cap ? pb->watches_cap * 2 : 8;
      pb->watches = (AfutFdWatch **) afut__realloc (
        pb->watches, pb->watches_cap * sizeof (AfutFdWatch *));
    }
  watch->backend_data = (void *) (uintptr_t) pb->n_watches;
  pb->watches[pb->n_watches++] = watch;
  return true;
}

static void
afut__poll_unwatch_fd (void *data, AfutFdWatch *watch)
{
  AfutPollBackend *pb = (AfutPollBackend *) data;
  size_t i = (size_t) (uintptr_t) watch->backend_data;
  AFUT_ASSERT (i < pb->n_watches && pb->watches[i] == watch);
  pb->watches[i] = pb->watches[--pb->n_watches];
  pb->watches[i]->backend_data = (void *) (uintptr_t) i;
}

#endif /* poll() */

static void
afut__poll_wakeup (void *data)
{
  AfutPollBackend *pb = (AfutPollBackend *) data;
  /* One byte in the fd is enough to wake a poll. */
  if (__atomic_exchange_n (&pb->wake_pending, 1, __ATOMIC_ACQ_REL) == 0)
    {
#ifdef __linux__
      uint64_t one = 1;
      ssize_t r = write (pb->wake_write, &one, sizeof one);
#else
      char one = 1;
      ssize_t r = write (pb->wake_write, &one, 1);
#endif
      (void) r;
    }
}

static void
afut__poll_free (void *data)
{
  AfutPollBackend *pb = (AfutPollBackend *) data;
#if AFUT__HAVE_EPOLL
  afut__epoll_set_clear (&pb->set);
#else
  AFUT_FREE (pb->watches);
  AFUT_FREE (pb->pollfds);
  AFUT_FREE (pb->polled);
#endif
  close (pb->wake_read);
  if (pb->wake_write != pb->wake_read)
    close (pb->wake_write);
  AFUT_FREE (pb);
}

static const AfutBackend afut__poll_backend = {
  afut__monotonic_ns,    afut__poll_wait, afut__poll_wakeup, afut__poll_watch_fd,
  afut__poll_unwatch_fd, afut__poll_free, NULL, NULL, NULL,
};

static AfutPollBackend *
afut__poll_backend_new (void)
{
  AfutPollBackend *pb = (AfutPollBackend *) afut__alloc (sizeof *pb);
  memset (pb, 0, sizeof *pb);
#ifdef __linux__
  pb->wake_read = eventfd (0, EFD_CLOEXEC | EFD_NONBLOCK);
  if (pb->wake_read < 0)
    {
      AFUT_FREE (pb);
      return NULL;
    }
  pb->wake_write = pb->wake_read;
#else
  {
    int fds[2];
    if (pipe (fds) < 0)
      {
        AFUT_FREE (pb);
        return NULL;
      }
    for (int i = 0; i < 2; i++)
      {
        fcntl (fds[i], F_SETFL, fcntl (fds[i], F_GETFL) | O_NONBLOCK);
        fcntl (fds[i], F_SETFD, FD_CLOEXEC);
      }
    pb->wake_read = fds[0];
    pb->wake_write = fds[1];
  }
#endif
#if AFUT__HAVE_EPOLL
  if (!afut__epoll_set_init (&pb->set, pb->wake_read))
    {
      int errsv = errno;
      close (pb->wake_read);
      AFUT_FREE (pb);
      errno = errsv;
      return NULL;
    }
#endif
  return pb;
}

/* ---- loop: construction ---- */

AfutLoop *
afut_loop_new_with_backend (const AfutBackend *backend, void *backend_data,
                            unsigned flags)
{
  AfutLoop *loop;
  AFUT__RETURN_VAL_IF_FAIL (backend != NULL, NULL);
  AFUT__RETURN_VAL_IF_FAIL (backend->wait != NULL, NULL);
  AFUT__RETURN_VAL_IF_FAIL (backend->wakeup != NULL, NULL);
  AFUT__RETURN_VAL_IF_FAIL (
    backend->now != NULL || (flags & AFUT_LOOP_VIRTUAL_CLOCK), NULL);
  AFUT__RETURN_VAL_IF_FAIL ((flags & ~(unsigned) AFUT_LOOP_VIRTUAL_CLOCK)
                              == 0,
                            NULL);

  loop = (AfutLoop *) afut__alloc (sizeof (AfutLoop));
  memset (loop, 0, sizeof *loop);
  loop->ref_count = 1;
  loop->owner = afut__thread_id ();
  loop->flags = flags;
  loop->backend = backend;
  loop->backend_data = backend_data;
  loop->ready_cap = 64;
  loop->ready
    = (AfutReadyEntry *) afut__alloc (loop->ready_cap * sizeof (AfutReadyEntry));
  pthread_mutex_init (&loop->inbox_lock, NULL);
  return loop;
}

AfutLoop *
afut_loop_new (unsigned flags)
{
  AfutPollBackend *pb = afut__poll_backend_new ();
  AfutLoop *loop;
  if (pb == NULL)
    {
      afut__log (AFUT_LOG_CRITICAL, "afut_loop_new: cannot create the "
                 "wakeup fd: %s", strerror (errno));
      return NULL;
    }
  loop = afut_loop_new_with_backend (&afut__poll_backend, pb, flags);
  if (loop == NULL)
    afut__poll_free (pb);
  return loop;
}

AfutLoop *
afut_loop_ref (AfutLoop *loop)
{
  AFUT__RETURN_VAL_IF_FAIL (loop != NULL, NULL);
  __atomic_fetch_add (&loop->ref_count, 1, __ATOMIC_RELAXED);
  return loop;
}

static bool afut__loop_post (AfutLoop *loop, AfutCallback func, void *data);
static void afut__loop_unref_posted (void *data);
static void afut__future_ref_posted (void *data);
static void afut__future_unref_posted (void *data);
static bool afut__loop_claim (AfutLoop *loop, const char *func, bool run);
static void afut__loop_unclaim (AfutLoop *loop);

void
afut_loop_unref (AfutLoop *loop)
{
  AFUT__RETURN_IF_FAIL (loop != NULL);
  if (__atomic_fetch_sub (&loop->ref_count, 1, __ATOMIC_ACQ_REL) != 1)
    return;
  /* Closed, the count includes the futures left (see afut__loop_close):
   * this was the last of them all. */
  if (__atomic_load_n (&loop->closed, __ATOMIC_ACQUIRE))
    {
      afut__loop_free_memory (loop);
      return;
    }
  /* The last reference to an open loop closes it.  Closing runs the loop:
   * on this thread, if no other thread is in it; else the reference goes
   * back and the close is posted to the loop's thread, where the run's
   * own reference is the last. */
  if (!afut__loop_claim (loop, __func__, true))
    {
      __atomic_store_n (&loop->ref_count, 1, __ATOMIC_RELEASE);
      afut__loop_post (loop, afut__loop_unref_posted, loop);
      return;
    }
  /* The close takes and drops references: it holds one of its own,
   * dropped at the end. */
  __atomic_store_n (&loop->ref_count, 1, __ATOMIC_RELAXED);
  loop->closing = true;
  afut__loop_close (loop);
  loop->closing = false;
  afut__loop_unclaim (loop);
  afut_loop_unref (loop);
}

bool
afut_loop_close (AfutLoop *loop)
{
  AFUT__RETURN_VAL_IF_FAIL (loop != NULL, false);
  if (__atomic_load_n (&loop->closed, __ATOMIC_ACQUIRE))
    return true;
  if (!afut__loop_claim (loop, __func__, true))
    return false;
  if (loop->closing || loop->running || loop->in_wait)
    {
      afut__log (AFUT_LOG_CRITICAL,
                 "%s: cannot close a running event loop (from its own "
                 "callback, or while a run call is in progress)",
                 __func__);
      afut__loop_unclaim (loop);
      return false;
    }
  /* Its own reference: a callback run while closing may drop the
   * caller's; the unref below then frees what is left. */
  afut_loop_ref (loop);
  loop->closing = true;
  afut__loop_close (loop);
  loop->closing = false;
  afut__loop_unclaim (loop);
  afut_loop_unref (loop);
  return true;
}

bool
afut_loop_is_closed (AfutLoop *loop)
{
  AFUT__RETURN_VAL_IF_FAIL (loop != NULL, false);
  return __atomic_load_n (&loop->closed, __ATOMIC_ACQUIRE);
}

static void
afut__loop_unref_posted (void *data)
{
  afut_loop_unref ((AfutLoop *) data);
}

static void
afut__loop_free_memory (AfutLoop *loop)
{
  /* No future is left to report through the handler. */
  afut__loop_drop_exception_handler (loop);
  /* The thread's pooled fiber stacks go with a loop. */
  afut__fiber_pool_trim ();
  while (loop->future_slabs != NULL)
    {
      void *slab = loop->future_slabs;
      loop->future_slabs = *(void **) slab;
      AFUT_FREE (slab);
    }
  AFUT_FREE (loop->ready);
  AFUT_FREE (loop->heap);
  AFUT_FREE (loop->tasks);
  AFUT_FREE (loop->inbox);
  AFUT_FREE (loop->deferred);
  pthread_mutex_destroy (&loop->inbox_lock);
  if (loop->backend->free != NULL)
    loop->backend->free (loop->backend_data);
  AFUT_FREE (loop);
}

AfutLoop *
afut_loop_get_running (void)
{
  return afut__running_loop;
}

/* ---- loop: thread default ---- */

typedef struct AfutThreadDefault AfutThreadDefault;
struct AfutThreadDefault
{
  AfutLoop *loop;
  AfutThreadDefault *below;
};

static AFUT__THREAD_LOCAL AfutThreadDefault *afut__thread_default;

void
afut_loop_push_thread_default (AfutLoop *loop)
{
  AfutThreadDefault *node;
  AFUT__RETURN_IF_FAIL (loop != NULL);
  node = (AfutThreadDefault *) afut__alloc (sizeof *node);
  node->loop = afut_loop_ref (loop);
  node->below = afut__thread_default;
  afut__thread_default = node;
}

void
afut_loop_pop_thread_default (AfutLoop *loop)
{
  AfutThreadDefault *node = afut__thread_default;
  AFUT__RETURN_IF_FAIL (loop != NULL);
  AFUT__RETURN_IF_FAIL (node != NULL && node->loop == loop);
  afut__thread_default = node->below;
  AFUT_FREE (node);
  afut_loop_unref (loop);
}

AfutLoop *
afut_loop_get_thread_default (void)
{
  return afut__thread_default != NULL ? afut__thread_default->loop : NULL;
}

static AfutLoop *
afut__resolve_loop (AfutLoop *loop, const char *func)
{
  if (loop == NULL)
    loop = afut__running_loop;
  if (loop == NULL)
    loop = afut_loop_get_thread_default ();
  if (loop == NULL)
    afut__log (AFUT_LOG_CRITICAL,
               "%s: no running loop on this thread: pass a loop, call it "
               "from a task, or push a thread-default loop",
               func);
  else if (loop->closed)
    {
      afut__log (AFUT_LOG_CRITICAL, "%s: the loop is closed", func);
      loop = NULL;
    }
  else if (!afut__on_loop_thread (loop) && !afut__wrong_thread (loop, func, NULL))
    loop = NULL;
  return loop;
}

/* ---- loop: clock ---- */

int64_t
afut_loop_time_ns (AfutLoop *loop)
{
  AFUT__RETURN_VAL_IF_FAIL (loop != NULL, 0);
  AFUT__RETURN_IF_WRONG_THREAD (loop, NULL, 0);
  if (loop->flags & AFUT_LOOP_VIRTUAL_CLOCK)
    return loop->virtual_now;
  return loop->backend->now (loop->backend_data);
}

double
afut_loop_time (AfutLoop *loop)
{
  AFUT__RETURN_VAL_IF_FAIL (loop != NULL, 0.0);
  AFUT__RETURN_IF_WRONG_THREAD (loop, NULL, 0.0);
  return (double) afut_loop_time_ns (loop) / 1e9;
}

/* ---- deadlines ----
 *
 * Every deadline is a time in ns on the loop's clock, computed by these
 * two, which saturate: INT64_MAX is "never" (afut__loop_timeout never
 * waits for it, the virtual clock never jumps to it), and a delay that
 * would go past it stays there, so a far deadline stays far however late
 * the clock is.  A past deadline (a negative delay) stays in the past, as
 * asyncio's call_later(d) is call_at(time() + d). */

#define AFUT__NEVER INT64_MAX
#define AFUT__MAX_WAIT_NS (INT64_C (86400) * 1000000000)

/* Seconds to ns, saturating: INFINITY and huge values become
 * AFUT__NEVER, far past ones INT64_MIN / 2. */
static int64_t
afut__seconds_to_ns (double seconds)
{
  if (seconds >= 9.2e9)
    return AFUT__NEVER;
  if (seconds <= -9.2e9)
    return INT64_MIN / 2;
  return (int64_t) (seconds * 1e9);
}

/* @delay seconds after now; AFUT__NEVER if that is past the clock's
 * range. */
static int64_t
afut__deadline_after (AfutLoop *loop, double delay)
{
  int64_t now = afut_loop_time_ns (loop), d = afut__seconds_to_ns (delay);
  if (d >= 0 && now > AFUT__NEVER - d)
    return AFUT__NEVER;
  if (d < 0 && now < INT64_MIN / 2 - d)
    return INT64_MIN / 2;
  return now + d;
}

/* ---- loop: ready queue ---- */

static void
afut__ready_grow (AfutLoop *loop)
{
  size_t new_cap = loop->ready_cap * 2, i;
  AfutReadyEntry *ring
    = (AfutReadyEntry *) afut__alloc (new_cap * sizeof (AfutReadyEntry));
  for (i = 0; i < loop->ready_len; i++)
    ring[i] = loop->ready[(loop->ready_head + i) & (loop->ready_cap - 1)];
  AFUT_FREE (loop->ready);
  loop->ready = ring;
  loop->ready_head = 0;
  loop->ready_cap = new_cap;
}

static inline void
afut__ready_append (AfutLoop *loop, AfutCallback func, void *data)
{
  AfutReadyEntry *e;
  if (AFUT__UNLIKELY (loop->ready_len == loop->ready_cap))
    afut__ready_grow (loop);
  e = &loop->ready[(loop->ready_head + loop->ready_len) & (loop->ready_cap - 1)];
  e->func = func;
  e->data = data;
  loop->ready_len++;
}

static void afut__loop_drain_inbox (AfutLoop *loop);

/* asyncio has one ready deque that call_soon_threadsafe appends to at
 * call time.  afut's threadsafe calls wait in the inbox: move them over
 * before anything queued after them, so the queue stays in call order. */
static inline void
afut__ready_push (AfutLoop *loop, AfutCallback func, void *data)
{
  if (AFUT__UNLIKELY (__atomic_load_n (&loop->inbox_pending, __ATOMIC_ACQUIRE)))
    afut__loop_drain_inbox (loop);
  afut__ready_append (loop, func, data);
}

bool
afut_loop_call_soon (AfutLoop *loop, AfutCallback func, void *data)
{
  AFUT__RETURN_VAL_IF_FAIL (loop != NULL, false);
  AFUT__RETURN_VAL_IF_FAIL (func != NULL, false);
  AFUT__RETURN_IF_WRONG_THREAD (loop, "afut_loop_call_soon_threadsafe()", false);
  if (loop->closed)
    {
      afut__log (AFUT_LOG_CRITICAL, "afut_loop_call_soon: the loop is closed");
      return false;
    }
  afut__ready_push (loop, func, data);
  return true;
}

void
afut_loop_wakeup (AfutLoop *loop)
{
  AFUT__RETURN_IF_FAIL (loop != NULL);
  loop->backend->wakeup (loop->backend_data);
}

/* Queues @func in the inbox and wakes the loop; false if it is closed. */
static bool
afut__loop_post (AfutLoop *loop, AfutCallback func, void *data)
{
  bool ok = true;
  pthread_mutex_lock (&loop->inbox_lock);
  if (loop->closed)
    ok = false;
  else
    {
      if (loop->inbox_len == loop->inbox_cap)
        {
          loop->inbox_cap = loop->inbox_cap ? loop->inbox_cap * 2 : 16;
          loop->inbox = (AfutReadyEntry *) afut__realloc (
            loop->inbox, loop->inbox_cap * sizeof (AfutReadyEntry));
        }
      loop->inbox[loop->inbox_len].func = func;
      loop->inbox[loop->inbox_len].data = data;
      loop->inbox_len++;
      __atomic_store_n (&loop->inbox_pending, 1, __ATOMIC_RELEASE);
      /* Under the lock: once it is released, the loop thread may run the
       * entry, close and free the loop before a later wakeup got there.
       * Neither backend's wakeup takes a lock. */
      loop->backend->wakeup (loop->backend_data);
    }
  pthread_mutex_unlock (&loop->inbox_lock);
  return ok;
}

bool
afut_loop_call_soon_threadsafe (AfutLoop *loop, AfutCallback func, void *data)
{
  AFUT__RETURN_VAL_IF_FAIL (loop != NULL, false);
  AFUT__RETURN_VAL_IF_FAIL (func != NULL, false);
  if (afut__loop_post (loop, func, data))
    return true;
  afut__log (AFUT_LOG_CRITICAL, "%s: the loop is closed", __func__);
  return false;
}

static void
afut__loop_drain_inbox (AfutLoop *loop)
{
  size_t i;
  if (!__atomic_load_n (&loop->inbox_pending, __ATOMIC_ACQUIRE))
    return;
  pthread_mutex_lock (&loop->inbox_lock);
  for (i = 0; i < loop->inbox_len; i++)
    afut__ready_append (loop, loop->inbox[i].func, loop->inbox[i].data);
  loop->inbox_len = 0;
  __atomic_store_n (&loop->inbox_pending, 0, __ATOMIC_RELEASE);
  pthread_mutex_unlock (&loop->inbox_lock);
}

/* ---- loop: timer heap ---- */

/* An 8-ary min-heap of {deadline, sleep}: a third of the depth of a
 * binary one (7 levels for 10^6 timers, not 20); comparing a node's eight
 * children reads 128 contiguous bytes.  A sift touches only the heap's
 * array: a sleep does not know its index.  So a cancelled sleep is not
 * taken out at once (asyncio's way too): it stays, flagged cancelled,
 * until it reaches the top, or until cancelled entries are more than half
 * of the heap, when one O(n) pass drops them all (afut__heap_tidy).  Ties
 * on the deadline compare the sleeps' seq, which cancelling keeps.
 * Writing each moved sleep's index into it, as before, cost a cache miss
 * per level: 55 % of a bare sleep's instructions went to the sift-down
 * (docs/performance.md). */
#define AFUT__HEAP_ARITY 8
/* Cleanups start at this many cancelled entries (asyncio: 100 handles). */
#define AFUT__HEAP_TIDY_MIN 64

static inline bool
afut__heap_less (const AfutHeapEntry *a, const AfutHeapEntry *b)
{
  if (a->when != b->when)
    return a->when < b->when;
  return a->timer->u.timer.seq < b->timer->u.timer.seq;
}

static void
afut__heap_sift_up (AfutLoop *loop, uint32_t i)
{
  AfutHeapEntry e = loop->heap[i];
  while (i > 0)
    {
      uint32_t parent = (i - 1) / AFUT__HEAP_ARITY;
      if (!afut__heap_less (&e, &loop->heap[parent]))
        break;
      loop->heap[i] = loop->heap[parent];
      i = parent;
    }
  loop->heap[i] = e;
}

static void
afut__heap_sift_down (AfutLoop *loop, uint32_t i)
{
  AfutHeapEntry e = loop->heap[i];
  for (;;)
    {
      uint32_t first = AFUT__HEAP_ARITY * i + 1, child = first, k;
      if (first >= loop->heap_len)
        break;
      for (k = first + 1; k < first + AFUT__HEAP_ARITY && k < loop->heap_len;
           k++)
        if (afut__heap_less (&loop->heap[k], &loop->heap[child]))
          child = k;
      if (!afut__heap_less (&loop->heap[child], &e))
        break;
      loop->heap[i] = loop->heap[child];
      i = child;
    }
  loop->heap[i] = e;
}

static void
afut__heap_push (AfutLoop *loop, AfutFuture *timer, int64_t when)
{
  AfutHeapEntry e;
  if (loop->heap_len == loop->heap_cap)
    {
      loop->heap_cap = loop->heap_cap ? loop->heap_cap * 2 : 64;
      loop->heap = (AfutHeapEntry *) afut__realloc (
        loop->heap, loop->heap_cap * sizeof (AfutHeapEntry));
    }
  timer->u.timer.when = when;
  timer->u.timer.seq = loop->timer_seq++;
  timer->flags |= AFUT__FUTURE_IN_HEAP;
  e.when = when;
  e.timer = timer;
  loop->heap[loop->heap_len] = e;
  afut__heap_sift_up (loop, loop->heap_len++);
}

/* Takes the top out; the heap's reference goes to the caller.  A
 * cancelled sleep is not pending any more. */
static AfutFuture *
afut__heap_pop (AfutLoop *loop)
{
  AfutFuture *top = loop->heap[0].timer;
  top->flags &= (uint8_t) ~AFUT__FUTURE_IN_HEAP;
  if (top->state != AFUT_FUTURE_PENDING)
    loop->heap_cancelled--;
  if (--loop->heap_len > 0)
    {
      loop->heap[0] = loop->heap[loop->heap_len];
      afut__heap_sift_down (loop, 0);
    }
  return top;
}

/* Drops cancelled sleeps from the top, and all of them when they are
 * more than half of the heap, so that heap[0] (if any) is pending.
 * Frees no pending future and runs no callback. */
static void
afut__heap_tidy (AfutLoop *loop)
{
  if (loop->heap_cancelled == 0)
    return;
  if (loop->heap_cancelled >= AFUT__HEAP_TIDY_MIN
      && loop->heap_cancelled > loop->heap_len / 2)
    {
      uint32_t i, n = 0;
      for (i = 0; i < loop->heap_len; i++)
        {
          AfutFuture *timer = loop->heap[i].timer;
          if (timer->state == AFUT_FUTURE_PENDING)
            loop->heap[n++] = loop->heap[i];
          else
            {
              timer->flags &= (uint8_t) ~AFUT__FUTURE_IN_HEAP;
              afut_future_unref (timer);
            }
        }
      loop->heap_len = n;
      loop->heap_cancelled = 0;
      for (i = n > 1 ? (n - 2) / AFUT__HEAP_ARITY + 1 : 0; i-- > 0;)
        afut__heap_sift_down (loop, i);
      return;
    }
  while (loop->heap_len > 0
         && loop->heap[0].timer->state != AFUT_FUTURE_PENDING)
    afut_future_unref (afut__heap_pop (loop));
}

/* ---- loop: iteration ---- */

static void afut__sleep_fire (void *data);

static void
afut__loop_expire_timers (AfutLoop *loop)
{
  int64_t now;
  afut__heap_tidy (loop);
  if (loop->heap_len == 0)
    return;
  now = afut_loop_time_ns (loop);
  /* As asyncio: an expired timer becomes a ready-queue entry, run in this
   * iteration's batch; the heap's reference moves to the entry. */
  while (loop->heap_len > 0 && loop->heap[0].when <= now)
    {
      AfutFuture *timer = afut__heap_pop (loop);
      if (timer->state == AFUT_FUTURE_PENDING)
        afut__ready_push (loop, afut__sleep_fire, timer);
      else
        afut_future_unref (timer);
    }
}

static void
afut__loop_run_batch (AfutLoop *loop)
{
  loop->batch_left = loop->ready_len;
  while (loop->batch_left > 0)
    {
      AfutReadyEntry e = loop->ready[loop->ready_head];
      loop->ready_head = (loop->ready_head + 1) & (loop->ready_cap - 1);
      loop->ready_len--;
      loop->batch_left--;
      e.func (e.data);
    }
}

/* Drains the inbox, then: 0 if something is ready (or @may_block is
 * false), else how long until the next timer, -1 with no timer.  A
 * virtual clock with nothing ready jumps to the next timer instead. */
static int64_t
afut__loop_timeout (AfutLoop *loop, bool may_block)
{
  afut__loop_drain_inbox (loop);
  if (loop->ready_len > 0 || !may_block)
    return 0;
  /* A timer that never fires is not waited for (sleep (INFINITY)); nor
   * is a cancelled one. */
  afut__heap_tidy (loop);
  if (loop->heap_len == 0 || loop->heap[0].when == AFUT__NEVER)
    return -1;
  if (loop->flags & AFUT_LOOP_VIRTUAL_CLOCK)
    {
      if (loop->heap[0].when > loop->virtual_now)
        loop->virtual_now = loop->heap[0].when;
      return 0;
    }
  {
    /* At most a day, as asyncio's MAXIMUM_SELECT_TIMEOUT: a backend then
     * needs no care with huge values, and rounding up cannot overflow. */
    int64_t timeout = loop->heap[0].when - afut_loop_time_ns (loop);
    if (timeout > AFUT__MAX_WAIT_NS)
      timeout = AFUT__MAX_WAIT_NS;
    return timeout < 0 ? 0 : timeout;
  }
}

/* What an iteration does once the waiting is over: asyncio's _run_once
 * after select(). */
static void
afut__loop_process (AfutLoop *loop)
{
  afut__loop_drain_inbox (loop);
  afut__loop_expire_timers (loop);
  afut__loop_run_batch (loop);
}

/* A run call waits in the backend stepped out of the running state: a
 * backend driven by another main loop (GLib) dispatches afut from inside
 * that wait, through afut_loop_dispatch(). */
static void
afut__loop_wait (AfutLoop *loop, int64_t timeout)
{
  AfutLoop *running = afut__running_loop;
  loop->running = false;
  loop->in_wait = true;
  afut__running_loop = NULL;
  loop->backend->wait (loop->backend_data, loop, timeout);
  afut__running_loop = running;
  loop->in_wait = false;
  loop->running = true;
}

static void
afut__loop_iterate_unlocked (AfutLoop *loop, bool may_block)
{
  int64_t timeout = afut__loop_timeout (loop, may_block);
  /* The embedded backend skips the syscall with nothing to poll and
   * nothing to wait for, and, when work is ready, every other time: what
   * the last poll reported (an fd ready, a task to wake) takes two
   * batches to reach its task, and a poll between them finds nothing
   * new but costs a syscall per event.  I/O is still looked at every
   * other batch.  Another backend always gets its turn, since it may
   * have callbacks of its own to run. */
  if (loop->backend != &afut__poll_backend
      || (timeout != 0
          || (loop->n_fd_watches > 0
              && !(may_block && loop->ready_len > 0 && loop->waited))))
    {
      afut__loop_wait (loop, timeout);
      loop->waited = true;
    }
  else
    loop->waited = false;
  afut__loop_process (loop);
}

static void afut__loop_unclaim (AfutLoop *loop);

/* A run call, a dispatch or the last unref starts on this thread: the
 * loop becomes this thread's (see THREADS at the top), unless another
 * thread is inside one.  A run call (@run; not a dispatch, which runs
 * inside whatever iterates the backend) also takes the backend for the
 * whole run: the GLib adapter acquires the GMainContext, as
 * g_main_loop_run() does, so no other thread iterating it steps afut
 * meanwhile.  Paired with afut__loop_unclaim(). */
static bool
afut__loop_claim (AfutLoop *loop, const char *func, bool run)
{
  uintptr_t me = afut__thread_id ();
  uintptr_t owner = __atomic_load_n (&loop->owner, __ATOMIC_ACQUIRE);
  uintptr_t before = 0; /* the owner this call took the loop from */
  if ((owner & ~AFUT__OWNER_IN_RUN) == me)
    {
      if (loop->run_depth++ == 0)
        __atomic_store_n (&loop->owner, me | AFUT__OWNER_IN_RUN,
                          __ATOMIC_RELAXED);
    }
  else
    {
      do
        if (owner & AFUT__OWNER_IN_RUN)
          {
            afut__log (AFUT_LOG_CRITICAL,
                       "%s: called from a thread that is not the loop's: "
                       "the loop runs on another thread",
                       func);
            return false;
          }
      while (!__atomic_compare_exchange_n (&loop->owner, &owner,
                                           me | AFUT__OWNER_IN_RUN, false,
                                           __ATOMIC_ACQ_REL,
                                           __ATOMIC_ACQUIRE));
      loop->run_depth = 1;
      before = owner;
    }
  if (run && !loop->acquired && loop->backend->acquire != NULL
      && !loop->closed)
    {
      if (!loop->backend->acquire (loop->backend_data))
        {
          afut__log (AFUT_LOG_CRITICAL,
                     "%s: called from a thread that is not the loop's: "
                     "another thread runs the loop's main context",
                     func);
          if (before != 0)
            {
              /* Refused: the loop stays the thread's it was. */
              loop->run_depth = 0;
              __atomic_store_n (&loop->owner, before, __ATOMIC_RELEASE);
            }
          else
            afut__loop_unclaim (loop);
          return false;
        }
      loop->acquired = true;
    }
  return true;
}

static void
afut__loop_unclaim (AfutLoop *loop)
{
  bool acquired;
  if (--loop->run_depth > 0)
    return;
  /* The run ends before the context goes: a thread that gets the context
   * the moment it is released (its g_main_context_iteration() waited for
   * it) may then call the source's prepare, which must find the loop
   * free, not still in this run. */
  acquired = loop->acquired;
  loop->acquired = false;
  __atomic_store_n (&loop->owner, afut__thread_id (), __ATOMIC_RELEASE);
  if (acquired)
    loop->backend->release (loop->backend_data);
}

/* @outer_depth (nullable): where the step depth was, read once the loop
 * is this thread's (a dispatch inside a run's wait puts it back). */
static bool
afut__loop_enter_full (AfutLoop *loop, const char *func, bool dispatching,
                       int *outer_depth)
{
  const char *problem = NULL;
  if (!afut__loop_claim (loop, func, !dispatching))
    return false;
  if (outer_depth != NULL)
    *outer_depth = loop->step_depth;
  if (loop->closed)
    problem = "the loop is closed";
  else if (loop->running || (loop->in_wait && !dispatching))
    problem = "the loop is already running (nested run)";
  else if (afut__running_loop != NULL)
    problem = "another loop is running on this thread";
  if (problem != NULL)
    {
      afut__log (AFUT_LOG_CRITICAL, "%s: %s", func, problem);
      afut__loop_unclaim (loop);
      return false;
    }
  loop->running = true;
  afut__running_loop = loop;
  loop->step_depth = AFUT_NESTING_DEPTH ();
  return true;
}

static bool
afut__loop_enter (AfutLoop *loop, const char *func, bool dispatching)
{
  return afut__loop_enter_full (loop, func, dispatching, NULL);
}

static void
afut__loop_leave (AfutLoop *loop)
{
  loop->running = false;
  afut__running_loop = NULL;
  afut__loop_unclaim (loop);
}

/* @nested: asked by a nested main loop inside one of the loop's own
 * callbacks (the GLib adapter's source is asked only by iterations of
 * its context): the loop's other work runs there. */
static bool
afut__loop_prepare (AfutLoop *loop, int64_t *timeout_ns, bool nested)
{
  int64_t timeout = -1;
  /* Asked by whatever drives the loop (a GSource's prepare on the thread
   * iterating its context): that thread takes the loop over, as a run
   * call would. */
  if (!afut__on_loop_thread (loop))
    {
      if (!afut__loop_claim (loop, "afut_loop_prepare", false))
        {
          if (timeout_ns != NULL)
            *timeout_ns = -1;
          return false;
        }
      afut__loop_unclaim (loop);
    }
  if (!loop->closed && (!loop->running || nested))
    timeout = afut__loop_timeout (loop, true);
  if (timeout_ns != NULL)
    *timeout_ns = timeout;
  return timeout == 0;
}

bool
afut_loop_prepare (AfutLoop *loop, int64_t *timeout_ns)
{
  AFUT__RETURN_VAL_IF_FAIL (loop != NULL, false);
  return afut__loop_prepare (loop, timeout_ns, false);
}

void
afut_loop_dispatch (AfutLoop *loop, int64_t budget_ns)
{
  int64_t start;
  AfutTask *outer_task = NULL;
  int outer_depth = 0;
  bool nested;
  AFUT__RETURN_IF_FAIL (loop != NULL);
  AFUT__RETURN_IF_FAIL (budget_ns >= 0);
  /* A callback of this loop runs a nested main loop (a modal dialog, a
   * g_main_context_iteration() spin until another task ends): afut's
   * other work runs in it, the rest of the current batch first, then the
   * next batches; the tasks whose step is on the C stack wait until that
   * step returns (afut__task_run_step). */
  /* (The thread first: another thread must not read the loop's state,
   * which the loop's thread writes; it is refused below.) */
  nested = afut__on_loop_thread (loop) && afut__running_loop == loop
           && loop->running && !loop->closed
           && AFUT_NESTING_DEPTH () > loop->step_depth;
  if (nested)
    {
      outer_task = loop->current_task;
      outer_depth = loop->step_depth;
      loop->current_task = NULL;
      loop->step_depth = AFUT_NESTING_DEPTH ();
      loop->n_nested++;
    }
  else
    {
      /* Inside a run's wait, the run's depth comes back after. */
      if (!afut__loop_enter_full (loop, __func__, true, &outer_depth))
        return;
    }
  afut_loop_ref (loop); /* a callback may drop the backend's */
  start = afut__monotonic_ns (NULL);
  for (;;)
    {
      afut__loop_process (loop);
      afut__loop_drain_inbox (loop);
      if (loop->ready_len == 0
          && (loop->heap_len == 0
              || loop->heap[0].when > afut_loop_time_ns (loop)))
        break;
      if (afut__monotonic_ns (NULL) - start >= budget_ns)
        break;
    }
  if (nested)
    {
      loop->n_nested--;
      loop->current_task = outer_task;
      loop->step_depth = outer_depth;
    }
  else
    {
      afut__loop_leave (loop);
      loop->step_depth = outer_depth;
    }
  afut_loop_unref (loop);
}

bool
afut_loop_iterate (AfutLoop *loop, bool may_block)
{
  AFUT__RETURN_VAL_IF_FAIL (loop != NULL, false);
  if (!afut__loop_enter (loop, __func__, false))
    return false;
  afut_loop_ref (loop); /* a callback may drop the caller's */
  afut__loop_iterate_unlocked (loop, may_block);
  afut__loop_leave (loop);
  afut_loop_unref (loop);
  return true;
}

bool
afut_loop_run_until_complete (AfutLoop *loop, AfutFuture *future)
{
  AFUT__RETURN_VAL_IF_FAIL (loop != NULL, false);
  AFUT__RETURN_VAL_IF_FAIL (future != NULL, false);
  AFUT__RETURN_VAL_IF_FAIL (future->loop == loop, false);
  if (!afut__loop_enter (loop, __func__, false))
    return false;
  afut_loop_ref (loop); /* a callback may drop the caller's */
  afut_future_ref (future);
  afut_task_start (future); /* a coroutine object starts, as ensure_future */
  afut__yield_arm (future);
  while (future->state == AFUT_FUTURE_PENDING)
    afut__loop_iterate_unlocked (loop, true);
  afut_future_unref (future);
  afut__loop_leave (loop);
  afut_loop_unref (loop);
  return true;
}

void
afut_loop_hold (AfutLoop *loop)
{
  AFUT__RETURN_IF_FAIL (loop != NULL);
  AFUT__RETURN_IF_WRONG_THREAD (loop, NULL, );
  loop->n_holds++;
}

void
afut_loop_release (AfutLoop *loop)
{
  AFUT__RETURN_IF_FAIL (loop != NULL);
  AFUT__RETURN_IF_WRONG_THREAD (loop, NULL, );
  AFUT__RETURN_IF_FAIL (loop->n_holds > 0);
  loop->n_holds--;
}

size_t
afut_loop_get_n_tasks (AfutLoop *loop)
{
  AFUT__RETURN_VAL_IF_FAIL (loop != NULL, 0);
  AFUT__RETURN_IF_WRONG_THREAD (loop, NULL, 0);
  return loop->n_tasks;
}

static void
afut__loop_run_ready_until_empty (AfutLoop *loop)
{
  afut__loop_drain_inbox (loop);
  while (loop->ready_len > 0)
    {
      afut__loop_run_batch (loop);
      afut__loop_drain_inbox (loop);
    }
}

static void
afut__report (AfutLoop *loop, const char *message, const AfutError *error,
              const char *task_name)
{
  AfutExceptionContext ctx;
  ctx.message = message;
  ctx.error = error;
  ctx.task_name = task_name;
  if (loop->exception_handler != NULL)
    loop->exception_handler (loop, &ctx, loop->exception_handler_data);
  else
    afut_loop_default_exception_handler (loop, &ctx);
}

/* The futures of the loop's tasks, each with a reference taken, in a new
 * array of *@n (NULL if none).  Inline frames are left out: they are part
 * of their root task. */
static AfutFuture **
afut__loop_ref_tasks (AfutLoop *loop, size_t *n)
{
  AfutFuture **tasks = NULL;
  size_t i;
  *n = 0;
  if (loop->n_tasks > 0)
    tasks = (AfutFuture **) afut__alloc (loop->n_tasks * sizeof (AfutFuture *));
  for (i = 0; i < loop->n_tasks; i++)
    if (!afut__task_is_frame (loop->tasks[i]))
      tasks[(*n)++] = afut_future_ref (&loop->tasks[i]->future);
  return tasks;
}

static void
afut__loop_shutdown (AfutLoop *loop)
{
  AfutFuture **tasks, *all;
  size_t i, n;

  if (!afut__loop_enter (loop, "afut_loop_shutdown", false))
    return;
  tasks = afut__loop_ref_tasks (loop, &n);
  if (tasks != NULL)
    {
      for (i = 0; i < n; i++)
        afut_future_cancel (tasks[i], NULL);
      all = afut_gather_return_exceptions_v (tasks, n);
      while (all->state == AFUT_FUTURE_PENDING)
        afut__loop_iterate_unlocked (loop, true);
      afut_future_unref (all);
      for (i = 0; i < n; i++)
        {
          if (tasks[i]->state == AFUT_FUTURE_FAILED)
            afut__report (loop,
                          "unhandled error during loop shutdown",
                          afut_future_get_error (tasks[i]),
                          afut__task_name ((AfutTask *) tasks[i]));
          afut_future_unref (tasks[i]);
        }
      AFUT_FREE (tasks);
    }
  /* A backend may let go of holds nothing will release (the GLib
   * adapter's GIO futures that GIO never got): it sees this flag. */
  loop->draining_holds = true;
  while (loop->n_holds > 0)
    afut__loop_iterate_unlocked (loop, true);
  loop->draining_holds = false;
  afut__loop_run_ready_until_empty (loop);
  afut__loop_leave (loop);
}

void
afut_loop_shutdown (AfutLoop *loop)
{
  AFUT__RETURN_IF_FAIL (loop != NULL);
  afut_loop_ref (loop);
  afut__loop_shutdown (loop);
  afut_loop_unref (loop);
}

/* Cancels what is still pending on a closing loop: its tasks, and the
 * timers and fd waits, whose heap and watch references it drops. */
static void
afut__loop_cancel_leftovers (AfutLoop *loop)
{
  size_t i, n;
  AfutFuture **tasks = afut__loop_ref_tasks (loop, &n);
  if (tasks != NULL)
    {
      for (i = 0; i < n; i++)
        {
          afut_future_cancel (tasks[i], "loop closed");
          afut_future_unref (tasks[i]);
        }
      AFUT_FREE (tasks);
    }
  while (loop->heap_len > 0)
    {
      AfutFuture *timer = afut__heap_pop (loop);
      if (timer->state == AFUT_FUTURE_PENDING)
        afut__future_complete_error (timer,
                                     afut__cancelled_error ("loop closed"));
      afut_future_unref (timer);
    }
  while (loop->fd_watches != NULL)
    {
      AfutFdFuture *fdf = loop->fd_watches;
      fdf->future.ref_count++;
      afut_future_cancel (&fdf->future, "loop closed");
      afut_future_unref (&fdf->future);
    }
}

static void afut__remote_complete (void *data);
static void afut__remote_drop (void *data);

static void
afut__loop_close (AfutLoop *loop)
{
  unsigned rounds;
  AfutReadyEntry *late;
  size_t i, n_late, n_dropped = 0;
  AFUT_ASSERT (!loop->running);
  /* Freed from a callback of another loop: that loop is set aside on
   * this thread while this one shuts down, as a nested run would be. */
  AfutLoop *outer = afut__running_loop;
  afut__running_loop = NULL;

  /* A last callback may spawn again: shut down until nothing is left. */
  do
    afut__loop_shutdown (loop);
  while (loop->n_tasks > 0);
  /* Timers and fd waits that no task awaited: cancel them; their
   * callbacks run below. */
  afut__loop_cancel_leftovers (loop);
  /* Before the last drains: what the backend lets go of (the GLib
   * adapter's cancellable handlers) may still post work that must run. */
  if (loop->backend->close != NULL)
    loop->backend->close (loop->backend_data, loop);
  afut__running_loop = loop;
  loop->step_depth = AFUT_NESTING_DEPTH ();
  /* Without the backend from here: a callback that starts new work (a
   * task, a timer) has it cancelled, until nothing is left. */
  for (rounds = 0;; rounds++)
    {
      afut__loop_run_ready_until_empty (loop);
      if (loop->n_tasks == 0 && loop->heap_len == 0 && loop->fd_watches == NULL)
        break;
      if (rounds == 1000)
        {
          afut__log (AFUT_LOG_WARNING,
                     "loop closed with %zu tasks that would not end",
                     loop->n_tasks);
          break;
        }
      afut__loop_cancel_leftovers (loop);
    }
  afut__running_loop = outer;

  pthread_mutex_lock (&loop->inbox_lock);
  /* From here on each future the loop still has holds a reference to it
   * (they counted in n_futures until now), and futures' reference counts
   * are atomic: a thread whose _threadsafe call finds the loop closed
   * drops its reference where it is, and the last of the loop's
   * references and its futures' frees its memory, on whatever thread. */
  __atomic_add_fetch (&loop->ref_count, (int) loop->n_futures,
                      __ATOMIC_RELAXED);
  loop->n_futures = 0;
  __atomic_store_n (&loop->closed, true, __ATOMIC_RELEASE);
  late = loop->inbox;
  n_late = loop->inbox_len;
  loop->inbox = NULL;
  loop->inbox_len = 0;
  loop->inbox_cap = 0;
  pthread_mutex_unlock (&loop->inbox_lock);
  /* Posted after the last drain: a completion from a thread lets go of
   * its future and value; anything else is dropped, as asyncio's close()
   * drops its ready callbacks. */
  for (i = 0; i < n_late; i++)
    {
      if (late[i].func == afut__remote_complete)
        afut__remote_drop (late[i].data);
      else if (late[i].func == afut__loop_unref_posted
               || late[i].func == afut__future_ref_posted
               || late[i].func == afut__future_unref_posted)
        late[i].func (late[i].data); /* references, not work: applied */
      else
        n_dropped++;
    }
  AFUT_FREE (late);
  if (n_dropped > 0)
    afut__log (AFUT_LOG_WARNING,
               "loop closed with %zu call_soon_threadsafe callbacks that "
               "never ran",
               n_dropped);
}

/* ---- exception handler ---- */

/* Lets go of a handler set with afut_loop_set_exception_handler_full(). */
static void
afut__loop_drop_exception_handler (AfutLoop *loop)
{
  AfutDestroyNotify destroy = loop->exception_handler_destroy;
  void *data = loop->exception_handler_data;
  loop->exception_handler = NULL;
  loop->exception_handler_data = NULL;
  loop->exception_handler_destroy = NULL;
  if (destroy != NULL)
    destroy (data);
}

void
afut_loop_set_exception_handler (AfutLoop *loop, AfutExceptionHandler handler,
                                 void *data)
{
  AFUT__RETURN_IF_FAIL (loop != NULL);
  AFUT__RETURN_IF_WRONG_THREAD (loop, NULL, );
  afut__loop_drop_exception_handler (loop);
  loop->exception_handler = handler;
  loop->exception_handler_data = data;
}

void
afut_loop_set_exception_handler_full (AfutLoop *loop,
                                      AfutExceptionHandler handler,
                                      void *data, AfutDestroyNotify destroy)
{
  if (loop == NULL)
    {
      if (destroy != NULL)
        destroy (data);
      AFUT__RETURN_IF_FAIL (loop != NULL);
    }
  AFUT__RETURN_IF_WRONG_THREAD (loop, NULL, );
  afut_loop_set_exception_handler (loop, handler, data);
  loop->exception_handler_destroy = handler != NULL ? destroy : NULL;
  if (handler == NULL && destroy != NULL)
    destroy (data);
}

void
afut_loop_default_exception_handler (AfutLoop *loop,
                                     const AfutExceptionContext *context)
{
  const AfutError *e;
  const char *domain = NULL;
  AFUT__RETURN_IF_FAIL (loop != NULL);
  AFUT__RETURN_IF_FAIL (context != NULL);
  e = context->error;
  if (e != NULL)
    domain = afut_quark_to_string (e->domain);
  {
    const char *message
      = context->message != NULL ? context->message : "(no message)";
    const char *name = context->task_name;
    if (e != NULL)
      afut__log (AFUT_LOG_ERROR, "%s%s%s%s: %s:%d: %s", message,
                 name != NULL ? ": task '" : "", name != NULL ? name : "",
                 name != NULL ? "'" : "", domain != NULL ? domain : "?",
                 e->code, e->message);
    else
      afut__log (AFUT_LOG_ERROR, "%s%s%s%s", message,
                 name != NULL ? ": task '" : "", name != NULL ? name : "",
                 name != NULL ? "'" : "");
  }
}

void
afut_loop_call_exception_handler (AfutLoop *loop,
                                  const AfutExceptionContext *context)
{
  AFUT__RETURN_IF_FAIL (loop != NULL);
  AFUT__RETURN_IF_FAIL (context != NULL);
  AFUT__RETURN_IF_FAIL (context->message != NULL);
  AFUT__RETURN_IF_WRONG_THREAD (loop, NULL, );
  afut__report (loop, context->message, context->error, context->task_name);
}

/* ---- futures ---- */

static AfutFuture *
afut__future_init (AfutFuture *f, AfutLoop *loop, uint8_t kind)
{
  memset (f, 0, sizeof *f);
  f->loop = loop;
  f->ref_count = 1;
  f->kind = kind;
  if (kind != AFUT__KIND_PLAIN && kind != AFUT__KIND_SLEEP
      && kind != AFUT__KIND_YIELD && kind != AFUT__KIND_FD)
    f->flags = AFUT__FUTURE_MAY_HOLD;
  if (AFUT__UNLIKELY (loop->closed))
    afut_loop_ref (loop); /* see afut__loop_close */
  else
    loop->n_futures++;
  return f;
}

/* The future pool.  Bare futures (plain, sleep, yield: sizeof
 * (AfutFuture) each, the most made) come from per-loop slabs of
 * AFUT__FUTURE_SLAB_SLOTS, cut without malloc's per-block header, and go
 * back to a per-loop free list: a pending future takes 48 B, not 64, and
 * a future made and freed per yield costs no malloc.  The slabs are
 * freed with the loop's memory, so a loop keeps the peak of its bare
 * futures' memory until it is freed.
 *
 * Threads: only the loop's own thread uses the free list, and only while
 * the loop is open.  A closed loop's futures may be freed on any thread
 * (afut__loop_close): they are made with malloc, and a pooled one freed
 * then leaves its slot alone (the slabs go with the loop's memory, which
 * that future's reference keeps alive until then).
 *
 * Define AFUT_NO_FUTURE_POOL (the valgrind job does; ASan builds do by
 * themselves) to malloc and free each future, so that a memory checker
 * sees each one: a use after free or a leak of a single future. */
#if !defined(AFUT_NO_FUTURE_POOL) && defined(__SANITIZE_ADDRESS__)
#define AFUT_NO_FUTURE_POOL 1
#endif
#if !defined(AFUT_NO_FUTURE_POOL) && defined(__has_feature)
#if __has_feature(address_sanitizer)
#define AFUT_NO_FUTURE_POOL 1
#endif
#endif

#define AFUT__FUTURE_SLAB_SLOTS 63

#ifndef AFUT_NO_FUTURE_POOL
static AFUT__NOINLINE void
afut__future_pool_grow (AfutLoop *loop)
{
  /* One slot's worth of room holds the link to the next slab, which
   * keeps every slot aligned as malloc aligns the slab. */
  char *slab = (char *) afut__alloc (sizeof (AfutFuture)
                                     * (AFUT__FUTURE_SLAB_SLOTS + 1));
  int i;
  *(void **) (void *) slab = loop->future_slabs;
  loop->future_slabs = slab;
  for (i = AFUT__FUTURE_SLAB_SLOTS; i >= 1; i--)
    {
      void *slot = slab + (size_t) i * sizeof (AfutFuture);
      *(void **) slot = loop->future_free;
      loop->future_free = slot;
    }
}
#endif

static inline AfutFuture *
afut__future_new_bare (AfutLoop *loop, uint8_t kind)
{
#ifndef AFUT_NO_FUTURE_POOL
  if (AFUT__LIKELY (!loop->closed))
    {
      AfutFuture *f;
      if (AFUT__UNLIKELY (loop->future_free == NULL))
        afut__future_pool_grow (loop);
      f = (AfutFuture *) loop->future_free;
      loop->future_free = *(void **) (void *) f;
      afut__future_init (f, loop, kind);
      f->flags |= AFUT__FUTURE_POOLED;
      return f;
    }
#endif
  return afut__future_init ((AfutFuture *) afut__alloc (sizeof (AfutFuture)),
                            loop, kind);
}

AfutFuture *
afut_future_new (AfutLoop *loop)
{
  loop = afut__resolve_loop (loop, __func__);
  if (loop == NULL)
    return NULL;
  return afut__future_new_bare (loop, AFUT__KIND_PLAIN);
}

AfutFuture *
afut_future_new_custom (AfutLoop *loop, const AfutFutureFuncs *funcs,
                        size_t struct_size)
{
  AfutCustomFuture *custom;
  AFUT__RETURN_VAL_IF_FAIL (funcs != NULL, NULL);
  AFUT__RETURN_VAL_IF_FAIL (struct_size >= sizeof (AfutCustomFuture), NULL);
  loop = afut__resolve_loop (loop, __func__);
  if (loop == NULL)
    return NULL;
  custom = (AfutCustomFuture *) afut__alloc (struct_size);
  memset (custom, 0, struct_size);
  afut__future_init (&custom->future, loop, AFUT__KIND_CUSTOM);
  custom->funcs = funcs;
  return &custom->future;
}

/* Once its loop is closed a future may be released from any thread
 * (a _threadsafe call that finds the loop closed drops its reference
 * where it is): its reference count is atomic from then on. */
static inline bool
afut__future_shared (AfutFuture *future)
{
  return AFUT__UNLIKELY (
    __atomic_load_n (&future->loop->closed, __ATOMIC_ACQUIRE));
}

AfutFuture *
afut_future_ref (AfutFuture *future)
{
  AFUT__RETURN_VAL_IF_FAIL (future != NULL, NULL);
  if (AFUT__UNLIKELY (!afut__on_loop_thread (future->loop))
      && !afut__future_shared (future)
      && afut__loop_post (future->loop, afut__future_ref_posted, future))
    return future;
  AFUT__RETURN_VAL_IF_FAIL (
    __atomic_load_n (&future->ref_count, __ATOMIC_RELAXED) > 0, NULL);
  /* A failed post found the loop closed: the atomic count then. */
  if (afut__future_shared (future))
    __atomic_fetch_add (&future->ref_count, 1, __ATOMIC_RELAXED);
  else
    future->ref_count++;
  return future;
}

/* A reference taken or dropped on another thread, applied here: the
 * count is the loop thread's alone. */
static void
afut__future_ref_posted (void *data)
{
  /* Atomic: also applied by afut__loop_close() to what arrived too late,
   * when the count is atomic already. */
  __atomic_fetch_add (&((AfutFuture *) data)->ref_count, 1,
                      __ATOMIC_RELAXED);
}

static void
afut__future_unref_posted (void *data)
{
  afut_future_unref ((AfutFuture *) data);
}

static void
afut__callbacks_array_marker (AfutFuture *future, void *data)
{
  (void) future;
  (void) data;
}

static inline AfutCallbackSlot *
afut__callback_slots (AfutCallbackArray *a)
{
  return (AfutCallbackSlot *) (void *) (a + 1);
}

static void
afut__full_callback_run (AfutFuture *future, void *data)
{
  AfutFullCallback *full = (AfutFullCallback *) data;
  full->func (future, full->data);
  if (full->destroy != NULL)
    full->destroy (full->data);
  AFUT_FREE (full);
}

/* Runs the destroy notifies of a list of discarded registrations: after
 * the callback slots are consistent again, since a notify may touch the
 * future. */
static void
afut__full_callbacks_discard (AfutFullCallback *list)
{
  while (list != NULL)
    {
      AfutFullCallback *full = list;
      list = (AfutFullCallback *) full->next;
      if (full->destroy != NULL)
        full->destroy (full->data);
      AFUT_FREE (full);
    }
}

/* The _full registrations still pending on @future will never run: they
 * are taken out, and returned as a list for afut__full_callbacks_discard. */
static AfutFullCallback *
afut__future_take_full_callbacks (AfutFuture *future)
{
  AfutFullCallback *list = NULL, **tail = &list;
  if (future->callback == afut__callbacks_array_marker)
    {
      AfutCallbackArray *a = (AfutCallbackArray *) future->callback_data;
      AfutCallbackSlot *slots = afut__callback_slots (a);
      size_t i;
      for (i = a->first; i < a->len; i++)
        if (slots[i].func == afut__full_callback_run)
          {
            *tail = (AfutFullCallback *) slots[i].data;
            tail = (AfutFullCallback **) &(*tail)->next;
            slots[i].func = NULL;
            a->dead++;
          }
    }
  else if (future->callback == afut__full_callback_run)
    {
      list = (AfutFullCallback *) future->callback_data;
      future->callback = NULL;
      future->callback_data = NULL;
    }
  return list;
}

static void afut__task_finalize (AfutTask *task);
static void afut__gather_finalize (AfutGather *gather);

/* Freeing a future unrefs what it holds (a gather its children, a task
 * what it awaits, a value's destroy notify whatever it owns), which may
 * free those in turn: a chain of 10^6 nested futures would recurse 10^6
 * deep.  As CPython's trashcan does, frees nest only so deep; beyond,
 * the futures wait on a list, freed once the outermost free is done, so
 * the C stack stays bounded whatever the depth.  Shallow frees happen in
 * the order they always did. */
#define AFUT__FREE_DEPTH_MAX 64

static void afut__future_free (AfutFuture *future);
static AFUT__NOINLINE void afut__future_release (AfutFuture *future);

void
afut_future_unref (AfutFuture *future)
{
  if (future == NULL)
    return;
  if (AFUT__UNLIKELY (!afut__on_loop_thread (future->loop))
      && !afut__future_shared (future)
      && afut__loop_post (future->loop, afut__future_unref_posted, future))
    return;
  AFUT__RETURN_IF_FAIL (
    __atomic_load_n (&future->ref_count, __ATOMIC_RELAXED) > 0);
  if (afut__future_shared (future))
    {
      if (__atomic_sub_fetch (&future->ref_count, 1, __ATOMIC_ACQ_REL) > 0)
        return;
    }
  else if (--future->ref_count > 0)
    return;
  /* A sleep or plain future without a value to destroy unrefs nothing
   * when freed (the common case, kept cheap). */
  if (future->flags & AFUT__FUTURE_MAY_HOLD)
    afut__future_release (future);
  else
    afut__future_free (future);
}

/* The depth and the list are the thread's, not the loop's: a closed
 * loop's futures may be freed on any thread, and what waits in the list
 * keeps its own loop alive (counted in n_futures, or holding a reference
 * once the loop is closed), so a loop is never freed under a free. */
static AFUT__THREAD_LOCAL unsigned afut__free_depth;
static AFUT__THREAD_LOCAL AfutFuture **afut__free_later;
static AFUT__THREAD_LOCAL size_t afut__n_free_later;
static AFUT__THREAD_LOCAL size_t afut__free_later_cap;

/* The last reference to a future that may hold others is gone. */
static AFUT__NOINLINE void
afut__future_release (AfutFuture *future)
{
  if (AFUT__UNLIKELY (afut__free_depth >= AFUT__FREE_DEPTH_MAX))
    {
      if (afut__n_free_later == afut__free_later_cap)
        {
          afut__free_later_cap
            = afut__free_later_cap ? afut__free_later_cap * 2 : 64;
          afut__free_later = (AfutFuture **) afut__realloc (
            afut__free_later, afut__free_later_cap * sizeof (AfutFuture *));
        }
      afut__free_later[afut__n_free_later++] = future;
      return;
    }
  afut__free_depth++;
  afut__future_free (future);
  if (--afut__free_depth > 0)
    return;
  if (AFUT__UNLIKELY (afut__n_free_later > 0))
    {
      /* The outermost free: the deferred ones now, each nesting as deep
       * again, deferring what lies deeper. */
      afut__free_depth++;
      while (afut__n_free_later > 0)
        afut__future_free (afut__free_later[--afut__n_free_later]);
      afut__free_depth--;
      AFUT_FREE (afut__free_later);
      afut__free_later = NULL;
      afut__free_later_cap = 0;
    }
}

static void
afut__future_free (AfutFuture *future)
{
  AfutLoop *loop = future->loop;
  AfutFullCallback *full;

  if (future->state == AFUT_FUTURE_FAILED
      && !(future->flags & AFUT__FUTURE_ERROR_RETRIEVED))
    afut__report (loop,
                  future->kind == AFUT__KIND_TASK
                    ? "Task exception was never retrieved"
                    : "Future exception was never retrieved",
                  future->u.error,
                  future->kind == AFUT__KIND_TASK
                    ? afut__task_name ((AfutTask *) future)
                    : NULL);

  switch (future->kind)
    {
    case AFUT__KIND_TASK:
      afut__task_finalize ((AfutTask *) future);
      break;
    case AFUT__KIND_GATHER:
      afut__gather_finalize ((AfutGather *) future);
      break;
    case AFUT__KIND_CUSTOM:
      if (((AfutCustomFuture *) future)->funcs->finalize != NULL)
        ((AfutCustomFuture *) future)->funcs->finalize (future);
      break;
    case AFUT__KIND_SLEEP:
    case AFUT__KIND_YIELD:
    case AFUT__KIND_FD:
    case AFUT__KIND_PLAIN:
      break;
    default:
      afut__combinator_finalize (future);
      break;
    }

  if (future->state == AFUT_FUTURE_FAILED
      && afut__is_group_error (future->u.error)
      && future->kind != AFUT__KIND_GROUP
      && afut__group_owner (future) != future)
    afut_future_unref (future->u.failure.group);
  if (future->state == AFUT_FUTURE_FAILED
      || future->state == AFUT_FUTURE_CANCELLED)
    afut_error_free (future->u.error);
  else if (future->state == AFUT_FUTURE_DONE
           && future->value_type == AFUT_VALUE_POINTER
           && future->u.value.destroy != NULL)
    future->u.value.destroy (future->u.value.v.pointer);

  /* Pending callbacks only remain if the future never completed. */
  full = afut__future_take_full_callbacks (future);
  if (future->callback == afut__callbacks_array_marker)
    AFUT_FREE (future->callback_data);
  afut__full_callbacks_discard (full);

  if (AFUT__UNLIKELY (__atomic_load_n (&loop->closed, __ATOMIC_ACQUIRE)))
    {
      /* Any thread: a pooled slot stays as it is (see the future pool). */
      if (!(future->flags & AFUT__FUTURE_POOLED))
        AFUT_FREE (future);
      afut_loop_unref (loop); /* its reference to the closed loop */
      return;
    }
  if (future->flags & AFUT__FUTURE_POOLED)
    {
      *(void **) (void *) future = loop->future_free;
      loop->future_free = future;
    }
  else
    AFUT_FREE (future);
  loop->n_futures--;
}

AfutLoop *
afut_future_get_loop (AfutFuture *future)
{
  AFUT__RETURN_VAL_IF_FAIL (future != NULL, NULL);
  return future->loop;
}

AfutFutureState
afut_future_get_state (AfutFuture *future)
{
  AFUT__RETURN_VAL_IF_FAIL (future != NULL, AFUT_FUTURE_PENDING);
  AFUT__RETURN_IF_WRONG_THREAD (future->loop, NULL, AFUT_FUTURE_PENDING);
  return (AfutFutureState) future->state;
}

bool
afut_future_is_done (AfutFuture *future)
{
  AFUT__RETURN_VAL_IF_FAIL (future != NULL, false);
  AFUT__RETURN_IF_WRONG_THREAD (future->loop, NULL, false);
  return future->state != AFUT_FUTURE_PENDING;
}

bool
afut_future_is_cancelled (AfutFuture *future)
{
  AFUT__RETURN_VAL_IF_FAIL (future != NULL, false);
  AFUT__RETURN_IF_WRONG_THREAD (future->loop, NULL, false);
  return future->state == AFUT_FUTURE_CANCELLED;
}

const char *
afut_future_state_to_string (AfutFutureState state)
{
  switch (state)
    {
    case AFUT_FUTURE_PENDING:
      return "pending";
    case AFUT_FUTURE_DONE:
      return "done";
    case AFUT_FUTURE_FAILED:
      return "failed";
    case AFUT_FUTURE_CANCELLED:
      return "cancelled";
    default:
      return "invalid";
    }
}

/* Runs a completed future's callbacks, in registration order.  One entry
 * per future, not one per callback: the callbacks were consecutive in the
 * queue anyway, so the order is asyncio's. */
static void
afut__future_dispatch (void *data)
{
  AfutFuture *future = (AfutFuture *) data;
  AfutFutureCallback cb = future->callback;
  void *cb_data = future->callback_data;
  future->callback = NULL;
  future->callback_data = NULL;
  if (cb == afut__callbacks_array_marker)
    {
      AfutCallbackArray *a = (AfutCallbackArray *) cb_data;
      AfutCallbackSlot *slots = afut__callback_slots (a);
      size_t i;
      for (i = a->first; i < a->len; i++)
        if (slots[i].func != NULL)
          slots[i].func (future, slots[i].data);
      AFUT_FREE (a);
    }
  else if (cb != NULL)
    cb (future, cb_data);
  afut_future_unref (future);
}

/* Moves the live slots to the front. */
static void
afut__callbacks_compact (AfutCallbackArray *a)
{
  AfutCallbackSlot *slots = afut__callback_slots (a);
  size_t i, j = 0;
  for (i = a->first; i < a->len; i++)
    if (slots[i].func != NULL)
      slots[j++] = slots[i];
  a->len = j;
  a->dead = 0;
  a->first = 0;
}

static void
afut__future_drop_callbacks (AfutFuture *future)
{
  AfutFullCallback *full = afut__future_take_full_callbacks (future);
  if (future->callback == afut__callbacks_array_marker)
    AFUT_FREE (future->callback_data);
  future->callback = NULL;
  future->callback_data = NULL;
  afut__full_callbacks_discard (full);
}

static void
afut__future_schedule_callbacks (AfutFuture *future)
{
  AfutLoop *loop = future->loop;
  if (future->callback == NULL)
    return;
  if (AFUT__UNLIKELY (loop->closed))
    {
      afut__log (AFUT_LOG_CRITICAL,
                 "a future completed after its loop was closed: its done "
                 "callbacks will not run");
      afut__future_drop_callbacks (future);
      return;
    }
  future->ref_count++;
  afut__ready_push (loop, afut__future_dispatch, future);
}

static bool
afut__future_check_pending (AfutFuture *future, const char *func)
{
  if (AFUT__LIKELY (future->state == AFUT_FUTURE_PENDING))
    return true;
  afut__log (AFUT_LOG_CRITICAL,
             "%s: invalid state: the future is already %s (a future "
             "completes once)",
             func, afut_future_state_to_string ((AfutFutureState) future->state));
  return false;
}

/* Completing anything but a plain future from outside would bypass its
 * own logic (a task's step, a gather's children, a sleep's timer). */
static bool
afut__future_check_settable (AfutFuture *future, const char *func)
{
  if (AFUT__LIKELY (future->kind == AFUT__KIND_PLAIN
                    || future->kind == AFUT__KIND_CUSTOM))
    return true;
  afut__log (AFUT_LOG_CRITICAL,
             "%s: this future is a %s: it completes on its own (only cancel "
             "it)",
             func,
             future->kind == AFUT__KIND_TASK     ? "task"
             : future->kind == AFUT__KIND_GATHER ? "gather"
             : future->kind == AFUT__KIND_FD     ? "fd wait"
             : (future->flags & AFUT__FUTURE_HANDLE) ? "timer handle"
             : future->kind == AFUT__KIND_SLEEP || future->kind == AFUT__KIND_YIELD
               ? "sleep"
               : "combinator");
  return false;
}

static inline void
afut__future_complete_value (AfutFuture *future, AfutValueType type)
{
  future->state = AFUT_FUTURE_DONE;
  future->value_type = (uint8_t) type;
  afut__future_schedule_callbacks (future);
}

/* Completes @future with @error; an AFUT_ERROR_GROUP @error taken from
 * another future keeps @group (transfer none), the future that owns its
 * sub-errors (afut__group_owner()), so that they stay reachable. */
static bool
afut__future_complete_error_from (AfutFuture *future, AfutError *error,
                                  AfutFuture *group)
{
  if (future->state != AFUT_FUTURE_PENDING)
    {
      afut_error_free (error);
      return false;
    }
  future->u.error = error;
  future->state = afut_error_is_cancelled (error) ? AFUT_FUTURE_CANCELLED
                                                  : AFUT_FUTURE_FAILED;
  if (afut__is_group_error (error))
    future->u.failure.group
      = group != NULL && group != future ? afut_future_ref (group) : NULL;
  afut__future_schedule_callbacks (future);
  return true;
}

/* asyncio's set_exception() with a CancelledError: the future fails with
 * the cancellation, and is not cancelled itself.  @group as in
 * afut__future_complete_error_from(). */
static void
afut__future_complete_failed (AfutFuture *future, AfutError *error,
                              AfutFuture *group)
{
  future->u.error = error;
  future->state = AFUT_FUTURE_FAILED;
  if (afut__is_group_error (error))
    future->u.failure.group
      = group != NULL && group != future ? afut_future_ref (group) : NULL;
  afut__future_schedule_callbacks (future);
}

static bool
afut__future_complete_error (AfutFuture *future, AfutError *error)
{
  return afut__future_complete_error_from (future, error, NULL);
}

bool
afut_future_resolve (AfutFuture *future)
{
  AFUT__RETURN_VAL_IF_FAIL (future != NULL, false);
  AFUT__RETURN_IF_WRONG_THREAD (future->loop, "afut_future_resolve_threadsafe()", false);
  if (!afut__future_check_settable (future, __func__)
      || !afut__future_check_pending (future, __func__))
    return false;
  afut__future_complete_value (future, AFUT_VALUE_NONE);
  return true;
}

bool
afut_future_resolve_pointer (AfutFuture *future, void *pointer,
                             AfutDestroyNotify destroy)
{
  if (future != NULL)
    AFUT__RETURN_IF_WRONG_THREAD (future->loop,
                                  "afut_future_resolve_pointer_threadsafe()",
                                  false);
  if (future == NULL || !afut__future_check_settable (future, __func__)
      || !afut__future_check_pending (future, __func__))
    {
      if (future == NULL)
        afut__log (AFUT_LOG_CRITICAL, "%s: assertion '%s' failed", __func__,
                   "future != NULL");
      if (destroy != NULL)
        destroy (pointer);
      return false;
    }
  future->u.value.v.pointer = pointer;
  future->u.value.destroy = destroy;
  if (destroy != NULL)
    future->flags |= AFUT__FUTURE_MAY_HOLD;
  afut__future_complete_value (future, AFUT_VALUE_POINTER);
  return true;
}

bool
afut_future_resolve_int (AfutFuture *future, int64_t value)
{
  AFUT__RETURN_VAL_IF_FAIL (future != NULL, false);
  AFUT__RETURN_IF_WRONG_THREAD (future->loop, "afut_future_resolve_int_threadsafe()", false);
  if (!afut__future_check_settable (future, __func__)
      || !afut__future_check_pending (future, __func__))
    return false;
  future->u.value.v.v_int = value;
  afut__future_complete_value (future, AFUT_VALUE_INT);
  return true;
}

bool
afut_future_resolve_double (AfutFuture *future, double value)
{
  AFUT__RETURN_VAL_IF_FAIL (future != NULL, false);
  AFUT__RETURN_IF_WRONG_THREAD (future->loop, NULL, false);
  if (!afut__future_check_settable (future, __func__)
      || !afut__future_check_pending (future, __func__))
    return false;
  future->u.value.v.v_double = value;
  afut__future_complete_value (future, AFUT_VALUE_DOUBLE);
  return true;
}

bool
afut_future_fail (AfutFuture *future, AfutError *error)
{
  if (future != NULL)
    AFUT__RETURN_IF_WRONG_THREAD (future->loop, "afut_future_fail_threadsafe()",
                                  false);
  if (future == NULL || error == NULL
      || !afut__future_check_settable (future, __func__)
      || !afut__future_check_pending (future, __func__))
    {
      if (future == NULL || error == NULL)
        afut__log (AFUT_LOG_CRITICAL, "%s: assertion '%s' failed", __func__,
                   future == NULL ? "future != NULL" : "error != NULL");
      afut_error_free (error);
      return false;
    }
  return afut__future_complete_error (future, error);
}

/* Whether cancelling @future cancels what it waits on (afut__cancel_chain)
 * rather than only itself. */
static inline bool
afut__cancel_is_chain (const AfutFuture *future)
{
  return future->kind == AFUT__KIND_TASK || future->kind == AFUT__KIND_GATHER
         || future->kind == AFUT__KIND_WAIT_FOR
         || future->kind == AFUT__KIND_RACE;
}

bool
afut_future_cancel (AfutFuture *future, const char *message)
{
  AFUT__RETURN_VAL_IF_FAIL (future != NULL, false);
  AFUT__RETURN_IF_WRONG_THREAD (future->loop, "afut_future_cancel_threadsafe()", false);
  if (future->state != AFUT_FUTURE_PENDING)
    {
      /* Future.cancel() and Task.cancel() clear _log_traceback first. */
      if (future->kind != AFUT__KIND_GATHER)
        future->flags |= AFUT__FUTURE_ERROR_RETRIEVED;
      return false;
    }
  /* What cancels what it waits on: without recursing. */
  if (afut__cancel_is_chain (future))
    return afut__cancel_chain (future, message);
  return afut__cancel_leaf (future, message);
}

/* Cancels a pending future that cancels nothing else. */
static bool
afut__cancel_leaf (AfutFuture *future, const char *message)
{
  switch (future->kind)
    {
    case AFUT__KIND_SLEEP:
      /* Left in the heap, counted, until afut__heap_tidy(). */
      if (future->flags & AFUT__FUTURE_IN_HEAP)
        future->loop->heap_cancelled++;
      break;
    case AFUT__KIND_FD:
      afut__fd_stop_watch ((AfutFdFuture *) future);
      break;
    case AFUT__KIND_CUSTOM:
      {
        const AfutFutureFuncs *funcs = ((AfutCustomFuture *) future)->funcs;
        if (funcs->cancel != NULL)
          return funcs->cancel (future, message);
      }
      break;
    case AFUT__KIND_SHIELD:
    case AFUT__KIND_WAIT:
    case AFUT__KIND_AS_COMPLETED:
    case AFUT__KIND_GROUP:
      return afut__combinator_cancel (future, message);
    default:
      break;
    }
  return afut__future_complete_error (future, afut__cancelled_error (message));
}

/* ---- completing from another thread ---- */

typedef enum
{
  AFUT__REMOTE_RESOLVE,
  AFUT__REMOTE_FAIL,
  AFUT__REMOTE_CANCEL
} AfutRemoteOp;

typedef struct
{
  AfutFuture *future;
  AfutRemoteOp op;
  AfutValueType value_type;
  void *pointer;
  AfutDestroyNotify destroy;
  int64_t v_int;
  AfutError *error;
  char *message;
} AfutRemoteCompletion;

static void
afut__remote_complete (void *data)
{
  AfutRemoteCompletion *rc = (AfutRemoteCompletion *) data;
  AfutFuture *f = rc->future;
  if (f->state != AFUT_FUTURE_PENDING && rc->op != AFUT__REMOTE_CANCEL)
    {
      /* Done meanwhile (cancelled while a thread worked): the late
       * outcome is dropped, as asyncio's chained futures do. */
      if (rc->destroy != NULL)
        rc->destroy (rc->pointer);
      afut_error_free (rc->error);
      afut_future_unref (f);
      AFUT_FREE (rc);
      return;
    }
  switch (rc->op)
    {
    case AFUT__REMOTE_RESOLVE:
      if (rc->value_type == AFUT_VALUE_POINTER)
        afut_future_resolve_pointer (f, rc->pointer, rc->destroy);
      else if (rc->value_type == AFUT_VALUE_INT)
        afut_future_resolve_int (f, rc->v_int);
      else
        afut_future_resolve (f);
      break;
    case AFUT__REMOTE_FAIL:
      afut_future_fail (f, rc->error);
      break;
    case AFUT__REMOTE_CANCEL:
      afut_future_cancel (f, rc->message);
      AFUT_FREE (rc->message);
      break;
    }
  afut_future_unref (f);
  AFUT_FREE (rc);
}

/* Lets go of a completion that will not run: its value, error, and the
 * reference it carries. */
static void
afut__remote_drop (void *data)
{
  AfutRemoteCompletion *rc = (AfutRemoteCompletion *) data;
  if (rc->destroy != NULL)
    rc->destroy (rc->pointer);
  afut_error_free (rc->error);
  AFUT_FREE (rc->message);
  afut_future_unref (rc->future);
  AFUT_FREE (rc);
}

static bool
afut__remote_post (AfutRemoteCompletion *rc, const char *func)
{
  if (afut__loop_post (rc->future->loop, afut__remote_complete, rc))
    return true;
  /* The loop is closed: the reference is dropped here, as a closed
   * loop's futures allow on any thread (afut__loop_close). */
  afut__log (AFUT_LOG_CRITICAL, "%s: the loop is closed", func);
  afut__remote_drop (rc);
  return false;
}

static AfutRemoteCompletion *
afut__remote_new (AfutFuture *future, AfutRemoteOp op)
{
  AfutRemoteCompletion *rc
    = (AfutRemoteCompletion *) afut__alloc (sizeof *rc);
  memset (rc, 0, sizeof *rc);
  rc->future = future;
  rc->op = op;
  rc->value_type = AFUT_VALUE_NONE;
  return rc;
}

bool
afut_future_resolve_threadsafe (AfutFuture *future)
{
  AFUT__RETURN_VAL_IF_FAIL (future != NULL, false);
  return afut__remote_post (afut__remote_new (future, AFUT__REMOTE_RESOLVE),
                            __func__);
}

bool
afut_future_resolve_pointer_threadsafe (AfutFuture *future, void *pointer,
                                        AfutDestroyNotify destroy)
{
  AfutRemoteCompletion *rc;
  if (future == NULL)
    {
      afut__log (AFUT_LOG_CRITICAL, "%s: assertion 'future != NULL' failed",
                 __func__);
      if (destroy != NULL)
        destroy (pointer);
      return false;
    }
  rc = afut__remote_new (future, AFUT__REMOTE_RESOLVE);
  rc->value_type = AFUT_VALUE_POINTER;
  rc->pointer = pointer;
  rc->destroy = destroy;
  return afut__remote_post (rc, __func__);
}

bool
afut_future_resolve_int_threadsafe (AfutFuture *future, int64_t value)
{
  AfutRemoteCompletion *rc;
  AFUT__RETURN_VAL_IF_FAIL (future != NULL, false);
  rc = afut__remote_new (future, AFUT__REMOTE_RESOLVE);
  rc->value_type = AFUT_VALUE_INT;
  rc->v_int = value;
  return afut__remote_post (rc, __func__);
}

bool
afut_future_fail_threadsafe (AfutFuture *future, AfutError *error)
{
  AfutRemoteCompletion *rc;
  if (future == NULL || error == NULL)
    {
      afut__log (AFUT_LOG_CRITICAL, "%s: assertion '%s' failed", __func__,
                 future == NULL ? "future != NULL" : "error != NULL");
      afut_error_free (error);
      return false;
    }
  rc = afut__remote_new (future, AFUT__REMOTE_FAIL);
  rc->error = error;
  return afut__remote_post (rc, __func__);
}

bool
afut_future_cancel_threadsafe (AfutFuture *future, const char *message)
{
  AfutRemoteCompletion *rc;
  AFUT__RETURN_VAL_IF_FAIL (future != NULL, false);
  rc = afut__remote_new (future, AFUT__REMOTE_CANCEL);
  rc->message = message != NULL ? afut__strdup (message) : NULL;
  return afut__remote_post (rc, __func__);
}

static bool
afut__future_check_value (AfutFuture *future, AfutValueType type,
                          const char *func)
{
  if (AFUT__UNLIKELY (future->state != AFUT_FUTURE_DONE))
    {
      if (future->state == AFUT_FUTURE_PENDING)
        afut__log (AFUT_LOG_CRITICAL,
                   "%s: invalid state: the future is pending (result is not "
                   "set)",
                   func);
      else
        afut__log (AFUT_LOG_CRITICAL,
                   "%s: the future has no value: it is %s (%s); check "
                   "afut_future_get_error() first",
                   func,
                   afut_future_state_to_string (
                     (AfutFutureState) future->state),
                   future->u.error->message);
      return false;
    }
  if (AFUT__UNLIKELY (future->value_type != type))
    {
      static const char *const names[] = { "no", "a pointer", "an int",
                                           "a double" };
      afut__log (AFUT_LOG_CRITICAL, "%s: the future holds %s value", func,
                 names[future->value_type & 3]);
      return false;
    }
  return true;
}

AfutValueType
afut_future_get_value_type (AfutFuture *future)
{
  AFUT__RETURN_VAL_IF_FAIL (future != NULL, AFUT_VALUE_NONE);
  AFUT__RETURN_IF_WRONG_THREAD (future->loop, NULL, AFUT_VALUE_NONE);
  if (future->state != AFUT_FUTURE_DONE)
    {
      afut__future_check_value (future, AFUT_VALUE_NONE, __func__);
      return AFUT_VALUE_NONE;
    }
  return (AfutValueType) future->value_type;
}

void *
afut_future_get_pointer (AfutFuture *future)
{
  AFUT__RETURN_VAL_IF_FAIL (future != NULL, NULL);
  AFUT__RETURN_IF_WRONG_THREAD (future->loop, NULL, NULL);
  if (!afut__future_check_value (future, AFUT_VALUE_POINTER, __func__))
    return NULL;
  return future->u.value.v.pointer;
}

int64_t
afut_future_get_int (AfutFuture *future)
{
  AFUT__RETURN_VAL_IF_FAIL (future != NULL, 0);
  AFUT__RETURN_IF_WRONG_THREAD (future->loop, NULL, 0);
  if (!afut__future_check_value (future, AFUT_VALUE_INT, __func__))
    return 0;
  return future->u.value.v.v_int;
}

double
afut_future_get_double (AfutFuture *future)
{
  AFUT__RETURN_VAL_IF_FAIL (future != NULL, 0.0);
  AFUT__RETURN_IF_WRONG_THREAD (future->loop, NULL, 0.0);
  if (!afut__future_check_value (future, AFUT_VALUE_DOUBLE, __func__))
    return 0.0;
  return future->u.value.v.v_double;
}

const AfutError *
afut_future_get_error (AfutFuture *future)
{
  AFUT__RETURN_VAL_IF_FAIL (future != NULL, NULL);
  AFUT__RETURN_IF_WRONG_THREAD (future->loop, NULL, NULL);
  if (future->state == AFUT_FUTURE_PENDING)
    {
      afut__log (AFUT_LOG_CRITICAL,
                 "%s: invalid state: the future is pending (exception is not "
                 "set)",
                 __func__);
      return NULL;
    }
  if (future->state == AFUT_FUTURE_DONE)
    return NULL;
  future->flags |= AFUT__FUTURE_ERROR_RETRIEVED;
  return future->u.error;
}

/* A callback added to a done future gets its own queue entry now, behind
 * whatever is already queued, as asyncio's call_soon at add time. */
static void
afut__late_callback_run (void *data)
{
  AfutLateCallback *late = (AfutLateCallback *) data;
  late->func (late->future, late->data);
  afut_future_unref (late->future);
  AFUT_FREE (late);
}

static void afut__yield_fire (void *data);

void
afut_future_add_done_callback (AfutFuture *future, AfutFutureCallback callback,
                               void *data)
{
  AFUT__RETURN_IF_FAIL (future != NULL);
  AFUT__RETURN_IF_FAIL (callback != NULL);
  AFUT__RETURN_IF_WRONG_THREAD (future->loop, NULL, );
  if (future->loop->closed)
    {
      afut__log (AFUT_LOG_CRITICAL,
                 "%s: the loop is closed: the callback would never run",
                 __func__);
      return;
    }

  if (future->state != AFUT_FUTURE_PENDING)
    {
      AfutLateCallback *late = (AfutLateCallback *) afut__alloc (sizeof *late);
      late->future = afut_future_ref (future);
      late->func = callback;
      late->data = data;
      afut__ready_push (future->loop, afut__late_callback_run, late);
      return;
    }

  afut__yield_arm (future);

  if (future->callback == NULL)
    {
      future->callback = callback;
      future->callback_data = data;
    }
  else if (future->callback != afut__callbacks_array_marker)
    {
      AfutCallbackArray *a = (AfutCallbackArray *) afut__alloc (
        sizeof (AfutCallbackArray) + 4 * sizeof (AfutCallbackSlot));
      AfutCallbackSlot *slots = afut__callback_slots (a);
      a->len = 2;
      a->cap = 4;
      a->dead = 0;
      a->first = 0;
      slots[0].func = future->callback;
      slots[0].data = future->callback_data;
      slots[1].func = callback;
      slots[1].data = data;
      future->callback = afut__callbacks_array_marker;
      future->callback_data = a;
    }
  else
    {
      AfutCallbackArray *a = (AfutCallbackArray *) future->callback_data;
      if (a->len == a->cap && a->dead * 4 >= a->len)
        afut__callbacks_compact (a);
      if (a->len == a->cap)
        {
          a->cap *= 2;
          a = (AfutCallbackArray *) afut__realloc (
            a, sizeof (AfutCallbackArray) + a->cap * sizeof (AfutCallbackSlot));
          future->callback_data = a;
        }
      afut__callback_slots (a)[a->len].func = callback;
      afut__callback_slots (a)[a->len].data = data;
      a->len++;
    }
}

void
afut_future_add_done_callback_full (AfutFuture *future,
                                    AfutFutureCallback callback, void *data,
                                    AfutDestroyNotify destroy)
{
  AfutFullCallback *full;
  AFUT__RETURN_IF_FAIL (future != NULL);
  AFUT__RETURN_IF_FAIL (callback != NULL);
  AFUT__RETURN_IF_WRONG_THREAD (future->loop, NULL, );
  if (future->loop->closed)
    {
      afut__log (AFUT_LOG_CRITICAL,
                 "%s: the loop is closed: the callback would never run",
                 __func__);
      if (destroy != NULL)
        destroy (data);
      return;
    }
  full = (AfutFullCallback *) afut__alloc (sizeof *full);
  full->func = callback;
  full->data = data;
  full->destroy = destroy;
  full->next = NULL;
  afut_future_add_done_callback (future, afut__full_callback_run, full);
}

static bool
afut__full_callback_matches (void *slot_data, AfutFutureCallback callback,
                             void *data)
{
  AfutFullCallback *full = (AfutFullCallback *) slot_data;
  return full->func == callback && full->data == data;
}

size_t
afut_future_remove_done_callback (AfutFuture *future,
                                  AfutFutureCallback callback, void *data)
{
  size_t removed = 0;
  AfutFullCallback *discarded = NULL, **tail = &discarded;
  AFUT__RETURN_VAL_IF_FAIL (future != NULL, 0);
  AFUT__RETURN_VAL_IF_FAIL (callback != NULL, 0);
  AFUT__RETURN_IF_WRONG_THREAD (future->loop, NULL, 0);
  if (future->state != AFUT_FUTURE_PENDING)
    return 0;
  if (future->callback == afut__callbacks_array_marker)
    {
      AfutCallbackArray *a = (AfutCallbackArray *) future->callback_data;
      AfutCallbackSlot *slots = afut__callback_slots (a);
      size_t i;
      for (i = a->first; i < a->len; i++)
        if (slots[i].func == callback && slots[i].data == data)
          {
            slots[i].func = NULL;
            removed++;
          }
        else if (slots[i].func == afut__full_callback_run
                 && afut__full_callback_matches (slots[i].data, callback,
                                                 data))
          {
            *tail = (AfutFullCallback *) slots[i].data;
            tail = (AfutFullCallback **) &(*tail)->next;
            slots[i].func = NULL;
            removed++;
          }
      a->dead += removed;
      afut__callbacks_compact (a);
      if (a->len == 0)
        afut__future_drop_callbacks (future);
    }
  else if (future->callback == callback && future->callback_data == data)
    {
      future->callback = NULL;
      future->callback_data = NULL;
      removed = 1;
    }
  else if (future->callback == afut__full_callback_run
           && afut__full_callback_matches (future->callback_data, callback,
                                           data))
    {
      discarded = (AfutFullCallback *) future->callback_data;
      future->callback = NULL;
      future->callback_data = NULL;
      removed = 1;
    }
  afut__full_callbacks_discard (discarded);
  return removed;
}

/* ---- tasks ---- */

static void
afut__task_unlink (AfutTask *task)
{
  AfutLoop *loop = task->future.loop;
  AfutTask *last = loop->tasks[--loop->n_tasks];
  last->list_index = task->list_index;
  loop->tasks[task->list_index] = last;
}

/* Links a task into its loop's list (which holds a reference until it
 * completes). */
static void
afut__task_link (AfutTask *task)
{
  AfutLoop *loop = task->future.loop;
  task->task_flags &= (uint16_t) ~AFUT__TASK_LAZY;
  if (loop->n_tasks == loop->tasks_cap)
    {
      loop->tasks_cap = loop->tasks_cap ? loop->tasks_cap * 2 : 16;
      loop->tasks = (AfutTask **) afut__realloc (
        loop->tasks, loop->tasks_cap * sizeof (AfutTask *));
    }
  task->list_index = (uint32_t) loop->n_tasks;
  loop->tasks[loop->n_tasks++] = task;
  task->future.ref_count++;
}

/* The task's name; a default "Task-<id>" is formatted on first use and
 * kept, so the pointer lives as long as the task. */
static const char *
afut__task_name (AfutTask *task)
{
  if (task->name == NULL)
    {
      char buf[32];
      snprintf (buf, sizeof buf, "Task-%lu", (unsigned long) task->id);
      task->name = afut__strdup (buf);
      task->task_flags |= AFUT__TASK_NAME_OWNED;
    }
  return task->name;
}

static AfutFuture *
afut__task_create (AfutLoop *loop, AfutTaskFunc func, size_t struct_size,
                   const void *init, const char *name,
                   AfutTaskFinalize finalize, bool lazy, const char *caller)
{
  AfutTask *task;
  AFUT__RETURN_VAL_IF_FAIL_IN (caller, func != NULL, NULL);
  AFUT__RETURN_VAL_IF_FAIL_IN (caller, struct_size >= sizeof (AfutTask), NULL);
  loop = afut__resolve_loop (loop, caller);
  if (loop == NULL)
    return NULL;

  task = (AfutTask *) afut__alloc (struct_size);
  if (init != NULL)
    memcpy (task, init, struct_size);
  else
    memset (task, 0, struct_size);
  memset (task, 0, sizeof (AfutTask));
  afut__future_init (&task->future, loop, AFUT__KIND_TASK);
  task->func = func;
  task->finalize = finalize;
  task->id = ++loop->task_counter;
  /* "Task-<id>" is made when first asked for (afut__task_name): most
   * tasks never are, and the string would cost a malloc and 32 bytes. */
  task->name = name != NULL ? afut__strdup (name) : NULL;
  task->task_flags = AFUT__TASK_NAME_OWNED;
  if (lazy)
    task->task_flags |= AFUT__TASK_LAZY;
  else
    {
      afut__task_link (task);
      afut__task_schedule_step (task);
    }
  return &task->future;
}

AfutFuture *
afut_task_new (AfutLoop *loop, AfutTaskFunc func, size_t struct_size,
               const void *init, const char *name, AfutTaskFinalize finalize)
{
  return afut__task_create (loop, func, struct_size, init, name, finalize,
                            false, __func__);
}

AfutFuture *
afut_coro_new (AfutLoop *loop, AfutTaskFunc func, size_t struct_size,
               const void *init, const char *name, AfutTaskFinalize finalize)
{
  return afut__task_create (loop, func, struct_size, init, name, finalize,
                            true, __func__);
}

static inline bool
afut__is_lazy (AfutFuture *future)
{
  return future->kind == AFUT__KIND_TASK
         && (((AfutTask *) future)->task_flags & AFUT__TASK_LAZY);
}

AfutFuture *
afut_task_start (AfutFuture *future)
{
  AFUT__RETURN_VAL_IF_FAIL (future != NULL, NULL);
  AFUT__RETURN_IF_WRONG_THREAD (future->loop, NULL, NULL);
  if (afut__is_lazy (future) && future->state == AFUT_FUTURE_PENDING)
    {
      if (future->loop->closed)
        afut__log (AFUT_LOG_CRITICAL, "%s: the loop is closed", __func__);
      else
        {
          afut__task_link ((AfutTask *) future);
          afut__task_schedule_step ((AfutTask *) future);
        }
    }
  return future;
}

static void
afut__task_finalize (AfutTask *task)
{
  if (task->task_flags & AFUT__TASK_LAZY)
    afut__log (AFUT_LOG_WARNING, "coroutine '%s' was never awaited",
               afut__task_name (task));
  if (task->finalize != NULL)
    task->finalize (task);
  afut_future_unref (afut__task_take_caught_group (task));
  afut_future_unref (task->awaiting);
  afut_error_free (task->raised);
  afut_error_free (task->caught);
  if (!(task->task_flags & AFUT__TASK_AWAITED_INLINE))
    AFUT_FREE (task->c.cancel_message);
  if (task->task_flags & AFUT__TASK_NAME_OWNED)
    AFUT_FREE ((char *) task->name);
}

AfutTask *
afut_future_get_task (AfutFuture *future)
{
  AFUT__RETURN_VAL_IF_FAIL (future != NULL, NULL);
  AFUT__RETURN_VAL_IF_FAIL (future->kind == AFUT__KIND_TASK, NULL);
  AFUT__RETURN_IF_WRONG_THREAD (future->loop, NULL, NULL);
  return (AfutTask *) future;
}

void
afut_task_set_finalize (AfutTask *task, AfutTaskFinalize finalize)
{
  AFUT__RETURN_IF_FAIL (task != NULL);
  AFUT__RETURN_IF_FAIL (task->future.kind == AFUT__KIND_TASK);
  AFUT__RETURN_IF_WRONG_THREAD (task->future.loop, NULL, );
  /* A fiber's own finalize releases its stack and user data. */
  AFUT__RETURN_IF_FAIL (task->func != afut__fiber_step);
  task->finalize = finalize;
}

const char *
afut_task_get_name (AfutTask *task)
{
  AFUT__RETURN_VAL_IF_FAIL (task != NULL, NULL);
  AFUT__RETURN_IF_WRONG_THREAD (task->future.loop, NULL, NULL);
  return afut__task_name (task);
}

void
afut_task_set_name (AfutTask *task, const char *name)
{
  AFUT__RETURN_IF_FAIL (task != NULL);
  AFUT__RETURN_IF_FAIL (name != NULL);
  AFUT__RETURN_IF_WRONG_THREAD (task->future.loop, NULL, );
  if (task->task_flags & AFUT__TASK_NAME_OWNED)
    AFUT_FREE ((char *) task->name);
  task->name = afut__strdup (name);
  task->task_flags |= AFUT__TASK_NAME_OWNED;
}

AfutTask *
afut_task_get_current (AfutLoop *loop)
{
  if (loop != NULL)
    AFUT__RETURN_IF_WRONG_THREAD (loop, NULL, NULL);
  if (loop == NULL)
    loop = afut__running_loop;
  /* An inline frame's step runs as part of its root task.  A plain
   * callback of a nested main loop inside a step (a GLib source's) is
   * outside any task, as in asyncio: it runs deeper than the step. */
  return loop != NULL && loop->current_task != NULL
             && AFUT_NESTING_DEPTH () == loop->step_depth
           ? afut__task_root (loop->current_task)
           : NULL;
}

AfutFuture *
afut_task_awaited (AfutTask *task)
{
  AFUT__RETURN_VAL_IF_FAIL (task != NULL, NULL);
  AFUT__RETURN_IF_WRONG_THREAD (task->future.loop, NULL, NULL);
  return task->awaiting;
}

const AfutError *
afut_task_caught (AfutTask *task)
{
  AFUT__RETURN_VAL_IF_FAIL (task != NULL, NULL);
  AFUT__RETURN_IF_WRONG_THREAD (task->future.loop, NULL, NULL);
  return task->caught;
}

void
afut_task_clear_caught (AfutTask *task)
{
  AFUT__RETURN_IF_FAIL (task != NULL);
  AFUT__RETURN_IF_FAIL (task->future.kind == AFUT__KIND_TASK);
  afut_future_unref (afut__task_take_caught_group (task));
  afut_error_free (task->caught);
  task->caught = NULL;
}

/* Ends the task: value or error already stored by the caller. */
static void
afut__task_done (AfutTask *task)
{
  AfutFuture *awaiting = task->awaiting;
  task->awaiting = NULL;
  afut_error_free (task->raised);
  task->raised = NULL;
  afut_error_free (task->caught);
  task->caught = NULL;
  if (task->task_flags & AFUT__TASK_AWAITED_INLINE)
    task->c.root = NULL; /* no longer a frame of it */
  else
    {
      AFUT_FREE (task->c.cancel_message);
      task->c.cancel_message = NULL;
    }
  task->task_flags &= (uint16_t) ~(AFUT__TASK_MUST_CANCEL | AFUT__TASK_WAITING);
  afut__task_unlink (task);
  afut_future_unref (awaiting);
  afut_future_unref (&task->future); /* the loop's list reference */
}

/* A task ends through one of these; while its step runs the caller holds
 * a reference (the step entry's), so the unref in afut__task_done cannot
 * free it. */
static bool
afut__task_check_running (AfutTask *task, const char *func)
{
  if (AFUT__LIKELY (task->task_flags & AFUT__TASK_RUNNING))
    return true;
  afut__log (AFUT_LOG_CRITICAL,
             "%s: task '%s' is not running: AFUT_* macros belong in the "
             "task's own step function, called by the loop",
             func, afut__task_name (task));
  return false;
}

/* Whether a return may complete the task now; not while its scopes
 * unwind (the step that would return never runs then). */
static bool
afut__task_may_return (AfutTask *task, const char *func)
{
  return afut__task_check_running (task, func)
         && task->future.state == AFUT_FUTURE_PENDING
         && !(task->task_flags & AFUT__TASK_UNWINDING);
}

void
afut__task_return_none (AfutTask *task)
{
  AFUT__RETURN_IF_FAIL (task != NULL);
  if (!afut__task_may_return (task, __func__))
    return;
  task->future.value_type = AFUT_VALUE_NONE;
  afut__task_finish (task, NULL, NULL);
}

void
afut__task_return_pointer (AfutTask *task, void *pointer,
                           AfutDestroyNotify destroy)
{
  if (task == NULL || !afut__task_may_return (task, __func__))
    {
      if (task == NULL)
        afut__log (AFUT_LOG_CRITICAL, "%s: assertion 'task != NULL' failed",
                   __func__);
      if (destroy != NULL)
        destroy (pointer);
      return;
    }
  afut_future_unref (afut__task_take_caught_group (task));
  task->future.u.value.v.pointer = pointer;
  task->future.u.value.destroy = destroy;
  task->future.value_type = AFUT_VALUE_POINTER;
  afut__task_finish (task, NULL, NULL);
}

void
afut__task_return_int (AfutTask *task, int64_t value)
{
  AFUT__RETURN_IF_FAIL (task != NULL);
  if (!afut__task_may_return (task, __func__))
    return;
  task->future.u.value.v.v_int = value;
  task->future.value_type = AFUT_VALUE_INT;
  afut__task_finish (task, NULL, NULL);
}

void
afut__task_return_double (AfutTask *task, double value)
{
  AFUT__RETURN_IF_FAIL (task != NULL);
  if (!afut__task_may_return (task, __func__))
    return;
  task->future.u.value.v.v_double = value;
  task->future.value_type = AFUT_VALUE_DOUBLE;
  afut__task_finish (task, NULL, NULL);
}

/* AFUT_THROW, and the raising of an error taken from @group's (transfer
 * none) group failure, so that the task hands its sub-errors on. */
static void
afut__task_throw_from (AfutTask *task, AfutError *error, AfutFuture *group)
{
  if (task == NULL)
    {
      afut__log (AFUT_LOG_CRITICAL, "AFUT_THROW: assertion 'task != NULL' "
                 "failed");
      afut_error_free (error);
      return;
    }
  if (!afut__task_may_return (task, "AFUT_THROW"))
    {
      afut_error_free (error);
      return;
    }
  if (error == NULL)
    {
      /* Still end the task, or it would hang. */
      afut__log (AFUT_LOG_CRITICAL, "AFUT_THROW: assertion 'error != NULL' "
                 "failed");
      error = afut_error_new_literal (AFUT_ERROR, AFUT_ERROR_INVALID_ARGUMENT,
                                      "AFUT_THROW given a NULL error");
    }
  afut__task_finish (task, error, group);
}

void
afut__task_throw (AfutTask *task, AfutError *error)
{
  afut__task_throw_from (task, error, NULL);
}

void
afut__task_reraise (AfutTask *task)
{
  AfutError *e;
  AFUT__RETURN_IF_FAIL (task != NULL);
  if (task->caught == NULL)
    {
      afut__log (AFUT_LOG_CRITICAL,
                 "AFUT_RERAISE: task '%s' caught no error; it ends with an "
                 "invalid-state error",
                 afut__task_name (task));
      e = afut_error_new_literal (AFUT_ERROR, AFUT_ERROR_INVALID_STATE,
                                  "AFUT_RERAISE with no caught error");
    }
  else
    {
      AfutFuture *group = afut__task_take_caught_group (task);
      e = task->caught;
      task->caught = NULL;
      afut__task_throw_from (task, e, group);
      afut_future_unref (group);
      return;
    }
  afut__task_throw (task, e);
}

void
afut__task_bad_resume (AfutTask *task)
{
  AFUT__RETURN_IF_FAIL (task != NULL);
  /* AFUT_BEGIN already reported a step called from outside the loop. */
  if (!(task->task_flags & AFUT__TASK_RUNNING))
    return;
  afut__log (AFUT_LOG_CRITICAL,
             "task '%s' resumed at unknown point %d: is there an await "
             "inside a switch?",
             afut__task_name (task), task->resume_point);
  afut__task_throw (task, afut_error_new (AFUT_ERROR, AFUT_ERROR_INVALID_STATE,
                                          "bad resume point %d",
                                          task->resume_point));
}

int
afut__task_begin (AfutTask *task)
{
  AFUT__RETURN_VAL_IF_FAIL (task != NULL, -1);
  if (!afut__task_check_running (task, "AFUT_BEGIN"))
    return -1;
  return task->resume_point;
}

static void
afut__task_set_raised_from (AfutTask *task, AfutFuture *future)
{
  afut_error_free (task->raised);
  task->raised = NULL;
  if (future != NULL && future->state != AFUT_FUTURE_DONE)
    {
      future->flags |= AFUT__FUTURE_ERROR_RETRIEVED;
      task->raised = afut_error_copy (future->u.error);
    }
}

/* @future has just completed.  If its only done callback is a task's
 * wakeup, that task is to go on now, inside this call, as Python's does
 * when what it awaits returns into it: the callback is taken off (the
 * dispatch already queued then finds none to run) and the task returned,
 * no longer waiting.  NULL otherwise. */
static AfutTask *
afut__future_take_waiter (AfutFuture *future)
{
  AfutTask *waiter = (AfutTask *) future->callback_data;
  if (future->callback != afut__task_wakeup)
    return NULL;
  future->callback = NULL;
  future->callback_data = NULL;
  if (!(waiter->task_flags & AFUT__TASK_WAITING) || waiter->awaiting != future)
    return NULL;
  waiter->task_flags &= (uint16_t) ~AFUT__TASK_WAITING;
  return waiter;
}

static void
afut__future_hand_over (AfutFuture *future, bool resumed)
{
  AfutTask *waiter = afut__future_take_waiter (future);
  if (waiter == NULL)
    return;
  waiter->future.ref_count++;
  afut__task_run_step (waiter, resumed);
  afut_future_unref (&waiter->future);
}

/* One step of @task (see afut__task_run_step).  Returns the task to
 * step next, at once: a coroutine whose first step an await of @task
 * deferred, or the task awaiting @task, an inline frame that has just
 * completed; NULL if none. */
static AFUT__ALWAYS_INLINE AfutTask *
afut__task_run_one (AfutTask *task, bool resumed)
{
  AfutLoop *loop = task->future.loop;
  AfutTask *prev_current, *root;

  if (task->future.state != AFUT_FUTURE_PENDING)
    return NULL;
  if (AFUT__UNLIKELY (task->task_flags & AFUT__TASK_RUNNING))
    {
      /* Its step is on the C stack, below a nested main loop that
       * dispatched this: it must not re-enter.  It steps once that step
       * returns. */
      afut__task_defer_step (task);
      return NULL;
    }

  if (task->task_flags & AFUT__TASK_UNWINDING)
    {
      afut__task_resume_unwind (task);
      goto ended;
    }

  if (!(task->task_flags & AFUT__TASK_STARTED))
    {
      task->task_flags |= AFUT__TASK_STARTED;
      if (task->task_flags & AFUT__TASK_MUST_CANCEL)
        {
          /* Cancelled before it ever ran: the body never starts. */
          afut__future_complete_error (
            &task->future, afut__cancelled_error (task->c.cancel_message));
          afut__task_done (task);
          return NULL;
        }
    }
  else
    afut__task_set_raised_from (task, task->awaiting);

  root = afut__task_root (task);
  if (resumed && (root->task_flags & AFUT__TASK_MUST_CANCEL))
    {
      root->task_flags &= (uint16_t) ~AFUT__TASK_MUST_CANCEL;
      if (afut__group_absorbs_cancel (task->awaiting))
        ; /* the group's outcome stands */
      else if (!afut_error_is_cancelled (task->raised))
        {
          afut_error_free (task->raised);
          task->raised = afut__cancelled_error (root->c.cancel_message);
        }
    }

  prev_current = loop->current_task;
  loop->current_task = task;
  task->task_flags |= AFUT__TASK_RUNNING;
  task->func (task);
  task->task_flags &= (uint16_t) ~AFUT__TASK_RUNNING;
  loop->current_task = prev_current;
  if (AFUT__UNLIKELY (loop->n_deferred > 0))
    afut__task_replay_deferred (task);

  /* A plain `return;` out of the body ends the task as Python's `return`
   * does: with no value. */
  if (task->future.state == AFUT_FUTURE_PENDING
      && !(task->task_flags & (AFUT__TASK_WAITING | AFUT__TASK_SCHEDULED)))
    {
      task->task_flags |= AFUT__TASK_RUNNING;
      afut__task_return_none (task);
      task->task_flags &= (uint16_t) ~AFUT__TASK_RUNNING;
    }

  if (loop->inline_pending != NULL)
    {
      /* The step awaited a coroutine too deep to start inside it. */
      AfutTask *child = loop->inline_pending;
      loop->inline_pending = NULL;
      return child;
    }

ended:
  /* `await coro()` in Python continues the awaiter the moment the
   * coroutine returns: so does a coroutine started by an await. */
  if (task->future.state != AFUT_FUTURE_PENDING
      && (task->task_flags & AFUT__TASK_AWAITED_INLINE))
    return afut__future_take_waiter (&task->future);
  return NULL;
}

/* The scheduler's entry into a task: asyncio's Task.__step.  @resumed:
 * the step resumes a suspension (ready queue, or the awaited future's
 * callback), where a cancel pending on the task is delivered.  Entering
 * an inline frame and coming back from one are not suspensions: there,
 * as in Python, the body just goes on.
 *
 * A chain of `await coro()` is stepped in this loop, not by recursion:
 * the awaiter of a frame that completes goes on here, and so does a
 * coroutine started deeper than AFUT__INLINE_DEPTH_MAX, so that the C
 * stack stays bounded however long the chain.  The caller holds a
 * reference on @task; the loop holds one on each task it goes on to. */
static AFUT__NOINLINE void
afut__task_run_chain (AfutTask *task)
{
  AfutTask *held = NULL;
  do
    {
      task->future.ref_count++;
      if (held != NULL)
        afut_future_unref (&held->future);
      held = task;
      task = afut__task_run_one (task, false);
    }
  while (task != NULL);
  afut_future_unref (&held->future);
}

static void
afut__task_run_step (AfutTask *task, bool resumed)
{
  AfutTask *next = afut__task_run_one (task, resumed);
  if (AFUT__UNLIKELY (next != NULL))
    afut__task_run_chain (next);
}

/* A step deferred while the task's step was on the C stack: it runs
 * from the ready queue, once. */
static void
afut__task_deferred_step (void *data)
{
  AfutTask *task = (AfutTask *) data;
  afut__task_run_step (task, true);
  afut_future_unref (&task->future); /* the deferral's reference */
}

static void
afut__task_defer_step (AfutTask *task)
{
  AfutLoop *loop = task->future.loop;
  size_t i;
  for (i = 0; i < loop->n_deferred; i++)
    if (loop->deferred[i] == task)
      return; /* one step covers every wakeup */
  if (loop->n_deferred == loop->deferred_cap)
    {
      loop->deferred_cap = loop->deferred_cap ? loop->deferred_cap * 2 : 4;
      loop->deferred = (AfutTask **) afut__realloc (
        loop->deferred, loop->deferred_cap * sizeof (AfutTask *));
    }
  task->future.ref_count++;
  loop->deferred[loop->n_deferred++] = task;
}

static void
afut__task_replay_deferred (AfutTask *task)
{
  AfutLoop *loop = task->future.loop;
  size_t i;
  for (i = 0; i < loop->n_deferred; i++)
    if (loop->deferred[i] == task)
      {
        loop->deferred[i] = loop->deferred[--loop->n_deferred];
        afut__ready_push (loop, afut__task_deferred_step, task);
        return;
      }
}

static void
afut__task_step (void *data)
{
  AfutTask *task = (AfutTask *) data;
  task->task_flags &= (uint16_t) ~AFUT__TASK_SCHEDULED;
  afut__task_run_step (task, true);
  afut_future_unref (&task->future); /* the entry's reference */
}

/* @future, which @task waits on, is done: step the task. */
static void
afut__task_continue (AfutTask *task, AfutFuture *future, bool resumed)
{
  if (!(task->task_flags & AFUT__TASK_WAITING) || task->awaiting != future)
    return;
  task->task_flags &= (uint16_t) ~AFUT__TASK_WAITING;
  task->future.ref_count++;
  afut__task_run_step (task, resumed);
  afut_future_unref (&task->future);
}

static void
afut__task_wakeup (AfutFuture *future, void *data)
{
  afut__task_continue ((AfutTask *) data, future, true);
}

static void
afut__task_schedule_step (AfutTask *task)
{
  task->task_flags |= AFUT__TASK_SCHEDULED;
  task->future.ref_count++;
  afut__ready_push (task->future.loop, afut__task_step, task);
}

int
afut__task_await (AfutTask *task, AfutFuture *future, int line)
{
  AfutError *misuse = NULL;

  if (task == NULL || !afut__task_check_running (task, "AFUT_AWAIT"))
    {
      if (task == NULL)
        afut__log (AFUT_LOG_CRITICAL, "AFUT_AWAIT: assertion 'task != NULL' "
                   "failed");
      afut_future_unref (future);
      return 1;
    }

  afut_future_unref (task->awaiting);
  task->awaiting = NULL;
  task->resume_point = line;

  /* Misuses that asyncio raises inside the task become errors raised at
   * this await. */
  if (future == NULL)
    {
      afut__log (AFUT_LOG_CRITICAL,
                 "AFUT_AWAIT: task '%s' awaited NULL (line %d)", afut__task_name (task),
                 line);
      misuse = afut_error_new (AFUT_ERROR, AFUT_ERROR_INVALID_ARGUMENT,
                               "awaited NULL at line %d", line);
    }
  else if (future == &task->future)
    misuse = afut_error_new_literal (AFUT_ERROR, AFUT_ERROR_INVALID_STATE,
                                     "Task cannot await on itself");
  else if (future->loop != task->future.loop)
    misuse = afut_error_new_literal (
      AFUT_ERROR, AFUT_ERROR_INVALID_STATE,
      "awaited a future attached to a different loop");
  if (misuse != NULL)
    {
      afut_future_unref (future);
      afut_error_free (task->raised);
      task->raised = misuse;
      return 0;
    }

  task->awaiting = future;
  if (afut__is_lazy (future) && future->state == AFUT_FUTURE_PENDING)
    {
      /* `await coro()`: the coroutine's first step runs right here. */
      AfutTask *child = (AfutTask *) future;
      AfutLoop *loop = task->future.loop;
      child->task_flags |= AFUT__TASK_AWAITED_INLINE;
      /* A lazy coroutine has no cancel message. */
      child->c.root = afut__task_root (task);
      afut__task_link (child);
      if (AFUT__UNLIKELY (loop->inline_depth >= AFUT__INLINE_DEPTH_MAX))
        {
          /* So deep a chain of such awaits that the C stack would grow
           * with it: this step returns instead, as at a suspension, and
           * the step loop of the frame below runs the coroutine now,
           * then enters this step again at the await, with no loop turn
           * between (afut__task_run_step). */
          afut_future_add_done_callback (future, afut__task_wakeup, task);
          task->task_flags |= AFUT__TASK_WAITING;
          loop->inline_pending = child;
          return 1;
        }
      loop->inline_depth++;
      child->future.ref_count++;
      afut__task_run_step (child, false);
      afut_future_unref (&child->future);
      loop->inline_depth--;
    }
  if (future->state != AFUT_FUTURE_PENDING)
    {
      /* Already done: continue at once, no loop turn. */
      afut__task_set_raised_from (task, future);
      return 0;
    }

  if (future->kind == AFUT__KIND_YIELD
      && !(future->flags & AFUT__FUTURE_YIELD_ARMED))
    {
      /* sleep(0) awaited directly: a bare yield, one loop turn. */
      future->state = AFUT_FUTURE_DONE;
      future->value_type = AFUT_VALUE_NONE;
      afut__task_schedule_step (task);
      return 1;
    }

  afut_future_add_done_callback (future, afut__task_wakeup, task);
  task->task_flags |= AFUT__TASK_WAITING;
  /* A cancel pending on the task goes to the future it now waits on.  A
   * frame that suspended (`await coro()`) already had it, where it
   * suspended. */
  if (!afut__is_frame_of (future, task))
    afut__task_deliver_cancel (task, future);
  return 1;
}

void
afut__task_yield (AfutTask *task, int line)
{
  AFUT__RETURN_IF_FAIL (task != NULL);
  if (!afut__task_check_running (task, "AFUT_YIELD"))
    return;
  afut_future_unref (task->awaiting);
  task->awaiting = NULL;
  task->resume_point = line;
  afut__task_schedule_step (task);
}

int
afut__task_resume (AfutTask *task, int catching)
{
  AfutError *e;
  AFUT__RETURN_VAL_IF_FAIL (task != NULL, 1);
  e = task->raised;
  task->raised = NULL;
  if (catching)
    {
      afut_future_unref (afut__task_take_caught_group (task));
      afut_error_free (task->caught);
      task->caught = e;
      /* A group error raised comes from the awaited future. */
      if (afut__is_group_error (e)
          && task->future.value_type != AFUT_VALUE_POINTER)
        {
          AfutFuture *group = afut__group_owner (task->awaiting);
          task->future.u.failure.group
            = group != NULL ? afut_future_ref (group) : NULL;
        }
      return 0;
    }
  if (e == NULL)
    return 0;
  afut__task_throw_from (
    task, e, afut__is_group_error (e) ? afut__group_owner (task->awaiting)
                                      : NULL);
  return 1;
}

/* @task (a task or frame) has just started waiting on @future: a cancel
 * pending on its root task goes there, as Task.__step does with
 * _must_cancel when the coroutine yields a future. */
static void
afut__task_deliver_cancel (AfutTask *task, AfutFuture *future)
{
  AfutTask *root = afut__task_root (task);
  if ((root->task_flags & AFUT__TASK_MUST_CANCEL)
      && afut_future_cancel (future, root->c.cancel_message))
    root->task_flags &= (uint16_t) ~AFUT__TASK_MUST_CANCEL;
}

/* ---- sleep ---- */

typedef struct
{
  AfutFuture future; /* kind SLEEP, flag HANDLE */
  AfutCallback func;
  void *data;
} AfutHandle;

static void
afut__sleep_fire (void *data)
{
  AfutFuture *timer = (AfutFuture *) data;
  if (timer->state == AFUT_FUTURE_PENDING && (timer->flags & AFUT__FUTURE_HANDLE))
    {
      AfutHandle *h = (AfutHandle *) timer;
      h->func (h->data);
      /* The callback may have cancelled its own handle. */
      if (timer->state == AFUT_FUTURE_PENDING)
        afut__future_complete_value (timer, AFUT_VALUE_NONE);
    }
  else if (timer->state == AFUT_FUTURE_PENDING)
    afut__future_complete_value (timer, AFUT_VALUE_NONE);
  afut_future_unref (timer);
}

static void
afut__yield_fire (void *data)
{
  AfutFuture *future = (AfutFuture *) data;
  if (future->state == AFUT_FUTURE_PENDING)
    afut__future_complete_value (future, AFUT_VALUE_NONE);
  afut_future_unref (future);
}

/* A sleep(0) that is not awaited directly by a task resolves one loop
 * turn after it is first watched (a callback, run_until_complete). */
static void
afut__yield_arm (AfutFuture *future)
{
  if (future->kind != AFUT__KIND_YIELD
      || (future->flags & AFUT__FUTURE_YIELD_ARMED)
      || future->state != AFUT_FUTURE_PENDING)
    return;
  future->flags |= AFUT__FUTURE_YIELD_ARMED;
  future->ref_count++;
  afut__ready_push (future->loop, afut__yield_fire, future);
}

AfutFuture *
afut_loop_sleep (AfutLoop *loop, double seconds)
{
  AfutFuture *f;
  AFUT__RETURN_VAL_IF_FAIL (loop != NULL, NULL);
  AFUT__RETURN_VAL_IF_FAIL (seconds == seconds, NULL); /* not NaN */
  AFUT__RETURN_IF_WRONG_THREAD (loop, NULL, NULL);
  if (loop->closed)
    {
      afut__log (AFUT_LOG_CRITICAL, "%s: the loop is closed", __func__);
      return NULL;
    }
  f = afut__future_new_bare (loop, AFUT__KIND_YIELD);
  if (seconds <= 0)
    return f;
  f->kind = AFUT__KIND_SLEEP;
  f->ref_count++; /* the heap's */
  afut__heap_push (loop, f, afut__deadline_after (loop, seconds));
  return f;
}

AfutFuture *
afut_sleep (double seconds)
{
  AfutLoop *loop = afut__resolve_loop (NULL, __func__);
  if (loop == NULL)
    return NULL;
  return afut_loop_sleep (loop, seconds);
}

/* ---- gather ---- */

static void
afut__gather_finalize (AfutGather *gather)
{
  size_t i;
  for (i = 0; i < gather->n_items; i++)
    afut_future_unref (gather->items[i]);
}

static void
afut__gather_child_done (AfutFuture *child, void *data)
{
  AfutGather *g = (AfutGather *) data;
  AfutFuture *outer = &g->future;

  g->n_finished++;
  if (outer->state != AFUT_FUTURE_PENDING)
    {
      /* Too late to matter: the error counts as retrieved. */
      if (child->state == AFUT_FUTURE_FAILED)
        child->flags |= AFUT__FUTURE_ERROR_RETRIEVED;
    }
  else if (!g->return_exceptions && child->state != AFUT_FUTURE_DONE)
    {
      child->flags |= AFUT__FUTURE_ERROR_RETRIEVED;
      /* asyncio sets the child's error, a cancellation included, as the
       * gather's exception: a child cancelled on its own fails the gather
       * with it, and the gather is not cancelled (its awaiter gets the
       * cancellation, and is not cancel-requested).  Only a gather that
       * was cancelled itself ends cancelled (DESIGN.md rules 6 and 7). */
      if (g->cancel_requested)
        afut__future_complete_error_from (outer,
                                          afut_error_copy (child->u.error),
                                          afut__group_owner (child));
      else
        afut__future_complete_failed (outer, afut_error_copy (child->u.error),
                                      afut__group_owner (child));
    }
  else if (g->n_finished == g->n_unique)
    {
      size_t i;
      for (i = 0; i < g->n_items; i++)
        if (g->items[i]->state == AFUT_FUTURE_FAILED)
          g->items[i]->flags |= AFUT__FUTURE_ERROR_RETRIEVED;
      if (g->cancel_requested)
        {
          /* asyncio: the cancellation propagates even with
           * return_exceptions; its message is the last child's. */
          AfutFuture *last = g->items[g->n_items - 1];
          afut__future_complete_error (
            outer, afut__cancelled_error (last->state == AFUT_FUTURE_CANCELLED
                                            ? last->u.error->message
                                            : NULL));
        }
      else
        afut__future_complete_value (outer, AFUT_VALUE_NONE);
    }
  afut_future_unref (outer); /* the child's callback reference */
}

/* Takes one reference per item (the caller's). */
static AfutFuture *
afut__gather_new (AfutFuture **items, size_t n, bool return_exceptions,
                  const char *caller)
{
  AfutLoop *loop = NULL;
  AfutGather *g;
  size_t i;

  for (i = 0; i < n; i++)
    {
      if (items[i] == NULL)
        {
          afut__log (AFUT_LOG_CRITICAL,
                     "afut_gather: child %zu is NULL", i);
          loop = NULL;
          goto bad;
        }
      if (loop == NULL)
        loop = items[i]->loop;
      else if (items[i]->loop != loop)
        {
          afut__log (AFUT_LOG_CRITICAL,
                     "afut_gather: the children belong to different loops");
          goto bad;
        }
    }
  if (loop != NULL) /* the children are left alone: they are not this thread's */
    AFUT__RETURN_IF_WRONG_THREAD_IN (caller, loop, NULL, NULL);
  if (loop == NULL)
    loop = afut__resolve_loop (NULL, "afut_gather");
  else if (loop->closed)
    {
      afut__log (AFUT_LOG_CRITICAL, "afut_gather: the loop is closed");
      loop = NULL;
    }
  if (loop == NULL)
    goto bad;

  g = (AfutGather *) afut__alloc (sizeof (AfutGather)
                                  + n * sizeof (AfutFuture *));
  afut__future_init (&g->future, loop, AFUT__KIND_GATHER);
  g->n_items = n;
  g->n_unique = 0;
  g->n_finished = 0;
  g->return_exceptions = return_exceptions;
  g->cancel_requested = false;
  g->items = (AfutFuture **) (void *) (g + 1);
  memcpy (g->items, items, n * sizeof (AfutFuture *));

  if (n == 0)
    {
      afut__future_complete_value (&g->future, AFUT_VALUE_NONE);
      return &g->future;
    }
  /* Deduplicate with a mark bit: O(n), no hash table. */
  for (i = 0; i < n; i++)
    {
      AfutFuture *child = items[i];
      if (child->flags & AFUT__FUTURE_GATHER_MARK)
        continue;
      afut_task_start (child);
      child->flags |= AFUT__FUTURE_GATHER_MARK;
      g->n_unique++;
      g->future.ref_count++;
      afut_future_add_done_callback (child, afut__gather_child_done, g);
    }
  for (i = 0; i < n; i++)
    items[i]->flags &= (uint8_t) ~AFUT__FUTURE_GATHER_MARK;
  return &g->future;

bad:
  for (i = 0; i < n; i++)
    afut_future_unref (items[i]);
  return NULL;
}

static AfutFuture *
afut__gather_valist (AfutFuture *first, va_list args, bool return_exceptions,
                     const char *caller)
{
  AfutFuture *stack_items[16];
  AfutFuture **items = stack_items;
  size_t n = 0, cap = 16;
  AfutFuture *f, *result;

  for (f = first; f != NULL; f = va_arg (args, AfutFuture *))
    {
      if (n == cap)
        {
          cap *= 2;
          if (items == stack_items)
            {
              items = (AfutFuture **) afut__alloc (cap * sizeof *items);
              memcpy (items, stack_items, sizeof stack_items);
            }
          else
            items = (AfutFuture **) afut__realloc (items, cap * sizeof *items);
        }
      items[n++] = f;
    }
  result = afut__gather_new (items, n, return_exceptions, caller);
  if (items != stack_items)
    AFUT_FREE (items);
  return result;
}

AfutFuture *
(afut_gather) (AfutFuture *first, ...)
{
  va_list args;
  AfutFuture *result;
  va_start (args, first);
  result = afut__gather_valist (first, args, false, __func__);
  va_end (args);
  return result;
}

AfutFuture *
(afut_gather_return_exceptions) (AfutFuture *first, ...)
{
  va_list args;
  AfutFuture *result;
  va_start (args, first);
  result = afut__gather_valist (first, args, true, __func__);
  va_end (args);
  return result;
}

static AfutFuture *
afut__gather_array (AfutFuture *const *futures, size_t n,
                    bool return_exceptions, const char *caller)
{
  AfutFuture **items;
  AfutFuture *result;
  size_t i;
  AFUT__RETURN_VAL_IF_FAIL_IN (caller, futures != NULL || n == 0, NULL);
  for (i = 0; i < n; i++)
    AFUT__RETURN_VAL_IF_FAIL_IN (caller, futures[i] != NULL, NULL);
  if (n > 0)
    AFUT__RETURN_IF_WRONG_THREAD_IN (caller, futures[0]->loop, NULL, NULL);
  items = (AfutFuture **) afut__alloc ((n ? n : 1) * sizeof *items);
  for (i = 0; i < n; i++)
    items[i] = afut_future_ref (futures[i]);
  result = afut__gather_new (items, n, return_exceptions, caller);
  AFUT_FREE (items);
  return result;
}

AfutFuture *
afut_gather_v (AfutFuture *const *futures, size_t n_futures)
{
  return afut__gather_array (futures, n_futures, false, __func__);
}

AfutFuture *
afut_gather_return_exceptions_v (AfutFuture *const *futures, size_t n_futures)
{
  return afut__gather_array (futures, n_futures, true, __func__);
}

size_t
afut_gather_get_n_items (AfutFuture *gather)
{
  AFUT__RETURN_VAL_IF_FAIL (gather != NULL, 0);
  AFUT__RETURN_VAL_IF_FAIL (gather->kind == AFUT__KIND_GATHER, 0);
  AFUT__RETURN_IF_WRONG_THREAD (gather->loop, NULL, 0);
  return ((AfutGather *) gather)->n_items;
}

AfutFuture *
afut_gather_get_item (AfutFuture *gather, size_t index)
{
  AfutGather *g;
  AFUT__RETURN_VAL_IF_FAIL (gather != NULL, NULL);
  AFUT__RETURN_VAL_IF_FAIL (gather->kind == AFUT__KIND_GATHER, NULL);
  AFUT__RETURN_IF_WRONG_THREAD (gather->loop, NULL, NULL);
  g = (AfutGather *) gather;
  AFUT__RETURN_VAL_IF_FAIL (index < g->n_items, NULL);
  return g->items[index];
}

/* ---- timer handles ---- */

static AfutFuture *
afut__loop_call_at_ns (AfutLoop *loop, int64_t when, AfutCallback func,
                       void *data)
{
  AfutHandle *h = (AfutHandle *) afut__alloc (sizeof (AfutHandle));
  afut__future_init (&h->future, loop, AFUT__KIND_SLEEP);
  h->future.flags |= AFUT__FUTURE_HANDLE;
  h->func = func;
  h->data = data;
  h->future.ref_count++; /* the heap's */
  afut__heap_push (loop, &h->future, when);
  return &h->future;
}


static AfutFuture *
afut__call_checked (AfutLoop *loop, double t, bool absolute, AfutCallback func,
                    void *data, const char *caller)
{
  AFUT__RETURN_VAL_IF_FAIL_IN (caller, loop != NULL, NULL);
  AFUT__RETURN_VAL_IF_FAIL_IN (caller, func != NULL, NULL);
  AFUT__RETURN_IF_WRONG_THREAD_IN (caller, loop, NULL, NULL);
  if (loop->closed)
    {
      afut__log (AFUT_LOG_CRITICAL, "%s: the loop is closed", caller);
      return NULL;
    }
  return afut__loop_call_at_ns (
    loop, absolute ? afut__seconds_to_ns (t) : afut__deadline_after (loop, t),
    func, data);
}

AfutFuture *
afut_loop_call_later (AfutLoop *loop, double delay, AfutCallback func,
                      void *data)
{
  AFUT__RETURN_VAL_IF_FAIL (delay == delay, NULL);
  return afut__call_checked (loop, delay, false, func, data, __func__);
}

AfutFuture *
afut_loop_call_at (AfutLoop *loop, double when, AfutCallback func, void *data)
{
  AFUT__RETURN_VAL_IF_FAIL (when == when, NULL);
  return afut__call_checked (loop, when, true, func, data, __func__);
}

/* Cancels and drops a handle the caller holds; NULL is fine. */
static void
afut__handle_clear (AfutFuture **handle)
{
  if (*handle == NULL)
    return;
  afut_future_cancel (*handle, NULL);
  afut_future_unref (*handle);
  *handle = NULL;
}

/* ---- futures that follow other futures ---- */

/* Completes @dst as @src completed.  A pointer value is lent: whoever
 * made @dst keeps @src alive as long as @dst. */
static void
afut__future_mirror (AfutFuture *dst, AfutFuture *src)
{
  if (src->state == AFUT_FUTURE_DONE)
    {
      dst->u.value.v = src->u.value.v;
      dst->u.value.destroy = NULL;
      afut__future_complete_value (dst, (AfutValueType) src->value_type);
    }
  else
    {
      src->flags |= AFUT__FUTURE_ERROR_RETRIEVED;
      afut__future_complete_error_from (dst, afut_error_copy (src->u.error),
                                        afut__group_owner (src));
    }
}

/* Removes the first registration of @func with @data: a combinator's
 * one watch.  Slots are marked removed and compacted away now and then,
 * so that N watches going in the order they came (a loop's shutdown
 * cancelling N shields of one future) cost O(N), not asyncio's O(N^2). */
static bool
afut__future_remove_one (AfutFuture *future, AfutFutureCallback func,
                         void *data)
{
  if (future->state != AFUT_FUTURE_PENDING)
    return false;
  if (future->callback == afut__callbacks_array_marker)
    {
      AfutCallbackArray *a = (AfutCallbackArray *) future->callback_data;
      AfutCallbackSlot *slots = afut__callback_slots (a);
      size_t i;
      for (i = a->first; i < a->len; i++)
        if (slots[i].func == func && slots[i].data == data)
          break;
      if (i == a->len)
        return false;
      slots[i].func = NULL;
      a->dead++;
      while (a->first < a->len && slots[a->first].func == NULL)
        a->first++;
      if (a->dead == a->len)
        afut__future_drop_callbacks (future);
      else if (a->dead * 2 > a->len)
        afut__callbacks_compact (a);
      return true;
    }
  if (future->callback == func && future->callback_data == data)
    {
      future->callback = NULL;
      future->callback_data = NULL;
      return true;
    }
  return false;
}

/* Undoes one afut__future_watch (): drops the callback @future still has
 * pending, and the reference it held on @owner. */
static void
afut__future_detach (AfutFuture *future, AfutFutureCallback func,
                     AfutFuture *owner)
{
  if (afut__future_remove_one (future, func, owner))
    afut_future_unref (owner);
}

static void
afut__future_watch (AfutFuture *future, AfutFutureCallback func,
                    AfutFuture *owner)
{
  owner->ref_count++;
  afut_future_add_done_callback (future, func, owner);
}

/* An error group: the message lists each error. */
static AfutError *
afut__group_error (const char *what, AfutError *const *errors, size_t n)
{
  size_t i, len = strlen (what) + 48;
  char *msg, *p;
  AfutError *e;
  for (i = 0; i < n; i++)
    len += strlen (errors[i]->message) + 2;
  msg = (char *) afut__alloc (len);
  p = msg + sprintf (msg, "%s (%zu sub-error%s)", what, n, n == 1 ? "" : "s");
  for (i = 0; i < n; i++)
    p += sprintf (p, "%s%s", i == 0 ? ": " : "; ", errors[i]->message);
  e = afut_error_new_literal (AFUT_ERROR, AFUT_ERROR_GROUP, msg);
  AFUT_FREE (msg);
  return e;
}

/* Starts a coroutine the way a combinator takes it (ensure_future). */
static AfutFuture *
afut__take (AfutFuture *future)
{
  return afut_task_start (future);
}

/* shield */

typedef struct
{
  AfutFuture future;
  AfutFuture *inner;
} AfutShield;

static void
afut__shield_inner_done (AfutFuture *inner, void *data)
{
  AfutFuture *outer = (AfutFuture *) data;
  if (outer->state == AFUT_FUTURE_PENDING)
    afut__future_mirror (outer, inner);
  else if (inner->state == AFUT_FUTURE_FAILED)
    /* The shield was cancelled before the inner was done, but it still
     * watched: asyncio's callback reads the inner's exception. */
    inner->flags |= AFUT__FUTURE_ERROR_RETRIEVED;
  afut_future_unref (outer);
}

/* The cancelled shield's done callback in asyncio: an inner still
 * pending loses its link to the shield, so an error it fails with later
 * is nobody's (reported when freed). */
static void
afut__shield_let_go (void *data)
{
  AfutShield *s = (AfutShield *) data;
  if (s->inner->state == AFUT_FUTURE_PENDING)
    afut__future_detach (s->inner, afut__shield_inner_done, &s->future);
  afut_future_unref (&s->future);
}

static bool
afut__shield_cancel (AfutShield *s, const char *message)
{
  /* Queued before the shield's own callbacks, as asyncio registers its
   * done callback first. */
  s->future.ref_count++;
  if (s->future.loop->closed)
    afut__shield_let_go (s);
  else
    afut__ready_push (s->future.loop, afut__shield_let_go, s);
  return afut__future_complete_error (&s->future,
                                      afut__cancelled_error (message));
}

AfutFuture *
afut_shield (AfutFuture *future)
{
  AfutShield *s;
  AFUT__RETURN_VAL_IF_FAIL (future != NULL, NULL);
  AFUT__RETURN_IF_WRONG_THREAD (future->loop, NULL, NULL);
  if (future->state == AFUT_FUTURE_PENDING && future->loop->closed)
    {
      afut__log (AFUT_LOG_CRITICAL, "%s: the loop is closed", __func__);
      afut_future_unref (future);
      return NULL;
    }
  afut__take (future);
  if (future->state != AFUT_FUTURE_PENDING)
    return future;
  s = (AfutShield *) afut__alloc (sizeof (AfutShield));
  afut__future_init (&s->future, future->loop, AFUT__KIND_SHIELD);
  s->inner = future;
  afut__future_watch (future, afut__shield_inner_done, &s->future);
  return &s->future;
}

/* wait_for */

typedef struct
{
  AfutFuture future;
  AfutFuture *inner;
  AfutFuture *timer;
  bool expired;
  bool cancel_requested;
  bool cancel_missed; /* our cancel found the inner already done */
} AfutWaitFor;

static void
afut__wait_for_inner_done (AfutFuture *inner, void *data)
{
  AfutWaitFor *w = (AfutWaitFor *) data;
  afut__handle_clear (&w->timer);
  if (w->future.state == AFUT_FUTURE_PENDING)
    {
      if (w->cancel_requested
          && (inner->state == AFUT_FUTURE_CANCELLED || w->cancel_missed))
        {
          if (inner->state == AFUT_FUTURE_FAILED)
            inner->flags |= AFUT__FUTURE_ERROR_RETRIEVED;
          afut__future_complete_error (
            &w->future, inner->state == AFUT_FUTURE_CANCELLED
                          ? afut_error_copy (inner->u.error)
                          : afut__cancelled_error (NULL));
        }
      else if (w->expired && inner->state == AFUT_FUTURE_CANCELLED)
        afut__future_complete_error (
          &w->future, afut_error_new_literal (AFUT_ERROR, AFUT_ERROR_TIMEOUT,
                                              "wait_for timed out"));
      else
        afut__future_mirror (&w->future, inner);
    }
  afut_future_unref (&w->future);
}

static void
afut__wait_for_expire (void *data)
{
  AfutWaitFor *w = (AfutWaitFor *) data;
  w->expired = true;
  afut_future_cancel (w->inner, NULL);
}

AfutFuture *
afut_wait_for (AfutFuture *future, double timeout)
{
  AfutWaitFor *w;
  AFUT__RETURN_VAL_IF_FAIL (future != NULL, NULL);
  AFUT__RETURN_IF_WRONG_THREAD (future->loop, NULL, NULL);
  if (timeout != timeout)
    {
      afut__log (AFUT_LOG_CRITICAL, "%s: the timeout is NaN", __func__);
      afut_future_unref (future);
      return NULL;
    }
  if (timeout == AFUT_NO_TIMEOUT || future->state != AFUT_FUTURE_PENDING)
    return future; /* `return await fut` */
  if (future->loop->closed)
    {
      afut__log (AFUT_LOG_CRITICAL, "%s: the loop is closed", __func__);
      afut_future_unref (future);
      return NULL;
    }
  afut__take (future);
  w = (AfutWaitFor *) afut__alloc (sizeof (AfutWaitFor));
  afut__future_init (&w->future, future->loop, AFUT__KIND_WAIT_FOR);
  w->inner = future;
  w->timer = NULL;
  w->expired = w->cancel_requested = w->cancel_missed = false;
  afut__future_watch (future, afut__wait_for_inner_done, &w->future);
  if (timeout <= 0)
    afut__wait_for_expire (w);
  else
    w->timer = afut__loop_call_at_ns (
      future->loop, afut__deadline_after (future->loop, timeout),
      afut__wait_for_expire, w);
  return &w->future;
}

/* wait, as_completed, race and any share one layout: the inputs,
 * deduplicated, each watched by a callback holding a reference. */

typedef struct
{
  AfutFuture future;
  size_t n_items;   /* distinct inputs */
  size_t n_settled; /* inputs completed (race/any: seen failing, for any) */
  AfutFuture *timer;
  AfutFuture **items;
  AfutFuture *winner; /* race/any: the input whose outcome it took */
  uint8_t mode;     /* AfutWaitMode, or RACE / ANY */
  bool cancel_requested;
  bool partitioned;
  /* wait: done then pending, after partitioning; as_completed: inputs in
   * completion order */
  AfutFuture **order;
  size_t n_order;
  size_t n_handed; /* as_completed: completions handed out */
  size_t n_next;   /* as_completed: next() futures made */
  AfutFuture **waiters; /* as_completed: next() futures not yet served */
  size_t n_waiters;
  size_t waiters_cap;
  /* any: the errors of a group */
  AfutError **sub_errors;
  size_t n_sub_errors;
  char *cancel_message; /* any: of the cancel that requested it */
} AfutMulti;

enum
{
  AFUT__MULTI_RACE = 8,
  AFUT__MULTI_ANY = 9
};

static void
afut__multi_finalize (AfutMulti *m)
{
  size_t i;
  for (i = 0; i < m->n_items; i++)
    afut_future_unref (m->items[i]);
  for (i = 0; i < m->n_waiters; i++)
    afut_future_unref (m->waiters[i]);
  for (i = 0; i < m->n_sub_errors; i++)
    afut_error_free (m->sub_errors[i]);
  afut_future_unref (m->timer);
  AFUT_FREE (m->cancel_message);
  AFUT_FREE (m->sub_errors);
  AFUT_FREE (m->waiters);
  AFUT_FREE (m->order);
  AFUT_FREE (m->items);
}

/* Takes @futures (one reference each, the caller's), deduplicated;
 * NULL (after dropping them) when they are not all of one open loop. */
static AfutMulti *
afut__multi_new (AfutFuture **futures, size_t n, uint8_t kind, uint8_t mode,
                 const char *caller)
{
  AfutLoop *loop = NULL;
  AfutMulti *m;
  size_t i;

  for (i = 0; i < n; i++)
    {
      if (futures[i] == NULL)
        {
          afut__log (AFUT_LOG_CRITICAL, "%s: input %zu is NULL", caller, i);
          goto bad;
        }
      if (loop == NULL)
        loop = futures[i]->loop;
      else if (futures[i]->loop != loop)
        {
          afut__log (AFUT_LOG_CRITICAL,
                     "%s: the inputs belong to different loops", caller);
          goto bad;
        }
    }
  if (loop != NULL) /* the inputs are left alone: they are not this thread's */
    AFUT__RETURN_IF_WRONG_THREAD_IN (caller, loop, NULL, NULL);
  if (loop == NULL)
    loop = afut__resolve_loop (NULL, caller);
  else if (loop->closed)
    {
      afut__log (AFUT_LOG_CRITICAL, "%s: the loop is closed", caller);
      loop = NULL;
    }
  if (loop == NULL)
    goto bad;

  m = (AfutMulti *) afut__alloc (sizeof (AfutMulti));
  memset (m, 0, sizeof *m);
  afut__future_init (&m->future, loop, kind);
  m->mode = mode;
  m->items = (AfutFuture **) afut__alloc ((n ? n : 1) * sizeof (AfutFuture *));
  for (i = 0; i < n; i++)
    {
      AfutFuture *f = futures[i];
      if (f->flags & AFUT__FUTURE_GATHER_MARK)
        {
          afut_future_unref (f);
          continue;
        }
      f->flags |= AFUT__FUTURE_GATHER_MARK;
      m->items[m->n_items++] = afut__take (f);
    }
  for (i = 0; i < m->n_items; i++)
    m->items[i]->flags &= (uint8_t) ~AFUT__FUTURE_GATHER_MARK;
  return m;

bad:
  for (i = 0; i < n; i++)
    afut_future_unref (futures[i]);
  return NULL;
}

/* Refs @futures (transfer none in) into a temporary array for
 * afut__multi_new. */
static AfutMulti *
afut__multi_new_array (AfutFuture *const *futures, size_t n, uint8_t kind,
                       uint8_t mode, const char *caller)
{
  AfutFuture **refs;
  AfutMulti *m;
  size_t i;
  AFUT__RETURN_VAL_IF_FAIL_IN (caller, futures != NULL || n == 0, NULL);
  for (i = 0; i < n; i++)
    AFUT__RETURN_VAL_IF_FAIL_IN (caller, futures[i] != NULL, NULL);
  if (n > 0)
    AFUT__RETURN_IF_WRONG_THREAD_IN (caller, futures[0]->loop, NULL, NULL);
  refs = (AfutFuture **) afut__alloc ((n ? n : 1) * sizeof *refs);
  for (i = 0; i < n; i++)
    refs[i] = afut_future_ref (futures[i]);
  m = afut__multi_new (refs, n, kind, mode, caller);
  AFUT_FREE (refs);
  return m;
}

static void afut__multi_item_done (AfutFuture *item, void *data);

/* Stops watching the inputs still pending and the timer. */
static void
afut__multi_detach (AfutMulti *m)
{
  size_t i;
  afut__handle_clear (&m->timer);
  for (i = 0; i < m->n_items; i++)
    afut__future_detach (m->items[i], afut__multi_item_done, &m->future);
}

static void
afut__multi_watch_all (AfutMulti *m)
{
  size_t i;
  for (i = 0; i < m->n_items; i++)
    afut__future_watch (m->items[i], afut__multi_item_done, &m->future);
}

/* wait */

static void
afut__wait_release (void *data)
{
  AfutMulti *m = (AfutMulti *) data;
  afut__multi_detach (m);
  if (m->future.state == AFUT_FUTURE_PENDING)
    afut__future_complete_value (&m->future, AFUT_VALUE_NONE);
}

static void
afut__wait_item_done (AfutMulti *m, AfutFuture *item)
{
  m->n_settled++;
  if (m->future.state != AFUT_FUTURE_PENDING)
    return;
  if (m->n_settled == m->n_items || m->mode == AFUT_WAIT_FIRST_COMPLETED
      || (m->mode == AFUT_WAIT_FIRST_EXCEPTION
          && item->state == AFUT_FUTURE_FAILED))
    {
      m->future.ref_count++;
      afut__wait_release (m);
      afut_future_unref (&m->future);
    }
}

AfutFuture *
afut_wait (AfutFuture *const *futures, size_t n_futures, AfutWaitMode mode,
           double timeout)
{
  AfutMulti *m;
  AFUT__RETURN_VAL_IF_FAIL (n_futures > 0, NULL);
  AFUT__RETURN_VAL_IF_FAIL (mode <= AFUT_WAIT_ALL_COMPLETED, NULL);
  AFUT__RETURN_VAL_IF_FAIL (timeout == timeout, NULL);
  m = afut__multi_new_array (futures, n_futures, AFUT__KIND_WAIT,
                             (uint8_t) mode, __func__);
  if (m == NULL)
    return NULL;
  /* As asyncio: even with every input done, the answer comes through
   * their callbacks, a loop turn later. */
  afut__multi_watch_all (m);
  if (timeout != AFUT_NO_TIMEOUT)
    m->timer = afut__loop_call_at_ns (
      m->future.loop, afut__deadline_after (m->future.loop, timeout),
      afut__wait_release, m);
  return &m->future;
}

static AfutMulti *
afut__wait_partitioned (AfutFuture *wait, const char *caller)
{
  AfutMulti *m = (AfutMulti *) wait;
  size_t i;
  AFUT__RETURN_VAL_IF_FAIL_IN (caller, wait != NULL, NULL);
  AFUT__RETURN_VAL_IF_FAIL_IN (caller, wait->kind == AFUT__KIND_WAIT, NULL);
  AFUT__RETURN_IF_WRONG_THREAD_IN (caller, wait->loop, NULL, NULL);
  AFUT__RETURN_VAL_IF_FAIL_IN (caller, wait->state != AFUT_FUTURE_PENDING,
                               NULL);
  if (!m->partitioned)
    {
      /* As asyncio: the sets are what they are when the awaiter looks. */
      m->partitioned = true;
      m->order = (AfutFuture **) afut__alloc (m->n_items * sizeof (AfutFuture *));
      for (i = 0; i < m->n_items; i++)
        if (m->items[i]->state != AFUT_FUTURE_PENDING)
          m->order[m->n_order++] = m->items[i];
      m->n_handed = m->n_order;
      for (i = 0; i < m->n_items; i++)
        if (m->items[i]->state == AFUT_FUTURE_PENDING)
          m->order[m->n_handed++] = m->items[i];
    }
  return m;
}

AfutFuture *
afut_wait_get_done (AfutFuture *wait, size_t index, size_t *n_done)
{
  AfutMulti *m = afut__wait_partitioned (wait, __func__);
  if (n_done != NULL)
    *n_done = m != NULL ? m->n_order : 0;
  if (m == NULL || index >= m->n_order)
    return NULL;
  return m->order[index];
}

AfutFuture *
afut_wait_get_pending (AfutFuture *wait, size_t index, size_t *n_pending)
{
  AfutMulti *m = afut__wait_partitioned (wait, __func__);
  size_t n = m != NULL ? m->n_items - m->n_order : 0;
  if (n_pending != NULL)
    *n_pending = n;
  if (m == NULL || index >= n)
    return NULL;
  return m->order[m->n_order + index];
}

/* as_completed */

static void
afut__as_completed_serve (AfutMulti *m)
{
  size_t i, j = 0;
  for (i = 0; i < m->n_waiters; i++)
    {
      AfutFuture *w = m->waiters[i];
      if (w->state == AFUT_FUTURE_PENDING && m->n_handed < m->n_order)
        {
          AfutFuture *f = afut_future_ref (m->order[m->n_handed++]);
          afut_future_resolve_pointer (w, f,
                                       (AfutDestroyNotify) afut_future_unref);
        }
      else if (w->state == AFUT_FUTURE_PENDING && m->timer == NULL
               && m->n_order < m->n_items
               && m->future.state != AFUT_FUTURE_PENDING)
        {
          /* timed out or cancelled: nothing more will come */
          afut_future_fail (w, afut_error_new_literal (
                                 AFUT_ERROR, AFUT_ERROR_TIMEOUT,
                                 "as_completed timed out"));
        }
      if (w->state == AFUT_FUTURE_PENDING)
        {
          m->waiters[j++] = w;
          continue;
        }
      if (w->state == AFUT_FUTURE_CANCELLED && m->future.state == AFUT_FUTURE_PENDING)
        m->n_next--; /* its awaiter gave up: the input goes to the next */
      afut_future_unref (w);
    }
  m->n_waiters = j;
}

static void
afut__as_completed_item_done (AfutMulti *m, AfutFuture *item)
{
  m->order[m->n_order++] = item;
  if (m->n_order == m->n_items)
    {
      afut__handle_clear (&m->timer);
      if (m->future.state == AFUT_FUTURE_PENDING)
        afut__future_complete_value (&m->future, AFUT_VALUE_NONE);
    }
  afut__as_completed_serve (m);
}

static void
afut__as_completed_expire (void *data)
{
  AfutMulti *m = (AfutMulti *) data;
  m->future.ref_count++;
  afut__multi_detach (m);
  if (m->future.state == AFUT_FUTURE_PENDING)
    afut__future_complete_value (&m->future, AFUT_VALUE_NONE);
  afut__as_completed_serve (m);
  afut_future_unref (&m->future);
}

AfutFuture *
afut_as_completed (AfutFuture *const *futures, size_t n_futures,
                   double timeout)
{
  AfutMulti *m;
  AFUT__RETURN_VAL_IF_FAIL (timeout == timeout, NULL);
  m = afut__multi_new_array (futures, n_futures, AFUT__KIND_AS_COMPLETED, 0,
                             __func__);
  if (m == NULL)
    return NULL;
  m->order = (AfutFuture **) afut__alloc ((m->n_items ? m->n_items : 1)
                                          * sizeof (AfutFuture *));
  if (m->n_items == 0)
    {
      afut__future_complete_value (&m->future, AFUT_VALUE_NONE);
      return &m->future;
    }
  afut__multi_watch_all (m);
  if (timeout != AFUT_NO_TIMEOUT)
    m->timer = afut__loop_call_at_ns (
      m->future.loop, afut__deadline_after (m->future.loop, timeout),
      afut__as_completed_expire, m);
  return &m->future;
}

AfutFuture *
afut_as_completed_next (AfutFuture *iterator)
{
  AfutMulti *m = (AfutMulti *) iterator;
  AfutFuture *next;
  AFUT__RETURN_VAL_IF_FAIL (iterator != NULL, NULL);
  AFUT__RETURN_VAL_IF_FAIL (iterator->kind == AFUT__KIND_AS_COMPLETED, NULL);
  AFUT__RETURN_IF_WRONG_THREAD (iterator->loop, NULL, NULL);
  if (iterator->loop->closed)
    {
      afut__log (AFUT_LOG_CRITICAL, "%s: the loop is closed", __func__);
      return NULL;
    }
  /* As many next futures as inputs, as Python's iterator yields; a
   * cancelled one does not count (its input goes to the next). */
  afut__as_completed_serve (m);
  if (m->n_next >= m->n_items)
    return NULL;
  m->n_next++;
  next = afut__future_new_bare (iterator->loop, AFUT__KIND_PLAIN);
  if (m->n_waiters == m->waiters_cap)
    {
      m->waiters_cap = m->waiters_cap ? m->waiters_cap * 2 : 4;
      m->waiters = (AfutFuture **) afut__realloc (
        m->waiters, m->waiters_cap * sizeof (AfutFuture *));
    }
  m->waiters[m->n_waiters++] = afut_future_ref (next);
  afut__as_completed_serve (m);
  return next;
}

/* race and any */

static void
afut__race_item_done (AfutMulti *m, AfutFuture *item)
{
  size_t i;
  m->n_settled++;
  if (m->future.state != AFUT_FUTURE_PENDING)
    {
      /* A loser: its error is the race's business, not lost. */
      if (item->state == AFUT_FUTURE_FAILED)
        item->flags |= AFUT__FUTURE_ERROR_RETRIEVED;
      return;
    }
  if (m->mode == AFUT__MULTI_RACE || item->state == AFUT_FUTURE_DONE)
    {
      m->winner = item;
      afut__future_mirror (&m->future, item);
      return;
    }
  /* any: a failure is the any's to report, in its group. */
  if (item->state == AFUT_FUTURE_FAILED)
    item->flags |= AFUT__FUTURE_ERROR_RETRIEVED;
  if (m->n_settled < m->n_items)
    return;
  /* any: every input failed. */
  if (m->cancel_requested)
    {
      for (i = 0; i < m->n_items; i++)
        if (m->items[i]->state == AFUT_FUTURE_FAILED)
          m->items[i]->flags |= AFUT__FUTURE_ERROR_RETRIEVED;
      afut__future_complete_error (&m->future,
                                   afut__cancelled_error (m->cancel_message));
      return;
    }
  m->sub_errors = (AfutError **) afut__alloc (m->n_items * sizeof (AfutError *));
  for (i = 0; i < m->n_items; i++)
    {
      m->items[i]->flags |= AFUT__FUTURE_ERROR_RETRIEVED;
      m->sub_errors[m->n_sub_errors++] = afut_error_copy (m->items[i]->u.error);
    }
  afut__future_complete_error (
    &m->future, afut__group_error ("all futures failed", m->sub_errors,
                                   m->n_sub_errors));
}

static AfutFuture *
afut__race_finish (AfutMulti *m, const char *caller)
{
  if (m == NULL)
    return NULL;
  if (m->n_items == 0)
    {
      if (m->mode == AFUT__MULTI_RACE)
        {
          afut__log (AFUT_LOG_CRITICAL,
                     "%s: no input: the race would never settle", caller);
          afut_future_unref (&m->future);
          return NULL;
        }
      afut__future_complete_error (
        &m->future, afut__group_error ("all futures failed", NULL, 0));
      return &m->future;
    }
  afut__multi_watch_all (m);
  return &m->future;
}

static AfutFuture *
afut__race_valist (AfutFuture *first, va_list args, uint8_t mode,
                   const char *caller)
{
  AfutFuture **items = NULL;
  size_t n = 0, cap = 0;
  AfutFuture *f;
  AfutMulti *m;
  if (first == NULL && mode == AFUT__MULTI_RACE)
    {
      afut__log (AFUT_LOG_CRITICAL,
                 "%s: no input: the race would never settle", caller);
      return NULL;
    }
  for (f = first; f != NULL; f = va_arg (args, AfutFuture *))
    {
      if (n == cap)
        {
          cap = cap ? cap * 2 : 8;
          items = (AfutFuture **) afut__realloc (items, cap * sizeof *items);
        }
      items[n++] = f;
    }
  m = afut__multi_new (items, n, AFUT__KIND_RACE, mode, caller);
  AFUT_FREE (items);
  return afut__race_finish (m, caller);
}

AfutFuture *
(afut_race) (AfutFuture *first, ...)
{
  va_list args;
  AfutFuture *result;
  va_start (args, first);
  result = afut__race_valist (first, args, AFUT__MULTI_RACE, __func__);
  va_end (args);
  return result;
}

AfutFuture *
afut_race_v (AfutFuture *const *futures, size_t n_futures)
{
  if (n_futures == 0)
    {
      afut__log (AFUT_LOG_CRITICAL,
                 "%s: no input: the race would never settle", __func__);
      return NULL;
    }
  return afut__race_finish (
    afut__multi_new_array (futures, n_futures, AFUT__KIND_RACE,
                           AFUT__MULTI_RACE, __func__),
    __func__);
}

AfutFuture *
(afut_any) (AfutFuture *first, ...)
{
  va_list args;
  AfutFuture *result;
  va_start (args, first);
  result = afut__race_valist (first, args, AFUT__MULTI_ANY, __func__);
  va_end (args);
  return result;
}

AfutFuture *
afut_any_v (AfutFuture *const *futures, size_t n_futures)
{
  return afut__race_finish (
    afut__multi_new_array (futures, n_futures, AFUT__KIND_RACE,
                           AFUT__MULTI_ANY, __func__),
    __func__);
}

static bool
afut__multi_cancel (AfutMulti *m, const char *message)
{
  size_t i;
  switch (m->future.kind)
    {
    case AFUT__KIND_AS_COMPLETED:
      afut__multi_detach (m);
      if (!afut__future_complete_error (&m->future,
                                        afut__cancelled_error (message)))
        return false;
      for (i = 0; i < m->n_waiters; i++)
        afut_future_cancel (m->waiters[i], message);
      afut__as_completed_serve (m);
      return true;
    default: /* wait: the inputs run on */
      afut__multi_detach (m);
      break;
    }
  return afut__future_complete_error (&m->future,
                                      afut__cancelled_error (message));
}

static void
afut__multi_item_done (AfutFuture *item, void *data)
{
  AfutMulti *m = (AfutMulti *) data;
  switch (m->future.kind)
    {
    case AFUT__KIND_WAIT:
      afut__wait_item_done (m, item);
      break;
    case AFUT__KIND_AS_COMPLETED:
      afut__as_completed_item_done (m, item);
      break;
    default:
      afut__race_item_done (m, item);
      break;
    }
  afut_future_unref (&m->future);
}

/* ---- cancelling without deep recursion ----
 *
 * Cancelling a future cancels what it waits on: a task what it awaits, a
 * gather, wait_for, race or any their inputs, and so on down a chain of
 * any depth (10^6 nested gathers).  The walk keeps its own stack of
 * frames instead of recursing, so its C stack use is constant; the order
 * of the cancels, and every result, are those of the obvious recursive
 * code (depth first, inputs in order). */

typedef struct
{
  AfutFuture *future;
  size_t next; /* gather, race, any: the next input to cancel */
  bool any;    /* some cancel below returned true */
} AfutCancelFrame;

enum
{
  AFUT__CANCEL_FALSE = 0,
  AFUT__CANCEL_TRUE = 1,
  AFUT__CANCEL_DESCEND = 2 /* cancel *child first, then step again */
};

/* A race or any has asked each input to cancel (@any: some did): it
 * waits for them, or, with none to wait for, ends cancelled now. */
static int
afut__race_cancelled (AfutMulti *m, bool any, const char *message)
{
  if (!any)
    return afut__future_complete_error (&m->future,
                                        afut__cancelled_error (message));
  /* An any ends cancelled once every input has failed: with this
   * message, as a gather passes on its children's. */
  AFUT_FREE (m->cancel_message);
  m->cancel_message = message != NULL ? afut__strdup (message) : NULL;
  return AFUT__CANCEL_TRUE;
}

/* Task.cancel(): the request is counted, and made of what the task waits
 * on; this is what is left when that cancel found nothing to cancel. */
static void
afut__task_must_cancel (AfutTask *task, const char *message)
{
  task->task_flags |= AFUT__TASK_MUST_CANCEL;
  AFUT_FREE (task->c.cancel_message);
  task->c.cancel_message = message != NULL ? afut__strdup (message) : NULL;
}

/* One step of cancelling @f->future with @message.  @below is what the
 * cancel of the child it asked for returned, -1 on the first step.
 * Returns the result, or AFUT__CANCEL_DESCEND with *@child to cancel
 * first. */
static AFUT__ALWAYS_INLINE int
afut__cancel_step (AfutCancelFrame *f, const char *message, int below,
                   AfutFuture **child)
{
  AfutFuture *future = f->future;
  AfutFuture *const *items;
  size_t n_items;

  if (below < 0)
    {
      if (future->state != AFUT_FUTURE_PENDING)
        {
          /* Future.cancel() and Task.cancel() clear _log_traceback
           * first. */
          if (future->kind != AFUT__KIND_GATHER)
            future->flags |= AFUT__FUTURE_ERROR_RETRIEVED;
          return AFUT__CANCEL_FALSE;
        }
      switch (future->kind)
        {
        case AFUT__KIND_TASK:
          {
            /* Task.cancel(), on the root task of an inline frame. */
            AfutTask *task = afut__task_root ((AfutTask *) future), *frame;
            f->future = &task->future;
            if (task->n_cancels < UINT16_MAX)
              task->n_cancels++;
            if (task->task_flags & AFUT__TASK_LAZY)
              {
                /* Never started, never will: cancelled as it is. */
                task->task_flags &= (uint16_t) ~AFUT__TASK_LAZY;
                task->task_flags |= AFUT__TASK_STARTED;
                return afut__future_complete_error (
                  &task->future, afut__cancelled_error (message));
              }
            /* Where the task waits: at the innermost frame of its `await
             * coro()` chain (asyncio's _fut_waiter). */
            frame = task;
            while ((frame->task_flags & AFUT__TASK_WAITING)
                   && afut__is_frame_of (frame->awaiting, frame))
              frame = (AfutTask *) frame->awaiting;
            if ((frame->task_flags & AFUT__TASK_WAITING)
                && frame->awaiting != NULL)
              {
                if (afut__cancel_is_chain (frame->awaiting))
                  {
                    *child = frame->awaiting;
                    return AFUT__CANCEL_DESCEND;
                  }
                /* It waits on a leaf (a sleep, a plain future): the
                 * common case, done here. */
                if (!afut_future_cancel (frame->awaiting, message))
                  afut__task_must_cancel (task, message);
                return AFUT__CANCEL_TRUE;
              }
            /* Running, or its step is already scheduled: raise at the
             * point it next suspends or resumes. */
            afut__task_must_cancel (task, message);
            return AFUT__CANCEL_TRUE;
          }
        case AFUT__KIND_WAIT_FOR:
          ((AfutWaitFor *) future)->cancel_requested = true;
          *child = ((AfutWaitFor *) future)->inner;
          return AFUT__CANCEL_DESCEND;
        case AFUT__KIND_RACE:
          ((AfutMulti *) future)->cancel_requested = true;
          break;
        case AFUT__KIND_GATHER:
          break;
        default:
          return afut__cancel_leaf (future, message);
        }
    }
  else
    switch (future->kind)
      {
      case AFUT__KIND_TASK:
        if (!below)
          afut__task_must_cancel ((AfutTask *) future, message);
        return AFUT__CANCEL_TRUE;
      case AFUT__KIND_WAIT_FOR:
        if (!below)
          ((AfutWaitFor *) future)->cancel_missed = true;
        return AFUT__CANCEL_TRUE;
      default: /* gather, race, any */
        if (below)
          f->any = true;
        break;
      }

  /* gather, race, any: cancel each input, in order. */
  if (future->kind == AFUT__KIND_GATHER)
    {
      items = ((AfutGather *) future)->items;
      n_items = ((AfutGather *) future)->n_items;
    }
  else
    {
      items = ((AfutMulti *) future)->items;
      n_items = ((AfutMulti *) future)->n_items;
    }
  if (f->next < n_items)
    {
      *child = items[f->next++];
      return AFUT__CANCEL_DESCEND;
    }
  if (future->kind == AFUT__KIND_GATHER)
    {
      if (f->any)
        ((AfutGather *) future)->cancel_requested = true;
      return f->any;
    }
  return afut__race_cancelled ((AfutMulti *) future, f->any, message);
}

static bool
afut__cancel_chain (AfutFuture *future, const char *message)
{
  AfutCancelFrame stack_frames[16];
  AfutCancelFrame *frames = stack_frames;
  size_t n = 1, cap = 16;
  int r = -1;

  frames[0].future = future;
  frames[0].next = 0;
  frames[0].any = false;
  for (;;)
    {
      AfutFuture *child = NULL;
      r = afut__cancel_step (&frames[n - 1], message, r, &child);
      if (r != AFUT__CANCEL_DESCEND)
        {
          if (--n == 0)
            break;
          continue;
        }
      if (!afut__cancel_is_chain (child))
        {
          /* A leaf (a sleep, a plain future): no frame of its own. */
          r = afut_future_cancel (child, message);
          continue;
        }
      if (n == cap)
        {
          cap *= 2;
          if (frames == stack_frames)
            {
              frames = (AfutCancelFrame *) afut__alloc (cap * sizeof *frames);
              memcpy (frames, stack_frames, sizeof stack_frames);
            }
          else
            frames = (AfutCancelFrame *) afut__realloc (
              frames, cap * sizeof *frames);
        }
      frames[n].future = child;
      frames[n].next = 0;
      frames[n].any = false;
      n++;
      r = -1;
    }
  if (frames != stack_frames)
    AFUT_FREE (frames);
  return r == AFUT__CANCEL_TRUE;
}

/* ---- error groups ---- */

typedef struct AfutGroupLink AfutGroupLink;

struct AfutTaskGroup
{
  AfutFuture future; /* kind GROUP: what afut_task_group_exit() hands out */
  AfutScope scope;
  AfutGroupLink **children; /* pending children, swap-removed */
  size_t n_children;
  size_t children_cap;
  AfutError **errors;
  size_t n_errors;
  size_t errors_cap;
  AfutError *body_error; /* a non-cancel error the parent's block ended with */
  char *cancel_message;  /* of a cancellation to propagate */
  unsigned cancelling;   /* the parent's cancel requests at entry */
  bool exiting;
  bool aborting;
  bool parent_cancel_requested;
  bool propagate_cancel;
  bool cancel_pending;   /* a cancel of the exit, taken a turn later */
};

struct AfutGroupLink
{
  AfutTaskGroup *group;
  AfutFuture *child;
  size_t index;
};

/* The future that owns the sub-errors of @future's AFUT_ERROR_GROUP
 * failure: itself for a task group's exit and an afut_any(), which made
 * the group; the one a task, gather, shield, wait_for or race took the
 * error from otherwise; NULL if none (no group error, or one made with
 * afut_error_new()). */
static AfutFuture *
afut__group_owner (AfutFuture *future)
{
  if (future == NULL || future->state != AFUT_FUTURE_FAILED
      || !afut__is_group_error (future->u.error))
    return NULL;
  if (future->kind == AFUT__KIND_GROUP
      || (future->kind == AFUT__KIND_RACE
          && ((AfutMulti *) future)->mode == AFUT__MULTI_ANY))
    return future;
  return future->u.failure.group;
}

size_t
afut_future_get_n_sub_errors (AfutFuture *future)
{
  AfutFuture *owner;
  AFUT__RETURN_VAL_IF_FAIL (future != NULL, 0);
  AFUT__RETURN_IF_WRONG_THREAD (future->loop, NULL, 0);
  owner = afut__group_owner (future);
  if (owner == NULL)
    return 0;
  if (owner->kind == AFUT__KIND_RACE)
    return ((AfutMulti *) owner)->n_sub_errors;
  return ((AfutTaskGroup *) owner)->n_errors;
}

const AfutError *
afut_future_get_sub_error (AfutFuture *future, size_t index)
{
  AfutFuture *owner;
  AFUT__RETURN_VAL_IF_FAIL (future != NULL, NULL);
  AFUT__RETURN_IF_WRONG_THREAD (future->loop, NULL, NULL);
  if (index >= afut_future_get_n_sub_errors (future))
    return NULL;
  future->flags |= AFUT__FUTURE_ERROR_RETRIEVED;
  owner = afut__group_owner (future);
  if (owner->kind == AFUT__KIND_RACE)
    return ((AfutMulti *) owner)->sub_errors[index];
  return ((AfutTaskGroup *) owner)->errors[index];
}

/* ---- scopes: timeouts and task groups ---- */

enum
{
  AFUT__SCOPE_TIMEOUT = 1,
  AFUT__SCOPE_GROUP = 2
};

enum
{
  AFUT__TIMEOUT_CREATED,
  AFUT__TIMEOUT_ENTERED,
  AFUT__TIMEOUT_EXPIRING,
  AFUT__TIMEOUT_EXPIRED,
  AFUT__TIMEOUT_EXITED
};

static bool
afut__task_check_current (AfutTask *task, const char *func)
{
  AFUT__RETURN_IF_WRONG_THREAD_IN (func, task->future.loop, NULL, false);
  if (AFUT__LIKELY (task->future.kind == AFUT__KIND_TASK
                    && (task->task_flags & AFUT__TASK_RUNNING)
                    && task->future.loop->current_task == task))
    return true;
  afut__log (AFUT_LOG_CRITICAL,
             "%s: not called from inside the task's own step", func);
  return false;
}

static void
afut__scope_push (AfutTask *task, AfutScope *scope, int kind)
{
  scope->outer = task->scopes;
  scope->task = task;
  scope->kind = kind;
  task->scopes = scope;
}

static void
afut__scope_unlink (AfutScope *scope)
{
  AfutScope **p;
  if (scope->task == NULL)
    return;
  for (p = &scope->task->scopes; *p != NULL; p = &(*p)->outer)
    if (*p == scope)
      {
        *p = scope->outer;
        break;
      }
  scope->outer = NULL;
}

/* timeouts */

static void
afut__timeout_fire (void *data)
{
  AfutTimeout *t = (AfutTimeout *) data;
  /* The handle is running this: the heap's entry keeps it alive. */
  afut_future_unref (t->handle);
  t->handle = NULL;
  t->scope.state = AFUT__TIMEOUT_EXPIRING;
  afut_future_cancel (&t->scope.task->future, NULL);
}

static void
afut__timeout_schedule (AfutTimeout *t)
{
  AfutLoop *loop = t->scope.task->future.loop;
  afut__handle_clear (&t->handle);
  if (t->when == AFUT__NEVER)
    return;
  if (t->when <= afut_loop_time_ns (loop))
    {
      /* As asyncio's call_soon: the next batch, not the next timers. */
      AfutHandle *h = (AfutHandle *) afut__alloc (sizeof (AfutHandle));
      afut__future_init (&h->future, loop, AFUT__KIND_SLEEP);
      h->future.flags |= AFUT__FUTURE_HANDLE;
      h->func = afut__timeout_fire;
      h->data = t;
      h->future.ref_count++; /* the ready entry's */
      afut__ready_push (loop, afut__sleep_fire, &h->future);
      t->handle = &h->future;
    }
  else
    t->handle = afut__loop_call_at_ns (loop, t->when, afut__timeout_fire, t);
}

static void
afut__timeout_enter (AfutTask *task, AfutTimeout *timeout, int64_t when,
                     const char *caller)
{
  AfutTimeout *t = timeout;
  AfutScope *open;
  AFUT__RETURN_IF_FAIL_IN (caller, task != NULL);
  AFUT__RETURN_IF_FAIL_IN (caller, timeout != NULL);
  if (!afut__task_check_current (task, caller))
    return;
  for (open = task->scopes; open != NULL; open = open->outer)
    if (open == &t->scope)
      {
        afut__log (AFUT_LOG_CRITICAL,
                   "%s: this timeout is already entered (asyncio: \"Timeout "
                   "has already been entered\")",
                   caller);
        return;
      }
  memset (t, 0, sizeof *t);
  afut__scope_push (task, &t->scope, AFUT__SCOPE_TIMEOUT);
  t->scope.state = AFUT__TIMEOUT_ENTERED;
  t->cancelling = afut__task_root (task)->n_cancels;
  t->when = when;
  afut__timeout_schedule (t);
}

void
afut_timeout_enter (AfutTask *task, AfutTimeout *timeout, double delay)
{
  AFUT__RETURN_IF_FAIL (delay == delay);
  if (task == NULL || timeout == NULL)
    {
      afut__timeout_enter (task, timeout, 0, __func__);
      return;
    }
  AFUT__RETURN_IF_WRONG_THREAD (task->future.loop, NULL, );
  afut__timeout_enter (task, timeout,
                       afut__deadline_after (task->future.loop, delay),
                       __func__);
}

void
afut_timeout_enter_at (AfutTask *task, AfutTimeout *timeout, double when)
{
  AFUT__RETURN_IF_FAIL (when == when);
  afut__timeout_enter (task, timeout, afut__seconds_to_ns (when), __func__);
}

void
afut_timeout_reschedule (AfutTimeout *timeout, double when)
{
  AFUT__RETURN_IF_FAIL (timeout != NULL);
  AFUT__RETURN_IF_FAIL (when == when);
  if (timeout->scope.task != NULL) /* entered once */
    AFUT__RETURN_IF_WRONG_THREAD (timeout->scope.task->future.loop, NULL, );
  if (timeout->scope.state != AFUT__TIMEOUT_ENTERED)
    {
      afut__log (AFUT_LOG_CRITICAL,
                 "%s: cannot change the deadline of a timeout that is %s",
                 __func__,
                 timeout->scope.state == AFUT__TIMEOUT_CREATED ? "not entered"
                 : timeout->scope.state == AFUT__TIMEOUT_EXITED  ? "exited"
                 : timeout->scope.state == AFUT__TIMEOUT_EXPIRED ? "expired"
                                                                 : "expiring");
      return;
    }
  timeout->when = afut__seconds_to_ns (when);
  afut__timeout_schedule (timeout);
}

double
afut_timeout_when (const AfutTimeout *timeout)
{
  AFUT__RETURN_VAL_IF_FAIL (timeout != NULL, AFUT_NO_TIMEOUT);
  if (timeout->when == AFUT__NEVER)
    return AFUT_NO_TIMEOUT;
  return (double) timeout->when / 1e9;
}

bool
afut_timeout_expired (const AfutTimeout *timeout)
{
  AFUT__RETURN_VAL_IF_FAIL (timeout != NULL, false);
  return timeout->scope.state == AFUT__TIMEOUT_EXPIRING
         || timeout->scope.state == AFUT__TIMEOUT_EXPIRED;
}

/* Leaves the scope with *@error passing through it (may be NULL). */
static void
afut__timeout_close (AfutTimeout *t, AfutError **error)
{
  AfutTask *task = t->scope.task;
  afut__scope_unlink (&t->scope);
  afut__handle_clear (&t->handle);
  if (t->scope.state == AFUT__TIMEOUT_EXPIRING)
    {
      t->scope.state = AFUT__TIMEOUT_EXPIRED;
      /* Ours unless more cancel requests came than there were before. */
      if (afut_task_uncancel (task) <= t->cancelling && *error != NULL
          && afut_error_is_cancelled (*error))
        {
          afut_error_free (*error);
          *error = afut_error_new_literal (AFUT_ERROR, AFUT_ERROR_TIMEOUT,
                                           "timed out");
        }
    }
  else
    t->scope.state = AFUT__TIMEOUT_EXITED;
}

static bool
afut__scope_check_innermost (AfutScope *scope, const char *func)
{
  AfutTask *task = scope->task;
  if (task != NULL)
    AFUT__RETURN_IF_WRONG_THREAD_IN (func, task->future.loop, NULL, false);
  if (task == NULL || task->scopes != scope)
    {
      afut__log (AFUT_LOG_CRITICAL,
                 "%s: this scope is not the innermost open one of its task "
                 "(exited twice, or out of order?)",
                 func);
      return false;
    }
  return afut__task_check_current (task, func);
}

bool
afut_timeout_exit (AfutTimeout *timeout)
{
  AFUT__RETURN_VAL_IF_FAIL (timeout != NULL, false);
  AFUT__RETURN_VAL_IF_FAIL (timeout->scope.kind == AFUT__SCOPE_TIMEOUT, false);
  if (!afut__scope_check_innermost (&timeout->scope, __func__))
    return false;
  afut__timeout_close (timeout, &timeout->scope.task->caught);
  return timeout->scope.state == AFUT__TIMEOUT_EXPIRED;
}

/* task groups */

static void afut__group_child_done (AfutFuture *child, void *data);

static AfutTaskGroup *
afut__group_of (AfutScope *scope)
{
  return (AfutTaskGroup *) (void *) ((char *) scope
                                     - offsetof (AfutTaskGroup, scope));
}

static void
afut__group_finalize (AfutTaskGroup *g)
{
  size_t i;
  for (i = 0; i < g->n_errors; i++)
    afut_error_free (g->errors[i]);
  AFUT_FREE (g->errors);
  AFUT_FREE (g->children);
  afut_error_free (g->body_error);
  AFUT_FREE (g->cancel_message);
}

AfutTaskGroup *
afut_task_group_new (AfutTask *task)
{
  AfutTaskGroup *g;
  AFUT__RETURN_VAL_IF_FAIL (task != NULL, NULL);
  if (!afut__task_check_current (task, __func__))
    return NULL;
  g = (AfutTaskGroup *) afut__alloc (sizeof (AfutTaskGroup));
  memset (g, 0, sizeof *g);
  /* Its first reference is the parent's scope chain's. */
  afut__future_init (&g->future, task->future.loop, AFUT__KIND_GROUP);
  afut__scope_push (task, &g->scope, AFUT__SCOPE_GROUP);
  g->cancelling = afut__task_root (task)->n_cancels;
  return g;
}

static void
afut__group_set_cancel (AfutTaskGroup *g, const char *message)
{
  g->propagate_cancel = true;
  AFUT_FREE (g->cancel_message);
  g->cancel_message = message != NULL ? afut__strdup (message) : NULL;
}

static void
afut__group_abort (AfutTaskGroup *g)
{
  size_t i;
  g->aborting = true;
  /* Cancelling queues callbacks, never runs them: the array holds. */
  for (i = 0; i < g->n_children; i++)
    afut_future_cancel (g->children[i]->child, NULL);
}

static void
afut__group_append_error (AfutTaskGroup *g, AfutError *error)
{
  if (g->n_errors == g->errors_cap)
    {
      g->errors_cap = g->errors_cap ? g->errors_cap * 2 : 4;
      g->errors = (AfutError **) afut__realloc (
        g->errors, g->errors_cap * sizeof (AfutError *));
    }
  g->errors[g->n_errors++] = error;
}

/* Every child is done and the block has ended: the group's outcome. */
static void
afut__group_finish (AfutTaskGroup *g)
{
  AfutTask *parent = g->scope.task;
  bool propagate = g->propagate_cancel;
  AfutError *outcome = NULL;

  if (g->parent_cancel_requested
      && afut_task_uncancel (parent) <= g->cancelling)
    propagate = false; /* the cancel was ours */
  if (propagate && g->n_errors == 0)
    outcome = afut__cancelled_error (g->cancel_message);
  else
    {
      if (g->body_error != NULL)
        {
          afut__group_append_error (g, g->body_error);
          g->body_error = NULL;
        }
      if (g->n_errors > 0)
        outcome = afut__group_error ("unhandled errors in a TaskGroup",
                                     g->errors, g->n_errors);
    }
  afut__scope_unlink (&g->scope);
  if (outcome != NULL)
    afut__future_complete_error (&g->future, outcome);
  else
    afut__future_complete_value (&g->future, AFUT_VALUE_NONE);
  afut_future_unref (&g->future); /* the scope chain's */
}

static void
afut__group_child_done (AfutFuture *child, void *data)
{
  AfutGroupLink *link = (AfutGroupLink *) data;
  AfutTaskGroup *g = link->group;
  AfutTask *parent = g->scope.task;

  g->children[link->index] = g->children[--g->n_children];
  g->children[link->index]->index = link->index;
  AFUT_FREE (link);

  if (child->state == AFUT_FUTURE_FAILED
      && afut_error_is_cancelled (child->u.error))
    /* A gather failed by a child's own cancellation: asyncio's group
     * would have had a task ending cancelled there, which it ignores. */
    child->flags |= AFUT__FUTURE_ERROR_RETRIEVED;
  else if (child->state == AFUT_FUTURE_FAILED)
    {
      child->flags |= AFUT__FUTURE_ERROR_RETRIEVED;
      afut__group_append_error (g, afut_error_copy (child->u.error));
      if (parent->future.state != AFUT_FUTURE_PENDING)
        afut__report (g->future.loop,
                      "a task group's child failed after its parent ended",
                      child->u.error, afut__task_name (parent));
      else if (!g->aborting && !g->parent_cancel_requested)
        {
          /* Stop the block: the siblings, and the parent's await. */
          afut__group_abort (g);
          g->parent_cancel_requested = true;
          afut_future_cancel (&parent->future, NULL);
        }
    }
  afut_future_unref (child);
  if (g->exiting && g->n_children == 0 && !g->cancel_pending
      && g->future.state == AFUT_FUTURE_PENDING)
    afut__group_finish (g);
  afut_future_unref (&g->future); /* the link's */
}

typedef struct
{
  AfutTaskGroup *group;
  char *message;
} AfutGroupCancel;

/* A cancel of the exit, a loop turn after it came: where asyncio's
 * __aexit__ takes it, in the task it wakes.  The children are cancelled
 * and the wait goes on, the parent to end cancelled; a group aborting by
 * then ignores it.  With no child left, __aexit__ ends right there: so
 * does the wait. */
static void
afut__group_take_cancel (void *data)
{
  AfutGroupCancel *c = (AfutGroupCancel *) data;
  AfutTaskGroup *g = c->group;
  AfutTask *waiter = g->scope.task;
  g->cancel_pending = false;
  if (g->future.state == AFUT_FUTURE_PENDING)
    {
      AfutTask *root = afut__task_root (waiter);
      /* Cancelled again meanwhile: Task.__step clears _must_cancel, the
       * cancellation it throws being this one already. */
      root->task_flags &= (uint16_t) ~AFUT__TASK_MUST_CANCEL;
      if (!g->aborting)
        {
          afut__group_set_cancel (g, c->message);
          afut__group_abort (g);
        }
      if (g->exiting && g->n_children == 0)
        {
          afut__group_finish (g);
          afut__future_hand_over (&g->future, true);
        }
    }
  AFUT_FREE (c->message);
  AFUT_FREE (c);
  afut_future_unref (&g->future);
}

static bool
afut__group_cancel (AfutTaskGroup *g, const char *message)
{
  /* The parent was cancelled while waiting for the children.  In asyncio
   * that cancels the future __aexit__ waits on, and the task takes the
   * cancellation when it wakes, from the ready queue.  A second cancel
   * before that finds the future done: the task's pending cancel. */
  AfutGroupCancel *c;
  if (g->cancel_pending)
    return false;
  c = (AfutGroupCancel *) afut__alloc (sizeof *c);
  c->group = g;
  c->message = message != NULL ? afut__strdup (message) : NULL;
  g->cancel_pending = true;
  g->future.ref_count++;
  afut__ready_push (g->future.loop, afut__group_take_cancel, c);
  return true;
}

/* A task resuming from @awaited with a cancel pending: in asyncio that
 * cancel is thrown into the group's __aexit__, which absorbs it when the
 * group is aborting; the group's outcome is then what the await raises. */
static bool
afut__group_absorbs_cancel (AfutFuture *awaited)
{
  return awaited != NULL && awaited->kind == AFUT__KIND_GROUP
         && awaited->state != AFUT_FUTURE_PENDING
         && ((AfutTaskGroup *) awaited)->aborting;
}

AfutFuture *
afut_task_group_spawn (AfutTaskGroup *group, AfutFuture *future)
{
  AfutGroupLink *link;
  const char *refusal = NULL;
  if (group == NULL)
    {
      afut__log (AFUT_LOG_CRITICAL, "%s: assertion 'group != NULL' failed",
                 __func__);
      if (future != NULL)
        {
          afut_future_cancel (future, NULL);
          afut_future_unref (future);
        }
      return NULL;
    }
  if (future == NULL)
    {
      afut__log (AFUT_LOG_CRITICAL, "%s: assertion 'future != NULL' failed",
                 __func__);
      return NULL;
    }
  AFUT__RETURN_IF_WRONG_THREAD (group->future.loop, NULL, NULL);
  if (group->future.state != AFUT_FUTURE_PENDING)
    refusal = "is finished";
  else if (group->aborting)
    refusal = "is shutting down";
  else if (future->loop != group->future.loop)
    refusal = "belongs to another loop than the future";
  if (refusal != NULL)
    {
      afut__log (AFUT_LOG_CRITICAL, "%s: the task group %s", __func__,
                 refusal);
      afut_future_cancel (future, NULL);
      afut_future_unref (future);
      return NULL;
    }
  afut__take (future);
  link = (AfutGroupLink *) afut__alloc (sizeof (AfutGroupLink));
  link->group = group;
  link->child = future; /* the caller's reference */
  if (group->n_children == group->children_cap)
    {
      group->children_cap = group->children_cap ? group->children_cap * 2 : 8;
      group->children = (AfutGroupLink **) afut__realloc (
        group->children, group->children_cap * sizeof (AfutGroupLink *));
    }
  link->index = group->n_children;
  group->children[group->n_children++] = link;
  group->future.ref_count++;
  afut_future_add_done_callback (future, afut__group_child_done, link);
  return future;
}

static AfutFuture *
afut__group_exit (AfutTaskGroup *group, AfutError *error, const char *func)
{
  if (group == NULL)
    {
      afut__log (AFUT_LOG_CRITICAL, "%s: assertion 'group != NULL' failed",
                 func);
      afut_error_free (error);
      return NULL;
    }
  if (AFUT__UNLIKELY (!afut__on_loop_thread (group->future.loop))
      && !afut__wrong_thread (group->future.loop, func, NULL))
    {
      afut_error_free (error);
      return NULL;
    }
  if (group->future.state != AFUT_FUTURE_PENDING || group->exiting)
    {
      afut__log (AFUT_LOG_CRITICAL, "%s: the task group was exited already",
                 func);
      afut_error_free (error);
      return NULL;
    }
  if (!afut__scope_check_innermost (&group->scope, func))
    {
      afut_error_free (error);
      return NULL;
    }
  afut_future_ref (&group->future);
  group->exiting = true;
  /* __aexit__ (et, exc): what the task's end inside the block does
   * (afut__group_leave), except that the task goes on to await it. */
  if (error != NULL)
    {
      if (afut_error_is_cancelled (error))
        {
          afut__group_set_cancel (group, error->message);
          afut_error_free (error);
        }
      else
        {
          afut_error_free (group->body_error);
          group->body_error = error;
        }
      if (!group->aborting)
        afut__group_abort (group);
    }
  if (group->n_children == 0)
    afut__group_finish (group);
  return &group->future;
}

AfutFuture *
afut_task_group_exit (AfutTaskGroup *group)
{
  return afut__group_exit (group, NULL, __func__);
}

AfutFuture *
afut_task_group_exit_with_error (AfutTaskGroup *group, AfutError *error)
{
  return afut__group_exit (group, error, __func__);
}

size_t
afut_task_group_get_n_children (AfutTaskGroup *group)
{
  AFUT__RETURN_VAL_IF_FAIL (group != NULL, 0);
  AFUT__RETURN_IF_WRONG_THREAD (group->future.loop, NULL, 0);
  return group->n_children;
}

/* The parent's block ended with *@error (NULL: normally).  True when the
 * group is done, its outcome folded into *@error (and *@group, the owner
 * of its sub-errors: a reference); false when the parent must wait for
 * the children. */
static bool
afut__group_leave (AfutTaskGroup *g, AfutError **error, AfutFuture **group)
{
  if (!g->exiting)
    {
      g->exiting = true;
      if (*error != NULL)
        {
          if (afut_error_is_cancelled (*error))
            afut__group_set_cancel (g, (*error)->message);
          else
            g->body_error = afut_error_copy (*error);
          if (!g->aborting)
            afut__group_abort (g);
        }
      if (g->n_children > 0)
        return false;
      g->future.ref_count++;
      afut__group_finish (g);
    }
  else
    g->future.ref_count++;
  /* Done: its error, if any, replaces the block's. */
  if (g->future.state != AFUT_FUTURE_DONE)
    {
      g->future.flags |= AFUT__FUTURE_ERROR_RETRIEVED;
      afut_error_free (*error);
      *error = afut_error_copy (g->future.u.error);
      afut_future_unref (*group);
      *group = afut_future_ref (&g->future);
    }
  afut_future_unref (&g->future);
  return true;
}

/* ---- task completion through its scopes ---- */

/* Completes @task with @error, or with the value stored in its future's
 * value fields when @error is NULL, after leaving every scope still
 * open; a task group may make it wait for its children first.  @group
 * (transfer none): the owner of @error's sub-errors if it is a group
 * error taken from another future. */
static void
afut__task_finish (AfutTask *task, AfutError *error, AfutFuture *group_in)
{
  AfutFuture *group = group_in != NULL ? afut_future_ref (group_in) : NULL;
  /* What the body caught is behind it. */
  afut_future_unref (afut__task_take_caught_group (task));
  while (task->scopes != NULL)
    {
      AfutScope *scope = task->scopes;
      AfutTaskGroup *g;
      if (scope->kind == AFUT__SCOPE_TIMEOUT)
        {
          afut__timeout_close ((AfutTimeout *) (void *) scope, &error);
          continue;
        }
      g = afut__group_of (scope);
      /* Unless an exit already waits (the block ends when it does),
       * leave the group; it may have to wait for the children. */
      if (!(g->exiting && g->future.state == AFUT_FUTURE_PENDING)
          && afut__group_leave (g, &error, &group))
        continue;
      /* Wait for the children, as `async with` does, holding the
       * outcome (the group's error replaces it if it is an error: its
       * sub-errors need no owner kept). */
      afut_future_unref (group);
      if (error != NULL)
        {
          task->task_flags |= AFUT__TASK_STASHED_ERROR;
          task->future.u.error = error;
        }
      task->task_flags |= AFUT__TASK_UNWINDING;
      afut_future_unref (task->awaiting);
      task->awaiting = afut_future_ref (&g->future);
      afut_future_add_done_callback (&g->future, afut__task_wakeup, task);
      task->task_flags |= AFUT__TASK_WAITING;
      afut__task_deliver_cancel (task, &g->future);
      return;
    }

  if (error == NULL && (task->task_flags & AFUT__TASK_MUST_CANCEL))
    /* asyncio: a task cancelled right before its coroutine returns ends
     * cancelled. */
    error = afut__cancelled_error (task->c.cancel_message);
  if (error != NULL)
    {
      if (task->future.value_type == AFUT_VALUE_POINTER
          && task->future.u.value.destroy != NULL)
        task->future.u.value.destroy (task->future.u.value.v.pointer);
      afut__future_complete_error_from (&task->future, error, group);
    }
  else
    afut__future_complete_value (&task->future,
                                 (AfutValueType) task->future.value_type);
  afut_future_unref (group);
  afut__task_done (task);
}

/* The children of the group the task waited on are done: go on leaving
 * its scopes. */
static void
afut__task_resume_unwind (AfutTask *task)
{
  AfutTaskGroup *g = (AfutTaskGroup *) task->awaiting;
  AfutTask *root = afut__task_root (task);
  AfutError *error = NULL;
  bool cancelled = false;
  task->task_flags &= (uint16_t) ~AFUT__TASK_UNWINDING;
  /* A cancel that came once the children were done is thrown into the
   * block's __aexit__ in asyncio: an aborting group absorbs it, others
   * end cancelled. */
  if (root->task_flags & AFUT__TASK_MUST_CANCEL)
    {
      root->task_flags &= (uint16_t) ~AFUT__TASK_MUST_CANCEL;
      cancelled = !g->aborting;
    }
  if (task->task_flags & AFUT__TASK_STASHED_ERROR)
    {
      task->task_flags &= (uint16_t) ~AFUT__TASK_STASHED_ERROR;
      error = task->future.u.error;
      task->future.u.error = NULL;
      task->future.value_type = AFUT_VALUE_NONE;
    }
  if (g->future.state != AFUT_FUTURE_DONE)
    {
      g->future.flags |= AFUT__FUTURE_ERROR_RETRIEVED;
      afut_error_free (error);
      error = afut_error_copy (g->future.u.error);
    }
  if (cancelled && error == NULL)
    {
      if (task->future.value_type == AFUT_VALUE_POINTER
          && task->future.u.value.destroy != NULL)
        task->future.u.value.destroy (task->future.u.value.v.pointer);
      task->future.value_type = AFUT_VALUE_NONE;
      task->future.u.value.destroy = NULL;
      error = afut__cancelled_error (root->c.cancel_message);
    }
  task->awaiting = NULL;
  /* The group owns the sub-errors of the error it failed with. */
  afut__task_finish (task, error,
                     g->future.state == AFUT_FUTURE_FAILED ? &g->future
                                                           : NULL);
  afut_future_unref (&g->future);
}

/* ---- fibers ----
 *
 * A fiber is an AfutTask whose step function (afut__fiber_step) switches
 * to the fiber's own stack and back.  Inside, afut_await() goes through
 * afut__task_await() as AFUT_AWAIT_TRY does, so every rule of the tasks
 * holds unchanged; if the await suspends, the fiber switches back to
 * whoever resumed it, and the next step switches in again, where the
 * await returns what afut__task_run_step() left in task->raised.  The
 * body's return completes the task through the same functions as
 * AFUT_RETURN_* and AFUT_THROW, on the resumer's stack once the fiber's
 * stack is back in the pool.
 *
 * Who resumes a fiber varies: the loop's dispatch on the thread's stack,
 * or another task's code, a fiber's included, when a future it completes
 * hands over to its waiter inline (afut__future_hand_over).  Each switch
 * in records where it came from, and the fiber switches back there. */

/* The stack: one mapping of [guard page][usable stack][AfutFiberStack].
 * A guard page (PROT_NONE) at the low end catches an overflow where it
 * happens, but costs the mapping a second VMA: only while the process's
 * guarded stacks are below a quarter of vm.max_map_count.  Every stack
 * keeps its lowest bytes zero (memory never touched stays on the zero
 * page: no RSS), checked at every switch out of the fiber. */
typedef struct AfutFiberStack AfutFiberStack;
struct AfutFiberStack
{
  AfutFiberStack *next; /* in the thread's pool */
  char *base;           /* the mapping */
  size_t map_size;
  char *lo;             /* the lowest usable byte: the canary */
  char *hi;             /* the stack's top, 16-aligned, below this struct */
  bool guarded;
#ifdef AFUT__VALGRIND
  unsigned vg_id;
#endif
#if !AFUT__FIBER_ASM
  ucontext_t fiber_uc;
  ucontext_t resumer_uc;
#endif
};

enum
{
  AFUT__FIBER_NEW,   /* no stack yet */
  AFUT__FIBER_BODY,  /* its body runs (or is suspended) on its stack */
  AFUT__FIBER_ENDED  /* the body returned: f->result holds its outcome */
};

typedef struct AfutFiber AfutFiber;
struct AfutFiber
{
  AfutTask task;
  AfutFiberFunc func;
  void *user_data;
  AfutDestroyNotify destroy;
  AfutFiberStack *stack;
  size_t stack_size; /* 0: the default */
  void *sp;          /* the fiber's saved stack pointer, while switched out */
  void *resumer_sp;  /* its resumer's, while the fiber runs */
  AfutFiber *outer;  /* the fiber running when this one was switched to */
  AfutFuture *result; /* what the body returned; lends its pointer value */
  int phase;
#ifdef AFUT__ASAN
  void *asan_fake;   /* the fiber's fake stack, while switched out */
  const void *resumer_bottom;
  size_t resumer_size;
#endif
#ifdef AFUT__TSAN
  void *tsan_fiber;
  void *tsan_resumer;
#endif
};

#define AFUT__FIBER_MIN_STACK (16 * 1024)
#define AFUT__FIBER_CANARY_BYTES 64
#define AFUT__FIBER_POOL_MAX 1024

static AFUT__THREAD_LOCAL AfutFiber *afut__fiber_current;
static AFUT__THREAD_LOCAL AfutFiberStack *afut__fiber_pool;
static AFUT__THREAD_LOCAL size_t afut__fiber_pool_len;
static size_t afut__fiber_n_guarded; /* atomic: guarded stacks, process-wide */

static AfutFuture *afut__future_lender (AfutFuture *future);

/* the switch
 *
 * afut__ctx_switch (&save_sp, load_sp) saves the callee-saved state the
 * ABI says a call preserves on the current stack, stores the stack
 * pointer in save_sp, loads load_sp and restores the state saved there,
 * then returns into that context.  x86-64 SysV: rbx, rbp, r12-r15, the
 * MXCSR control bits and the x87 control word.  AArch64 AAPCS64:
 * x19-x28, the frame pointer x29, the link register x30, d8-d15 and
 * FPCR.  A new context is laid out as if it had switched out from the
 * start of afut__ctx_entry, which calls the entry function with its
 * argument; its CFI marks the return address undefined, so debuggers stop
 * unwinding at the fiber's base.  Written from the two ABI documents. */
#if AFUT__FIBER_ASM && defined(__x86_64__)
__asm__ (".text\n"
         ".p2align 4\n"
         ".globl afut__ctx_switch\n"
         ".hidden afut__ctx_switch\n"
         ".type afut__ctx_switch,@function\n"
         "afut__ctx_switch:\n"
         "  .cfi_startproc\n"
         "  pushq %rbp\n"
         "  pushq %rbx\n"
         "  pushq %r12\n"
         "  pushq %r13\n"
         "  pushq %r14\n"
         "  pushq %r15\n"
         "  subq $8, %rsp\n"
         "  stmxcsr (%rsp)\n"
         "  fnstcw 4(%rsp)\n"
         "  movq %rsp, (%rdi)\n"
         "  movq %rsi, %rsp\n"
         "  ldmxcsr (%rsp)\n"
         "  fldcw 4(%rsp)\n"
         "  addq $8, %rsp\n"
         "  popq %r15\n"
         "  popq %r14\n"
         "  popq %r13\n"
         "  popq %r12\n"
         "  popq %rbx\n"
         "  popq %rbp\n"
         "  ret\n"
         "  .cfi_endproc\n"
         ".size afut__ctx_switch, .-afut__ctx_switch\n"
         /* A new context's first return lands here, the entry function in
          * r12 and its argument in r13, rsp 16-byte aligned. */
         ".p2align 4\n"
         ".globl afut__ctx_entry\n"
         ".hidden afut__ctx_entry\n"
         ".type afut__ctx_entry,@function\n"
         "afut__ctx_entry:\n"
         "  .cfi_startproc\n"
         "  .cfi_undefined rip\n"
         "  movq %r13, %rdi\n"
         "  callq *%r12\n"
         "  ud2\n"
         "  .cfi_endproc\n"
         ".size afut__ctx_entry, .-afut__ctx_entry\n");
#define AFUT__CTX_FRAME 64
#elif AFUT__FIBER_ASM && defined(__aarch64__)
__asm__ (".text\n"
         ".p2align 4\n"
         ".globl afut__ctx_switch\n"
         ".hidden afut__ctx_switch\n"
         ".type afut__ctx_switch,%function\n"
         "afut__ctx_switch:\n"
         "  .cfi_startproc\n"
         "  sub sp, sp, #176\n"
         "  stp x19, x20, [sp, #0]\n"
         "  stp x21, x22, [sp, #16]\n"
         "  stp x23, x24, [sp, #32]\n"
         "  stp x25, x26, [sp, #48]\n"
         "  stp x27, x28, [sp, #64]\n"
         "  stp x29, x30, [sp, #80]\n"
         "  stp d8, d9, [sp, #96]\n"
         "  stp d10, d11, [sp, #112]\n"
         "  stp d12, d13, [sp, #128]\n"
         "  stp d14, d15, [sp, #144]\n"
         "  mrs x9, fpcr\n"
         "  str x9, [sp, #160]\n"
         "  mov x9, sp\n"
         "  str x9, [x0]\n"
         "  mov sp, x1\n"
         "  ldp x19, x20, [sp, #0]\n"
         "  ldp x21, x22, [sp, #16]\n"
         "  ldp x23, x24, [sp, #32]\n"
         "  ldp x25, x26, [sp, #48]\n"
         "  ldp x27, x28, [sp, #64]\n"
         "  ldp x29, x30, [sp, #80]\n"
         "  ldp d8, d9, [sp, #96]\n"
         "  ldp d10, d11, [sp, #112]\n"
         "  ldp d12, d13, [sp, #128]\n"
         "  ldp d14, d15, [sp, #144]\n"
         "  ldr x9, [sp, #160]\n"
         "  msr fpcr, x9\n"
         "  add sp, sp, #176\n"
         "  ret\n"
         "  .cfi_endproc\n"
         ".size afut__ctx_switch, .-afut__ctx_switch\n"
         /* The entry function in x19, its argument in x20. */
         ".p2align 4\n"
         ".globl afut__ctx_entry\n"
         ".hidden afut__ctx_entry\n"
         ".type afut__ctx_entry,%function\n"
         "afut__ctx_entry:\n"
         "  .cfi_startproc\n"
         "  .cfi_undefined x30\n"
         "  mov x0, x20\n"
         "  blr x19\n"
         "  brk #0\n"
         "  .cfi_endproc\n"
         ".size afut__ctx_entry, .-afut__ctx_entry\n");
#define AFUT__CTX_FRAME 176
#endif

#if AFUT__FIBER_ASM
#if defined(__GNUC__) || defined(__clang__)
#define AFUT__HIDDEN __attribute__ ((visibility ("hidden")))
#else
#define AFUT__HIDDEN
#endif
AFUT__HIDDEN void afut__ctx_switch (void **save_sp, void *load_sp);
AFUT__HIDDEN void afut__ctx_entry (void);

/* The saved frame of a context that has not run yet: it "returns" into
 * afut__ctx_entry, which calls @entry (@arg). */
static void *
afut__ctx_make (char *top, void (*entry) (void *), void *arg)
{
  unsigned char *sp = (unsigned char *) top - AFUT__CTX_FRAME;
  /* Function pointers go in as bytes: ISO C has no cast to void *. */
  void (*e) (void *) = entry;
  void (*ret) (void) = afut__ctx_entry;
  memset (sp, 0, AFUT__CTX_FRAME);
#if defined(__x86_64__)
  {
    uint32_t mxcsr;
    uint16_t fpucw;
    __asm__ volatile ("stmxcsr %0" : "=m"(mxcsr));
    __asm__ volatile ("fnstcw %0" : "=m"(fpucw));
    memcpy (sp + 0, &mxcsr, 4);
    memcpy (sp + 4, &fpucw, 2);
    memcpy (sp + 24, &arg, 8); /* r13 */
    memcpy (sp + 32, &e, 8);   /* r12 */
    memcpy (sp + 56, &ret, 8); /* the return address */
  }
#else
  {
    uint64_t fpcr;
    __asm__ volatile ("mrs %0, fpcr" : "=r"(fpcr));
    memcpy (sp + 0, &e, 8);    /* x19 */
    memcpy (sp + 8, &arg, 8);  /* x20 */
    memcpy (sp + 88, &ret, 8); /* x30 */
    memcpy (sp + 160, &fpcr, 8);
  }
#endif
  return sp;
}
#else
/* makecontext passes ints only: a new context finds its fiber here. */
static AFUT__THREAD_LOCAL AfutFiber *afut__fiber_starting;
static void afut__fiber_main (void *arg);

static void
afut__fiber_trampoline (void)
{
  afut__fiber_main (afut__fiber_starting);
}
#endif

/* stacks */

static size_t
afut__page_size (void)
{
  static size_t page;
  if (page == 0)
    {
      long n = sysconf (_SC_PAGESIZE);
      page = n > 0 ? (size_t) n : 4096;
    }
  return page;
}

/* How many stacks may have a guard page: a quarter of the kernel's map
 * count, each guarded stack taking two mappings, and the rest of the
 * process keeping the other half. */
static size_t
afut__fiber_guard_budget (void)
{
  static size_t budget;
  if (budget == 0)
    {
      size_t n = 65530;
#ifdef __linux__
      FILE *f = fopen ("/proc/sys/vm/max_map_count", "r");
      if (f != NULL)
        {
          unsigned long v;
          if (fscanf (f, "%lu", &v) == 1 && v > 0)
            n = (size_t) v;
          fclose (f);
        }
#endif
      budget = n / 4 > 0 ? n / 4 : 1;
    }
  return budget;
}

static AfutFiberStack *
afut__fiber_stack_new (size_t size)
{
  size_t page = afut__page_size ();
  size_t usable = (size + page - 1) / page * page;
  size_t map_size;
  bool guarded = false;
  char *base;
  AfutFiberStack *s;
  int flags = MAP_PRIVATE | AFUT__MAP_ANONYMOUS;

  if (__atomic_add_fetch (&afut__fiber_n_guarded, 1, __ATOMIC_RELAXED)
      <= afut__fiber_guard_budget ())
    guarded = true;
  else
    __atomic_sub_fetch (&afut__fiber_n_guarded, 1, __ATOMIC_RELAXED);
  map_size = usable + (guarded ? page : 0);
#ifdef MAP_NORESERVE
  flags |= MAP_NORESERVE;
#endif
#ifdef MAP_STACK
  flags |= MAP_STACK;
#endif
  base = (char *) mmap (NULL, map_size, PROT_READ | PROT_WRITE, flags, -1, 0);
  if (base == (char *) MAP_FAILED)
    {
      if (guarded)
        __atomic_sub_fetch (&afut__fiber_n_guarded, 1, __ATOMIC_RELAXED);
      return NULL;
    }
  if (guarded && mprotect (base, page, PROT_NONE) != 0)
    {
      guarded = false;
      __atomic_sub_fetch (&afut__fiber_n_guarded, 1, __ATOMIC_RELAXED);
    }
  s = (AfutFiberStack *) (void *) ((uintptr_t) (base + map_size
                                                - sizeof (AfutFiberStack))
                                   & ~(uintptr_t) 63);
  s->next = NULL;
  s->base = base;
  s->map_size = map_size;
  s->lo = base + (guarded ? page : 0);
  s->hi = (char *) ((uintptr_t) s & ~(uintptr_t) 15);
  s->guarded = guarded;
#ifdef AFUT__VALGRIND
  s->vg_id = VALGRIND_STACK_REGISTER (s->lo, s->hi);
#endif
  return s;
}

static void
afut__fiber_stack_free (AfutFiberStack *s)
{
  if (s->guarded)
    __atomic_sub_fetch (&afut__fiber_n_guarded, 1, __ATOMIC_RELAXED);
#ifdef AFUT__VALGRIND
  VALGRIND_STACK_DEREGISTER (s->vg_id);
#endif
  munmap (s->base, s->map_size);
}

static size_t
afut__fiber_stack_usable (size_t size)
{
  if (size == 0)
    size = AFUT_FIBER_STACK_SIZE;
  return size < AFUT__FIBER_MIN_STACK ? AFUT__FIBER_MIN_STACK : size;
}

/* A stack of @size bytes (0: the default), from the pool if it has one. */
static AfutFiberStack *
afut__fiber_stack_take (size_t size)
{
  AfutFiberStack *s = afut__fiber_pool;
  if (size == 0 && s != NULL)
    {
      afut__fiber_pool = s->next;
      afut__fiber_pool_len--;
      s->next = NULL;
      return s;
    }
  return afut__fiber_stack_new (afut__fiber_stack_usable (size));
}

/* @live: the lowest byte the stack's live frames may use (its saved
 * stack pointer), s->lo if unknown. */
static void
afut__fiber_stack_release (AfutFiberStack *s, bool pooled, const void *live)
{
#ifdef AFUT__ASAN
  /* Frames that never returned (the fiber's base, its last switch) leave
   * their redzones poisoned: the next fiber starts clean. */
  if ((const char *) live < s->lo || (const char *) live > s->hi)
    live = s->lo;
  __asan_unpoison_memory_region (live, (size_t) (s->hi - (const char *) live));
#else
  (void) live;
#endif
  if (pooled && afut__fiber_pool_len < AFUT__FIBER_POOL_MAX)
    {
      s->next = afut__fiber_pool;
      afut__fiber_pool = s;
      afut__fiber_pool_len++;
    }
  else
    afut__fiber_stack_free (s);
}

/* Gives the thread's pooled stacks back to the system (a loop is freed). */
static void
afut__fiber_pool_trim (void)
{
  while (afut__fiber_pool != NULL)
    {
      AfutFiberStack *s = afut__fiber_pool;
      afut__fiber_pool = s->next;
      afut__fiber_stack_free (s);
    }
  afut__fiber_pool_len = 0;
}

static void
afut__fiber_check_stack (AfutFiber *f)
{
  const uint64_t *w = (const uint64_t *) (void *) f->stack->lo;
  /* Unrolled: this runs at every switch out. */
  uint64_t any = (w[0] | w[1]) | (w[2] | w[3]) | (w[4] | w[5]) | (w[6] | w[7]);
#if AFUT__FIBER_CANARY_BYTES != 64
#error "afut__fiber_check_stack reads 64 bytes"
#endif
  if (AFUT__UNLIKELY (any != 0))
    {
      afut__log (AFUT_LOG_CRITICAL,
                 "fiber '%s' overflowed its stack of %zu bytes (its lowest "
                 "bytes were written): make it bigger with "
                 "AfutFiberOptions.stack_size; memory next to it may be "
                 "corrupt, aborting",
                 afut__task_name (&f->task),
                 (size_t) (f->stack->hi - f->stack->lo));
      abort ();
    }
}

/* switching */

static void afut__fiber_main (void *arg);

/* From the resumer (the loop, or another task's code) into @f. */
static void
afut__fiber_switch_in (AfutFiber *f)
{
#ifdef AFUT__ASAN
  void *fake = NULL;
#endif
  f->outer = afut__fiber_current;
  afut__fiber_current = f;
#ifdef AFUT__TSAN
  f->tsan_resumer = __tsan_get_current_fiber ();
  __tsan_switch_to_fiber (f->tsan_fiber, 0);
#endif
#ifdef AFUT__ASAN
  __sanitizer_start_switch_fiber (&fake, f->stack->lo,
                                  (size_t) (f->stack->hi - f->stack->lo));
#endif
#if AFUT__FIBER_ASM
  afut__ctx_switch (&f->resumer_sp, f->sp);
#else
  afut__fiber_starting = f;
  swapcontext (&f->stack->resumer_uc, &f->stack->fiber_uc);
#endif
#ifdef AFUT__ASAN
  __sanitizer_finish_switch_fiber (fake, NULL, NULL);
#endif
  afut__fiber_current = f->outer;
}

/* From @f, running, back to its resumer; returns when stepped again
 * (never, if @last). */
static void
afut__fiber_switch_out (AfutFiber *f, bool last)
{
  afut__fiber_check_stack (f);
#ifdef AFUT__TSAN
  __tsan_switch_to_fiber (f->tsan_resumer, 0);
#endif
#ifdef AFUT__ASAN
  __sanitizer_start_switch_fiber (last ? NULL : &f->asan_fake,
                                  f->resumer_bottom, f->resumer_size);
#else
  (void) last;
#endif
#if AFUT__FIBER_ASM
  afut__ctx_switch (&f->sp, f->resumer_sp);
#else
  swapcontext (&f->stack->fiber_uc, &f->stack->resumer_uc);
#endif
#ifdef AFUT__ASAN
  __sanitizer_finish_switch_fiber (f->asan_fake, &f->resumer_bottom,
                                   &f->resumer_size);
#endif
}

/* the await */

/* The fiber whose body runs here, with no nested main loop between its
 * step and the caller: a stackless step running on a fiber's stack (a
 * coroutine it awaited inline) is not the fiber, nor is a plain callback
 * of a nested main loop that the body runs (a modal wait): switching out
 * there would leave that main loop's frames suspended, as
 * afut_task_get_current() is NULL there. */
static inline AfutFiber *
afut__fiber_here (void)
{
  AfutFiber *f = afut__fiber_current;
  return f != NULL && f->task.future.loop->current_task == &f->task
             && f->task.future.state == AFUT_FUTURE_PENDING
             && AFUT_NESTING_DEPTH () == f->task.future.loop->step_depth
           ? f
           : NULL;
}

/* afut__fiber_here(), or NULL reported. */
static AfutFiber *
afut__fiber_running (const char *func)
{
  AfutFiber *f = afut__fiber_here ();
  if (AFUT__LIKELY (f != NULL))
    return f;
  f = afut__fiber_current;
  if (f != NULL && f->task.future.loop->current_task == &f->task
      && AFUT_NESTING_DEPTH () != f->task.future.loop->step_depth)
    afut__log (AFUT_LOG_CRITICAL,
               "%s: called in a callback of a main loop nested inside fiber "
               "'%s', not in the fiber's body: a fiber awaits only where its "
               "own step runs",
               func, afut__task_name (&f->task));
  else
    afut__log (AFUT_LOG_CRITICAL,
               "%s: not inside a fiber's body (awaits in a stackless task's "
               "step are AFUT_AWAIT)",
               func);
  return NULL;
}

/* `await future` as AFUT_AWAIT_TRY: what it raised, or NULL. */
static AfutError *
afut__fiber_await (AfutFiber *f, AfutFuture *future)
{
  AfutError *e;
  if (afut__task_await (&f->task, future, 0))
    afut__fiber_switch_out (f, false);
  e = f->task.raised;
  f->task.raised = NULL;
  return e;
}

static void
afut__propagate (AfutError **dest, AfutError *error)
{
  if (dest != NULL)
    *dest = error;
  else
    afut_error_free (error);
}

static AfutError *
afut__fiber_misuse_error (const char *func)
{
  return afut_error_new (AFUT_ERROR, AFUT_ERROR_INVALID_STATE,
                         "%s called outside a fiber's body", func);
}

static AfutFuture *
afut__future_new_failed (AfutLoop *loop, AfutError *error)
{
  AfutFuture *f = afut__future_init (
    (AfutFuture *) afut__alloc (sizeof (AfutFuture)), loop, AFUT__KIND_PLAIN);
  afut__future_complete_error (f, error);
  return f;
}

AfutFuture *
afut_await (AfutFuture *future)
{
  AfutFiber *f;
  AfutFuture *awaited;
  AfutError *e;
  if (future != NULL)
    AFUT__RETURN_IF_WRONG_THREAD (future->loop, NULL, NULL);
  f = afut__fiber_running (__func__);
  if (f == NULL)
    {
      AfutLoop *loop = future != NULL ? future->loop : afut__running_loop;
      AfutFuture *failed = NULL;
      if (loop != NULL && !loop->closed)
        failed = afut__future_new_failed (loop,
                                          afut__fiber_misuse_error (__func__));
      afut_future_unref (future);
      return failed;
    }
  e = afut__fiber_await (f, future);
  awaited = f->task.awaiting;
  if (e == NULL)
    return afut_future_ref (awaited);
  /* The awaited future's own error, or one the await raised instead (a
   * cancellation that came as it completed, a misuse). */
  if (awaited != NULL && awaited->state != AFUT_FUTURE_DONE
      && awaited->u.error->domain == e->domain
      && awaited->u.error->code == e->code
      && strcmp (awaited->u.error->message, e->message) == 0)
    {
      afut_error_free (e);
      return afut_future_ref (awaited);
    }
  return afut__future_new_failed (f->task.future.loop, e);
}

/* afut_await() for the typed forms: the awaited future, or NULL with
 * *@error set. */
static AfutFuture *
afut__fiber_await_value (AfutFuture *future, AfutError **error,
                         const char *func)
{
  AfutFiber *f;
  AfutError *e;
  if (future != NULL)
    AFUT__RETURN_IF_WRONG_THREAD_IN (func, future->loop, NULL, NULL);
  f = afut__fiber_running (func);
  if (f == NULL)
    {
      afut_future_unref (future);
      afut__propagate (error, afut__fiber_misuse_error (func));
      return NULL;
    }
  e = afut__fiber_await (f, future);
  if (e != NULL)
    {
      afut__propagate (error, e);
      return NULL;
    }
  return f->task.awaiting;
}

bool
afut_await_check (AfutFuture *future, AfutError **error)
{
  return afut__fiber_await_value (future, error, __func__) != NULL;
}

int64_t
afut_await_int (AfutFuture *future, AfutError **error)
{
  AfutFuture *done = afut__fiber_await_value (future, error, __func__);
  return done != NULL ? afut_future_get_int (done) : 0;
}

double
afut_await_double (AfutFuture *future, AfutError **error)
{
  AfutFuture *done = afut__fiber_await_value (future, error, __func__);
  return done != NULL ? afut_future_get_double (done) : 0.0;
}

void *
afut_await_pointer (AfutFuture *future, AfutError **error)
{
  AfutFuture *done = afut__fiber_await_value (future, error, __func__);
  return done != NULL ? afut_future_steal_pointer (done) : NULL;
}

bool
afut_fiber_yield (AfutError **error)
{
  AfutFiber *f = afut__fiber_running (__func__);
  AfutError *e;
  if (f == NULL)
    {
      afut__propagate (error, afut__fiber_misuse_error (__func__));
      return false;
    }
  afut__task_yield (&f->task, 0);
  afut__fiber_switch_out (f, false);
  e = f->task.raised;
  f->task.raised = NULL;
  if (e == NULL)
    return true;
  afut__propagate (error, e);
  return false;
}

AfutTask *
afut_fiber_get_current (void)
{
  AfutFiber *f = afut__fiber_here ();
  return f != NULL ? &f->task : NULL;
}

/* the body */

static void
afut__fiber_main (void *arg)
{
  AfutFiber *f = (AfutFiber *) arg;
  AfutFuture *r;
#ifdef AFUT__ASAN
  __sanitizer_finish_switch_fiber (NULL, &f->resumer_bottom,
                                   &f->resumer_size);
#endif
  r = f->func (f->user_data);
  /* A scope whose struct lived in the body's frames is gone with them,
   * and its timer would fire into whatever reuses that memory. */
  if (AFUT__UNLIKELY (f->task.scopes != NULL
                      && (char *) f->task.scopes >= f->stack->lo
                      && (char *) f->task.scopes < f->stack->hi))
    {
      afut__log (AFUT_LOG_CRITICAL,
                 "fiber '%s' returned inside a timeout it entered on its "
                 "stack: leave it (afut_timeout_exit_with_error) before "
                 "returning; aborting",
                 afut__task_name (&f->task));
      abort ();
    }
  /* `return await r` */
  if (r != NULL && r->state == AFUT_FUTURE_PENDING)
    {
      AfutFuture *done = afut_await (r);
      r = done;
    }
  f->result = r;
  f->phase = AFUT__FIBER_ENDED;
  afut__fiber_switch_out (f, true);
  abort (); /* an ended fiber is never switched to */
}

/* The body has returned: its stack goes back, its outcome completes the
 * task (still in the task's step, so the task is running). */
static void
afut__fiber_end (AfutFiber *f)
{
  AfutTask *task = &f->task;
  AfutFuture *r = f->result;
  f->result = NULL;
#if AFUT__FIBER_ASM
  afut__fiber_stack_release (f->stack, f->stack_size == 0, f->sp);
#else
  afut__fiber_stack_release (f->stack, f->stack_size == 0, f->stack->lo);
#endif
  f->stack = NULL;
#ifdef AFUT__TSAN
  __tsan_destroy_fiber (f->tsan_fiber);
  f->tsan_fiber = NULL;
#endif
  if (f->destroy != NULL)
    {
      AfutDestroyNotify destroy = f->destroy;
      f->destroy = NULL;
      destroy (f->user_data);
    }
  if (r == NULL)
    {
      afut__task_return_none (task);
      return;
    }
  switch ((AfutFutureState) r->state)
    {
    case AFUT_FUTURE_DONE:
      switch ((AfutValueType) r->value_type)
        {
        case AFUT_VALUE_INT:
          afut__task_return_int (task, r->u.value.v.v_int);
          break;
        case AFUT_VALUE_DOUBLE:
          afut__task_return_double (task, r->u.value.v.v_double);
          break;
        case AFUT_VALUE_POINTER:
          if (r->ref_count == 1 && afut__future_lender (r) == NULL)
            {
              /* Ours alone: the value moves into the fiber's future. */
              AfutDestroyNotify destroy = r->u.value.destroy;
              r->u.value.destroy = NULL;
              afut__task_return_pointer (task, r->u.value.v.pointer, destroy);
            }
          else
            {
              /* Shared: @r keeps it, and lends it to the fiber. */
              f->result = afut_future_ref (r);
              afut__task_return_pointer (task, r->u.value.v.pointer, NULL);
            }
          break;
        default:
          afut__task_return_none (task);
          break;
        }
      break;
    case AFUT_FUTURE_PENDING:
      /* afut_await() returns done futures only */
      afut__task_return_none (task);
      break;
    default:
      r->flags |= AFUT__FUTURE_ERROR_RETRIEVED;
      afut__task_throw (task, afut_error_copy (r->u.error));
      break;
    }
  afut_future_unref (r);
}

static void
afut__fiber_step (AfutTask *task)
{
  AfutFiber *f = (AfutFiber *) task;
  if (f->phase == AFUT__FIBER_NEW)
    {
      f->stack = afut__fiber_stack_take (f->stack_size);
      if (f->stack == NULL)
        {
          int err = errno;
          afut__task_throw (task, afut_error_new (
                                    AFUT_ERRNO_ERROR, err,
                                    "no stack for fiber '%s': %s",
                                    afut__task_name (task), strerror (err)));
          return;
        }
#if AFUT__FIBER_ASM
      f->sp = afut__ctx_make (f->stack->hi, afut__fiber_main, f);
#else
      getcontext (&f->stack->fiber_uc);
      f->stack->fiber_uc.uc_stack.ss_sp = f->stack->lo;
      f->stack->fiber_uc.uc_stack.ss_size = (size_t) (f->stack->hi
                                                      - f->stack->lo);
      f->stack->fiber_uc.uc_link = NULL;
      makecontext (&f->stack->fiber_uc, afut__fiber_trampoline, 0);
#endif
#ifdef AFUT__TSAN
      f->tsan_fiber = __tsan_create_fiber (0);
#endif
      f->phase = AFUT__FIBER_BODY;
    }
  afut__fiber_switch_in (f);
  if (f->phase == AFUT__FIBER_ENDED)
    afut__fiber_end (f);
}

static void
afut__fiber_finalize (AfutTask *task)
{
  AfutFiber *f = (AfutFiber *) task;
  if (f->stack != NULL)
    {
      /* Only a loop closed with a fiber that would not end frees one
       * whose body is suspended: its frames are dropped unwound. */
      afut__log (AFUT_LOG_WARNING,
                 "fiber '%s' freed while suspended: its stack is released "
                 "with the body's frames never unwound",
                 afut__task_name (task));
      afut__fiber_stack_release (f->stack, false, f->stack->lo);
      f->stack = NULL;
#ifdef AFUT__TSAN
      __tsan_destroy_fiber (f->tsan_fiber);
#endif
    }
  if (f->destroy != NULL)
    f->destroy (f->user_data);
  afut_future_unref (f->result);
}

/* The future whose pointer value a fiber's lends (afut__future_lender). */
static AfutFuture *
afut__fiber_lender (AfutFuture *future)
{
  AfutTask *task = (AfutTask *) future;
  return task->func == afut__fiber_step ? ((AfutFiber *) task)->result : NULL;
}

/* A call that would make something on @loop (NULL: the running loop, or
 * the thread's default) from another thread than the loop's: reported,
 * and true.  It runs before anything the call was handed is consumed. */
static bool
afut__refused_here (AfutLoop *loop, const char *func)
{
  if (loop == NULL)
    loop = afut__running_loop;
  if (loop == NULL)
    loop = afut_loop_get_thread_default ();
  return loop != NULL && !afut__on_loop_thread (loop)
         && !afut__wrong_thread (loop, func, NULL);
}

static AfutFuture *
afut__fiber_create (AfutLoop *loop, const char *name, size_t stack_size,
                    bool lazy, AfutFiberFunc func, void *user_data,
                    AfutDestroyNotify destroy, const char *caller)
{
  AfutFuture *future;
  AfutFiber *f;
  if (func == NULL)
    {
      afut__log (AFUT_LOG_CRITICAL, "%s: assertion 'func != NULL' failed",
                 caller);
      if (destroy != NULL)
        destroy (user_data);
      return NULL;
    }
  if (afut__refused_here (loop, caller))
    return NULL; /* @user_data stays the caller's, as a refused call's */
  future = afut__task_create (loop, afut__fiber_step, sizeof (AfutFiber),
                              NULL, name, afut__fiber_finalize, lazy, caller);
  if (future == NULL)
    {
      if (destroy != NULL)
        destroy (user_data);
      return NULL;
    }
  /* The first step runs on a later iteration: filling in now is in time. */
  f = (AfutFiber *) future;
  f->func = func;
  f->user_data = user_data;
  f->destroy = destroy;
  f->stack_size = stack_size;
  return future;
}

AfutFuture *
afut_fiber_new (AfutFiberFunc func, void *user_data, AfutDestroyNotify destroy)
{
  return afut__fiber_create (NULL, NULL, 0, false, func, user_data, destroy,
                             __func__);
}

AfutFuture *
afut_fiber_new_full (AfutLoop *loop, const AfutFiberOptions *options,
                     AfutFiberFunc func, void *user_data,
                     AfutDestroyNotify destroy)
{
  size_t size = options != NULL ? options->stack_size : 0;
  /* The default size asked for explicitly still comes from the pool. */
  if (size == AFUT_FIBER_STACK_SIZE)
    size = 0;
  return afut__fiber_create (loop, options != NULL ? options->name : NULL,
                             size, options != NULL && options->lazy, func,
                             user_data, destroy, __func__);
}

AfutFuture *
afut__fiber_new_named (const char *name, AfutFiberFunc func, void *user_data)
{
  return afut__fiber_create (NULL, name, 0, false, func, user_data, NULL,
                             "AFUT_FIBER");
}

AfutFuture *
afut__fiber_coro_named (const char *name, AfutFiberFunc func, void *user_data)
{
  return afut__fiber_create (NULL, name, 0, true, func, user_data, NULL,
                             "AFUT_FIBER_CORO");
}

/* done futures */

static AfutFuture *
afut__future_new_done (const char *func)
{
  AfutLoop *loop = afut__resolve_loop (NULL, func);
  AfutFuture *f;
  if (loop == NULL)
    return NULL;
  f = afut__future_init ((AfutFuture *) afut__alloc (sizeof (AfutFuture)),
                         loop, AFUT__KIND_PLAIN);
  f->state = AFUT_FUTURE_DONE;
  return f;
}

AfutFuture *
afut_future_new_for_int (int64_t value)
{
  AfutFuture *f = afut__future_new_done (__func__);
  if (f != NULL)
    {
      f->value_type = AFUT_VALUE_INT;
      f->u.value.v.v_int = value;
    }
  return f;
}

AfutFuture *
afut_future_new_for_double (double value)
{
  AfutFuture *f = afut__future_new_done (__func__);
  if (f != NULL)
    {
      f->value_type = AFUT_VALUE_DOUBLE;
      f->u.value.v.v_double = value;
    }
  return f;
}

AfutFuture *
afut_future_new_for_pointer (void *pointer, AfutDestroyNotify destroy)
{
  AfutFuture *f;
  if (afut__refused_here (NULL, __func__))
    return NULL; /* @pointer stays the caller's */
  f = afut__future_new_done (__func__);
  if (f == NULL)
    {
      if (destroy != NULL)
        destroy (pointer);
      return NULL;
    }
  f->value_type = AFUT_VALUE_POINTER;
  f->u.value.v.pointer = pointer;
  f->u.value.destroy = destroy;
  return f;
}

AfutFuture *
afut_future_new_for_error (AfutError *error)
{
  AfutLoop *loop;
  if (afut__refused_here (NULL, __func__))
    return NULL; /* @error stays the caller's */
  if (error == NULL)
    {
      afut__log (AFUT_LOG_CRITICAL, "%s: assertion 'error != NULL' failed",
                 __func__);
      error = afut_error_new_literal (AFUT_ERROR, AFUT_ERROR_INVALID_ARGUMENT,
                                      "afut_future_new_for_error given NULL");
    }
  loop = afut__resolve_loop (NULL, __func__);
  if (loop == NULL)
    {
      afut_error_free (error);
      return NULL;
    }
  return afut__future_new_failed (loop, error);
}

bool
afut_timeout_exit_with_error (AfutTimeout *timeout, AfutError **error)
{
  AfutError *none = NULL;
  AFUT__RETURN_VAL_IF_FAIL (timeout != NULL, false);
  AFUT__RETURN_VAL_IF_FAIL (timeout->scope.kind == AFUT__SCOPE_TIMEOUT, false);
  if (!afut__scope_check_innermost (&timeout->scope, __func__))
    return false;
  afut__timeout_close (timeout, error != NULL ? error : &none);
  return timeout->scope.state == AFUT__TIMEOUT_EXPIRED;
}

/* ---- diagnostics ---- */

unsigned
afut_task_cancelling (AfutTask *task)
{
  AFUT__RETURN_VAL_IF_FAIL (task != NULL, 0);
  AFUT__RETURN_VAL_IF_FAIL (task->future.kind == AFUT__KIND_TASK, 0);
  AFUT__RETURN_IF_WRONG_THREAD (task->future.loop, NULL, 0);
  return afut__task_root (task)->n_cancels;
}

unsigned
afut_task_uncancel (AfutTask *task)
{
  AFUT__RETURN_VAL_IF_FAIL (task != NULL, 0);
  AFUT__RETURN_VAL_IF_FAIL (task->future.kind == AFUT__KIND_TASK, 0);
  AFUT__RETURN_IF_WRONG_THREAD (task->future.loop, NULL, 0);
  task = afut__task_root (task);
  if (task->n_cancels > 0)
    task->n_cancels--;
  return task->n_cancels;
}

static double
afut__timer_left (AfutFuture *timer)
{
  if (timer->kind != AFUT__KIND_SLEEP || timer->state != AFUT_FUTURE_PENDING
      || !(timer->flags & AFUT__FUTURE_IN_HEAP))
    return 0;
  if (timer->u.timer.when == AFUT__NEVER)
    return INFINITY;
  /* In doubles: a deadline far in the past minus a late clock would
   * overflow. */
  return ((double) timer->u.timer.when
          - (double) afut_loop_time_ns (timer->loop))
         / 1e9;
}

/* What @f is, for a person: "sleep (1.5 s left)". */
static int
afut__future_describe (AfutFuture *f, char *buf, size_t size)
{
  switch (f->kind)
    {
    case AFUT__KIND_TASK:
      return snprintf (buf, size, "task '%s'", afut__task_name ((AfutTask *) f));
    case AFUT__KIND_GATHER:
      {
        AfutGather *g = (AfutGather *) f;
        return snprintf (buf, size, "gather (%zu of %zu done)", g->n_finished,
                         g->n_unique);
      }
    case AFUT__KIND_SLEEP:
      if (f->flags & AFUT__FUTURE_HANDLE)
        return snprintf (buf, size, "a timer handle (%.3g s left)",
                         afut__timer_left (f));
      return snprintf (buf, size, "sleep (%.3g s left)", afut__timer_left (f));
    case AFUT__KIND_YIELD:
      return snprintf (buf, size, "sleep (0)");
    case AFUT__KIND_FD:
      return snprintf (buf, size, "fd %d", ((AfutFdFuture *) f)->watch.fd);
    case AFUT__KIND_CUSTOM:
      return snprintf (buf, size, "a custom future");
    case AFUT__KIND_SHIELD:
      return snprintf (buf, size, "a shield");
    case AFUT__KIND_WAIT_FOR:
      {
        AfutWaitFor *w = (AfutWaitFor *) f;
        if (w->timer == NULL)
          return snprintf (buf, size, "wait_for (expired)");
        return snprintf (buf, size, "wait_for (%.3g s left)",
                         afut__timer_left (w->timer));
      }
    case AFUT__KIND_WAIT:
      {
        AfutMulti *m = (AfutMulti *) f;
        return snprintf (buf, size, "wait (%zu of %zu done)", m->n_settled,
                         m->n_items);
      }
    case AFUT__KIND_AS_COMPLETED:
      return snprintf (buf, size, "as_completed");
    case AFUT__KIND_RACE:
      return snprintf (buf, size, "%s of %zu",
                       ((AfutMulti *) f)->mode == AFUT__MULTI_ANY ? "any"
                                                                 : "race",
                       ((AfutMulti *) f)->n_items);
    case AFUT__KIND_GROUP:
      return snprintf (buf, size, "a task group (%zu children left)",
                       ((AfutTaskGroup *) f)->n_children);
    default:
      return snprintf (buf, size, "a future");
    }
}

size_t
afut_task_describe (AfutTask *task, char *buffer, size_t size)
{
  char what[160];
  const char *state;
  int n;
  AFUT__RETURN_VAL_IF_FAIL (task != NULL, 0);
  AFUT__RETURN_VAL_IF_FAIL (task->future.kind == AFUT__KIND_TASK, 0);
  AFUT__RETURN_VAL_IF_FAIL (buffer != NULL || size == 0, 0);
  AFUT__RETURN_IF_WRONG_THREAD (task->future.loop, NULL, 0);
  what[0] = '\0';
  if (task->future.state != AFUT_FUTURE_PENDING)
    state = afut_future_state_to_string ((AfutFutureState) task->future.state);
  else if (task->task_flags & AFUT__TASK_LAZY)
    state = "not started";
  else if (task->task_flags & AFUT__TASK_RUNNING)
    state = "running";
  else if (!(task->task_flags & AFUT__TASK_STARTED))
    state = "scheduled";
  else
    state = "pending";
  if (task->future.state == AFUT_FUTURE_PENDING
      && (task->task_flags & AFUT__TASK_WAITING) && task->awaiting != NULL)
    {
      size_t len = (size_t) snprintf (
        what, sizeof what, ", %s ",
        (task->task_flags & AFUT__TASK_UNWINDING) ? "leaving" : "awaiting");
      afut__future_describe (task->awaiting, what + len, sizeof what - len);
    }
  else if (task->future.state == AFUT_FUTURE_PENDING
           && (task->task_flags & AFUT__TASK_STARTED)
           && (task->task_flags & AFUT__TASK_SCHEDULED))
    snprintf (what, sizeof what, ", ready to resume");
  else if (task->future.state != AFUT_FUTURE_DONE
           && task->future.state != AFUT_FUTURE_PENDING)
    snprintf (what, sizeof what, ": %s", task->future.u.error->message);
  if (task->future.state == AFUT_FUTURE_PENDING
      && (task->task_flags & AFUT__TASK_STARTED) && task->resume_point > 0)
    n = snprintf (buffer, size, "Task '%s' (Task-%lu) %s at line %d%s",
                  afut__task_name (task), (unsigned long) task->id, state,
                  task->resume_point, what);
  else
    n = snprintf (buffer, size, "Task '%s' (Task-%lu) %s%s", afut__task_name (task),
                  (unsigned long) task->id, state, what);
  return n > 0 ? (size_t) n : 0;
}

static int
afut__task_compare_id (const void *a, const void *b)
{
  /* Elements of afut__loop_ref_tasks (): futures of tasks. */
  uint32_t x = ((const AfutTask *) *(AfutFuture *const *) a)->id;
  uint32_t y = ((const AfutTask *) *(AfutFuture *const *) b)->id;
  return x < y ? -1 : x > y;
}

void
afut_loop_foreach_task (AfutLoop *loop, AfutTaskForeachFunc func, void *data)
{
  AfutFuture **snapshot;
  size_t i, n;
  AFUT__RETURN_IF_FAIL (loop != NULL);
  AFUT__RETURN_IF_FAIL (func != NULL);
  AFUT__RETURN_IF_WRONG_THREAD (loop, NULL, );
  snapshot = afut__loop_ref_tasks (loop, &n);
  if (snapshot == NULL)
    return;
  qsort (snapshot, n, sizeof (AfutFuture *), afut__task_compare_id);
  for (i = 0; i < n; i++)
    {
      if (snapshot[i]->state == AFUT_FUTURE_PENDING)
        func ((AfutTask *) snapshot[i], data);
      afut_future_unref (snapshot[i]);
    }
  AFUT_FREE (snapshot);
}

static void
afut__print_task (AfutTask *task, void *data)
{
  char line[512];
  afut_task_describe (task, line, sizeof line);
  fprintf ((FILE *) data, "%s\n", line);
}

void
afut_loop_print_tasks (AfutLoop *loop, FILE *stream)
{
  AFUT__RETURN_IF_FAIL (loop != NULL);
  AFUT__RETURN_IF_WRONG_THREAD (loop, NULL, );
  afut_loop_foreach_task (loop, afut__print_task,
                          stream != NULL ? stream : stderr);
}

static bool
afut__combinator_cancel (AfutFuture *future, const char *message)
{
  switch (future->kind)
    {
    case AFUT__KIND_SHIELD:
      return afut__shield_cancel ((AfutShield *) future, message);
    case AFUT__KIND_GROUP:
      return afut__group_cancel ((AfutTaskGroup *) future, message);
    default:
      return afut__multi_cancel ((AfutMulti *) future, message);
    }
}

static void
afut__combinator_finalize (AfutFuture *future)
{
  switch (future->kind)
    {
    case AFUT__KIND_SHIELD:
      afut_future_unref (((AfutShield *) future)->inner);
      break;
    case AFUT__KIND_WAIT_FOR:
      afut_future_unref (((AfutWaitFor *) future)->inner);
      afut_future_unref (((AfutWaitFor *) future)->timer);
      break;
    case AFUT__KIND_GROUP:
      afut__group_finalize ((AfutTaskGroup *) future);
      break;
    default:
      afut__multi_finalize ((AfutMulti *) future);
      break;
    }
}

/* The future whose pointer value @future lends, if any. */
static AfutFuture *
afut__future_lender (AfutFuture *future)
{
  switch (future->kind)
    {
    case AFUT__KIND_SHIELD:
      return ((AfutShield *) future)->inner;
    case AFUT__KIND_WAIT_FOR:
      return ((AfutWaitFor *) future)->inner;
    case AFUT__KIND_RACE:
      return ((AfutMulti *) future)->winner;
    case AFUT__KIND_TASK:
      return afut__fiber_lender (future);
    default:
      return NULL;
    }
}

void *
afut_future_steal_pointer (AfutFuture *future)
{
  void *pointer;
  AfutFuture *f;
  AFUT__RETURN_VAL_IF_FAIL (future != NULL, NULL);
  AFUT__RETURN_IF_WRONG_THREAD (future->loop, NULL, NULL);
  if (!afut__future_check_value (future, AFUT_VALUE_POINTER, __func__))
    return NULL;
  pointer = future->u.value.v.pointer;
  for (f = future; f != NULL; f = afut__future_lender (f))
    if (f->state == AFUT_FUTURE_DONE && f->value_type == AFUT_VALUE_POINTER
        && f->u.value.v.pointer == pointer)
      f->u.value.destroy = NULL;
  return pointer;
}

/* ---- fd readiness ---- */

static void
afut__fd_stop_watch (AfutFdFuture *fdf)
{
  AfutLoop *loop = fdf->future.loop;
  if (!fdf->watching)
    return;
  fdf->watching = false;
  if (fdf->prev != NULL)
    fdf->prev->next = fdf->next;
  else
    loop->fd_watches = fdf->next;
  if (fdf->next != NULL)
    fdf->next->prev = fdf->prev;
  fdf->prev = fdf->next = NULL;
  loop->n_fd_watches--;
  if (loop->backend->unwatch_fd != NULL)
    loop->backend->unwatch_fd (loop->backend_data, &fdf->watch);
  fdf->future.ref_count--; /* the watch's; a caller holds another */
}


static AfutError *
afut__fd_not_open_error (int fd)
{
  return afut_error_new (AFUT_ERRNO_ERROR, EBADF, "%s (fd %d is not open)",
                         strerror (EBADF), fd);
}

static void
afut__fd_fire (void *data)
{
  AfutFdFuture *fdf = (AfutFdFuture *) data;
  if (fdf->future.state != AFUT_FUTURE_PENDING)
    ;
  else if (fdf->revents & AFUT__IO_NVAL)
    /* Not an AfutIOEvents value: a closed or invalid fd, which asyncio
     * refuses when it is registered. */
    afut__future_complete_error (&fdf->future,
                                 afut__fd_not_open_error (fdf->watch.fd));
  else
    {
      fdf->future.u.value.v.v_int = (int64_t) fdf->revents;
      afut__future_complete_value (&fdf->future, AFUT_VALUE_INT);
    }
  afut_future_unref (&fdf->future);
}

void
afut_loop_fd_ready (AfutLoop *loop, AfutFdWatch *watch, unsigned revents)
{
  AfutFdFuture *fdf;
  AFUT__RETURN_IF_FAIL (loop != NULL);
  AFUT__RETURN_IF_FAIL (watch != NULL);
  AFUT__RETURN_IF_WRONG_THREAD (loop, NULL, );
  fdf = (AfutFdFuture *) (void *) ((char *) watch
                                   - offsetof (AfutFdFuture, watch));
  if (!fdf->watching)
    return;
  fdf->future.ref_count++; /* for the queued entry */
  afut__fd_stop_watch (fdf);
  fdf->revents = revents;
  afut__ready_push (loop, afut__fd_fire, fdf);
}

AfutFuture *
afut_loop_fd_wait (AfutLoop *loop, int fd, unsigned events)
{
  AfutFdFuture *fdf;
  AFUT__RETURN_VAL_IF_FAIL (loop != NULL, NULL);
  AFUT__RETURN_VAL_IF_FAIL (fd >= 0, NULL);
  AFUT__RETURN_VAL_IF_FAIL (events != 0, NULL);
  AFUT__RETURN_VAL_IF_FAIL ((events & ~(unsigned) (AFUT_IO_IN | AFUT_IO_OUT))
                              == 0,
                            NULL);
  AFUT__RETURN_VAL_IF_FAIL (loop->backend->watch_fd != NULL, NULL);
  AFUT__RETURN_IF_WRONG_THREAD (loop, NULL, NULL);
  if (loop->closed)
    {
      afut__log (AFUT_LOG_CRITICAL, "%s: the loop is closed", __func__);
      return NULL;
    }
  fdf = (AfutFdFuture *) afut__alloc (sizeof (AfutFdFuture));
  afut__future_init (&fdf->future, loop, AFUT__KIND_FD);
  fdf->watch.fd = fd;
  fdf->watch.events = events;
  fdf->watch.backend_data = NULL;
  fdf->revents = 0;
  fdf->watching = false;
  fdf->prev = fdf->next = NULL;
  errno = 0;
  if (!loop->backend->watch_fd (loop->backend_data, &fdf->watch))
    {
      /* A backend that checks the fd when it is added (epoll_ctl) says
       * EBADF there, where poll() says POLLNVAL later: one error. */
      afut__future_complete_error (
        &fdf->future, errno == EBADF
                        ? afut__fd_not_open_error (fd)
                        : afut_error_new (AFUT_ERROR, AFUT_ERROR_FAILED,
                                          "cannot watch fd %d", fd));
      return &fdf->future;
    }
  fdf->watching = true;
  fdf->future.ref_count++; /* the watch's */
  fdf->next = loop->fd_watches;
  if (loop->fd_watches != NULL)
    loop->fd_watches->prev = fdf;
  loop->fd_watches = fdf;
  loop->n_fd_watches++;
  return &fdf->future;
}

AfutFuture *
afut_fd_wait (int fd, unsigned events)
{
  AfutLoop *loop = afut__resolve_loop (NULL, __func__);
  if (loop == NULL)
    return NULL;
  return afut_loop_fd_wait (loop, fd, events);
}

/* ---- fd streams: afut tasks themselves ---- */

enum
{
  AFUT__FD_READ_SOME,
  AFUT__FD_READ_EXACTLY,
  AFUT__FD_WRITE_ALL
};

typedef struct
{
  AfutTask task;
  int fd;
  int mode;
  char *buffer;
  size_t size;
  size_t done;
} AfutFdStream;

static AfutError *
afut__errno_error (int errsv)
{
  return afut_error_new_literal (AFUT_ERRNO_ERROR, errsv, strerror (errsv));
}

static void
afut__fd_stream_step (AfutTask *task)
{
  AfutFdStream *self = (AfutFdStream *) task;
  ssize_t n;
  int errsv;

  AFUT_BEGIN (task);
  for (;;)
    {
      /* Try first, wait only when the fd says so. */
      if (self->mode == AFUT__FD_WRITE_ALL)
        {
          /* A socket whose peer left gives EPIPE, not SIGPIPE. */
          n = send (self->fd, self->buffer + self->done,
                    self->size - self->done, MSG_NOSIGNAL);
          if (n < 0 && errno == ENOTSOCK)
            n = write (self->fd, self->buffer + self->done,
                       self->size - self->done);
        }
      else
        n = read (self->fd, self->buffer + self->done,
                  self->size - self->done);
      errsv = errno;
      if (n > 0)
        {
          self->done += (size_t) n;
          if (self->mode == AFUT__FD_READ_SOME || self->done == self->size)
            AFUT_RETURN_INT (task, (int64_t) self->done);
          continue;
        }
      if (n == 0 && self->mode != AFUT__FD_WRITE_ALL)
        {
          if (self->mode == AFUT__FD_READ_SOME)
            AFUT_RETURN_INT (task, 0);
          AFUT_THROW (task,
                      afut_error_new (AFUT_ERROR, AFUT_ERROR_INCOMPLETE,
                                      "end of stream after %zu of %zu bytes",
                                      self->done, self->size));
        }
      if (n < 0 && errsv == EINTR)
        continue;
      if (n < 0 && errsv != EAGAIN && errsv != EWOULDBLOCK)
        AFUT_THROW (task, afut__errno_error (errsv));
      AFUT_AWAIT (task, afut_loop_fd_wait (task->future.loop, self->fd,
                                           self->mode == AFUT__FD_WRITE_ALL
                                             ? AFUT_IO_OUT
                                             : AFUT_IO_IN));
    }
  AFUT_END (task);
}

static AfutFuture *
afut__fd_stream_new (int fd, void *buffer, size_t size, int mode,
                     const char *func)
{
  AfutFdStream init;
  AFUT__RETURN_VAL_IF_FAIL_IN (func, fd >= 0, NULL);
  AFUT__RETURN_VAL_IF_FAIL_IN (func, buffer != NULL, NULL);
  AFUT__RETURN_VAL_IF_FAIL_IN (func, size > 0, NULL);
  memset (&init, 0, sizeof init);
  init.fd = fd;
  init.mode = mode;
  init.buffer = (char *) buffer;
  init.size = size;
  return afut__task_create (NULL, afut__fd_stream_step, sizeof init, &init,
                            func, NULL, false, func);
}

AfutFuture *
afut_fd_read (int fd, void *buffer, size_t size)
{
  return afut__fd_stream_new (fd, buffer, size, AFUT__FD_READ_SOME, __func__);
}

AfutFuture *
afut_fd_read_exactly (int fd, void *buffer, size_t size)
{
  return afut__fd_stream_new (fd, buffer, size, AFUT__FD_READ_EXACTLY,
                              __func__);
}

AfutFuture *
afut_fd_write_all (int fd, const void *buffer, size_t size)
{
  return afut__fd_stream_new (fd, (void *) buffer, size, AFUT__FD_WRITE_ALL,
                              __func__);
}

/* ---- sync: waiter queues ---- */

/* One pending wait: asyncio's waiter future, and its place in the deque of
 * the object it waits on.  It lives in the waiting coroutine's struct, so
 * a wait costs no allocation beyond the future. */
typedef struct AfutSyncWaiter AfutSyncWaiter;
typedef struct AfutSyncWaiters AfutSyncWaiters;

struct AfutSyncWaiter
{
  AfutFuture *future; /* the coroutine's reference */
  AfutSyncWaiter *prev;
  AfutSyncWaiter *next;
  AfutSyncWaiters *list; /* non-NULL while in a deque */
};

struct AfutSyncWaiters
{
  AfutSyncWaiter *head;
  AfutSyncWaiter *tail;
};

static void
afut__sync_waiters_append (AfutSyncWaiters *list, AfutSyncWaiter *waiter)
{
  waiter->list = list;
  waiter->next = NULL;
  waiter->prev = list->tail;
  if (list->tail != NULL)
    list->tail->next = waiter;
  else
    list->head = waiter;
  list->tail = waiter;
}

/* deque.remove(fut), where the fut may be gone already (a queue's
 * _wakeup_next pops the waiters it wakes). */
static void
afut__sync_waiter_unlink (AfutSyncWaiter *waiter)
{
  AfutSyncWaiters *list = waiter->list;
  if (list == NULL)
    return;
  if (waiter->prev != NULL)
    waiter->prev->next = waiter->next;
  else
    list->head = waiter->next;
  if (waiter->next != NULL)
    waiter->next->prev = waiter->prev;
  else
    list->tail = waiter->prev;
  waiter->prev = waiter->next = NULL;
  waiter->list = NULL;
}

/* `fut = loop.create_future(); waiters.append(fut)`.  Returns false if
 * the loop is closed (reported by afut_future_new). */
static bool
afut__sync_waiter_enqueue (AfutSyncWaiter *waiter, AfutSyncWaiters *list,
                           AfutLoop *loop)
{
  afut__sync_waiter_unlink (waiter);
  afut_future_unref (waiter->future);
  waiter->future = afut_future_new (loop);
  if (waiter->future == NULL)
    return false;
  afut__sync_waiters_append (list, waiter);
  return true;
}

/* What a waiting coroutine's finalize does: normally the waiter left its
 * deque in the coroutine's `finally`; this covers a coroutine freed
 * without resuming. */
static void
afut__sync_waiter_clear (AfutSyncWaiter *waiter)
{
  afut__sync_waiter_unlink (waiter);
  afut_future_unref (waiter->future);
  waiter->future = NULL;
}

static bool
afut__sync_waiter_done (const AfutSyncWaiter *waiter)
{
  return waiter->future->state != AFUT_FUTURE_PENDING;
}

static bool
afut__sync_waiter_cancelled (const AfutSyncWaiter *waiter)
{
  return waiter->future->state == AFUT_FUTURE_CANCELLED;
}

/* The error a coroutine of an object whose loop closed ends with. */
static AfutError *
afut__sync_closed_error (void)
{
  return afut_error_new_literal (AFUT_ERROR, AFUT_ERROR_CLOSED,
                                 "Event loop is closed");
}

/* Keeps the loop's memory while the object lives (a pending future does,
 * see afut_loop_unref), so that an object outliving its loop reports "the
 * loop is closed" instead of touching freed memory.  A loop reference
 * would instead keep the loop from closing at the caller's last unref. */
static AfutFuture *
afut__sync_anchor_new (AfutLoop *loop)
{
  return afut_future_new (loop);
}

/* ---- sync: event ---- */

struct AfutEvent
{
  unsigned ref_count;
  AfutLoop *loop;
  AfutFuture *anchor;
  bool value;
  AfutSyncWaiters waiters;
};

typedef struct
{
  AfutTask task;
  AfutEvent *event;
  AfutSyncWaiter waiter;
} AfutEventWait;

AfutEvent *
afut_event_new (AfutLoop *loop)
{
  AfutEvent *event;
  loop = afut__resolve_loop (loop, __func__);
  if (loop == NULL)
    return NULL;
  event = (AfutEvent *) afut__alloc (sizeof (AfutEvent));
  memset (event, 0, sizeof *event);
  event->ref_count = 1;
  event->loop = loop;
  event->anchor = afut__sync_anchor_new (loop);
  return event;
}

AfutEvent *
afut_event_ref (AfutEvent *event)
{
  AFUT__RETURN_VAL_IF_FAIL (event != NULL, NULL);
  AFUT__RETURN_VAL_IF_FAIL (event->ref_count > 0, NULL);
  AFUT__RETURN_IF_WRONG_THREAD (event->loop, NULL, NULL);
  event->ref_count++;
  return event;
}

void
afut_event_unref (AfutEvent *event)
{
  if (event == NULL)
    return;
  AFUT__RETURN_IF_FAIL (event->ref_count > 0);
  AFUT__RETURN_IF_WRONG_THREAD (event->loop, NULL, );
  if (--event->ref_count > 0)
    return;
  /* Every waiter's coroutine holds a reference. */
  AFUT_ASSERT (event->waiters.head == NULL);
  afut_future_unref (event->anchor);
  AFUT_FREE (event);
}

void
afut_event_set (AfutEvent *event)
{
  AfutSyncWaiter *w;
  AFUT__RETURN_IF_FAIL (event != NULL);
  AFUT__RETURN_IF_WRONG_THREAD (event->loop, NULL, );
  if (event->value)
    return;
  event->value = true;
  for (w = event->waiters.head; w != NULL; w = w->next)
    if (!afut__sync_waiter_done (w))
      afut_future_resolve (w->future);
}

void
afut_event_clear (AfutEvent *event)
{
  AFUT__RETURN_IF_FAIL (event != NULL);
  AFUT__RETURN_IF_WRONG_THREAD (event->loop, NULL, );
  event->value = false;
}

bool
afut_event_is_set (AfutEvent *event)
{
  AFUT__RETURN_VAL_IF_FAIL (event != NULL, false);
  AFUT__RETURN_IF_WRONG_THREAD (event->loop, NULL, false);
  return event->value;
}

/* async def wait(self):
 *     if self._value: return True
 *     fut = create_future(); self._waiters.append(fut)
 *     try: await fut; return True
 *     finally: self._waiters.remove(fut) */
static void
afut__event_wait_step (AfutTask *task)
{
  AfutEventWait *self = (AfutEventWait *) task;
  AfutEvent *event = self->event;

  AFUT_BEGIN (task);
  if (event->value)
    AFUT_RETURN (task);
  if (!afut__sync_waiter_enqueue (&self->waiter, &event->waiters,
                                  event->loop))
    AFUT_THROW (task, afut__sync_closed_error ());
  AFUT_AWAIT_TRY (task, afut_future_ref (self->waiter.future));
  afut__sync_waiter_unlink (&self->waiter);
  if (afut_task_caught (task) != NULL)
    AFUT_RERAISE (task);
  AFUT_END (task);
}

static void
afut__event_wait_finalize (AfutTask *task)
{
  AfutEventWait *self = (AfutEventWait *) task;
  afut__sync_waiter_clear (&self->waiter);
  afut_event_unref (self->event);
}

AfutFuture *
afut_event_wait (AfutEvent *event)
{
  AfutEventWait init;
  AfutFuture *coro;
  AFUT__RETURN_VAL_IF_FAIL (event != NULL, NULL);
  AFUT__RETURN_IF_WRONG_THREAD (event->loop, NULL, NULL);
  memset (&init, 0, sizeof init);
  init.event = event;
  coro = afut_coro_new (event->loop, afut__event_wait_step,
                        sizeof init, &init, __func__,
                        afut__event_wait_finalize);
  if (coro != NULL)
    afut_event_ref (event);
  return coro;
}

/* ---- sync: lock ---- */

struct AfutLock
{
  unsigned ref_count;
  AfutLoop *loop;
  AfutFuture *anchor;
  bool locked;
  AfutSyncWaiters waiters;
};

typedef struct
{
  AfutTask task;
  AfutLock *lock;
  AfutSyncWaiter waiter;
} AfutLockAcquire;

AfutLock *
afut_lock_new (AfutLoop *loop)
{
  AfutLock *lock;
  loop = afut__resolve_loop (loop, __func__);
  if (loop == NULL)
    return NULL;
  lock = (AfutLock *) afut__alloc (sizeof (AfutLock));
  memset (lock, 0, sizeof *lock);
  lock->ref_count = 1;
  lock->loop = loop;
  lock->anchor = afut__sync_anchor_new (loop);
  return lock;
}

AfutLock *
afut_lock_ref (AfutLock *lock)
{
  AFUT__RETURN_VAL_IF_FAIL (lock != NULL, NULL);
  AFUT__RETURN_VAL_IF_FAIL (lock->ref_count > 0, NULL);
  AFUT__RETURN_IF_WRONG_THREAD (lock->loop, NULL, NULL);
  lock->ref_count++;
  return lock;
}

void
afut_lock_unref (AfutLock *lock)
{
  if (lock == NULL)
    return;
  AFUT__RETURN_IF_FAIL (lock->ref_count > 0);
  AFUT__RETURN_IF_WRONG_THREAD (lock->loop, NULL, );
  if (--lock->ref_count > 0)
    return;
  AFUT_ASSERT (lock->waiters.head == NULL);
  afut_future_unref (lock->anchor);
  AFUT_FREE (lock);
}

/* Lock._wake_up_first: only the first waiter is looked at.  One that is
 * done (woken, or cancelled) will run, and either take the lock or, if
 * cancelled while the lock is free, come back here. */
static void
afut__lock_wake_up_first (AfutLock *lock)
{
  AfutSyncWaiter *first = lock->waiters.head;
  if (first != NULL && !afut__sync_waiter_done (first))
    afut_future_resolve (first->future);
}

/* `all(w.cancelled() for w in self._waiters)` */
static bool
afut__lock_all_waiters_cancelled (AfutLock *lock)
{
  AfutSyncWaiter *w;
  for (w = lock->waiters.head; w != NULL; w = w->next)
    if (!afut__sync_waiter_cancelled (w))
      return false;
  return true;
}

/* async def acquire(self):
 *     if not self._locked and all(w.cancelled() for w in self._waiters):
 *         self._locked = True; return True
 *     fut = create_future(); self._waiters.append(fut)
 *     try:
 *         try: await fut
 *         finally: self._waiters.remove(fut)
 *     except CancelledError:
 *         if not self._locked: self._wake_up_first()
 *         raise
 *     self._locked = True; return True */
static void
afut__lock_acquire_step (AfutTask *task)
{
  AfutLockAcquire *self = (AfutLockAcquire *) task;
  AfutLock *lock = self->lock;
  const AfutError *caught;

  AFUT_BEGIN (task);
  if (!lock->locked && afut__lock_all_waiters_cancelled (lock))
    {
      lock->locked = true;
      AFUT_RETURN (task);
    }
  if (!afut__sync_waiter_enqueue (&self->waiter, &lock->waiters, lock->loop))
    AFUT_THROW (task, afut__sync_closed_error ());
  AFUT_AWAIT_TRY (task, afut_future_ref (self->waiter.future));
  afut__sync_waiter_unlink (&self->waiter);
  caught = afut_task_caught (task);
  if (caught != NULL)
    {
      if (afut_error_is_cancelled (caught) && !lock->locked)
        afut__lock_wake_up_first (lock);
      AFUT_RERAISE (task);
    }
  lock->locked = true;
  AFUT_END (task);
}

static void
afut__lock_acquire_finalize (AfutTask *task)
{
  AfutLockAcquire *self = (AfutLockAcquire *) task;
  afut__sync_waiter_clear (&self->waiter);
  afut_lock_unref (self->lock);
}

AfutFuture *
afut_lock_acquire (AfutLock *lock)
{
  AfutLockAcquire init;
  AfutFuture *coro;
  AFUT__RETURN_VAL_IF_FAIL (lock != NULL, NULL);
  AFUT__RETURN_IF_WRONG_THREAD (lock->loop, NULL, NULL);
  memset (&init, 0, sizeof init);
  init.lock = lock;
  coro = afut_coro_new (lock->loop, afut__lock_acquire_step,
                        sizeof init, &init, __func__,
                        afut__lock_acquire_finalize);
  if (coro != NULL)
    afut_lock_ref (lock);
  return coro;
}

bool
afut_lock_release (AfutLock *lock)
{
  AFUT__RETURN_VAL_IF_FAIL (lock != NULL, false);
  AFUT__RETURN_IF_WRONG_THREAD (lock->loop, NULL, false);
  if (!lock->locked)
    {
      afut__log (AFUT_LOG_CRITICAL, "%s: the lock is not acquired",
                 __func__);
      return false;
    }
  lock->locked = false;
  afut__lock_wake_up_first (lock);
  return true;
}

bool
afut_lock_is_locked (AfutLock *lock)
{
  AFUT__RETURN_VAL_IF_FAIL (lock != NULL, false);
  AFUT__RETURN_IF_WRONG_THREAD (lock->loop, NULL, false);
  return lock->locked;
}

/* ---- sync: semaphore ---- */

struct AfutSemaphore
{
  unsigned ref_count;
  AfutLoop *loop;
  AfutFuture *anchor;
  unsigned value;
  unsigned bound;
  bool bounded;
  AfutSyncWaiters waiters;
};

typedef struct
{
  AfutTask task;
  AfutSemaphore *semaphore;
  AfutSyncWaiter waiter;
} AfutSemaphoreAcquire;

static AfutSemaphore *
afut__semaphore_new (AfutLoop *loop, unsigned value, bool bounded,
                     const char *caller)
{
  AfutSemaphore *semaphore;
  loop = afut__resolve_loop (loop, caller);
  if (loop == NULL)
    return NULL;
  semaphore = (AfutSemaphore *) afut__alloc (sizeof (AfutSemaphore));
  memset (semaphore, 0, sizeof *semaphore);
  semaphore->ref_count = 1;
  semaphore->loop = loop;
  semaphore->anchor = afut__sync_anchor_new (loop);
  semaphore->value = value;
  semaphore->bound = value;
  semaphore->bounded = bounded;
  return semaphore;
}

AfutSemaphore *
afut_semaphore_new (AfutLoop *loop, unsigned value)
{
  return afut__semaphore_new (loop, value, false, __func__);
}

AfutSemaphore *
afut_bounded_semaphore_new (AfutLoop *loop, unsigned value)
{
  return afut__semaphore_new (loop, value, true, __func__);
}

AfutSemaphore *
afut_semaphore_ref (AfutSemaphore *semaphore)
{
  AFUT__RETURN_VAL_IF_FAIL (semaphore != NULL, NULL);
  AFUT__RETURN_VAL_IF_FAIL (semaphore->ref_count > 0, NULL);
  AFUT__RETURN_IF_WRONG_THREAD (semaphore->loop, NULL, NULL);
  semaphore->ref_count++;
  return semaphore;
}

void
afut_semaphore_unref (AfutSemaphore *semaphore)
{
  if (semaphore == NULL)
    return;
  AFUT__RETURN_IF_FAIL (semaphore->ref_count > 0);
  AFUT__RETURN_IF_WRONG_THREAD (semaphore->loop, NULL, );
  if (--semaphore->ref_count > 0)
    return;
  AFUT_ASSERT (semaphore->waiters.head == NULL);
  afut_future_unref (semaphore->anchor);
  AFUT_FREE (semaphore);
}

/* Semaphore.locked() of 3.11: `self._value == 0 or any(not w.cancelled()
 * for w in self._waiters)`. */
static bool
afut__semaphore_locked (AfutSemaphore *semaphore)
{
  AfutSyncWaiter *w;
  if (semaphore->value == 0)
    return true;
  for (w = semaphore->waiters.head; w != NULL; w = w->next)
    if (!afut__sync_waiter_cancelled (w))
      return true;
  return false;
}

/* Semaphore._wake_up_next: the first waiter not done takes a unit. */
static void
afut__semaphore_wake_up_next (AfutSemaphore *semaphore)
{
  AfutSyncWaiter *w;
  for (w = semaphore->waiters.head; w != NULL; w = w->next)
    if (!afut__sync_waiter_done (w))
      {
        semaphore->value--;
        afut_future_resolve (w->future);
        return;
      }
}

/* async def acquire(self):
 *     if not self.locked(): self._value -= 1; return True
 *     fut = create_future(); self._waiters.append(fut)
 *     try:
 *         try: await fut
 *         finally: self._waiters.remove(fut)
 *     except CancelledError:
 *         if not fut.cancelled():
 *             self._value += 1; self._wake_up_next()
 *         raise
 *     if self._value > 0: self._wake_up_next()
 *     return True */
static void
afut__semaphore_acquire_step (AfutTask *task)
{
  AfutSemaphoreAcquire *self = (AfutSemaphoreAcquire *) task;
  AfutSemaphore *semaphore = self->semaphore;
  const AfutError *caught;

  AFUT_BEGIN (task);
  if (!afut__semaphore_locked (semaphore))
    {
      semaphore->value--;
      AFUT_RETURN (task);
    }
  if (!afut__sync_waiter_enqueue (&self->waiter, &semaphore->waiters,
                                  semaphore->loop))
    AFUT_THROW (task, afut__sync_closed_error ());
  AFUT_AWAIT_TRY (task, afut_future_ref (self->waiter.future));
  afut__sync_waiter_unlink (&self->waiter);
  caught = afut_task_caught (task);
  if (caught != NULL)
    {
      /* Woken (a unit taken for it), then cancelled: give it back. */
      if (afut_error_is_cancelled (caught)
          && !afut__sync_waiter_cancelled (&self->waiter))
        {
          semaphore->value++;
          afut__semaphore_wake_up_next (semaphore);
        }
      AFUT_RERAISE (task);
    }
  if (semaphore->value > 0)
    afut__semaphore_wake_up_next (semaphore);
  AFUT_END (task);
}

static void
afut__semaphore_acquire_finalize (AfutTask *task)
{
  AfutSemaphoreAcquire *self = (AfutSemaphoreAcquire *) task;
  afut__sync_waiter_clear (&self->waiter);
  afut_semaphore_unref (self->semaphore);
}

AfutFuture *
afut_semaphore_acquire (AfutSemaphore *semaphore)
{
  AfutSemaphoreAcquire init;
  AfutFuture *coro;
  AFUT__RETURN_VAL_IF_FAIL (semaphore != NULL, NULL);
  AFUT__RETURN_IF_WRONG_THREAD (semaphore->loop, NULL, NULL);
  memset (&init, 0, sizeof init);
  init.semaphore = semaphore;
  coro = afut_coro_new (semaphore->loop, afut__semaphore_acquire_step,
                        sizeof init, &init, __func__,
                        afut__semaphore_acquire_finalize);
  if (coro != NULL)
    afut_semaphore_ref (semaphore);
  return coro;
}

bool
afut_semaphore_release (AfutSemaphore *semaphore)
{
  AFUT__RETURN_VAL_IF_FAIL (semaphore != NULL, false);
  AFUT__RETURN_IF_WRONG_THREAD (semaphore->loop, NULL, false);
  if (semaphore->bounded && semaphore->value >= semaphore->bound)
    {
      afut__log (AFUT_LOG_CRITICAL,
                 "%s: bounded semaphore released too many times", __func__);
      return false;
    }
  if (semaphore->value == UINT_MAX)
    {
      afut__log (AFUT_LOG_CRITICAL, "%s: the counter would overflow",
                 __func__);
      return false;
    }
  semaphore->value++;
  afut__semaphore_wake_up_next (semaphore);
  return true;
}

bool
afut_semaphore_is_locked (AfutSemaphore *semaphore)
{
  AFUT__RETURN_VAL_IF_FAIL (semaphore != NULL, false);
  AFUT__RETURN_IF_WRONG_THREAD (semaphore->loop, NULL, false);
  return afut__semaphore_locked (semaphore);
}

unsigned
afut_semaphore_get_value (AfutSemaphore *semaphore)
{
  AFUT__RETURN_VAL_IF_FAIL (semaphore != NULL, 0);
  AFUT__RETURN_IF_WRONG_THREAD (semaphore->loop, NULL, 0);
  return semaphore->value;
}

/* ---- sync: condition ---- */

struct AfutCondition
{
  unsigned ref_count;
  AfutLoop *loop;
  AfutFuture *anchor;
  AfutLock *lock;
  AfutSyncWaiters waiters;
};

typedef struct
{
  AfutTask task;
  AfutCondition *condition;
  AfutSyncWaiter waiter;
  AfutError *wait_error; /* what the wait raised, raised again once the
                            lock is back */
  bool cancelled;        /* a re-acquire was cancelled */
} AfutConditionWait;

typedef struct
{
  AfutTask task;
  AfutCondition *condition;
  AfutPredicateFunc predicate;
  void *data;
} AfutConditionWaitFor;

AfutCondition *
afut_condition_new (AfutLoop *loop, AfutLock *lock)
{
  AfutCondition *condition;
  loop = afut__resolve_loop (loop, __func__);
  if (loop == NULL)
    return NULL;
  if (lock != NULL && lock->loop != loop)
    {
      afut__log (AFUT_LOG_CRITICAL,
                 "%s: the lock is bound to a different loop", __func__);
      return NULL;
    }
  condition = (AfutCondition *) afut__alloc (sizeof (AfutCondition));
  memset (condition, 0, sizeof *condition);
  condition->ref_count = 1;
  condition->loop = loop;
  condition->anchor = afut__sync_anchor_new (loop);
  condition->lock = lock != NULL ? afut_lock_ref (lock) : afut_lock_new (loop);
  return condition;
}

AfutCondition *
afut_condition_ref (AfutCondition *condition)
{
  AFUT__RETURN_VAL_IF_FAIL (condition != NULL, NULL);
  AFUT__RETURN_VAL_IF_FAIL (condition->ref_count > 0, NULL);
  AFUT__RETURN_IF_WRONG_THREAD (condition->loop, NULL, NULL);
  condition->ref_count++;
  return condition;
}

void
afut_condition_unref (AfutCondition *condition)
{
  if (condition == NULL)
    return;
  AFUT__RETURN_IF_FAIL (condition->ref_count > 0);
  AFUT__RETURN_IF_WRONG_THREAD (condition->loop, NULL, );
  if (--condition->ref_count > 0)
    return;
  AFUT_ASSERT (condition->waiters.head == NULL);
  afut_lock_unref (condition->lock);
  afut_future_unref (condition->anchor);
  AFUT_FREE (condition);
}

AfutFuture *
afut_condition_acquire (AfutCondition *condition)
{
  AFUT__RETURN_VAL_IF_FAIL (condition != NULL, NULL);
  AFUT__RETURN_IF_WRONG_THREAD (condition->loop, NULL, NULL);
  return afut_lock_acquire (condition->lock);
}

bool
afut_condition_release (AfutCondition *condition)
{
  AFUT__RETURN_VAL_IF_FAIL (condition != NULL, false);
  AFUT__RETURN_IF_WRONG_THREAD (condition->loop, NULL, false);
  return afut_lock_release (condition->lock);
}

bool
afut_condition_is_locked (AfutCondition *condition)
{
  AFUT__RETURN_VAL_IF_FAIL (condition != NULL, false);
  AFUT__RETURN_IF_WRONG_THREAD (condition->loop, NULL, false);
  return condition->lock->locked;
}

/* Wakes the first @n waiters not woken yet (Condition._notify). */
static void
afut__condition_wake (AfutCondition *condition, size_t n)
{
  AfutSyncWaiter *w;
  size_t woken = 0;
  for (w = condition->waiters.head; w != NULL && woken < n; w = w->next)
    if (!afut__sync_waiter_done (w))
      {
        woken++;
        afut_future_resolve (w->future);
      }
}

/* A wait that ends with an error after a notify woke it (cancelled
 * before it resumed, or while it took the lock back) passes the wakeup
 * on to the next waiter, so that no notification is lost (README rule
 * 13).  CPython 3.13 does this (gh-112202: `except BaseException:
 * self._notify(1)`), for any error, so that a waiter cancelled before any
 * notify wakes another one spuriously; 3.11 loses the notification. */
static void
afut__condition_pass_on (AfutConditionWait *self)
{
  if (self->waiter.future != NULL
      && self->waiter.future->state == AFUT_FUTURE_DONE)
    afut__condition_wake (self->condition, 1);
}

/* async def wait(self):
 *     if not self.locked(): raise RuntimeError(...)
 *     self.release()
 *     try:
 *         fut = create_future(); self._waiters.append(fut)
 *         try: await fut; return True
 *         finally: self._waiters.remove(fut)
 *     finally:
 *         cancelled = False
 *         while True:
 *             try: await self.acquire(); break
 *             except CancelledError: cancelled = True
 *         if cancelled: raise CancelledError
 *
 * The waiter future is made before the release, not after: the same
 * thing, except that on a closed loop the lock stays as it was. */
static void
afut__condition_wait_step (AfutTask *task)
{
  AfutConditionWait *self = (AfutConditionWait *) task;
  AfutCondition *condition = self->condition;
  const AfutError *caught;
  AfutError *error;

  AFUT_BEGIN (task);
  if (!condition->lock->locked)
    AFUT_THROW (task,
                afut_error_new_literal (AFUT_ERROR, AFUT_ERROR_INVALID_STATE,
                                        "cannot wait on un-acquired lock"));
  if (!afut__sync_waiter_enqueue (&self->waiter, &condition->waiters,
                                  condition->loop))
    AFUT_THROW (task, afut__sync_closed_error ());
  afut_lock_release (condition->lock);
  AFUT_AWAIT_TRY (task, afut_future_ref (self->waiter.future));
  afut__sync_waiter_unlink (&self->waiter);
  caught = afut_task_caught (task);
  self->wait_error = caught != NULL ? afut_error_copy (caught) : NULL;

  /* Must re-acquire the lock even if the wait was cancelled. */
  self->cancelled = false;
  for (;;)
    {
      AFUT_AWAIT_TRY (task, afut_lock_acquire (condition->lock));
      caught = afut_task_caught (task);
      if (caught == NULL)
        break;
      if (!afut_error_is_cancelled (caught))
        {
          /* Not asyncio's own path (an acquire raises nothing else),
           * but an error out of a finally replaces the one in flight. */
          afut_error_free (self->wait_error);
          self->wait_error = NULL;
          afut__condition_pass_on (self);
          AFUT_RERAISE (task);
        }
      self->cancelled = true;
    }
  if (self->cancelled)
    {
      afut_error_free (self->wait_error);
      self->wait_error = NULL;
      afut__condition_pass_on (self);
      AFUT_THROW (task, afut_error_new_literal (AFUT_ERROR,
                                                AFUT_ERROR_CANCELLED, ""));
    }
  if (self->wait_error != NULL)
    {
      error = self->wait_error;
      self->wait_error = NULL;
      afut__condition_pass_on (self);
      AFUT_THROW (task, error);
    }
  AFUT_END (task);
}

static void
afut__condition_wait_finalize (AfutTask *task)
{
  AfutConditionWait *self = (AfutConditionWait *) task;
  afut__sync_waiter_clear (&self->waiter);
  afut_error_free (self->wait_error);
  afut_condition_unref (self->condition);
}

AfutFuture *
afut_condition_wait (AfutCondition *condition)
{
  AfutConditionWait init;
  AfutFuture *coro;
  AFUT__RETURN_VAL_IF_FAIL (condition != NULL, NULL);
  AFUT__RETURN_IF_WRONG_THREAD (condition->loop, NULL, NULL);
  memset (&init, 0, sizeof init);
  init.condition = condition;
  coro = afut_coro_new (condition->loop, afut__condition_wait_step,
                        sizeof init, &init, __func__,
                        afut__condition_wait_finalize);
  if (coro != NULL)
    afut_condition_ref (condition);
  return coro;
}

/* async def wait_for(self, predicate):
 *     result = predicate()
 *     while not result:
 *         await self.wait()
 *         result = predicate()
 *     return result */
static void
afut__condition_wait_for_step (AfutTask *task)
{
  AfutConditionWaitFor *self = (AfutConditionWaitFor *) task;

  AFUT_BEGIN (task);
  while (!self->predicate (self->data))
    {
      AFUT_AWAIT (task, afut_condition_wait (self->condition));
    }
  AFUT_END (task);
}

static void
afut__condition_wait_for_finalize (AfutTask *task)
{
  AfutConditionWaitFor *self = (AfutConditionWaitFor *) task;
  afut_condition_unref (self->condition);
}

AfutFuture *
afut_condition_wait_for (AfutCondition *condition,
                         AfutPredicateFunc predicate, void *data)
{
  AfutConditionWaitFor init;
  AfutFuture *coro;
  AFUT__RETURN_VAL_IF_FAIL (condition != NULL, NULL);
  AFUT__RETURN_VAL_IF_FAIL (predicate != NULL, NULL);
  AFUT__RETURN_IF_WRONG_THREAD (condition->loop, NULL, NULL);
  memset (&init, 0, sizeof init);
  init.condition = condition;
  init.predicate = predicate;
  init.data = data;
  coro = afut_coro_new (condition->loop, afut__condition_wait_for_step,
                        sizeof init, &init, __func__,
                        afut__condition_wait_for_finalize);
  if (coro != NULL)
    afut_condition_ref (condition);
  return coro;
}

static bool
afut__condition_notify (AfutCondition *condition, size_t n,
                        const char *caller)
{
  if (!condition->lock->locked)
    {
      afut__log (AFUT_LOG_CRITICAL, "%s: cannot notify on un-acquired lock",
                 caller);
      return false;
    }
  afut__condition_wake (condition, n);
  return true;
}

bool
afut_condition_notify (AfutCondition *condition, unsigned n)
{
  AFUT__RETURN_VAL_IF_FAIL (condition != NULL, false);
  AFUT__RETURN_IF_WRONG_THREAD (condition->loop, NULL, false);
  return afut__condition_notify (condition, n, __func__);
}

bool
afut_condition_notify_all (AfutCondition *condition)
{
  AFUT__RETURN_VAL_IF_FAIL (condition != NULL, false);
  AFUT__RETURN_IF_WRONG_THREAD (condition->loop, NULL, false);
  return afut__condition_notify (condition, SIZE_MAX, __func__);
}

/* ---- sync: queue ---- */

typedef struct
{
  void *item;
  uint64_t seq; /* put order: ties of a priority queue */
} AfutQueueEntry;

struct AfutQueue
{
  unsigned ref_count;
  AfutLoop *loop;
  AfutFuture *anchor;
  AfutQueueKind kind;
  size_t maxsize;
  AfutCompareFunc compare;
  AfutDestroyNotify item_destroy;
  unsigned comparing; /* compare is running: the heap is mid-change */

  /* FIFO: a ring buffer from head; LIFO: a stack; PRIORITY: a binary
   * min-heap on (compare, seq).  The last two keep head at 0. */
  AfutQueueEntry *entries;
  size_t head;
  size_t len;
  size_t cap; /* a power of two, or 0 */
  uint64_t next_seq;

  AfutSyncWaiters getters;
  AfutSyncWaiters putters;
  size_t n_unfinished;
  AfutEvent *finished;
};

typedef struct
{
  AfutTask task;
  AfutQueue *queue;
  void *item;
  bool owns_item; /* until it is in the queue */
  AfutSyncWaiter putter;
} AfutQueuePut;

typedef struct
{
  AfutTask task;
  AfutQueue *queue;
  AfutSyncWaiter getter;
} AfutQueueGet;

typedef struct
{
  AfutTask task;
  AfutQueue *queue;
} AfutQueueJoin;

static AfutQueueEntry *
afut__queue_at (AfutQueue *queue, size_t i)
{
  return &queue->entries[(queue->head + i) & (queue->cap - 1)];
}

static bool
afut__queue_full (AfutQueue *queue)
{
  return queue->maxsize > 0 && queue->len >= queue->maxsize;
}

static void
afut__queue_grow (AfutQueue *queue)
{
  size_t cap = queue->cap ? queue->cap * 2 : 8;
  AfutQueueEntry *entries
    = (AfutQueueEntry *) afut__alloc (cap * sizeof (AfutQueueEntry));
  size_t i;
  for (i = 0; i < queue->len; i++)
    entries[i] = *afut__queue_at (queue, i);
  AFUT_FREE (queue->entries);
  queue->entries = entries;
  queue->head = 0;
  queue->cap = cap;
}

static bool
afut__queue_less (AfutQueue *queue, const AfutQueueEntry *a,
                  const AfutQueueEntry *b)
{
  int c;
  queue->comparing++;
  c = queue->compare (a->item, b->item);
  queue->comparing--;
  return c < 0 || (c == 0 && a->seq < b->seq);
}

static AfutError *
afut__queue_reentry_error (void)
{
  return afut_error_new_literal (
    AFUT_ERROR, AFUT_ERROR_INVALID_STATE,
    "the queue changed while its compare function ran");
}

/* A put or get from inside the compare function would change the heap
 * that the push or pop calling it is moving entries in (and may move
 * its array): refused. */
static bool
afut__queue_check_not_comparing (AfutQueue *queue, const char *func)
{
  if (AFUT__LIKELY (queue->comparing == 0))
    return true;
  afut__log (AFUT_LOG_CRITICAL,
             "%s: called from the queue's own compare function, while it "
             "reorders its items: refused",
             func);
  return false;
}

static void
afut__queue_heap_push (AfutQueue *queue, AfutQueueEntry entry)
{
  AfutQueueEntry *heap = queue->entries;
  size_t i = queue->len++;
  while (i > 0)
    {
      size_t parent = (i - 1) / 2;
      if (!afut__queue_less (queue, &entry, &heap[parent]))
        break;
      heap[i] = heap[parent];
      i = parent;
    }
  heap[i] = entry;
}

static AfutQueueEntry
afut__queue_heap_pop (AfutQueue *queue)
{
  AfutQueueEntry *heap = queue->entries;
  AfutQueueEntry top = heap[0];
  AfutQueueEntry last = heap[--queue->len];
  size_t n = queue->len, i = 0;
  if (n == 0)
    return top;
  for (;;)
    {
      size_t child = 2 * i + 1;
      if (child >= n)
        break;
      if (child + 1 < n && afut__queue_less (queue, &heap[child + 1],
                                             &heap[child]))
        child++;
      if (!afut__queue_less (queue, &heap[child], &last))
        break;
      heap[i] = heap[child];
      i = child;
    }
  heap[i] = last;
  return top;
}

/* Queue._put */
static void
afut__queue_push (AfutQueue *queue, void *item)
{
  AfutQueueEntry entry;
  entry.item = item;
  entry.seq = queue->next_seq++;
  if (queue->len == queue->cap)
    afut__queue_grow (queue);
  if (queue->kind == AFUT_QUEUE_PRIORITY)
    afut__queue_heap_push (queue, entry);
  else
    *afut__queue_at (queue, queue->len++) = entry;
}

/* Queue._get */
static void *
afut__queue_pop (AfutQueue *queue)
{
  void *item;
  switch (queue->kind)
    {
    case AFUT_QUEUE_PRIORITY:
      return afut__queue_heap_pop (queue).item;
    case AFUT_QUEUE_LIFO:
      return afut__queue_at (queue, --queue->len)->item;
    case AFUT_QUEUE_FIFO:
    default:
      item = afut__queue_at (queue, 0)->item;
      queue->head = (queue->head + 1) & (queue->cap - 1);
      queue->len--;
      return item;
    }
}

/* Queue._wakeup_next: pops waiters until one is woken. */
static void
afut__queue_wakeup_next (AfutSyncWaiters *waiters)
{
  while (waiters->head != NULL)
    {
      AfutSyncWaiter *w = waiters->head;
      afut__sync_waiter_unlink (w);
      if (!afut__sync_waiter_done (w))
        {
          afut_future_resolve (w->future);
          break;
        }
    }
}

/* put_nowait() on a queue known not to be full. */
static void
afut__queue_put_item (AfutQueue *queue, void *item)
{
  afut__queue_push (queue, item);
  queue->n_unfinished++;
  afut_event_clear (queue->finished);
  afut__queue_wakeup_next (&queue->getters);
}

/* get_nowait() on a queue known not to be empty. */
static void *
afut__queue_take_item (AfutQueue *queue)
{
  void *item = afut__queue_pop (queue);
  afut__queue_wakeup_next (&queue->putters);
  return item;
}

AfutQueue *
afut_queue_new (AfutLoop *loop, AfutQueueKind kind, size_t maxsize,
                AfutCompareFunc compare, AfutDestroyNotify item_destroy)
{
  AfutQueue *queue;
  AFUT__RETURN_VAL_IF_FAIL (kind == AFUT_QUEUE_FIFO || kind == AFUT_QUEUE_LIFO
                              || kind == AFUT_QUEUE_PRIORITY,
                            NULL);
  AFUT__RETURN_VAL_IF_FAIL (kind != AFUT_QUEUE_PRIORITY || compare != NULL,
                            NULL);
  loop = afut__resolve_loop (loop, __func__);
  if (loop == NULL)
    return NULL;
  queue = (AfutQueue *) afut__alloc (sizeof (AfutQueue));
  memset (queue, 0, sizeof *queue);
  queue->ref_count = 1;
  queue->loop = loop;
  queue->anchor = afut__sync_anchor_new (loop);
  queue->kind = kind;
  queue->maxsize = maxsize;
  queue->compare = compare;
  queue->item_destroy = item_destroy;
  queue->finished = afut_event_new (loop);
  afut_event_set (queue->finished);
  return queue;
}

AfutQueue *
afut_queue_ref (AfutQueue *queue)
{
  AFUT__RETURN_VAL_IF_FAIL (queue != NULL, NULL);
  AFUT__RETURN_VAL_IF_FAIL (queue->ref_count > 0, NULL);
  AFUT__RETURN_IF_WRONG_THREAD (queue->loop, NULL, NULL);
  queue->ref_count++;
  return queue;
}

void
afut_queue_unref (AfutQueue *queue)
{
  if (queue == NULL)
    return;
  AFUT__RETURN_IF_FAIL (queue->ref_count > 0);
  AFUT__RETURN_IF_WRONG_THREAD (queue->loop, NULL, );
  if (--queue->ref_count > 0)
    return;
  AFUT_ASSERT (queue->getters.head == NULL && queue->putters.head == NULL);
  while (queue->len > 0)
    {
      void *item = afut__queue_pop (queue);
      if (queue->item_destroy != NULL)
        queue->item_destroy (item);
    }
  AFUT_FREE (queue->entries);
  afut_event_unref (queue->finished);
  afut_future_unref (queue->anchor);
  AFUT_FREE (queue);
}

/* async def put(self, item):
 *     while self.full():
 *         putter = create_future(); self._putters.append(putter)
 *         try: await putter
 *         except:
 *             putter.cancel()
 *             try: self._putters.remove(putter)
 *             except ValueError: pass
 *             if not self.full() and not putter.cancelled():
 *                 self._wakeup_next(self._putters)
 *             raise
 *     return self.put_nowait(item) */
static void
afut__queue_put_step (AfutTask *task)
{
  AfutQueuePut *self = (AfutQueuePut *) task;
  AfutQueue *queue = self->queue;

  AFUT_BEGIN (task);
  while (afut__queue_full (queue))
    {
      if (!afut__sync_waiter_enqueue (&self->putter, &queue->putters,
                                      queue->loop))
        break;
      AFUT_AWAIT_TRY (task, afut_future_ref (self->putter.future));
      if (afut_task_caught (task) != NULL)
        {
          afut_future_cancel (self->putter.future, NULL);
          afut__sync_waiter_unlink (&self->putter);
          if (!afut__queue_full (queue)
              && !afut__sync_waiter_cancelled (&self->putter))
            afut__queue_wakeup_next (&queue->putters);
          /* The item never made it: it goes now, not with the future. */
          self->owns_item = false;
          if (queue->item_destroy != NULL)
            queue->item_destroy (self->item);
          AFUT_RERAISE (task);
        }
    }
  if (afut__queue_full (queue))
    {
      /* The loop is closed: no waiter future could be made. */
      self->owns_item = false;
      if (queue->item_destroy != NULL)
        queue->item_destroy (self->item);
      AFUT_THROW (task, afut__sync_closed_error ());
    }
  self->owns_item = false;
  if (!afut__queue_check_not_comparing (queue, "afut_queue_put"))
    {
      if (queue->item_destroy != NULL)
        queue->item_destroy (self->item);
      AFUT_THROW (task, afut__queue_reentry_error ());
    }
  afut__queue_put_item (queue, self->item);
  AFUT_END (task);
}

static void
afut__queue_put_finalize (AfutTask *task)
{
  AfutQueuePut *self = (AfutQueuePut *) task;
  afut__sync_waiter_clear (&self->putter);
  /* Never awaited, or cancelled before its first step. */
  if (self->owns_item && self->queue->item_destroy != NULL)
    self->queue->item_destroy (self->item);
  afut_queue_unref (self->queue);
}

AfutFuture *
afut_queue_put (AfutQueue *queue, void *item)
{
  AfutQueuePut init;
  AfutFuture *coro;
  AFUT__RETURN_VAL_IF_FAIL (queue != NULL, NULL);
  AFUT__RETURN_IF_WRONG_THREAD (queue->loop, NULL, NULL);
  memset (&init, 0, sizeof init);
  init.queue = queue;
  init.item = item;
  init.owns_item = true;
  coro = afut_coro_new (queue->loop, afut__queue_put_step, sizeof init,
                        &init, __func__, afut__queue_put_finalize);
  if (coro == NULL)
    {
      if (queue->item_destroy != NULL)
        queue->item_destroy (item);
      return NULL;
    }
  afut_queue_ref (queue);
  return coro;
}

bool
afut_queue_put_nowait (AfutQueue *queue, void *item)
{
  AFUT__RETURN_VAL_IF_FAIL (queue != NULL, false);
  AFUT__RETURN_IF_WRONG_THREAD (queue->loop, NULL, false);
  if (!afut__queue_check_not_comparing (queue, __func__)
      || afut__queue_full (queue))
    return false;
  afut__queue_put_item (queue, item);
  return true;
}

/* async def get(self):
 *     while self.empty():
 *         getter = create_future(); self._getters.append(getter)
 *         try: await getter
 *         except:
 *             getter.cancel()
 *             try: self._getters.remove(getter)
 *             except ValueError: pass
 *             if not self.empty() and not getter.cancelled():
 *                 self._wakeup_next(self._getters)
 *             raise
 *     return self.get_nowait() */
static void
afut__queue_get_step (AfutTask *task)
{
  AfutQueueGet *self = (AfutQueueGet *) task;
  AfutQueue *queue = self->queue;
  void *item;

  AFUT_BEGIN (task);
  while (queue->len == 0)
    {
      if (!afut__sync_waiter_enqueue (&self->getter, &queue->getters,
                                      queue->loop))
        AFUT_THROW (task, afut__sync_closed_error ());
      AFUT_AWAIT_TRY (task, afut_future_ref (self->getter.future));
      if (afut_task_caught (task) != NULL)
        {
          afut_future_cancel (self->getter.future, NULL);
          afut__sync_waiter_unlink (&self->getter);
          /* Woken by a put, but will not take the item: the next getter
           * gets the call. */
          if (queue->len > 0 && !afut__sync_waiter_cancelled (&self->getter))
            afut__queue_wakeup_next (&queue->getters);
          AFUT_RERAISE (task);
        }
    }
  if (!afut__queue_check_not_comparing (queue, "afut_queue_get"))
    AFUT_THROW (task, afut__queue_reentry_error ());
  item = afut__queue_take_item (queue);
  AFUT_RETURN_POINTER (task, item, queue->item_destroy);
  AFUT_END (task);
}

static void
afut__queue_get_finalize (AfutTask *task)
{
  AfutQueueGet *self = (AfutQueueGet *) task;
  afut__sync_waiter_clear (&self->getter);
  afut_queue_unref (self->queue);
}

AfutFuture *
afut_queue_get (AfutQueue *queue)
{
  AfutQueueGet init;
  AfutFuture *coro;
  AFUT__RETURN_VAL_IF_FAIL (queue != NULL, NULL);
  AFUT__RETURN_IF_WRONG_THREAD (queue->loop, NULL, NULL);
  memset (&init, 0, sizeof init);
  init.queue = queue;
  coro = afut_coro_new (queue->loop, afut__queue_get_step, sizeof init,
                        &init, __func__, afut__queue_get_finalize);
  if (coro != NULL)
    afut_queue_ref (queue);
  return coro;
}

bool
afut_queue_get_nowait (AfutQueue *queue, void **item)
{
  AFUT__RETURN_VAL_IF_FAIL (queue != NULL, false);
  AFUT__RETURN_VAL_IF_FAIL (item != NULL, false);
  AFUT__RETURN_IF_WRONG_THREAD (queue->loop, NULL, false);
  if (!afut__queue_check_not_comparing (queue, __func__) || queue->len == 0)
    return false;
  *item = afut__queue_take_item (queue);
  return true;
}

bool
afut_queue_task_done (AfutQueue *queue)
{
  AFUT__RETURN_VAL_IF_FAIL (queue != NULL, false);
  AFUT__RETURN_IF_WRONG_THREAD (queue->loop, NULL, false);
  if (queue->n_unfinished == 0)
    {
      afut__log (AFUT_LOG_CRITICAL, "%s: called too many times", __func__);
      return false;
    }
  if (--queue->n_unfinished == 0)
    afut_event_set (queue->finished);
  return true;
}

/* async def join(self):
 *     if self._unfinished_tasks > 0:
 *         await self._finished.wait() */
static void
afut__queue_join_step (AfutTask *task)
{
  AfutQueueJoin *self = (AfutQueueJoin *) task;

  AFUT_BEGIN (task);
  if (self->queue->n_unfinished > 0)
    AFUT_AWAIT (task, afut_event_wait (self->queue->finished));
  AFUT_END (task);
}

static void
afut__queue_join_finalize (AfutTask *task)
{
  AfutQueueJoin *self = (AfutQueueJoin *) task;
  afut_queue_unref (self->queue);
}

AfutFuture *
afut_queue_join (AfutQueue *queue)
{
  AfutQueueJoin init;
  AfutFuture *coro;
  AFUT__RETURN_VAL_IF_FAIL (queue != NULL, NULL);
  AFUT__RETURN_IF_WRONG_THREAD (queue->loop, NULL, NULL);
  memset (&init, 0, sizeof init);
  init.queue = queue;
  coro = afut_coro_new (queue->loop, afut__queue_join_step, sizeof init,
                        &init, __func__, afut__queue_join_finalize);
  if (coro != NULL)
    afut_queue_ref (queue);
  return coro;
}

size_t
afut_queue_get_size (AfutQueue *queue)
{
  AFUT__RETURN_VAL_IF_FAIL (queue != NULL, 0);
  AFUT__RETURN_IF_WRONG_THREAD (queue->loop, NULL, 0);
  return queue->len;
}

size_t
afut_queue_get_maxsize (AfutQueue *queue)
{
  AFUT__RETURN_VAL_IF_FAIL (queue != NULL, 0);
  AFUT__RETURN_IF_WRONG_THREAD (queue->loop, NULL, 0);
  return queue->maxsize;
}

bool
afut_queue_is_empty (AfutQueue *queue)
{
  AFUT__RETURN_VAL_IF_FAIL (queue != NULL, true);
  AFUT__RETURN_IF_WRONG_THREAD (queue->loop, NULL, true);
  return queue->len == 0;
}

bool
afut_queue_is_full (AfutQueue *queue)
{
  AFUT__RETURN_VAL_IF_FAIL (queue != NULL, false);
  AFUT__RETURN_IF_WRONG_THREAD (queue->loop, NULL, false);
  return afut__queue_full (queue);
}


/* ---- run ---- */

/* Makes a fresh loop for a run, or NULL (reported); @func names the
 * caller. */
static AfutLoop *
afut__run_loop_new (const char *func)
{
  const char *clock_env;
  if (afut__running_loop != NULL)
    {
      afut__log (AFUT_LOG_CRITICAL,
                 "%s: cannot be called from a running event loop", func);
      return NULL;
    }
  clock_env = getenv ("AFUT_CLOCK");
  return AFUT_RUN_LOOP_NEW (clock_env != NULL
                                && strcmp (clock_env, "virtual") == 0
                              ? AFUT_LOOP_VIRTUAL_CLOCK
                              : AFUT_LOOP_NONE);
}

/* asyncio.run()'s body: runs @main_future (transfer full) on @loop
 * (transfer full) until it is done, then closes the loop, whoever else
 * holds it, and hands @main_future back, done. */
static AfutFuture *
afut__run_main (AfutLoop *loop, AfutFuture *main_future)
{
  afut_loop_run_until_complete (loop, main_future);
  afut_loop_close (loop);
  afut_loop_unref (loop);
  return main_future;
}

AfutFuture *
afut_run_future (AfutRunFunc func, void *data)
{
  AfutLoop *loop;
  AfutFuture *main_future;
  AFUT__RETURN_VAL_IF_FAIL (func != NULL, NULL);
  loop = afut__run_loop_new (__func__);
  if (loop == NULL)
    return NULL;
  /* As asyncio.run (main ()) calls main () first: AFUT_CORO in @func
   * finds the loop. */
  afut_loop_push_thread_default (loop);
  main_future = func (loop, data);
  afut_loop_pop_thread_default (loop);
  if (main_future == NULL || main_future->loop != loop)
    {
      afut__log (AFUT_LOG_CRITICAL, "%s: the main future is %s", __func__,
                 main_future == NULL ? "NULL" : "of another loop");
      if (main_future != NULL)
        {
          afut_future_cancel (main_future, NULL);
          afut_future_unref (main_future);
        }
      afut_loop_close (loop);
      afut_loop_unref (loop);
      return NULL;
    }
  return afut__run_main (loop, main_future);
}

AfutFuture *
afut_run_task (AfutTaskFunc func, size_t struct_size, const void *init,
               const char *name)
{
  AfutLoop *loop;
  AfutFuture *main_future;
  AFUT__RETURN_VAL_IF_FAIL (func != NULL, NULL);
  AFUT__RETURN_VAL_IF_FAIL (struct_size >= sizeof (AfutTask), NULL);
  loop = afut__run_loop_new (__func__);
  if (loop == NULL)
    return NULL;
  main_future = afut_task_new (loop, func, struct_size, init, name, NULL);
  return afut__run_main (loop, main_future);
}

/* afut_run()'s end: main's error, printed after the cleanup (as
 * asyncio.run() raises it once the loop is closed), and the exit status.
 * Consumes @main_future. */
static int afut__run_report (AfutFuture *main_future);

int
afut_run (AfutTaskFunc func, size_t struct_size, const void *init,
          const char *name)
{
  AFUT__RETURN_VAL_IF_FAIL (func != NULL, 1);
  AFUT__RETURN_VAL_IF_FAIL (struct_size >= sizeof (AfutTask), 1);
  if (afut__running_loop != NULL)
    {
      afut__log (AFUT_LOG_CRITICAL,
                 "afut_run: cannot be called from a running event loop");
      return 1;
    }
  return afut__run_report (afut_run_task (func, struct_size, init, name));
}

int
afut_run_fiber (AfutFiberFunc func, void *user_data, const char *name)
{
  AfutLoop *loop;
  AfutFiberOptions options;
  AfutFuture *main_future;
  AFUT__RETURN_VAL_IF_FAIL (func != NULL, 1);
  loop = afut__run_loop_new (__func__);
  if (loop == NULL)
    return 1;
  memset (&options, 0, sizeof options);
  options.name = name;
  main_future = afut_fiber_new_full (loop, &options, func, user_data, NULL);
  if (main_future == NULL)
    {
      afut_loop_close (loop);
      afut_loop_unref (loop);
      return 1;
    }
  return afut__run_report (afut__run_main (loop, main_future));
}

static int
afut__run_report (AfutFuture *main_future)
{
  int status = 0;
  if (main_future == NULL)
    return 1;
  /* After the cleanup, as asyncio.run() raises main's error once the
   * loop is closed. */
  if (main_future->state != AFUT_FUTURE_DONE)
    {
      const AfutError *e = afut_future_get_error (main_future);
      const char *domain = afut_quark_to_string (e->domain);
      fprintf (stderr, "afut: main task '%s' %s: %s:%d: %s\n",
               afut__task_name ((AfutTask *) main_future),
               main_future->state == AFUT_FUTURE_CANCELLED
                 ? "was cancelled"
                 : "failed",
               domain ? domain : "?", e->code, e->message);
      status = 1;
    }
  afut_future_unref (main_future);
  return status;
}

/* ---- the bindable _full siblings of the loop's calls ---- */

typedef struct
{
  AfutCallback func;
  void *data;
  AfutDestroyNotify destroy;
} AfutFullCall;

static AfutFullCall *
afut__full_call_new (AfutCallback func, void *data, AfutDestroyNotify destroy)
{
  AfutFullCall *c = (AfutFullCall *) afut__alloc (sizeof (AfutFullCall));
  c->func = func;
  c->data = data;
  c->destroy = destroy;
  return c;
}

static void
afut__full_call_free (AfutFullCall *c)
{
  if (c->destroy != NULL)
    c->destroy (c->data);
  AFUT_FREE (c);
}

static void
afut__full_call_run_once (void *data)
{
  AfutFullCall *c = (AfutFullCall *) data;
  c->func (c->data);
  afut__full_call_free (c);
}

static void
afut__full_call_run (void *data)
{
  AfutFullCall *c = (AfutFullCall *) data;
  c->func (c->data);
}

static void
afut__full_call_handle_done (AfutFuture *handle, void *data)
{
  (void) handle;
  afut__full_call_free ((AfutFullCall *) data);
}

bool
afut_loop_call_soon_full (AfutLoop *loop, AfutCallback func, void *data,
                          AfutDestroyNotify destroy)
{
  AfutFullCall *c;
  if (func == NULL)
    {
      if (destroy != NULL)
        destroy (data);
      AFUT__RETURN_VAL_IF_FAIL (func != NULL, false);
    }
  AFUT__RETURN_VAL_IF_FAIL (loop != NULL, false);
  AFUT__RETURN_IF_WRONG_THREAD (loop, "afut_loop_call_soon_threadsafe()",
                                false);
  c = afut__full_call_new (func, data, destroy);
  if (!afut_loop_call_soon (loop, afut__full_call_run_once, c))
    {
      afut__full_call_free (c);
      return false;
    }
  return true;
}

static AfutFuture *
afut__call_full (AfutLoop *loop, double t, bool absolute, AfutCallback func,
                 void *data, AfutDestroyNotify destroy, const char *caller)
{
  AfutFullCall *c;
  AfutFuture *handle;
  if (func == NULL)
    {
      if (destroy != NULL)
        destroy (data);
      AFUT__RETURN_VAL_IF_FAIL_IN (caller, func != NULL, NULL);
    }
  AFUT__RETURN_VAL_IF_FAIL_IN (caller, loop != NULL, NULL);
  AFUT__RETURN_IF_WRONG_THREAD_IN (caller, loop, NULL, NULL);
  c = afut__full_call_new (func, data, destroy);
  handle = absolute ? afut_loop_call_at (loop, t, afut__full_call_run, c)
                    : afut_loop_call_later (loop, t, afut__full_call_run, c);
  if (handle == NULL)
    {
      afut__full_call_free (c);
      return NULL;
    }
  afut_future_add_done_callback (handle, afut__full_call_handle_done, c);
  return handle;
}

AfutFuture *
afut_loop_call_later_full (AfutLoop *loop, double delay, AfutCallback func,
                           void *data, AfutDestroyNotify destroy)
{
  return afut__call_full (loop, delay, false, func, data, destroy, __func__);
}

AfutFuture *
afut_loop_call_at_full (AfutLoop *loop, double when, AfutCallback func,
                        void *data, AfutDestroyNotify destroy)
{
  return afut__call_full (loop, when, true, func, data, destroy, __func__);
}


#ifdef __cplusplus
}
#endif

#endif /* AFUT_IMPLEMENTATION */
