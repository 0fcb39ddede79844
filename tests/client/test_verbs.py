"""Every ESHET verb of the async client against a real broker, on asyncio and trio."""

from __future__ import annotations

import math
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import anyio
import pytest

from roost.client import Client
from roost.errors import ConnectFailed, ConnectionClosed, LocalProtocolError, RemoteError
from roost.protocol.messages import Unknown
from tests.client.helpers import WAIT, Collector
from tests.conftest import BrokerThread

pytestmark = pytest.mark.anyio


@asynccontextmanager
async def two_clients(
    broker: BrokerThread, base: str = "/"
) -> AsyncIterator[tuple[Client, Client]]:
    async with Client(base, server=broker.address) as a, Client(server=broker.address) as b:
        yield a, b


async def test_action_call_with_relative_and_absolute_paths(broker_thread: BrokerThread) -> None:
    """A relative registration under base is callable by its absolute path, and back."""
    async with two_clients(broker_thread, base="/dev/") as (a, b):
        await a.action_register("add", lambda x, y: x + y)
        await b.action_register("/tools/upper", str.upper)
        assert await b.action_call("/dev/add", 2, 3) == 5
        assert await a.action_call("add", 10, -1) == 9
        assert await a.action_call("/tools/upper", "abc") == "ABC"


async def test_async_action_callback(broker_thread: BrokerThread) -> None:
    """An async callback's awaited result is the reply."""

    async def slow_double(x: int) -> int:
        await anyio.sleep(0)
        return 2 * x

    async with two_clients(broker_thread) as (a, b):
        await a.action_register("/calc/double", slow_double)
        assert await b.action_call("/calc/double", 21) == 42


async def test_callback_exceptions_become_error_replies(broker_thread: BrokerThread) -> None:
    """An exception gives its str as the error; RemoteError gives its value unchanged."""

    def fails() -> None:
        raise ValueError("lamp is broken")

    async def refuses() -> None:
        raise RemoteError({"code": 7, "why": "busy"})

    async with two_clients(broker_thread) as (a, b):
        await a.action_register("/x/fails", fails)
        await a.action_register("/x/refuses", refuses)
        with pytest.raises(RemoteError) as info:
            await b.action_call("/x/fails")
        assert info.value.value == "lamp is broken"
        with pytest.raises(RemoteError) as info:
            await b.action_call("/x/refuses")
        assert info.value.value == {"code": 7, "why": "busy"}


async def test_broker_errors_raise_remote_error(broker_thread: BrokerThread) -> None:
    """Missing paths, bad paths and duplicate registrations raise RemoteError with the value."""
    async with two_clients(broker_thread) as (a, b):
        with pytest.raises(RemoteError) as info:
            await a.action_call("/nobody/home")
        assert info.value.value == "path_not_found"
        with pytest.raises(RemoteError) as info:
            await a.get("/bad path")
        assert info.value.value == "invalid_path"
        await a.action_register("/dup", lambda: 1)
        with pytest.raises(RemoteError) as info:
            await b.action_register("/dup", lambda: 2)
        assert info.value.value == "path_already_exists"
        with pytest.raises(RemoteError) as info:
            await a.action_register("/dup", lambda: 3)
        assert info.value.value == "path_already_exists"
        assert await b.action_call("/dup") == 1


async def test_props_get_and_set(broker_thread: BrokerThread) -> None:
    """get asks the owner's getter; set runs the setter and returns its value; no setter
    means not_implemented."""
    store = {"level": 3}

    def set_level(value: int) -> int:
        store["level"] = value
        return value

    async with two_clients(broker_thread) as (a, b):
        await a.prop_register("/lamp/level", lambda: store["level"], set_level)
        await a.prop_register("/lamp/model", lambda: "L-1")
        assert await b.get("/lamp/level") == 3
        assert await b.set("/lamp/level", 7) == 7
        assert await b.get("/lamp/level") == 7
        with pytest.raises(RemoteError) as info:
            await b.set("/lamp/model", "L-2")
        assert info.value.value == "not_implemented"


async def test_state_get_set_and_unknown(broker_thread: BrokerThread) -> None:
    """A state reads unknown, then its published value; set without callback is
    not_implemented; with one the callback decides."""
    async with two_clients(broker_thread) as (a, b):
        temp = await a.state_register("/room/temp")
        with pytest.raises(RemoteError) as info:
            await b.get("/room/temp")
        assert info.value.value == "state_unknown"
        await temp.changed(20.5)
        await a.flush()  # the change is confirmed: another client's get sees it
        assert await b.get("/room/temp") == 20.5
        assert temp.value == 20.5
        with pytest.raises(RemoteError) as info:
            await b.set("/room/temp", 1)
        assert info.value.value == "not_implemented"

        async def accept(value: int) -> str:
            await a.state_changed("/room/target", value)
            return "ok"

        await a.state_register("/room/target", accept)
        assert await b.set("/room/target", 22) == "ok"
        assert await b.get("/room/target") == 22
        await temp.unknown(wait=True)
        with pytest.raises(RemoteError):
            await b.get("/room/temp")
        await a.state_changed("/room/target", Unknown, wait=True)
        with pytest.raises(RemoteError) as info:
            await b.get("/room/target")
        assert info.value.value == "state_unknown"


