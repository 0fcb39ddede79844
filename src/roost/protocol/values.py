"""msgpack values as the sender's bytes, with a decoded Python view.

Rules of this module:

- The only module of this package that imports msgpack.
- A ``Value`` received from the wire was validated once on arrival (protocol.md §4.2) and keeps the
  exact bytes it arrived as, so a broker forwards it byte for byte (a float32 stays float32).
- A ``Value`` built from a Python object packs it once (str as str, bytes as bin, float as float64).
- Two values are equal when their bytes are equal: ``1`` and ``1.0`` differ, as on the wire.
"""

from __future__ import annotations

from typing import Any, Final

import msgpack

from roost.errors import InvalidValue

__all__ = ("MAX_DEPTH", "NIL", "MapPairs", "Value", "decode_value", "pack", "unpack", "validate")

#: Containers may nest at most this deep (protocol.md §4.2): ``[]`` is depth 1.
MAX_DEPTH: Final = 64

_UNSET: Final[Any] = object()
_Timestamp: Final = msgpack.Timestamp
_unpackb: Final = msgpack.unpackb


class MapPairs(list[tuple[Any, Any]]):
    """A decoded msgpack map whose keys cannot be Python dict keys (for example arrays).

    Its items are the ``(key, value)`` pairs in wire order; arrays inside it decode as tuples.
    """


#: Types whose presence makes the validation walk necessary (containers, and the timestamp
#: extension that msgpack decodes without calling ``ext_hook``).
_WALK_TYPES: Final = frozenset({list, dict, tuple, MapPairs, _Timestamp})


def pack(obj: Any) -> bytes:
    """Encode a Python object as msgpack (str as str, bytes as bin, float as float64).

    Raises:
        TypeError: the object has no msgpack form.
    """
    return msgpack.packb(obj, use_bin_type=True)


def unpack(data: bytes) -> Any:
    """Validate ``data`` as :func:`decode_value` does and return the decoded object.

    Raises:
        InvalidValue: ``data`` is not exactly one valid value.
    """
    return decode_value(data).obj


def _pairs_hook(pairs: list[tuple[Any, Any]]) -> Any:
    try:
        return dict(pairs)
    except TypeError:
        return MapPairs(pairs)


def _reject_ext(code: int, data: bytes) -> Any:
    raise InvalidValue(f"extension type {code} is not allowed")


def _walk(obj: Any) -> None:
    """Check nesting depth and the absence of timestamp objects, without recursion."""
    stack = [(obj, 1)]
    pop = stack.pop
    push = stack.append
    walk_types = _WALK_TYPES
    while stack:
        item, depth = pop()
        if depth > MAX_DEPTH:
            raise InvalidValue(f"containers nest deeper than {MAX_DEPTH}")
        kind = type(item)
        children: Any
        if kind is dict:
            children = (*item.keys(), *item.values())
        elif kind is MapPairs:
            # The pairs are a view artefact, not a nesting level of the value.
            children = [part for pair in item for part in pair]
        elif kind is _Timestamp:
            raise InvalidValue("the timestamp extension type is not allowed")
        else:
            children = item
        depth += 1
        for child in children:
            if type(child) in walk_types:
                push((child, depth))


def _unpack_checked(data: bytes) -> Any:
    """Decode exactly one msgpack object; msgpack's own errors become ``InvalidValue``."""
    if not data:
        raise InvalidValue("missing value")
    try:
        return _unpackb(data, raw=False, strict_map_key=False, ext_hook=_reject_ext)
    except InvalidValue:
        raise
    except TypeError:
        pass  # a map whose keys are arrays or maps: still valid msgpack, decoded below as pairs
    except Exception as exc:  # ExtraData, FormatError, StackError, UnicodeDecodeError, ValueError
        reason = str(exc) or type(exc).__name__
        raise InvalidValue(f"not exactly one valid msgpack value: {reason}") from None
    try:
        return _unpackb(
            data,
            raw=False,
            strict_map_key=False,
            ext_hook=_reject_ext,
            use_list=False,
            object_pairs_hook=_pairs_hook,
        )
    except InvalidValue:
        raise
    except Exception as exc:
        reason = str(exc) or type(exc).__name__
        raise InvalidValue(f"not a valid msgpack value: {reason}") from None


def validate(data: bytes) -> Any:
    """Validate ``data`` as one msgpack value and return its decoded form.

    Valid means: exactly one well-formed msgpack object filling ``data`` (empty data is invalid),
    no extension types (the timestamp extension included), valid UTF-8 in every str (map keys
    too), containers nested at most 64 deep.

    Raises:
        InvalidValue: any of the above does not hold; the message says which.
    """
    try:
        obj = _unpackb(data, raw=False, strict_map_key=False, ext_hook=_reject_ext)
    except Exception:
        obj = _unpack_checked(data)  # the slow path says why, or decodes maps keyed by arrays
    # A value of at most 64 bytes cannot nest 65 deep (each level costs a header byte), and a
    # timestamp always contains the byte 0xff (its type, -1): most values skip the walk.
    if type(obj) in _WALK_TYPES and (len(data) > MAX_DEPTH or 0xFF in data):
        _walk(obj)
    return obj


def decode_value(data: bytes) -> Value:
    """Validate ``data`` as one msgpack value (as :func:`validate`) and return it as a
    :class:`Value`.

    Raises:
        InvalidValue: ``data`` is not one valid msgpack value; the message says why.
    """
    return Value(data, validate(data))


class Value:
    """One msgpack value: ``raw`` holds its bytes, ``obj`` its decoded Python form.

    Args:
        raw: the msgpack bytes, sent as they are.
        obj: the decoded form if known; otherwise ``raw`` is decoded on first use of ``obj``.
    """

    __slots__ = ("_obj", "raw")

    def __init__(self, raw: bytes, obj: Any = _UNSET) -> None:
        self.raw = raw
        self._obj = obj

    @classmethod
    def of(cls, obj: Any) -> Value:
        """Pack a Python object (str as str, bytes as bin, float as float64); a Value is returned
        unchanged.

        Raises:
            TypeError: the object has no msgpack form.
        """
        if isinstance(obj, Value):
            return obj
        return cls(pack(obj), obj)

    @property
    def obj(self) -> Any:
        """The decoded Python object (decoded on first use if the value was built from bytes).

        Raises:
            InvalidValue: the value was built from bytes that are not one msgpack object.
        """
        if self._obj is _UNSET:
            self._obj = _unpack_checked(self.raw)
        return self._obj

    def __eq__(self, other: object) -> bool:
        if isinstance(other, Value):
            return self.raw == other.raw
        return NotImplemented

    def __hash__(self) -> int:
        return hash(self.raw)

    def __repr__(self) -> str:
        try:
            return f"Value({self.obj!r})"
        except InvalidValue:
            return f"Value(raw={self.raw!r})"


#: msgpack nil (``c0``), the value of every plain ``ok``.
NIL: Final = Value(b"\xc0", None)
