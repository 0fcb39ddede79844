"""Payload bytes <-> messages, exact to the layouts of protocol.md §3, §5 and E3.

Rules of this module:

- ``decode(payload)`` returns a message, or a :class:`~roost.protocol.messages.BadValue` when only
  the value is wrong (the connection survives); layout errors raise
  :class:`~roost.errors.FramingError` (the connection must close).
- ``encode(message)`` returns the whole frame (header included); ``encode_payload`` the payload.
- ``split_request(payload)`` takes an id, path and value payload apart without a message object
  (``None`` when anything is wrong, for ``decode`` to report).
- Values are never re-encoded: the bytes a ``Value`` carries are the bytes written.
- Paths travel as Latin-1 text so that any byte string round-trips; checking their syntax is the
  broker's job (protocol.md §10.1).
- Both directions dispatch through one table lookup: these functions run once per message.
"""

from __future__ import annotations

from collections.abc import Callable
from struct import Struct
from struct import error as StructError
from typing import Any, Final

from roost.errors import FramingError, InvalidValue, LocalProtocolError
from roost.protocol import messages as m
from roost.protocol.framing import MAX_PAYLOAD
from roost.protocol.values import decode_value, validate

__all__ = ("decode", "encode", "encode_payload", "notify_frame", "reply_frame", "split_request")

Decoded = m.Message | m.BadValue
_Decoder = Callable[[bytes], Decoded]
_Encoder = Callable[[Any], bytes]

_HELLO: Final = Struct(">BBH")
_ID_MS: Final = Struct(">HI")
_HEAD: Final = Struct(">BHB")  # sync, payload size, type
_HEAD_ID: Final = Struct(">BHBH")  # sync, payload size, type, request id
_HEAD_ID_MS: Final = Struct(">BHBHI")  # ... and milliseconds
_HELLO_FRAME: Final = Struct(">BHBBH")  # sync, payload size, type, version, timeout
_pack_head = _HEAD.pack
_pack_head_id = _HEAD_ID.pack
_SYNC: Final = 0x47


# -- decoders, one per layout -------------------------------------------------------------------
# Each closure handles one type code; the layout checks come first so that a framing error is
# never hidden behind a value error.


def _too_short(name: str, payload: bytes) -> FramingError:
    return FramingError(f"{name}: truncated payload ({len(payload)} bytes)")


def _no_nul(name: str, payload: bytes) -> FramingError:
    """The error for an ``id, path`` payload with no NUL after the id: short, or unterminated."""
    if len(payload) < 3:
        return _too_short(name, payload)
    return FramingError(f"{name}: path without NUL")


def _dec_hello(payload: bytes) -> Decoded:
    if len(payload) != 4:
        raise FramingError(f"Hello: payload must be 4 bytes, got {len(payload)}")
    _, version, timeout = _HELLO.unpack(payload)
    return m.Hello(version, timeout)


def _dec_hello_id(payload: bytes) -> Decoded:
    if len(payload) < 4:
        raise _too_short("HelloId", payload)
    _, version, timeout = _HELLO.unpack_from(payload)
    try:
        value = decode_value(payload[4:])
    except InvalidValue as exc:
        return m.BadValue(m.HelloId.code, 0, str(exc))
    return m.HelloId(version, timeout, value)


def _dec_server_hello(payload: bytes) -> Decoded:
    if len(payload) != 1:
        raise FramingError(f"ServerHello: payload must be 1 byte, got {len(payload)}")
    return m.ServerHello()


def _body(cls: Any) -> _Decoder:
    """Layout ``type, mp value`` (0x04 and the lease pushes)."""
    code = cls.code

    def decode(payload: bytes) -> Decoded:
        try:
            value = decode_value(payload[1:])
        except InvalidValue as exc:
            return m.BadValue(code, 0, str(exc))
        return cls(value)  # type: ignore[no-any-return]

    return decode


def _id_only(cls: Any) -> _Decoder:
    """Layout ``type, u16 id``."""
    name = cls.__name__

    def decode(payload: bytes) -> Decoded:
        if len(payload) != 3:
            raise FramingError(f"{name}: payload must be 3 bytes, got {len(payload)}")
        return cls((payload[1] << 8) | payload[2])  # type: ignore[no-any-return]

    return decode


def _id_value(cls: Any) -> _Decoder:
    """Layout ``type, u16 id, mp value`` (replies and lease requests)."""
    name, code = cls.__name__, cls.code

    def decode(payload: bytes) -> Decoded:
        if len(payload) < 3:
            raise _too_short(name, payload)
        rid = (payload[1] << 8) | payload[2]
        try:
            value = decode_value(payload[3:])
        except InvalidValue as exc:
            return m.BadValue(code, rid, str(exc))
        return cls(rid, value)  # type: ignore[no-any-return]

    return decode


