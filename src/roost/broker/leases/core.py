"""The lease table's machinery: records, the deadline heap, grants, ends and the queue.

Rules of this module:

- Everything here runs inside one synchronous step of :class:`~roost.broker.leases.table.LeaseTable`
  (between ``_begin`` and ``_finish``); effects are appended to ``self._fx`` in causal order.
- Deadlines (idle timeouts, ttls, wait deadlines) live in one heap with lazy invalidation: an
  entry whose subject moved on is dropped or pushed again at its real time when it surfaces.
- ``_advance`` ends what is due one instant at a time, then serves the queue at that instant,
  so the outcome does not depend on how late the sweeper runs.
- No I/O, no clock reads.
"""

from __future__ import annotations

import heapq
import itertools
import math
from collections.abc import Callable, Hashable, Iterable
from typing import Any, Final, TypeAlias

from roost.broker.leases import queries as q
from roost.broker.leases.types import (
    EXCLUSIVE,
    Audit,
    Close,
    ConnState,
    Declared,
    Effect,
    Event,
    Forget,
    HolderState,
    Identity,
    Lease,
    Push,
    Record,
    RootCounter,
    Waiter,
)
from roost.broker.leases.views import holder_entry, lease_object, shown_entry
from roost.protocol.tokens import (
    ancestors,
    make_token,
    meta_name,
    overlaps,
    resource_problem,
    unmeta_name,
    valid_resource,
)

__all__ = (
    "DEFAULT_MAX_LEASES",
    "DEFAULT_MAX_RESOURCES",
    "DEFAULT_MAX_WAITS",
    "DEFAULT_TTL_MAX",
    "Effects",
    "HolderStates",
    "Reply",
    "TableCore",
    "status",
)

DEFAULT_TTL_MAX: Final = 3600.0
DEFAULT_MAX_RESOURCES: Final = 10_000
#: Queued acquires one connection may have at once; one more gets ``WAIT_LIMIT``. Without a
#: bound, one client could grow the broker's memory (and every queue walk) without limit.
DEFAULT_MAX_WAITS: Final = 1000
#: Leases one connection may hold at once; one more gets ``RESOURCE_LIMIT`` (``max_leases``).
DEFAULT_MAX_LEASES: Final = 1000

_CONN: Final = 0
_TTL: Final = 1
_WAIT: Final = 2

Reply: TypeAlias = dict[str, Any]
Effects: TypeAlias = list[Effect]
HolderStates: TypeAlias = list[HolderState]


def status(status: str, **fields: Any) -> Reply:
    """A reply map: ``{"status": status, **fields}``."""
    return {"status": status, **fields}


