"""Resource pools: "any free device matching these requirements", py-lockable style.

Rules of this module:

- The inventory is a list of objects with an ``id`` and any attributes (lockable's
  ``resources.json`` as it is); each id is a resource name, and a pool grant is an ordinary
  exclusive lease on it (tokens, revocation, holder states, guarded nodes all apply).
- Requirements are MongoDB-style queries matched with ``mongoquery``. As in lockable, a
  requirement without ``hostname`` asks for the requester's host and one without ``online`` for
  online resources; giving either as ``None`` lifts that default.
- An unsupported operator is ``INVALID_REQUIREMENTS`` and a requirement no resource matches is
  ``NO_MATCH``, both at once, never a wait. Otherwise the free match released longest ago is
  granted (never-used ones first, in inventory order); with none free the request waits in one
  FIFO queue, served whenever a pool resource is released.
- Synchronous, no clock reads; returns the lease table's effects (grants are pushed as
  ``lease_granted``, ends of waits as ``lease_wait_ended``, like queued acquires).
"""

from __future__ import annotations

import itertools
import json
import re
from collections.abc import Hashable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

from mongoquery import Query, QueryError

from roost.broker.leases.core import Effects, Reply, status
from roost.broker.leases.table import LeaseTable
from roost.broker.leases.types import EXCLUSIVE, Event, Identity, Lease, Push
from roost.broker.leases.views import holder_entry, lease_object
from roost.protocol.tokens import resource_problem

__all__ = (
    "OPERATORS",
    "REGEX_MAX",
    "PoolBook",
    "PoolSettings",
    "load_inventory",
    "requirements_problem",
    "with_defaults",
)

#: The query operators the pool accepts (those ``mongoquery`` implements; ``$regex`` takes
#: options as ``"/pattern/i"``).
OPERATORS: Final = frozenset(
    {
        "$eq",
        "$ne",
        "$gt",
        "$gte",
        "$lt",
        "$lte",
        "$in",
        "$nin",
        "$exists",
        "$regex",
        "$not",
        "$and",
        "$or",
        "$nor",
        "$all",
        "$size",
        "$elemMatch",
        "$mod",
        "$type",
    }
)
#: Pool requests get request ids from here, far from the lease table's own.
_FIRST_REQUEST: Final = 1 << 40


_NONE: Final[frozenset[str]] = frozenset()
#: Distinct queries whose matches are remembered until the inventory changes (jobs of one CI
#: pipeline ask the same requirements again and again); the memory is dropped when full.
_CACHE_MAX: Final = 1024


def _scalar(value: object) -> bool:
    """True for the values the inventory index holds: str, int, float (not NaN), bool."""
    if isinstance(value, float):
        return value == value  # noqa: PLR0124 (NaN is never equal to itself)
    return isinstance(value, (str, int, bool))


def _indexable_field(key: object) -> bool:
    return isinstance(key, str) and not key.startswith("$") and "." not in key


@dataclass(frozen=True, slots=True)
class PoolSettings:
    """The ``[pools]`` section: an inventory file (lockable's ``resources.json``, re-read on
    reload) and resources declared in the TOML itself."""

    inventory: str | None = None
    resources: tuple[Mapping[str, Any], ...] = ()


def check_inventory(items: object, source: str) -> list[dict[str, Any]]:
    """``items`` as an inventory: a list of objects with a unique ``id`` each (a str, or an int
    taken as its decimal text) that is a valid resource name.

    Raises:
        ValueError: naming ``source`` and what is wrong.
    """
    if not isinstance(items, list):
        raise ValueError(f"{source}: the inventory must be a list of objects")
    out: list[dict[str, Any]] = []
    seen: set[str] = set()
    for n, item in enumerate(items):
        if not isinstance(item, dict):
            raise ValueError(f"{source}: item {n} is not an object")
        raw = item.get("id")
        if isinstance(raw, bool) or not isinstance(raw, (str, int)):
            raise ValueError(f"{source}: item {n} has no 'id' string (or integer)")
        rid = str(raw)
        problem = resource_problem(rid)
        if problem is not None:
            raise ValueError(f"{source}: item {n} has an id that is no resource name: {problem}")
        if rid in seen:
            raise ValueError(f"{source}: id {rid!r} appears twice")
        seen.add(rid)
        out.append(dict(item))
    return out


