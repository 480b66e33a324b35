/* afut-fuzz.c - the schedule fuzzer's runner: interprets fuzzer programs
 * (tests/fuzz/fuzzprog.py describes their text) on afut, with a virtual
 * clock, records the event trace fuzzinterp.py defines, and checks it
 * against the trace the reference model computed (its hash), plus
 * invariants of its own: every registered future completes once and its
 * done callback runs once, never inside the call that completed it; no
 * task steps after it completed; no unexpected critical; every task is
 * finalized and every allocation freed.
 *
 *   afut-fuzz --batch FILE|-     programs with expected hashes (fuzz.py
 *                                batch), prints "FAIL seed why" lines and
 *                                a last line "DONE n failed"
 *   afut-fuzz --trace FILE|-     one program: prints its trace; exit 1 on
 *                                an invariant violation
 *   afut-fuzz --bench FILE N     runs one program N times (profiling)
 *
 * Built with -DAFUT_FUZZ_LIBFUZZER and clang's -fsanitize=fuzzer, the
 * same interpreter runs programs decoded from libFuzzer's bytes
 * (README.md).  With -DAFUT_FUZZ_NO_MAIN it is a library for the
 * regression suite (test-fuzz-regressions.c).
 *
 * One program in the interpreter is a few procs (op lists): each task
 * runs one, with its program counter, its open blocks (try, timeout) and
 * what it awaits in its struct, the way afut's stackless tasks want.  A
 * group block (`async with TaskGroup()`) runs as an inline coroutine of
 * its own (Python's `await block()` around the `async with`, the same
 * task by afut's rule 5), so that an error or a return ends the block
 * the way afut ends a task inside a group: its exit folds the outcome,
 * and the enclosing blocks see what the `async with` raised. */

#ifndef _POSIX_C_SOURCE
#define _POSIX_C_SOURCE 200809L
#endif

#include <stdint.h>
#include <stdlib.h>

static long fz_n_live; /* allocations afut holds */

static void *
fz_malloc (size_t size)
{
  void *p = malloc (size);
  if (p != NULL)
    fz_n_live++;
  return p;
}

static void *
fz_realloc (void *ptr, size_t size)
{
  void *p = realloc (ptr, size);
  if (ptr == NULL && p != NULL)
    fz_n_live++;
  return p;
}

static void
fz_free (void *ptr)
{
  if (ptr != NULL)
    fz_n_live--;
  free (ptr);
}

#define AFUT_MALLOC(size) fz_malloc (size)
#define AFUT_REALLOC(ptr, size) fz_realloc ((ptr), (size))
#define AFUT_FREE(ptr) fz_free (ptr)
#define AFUT_IMPLEMENTATION
#include "afut.h"

#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

/* Virtual time unit: 1/512 s, so that tick counts convert to nanoseconds
 * exactly (ticks / 512.0 * 1e9 is an integer double). */
#define FZ_TICK_NS 1953125
#define FZ_MAX_BLOCKS 16
#define FZ_MAX_ROUNDS 400

/* ---- programs ---- */

enum
{
  OP_SLEEP,
  OP_YIELD,
  OP_SPAWN,
  OP_CALL,
  OP_AWAIT,
  OP_GATHER,
  OP_SHIELD,
  OP_WAITFOR,
  OP_CANCEL,
  OP_RESOLVE,
  OP_FAIL,
  OP_RAISE,
  OP_RETURN,
  OP_TRY,
  OP_TIMEOUT,
  OP_GROUP,
  OP_GSPAWN,
  OP_CANCELSELF, /* a = message, c = has message */
  OP_END_BLOCK, /* a = the opening op */
  OP_END_PROC
};

/* An item of gather/shield/waitfor: a new coroutine of proc k, or what
 * slot x holds. */
typedef struct
{
  int is_proc;
  int n;
} FzItem;

typedef struct
{
  int kind;
  int a, b, c; /* op arguments, in text order; cancel: c = has message */
  int item;    /* first item in prog->items */
  int n_items;
  int end; /* try/timeout/group: index of the OP_END_BLOCK */
} FzOp;

typedef struct
{
  int n_futures;
  int n_slots;
  FzOp *ops;
  int n_ops, cap_ops;
  FzItem *items;
  int n_items, cap_items;
  int *proc_start; /* index of each proc's first op; -1: not defined */
  int n_procs;
  int *timer_start; /* each timer's ops, ended by OP_END_PROC */
  int *timer_ticks;
  int n_timers;
  char seed[64];
} FzProg;

static void
fz_prog_free (FzProg *p)
{
  free (p->ops);
  free (p->items);
  free (p->proc_start);
  free (p->timer_start);
  free (p->timer_ticks);
  memset (p, 0, sizeof *p);
}

static int
fz_prog_add_op (FzProg *p, int kind)
{
  if (p->n_ops == p->cap_ops)
    {
      p->cap_ops = p->cap_ops ? p->cap_ops * 2 : 64;
      p->ops = realloc (p->ops, (size_t) p->cap_ops * sizeof *p->ops);
    }
  memset (&p->ops[p->n_ops], 0, sizeof *p->ops);
  p->ops[p->n_ops].kind = kind;
  return p->n_ops++;
}

static void
fz_prog_add_item (FzProg *p, int is_proc, int n)
{
  if (p->n_items == p->cap_items)
    {
      p->cap_items = p->cap_items ? p->cap_items * 2 : 32;
      p->items = realloc (p->items, (size_t) p->cap_items * sizeof *p->items);
    }
  p->items[p->n_items].is_proc = is_proc;
  p->items[p->n_items].n = n;
  p->n_items++;
}

/* ---- parsing ---- */

typedef struct
{
  char **tok;
  int n, i;
  const char *error;
} FzTokens;

static const char *
fz_next (FzTokens *t)
{
  if (t->i >= t->n)
    {
      t->error = "unexpected end of line";
      return "";
    }
  return t->tok[t->i++];
}

static int
fz_int (FzTokens *t)
{
  const char *s = fz_next (t);
  char *end;
  long v = strtol (s, &end, 10);
  if (*s == '\0' || *end != '\0')
    {
      t->error = "expected a number";
      return 0;
    }
  return (int) v;
}

static void
fz_item (FzProg *p, FzTokens *t)
{
  const char *s = fz_next (t);
  char *end;
  long v;
  if ((s[0] != 'p' && s[0] != 's') || s[1] == '\0')
    {
      t->error = "bad item";
      return;
    }
  v = strtol (s + 1, &end, 10);
  if (*end != '\0')
    t->error = "bad item";
  fz_prog_add_item (p, s[0] == 'p', (int) v);
}

/* Parses ops up to a '}' (in a block) or the end of the line;
 * @in_group: inside a group block (gspawn allowed). */
static void
fz_parse_ops (FzProg *p, FzTokens *t, int depth, bool in_group)
{
  while (t->error == NULL && t->i < t->n)
    {
      const char *k = t->tok[t->i];
      int i;
      if (strcmp (k, "}") == 0)
        {
          if (depth == 0)
            t->error = "unbalanced }";
          return;
        }
      t->i++;
      if (strcmp (k, "sleep") == 0)
        {
          i = fz_prog_add_op (p, OP_SLEEP);
          p->ops[i].a = fz_int (t);
        }
      else if (strcmp (k, "yield") == 0)
        fz_prog_add_op (p, OP_YIELD);
      else if (strcmp (k, "spawn") == 0 || strcmp (k, "gspawn") == 0)
        {
          if (k[0] == 'g' && !in_group)
            {
              t->error = "gspawn outside a group block";
              return;
            }
          i = fz_prog_add_op (p, k[0] == 'g' ? OP_GSPAWN : OP_SPAWN);
          p->ops[i].a = fz_int (t);
          p->ops[i].b = fz_int (t);
        }
      else if (strcmp (k, "call") == 0)
        {
          i = fz_prog_add_op (p, OP_CALL);
          p->ops[i].a = fz_int (t);
        }
      else if (strcmp (k, "await") == 0)
        {
          i = fz_prog_add_op (p, OP_AWAIT);
          p->ops[i].a = fz_int (t);
        }
      else if (strcmp (k, "gather") == 0)
        {
          int n, j;
          i = fz_prog_add_op (p, OP_GATHER);
          p->ops[i].a = fz_int (t);
          p->ops[i].b = fz_int (t);
          n = fz_int (t);
          p->ops[i].item = p->n_items;
          p->ops[i].n_items = n;
          for (j = 0; j < n && t->error == NULL; j++)
            fz_item (p, t);
        }
      else if (strcmp (k, "shield") == 0)
        {
          i = fz_prog_add_op (p, OP_SHIELD);
          p->ops[i].a = fz_int (t);
          p->ops[i].item = p->n_items;
          p->ops[i].n_items = 1;
          fz_item (p, t);
        }
      else if (strcmp (k, "waitfor") == 0)
        {
          i = fz_prog_add_op (p, OP_WAITFOR);
          p->ops[i].a = fz_int (t);
          p->ops[i].b = fz_int (t);
          p->ops[i].item = p->n_items;
          p->ops[i].n_items = 1;
          fz_item (p, t);
        }
      else if (strcmp (k, "cancel") == 0)
        {
          const char *m;
          i = fz_prog_add_op (p, OP_CANCEL);
          p->ops[i].a = fz_int (t);
          m = fz_next (t);
          if (strcmp (m, "-") != 0)
            {
              t->i--;
              p->ops[i].b = fz_int (t);
              p->ops[i].c = 1;
            }
        }
      else if (strcmp (k, "cancelself") == 0)
        {
          const char *m;
          i = fz_prog_add_op (p, OP_CANCELSELF);
          m = fz_next (t);
          if (strcmp (m, "-") != 0)
            {
              t->i--;
              p->ops[i].a = fz_int (t);
              p->ops[i].c = 1;
            }
        }
      else if (strcmp (k, "resolve") == 0 || strcmp (k, "fail") == 0)
        {
          i = fz_prog_add_op (p, k[0] == 'r' ? OP_RESOLVE : OP_FAIL);
          p->ops[i].a = fz_int (t);
          p->ops[i].b = fz_int (t);
        }
      else if (strcmp (k, "raise") == 0 || strcmp (k, "return") == 0)
        {
          i = fz_prog_add_op (p, strcmp (k, "raise") == 0 ? OP_RAISE
                                                            : OP_RETURN);
          p->ops[i].a = fz_int (t);
        }
      else if (strcmp (k, "try") == 0 || strcmp (k, "timeout") == 0
               || strcmp (k, "group") == 0)
        {
          int e;
          if (depth + 1 >= FZ_MAX_BLOCKS)
            {
              t->error = "blocks nested too deep";
              return;
            }
          if (k[0] == 'g')
            i = fz_prog_add_op (p, OP_GROUP);
          else if (k[1] == 'r')
            {
              const char *h = fz_next (t);
              i = fz_prog_add_op (p, OP_TRY);
              if (strcmp (h, "all") == 0)
                p->ops[i].a = 1;
              else if (strcmp (h, "err") != 0)
                t->error = "try: all or err";
            }
          else
            {
              i = fz_prog_add_op (p, OP_TIMEOUT);
              p->ops[i].a = fz_int (t);
            }
          if (strcmp (fz_next (t), "{") != 0)
            {
              t->error = "expected {";
              return;
            }
          fz_parse_ops (p, t, depth + 1, in_group || k[0] == 'g');
          if (t->error != NULL)
            return;
          if (strcmp (fz_next (t), "}") != 0)
            {
              t->error = "expected }";
              return;
            }
          e = fz_prog_add_op (p, OP_END_BLOCK);
          p->ops[e].a = i;
          p->ops[i].end = e;
        }
      else
        t->error = "unknown op";
    }
  if (depth > 0 && t->error == NULL)
    t->error = "missing }";
}

