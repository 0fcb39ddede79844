"""Connection guards: hello, frame and idle deadlines; the connection cap; accepting at the fd
limit; owner liveness that does not depend on free descriptors."""

from __future__ import annotations

import errno
import os
import socket
from collections.abc import Iterator

import anyio
import pytest

from roost.broker.guard import LogEvery
from roost.broker.limits import Limits
from roost.protocol import messages as m
from tests.brokerproc import BrokerProcess
from tests.conftest import BrokerThread, start_broker_thread
from tests.wire import Wire, connect, err, ok

pytestmark = pytest.mark.anyio


@pytest.fixture
def quick() -> Iterator[BrokerThread]:
    """A broker with short deadlines and at most 4 connections."""
    limits = Limits(hello_timeout=0.3, frame_timeout=0.3, max_idle=0.3, max_connections=4)
    handle, stop, thread = start_broker_thread(limits=limits)
    try:
        yield handle
    finally:
        stop.set()
        thread.join(timeout=10)


async def test_no_hello_is_cut(quick: BrokerThread) -> None:
    """A connection that never says hello is closed at its hello deadline."""
    async with await Wire.connect(quick.port) as silent:
        await silent.expect_closed(timeout=3)


async def test_half_a_frame_is_cut(quick: BrokerThread) -> None:
    """A started frame that never completes closes the connection, even with timeout 0 and
    bytes still trickling in."""
    async with await connect(quick.port, timeout=0) as slow:
        frame = b"G\x00\x10\x09\x00\x01"  # a ping frame announcing 16 bytes, 3 given
        await slow.send_raw(frame)
        with anyio.fail_after(3):
            while not slow.eof:
                await slow.send_raw(b"\x00")  # a byte at a time keeps bytes arriving
                with anyio.move_on_after(0.05):
                    await slow._fill()
        assert slow.eof


async def test_frames_in_a_stream_are_not_cut(quick: BrokerThread) -> None:
    """Frames that complete in time, even split across chunks, keep the connection."""
    async with await connect(quick.port, timeout=30) as c:
        for i in range(5):
            data = b"G\x00\x03\x09" + i.to_bytes(2, "big")
            await c.send_raw(data[:4])
            await c.send_raw(data[4:])
            assert await c.recv() == ok(i)


async def test_timeout_zero_is_cut_after_max_idle(quick: BrokerThread) -> None:
    """A connection that asked for timeout 0 is closed after ``max_idle`` of silence; one with
    a timeout of its own is kept past ``max_idle`` while it pings."""
    async with (
        await connect(quick.port, timeout=0) as idle,
        await connect(quick.port, timeout=5) as busy,
    ):
        await idle.expect_closed(timeout=3)
        await busy.assert_open()


async def test_max_connections_refused_at_accept(quick: BrokerThread) -> None:
    """Over ``max_connections`` a new connection is closed at once; the others keep working,
    and a closed slot is free again."""
    held = [await connect(quick.port, timeout=5) for _ in range(4)]
    try:
        async with await Wire.connect(quick.port) as extra:
            await extra.expect_closed(timeout=3)
        for wire in held:
            await wire.assert_open()
        await held.pop().aclose()
        quick.wait_until(lambda: len(quick.broker.router.sessions) == 3)
        async with await connect(quick.port) as again:
            await again.assert_open()
        assert quick.call(lambda: quick.broker.acceptors[0].refused) == 1
    finally:
        for wire in held:
            await wire.aclose()


