"""The async roost client: ESHET's verbs over one connection that heals itself.

Rules of this module:

- Verb names and behaviour follow the ESHET client (eshet.py), so moving to roost is a one-line
  change; relative paths resolve against ``base``.
- Registrations, listens and observes are recorded first and then sent; the record is what a
  reconnect replays. Refused ones are forgotten and raise ``RemoteError``.
- While disconnected, calls, gets, sets and emits raise ``Disconnected`` at once; registrations,
  listens, observes and owned state values are recorded and sent on reconnect.
- Emits and owned states' changes do not wait for the broker's reply unless asked to
  (``wait=True``); see :mod:`roost.client.emit_verbs`.
"""

from __future__ import annotations

import inspect
from collections.abc import Awaitable, Callable, Mapping
from functools import partial
from time import monotonic
from typing import Any

from roost.client.emit_verbs import EmitVerbs
from roost.client.lease_verbs import LeaseRef
from roost.client.lock_verbs import LockVerbs
from roost.client.registrations import (
    ActionEntry,
    EventEntry,
    ListenEntry,
    ObserveEntry,
    PropEntry,
    StateEntry,
    Subscriber,
)
from roost.client.replay import record_observe
from roost.client.streams import Subscription
from roost.client.subtree_verbs import SubtreeVerbs
from roost.errors import Disconnected, RemoteError
from roost.protocol import messages as m
from roost.protocol.messages import Unknown
from roost.protocol.values import Value

__all__ = ("Client", "EventEmitter", "StateHandle")


class _CallbackSubscriber:
    """Delivers values to a user callback through the client's dispatcher."""

    __slots__ = ("_notify", "callback", "is_async")

    def __init__(self, notify: Callable[..., None], callback: Callable[[Any], Any]) -> None:
        self._notify = notify
        self.callback = callback
        self.is_async = inspect.iscoroutinefunction(callback)

    def deliver(self, value: Any) -> None:
        self._notify(self.callback, value, self.is_async)  # the client's _notify_value


class EventEmitter:
    """Emits on one event this client registered (returned by :meth:`Client.event_register`)."""

    def __init__(self, client: Client, path: str) -> None:
        self.client = client
        self.path = path

    async def emit(
        self, value: Any = None, *, timeout: float | None = None, wait: bool = False
    ) -> None:
        """Emit ``value``; see :meth:`Client.event_emit`."""
        await self.client._emit(self.path, value, timeout, wait)

    async def __call__(self, value: Any = None, *, wait: bool = False) -> None:
        await self.client._emit(self.path, value, None, wait)


class StateHandle:
    """Updates one state this client owns (returned by :meth:`Client.state_register`)."""

    def __init__(self, client: Client, path: str) -> None:
        self.client = client
        self.path = path

    async def changed(self, value: Any, *, wait: bool = False) -> None:
        """Publish a new value; see :meth:`Client.state_changed`."""
        await self.client.state_changed(self.path, value, wait=wait)

    async def unknown(self, *, wait: bool = False) -> None:
        """Make the state unknown; see :meth:`Client.state_unknown`."""
        await self.client.state_unknown(self.path, wait=wait)

    @property
    def value(self) -> Any:
        """The last value this client published, or ``Unknown``."""
        entry = self.client._regs.states.get(self.path)
        if entry is None or entry.value is None:
            return Unknown
        return entry.value.obj


