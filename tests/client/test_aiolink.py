"""The asyncio link under any asyncio loop: asyncio's own and uvloop (whose transports are not
``asyncio.Transport`` subclasses)."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from roost.broker.run import loop_factory
from roost.client import Client
from roost.client.aiolink import AsyncioLink
from roost.errors import Disconnected, RemoteError
from roost.protocol import messages as m
from tests.conftest import BrokerThread

WAIT = 5.0


async def _tour(address: str) -> list[Any]:
    """Call, emit and observe through the link; then lose the connection mid-request."""
    seen: list[Any] = []
    heard: asyncio.Queue[Any] = asyncio.Queue()
    async with Client(server=address) as owner, Client(server=address) as user:
        assert isinstance(owner._link, AsyncioLink)
        await owner.action_register("/echo", lambda value: value)
        state = await owner.state_register("/level")
        emitter = await owner.event_register("/bell")
        await user.event_listen_cb("/bell", heard.put_nowait)
        await user.state_observe("/level", heard.put_nowait)
        seen.append(await user.action_call("/echo", [1, "two"]))
        await emitter.emit("ding")
        seen.append(await asyncio.wait_for(heard.get(), WAIT))
        await state.changed(3)
        seen.append(await asyncio.wait_for(heard.get(), WAIT))

        release = asyncio.Event()

        async def stall() -> None:
            await release.wait()

        await owner.action_register("/stall", stall)
        pending = asyncio.ensure_future(user.action_call("/stall"))
        while user.statistics()["waiting"] == 0:  # the request is on the wire
            await asyncio.sleep(0)
        link = user._link
        assert link is not None
        link.close(OSError("cut"))  # as a lost connection does
        with pytest.raises(Disconnected):
            await asyncio.wait_for(pending, WAIT)
        release.set()
        await asyncio.wait_for(user.wait_for_connection(), WAIT)
        seen.append(await user.action_call("/echo", "again"))
    return seen


@pytest.mark.parametrize("loop", ["asyncio", "uvloop"])
def test_link_on_each_asyncio_loop(broker_thread: BrokerThread, loop: str) -> None:
    with asyncio.Runner(loop_factory=loop_factory(loop)) as runner:
        seen = runner.run(_tour(broker_thread.address))
    assert seen == [[1, "two"], "ding", 3, "again"]


class _Unhashable:
    """A callable object that cannot be a dict key."""

    __hash__ = None  # type: ignore[assignment]

    def __eq__(self, other: object) -> bool:
        return other is self

    def __call__(self, value: Any) -> Any:
        return ["object", value]


async def _owner_callbacks(address: str) -> list[Any]:
    """Each kind of owner callback, called twice (the second call takes remembered checks)."""

    async def coroutine_function(value: Any) -> Any:
        await asyncio.sleep(0)
        return ["async", value]

    async def later(value: Any) -> Any:
        return ["awaitable", value]

    def returns_awaitable(value: Any) -> Any:  # a plain function whose result is awaited
        return later(value)

    def fails(value: Any) -> Any:
        raise ValueError(f"no {value}")

    seen: list[Any] = []
    async with Client(server=address) as owner, Client(server=address) as user:
        await owner.action_register("/object", _Unhashable())
        await owner.action_register("/async", coroutine_function)
        await owner.action_register("/awaitable", returns_awaitable)
        await owner.action_register("/fails", fails)
        for _ in range(2):
            for path in ("/object", "/async", "/awaitable"):
                seen.append(await user.action_call(path, 1))
            with pytest.raises(RemoteError) as caught:
                await user.action_call("/fails", 2)
            seen.append(caught.value.value)
    return seen


def test_owner_callbacks_of_every_kind(broker_thread: BrokerThread) -> None:
    seen = asyncio.run(_owner_callbacks(broker_thread.address))
    assert seen == [["object", 1], ["async", 1], ["awaitable", 1], "no 2"] * 2


async def _failing_hook(address: str) -> None:
    def hook(_: Any) -> None:
        raise RuntimeError("the hook failed")

    async with Client(server=address) as client:
        with pytest.raises(RuntimeError, match="the hook failed"):
            await asyncio.wait_for(client._request(m.Ping, on_reply=hook), WAIT)


def test_a_failing_reply_hook_fails_its_request(broker_thread: BrokerThread) -> None:
    asyncio.run(_failing_hook(broker_thread.address))  # raised, not left waiting
