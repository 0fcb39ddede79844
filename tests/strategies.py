"""Hypothesis strategies for roost's wire data: msgpack values, paths, ids and messages.

Import what you need::

    from tests.strategies import messages, msgpack_objects, valid_paths, values
"""

from __future__ import annotations

import struct
from dataclasses import fields
from typing import Any

import msgpack
from hypothesis import strategies as st

from roost.protocol import messages as m
from roost.protocol.values import Value, pack

__all__ = (
    "frame_streams",
    "ids",
    "messages",
    "messages_of",
    "msgpack_objects",
    "paths",
    "valid_paths",
    "values",
    "wire_paths",
)

#: u16 request ids.
ids = st.integers(min_value=0, max_value=0xFFFF)

_scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**63), max_value=2**64 - 1),
    st.floats(allow_nan=False),
    st.text(max_size=20),
    st.binary(max_size=20),
)

#: Python objects with a msgpack form: nil, bools, the int64/uint64 range, floats, str, bin,
#: arrays and maps (str or int keys). NaN is left out so that equality is meaningful.
msgpack_objects: st.SearchStrategy[Any] = st.recursive(
    _scalars,
    lambda children: st.one_of(
        st.lists(children, max_size=5),
        st.dictionaries(st.one_of(st.text(max_size=8), st.integers(-5, 5)), children, max_size=5),
    ),
    max_leaves=12,
)


def _float32(obj: float) -> bytes:
    return b"\xca" + struct.pack(">f", obj)


#: Wire values: packed objects, plus encodings roost must keep byte for byte (float32, ints in a
#: wider encoding than needed).
values: st.SearchStrategy[Value] = st.one_of(
    msgpack_objects.map(lambda obj: Value(pack(obj), obj)),
    st.floats(width=32, allow_nan=False).map(lambda f: Value(_float32(f))),
    st.integers(0, 255).map(lambda n: Value(b"\xcd" + n.to_bytes(2, "big"))),
    st.binary(max_size=40).map(lambda b: Value(msgpack.packb(b, use_bin_type=True))),
)

#: Any path the codec can carry: Latin-1 text without NUL (the broker judges the syntax).
wire_paths = st.text(alphabet=st.characters(min_codepoint=1, max_codepoint=255), max_size=30)

#: Paths that pass the broker's syntax check ``^(/[A-Za-z0-9_]+)+$``.
valid_paths = st.lists(
    st.text(
        alphabet="abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_",
        min_size=1,
        max_size=8,
    ),
    min_size=1,
    max_size=4,
).map(lambda segments: "".join(f"/{segment}" for segment in segments))

#: Alias for :data:`wire_paths`.
paths = wire_paths

_FIELDS: dict[str, st.SearchStrategy[Any]] = {
    "id": ids,
    "sub": ids,
    "path": wire_paths,
    "value": values,
    "args": values,
    "client_id": values,
    "body": values,
    "version": st.integers(0, 255),
    "timeout": st.integers(0, 0xFFFF),
    "ms": st.integers(0, 2**32 - 1),
}


def messages_of(cls: type[m.Message]) -> st.SearchStrategy[m.Message]:
    """Messages of one class with arbitrary field values of the right wire types."""
    return st.builds(cls, **{field.name: _FIELDS[field.name] for field in fields(cls)})


#: Any wire message, of every class in ``BY_CODE``.
messages: st.SearchStrategy[m.Message] = st.one_of([messages_of(cls) for cls in m.BY_CODE.values()])


@st.composite
def frame_streams(
    draw: st.DrawFn, max_messages: int = 8
) -> tuple[list[m.Message], bytes, list[int]]:
    """A list of messages, their concatenated frames, and sorted cut points into that stream."""
    from roost.protocol import codec

    msgs = draw(st.lists(messages, min_size=1, max_size=max_messages))
    stream = b"".join(codec.encode(msg) for msg in msgs)
    cuts = sorted(draw(st.sets(st.integers(1, max(1, len(stream) - 1)), max_size=12)))
    return msgs, stream, cuts
