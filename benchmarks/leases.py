"""Lease throughput, contention and revocation latency against a broker process on loopback.

Suites:

- the lease table alone (in this process, no network): acquire + return cycles/s;
- acquire + return cycles/s for one client (each cycle: acquire, OK, return, revoked push, OK);
- 100 clients contending on one resource, each returning as soon as it is granted and asking
  again: grants/s and the p50/p99 wait from sending the acquire to holding the lease;
- revocation latency: a holder process is SIGKILLed while another client waits; time from the
  kill to the waiter's ``lease_granted`` push, p50/p99 over 20 runs.

Target: revocation p99 < 100 ms. The other figures are for comparing runs on one machine: one
client's cycles are bound by two loopback round trips each, and the 100 contenders by this
single-threaded load generator.
"""

from __future__ import annotations

import selectors
import signal
import subprocess
import sys
import time
from typing import Any

from benchmarks.broker import _connect
from benchmarks.common import Table, format_rate, percentiles, rate
from benchmarks.processes import ROOT, Server, _loops, _raise_nofile
from roost.broker.leases.table import LeaseTable
from roost.protocol import codec
from roost.protocol import messages as m
from roost.protocol.framing import FrameDecoder
from roost.protocol.values import Value

__all__ = ("run",)

RESOURCE = "bench/arm"


class _Conn:
    """A blocking raw connection that reads whole messages."""

    def __init__(self, port: int) -> None:
        self.sock = _connect(port)
        self.decoder = FrameDecoder()
        self.inbox: list[Any] = []
        self.sock.sendall(codec.encode(m.Hello(1, 30)))
        self.recv()

    def recv(self) -> Any:
        while not self.inbox:
            data = self.sock.recv(65536)
            if not data:
                raise ConnectionError("closed")
            self.inbox += [codec.decode(p) for p in self.decoder.feed(data)]
        return self.inbox.pop(0)

    def request(self, msg: Any) -> Any:
        """Send and return the reply's value, skipping pushes."""
        self.sock.sendall(codec.encode(msg))
        while True:
            got = self.recv()
            if isinstance(got, (m.ReplyOk, m.ReplyError)):
                return got.value.obj


def _table_cycles() -> float:
    """Acquire + return on the pure table, no I/O."""
    table = LeaseTable(1)
    table.connect("c", "client", 30.0, 0.0)
    clock = [0.0]

    def cycle() -> None:
        clock[0] += 1e-6
        reply, _ = table.acquire("c", RESOURCE, clock[0])
        table.return_lease("c", reply["lease"]["token"], clock[0])

    return rate(cycle)


def _cycles(port: int, duration: float) -> float:
    conn = _Conn(port)
    body = Value.of({"resource": RESOURCE})
    count = 0
    started = time.perf_counter()
    deadline = started + duration
    while time.perf_counter() < deadline:
        reply = conn.request(m.LeaseAcquire(1, body))
        token = reply["lease"]["token"]
        conn.request(m.LeaseReturn(2, Value.of({"token": token})))
        count += 1
    elapsed = time.perf_counter() - started
    conn.sock.close()
    return count / elapsed


