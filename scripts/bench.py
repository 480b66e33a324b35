#!/usr/bin/python3
"""Runs afut's benchmark suite (issue 6) and writes docs/performance.md.

  python3 scripts/bench.py            full run (N = 10^3 .. 10^6, 3 reps
                                      interleaved, medians): builds
                                      build-bench (buildtype=release),
                                      writes docs/performance.md
  python3 scripts/bench.py --quick    small N, one rep (what `meson test
                                      --benchmark` runs): writes
                                      build-bench/performance-quick.md

Options:
  --reps R          repetitions (median taken); default 3, 1 with --quick
  --build-dir DIR   where to build (default build-bench)
  --bin-dir DIR     use the bench programs built there; do not build
  --output FILE     where to write the Markdown
  --from-raw FILE   do not run: rebuild the Markdown from a saved raw log
  --max-n N         skip sizes above N

Every program prints `BENCH key=value ...` lines; the raw log (all output)
is saved beside the output as <output>.raw.txt.  Ratios are taken within
this one run: the machine is shared, absolute times drift, ratios less.
"""

import argparse
import os
import platform
import re
import shlex
import statistics
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PYTHON = "/usr/bin/python3" if os.path.exists("/usr/bin/python3") else sys.executable
NOTES = os.path.join(ROOT, "bench", "performance-notes.md")


def sh(cmd, **kw):
    return subprocess.run(cmd, check=True, text=True, **kw)


def out(cmd):
    try:
        return subprocess.run(cmd, capture_output=True, text=True,
                              shell=isinstance(cmd, str)).stdout.strip()
    except OSError:
        return "?"


def build(build_dir):
    if not os.path.exists(os.path.join(build_dir, "build.ninja")):
        sh(["meson", "setup", build_dir, "--buildtype=release"], cwd=ROOT,
           stdout=subprocess.DEVNULL)
    else:
        sh(["meson", "configure", build_dir, "--buildtype=release"], cwd=ROOT,
           stdout=subprocess.DEVNULL)
    sh(["ninja", "-C", build_dir, "bench/bench-suite", "bench/bench-glib",
        "bench/bench-fd-scaling", "bench/bench-fiber"],
       cwd=ROOT, stdout=subprocess.DEVNULL)
    return os.path.join(build_dir, "bench")


def run_and_log(cmd, log):
    """Runs cmd, echoing and logging its output; returns (lines, rc)."""
    print("+ " + " ".join(shlex.quote(c) for c in cmd), flush=True)
    log.write("+ " + " ".join(shlex.quote(c) for c in cmd) + "\n")
    p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                         text=True, cwd=ROOT)
    lines = []
    for line in p.stdout:
        lines.append(line)
        log.write(line)
        log.flush()
        if not line.startswith("BENCH "):
            sys.stdout.write(line)
            sys.stdout.flush()
    return lines, p.wait()


def parse(lines):
    recs = []
    for line in lines:
        if not line.startswith("BENCH "):
            continue
        d = {}
        for kv in line.split()[1:]:
            k, _, v = kv.partition("=")
            try:
                d[k] = float(v) if k not in ("workload", "impl") else v
            except ValueError:
                d[k] = v
        recs.append(d)
    return recs


class Results:
    def __init__(self, recs):
        self.groups = {}
        self.failed = []
        for r in recs:
            key = (r.get("workload"), r.get("impl"), int(r.get("n", 0)))
            if r.get("ok", 1) != 1:
                self.failed.append(key)
                continue
            self.groups.setdefault(key, []).append(r)

    def get(self, workload, impl, n, field="ns_per_op"):
        rs = self.groups.get((workload, impl, int(n)))
        if not rs:
            return None
        vals = [r[field] for r in rs if isinstance(r.get(field), float)]
        return statistics.median(vals) if vals else None

    def reps(self, workload, impl, n):
        return len(self.groups.get((workload, impl, int(n)), []))

    def impls(self, workload):
        seen = []
        for (w, i, _n) in self.groups:
            if w == workload and i not in seen:
                seen.append(i)
        return seen

    def sizes(self, workload):
        return sorted({n for (w, _i, n) in self.groups if w == workload})


