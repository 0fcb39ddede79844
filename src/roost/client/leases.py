"""Client side of leases: the ``Lease`` object, the book of live leases and waits, the wallet.

Rules of this module:

- A lease ends once. Any loss (revocation push, connection loss, local deadline, a refused
  retain) sets ``lost``, records the reason, calls ``on_lost`` and makes ``check()`` raise; a
  return by this client ends it without being a loss.
- Leases are never re-acquired behind the application's back: a connection loss loses them all
  with reason ``disconnected`` (leases.md §4).
- The book is fed synchronously by the connection's reader (pushes, replies, link loss), so
  a grant or revocation is recorded before any later message is handled.
- The wallet never lets news about an older token downgrade what it knows about a newer one.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from time import monotonic
from typing import Any, Literal, Protocol

import anyio

from roost.errors import (
    Disconnected,
    InvalidLease,
    LeaseError,
    LeaseLost,
    Older,
    WrongEpoch,
    lease_error_for,
    lost_text,
)
from roost.protocol.tokens import (
    Comparison,
    compare,
    covers,
    is_valid_token,
    newer,
    overlaps,
    sublease,
)

__all__ = ("Lease", "LeaseBook", "LeaseValidator", "LeaseWallet", "WalletEntry", "WalletStatus")

log = logging.getLogger("roost.client")


class LeaseOwner(Protocol):
    """What a :class:`Lease` needs of the client that holds it (the client's lease verbs and
    its book of live leases); the client satisfies it, so this module imports no client."""

    _leases: LeaseBook

    async def lease_retain(self, lease: Lease | Mapping[str, Any]) -> float | None:
        """Restart the lease's ttl clock; the ttl left."""
        ...

    async def lease_return(self, lease: Lease | Mapping[str, Any]) -> None:
        """Return the lease."""
        ...


WalletStatus = Literal["self_owner", "other_owner", "revoked", "unowned", "not_managed"]


