"""Broker throughput, latency and memory, with a bare byte relay as the ceiling.

The broker (and the relay) run in their own process; this process is the load generator. It
stays cheap: frames are encoded once up front, listeners only count received bytes (frames
have a known size), and only latency runs parse frames, to read the send time each carries.

Suites:

- event fan-out, 1 emitter to 1, 10 and 100 listeners, 32 B and 1 KiB values: deliveries/s
  at saturation (the emitter keeps a bounded number of events in flight) and p50/p99 latency
  at a paced 10,000 deliveries/s;
- action round trips with 1 and 16 concurrent callers (one owner): calls/s, p50/p99;
- state changes to 100 observers: deliveries/s;
- RSS per idle connection at 5,000 connections (a fresh broker process);
- the same fan-out through the relay;
- paced latency with CPython's default garbage collector settings beside the settled ones of
  ``roost serve`` (fresh brokers, same run), with each broker's collections and longest pause.

Beside each latency figure, "others' cores" is how many cores processes other than the broker
and the load generator used meanwhile: when others keep the cores busy, a woken broker (or
relay) waits for a scheduler tick, and p99 shows the machine rather than the broker.

Every broker figure is measured on asyncio's own event loop and, when installed, on uvloop (the
default of ``roost serve``); the relay runs on asyncio's loop.

Beside each saturated rate, "per CPU-s" divides the work done by the CPU time the server
process used meanwhile: the rate one fully available core would sustain, which stays
meaningful when other processes compete for the machine.

Targets: fan-out to 1 listener >= 200,000/s and to 100 listeners >= 1,000,000/s (32 B);
16-caller round trips >= 40,000/s; p99 < 1 ms at a paced 10,000 deliveries/s (1 listener);
<= 3 KiB RSS per idle connection.
"""

from __future__ import annotations

import gc
import os
import selectors
import socket
import sys
import time
from collections.abc import Sequence

from benchmarks.common import Table, format_rate, percentiles
from benchmarks.processes import (
    OtherLoad,
    Server,
    _loops,
    _raise_nofile,
    _serve,
    gc_report,
)
from roost.protocol import codec
from roost.protocol import messages as m
from roost.protocol.framing import FrameDecoder
from roost.protocol.values import Value

__all__ = ("run",)

EVENT_PATH = "/bench/ev"
TARGETS = {"fanout1": 200_000, "fanout100": 1_000_000, "calls16": 40_000, "p99_ms": 1.0}
#: Bytes allowed in flight per listener (far below the 8 MiB slow-consumer bound).
IN_FLIGHT_BYTES = 256 * 1024


# -- raw client helpers -------------------------------------------------------------------------


def _connect(port: int) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", port))
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return sock


def _read_frames(sock: socket.socket, count: int) -> list[bytes]:
    """Read exactly ``count`` frames (blocking); used during set-up only."""
    decoder = FrameDecoder()
    payloads: list[bytes] = []
    while len(payloads) < count:
        data = sock.recv(65536)
        if not data:
            raise ConnectionError("closed during set-up")
        payloads += decoder.feed(data)
    if len(payloads) != count:
        raise RuntimeError("unexpected extra frames during set-up")
    return payloads


def _client(port: int, *requests: m.Message) -> socket.socket:
    """Connect, hello, send ``requests`` and wait for their replies."""
    sock = _connect(port)
    sock.sendall(codec.encode(m.Hello(1, 30)) + b"".join(codec.encode(r) for r in requests))
    _read_frames(sock, 1 + len(requests))
    return sock


def _value(size: int, stamp: int = 0) -> bytes:
    """A msgpack bin of exactly ``size`` bytes whose last 8 bytes are ``stamp``."""
    head = b"\xc4" + bytes((size - 2,)) if size - 2 < 256 else b"\xc5" + (size - 3).to_bytes(2)
    return head + b"\x00" * (size - len(head) - 8) + stamp.to_bytes(8, "big")


# -- fan-out ------------------------------------------------------------------------------------


def _setup_fanout(
    port: int, listeners: int, path: str, relay: bool
) -> tuple[socket.socket, list[socket.socket]]:
    if relay:
        socks = [_connect(port) for _ in range(listeners)]
        emitter = _connect(port)
        return emitter, socks
    socks = [_client(port, m.EventListen(1, path)) for _ in range(listeners)]
    emitter = _client(port)
    return emitter, socks


