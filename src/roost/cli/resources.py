"""``roost resources``: the pool inventory with each resource's status.

Rules of this module:

- Read-only unless ``--reload`` asks the broker to read its inventory file again.
"""

from __future__ import annotations

import json

import anyio
import click

from roost.cli.leases import describe_holder
from roost.cli.output import Output, connected, connection_options, run, settings_of

__all__ = ("resources",)

COLUMNS = ("id", "status", "holder", "note", "attributes")


@click.command()
@click.option("--reload", is_flag=True, help="Have the broker read its inventory file again.")
@connection_options
@click.pass_context
def resources(ctx: click.Context, reload: bool) -> int:
    """List the pool's resources: id, status (free, held, offline), holder, attributes."""
    settings = settings_of(ctx)
    out = Output(settings)

    async def body() -> None:
        async with connected(settings) as client:
            with anyio.fail_after(settings.timeout):
                if reload:
                    count = await client.pool_reload()
                    out.note(f"inventory reloaded: {count} resources")
                items = await client.pool_resources()
        rows = []
        for item in items:
            holders = [h for h in item.get("holders") or [] if isinstance(h, dict)]
            attrs = {k: v for k, v in (item.get("attributes") or {}).items() if k != "id"}
            rows.append(
                [
                    str(item.get("id", "")),
                    str(item.get("status", "")),
                    ", ".join(describe_holder(h) for h in holders),
                    ", ".join(str(h.get("note") or "") for h in holders),
                    json.dumps(attrs, sort_keys=True, default=str),
                ]
            )
        out.table(COLUMNS, rows, items)

    return run(settings, body)