def pow10(n):
    n = m = int(n)
    k = 0
    while m >= 10 and m % 10 == 0:
        m //= 10
        k += 1
    return f"10^{k}" if m == 1 else str(n)


def fmt_ns(v):
    if v is None:
        return "–"
    if v >= 1e6:
        return f"{v / 1e6:.2f} ms"
    if v >= 1e4:
        return f"{v / 1e3:.1f} µs"
    if v >= 1e3:
        return f"{v / 1e3:.2f} µs"
    if v >= 100:
        return f"{v:.0f} ns"
    return f"{v:.1f} ns"


def fmt_b(v):
    return "–" if v is None else f"{v:.0f} B"


def fmt_kb(v):
    return "–" if v is None else f"{v / 1024:.1f} MiB"


TABLES = [
    ("resolve_cb", "1. resolve → done callback, batched",
     "N futures: new + add_done_callback, all resolved, then dispatched and "
     "freed; per future. `c-future-queue` is the floor: a 32-byte "
     "hand-written future on a plain C ready queue drained inside one GLib "
     "dispatch. `g_idle_add` adds one idle per callback; `gtask` is "
     "`g_task_new` + `g_task_return_pointer` + the callback.",
     ["cpu_ns_per_op", "ns_per_op"]),
    ("await_done", "1b. await of an already-done future",
     "One task awaiting the same done future N times; per await.",
     ["cpu_ns_per_op", "ns_per_op"]),
    ("resolve_task", "1c. resolve → awaiting task resumed",
     "N tasks each awaiting its own future: resolve all, run until every "
     "task resumed and ended; per task.", ["cpu_ns_per_op", "ns_per_op"]),
    ("yield_chain", "2a. one task yielding N times",
     "Per yield. afut: `AFUT_YIELD`, and `-sleep0` = `AFUT_AWAIT (task, "
     "afut_sleep (0))`; `c-queue`: a callback re-queuing itself on a plain "
     "C queue drained in one GLib dispatch (the floor); `g_idle_add`: each "
     "step adds the next idle (one GLib turn per step); Python: "
     "`await asyncio.sleep(0)`.", ["cpu_ns_per_op", "ns_per_op"]),
    ("tasks_2yields", "2b. N tasks that sleep(0) twice, gathered",
     "Spawn N tasks, each `sleep(0)` twice, gather them, run to the end; "
     "per task.", ["cpu_ns_per_op", "ns_per_op"]),
    ("gather", "3. gather of N already-running tasks",
     "N tasks already suspended on one shared future: gather them, resolve "
     "the future, run until the gather is done; per child.",
     ["cpu_ns_per_op", "ns_per_op"]),
    ("sleeps", "4a. N concurrent sleeping tasks (10 ms + (i mod 1000) µs)",
     "CPU ns per timer (user + system: adding, running, freeing; the wall "
     "time is ~10 ms of sleeping whatever N), and bytes per pending timer "
     "(peak RSS delta / N). `c-heap-gsource`: a bare binary heap of "
     "{deadline, callback} in one GSource (the floor); `afut-glib-bare`: "
     "bare sleep futures with a done callback; `-tasks`: a task per sleep, "
     "gathered; `g_timeout`: one `g_timeout_source` per timer "
     "(10 + (i mod 11) ms).", ["cpu_ns_per_op", "bytes_per_item"]),
    ("sleeps_wide", "4b. the same, deadlines spread over a second "
     "(10 + (i mod 1000) ms)",
     "Here GLib iterates while timers are pending: `g_timeout` walks every "
     "source per iteration. CPU ns per timer, and wall time.",
     ["cpu_ns_per_op", "wall_ms"]),
    ("glib_iteration", "4c. one GLib main-loop iteration with N pending "
     "timers",
     "`g_main_context_iteration (ctx, FALSE)`, median of 9 blocks; "
     "`idle_ns` is an idle afut loop's context measured in the same "
     "process.", ["ns_per_op", "idle_ns"]),
    ("pingpong", "5. socketpair ping-pong, one byte each way",
     "Wall time per round trip (median of the repetitions). afut: "
     "`-fd_wait` = `afut_fd_wait` + read()/write(); `-fd_read` = "
     "`afut_fd_read` / `afut_fd_write_all`. `raw-poll` / `raw-epoll`: "
     "hand-written poll() and epoll loops over the two fds (the floors). "
     "Python: asyncio.Protocol transports.", ["ns_per_op", "cpu_ns_per_op"]),
    ("fd_scaling", "5b. an fd event while N other sockets are awaited and "
     "idle",
     "One socketpair ping-pongs a byte between two tasks (`afut_fd_wait` + "
     "read()/write()) while N idle sockets are awaited; N = the column. "
     "Per round trip, median of the repetitions, each about a second. "
     "`g_unix_fd_add`: a g_unix_fd source per socket on one context; "
     "`raw-poll`: a hand-written poll() loop over all N + 2 fds; Python: "
     "`loop.sock_recv` / `sock_sendall` tasks, the idle ones in "
     "`sock_recv`. Target (issue 17): afut at 5000 within 1.2x of 10.",
     ["cpu_ns_per_op", "ns_per_op"]),
    ("cancel_gather", "6. cancelling a gather over N children",
     "N tasks sleeping an hour, gathered; cancel the gather and run until "
     "it is done: time per child; bytes per child that the gather itself "
     "adds (RSS delta of creating it).",
     ["cpu_ns_per_op", "ns_per_op", "bytes_per_item"]),
    ("hop", "7a. fibers: a baton hop between two coroutines",
     "Two coroutines hand a baton through one-shot futures (each waits on "
     "its own, makes a new one, resolves the other's); per hop. `fiber-*`: "
     "AfutFiber with `afut_await()`; `task-*`: stackless tasks with "
     "`AFUT_AWAIT`; `g_idle_add`: a callback per hop.",
     ["cpu_ns_per_op", "ns_per_op"]),
    ("yield", "7b. fibers: one coroutine yielding N times",
     "`afut_fiber_yield()` against `AFUT_YIELD()`; per yield.",
     ["cpu_ns_per_op", "ns_per_op"]),
    ("spawn_end", "7c. fibers: N coroutines that return at once",
     "Spawn, first step and end; per coroutine (a fiber's stack from the "
     "pool).", ["cpu_ns_per_op", "ns_per_op"]),
    ("spawn_resolve", "7d. fibers: N coroutines on their own futures",
     "Spawned and run to their await, then every future resolved and the "
     "loop run until all ended; per coroutine (the second round on the "
     "loop, stacks pooled).", ["cpu_ns_per_op", "ns_per_op"]),
    ("pending", "7e. fibers: N coroutines suspended at once",
     "Bytes per coroutine (RSS delta / N) and the time to make them and "
     "run them to their await, then to end them all.",
     ["bytes_per_item", "cpu_ns_per_op"]),
    ("memory", "Memory: N pending items",
     "RSS delta / N with N items pending (creation time per item beside). "
     "afut-task: a task (header + an 8-byte struct) awaiting a shared "
     "future; -task-sleep: awaiting a sleep of its own.",
     ["bytes_per_item", "ns_per_op"]),
]

