"""What the lease table shows: lease objects, holder and waiter entries, and fitting to a frame.

Rules of this module:

- Pure functions from records to plain msgpack-ready dicts (protocol.md E7 "Objects").
- A published or replied value never exceeds one frame (protocol.md E10): lists are cut, first
  entries kept, and the full count given as ``holders_total`` / ``waiters_total``.
- Sizes are measured by packing; small values are never measured twice.
"""

from __future__ import annotations

import json
import math
from typing import Any, Final

from roost.broker.leases.types import Lease, Waiter
from roost.protocol.framing import MAX_PAYLOAD
from roost.protocol.values import MapPairs, pack

__all__ = (
    "ENTRY_MAX",
    "REPLY_BUDGET",
    "entries_size",
    "fit_list",
    "fits",
    "holder_entry",
    "json_safe",
    "lease_object",
    "node_budget",
    "shown_entry",
    "waiter_entry",
)

#: Largest reply value: a 0x05/0x06 payload is type byte, u16 id, value.
REPLY_BUDGET: Final = MAX_PAYLOAD - 3
#: Largest holder entry an event or a ``by`` field carries (with its token and a resource name of
#: at most 1024 bytes, an event then stays well within a frame).
ENTRY_MAX: Final = 30_000


def node_budget(path: str) -> int:
    """Largest value that fits every frame a broker-owned node at ``path`` can produce: a
    notification (type, path, NUL, value), an observe_t reply (type, id, ms, value), a get reply."""
    return MAX_PAYLOAD - max(len(path.encode("latin-1")) + 2, 7)


def fits(value: Any, budget: int) -> bool:
    """True if ``value`` packs to at most ``budget`` bytes."""
    return len(pack(value)) <= budget


def lease_object(lease: Lease) -> dict[str, Any]:
    """``{lease_id, resource, mode, token, since, ttl}`` as returned to the acquirer."""
    return {
        "lease_id": lease.lease_id,
        "resource": lease.resource,
        "mode": lease.mode,
        "token": lease.token,
        "since": lease.since,
        "ttl": lease.ttl,
    }


def holder_entry(lease: Lease) -> dict[str, Any]:
    """A holder entry: the lease object plus the holder's client id and declared identity.

    Built once per lease and shared by every effect that shows it: callers must not mutate it.
    """
    if lease.entry is None:
        lease.entry = _make_entry(lease)
        lease.entry_size = len(pack(lease.entry))
    return lease.entry


def entries_size(leases: list[Lease]) -> int:
    """An upper bound of the packed size of these leases' holder entries as a list."""
    total = 5
    for lease in leases:
        holder_entry(lease)  # builds and measures the entry once
        total += lease.entry_size
    return total


def _make_entry(lease: Lease) -> dict[str, Any]:
    ident = lease.identity
    return {
        "lease_id": lease.lease_id,
        "resource": lease.resource,
        "mode": lease.mode,
        "token": lease.token,
        "client": lease.client,
        "name": ident.name,
        "user": ident.user,
        "host": ident.host,
        "pid": ident.pid,
        "note": ident.note,
        "since": lease.since,
        "ttl": lease.ttl,
    }


def waiter_entry(waiter: Waiter, wall_offset: float) -> dict[str, Any]:
    """A waiter entry: ``{request, resource, mode, name, user, host, pid, note, since, deadline}``
    (``since`` and ``deadline`` in wall-clock seconds; ``deadline`` nil for a wait without one)."""
    ident = waiter.identity
    deadline = None if waiter.deadline is None else waiter.deadline + wall_offset
    return {
        "request": waiter.request,
        "resource": waiter.resource,
        "mode": waiter.mode,
        "name": ident.name,
        "user": ident.user,
        "host": ident.host,
        "pid": ident.pid,
        "note": ident.note,
        "since": waiter.since,
        "deadline": deadline,
    }


def fit_list(
    value: dict[str, Any], key: str, budget: int, bound: int | None = None
) -> dict[str, Any]:
    """Cut ``value[key]`` (a list) so that ``value`` packs within ``budget`` bytes.

    Keeps the first entries; sets ``<key>_total`` to the full length when it cuts (callers that
    always publish the total set it themselves). If even the empty list does not fit, the value
    is returned with the empty list anyway: the caller's other fields are its own business.
    ``bound``, an upper bound of the packed size the caller knows, spares the measurement.

    Returns:
        ``value`` itself when it fits, else a shallow copy with the shorter list.
    """
    if bound is not None and bound <= budget:
        return value
    size = len(pack(value))
    if size <= budget:
        return value
    entries: list[Any] = value[key]
    total_key = f"{key}_total"
    out = dict(value)
    out.setdefault(total_key, len(entries))
    # Binary search on the number of entries kept: sizes grow monotonically with the count.
    lo, hi = 0, len(entries)
    while lo < hi:
        mid = (lo + hi + 1) // 2
        out[key] = entries[:mid]
        if len(pack(out)) <= budget:
            lo = mid
        else:
            hi = mid - 1
    out[key] = entries[:lo]
    return out


def shown_entry(lease: Lease) -> dict[str, Any] | None:
    """The holder entry to put into an event or a ``by`` field, or ``None`` when it is too big
    to share a frame with anything (only a client id of many kilobytes makes one so big)."""
    entry = holder_entry(lease)
    return entry if lease.entry_size <= ENTRY_MAX else None


def json_safe(value: Any) -> Any:
    """A copy of a decoded msgpack value that ``json.dumps`` writes as standard JSON (for audit
    records): bin (``bytes``) becomes its lowercase hex string, a non-finite float its ``str``
    (``"nan"``, ``"inf"``), a map key that is not a str the JSON text of its converted key, a map
    with array keys an object keyed likewise; arrays become lists. Anything else unexpected
    becomes its ``repr``. Never raises (values nest at most 64 deep, protocol.md §4.2).
    """
    if value is None or isinstance(value, (str, bool, int)):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else str(value)
    if isinstance(value, (bytes, bytearray, memoryview)):
        return bytes(value).hex()
    if isinstance(value, MapPairs):
        return {_json_key(k): json_safe(v) for k, v in value}
    if isinstance(value, dict):
        return {_json_key(k): json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_safe(x) for x in value]
    return repr(value)


def _json_key(key: Any) -> str:
    if isinstance(key, str):
        return key
    safe = json_safe(key)
    return safe if isinstance(safe, str) else json.dumps(safe, sort_keys=True)
