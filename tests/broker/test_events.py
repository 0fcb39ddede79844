"""Conformance section E: events (cases 48-60), at the wire level."""

from __future__ import annotations

import pytest

from roost.protocol import messages as m
from tests.conftest import BrokerThread
from tests.wire import connect, err, ok, v

pytestmark = pytest.mark.anyio


async def test_register_listen_emit(broker_thread: BrokerThread) -> None:
    """Cases 48, 50: one listen, emit 5: the emit resolves and 5 arrives exactly once."""
    async with await connect(broker_thread.port) as a:
        await a.register("event", "/c/ev")
        await a.call_ok(m.EventListen(a.next_id(), "/c/ev"))
        assert await a.request(m.EventEmit(50, "/c/ev", v(5))) == ok(50)
        assert await a.recv() == m.EventNotify("/c/ev", v(5))
        await a.expect_silence(0.3)


async def test_emits_arrive_in_order(broker_thread: BrokerThread) -> None:
    """Cases 49, 51, 52: emits "foo" then "bar" (and 1, 2; 5, 6) reach a listener in order."""
    async with await connect(broker_thread.port) as a, await connect(broker_thread.port) as b:
        await a.register("event", "/c/ev")
        await b.call_ok(m.EventListen(1, "/c/ev"))
        values = ["foo", "bar", 2, 3, 5, 6]
        await a.send(*(m.EventEmit(10 + i, "/c/ev", v(x)) for i, x in enumerate(values)))
        for i, x in enumerate(values):
            assert await a.recv() == ok(10 + i)
            assert await b.recv() == m.EventNotify("/c/ev", v(x))


async def test_emit_reaches_listeners(broker_thread: BrokerThread) -> None:
    """Case 53: L listens to /event; the owner registers and emits; L gets 0x33."""
    async with await connect(broker_thread.port) as owner, await connect(broker_thread.port) as lis:
        await lis.call_ok(m.EventListen(1, "/event"))
        await owner.register("event", "/event")
        await owner.call_ok(m.EventEmit(2, "/event", v("event_value")))
        assert await lis.recv() == m.EventNotify("/event", v("event_value"))


async def test_listening_is_a_set(broker_thread: BrokerThread) -> None:
    """Case 54: a second register fails; listening twice gives one notification per emit."""
    async with await connect(broker_thread.port) as a, await connect(broker_thread.port) as b:
        await a.register("event", "/foo")
        assert await a.request(m.EventRegister(2, "/foo")) == err(2, "path_already_exists")
        await a.call_ok(m.EventListen(3, "/foo"))
        await a.call_ok(m.EventListen(4, "/foo"))
        await b.call_ok(m.EventListen(5, "/foo"))
        await a.call_ok(m.EventEmit(6, "/foo", v(1)))
        assert await a.recv() == m.EventNotify("/foo", v(1))
        assert await b.recv() == m.EventNotify("/foo", v(1))
        await a.expect_silence(0.2)
        await b.expect_silence(0.01)


async def test_listen_before_register(broker_thread: BrokerThread) -> None:
    """Case 55: listening creates an ownerless event (listed); a later owner's emits arrive."""
    async with await connect(broker_thread.port) as a, await connect(broker_thread.port) as b:
        await b.call_ok(m.EventListen(1, "/foo"))
        assert await b.ls("/foo") == ok(0, "event")
        await a.register("event", "/foo")
        await a.call_ok(m.EventEmit(2, "/foo", v(7)))
        assert await b.recv() == m.EventNotify("/foo", v(7))


async def test_emit_without_owner_or_by_non_owner(broker_thread: BrokerThread) -> None:
    """Case 56: a third connection emits on an ownerless or foreign event: ok, listeners told."""
    port = broker_thread.port
    async with await connect(port) as owner, await connect(port) as lis, await connect(port) as c:
        await lis.call_ok(m.EventListen(1, "/ev"))
        await c.call_ok(m.EventEmit(2, "/ev", v("ownerless")))
        assert await lis.recv() == m.EventNotify("/ev", v("ownerless"))
        await owner.register("event", "/ev")
        await c.call_ok(m.EventEmit(3, "/ev", v("foreign")))
        assert await lis.recv() == m.EventNotify("/ev", v("foreign"))


async def test_emit_errors(broker_thread: BrokerThread) -> None:
    """Case 57: emit to missing/action paths, listen on action/directory/below a node."""
    async with await connect(broker_thread.port) as a:
        await a.register("action", "/d/act")
        assert await a.request(m.EventEmit(1, "/none", v(1))) == err(1, "path_not_found")
        assert await a.request(m.EventEmit(2, "/d/act", v(1))) == err(2, "path_is_wrong_type")
        assert await a.request(m.EventListen(3, "/d/act")) == err(3, "path_already_exists")
        assert await a.request(m.EventListen(4, "/d")) == err(4, "path_is_directory")
        assert await a.request(m.EventListen(5, "/d/act/x")) == err(5, "not_a_directory")


async def test_emitter_ordering(broker_thread: BrokerThread) -> None:
    """Case 58: a listening emitter gets ok nil before its own 0x33; B gets the 0x33."""
    async with await connect(broker_thread.port) as a, await connect(broker_thread.port) as b:
        await a.register("event", "/ev")
        await a.call_ok(m.EventListen(1, "/ev"))
        await b.call_ok(m.EventListen(1, "/ev"))
        await a.send(m.EventEmit(2, "/ev", v("self")))
        assert await a.recv() == ok(2)
        assert await a.recv() == m.EventNotify("/ev", v("self"))
        assert await b.recv() == m.EventNotify("/ev", v("self"))


async def test_event_owner_disconnect(broker_thread: BrokerThread) -> None:
    """Case 59: the owner closes: B hears nothing, /ev stays, a new owner's emits reach B."""
    async with await connect(broker_thread.port) as b:
        a = await connect(broker_thread.port)
        await a.register("event", "/ev")
        await b.call_ok(m.EventListen(1, "/ev"))
        await a.aclose()
        await b.expect_silence(0.2)
        assert await b.ls("/ev") == ok(0, "event")
        async with await connect(broker_thread.port) as c:
            await c.register("event", "/ev")
            await c.call_ok(m.EventEmit(9, "/ev", v(1)))
            assert await b.recv() == m.EventNotify("/ev", v(1))


async def test_emit_order_from_one_source(broker_thread: BrokerThread) -> None:
    """Case 60: emits 0 to 19 back to back arrive at B in order."""
    async with await connect(broker_thread.port) as a, await connect(broker_thread.port) as b:
        await b.call_ok(m.EventListen(1, "/ev"))
        await a.send(*(m.EventEmit(i, "/ev", v(i)) for i in range(20)))
        for i in range(20):
            assert await b.recv() == m.EventNotify("/ev", v(i))


async def test_broker_owned_event_refuses_emit(broker_thread: BrokerThread) -> None:
    """§15: a client's emit on a broker-owned event gets not_owner; listeners see nothing."""
    async with await connect(broker_thread.port) as a, await connect(broker_thread.port) as b:
        await b.call_ok(m.EventListen(1, "/meta/lease_events"))
        broker_thread.call(
            broker_thread.broker.router.publish_event, "/meta/lease_events", v("x"), 0.0
        )
        assert await b.recv() == m.EventNotify("/meta/lease_events", v("x"))
        assert await a.request(m.EventEmit(2, "/meta/lease_events", v(1))) == err(2, "not_owner")
        assert await a.request(m.EventRegister(3, "/meta/lease_events")) == err(
            3, "path_already_exists"
        )
        await b.expect_silence(0.2)
