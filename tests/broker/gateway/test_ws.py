"""``/ws``: eshetsrv's websocket forms over a real websocket, against native clients."""

from __future__ import annotations

from typing import Any

import aiohttp
import pytest

from roost.protocol import messages as m
from tests.broker.gateway.conftest import WebBroker, Ws
from tests.conftest import start_broker_thread
from tests.wire import Wire, connect, err, ok, v

pytestmark = pytest.mark.anyio


async def test_hello_and_call_a_native_action(web_broker: WebBroker, ws_connect: Any) -> None:
    """Case 111: hello gives hello_id; a call reaches the native owner and its reply comes back."""
    ws: Ws = await ws_connect()
    client_id = await ws.hello()
    assert isinstance(client_id, str) and client_id
    async with await connect(web_broker.port) as owner:
        await owner.register("action", "/action")
        await ws.send("action_call", 0, "/action", [])
        call = await owner.recv_as(m.ActionCall)
        assert (call.path, call.args.obj) == ("/action", [])
        await owner.send(m.ReplyOk(call.id, v("action_result")))
        assert await ws.recv() == ["reply", 0, ["ok", "action_result"]]


async def test_native_client_calls_a_websocket_action(
    web_broker: WebBroker, ws_connect: Any
) -> None:
    """A websocket client owns an action; a native call reaches it as a form and the reply,
    ok or error, goes back to the native caller unchanged."""
    ws: Ws = await ws_connect()
    await ws.hello()
    assert await ws.request("action_register", 1, "/web/act") == ["reply", 1, ["ok", None]]
    async with await connect(web_broker.port) as caller:
        await caller.send(m.ActionCall(7, "/web/act", v([1, "two"])))
        verb, rid, path, args = await ws.recv()
        assert (verb, path, args) == ("action_call", "/web/act", [1, "two"])
        await ws.send("reply", rid, ["ok", {"sum": 3}])
        assert await caller.recv() == ok(7, {"sum": 3})
        await caller.send(m.ActionCall(8, "/web/act", v([])))
        _, rid, _, _ = await ws.recv()
        await ws.send("reply", rid, ["error", "busy"])
        assert await caller.recv() == err(8, "busy")


async def test_observe_and_state_changes(web_broker: WebBroker, ws_connect: Any) -> None:
    """Case 112: observe replies unknown; the owner's changes arrive as state_changed forms."""
    ws: Ws = await ws_connect()
    await ws.hello()
    async with await connect(web_broker.port) as owner:
        await owner.register("state", "/server_state")
        assert await ws.request("state_observe", 1, "/server_state") == [
            "reply_state",
            1,
            ["ok", "unknown"],
        ]
        await owner.call_ok(m.StateChanged(owner.next_id(), "/server_state", v("foo")))
        assert await ws.recv() == ["state_changed", "/server_state", ["known", "foo"]]
        await owner.call_ok(m.StateUnknown(owner.next_id(), "/server_state"))
        assert await ws.recv() == ["state_changed", "/server_state", "unknown"]
        await owner.call_ok(m.StateChanged(owner.next_id(), "/server_state", v(5)))
        assert await ws.recv() == ["state_changed", "/server_state", ["known", 5]]
        assert await ws.request("state_observe", 2, "/server_state") == [
            "reply_state",
            2,
            ["ok", ["known", 5]],
        ]


async def test_observe_t_gives_float_seconds(web_broker: WebBroker, ws_connect: Any) -> None:
    """Case 113: state_observe_t adds the age of the value in float seconds."""
    ws: Ws = await ws_connect()
    await ws.hello()
    async with await connect(web_broker.port) as owner:
        await owner.register("state", "/server_state")
        await owner.call_ok(m.StateChanged(owner.next_id(), "/server_state", v("foo")))
        verb, rid, (result, known, age) = await ws.request("state_observe_t", 1, "/server_state")
        assert (verb, rid, result, known) == ("reply_state", 1, "ok", ["known", "foo"])
        assert isinstance(age, float) and 0.0 <= age < 5.0
    assert await ws.recv() == ["state_changed", "/server_state", "unknown"]  # the owner left
    reply = await ws.request("state_observe_t", 2, "/fresh")
    assert reply == ["reply_state", 2, ["ok", "unknown", 0.0]]


