"""The router: the one place that changes the tree and the sessions.

Rules of this module:

- ``handle(session, message, now)`` is synchronous and never awaits: each inbound message is
  handled atomically, so nothing here needs a lock.
- Output is queued with ``Session.push``; the server flushes once per event-loop iteration.
  Fan-out encodes a frame once and queues the same bytes object on every listener.
- Values travel as the sender's bytes (``Value.raw``); they were validated once on arrival.
- ``action_call`` and ``event_emit``, the busiest requests, also enter from their parts
  (``raw_handlers``: id, path, value bytes) without a message object; one code path serves both.
  So do owners' replies (``reply_raw``), the other half of every forwarded call.
- Replies the router produces itself are queued while handling the request, so they keep
  request order (protocol.md §13); forwarded replies go out when the owner answers.
- Cleanup on close is synchronous (protocol.md §10.6): ``disconnect`` leaves no trace of the
  session.
- Time is a parameter: ``now`` is the event loop's monotonic clock; nothing here reads a clock.
- State owner updates, observes and ``publish_state`` live in :mod:`roost.broker.states`,
  plain functions bound into the dispatch table; they follow these rules too.
- Extension hook points: ``handle_extension``, ``hello_hooks``, ``disconnect_hooks``,
  ``leases_held``, ``Node.guard``, ``publish_state`` / ``publish_event``, ``store_set``,
  ``subtrees.permit`` (what a subtree subscription may see, decided when it is made) and ``gate``
  (access: permissions are ``session.grants``, checked where a request is handled).
"""

from __future__ import annotations

import secrets
from collections.abc import Callable
from functools import partial
from typing import Any

from roost.broker import frames, meta, states, subscriptions
from roost.broker.auth.gate import Gate, denied
from roost.broker.hooks import ServerHooks
from roost.broker.limits import Limits
from roost.broker.session import Session, fan_out
from roost.broker.stats import Stats
from roost.broker.subtree import SubtreeIndex
from roost.broker.teardown import TEARDOWN_CHUNK, Teardowns
from roost.broker.tree import ACTION, EVENT, PROP, STATE, Node, Tree
from roost.protocol import messages as m
from roost.protocol.values import Value, pack

__all__ = ("Router", "ServerHooks")


def _id_key(value: Value) -> Any:
    """Registry key of a client id: its canonical msgpack form (``1`` != ``1.0``, str != bin)."""
    try:
        return pack(value.obj)
    except Exception:
        return value.raw


#: Extension requests a client may send (leases, locks and pools 0x50-0x5f, subtree
#: subscriptions 0x78-0x7a; 0x60-0x6f and 0x7c-0x7f are the broker's).
_EXTENSION_REQUESTS = tuple(
    cls for code, cls in m.BY_CODE.items() if 0x50 <= code <= 0x5F or 0x78 <= code <= 0x7A
)


#: Requests that read no client's node and no lease: nothing to settle before them while a
#: close is being cleaned up.
_READ_NOTHING = frozenset(
    (m.Ping, m.Hello, m.HelloId, m.ReplyOk, m.ReplyError, m.BadValue, m.AuthLogin, m.AuthReload)
)
#: Requests on one path: settling that path is enough (a ``/meta`` node settles everything).
_READ_ONE_PATH = frozenset(
    (
        m.ActionCall,
        m.Get,
        m.Set,
        m.EventEmit,
        m.EventListen,
        m.StateChanged,
        m.StateUnknown,
        m.StateObserve,
        m.StateObserveT,
        m.ActionRegister,
        m.PropRegister,
        m.EventRegister,
        m.StateRegister,
    )
)


