"""Listeners: where the broker accepts connections, plain TCP or TLS, and who may use them.

Rules of this module:

- A broker has one or more listeners (``[[listener]]`` tables, or ``--host``/``--port``). Each
  is plain TCP or TLS (stdlib ``ssl``, TLS 1.2 or newer); a TLS listener with ``client_ca``
  asks for client certificates, and a verified certificate's subject common name is the
  connection's user (mutual TLS).
- Secure by default (:func:`check_exposure`): a listener on a non-loopback address needs users
  or rules, or an explicit ``anonymous = true`` / ``--allow-anonymous`` (then a warning).
- Password login on a plain listener that is not loopback is refused unless the listener says
  ``password_login = true``: the password would cross the network in clear.
- :func:`start_listeners` binds them for the server (all or none, through ``guard``'s
  acceptors); nothing else here does I/O.
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import os
import ssl
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final, Protocol

from roost.broker.guard import Acceptor, bind_sockets
from roost.broker.limits import Limits
from roost.errors import ConfigError

__all__ = (
    "DEFAULT_PORT",
    "Listener",
    "check_exposure",
    "is_loopback",
    "parse_listeners",
    "peer_user",
    "server_context",
    "start_listeners",
)

DEFAULT_PORT: Final = 11236
_log = logging.getLogger("roost.broker")
_KEYS: Final = (
    "host",
    "port",
    "tls_cert",
    "tls_key",
    "client_ca",
    "require_client_cert",
    "anonymous",
    "password_login",
)


def is_loopback(host: str) -> bool:
    """True for ``localhost`` and loopback addresses (127.0.0.0/8, ::1)."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


