"""Conformance section F: states (cases 61-92), at the wire level."""

from __future__ import annotations

import time

import anyio
import pytest

from roost.protocol import messages as m
from roost.protocol.values import NIL
from tests.conftest import BrokerThread
from tests.wire import Wire, connect, err, ok, v

pytestmark = pytest.mark.anyio


async def test_full_lifecycle_in_one_client(broker_thread: BrokerThread) -> None:
    """Cases 61, 62, 70, 71, 72: observe unknown (0x08), changed 5 -> 0x44, unknown -> 0x45."""
    async with await connect(broker_thread.port) as a, await connect(broker_thread.port) as b:
        await a.register("state", "/c/st")
        assert await a.request(m.StateObserve(1, "/c/st")) == m.ReplyStateUnknown(1)
        assert await b.request(m.StateObserve(1, "/c/st")) == m.ReplyStateUnknown(1)
        await a.call_ok(m.StateChanged(2, "/c/st", v(5)))
        assert await a.recv() == m.StateNotify("/c/st", v(5))
        assert await b.recv() == m.StateNotify("/c/st", v(5))
        await a.call_ok(m.StateChanged(3, "/c/st", v(6)))
        assert await b.recv() == m.StateNotify("/c/st", v(6))
        assert await a.recv() == m.StateNotify("/c/st", v(6))
        await a.call_ok(m.StateUnknown(4, "/c/st"))
        assert await a.recv() == m.StateNotifyUnknown("/c/st")
        assert await b.recv() == m.StateNotifyUnknown("/c/st")
        await b.expect_silence(0.2)


async def test_concurrent_observes(broker_thread: BrokerThread) -> None:
    """Case 63: two observes from one connection both answer 5; one notification stream."""
    async with await connect(broker_thread.port) as a, await connect(broker_thread.port) as b:
        await a.register("state", "/c/st")
        await a.call_ok(m.StateChanged(1, "/c/st", v(5)))
        await b.send(m.StateObserve(1, "/c/st"), m.StateObserve(2, "/c/st"))
        assert await b.recv() == m.ReplyStateKnown(1, v(5))
        assert await b.recv() == m.ReplyStateKnown(2, v(5))
        await a.call_ok(m.StateChanged(2, "/c/st", v(6)))
        assert await b.recv() == m.StateNotify("/c/st", v(6))
        await b.expect_silence(0.2)


async def test_observer_reconnects(broker_thread: BrokerThread) -> None:
    """Cases 64, 65: a dropped observer reconnecting with hello_id and observing again gets 5
    and no duplicate notifications."""
    async with await connect(broker_thread.port) as a:
        await a.register("state", "/c/st")
        await a.call_ok(m.StateChanged(1, "/c/st", v(5)))
        b = await connect(broker_thread.port, client_id="obs")
        assert await b.request(m.StateObserve(1, "/c/st")) == m.ReplyStateKnown(1, v(5))
        await b.aclose()
        async with await connect(broker_thread.port, client_id="obs") as b2:
            assert await b2.request(m.StateObserve(1, "/c/st")) == m.ReplyStateKnown(1, v(5))
            await a.call_ok(m.StateChanged(2, "/c/st", v(6)))
            assert await b2.recv() == m.StateNotify("/c/st", v(6))
            await b2.expect_silence(0.2)


async def test_get_known_state(broker_thread: BrokerThread) -> None:
    """Case 66: get of a known state is a plain 0x05 with the value."""
    async with await connect(broker_thread.port) as a:
        await a.register("state", "/st")
        await a.call_ok(m.StateChanged(1, "/st", v(5)))
        assert await a.request(m.Get(2, "/st")) == ok(2, 5)


