"""eshet.py programs on roost: each program below is written as for eshet.py, with only the
import changed (``from eshet import ...`` -> ``from roost.eshet import ...``), and runs as such a
program does, under plain ``asyncio.run`` (not anyio's test runner, whose context would hide
what a plain asyncio program meets)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any

import pytest

from roost.eshet import Client, Disconnected, ErrorValue, ESHETException, TimeoutConfig, Unknown
from roost.eshet.exceptions import ErrorValue as ErrorValueFromModule
from tests.conftest import BrokerThread

WAIT = 5.0


async def _next(queue: asyncio.Queue[Any]) -> Any:
    return await asyncio.wait_for(queue.get(), WAIT)


async def _test_tour_of_every_verb(broker_thread: BrokerThread) -> None:
    """Actions, get and set, events (callback and async iterator), states and observes, as an
    eshet.py program uses them, between two clients."""
    server = broker_thread.address
    house = Client("/house", server=server, timeout_cfg=TimeoutConfig(), logger=logging.getLogger())
    user = Client(base="/house/", server=server)
    try:
        await house.wait_for_connection()
        await user.wait_for_connection()
        assert house.connected and user.connected()

        # actions: plain and coroutine callbacks, arguments spread
        await house.action_register("add", lambda a, b: a + b)

        async def slow_echo(value: Any) -> Any:
            await asyncio.sleep(0)
            return value

        await house.action_register("echo", slow_echo)
        assert await user.action_call("add", 2, 3) == 5
        assert await user.action_call("/house/echo", {"k": [1]}) == {"k": [1]}

        # states: register, change, get, set through the owner, observe
        sets: list[Any] = []

        async def on_set(value: Any) -> None:
            sets.append(value)
            await lamp.changed(value)

        lamp = await house.state_register("lamp", set_callback=on_set)
        assert lamp.path == "/house/lamp"
        changes: asyncio.Queue[Any] = asyncio.Queue()
        assert await user.state_observe("lamp", changes.put_nowait) is Unknown
        await lamp.changed("on")
        assert await _next(changes) == "on"
        assert await user.get("lamp") == "on"
        await user.set("lamp", "off")
        assert sets == ["off"]
        assert await _next(changes) == "off"
        await lamp.unknown()
        assert await _next(changes) is Unknown
        await house.state_changed("lamp", 1)
        assert await _next(changes) == 1
        await house.state_changed("lamp", Unknown)
        assert await _next(changes) is Unknown

        # events: an emit function, a callback listener and an async-for listener
        emit = await house.event_register("bell")
        heard: asyncio.Queue[Any] = asyncio.Queue()
        await user.event_listen_cb("bell", heard.put_nowait)
        rings = user.event_listen("bell")
        first = asyncio.ensure_future(anext(rings))
        for _ in range(100):  # emit until the generator's listen is in place
            await emit("probe")
            assert await _next(heard) == "probe"
            if first.done():
                break
        values = [first.result()]
        await emit("ding")
        await emit()
        assert await _next(heard) == "ding"
        assert await _next(heard) is None
        while values[-1] != "ding":
            values.append(await asyncio.wait_for(anext(rings), WAIT))
        assert set(values[:-1]) == {"probe"}
        assert await asyncio.wait_for(anext(rings), WAIT) is None
        await rings.aclose()
    finally:
        await house.close()
        await user.close()
    assert not house.connected


async def _test_coroutine_callbacks_run_in_tasks(broker_thread: BrokerThread) -> None:
    """A listener that returns a coroutine does not hold up the next value (eshet.py runs it
    in a task): the second value arrives while the first callback still waits."""
    client = Client(server=broker_thread.address)
    try:
        await client.wait_for_connection()
        emit = await client.event_register("/ev")
        release = asyncio.Event()
        started: asyncio.Queue[Any] = asyncio.Queue()

        async def slow(value: Any) -> None:
            started.put_nowait(value)
            await release.wait()

        await client.event_listen_cb("/ev", slow)
        await emit(1)
        await emit(2)
        assert [await _next(started), await _next(started)] == [1, 2]
        release.set()
    finally:
        await client.close()


async def _test_errors_are_eshet_errors(broker_thread: BrokerThread) -> None:
    """Error replies raise ErrorValue with the value in args; an owner's exception text is the
    value; both are also roost's RemoteError."""
    from roost.errors import RemoteError

    client = Client(server=broker_thread.address)
    try:
        await client.wait_for_connection()

        def broken() -> None:
            raise RuntimeError("fuse blown")

        await client.action_register("/broken", broken)
        with pytest.raises(ErrorValue) as caught:
            await client.action_call("/nowhere")
        assert caught.value.args == ("path_not_found",)
        assert isinstance(caught.value, ESHETException)
        assert isinstance(caught.value, RemoteError)
        assert ErrorValue is ErrorValueFromModule
        with pytest.raises(ErrorValue) as caught:
            await client.action_call("/broken")
        assert caught.value.args == ("fuse blown",)
        with pytest.raises(ErrorValue):
            await client.action_register("/broken", broken)
    finally:
        await client.close()


