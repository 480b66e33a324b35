# The seed's fetch_data (tests/seed/06-gather-results.py) on afut, from
# Python: gather's results come back in input order.
import gi

gi.require_version('Afut', '1')
from gi.repository import Afut  # noqa: E402


async def fetch_data(id, delay):
    print(f"Task {id} started")
    await Afut.sleep(delay)
    print(f"Task {id} completed")
    return f"data-{id}"


async def main():
    results = await Afut.gather(
        fetch_data(1, 2),  # Takes 2 seconds
        fetch_data(2, 1),  # Takes 1 second
        fetch_data(3, 3)   # Takes 3 seconds
    )
    print(results)  # ['data-1', 'data-2', 'data-3']

Afut.run(main())
