"""The kitchen: owns the action /kitchen/toggle and the state /kitchen/light.

Run it while a broker is running (``make run``), and leave it running::

    .venv/bin/python docs/tutorial/kitchen.py

Ctrl-C (SIGINT) or SIGTERM stops it cleanly, as a service manager expects.
"""

from __future__ import annotations

import signal

import anyio

from roost import Client


async def main() -> None:
    """Register the state and the action, then serve calls until SIGINT or SIGTERM."""
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
        with anyio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
            async for _ in signals:
                break  # leaving the block closes the connection cleanly


if __name__ == "__main__":
    anyio.run(main)
