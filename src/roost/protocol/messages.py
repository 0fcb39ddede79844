"""One frozen, slotted dataclass per wire message (protocol.md §5 and Part II E7).

Rules of this module:

- Field names follow the wire: ``id`` is the u16 request id, ``path`` the path as text (its bytes
  decoded as Latin-1, so every byte string round-trips and validation is the broker's job),
  values are :class:`~roost.protocol.values.Value` (the sender's bytes plus a decoded view).
- ``code`` is the type byte; ``SERVER_ONLY`` / ``CLIENT_ONLY`` say who may send what.
- Extension requests carry their map as ``body``; pushes carry only ``body``. Their classes live
  in :mod:`roost.protocol.extensions` and are re-exported here.
- No I/O, no msgpack: encoding lives in ``codec``.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, fields
from typing import Any, ClassVar, Final, Literal, TypeAlias, get_args

from roost.protocol.extensions import (
    AccessChanged,
    AuthDelegate,
    AuthLogin,
    AuthReload,
    GuardedCall,
    GuardedSet,
    LeaseAcquire,
    LeaseCall,
    LeaseCancel,
    LeaseGranted,
    LeaseGuard,
    LeaseInfo,
    LeaseList,
    LeaseRetain,
    LeaseReturn,
    LeaseRevoked,
    LeaseSet,
    LeaseTake,
    LeaseValidate,
    LeaseWaitEnded,
    LockClear,
    LockInfo,
    LockSet,
    PoolList,
    PoolReload,
    SubtreeCancel,
    SubtreeChanged,
    SubtreeEvent,
    SubtreeListen,
    SubtreeObserve,
    SubtreeSnapshot,
    SubtreeUnknown,
)
from roost.protocol.values import Value

__all__ = (
    "AUTH_REQUESTS",
    "BY_CODE",
    "CLIENT_ONLY",
    "EXTENSION_CODES",
    "SERVER_ONLY",
    "VERSION",
    "AccessChanged",
    "ActionCall",
    "ActionRegister",
    "AuthDelegate",
    "AuthLogin",
    "AuthReload",
    "BadValue",
    "EventEmit",
    "EventListen",
    "EventNotify",
    "EventRegister",
    "Get",
    "GuardedCall",
    "GuardedSet",
    "Hello",
    "HelloId",
    "LeaseAcquire",
    "LeaseCall",
    "LeaseCancel",
    "LeaseGranted",
    "LeaseGuard",
    "LeaseInfo",
    "LeaseList",
    "LeaseRetain",
    "LeaseReturn",
    "LeaseRevoked",
    "LeaseSet",
    "LeaseTake",
    "LeaseValidate",
    "LeaseWaitEnded",
    "LockClear",
    "LockInfo",
    "LockSet",
    "Message",
    "Ping",
    "PoolList",
    "PoolReload",
    "PropGet",
    "PropRegister",
    "PropSet",
    "ReplyError",
    "ReplyOk",
    "ReplyStateKnown",
    "ReplyStateTKnown",
    "ReplyStateTUnknown",
    "ReplyStateUnknown",
    "Request",
    "ServerHello",
    "ServerHelloId",
    "Set",
    "StateChanged",
    "StateNotify",
    "StateNotifyUnknown",
    "StateObserve",
    "StateObserveT",
    "StateRegister",
    "StateSet",
    "StateUnknown",
    "SubtreeCancel",
    "SubtreeChanged",
    "SubtreeEvent",
    "SubtreeListen",
    "SubtreeObserve",
    "SubtreeSnapshot",
    "SubtreeUnknown",
    "Unknown",
    "UnknownT",
    "UnknownType",
)

#: The only protocol version (protocol.md §6).
VERSION: Final = 1


class UnknownType(enum.Enum):
    """Type of the :data:`Unknown` sentinel: a state without a value."""

    Unknown = "Unknown"

    def __repr__(self) -> str:
        return "Unknown"

    def __str__(self) -> str:
        return "Unknown"

    def __bool__(self) -> bool:
        return False


#: The value of a state that has no value (ESHET's ``unknown``).
Unknown: Final = UnknownType.Unknown
UnknownT: TypeAlias = Literal[UnknownType.Unknown]


@dataclass(frozen=True, slots=True)
class Hello:
    """C→S: hello; the broker allocates the client id and answers ServerHelloId."""

    code: ClassVar[int] = 0x01
    version: int
    timeout: int


@dataclass(frozen=True, slots=True)
class HelloId:
    """C→S: hello with a client-chosen id; the broker answers ServerHello."""

    code: ClassVar[int] = 0x02
    version: int
    timeout: int
    client_id: Value


@dataclass(frozen=True, slots=True)
class ServerHello:
    """S→C: answer to HelloId."""

    code: ClassVar[int] = 0x03


@dataclass(frozen=True, slots=True)
class ServerHelloId:
    """S→C: answer to Hello, carrying the allocated client id."""

    code: ClassVar[int] = 0x04
    client_id: Value


@dataclass(frozen=True, slots=True)
class ReplyOk:
    """Both: success reply."""

    code: ClassVar[int] = 0x05
    id: int
    value: Value


@dataclass(frozen=True, slots=True)
class ReplyError:
    """Both: error reply."""

    code: ClassVar[int] = 0x06
    id: int
    value: Value


@dataclass(frozen=True, slots=True)
class ReplyStateKnown:
    """S→C: observe reply, state known."""

    code: ClassVar[int] = 0x07
    id: int
    value: Value


@dataclass(frozen=True, slots=True)
class ReplyStateUnknown:
    """S→C: observe reply, state unknown."""

    code: ClassVar[int] = 0x08
    id: int


@dataclass(frozen=True, slots=True)
class Ping:
    """C→S: ping; answered with ReplyOk nil."""

    code: ClassVar[int] = 0x09
    id: int


@dataclass(frozen=True, slots=True)
class ReplyStateTKnown:
    """S→C: observe_t reply, known, with ms since the last update."""

    code: ClassVar[int] = 0x0A
    id: int
    ms: int
    value: Value


@dataclass(frozen=True, slots=True)
class ReplyStateTUnknown:
    """S→C: observe_t reply, unknown, with ms since the last update."""

    code: ClassVar[int] = 0x0B
    id: int
    ms: int


@dataclass(frozen=True, slots=True)
class ActionRegister:
    """C→S: register an action."""

    code: ClassVar[int] = 0x10
    id: int
    path: str


@dataclass(frozen=True, slots=True)
class ActionCall:
    """Both: call an action (S→C when forwarded to its owner)."""

    code: ClassVar[int] = 0x11
    id: int
    path: str
    args: Value


@dataclass(frozen=True, slots=True)
class PropRegister:
    """C→S: register a prop."""

    code: ClassVar[int] = 0x20
    id: int
    path: str


@dataclass(frozen=True, slots=True)
class PropGet:
    """S→C: get forwarded to a prop's owner."""

    code: ClassVar[int] = 0x21
    id: int
    path: str


