"""The broker's only I/O: the listener, one asyncio Protocol per connection, flushes, timers.

Rules of this module:

- No task per connection and no task per message: ``data_received`` feeds the session's
  sans-IO ``Connection`` and hands each message to the synchronous router, in order. When a
  complete frame breaks the protocol, the frames before it in the same chunk are routed, then
  the connection closes; a bad sync byte or zero length fails the whole chunk.
- One connection cannot hold the loop: past ``CHUNK_BUDGET`` (the clock is read after every 16
  messages, or fewer when they are slow) the rest of its chunk is routed two
  iterations later, its reading paused meanwhile, so that every other connection's requests
  that arrived in between are routed and answered first.
- While a closed connection's nodes are settled in slices (:mod:`roost.broker.teardown`),
  each request settles what it reads before it is routed.
- Output is flushed once per event-loop iteration: the first frame queued in an iteration
  schedules a single ``call_soon``; the flush writes each dirty session's outbox in one write.
- Deadlines (hello, idle §12, unfinished frame) cost nothing per message: each chunk only
  records its time; one heap of deadlines on a single event-loop timer re-checks a connection
  when its deadline comes due (:mod:`roost.broker.guard`, with the accept loop and its limits).
- One clock: every ``now`` handed to the router is the event loop's ``loop.time()``, the clock
  its timers run on (uvloop's is a cached millisecond clock, not ``time.monotonic()``).
- A connection that breaks the protocol is closed with its reason logged; nothing a client
  sends can raise out of here.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Final, cast

import anyio
import anyio.abc

from roost.broker.auth.access import Access, install_access
from roost.broker.auth.checker import PasswordChecker
from roost.broker.auth.settings import AuthSettings
from roost.broker.auth.web import http_guard
from roost.broker.gateway import Gateway
from roost.broker.guard import Acceptor, Deadlines
from roost.broker.leases import install_leases
from roost.broker.leases.extras import Extras, LockSettings, PoolSettings, install_extras
from roost.broker.limits import Limits
from roost.broker.listeners import Listener, check_exposure, peer_user, start_listeners
from roost.broker.loophooks import LoopHooks
from roost.broker.router import Router
from roost.broker.session import Session
from roost.broker.store import Store, install_store
from roost.broker.storefile import StoreSettings
from roost.errors import FramingError
from roost.protocol.codec import split_request

__all__ = ("DEFAULT_MAX_OUTBOUND", "DEFAULT_PORT", "Broker")

DEFAULT_PORT: Final = 11236
DEFAULT_MAX_OUTBOUND: Final = 8 * 1024 * 1024
#: Seconds one connection's chunk may hold the loop; the rest of it waits for the others.
CHUNK_BUDGET: Final = 0.002
#: Messages routed between two looks at the clock, at most (fewer when they are slow).
SLICE: Final = 16
_QUARTER: Final = CHUNK_BUDGET / 4
#: Options accepted now and wired by the lease layer.
_LEASE_OPTIONS: Final = frozenset(
    (
        "state_dir",
        "audit_file",
        "resources",
        "lease_config",
        "ttl_max",
        "max_resources",
        "max_waits",
    )
)

log = logging.getLogger("roost.broker")
conn_log = logging.getLogger("roost.broker.connection")


def _peer_name(address: Any) -> str:
    if isinstance(address, tuple) and len(address) >= 2:
        host = address[0]
        return f"[{host}]:{address[1]}" if ":" in str(host) else f"{host}:{address[1]}"
    return str(address)


class _ConnectionProtocol(asyncio.Protocol):
    """One client connection: bytes in, router calls, nothing else."""

    __slots__ = (
        "clock",
        "flush",
        "idle",
        "later",
        "listener",
        "offset",
        "router",
        "session",
        "step",
    )

    def __init__(
        self,
        broker: Broker,
        clock: Callable[[], float],
        idle: Deadlines,
        listener: Listener,
        flush: Callable[[], None],
    ) -> None:
        self.router = broker.router
        self.idle = idle
        self.listener = listener
        #: Payloads still to route from ``offset`` on, after a chunk ran over its time
        #: budget (reading paused).
        self.later: list[bytes] | None = None
        self.offset = 0
        #: Messages routed between two looks at the clock (the last slice's choice).
        self.step = SLICE
        #: The server's flush of every connection's queued output.
        self.flush = flush
        #: The loop's ``time``: the clock the idle timers compare against.
        self.clock = clock
        self.session: Session | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # Not an isinstance check: uvloop's transports do not derive from asyncio.Transport.
        transport = cast(asyncio.Transport, transport)
        sock = transport.get_extra_info("socket")
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
                # Both loops set it already; the latency targets depend on it, so say it here.
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        # Our own bound (protocol.md §14) replaces asyncio's pause/resume; keep its callbacks
        # out of the way.
        transport.set_write_buffer_limits(high=0x7FFFFFFF)
        peer = _peer_name(transport.get_extra_info("peername"))
        session = self.router.open_session(peer, time.time(), self.clock())
        session.writer = transport
        session.listener = self.listener
        if self.listener.client_ca is not None:  # a verified certificate names the user
            session.user = peer_user(transport) or session.user
        self.session = session
        self.idle.arm(session)  # the hello deadline
        conn_log.info(
            "connection opened: peer=%s user=%s",
            peer,
            session.user,
            extra={"peer": peer, "user": session.user},
        )

    def data_received(self, data: bytes) -> None:
        session = self.session
        if session is None or session.closed:
            return
        now = self.clock()
        session.last_received = now
        conn = session.conn
        self.router.stats.bytes_in += len(data)
        try:
            payloads = conn.receive_frames(data)
        except FramingError as exc:
            self._protocol_error(session, exc, now)
            return
        session.received += len(payloads)
        if self.later is not None:
            self.later += payloads  # reading is paused: a chunk already read joins the queue
        elif payloads:
            self._route(session, payloads, now)
        if conn.partial or session.frame_since is not None:
            self.idle.received(session, now, bool(payloads))

    def _route(self, session: Session, payloads: list[bytes], now: float, start: int = 0) -> None:
        """Hand ``payloads[start:]`` to the router in order. Past :data:`CHUNK_BUDGET` seconds
        the rest waits, reading paused, until the other connections had their turn (see
        :meth:`_defer`). The clock is looked at between slices: :data:`SLICE` messages when
        that many take under a quarter of the budget (calls, emits, owners' replies and state
        changes take a few microseconds each), fewer at the pace of the slice before (a lease
        acquire may cost a hundred times more), so one connection holds the loop for about
        the budget and no counter is kept per message."""
        router = self.router
        conn = session.conn
        raw_handlers = router.raw_handlers
        handle = router.handle
        reply_raw = router.reply_raw
        received = router.stats.received
        #: Closed connections' nodes being settled: a request settles what it reads first.
        closing = router.closing
        total = len(payloads)
        step = self.step
        stop = start + step
        began = time.monotonic() if stop < total else 0.0
        until = began + CHUNK_BUDGET
        try:
            while True:
                for payload in payloads if start == 0 and stop >= total else payloads[start:stop]:
                    # The busiest requests and owners' replies skip the message objects; a bad
                    # one takes the full path, which reports its error.
                    code = payload[0]
                    received[code] += 1
                    handler = raw_handlers.get(code) if conn.hello_done else None
                    if handler is not None and (parts := split_request(payload)) is not None:
                        rid, path, raw = parts
                        if closing:
                            router.teardowns.settle_path(path, now)
                        handler(session, rid, path, raw, now)
                    elif code <= 0x06 and (reply := conn.take_reply(payload)) is not None:
                        reply_raw(session, code, reply[0], reply[1])
                    else:
                        msg = conn.receive_payload(payload)
                        if msg is not None:
                            if closing:
                                router.settle_before(msg, now)
                            handle(session, msg, now)
                    if not session.accepting:  # closed, or over its bound and about to be
                        break
                if stop >= total or not session.accepting:
                    break
                # The next slice: as many messages as took a quarter of the budget at this
                # slice's pace (SLICE at most), so slow ones are looked at nearly one by one.
                clock = time.monotonic()
                spent, done = clock - began, stop - start
                step = (
                    SLICE if spent * SLICE <= _QUARTER * done else 1 + int(_QUARTER * done / spent)
                )
                if clock > until:
                    self._defer(session, payloads, stop)
                    break
                start, stop, began = stop, stop + step, clock
        except FramingError as exc:
            self._protocol_error(session, exc, now)
            return
        except Exception:
            # A bug must cost one connection, never the broker.
            log.exception("internal error handling a message from %s", session.peer)
            router.disconnect(session, "internal_error", now)
            return
        finally:
            self.step = step
        if router.doomed:
            router.reap(now)

    def _defer(self, session: Session, payloads: list[bytes], start: int) -> None:
        """Keep ``payloads[start:]`` for later, reading paused. The rest is routed two loop
        iterations on (:meth:`_hop`), after the flush of what is queued now: the loop polls
        its sockets in between, so the requests of every other connection that arrived
        meanwhile are routed and answered before this one's next share."""
        self.later = payloads
        self.offset = start
        # The gateway's message links have no reading to pause: what they hand in meanwhile
        # joins ``later`` in order.
        pause = getattr(session.writer, "pause_reading", None)
        if pause is not None:
            pause()
        self.idle.loop.call_soon(self._hop)

    def _hop(self) -> None:
        self.idle.loop.call_soon(self._resume)

    def _resume(self) -> None:
        session, rest = self.session, self.later
        self.later = None
        if session is None or session.closed or rest is None:
            return
        self.flush()  # the others' answers go out before this connection's next share
        if not session.accepting:  # the flush closed it, or will (over its outbound bound)
            return
        self._route(session, rest, self.clock(), self.offset)
        if self.later is None and not session.closed:
            resume = getattr(session.writer, "resume_reading", None)
            if resume is not None:
                resume()

    def _protocol_error(self, session: Session, exc: FramingError, now: float) -> None:
        conn_log.warning(
            "protocol error from %s: %s", session.peer, exc, extra={"peer": session.peer}
        )
        self.router.disconnect(session, f"protocol_error: {exc}", now)

    def eof_received(self) -> bool:
        return False  # close our side too: a half-closed client is a gone client

    def connection_lost(self, exc: Exception | None) -> None:
        session = self.session
        if session is not None and not session.closed:
            session.writer = None
            self.router.disconnect(session, "disconnected", self.clock())


