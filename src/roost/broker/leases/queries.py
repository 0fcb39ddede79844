"""Read-only questions to the lease table: use status, holder state, info, list, guards.

Rules of this module:

- Nothing here changes the table; functions read its structures and build plain dicts.
- The use status follows protocol.md E6 rule by rule, in order; keep it that way.
- Replies and published values are cut to fit one frame (protocol.md E10).
"""

from __future__ import annotations

from collections.abc import Hashable
from typing import Any

from roost.broker.leases.types import EXCLUSIVE, SHARED, Lease, Record, TableView
from roost.broker.leases.views import (
    REPLY_BUDGET,
    entries_size,
    fit_list,
    fits,
    holder_entry,
    node_budget,
    waiter_entry,
)
from roost.protocol.tokens import ancestors, covers, is_valid_token, meta_name, valid_resource
from roost.protocol.values import pack

__all__ = (
    "fit_reply",
    "floor",
    "guard_decision",
    "holder_state",
    "holder_use",
    "info",
    "listing",
    "newest",
    "use_status",
    "validate",
)


def fit_reply(reply: dict[str, Any]) -> dict[str, Any]:
    """Cut a reply's ``holders`` (or its info's holders and waiters) to fit one reply frame."""
    if "holders" in reply:
        return fit_list(reply, "holders", REPLY_BUDGET)
    if "info" in reply and not fits(reply, REPLY_BUDGET):
        # Holders first (they matter more), then as many waiters as still fit; the margin
        # leaves room for a lease_list entry's neighbours and the ``more`` flag.
        room = REPLY_BUDGET - 128
        waiters = reply["info"]["waiters"]
        inner = fit_list({**reply["info"], "waiters": []}, "holders", room)
        inner = fit_list({**inner, "waiters": waiters}, "waiters", room)
        return {**reply, "info": inner}
    return reply


def newest(table: TableView, name: str) -> int | None:
    """The highest last-grant root among the records overlapping ``name`` (None if none)."""
    recs = table._records
    roots = [recs[a].last_root for a in ancestors(name) if a in recs]
    if name in recs:
        roots.append(recs[name].last_root)
    roots.extend(recs[d].last_root for d in table._below.get(name, ()))
    present = [r for r in roots if r is not None]
    return max(present) if present else None


def floor(table: TableView, name: str) -> int | None:
    """Root of the oldest active lease covering ``name``; when none, the newest root ever
    granted on ``name`` or an ancestor (or on any forgotten record: its history is gone, so its
    floor must not drop); None if nothing covering it was ever granted."""
    cov = table.covering_leases(name)
    if cov:
        return cov[0].root
    recs = table._records
    roots = [recs[a].last_root for a in (name, *ancestors(name)) if a in recs]
    present = [r for r in roots if r is not None]
    if table.forgotten_floor:
        present.append(table.forgotten_floor)
    return max(present) if present else None


def use_status(
    table: TableView, token: object, against: str | None
) -> tuple[str, Lease | None, str | None]:
    """``(status, lease, reason)`` for ``token`` checked against resource ``against`` (default
    the token's own), by protocol.md E6. ``lease`` is the active grant for ``OK``; ``reason``
    the end reason for ``REVOKED``."""
    if not is_valid_token(token):
        return "INVALID_LEASE", None, None
    assert isinstance(token, dict)
    resource: str = token["resource"]
    target = resource if against is None else against
    rec = table._records.get(resource)
    if rec is None or not isinstance(target, str) or not covers(resource, target):
        return "UNMANAGED", None, None
    if token["epoch"] != table.epoch:
        return "WRONG_EPOCH", None, None
    root: int = token["seq"][0]
    top = newest(table, resource)
    if top is None or root > top:
        return "INVALID_LEASE", None, None
    lease = rec.active.get(root)
    if lease is not None:
        return "OK", lease, None
    if root < top:
        return "OLDER", None, None
    if rec.last_lease is not None and rec.last_lease.root == root:
        return "REVOKED", None, rec.last_lease.end_reason
    return "INVALID_LEASE", None, None


def _holders_of(table: TableView, name: object) -> list[dict[str, Any]]:
    if not isinstance(name, str) or not valid_resource(name):
        return []
    return [holder_entry(x) for x in table.covering_leases(name)]


def _refusal(table: TableView, status: str, reason: str | None, name: object) -> dict[str, Any]:
    reply: dict[str, Any] = {"status": status}
    if reason is not None:
        reply["reason"] = reason
    reply["holders"] = _holders_of(table, name)
    return fit_reply(reply)


