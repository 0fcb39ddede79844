"""Subtree listens and observes (protocol.md E12), at the wire level."""

from __future__ import annotations

from typing import Any

import pytest

from roost.broker.subtree import PatternError, parse_pattern
from roost.protocol import messages as m
from tests.conftest import BrokerThread
from tests.wire import Wire, connect, ok, v

pytestmark = pytest.mark.anyio


def body(**fields: Any) -> Any:
    return v(fields)


async def observe(w: Wire, sub: int, pattern: str) -> list[m.SubtreeSnapshot]:
    """Start a subtree observe; return its snapshot pushes (the reply ends them)."""
    rid = w.next_id()
    await w.send(m.SubtreeObserve(rid, body(sub=sub, pattern=pattern)))
    snapshot = []
    while True:
        msg = await w.recv()
        if isinstance(msg, m.SubtreeSnapshot):
            snapshot.append(msg)
            continue
        assert msg == ok(rid, {"status": "OK", "states": len(snapshot)})
        return snapshot


async def listen(w: Wire, sub: int, pattern: str) -> None:
    rid = w.next_id()
    assert await w.request(m.SubtreeListen(rid, body(sub=sub, pattern=pattern))) == ok(
        rid, {"status": "OK"}
    )


def test_parse_pattern() -> None:
    assert parse_pattern("/house/**") == ("house", "**")
    assert parse_pattern("/house/+/temp") == ("house", "+", "temp")
    assert parse_pattern("/**") == ("**",)
    for bad in ("/house/#", "house/**", "/", "/a/**/b", "/a//b", "/a/b-c", "/a/*"):
        with pytest.raises(PatternError):
            parse_pattern(bad)
    with pytest.raises(PatternError, match=r"use /\*\*"):
        parse_pattern("/house/#")


async def test_listen_sees_events_registered_before_and_after(broker_thread: BrokerThread) -> None:
    """Events under the prefix at any depth, registered before or after the listen, arrive
    with their concrete path; events outside it do not."""
    async with await connect(broker_thread.port) as owner, await connect(broker_thread.port) as sub:
        await owner.register("event", "/house/door")
        await owner.register("event", "/garden/gate")
        await listen(sub, 1, "/house/**")
        await owner.register("event", "/house/kitchen/oven/done")
        await owner.call_ok(m.EventEmit(owner.next_id(), "/garden/gate", v("no")))
        await owner.call_ok(m.EventEmit(owner.next_id(), "/house/door", v("open")))
        await owner.call_ok(m.EventEmit(owner.next_id(), "/house/kitchen/oven/done", v(1)))
        assert await sub.recv() == m.SubtreeEvent("/house/door", v("open"))
        assert await sub.recv() == m.SubtreeEvent("/house/kitchen/oven/done", v(1))
        await sub.expect_silence(0.2)


async def test_one_segment_wildcard(broker_thread: BrokerThread) -> None:
    async with await connect(broker_thread.port) as owner, await connect(broker_thread.port) as sub:
        for path in ("/h/a/temp", "/h/b/temp", "/h/a/b/temp", "/h/a/hum"):
            await owner.register("event", path)
        await listen(sub, 7, "/h/+/temp")
        for path in ("/h/a/temp", "/h/b/temp", "/h/a/b/temp", "/h/a/hum"):
            await owner.call_ok(m.EventEmit(owner.next_id(), path, v(path)))
        assert await sub.recv() == m.SubtreeEvent("/h/a/temp", v("/h/a/temp"))
        assert await sub.recv() == m.SubtreeEvent("/h/b/temp", v("/h/b/temp"))
        await sub.expect_silence(0.2)


