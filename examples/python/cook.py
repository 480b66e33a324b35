# The seed's three cooks (tests/seed/01-cook.py) on afut, from Python:
# the same program with Afut in place of asyncio.
import gi

gi.require_version('Afut', '1')
from gi.repository import Afut  # noqa: E402


async def cook(order):
    print(f"Started cooking {order}")
    await Afut.sleep(2)  # simulates cooking time
    print(f"Finished {order}")
    return order


async def main():
    await Afut.gather(
        cook("Pasta"),
        cook("Pizza"),
        cook("Salad")
    )

Afut.run(main())
