"""The ESHET wire protocol and roost's extensions, sans-IO.

Bytes in, messages out: nothing in this package touches sockets, event loops or clocks.

- :mod:`roost.protocol.framing`: frame decoder and encoder.
- :mod:`roost.protocol.values`: msgpack values as bytes plus a decoded view, validation.
- :mod:`roost.protocol.messages`: one dataclass per wire message, and ``Unknown``
  (the lease extension's messages are defined in :mod:`roost.protocol.extensions`).
- :mod:`roost.protocol.codec`: payload bytes <-> messages.
- :mod:`roost.protocol.connection`: one side of a connection (roles, hello phase, request ids).
"""

from roost.protocol.connection import Connection, Role
from roost.protocol.messages import BadValue, Unknown, UnknownType
from roost.protocol.values import NIL, Value, decode_value

__all__ = (
    "NIL",
    "BadValue",
    "Connection",
    "Role",
    "Unknown",
    "UnknownType",
    "Value",
    "decode_value",
)
