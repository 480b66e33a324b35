#!/usr/bin/env python3
"""fuzz.py - afut's schedule fuzzer: random programs of tasks, run on afut
(the C runner, afut-fuzz) and on the reference model (fuzzmodel.py); their
event traces must be equal.  See README.md.

    fuzz.py run --runner PATH [--seeds A:B] [--jobs N]
        generate programs for seeds A..B-1, compute the model's traces,
        have the runner check afut against them; on a failure, shrink
        it and print a reproducer.  Exit 1 if any failed.
    fuzz.py batch --seeds A:B -o FILE
        write programs and expected hashes for the runner's --batch.
    fuzz.py show SEED|FILE [--runner PATH] [--asyncio]
        print the program, the model's trace, and with --runner the
        first difference from afut's (with --asyncio: the faithful
        model's, from real asyncio).
    fuzz.py shrink SEED|FILE --runner PATH   minimal failing program
    fuzz.py oracle [--seeds A:B] [--jobs N]
        check the model itself against real asyncio (asyncio_oracle.py).
    fuzz.py selftest
        the model still computes the regressions' expected traces, and
        asyncio agrees with it there and on 300 random programs.

By default the model reproduces afut's known bugs (fuzzmodel.py:
KNOWN_DEVIATIONS) so that runs look for new ones; --strict turns that off.
"""

import argparse
import os
import subprocess
import sys
import tempfile
import time

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import fuzzinterp  # noqa: E402
import fuzzprog    # noqa: E402


MODEL_TIMEOUT = 30  # seconds for one program: a hang is a failure


def model_trace(prog):
    return fuzzinterp.trace_text(fuzzinterp.run_model(prog))


def parse_seeds(spec):
    if ':' in spec:
        a, b = spec.split(':')
        return range(int(a), int(b))
    return [int(s) for s in spec.split(',')]


def generate(seed):
    import fuzzmodel
    return fuzzprog.generate(seed, avoid=fuzzmodel.DEVIATIONS)


def load(arg):
    """A program: from a seed, or a file (a .prog, or a batch record)."""
    if os.path.exists(arg):
        with open(arg) as f:
            return fuzzprog.parse(f.read())
    return generate(int(arg))


def batch_record(seed, prog):
    text = prog.text()
    return 'P %s\n%sH %s\n' % (seed, text, fuzzinterp.trace_hash(model_trace(prog)))


def run_runner_trace(runner, prog):
    """afut's trace of prog, and whether the runner saw a violation."""
    with tempfile.NamedTemporaryFile('w', suffix='.prog', delete=False) as f:
        f.write(prog.text())
        path = f.name
    try:
        p = subprocess.run([runner, '--trace', path], capture_output=True,
                           text=True, timeout=60)
    finally:
        os.unlink(path)
    if p.returncode not in (0, 1):
        return ('runner exit %d\n%s%s' % (p.returncode, p.stdout, p.stderr[-4000:]),
                True)
    return p.stdout + p.stderr, p.returncode == 1


def first_difference(a, b, context=6):
    la, lb = a.splitlines(), b.splitlines()
    i = 0
    while i < len(la) and i < len(lb) and la[i] == lb[i]:
        i += 1
    if i == len(la) and i == len(lb):
        return None
    out = ['  (first difference at line %d)' % (i + 1)]
    for j in range(max(0, i - context), i):
        out.append('    ' + la[j])
    out.append('  expected (model):')
    out += ['  - ' + x for x in la[i:i + context]] or ['  - (end)']
    out.append('  got (afut):')
    out += ['  + ' + x for x in lb[i:i + context]] or ['  + (end)']
    return '\n'.join(out)


def fails(runner, prog):
    try:
        expected = model_trace(prog)
    except Exception as e:  # a program the model cannot run: not a repro
        print('model error on a candidate: %r' % e, file=sys.stderr)
        return False
    got, violated = run_runner_trace(runner, prog)
    return violated or got != expected