class Lease:
    """One grant of a resource to this client.

    Attributes:
        lease_id: the broker's id of the grant (unique for the broker's run).
        token: the fencing token (a dict ``{epoch, seq, resource, client_names}``).
        resource: the granted resource (an ancestor's grant keeps the ancestor's name).
        mode: ``"exclusive"`` or ``"shared"``.
        ttl: seconds between retains the broker requires, or ``None``.
        lost: an ``anyio.Event`` set when the lease is lost (not when returned).
        lost_reason: why it was lost (``taken``, ``expired``, ``disconnected``, ``timeout``,
            ``returned`` elsewhere, ``restart``...), ``None`` while held.
    """

    def __init__(
        self,
        client: LeaseOwner,
        grant: Mapping[str, Any],
        on_lost: Callable[[Lease], Any] | None = None,
    ) -> None:
        self._client = client
        self.lease_id: Any = grant.get("lease_id")
        self.token: dict[str, Any] = dict(grant.get("token") or {})
        self.resource: str = str(grant.get("resource", self.token.get("resource", "")))
        self.mode: str = str(grant.get("mode", "exclusive"))
        ttl = grant.get("ttl")
        self.ttl: float | None = float(ttl) if isinstance(ttl, (int, float)) else None
        self.since: Any = grant.get("since")
        #: For a pool grant: the resource's inventory entry and the seconds it waited.
        attributes = grant.get("attributes")
        self.attributes: dict[str, Any] = dict(attributes) if isinstance(attributes, dict) else {}
        queued = grant.get("queued")
        self.queued: float = float(queued) if isinstance(queued, (int, float)) else 0.0
        #: Wall-clock time the lease was returned or lost (``None`` while held).
        self.ended_at: float | None = None
        self.lost = anyio.Event()
        self.lost_reason: str | None = None
        #: For a take: the taker's holder entry and the reason the taker gave.
        self.lost_by: dict[str, Any] | None = None
        self.lost_why: str | None = None
        self.ended_reason: str | None = None
        self.on_lost: list[Callable[[Lease], Any]] = [on_lost] if on_lost is not None else []
        #: Monotonic send time of the last retain the broker accepted (the grant counts).
        self.retained_at = monotonic()

    # -- state ---------------------------------------------------------------------------------

    @property
    def duration(self) -> float | None:
        """Seconds from the grant to the return or loss (``None`` while held)."""
        if self.ended_at is None or not isinstance(self.since, (int, float)):
            return None
        return self.ended_at - float(self.since)

    @property
    def active(self) -> bool:
        """True until the lease is returned or lost."""
        return self.ended_reason is None

    def check(self) -> None:
        """Raise if the lease is no longer held.

        Raises:
            LeaseLost: the lease was lost (``.reason`` says why) or returned.
        """
        if self.ended_reason is not None:
            raise LeaseLost(self.ended_reason, self.lost_by, self.lost_why)

    async def wait_lost(self) -> str:
        """Wait until the lease is lost; return the reason."""
        await self.lost.wait()
        assert self.lost_reason is not None
        return self.lost_reason

    def sublease(self, name: str) -> dict[str, Any]:
        """A sub-lease token for a delegate ``name`` (``seq + [0]``), derived locally.

        Delegates may present it (``lease=`` on calls and sets); only this holder returns.
        """
        return sublease(self.token, name)

    def newer_token(self, token: dict[str, Any] | None = None) -> dict[str, Any]:
        """The next token in this holder's own sequence (last ``seq`` element + 1)."""
        return newer(token if token is not None else self.token)

    # -- verbs ---------------------------------------------------------------------------------

    async def retain(self) -> float | None:
        """Retain the lease (restart its ttl clock); return the ttl left (``None`` without ttl).

        Raises:
            LeaseError: refused (``REVOKED``, ``OLDER``...); the lease is then marked lost.
            Disconnected: the connection is gone (the lease is lost already).
        """
        sent = monotonic()
        try:
            ttl_left = await self._client.lease_retain(self.token)
        except LeaseError as exc:
            self._client._leases.lose(self, _reason_of(exc))
            raise
        self.retained_at = max(self.retained_at, sent)
        return ttl_left

    async def return_lease(self) -> None:
        """Give the lease back. Harmless when it has already ended (``REVOKED`` or ``OLDER``
        replies count as success) or the connection is gone (the broker ended it already).

        Raises:
            LeaseError: any other refusal.
        """
        if not self.active:
            return
        try:
            await self._client.lease_return(self.token)
        except LeaseError as exc:
            if exc.status not in ("REVOKED", "OLDER", "WRONG_EPOCH"):
                raise
        except Disconnected:
            pass
        self._client._leases.end(self, "returned")

    def __repr__(self) -> str:
        state = "held" if self.active else f"ended: {self.ended_reason}"
        return f"<Lease {self.resource!r} {self.mode} id={self.lease_id!r} {state}>"


def _reason_of(exc: LeaseError) -> str:
    reason = exc.reply.get("reason")
    return reason if isinstance(reason, str) else exc.status.lower()


@dataclass(frozen=True, slots=True)
class WalletEntry:
    """What this client knows about one resource: ``status`` and the newest token seen."""

    status: WalletStatus
    token: dict[str, Any] | None = None


class LeaseWallet:
    """Read-only view of what this client knows about each resource it met (leases.md §4.8).

    Statuses: ``self_owner`` (this client holds it), ``other_owner`` (someone else does),
    ``revoked`` (this client's lease ended), ``unowned`` (returned, free as far as known),
    ``not_managed``. News about a token older than the one recorded is ignored.
    """

    def __init__(self) -> None:
        self._entries: dict[str, WalletEntry] = {}

    def status(self, resource: str) -> WalletStatus:
        """The status of ``resource`` (``not_managed`` if never seen)."""
        entry = self._entries.get(resource)
        return entry.status if entry is not None else "not_managed"

    def get(self, resource: str) -> WalletEntry | None:
        """The entry of ``resource``, if any."""
        return self._entries.get(resource)

    def snapshot(self) -> dict[str, WalletEntry]:
        """A copy of every entry."""
        return dict(self._entries)

    def __len__(self) -> int:
        return len(self._entries)

    def record(self, resource: str, status: WalletStatus, token: Any = None) -> None:
        """Record news about ``resource`` unless it concerns an older token than the known one."""
        old = self._entries.get(resource)
        if (
            old is not None
            and old.token is not None
            and isinstance(token, dict)
            and compare(token, old.token) in (Comparison.OLDER, Comparison.SUPER_LEASE)
        ):
            return
        if token is None and old is not None and status not in ("unowned", "revoked"):
            token = old.token
        self._entries[resource] = WalletEntry(status, token if isinstance(token, dict) else None)


