#!/usr/bin/python3
"""asyncio on afut's GLib event loop against CPython's own loop.

    GI_TYPELIB_PATH=build/gi LD_LIBRARY_PATH=build/gi PYTHONPATH=gi/python \\
        /usr/bin/python3 bench/bench_asyncio_loop.py [--quick]

Each workload runs on asyncio.SelectorEventLoop (epoll) and on
Afut.EventLoop (a GSource on a GLib.MainContext), real clock, best of 3;
it prints the time per operation.  A benchmark, not a test: nothing here
asserts a time.
"""

import asyncio
import socket
import sys
import time

import gi

gi.require_version('Afut', '1')
from gi.repository import Afut, GLib  # noqa: E402

QUICK = '--quick' in sys.argv
SCALE = 10 if QUICK else 1


def call_soon(loop, n):
    count = [0]

    def tick():
        count[0] += 1
        if count[0] == n:
            loop.stop()
    for _ in range(n):
        loop.call_soon(tick)
    loop.run_forever()


def task_switches(loop, n):
    async def worker(k):
        for _ in range(k):
            await asyncio.sleep(0)

    async def main():
        await asyncio.gather(*(worker(10) for _ in range(n // 10)))
    loop.run_until_complete(main())


def timers(loop, n):
    done = [0]
    start = loop.time()

    def fire():
        done[0] += 1
        if done[0] == n:
            loop.stop()
    for i in range(n):
        loop.call_at(start + (i % 100) * 1e-5, fire)
    loop.run_forever()


def ping_pong(loop, n):
    a, b = socket.socketpair()
    a.setblocking(False)
    b.setblocking(False)

    async def echo():
        for _ in range(n):
            data = await loop.sock_recv(b, 1)
            await loop.sock_sendall(b, data)

    async def main():
        server = asyncio.ensure_future(echo())
        for _ in range(n):
            await loop.sock_sendall(a, b'x')
            await loop.sock_recv(a, 1)
        await server
    try:
        loop.run_until_complete(main())
    finally:
        a.close()
        b.close()


def stream_echo(loop, n):
    async def handle(reader, writer):
        while line := await reader.readline():
            writer.write(line)
        writer.close()

    async def main():
        server = await asyncio.start_server(handle, '127.0.0.1', 0)
        port = server.sockets[0].getsockname()[1]
        reader, writer = await asyncio.open_connection('127.0.0.1', port)
        for _ in range(n):
            writer.write(b'ping\n')
            await reader.readline()
        writer.close()
        await writer.wait_closed()
        server.close()
        await server.wait_closed()
    loop.run_until_complete(main())


WORKLOADS = [
    ('call_soon callbacks', call_soon, 100000),
    ('task switches (sleep(0))', task_switches, 100000),
    ('timers (call_at)', timers, 20000),
    ('socketpair round trips', ping_pong, 10000),
    ('stream echo round trips', stream_echo, 5000),
]

LOOPS = [
    ('CPython SelectorEventLoop', asyncio.SelectorEventLoop),
    ('Afut.EventLoop', lambda: Afut.EventLoop(GLib.MainContext())),
]


def measure(make_loop, work, n):
    best = None
    for _ in range(3):
        loop = make_loop()
        try:
            start = time.perf_counter()
            work(loop, n)
            elapsed = time.perf_counter() - start
        finally:
            loop.close()
        best = elapsed if best is None else min(best, elapsed)
    return best


def main():
    print('%-28s %-28s %10s %12s' % ('workload', 'loop', 'n', 'us per op'))
    for name, work, n in WORKLOADS:
        n //= SCALE
        for loop_name, make_loop in LOOPS:
            seconds = measure(make_loop, work, n)
            print('%-28s %-28s %10d %12.2f' % (name, loop_name, n, seconds / n * 1e6))
    return 0


if __name__ == '__main__':
    sys.exit(main())
