"""The gateway under access rules: its HTTP and websocket clients are ``anonymous``."""

from __future__ import annotations

import aiohttp
import pytest

from roost.broker.listeners import Listener
from tests.broker.auth.authkit import broker, settings, user_wire

pytestmark = pytest.mark.anyio

CONFIG = """
[users]
owner = "{hash}"

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
