"""Shared machinery of the ``roost`` command line: options, output, running, exit codes.

Rules of this module:

- Nothing heavy at import time: rich and the client library load inside the functions that
  need them, and the broker is never imported here.
- Results go to stdout, diagnostics to stderr; an error is one line, a traceback only with ``-v``.
- ``--json`` prints one JSON object per line; without it a terminal gets rich tables and a pipe
  gets plain tab-separated text, so scripts never see colour codes.
- Exceptions become exit codes in exactly one place, :func:`exit_code_for`.
- The client library's log records reach stderr only with ``-v`` (as ``roost: ...`` lines):
  without it the command's own one-line message is all a user sees.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import logging
import math
import os
import signal
import sys
import threading
import traceback
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Sequence
from contextlib import AbstractAsyncContextManager, AsyncExitStack, asynccontextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TextIO, TypeVar

import anyio
import click

from roost import errors
from roost.cli import credentials
from roost.protocol.messages import Unknown
from roost.protocol.values import pack

if TYPE_CHECKING:
    from roost.client import Client

__all__ = (
    "DEFAULT_SERVER",
    "EXIT_CONNECT",
    "EXIT_INTERRUPTED",
    "EXIT_OK",
    "EXIT_REMOTE",
    "EXIT_TEMPFAIL",
    "EXIT_USAGE",
    "Output",
    "Settings",
    "answer",
    "connected",
    "connection_options",
    "enter_within",
    "error",
    "exit_code_for",
    "format_age",
    "format_duration",
    "format_value",
    "open_client",
    "parse_value",
    "print_stream",
    "run",
    "settings_of",
    "split_server",
    "stdin_lines",
    "to_json",
    "until_interrupted",
    "verbose_note",
    "verbose_option",
)

EXIT_OK = 0
EXIT_REMOTE = 1
EXIT_USAGE = 2
EXIT_CONNECT = 3
EXIT_TEMPFAIL = 75  # EX_TEMPFAIL from sysexits.h: "try again later"
EXIT_INTERRUPTED = 130  # 128 + SIGINT, what a shell reports for Ctrl-C

DEFAULT_SERVER = "localhost:11236"

F = TypeVar("F", bound=Callable[..., Any])
T = TypeVar("T")


@dataclass
class Settings:
    """The global options, filled in by the group and overridden by each sub-command."""

    server: str | None = None
    timeout: float = 5.0
    json: bool = False
    verbose: bool = False
    #: Login and TLS (roost.cli.credentials).
    user: str | None = None
    password_file: str | None = None
    tls_ca: str | None = None
    tls_cert: str | None = None
    tls_key: str | None = None

    @property
    def address(self) -> str:
        """``HOST:PORT`` to connect to: ``-s``, then ``ROOST_SERVER``, then ``ESHET_SERVER``."""
        for candidate in (
            self.server,
            os.environ.get("ROOST_SERVER"),
            os.environ.get("ESHET_SERVER"),
        ):
            if candidate:
                return candidate
        return DEFAULT_SERVER


def settings_of(ctx: click.Context) -> Settings:
    """The one :class:`Settings` shared by the whole command line invocation."""
    root = ctx.find_root()
    if not isinstance(root.obj, Settings):
        root.obj = Settings()
    return root.obj


def _store(ctx: click.Context, param: click.Parameter, value: Any) -> None:
    # Options appear both on the group and on each sub-command; whichever is given last on the
    # command line wins, and an option left out never resets one given earlier.
    if value is None or value is False:
        return
    setattr(settings_of(ctx), str(param.name), value)


def _check_server(ctx: click.Context, param: click.Parameter, value: str | None) -> str | None:
    if value is None:
        return None
    scheme, sep, rest = value.partition("://")
    host, port = split_server(rest if sep and scheme in ("tcp", "tls") else value)
    if not host or port is None or not 0 < port < 65536:
        raise click.BadParameter(f"{value!r} is not [tls://]HOST[:PORT]", ctx=ctx, param=param)
    _store(ctx, param, value)
    return value


def split_server(text: str, default_port: int = 11236) -> tuple[str, int | None]:
    """Split ``host``, ``host:port``, ``[v6addr]`` or ``[v6addr]:port``.

    The port is ``default_port`` when absent and None when it is not a number.
    """
    if text.startswith("["):
        host, _, rest = text[1:].partition("]")
        port_text = rest[1:] if rest.startswith(":") else (rest or None)
    elif text.count(":") == 1:
        host, _, port_text = text.partition(":")
    else:
        host, port_text = text, None
    if port_text is None:
        return host, default_port
    try:
        return host, int(port_text)
    except ValueError:
        return host, None


_verbose = click.option(
    "-v",
    "--verbose",
    is_flag=True,
    default=False,
    expose_value=False,
    callback=_store,
    help="Show tracebacks and extra detail on errors.",
)


def connection_options(func: F) -> F:
    """Add ``-s``, ``--timeout``, ``--json`` and ``-v`` to a command (the group has them too)."""
    options = [
        click.option(
            "-s",
            "--server",
            metavar="HOST[:PORT]",
            default=None,
            expose_value=False,
            callback=_check_server,
            help="Broker address [default: $ROOST_SERVER, $ESHET_SERVER, localhost:11236].",
        ),
        click.option(
            "--timeout",
            type=click.FloatRange(min=0, min_open=True),
            metavar="SECONDS",
            default=None,
            expose_value=False,
            callback=_store,
            help="Give up connecting or waiting for an answer after this long [default: 5].",
        ),
        click.option(
            "--json",
            "json",
            is_flag=True,
            default=False,
            expose_value=False,
            callback=_store,
            help="Print one JSON object per line.",
        ),
        _verbose,
        *credentials.options(_store),
    ]
    for option in reversed(options):
        func = option(func)
    return func


def verbose_option(func: F) -> F:
    """Add ``-v/--verbose`` alone to a command (the group has it too)."""
    return _verbose(func)


# -- values ------------------------------------------------------------------------------------


def parse_value(text: str) -> Any:
    """A command line value: JSON if it parses as JSON, else the text itself as a string.

    So ``42`` is an int, ``"42"`` (with the quotes) and ``forty-two`` are strings, and
    ``{"a": 1}`` is a map.

    Raises:
        click.BadParameter: valid JSON without a msgpack form (an integer beyond 64 bits); a
            usage error, so the command exits 2 before connecting.
    """
    try:
        value = json.loads(text)
    except ValueError:
        return text
    try:
        pack(value)
    except (TypeError, ValueError, OverflowError) as exc:
        raise click.BadParameter(f"{text!r} cannot be sent: {exc}") from None
    return value


def to_json(value: Any) -> Any:
    """Turn a decoded msgpack value into something :func:`json.dumps` accepts.

    Binary values become ``{"$base64": "..."}``; map keys that are not strings become their JSON
    text; non-finite floats become the strings ``"NaN"``, ``"Infinity"``, ``"-Infinity"``.
    """
    if value is None or isinstance(value, bool | int | str):
        return value
    if isinstance(value, float):
        if math.isfinite(value):
            return value
        return "NaN" if math.isnan(value) else ("Infinity" if value > 0 else "-Infinity")
    if isinstance(value, bytes | bytearray | memoryview):
        return {"$base64": base64.b64encode(bytes(value)).decode("ascii")}
    if isinstance(value, list | tuple):
        return [to_json(item) for item in value]
    if isinstance(value, dict):
        return {
            (key if isinstance(key, str) else format_value(key)): to_json(item)
            for key, item in value.items()
        }
    return str(value)


def format_value(value: Any) -> str:
    """One-line text for a value: JSON, or the bare word ``unknown`` for an unknown state."""
    if value is Unknown:
        return "unknown"
    return json.dumps(to_json(value), ensure_ascii=False)


def format_duration(seconds: float) -> str:
    """A short human duration: ``4.2s``, ``12s``, ``3m04s``, ``2h05m``."""
    if seconds < 60:
        return f"{seconds:.0f}s" if seconds >= 10 else f"{seconds:.1f}s"
    minutes, secs = divmod(int(seconds), 60)
    if minutes < 60:
        return f"{minutes}m{secs:02d}s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m"


def format_age(since: Any, now: float) -> str:
    """How long ago the wall-clock time ``since`` (seconds) was; empty if it is not a number."""
    if not isinstance(since, int | float) or isinstance(since, bool):
        return ""
    return format_duration(max(0.0, now - float(since)))


# -- output ------------------------------------------------------------------------------------


class Output:
    """Writes results in the form the invocation asked for (JSON lines, rich, or plain)."""

    def __init__(self, settings: Settings) -> None:
        self.json = settings.json
        self.rich = not settings.json and sys.stdout.isatty()

    def record(self, obj: dict[str, Any], text: str) -> None:
        """Print one result: ``obj`` as a JSON line with ``--json``, otherwise ``text``."""
        if self.json:
            click.echo(json.dumps(to_json(obj), ensure_ascii=False))
        else:
            click.echo(text)
        sys.stdout.flush()

    def table(
        self,
        columns: Sequence[str],
        rows: Iterable[Sequence[str]],
        records: Iterable[dict[str, Any]],
        *,
        title: str | None = None,
        header: bool = True,
    ) -> None:
        """Print a table: JSON lines of ``records``, a rich table, or tab-separated rows."""
        if self.json:
            for obj in records:
                click.echo(json.dumps(to_json(obj), ensure_ascii=False))
            return
        rows = list(rows)
        if self.rich:
            # rich costs start-up time, so only a terminal pays for it.
            from rich.console import Console  # noqa: PLC0415
            from rich.table import Table  # noqa: PLC0415

            table = Table(*columns, title=title, box=None, header_style="bold")
            for row in rows:
                table.add_row(*row)
            Console().print(table)
            return
        if header:
            click.echo("\t".join(columns))
        for row in rows:
            click.echo("\t".join(row))

    def note(self, text: str) -> None:
        """A human remark on stderr, left out with ``--json`` so pipelines stay clean."""
        if not self.json:
            click.echo(text, err=True)


# -- running -----------------------------------------------------------------------------------


def open_client(settings: Settings, **kwargs: Any) -> Client:
    """A client for the broker ``settings`` names; the caller enters it with ``async with``."""
    from roost.client import Client  # noqa: PLC0415 (only client commands pay for it)

    return Client(server=credentials.client_options(settings, kwargs), **kwargs)


@asynccontextmanager
async def connected(settings: Settings, **kwargs: Any) -> AsyncIterator[Client]:
    """Connect within ``--timeout`` and close the client on the way out.

    Raises:
        ConnectFailed: no connection (and hello) within the timeout.
    """
    # Entering the client opens its task group, so no cancel scope of ours may wrap the entry
    # (scopes must nest); the client bounds the wait itself with connect_timeout. A refused
    # connection fails at once, as in other command line clients, instead of being retried.
    kwargs.setdefault("connect_timeout", settings.timeout)
    kwargs.setdefault("retry_first_connect", False)
    async with open_client(settings, **kwargs) as client:
        yield client


async def answer(settings: Settings, request: Awaitable[Any]) -> Any:
    """Await one request, giving up after ``--timeout`` with ``TimeoutError``."""
    with anyio.fail_after(settings.timeout):
        return await request


async def enter_within(
    settings: Settings, stack: AsyncExitStack, cm: AbstractAsyncContextManager[T]
) -> T:
    """Enter ``cm`` on ``stack``, giving up after ``--timeout`` with ``TimeoutError``."""
    with anyio.fail_after(settings.timeout):
        return await stack.enter_async_context(cm)


async def print_stream(
    values: AsyncIterator[Any], show: Callable[[Any], None], count: int | None
) -> None:
    """Show each value until the stream ends or ``count`` values were shown."""
    seen = 0
    async for value in values:
        show(value)
        seen += 1
        if count is not None and seen >= count:
            return


async def until_interrupted(body: Callable[[], Awaitable[None]]) -> None:
    """Run ``body`` until it returns or SIGINT/SIGTERM arrives; either way return normally.

    The signal ends the body by cancellation, so ``async with`` blocks inside it close cleanly
    (registrations are dropped, the connection is closed) before the command exits 0.
    """
    # The receiver is in place before the body starts, so a signal that arrives as soon as
    # the body has printed something is already ours (never a KeyboardInterrupt).
    with anyio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
        async with anyio.create_task_group() as tg:

            async def watch() -> None:
                async for _ in signals:
                    tg.cancel_scope.cancel()
                    return

            async def work() -> None:
                await body()
                tg.cancel_scope.cancel()

            tg.start_soon(watch)
            tg.start_soon(work)


async def stdin_lines() -> AsyncIterator[str]:
    """The lines of stdin, read in a daemon thread so that a blocked read never keeps the
    process alive after the command ends (Ctrl-C while waiting for input exits at once)."""
    send, receive = anyio.create_memory_object_stream[str](math.inf)
    loop = asyncio.get_running_loop()

    def deliver(line: str | None) -> None:
        with contextlib.suppress(anyio.ClosedResourceError, anyio.BrokenResourceError):
            if line is None:
                send.close()
            else:
                send.send_nowait(line)

    def pump() -> None:
        # The loop may be gone by the time a line arrives; then nobody wants it.
        with contextlib.suppress(RuntimeError):
            try:
                for line in sys.stdin:
                    loop.call_soon_threadsafe(deliver, line)
            finally:
                loop.call_soon_threadsafe(deliver, None)

    threading.Thread(target=pump, name="roost-stdin", daemon=True).start()
    try:
        async with receive:
            async for line in receive:
                yield line
    finally:
        send.close()


def verbose_note(settings: Settings, message: str) -> None:
    """With ``-v``, say on stderr what the command is doing (``observing /x``).

    Streaming commands say it once their subscription is in place, so a script (or a test)
    can wait for that line before producing the values it expects to see.
    """
    if settings.verbose:
        click.echo(f"roost: {message}", err=True)


def error(message: str) -> None:
    """Print one diagnostic line on stderr."""
    click.echo(f"roost: {message}", err=True)


def _leaf(exc: BaseException) -> BaseException:
    # anyio task groups wrap failures in groups; the first real failure is the one to report.
    while isinstance(exc, BaseExceptionGroup):
        inner = [e for e in exc.exceptions if not _is_cancel(e)]
        exc = inner[0] if inner else exc.exceptions[0]
    return exc


def _is_cancel(exc: BaseException) -> bool:
    # Called after the loop has ended, so anyio cannot be asked; commands run on asyncio.
    return isinstance(exc, asyncio.CancelledError)


def exit_code_for(exc: BaseException, settings: Settings) -> tuple[int, str]:
    """The exit code and the one-line message for an exception that ended a command."""
    address = settings.address
    if isinstance(exc, errors.LeasesUnsupported):
        return EXIT_REMOTE, f"the broker at {address} does not offer leases"
    if isinstance(exc, errors.SubtreeUnsupported):
        return EXIT_REMOTE, f"the broker at {address} does not offer subtree subscriptions"
    if isinstance(exc, errors.LoginFailed):
        return EXIT_CONNECT, f"{address}: {exc}"
    if isinstance(exc, errors.RemoteError):
        value = exc.value
        text = str(exc) if isinstance(exc, errors.LeaseError) else None
        if text is None and isinstance(value, dict) and isinstance(value.get("reason"), str):
            text = f"{value.get('status')}: {value['reason']}"
        if text is None:
            text = value if isinstance(value, str) else format_value(value)
        return EXIT_REMOTE, text
    if isinstance(exc, errors.LeaseLost):
        return EXIT_REMOTE, f"lease lost ({exc})"
    if isinstance(exc, errors.ConnectFailed):
        # The client's message repeats the address; its cause says why in a few words.
        cause = exc.__cause__
        if cause is None:
            return EXIT_CONNECT, f"cannot connect to {address} within {settings.timeout:g} s"
        from roost.client.reconnect import describe_failure  # noqa: PLC0415

        return EXIT_CONNECT, f"cannot connect to {address}: {describe_failure(cause)}"
    if isinstance(exc, ConnectionRefusedError):
        return EXIT_CONNECT, f"cannot connect to {address}: {_reason(exc)}"
    if isinstance(exc, errors.ConnectionClosed):
        return EXIT_CONNECT, f"connection to {address} lost: {_reason(exc)}"
    if isinstance(exc, TimeoutError):
        return EXIT_CONNECT, f"no answer from {address} within {settings.timeout:g} s"
    if isinstance(exc, OSError):
        return EXIT_CONNECT, f"cannot connect to {address}: {_reason(exc)}"
    if isinstance(exc, errors.ProtocolError):
        return EXIT_REMOTE, f"protocol error from {address}: {_reason(exc)}"
    return EXIT_REMOTE, f"internal error: {type(exc).__name__}: {exc}"


def _reason(exc: BaseException) -> str:
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror.lower() if exc.strerror[0].isupper() else exc.strerror
    return str(exc) or type(exc).__name__


class _CommandLog(logging.StreamHandler[TextIO]):
    """Where the client library's log records go while one command runs."""