def _token_resource(token: object) -> object:
    return token.get("resource") if isinstance(token, dict) else None


def holder_use(
    table: TableView, conn: Hashable, token: object
) -> tuple[dict[str, Any], Lease | None]:
    """Decide a return or retain: ``({"status": "OK"}, lease)`` when ``token`` is active and
    ``conn`` holds it, else ``(refusal, None)``."""
    status, lease, reason = use_status(table, token, None)
    name = _token_resource(token)
    if lease is None:
        return _refusal(table, status, reason, name), None
    if lease.conn != conn:
        return _refusal(table, "NOT_HOLDER", None, name), None
    return {"status": "OK"}, lease


def validate(table: TableView, token: object, resource: str | None) -> dict[str, Any]:
    """The reply to ``lease_validate``: the use status with the holders of the resource."""
    status, _, reason = use_status(table, token, resource)
    name = _token_resource(token) if resource is None else resource
    if status == "OK":
        return fit_reply({"status": "OK", "holders": _holders_of(table, name)})
    return _refusal(table, status, reason, name)


def guard_decision(
    table: TableView, conn: Hashable, guard: str, token: object | None
) -> dict[str, Any]:
    """Decide a call or set to a node guarded by ``guard`` (protocol.md E7 lease_guard)."""
    if token is None:
        mine = [x for x in table.covering_leases(guard) if x.conn == conn]
        if not mine:
            return fit_reply({"status": "NO_LEASE", "holders": _holders_of(table, guard)})
        return {"status": "OK", "token": mine[-1].token}
    status, lease, reason = use_status(table, token, guard)
    if status != "OK":
        return _refusal(table, status, reason, guard)
    if table.bind_tokens and lease is not None and lease.conn != conn:
        # Only the holder, or the user a sub-lease was delegated to through the broker.
        delegate = lease.delegates.get(tuple(token["seq"])) if isinstance(token, dict) else None
        if delegate is None or table.user_of is None or table.user_of(conn) != delegate:
            return _refusal(table, "NOT_HOLDER", None, guard)
    return {"status": "OK", "token": token}


def _mode_of(leases: list[Lease]) -> str | None:
    if not leases:
        return None
    return EXCLUSIVE if any(x.mode == EXCLUSIVE for x in leases) else SHARED


def holder_state(table: TableView, rec: Record) -> dict[str, Any]:
    """The value of ``/meta/leases/<name>/holder``: ``{resource, mode, holders, holders_total,
    waiters, floor}``; ``waiters`` counts the requests queued for exactly this name."""
    cov = table.covering_leases(rec.name)
    value = {
        "resource": rec.name,
        "mode": _mode_of(cov),
        "holders": [holder_entry(x) for x in cov],
        "holders_total": len(cov),
        "waiters": len(rec.waiters),
        "floor": floor(table, rec.name),
    }
    bound = entries_size(cov) + 2 * len(rec.name) + 128
    return fit_list(
        value, "holders", node_budget(f"/meta/leases/{meta_name(rec.name)}/holder"), bound
    )


def info(table: TableView, name: str) -> dict[str, Any]:
    """``{resource, mode, holders, waiters, floor, max_holders, takeable}`` of ``name``."""
    cov = table.covering_leases(name)
    rec = table._records.get(name)
    waiters = [waiter_entry(w, table.wall_offset) for w in rec.waiters.values()] if rec else []
    return {
        "resource": name,
        "mode": _mode_of(cov),
        "holders": [holder_entry(x) for x in cov],
        "waiters": waiters,
        "floor": floor(table, name),
        "max_holders": rec.max_holders if rec is not None else 0,
        "takeable": rec.takeable if rec is not None else True,
    }


def listing(table: TableView, prefix: str, after: str | None) -> dict[str, Any]:
    """The reply to ``lease_list``, cut to one frame with ``more``."""
    names = sorted(
        name
        for name, rec in table._records.items()
        if (not prefix or covers(prefix, name))
        and (after is None or name > after)
        and (rec.waiters or table.covering_leases(name))
    )
    budget = REPLY_BUDGET - 64
    used = 0
    out: list[dict[str, Any]] = []
    more = False
    for name in names:
        entry = fit_reply({"status": "OK", "info": info(table, name)})["info"]
        size = len(pack(entry))
        if out and used + size > budget:
            more = True
            break
        used += size
        out.append(entry)
    return {"status": "OK", "resources": out, "more": more}