@pytest.mark.parametrize(
    "answer",
    [m.ReplyOk(0, NIL), m.ReplyError(0, v("foo")), m.ReplyError(0, v("not_implemented"))],
    ids=["accepted", "raises", "no-callback"],
)
async def test_set_reaches_owner(broker_thread: BrokerThread, answer: m.ReplyOk) -> None:
    """Cases 67, 68, 69, 74-79: set reaches the owner as 0x47; its reply is forwarded verbatim;
    the stored state does not change by itself."""
    async with await connect(broker_thread.port) as a, await connect(broker_thread.port) as b:
        await a.register("state", "/c/st")
        await a.call_ok(m.StateChanged(1, "/c/st", v(6)))
        await b.send(m.Set(3, "/c/st", v(7)))
        state_set = await a.recv_as(m.StateSet)
        assert (state_set.path, state_set.value) == ("/c/st", v(7))
        await a.send(type(answer)(state_set.id, answer.value))
        assert await b.recv() == type(answer)(3, answer.value)
        assert await b.request(m.Get(4, "/c/st")) == ok(4, 6)


async def test_observe_before_owner_registers(broker_thread: BrokerThread) -> None:
    """Case 80: observe creates an unknown state; adopting it is silent; changes arrive."""
    async with await connect(broker_thread.port) as o, await connect(broker_thread.port) as a:
        assert await o.request(m.StateObserve(1, "/state")) == m.ReplyStateUnknown(1)
        assert await o.request(m.Get(2, "/state")) == err(2, "state_unknown")
        await a.register("state", "/state")
        await o.expect_silence(0.2)
        assert await o.request(m.Get(3, "/state")) == err(3, "state_unknown")
        await a.call_ok(m.StateChanged(5, "/state", v("new_state")))
        assert await o.recv() == m.StateNotify("/state", v("new_state"))
        assert await o.request(m.Get(4, "/state")) == ok(4, "new_state")


async def test_observe_known_state(broker_thread: BrokerThread) -> None:
    """Case 81: observe of a known state gives 0x07; a later change gives 0x44."""
    async with await connect(broker_thread.port) as a, await connect(broker_thread.port) as o:
        await a.register("state", "/state")
        await a.call_ok(m.StateChanged(1, "/state", v("start_state")))
        assert await o.request(m.StateObserve(1, "/state")) == m.ReplyStateKnown(
            1, v("start_state")
        )
        await a.call_ok(m.StateChanged(2, "/state", v("new_state")))
        assert await o.recv() == m.StateNotify("/state", v("new_state"))


async def test_set_through_owner_then_get(broker_thread: BrokerThread) -> None:
    """Case 82: the owner answers 0x47 with 0x41 then ok; B's following get sees the value."""
    async with await connect(broker_thread.port) as a, await connect(broker_thread.port) as b:
        await a.register("state", "/server_state")
        await b.send(m.Set(1, "/server_state", v("server_state")))
        state_set = await a.recv_as(m.StateSet)
        await a.send(
            m.StateChanged(9, "/server_state", state_set.value), m.ReplyOk(state_set.id, NIL)
        )
        assert await b.recv() == ok(1)
        assert await b.request(m.Get(2, "/server_state")) == ok(2, "server_state")


async def test_owner_request_errors(broker_thread: BrokerThread) -> None:
    """Case 83: state_changed/unknown errors and registering an owned state."""
    async with await connect(broker_thread.port) as a, await connect(broker_thread.port) as b:
        await a.register("event", "/ev")
        await a.register("state", "/mine")
        assert await b.request(m.StateObserve(1, "/free")) == m.ReplyStateUnknown(1)
        await a.register("state", "/d/x")
        cases: list[tuple[m.StateChanged | m.StateUnknown | m.StateRegister, str]] = [
            (m.StateChanged(1, "state", v(1)), "invalid_path"),
            (m.StateChanged(2, "/state", v(1)), "no_such_node"),
            (m.StateChanged(3, "/ev", v(1)), "wrong_type_of_node"),
            (m.StateChanged(4, "/mine", v(1)), "not_owner"),
            (m.StateUnknown(5, "/free"), "not_owner"),
            (m.StateChanged(6, "/d", v(1)), "path_is_directory"),
            (m.StateUnknown(7, "/d/x/y"), "not_a_directory"),
            (m.StateRegister(8, "/mine"), "path_already_exists"),
        ]
        for msg, error in cases:
            assert await b.request(msg) == err(msg.id, error), msg
        assert await a.request(m.StateRegister(9, "/mine")) == err(9, "path_already_exists")


