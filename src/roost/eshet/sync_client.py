"""eshet.py's ``SyncClient``: the asyncio client on a loop thread, every method a Future.

Rules of this module:

- One asyncio loop runs in a daemon thread per client; every method submits a coroutine to it
  and returns its ``concurrent.futures.Future`` (``.result()`` waits and raises its error).
- Callbacks run on the loop thread, as in eshet.py: keep them short, or hand work to a queue
  (``state_observe_queue``, ``event_listen_queue``) or a thread of your own.
- ``close()`` closes the client, stops the loop and joins the thread; it returns a finished
  Future, so code written either way (``close()`` or ``close().result()``) works.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable, Coroutine
from concurrent.futures import Future
from queue import Queue
from typing import Any, ClassVar, TypeVar

from roost.client.loops import new_loop
from roost.eshet.client import Client, ConnectedFlag
from roost.protocol.messages import Unknown

__all__ = ("StateObserveWrapper", "SyncClient", "SyncStateWrapper")

T = TypeVar("T")


class StateObserveWrapper:
    """The latest value of an observed state, updated in the background.

    ``changed`` says whether the value changed since the last :meth:`get_value`.
    """

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self._value: Any = Unknown
        self._changed = False

    @property
    def changed(self) -> bool:
        """Whether the value changed since the last :meth:`get_value`."""
        with self.lock:
            return self._changed

    def get_value(self) -> Any:
        """The value (or ``Unknown``); clears ``changed``."""
        with self.lock:
            self._changed = False
            return self._value

    def _set_value(self, value: Any) -> None:
        with self.lock:
            self._value = value
            self._changed = True


class SyncStateWrapper:
    """A state the client registered; ``changed`` and ``unknown`` return Futures."""

    def __init__(self, client: SyncClient, path: str) -> None:
        self.client = client
        self.path = path

    def changed(self, value: Any) -> Future[None]:
        """Publish a new value (see :meth:`Client.state_changed`)."""
        return self.client.state_changed(self.path, value)

    def unknown(self) -> Future[None]:
        """Make the state unknown (see :meth:`Client.state_unknown`)."""
        return self.client.state_unknown(self.path)

    def __repr__(self) -> str:
        return f"StateWrapper(path={self.path!r})"


_Observed = StateObserveWrapper


class SyncClient:
    """eshet.py's blocking client; arguments as for :class:`roost.eshet.Client`.

    ``client.action_call("lamp/on").result()`` waits for the reply; errors are raised by
    ``result()``.
    """

    StateObserveWrapper: ClassVar[type[_Observed]] = _Observed
    StateWrapper: ClassVar[type[SyncStateWrapper]] = SyncStateWrapper

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self.loop = new_loop()
        self.thread = threading.Thread(
            target=self._run_loop, name="roost.eshet SyncClient", daemon=True
        )
        self.thread.start()

        async def make() -> Client:
            return Client(*args, **kwargs)

        try:
            self.client: Client = self.run_coro(make()).result()
        except BaseException:
            self._stop_loop()
            raise

    def _run_loop(self) -> None:
        asyncio.set_event_loop(self.loop)
        try:
            self.loop.run_forever()
        finally:
            self.loop.close()

    def _stop_loop(self) -> None:
        if self.thread.is_alive():
            self.loop.call_soon_threadsafe(self.loop.stop)
            self.thread.join()

    def run_coro(self, coro: Coroutine[Any, Any, T]) -> Future[T]:
        """Run ``coro`` on the client's loop; its Future."""
        return asyncio.run_coroutine_threadsafe(coro, self.loop)

    def close(self) -> Future[None]:
        """Close the client, stop its loop and join its thread (idempotent); a finished Future."""
        if self.thread.is_alive():
            try:
                self.run_coro(self.client.close()).result()
            finally:
                self._stop_loop()
        done: Future[None] = Future()
        done.set_result(None)
        return done

    @property
    def connected(self) -> ConnectedFlag:
        """Whether the client is connected (also callable, as on :class:`Client`)."""
        return self.client.connected

    # -- the verbs, each a Future --------------------------------------------------------------

    def wait_for_connection(self) -> Future[None]:
        """Done once connected."""
        return self.run_coro(self.client.wait_for_connection())

    def action_register(self, path: str, callback: Callable[..., Any]) -> Future[None]:
        """See :meth:`Client.action_register` (the callback runs on the loop thread)."""
        return self.run_coro(self.client.action_register(path, callback))

    def action_call(self, path: str, *args: Any) -> Future[Any]:
        """See :meth:`Client.action_call`."""
        return self.run_coro(self.client.action_call(path, *args))

    def get(self, path: str) -> Future[Any]:
        """See :meth:`Client.get`."""
        return self.run_coro(self.client.get(path))

    def set(self, path: str, value: Any) -> Future[Any]:
        """See :meth:`Client.set`."""
        return self.run_coro(self.client.set(path, value))

    def event_register(self, path: str) -> Future[Callable[..., Future[None]]]:
        """Own an event; a Future of an ``emit(value=None)`` function returning a Future."""

        async def register() -> Callable[..., Future[None]]:
            emit = await self.client.event_register(path)

            def emit_sync(value: Any = None) -> Future[None]:
                return self.run_coro(emit(value))

            return emit_sync

        return self.run_coro(register())

    def event_listen_cb(self, path: str, callback: Callable[[Any], Any]) -> Future[None]:
        """See :meth:`Client.event_listen_cb` (the callback runs on the loop thread)."""
        return self.run_coro(self.client.event_listen_cb(path, callback))

    def event_listen_queue(self, path: str) -> Future[Queue[Any]]:
        """Listen to an event; a Future of a ``queue.Queue`` that receives every emit."""

        async def listen() -> Queue[Any]:
            queue: Queue[Any] = Queue()
            await self.client.event_listen_cb(path, queue.put_nowait)
            return queue

        return self.run_coro(listen())

    def state_register(
        self, path: str, set_callback: Callable[[Any], Any] | None = None
    ) -> Future[SyncStateWrapper]:
        """Own a state; a Future of a wrapper whose ``changed``/``unknown`` return Futures."""

        async def register() -> SyncStateWrapper:
            state = await self.client.state_register(path, set_callback)
            return SyncStateWrapper(self, state.path)

        return self.run_coro(register())

    def state_changed(self, path: str, value: Any) -> Future[None]:
        """See :meth:`Client.state_changed`."""
        return self.run_coro(self.client.state_changed(path, value))

    def state_unknown(self, path: str) -> Future[None]:
        """See :meth:`Client.state_unknown`."""
        return self.run_coro(self.client.state_unknown(path))

    def state_observe(self, path: str, callback: Callable[[Any], Any] | None = None) -> Future[Any]:
        """See :meth:`Client.state_observe` (the callback runs on the loop thread)."""
        return self.run_coro(self.client.state_observe(path, callback))

    def state_observe_queue(self, path: str) -> Future[Queue[Any]]:
        """Observe a state; a Future of a ``queue.Queue`` holding its current value first, then
        each change."""

        async def observe() -> Queue[Any]:
            queue: Queue[Any] = Queue()
            queue.put_nowait(await self.client.state_observe(path, queue.put_nowait))
            return queue

        return self.run_coro(observe())

    def state_observe_wrapper(self, path: str) -> Future[_Observed]:
        """Observe a state; a Future of a :class:`StateObserveWrapper` kept up to date."""

        async def observe() -> _Observed:
            wrapper = _Observed()
            wrapper._set_value(await self.client.state_observe(path, wrapper._set_value))
            return wrapper

        return self.run_coro(observe())
