// Proves afut.h, implementation included, builds warning-free as C++17
// and C++20 (-Wall -Wextra -Wpedantic -Werror), with g++ and clang++, and
// that the result runs: AFUT_CORO, AFUT_SPAWN and AFUT_RUN in their C++
// forms (C++20: designated initializers as in C; C++17: the fields in
// order after an empty {} for the AfutTask), a gather, a try.
#define AFUT_IMPLEMENTATION
#include "afut.h"

#include <cstdio>
#include <cstring>

namespace {

struct Cook
{
  AfutTask task;
  const char *order;
  int minutes;
  int unused; // left out of the initializers: no -Wmissing-field-initializers
};

// The two spellings of cook(order, minutes).
#if __cplusplus >= 202002L
#define COOK(order_, minutes_)                                                \
  AFUT_CORO_NAMED (order_, Cook, cook, .order = order_, .minutes = minutes_)
#define SPAWN_COOK(order_, minutes_)                                          \
  AFUT_SPAWN_NAMED (order_, Cook, cook, .order = order_, .minutes = minutes_)
#else
#define COOK(order_, minutes_) AFUT_CORO (Cook, cook, {}, order_, minutes_)
#define SPAWN_COOK(order_, minutes_)                                          \
  AFUT_SPAWN (Cook, cook, {}, order_, minutes_)
#endif

void
cook (AfutTask *task)
{
  Cook *self = reinterpret_cast<Cook *> (task);
  AFUT_BEGIN (task);
#if __cplusplus >= 202002L
  // C++20 names each cook after its order (AFUT_*_NAMED).
  if (std::strcmp (afut_task_get_name (task), self->order) != 0)
    AFUT_THROW (task, afut_error_new (AFUT_ERROR, AFUT_ERROR_FAILED,
                                      "compile-cxx: wrong task name"));
#endif
  AFUT_AWAIT (task, afut_sleep (self->minutes));
  AFUT_RETURN_INT (task, std::strlen (self->order) * 100 + self->minutes);
  AFUT_END (task);
}

struct Empty
{
  AfutTask task;
  int steps;
};

void
empty (AfutTask *task)
{
  Empty *self = reinterpret_cast<Empty *> (task);
  AFUT_BEGIN (task);
  self->steps++;
  AFUT_YIELD (task);
  self->steps++;
  AFUT_RETURN_INT (task, self->steps);
  AFUT_END (task);
}

struct Main
{
  AfutTask task;
  int expected;
  AfutFuture *spawned;
  int64_t sum;
};

void
amain (AfutTask *task)
{
  Main *self = reinterpret_cast<Main *> (task);
  AfutFuture *gather;
  AFUT_BEGIN (task);
  // A spawned task runs before it is awaited; a coroutine when awaited.
  self->spawned = SPAWN_COOK ("Soup", 1);
  AFUT_AWAIT (task, afut_gather (COOK ("Pasta", 2), COOK ("Pizza", 1),
                                 AFUT_CORO (Empty, empty), nullptr));
  gather = afut_task_awaited (task);
  for (size_t i = 0; i < 3; i++)
    self->sum += afut_future_get_int (afut_gather_get_item (gather, i));
  AFUT_AWAIT_TRY (task, self->spawned);
  self->spawned = nullptr; // the await took the reference
  if (afut_task_caught (task) != nullptr)
    AFUT_RERAISE (task);
  self->sum += afut_future_get_int (afut_task_awaited (task));
  // asyncio.gather() of nothing, warning-free with either null.
  AFUT_AWAIT (task, afut_gather (nullptr));
  AFUT_AWAIT (task, afut_gather_return_exceptions (NULL));
  if (afut_gather_get_n_items (afut_task_awaited (task)) != 0
      || self->sum != self->expected
      || afut_loop_time (afut_loop_get_running ()) < 2.0)
    AFUT_THROW (task, afut_error_new (AFUT_ERROR, AFUT_ERROR_FAILED,
                                      "compile-cxx: wrong results"));
  AFUT_END (task);
}

} // namespace

int
main ()
{
  // 502 + 501 + 2 (the empty coroutine's steps) + 401.
  const int expected = 502 + 501 + 2 + 401;
  // AFUT_CLOCK=virtual (set by the test) makes the sleeps take no time.
#if __cplusplus >= 202002L
  int status = AFUT_RUN (Main, amain, .expected = expected);
#else
  int status = AFUT_RUN (Main, amain, {}, expected);
#endif
  if (status != 0)
    std::fprintf (stderr, "compile-cxx: the main task failed\n");
  // result = asyncio.run(main()): the main task back, done.
#if __cplusplus >= 202002L
  AfutFuture *main_task = AFUT_RUN_TASK (Main, amain, .expected = expected);
#else
  AfutFuture *main_task = AFUT_RUN_TASK (Main, amain, {}, expected);
#endif
  if (afut_future_get_state (main_task) != AFUT_FUTURE_DONE)
    {
      std::fprintf (stderr, "compile-cxx: AFUT_RUN_TASK's main failed\n");
      status = 1;
    }
  afut_future_unref (main_task);
  return status;
}