async def test_change_times_in_observe_t(broker_thread: BrokerThread) -> None:
    """Case 84: observe_t times: new node 0; registered at 0 seen at 300 ms; changed at 300,
    observed at 500 -> about 200 ms. Bounds come from clocks read around each step, so a busy
    machine widens the window instead of failing the test."""

    def elapsed_ms(since: float) -> float:
        return (time.monotonic() - since) * 1000

    async with await connect(broker_thread.port) as a, await connect(broker_thread.port) as o:
        before_register = time.monotonic()
        await a.register("state", "/state")
        after_register = time.monotonic()
        await a.register("state", "/state1")
        start = time.monotonic()
        reply = await o.request(m.StateObserveT(1, "/state2"))
        assert isinstance(reply, m.ReplyStateTUnknown)
        assert reply.ms <= elapsed_ms(start) + 1
        await anyio.sleep(0.3 - (time.monotonic() - start))
        low = elapsed_ms(after_register)
        reply = await o.request(m.StateObserveT(2, "/state"))
        assert isinstance(reply, m.ReplyStateTUnknown)
        assert 250 <= low - 1 <= reply.ms <= elapsed_ms(before_register) + 1
        before_change = time.monotonic()
        await a.call_ok(m.StateChanged(3, "/state1", v("new_state")))
        after_change = time.monotonic()
        await anyio.sleep(0.2)
        low = elapsed_ms(after_change)
        reply = await o.request(m.StateObserveT(3, "/state1"))
        assert isinstance(reply, m.ReplyStateTKnown)
        assert reply.value == v("new_state")
        assert 150 <= low - 1 <= reply.ms <= elapsed_ms(before_change) + 1


async def test_change_time_quirks(broker_thread: BrokerThread) -> None:
    """Case 85: adoption and owner disconnect keep the time; state_unknown resets it."""
    async with await connect(broker_thread.port) as o:
        assert await o.request(m.StateObserve(1, "/q")) == m.ReplyStateUnknown(1)
        await anyio.sleep(0.2)
        a = await connect(broker_thread.port)
        await a.register("state", "/q")
        reply = await o.request(m.StateObserveT(2, "/q"))
        assert isinstance(reply, m.ReplyStateTUnknown)
        assert reply.ms >= 180
        await a.call_ok(m.StateChanged(3, "/q", v(1)))
        assert await o.recv() == m.StateNotify("/q", v(1))
        await anyio.sleep(0.2)
        await a.aclose()
        assert await o.recv() == m.StateNotifyUnknown("/q")
        reply = await o.request(m.StateObserveT(4, "/q"))
        assert isinstance(reply, m.ReplyStateTUnknown)
        assert reply.ms >= 180
        async with await connect(broker_thread.port) as b:
            await b.register("state", "/q")
            await b.call_ok(m.StateUnknown(5, "/q"))
            assert await o.recv() == m.StateNotifyUnknown("/q")
            reply = await o.request(m.StateObserveT(6, "/q"))
            assert isinstance(reply, m.ReplyStateTUnknown)
            assert reply.ms <= 50


async def test_repeats_always_notify(broker_thread: BrokerThread) -> None:
    """Case 86: changed 5 twice then unknown twice: two 0x44 then two 0x45."""
    async with await connect(broker_thread.port) as a, await connect(broker_thread.port) as o:
        await a.register("state", "/s")
        assert await o.request(m.StateObserve(1, "/s")) == m.ReplyStateUnknown(1)
        updates: list[m.StateChanged | m.StateUnknown] = [
            m.StateChanged(1, "/s", v(5)),
            m.StateChanged(2, "/s", v(5)),
            m.StateUnknown(3, "/s"),
            m.StateUnknown(4, "/s"),
        ]
        for update in updates:
            await a.call_ok(update)
        assert await o.recv() == m.StateNotify("/s", v(5))
        assert await o.recv() == m.StateNotify("/s", v(5))
        assert await o.recv() == m.StateNotifyUnknown("/s")
        assert await o.recv() == m.StateNotifyUnknown("/s")


