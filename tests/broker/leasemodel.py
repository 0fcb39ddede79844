"""A naive model of the lease table (protocol.md E4-E9), for the stateful test to compare with.

Everything is a list or a dict and every question is a full scan; nothing is shared with the
implementation except the token helpers (which have their own tests).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from roost.protocol.tokens import covers, is_valid_token, overlaps

__all__ = ("MConn", "MLease", "MWait", "Model")

EX = "exclusive"


@dataclass
class MConn:
    """A connection as the model sees it."""

    name: str
    timeout: float
    last_seen: float
    alive: bool = True
    keys: dict[str, Any] = field(default_factory=dict)


@dataclass
class MLease:
    """A grant."""

    lid: int
    conn: str
    resource: str
    mode: str
    root: int
    ttl: float | None
    last_retain: float
    ended: str | None = None


@dataclass
class MWait:
    """A queued request."""

    req: int
    conn: str
    resource: str
    mode: str
    deadline: float | None
    ttl: float | None
    key: str | None
    done: str | None = None


@dataclass
class MRecord:
    """A managed resource."""

    max_holders: int = 0
    takeable: bool = True
    last: MLease | None = None


class Model:
    """The naive model. ``pushes`` collects ``(conn, kind, detail)`` of the current step."""

    def __init__(self, epoch: int, first_root: int, declared: dict[str, tuple[int, bool]]) -> None:
        self.epoch = epoch
        self.next_root = first_root
        self.next_lid = 1
        self.next_req = 1
        self.now = 0.0
        self.conns: dict[str, MConn] = {}
        self.leases: list[MLease] = []
        self.waits: list[MWait] = []
        self.records: dict[str, MRecord] = {
            name: MRecord(k, t) for name, (k, t) in declared.items()
        }
        self.declared_only = bool(declared)
        self.pushes: list[tuple[str, str, Any]] = []

    # -- queries -----------------------------------------------------------------------------

    def active(self) -> list[MLease]:
        return [x for x in self.leases if x.ended is None]

    def waiting(self) -> list[MWait]:
        return [w for w in self.waits if w.done is None]

    def covering(self, r: str) -> list[MLease]:
        return sorted((x for x in self.active() if covers(x.resource, r)), key=lambda x: x.root)

    def busy(self, c: MConn) -> bool:
        return any(x.conn == c.name for x in self.active()) or any(
            w.conn == c.name for w in self.waiting()
        )

    def compatible(self, r: str, mode: str) -> bool:
        over = [x for x in self.active() if overlaps(x.resource, r)]
        if mode == EX:
            return not over
        if any(x.mode == EX for x in over):
            return False
        for name, rec in self.records.items():
            if (
                covers(r, name)
                and rec.max_holders > 0
                and len(self.covering(name)) >= rec.max_holders
            ):
                return False
        return True

    def newest(self, r: str) -> int | None:
        roots = [rec.last.root for n, rec in self.records.items() if rec.last and overlaps(n, r)]
        return max(roots) if roots else None

    def floor(self, r: str) -> int | None:
        cov = self.covering(r)
        if cov:
            return cov[0].root
        roots = [rec.last.root for n, rec in self.records.items() if rec.last and covers(n, r)]
        return max(roots) if roots else None

    def use_status(self, t: Any, against: str | None = None) -> tuple[str, str | None]:
        if not is_valid_token(t):
            return "INVALID_LEASE", None
        res = t["resource"]
        r = res if against is None else against
        if res not in self.records or not covers(res, r):
            return "UNMANAGED", None
        if t["epoch"] != self.epoch:
            return "WRONG_EPOCH", None
        root = t["seq"][0]
        top = self.newest(res)
        if top is None or root > top:
            return "INVALID_LEASE", None
        if any(x.resource == res and x.root == root for x in self.active()):
            return "OK", None
        if root < top:
            return "OLDER", None
        last = self.records[res].last
        if last is not None and last.root == root:
            return "REVOKED", last.ended
        return "INVALID_LEASE", None

    # -- transitions ---------------------------------------------------------------------------

    def grant(self, conn: str, r: str, mode: str, ttl: float | None, now: float) -> MLease:
        lease = MLease(self.next_lid, conn, r, mode, self.next_root, ttl, now)
        self.next_lid += 1
        self.next_root += 1
        self.leases.append(lease)
        self.records[r].last = lease
        return lease

    def end(self, lease: MLease, reason: str, push: bool) -> None:
        lease.ended = reason
        if push:
            self.pushes.append((lease.conn, "lease_revoked", (lease.root, reason)))

    def drop(self, w: MWait, status: str, push: bool) -> None:
        w.done = status
        if push:
            self.pushes.append((w.conn, "lease_wait_ended", (w.req, status)))

    def kill(self, c: MConn, reason: str) -> None:
        c.alive = False
        for x in self.active():
            if x.conn == c.name:
                self.end(x, reason, push=False)
        for w in self.waiting():
            if w.conn == c.name:
                self.drop(w, reason, push=False)

    def serve(self, t: float) -> None:
        pending: list[MWait] = []
        for w in self.waiting():
            c = self.conns[w.conn]
            blocked = any(
                (EX in (p.mode, w.mode)) and overlaps(p.resource, w.resource) for p in pending
            )
            ok = (
                not blocked
                and c.alive
                and c.timeout > 0
                and t < c.last_seen + c.timeout
                and (w.deadline is None or t < w.deadline)
                and self.compatible(w.resource, w.mode)
            )
            if not ok:
                pending.append(w)
                continue
            w.done = "granted"
            lease = self.grant(w.conn, w.resource, w.mode, w.ttl, t)
            if w.key is not None:
                c.keys[w.key] = lease
            self.pushes.append((w.conn, "lease_granted", (w.req, lease.root)))

    def advance(self, now: float) -> None:
        """End everything due by ``now``, one instant at a time."""
        now = max(now, self.now)
        while True:
            due: list[tuple[float, Any]] = []
            for c in self.conns.values():
                if c.alive and c.timeout > 0 and self.busy(c):
                    due.append((c.last_seen + c.timeout, c))
            for x in self.active():
                if x.ttl is not None:
                    due.append((x.last_retain + x.ttl, x))
            for w in self.waiting():
                if w.deadline is not None:
                    due.append((w.deadline, w))
            times = [d for d, _ in due if d <= now]
            if not times:
                break
            t = min(times)
            self.now = t
            at_t = [obj for d, obj in due if d == t]
            for obj in at_t:
                if isinstance(obj, MConn) and obj.alive:
                    self.kill(obj, "timeout")
            for obj in at_t:
                if isinstance(obj, MLease) and obj.ended is None:
                    self.end(obj, "expired", push=True)
            for obj in at_t:
                if isinstance(obj, MWait) and obj.done is None:
                    self.drop(obj, "TIMEOUT", push=True)
            self.serve(t)
        self.now = now
