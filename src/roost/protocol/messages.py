"""One frozen, slotted dataclass per wire message (protocol.md §5 and Part II E7).

Rules of this module:

- Field names follow the wire: ``id`` is the u16 request id, ``path`` the path as text (its bytes
  decoded as Latin-1, so every byte string round-trips and validation is the broker's job),
  values are :class:`~roost.protocol.values.Value` (the sender's bytes plus a decoded view).
- ``code`` is the type byte; ``SERVER_ONLY`` / ``CLIENT_ONLY`` say who may send what.
- Extension requests carry their map as ``body``; pushes carry only ``body``.
- No I/O, no msgpack: encoding lives in ``codec``.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import ClassVar, Final, Literal, TypeAlias

from roost.protocol.values import Value

__all__ = (
    "ActionCall",
    "ActionRegister",
    "BY_CODE",
    "BadValue",
    "CLIENT_ONLY",
    "EXTENSION_CODES",
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
    "Message",
    "Ping",
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
    "SERVER_ONLY",
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
    "Unknown",
    "UnknownT",
    "UnknownType",
    "VERSION",
)

#: The only protocol version (protocol.md §6, D1).
VERSION: Final = 1


class UnknownType(enum.Enum):
    """Type of the :data:`Unknown` sentinel: a state without a value."""

    Unknown = "Unknown"

    def __repr__(self) -> str:
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
class LeaseAcquire:
    """C→S extension: acquire a lease."""

    code: ClassVar[int] = 0x50
    id: int
    body: Value


@dataclass(frozen=True, slots=True)
class LeaseTake:
    """C→S extension: take a lease by force."""

    code: ClassVar[int] = 0x51
    id: int
    body: Value


@dataclass(frozen=True, slots=True)
class LeaseReturn:
    """C→S extension: return a lease."""

    code: ClassVar[int] = 0x52
    id: int
    body: Value


@dataclass(frozen=True, slots=True)
class LeaseRetain:
    """C→S extension: retain a lease (restart its ttl)."""

    code: ClassVar[int] = 0x53
    id: int
    body: Value


@dataclass(frozen=True, slots=True)
class LeaseValidate:
    """C→S extension: the use status of a token."""

    code: ClassVar[int] = 0x54
    id: int
    body: Value


@dataclass(frozen=True, slots=True)
class LeaseCancel:
    """C→S extension: cancel a queued acquire."""

    code: ClassVar[int] = 0x55
    id: int
    body: Value


@dataclass(frozen=True, slots=True)
class LeaseInfo:
    """C→S extension: holders and waiters of one resource."""

    code: ClassVar[int] = 0x56
    id: int
    body: Value


@dataclass(frozen=True, slots=True)
class LeaseList:
    """C→S extension: resources with holders or waiters."""

    code: ClassVar[int] = 0x57
    id: int
    body: Value


@dataclass(frozen=True, slots=True)
class LeaseGuard:
    """C→S extension: require a lease for calls and sets to a node."""

    code: ClassVar[int] = 0x58
    id: int
    body: Value


@dataclass(frozen=True, slots=True)
class LeaseCall:
    """C→S extension: call an action presenting a token."""

    code: ClassVar[int] = 0x59
    id: int
    body: Value


@dataclass(frozen=True, slots=True)
class LeaseSet:
    """C→S extension: set a prop or state presenting a token."""

    code: ClassVar[int] = 0x5A
    id: int
    body: Value


@dataclass(frozen=True, slots=True)
class LeaseGranted:
    """S→C extension push: a queued acquire was granted."""

    code: ClassVar[int] = 0x60
    body: Value


@dataclass(frozen=True, slots=True)
class LeaseRevoked:
    """S→C extension push: a lease ended."""

    code: ClassVar[int] = 0x61
    body: Value


@dataclass(frozen=True, slots=True)
class LeaseWaitEnded:
    """S→C extension push: a queued acquire ended without a grant."""

    code: ClassVar[int] = 0x62
    body: Value


@dataclass(frozen=True, slots=True)
class GuardedCall:
    """S→C extension: a call to a guarded action, with the token."""

    code: ClassVar[int] = 0x68
    id: int
    body: Value


@dataclass(frozen=True, slots=True)
class GuardedSet:
    """S→C extension: a set of a guarded prop or state, with the token."""

    code: ClassVar[int] = 0x69
    id: int
    body: Value


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
    | LeaseGranted
    | LeaseRevoked
    | LeaseWaitEnded
    | GuardedCall
    | GuardedSet
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
    | GuardedCall
    | GuardedSet
)

#: Message class by type byte.
BY_CODE: Final[dict[int, type[Message]]] = {
    Hello.code: Hello,
    HelloId.code: HelloId,
    ServerHello.code: ServerHello,
    ServerHelloId.code: ServerHelloId,
    ReplyOk.code: ReplyOk,
    ReplyError.code: ReplyError,
    ReplyStateKnown.code: ReplyStateKnown,
    ReplyStateUnknown.code: ReplyStateUnknown,
    Ping.code: Ping,
    ReplyStateTKnown.code: ReplyStateTKnown,
    ReplyStateTUnknown.code: ReplyStateTUnknown,
    ActionRegister.code: ActionRegister,
    ActionCall.code: ActionCall,
    PropRegister.code: PropRegister,
    PropGet.code: PropGet,
    PropSet.code: PropSet,
    Get.code: Get,
    Set.code: Set,
    EventRegister.code: EventRegister,
    EventEmit.code: EventEmit,
    EventListen.code: EventListen,
    EventNotify.code: EventNotify,
    StateRegister.code: StateRegister,
    StateChanged.code: StateChanged,
    StateUnknown.code: StateUnknown,
    StateObserve.code: StateObserve,
    StateNotify.code: StateNotify,
    StateNotifyUnknown.code: StateNotifyUnknown,
    StateObserveT.code: StateObserveT,
    StateSet.code: StateSet,
    LeaseAcquire.code: LeaseAcquire,
    LeaseTake.code: LeaseTake,
    LeaseReturn.code: LeaseReturn,
    LeaseRetain.code: LeaseRetain,
    LeaseValidate.code: LeaseValidate,
    LeaseCancel.code: LeaseCancel,
    LeaseInfo.code: LeaseInfo,
    LeaseList.code: LeaseList,
    LeaseGuard.code: LeaseGuard,
    LeaseCall.code: LeaseCall,
    LeaseSet.code: LeaseSet,
    LeaseGranted.code: LeaseGranted,
    LeaseRevoked.code: LeaseRevoked,
    LeaseWaitEnded.code: LeaseWaitEnded,
    GuardedCall.code: GuardedCall,
    GuardedSet.code: GuardedSet,
}

#: Type bytes only the broker may send (a client sending one is closed).
SERVER_ONLY: Final = frozenset(
    {
        0x03,
        0x04,
        0x07,
        0x08,
        0x0A,
        0x0B,
        0x21,
        0x22,
        0x33,
        0x44,
        0x45,
        0x47,
        0x60,
        0x61,
        0x62,
        0x68,
        0x69,
    }
)

#: Type bytes only a client may send.
CLIENT_ONLY: Final = frozenset(
    {
        0x01,
        0x02,
        0x09,
        0x10,
        0x20,
        0x23,
        0x24,
        0x30,
        0x31,
        0x32,
        0x40,
        0x41,
        0x42,
        0x43,
        0x46,
        0x50,
        0x51,
        0x52,
        0x53,
        0x54,
        0x55,
        0x56,
        0x57,
        0x58,
        0x59,
        0x5A,
    }
)

#: Type bytes of roost's extension (Part II); never sent to a peer that did not opt in.
EXTENSION_CODES: Final = frozenset(code for code in BY_CODE if code >= 0x50)