static int
fz_split (char *line, char ***tok)
{
  int n = 0, cap = 16;
  char *save = NULL, *s;
  *tok = malloc ((size_t) cap * sizeof **tok);
  for (s = strtok_r (line, " \t\r\n", &save); s != NULL;
       s = strtok_r (NULL, " \t\r\n", &save))
    {
      if (n == cap)
        {
          cap *= 2;
          *tok = realloc (*tok, (size_t) cap * sizeof **tok);
        }
      (*tok)[n++] = s;
    }
  return n;
}

/* Checks what the interpreter relies on: slots, procs and futures in
 * range, procs referencing only higher procs (so runs end). */
static const char *
fz_prog_check (const FzProg *p)
{
  int i, k;
  if (p->n_procs < 1 || p->proc_start[0] < 0)
    return "no proc 0";
  if (p->n_futures < 0 || p->n_slots < p->n_futures || p->n_slots > 100000)
    return "bad futures/slots";
  for (k = -1; k < p->n_procs + p->n_timers; k++)
    {
      int start, owner;
      if (k < 0)
        continue;
      if (k < p->n_procs)
        {
          start = p->proc_start[k];
          owner = k;
          if (start < 0)
            continue;
        }
      else
        {
          start = p->timer_start[k - p->n_procs];
          owner = 0; /* timers may reference procs 1.. */
        }
      for (i = start; p->ops[i].kind != OP_END_PROC; i++)
        {
          const FzOp *op = &p->ops[i];
          int j;
          bool in_timer = k >= p->n_procs;
          switch (op->kind)
            {
            case OP_SPAWN:
            case OP_GSPAWN:
            case OP_CALL:
              if (op->a <= owner || op->a >= p->n_procs
                  || p->proc_start[op->a] < 0)
                return "bad proc reference";
              if (op->kind != OP_CALL
                  && (op->b < p->n_futures || op->b >= p->n_slots))
                return "bad slot (spawn into a plain future's slot?)";
              if (in_timer && op->kind != OP_SPAWN)
                return "await or group in a timer";
              break;
            case OP_AWAIT:
            case OP_CANCEL:
              if (op->a < 0 || op->a >= p->n_slots)
                return "bad slot";
              if (in_timer && op->kind == OP_AWAIT)
                return "await in a timer";
              break;
            case OP_RESOLVE:
            case OP_FAIL:
              if (op->a < 0 || op->a >= p->n_futures)
                return "resolve/fail of a slot that is no plain future";
              break;
            case OP_GATHER:
            case OP_SHIELD:
            case OP_WAITFOR:
              if (op->a < p->n_futures || op->a >= p->n_slots)
                return "bad slot (into a plain future's slot?)";
              for (j = 0; j < op->n_items; j++)
                {
                  const FzItem *it = &p->items[op->item + j];
                  if (it->is_proc
                      && (it->n <= owner || it->n >= p->n_procs
                          || p->proc_start[it->n] < 0))
                    return "bad proc reference";
                  if (!it->is_proc && (it->n < 0 || it->n >= p->n_slots))
                    return "bad slot";
                }
              break;
            case OP_SLEEP:
            case OP_YIELD:
            case OP_RAISE:
            case OP_RETURN:
            case OP_TRY:
            case OP_TIMEOUT:
            case OP_GROUP:
            case OP_CANCELSELF:
              if (in_timer)
                return "only non-awaiting ops in timers";
              if ((op->kind == OP_SLEEP || op->kind == OP_TIMEOUT) && op->a < 0)
                return "negative ticks";
              break;
            default:
              break;
            }
        }
    }
  return NULL;
}

/* Parses a program's text (NUL-terminated, modified in place). */
static const char *
fz_prog_parse (FzProg *p, char *text)
{
  char *save = NULL, *line;
  const char *error = NULL;
  int max_procs = 0;
  memset (p, 0, sizeof *p);
  for (line = strtok_r (text, "\n", &save); line != NULL && error == NULL;
       line = strtok_r (NULL, "\n", &save))
    {
      char **tok;
      int n = fz_split (line, &tok);
      FzTokens t = { tok, n, 1, NULL };
      if (n == 0)
        ;
      else if (tok[0][0] == '#')
        {
          if (n >= 3 && strcmp (tok[1], "seed") == 0)
            snprintf (p->seed, sizeof p->seed, "%s", tok[2]);
          t.i = n;
        }
      else if (strcmp (tok[0], "futures") == 0)
        p->n_futures = fz_int (&t);
      else if (strcmp (tok[0], "slots") == 0)
        p->n_slots = fz_int (&t);
      else if (strcmp (tok[0], "timer") == 0)
        {
          int ticks = fz_int (&t);
          p->timer_start = realloc (p->timer_start,
                                    (size_t) (p->n_timers + 1) * sizeof (int));
          p->timer_ticks = realloc (p->timer_ticks,
                                    (size_t) (p->n_timers + 1) * sizeof (int));
          p->timer_ticks[p->n_timers] = ticks;
          p->timer_start[p->n_timers++] = p->n_ops;
          fz_parse_ops (p, &t, 0, false);
          fz_prog_add_op (p, OP_END_PROC);
        }
      else if (strcmp (tok[0], "proc") == 0)
        {
          int k = fz_int (&t), j;
          if (t.error == NULL && (k < 0 || k > 10000))
            t.error = "bad proc number";
          else if (t.error == NULL)
            {
              if (k >= max_procs)
                {
                  p->proc_start = realloc (p->proc_start,
                                           (size_t) (k + 1) * sizeof (int));
                  for (j = max_procs; j <= k; j++)
                    p->proc_start[j] = -1;
                  max_procs = k + 1;
                }
              if (p->proc_start[k] >= 0)
                t.error = "proc defined twice";
              else
                {
                  p->proc_start[k] = p->n_ops;
                  fz_parse_ops (p, &t, 0, false);
                  fz_prog_add_op (p, OP_END_PROC);
                }
            }
        }
      else
        t.error = "unknown line";
      if (t.error == NULL && t.i < t.n)
        t.error = "trailing tokens";
      error = t.error;
      free (tok);
    }
  p->n_procs = max_procs;
  if (error == NULL)
    error = fz_prog_check (p);
  return error;
}

/* ---- the trace ---- */

typedef struct
{
  char *s;
  size_t len, cap;
} FzBuf;

static void
fz_buf_vprintf (FzBuf *b, const char *format, va_list args)
{
  va_list copy;
  int n;
  va_copy (copy, args);
  n = vsnprintf (b->s != NULL ? b->s + b->len : NULL,
                 b->s != NULL ? b->cap - b->len : 0, format, copy);
  va_end (copy);
  if (b->s == NULL || b->len + (size_t) n + 1 > b->cap)
    {
      while (b->cap < b->len + (size_t) n + 1)
        b->cap = b->cap ? b->cap * 2 : 4096;
      b->s = realloc (b->s, b->cap);
      vsnprintf (b->s + b->len, b->cap - b->len, format, args);
    }
  b->len += (size_t) n;
}

static void fz_buf_printf (FzBuf *b, const char *format, ...)
  AFUT__PRINTF (2, 3);

static void
fz_buf_printf (FzBuf *b, const char *format, ...)
{
  va_list args;
  va_start (args, format);
  fz_buf_vprintf (b, format, args);
  va_end (args);
}

/* ---- a run ---- */

enum
{
  K_FUTURE,
  K_TASK,
  K_GATHER,
  K_SHIELD,
  K_WAITFOR
};

typedef struct
{
  AfutFuture *future; /* a reference */
  int kind;
  int inner;     /* shield, waitfor: the entry of the inner future */
  int *children; /* gather: entries of its items, in input order */
  int n_children;
  int n_done_callbacks;
  int awaiting;  /* task: the entry it awaits (also from an inline call) */
  int *group_children; /* task: the children its task groups spawned */
  int n_group_children;
  char *outcome; /* as the done callback saw it */
  bool pending_at_cleanup; /* cancelled by the final cleanup */
} FzEntry;

typedef struct
{
  const FzProg *prog;
  AfutLoop *loop;
  FzBuf trace;
  FzBuf violations;
  FzEntry *reg;
  int n_reg, cap_reg;
  int *slots;
  int step_depth;        /* task steps and timer callbacks on the stack */
  int expect_critical;   /* criticals the current op may log */
  int n_criticals;
  long n_tasks_made;     /* Interp tasks created, and finalized */
  long n_tasks_finalized;
  char **unretrieved_lines;
  int n_unretrieved;
  char **expected_reports; /* the unretrieved lines of the trace */
  int n_expected_reports;
  bool quiet;              /* cleaning up: no more trace */
  bool cleaned_up;
  int fibers;              /* which procs run as fibers: FZ_FIBERS_* */
  struct FzInterp **fiber_states; /* each fiber's, freed with the run */
  int n_fiber_states;
} FzRun;

/* AFUT_FUZZ_FIBERS: every task a stackless one (unset), a fiber ("all"),
 * or the odd procs' tasks fibers and the even ones stackless ("odd"), so
 * that fibers and stackless tasks await, cancel and gather each other. */
enum
{
  FZ_FIBERS_NONE,
  FZ_FIBERS_ALL,
  FZ_FIBERS_ODD
};

static FzRun *fz_run; /* the run in progress (one at a time) */

static void fz_violation (const char *format, ...) AFUT__PRINTF (1, 2);