class LeaseValidator:
    """Fencing for owners that check tokens themselves (protocol.md E5).

    It remembers the newest token accepted per resource and checks an incoming token against
    every remembered token whose resource overlaps the incoming one (the same name, an
    ancestor or a descendant), because roots come from one broker-wide counter: a stale
    ``[5, 0]`` of a lease on ``lab`` is refused after ``[7]`` of a take of ``lab/arm``.
    Against each of them, an incoming token

    - from an older epoch is refused (``WrongEpoch``); from a newer epoch it is newer;
    - of the same epoch with a smaller root is refused (``Older``); with a larger root it is
      newer;
    - with the same root is compared as protocol.md E5 does: ``OLDER`` or ``SUPER_LEASE`` is
      refused, ``SAME``, ``SUB_LEASE`` and ``NEWER`` are accepted (so a holder's ``[5, 1]``,
      ``[5, 2]``... are ordered).

    Tokens of resources that do not overlap (``lab/arm`` and ``lab/scope``) are never compared.
    A validator fences one device: use one per thing whose commands must not be applied out of
    order. It keeps one token per resource name met, dropping those an accepted token of a
    covering resource supersedes, so a device fed tokens of ``N`` distinct names keeps at
    most ``N``; each check costs one pass over them.
    """

    def __init__(self) -> None:
        self._known: dict[str, dict[str, Any]] = {}

    def newest(self, resource: str) -> dict[str, Any] | None:
        """The newest token accepted whose resource overlaps ``resource`` (newer epoch first,
        then the larger ``seq`` by E5 order), or ``None``: the token a late command for
        ``resource`` must not be older than."""
        best: dict[str, Any] | None = None
        for name, known in self._known.items():
            if overlaps(name, resource) and (best is None or _key(known) > _key(best)):
                best = known
        return best

    def check(self, token: Any) -> None:
        """Accept ``token`` (and remember it if newer) or raise.

        Raises:
            InvalidLease: a malformed token.
            WrongEpoch: an accepted token of an overlapping resource is from a newer epoch.
            Older: an accepted token of an overlapping resource is newer (a larger root, or
                the same root comparing ``NEWER``), or ``token`` is a super-lease of one.
        """
        if not is_valid_token(token):
            raise InvalidLease({"status": "INVALID_LEASE"})
        resource: str = token["resource"]
        older = False
        for name, known in self._known.items():
            if not overlaps(name, resource):
                continue
            if token["epoch"] != known["epoch"]:
                if token["epoch"] < known["epoch"]:
                    raise WrongEpoch({"status": "WRONG_EPOCH"})
                continue
            # Same epoch: under one name, E5 ordering (the root decides first, then the rest).
            verdict = compare(token, {**known, "resource": resource})
            older = older or verdict in (Comparison.OLDER, Comparison.SUPER_LEASE)
        if older:
            raise Older({"status": "OLDER"})
        # Every overlapping token is now older than (or the same as) this one; those of names
        # this resource covers are checked against it from now on, so they can go.
        for name in [n for n in self._known if covers(resource, n)]:
            del self._known[name]
        self._known[resource] = dict(token)

    def accepts(self, token: Any) -> bool:
        """:meth:`check` as a boolean."""
        try:
            self.check(token)
        except LeaseError:
            return False
        return True


def _key(token: dict[str, Any]) -> tuple[int, list[int]]:
    # E5 order within an epoch is the lexicographic order of seq ([5] < [5, 0] < [5, 1] < [6]).
    return token["epoch"], token["seq"]


class _Wait:
    """A queued acquire: its outcome arrives as a push."""

    __slots__ = ("event", "outcome")

    def __init__(self) -> None:
        self.event = anyio.Event()
        self.outcome: dict[str, Any] | BaseException | None = None


