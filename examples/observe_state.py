"""Observe a state from a reactive app: print each value of a state as it changes.

    python examples/observe_state.py /lamp/power --server 127.0.0.1:11236 --count 3

The first value printed is the current one (``Unknown`` if the state has none). While the
connection to the broker is down the app sees ``Unknown``, then the fresh value once the client
has reconnected by itself.
"""

from __future__ import annotations

import argparse

import anyio

from roost.client import Client, Unknown


async def main(path: str, server: str | None, count: int | None) -> None:
    seen = 0
    async with Client(server=server) as client, client.state_observe_iter(path) as values:
        async for value in values:
            print("unknown" if value is Unknown else f"value {value!r}", flush=True)
            seen += 1
            if count is not None and seen >= count:
                break


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("path", help="the state to observe, e.g. /lamp/power")
    parser.add_argument("--server", help="host[:port] of the broker (default: $ROOST_SERVER)")
    parser.add_argument("--count", type=int, help="stop after this many values")
    args = parser.parse_args()
    anyio.run(main, args.path, args.server, args.count)
