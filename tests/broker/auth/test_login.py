"""Logins, anonymous access, id takeover and reload, over real connections on loopback."""

from __future__ import annotations

import anyio
import pytest

from roost.broker.auth.settings import AuthSettings
from roost.broker.listeners import Listener
from roost.protocol import messages as m
from tests.broker.auth.authkit import HASH, PASSWORD, broker, settings, user_wire
from tests.broker.leasekit import lease
from tests.wire import Wire, v

pytestmark = pytest.mark.anyio

CONFIG = """
[users]
alice = "{hash}"
bob = "{hash}"
admin = "{hash}"

[groups]
kitchen = ["alice", "bob"]

[[acl]]
group = "kitchen"
paths = ["/kitchen/**"]
allow = ["all"]

[[acl]]
user = "anonymous"
paths = ["/public/**"]
allow = ["get", "observe", "listen", "call"]

[[acl]]
user = "admin"
paths = ["/**"]
allow = ["all"]
"""


def _status(reply: object) -> object:
    assert isinstance(reply, (m.ReplyOk, m.ReplyError)), reply
    obj = reply.value.obj
    return obj.get("status") if isinstance(obj, dict) else obj


async def test_wrong_password_unknown_user_clear_error_no_session() -> None:
    with broker(settings(CONFIG)) as b:
        async with await Wire.connect(b.port) as wire:
            reply = await wire.login("alice", "wrong")
            assert isinstance(reply, m.ReplyError)
            assert reply.value.obj == {
                "status": "bad_login",
                "reason": "wrong user name or password",
            }
            reply = await wire.login("mallory", PASSWORD)
            assert reply.value.obj == {
                "status": "bad_login",
                "reason": "wrong user name or password",
            }
            # Still anonymous: the kitchen stays closed.
            await wire.hello()
            rid = wire.next_id()
            assert await wire.request(m.ActionRegister(rid, "/kitchen/x")) == m.ReplyError(
                rid, v("forbidden")
            )
        assert b.call(lambda: "/kitchen/x" not in b.broker.router.tree.nodes)


async def test_third_failure_closes_the_connection() -> None:
    with broker(settings(CONFIG)) as b:
        async with await Wire.connect(b.port) as wire:
            for _ in range(2):
                assert _status(await wire.login("alice", "nope")) == "bad_login"
            assert _status(await wire.login("alice", "nope")) == "bad_login"
            await wire.expect_closed()


async def test_second_login_while_one_is_pending_is_busy() -> None:
    # A long delay keeps the failed login pending while the second one arrives.
    with broker(settings(CONFIG, delay=30.0)) as b:
        async with await Wire.connect(b.port) as wire:
            body = v({"user": "alice", "password": "nope"})
            await wire.send(m.AuthLogin(1, body), m.AuthLogin(2, body))
            reply = await wire.recv()
            assert reply == m.ReplyError(
                2, v({"status": "busy", "reason": "a login is already in progress"})
            )


async def test_login_after_hello_is_refused() -> None:
    with broker(settings(CONFIG)) as b:
        async with await Wire.connect(b.port) as wire:
            await wire.hello()
            assert _status(await wire.login("alice", PASSWORD)) == "bad_args"


async def test_login_with_bad_body() -> None:
    with broker(settings(CONFIG)) as b:
        async with await Wire.connect(b.port) as wire:
            reply = await wire.request(m.AuthLogin(3, v(["alice"])))
            assert _status(reply) == "bad_args"


async def test_login_required_where_anonymous_is_off() -> None:
    listener = Listener("127.0.0.1", 0, anonymous=False)
    with broker(settings(CONFIG), listeners=[listener]) as b:
        async with await Wire.connect(b.port) as wire:
            await wire.send(m.Hello(1, 30), m.ActionRegister(1, "/kitchen/y"))
            await wire.expect_closed()
        assert b.call(lambda: "/kitchen/y" not in b.broker.router.tree.nodes)
        wire = await user_wire(b.port, "alice")
        await wire.register("action", "/kitchen/y")
        await wire.aclose()


async def test_password_login_refused_where_passwords_are_off() -> None:
    # A plain listener on the network refuses passwords by default; password_login=False
    # gives a loopback listener the same rule.
    listener = Listener("127.0.0.1", 0, password_login=False)
    with broker(settings(CONFIG), listeners=[listener]) as b:
        async with await Wire.connect(b.port) as wire:
            reply = await wire.login("alice", PASSWORD)
            assert _status(reply) == "forbidden"
            assert "TLS" in reply.value.obj["reason"]


async def test_raw_eshet_client_anonymous_allowed_and_refused() -> None:
    """An unmodified ESHET client: no extension message, works within the anonymous rules."""
    with broker(settings(CONFIG)) as b:
        owner = await user_wire(b.port, "admin")
        await owner.register("state", "/public/temp")
        await owner.call_ok(m.StateChanged(owner.next_id(), "/public/temp", v(21)))
        async with await Wire.connect(b.port) as eshet:
            await eshet.hello()
            assert await eshet.request(m.Get(7, "/public/temp")) == m.ReplyOk(7, v(21))
            assert await eshet.request(m.StateObserve(8, "/public/temp")) == m.ReplyStateKnown(
                8, v(21)
            )
            for msg in (
                m.ActionRegister(9, "/public/a"),
                m.Set(10, "/public/temp", v(1)),
                m.Get(11, "/kitchen/light"),
                m.EventEmit(12, "/public/ev", v(1)),
            ):
                assert await eshet.request(msg) == m.ReplyError(msg.id, v("forbidden"))
            # /meta/ls shows it only what it may see.
            reply = await eshet.ls("/")
            assert reply.value.obj == ["dir", [["meta", "dir"], ["public", "dir"]]]
            reply = await eshet.ls("/meta")
            assert reply.value.obj == ["dir", [["broker", "state"], ["ls", "action"]]]
            assert await eshet.request(m.Get(13, "/meta/clients")) == m.ReplyError(
                13, v("forbidden")
            )
            await eshet.assert_open()
        await owner.aclose()