async def test_websocket_owns_a_settable_state(web_broker: WebBroker, ws_connect: Any) -> None:
    """A websocket owner gets a native set as a state_set form and answers it (eshetsrv's gap
    filled); observers see its state_changed."""
    ws: Ws = await ws_connect()
    await ws.hello()
    assert await ws.request("state_register", 1, "/web/lamp") == ["reply", 1, ["ok", None]]
    async with await connect(web_broker.port) as native:
        assert await native.request(m.StateObserve(1, "/web/lamp")) == m.ReplyStateUnknown(1)
        await native.send(m.Set(2, "/web/lamp", v("on")))
        verb, rid, path, value = await ws.recv()
        assert (verb, path, value) == ("state_set", "/web/lamp", "on")
        assert await ws.request("state_changed", 2, "/web/lamp", value) == [
            "reply",
            2,
            ["ok", None],
        ]
        await ws.send("reply", rid, ["ok", None])
        assert await native.recv() == m.StateNotify("/web/lamp", v("on"))
        assert await native.recv() == ok(2)
        assert await ws.request("state_unknown", 3, "/web/lamp") == ["reply", 3, ["ok", None]]
        assert await native.recv() == m.StateNotifyUnknown("/web/lamp")
        assert await ws.request("state_unknown", 4, "/n/a") == [
            "reply",
            4,
            ["error", "no_such_node"],
        ]


async def test_websocket_owns_a_prop(web_broker: WebBroker, ws_connect: Any) -> None:
    """Prop get and set from a native client reach a websocket owner as prop_get/prop_set."""
    ws: Ws = await ws_connect()
    await ws.hello()
    assert await ws.request("prop_register", 1, "/web/p") == ["reply", 1, ["ok", None]]
    async with await connect(web_broker.port) as native:
        await native.send(m.Get(1, "/web/p"))
        verb, rid, path = await ws.recv()
        assert (verb, path) == ("prop_get", "/web/p")
        await ws.send("reply", rid, ["ok", 42])
        assert await native.recv() == ok(1, 42)
        await native.send(m.Set(2, "/web/p", v(7)))
        verb, rid, path, value = await ws.recv()
        assert (verb, path, value) == ("prop_set", "/web/p", 7)
        await ws.send("reply", rid, ["ok", None])
        assert await native.recv() == ok(2)


async def test_events_both_ways(web_broker: WebBroker, ws_connect: Any) -> None:
    """A websocket listener hears native emits; a websocket emitter reaches native listeners."""
    ws: Ws = await ws_connect()
    await ws.hello()
    async with await connect(web_broker.port) as native:
        await native.register("event", "/n/ev")
        assert await ws.request("event_listen", 1, "/n/ev") == ["reply", 1, ["ok", None]]
        await native.call_ok(m.EventEmit(native.next_id(), "/n/ev", v({"a": [1, 2]})))
        assert await ws.recv() == ["event_notify", "/n/ev", {"a": [1, 2]}]
        assert await ws.request("event_register", 2, "/w/ev") == ["reply", 2, ["ok", None]]
        await native.call_ok(m.EventListen(native.next_id(), "/w/ev"))
        assert await ws.request("event_emit", 3, "/w/ev", 1.5) == ["reply", 3, ["ok", None]]
        assert await native.recv() == m.EventNotify("/w/ev", v(1.5))


