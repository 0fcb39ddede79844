"""A remote control: observes /kitchen/light and calls /kitchen/toggle twice.

Run it in a second terminal while ``kitchen.py`` runs::

    .venv/bin/python docs/tutorial/remote.py
"""

from __future__ import annotations

import anyio

from roost import Client


async def main() -> None:
    """Observe the light, toggle it twice, and print every value seen."""
    async with Client() as client, client.state_observe_iter("/kitchen/light") as values:
        iterator = aiter(values)
        print("light is", await anext(iterator))
        for _ in range(2):
            print("toggle returned", await client.action_call("/kitchen/toggle"))
            print("light is", await anext(iterator))


if __name__ == "__main__":
    anyio.run(main)
