"""eshet.py's asyncio ``Client``, on roost's client.

Rules of this module:

- Behaviour follows eshet.py: the constructor (called in a running asyncio loop) starts
  connecting in a background task; ``wait_for_connection()`` and ``close()`` replace
  ``async with``; calls, gets, sets and emits raise ``Disconnected`` while not connected;
  ``state_observe`` made while disconnected waits for the connection and returns the fresh value.
- Errors are eshet.py's: an error reply raises ``ErrorValue(value)``, a lost or missing
  connection ``Disconnected``.
- Callbacks of listens and observes are called in order; a coroutine one of them returns runs
  in its own task, as in eshet.py. Action and set callbacks are roost's: a plain function
  answers at once, a coroutine in a task of the connection.
- Everything else (reconnects, replay, pings, the wire) is :class:`roost.client.Client`'s.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncGenerator, Awaitable, Callable, Coroutine
from typing import Any, ClassVar

from roost.client import Client as RoostClient
from roost.client.config import TimeoutConfig
from roost.errors import ConnectionClosed, RemoteError, RoostError
from roost.eshet.exceptions import Disconnected, ErrorValue
from roost.protocol.messages import Unknown

__all__ = ("Client", "ConnectedFlag", "StateWrapper", "Unknown")

_LOGGER = logging.getLogger("eshet.client")


def _translate(exc: RoostError) -> Exception:
    """The eshet.py exception for a roost one (others are returned unchanged)."""
    if isinstance(exc, ErrorValue | Disconnected):
        return exc
    if isinstance(exc, RemoteError):
        return ErrorValue(exc.value)
    if isinstance(exc, ConnectionClosed):
        return Disconnected(str(exc))
    return exc


class ConnectedFlag(int):
    """Whether the client is connected: true or false as a bool is, and callable
    (``client.connected`` and ``client.connected()`` both work)."""

    def __call__(self) -> bool:
        return bool(self)

    def __repr__(self) -> str:
        return repr(bool(self))


_CONNECTED, _DISCONNECTED = ConnectedFlag(1), ConnectedFlag(0)


class StateWrapper:
    """A state this client registered (returned by :meth:`Client.state_register`)."""

    def __init__(self, client: Client, path: str) -> None:
        self.client = client
        self.path = path

    async def changed(self, value: Any) -> None:
        """Publish a new value; as :meth:`Client.state_changed`."""
        await self.client.state_changed(self.path, value)

    async def unknown(self) -> None:
        """Make the state unknown; as :meth:`Client.state_unknown`."""
        await self.client.state_unknown(self.path)

    def __repr__(self) -> str:
        return f"StateWrapper(path={self.path!r})"


_State = StateWrapper


class Client:
    """An ESHET client with eshet.py's API (see the module rules).

    Args:
        base: absolute base path for relative paths.
        server: ``host[:port]``; default ``ROOST_SERVER``, then ``ESHET_SERVER``, then
            ``localhost``, port 11236.
        client_id: the id to say hello with; ``None`` lets the broker allocate one.
        timeout_cfg: ping and server-timeout settings.
        logger: where connection messages go.

    Raises:
        ValueError: a relative ``base`` or a malformed ``server``.
        RuntimeError: no asyncio loop is running.
    """

    StateWrapper: ClassVar[type[_State]] = _State

    def __init__(
        self,
        base: str = "/",
        server: str | None = None,
        client_id: Any = None,
        timeout_cfg: TimeoutConfig | None = None,
        logger: logging.Logger = _LOGGER,
    ) -> None:
        if not base.startswith("/"):
            raise ValueError("base path must be absolute")
        loop = asyncio.get_running_loop()
        self.logger = logger
        self.timeout_cfg = timeout_cfg if timeout_cfg is not None else TimeoutConfig()
        self._client = RoostClient(
            base,
            server,
            client_id,
            self.timeout_cfg,
            on_connect=lambda: logger.info("connected"),
            on_disconnect=lambda: logger.warning("disconnected"),
            connect_timeout=None,
        )
        self.base = self._client.base
        self._closing = asyncio.Event()
        self._tasks: set[asyncio.Future[Any]] = set()
        self._runner: asyncio.Task[None] | None = loop.create_task(
            self._run(), name="eshet connection"
        )

    async def _run(self) -> None:
        try:
            async with self._client:
                await self._closing.wait()
        except RoostError as exc:
            self.logger.error("the client stopped: %s", exc)

    # -- connection ----------------------------------------------------------------------------

    @property
    def client(self) -> RoostClient:
        """roost's client underneath (for roost's extras, such as leases)."""
        return self._client

    @property
    def client_id(self) -> Any:
        """The client id in use (the broker's allocated one after connecting), or ``None``."""
        return self._client.client_id

    @property
    def connected(self) -> ConnectedFlag:
        """Whether the client is connected (also callable: ``client.connected()``)."""
        return _CONNECTED if self._client.connected else _DISCONNECTED

    async def wait_for_connection(self) -> None:
        """Wait until the client is connected.

        Raises:
            Disconnected: the client was closed or stopped on a fatal error.
        """
        if self._runner is None:
            raise Disconnected("the client is closed")
        try:
            await self._client.wait_for_connection()
        except RoostError as exc:
            raise _translate(exc) from exc

    async def close(self) -> None:
        """Disconnect and stop reconnecting (idempotent)."""
        runner, self._runner = self._runner, None
        if runner is None:
            return
        self._closing.set()
        if not self._client.connected:
            runner.cancel()  # still connecting: the wait for the first connection ends here
        try:
            await runner
        except asyncio.CancelledError:
            current = asyncio.current_task()
            if current is not None and current.cancelling():
                raise  # close() itself was cancelled
        for task in list(self._tasks):
            task.cancel()

    # -- callbacks -----------------------------------------------------------------------------

    def _in_task(self, callback: Callable[[Any], Any]) -> Callable[[Any], None]:
        """``callback`` for values: called in order; a coroutine it returns runs in a task."""

        def call(value: Any) -> None:
            result = callback(value)
            if isinstance(result, Awaitable):
                task = asyncio.ensure_future(result)
                self._tasks.add(task)
                task.add_done_callback(self._task_done)

        return call

    def _task_done(self, task: asyncio.Future[Any]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            self.logger.error("a callback task raised", exc_info=task.exception())

    # -- actions -------------------------------------------------------------------------------

    async def action_register(self, path: str, callback: Callable[..., Any]) -> None:
        """Own an action: ``callback(*args)`` answers each call; an awaitable it returns is
        awaited in a task; an exception becomes an error reply with ``str(exc)``."""
        try:
            await self._client.action_register(path, callback)
        except RoostError as exc:
            raise _translate(exc) from exc

    async def action_call(self, path: str, *args: Any) -> Any:
        """Call an action; its result.

        Raises:
            ErrorValue: an error reply. Disconnected: not connected, or lost before the reply.
        """
        try:
            return await self._client.action_call(path, *args)
        except RoostError as exc:
            raise _translate(exc) from exc

    # -- props and states: get and set -----------------------------------------------------------

    async def get(self, path: str) -> Any:
        """The value of a state or prop (errors as :meth:`action_call`)."""
        try:
            return await self._client.get(path)
        except RoostError as exc:
            raise _translate(exc) from exc

    async def set(self, path: str, value: Any) -> Any:
        """Set a state or prop through its owner; the owner's reply (errors as
        :meth:`action_call`)."""
        try:
            return await self._client.set(path, value)
        except RoostError as exc:
            raise _translate(exc) from exc

    # -- events --------------------------------------------------------------------------------

    async def event_register(self, path: str) -> Callable[..., Coroutine[Any, Any, None]]:
        """Own an event; an async ``emit(value=None)`` function for it."""
        path = self._client.resolve(path)
        event_emit = self._client.event_emit
        try:
            await self._client.event_register(path)
        except RoostError as exc:
            raise _translate(exc) from exc

        async def emit(value: Any = None) -> None:
            try:
                await event_emit(path, value, wait=True)  # eshet.py's emit awaits the reply
            except RoostError as exc:
                raise _translate(exc) from exc

        return emit

    async def event_listen_cb(self, path: str, callback: Callable[[Any], Any]) -> None:
        """Call ``callback(value)`` for every emit on ``path`` (a coroutine it returns runs in a
        task), for the life of the client."""
        try:
            await self._client.event_listen_cb(path, self._in_task(callback))
        except RoostError as exc:
            raise _translate(exc) from exc

    async def event_listen(self, path: str) -> AsyncGenerator[Any, None]:
        """``async for value in client.event_listen(path)``: every emit on ``path``; the
        listen ends when the iteration does."""
        try:
            async with self._client.event_listen(path) as values:
                async for value in values:
                    yield value
        except RoostError as exc:
            raise _translate(exc) from exc

    # -- states --------------------------------------------------------------------------------

    async def state_register(
        self, path: str, set_callback: Callable[[Any], Any] | None = None
    ) -> _State:
        """Own a state (unknown until the first change); ``set_callback(value)`` answers sets
        from others (without one they get ``not_implemented``)."""
        path = self._client.resolve(path)
        try:
            await self._client.state_register(path, set_callback)
        except RoostError as exc:
            raise _translate(exc) from exc
        return _State(self, path)

    async def state_changed(self, path: str, value: Any) -> None:
        """Publish a new value of a state this client owns (``Unknown`` makes it unknown). The
        value is kept and published again after a reconnect.

        Raises:
            Disconnected: not connected (the value is still kept for the reconnect).
        """
        try:
            await self._client.state_changed(path, value, wait=True)
        except RoostError as exc:
            raise _translate(exc) from exc
        if not self._client.connected:
            raise Disconnected("not connected to the broker")

    async def state_unknown(self, path: str) -> None:
        """Make a state this client owns unknown (kept like a value; errors as
        :meth:`state_changed`)."""
        try:
            await self._client.state_unknown(path, wait=True)
        except RoostError as exc:
            raise _translate(exc) from exc
        if not self._client.connected:
            raise Disconnected("not connected to the broker")

    async def state_observe(self, path: str, callback: Callable[[Any], Any] | None = None) -> Any:
        """Observe a state: its current value (or ``Unknown``), and ``callback(value)`` for each
        later change. Made while disconnected, it waits for the connection first."""
        try:
            if not self._client.connected:
                await self._client.wait_for_connection()
            wrapped = None if callback is None else self._in_task(callback)
            return await self._client.state_observe(path, wrapped)
        except RoostError as exc:
            raise _translate(exc) from exc
