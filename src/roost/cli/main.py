"""The ``roost`` command line.

Rules of this module:

- ``main(argv) -> int`` never raises and never prints a traceback unless ``-v`` was given;
  the exit code says what happened (see ``EXIT_*``).
- Start-up stays cheap: the broker, the client library, rich and the lease commands are
  imported only by the commands that use them, so ``roost get /x`` never loads the broker.
- Each sub-command is a short function that parses, then hands the work to a coroutine.
"""

from __future__ import annotations

import importlib
import math
import sys
import time
from collections.abc import Sequence
from contextlib import AsyncExitStack
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

import anyio
import click

from roost._version import __version__
from roost.cli.output import (
    EXIT_CONNECT,
    EXIT_INTERRUPTED,
    EXIT_OK,
    EXIT_REMOTE,
    EXIT_TEMPFAIL,
    EXIT_USAGE,
    Output,
    Settings,
    answer,
    connected,
    connection_options,
    enter_within,
    error,
    format_age,
    format_value,
    parse_value,
    print_stream,
    run,
    settings_of,
    stdin_lines,
    until_interrupted,
    verbose_note,
)
from roost.cli.proof import proof_options, proving
from roost.protocol.messages import Unknown

if TYPE_CHECKING:
    from roost.client import Client

__all__ = (
    "EXIT_CONNECT",
    "EXIT_INTERRUPTED",
    "EXIT_OK",
    "EXIT_REMOTE",
    "EXIT_TEMPFAIL",
    "EXIT_USAGE",
    "ByteSize",
    "cli",
    "main",
)

_SIZE_UNITS = {
    "": 1,
    "b": 1,
    "k": 1000,
    "kb": 1000,
    "kib": 1024,
    "m": 1000**2,
    "mb": 1000**2,
    "mib": 1024**2,
    "g": 1000**3,
    "gb": 1000**3,
    "gib": 1024**3,
}
# Values may start with "-" (``roost set /t -5``), so these commands take unknown options as text.
_VALUE_ARGS = {"ignore_unknown_options": True}


class ByteSize(click.ParamType[int, Any]):
    """A byte count such as ``8388608``, ``8MiB`` or ``512k``."""

    name = "BYTES"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> int:
        if isinstance(value, int):
            return value
        text = str(value).strip().lower().replace(" ", "")
        digits = text.rstrip("abcdefghijklmnopqrstuvwxyz")
        unit = text[len(digits) :]
        try:
            number = float(digits) * _SIZE_UNITS[unit]
        except (ValueError, KeyError):
            number = math.nan
        if not 1 <= number < math.inf:
            self.fail(f"{value!r} is not a byte count of at least 1 (try 8MiB)", param, ctx)
        return int(number)


class _Commands(click.Group):
    """The top-level group; serve and the lease commands are imported only when asked for."""

    # Command name -> the module defining it under the same name.
    _lazy: ClassVar[dict[str, str]] = {
        "certgen": "roost.cli.certgen",
        "lease": "roost.cli.lease",
        "leases": "roost.cli.leases",
        "lock": "roost.cli.lock",
        "resources": "roost.cli.resources",
        "passwd": "roost.cli.admin",
        "reload": "roost.cli.admin",
        "serve": "roost.cli.serve",
        "top": "roost.cli.top",
    }

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted({*super().list_commands(ctx), *self._lazy})

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        module = self._lazy.get(cmd_name)
        if module is not None and cmd_name not in self.commands:
            # Imported on demand to keep `roost get` start-up short.
            command = getattr(importlib.import_module(module), cmd_name)
            self.add_command(command)
        return super().get_command(ctx, cmd_name)


@click.group(cls=_Commands, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="roost", message="%(prog)s %(version)s")
@connection_options
def cli() -> None:
    """roost: a coordination broker over msgpack TCP, wire-compatible with ESHET.

    Run a broker with `roost serve`; talk to one with the other commands. Values on the
    command line are JSON where they parse as JSON (42, true, "text", [1,2], {"a":1}) and
    plain strings otherwise. Connection options work before or after the sub-command.

    \b
    Exit codes: 0 ok, 1 the broker answered with an error (printed on stderr),
    2 usage error, 3 cannot connect or no answer in time, 130 interrupted;
    `lease hold` exits with its command's code, or 75 if the lease was not had in time.
    Shell completion: eval "$(_ROOST_COMPLETE=bash_source roost)" (zsh_source, fish_source).
    """


