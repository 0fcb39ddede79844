"""Bad input, table-driven: each entry gets its expected reply or close, the broker keeps
serving a healthy client, and nothing of the offender is left behind."""

from __future__ import annotations

import random
from dataclasses import dataclass

import pytest

from roost.protocol import codec
from roost.protocol import messages as m
from tests.conftest import BrokerThread
from tests.wire import Wire, connect, err, ok, v

pytestmark = pytest.mark.anyio

CLOSE = "close"
SILENT = "silent"  # nothing comes back and the connection stays open (a partial frame)


@dataclass(frozen=True)
class Case:
    """One row: bytes a client sends after hello, and what must follow."""

    name: str
    data: bytes
    expect: object  # CLOSE, SILENT, or the expected reply message


def _frame(payload: bytes) -> bytes:
    return b"G" + len(payload).to_bytes(2, "big") + payload


TABLE = [
    Case("truncated-header", b"G\x00", SILENT),
    Case("truncated-payload", b"G\x00\x10\x10\x00\x01/a", SILENT),
    Case("bad-sync", b"\x00\x00\x03\x09\x00\x01", CLOSE),
    Case("bad-sync-after-frame", _frame(b"\x09\x00\x01") + b"H", CLOSE),
    Case("length-0", b"G\x00\x00", CLOSE),
    Case("unknown-code-0x0c", _frame(b"\x0c\x00\x01"), CLOSE),
    Case("unknown-code-0x64", _frame(b"\x64\x00\x01\x80"), CLOSE),
    Case("unknown-code-0xff", _frame(b"\xff"), CLOSE),
    Case("server-only-0x04", _frame(b"\x04\xc0"), CLOSE),
    Case("server-only-0x44", _frame(b"\x44/s\x00\xc0"), CLOSE),
    Case("server-only-0x68", _frame(b"\x68\x00\x01\x80"), CLOSE),
    Case("reply-to-unknown-id", _frame(b"\x06\x00\x09\xc0"), CLOSE),
    Case("short-reply", _frame(b"\x05\x00"), CLOSE),
    Case("invalid-msgpack", _frame(b"\x31\x00\x01/ev\x00\xc1"), err(1, "invalid_value")),
    Case("truncated-msgpack", _frame(b"\x31\x00\x01/ev\x00\x92\x01"), err(1, "invalid_value")),
    Case("ext-type", _frame(b"\x31\x00\x01/ev\x00\xd4\x01\x00"), err(1, "invalid_value")),
    Case(
        "timestamp", _frame(b"\x31\x00\x01/ev\x00\xd6\xff\x00\x00\x00\x00"), err(1, "invalid_value")
    ),
    Case("bad-utf8", _frame(b"\x31\x00\x01/ev\x00\xa2\xc3\x28"), err(1, "invalid_value")),
    Case(
        "depth-65", _frame(b"\x31\x00\x01/ev\x00" + b"\x91" * 65 + b"\xc0"), err(1, "invalid_value")
    ),
    Case("lease-bad-msgpack", _frame(b"\x50\x00\x01\xc1"), err(1, {"status": "invalid_value"})),
    Case("invalid-path-empty", _frame(b"\x10\x00\x01\x00"), err(1, "invalid_path")),
    Case("invalid-path-latin1", _frame(b"\x10\x00\x01/\xe9\x00"), err(1, "invalid_path")),
    Case("invalid-path-newline", _frame(b"\x30\x00\x01/a\n\x00"), err(1, "invalid_path")),
    Case("invalid-path-slash", _frame(b"\x43\x00\x01/a/\x00"), err(1, "invalid_path")),
    Case("invalid-path-get", _frame(b"\x23\x00\x01a\x00"), err(1, "invalid_path")),
    Case("emit-without-nul", _frame(b"\x31\x00\x01/ev"), CLOSE),
    Case("call-short-id", _frame(b"\x11\x00"), CLOSE),
    Case("call-without-value", _frame(b"\x11\x00\x01/a\x00"), err(1, "invalid_value")),
    Case("emit-two-values", _frame(b"\x31\x00\x01/ev\x00\xc0\xc0"), err(1, "invalid_value")),
    Case("hello-bad-version", _frame(b"\x01\x07\x00\x1e"), CLOSE),
    Case("hello-id-missing-id", _frame(b"\x02\x01\x00\x1e"), CLOSE),
]