static void
fz_violation (const char *format, ...)
{
  va_list args;
  fz_buf_printf (&fz_run->violations, "VIOLATION t%lld: ",
                 fz_run->loop != NULL
                   ? (long long) (afut_loop_time_ns (fz_run->loop) / FZ_TICK_NS)
                   : -1LL);
  va_start (args, format);
  fz_buf_vprintf (&fz_run->violations, format, args);
  va_end (args);
  fz_buf_printf (&fz_run->violations, "\n");
}

static void fz_log (const char *who, const char *format, ...)
  AFUT__PRINTF (2, 3);

static void
fz_log (const char *who, const char *format, ...)
{
  va_list args;
  fz_buf_printf (&fz_run->trace, "t%lld %s ",
                 (long long) (afut_loop_time_ns (fz_run->loop) / FZ_TICK_NS),
                 who);
  va_start (args, format);
  fz_buf_vprintf (&fz_run->trace, format, args);
  va_end (args);
  fz_buf_printf (&fz_run->trace, "\n");
}

/* ---- formatting (fuzzinterp.py: fmt_exc, fmt_outcome) ---- */

static void
fz_fmt_error (FzBuf *b, const AfutError *e)
{
  if (e == NULL)
    fz_buf_printf (b, "err:null");
  else if (afut_error_is_cancelled (e))
    fz_buf_printf (b, "cancel:%s", e->message);
  else if (afut_error_matches (e, AFUT_ERROR, AFUT_ERROR_TIMEOUT))
    fz_buf_printf (b, "timeout");
  else if (afut_error_matches (e, AFUT_ERROR, AFUT_ERROR_FAILED)
           && e->message[0] == 'E')
    fz_buf_printf (b, "%s", e->message);
  else
    fz_buf_printf (b, "err:%s:%s", afut_error_code_to_string (e->code),
                   e->message);
}

/* The error of a failed or cancelled future, without marking it
 * retrieved (which afut_future_get_error() would): the unretrieved
 * reports are part of what is checked. */
static const AfutError *
fz_peek_error (AfutFuture *f)
{
  return f->u.error;
}

static void
fz_fmt_plain_value (FzBuf *b, AfutFuture *f)
{
  switch (afut_future_get_value_type (f))
    {
    case AFUT_VALUE_NONE:
      fz_buf_printf (b, "none");
      break;
    case AFUT_VALUE_INT:
      fz_buf_printf (b, "%lld", (long long) afut_future_get_int (f));
      break;
    default:
      fz_buf_printf (b, "value?");
      break;
    }
}

static bool
fz_listy (int i)
{
  FzEntry *e = &fz_run->reg[i];
  return e->kind == K_GATHER
         || ((e->kind == K_SHIELD || e->kind == K_WAITFOR)
             && fz_listy (e->inner));
}

/* Lists nested deeper than this print as [LENGTH] (fuzzinterp.py:
 * MAX_DEPTH): gathers of gathers of the same slot would print
 * exponentially long. */
#define FZ_MAX_DEPTH 2

static void fz_fmt_outcome (FzBuf *b, int i, int depth);

static void
fz_fmt_value (FzBuf *b, int i, int depth)
{
  FzEntry *e = &fz_run->reg[i];
  if (e->kind == K_GATHER)
    {
      int j;
      if ((size_t) e->n_children != afut_gather_get_n_items (e->future))
        fz_violation ("gather #%d has %zu items, not %d", i,
                      afut_gather_get_n_items (e->future), e->n_children);
      for (j = 0; j < e->n_children; j++)
        if (afut_gather_get_item (e->future, (size_t) j)
            != fz_run->reg[e->children[j]].future)
          fz_violation ("gather #%d: item %d is not the child given", i, j);
      if (depth >= FZ_MAX_DEPTH)
        {
          fz_buf_printf (b, "[%d]", e->n_children);
          return;
        }
      fz_buf_printf (b, "[");
      for (j = 0; j < e->n_children; j++)
        {
          if (j > 0)
            fz_buf_printf (b, ",");
          fz_fmt_outcome (b, e->children[j], depth + 1);
        }
      fz_buf_printf (b, "]");
    }
  else if ((e->kind == K_SHIELD || e->kind == K_WAITFOR) && fz_listy (e->inner))
    fz_fmt_outcome (b, e->inner, depth);
  else
    fz_fmt_plain_value (b, e->future);
}

static void
fz_fmt_outcome (FzBuf *b, int i, int depth)
{
  AfutFuture *f = fz_run->reg[i].future;
  switch (afut_future_get_state (f))
    {
    case AFUT_FUTURE_PENDING:
      fz_buf_printf (b, "pending");
      break;
    case AFUT_FUTURE_DONE:
      fz_fmt_value (b, i, depth);
      break;
    default:
      fz_fmt_error (b, fz_peek_error (f));
      break;
    }
}

static char *
fz_outcome_string (int i)
{
  FzBuf b = { NULL, 0, 0 };
  fz_fmt_outcome (&b, i, 0);
  return b.s;
}

/* ---- the registry ---- */

static void
fz_observe (AfutFuture *future, void *data)
{
  int i = (int) (intptr_t) data;
  FzEntry *e = &fz_run->reg[i];
  char *outcome;
  if (fz_run->step_depth != 0)
    fz_violation ("done callback of #%d ran inside a step or callback "
                  "(synchronously)", i);
  if (future != e->future)
    fz_violation ("done callback of #%d got another future", i);
  if (!afut_future_is_done (future))
    fz_violation ("done callback of #%d ran while it is pending", i);
  e->n_done_callbacks++;
  if (e->n_done_callbacks > 1)
    fz_violation ("done callback of #%d ran %d times", i, e->n_done_callbacks);
  outcome = fz_outcome_string (i);
  if (!fz_run->quiet)
    fz_log ("cb", "done #%d %s", i, outcome);
  free (e->outcome);
  e->outcome = outcome;
}

static int
fz_register (AfutFuture *f, int kind)
{
  FzRun *run = fz_run;
  int i = run->n_reg;
  if (run->n_reg == run->cap_reg)
    {
      run->cap_reg = run->cap_reg ? run->cap_reg * 2 : 32;
      run->reg = realloc (run->reg, (size_t) run->cap_reg * sizeof *run->reg);
    }
  memset (&run->reg[i], 0, sizeof *run->reg);
  run->reg[i].future = afut_future_ref (f);
  run->reg[i].kind = kind;
  run->reg[i].inner = -1;
  run->reg[i].awaiting = -1;
  run->n_reg++;
  if (kind == K_TASK)
    {
      char name[24];
      snprintf (name, sizeof name, "#%d", i);
      afut_task_set_name (AFUT_TASK (f), name);
    }
  afut_future_add_done_callback (f, fz_observe, (void *) (intptr_t) i);
  return i;
}

/* The entry of @f, -1 if it is not registered. */
static int
fz_lookup (AfutFuture *f)
{
  int i;
  for (i = 0; i < fz_run->n_reg; i++)
    if (fz_run->reg[i].future == f)
      return i;
  return -1;
}

/* Whether cancelling entry @x would reach entry @target: through what a
 * task awaits or its task groups' children, a gather's children, a
 * wait_for's inner (fuzzinterp.py: reaches).  Awaiting such an @x would make a wait cycle, whose cancel
 * recurses without end in asyncio as in afut: the programs skip it. */
static bool
fz_reaches (int x, int target)
{
  FzRun *run = fz_run;
  size_t n = 0, cap = 64;
  int *todo = malloc (cap * sizeof (int));
  char *seen = calloc ((size_t) run->n_reg + 1, 1);
  bool found = false;
  todo[n++] = x;
  while (n > 0 && !found)
    {
      FzEntry *e;
      int j;
      x = todo[--n];
      if (x == target)
        found = true;
      if (found || seen[x])
        continue;
      seen[x] = 1;
      e = &run->reg[x];
      if (afut_future_is_done (e->future))
        continue;
      if (n + (size_t) e->n_children + 2 > cap)
        {
          cap = (n + (size_t) e->n_children + 2) * 2;
          todo = realloc (todo, cap * sizeof (int));
        }
      if (n + (size_t) e->n_group_children + 2 > cap)
        {
          cap = (n + (size_t) e->n_group_children + 2) * 2;
          todo = realloc (todo, cap * sizeof (int));
        }
      /* A task: what it awaits, and the children of its task groups,
       * which it will wait for at the group's exit. */
      if (e->kind == K_TASK)
        for (j = 0; j < e->n_group_children; j++)
          todo[n++] = e->group_children[j];
      if (e->kind == K_TASK && e->awaiting >= 0)
        todo[n++] = e->awaiting;
      else if (e->kind == K_GATHER)
        for (j = 0; j < e->n_children; j++)
          todo[n++] = e->children[j];
      else if (e->kind == K_WAITFOR)
        todo[n++] = e->inner;
    }
  free (todo);
  free (seen);
  return found;
}

/* ---- the interpreter ---- */

enum
{
  AW_NONE,  /* sleep, yield: the value is None */
  AW_CALL,  /* an inline coroutine: its value */
  AW_ENTRY, /* a registered future */
  AW_GROUP  /* a group block's frame */
};

enum
{
  B_TRY_ALL,
  B_TRY_ERR,
  B_TIMEOUT
};

typedef struct
{
  int kind;
  int op;
  AfutTimeout timeout; /* stays here while the scope is open */
} FzBlock;

typedef struct FzInterp
{
  AfutTask task; /* a fiber's state is not its task: unused then */
  FzRun *run;
  bool fiber;      /* the body runs on a fiber (fz_fiber_body) */
  AfutTask *self;  /* a fiber's task, once its body runs */
  AfutFuture *fiber_future; /* a fiber's, to find its state */
  int proc;
  int host;       /* the registered task this runs in (inline: its host) */
  bool is_inline; /* `call K` or a group block: a coroutine awaited by its
                     host */
  bool is_group_frame; /* a group block: runs its body in the group */
  int group_op;        /* its OP_GROUP */
  AfutTaskGroup *group; /* its group, until the exit completes */
  bool returned;       /* ended by a `return` op (a group frame: the
                          host returns too) */
  bool finalized;
  int pc;
  int n_blocks;
  int n_try;      /* enclosing try blocks: awaits catch when > 0 */
  FzBlock blocks[FZ_MAX_BLOCKS];
  int await_kind; /* what the await in progress was */
  int await_entry;
  AfutFuture *to_await;
  AfutError *error;    /* an error being unwound that `raise` made */
  bool error_caught;   /* the error being unwound is afut_task_caught() */
  int ret_value;
  int next;            /* what fz_run_ops said to do */
  char who[24];
} FzInterp;

enum
{
  NEXT_CONTINUE,
  NEXT_AWAIT,
  NEXT_YIELD,
  NEXT_RETURN_NONE,
  NEXT_RETURN_INT,
  NEXT_THROW,
  NEXT_RERAISE,
  NEXT_GROUP_EXIT /* a group frame's body is done: the exit */
};

