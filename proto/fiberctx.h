/* Prototype of afut's fiber layer: stacks and the context switch.
 * To be folded into afut.h's implementation part. */
#include <errno.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

/* ---- which switch ---- */

#if !defined(AFUT_FIBER_UCONTEXT) && defined(__ELF__)                        \
  && (defined(__x86_64__) || defined(__aarch64__))
#define AFUT__FIBER_ASM 1
#else
#define AFUT__FIBER_ASM 0
#include <ucontext.h>
#endif

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
#ifdef AFUT__ASAN
void __sanitizer_start_switch_fiber (void **fake_stack_save,
                                     const void *bottom, size_t size);
void __sanitizer_finish_switch_fiber (void *fake_stack_save,
                                      const void **bottom_old,
                                      size_t *size_old);
#endif
#ifdef AFUT__TSAN
void *__tsan_get_current_fiber (void);
void *__tsan_create_fiber (unsigned flags);
void __tsan_destroy_fiber (void *fiber);
void __tsan_switch_to_fiber (void *fiber, unsigned flags);
#endif
#if defined(__has_include)
#if __has_include(<valgrind/valgrind.h>)
#include <valgrind/valgrind.h>
#define AFUT__VALGRIND 1
#endif
#endif

/* ---- the switch ----
 *
 * afut__ctx_switch (&from->sp, to->sp) saves the callee-saved state the
 * ABI says a call preserves on the current stack, stores the stack
 * pointer in *from, loads @to's and restores the state saved there.
 * x86-64 SysV: rbx, rbp, r12-r15, the MXCSR control bits and the x87
 * control word.  AArch64 AAPCS64: x19-x28, the frame pointer x29, the
 * link register x30, d8-d15 and FPCR.  A new context's stack is laid out
 * as if it had switched out from afut__ctx_entry, which calls the entry
 * function with its argument. */

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
         /* The first return of a new context lands here with the entry
          * function in r12 and its argument in r13.  The return address
          * is undefined: debuggers stop unwinding at the fiber's base. */
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
#ifdef __cplusplus
extern "C" {
#endif
void afut__ctx_switch (void **save_sp, void *load_sp);
void afut__ctx_entry (void);
#ifdef __cplusplus
}
#endif

typedef struct
{
  void *sp;
} AfutCtx;

/* A context that starts in @entry (@arg) on the stack [@lo, @lo+@size). */
static void
afut__ctx_init (AfutCtx *ctx, void *lo, size_t size, void (*entry) (void *),
                void *arg)
{
  uintptr_t top = ((uintptr_t) lo + size) & ~(uintptr_t) 15;
  unsigned char *sp = (unsigned char *) (top - AFUT__CTX_FRAME);
  memset (sp, 0, AFUT__CTX_FRAME);
#if defined(__x86_64__)
  {
    uint32_t mxcsr;
    uint16_t fpucw;
    __asm__ volatile ("stmxcsr %0" : "=m"(mxcsr));
    __asm__ volatile ("fnstcw %0" : "=m"(fpucw));
    memcpy (sp + 0, &mxcsr, 4);
    memcpy (sp + 4, &fpucw, 2);
    memcpy (sp + 24, &arg, 8);   /* r13 */
    {
      void *e = (void *) entry;
      memcpy (sp + 32, &e, 8);   /* r12 */
    }
    {
      void *ret = (void *) afut__ctx_entry;
      memcpy (sp + 56, &ret, 8); /* the return address */
    }
  }
#else
  {
    uint64_t fpcr;
    void *e = (void *) entry, *ret = (void *) afut__ctx_entry;
    __asm__ volatile ("mrs %0, fpcr" : "=r"(fpcr));
    memcpy (sp + 0, &e, 8);    /* x19 */
    memcpy (sp + 8, &arg, 8);  /* x20 */
    memcpy (sp + 88, &ret, 8); /* x30 */
    memcpy (sp + 160, &fpcr, 8);
  }
#endif
  ctx->sp = sp;
}

static inline void
afut__ctx_jump (AfutCtx *from, AfutCtx *to)
{
  afut__ctx_switch (&from->sp, to->sp);
}
#else
typedef struct
{
  ucontext_t uc;
  void (*entry) (void *); /* until its first switch in */
  void *arg;
} AfutCtx;

/* makecontext passes ints only: a new context's entry and argument go
 * through these, set by the switch into it. */
static __thread void (*afut__ctx_start_entry) (void *);
static __thread void *afut__ctx_start_arg;

static void
afut__ctx_trampoline (void)
{
  afut__ctx_start_entry (afut__ctx_start_arg);
  abort ();
}

static void
afut__ctx_init (AfutCtx *ctx, void *lo, size_t size, void (*entry) (void *),
                void *arg)
{
  getcontext (&ctx->uc);
  ctx->uc.uc_stack.ss_sp = lo;
  ctx->uc.uc_stack.ss_size = size;
  ctx->uc.uc_link = NULL;
  makecontext (&ctx->uc, afut__ctx_trampoline, 0);
  ctx->entry = entry;
  ctx->arg = arg;
}

static inline void
afut__ctx_jump (AfutCtx *from, AfutCtx *to)
{
  if (to->entry != NULL)
    {
      afut__ctx_start_entry = to->entry;
      afut__ctx_start_arg = to->arg;
      to->entry = NULL;
    }
  swapcontext (&from->uc, &to->uc);
}
#endif
