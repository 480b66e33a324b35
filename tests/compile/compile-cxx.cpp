// Proves afut.h, implementation included, builds warning-free as C++17
// (-Wall -Wextra -Wpedantic -Werror), and that the result runs.  C++ has
// no compound literals: tasks are made with afut_task_new, not AFUT_SPAWN.
#define AFUT_IMPLEMENTATION
#include "afut.h"

#include <cstdio>

namespace {

struct Probe
{
  AfutTask task;
  int steps;
};

void
probe (AfutTask *task)
{
  Probe *self = reinterpret_cast<Probe *> (task);
  AFUT_BEGIN (task);
  self->steps++;
  AFUT_AWAIT (task, afut_sleep (1.0));
  self->steps++;
  AFUT_AWAIT_TRY (task, afut_gather (afut_sleep (0), nullptr));
  if (afut_task_caught (task) != nullptr)
    AFUT_RERAISE (task);
  // asyncio.gather() of nothing, warning-free with either null.
  AFUT_AWAIT (task, afut_gather (nullptr));
  AFUT_AWAIT (task, afut_gather_return_exceptions (NULL));
  if (afut_gather_get_n_items (afut_task_awaited (task)) != 0)
    AFUT_RETURN_INT (task, -1);
  AFUT_RETURN_INT (task, self->steps);
  AFUT_END (task);
}

} // namespace

int
main ()
{
  AfutLoop *loop = afut_loop_new (AFUT_LOOP_VIRTUAL_CLOCK);
  Probe init{};
  AfutFuture *task = afut_task_new (loop, probe, sizeof (Probe), &init,
                                    "probe", nullptr);
  afut_loop_run_until_complete (loop, task);
  bool ok = afut_future_get_int (task) == 2 && afut_loop_time (loop) == 1.0;
  afut_future_unref (task);
  afut_loop_unref (loop);
  if (!ok)
    {
      std::fprintf (stderr, "compile-cxx: the probe task did not run as expected\n");
      return 1;
    }
  return 0;
}