static void fz_interp_func (AfutTask *task);
static AfutFuture *fz_fiber_body (void *data);

static bool
fz_proc_is_fiber (int proc)
{
  return fz_run->fibers == FZ_FIBERS_ALL
         || (fz_run->fibers == FZ_FIBERS_ODD && proc % 2 == 1);
}

/* The interpreter state of a task or coroutine this run made: a
 * stackless one is its task; a fiber's is on the heap (its body works on
 * a copy on its stack, and writes back what the awaiter reads). */
static FzInterp *
fz_interp_of (AfutFuture *f)
{
  int i;
  /* (the step function is a private field, peeked at as the flags are) */
  if (AFUT_TASK (f)->func == fz_interp_func)
    return (FzInterp *) AFUT_TASK (f);
  /* Newest first: a freed fiber's address may be a new one's. */
  for (i = fz_run->n_fiber_states - 1; i >= 0; i--)
    if (fz_run->fiber_states[i]->fiber_future == f)
      return fz_run->fiber_states[i];
  fz_violation ("a task the run did not make");
  return (FzInterp *) AFUT_TASK (f);
}

/* The task the interpreter's scopes and awaits belong to. */
static AfutTask *
fz_self (FzInterp *s)
{
  return s->fiber ? s->self : &s->task;
}

static void
fz_fiber_destroy (void *data)
{
  FzInterp *s = (FzInterp *) data;
  if (s->finalized)
    fz_violation ("fiber %s finalized twice", s->who);
  s->finalized = true;
  s->run->n_tasks_finalized++;
}

/* A task (or with @lazy a coroutine) running @proc as a fiber. */
static AfutFuture *
fz_new_fiber (int proc, bool lazy, const char *name)
{
  FzRun *run = fz_run;
  FzInterp *h = calloc (1, sizeof *h);
  AfutFiberOptions options;
  memset (&options, 0, sizeof options);
  options.name = name;
  options.lazy = lazy;
  h->run = run;
  h->fiber = true;
  h->proc = proc;
  h->host = -1;
  h->pc = run->prog->proc_start[proc];
  run->n_tasks_made++;
  run->fiber_states = realloc (run->fiber_states,
                               (size_t) (run->n_fiber_states + 1)
                                 * sizeof *run->fiber_states);
  run->fiber_states[run->n_fiber_states++] = h;
  h->fiber_future = afut_fiber_new_full (run->loop, &options, fz_fiber_body,
                                         h, fz_fiber_destroy);
  return h->fiber_future;
}

static void
fz_interp_finalize (AfutTask *task)
{
  FzInterp *s = (FzInterp *) task;
  if (s->finalized)
    fz_violation ("task %s finalized twice", s->who);
  s->finalized = true;
  s->run->n_tasks_finalized++;
  afut_error_free (s->error);
  s->error = NULL;
  afut_future_unref (s->to_await);
  s->to_await = NULL;
}

static AfutFuture *
fz_new_coro (int proc)
{
  FzInterp init;
  AfutFuture *f;
  if (fz_proc_is_fiber (proc))
    return fz_new_fiber (proc, true, "coro");
  memset (&init, 0, sizeof init);
  init.run = fz_run;
  init.proc = proc;
  init.host = -1;
  init.pc = fz_run->prog->proc_start[proc];
  fz_run->n_tasks_made++;
  f = afut_coro_new (fz_run->loop, fz_interp_func, sizeof (FzInterp), &init,
                     "coro", fz_interp_finalize);
  return f;
}

static void
fz_set_host (AfutFuture *f, int host)
{
  FzInterp *s = fz_interp_of (f);
  s->host = host;
  snprintf (s->who, sizeof s->who, "#%d", host);
}

static AfutError *
fz_error_new (int label)
{
  return afut_error_new (AFUT_ERROR, AFUT_ERROR_FAILED, "E%d", label);
}

/* The future an item names, a new reference, or NULL for an empty slot;
 * *@new_proc says whether it is a new coroutine. */
static AfutFuture *
fz_item_future (const FzItem *it, bool *new_proc)
{
  *new_proc = it->is_proc != 0;
  if (it->is_proc)
    return fz_new_coro (it->n);
  if (fz_run->slots[it->n] < 0)
    return NULL;
  return afut_future_ref (fz_run->reg[fz_run->slots[it->n]].future);
}

static void
fz_op_gather (const char *who, const FzOp *op)
{
  FzRun *run = fz_run;
  AfutFuture *stack[8], **items = stack, *g;
  int *is_new, n = 0, j, gi;
  FzEntry *e;
  FzBuf b = { NULL, 0, 0 };
  if (op->n_items > 8)
    items = malloc ((size_t) op->n_items * sizeof *items);
  is_new = calloc ((size_t) op->n_items + 1, sizeof *is_new);
  for (j = 0; j < op->n_items; j++)
    {
      bool np;
      AfutFuture *f = fz_item_future (&run->prog->items[op->item + j], &np);
      if (f == NULL)
        continue;
      is_new[n] = np;
      items[n++] = f;
    }
  /* The varargs forms take the references; the array forms do not. */
  if (n == 0 || n > 3 || (op->a + n) % 3 == 0)
    {
      g = op->b ? afut_gather_return_exceptions_v (items, (size_t) n)
                : afut_gather_v (items, (size_t) n);
      for (j = 0; j < n; j++)
        afut_future_unref (items[j]);
    }
  else if (n == 1)
    g = op->b ? afut_gather_return_exceptions (items[0], NULL)
              : afut_gather (items[0], NULL);
  else if (n == 2)
    g = op->b ? afut_gather_return_exceptions (items[0], items[1], NULL)
              : afut_gather (items[0], items[1], NULL);
  else
    g = op->b ? afut_gather_return_exceptions (items[0], items[1], items[2],
                                               NULL)
              : afut_gather (items[0], items[1], items[2], NULL);
  if (g == NULL)
    {
      fz_violation ("gather returned NULL");
      if (items != stack)
        free (items);
      free (is_new);
      return;
    }
  /* The new coroutines become tasks: registered in input order, then the
   * gather. */
  for (j = 0; j < n; j++)
    if (is_new[j])
      {
        AfutFuture *child = afut_gather_get_item (g, (size_t) j);
        int ci = fz_register (child, K_TASK);
        fz_set_host (child, ci);
      }
  gi = fz_register (g, K_GATHER);
  e = &run->reg[gi];
  e->n_children = n;
  e->children = malloc (((size_t) n + 1) * sizeof (int));
  for (j = 0; j < n; j++)
    {
      e->children[j] = fz_lookup (afut_gather_get_item (g, (size_t) j));
      fz_buf_printf (&b, "%s#%d", j ? "," : "", e->children[j]);
    }
  run->slots[op->a] = gi;
  fz_log (who, "gather s%d #%d [%s]", op->a, gi, b.s != NULL ? b.s : "");
  free (b.s);
  afut_future_unref (g);
  if (items != stack)
    free (items);
  free (is_new);
}

static void
fz_op_shield_waitfor (const char *who, const FzOp *op)
{
  FzRun *run = fz_run;
  bool np;
  AfutFuture *inner = fz_item_future (&run->prog->items[op->item], &np);
  AfutFuture *outer;
  int ii, oi;
  const char *name = op->kind == OP_SHIELD ? "shield" : "waitfor";
  if (inner == NULL)
    {
      fz_log (who, "%s s%d empty", name, op->a);
      return;
    }
  /* Both take the reference; keep one to register the inner. */
  afut_future_ref (inner);
  if (op->kind == OP_SHIELD)
    outer = afut_shield (inner);
  else
    outer = afut_wait_for (inner, op->b / 512.0);
  if (np)
    {
      ii = fz_register (inner, K_TASK);
      fz_set_host (inner, ii);
    }
  else
    ii = run->slots[run->prog->items[op->item].n];
  if (outer == inner)
    oi = ii;
  else
    {
      oi = fz_register (outer, op->kind == OP_SHIELD ? K_SHIELD : K_WAITFOR);
      run->reg[oi].inner = ii;
    }
  afut_future_unref (inner);
  run->slots[op->a] = oi;
  if (op->kind == OP_SHIELD)
    {
      if (oi == ii)
        fz_log (who, "shield s%d #%d same", op->a, ii);
      else
        fz_log (who, "shield s%d #%d #%d", op->a, ii, oi);
    }
  else if (oi == ii)
    fz_log (who, "waitfor s%d %d #%d same", op->a, op->b, ii);
  else
    fz_log (who, "waitfor s%d %d #%d #%d", op->a, op->b, ii, oi);
  afut_future_unref (outer);
}

/* The ops that do not await, in a task or a timer callback. */
static void
fz_sync_op (const char *who, const FzOp *op)
{
  FzRun *run = fz_run;
  if (op->kind == OP_SPAWN)
    {
      AfutFuture *t;
      FzInterp init;
      int i;
      memset (&init, 0, sizeof init);
      init.run = run;
      init.proc = op->a;
      init.host = -1;
      init.pc = run->prog->proc_start[op->a];
      if (fz_proc_is_fiber (op->a))
        t = fz_new_fiber (op->a, false, NULL);
      else
        {
          run->n_tasks_made++;
          t = afut_task_new (run->loop, fz_interp_func, sizeof (FzInterp),
                             &init, NULL, fz_interp_finalize);
        }
      i = fz_register (t, K_TASK);
      fz_set_host (t, i);
      run->slots[op->b] = i;
      fz_log (who, "spawn %d s%d #%d", op->a, op->b, i);
      afut_future_unref (t);
    }
  else if (op->kind == OP_GATHER)
    fz_op_gather (who, op);
  else if (op->kind == OP_SHIELD || op->kind == OP_WAITFOR)
    fz_op_shield_waitfor (who, op);
  else if (op->kind == OP_CANCEL)
    {
      int i = run->slots[op->a];
      if (i < 0)
        fz_log (who, "cancel s%d empty", op->a);
      else
        {
          char msg[24];
          bool r;
          snprintf (msg, sizeof msg, "m%d", op->b);
          r = afut_future_cancel (run->reg[i].future, op->c ? msg : NULL);
          fz_log (who, "cancel s%d #%d -> %d", op->a, i, (int) r);
        }
    }
  else if (op->kind == OP_RESOLVE || op->kind == OP_FAIL)
    {
      AfutFuture *f = run->reg[run->slots[op->a]].future;
      bool was_done = afut_future_is_done (f), r;
      int before = run->n_criticals;
      run->expect_critical++;
      if (op->kind == OP_RESOLVE)
        r = afut_future_resolve_int (f, op->b);
      else
        r = afut_future_fail (f, fz_error_new (op->b));
      run->expect_critical--;
      /* Completing a done future is a reported misuse: one critical. */
      if (run->n_criticals - before != (was_done ? 1 : 0))
        fz_violation ("%s of a %s future logged %d criticals",
                      op->kind == OP_RESOLVE ? "resolve" : "fail",
                      was_done ? "done" : "pending",
                      run->n_criticals - before);
      if (r == was_done)
        fz_violation ("resolve/fail returned %d on a %s future", (int) r,
                      was_done ? "done" : "pending");
      if (op->kind == OP_RESOLVE)
        fz_log (who, "resolve s%d %d -> %d", op->a, op->b, (int) r);
      else
        fz_log (who, "fail s%d E%d -> %d", op->a, op->b, (int) r);
    }
  else
    fz_violation ("op %d cannot run here", op->kind);
}