FIELD_NAMES = {
    "ns_per_op": "wall",
    "cpu_ns_per_op": "CPU",
    "bytes_per_item": "bytes/item",
    "wall_ms": "wall",
    "idle_ns": "idle loop",
}


def fmt_field(field, v):
    if field == "bytes_per_item":
        return fmt_b(v)
    if field == "wall_ms":
        return "–" if v is None else f"{v:.0f} ms"
    return fmt_ns(v)


def table(res, workload, fields):
    impls = res.impls(workload)
    sizes = res.sizes(workload)
    if not impls:
        return "_(not run)_\n"
    head = ["impl"]
    for f in fields:
        for n in sizes:
            head.append(f"{FIELD_NAMES[f]} N={pow10(n)}" if len(fields) > 1
                        else f"N={pow10(n)}")
    head.append(f"peak RSS (N={pow10(sizes[-1])})")
    lines = ["| " + " | ".join(head) + " |",
             "|" + "---|" * len(head)]
    for impl in impls:
        row = [f"`{impl}`"]
        for f in fields:
            for n in sizes:
                row.append(fmt_field(f, res.get(workload, impl, n, f)))
        n_last = max([n for n in sizes if res.get(workload, impl, n) is not
                      None] or [sizes[-1]])
        row.append(fmt_kb(res.get(workload, impl, n_last, "peak_rss_kb")))
        lines.append("| " + " | ".join(row) + " |")
    return "\n".join(lines) + "\n"


