"""The client's engine: one connection task, reconnects, replay, pings and inbound requests.

Rules of this module:

- One task owns the connection: it connects, says hello, probes ``/meta/broker``, replays the
  registrations, then watches the link until it dies, and starts over after a backoff delay.
- The client is "connected" only after the replay, so user requests never overtake it.
- User requests never wait for a connection: while disconnected they raise ``Disconnected``,
  while registrations, listens and observes are recorded and sent on the next connection.
- User callbacks for values (listeners, observers, hooks) run one at a time, in order. A plain
  function receiving a value runs at once where the value arrived, when no earlier callback is
  queued or running; everything else (async callbacks, an awaitable a callback returned, hooks,
  values arriving while a callback is pending) waits its turn in one dispatcher task.
  Callbacks answering requests (actions, props, state sets) run concurrently, each in its own
  task, and die with the connection they came on.
- Nothing here raises into the application's task except from the verb it called.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import logging
import math
import ssl
from collections import deque
from collections.abc import Awaitable, Callable
from functools import partial
from time import monotonic
from types import TracebackType
from typing import Any, Self

import anyio
import anyio.abc

from roost.client import auth
from roost.client.aiolink import connect_asyncio
from roost.client.config import (
    TimeoutConfig,
    default_server,
    normalise_base,
    parse_server,
    resolve_path,
)
from roost.client.inbound import PLAIN_RESULTS, serve_request
from roost.client.keepalive import keepalive_interval, local_deadline
from roost.client.leases import Lease, LeaseBook
from roost.client.link import Link
from roost.client.reconnect import Backoff, describe_failure, is_retryable
from roost.client.registrations import Registrations
from roost.client.replay import forget_values, replay, replay_subtrees
from roost.client.subtrees import SubtreeBook
from roost.client.window import DEFAULT_WINDOW, EmitWindow
from roost.errors import (
    ConnectFailed,
    ConnectionClosed,
    Disconnected,
    LoginFailed,
    NoLease,
    RemoteError,
    no_lease_reply,
)
from roost.protocol import messages as m
from roost.protocol.messages import Unknown
from roost.protocol.values import Value

__all__ = ("ClientCore", "Hook")

log = logging.getLogger("roost.client")

Hook = Callable[[], Any]
_Job = tuple[Callable[..., Any], tuple[Any, ...]]


async def _await(awaitable: Awaitable[Any]) -> None:
    await awaitable


def _unrouted(msg: m.Message | m.BadValue) -> None:
    """Placeholder ``on_message`` until the connection task routes the link's messages."""


