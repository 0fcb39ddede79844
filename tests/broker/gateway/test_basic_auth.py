"""HTTP Basic credentials on the gateway's HTTP API: a request acts as its user, with that
user's grants; wrong ones get 401 after a delay; a reload forgets remembered passwords."""

from __future__ import annotations

import asyncio
import base64
import logging
from pathlib import Path

import aiohttp
import pytest

from roost.broker.auth.gate import audit_log
from roost.broker.auth.settings import AuthSettings, from_sections
from roost.broker.config import load_config
from roost.broker.listeners import Listener
from roost.protocol import messages as m
from tests.broker.auth.authkit import HASH, PASSWORD, broker, settings, user_wire
from tests.wire import Wire, v

pytestmark = pytest.mark.anyio

CONFIG = """
[users]
owner = "{hash}"
alice = "{hash}"

[[acl]]
user = "owner"
paths = ["/**"]
allow = ["all"]

[[acl]]
user = "alice"
paths = ["/lab/**"]
allow = ["all"]
"""


def _auth(user: str, password: str = PASSWORD) -> dict[str, str]:
    """The headers of a request with Basic credentials."""
    token = base64.b64encode(f"{user}:{password}".encode()).decode()
    return {"Authorization": f"Basic {token}"}


async def test_requests_act_as_their_user(caplog: pytest.LogCaptureFixture) -> None:
    """alice's call reaches the owner and is answered; her get outside her rules is
    forbidden (audited as hers), as is anything for an anonymous request; the figures need
    admin."""
    caplog.set_level(logging.WARNING, audit_log.name)
    with broker(settings(CONFIG), http_port=0) as b:
        gateway = b.broker.gateway
        assert gateway is not None
        base = f"http://127.0.0.1:{gateway.port}"
        owner = await user_wire(b.port, "owner")
        await owner.register("action", "/lab/echo")
        await owner.register("state", "/house/t")
        await owner.call_ok(m.StateChanged(owner.next_id(), "/house/t", v(1)))
        async with aiohttp.ClientSession() as http:
            answer = asyncio.ensure_future(
                http.post(f"{base}/call/lab/echo", data="[7]", headers=_auth("alice"))
            )
            call = await owner.recv_as(m.ActionCall)
            assert call.path == "/lab/echo" and call.args.obj == [7]
            await owner.send(m.ReplyOk(call.id, v("seven")))
            async with await answer as r:
                assert (r.status, await r.json()) == (200, "seven")
            async with http.get(f"{base}/get/house/t", headers=_auth("alice")) as r:
                assert (r.status, await r.json()) == (520, "forbidden")
            async with http.post(f"{base}/call/lab/echo", data="[1]") as r:
                assert (r.status, await r.json()) == (520, "forbidden")
            async with http.get(f"{base}/get/house/t", headers=_auth("owner")) as r:
                assert (r.status, await r.json()) == (200, 1)
            async with http.get(f"{base}/metrics", headers=_auth("alice")) as r:
                assert r.status == 403
                assert "need admin on /meta" in await r.text()
        await owner.aclose()
    audited = [r.getMessage() for r in caplog.records if r.name == audit_log.name]
    assert "forbidden: user=alice peer=gateway get /house/t" in audited
    assert "forbidden: user=anonymous peer=gateway call /lab/echo" in audited


