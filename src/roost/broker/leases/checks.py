"""The lease table's invariants (docs/explanation/leases.md), asserted on its live structures.

Rules of this module:

- For tests and debugging: O(leases + waiters + records), never called on a hot path.
- Every check raises ``AssertionError`` with a message naming the invariant.
- It reads the table; the only thing it writes is each record's ``floor_seen`` (to check that
  floors never drop between calls).
"""

from __future__ import annotations

from roost.broker.leases import queries as q
from roost.broker.leases.types import EXCLUSIVE, Lease, TableView
from roost.protocol.tokens import overlaps

__all__ = ("check_invariants",)


def _check(cond: bool, message: str) -> None:
    if not cond:
        raise AssertionError(message)


def check_invariants(table: TableView) -> None:
    """Assert invariants 1-4, 7, 8 and 14 of docs/explanation/leases.md and index consistency."""
    now = table._clock
    active = [x for rec in table._records.values() for x in rec.active.values()]
    ids = [x.lease_id for x in active]
    _check(len(ids) == len(set(ids)), "14: two active leases share a lease_id")
    for x in active:
        _check(x.active, f"7: lease {x.lease_id} in a record but ended")
        _check(x.root < table._roots.peek, "3: an active root was never handed out")
        cov = table.covering_leases(x.resource)
        excl = [y for y in cov if y.mode == EXCLUSIVE]
        _check(len(excl) <= 1, f"1: two exclusive leases cover {x.resource}")
        _check(not excl or len(cov) == 1, f"1: exclusive and other leases cover {x.resource}")
        c = table._conns.get(x.conn)
        _check(c is not None, f"4: lease {x.lease_id} of a closed connection")
        assert c is not None
        _check(c.leases.get(x.lease_id) is x, "index: connection does not list its lease")
        _check(c.timeout > 0, f"4: lease {x.lease_id} on a connection without timeout")
        _check(table.seen(c) + c.timeout > now, f"4: lease {x.lease_id} of a timed-out holder")
        if x.ttl is not None:
            _check(x.last_retain + x.ttl > now, f"4: lease {x.lease_id} past its ttl")
    for c in table._conns.values():
        _check(len(c.waiters) <= table.max_waits, "limit: a connection has over max_waits waits")
        for lid, x in c.leases.items():
            _check(x.active and x.lease_id == lid, "index: connection lists an ended lease")
        for req, w in c.waiters.items():
            _check(table._queue.get(req) is w, "index: connection lists a dead wait")
        for key, outcome in c.keys.items():
            current = outcome.active if isinstance(outcome, Lease) else outcome.waiting
            _check(current, f"index: key {key!r} names an outcome that is over")
    for rec in table._records.values():
        if rec.max_holders > 0:
            n = len(table.covering_leases(rec.name))
            _check(n <= rec.max_holders, f"2: {n} leases cover {rec.name} (max {rec.max_holders})")
        f = q.floor(table, rec.name)
        if rec.floor_seen is not None:
            _check(f is not None and f >= rec.floor_seen, f"3: floor of {rec.name} dropped")
        rec.floor_seen = f
        for req, w in rec.waiters.items():
            _check(table._queue.get(req) is w, "index: record lists a dead wait")
    arrivals = [w.arrival for w in table._queue.values()]
    _check(arrivals == sorted(arrivals), "8: queue out of arrival order")
    pending: list[tuple[str, str]] = []
    for w in table._queue.values():
        _check(w.waiting, "8: an ended wait is queued")
        c = table._conns.get(w.conn)
        _check(c is not None, f"4: wait {w.request} of a closed connection")
        assert c is not None
        _check(c.timeout > 0 and table.seen(c) + c.timeout > now, f"4: wait {w.request} dead")
        _check(w.deadline is None or w.deadline > now, f"8: wait {w.request} past its deadline")
        _check(table._records[w.resource].waiters.get(w.request) is w, "index: record wait")
        held_back = any(
            EXCLUSIVE in (w.mode, mode) and overlaps(name, w.resource) for name, mode in pending
        )
        if not held_back:
            _check(
                bool(table._conflicts(w.resource, w.mode)),
                f"8: wait {w.request} on {w.resource} is grantable but waits",
            )
        pending.append((w.resource, w.mode))