@dataclass(frozen=True, slots=True)
class PropSet:
    """S→C: set forwarded to a prop's owner."""

    code: ClassVar[int] = 0x22
    id: int
    path: str
    value: Value


@dataclass(frozen=True, slots=True)
class Get:
    """C→S: get a prop or state."""

    code: ClassVar[int] = 0x23
    id: int
    path: str


@dataclass(frozen=True, slots=True)
class Set:
    """C→S: set a prop or state."""

    code: ClassVar[int] = 0x24
    id: int
    path: str
    value: Value


@dataclass(frozen=True, slots=True)
class EventRegister:
    """C→S: register (own) an event."""

    code: ClassVar[int] = 0x30
    id: int
    path: str


@dataclass(frozen=True, slots=True)
class EventEmit:
    """C→S: emit an event."""

    code: ClassVar[int] = 0x31
    id: int
    path: str
    value: Value


@dataclass(frozen=True, slots=True)
class EventListen:
    """C→S: listen to an event."""

    code: ClassVar[int] = 0x32
    id: int
    path: str


@dataclass(frozen=True, slots=True)
class EventNotify:
    """S→C: an event was emitted (no id)."""

    code: ClassVar[int] = 0x33
    path: str
    value: Value


@dataclass(frozen=True, slots=True)
class StateRegister:
    """C→S: register (own) a state."""

    code: ClassVar[int] = 0x40
    id: int
    path: str


@dataclass(frozen=True, slots=True)
class StateChanged:
    """C→S: the owner's new state value."""

    code: ClassVar[int] = 0x41
    id: int
    path: str
    value: Value


@dataclass(frozen=True, slots=True)
class StateUnknown:
    """C→S: the owner makes the state unknown."""

    code: ClassVar[int] = 0x42
    id: int
    path: str


@dataclass(frozen=True, slots=True)
class StateObserve:
    """C→S: observe a state; answered with ReplyState*."""

    code: ClassVar[int] = 0x43
    id: int
    path: str


@dataclass(frozen=True, slots=True)
class StateNotify:
    """S→C: a state became known with a value (no id)."""

    code: ClassVar[int] = 0x44
    path: str
    value: Value


@dataclass(frozen=True, slots=True)
class StateNotifyUnknown:
    """S→C: a state became unknown (no id)."""

    code: ClassVar[int] = 0x45
    path: str


@dataclass(frozen=True, slots=True)
class StateObserveT:
    """C→S: observe with time; answered with ReplyStateT*."""

    code: ClassVar[int] = 0x46
    id: int
    path: str


@dataclass(frozen=True, slots=True)
class StateSet:
    """S→C: set forwarded to a state's owner."""

    code: ClassVar[int] = 0x47
    id: int
    path: str
    value: Value


