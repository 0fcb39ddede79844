"""Conformance sections C and D: actions and props (cases 33-47), at the wire level."""

from __future__ import annotations

import pytest

from roost.protocol import messages as m
from roost.protocol.values import NIL
from tests.conftest import BrokerThread
from tests.wire import Wire, connect, err, ok, v

pytestmark = pytest.mark.anyio


async def _answer(owner: Wire, value: object) -> m.ActionCall:
    call = await owner.recv_as(m.ActionCall)
    await owner.send(m.ReplyOk(call.id, v(value)))
    return call


async def test_call_with_one_argument(broker_thread: BrokerThread) -> None:
    """Cases 33, 34: the owner gets 0x11 with args [5] and its reply 6 reaches the caller,
    however late it comes."""
    async with await connect(broker_thread.port) as a, await connect(broker_thread.port) as b:
        await a.register("action", "/c/act")
        await b.send(m.ActionCall(1, "/c/act", v([5])))
        call = await a.recv_as(m.ActionCall)
        assert call.path == "/c/act"
        assert call.args.obj == [5]
        await b.assert_open()  # a pending call does not block the caller's other requests
        await a.send(m.ReplyOk(call.id, v(call.args.obj[0] + 1)))
        assert await b.recv() == ok(1, 6)


async def test_forwarding_uses_broker_ids(broker_thread: BrokerThread) -> None:
    """Case 35: the owner sees broker ids 0, 1, 2, 3 across calls, prop get and prop set."""
    async with await connect(broker_thread.port) as a, await connect(broker_thread.port) as b:
        await a.register("action", "/p1/act")
        await a.register("prop", "/p1/prop")
        args = bytes.fromhex("9301a374776fcb400c000000000000")
        for expected_id in (0, 1):
            await b.send_payload(b"\x11\x00\x0e/p1/act\x00" + args)
            call = await a.recv_as(m.ActionCall)
            assert (call.id, call.path, call.args.raw) == (expected_id, "/p1/act", args)
            await a.send(m.ReplyOk(call.id, v({"x": 1})))
            assert await b.recv() == ok(14, {"x": 1})
        await b.send(m.Get(20, "/p1/prop"))
        assert await a.recv() == m.PropGet(2, "/p1/prop")
        await a.send(m.ReplyOk(2, v(1)))
        assert await b.recv() == ok(20, 1)
        await b.send(m.Set(21, "/p1/prop", v(3)))
        assert await a.recv() == m.PropSet(3, "/p1/prop", v(3))
        await a.send(m.ReplyOk(3, NIL))
        assert await b.recv() == ok(21)


async def test_non_array_args(broker_thread: BrokerThread) -> None:
    """Case 36: args 42 reach the owner unchanged."""
    async with await connect(broker_thread.port) as a, await connect(broker_thread.port) as b:
        await a.register("action", "/act")
        await b.send(m.ActionCall(1, "/act", v(42)))
        assert (await _answer(a, None)).args.raw == b"\x2a"
        assert await b.recv() == ok(1)


@pytest.mark.parametrize("error", ["bad", {"code": 3}], ids=["str", "map"])
async def test_owner_errors_forwarded(broker_thread: BrokerThread, error: object) -> None:
    """Case 37: the owner's error reply (str or any value) reaches the caller verbatim."""
    async with await connect(broker_thread.port) as a, await connect(broker_thread.port) as b:
        await a.register("action", "/act")
        await b.send(m.ActionCall(9, "/act", v([])))
        call = await a.recv_as(m.ActionCall)
        await a.send(m.ReplyError(call.id, v(error)))
        assert await b.recv() == err(9, error)


async def test_bad_call_targets(broker_thread: BrokerThread) -> None:
    """Case 38: missing, directory, below a node, prop/state and invalid paths."""
    async with await connect(broker_thread.port) as a, await connect(broker_thread.port) as b:
        await a.register("action", "/d/x")
        await a.register("prop", "/pp")
        await a.register("state", "/ss")
        cases = [
            ("/missing", "path_not_found"),
            ("/d", "path_is_directory"),
            ("/d/x/y", "not_a_directory"),
            ("/pp", "path_is_wrong_type"),
            ("/ss", "path_is_wrong_type"),
            ("bad", "invalid_path"),
        ]
        for rid, (path, error) in enumerate(cases):
            assert await b.request(m.ActionCall(rid, path, v([]))) == err(rid, error), path


async def test_owner_dies_during_call(broker_thread: BrokerThread) -> None:
    """Case 39: the owner closes: the caller gets client_exited, later calls path_not_found."""
    async with await connect(broker_thread.port) as b:
        a = await connect(broker_thread.port)
        await a.register("action", "/act")
        await b.send(m.ActionCall(1, "/act", v([])))
        await a.recv_as(m.ActionCall)
        await a.aclose()
        assert await b.recv() == err(1, "client_exited")
        assert await b.request(m.ActionCall(2, "/act", v([]))) == err(2, "path_not_found")


async def test_caller_leaves_during_call(broker_thread: BrokerThread) -> None:
    """Case 40: the caller disconnects; the owner's reply is dropped and the owner stays open."""
    async with await connect(broker_thread.port) as a:
        await a.register("action", "/act")
        b = await connect(broker_thread.port)
        await b.send(m.ActionCall(1, "/act", v([])))
        call = await a.recv_as(m.ActionCall)
        await b.aclose()
        async with await connect(broker_thread.port) as probe:  # the close is seen by now
            assert await probe.request(m.Ping(1)) == ok(1)
        await a.send(m.ReplyOk(call.id, v(1)))
        await a.assert_open()


