"""``roost serve``: run a broker in the foreground.

Rules of this module:

- Every start-up failure is one line on stderr, ``roost: ...``, never a traceback unless
  ``-v`` was given: exit 2 for a bad lease configuration (the file or the lease options), exit 1
  for anything else that stops the broker from serving (the address is taken, the state
  directory or the audit file cannot be used).
- The configuration file (``--config``) and the lease config file are read here, before the
  broker starts, so that their errors are told apart from the others; the broker then gets the
  parsed settings. A flag given on the command line overrides the file.
- The broker is imported only when the command runs, so client commands never load it.
"""

from __future__ import annotations

import dataclasses
import math
import traceback
from dataclasses import replace
from typing import TYPE_CHECKING

import click
from click.core import ParameterSource

from roost.cli.main import ByteSize
from roost.cli.output import EXIT_OK, EXIT_REMOTE, EXIT_USAGE, error, settings_of, verbose_option

if TYPE_CHECKING:
    from roost.broker.storefile import StoreSettings

__all__ = ("serve",)

_LOG_LEVELS = ("debug", "info", "warning", "error")


def _finite_seconds(
    ctx: click.Context, param: click.Parameter, value: float | None
) -> float | None:
    if value is not None and not math.isfinite(value):
        raise click.BadParameter(f"{value!r} is not a finite number of seconds", ctx, param)
    return value


