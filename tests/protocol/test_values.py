"""Value validation (protocol.md §4.2) and the bytes-plus-view model of values (§4.3)."""

from __future__ import annotations

import pytest

from roost.errors import InvalidValue, ProtocolError
from roost.protocol.values import MAX_DEPTH, NIL, MapPairs, Value, decode_value, pack, unpack


def _nested_arrays(depth: int) -> bytes:
    """``depth`` arrays, each holding the next; the innermost is empty."""
    return b"\x91" * (depth - 1) + b"\x90"


def _nested_maps(depth: int) -> bytes:
    """``depth`` maps ``{"k": ...}``; the innermost is empty."""
    return b"\x81\xa1k" * (depth - 1) + b"\x80"


BAD_VALUES = {
    "c1 never used": "c1",
    "missing": "",
    "two objects": "01 02",
    "trailing byte after array": "91 01 c0",
    "truncated array": "92 01",
    "truncated str": "a3 61 62",
    "fixext1 type 1": "d4 01 00",
    "ext8 type 5": "c7 01 05 00",
    "ext inside array": "92 01 d4 01 00",
    "timestamp 32": "d6 ff 00 00 00 01",
    "timestamp 64": "d7 ff 00 00 00 00 00 00 00 01",
    "timestamp 96": "c7 0c ff 00 00 00 00 00 00 00 00 00 00 00 01",
    "timestamp in array": "91 d6 ff 00 00 00 01",
    "timestamp as map key": "81 d6 ff 00 00 00 01 01",
    "timestamp in map value": "81 a1 74 d6 ff 00 00 00 01",
    "bad utf-8 str": "a2 c3 28",
    "bad utf-8 map key": "81 a2 c3 28 01",
    "utf-8 surrogate": "a3 ed a0 80",
    "bad utf-8 in nested array": "91 91 a1 ff",
    "timestamp beside an array key": "81 91 01 d6 ff 00 00 00 01",
    "timestamp beside a map key": "81 81 01 02 d6 ff 00 00 00 01",
    "ext inside a map key": "81 81 d4 01 00 02 03",
}


@pytest.mark.parametrize("hexdata", BAD_VALUES.values(), ids=BAD_VALUES.keys())
def test_invalid_values_rejected(hexdata: str) -> None:
    """Case 7 and 11: invalid msgpack, ext types, timestamps, bad UTF-8 raise InvalidValue."""
    with pytest.raises(InvalidValue):
        decode_value(bytes.fromhex(hexdata))


def test_invalid_value_is_a_protocol_error() -> None:
    """InvalidValue sits in the ProtocolError branch, apart from FramingError."""
    with pytest.raises(ProtocolError) as info:
        decode_value(b"\xc1")
    assert type(info.value) is InvalidValue


def test_missing_value_reason() -> None:
    """An empty value says it is missing."""
    with pytest.raises(InvalidValue, match="missing value"):
        decode_value(b"")


@pytest.mark.parametrize("make", [_nested_arrays, _nested_maps], ids=["arrays", "maps"])
def test_depth_64_accepted(make: object) -> None:
    """Case 11: containers nested 64 deep are valid."""
    assert callable(make)
    data = make(MAX_DEPTH)
    assert decode_value(data).raw == data


@pytest.mark.parametrize("make", [_nested_arrays, _nested_maps], ids=["arrays", "maps"])
def test_depth_65_rejected(make: object) -> None:
    """Case 11: containers nested 65 deep are invalid."""
    assert callable(make)
    with pytest.raises(InvalidValue, match="deeper than 64"):
        decode_value(make(MAX_DEPTH + 1))


def test_depth_counts_array_map_keys() -> None:
    """A map keyed by arrays is valid; the key's nesting counts towards the depth."""
    key64 = _nested_arrays(MAX_DEPTH - 1)
    data = b"\x81" + key64 + b"\x01"
    value = decode_value(data)
    assert isinstance(value.obj, dict)
    assert list(value.obj.values()) == [1]
    with pytest.raises(InvalidValue):
        decode_value(b"\x81" + _nested_arrays(MAX_DEPTH) + b"\x01")


def test_map_keyed_by_maps() -> None:
    """A map keyed by a map is valid and decodes as pairs, in wire order; depth still counts."""
    value = decode_value(bytes.fromhex("82 81 01 02 03 a1 6b 04"))
    assert value.obj == MapPairs([({1: 2}, 3), ("k", 4)])
    assert decode_value(b"\x81\x81\x01\x02" + _nested_arrays(MAX_DEPTH - 1)).obj
    with pytest.raises(InvalidValue):
        decode_value(b"\x81\x81\x01\x02" + _nested_arrays(MAX_DEPTH))