# ---- targets ----


def ratio(a, b):
    if a is None or b is None or b == 0:
        return None
    return a / b


def verdict(ok):
    return "**met**" if ok else "**missed**"


def targets(res):
    """Returns Markdown lines, one per target, with the measured figures."""
    T = []
    sizes = res.sizes("resolve_cb")
    big = sizes[-1] if sizes else None

    def worst(workload, impl, peer, ns, field="cpu_ns_per_op", inverse=False):
        """max over ns of impl/peer (or peer/impl's min when inverse)."""
        rs = []
        for n in ns:
            r = ratio(res.get(workload, impl, n, field),
                      res.get(workload, peer, n, field))
            if r is not None:
                rs.append((n, r))
        if not rs:
            return None, []
        if inverse:  # how many times faster impl is: peer/impl, min
            inv = [(n, 1 / r) for n, r in rs]
            return min(r for _n, r in inv), inv
        return max(r for _n, r in rs), rs

    def per_n(rs, suffix="x"):
        return ", ".join(f"{pow10(n)}: {r:.2f}{suffix}" for n, r in rs)

    # 1. resolve -> callback
    for impl in ("afut-embedded", "afut-glib"):
        w, rs = worst("resolve_cb", impl, "c-future-queue", sizes)
        if w is not None:
            T.append(f"- resolve → callback, batched, `{impl}` ≤ 2x the "
                     f"minimal future on a plain queue: worst {w:.2f}x "
                     f"({per_n(rs)}) — {verdict(w <= 2)}")
        for peer, need in (("g_idle_add", 2), ("gtask", 4)):
            w, rs = worst("resolve_cb", impl, peer, sizes, inverse=True)
            if w is not None:
                T.append(f"- `{impl}` ≥ {need}x faster than `{peer}`: "
                         f"at least {w:.1f}x ({per_n(rs)}) — "
                         f"{verdict(w >= need)}")
    for impl in ("afut-embedded", "afut-glib"):
        ns = res.sizes("await_done")
        vals = [(n, res.get("await_done", impl, n, "cpu_ns_per_op"))
                for n in ns]
        vals = [(n, v) for n, v in vals if v is not None]
        if vals:
            n_big, v_big = vals[-1]
            uv = res.get("await_done", "uvloop", n_big, "cpu_ns_per_op")
            T.append(f"- await of a done future, `{impl}` ≤ 20 ns, no loop "
                     f"turn: {v_big:.1f} ns at N={pow10(n_big)} "
                     f"({', '.join(f'{pow10(n)}: {v:.1f}' for n, v in vals)}"
                     f"; uvloop {fmt_ns(uv)}) — {verdict(v_big <= 20)}")

    # 2. task steps
    ns = res.sizes("yield_chain")
    for impl in ("afut-embedded", "afut-glib", "afut-embedded-sleep0",
                 "afut-glib-sleep0"):
        w, rs = worst("yield_chain", impl, "c-queue", ns)
        if w is None:
            continue
        last = rs[-1][1]
        T.append(f"- one task yielding N times, `{impl}` ≤ 10x the plain "
                 f"queue chain per yield: {last:.2f}x at N={pow10(rs[-1][0])} "
                 f"({fmt_ns(res.get('yield_chain', impl, rs[-1][0], 'cpu_ns_per_op'))}"
                 f" vs {fmt_ns(res.get('yield_chain', 'c-queue', rs[-1][0], 'cpu_ns_per_op'))}; "
                 f"{per_n(rs)}) — {verdict(last <= 10)}"
                 + ("" if "sleep0" not in impl else " (sleep(0) form)"))
    ns = res.sizes("tasks_2yields")
    for impl in ("afut-embedded", "afut-glib"):
        w, rs = worst("tasks_2yields", impl, "uvloop", ns, inverse=True)
        if w is not None:
            T.append(f"- N tasks with two sleep(0) each, `{impl}` ≥ 20x "
                     f"faster than uvloop at every N: at least {w:.1f}x "
                     f"({per_n(rs)}) — {verdict(w >= 20)}")

    # 4. timers
    ns = res.sizes("sleeps")
    for impl in ("afut-glib-bare", "afut-glib-tasks", "afut-embedded-tasks"):
        w, rs = worst("sleeps", impl, "c-heap-gsource", ns, "cpu_ns_per_op")
        if w is None:
            continue
        last = rs[-1][1]
        T.append(f"- sleeping {'tasks' if 'tasks' in impl else 'futures'}, "
                 f"`{impl}` ≤ 1.5x a bare heap's CPU per timer: "
                 f"{last:.2f}x at N={pow10(rs[-1][0])} ({per_n(rs)}) — "
                 f"{verdict(last <= 1.5)}"
                 + (" (includes spawning a task and a gather slot per "
                    "timer)" if "tasks" in impl else ""))
    for impl in ("afut-glib-bare-sleeps", "afut-glib-tasks"):
        for n in res.sizes("glib_iteration"):
            v = res.get("glib_iteration", impl, n)
            idle = res.get("glib_iteration", impl, n, "idle_ns")
            empty = res.get("glib_iteration", impl, n, "empty_ns")
            if v is None or idle is None:
                continue
            r = v / idle
            T.append(f"- one GLib iteration with {pow10(n)} pending "
                     f"{'sleeps' if 'bare' in impl else 'tasks in sleeps'} "
                     f"within 1.3x of none: {fmt_ns(v)} vs {fmt_ns(idle)} "
                     f"(idle afut loop) = {r:.2f}x; empty context "
                     f"{fmt_ns(empty)} — {verdict(r <= 1.3)}")
    n6 = max(res.sizes("sleeps") or [0])
    if n6:
        ok = res.reps("sleeps", "afut-glib-tasks", n6) > 0 and \
            ("sleeps", "afut-glib-tasks", n6) not in res.failed
        T.append(f"- {pow10(n6)} concurrent sleeping tasks run to completion "
                 f"on the GLib adapter: "
                 f"{'yes' if ok else 'no'}, "
                 f"{fmt_ns(res.get('sleeps', 'afut-glib-tasks', n6, 'wall_ms') * 1e6 if ok else None)} "
                 f"wall, peak RSS "
                 f"{fmt_kb(res.get('sleeps', 'afut-glib-tasks', n6, 'peak_rss_kb'))}"
                 f" — {verdict(ok)}")

    # 6. gather with cancellation
    ns = res.sizes("cancel_gather")
    for impl in ("afut-embedded", "afut-glib"):
        vals = [(n, res.get("cancel_gather", impl, n, "cpu_ns_per_op"),
                 res.get("cancel_gather", impl, n, "bytes_per_item"))
                for n in ns]
        vals = [v for v in vals if v[1] is not None]
        if not vals:
            continue
        wt = max(v[1] for v in vals)
        wb = max(v[2] for v in vals if v[0] >= 10000) if any(
            v[0] >= 10000 for v in vals) else max(v[2] for v in vals)
        T.append(f"- gather with cancellation, `{impl}` ≤ 0.5 µs per child: "
                 f"worst {fmt_ns(wt)} ("
                 + ", ".join(f"{pow10(n)}: {fmt_ns(t)}" for n, t, _b in vals)
                 + f") — {verdict(wt <= 500)}")
        T.append(f"- … and ≤ 128 bytes per child (what the gather adds): "
                 f"worst {wb:.0f} B at N ≥ 10^4 — {verdict(wb <= 128)}")

    # memory
    ns = res.sizes("memory")
    if ns:
        n = ns[-1]
        fut = res.get("memory", "afut-future", n, "bytes_per_item")
        slp = res.get("memory", "afut-sleep", n, "bytes_per_item")
        task = res.get("memory", "afut-task", n, "bytes_per_item")
        hdr = res.get("sizeof", "AfutTask", 1, "bytes_per_item")
        fsz = res.get("sizeof", "AfutFuture", 1, "bytes_per_item")
        if fut is not None:
            T.append(f"- a pending future ≤ 64 bytes: {fut:.0f} B per future "
                     f"at N={pow10(n)} (sizeof (AfutFuture) = {fsz:.0f}, "
                     f"plus malloc's header) — {verdict(fut <= 64)}")
        if slp is not None:
            T.append(f"- a pending sleep ≤ 64 bytes with its heap slot: "
                     f"{slp:.0f} B at N={pow10(n)} — {verdict(slp <= 64)}")
        if hdr is not None:
            T.append(f"- a task header ≤ 128 bytes: sizeof (AfutTask) = "
                     f"{hdr:.0f} — {verdict(hdr <= 128)}; a whole pending "
                     f"task (header, 8-byte struct, name, malloc) "
                     f"{fmt_b(task)}")
        for py in ("asyncio-task", "uvloop-task"):
            p = res.get("memory", py, n, "bytes_per_item")
            if p is not None and hdr:
                T.append(f"- a task header ≥ 7x smaller than a Python task "
                         f"(`{py}`, awaiting a future): {p:.0f} B / "
                         f"{hdr:.0f} B = {p / hdr:.1f}x — "
                         f"{verdict(p / hdr >= 7)}")
            if p is not None and task:
                T.append(f"- an afut task ≥ 7x smaller than a Python task "
                         f"(`{py}`): {p:.0f} B / {task:.0f} B = "
                         f"{p / task:.1f}x — {verdict(p / task >= 7)}")

    # 5. ping-pong
    for impl in ("afut-glib-fd_wait", "afut-embedded-fd_wait",
                 "afut-glib-fd_read", "afut-embedded-fd_read"):
        for n in res.sizes("pingpong"):
            r = ratio(res.get("pingpong", impl, n),
                      res.get("pingpong", "raw-poll", n))
            u = ratio(res.get("pingpong", "uvloop", n),
                      res.get("pingpong", impl, n))
            if r is None:
                continue
            # Beside the target, the floors of the design: a bare epoll
            # loop (afut's on Linux), and GLib's own fd source for the
            # adapter (every GLib iteration's cost is in it).
            e = ratio(res.get("pingpong", impl, n),
                      res.get("pingpong", "raw-epoll", n))
            g = ratio(res.get("pingpong", impl, n),
                      res.get("pingpong", "g_unix_fd_add", n))
            floors = []
            if e is not None:
                floors.append(f"{e:.2f}x a raw epoll loop")
            if g is not None and "glib" in impl:
                floors.append(f"{g:.2f}x `g_unix_fd_add`")
            T.append(f"- fd ping-pong ({pow10(n)} round trips), `{impl}` ≤ "
                     f"1.15x raw poll() per round trip: {r:.2f}x "
                     f"({fmt_ns(res.get('pingpong', impl, n))} vs "
                     f"{fmt_ns(res.get('pingpong', 'raw-poll', n))}"
                     + (f"; {', '.join(floors)}" if floors else "")
                     + f") — {verdict(r <= 1.15)}"
                     + (f"; ≥ 1.4x uvloop's protocol: {u:.2f}x — "
                        f"{verdict(u >= 1.4)}" if u is not None else ""))
    # 5b. fd scaling
    ns = res.sizes("fd_scaling")
    if 10 in ns and len(ns) > 1:
        big = max(ns)
        for impl in ("afut-embedded", "afut-glib", "g_unix_fd_add",
                     "raw-poll", "asyncio", "uvloop"):
            lo = res.get("fd_scaling", impl, 10, "cpu_ns_per_op")
            hi = res.get("fd_scaling", impl, big, "cpu_ns_per_op")
            if lo is None or hi is None:
                continue
            r = hi / lo
            line = (f"- an fd event with {big} idle awaited sockets over 10, "
                    f"`{impl}`: {r:.2f}x ({fmt_ns(hi)} vs {fmt_ns(lo)} CPU "
                    f"per round trip)")
            if impl.startswith("afut"):
                line += f" — target ≤ 1.2x: {verdict(r <= 1.2)}"
            T.append(line)
    # 7. fibers against stackless tasks (issue 16)
    for workload, need, what in (("hop", 1.5, "a baton hop"),
                                 ("yield", 2, "a yield"),
                                 ("spawn_end", 2, "spawn, step and end")):
        for loop in ("embedded", "glib"):
            for n in res.sizes(workload):
                r = ratio(res.get(workload, "fiber-" + loop, n,
                                  "cpu_ns_per_op"),
                          res.get(workload, "task-" + loop, n,
                                  "cpu_ns_per_op"))
                if r is None:
                    continue
                T.append(f"- fibers, {what} ({pow10(n)}), `{loop}` ≤ "
                         f"{need}x a stackless task's CPU: {r:.2f}x "
                         f"({fmt_ns(res.get(workload, 'fiber-' + loop, n, 'cpu_ns_per_op'))}"
                         f" vs {fmt_ns(res.get(workload, 'task-' + loop, n, 'cpu_ns_per_op'))})"
                         f" — {verdict(r <= need)}")
    return T