def _id_ms(cls: Any) -> _Decoder:
    """Layout ``type, u16 id, u32 ms``."""
    name = cls.__name__

    def decode(payload: bytes) -> Decoded:
        if len(payload) != 7:
            raise FramingError(f"{name}: payload must be 7 bytes, got {len(payload)}")
        rid, ms = _ID_MS.unpack_from(payload, 1)
        return cls(rid, ms)  # type: ignore[no-any-return]

    return decode


def _id_ms_value(cls: Any) -> _Decoder:
    """Layout ``type, u16 id, u32 ms, mp value``."""
    name, code = cls.__name__, cls.code

    def decode(payload: bytes) -> Decoded:
        if len(payload) < 7:
            raise _too_short(name, payload)
        rid, ms = _ID_MS.unpack_from(payload, 1)
        try:
            value = decode_value(payload[7:])
        except InvalidValue as exc:
            return m.BadValue(code, rid, str(exc))
        return cls(rid, ms, value)  # type: ignore[no-any-return]

    return decode


def _id_path(cls: Any) -> _Decoder:
    """Layout ``type, u16 id, path\\0``: nothing may follow the NUL."""
    name = cls.__name__

    def decode(payload: bytes) -> Decoded:
        nul = payload.find(0, 3)
        if nul < 0:
            raise _no_nul(name, payload)
        if nul != len(payload) - 1:
            raise FramingError(f"{name}: bytes after the path")
        return cls((payload[1] << 8) | payload[2], payload[3:nul].decode("latin-1"))  # type: ignore[no-any-return]

    return decode


def _id_path_value(cls: Any) -> _Decoder:
    """Layout ``type, u16 id, path\\0, mp value``."""
    name, code = cls.__name__, cls.code

    def decode(payload: bytes) -> Decoded:
        nul = payload.find(0, 3)
        if nul < 0:
            raise _no_nul(name, payload)
        rid = (payload[1] << 8) | payload[2]
        try:
            value = decode_value(payload[nul + 1 :])
        except InvalidValue as exc:
            return m.BadValue(code, rid, str(exc))
        return cls(rid, payload[3:nul].decode("latin-1"), value)  # type: ignore[no-any-return]

    return decode


def _path_only(cls: Any) -> _Decoder:
    """Layout ``type, path\\0`` (no id)."""
    name = cls.__name__

    def decode(payload: bytes) -> Decoded:
        nul = payload.find(0, 1)
        if nul < 0:
            raise FramingError(f"{name}: path without NUL")
        if nul != len(payload) - 1:
            raise FramingError(f"{name}: bytes after the path")
        return cls(payload[1:nul].decode("latin-1"))  # type: ignore[no-any-return]

    return decode


def _path_value(cls: Any) -> _Decoder:
    """Layout ``type, path\\0, mp value`` (no id)."""
    name, code = cls.__name__, cls.code

    def decode(payload: bytes) -> Decoded:
        nul = payload.find(0, 1)
        if nul < 0:
            raise FramingError(f"{name}: path without NUL")
        try:
            value = decode_value(payload[nul + 1 :])
        except InvalidValue as exc:
            return m.BadValue(code, 0, str(exc))
        return cls(payload[1:nul].decode("latin-1"), value)  # type: ignore[no-any-return]

    return decode


_ID_PATH: Final = (
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
)
_ID_PATH_VALUE: Final = (m.ActionCall, m.PropSet, m.Set, m.EventEmit, m.StateChanged, m.StateSet)
_ID_BODY: Final = (
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
    m.LockSet,
    m.LockClear,
    m.LockInfo,
    m.PoolList,
    m.PoolReload,
    m.GuardedCall,
    m.GuardedSet,
    m.SubtreeListen,
    m.SubtreeObserve,
    m.SubtreeCancel,
    m.AuthLogin,
    m.AuthReload,
    m.AuthDelegate,
)
_PUSHES: Final = (m.LeaseGranted, m.LeaseRevoked, m.LeaseWaitEnded, m.AccessChanged)

_DECODERS: dict[int, _Decoder] = {
    0x01: _dec_hello,
    0x02: _dec_hello_id,
    0x03: _dec_server_hello,
    0x04: _body(m.ServerHelloId),
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
    0x7C: _path_value(m.SubtreeEvent),
    0x7D: _path_value(m.SubtreeChanged),
    0x7E: _path_only(m.SubtreeUnknown),
    0x7F: _id_path_value(m.SubtreeSnapshot),
}
_DECODERS.update({cls.code: _id_path(cls) for cls in _ID_PATH})
_DECODERS.update({cls.code: _id_path_value(cls) for cls in _ID_PATH_VALUE})
_DECODERS.update({cls.code: _id_value(cls) for cls in _ID_BODY})
_DECODERS.update({cls.code: _body(cls) for cls in _PUSHES})