async def test_observing_is_a_set_and_owner_order(broker_thread: BrokerThread) -> None:
    """Case 87: observing twice gives one stream; the owner's ok precedes its own 0x44."""
    async with await connect(broker_thread.port) as a, await connect(broker_thread.port) as c:
        await a.register("state", "/s")
        await c.send(m.StateObserve(1, "/s"), m.StateObserve(2, "/s"))
        await c.recv()
        await c.recv()
        assert await a.request(m.StateObserve(1, "/s")) == m.ReplyStateUnknown(1)
        await a.send(m.StateChanged(2, "/s", v(1)))
        assert await a.recv() == ok(2)
        assert await a.recv() == m.StateNotify("/s", v(1))
        assert await c.recv() == m.StateNotify("/s", v(1))
        await c.expect_silence(0.2)


async def _owner_with_observers(port: int, known: bool) -> tuple[Wire, Wire, Wire]:
    a = await connect(port)
    await a.register("state", "/s")
    if known:
        await a.call_ok(m.StateChanged(a.next_id(), "/s", v(1)))
    b = await connect(port)
    c = await connect(port)
    for observer in (b, c):
        await observer.send(m.StateObserve(1, "/s"))
        await observer.recv()
    return a, b, c


async def test_owner_disconnect_while_known(broker_thread: BrokerThread) -> None:
    """Cases 88, 90: owner leaves: one 0x45 each, get state_unknown, set no_owner; a new owner
    is silent until its first change."""
    a, b, c = await _owner_with_observers(broker_thread.port, known=True)
    async with b, c:
        await a.aclose()
        assert await b.recv() == m.StateNotifyUnknown("/s")
        assert await c.recv() == m.StateNotifyUnknown("/s")
        assert await b.request(m.Get(2, "/s")) == err(2, "state_unknown")
        assert await b.request(m.Set(3, "/s", v(1))) == err(3, "no_owner")
        async with await connect(broker_thread.port) as d:
            await d.register("state", "/s")
            await b.expect_silence(0.2)
            await d.call_ok(m.StateChanged(5, "/s", v(2)))
            assert await b.recv() == m.StateNotify("/s", v(2))
            assert await c.recv() == m.StateNotify("/s", v(2))


async def test_owner_disconnect_while_unknown(broker_thread: BrokerThread) -> None:
    """Case 89: an owner of an unknown state leaves: observers get nothing."""
    a, b, c = await _owner_with_observers(broker_thread.port, known=False)
    async with b, c:
        await a.aclose()
        await b.expect_silence(0.3)
        await c.expect_silence(0.01)


async def test_observe_errors_and_ownerless_set(broker_thread: BrokerThread) -> None:
    """Case 91: observe an event or directory, set an ownerless state, call a state."""
    async with await connect(broker_thread.port) as a:
        await a.register("event", "/d/ev")
        assert await a.request(m.StateObserve(1, "/d/ev")) == err(1, "path_already_exists")
        assert await a.request(m.StateObserveT(2, "/d")) == err(2, "path_is_directory")
        assert await a.request(m.StateObserve(3, "/free")) == m.ReplyStateUnknown(3)
        assert await a.request(m.Set(4, "/free", v(1))) == err(4, "no_owner")
        assert await a.request(m.ActionCall(5, "/free", v([]))) == err(5, "path_is_wrong_type")


async def test_no_gap_no_duplicate(broker_thread: BrokerThread) -> None:
    """Case 92: an observer joining a fast-changing state sees a suffix with no gap or repeat."""
    async with await connect(broker_thread.port) as a, await connect(broker_thread.port) as b:
        await a.register("state", "/s")

        under_way = anyio.Event()

        async def changer() -> None:
            for i in range(300):
                await a.send(m.StateChanged(i, "/s", v(i)))
                if i == 30:
                    under_way.set()
                await anyio.sleep(0.001)  # the pace of a changing state

        async with anyio.create_task_group() as tg:
            tg.start_soon(changer)
            with anyio.fail_after(5):
                await under_way.wait()
            first = await b.request(m.StateObserve(1, "/s"))
        last = first.value.obj if isinstance(first, m.ReplyStateKnown) else -1
        while last < 299:
            note = await b.recv_as(m.StateNotify)
            assert note.value.obj == last + 1
            last = note.value.obj