@dataclass(frozen=True, slots=True)
class Listener:
    """One address the broker listens on.

    Attributes:
        host, port: the address (port 0 picks a free one).
        tls_cert, tls_key: PEM files of the server certificate (chain) and its key; TLS if set.
        client_ca: PEM file of the CA that signs client certificates (mutual TLS).
        require_client_cert: refuse TLS clients without a certificate from ``client_ca``.
        anonymous: accept connections that do not log in (as user ``anonymous``); ``None``
            means yes on loopback, else only with ``--allow-anonymous``.
        password_login: accept password logins; ``None`` means yes on TLS or loopback.
    """

    host: str = "127.0.0.1"
    port: int = DEFAULT_PORT
    tls_cert: str | None = None
    tls_key: str | None = None
    client_ca: str | None = None
    require_client_cert: bool = False
    anonymous: bool | None = None
    password_login: bool | None = None

    @property
    def tls(self) -> bool:
        """True if this listener speaks TLS."""
        return self.tls_cert is not None

    @property
    def loopback(self) -> bool:
        """True if only this machine can reach the listener."""
        return is_loopback(self.host)

    def allows_anonymous(self, allow_anonymous: bool = False) -> bool:
        """True if a connection may skip login here (``allow_anonymous``: the serve flag)."""
        if self.anonymous is not None:
            return self.anonymous
        return self.loopback or allow_anonymous

    def allows_passwords(self) -> bool:
        """True if password logins are accepted here."""
        if self.password_login is not None:
            return self.password_login
        return self.tls or self.loopback

    def describe(self) -> str:
        """``tls://host:port`` or ``tcp://host:port`` for logs."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{'tls' if self.tls else 'tcp'}://{host}:{self.port}"


def server_context(listener: Listener) -> ssl.SSLContext | None:
    """The TLS context of ``listener`` (``None`` for plain TCP): TLS 1.2 or newer, the server
    certificate, and client certificate checks when ``client_ca`` is set.

    Raises:
        OSError, ssl.SSLError: a certificate or key file cannot be read or does not match.
    """
    if listener.tls_cert is None:
        return None
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    ctx.load_cert_chain(listener.tls_cert, listener.tls_key)
    if listener.client_ca is not None:
        ctx.load_verify_locations(cafile=listener.client_ca)
        ctx.verify_mode = ssl.CERT_REQUIRED if listener.require_client_cert else ssl.CERT_OPTIONAL
    return ctx


class _Transport(Protocol):
    def get_extra_info(self, name: str, default: Any = None) -> Any: ...


def peer_user(transport: _Transport) -> str | None:
    """The user a verified client certificate names (its subject common name), if any."""
    cert = transport.get_extra_info("peercert")
    if not cert:
        return None
    for rdn in cert.get("subject", ()):
        for key, value in rdn:
            if key == "commonName" and isinstance(value, str):
                return value
    return None


def check_exposure(
    listeners: Sequence[Listener], *, users: bool, rules: bool, allow_anonymous: bool
) -> list[str]:
    """Decide whether these listeners may start; return the warnings to log.

    Raises:
        ValueError: a non-loopback listener with no users, no rules and no client certificates
            that does not allow anonymous access explicitly (nobody could use it, or everybody
            could do everything), or a TLS key without a certificate.
    """
    warnings: list[str] = []
    for listener in listeners:
        if listener.loopback:
            continue
        name = listener.describe()
        anonymous = listener.allows_anonymous(allow_anonymous)
        if not anonymous and not users and listener.client_ca is None:
            if rules:
                raise ValueError(
                    f"{name}: anonymous access is off and there are no users or client "
                    "certificates, so nobody could connect"
                )
            raise ValueError(
                f"{name} is reachable from the network and no users or access rules are "
                "configured; configure them (see docs/howto/network.md) or pass "
                "--allow-anonymous to let everybody do everything"
            )
        if anonymous and not rules:
            warnings.append(
                f"{name} allows anonymous access with no access rules: anybody who can reach "
                "it may do everything"
            )
        elif not rules:
            warnings.append(f"{name}: no access rules, so every user may do everything")
        if listener.allows_passwords() and not listener.tls:
            warnings.append(f"{name}: passwords cross the network in clear (no TLS)")
    return warnings


class _Where(Protocol):
    @property
    def path(self) -> str: ...

    def sub(self, name: str | int) -> Any: ...

    def error(self, problem: str, key: str | None = None) -> ConfigError: ...

    def table(self, value: object, known: Sequence[str]) -> Mapping[str, Any]: ...

    def integer(self, table: Mapping[str, Any], key: str, default: int, minimum: int) -> int: ...

    def boolean(self, table: Mapping[str, Any], key: str, default: bool) -> bool: ...

    def string(self, table: Mapping[str, Any], key: str, default: str | None = None) -> str: ...


def parse_listeners(value: object, where: _Where) -> tuple[Listener, ...]:
    """Parse ``[[listener]]`` tables (the parser registered in the config's SECTIONS); file
    names are relative to the configuration file.

    Raises:
        ConfigError: not an array of tables, an unknown key, a bad value, ``tls_key`` without
            ``tls_cert`` (or the reverse), or ``client_ca`` without TLS.
    """
    if not isinstance(value, list) or not value:
        raise where.error("must be one or more [[listener]] tables")
    out: list[Listener] = []
    for i, item in enumerate(value):
        at = where.sub(i)
        table = at.table(item, _KEYS)
        port = at.integer(table, "port", DEFAULT_PORT, 0)
        if port > 65535:
            raise at.error(f"must be a port number 0-65535, not {port}", "port")
        optional: dict[str, Any] = {}
        base = os.path.dirname(os.path.abspath(where.path))
        for key in ("tls_cert", "tls_key", "client_ca"):
            # Relative to the configuration file, like users_file.
            optional[key] = os.path.join(base, at.string(table, key)) if key in table else None
        for key in ("anonymous", "password_login"):
            optional[key] = at.boolean(table, key, False) if key in table else None
        if (optional["tls_cert"] is None) != (optional["tls_key"] is None):
            raise at.error("tls_cert and tls_key go together", "tls_key")
        if optional["client_ca"] is not None and optional["tls_cert"] is None:
            raise at.error("client certificates need TLS (tls_cert, tls_key)", "client_ca")
        require = at.boolean(table, "require_client_cert", False)
        if require and optional["client_ca"] is None:
            raise at.error("needs client_ca", "require_client_cert")
        out.append(
            Listener(
                host=at.string(table, "host", "127.0.0.1"),
                port=port,
                require_client_cert=require,
                **optional,
            )
        )
    return tuple(out)


async def start_listeners(
    loop: asyncio.AbstractEventLoop,
    listeners: Sequence[Listener],
    protocol: Callable[[Listener], asyncio.Protocol],
    count: Callable[[], int],
    limits: Limits,
) -> list[Acceptor]:
    """Bind every listener and start accepting (``protocol(listener)`` makes each connection's
    protocol; ``count`` and ``limits`` bound the connections, as ``guard.Acceptor`` says); log
    where. On any failure the ones already bound are closed and the error raised.

    Raises:
        OSError, ssl.SSLError: an address cannot be bound, or a TLS file cannot be used.
    """
    contexts = [server_context(listener) for listener in listeners]
    acceptors: list[Acceptor] = []
    try:
        for listener, ctx in zip(listeners, contexts, strict=True):
            for sock in await bind_sockets(listener.host, listener.port):
                acceptor = Acceptor(
                    loop,
                    sock,
                    lambda listener=listener: protocol(listener),  # type: ignore[misc]
                    count,
                    limits,
                    ssl=ctx,
                )
                acceptors.append(acceptor)
                port = int(sock.getsockname()[1])
                _log.info(
                    "listening on %s:%d%s",
                    listener.host,
                    port,
                    " (TLS)" if ctx is not None else "",
                    extra={"host": listener.host, "port": port, "tls": ctx is not None},
                )
    except BaseException:
        for acceptor in acceptors:
            acceptor.close()
        raise
    for acceptor in acceptors:
        acceptor.start()
    return acceptors