#: Decoder by type byte; ``None`` for codes that are not part of the protocol.
DECODER_TABLE: Final[tuple[_Decoder | None, ...]] = tuple(_DECODERS.get(c) for c in range(256))


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
    decoder = DECODER_TABLE[payload[0]]
    if decoder is None:
        raise FramingError(f"unknown type code 0x{payload[0]:02x}")
    return decoder(payload)


def split_request(payload: bytes) -> tuple[int, str, bytes] | None:
    """The id, path and value bytes of a payload laid out ``type, u16 id, path\\0, value``
    (action_call, event_emit, set ...), with the value validated, but no message built.

    Returns:
        ``(id, path, value bytes)``; ``None`` when the layout or the value is wrong, so that
        :func:`decode` of the same payload reports the error (a ``FramingError`` or a
        ``BadValue``). The type byte is not checked: the caller chose the layout by it.
    """
    nul = payload.find(0, 3)
    if nul < 0:
        return None
    raw = payload[nul + 1 :]
    try:
        validate(raw)
    except InvalidValue:
        return None
    return (payload[1] << 8) | payload[2], payload[3:nul].decode("latin-1"), raw


# -- encoders: each returns the whole frame --------------------------------------------------


def _path_bytes(path: str) -> bytes:
    try:
        data = path.encode("latin-1")
    except UnicodeEncodeError:
        raise LocalProtocolError(f"path {path!r} is not representable on the wire") from None
    if 0 in data:
        raise LocalProtocolError("a path cannot contain NUL")
    return data


def _too_large(msg: Any, size: int) -> LocalProtocolError:
    return LocalProtocolError(f"{type(msg).__name__} of {size} bytes does not fit in a frame")


def _enc_hello(msg: m.Hello) -> bytes:
    return _HELLO_FRAME.pack(_SYNC, 4, msg.code, msg.version, msg.timeout)


def _enc_hello_id(msg: m.HelloId) -> bytes:
    raw = msg.client_id.raw
    size = 4 + len(raw)
    if size > MAX_PAYLOAD:
        raise _too_large(msg, size)
    return _HELLO_FRAME.pack(_SYNC, size, msg.code, msg.version, msg.timeout) + raw


def _enc_code_only(msg: m.ServerHello) -> bytes:
    return _pack_head(_SYNC, 1, msg.code)


def _enc_body(attr: str) -> _Encoder:
    def encode(msg: Any) -> bytes:
        raw: bytes = getattr(msg, attr).raw
        size = 1 + len(raw)
        if size > MAX_PAYLOAD:
            raise _too_large(msg, size)
        return _pack_head(_SYNC, size, msg.code) + raw

    return encode


def _enc_id_only(msg: m.Ping | m.ReplyStateUnknown) -> bytes:
    return _pack_head_id(_SYNC, 3, msg.code, msg.id)


def _enc_id_value(attr: str) -> _Encoder:
    def encode(msg: Any) -> bytes:
        raw: bytes = getattr(msg, attr).raw
        size = 3 + len(raw)
        if size > MAX_PAYLOAD:
            raise _too_large(msg, size)
        return _pack_head_id(_SYNC, size, msg.code, msg.id) + raw

    return encode


def _enc_id_ms(msg: m.ReplyStateTUnknown) -> bytes:
    return _HEAD_ID_MS.pack(_SYNC, 7, msg.code, msg.id, msg.ms)


def _enc_id_ms_value(msg: m.ReplyStateTKnown) -> bytes:
    raw = msg.value.raw
    size = 7 + len(raw)
    if size > MAX_PAYLOAD:
        raise _too_large(msg, size)
    return _HEAD_ID_MS.pack(_SYNC, size, msg.code, msg.id, msg.ms) + raw


def _enc_id_path(msg: Any) -> bytes:
    path = _path_bytes(msg.path)
    size = 4 + len(path)
    if size > MAX_PAYLOAD:
        raise _too_large(msg, size)
    return _pack_head_id(_SYNC, size, msg.code, msg.id) + path + b"\0"


def _enc_id_path_value(msg: Any) -> bytes:
    path = _path_bytes(msg.path)
    raw = msg.value.raw
    size = 4 + len(path) + len(raw)
    if size > MAX_PAYLOAD:
        raise _too_large(msg, size)
    return b"".join((_pack_head_id(_SYNC, size, msg.code, msg.id), path, b"\0", raw))


def _enc_action_call(msg: m.ActionCall) -> bytes:
    path = _path_bytes(msg.path)
    raw = msg.args.raw
    size = 4 + len(path) + len(raw)
    if size > MAX_PAYLOAD:
        raise _too_large(msg, size)
    return b"".join((_pack_head_id(_SYNC, size, msg.code, msg.id), path, b"\0", raw))