async def _check_healthy(port: int) -> None:
    async with await connect(port) as h:
        await h.register("event", "/healthy")
        await h.call_ok(m.EventListen(h.next_id(), "/healthy"))
        await h.call_ok(m.EventEmit(h.next_id(), "/healthy", v("ok")))
        assert await h.recv() == m.EventNotify("/healthy", v("ok"))


@pytest.mark.parametrize("case", TABLE, ids=[case.name for case in TABLE])
async def test_bad_input(broker_thread: BrokerThread, case: Case) -> None:
    """Bad input: the expected reply or close; a healthy client is served afterwards."""
    port = broker_thread.port
    async with await connect(port) as bad:
        await bad.register("state", "/bad/owned")
        await bad.call_ok(m.EventListen(bad.next_id(), "/ev"))
        await bad.send_raw(case.data)
        if case.expect == CLOSE:
            await bad.expect_closed()
        elif case.expect == SILENT:
            await bad.expect_silence(0.2)
        else:
            assert await bad.recv() == case.expect
            await bad.assert_open()
    await _check_healthy(port)
    router = broker_thread.broker.router

    def leftovers() -> list[str]:
        return sorted(p for p in router.tree.nodes if not p.startswith("/meta/"))

    broker_thread.wait_until(lambda: not router.sessions)
    assert broker_thread.call(leftovers) == []


async def test_random_garbage(broker_thread: BrokerThread) -> None:
    """Random bytes after hello: closed or answered, never a crash; the broker keeps serving."""
    rng = random.Random(1234)
    for _ in range(40):
        data = bytes(rng.randrange(256) for _ in range(rng.randrange(1, 300)))
        async with await connect(broker_thread.port) as bad:
            await bad.send_raw(b"G" + data)
    await _check_healthy(broker_thread.port)


async def test_garbage_before_hello(broker_thread: BrokerThread) -> None:
    """Bad input before hello closes too, and pre-hello requests leave nothing behind."""
    async with await Wire.connect(broker_thread.port) as bad:
        assert await bad.request(m.ActionRegister(1, "/x")) == err(1, "unregistered")
        await bad.send_raw(b"\x47\x00\x03\x99\x00\x00")
        await bad.expect_closed()
    async with await connect(broker_thread.port) as h:
        assert await h.request(m.ActionCall(1, "/x", v([]))) == err(1, "path_not_found")
        assert await h.request(m.Ping(2)) == ok(2)


async def test_frames_before_an_error_in_one_chunk(broker_thread: BrokerThread) -> None:
    """An emit and a call followed by a bad frame in one write are routed, then the sender is
    closed without a reply."""
    port = broker_thread.port
    async with (
        await connect(port) as listener,
        await connect(port) as owner,
        await connect(port) as bad,
    ):
        await listener.call_ok(m.EventListen(listener.next_id(), "/chunk/ev"))
        await owner.register("action", "/chunk/act")
        emit = codec.encode(m.EventEmit(1, "/chunk/ev", v(7)))
        call = codec.encode(m.ActionCall(2, "/chunk/act", v([1])))
        await bad.send_raw(emit + call + _frame(b"\x0c\x00\x01"))
        assert await listener.recv() == m.EventNotify("/chunk/ev", v(7))
        forwarded = await owner.recv()
        assert isinstance(forwarded, m.ActionCall)
        assert (forwarded.path, forwarded.args) == ("/chunk/act", v([1]))
        await bad.expect_closed()
        await owner.send(m.ReplyOk(forwarded.id, v("late")))  # dropped: the caller is gone
        await owner.assert_open()
