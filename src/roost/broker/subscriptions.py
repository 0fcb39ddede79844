"""Registrations and subscriptions: who owns a node, and who listens to or observes it.

Rules of this module:

- Plain synchronous functions taking the router (as a :class:`~roost.broker.view.RouterView`);
  the router's dispatch table binds them, so they run inside its ``handle`` and never await.
- Registering creates the node or adopts an ownerless event or state; subscribing creates an
  ownerless event or state when the path is free. Errors are replies, never exceptions.
- One connection holds at most ``max_per_connection`` registrations and subscriptions
  together, and its requests create at most ``max_entries_per_connection`` tree entries
  (``too_many_registrations`` for both); the tree checks path and size limits itself.
- Subtree listens and observes (protocol.md E12) start here too; which nodes they reach is
  :mod:`roost.broker.subtree`'s business. An observe's snapshot, its reply and its
  subscription are one synchronous step.
- The broker's lease nodes (``/meta/leases``...) are reserved: no client registers there, and
  only holder states and lease event nodes may be subscribed to (protocol.md E10).
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from typing import Any, Final

from roost.broker import frames
from roost.broker.auth.gate import denied
from roost.broker.limits import TOO_MANY_REGISTRATIONS
from roost.broker.session import Session
from roost.broker.subtree import PatternError, Sub, parse_pattern
from roost.broker.tree import ACTION, EVENT, PROP, STATE, Node
from roost.broker.view import RouterView
from roost.protocol import messages as m
from roost.protocol.tokens import valid_resource
from roost.protocol.values import pack

__all__ = (
    "MAX_SUBTREES",
    "RESERVED_PREFIX",
    "event_listen",
    "register",
    "register_handlers",
    "reserved",
    "subscribable",
    "subscribe",
    "subtree_cancel",
    "subtree_handlers",
    "subtree_listen",
    "subtree_observe",
)

RESERVED_PREFIX: Final = "/meta/leases/"


def reserved(path: str) -> bool:
    """True for the paths of the broker's lease and lock nodes, which no client may register."""
    return path.startswith((RESERVED_PREFIX, "/meta/locks/")) or path in (
        "/meta/leases",
        "/meta/lease_events",
        "/meta/locks",
    )


def _full(router: RouterView, session: Session, rid: int) -> bool:
    """True (after the error reply) if ``session`` holds all the registrations and
    subscriptions one connection may (``max_per_connection``)."""
    if len(session.owned) + len(session.listening) < router.max_per_connection:
        return False
    session.push(frames.err(rid, TOO_MANY_REGISTRATIONS))
    return True


def _create(
    router: RouterView, session: Session, rid: int, path: str, *, kind: str, now: float
) -> Node[Session] | None:
    """Create the node at a free, accepted ``path`` for ``session``, unless the entries it may
    need would take the connection past ``max_entries_per_connection`` (then an error reply and
    ``None``)."""
    if session.entries + path.count("/") > router.max_entries_per_connection:
        session.push(frames.err(rid, TOO_MANY_REGISTRATIONS))
        return None
    tree = router.tree
    node = tree.create(path, kind, now)
    session.entries += tree.created
    return node