def _enc_snapshot(msg: m.SubtreeSnapshot) -> bytes:
    path = _path_bytes(msg.path)
    raw = msg.value.raw
    size = 4 + len(path) + len(raw)
    if size > MAX_PAYLOAD:
        raise _too_large(msg, size)
    return b"".join((_pack_head_id(_SYNC, size, msg.code, msg.sub), path, b"\0", raw))


def _enc_path_only(msg: m.StateNotifyUnknown | m.SubtreeUnknown) -> bytes:
    path = _path_bytes(msg.path)
    size = 2 + len(path)
    if size > MAX_PAYLOAD:
        raise _too_large(msg, size)
    return _pack_head(_SYNC, size, msg.code) + path + b"\0"


def _enc_path_value(
    msg: m.EventNotify | m.StateNotify | m.SubtreeEvent | m.SubtreeChanged,
) -> bytes:
    path = _path_bytes(msg.path)
    raw = msg.value.raw
    size = 2 + len(path) + len(raw)
    if size > MAX_PAYLOAD:
        raise _too_large(msg, size)
    return b"".join((_pack_head(_SYNC, size, msg.code), path, b"\0", raw))


_ENCODERS: Final[dict[type, _Encoder]] = {
    m.Hello: _enc_hello,
    m.HelloId: _enc_hello_id,
    m.ServerHello: _enc_code_only,
    m.ServerHelloId: _enc_body("client_id"),
    **dict.fromkeys((m.ReplyOk, m.ReplyError, m.ReplyStateKnown), _enc_id_value("value")),
    m.ReplyStateUnknown: _enc_id_only,
    m.Ping: _enc_id_only,
    m.ReplyStateTKnown: _enc_id_ms_value,
    m.ReplyStateTUnknown: _enc_id_ms,
    m.ActionCall: _enc_action_call,
    m.EventNotify: _enc_path_value,
    m.StateNotify: _enc_path_value,
    m.StateNotifyUnknown: _enc_path_only,
    m.SubtreeEvent: _enc_path_value,
    m.SubtreeChanged: _enc_path_value,
    m.SubtreeUnknown: _enc_path_only,
    m.SubtreeSnapshot: _enc_snapshot,
    **dict.fromkeys(_ID_PATH, _enc_id_path),
    **{cls: _enc_id_path_value for cls in _ID_PATH_VALUE if cls is not m.ActionCall},
    **{cls: _enc_id_value("body") for cls in _ID_BODY},
    **{cls: _enc_body("body") for cls in _PUSHES},
}


def encode(msg: m.Message) -> bytes:
    """Encode a message as a whole frame (sync byte, u16 length, payload).

    Raises:
        LocalProtocolError: the payload would exceed 65535 bytes; a path is not representable
            (a character above U+00FF, or NUL); a field is out of range (an id outside u16...);
            or ``msg`` is not a message.
    """
    try:
        return _ENCODERS[type(msg)](msg)
    except LocalProtocolError:
        raise
    except KeyError:
        raise LocalProtocolError(f"{type(msg).__name__} is not a wire message") from None
    except (StructError, AttributeError, TypeError, ValueError, OverflowError) as exc:
        raise LocalProtocolError(f"cannot encode {msg!r}: {exc}") from None


def encode_payload(msg: m.Message) -> bytes:
    """Encode a message as a frame payload (type byte first).

    Raises:
        LocalProtocolError: as :func:`encode`.
    """
    return encode(msg)[3:]


def notify_frame(code: int, path: bytes, value: bytes = b"") -> bytes:
    """Build a notification frame from bytes already at hand, for fan-out.

    Args:
        code: 0x33 (event_notify), 0x44 (state_changed known) or 0x45 (unknown, empty ``value``).
        path: the path's wire bytes, without the NUL; the caller vouches for them.
        value: the msgpack bytes of the value, as received.

    Raises:
        LocalProtocolError: the frame would exceed 65535 payload bytes.
    """
    size = 2 + len(path) + len(value)
    if size > MAX_PAYLOAD:
        raise LocalProtocolError(f"notification of {size} bytes does not fit in a frame")
    return b"".join((_pack_head(_SYNC, size, code), path, b"\0", value))


def reply_frame(code: int, rid: int, value: bytes) -> bytes:
    """Build a reply frame (0x05, 0x06 or 0x07) from a request id and a value's msgpack bytes.

    Raises:
        LocalProtocolError: the frame would exceed 65535 payload bytes.
    """
    size = 3 + len(value)
    if size > MAX_PAYLOAD:
        raise LocalProtocolError(f"reply of {size} bytes does not fit in a frame")
    return _pack_head_id(_SYNC, size, code, rid) + value
