"""fuzzinterp.py - runs a fuzzer program (fuzzprog.py) on a runtime and
returns its event trace.

The same interpreter runs on the model (fuzzmodel.ModelRuntime) and on
real asyncio (asyncio_oracle.AsyncioRuntime); the C runner (afut-fuzz.c)
is a third implementation of exactly this file, on afut.  The trace is a
list of lines `t<ticks> <who> <event>`; the lines and their order are
what the implementations must agree on.

Trace events (who: #N the task registered N, timerI, cb, harness):
    start                   a registered task's first step runs its body
    sleep N / yield / call K / await sS #N / try / timeout N / group
    -> OUTCOME              the await just made returned (no line if it
                            raised: the error shows where it is caught)
    endtimeout E            a timeout block ended normally (E: expired)
    endgroup                a group block ended normally (its children
                            done, none failed)
    spawn K sS #N, gather sS #G [#children], shield sS #I #O,
    waitfor sS N #I #O, cancel sS #N -> R, resolve sS -> R, ...,
    gspawn K sS #N (or: refused), cancelself #N -> R
    raise E / return V / caught ERR
    done #N OUTCOME         the done callback the harness put on every
                            future it registered
    fire I                  timer callback I
    round R / cancel #N -> R   the harness's shutdown rounds
    final #N OUTCOME / unretrieved NAME ERR   the end state

OUTCOME: an int, none, [o,o,..] for a gather (nested lists deeper
than two print as [LENGTH]), EN (an error label),
timeout, cancel:MSG, err:group:MESSAGE for a task group's error
(afut's message: `unhandled errors in a TaskGroup (2 sub-errors): E1;
E3`, each sub-error by its own message, in the order the group got them).
"""

import functools
import zlib


class FuzzError(Exception):
    def __init__(self, label):
        super().__init__('E%d' % label)
        self.label = label


MAX_ROUNDS = 400


class Entry:
    __slots__ = ('fut', 'kind', 'inner', 'children', 'seen_done')

    def __init__(self, fut, kind, inner=None, children=None):
        self.fut, self.kind, self.inner, self.children = fut, kind, inner, children
        self.seen_done = 0