async def test_get_set_ping_and_errors(web_broker: WebBroker, ws_connect: Any) -> None:
    """get/set of a native state, ping, and the broker's error replies as ["error", name]."""
    ws: Ws = await ws_connect()
    assert await ws.request("get", 1, "/x") == ["reply", 1, ["error", "unregistered"]]
    assert await ws.request("ping", 2) == ["reply", 2, ["ok", None]]
    await ws.hello()
    async with await connect(web_broker.port) as owner:
        await owner.register("state", "/s")
        assert await ws.request("get", 3, "/s") == ["reply", 3, ["error", "state_unknown"]]
        await owner.call_ok(m.StateChanged(owner.next_id(), "/s", v([True, None, "x"])))
        assert await ws.request("get", 4, "/s") == ["reply", 4, ["ok", [True, None, "x"]]]
        await ws.send("set", 5, "/s", 9)
        req = await owner.recv_as(m.StateSet)
        assert req.value.obj == 9
        await owner.send(m.ReplyError(req.id, v("not_implemented")))
        assert await ws.recv() == ["reply", 5, ["error", "not_implemented"]]
    assert await ws.request("get", 6, "/nope") == ["reply", 6, ["error", "path_not_found"]]
    assert await ws.request("get", 7, "bad") == ["reply", 7, ["error", "invalid_path"]]
    assert await ws.request("action_call", 8, "/a\u0100", []) == [
        "reply",
        8,
        ["error", "invalid_path"],
    ]
    big = "x" * 70_000
    assert await ws.request("set", 9, "/s", big) == ["reply", 9, ["error", "value_too_large"]]
    assert await ws.request("set", 10, "/s", 2**70) == ["reply", 10, ["error", "invalid_value"]]


async def test_values_json_cannot_hold(web_broker: WebBroker, ws_connect: Any) -> None:
    """bin, large integers and non-str keys from a native owner arrive in their JSON forms."""
    ws: Ws = await ws_connect()
    await ws.hello()
    async with await connect(web_broker.port) as owner:
        await owner.register("state", "/v")
        await owner.call_ok(m.StateChanged(owner.next_id(), "/v", v([b"\x00\xff", 2**60, {1: 2}])))
        reply = await ws.request("get", 1, "/v")
        assert reply == ["reply", 1, ["ok", [{"$bin": "AP8="}, str(2**60), {"1": 2}]]]


@pytest.mark.parametrize(
    ("text", "why"),
    [
        ("not json", "invalid JSON"),
        ('{"a": 1}', "JSON array"),
        ('["fly", 1]', "unknown verb"),
        ('["get", 1]', "expected 2 fields"),
        ('["get", -1, "/x"]', "the id"),
        ('["get", 1, 5]', "path"),
        ('["reply", 1, ["maybe", 1]]', "reply"),
    ],
)
async def test_bad_forms_close_with_4000(
    web_broker: WebBroker, ws_connect: Any, text: str, why: str
) -> None:
    """A message that is not a JSON form closes the websocket with 4000 and the reason."""
    ws: Ws = await ws_connect()
    await ws.ws.send_str(text)
    code, reason = await ws.closed()
    assert code == 4000
    assert why in reason


async def test_binary_message_and_stray_reply_close(web_broker: WebBroker, ws_connect: Any) -> None:
    """A binary message, or a reply to an id nobody waits for, closes with 4000."""
    ws: Ws = await ws_connect()
    await ws.ws.send_bytes(b"\x47\x00\x03\x09\x00\x01")
    code, reason = await ws.closed()
    assert (code, "binary" in reason) == (4000, True)
    ws2: Ws = await ws_connect()
    await ws2.hello()
    await ws2.send("reply", 3, ["ok", None])
    code, reason = await ws2.closed()
    assert code == 4000 and "nobody waits" in reason


async def test_idle_timeout_closes_with_4000_timeout(
    web_broker: WebBroker, ws_connect: Any
) -> None:
    """The hello's timeout applies: silence for 1 s closes with 4000 "timeout"."""
    ws: Ws = await ws_connect()
    await ws.hello(timeout=1)
    assert await ws.closed(timeout=5) == (4000, "timeout")


