"""Payload bytes <-> messages, exact to the layouts of protocol.md §5 and E3.

Rules of this module:

- ``decode(payload)`` returns a message, or a :class:`BadValue` when only the value is wrong
  (the connection survives); layout errors raise :class:`~roost.errors.FramingError`.
- ``encode(message)`` returns the whole frame (header included); ``encode_payload`` the payload.
- Values are never re-encoded: the bytes a ``Value`` carries are the bytes written.
- Paths travel as Latin-1 text so that any byte string round-trips; checking them is the broker's
  job (protocol.md §10.1).
"""

from __future__ import annotations

from collections.abc import Callable
from struct import Struct
from typing import Any, Final

from roost.errors import FramingError, InvalidValue, LocalProtocolError
from roost.protocol import messages as m
from roost.protocol.framing import MAX_PAYLOAD
from roost.protocol.values import Value, decode_value

__all__ = ("decode", "encode", "encode_payload")

_U16: Final = Struct(">H")
_U16_U32: Final = Struct(">HI")
_HELLO: Final = Struct(">BBH")
_unpack_u16 = _U16.unpack_from

Decoded = m.Message | m.BadValue
_Decoder = Callable[[bytes], Decoded]


def _value_or_bad(data: bytes, code: int, rid: int) -> Value | m.BadValue:
    if not data:
        return m.BadValue(code, rid, "missing value")
    try:
        return decode_value(data)
    except InvalidValue as exc:
        return m.BadValue(code, rid, str(exc))


def _need(payload: bytes, size: int, name: str) -> None:
    if len(payload) < size:
        raise FramingError(f"{name}: payload too short ({len(payload)} bytes)")


def _exact(payload: bytes, size: int, name: str) -> None:
    if len(payload) != size:
        raise FramingError(f"{name}: payload must be {size} bytes, got {len(payload)}")


def _path_end(payload: bytes, start: int, name: str) -> int:
    nul = payload.find(0, start)
    if nul < 0:
        raise FramingError(f"{name}: path without NUL")
    return nul


# -- decoders, one per layout -------------------------------------------------------------------


def _dec_hello(payload: bytes) -> Decoded:
    _exact(payload, 4, "hello")
    _, version, timeout = _HELLO.unpack(payload)
    return m.Hello(version, timeout)


def _dec_hello_id(payload: bytes) -> Decoded:
    _need(payload, 4, "hello_id")
    _, version, timeout = _HELLO.unpack_from(payload)
    value = _value_or_bad(payload[4:], m.HelloId.code, 0)
    if isinstance(value, m.BadValue):
        return value
    return m.HelloId(version, timeout, value)


def _dec_server_hello(payload: bytes) -> Decoded:
    _exact(payload, 1, "hello reply")
    return m.ServerHello()


def _dec_server_hello_id(payload: bytes) -> Decoded:
    value = _value_or_bad(payload[1:], m.ServerHelloId.code, 0)
    if isinstance(value, m.BadValue):
        return value
    return m.ServerHelloId(value)


def _id_only(cls: Any) -> _Decoder:
    name = cls.__name__

    def decode(payload: bytes) -> Decoded:
        _exact(payload, 3, name)
        return cls(_unpack_u16(payload, 1)[0])  # type: ignore[no-any-return]

    return decode


def _id_value(cls: Any) -> _Decoder:
    name, code = cls.__name__, cls.code

    def decode(payload: bytes) -> Decoded:
        _need(payload, 3, name)
        rid = _unpack_u16(payload, 1)[0]
        value = _value_or_bad(payload[3:], code, rid)
        if isinstance(value, m.BadValue):
            return value
        return cls(rid, value)  # type: ignore[no-any-return]

    return decode


def _id_ms(cls: Any) -> _Decoder:
    name = cls.__name__

    def decode(payload: bytes) -> Decoded:
        _exact(payload, 7, name)
        rid, ms = _U16_U32.unpack_from(payload, 1)
        return cls(rid, ms)  # type: ignore[no-any-return]

    return decode