def machine():
    cpu = "?"
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    return [
        f"- CPUs (`nproc`): {out(['nproc'])}; CPU model: {cpu}",
        f"- kernel: {platform.system()} {platform.release()}",
        f"- GLib {out(['pkg-config', '--modversion', 'glib-2.0'])}; "
        f"{out(['cc', '--version']).splitlines()[0] if out(['cc', '--version']) else 'cc ?'}",
        f"- {out([PYTHON, '--version'])} ({PYTHON}); uvloop "
        + out([PYTHON, "-c", "import uvloop; print(uvloop.__version__)"]),
        f"- load average at start: {os.getloadavg()[0]:.2f}",
    ]


def write_doc(path, res, command, mach, duration, reps, quick, failed,
              load_end, only=None):
    L = []
    L.append("# afut performance\n")
    L.append("Generated by `scripts/bench.py` from one run of the benchmark "
             "suite (issue 6): afut on its embedded loop and on the GLib "
             "adapter, beside raw GLib, GTask, CPython asyncio and uvloop, "
             "all measured in the same run on the same machine.\n")
    L.append("## Run\n")
    L.append(f"- command: `{command}` ({'quick' if quick else 'full'} mode, "
             f"{duration:.0f} s)")
    L.append(f"- each case in a fresh process (fork, or a fresh "
             f"interpreter for Python), so its peak RSS is its own; "
             f"{reps} repetition(s), interleaved across implementations, "
             f"and every figure is the **median** (Python at N = 10^6: one "
             f"run)")
    L.append("- build: meson, `buildtype=release` (-O3), in its own build "
             "dir")
    L.extend(mach)
    L.append(f"- load average at the end: {load_end}")
    L.append("")
    L.append("The machine is shared (2 cores, other builds running): "
             "absolute times are noisy and drift between runs. Compare "
             "**ratios within this run**; the targets below are judged "
             "that way. Where wall time and CPU time differ much, the "
             "process was waiting for a core.\n")
    if failed:
        L.append("**Cases that failed or timed out:** "
                 + ", ".join(f"{w}/{i} N={pow10(n)}" for w, i, n in failed)
                 + "\n")
    L.append("## Targets (issue 17)\n" if only else "## Targets (issues 6, 16 and 17)\n")
    L.extend(targets(res))
    L.append("")
    L.append("## Tables\n")
    for workload, title, desc, fields in TABLES:
        if only and workload not in only.split(","):
            continue
        L.append(f"### {title}\n")
        L.append(desc + "\n")
        L.append(table(res, workload, fields))
    if os.path.exists(NOTES) and not only:
        with open(NOTES) as f:
            L.append(f.read())
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    with open(path, "w") as f:
        f.write("\n".join(L))
    print(f"wrote {path}")