/* tg.create_task(proc K) in the frame's group; a group shutting down
 * refuses it (Python raises RuntimeError; afut logs a critical and
 * cancels the coroutine). */
static void
fz_op_gspawn (FzInterp *s, const FzOp *op)
{
  FzRun *run = s->run;
  AfutFuture *c = fz_new_coro (op->a), *t;
  int before = run->n_criticals, i;
  FzEntry *host;
  run->expect_critical++;
  t = afut_task_group_spawn (s->group, c);
  run->expect_critical--;
  if (run->n_criticals - before != (t == NULL ? 1 : 0))
    fz_violation ("gspawn (%s) logged %d criticals",
                  t == NULL ? "refused" : "taken", run->n_criticals - before);
  if (t == NULL)
    {
      fz_log (s->who, "gspawn %d s%d refused", op->a, op->b);
      return;
    }
  i = fz_register (t, K_TASK);
  fz_set_host (t, i);
  host = &run->reg[s->host];
  host->group_children = realloc (host->group_children,
                                  (size_t) (host->n_group_children + 1)
                                    * sizeof (int));
  host->group_children[host->n_group_children++] = i;
  run->slots[op->b] = i;
  fz_log (s->who, "gspawn %d s%d #%d", op->a, op->b, i);
}

static AfutError *
fz_take_error (FzInterp *s)
{
  AfutError *e = s->error;
  s->error = NULL;
  return e;
}

/* The error being unwound. */
static const AfutError *
fz_current_error (FzInterp *s)
{
  return s->error_caught ? afut_task_caught (&s->task) : s->error;
  /* (a fiber holds its errors in s->error: error_caught stays false) */
}

/* An error was raised with try blocks open: leave blocks, innermost
 * first, until one catches it; returns NEXT_CONTINUE (caught) or how the
 * task ends. */
static int
fz_unwind (FzInterp *s)
{
  const FzProg *prog = s->run->prog;
  while (s->n_blocks > 0)
    {
      FzBlock *b = &s->blocks[--s->n_blocks];
      const AfutError *e;
      if (b->kind == B_TIMEOUT)
        {
          /* Converts the caught cancellation to a timeout if it is the
           * scope's own. */
          if (s->fiber)
            afut_timeout_exit_with_error (&b->timeout, &s->error);
          else
            afut_timeout_exit (&b->timeout);
          continue;
        }
      s->n_try--;
      e = fz_current_error (s);
      if (b->kind == B_TRY_ALL || !afut_error_is_cancelled (e))
        {
          FzBuf m = { NULL, 0, 0 };
          fz_fmt_error (&m, e);
          fz_log (s->who, "caught %s", m.s);
          free (m.s);
          afut_error_free (s->error);
          s->error = NULL;
          s->error_caught = false;
          s->pc = prog->ops[b->op].end + 1;
          return NEXT_CONTINUE;
        }
    }
  if (s->error_caught)
    return NEXT_RERAISE;
  return NEXT_THROW;
}

/* After an await (or yield) resumed without an error. */
static void
fz_log_awaited (FzInterp *s)
{
  FzBuf b = { NULL, 0, 0 };
  if (s->await_kind == AW_NONE)
    fz_buf_printf (&b, "none");
  else if (s->await_kind == AW_CALL)
    {
      AfutFuture *f = afut_task_awaited (fz_self (s));
      if (f == NULL || afut_future_get_state (f) != AFUT_FUTURE_DONE)
        fz_violation ("%s: the awaited coroutine is not done", s->who);
      else
        fz_fmt_plain_value (&b, f);
    }
  else
    {
      if (afut_task_awaited (fz_self (s))
          != s->run->reg[s->await_entry].future)
        fz_violation ("%s: afut_task_awaited is not what was awaited", s->who);
      fz_fmt_value (&b, s->await_entry, 0);
    }
  fz_log (s->who, "-> %s", b.s != NULL ? b.s : "");
  free (b.s);
}

/* Runs ops from s->pc until one awaits or the task ends. */
static int
fz_run_ops (FzInterp *s)
{
  FzRun *run = s->run;
  const FzProg *prog = run->prog;
  for (;;)
    {
      const FzOp *op = &prog->ops[s->pc];
      switch (op->kind)
        {
        case OP_END_PROC:
          return NEXT_RETURN_NONE;
        case OP_SLEEP:
          fz_log (s->who, "sleep %d", op->a);
          s->pc++;
          s->await_kind = AW_NONE;
          s->to_await = afut_sleep (op->a / 512.0);
          return NEXT_AWAIT;
        case OP_YIELD:
          fz_log (s->who, "yield");
          s->pc++;
          s->await_kind = AW_NONE;
          return NEXT_YIELD;
        case OP_CALL:
          {
            AfutFuture *c = fz_new_coro (op->a);
            FzInterp *child = fz_interp_of (c);
            child->is_inline = true;
            child->host = s->host;
            snprintf (child->who, sizeof child->who, "%s", s->who);
            fz_log (s->who, "call %d", op->a);
            s->pc++;
            s->await_kind = AW_CALL;
            s->to_await = c;
            return NEXT_AWAIT;
          }
        case OP_AWAIT:
          {
            int i = run->slots[op->a];
            s->pc++;
            if (i < 0)
              fz_log (s->who, "await s%d empty", op->a);
            else if (fz_reaches (i, s->host))
              fz_log (s->who, "await s%d #%d cycle", op->a, i);
            else
              {
                fz_log (s->who, "await s%d #%d", op->a, i);
                run->reg[s->host].awaiting = i;
                s->await_kind = AW_ENTRY;
                s->await_entry = i;
                s->to_await = afut_future_ref (run->reg[i].future);
                return NEXT_AWAIT;
              }
            break;
          }
        case OP_RAISE:
          fz_log (s->who, "raise E%d", op->a);
          s->pc++;
          s->error = fz_error_new (op->a);
          s->error_caught = false;
          if (s->n_try == 0)
            return NEXT_THROW;
          {
            int next = fz_unwind (s);
            if (next != NEXT_CONTINUE)
              return next;
          }
          break;
        case OP_RETURN:
          fz_log (s->who, "return %d", op->a);
          s->ret_value = op->a;
          return NEXT_RETURN_INT;
        case OP_GROUP:
          {
            /* The block runs in a frame of its own, awaited inline: it
             * opens the group at its first step. */
            AfutFuture *c = fz_new_coro (s->proc);
            FzInterp *child = fz_interp_of (c);
            child->is_inline = true;
            child->is_group_frame = true;
            child->group_op = s->pc;
            child->pc = s->pc + 1;
            child->host = s->host;
            snprintf (child->who, sizeof child->who, "%s", s->who);
            fz_log (s->who, "group");
            s->pc = op->end + 1;
            s->await_kind = AW_GROUP;
            s->to_await = c;
            return NEXT_AWAIT;
          }
        case OP_GSPAWN:
          fz_op_gspawn (s, op);
          s->pc++;
          break;
        case OP_CANCELSELF:
          {
            char msg[24];
            bool r;
            snprintf (msg, sizeof msg, "m%d", op->a);
            r = afut_future_cancel (run->reg[s->host].future,
                                    op->c ? msg : NULL);
            fz_log (s->who, "cancelself #%d -> %d", s->host, (int) r);
            s->pc++;
            break;
          }
        case OP_TRY:
        case OP_TIMEOUT:
          {
            FzBlock *b;
            if (s->n_blocks >= FZ_MAX_BLOCKS)
              {
                fz_violation ("blocks nested too deep");
                return NEXT_RETURN_NONE;
              }
            b = &s->blocks[s->n_blocks++];
            b->op = s->pc;
            if (op->kind == OP_TRY)
              {
                fz_log (s->who, "try");
                b->kind = op->a ? B_TRY_ALL : B_TRY_ERR;
                s->n_try++;
              }
            else
              {
                fz_log (s->who, "timeout %d", op->a);
                b->kind = B_TIMEOUT;
                afut_timeout_enter (fz_self (s), &b->timeout, op->a / 512.0);
              }
            s->pc++;
            break;
          }
        case OP_END_BLOCK:
          {
            FzBlock *b;
            if (s->n_blocks == 0)
              {
                /* The end of a group frame's body. */
                if (!s->is_group_frame || op->a != s->group_op)
                  {
                    fz_violation ("%s: block mismatch", s->who);
                    return NEXT_RETURN_NONE;
                  }
                return NEXT_GROUP_EXIT;
              }
            b = &s->blocks[--s->n_blocks];
            if (b->op != op->a)
              fz_violation ("%s: block mismatch", s->who);
            if (b->kind == B_TIMEOUT)
              {
                bool expired = s->fiber ? afut_timeout_exit_with_error (
                                 &b->timeout, NULL)
                                          : afut_timeout_exit (&b->timeout);
                fz_log (s->who, "endtimeout %d", (int) expired);
              }
            else
              s->n_try--;
            s->pc++;
            break;
          }
        default:
          fz_sync_op (s->who, op);
          s->pc++;
          break;
        }
    }
}

static int fz_after_await_ok (FzInterp *s);

/* After an await resumed (catching or not). */
static int
fz_after_await (FzInterp *s, bool catching)
{
  s->run->reg[s->host].awaiting = -1;
  if (catching && afut_task_caught (&s->task) != NULL)
    {
      s->error_caught = true;
      return fz_unwind (s);
    }
  return fz_after_await_ok (s);
}

