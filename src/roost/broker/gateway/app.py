"""The gateway: one aiohttp server beside the native listener, on the broker's event loop.

Rules of this module:

- Routes: ``/`` and ``/static/`` (the dashboard), ``/ws`` (JSON forms), ``/call/``, ``/get/``,
  ``/set/`` (eshetsrv's HTTP API), ``/metrics`` (Prometheus) and ``/api/stats`` (the same
  figures as JSON, for the dashboard and ``roost top``).
- aiohttp runs on the loop the broker runs on (asyncio's or uvloop), so websocket clients and
  HTTP requests reach the synchronous router directly: no thread, no queue between them.
- Bounds: request bodies of at most ``max_http_body`` bytes (aiohttp answers 413 beyond), at
  most ``max_http_requests`` HTTP requests waiting for an answer (503 beyond), at most
  ``max_http_connections`` connections, each closed after ``http_idle`` without a request in
  progress (:mod:`roost.broker.gateway.accept`), websockets counted against
  ``max_connections`` (:mod:`roost.broker.gateway.ws`); all from the broker's
  :class:`~roost.broker.limits.Limits`.
- ``authenticate`` is the hook for access control: an async callable that sees every request
  before its handler, refuses it by raising an ``aiohttp.web.HTTPException`` (401, 403) and
  returns the user the request acts as (``None``: anonymous), which the HTTP API's requests
  then go through the broker as (:data:`~roost.broker.gateway.http.USER`).
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Final

from aiohttp import web

from roost.broker.gateway.accept import CappedListener
from roost.broker.gateway.http import DEFAULT_TIMEOUT, USER, HttpApi, InternalClient
from roost.broker.gateway.link import Host
from roost.broker.gateway.metrics import LeaseCounts, LoopLag, Metrics
from roost.broker.gateway.ws import Admission, handle_ws

__all__ = ("DEFAULT_HTTP_PORT", "STATIC", "Authenticate", "Gateway")

#: eshetsrv's HTTP port; ``roost serve`` listens there unless told otherwise.
DEFAULT_HTTP_PORT: Final = 11237
#: The dashboard's files, shipped in the package.
STATIC: Final = Path(__file__).parent / "static"

#: Called with every request before its handler; raises an HTTPException to refuse it, returns
#: the user it acts as (``None``: anonymous).
Authenticate = Callable[[web.Request], Awaitable[str | None]]

log = logging.getLogger("roost.broker.gateway")


class Gateway:
    """HTTP, websockets, the dashboard and the metrics of one broker.

    Args:
        host: the broker (started: its router exists).
        address: the address to bind.
        port: the TCP port; 0 picks a free one.
        timeout: seconds an HTTP call, get or set waits for its answer.
        authenticate: the access-control hook (see the module rules), or ``None``.
    """

    def __init__(
        self,
        host: Host,
        address: str,
        port: int,
        *,
        timeout: float = DEFAULT_TIMEOUT,
        authenticate: Authenticate | None = None,
    ) -> None:
        self.host = host
        self.address = address
        self._port = port
        self.authenticate = authenticate
        self.leases = LeaseCounts()
        self.lag = LoopLag()
        self.metrics = Metrics(host.router, self.leases, self.lag, time.time())
        #: The session HTTP requests go through: an ordinary, anonymous client.
        self.client = InternalClient(host)
        #: The broker's own session that counts lease activity for the metrics; access rules
        #: do not apply to it, and it serves no outside request.
        self.watcher = InternalClient(
            host, self._lease_event, ("/meta/lease_events",), trusted=True
        )
        self.api = HttpApi(self.client, timeout, host.limits.max_http_requests, host=host)
        self.admission = Admission(host)
        self._runner: web.AppRunner | None = None
        #: The listening socket, once started (it counts and caps HTTP connections).
        self.listener: CappedListener | None = None
        self._bound = port

    @property
    def port(self) -> int:
        """The bound port (the requested one before start)."""
        return self._bound

    def _lease_event(self, path: str, value: object) -> None:
        self.leases.seen(value)

    def application(self) -> web.Application:
        """The aiohttp application with every route."""

        @web.middleware
        async def gate(
            request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
        ) -> web.StreamResponse:
            if self.authenticate is not None:
                request[USER] = await self.authenticate(request)
            return await handler(request)

        app = web.Application(middlewares=[gate], client_max_size=self.host.limits.max_http_body)
        app.add_routes(
            [
                web.get("/", self._index),
                web.get("/ws", self._ws),
                web.get("/metrics", self._metrics),
                web.get("/api/stats", self._stats),
                web.static("/static", STATIC),
                *self.api.routes(),
            ]
        )
        return app

    async def start(self) -> None:
        """Open the gateway's session and start listening.

        Raises:
            OSError: the address cannot be bound.
        """
        self.client.start()
        self.watcher.start()
        self.lag.start()
        limits = self.host.limits
        runner = web.AppRunner(
            self.application(),
            access_log=None,
            handle_signals=False,
            shutdown_timeout=1.0,
            keepalive_timeout=limits.http_idle,
        )
        await runner.setup()
        assert runner.server is not None
        listener = CappedListener(runner.server, limits.max_http_connections)
        try:
            self._bound = await listener.start(self.address, self._port)
        except BaseException as exc:
            await runner.cleanup()
            self.lag.stop()
            self.client.close()
            self.watcher.close()
            if isinstance(exc, OSError):
                where = f"HTTP port {self.address}:{self._port}"
                raise OSError(exc.errno, f"{where}: {exc.strerror or exc}") from exc
            raise
        self._runner = runner
        self.listener = listener
        log.info(
            "http and websockets on %s:%d",
            self.address,
            self._bound,
            extra={"host": self.address, "http_port": self._bound},
        )

    async def close(self) -> None:
        """Stop listening; idempotent. Websocket sessions end with the broker's connections."""
        runner, self._runner = self._runner, None
        if self.listener is not None:
            self.listener.close()
        self.lag.stop()
        self.client.close()
        self.watcher.close()
        self.api.close()
        if runner is not None:
            await runner.cleanup()

    async def _index(self, request: web.Request) -> web.StreamResponse:
        return web.FileResponse(STATIC / "index.html")

    async def _ws(self, request: web.Request) -> web.StreamResponse:
        return await handle_ws(request, self.host, self.admission)

    async def _metrics(self, request: web.Request) -> web.Response:
        return web.Response(
            body=self.metrics.render(),
            headers={"Content-Type": "text/plain; version=0.0.4; charset=utf-8"},
        )

    async def _stats(self, request: web.Request) -> web.Response:
        return web.Response(
            text=json.dumps(self.metrics.snapshot()), content_type="application/json"
        )
