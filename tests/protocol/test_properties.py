"""Property tests: round trips, arbitrary splits, and arbitrary garbage."""

from __future__ import annotations

from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from roost.errors import ProtocolError
from roost.protocol import codec
from roost.protocol import messages as m
from roost.protocol.connection import Connection, Role
from roost.protocol.framing import FrameDecoder
from roost.protocol.values import Value, decode_value, pack
from tests.strategies import frame_streams, messages, messages_of, msgpack_objects, values

# The machine is shared: a slow first draw or a descheduled example is not a failure.
_relaxed = settings(suppress_health_check=[HealthCheck.too_slow], deadline=None)
_garbage = settings(_relaxed, max_examples=300)


@_relaxed
@given(messages)
def test_every_message_round_trips(msg: m.Message) -> None:
    """Case 1: encode then decode gives the original message, for every message class."""
    frame = codec.encode(msg)
    assert int.from_bytes(frame[1:3], "big") == len(frame) - 3
    assert frame[3] == msg.code
    assert codec.decode(frame[3:]) == msg


@_relaxed
@given(values)
def test_values_round_trip_byte_for_byte(value: Value) -> None:
    """A valid value decodes to a Value with the very same bytes."""
    assert decode_value(value.raw).raw == value.raw


@_relaxed
@given(msgpack_objects)
def test_packed_objects_decode_to_themselves(obj: object) -> None:
    """Packing then validating gives back an equal object."""
    assert decode_value(pack(obj)).obj == obj


@_relaxed
@given(frame_streams())
def test_any_split_through_frame_decoder(case: tuple[list[m.Message], bytes, list[int]]) -> None:
    """Arbitrary byte splits of a frame stream decode to the same messages."""
    msgs, stream, cuts = case
    decoder = FrameDecoder()
    payloads: list[bytes] = []
    for start, end in zip([0, *cuts], [*cuts, len(stream)], strict=True):
        payloads += decoder.feed(stream[start:end])
    assert [codec.decode(payload) for payload in payloads] == msgs
    assert decoder.buffered == 0


@_relaxed
@given(
    st.lists(
        st.one_of([messages_of(m.BY_CODE[code]) for code in sorted(m.CLIENT_ONLY | {0x11})]),
        max_size=8,
    )
)
def test_any_split_through_server_connection(msgs: list[m.Message]) -> None:
    """Arbitrary splits through Connection.receive_data give the messages in order."""
    stream = b"".join(codec.encode(msg) for msg in msgs)
    for step in (1, 2, 7, 64):
        conn = Connection(Role.SERVER)
        got: list[m.Message | m.BadValue] = []
        try:
            for start in range(0, len(stream), step):
                got += conn.receive_data(stream[start : start + step])
        except ProtocolError:
            # Only a hello with a version other than 1 may stop the stream.
            assert any(isinstance(msg, m.Hello | m.HelloId) and msg.version != 1 for msg in msgs)
            continue
        assert got == msgs


_STATE_REPLIES = (m.ReplyStateKnown, m.ReplyStateUnknown, m.ReplyStateTKnown, m.ReplyStateTUnknown)
_from_server = st.one_of(
    [messages_of(m.BY_CODE[code]) for code in sorted(m.SERVER_ONLY - {0x03, 0x04})]
)


@_relaxed
@given(st.lists(_from_server, max_size=8), st.integers(1, 50))
def test_any_split_through_client_connection(msgs: list[m.Message], step: int) -> None:
    """A client after its hello reply decodes the broker's messages the same, however split."""
    conn = Connection(Role.CLIENT)
    conn.send(m.Hello(1, 30))
    replies = [msg for msg in msgs if isinstance(msg, _STATE_REPLIES)]
    for rid in {reply.id for reply in replies}:  # each observe reply answers an observe sent
        conn.send(m.StateObserve(rid, "/s"))
    stream = codec.encode(m.ServerHello()) + b"".join(codec.encode(msg) for msg in msgs)
    got: list[m.Message | m.BadValue] = []
    try:
        for start in range(0, len(stream), step):
            got += conn.receive_data(stream[start : start + step])
    except ProtocolError:
        # Only two replies to one id may stop the stream: the second answers nothing.
        assert len({reply.id for reply in replies}) < len(replies)
        return
    assert got == [m.ServerHello(), *msgs]


def _framed(payload: bytes) -> bytes:
    return b"G" + len(payload).to_bytes(2, "big") + payload


_garbage_streams = st.one_of(
    st.binary(max_size=200),
    st.lists(st.binary(min_size=1, max_size=40).map(_framed), max_size=6).map(b"".join),
)


def _after_hello(role: Role) -> Connection:
    conn = Connection(role)
    if role is Role.SERVER:
        conn.receive_data(codec.encode(m.Hello(1, 30)))
    else:
        conn.send(m.Hello(1, 30))
        conn.receive_data(codec.encode(m.ServerHello()))
    return conn


@_garbage
@given(_garbage_streams)
@example(b"G\x00\x01\x02")
@example(b"G\x00\x05\x11\x00\x01/\x00")
@example(b"G\x00\x03\x05\x00\x00")
def test_random_bytes_never_crash_a_connection(data: bytes) -> None:
    """Random bytes either decode or raise a ProtocolError subclass, never anything else."""
    for conn in (Connection(Role.SERVER), Connection(Role.CLIENT), *map(_after_hello, Role)):
        try:
            out = conn.receive_data(data)
        except ProtocolError:
            continue
        assert all(isinstance(msg, (*m.BY_CODE.values(), m.BadValue)) for msg in out)


@_garbage
@given(st.binary(min_size=1, max_size=120))
def test_random_payloads_never_crash_the_codec(payload: bytes) -> None:
    """Any payload in a well-formed frame decodes, or raises a ProtocolError subclass."""
    frame = b"G" + len(payload).to_bytes(2, "big") + payload
    try:
        result = codec.decode(payload)
    except ProtocolError:
        return
    assert isinstance(result, (*m.BY_CODE.values(), m.BadValue))
    if not isinstance(result, m.BadValue):
        assert codec.encode(result) == frame


@_garbage
@given(st.binary(max_size=64))
def test_random_values_validate_or_raise_invalid_value(data: bytes) -> None:
    """decode_value accepts exactly what it can hand back byte for byte, else InvalidValue."""
    try:
        value = decode_value(data)
    except ProtocolError as exc:
        assert type(exc).__name__ == "InvalidValue"
        return
    assert value.raw == data


@_garbage
@given(st.sampled_from([0x11, 0x31]), st.binary(max_size=80))
@example(0x31, b"\x00\x01/a\x00\xc0")
@example(0x11, b"\x00\x01/a\x00")
@example(0x31, b"\x00")
def test_split_request_agrees_with_decode(code: int, body: bytes) -> None:
    """split_request gives decode's id, path and value bytes, or None exactly where decode
    raises or gives a BadValue."""
    payload = bytes([code]) + body
    parts = codec.split_request(payload)
    try:
        msg = codec.decode(payload)
    except ProtocolError:
        assert parts is None
        return
    if isinstance(msg, m.BadValue):
        assert parts is None
        return
    assert isinstance(msg, m.ActionCall | m.EventEmit)
    raw = msg.args.raw if isinstance(msg, m.ActionCall) else msg.value.raw
    assert parts == (msg.id, msg.path, raw)
