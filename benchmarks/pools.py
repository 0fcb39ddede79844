"""Allocation by requirements over an inventory of 1,000 resources.

Suites:

- in this process, no network: acquire-by-requirements + return cycles on the pool over a lease
  table, for a requirement matching a third of the inventory, one matching a single resource,
  and one matching a third while half of those are held; the same cycle by resource name as
  the baseline. Figures: cycles/s and the p99 of one acquire, in microseconds;
- over loopback against a broker process with the inventory: one client's acquire + return
  cycles, and 50 clients contending for the 6 resources one requirement matches (each returns
  as soon as it is granted and asks again): grants/s and the p50/p99 wait from sending the
  acquire to holding a resource.

The figures compare within one run. Top-level ``field: value`` and ``$in`` conditions are
answered from an index, the rest by ``mongoquery`` on the indexed candidates, and each distinct
query's matches are remembered until the inventory changes (the last row asks a new query every
time, so it pays the ``mongoquery`` scan); a release serves the queue by set lookups only.
"""

from __future__ import annotations

import asyncio
import json
import logging
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from benchmarks.common import Table, format_rate, percentiles
from benchmarks.leases import _Conn, contend
from benchmarks.processes import Server, _loops, _raise_nofile
from roost.broker.leases.pools import PoolBook, check_inventory, with_defaults
from roost.broker.leases.table import LeaseTable
from roost.broker.leases.types import Identity
from roost.protocol import messages as m
from roost.protocol.values import Value

__all__ = ("inventory", "run")

SIZE = 1000
HOST = "rig"
OS = ("linux", "windows", "mac")


def inventory(size: int = SIZE) -> list[dict[str, Any]]:
    """``size`` resources: a third each linux, windows, mac; RAM 8/16/32/64; serial numbers."""
    return [
        {
            "id": f"dev-{n:04d}",
            "hostname": HOST,
            "online": n % 50 != 7,
            "os": OS[n % 3],
            "ram": 8 << (n % 4),
            "serial": f"S{n:04d}",
            "usb": ["a", "b"] if n % 2 else ["a"],
        }
        for n in range(size)
    ]


def _cycles(
    query: dict[str, Any] | None, held: int, duration: float, fresh: bool = False
) -> tuple[float, float]:
    """Acquire (by ``query``, or by name when None) + return cycles on a pool over a table.
    ``fresh``: a query never seen before each time (a distinct extra condition that every
    resource meets), so nothing is answered from the memo of earlier queries."""
    table = LeaseTable(1)
    book = PoolBook(table)
    book.load(check_inventory(inventory(), "bench"))
    ident = Identity(name="bench", host=HOST)
    clock = [0.0]
    for n in range(held):  # hold some of the linux ones
        conn = f"holder{n}"
        table.connect(conn, conn, 1e9, 0.0)
        book.acquire(conn, {"os": "linux"}, 0.0, wait=0, ttl=None, identity=ident, key=None)
    table.connect("c", "client", 1e9, 0.0)
    samples: list[float] = []
    count = 0
    started = time.perf_counter()
    deadline = started + duration
    while time.perf_counter() < deadline:
        clock[0] += 1e-6
        t0 = time.perf_counter()
        if query is None:
            reply, _ = table.acquire("c", "dev-0999", clock[0], identity=ident)
        else:
            asked = {**query, "ram": {"$lt": 1000 + count}} if fresh else query
            reply, _ = book.acquire(
                "c", asked, clock[0], wait=0, ttl=None, identity=ident, key=None
            )
        samples.append(time.perf_counter() - t0)
        _, fx = table.return_lease("c", reply["lease"]["token"], clock[0])
        book.observe(fx)
        count += 1
    elapsed = time.perf_counter() - started
    return count / elapsed, percentiles(samples)[1] * 1e6