# -- client commands ---------------------------------------------------------------------------


@cli.command(context_settings=_VALUE_ARGS)
@click.argument("path")
@click.argument("args", nargs=-1)
@proof_options
@connection_options
@click.pass_context
def call(
    ctx: click.Context,
    path: str,
    args: tuple[str, ...],
    lease_resource: str | None,
    key_file: Path | None,
) -> int:
    """Call the action at PATH with ARGS and print its result.

    Each ARG is parsed as JSON, falling back to a plain string:
    `roost call /lamp/dim 40 '"fast"' slow` passes 40, "fast" and "slow".
    A guarded action needs a lease: --lease RES holds RES for the call; inside
    `roost lease hold RES -- ...` the held lease's token ($ROOST_LEASE_TOKEN) is used;
    --key-file proves a durable lock instead.
    """
    settings = settings_of(ctx)
    out = Output(settings)
    values = [parse_value(arg) for arg in args]

    async def body() -> None:
        async with connected(settings) as client, proving(client, lease_resource, key_file) as p:
            if p.key is not None:
                request = client.locked_call(path, p.key, *values)
            else:
                request = client.action_call(path, *values, lease=p.token)
            result = await answer(settings, request)
        out.record({"path": path, "result": result}, format_value(result))

    return run(settings, body)


@cli.command()
@click.argument("path")
@connection_options
@click.pass_context
def get(ctx: click.Context, path: str) -> int:
    """Print the value of the prop or state at PATH.

    An unknown state is the error `state_unknown` (exit 1); `roost observe --count 1` prints
    `unknown` instead.
    """
    settings = settings_of(ctx)
    out = Output(settings)

    async def body() -> None:
        async with connected(settings) as client:
            value = await answer(settings, client.get(path))
        out.record({"path": path, "value": value}, format_value(value))

    return run(settings, body)


def _send_value(
    ctx: click.Context,
    path: str,
    value: str,
    verb: str,
    *,
    lease_resource: str | None = None,
    key_file: Path | None = None,
) -> int:
    """Parse VALUE, call ``client.<verb>(path, value)`` and report it like ``set`` and ``emit``
    (``set`` with the lease or key ``roost call`` would use).

    Prints nothing on success (with --json: {"path": ..., "ok": true}).
    """
    settings = settings_of(ctx)
    out = Output(settings)
    parsed = parse_value(value)

    async def body() -> None:
        async with connected(settings) as client:
            if verb != "set":  # an emit waits for the broker's answer, to report it
                await answer(settings, getattr(client, verb)(path, parsed, wait=True))
            else:
                async with proving(client, lease_resource, key_file) as p:
                    if p.key is not None:
                        request = client.locked_set(path, p.key, parsed)
                    else:
                        request = client.set(path, parsed, lease=p.token)
                    await answer(settings, request)
        if out.json:
            out.record({"path": path, "ok": True}, "")

    return run(settings, body)


@cli.command(name="set", context_settings=_VALUE_ARGS)
@click.argument("path")
@click.argument("value")
@proof_options
@connection_options
@click.pass_context
def set_(
    ctx: click.Context, path: str, value: str, lease_resource: str | None, key_file: Path | None
) -> int:
    """Set the prop or state at PATH to VALUE (JSON, or else a string).

    Prints nothing on success (with --json: {"path": ..., "ok": true}). A guarded node needs a
    lease or a lock key, as for `roost call`.
    """
    return _send_value(ctx, path, value, "set", lease_resource=lease_resource, key_file=key_file)


@cli.command(context_settings=_VALUE_ARGS)
@click.argument("path")
@click.argument("value")
@connection_options
@click.pass_context
def emit(ctx: click.Context, path: str, value: str) -> int:
    """Emit VALUE (JSON, or else a string) on the event at PATH.

    Prints nothing on success (with --json: {"path": ..., "ok": true}).
    """
    return _send_value(ctx, path, value, "event_emit")


_COUNT = click.option(
    "-n",
    "--count",
    type=click.IntRange(min=1),
    default=None,
    help="Exit after printing this many values.",
)


