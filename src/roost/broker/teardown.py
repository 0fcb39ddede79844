"""A closed connection's nodes (and many leases), cleaned up in slices (protocol.md §10.6).

Rules of this module:

- The router's ``disconnect`` ends a connection at once (no more output, pending requests
  answered ``client_exited``, gone from the client tables); its nodes are then settled here,
  and so are the leases of a holder of many (the lease layer adds that work). A connection
  with at most ``chunk`` nodes (owned plus listened to) is settled on the spot; a bigger one
  ``chunk`` nodes per event-loop iteration, so that a close of 100,000 registrations never holds
  the loop for long and the nodes' memory is freed as it goes.
- Until then a closed connection's nodes are *stale*: still in the tree, owned or listened to
  by a closed session. Nothing may answer from a stale node: the server settles what each
  request reads before routing it (:meth:`Teardowns.settle_path` for a request on one path, a
  cheap per-node step; :meth:`Teardowns.settle_all` for anything that lists or walks the
  tree, and for lease requests), so every answer is the one a synchronous cleanup would
  give, and a path is free for a new owner the moment its old owner's connection is closed.
- Each node is settled exactly once per closed session: the slices skip a node a request
  already settled, or that a new owner took meanwhile.
- Settling a node has the effects of §10.6 for that node: an owned action or prop leaves the
  tree; an owned event or state loses its owner (observers of a known state get one 0x45)
  and leaves the tree once nobody listens; a listener or observer leaves the node's set.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable
from typing import Final

from roost.broker import states
from roost.broker.hooks import ServerHooks
from roost.broker.session import Session
from roost.broker.tree import ACTION, PROP, STATE, Node, Tree

__all__ = ("TEARDOWN_CHUNK", "Teardowns")

#: Nodes settled per event-loop iteration (about 0.5 ms of work).
TEARDOWN_CHUNK: Final = 500


#: One pending piece of cleanup: ``work(count, now)`` does about ``count`` nodes' worth of it
#: and returns True once nothing is left.
Work = Callable[[int, float], bool]


class _Nodes:
    """What is left to settle of one closed session: the nodes it listened to, then those it
    owned (each list is consumed from its end)."""

    __slots__ = ("listening", "owned", "session", "tree")

    def __init__(
        self,
        tree: Tree[Session],
        session: Session,
        owned: list[Node[Session]],
        listening: list[Node[Session]],
    ) -> None:
        self.tree = tree
        self.session = session
        self.owned = owned
        self.listening = listening

    def __call__(self, count: int, now: float) -> bool:
        """Settle up to ``count`` nodes; True once none is left."""
        session = self.session
        gone: list[Node[Session]] = []  # removed from the tree in one call
        listening = self.listening
        if listening:
            batch = listening[-count:]
            del listening[-count:]
            count -= len(batch)
            for node in batch:
                node.drop_listener(session)
                if node.owner is None and not node.listeners and not node.internal:
                    gone.append(node)
        owned = self.owned
        if owned and count > 0:
            batch = owned[-count:]
            del owned[-count:]
            for node in batch:
                if node.owner is session:  # else settled already, or owned anew
                    _lost_owner(node, gone)
        self.tree.remove_all(gone)
        return not listening and not owned


def _lost_owner(node: Node[Session], gone: list[Node[Session]]) -> None:
    """``node``'s owner closed: drop it (§10.6); add ``node`` to ``gone`` if it leaves the
    tree (an action or prop, or an event or state nobody listens to)."""
    node.owner = None
    node.guard = None
    kind = node.kind
    if kind is ACTION or kind is PROP:
        gone.append(node)
        return
    if kind is STATE and node.value is not None:
        node.value = None
        states.notify_unknown(node)
    if not node.listeners:
        gone.append(node)


class Teardowns:
    """The closed sessions whose nodes are not settled yet, and the slices that settle them.

    ``pending`` is empty unless a big connection closed within the last few loop iterations;
    the server tests it before each request (one truth test) and settles only then.

    Args:
        tree: the broker's tree.
        hooks: the I/O layer (each slice is one ``call_later(0, ...)``).
        chunk: nodes settled per slice, and the most a close settles on the spot.
    """

    __slots__ = ("_scheduled", "chunk", "hooks", "pending", "tree")

    def __init__(self, tree: Tree[Session], hooks: ServerHooks, chunk: int = TEARDOWN_CHUNK):
        if chunk < 1:
            raise ValueError("the teardown chunk must be at least one node")
        self.tree = tree
        self.hooks = hooks
        self.chunk = chunk
        #: Closed sessions with nodes still to settle (and other pending work), oldest first.
        self.pending: dict[Hashable, Work] = {}
        self._scheduled = False

    def start(self, session: Session, now: float) -> None:
        """``session`` is closed (and no longer in the router's sessions): settle its nodes,
        at once if there are at most ``chunk`` of them, else in slices."""
        owned, listening = session.owned, session.listening
        if not owned and not listening:
            return
        work = _Nodes(
            self.tree,
            session,
            owned if isinstance(owned, list) else list(owned),
            listening if isinstance(listening, list) else list(listening),
        )
        size = len(work.owned) + len(work.listening)
        if size <= self.chunk:
            work(size, now)
        else:
            self.add(session, work)

    def add(self, key: Hashable, work: Work) -> None:
        """Run ``work`` in slices from the next loop iteration on (``key`` names it in
        ``pending``; the lease layer adds the revocation of a closed holder's many leases)."""
        self.pending[key] = work
        if not self._scheduled:
            self._scheduled = True
            self.hooks.call_later(0, self._slice)

    def _slice(self, now: float) -> None:
        """One loop iteration's share: ``chunk`` nodes' worth of the oldest pending work."""
        self._scheduled = False
        pending = self.pending
        if not pending:
            return
        key, work = next(iter(pending.items()))
        if work(self.chunk, now) and pending.get(key) is work:
            del pending[key]
        if pending and not self._scheduled:
            self._scheduled = True
            self.hooks.call_later(0, self._slice)

    def settle_all(self, now: float) -> None:
        """Finish every pending piece of work now (before anything lists or walks the tree,
        reads lease state, and when the broker stops)."""
        pending = self.pending
        while pending:
            key, work = next(iter(pending.items()))
            while not work(1 << 30, now):
                pass
            if pending.get(key) is work:
                del pending[key]

    def settle_node(self, node: Node[Session]) -> None:
        """Apply the pending closes that concern ``node`` (its owner's, its listeners'), so
        that a request may read it as it stands."""
        listeners = node.listeners
        if listeners:
            for listener in [s for s in listeners if s.closed]:
                node.drop_listener(listener)
        owner = node.owner
        gone: list[Node[Session]] = []
        if owner is not None and owner.closed:
            _lost_owner(node, gone)
        elif owner is None and not node.listeners and not node.internal:
            gone.append(node)
        if gone:
            self.tree.remove_all(gone)

    def settle_path(self, path: str, now: float) -> None:
        """Settle what a request on ``path`` reads: the node there, else the nodes above it
        (a stale one would make it ``not_a_directory``); everything when a directory is there
        (it may hold stale nodes only) or the tree looks full."""
        tree = self.tree
        nodes = tree.nodes
        node = nodes.get(path)
        if node is not None:
            if node.internal:  # the broker's own nodes (/meta/ls...) read the whole tree
                self.settle_all(now)
            else:
                self.settle_node(node)
            return
        cut = path.find("/", 1)
        while cut > 0:
            above = nodes.get(path[:cut])
            if above is not None:
                self.settle_node(above)
                break  # nodes never nest
            cut = path.find("/", cut + 1)
        if tree.find(path) == "path_is_directory" or (
            tree.entries + path.count("/") > tree.max_entries
        ):
            self.settle_all(now)
