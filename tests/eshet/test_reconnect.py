"""An eshet.py program survives a broker restart (import changed only): the client reconnects
by itself and replays its registrations, state value, listens and observes."""

from __future__ import annotations

import asyncio
from typing import Any

import anyio
import pytest

from roost.eshet import Client, Disconnected, Unknown
from tests.brokerproc import BrokerProcess

WAIT = 10.0


async def _next(queue: asyncio.Queue[Any]) -> Any:
    return await asyncio.wait_for(queue.get(), WAIT)


async def _test_reconnect_after_broker_restart() -> None:
    with BrokerProcess() as proc:
        server = f"127.0.0.1:{proc.port}"
        device, panel = Client("/dev", server=server), Client(server=server)
        try:
            await device.wait_for_connection()
            await panel.wait_for_connection()
            await device.action_register("ping", lambda: "pong")
            level = await device.state_register("level")
            await level.changed(5)
            bell = await device.event_register("bell")
            levels: asyncio.Queue[Any] = asyncio.Queue()
            rings: asyncio.Queue[Any] = asyncio.Queue()
            assert await panel.state_observe("/dev/level", levels.put_nowait) == 5
            await panel.event_listen_cb("/dev/bell", rings.put_nowait)

            await anyio.to_thread.run_sync(proc.restart)
            # The observer hears Unknown when the connection drops, then the replayed value.
            assert await _next(levels) is Unknown
            assert await _next(levels) == 5
            await asyncio.wait_for(device.wait_for_connection(), WAIT)
            await asyncio.wait_for(panel.wait_for_connection(), WAIT)

            assert await panel.action_call("/dev/ping") == "pong"
            assert await panel.get("/dev/level") == 5
            await bell("ding")
            assert await _next(rings) == "ding"
            await level.changed(6)
            assert await _next(levels) == 6
        finally:
            await device.close()
            await panel.close()
        with pytest.raises(Disconnected):
            await panel.action_call("/dev/ping")


def test_reconnect_after_broker_restart() -> None:
    """As an eshet.py program runs: under ``asyncio.run``."""
    asyncio.run(_test_reconnect_after_broker_restart())
