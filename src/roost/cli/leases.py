"""``roost leases``: who holds and who waits, once or live, plus the lease display helpers.

Rules of this module:

- Read-only: nothing here acquires, takes or returns a lease.
- Tables show one row per holder; ``--json`` passes the broker's ``info`` objects through.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Sequence
from contextlib import AsyncExitStack
from typing import TYPE_CHECKING, Any

import anyio
import click

from roost.cli.output import (
    Output,
    Settings,
    connected,
    connection_options,
    format_age,
    format_duration,
    format_value,
    run,
    settings_of,
    until_interrupted,
)

if TYPE_CHECKING:
    from roost.client import Client

__all__ = ("COLUMNS", "describe_holder", "format_token", "leases", "rows")


# -- formatting --------------------------------------------------------------------------------


def format_token(token: Any) -> str:
    """``<epoch>:<root>`` (plus ``.a.b`` for a sub-lease) for display; ``?`` when malformed."""
    if not isinstance(token, dict):
        return "?"
    seq = token.get("seq")
    if not isinstance(seq, list) or not seq:
        return "?"
    return f"{token.get('epoch')}:" + ".".join(str(part) for part in seq)


def describe_holder(entry: dict[str, Any]) -> str:
    """``name (user@host, pid N)``, leaving out what the holder did not say."""
    name = entry.get("name") or f"client {entry.get('client', '?')}"
    user, host, pid = entry.get("user"), entry.get("host"), entry.get("pid")
    where = "@".join(part for part in (user, host) if part)
    details = [part for part in (where, f"pid {pid}" if pid is not None else "") if part]
    return f"{name} ({', '.join(details)})" if details else str(name)


def _ttl(entry: dict[str, Any]) -> str:
    left = entry.get("ttl_left", entry.get("ttl"))
    return format_duration(float(left)) if isinstance(left, int | float) else ""


#: The columns of the lease table, in order.
COLUMNS = ("resource", "mode", "holder", "note", "age", "token", "ttl", "waiters")


def rows(infos: Sequence[dict[str, Any]]) -> list[list[str]]:
    """Table rows (see ``COLUMNS``) for ``info`` objects: one per holder, or one per resource
    that only has waiters."""
    now = time.time()
    rows: list[list[str]] = []
    for info in infos:
        waiters = info.get("waiters")
        count = len(waiters) if isinstance(waiters, list) else waiters
        waiting = "" if not count else str(count)
        holders = info.get("holders") or []
        if not holders:
            rows.append([str(info.get("resource", "")), "-", "", "", "", "", "", waiting])
        for holder in holders:
            rows.append(
                [
                    str(holder.get("resource") or info.get("resource", "")),
                    str(holder.get("mode", "")),
                    describe_holder(holder),
                    str(holder.get("note") or ""),
                    format_age(holder.get("since"), now),
                    format_token(holder.get("token")),
                    _ttl(holder),
                    waiting,
                ]
            )
    return rows


# -- roost leases ------------------------------------------------------------------------------


@click.command()
@click.argument("prefix", default="")
@click.option("-w", "--watch", is_flag=True, help="Follow changes live until Ctrl-C.")
@connection_options
@click.pass_context
def leases(ctx: click.Context, prefix: str, watch: bool) -> int:
    """List held and waited-for resources at or below PREFIX (default: all).

    One row per holder: resource, mode, holder (name (user@host, pid N)), note, age, token
    (<epoch>:<root>), ttl left and the number of waiters. With --json, one `info` object per
    resource. --watch follows /meta/lease_events: a terminal shows the table live, a pipe
    gets one line per event.
    """
    settings = settings_of(ctx)
    out = Output(settings)

    async def listing(client: Client) -> list[dict[str, Any]]:
        with anyio.fail_after(settings.timeout):
            return list(await client.lease_list(prefix))

    async def body() -> None:
        async with connected(settings) as client:
            if watch:
                await _watch(
                    settings=settings, out=out, client=client, prefix=prefix, listing=listing
                )
                return
            infos = await listing(client)
            out.table(COLUMNS, rows(infos), infos)

    if not watch:
        return run(settings, body)
    return run(settings, lambda: until_interrupted(body), stream=True)


async def _watch(
    *,
    settings: Settings,
    out: Output,
    client: Client,
    prefix: str,
    listing: Callable[[Client], Awaitable[list[dict[str, Any]]]],
) -> None:
    async with AsyncExitStack() as stack:
        # Subscribe before the first listing, so no change falls between the two.
        with anyio.fail_after(settings.timeout):
            events = await stack.enter_async_context(client.event_listen("/meta/lease_events"))
        infos = await listing(client)
        if out.rich:
            from rich.console import Console  # noqa: PLC0415 (terminal only)
            from rich.live import Live  # noqa: PLC0415
            from rich.table import Table  # noqa: PLC0415

            def render(infos: list[dict[str, Any]]) -> Table:
                table = Table(*COLUMNS, box=None, header_style="bold", title=f"leases {prefix}")
                for row in rows(infos):
                    table.add_row(*row)
                return table

            with Live(render(infos), console=Console(), auto_refresh=False) as live:
                async for event in events:
                    if _under(event, prefix):
                        live.update(render(await listing(client)), refresh=True)
            return
        out.table(COLUMNS, rows(infos), infos)
        async for event in events:
            if _under(event, prefix):
                out.record(
                    event if isinstance(event, dict) else {"event": event}, _event_line(event)
                )


def _under(event: Any, prefix: str) -> bool:
    resource = event.get("resource", "") if isinstance(event, dict) else ""
    if not prefix or not isinstance(resource, str):
        return True
    return resource == prefix or resource.startswith(prefix.rstrip("/") + "/")


def _event_line(event: Any) -> str:
    if not isinstance(event, dict):
        return format_value(event)
    parts = [str(event.get("event", "?")), str(event.get("resource", ""))]
    holder = event.get("holder")
    if isinstance(holder, dict):
        parts.append(describe_holder(holder))
    if "token" in event:
        parts.append(format_token(event["token"]))
    for key in ("reason", "status"):
        if event.get(key):
            parts.append(f"{key}={event[key]}")
    return "\t".join(parts)