class TableCore:
    """State and transitions shared by every :class:`~roost.broker.leases.table.LeaseTable` verb."""

    def __init__(
        self,
        epoch: int,
        *,
        roots: RootCounter | None = None,
        declared: Iterable[Declared] = (),
        max_resources: int = DEFAULT_MAX_RESOURCES,
        ttl_max: float = DEFAULT_TTL_MAX,
        max_waits: int = DEFAULT_MAX_WAITS,
        max_leases: int = DEFAULT_MAX_LEASES,
        wall_offset: float = 0.0,
        last_seen: Callable[[Hashable], float] | None = None,
        peer_of: Callable[[Hashable], Any] | None = None,
    ) -> None:
        self.epoch = epoch
        #: A token opens a guarded node only on its holder's connection (set when the broker
        #: has users or access rules: tokens are published, so they must not be credentials).
        self.bind_tokens = False
        #: The user of a connection, for sub-leases delegated to a user (auth_delegate).
        self.user_of: Callable[[Hashable], str] | None = None
        self._last_seen = last_seen
        self._peer_of = peer_of
        self.ttl_max = ttl_max
        self.max_resources = max_resources
        self.max_waits = max_waits
        self.max_leases = max_leases
        #: Records with no lease, no waiter and no declaration, least recently changed first:
        #: the ones forgotten when a new record needs room.
        self._idle: dict[str, None] = {}
        #: The highest root ever granted on a forgotten record (0: none forgotten). Floors of
        #: names without a record of their own never read lower, so no floor goes backwards.
        self.forgotten_floor = 0
        self.wall_offset = wall_offset
        self._roots = roots if roots is not None else RootCounter(1)
        self._conns: dict[Hashable, ConnState] = {}
        self._records: dict[str, Record] = {}
        self._below: dict[str, set[str]] = {}  # proper prefix -> managed names under it
        self._queue: dict[int, Waiter] = {}  # request -> waiter, in arrival order
        self._heap: list[tuple[float, int, int, Any]] = []
        self._seq = itertools.count()
        self._lease_ids = itertools.count(1)
        self._requests = itertools.count(1)
        self._arrivals = itertools.count(1)
        self._clock = float("-inf")
        self._fx: list[Effect] = []
        self._dirty: set[str] = set()
        self.last_granted_root = 0
        decl = list(declared)
        self._declared_only = bool(decl)
        for d in decl:
            if not valid_resource(d.name) or d.name in self._records or d.max_holders < 0:
                raise ValueError(f"bad or repeated declared resource {d.name!r}")
            rec = self._new_record(d.name)
            rec.declared, rec.max_holders, rec.takeable = True, d.max_holders, d.takeable

    def seen(self, c: ConnState) -> float:
        """When bytes last arrived from the connection (from ``last_seen`` when given)."""
        return c.last_seen if self._last_seen is None else self._last_seen(c.conn)

    def _begin(self, now: float) -> float:
        now = max(now, self._clock)
        self._clock = now
        self._advance(now)
        return now

    def _finish(self) -> Effects:
        idle = self._idle
        for name in sorted(self._dirty):
            rec = self._records.get(name)
            if rec is None:
                continue  # forgotten in this step
            idle.pop(name, None)
            if not (rec.active or rec.waiters or rec.declared):
                idle[name] = None  # most recently changed last
            value = q.holder_state(self, rec)
            if value != rec.published:
                rec.published = value
                self._fx.append(HolderState(name, value))
        self._dirty.clear()
        fx, self._fx = self._fx, []
        return fx

    def _mark(self, name: str, subtree: bool = False) -> None:
        self._dirty.add(name)
        if subtree:
            self._dirty.update(self._below.get(name, ()))

    def _reclaim(self) -> bool:
        """Forget the least recently changed idle record; False if there is none.

        Fencing stays monotonic: roots come from the broker-wide counter, so a later record of
        the same name only ever grants newer tokens, and ``forgotten_floor`` keeps its floor.
        """
        idle = self._idle
        while idle:
            name = next(iter(idle))
            del idle[name]
            rec = self._records.get(name)
            if rec is None or rec.active or rec.waiters or rec.declared:
                continue
            del self._records[name]
            for a in ancestors(name):
                below = self._below.get(a)
                if below is not None:
                    below.discard(name)
                    if not below:
                        del self._below[a]
            if rec.last_root is not None and rec.last_root > self.forgotten_floor:
                self.forgotten_floor = rec.last_root
            self._dirty.discard(name)
            self._fx.append(Forget(name))
            return True
        return False

    def _new_record(self, name: str) -> Record:
        rec = Record(name)
        self._records[name] = rec
        for a in ancestors(name):
            self._below.setdefault(a, set()).add(name)
        self._mark(name)
        return rec

    def _schedule(self, due: float, kind: int, obj: Any) -> None:
        heapq.heappush(self._heap, (due, next(self._seq), kind, obj))

    def _schedule_conn(self, c: ConnState) -> None:
        # An infinite timeout (a durable lock's holder) is never due.
        if 0 < c.timeout < math.inf and c.busy():
            due = self.seen(c) + c.timeout
            if c.due is None or due < c.due:
                c.due = due
                self._schedule(due, _CONN, c)

    def _actual_due(self, kind: int, obj: Any, entry_due: float) -> float | None:
        """When the entry's subject is really due, or None if it no longer matters."""
        if kind == _CONN:
            c: ConnState = obj
            if c.due != entry_due or self._conns.get(c.conn) is not c:
                return None
            if not c.busy() or c.timeout <= 0:
                c.due = None
                return None
            return self.seen(c) + c.timeout
        if kind == _TTL:
            lease: Lease = obj
            if not lease.active or lease.ttl is None or lease.ttl_due != entry_due:
                return None
            return lease.last_retain + lease.ttl
        w: Waiter = obj
        return w.deadline if w.waiting else None

    def _reschedule(self, kind: int, obj: Any, due: float) -> None:
        if kind == _CONN:
            obj.due = due
        elif kind == _TTL:
            obj.ttl_due = due
        self._schedule(due, kind, obj)

    def _advance(self, now: float) -> None:
        """End everything due at or before ``now``, one instant at a time, in time order."""
        heap = self._heap
        while heap and heap[0][0] <= now:
            t = heap[0][0]
            due: list[tuple[int, Any]] = []
            while heap and heap[0][0] <= t:
                entry_due, _, kind, obj = heapq.heappop(heap)
                actual = self._actual_due(kind, obj, entry_due)
                if actual is None:
                    continue
                if actual > entry_due:
                    self._reschedule(kind, obj, actual)
                    continue
                due.append((kind, obj))
            if not due:
                continue
            due.sort(key=lambda item: item[0])
            for kind, obj in due:
                if kind == _CONN:
                    cs: ConnState = obj
                    if self._conns.get(cs.conn) is cs:
                        self._drop_conn(cs, "timeout", t)
                        self._fx.append(Close(cs.conn, "timeout"))
                elif kind == _TTL:
                    if obj.active:
                        self._end(obj, "expired", t, push=True)
                elif obj.waiting:
                    self._drop_waiter(obj, "TIMEOUT", push=True)
            self._serve(t)

    def _drop_conn(self, c: ConnState, reason: str, now: float) -> None:
        del self._conns[c.conn]
        for lease in list(c.leases.values()):
            self._end(lease, reason, now, push=False)
        for w in list(c.waiters.values()):
            self._drop_waiter(w, reason, push=False)

    def resource_ok(self, resource: object) -> bool:
        """True if ``resource`` is a valid name and, with a declared list, a declared one."""
        return self.resource_problem(resource) is None

    def resource_problem(self, resource: object) -> str | None:
        """Why ``resource`` cannot be used here (the ``reason`` of ``INVALID_RESOURCE``), or
        ``None``: a bad name, an undeclared one while resources are declared, or a name whose
        ``/meta/leases`` path another managed resource already uses."""
        if not valid_resource(resource):
            return resource_problem(resource)
        assert isinstance(resource, str)
        if resource in self._records:
            return None
        if self._declared_only:
            return f"{resource!r} is not a declared resource"
        shown = meta_name(resource)
        other = shown if shown != resource else unmeta_name(resource)
        if other != resource and other in self._records:
            return f"{resource!r} and {other!r} would share /meta/leases/{shown}"
        return None

    def _make_lease(
        self,
        c: ConnState,
        rec: Record,
        mode: str,
        *,
        ttl: float | None,
        identity: Identity,
        now: float,
        request: int | None,
    ) -> Lease:
        root = self._roots.take()
        return Lease(
            lease_id=next(self._lease_ids),
            resource=rec.name,
            mode=mode,
            root=root,
            token=make_token(self.epoch, root, rec.name, identity.name),
            conn=c.conn,
            client=c.client,
            identity=identity,
            since=now + self.wall_offset,
            ttl=ttl,
            last_retain=now,
            request=request,
        )

    def _install(self, c: ConnState, rec: Record, lease: Lease, now: float, audit: bool) -> None:
        rec.active[lease.root] = lease
        rec.last_lease = lease
        c.leases[lease.lease_id] = lease
        self.last_granted_root = lease.root
        if lease.ttl is not None:
            lease.ttl_due = now + lease.ttl
            self._schedule(lease.ttl_due, _TTL, lease)
        self._schedule_conn(c)
        self._mark(rec.name, subtree=True)
        event: dict[str, Any] = {"event": "granted", "resource": rec.name, "token": lease.token}
        entry = shown_entry(lease)
        if entry is not None:
            event["holder"] = entry
        if lease.request is not None:
            event["request"] = lease.request
        self._fx.append(Event(rec.name, event))
        if audit:
            self._audit("granted", lease, now)

    def _grant(
        self,
        c: ConnState,
        rec: Record,
        mode: str,
        *,
        ttl: float | None,
        identity: Identity,
        now: float,
        request: int | None,
    ) -> Lease:
        lease = self._make_lease(c, rec, mode, ttl=ttl, identity=identity, now=now, request=request)
        self._install(c, rec, lease, now, audit=True)
        return lease

    def _end(
        self,
        lease: Lease,
        reason: str,
        now: float,
        *,
        push: bool,
        by: dict[str, Any] | None = None,
        new_token: dict[str, Any] | None = None,
        audit: bool = True,
        why: str | None = None,
    ) -> None:
        lease.end_reason = reason
        rec = self._records[lease.resource]
        del rec.active[lease.root]
        c = self._conns.get(lease.conn)
        if c is not None:
            c.leases.pop(lease.lease_id, None)
            for key in lease.keys:  # an ended outcome is never repeated: forget its keys
                if c.keys.get(key) is lease:
                    del c.keys[key]
        if push:
            body: dict[str, Any] = {
                "lease_id": lease.lease_id,
                "resource": lease.resource,
                "token": lease.token,
                "reason": reason,
            }
            if new_token is not None:
                if by is not None:
                    body["by"] = by
                body["new_token"] = new_token
            if why is not None:
                body["why"] = why
            self._fx.append(Push(lease.conn, "lease_revoked", body))
        self._mark(lease.resource, subtree=True)
        ended: dict[str, Any] = {"event": "ended", "resource": lease.resource, "token": lease.token}
        entry = shown_entry(lease)
        if entry is not None:
            ended["holder"] = entry
        ended["reason"] = reason
        self._fx.append(Event(lease.resource, ended))
        if audit:
            self._audit("ended", lease, now, reason=reason)

    def _audit_holder(self, lease: Lease) -> dict[str, Any]:
        entry = dict(holder_entry(lease))  # a copy: the shared entry must stay as published
        entry["peer"] = self._peer_of(lease.conn) if self._peer_of is not None else None
        return entry

    def _audit(self, event: str, lease: Lease, now: float, **extra: Any) -> None:
        record = {
            "event": event,
            "resource": lease.resource,
            "holder": self._audit_holder(lease),
            "token": lease.token,
            "mono": now,
            "wall": now + self.wall_offset,
            **extra,
        }
        self._fx.append(Audit(record))

    def _bind_key(self, c: ConnState, key: str, lease: Lease) -> None:
        c.keys[key] = lease
        if key not in lease.keys:
            lease.keys.append(key)

    def _drop_waiter(self, w: Waiter, status: str, *, push: bool) -> None:
        """End a wait without a grant; ``status`` is the push status or the close reason."""
        w.outcome = status
        del self._queue[w.request]
        del self._records[w.resource].waiters[w.request]
        c = self._conns.get(w.conn)
        if c is not None:
            c.waiters.pop(w.request, None)
            if w.key is not None and c.keys.get(w.key) is w:
                del c.keys[w.key]
        if push:
            self._fx.append(
                Push(w.conn, "lease_wait_ended", {"request": w.request, "status": status})
            )
        self._mark(w.resource)
        self._fx.append(
            Event(
                w.resource,
                {
                    "event": "dequeued",
                    "resource": w.resource,
                    "request": w.request,
                    "status": status,
                },
            )
        )

    def _overlapping_records(self, name: str) -> list[Record]:
        recs = self._records
        out = [recs[a] for a in ancestors(name) if a in recs]
        if name in recs:
            out.append(recs[name])
        out.extend(recs[d] for d in self._below.get(name, ()))
        return out

    def _overlapping_leases(self, name: str) -> list[Lease]:
        out = [x for rec in self._overlapping_records(name) for x in rec.active.values()]
        out.sort(key=lambda x: x.root)
        return out

    def covering_leases(self, name: str) -> list[Lease]:
        """Active leases on ``name`` or an ancestor, oldest grant first."""
        recs = self._records
        out = [x for a in ancestors(name) if a in recs for x in recs[a].active.values()]
        if name in recs:
            out.extend(recs[name].active.values())
        out.sort(key=lambda x: x.root)
        return out

    def _conflicts(self, name: str, mode: str) -> list[Lease]:
        """The active leases a request on ``name`` in ``mode`` cannot coexist with."""
        over = self._overlapping_leases(name)
        if mode == EXCLUSIVE or not over:
            return over
        blocking = [x for x in over if x.mode == EXCLUSIVE]
        if blocking:
            return blocking
        for d in (name, *self._below.get(name, ())):
            rec = self._records.get(d)
            if rec is not None and rec.max_holders > 0:
                cov = self.covering_leases(d)
                if len(cov) >= rec.max_holders:
                    return cov
        return []

    def _held_back(self, name: str, mode: str, arrival: int | None) -> bool:
        """True if an earlier waiting request overlaps ``name`` and either is exclusive."""
        for w in self._queue.values():
            if arrival is not None and w.arrival >= arrival:
                break
            if EXCLUSIVE in (mode, w.mode) and overlaps(w.resource, name):
                return True
        return False

    def _serve(self, now: float) -> None:
        """Grant, in arrival order, every waiting request that has become grantable."""
        if not self._queue:
            return
        pending: dict[str, bool] = {}  # resource of a still-waiting earlier request -> exclusive?
        for w in list(self._queue.values()):
            if self._blocked_by(pending, w):
                pending[w.resource] = pending.get(w.resource, False) or w.mode == EXCLUSIVE
                continue
            c = self._conns[w.conn]
            alive = c.timeout > 0 and now < self.seen(c) + c.timeout
            deadline_ok = w.deadline is None or now < w.deadline
            if not alive or not deadline_ok or self._conflicts(w.resource, w.mode):
                pending[w.resource] = pending.get(w.resource, False) or w.mode == EXCLUSIVE
                continue
            w.outcome = "granted"
            del self._queue[w.request]
            rec = self._records[w.resource]
            del rec.waiters[w.request]
            del c.waiters[w.request]
            self._mark(w.resource)
            lease = self._grant(
                c, rec, w.mode, ttl=w.ttl, identity=w.identity, now=now, request=w.request
            )
            if w.key is not None:
                self._bind_key(c, w.key, lease)
            self._fx.append(
                Push(w.conn, "lease_granted", {"request": w.request, "lease": lease_object(lease)})
            )

    @staticmethod
    def _blocked_by(pending: dict[str, bool], w: Waiter) -> bool:
        if not pending:
            return False
        exclusive = w.mode == EXCLUSIVE
        name = w.resource
        same = pending.get(name)
        if same is not None and (exclusive or same):
            return True  # the common case: an earlier waiter on the very same resource
        for other, other_excl in pending.items():
            if (exclusive or other_excl) and overlaps(other, name):
                return True
        return False

    def next_deadline(self) -> float | None:
        """The earliest time at which something may be due (a hint: :meth:`tick` at that time
        may find nothing to do), or ``None`` if nothing is scheduled."""
        heap = self._heap
        while heap:
            entry_due, _, kind, obj = heap[0]
            actual = self._actual_due(kind, obj, entry_due)
            if actual is None:
                heapq.heappop(heap)
            elif actual > entry_due:
                heapq.heappop(heap)
                self._reschedule(kind, obj, actual)
            else:
                return entry_due
        return None
