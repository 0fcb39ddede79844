"""Conformance section A: framing and codec, against a real broker (cases 2-13)."""

from __future__ import annotations

import logging

import pytest

from roost.protocol import messages as m
from roost.protocol.values import NIL, Value
from tests.conftest import BrokerThread
from tests.wire import Wire, connect, err, ok, v

pytestmark = pytest.mark.anyio


def _closed_reasons(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [
        str(getattr(record, "reason", ""))
        for record in caplog.records
        if record.name == "roost.broker.connection" and hasattr(record, "reason")
    ]


async def test_frame_header(broker_thread: BrokerThread) -> None:
    """Case 2: ping id 7 gets exactly 47 00 04 05 00 07 c0."""
    async with await Wire.connect(broker_thread.port) as a:
        await a.send_raw(bytes.fromhex("470003090007"))
        data = await a.stream.receive(100)
        assert data == bytes.fromhex("470004050007c0")


async def test_split_and_coalesced_frames(broker_thread: BrokerThread) -> None:
    """Case 3: frames split one byte per write, and two frames in one write, both decode."""
    async with await Wire.connect(broker_thread.port) as a:
        two = bytes.fromhex("470003090001") + bytes.fromhex("470003090002")
        for byte in two:
            await a.send_raw(bytes((byte,)))
        assert await a.recv() == ok(1)
        assert await a.recv() == ok(2)
        await a.send_raw(bytes.fromhex("470003090003470003090004"))
        assert await a.recv() == ok(3)
        assert await a.recv() == ok(4)


async def test_bad_sync_byte_closes(
    broker_thread: BrokerThread, caplog: pytest.LogCaptureFixture
) -> None:
    """Case 4: a frame starting with 0x48 closes the connection, no reply, reason logged."""
    caplog.set_level(logging.INFO, logger="roost.broker")
    async with await Wire.connect(broker_thread.port) as a:
        await a.send_raw(bytes.fromhex("480003090007"))
        await a.expect_closed()
    assert any("bad sync byte" in reason for reason in _closed_reasons(caplog))


@pytest.mark.parametrize(
    "data",
    [bytes.fromhex("470003990001"), bytes.fromhex("470000")],
    ids=["unknown-code-0x99", "zero-length"],
)
async def test_unknown_code_and_zero_length_close(broker_thread: BrokerThread, data: bytes) -> None:
    """Case 5: an unknown type code or a zero-length frame closes the connection."""
    async with await connect(broker_thread.port) as a:
        await a.send_raw(data)
        await a.expect_closed()


async def test_lease_codes_are_not_unknown(broker_thread: BrokerThread) -> None:
    """Case 5: codes 0x50-0x5a are lease requests, answered rather than closed."""
    async with await connect(broker_thread.port) as a:
        for code in range(0x50, 0x5B):
            await a.send_payload(bytes((code,)) + b"\x00\x01" + Value.of({}).raw)
            reply = await a.recv()
            assert isinstance(reply, (m.ReplyOk, m.ReplyError))
            assert reply.id == 1
            assert "status" in reply.value.obj
        await a.assert_open()


@pytest.mark.parametrize(
    "payload",
    [
        b"\x10\x00\x01/a\x00x",  # (a) action_register with bytes after the NUL
        b"\x11\x00\x01/a",  # (b) action_call without NUL
        b"\x09\x00\x01\x00",  # (c) ping with one extra byte
        b"\x11\x00",  # (d) short id
        b"\x01\x01\x00\x1e\x00",  # (e) hello with one extra byte
    ],
    ids=["bytes-after-nul", "no-nul", "long-ping", "short-id", "long-hello"],
)
async def test_framing_errors_close(
    broker_thread: BrokerThread, caplog: pytest.LogCaptureFixture, payload: bytes
) -> None:
    """Case 6: each layout error closes the connection and the reason is logged."""
    caplog.set_level(logging.INFO, logger="roost.broker")
    async with await connect(broker_thread.port) as a:
        await a.send_payload(payload)
        await a.expect_closed()
    assert any(reason.startswith("protocol_error") for reason in _closed_reasons(caplog))


@pytest.mark.parametrize(
    "tail",
    [b"\xc1", b"", b"\x01\x02"],
    ids=["invalid-msgpack", "absent", "two-objects"],
)
async def test_bad_values_get_invalid_value(broker_thread: BrokerThread, tail: bytes) -> None:
    """Case 7: a call whose value is invalid, absent or two objects gets invalid_value."""
    async with await connect(broker_thread.port) as owner, await connect(broker_thread.port) as a:
        await owner.register("action", "/act")
        await a.send_payload(b"\x11\x00\x05/act\x00" + tail)
        assert await a.recv() == err(5, "invalid_value")
        await a.assert_open()
        await owner.expect_silence(0.2)


@pytest.mark.parametrize(
    "payload",
    [
        b"\x47\x00\x01/s\x00\xc0",
        b"\x03",
        b"\x33/e\x00\xc0",
        b"\x61\x80",
    ],
    ids=["state_set", "hello-reply", "event_notify", "lease_revoked"],
)
async def test_server_only_messages_close(broker_thread: BrokerThread, payload: bytes) -> None:
    """Case 8: a client sending a server-only message (0x47, 0x03, 0x33, 0x61) is closed."""
    async with await connect(broker_thread.port) as a:
        await a.send_payload(payload)
        await a.expect_closed()


async def test_reply_to_unknown_id_closes(broker_thread: BrokerThread) -> None:
    """Case 9: a reply to an id the broker never issued closes the connection."""
    async with await connect(broker_thread.port) as a:
        await a.send(m.ReplyOk(3, NIL))
        await a.expect_closed()


async def test_second_reply_to_same_id_closes(broker_thread: BrokerThread) -> None:
    """Case 9: a second reply to an already answered id closes the owner."""
    async with await connect(broker_thread.port) as a, await connect(broker_thread.port) as b:
        await a.register("action", "/act")
        await b.send(m.ActionCall(1, "/act", v([])))
        call = await a.recv_as(m.ActionCall)
        await a.send(m.ReplyOk(call.id, NIL))
        assert await b.recv() == ok(1)
        await a.send(m.ReplyOk(call.id, NIL))
        await a.expect_closed()
        await b.assert_open()


async def test_values_forwarded_byte_for_byte(broker_thread: BrokerThread) -> None:
    """Case 10: an emitted value reaches the listener byte-identical (float32, cc 05, order)."""
    raw = (
        b"\x89"
        + b"\xa1k\xc4\x02\x00\x01"
        + b"\xa1f\xca\x3d\xcc\xcc\xcd"
        + b"\xa1n\xc0"
        + b"\xa1t\xc3"
        + b"\xa3neg\xfb"
        + b"\xa3big\xcf\x00\x00\x01\x00\x00\x00\x00\x00"
        + b"\xa1u\xcf\xff\xff\xff\xff\xff\xff\xff\xff"
        + b"\xa1i\xd3\x80\x00\x00\x00\x00\x00\x00\x00"
        + b"\xa1c\xcc\x05"
    )
    async with await connect(broker_thread.port) as a, await connect(broker_thread.port) as b:
        await b.call_ok(m.EventListen(1, "/ev"))
        await a.send_payload(b"\x31\x00\x02/ev\x00" + raw)
        assert await a.recv() == ok(2)
        note = await b.recv_as(m.EventNotify)
        assert note.path == "/ev"
        assert note.value.raw == raw


@pytest.mark.parametrize(
    "raw",
    [
        b"\xd4\x05\x00",  # ext type 5
        b"\xd6\xff\x00\x00\x00\x01",  # the timestamp ext
        b"\xa2\xc3\x28",  # invalid UTF-8
        b"\x81\xa2\xc3\x28\x01",  # invalid UTF-8 as a map key
        b"\x91" * 65 + b"\xc0",  # arrays nested 65 deep
    ],
    ids=["ext", "timestamp", "bad-utf8", "bad-utf8-key", "depth-65"],
)
async def test_rejected_value_contents(broker_thread: BrokerThread, raw: bytes) -> None:
    """Case 11: ext types, timestamps, bad UTF-8 and depth 65 get invalid_value; B sees nothing."""
    async with await connect(broker_thread.port) as a, await connect(broker_thread.port) as b:
        await b.call_ok(m.EventListen(1, "/ev"))
        await a.send_payload(b"\x31\x00\x02/ev\x00" + raw)
        assert await a.recv() == err(2, "invalid_value")
        await a.assert_open()
        await b.expect_silence(0.2)


async def test_depth_64_is_delivered(broker_thread: BrokerThread) -> None:
    """Case 11: arrays nested 64 deep are delivered."""
    raw = b"\x91" * 63 + b"\x90"
    async with await connect(broker_thread.port) as a, await connect(broker_thread.port) as b:
        await b.call_ok(m.EventListen(1, "/ev"))
        await a.send_payload(b"\x31\x00\x02/ev\x00" + raw)
        assert await a.recv() == ok(2)
        assert (await b.recv_as(m.EventNotify)).value.raw == raw


async def test_invalid_value_in_owner_reply(broker_thread: BrokerThread) -> None:
    """Case 12: an owner's reply with an ext type gives the caller invalid_value; owner open."""
    async with await connect(broker_thread.port) as a, await connect(broker_thread.port) as b:
        await a.register("action", "/act")
        await b.send(m.ActionCall(7, "/act", v([])))
        call = await a.recv_as(m.ActionCall)
        await a.send_payload(b"\x05" + call.id.to_bytes(2, "big") + b"\xd4\x05\x00")
        assert await b.recv() == err(7, "invalid_value")
        await a.assert_open()
        await b.send(m.ActionCall(8, "/act", v([2])))
        call = await a.recv_as(m.ActionCall)
        await a.send(m.ReplyOk(call.id, v("fine")))
        assert await b.recv() == ok(8, "fine")


def _bin_value(size: int) -> bytes:
    """A msgpack bin of exactly ``size`` encoded bytes (bin16 header is 3 bytes)."""
    return b"\xc5" + (size - 3).to_bytes(2, "big") + b"x" * (size - 3)


async def test_oversized_state_value(broker_thread: BrokerThread) -> None:
    """Case 13: a 65529-byte state value is refused; 65528 fits every frame it produces."""
    async with await connect(broker_thread.port) as a, await connect(broker_thread.port) as b:
        await a.register("state", "/a")
        await a.call_ok(m.StateChanged(a.next_id(), "/a", v(1)))
        assert await b.request(m.StateObserve(1, "/a")) == m.ReplyStateKnown(1, v(1))
        big = _bin_value(65529)
        payload = b"\x41\x00\x09/a\x00" + big
        assert len(payload) == 65535
        await a.send_payload(payload)
        assert await a.recv() == err(9, "value_too_large")
        await b.expect_silence(0.2)
        assert await b.request(m.Get(2, "/a")) == ok(2, 1)
        fits = _bin_value(65528)
        await a.send_payload(b"\x41\x00\x0a/a\x00" + fits)
        assert await a.recv() == ok(10)
        assert (await b.recv_as(m.StateNotify)).value.raw == fits
        async with await connect(broker_thread.port) as c:
            await c.send(m.StateObserveT(3, "/a"))
            data = b""
            while len(data) < 3 + 65535:
                data += await c.stream.receive(1 << 17)
            assert data[:4] == b"G\xff\xff\x0a"
            assert data[10:] == fits
        await a.assert_open()
        await b.assert_open()
