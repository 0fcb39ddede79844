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
- Directories are path-compressed (:mod:`roost.broker.tree_entries`): a chain of one-child
  directories is no object. A second child in a chain makes the directory where it branches
  an object (a split); a held directory left with one child is dropped again (a merge). The
  entry counts, listings, errors and walks are those of the logical tree all the same.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Hashable, Iterable
from typing import Final, Generic, TypeVar

from roost.broker.tree_entries import (
    ACTION,
    EVENT,
    KINDS,
    PROP,
    STATE,
    Dir,
    Node,
    boundary,
    entry_at,
    entry_size,
    key_of,
)

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

_PATH_RE: Final = re.compile(r"(/[A-Za-z0-9_]+)+")
_LS_PATH_RE: Final = re.compile(r"(/[A-Za-z0-9_]+)*/[A-Za-z0-9_]*")

#: The connection type that owns and listens (the broker's ``Session``); the tree only keeps it.
Owner = TypeVar("Owner", bound=Hashable)

#: The encoded size of each node kind (and ``dir``) as a msgpack str.
_KIND_SIZE: Final = {kind: len(kind) + 1 for kind in (*KINDS, "dir")}


def valid_path(path: str) -> bool:
    """True if ``path`` matches ``^(/[A-Za-z0-9_]+)+$`` exactly (§10.1; no trailing newline)."""
    return _PATH_RE.fullmatch(path) is not None


def valid_ls_path(path: str) -> bool:
    """True if ``path`` is acceptable to ``/meta/ls`` (``/`` and a trailing slash allowed)."""
    return _LS_PATH_RE.fullmatch(path) is not None


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
        #: Nodes plus directories (``/`` not counted), held or not.
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
        found = self._resolve(path)
        if isinstance(found, str):
            return found
        return "path_is_directory" if isinstance(found, Dir) else "path_not_found"

    def _descend(self, path: str) -> tuple[Dir[Owner], str, Dir[Owner] | Node[Owner] | None]:
        """The deepest held directory above ``path``, the key of ``path``'s next segment there,
        and the entry held under that key (``None`` if none)."""
        here = self.root
        start = 1
        while True:
            end = path.find("/", start)  # key_of(path, start), inlined: every create walks
            key = path if end < 0 else path[:end]
            kid = here.kids.get(key)
            if type(kid) is not Dir or end < 0:
                return here, key, kid
            held = kid.path
            if len(held) != len(key):  # a chain: is ``path`` below its end?
                start = len(held)
                if len(path) <= start or path[start] != "/" or not path.startswith(held):
                    return here, key, kid
            here = kid
            start = len(held) + 1

    def _resolve(self, path: str) -> Dir[Owner] | Node[Owner] | str | None:
        """The entry at a valid ``path`` (a view for a directory of a chain), ``None`` if its
        last segment is absent, or ``path_not_found`` / ``not_a_directory`` for an earlier one."""
        _here, key, kid = self._descend(path)
        if kid is None:
            return None if len(key) == len(path) else "path_not_found"
        held = kid.path
        if held == path:
            return kid
        end = len(held)
        if len(path) > end and path[end] == "/" and path.startswith(held):
            return "not_a_directory"  # a node: a held directory would have been descended
        cut = boundary(path, held)
        if cut == len(path):  # a directory of the chain down to ``kid``
            return entry_at(path, kid)
        return None if path.find("/", cut + 1) < 0 else "path_not_found"

    def lookup_dir(self, path: str) -> Dir[Owner] | Node[Owner] | str:
        """Resolve an already validated ``/meta/ls`` path (``/`` or without trailing slash)."""
        if path == "/":
            return self.root
        found = self._resolve(path)
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
        found = self._resolve(path)
        if found is None or found == "path_not_found":
            return None
        if isinstance(found, str):
            return found
        return "path_is_directory" if isinstance(found, Dir) else "path_already_exists"

    def create(self, path: str, kind: str, now: float) -> Node[Owner]:
        """Create a node at a path :meth:`check_free` accepted, making directories on the way."""
        here, key, kid = self._descend(path)
        # Not Node[Owner](...): calling a subscripted generic costs a typing call.
        node: Node[Owner] = Node(path, kind, here, now)
        if kid is None:
            here.kids[key] = node
            # here.listed += entry_size(name, kind or "dir"), inlined.
            size = len(key) - len(here.path) - 1
            here.listed += (
                size
                + (2 if size < 32 else 3 if size < 256 else 4 if size < 0x10000 else 6)
                + _KIND_SIZE[kind if len(key) == len(path) else "dir"]
            )
        else:
            # ``path`` leaves the chain down to ``kid``: hold the directory where they part.
            cut = boundary(path, kid.path)
            fork: Dir[Owner] = Dir(here, key if cut == len(key) else path[:cut])
            here.kids[key] = fork  # in place: the listing of ``here`` keeps its order
            fork.adopt(kid)
            fork.adopt(node)
            here = fork
        made = path.count("/") - here.path.count("/")
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
            parent = node.parent
            kids = parent.kids
            start = len(parent.path) + 1
            if kids.pop(path, None) is not None:  # one segment below: this loop is a close's cost
                # entry_size(name, kind), inlined.
                size = len(path) - start
                size += _KIND_SIZE[node.kind] + (
                    2 if size < 32 else 3 if size < 256 else 4 if size < 0x10000 else 6
                )
                removed += 1
            else:  # the end of a chain: its directories go with it
                key = path[: path.index("/", start)]
                del kids[key]
                size = entry_size(key[start:], "dir")
                removed += path.count("/") - parent.path.count("/")
            parent.listed -= size
            if len(kids) < 2 and parent.parent is not None:
                _merge(parent)
        self.entries -= removed


def _merge(held: Dir[Owner]) -> None:
    """Drop ``held``, a directory left with one child, into the chain from its parent."""
    (lone,) = held.kids.values()
    up = held.parent
    assert up is not None
    up.kids[key_of(held.path, len(up.path) + 1)] = lone  # in place, still a ``dir``
    lone.parent = up