@cli.command()
@click.argument("path")
@_COUNT
@connection_options
@click.pass_context
def observe(ctx: click.Context, path: str, count: int | None) -> int:
    """Print the state at PATH, then each change, until Ctrl-C.

    The first line is the current value; an unknown state prints `unknown` (with --json:
    {"path": ..., "known": false}). Ctrl-C or SIGTERM exits 0.

    A pattern (`/house/**` for any depth below /house, `+` for one segment) observes every
    state it matches: first one `path value` line per known state, then one per change
    (with --json: {"path": ..., "known": ..., "value": ...}).
    """
    settings = settings_of(ctx)
    out = Output(settings)

    def show_at(at: str, value: Any, prefix: str) -> None:
        if value is Unknown:
            out.record({"path": at, "known": False}, f"{prefix}unknown")
        else:
            out.record({"path": at, "known": True, "value": value}, prefix + format_value(value))

    async def body() -> None:
        async with connected(settings) as client, AsyncExitStack() as stack:
            if _is_pattern(path):
                pairs = await enter_within(settings, stack, client.subtree_observe(path))
                verbose_note(settings, f"observing {path}")
                await print_stream(
                    pairs, lambda pair: show_at(pair[0], pair[1], f"{pair[0]} "), count
                )
                return
            values = await enter_within(settings, stack, client.state_observe_iter(path))
            verbose_note(settings, f"observing {path}")
            await print_stream(values, lambda value: show_at(path, value, ""), count)

    if (refused := _check_pattern(path)) is not None:
        return refused
    return run(settings, lambda: until_interrupted(body), stream=True)


def _is_pattern(path: str) -> bool:
    return any(mark in path for mark in "+*#")


def _check_pattern(path: str) -> int | None:
    """Refuse MQTT's ``#`` before connecting, with the roost spelling; ``None`` if fine."""
    if "#" in path:
        hint = path.replace("#", "**")
        error(f"'#' is not a wildcard in roost: use {hint} (any depth) or + (one segment)")
        return EXIT_USAGE
    return None


@cli.command()
@click.argument("path")
@_COUNT
@connection_options
@click.pass_context
def listen(ctx: click.Context, path: str, count: int | None) -> int:
    """Print each value emitted on the event at PATH, until Ctrl-C.

    One value per line (with --json: {"path": ..., "value": ...}). Ctrl-C or SIGTERM exits 0.

    A pattern (`/house/**` for any depth below /house, `+` for one segment) listens to every
    event it matches, events registered later included, printing `path value` lines.
    """
    settings = settings_of(ctx)
    out = Output(settings)

    async def body() -> None:
        async with connected(settings) as client, AsyncExitStack() as stack:
            if _is_pattern(path):
                pairs = await enter_within(settings, stack, client.subtree_listen(path))
                verbose_note(settings, f"listening to {path}")

                def show_pair(pair: tuple[str, Any]) -> None:
                    at, value = pair
                    out.record({"path": at, "value": value}, f"{at} {format_value(value)}")

                await print_stream(pairs, show_pair, count)
                return
            values = await enter_within(settings, stack, client.event_listen(path))
            verbose_note(settings, f"listening to {path}")

            def show(value: Any) -> None:
                out.record({"path": path, "value": value}, format_value(value))

            await print_stream(values, show, count)

    if (refused := _check_pattern(path)) is not None:
        return refused
    return run(settings, lambda: until_interrupted(body), stream=True)


@cli.command()
@click.argument("path")
@connection_options
@click.pass_context
def publish(ctx: click.Context, path: str) -> int:
    """Own the state at PATH and set it from stdin, one JSON value per line.

    A line that is not JSON is taken as a string; empty lines are skipped, and so are lines
    that cannot be sent (an integer beyond 64 bits), with a note on stderr. At the end of
    input the state becomes unknown and the command exits 0 (the state is dropped when the
    connection closes). Sets from other clients are refused with `not_implemented`.
    """
    settings = settings_of(ctx)

    async def body() -> None:
        async with connected(settings) as client:
            state = await answer(settings, client.state_register(path))
            verbose_note(settings, f"publishing {path}")
            async for line in stdin_lines():
                text = line.strip()
                if not text:
                    continue
                try:
                    value = parse_value(text)
                except click.BadParameter as exc:
                    error(f"skipped: {exc.message}")  # one bad line must not end the stream
                    continue
                await answer(settings, state.changed(value))  # a refusal raises at the next
            await answer(settings, state.unknown(wait=True))

    return run(settings, lambda: until_interrupted(body), stream=True)


