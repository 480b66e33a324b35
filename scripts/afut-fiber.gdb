# afut-fiber.gdb - gdb commands for afut's fibers (issue 16).
#
#   (gdb) source scripts/afut-fiber.gdb
#   (gdb) afut-fiber-bt TASK      backtrace of a suspended fiber
#   (gdb) afut-fiber-enter TASK   make it the current stack: bt, frame N,
#                                 info locals, print ... all work there
#   (gdb) afut-fiber-leave        back to the thread's own registers
#                                 (always before continue / step)
#
# TASK is the fiber's AfutTask * or AfutFuture * (what afut_fiber_new()
# returned).  x86-64 with afut's own switch: a suspended fiber's registers
# are where afut__ctx_switch pushed them, at its saved stack pointer:
# [MXCSR, x87 CW][r15][r14][r13][r12][rbx][rbp][return address].  The
# running fiber needs none of this: a plain `bt` shows it, down to
# afut__ctx_entry.  Live processes only (a core's registers cannot be
# written).

define afut-fiber-enter
  set $afut_f = (AfutFiber *) ($arg0)
  if $afut_f->phase != 1 || $afut_f->stack == 0
    echo afut-fiber-enter: not a fiber whose body is suspended (not started, or ended)\n
  else
    if $afut_entered
      echo afut-fiber-enter: already entered; afut-fiber-leave first\n
    else
      # Registers are the innermost frame's: select it first.
      select-frame 0
      set $afut_entered = 1
      set $afut_saved_pc = $pc
      set $afut_saved_sp = $sp
      set $afut_saved_rbp = $rbp
      set $afut_saved_rbx = $rbx
      set $afut_saved_r12 = $r12
      set $afut_saved_r13 = $r13
      set $afut_saved_r14 = $r14
      set $afut_saved_r15 = $r15
      set $afut_s = (void **) $afut_f->sp
      set $r15 = (long) $afut_s[1]
      set $r14 = (long) $afut_s[2]
      set $r13 = (long) $afut_s[3]
      set $r12 = (long) $afut_s[4]
      set $rbx = (long) $afut_s[5]
      set $rbp = (long) $afut_s[6]
      set $sp = (void *) ($afut_s + 8)
      set $pc = $afut_s[7]
    end
  end
end
document afut-fiber-enter
Make a suspended afut fiber's stack the current one (x86-64): bt, frame,
info locals and print then show the fiber.  afut-fiber-leave undoes it;
do so before continuing the program.
end

define afut-fiber-leave
  if $afut_entered
    # `set $pc` in an outer frame would write into the stack.
    select-frame 0
    set $pc = $afut_saved_pc
    set $sp = $afut_saved_sp
    set $rbp = $afut_saved_rbp
    set $rbx = $afut_saved_rbx
    set $r12 = $afut_saved_r12
    set $r13 = $afut_saved_r13
    set $r14 = $afut_saved_r14
    set $r15 = $afut_saved_r15
    set $afut_entered = 0
  end
end
document afut-fiber-leave
Back to the registers the thread had before afut-fiber-enter.
end

define afut-fiber-bt
  afut-fiber-enter $arg0
  if $afut_entered
    bt
    afut-fiber-leave
  end
end
document afut-fiber-bt
Backtrace of a suspended afut fiber (x86-64): afut-fiber-bt TASK.
end

set $afut_entered = 0
