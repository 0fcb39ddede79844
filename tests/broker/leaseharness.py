"""A lease table on a fake clock, with every effect recorded and invariants checked per call."""

from __future__ import annotations

from collections.abc import Hashable
from typing import Any

from roost.broker.leases.table import LeaseTable
from roost.broker.leases.types import (
    Audit,
    Close,
    Declared,
    Effect,
    Event,
    HolderState,
    Identity,
    Push,
    RootCounter,
)

__all__ = ("EPOCH", "Harness")

EPOCH = 1000


class Harness:
    """Drives one :class:`LeaseTable`; ``fx`` holds the effects of the last call, ``log`` all."""

    def __init__(
        self,
        *,
        declared: list[Declared] | None = None,
        max_resources: int = 10_000,
        max_waits: int = 1000,
        max_leases: int = 1000,
        epoch: int = EPOCH,
        roots: RootCounter | None = None,
    ) -> None:
        self.table = LeaseTable(
            epoch,
            declared=declared or [],
            max_resources=max_resources,
            max_waits=max_waits,
            max_leases=max_leases,
            roots=roots,
        )
        self.now = 0.0
        self.fx: list[Effect] = []
        self.log: list[Effect] = []

    def _run(self, result: tuple[Any, list[Effect]]) -> Any:
        reply, fx = result
        self.fx = fx
        self.log.extend(fx)
        self.table.check_invariants()
        return reply

    # -- verbs (all at self.now) ---------------------------------------------------------------

    def connect(self, *conns: Hashable, timeout: float = 5.0) -> None:
        """Hello for each connection, client id ``id-<conn>``."""
        for c in conns:
            self._run(self.table.connect(c, f"id-{c}", timeout, self.now))

    def advance(self, dt: float) -> list[Effect]:
        """Move the clock and tick; return the effects."""
        self.now += dt
        self._run(self.table.tick(self.now))
        return self.fx

    def touch(self, conn: Hashable) -> None:
        """Bytes from ``conn`` now."""
        self._run(self.table.touch(conn, self.now))

    def acquire(self, conn: Hashable, resource: str, name: str = "", **kw: Any) -> Any:
        """Acquire with ``kw`` (mode, wait, ttl, key...); identity from ``name``."""
        ident = kw.pop("identity", Identity(name=name))
        return self._run(self.table.acquire(conn, resource, self.now, identity=ident, **kw))

    def take(self, conn: Hashable, resource: str, reason: str = "stuck", **kw: Any) -> Any:
        """Take by force."""
        return self._run(self.table.take(conn, resource, reason, self.now, **kw))

    def ret(self, conn: Hashable, token: Any) -> Any:
        """Return."""
        return self._run(self.table.return_lease(conn, token, self.now))

    def retain(self, conn: Hashable, token: Any) -> Any:
        """Retain."""
        return self._run(self.table.retain(conn, token, self.now))

    def validate(self, token: Any, resource: str | None = None) -> Any:
        """Validate."""
        return self._run(self.table.validate(token, self.now, resource))

    def guard(self, conn: Hashable, guard: str, token: Any = None) -> Any:
        """Guard decision."""
        return self._run(self.table.check_guard(conn, guard, token, self.now))

    def cancel(self, conn: Hashable, request: Any) -> Any:
        """Cancel a wait."""
        return self._run(self.table.cancel(conn, request, self.now))

    def info(self, resource: str) -> Any:
        """Info."""
        return self._run(self.table.info(resource, self.now))

    def listing(self, prefix: str = "", after: str | None = None) -> Any:
        """List."""
        return self._run(self.table.list(self.now, prefix, after))

    def disconnect(self, conn: Hashable, reason: str = "disconnected") -> None:
        """The connection closed."""
        self._run(self.table.disconnect(conn, reason, self.now))

    def rehello(self, conn: Hashable, timeout: float) -> None:
        """A later hello with ``timeout``."""
        self._run(self.table.rehello(conn, timeout, self.now))

    def shutdown(self) -> None:
        """Graceful stop."""
        self._run(self.table.shutdown(self.now))

    # -- effect filters -----------------------------------------------------------------------

    def pushes(self, conn: Hashable | None = None, fx: list[Effect] | None = None) -> list[Push]:
        """Pushes in ``fx`` (default: the last call's), optionally to one connection."""
        return [
            e
            for e in (self.fx if fx is None else fx)
            if isinstance(e, Push) and (conn is None or e.conn == conn)
        ]

    def states(self, fx: list[Effect] | None = None) -> dict[str, dict[str, Any]]:
        """Holder states in ``fx`` by resource."""
        return {
            e.resource: e.value
            for e in (self.fx if fx is None else fx)
            if isinstance(e, HolderState)
        }

    def events(self, fx: list[Effect] | None = None) -> list[tuple[str, str, Any]]:
        """``(event, resource, reason or status)`` of each event in ``fx``."""
        return [
            (e.value["event"], e.resource, e.value.get("reason", e.value.get("status")))
            for e in (self.fx if fx is None else fx)
            if isinstance(e, Event)
        ]

    def audits(self, fx: list[Effect] | None = None) -> list[dict[str, Any]]:
        """Audit records in ``fx``."""
        return [e.record for e in (self.fx if fx is None else fx) if isinstance(e, Audit)]

    def closes(self, fx: list[Effect] | None = None) -> list[Hashable]:
        """Connections the table asked to close."""
        return [e.conn for e in (self.fx if fx is None else fx) if isinstance(e, Close)]


def holders(state: dict[str, Any]) -> list[Any]:
    """The client ids listed in a holder state or info."""
    return [h["client"] for h in state["holders"]]
