"""The gateway under access rules: HTTP clients are ``anonymous``; a websocket is anonymous
unless it logs in, and then acts as its user."""

from __future__ import annotations

from typing import Any

import aiohttp
import pytest

from roost.broker.listeners import Listener
from tests.broker.auth.authkit import PASSWORD, broker, settings, user_wire
from tests.broker.gateway.conftest import Ws

pytestmark = pytest.mark.anyio

CONFIG = """
[users]
owner = "{hash}"
alice = "{hash}"
bob = "{hash}"

[[acl]]
user = "alice"
paths = ["/lab/**"]
allow = ["all"]

[[acl]]
user = "owner"
paths = ["/**"]
allow = ["all"]

[[acl]]
user = "anonymous"
paths = ["/public/**"]
allow = ["get"]
"""


async def test_gateway_clients_get_only_what_anonymous_may() -> None:
    from roost.protocol import messages as m
    from tests.wire import v

    with broker(settings(CONFIG), listeners=[Listener("127.0.0.1", 0)], http_port=0) as b:
        gateway = b.broker.gateway
        assert gateway is not None
        owner = await user_wire(b.port, "owner")
        for path in ("/public/t", "/private/t"):
            await owner.register("state", path)
            await owner.call_ok(m.StateChanged(owner.next_id(), path, v(1)))
        base = f"http://127.0.0.1:{gateway.port}"
        async with aiohttp.ClientSession() as http:
            async with http.get(f"{base}/get/public/t") as r:
                assert (r.status, await r.json()) == (200, 1)
            async with http.get(f"{base}/get/private/t") as r:
                assert (r.status, await r.json()) == (520, "forbidden")
            async with http.post(f"{base}/set/public/t", data="2") as r:
                assert (r.status, await r.json()) == (520, "forbidden")
            async with http.post(f"{base}/call/meta/ls", data='["/"]') as r:
                assert (r.status, await r.json()) == (
                    200,
                    ["dir", [["meta", "dir"], ["public", "dir"]]],
                )
        await owner.aclose()


async def test_figures_need_admin_under_rules() -> None:
    with broker(settings(CONFIG), listeners=[Listener("127.0.0.1", 0)], http_port=0) as b:
        gateway = b.broker.gateway
        assert gateway is not None
        base = f"http://127.0.0.1:{gateway.port}"
        async with aiohttp.ClientSession() as http:
            for path in ("/metrics", "/api/stats"):
                async with http.get(f"{base}{path}") as r:
                    assert r.status == 403
                    assert "need admin on /meta" in await r.text()
            async with http.get(f"{base}/") as r:
                assert r.status == 200  # the dashboard's page itself is no secret
    admin = CONFIG + '\n[[acl]]\nuser = "anonymous"\npaths = ["/meta/**"]\nallow = ["admin"]\n'
    with broker(settings(admin), listeners=[Listener("127.0.0.1", 0)], http_port=0) as b:
        gateway = b.broker.gateway
        assert gateway is not None
        url = f"http://127.0.0.1:{gateway.port}/api/stats"
        async with aiohttp.ClientSession() as http, http.get(url) as r:
            assert r.status == 200


async def _login(ws: Ws, user: str, password: str = PASSWORD) -> Any:
    return await ws.request("auth_login", 1, {"user": user, "password": password})


async def test_websocket_logs_in_and_acts_as_its_user() -> None:
    """A websocket that logs in before its hello gets its user's access: alice may observe
    /lab, plainly and by pattern; bob, logged in too, is refused and sees none of it; a wrong
    password is bad_login."""
    from roost.protocol import messages as m
    from tests.wire import v

    with broker(settings(CONFIG), listeners=[Listener("127.0.0.1", 0)], http_port=0) as b:
        gateway = b.broker.gateway
        assert gateway is not None
        owner = await user_wire(b.port, "owner")
        await owner.register("state", "/lab/temp")
        await owner.call_ok(m.StateChanged(owner.next_id(), "/lab/temp", v(21)))
        url = f"http://127.0.0.1:{gateway.port}/ws"
        async with aiohttp.ClientSession() as http:
            alice, bob, wrong = [Ws(await http.ws_connect(url)) for _ in range(3)]
            ok = ["reply", 1, ["ok", {"status": "OK", "user": "alice"}]]
            assert await _login(alice, "alice") == ok
            await alice.hello()
            assert await alice.request("state_observe", 2, "/lab/temp") == [
                "reply_state",
                2,
                ["ok", ["known", 21]],
            ]
            await alice.send("subtree_observe", 3, {"sub": 0, "pattern": "/lab/**"})
            assert await alice.recv() == ["subtree_snapshot", 0, "/lab/temp", 21]
            assert (await alice.recv())[2][1]["states"] == 1
            assert (await _login(bob, "bob"))[2][1]["user"] == "bob"
            await bob.hello()
            assert await bob.request("state_observe", 2, "/lab/temp") == [
                "reply",
                2,
                ["error", "forbidden"],
            ]
            await bob.send("subtree_observe", 3, {"sub": 0, "pattern": "/lab/**"})
            assert (await bob.recv())[2][1] == {"status": "OK", "states": 0}
            assert await bob.request("get", 4, "/lab/temp") == ["reply", 4, ["error", "forbidden"]]
            refused = await _login(wrong, "alice", "not the password")
            assert refused[2][0] == "error" and refused[2][1]["status"] == "bad_login"
        await owner.aclose()


