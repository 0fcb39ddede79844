"""Pipelined emits: an emit returns once written, in order, within a window of unconfirmed
ones; refusals and losses are raised by the next emit or by ``flush``, never lost silently."""

from __future__ import annotations

import logging

import anyio
import pytest

from roost.client import Backoff, Client
from roost.errors import Disconnected, RemoteError
from roost.protocol.messages import Unknown
from tests.client.helpers import WAIT, Collector, Counter
from tests.client.proxy import running_proxy
from tests.conftest import BrokerThread

pytestmark = pytest.mark.anyio

FAST = Backoff(initial=0.05, maximum=0.5)


async def test_a_burst_arrives_in_order(broker_thread: BrokerThread) -> None:
    """A burst far larger than the window reaches the listener complete and in order, and a
    flush leaves nothing unconfirmed."""
    seen = Collector()
    count = 700
    async with (
        Client(server=broker_thread.address, emit_window=16) as a,
        Client(server=broker_thread.address) as b,
    ):
        emitter = await a.event_register("/burst/ev")
        await b.event_listen_cb("/burst/ev", seen)
        for n in range(count):
            await emitter(n)
        await a.flush(timeout=WAIT)
        assert a.statistics()["unconfirmed"] == 0
        assert await seen.wait_for(count) == list(range(count))


async def test_window_full_waits_for_room(broker_thread: BrokerThread) -> None:
    """With the broker silent, ``emit_window`` emits return and the next one waits (its
    timeout bounds the wait, and it is not sent); the connection's loss turns the unconfirmed
    ones into ``Disconnected`` saying how many."""
    lost = Counter()
    async with running_proxy(broker_thread.port) as proxy:
        server = f"127.0.0.1:{proxy.port}"
        client = Client(server=server, emit_window=4, backoff=FAST, on_disconnect=lost)
        async with client:
            emitter = await client.event_register("/win/ev")
            proxy.stall()
            for n in range(4):
                await emitter(n)
            assert client.statistics()["unconfirmed"] == 4
            with pytest.raises(TimeoutError):
                await emitter.emit(4, timeout=0.05)
            assert client.statistics()["unconfirmed"] == 4
            proxy.drop()
            with pytest.raises(Disconnected, match="4 emits on /win/ev not confirmed"):
                await client.flush(timeout=WAIT)
            await lost.wait_for(1)
            with anyio.fail_after(WAIT):
                await client.wait_for_connection()
            await emitter(5)
            await client.flush(timeout=WAIT)  # reported once; the new connection confirms


async def test_loss_is_raised_by_the_next_emit(broker_thread: BrokerThread) -> None:
    """The next emit after a loss raises ``Disconnected`` with the count (and is not sent);
    an owned state's unconfirmed change is not reported: it is published again."""
    seen = Collector()
    lost = Counter()
    async with (
        running_proxy(broker_thread.port) as proxy,
        Client(server=broker_thread.address) as watcher,
    ):
        server = f"127.0.0.1:{proxy.port}"
        async with Client(server=server, backoff=FAST, on_disconnect=lost) as client:
            emitter = await client.event_register("/loss/ev")
            state = await client.state_register("/loss/st")
            await watcher.event_listen_cb("/loss/ev", seen)
            proxy.stall()
            await emitter(1)
            await emitter(2)
            await state.changed("kept")
            proxy.drop()
            await lost.wait_for(1)
            with pytest.raises(Disconnected, match="2 emits on /loss/ev not confirmed"):
                await emitter(3)
            with anyio.fail_after(WAIT):
                await client.wait_for_connection()
            await emitter(4)
            await client.flush(timeout=WAIT)
            assert await watcher.get("/loss/st") == "kept"  # the replay published it
            assert await seen.wait_for(1) == [4]


async def test_refusal_is_raised_once_by_the_next_emit_or_flush(
    broker_thread: BrokerThread, caplog: pytest.LogCaptureFixture
) -> None:
    """A refused emit is logged once when the refusal arrives and raised once, naming its path,
    by the next emit (which is then not sent) or by flush."""
    seen = Collector()
    async with (
        Client(server=broker_thread.address) as a,
        Client(server=broker_thread.address) as b,
    ):
        emitter = await a.event_register("/ref/ev")
        await b.event_listen_cb("/ref/ev", seen)
        with caplog.at_level(logging.WARNING, logger="roost.client"):
            await a.event_emit("/ref/none", 1)
            await a.ping()  # its reply comes after the refusal
            with pytest.raises(RemoteError) as info:
                await emitter(2)
            assert (info.value.value, info.value.path) == ("path_not_found", "/ref/none")
            assert str(info.value) == "/ref/none: path_not_found"
            await emitter(3)
            await a.flush(timeout=WAIT)  # raised already: nothing left
            await a.event_emit("/ref/gone", 4)
            with pytest.raises(RemoteError) as info:
                await a.flush(timeout=WAIT)
            assert (info.value.value, info.value.path) == ("path_not_found", "/ref/gone")
            await a.flush(timeout=WAIT)
        assert await seen.wait_for(1) == [3]
        logged = [r.getMessage() for r in caplog.records if "/ref/" in r.getMessage()]
        assert len(logged) == 2 and "/ref/none" in logged[0] and "/ref/gone" in logged[1]


