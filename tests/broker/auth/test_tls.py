"""Real TLS handshakes on loopback: good certificate, wrong CA, expired certificate, client
certificate as identity."""

from __future__ import annotations

import datetime
import ssl
from pathlib import Path

import anyio
import pytest

from roost.broker.listeners import Listener
from roost.cli.certgen import make_ca, make_cert, write_pair
from roost.client import Client
from roost.client.auth import client_context
from roost.errors import ConnectFailed
from roost.protocol import messages as m
from tests.broker.auth.authkit import PASSWORD, broker, settings
from tests.wire import Wire, v

pytestmark = pytest.mark.anyio

CONFIG = """
[users]
alice = "{hash}"

[[acl]]
user = "alice"
paths = ["/alice/**"]
allow = ["all"]

[[acl]]
user = "sensor7"
paths = ["/sensors/7/**"]
allow = ["register"]
"""


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A CA, a server certificate for 127.0.0.1, a client certificate for ``sensor7``, and a
    second CA that signed nothing of ours; plus an expired server certificate."""
    root = tmp_path_factory.mktemp("pki")
    ca = make_ca()
    write_pair(root, "ca", ca)
    write_pair(root, "server", make_cert(ca, "127.0.0.1", hosts=["127.0.0.1", "localhost"]))
    write_pair(root, "sensor7", make_cert(ca, "sensor7", client=True))
    write_pair(root, "other", make_ca("another CA"))
    long_ago = datetime.datetime.now(datetime.UTC) - datetime.timedelta(days=30)
    write_pair(
        root,
        "expired",
        make_cert(ca, "127.0.0.1", hosts=["127.0.0.1"], days=1, not_before=long_ago),
    )
    return root


def _listener(pki: Path, stem: str = "server", **kw: object) -> Listener:
    return Listener(
        "127.0.0.1",
        0,
        tls_cert=str(pki / f"{stem}.pem"),
        tls_key=str(pki / f"{stem}.key"),
        **kw,  # type: ignore[arg-type]
    )


async def test_good_certificate_login_and_work(pki: Path) -> None:
    with broker(settings(CONFIG), listeners=[_listener(pki)]) as b:
        ctx = client_context(str(pki / "ca.pem"))
        async with await Wire.connect(b.port, ssl_context=ctx) as wire:
            reply = await wire.login("alice", PASSWORD)
            assert reply.value.obj == {"status": "OK", "user": "alice"}
            await wire.hello()
            await wire.register("action", "/alice/x")
        # The client library: tls:// URL, user and password.
        async with Client(
            server=f"tls://127.0.0.1:{b.port}", user="alice", password=PASSWORD, ssl_context=ctx
        ) as client:
            await client.action_register("/alice/y", lambda: 42)
            assert await client.action_call("/alice/y") == 42


async def test_wrong_ca_is_refused(pki: Path) -> None:
    with broker(settings(CONFIG), listeners=[_listener(pki)]) as b:
        ctx = client_context(str(pki / "other.pem"))
        with pytest.raises(ssl.SSLCertVerificationError):
            await anyio.connect_tcp("127.0.0.1", b.port, ssl_context=ctx)
        with pytest.raises(ConnectFailed, match="certificate verify failed"):
            async with Client(
                server=f"tls://127.0.0.1:{b.port}", ssl_context=ctx, retry_first_connect=False
            ):
                pass


async def test_expired_certificate_is_refused(pki: Path) -> None:
    with broker(settings(CONFIG), listeners=[_listener(pki, "expired")]) as b:
        ctx = client_context(str(pki / "ca.pem"))
        with pytest.raises(ssl.SSLCertVerificationError, match="expired"):
            await anyio.connect_tcp("127.0.0.1", b.port, ssl_context=ctx)


async def test_client_certificate_names_the_user(pki: Path) -> None:
    listener = _listener(pki, client_ca=str(pki / "ca.pem"), anonymous=False)
    with broker(settings(CONFIG), listeners=[listener]) as b:
        ctx = client_context(
            str(pki / "ca.pem"), str(pki / "sensor7.pem"), str(pki / "sensor7.key")
        )
        async with await Wire.connect(b.port, ssl_context=ctx) as wire:
            await wire.hello()  # no login: the certificate says who this is
            await wire.register("state", "/sensors/7/temp")
            rid = wire.next_id()
            assert await wire.request(m.StateRegister(rid, "/sensors/8/temp")) == m.ReplyError(
                rid, v("forbidden")
            )
        # Without a certificate: anonymous, which this listener does not accept.
        plain = client_context(str(pki / "ca.pem"))
        async with await Wire.connect(b.port, ssl_context=plain) as wire:
            await wire.send(m.Hello(1, 30))
            await wire.expect_closed()


async def test_required_client_certificate(pki: Path) -> None:
    listener = _listener(pki, client_ca=str(pki / "ca.pem"), require_client_cert=True)
    with broker(settings(CONFIG), listeners=[listener]) as b:
        plain = client_context(str(pki / "ca.pem"))
        # TLS 1.3 reports the missing certificate after the handshake: the first read fails.
        with pytest.raises((ssl.SSLError, anyio.BrokenResourceError, anyio.EndOfStream)):
            stream = await anyio.connect_tcp("127.0.0.1", b.port, ssl_context=plain)
            async with stream:
                await stream.send(b"G\x00\x03\x09\x00\x01")
                await stream.receive()


async def test_plain_and_tls_listeners_side_by_side(pki: Path) -> None:
    listeners = [Listener("127.0.0.1", 0), _listener(pki)]
    with broker(settings(CONFIG), listeners=listeners) as b:
        plain_port, tls_port = b.call(lambda: [a.sock.getsockname()[1] for a in b.broker.acceptors])
        async with await Wire.connect(plain_port) as wire:
            await wire.hello()
            await wire.assert_open()
        ctx = client_context(str(pki / "ca.pem"))
        async with await Wire.connect(tls_port, ssl_context=ctx) as wire:
            await wire.hello()
            await wire.assert_open()
