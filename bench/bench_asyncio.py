#!/usr/bin/python3
"""The suite's Python peers: the workloads of bench-suite.c and bench-glib.c
written with CPython asyncio and with uvloop (Debian's python3-uvloop).

Each case runs in a fresh interpreter (its peak RSS is its own) and prints
one line, as the C programs do:

  BENCH workload=W impl=asyncio|uvloop n=N rep=R ns_per_op=X
        cpu_ns_per_op=Y peak_rss_kb=K bytes_per_item=B ok=1

Usage: bench_asyncio.py [--quick] [--reps R] [--max-n N] [--impl asyncio,uvloop]
                        [--only WORKLOAD]
       bench_asyncio.py --case WORKLOAD IMPL N [REP]
"""

import asyncio
import gc
import os
import resource
import socket
import subprocess
import sys
import time

PAGE = os.sysconf("SC_PAGESIZE")


def rss_bytes():
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * PAGE


def peak_rss_kb():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss


class Meter:
    def __init__(self):
        self.ns = self.cpu = 0.0
        self.bytes_per_item = 0.0
        self.ok = True
        self.extra = ""

    def start(self):
        self.c0 = time.process_time_ns()
        self.t0 = time.perf_counter_ns()

    def stop(self, ops):
        t, c = time.perf_counter_ns(), time.process_time_ns()
        self.ns = (t - self.t0) / ops
        self.cpu = (c - self.c0) / ops

    def rss_start(self):
        self.rss0 = rss_bytes()

    def rss_stop(self, n):
        self.bytes_per_item = (rss_bytes() - self.rss0) / n


M = Meter()

# ---- 1. resolve -> continuation ----


async def resolve_cb(n):
    loop = asyncio.get_running_loop()
    done = loop.create_future()
    count = 0

    def cb(f):
        nonlocal count
        count += 1
        if count == n:
            done.set_result(None)

    M.start()
    futs = [loop.create_future() for _ in range(n)]
    for f in futs:
        f.add_done_callback(cb)
    for i, f in enumerate(futs):
        f.set_result(i)
    await done
    del futs
    M.stop(n)
    M.ok = count == n


async def await_done(n):
    loop = asyncio.get_running_loop()
    f = loop.create_future()
    f.set_result(1)
    M.start()
    for _ in range(n):
        await f
    M.stop(n)


async def resolve_task(n):
    loop = asyncio.get_running_loop()
    count = 0
    all_resumed = loop.create_future()

    async def waiter(f):
        nonlocal count
        count += 1
        await f
        count += 1
        if count == 2 * n:
            all_resumed.set_result(None)

    futs = [loop.create_future() for _ in range(n)]
    tasks = [asyncio.create_task(waiter(f)) for f in futs]
    while count < n:
        await asyncio.sleep(0)
    M.start()
    for f in futs:
        f.set_result(None)
    await all_resumed
    M.stop(n)
    await asyncio.gather(*tasks)
    M.ok = count == 2 * n


# ---- 2. task steps ----


async def yield_chain(n):
    async def yielder():
        for _ in range(n):
            await asyncio.sleep(0)

    M.start()
    await asyncio.create_task(yielder())
    M.stop(n)


async def tasks_2yields(n):
    count = 0

    async def twice():
        nonlocal count
        await asyncio.sleep(0)
        await asyncio.sleep(0)
        count += 1

    M.start()
    tasks = [asyncio.create_task(twice()) for _ in range(n)]
    await asyncio.gather(*tasks)
    del tasks
    M.stop(n)
    M.ok = count == n


# ---- 3. gather of running tasks; 6. cancelling a gather ----


async def gather(n):
    loop = asyncio.get_running_loop()
    trigger = loop.create_future()
    started = 0

    async def child():
        nonlocal started
        started += 1
        await trigger

    tasks = [asyncio.create_task(child()) for _ in range(n)]
    while started < n:
        await asyncio.sleep(0)
    M.start()
    g = asyncio.gather(*tasks)
    trigger.set_result(None)
    await g
    M.stop(n)