async def test_several_refusals_are_raised_as_one(broker_thread: BrokerThread) -> None:
    """Refusals piled up before the next flush are raised as the first, noting the others."""
    async with Client(server=broker_thread.address) as client:
        for n in range(3):
            await client.event_emit(f"/many/none{n}", n)
        with pytest.raises(RemoteError) as info:
            await client.flush(timeout=WAIT)
        assert info.value.path == "/many/none0"
        assert info.value.__notes__ == ["2 more emits failed after it (each was logged)"]
        await client.flush(timeout=WAIT)


async def test_wait_true_raises_its_own_error(broker_thread: BrokerThread) -> None:
    """``wait=True`` waits for the reply and raises that emit's error; it raises an earlier
    refusal first, as any emit does."""
    async with Client(server=broker_thread.address) as client:
        emitter = await client.event_register("/wait/ev")
        with pytest.raises(RemoteError) as info:
            await client.event_emit("/wait/none", 1, wait=True)
        assert (info.value.value, info.value.path) == ("path_not_found", None)
        await emitter.emit(2, wait=True)
        await emitter(3, wait=True)
        assert client.statistics()["unconfirmed"] == 0
        await client.event_emit("/wait/none", 4)
        await client.ping()
        with pytest.raises(RemoteError) as info:
            await emitter.emit(5, wait=True)
        assert info.value.path == "/wait/none"


async def test_leaving_the_block_flushes(
    broker_thread: BrokerThread, caplog: pytest.LogCaptureFixture
) -> None:
    """Leaving ``async with`` waits for the last emits, so all of them are delivered and none
    is reported unconfirmed."""
    seen = Collector()
    count = 2000
    async with Client(server=broker_thread.address) as listener:
        await listener.event_listen_cb("/exit/ev", seen)
        with caplog.at_level(logging.WARNING, logger="roost.client"):
            async with Client(server=broker_thread.address) as client:
                emitter = await client.event_register("/exit/ev")
                for n in range(count):
                    await emitter(n)
        assert await seen.wait_for(count) == list(range(count))
    assert not [r for r in caplog.records if "not confirmed" in r.getMessage()]


async def test_leaving_with_an_error_flushes_and_keeps_the_error(
    broker_thread: BrokerThread,
) -> None:
    """A block ending in an exception still delivers its emits; a refusal found then is not
    raised over the block's own exception."""
    seen = Collector()
    async with Client(server=broker_thread.address) as listener:
        await listener.event_listen_cb("/exit2/ev", seen)
        with pytest.raises(LookupError):
            async with Client(server=broker_thread.address) as client:
                emitter = await client.event_register("/exit2/ev")
                await client.event_emit("/exit2/none", 0)
                for n in range(50):
                    await emitter(n)
                raise LookupError("the block's own error")
        assert await seen.wait_for(50) == list(range(50))


async def test_state_changes_are_pipelined(broker_thread: BrokerThread) -> None:
    """An owned state's changes return before their reply and keep their order, for observers
    and for the owner's own later requests; ``wait=True`` waits for the reply."""
    seen = Collector()
    async with (
        Client(server=broker_thread.address) as a,
        Client(server=broker_thread.address) as b,
    ):
        state = await a.state_register("/pipe/st")
        assert await b.state_observe("/pipe/st", seen) is Unknown
        for n in range(100):
            await state.changed(n)
        assert await a.get("/pipe/st") == 99  # a request of the same client comes after them
        await state.unknown()
        await state.changed("last", wait=True)
        assert a.statistics()["unconfirmed"] == 0
        assert await b.get("/pipe/st") == "last"
        assert await seen.wait_for(102) == [*range(100), Unknown, "last"]


def test_emit_window_is_checked() -> None:
    """A window outside 1..32768 is refused when the client is made."""
    for size in (0, 32769):
        with pytest.raises(ValueError, match="emit_window"):
            Client(emit_window=size)
