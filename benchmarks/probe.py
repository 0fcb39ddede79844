"""A broker process that measures its own event loop: the longest iteration (loop lag).

``python -m benchmarks.probe [LOOP]`` serves on port 0 with generous limits (so that the
benchmarks can build the worst cases the defaults would refuse), prints the port, then answers
each ``lag`` line on stdin with ``lag MS gc COUNT LONGEST_MS TOTAL_MS`` (the longest delay of
a 1 ms ticker, and the cyclic collections, since the last ``lag`` line) and stops at stdin
EOF. Used by the ``stalls`` and ``amplification`` suites; ``limits`` on the command line
(``--defaults``) keeps the default limits instead.
"""

from __future__ import annotations

import asyncio
import logging
import sys

from benchmarks.processes import GcWatch, _raise_nofile
from roost.broker import Broker
from roost.broker.leases import LeaseConfig
from roost.broker.limits import Limits
from roost.broker.run import loop_factory, settle_gc

__all__ = ("LAG_TICK", "main")

#: The ticker's period, seconds.
LAG_TICK = 0.001

#: Limits high enough for 100k registrations on one connection and 20k leases.
WIDE = Limits(
    max_per_connection=200_000,
    max_entries_per_connection=500_000,
    max_tree_entries=5_000_000,
    max_connections=0,
)


def main(argv: list[str]) -> None:
    """Serve until stdin closes (see the module docstring)."""
    loop_kind = argv[0] if argv else "asyncio"
    limits = Limits() if "--defaults" in argv else WIDE
    leases = LeaseConfig(max_resources=50_000, max_leases=50_000)
    _raise_nofile()
    logging.disable(logging.CRITICAL)

    async def serve() -> None:
        loop = asyncio.get_running_loop()
        worst = [0.0]

        def tick(expected: float) -> None:
            now = loop.time()
            worst[0] = max(worst[0], now - expected)
            loop.call_at(now + LAG_TICK, tick, now + LAG_TICK)

        async with Broker(port=0, limits=limits, lease_config=leases) as broker:
            settle_gc()
            watch = GcWatch()
            watch.start()
            loop.call_at(loop.time() + LAG_TICK, tick, loop.time() + LAG_TICK)
            print(broker.port, flush=True)
            while line := await loop.run_in_executor(None, sys.stdin.readline):
                if line.strip() == "lag":
                    print(f"lag {worst[0] * 1000:.3f} {watch.report()}", flush=True)
                    worst[0] = 0.0
                    watch.reset()

    with asyncio.Runner(loop_factory=loop_factory(loop_kind)) as runner:
        runner.run(serve())


if __name__ == "__main__":
    main(sys.argv[1:])