async def test_observe_snapshot_then_changes(broker_thread: BrokerThread) -> None:
    """Known states come first as snapshot pushes, then the reply, then every change, unknown
    ones included; a state registered later is followed too."""
    async with await connect(broker_thread.port) as owner, await connect(broker_thread.port) as sub:
        await owner.register("state", "/house/temp")
        await owner.register("state", "/house/hum")
        await owner.register("state", "/other/temp")
        await owner.call_ok(m.StateChanged(owner.next_id(), "/house/temp", v(20)))
        await owner.call_ok(m.StateChanged(owner.next_id(), "/other/temp", v(5)))
        snapshot = await observe(sub, 3, "/house/**")
        assert snapshot == [m.SubtreeSnapshot(3, "/house/temp", v(20))]
        await owner.call_ok(m.StateChanged(owner.next_id(), "/house/hum", v(40)))
        await owner.register("state", "/house/attic/temp")
        await owner.call_ok(m.StateChanged(owner.next_id(), "/house/attic/temp", v(30)))
        await owner.call_ok(m.StateUnknown(owner.next_id(), "/house/temp"))
        assert await sub.recv() == m.SubtreeChanged("/house/hum", v(40))
        assert await sub.recv() == m.SubtreeChanged("/house/attic/temp", v(30))
        assert await sub.recv() == m.SubtreeUnknown("/house/temp")
        await owner.aclose()
        # The owner went: its known states go unknown, once each.
        got = {await sub.recv(), await sub.recv()}
        assert got == {m.SubtreeUnknown("/house/hum"), m.SubtreeUnknown("/house/attic/temp")}
        await sub.expect_silence(0.2)


async def test_overlapping_patterns_one_push_per_change(broker_thread: BrokerThread) -> None:
    """Two matching patterns of one connection: one push per change; each snapshot names its
    own subscription; a cancel leaves the other one running."""
    async with await connect(broker_thread.port) as owner, await connect(broker_thread.port) as sub:
        await owner.register("state", "/a/b/c")
        await owner.call_ok(m.StateChanged(owner.next_id(), "/a/b/c", v(1)))
        assert await observe(sub, 1, "/a/**") == [m.SubtreeSnapshot(1, "/a/b/c", v(1))]
        assert await observe(sub, 2, "/a/+/c") == [m.SubtreeSnapshot(2, "/a/b/c", v(1))]
        await owner.call_ok(m.StateChanged(owner.next_id(), "/a/b/c", v(2)))
        assert await sub.recv() == m.SubtreeChanged("/a/b/c", v(2))
        await sub.expect_silence(0.2)
        rid = sub.next_id()
        assert await sub.request(m.SubtreeCancel(rid, body(sub=1))) == ok(rid, {"status": "OK"})
        await owner.call_ok(m.StateChanged(owner.next_id(), "/a/b/c", v(3)))
        assert await sub.recv() == m.SubtreeChanged("/a/b/c", v(3))
        rid = sub.next_id()
        assert await sub.request(m.SubtreeCancel(rid, body(sub=2))) == ok(rid, {"status": "OK"})
        await owner.call_ok(m.StateChanged(owner.next_id(), "/a/b/c", v(4)))
        await sub.expect_silence(0.2)


async def test_meta_states_and_events(broker_thread: BrokerThread) -> None:
    """The broker's own states are part of a snapshot like any other."""
    async with await connect(broker_thread.port) as sub:
        snapshot = await observe(sub, 1, "/meta/**")
        paths = [push.path for push in snapshot]
        assert "/meta/broker" in paths
        broker = next(push for push in snapshot if push.path == "/meta/broker")
        assert broker.value.obj["extensions"]["subtree"] == 1


@pytest.mark.parametrize(
    ("fields", "status"),
    [
        ({"sub": 1, "pattern": "/house/#"}, "invalid_pattern"),
        ({"sub": 1, "pattern": "/a/**/b"}, "invalid_pattern"),
        ({"sub": "x", "pattern": "/a/**"}, "bad_args"),
        ({"sub": 70000, "pattern": "/a/**"}, "bad_args"),
        ({"pattern": "/a/**"}, "bad_args"),
        ({"sub": 1}, "bad_args"),
    ],
)
async def test_bad_requests(broker_thread: BrokerThread, fields: Any, status: str) -> None:
    async with await connect(broker_thread.port) as sub:
        reply = await sub.request(m.SubtreeListen(9, v(fields)))
        assert isinstance(reply, m.ReplyError)
        assert reply.value.obj["status"] == status
        assert reply.value.obj["reason"]
        await sub.assert_open()


async def test_hash_gets_a_hint(broker_thread: BrokerThread) -> None:
    async with await connect(broker_thread.port) as sub:
        reply = await sub.request(m.SubtreeObserve(9, body(sub=1, pattern="/house/#")))
        assert isinstance(reply, m.ReplyError)
        assert "/**" in reply.value.obj["reason"]


