"""What ``roost call`` and ``roost set`` show a guarded node: a lease token or a lock key.

Rules of this module:

- ``--lease RES`` acquires RES on the command's own connection for the one request (failing at
  once, naming the holders, if others hold it) and returns it afterwards.
- Without it, ``ROOST_LEASE_TOKEN`` (exported by ``roost lease hold``) is sent as the token; a
  broker without leases gets the plain request, since it guards nothing.
- ``--key-file F`` (or ``ROOST_LOCK_KEY``) proves a durable lock instead: the broker forwards the
  request with the lock's token when the key opens the lock covering the node.
"""

from __future__ import annotations

import json
import os
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import click

if TYPE_CHECKING:
    from roost.client import Client

__all__ = ("LEASE_ENV", "LOCK_KEY_ENV", "Proof", "proof_options", "proving", "read_key_file")

#: The environment variable ``roost lease hold`` exports the token in (JSON).
LEASE_ENV = "ROOST_LEASE_TOKEN"
#: The environment variable a lock key may come from (``--key-file`` wins).
LOCK_KEY_ENV = "ROOST_LOCK_KEY"

F = TypeVar("F", bound=Callable[..., Any])


def proof_options(f: F) -> F:
    """``--lease RES`` and ``--key-file F`` for commands that may reach a guarded node."""
    f = click.option(
        "--key-file",
        type=click.Path(dir_okay=False, path_type=Path),
        default=None,
        help=f"Prove a durable lock with the key in this file (or ${LOCK_KEY_ENV}).",
    )(f)
    f = click.option(
        "--lease",
        "lease_resource",
        metavar="RES",
        default=None,
        help=f"Hold RES for this request (else the token in ${LEASE_ENV} is used, if set).",
    )(f)
    return f


def read_key_file(path: Path) -> str:
    """The key in ``path``: its text without the trailing newline.

    Raises:
        click.UsageError: the file cannot be read or is empty.
    """
    try:
        key = path.read_text(encoding="utf-8").rstrip("\r\n")
    except (OSError, UnicodeDecodeError) as exc:
        raise click.UsageError(f"cannot read the key file {path}: {exc}") from exc
    if not key:
        raise click.UsageError(f"the key file {path} is empty")
    return key


class Proof:
    """The token or key to send with one request (neither: a plain request)."""

    def __init__(self, token: dict[str, Any] | None = None, key: str | None = None) -> None:
        self.token = token
        self.key = key


def _env_token() -> dict[str, Any] | None:
    raw = os.environ.get(LEASE_ENV)
    if not raw:
        return None
    try:
        token = json.loads(raw)
    except ValueError as exc:
        raise click.UsageError(f"${LEASE_ENV} is not JSON: {exc}") from exc
    if not isinstance(token, dict):
        raise click.UsageError(f"${LEASE_ENV} is not a token (a JSON object)")
    return token


def key_of(key_file: Path | None) -> str | None:
    """The lock key from ``--key-file`` or ``$ROOST_LOCK_KEY``, if any."""
    if key_file is not None:
        return read_key_file(key_file)
    return os.environ.get(LOCK_KEY_ENV) or None


@asynccontextmanager
async def proving(
    client: Client, lease_resource: str | None, key_file: Path | None
) -> AsyncIterator[Proof]:
    """The proof to send with requests made in the block (see the module rules).

    Raises:
        AlreadyClaimed: ``--lease`` and others hold the resource.
        click.UsageError: a bad ``$ROOST_LEASE_TOKEN`` or key file.
    """
    key = key_of(key_file)
    if key is not None:
        yield Proof(key=key)
        return
    if lease_resource is not None:
        async with client.lease(lease_resource, wait=0, note="roost call/set") as held:
            yield Proof(token=held.token)
        return
    token = _env_token()
    yield Proof(token=token if token is not None and client.leases_available else None)
