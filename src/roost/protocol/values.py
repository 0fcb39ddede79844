"""msgpack values as the sender's bytes, with a lazily decoded Python view.

Rules of this module:

- It is the only module of roost that imports msgpack.
- A ``Value`` received from the wire was validated once on arrival (protocol.md §4.2) and keeps the
  exact bytes it arrived as, so a broker forwards it byte for byte (a float32 stays float32).
- A ``Value`` built from a Python object packs it once (str as str, bytes as bin, float as float64).
- Two values are equal when their bytes are equal.
"""

from __future__ import annotations

from typing import Any, Final

import msgpack

from roost.errors import InvalidValue

__all__ = ("MAX_DEPTH", "NIL", "MapPairs", "Value", "decode_value", "pack", "unpack")

#: Containers may nest at most this deep (protocol.md §4.2).
MAX_DEPTH: Final = 64

_UNSET: Final[Any] = object()
_Timestamp = msgpack.Timestamp
_ExtType = msgpack.ExtType


def pack(obj: Any) -> bytes:
    """Encode a Python object as msgpack (str as str, bytes as bin).

    Raises:
        TypeError: the object has no msgpack form.
    """
    return msgpack.packb(obj, use_bin_type=True)


def unpack(data: bytes) -> Any:
    """Decode one msgpack object, as :func:`decode_value` validates it, and return the object."""
    return decode_value(data).obj


class MapPairs(list[tuple[Any, Any]]):
    """A decoded msgpack map whose keys cannot be Python dict keys (for example arrays)."""


def _pairs_hook(pairs: list[tuple[Any, Any]]) -> Any:
    try:
        return dict(pairs)
    except TypeError:
        return MapPairs(pairs)


def _reject_ext(code: int, data: bytes) -> Any:
    raise InvalidValue(f"extension type {code} is not allowed")


def _check_nesting(obj: Any) -> None:
    """Walk containers: depth at most MAX_DEPTH, no timestamp extension objects."""
    stack = [(obj, 1)]
    pop = stack.pop
    push = stack.append
    while stack:
        item, depth = pop()
        if depth > MAX_DEPTH:
            raise InvalidValue(f"containers nest deeper than {MAX_DEPTH}")
        if isinstance(item, list):
            for child in item:
                if isinstance(child, (list, dict, _Timestamp)):
                    push((child, depth + 1))
        elif isinstance(item, dict):
            for key, child in item.items():
                if isinstance(key, (tuple, _Timestamp)):
                    push((key, depth + 1))
                if isinstance(child, (list, dict, _Timestamp)):
                    push((child, depth + 1))
        elif isinstance(item, tuple):  # array used as a map key, or MapPairs entries
            for child in item:
                if isinstance(child, (list, dict, tuple, _Timestamp)):
                    push((child, depth + 1))
        elif isinstance(item, _Timestamp):
            raise InvalidValue("the timestamp extension type is not allowed")


def _strict_unpack(data: bytes) -> Any:
    try:
        return msgpack.unpackb(
            data, raw=False, strict_map_key=False, ext_hook=_reject_ext, use_list=True
        )
    except InvalidValue:
        raise
    except TypeError:
        # A map with unhashable keys (arrays or maps as keys) is still valid msgpack.
        try:
            return msgpack.unpackb(
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
            raise InvalidValue(f"not a valid msgpack value: {exc}") from None
    except Exception as exc:  # ExtraData, FormatError, StackError, UnicodeDecodeError, ValueError
        raise InvalidValue(f"not exactly one valid msgpack value: {exc}") from None


def decode_value(data: bytes) -> Value:
    """Validate ``data`` as one msgpack value and return it as a :class:`Value`.

    Valid means: exactly one well-formed msgpack object filling ``data``, no extension types (the
    timestamp extension included), valid UTF-8 in every str (map keys too), containers nested at
    most 64 deep.

    Raises:
        InvalidValue: any of the above does not hold; the message says which.
    """
    obj = _strict_unpack(data)
    # A container deeper than 64 needs more than 64 header bytes; small values skip the walk.
    if isinstance(obj, (list, dict, tuple, _Timestamp)):
        _check_nesting(obj)
    return Value(data, obj)


class Value:
    """One msgpack value: ``raw`` holds its bytes, ``obj`` its decoded Python form."""

    __slots__ = ("_obj", "raw")

    def __init__(self, raw: bytes, obj: Any = _UNSET) -> None:
        self.raw = raw
        self._obj = obj

    @classmethod
    def of(cls, obj: Any) -> Value:
        """Pack a Python object (str as str, bytes as bin, float as float64).

        Raises:
            TypeError: the object has no msgpack form.
        """
        if isinstance(obj, Value):
            return obj
        return cls(pack(obj), obj)

    @property
    def obj(self) -> Any:
        """The decoded Python object (decoded on first use if the value was built from bytes)."""
        if self._obj is _UNSET:
            self._obj = _strict_unpack(self.raw)
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


NIL: Final = Value(b"\xc0", None)
