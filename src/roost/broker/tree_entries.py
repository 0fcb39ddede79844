"""What the path tree holds: nodes, and the directories that hold them (:mod:`roost.broker.tree`).

Rules of this module:

- Pure data, no I/O and no clock, like the tree itself.
- A node costs as little as CPython allows: its name is not kept (it is the end of its path),
  and what only traffic needs (its encoded heads) is made on first use.
- Directories are path-compressed, as in a radix tree: only the root and the directories with
  two or more children are objects (held directories). A chain of one-child directories, as
  every segment of a deep path but the last is, is no object at all: the held directory above
  it leads straight to the first held entry below it. :attr:`Dir.children` and :meth:`Dir.get`
  show the logical tree all the same, making a short-lived view for a directory of a chain.
- Keys of a held directory's children are full paths (a node one segment below is keyed by its
  own path string, so it costs no second string).
"""

from __future__ import annotations

from collections.abc import Hashable
from typing import Any, Final, Generic, TypeVar

__all__ = (
    "ACTION",
    "EVENT",
    "KINDS",
    "PROP",
    "STATE",
    "Dir",
    "Node",
    "boundary",
    "entry_at",
    "entry_size",
    "key_of",
)

ACTION: Final = "action"
PROP: Final = "prop"
EVENT: Final = "event"
STATE: Final = "state"
KINDS: Final = (ACTION, PROP, EVENT, STATE)

#: The listeners of a node nobody listens to (most nodes never get one).
_NO_LISTENERS: tuple[Any, ...] = ()

#: The connection type that owns and listens (the broker's ``Session``); the tree only keeps it.
Owner = TypeVar("Owner", bound=Hashable)


class Node(Generic[Owner]):
    """One leaf of the tree: an action, prop, event or state.

    ``owner`` is the owning session or ``None``; ``internal`` marks nodes the broker owns itself
    (protocol.md §15). ``value`` is the raw msgpack bytes of a known state, ``None`` when unknown.
    ``parent`` is the held directory above it (the nearest one: directories of a one-child
    chain are not objects). ``path_head`` (``path\\0``) and ``note_head`` (the notification
    head) are made on first use and then kept, so fan-out frames are built by concatenation
    only while a node that never carries a message costs no bytes for them.
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
        "note_head",
        "owner",
        "parent",
        "path",
        "path_head",
        "value",
        "watchers",
    )

    def __init__(self, path: str, kind: str, parent: Dir[Owner], now: float) -> None:
        self.path = path
        self.kind = kind
        self.parent = parent
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

    @property
    def name(self) -> str:
        """The last segment of the path (made on each read: nothing hot needs it)."""
        path = self.path
        return path[path.rfind("/") + 1 :]

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


def key_of(path: str, start: int) -> str:
    """The path of the segment of ``path`` that starts at index ``start`` (``path`` itself, the
    same object, when that segment is its last)."""
    end = path.find("/", start)
    return path if end < 0 else path[:end]


def boundary(a: str, b: str) -> int:
    """The length of the longest path (whole segments) that ``a`` and ``b`` both are or lie
    under: 0 for the root, ``len(a)`` when ``a`` is ``b`` or a directory above it."""
    low, high = 0, min(len(a), len(b))
    while low < high:  # a[:low] == b[:low]; binary search, not a character loop
        mid = (low + high + 1) // 2
        if a.startswith(b[low:mid], low):
            low = mid
        else:
            high = mid - 1
    if (low == len(a) or a[low] == "/") and (low == len(b) or b[low] == "/"):
        return low
    return a.rfind("/", 0, low)


class Dir(Generic[Owner]):
    """A directory: a held one (the root, or one with two or more children) or a view.

    ``kids`` maps the path of each child to the entry that holds it: the child itself, or for
    a directory of a one-child chain the first held entry below it (a held directory or the
    node the chain ends in). ``listed`` is the summed :func:`entry_size` of the children (kind
    ``dir`` for directories), the size of the directory's ``/meta/ls`` listing. ``parent`` is
    the held directory above (``None`` for the root and for views). A view is made by
    :attr:`children` and :meth:`get` for a directory of a chain: read only, never kept.
    Only the tree changes held directories.
    """

    __slots__ = ("kids", "listed", "parent", "path")

    def __init__(self, parent: Dir[Owner] | None, path: str) -> None:
        self.parent = parent
        #: The directory's path: ``""`` for the root.
        self.path = path
        self.kids: dict[str, Dir[Owner] | Node[Owner]] = {}
        self.listed = 0

    @property
    def count(self) -> int:
        """How many children the directory has (without making views)."""
        return len(self.kids)

    @property
    def children(self) -> dict[str, Dir[Owner] | Node[Owner]]:
        """The children by name: a new dict, with views for directories of chains."""
        start = len(self.path) + 1
        return {key[start:]: entry_at(key, kid) for key, kid in self.kids.items()}

    def child_entries(self) -> list[Dir[Owner] | Node[Owner]]:
        """The children in listing order, without their names (no name strings are cut)."""
        return [entry_at(key, kid) for key, kid in self.kids.items()]

    def get(self, name: str) -> Dir[Owner] | Node[Owner] | None:
        """The child called ``name``, or ``None``."""
        key = f"{self.path}/{name}"
        kid = self.kids.get(key)
        return None if kid is None else entry_at(key, kid)

    def adopt(self, entry: Dir[Owner] | Node[Owner]) -> None:
        """Hold ``entry`` (at or below a child not held yet) and count it in ``listed``."""
        start = len(self.path) + 1
        key = key_of(entry.path, start)
        self.kids[key] = entry
        entry.parent = self
        self.listed += entry_size(key[start:], _kind_at(key, entry))

    def __repr__(self) -> str:
        return f"<Dir {self.path or '/'}>"


def _kind_at(key: str, entry: Dir[Owner] | Node[Owner]) -> str:
    """The listing kind of the child at ``key`` held by ``entry``."""
    if isinstance(entry, Node) and len(key) == len(entry.path):
        return entry.kind
    return "dir"


def entry_at(key: str, entry: Dir[Owner] | Node[Owner]) -> Dir[Owner] | Node[Owner]:
    """The child at path ``key`` that ``entry`` holds: ``entry`` itself, or a view of the chain
    directory at ``key`` (with its one child)."""
    if len(entry.path) == len(key):
        return entry
    view: Dir[Owner] = Dir(None, key)
    start = len(key) + 1
    inner = key_of(entry.path, start)
    view.kids[inner] = entry
    view.listed = entry_size(inner[start:], _kind_at(inner, entry))
    return view