async def test_sub_number_in_use(broker_thread: BrokerThread) -> None:
    async with await connect(broker_thread.port) as sub:
        await listen(sub, 5, "/a/**")
        reply = await sub.request(m.SubtreeListen(9, body(sub=5, pattern="/b/**")))
        assert isinstance(reply, m.ReplyError)
        assert reply.value.obj == {"status": "bad_args", "reason": "sub 5 is in use"}


async def test_plain_client_sees_nothing_different(broker_thread: BrokerThread) -> None:
    """A plain ESHET listener and observer next to subtree subscribers get exactly the ESHET
    frames, and nothing else."""
    async with (
        await connect(broker_thread.port) as owner,
        await connect(broker_thread.port) as plain,
        await connect(broker_thread.port) as sub,
    ):
        await owner.register("state", "/x/s")
        await owner.register("event", "/x/e")
        await observe(sub, 1, "/x/**")
        await listen(sub, 2, "/x/**")
        await plain.call_ok(m.EventListen(plain.next_id(), "/x/e"))
        rid = plain.next_id()
        assert await plain.request(m.StateObserve(rid, "/x/s")) == m.ReplyStateUnknown(rid)
        await owner.call_ok(m.StateChanged(owner.next_id(), "/x/s", v(1)))
        await owner.call_ok(m.EventEmit(owner.next_id(), "/x/e", v(2)))
        assert await plain.recv() == m.StateNotify("/x/s", v(1))
        assert await plain.recv() == m.EventNotify("/x/e", v(2))
        await plain.expect_silence(0.2)
        assert await sub.recv() == m.SubtreeChanged("/x/s", v(1))
        assert await sub.recv() == m.SubtreeEvent("/x/e", v(2))


async def test_subscriber_disconnect_forgets_it(broker_thread: BrokerThread) -> None:
    async with await connect(broker_thread.port) as owner:
        await owner.register("event", "/q/e")
        async with await connect(broker_thread.port) as sub:
            await listen(sub, 1, "/q/**")
        broker_thread.wait_until(lambda: broker_thread.broker.router.subtrees.count == 0)
        node = broker_thread.broker.router.tree.nodes["/q/e"]
        assert node.watchers == ()
        await owner.call_ok(m.EventEmit(owner.next_id(), "/q/e", v(1)))


async def test_permit_decides_at_subscription_time(broker_thread: BrokerThread) -> None:
    """The access-control hook is asked once per subscription; its predicate filters the
    snapshot and the stream, nodes created later included."""
    asked: list[tuple[str, str]] = []

    def permit(session: object, pattern: str, kind: str) -> Any:
        asked.append((pattern, kind))
        return lambda path: not path.startswith("/p/secret")

    index = broker_thread.broker.router.subtrees
    broker_thread.call(setattr, index, "permit", permit)
    async with await connect(broker_thread.port) as owner, await connect(broker_thread.port) as sub:
        await owner.register("state", "/p/open")
        await owner.register("state", "/p/secret")
        await owner.call_ok(m.StateChanged(owner.next_id(), "/p/open", v(1)))
        await owner.call_ok(m.StateChanged(owner.next_id(), "/p/secret", v(2)))
        assert await observe(sub, 1, "/p/**") == [m.SubtreeSnapshot(1, "/p/open", v(1))]
        await owner.register("state", "/p/secret2")
        await owner.register("state", "/p/open2")
        for path in ("/p/secret", "/p/secret2", "/p/open2"):
            await owner.call_ok(m.StateChanged(owner.next_id(), path, v(3)))
        assert await sub.recv() == m.SubtreeChanged("/p/open2", v(3))
        await sub.expect_silence(0.2)
    assert asked == [("/p/**", "state")]


async def test_huge_bad_pattern_gets_a_short_error(broker_thread: BrokerThread) -> None:
    async with await connect(broker_thread.port) as sub:
        pattern = "/a" * 20000 + "/-"
        reply = await sub.request(m.SubtreeListen(9, body(sub=1, pattern=pattern)))
        assert isinstance(reply, m.ReplyError)
        assert reply.value.obj["status"] == "invalid_pattern"
        assert len(reply.value.obj["reason"]) < 200
        deep = "/a" * 20000 + "/**"  # valid: thousands of segments, walked without recursion
        await listen(sub, 2, deep)
        await sub.assert_open()