@cli.command(name="ls")
@click.argument("path", default="/")
@click.option("-R", "--recursive", is_flag=True, help="List directories below PATH too.")
@connection_options
@click.pass_context
def ls(ctx: click.Context, path: str, recursive: bool) -> int:
    """List the tree at PATH (default /) with each node's kind, via /meta/ls.

    Kinds are action, prop, event, state and dir. A PATH that is a node lists just that node.
    """
    settings = settings_of(ctx)
    out = Output(settings)

    async def body() -> None:
        entries: list[tuple[str, str]] = []
        async with connected(settings) as client:
            await _walk(settings, client, path, recursive, entries)
        out.table(
            ("path", "kind"),
            entries,
            ({"path": p, "kind": kind} for p, kind in entries),
            header=False,
        )

    return run(settings, body)


async def _walk(
    settings: Settings, client: Client, path: str, recursive: bool, into: list[tuple[str, str]]
) -> None:
    listing = await answer(settings, client.action_call("/meta/ls", path))
    if isinstance(listing, str):
        into.append((path, listing))
        return
    if not (isinstance(listing, list) and len(listing) == 2 and listing[0] == "dir"):
        raise click.ClickException(f"unexpected /meta/ls answer: {format_value(listing)}")
    prefix = path if path.endswith("/") else path + "/"
    for name, kind in listing[1]:
        child = prefix + str(name)
        into.append((child + "/" if kind == "dir" else child, str(kind)))
        if recursive and kind == "dir":
            await _walk(settings, client, child, recursive, into)


@cli.command()
@connection_options
@click.pass_context
def clients(ctx: click.Context) -> int:
    """List the clients connected to the broker (the /meta/clients state)."""
    settings = settings_of(ctx)
    out = Output(settings)

    async def body() -> None:
        async with connected(settings) as client:
            value = await answer(settings, client.get("/meta/clients"))
        entries = value.get("clients") if isinstance(value, dict) else value
        records = [e for e in entries if isinstance(e, dict)] if isinstance(entries, list) else []
        now = time.time()
        out.table(
            ("client", "peer", "connected", "registrations", "leases"),
            (
                [
                    _cell(r.get("client")),
                    _cell(r.get("peer")),
                    format_age(r.get("since"), now),
                    _cell(r.get("registrations")),
                    _cell(r.get("leases")),
                ]
                for r in records
            ),
            records,
        )
        total = value.get("clients_total") if isinstance(value, dict) else None
        if isinstance(total, int) and total > len(records):
            # The broker cuts the list to fit one frame and says how many there are.
            out.note(f"showing {len(records)} of {total} clients")

    return run(settings, body)


def _cell(value: Any) -> str:
    if value is None:
        return ""
    return value if isinstance(value, str) else format_value(value)


@cli.command()
@_COUNT
@click.option(
    "-i",
    "--interval",
    type=click.FloatRange(min=0),
    default=1.0,
    show_default=True,
    help="Seconds between pings.",
)
@connection_options
@click.pass_context
def ping(ctx: click.Context, count: int | None, interval: float) -> int:
    """Measure the round-trip time to the broker (one ping unless --count is given)."""
    settings = settings_of(ctx)
    out = Output(settings)
    total = count or 1

    async def body() -> None:
        async with connected(settings) as client:
            for seq in range(1, total + 1):
                rtt_ms = await answer(settings, client.ping()) * 1000
                out.record(
                    {"server": settings.address, "seq": seq, "rtt_ms": round(rtt_ms, 3)},
                    f"pong from {settings.address}: seq={seq} time={rtt_ms:.3f} ms",
                )
                if seq < total:
                    await anyio.sleep(interval)

    return run(settings, body)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line and return its exit code.

    Args:
        argv: the arguments after the program name; ``None`` reads ``sys.argv[1:]``.

    Returns:
        0 on success, 1 for a remote error, 2 for a usage error, 3 when the broker cannot be
        reached or does not answer in time; ``lease hold`` returns its child's code or 75.
        Ctrl-C while waiting returns 130 except for streaming commands, where it is the normal
        way to stop and returns 0.
    """
    args = list(sys.argv[1:] if argv is None else argv)
    try:
        result = cli.main(args=args, prog_name="roost", standalone_mode=False)
    except click.exceptions.Exit as exc:
        return int(exc.exit_code)
    except click.ClickException as exc:
        exc.show()
        return int(exc.exit_code)
    except (click.exceptions.Abort, KeyboardInterrupt):
        click.echo("roost: interrupted", err=True)
        return 130
    return result if isinstance(result, int) else EXIT_OK
