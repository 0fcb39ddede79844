"""eshetsrv's HTTP API over real HTTP: /call, /get, /set, errors, ?wrap."""

from __future__ import annotations

import asyncio
import json

import aiohttp
import pytest

from roost.protocol import messages as m
from tests.broker.gateway.conftest import WebBroker
from tests.wire import Wire, connect, v

pytestmark = pytest.mark.anyio


async def _answer_calls(owner: Wire, count: int) -> list[m.ActionCall]:
    calls = []
    for _ in range(count):
        call = await owner.recv_as(m.ActionCall)
        calls.append(call)
        await owner.send(m.ReplyOk(call.id, v("action_result")))
    return calls


async def test_call(web_broker: WebBroker, http: aiohttp.ClientSession) -> None:
    """Case 109: POST /call/action with [] gives 200 "action_result"; args reach the owner."""
    async with await connect(web_broker.port) as owner:
        await owner.register("action", "/action")
        answering = asyncio.ensure_future(_answer_calls(owner, 2))
        async with http.post(web_broker.url("/call/action"), data="[]") as r:
            assert (r.status, await r.json()) == (200, "action_result")
        async with http.get(web_broker.url("/call/action"), data='[1, {"a": null}]') as r:
            assert r.status == 200  # the method is not checked
        calls = await answering
        assert [c.args.obj for c in calls] == [[], [1, {"a": None}]]


async def test_meta_ls(web_broker: WebBroker, http: aiohttp.ClientSession) -> None:
    """POST /call/meta/ls ["/"] lists the tree."""
    async with http.post(web_broker.url("/call/meta/ls"), data='["/"]') as r:
        assert (r.status, await r.json()) == (200, ["dir", [["meta", "dir"]]])


async def test_get_and_set(web_broker: WebBroker, http: aiohttp.ClientSession) -> None:
    """Case 110: GET /get reads a state; POST /set goes to the owner, which changes it."""
    async with await connect(web_broker.port) as owner:
        await owner.register("state", "/server_state")
        await owner.call_ok(m.StateChanged(owner.next_id(), "/server_state", v(5)))
        async with http.get(web_broker.url("/get/server_state")) as r:
            assert (r.status, await r.json()) == (200, 5)

        async def accept() -> None:
            req = await owner.recv_as(m.StateSet)
            await owner.call_ok(m.StateChanged(owner.next_id(), "/server_state", req.value))
            await owner.send(m.ReplyOk(req.id, v(None)))

        accepting = asyncio.ensure_future(accept())
        async with http.post(web_broker.url("/set/server_state"), data="7") as r:
            assert (r.status, await r.text()) == (200, "null")
        await accepting
        async with http.get(web_broker.url("/get/server_state?wrap")) as r:
            assert (r.status, await r.json()) == (200, {"value": 7})


async def test_eshet_errors_are_520(web_broker: WebBroker, http: aiohttp.ClientSession) -> None:
    """Any ESHET error: 520 ESHET Error with the error value as JSON."""
    async with http.get(web_broker.url("/get/nope")) as r:
        assert (r.status, r.reason, await r.json()) == (520, "ESHET Error", "path_not_found")
    async with http.post(web_broker.url("/set/meta/broker"), data="1") as r:
        assert (r.status, await r.json()) == (520, "not_implemented")
    async with http.post(web_broker.url("/call/meta/ls?wrap"), data="[5]") as r:
        assert (r.status, await r.json()) == (520, {"value": "bad_args"})


async def test_unparseable_body_is_400(web_broker: WebBroker, http: aiohttp.ClientSession) -> None:
    """A body that is not JSON: 400 with a text message; nothing reaches the broker."""
    async with await connect(web_broker.port) as owner:
        await owner.register("action", "/act")
        async with http.post(web_broker.url("/call/act"), data="[1,") as r:
            assert r.status == 400
            assert "JSON" in await r.text()
        async with http.post(web_broker.url("/set/act"), data="") as r:
            assert r.status == 400
        await owner.expect_silence(0.1)


async def test_http_reaches_a_websocket_owner(
    web_broker: WebBroker, http: aiohttp.ClientSession
) -> None:
    """An HTTP call reaches an action a websocket client owns."""
    async with http.ws_connect(web_broker.url("/ws")) as ws:
        await ws.send_str('["hello", 1, 30]')
        await ws.receive_str()
        await ws.send_str('["action_register", 1, "/web/act"]')
        assert json.loads(await ws.receive_str()) == ["reply", 1, ["ok", None]]
        pending = asyncio.ensure_future(http.post(web_broker.url("/call/web/act"), data="[2]"))
        verb, rid, path, args = json.loads(await ws.receive_str())
        assert (verb, path, args) == ("action_call", "/web/act", [2])
        await ws.send_str(json.dumps(["reply", rid, ["ok", 4]]))
        async with await pending as r:
            assert (r.status, await r.json()) == (200, 4)


async def test_owner_gone_gives_client_exited(
    web_broker: WebBroker, http: aiohttp.ClientSession
) -> None:
    """A call whose owner leaves before answering: 520 "client_exited"."""
    owner = await connect(web_broker.port)
    await owner.register("action", "/slow")
    pending = asyncio.ensure_future(http.post(web_broker.url("/call/slow"), data="[]"))
    await owner.recv_as(m.ActionCall)
    await owner.aclose()
    async with await pending as r:
        assert (r.status, await r.json()) == (520, "client_exited")


async def test_timeout(web_broker: WebBroker, http: aiohttp.ClientSession) -> None:
    """An owner that never answers: 520 "timeout" after the gateway's timeout."""
    gateway = web_broker.thread.broker.gateway
    assert gateway is not None
    gateway.api.timeout = 0.2
    async with await connect(web_broker.port) as owner:
        await owner.register("action", "/mute")
        async with http.post(web_broker.url("/call/mute"), data="[]") as r:
            assert (r.status, await r.json()) == (520, "timeout")
        call = await owner.recv_as(m.ActionCall)
        await owner.send(m.ReplyOk(call.id, v(1)))  # late: dropped, nobody hurt
        async with http.post(web_broker.url("/call/meta/ls"), data='["/"]') as r:
            assert r.status == 200