def report(runner, seed, prog, shrink=True, strict=False):
    print('=' * 72)
    print('FAILED: seed %s' % seed)
    if shrink:
        small = fuzzprog.shrink(prog, lambda p: fails(runner, p))
        small.seed = seed
    else:
        small = prog
    expected = model_trace(small)
    got, violated = run_runner_trace(runner, small)
    print('minimal program (%d ops; save it as seed-%s.prog and run '
          '`fuzz.py show%s seed-%s.prog --runner %s`):'
          % (small.n_ops(), seed, ' --strict' if strict else '', seed, runner))
    print(small.text())
    diff = first_difference(expected, got)
    if violated:
        print('afut broke an invariant:')
        print('\n'.join('  ' + l for l in got.splitlines() if 'VIOLATION' in l))
    if diff:
        print(diff)
    print('full traces: model, then afut')
    print(expected)
    print('----')
    print(got)
    sys.stdout.flush()
    return small


class _Slow(Exception):
    pass


def _alarm(signum, frame):
    raise _Slow()


def _worker_batch(args):
    seeds, runner = args
    import signal
    signal.signal(signal.SIGALRM, _alarm)
    records, failed = [], []
    for s in seeds:
        signal.alarm(MODEL_TIMEOUT)
        try:
            records.append(batch_record(s, generate(s)))
        except _Slow:
            failed.append((s, 'the model took over %d s' % MODEL_TIMEOUT))
        finally:
            signal.alarm(0)
    try:
        p = subprocess.run([runner, '--batch', '-'], input=''.join(records),
                           capture_output=True, text=True,
                           timeout=60 + 0.5 * len(records))
    except subprocess.TimeoutExpired:
        return len(seeds), failed + [(seeds[0], 'runner died: timed out on '
                                      'seeds %d..%d' % (seeds[0], seeds[-1]))]
    done = None
    for line in p.stdout.splitlines():
        if line.startswith('FAIL '):
            parts = line.split(' ', 2)
            failed.append((int(parts[1]), parts[2]))
        elif line.startswith('DONE '):
            done = int(line.split()[1])
    if done != len(records):
        failed.append((seeds[0], 'runner died (exit %d) in this chunk: %s'
                       % (p.returncode, p.stderr[-2000:])))
    return len(seeds), failed


def chunks(seeds, size):
    seeds = list(seeds)
    for i in range(0, len(seeds), size):
        yield seeds[i:i + size]


def cmd_run(a):
    if a.skip_unless_env and not os.environ.get(a.skip_unless_env):
        print('skipped: %s is not set' % a.skip_unless_env)
        return 77
    seeds = parse_seeds(a.seeds)
    t0 = time.time()
    total = 0
    failures = []
    work = [(c, a.runner) for c in chunks(seeds, a.chunk)]
    if a.jobs > 1:
        import multiprocessing
        with multiprocessing.Pool(a.jobs) as pool:
            results = pool.imap(_worker_batch, work)
            for n, failed in results:
                total += n
                failures += failed
                if a.progress and total % (a.chunk * 20) == 0:
                    print('  %d programs, %d failed, %.0f s' % (
                        total, len(failures), time.time() - t0), flush=True)
    else:
        for w in work:
            n, failed = _worker_batch(w)
            total += n
            failures += failed
    dt = time.time() - t0
    print('%d programs (seeds %s), %d failed, %.1f s' % (total, a.seeds, len(failures), dt))
    for seed, why in failures[:50]:
        print('  seed %s: %s' % (seed, why))
    if len(failures) > 50:
        print('  ...')
    if a.failures:
        with open(a.failures, 'w') as f:
            for seed, why in failures:
                f.write('%s %s\n' % (seed, why))
    for seed, why in failures[:a.max_reports]:
        if why.startswith('runner died'):
            continue
        report(a.runner, seed, generate(seed), shrink=not a.no_shrink,
               strict=a.strict)
    return 1 if failures else 0


def cmd_batch(a):
    with open(a.output, 'w') as f:
        for s in parse_seeds(a.seeds):
            f.write(batch_record(s, generate(s)))
    return 0


