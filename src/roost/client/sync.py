"""Blocking facade over the async client, for scripts and notebooks.

Rules of this module:

- The async client runs in an event loop owned by anyio's blocking portal (no hand-made loop
  thread); every method is one ``portal.call``, or on asyncio one
  ``asyncio.run_coroutine_threadsafe`` on the portal's loop (the same, for less).
- Plain (non-async) callbacks run in worker threads, so they may block and may call this
  client's methods; async callbacks run on the portal's loop.
- Methods must not be called from the portal's own loop (anyio raises ``RuntimeError``).
"""

from __future__ import annotations

import asyncio
import functools
import inspect
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from types import TracebackType
from typing import Any, Self

import anyio
import anyio.from_thread
import anyio.to_thread
from anyio.from_thread import BlockingPortal

from roost.client.client import Client
from roost.client.config import TimeoutConfig
from roost.client.handoff import EmitHandoff, trio_token
from roost.client.lease_verbs import LeaseRef
from roost.client.leases import Lease, LeaseWallet
from roost.client.loops import new_loop
from roost.client.reconnect import Backoff
from roost.client.streams import Subscription
from roost.errors import ConnectionClosed
from roost.protocol.messages import Unknown

__all__ = ("SyncClient", "SyncLease", "SyncSubscription")


def _threaded(fn: Callable[..., Any] | None) -> Callable[..., Any] | None:
    """Run a plain callback in a worker thread; leave coroutine functions alone."""
    if fn is None or inspect.iscoroutinefunction(fn):
        return fn

    @functools.wraps(fn)  # keeps the signature visible (a ``token`` keyword is detected)
    async def run(*args: Any, **kwargs: Any) -> Any:
        return await anyio.to_thread.run_sync(functools.partial(fn, *args, **kwargs))

    return run


class SyncSubscription:
    """Blocking iterator over an event's emits or a state's values (see
    :class:`~roost.client.streams.Subscription`). Use it as a context manager."""

    def __init__(self, portal: BlockingPortal, sub: Subscription[Any]) -> None:
        self._portal = portal
        self._sub = sub
        self._cm: AbstractContextManager[Subscription[Any]] | None = None

    def __enter__(self) -> Self:
        cm = self._portal.wrap_async_context_manager(self._sub)
        cm.__enter__()
        self._cm = cm
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._cm is not None:
            self._cm.__exit__(exc_type, exc, tb)
            self._cm = None

    def __iter__(self) -> Iterator[Any]:
        return self

    def __next__(self) -> Any:
        try:
            return self._portal.call(self._sub.receive)
        except anyio.EndOfStream:
            raise StopIteration from None

    def get(self, timeout: float | None = None) -> Any:
        """The next value, waiting at most ``timeout`` seconds.

        Raises:
            TimeoutError: nothing arrived in time. anyio.EndOfStream: the subscription ended.
        """

        async def receive() -> Any:
            with anyio.fail_after(timeout):
                return await self._sub.receive()

        return self._portal.call(receive)


class SyncLease:
    """Blocking view of a :class:`~roost.client.leases.Lease`."""

    def __init__(self, portal: BlockingPortal, lease: Lease) -> None:
        self._portal = portal
        self.lease = lease

    @property
    def lease_id(self) -> Any:
        """As :attr:`Lease.lease_id`."""
        return self.lease.lease_id

    @property
    def token(self) -> dict[str, Any]:
        """As :attr:`Lease.token`."""
        return self.lease.token

    @property
    def resource(self) -> str:
        """As :attr:`Lease.resource`."""
        return self.lease.resource

    @property
    def attributes(self) -> dict[str, Any]:
        """As :attr:`Lease.attributes` (a pool grant's inventory entry)."""
        return self.lease.attributes

    @property
    def mode(self) -> str:
        """As :attr:`Lease.mode`."""
        return self.lease.mode

    @property
    def is_lost(self) -> bool:
        """Whether the lease was lost."""
        return self.lease.lost.is_set()

    @property
    def lost_reason(self) -> str | None:
        """As :attr:`Lease.lost_reason`."""
        return self.lease.lost_reason

    def check(self) -> None:
        """Raise ``LeaseLost`` if the lease is no longer held."""
        self.lease.check()

    def wait_lost(self, timeout: float | None = None) -> str | None:
        """Wait until the lease is lost (at most ``timeout`` seconds); the reason, or ``None``."""

        async def wait() -> str | None:
            with anyio.move_on_after(timeout):
                return await self.lease.wait_lost()
            return None

        return self._portal.call(wait)

    def retain(self) -> float | None:
        """See :meth:`Lease.retain`."""
        return self._portal.call(self.lease.retain)

    def return_lease(self) -> None:
        """See :meth:`Lease.return_lease`."""
        self._portal.call(self.lease.return_lease)

    def sublease(self, name: str) -> dict[str, Any]:
        """See :meth:`Lease.sublease`."""
        return self.lease.sublease(name)


