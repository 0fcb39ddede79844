"""The broker's resource limits hold for websocket clients and HTTP requests as for TCP clients."""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import aiohttp
import pytest

from roost.broker.limits import Limits
from roost.protocol import messages as m
from tests.broker.gateway.conftest import Ws
from tests.conftest import BrokerThread, start_broker_thread
from tests.wire import Wire, connect, v

pytestmark = pytest.mark.anyio


@asynccontextmanager
async def limited(**limits: Any) -> AsyncIterator[tuple[BrokerThread, str]]:
    """A broker with its gateway and the given limits; yields it and the gateway's base URL."""
    handle, stop, thread = start_broker_thread(http_port=0, limits=Limits(**limits))
    try:
        gateway = handle.broker.gateway
        assert gateway is not None
        yield handle, f"http://127.0.0.1:{gateway.port}"
    finally:
        stop.set()
        thread.join(timeout=10)


async def test_websockets_count_against_max_connections(http: aiohttp.ClientSession) -> None:
    """With max_connections open (the gateway's own two sessions, a websocket, a TCP client), a new
    websocket is closed at once with 1013 and the limit; a TCP client is refused as before;
    once a connection closes, a websocket gets in."""
    async with limited(max_connections=4) as (handle, base):
        first = Ws(await http.ws_connect(base + "/ws"))
        await first.hello()
        async with await connect(handle.port) as native:
            sessions = handle.call(lambda: len(handle.broker.router.sessions))
            assert sessions == 4
            refused = Ws(await http.ws_connect(base + "/ws"))
            assert await refused.closed() == (1013, "max_connections (4) open")
            async with await Wire.connect(handle.port) as tcp:
                await tcp.expect_closed()
            gateway = handle.broker.gateway
            assert gateway is not None
            assert gateway.admission.refused == 1
            # The native client sees the websocket leave in /meta/clients.
            reply = await native.request(m.StateObserve(1, "/meta/clients"))
            assert isinstance(reply, m.ReplyStateKnown)
            await first.ws.close()
            change = await native.recv_as(m.StateNotify)
            assert len(change.value.obj["clients"]) == 3
            second = Ws(await http.ws_connect(base + "/ws"))
            assert isinstance(await second.hello(), str)


async def test_websocket_hello_deadline(http: aiohttp.ClientSession) -> None:
    """A websocket that says nothing is closed after hello_timeout (4000 hello_timeout)."""
    async with limited(hello_timeout=0.3) as (handle, base):
        ws = Ws(await http.ws_connect(base + "/ws"))
        assert await ws.closed() == (4000, "hello_timeout")
        assert handle.call(lambda: dict(handle.broker.router.stats.closed)) == {"hello_timeout": 1}


async def test_websocket_max_idle_but_not_the_gateways_own_session(
    http: aiohttp.ClientSession,
) -> None:
    """A websocket that asked for timeout 0 is closed after max_idle of silence (4000
    idle_timeout); the gateway's own session, quiet for longer, stays open and HTTP works."""
    async with limited(max_idle=0.3) as (handle, base):
        gateway = handle.broker.gateway
        assert gateway is not None
        own = handle.call(lambda: gateway.client.session)
        ws = Ws(await http.ws_connect(base + "/ws"))
        await ws.hello(timeout=0)
        assert await ws.closed() == (4000, "idle_timeout")
        # The gateway's session went quiet before the websocket opened: it would have gone
        # first had max_idle applied to it.
        assert handle.call(lambda: dict(handle.broker.router.stats.closed)) == {"idle_timeout": 1}
        assert handle.call(lambda: own.closed) is False
        async with http.get(base + "/get/meta/broker") as response:
            assert response.status == 200


async def test_websocket_per_connection_limits(http: aiohttp.ClientSession) -> None:
    """max_per_connection and max_path_length apply to a websocket's requests."""
    async with limited(max_per_connection=2, max_path_length=20) as (_, base):
        ws = Ws(await http.ws_connect(base + "/ws"))
        await ws.hello()
        long = "/" + "x" * 30
        assert await ws.request("state_observe", 0, long) == ["reply", 0, ["error", "invalid_path"]]
        assert await ws.request("action_register", 1, "/w/a") == ["reply", 1, ["ok", None]]
        assert await ws.request("event_listen", 2, "/w/e") == ["reply", 2, ["ok", None]]
        assert await ws.request("action_register", 3, "/w/b") == [
            "reply",
            3,
            ["error", "too_many_registrations"],
        ]


