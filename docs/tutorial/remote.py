"""A remote control: observes /kitchen/light and calls /kitchen/toggle twice.

Run it in a second terminal while ``kitchen.py`` runs::

    .venv/bin/python docs/tutorial/remote.py
"""

from __future__ import annotations

from typing import Any

import anyio

from roost import Client, RemoteError, Unknown


def show(value: Any) -> str:
    """The light as a word: its value, or ``unknown`` while it has none."""
    return "unknown" if value is Unknown else str(value)


async def main() -> None:
    """Observe the light, toggle it twice, and print every value seen."""
    async with Client() as client, client.state_observe_iter("/kitchen/light") as values:
        iterator = aiter(values)
        print("light is", show(await anext(iterator)))
        for _ in range(2):
            try:
                result = await client.action_call("/kitchen/toggle")
            except RemoteError as exc:  # nobody owns the action: exc.value says why
                print("toggle failed:", exc.value)
                return
            print("toggle returned", result)
            print("light is", show(await anext(iterator)))


if __name__ == "__main__":
    anyio.run(main)