async def test_state_observe_callback(broker_thread: BrokerThread) -> None:
    """state_observe returns the current value and calls back on every change, Unknown too."""
    seen = Collector()
    async with two_clients(broker_thread) as (a, b):
        state = await a.state_register("/s/x")
        assert await b.state_observe("/s/x", seen) is Unknown
        await state.changed(1)
        await state.changed(1)
        await state.unknown()
        await state.changed({"k": [1, 2]})
        assert await seen.wait_for(4) == [1, 1, Unknown, {"k": [1, 2]}]
        assert await b.state_observe("/s/x") == {"k": [1, 2]}


async def test_state_observe_iterator(broker_thread: BrokerThread) -> None:
    """The iterator yields the current value first, then each change in order."""
    async with two_clients(broker_thread) as (a, b):
        state = await a.state_register("/s/y")
        await state.changed("first", wait=True)  # confirmed: b's observe comes after it
        async with b.state_observe_iter("/s/y") as values:
            await state.changed("second")
            await state.unknown()
            got = []
            with anyio.fail_after(WAIT):
                async for value in values:
                    got.append(value)
                    if len(got) == 3:
                        break
        assert got == ["first", "second", Unknown]


async def test_events_emit_listen_and_callbacks(broker_thread: BrokerThread) -> None:
    """Emits reach the iterator and callback listeners in order; anyone may emit."""
    seen = Collector()
    async with two_clients(broker_thread) as (a, b):
        emitter = await a.event_register("/bell/ring")
        await b.event_listen_cb("/bell/ring", seen)
        async with b.event_listen("/bell/ring") as events:
            await emitter.emit(1)
            await emitter(2)
            await a.flush()  # confirmed: emits of another client come after them
            await b.event_emit("/bell/ring", "three")
            with anyio.fail_after(WAIT):
                got = [await events.receive() for _ in range(3)]
        assert got == [1, 2, "three"]
        assert await seen.wait_for(3) == [1, 2, "three"]
        with pytest.raises(RemoteError) as info:
            await a.event_emit("/bell/none", 1, wait=True)
        assert info.value.value == "path_not_found"


async def test_async_listener_callbacks_run_in_order(broker_thread: BrokerThread) -> None:
    """Async callbacks are awaited one at a time, so values keep their order."""
    got: list[int] = []
    done = anyio.Event()

    async def slow(value: int) -> None:
        await anyio.sleep(0.001 * (5 - value))
        got.append(value)
        if len(got) == 5:
            done.set()

    async with two_clients(broker_thread) as (a, b):
        await b.event_listen_cb("/ev/n", slow)
        emitter = await a.event_register("/ev/n")
        for n in range(5):
            await emitter.emit(n)
        with anyio.fail_after(WAIT):
            await done.wait()
    assert got == [0, 1, 2, 3, 4]


async def test_listen_refused_on_wrong_kind(broker_thread: BrokerThread) -> None:
    """Listening to an action is refused and leaves nothing behind to replay."""
    async with two_clients(broker_thread) as (a, b):
        await a.action_register("/k/act", lambda: None)
        with pytest.raises(RemoteError) as info:
            async with b.event_listen("/k/act"):
                pass
        assert info.value.value == "path_already_exists"
        with pytest.raises(RemoteError):
            await b.state_observe("/k/act")
        assert b.statistics()["listens"] == 0
        assert b.statistics()["observes"] == 0


async def test_call_timeout_frees_the_request(broker_thread: BrokerThread) -> None:
    """A call without answer raises TimeoutError after its timeout and frees its id."""
    release = anyio.Event()

    async def stuck() -> str:
        await release.wait()
        return "late"

    async with two_clients(broker_thread) as (a, b):
        await a.action_register("/slow/op", stuck)
        with pytest.raises(TimeoutError):
            await b.action_call("/slow/op", timeout=0.2)
        assert b.statistics()["waiting"] == 0
        release.set()
        assert await b.action_call("/slow/op", timeout=WAIT) == "late"


