"""fuzzprog.py - the schedule fuzzer's programs: their text form, a random
generator driven by a seed, and the shrinker.

A program is a handful of procs (proc 0 is the main task) and timer
callbacks.  Its text, one item per line, is what the C runner reads:

    futures 2                 plain futures, in slots 0 and 1
    slots 6                   slots 0..5 (the rest filled by the ops)
    timer 3 cancel 4 m1       at tick 3: non-awaiting ops
    proc 0 spawn 1 2 sleep 2 await 2 return 7
    proc 1 try all { timeout 2 { sleep 5 } } raise 3

Ops (S: a slot, K: a proc, N: ticks of 1/512 s, V: an int value,
E: an error label, M: a cancel message label or '-' for none):

    sleep N            await sleep(N)  (N = 0: sleep(0))
    yield              AFUT_YIELD
    spawn K S          slot S = create_task(proc K)
    call K             await proc K, inline (AFUT_CORO awaited directly)
    await S            await slot S (nothing if empty or the task itself)
    gather S R C I..   slot S = gather(I.., return_exceptions=R), C items:
                       pK (a new coroutine of proc K) or sX (slot X)
    shield S I         slot S = shield(I)
    waitfor S N I      slot S = wait_for(I, N)
    cancel S M         slot S .cancel(M)
    resolve S V        set_result(V) on plain future S
    fail S E           set_exception(E) on plain future S
    raise E            raise error E
    return V           return V
    try all|err { .. } except BaseException / except Exception: log it
    timeout N { .. }   async with asyncio.timeout(N)
    group { .. }       async with asyncio.TaskGroup() as tg
    gspawn K S         slot S = tg.create_task(proc K), tg the innermost
                       group block of the same proc (only inside one)
    cancelself M       asyncio.current_task().cancel(M)

Procs only reference procs of a higher number, so every program ends.
"""

import random

# ---- AST: ops are tuples ----
#   ('sleep', n) ('yield',) ('spawn', k, s) ('call', k) ('await', s)
#   ('gather', s, re, [item]) ('shield', s, item) ('waitfor', s, n, item)
#   ('cancel', s, msg|None) ('resolve', s, v) ('fail', s, e) ('raise', e)
#   ('return', v) ('try', 'all'|'err', [ops]) ('timeout', n, [ops])
#   ('group', None, [ops]) ('gspawn', k, s) ('cancelself', msg|None)
#   item: ('p', k) | ('s', x)
# Blocks (try, timeout, group) keep their body at op[2].

BLOCKS = ('try', 'timeout', 'group')


class Program:
    def __init__(self, nfut, nslots, timers, procs, seed=None):
        self.nfut = nfut
        self.nslots = nslots
        self.timers = timers  # [(ticks, [ops])]
        self.procs = procs    # [[ops]]
        self.seed = seed

    def copy(self):
        return Program(self.nfut, self.nslots,
                       [(t, _copy_ops(ops)) for t, ops in self.timers],
                       [_copy_ops(p) for p in self.procs], self.seed)

    def text(self):
        lines = []
        if self.seed is not None:
            lines.append('# seed %s' % self.seed)
        lines.append('futures %d' % self.nfut)
        lines.append('slots %d' % self.nslots)
        for t, ops in self.timers:
            lines.append(' '.join(['timer', str(t)] + _ops_tokens(ops)))
        for k, ops in enumerate(self.procs):
            lines.append(' '.join(['proc', str(k)] + _ops_tokens(ops)))
        return '\n'.join(lines) + '\n'

    def n_ops(self):
        return (sum(_count(ops) for _, ops in self.timers)
                + sum(_count(p) for p in self.procs) + len(self.timers))


def _copy_ops(ops):
    out = []
    for op in ops:
        if op[0] in BLOCKS:
            out.append((op[0], op[1], _copy_ops(op[2])))
        elif op[0] == 'gather':
            out.append((op[0], op[1], op[2], list(op[3])))
        else:
            out.append(op)
    return out


def _count(ops):
    return sum(1 + (_count(op[2]) if op[0] in BLOCKS else 0)
               for op in ops)


def _item_token(item):
    return '%s%d' % item


