"""States in the router: owner updates, observes and the broker's own published nodes.

Rules of this module:

- Plain synchronous functions taking the router; its dispatch table binds them, so they run
  inside ``RouterView.handle`` and never await.
- A state's stored value is its owner's msgpack bytes (``Node.value``), ``None`` while unknown.
- Every update notifies every observer, repeats included (protocol.md §10.5): one frame is
  encoded per update and the same bytes object is queued on each observer.
- A value that could not fit a ``reply_state_t`` frame is never stored: an owner gets
  ``value_too_large``, the broker's own publisher a ``ValueError``.
"""

from __future__ import annotations

from typing import Final

from roost.broker import frames
from roost.broker.session import Session, fan_out
from roost.broker.subscriptions import subscribe
from roost.broker.tree import STATE, Node, Tree
from roost.broker.view import RouterView
from roost.protocol import messages as m
from roost.protocol.values import Value

__all__ = (
    "MAX_STATE_VALUE",
    "changed",
    "internal_node",
    "notify_unknown",
    "observe",
    "publish",
    "set_state",
    "unknown",
)

#: The largest state value: a ``reply_state_t`` known payload is 7 bytes plus the value.
MAX_STATE_VALUE: Final = frames.MAX_PAYLOAD - 7


def _owned_state(
    session: Session, tree: Tree[Session], rid: int, path: str
) -> Node[Session] | None:
    """The state an owner update targets, or ``None`` after the error reply (§9.2)."""
    node = tree.nodes.get(path)
    if node is None:
        found = tree.find(path)
        assert isinstance(found, str)
        session.push(frames.err(rid, "no_such_node" if found == "path_not_found" else found))
        return None
    if node.kind is not STATE:
        session.push(frames.err(rid, "wrong_type_of_node"))
        return None
    if node.owner is not session:
        session.push(frames.err(rid, "not_owner"))
        return None
    return node


def changed(router: RouterView, session: Session, msg: m.StateChanged, now: float) -> None:
    """``state_changed`` from the owner: store the value, reply ok, notify the observers.

    The reply is queued before the notifications, so an owner that also observes its own
    state sees the ok first. Not the owner, no such node or a value too large for a frame:
    an error reply and nothing changes.
    """
    node = _owned_state(session, router.tree, msg.id, msg.path)
    if node is None:
        return
    raw = msg.value.raw
    if len(raw) > MAX_STATE_VALUE:
        session.push(frames.err(msg.id, "value_too_large"))
        return
    session.push(frames.ok_nil(msg.id))
    router.stats.state_deliveries += len(node.listeners) + len(node.watchers)
    set_state(node, raw, now)


def unknown(router: RouterView, session: Session, msg: m.StateUnknown, now: float) -> None:
    """``state_unknown`` from the owner: forget the value, reply ok, notify the observers
    (also when the state was already unknown)."""
    node = _owned_state(session, router.tree, msg.id, msg.path)
    if node is None:
        return
    session.push(frames.ok_nil(msg.id))
    router.stats.state_deliveries += len(node.listeners) + len(node.watchers)
    set_state(node, None, now)


def set_state(node: Node[Session], raw: bytes | None, now: float) -> None:
    """Store a state value (``None``: unknown) and notify every observer (§10.5) and every
    subtree observer (E12)."""
    node.value = raw
    node.last_update = now
    if raw is None:
        notify_unknown(node)
        return
    if node.listeners:
        fan_out(node.listeners, frames.notify(node.note_head, raw))
    if node.watchers:
        fan_out(node.watchers, frames.subtree_notify(b"\x7d", node.path_head, raw))


def notify_unknown(node: Node[Session]) -> None:
    """Tell the observers and subtree observers of ``node`` that it is unknown now."""
    if node.listeners:
        fan_out(node.listeners, frames.frame(b"\x45" + node.path_head))
    if node.watchers:
        fan_out(node.watchers, frames.subtree_notify(b"\x7e", node.path_head))


def observe(
    router: RouterView, session: Session, msg: m.StateObserve | m.StateObserveT, now: float
) -> None:
    """``state_observe`` / ``state_observe_t``: subscribe ``session`` and reply with the
    current value (ownerless states are created, unknown). The reply is queued before any
    later notification. Errors (bad path, wrong kind, a reserved /meta/leases path) get an
    error reply and subscribe nothing."""
    node = subscribe(router, session, msg.id, msg.path, now, kind=STATE)
    if node is None:
        return
    if node.internal:
        router.meta.refresh(node, now)
    raw = node.value
    if type(msg) is m.StateObserve:
        if raw is None:
            session.push(b"G\x00\x03\x08" + msg.id.to_bytes(2, "big"))
        else:
            session.push(frames.reply(0x07, msg.id, raw))
    else:
        ms = int((now - node.last_update) * 1000) & 0xFFFFFFFF
        session.push(frames.reply_state_t(msg.id, ms, raw))


def publish(router: RouterView, path: str, value: Value | m.UnknownType, now: float) -> None:
    """Set the broker-owned state ``path`` (created or adopted if needed) and notify its
    observers; every call notifies, known or unknown.

    Raises:
        ValueError: ``path`` is taken by something else, or the value does not fit a frame
            (a ``reply_state_t`` reply, or the notification with its path; protocol.md §15:
            the caller cuts published values to fit). Nothing is stored or sent then.
    """
    node = internal_node(router.tree, path, STATE, now)
    raw = None if isinstance(value, m.UnknownType) else value.raw
    # Both the replies and the notification (path and value) must fit: a client's own update
    # always fits its notification, a value published on a long path may not.
    if raw is not None and (
        len(raw) > MAX_STATE_VALUE or len(node.note_head) + len(raw) > frames.MAX_PAYLOAD
    ):
        raise ValueError(f"state value for {path} does not fit in a frame")
    set_state(node, raw, now)


def internal_node(tree: Tree[Session], path: str, kind: str, now: float) -> Node[Session]:
    """The broker-owned node of ``kind`` at ``path``: created, or adopted if it exists
    without an owner (its listeners stay).

    Raises:
        ValueError: the path is invalid or blocked (a directory there, a node above it), or
            holds a node of another kind or one a client owns.
    """
    node = tree.nodes.get(path)
    if node is None:
        error = tree.check_free(path)
        if error is not None:
            raise ValueError(f"cannot create {kind} {path}: {error}")
        node = tree.create(path, kind, now)
    elif node.kind != kind or node.owner is not None:
        raise ValueError(f"{path} is not a free {kind}")
    node.internal = True
    return node