/* After an await resumed without an error. */
static int
fz_after_await_ok (FzInterp *s)
{
  if (s->await_kind == AW_GROUP)
    {
      /* The block ended without an error: by a return in it (which
       * returns from here too), or at its end. */
      AfutFuture *f = afut_task_awaited (fz_self (s));
      FzInterp *frame = f != NULL ? fz_interp_of (f) : NULL;
      if (frame == NULL || !frame->is_group_frame
          || afut_future_get_state (f) != AFUT_FUTURE_DONE)
        {
          fz_violation ("%s: the group frame is not done", s->who);
          return NEXT_CONTINUE;
        }
      if (frame->returned)
        {
          s->ret_value = frame->ret_value;
          return NEXT_RETURN_INT;
        }
      fz_log (s->who, "endgroup");
      return NEXT_CONTINUE;
    }
  fz_log_awaited (s);
  return NEXT_CONTINUE;
}

/* The future to await, handed over (the await takes the reference). */
static AfutFuture *
fz_take_await (FzInterp *s)
{
  AfutFuture *f = s->to_await;
  s->to_await = NULL;
  return f;
}

static void
fz_interp_body (AfutTask *task)
{
  FzInterp *s = (FzInterp *) task;
  AFUT_BEGIN (task);
  if (!s->is_inline)
    fz_log (s->who, "start");
  if (s->is_group_frame)
    {
      s->group = afut_task_group_new (task);
      if (s->group == NULL)
        fz_violation ("%s: afut_task_group_new failed", s->who);
    }
  for (;;)
    {
      s->next = fz_run_ops (s);
      if (s->next == NEXT_AWAIT)
        {
          if (s->n_try > 0)
            {
              AFUT_AWAIT_TRY (task, fz_take_await (s));
              s->next = fz_after_await (s, true);
            }
          else
            {
              AFUT_AWAIT (task, fz_take_await (s));
              s->next = fz_after_await (s, false);
            }
        }
      else if (s->next == NEXT_YIELD)
        {
          if (s->n_try > 0)
            {
              AFUT_YIELD_TRY (task);
              s->next = fz_after_await (s, true);
            }
          else
            {
              AFUT_YIELD (task);
              s->next = fz_after_await (s, false);
            }
        }
      if (s->next == NEXT_GROUP_EXIT)
        {
          /* All blocks of the body are closed: no try catches here. */
          AFUT_AWAIT (task, afut_task_group_exit (s->group));
          s->group = NULL;
          AFUT_RETURN (task);
        }
      if (s->next == NEXT_RETURN_NONE)
        AFUT_RETURN (task);
      else if (s->next == NEXT_RETURN_INT)
        {
          s->returned = true;
          AFUT_RETURN_INT (task, s->ret_value);
        }
      else if (s->next == NEXT_THROW)
        {
          AFUT_THROW (task, fz_take_error (s));
        }
      else if (s->next == NEXT_RERAISE)
        AFUT_RERAISE (task);
    }
  AFUT_END (task);
}

static void
fz_interp_func (AfutTask *task)
{
  FzInterp *s = (FzInterp *) task;
  if (afut_future_get_state (&task->future) != AFUT_FUTURE_PENDING)
    fz_violation ("task %s stepped after it completed", s->who);
  if (s->host < 0)
    fz_violation ("task stepped before it was registered");
  s->run->step_depth++;
  fz_interp_body (task);
  s->run->step_depth--;
}

/* ---- the interpreter on a fiber ----
 * The same program as fz_interp_body, as plain C on the fiber's stack:
 * the state is a local (its timeout scopes too), the awaits afut_await's
 * forms, errors held in s->error rather than the task's caught error. */

/* Awaits what fz_run_ops left (a yield if @yield): the next thing to do. */
static int
fz_fiber_await (FzInterp *s, bool yield)
{
  FzRun *run = s->run;
  AfutError *e = NULL;
  bool catching = s->n_try > 0, ok;
  run->step_depth--; /* suspended, the fiber's step ends */
  ok = yield ? afut_fiber_yield (&e) : afut_await_check (fz_take_await (s), &e);
  run->step_depth++;
  if (afut_future_get_state (&s->self->future) != AFUT_FUTURE_PENDING)
    fz_violation ("fiber %s resumed after it completed", s->who);
  run->reg[s->host].awaiting = -1;
  if (!ok)
    {
      s->error = e;
      s->error_caught = false;
      return catching ? fz_unwind (s) : NEXT_THROW;
    }
  return fz_after_await_ok (s);
}

/* The body's end: leaves the timeouts still open (their structs are on
 * this stack), innermost first, with @error passing through them, and
 * returns the fiber's outcome. */
static AfutFuture *
fz_fiber_end (FzInterp *s, AfutError *error, bool has_value)
{
  while (s->n_blocks > 0)
    {
      FzBlock *b = &s->blocks[--s->n_blocks];
      if (b->kind == B_TIMEOUT)
        afut_timeout_exit_with_error (&b->timeout, &error);
    }
  if (error != NULL)
    return afut_future_new_for_error (error);
  return has_value ? afut_future_new_for_int (s->ret_value) : NULL;
}

static AfutFuture *
fz_fiber_run (FzInterp *s)
{
  if (!s->is_inline)
    fz_log (s->who, "start");
  if (s->is_group_frame)
    {
      s->group = afut_task_group_new (s->self);
      if (s->group == NULL)
        fz_violation ("%s: afut_task_group_new failed", s->who);
    }
  for (;;)
    {
      s->next = fz_run_ops (s);
      if (s->next == NEXT_AWAIT || s->next == NEXT_YIELD)
        s->next = fz_fiber_await (s, s->next == NEXT_YIELD);
      switch (s->next)
        {
        case NEXT_GROUP_EXIT:
          {
            AfutError *e = NULL;
            bool ok;
            s->run->step_depth--;
            ok = afut_await_check (afut_task_group_exit (s->group), &e);
            s->run->step_depth++;
            s->group = NULL;
            return ok ? NULL : fz_fiber_end (s, e, false);
          }
        case NEXT_RETURN_NONE:
          return fz_fiber_end (s, NULL, false);
        case NEXT_RETURN_INT:
          s->returned = true;
          return fz_fiber_end (s, NULL, true);
        case NEXT_THROW:
          return fz_fiber_end (s, fz_take_error (s), false);
        case NEXT_RERAISE:
          fz_violation ("%s: a fiber re-raised a caught error", s->who);
          return NULL;
        default:
          break;
        }
    }
}

static AfutFuture *
fz_fiber_body (void *data)
{
  FzInterp *h = (FzInterp *) data;
  FzInterp local = *h;
  FzInterp *s = &local;
  AfutFuture *result;
  s->self = afut_fiber_get_current ();
  if (s->self == NULL || &s->self->future != h->fiber_future)
    fz_violation ("afut_fiber_get_current is not the fiber");
  if (s->host < 0)
    fz_violation ("fiber stepped before it was registered");
  s->run->step_depth++;
  result = fz_fiber_run (s);
  s->run->step_depth--;
  /* What an awaiter of a group frame reads once it is done. */
  h->returned = s->returned;
  h->ret_value = s->ret_value;
  return result;
}

/* ---- timers and the harness ---- */

static void
fz_timer_fire (void *data)
{
  int ti = (int) (intptr_t) data, i;
  const FzProg *prog = fz_run->prog;
  char who[24];
  snprintf (who, sizeof who, "timer%d", ti);
  fz_run->step_depth++;
  fz_log (who, "fire");
  for (i = prog->timer_start[ti]; prog->ops[i].kind != OP_END_PROC; i++)
    fz_sync_op (who, &prog->ops[i]);
  fz_run->step_depth--;
}

static void
fz_log_func (AfutLogLevel level, const char *message, void *data)
{
  (void) data;
  if (fz_run == NULL)
    {
      fprintf (stderr, "afut: %s\n", message);
      return;
    }
  if (level == AFUT_LOG_CRITICAL && fz_run->expect_critical > 0)
    {
      fz_run->n_criticals++;
      return;
    }
  fz_violation ("unexpected afut %s: %s",
                level == AFUT_LOG_CRITICAL ? "critical" : "warning", message);
}

static void
fz_exception_handler (AfutLoop *loop, const AfutExceptionContext *context,
                      void *data)
{
  FzRun *run = (FzRun *) data;
  FzBuf b = { NULL, 0, 0 };
  (void) loop;
  if (strstr (context->message, "never retrieved") == NULL)
    fz_violation ("exception handler: %s", context->message);
  fz_buf_printf (&b, "%s ", context->task_name != NULL ? context->task_name
                                                       : "-");
  fz_fmt_error (&b, context->error);
  run->unretrieved_lines
    = realloc (run->unretrieved_lines,
               (size_t) (run->n_unretrieved + 1) * sizeof (char *));
  run->unretrieved_lines[run->n_unretrieved++] = b.s;
}

static void
fz_run_until_idle (AfutLoop *loop)
{
  /* prepare() jumps the virtual clock to the next timer when nothing is
   * ready; it says false only when nothing is left to run at all. */
  while (afut_loop_prepare (loop, NULL))
    afut_loop_iterate (loop, false);
}

static int
fz_cmp_str (const void *a, const void *b)
{
  return strcmp (*(char *const *) a, *(char *const *) b);
}

typedef struct
{
  char *trace;       /* the trace, violations appended */
  size_t trace_len;
  char *violations;  /* NULL if none */
} FzResult;

static void
fz_result_clear (FzResult *r)
{
  free (r->trace);
  free (r->violations);
  memset (r, 0, sizeof *r);
}