async def test_wrong_credentials(caplog: pytest.LogCaptureFixture) -> None:
    """A wrong password and an unknown user get 401 with a Basic challenge, audited with
    the reason; a malformed header gets 400; nothing reaches the owner."""
    caplog.set_level(logging.WARNING, audit_log.name)
    with broker(settings(CONFIG), http_port=0) as b:
        gateway = b.broker.gateway
        assert gateway is not None
        base = f"http://127.0.0.1:{gateway.port}"
        owner = await user_wire(b.port, "owner")
        await owner.register("action", "/lab/echo")
        async with aiohttp.ClientSession() as http:
            for auth in (_auth("alice", "wrong"), _auth("mallory")):
                async with http.post(f"{base}/call/lab/echo", data="[]", headers=auth) as r:
                    assert r.status == 401
                    assert r.headers["WWW-Authenticate"].startswith('Basic realm="roost"')
                    assert await r.text() == "wrong user name or password"
            headers = {"Authorization": "Basic not-base64!"}
            async with http.post(f"{base}/call/lab/echo", data="[]", headers=headers) as r:
                assert r.status == 400
        audited = [r.getMessage() for r in caplog.records if r.name == audit_log.name]
        assert any("user=alice" in line and "wrong password" in line for line in audited)
        assert any("user=mallory" in line and "unknown user" in line for line in audited)
        # Nothing reached the owner: the next message it gets answers its own request.
        await owner.call_ok(m.EventRegister(owner.next_id(), "/lab/ev"))
        await owner.aclose()


async def test_credentials_where_anonymous_and_passwords_are_refused() -> None:
    """On an address without anonymous access, credentials open the HTTP API; on one
    without password logins, credentials are refused with 403 naming why."""
    closed = Listener("127.0.0.1", 0, anonymous=False)
    with broker(settings(CONFIG), listeners=[closed], http_port=0) as b:
        gateway = b.broker.gateway
        assert gateway is not None
        base = f"http://127.0.0.1:{gateway.port}"
        async with aiohttp.ClientSession() as http:
            async with http.get(f"{base}/get/meta/broker") as r:
                assert r.status == 403
            async with http.get(f"{base}/get/meta/broker", headers=_auth("owner")) as r:
                assert r.status == 200
                assert (await r.json())["name"] == "roost"
    no_passwords = Listener("127.0.0.1", 0, password_login=False)
    with broker(settings(CONFIG), listeners=[no_passwords], http_port=0) as b:
        gateway = b.broker.gateway
        assert gateway is not None
        base = f"http://127.0.0.1:{gateway.port}"
        async with (
            aiohttp.ClientSession() as http,
            http.get(f"{base}/get/meta/broker", headers=_auth("owner")) as r,
        ):
            assert r.status == 403
            assert "password logins need TLS or loopback" in await r.text()


async def test_reload_forgets_remembered_passwords(tmp_path: Path) -> None:
    """A password that worked stops working once a reload changes it, and the new one works."""
    from roost.broker.auth.users import hash_password

    path = tmp_path / "roost.toml"
    path.write_text(CONFIG.replace("{hash}", HASH))
    first = from_sections(load_config(path).get)
    auth = AuthSettings(
        first.users,
        first.rules,
        login_delay=0.01,
        reload=lambda: from_sections(load_config(path).get),
    )
    with broker(auth, http_port=0) as b:
        gateway = b.broker.gateway
        assert gateway is not None
        url = f"http://127.0.0.1:{gateway.port}/get/meta/broker"
        async with aiohttp.ClientSession() as http:
            async with http.get(url, headers=_auth("owner")) as r:
                assert r.status == 200
            path.write_text(CONFIG.replace("{hash}", hash_password("new secret")))
            assert b.call(b.broker.reload) == (2, 2)
            async with http.get(url, headers=_auth("owner")) as r:
                assert r.status == 401
            async with http.get(url, headers=_auth("owner", "new secret")) as r:
                assert r.status == 200


async def test_http_and_native_failures_are_counted_together() -> None:
    """A wrong HTTP password counts as a failure of its address for native logins too."""
    with broker(settings(CONFIG), http_port=0) as b:
        gateway = b.broker.gateway
        assert gateway is not None
        url = f"http://127.0.0.1:{gateway.port}/get/meta/broker"
        async with (
            aiohttp.ClientSession() as http,
            http.get(url, headers=_auth("owner", "wrong")) as r,
        ):
            assert r.status == 401
        wire = await Wire.connect(b.port)
        reply = await wire.login("owner", "wrong too")
        assert reply.value.obj["status"] == "bad_login"
        await wire.aclose()
        access = b.broker._access
        assert access is not None
        failures = access.host_failures
        assert b.call(lambda: failures.failed("127.0.0.1", b.loop.time())) == 3
