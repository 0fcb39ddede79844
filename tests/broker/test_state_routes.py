"""roost.broker.states without I/O: the broker's own published states and their refusals."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from roost.broker import states
from roost.broker.router import Router
from roost.broker.session import Session
from roost.broker.tree import STATE
from roost.protocol import codec
from roost.protocol import messages as m
from roost.protocol.framing import MAX_PAYLOAD, FrameDecoder
from roost.protocol.values import NIL, Value


class _Hooks:
    """Server hooks that do nothing: these tests read the outboxes directly."""

    def wake(self) -> None:
        pass

    def close_io(self, session: Session, reason: str) -> None:
        pass

    def timeout_changed(self, session: Session) -> None:
        pass

    def call_later(self, delay: float, callback: Callable[[float], None]) -> None:
        pass

    def peer_gone(self, session: Session) -> bool:
        return False


def _router() -> Router:
    return Router(_Hooks(), 0.0, max_outbound=1 << 20)


def _session(router: Router) -> Session:
    session = router.open_session("127.0.0.1:1", 0.0, 0.0)
    session.conn.receive_data(codec.encode(m.Hello(1, 30)))
    router.handle(session, m.Hello(1, 30), 0.0)
    _drain(session)
    return session


def _drain(session: Session) -> list[m.Message | m.BadValue]:
    if not session.outbox:
        return []
    return [codec.decode(p) for p in FrameDecoder().feed(session.take_output())]


def _bin_value(size: int) -> Value:
    """A msgpack bin value whose encoding is exactly ``size`` bytes (bin16: 3-byte header)."""
    value = Value.of(bytes(size - 3))
    assert len(value.raw) == size
    return value


def test_publish_largest_value() -> None:
    """A value of exactly MAX_STATE_VALUE bytes on a short path is stored and notified."""
    router = _router()
    observer = _session(router)
    router.handle(observer, m.StateObserve(1, "/s"), 0.0)
    assert _drain(observer) == [m.ReplyStateUnknown(1)]
    value = _bin_value(states.MAX_STATE_VALUE)
    router.publish_state("/s", value, 1.0)
    assert _drain(observer) == [m.StateNotify("/s", value)]
    assert router.tree.nodes["/s"].value == value.raw


def test_publish_too_large_keeps_old_value() -> None:
    """A value over MAX_STATE_VALUE raises ValueError; the old value stays, nobody is told."""
    router = _router()
    observer = _session(router)
    router.handle(observer, m.StateObserve(1, "/s"), 0.0)
    router.publish_state("/s", Value.of(1), 1.0)
    _drain(observer)
    with pytest.raises(ValueError, match="does not fit"):
        router.publish_state("/s", _bin_value(states.MAX_STATE_VALUE + 1), 2.0)
    assert router.tree.nodes["/s"].value == Value.of(1).raw
    assert _drain(observer) == []


def test_publish_notification_must_fit() -> None:
    """A value that fits a reply but not the notification with its long path is refused."""
    router = _router()
    observer = _session(router)
    path = "/meta/leases/" + "r" * 40 + "/holder"
    router.handle(observer, m.StateObserve(1, path), 0.0)
    _drain(observer)
    node = router.tree.nodes[path]
    fits = MAX_PAYLOAD - len(node.note_head)
    with pytest.raises(ValueError, match="does not fit"):
        router.publish_state(path, _bin_value(fits + 1), 1.0)
    assert node.value is None
    assert _drain(observer) == []
    router.publish_state(path, _bin_value(fits), 2.0)
    assert _drain(observer) == [m.StateNotify(path, _bin_value(fits))]


def test_publish_refuses_client_state() -> None:
    """publish_state on a state a client owns raises ValueError and leaves it to its owner."""
    router = _router()
    owner = _session(router)
    router.handle(owner, m.StateRegister(1, "/s"), 0.0)
    router.handle(owner, m.StateChanged(2, "/s", Value.of("mine")), 0.0)
    assert _drain(owner) == [m.ReplyOk(1, NIL), m.ReplyOk(2, NIL)]
    with pytest.raises(ValueError, match="not a free state"):
        router.publish_state("/s", Value.of("broker"), 1.0)
    node = router.tree.nodes["/s"]
    assert node.value == Value.of("mine").raw
    assert not node.internal


@pytest.mark.parametrize(
    ("path", "reason"),
    [("/a", "path_is_directory"), ("/a/b/c", "not_a_directory"), ("/x/", "invalid_path")],
)
def test_internal_node_refuses_blocked_paths(path: str, reason: str) -> None:
    """internal_node raises ValueError naming the tree's error for a path it cannot take."""
    router = _router()
    owner = _session(router)
    router.handle(owner, m.ActionRegister(1, "/a/b"), 0.0)
    assert _drain(owner) == [m.ReplyOk(1, NIL)]
    with pytest.raises(ValueError, match=reason):
        states.internal_node(router.tree, path, STATE, 0.0)
    assert path not in router.tree.nodes
