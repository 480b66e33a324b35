# Cancellation on afut from Python, as examples/cancel.c (the same lines,
# tests/expected/cancel.out):
#  - a task cancelled mid-sleep gets asyncio.CancelledError at its await,
#    cleans up (awaiting, even) and re-raises it, so it ends cancelled;
#  - cancelling a gather cancels each of its pending children;
#  - a cancel message reaches the awaiter.
import asyncio

import gi

gi.require_version('Afut', '1')
from gi.repository import Afut  # noqa: E402


def state(future):
    return future.get_state().value_nick


async def download():
    print("download: started")
    try:
        await Afut.sleep(10)
    except asyncio.CancelledError:
        print("download: cancelled, removing the partial file")
        await Afut.sleep(0.1)  # clean up
        print("download: cleanup done")
        raise
    print("download: finished")


async def cancel_mid_sleep():
    print("== cancelling a task mid-sleep ==")
    task = Afut.create_task(download())
    await Afut.sleep(0.5)
    print("main: cancelling the download")
    task.cancel()
    try:
        await task
    except asyncio.CancelledError:
        print("main: the download ended cancelled")


async def child(name, delay):
    print(f"child {name}: sleeping {delay:g} s")
    try:
        await Afut.sleep(delay)
    except asyncio.CancelledError:
        print(f"child {name}: cancelled")
        raise
    print(f"child {name}: finished")


async def cancel_gather():
    print("== cancelling a gather ==")
    children = [Afut.create_task(child(name, delay))
                for name, delay in (("a", 1), ("b", 2), ("c", 3))]
    gather = Afut.gather(children)
    await Afut.sleep(0.5)
    print("main: cancelling the gather")
    gather.cancel()
    try:
        await gather
    except asyncio.CancelledError:
        pass
    print(f"main: the gather is {state(gather)}")
    for i, item in enumerate(children):
        print(f"main: child {i} is {state(item)}")


async def worker():
    print("worker: waiting for a job")
    await Afut.sleep(60)
    print("worker: got a job")


async def cancel_message():
    print("== a cancel message ==")
    task = Afut.create_task(worker())
    await Afut.sleep(0.5)
    print("main: cancelling the worker: 'shutting down'")
    task.cancel("shutting down")
    try:
        await task
    except asyncio.CancelledError as e:
        print(f"main: the worker was cancelled: '{e}'")


async def main():
    await cancel_mid_sleep()
    await cancel_gather()
    await cancel_message()

Afut.run(main())
