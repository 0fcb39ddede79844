"""No request costs more than its answer: the broker's longest event-loop iteration (loop lag)
and a witness client's round trips while one client does each expensive thing.

Scenarios, each against a broker process with wide limits (``benchmarks.probe``):

- ``idle``: nothing but the witness (the floor of both figures);
- ``ls 100k``: 50 ``/meta/ls`` calls of a directory with 100,000 entries (before: 4.4 s frozen);
- ``10k acquires``: one client pipelines 10,000 acquires of distinct resources (before: 32 s,
  the broker frozen 1.7 s per 300);
- ``10k regs + close`` / ``100k regs + close``: a client with 10,000 (the default
  ``max_per_connection``) or 100,000 registrations disconnects (before: one synchronous
  cleanup, 50-60 ms for 100,000; now settled in slices, roost.broker.teardown);
- ``10k leases + close``: a client holding 10,000 leases disconnects (its leases end in
  slices too).

A close scenario's "attack s" is the close and :data:`CLEANUP_WINDOW`, within which its
cleanup ends; "gc max ms" is the longest cyclic collection in the measured window.

Goals: max loop lag <= 20 ms, witness p99 <= 5 ms (on an otherwise idle machine).
"""

from __future__ import annotations

import multiprocessing
import socket
import sys
import threading
import time
from collections.abc import Callable
from typing import Any

from benchmarks.broker import _connect
from benchmarks.common import Table, percentiles
from benchmarks.processes import Server, _loops
from roost.protocol import codec
from roost.protocol import messages as m
from roost.protocol.framing import FrameDecoder
from roost.protocol.values import Value, pack

__all__ = ("run",)

GOALS = {"lag_ms": 20.0, "p99_ms": 5.0}


def _witness_main(port: int, stop: Any, ready: Any, out: Any) -> None:
    """The witness process: ping back to back (1 ms pause) until ``stop``, then send the round
    trips (ms) through ``out``."""
    sock = _connect(port)
    sock.sendall(codec.encode(m.Hello(1, 30)))
    decoder = FrameDecoder()

    def read_one() -> None:
        while not decoder.feed(sock.recv(65536)):
            pass

    read_one()
    ready.set()
    samples: list[float] = []
    ping = codec.encode(m.Ping(1))
    while not stop.is_set():
        started = time.perf_counter()
        sock.sendall(ping)
        read_one()
        samples.append((time.perf_counter() - started) * 1000)
        time.sleep(0.001)
    sock.close()
    out.send(samples)


class _Witness:
    """A client in a process of its own that pings the broker and records each round trip.

    Its own process, so that the attacking client's threads in this one never delay a round
    trip by holding the GIL (up to the 5 ms switch interval): the figure is the broker's.
    """

    def __init__(self, port: int) -> None:
        ctx = multiprocessing.get_context("spawn")
        self._stop = ctx.Event()
        self._ready = ctx.Event()
        self._out, into = ctx.Pipe(duplex=False)
        self._proc = ctx.Process(
            target=_witness_main, args=(port, self._stop, self._ready, into), daemon=True
        )
        self.samples: list[float] = []

    def start(self) -> None:
        self._proc.start()
        if not self._ready.wait(30):
            raise TimeoutError("witness did not connect")

    def finish(self) -> None:
        self._stop.set()
        self.samples = self._out.recv()
        self._proc.join(10)


def _pipeline(sock: socket.socket, frames: list[bytes], replies: int) -> None:
    """Send ``frames`` (in 64 KiB writes) and read ``replies`` frames back."""
    decoder = FrameDecoder()
    got = 0

    def reader() -> None:
        nonlocal got
        while got < replies:
            data = sock.recv(1 << 20)
            if not data:
                raise ConnectionError("closed")
            got += len(decoder.feed(data))

    thread = threading.Thread(target=reader, daemon=True)
    thread.start()
    batch: list[bytes] = []
    size = 0
    for frame in frames:
        batch.append(frame)
        size += len(frame)
        if size > 65536:
            sock.sendall(b"".join(batch))
            batch, size = [], 0
    if batch:
        sock.sendall(b"".join(batch))
    thread.join()


def _client(port: int) -> socket.socket:
    sock = _connect(port)
    sock.sendall(codec.encode(m.Hello(1, 30)))
    decoder = FrameDecoder()
    while not decoder.feed(sock.recv(256)):
        pass
    return sock


def _registrations(port: int, prefix: str, count: int) -> socket.socket:
    sock = _client(port)
    frames = [codec.encode(m.EventRegister(i & 0xFFFF, f"{prefix}/n{i}")) for i in range(count)]
    _pipeline(sock, frames, count)
    return sock


