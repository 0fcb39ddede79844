"""Action round trips through roost's client: calls/s and p50/p99 latency.

The broker runs in its own process (as in the broker suite); this process runs two clients on
one asyncio loop: an owner whose action returns its argument, and a caller issuing
``action_call`` from 1 or 16 concurrent tasks over its one connection. Each call's latency is
measured around the ``await`` in the calling task, so it includes the client's own overhead
on both sides (encoding, the writer task, the reader, the owner's callback task).
"""

from __future__ import annotations

import logging
import time

import anyio

from benchmarks.common import Table, format_rate, percentiles
from benchmarks.processes import Server
from roost.client import Client

__all__ = ("run",)

PATH = "/bench/echo"


async def _calls(port: int, callers: int, duration: float) -> tuple[float, float, float]:
    """Run ``callers`` tasks calling for ``duration`` seconds; calls/s, p50 ms, p99 ms."""
    server = f"127.0.0.1:{port}"
    latencies: list[float] = []
    async with Client(server=server) as owner, Client(server=server) as caller:
        await owner.action_register(PATH, lambda x: x)
        for _ in range(200):  # warm up both connections and the code paths
            await caller.action_call(PATH, 0)
        deadline = time.perf_counter() + duration

        async def call_loop() -> None:
            perf = time.perf_counter
            record = latencies.append
            while (started := perf()) < deadline:
                await caller.action_call(PATH, 1)
                record(perf() - started)

        started = time.perf_counter()
        async with anyio.create_task_group() as tg:
            for _ in range(callers):
                tg.start_soon(call_loop)
        elapsed = time.perf_counter() - started
    p50, p99 = percentiles(latencies)
    return len(latencies) / elapsed, p50 * 1000, p99 * 1000


def run(quick: bool = False) -> None:
    """Measure client round trips with 1 and 16 concurrent callers and print the table."""
    logging.disable(logging.CRITICAL)
    broker = Server("benchmarks.broker", "--serve")
    try:
        table = Table(
            "client action_call round trips (one caller connection, asyncio)",
            ["callers", "calls/s", "p50 ms", "p99 ms"],
        )
        for callers in (1, 16):
            rate, p50, p99 = anyio.run(_calls, broker.port, callers, 1.0 if quick else 3.0)
            table.add(callers, format_rate(rate), f"{p50:.3f}", f"{p99:.3f}")
        table.print()
    finally:
        broker.close()
