"""task-group.py - the Python 3.11 original of task-group.c (same output):
asyncio.TaskGroup when every child succeeds and when one fails, and the
first-success pattern that afut_any() (JavaScript's Promise.any) names,
written with asyncio.wait(FIRST_COMPLETED) since asyncio has no call for it.

Run with python3 (3.11 or later); tests/expected/task-group.out is its
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


class DownloadError(Exception):
    pass


async def download(name, seconds, kb, error=None):
    log(f"{name}: downloading, {seconds:.1f} s")
    try:
        await asyncio.sleep(seconds)
    except asyncio.CancelledError:
        log(f"{name}: cancelled, removing the partial file")
        await asyncio.sleep(0.1)
        log(f"{name}: partial file removed")
        raise
    if error is not None:
        log(f"{name}: {error}")
        raise DownloadError(f"{name}: {error}")
    log(f"{name}: done, {kb} KB")
    return kb


async def group_of_three():
    section("a task group whose downloads all succeed")
    async with asyncio.TaskGroup() as group:
        tasks = [group.create_task(download("a.iso", 0.3, 300)),
                 group.create_task(download("b.iso", 0.5, 500)),
                 group.create_task(download("c.iso", 0.2, 200))]
        log("main: three downloads started")
    log(f"main: all done, {sum(t.result() for t in tasks)} KB in total")


async def group_with_a_failure():
    section("a task group where one download fails")
    try:
        async with asyncio.TaskGroup() as group:
            group.create_task(download("d.iso", 1.0, 900))
            group.create_task(download("e.iso", 0.3, 0, "HTTP 503"))
            group.create_task(download("f.iso", 0.2, 200))
            log("main: writing the index meanwhile")
            try:
                await asyncio.sleep(1.0)
                log("main: index written")
            except asyncio.CancelledError:
                log("main: interrupted, no index")
                raise
    except ExceptionGroup as errors:
        log(f"main: the group failed, {len(errors.exceptions)} error(s):")
        for error in errors.exceptions:
            log(f"main:   {error}")


async def first_mirror():
    section("any: the first mirror that succeeds")
    mirrors = [asyncio.create_task(download("mirror-1", 0.1, 0, "HTTP 404")),
               asyncio.create_task(download("mirror-2", 0.3, 700)),
               asyncio.create_task(download("mirror-3", 0.5, 700))]
    # afut_any (mirrors...): wait until one succeeds
    kb = None
    pending = set(mirrors)
    while kb is None and pending:
        done, pending = await asyncio.wait(
            pending, return_when=asyncio.FIRST_COMPLETED)
        for mirror in mirrors:
            if (mirror in done and kb is None and not mirror.cancelled()
                    and mirror.exception() is None):
                kb = mirror.result()
    log(f"main: got {kb} KB, cancelling the other mirrors")
    for mirror in mirrors:
        mirror.cancel()
    await asyncio.gather(*mirrors, return_exceptions=True)
    log("main: done")


async def main():
    await group_of_three()
    await group_with_a_failure()
    await first_mirror()


asyncio.run(main())
