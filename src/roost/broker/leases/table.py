"""The lease table: who holds which resource, who waits, and every transition (protocol.md E4-E9).

Rules of this module:

- Pure and synchronous: no I/O, no clock reads, no logging, no ``await``. Every public method
  takes ``now`` (monotonic seconds, never decreasing; a smaller value is treated as the last one)
  and returns ``(result, effects)``: the reply map (or ``None``) and the effects to apply, in
  causal order, before the reply is sent.
- Client mistakes never raise: they come back as a reply map with an upper-case lease
  ``status`` (or an ESHET one such as ``bad_args``), and nothing changes.
- Every call first ends what is due at ``now``, in time order (lazy expiry), so a late sweeper
  never lets a dead lease act or a dead waiter win.
- Revocations come before the grants they enable; one ``HolderState`` per changed resource last.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable
from itertools import islice
from typing import Any, Final

from roost.broker.leases import queries as q
from roost.broker.leases.checks import check_invariants
from roost.broker.leases.core import (
    _WAIT,
    DEFAULT_MAX_RESOURCES,
    DEFAULT_MAX_WAITS,
    DEFAULT_TTL_MAX,
    Effects,
    HolderStates,
    Reply,
    TableCore,
    status,
)
from roost.broker.leases.types import (
    EXCLUSIVE,
    MODES,
    Audit,
    Close,
    ConnState,
    Event,
    HolderState,
    Identity,
    Lease,
    Waiter,
)
from roost.broker.leases.views import holder_entry, lease_object, shown_entry, waiter_entry
from roost.protocol.tokens import overlaps, resource_problem, sublease, valid_resource

__all__ = ("DEFAULT_MAX_RESOURCES", "DEFAULT_MAX_WAITS", "DEFAULT_TTL_MAX", "LeaseTable")

_NO_IDENTITY: Final = Identity()


def _number(x: object) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool)


def _bad_acquire_args(mode: object, wait: object, key: object) -> str | None:
    """What is wrong with these acquire arguments (callers that skip the wire parser), if any."""
    if not isinstance(mode, str) or mode not in MODES:
        return "mode must be 'exclusive' or 'shared'"
    if not _number(wait) or wait != wait:  # noqa: PLR0124 (NaN never equals itself)
        return "wait must be a number"
    if key is not None and not isinstance(key, str):
        return "key must be a str"
    return None


_status = status


class LeaseTable(TableCore):
    """Leases, waiters and resource records of one broker run (one epoch).

    Args:
        epoch: this run's epoch (protocol.md E4).
        roots: where roots come from; default a counter from 1 without persistence.
        declared: declared resources; when given, every other name is ``INVALID_RESOURCE``.
        max_resources: most resource records; a new one first makes room by forgetting the
            least recently changed record without holder, waiter or declaration, and gets
            ``RESOURCE_LIMIT`` only when every record is in use.
        ttl_max: largest ``ttl`` accepted, seconds.
        max_waits: most queued acquires per connection; one more gets ``WAIT_LIMIT``.
        max_leases: most leases one connection holds; one more gets ``RESOURCE_LIMIT``.
        wall_offset: added to ``now`` for the wall-clock ``since`` shown to people.
        last_seen: where to read when bytes last arrived from a connection (the server knows);
            without it, :meth:`touch` records that.
        peer_of: the network peer of a connection, written as ``peer`` into the holder entries
            of audit records (``None`` without it).

    Raises:
        ValueError: a declared name is invalid or repeated.

    Connections are opaque hashable keys; a connection is known between :meth:`connect` (its
    hello) and :meth:`disconnect`.
    """

    def tick(self, now: float) -> tuple[None, Effects]:
        """End what is due at ``now`` (idle timeouts, ttl lapses, wait deadlines)."""
        self._begin(now)
        return None, self._finish()

    # -- connections ---------------------------------------------------------------------------

    def connect(
        self, conn: Hashable, client: Any, timeout: float, now: float
    ) -> tuple[None, Effects]:
        """A connection completed its first hello with ``client`` id and idle ``timeout`` (0 =
        none). A known connection is treated as :meth:`rehello`."""
        if conn in self._conns:
            return self.rehello(conn, timeout, now, client=client)
        now = self._begin(now)
        self._conns[conn] = ConnState(conn, client, timeout, now)
        return None, self._finish()

    def touch(self, conn: Hashable, now: float) -> tuple[None, Effects]:
        """Bytes arrived from ``conn`` at ``now``: its idle timer restarts. If the timer had
        already run out, the connection's leases end first (``timeout``) and a ``Close``
        effect asks the server to close it."""
        now = self._begin(now)
        c = self._conns.get(conn)
        if c is not None:
            c.last_seen = now
        return None, self._finish()

    def rehello(
        self, conn: Hashable, timeout: float, now: float, *, client: Any = None
    ) -> tuple[None, Effects]:
        """A later hello on ``conn`` set a new idle ``timeout`` (and ``client`` id if given).

        Timeout 0: every lease ends ``timeout_required`` (pushed) and every wait ends with
        ``lease_wait_ended`` ``TIMEOUT_REQUIRED``; the queue is then served.
        """
        now = self._begin(now)
        c = self._conns.get(conn)
        if c is None:
            return None, self._finish()
        c.last_seen = now
        c.timeout = timeout
        if client is not None:
            c.client = client
        if timeout <= 0:
            for lease in list(c.leases.values()):
                self._end(lease, "timeout_required", now, push=True)
            for w in list(c.waiters.values()):
                self._drop_waiter(w, "TIMEOUT_REQUIRED", push=True)
            self._serve(now)
        else:
            self._schedule_conn(c)
        return None, self._finish()

    def disconnect(self, conn: Hashable, reason: str, now: float) -> tuple[None, Effects]:
        """``conn`` closed: its leases end with ``reason`` (``disconnected`` or ``timeout``;
        nothing is pushed), its waits vanish (a ``dequeued`` event says so), the queue is served.
        Unknown connections are ignored."""
        now = self._begin(now)
        c = self._conns.get(conn)
        if c is not None:
            self._drop_conn(c, reason, now)
            self._serve(now)
        return None, self._finish()

    def disconnect_part(
        self, conn: Hashable, reason: str, now: float, count: int
    ) -> tuple[bool, Effects]:
        """:meth:`disconnect` in parts, for a connection holding many leases: each call ends
        up to ``count`` of its leases (its waits vanish with the first call) and serves the
        queue; the call that ends its last lease forgets it. True once that is done."""
        now = self._begin(now)
        c = self._conns.get(conn)
        done = True
        if c is not None:
            for w in list(c.waiters.values()):
                self._drop_waiter(w, reason, push=False)
            if len(c.leases) > count:
                for lease in list(islice(c.leases.values(), count)):
                    self._end(lease, reason, now, push=False)
                done = False
            else:
                self._drop_conn(c, reason, now)
            self._serve(now)
        return done, self._finish()

    def delegate(
        self, conn: Hashable, token: object, user: str, now: float
    ) -> tuple[Reply, Effects]:
        """A sub-lease of the lease ``token`` names for ``user`` (auth_delegate): ``OK`` +
        ``token`` (``seq`` extended by a number of its own, ``user`` added to
        ``client_names``), which guarded nodes accept from that user's connections while the
        lease lasts; or the refusal of :meth:`return_lease` (only the holder delegates)."""
        now = self._begin(now)
        reply, lease = q.holder_use(self, conn, token)
        if lease is not None:
            sub = sublease(lease.token, user)
            sub["seq"][-1] = len(lease.delegates) + 1
            lease.delegates[tuple(sub["seq"])] = user
            reply = {"status": "OK", "token": sub}
        return reply, self._finish()

    def revoke(
        self, conn: Hashable, keep: Callable[[str], bool], reason: str, now: float
    ) -> tuple[list[str], Effects]:
        """End every lease of ``conn`` on a resource ``keep`` refuses (access rules changed):
        the holder is pushed ``lease_revoked`` with ``reason``, the queue is served. Returns
        the resources of the leases ended."""
        now = self._begin(now)
        c = self._conns.get(conn)
        ended: list[str] = []
        for lease in list(c.leases.values()) if c is not None else ():
            if not keep(lease.resource):
                self._end(lease, reason, now, push=True)
                ended.append(lease.resource)
        if ended:
            self._serve(now)
        return ended, self._finish()

    def shutdown(self, now: float) -> tuple[None, Effects]:
        """Graceful stop: every lease ends ``restart`` and its holder is pushed
        ``lease_revoked``; waits vanish. Nothing is granted afterwards in this step."""
        now = self._begin(now)
        for rec in list(self._records.values()):
            for lease in list(rec.active.values()):
                self._end(lease, "restart", now, push=True)
        for w in list(self._queue.values()):
            self._drop_waiter(w, "restart", push=False)
        return None, self._finish()

    # -- acquire, take ---------------------------------------------------------------------------

    def _check_request(
        self,
        c: ConnState | None,
        resource: object,
        ttl: float | None,
        identity: Identity,
        now: float,
    ) -> Reply | None:
        if c is None:
            return _status("unregistered")
        if c.timeout > 0 and now >= self.seen(c) + c.timeout:
            # Its idle timer ran out before this request was seen: the connection is over.
            self._drop_conn(c, "timeout", now)
            self._fx.append(Close(c.conn, "timeout"))
            self._serve(now)
            return _status("unregistered")
        if ttl is not None and (not _number(ttl) or not 0 < ttl <= self.ttl_max):
            return _status("bad_args", reason=f"ttl must be > 0 and at most {self.ttl_max}")
        if identity.too_long():
            return _status("bad_args", reason="name, user, host or note too long")
        problem = self.resource_problem(resource)
        if problem is not None:
            return _status("INVALID_RESOURCE", reason=problem)
        if c.timeout <= 0:
            return _status("TIMEOUT_REQUIRED")
        if len(c.leases) >= self.max_leases:
            return _status("RESOURCE_LIMIT", limit="max_leases", max_leases=self.max_leases)
        if (
            resource not in self._records
            and len(self._records) >= self.max_resources
            and not self._reclaim()
        ):
            return _status("RESOURCE_LIMIT", limit="max_resources")
        return None

    def acquire(
        self,
        conn: Hashable,
        resource: str,
        now: float,
        *,
        mode: str = EXCLUSIVE,
        wait: float = 0.0,
        ttl: float | None = None,
        identity: Identity = _NO_IDENTITY,
        key: str | None = None,
    ) -> tuple[Reply, Effects]:
        """Acquire ``resource`` for ``conn`` (protocol.md E7 lease_acquire, outcomes in order).

        Returns:
            ``OK`` + ``lease``; ``QUEUED`` + ``request``, ``position``, ``holders`` (the
            outcome follows as a push: granted, or wait ended ``TIMEOUT`` / ``CANCELLED`` /
            ``TIMEOUT_REQUIRED``; nothing if the connection closes first);
            ``ALREADY_CLAIMED`` + ``holders``, ``waiters``; ``WAIT_LIMIT`` + ``max_waits``
            (it would queue, but the connection already has ``max_waits`` queued acquires;
            nothing is queued); or ``unregistered``, ``bad_args``, ``INVALID_RESOURCE``,
            ``TIMEOUT_REQUIRED``, ``RESOURCE_LIMIT``.
        """
        now = self._begin(now)
        reply = self._acquire(
            conn, resource, now, mode=mode, wait=wait, ttl=ttl, identity=identity, key=key
        )
        return reply, self._finish()

    def _acquire(
        self,
        conn: Hashable,
        resource: str,
        now: float,
        *,
        mode: str,
        wait: float,
        ttl: float | None,
        identity: Identity,
        key: str | None,
    ) -> Reply:
        c = self._conns.get(conn)
        if c is not None:
            problem = _bad_acquire_args(mode, wait, key)
            if problem is not None:
                return _status("bad_args", reason=problem)
        err = self._check_request(c, resource, ttl, identity, now)
        if err is not None:
            return err
        assert c is not None
        rec = self._records.get(resource) or self._new_record(resource)
        if key is not None:
            prev = c.keys.get(key)
            if isinstance(prev, Lease) and prev.active:
                return _status("OK", lease=lease_object(prev))
            if isinstance(prev, Waiter) and prev.waiting:
                return self._queued_reply(prev)
        # The connection's own overlapping lease, found through the resource's records: the
        # cost does not grow with how many other leases it holds.
        mine = c.conn
        for other in self._overlapping_records(resource):
            for lease in other.active.values():
                if lease.conn != mine:
                    continue
                if lease.resource == resource and lease.mode == mode:
                    if key is not None:
                        self._bind_key(c, key, lease)
                    return _status("OK", lease=lease_object(lease))
                return self._claimed(resource, mode)
        if not self._conflicts(resource, mode) and not self._held_back(resource, mode, None):
            lease = self._grant(c, rec, mode, ttl=ttl, identity=identity, now=now, request=None)
            if key is not None:
                self._bind_key(c, key, lease)
            return _status("OK", lease=lease_object(lease))
        if wait == 0:
            return self._claimed(resource, mode)
        if len(c.waiters) >= self.max_waits:
            return _status("WAIT_LIMIT", max_waits=self.max_waits)
        w = Waiter(
            request=next(self._requests),
            conn=conn,
            resource=resource,
            mode=mode,
            arrival=next(self._arrivals),
            deadline=now + wait if wait > 0 else None,
            identity=identity,
            ttl=ttl,
            key=key,
            since=now + self.wall_offset,
        )
        self._queue[w.request] = w
        rec.waiters[w.request] = w
        c.waiters[w.request] = w
        if key is not None:
            c.keys[key] = w  # the wait's own key; a stale binding to an ended outcome is replaced
        if w.deadline is not None:
            self._schedule(w.deadline, _WAIT, w)
        self._schedule_conn(c)
        self._mark(resource)
        self._fx.append(
            Event(
                resource,
                {
                    "event": "queued",
                    "resource": resource,
                    "request": w.request,
                    "holder": waiter_entry(w, self.wall_offset),
                },
            )
        )
        return self._queued_reply(w)

    def _queued_reply(self, w: Waiter) -> Reply:
        position = 1 + sum(
            1
            for other in self._queue.values()
            if other.arrival < w.arrival and overlaps(other.resource, w.resource)
        )
        holders = [holder_entry(x) for x in self._overlapping_leases(w.resource)]
        return q.fit_reply(_status("QUEUED", request=w.request, position=position, holders=holders))

    def _claimed(self, resource: str, mode: str) -> Reply:
        leases = self._conflicts(resource, mode) or self._overlapping_leases(resource)
        waiters = sum(1 for w in self._queue.values() if overlaps(w.resource, resource))
        holders = [holder_entry(x) for x in leases]
        return q.fit_reply(_status("ALREADY_CLAIMED", holders=holders, waiters=waiters))

    def take(
        self,
        conn: Hashable,
        resource: str,
        reason: str,
        now: float,
        *,
        ttl: float | None = None,
        identity: Identity = _NO_IDENTITY,
    ) -> tuple[Reply, Effects]:
        """Take ``resource`` by force for ``conn`` (protocol.md E7 lease_take).

        Every active lease overlapping it ends ``taken`` (each holder pushed ``lease_revoked``
        with ``by`` and ``new_token``), the taker gets a lease with the next root, one audit
        line records it all, and the queue is served. Waiters keep their places.

        Returns:
            ``OK`` + ``lease``, or ``unregistered``, ``bad_args`` (empty ``reason``),
            ``INVALID_RESOURCE``, ``TIMEOUT_REQUIRED``, ``RESOURCE_LIMIT``, ``NOT_PERMITTED``
            (the resource, or one whose lease it would end, is declared not takeable).
        """
        now = self._begin(now)
        reply = self._take(conn, resource, reason, now, ttl=ttl, identity=identity)
        return reply, self._finish()

    def _take(
        self,
        conn: Hashable,
        resource: str,
        reason: str,
        now: float,
        *,
        ttl: float | None,
        identity: Identity,
    ) -> Reply:
        c = self._conns.get(conn)
        if c is not None and (not isinstance(reason, str) or not reason):
            return _status("bad_args", reason="a take needs a non-empty reason")
        err = self._check_request(c, resource, ttl, identity, now)
        if err is not None:
            return err
        assert c is not None
        displaced = self._overlapping_leases(resource)
        existing = self._records.get(resource)
        if (existing is not None and not existing.takeable) or any(
            not self._records[x.resource].takeable for x in displaced
        ):
            return _status("NOT_PERMITTED")
        rec = existing or self._new_record(resource)
        lease = self._make_lease(
            c, rec, EXCLUSIVE, ttl=ttl, identity=identity, now=now, request=None
        )
        by = shown_entry(lease)
        for old in displaced:
            self._end(
                old, "taken", now, push=True, by=by, new_token=lease.token, audit=False, why=reason
            )
        self._install(c, rec, lease, now, audit=False)
        self._fx.append(
            Audit(
                {
                    "event": "taken",
                    "resource": resource,
                    "reason": reason,
                    "by": self._audit_holder(lease),
                    "token": lease.token,
                    "displaced": [self._audit_holder(x) for x in displaced],
                    "mono": now,
                    "wall": now + self.wall_offset,
                }
            )
        )
        self._serve(now)
        return _status("OK", lease=lease_object(lease))

    # -- token uses --------------------------------------------------------------------------------

    def return_lease(self, conn: Hashable, token: object, now: float) -> tuple[Reply, Effects]:
        """Return the lease ``token`` names (protocol.md E7 lease_return).

        Returns:
            ``OK`` after the holder was pushed ``lease_revoked`` (``returned``) and the queue
            served; else the token's use status (``REVOKED`` with ``reason``, ``OLDER``...) or
            ``NOT_HOLDER`` for another connection, with ``holders``; nothing changes then.
        """
        now = self._begin(now)
        reply, lease = q.holder_use(self, conn, token)
        if lease is not None:
            self._end(lease, "returned", now, push=True)
            self._serve(now)
        return reply, self._finish()

    def retain(self, conn: Hashable, token: object, now: float) -> tuple[Reply, Effects]:
        """Restart the ttl clock of the lease ``token`` names (protocol.md E7 lease_retain).

        Returns:
            ``OK`` + ``ttl_left`` (nil without ttl), or the error as for :meth:`return_lease`.
        """
        now = self._begin(now)
        reply, lease = q.holder_use(self, conn, token)
        if lease is not None:
            lease.last_retain = now
            reply["ttl_left"] = lease.ttl
        return reply, self._finish()

    def validate(
        self, token: object, now: float, resource: str | None = None
    ) -> tuple[Reply, Effects]:
        """The use status of ``token`` against ``resource`` (default its own), with the current
        ``holders`` of that resource. Changes nothing (beyond lazy expiry)."""
        self._begin(now)
        return q.validate(self, token, resource), self._finish()

    def check_guard(
        self, conn: Hashable, guard: str, token: object | None, now: float
    ) -> tuple[Reply, Effects]:
        """Decide a call or set to a node guarded by resource ``guard``.

        With ``token`` ``None`` (a plain call): ``OK`` + ``token`` of the connection's newest
        active lease covering ``guard``, else ``NO_LEASE``. With a token (``lease_call`` /
        ``lease_set``): its use status against ``guard``; ``OK`` + the given ``token``.
        """
        self._begin(now)
        return q.guard_decision(self, conn, guard, token), self._finish()

    def cancel(self, conn: Hashable, request: object, now: float) -> tuple[Reply, Effects]:
        """Cancel a queued wait of ``conn``: ``lease_wait_ended`` ``CANCELLED`` is pushed, then
        ``OK``; ``NOT_WAITING`` if it is not a queued wait of this connection (also when it
        lost the race with its grant)."""
        now = self._begin(now)
        w = self._queue.get(request) if isinstance(request, int) else None
        if w is None or w.conn != conn:
            return _status("NOT_WAITING"), self._finish()
        self._drop_waiter(w, "CANCELLED", push=True)
        self._serve(now)
        return _status("OK"), self._finish()

    # -- queries -----------------------------------------------------------------------------------

    def info(self, resource: str, now: float) -> tuple[Reply, Effects]:
        """``OK`` + ``info`` of ``resource`` (a valid name without a record reads as free), or
        ``INVALID_RESOURCE``."""
        self._begin(now)
        problem = self.resource_problem(resource)
        if problem is not None:
            return _status("INVALID_RESOURCE", reason=problem), self._finish()
        return q.fit_reply(_status("OK", info=q.info(self, resource))), self._finish()

    def list(self, now: float, prefix: object = "", after: object = None) -> tuple[Reply, Effects]:
        """``OK`` + ``resources`` (the info of each resource at or below ``prefix`` with holders
        or waiters, in name order, after ``after``) + ``more`` (true when cut to fit a frame);
        ``INVALID_RESOURCE`` for a bad prefix."""
        self._begin(now)
        if not isinstance(prefix, str) or (prefix != "" and not valid_resource(prefix)):
            return _status("INVALID_RESOURCE", reason=resource_problem(prefix)), self._finish()
        if after is not None and not isinstance(after, str):
            return _status("bad_args", reason="after must be a str"), self._finish()
        return q.listing(self, prefix, after), self._finish()

    def held_by(self, conn: Hashable) -> int:
        """How many active leases ``conn`` holds."""
        c = self._conns.get(conn)
        return len(c.leases) if c is not None else 0

    def holder_states(self) -> HolderStates:
        """The current holder state of every managed resource (for publishing at start-up)."""
        out: HolderStates = []
        for name in sorted(self._records):
            rec = self._records[name]
            rec.published = q.holder_state(self, rec)
            out.append(HolderState(name, rec.published))
        return out

    def check_invariants(self) -> None:
        """Assert the invariants of docs/explanation/leases.md on the live structures (for tests).

        Raises:
            AssertionError: an invariant does not hold.
        """
        check_invariants(self)
