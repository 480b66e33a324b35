"""Errors across afut from Python, as asyncio's exceptions (examples/errors.c
in Python): a Python exception comes back as the same object through
await, gather, wait_for and task groups; a C error (GIO's) is a GLib.Error
with its domain and code.  tests/expected/errors-python.out is its stdout.
"""

import asyncio

import gi

gi.require_version('Afut', '1')
from gi.repository import Afut, Gio, GLib  # noqa: E402


class ParseError(Exception):
    """This program's own exception."""


async def parse_number(text, delay=0.1):
    await Afut.sleep(delay)
    try:
        value = int(text)
    except ValueError:
        print(f"parse_number({text!r}) raises")
        raise ParseError(f"not a number: {text}") from None
    print(f"parse_number({text!r}) returns {value}")
    return value


def now():
    return Afut.get_running_loop().time()


async def main():
    print("== an exception raised in a task, caught by its awaiter ==")
    print("got", await Afut.create_task(parse_number("42")))
    task = Afut.create_task(parse_number("forty-two"))
    try:
        await task
    except ParseError as e:
        print(f"caught {e!r}; the task's own: {e is task.exception()}")

    print("== gather: the first error fails it, the others keep running ==")
    start = now()
    seven = Afut.create_task(parse_number("7", 0.3))
    try:
        await Afut.gather(parse_number("seven"), seven)
    except ParseError as e:
        print(f"gather failed after {now() - start:.1f} s: {e!r}")
    print(f"'7' is still running: {not seven.done()}")
    value = await seven
    print(f"'7' finished after {now() - start:.1f} s: {value}")

    print("== gather with return_exceptions: a value or an exception in each slot ==")
    slots = await Afut.gather(parse_number("1", 0.3), parse_number("two"),
                              parse_number("3", 0.2), return_exceptions=True)
    for i, slot in enumerate(slots):
        print(f"slot {i}: {slot!r}")

    print("== a task group: an ExceptionGroup of the original exceptions ==")
    try:
        async with Afut.TaskGroup() as group:
            group.create_task(parse_number("x", 0.1))
            group.create_task(parse_number("y", 0.1))
            group.create_task(parse_number("5", 1.0))  # cancelled
    except* ParseError as eg:
        print(f"{len(eg.exceptions)} errors: {list(eg.exceptions)!r}")

    print("== wait_for: TimeoutError ==")
    start = now()
    try:
        await Afut.wait_for(parse_number("9", 5), 1)
    except TimeoutError:
        print(f"timed out after {now() - start:.1f} s")

    print("== a C error: GLib.Error with its domain and code ==")
    missing = Gio.File.new_for_path("/nonexistent/afut-example")
    try:
        await Afut.gio(missing.load_contents_async, None)
    except GLib.Error as e:
        print(f"GLib.Error: {e.domain} {Gio.IOErrorEnum(e.code).value_nick}")


Afut.run(main())