async def test_takeover_by_another_user_refused_same_user_allowed() -> None:
    with broker(settings(CONFIG)) as b:
        alice = await Wire.connect(b.port)
        await alice.login("alice", PASSWORD)
        await alice.hello(client_id="lamp")
        await alice.register("action", "/kitchen/lamp")
        # Bob may not take alice's id: his connection is closed, alice keeps hers.
        bob = await Wire.connect(b.port)
        await bob.login("bob", PASSWORD)
        await bob.send(m.HelloId(1, 30, v("lamp")))
        await bob.expect_closed()
        await alice.assert_open()
        # An anonymous ESHET client may not either.
        anon = await Wire.connect(b.port)
        await anon.send(m.HelloId(1, 30, v("lamp")))
        await anon.expect_closed()
        await alice.assert_open()
        # Alice reconnecting takes over her own id, as ESHET clients do.
        again = await Wire.connect(b.port)
        await again.login("alice", PASSWORD)
        await again.hello(client_id="lamp")
        await alice.expect_closed()
        await again.register("action", "/kitchen/lamp")
        for wire in (alice, bob, anon, again):
            await wire.aclose()


async def test_reload_revokes_live_access_and_says_why(tmp_path: object) -> None:
    from pathlib import Path

    from roost.broker.auth.settings import from_sections
    from roost.broker.config import load_config

    assert isinstance(tmp_path, Path)
    path = tmp_path / "roost.toml"
    path.write_text(CONFIG.replace("{hash}", HASH))
    first = from_sections(load_config(path).get)
    auth = AuthSettings(
        first.users,
        first.rules,
        login_delay=0.01,
        reload=lambda: from_sections(load_config(path).get),
    )
    with broker(auth) as b:
        alice = await Wire.connect(b.port)
        await alice.login("alice", PASSWORD)  # the login opts in to extension pushes
        await alice.hello()
        await alice.register("action", "/kitchen/lamp")
        await alice.call_ok(m.EventListen(alice.next_id(), "/kitchen/door"))
        grant = await lease(alice, m.LeaseAcquire, resource="kitchen/oven")
        assert grant.status == "OK", grant
        eshet = await user_wire(b.port, None)
        assert await eshet.request(m.StateObserve(1, "/public/t")) == m.ReplyStateUnknown(1)
        # Alice leaves the kitchen group; anonymous loses /public.
        path.write_text(
            CONFIG.replace("{hash}", HASH)
            .replace('kitchen = ["alice", "bob"]', 'kitchen = ["bob"]')
            .replace('paths = ["/public/**"]', 'paths = ["/elsewhere/**"]')
        )
        admin = await user_wire(b.port, "admin")
        reply = await admin.request(m.AuthReload(admin.next_id(), v({})))
        assert reply.value.obj == {"status": "OK", "users": 3, "rules": 3}
        revoked = await alice.recv_as(m.LeaseRevoked)
        assert revoked.body.obj["reason"] == "access_revoked"
        assert revoked.body.obj["resource"] == "kitchen/oven"
        notice = await alice.recv_as(m.AccessChanged)
        assert notice.body.obj == {
            "reason": "access rules changed",
            "dropped": ["/kitchen/lamp", "/kitchen/door"],
            "leases": ["kitchen/oven"],
        }
        assert b.call(lambda: "/kitchen/lamp" not in b.broker.router.tree.nodes)
        rid = alice.next_id()
        assert await alice.request(m.ActionRegister(rid, "/kitchen/lamp")) == m.ReplyError(
            rid, v("forbidden")
        )
        # The ESHET client is told nothing on the wire (it never opted in), but it no longer
        # gets the state's notifications, and a new observe is refused.
        await admin.register("state", "/public/t")
        await admin.call_ok(m.StateChanged(admin.next_id(), "/public/t", v(5)))
        await eshet.expect_silence(0.2)
        assert await eshet.request(m.StateObserve(2, "/public/t")) == m.ReplyError(
            2, v("forbidden")
        )
        # Not an admin: reload refused.
        reply = await alice.request(m.AuthReload(alice.next_id(), v({})))
        assert _status(reply) == "forbidden"
        for wire in (alice, eshet, admin):
            await wire.aclose()


async def test_no_rules_means_no_access_control() -> None:
    with broker(settings('[users]\nalice = "{hash}"\n')) as b:
        anon = await user_wire(b.port, None)
        await anon.register("action", "/anything")
        alice = await user_wire(b.port, "alice")
        await alice.register("action", "/else")
        await anon.aclose()
        await alice.aclose()


async def test_rules_but_none_for_the_user_deny_everything() -> None:
    with broker(settings(CONFIG)) as b:
        async with anyio.create_task_group():
            anon = await user_wire(b.port, None)
            for msg in (
                m.ActionRegister(1, "/x"),
                m.ActionCall(2, "/x", v([])),
                m.Get(3, "/x"),
                m.Set(4, "/x", v(1)),
                m.StateObserve(5, "/x"),
                m.EventListen(6, "/x"),
                m.EventEmit(7, "/x", v(1)),
            ):
                assert await anon.request(msg) == m.ReplyError(msg.id, v("forbidden")), msg
            await anon.aclose()
