"""Expose a device (a dimmable lamp) as roost actions and states.

Run a broker (``roost serve``), then::

    python examples/expose_device.py --server 127.0.0.1:11236

Other clients can then ``action_call("/lamp/on")``, ``set("/lamp/brightness", 40)`` and observe
``/lamp/power`` and ``/lamp/brightness``. With ``--guard lamp`` the actions and the settable state
need the lease ``lamp`` (see hold_device.py). Stop it with Ctrl-C.
"""

from __future__ import annotations

import argparse
import signal
from typing import Any

import anyio

from roost.client import Client


class Lamp:
    """The hardware, simulated: a power switch and a brightness from 0 to 100."""

    def __init__(self) -> None:
        self.power = False
        self.brightness = 100


async def main(server: str | None, guard: str | None) -> None:
    lamp = Lamp()
    async with Client("/lamp/", server=server) as client:
        power = await client.state_register("power")
        await power.changed(lamp.power)

        async def set_brightness(value: Any, token: Any = None) -> int:
            if not isinstance(value, int) or not 0 <= value <= 100:
                raise ValueError("brightness must be an int from 0 to 100")
            lamp.brightness = value
            await brightness.changed(value)  # publish before replying: a get sees it
            return value

        brightness = await client.state_register("brightness", set_brightness, lease=guard)
        await brightness.changed(lamp.brightness)

        async def switch(on: bool) -> bool:
            lamp.power = on
            await power.changed(on)
            return on

        await client.action_register("on", lambda: switch(True), lease=guard)
        await client.action_register("off", lambda: switch(False), lease=guard)
        print("ready", flush=True)
        with anyio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
            async for _ in signals:
                break
    print("stopped", flush=True)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--server", help="host[:port] of the broker (default: $ROOST_SERVER)")
    parser.add_argument("--guard", help="require this lease for actions and sets")
    args = parser.parse_args()
    anyio.run(main, args.server, args.guard)