static void
fz_run_program (const FzProg *prog, FzResult *result)
{
  FzRun run;
  long live_before = fz_n_live;
  int i, j, rnd, main_entry = -1;

  static bool warm;
  if (!warm)
    {
      /* What afut allocates once per process (its quark table). */
      warm = true;
      afut_error_free (afut_error_new (AFUT_ERROR, AFUT_ERROR_FAILED, "warm"));
      live_before = fz_n_live;
    }
  memset (result, 0, sizeof *result);
  memset (&run, 0, sizeof run);
  run.prog = prog;
  {
    const char *mode = getenv ("AFUT_FUZZ_FIBERS");
    run.fibers = mode == NULL || *mode == '\0' ? FZ_FIBERS_NONE
                 : strcmp (mode, "odd") == 0    ? FZ_FIBERS_ODD
                                                : FZ_FIBERS_ALL;
  }
  fz_run = &run;
  afut_set_log_func (fz_log_func, NULL);
  run.loop = afut_loop_new (AFUT_LOOP_VIRTUAL_CLOCK);
  afut_loop_set_exception_handler (run.loop, fz_exception_handler, &run);
  run.slots = malloc ((size_t) (prog->n_slots + 1) * sizeof (int));
  for (i = 0; i < prog->n_slots; i++)
    run.slots[i] = -1;

  for (j = 0; j < prog->n_futures; j++)
    {
      AfutFuture *f = afut_future_new (run.loop);
      run.slots[j] = fz_register (f, K_FUTURE);
      afut_future_unref (f);
    }
  for (j = 0; j < prog->n_timers; j++)
    afut_future_unref (afut_loop_call_later (run.loop,
                                             prog->timer_ticks[j] / 512.0,
                                             fz_timer_fire,
                                             (void *) (intptr_t) j));
  {
    FzInterp init;
    AfutFuture *t;
    memset (&init, 0, sizeof init);
    init.run = &run;
    init.proc = 0;
    init.host = -1;
    init.pc = prog->proc_start[0];
    if (fz_proc_is_fiber (0))
      t = fz_new_fiber (0, false, NULL);
    else
      {
        run.n_tasks_made++;
        t = afut_task_new (run.loop, fz_interp_func, sizeof (FzInterp),
                           &init, NULL, fz_interp_finalize);
      }
    main_entry = fz_register (t, K_TASK);
    fz_set_host (t, main_entry);
    afut_future_unref (t);
  }
  fz_run_until_idle (run.loop);

  /* Shutdown rounds (asyncio.run cancels what is left; here in a fixed
   * order): cancel every pending task, run until idle, again. */
  for (rnd = 1; rnd <= FZ_MAX_ROUNDS; rnd++)
    {
      bool any = false;
      for (i = 0; i < run.n_reg; i++)
        if (run.reg[i].kind == K_TASK
            && !afut_future_is_done (run.reg[i].future))
          {
            if (!any)
              fz_log ("harness", "round %d", rnd);
            any = true;
            fz_log ("harness", "cancel #%d -> %d", i,
                    (int) afut_future_cancel (run.reg[i].future, "sd"));
          }
      if (!any)
        break;
      fz_run_until_idle (run.loop);
    }

  for (i = 0; i < run.n_reg; i++)
    {
      FzEntry *e = &run.reg[i];
      char *outcome = fz_outcome_string (i);
      fz_log ("harness", "final #%d %s", i, outcome);
      if (afut_future_is_done (e->future))
        {
          if (e->n_done_callbacks != 1)
            fz_violation ("#%d is done, its done callback ran %d times", i,
                          e->n_done_callbacks);
          else if (strcmp (outcome, e->outcome) != 0)
            fz_violation ("#%d changed after it completed: %s, then %s", i,
                          e->outcome, outcome);
        }
      else if (e->kind == K_TASK)
        fz_violation ("task #%d still pending after %d rounds", i,
                      FZ_MAX_ROUNDS);
      free (outcome);
    }

  /* The errors nobody retrieved, as the model tells them: failed futures
   * not marked retrieved (afut's private flag, read without touching
   * it).  The exception handler must report these when they are freed. */
  {
    char **lines = malloc (((size_t) run.n_reg + 1) * sizeof (char *));
    int n = 0;
    for (i = 0; i < run.n_reg; i++)
      {
        AfutFuture *f = run.reg[i].future;
        if (afut_future_get_state (f) == AFUT_FUTURE_FAILED
            && !(f->flags & AFUT__FUTURE_ERROR_RETRIEVED))
          {
            FzBuf b = { NULL, 0, 0 };
            if (run.reg[i].kind == K_TASK)
              fz_buf_printf (&b, "#%d ", i);
            else
              fz_buf_printf (&b, "- ");
            fz_fmt_error (&b, fz_peek_error (f));
            lines[n++] = b.s;
          }
      }
    if (n > 1)
      qsort (lines, (size_t) n, sizeof (char *), fz_cmp_str);
    for (i = 0; i < n; i++)
      fz_log ("harness", "unretrieved %s", lines[i]);
    run.expected_reports = lines;
    run.n_expected_reports = n;
  }

  /* Futures still pending (a plain future nobody completed, what waits
   * on it) hold each other through their callbacks: cancel them, quietly,
   * so that everything can be freed. */
  run.quiet = true;
  for (rnd = 0; rnd < FZ_MAX_ROUNDS; rnd++)
    {
      bool any = false;
      for (i = 0; i < run.n_reg; i++)
        if (!afut_future_is_done (run.reg[i].future))
          {
            any = true;
            run.cleaned_up = true;
            run.reg[i].pending_at_cleanup = true;
            afut_future_cancel (run.reg[i].future, "cleanup");
          }
      if (!any)
        break;
      fz_run_until_idle (run.loop);
    }
  /* What the cleanup completed is its own doing, not the program's: a
   * gather whose child it cancelled fails with that cancellation (as
   * asyncio's does), and nobody is there to retrieve it. */
  for (i = 0; i < run.n_reg; i++)
    if (run.reg[i].pending_at_cleanup)
      run.reg[i].future->flags |= AFUT__FUTURE_ERROR_RETRIEVED;

  /* Free everything: the unretrieved errors are reported now. */
  for (i = 0; i < run.n_reg; i++)
    afut_future_unref (run.reg[i].future);
  afut_loop_unref (run.loop);
  run.loop = NULL;
  if (run.n_unretrieved > 1)
    qsort (run.unretrieved_lines, (size_t) run.n_unretrieved,
           sizeof (char *), fz_cmp_str);
  /* Reported: those expected, but the cleanup may have retrieved some
   * (a gather it completed). */
  {
    int a = 0, b = 0;
    while (a < run.n_unretrieved || b < run.n_expected_reports)
      {
        int c = a == run.n_unretrieved ? 1
                : b == run.n_expected_reports
                  ? -1
                  : strcmp (run.unretrieved_lines[a],
                            run.expected_reports[b]);
        if (c == 0)
          a++, b++;
        else if (c < 0)
          fz_buf_printf (&run.violations,
                         "VIOLATION: reported as never retrieved: %s\n",
                         run.unretrieved_lines[a++]);
        else
          {
            if (!run.cleaned_up)
              fz_buf_printf (&run.violations,
                             "VIOLATION: never reported as unretrieved: "
                             "%s\n", run.expected_reports[b]);
            b++;
          }
      }
    for (i = 0; i < run.n_unretrieved; i++)
      free (run.unretrieved_lines[i]);
    for (i = 0; i < run.n_expected_reports; i++)
      free (run.expected_reports[i]);
    free (run.unretrieved_lines);
    free (run.expected_reports);
  }

  if (run.n_tasks_finalized != run.n_tasks_made)
    fz_buf_printf (&run.violations,
                   "VIOLATION: %ld tasks made, %ld finalized\n",
                   run.n_tasks_made, run.n_tasks_finalized);
  if (fz_n_live != live_before)
    fz_buf_printf (&run.violations,
                   "VIOLATION: %ld allocations of afut not freed\n",
                   fz_n_live - live_before);

  for (i = 0; i < run.n_reg; i++)
    {
      free (run.reg[i].children);
      free (run.reg[i].group_children);
      free (run.reg[i].outcome);
    }
  free (run.reg);
  free (run.slots);
  for (i = 0; i < run.n_fiber_states; i++)
    {
      afut_error_free (run.fiber_states[i]->error);
      free (run.fiber_states[i]);
    }
  free (run.fiber_states);
  if (run.violations.len > 0)
    {
      fz_buf_printf (&run.trace, "%s", run.violations.s);
      result->violations = run.violations.s;
    }
  else
    free (run.violations.s);
  if (run.trace.s == NULL)
    fz_buf_printf (&run.trace, "%s", "");
  result->trace = run.trace.s;
  result->trace_len = run.trace.len;
  fz_run = NULL;
  afut_set_log_func (NULL, NULL);
}

#ifndef AFUT_FUZZ_NO_MAIN
#ifndef AFUT_FUZZ_LIBFUZZER

/* ---- hashing (zlib's CRC-32, as fuzzinterp.trace_hash) ---- */

static uint32_t
fz_crc32 (const char *data, size_t len)
{
  static uint32_t table[256];
  uint32_t crc = 0xffffffffu;
  size_t i;
  if (table[1] == 0)
    for (i = 0; i < 256; i++)
      {
        uint32_t c = (uint32_t) i;
        int k;
        for (k = 0; k < 8; k++)
          c = (c & 1) ? 0xedb88320u ^ (c >> 1) : c >> 1;
        table[i] = c;
      }
  for (i = 0; i < len; i++)
    crc = table[(crc ^ (uint8_t) data[i]) & 0xff] ^ (crc >> 8);
  return crc ^ 0xffffffffu;
}

static void
fz_trace_hash (const FzResult *r, char *buf, size_t size)
{
  snprintf (buf, size, "%08x-%zu", (unsigned) fz_crc32 (r->trace, r->trace_len),
            r->trace_len);
}

/* ---- entry points ---- */

static char *
fz_read_all (FILE *in, size_t *len)
{
  size_t cap = 1 << 16, n = 0, k;
  char *buf = malloc (cap);
  while ((k = fread (buf + n, 1, cap - n - 1, in)) > 0)
    {
      n += k;
      if (cap - n - 1 == 0)
        buf = realloc (buf, cap *= 2);
    }
  buf[n] = '\0';
  if (len != NULL)
    *len = n;
  return buf;
}

static FILE *
fz_open (const char *path)
{
  FILE *f = strcmp (path, "-") == 0 ? stdin : fopen (path, "r");
  if (f == NULL)
    {
      perror (path);
      exit (2);
    }
  return f;
}


/* Batch: records "P SEED\n<program>H HASH\n"; prints "FAIL SEED WHY" for
 * each mismatch, then "DONE N FAILED". */
static int
fz_main_batch (const char *path)
{
  FILE *in = fz_open (path);
  char *all = fz_read_all (in, NULL), *p = all;
  long n = 0, failed = 0;
  if (in != stdin)
    fclose (in);
  while (*p != '\0')
    {
      char *start, *h, *eol, seed[64] = "?", expected[64] = "";
      FzProg prog;
      FzResult res;
      const char *error;
      char got[64];
      if (strncmp (p, "P ", 2) != 0)
        {
          fprintf (stderr, "afut-fuzz: bad batch record at \"%.20s\"\n", p);
          return 2;
        }
      sscanf (p + 2, "%63s", seed);
      start = strchr (p, '\n');
      if (start == NULL)
        break;
      start++;
      h = strstr (start, "\nH ");
      if (h == NULL)
        {
          fprintf (stderr, "afut-fuzz: record %s has no hash\n", seed);
          return 2;
        }
      h[1] = '\0';
      sscanf (h + 3, "%63s", expected);
      eol = strchr (h + 3, '\n');
      p = eol != NULL ? eol + 1 : h + 3 + strlen (h + 3);
      error = fz_prog_parse (&prog, start);
      n++;
      if (error != NULL)
        {
          printf ("FAIL %s parse: %s\n", seed, error);
          failed++;
          fz_prog_free (&prog);
          continue;
        }
      fz_run_program (&prog, &res);
      fz_trace_hash (&res, got, sizeof got);
      if (res.violations != NULL)
        {
          char *nl = strchr (res.violations, '\n');
          if (nl != NULL)
            *nl = '\0';
          printf ("FAIL %s %s\n", seed, res.violations);
          failed++;
        }
      else if (strcmp (got, expected) != 0)
        {
          printf ("FAIL %s trace differs from the model's\n", seed);
          failed++;
        }
      fflush (stdout);
      fz_result_clear (&res);
      fz_prog_free (&prog);
    }
  free (all);
  printf ("DONE %ld %ld\n", n, failed);
  return failed > 0;
}

