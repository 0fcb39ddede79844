"""Memory per byte a client sends: broker RSS gained over bytes sent, per registration mix.

Each mix runs against a fresh broker process with the default limits (``benchmarks.probe
--defaults``): one client sends as many requests of the mix as one connection may make
(``max_per_connection``), in 64 KiB writes, and reads every reply. The figure is the RSS the
broker gained divided by the bytes of the requests it accepted (a refused request costs
nothing to keep; the refused mix is divided by everything sent). Deep paths stop at
``max_entries_per_connection``. The deep-path attack of the original
trial (~32,000 segments per path, ~130x then) is now refused as ``invalid_path``.

Goal: <= 20x on any mix.
"""

from __future__ import annotations

import socket
import sys
import time
from collections.abc import Callable

from benchmarks.common import Table
from benchmarks.processes import Server
from benchmarks.stalls import _client
from roost.broker.limits import Limits
from roost.protocol import codec
from roost.protocol import messages as m
from roost.protocol.framing import FrameDecoder

__all__ = ("run",)

GOAL = 20.0
_LIMITS = Limits()
_DEPTH = _LIMITS.max_path_depth


def _deep(i: int) -> str:
    # Distinct at the top, then as many one-letter segments as the depth limit allows.
    return f"/d{i}" + "/a" * (_DEPTH - 1)


MIXES: list[tuple[str, Callable[[int], m.Message]]] = [
    ("short events", lambda i: m.EventRegister(i & 0xFFFF, f"/e{i}")),
    ("short actions", lambda i: m.ActionRegister(i & 0xFFFF, f"/a{i}")),
    ("listens (new paths)", lambda i: m.EventListen(i & 0xFFFF, f"/l{i}")),
    ("observes (new paths)", lambda i: m.StateObserve(i & 0xFFFF, f"/o{i}")),
    (f"deep paths ({_DEPTH} segments)", lambda i: m.EventRegister(i & 0xFFFF, _deep(i))),
    (
        "long paths (1024 chars)",
        lambda i: m.EventRegister(i & 0xFFFF, f"/p{i:07d}" + "x" * (_LIMITS.max_path_length - 9)),
    ),
    ("over-deep paths (refused)", lambda i: m.EventRegister(i & 0xFFFF, "/a" * 2000 + f"/n{i}")),
]


def _accepted(sock: socket.socket, frames: list[bytes]) -> list[bool]:
    """Send ``frames`` in batches; which of them were not answered with an error (in order)."""
    decoder = FrameDecoder()
    replies: list[bool] = []
    for start in range(0, len(frames), 2000):
        batch = frames[start : start + 2000]
        sock.sendall(b"".join(batch))
        want = len(replies) + len(batch)
        while len(replies) < want:
            data = sock.recv(1 << 20)
            if not data:
                raise ConnectionError("closed")
            replies += [not isinstance(codec.decode(p), m.ReplyError) for p in decoder.feed(data)]
    return replies


def _mix(make: Callable[[int], m.Message], count: int) -> tuple[float, int, int, float]:
    """(KiB gained, bytes sent, requests accepted, ratio over the accepted requests' bytes, or
    over all bytes when none was accepted) for ``count`` requests of one mix, fresh broker."""
    server = Server("benchmarks.probe", "asyncio", "--defaults")
    socks: list[socket.socket] = []
    try:
        warm = _client(server.port)
        socks.append(warm)
        time.sleep(0.2)
        before = server.rss_kib()
        sock = _client(server.port)
        socks.append(sock)
        frames = [codec.encode(make(i)) for i in range(count)]
        sent = sum(len(f) for f in frames)
        ok = _accepted(sock, frames)
        useful = sum(len(f) for f, good in zip(frames, ok, strict=True) if good) or sent
        time.sleep(0.3)
        gained = max(0, server.rss_kib() - before)
        return gained, sent, sum(ok), gained * 1024 / useful
    finally:
        for s in socks:
            s.close()
        server.close()


def run(quick: bool = False) -> None:
    """Measure every mix and print the table with the worst case."""
    count = 2_000 if quick else _LIMITS.max_per_connection
    table = Table(
        f"memory amplification ({count} requests of one connection, default limits)",
        ["mix", "KiB sent", "accepted", "KiB RSS gained", "RSS / bytes accepted"],
    )
    worst = ("", 0.0)
    for name, make in MIXES:
        gained, sent, accepted, ratio = _mix(make, count)
        table.add(name, f"{sent / 1024:.0f}", accepted, f"{gained:.0f}", f"{ratio:.1f}x")
        if ratio > worst[1]:
            worst = (name, ratio)
    table.print()
    print(f"worst case: {worst[0]} {worst[1]:.1f}x (goal <= {GOAL:.0f}x)")


if __name__ == "__main__":
    run("--quick" in sys.argv)
