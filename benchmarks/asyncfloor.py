"""The least an asyncio client can cost: the floor row of ``python -m benchmarks clients``.

A bare ``asyncio.Protocol`` per connection, frames encoded in advance, one future per request
resolved in ``data_received``: no library, no message objects, no checks. What any client on
asyncio's own loop pays on top of the raw-socket ceiling is here too (three loop iterations
per call, the transport's write path, waking the awaiting task), so a real client's figure is
best read against this row.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any

from roost.protocol import codec
from roost.protocol import messages as m
from roost.protocol.framing import FrameDecoder
from roost.protocol.values import Value

__all__ = ("floor_calls", "floor_events")

OnFrame = Callable[["_Bare", bytes], None]
Rate = tuple[float, float]


class _Bare(asyncio.Protocol):
    def __init__(self, on_frame: OnFrame) -> None:
        self.decoder = FrameDecoder()
        self.on_frame = on_frame
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        for frame in self.decoder.feed(data):
            self.on_frame(self, frame)

    def write(self, data: bytes) -> None:
        assert self.transport is not None
        self.transport.write(data)


async def _connect(port: int, on_frame: OnFrame, *requests: m.Message) -> _Bare:
    """Connect, say hello, send ``requests``; return once their replies arrived."""
    loop = asyncio.get_running_loop()
    ready: asyncio.Future[None] = loop.create_future()
    seen: list[bytes] = []

    def first(_: _Bare, frame: bytes) -> None:
        seen.append(frame)
        if len(seen) == 1 + len(requests):
            ready.set_result(None)

    _, bare = await loop.create_connection(lambda: _Bare(first), "127.0.0.1", port)
    bare.write(codec.encode(m.Hello(1, 30)) + b"".join(codec.encode(r) for r in requests))
    await ready
    bare.on_frame = on_frame
    return bare


async def _pump(
    bare: _Bare, frame: bytes, waiting: list[Any], duration: float, clock: Callable[[], Rate]
) -> tuple[int, Rate]:
    loop = asyncio.get_running_loop()
    sent = 0
    started = clock()
    deadline = started[0] + duration
    while time.perf_counter() < deadline:
        waiting[0] = future = loop.create_future()
        bare.write(frame)
        await future
        sent += 1
    return sent, started


def floor_calls(
    port: int, path: str, duration: float, clock: Callable[[], Rate]
) -> tuple[int, Rate]:
    """Sequential calls of ``path`` (owned by a second bare connection); (count, start)."""

    async def main() -> tuple[int, Rate]:
        def owner_frame(bare: _Bare, frame: bytes) -> None:
            rid = (frame[1] << 8) | frame[2]
            bare.write(codec.encode(m.ReplyOk(rid, Value.of(1))))

        waiting: list[Any] = [None]
        owner = await _connect(port, owner_frame, m.ActionRegister(1, path))
        caller = await _connect(port, lambda _, frame: waiting[0].set_result(frame))
        try:
            call = codec.encode(m.ActionCall(7, path, Value.of([1])))
            return await _pump(caller, call, waiting, duration, clock)
        finally:
            for bare in (owner, caller):
                assert bare.transport is not None
                bare.transport.close()

    return asyncio.run(main())


def floor_events(
    port: int, path: str, duration: float, clock: Callable[[], Rate]
) -> tuple[int, Rate]:
    """Emits on ``path`` awaited one by one, one listener counting them; (count, start), once
    the listener got every emit."""

    async def main() -> tuple[int, Rate]:
        got = [0]

        def listener_frame(_: _Bare, frame: bytes) -> None:
            got[0] += 1

        waiting: list[Any] = [None]
        emitter = await _connect(
            port, lambda _, frame: waiting[0].set_result(frame), m.EventRegister(1, path)
        )
        listener = await _connect(port, listener_frame, m.EventListen(1, path))
        try:
            emit = codec.encode(m.EventEmit(7, path, Value.of(1)))
            sent, started = await _pump(emitter, emit, waiting, duration, clock)
            while got[0] < sent:
                await asyncio.sleep(0)
            return sent, started
        finally:
            for bare in (emitter, listener):
                assert bare.transport is not None
                bare.transport.close()

    return asyncio.run(main())
