"""``roost lease ...``: acquire, take, hold (while a command runs) and inspect one lease.

Rules of this module:

- A lease lives as long as this process's connection: every command that holds one returns it
  on the way out (Ctrl-C, SIGTERM, the child exiting) and otherwise lets the closing connection
  end it.
- "Not had in time" (``ALREADY_CLAIMED`` with no wait, or ``TIMEOUT``) exits 75, so scripts can
  retry; every other refusal is a remote error (1).
- ``lease hold`` runs its command directly (never through a shell), forwards SIGINT, SIGTERM and
  SIGHUP to it, and stops it (SIGTERM, then SIGKILL) the moment the lease is lost.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import signal
import sys
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from typing import TYPE_CHECKING, Any

import anyio
import anyio.abc
import click

from roost import errors
from roost.cli.leases import COLUMNS, describe_holder, format_token, rows
from roost.cli.output import (
    EXIT_OK,
    EXIT_REMOTE,
    EXIT_TEMPFAIL,
    Output,
    Settings,
    connected,
    connection_options,
    error,
    run,
    settings_of,
    to_json,
    verbose_note,
)
from roost.client.keepalive import keepalive_interval

if TYPE_CHECKING:
    from roost.client import Lease

__all__ = ("holding", "lease", "resource_env", "retain_interval")

_FORWARDED = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
_NOT_IN_TIME = (errors.AlreadyClaimed, errors.LeaseWaitTimeout)


def _lease_record(lease: Lease) -> dict[str, Any]:
    return {
        "resource": lease.resource,
        "mode": lease.mode,
        "lease_id": lease.lease_id,
        "token": lease.token,
    }


# -- holding a lease ---------------------------------------------------------------------------


@asynccontextmanager
async def holding(
    settings: Settings,
    resource: str,
    *,
    shared: bool = False,
    wait: float = 0.0,
    ttl: float | None = None,
    note: str = "",
    name: str | None = None,
    take_reason: str | None = None,
    requirements: dict[str, Any] | None = None,
) -> AsyncIterator[Lease]:
    """Connect and hold a lease for the block: acquired (or taken, with ``take_reason``) on
    entry, kept alive while the block runs, returned on exit, then the connection is closed.

    A loss does not cancel the block: ``lease.lost`` is set and the block decides what to do.
    While held, the client pings often enough for the broker's idle timeout (a dead connection
    is noticed within its ping timeout and counts as a loss); with a ttl the lease is retained
    every third of it.

    Raises:
        AlreadyClaimed, LeaseWaitTimeout: not had in time (the caller exits 75).
        TimeoutError: no answer within ``--timeout`` (plus ``wait``).
        LeaseError, LeasesUnsupported: other refusals.
    """
    # An acquire may legitimately wait ``wait`` seconds at the broker; the connection timeout
    # comes on top of that. A negative wait queues without a deadline.
    waits = take_reason is None and wait != 0
    bound = settings.timeout + (max(wait, 0.0) if waits else 0.0)
    async with AsyncExitStack() as stack:
        client = await stack.enter_async_context(connected(settings))
        with anyio.fail_after(math.inf if waits and wait < 0 else bound):
            if requirements is not None:
                held = await client.pool_acquire(
                    requirements, wait=wait, ttl=ttl, note=note, name=name
                )
            elif take_reason is None:
                held = await client.lease_acquire(
                    resource, shared=shared, wait=wait, ttl=ttl, note=note, name=name
                )
            else:
                held = await client.lease_take(resource, take_reason, ttl=ttl, note=note, name=name)
        # Unwound in reverse: stop retaining, then return the lease.
        stack.push_async_callback(_give_back, settings, held)
        tg = await stack.enter_async_context(anyio.create_task_group())
        stack.callback(tg.cancel_scope.cancel)
        tg.start_soon(_retain_every, held, ttl)
        yield held


async def _give_back(settings: Settings, held: Lease) -> None:
    # Closing the connection ends the lease anyway, so a failed or slow return changes nothing.
    with (
        anyio.CancelScope(shield=True),
        anyio.move_on_after(settings.timeout),
        contextlib.suppress(errors.RoostError),
    ):
        await held.return_lease()


def retain_interval(ttl: float) -> float:
    """Seconds between retains of a lease with this ttl.

    The client library's own keep-alive rhythm (two round trips can be late before the lease
    is in danger), never more often than every 50 ms.
    """
    return max(0.05, keepalive_interval(ttl))


async def _retain_every(held: Lease, ttl: float | None) -> None:
    # A refused retain marks the lease lost by itself, and wait_lost() reports why.
    if ttl is None:
        return
    with contextlib.suppress(errors.RoostError):
        while held.active:
            await anyio.sleep(retain_interval(ttl))
            await held.retain()


async def _until_signal_or_loss(out: Output, held: Lease, verb: str) -> bool:
    """Show ``held`` (as ``verb``), then wait for SIGINT/SIGTERM (returns False) or the loss of
    ``held`` (says so on stderr, returns True). The signal receiver is in place before the
    lease is shown."""
    lost = False
    with anyio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
        _show_lease(out, held, verb)
        async with anyio.create_task_group() as tg:

            async def on_lost() -> None:
                nonlocal lost
                await held.wait_lost()
                lost = True
                tg.cancel_scope.cancel()

            async def on_signal() -> None:
                async for _ in signals:
                    tg.cancel_scope.cancel()
                    return

            tg.start_soon(on_lost)
            tg.start_soon(on_signal)
    if lost:
        error(f"lease on {held.resource} lost ({_lost(held)})")
    return lost


def _not_in_time(resource: str, exc: errors.LeaseError) -> str:
    return f"{resource}: not had in time: {exc}"


def _lost(held: Lease, reason: str | None = None) -> str:
    """Why ``held`` was lost, naming the taker and the reason it gave for a take."""
    return errors.lost_text(reason or held.lost_reason or "lost", held.lost_by, held.lost_why)


def _show_lease(out: Output, held: Lease, verb: str) -> None:
    out.record(
        _lease_record(held),
        f"{verb} {held.resource} ({held.mode}) token {format_token(held.token)}",
    )


# -- roost lease ... ---------------------------------------------------------------------------


@click.group()
def lease() -> None:
    """Acquire, hold, take and inspect leases on named resources."""


_SHARED = click.option("--shared", is_flag=True, help="Share the resource with other sharers.")
_WAIT = click.option(
    "--wait",
    type=float,
    default=0.0,
    show_default=True,
    metavar="SECONDS",
    help="Queue this long if the resource is taken (0 fails at once, negative waits forever).",
)
_TTL = click.option(
    "--ttl",
    type=click.FloatRange(min=1),
    default=None,
    metavar="SECONDS",
    help="Ask the broker to end the lease unless retained this often (roost retains it).",
)
_NOTE = click.option("--note", default="", help="Why you hold it, shown to others.")
_NAME = click.option(
    "--name", default=None, help="Holder name shown to others [default: roost, or the command]."
)


@lease.command()
@click.argument("resource")
@_SHARED
@_WAIT
@_TTL
@_NOTE
@_NAME
@connection_options
@click.pass_context
def acquire(
    ctx: click.Context,
    *,
    resource: str,
    shared: bool,
    wait: float,
    ttl: float | None,
    note: str,
    name: str | None,
) -> int:
    """Acquire RESOURCE and hold it until Ctrl-C or SIGTERM, then return it.

    Prints the lease (resource, mode, token) once granted. Exits 0 after returning it, 75 if it
    could not be had in time, 1 if the lease is lost while held (taken, expired...).
    """
    settings = settings_of(ctx)
    out = Output(settings)

    async def body() -> int:
        try:
            async with holding(
                settings,
                resource,
                shared=shared,
                wait=wait,
                ttl=ttl,
                note=note,
                name=name or "roost",
            ) as held:
                if await _until_signal_or_loss(out, held, "holding"):
                    return EXIT_REMOTE
            out.note(f"returned {resource}")
            return EXIT_OK
        except _NOT_IN_TIME as exc:
            error(_not_in_time(resource, exc))
            return EXIT_TEMPFAIL

    return run(settings, body)


@lease.command()
@click.argument("resource")
@click.option("--reason", required=True, help="Why you take it (recorded in the audit log).")
@_TTL
@_NOTE
@_NAME
@click.option("--hold", is_flag=True, help="Keep the lease until Ctrl-C instead of returning it.")
@connection_options
@click.pass_context
def take(
    ctx: click.Context,
    *,
    resource: str,
    reason: str,
    ttl: float | None,
    note: str,
    name: str | None,
    hold: bool,
) -> int:
    """Take RESOURCE by force: every overlapping lease ends with reason `taken`.

    Without --hold the new lease is returned at once, which frees the resource for the next
    waiter; with --hold it is kept until Ctrl-C or SIGTERM (exit 1 if it is lost meanwhile).
    """
    settings = settings_of(ctx)
    out = Output(settings)

    async def body() -> int:
        async with holding(
            settings, resource, ttl=ttl, note=note, name=name or "roost", take_reason=reason
        ) as held:
            if not hold:
                _show_lease(out, held, "took")
            elif await _until_signal_or_loss(out, held, "took"):
                return EXIT_REMOTE
        return EXIT_OK

    return run(settings, body)


@lease.command()
@click.argument("resource")
@connection_options
@click.pass_context
def info(ctx: click.Context, resource: str) -> int:
    """Show who holds RESOURCE, who waits for it, its floor and its policy."""
    settings = settings_of(ctx)
    out = Output(settings)

    async def body() -> None:
        async with connected(settings) as client:
            with anyio.fail_after(settings.timeout):
                details = dict(await client.lease_info(resource))
        if out.json:
            out.record(details, "")
            return
        out.table(COLUMNS, rows([details]), [details])
        for waiter in details.get("waiters") or []:
            if isinstance(waiter, dict):
                click.echo(f"waiting: {waiter.get('mode', '')} {describe_holder(waiter)}")
        max_holders = details.get("max_holders")
        click.echo(
            f"floor: {details.get('floor')}  max_holders: {max_holders or 'unlimited'}"
            f"  takeable: {details.get('takeable', True)}"
        )

    return run(settings, body)


# -- roost lease hold --------------------------------------------------------------------------


@lease.command()
@click.argument("resource", required=False)
@_SHARED
@_WAIT
@_TTL
@_NOTE
@_NAME
@click.option(
    "--requirements",
    metavar="JSON",
    default=None,
    help="Hold any free pool resource matching these MongoDB-style requirements instead of "
    "RESOURCE (py-lockable's --requirements).",
)
@click.option("--take", "take_it", is_flag=True, help="Take the resource by force instead.")
@click.option("--reason", default=None, help="Why you take it (required with --take).")
@click.option(
    "--kill-after",
    type=click.FloatRange(min=0),
    default=5.0,
    show_default=True,
    metavar="SECONDS",
    help="After the lease is lost, SIGKILL the command if SIGTERM did not end it in this time.",
)
@click.argument("command", nargs=-1)
@connection_options
@click.pass_context
def hold(
    ctx: click.Context,
    *,
    resource: str | None,
    requirements: str | None,
    shared: bool,
    wait: float,
    ttl: float | None,
    note: str,
    name: str | None,
    take_it: bool,
    reason: str | None,
    kill_after: float,
    command: tuple[str, ...],
) -> int:
    """Hold RESOURCE while COMMAND runs.

    \b
    Example: roost lease hold lab/arm --wait 30 -- ./calibrate --fast

    Acquires the lease (or takes it with --take), runs COMMAND without a shell with
    ROOST_LEASE_RESOURCE and ROOST_LEASE_TOKEN (the token as JSON) in its environment, keeps
    the lease alive, forwards SIGINT, SIGTERM and SIGHUP to it (a Ctrl-C on the terminal
    reaches it directly), and returns the lease when it exits. If the lease is lost the command
    gets SIGTERM, then SIGKILL after --kill-after.

    With --requirements '{"os": "linux"}' (and no RESOURCE) any free pool resource matching
    them is held (by default only online ones of this host); COMMAND also gets ROOST_RESOURCE
    (its id), ROOST_RESOURCE_JSON (its attributes) and, as py-lockable sets them, each
    attribute as an upper-case variable (ID, HOSTNAME, ONLINE...).

    Exits with the command's code (128+N if a signal N ended it), or 75 if the lease could not
    be had in time or was lost and the command then died by a signal.
    """
    settings = settings_of(ctx)
    if take_it and not reason:
        raise click.UsageError("--take needs --reason")
    query = _requirements(requirements)
    if query is not None:
        # With --requirements every positional is the command (RESOURCE is not given).
        argv = ([resource] if resource is not None else []) + list(command)
        if take_it or shared:
            raise click.UsageError(
                "--requirements holds one resource exclusively: no --take/--shared"
            )
    elif resource is None:
        raise click.UsageError("Missing argument 'RESOURCE' (or --requirements)")
    else:
        argv = list(command)
    if not argv:
        raise click.UsageError("Missing argument 'COMMAND...'")
    what = resource if query is None else f"a resource matching {requirements}"
    assert what is not None

    async def body() -> int:
        try:
            async with holding(
                settings,
                resource or "",
                shared=shared,
                wait=wait,
                ttl=ttl,
                note=note,
                name=name or os.path.basename(argv[0]),
                take_reason=reason if take_it else None,
                requirements=query,
            ) as held:
                verbose_note(
                    settings,
                    f"holding {held.resource} ({format_token(held.token)}), allocation"
                    f" {held.lease_id}, queued {held.queued:.3f} s",
                )
                code = await _run_child(held, argv, kill_after)
            verbose_note(settings, f"released {held.resource} after {held.duration or 0:.3f} s")
            return code
        except _NOT_IN_TIME as exc:
            error(_not_in_time(what, exc))
            return EXIT_TEMPFAIL

    return run(settings, body)


async def _run_child(held: Lease, argv: list[str], kill_after: float) -> int:
    """Run ``argv`` while ``held`` lasts; return the exit code ``lease hold`` should use."""
    env = dict(os.environ)
    env["ROOST_LEASE_RESOURCE"] = held.resource
    env["ROOST_LEASE_TOKEN"] = json.dumps(to_json(held.token))
    if held.attributes:
        env.update(resource_env(held.resource, held.attributes))
    with anyio.open_signal_receiver(*_FORWARDED) as signals:
        # Signals that arrive while the command starts are forwarded once it runs.
        try:
            # stdin/stdout/stderr None: the command shares this terminal, as if run directly.
            proc = await anyio.open_process(argv, env=env, stdin=None, stdout=None, stderr=None)
        except OSError as exc:
            error(f"cannot run {argv[0]}: {exc.strerror or exc}")
            return 127 if isinstance(exc, FileNotFoundError) else 126
        lost = False
        async with proc, anyio.create_task_group() as tg:

            async def forward() -> None:
                async for signum in signals:
                    if proc.returncode is None and not _terminal_sent_it(signum):
                        proc.send_signal(signum)

            async def stop_on_loss() -> None:
                nonlocal lost
                reason = await held.wait_lost()
                lost = True
                error(f"lease on {held.resource} lost ({_lost(held, reason)}); stopping {argv[0]}")
                await _stop(proc, kill_after)

            tg.start_soon(forward)
            tg.start_soon(stop_on_loss)
            code = await proc.wait()
            tg.cancel_scope.cancel()
    if code >= 0:
        return code
    return EXIT_TEMPFAIL if lost else 128 - code


def _requirements(text: str | None) -> dict[str, Any] | None:
    if text is None:
        return None
    try:
        query = json.loads(text)
    except ValueError as exc:
        raise click.UsageError(f"--requirements is not JSON: {exc}") from exc
    if not isinstance(query, dict):
        raise click.UsageError("--requirements must be a JSON object")
    return query


def resource_env(resource: str, attributes: dict[str, Any]) -> dict[str, str]:
    """The variables a pool grant adds to the command's environment: ``ROOST_RESOURCE``,
    ``ROOST_RESOURCE_JSON`` and, as py-lockable does, ``str(value)`` of each attribute under
    its upper-cased name (names that are not identifiers are left out)."""
    env = {
        key.upper(): str(value)
        for key, value in attributes.items()
        if isinstance(key, str) and key.isidentifier()
    }
    env["ROOST_RESOURCE"] = resource
    env["ROOST_RESOURCE_JSON"] = json.dumps(to_json(attributes), sort_keys=True)
    return env


def _terminal_sent_it(signum: int) -> bool:
    """Whether a SIGINT most likely came from Ctrl-C on our terminal.

    The terminal sends Ctrl-C to its whole foreground process group, the command included
    (it shares our group), so forwarding it too would interrupt the command twice.
    """
    if signum != signal.SIGINT:
        return False
    for stream in (sys.stdin, sys.stdout, sys.stderr):
        try:
            if stream is not None and stream.isatty():
                return os.tcgetpgrp(stream.fileno()) == os.getpgrp()
        except (OSError, ValueError):
            continue
    return False


async def _stop(proc: anyio.abc.Process, kill_after: float) -> None:
    """SIGTERM ``proc``, then SIGKILL it if it still runs after ``kill_after`` seconds."""
    if proc.returncode is not None:
        return
    proc.terminate()
    with anyio.move_on_after(kill_after):
        await proc.wait()
        return
    if proc.returncode is None:
        proc.kill()
