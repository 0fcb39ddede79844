"""Tree and per-connection limits: precise errors, other clients unaffected, /meta/ls sized
without building the listing, and the ``[limits]`` configuration section."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import roost.broker.meta as meta_module
from roost.broker import frames
from roost.broker.config import parse_config
from roost.broker.limits import Limits
from roost.broker.meta import ls_size
from roost.broker.tree import Tree
from roost.errors import ConfigError
from roost.protocol import messages as m
from roost.protocol.values import pack
from tests.broker.test_router import _drain, _router, _session
from tests.conftest import BrokerThread, start_broker_thread
from tests.wire import connect, err, ok, v

pytestmark = pytest.mark.anyio


def _limited(limits: Limits) -> Iterator[BrokerThread]:
    handle, stop, thread = start_broker_thread(limits=limits)
    try:
        yield handle
    finally:
        stop.set()
        thread.join(timeout=10)


@pytest.fixture
def small() -> Iterator[BrokerThread]:
    """A broker with small path and per-connection limits."""
    yield from _limited(Limits(max_path_length=40, max_path_depth=4, max_per_connection=3))


async def test_deep_or_long_paths_are_invalid(small: BrokerThread) -> None:
    """A path deeper or longer than the limit gets ``invalid_path`` and creates nothing."""
    async with await connect(small.port) as c:
        assert await c.request(m.EventRegister(1, "/a/b/c/d/e")) == err(1, "invalid_path")
        assert await c.request(m.EventListen(2, "/a/b/c/d/e")) == err(2, "invalid_path")
        assert await c.request(m.ActionRegister(3, "/" + "x" * 40)) == err(3, "invalid_path")
        assert (await c.ls("/")).value == v(["dir", [["meta", "dir"]]])
        assert await c.request(m.EventRegister(5, "/a/b/c/d")) == ok(5)


async def test_registrations_per_connection(small: BrokerThread) -> None:
    """The fourth registration or subscription of one connection is refused; others are not."""
    async with await connect(small.port) as c, await connect(small.port) as other:
        await c.register("event", "/e1")
        await c.register("state", "/s1")
        assert await c.request(m.EventListen(7, "/e1")) == ok(7)
        assert await c.request(m.EventListen(8, "/e1")) == ok(8)  # again: costs nothing
        assert await c.request(m.EventRegister(9, "/e2")) == err(9, "too_many_registrations")
        assert await c.request(m.StateObserve(10, "/s2")) == err(10, "too_many_registrations")
        assert await c.request(m.ActionRegister(11, "/a")) == err(11, "too_many_registrations")
        await other.register("event", "/e2")
        listing = [["e1", "event"], ["e2", "event"], ["meta", "dir"], ["s1", "state"]]
        assert (await c.ls("/")).value == v(["dir", listing])


@pytest.fixture
def tiny_tree() -> Iterator[BrokerThread]:
    """A broker whose tree holds 12 entries."""
    yield from _limited(Limits(max_tree_entries=12))


async def test_tree_full_for_everyone(tiny_tree: BrokerThread) -> None:
    """Past ``max_tree_entries`` new paths get ``tree_full``; existing ones keep working."""
    tree = tiny_tree.broker.router.tree
    async with await connect(tiny_tree.port) as a, await connect(tiny_tree.port) as b:
        base = tiny_tree.call(lambda: tree.entries)
        for i in range(12 - base):
            await a.register("event", f"/e{i}")
        assert await b.request(m.EventRegister(1, "/late")) == err(1, "tree_full")
        assert await b.request(m.EventListen(2, "/e0")) == ok(2)
        await a.aclose()
        tiny_tree.wait_until(lambda: tree.entries == base + 1)
        assert await b.request(m.EventRegister(3, "/late")) == ok(3)


def test_ls_too_large_is_found_without_building_the_listing(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A directory whose listing cannot fit a frame is refused from its running size: the
    listing is never encoded (before, 100k entries were sorted and packed per call)."""
    router, _ = _router()
    session = _session(router)
    for i in range(7000):
        router.tree.create(f"/big/n{i:05d}", "event", 0.0)
    calls: list[Any] = []

    def counting_pack(obj: Any) -> bytes:
        calls.append(obj)
        return b""

    monkeypatch.setattr(meta_module, "pack", counting_pack)
    router.handle(session, m.ActionCall(1, "/meta/ls", v(["/big"])), 0.0)
    assert _drain(session) == [err(1, "value_too_large")]
    assert calls == []


