"""The path tree: implicit directories holding nodes (protocol.md §10).

Rules of this module:

- Pure data, no I/O and no clock: callers pass ``now`` where a node records a time.
- A path is a node, a directory, or absent; nodes never nest. Directories exist while they hold
  something and vanish (recursively) when emptied. ``/`` always exists.
- Lookups of existing nodes are one dict access; only misses walk the directories and validate.
- Errors are returned as the wire error strings, never raised: the router sends them as replies.
- Bounded: a new path longer or deeper than the tree's limits is ``invalid_path``; one that
  would take the tree past ``max_entries`` (nodes plus directories) is ``tree_full``.
- Each directory keeps the encoded size of its ``/meta/ls`` listing up to date (``listed``), so
  an over-large listing is refused without building it.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Hashable, Iterable
from typing import Any, Final, Generic, TypeVar

__all__ = (
    "ACTION",
    "EVENT",
    "KINDS",
    "PROP",
    "STATE",
    "Dir",
    "Node",
    "Tree",
    "entry_size",
    "valid_ls_path",
    "valid_path",
)

ACTION: Final = "action"
PROP: Final = "prop"
EVENT: Final = "event"
STATE: Final = "state"
KINDS: Final = (ACTION, PROP, EVENT, STATE)

_PATH_RE: Final = re.compile(r"(/[A-Za-z0-9_]+)+")
_LS_PATH_RE: Final = re.compile(r"(/[A-Za-z0-9_]+)*/[A-Za-z0-9_]*")


#: The listeners of a node nobody listens to (most nodes never get one).
_NO_LISTENERS: tuple[Any, ...] = ()

#: The connection type that owns and listens (the broker's ``Session``); the tree only keeps it.
Owner = TypeVar("Owner", bound=Hashable)


def valid_path(path: str) -> bool:
    """True if ``path`` matches ``^(/[A-Za-z0-9_]+)+$`` exactly (§10.1; no trailing newline)."""
    return _PATH_RE.fullmatch(path) is not None


def valid_ls_path(path: str) -> bool:
    """True if ``path`` is acceptable to ``/meta/ls`` (``/`` and a trailing slash allowed)."""
    return _LS_PATH_RE.fullmatch(path) is not None


class Node(Generic[Owner]):
    """One leaf of the tree: an action, prop, event or state.

    ``owner`` is the owning session or ``None``; ``internal`` marks nodes the broker owns itself
    (protocol.md §15). ``value`` is the raw msgpack bytes of a known state, ``None`` when unknown.
    ``path_head`` (``path\\0``) and ``note_head`` (the notification head) are made on first use
    and then kept, so fan-out frames are built by concatenation only while a node that never
    carries a message costs no bytes for them.
    ``guard`` is reserved for the lease layer (the resource guarding calls and sets, or ``None``).
    ``watchers`` are the sessions whose subtree subscriptions match this node, computed when
    the node is created and again when such a subscription starts or ends (never per message).
    """

    __slots__ = (
        "guard",
        "internal",
        "kind",
        "last_update",
        "listeners",
        "name",
        "note_head",
        "owner",
        "parent",
        "path",
        "path_head",
        "value",
        "watchers",
    )

    def __init__(self, path: str, kind: str, parent: Dir[Owner], name: str, now: float) -> None:
        self.path = path
        self.kind = kind
        self.parent = parent
        self.name = name
        self.owner: Owner | None = None
        self.internal = False
        #: Listeners (events) or observers (states), in subscription order: an empty tuple,
        #: the one listener's own 1-tuple (shared by every node it alone listens to), or a
        #: dict; change them only through :meth:`add_listener` and :meth:`drop_listener`.
        self.listeners: tuple[Owner, ...] | dict[Owner, None] = _NO_LISTENERS
        self.value: bytes | None = None
        self.last_update = now
        self.guard: Any = None
        self.watchers: tuple[Owner, ...] = ()

    #: The path and a NUL byte, made on first use (see :meth:`__getattr__`).
    path_head: bytes
    #: Type byte and path of this node's notifications (0x33 for events, 0x44 for states), made
    #: on first use.
    note_head: bytes

    def __getattr__(self, name: str) -> bytes:
        # Only called while a slot is still unset: fill it, so later reads are plain slot reads.
        if name == "path_head":
            head = self.path_head = self.path.encode("latin-1") + b"\0"
            return head
        if name == "note_head":
            head = self.note_head = (b"\x44" if self.kind == STATE else b"\x33") + self.path_head
            return head
        raise AttributeError(name)

    def add_listener(self, owner: Owner, alone: tuple[Owner]) -> None:
        """Add ``owner`` to the listeners (a no-op if it is one already). ``alone`` is
        ``(owner,)``, one tuple per owner, kept while ``owner`` is the only listener."""
        listeners = self.listeners
        if not listeners:
            self.listeners = alone
        elif owner not in listeners:
            if isinstance(listeners, tuple):
                listeners = self.listeners = dict.fromkeys(listeners)
            listeners[owner] = None

    def drop_listener(self, owner: Owner) -> None:
        """Remove ``owner`` from the listeners (a no-op if it is none)."""
        listeners = self.listeners
        if isinstance(listeners, dict):
            listeners.pop(owner, None)
        elif owner in listeners:
            self.listeners = _NO_LISTENERS

    def __repr__(self) -> str:
        return f"<Node {self.kind} {self.path}>"


def _str_size(text: str) -> int:
    """Bytes of ``text`` (ASCII) as a msgpack str."""
    n = len(text)
    return n + (1 if n < 32 else 2 if n < 256 else 3 if n < 0x10000 else 5)


def entry_size(name: str, kind: str) -> int:
    """Bytes of one ``/meta/ls`` entry ``[name, kind]`` as msgpack."""
    return 1 + _str_size(name) + _str_size(kind)


#: The encoded size of each node kind as a msgpack str.
_KIND_SIZE: Final = {kind: _str_size(kind) for kind in KINDS}


class Dir(Generic[Owner]):
    """An implicit directory: children by segment name, and ``listed``, the summed
    :func:`entry_size` of its children (kind ``dir`` for directories).

    Most directories hold one child (every segment of a deep path is one), so a lone child is
    kept in place of a dict (its name is its key); a dict is made for the second child.
    Change the children only through :meth:`put` and :meth:`pop`.
    """

    __slots__ = ("_kids", "listed", "name", "parent")

    def __init__(self, parent: Dir[Owner] | None, name: str) -> None:
        self.parent = parent
        self.name = name
        self._kids: Dir[Owner] | Node[Owner] | dict[str, Dir[Owner] | Node[Owner]] | None = None
        self.listed = 0

    @property
    def children(self) -> dict[str, Dir[Owner] | Node[Owner]]:
        """The children by name (a new dict unless there are two or more: read only)."""
        kids = self._kids
        if isinstance(kids, dict):
            return kids
        return {} if kids is None else {kids.name: kids}

    def get(self, name: str) -> Dir[Owner] | Node[Owner] | None:
        """The child called ``name``, or ``None``."""
        kids = self._kids
        if isinstance(kids, dict):
            return kids.get(name)
        if kids is not None and kids.name == name:
            return kids
        return None

    def put(self, child: Dir[Owner] | Node[Owner]) -> None:
        """Add ``child`` under its name (which no child has yet)."""
        kids = self._kids
        if kids is None:
            self._kids = child
        elif isinstance(kids, dict):
            kids[child.name] = child
        else:
            self._kids = {kids.name: kids, child.name: child}

    def pop(self, name: str) -> bool:
        """Remove the child called ``name``; True if the directory is then empty."""
        kids = self._kids
        if isinstance(kids, dict):
            del kids[name]
            if len(kids) > 1:
                return False
            self._kids = next(iter(kids.values()), None)
            return self._kids is None
        self._kids = None
        return True


class Tree(Generic[Owner]):
    """All nodes, by path and as a hierarchy of directories."""

    __slots__ = (
        "created",
        "entries",
        "max_depth",
        "max_entries",
        "max_length",
        "nodes",
        "on_create",
        "root",
    )

    def __init__(
        self, *, max_length: int = 1024, max_depth: int = 32, max_entries: int = 1_000_000
    ) -> None:
        self.root: Dir[Owner] = Dir(None, "")
        #: Every node by its exact path: the fast path of every lookup.
        self.nodes: dict[str, Node[Owner]] = {}
        #: Called with every new node (the subtree index computes its ``watchers``).
        self.on_create: Callable[[Node[Owner]], None] | None = None
        #: Nodes plus directories (``/`` not counted).
        self.entries = 0
        #: Entries the last :meth:`create` made (its node and the directories it needed).
        self.created = 0
        self.max_length = max_length
        self.max_depth = max_depth
        self.max_entries = max_entries

    def find(self, path: str) -> Node[Owner] | str:
        """Return the node at ``path``, or the error string for why there is none.

        Returns:
            The node, or one of ``invalid_path``, ``path_not_found``, ``path_is_directory``,
            ``not_a_directory``.
        """
        node = self.nodes.get(path)
        if node is not None:
            return node
        if not valid_path(path):
            return "invalid_path"
        found = self._walk(path.split("/")[1:])
        if isinstance(found, str):
            return found
        return "path_is_directory" if isinstance(found, Dir) else "path_not_found"

    def _walk(self, segments: list[str]) -> Dir[Owner] | Node[Owner] | str | None:
        """Walk to the last segment: the entry there, ``None`` if absent, or an error string."""
        current: Dir[Owner] = self.root
        last = len(segments) - 1
        for index, segment in enumerate(segments):
            child = current.get(segment)
            if child is None:
                return "path_not_found" if index < last else None
            if isinstance(child, Node):
                return child if index == last else "not_a_directory"
            current = child
        return current

    def lookup_dir(self, path: str) -> Dir[Owner] | Node[Owner] | str:
        """Resolve an already validated ``/meta/ls`` path (``/`` or without trailing slash)."""
        if path == "/":
            return self.root
        found = self._walk(path.split("/")[1:])
        if found is None:
            return "path_not_found"
        return found

    def check_free(self, path: str) -> str | None:
        """Return the error that creating a node at ``path`` would hit, or ``None`` if free.

        An existing node gives ``path_already_exists`` (the caller decides about adoption first);
        a path over the length or depth limit ``invalid_path``; one the tree has no room for
        ``tree_full`` (counting each of its segments as a new entry).
        """
        if path in self.nodes:
            return "path_already_exists"
        if not valid_path(path):
            return "invalid_path"
        depth = path.count("/")
        if len(path) > self.max_length or depth > self.max_depth:
            return "invalid_path"
        if self.entries + depth > self.max_entries:
            return "tree_full"
        found = self._walk(path.split("/")[1:])
        if found is None or found == "path_not_found":
            return None
        if isinstance(found, str):
            return found
        return "path_is_directory" if isinstance(found, Dir) else "path_already_exists"

    def create(self, path: str, kind: str, now: float) -> Node[Owner]:
        """Create a node at a path :meth:`check_free` accepted, making directories on the way."""
        segments = path.split("/")[1:]
        current = self.root
        made = 1
        for segment in segments[:-1]:
            child = current.get(segment)
            if child is None:
                # Not Dir[Owner](...): calling a subscripted generic costs a typing call.
                child = Dir(current, segment)
                current.put(child)
                current.listed += entry_size(segment, "dir")
                made += 1
            assert isinstance(child, Dir)
            current = child
        name = segments[-1]
        node: Node[Owner] = Node(path, kind, current, name, now)
        current.put(node)
        current.listed += entry_size(name, kind)
        self.entries += made
        self.created = made
        self.nodes[path] = node
        if self.on_create is not None:
            self.on_create(node)
        return node

    def remove(self, node: Node[Owner]) -> None:
        """Remove ``node`` and every directory it leaves empty. Removing twice is harmless."""
        self.remove_all((node,))

    def remove_all(self, nodes: Iterable[Node[Owner]]) -> None:
        """:meth:`remove` each of ``nodes`` (one call for a closing connection's nodes)."""
        by_path = self.nodes
        removed = 0
        for node in nodes:
            path = node.path
            if by_path.get(path) is not node:
                continue
            del by_path[path]
            parent: Dir[Owner] | None = node.parent
            name = node.name
            # entry_size(name, kind), inlined: this loop is a close's whole cost.
            size = len(name)
            size += _KIND_SIZE[node.kind] + (
                2 if size < 32 else 3 if size < 256 else 4 if size < 0x10000 else 6
            )
            while parent is not None:
                kids = parent._kids
                if type(kids) is dict and len(kids) > 2:  # the common case, inlined
                    del kids[name]
                    empty = False
                else:
                    empty = parent.pop(name)
                parent.listed -= size
                removed += 1
                if not empty or parent.parent is None:
                    break
                name = parent.name
                size = entry_size(name, "dir")
                parent = parent.parent
        self.entries -= removed