class Router:
    """Routes every message between sessions over one tree.

    Args:
        hooks: the I/O layer's callbacks.
        now: monotonic time at start (``/meta/broker``'s observe_t counts from it).
        max_outbound: default bound on each session's unsent output (protocol.md §14).
        limits: path, tree and per-connection limits (docs/reference/limits.md).
        teardown_chunk: nodes of a closed connection settled per event-loop iteration
            (:mod:`roost.broker.teardown`).
    """

    def __init__(
        self,
        hooks: ServerHooks,
        now: float,
        *,
        max_outbound: int,
        limits: Limits | None = None,
        teardown_chunk: int = TEARDOWN_CHUNK,
    ) -> None:
        self.hooks = hooks
        self.max_outbound = max_outbound
        self.limits = limits = limits if limits is not None else Limits()
        self.max_per_connection = limits.max_per_connection
        self.max_entries_per_connection = limits.max_entries_per_connection
        self.tree: Tree[Session] = Tree(
            max_length=limits.max_path_length,
            max_depth=limits.max_path_depth,
            max_entries=limits.max_tree_entries,
        )
        #: Running figures (counted where the work already happens; see roost.broker.stats).
        self.stats = Stats()
        #: Subtree listens and observes; the watchers of every node.
        self.subtrees: SubtreeIndex[Session] = SubtreeIndex(self.tree)
        #: Closed connections whose nodes (or many leases) are still being settled;
        #: ``closing`` (their dict) is empty unless one is, and then each request settles
        #: what it reads first.
        self.teardowns = Teardowns(self.tree, hooks, teardown_chunk)
        self.closing = self.teardowns.pending
        #: Every open session, in connection order.
        self.sessions: dict[Session, None] = {}
        #: Sessions with queued output since the last flush.
        self.dirty: list[Session] = []
        #: Sessions over their outbound bound, closed by :meth:`reap`.
        self.doomed: list[Session] = []
        self._by_key: dict[Any, Session] = {}
        # Bound once: every session shares them (an idle connection should cost little).
        self._wake = hooks.wake
        self._overflow = self.doomed.append
        self._id_prefix = secrets.token_hex(4)
        self._id_counter = 0
        #: Lease layer hooks: called after a hello (session, now) and after cleanup of a closed
        #: session (session, reason, now); ``leases_held`` feeds ``/meta/clients``.
        self.hello_hooks: list[Callable[[Session, float], None]] = []
        self.disconnect_hooks: list[Callable[[Session, str, float], None]] = []
        self.leases_held: Callable[[Session], int] = lambda session: 0
        self.stop_hooks: list[Callable[[float], None]] = []
        #: Stored values (``roost.broker.store``): takes a ``set`` of a path without an owner
        #: and returns ``True`` if it answered it.
        self.store_set: Callable[[Session, m.Set, Node[Session] | None, float], bool] | None = None
        #: Admission, logins and refusals (roost.broker.auth.access installs the real one).
        self.gate = Gate()
        self.meta = meta.Meta(self, now)
        self._dispatch: dict[type, Callable[[Session, Any, float], None]] = {
            m.Ping: self._ping,
            m.Hello: self._hello,
            m.HelloId: self._hello_id,
            m.ReplyOk: self._reply,
            m.ReplyError: self._reply,
            m.BadValue: self._bad_value,
            m.ActionCall: self._action_call,
            m.Get: self._get,
            m.Set: self._set,
            m.EventEmit: self._event_emit,
            m.EventListen: partial(subscriptions.event_listen, self),
            m.StateChanged: partial(states.changed, self),
            m.StateUnknown: partial(states.unknown, self),
            m.StateObserve: partial(states.observe, self),
            m.StateObserveT: partial(states.observe, self),
            # Late-bound: the access layer replaces the gate after the router exists.
            **dict.fromkeys(m.AUTH_REQUESTS, lambda s, msg, now: self.gate.handle(s, msg, now)),  # noqa: PLW0108
        }
        self._dispatch.update(subscriptions.register_handlers(self))
        for cls in _EXTENSION_REQUESTS:
            self._dispatch[cls] = self._extension
        self._dispatch.update(subscriptions.subtree_handlers(self))
        self._before_hello: dict[type, Callable[[Session, Any, float], None]] = dict.fromkeys(
            self._dispatch, self._unregistered
        )
        always = (m.Ping, m.Hello, m.HelloId, m.ReplyOk, m.ReplyError, m.BadValue, *m.AUTH_REQUESTS)
        for kind in always:
            self._before_hello[kind] = self._dispatch[kind]
        #: The busiest requests by type byte, handled from their parts (id, path, value bytes)
        #: without a message object; only for sessions whose hello is done.
        self.raw_handlers: dict[int, Callable[[Session, int, str, bytes, float], None]] = {
            m.ActionCall.code: self.action_call_raw,
            m.EventEmit.code: self.event_emit_raw,
        }

    # -- sessions ------------------------------------------------------------------------------

    def open_session(self, peer: str, since: float, now: float) -> Session:
        """Create the session of a new connection (no timeout runs before its hello)."""
        session = Session(
            peer,
            since,
            now,
            max_outbound=self.max_outbound,
            dirty=self.dirty,
            wake=self._wake,
            on_overflow=self._overflow,
            sent=self.stats.sent,
        )
        self.sessions[session] = None
        self.stats.opened += 1
        return session

    def handle(self, session: Session, msg: m.Message | m.BadValue, now: float) -> None:
        """Handle one message from ``session``; queue every resulting frame. Never raises for
        anything a client sends (the connection layer already rejected framing errors)."""
        table = self._dispatch if session.conn.hello_done else self._before_hello
        table.get(type(msg), self._unexpected)(session, msg, now)

    def settle_before(self, msg: m.Message | m.BadValue, now: float) -> None:
        """A closed connection's nodes or leases are still being settled (``closing`` is not
        empty): settle what ``msg`` will read, so that it is answered as after a synchronous
        cleanup (lease requests and the rest: everything)."""
        kind = type(msg)
        if kind in _READ_NOTHING:
            return
        if kind in _READ_ONE_PATH:
            self.teardowns.settle_path(msg.path, now)  # type: ignore[union-attr]
        else:
            self.teardowns.settle_all(now)

    def reap(self, now: float) -> None:
        """Close every session that exceeded its outbound bound, as ``slow_consumer``."""
        doomed = self.doomed
        while doomed:
            self.disconnect(doomed.pop(), "slow_consumer", now)

    def disconnect(self, session: Session, reason: str, now: float) -> None:
        """Forget ``session`` at once (protocol.md §10.6) and close its transport; idempotent.

        Its listens and observes end; its actions and props vanish; its events and states lose
        their owner (observers of a known state get one 0x45): at once for a connection with
        a few nodes, else in slices that every request settles ahead of itself
        (:mod:`roost.broker.teardown`, so answers are as if all of it was done now). Every
        request forwarded to it gets ``client_exited``; requests it made stay with their
        owners, whose replies are then dropped. ``reason`` is logged (``disconnected``,
        ``timeout``, ``takeover``, ``slow_consumer``, ``protocol_error``, ``shutdown``).
        """
        if session.closed:
            return
        session.closed = True
        session.accepting = False
        session.close_reason = reason
        self.stats.count_close(reason)
        session.outbox.clear()
        session.out_size = 0
        self.sessions.pop(session, None)
        self._unbind(session)
        if self.subtrees.count:
            self.subtrees.drop_session(session)
        self.teardowns.start(session, now)
        for requester, rid, _code in session.pending.values():
            if not requester.closed:
                requester.push(frames.err(rid, "client_exited"))
        had_id = session.client_id is not None
        session.forget_all()
        for hook in self.disconnect_hooks:
            hook(session, reason, now)
        self.hooks.close_io(session, reason)
        if had_id:
            self.meta.clients_changed(now)

    def close_all(self, reason: str, now: float) -> None:
        """Disconnect every session (a broker stop) and settle every node at once."""
        for session in list(self.sessions):
            self.disconnect(session, reason, now)
        self.teardowns.settle_all(now)

    # -- identity ------------------------------------------------------------------------------

    def _bind(self, session: Session, raw: bytes, key: Any) -> None:
        session.client_id = raw
        session.client_key = key
        self._by_key[key] = session

    def _unbind(self, session: Session) -> None:
        key = session.client_key
        if key is not None and self._by_key.get(key) is session:
            del self._by_key[key]
        session.client_key = None

    def _after_hello(self, session: Session, now: float) -> None:
        self.hooks.timeout_changed(session)
        for hook in self.hello_hooks:
            hook(session, now)
        self.meta.clients_changed(now)

    def _hello(self, session: Session, msg: m.Hello, now: float) -> None:
        if not self.gate.admit(session, now):
            return
        self._unbind(session)
        self._id_counter += 1
        raw = pack(f"{self._id_prefix}-{self._id_counter}")
        self._bind(session, raw, raw)
        session.push(frames.frame(b"\x04" + raw))
        self._after_hello(session, now)

    def _hello_id(self, session: Session, msg: m.HelloId, now: float) -> None:
        if not self.gate.admit(session, now):
            return
        key = _id_key(msg.client_id)
        if key != session.client_key:
            other = self._by_key.get(key)
            if other is not None and not self.gate.may_take_over(session, other):
                self.disconnect(session, "forbidden: client id held by another user", now)
                return
            if other is not None:
                # Takeover: the old connection is gone, with every effect, before the reply.
                self.disconnect(other, "takeover", now)
            self._unbind(session)
            self._bind(session, msg.client_id.raw, key)
        session.push(frames.SERVER_HELLO)
        self._after_hello(session, now)

    # -- generic requests ----------------------------------------------------------------------

    def _denied(self, session: Session, permission: str, path: str, rid: int) -> bool:
        """True (after the ``forbidden`` reply) if ``session`` may not do this."""
        return denied(self.gate, session, permission, path, rid)

    def _unexpected(self, session: Session, msg: Any, now: float) -> None:
        self.disconnect(session, f"protocol_error: unexpected {type(msg).__name__}", now)

    def _ping(self, session: Session, msg: m.Ping, now: float) -> None:
        session.push(frames.ok_nil(msg.id))

    def _unregistered(self, session: Session, msg: Any, now: float) -> None:
        if type(msg) in _EXTENSION_REQUESTS:
            session.opted_in = True
            session.push(frames.err_map(msg.id, "unregistered"))
        else:
            session.push(frames.err(msg.id, "unregistered"))

    def _bad_value(self, session: Session, msg: m.BadValue, now: float) -> None:
        code = msg.code
        if code in {0x05, 0x06}:
            entry = session.pending.pop(msg.id, None)
            if entry is not None and not entry[0].closed:
                entry[0].push(frames.err(entry[1], "invalid_value"))
            return
        status = "invalid_value" if session.conn.hello_done else "unregistered"
        if code >= 0x50:
            session.opted_in = True
            session.push(frames.err_map(msg.id, status))
        else:
            session.push(frames.err(msg.id, status))

    def _reply(self, session: Session, msg: m.ReplyOk | m.ReplyError, now: float) -> None:
        self.reply_raw(session, msg.code, msg.id, msg.value.raw)

    def reply_raw(self, session: Session, code: int, rid: int, raw: bytes) -> None:
        """A reply (``code`` 0x05 or 0x06) from an owner, from its parts: the connection has
        already matched ``rid`` to an outstanding request and validated ``raw``. Forwarded to
        the requester under its own id; dropped when the requester has gone."""
        entry = session.pending.pop(rid, None)
        if entry is None:
            return
        requester = entry[0]
        if not requester.closed:
            requester.push(frames.reply(code, entry[1], raw))

    def _extension(self, session: Session, msg: Any, now: float) -> None:
        session.opted_in = True
        self.handle_extension(session, msg, now)

    def handle_extension(self, session: Session, msg: Any, now: float) -> None:
        """Handle an extension request (0x50-0x5a) after hello. Without the lease layer every
        one is refused with ``err {"status": "bad_args"}``."""
        session.push(frames.err_map(msg.id, "bad_args"))

    def guarded(
        self, session: Session, msg: m.ActionCall | m.Set, node: Node[Session], now: float
    ) -> None:
        """A plain call or set reached a node with a ``guard``; the lease layer replaces this
        (without it no guard can be set, so this only forwards as usual)."""
        assert node.owner is not None
        path = msg.path
        if isinstance(msg, m.ActionCall):
            args = msg.args
            self.forward(session, msg.id, node.owner, lambda oid: m.ActionCall(oid, path, args))
        else:
            cls, value = (m.StateSet if node.kind is STATE else m.PropSet), msg.value
            self.forward(session, msg.id, node.owner, lambda oid: cls(oid, path, value))

    def prepare_stop(self, now: float) -> None:
        """A graceful stop is about to close every session: run ``stop_hooks`` first, so what
        they queue (``restart`` pushes) is flushed before the closes."""
        for hook in self.stop_hooks:
            hook(now)

    # -- forwarding ----------------------------------------------------------------------------

    def forward(
        self, session: Session, rid: int, owner: Session, make: Callable[[int], m.Message]
    ) -> None:
        """Send the request ``make(owner_id)`` to ``owner`` under a broker-chosen id and route
        its reply back to ``session`` under ``rid``. All 65536 ids outstanding on the owner's
        connection: ``err too_many_requests`` and nothing is forwarded (protocol.md §7)."""
        conn = owner.conn
        oid = conn.allocate_id()
        if oid is None:
            session.push(frames.err(rid, "too_many_requests"))
            return
        data = conn.send(make(oid))
        owner.expect(oid, (session, rid, data[3]))
        owner.push(data)

    def _relay(
        self, session: Session, rid: int, node: Node[Session], code: int, raw: bytes = b""
    ) -> None:
        """:meth:`forward` for a plain call, get or set of ``node``: the frame is spliced from
        the node's cached path head and the raw value bytes, no message object is built."""
        owner = node.owner
        assert owner is not None
        oid = owner.conn.claim_id()
        if oid is None:
            session.push(frames.err(rid, "too_many_requests"))
            return
        owner.expect(oid, (session, rid, code))
        owner.push(frames.request(code, oid, node.path_head, raw))

    # -- actions and props ---------------------------------------------------------------------

    def _lookup(self, session: Session, rid: int, path: str) -> Node[Session] | None:
        node = self.tree.nodes.get(path)
        if node is None:
            found = self.tree.find(path)
            assert isinstance(found, str)
            session.push(frames.err(rid, found))
        return node

    def _action_call(self, session: Session, msg: m.ActionCall, now: float) -> None:
        self.action_call_raw(session, msg.id, msg.path, msg.args.raw, now)

    def action_call_raw(
        self, session: Session, rid: int, path: str, raw: bytes, now: float
    ) -> None:
        """``action_call`` from its parts (``raw``: the validated args bytes)."""
        # A decision made before is one dict lookup, with no call (the busiest request).
        g = session.grants
        if (
            g is not None
            and not g.decided["call"].get(path)
            and self._denied(session, "call", path, rid)
        ):
            return
        node = self._lookup(session, rid, path)
        if node is None:
            return
        if node.kind is not ACTION:
            session.push(frames.err(rid, "path_is_wrong_type"))
        elif node.guard is None and not node.internal:
            self._relay(session, rid, node, 0x11, raw)
        else:
            msg = m.ActionCall(rid, path, Value(raw))
            if node.internal:
                self.meta.call(session, msg, node, now)
            else:
                self.guarded(session, msg, node, now)

    def _get(self, session: Session, msg: m.Get, now: float) -> None:
        if session.grants is not None and self._denied(session, "get", msg.path, msg.id):
            return
        node = self._lookup(session, msg.id, msg.path)
        if node is None:
            return
        kind = node.kind
        if kind is STATE:
            if node.internal:
                self.meta.refresh(node, now)
            if node.value is None:
                session.push(frames.err(msg.id, "state_unknown"))
            else:
                session.push(frames.reply(0x05, msg.id, node.value))
        elif kind is PROP:
            self._relay(session, msg.id, node, 0x21)
        else:
            session.push(frames.err(msg.id, "path_is_wrong_type"))

    def _set(self, session: Session, msg: m.Set, now: float) -> None:
        if session.grants is not None and self._denied(session, "set", msg.path, msg.id):
            return
        store_set = self.store_set
        if store_set is not None:
            found = self.tree.nodes.get(msg.path)
            if (found is None or found.owner is None) and store_set(session, msg, found, now):
                return
        node = self._lookup(session, msg.id, msg.path)
        if node is None:
            return
        kind = node.kind
        if kind is STATE:
            if node.internal:
                session.push(frames.err(msg.id, self.meta.set_error(node)))
            elif node.owner is None:
                session.push(frames.err(msg.id, "no_owner"))
            elif node.guard is not None:
                self.guarded(session, msg, node, now)
            else:
                self._relay(session, msg.id, node, 0x47, msg.value.raw)
        elif kind is PROP:
            if node.guard is not None:
                self.guarded(session, msg, node, now)
            else:
                self._relay(session, msg.id, node, 0x22, msg.value.raw)
        else:
            session.push(frames.err(msg.id, "path_is_wrong_type"))

    # -- events --------------------------------------------------------------------------------

    def _event_emit(self, session: Session, msg: m.EventEmit, now: float) -> None:
        self.event_emit_raw(session, msg.id, msg.path, msg.value.raw, now)

    def event_emit_raw(self, session: Session, rid: int, path: str, raw: bytes, now: float) -> None:
        """``event_emit`` from its parts (``raw``: the validated value bytes). An event's owner
        needs no ``emit`` permission for it."""
        node = self.tree.nodes.get(path)
        if (
            (g := session.grants) is not None
            and (node is None or node.owner is not session)
            and not g.decided["emit"].get(path)
            and self._denied(session, "emit", path, rid)
        ):
            return
        if node is None:
            self._lookup(session, rid, path)
            return
        if node.kind is not EVENT:
            session.push(frames.err(rid, "path_is_wrong_type"))
            return
        # Lease events, adopted or not yet (the prefix test first: it is the cheap one).
        if node.internal or (path.startswith("/meta/") and subscriptions.reserved(path)):
            session.push(frames.err(rid, "not_owner"))
            return
        # The emitter's reply first: a listening emitter sees it before its own notification.
        session.push(frames.ok_nil(rid))
        listeners = node.listeners
        if listeners:
            stats = self.stats
            stats.event_deliveries += len(listeners)
            stats.sent[0x33] += len(listeners)  # fan_out, written out: the busiest fan-out
            data = frames.notify(node.note_head, raw)
            for listener in listeners:
                listener.push_counted(data)
        if node.watchers:
            self.stats.event_deliveries += len(node.watchers)
            fan_out(node.watchers, frames.subtree_notify(b"\x7c", node.path_head, raw))

    def publish_event(self, path: str, value: Value, now: float) -> None:
        """Emit ``value`` on the broker-owned event ``path`` (created or adopted if needed).

        Raises:
            ValueError: ``path`` is taken by something else, or the value does not fit a frame
                (found out only when somebody listens).
        """
        node = states.internal_node(self.tree, path, EVENT, now)
        if not node.listeners and not node.watchers:
            return  # nobody hears it: no frame built
        data = frames.notify(node.note_head, value.raw)
        if len(data) - 3 > frames.MAX_PAYLOAD:
            raise ValueError(f"event value for {path} does not fit in a frame")
        fan_out(node.listeners, data)
        if node.watchers:
            fan_out(node.watchers, frames.subtree_notify(b"\x7c", node.path_head, value.raw))

    # -- states (roost.broker.states) ---------------------------------------------------------

    def publish_state(self, path: str, value: Value | m.UnknownType, now: float) -> None:
        """Set the broker-owned state ``path`` (created or adopted if needed) and notify its
        observers; every call notifies, known or unknown.

        Raises:
            ValueError: ``path`` is taken by something else, or the value does not fit a frame
                (protocol.md §15: the caller cuts published values to fit).
        """
        states.publish(self, path, value, now)