def _route_library_logs(verbose: bool) -> None:
    # Without any handler Python prints the library's warnings bare on stderr, so a lost lease
    # would be reported twice (once by the library, once by the command). One handler per
    # command, replacing the previous one: in-process callers run many commands.
    logger = logging.getLogger("roost")
    for old in [h for h in logger.handlers if isinstance(h, _CommandLog)]:
        logger.removeHandler(old)
    handler = _CommandLog(sys.stderr)
    handler.setFormatter(logging.Formatter("roost: %(message)s"))
    handler.setLevel(logging.INFO if verbose else logging.CRITICAL + 1)
    logger.addHandler(handler)
    logger.setLevel(logging.INFO if verbose else logging.NOTSET)


def run(
    settings: Settings,
    func: Callable[[], Awaitable[int | None]],
    *,
    stream: bool = False,
) -> int:
    """Run one command's coroutine on asyncio and turn its outcome into an exit code.

    Args:
        settings: the global options (for messages, ``-v`` and the server address).
        func: the coroutine function; it returns an exit code or None for 0.
        stream: the command runs until interrupted, so Ctrl-C is success (0), not 130.

    Returns:
        the exit code. Never raises except for ``SystemExit``; a closed stdout (``| head``) ends
        the command quietly with 0. The client library's log lines show only with ``-v``.
    """
    _route_library_logs(settings.verbose)
    try:
        result = anyio.run(func, backend="asyncio")
    except KeyboardInterrupt:
        return EXIT_OK if stream else EXIT_INTERRUPTED
    except BaseException as raw:
        exc = _leaf(raw)
        if isinstance(exc, KeyboardInterrupt):
            return EXIT_OK if stream else EXIT_INTERRUPTED
        if isinstance(exc, BrokenPipeError):
            # The reader went away (``roost listen /x | head -1``): not an error. Point stdout at
            # /dev/null so the interpreter's final flush does not complain either.
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, sys.stdout.fileno())
            return EXIT_OK
        if isinstance(exc, SystemExit | click.exceptions.Exit | click.ClickException):
            raise exc from None
        code, message = exit_code_for(exc, settings)
        if settings.verbose:
            traceback.print_exception(raw)
        error(message)
        return code
    return EXIT_OK if result is None else result