async def test_live_owner_kept_when_descriptors_run_out(
    broker_thread: BrokerThread, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Deciding whether an owner is gone needs no new descriptor: with ``os.dup`` failing as at
    the fd limit, another client's register of the owner's path is refused and the owner stays
    (before, the failed ``dup`` read as "gone" and the owner was disconnected)."""

    def no_fds(fd: int) -> int:
        raise OSError(errno.EMFILE, os.strerror(errno.EMFILE))

    async with await connect(broker_thread.port) as owner, await connect(broker_thread.port) as b:
        await owner.register("action", "/owned")
        monkeypatch.setattr(os, "dup", no_fds)
        assert await b.request(m.ActionRegister(1, "/owned")) == err(1, "path_already_exists")
        await owner.assert_open()


async def test_gone_owner_still_replaced(broker_thread: BrokerThread) -> None:
    """An owner whose close the loop has not reported yet is still found gone (protocol.md
    §10.6): it closed, so its path can be registered again at once."""
    for i in range(20):
        owner = await connect(broker_thread.port)
        await owner.register("action", "/again")
        await owner.aclose()
        async with await connect(broker_thread.port) as b:
            assert await b.request(m.ActionRegister(i, "/again")) == ok(i)


@pytest.mark.parametrize("loop", ["asyncio", "uvloop"])
def test_accept_backs_off_at_the_fd_limit(loop: str) -> None:
    """At the fd limit the broker pauses accepting, logs one line naming the limit and
    ``ulimit -n`` (not one per attempt), keeps serving its clients, and accepts again once
    descriptors are free."""
    with BrokerProcess(["--loop", loop, "--max-connections", "0"], nofile=48) as proc:
        first = socket.create_connection(("127.0.0.1", proc.port))
        extra: list[socket.socket] = []
        try:
            first.sendall(b"G\x00\x04\x01\x01\x00\x1e")  # hello, timeout 30
            first.settimeout(10)
            assert first.recv(64)[3] == 0x04  # server_hello_id
            for _ in range(80):
                extra.append(socket.create_connection(("127.0.0.1", proc.port)))
            record = proc.wait_for_log(lambda r: "cannot accept" in str(r.get("msg", "")))
            assert "ulimit -n" in record["msg"]
            assert "48" in record["msg"]
            first.sendall(b"G\x00\x03\x09\x00\x07")  # ping 7
            assert first.recv(64) == b"G\x00\x04\x05\x00\x07\xc0"
            for sock in extra:
                sock.close()
            extra.clear()
            with socket.create_connection(("127.0.0.1", proc.port)) as late:
                late.settimeout(10)
                late.sendall(b"G\x00\x04\x01\x01\x00\x1e" + b"G\x00\x03\x09\x00\x08")
                got = b""
                while b"\x05\x00\x08" not in got:
                    chunk = late.recv(256)
                    assert chunk, "closed"
                    got += chunk
            lines = [r for r in proc.records if "cannot accept" in str(r.get("msg", ""))]
            assert len(lines) == 1
        finally:
            first.close()
            for sock in extra:
                sock.close()


class _InProcess:
    """The transport methods the broker uses, for a connection without a socket (as the
    gateway's links are)."""

    def __init__(self) -> None:
        self.closed = False
        self.data = b""

    def write(self, data: bytes) -> None:
        self.data += data

    def get_write_buffer_size(self) -> int:
        return 0

    def is_closing(self) -> bool:
        return self.closed

    def close(self) -> None:
        self.closed = True

    abort = close

    def get_extra_info(self, name: str, default: object = None) -> object:
        return ("gateway", 0) if name == "peername" else default

    def set_write_buffer_limits(self, high: int | None = None, low: int | None = None) -> None:
        pass


async def test_in_process_links_have_no_hello_or_idle_deadline(quick: BrokerThread) -> None:
    """The gateway's own session says hello with timeout 0 and may be quiet for hours: the
    hello deadline and ``max_idle`` apply to socket connections only."""
    quiet, silent = _InProcess(), _InProcess()

    def attach() -> None:
        quick.broker.attach(quiet).data_received(b"G\x00\x04\x01\x01\x00\x00")  # hello, 0
        quick.broker.attach(silent)  # no hello at all

    quick.call(attach)
    async with await connect(quick.port, timeout=0) as idle:
        await idle.expect_closed(timeout=3)  # a socket connection past max_idle
    async with await Wire.connect(quick.port) as no_hello:
        await no_hello.expect_closed(timeout=3)  # and one past the hello deadline
    assert not quiet.closed and not silent.closed


def test_repeated_problems_are_logged_once_per_interval(caplog: pytest.LogCaptureFixture) -> None:
    """The first report of a burst is logged at once, the rest are counted into the next."""
    every = LogEvery(3600.0)
    with caplog.at_level("WARNING", logger="roost.broker"):
        for i in range(5):
            every("disk full %d", i)
    assert [r.getMessage() for r in caplog.records] == ["disk full 0"]
    every._last = float("-inf")  # the interval has passed
    with caplog.at_level("WARNING", logger="roost.broker"):
        every("disk full %d", 5)
    assert caplog.records[-1].getMessage() == "disk full 5 (4 more since the last report)"
