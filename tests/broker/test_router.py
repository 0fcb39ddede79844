"""The router and tree without I/O: fake server hooks, messages in, frames out."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from roost.broker.router import Router
from roost.broker.session import Session
from roost.broker.tree import Tree
from roost.protocol import codec
from roost.protocol import messages as m
from roost.protocol.framing import FrameDecoder
from roost.protocol.values import NIL, Value


class FakeHooks:
    """Records what the router asks of the server."""

    def __init__(self) -> None:
        self.wakes = 0
        self.closed: list[tuple[Session, str]] = []
        self.timers: list[tuple[float, Callable[[float], None]]] = []
        self.gone: set[Session] = set()

    def wake(self) -> None:
        self.wakes += 1

    def close_io(self, session: Session, reason: str) -> None:
        self.closed.append((session, reason))

    def timeout_changed(self, session: Session) -> None:
        pass

    def call_later(self, delay: float, callback: Callable[[float], None]) -> None:
        self.timers.append((delay, callback))

    def peer_gone(self, session: Session) -> bool:
        return session in self.gone


def _router() -> tuple[Router, FakeHooks]:
    hooks = FakeHooks()
    return Router(hooks, 0.0, max_outbound=1 << 20), hooks


def _session(router: Router, hello: bool = True) -> Session:
    session = router.open_session("127.0.0.1:1", 0.0, 0.0)
    if hello:
        session.conn.receive_data(codec.encode(m.Hello(1, 30)))
        router.handle(session, m.Hello(1, 30), 0.0)
        _drain(session)
    return session


def _drain(session: Session) -> list[m.Message | m.BadValue]:
    if not session.outbox:
        return []
    decoder = FrameDecoder()
    return [codec.decode(p) for p in decoder.feed(session.take_output())]


def v(obj: object) -> Value:
    """A packed value."""
    return Value.of(obj)


def test_tree_directories_vanish() -> None:
    """Removing the last node of a directory chain removes the chain, not the root."""
    tree: Tree[Any] = Tree()
    node = tree.create("/a/b/c", "action", 0.0)
    other = tree.create("/a/x", "event", 0.0)
    assert tree.find("/a/b") == "path_is_directory"
    assert tree.find("/a/b/c/d") == "not_a_directory"
    tree.remove(node)
    assert tree.find("/a/b") == "path_not_found"
    assert tree.find("/a/x") is other
    tree.remove(other)
    assert tree.root.children == {}


def test_tree_check_free() -> None:
    """check_free reports the error creating a node would hit."""
    tree: Tree[Any] = Tree()
    tree.create("/a/b", "action", 0.0)
    assert tree.check_free("/a") == "path_is_directory"
    assert tree.check_free("/a/b") == "path_already_exists"
    assert tree.check_free("/a/b/c") == "not_a_directory"
    assert tree.check_free("/a/c/d") is None
    assert tree.check_free("/a/") == "invalid_path"


def test_fan_out_shares_one_frame() -> None:
    """An emit queues the same bytes object on every listener, after the emitter's reply."""
    router, hooks = _router()
    emitter, first, second = _session(router), _session(router), _session(router)
    for listener in (first, second):
        router.handle(listener, m.EventListen(1, "/ev"), 0.0)
        _drain(listener)
    router.handle(emitter, m.EventEmit(5, "/ev", v("x")), 0.0)
    assert first.outbox[0] is second.outbox[0]
    assert _drain(emitter) == [m.ReplyOk(5, NIL)]
    assert _drain(first) == [m.EventNotify("/ev", v("x"))]
    assert hooks.wakes >= 1