static int
fz_main_trace (const char *path, long repeat)
{
  FILE *in = fz_open (path);
  char *text = fz_read_all (in, NULL);
  FzProg prog;
  FzResult res;
  const char *error;
  int rc;
  long k;
  if (in != stdin)
    fclose (in);
  error = fz_prog_parse (&prog, text);
  if (error != NULL)
    {
      fprintf (stderr, "afut-fuzz: %s: %s\n", path, error);
      return 2;
    }
  for (k = 1; k < repeat; k++)
    {
      fz_run_program (&prog, &res);
      fz_result_clear (&res);
    }
  fz_run_program (&prog, &res);
  fwrite (res.trace, 1, res.trace_len, stdout);
  rc = res.violations != NULL;
  fz_result_clear (&res);
  fz_prog_free (&prog);
  free (text);
  return rc;
}

int
main (int argc, char **argv)
{
  if (argc == 3 && strcmp (argv[1], "--batch") == 0)
    return fz_main_batch (argv[2]);
  if (argc == 3 && strcmp (argv[1], "--trace") == 0)
    return fz_main_trace (argv[2], 1);
  if (argc == 4 && strcmp (argv[1], "--bench") == 0)
    return fz_main_trace (argv[2], atol (argv[3]));
  fprintf (stderr,
           "usage: %s --batch FILE|-   check programs against their hashes\n"
           "       %s --trace FILE|-   print one program's trace\n"
           "       %s --bench FILE N   run one program N times\n",
           argv[0], argv[0], argv[0]);
  return 2;
}

#endif /* !AFUT_FUZZ_LIBFUZZER */
#endif /* !AFUT_FUZZ_NO_MAIN */

/* ---- libFuzzer ---- */

#ifdef AFUT_FUZZ_LIBFUZZER

/* libFuzzer's bytes drive a generator of programs in the same text form
 * (fuzzprog.py's shapes, smaller): each byte is a choice. */
typedef struct
{
  const uint8_t *data;
  size_t size, at;
  int n_procs, n_futures, n_slots, label;
} FzBytes;

static int
fz_choose (FzBytes *b, int n)
{
  if (n <= 1 || b->at >= b->size)
    return 0;
  return b->data[b->at++] % n;
}

/* Items of gather, shield, wait_for: new coroutines, or plain futures
 * only: a gather of gathers of the same slots is a DAG that cancel walks
 * as a tree, in afut as in asyncio, exponentially long.  Returns false
 * when there is nothing to use. */
static bool
fz_gen_item (FzBytes *b, FzBuf *out, int k)
{
  bool proc = k + 1 < b->n_procs && (b->n_futures == 0 || fz_choose (b, 2));
  if (proc)
    fz_buf_printf (out, " p%d", k + 1 + fz_choose (b, b->n_procs - k - 1));
  else if (b->n_futures > 0)
    fz_buf_printf (out, " s%d", fz_choose (b, b->n_futures));
  return proc || b->n_futures > 0;
}

static void
fz_gen_ops (FzBytes *b, FzBuf *out, int k, int depth, int *refs,
            bool in_group)
{
  int n = 1 + fz_choose (b, 8), i;
  bool child = k + 1 < b->n_procs;
  for (i = 0; i < n; i++)
    {
      int c = fz_choose (b, 18);
      int dyn = b->n_futures + fz_choose (b, b->n_slots - b->n_futures);
      if ((c == 2 || c == 3 || c == 5 || c == 6 || c == 7 || c == 15
           || c == 16)
          && *refs >= 3)
        c = 0; /* bounds the tasks a program makes */
      if ((c == 2 || c == 3 || c == 15 || c == 16) && !child)
        c = 1;
      if (c == 16 && !in_group)
        c = 2; /* gspawn only inside a group: a plain spawn */
      if (c == 17 && depth == 0)
        c = 1; /* cancelself inside blocks only */
      if ((c == 9 || c == 10) && b->n_futures == 0)
        c = 11;
      if ((c == 13 || c == 14 || c == 15) && depth >= 2)
        c = 4;
      switch (c)
        {
        case 0:
          fz_buf_printf (out, " sleep %d", fz_choose (b, 11));
          break;
        case 1:
          fz_buf_printf (out, " yield");
          break;
        case 2:
          (*refs)++;
          fz_buf_printf (out, " spawn %d %d",
                         k + 1 + fz_choose (b, b->n_procs - k - 1), dyn);
          break;
        case 3:
          (*refs)++;
          fz_buf_printf (out, " call %d",
                         k + 1 + fz_choose (b, b->n_procs - k - 1));
          break;
        case 4:
          fz_buf_printf (out, " await %d", fz_choose (b, b->n_slots));
          break;
        case 5:
          {
            int m = fz_choose (b, 5), j;
            if (b->n_futures == 0 && !child)
              m = 0;
            (*refs)++;
            fz_buf_printf (out, " gather %d %d %d", dyn, fz_choose (b, 2), m);
            for (j = 0; j < m; j++)
              fz_gen_item (b, out, k);
            if (fz_choose (b, 4) != 0)
              fz_buf_printf (out, " await %d", dyn);
            break;
          }
        case 6:
        case 7:
          if (b->n_futures == 0 && !child)
            {
              fz_buf_printf (out, " yield");
              break;
            }
          (*refs)++;
          if (c == 6)
            fz_buf_printf (out, " shield %d", dyn);
          else
            fz_buf_printf (out, " waitfor %d %d", dyn, fz_choose (b, 9));
          fz_gen_item (b, out, k);
          if (fz_choose (b, 4) != 0)
            fz_buf_printf (out, " await %d", dyn);
          break;
        case 8:
          {
            int m = fz_choose (b, 4);
            fz_buf_printf (out, " cancel %d", fz_choose (b, b->n_slots));
            if (m == 0)
              fz_buf_printf (out, " -");
            else
              fz_buf_printf (out, " %d", ++b->label);
            break;
          }
        case 9:
          fz_buf_printf (out, " resolve %d %d", fz_choose (b, b->n_futures),
                         fz_choose (b, 100));
          break;
        case 10:
          fz_buf_printf (out, " fail %d %d", fz_choose (b, b->n_futures),
                         ++b->label);
          break;
        case 11:
          fz_buf_printf (out, " raise %d", ++b->label);
          break;
        case 12:
          fz_buf_printf (out, " return %d", fz_choose (b, 100));
          break;
        case 15:
          (*refs)++;
          fz_buf_printf (out, " group { gspawn %d %d",
                         k + 1 + fz_choose (b, b->n_procs - k - 1), dyn);
          fz_gen_ops (b, out, k, depth + 1, refs, true);
          fz_buf_printf (out, " }");
          break;
        case 16:
          (*refs)++;
          fz_buf_printf (out, " gspawn %d %d",
                         k + 1 + fz_choose (b, b->n_procs - k - 1), dyn);
          break;
        case 17:
          if (fz_choose (b, 2))
            fz_buf_printf (out, " cancelself -");
          else
            fz_buf_printf (out, " cancelself %d", ++b->label);
          break;
        default:
          if (c == 13)
            fz_buf_printf (out, " try %s {", fz_choose (b, 3) ? "all" : "err");
          else
            fz_buf_printf (out, " timeout %d {", fz_choose (b, 9));
          fz_gen_ops (b, out, k, depth + 1, refs, in_group);
          fz_buf_printf (out, " }");
          break;
        }
    }
}

static char *
fz_gen_program (const uint8_t *data, size_t size)
{
  FzBytes b = { data, size, 0, 0, 0, 0, 0 };
  FzBuf out = { NULL, 0, 0 };
  int k, t, n_timers;
  b.n_procs = 1 + fz_choose (&b, 5);
  b.n_futures = fz_choose (&b, 4);
  b.n_slots = b.n_futures + 1 + fz_choose (&b, 7);
  n_timers = fz_choose (&b, 4);
  fz_buf_printf (&out, "futures %d\nslots %d\n", b.n_futures, b.n_slots);
  for (t = 0; t < n_timers; t++)
    {
      int c = fz_choose (&b, 4);
      fz_buf_printf (&out, "timer %d", fz_choose (&b, 12));
      if (c == 1 && b.n_futures > 0)
        fz_buf_printf (&out, " resolve %d %d", fz_choose (&b, b.n_futures),
                       fz_choose (&b, 100));
      else if (c == 2 && b.n_futures > 0)
        fz_buf_printf (&out, " fail %d %d", fz_choose (&b, b.n_futures),
                       ++b.label);
      else if (c == 3 && b.n_procs > 1)
        fz_buf_printf (&out, " spawn %d %d", 1 + fz_choose (&b, b.n_procs - 1),
                       b.n_futures + fz_choose (&b, b.n_slots - b.n_futures));
      else
        fz_buf_printf (&out, " cancel %d -", fz_choose (&b, b.n_slots));
      fz_buf_printf (&out, "\n");
    }
  for (k = 0; k < b.n_procs; k++)
    {
      int refs = 0;
      fz_buf_printf (&out, "proc %d", k);
      fz_gen_ops (&b, &out, k, 0, &refs, false);
      fz_buf_printf (&out, "\n");
    }
  return out.s;
}

int LLVMFuzzerTestOneInput (const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput (const uint8_t *data, size_t size)
{
  char *text = fz_gen_program (data, size), *copy;
  FzProg prog;
  FzResult res;
  const char *error;
  copy = strdup (text);
  if (getenv ("AFUT_FUZZ_DUMP") != NULL)
    fputs (text, stdout);
  error = fz_prog_parse (&prog, copy);
  if (error != NULL)
    {
      fprintf (stderr, "afut-fuzz: generated a bad program (%s):\n%s", error,
               text);
      abort ();
    }
  fz_run_program (&prog, &res);
  if (res.violations != NULL)
    {
      fprintf (stderr, "afut-fuzz: invariant broken:\n%s\nprogram:\n%s",
               res.violations, text);
      abort ();
    }
  fz_result_clear (&res);
  fz_prog_free (&prog);
  free (copy);
  free (text);
  return 0;
}

#endif /* AFUT_FUZZ_LIBFUZZER */
