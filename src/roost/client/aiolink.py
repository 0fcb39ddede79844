"""A link on asyncio's own transport: no reader or writer task, no hop per frame.

Rules of this module:

- Used whenever the client runs on asyncio; other anyio backends use :class:`Link`'s tasks.
- Frames go to ``transport.write`` as they are queued: asyncio writes at once when the socket
  takes them and buffers the rest, so frames still leave in order and sending never awaits.
  Frames nobody waits for (pipelined emits) are corked: the first of a loop iteration is written
  at once, the ones after it are joined and written together in the next iteration, one system
  call for a burst; any other frame first writes what is corked, so the order holds.
- ``data_received`` handles the bytes where they arrive, in the loop's callback (marked as
  running asyncio for sniffio and anyio); a request awaits a plain asyncio future whose result
  is the reply, so a reply wakes its requester in the next loop iteration. Replies and the
  common pushes are told apart by type, inline; the rest goes through ``_dispatch``.
- Everything else (protocol state, ids, waiters, closing rules) is :class:`Link`'s.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import ssl
from collections.abc import Callable
from contextvars import ContextVar
from time import monotonic
from typing import Any, cast

import anyio.abc

from roost.client.link import REPLIES, REPLY_CODES, Link, OnMessage, OnReply, Waiter
from roost.errors import Disconnected, InvalidValue, RoostError
from roost.protocol import messages as m

__all__ = ("AsyncioLink", "connect_asyncio")

_LIBRARY: ContextVar[str | None] | None
try:  # anyio detects the running library through sniffio when it is installed
    from sniffio import current_async_library_cvar as _LIBRARY
except ImportError:  # without it, anyio asks asyncio for the running loop, which works here
    _LIBRARY = None


#: A request waiting for its reply: its future, its send time, its ``on_reply`` hook.
_Pending = tuple["asyncio.Future[m.Message]", float, "OnReply | None"]


class _FutureWaiter(Waiter):
    __slots__ = ("future",)

    def __init__(
        self, loop: asyncio.AbstractEventLoop, sent_at: float, on_reply: OnReply | None
    ) -> None:
        self.reply = None
        self.sent_at = sent_at
        self.on_reply = on_reply
        self.future: asyncio.Future[None] = loop.create_future()

    def wake(self) -> None:
        if not self.future.done():  # a cancelled request's future is done already
            self.future.set_result(None)

    async def wait(self) -> None:
        await self.future


class AsyncioLink(Link, asyncio.Protocol):
    """A :class:`Link` that is its own asyncio protocol (see the module rules)."""

    def __init__(self, loop: asyncio.AbstractEventLoop, on_message: OnMessage) -> None:
        self._setup(on_message)
        self._loop = loop
        self._transport: asyncio.Transport | None = None
        #: Requests waiting for their reply, by id: the future the requester awaits (the reply
        #: is its result), the send time and the ``on_reply`` hook.
        self._pending: dict[int, _Pending] = {}
        #: Pipelined frames held back until the next loop iteration (``None``: none, and no
        #: iteration is asked to write them).
        self._corked: list[bytes] | None = None

    # -- asyncio.Protocol ----------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # Any loop's stream transport (uvloop's are not asyncio.Transport subclasses).
        self._transport = cast(asyncio.Transport, transport)
        sock = transport.get_extra_info("socket")
        with contextlib.suppress(OSError, AttributeError):  # loops set it already; make sure
            if sock.family in (socket.AF_INET, socket.AF_INET6):
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def data_received(self, data: bytes) -> None:
        if not self._open:
            return
        # Loop callbacks run outside any task, where sniffio (and anyio through it) cannot
        # tell which library runs: say it, so that callbacks and task spawns in here work.
        token = _LIBRARY.set("asyncio") if _LIBRARY is not None else None
        try:
            pending = self._pending
            emits = self.emits
            unacked = emits.unacked
            for msg in self.conn.receive_data(data):
                if isinstance(msg, (m.ReplyOk, m.ReplyError)):  # the common reply, inline
                    entry = pending.pop(msg.id, None)
                    if entry is not None:
                        self._settle(entry, msg)
                    else:  # an emit's: only an error or a waiter makes it more than a pop
                        emit = unacked.pop(msg.id, None)
                        if emit is not None and (msg.__class__ is m.ReplyError or emits.waiting):
                            emits.settle(emit, msg)
                elif isinstance(msg, (m.EventNotify, m.ActionCall)):  # the common push
                    self.on_message(msg)
                else:
                    self._dispatch(msg)
        except Exception as exc:
            self.close(exc)
        finally:
            if token is not None:
                _LIBRARY.reset(token)  # type: ignore[union-attr]

    def eof_received(self) -> bool:
        self.close(Disconnected("the broker closed the connection"))
        return False

    def connection_lost(self, exc: Exception | None) -> None:
        self.close(exc if exc is not None else Disconnected("the broker closed the connection"))

    # -- Link ----------------------------------------------------------------------------------

    def _write(self, data: bytes) -> None:
        assert self._transport is not None
        if self._corked:
            self._uncork()
        self._transport.write(data)

    def _write_pipelined(self, data: bytes) -> None:
        corked = self._corked
        if corked is None:  # the first of this iteration: at once, and cork what follows
            assert self._transport is not None
            self._transport.write(data)
            self._corked = []
            self._loop.call_soon(self._uncork_later)
        else:
            corked.append(data)

    def _uncork(self) -> None:
        corked = self._corked
        if corked and self._open:
            assert self._transport is not None
            self._transport.write(b"".join(corked) if len(corked) > 1 else corked[0])
            corked.clear()

    def _uncork_later(self) -> None:
        self._uncork()
        self._corked = None

    def _waiter(self, sent_at: float, on_reply: OnReply | None = None) -> Waiter:
        return _FutureWaiter(self._loop, sent_at, on_reply)

    async def request(
        self, make: Callable[[int], m.Message], on_reply: OnReply | None = None
    ) -> m.Message:
        """As :meth:`Link.request`, written out for asyncio: the frame goes to the transport
        from the calling task, and the task awaits a bare future that the reply resolves (no
        coroutine, waiter object or event in between)."""
        if not self._open:
            raise Disconnected(self._why())
        conn = self.conn
        rid = conn.allocate_id()
        if rid is None:
            raise RoostError("too many requests waiting for replies")
        data = conn.send(make(rid))
        assert self._transport is not None
        if self._corked:
            self._uncork()
        self._transport.write(data)
        self.last_send = now = monotonic()
        future: asyncio.Future[m.Message] = self._loop.create_future()
        entry = (future, now, on_reply)
        pending = self._pending
        pending[rid] = entry
        try:
            return await future
        except BaseException:
            if pending.get(rid) is entry:  # given up (cancelled): a late reply is dropped
                del pending[rid]
                conn.forget_id(rid)
            raise

    def _settle(self, entry: _Pending, reply: m.Message | BaseException) -> None:
        """Deliver a reply (or the error replacing it) to the request waiting in ``entry``."""
        future, sent_at, on_reply = entry
        self.last_answered_send = max(self.last_answered_send, sent_at)
        if isinstance(reply, BaseException):
            if not future.done():
                future.set_exception(reply)
            return
        if on_reply is not None:
            try:
                on_reply(reply)
            except BaseException as exc:  # the requester fails with it; the link closes on it
                if not future.done():
                    future.set_exception(exc)
                raise
        if not future.done():  # a cancelled requester's future is done already
            future.set_result(reply)

    def _dispatch(self, msg: m.Message | m.BadValue) -> None:
        if isinstance(msg, REPLIES) or (isinstance(msg, m.BadValue) and msg.code in REPLY_CODES):
            entry = self._pending.pop(msg.id, None)
            if entry is not None:
                if isinstance(msg, m.BadValue):
                    self._settle(entry, InvalidValue(f"reply with an invalid value: {msg.reason}"))
                else:
                    self._settle(entry, msg)
            else:
                emit = self.emits.unacked.pop(msg.id, None)
                if emit is not None:
                    self.emits.settle(emit, msg)
        else:
            super()._dispatch(msg)  # the hello reply, and every push

    def close(self, error: BaseException | None = None) -> None:
        if not self._open:
            return
        pending, self._pending = self._pending, {}
        super().close(error)
        exc = Disconnected(self._why())
        for future, _, _ in pending.values():
            if not future.done():
                future.set_exception(exc)

    def statistics(self) -> dict[str, Any]:
        return {"waiting": len(self._pending) + len(self._waiters)}

    def start(self, tg: anyio.abc.TaskGroup) -> None:
        """Nothing to start: the transport delivers bytes to :meth:`data_received`."""

    def _end_writing(self) -> None:
        if self._transport is not None:
            self._transport.close()

    async def _close_socket(self) -> None:
        transport = self._transport
        if transport is not None:
            if transport.get_extra_info("sslcontext") is not None:
                # A TLS close waits on the peer for loop turns a closing program may not give;
                # every request has its answer by now, so drop the socket at once.
                transport.abort()
            else:
                transport.close()


async def connect_asyncio(
    host: str, port: int, on_message: OnMessage, *, ssl_context: ssl.SSLContext | None = None
) -> AsyncioLink:
    """Connect to ``host:port`` on the running asyncio loop (TLS with ``ssl_context``); the
    link of that connection."""
    loop = asyncio.get_running_loop()
    _, link = await loop.create_connection(
        lambda: AsyncioLink(loop, on_message), host, port, ssl=ssl_context
    )
    return link
