"""timeouts.py - the Python 3.11 original of timeouts.c (same output):
asyncio.wait_for, asyncio.timeout with reschedule, asyncio.shield.

Run with python3 (3.11 or later); tests/expected/timeouts.out is its
stdout.  Times are printed relative to the start of each section.
"""

import asyncio

t0 = 0.0


def log(message):
    print(f"[{asyncio.get_running_loop().time() - t0:.1f}] {message}")


def section(title):
    global t0
    t0 = asyncio.get_running_loop().time()
    print(f"== {title} ==")


# ---- wait_for: a fetch that takes too long, one in time ----

async def fetch(name, seconds):
    log(f"fetch {name}: started, needs {seconds:.1f} s")
    try:
        await asyncio.sleep(seconds)
    except asyncio.CancelledError:
        log(f"fetch {name}: cancelled, closing the connection")
        await asyncio.sleep(0.1)
        log(f"fetch {name}: connection closed")
        raise
    log(f"fetch {name}: done")
    return f"<html>{name}</html>"


async def wait_for_demo():
    section("wait_for: a fetch that takes too long")
    try:
        page = await asyncio.wait_for(fetch("a", 3.0), timeout=0.5)
        log(f"fetch a: got {page}")
    except TimeoutError:
        log("fetch a: timed out")

    section("wait_for: a fetch in time")
    page = await asyncio.wait_for(fetch("b", 0.3), timeout=0.5)
    log(f"fetch b: got {page}")


# ---- timeout: one deadline over several awaits, pushed back on progress ----

async def download(name, chunk_seconds):
    loop = asyncio.get_running_loop()
    log(f"download {name}: started, 0.5 s allowed without progress")
    try:
        async with asyncio.timeout(0.5) as deadline:
            for i, seconds in enumerate(chunk_seconds, 1):
                await asyncio.sleep(seconds)
                deadline.reschedule(loop.time() + 0.5)
                log(f"download {name}: chunk {i} received, "
                    f"deadline moved to {deadline.when() - t0:.1f}")
    except TimeoutError:
        log(f"download {name}: stalled, timed out "
            f"(expired: {'yes' if deadline.expired() else 'no'})")
        return
    log(f"download {name}: complete")


async def timeout_demo():
    section("timeout: a deadline pushed back at each chunk")
    await download("x", [0.4, 0.4, 0.4])
    section("timeout: a download that stalls")
    await download("y", [0.4, 0.8])


# ---- shield: a save survives the cancellation of its caller ----

async def save(document):
    log(f"save {document}: writing")
    await asyncio.sleep(0.5)
    log(f"save {document}: written")


async def close_document(document, saving):
    log(f"close {document}: waiting for the save")
    try:
        await asyncio.shield(saving)
    except asyncio.CancelledError:
        log(f"close {document}: cancelled, the save goes on")
        raise
    log(f"close {document}: closed")


async def shield_demo():
    section("shield: a cancellation does not stop the save")
    saving = asyncio.create_task(save("notes.txt"))
    closing = asyncio.create_task(close_document("notes.txt", saving))
    await asyncio.sleep(0.2)
    log("main: the user quits, cancelling the close")
    closing.cancel()
    try:
        await closing
    except asyncio.CancelledError:
        log("main: close cancelled, the save is "
            + ("done" if saving.done() else "still running"))
    await saving
    log("main: save finished, quitting")


async def main():
    await wait_for_demo()
    await timeout_demo()
    await shield_demo()


asyncio.run(main())
