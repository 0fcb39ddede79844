"""What the router's helper modules (``meta``, ``states``) see of the router.

Rules of this module:

- Protocols only: :class:`~roost.broker.router.Router` satisfies :class:`RouterView`, and the
  helpers take a ``RouterView`` so that they sit below the router and import nothing of it.
- Keep it to what the helpers use; a new need is a new member here, not an import of the router.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

from roost.broker.auth.gate import Gate
from roost.broker.hooks import ServerHooks
from roost.broker.session import Session
from roost.broker.stats import Stats
from roost.broker.subtree import SubtreeIndex
from roost.broker.tree import Node, Tree
from roost.protocol import messages as m
from roost.protocol.values import Value

__all__ = ("MetaView", "RouterView")


class MetaView(Protocol):
    """The part of the ``/meta`` nodes the state handlers call."""

    def refresh(self, node: Node[Session], now: float) -> None:
        """Bring a broker-computed state up to date before it is read."""

    def clients_changed(self, now: float) -> None:
        """The set of connected clients or what they own changed."""


class RouterView(Protocol):
    """The router as its helpers see it."""

    tree: Tree[Session]
    hooks: ServerHooks
    sessions: dict[Session, None]
    leases_held: Callable[[Session], int]
    stats: Stats
    subtrees: SubtreeIndex[Session]
    #: Registrations plus subscriptions one connection may hold (``[limits]``).
    max_per_connection: int
    #: Tree entries one connection's requests may create (``[limits]``).
    max_entries_per_connection: int
    gate: Gate

    @property
    def meta(self) -> MetaView:
        """The broker's own ``/meta`` nodes."""
        ...

    def disconnect(self, session: Session, reason: str, now: float) -> None:
        """Forget ``session`` at once and close its transport."""
        ...

    def publish_state(self, path: str, value: Value | m.UnknownType, now: float) -> None:
        """Set a broker-owned state and notify its observers."""
        ...