def _id_ms_value(cls: Any) -> _Decoder:
    name, code = cls.__name__, cls.code

    def decode(payload: bytes) -> Decoded:
        _need(payload, 7, name)
        rid, ms = _U16_U32.unpack_from(payload, 1)
        value = _value_or_bad(payload[7:], code, rid)
        if isinstance(value, m.BadValue):
            return value
        return cls(rid, ms, value)  # type: ignore[no-any-return]

    return decode


def _id_path(cls: Any) -> _Decoder:
    name = cls.__name__

    def decode(payload: bytes) -> Decoded:
        _need(payload, 3, name)
        nul = _path_end(payload, 3, name)
        if nul != len(payload) - 1:
            raise FramingError(f"{name}: bytes after the path")
        return cls(_unpack_u16(payload, 1)[0], payload[3:nul].decode("latin-1"))  # type: ignore[no-any-return]

    return decode


def _id_path_value(cls: Any) -> _Decoder:
    name, code = cls.__name__, cls.code

    def decode(payload: bytes) -> Decoded:
        _need(payload, 3, name)
        rid = _unpack_u16(payload, 1)[0]
        nul = _path_end(payload, 3, name)
        value = _value_or_bad(payload[nul + 1 :], code, rid)
        if isinstance(value, m.BadValue):
            return value
        return cls(rid, payload[3:nul].decode("latin-1"), value)  # type: ignore[no-any-return]

    return decode


def _path_value(cls: Any) -> _Decoder:
    name, code = cls.__name__, cls.code

    def decode(payload: bytes) -> Decoded:
        nul = _path_end(payload, 1, name)
        value = _value_or_bad(payload[nul + 1 :], code, 0)
        if isinstance(value, m.BadValue):
            return value
        return cls(payload[1:nul].decode("latin-1"), value)  # type: ignore[no-any-return]

    return decode


def _path_only(cls: Any) -> _Decoder:
    name = cls.__name__

    def decode(payload: bytes) -> Decoded:
        nul = _path_end(payload, 1, name)
        if nul != len(payload) - 1:
            raise FramingError(f"{name}: bytes after the path")
        return cls(payload[1:nul].decode("latin-1"))  # type: ignore[no-any-return]

    return decode


def _body_only(cls: Any) -> _Decoder:
    code = cls.code

    def decode(payload: bytes) -> Decoded:
        value = _value_or_bad(payload[1:], code, 0)
        if isinstance(value, m.BadValue):
            return value
        return cls(value)  # type: ignore[no-any-return]

    return decode


_DECODERS: dict[int, _Decoder] = {
    0x01: _dec_hello,
    0x02: _dec_hello_id,
    0x03: _dec_server_hello,
    0x04: _dec_server_hello_id,
    0x05: _id_value(m.ReplyOk),
    0x06: _id_value(m.ReplyError),
    0x07: _id_value(m.ReplyStateKnown),
    0x08: _id_only(m.ReplyStateUnknown),
    0x09: _id_only(m.Ping),
    0x0A: _id_ms_value(m.ReplyStateTKnown),
    0x0B: _id_ms(m.ReplyStateTUnknown),
    0x33: _path_value(m.EventNotify),
    0x44: _path_value(m.StateNotify),
    0x45: _path_only(m.StateNotifyUnknown),
}
for _cls in (
    m.ActionRegister,
    m.PropRegister,
    m.PropGet,
    m.Get,
    m.EventRegister,
    m.EventListen,
    m.StateRegister,
    m.StateUnknown,
    m.StateObserve,
    m.StateObserveT,
):
    _DECODERS[_cls.code] = _id_path(_cls)
for _cls in (m.ActionCall, m.PropSet, m.Set, m.EventEmit, m.StateChanged, m.StateSet):
    _DECODERS[_cls.code] = _id_path_value(_cls)
for _code, _cls in m.BY_CODE.items():
    if _code >= 0x50:
        _DECODERS[_code] = (
            _body_only(_cls) if _code in (0x60, 0x61, 0x62) else _id_value(_cls)
        )

