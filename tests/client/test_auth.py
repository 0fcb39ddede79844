"""Client logins: credentials, refusals, and a broker without the auth extension."""

from __future__ import annotations

from pathlib import Path

import anyio
import anyio.abc
import pytest

from roost.client import Client
from roost.client.auth import credentials, split_scheme
from roost.errors import AuthUnsupported, LoginFailed
from tests.broker.auth.authkit import PASSWORD, broker, settings

pytestmark = pytest.mark.anyio

CONFIG = """
[users]
alice = "{hash}"

[[acl]]
user = "alice"
paths = ["/alice/**"]
allow = ["all"]
"""


def test_split_scheme() -> None:
    assert split_scheme("tls://h:1") == (True, "h:1")
    assert split_scheme("tcp://h") == (False, "h")
    assert split_scheme("h:2") == (False, "h:2")
    with pytest.raises(ValueError, match="tcp:// or tls://"):
        split_scheme("http://h")


def test_credentials(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("ROOST_USER", raising=False)
    monkeypatch.delenv("ROOST_PASSWORD_FILE", raising=False)
    assert credentials(None, None, None) == (None, None)
    pw = tmp_path / "pw"
    pw.write_text("secret\r\nignored\n")
    assert credentials("a", None, str(pw)) == ("a", "secret")
    monkeypatch.setenv("ROOST_USER", "env")
    monkeypatch.setenv("ROOST_PASSWORD_FILE", str(pw))
    assert credentials(None, None, None) == ("env", "secret")
    monkeypatch.delenv("ROOST_USER")
    with pytest.raises(ValueError, match="without a user"):
        credentials(None, None, None)


async def test_login_and_refusal() -> None:
    with broker(settings(CONFIG)) as b:
        async with Client(server=b.address, user="alice", password=PASSWORD) as client:
            await client.action_register("/alice/a", lambda: "hi")
            assert await client.action_call("/alice/a") == "hi"
        with pytest.raises(LoginFailed, match="wrong user name or password"):
            async with Client(server=b.address, user="alice", password="nope"):
                pass


async def test_broker_without_auth_extension() -> None:
    """A broker that closes the connection on the login message (as an ESHET server does
    on an unknown type) gets a clear AuthUnsupported, not endless retries."""

    async def handle(stream: anyio.abc.SocketStream) -> None:
        async with stream:
            await stream.receive()  # the login frame; an unknown type: close

    listener = await anyio.create_tcp_listener(local_host="127.0.0.1", local_port=0)
    port = listener.extra(anyio.abc.SocketAttribute.local_port)
    async with listener, anyio.create_task_group() as tg:
        tg.start_soon(listener.serve, handle)
        with pytest.raises(AuthUnsupported, match="does not offer logins"):
            async with Client(server=f"127.0.0.1:{port}", user="alice", password="x"):
                pass
        tg.cancel_scope.cancel()


DELEGATION = """
[users]
alice = "{hash}"
eve = "{hash}"
scope = "{hash}"

[[acl]]
user = "scope"
paths = ["/lab/**"]
allow = ["register"]

[[acl]]
user = "alice"
paths = ["/lab/**"]
allow = ["lease", "call"]

[[acl]]
user = "eve"
paths = ["/lab/**"]
allow = ["call"]
"""


async def test_lease_delegate() -> None:
    from roost.errors import NotHolder

    with broker(settings(DELEGATION)) as b:
        async with (
            Client(server=b.address, user="scope", password=PASSWORD) as scope,
            Client(server=b.address, user="alice", password=PASSWORD) as alice,
            Client(server=b.address, user="eve", password=PASSWORD) as eve,
        ):
            await scope.action_register("/lab/scope", lambda: "zap", lease="lab/scope")
            held = await alice.lease_acquire("lab/scope")
            sub = await alice.lease_delegate(held, "eve")
            assert await eve.action_call("/lab/scope", lease=sub) == "zap"
            with pytest.raises(NotHolder):
                await eve.action_call("/lab/scope", lease=held)
            with pytest.raises(NotHolder):
                await eve.lease_delegate(held, "eve")


async def test_client_is_told_when_a_reload_takes_access(tmp_path: Path) -> None:
    import logging

    from roost.broker.auth.settings import AuthSettings, from_sections
    from roost.broker.config import load_config
    from roost.protocol import messages as m
    from tests.broker.auth.authkit import HASH, user_wire
    from tests.wire import v

    config = tmp_path / "roost.toml"
    text = CONFIG.replace("{hash}", HASH) + '\n[[acl]]\nuser = "alice"\npaths = ["/meta/**"]\n'
    config.write_text(text + 'allow = ["admin"]\n')
    first = from_sections(load_config(config).get)
    auth = AuthSettings(
        first.users, first.rules, 0.01, reload=lambda: from_sections(load_config(config).get)
    )
    told = anyio.Event()
    records: list[logging.LogRecord] = []

    class Catch(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            if "access rules changed" in record.getMessage():
                records.append(record)
                told.set()

    handler = Catch()
    logging.getLogger("roost.client").addHandler(handler)
    try:
        with broker(auth) as b:
            async with Client(server=b.address, user="alice", password=PASSWORD) as client:
                await client.action_register("/alice/a", lambda: 1)
                config.write_text(
                    text.replace('"/alice/**"', '"/elsewhere/**"') + 'allow = ["admin"]\n'
                )
                admin = await user_wire(b.port, "alice")
                reply = await admin.request(m.AuthReload(admin.next_id(), v({})))
                assert isinstance(reply, m.ReplyOk), reply
                with anyio.fail_after(5):
                    await told.wait()
                await admin.aclose()
        assert "/alice/a" in records[0].getMessage()
    finally:
        logging.getLogger("roost.client").removeHandler(handler)