def cmd_show(a):
    if a.asyncio:
        # asyncio is compared with the faithful model (as --strict).
        import fuzzmodel
        fuzzmodel.DEVIATIONS.clear()
    prog = load(a.program)
    print(prog.text())
    expected = model_trace(prog)
    if a.asyncio:
        import asyncio_oracle
        got = fuzzinterp.trace_text(asyncio_oracle.run_asyncio(prog))
        diff = asyncio_oracle.compare(expected, got)
        print(expected)
        print('asyncio:', 'same' if diff is None else '\n' + diff)
        if diff is not None:
            print(got)
        return 0 if diff is None else 1
    if not a.runner:
        print(expected)
        return 0
    got, violated = run_runner_trace(a.runner, prog)
    diff = first_difference(expected, got)
    if diff is None and not violated:
        print(expected)
        print('afut: same trace')
        return 0
    print('model:')
    print(expected)
    print('afut:')
    print(got)
    if diff:
        print(diff)
    return 1


def cmd_shrink(a):
    prog = load(a.program)
    if not fails(a.runner, prog):
        print('does not fail')
        return 0
    report(a.runner, prog.seed, prog, strict=a.strict)
    return 1


def cmd_selftest(a):
    import glob
    import asyncio_oracle
    import fuzzmodel
    fuzzmodel.DEVIATIONS.clear()
    here = os.path.dirname(os.path.abspath(__file__))
    bad = 0
    progs = sorted(glob.glob(os.path.join(here, 'regressions', '*.prog')))
    for path in progs:
        with open(path) as f:
            prog = fuzzprog.parse(f.read())
        with open(path[:-5] + '.expected') as f:
            expected = f.read()
        got = model_trace(prog)
        if got != expected:
            bad += 1
            print('%s: the model no longer computes the expected trace' % path)
            print(first_difference(expected, got))
        diff = asyncio_oracle.compare(got, fuzzinterp.trace_text(
            asyncio_oracle.run_asyncio(prog)))
        if diff is not None:
            bad += 1
            print('%s: asyncio disagrees with the model' % path)
            print(diff)
    print('%d regression programs checked' % len(progs))
    return asyncio_oracle.main(range(0, 300), 1, 1) or (1 if bad else 0)


def cmd_oracle(a):
    import asyncio_oracle
    return asyncio_oracle.main(parse_seeds(a.seeds), a.jobs, a.max_reports)


def main():
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest='cmd', required=True)
    p = sub.add_parser('run')
    p.add_argument('--strict', action='store_true',
                   help='no known afut deviations in the model')
    p.add_argument('--runner', required=True)
    p.add_argument('--seeds', default='0:2000')
    p.add_argument('--jobs', type=int, default=os.cpu_count() or 1)
    p.add_argument('--chunk', type=int, default=500)
    p.add_argument('--max-reports', type=int, default=3)
    p.add_argument('--no-shrink', action='store_true')
    p.add_argument('--progress', action='store_true')
    p.add_argument('--failures', help='write every failing seed to this file')
    p.add_argument('--skip-unless-env', metavar='VAR',
                   help='exit 77 (skipped) unless VAR is set')
    p = sub.add_parser('batch')
    p.add_argument('--strict', action='store_true',
                   help='no known afut deviations in the model')
    p.add_argument('--seeds', default='0:2000')
    p.add_argument('-o', '--output', required=True)
    p = sub.add_parser('show')
    p.add_argument('--strict', action='store_true',
                   help='no known afut deviations in the model')
    p.add_argument('program')
    p.add_argument('--runner')
    p.add_argument('--asyncio', action='store_true')
    p = sub.add_parser('shrink')
    p.add_argument('--strict', action='store_true',
                   help='no known afut deviations in the model')
    p.add_argument('program')
    p.add_argument('--runner', required=True)
    p = sub.add_parser('selftest')
    p = sub.add_parser('oracle')
    p.add_argument('--seeds', default='0:2000')
    p.add_argument('--jobs', type=int, default=os.cpu_count() or 1)
    p.add_argument('--max-reports', type=int, default=3)
    a = ap.parse_args()
    import fuzzmodel
    if not getattr(a, 'strict', False):
        fuzzmodel.DEVIATIONS |= fuzzmodel.KNOWN_DEVIATIONS
    return {'run': cmd_run, 'batch': cmd_batch, 'show': cmd_show,
            'shrink': cmd_shrink, 'oracle': cmd_oracle,
            'selftest': cmd_selftest}[a.cmd](a)


if __name__ == '__main__':
    sys.exit(main())
