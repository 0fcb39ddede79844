"""An instrument whose queue and environment are guarded by leases (for lock-an-instrument.md).

Run a broker (``roost serve``), then::

    python examples/instrument.py --server 127.0.0.1:11236

It owns ``/beamline/queue/start`` (guarded by the resource ``beamline/queue``),
``/beamline/environment/open`` (guarded by ``beamline/environment``) and the unguarded state
``/beamline/status``. A guarded action runs only for a caller holding a covering lease, or proving
a durable lock on it with the lock's key. Stop it with Ctrl-C.
"""

from __future__ import annotations

import argparse
import signal

import anyio

from roost.client import Client


async def main(server: str | None) -> None:
    async with Client("/beamline/", server=server) as client:
        status = await client.state_register("status")
        await status.changed("idle")

        async def start_queue() -> str:
            await status.changed("running the queue")
            return "queue started"

        async def open_environment() -> str:
            await status.changed("environment open")
            return "environment open"

        await client.action_register("queue/start", start_queue, lease="beamline/queue")
        await client.action_register(
            "environment/open", open_environment, lease="beamline/environment"
        )
        print("ready", flush=True)
        with anyio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
            async for _ in signals:
                break
    print("stopped", flush=True)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--server", default=None, help="broker HOST:PORT [default: $ROOST_SERVER]")
    args = parser.parse_args()
    anyio.run(main, args.server)
