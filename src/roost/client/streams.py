"""Async-iterator forms of listening to an event and observing a state.

Rules of this module:

- A subscription is an async context manager: entering it completes the listen or observe on
  the broker, so every value produced after entry is delivered; leaving it stops local delivery
  (the broker keeps the connection-wide listen or observe, as ESHET has no unlisten).
- Values are buffered without bound, in order, so a slow consumer loses nothing.
- Iteration ends when the client closes.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Awaitable, Callable
from types import TracebackType
from typing import Any, Generic, TypeVar

import anyio

__all__ = ("Subscription",)

T = TypeVar("T")


class Subscription(Generic[T]):
    """Values of one event or state as an async iterator.

    Use as ``async with client.event_listen(path) as events: async for value in events: ...``.
    For a state the first value is its current value (``Unknown`` if it has none); ``Unknown``
    also arrives while the client is disconnected, and the fresh value after a reconnect.

    Raises:
        RuntimeError: iterating without entering the context first.
    """

    def __init__(
        self,
        path: str,
        subscribe: Callable[[Subscription[T]], Awaitable[None]],
        unsubscribe: Callable[[Subscription[T]], None],
    ) -> None:
        self.path = path
        self._subscribe = subscribe
        self._unsubscribe = unsubscribe
        self._items: deque[Any] = deque()
        self._wakeup = anyio.Event()
        self._entered = False
        self._closed = False

    # -- Subscriber protocol (called by the client, never blocks) ------------------------------

    def deliver(self, value: Any) -> None:
        """Queue one value for the iterator."""
        if not self._closed:
            self._items.append(value)
            self._wakeup.set()

    def close(self) -> None:
        """End iteration once the buffered values are consumed."""
        self._closed = True
        self._wakeup.set()

    # -- context manager and iterator ----------------------------------------------------------

    async def __aenter__(self) -> Subscription[T]:
        await self._subscribe(self)
        self._entered = True
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._unsubscribe(self)
        self.close()
        self._items.clear()

    def __aiter__(self) -> Subscription[T]:
        if not self._entered:
            raise RuntimeError("enter the subscription with 'async with' before iterating")
        return self

    async def __anext__(self) -> T:
        while not self._items:
            if self._closed:
                raise StopAsyncIteration
            self._wakeup = anyio.Event()
            await self._wakeup.wait()
        value: T = self._items.popleft()
        return value

    async def receive(self) -> T:
        """The next value; waits for it.

        Raises:
            anyio.EndOfStream: the subscription or its client is closed and nothing is buffered.
        """
        try:
            return await self.__anext__()
        except StopAsyncIteration:
            raise anyio.EndOfStream from None

    @property
    def pending(self) -> int:
        """How many values are buffered."""
        return len(self._items)
