"""Resource pools on the wire: ``lease_acquire`` by ``requirements``, pool list and reload.

Rules of this module:

- A ``lease_acquire`` whose body has ``requirements`` (and no ``resource``) goes to the pool;
  every other acquire goes on to the lease table as before. ``lease_cancel`` of a pool request id
  likewise.
- After every batch of lease effects the pool notes releases of its resources and serves its
  queue in the same step, so no pool waiter stays waiting while a match is free.
- One timer, armed for the earliest pool deadline, ends waits that ran out.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any, Protocol

from roost.broker.leases.pools import PoolBook, PoolSettings, check_inventory, load_inventory
from roost.broker.leases.routes import LeaseLayer
from roost.broker.leases.types import Effect
from roost.broker.leases.wire import BadArgs, parse
from roost.broker.session import Session

__all__ = ("PoolService", "install_pools", "parse_pools_section")

log = logging.getLogger("roost.broker.leases")


class _Where(Protocol):
    """What a config section parser gets (``roost.broker.config.Where``)."""

    def table(self, value: object, known: tuple[str, ...]) -> Mapping[str, Any]: ...

    def string(self, table: Mapping[str, Any], key: str, default: str | None = None) -> str: ...

    def error(self, problem: str, key: str | None = None) -> Exception: ...


def parse_pools_section(value: object, where: _Where) -> PoolSettings:
    """The ``[pools]`` table: ``inventory`` (a ``resources.json`` path) and ``[[pools.resource]]``
    entries (each with an ``id`` and any attributes)."""
    table = where.table(value, ("inventory", "resource"))
    inventory = where.string(table, "inventory") if "inventory" in table else None
    items = table.get("resource", [])
    try:
        resources = check_inventory(items, "[pools] resource")
    except ValueError as exc:
        raise where.error(str(exc), "resource") from exc
    return PoolSettings(inventory, tuple(resources))


class PoolService:
    """The pool of one broker, wired into its lease layer."""

    def __init__(self, layer: LeaseLayer, settings: PoolSettings) -> None:
        self.layer = layer
        self.settings = settings
        self.book = PoolBook(layer.table)
        self._armed: float | None = None

    def reload(self, now: float) -> str | None:
        """Read the inventory again; the problem in words if that failed (the old one stays)."""
        try:
            items = load_inventory(self.settings)
        except ValueError as exc:
            log.error("pool inventory not reloaded: %s", exc)
            return str(exc)
        self.book.load(items)
        log.info("pool inventory: %d resources", len(items))
        self.layer.apply(self.book.serve(now), now)
        return None

    # -- requests --------------------------------------------------------------------------------

    def acquire(self, session: Session, rid: int, body: object, now: float) -> bool:
        if not isinstance(body, dict) or "requirements" not in body or "resource" in body:
            return False
        try:
            a = parse(0x50, {**body, "resource": ""})
        except BadArgs as exc:
            self.layer._reply(session, rid, {"status": "bad_args", "reason": str(exc)})
            return True
        if a["mode"] != "exclusive":
            reason = "pool resources are acquired exclusively"
            self.layer._reply(session, rid, {"status": "bad_args", "reason": reason})
            return True
        reply, effects = self.book.acquire(
            session,
            body["requirements"],
            now,
            wait=a["wait"],
            ttl=a["ttl"],
            identity=a["identity"],
            key=a["key"],
        )
        self.layer.apply(effects, now)
        self.layer._reply(session, rid, reply)
        self._arm(now)
        return True

    def cancel(self, session: Session, rid: int, body: object, now: float) -> bool:
        request = body.get("request") if isinstance(body, dict) else None
        result = self.book.cancel(session, request)
        if result is None:
            return False
        reply, effects = result
        self.layer.apply(effects, now)
        self.layer._reply(session, rid, reply)
        return True

    def listing(self, session: Session, rid: int, body: object, now: float) -> bool:
        waiting = len(self.book.waiters)
        reply = {"status": "OK", "resources": self.book.listing(), "waiters": waiting}
        self.layer._reply(session, rid, reply)
        return True

    def reload_request(self, session: Session, rid: int, body: object, now: float) -> bool:
        problem = self.reload(now)
        if problem is None:
            self.layer._reply(session, rid, {"status": "OK", "count": len(self.book.resources)})
        else:
            self.layer._reply(session, rid, {"status": "NOT_LOADED", "reason": problem})
        return True

    # -- releases, deadlines, disconnects ------------------------------------------------------

    def observe(self, effects: list[Effect], now: float) -> None:
        released = self.book.observe(effects)
        if released and self.book.waiters:
            self.layer.apply(self.book.serve(now, released), now)

    def _arm(self, now: float) -> None:
        due = self.book.next_deadline()
        if due is not None and (self._armed is None or due < self._armed):
            self._armed = due
            self.layer.router.hooks.call_later(max(0.0, due - now), self._fire)

    def _fire(self, now: float) -> None:
        self._armed = None
        self.layer.apply(self.book.serve(now), now)
        self._arm(now)

    def disconnect(self, session: Session, reason: str, now: float) -> None:
        self.book.disconnect(session)


def install_pools(layer: LeaseLayer, settings: PoolSettings, now: float) -> PoolService:
    """Add a resource pool to a lease layer and load its inventory.

    Raises:
        ValueError: the inventory cannot be loaded (start-up stops).
    """
    service = PoolService(layer, settings)
    service.book.load(load_inventory(settings))
    layer.extra[0x50] = service.acquire
    layer.extra[0x55] = service.cancel
    layer.extra[0x5E] = service.listing
    layer.extra[0x5F] = service.reload_request
    layer.observers.append(service.observe)
    layer.router.disconnect_hooks.append(service.disconnect)
    return service
