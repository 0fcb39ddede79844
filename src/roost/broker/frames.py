"""Broker-side frame builders: whole frames from ids, cached path heads and raw value bytes.

Rules of this module:

- Values are spliced in as the sender's bytes, never re-encoded (protocol.md §4.3).
- Callers guarantee that a frame fits (payload <= 65535); the router checks sizes where the
  protocol says a frame can grow (§4.4).
"""

from __future__ import annotations

from functools import lru_cache
from struct import Struct
from typing import Final

from roost.protocol.values import pack

__all__ = (
    "MAX_PAYLOAD",
    "SERVER_HELLO",
    "err",
    "err_map",
    "frame",
    "notify",
    "ok_nil",
    "reply",
    "reply_state_t",
    "request",
    "subtree_notify",
    "subtree_snapshot",
)

MAX_PAYLOAD: Final = 0xFFFF
SERVER_HELLO: Final = b"G\x00\x01\x03"

_REPLY_HEAD: Final = Struct(">BHBH")
_REPLY_T_HEAD: Final = Struct(">BHBHI")
_FRAME_HEAD: Final = Struct(">BH")
_pack_reply = _REPLY_HEAD.pack
_pack_head = _FRAME_HEAD.pack


def frame(payload: bytes) -> bytes:
    """Prefix a payload (type byte first) with the sync byte and its length."""
    return _pack_head(0x47, len(payload)) + payload


_pack_ok_nil = Struct(">BHBHB").pack


def ok_nil(rid: int) -> bytes:
    """``reply ok nil`` for request ``rid``."""
    return _pack_ok_nil(0x47, 4, 0x05, rid, 0xC0)


def reply(code: int, rid: int, raw: bytes) -> bytes:
    """A reply (0x05, 0x06 or 0x07) carrying the raw value bytes ``raw``."""
    return _pack_reply(0x47, 3 + len(raw), code, rid) + raw


def request(code: int, rid: int, head: bytes, raw: bytes = b"") -> bytes:
    """A request forwarded to an owner (0x11, 0x21, 0x22 or 0x47) under the broker's id ``rid``,
    from the node's cached ``path\\0`` head and the raw value bytes (none for a prop get).

    The caller's own request had the same layout and size, so the frame always fits.
    """
    return _pack_reply(0x47, 3 + len(head) + len(raw), code, rid) + head + raw


def reply_state_t(rid: int, ms: int, raw: bytes | None) -> bytes:
    """``reply_state_t`` known (0x0a) when ``raw`` is given, else unknown (0x0b)."""
    if raw is None:
        return _REPLY_T_HEAD.pack(0x47, 7, 0x0B, rid, ms)
    return _REPLY_T_HEAD.pack(0x47, 7 + len(raw), 0x0A, rid, ms) + raw


@lru_cache(maxsize=64)
def _packed_str(name: str) -> bytes:
    return pack(name)


def err(rid: int, name: str) -> bytes:
    """``reply error`` with the msgpack str ``name`` (protocol.md §9.2)."""
    raw = _packed_str(name)
    return _pack_reply(0x47, 3 + len(raw), 0x06, rid) + raw


def err_map(rid: int, status: str) -> bytes:
    """``reply error`` with ``{"status": status}``, the form extension requests get (E3)."""
    raw = b"\x81\xa6status" + _packed_str(status)
    return _pack_reply(0x47, 3 + len(raw), 0x06, rid) + raw


def notify(head: bytes, raw: bytes) -> bytes:
    """A notification from a cached head (type byte 0x33 or 0x44, path, NUL) and the raw value."""
    return _pack_head(0x47, len(head) + len(raw)) + head + raw


def subtree_notify(code: bytes, path_head: bytes, raw: bytes = b"") -> bytes:
    """A subtree push (``code`` 0x7c, 0x7d or 0x7e) from a node's ``path\\0`` head and the raw
    value (none for 0x7e): the same size as the ESHET notification of the same update."""
    return _pack_head(0x47, 1 + len(path_head) + len(raw)) + code + path_head + raw


def subtree_snapshot(sub: int, path_head: bytes, raw: bytes) -> bytes:
    """A ``subtree_snapshot`` push (0x7f) of subscription ``sub`` (two bytes longer than the
    notification: the caller checks that it fits)."""
    return _pack_reply(0x47, 3 + len(path_head) + len(raw), 0x7F, sub) + path_head + raw