def load_inventory(settings: PoolSettings) -> list[dict[str, Any]]:
    """The inventory: the TOML resources, then those of the inventory file.

    Raises:
        ValueError: the file cannot be read or parsed, or an item is wrong.
    """
    items: list[Any] = list(settings.resources)
    if settings.inventory is not None:
        path = Path(settings.inventory)
        try:
            items += json.loads(path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError) as exc:
            raise ValueError(f"cannot read the inventory {path}: {exc}") from exc
        except ValueError as exc:
            raise ValueError(f"{path} is not JSON: {exc}") from exc
        except TypeError as exc:  # pragma: no cover - json list concatenation
            raise ValueError(f"{path}: the inventory must be a list of objects") from exc
    return check_inventory(items, settings.inventory or "[pools]")


def requirements_problem(query: object) -> str | None:
    """What makes ``query`` unusable (not a map, an unsupported ``$`` operator, a regular
    expression that could run for very long), or ``None``."""
    if not isinstance(query, dict):
        return "requirements must be a map"
    stack: list[object] = [query]
    while stack:
        item = stack.pop()
        if isinstance(item, dict):
            for key, value in item.items():
                if not isinstance(key, str):
                    return f"a key {key!r} that is not a str"
                if key.startswith("$") and key not in OPERATORS:
                    return f"operator {key!r} is not supported"
                if key == "$regex" and isinstance(value, str):
                    problem = _regex_problem(value)
                    if problem is not None:
                        return problem
                stack.append(value)
        elif isinstance(item, list):
            stack.extend(item)
    return None


#: A group holding a repetition that is itself repeated (``(a+)+``, ``(x*y)*``, ``(a|b+){2,}``):
#: the shape of regular expressions whose matching time can explode on a short string.
_NESTED_REPEAT: Final = re.compile(r"\([^()]*[+*}][^()]*\)\s*[+*{]")
#: Longest ``$regex`` pattern accepted.
REGEX_MAX: Final = 256


def _regex_problem(pattern: str) -> str | None:
    """Why the broker will not run ``pattern`` (matching runs on its event loop), or ``None``."""
    if len(pattern) > REGEX_MAX:
        return f"a $regex longer than {REGEX_MAX} characters"
    if _NESTED_REPEAT.search(pattern):
        return f"$regex {pattern!r} repeats a repetition (its matching time could explode)"
    return None


def with_defaults(requirements: Mapping[str, Any], host: str) -> dict[str, Any]:
    """lockable's defaults: ``hostname`` = the requester's host and ``online`` = true unless
    given; a key given as ``None`` is dropped (no condition on it)."""
    query = dict(requirements)
    query.setdefault("hostname", host)
    query.setdefault("online", True)
    return {k: v for k, v in query.items() if v is not None}


@dataclass(slots=True, eq=False)
class PoolWaiter:
    """A queued pool request."""

    request: int
    conn: Hashable
    query: dict[str, Any]
    candidates: frozenset[str]  # the ids the query matches (recomputed on reload)
    deadline: float | None
    identity: Identity
    ttl: float | None
    key: str | None
    since: float  # monotonic arrival, for the queue time


