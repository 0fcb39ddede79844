"""Pools through the real command line: `roost lease hold --requirements ... -- cmd` exports
the resource (ours and lockable's variables) and exits with cmd's status; a killed job frees its
device; `roost resources` shows the inventory."""

from __future__ import annotations

import json
import os
import signal
import socket
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from roost.broker.leases.pools import PoolSettings
from roost.client import SyncClient
from tests.brokerproc import BrokerProcess
from tests.cli.conftest import RunRoost, SpawnRoost
from tests.conftest import start_broker_thread

HOST = socket.gethostname()  # lockable's default: resources of this host only
DEVICES = (
    {"id": "dev-1", "hostname": HOST, "online": True, "os": "linux", "port": "/dev/ttyUSB0"},
    {"id": "dev-2", "hostname": HOST, "online": False, "os": "linux"},
    {"id": "win-1", "hostname": HOST, "online": True, "os": "windows"},
)
SHOW = (
    "import json, os; print(os.environ['ROOST_RESOURCE'], os.environ['ID'], os.environ['PORT'],"
    " os.environ['ONLINE'], json.loads(os.environ['ROOST_RESOURCE_JSON'])['os']);"
    " raise SystemExit(5)"
)


@pytest.fixture
def pool() -> Iterator[str]:
    """A broker with the DEVICES pool; its address."""
    handle, stop, thread = start_broker_thread(pools=PoolSettings(None, DEVICES))
    try:
        yield handle.address
    finally:
        stop.set()
        thread.join(timeout=10)


def test_hold_by_requirements_exports_and_exits_with_status(pool: str, spawn: SpawnRoost) -> None:
    """The command sees ROOST_RESOURCE, ROOST_RESOURCE_JSON and lockable's ID, PORT, ONLINE;
    roost exits with the command's status."""
    req = json.dumps({"os": "linux"})
    proc = spawn(
        "lease", "hold", "--requirements", req, "-s", pool, "--", sys.executable, "-c", SHOW
    )
    assert proc.line() == "dev-1 dev-1 /dev/ttyUSB0 True linux"
    assert proc.wait() == 5


def test_requirement_nothing_matches_fails_at_once(roost: RunRoost, pool: str) -> None:
    """NO_MATCH (exit 1) even with --wait, and the command never runs."""
    req = json.dumps({"os": "plan9"})
    result = roost(
        "lease", "hold", "--requirements", req, "--wait", "60", "-s", pool, "--", "echo", "ran"
    )
    assert result.code == 1 and "NO_MATCH" in result.err and "plan9" in result.err
    assert "ran" not in result.out
    bad = roost("lease", "hold", "--requirements", "[1]", "-s", pool, "--", "echo", "ran")
    assert bad.code == 2 and "JSON object" in bad.err


def test_killed_job_frees_its_device(pool: str, spawn: SpawnRoost, roost: RunRoost) -> None:
    """SIGKILL the `lease hold` process: its connection closes and a waiting job gets the
    device; `roost resources` shows held, then free, and offline devices."""
    child = "import os, time; print(os.getpid(), flush=True); time.sleep(60)"
    req = json.dumps({"os": "windows"})
    proc = spawn(
        "lease",
        "hold",
        "--requirements",
        req,
        "--note",
        "flashing",
        "-s",
        pool,
        "--",
        sys.executable,
        "-c",
        child,
    )
    child_pid = int(proc.line())
    try:
        listing = roost("resources", "-s", pool, "--json")
        states = {r["id"]: r["status"] for r in map(json.loads, listing.lines)}
        assert states == {"dev-1": "free", "dev-2": "offline", "win-1": "held"}
        table = roost("resources", "-s", pool)
        assert any("win-1" in line and "flashing" in line for line in table.lines)
        with SyncClient(server=pool) as waiter:
            proc.proc.send_signal(signal.SIGKILL)
            held = waiter.pool_acquire({"os": "windows"}, wait=10)
            assert held.resource == "win-1" and held.attributes["os"] == "windows"
            held.return_lease()
    finally:
        os.kill(child_pid, signal.SIGKILL)


def test_sighup_reloads_the_inventory(tmp_path: Path, roost: RunRoost) -> None:
    """`roost serve --inventory F` reads F again on SIGHUP (a real broker process)."""
    inventory = tmp_path / "resources.json"
    inventory.write_text(json.dumps(DEVICES[:1]))
    with BrokerProcess(["--inventory", str(inventory)]) as broker:
        s = f"127.0.0.1:{broker.port}"
        first = roost("resources", "-s", s, "--json")
        assert [json.loads(line)["id"] for line in first.lines] == ["dev-1"]
        inventory.write_text(json.dumps(list(DEVICES)))
        assert broker.proc is not None
        broker.proc.send_signal(signal.SIGHUP)
        broker.wait_for_log(lambda r: r.get("msg") == "pool inventory: 3 resources")
        after = roost("resources", "-s", s, "--json")
        assert [json.loads(line)["id"] for line in after.lines] == ["dev-1", "dev-2", "win-1"]