def _pump(
    emitter: socket.socket,
    listeners: Sequence[socket.socket],
    frame: bytes,
    note_size: int,
    duration: float,
) -> float:
    """Send ``frame`` as fast as listeners keep up (bounded in flight); return deliveries/s."""
    window = max(4, IN_FLIGHT_BYTES // note_size)
    batch_count = max(1, window // 2)
    batch = frame * batch_count
    selector = selectors.DefaultSelector()
    for index, sock in enumerate(listeners):
        sock.setblocking(False)
        selector.register(sock, selectors.EVENT_READ, index)
    emitter.setblocking(False)
    selector.register(emitter, selectors.EVENT_READ, -1)
    received = [0] * len(listeners)
    sent = 0
    pending = b""
    start = time.perf_counter()
    deadline = start + duration
    last = start
    try:
        while True:
            now = time.perf_counter()
            sending = now < deadline
            delivered = min(received) // note_size
            if sending and not pending and sent - delivered < window:
                pending = batch
                sent += batch_count
            if pending:
                try:
                    written = emitter.send(pending)
                    pending = pending[written:]
                except BlockingIOError:
                    pass
            elif not sending and delivered >= sent:
                break
            if now > deadline + 30:
                raise RuntimeError("deliveries stalled")
            for key, _ in selector.select(0 if pending else 0.05):
                data = key.fileobj.recv(1 << 20)  # type: ignore[union-attr]
                if key.data >= 0:
                    received[key.data] += len(data)
                    last = time.perf_counter()
    finally:
        selector.close()
    return sent * len(listeners) / (last - start)


def _paced_latency(
    emitter: socket.socket,
    listeners: Sequence[socket.socket],
    head: bytes,
    size: int,
    *,
    rate: float,
    duration: float,
) -> list[float]:
    """Send one stamped frame every ``len(listeners) / rate`` s; return latencies in ms."""
    interval = len(listeners) / rate
    decoders = [FrameDecoder() for _ in listeners]
    selector = selectors.DefaultSelector()
    for index, sock in enumerate(listeners):
        sock.setblocking(False)
        selector.register(sock, selectors.EVENT_READ, index)
    emitter.setblocking(False)
    selector.register(emitter, selectors.EVENT_READ, -1)
    samples: list[float] = []
    expected = 0
    # The generator's own collector pauses would count as broker latency.
    collecting = gc.isenabled()
    gc.disable()
    start = time.perf_counter()
    next_send = start
    try:
        while True:
            now = time.perf_counter()
            if now >= next_send and now < start + duration:
                stamp = time.perf_counter_ns()
                frame_payload = head + _value(size, stamp)
                emitter.sendall(b"G" + len(frame_payload).to_bytes(2, "big") + frame_payload)
                expected += len(listeners)
                next_send += interval
            elif now >= start + duration and len(samples) >= expected:
                break
            if now > start + duration + 10:
                raise RuntimeError("latency samples missing")
            timeout = max(0.0, min(next_send - now, 0.01))
            for key, _ in selector.select(timeout):
                data = key.fileobj.recv(1 << 20)  # type: ignore[union-attr]
                if key.data < 0:
                    continue
                arrived = time.perf_counter_ns()
                for payload in decoders[key.data].feed(data):
                    if payload[0] == 0x33:
                        samples.append((arrived - int.from_bytes(payload[-8:], "big")) / 1e6)
    finally:
        if collecting:
            gc.enable()
        selector.close()
    return samples


def _fanout(
    server: Server, listeners: int, size: int, relay: bool, quick: bool
) -> tuple[float, float, float, float, float]:
    path = f"{EVENT_PATH}{listeners}_{size}"
    emitter, socks = _setup_fanout(server.port, listeners, path, relay)
    try:
        value = _value(size)
        notify = codec.encode(m.EventNotify(path, Value(value)))
        frame = notify if relay else codec.encode(m.EventEmit(1, path, Value(value)))
        duration = 0.4 if quick else 1.0
        cpu = server.cpu_seconds()
        rate = _pump(emitter, socks, frame, len(notify), duration)
        per_cpu = rate * duration / max(server.cpu_seconds() - cpu, 0.01)
        head = bytes((0x33,)) + path.encode() + b"\0"
        if not relay:
            head = b"\x31\x00\x01" + path.encode() + b"\0"
        others = OtherLoad(server)
        samples = _paced_latency(
            emitter, socks, head, size, rate=10_000, duration=0.2 if quick else 0.5
        )
        p50, p99 = percentiles(samples)
        return rate, per_cpu, p50, p99, others.cores()
    finally:
        for sock in (emitter, *socks):
            sock.close()


# -- action calls -------------------------------------------------------------------------------


def _calls(server: Server, callers: int, duration: float) -> tuple[float, float, float, float]:
    port = server.port
    owner = _client(port, m.ActionRegister(1, f"/bench/act{callers}"))
    socks = [_client(port) for _ in range(callers)]
    cpu = server.cpu_seconds()
    call = codec.encode(m.ActionCall(1, f"/bench/act{callers}", Value(b"\x90")))
    selector = selectors.DefaultSelector()
    owner.setblocking(False)
    selector.register(owner, selectors.EVENT_READ, -1)
    for index, sock in enumerate(socks):
        selector.register(sock, selectors.EVENT_READ, index)
    # Forwarded calls have the caller's layout and size (only the type byte and id differ), so
    # the owner answers by slicing ids at fixed offsets; callers only count reply bytes.
    frame_size = len(call)
    rest = b""
    scratch = bytearray(1 << 16)
    sent_at = [0] * callers
    got = [0] * callers
    samples: list[float] = []
    start = time.perf_counter()
    deadline_ns = time.perf_counter_ns() + int(duration * 1e9)
    for index, sock in enumerate(socks):
        sent_at[index] = time.perf_counter_ns()
        sock.sendall(call)
    outstanding = callers
    try:
        while outstanding:
            for key, _ in selector.select(1.0):
                ready: socket.socket = key.fileobj  # type: ignore[assignment]
                if key.data < 0:
                    data = rest + ready.recv(1 << 16)
                    whole = len(data) - len(data) % frame_size
                    rest = data[whole:]
                    owner.sendall(
                        b"".join(
                            [
                                b"G\x00\x04\x05" + data[at + 4 : at + 6] + b"\xc0"
                                for at in range(0, whole, frame_size)
                            ]
                        )
                    )
                    continue
                index = key.data
                got[index] += ready.recv_into(scratch)
                while got[index] >= 7:  # one forwarded "ok nil" reply
                    got[index] -= 7
                    now = time.perf_counter_ns()
                    samples.append((now - sent_at[index]) / 1e6)
                    if now < deadline_ns:
                        sent_at[index] = now
                        ready.sendall(call)
                    else:
                        outstanding -= 1
    finally:
        selector.close()
        for sock in (owner, *socks):
            sock.close()
    elapsed = time.perf_counter() - start
    per_cpu = len(samples) / max(server.cpu_seconds() - cpu, 0.01)
    p50, p99 = percentiles(samples)
    return len(samples) / elapsed, per_cpu, p50, p99


# -- states -------------------------------------------------------------------------------------


def _states(server: Server, observers: int, quick: bool) -> tuple[float, float]:
    path = "/bench/state"
    owner = _client(server.port, m.StateRegister(1, path))
    socks = [_client(server.port, m.StateObserve(1, path)) for _ in range(observers)]
    try:
        value = Value(_value(32))
        frame = codec.encode(m.StateChanged(1, path, value))
        note = codec.encode(m.StateNotify(path, value))
        duration = 0.4 if quick else 1.0
        cpu = server.cpu_seconds()
        rate = _pump(owner, socks, frame, len(note), duration)
        return rate, rate * duration / max(server.cpu_seconds() - cpu, 0.01)
    finally:
        for sock in (owner, *socks):
            sock.close()


# -- idle memory --------------------------------------------------------------------------------


def _idle_rss(count: int, loop: str) -> float:
    """KiB of broker RSS per idle connection (hello with timeout 30), fresh broker process."""
    server = Server("benchmarks.broker", "--serve", loop)
    socks: list[socket.socket] = []
    try:
        probe = _client(server.port)  # warm up: first connection allocates shared structures
        probe.close()
        time.sleep(0.2)
        before = server.rss_kib()
        hello = codec.encode(m.Hello(1, 30))
        for _ in range(count):
            sock = _connect(server.port)
            sock.sendall(hello)
            socks.append(sock)
        for sock in socks:
            _read_frames(sock, 1)
        time.sleep(0.3)  # let the broker publish /meta/clients and settle
        return (server.rss_kib() - before) / count
    finally:
        for sock in socks:
            sock.close()
        server.close()


# -- garbage collector settings ----------------------------------------------------------------


def _gc_latency(loops: Sequence[str], quick: bool) -> Table:
    """Paced latency (1 listener, 32 B) with CPython's default collector settings and with the
    settled collector of ``roost serve``, each on a fresh broker, in the same run.

    Each broker first serves a 100-listener fan-out, as in the main table: the connections it
    opens and closes are what eventually triggers full collections of the start-up heap. The
    paced run is longer than the main table's, and the slowest deliveries are shown, since a
    collector pause shows as a burst of late deliveries whenever it falls in the window. The
    broker counts its own collections and their longest pause over its whole run (warm-up
    included), so the cause is visible even when no pause fell in the paced window.
    """
    table = Table(
        "garbage collector and tail latency (1 listener, 32 B, paced 10,000 deliveries/s)",
        [
            "loop",
            "collector",
            "samples",
            "p50 ms",
            "p99 ms",
            "p99.9 ms",
            "max ms",
            "collections",
            "longest pause ms",
            "others' cores",
        ],
    )
    path = f"{EVENT_PATH}_gc"
    head = b"\x31\x00\x01" + path.encode() + b"\0"
    for loop in loops:
        for label, flags in (("default", ("--default-gc",)), ("settled", ())):
            server = Server("benchmarks.broker", "--serve", loop, *flags)
            try:
                _fanout(server, 100, 32, False, True)
                emitter, socks = _setup_fanout(server.port, 1, path, False)
                others = OtherLoad(server)
                try:
                    samples = _paced_latency(
                        emitter, socks, head, 32, rate=10_000, duration=0.5 if quick else 2.0
                    )
                    load = others.cores()
                finally:
                    for sock in (emitter, *socks):
                        sock.close()
            finally:
                count, longest = gc_report(server.close())
            p50, p99, p999 = percentiles(samples, (50, 99, 99.9))
            table.add(
                loop,
                label,
                len(samples),
                f"{p50:.3f}",
                f"{p99:.3f}",
                f"{p999:.3f}",
                f"{max(samples):.3f}",
                count,
                f"{longest:.3f}",
                f"{load:.2f}",
            )
    return table


# -- the suite ----------------------------------------------------------------------------------


def run(quick: bool = False) -> None:
    """Run every broker benchmark, on each available event loop, and print the tables."""
    _raise_nofile()
    loops = _loops()
    fanout = Table(
        "event fan-out (deliveries/s at saturation, and per CPU-second of the server; "
        "latency at a paced 10,000 deliveries/s)",
        [
            "server",
            "loop",
            "listeners",
            "value",
            "deliveries/s",
            "per CPU-s",
            "p50 ms",
            "p99 ms",
            "others' cores",
        ],
    )
    calls = Table(
        "action round trips", ["loop", "callers", "calls/s", "per CPU-s", "p50 ms", "p99 ms"]
    )
    states = Table("state changes (32 B)", ["loop", "observers", "deliveries/s", "per CPU-s"])
    servers = [(f"roost ({loop})", loop, False) for loop in loops] + [("relay", "asyncio", True)]
    for name, loop, is_relay in servers:
        server = (
            Server("benchmarks.relay") if is_relay else Server("benchmarks.broker", "--serve", loop)
        )
        try:
            for size in (32, 1024):
                for listeners in (1, 10, 100):
                    rate, per_cpu, p50, p99, others = _fanout(
                        server, listeners, size, is_relay, quick
                    )
                    fanout.add(
                        name.split()[0],
                        loop,
                        listeners,
                        f"{size} B",
                        format_rate(rate),
                        format_rate(per_cpu),
                        f"{p50:.3f}",
                        f"{p99:.3f}",
                        f"{others:.2f}",
                    )
            if is_relay:
                continue
            for callers in (1, 16):
                rate, per_cpu, p50, p99 = _calls(server, callers, 0.5 if quick else 1.0)
                calls.add(
                    loop,
                    callers,
                    format_rate(rate),
                    format_rate(per_cpu),
                    f"{p50:.3f}",
                    f"{p99:.3f}",
                )
            rate, per_cpu = _states(server, 100, quick)
            states.add(loop, 100, format_rate(rate), format_rate(per_cpu))
        finally:
            server.close()
    fanout.print()
    calls.print()
    states.print()
    _gc_latency(loops, quick).print()
    count = 1000 if quick else 5000
    memory = Table("idle connections", ["loop", "connections", "KiB RSS per connection"])
    for loop in loops:
        memory.add(loop, count, f"{_idle_rss(count, loop):.2f}")
    memory.print()
    print(
        "targets: fan-out 1 listener >= 200,000/s, 100 listeners >= 1,000,000/s (32 B); "
        "16 callers >= 40,000 calls/s; p99 < 1 ms paced (1 listener); <= 3 KiB per idle "
        "connection"
    )


if __name__ == "__main__":
    if "--serve" in sys.argv:
        # The loop kind follows --serve; without one, asyncio's own loop.
        _args = [arg for arg in sys.argv[sys.argv.index("--serve") + 1 :] if arg != "--default-gc"]
        _serve(_args[0] if _args else "asyncio", tune_gc="--default-gc" not in sys.argv)
    else:
        os.environ.setdefault("PYTHONHASHSEED", "0")
        run("--quick" in sys.argv)
