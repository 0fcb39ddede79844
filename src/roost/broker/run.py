"""``serve()``: run a broker in the foreground with logging, until SIGINT or SIGTERM.

Rules of this module:

- Logging goes to stderr through the stdlib ``logging`` tree under ``roost``, either as console
  lines or as one JSON object per line (``log_format="json"``) carrying the ``extra`` fields.
- A signal stops the broker cleanly (every connection closed) and ``serve`` returns normally,
  so the command line exits 0.
- The event loop is uvloop when installed (``loop="auto"``), else asyncio's own; the broker
  behaves the same on both, uvloop only costs less CPU per message.
- Once listening, the process's start-up heap is frozen out of the cyclic garbage collector
  (:func:`settle_gc`): a full collection would otherwise walk every imported module's objects
  and stall every connection for milliseconds. Only a process that owns its whole heap does
  this; an embedded :class:`Broker` leaves the host's collector alone.
"""

from __future__ import annotations

import asyncio
import gc
import importlib
import json
import logging
import signal
import sys
import time
from collections.abc import Callable
from typing import Any, Final

from roost.broker.gateway import DEFAULT_HTTP_PORT
from roost.broker.limits import Limits
from roost.broker.server import DEFAULT_MAX_OUTBOUND, DEFAULT_PORT, Broker
from roost.broker.storefile import StoreSettings

__all__ = (
    "LOOPS",
    "JsonFormatter",
    "configure_logging",
    "loop_factory",
    "serve",
    "settle_gc",
)

LOG_FORMATS: Final = ("console", "json")
#: Event loop choices: ``auto`` is uvloop when importable, else ``asyncio``.
LOOPS: Final = ("auto", "asyncio", "uvloop")
#: Net new container objects between young collections (CPython's default is 700). Routing
#: allocates few objects that outlive a message, so rarer young collections cost no memory
#: worth speaking of, and each stays well under a millisecond.
GC_YOUNG_THRESHOLD: Final = 20_000

# Attributes every LogRecord has; anything else on a record came from ``extra``.
_STANDARD = frozenset(vars(logging.LogRecord("n", logging.INFO, "p", 0, "m", None, None))) | {
    "message",
    "asctime",
}


class JsonFormatter(logging.Formatter):
    """One JSON object per record: ts, level, logger, msg, and the record's extra fields."""

    def format(self, record: logging.LogRecord) -> str:
        data: dict[str, Any] = {
            "ts": round(record.created, 6),
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        for key, value in vars(record).items():
            if key not in _STANDARD and not key.startswith("_"):
                data[key] = value
        if record.exc_info:
            data["exc"] = self.formatException(record.exc_info)
        return json.dumps(data, default=str)


def configure_logging(level: str = "info", log_format: str = "console") -> None:
    """Send ``roost`` logs to stderr at ``level`` in ``log_format`` (``console`` or ``json``).

    Raises:
        ValueError: an unknown level or format.
    """
    if log_format not in LOG_FORMATS:
        raise ValueError(f"log format must be one of {', '.join(LOG_FORMATS)}")
    numeric = logging.getLevelName(level.upper())
    if not isinstance(numeric, int):
        raise ValueError(f"unknown log level {level!r}")
    handler = logging.StreamHandler(sys.stderr)
    if log_format == "json":
        handler.setFormatter(JsonFormatter())
    else:
        formatter = logging.Formatter("%(asctime)s %(levelname)-7s %(name)s: %(message)s")
        formatter.converter = time.gmtime
        handler.setFormatter(formatter)
    logger = logging.getLogger("roost")
    for old in list(logger.handlers):
        logger.removeHandler(old)
    logger.addHandler(handler)
    logger.setLevel(numeric)
    logger.propagate = False


def loop_factory(loop: str = "auto") -> Callable[[], asyncio.AbstractEventLoop]:
    """Return a factory of new event loops of the kind ``loop`` names (see :data:`LOOPS`).

    ``auto`` falls back to asyncio's loop silently when uvloop cannot be imported.

    Raises:
        ValueError: an unknown ``loop``, or ``uvloop`` asked for but not importable.
    """
    if loop not in LOOPS:
        raise ValueError(f"loop must be one of {', '.join(LOOPS)}, not {loop!r}")
    if loop != "asyncio":
        try:
            uvloop: Any = importlib.import_module("uvloop")
        except ImportError:
            if loop == "uvloop":
                raise ValueError("uvloop is not installed") from None
        else:
            factory: Callable[[], asyncio.AbstractEventLoop] = uvloop.new_event_loop
            return factory
    return asyncio.new_event_loop


def settle_gc() -> None:
    """Tune the cyclic garbage collector for a long-running broker process; call once started.

    Collects what start-up left behind, then freezes every surviving object (modules, classes,
    the broker's own tables) into the collector's permanent generation so that no later
    collection walks them again, and raises the young-generation threshold
    (:data:`GC_YOUNG_THRESHOLD`). Cycles created later are still collected; only objects that
    exist at the call are exempt, and those live as long as the process anyway. Not for
    embedders: it changes the collector of the whole process.
    """
    gc.collect()
    gc.freeze()
    _, older, oldest = gc.get_threshold()
    gc.set_threshold(GC_YOUNG_THRESHOLD, older, oldest)


async def _run(broker: Broker) -> None:
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)

    def reload() -> None:  # SIGHUP: read the pool inventory, users and access rules again
        if broker.extras is not None:
            broker.extras.reload_pools(loop.time())
        if broker.auth.reload is not None:
            _reload(broker)

    loop.add_signal_handler(signal.SIGHUP, reload)
    try:
        async with broker:
            settle_gc()
            await stop.wait()
            logging.getLogger("roost.broker").info("stopping")
    finally:
        for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
            loop.remove_signal_handler(signum)


