"""The compressed tree against a plain model, as a Hypothesis state machine.

The model is a dict of node paths; its directories are every proper prefix of them. Random
creates and removals (single, batched, repeated) must leave the tree answering exactly what
the model says: ``check_free`` errors, ``find``, ``lookup_dir`` with each directory's children
(names, kinds, order) and ``/meta/ls`` size, the entry counts, and subtree walks in tree order.
The held structure is checked too: only the root and directories with two or more children
are objects, each keyed and parented where it belongs.
"""

from __future__ import annotations

import itertools
from typing import Any

from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from roost.broker.meta import ls_size
from roost.broker.subtree import SubtreeIndex
from roost.broker.tree import KINDS, Dir, Node, Tree
from roost.broker.tree_entries import key_of
from roost.protocol.values import pack

SEGMENTS = ("a", "b", "ab")
MAX_DEPTH = 5
MAX_ENTRIES = 24
#: Every path of up to three segments: queried after each step.
QUERIES = tuple(
    "/" + "/".join(segs)
    for depth in (1, 2, 3)
    for segs in itertools.product(SEGMENTS, repeat=depth)
)
PATTERNS = (("**",), ("a", "+"), ("+", "b", "**"), ("+", "+", "+"), ("ab", "**"))

paths = st.lists(st.sampled_from(SEGMENTS), min_size=1, max_size=MAX_DEPTH + 1).map(
    lambda segs: "/" + "/".join(segs)
)


def _prefixes(path: str) -> list[str]:
    """The proper prefixes of ``path`` (its directories), shallowest first."""
    parts = path.split("/")[1:]
    return ["/" + "/".join(parts[:i]) for i in range(1, len(parts))]


class TreeMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.tree: Tree[str] = Tree(max_depth=MAX_DEPTH, max_entries=MAX_ENTRIES)
        self.index: SubtreeIndex[str] = SubtreeIndex(self.tree)
        self.kinds: dict[str, str] = {}  # node path -> kind
        self.made: dict[str, Node[str]] = {}  # node path -> node
        self.gone: list[Node[str]] = []  # removed nodes (removing again must be harmless)
        # Logical entry (node or directory) -> when it appeared: listings keep that order.
        self.born: dict[str, int] = {}
        self.clock = itertools.count()

    # -- the model -----------------------------------------------------------------------------

    def dirs(self) -> set[str]:
        return {p for path in self.kinds for p in _prefixes(path)}

    def entries(self) -> int:
        return len(self.kinds) + len(self.dirs())

    def expected_free(self, path: str) -> str | None:
        if path in self.kinds:
            return "path_already_exists"
        if path.count("/") > MAX_DEPTH:
            return "invalid_path"
        if self.entries() + path.count("/") > MAX_ENTRIES:
            return "tree_full"
        found = self.expected_walk(path)
        return None if found in ("absent", "path_not_found") else found

    def expected_walk(self, path: str) -> str:
        """``node``, ``dir``, ``absent`` or an error string, as the plain tree's walk gives."""
        dirs = self.dirs()
        for prefix in _prefixes(path):
            if prefix in self.kinds:
                return "not_a_directory"
            if prefix not in dirs:
                return "path_not_found"
        if path in self.kinds:
            return "path_already_exists"
        return "path_is_directory" if path in dirs else "absent"

    def expected_children(self, path: str) -> list[tuple[str, str]]:
        """``[name, kind]`` of the children of directory ``path`` ("" for /), oldest first."""
        below = {key_of(p, len(path) + 1) for p in self.kinds if p.startswith(path + "/")}
        ordered = sorted(below, key=self.born.__getitem__)
        return [(p[len(path) + 1 :], self.kinds.get(p, "dir")) for p in ordered]

    def expected_nodes(self, path: str) -> list[str]:
        """Node paths below directory ``path`` in tree order (depth first, oldest first)."""
        out: list[str] = []
        for name, kind in self.expected_children(path):
            child = f"{path}/{name}"
            out += self.expected_nodes(child) if kind == "dir" else [child]
        return out

    # -- rules ---------------------------------------------------------------------------------

    @rule(path=paths, kind=st.sampled_from(KINDS))
    def create(self, path: str, kind: str) -> None:
        expected = self.expected_free(path)
        assert self.tree.check_free(path) == expected
        if expected is not None:
            return
        before = self.entries()
        node = self.tree.create(path, kind, 0.0)
        for entry in [*_prefixes(path), path]:
            self.born.setdefault(entry, next(self.clock))
        self.kinds[path] = kind
        self.made[path] = node
        assert self.tree.created == self.entries() - before
        assert node.path == path and node.name == path.rsplit("/", 1)[1]

    def _forget(self, path: str) -> None:
        del self.kinds[path]
        self.gone.append(self.made.pop(path))
        live = set(self.kinds) | self.dirs()
        for entry in [p for p in self.born if p not in live]:
            del self.born[entry]

    @precondition(lambda self: self.made)
    @rule(data=st.data())
    def remove(self, data: st.DataObject) -> None:
        path = data.draw(st.sampled_from(sorted(self.made)))
        self.tree.remove(self.made[path])
        self._forget(path)

    @precondition(lambda self: self.made)
    @rule(data=st.data())
    def remove_all(self, data: st.DataObject) -> None:
        chosen = data.draw(st.lists(st.sampled_from(sorted(self.made)), max_size=6))
        stale = data.draw(st.lists(st.sampled_from(self.gone), max_size=2)) if self.gone else []
        batch = [self.made[p] for p in chosen] + stale
        self.tree.remove_all(iter(batch))  # any iterable, duplicates and stale nodes included
        for path in dict.fromkeys(chosen):
            self._forget(path)

    # -- invariants ----------------------------------------------------------------------------

    @invariant()
    def answers_match_the_model(self) -> None:
        tree = self.tree
        assert tree.entries == self.entries()
        assert tree.nodes == self.made
        for path in {*QUERIES, *self.kinds, *self.dirs()}:
            expected = self.expected_walk(path)
            found = tree.find(path)
            if expected == "path_already_exists":
                assert found is self.made[path]
            else:
                assert found == ("path_not_found" if expected == "absent" else expected), path
            listed = tree.lookup_dir(path)
            if expected == "path_is_directory":
                assert isinstance(listed, Dir), path
                self.check_listing(path, listed)
            elif expected == "path_already_exists":
                assert listed is self.made[path]
            else:
                assert listed == ("path_not_found" if expected == "absent" else expected), path
            assert tree.check_free(path) == self.expected_free(path), path
        root = tree.lookup_dir("/")
        assert root is tree.root
        self.check_listing("", tree.root)

    def check_listing(self, path: str, found: Dir[str]) -> None:
        expected = self.expected_children(path)
        children = found.children
        names = [(name, "dir" if isinstance(c, Dir) else c.kind) for name, c in children.items()]
        assert names == expected, path
        assert found.count == len(expected)
        assert [c.path for c in found.child_entries()] == [c.path for c in children.values()]
        for name, child in children.items():
            assert child.path == f"{path}/{name}"
            assert found.get(name) is child or isinstance(child, Dir)
        encoded = pack(["dir", [list(entry) for entry in sorted(expected)]])
        assert ls_size(found) == 3 + len(encoded), path

    @invariant()
    def only_branching_directories_are_held(self) -> None:
        stack: list[Dir[str]] = [self.tree.root]
        while stack:
            held = stack.pop()
            if held is not self.tree.root:
                assert held.count >= 2, held
            for key, kid in held.kids.items():
                assert kid.parent is held
                assert key == key_of(kid.path, len(held.path) + 1)
                if isinstance(kid, Dir):
                    stack.append(kid)

    @invariant()
    def subtree_walks_go_in_tree_order(self) -> None:
        for kind in KINDS:
            for pattern in PATTERNS:
                found = [n.path for n in self.index.nodes_matching(pattern, kind)]
                expected = [
                    p
                    for p in self.expected_nodes("")
                    if self.kinds[p] == kind and _matches(pattern, p)
                ]
                assert found == expected, (pattern, kind)


def _matches(pattern: tuple[str, ...], path: str) -> bool:
    parts = path.split("/")[1:]
    if pattern[-1] == "**":
        head = pattern[:-1]
        return len(parts) > len(head) and all(
            p in ("+", s) for p, s in zip(head, parts, strict=False)
        )
    return len(parts) == len(pattern) and all(
        p in ("+", s) for p, s in zip(pattern, parts, strict=True)
    )


TreeMachine.TestCase.settings = settings(max_examples=150, stateful_step_count=40, deadline=None)
test_tree_against_model = TreeMachine.TestCase


def test_listing_views_are_not_kept() -> None:
    """A view of a chain directory reads the tree as it is now; the tree keeps none."""
    tree: Tree[Any] = Tree()
    node = tree.create("/a/b/c", "event", 0.0)
    view = tree.lookup_dir("/a/b")
    assert isinstance(view, Dir) and view.parent is None
    assert tree.root.kids == {"/a": node}