def _ops_tokens(ops):
    toks = []
    for op in ops:
        k = op[0]
        if k == 'gather':
            toks += ['gather', str(op[1]), str(op[2]), str(len(op[3]))]
            toks += [_item_token(i) for i in op[3]]
        elif k == 'shield':
            toks += ['shield', str(op[1]), _item_token(op[2])]
        elif k == 'waitfor':
            toks += ['waitfor', str(op[1]), str(op[2]), _item_token(op[3])]
        elif k == 'cancel':
            toks += ['cancel', str(op[1]), '-' if op[2] is None else str(op[2])]
        elif k == 'cancelself':
            toks += ['cancelself', '-' if op[1] is None else str(op[1])]
        elif k in ('try', 'timeout'):
            toks += [k, str(op[1]), '{'] + _ops_tokens(op[2]) + ['}']
        elif k == 'group':
            toks += ['group', '{'] + _ops_tokens(op[2]) + ['}']
        else:
            toks += [k] + [str(x) for x in op[1:]]
    return toks


def parse(text):
    nfut = nslots = 0
    timers, procs = [], {}
    seed = None
    for line in text.splitlines():
        line = line.strip()
        if not line:
            continue
        if line.startswith('#'):
            parts = line[1:].split()
            if len(parts) == 2 and parts[0] == 'seed':
                seed = parts[1]
            continue
        toks = line.split()
        if toks[0] == 'futures':
            nfut = int(toks[1])
        elif toks[0] == 'slots':
            nslots = int(toks[1])
        elif toks[0] == 'timer':
            ops, rest = _parse_ops(toks, 2)
            assert rest == len(toks), line
            _check_gspawn(ops, False)
            timers.append((int(toks[1]), ops))
        elif toks[0] == 'proc':
            ops, rest = _parse_ops(toks, 2)
            assert rest == len(toks), line
            _check_gspawn(ops, False)
            procs[int(toks[1])] = ops
        else:
            raise ValueError('bad line: %r' % line)
    return Program(nfut, nslots, timers,
                   [procs.get(k, []) for k in range(max(procs) + 1 if procs else 0)],
                   seed)


def _check_gspawn(ops, in_group):
    for op in ops:
        if op[0] == 'gspawn' and not in_group:
            raise ValueError('gspawn outside a group block')
        if op[0] in BLOCKS:
            _check_gspawn(op[2], in_group or op[0] == 'group')


def _parse_item(tok):
    assert tok[0] in 'ps', tok
    return (tok[0], int(tok[1:]))


def _parse_ops(toks, i):
    ops = []
    while i < len(toks) and toks[i] != '}':
        k = toks[i]
        if k == 'sleep':
            ops.append(('sleep', int(toks[i + 1]))); i += 2
        elif k == 'yield':
            ops.append(('yield',)); i += 1
        elif k in ('spawn', 'gspawn'):
            ops.append((k, int(toks[i + 1]), int(toks[i + 2]))); i += 3
        elif k == 'call':
            ops.append(('call', int(toks[i + 1]))); i += 2
        elif k == 'await':
            ops.append(('await', int(toks[i + 1]))); i += 2
        elif k == 'gather':
            n = int(toks[i + 3])
            items = [_parse_item(t) for t in toks[i + 4:i + 4 + n]]
            ops.append(('gather', int(toks[i + 1]), int(toks[i + 2]), items))
            i += 4 + n
        elif k == 'shield':
            ops.append(('shield', int(toks[i + 1]), _parse_item(toks[i + 2])))
            i += 3
        elif k == 'waitfor':
            ops.append(('waitfor', int(toks[i + 1]), int(toks[i + 2]),
                        _parse_item(toks[i + 3])))
            i += 4
        elif k == 'cancel':
            m = toks[i + 2]
            ops.append(('cancel', int(toks[i + 1]), None if m == '-' else int(m)))
            i += 3
        elif k == 'cancelself':
            m = toks[i + 1]
            ops.append(('cancelself', None if m == '-' else int(m)))
            i += 2
        elif k in ('resolve', 'fail'):
            ops.append((k, int(toks[i + 1]), int(toks[i + 2]))); i += 3
        elif k in ('raise', 'return'):
            ops.append((k, int(toks[i + 1]))); i += 2
        elif k in BLOCKS:
            if k == 'group':
                arg = None
                i += 1
            else:
                arg = toks[i + 1] if k == 'try' else int(toks[i + 1])
                i += 2
            assert toks[i] == '{'
            body, i = _parse_ops(toks, i + 1)
            assert toks[i] == '}'
            i += 1
            ops.append((k, arg, body))
        else:
            raise ValueError('bad op %r' % k)
    return ops, i


# ---- generator ----