_SEGMENT = st.text("abcXYZ019_", min_size=1, max_size=40)


@settings(max_examples=60, deadline=None)
@given(
    st.lists(
        st.tuples(st.lists(_SEGMENT, min_size=1, max_size=3), st.sampled_from(["event", "state"])),
        max_size=40,
    ),
    st.data(),
)
def test_running_ls_size_matches_the_encoded_listing(
    paths: list[tuple[list[str], str]], data: st.DataObject
) -> None:
    """After any mix of creates and removes, each directory's running size is exactly what
    encoding its listing gives."""
    tree: Tree[Any] = Tree()
    made = []
    for segments, kind in paths:
        path = "/" + "/".join(segments)
        if tree.check_free(path) is None:
            made.append(tree.create(path, kind, 0.0))
    for node in data.draw(st.lists(st.sampled_from(made), unique=True)) if made else []:
        tree.remove(node)
    stack = [tree.root]
    while stack:
        d = stack.pop()
        entries = [[name, getattr(c, "kind", "dir")] for name, c in sorted(d.children.items())]
        assert ls_size(d) == 3 + len(pack(["dir", entries]))
        stack.extend(c for c in d.children.values() if not hasattr(c, "kind"))


async def test_ls_just_fitting_still_answers(broker_thread: BrokerThread) -> None:
    """The size check refuses only what would not fit: a large listing that fits is sent."""
    names = [f"n{i:04d}" for i in range(3000)]
    for name in names:
        broker_thread.call(broker_thread.broker.router.tree.create, f"/fits/{name}", "event", 0.0)
    async with await connect(broker_thread.port) as c:
        reply = await c.ls("/fits")
        assert reply == ok(0, ["dir", [[n, "event"] for n in names]])
        assert len(reply.value.raw) > frames.MAX_PAYLOAD // 2


def test_limits_section() -> None:
    """``[limits]`` parses into :class:`Limits`; absent keys keep their defaults."""
    config = parse_config("[limits]\nmax_path_depth = 8\nhello_timeout = 0\n", "roost.toml")
    assert config.get("limits") == Limits(max_path_depth=8, hello_timeout=0.0)


@pytest.mark.parametrize(
    ("text", "key"),
    [
        ("[limits]\nmax_path_depth = 0\n", "limits.max_path_depth"),
        ("[limits]\nframe_timeout = -1\n", "limits.frame_timeout"),
        ("[limits]\nmax_conections = 5\n", "limits.max_conections"),
    ],
)
def test_limits_section_errors_name_the_key(text: str, key: str) -> None:
    """A wrong value or unknown key is refused, naming file, line and key."""
    with pytest.raises(ConfigError) as caught:
        parse_config(text, "roost.toml")
    assert key in str(caught.value)
    assert str(caught.value).startswith("roost.toml:2:")


def test_limits_reject_bad_values() -> None:
    """Building :class:`Limits` by hand checks the values too."""
    with pytest.raises(ValueError, match="max_path_depth"):
        Limits(max_path_depth=0)
    assert Limits().replace(max_connections=5, max_idle=None).max_connections == 5


@pytest.fixture
def few_entries() -> Iterator[BrokerThread]:
    """A broker where one connection's requests may create 10 tree entries."""
    yield from _limited(Limits(max_entries_per_connection=10))


async def test_tree_entries_per_connection(few_entries: BrokerThread) -> None:
    """Deep paths cost one entry per new segment: a connection that created its share gets
    ``too_many_registrations`` even with few registrations; another connection does not."""
    async with await connect(few_entries.port) as c, await connect(few_entries.port) as other:
        await c.register("event", "/a/b/c/d")  # 4 entries
        await c.register("event", "/a/b/c/e")  # 1 more: the directories exist
        await c.register("event", "/x/y/z")  # 3 more: 8
        assert await c.request(m.EventListen(1, "/p/q/r")) == err(1, "too_many_registrations")
        assert await c.request(m.EventListen(2, "/a/b/c/d")) == ok(2)  # an existing node
        await c.register("event", "/f")  # 9
        await other.register("event", "/p/q/r")
