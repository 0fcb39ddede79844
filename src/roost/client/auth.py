"""Client side of logins and TLS: server URLs, credentials, the login before hello.

Rules of this module:

- A server is ``host[:port]``, ``tcp://host[:port]`` or ``tls://host[:port]``; TLS uses the
  given ``ssl.SSLContext`` or the system's default one (certificate and host name checked).
- A password comes from the caller or a password file (its first line), never from a
  command line argument; the user from the caller or ``ROOST_USER``, the password file from
  the caller or ``ROOST_PASSWORD_FILE``.
- The login is one ``auth_login`` request before the hello (protocol.md E16). A broker that
  closes the connection instead does not offer logins: :class:`~roost.errors.AuthUnsupported`.
"""

from __future__ import annotations

import os
import ssl
from typing import Any, Final, Protocol

import anyio
import anyio.abc

from roost.errors import AuthUnsupported, ConnectionClosed, LoginFailed
from roost.protocol import messages as m
from roost.protocol.values import Value

__all__ = (
    "LOGIN_TIMEOUT",
    "client_context",
    "credentials",
    "login",
    "open_stream",
    "read_password_file",
    "split_scheme",
)


#: Seconds a login may take (the broker answers a wrong password only after a delay).
LOGIN_TIMEOUT: Final = 60.0


def split_scheme(server: str) -> tuple[bool, str]:
    """``(tls, "host[:port]")`` of a server address with an optional ``tcp://``/``tls://``.

    Raises:
        ValueError: another scheme.
    """
    scheme, sep, rest = server.partition("://")
    if not sep:
        return False, server
    if scheme not in ("tcp", "tls"):
        raise ValueError(f"bad server address {server!r}: the scheme must be tcp:// or tls://")
    return scheme == "tls", rest


def client_context(
    ca: str | None = None, cert: str | None = None, key: str | None = None
) -> ssl.SSLContext:
    """A TLS client context: trust ``ca`` (a PEM file; default: the system's CAs), present
    ``cert``/``key`` as client certificate if given; TLS 1.2 or newer.

    Raises:
        OSError, ssl.SSLError: a file cannot be read or does not hold what it should.
    """
    ctx = ssl.create_default_context(cafile=ca)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    if cert is not None:
        ctx.load_cert_chain(cert, key)
    return ctx


async def open_stream(
    host: str, port: int, ssl_context: ssl.SSLContext | None
) -> anyio.abc.ByteStream:
    """An anyio byte stream to ``host:port``, TLS with ``ssl_context``."""
    if ssl_context is None:
        return await anyio.connect_tcp(host, port)
    return await anyio.connect_tcp(
        host, port, ssl_context=ssl_context, tls_standard_compatible=False
    )


def read_password_file(path: str) -> str:
    """The password in ``path``: its first line without the line ending.

    Raises:
        OSError: the file cannot be read.
        ValueError: the file is empty.
    """
    with open(path, encoding="utf-8") as f:
        password = f.readline().rstrip("\r\n")
    if not password:
        raise ValueError(f"{path}: no password on the first line")
    return password


def credentials(
    user: str | None, password: str | None, password_file: str | None
) -> tuple[str | None, str | None]:
    """The user and password to log in with (``None``: do not log in), from the arguments,
    then ``ROOST_USER`` and ``ROOST_PASSWORD_FILE``.

    Raises:
        ValueError: a user without any password, or a password without a user.
    """
    user = user or os.environ.get("ROOST_USER") or None
    if password is None:
        password_file = password_file or os.environ.get("ROOST_PASSWORD_FILE") or None
        if password_file is not None:
            password = read_password_file(password_file)
    if password is not None and user is None:
        raise ValueError("a password was given without a user (user= or ROOST_USER)")
    return user, password


class _Link(Protocol):
    async def request(self, make: Any) -> m.Message: ...


async def login(link: _Link, user: str, password: str) -> None:
    """Log in on a fresh connection, before its hello.

    Raises:
        LoginFailed: the broker refused (the message says why).
        AuthUnsupported: the broker closed the connection instead of answering.
    """
    body = Value.of({"user": user, "password": password})
    try:
        # Shielded: a link cancels its task group when the broker closes the connection, and
        # here the close is the answer; the closing link fails the request, which says so.
        with anyio.CancelScope(shield=True), anyio.fail_after(LOGIN_TIMEOUT):
            reply = await link.request(lambda rid: m.AuthLogin(rid, body))
    except ConnectionClosed as exc:
        raise AuthUnsupported(
            "the broker closed the connection when asked to log in: it does not offer "
            "logins (a plain ESHET server, or roost without the auth extension)"
        ) from exc
    if isinstance(reply, m.ReplyOk):
        return
    obj = reply.value.obj if isinstance(reply, m.ReplyError) else None
    status = obj.get("status") if isinstance(obj, dict) else obj
    reason = obj.get("reason") if isinstance(obj, dict) else None
    raise LoginFailed(f"login as {user!r} refused: {reason or status}")