class ClientCore:
    """Connection management shared by every verb; see :class:`roost.client.Client`."""

    def __init__(
        self,
        base: str = "/",
        server: str | None = None,
        client_id: Any = None,
        timeout: TimeoutConfig | None = None,
        *,
        on_connect: Hook | None = None,
        on_disconnect: Hook | None = None,
        backoff: Backoff | None = None,
        connect_timeout: float | None = 10.0,
        retry_first_connect: bool = True,
        user: str | None = None,
        password: str | None = None,
        password_file: str | None = None,
        ssl_context: ssl.SSLContext | None = None,
        emit_window: int = DEFAULT_WINDOW,
    ) -> None:
        self.base = normalise_base(base)
        self.server = server if server is not None else default_server()
        tls, address = auth.split_scheme(self.server)
        self.host, self.port = parse_server(address)
        self.user, self._password = auth.credentials(user, password, password_file)
        self.ssl_context = ssl_context or (auth.client_context() if tls else None)
        self.timeout = timeout if timeout is not None else TimeoutConfig()
        self.backoff = backoff if backoff is not None else Backoff()
        self.connect_timeout = connect_timeout
        self.retry_first_connect = retry_first_connect
        self.on_connect = on_connect
        self.on_disconnect = on_disconnect
        self._client_id: Value | None = None if client_id is None else Value.of(client_id)
        self._regs = Registrations()
        self._emits = EmitWindow(emit_window)
        self._leases = LeaseBook()
        self._link: Link | None = None
        self._link_tg: anyio.abc.TaskGroup | None = None
        self._gen = 0
        self._connected = False
        self._ever_connected = False
        self._closed = False
        self._fatal: BaseException | None = None
        self._last_error: BaseException | None = None
        self._lease_capable = False
        self._subtree_capable = False
        self._subtrees = SubtreeBook()
        self._broker_info: dict[str, Any] | None = None
        self._changed = anyio.Event()
        self._ping_wakeup = anyio.Event()
        self._tg: anyio.abc.TaskGroup | None = None
        self._jobs: deque[_Job] = deque()
        self._jobs_open = False
        self._job_running = False
        self._jobs_wakeup = anyio.Event()
        self._subscriptions: set[Any] = set()
        self._leases.notify = self._notify
        self._leases.on_change = self._leases_changed
        self._leases.orphan = self._return_orphan
        self._watchdog_wakeup = anyio.Event()

    # -- public state --------------------------------------------------------------------------

    @property
    def connected(self) -> bool:
        """True while a connection is up and its replay is done."""
        return self._connected

    @property
    def client_id(self) -> Any:
        """The client id in use (the broker's allocated one after a plain hello), or ``None``."""
        return None if self._client_id is None else self._client_id.obj

    @property
    def leases_available(self) -> bool:
        """Whether the broker said it supports leases (probe of ``/meta/broker``)."""
        return self._lease_capable

    @property
    def broker_info(self) -> dict[str, Any] | None:
        """The ``/meta/broker`` map of the current broker, or ``None`` (plain ESHET broker)."""
        return self._broker_info

    @property
    def last_error(self) -> BaseException | None:
        """Why the last connection attempt or connection failed (``None`` if none did)."""
        return self._last_error

    def resolve(self, path: str) -> str:
        """The absolute path for ``path`` (relative paths are appended to ``base``)."""
        return resolve_path(self.base, path)

    async def wait_for_connection(self) -> None:
        """Wait until the client is connected (returns at once if it is).

        Raises:
            ConnectionClosed: the client was closed, or gave up on a fatal error.
        """
        while not self._connected:
            if self._closed or self._fatal is not None:
                raise ConnectionClosed(self._closed_reason())
            await self._changed.wait()

    # -- lifecycle -----------------------------------------------------------------------------

    async def __aenter__(self) -> Self:
        """Start the connection task and wait for the first connection.

        The task group opened here lives until ``__aexit__``, so no cancel scope may wrap the
        entry alone (scopes must nest): bound it with ``connect_timeout``. A cancelled entry
        closes the client and lets the cancellation through.

        Raises:
            ConnectFailed: no connection within ``connect_timeout`` seconds (``None``: no
                limit), or, with ``retry_first_connect=False``, the first attempt failed.
            ConnectionClosed: a fatal error ended the connection task.
        """
        if self._tg is not None or self._closed:
            raise RuntimeError("a Client can be entered only once")
        self._jobs_open = True
        tg = anyio.create_task_group()
        await tg.__aenter__()
        self._tg = tg
        tg.start_soon(self._dispatcher)
        tg.start_soon(self._lease_watchdog)
        tg.start_soon(self._connection_loop)
        try:
            with anyio.fail_after(self.connect_timeout):
                await self.wait_for_connection()
        except BaseException as exc:
            await self.__aexit__(type(exc), exc, exc.__traceback__)
            if isinstance(exc, ConnectionClosed) and isinstance(
                self._fatal, (ConnectFailed, LoginFailed)
            ):
                raise self._fatal from self._last_error
            if isinstance(exc, TimeoutError):
                raise self._connect_failed(self._last_error) from self._last_error
            raise
        return self

    def _connect_failed(self, error: BaseException | None) -> ConnectFailed:
        why = describe_failure(error) if error else f"no connection in {self.connect_timeout:g} s"
        return ConnectFailed(f"could not connect to {self.host}:{self.port}: {why}")

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        """Close: fail pending requests with ``Disconnected``, end every subscription."""
        tg = self._tg
        if tg is None:
            return
        self._tg = None
        self._closed = True
        self._set_connected(False)
        tg.cancel_scope.cancel()
        if self._link is not None:
            self._link.close()
        try:
            await tg.__aexit__(None, None, None)
        finally:
            # Even if cancelled: nothing is queued for the dispatcher from here on.
            self._jobs_open = False
            self._jobs.clear()
            for sub in list(self._subscriptions):
                sub.close()
            self._bump()

    def _closed_reason(self) -> str:
        fatal = self._fatal
        return "the client is closed" if fatal is None else f"the client stopped: {fatal!r}"

    def _bump(self) -> None:
        changed, self._changed = self._changed, anyio.Event()
        changed.set()

    def _set_connected(self, connected: bool) -> None:
        if connected == self._connected:
            return
        self._connected = connected
        self._ever_connected |= connected
        self._bump()
        hook = self.on_connect if connected else self.on_disconnect
        if hook is not None and not self._closed:
            self._notify(hook)

    # -- the connection task -------------------------------------------------------------------

    async def _connection_loop(self) -> None:
        attempt = 0
        while not self._closed:
            try:
                with anyio.fail_after(self.timeout.ping_timeout + 5):
                    link = await self._connect()
            except Exception as exc:
                error: BaseException = exc
            else:
                error, ready = await self._run_link(link)
                if ready:
                    attempt = 0
            self._last_error = error
            if not self._ever_connected and not self.retry_first_connect:
                login = isinstance(error, LoginFailed)
                self._fatal = error if login else self._connect_failed(error)
                self._bump()
                return
            if not is_retryable(error):
                log.error("roost client stopped: %r", error)
                self._fatal = error
                self._bump()
                return
            delay = self.backoff.delay(attempt)
            attempt += 1
            log.info("connection to %s failed (%s); retry in %.2f s", self.server, error, delay)
            await anyio.sleep(delay)

    async def _connect(self) -> Link:
        """Open a connection (TLS with ``ssl_context``): on asyncio's own transport on asyncio
        (no task hop per frame), else on an anyio stream with a reader and a writer task."""
        ctx = self.ssl_context
        try:
            asyncio.get_running_loop()
        except RuntimeError:
            return Link(await auth.open_stream(self.host, self.port, ctx), _unrouted)
        return await connect_asyncio(self.host, self.port, _unrouted, ssl_context=ctx)

    async def _run_link(self, link: Link) -> tuple[BaseException, bool]:
        """Run one connection until it dies; return why, and whether it got to connected."""
        ready = False
        try:
            async with anyio.create_task_group() as tg:
                link.on_message = partial(self._on_message, link, tg)
                link.emits = self._emits
                link.scope = tg.cancel_scope
                self._link, self._link_tg = link, tg
                self._gen += 1
                link.start(tg)
                try:
                    with anyio.fail_after(self.timeout.ping_timeout + 5):
                        await self._handshake(link)
                    await replay(link, self._regs, self._gen, leases=self._lease_capable)
                    await replay_subtrees(
                        link, self._subtrees, self._gen, capable=self._subtree_capable
                    )
                except Exception as exc:
                    link.close(exc)
                    return exc, ready
                ready = True
                self._set_connected(True)
                log.info("connected to %s as %r", self.server, self.client_id)
                tg.start_soon(self._pinger, link)
                try:
                    await anyio.sleep_forever()
                finally:
                    # Before the task group waits for its tasks: an asyncio link would go on
                    # handing received requests to a task group that can no longer start them.
                    link.close()
        finally:
            await link.aclose()
            self._link_lost(link)
        return link.error or Disconnected("the connection was closed"), ready

    def _link_lost(self, link: Link) -> None:
        """Everything that follows the end of a connection, synchronously."""
        if self._link is link:
            self._link = self._link_tg = None
        self._set_connected(False)
        self._leases.link_lost()
        if not self._closed:
            forget_values(self._regs)
            self._subtrees.link_lost()

    async def _handshake(self, link: Link) -> None:
        if self.user is not None and self._password is not None:
            await auth.login(link, self.user, self._password)
        server_timeout = self.timeout.server_timeout
        if self._client_id is None:
            reply = await link.hello(m.Hello(m.VERSION, server_timeout))
        else:
            reply = await link.hello(m.HelloId(m.VERSION, server_timeout, self._client_id))
        if isinstance(reply, m.ServerHelloId):
            self._client_id = reply.client_id
        probe = await link.request(lambda rid: m.Get(rid, "/meta/broker"))
        info = probe.value.obj if isinstance(probe, m.ReplyOk) else None
        if isinstance(info, dict):
            extensions = info.get("extensions")
            self._broker_info = info
            self._lease_capable = isinstance(extensions, dict) and extensions.get("lease") == 1
            self._subtree_capable = isinstance(extensions, dict) and extensions.get("subtree") == 1
        else:
            self._broker_info = None
            self._lease_capable = False
            self._subtree_capable = False

    async def _pinger(self, link: Link) -> None:
        """Ping after ``idle_ping`` seconds without sending (while holding a lease, at least
        every :func:`keepalive_interval` of the server timeout, counted from the latest send
        and the latest answered request); a ping unanswered within ``ping_timeout`` kills the
        link."""
        while link.alive:
            due = link.last_send + self.timeout.idle_ping
            if self._leases.holding and self.timeout.server_timeout:
                # Holding: the broker must hear from us, and answer, every third of its timeout.
                every = keepalive_interval(self.timeout.server_timeout)
                due = min(due, link.last_send + every, link.last_answered_send + every)
            wait = due - monotonic()
            if wait > 0:
                with anyio.move_on_after(wait):
                    await self._ping_wakeup.wait()
                if self._ping_wakeup.is_set():
                    self._ping_wakeup = anyio.Event()
                continue
            try:
                with anyio.fail_after(self.timeout.ping_timeout):
                    await link.request(m.Ping)
            except TimeoutError:
                link.close(TimeoutError("no answer to a ping"))
                return
            except Disconnected:
                return

    def _leases_changed(self) -> None:
        self._ping_wakeup.set()
        self._watchdog_wakeup.set()

    def _return_orphan(self, grant: dict[str, Any]) -> None:
        """Give back a lease granted to a wait this client abandoned (called in the reader)."""
        link, tg = self._link, self._link_tg
        if link is None or tg is None:
            return  # the connection is gone, and the lease with it
        body = Value.of({"token": grant.get("token")})

        async def give_back() -> None:
            with contextlib.suppress(Exception):  # ended already, or the connection went
                await link.request(lambda rid: m.LeaseReturn(rid, body))

        tg.start_soon(give_back)

    # -- local lease deadlines -------------------------------------------------------------

    def _local_deadline(self, lease: Lease) -> tuple[float, str]:
        """When this client must consider ``lease`` lost, and why (see :mod:`.keepalive`)."""
        link = self._link
        return local_deadline(
            server_timeout=self.timeout.server_timeout,
            last_answered_send=link.last_answered_send if link is not None else None,
            ttl=lease.ttl,
            retained_at=lease.retained_at,
        )

    async def _lease_watchdog(self) -> None:
        """Mark leases lost at their local deadline, even while TCP looks healthy."""
        while True:
            now = monotonic()
            soonest = math.inf
            for lease in list(self._leases.leases.values()):
                deadline, reason = self._local_deadline(lease)
                if now >= deadline:
                    self._leases.lose(lease, reason)
                else:
                    soonest = min(soonest, deadline)
            # Deadlines only move later while a lease lives, so sleeping until the soonest
            # one and looking again never misses one; new leases wake us.
            self._watchdog_wakeup = anyio.Event()
            with anyio.move_on_after(soonest - now):
                await self._watchdog_wakeup.wait()

    # -- inbound -------------------------------------------------------------------------------

    def _on_message(self, link: Link, tg: anyio.abc.TaskGroup, msg: m.Message | m.BadValue) -> None:
        regs = self._regs
        if isinstance(msg, m.EventNotify):
            listen = regs.listens.get(msg.path)
            if listen is not None:
                value = msg.value.obj
                for sub in list(listen.subscribers):
                    sub.deliver(value)
        elif isinstance(msg, (m.StateNotify, m.StateNotifyUnknown)):
            observe = regs.observes.get(msg.path)
            if observe is not None:
                observe.value = msg.value.obj if isinstance(msg, m.StateNotify) else Unknown
                for sub in list(observe.subscribers):
                    sub.deliver(observe.value)
        elif isinstance(
            msg, (m.ActionCall, m.PropGet, m.PropSet, m.StateSet, m.GuardedCall, m.GuardedSet)
        ):
            serve_request(link, tg, self._regs, msg)
        elif isinstance(
            msg, (m.SubtreeEvent, m.SubtreeChanged, m.SubtreeUnknown, m.SubtreeSnapshot)
        ):
            self._subtrees.on_push(msg)
        elif isinstance(msg, m.LeaseGranted):
            self._leases.on_push("granted", msg.body.obj)
        elif isinstance(msg, m.LeaseRevoked):
            self._leases.on_push("revoked", msg.body.obj)
        elif isinstance(msg, m.LeaseWaitEnded):
            self._leases.on_push("wait_ended", msg.body.obj)
        elif isinstance(msg, m.AccessChanged):
            log.warning("the broker's access rules changed; this client lost: %r", msg.body.obj)
        elif isinstance(msg, m.BadValue):
            if msg.code in (0x11, 0x22, 0x47, 0x68, 0x69):
                link.send_nowait(m.ReplyError(msg.id, Value.of("invalid_value")))
            else:
                log.warning("dropped a message with an invalid value: %s", msg.reason)
        else:
            log.debug("ignored %r", msg)

    # -- value callbacks -----------------------------------------------------------------------

    def _notify(self, fn: Callable[..., Any], *args: Any) -> None:
        """Queue a user callback for the dispatcher (never blocks)."""
        if self._jobs_open:
            self._jobs.append((fn, args))
            self._jobs_wakeup.set()

    def _notify_value(self, fn: Callable[[Any], Any], value: Any, is_async: bool) -> None:
        """Deliver ``value`` to a subscriber's callback: at once if nothing is pending and
        ``fn`` is a plain function (``is_async`` false; saves the hop to the dispatcher), else
        through the dispatcher."""
        if not self._jobs_open:
            return
        if is_async or self._jobs or self._job_running:
            self._notify(fn, value)
            return
        self._job_running = True
        try:
            result = fn(value)
            # its turn is not over while an awaitable result runs: the dispatcher awaits it
            if type(result) not in PLAIN_RESULTS and inspect.isawaitable(result):
                self._notify(_await, result)
        except Exception:
            log.exception("a roost callback raised")
        finally:
            self._job_running = False

    async def _dispatcher(self) -> None:
        """Run queued callbacks one at a time, in order; sleep only when none is queued."""
        jobs = self._jobs
        while True:
            while jobs:
                fn, args = jobs.popleft()
                self._job_running = True
                try:
                    result = fn(*args)
                    if inspect.isawaitable(result):
                        await result
                except Exception:
                    log.exception("a roost callback raised")
                finally:
                    self._job_running = False
            self._jobs_wakeup = anyio.Event()
            await self._jobs_wakeup.wait()

    # -- requests ------------------------------------------------------------------------------

    def _live_link(self) -> Link:
        link = self._link
        if self._closed or self._fatal is not None:
            raise ConnectionClosed(self._closed_reason())
        if link is None or not self._connected:
            raise Disconnected("not connected to the broker")
        return link

    async def _request(
        self,
        make: Callable[[int], m.Message],
        timeout: float | None = None,
        on_reply: Callable[[m.Message], None] | None = None,
    ) -> m.Message:
        """Send a request on the live connection and wait for its reply.

        Raises:
            Disconnected: not connected, or the connection was lost before the reply.
            TimeoutError: no reply within ``timeout`` seconds (the request id is freed).
        """
        link = self._live_link()
        if timeout is None:
            return await link.request(make, on_reply)
        with anyio.fail_after(timeout):
            return await link.request(make, on_reply)

    async def _call_ok(self, make: Callable[[int], m.Message], timeout: float | None = None) -> Any:
        """Request, then return the ``ok`` value or raise ``RemoteError`` with the error value."""
        if timeout is None:  # the common case, without a coroutine in between
            reply = await self._live_link().request(make)
        else:
            reply = await self._request(make, timeout)
        if isinstance(reply, m.ReplyError):
            value = reply.value.obj
            if (
                isinstance(value, str) and value.partition(":")[0] == "NO_LEASE"
            ):  # a guarded node refused a caller without a lease
                raise NoLease(no_lease_reply(value))
            raise RemoteError(value)
        assert isinstance(reply, m.ReplyOk)
        return reply.value.obj

    def statistics(self) -> dict[str, Any]:
        """A snapshot of the client's state (for logs and debugging)."""
        regs = self._regs
        return {
            "connected": self._connected,
            "generation": self._gen,
            "actions": len(regs.actions),
            "props": len(regs.props),
            "events": len(regs.events),
            "states": len(regs.states),
            "listens": len(regs.listens),
            "observes": len(regs.observes),
            "leases": self._leases.count,
            "subtrees": len(self._subtrees.entries),
            "waiting": self._link.statistics()["waiting"] if self._link is not None else 0,
            "unconfirmed": len(self._emits.unacked),
        }
