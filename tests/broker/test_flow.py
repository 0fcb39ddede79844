"""Conformance section I (ordering and flow control, cases 104-105) and the slow-consumer
acceptance test with the broker's memory measured in its own process."""

from __future__ import annotations

import logging
import socket
import time

import anyio
import pytest

from roost.protocol import codec
from roost.protocol import messages as m
from roost.protocol.framing import FrameDecoder
from roost.protocol.values import Value
from tests.brokerproc import BrokerProcess
from tests.conftest import BrokerThread
from tests.wire import Wire, connect, err, ok, v

pytestmark = pytest.mark.anyio


async def test_broker_replies_keep_request_order(broker_thread: BrokerThread) -> None:
    """Case 104: get, ping and /meta/ls sent back to back 1000 times come back in order."""
    async with await connect(broker_thread.port) as a, await connect(broker_thread.port) as b:
        await a.register("state", "/s")
        await a.call_ok(m.StateChanged(a.next_id(), "/s", v(1)))
        batch: list[m.Message] = []
        for i in range(1000):
            batch += [
                m.Get(3 * i, "/s"),
                m.Ping(3 * i + 1),
                m.ActionCall(3 * i + 2, "/meta/ls", v(["/"])),
            ]
        await b.send(*batch)
        listing = ["dir", [["meta", "dir"], ["s", "state"]]]
        for i in range(1000):
            assert await b.recv() == ok(3 * i, 1)
            assert await b.recv() == ok(3 * i + 1)
            assert await b.recv() == ok(3 * i + 2, listing)


def _silent_socket(port: int, path: str) -> socket.socket:
    """A connection that says hello, listens to ``path`` and then never reads again."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.settimeout(5)
    sock.connect(("127.0.0.1", port))
    sock.sendall(codec.encode(m.Hello(1, 0)) + codec.encode(m.EventListen(1, path)))
    decoder = FrameDecoder()
    got: list[bytes] = []
    while len(got) < 2:
        got += decoder.feed(sock.recv(4096))
    assert codec.decode(got[1]) == ok(1)
    return sock


async def _count_events(wire: Wire, total: int) -> None:
    """Read ``total`` event notifications, checking the sequence numbers that end each value."""
    decoder = FrameDecoder()
    seen = 0
    while seen < total:
        data = await wire.stream.receive(1 << 20)
        for payload in decoder.feed(data):
            assert payload[0] == 0x33
            assert int.from_bytes(payload[-4:], "big") == seen
            seen += 1


async def test_slow_reader_dropped_nobody_slowed(
    broker_thread: BrokerThread, caplog: pytest.LogCaptureFixture
) -> None:
    """Case 105: a never-reading listener is closed as slow_consumer; the emitter's oks come
    fast and the reading listener gets all 1000 values of 60 kB in order."""
    caplog.set_level(logging.INFO, logger="roost.broker")
    size = 60_000
    slow = _silent_socket(broker_thread.port, "/ev")
    try:
        async with await connect(broker_thread.port) as a, await connect(broker_thread.port) as b:
            await b.call_ok(m.EventListen(1, "/ev"))
            async with anyio.create_task_group() as tg:
                tg.start_soon(_count_events, b, 1000)
                worst = 0.0
                for i in range(1000):
                    raw = Value(b"\xc6" + size.to_bytes(4, "big") + i.to_bytes(4, "big") * 15000)
                    start = time.monotonic()
                    await a.send(m.EventEmit(i & 0xFFFF, "/ev", raw))
                    assert await a.recv() == ok(i & 0xFFFF)
                    worst = max(worst, time.monotonic() - start)
            assert worst < 0.3, worst
        reasons = [getattr(r, "reason", None) for r in caplog.records]
        assert "slow_consumer" in reasons
        router = broker_thread.broker.router
        broker_thread.wait_until(lambda: not router.sessions)
        assert "/ev" not in router.tree.nodes
    finally:
        slow.close()


@pytest.mark.slow
async def test_slow_consumer_bounded_memory() -> None:
    """Acceptance: 20,000 events of 1 KiB; the non-reader is closed as slow_consumer, the reader
    gets all 20,000 in order, and the broker's peak RSS grows by less than 64 MiB."""
    size = 1024
    total = 20_000
    with BrokerProcess(["--log-level", "info"]) as proc:
        slow = _silent_socket(proc.port, "/ev")
        try:
            async with await connect(proc.port) as a, await connect(proc.port) as b:
                await b.call_ok(m.EventListen(1, "/ev"))
                before = proc.peak_rss_kib()
                async with anyio.create_task_group() as tg:
                    tg.start_soon(_count_events, b, total)
                    window = 200
                    for start in range(0, total, window):
                        frames = []
                        for i in range(start, start + window):
                            value = b"\xc5" + (size - 3).to_bytes(2, "big")
                            value += b"x" * (size - 7) + i.to_bytes(4, "big")
                            frames.append(m.EventEmit(i & 0xFFFF, "/ev", Value(value)))
                        await a.send(*frames)
                        for i in range(start, start + window):
                            assert await a.recv() == ok(i & 0xFFFF)
                grown_kib = proc.peak_rss_kib() - before
            record = proc.wait_for_log(lambda r: r.get("reason") == "slow_consumer", 5)
            assert record["msg"].startswith("connection closed")
            assert grown_kib < 64 * 1024, grown_kib
        finally:
            slow.close()


async def test_slow_consumer_errors_stay_local(broker_thread: BrokerThread) -> None:
    """§14: after a slow consumer is dropped, its paths are free and others keep working."""
    slow = _silent_socket(broker_thread.port, "/ev2")
    try:
        async with await connect(broker_thread.port) as a:
            raw = Value(b"\xc6\x00\x00\xea\x60" + b"y" * 60_000)
            with anyio.fail_after(30):
                while broker_thread.call(lambda: len(broker_thread.broker.router.sessions)) > 1:
                    await a.send(m.EventEmit(1, "/ev2", raw))
                    assert await a.recv() == ok(1)
            assert await a.request(m.EventEmit(2, "/ev2", v(1))) == err(2, "path_not_found")
    finally:
        slow.close()