class SyncClient:
    """The verbs of :class:`~roost.client.Client` as blocking methods.

    ``with SyncClient("/home/") as client: client.action_call("lamp/on")``. Arguments as for
    ``Client``, plus ``backend`` (``"asyncio"`` or ``"trio"``) for the portal's loop.

    Raises:
        ConnectFailed: on entry, as ``Client``.
        ConnectionClosed: a method called outside the ``with`` block.
    """

    def __init__(
        self,
        base: str = "/",
        server: str | None = None,
        client_id: Any = None,
        timeout: TimeoutConfig | None = None,
        *,
        on_connect: Callable[[], Any] | None = None,
        on_disconnect: Callable[[], Any] | None = None,
        backoff: Backoff | None = None,
        connect_timeout: float | None = 10.0,
        retry_first_connect: bool = True,
        backend: str = "asyncio",
        emit_window: int = 1024,
    ) -> None:
        self._options: dict[str, Any] = {
            "base": base,
            "server": server,
            "client_id": client_id,
            "timeout": timeout,
            "on_connect": _threaded(on_connect),
            "on_disconnect": _threaded(on_disconnect),
            "backoff": backoff,
            "connect_timeout": connect_timeout,
            "retry_first_connect": retry_first_connect,
            "emit_window": emit_window,
        }
        self._backend = backend
        self._portal_cm: AbstractContextManager[BlockingPortal] | None = None
        self._portal: BlockingPortal | None = None
        self._client: Client | None = None
        self._client_cm: AbstractContextManager[Client] | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._handoff: EmitHandoff | None = None

    def __enter__(self) -> Self:
        options = {"loop_factory": new_loop} if self._backend == "asyncio" else None
        portal_cm = anyio.from_thread.start_blocking_portal(self._backend, options)
        portal = portal_cm.__enter__()
        try:
            client = portal.call(lambda: Client(**self._options))
            client_cm = portal.wrap_async_context_manager(client)
            client_cm.__enter__()
        except BaseException:
            portal_cm.__exit__(None, None, None)
            raise
        self._portal_cm, self._portal = portal_cm, portal
        self._client, self._client_cm = client, client_cm
        schedule: Callable[[Callable[[], None]], Any]
        if self._backend == "asyncio":
            self._loop = portal.call(asyncio.get_running_loop)
            schedule = self._loop.call_soon_threadsafe
        else:  # trio: its token's callbacks run in order, ahead of the portal's later calls
            schedule = portal.call(trio_token).run_sync_soon
        self._handoff = EmitHandoff(client, schedule, self._run)
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def close(self) -> None:
        """Close the client and stop the portal's loop (idempotent)."""
        client_cm, portal_cm, portal = self._client_cm, self._portal_cm, self._portal
        self._client_cm = self._portal_cm = self._portal = self._loop = None
        handoff, self._handoff = self._handoff, None
        try:
            if client_cm is not None:
                if handoff is not None and portal is not None:
                    portal.call(handoff.drain)  # then leaving flushes them
                client_cm.__exit__(None, None, None)
        finally:
            if portal_cm is not None:
                portal_cm.__exit__(None, None, None)

    def _run(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        portal = self._portal
        if portal is None:
            raise ConnectionClosed("the client is not open")
        loop = self._loop
        if loop is not None and inspect.iscoroutinefunction(fn):
            # On asyncio, hand the coroutine to the loop directly: a quarter of the portal's
            # cost per call, for the same result and exceptions.
            return asyncio.run_coroutine_threadsafe(fn(*args, **kwargs), loop).result()
        return portal.call(functools.partial(fn, *args, **kwargs))

    @property
    def client(self) -> Client:
        """The async client underneath (use it only from its loop)."""
        if self._client is None:
            raise ConnectionClosed("the client is not open")
        return self._client

    @property
    def connected(self) -> bool:
        """As :attr:`Client.connected`."""
        return self._client is not None and self._client.connected

    @property
    def client_id(self) -> Any:
        """As :attr:`Client.client_id`."""
        return self.client.client_id

    @property
    def leases_available(self) -> bool:
        """As :attr:`Client.leases_available`."""
        return self.client.leases_available

    @property
    def wallet(self) -> LeaseWallet:
        """As :attr:`Client.wallet`."""
        return self.client.wallet

    def wait_for_connection(self, timeout: float | None = None) -> None:
        """Block until connected (at most ``timeout`` seconds; ``TimeoutError`` after)."""

        async def wait() -> None:
            with anyio.fail_after(timeout):
                await self.client.wait_for_connection()

        self._run(wait)

    def ping(self, *, timeout: float | None = None) -> float:
        """Ping the broker; the round trip in seconds."""
        rtt: float = self._run(self.client.ping, timeout=timeout)
        return rtt

    # -- ESHET verbs ---------------------------------------------------------------------------

    def action_register(
        self, path: str, callback: Callable[..., Any], *, lease: str | None = None
    ) -> None:
        """Blocking :meth:`Client.action_register` (same arguments, results and errors)."""
        self._run(self.client.action_register, path, _threaded(callback), lease=lease)

    def action_call(
        self,
        path: str,
        *args: Any,
        timeout: float | None = None,
        lease: LeaseRef | SyncLease | None = None,
    ) -> Any:
        """Blocking :meth:`Client.action_call` (same arguments, results and errors)."""
        ref = None if lease is None else _unwrap(lease)
        return self._run(self.client.action_call, path, *args, timeout=timeout, lease=ref)

    def prop_register(
        self,
        path: str,
        get_callback: Callable[[], Any],
        set_callback: Callable[[Any], Any] | None = None,
        *,
        lease: str | None = None,
    ) -> None:
        """Blocking :meth:`Client.prop_register` (same arguments, results and errors)."""
        self._run(
            self.client.prop_register,
            path,
            _threaded(get_callback),
            _threaded(set_callback),
            lease=lease,
        )

    def get(self, path: str, *, timeout: float | None = None) -> Any:
        """Blocking :meth:`Client.get` (same arguments, results and errors)."""
        return self._run(self.client.get, path, timeout=timeout)

    def set(
        self,
        path: str,
        value: Any,
        *,
        timeout: float | None = None,
        lease: LeaseRef | SyncLease | None = None,
    ) -> Any:
        """Blocking :meth:`Client.set` (same arguments, results and errors)."""
        ref = None if lease is None else _unwrap(lease)
        return self._run(self.client.set, path, value, timeout=timeout, lease=ref)

    def event_register(self, path: str) -> Callable[..., None]:
        """Own an event; returns an ``emit(value=None, *, wait=False)`` function, which is
        :meth:`event_emit` on this event."""
        path = self._run(self.client.event_register, path).path
        return lambda value=None, *, wait=False: self._emits.emit(path, value, None, wait)

    def event_emit(
        self, path: str, value: Any = None, *, timeout: float | None = None, wait: bool = False
    ) -> None:
        """:meth:`Client.event_emit` (same arguments, results and errors): the emit is handed
        to the client's loop thread without waiting for it; ``wait=True`` blocks for the
        broker's reply, and a full window blocks for room."""
        self._emits.emit(path, value, timeout, wait)

    def flush(self, timeout: float | None = None) -> None:
        """Blocking :meth:`Client.flush`: every emit and state change made so far confirmed."""
        self._emits.flush(timeout)

    @property
    def _emits(self) -> EmitHandoff:
        if self._handoff is None:
            raise ConnectionClosed("the client is not open")
        return self._handoff

    def event_listen_cb(self, path: str, callback: Callable[[Any], Any]) -> None:
        """Blocking :meth:`Client.event_listen_cb` (same arguments, results and errors)."""
        self._run(self.client.event_listen_cb, path, _threaded(callback))

    def event_listen(self, path: str) -> SyncSubscription:
        """``with client.event_listen(path) as events: for value in events: ...``"""
        assert self._portal is not None
        return SyncSubscription(self._portal, self._run(self.client.event_listen, path))

    def state_register(
        self,
        path: str,
        set_callback: Callable[[Any], Any] | None = None,
        *,
        lease: str | None = None,
    ) -> None:
        """Blocking :meth:`Client.state_register` (same arguments, results and errors)."""
        self._run(self.client.state_register, path, _threaded(set_callback), lease=lease)

    def state_changed(self, path: str, value: Any, *, wait: bool = False) -> None:
        """:meth:`Client.state_changed`, handed over as :meth:`event_emit` is."""
        self._emits.state(path, value, wait)

    def state_unknown(self, path: str, *, wait: bool = False) -> None:
        """:meth:`Client.state_unknown`, handed over as :meth:`event_emit` is."""
        self._emits.state(path, Unknown, wait)

    def state_observe(self, path: str, callback: Callable[[Any], Any] | None = None) -> Any:
        """Blocking :meth:`Client.state_observe` (same arguments, results and errors)."""
        return self._run(self.client.state_observe, path, _threaded(callback))

    def state_observe_iter(self, path: str) -> SyncSubscription:
        """``with client.state_observe_iter(path) as values: for value in values: ...``"""
        assert self._portal is not None
        return SyncSubscription(self._portal, self._run(self.client.state_observe_iter, path))

    # -- subtrees ------------------------------------------------------------------------------

    @property
    def subtree_available(self) -> bool:
        """Whether the broker offers subtree subscriptions (known once connected)."""
        return self.client.subtree_available

    def subtree_listen(self, pattern: str) -> SyncSubscription:
        """``with client.subtree_listen("/house/**") as events: for path, value in events: ...``"""
        assert self._portal is not None
        return SyncSubscription(self._portal, self._run(self.client.subtree_listen, pattern))

    def subtree_observe(self, pattern: str) -> SyncSubscription:
        """``with client.subtree_observe("/house/**") as states: for path, value in states:``"""
        assert self._portal is not None
        return SyncSubscription(self._portal, self._run(self.client.subtree_observe, pattern))

    def subtree_listen_cb(self, pattern: str, callback: Callable[[str, Any], Any]) -> None:
        """Blocking :meth:`Client.subtree_listen_cb` (same arguments, results and errors)."""
        self._run(self.client.subtree_listen_cb, pattern, _threaded(callback))

    def subtree_observe_cb(self, pattern: str, callback: Callable[[str, Any], Any]) -> None:
        """Blocking :meth:`Client.subtree_observe_cb` (same arguments, results and errors)."""
        self._run(self.client.subtree_observe_cb, pattern, _threaded(callback))

    # -- leases --------------------------------------------------------------------------------

    def lease(
        self,
        resource: str,
        *,
        shared: bool = False,
        wait: float | None = 10,
        ttl: float | None = None,
        note: str = "",
        keep_running: Callable[[], Any] | None = None,
        on_lost: Callable[[Lease], Any] | None = None,
        name: str | None = None,
        timeout: float | None = None,
    ) -> AbstractContextManager[SyncLease]:
        """Hold ``resource`` for a ``with`` block (see :meth:`Client.lease`). A blocking body
        cannot be cancelled: check ``lease.check()`` or ``lease.is_lost`` in it."""
        assert self._portal is not None
        portal = self._portal
        inner = portal.wrap_async_context_manager(
            self.client.lease(
                resource,
                shared=shared,
                wait=wait,
                ttl=ttl,
                note=note,
                keep_running=keep_running,
                on_lost=_threaded(on_lost),
                name=name,
                cancel_on_loss=False,
                timeout=timeout,
            )
        )
        return _SyncLeaseContext(portal, inner)

    def lease_acquire(self, resource: str, **options: Any) -> SyncLease:
        """Blocking :meth:`Client.lease_acquire` (same arguments, results and errors)."""
        assert self._portal is not None
        return SyncLease(self._portal, self._run(self.client.lease_acquire, resource, **options))

    def lease_take(self, resource: str, reason: str, **options: Any) -> SyncLease:
        """Blocking :meth:`Client.lease_take` (same arguments, results and errors)."""
        assert self._portal is not None
        lease = self._run(self.client.lease_take, resource, reason, **options)
        return SyncLease(self._portal, lease)

    def lease_return(self, lease: LeaseRef | SyncLease) -> None:
        """Blocking :meth:`Client.lease_return` (same arguments, results and errors)."""
        self._run(self.client.lease_return, _unwrap(lease))

    def lease_retain(self, lease: LeaseRef | SyncLease) -> float | None:
        """Blocking :meth:`Client.lease_retain` (same arguments, results and errors)."""
        ttl_left: float | None = self._run(self.client.lease_retain, _unwrap(lease))
        return ttl_left

    def lease_validate(
        self, lease: LeaseRef | SyncLease, resource: str | None = None
    ) -> dict[str, Any]:
        """Blocking :meth:`Client.lease_validate` (same arguments, results and errors)."""
        status: dict[str, Any] = self._run(self.client.lease_validate, _unwrap(lease), resource)
        return status

    def lease_delegate(self, lease: LeaseRef | SyncLease, user: str) -> dict[str, Any]:
        """Blocking :meth:`Client.lease_delegate` (same arguments, results and errors)."""
        token: dict[str, Any] = self._run(self.client.lease_delegate, _unwrap(lease), user)
        return token

    def lease_cancel(self, request: Any) -> None:
        """Blocking :meth:`Client.lease_cancel` (same arguments, results and errors)."""
        self._run(self.client.lease_cancel, request)

    def lease_info(self, resource: str) -> dict[str, Any]:
        """Blocking :meth:`Client.lease_info` (same arguments, results and errors)."""
        info: dict[str, Any] = self._run(self.client.lease_info, resource)
        return info

    def lease_list(self, prefix: str = "") -> list[dict[str, Any]]:
        """Blocking :meth:`Client.lease_list` (same arguments, results and errors)."""
        resources: list[dict[str, Any]] = self._run(self.client.lease_list, prefix)
        return resources

    def guard(self, path: str, resource: str | None) -> None:
        """Blocking :meth:`Client.guard` (same arguments, results and errors)."""
        self._run(self.client.guard, path, resource)

    # -- durable locks and pools (blocking twins, same arguments, results and errors) ----------

    def lock_set(self, resource: str, key: str, **options: Any) -> dict[str, Any]:
        """Blocking :meth:`Client.lock_set`."""
        info: dict[str, Any] = self._run(self.client.lock_set, resource, key, **options)
        return info

    def lock_clear(self, resource: str, key: str | None = None, **options: Any) -> dict[str, Any]:
        """Blocking :meth:`Client.lock_clear`."""
        info: dict[str, Any] = self._run(self.client.lock_clear, resource, key, **options)
        return info

    def lock_info(self, resource: str) -> dict[str, Any]:
        """Blocking :meth:`Client.lock_info`."""
        info: dict[str, Any] = self._run(self.client.lock_info, resource)
        return info

    def lock_list(self) -> list[dict[str, Any]]:
        """Blocking :meth:`Client.lock_list`."""
        infos: list[dict[str, Any]] = self._run(self.client.lock_list)
        return infos

    def locked_call(self, path: str, key: str, *args: Any, **options: Any) -> Any:
        """Blocking :meth:`Client.locked_call`."""
        return self._run(self.client.locked_call, path, key, *args, **options)

    def locked_set(self, path: str, key: str, value: Any, **options: Any) -> Any:
        """Blocking :meth:`Client.locked_set`."""
        return self._run(self.client.locked_set, path, key, value, **options)

    def pool_acquire(self, requirements: dict[str, Any], **options: Any) -> SyncLease:
        """Blocking :meth:`Client.pool_acquire`."""
        assert self._portal is not None
        lease = self._run(self.client.pool_acquire, requirements, **options)
        return SyncLease(self._portal, lease)

    def pool_resources(self) -> list[dict[str, Any]]:
        """Blocking :meth:`Client.pool_resources`."""
        resources: list[dict[str, Any]] = self._run(self.client.pool_resources)
        return resources

    def pool_reload(self) -> int:
        """Blocking :meth:`Client.pool_reload`."""
        count: int = self._run(self.client.pool_reload)
        return count


def _unwrap(lease: LeaseRef | SyncLease) -> LeaseRef:
    return lease.lease if isinstance(lease, SyncLease) else lease


class _SyncLeaseContext:
    def __init__(self, portal: BlockingPortal, inner: AbstractContextManager[Lease]) -> None:
        self._portal = portal
        self._inner = inner

    def __enter__(self) -> SyncLease:
        return SyncLease(self._portal, self._inner.__enter__())

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> bool | None:
        return self._inner.__exit__(exc_type, exc, tb)
