"""Messages of roost's extensions: leases (protocol.md Part II, E3 and E7), subtree
subscriptions (E12) and identity and access (E16).

Rules of this module:

- One frozen, slotted dataclass per extension message, shaped like the ESHET ones in
  :mod:`roost.protocol.messages`, which re-exports every name here.
- Subtree pushes are laid out like ESHET notifications (a path and the value bytes), so the
  broker encodes one frame per notification for every subscriber; the snapshot push also names
  the subscription it belongs to.
- Requests (client to broker) and guarded forwards (broker to owner) carry ``id`` and ``body``;
  pushes carry only ``body``. ``body`` is the msgpack map as a
  :class:`~roost.protocol.values.Value`; its fields are the broker's and the client's business.
- A broker never sends one of these to a connection that has not sent an extension message first.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from roost.protocol.values import Value

__all__ = (
    "AccessChanged",
    "AuthDelegate",
    "AuthLogin",
    "AuthReload",
    "GuardedCall",
    "GuardedSet",
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
    "PoolList",
    "PoolReload",
    "SubtreeCancel",
    "SubtreeChanged",
    "SubtreeEvent",
    "SubtreeListen",
    "SubtreeObserve",
    "SubtreeSnapshot",
    "SubtreeUnknown",
)


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
class LockSet:
    """C→S extension: set or update a durable keyed lock."""

    code: ClassVar[int] = 0x5B
    id: int
    body: Value


@dataclass(frozen=True, slots=True)
class LockClear:
    """C→S extension: clear a durable lock with its key or the emergency key."""

    code: ClassVar[int] = 0x5C
    id: int
    body: Value


@dataclass(frozen=True, slots=True)
class LockInfo:
    """C→S extension: the lock info of a resource (or of every lock)."""

    code: ClassVar[int] = 0x5D
    id: int
    body: Value


@dataclass(frozen=True, slots=True)
class PoolList:
    """C→S extension: the pool inventory with each resource's status."""

    code: ClassVar[int] = 0x5E
    id: int
    body: Value


@dataclass(frozen=True, slots=True)
class PoolReload:
    """C→S extension: read the pool inventory again."""

    code: ClassVar[int] = 0x5F
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
class SubtreeListen:
    """C→S extension: listen to every event whose path matches a pattern."""

    code: ClassVar[int] = 0x78
    id: int
    body: Value


@dataclass(frozen=True, slots=True)
class SubtreeObserve:
    """C→S extension: observe every state whose path matches a pattern (snapshot first)."""

    code: ClassVar[int] = 0x79
    id: int
    body: Value


@dataclass(frozen=True, slots=True)
class SubtreeCancel:
    """C→S extension: end a subtree subscription."""

    code: ClassVar[int] = 0x7A
    id: int
    body: Value


@dataclass(frozen=True, slots=True)
class SubtreeEvent:
    """S→C extension push: an event matching a subtree listen was emitted."""

    code: ClassVar[int] = 0x7C
    path: str
    value: Value


@dataclass(frozen=True, slots=True)
class SubtreeChanged:
    """S→C extension push: a state matching a subtree observe changed."""

    code: ClassVar[int] = 0x7D
    path: str
    value: Value


@dataclass(frozen=True, slots=True)
class SubtreeUnknown:
    """S→C extension push: a state matching a subtree observe became unknown."""

    code: ClassVar[int] = 0x7E
    path: str


@dataclass(frozen=True, slots=True)
class SubtreeSnapshot:
    """S→C extension push: the current value of one state, for one new subtree observe."""

    code: ClassVar[int] = 0x7F
    sub: int
    path: str
    value: Value


@dataclass(frozen=True, slots=True)
class AuthLogin:
    """C→S extension: log in as a user (before hello)."""

    code: ClassVar[int] = 0x70
    id: int
    body: Value


@dataclass(frozen=True, slots=True)
class AuthReload:
    """C→S extension: re-read users and access rules (admin)."""

    code: ClassVar[int] = 0x71
    id: int
    body: Value


@dataclass(frozen=True, slots=True)
class AuthDelegate:
    """C→S extension: a sub-lease of a held lease for another user."""

    code: ClassVar[int] = 0x72
    id: int
    body: Value


@dataclass(frozen=True, slots=True)
class AccessChanged:
    """S→C extension push: the connection lost access (rules reloaded)."""

    code: ClassVar[int] = 0x74
    body: Value