async def test_cleanup_on_close(web_broker: WebBroker, ws_connect: Any) -> None:
    """Closing the websocket ends its calls in flight (client_exited), removes its action and
    makes its observers see its state unknown."""
    ws: Ws = await ws_connect()
    await ws.hello()
    await ws.request("action_register", 1, "/gone/act")
    await ws.request("state_register", 2, "/gone/st")
    await ws.request("state_changed", 3, "/gone/st", 1)
    async with await connect(web_broker.port) as native:
        assert await native.request(m.StateObserve(1, "/gone/st")) == m.ReplyStateKnown(1, v(1))
        await native.send(m.ActionCall(2, "/gone/act", v([])))
        assert (await ws.recv())[0] == "action_call"
        await ws.ws.close()
        replies = {await native.recv(), await native.recv()}
        assert replies == {err(2, "client_exited"), m.StateNotifyUnknown("/gone/st")}
        assert await native.request(m.ActionCall(3, "/gone/act", v([]))) == err(3, "path_not_found")
        await native.register("action", "/gone/act")


async def test_takeover_closes_the_websocket(web_broker: WebBroker, ws_connect: Any) -> None:
    """hello_id from a native client with the websocket's id takes it over (4000 takeover)."""
    ws: Ws = await ws_connect()
    assert await ws.request("hello_id", 1, 30, "panel") == ["hello"]
    async with await connect(web_broker.port, client_id="panel"):
        assert await ws.closed() == (4000, "takeover")


async def test_leases_over_websocket(web_broker: WebBroker, ws_connect: Any) -> None:
    """Lease verbs as JSON forms: grant, queue, return (pushes lease_revoked), the waiter's
    lease_granted; a large epoch survives the round trip as a string."""
    a: Ws = await ws_connect()
    b: Ws = await ws_connect()
    await a.hello()
    await b.hello()
    verb, rid, (result, body) = await a.request("lease_acquire", 1, {"resource": "lab/arm"})
    assert (verb, rid, result, body["status"]) == ("reply", 1, "ok", "OK")
    token = body["lease"]["token"]
    assert isinstance(token["epoch"], str) and int(token["epoch"]) > 2**53
    queued = await b.request("lease_acquire", 1, {"resource": "lab/arm", "wait": 5})
    assert queued[2][0] == "ok" and queued[2][1]["status"] == "QUEUED"
    request = queued[2][1]["request"]
    await a.send("lease_return", 2, {"token": token})
    revoked = await a.recv()
    assert revoked[0] == "lease_revoked" and revoked[1]["reason"] == "returned"
    assert await a.recv() == ["reply", 2, ["ok", {"status": "OK"}]]
    granted = await b.recv()
    assert granted[0] == "lease_granted" and granted[1]["request"] == request
    async with await connect(web_broker.port) as native:
        info = await native.request(m.LeaseInfo(1, v({"resource": "lab/arm"})))
        assert [h["lease_id"] for h in info.value.obj["info"]["holders"]] == [
            granted[1]["lease"]["lease_id"]
        ]


async def test_lease_guarded_action_owned_by_websocket(
    web_broker: WebBroker, ws_connect: Any
) -> None:
    """A websocket owner guards its action; a native holder's call arrives as guarded_call."""
    owner: Ws = await ws_connect()
    await owner.hello()
    await owner.request("action_register", 1, "/dev/arm")
    reply = await owner.request("lease_guard", 2, {"path": "/dev/arm", "resource": "lab/arm"})
    assert reply == ["reply", 2, ["ok", {"status": "OK"}]]
    async with await connect(web_broker.port, timeout=5) as holder:
        assert (await holder.request(m.ActionCall(1, "/dev/arm", v([])))) == err(1, "NO_LEASE")
        grant = await holder.request(m.LeaseAcquire(2, v({"resource": "lab/arm"})))
        assert grant.value.obj["status"] == "OK"
        await holder.send(m.ActionCall(3, "/dev/arm", v([1])))
        verb, rid, body = await owner.recv()
        assert verb == "guarded_call" and body["args"] == [1] and body["path"] == "/dev/arm"
        await owner.send("reply", rid, ["ok", "moved"])
        assert await holder.recv() == ok(3, "moved")


