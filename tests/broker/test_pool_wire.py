"""Pools at the wire level against a real broker: 20 jobs on 3 devices (never shared, FIFO,
all served), a job's closed connection frees its device, listing and reload."""

from __future__ import annotations

import json
from contextlib import AsyncExitStack
from pathlib import Path
from typing import Any

import pytest

from roost.broker.leases.pools import PoolSettings
from roost.protocol import messages as m
from tests.broker.leasekit import lease, next_push
from tests.conftest import start_broker_thread
from tests.wire import Wire, connect

pytestmark = pytest.mark.anyio

LINUX_DEVICES = [
    {"id": f"dev-{n}", "hostname": "rig", "online": True, "os": "linux", "slot": n}
    for n in range(1, 4)
]
DEVICES = (*LINUX_DEVICES, {"id": "win-1", "hostname": "rig", "online": True, "os": "windows"})
LINUX = {"os": "linux", "hostname": "rig"}


def _table_ok(broker: Any) -> None:
    broker.extras.pools.layer.table.check_invariants()


async def test_twenty_jobs_on_three_devices() -> None:
    """Jobs queue in arrival order, each is granted once, never two on one device, all are
    served as devices come back (in any order)."""
    handle, stop, thread = start_broker_thread(pools=PoolSettings(None, DEVICES))
    try:
        async with AsyncExitStack() as stack:
            jobs: list[Wire] = []
            for _ in range(20):
                jobs.append(await stack.enter_async_context(await connect(handle.port, timeout=5)))
            on: dict[str, int] = {}  # device -> job holding it
            tokens: dict[int, Any] = {}
            for i, w in enumerate(jobs):
                r = await lease(w, m.LeaseAcquire, requirements=LINUX, wait=60, name=f"job{i}")
                if i < 3:
                    assert r.status == "OK", r
                    device = r["lease"]["resource"]
                    assert device not in on and r["lease"]["attributes"]["os"] == "linux"
                    on[device], tokens[i] = i, r["lease"]["token"]
                else:
                    assert (r.status, r["position"]) == ("QUEUED", i - 2), r
            served = [0, 1, 2]
            waiting = list(range(3, 20))
            turn = 0
            while on:
                # Release devices in a changing order: oldest, newest, middle...
                holders = sorted(on.items(), key=lambda item: item[1])
                device, job = holders[turn % len(holders)]
                turn += 1
                r = await lease(jobs[job], m.LeaseReturn, token=tokens[job])
                assert r.status == "OK", r
                del on[device]
                if waiting:
                    nxt = waiting.pop(0)  # FIFO: the earliest waiter gets the device
                    cls, body = await next_push(jobs[nxt])
                    assert cls is m.LeaseGranted
                    got = body["lease"]["resource"]
                    assert got == device and got not in on
                    assert body["lease"]["queued"] > 0
                    on[got], tokens[nxt] = nxt, body["lease"]["token"]
                    served.append(nxt)
                handle.call(_table_ok, handle.broker)
            assert served == list(range(20))
            windows = await lease(
                jobs[0], m.LeaseAcquire, requirements={"os": "windows", "hostname": "rig"}
            )
            assert windows["lease"]["resource"] == "win-1"
    finally:
        stop.set()
        thread.join(timeout=10)


async def test_closed_job_frees_its_device_and_listing(tmp_path: Path) -> None:
    """A job whose connection closes releases its device to the next waiter; the listing
    shows free, held and offline; reload reads the file again; NO_MATCH is at once."""
    inventory = tmp_path / "resources.json"
    inventory.write_text(json.dumps([DEVICES[0], {**DEVICES[1], "online": False}]))
    handle, stop, thread = start_broker_thread(pools=PoolSettings(str(inventory)))
    try:
        async with (
            await connect(handle.port, timeout=5) as a,
            await connect(handle.port, timeout=5) as b,
        ):
            first = await lease(a, m.LeaseAcquire, requirements=LINUX, wait=0, note="flashing")
            assert first["lease"]["resource"] == "dev-1"
            busy = await lease(b, m.LeaseAcquire, requirements=LINUX, wait=0)
            assert busy.status == "NONE_FREE" and busy["holders"][0]["note"] == "flashing"
            never = await lease(b, m.LeaseAcquire, requirements={"os": "plan9"}, wait=60)
            assert never.status == "NO_MATCH"
            listing = await lease(b, m.PoolList)
            states = {r["id"]: r["status"] for r in listing["resources"]}
            assert states == {"dev-1": "held", "dev-2": "offline"}
            queued = await lease(b, m.LeaseAcquire, requirements=LINUX, wait=60)
            assert queued.status == "QUEUED"
            await a.aclose()
            cls, body = await next_push(b)
            assert cls is m.LeaseGranted and body["lease"]["resource"] == "dev-1"
            inventory.write_text(json.dumps([*DEVICES[:3]]))
            reloaded = await lease(b, m.PoolReload)
            assert reloaded["count"] == 3
            second = await lease(b, m.LeaseAcquire, requirements=LINUX, wait=0)
            assert second["lease"]["resource"] == "dev-2"
            inventory.write_text("not json")
            broken = await lease(b, m.PoolReload)
            assert broken.status == "NOT_LOADED" and "not JSON" in broken["reason"]
    finally:
        stop.set()
        thread.join(timeout=10)