def test_publish_state_and_event() -> None:
    """publish_state/publish_event create broker-owned nodes clients cannot write."""
    router, _ = _router()
    observer = _session(router)
    router.handle(observer, m.StateObserve(1, "/meta/leases/r/holder"), 0.0)
    assert _drain(observer) == [m.ReplyStateUnknown(1)]
    router.publish_state("/meta/leases/r/holder", v({"holders": []}), 1.0)
    assert _drain(observer) == [m.StateNotify("/meta/leases/r/holder", v({"holders": []}))]
    router.handle(observer, m.Set(2, "/meta/leases/r/holder", v(1)), 1.0)
    router.handle(observer, m.StateChanged(3, "/meta/leases/r/holder", v(1)), 1.0)
    assert _drain(observer) == [
        m.ReplyError(2, v("not_owner")),
        m.ReplyError(3, v("not_owner")),
    ]
    router.publish_state("/meta/leases/r/holder", m.Unknown, 2.0)
    assert _drain(observer) == [m.StateNotifyUnknown("/meta/leases/r/holder")]
    router.handle(observer, m.EventListen(4, "/meta/lease_events"), 2.0)
    router.publish_event("/meta/lease_events", v({"event": "granted"}), 2.0)
    assert _drain(observer) == [
        m.ReplyOk(4, NIL),
        m.EventNotify("/meta/lease_events", v({"event": "granted"})),
    ]
    router.disconnect(observer, "disconnected", 3.0)
    assert "/meta/leases/r/holder" in router.tree.nodes


def test_extension_default_and_opt_in() -> None:
    """Extension requests mark the session opted in and get bad_args until leases exist."""
    router, _ = _router()
    session = _session(router)
    before = session.opted_in
    router.handle(session, m.LeaseInfo(9, v({"resource": "r"})), 0.0)
    assert (before, session.opted_in) == (False, True)
    assert _drain(session) == [m.ReplyError(9, v({"status": "bad_args"}))]


def test_disconnect_cleans_everything() -> None:
    """Disconnect removes owned nodes, answers pending calls and runs hooks once."""
    router, hooks = _router()
    owner, caller = _session(router), _session(router)
    seen: list[str] = []
    router.disconnect_hooks.append(lambda s, reason, now: seen.append(reason))
    router.handle(owner, m.ActionRegister(1, "/act"), 0.0)
    router.handle(owner, m.StateRegister(2, "/st"), 0.0)
    router.handle(caller, m.ActionCall(7, "/act", v([])), 0.0)
    assert owner.pending
    router.disconnect(owner, "timeout", 1.0)
    router.disconnect(owner, "timeout", 1.0)
    assert _drain(caller) == [m.ReplyError(7, v("client_exited"))]
    assert [p for p in router.tree.nodes if not p.startswith("/meta/")] == []
    assert seen == ["timeout"]
    assert hooks.closed == [(owner, "timeout")]


def test_register_over_gone_owner() -> None:
    """A register that meets the node of a peer that already closed cleans it up first (§10.6)."""
    router, hooks = _router()
    old, new = _session(router), _session(router)
    router.handle(old, m.ActionRegister(1, "/p"), 0.0)
    hooks.gone.add(old)
    router.handle(new, m.ActionRegister(2, "/p"), 0.0)
    assert _drain(new) == [m.ReplyOk(2, NIL)]
    assert old.closed


def test_clients_value_cut_to_a_frame() -> None:
    """/meta/clients lists as many clients as fit one frame and counts them all (§15.3)."""
    router, _hooks = _router()
    sessions = [_session(router) for _ in range(1500)]
    watcher = sessions[0]
    router.handle(watcher, m.StateObserve(1, "/meta/clients"), 0.0)
    reply = _drain(watcher)[0]
    assert isinstance(reply, m.ReplyStateKnown)
    assert len(reply.value.raw) <= 65535 - 7
    assert reply.value.obj["clients_total"] == 1500
    assert 0 < len(reply.value.obj["clients"]) < 1500


def test_clients_rate_limited() -> None:
    """Churn schedules one /meta/clients update at a time, at most every 100 ms."""
    router, hooks = _router()
    watcher = _session(router)
    router.handle(watcher, m.StateObserve(1, "/meta/clients"), 0.0)
    _drain(watcher)
    for _, callback in hooks.timers:
        callback(0.0)
    hooks.timers.clear()
    _drain(watcher)
    for _ in range(5):
        _session(router)
    assert len(hooks.timers) == 1
    _, callback = hooks.timers.pop()
    callback(0.0)
    note = _drain(watcher)
    assert len(note) == 1
    assert isinstance(note[0], m.StateNotify)
    assert note[0].value.obj["clients_total"] == 6
    _session(router)
    _session(router)
    assert len(hooks.timers) == 1
    delay, callback = hooks.timers.pop()
    assert abs(delay - 0.1) < 1e-9
    callback(0.1)
    assert len(_drain(watcher)) == 1
