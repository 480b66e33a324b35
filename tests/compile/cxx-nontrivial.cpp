// Must NOT compile (tests/compile/cxx-refuses.py): a task struct that is
// not trivially copyable.  afut copies a task struct byte for byte and
// never runs its destructor, so AFUT_SPAWN refuses it with a
// static_assert rather than corrupting a std::string at run time.
#include "afut.h"

#include <string>

struct Bad
{
  AfutTask task;
  std::string order;
};

void bad (AfutTask *task);

AfutFuture *
spawn_bad ()
{
  return AFUT_SPAWN (Bad, bad, {}, std::string ("Pasta"));
}