@dataclass(frozen=True, slots=True)
class BadValue:
    """A request or reply whose value failed validation (protocol.md §4.2).

    Not a wire message: ``Connection.receive_data`` reports it in place of the message so the
    broker can answer ``invalid_value`` (or pass that on to a requester) and keep the connection.
    ``code`` is the offending message's type byte, ``id`` its request id, ``reason`` why.
    """

    code: int
    id: int
    reason: str


Message: TypeAlias = (
    Hello
    | HelloId
    | ServerHello
    | ServerHelloId
    | ReplyOk
    | ReplyError
    | ReplyStateKnown
    | ReplyStateUnknown
    | Ping
    | ReplyStateTKnown
    | ReplyStateTUnknown
    | ActionRegister
    | ActionCall
    | PropRegister
    | PropGet
    | PropSet
    | Get
    | Set
    | EventRegister
    | EventEmit
    | EventListen
    | EventNotify
    | StateRegister
    | StateChanged
    | StateUnknown
    | StateObserve
    | StateNotify
    | StateNotifyUnknown
    | StateObserveT
    | StateSet
    | LeaseAcquire
    | LeaseTake
    | LeaseReturn
    | LeaseRetain
    | LeaseValidate
    | LeaseCancel
    | LeaseInfo
    | LeaseList
    | LeaseGuard
    | LeaseCall
    | LeaseSet
    | LockSet
    | LockClear
    | LockInfo
    | PoolList
    | PoolReload
    | LeaseGranted
    | LeaseRevoked
    | LeaseWaitEnded
    | GuardedCall
    | GuardedSet
    | SubtreeListen
    | SubtreeObserve
    | SubtreeCancel
    | SubtreeEvent
    | SubtreeChanged
    | SubtreeUnknown
    | SubtreeSnapshot
    | AuthLogin
    | AuthReload
    | AuthDelegate
    | AccessChanged
)

#: Messages that carry a request id and expect a reply.
Request: TypeAlias = (
    Ping
    | ActionRegister
    | ActionCall
    | PropRegister
    | PropGet
    | PropSet
    | Get
    | Set
    | EventRegister
    | EventEmit
    | EventListen
    | StateRegister
    | StateChanged
    | StateUnknown
    | StateObserve
    | StateObserveT
    | StateSet
    | LeaseAcquire
    | LeaseTake
    | LeaseReturn
    | LeaseRetain
    | LeaseValidate
    | LeaseCancel
    | LeaseInfo
    | LeaseList
    | LeaseGuard
    | LeaseCall
    | LeaseSet
    | LockSet
    | LockClear
    | LockInfo
    | PoolList
    | PoolReload
    | GuardedCall
    | GuardedSet
    | SubtreeListen
    | SubtreeObserve
    | SubtreeCancel
    | AuthLogin
    | AuthReload
    | AuthDelegate
)

#: Message class by type byte.
BY_CODE: Final[dict[int, type[Message]]] = {cls.code: cls for cls in get_args(Message)}


def _codes(text: str) -> frozenset[int]:
    return frozenset(int(code, 16) for code in text.split())


#: Type bytes only the broker may send (a client sending one is closed, protocol.md §5, E7).
SERVER_ONLY: Final = _codes("03 04 07 08 0a 0b 21 22 33 44 45 47 60 61 62 68 69 74 7c 7d 7e 7f")

#: Type bytes only a client may send (a broker sending one is a protocol error).
CLIENT_ONLY: Final = _codes(
    "01 02 09 10 20 23 24 30 31 32 40 41 42 43 46 50 51 52 53 54 55 56 57 58 59 5a 5b 5c 5d 5e 5f"
    " 70 71 72 78 79 7a"
)

#: The identity and access requests (Part II E16).
AUTH_REQUESTS: Final = (AuthLogin, AuthReload, AuthDelegate)

#: Type bytes of roost's extension (Part II); never sent to a peer that did not opt in.
EXTENSION_CODES: Final = frozenset(code for code in BY_CODE if code >= 0x50)


def _install_fast_init(cls: type) -> None:
    """Give a frozen, slotted dataclass an ``__init__`` that stores through the slot descriptors.

    Same signature and effect as the generated one; it skips ``object.__setattr__``, which a
    frozen dataclass goes through for every field, and so halves the cost of building a message,
    paid once per received frame. Attribute assignment after construction still raises
    ``FrozenInstanceError``.
    """
    names = [field.name for field in fields(cls)]
    namespace: dict[str, Any] = {
        f"_set{i}": cls.__dict__[name].__set__ for i, name in enumerate(names)
    }
    body = "".join(f"    _set{i}(self, {name})\n" for i, name in enumerate(names)) or "    pass\n"
    exec(f"def __init__({', '.join(['self', *names])}):\n{body}", namespace)
    init = namespace["__init__"]
    init.__qualname__ = f"{cls.__qualname__}.__init__"
    cls.__init__ = init  # type: ignore[misc]


for _cls in (*BY_CODE.values(), BadValue):
    _install_fast_init(_cls)
