"""The lease table's records and the effects it returns.

Rules of this module:

- Effects are frozen dataclasses; their dict fields are plain msgpack-ready data the router
  encodes as they are (and must not mutate).
- Records (``Lease``, ``Waiter``, ``ConnState``, ``Record``) are mutable and private to the table;
  nothing outside ``roost.broker.lease*`` modules should change them.
- No I/O, no clock.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable
from dataclasses import dataclass, field
from typing import Any, Final, Protocol, TypeAlias

__all__ = (
    "EXCLUSIVE",
    "IDENTITY_MAX",
    "MODES",
    "SHARED",
    "Audit",
    "Close",
    "ConnState",
    "Declared",
    "Effect",
    "Event",
    "Forget",
    "HolderState",
    "Identity",
    "Lease",
    "Push",
    "Record",
    "RootCounter",
    "TableView",
    "Waiter",
)

EXCLUSIVE: Final = "exclusive"
SHARED: Final = "shared"
MODES: Final = frozenset({EXCLUSIVE, SHARED})

#: Longest ``name``/``user``/``host``/``note`` accepted, in characters, so that a holder entry
#: always fits in a frame next to others.
IDENTITY_MAX: Final = 1024


# -- effects --------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Push:
    """Send the extension push ``kind`` (``lease_granted``, ``lease_revoked`` or
    ``lease_wait_ended``) with map ``body`` to connection ``conn``."""

    conn: Hashable
    kind: str
    body: dict[str, Any]


@dataclass(frozen=True, slots=True)
class HolderState:
    """Publish ``value`` as the state ``/meta/leases/<resource>/holder``."""

    resource: str
    value: dict[str, Any]


@dataclass(frozen=True, slots=True)
class Event:
    """Emit ``value`` on ``/meta/leases/<resource>/events`` and on ``/meta/lease_events``."""

    resource: str
    value: dict[str, Any]


@dataclass(frozen=True, slots=True)
class Audit:
    """Write one audit line (a JSON object) for a grant, an end or a take."""

    record: dict[str, Any]


@dataclass(frozen=True, slots=True)
class Close:
    """Close connection ``conn`` now (its idle timeout passed while it held or waited)."""

    conn: Hashable
    reason: str


@dataclass(frozen=True, slots=True)
class Forget:
    """The record of ``resource`` was reclaimed: its nodes under ``/meta/leases`` may go."""

    resource: str


Effect: TypeAlias = Push | HolderState | Event | Audit | Close | Forget


# -- configuration --------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Declared:
    """A declared resource: ``max_holders`` 0 means unlimited shared holders."""

    name: str
    max_holders: int = 0
    takeable: bool = True


@dataclass(frozen=True, slots=True)
class Identity:
    """What a holder or waiter says about itself; shown to others, never authenticated."""

    name: str = ""
    user: str = ""
    host: str = ""
    pid: int | None = None
    note: str = ""

    def too_long(self) -> bool:
        """True if a text field exceeds :data:`IDENTITY_MAX` characters."""
        return any(len(s) > IDENTITY_MAX for s in (self.name, self.user, self.host, self.note))


class RootCounter:
    """The broker-wide counter roots come from; never goes backwards.

    Args:
        first: the first root to hand out.
        ceiling: roots below this may be used without asking ``reserve``; ``None`` = no limit.
        reserve: called with a new ceiling before any root at or above the old one is used (the
            state directory persists it; it may raise, and then no root is handed out).
        block: how far each reservation moves the ceiling.
    """

    __slots__ = ("_block", "_ceiling", "_next", "_reserve")

    def __init__(
        self,
        first: int = 1,
        *,
        ceiling: int | None = None,
        reserve: Callable[[int], None] | None = None,
        block: int = 1000,
    ) -> None:
        self._next = first
        self._ceiling = ceiling
        self._reserve = reserve
        self._block = block

    @property
    def peek(self) -> int:
        """The root the next :meth:`take` returns."""
        return self._next

    def take(self) -> int:
        """Return the next root, reserving a new block first when the ceiling is reached."""
        root = self._next
        if self._ceiling is not None and root >= self._ceiling:
            ceiling = root + self._block
            if self._reserve is not None:
                self._reserve(ceiling)
            self._ceiling = ceiling
        self._next = root + 1
        return root


# -- records --------------------------------------------------------------------------------------


@dataclass(slots=True, eq=False)
class Lease:
    """One grant; ``end_reason`` is ``None`` while active and set once, for good, when it ends."""

    lease_id: int
    resource: str
    mode: str
    root: int
    token: dict[str, Any]
    conn: Hashable
    client: Any
    identity: Identity
    since: float
    ttl: float | None
    last_retain: float
    request: int | None = None
    keys: list[str] = field(default_factory=list)  # idempotency keys naming this lease
    end_reason: str | None = None
    ttl_due: float | None = None  # the heap entry currently scheduled for the ttl
    entry: dict[str, Any] | None = None  # its holder entry, built once (it never changes)
    entry_size: int = 0  # packed size of ``entry``
    delegates: dict[tuple[int, ...], str] = field(default_factory=dict)  # sub-lease seq -> user

    @property
    def active(self) -> bool:
        """True until the lease ends."""
        return self.end_reason is None


@dataclass(slots=True, eq=False)
class Waiter:
    """A queued acquire; ``outcome`` is ``None`` while waiting."""

    request: int
    conn: Hashable
    resource: str
    mode: str
    arrival: int
    deadline: float | None
    identity: Identity
    ttl: float | None
    key: str | None
    since: float
    outcome: str | None = None

    @property
    def waiting(self) -> bool:
        """True while the request is queued."""
        return self.outcome is None


@dataclass(slots=True, eq=False)
class ConnState:
    """What the table knows of one connection that completed hello."""

    conn: Hashable
    client: Any
    timeout: float
    last_seen: float
    leases: dict[int, Lease] = field(default_factory=dict)
    waiters: dict[int, Waiter] = field(default_factory=dict)
    keys: dict[str, Lease | Waiter] = field(default_factory=dict)
    due: float | None = None  # the heap entry currently scheduled for the idle timeout

    def busy(self) -> bool:
        """True if the connection holds a lease or waits for one."""
        return bool(self.leases or self.waiters)


@dataclass(slots=True, eq=False)
class Record:
    """A managed resource: its active grants (by root, in grant order), its waiters and the
    last grant ever made on exactly this name."""

    name: str
    declared: bool = False
    max_holders: int = 0
    takeable: bool = True
    active: dict[int, Lease] = field(default_factory=dict)
    waiters: dict[int, Waiter] = field(default_factory=dict)
    last_lease: Lease | None = None
    published: dict[str, Any] | None = None
    floor_seen: int | None = None

    @property
    def last_root(self) -> int | None:
        """Root of the last grant on this name, or ``None`` if never granted."""
        return None if self.last_lease is None else self.last_lease.root


class TableView(Protocol):
    """What the read-only lease modules (``queries``, ``checks``) see of the table.

    :class:`~roost.broker.leases.core.TableCore` satisfies it; the readers depend on this
    shape rather than on the class, so the core can import them without a circle.
    """

    epoch: int
    max_waits: int
    max_leases: int
    forgotten_floor: int
    wall_offset: float
    bind_tokens: bool
    user_of: Callable[[Hashable], str] | None
    _records: dict[str, Record]
    _conns: dict[Hashable, ConnState]
    _below: dict[str, set[str]]
    _queue: dict[int, Waiter]
    _clock: float
    _roots: RootCounter

    def seen(self, c: ConnState) -> float:
        """When bytes last arrived from the connection."""
        ...

    def covering_leases(self, name: str) -> list[Lease]:
        """Active leases on ``name`` or an ancestor, oldest grant first."""
        ...

    def _conflicts(self, name: str, mode: str) -> list[Lease]:
        """The active leases a request on ``name`` in ``mode`` cannot coexist with."""
        ...
