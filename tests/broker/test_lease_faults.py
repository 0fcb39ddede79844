"""Lease fault tests with real processes on loopback: SIGKILL, SIGSTOP, take, restart."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anyio
import pytest

from roost.protocol import messages as m
from tests.broker.leasekit import lease, next_holder, next_push, observe_holder
from tests.brokerproc import BrokerProcess
from tests.wire import connect

pytestmark = pytest.mark.anyio

R = "lab/arm"

# A lease holder in its own process: hello, acquire, then print every lease message it gets as
# one JSON line with the monotonic receive time (system-wide on Linux). It pings every 0.2 s
# and exits 3 when the broker closes the connection.
HOLDER = r"""
import json, socket, sys, threading, time
from roost.protocol import codec, messages as m
from roost.protocol.framing import FrameDecoder
from roost.protocol.values import Value

port, resource, timeout = int(sys.argv[1]), sys.argv[2], int(sys.argv[3])
sock = socket.create_connection(("127.0.0.1", port))
lock = threading.Lock()
def send(msg):
    with lock:
        sock.sendall(codec.encode(msg))
send(m.Hello(1, timeout))
send(m.LeaseAcquire(1, Value.of({"resource": resource, "name": "proc"})))
def pinger():
    rid = 100
    while True:
        time.sleep(0.2)
        rid += 1
        try:
            send(m.Ping(rid))
        except OSError:
            return
threading.Thread(target=pinger, daemon=True).start()
decoder = FrameDecoder()
while True:
    try:
        data = sock.recv(65536)
    except OSError:  # reset by the broker
        data = b""
    if not data:
        print(json.dumps({"closed": time.monotonic()}), flush=True)
        sys.exit(3)
    for payload in decoder.feed(data):
        msg = codec.decode(payload)
        body = getattr(msg, "body", None) or getattr(msg, "value", None)
        if msg.code >= 0x50 or (msg.code == 0x05 and msg.id == 1):
            print(json.dumps({"code": msg.code, "at": time.monotonic(), "body": body.obj}),
                  flush=True)
"""


class Holder:
    """A holder subprocess; ``lines`` reads its JSON reports."""

    def __init__(self, port: int, resource: str = R, timeout: int = 5) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-c", HOLDER, str(port), resource, str(timeout)],
            stdout=subprocess.PIPE,
            stdin=subprocess.DEVNULL,
        )

    async def line(self, timeout: float = 5.0) -> dict[str, Any]:
        """The next report (raises TimeoutError if none comes in time)."""
        assert self.proc.stdout is not None
        readline = self.proc.stdout.readline
        with anyio.fail_after(timeout):
            raw = await anyio.to_thread.run_sync(readline, abandon_on_cancel=True)
        assert raw, "the holder process exited without reporting"
        report: dict[str, Any] = json.loads(raw)
        return report

    def signal(self, signum: int) -> None:
        """Send a signal to the holder."""
        self.proc.send_signal(signum)

    def close(self) -> None:
        """Kill and reap."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGCONT)
            self.proc.kill()
        self.proc.wait(timeout=10)
        if self.proc.stdout is not None:
            self.proc.stdout.close()


@pytest.fixture
def broker() -> Iterator[BrokerProcess]:
    """A broker subprocess."""
    with BrokerProcess() as proc:
        yield proc


async def granted_holder(port: int, **kw: Any) -> tuple[Holder, dict[str, Any]]:
    """Start a holder process and wait for its OK; return it and its token."""
    holder = Holder(port, **kw)
    report = await holder.line(timeout=20.0)
    assert report["body"]["status"] == "OK", report
    return holder, report["body"]["lease"]["token"]


async def test_sigkill_holder_waiter_granted_within_100ms(broker: BrokerProcess) -> None:
    """E8: SIGKILL the holder process; the waiter is granted within 100 ms."""
    holder, token = await granted_holder(broker.port)
    try:
        async with await connect(broker.port, timeout=5) as b:
            assert (await lease(b, m.LeaseAcquire, resource=R, wait=10)).status == "QUEUED"
            started = time.monotonic()
            holder.signal(signal.SIGKILL)
            cls, body = await next_push(b, timeout=2.0)
            elapsed = time.monotonic() - started
            assert cls is m.LeaseGranted and elapsed < 0.1, elapsed
            assert body["lease"]["token"]["seq"][0] > token["seq"][0]
            assert (await lease(b, m.LeaseValidate, token=token)).status == "OLDER"
    finally:
        holder.close()