_DECODER_TABLE: Final[tuple[_Decoder | None, ...]] = tuple(_DECODERS.get(c) for c in range(256))


def decode(payload: bytes) -> Decoded:
    """Decode one frame payload (type byte first).

    Returns:
        The message, or a :class:`~roost.protocol.messages.BadValue` when the layout is right but
        the value is missing or invalid (protocol.md §4.2).

    Raises:
        FramingError: empty payload, unknown type code, truncated fields, a path without NUL, or
            trailing bytes after a value-less or fixed-size message.
    """
    if not payload:
        raise FramingError("empty payload")
    decoder = _DECODER_TABLE[payload[0]]
    if decoder is None:
        raise FramingError(f"unknown type code 0x{payload[0]:02x}")
    return decoder(payload)


# -- encoders ------------------------------------------------------------------------------------


def _path_bytes(path: str) -> bytes:
    try:
        data = path.encode("latin-1")
    except UnicodeEncodeError:
        raise LocalProtocolError(f"path {path!r} is not representable on the wire") from None
    if b"\0" in data:
        raise LocalProtocolError("a path cannot contain NUL")
    return data


def encode_payload(msg: m.Message) -> bytes:
    """Encode a message as a frame payload (type byte first), without checking its size."""
    code = bytes((msg.code,))
    if isinstance(msg, m.Hello):
        return _HELLO.pack(msg.code, msg.version, msg.timeout)
    if isinstance(msg, m.HelloId):
        return _HELLO.pack(msg.code, msg.version, msg.timeout) + msg.client_id.raw
    if isinstance(msg, m.ServerHello):
        return code
    if isinstance(msg, m.ServerHelloId):
        return code + msg.client_id.raw
    if isinstance(msg, (m.ReplyStateTKnown, m.ReplyStateTUnknown)):
        head = code + _U16_U32.pack(msg.id, msg.ms)
        return head + msg.value.raw if isinstance(msg, m.ReplyStateTKnown) else head
    if isinstance(msg, (m.ReplyStateUnknown, m.Ping)):
        return code + _U16.pack(msg.id)
    if isinstance(msg, (m.EventNotify, m.StateNotify)):
        return code + _path_bytes(msg.path) + b"\0" + msg.value.raw
    if isinstance(msg, m.StateNotifyUnknown):
        return code + _path_bytes(msg.path) + b"\0"
    if isinstance(msg, (m.LeaseGranted, m.LeaseRevoked, m.LeaseWaitEnded)):
        return code + msg.body.raw
    head = code + _U16.pack(msg.id)
    if isinstance(msg, (m.ReplyOk, m.ReplyError, m.ReplyStateKnown)):
        return head + msg.value.raw
    if isinstance(
        msg,
        (
            m.LeaseAcquire,
            m.LeaseTake,
            m.LeaseReturn,
            m.LeaseRetain,
            m.LeaseValidate,
            m.LeaseCancel,
            m.LeaseInfo,
            m.LeaseList,
            m.LeaseGuard,
            m.LeaseCall,
            m.LeaseSet,
            m.GuardedCall,
            m.GuardedSet,
        ),
    ):
        return head + msg.body.raw
    head += _path_bytes(msg.path) + b"\0"
    if isinstance(msg, m.ActionCall):
        return head + msg.args.raw
    if isinstance(msg, (m.PropSet, m.Set, m.EventEmit, m.StateChanged, m.StateSet)):
        return head + msg.value.raw
    return head


def encode(msg: m.Message) -> bytes:
    """Encode a message as a whole frame (sync byte, u16 length, payload).

    Raises:
        LocalProtocolError: the payload would exceed 65535 bytes, or a path is not representable.
    """
    payload = encode_payload(msg)
    size = len(payload)
    if size > MAX_PAYLOAD:
        raise LocalProtocolError(f"{type(msg).__name__} of {size} bytes does not fit in a frame")
    return b"G" + size.to_bytes(2, "big") + payload
