"""One session per client connection: protocol state, identity, outbox, forwarded requests.

Rules of this module:

- No I/O: the session holds an opaque ``writer`` (the server's transport) but never calls it;
  the server flushes ``outbox`` once per event-loop iteration.
- ``push(frame)`` is the only way to queue output. It never raises and never blocks: once the
  unsent output (outbox plus what the transport still holds) passes ``max_outbound``, the session
  stops accepting frames and is handed to ``on_overflow`` (the router closes it as
  ``slow_consumer`` as soon as it is safe to).
- Frames out are counted by type in ``sent`` (the broker's one list, no lock: one event loop):
  ``push`` counts its frame; :func:`fan_out` queues one notification on many sessions and
  counts them all with one addition, so fan-out costs no more per delivery than before.
- ``pending`` maps broker-chosen request ids on this connection to the requester waiting for
  the owner's reply, so cleanup can answer every one of them with ``client_exited``.
- ``owned`` and ``listening`` start as one shared empty tuple and ``pending`` as one shared
  empty dict (most connections never use some of them, and an idle connection should cost
  little memory); add to them only through ``own``, ``listen`` and ``expect``, and reset them
  with ``forget_all``. ``owned`` and ``listening`` are lists (a pointer per entry): the tree
  keeps each node once in them, and only a close walks them.
"""

from __future__ import annotations

from collections.abc import Callable, Collection
from typing import Any

from roost.broker.auth.acl import Grants
from roost.broker.tree import Node
from roost.protocol.connection import Connection, Role

__all__ = ("Pending", "Session", "fan_out")

#: (requester session, requester's own request id, request type code)
Pending = tuple["Session", int, int]

# Shared by every session until its first registration, subscription or forwarded request.
# Never mutated: Session.own/listen/expect replace them with a list or dict of the session's own.
_NONE: dict[Any, Any] = {}
_NO_NODES: tuple[Node[Session], ...] = ()