async def test_websocket_client_is_listed(web_broker: WebBroker, ws_connect: Any) -> None:
    """A websocket client is an ordinary client: /meta/clients lists it with its registrations."""
    ws: Ws = await ws_connect()
    client_id = await ws.hello()
    await ws.request("action_register", 1, "/listed")
    async with await connect(web_broker.port) as native:
        value = (await native.request(m.Get(1, "/meta/clients"))).value.obj
    mine = [c for c in value["clients"] if c["client"] == client_id]
    assert len(mine) == 1 and mine[0]["registrations"] == 1
    assert mine[0]["peer"].startswith("127.0.0.1:")


async def test_native_wire_unaffected(web_broker: WebBroker) -> None:
    """The native listener works as before beside the gateway."""
    async with await Wire.connect(web_broker.port) as wire:
        await wire.hello()
        assert await wire.request(m.Ping(1)) == ok(1)


async def test_nul_in_path_is_invalid_path(web_broker: WebBroker, ws_connect: Any) -> None:
    """A path no frame can carry (NUL inside) is answered invalid_path, in request order."""
    ws: Ws = await ws_connect()
    await ws.hello()
    await ws.send("get", 1, "/a\u0000b")
    await ws.send("ping", 2)
    assert await ws.recv() == ["reply", 1, ["error", "invalid_path"]]
    assert await ws.recv() == ["reply", 2, ["ok", None]]


async def test_websocket_that_stops_reading_is_dropped(http: aiohttp.ClientSession) -> None:
    """A websocket listener that stops reading is closed as slow_consumer (1008) once its
    unsent output passes the broker's bound; the emitter is never held up."""
    handle, stop, thread = start_broker_thread(http_port=0, max_outbound=256 * 1024)
    try:
        gateway = handle.broker.gateway
        assert gateway is not None
        ws = await http.ws_connect(f"http://127.0.0.1:{gateway.port}/ws", max_msg_size=0)
        await ws.send_str('["hello", 1, 30]')
        await ws.receive()
        await ws.send_str('["event_listen", 1, "/flood"]')
        await ws.receive()
        async with await connect(handle.port) as emitter:
            await emitter.register("event", "/flood")
            value = v("x" * 30_000)
            for i in range(400):  # 12 MB in all, far over the bound; each ok comes at once
                await emitter.call_ok(m.EventEmit(100 + i, "/flood", value))
                if handle.call(lambda: handle.broker.router.stats.closed.get("slow_consumer")):
                    break
            assert handle.call(lambda: handle.broker.router.stats.closed) == {"slow_consumer": 1}
        while (msg := await ws.receive(timeout=10)).type is aiohttp.WSMsgType.TEXT:
            pass
        assert (msg.type, msg.data) == (aiohttp.WSMsgType.CLOSE, 1008)
    finally:
        stop.set()
        thread.join(timeout=10)


async def test_owner_reply_too_large_reaches_caller_as_error(
    web_broker: WebBroker, ws_connect: Any
) -> None:
    """A websocket owner's reply that no frame can carry: the caller gets value_too_large."""
    ws: Ws = await ws_connect()
    await ws.hello()
    await ws.request("action_register", 1, "/web/big")
    async with await connect(web_broker.port) as caller:
        await caller.send(m.ActionCall(1, "/web/big", v([])))
        _, rid, _, _ = await ws.recv()
        await ws.send("reply", rid, ["ok", "x" * 70_000])
        assert await caller.recv() == err(1, "value_too_large")
        assert await ws.request("ping", 2) == ["reply", 2, ["ok", None]]  # still open