async def cancel_gather(n):
    started = 0

    async def child():
        nonlocal started
        started += 1
        await asyncio.sleep(3600)

    tasks = [asyncio.create_task(child()) for _ in range(n)]
    while started < n:
        await asyncio.sleep(0)
    M.rss_start()
    g = asyncio.gather(*tasks)
    M.rss_stop(n)
    M.start()
    g.cancel("bench")
    try:
        await g
        M.ok = False
    except asyncio.CancelledError:
        pass
    M.stop(n)
    M.ok = M.ok and all(t.cancelled() for t in tasks)


# ---- memory: N pending items ----


async def memory_future(n):
    loop = asyncio.get_running_loop()
    items = [None] * n
    M.rss_start()
    M.start()
    for i in range(n):
        items[i] = loop.create_future()
    M.stop(n)
    M.rss_stop(n)


async def memory_tasks(n, sleeping):
    loop = asyncio.get_running_loop()
    trigger = loop.create_future()
    started = 0

    async def child():
        nonlocal started
        started += 1
        if sleeping:
            await asyncio.sleep(3600)
        else:
            await trigger

    items = [None] * n
    M.rss_start()
    M.start()
    for i in range(n):
        items[i] = asyncio.create_task(child())
    while started < n:
        await asyncio.sleep(0)
    M.stop(n)
    M.rss_stop(n)
    trigger.set_result(None)
    for t in items:
        t.cancel()
    await asyncio.gather(*items, return_exceptions=True)


async def memory_task(n):
    await memory_tasks(n, False)


async def memory_task_sleep(n):
    await memory_tasks(n, True)


# ---- 4. N concurrent sleeping tasks ----


async def sleeps_common(n, wide):
    done = 0

    async def sleeper(i):
        nonlocal done
        await asyncio.sleep(0.010 + (i % 1000) * (1e-3 if wide else 1e-6))
        done += 1

    rss0 = peak_rss_kb()
    M.start()
    tasks = [asyncio.create_task(sleeper(i)) for i in range(n)]
    await asyncio.gather(*tasks)
    M.bytes_per_item = (peak_rss_kb() - rss0) * 1024 / n
    del tasks
    M.stop(n)
    M.ok = done == n


async def sleeps(n):
    await sleeps_common(n, False)


async def sleeps_wide(n):
    await sleeps_common(n, True)


# ---- 5. socketpair ping-pong ----


class Ping(asyncio.Protocol):
    def __init__(self, n, done):
        self.n, self.done, self.count = n, done, 0

    def connection_made(self, transport):
        self.t = transport
        transport.write(b"\0")

    def data_received(self, data):
        self.count += len(data)
        if self.count >= self.n:
            if not self.done.done():
                self.done.set_result(self.count)
        else:
            self.t.write(b"\0")


class Pong(asyncio.Protocol):
    def connection_made(self, transport):
        self.t = transport

    def data_received(self, data):
        self.t.write(data)


async def pingpong(n):
    loop = asyncio.get_running_loop()
    a, b = socket.socketpair()
    done = loop.create_future()
    M.start()
    ta, _ = await loop.create_unix_connection(lambda: Ping(n, done), sock=a)
    tb, _ = await loop.create_unix_connection(Pong, sock=b)
    count = await done
    M.stop(n)
    M.ok = count == n
    ta.close()
    tb.close()
    await asyncio.sleep(0)


# ---- fd scaling (bench-fd-scaling.c): a ping-pong while N idle sockets
# are awaited ----

FD_BUDGET_S = 1.0


async def fd_scaling(n):
    loop = asyncio.get_running_loop()
    idle = [socket.socketpair() for _ in range(n)]
    for a, b in idle:
        a.setblocking(False)
    waiters = [asyncio.ensure_future(loop.sock_recv(a, 1)) for a, _b in idle]
    ping, pong = socket.socketpair()
    ping.setblocking(False)
    pong.setblocking(False)
    await asyncio.sleep(0)
    stop = b"\xff"

    async def echo():
        while True:
            data = await loop.sock_recv(pong, 1)
            await loop.sock_sendall(pong, data)
            if data == stop:
                return

    async def pinger():
        i = 0
        t_end = None
        while True:
            await loop.sock_sendall(ping, b"\0")
            await loop.sock_recv(ping, 1)
            i += 1
            if i == 200:
                M.start()
                t_end = time.perf_counter() + FD_BUDGET_S
            elif i > 250 and time.perf_counter() >= t_end:
                M.stop(i - 200)
                await loop.sock_sendall(ping, stop)
                await loop.sock_recv(ping, 1)
                return

    await asyncio.gather(echo(), pinger())
    M.ok = not any(w.done() for w in waiters)
    for w in waiters:
        w.cancel()
    await asyncio.sleep(0)
    for a, b in idle:
        a.close()
        b.close()
    ping.close()
    pong.close()