def register(
    router: RouterView, session: Session, rid: int, path: str, now: float, *, kind: str
) -> None:
    """Make ``session`` the owner of a new ``kind`` node at ``path`` (or of the ownerless event
    or state there) and reply ok; otherwise an error reply (``forbidden`` without the
    ``register`` permission) and nothing changes."""
    if session.grants is not None and denied(router.gate, session, "register", path, rid):
        return
    if _full(router, session, rid):
        return
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
        node = _create(router, session, rid, path, kind=kind, now=now)
        if node is None:
            return
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
    listeners; ``None`` after an error reply (bad path, another kind there, a reserved
    /meta/leases path, or ``forbidden`` without ``observe`` / ``listen``), with nothing
    subscribed. Subscribing twice is harmless."""
    permission = "observe" if kind is STATE else "listen"
    if session.grants is not None and denied(router.gate, session, permission, path, rid):
        return None
    tree = router.tree
    node = tree.nodes.get(path)
    if (node is None or session not in node.listeners) and _full(router, session, rid):
        return None
    if node is None:
        error = tree.check_free(path)
        if error is None and not subscribable(path, kind):
            error = "path_already_exists"
        if error is not None:
            session.push(frames.err(rid, error))
            return None
        node = _create(router, session, rid, path, kind=kind, now=now)
        if node is None:
            return None
    elif node.kind != kind:
        session.push(frames.err(rid, "path_already_exists"))
        return None
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


# -- subtree subscriptions (protocol.md E12) ---------------------------------------------------

#: The most subtree subscriptions one connection may hold at once.
MAX_SUBTREES: Final = 1024


def _reply(session: Session, rid: int, body: dict[str, Any]) -> None:
    raw = pack(body)
    session.push(frames.reply(0x05 if body["status"] == "OK" else 0x06, rid, raw))


def _args(session: Session, msg: Any, *keys: str) -> dict[str, Any] | None:
    """The request map with ``keys`` checked, or ``None`` after a ``bad_args`` reply."""
    body = msg.body.obj
    problem = None
    if not isinstance(body, dict):
        problem = "the request body must be a map"
    elif "sub" in keys and not (
        isinstance(body.get("sub"), int) and not isinstance(body["sub"], bool)
    ):
        problem = "sub must be an integer"
    elif "sub" in keys and not 0 <= body["sub"] <= 0xFFFF:
        problem = "sub must be between 0 and 65535"
    elif "pattern" in keys and not isinstance(body.get("pattern"), str):
        problem = "pattern must be a string"
    if problem is None:
        return body  # type: ignore[no-any-return]
    _reply(session, msg.id, {"status": "bad_args", "reason": problem})
    return None


def _start(
    router: RouterView, session: Session, msg: Any, kind: str
) -> tuple[Sub[Session], list[Node[Session]]] | None:
    """Check a subtree listen or observe and start it; ``None`` after an error reply."""
    session.opted_in = True
    args = _args(session, msg, "sub", "pattern")
    if args is None:
        return None
    index = router.subtrees
    number, pattern = args["sub"], args["pattern"]
    try:
        segments = parse_pattern(pattern)
    except PatternError as exc:
        _reply(session, msg.id, {"status": "invalid_pattern", "reason": str(exc)})
        return None
    subs = index.subs_of(session)
    if number in subs:
        _reply(session, msg.id, {"status": "bad_args", "reason": f"sub {number} is in use"})
        return None
    if len(subs) >= MAX_SUBTREES:
        _reply(session, msg.id, {"status": "too_many_subscriptions", "limit": MAX_SUBTREES})
        return None
    allows = index.permit(session, pattern, kind)
    sub = Sub(session, number, kind, pattern, segments=segments, allows=allows)
    return sub, index.add(sub)


def subtree_listen(router: RouterView, session: Session, msg: m.SubtreeListen, now: float) -> None:
    """``subtree_listen``: every later emit on an event matching the pattern reaches
    ``session`` as a ``subtree_event`` push, events registered later included."""
    if _start(router, session, msg, EVENT) is not None:
        _reply(session, msg.id, {"status": "OK"})


def subtree_observe(
    router: RouterView, session: Session, msg: m.SubtreeObserve, now: float
) -> None:
    """``subtree_observe``: a ``subtree_snapshot`` push of each known state matching the
    pattern, then the ok reply (with the count), then every later change as a push.

    All of it happens in this one synchronous step, so no change falls between the snapshot
    and the stream and none is in both. A value whose snapshot push would not fit a frame
    (a broker-published value on a very long path) is left out of the snapshot.
    """
    started = _start(router, session, msg, STATE)
    if started is None:
        return
    sub, nodes = started
    count = 0
    allows = sub.allows
    for node in nodes:
        if allows is not None and not allows(node.path):
            continue
        if node.internal:
            router.meta.refresh(node, now)
        raw = node.value
        if raw is None or 3 + len(node.path_head) + len(raw) > frames.MAX_PAYLOAD:
            continue
        session.push(frames.subtree_snapshot(sub.number, node.path_head, raw))
        count += 1
    _reply(session, msg.id, {"status": "OK", "states": count})


def subtree_cancel(router: RouterView, session: Session, msg: m.SubtreeCancel, now: float) -> None:
    """``subtree_cancel``: end one subtree subscription of ``session`` (ok if it had none
    by that number). Pushes already queued are still delivered."""
    session.opted_in = True
    args = _args(session, msg, "sub")
    if args is None:
        return
    index = router.subtrees
    sub = index.subs_of(session).get(args["sub"])
    if sub is not None:
        index.remove(sub)
    _reply(session, msg.id, {"status": "OK"})


def subtree_handlers(router: RouterView) -> dict[type, Handler]:
    """The dispatch entries of the subtree requests, bound to ``router``."""
    return {
        m.SubtreeListen: partial(subtree_listen, router),
        m.SubtreeObserve: partial(subtree_observe, router),
        m.SubtreeCancel: partial(subtree_cancel, router),
    }
