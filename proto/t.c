#include "fiberctx.h"
#include <fenv.h>
#include <time.h>
static AfutCtx main_ctx, f_ctx;
static volatile long counter;
static void body (void *arg) {
  long n = (long) arg;
  double acc = 1.5;                 /* lives across switches */
  for (long i = 0; i < n; i++) { counter++; acc *= 1.0000001; afut__ctx_jump (&f_ctx, &main_ctx); }
  printf ("fiber done acc=%.6f fesetround-in-fiber=%d\n", acc, fegetround () == FE_UPWARD);
  counter = -1;
  afut__ctx_jump (&f_ctx, &main_ctx);
}
int main (void) {
  size_t size = 256 * 1024;
  void *stack = mmap (NULL, size, PROT_READ|PROT_WRITE, MAP_PRIVATE|MAP_ANONYMOUS|MAP_NORESERVE, -1, 0);
  long n = 10000000;
  fesetround (FE_UPWARD);
  afut__ctx_init (&f_ctx, stack, size, body, (void *) n);
  fesetround (FE_TONEAREST);
  register long keep1 = 12345; volatile double d = 2.5;
  struct timespec a, b; clock_gettime (CLOCK_MONOTONIC, &a);
  while (counter >= 0) { afut__ctx_jump (&main_ctx, &f_ctx); }
  clock_gettime (CLOCK_MONOTONIC, &b);
  double ns = ((b.tv_sec - a.tv_sec) * 1e9 + (b.tv_nsec - a.tv_nsec)) / (2.0 * n);
  printf ("keep=%ld d=%.1f round-main=%d  %.2f ns per switch\n", keep1, d, fegetround () == FE_TONEAREST, ns);
  return 0;
}