WORKLOADS = {
    "resolve_cb": resolve_cb,
    "await_done": await_done,
    "resolve_task": resolve_task,
    "yield_chain": yield_chain,
    "tasks_2yields": tasks_2yields,
    "gather": gather,
    "cancel_gather": cancel_gather,
    "memory/future": memory_future,
    "memory/task": memory_task,
    "memory/task-sleep": memory_task_sleep,
    "sleeps": sleeps,
    "sleeps_wide": sleeps_wide,
    "pingpong": pingpong,
    "fd_scaling": fd_scaling,
}


def run_case(workload, impl, n, rep):
    if impl == "uvloop":
        import uvloop

        loop_factory = uvloop.new_event_loop
    else:
        loop_factory = asyncio.new_event_loop
    loop = loop_factory()
    asyncio.set_event_loop(loop)
    gc.collect()
    try:
        loop.run_until_complete(WORKLOADS[workload](n))
    finally:
        loop.close()
    w, _, sub = workload.partition("/")
    shown_impl = impl + ("-" + sub if sub else "")
    print(
        f"BENCH workload={w} impl={shown_impl} n={n} rep={rep} "
        f"ns_per_op={M.ns:.2f} cpu_ns_per_op={M.cpu:.2f} "
        f"peak_rss_kb={peak_rss_kb()} bytes_per_item={M.bytes_per_item:.1f} "
        f"ok={int(M.ok)}",
        flush=True,
    )
    return M.ok


def sizes_for(workload, quick):
    if workload == "fd_scaling":
        return [10, 1000] if quick else [0, 10, 100, 1000, 5000]
    if workload == "pingpong":
        return [10000] if quick else [100000]
    return [1000, 10000] if quick else [1000, 10000, 100000, 1000000]


def main(argv):
    global FD_BUDGET_S
    if "--quick" in argv:
        FD_BUDGET_S = 0.15
    if len(argv) >= 5 and argv[1] == "--case":
        rep = int(argv[5]) if len(argv) > 5 else 0
        return 0 if run_case(argv[2], argv[3], int(argv[4]), rep) else 1
    quick = "--quick" in argv
    reps = 1 if quick else 3
    max_n = 0
    impls = ["asyncio", "uvloop"]
    only = None
    i = 1
    while i < len(argv):
        a = argv[i]
        if a == "--reps":
            reps = int(argv[i + 1])
            i += 1
        elif a == "--max-n":
            max_n = int(argv[i + 1])
            i += 1
        elif a == "--impl":
            impls = argv[i + 1].split(",")
            i += 1
        elif a == "--only":
            only = argv[i + 1]
            i += 1
        elif a != "--quick":
            print(__doc__, file=sys.stderr)
            return 2
        i += 1
    failures = 0
    print(f"# bench_asyncio: Python {sys.version.split()[0]}", flush=True)
    for rep in range(reps):
        for workload in WORKLOADS:
            if only and workload.split("/")[0] != only:
                continue
            for n in sizes_for(workload, quick):
                if max_n and n > max_n:
                    continue
                # 10^6 is slow in Python (tens of seconds a case): one
                # repetition there.
                if n >= 1000000 and rep > 0:
                    continue
                for impl in impls:
                    r = subprocess.run(
                        [sys.executable, os.path.abspath(__file__), "--case",
                         workload, impl, str(n), str(rep)]
                        + (["--quick"] if quick else []),
                        stdout=subprocess.PIPE, text=True, timeout=900)
                    sys.stdout.write(r.stdout)
                    sys.stdout.flush()
                    if r.returncode != 0:
                        failures += 1
                        print(f"BENCH workload={workload.split('/')[0]} "
                              f"impl={impl} n={n} rep={rep} ok=0 "
                              f"status={r.returncode}", flush=True)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