class LeaseBook:
    """Live leases by lease id, queued acquires by request id, and the wallet."""

    def __init__(self) -> None:
        self.leases: dict[Any, Lease] = {}
        self.waits: dict[Any, _Wait] = {}
        self.wallet = LeaseWallet()
        #: Called when the number of held leases changes (the pinger adapts its interval).
        self.on_change: Callable[[], None] | None = None
        #: Runs a user callback outside the reader (the client's dispatcher).
        self.notify: Callable[..., None] = lambda fn, *args: None
        #: Called with a grant nobody waits for (its acquire was abandoned): give it back.
        self.orphan: Callable[[dict[str, Any]], None] = lambda grant: None

    @property
    def holding(self) -> bool:
        """Whether any lease is held."""
        return bool(self.leases)

    @property
    def count(self) -> int:
        """How many leases are held."""
        return len(self.leases)

    def add(self, lease: Lease) -> Lease:
        """Record a granted lease; a reentrant grant returns the lease already held."""
        held = self.leases.get(lease.lease_id)
        if held is not None:
            if lease.on_lost:
                held.on_lost.extend(lease.on_lost)
            return held
        self.leases[lease.lease_id] = lease
        self.wallet.record(lease.resource, "self_owner", lease.token)
        if self.on_change is not None:
            self.on_change()
        return lease

    def end(self, lease: Lease, reason: str) -> None:
        """End a lease without loss (returned by this client)."""
        if lease.ended_reason is not None:
            return
        lease.ended_reason = reason
        lease.ended_at = time.time()
        self._drop(lease)
        self.wallet.record(lease.resource, "unowned", lease.token)

    def lose(self, lease: Lease, reason: str, new_token: Any = None) -> None:
        """Mark a lease lost: set ``lost``, record the reason, queue ``on_lost`` callbacks."""
        if lease.ended_reason is not None:
            return
        lease.ended_reason = lease.lost_reason = reason
        lease.ended_at = time.time()
        self._drop(lease)
        lease.lost.set()
        if isinstance(new_token, dict):
            self.wallet.record(lease.resource, "other_owner", new_token)
        else:
            self.wallet.record(lease.resource, "revoked", lease.token)
        log.warning(
            "lease on %r lost: %s", lease.resource, lost_text(reason, lease.lost_by, lease.lost_why)
        )
        for callback in lease.on_lost:
            self.notify(callback, lease)

    def _drop(self, lease: Lease) -> None:
        if self.leases.get(lease.lease_id) is lease:
            del self.leases[lease.lease_id]
            if self.on_change is not None:
                self.on_change()

    # -- fed by the reader ---------------------------------------------------------------------

    def expect(self, request: Any) -> _Wait:
        """Register a queued acquire (called from the reader with the ``QUEUED`` reply)."""
        wait = self.waits.get(request)
        if wait is None:
            wait = self.waits[request] = _Wait()
        return wait

    def on_push(self, kind: str, body: Any) -> None:
        """Apply a lease push (``granted``, ``revoked`` or ``wait_ended``)."""
        if not isinstance(body, dict):
            log.warning("ignored a lease push that is not a map: %r", body)
            return
        if kind == "revoked":
            lease = self.leases.get(body.get("lease_id"))
            if lease is None:
                token = body.get("token")
                lease = next((x for x in self.leases.values() if x.token == token), None)
            if lease is not None:
                reason = body.get("reason")
                if reason == "returned":
                    self.end(lease, "returned")
                else:
                    by, why = body.get("by"), body.get("why")
                    lease.lost_by = dict(by) if isinstance(by, dict) else None
                    lease.lost_why = why if isinstance(why, str) else None
                    self.lose(lease, str(reason), body.get("new_token"))
            return
        wait = self.waits.pop(body.get("request"), None)
        if wait is None:
            grant = body.get("lease")
            if kind == "granted" and isinstance(grant, dict):
                self.orphan(grant)
            return
        if kind == "granted":
            grant = body.get("lease")
            wait.outcome = grant if isinstance(grant, dict) else {}
        else:
            wait.outcome = lease_error_for({"status": body.get("status", "TIMEOUT"), **body})
        wait.event.set()

    def link_lost(self) -> None:
        """The connection is gone: every lease is lost (``disconnected``), every wait fails."""
        for lease in list(self.leases.values()):
            self.lose(lease, "disconnected")
        waits, self.waits = self.waits, {}
        for wait in waits.values():
            wait.outcome = Disconnected("the connection was lost while waiting for a lease")
            wait.event.set()
