"""``roost top``: a live terminal view of a broker's figures, from its gateway's ``/api/stats``.

Rules of this module:

- Read-only: one HTTP GET per refresh, nothing sent to the broker's native port.
- Rates are differences between two snapshots over the time between them; the first screen
  shows totals only.
- On a terminal the view redraws in place (rich ``Live``) until ``q`` or Ctrl-C; when stdout
  is not a terminal it prints one snapshot and exits (``--json``: the snapshot as JSON).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import sys
import termios
import tty
from collections.abc import Iterator
from typing import Any

import click

from roost.cli.output import (
    EXIT_CONNECT,
    EXIT_OK,
    connection_options,
    error,
    format_duration,
    run,
    settings_of,
    split_server,
)

__all__ = ("DEFAULT_HTTP_PORT", "render", "top")

#: The gateway's default port (``roost serve --http-port``).
DEFAULT_HTTP_PORT = 11237
#: Rows of message types and of clients shown.
ROWS = 10


def _rate(now: dict[str, Any], before: dict[str, Any] | None, key: str) -> float | None:
    if before is None:
        return None
    elapsed = float(now["time"]) - float(before["time"])
    if elapsed <= 0:
        return None
    return max(0.0, float(now.get(key, 0) - before.get(key, 0)) / elapsed)


def _fmt_rate(rate: float | None) -> str:
    return "-" if rate is None else f"{rate:,.0f}/s"


def _bytes(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return f"{n:,.0f} {unit}" if unit == "B" else f"{n:,.1f} {unit}"
        n /= 1024
    return f"{n:,.1f} GiB"  # pragma: no cover - the loop always returns


def render(now: dict[str, Any], before: dict[str, Any] | None, address: str) -> Any:
    """The view of one snapshot (``before``: the previous one, for rates) as a rich renderable."""
    from rich.console import Group  # noqa: PLC0415 (rich is loaded only by the commands using it)
    from rich.table import Table  # noqa: PLC0415
    from rich.text import Text  # noqa: PLC0415

    leases = now.get("leases", {})
    head = Text.assemble(
        ("roost top ", "bold"),
        f"{address}  up {format_duration(now.get('uptime', 0))}  ",
        f"connections {now.get('connections', 0)}  ",
        f"leases {leases.get('held', 0)} held, {leases.get('waiting', 0)} waiting  ",
        f"pending calls {now.get('pending_calls', 0)}  ",
        f"loop lag {now.get('loop_lag', 0) * 1000:.1f} ms",
    )
    rates = Table(box=None, pad_edge=False)
    for name in ("", "total", "rate"):
        rates.add_column(name, justify="left" if not name else "right")
    for label, key, as_bytes in (
        ("messages in", "messages_in", False),
        ("frames out", "frames_out", False),
        ("fan-out deliveries", "deliveries", False),
        ("bytes in", "bytes_in", True),
        ("bytes out", "bytes_out", True),
    ):
        total = now.get(key, 0)
        rate = _rate(now, before, key)
        if as_bytes:
            shown = "-" if rate is None else f"{_bytes(rate)}/s"
            rates.add_row(label, _bytes(total), shown)
        else:
            rates.add_row(label, f"{total:,}", _fmt_rate(rate))

    types = _by_type(now, before, "received", "messages in by type")
    sent = _by_type(now, before, "sent", "messages out by type")

    clients = Table(title="top talkers", box=None, pad_edge=False, title_justify="left")
    for name in ("client", "peer", "received", "rate"):
        clients.add_column(name, justify="right" if name in ("received", "rate") else "left")
    earlier = {
        (c.get("client"), c.get("peer")): c.get("received", 0)
        for c in (before or {}).get("top_clients", [])
    }
    for c in now.get("top_clients", [])[:ROWS]:
        who = (c.get("client"), c.get("peer"))
        rate = None
        if before is not None and who in earlier:
            rate = _rate(
                {"time": now["time"], "n": c.get("received", 0)}, _n(before, earlier[who]), "n"
            )
        clients.add_row(
            str(c.get("client")), str(c.get("peer")), f"{c.get('received', 0):,}", _fmt_rate(rate)
        )
    return Group(head, Text(""), rates, Text(""), types, Text(""), sent, Text(""), clients)


def _by_type(now: dict[str, Any], before: dict[str, Any] | None, key: str, title: str) -> Any:
    """The busiest message types of ``now[key]`` (``received`` or ``sent``) as a table."""
    from rich.table import Table  # noqa: PLC0415

    counts = now.get(key, {})
    previous = before.get(key, {}) if before else None
    types = Table(title=title, box=None, pad_edge=False, title_justify="left")
    types.add_column("type")
    types.add_column("total", justify="right")
    types.add_column("rate", justify="right")
    type_rows = [
        (name, count, _rate({"time": now["time"], "n": count}, _prev(before, previous, name), "n"))
        for name, count in counts.items()
    ]
    type_rows.sort(key=lambda row: (row[2] or 0, row[1]), reverse=True)
    for name, count, rate in type_rows[:ROWS]:
        types.add_row(name, f"{count:,}", _fmt_rate(rate))
    return types


def _n(before: dict[str, Any], count: int) -> dict[str, Any]:
    return {"time": before["time"], "n": count}


def _prev(
    before: dict[str, Any] | None, previous: dict[str, int] | None, name: str
) -> dict[str, Any] | None:
    if before is None or previous is None:
        return None
    return _n(before, previous.get(name, 0))


@contextlib.contextmanager
def _keys() -> Iterator[asyncio.Queue[str]]:
    """Keys typed on the terminal, one at a time (the terminal in cbreak mode meanwhile)."""
    queue: asyncio.Queue[str] = asyncio.Queue()
    fd = sys.stdin.fileno()
    saved = termios.tcgetattr(fd)
    loop = asyncio.get_running_loop()
    tty.setcbreak(fd)

    def readable() -> None:
        data = os.read(fd, 32)
        for char in data.decode(errors="ignore"):
            queue.put_nowait(char)
        if not data:
            queue.put_nowait("q")  # end of input: nothing can be typed any more

    loop.add_reader(fd, readable)
    try:
        yield queue
    finally:
        loop.remove_reader(fd)
        termios.tcsetattr(fd, termios.TCSADRAIN, saved)


@click.command()
@click.option(
    "--http-port",
    type=click.IntRange(1, 65535),
    default=DEFAULT_HTTP_PORT,
    show_default=True,
    help="The broker's HTTP port (roost serve --http-port), on the host of -s.",
)
@click.option(
    "--interval",
    type=click.FloatRange(min=0.1),
    default=1.0,
    show_default=True,
    metavar="SECONDS",
    help="Seconds between refreshes.",
)
@connection_options
@click.pass_context
def top(ctx: click.Context, http_port: int, interval: float) -> int:
    """Watch a broker live: message rates, top talkers, connections, leases. q quits.

    Reads the figures from the broker's HTTP port. When stdout is not a terminal, prints one
    snapshot and exits.
    """
    settings = settings_of(ctx)
    host, _ = split_server(settings.address)
    shown_host = f"[{host}]" if ":" in host else host
    url = f"http://{shown_host}:{http_port}/api/stats"

    async def main() -> int:
        import aiohttp  # noqa: PLC0415 (only this command needs an HTTP client)

        timeout = aiohttp.ClientTimeout(total=settings.timeout)
        async with aiohttp.ClientSession(timeout=timeout) as http:

            async def fetch() -> dict[str, Any]:
                async with http.get(url) as reply:
                    reply.raise_for_status()
                    data: dict[str, Any] = await reply.json()
                    return data

            try:
                first = await fetch()
            except (aiohttp.ClientError, TimeoutError) as exc:
                error(f"cannot read {url}: {exc or type(exc).__name__}")
                return EXIT_CONNECT
            if not sys.stdout.isatty() or not sys.stdin.isatty():
                if settings.json:
                    print(json.dumps(first))
                else:
                    from rich.console import Console  # noqa: PLC0415

                    Console().print(render(first, None, url))
                return EXIT_OK
            return await _live(fetch, first, url, interval)

    return run(settings, main, stream=True)


async def _live(fetch: Any, first: dict[str, Any], url: str, interval: float) -> int:
    from rich.live import Live  # noqa: PLC0415

    before, now = None, first
    with _keys() as keys, Live(render(now, before, url), auto_refresh=False) as live:
        while True:
            try:
                key = await asyncio.wait_for(keys.get(), interval)
            except TimeoutError:
                key = ""
            if key in ("q", "Q"):
                return EXIT_OK
            try:
                before, now = now, await fetch()
            except Exception as exc:
                live.update(render(now, before, f"{url} (unreachable: {exc})"), refresh=True)
                continue
            live.update(render(now, before, url), refresh=True)