def contend(
    port: int, clients: int, duration: float, request: dict[str, Any] | None = None
) -> tuple[float, float, float]:
    """``clients`` connections loop acquire (wait forever) / return; each acquire asks for
    ``request`` (default: the one resource :data:`RESOURCE`; a pool passes requirements).
    Returns grants/s and the p50 and p99 wait in ms."""
    sel = selectors.DefaultSelector()
    conns = [_Conn(port) for _ in range(clients)]
    body = {"resource": RESOURCE} if request is None else request
    acquire = codec.encode(m.LeaseAcquire(1, Value.of({**body, "wait": -1})))
    sent_at: dict[int, float] = {}
    waits: list[float] = []
    grants = 0

    def ask(i: int) -> None:
        sent_at[i] = time.perf_counter()
        conns[i].sock.sendall(acquire)

    def granted(i: int, token: Any) -> None:
        nonlocal grants
        grants += 1
        waits.append(time.perf_counter() - sent_at[i])
        conns[i].sock.sendall(codec.encode(m.LeaseReturn(2, Value.of({"token": token}))))

    for i, c in enumerate(conns):
        c.sock.setblocking(False)
        sel.register(c.sock, selectors.EVENT_READ, i)
        ask(i)
    started = time.perf_counter()
    deadline = started + duration
    while time.perf_counter() < deadline:
        for key, _ in sel.select(timeout=0.1):
            i = key.data
            c = conns[i]
            try:
                data = c.sock.recv(65536)
            except BlockingIOError:
                continue
            for payload in c.decoder.feed(data):
                msg = codec.decode(payload)
                if isinstance(msg, m.LeaseGranted):
                    granted(i, msg.body.obj["lease"]["token"])
                elif isinstance(msg, m.ReplyOk) and msg.id == 1:
                    value = msg.value.obj
                    if value["status"] == "OK":
                        granted(i, value["lease"]["token"])
                elif isinstance(msg, m.ReplyOk) and msg.id == 2:
                    ask(i)
    elapsed = time.perf_counter() - started
    for c in conns:
        c.sock.close()
    sel.close()
    p50, p99 = percentiles([w * 1000 for w in waits])
    return grants / elapsed, p50, p99


_HOLDER = (
    "import socket,sys,time\n"
    "from roost.protocol import codec, messages as m\n"
    "from roost.protocol.values import Value\n"
    "s=socket.create_connection(('127.0.0.1',int(sys.argv[1])))\n"
    "s.sendall(codec.encode(m.Hello(1,30))+codec.encode(m.LeaseAcquire(1,Value.of("
    "{'resource':sys.argv[2]}))))\n"
    "s.recv(65536)\n"
    "print('held',flush=True)\n"
    "time.sleep(60)\n"
)


def _revocation(port: int, runs: int) -> tuple[float, float]:
    latencies: list[float] = []
    for run in range(runs):
        resource = f"bench/kill{run}"
        holder = subprocess.Popen(
            [sys.executable, "-c", _HOLDER, str(port), resource],
            cwd=ROOT,
            stdout=subprocess.PIPE,
        )
        assert holder.stdout is not None
        try:
            while holder.stdout.readline().strip() != b"held":
                pass
            waiter = _Conn(port)
            reply = waiter.request(m.LeaseAcquire(1, Value.of({"resource": resource, "wait": -1})))
            assert reply["status"] == "QUEUED", reply
            killed = time.perf_counter()
            holder.send_signal(signal.SIGKILL)
            while not isinstance(waiter.recv(), m.LeaseGranted):
                pass
            latencies.append((time.perf_counter() - killed) * 1000)
            waiter.sock.close()
        finally:
            holder.kill()
            holder.wait()
            holder.stdout.close()
    p50, p99 = percentiles(latencies)
    return p50, p99


def run(quick: bool = False) -> None:
    """Run the lease benchmarks on each available event loop and print their tables."""
    _raise_nofile()
    duration = 0.5 if quick else 2.0
    runs = 5 if quick else 20
    cycles = Table("lease cycles (acquire + return)", ["where", "loop", "cycles/s"])
    cycles.add("table alone", "-", format_rate(_table_cycles()))
    contention = Table(
        "contention (clients loop acquire/return on one resource)",
        ["loop", "clients", "grants/s", "p50 wait ms", "p99 wait ms"],
    )
    kill = Table(f"revocation after SIGKILL ({runs} runs)", ["loop", "p50 ms", "p99 ms"])
    for loop in _loops():
        broker = Server("benchmarks.broker", "--serve", loop)
        try:
            cycles.add("one client, loopback", loop, format_rate(_cycles(broker.port, duration)))
            for clients in (10, 100):
                grants, p50, p99 = contend(broker.port, clients, duration)
                contention.add(loop, clients, format_rate(grants), f"{p50:.2f}", f"{p99:.2f}")
            p50, p99 = _revocation(broker.port, runs)
            kill.add(loop, f"{p50:.2f}", f"{p99:.2f}")
        finally:
            broker.close()
    cycles.print()
    contention.print()
    kill.print()
    print("target: revocation p99 < 100 ms")


if __name__ == "__main__":
    run("--quick" in sys.argv)
