"""The tree's compact forms: lone children, shared lone listeners, heads made on first use."""

from __future__ import annotations

from roost.broker.tree import Dir, Node, Tree


def test_directory_keeps_lone_child_then_dict_then_lone_again() -> None:
    tree: Tree[str] = Tree()
    first = tree.create("/a/b", "event", 0.0)
    a = tree.root.get("a")
    assert isinstance(a, Dir)
    assert a.get("b") is first and a.get("c") is None
    assert a.children == {"b": first}
    second = tree.create("/a/c", "state", 0.0)
    assert a.children == {"b": first, "c": second}
    tree.remove(first)
    assert a.children == {"c": second} and a.get("b") is None
    assert tree.root.get("a") is a
    tree.remove(second)
    assert tree.root.get("a") is None and tree.root.children == {}
    assert tree.entries == 0


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
    node = Node[str]("/n", "event", tree.root, "n", 0.0)
    try:
        node.no_such_attribute  # noqa: B018
    except AttributeError as exc:
        assert "no_such_attribute" in str(exc)
    else:
        raise AssertionError("an unknown attribute must raise")
