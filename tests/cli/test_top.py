"""``roost top``: one snapshot when not on a terminal, a live view on one (q quits)."""

from __future__ import annotations

import json
import os
import pty
import select
import subprocess
import sys
import time
from collections.abc import Iterator
from typing import Any

import pytest
from rich.console import Console

from roost.cli.top import render
from roost.protocol import messages as m
from tests.cli.conftest import WAIT, RunRoost
from tests.conftest import BrokerThread, start_broker_thread
from tests.wire import connect


@pytest.fixture
def web() -> Iterator[tuple[BrokerThread, int]]:
    """A broker with its gateway on an ephemeral port: (broker, HTTP port)."""
    handle, stop, thread = start_broker_thread(http_port=0)
    assert handle.broker.gateway is not None
    try:
        yield handle, handle.broker.gateway.port
    finally:
        stop.set()
        thread.join(timeout=10)


def _text(renderable: Any) -> str:
    console = Console(width=120, record=True, file=open(os.devnull, "w"))  # noqa: SIM115
    console.print(renderable)
    console.file.close()
    return console.export_text()


def test_render_rates_from_two_snapshots() -> None:
    """Rates are the difference of two snapshots over the time between them."""
    before = {
        "time": 100.0,
        "messages_in": 100,
        "received": {"event_emit": 50, "ping": 10},
        "sent": {"event_notify": 500},
        "top_clients": [{"client": "c1", "peer": "p", "received": 40}],
    }
    now = {
        "time": 102.0,
        "uptime": 61,
        "connections": 3,
        "messages_in": 300,
        "received": {"event_emit": 250, "ping": 10},
        "sent": {"event_notify": 2500},
        "top_clients": [{"client": "c1", "peer": "p", "received": 240}],
        "leases": {"held": 2, "waiting": 1},
    }
    text = _text(render(now, before, "http://x/api/stats"))
    assert "connections 3" in text and "leases 2 held, 1 waiting" in text
    lines = text.splitlines()
    assert any(line.split()[:3] == ["messages", "in", "300"] and "100/s" in line for line in lines)
    emit = next(line for line in lines if line.startswith("event_emit"))
    assert emit.split() == ["event_emit", "250", "100/s"]
    notify = next(line for line in lines if line.startswith("event_notify"))
    assert notify.split() == ["event_notify", "2,500", "1,000/s"]
    assert next(line for line in lines if line.startswith("c1")).split() == [
        "c1",
        "p",
        "240",
        "100/s",
    ]
    first = _text(render(now, None, "http://x/api/stats"))
    assert "100/s" not in first  # no rates without an earlier snapshot


@pytest.mark.anyio
async def test_snapshot_when_not_a_terminal(web: tuple[BrokerThread, int]) -> None:
    """Without a terminal, top prints one snapshot with the broker's traffic and exits 0."""
    broker, http_port = web
    async with await connect(broker.port) as client:
        for i in range(5):
            await client.call_ok(m.Ping(i))
        args = ["-s", broker.address, "top", "--http-port", str(http_port)]
        proc = subprocess.run(
            [sys.executable, "-m", "roost", *args],
            capture_output=True,
            text=True,
            timeout=WAIT,
            check=False,
        )
        assert proc.returncode == 0, proc.stderr
        assert "connections 3" in proc.stdout  # this client and the gateway's own two
        assert any(line.split()[:2] == ["ping", "5"] for line in proc.stdout.splitlines())
        as_json = subprocess.run(
            [sys.executable, "-m", "roost", "--json", *args],
            capture_output=True,
            text=True,
            timeout=WAIT,
            check=False,
        )
        assert json.loads(as_json.stdout)["received"]["ping"] == 5


def test_unreachable_exits_3(roost: RunRoost) -> None:
    """No gateway at that port: one line naming the URL, exit 3."""
    result = roost("-s", "127.0.0.1:1", "top", "--http-port", "1")
    assert result.code == 3
    assert result.err.startswith("roost: cannot read http://127.0.0.1:1/api/stats: ")


def test_live_view_quits_on_q(web: tuple[BrokerThread, int]) -> None:
    """On a terminal the view redraws until q is typed; then exit 0."""
    broker, http_port = web
    master, slave = pty.openpty()
    args = ["-s", broker.address, "top", "--http-port", str(http_port), "--interval", "0.1"]
    proc = subprocess.Popen(
        [sys.executable, "-m", "roost", *args], stdin=slave, stdout=slave, stderr=slave
    )
    os.close(slave)
    try:
        seen = b""
        deadline = time.monotonic() + WAIT
        while seen.count(b"roost top") < 2 and time.monotonic() < deadline:
            ready, _, _ = select.select([master], [], [], 0.5)
            if ready:
                seen += os.read(master, 65536)
        assert seen.count(b"roost top") >= 2, seen  # drawn, then redrawn
        os.write(master, b"q")
        assert proc.wait(timeout=WAIT) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        os.close(master)