class Broker:
    """An ESHET-compatible broker listening on one or more addresses, plain or TLS.

    Use as ``async with Broker(port=0) as broker:``: entering starts listening (``broker.port``
    is then the bound port); leaving closes the listener and every connection (their cleanup
    runs as on any close). ``await broker.serve_forever()`` runs until cancelled.

    Args:
        host: address to bind (default loopback).
        port: TCP port; 0 picks a free one.
        max_outbound: bound in bytes on each connection's unsent output; a connection over it is
            closed as ``slow_consumer`` (protocol.md §14).
        http_port: the port of the HTTP and websocket gateway (dashboard, eshetsrv's HTTP and
            ``/ws`` API, ``/metrics``) on the same host; 0 picks a free one; ``None`` (the
            default of an embedded broker) runs no gateway. ``roost serve`` uses 11237.
        store: stored values (the ``[store]`` section); they live in ``state_dir``.
        locks: the ``[locks]`` settings (emergency key) of durable keyed locks.
        pools: the ``[pools]`` settings (inventory) of resource pools.
        limits: path, tree, connection and deadline limits (docs/reference/limits.md).
        listeners: where to listen, plain or TLS (replaces ``host`` and ``port``).
        auth: users, groups and access rules (default: none, everybody may do everything).
        allow_anonymous: let listeners on the network that do not say otherwise accept
            connections without a login (``--allow-anonymous``).
        **options: lease settings: ``state_dir``, ``audit_file``, ``lease_config`` (a TOML
            file or a ``LeaseConfig``), ``resources``, ``ttl_max``, ``max_resources`` and
            ``max_waits`` (these four override the file); checked at :meth:`start`.

    Raises:
        TypeError: an unknown option.
    """

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = DEFAULT_PORT,
        *,
        max_outbound: int = DEFAULT_MAX_OUTBOUND,
        http_port: int | None = None,
        store: StoreSettings | None = None,
        locks: LockSettings | None = None,
        pools: PoolSettings | None = None,
        limits: Limits | None = None,
        listeners: tuple[Listener, ...] | list[Listener] | None = None,
        auth: AuthSettings | None = None,
        allow_anonymous: bool = False,
        **options: Any,
    ) -> None:
        unknown = set(options) - _LEASE_OPTIONS
        if unknown:
            raise TypeError(f"unknown broker option(s): {', '.join(sorted(unknown))}")
        if max_outbound <= 0:
            raise ValueError("max_outbound must be positive")
        self.host = host
        self._port = port
        self.max_outbound = max_outbound
        self.limits = limits if limits is not None else Limits()
        self.options = options
        self.http_port = http_port
        #: The HTTP and websocket gateway while it runs (``http_port`` given).
        self.gateway: Gateway | None = None
        self.store_settings = store
        #: The stored values, once started with ``store`` settings.
        self.store: Store | None = None
        self.locks = locks
        self.pools = pools
        self.extras: Extras | None = None
        self._key_worker: ThreadPoolExecutor | None = None
        self.listeners = tuple(listeners) if listeners else (Listener(host, port),)
        self.auth = auth if auth is not None else AuthSettings()
        self.allow_anonymous = allow_anonymous
        self._access: Access | None = None
        self._checker: PasswordChecker | None = None
        self._server: list[Acceptor] | None = None
        self._hooks: LoopHooks | None = None
        self._router: Router | None = None

    def key_worker(self) -> ThreadPoolExecutor:
        """The one worker thread that hashes lock keys (one at a time: scrypt is memory-hard)."""
        if self._key_worker is None:
            self._key_worker = ThreadPoolExecutor(1, thread_name_prefix="roost-keys")
        return self._key_worker

    @property
    def router(self) -> Router:
        """The router (exists once the broker has started)."""
        if self._router is None:
            raise RuntimeError("the broker is not started")
        return self._router

    @property
    def port(self) -> int:
        """The bound port (the requested one before start)."""
        if self._server:
            return int(self._server[0].sock.getsockname()[1])
        return self._port

    @property
    def acceptors(self) -> list[Acceptor]:
        """The accept loops (one per bound address; empty before start)."""
        return list(self._server or ())

    def reload(self) -> tuple[int, int]:
        """Re-read users and access rules (SIGHUP); see ``Access.reload_now``."""
        if self._hooks is None or self._access is None:
            raise RuntimeError("the broker is not started")
        return self._access.reload_now(self._hooks.loop.time())

    @property
    def address(self) -> str:
        """``host:port`` as bound."""
        return f"{self.host}:{self.port}"

    async def start(self) -> None:
        """Bind and start accepting connections.

        Raises:
            OSError: the address cannot be bound.
            ValueError: a listener on the network would be open to everybody
                (:func:`~roost.broker.listeners.check_exposure`).
        """
        if self._server is not None:
            raise RuntimeError("the broker is already started")
        auth = self.auth
        users, rules = bool(auth.users.hashes), bool(auth.rules)
        for warning in check_exposure(
            self.listeners, users=users, rules=rules, allow_anonymous=self.allow_anonymous
        ):
            log.warning("%s", warning)
        loop = asyncio.get_running_loop()
        self._hooks = hooks = LoopHooks(loop, self.limits, self.key_worker)
        self._router = hooks.router = router = Router(
            hooks, loop.time(), max_outbound=self.max_outbound, limits=self.limits
        )
        if self.store_settings is not None:
            # Before the lease layer opens its files: a store that cannot load stops start-up
            # with nothing to clean up.
            self.store = install_store(
                self._router,
                self.store_settings,
                self.options.get("state_dir"),
                self._hooks.offload,
                loop.time(),
            )
        layer = install_leases(
            self._router,
            wall_offset=time.time() - loop.time(),
            wall_ns=time.time_ns(),
            now=loop.time(),
            **self.options,
        )
        self.extras = install_extras(
            layer, self.options.get("state_dir"), self.locks, self.pools, loop.time()
        )
        self._checker = PasswordChecker(loop)
        self._access = access = install_access(
            router, auth, self._checker.submit, allow_anonymous=self.allow_anonymous, leases=layer
        )
        self._server = await start_listeners(
            loop,
            self.listeners,
            lambda listener: _ConnectionProtocol(
                self, loop.time, hooks.idle, listener, hooks.flush
            ),
            router.sessions.__len__,
            self.limits,
        )
        self.host = self.listeners[0].host
        if self.http_port is not None:
            guard = http_guard(access, self._gateway_listener(), self.allow_anonymous)
            gateway = Gateway(self, self.host, self.http_port, authenticate=guard)
            try:
                await gateway.start()
            except BaseException:
                await self.close()
                raise
            self.gateway = gateway

    def _gateway_listener(self) -> Listener:
        """The gateway's pseudo-listener: a plain (not TLS) one on the first listener's host,
        with that listener's ``anonymous`` and ``password_login`` settings, so password logins
        over websockets only on loopback (unless allowed there), and anonymous requests only
        where that listener takes them, as for any listener."""
        first = self.listeners[0]
        return Listener(
            self.host,
            self.http_port or 0,
            anonymous=first.anonymous,
            password_login=first.password_login,
        )

    def attach(self, transport: Any) -> _ConnectionProtocol:
        """Open a connection on ``transport``, an object with the methods of an asyncio
        transport that the broker uses (``write``, ``get_write_buffer_size``, ``is_closing``,
        ``close``, ``abort``, ``get_extra_info``, ``set_write_buffer_limits``): the gateway's
        websocket clients are ordinary connections this way. Feed the returned protocol's
        ``data_received`` and call its ``connection_lost`` when the peer goes.
        """
        if self._hooks is None:
            raise RuntimeError("the broker is not started")
        hooks = self._hooks
        protocol = _ConnectionProtocol(
            self, hooks.loop.time, hooks.idle, self._gateway_listener(), hooks.flush
        )
        protocol.connection_made(transport)
        return protocol

    async def close(self) -> None:
        """Stop listening and close every connection; idempotent."""
        server = self._server
        if server is None:
            return
        self._server = None
        for acceptor in server:
            acceptor.close()
        if self._router is not None and self._hooks is not None:
            self._router.prepare_stop(self._hooks.loop.time())
            self._hooks.flush()
            self._router.close_all("shutdown", self._hooks.loop.time())
        gateway, self.gateway = self.gateway, None
        if gateway is not None:
            await gateway.close()
        if self._checker is not None:
            self._checker.close()
        worker, self._key_worker = self._key_worker, None
        if worker is not None:
            worker.shutdown(wait=False, cancel_futures=True)
        await asyncio.sleep(0)  # let the transports' close callbacks run

    async def serve_forever(
        self, *, task_status: anyio.abc.TaskStatus[int] = anyio.TASK_STATUS_IGNORED
    ) -> None:
        """Serve until cancelled (starting first if needed); closes everything on the way out.

        Started with anyio's ``await task_group.start(broker.serve_forever)``, it reports the
        bound port once the broker listens.
        """
        if self._server is None:
            await self.start()
        task_status.started(self.port)
        try:
            await asyncio.Event().wait()
        finally:
            await self.close()

    async def __aenter__(self) -> Broker:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()