class _Gen:
    def __init__(self, seed):
        self.r = random.Random(seed)

    def ticks(self):
        x = self.r.random()
        if x < 0.12:
            return 0
        if x < 0.75:
            return self.r.randint(1, 3)
        return self.r.randint(4, 10)

    def program(self, seed):
        r = self.r
        self.nprocs = r.choice([1, 2, 3, 3, 4, 4, 5, 6])
        self.nfut = r.choice([0, 1, 1, 2, 3])
        self.nslots = self.nfut + r.randint(1, 7)
        self.labels = 0
        self.fail_hint = set()  # procs a group spawns: made to fail often
        procs = []
        for k in range(self.nprocs):
            n = r.choice([1, 2, 3, 3, 4, 5, 6, 8])
            ops = self.ops(k, n, 0)
            if k in self.fail_hint and r.random() < 0.5:
                # A group's child that fails, usually after an await.
                ops.insert(r.randint(min(1, len(ops)), len(ops)),
                           ('raise', self.label()))
            procs.append(ops)
        timers = []
        for _ in range(r.choice([0, 0, 1, 1, 2, 3])):
            timers.append((self.ticks() + r.randint(0, 4),
                           [self.timer_op() for _ in range(r.choice([1, 1, 2]))]))
        return Program(self.nfut, self.nslots, timers, procs, seed)

    def label(self):
        self.labels += 1
        return self.labels

    def dyn_slot(self):
        return self.r.randrange(self.nfut, self.nslots)

    def any_slot(self):
        return self.r.randrange(self.nslots)

    def item(self, k):
        r = self.r
        if k + 1 < self.nprocs and r.random() < 0.6:
            return ('p', r.randrange(k + 1, self.nprocs))
        return ('s', self.any_slot())

    def msg(self):
        return None if self.r.random() < 0.4 else self.label()

    def timer_op(self):
        r = self.r
        choices = ['cancel', 'cancel', 'cancel']
        if self.nfut:
            choices += ['resolve', 'fail', 'cancelf']
        if self.nprocs > 1:
            choices += ['spawn']
        c = r.choice(choices)
        if c == 'cancel':
            return ('cancel', self.any_slot(), self.msg())
        if c == 'cancelf':
            return ('cancel', r.randrange(self.nfut), self.msg())
        if c == 'resolve':
            return ('resolve', r.randrange(self.nfut), r.randint(0, 99))
        if c == 'fail':
            return ('fail', r.randrange(self.nfut), self.label())
        return ('spawn', r.randrange(1, self.nprocs), self.dyn_slot())

    WEIGHTS = [('sleep', 14), ('yield', 5), ('spawn', 8), ('call', 5),
               ('await', 9), ('gather', 11), ('shield', 5), ('waitfor', 5),
               ('cancel', 9), ('resolve', 4), ('fail', 3), ('raise', 3),
               ('return', 3), ('try', 8), ('timeout', 6), ('group', 4),
               ('cancelself', 1), ('gspawn', 12)]
    # group: only with a proc to spawn; cancelself: only inside a block;
    # gspawn: only inside a group block.

    def ops(self, k, n, depth, in_group=False):
        r = self.r
        out = []
        has_child = k + 1 < self.nprocs
        for _ in range(n):
            while True:
                c = r.choices([w[0] for w in self.WEIGHTS],
                              [w[1] for w in self.WEIGHTS])[0]
                if c in ('spawn', 'call', 'group') and not has_child:
                    continue
                if c in ('resolve', 'fail') and not self.nfut:
                    continue
                if c in ('try', 'timeout', 'group') and depth >= 2:
                    continue
                if c == 'cancelself' and depth == 0:
                    continue
                if c == 'gspawn' and not in_group:
                    continue
                break
            if c == 'sleep':
                out.append(('sleep', self.ticks()))
            elif c == 'yield':
                out.append(('yield',))
            elif c in ('spawn', 'gspawn'):
                j = r.randrange(k + 1, self.nprocs)
                if c == 'gspawn' and r.random() < 0.5:
                    self.fail_hint.add(j)
                out.append((c, j, self.dyn_slot()))
            elif c == 'call':
                out.append(('call', r.randrange(k + 1, self.nprocs)))
            elif c == 'await':
                out.append(('await', self.any_slot()))
            elif c == 'gather':
                s = self.dyn_slot()
                items = [self.item(k) for _ in range(r.choice([0, 1, 2, 2, 3, 3, 4]))]
                if items and r.random() < 0.1:
                    items.append(r.choice(items))  # the same future twice
                out.append(('gather', s, int(r.random() < 0.4), items))
                if r.random() < 0.85:
                    out.append(('await', s))
            elif c in ('shield', 'waitfor'):
                s = self.dyn_slot()
                if c == 'shield':
                    out.append(('shield', s, self.item(k)))
                else:
                    out.append(('waitfor', s, self.ticks(), self.item(k)))
                if r.random() < 0.85:
                    out.append(('await', s))
            elif c == 'cancel':
                out.append(('cancel', self.any_slot(), self.msg()))
            elif c == 'cancelself':
                out.append(('cancelself', self.msg()))
            elif c == 'resolve':
                out.append(('resolve', r.randrange(self.nfut), r.randint(0, 99)))
            elif c == 'fail':
                out.append(('fail', r.randrange(self.nfut), self.label()))
            elif c == 'raise':
                out.append(('raise', self.label()))
            elif c == 'return':
                out.append(('return', r.randint(0, 99)))
            elif c == 'try':
                out.append(('try', r.choice(['all', 'all', 'err']),
                            self.ops(k, r.randint(1, 4), depth + 1, in_group)))
            elif c == 'timeout':
                out.append(('timeout', self.ticks() if r.random() < 0.8 else 0,
                            self.ops(k, r.randint(1, 4), depth + 1, in_group)))
            elif c == 'group':
                out.append(('group', None, self.group_body(k, depth + 1)))
        return out

    def group_body(self, k, depth):
        """A group block: a child or two spawned, then what the body does
        meanwhile (more spawns, awaits; it may fail or cancel itself)."""
        r = self.r
        body = []
        for _ in range(r.choice([1, 1, 2, 2, 3])):
            j = r.randrange(k + 1, self.nprocs)
            if r.random() < 0.5:
                self.fail_hint.add(j)
            body.append(('gspawn', j, self.dyn_slot()))
        body += self.ops(k, r.choice([0, 1, 1, 2, 3]), depth, True)
        x = r.random()
        if x < 0.1:
            body.append(('raise', self.label()))
        elif x < 0.15:
            body.append(('cancelself', self.msg()))
        elif x < 0.25:
            # Waits, catching the group's cancellation, then spawns: a
            # group that aborts meanwhile refuses the child.
            body.append(('try', 'all', [('sleep', self.ticks())]))
            body.append(('gspawn', r.randrange(k + 1, self.nprocs),
                         self.dyn_slot()))
        return body