async def test_lease_figures_count_under_rules() -> None:
    """The metrics' lease watcher is the broker's own session: under rules that give
    anonymous nothing on /meta it still counts grants and ends, while an anonymous websocket
    is refused the same lease events."""
    from roost.protocol import messages as m
    from tests.wire import v

    with broker(settings(CONFIG), listeners=[Listener("127.0.0.1", 0)], http_port=0) as b:
        gateway = b.broker.gateway
        assert gateway is not None
        owner = await user_wire(b.port, "owner")
        granted = await owner.request(m.LeaseAcquire(owner.next_id(), v({"resource": "r"})))
        assert granted.value.obj["status"] == "OK"
        token = granted.value.obj["lease"]["token"]
        # An opted-in holder hears its own return as a lease_revoked push before the reply.
        pushed = await owner.request(m.LeaseReturn(owner.next_id(), v({"token": token})))
        assert isinstance(pushed, m.LeaseRevoked) and pushed.body.obj["reason"] == "returned"
        returned = await owner.recv()
        assert returned.value.obj["status"] == "OK"  # type: ignore[union-attr]
        b.wait_until(lambda: gateway.leases.grants == 1 and bool(gateway.leases.ends))
        assert b.call(lambda: (gateway.leases.grants, dict(gateway.leases.ends))) == (
            1,
            {"returned": 1},
        )
        async with aiohttp.ClientSession() as http:
            ws = Ws(await http.ws_connect(f"http://127.0.0.1:{gateway.port}/ws"))
            await ws.hello()
            refused = await ws.request("event_listen", 2, "/meta/lease_events")
            assert refused == ["reply", 2, ["error", "forbidden"]]
            await ws.ws.close()
        await owner.aclose()


USERS_ONLY = """
[users]
owner = "{hash}"
"""


async def test_http_api_refused_where_anonymous_connections_are() -> None:
    """Where the broker accepts no anonymous connections, HTTP requests (which cannot log in)
    act on nothing: with users and no rules, a TCP client that does not log in is refused, and
    so are HTTP calls, gets and sets (403, naming why); the owner's action is never called."""
    from roost.protocol import messages as m
    from tests.wire import Wire, v

    closed = Listener("127.0.0.1", 0, anonymous=False)
    with broker(settings(USERS_ONLY), listeners=[closed], http_port=0) as b:
        gateway = b.broker.gateway
        assert gateway is not None
        owner = await user_wire(b.port, "owner")
        await owner.register("action", "/lab/fire")
        await owner.register("state", "/lab/t")
        await owner.call_ok(m.StateChanged(owner.next_id(), "/lab/t", v(1)))
        async with await Wire.connect(b.port) as stranger:
            await stranger.send(m.Hello(1, 30))
            await stranger.expect_closed()
        base = f"http://127.0.0.1:{gateway.port}"
        async with aiohttp.ClientSession() as http:
            for method, path, body in (
                ("POST", "/call/lab/fire", "[]"),
                ("GET", "/get/lab/t", None),
                ("POST", "/set/lab/t", "2"),
                ("POST", "/call/meta/ls", '["/"]'),
            ):
                async with http.request(method, base + path, data=body) as r:
                    assert r.status == 403, path
                    assert "accepts no anonymous requests" in await r.text()
            async with http.get(f"{base}/") as r:
                assert r.status == 200  # the dashboard's page, whose websocket logs in
        # Nothing reached the owner: the next message it gets is the answer to its own request.
        await owner.call_ok(m.StateChanged(owner.next_id(), "/lab/t", v(3)))
        await owner.aclose()
