"""Hold a device with a lease while driving it, so nobody else drives it at the same time.

Start the device with a guard, then run this::

    python examples/expose_device.py --guard lamp &
    python examples/hold_device.py --server 127.0.0.1:11236

The lease is returned when the block ends, also after an error. If it is lost meanwhile (taken
by someone else, the connection lost, or the local deadline passed), the block is cancelled and
``LeaseLost`` says why.
"""

from __future__ import annotations

import argparse

import anyio

from roost.client import Client
from roost.errors import AlreadyClaimed, LeaseLost, RemoteError


async def main(server: str | None, resource: str) -> int:
    async with Client(server=server) as client:
        try:
            await client.action_call("/lamp/on")
        except RemoteError as exc:
            print(f"without the lease: {exc}", flush=True)
        try:
            async with client.lease(resource, wait=5, note="evening scene") as lease:
                print(f"holding {lease.resource} with token seq {lease.token['seq']}", flush=True)
                await client.action_call("/lamp/on", lease=lease)
                await client.set("/lamp/brightness", 30, lease=lease)
                print(f"brightness {await client.get('/lamp/brightness')}", flush=True)
        except AlreadyClaimed as exc:
            print(f"busy: held by {[h['client'] for h in exc.holders]}", flush=True)
            return 1
        except LeaseLost as exc:
            print(f"lost the lease: {exc.reason}", flush=True)
            return 1
        print("returned", flush=True)
    return 0


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--server", help="host[:port] of the broker (default: $ROOST_SERVER)")
    parser.add_argument("--resource", default="lamp", help="the lease to hold")
    args = parser.parse_args()
    raise SystemExit(anyio.run(main, args.server, args.resource))