def _reload(broker: Broker) -> None:
    """SIGHUP: re-read users and access rules; a failure keeps the old ones and is logged."""
    try:
        broker.reload()
    except Exception as exc:
        logging.getLogger("roost.broker").error("reload failed, nothing changed: %s", exc)


def serve(
    host: str = "127.0.0.1",
    port: int = DEFAULT_PORT,
    *,
    log_level: str = "info",
    log_format: str = "console",
    max_outbound: int = DEFAULT_MAX_OUTBOUND,
    loop: str = "auto",
    http_port: int | None = DEFAULT_HTTP_PORT,
    store: StoreSettings | None = None,
    limits: Limits | None = None,
    **options: Any,
) -> None:
    """Run a broker in the foreground until SIGINT or SIGTERM, then close every connection and
    return normally. Logs ``listening on HOST:PORT`` once bound.

    Args:
        host, port: the address to listen on (port 0 picks a free port; the log line shows it).
        log_level: ``debug``, ``info``, ``warning`` or ``error``.
        log_format: ``console`` or ``json`` (one object per line).
        max_outbound: per-connection bound on unsent output, in bytes (protocol.md §14).
        loop: ``auto`` (uvloop when installed), ``asyncio`` or ``uvloop`` (:func:`loop_factory`).
        http_port: the HTTP and websocket gateway's port on ``host`` (dashboard, HTTP and
            ``/ws`` API, ``/metrics``); 0 picks a free one; ``None`` runs no gateway.
        store: stored values (:class:`~roost.broker.storefile.StoreSettings`), kept in
            ``state_dir``.
        limits: resource limits and deadlines (docs/reference/limits.md).
        **options: lease settings (``state_dir``, ``audit_file``, ``lease_config``,
            ``resources``, ``ttl_max``, ``max_resources``, ``max_waits``; see :class:`Broker`).

    Raises:
        OSError: the address cannot be bound.
        ValueError, TypeError: a bad argument (uvloop asked for but missing) or an unknown
            option.
    """
    factory = loop_factory(loop)
    configure_logging(log_level, log_format)
    broker = Broker(
        host,
        port,
        max_outbound=max_outbound,
        http_port=http_port,
        store=store,
        locks=options.pop("locks", None),
        pools=options.pop("pools", None),
        limits=limits,
        **options,
    )
    with asyncio.Runner(loop_factory=factory) as runner:
        runner.run(_run(broker))
