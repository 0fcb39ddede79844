"""Golden frames from docs/protocol.md: decode to the message, encode back to the frame."""

from __future__ import annotations

import pytest

from roost.protocol import codec
from roost.protocol import messages as m
from roost.protocol.connection import Connection, Role
from roost.protocol.framing import FrameDecoder
from tests.vectors import ESHET_VECTORS, EXTENSION_VECTORS, SPEC_EXAMPLES, VALUE, VECTORS, Vector

_ids = [vector.name for vector in VECTORS]


@pytest.mark.parametrize("vector", VECTORS, ids=_ids)
def test_decode_vector(vector: Vector) -> None:
    """Case 1: decoding the hand-written payload gives the expected message."""
    assert codec.decode(vector.payload) == vector.message


@pytest.mark.parametrize("vector", VECTORS, ids=_ids)
def test_encode_vector(vector: Vector) -> None:
    """Case 1: encoding the message gives exactly the hand-written frame."""
    assert codec.encode(vector.message) == vector.frame
    assert codec.encode_payload(vector.message) == vector.payload


@pytest.mark.parametrize("vector", VECTORS, ids=_ids)
def test_frame_decoder_vector(vector: Vector) -> None:
    """The frame decoder yields the vector's payload, whole or fed one byte at a time."""
    assert FrameDecoder().feed(vector.frame) == [vector.payload]
    decoder = FrameDecoder()
    payloads = [p for i in range(len(vector.frame)) for p in decoder.feed(vector.frame[i : i + 1])]
    assert payloads == [vector.payload]


def test_every_message_class_has_a_vector() -> None:
    """Case 1: the 30 ESHET forms and every extension form each have a golden frame."""
    assert len(ESHET_VECTORS) == 30
    covered = {type(vector.message) for vector in ESHET_VECTORS + EXTENSION_VECTORS}
    assert covered == set(m.BY_CODE.values())
    assert [vector.frame[3] for vector in ESHET_VECTORS] == sorted(
        code for code in m.BY_CODE if code < 0x50
    )


def test_vector_value_views() -> None:
    """The hand-written value bytes decode to the values the spec names."""
    assert VALUE.obj == ["foo", 5]
    by_name = {vector.name: vector.message for vector in SPEC_EXAMPLES}
    call = by_name["action_call /p1/act"]
    assert isinstance(call, m.ActionCall)
    assert call.args.obj == [1, "two", 3.5]
    allocated = by_name["eshetsrv allocated id"]
    assert isinstance(allocated, m.ServerHelloId)
    assert allocated.client_id.obj == -576460752303422590
    acquire = by_name["lease_acquire lab/arm"]
    assert isinstance(acquire, m.LeaseAcquire)
    assert acquire.body.obj == {"resource": "lab/arm", "wait": 0}


def test_ping_exchange_through_connections() -> None:
    """Case 2: a client's ping id 7 reaches the server, whose answer is exactly the spec's bytes."""
    client, server = Connection(Role.CLIENT), Connection(Role.SERVER)
    frame = client.send(m.Ping(7))
    assert frame == bytes.fromhex("47 00 03 09 00 07")
    assert server.receive_data(frame) == [m.Ping(7)]
    answer = codec.reply_frame(0x05, 7, b"\xc0")
    assert answer == bytes.fromhex("47 00 04 05 00 07 c0")
    assert [type(msg) for msg in client.receive_data(answer)] == [m.ReplyOk]