def _ls(port: int, setup: list[socket.socket]) -> Callable[[], None]:
    setup.append(_registrations(port, "/big", 100_000))
    sock = _client(port)
    setup.append(sock)
    call = codec.encode(m.ActionCall(1, "/meta/ls", Value.of(["/big"])))
    return lambda: _pipeline(sock, [call] * 50, 50)


def _acquire_frame(i: int) -> bytes:
    """A ``lease_acquire`` of resource ``j/<i>`` (request id ``i``)."""
    body = b"\x50" + (i & 0xFFFF).to_bytes(2, "big") + pack({"resource": f"j/{i}"})
    return b"G" + len(body).to_bytes(2, "big") + body


def _acquires(port: int, setup: list[socket.socket]) -> Callable[[], None]:
    sock = _client(port)
    setup.append(sock)

    def attack() -> None:
        _pipeline(sock, [_acquire_frame(i) for i in range(10_000)], 10_000)

    return attack


#: Seconds a close scenario goes on after the close: the cleanup (in slices) ends within it.
CLEANUP_WINDOW = 1.0


def _closing(port: int, sock: socket.socket, setup: list[socket.socket]) -> Callable[[], None]:
    """The attack that closes ``sock``, then waits :data:`CLEANUP_WINDOW`."""
    witness_of_close = _client(port)
    setup.append(witness_of_close)

    def attack() -> None:
        sock.close()
        # The close is processed when a later request on another connection is answered.
        ping = codec.encode(m.Ping(9))
        witness_of_close.sendall(ping)
        witness_of_close.recv(64)
        time.sleep(CLEANUP_WINDOW)

    return attack


def _close(port: int, setup: list[socket.socket], count: int = 100_000) -> Callable[[], None]:
    return _closing(port, _registrations(port, "/many", count), setup)


def _leases_close(port: int, setup: list[socket.socket]) -> Callable[[], None]:
    sock = _client(port)
    frames = [_acquire_frame(i) for i in range(10_000)]
    _pipeline(sock, frames, len(frames))
    return _closing(port, sock, setup)


def _idle(port: int, setup: list[socket.socket]) -> Callable[[], None]:
    return lambda: time.sleep(0.5)


SCENARIOS: list[tuple[str, Callable[[int, list[socket.socket]], Callable[[], None]]]] = [
    ("idle", _idle),
    ("ls 100k (50 calls)", _ls),
    ("10k acquires", _acquires),
    ("10k regs + close", lambda port, setup: _close(port, setup, 10_000)),
    ("100k regs + close", _close),
    ("10k leases + close", _leases_close),
]


def _lag(server: Server) -> tuple[float, float]:
    """The broker's longest loop iteration and longest cyclic collection (ms) since the last
    call."""
    assert server.proc.stdin is not None and server.proc.stdout is not None
    server.proc.stdin.write(b"lag\n")
    server.proc.stdin.flush()
    fields = server.proc.stdout.readline().decode().split()  # lag MS gc COUNT LONGEST TOTAL
    return float(fields[1]), float(fields[4])


def run(quick: bool = False) -> None:
    """Run every scenario on each event loop and print one table."""
    table = Table(
        "stalls: one client's expensive request, a witness pinging meanwhile",
        [
            "loop",
            "scenario",
            "attack s",
            "max lag ms",
            "gc max ms",
            "witness p50 ms",
            "p99 ms",
            "max ms",
        ],
    )
    for loop in _loops():
        for name, make in SCENARIOS:
            server = Server("benchmarks.probe", loop)
            setup: list[socket.socket] = []
            try:
                attack = make(server.port, setup)
                witness = _Witness(server.port)
                witness.start()
                time.sleep(0.1)
                _lag(server)  # forget the set-up
                time.sleep(0.05)
                started = time.perf_counter()
                attack()
                elapsed = time.perf_counter() - started
                time.sleep(0.05)
                witness.finish()
                lag, gc_pause = _lag(server)
                p50, p99 = percentiles(witness.samples)
                table.add(
                    loop,
                    name,
                    f"{elapsed:.2f}",
                    f"{lag:.1f}",
                    f"{gc_pause:.1f}",
                    f"{p50:.2f}",
                    f"{p99:.2f}",
                    f"{max(witness.samples):.2f}",
                )
            finally:
                for sock in setup:
                    sock.close()
                server.close()
    table.print()
    print(
        f"goals: max loop lag <= {GOALS['lag_ms']:.0f} ms, witness p99 <= {GOALS['p99_ms']:.0f} ms"
    )


if __name__ == "__main__":
    run("--quick" in sys.argv)
