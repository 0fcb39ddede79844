"""Registrations and subscriptions: who owns a node, and who listens to or observes it.

Rules of this module:

- Plain synchronous functions taking the router (as a :class:`~roost.broker.view.RouterView`);
  the router's dispatch table binds them, so they run inside its ``handle`` and never await.
- Registering creates the node or adopts an ownerless event or state; subscribing creates an
  ownerless event or state when the path is free. Errors are replies, never exceptions.
- The broker's lease nodes (``/meta/leases``...) are reserved: no client registers there, and
  only holder states and lease event nodes may be subscribed to (protocol.md E10).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Final

from roost.broker import frames
from roost.broker.session import Session
from roost.broker.tree import ACTION, EVENT, PROP, STATE, Node
from roost.broker.view import RouterView
from roost.protocol import messages as m
from roost.protocol.tokens import valid_resource

__all__ = (
    "RESERVED_PREFIX",
    "event_listen",
    "register",
    "register_handlers",
    "reserved",
    "subscribable",
    "subscribe",
)

RESERVED_PREFIX: Final = "/meta/leases/"


def reserved(path: str) -> bool:
    """True for the paths of the broker's lease nodes, which no client may register."""
    return path.startswith(RESERVED_PREFIX) or path in ("/meta/leases", "/meta/lease_events")


def register(
    router: RouterView, session: Session, rid: int, path: str, now: float, *, kind: str
) -> None:
    """Make ``session`` the owner of a new ``kind`` node at ``path`` (or of the ownerless event
    or state there) and reply ok; otherwise an error reply and nothing changes."""
    tree = router.tree
    node = tree.nodes.get(path)
    owner = None if node is None else node.owner
    # A client that closes and at once registers again from a new connection must not lose
    # the race against the close being reported (protocol.md §10.6).
    if owner is not None and owner is not session and router.hooks.peer_gone(owner):
        router.disconnect(owner, "disconnected", now)
        node = tree.nodes.get(path)
    if node is None:
        error = tree.check_free(path)
        if error is None and reserved(path):
            error = "path_already_exists"
        if error is not None:
            session.push(frames.err(rid, error))
            return
        node = tree.create(path, kind, now)
    elif (
        node.owner is not None
        or node.internal
        or node.kind != kind
        or kind is ACTION
        or kind is PROP
        or reserved(path)
    ):
        session.push(frames.err(rid, "path_already_exists"))
        return
    node.owner = session
    session.own(node)
    session.push(frames.ok_nil(rid))
    router.meta.clients_changed(now)


Handler = Callable[[Session, Any, float], None]


def register_handlers(router: RouterView) -> dict[type, Handler]:
    """The dispatch entries of the four register requests, bound to ``router``."""

    def bind(kind: str) -> Handler:
        def handle(session: Session, msg: Any, now: float) -> None:
            register(router, session, msg.id, msg.path, now, kind=kind)

        return handle

    return {
        m.ActionRegister: bind(ACTION),
        m.PropRegister: bind(PROP),
        m.EventRegister: bind(EVENT),
        m.StateRegister: bind(STATE),
    }


def subscribe(
    router: RouterView, session: Session, rid: int, path: str, now: float, *, kind: str
) -> Node[Session] | None:
    """Find or create (ownerless) the event or state at ``path`` and add ``session`` to its
    listeners; ``None`` after an error reply (bad path, another kind there, or a reserved
    /meta/leases path), with nothing subscribed. Subscribing twice is harmless."""
    tree = router.tree
    node = tree.nodes.get(path)
    if node is None:
        error = tree.check_free(path)
        if error is None and not subscribable(path, kind):
            error = "path_already_exists"
        if error is not None:
            session.push(frames.err(rid, error))
            return None
        node = tree.create(path, kind, now)
    elif node.kind != kind:
        session.push(frames.err(rid, "path_already_exists"))
        return None
    node.listeners[session] = None
    session.listen(node)
    return node


def subscribable(path: str, kind: str) -> bool:
    """Under /meta/leases only ``<resource>/holder`` states and ``<resource>/events``
    events may be observed or listened to (protocol.md E10)."""
    if not path.startswith(RESERVED_PREFIX):
        return path != "/meta/leases"
    tail = "/holder" if kind is STATE else "/events"
    # The middle must be a resource name, so no such node can block one the broker needs.
    return path.endswith(tail) and valid_resource(path[len(RESERVED_PREFIX) : -len(tail)])


def event_listen(router: RouterView, session: Session, msg: m.EventListen, now: float) -> None:
    """``event_listen``: subscribe ``session`` (the event is created ownerless if absent)."""
    if subscribe(router, session, msg.id, msg.path, now, kind=EVENT) is not None:
        session.push(frames.ok_nil(msg.id))
