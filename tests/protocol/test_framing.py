"""The frame layer (protocol.md §2): splits, coalescing, bad sync bytes, zero lengths."""

from __future__ import annotations

import pytest

from roost.errors import FramingError, LocalProtocolError
from roost.protocol.framing import MAX_PAYLOAD, FrameDecoder, encode_frame

PING_7 = bytes.fromhex("47 00 03 09 00 07")
PING_8 = bytes.fromhex("47 00 03 09 00 08")


def test_split_one_byte_at_a_time() -> None:
    """Case 3: two frames fed one byte at a time give both payloads, each when complete."""
    decoder = FrameDecoder()
    seen: list[tuple[int, bytes]] = []
    stream = PING_7 + PING_8
    for index in range(len(stream)):
        seen += [(index, p) for p in decoder.feed(stream[index : index + 1])]
    assert seen == [(5, PING_7[3:]), (11, PING_8[3:])]
    assert decoder.buffered == 0


def test_coalesced_frames() -> None:
    """Case 3: two frames in one chunk give both payloads in order."""
    assert FrameDecoder().feed(PING_7 + PING_8) == [PING_7[3:], PING_8[3:]]


def test_every_two_way_split() -> None:
    """Any cut of a three-frame stream yields the same payloads."""
    stream = PING_7 + bytes.fromhex("47 00 01 03") + PING_8
    expected = [PING_7[3:], b"\x03", PING_8[3:]]
    for cut in range(len(stream) + 1):
        decoder = FrameDecoder()
        assert decoder.feed(stream[:cut]) + decoder.feed(stream[cut:]) == expected


def test_partial_frame_is_buffered() -> None:
    """An incomplete frame is held back and reported by ``buffered``."""
    decoder = FrameDecoder()
    assert decoder.feed(PING_7 + PING_8[:4]) == [PING_7[3:]]
    assert decoder.buffered == 4
    assert decoder.feed(b"") == []
    assert decoder.feed(PING_8[4:]) == [PING_8[3:]]
    assert decoder.buffered == 0


def test_largest_frame() -> None:
    """A 65535-byte payload passes through, split or whole."""
    frame = b"\x47\xff\xff" + bytes(MAX_PAYLOAD)
    assert FrameDecoder().feed(frame) == [bytes(MAX_PAYLOAD)]
    decoder = FrameDecoder()
    assert decoder.feed(frame[:40000]) == []
    assert decoder.feed(frame[40000:]) == [bytes(MAX_PAYLOAD)]


def test_bad_sync_byte() -> None:
    """Case 4: a frame starting with 0x48 is a framing error."""
    with pytest.raises(FramingError, match="sync"):
        FrameDecoder().feed(bytes.fromhex("48 00 03 09 00 07"))


def test_bad_sync_byte_after_a_frame() -> None:
    """A bad sync byte right after a good frame is caught as soon as it arrives."""
    decoder = FrameDecoder()
    with pytest.raises(FramingError):
        decoder.feed(PING_7 + b"\x00")


def test_bad_sync_byte_in_later_chunk() -> None:
    """A lone bad byte after a partial header boundary is caught on arrival."""
    decoder = FrameDecoder()
    assert decoder.feed(PING_7) == [PING_7[3:]]
    with pytest.raises(FramingError):
        decoder.feed(b"\x12")


def test_zero_length() -> None:
    """Case 5: a zero-length frame is a framing error, whole or split."""
    with pytest.raises(FramingError, match="zero"):
        FrameDecoder().feed(b"\x47\x00\x00")
    decoder = FrameDecoder()
    assert decoder.feed(b"\x47\x00") == []
    with pytest.raises(FramingError):
        decoder.feed(b"\x00")


def test_bytearray_input_gives_bytes() -> None:
    """Bytes-like input is accepted and payloads come out as immutable bytes."""
    payloads = FrameDecoder().feed(bytearray(PING_7))
    assert payloads == [PING_7[3:]]
    assert type(payloads[0]) is bytes


def test_encode_frame() -> None:
    """encode_frame prefixes sync and length, and refuses empty or oversized payloads."""
    assert encode_frame(b"\x09\x00\x07") == PING_7
    assert encode_frame(bytes(MAX_PAYLOAD))[:3] == b"\x47\xff\xff"
    with pytest.raises(LocalProtocolError):
        encode_frame(b"")
    with pytest.raises(LocalProtocolError):
        encode_frame(bytes(MAX_PAYLOAD + 1))
