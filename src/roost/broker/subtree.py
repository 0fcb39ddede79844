"""Subtree subscriptions: path patterns, and which sessions each node's notifications reach.

Rules of this module:

- Pure data over the tree, no I/O and no clock, like :mod:`roost.broker.tree`.
- A pattern is a path whose segments may be ``+`` (exactly one segment) and whose last segment
  may be ``**`` (one or more segments): ``/house/**``, ``/house/+/temp``, ``/**``.
- Subscriptions are kept in a trie of pattern segments, one per node kind (events for
  listens, states for observes). A node's matching sessions (``Node.watchers``) are computed
  when the node is created, by one walk of the trie along its path, and recomputed for the
  nodes a subscription matches when that subscription starts or ends. Routing a notification
  then reads ``node.watchers`` and costs O(matching sessions), whatever the number of
  subscriptions.
- A session appears once in ``watchers`` however many of its patterns match: it gets one frame
  per notification and sorts it to its own subscriptions by path.
- Permissions are decided at subscription time: a subscription carries ``allows`` (a
  predicate on paths, or ``None`` for everything) from :attr:`SubtreeIndex.permit`, applied
  while ``watchers`` and snapshots are computed, never per message.
- Walks are iterative: a valid path may have thousands of segments.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Hashable, Iterator
from typing import Final, Generic, TypeVar

from roost.broker.tree import EVENT, STATE, Dir, Node, Tree

__all__ = ("PatternError", "Sub", "SubtreeIndex", "parse_pattern")

Owner = TypeVar("Owner", bound=Hashable)

_SEGMENT: Final = re.compile(r"[A-Za-z0-9_]+")

#: A predicate on concrete paths: may this subscription see that path?
Allows = Callable[[str], bool]


class PatternError(ValueError):
    """A pattern that is not a path with ``+`` segments and an optional final ``**``."""


def _shown(text: str) -> str:
    """``text`` quoted for an error message, cut short (a reply must fit one frame)."""
    return repr(text) if len(text) <= 80 else repr(text[:77] + "...")


def parse_pattern(pattern: str) -> tuple[str, ...]:
    """The segments of a subscription pattern.

    Raises:
        PatternError: not a valid pattern; the message says why (MQTT's ``#`` gets a hint).
    """
    shown = _shown(pattern)
    if "#" in pattern:
        raise PatternError(f"{shown}: '#' is not a wildcard here; use /** for any depth")
    if not pattern.startswith("/") or pattern == "/":
        raise PatternError(f"{shown}: a pattern starts with / and has a segment")
    segments = tuple(pattern[1:].split("/"))
    last = len(segments) - 1
    for index, segment in enumerate(segments):
        if segment == "+" or (segment == "**" and index == last):
            continue
        if segment == "**":
            raise PatternError(f"{shown}: ** may only be the last segment")
        if _SEGMENT.fullmatch(segment) is None:
            raise PatternError(f"{shown}: bad segment {_shown(segment)}")
    return segments


class Sub(Generic[Owner]):
    """One subtree subscription of one session."""

    __slots__ = ("allows", "kind", "number", "pattern", "segments", "session")

    def __init__(
        self,
        session: Owner,
        number: int,
        kind: str,
        pattern: str,
        *,
        segments: tuple[str, ...],
        allows: Allows | None,
    ) -> None:
        self.session = session
        #: The number the client chose for it (snapshot pushes and cancels name it).
        self.number = number
        self.kind = kind
        self.pattern = pattern
        self.segments = segments
        self.allows = allows

    def __repr__(self) -> str:
        return f"<Sub {self.number} {self.kind} {self.pattern}>"


class _Level(Generic[Owner]):
    """One level of the pattern trie."""

    __slots__ = ("children", "deep", "exact", "plus")

    def __init__(self) -> None:
        self.children: dict[str, _Level[Owner]] = {}
        self.plus: _Level[Owner] | None = None
        #: Subscriptions whose pattern ends with ``**`` right below this level.
        self.deep: dict[Sub[Owner], None] = {}
        #: Subscriptions whose pattern ends at this level.
        self.exact: dict[Sub[Owner], None] = {}

    def empty(self) -> bool:
        return not (self.children or self.plus or self.deep or self.exact)


def _allow_all(session: object, pattern: str, kind: str) -> Allows | None:
    return None


class SubtreeIndex(Generic[Owner]):
    """Every subtree subscription of one tree, and the ``watchers`` of its nodes.

    Creating the index hooks it into ``tree.on_create``.
    """

    def __init__(self, tree: Tree[Owner]) -> None:
        self.tree = tree
        self._roots: dict[str, _Level[Owner]] = {EVENT: _Level(), STATE: _Level()}
        self._by_session: dict[Owner, dict[int, Sub[Owner]]] = {}
        self.count = 0
        #: The one place where access control decides, when a subscription is made, which of
        #: the paths it matches its session may see: ``permit(session, pattern, kind)`` returns
        #: a predicate on paths, or ``None`` for all of them. The default allows everything.
        self.permit: Callable[[Owner, str, str], Allows | None] = _allow_all
        tree.on_create = self.attach

    # -- subscriptions -------------------------------------------------------------------------

    def subs_of(self, session: Owner) -> dict[int, Sub[Owner]]:
        """The subscriptions of ``session`` by number (empty if none; do not mutate)."""
        return self._by_session.get(session, {})

    def add(self, sub: Sub[Owner]) -> list[Node[Owner]]:
        """Start ``sub`` (its number must be free for its session); return the nodes it
        matches now, after updating their ``watchers``."""
        level = self._roots[sub.kind]
        segments = sub.segments
        deep = segments[-1] == "**"
        for segment in segments[:-1] if deep else segments:
            if segment == "+":
                if level.plus is None:
                    level.plus = _Level()
                level = level.plus
            else:
                nxt = level.children.get(segment)
                if nxt is None:
                    nxt = level.children[segment] = _Level()
                level = nxt
        (level.deep if deep else level.exact)[sub] = None
        self._by_session.setdefault(sub.session, {})[sub.number] = sub
        self.count += 1
        return self._refresh(sub)

    def remove(self, sub: Sub[Owner]) -> None:
        """End ``sub`` and update the ``watchers`` of the nodes it matched."""
        subs = self._by_session.get(sub.session)
        if subs is None or subs.get(sub.number) is not sub:
            return
        del subs[sub.number]
        if not subs:
            del self._by_session[sub.session]
        self.count -= 1
        segments = sub.segments
        deep = segments[-1] == "**"
        path: list[tuple[_Level[Owner], str]] = []
        level = self._roots[sub.kind]
        for segment in segments[:-1] if deep else segments:
            nxt = level.plus if segment == "+" else level.children.get(segment)
            assert nxt is not None
            path.append((level, segment))
            level = nxt
        del (level.deep if deep else level.exact)[sub]
        # Prune the levels it leaves empty, deepest first.
        while path and level.empty():
            parent, segment = path.pop()
            if segment == "+":
                parent.plus = None
            else:
                del parent.children[segment]
            level = parent
        self._refresh(sub)

    def drop_session(self, session: Owner) -> None:
        """End every subscription of ``session`` (it disconnected)."""
        for sub in list(self._by_session.get(session, {}).values()):
            self.remove(sub)

    # -- nodes ---------------------------------------------------------------------------------

    def attach(self, node: Node[Owner]) -> None:
        """Compute the ``watchers`` of a new node (nothing to do without subscriptions)."""
        if self.count:
            node.watchers = self.match(node)

    def match(self, node: Node[Owner]) -> tuple[Owner, ...]:
        """The sessions with a subscription that matches ``node`` and allows its path, each
        once, in subscription order of their first match."""
        root = self._roots.get(node.kind)
        if root is None:
            return ()
        path = node.path
        segments = path[1:].split("/")
        end = len(segments)
        found: dict[Owner, None] = {}
        stack: list[tuple[_Level[Owner], int]] = [(root, 0)]
        while stack:
            level, index = stack.pop()
            if index == end:
                subs = level.exact
            else:
                subs = level.deep
                if level.plus is not None:
                    stack.append((level.plus, index + 1))
                child = level.children.get(segments[index])
                if child is not None:
                    stack.append((child, index + 1))
            for sub in subs:
                if sub.session not in found and (sub.allows is None or sub.allows(path)):
                    found[sub.session] = None
        return tuple(found)

    def nodes_matching(self, segments: tuple[str, ...], kind: str) -> Iterator[Node[Owner]]:
        """Every node of ``kind`` whose path matches the pattern ``segments``, in tree order."""
        end = len(segments)
        stack: list[tuple[Dir[Owner] | Node[Owner], int]] = [(self.tree.root, 0)]
        while stack:
            entry, index = stack.pop()
            if isinstance(entry, Node):
                if index == end and entry.kind == kind:
                    yield entry
                continue
            if index == end:
                continue
            segment = segments[index]
            if segment == "**":
                yield from _all_nodes(entry, kind)
            elif segment == "+":
                stack.extend((child, index + 1) for child in reversed(entry.child_entries()))
            else:
                child = entry.get(segment)
                if child is not None:
                    stack.append((child, index + 1))

    def _refresh(self, sub: Sub[Owner]) -> list[Node[Owner]]:
        nodes = list(self.nodes_matching(sub.segments, sub.kind))
        for node in nodes:
            node.watchers = self.match(node)
        return nodes


def _all_nodes(top: Dir[Owner], kind: str) -> Iterator[Node[Owner]]:
    """Every node of ``kind`` below ``top``, in tree order (walking held entries only: a
    chain of one-child directories is one step)."""
    stack: list[Dir[Owner] | Node[Owner]] = list(reversed(top.kids.values()))
    while stack:
        entry = stack.pop()
        if isinstance(entry, Node):
            if entry.kind == kind:
                yield entry
        else:
            stack.extend(reversed(entry.kids.values()))