# Which C program runs which workload (bench_asyncio.py runs them all).
PROGRAM_WORKLOADS = [
    ("resolve_cb", "await_done", "resolve_task", "yield_chain",
     "tasks_2yields", "gather", "cancel_gather", "memory"),
    ("sleeps", "sleeps_wide", "glib_iteration", "pingpong"),
    ("fd_scaling",),
    ("hop", "yield", "spawn_end", "spawn_resolve", "pending"),
]


def only_list(arg):
    known = [w for w, *_ in TABLES]
    ws = [w for w in arg.split(",") if w]
    for w in ws:
        if w not in known:
            raise argparse.ArgumentTypeError(
                f"unknown workload {w!r} (known: {', '.join(known)})")
    return ",".join(ws)


def main():
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--reps", type=int)
    ap.add_argument("--build-dir", default=os.path.join(ROOT, "build-bench"))
    ap.add_argument("--bin-dir")
    ap.add_argument("--output")
    ap.add_argument("--from-raw")
    ap.add_argument("--max-n", type=int)
    ap.add_argument("--only", type=only_list,
                    help="run only these workloads (comma-separated: "
                    + ", ".join(w for w, *_ in TABLES) + "); the output "
                    "then holds their tables and targets alone")
    a = ap.parse_args()
    reps = a.reps or (1 if a.quick else 3)
    if a.output is None:
        a.output = (os.path.join(a.build_dir, "performance-quick.md")
                    if a.quick else os.path.join(ROOT, "docs", "performance.md"))
    command = "python3 scripts/bench.py" + (" --quick" if a.quick else "") + \
        (f" --only {a.only}" if a.only else "") + \
        (f" --reps {a.reps}" if a.reps else "") + \
        (f" --max-n {a.max_n}" if a.max_n else "")
    mach = machine()
    t0 = time.time()
    load0 = os.getloadavg()[0]
    meta = {}
    if a.from_raw:
        with open(a.from_raw) as f:
            lines = f.readlines()
        rc = 0
        for line in lines:
            if line.startswith("# META "):
                meta = dict(kv.split("=", 1) for kv in line.split()[2:])
    else:
        bin_dir = a.bin_dir or build(a.build_dir)
        raw = a.output + ".raw.txt"
        common = (["--quick"] if a.quick else []) + ["--reps", str(reps)] + \
            (["--max-n", str(a.max_n)] if a.max_n else [])
        lines, rc = [], 0
        with open(raw, "w") as log:
            progs = [[os.path.join(bin_dir, "bench-suite")] + common,
                     [os.path.join(bin_dir, "bench-glib")] + common,
                     [os.path.join(bin_dir, "bench-fd-scaling")] + common,
                     # No --max-n: its sizes are its own.
                     [os.path.join(bin_dir, "bench-fiber")]
                     + (["--quick"] if a.quick else [])
                     + ["--reps", str(reps)],
                     [PYTHON, os.path.join(ROOT, "bench",
                                           "bench_asyncio.py")] + common]
            if a.only:
                # Each program, once per workload of its own asked for
                # (Python has none of the fiber ones).
                progs = [p + ["--only", w] for w in a.only.split(",")
                         for i, p in enumerate(progs)
                         if (w not in PROGRAM_WORKLOADS[3] if i == 4
                             else w in PROGRAM_WORKLOADS[i])]
            for cmd in progs:
                got, r = run_and_log(cmd, log)
                lines += got
                rc = rc or r
            meta = {"duration": f"{time.time() - t0:.0f}",
                    "load_start": f"{load0:.2f}",
                    "load_end": f"{os.getloadavg()[0]:.2f}",
                    "command": command.replace(" ", "+")}
            log.write("# META " + " ".join(f"{k}={v}" for k, v in
                                            meta.items()) + "\n")
        print(f"raw log: {raw}")
    res = Results(parse(lines))
    if meta:
        command = meta.get("command", command).replace("+", " ")
        mach = [m for m in mach if not m.startswith("- load average")]
        mach.append(f"- load average at start: {meta.get('load_start', '?')}")
    write_doc(a.output, res, command, mach,
              float(meta.get("duration", time.time() - t0)), reps, a.quick,
              res.failed, meta.get("load_end", f"{os.getloadavg()[0]:.2f}"),
              a.only)
    return 1 if rc else 0


if __name__ == "__main__":
    sys.exit(main())