def instances(prog, limit=10 ** 6):
    """How many tasks the program may create at most (each proc
    reference made once per instance)."""
    memo = {}

    def refs(ops):
        for op in ops:
            if op[0] in ('spawn', 'call', 'gspawn'):
                yield op[1]
            elif op[0] == 'gather':
                for it in op[3]:
                    if it[0] == 'p':
                        yield it[1]
            elif op[0] == 'shield' and op[2][0] == 'p':
                yield op[2][1]
            elif op[0] == 'waitfor' and op[3][0] == 'p':
                yield op[3][1]
            elif op[0] in BLOCKS:
                yield from refs(op[2])

    def inst(k):
        if k not in memo:
            memo[k] = min(limit, 1 + sum(inst(j) for j in refs(prog.procs[k])))
        return memo[k]

    total = inst(0) if prog.procs else 0
    for _, ops in prog.timers:
        total += sum(inst(j) for j in refs(ops))
    return total


def generate(seed, max_tasks=40, avoid=()):
    """The program of a seed.  avoid: known afut bugs the program must
    not trigger (fuzzmodel.KNOWN_DEVIATIONS; the open ones are reproduced
    by the model, so nothing is left out now)."""
    g = _Gen(seed)
    while True:
        prog = g.program(seed)
        if instances(prog) <= max_tasks:
            break
    return prog


# ---- shrinking ----

def _positions(ops, path=()):
    """Every op position: a path of indices into nested bodies."""
    for i, op in enumerate(ops):
        yield path + (i,)
        if op[0] in BLOCKS:
            yield from _positions(op[2], path + (i,))


def _get_list(ops, path):
    for i in path[:-1]:
        ops = ops[i][2]
    return ops


def _candidates(prog):
    """Smaller variants of prog, roughly largest cut first."""
    # Drop a whole proc body or timer.
    for t in range(len(prog.timers)):
        p = prog.copy()
        del p.timers[t]
        yield p
    for k in range(len(prog.procs) - 1, -1, -1):
        if prog.procs[k]:
            p = prog.copy()
            p.procs[k] = []
            yield p
    # Drop one op anywhere (in procs, then in timers).
    for k in range(len(prog.procs)):
        for path in list(_positions(prog.procs[k])):
            p = prog.copy()
            lst = _get_list(p.procs[k], path)
            del lst[path[-1]]
            yield p
            op = _get_list(prog.procs[k], path)[path[-1]]
            if op[0] in BLOCKS:
                # The body without its block (a group's spawns become
                # plain ones, unless another group still encloses them).
                p = prog.copy()
                lst = _get_list(p.procs[k], path)
                body = _copy_ops(op[2])
                if op[0] == 'group' and not _in_group(prog.procs[k], path):
                    body = _ungroup(body)
                lst[path[-1]:path[-1] + 1] = body
                yield p
    for t in range(len(prog.timers)):
        for i in range(len(prog.timers[t][1])):
            p = prog.copy()
            del p.timers[t][1][i]
            yield p
    # Simplify arguments.
    for k in range(len(prog.procs)):
        for path in list(_positions(prog.procs[k])):
            op = _get_list(prog.procs[k], path)[path[-1]]
            for new in _simpler_op(op):
                p = prog.copy()
                _get_list(p.procs[k], path)[path[-1]] = new
                yield p
    for t in range(len(prog.timers)):
        if prog.timers[t][0] > 0:
            for nt in (0, prog.timers[t][0] - 1):
                p = prog.copy()
                p.timers[t] = (nt, p.timers[t][1])
                yield p


