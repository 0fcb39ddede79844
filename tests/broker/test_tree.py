"""The tree's compact forms: compressed chains of directories, shared lone listeners, heads
made on first use."""

from __future__ import annotations

from roost.broker.tree import Dir, Node, Tree, entry_size


def test_a_chain_of_one_child_directories_is_no_object() -> None:
    tree: Tree[str] = Tree()
    deep = tree.create("/a/b/c/d", "event", 0.0)
    assert tree.root.kids == {"/a": deep} and deep.parent is tree.root
    assert tree.entries == 4 and tree.root.listed == entry_size("a", "dir")
    b = tree.lookup_dir("/a/b")
    assert isinstance(b, Dir) and b.kids == {"/a/b/c": deep} and b.count == 1
    c = b.children["c"]
    assert isinstance(c, Dir) and c.path == "/a/b/c" and c.children == {"d": deep}
    assert c.listed == entry_size("d", "event") and b.listed == entry_size("c", "dir")
    a = tree.root.get("a")
    assert isinstance(a, Dir) and a.path == "/a" and a.count == 1
    assert tree.lookup_dir("/a/b/c") is not deep
    assert tree.lookup_dir("/a/b/c/d") is deep


def test_a_second_child_splits_the_chain_and_its_removal_merges_it_again() -> None:
    tree: Tree[str] = Tree()
    first = tree.create("/a/b/c/d", "event", 0.0)
    second = tree.create("/a/b/x/y", "state", 0.0)
    fork = tree.root.kids["/a"]
    assert isinstance(fork, Dir) and fork.path == "/a/b" and fork.parent is tree.root
    assert fork.kids == {"/a/b/c": first, "/a/b/x": second}
    assert first.parent is fork and second.parent is fork
    assert fork.listed == 2 * entry_size("c", "dir")
    assert tree.entries == 6  # a, b, c, d, x, y
    assert list(tree.root.children) == ["a"] and list(fork.children) == ["c", "x"]
    third = tree.create("/a/b/e", "action", 0.0)  # under the held directory: no split
    assert tree.root.kids["/a"] is fork and fork.kids["/a/b/e"] is third
    assert fork.listed == 2 * entry_size("c", "dir") + entry_size("e", "action")
    tree.remove(third)
    assert tree.root.kids["/a"] is fork  # two children left: still held
    tree.remove(first)
    assert tree.root.kids == {"/a": second} and second.parent is tree.root  # merged
    assert tree.entries == 4 and tree.find("/a/b/c") == "path_not_found"
    assert tree.find("/a/b") == "path_is_directory"
    tree.remove(second)
    assert tree.root.kids == {} and tree.root.listed == 0 and tree.entries == 0


def test_split_where_a_node_would_nest_or_a_segment_only_shares_a_prefix() -> None:
    tree: Tree[str] = Tree()
    node = tree.create("/a/bc/d", "event", 0.0)
    assert tree.check_free("/a/bc/d/e") == "not_a_directory"
    assert tree.check_free("/a/bc") == "path_is_directory"
    assert tree.check_free("/a/b") is None and tree.find("/a/b") == "path_not_found"
    assert tree.find("/a/b/x") == "path_not_found"
    assert tree.lookup_dir("/a/bc/d/e") == "not_a_directory"
    other = tree.create("/a/b", "action", 0.0)
    fork = tree.root.kids["/a"]
    assert isinstance(fork, Dir) and fork.path == "/a"
    assert fork.kids == {"/a/bc": node, "/a/b": other} and list(fork.children) == ["bc", "b"]
    assert tree.entries == 4
    tree.remove(node)
    assert tree.root.kids == {"/a": other} and tree.entries == 2


def test_removal_of_a_deep_path_removes_every_directory_it_made() -> None:
    tree: Tree[str] = Tree()
    keep = tree.create("/x/y/k", "event", 0.0)
    gone = tree.create("/x/y/z/w/v", "event", 0.0)
    assert tree.entries == 6
    assert tree.find("/x/y/z/w") == "path_is_directory"
    tree.remove(gone)
    assert tree.entries == 3
    assert tree.find("/x/y/z") == "path_not_found"
    assert tree.find("/x/y/k") is keep
    assert tree.lookup_dir("/x/y").children == {"k": keep}  # type: ignore[union-attr]


def _listeners(node: Node[str]) -> object:
    return node.listeners


def test_lone_listener_shares_its_tuple_and_a_second_makes_a_dict() -> None:
    tree: Tree[str] = Tree()
    one, two = tree.create("/e1", "event", 0.0), tree.create("/e2", "event", 0.0)
    alone = ("s1",)
    one.add_listener("s1", alone)
    two.add_listener("s1", alone)
    assert one.listeners is alone and two.listeners is alone
    one.add_listener("s1", alone)  # again: nothing changes
    assert one.listeners is alone
    one.add_listener("s2", ("s2",))
    assert list(one.listeners) == ["s1", "s2"] and isinstance(_listeners(one), dict)
    one.drop_listener("s1")
    assert list(one.listeners) == ["s2"]
    two.drop_listener("s2")  # not a listener: nothing changes
    assert two.listeners is alone
    two.drop_listener("s1")
    assert not _listeners(two)
    assert alone == ("s1",)


def test_heads_are_made_on_first_use() -> None:
    tree: Tree[str] = Tree()
    event, state = tree.create("/a/e", "event", 0.0), tree.create("/a/s", "state", 0.0)
    assert event.path_head == b"/a/e\0"
    assert event.note_head == b"\x33/a/e\0"
    assert state.note_head == b"\x44/a/s\0"
    assert state.note_head is state.note_head  # kept once made
    node = Node[str]("/n", "event", tree.root, 0.0)
    assert node.name == "n" and event.name == "e"
    try:
        node.no_such_attribute  # noqa: B018
    except AttributeError as exc:
        assert "no_such_attribute" in str(exc)
    else:
        raise AssertionError("an unknown attribute must raise")
