"""Soak: 50 clients x 2,000 events through one broker, with listeners checking that nothing is
lost and each emitter's order is kept; broker RSS before and after.

Each emitter owns ``/soak/e<i>`` and emits 2,000 events carrying ``[emitter, seq]`` (at most
200 unacknowledged at a time); ``LISTENERS`` listeners listen to every emitter's event. The
run fails loudly if a listener misses an event or sees one out of order.
"""

from __future__ import annotations

import asyncio
import sys
import time

from benchmarks.common import Table, format_rate
from benchmarks.processes import Server, _loops, _raise_nofile
from roost.protocol import codec
from roost.protocol import messages as m
from roost.protocol.framing import FrameDecoder
from roost.protocol.values import Value, unpack

__all__ = ("run",)

EMITTERS = 50
EVENTS = 2_000
LISTENERS = 5
WINDOW = 200


async def _open(port: int) -> tuple[asyncio.StreamReader, asyncio.StreamWriter, FrameDecoder]:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(codec.encode(m.Hello(1, 30)))
    decoder = FrameDecoder()
    while not decoder.feed(await reader.read(256)):
        pass
    return reader, writer, decoder


async def _replies(reader: asyncio.StreamReader, decoder: FrameDecoder, count: int) -> None:
    got = 0
    while got < count:
        data = await reader.read(1 << 16)
        if not data:
            raise ConnectionError("closed")
        got += len(decoder.feed(data))


async def _emitter(port: int, index: int, ready: asyncio.Event) -> None:
    reader, writer, decoder = await _open(port)
    path = f"/soak/e{index}"
    writer.write(codec.encode(m.EventRegister(1, path)))
    await _replies(reader, decoder, 1)
    await ready.wait()
    for start in range(0, EVENTS, WINDOW):
        batch = [
            codec.encode(m.EventEmit(seq & 0xFFFF, path, Value.of([index, seq])))
            for seq in range(start, min(EVENTS, start + WINDOW))
        ]
        writer.write(b"".join(batch))
        await _replies(reader, decoder, len(batch))
    writer.close()


async def _listener(port: int, seen: list[int], subscribed: asyncio.Event) -> None:
    reader, writer, decoder = await _open(port)
    writer.write(b"".join(codec.encode(m.EventListen(i, f"/soak/e{i}")) for i in range(EMITTERS)))
    await _replies(reader, decoder, EMITTERS)
    subscribed.set()
    total = EMITTERS * EVENTS
    received = 0
    while received < total:
        data = await reader.read(1 << 16)
        if not data:
            raise ConnectionError("listener closed")
        for payload in decoder.feed(data):
            msg = codec.decode(payload)
            assert isinstance(msg, m.EventNotify), msg
            emitter, seq = unpack(msg.value.raw)
            if seen[emitter] + 1 != seq:
                raise AssertionError(f"emitter {emitter}: got {seq} after {seen[emitter]}")
            seen[emitter] = seq
            received += 1
    writer.close()


async def _soak(port: int) -> tuple[float, int]:
    """Seconds for the whole run and events lost (always 0, or an AssertionError)."""
    ready = asyncio.Event()
    subscribed = [asyncio.Event() for _ in range(LISTENERS)]
    seen = [[-1] * EMITTERS for _ in range(LISTENERS)]
    emitters = [asyncio.create_task(_emitter(port, i, ready)) for i in range(EMITTERS)]
    await asyncio.sleep(0.2)  # the emitters register before the listeners subscribe
    listeners = [
        asyncio.create_task(_listener(port, seen[i], subscribed[i])) for i in range(LISTENERS)
    ]
    for event in subscribed:
        await event.wait()
    started = time.perf_counter()
    ready.set()
    await asyncio.gather(*emitters, *listeners)
    elapsed = time.perf_counter() - started
    lost = sum(EVENTS - 1 - s for per in seen for s in per)
    return elapsed, lost


def run(quick: bool = False) -> None:
    """Run the soak on each event loop and print throughput, loss and RSS."""
    _raise_nofile()
    table = Table(
        f"soak: {EMITTERS} emitters x {EVENTS} events, {LISTENERS} listeners of all",
        ["loop", "seconds", "events/s in", "deliveries/s", "lost", "RSS before KiB", "after KiB"],
    )
    for loop in _loops():
        server = Server("benchmarks.broker", "--serve", loop)
        try:
            before = server.rss_kib()
            elapsed, lost = asyncio.run(_soak(server.port))
            time.sleep(0.3)
            after = server.rss_kib()
            events = EMITTERS * EVENTS
            table.add(
                loop,
                f"{elapsed:.2f}",
                format_rate(events / elapsed),
                format_rate(events * LISTENERS / elapsed),
                lost,
                before,
                after,
            )
        finally:
            server.close()
    table.print()


if __name__ == "__main__":
    run("--quick" in sys.argv)