@dataclass(slots=True)
class PoolBook:
    """The inventory, its release order and the queue of pool requests of one broker run."""

    table: LeaseTable
    resources: dict[str, dict[str, Any]] = field(default_factory=dict)
    released: dict[str, int] = field(default_factory=dict)
    waiters: dict[int, PoolWaiter] = field(default_factory=dict)
    keys: dict[tuple[Hashable, str], PoolWaiter | int] = field(default_factory=dict)
    _order: dict[str, int] = field(default_factory=dict)  # id -> place in the inventory
    _preference: dict[str, None] = field(default_factory=dict)  # ids, least recently used first
    _index: dict[tuple[str, Any], set[str]] = field(default_factory=dict)  # (field, value) -> ids
    _cache: dict[str, list[str]] = field(default_factory=dict)  # query JSON -> its matches
    _requests: Iterator[int] = field(default_factory=lambda: itertools.count(_FIRST_REQUEST))
    _releases: Iterator[int] = field(default_factory=lambda: itertools.count(1))

    def load(self, items: Iterable[dict[str, Any]]) -> None:
        """Replace the inventory (held resources stay held until released); each waiting
        request's matches are found again (a query the new inventory breaks matches nothing)."""
        self.resources = {str(item["id"]): item for item in items}
        self._order = {rid: n for n, rid in enumerate(self.resources)}
        self._preference = dict.fromkeys(self.resources)  # longest unused first
        index: dict[tuple[str, Any], set[str]] = {}
        for rid, attrs in self.resources.items():
            for field_name, value in attrs.items():
                values = value if isinstance(value, list) else [value]
                for x in values:
                    if _scalar(x):
                        index.setdefault((field_name, x), set()).add(rid)
        self._index = index
        self._cache.clear()
        for w in self.waiters.values():
            try:
                w.candidates = frozenset(self.matches(w.query))
            except Exception:  # matched before; a changed attribute type may break it now
                w.candidates = frozenset()

    # -- matching --------------------------------------------------------------------------------

    def matches(self, query: dict[str, Any]) -> list[str]:
        """Ids of the resources ``query`` matches, in inventory order.

        Top-level ``field: scalar`` conditions (the usual ``os``, ``hostname``, ``online``)
        are looked up in an index of the inventory, as ``mongoquery`` would decide them
        (equal, or an element of a list); the rest of the query runs through ``mongoquery`` on
        those candidates only.

        Raises:
            QueryError: ``mongoquery`` refused the query (and what it raises on bad operands).
        """
        try:
            cache_key: str | None = json.dumps(query, sort_keys=True)
        except (TypeError, ValueError):
            cache_key = None
        if cache_key is not None:
            cached = self._cache.get(cache_key)
            if cached is not None:
                return cached
        found: list[set[str] | frozenset[str]] = []
        rest: dict[str, Any] = {}
        for k, v in query.items():
            hits = self._lookup(k, v)
            if hits is None:
                rest[k] = v
            else:
                found.append(hits)
        if found:
            found.sort(key=len)
            hits = found[0].intersection(*found[1:])
            ids = sorted(hits, key=self._order.__getitem__)
        else:
            ids = list(self.resources)
        if rest and ids:
            q = Query(rest)
            ids = [rid for rid in ids if q.match(self.resources[rid])]
        if cache_key is not None:
            if len(self._cache) >= _CACHE_MAX:
                self._cache.clear()
            self._cache[cache_key] = ids
        return ids

    def _lookup(self, key: str, value: Any) -> set[str] | frozenset[str] | None:
        """The ids a top-level condition matches, from the index; ``None`` if the index cannot
        say (then ``mongoquery`` decides)."""
        if not _indexable_field(key):
            return None
        if _scalar(value):  # equal, or an element of a list, as mongoquery's implicit $eq
            return self._index.get((key, value), _NONE)
        if (
            isinstance(value, dict)
            and list(value) == ["$in"]
            and isinstance(value["$in"], list)
            and all(_scalar(x) for x in value["$in"])
        ):
            out: set[str] = set()
            for x in value["$in"]:
                out |= self._index.get((key, x), _NONE)
            return out
        return None

    def _free(self, rid: str) -> bool:
        t = self.table
        rec = t._records.get(rid)
        if rec is None:
            return True
        if rec.active:  # held by name: the common case, decided without a scan
            return False
        return not t._conflicts(rid, EXCLUSIVE) and not t._held_back(rid, EXCLUSIVE, None)

    def _pick(self, ids: list[str]) -> Iterator[str]:
        """The free ones among ``ids``, released longest ago first (never used ones first, in
        inventory order), checked lazily: the first free one usually ends the walk."""
        if len(ids) <= 64:
            order = self._order
            ranked = sorted(ids, key=lambda rid: (self.released.get(rid, 0), order.get(rid, 0)))
        else:
            wanted = set(ids)
            return (rid for rid in self._preference if rid in wanted and self._free(rid))
        return (rid for rid in ranked if self._free(rid))

    # -- verbs -----------------------------------------------------------------------------------

    def acquire(
        self,
        conn: Hashable,
        requirements: object,
        now: float,
        *,
        wait: float,
        ttl: float | None,
        identity: Identity,
        key: str | None,
    ) -> tuple[Reply, Effects]:
        """Acquire any free resource matching ``requirements`` (see the module rules).

        Returns:
            ``OK`` + ``lease`` (with the resource's ``attributes``); ``QUEUED`` + ``request``,
            ``position``, ``holders`` (a ``lease_granted`` or ``lease_wait_ended`` push follows);
            ``INVALID_REQUIREMENTS``, ``NO_MATCH`` or ``NONE_FREE`` (wait 0; + ``holders``), each
            with a ``reason``; or what the lease table answers (``TIMEOUT_REQUIRED``...).
        """
        problem = requirements_problem(requirements)
        if problem is not None:
            return status("INVALID_REQUIREMENTS", reason=problem), []
        assert isinstance(requirements, dict)
        query = with_defaults(requirements, identity.host)
        try:
            ids = self.matches(query)
        except Exception as exc:  # mongoquery raises QueryError, also TypeError, ZeroDivision...
            reason = str(exc) if isinstance(exc, QueryError) else f"{type(exc).__name__}: {exc}"
            return status("INVALID_REQUIREMENTS", reason=reason), []
        if not ids:
            reason = (
                f"no resource matches {json.dumps(query, sort_keys=True, default=repr)}"
                f" among the {len(self.resources)} in the inventory"
            )
            return status("NO_MATCH", reason=reason), []
        c = self.table._conns.get(conn)
        if c is None:
            return status("unregistered"), []
        if c.timeout <= 0:
            return status("TIMEOUT_REQUIRED"), []
        if key is not None:
            prev = self.keys.get((conn, key))
            if isinstance(prev, PoolWaiter) and prev.request in self.waiters:
                return self._queued(prev, ids), []
            granted = c.keys.get(key)
            if isinstance(granted, Lease) and granted.active:  # a retry of a granted acquire
                return status("OK", lease=self._shown(granted, 0.0)), []
        effects: Effects = []
        for rid in self._pick(ids):
            reply, fx = self._grant(conn, rid, now, ttl, identity, queued=0.0, key=key)
            effects += fx
            if reply["status"] != "ALREADY_CLAIMED":  # granted, or refused for any resource
                return reply, effects
        if wait != 0 and sum(1 for w in self.waiters.values() if w.conn == conn) >= (
            self.table.max_waits
        ):
            return status("WAIT_LIMIT", max_waits=self.table.max_waits), effects
        if wait == 0:
            holders = self._holders(ids)
            reason = f"all {len(ids)} matching resources are held"
            return status("NONE_FREE", reason=reason, holders=holders), effects
        w = PoolWaiter(
            request=next(self._requests),
            conn=conn,
            query=query,
            candidates=frozenset(ids),
            deadline=now + wait if wait > 0 else None,
            identity=identity,
            ttl=ttl,
            key=key,
            since=now,
        )
        self.waiters[w.request] = w
        if key is not None:
            self.keys[(conn, key)] = w
        return self._queued(w, ids), effects

    def _holders(self, ids: list[str]) -> list[dict[str, Any]]:
        """Holder entries of the first 16 of ``ids`` (enough to say who blocks)."""
        return [holder_entry(x) for rid in ids[:16] for x in self.table.covering_leases(rid)]

    def _queued(self, w: PoolWaiter, ids: list[str]) -> Reply:
        position = 1 + sum(1 for other in self.waiters.values() if other.request < w.request)
        return status("QUEUED", request=w.request, position=position, holders=self._holders(ids))

    def _shown(self, lease: Lease, queued: float) -> dict[str, Any]:
        """The lease object of a pool grant: with the resource's attributes and queue time."""
        shown = lease_object(lease)
        shown["attributes"] = self.resources.get(lease.resource, {"id": lease.resource})
        shown["queued"] = queued
        return shown

    def _grant(
        self,
        conn: Hashable,
        rid: str,
        now: float,
        ttl: float | None,
        identity: Identity,
        *,
        queued: float,
        key: str | None,
    ) -> tuple[Reply, Effects]:
        reply, fx = self.table.acquire(
            conn, rid, now, mode=EXCLUSIVE, wait=0, ttl=ttl, identity=identity, key=key
        )
        if reply.get("status") == "OK":
            lease = reply["lease"] = {**reply["lease"]}
            lease["attributes"] = self.resources.get(rid, {"id": rid})
            lease["queued"] = queued
        return reply, fx

    def serve(self, now: float, released: Iterable[str] | None = None) -> Effects:
        """Grant, in arrival order, every waiting pool request a free match now exists for,
        and end the waits past their deadline. With ``released`` (the ids that came back since
        the queue was last served) only those are offered: every other free resource was free
        before and matched no waiter, so this costs one set lookup per waiter and release."""
        effects: Effects = []
        offered = None if released is None else set(released)
        for w in list(self.waiters.values()):
            if w.deadline is not None and now >= w.deadline:
                effects += self._end_wait(w, "TIMEOUT")
                continue
            if offered is not None:
                ids = [rid for rid in offered if rid in w.candidates]
                if not ids:
                    continue
            else:
                ids = list(w.candidates)
            for rid in self._pick(ids):
                queued = now - w.since
                reply, fx = self._grant(
                    w.conn, rid, now, w.ttl, w.identity, queued=queued, key=w.key
                )
                effects += fx
                if reply.get("status") == "OK":
                    self._forget(w)
                    if offered is not None:
                        offered.discard(rid)
                    body = {"request": w.request, "lease": reply["lease"]}
                    effects.append(Push(w.conn, "lease_granted", body))
                    break
        return effects

    def _forget(self, w: PoolWaiter) -> None:
        self.waiters.pop(w.request, None)
        if w.key is not None and self.keys.get((w.conn, w.key)) is w:
            del self.keys[(w.conn, w.key)]

    def _end_wait(self, w: PoolWaiter, why: str) -> Effects:
        self._forget(w)
        return [Push(w.conn, "lease_wait_ended", {"request": w.request, "status": why})]

    def cancel(self, conn: Hashable, request: object) -> tuple[Reply, Effects] | None:
        """Cancel a pool wait of ``conn``; ``None`` if ``request`` is no pool request."""
        if not isinstance(request, int) or request < _FIRST_REQUEST:
            return None
        w = self.waiters.get(request)
        if w is None or w.conn != conn:
            return status("NOT_WAITING"), []
        return status("OK"), self._end_wait(w, "CANCELLED")

    def disconnect(self, conn: Hashable) -> None:
        """``conn`` closed: its pool waits vanish (nobody is told)."""
        for w in list(self.waiters.values()):
            if w.conn == conn:
                self._forget(w)

    def observe(self, effects: Iterable[object]) -> list[str]:
        """Note the releases of pool resources among ``effects``; return their ids."""
        out: list[str] = []
        for effect in effects:
            if isinstance(effect, Event) and effect.value.get("event") == "ended":
                rid = effect.resource
                if rid in self.resources:
                    self.released[rid] = next(self._releases)
                    self._preference.pop(rid, None)
                    self._preference[rid] = None  # now the most recently released
                    out.append(rid)
        return out

    def next_deadline(self) -> float | None:
        """The earliest deadline of a waiting pool request."""
        due = [w.deadline for w in self.waiters.values() if w.deadline is not None]
        return min(due) if due else None

    def listing(self) -> list[dict[str, Any]]:
        """Each resource with its ``status`` (``free``, ``held``, ``offline``), ``holders`` and
        ``attributes``, in inventory order."""
        out: list[dict[str, Any]] = []
        for rid, attrs in self.resources.items():
            holders = [holder_entry(x) for x in self.table.covering_leases(rid)]
            if holders:
                state = "held"
            elif attrs.get("online", True) is False:
                state = "offline"
            else:
                state = "free"
            out.append({"id": rid, "status": state, "holders": holders, "attributes": attrs})
        return out