def _wire_cycles(port: int, query: dict[str, Any], duration: float) -> float:
    conn = _Conn(port)
    body = Value.of({"requirements": query})
    count = 0
    started = time.perf_counter()
    deadline = started + duration
    while time.perf_counter() < deadline:
        reply = conn.request(m.LeaseAcquire(1, body))
        conn.request(m.LeaseReturn(2, Value.of({"token": reply["lease"]["token"]})))
        count += 1
    elapsed = time.perf_counter() - started
    conn.sock.close()
    return count / elapsed


def _serve(path: str, loop: str) -> None:
    """Entry point of the broker process: a broker with the inventory at ``path``."""
    from roost.broker import Broker
    from roost.broker.leases.pools import PoolSettings
    from roost.broker.run import loop_factory, settle_gc

    _raise_nofile()
    logging.disable(logging.CRITICAL)

    async def main() -> None:
        async with Broker(port=0, pools=PoolSettings(path)) as broker:
            settle_gc()
            print(broker.port, flush=True)
            await asyncio.get_running_loop().run_in_executor(None, sys.stdin.read)

    with asyncio.Runner(loop_factory=loop_factory(loop)) as runner:
        runner.run(main())


def run(quick: bool = False) -> None:
    """Run the pool benchmarks and print their tables."""
    _raise_nofile()
    duration = 0.5 if quick else 2.0
    local = Table(
        f"allocation over {SIZE:,} resources, in process (acquire + return)",
        ["acquire by", "matches", "cycles/s", "p99 acquire us"],
    )
    few = {"serial": {"$in": [f"S{n:04d}" for n in (3, 15, 27, 39, 51, 63)]}}
    complex_query = {"os": "linux", "ram": {"$gte": 32}, "usb": "b"}
    cases: list[tuple[str, dict[str, Any] | None, int, bool]] = [
        ("name (baseline)", None, 0, False),
        ('{"os": "linux"}', {"os": "linux"}, 0, False),
        ('{"serial": "S0999"}', {"serial": "S0999"}, 0, False),
        ('{"os": "linux", "ram": {"$gte": 32}, "usb": "b"}', complex_query, 0, False),
        ('{"os": "linux"}, 160 of them held', {"os": "linux"}, 160, False),
        ('{"os": "linux", "ram": {"$lt": N}}, new N each time', {"os": "linux"}, 0, True),
    ]
    book = PoolBook(LeaseTable(1))
    book.load(inventory())
    for label, query, held, fresh in cases:
        matches = 1 if query is None else len(book.matches(with_defaults(query, HOST)))
        per_s, p99 = _cycles(query, held, duration, fresh)
        local.add(label, matches, format_rate(per_s), f"{p99:.1f}")
    wire = Table(
        f"allocation over {SIZE:,} resources, broker process on loopback",
        ["loop", "clients", "matches", "grants/s", "p50 wait ms", "p99 wait ms"],
    )
    linux = {"os": "linux", "hostname": HOST}
    contended = {**few, "hostname": HOST}
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "resources.json"
        path.write_text(json.dumps(inventory()))
        for loop in _loops():
            broker = Server("benchmarks.pools", "--serve", str(path), loop)
            try:
                one = _wire_cycles(broker.port, linux, duration)
                n_linux = len(book.matches(with_defaults(linux, HOST)))
                wire.add(loop, 1, n_linux, format_rate(one), "-", "-")
                needs = {"requirements": contended}
                grants, p50, p99 = contend(broker.port, 50, duration, needs)
                n_few = len(book.matches(with_defaults(contended, HOST)))
                wire.add(loop, 50, n_few, format_rate(grants), f"{p50:.2f}", f"{p99:.2f}")
            finally:
                broker.close()
    local.print()
    wire.print()


if __name__ == "__main__":
    if "--serve" in sys.argv:
        _args = sys.argv[sys.argv.index("--serve") + 1 :]
        _serve(_args[0], _args[1] if len(_args) > 1 else "asyncio")
    else:
        run("--quick" in sys.argv)