class Client(LockVerbs, SubtreeVerbs, EmitVerbs):
    """An ESHET-compatible client of a roost broker, for asyncio and trio (via anyio).

    Use it as ``async with Client("/home/") as client:``; entering waits for the first
    connection, leaving closes it. The connection is kept alive with pings and re-established
    after any loss with exponential backoff and full jitter; after each reconnect the client
    says ``hello_id`` with the same client id and replays every registration, the last value of
    each owned state, every listen and observe. Observers see ``Unknown`` while disconnected and
    the fresh value afterwards. Leases are never re-acquired: they are reported lost.

    Args:
        base: prefix for relative paths (``"/home/"``: ``"lamp"`` means ``"/home/lamp"``).
        server: ``"host[:port]"``, ``"tcp://host[:port]"`` or ``"tls://host[:port]"``;
            default ``ROOST_SERVER``, then ``ESHET_SERVER``, then ``"localhost:11236"``.
        client_id: the id to say hello with (any msgpack value); ``None`` lets the broker
            allocate one, which is then reused on every reconnect.
        timeout: ping and server-timeout settings (:class:`TimeoutConfig`).
        on_connect: called (sync or async, no arguments) after each connection is ready.
        on_disconnect: called after each connection loss.
        backoff: reconnect delays (:class:`Backoff`, default 0.1 s growing to 10 s).
        connect_timeout: how long entering waits for the first connection (``None``: forever).
            This is the way to bound the entry: entering opens the client's task group, so it
            cannot be wrapped in an ``anyio.fail_after`` that ends before the block.
        retry_first_connect: ``True`` (default) retries a failed first attempt with backoff
            until ``connect_timeout``; ``False`` makes entering raise ``ConnectFailed`` as soon
            as the first attempt fails (refused, unreachable, unknown host, no hello), as
            command line tools do. Later losses are always retried.
        user, password: log in as this user (before each hello); ``user`` defaults to
            ``ROOST_USER``. Without them the connection is ``anonymous`` (or the user its
            client certificate names).
        password_file: read the password from the first line of this file (default
            ``ROOST_PASSWORD_FILE``).
        ssl_context: the TLS context for a ``tls://`` server (default: the system's trusted
            CAs); load a client certificate into it for mutual TLS
            (:func:`roost.client.auth.client_context` makes one).
        emit_window: how many emits and state changes may wait for the broker's confirmation
            before the next one waits for room (1..32768, default 1024); see
            :meth:`event_emit`.

    Raises:
        ValueError: a malformed ``server``, a password without a user, or an ``emit_window``
            out of range.
        LoginFailed: (entering) the broker refused the login; ``AuthUnsupported`` if it offers
            no logins at all.
    """

    async def ping(self, *, timeout: float | None = None) -> float:
        """Ping the broker; return the round trip in seconds.

        Raises:
            Disconnected: not connected, or the connection was lost before the answer.
            TimeoutError: no answer within ``timeout`` seconds.
        """
        started = monotonic()
        await self._call_ok(m.Ping, timeout)
        return monotonic() - started

    # -- actions -------------------------------------------------------------------------------

    async def action_register(
        self, path: str, callback: Callable[..., Any], *, lease: str | None = None
    ) -> None:
        """Own an action; each call runs ``callback(*args)`` (sync or async).

        Its return value is the reply; an exception becomes an error reply with ``str(exc)``
        (a ``RemoteError`` with its ``value``). With ``lease="res"`` the action is guarded: only
        callers holding ``res`` get through, and a callback that accepts a ``token`` keyword
        receives the caller's token.

        Raises:
            RemoteError: the broker refused (``path_already_exists``...).
            LeasesUnsupported: ``lease`` given but the broker has no lease extension.
        """
        if lease is not None:
            self._require_leases()
        path = self.resolve(path)
        await self._establish(
            self._regs.actions, path, ActionEntry(callback), lambda rid: m.ActionRegister(rid, path)
        )
        if lease is not None:
            await self.guard(path, lease)

    async def action_call(
        self,
        path: str,
        *args: Any,
        timeout: float | None = None,
        lease: LeaseRef | None = None,
    ) -> Any:
        """Call an action with positional ``args`` and return its result.

        With ``lease`` (a :class:`Lease` or a token map) the call carries that token
        (``lease_call``): a guarded action checks it, an unguarded one ignores it.

        Raises:
            RemoteError: an error reply (``path_not_found``, the owner's error...).
            LeaseError: the token was refused (only with ``lease``).
            Disconnected: not connected, or the connection was lost before the reply.
            TimeoutError: no reply within ``timeout`` seconds; the request id is freed, a late
                reply is dropped.
        """
        path = self.resolve(path)
        if lease is not None:
            return await self._lease_forward("call", path, list(args), lease, timeout)
        arguments = Value.of(list(args))
        return await self._call_ok(lambda rid: m.ActionCall(rid, path, arguments), timeout)

    # -- props, get and set --------------------------------------------------------------------

    async def prop_register(
        self,
        path: str,
        get_callback: Callable[[], Any],
        set_callback: Callable[[Any], Any] | None = None,
        *,
        lease: str | None = None,
    ) -> None:
        """Own a prop: ``get_callback()`` answers gets, ``set_callback(value)`` answers sets
        (without one, sets get ``not_implemented``). ``lease`` guards sets (see
        :meth:`action_register`).

        Raises:
            RemoteError: the broker refused the registration.
        """
        if lease is not None:
            self._require_leases()
        path = self.resolve(path)
        entry = PropEntry(get_callback, set_callback)
        await self._establish(self._regs.props, path, entry, lambda rid: m.PropRegister(rid, path))
        if lease is not None:
            await self.guard(path, lease)

    async def get(self, path: str, *, timeout: float | None = None) -> Any:
        """The value of a prop (asked from its owner) or a state (stored by the broker).

        Raises:
            RemoteError: ``state_unknown``, ``path_not_found``, ``path_is_wrong_type``...
            Disconnected, TimeoutError: as :meth:`action_call`.
        """
        path = self.resolve(path)
        return await self._call_ok(lambda rid: m.Get(rid, path), timeout)

    async def set(
        self,
        path: str,
        value: Any,
        *,
        timeout: float | None = None,
        lease: LeaseRef | None = None,
    ) -> Any:
        """Set a prop or state through its owner; returns the owner's reply value.

        Raises:
            RemoteError: ``no_owner``, ``not_implemented``, the owner's error...
            LeaseError: the token was refused (only with ``lease``).
            Disconnected, TimeoutError: as :meth:`action_call`.
        """
        path = self.resolve(path)
        if lease is not None:
            return await self._lease_forward("set", path, value, lease, timeout)
        packed = Value.of(value)
        return await self._call_ok(lambda rid: m.Set(rid, path, packed), timeout)

    # -- events --------------------------------------------------------------------------------

    async def event_register(self, path: str) -> EventEmitter:
        """Own an event and return an emitter for it.

        Raises:
            RemoteError: the broker refused (``path_already_exists``...).
        """
        path = self.resolve(path)
        await self._establish(
            self._regs.events, path, EventEntry(), lambda rid: m.EventRegister(rid, path)
        )
        return EventEmitter(self, path)

    async def event_emit(
        self, path: str, value: Any = None, *, timeout: float | None = None, wait: bool = False
    ) -> None:
        """Emit ``value`` on an event (any client may emit on any event node).

        The emit is written in order and returns without waiting for the broker's reply,
        unless ``emit_window`` emits are unconfirmed already: then it waits for room (at most
        ``timeout`` seconds). A refusal is logged when it arrives and raised by the next emit
        (which is then not sent) or by :meth:`flush`, as is the loss of the connection with
        emits unconfirmed. ``wait=True`` waits for this emit's reply (``timeout`` bounds it)
        and raises its error.

        Raises:
            RemoteError: an earlier emit was refused (``.path`` names it), or with ``wait``
                this one (``path_not_found``, ``path_is_wrong_type``...).
            Disconnected: not connected; the connection was lost before earlier emits were
                confirmed (the text says how many); with ``wait``, lost before the reply.
            TimeoutError: no room (or with ``wait`` no reply) within ``timeout`` seconds.
        """
        await self._emit(self.resolve(path), value, timeout, wait)

    async def _emit(self, path: str, value: Any, timeout: float | None, wait: bool) -> None:
        packed = Value.of(value)
        window = self._emits
        if window.faults or wait or len(window.unacked) >= window.size:
            await self._emit_ready(timeout, not wait)
            if wait:
                await self._call_ok(lambda rid: m.EventEmit(rid, path, packed), timeout)
                return
        self._live_link().emit(lambda rid: m.EventEmit(rid, path, packed), path, False)

    async def event_listen_cb(self, path: str, callback: Callable[[Any], Any]) -> None:
        """Call ``callback(value)`` (sync or async) for every emit on ``path``, for the life
        of the client (listens are replayed after a reconnect).

        Raises:
            RemoteError: the broker refused (``path_already_exists`` for a non-event node...).
        """
        await self._listen(self.resolve(path), _CallbackSubscriber(self._notify_value, callback))

    def event_listen(self, path: str) -> Subscription[Any]:
        """The emits on ``path`` as an async iterator.

        ``async with client.event_listen("button") as events: async for value in events: ...``;
        entering completes the listen (raising ``RemoteError`` if refused).
        """
        path = self.resolve(path)
        return self._subscription(path, self._listen, self._regs.listens)

    async def _listen(self, path: str, sub: Subscriber) -> None:
        entry = self._regs.listens.get(path)
        if entry is not None and entry.subscribers:
            entry.subscribers.append(sub)
            return
        if entry is None:
            entry = self._regs.listens[path] = ListenEntry()
        entry.subscribers.append(sub)
        if not self.connected:
            return
        entry.gen = self._gen
        await self._first_request(
            self._regs.listens, path, entry, sub, lambda rid: m.EventListen(rid, path)
        )

    async def _first_request(
        self,
        table: dict[str, Any],
        path: str,
        entry: ListenEntry | ObserveEntry,
        sub: Subscriber,
        make: Callable[[int], m.Message],
        *,
        on_reply: Callable[[m.Message], None] | None = None,
    ) -> m.Message | None:
        """Send the request that starts ``sub``'s subscription ``entry`` (``table[path]``).

        Returns:
            The reply, or None if the connection dropped first (the entry stays recorded and is
            replayed on reconnect).

        Raises:
            RemoteError: refused; ``sub`` is removed, and the entry with it if nobody is left.
            BaseException: anything else the request raises (timeout, cancel); ``sub`` is removed.
        """
        try:
            reply = await self._request(make, on_reply=on_reply)
        except Disconnected:
            return None
        except BaseException:
            entry.subscribers.remove(sub)
            raise
        if isinstance(reply, m.ReplyError):
            entry.subscribers.remove(sub)
            if not entry.subscribers:
                del table[path]
            raise RemoteError(reply.value.obj)
        return reply

    # -- states --------------------------------------------------------------------------------

    async def state_register(
        self,
        path: str,
        set_callback: Callable[[Any], Any] | None = None,
        *,
        lease: str | None = None,
    ) -> StateHandle:
        """Own a state (unknown until the first :meth:`state_changed`) and return a handle.

        ``set_callback(value)`` answers sets from other clients; it normally publishes the new
        value with ``state_changed`` before returning. Without it sets get ``not_implemented``.
        ``lease`` guards sets (see :meth:`action_register`).

        Raises:
            RemoteError: the broker refused (``path_already_exists``...).
        """
        if lease is not None:
            self._require_leases()
        path = self.resolve(path)
        await self._establish(
            self._regs.states,
            path,
            StateEntry(set_callback),
            lambda rid: m.StateRegister(rid, path),
        )
        if lease is not None:
            await self.guard(path, lease)
        return StateHandle(self, path)

    async def state_changed(self, path: str, value: Any, *, wait: bool = False) -> None:
        """Publish a new value of a state this client owns (``Unknown`` means
        :meth:`state_unknown`). The value is kept and re-published after a reconnect; while
        disconnected it is only kept.

        Like an emit, the change is written in order and returns without waiting for the
        broker's reply (a full ``emit_window`` waits for room); a refusal is raised by the next
        emit or change, or by :meth:`flush`. A change the connection lost unconfirmed is not
        reported: the value is published again after the reconnect. ``wait=True`` waits for
        the reply and raises its error.

        Raises:
            RemoteError: ``not_owner``, ``value_too_large``... (of an earlier change, or with
                ``wait`` of this one).
            Disconnected: not connected and the state is not registered by this client, or as
                :meth:`event_emit`.
        """
        path = self.resolve(path)
        if value is Unknown:
            await self._owner_update(path, None, wait)
        else:
            await self._owner_update(path, Value.of(value), wait)

    async def state_unknown(self, path: str, *, wait: bool = False) -> None:
        """Make a state this client owns unknown (kept across reconnects like a value; sent
        as :meth:`state_changed` sends).

        Raises:
            RemoteError: ``not_owner``...
        """
        await self._owner_update(self.resolve(path), None, wait)

    async def _owner_update(self, path: str, packed: Value | None, wait: bool) -> None:
        """Publish ``packed`` (``None``: unknown) on ``path``; see :meth:`state_changed`."""
        window = self._emits
        if window.faults or wait or len(window.unacked) >= window.size:
            await self._emit_ready(None, not wait)
        make = self._state_update(path, packed)
        if make is None:
            return
        kept = path in self._regs.states
        if not wait:
            self._send_emit(make, path, kept)
            return
        try:
            await self._call_ok(make)
        except Disconnected:
            if not kept:
                raise  # an owned state's value is kept and replayed on reconnect

    def _state_update(self, path: str, packed: Value | None) -> Callable[[int], m.Message] | None:
        """Keep an owned state's new value; the request publishing it, or ``None`` when it
        waits for the reconnect.

        Raises:
            Disconnected: not connected, and ``path`` is not a state of this client.
        """
        entry = self._regs.states.get(path)
        if entry is not None:
            entry.value = packed
        if not self._connected:
            if entry is not None:
                return None
            raise Disconnected("not connected to the broker")
        if entry is not None:
            entry.value_gen = self._gen
        if packed is None:
            return lambda rid: m.StateUnknown(rid, path)
        return lambda rid: m.StateChanged(rid, path, packed)

    def _state_nowait(self, path: str, packed: Value | None) -> None:
        """Publish an owned state's value without waiting (from a blocking client's hand-off)."""
        make = self._state_update(path, packed)
        if make is not None:
            self._send_emit(make, path, path in self._regs.states)

    def _emit_nowait(self, path: str, packed: Value) -> None:
        """Emit without waiting (from a blocking client's hand-off; no faults, no room)."""
        self._send_emit(lambda rid: m.EventEmit(rid, path, packed), path, False)

    async def state_observe(self, path: str, callback: Callable[[Any], Any] | None = None) -> Any:
        """Observe a state: return its current value (or ``Unknown``) and call
        ``callback(value)`` (sync or async) on each later change, ``Unknown`` included. While
        disconnected the callback gets ``Unknown`` once, and the fresh value after the reconnect.

        Raises:
            RemoteError: the broker refused (``path_already_exists`` for a non-state node...).
        """
        path = self.resolve(path)
        sub: Subscriber = (
            _CallbackSubscriber(self._notify_value, callback) if callback is not None else _Ignore()
        )
        return await self._observe(path, sub, initial=False)

    def state_observe_iter(self, path: str) -> Subscription[Any]:
        """A state's values as an async iterator: its current value first, then each change.

        ``async with client.state_observe_iter("temp") as values: async for v in values: ...``
        """
        path = self.resolve(path)
        return self._subscription(path, partial(self._observe, initial=True), self._regs.observes)

    async def _observe(self, path: str, sub: Subscriber, *, initial: bool) -> Any:
        entry = self._regs.observes.get(path)
        if entry is not None and entry.subscribers:
            entry.subscribers.append(sub)
            if initial:
                sub.deliver(entry.value)
            return entry.value
        if entry is None:
            entry = self._regs.observes[path] = ObserveEntry()
        entry.subscribers.append(sub)
        if not self.connected:
            if initial:
                sub.deliver(entry.value)
            return entry.value
        entry.gen = self._gen
        only: Subscriber = sub if initial else _Ignore()
        reply = await self._first_request(
            self._regs.observes,
            path,
            entry,
            sub,
            lambda rid: m.StateObserve(rid, path),
            on_reply=partial(record_observe, self._regs, path, only),
        )
        if reply is None:
            return entry.value
        return reply.value.obj if isinstance(reply, m.ReplyStateKnown) else Unknown

    def _subscription(
        self,
        path: str,
        attach: Callable[[str, Subscriber], Awaitable[Any]],
        entries: Mapping[str, ListenEntry | ObserveEntry],
    ) -> Subscription[Any]:
        """A :class:`Subscription` whose entry runs ``attach(path, sub)`` and whose exit takes
        ``sub`` out of its entry in ``entries`` (the listens or the observes)."""

        async def subscribe(sub: Subscription[Any]) -> None:
            self._subscriptions.add(sub)  # closed with the client
            try:
                await attach(path, sub)
            except BaseException:
                self._subscriptions.discard(sub)
                raise

        def unsubscribe(sub: Subscription[Any]) -> None:
            self._subscriptions.discard(sub)
            entry = entries.get(sub.path)
            if entry is not None and sub in entry.subscribers:
                entry.subscribers.remove(sub)

        return Subscription(path, subscribe, unsubscribe)

    # -- registration helper -------------------------------------------------------------------

    async def _establish(
        self, table: dict[str, Any], path: str, entry: Any, make: Callable[[int], m.Message]
    ) -> None:
        """Record a registration, then send it if connected (else it waits for the replay)."""
        if self._regs.owned(path):
            raise RemoteError("path_already_exists")
        table[path] = entry
        if not self.connected:
            return
        entry.gen = self._gen
        try:
            reply = await self._request(make)
        except Disconnected:
            return  # recorded: replayed on reconnect
        if isinstance(reply, m.ReplyError):
            if table.get(path) is entry:
                del table[path]
            raise RemoteError(reply.value.obj)


class _Ignore:
    """A subscriber for observes without a callback: the value is only returned."""

    __slots__ = ()

    def deliver(self, value: Any) -> None:
        pass