def _in_group(ops, path):
    """Whether the op at path is inside a group block."""
    for i in path[:-1]:
        if ops[i][0] == 'group':
            return True
        ops = ops[i][2]
    return False


def _ungroup(ops):
    """gspawn -> spawn, outside nested groups."""
    out = []
    for op in ops:
        if op[0] == 'gspawn':
            op = ('spawn',) + op[1:]
        elif op[0] in ('try', 'timeout'):
            op = (op[0], op[1], _ungroup(op[2]))
        out.append(op)
    return out


def _simpler_op(op):
    k = op[0]
    if k in ('sleep',) and op[1] > 0:
        yield (k, 0)
        yield (k, op[1] - 1)
    elif k == 'timeout' and op[1] > 0:
        yield (k, 0, _copy_ops(op[2]))
        yield (k, op[1] - 1, _copy_ops(op[2]))
    elif k == 'waitfor' and op[2] > 0:
        yield (k, op[1], 0, op[3])
        yield (k, op[1], op[2] - 1, op[3])
    elif k == 'gather':
        for i in range(len(op[3])):
            yield (k, op[1], op[2], op[3][:i] + op[3][i + 1:])
        if op[2]:
            yield (k, op[1], 0, list(op[3]))
    elif k == 'cancel' and op[2] is not None:
        yield (k, op[1], None)
    elif k == 'cancelself' and op[1] is not None:
        yield (k, None)
    elif k == 'try' and op[1] == 'err':
        yield (k, 'all', _copy_ops(op[2]))


def _drop_unused_procs(prog):
    """Removes procs nothing references, renumbering the others."""
    used = {0}
    changed = True

    def scan(ops):
        for op in ops:
            if op[0] in ('spawn', 'call', 'gspawn'):
                used.add(op[1])
            elif op[0] == 'gather':
                used.update(it[1] for it in op[3] if it[0] == 'p')
            elif op[0] == 'shield' and op[2][0] == 'p':
                used.add(op[2][1])
            elif op[0] == 'waitfor' and op[3][0] == 'p':
                used.add(op[3][1])
            elif op[0] in BLOCKS:
                scan(op[2])
    for _, ops in prog.timers:
        scan(ops)
    while changed:
        n = len(used)
        for k in list(used):
            if k < len(prog.procs):
                scan(prog.procs[k])
        changed = len(used) != n
    keep = [k for k in range(len(prog.procs)) if k in used]
    ren = {old: new for new, old in enumerate(keep)}

    def item(it):
        return ('p', ren[it[1]]) if it[0] == 'p' else it

    def rw(ops):
        out = []
        for op in ops:
            if op[0] in ('spawn', 'call', 'gspawn'):
                op = (op[0], ren[op[1]]) + op[2:]
            elif op[0] == 'gather':
                op = (op[0], op[1], op[2], [item(i) for i in op[3]])
            elif op[0] == 'shield':
                op = (op[0], op[1], item(op[2]))
            elif op[0] == 'waitfor':
                op = (op[0], op[1], op[2], item(op[3]))
            elif op[0] in BLOCKS:
                op = (op[0], op[1], rw(op[2]))
            out.append(op)
        return out
    p = prog.copy()
    p.procs = [rw(prog.procs[k]) for k in keep]
    p.timers = [(t, rw(ops)) for t, ops in prog.timers]
    return p


def shrink(prog, still_fails, max_checks=4000):
    """Greedy: keeps any smaller variant for which still_fails(p) holds."""
    checks = 0
    improved = True
    while improved and checks < max_checks:
        improved = False
        for cand in _candidates(prog):
            checks += 1
            if still_fails(cand):
                prog = cand
                improved = True
                break
            if checks >= max_checks:
                break
    small = _drop_unused_procs(prog)
    if still_fails(small):
        prog = small
    return prog