async def test_http_body_bound(http: aiohttp.ClientSession) -> None:
    """A body over max_http_body is refused with 413; one under it is read."""
    async with limited(max_http_body=1000) as (_, base):
        async with http.post(base + "/call/meta/ls", data=b"[" + b" " * 2000 + b'"/"]') as r:
            assert r.status == 413
            assert "1000" in await r.text()
        async with http.post(base + "/call/meta/ls", data=b'["/"]') as r:
            assert r.status == 200
            assert (await r.json())[0] == "dir"


async def test_http_requests_in_flight_bound(http: aiohttp.ClientSession) -> None:
    """With max_http_requests waiting on a slow owner, one more gets 503 with Retry-After at
    once; when the answers come, requests are served again."""
    async with limited(max_http_requests=2) as (handle, base), await connect(handle.port) as owner:
        await owner.register("action", "/slow")
        waiting = [
            asyncio.ensure_future(http.post(base + "/call/slow", data=f"[{i}]")) for i in range(2)
        ]
        calls = [await owner.recv_as(m.ActionCall) for _ in range(2)]
        async with http.post(base + "/call/slow", data="[9]") as r:
            assert r.status == 503
            assert r.headers["Retry-After"] == "1"
            assert "max_http_requests 2" in await r.text()
        for call in calls:
            await owner.send(m.ReplyOk(call.id, v(call.args.obj[0])))
        answers = []
        for task in waiting:
            async with await task as response:
                assert response.status == 200
                answers.append(await response.json())
        assert sorted(answers) == [0, 1]
        again = asyncio.ensure_future(http.post(base + "/call/slow", data="[3]"))
        call = await owner.recv_as(m.ActionCall)
        await owner.send(m.ReplyOk(call.id, v("again")))
        async with await again as response:
            assert (response.status, await response.json()) == (200, "again")


async def _raw_http(port: int) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    return await asyncio.open_connection("127.0.0.1", port)


async def _kept_alive(port: int) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    """A connection that has had one request answered and stays open (HTTP/1.1 keep-alive):
    the answer shows the gateway holds it."""
    reader, writer = await _raw_http(port)
    writer.write(b"GET /get/meta/broker HTTP/1.1\r\nHost: x\r\n\r\n")
    head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
    assert head.startswith(b"HTTP/1.1 200 ")
    length = re.search(rb"\r\nContent-Length: (\d+)\r\n", head, re.I)
    assert length is not None
    await reader.readexactly(int(length[1]))
    return reader, writer


async def test_http_connections_bound(http: aiohttp.ClientSession) -> None:
    """With max_http_connections open (kept alive after a request), one more is answered 503
    with Retry-After and the limit, and closed; once one closes, HTTP is served again."""
    async with limited(max_http_connections=3) as (handle, base):
        gateway = handle.broker.gateway
        assert gateway is not None and gateway.listener is not None
        port = gateway.port
        held = [await _kept_alive(port) for _ in range(3)]
        server = gateway.listener.server
        reader, writer = await _raw_http(port)
        answer = await asyncio.wait_for(reader.read(), 5)
        writer.close()
        head, _, body = answer.partition(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 503 ")
        assert b"\r\nRetry-After: 1\r\n" in head
        assert body == b"too many HTTP connections open (max_http_connections 3)\n"
        assert handle.call(lambda: gateway.listener.refused if gateway.listener else 0) == 1
        _, first = held.pop()
        first.close()
        await first.wait_closed()
        handle.wait_until(lambda: len(server.connections) == 2)
        async with http.get(base + "/get/meta/broker") as response:
            assert response.status == 200
        for _, writer in held:
            writer.close()


async def test_http_idle_closes_silent_and_half_sent_connections() -> None:
    """A connection that sends nothing, and one that sends half a request head, are closed by
    the gateway after http_idle; a connection that completes a request is answered."""
    async with limited(http_idle=0.3) as (handle, _):
        gateway = handle.broker.gateway
        assert gateway is not None
        silent = await _raw_http(gateway.port)
        half = await _raw_http(gateway.port)
        half[1].write(b"GET /get/meta/broker HTTP/1.1\r\nHost: x\r\n")
        for reader, _ in (silent, half):
            assert await asyncio.wait_for(reader.read(), 5) == b""
        reader, writer = await _raw_http(gateway.port)
        writer.write(b"GET /get/meta/broker HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        answer = await asyncio.wait_for(reader.read(), 5)
        assert answer.startswith(b"HTTP/1.1 200 ")
        for _, w in (silent, half, (reader, writer)):
            w.close()