class Interp:
    def __init__(self, prog, rt):
        self.prog = prog
        self.rt = rt
        self.trace = []
        self.reg = []
        self.slots = [None] * prog.nslots
        self.awaiting = {}  # task entry -> the entry it awaits
        self.group_children = {}  # task entry -> children of its groups

    # ---- formatting ----

    def fmt_exc(self, e):
        rt = self.rt
        if isinstance(e, rt.CancelledError):
            return 'cancel:' + rt.cancel_msg(e)
        if isinstance(e, rt.TimeoutError):
            return 'timeout'
        if isinstance(e, FuzzError):
            return 'E%d' % e.label
        if isinstance(e, BaseExceptionGroup):
            return 'err:group:' + self.afut_message(e)
        return 'err:%s:%s' % (type(e).__name__, e)

    def afut_message(self, e):
        """An error's message as afut words it (inside a group's)."""
        if isinstance(e, BaseExceptionGroup):
            n = len(e.exceptions)
            return 'unhandled errors in a TaskGroup (%d sub-error%s)%s' % (
                n, '' if n == 1 else 's',
                ''.join(('; ' if i else ': ') + self.afut_message(x)
                        for i, x in enumerate(e.exceptions)))
        if isinstance(e, FuzzError):
            return 'E%d' % e.label
        if isinstance(e, self.rt.TimeoutError):
            # afut: "timed out" (a timeout scope), "wait_for timed out"
            return str(e) or 'timed out'
        return str(e)

    # Lists nested deeper than this print as [LENGTH]: gathers of gathers
    # of the same slot would print exponentially long.
    MAX_DEPTH = 2

    def fmt_value(self, v, depth=0):
        if v is None:
            return 'none'
        if isinstance(v, list):
            if depth >= self.MAX_DEPTH:
                return '[%d]' % len(v)
            return '[' + ','.join(self.fmt_value(x, depth + 1) for x in v) + ']'
        if isinstance(v, BaseException):
            return self.fmt_exc(v)
        return str(v)

    def fmt_outcome(self, i, depth=0):
        """Entry i's outcome, from its state and structure (not from the
        value objects): how the C side formats it too."""
        e = self.reg[i]
        state, value, exc = self.rt.peek(e.fut)
        if state == 'pending':
            return 'pending'
        if exc is not None:
            return self.fmt_exc(exc)
        if e.kind == 'gather':
            if depth >= self.MAX_DEPTH:
                return '[%d]' % len(e.children)
            return '[' + ','.join(self.fmt_outcome(c, depth + 1)
                                  for c in e.children) + ']'
        if e.kind in ('shield', 'waitfor') and self._listy(e.inner):
            return self.fmt_outcome(e.inner, depth)
        return self.fmt_value(value)

    def _listy(self, i):
        e = self.reg[i]
        return e.kind == 'gather' or (e.kind in ('shield', 'waitfor')
                                      and self._listy(e.inner))

    # ---- registry ----

    def log(self, who, text):
        self.trace.append('t%d %s %s' % (self.rt.now(), who, text))

    def register(self, fut, kind, inner=None, children=None):
        i = len(self.reg)
        self.reg.append(Entry(fut, kind, inner, children))
        if kind == 'task':
            self.rt.set_name(fut, '#%d' % i)
        fut.add_done_callback(functools.partial(self._observe, i))
        return i

    def _observe(self, i, fut):
        self.reg[i].seen_done += 1
        self.log('cb', 'done #%d %s' % (i, self.fmt_outcome(i)))

    def reaches(self, x, target):
        """Whether cancelling x would reach target: through what a task
        awaits, a gather's children, a wait_for's inner."""
        todo, seen = [x], set()
        while todo:
            x = todo.pop()
            if x == target:
                return True
            if x in seen:
                continue
            seen.add(x)
            e = self.reg[x]
            if self.rt.peek(e.fut)[0] != 'pending':
                continue
            if e.kind == 'task':
                # What it awaits, and the children of its task groups,
                # which it will wait for at the group's exit.
                if self.awaiting.get(x) is not None:
                    todo.append(self.awaiting[x])
                todo.extend(self.group_children.get(x, ()))
            elif e.kind == 'gather':
                todo.extend(e.children)
            elif e.kind == 'waitfor':
                todo.append(e.inner)
        return False

    # ---- the task body ----

    async def task_main(self, k, holder):
        host = holder[0]
        self.log('#%d' % host, 'start')
        return await self.run_proc(k, host)

    async def run_proc(self, k, host):
        r = await self.exec_ops(self.prog.procs[k], host)
        return r[1] if r is not None else None

    async def aw(self, who, awaitable):
        v = await awaitable
        self.log(who, '-> ' + self.fmt_value(v))
        return v

    async def exec_ops(self, ops, host, group=None):
        who = '#%d' % host
        rt = self.rt
        for op in ops:
            k = op[0]
            if k == 'sleep':
                self.log(who, 'sleep %d' % op[1])
                await self.aw(who, rt.sleep(op[1]))
            elif k == 'yield':
                self.log(who, 'yield')
                await self.aw(who, rt.yield_())
            elif k == 'call':
                self.log(who, 'call %d' % op[1])
                await self.aw(who, self.run_proc(op[1], host))
            elif k == 'await':
                s = op[1]
                i = self.slots[s]
                if i is None:
                    self.log(who, 'await s%d empty' % s)
                elif self.reaches(i, host):
                    # A wait cycle: asyncio deadlocks there, and a cancel
                    # recurses forever (RecursionError); not tested.
                    self.log(who, 'await s%d #%d cycle' % (s, i))
                else:
                    self.log(who, 'await s%d #%d' % (s, i))
                    self.awaiting[host] = i
                    try:
                        await self.aw(who, self.reg[i].fut)
                    finally:
                        self.awaiting[host] = None
            elif k == 'raise':
                self.log(who, 'raise E%d' % op[1])
                raise FuzzError(op[1])
            elif k == 'return':
                self.log(who, 'return %d' % op[1])
                return ('ret', op[1])
            elif k == 'try':
                self.log(who, 'try')
                catch = BaseException if op[1] == 'all' else Exception
                try:
                    r = await self.exec_ops(op[2], host, group)
                except catch as e:
                    self.log(who, 'caught ' + self.fmt_exc(e))
                    r = None
                if r is not None:
                    return r
            elif k == 'timeout':
                self.log(who, 'timeout %d' % op[1])
                async with rt.timeout(op[1]) as cm:
                    r = await self.exec_ops(op[2], host, group)
                if r is not None:
                    return r
                self.log(who, 'endtimeout %d' % int(cm.expired()))
            elif k == 'group':
                self.log(who, 'group')
                async with rt.task_group() as tg:
                    r = await self.exec_ops(op[2], host, tg)
                if r is not None:
                    return r
                self.log(who, 'endgroup')
            elif k == 'gspawn':
                holder, coro = self.new_task(op[1])
                try:
                    t = rt.group_spawn(group, coro)
                except RuntimeError:  # the group is shutting down
                    coro.close()
                    self.log(who, 'gspawn %d s%d refused' % (op[1], op[2]))
                else:
                    i = holder[0] = self.register(t, 'task')
                    self.group_children.setdefault(host, []).append(i)
                    self.slots[op[2]] = i
                    self.log(who, 'gspawn %d s%d #%d' % (op[1], op[2], i))
            elif k == 'cancelself':
                m = op[1]
                r = rt.cancel(self.reg[host].fut, None if m is None else 'm%d' % m)
                self.log(who, 'cancelself #%d -> %d' % (host, int(r)))
            else:
                self.sync_op(who, op)
        return None

    def new_task(self, k):
        holder = [None]
        return holder, self.task_main(k, holder)

    def sync_op(self, who, op):
        rt = self.rt
        k = op[0]
        if k == 'spawn':
            holder, coro = self.new_task(op[1])
            t = rt.create_task(coro)
            i = holder[0] = self.register(t, 'task')
            self.slots[op[2]] = i
            self.log(who, 'spawn %d s%d #%d' % (op[1], op[2], i))
        elif k == 'gather':
            s, re, items = op[1], op[2], op[3]
            args, holders = [], []
            for it in items:
                if it[0] == 'p':
                    holder, coro = self.new_task(it[1])
                    holders.append((len(args), holder))
                    args.append(coro)
                else:
                    i = self.slots[it[1]]
                    if i is not None:
                        args.append(self.reg[i].fut)
            g = rt.gather(args, bool(re))
            kids = rt.gather_children(g)
            ids = {}
            for pos, holder in holders:
                holder[0] = self.register(kids[pos], 'task')
            for i, e in enumerate(self.reg):
                ids.setdefault(id(e.fut), i)
            children = [ids[id(c)] for c in kids]
            gi = self.register(g, 'gather', children=children)
            self.slots[s] = gi
            self.log(who, 'gather s%d #%d [%s]' % (
                s, gi, ','.join('#%d' % c for c in children)))
        elif k in ('shield', 'waitfor'):
            s = op[1]
            item = op[2] if k == 'shield' else op[3]
            if item[0] == 'p':
                holder, coro = self.new_task(item[1])
                inner = rt.ensure_future(coro)
                ii = holder[0] = self.register(inner, 'task')
            else:
                ii = self.slots[item[1]]
                if ii is None:
                    self.log(who, '%s s%d empty' % (k, s))
                    return
                inner = self.reg[ii].fut
            if k == 'shield':
                outer = rt.shield(inner)
            else:
                outer = rt.wait_for(inner, op[2])
            if outer is inner:
                oi = ii
                tag = 'same'
            else:
                oi = self.register(outer, k, inner=ii)
                tag = '#%d' % oi
            self.slots[s] = oi
            if k == 'shield':
                self.log(who, 'shield s%d #%d %s' % (s, ii, tag))
            else:
                self.log(who, 'waitfor s%d %d #%d %s' % (s, op[2], ii, tag))
        elif k == 'cancel':
            s, m = op[1], op[2]
            i = self.slots[s]
            if i is None:
                self.log(who, 'cancel s%d empty' % s)
            else:
                r = rt.cancel(self.reg[i].fut, None if m is None else 'm%d' % m)
                self.log(who, 'cancel s%d #%d -> %d' % (s, i, int(r)))
        elif k == 'resolve':
            r = rt.set_result(self.reg[self.slots[op[1]]].fut, op[2])
            self.log(who, 'resolve s%d %d -> %d' % (op[1], op[2], int(r)))
        elif k == 'fail':
            r = rt.set_exception(self.reg[self.slots[op[1]]].fut, FuzzError(op[2]))
            self.log(who, 'fail s%d E%d -> %d' % (op[1], op[2], int(r)))
        else:
            raise ValueError('op %r cannot run here' % (op,))

    def fire(self, ti):
        who = 'timer%d' % ti
        self.log(who, 'fire')
        for op in self.prog.timers[ti][1]:
            self.sync_op(who, op)

    # ---- the run ----

    def run(self):
        rt = self.rt
        prog = self.prog
        for j in range(prog.nfut):
            self.slots[j] = self.register(rt.create_future(), 'future')
        for ti, (n, _) in enumerate(prog.timers):
            rt.call_later(n, self.fire, ti)
        if prog.procs:
            holder, coro = self.new_task(0)
            holder[0] = self.register(rt.create_task(coro), 'task')
        rt.run_until_idle()
        for rnd in range(1, MAX_ROUNDS + 1):
            pending = [i for i, e in enumerate(self.reg)
                       if e.kind == 'task' and rt.peek(e.fut)[0] == 'pending']
            if not pending:
                break
            self.log('harness', 'round %d' % rnd)
            for i in pending:
                r = rt.cancel(self.reg[i].fut, 'sd')
                self.log('harness', 'cancel #%d -> %d' % (i, int(r)))
            rt.run_until_idle()
        for i in range(len(self.reg)):
            self.log('harness', 'final #%d %s' % (i, self.fmt_outcome(i)))
        unretrieved = []
        for i, e in enumerate(self.reg):
            if rt.unretrieved(e.fut):
                unretrieved.append('%s %s' % ('#%d' % i if e.kind == 'task' else '-',
                                              self.fmt_exc(rt.peek(e.fut)[2])))
        for u in sorted(unretrieved):
            self.log('harness', 'unretrieved ' + u)
        rt.close()
        return self.trace


def trace_hash(text):
    """What the C runner compares: CRC-32 and length of the trace text."""
    data = text.encode()
    return '%08x-%d' % (zlib.crc32(data), len(data))


def trace_text(trace):
    return '\n'.join(trace) + '\n'


def run_model(prog):
    from fuzzmodel import ModelRuntime
    return Interp(prog, ModelRuntime()).run()
