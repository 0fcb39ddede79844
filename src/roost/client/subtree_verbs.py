"""Subtree verbs of the client: listen to the events and observe the states under a pattern.

Rules of this module:

- Nothing is sent unless the probe of ``/meta/broker`` said the broker offers the subtree
  extension; otherwise the verbs raise ``SubtreeUnsupported`` before sending anything.
- A subscription is recorded first and then sent, like a listen: a reconnect sends it again
  (an observe then starts over with a fresh snapshot).
- Values arrive as ``(path, value)`` pairs, in the broker's order.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import anyio

from roost.client.core import ClientCore
from roost.client.registrations import Subscriber
from roost.client.streams import Subscription
from roost.client.subtrees import SubtreeEntry, SubtreeKind
from roost.errors import ConnectionClosed, Disconnected, RemoteError, SubtreeUnsupported
from roost.protocol import messages as m
from roost.protocol.values import Value

__all__ = ("SubtreeVerbs",)


class _PairCallback:
    """Delivers ``(path, value)`` pairs to a user callback ``callback(path, value)``."""

    __slots__ = ("_notify", "callback")

    def __init__(self, notify: Callable[..., None], callback: Callable[[str, Any], Any]) -> None:
        self._notify = notify
        self.callback = callback

    def deliver(self, value: Any) -> None:
        self._notify(self.callback, *value)


class SubtreeVerbs(ClientCore):
    """The subtree half of :class:`roost.client.Client`."""

    @property
    def subtree_available(self) -> bool:
        """Whether the broker offers subtree subscriptions (known once connected)."""
        return self._subtree_capable

    def _require_subtree(self) -> None:
        if not self._subtree_capable:
            raise SubtreeUnsupported(
                f"the broker at {self.server} does not offer subtree subscriptions"
                " (no extensions.subtree in /meta/broker: a plain ESHET server?)"
            )

    def subtree_listen(self, pattern: str) -> Subscription[tuple[str, Any]]:
        """Every event emitted on a path matching ``pattern``, as ``(path, value)`` pairs.

        ``/house/**`` matches every path below ``/house`` at any depth, ``/house/+/temp``
        one segment in place of the ``+``; events registered later are included.
        ``async with client.subtree_listen("/house/**") as events: async for path, value in
        events: ...``; entering completes the listen.

        Raises:
            SubtreeUnsupported: the broker is a plain ESHET server.
            RemoteError: the broker refused (``{"status": "invalid_pattern", ...}``).
        """
        return self._subtree_subscription("listen", self.resolve(pattern))

    def subtree_observe(self, pattern: str) -> Subscription[tuple[str, Any]]:
        """The states on paths matching ``pattern``, as ``(path, value)`` pairs: first the
        current value of each known one, then every change (``Unknown`` when one becomes
        unknown), with nothing missed or repeated in between. After a lost connection each
        known path gets ``Unknown``, and the reconnect brings a fresh snapshot.

        Raises:
            SubtreeUnsupported, RemoteError: as :meth:`subtree_listen`.
        """
        return self._subtree_subscription("observe", self.resolve(pattern))

    async def subtree_listen_cb(self, pattern: str, callback: Callable[[str, Any], Any]) -> None:
        """Call ``callback(path, value)`` (sync or async) for every emit matching ``pattern``,
        for the life of the client."""
        await self._subtree_start("listen", self.resolve(pattern), self._pair(callback))

    async def subtree_observe_cb(self, pattern: str, callback: Callable[[str, Any], Any]) -> None:
        """Call ``callback(path, value)`` for the snapshot and every later change of the
        states matching ``pattern``, for the life of the client."""
        await self._subtree_start("observe", self.resolve(pattern), self._pair(callback))

    def _pair(self, callback: Callable[[str, Any], Any]) -> Subscriber:
        return _PairCallback(self._notify, callback)

    def _subtree_subscription(self, kind: SubtreeKind, pattern: str) -> Subscription[Any]:
        entries: list[SubtreeEntry] = []

        async def subscribe(sub: Subscription[Any]) -> None:
            self._subscriptions.add(sub)  # closed with the client
            try:
                entries.append(await self._subtree_start(kind, pattern, sub))
            except BaseException:
                self._subscriptions.discard(sub)
                raise

        def unsubscribe(sub: Subscription[Any]) -> None:
            self._subscriptions.discard(sub)
            for entry in entries:
                self._subtree_stop(entry)

        return Subscription(pattern, subscribe, unsubscribe)

    async def _subtree_start(
        self, kind: SubtreeKind, pattern: str, subscriber: Subscriber
    ) -> SubtreeEntry:
        if self.connected:
            self._require_subtree()
        entry = self._subtrees.add(kind, pattern, subscriber)
        if not self.connected:
            return entry  # sent by the replay after the next connect
        entry.gen = self._gen
        try:
            reply = await self._request(entry.request, on_reply=entry.started)
        except Disconnected:
            return entry
        except BaseException:
            self._subtrees.remove(entry)
            raise
        if isinstance(reply, m.ReplyError):
            self._subtrees.remove(entry)
            raise RemoteError(reply.value.obj)
        return entry

    def _subtree_stop(self, entry: SubtreeEntry) -> None:
        """Forget ``entry`` and cancel it on the broker (in the background)."""
        if not self._subtrees.remove(entry) or not self.connected or self._tg is None:
            return
        body = Value.of({"sub": entry.number})

        async def cancel() -> None:
            try:
                with anyio.fail_after(self.timeout.ping_timeout):
                    await self._request(lambda rid: m.SubtreeCancel(rid, body))
            except (ConnectionClosed, TimeoutError):
                pass  # a new connection never learns of it

        self._tg.start_soon(cancel)