async def test_batched_replies_out_of_order(broker_thread: BrokerThread) -> None:
    """Cases 35, 37: replies sent in one chunk, in reverse order, mixing ok and error, each reach
    the caller under its own id with the owner's value bytes unchanged."""
    async with await connect(broker_thread.port) as a, await connect(broker_thread.port) as b:
        await a.register("action", "/batch")
        for rid in (7, 8, 9):
            await b.send(m.ActionCall(rid, "/batch", v([rid])))
        calls = [await a.recv_as(m.ActionCall) for _ in range(3)]
        replies: list[m.Message] = [
            m.ReplyError(calls[2].id, v({"why": "no"})),
            m.ReplyOk(calls[1].id, v([1.5, "x"])),
            m.ReplyOk(calls[0].id, v(None)),
        ]
        await a.send(*replies)
        assert [await b.recv() for _ in range(3)] == [
            err(9, {"why": "no"}),
            ok(8, [1.5, "x"]),
            ok(7, None),
        ]
        await a.assert_open()


async def test_register_existing_path(broker_thread: BrokerThread) -> None:
    """Case 41: registering /foo twice, or by another connection, gets path_already_exists."""
    async with await connect(broker_thread.port) as a, await connect(broker_thread.port) as b:
        await a.register("action", "/foo")
        assert await a.request(m.ActionRegister(5, "/foo")) == err(5, "path_already_exists")
        assert await b.request(m.ActionRegister(6, "/foo")) == err(6, "path_already_exists")


async def test_owner_exit_frees_path(broker_thread: BrokerThread) -> None:
    """Case 42: after the owner closes, a call gets path_not_found and B can register /foo."""
    async with await connect(broker_thread.port) as b:
        a = await connect(broker_thread.port)
        await a.register("action", "/foo")
        await b.send(m.ActionCall(1, "/foo", v([])))
        await _answer(a, 1)
        assert await b.recv() == ok(1, 1)
        await a.aclose()
        async with await connect(broker_thread.port) as probe:
            await probe.assert_open()
        assert await b.request(m.ActionCall(2, "/foo", v([]))) == err(2, "path_not_found")
        await b.call_ok(m.ActionRegister(3, "/foo"))


async def test_calls_with_several_arguments(broker_thread: BrokerThread) -> None:
    """Cases 43, 44: calls a reactive client makes ((5, 6), (7, 6), (5)) arrive one by one,
    exactly as sent."""
    async with await connect(broker_thread.port) as a, await connect(broker_thread.port) as b:
        await a.register("action", "/c/act")
        for rid, args in enumerate(([5, 6], [7, 6], [5])):
            await b.send(m.ActionCall(rid, "/c/act", v(args)))
            assert (await _answer(a, None)).args.obj == args
            assert await b.recv() == ok(rid)
        await a.expect_silence(0.2)


async def test_prop_forwards_get_and_set(broker_thread: BrokerThread) -> None:
    """Case 45: get and set of a prop go to its owner with broker ids; replies come back."""
    async with await connect(broker_thread.port) as a, await connect(broker_thread.port) as b:
        await a.register("prop", "/p1/prop")
        await b.send(m.Get(1, "/p1/prop"))
        get = await a.recv_as(m.PropGet)
        await a.send(m.ReplyOk(get.id, v(99)))
        assert await b.recv() == ok(1, 99)
        await b.send(m.Set(2, "/p1/prop", v(5)))
        prop_set = await a.recv_as(m.PropSet)
        assert prop_set.value == v(5)
        assert prop_set.id != get.id
        await a.send(m.ReplyOk(prop_set.id, v("coerced")))
        assert await b.recv() == ok(2, "coerced")


async def test_register_existing_prop(broker_thread: BrokerThread) -> None:
    """Case 46: a second prop_register of /foo gets path_already_exists."""
    async with await connect(broker_thread.port) as a:
        await a.register("prop", "/foo")
        assert await a.request(m.PropRegister(9, "/foo")) == err(9, "path_already_exists")


async def test_get_set_wrong_kind_or_missing(broker_thread: BrokerThread) -> None:
    """Case 47: get/set on an action or event, a missing path, and a directory."""
    async with await connect(broker_thread.port) as a:
        await a.register("action", "/w/act")
        await a.register("event", "/w/ev")
        cases = [
            ("/w/act", "path_is_wrong_type"),
            ("/w/ev", "path_is_wrong_type"),
            ("/w/none", "path_not_found"),
            ("/w", "path_is_directory"),
        ]
        for path, error in cases:
            assert await a.request(m.Get(1, path)) == err(1, error), path
            assert await a.request(m.Set(2, path, v(1))) == err(2, error), path


async def test_too_many_requests(broker_thread: BrokerThread) -> None:
    """With all 65536 broker ids outstanding on the owner, a new call gets too_many_requests."""
    async with await connect(broker_thread.port) as a, await connect(broker_thread.port) as b:
        await a.register("action", "/act")
        frame = m.ActionCall(1, "/act", v([]))
        await b.send(*([frame] * 65536))
        received = 0
        while received < 65536:
            msg = await a.recv()
            assert isinstance(msg, m.ActionCall)
            received += 1
        await b.send(m.ActionCall(2, "/act", v([])))
        assert await b.recv() == err(2, "too_many_requests")
        await a.send(m.ReplyOk(77, NIL))
        assert await b.recv() == ok(1)
        await b.send(m.ActionCall(3, "/act", v([])))
        assert (await a.recv_as(m.ActionCall)).id == 77