@click.command()
@click.option(
    "--host",
    default=None,
    help="Address to listen on [default: the file's listeners, else 127.0.0.1].",
)
@click.option(
    "--port",
    type=click.IntRange(0, 65535),
    default=None,
    help="TCP port to listen on, 0 picks a free one [default: 11236].",
)
@click.option(
    "--allow-anonymous",
    is_flag=True,
    default=False,
    help="Let connections on a network address skip login (as user anonymous).",
)
@click.option(
    "--http-port",
    type=click.IntRange(0, 65535),
    default=11237,
    show_default=True,
    envvar="ROOST_HTTP_PORT",
    help="Port of the dashboard, HTTP and websocket API and /metrics (0 turns it off) "
    "[env: ROOST_HTTP_PORT].",
)
@click.option(
    "--log-level",
    type=click.Choice(_LOG_LEVELS, case_sensitive=False),
    default="info",
    show_default=True,
    help="Lowest log level written to stderr.",
)
@click.option(
    "--log-format",
    type=click.Choice(("console", "json")),
    default="console",
    show_default=True,
    help="Human-readable lines or one JSON object per line.",
)
@click.option(
    "--max-outbound",
    type=ByteSize(),
    default=8 * 1024 * 1024,
    show_default="8MiB",
    help="Bytes queued for one slow client before it is disconnected.",
)
@click.option(
    "--loop",
    type=click.Choice(("auto", "asyncio", "uvloop")),
    default="auto",
    show_default=True,
    help="Event loop: uvloop when installed (auto), or asyncio's own.",
)
@click.option(
    "--state-dir",
    type=click.Path(),
    default=None,
    help="Directory for lease state kept across restarts (the epoch).",
)
@click.option(
    "--audit-file",
    type=click.Path(),
    default=None,
    help="Append one JSON line per lease grant, return, take and revocation.",
)
@click.option(
    "--config",
    "config_file",
    metavar="FILE",
    type=click.Path(),
    default=None,
    help="TOML configuration file (see docs/reference/config.md); flags override it.",
)
@click.option(
    "--lease-config",
    metavar="FILE",
    type=click.Path(),
    default=None,
    help="TOML file with the lease limits and the declared resources.",
)
@click.option(
    "--ttl-max",
    metavar="SECONDS",
    type=click.FloatRange(min=0, min_open=True),
    default=None,
    callback=_finite_seconds,
    help="Largest ttl a lease may ask for [default: the file's, else 3600].",
)
@click.option(
    "--max-resources",
    metavar="N",
    type=click.IntRange(min=1),
    default=None,
    help="Lease resource records kept at most [default: the file's, else 10000].",
)
@click.option(
    "--max-waits",
    metavar="N",
    type=click.IntRange(min=1),
    default=None,
    help="Queued acquires one connection may have at once [default: the file's, else 1000].",
)
@click.option(
    "--store",
    "store_patterns",
    metavar="PATTERN",
    multiple=True,
    help="Keep values set under PATTERN (e.g. '/store/**') across restarts, in --state-dir "
    "(repeatable; replaces the file's [store] create list).",
)
@click.option(
    "--store-fsync/--no-store-fsync",
    default=None,
    help="Flush each stored set to disk before acknowledging it [default: the file's, else on].",
)
@click.option(
    "--emergency-key-file",
    metavar="FILE",
    type=click.Path(dir_okay=False),
    default=None,
    help="File with the emergency key that unlocks any durable lock [default: the file's].",
)
@click.option(
    "--inventory",
    metavar="FILE",
    type=click.Path(dir_okay=False),
    default=None,
    help="Pool inventory (py-lockable's resources.json); re-read on SIGHUP [default: the file's].",
)
@click.option(
    "--max-connections",
    metavar="N",
    type=click.IntRange(min=0),
    default=None,
    help="Open connections at most; more are closed at accept, 0 = no limit [default: 10000].",
)
@click.option(
    "--max-per-connection",
    metavar="N",
    type=click.IntRange(min=1),
    default=None,
    help="Registrations plus subscriptions of one connection [default: 10000].",
)
@click.option(
    "--hello-timeout",
    metavar="SECONDS",
    type=click.FloatRange(min=0),
    default=None,
    callback=_finite_seconds,
    help="Seconds a new connection has to say hello, 0 = none [default: 10].",
)
@click.option(
    "--frame-timeout",
    metavar="SECONDS",
    type=click.FloatRange(min=0),
    default=None,
    callback=_finite_seconds,
    help="Seconds a started frame has to arrive whole, 0 = none [default: 30].",
)
@click.option(
    "--max-idle",
    metavar="SECONDS",
    type=click.FloatRange(min=0),
    default=None,
    callback=_finite_seconds,
    help="Close connections that asked for timeout 0 after this much silence, 0 = never "
    "[default: 3600].",
)
@verbose_option
@click.pass_context
def serve(
    ctx: click.Context,
    *,
    host: str | None,
    port: int | None,
    http_port: int,
    allow_anonymous: bool,
    log_level: str,
    log_format: str,
    max_outbound: int,
    loop: str,
    state_dir: str | None,
    audit_file: str | None,
    config_file: str | None,
    lease_config: str | None,
    ttl_max: float | None,
    max_resources: int | None,
    max_waits: int | None,
    store_patterns: tuple[str, ...],
    store_fsync: bool | None,
    emergency_key_file: str | None,
    inventory: str | None,
    max_connections: int | None,
    max_per_connection: int | None,
    hello_timeout: float | None,
    frame_timeout: float | None,
    max_idle: float | None,
) -> int:
    """Run a broker until interrupted (Ctrl-C or SIGTERM stops it cleanly).

    Exits 0 after a clean stop; 2 if the configuration is wrong (one line naming the file, the
    line, the key and the problem); 1 if it cannot start otherwise (address in use, a state
    directory or audit file it cannot use...). -v adds the traceback.
    """
    # Imported here: client commands never load the broker.
    from roost.broker import serve as run_broker  # noqa: PLC0415
    from roost.broker.auth.settings import from_sections  # noqa: PLC0415
    from roost.broker.config import BrokerConfig, load_config  # noqa: PLC0415
    from roost.broker.leases.config import load_lease_config  # noqa: PLC0415
    from roost.broker.leases.extras import PoolSettings  # noqa: PLC0415
    from roost.broker.leases.lockroutes import lock_settings  # noqa: PLC0415
    from roost.broker.limits import Limits  # noqa: PLC0415
    from roost.broker.listeners import Listener  # noqa: PLC0415
    from roost.errors import ConfigError  # noqa: PLC0415

    settings = settings_of(ctx)
    file = BrokerConfig("", {})
    try:
        if config_file is not None:
            file = load_config(config_file)
        # --lease-config replaces the file's [leases] section as a whole.
        config = load_lease_config(lease_config) if lease_config else file.get("leases")
        store = _store_settings(file.get("store"), store_patterns, store_fsync)
        locks = file.get("locks")
        if emergency_key_file is not None:
            locks = lock_settings(emergency_key_file)
        pools = file.get("pools")
        if inventory is not None:
            pools = PoolSettings(inventory, pools.resources if pools is not None else ())
        limits = file.get("limits", Limits()).replace(
            max_connections=max_connections,
            max_per_connection=max_per_connection,
            hello_timeout=hello_timeout,
            frame_timeout=frame_timeout,
            max_idle=max_idle,
        )
        auth = from_sections(file.get)
    except (ConfigError, ValueError) as exc:
        if settings.verbose:
            traceback.print_exc()
        error(str(exc))
        return EXIT_USAGE
    # The file's [http] port counts only where neither the flag nor ROOST_HTTP_PORT was given.
    http = file.get("http")
    if http is not None and ctx.get_parameter_source("http_port") is ParameterSource.DEFAULT:
        http_port = http.port
    if store is not None and state_dir is None:
        error("stored values ([store] or --store) need --state-dir")
        return EXIT_USAGE
    if config_file is not None:
        path = config_file
        auth = replace(auth, reload=lambda: from_sections(load_config(path).get))
    # --host/--port replace the file's listeners with one plain listener.
    listeners = file.get("listener")
    if listeners is None or host is not None or port is not None:
        listeners = (Listener(host or "127.0.0.1", 11236 if port is None else port),)
    host, port = listeners[0].host, listeners[0].port
    try:
        run_broker(
            host=host,
            port=port,
            http_port=http_port or None,
            listeners=listeners,
            auth=auth,
            allow_anonymous=allow_anonymous,
            log_level=log_level.lower(),
            log_format=log_format,
            max_outbound=max_outbound,
            loop=loop,
            state_dir=state_dir,
            audit_file=audit_file,
            lease_config=config,
            ttl_max=ttl_max,
            max_resources=max_resources,
            max_waits=max_waits,
            store=store,
            locks=locks,
            pools=pools,
            limits=limits,
        )
    except KeyboardInterrupt:
        return EXIT_OK  # a second Ctrl-C during shutdown: still a stop the user asked for
    except Exception as exc:  # every start-up failure is one line; the broker has stopped
        if settings.verbose:
            traceback.print_exc()
        error(f"cannot serve on {host}:{port}: {_reason(exc)}")
        return EXIT_USAGE if isinstance(exc, ConfigError) else EXIT_REMOTE
    return EXIT_OK


def _store_settings(
    file: StoreSettings | None, patterns: tuple[str, ...], fsync: bool | None
) -> StoreSettings | None:
    """The file's ``[store]`` settings with the flags applied; ``None`` when nothing is stored.

    Raises:
        ConfigError: a ``--store`` pattern is not a valid pattern.
    """
    from roost.broker.storefile import StoreSettings  # noqa: PLC0415
    from roost.broker.subtree import PatternError, parse_pattern  # noqa: PLC0415
    from roost.errors import ConfigError  # noqa: PLC0415

    if file is None and not patterns:
        return None
    settings = file if file is not None else StoreSettings()
    for pattern in patterns:
        try:
            parse_pattern(pattern)
        except PatternError as exc:
            raise ConfigError("--store", None, str(exc)) from exc
    if patterns:
        settings = dataclasses.replace(settings, create=patterns)
    if fsync is not None:
        settings = dataclasses.replace(settings, fsync=fsync)
    return settings


def _reason(exc: Exception) -> str:
    if isinstance(exc, OSError) and exc.strerror:
        return f"{exc.filename}: {exc.strerror}" if exc.filename else exc.strerror
    text = str(exc)
    return text if text else type(exc).__name__
