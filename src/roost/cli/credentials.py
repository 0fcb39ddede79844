"""The login and TLS options every client command takes, and what they give the client.

Rules of this module:

- ``--user`` and ``--password-file`` (never a password on the command line), ``--tls-ca``,
  ``--tls-cert`` and ``--tls-key``; ``--tls-ca`` or ``--tls-cert`` make the connection TLS.
- The environment (``ROOST_USER``, ``ROOST_PASSWORD_FILE``) is read by the client library.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol

import click

__all__ = ("client_options", "options")

_OPTIONS = (
    ("--user", "NAME", "Log in as NAME [default: $ROOST_USER]; the password comes from a file."),
    (
        "--password-file",
        "FILE",
        "Read the password from FILE's first line [default: $ROOST_PASSWORD_FILE].",
    ),
    ("--tls-ca", "FILE", "Trust broker certificates this CA (PEM) signed; implies TLS."),
    ("--tls-cert", "FILE", "Client certificate (PEM) for mutual TLS; implies TLS."),
    ("--tls-key", "FILE", "Key of --tls-cert (default: in the same file)."),
)


def options(store: Callable[[click.Context, click.Parameter, Any], None]) -> list[Any]:
    """The click options, each stored by ``store`` (the command line's settings callback)."""
    return [
        click.option(
            flag, metavar=metavar, default=None, expose_value=False, callback=store, help=text
        )
        for flag, metavar, text in _OPTIONS
    ]


class _Settings(Protocol):
    @property
    def address(self) -> str: ...

    user: str | None
    password_file: str | None
    tls_ca: str | None
    tls_cert: str | None
    tls_key: str | None


def client_options(settings: _Settings, kwargs: dict[str, Any]) -> str:
    """Fill the client's ``user``, ``password_file`` and ``ssl_context`` into ``kwargs`` (where
    not given) and return the server address to use (``tls://`` added when TLS is asked for).

    Raises:
        OSError, ssl.SSLError: a certificate file cannot be used.
    """
    server = settings.address
    if settings.tls_ca or settings.tls_cert:
        from roost.client.auth import client_context  # noqa: PLC0415

        kwargs.setdefault(
            "ssl_context", client_context(settings.tls_ca, settings.tls_cert, settings.tls_key)
        )
        if "://" not in server:
            server = "tls://" + server
    kwargs.setdefault("user", settings.user)
    kwargs.setdefault("password_file", settings.password_file)
    return server