class Session:
    """Everything the broker knows about one connection.

    Args:
        peer: the peer address as ``"host:port"`` (for logs and ``/meta/clients``).
        since: wall-clock time of the connection (for ``/meta/clients``).
        now: monotonic time of the connection (the idle timer counts from it until data arrives).
        max_outbound: the bound on unsent output in bytes (protocol.md §14).
        dirty: the router's list of sessions with queued output (shared, appended to here).
        wake: called when ``dirty`` goes from empty to non-empty (schedules one flush).
        on_overflow: called once when the bound is exceeded.
        sent: the counts of frames queued by type byte (256 entries, shared by the sessions
            of one broker); a list of its own when not given.
    """

    __slots__ = (
        "_dirty",
        "_on_overflow",
        "_wake",
        "accepting",
        "alone",
        "backlog",
        "client_id",
        "client_key",
        "close_reason",
        "closed",
        "conn",
        "entries",
        "frame_since",
        "grants",
        "last_received",
        "listener",
        "listening",
        "max_outbound",
        "opened",
        "opted_in",
        "out_size",
        "outbox",
        "owned",
        "peer",
        "pending",
        "received",
        "sent",
        "since",
        "timer",
        "trusted",
        "user",
        "writer",
    )

    def __init__(
        self,
        peer: str,
        since: float,
        now: float,
        *,
        max_outbound: int,
        dirty: list[Session],
        wake: Callable[[], None],
        on_overflow: Callable[[Session], None],
        sent: list[int] | None = None,
    ) -> None:
        self.conn = Connection(Role.SERVER)
        self.peer = peer
        self.since = since
        self.last_received = now
        #: Monotonic time of the connection (its hello deadline counts from it).
        self.opened = now
        #: When the frame still incomplete after the last chunk began (``None``: none is).
        self.frame_since: float | None = None
        #: Tree entries (nodes and directories) this connection's requests created.
        self.entries = 0
        self.max_outbound = max_outbound
        self._dirty = dirty
        self._wake = wake
        self._on_overflow = on_overflow
        self.sent = sent if sent is not None else [0] * 256
        #: The client id as received or allocated (msgpack bytes), ``None`` before hello.
        self.client_id: bytes | None = None
        #: The key the id registry uses (ids compare by exact value, protocol.md §6).
        self.client_key: Any = None
        #: Frames queued since the last flush, and their total size.
        self.outbox: list[bytes] = []
        self.out_size = 0
        #: Bytes the transport still held after the last flush.
        self.backlog = 0
        self.accepting = True
        self.closed = False
        self.close_reason: str | None = None
        #: True once the connection sent any extension message (protocol.md E1).
        self.opted_in = False
        #: Nodes this connection owns, and the event/state nodes it listens to or observes
        #: (each once).
        self.owned: list[Node[Session]] | tuple[Node[Session], ...] = _NO_NODES
        self.listening: list[Node[Session]] | tuple[Node[Session], ...] = _NO_NODES
        #: ``(self,)``: the listeners of every node this connection alone listens to.
        self.alone = (self,)
        #: Requests forwarded to this connection as owner, by broker-chosen id.
        self.pending: dict[int, Pending] = _NONE
        #: Messages received on this connection (counted by the server once per chunk).
        self.received = 0
        #: Who this is (``anonymous`` until a login) and what it may do (``None``: everything,
        #: no access rules); the access layer sets them (roost.broker.auth).
        self.user = "anonymous"
        self.grants: Grants | None = None
        #: The broker's own in-process session (the gateway's lease watcher): access rules do
        #: not apply to it. Set before its hello; no connection from outside can set it.
        self.trusted = False
        #: Opaque slot for the access layer: the listener the connection came in on.
        self.listener: Any = None
        #: Opaque slots for the server: its transport and its idle timer state.
        self.writer: Any = None
        self.timer: Any = None

    def push(self, frame: bytes) -> None:
        """Queue one encoded frame for the next flush and count it; drop it if the session is
        closing."""
        if not self.accepting:
            return
        self.sent[frame[3]] += 1
        # push_counted's body, written out: this is the busiest call of the broker.
        out = self.outbox
        if not out:
            dirty = self._dirty
            if not dirty:
                self._wake()
            dirty.append(self)
        out.append(frame)
        size = self.out_size + len(frame)
        self.out_size = size
        if size + self.backlog > self.max_outbound:
            self.accepting = False
            self._on_overflow(self)

    def push_counted(self, frame: bytes) -> None:
        """:meth:`push` for a frame already counted (by :func:`fan_out`)."""
        if not self.accepting:
            return
        out = self.outbox
        if not out:
            dirty = self._dirty
            if not dirty:
                self._wake()
            dirty.append(self)
        out.append(frame)
        size = self.out_size + len(frame)
        self.out_size = size
        if size + self.backlog > self.max_outbound:
            self.accepting = False
            self._on_overflow(self)

    def own(self, node: Node[Session]) -> None:
        """Record that this connection owns ``node`` (once per node)."""
        owned = self.owned
        if isinstance(owned, tuple):
            owned = self.owned = []
        owned.append(node)

    def listen(self, node: Node[Session]) -> None:
        """Add this connection to the listeners of ``node`` and record it (no-op if it is one
        already)."""
        if self in node.listeners:
            return
        node.add_listener(self, self.alone)
        listening = self.listening
        if isinstance(listening, tuple):
            listening = self.listening = []
        listening.append(node)

    def expect(self, rid: int, entry: Pending) -> None:
        """Record a request forwarded to this connection under broker-chosen id ``rid``."""
        if self.pending is _NONE:
            self.pending = {}
        self.pending[rid] = entry

    def forget_all(self) -> None:
        """Drop every node and request reference (after cleanup)."""
        self.owned = self.listening = _NO_NODES
        self.pending = _NONE

    def take_output(self) -> bytes:
        """Return and clear everything queued (one bytes object for one write)."""
        out = self.outbox
        data = out[0] if len(out) == 1 else b"".join(out)
        out.clear()
        self.out_size = 0
        return data

    def __repr__(self) -> str:
        return f"<Session {self.peer} id={self.client_id!r}>"


def fan_out(sessions: Collection[Session], frame: bytes) -> None:
    """Queue the same ``frame`` (a notification) on each of ``sessions``, counted in ``sent``
    once for all of them."""
    session = None
    for session in sessions:
        session.push_counted(frame)
    if session is not None:
        session.sent[frame[3]] += len(sessions)
