"""Emits from a blocking client's threads, handed to its loop thread without a round trip.

Rules of this module:

- The calling thread packs the value and appends the emit to a queue; the first emit after the
  queue was drained asks the loop thread to drain it (one wake-up per batch, not per emit). The
  loop thread sends what it finds, in order, with nothing to wait for.
- The hand-off is taken only while the client is connected, has no fault to raise and the
  queue plus the unconfirmed emits leave room in the window; otherwise the emit goes the
  blocking way (one call on the loop), which raises the fault or ``Disconnected``, or waits
  for room, exactly as the async client does.
- Anything run on the loop for the blocking client drains the queue first, so nothing handed
  over earlier is overtaken, whatever order the loop runs its callbacks in.
- An emit the loop thread cannot send (the connection dropped after the hand-off) becomes a
  fault of the window: raised by the next emit or flush, never lost silently.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from typing import Any

from roost.client.client import Client
from roost.protocol.messages import Unknown
from roost.protocol.values import Value

__all__ = ("EmitHandoff", "trio_token")

Run = Callable[..., Any]


class EmitHandoff:
    """The queue of emits on its way from calling threads to ``client``'s loop thread.

    Args:
        client: the async client (used from its loop thread only, but for a few reads).
        schedule: asks the loop thread to call a function soon, from any thread
            (``loop.call_soon_threadsafe``); never blocks.
        run: runs a coroutine function on the loop and blocks for its result.
    """

    def __init__(
        self, client: Client, schedule: Callable[[Callable[[], None]], Any], run: Run
    ) -> None:
        self._client = client
        self._schedule = schedule
        self._run = run
        self._queue: deque[tuple[Callable[[str, Any], None], str, Any]] = deque()
        self._scheduled = False

    # -- any thread ----------------------------------------------------------------------------

    def _room(self) -> bool:
        client = self._client
        window = client._emits
        return (
            client._connected
            and not window.faults
            and len(self._queue) + len(window.unacked) < window.size
        )

    def _put(self, send: Callable[[str, Any], None], path: str, packed: Any) -> None:
        self._queue.append((send, path, packed))
        if not self._scheduled:
            self._scheduled = True
            self._schedule(self.drain)

    def emit(self, path: str, value: Any, timeout: float | None, wait: bool) -> None:
        """Emit ``value`` on ``path`` (relative to the client's base) as
        :meth:`Client.event_emit` does, handing it over when there is room."""
        client = self._client
        if not wait and self._room():
            path = client.resolve(path)
            self._put(client._emit_nowait, path, Value.of(value))
            return
        self._run(self._blocking_emit, path, value, timeout, wait)

    def state(self, path: str, value: Any, wait: bool) -> None:
        """Publish an owned state's value (``Unknown``: unknown) as
        :meth:`Client.state_changed` does, handing it over when there is room."""
        client = self._client
        if not wait and self._room():
            packed = None if value is Unknown else Value.of(value)
            self._put(client._state_nowait, client.resolve(path), packed)
            return
        self._run(self._blocking_state, path, value, wait)

    def flush(self, timeout: float | None) -> None:
        """Block until every emit handed over or sent so far is confirmed (see
        :meth:`Client.flush`)."""
        self._run(self._blocking_flush, timeout)

    # -- the loop thread -----------------------------------------------------------------------

    def drain(self) -> None:
        """Send every emit handed over so far, in order (on the loop thread)."""
        self._scheduled = False
        queue = self._queue
        while queue:
            send, path, packed = queue.popleft()
            try:
                send(path, packed)
            except Exception as exc:  # e.g. the connection dropped since it was handed over
                self._client._emits.failed(path, exc)

    async def _blocking_emit(
        self, path: str, value: Any, timeout: float | None, wait: bool
    ) -> None:
        self.drain()
        await self._client.event_emit(path, value, timeout=timeout, wait=wait)

    async def _blocking_state(self, path: str, value: Any, wait: bool) -> None:
        self.drain()
        await self._client.state_changed(path, value, wait=wait)

    async def _blocking_flush(self, timeout: float | None) -> None:
        self.drain()
        await self._client.flush(timeout)


def trio_token() -> Any:
    """The running trio loop's token (whose ``run_sync_soon`` callbacks run in order)."""
    import trio  # noqa: PLC0415 (only with the trio backend)

    return trio.lowlevel.current_trio_token()