async def test_cancelled_call_frees_the_request(broker_thread: BrokerThread) -> None:
    """Cancelling a call in flight forgets its id; the late reply is dropped harmlessly."""
    started = anyio.Event()
    release = anyio.Event()

    async def stuck() -> str:
        started.set()
        await release.wait()
        return "late"

    async with two_clients(broker_thread) as (a, b):
        await a.action_register("/slow/op2", stuck)
        with anyio.CancelScope() as scope:
            async with anyio.create_task_group() as tg:
                tg.start_soon(b.action_call, "/slow/op2")
                with anyio.fail_after(WAIT):
                    await started.wait()
                scope.cancel()
        assert b.statistics()["waiting"] == 0
        release.set()
        assert await b.action_call("/meta/ls", "/") == ["dir", [["meta", "dir"], ["slow", "dir"]]]
        assert b.connected


async def test_chosen_client_id_and_env_server(
    broker_thread: BrokerThread, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A given client id is used as is; without server= the ROOST_SERVER variable is used."""
    monkeypatch.setenv("ROOST_SERVER", broker_thread.address)
    async with Client(client_id=["me", 1]) as client:
        assert client.client_id == ["me", 1]
        assert client.server == broker_thread.address
        assert client.leases_available
        assert client.broker_info is not None and client.broker_info["name"] == "roost"
    async with Client(server=broker_thread.address) as client:
        assert client.client_id is not None


async def test_connect_failure_is_reported() -> None:
    """Nothing listening: entering raises ConnectFailed after connect_timeout."""
    with anyio.fail_after(WAIT):
        listener = await anyio.create_tcp_listener(local_host="127.0.0.1")
        port = listener.extra(anyio.abc.SocketAttribute.local_port)
        await listener.aclose()  # the port is now (almost certainly) closed
        with pytest.raises(ConnectFailed):
            async with Client(server=f"127.0.0.1:{port}", connect_timeout=0.5):
                pass


async def test_requests_after_close_raise(broker_thread: BrokerThread) -> None:
    """After the block, verbs raise ConnectionClosed (a Disconnected's parent)."""
    async with Client(server=broker_thread.address) as client:
        assert client.statistics()["connected"] is True
    assert not client.connected
    with pytest.raises(ConnectionClosed) as info:
        await client.get("/meta/broker")
    assert "closed" in str(info.value)


async def test_values_round_trip(broker_thread: BrokerThread) -> None:
    """Arguments and results keep their msgpack types: bin, str, nil, bools, big ints, maps."""
    async with two_clients(broker_thread) as (a, b):
        await a.action_register("/echo", lambda *args: list(args))
        args = [b"\x00bin", "str", None, True, False, 2**64 - 1, -(2**63), {"k": [1.5]}]
        assert await b.action_call("/echo", *args) == args
        assert math.isnan((await b.action_call("/echo", math.nan))[0])


async def test_ping_and_statistics(broker_thread: BrokerThread) -> None:
    """ping returns a round trip; statistics count what was set up."""
    async with Client(server=broker_thread.address) as client:
        rtt = await client.ping(timeout=WAIT)
        assert 0 < rtt < WAIT
        await client.action_register("/st/a", lambda: None)
        await client.state_observe("/st/s")
        stats = client.statistics()
        assert stats["connected"] is True and stats["generation"] == 1
        assert (stats["actions"], stats["observes"], stats["waiting"]) == (1, 1, 0)


async def test_state_update_of_a_foreign_state_is_refused(broker_thread: BrokerThread) -> None:
    """Publishing a state this client does not own raises not_owner (or no_such_node): the
    change itself with ``wait=True``, else the flush after it."""
    async with two_clients(broker_thread) as (a, b):
        await a.state_register("/own/x")
        with pytest.raises(RemoteError) as info:
            await b.state_changed("/own/x", 1, wait=True)
        assert info.value.value == "not_owner"
        await b.state_unknown("/own/none")
        with pytest.raises(RemoteError) as info:
            await b.flush()
        assert (info.value.value, info.value.path) == ("no_such_node", "/own/none")


async def test_oversized_request_is_refused_locally(broker_thread: BrokerThread) -> None:
    """A request that cannot fit in one frame raises LocalProtocolError before sending; the
    connection stays usable, and an oversized callback result becomes an error reply."""
    async with two_clients(broker_thread) as (a, b):
        with pytest.raises(LocalProtocolError):
            await a.action_call("/meta/ls", "x" * 70_000)
        await a.action_register("/big/result", lambda: b"\0" * 70_000)
        with pytest.raises(RemoteError) as info:
            await b.action_call("/big/result")
        assert "frame" in str(info.value.value)
        assert a.statistics()["waiting"] == 0
        assert await a.ping(timeout=WAIT) > 0