async def test_subtree_listen_over_websocket(web_broker: WebBroker, ws_connect: Any) -> None:
    """subtree_listen as a JSON form: emits on matching events, nodes created later included,
    reach every subscribed websocket as subtree_event; cancel ends it; a bad pattern gets
    invalid_pattern with its reason."""
    a: Ws = await ws_connect()
    b: Ws = await ws_connect()
    await a.hello()
    await b.hello()
    for ws in (a, b):
        reply = await ws.request("subtree_listen", 1, {"sub": 7, "pattern": "/house/**"})
        assert reply == ["reply", 1, ["ok", {"status": "OK"}]]
    async with await connect(web_broker.port) as native:
        await native.register("event", "/house/door/bell")
        await native.register("event", "/garden/bell")
        await native.call_ok(m.EventEmit(native.next_id(), "/garden/bell", v(0)))
        await native.call_ok(m.EventEmit(native.next_id(), "/house/door/bell", v({"ring": 2})))
        for ws in (a, b):
            assert await ws.recv() == ["subtree_event", "/house/door/bell", {"ring": 2}]
        assert await a.request("subtree_cancel", 2, {"sub": 7}) == [
            "reply",
            2,
            ["ok", {"status": "OK"}],
        ]
        await native.call_ok(m.EventEmit(native.next_id(), "/house/door/bell", v(3)))
        assert await b.recv() == ["subtree_event", "/house/door/bell", 3]
        assert await a.request("ping", 3) == ["reply", 3, ["ok", None]]  # nothing came before
    verb, rid, (result, body) = await a.request("subtree_listen", 4, {"sub": 1, "pattern": "/a/#"})
    assert (verb, rid, result, body["status"]) == ("reply", 4, "error", "invalid_pattern")
    assert "/**" in body["reason"]


async def test_subtree_observe_over_websocket(web_broker: WebBroker, ws_connect: Any) -> None:
    """subtree_observe as a JSON form: one subtree_snapshot per known matching state before the
    reply (with the count), then subtree_changed and subtree_unknown as the states change."""
    ws: Ws = await ws_connect()
    await ws.hello()
    async with await connect(web_broker.port) as owner:
        await owner.register("state", "/lab/a/temp")
        await owner.register("state", "/lab/b/temp")
        await owner.register("state", "/lab/a/humidity")
        await owner.call_ok(m.StateChanged(owner.next_id(), "/lab/a/temp", v(20.5)))
        await owner.call_ok(m.StateChanged(owner.next_id(), "/lab/a/humidity", v(40)))
        await ws.send("subtree_observe", 1, {"sub": 3, "pattern": "/lab/+/temp"})
        assert await ws.recv() == ["subtree_snapshot", 3, "/lab/a/temp", 20.5]
        assert await ws.recv() == ["reply", 1, ["ok", {"status": "OK", "states": 1}]]
        await owner.call_ok(m.StateChanged(owner.next_id(), "/lab/b/temp", v([1, b"\x01"])))
        assert await ws.recv() == ["subtree_changed", "/lab/b/temp", [1, {"$bin": "AQ=="}]]
        await owner.call_ok(m.StateUnknown(owner.next_id(), "/lab/b/temp"))
        assert await ws.recv() == ["subtree_unknown", "/lab/b/temp"]
    assert await ws.recv() == ["subtree_unknown", "/lab/a/temp"]  # the owner left


async def test_locks_and_pools_over_websocket(web_broker: WebBroker, ws_connect: Any) -> None:
    """The durable lock and pool verbs are JSON forms too: a lock set from a websocket shows in
    lock_info and blocks a native acquire; pool_list answers with its map."""
    ws: Ws = await ws_connect()
    await ws.hello()
    fields = {"resource": "lab/scope", "key": "k-1", "note": "calibrating"}
    verb, rid, (result, body) = await ws.request("lock_set", 1, fields)
    assert (verb, rid, result, body["status"]) == ("reply", 1, "ok", "OK")
    _, _, (result, body) = await ws.request("lock_info", 2, {"resource": "lab/scope"})
    assert result == "ok" and body["lock"]["note"] == "calibrating"
    async with await connect(web_broker.port) as native:
        refused = await native.request(m.LeaseAcquire(1, v({"resource": "lab/scope"})))
        assert refused.value.obj["status"] == "ALREADY_CLAIMED"
    _, _, (result, body) = await ws.request(
        "lock_clear", 3, {"resource": "lab/scope", "key": "k-1"}
    )
    assert (result, body["status"]) == ("ok", "OK")
    _, _, (result, body) = await ws.request("pool_list", 4, {})
    assert (result, body) == ("ok", {"status": "OK", "resources": [], "waiters": 0})
