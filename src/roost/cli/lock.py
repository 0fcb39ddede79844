"""``roost lock ...``: durable keyed locks (set, info, clear) and the offline last resort.

Rules of this module:

- The key comes from a file (``--key-file``; ``-`` reads stdin), never from the command line,
  where other users of the machine could see it in the process list.
- ``lock clear --admin --state-dir DIR`` edits a stopped broker's state directory: the last
  resort when the key and the emergency key are both lost.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import anyio
import click

from roost.cli.output import (
    EXIT_OK,
    EXIT_REMOTE,
    Output,
    connected,
    connection_options,
    error,
    run,
    settings_of,
)
from roost.cli.proof import read_key_file

__all__ = ("describe_lock", "lock")


def describe_lock(info: dict[str, Any]) -> str:
    """One line about a lock info: who locked what, when, why."""
    resource = info.get("resource", "?")
    if not info.get("locked"):
        return f"{resource}: not locked"
    scopes = info.get("scopes") or []
    what = ", ".join(f"{resource}/{s}" for s in scopes) if scopes else str(resource)
    who = info.get("user") or info.get("name") or "someone"
    text = f"{what}: locked by {who} since {info.get('time_str', '?')}"
    if info.get("note"):
        text += f', note "{info["note"]}"'
    if not info.get("durable", True):
        text += " (until the broker stops: it has no state directory)"
    return text


def _key(path: Path) -> str:
    if str(path) == "-":
        key = sys.stdin.readline().rstrip("\r\n")
        if not key:
            raise click.UsageError("no key on stdin")
        return key
    return read_key_file(path)


_KEY_FILE = click.option(
    "--key-file",
    type=click.Path(dir_okay=False, path_type=Path, allow_dash=True),
    help="File holding the lock key (- for stdin).",
)


@click.group()
def lock() -> None:
    """Durable keyed locks: lock a resource (or some of its scopes) with a key; the lock
    outlives your client and, with a state directory, the broker."""


@lock.command(name="set")
@click.argument("resource")
@_KEY_FILE
@click.option("--scope", "scopes", multiple=True, help="Lock only RESOURCE/SCOPE (repeatable).")
@click.option("--note", default="", help="Why it is locked, shown to everyone.")
@click.option("--name", default=None, help="Name shown as the holder [default: roost lock].")
@connection_options
@click.pass_context
def set_(
    ctx: click.Context,
    *,
    resource: str,
    key_file: Path | None,
    scopes: tuple[str, ...],
    note: str,
    name: str | None,
) -> int:
    """Lock RESOURCE with the key in --key-file, or update the lock that key opens.

    \b
    Example: roost lock set beamline --scope queue --key-file ~/.lock-key --note "in the hutch"
    """
    settings = settings_of(ctx)
    out = Output(settings)
    if key_file is None:
        raise click.UsageError("--key-file is required")
    key = _key(key_file)

    async def body() -> None:
        async with connected(settings) as client:
            with anyio.fail_after(settings.timeout):
                info = await client.lock_set(
                    resource, key, scopes=scopes, note=note, name=name or "roost lock"
                )
        out.record(info, describe_lock(info))

    return run(settings, body)


@lock.command()
@click.argument("resource", required=False)
@connection_options
@click.pass_context
def info(ctx: click.Context, resource: str | None) -> int:
    """Show the lock on RESOURCE (user, note, time, scopes, emergency key set, uid), or every
    lock without RESOURCE."""
    settings = settings_of(ctx)
    out = Output(settings)

    async def body() -> None:
        async with connected(settings) as client:
            with anyio.fail_after(settings.timeout):
                infos = [await client.lock_info(resource)] if resource else await client.lock_list()
        if not infos and not out.json:
            click.echo("no durable locks")
        for item in infos:
            text = describe_lock(item)
            if resource and item.get("locked"):
                emergency = "set" if item.get("emergency_key_set") else "not set"
                text += f"\nuid: {item.get('uid')}  emergency key: {emergency}"
            out.record(item, text)

    return run(settings, body)


@lock.command()
@click.argument("resource")
@_KEY_FILE
@click.option("--emergency", is_flag=True, help="The key file holds the emergency key.")
@click.option(
    "--admin",
    is_flag=True,
    help="Remove the lock from a STOPPED broker's --state-dir (the last resort).",
)
@click.option(
    "--state-dir",
    type=click.Path(file_okay=False, exists=True),
    default=None,
    help="The stopped broker's state directory (with --admin).",
)
@connection_options
@click.pass_context
def clear(
    ctx: click.Context,
    *,
    resource: str,
    key_file: Path | None,
    emergency: bool,
    admin: bool,
    state_dir: str | None,
) -> int:
    """Unlock RESOURCE with its key, the emergency key (--emergency), or, with the broker
    stopped, by editing its state directory (--admin --state-dir DIR)."""
    settings = settings_of(ctx)
    out = Output(settings)
    if admin:
        if state_dir is None:
            raise click.UsageError("--admin needs --state-dir")
        from roost.broker.leases.locks import clear_offline  # noqa: PLC0415
        from roost.errors import RoostError  # noqa: PLC0415

        try:
            removed = clear_offline(state_dir, resource)
        except RoostError as exc:
            error(str(exc))
            return EXIT_REMOTE
        if not removed:
            error(f"{resource} is not locked in {state_dir}")
            return EXIT_REMOTE
        out.note(f"removed the lock on {resource}; it is gone once the broker starts again")
        return EXIT_OK
    if key_file is None:
        raise click.UsageError("--key-file is required (or --admin --state-dir DIR)")
    key = _key(key_file)

    async def body() -> None:
        async with connected(settings) as client:
            with anyio.fail_after(settings.timeout):
                if emergency:
                    info = await client.lock_clear(resource, emergency_key=key)
                else:
                    info = await client.lock_clear(resource, key)
        out.record(info, f"{resource}: unlocked")

    return run(settings, body)
