"""Payload layouts (protocol.md §3, §5, E3): framing errors close, value errors do not."""

from __future__ import annotations

import pytest

from roost.errors import FramingError, LocalProtocolError
from roost.protocol import codec
from roost.protocol import messages as m
from roost.protocol.values import NIL, Value
from tests.vectors import BODY, VALUE

LAYOUT_ERRORS = {
    "empty payload": "",
    "unknown code 0x99": "99 00 01",
    "unknown code 0x0c": "0c 00 01",
    "unknown code 0x64": "64 00 01 80",
    "unknown code 0x63": "63 80",
    "action_register bytes after NUL": "10 00 01 2f 61 00 00",
    "action_call without NUL": "11 00 01 2f 61",
    "ping with an extra byte": "09 00 07 00",
    "action_call short id": "11 00",
    "hello with an extra byte": "01 01 00 1e 00",
    "hello short": "01 01 00",
    "hello_id short": "02 01 00",
    "server hello with a byte": "03 00",
    "reply short id": "05 00",
    "reply_state_unknown extra byte": "08 00 01 00",
    "reply_state_t_unknown short": "0b 00 01 00 00 03",
    "reply_state_t_known short": "0a 00 01 00 00",
    "get without NUL": "23 00 01 2f",
    "get without path bytes": "23 00 01",
    "event_notify without NUL": "33 2f 61",
    "state_notify_unknown trailing": "45 2f 61 00 c0",
    "lease_acquire short id": "50 00",
}


@pytest.mark.parametrize("hexdata", LAYOUT_ERRORS.values(), ids=LAYOUT_ERRORS.keys())
def test_layout_errors_raise_framing_error(hexdata: str) -> None:
    """Cases 5 and 6: truncated fields, trailing bytes and unknown codes are framing errors."""
    with pytest.raises(FramingError):
        codec.decode(bytes.fromhex(hexdata))


VALUE_ERRORS = {
    "action_call c1": ("11 00 05 2f 61 00 c1", 0x11, 5),
    "action_call missing value": ("11 00 05 2f 61 00", 0x11, 5),
    "action_call two objects": ("11 00 05 2f 61 00 01 02", 0x11, 5),
    "event_emit ext": ("31 01 00 2f 61 00 d4 01 00", 0x31, 256),
    "state_changed bad utf-8": ("41 00 09 2f 61 00 a2 c3 28", 0x41, 9),
    "reply_ok timestamp": ("05 00 03 d6 ff 00 00 00 01", 0x05, 3),
    "reply_error missing": ("06 00 03", 0x06, 3),
    "reply_state_t_known missing": ("0a 00 03 00 00 00 01", 0x0A, 3),
    "hello_id c1": ("02 01 00 1e c1", 0x02, 0),
    "server_hello_id missing": ("04", 0x04, 0),
    "event_notify bad": ("33 2f 61 00 c1", 0x33, 0),
    "lease_acquire missing": ("50 00 07", 0x50, 7),
    "lease_revoked bad": ("61 c1", 0x61, 0),
}


@pytest.mark.parametrize("case", VALUE_ERRORS.values(), ids=VALUE_ERRORS.keys())
def test_value_errors_give_bad_value(case: tuple[str, int, int]) -> None:
    """Case 7: a right layout with a bad value decodes to BadValue with code and id, no raise."""
    hexdata, code, rid = case
    result = codec.decode(bytes.fromhex(hexdata))
    assert isinstance(result, m.BadValue)
    assert (result.code, result.id) == (code, rid)
    assert result.reason


def test_layout_error_wins_over_value_error() -> None:
    """A bad value in a message with bad layout is still a framing error (no NUL)."""
    with pytest.raises(FramingError):
        codec.decode(bytes.fromhex("11 00 05 2f 61 c1"))


def test_path_bytes_round_trip_as_latin1() -> None:
    """Path bytes are carried as Latin-1 text, so any non-NUL byte survives."""
    payload = bytes.fromhex("23 00 01 2f e9 0a ff 00")
    msg = codec.decode(payload)
    assert msg == m.Get(1, "/\xe9\n\xff")
    assert codec.encode_payload(m.Get(1, "/\xe9\n\xff")) == payload


def test_empty_path_decodes() -> None:
    """An empty path is a layout the codec accepts; rejecting it is the broker's job."""
    assert codec.decode(bytes.fromhex("10 00 01 00")) == m.ActionRegister(1, "")


def test_decode_accepts_every_known_code_only() -> None:
    """The decoder table covers exactly the codes of the catalogue."""
    known = {code for code in range(256) if codec.DECODER_TABLE[code] is not None}
    assert known == set(m.BY_CODE)