def test_depth_inside_map_with_array_keys() -> None:
    """Nesting in the values of a map keyed by arrays is still checked."""
    deep = _nested_arrays(MAX_DEPTH)
    assert decode_value(b"\x81\x90" + _nested_arrays(MAX_DEPTH - 1)).raw[:2] == b"\x81\x90"
    with pytest.raises(InvalidValue):
        decode_value(b"\x81\x90" + deep)
    with pytest.raises(InvalidValue):
        decode_value(b"\x81\x90\x81\x01" + deep)


def test_deep_value_in_large_flat_value() -> None:
    """A long value with a deep branch is walked: length alone does not excuse it."""
    data = b"\x92" + b"\xa9" + b"x" * 9 + b"\x91" * MAX_DEPTH + b"\x90"
    with pytest.raises(InvalidValue):
        decode_value(data)
    ok = b"\x92" + b"\xb0" + b"x" * 16 + _nested_arrays(MAX_DEPTH - 1)
    assert len(decode_value(ok).obj) == 2


def test_timestamp_in_long_value() -> None:
    """A timestamp deep inside a value longer than 64 bytes is found."""
    data = b"\x92" + b"\xda\x00\x50" + b"y" * 80 + b"\x91\xd6\xff\x00\x00\x00\x01"
    with pytest.raises(InvalidValue, match="timestamp"):
        decode_value(data)


def test_byte_ff_alone_is_fine() -> None:
    """Values containing 0xff bytes that are no timestamp (-1, bin) stay valid."""
    for data in (b"\x91\xff", b"\x92\xc4\x02\xff\xff\xff", b"\x81\xff\xff"):
        assert decode_value(data).raw == data


def test_value_keeps_bytes() -> None:
    """Case 10: a float32, a wide int and key order survive as the exact bytes received."""
    data = bytes.fromhex("83 a1 66 ca 3d cc cc cd a1 63 cc 05 a1 61 c0")
    value = decode_value(data)
    assert value.raw == data
    assert list(value.obj) == ["f", "c", "a"]
    assert value.obj["c"] == 5


def test_value_equality_is_by_bytes() -> None:
    """1 and 1.0 differ, str and bin differ; equal bytes are equal and hash alike."""
    assert Value.of(1) != Value.of(1.0)
    assert Value.of("x") != Value.of(b"x")
    assert Value.of([1, "a"]) == decode_value(b"\x92\x01\xa1a")
    assert hash(Value.of("k")) == hash(Value(b"\xa1k"))
    assert Value.of(NIL) is NIL
    assert NIL.raw == b"\xc0"
    assert NIL.obj is None


def test_value_of_packs_str_bin_float64() -> None:
    """Value.of packs str as str, bytes as bin and floats as float64."""
    assert Value.of("a").raw == b"\xa1a"
    assert Value.of(b"a").raw == b"\xc4\x01a"
    assert Value.of(0.5).raw == b"\xcb\x3f\xe0" + bytes(6)
    assert pack({"a": [1]}) == b"\x81\xa1a\x91\x01"
    with pytest.raises(TypeError):
        Value.of(object())


def test_lazy_view() -> None:
    """A Value built from bytes alone decodes them on first use of obj."""
    value = Value(b"\x92\x01\x02")
    assert value.obj == [1, 2]
    assert repr(value) == "Value([1, 2])"
    broken = Value(b"\xc1")
    with pytest.raises(InvalidValue):
        _ = broken.obj
    assert repr(broken) == "Value(raw=b'\\xc1')"


def test_unpack_validates() -> None:
    """unpack returns the object of a valid value and raises on an invalid one."""
    assert unpack(b"\x93\x01\xa1a\xc3") == [1, "a", True]
    with pytest.raises(InvalidValue):
        unpack(b"\xd4\x01\x00")


def test_whole_int_range() -> None:
    """The int64 and uint64 extremes are valid values."""
    for number in (-(2**63), 2**64 - 1):
        assert decode_value(pack(number)).obj == number


def test_large_flat_values() -> None:
    """Long flat arrays, maps and strings are valid and keep their bytes."""
    for obj in (list(range(1000)), {str(i): i for i in range(300)}, "z" * 5000, bytes(70000)):
        data = pack(obj)
        value = decode_value(data)
        assert value.obj == obj
        assert value.raw is data
