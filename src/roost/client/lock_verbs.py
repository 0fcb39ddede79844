"""Durable keyed locks and resource pools: the client's half (protocol.md E14, E15).

Rules of this module:

- A lock key is sent only in lock requests and key-proved calls; it is never logged.
- A pool grant is an ordinary :class:`~roost.client.leases.Lease` (kept alive, returned, lost
  like any other) whose ``attributes`` are the granted resource's inventory entry.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Callable, Mapping
from contextlib import asynccontextmanager
from typing import Any

import anyio

from roost.client.lease_verbs import LeaseVerbs
from roost.client.leases import Lease
from roost.errors import LeasesUnsupported, RemoteError, RoostError, lease_error_for
from roost.protocol import messages as m
from roost.protocol.values import Value

__all__ = ("LockVerbs",)


class LockVerbs(LeaseVerbs):
    """Durable locks and pools, on top of :class:`~roost.client.lease_verbs.LeaseVerbs`."""

    def _require(self, extension: str, what: str) -> None:
        """Raise ``LeasesUnsupported`` before sending anything if the broker's ``/meta/broker``
        does not announce ``extension`` (a plain ESHET server, or an older roost)."""
        self._require_leases()
        info = self._broker_info or {}
        extensions = info.get("extensions")
        if not isinstance(extensions, dict) or extensions.get(extension) != 1:
            raise LeasesUnsupported(f"the broker at {self.server} does not offer {what}")

    # -- durable locks ---------------------------------------------------------------------------

    async def lock_set(
        self,
        resource: str,
        key: str,
        *,
        scopes: tuple[str, ...] | list[str] = (),
        note: str = "",
        name: str | None = None,
    ) -> dict[str, Any]:
        """Lock ``resource`` (or only its ``scopes``, sub-resources such as ``queue``) with
        ``key``, or update the lock that ``key`` opens. The lock outlives this client and, with
        a state directory, the broker. Returns the lock info.

        Raises:
            InvalidKey: locked with another key (the error names who locked it and the note).
            AlreadyClaimed: a session lease holds an overlapping resource.
            LeaseError: other refusals (``INVALID_RESOURCE``, ``NOT_SAVED``...).
        """
        self._require("locks", "durable locks")
        body = {"resource": resource, "key": key, "scopes": list(scopes)}
        body.update(self._identity(note, name))
        reply = await self._lease_request(m.LockSet, body)
        return dict(reply.get("lock") or {})

    async def lock_clear(
        self, resource: str, key: str | None = None, *, emergency_key: str | None = None
    ) -> dict[str, Any]:
        """Unlock ``resource`` with its key, or with the broker's emergency key. Returns the
        (now unlocked) lock info.

        Raises:
            InvalidKey: the key does not open the lock. NotLocked: there is no lock.
        """
        self._require("locks", "durable locks")
        body: dict[str, Any] = {"resource": resource}
        if emergency_key is not None:
            body["emergency_key"] = emergency_key
        else:
            body["key"] = key
        reply = await self._lease_request(m.LockClear, body)
        return dict(reply.get("lock") or {})

    async def lock_info(self, resource: str) -> dict[str, Any]:
        """The lock info of ``resource``: ``locked``, ``scopes``, ``user``, ``note``, ``time``,
        ``time_str``, ``emergency_key_set``, ``uid`` (changes on every update), ``durable``."""
        self._require("locks", "durable locks")
        reply = await self._lease_request(m.LockInfo, {"resource": resource})
        return dict(reply.get("lock") or {})

    async def lock_list(self) -> list[dict[str, Any]]:
        """The lock info of every durable lock, by resource name."""
        self._require("locks", "durable locks")
        reply = await self._lease_request(m.LockInfo, {})
        return [dict(x) for x in reply.get("locks") or [] if isinstance(x, dict)]

    async def _keyed(
        self, kind: str, path: str, payload: Any, key: str, timeout: float | None
    ) -> Any:
        self._require("locks", "durable locks")
        path = self.resolve(path)
        field = "args" if kind == "call" else "value"
        body = Value.of({"path": path, field: payload, "key": key})
        make: Callable[[int], m.Message]
        if kind == "call":
            make = lambda rid: m.LeaseCall(rid, body)  # noqa: E731 (one-line factory)
        else:
            make = lambda rid: m.LeaseSet(rid, body)  # noqa: E731
        reply = await self._request(make, timeout)
        assert isinstance(reply, (m.ReplyOk, m.ReplyError))
        value = reply.value.obj
        if isinstance(reply, m.ReplyOk):
            return value
        if isinstance(value, dict) and isinstance(value.get("status"), str):
            raise lease_error_for(value)
        raise RemoteError(value)

    async def locked_call(
        self, path: str, key: str, *args: Any, timeout: float | None = None
    ) -> Any:
        """Call a guarded action proving a durable lock with its ``key`` (the owner sees the
        lock's token). On an unguarded action the key is dropped.

        Raises:
            InvalidKey: the key does not open the lock covering the guard. NoLease: no lock
                covers it. RemoteError: the owner's error.
        """
        return await self._keyed("call", path, list(args), key, timeout)

    async def locked_set(
        self, path: str, key: str, value: Any, *, timeout: float | None = None
    ) -> Any:
        """Set a guarded prop or state proving a durable lock with its ``key``."""
        return await self._keyed("set", path, value, key, timeout)

    # -- pools -----------------------------------------------------------------------------------

    async def pool_acquire(
        self,
        requirements: Mapping[str, Any],
        *,
        wait: float | None = 0,
        ttl: float | None = None,
        note: str = "",
        name: str | None = None,
        on_lost: Callable[[Lease], Any] | None = None,
    ) -> Lease:
        """Acquire any free pool resource matching ``requirements`` (MongoDB-style; by default
        only online resources of this host: give ``"online": None`` / ``"hostname": None`` to
        lift that). The lease's ``resource`` is the resource id, ``attributes`` its entry.

        Raises:
            NoMatch: nothing in the inventory can ever match. InvalidRequirements: an
                unsupported operator. NoneFree: all matches held and ``wait`` is 0.
            LeaseWaitTimeout: still queued when ``wait`` ran out.
        """
        self._require("pools", "resource pools")
        return await self.lease_acquire(
            None,
            requirements=requirements,
            wait=wait,
            ttl=ttl,
            note=note,
            name=name,
            on_lost=on_lost,
        )

    @asynccontextmanager
    async def allocation(
        self,
        requirements: Mapping[str, Any],
        *,
        wait: float | None = 0,
        ttl: float | None = None,
        note: str = "",
        name: str | None = None,
    ) -> AsyncIterator[Lease]:
        """:meth:`pool_acquire` for the block; the resource is returned on the way out."""
        held = await self.pool_acquire(requirements, wait=wait, ttl=ttl, note=note, name=name)
        try:
            yield held
        finally:
            with anyio.CancelScope(shield=True), contextlib.suppress(RoostError):
                await held.return_lease()

    async def pool_resources(self) -> list[dict[str, Any]]:
        """The pool inventory: each resource's ``id``, ``status`` (``free``, ``held``,
        ``offline``), ``holders`` and ``attributes``."""
        self._require("pools", "resource pools")
        reply = await self._lease_request(m.PoolList, {})
        return [dict(x) for x in reply.get("resources") or [] if isinstance(x, dict)]

    async def pool_reload(self) -> int:
        """Ask the broker to read its pool inventory again; returns the number of resources.

        Raises:
            LeaseError: ``NOT_LOADED`` (the old inventory stays) or no pool configured.
        """
        self._require("pools", "resource pools")
        reply = await self._lease_request(m.PoolReload, {})
        count = reply.get("count")
        return count if isinstance(count, int) else 0