async def test_sigstop_holder_revoked_after_idle_timeout(broker: BrokerProcess) -> None:
    """E8: a SIGSTOPped holder (timeout 1) is revoked within timeout + 1 s; once
    resumed it finds its connection closed and its token is OLDER."""
    holder, token = await granted_holder(broker.port, timeout=1)
    try:
        async with await connect(broker.port, timeout=5) as b:
            assert (await lease(b, m.LeaseAcquire, resource=R, wait=-1)).status == "QUEUED"
            holder.signal(signal.SIGSTOP)
            stopped = time.monotonic()
            cls, _ = await next_push(b, timeout=4.0)
            elapsed = time.monotonic() - stopped
            assert cls is m.LeaseGranted and elapsed < 2.0, elapsed
            holder.signal(signal.SIGCONT)
            assert "closed" in await holder.line()
            assert holder.proc.wait(timeout=5) == 3
            assert (await lease(b, m.LeaseValidate, token=token)).status == "OLDER"
    finally:
        holder.close()


async def test_take_pushes_displaced_holder_within_50ms(broker: BrokerProcess) -> None:
    """E8: a take reaches the displaced holder process at once (< 50 ms)."""
    holder, token = await granted_holder(broker.port)
    try:
        async with await connect(broker.port, timeout=5) as c:
            started = time.monotonic()
            r = await lease(c, m.LeaseTake, resource=R, reason="maintenance")
            assert r.status == "OK"
            report = await holder.line()
            assert report["code"] == 0x61 and report["body"]["reason"] == "taken"
            assert report["body"]["token"] == token
            assert report["body"]["new_token"] == r["lease"]["token"]
            assert report["at"] - started < 0.05
    finally:
        holder.close()


async def test_plain_observer_through_grant_take_kill_return(broker: BrokerProcess) -> None:
    """E10: a plain ESHET observer sees grant, take, return, grant, SIGKILL."""
    port = broker.port
    async with await connect(port) as w, await connect(port, timeout=5) as c:
        assert await observe_holder(w, R) == m.ReplyStateUnknown(0)
        a, _ = await granted_holder(port)
        try:
            taken = await lease(c, m.LeaseTake, resource=R, reason="mine")
            assert (await lease(c, m.LeaseReturn, token=taken["lease"]["token"])).status == "OK"
            b, _ = await granted_holder(port)
            try:
                b.signal(signal.SIGKILL)
                seen = [await next_holder(w) for _ in range(5)]
            finally:
                b.close()
        finally:
            a.close()
        names = [[h["name"] or "c" for h in s["holders"]] for s in seen]
        assert names == [["proc"], ["c"], [], ["proc"], []]
        assert seen[1]["holders"][0]["client"] == c.client_id.obj  # type: ignore[union-attr]
        assert seen[0]["holders"][0]["lease_id"] != seen[3]["holders"][0]["lease_id"]
        with anyio.move_on_after(0.3):
            extra = await w.recv(0.3)
            raise AssertionError(f"unexpected {extra!r}")


async def test_restart_with_state_dir(tmp_path: Path) -> None:
    """Case L18: after a restart with a state dir old tokens are WRONG_EPOCH and new roots are
    above the old ones; a graceful stop pushed restart first; audit lines were written."""
    state = tmp_path / "state"
    audit = tmp_path / "audit.jsonl"
    with BrokerProcess(["--state-dir", str(state), "--audit-file", str(audit)]) as proc:
        async with await connect(proc.port, timeout=5) as a:
            old = (await lease(a, m.LeaseAcquire, resource=R))["lease"]["token"]
            proc.stop()
            cls, body = await next_push(a)
            assert cls is m.LeaseRevoked and body["reason"] == "restart"
        proc.restart()
        async with await connect(proc.port, timeout=5) as a:
            new = (await lease(a, m.LeaseAcquire, resource=R))["lease"]["token"]
            assert new["epoch"] > old["epoch"] and new["seq"][0] > old["seq"][0]
            assert (await lease(a, m.LeaseValidate, token=old)).status == "WRONG_EPOCH"
    lines = [json.loads(x) for x in audit.read_text().splitlines()]
    assert [(x["event"], x.get("reason")) for x in lines] == [
        ("granted", None),
        ("ended", "restart"),
        ("granted", None),
        ("ended", "disconnected"),  # the client closed before the broker stopped
    ]
    assert (state / "leases.jsonl").read_text() == audit.read_text()
    assert (state / "leases.state.json").exists()


async def test_audit_lines_in_json_log(broker: BrokerProcess) -> None:
    """E10: every grant and end is one structured log line."""
    async with await connect(broker.port, timeout=5) as a:
        tok = (await lease(a, m.LeaseAcquire, resource=R, note="n1"))["lease"]["token"]
        await lease(a, m.LeaseReturn, token=tok)
    record = broker.wait_for_log(lambda r: r.get("audit", {}).get("event") == "ended")
    assert record["audit"]["reason"] == "returned" and record["audit"]["token"] == tok
    assert record["audit"]["holder"]["note"] == "n1"