def test_encode_refuses_oversized_frames() -> None:
    """A message whose payload would exceed 65535 bytes is refused locally."""
    limit = 65535
    value = Value(b"\xc5" + (limit - 3 - 3).to_bytes(2, "big") + bytes(limit - 6))
    assert len(codec.encode(m.ReplyOk(1, value))) == 3 + limit
    too_big = Value(b"\xc5" + (limit - 5).to_bytes(2, "big") + bytes(limit - 5))
    with pytest.raises(LocalProtocolError, match="does not fit"):
        codec.encode(m.ReplyOk(1, too_big))
    with pytest.raises(LocalProtocolError):
        codec.encode(m.EventNotify("/a", too_big))


def test_state_changed_limit() -> None:
    """Case 13: a 0x41 whose payload is exactly 65535 bytes encodes; one byte more does not."""
    value = Value(b"\xc6" + (65529 - 5).to_bytes(4, "big") + bytes(65529 - 5))
    frame = codec.encode(m.StateChanged(1, "/a", value))
    assert len(frame) == 3 + 65535
    assert frame[1:3] == b"\xff\xff"
    bigger = Value(b"\xc6" + (65530 - 5).to_bytes(4, "big") + bytes(65530 - 5))
    with pytest.raises(LocalProtocolError):
        codec.encode(m.StateChanged(1, "/a", bigger))


@pytest.mark.parametrize(
    "msg",
    [
        m.Get(1, "/a\0b"),
        m.Get(1, "/\u20ac"),
        m.Ping(65536),
        m.Ping(-1),
        m.Hello(256, 30),
        m.Hello(1, 65536),
        m.ReplyStateTUnknown(1, 2**32),
    ],
    ids=["NUL in path", "non-latin-1 path", "id 65536", "id -1", "version 256", "timeout", "ms"],
)
def test_encode_refuses_unencodable_fields(msg: m.Message) -> None:
    """Fields outside their wire range raise LocalProtocolError, never a bare error."""
    with pytest.raises(LocalProtocolError):
        codec.encode(msg)


def test_encode_refuses_non_messages() -> None:
    """Something that is not a message (or has a non-Value value) raises LocalProtocolError."""
    with pytest.raises(LocalProtocolError):
        codec.encode(m.BadValue(0x31, 1, "bad"))  # type: ignore[arg-type]
    with pytest.raises(LocalProtocolError):
        codec.encode(m.ReplyOk(1, "not a Value"))  # type: ignore[arg-type]


def test_notify_frame_matches_encode() -> None:
    """notify_frame builds the same bytes as encoding the notification message."""
    assert codec.notify_frame(0x33, b"/path", VALUE.raw) == codec.encode(
        m.EventNotify("/path", VALUE)
    )
    assert codec.notify_frame(0x44, b"/path", VALUE.raw) == codec.encode(
        m.StateNotify("/path", VALUE)
    )
    assert codec.notify_frame(0x45, b"/path") == codec.encode(m.StateNotifyUnknown("/path"))
    with pytest.raises(LocalProtocolError):
        codec.notify_frame(0x33, b"/p", bytes(65535))


def test_reply_frame_matches_encode() -> None:
    """reply_frame builds the same bytes as encoding the reply message."""
    assert codec.reply_frame(0x05, 42, NIL.raw) == codec.encode(m.ReplyOk(42, NIL))
    assert codec.reply_frame(0x06, 7, BODY.raw) == codec.encode(m.ReplyError(7, BODY))
    assert codec.reply_frame(0x07, 1, VALUE.raw) == codec.encode(m.ReplyStateKnown(1, VALUE))
    with pytest.raises(LocalProtocolError):
        codec.reply_frame(0x05, 1, bytes(65533))


def test_messages_are_frozen() -> None:
    """Messages cannot be changed after construction and compare by fields."""
    msg = m.EventEmit(1, "/a", NIL)
    with pytest.raises(AttributeError):
        msg.id = 2  # type: ignore[misc]
    assert msg == m.EventEmit(1, "/a", Value(b"\xc0"))
    assert msg != m.EventEmit(2, "/a", NIL)
    assert repr(msg) == "EventEmit(id=1, path='/a', value=Value(None))"
    with pytest.raises(TypeError):
        m.EventEmit(1, "/a")  # type: ignore[call-arg]


def test_unknown_prints_as_its_name() -> None:
    """The Unknown sentinel reads "Unknown" in str, repr and f-strings, and is falsy."""
    assert str(m.Unknown) == "Unknown"
    assert repr(m.Unknown) == "Unknown"
    assert f"{m.Unknown}" == "Unknown"
    assert not m.Unknown