async def _test_not_connected_raises_disconnected(broker_thread: BrokerThread) -> None:
    """Before the connection is up (here: a port nobody listens on), calls raise Disconnected,
    registrations are kept; close() ends the background connecting."""
    import socket

    with socket.socket() as probe:  # a free port: bound, never listening
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
        client = Client(server=f"127.0.0.1:{port}")
        try:
            assert not client.connected
            assert not client.connected()
            with pytest.raises(Disconnected):
                await client.action_call("/a")
            with pytest.raises(Disconnected):
                await client.get("/a")
            emit = await client.event_register("/e")
            with pytest.raises(Disconnected):
                await emit(1)
            state = await client.state_register("/s")
            with pytest.raises(Disconnected):
                await state.changed(1)
        finally:
            await client.close()
    with pytest.raises(Disconnected):
        await client.wait_for_connection()


async def _test_observe_made_before_connecting_returns_the_fresh_value(
    broker_thread: BrokerThread,
) -> None:
    """``state_observe`` called right after construction waits for the connection and returns
    the state's value, as in eshet.py."""
    owner = Client(server=broker_thread.address)
    try:
        await owner.wait_for_connection()
        await (await owner.state_register("/temp")).changed(21.5)
        observer = Client(server=broker_thread.address)
        try:
            assert await asyncio.wait_for(observer.state_observe("/temp", print), WAIT) == 21.5
        finally:
            await observer.close()
    finally:
        await owner.close()


def test_construction_rules() -> None:
    """A relative base is refused; outside a running loop there is no client."""

    async def relative() -> None:
        Client("house")

    with pytest.raises(ValueError, match="absolute"):
        asyncio.run(relative())
    with pytest.raises(RuntimeError):
        Client()


async def _test_against_a_plain_eshet_server() -> None:
    """Against a server without roost's extensions (as eshetsrv answers), the client connects
    and verbs get that server's replies."""
    from tests.client.test_plain_eshet import plain_server

    async with plain_server() as server:
        client = Client(server=f"127.0.0.1:{server.port}")
        try:
            await asyncio.wait_for(client.wait_for_connection(), WAIT)
            assert not client.client.leases_available
            with pytest.raises(ErrorValue) as caught:
                await client.get("/anything")
            assert caught.value.args == ("path_not_found",)
        finally:
            await client.close()


async def _test_emits_wait_for_the_reply(broker_thread: BrokerThread) -> None:
    """As in eshet.py, an emit and a state change return only with the broker's reply; a
    connection lost before it raises Disconnected from that same emit (the state change's
    value is kept for the reconnect)."""
    from tests.client.proxy import running_proxy

    async with running_proxy(broker_thread.port) as proxy:
        client = Client(server=f"127.0.0.1:{proxy.port}")
        try:
            await client.wait_for_connection()
            emit = await client.event_register("/acked/ev")
            state = await client.state_register("/acked/st")
            await emit(1)
            await state.changed(1)
            proxy.stall()
            emitting = asyncio.ensure_future(emit(2))
            changing = asyncio.ensure_future(state.changed(2))
            done, _ = await asyncio.wait([emitting, changing], timeout=0.1)
            assert not done  # both wait for a reply that the stalled link holds back
            proxy.drop()
            with pytest.raises(Disconnected):
                await asyncio.wait_for(emitting, WAIT)
            with contextlib.suppress(Disconnected):
                await asyncio.wait_for(changing, WAIT)
        finally:
            await client.close()


def test_emits_wait_for_the_reply(broker_thread: BrokerThread) -> None:
    """As an eshet.py program runs: under ``asyncio.run``."""
    asyncio.run(_test_emits_wait_for_the_reply(broker_thread))


def test_tour_of_every_verb(broker_thread: BrokerThread) -> None:
    """As an eshet.py program runs: under ``asyncio.run``."""
    asyncio.run(_test_tour_of_every_verb(broker_thread))


def test_coroutine_callbacks_run_in_tasks(broker_thread: BrokerThread) -> None:
    """As an eshet.py program runs: under ``asyncio.run``."""
    asyncio.run(_test_coroutine_callbacks_run_in_tasks(broker_thread))


def test_errors_are_eshet_errors(broker_thread: BrokerThread) -> None:
    """As an eshet.py program runs: under ``asyncio.run``."""
    asyncio.run(_test_errors_are_eshet_errors(broker_thread))


def test_not_connected_raises_disconnected(broker_thread: BrokerThread) -> None:
    """As an eshet.py program runs: under ``asyncio.run``."""
    asyncio.run(_test_not_connected_raises_disconnected(broker_thread))


def test_observe_made_before_connecting_returns_the_fresh_value(
    broker_thread: BrokerThread,
) -> None:
    """As an eshet.py program runs: under ``asyncio.run``."""
    asyncio.run(_test_observe_made_before_connecting_returns_the_fresh_value(broker_thread))


def test_against_a_plain_eshet_server() -> None:
    """As an eshet.py program runs: under ``asyncio.run``."""
    asyncio.run(_test_against_a_plain_eshet_server())
