"""The kitchen: owns the action /kitchen/toggle and the state /kitchen/light.

Run it while a broker is running (``make run``), and leave it running::

    .venv/bin/python docs/tutorial/kitchen.py
"""

from __future__ import annotations

import contextlib

import anyio

from roost import Client


async def main() -> None:
    """Register the state and the action, then serve calls until interrupted."""
    async with Client(base="/kitchen/") as client:
        light = await client.state_register("light")
        on = False
        await light.changed(on)

        async def toggle() -> bool:
            nonlocal on
            on = not on
            await light.changed(on)  # observers hear the new value before the call returns
            return on

        await client.action_register("toggle", toggle)
        print("kitchen ready", flush=True)
        await anyio.sleep_forever()


if __name__ == "__main__":
    with contextlib.suppress(KeyboardInterrupt):
        anyio.run(main)
