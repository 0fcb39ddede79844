"""One live connection to the broker: protocol state, one writer, reply waiters by request id.

Rules of this module:

- A ``Link`` lives for exactly one TCP connection; reconnecting makes a new one.
- Sending never awaits and frames leave in the order they were queued. ``Link`` (any anyio
  backend) queues them for its one writer task; :class:`~roost.client.aiolink.AsyncioLink`
  hands them straight to asyncio's transport.
- Received bytes are handled in one place, in arrival order (``Link``'s reader task, or the
  asyncio protocol's ``data_received``). Replies wake their waiter; every other message goes to
  the ``on_message`` callback, synchronously.
- When the link dies, for whatever reason, every waiter fails with ``Disconnected`` at once and
  the link's cancel scope is cancelled. A late reply to a request someone gave up on is dropped.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable
from time import monotonic
from typing import Any

import anyio
import anyio.abc

from roost.client.window import EmitWindow
from roost.errors import Disconnected, InvalidValue, RoostError
from roost.protocol import messages as m
from roost.protocol.connection import Connection, Role

__all__ = ("REPLIES", "REPLY_CODES", "Link", "OnMessage", "OnReply", "Waiter")

log = logging.getLogger("roost.client")

OnMessage = Callable[[m.Message | m.BadValue], None]

#: The message types that answer a request (matched to their waiter by id).
REPLIES = (
    m.ReplyOk,
    m.ReplyError,
    m.ReplyStateKnown,
    m.ReplyStateUnknown,
    m.ReplyStateTKnown,
    m.ReplyStateTUnknown,
)
#: Their type codes (a reply with an invalid value arrives as a ``BadValue`` of one of them).
REPLY_CODES = frozenset(cls.code for cls in REPLIES)
_READ_SIZE = 65536


OnReply = Callable[[m.Message], None]


class Waiter:
    """Where one reply (or the error that replaces it) is delivered; woken once."""

    __slots__ = ("event", "on_reply", "reply", "sent_at")

    def __init__(self, sent_at: float, on_reply: OnReply | None = None) -> None:
        self.event = anyio.Event()
        self.reply: m.Message | BaseException | None = None
        self.sent_at = sent_at
        self.on_reply = on_reply

    def wake(self) -> None:
        """Wake the waiting request (``reply`` is set)."""
        self.event.set()

    async def wait(self) -> None:
        """Wait until woken."""
        await self.event.wait()


class Link:
    """The protocol side of one connected socket.

    Args:
        stream: the connected byte stream; the link closes it when it dies.
        on_message: called in the reader task for each message that is not a reply.
    """

    def __init__(self, stream: anyio.abc.ByteStream, on_message: OnMessage) -> None:
        self.stream = stream
        self._out_send, self._out_recv = anyio.create_memory_object_stream[bytes](math.inf)
        self._setup(on_message)

    def _setup(self, on_message: OnMessage) -> None:
        """The state every kind of link has (a subclass without a stream calls only this)."""
        self.conn = Connection(Role.CLIENT)
        #: Receives every message that is not a reply (replaceable before the reader starts).
        self.on_message = on_message
        self._waiters: dict[int, Waiter] = {}
        self._hello: Waiter | None = None
        #: Where emits sent without waiting are kept until confirmed (the client's own window
        #: replaces this one before the hello).
        self.emits = EmitWindow()
        now = monotonic()
        #: Monotonic time of the last frame queued for sending.
        self.last_send = now
        #: Send time of the most recent request whose reply arrived: the broker had heard from
        #: us by then, so it cannot drop us for silence before this plus the server timeout.
        self.last_answered_send = now
        #: Set once the link is dead.
        self.closed = anyio.Event()
        #: False once the link is dead (the same as ``closed``, as a plain flag for hot paths).
        self._open = True
        #: Why the link died (``None`` while alive or after a local close).
        self.error: BaseException | None = None
        self.scope: anyio.CancelScope | None = None

    @property
    def alive(self) -> bool:
        """False once the link died or was closed."""
        return self._open

    # -- sending -------------------------------------------------------------------------------

    def send_nowait(self, msg: m.Message) -> None:
        """Queue ``msg`` for the writer; dropped silently if the link is already dead.

        Raises:
            LocalProtocolError: the message does not fit in a frame or may not be sent.
        """
        data = self.conn.send(msg)
        if not self._open:
            return
        self._write(data)
        self.last_send = monotonic()

    def _write(self, data: bytes) -> None:
        """Hand one frame to whatever writes the socket (never blocks)."""
        self._out_send.send_nowait(data)

    def _write_pipelined(self, data: bytes) -> None:
        """Hand one frame of a request nobody waits for to the socket's writer (the writer
        task sends what piled up in one system call)."""
        self._out_send.send_nowait(data)

    def _waiter(self, sent_at: float, on_reply: OnReply | None = None) -> Waiter:
        return Waiter(sent_at, on_reply)

    def emit(self, make: Callable[[int], m.Message], path: str, kept: bool) -> None:
        """Send the request ``make(id)`` (an emit or a state change on ``path``) without waiting:
        its reply is taken by :attr:`emits` (``kept``: a reconnect publishes it again).

        Raises:
            Disconnected: the link is dead. RoostError: every request id is in use.
            LocalProtocolError: the request does not fit in a frame.
        """
        if not self._open:
            raise Disconnected(self._why())
        conn = self.conn
        rid = conn.allocate_id()
        if rid is None:
            raise RoostError("too many requests waiting for replies")
        self._write_pipelined(conn.send(make(rid)))
        self.last_send = now = monotonic()
        self.emits.sent(rid, now, path, kept)

    async def request(
        self, make: Callable[[int], m.Message], on_reply: OnReply | None = None
    ) -> m.Message:
        """Send the request ``make(id)`` and wait for its reply.

        ``on_reply`` (optional) is called with the reply in the reader task, before any later
        message is handled, so that state kept from the reply cannot be overtaken.

        Returns:
            The reply message (``ReplyOk``, ``ReplyError`` or an observe reply).

        Raises:
            Disconnected: the link died before the reply arrived (also when already dead).
            InvalidValue: the reply carried an invalid value.
            RoostError: all 65536 request ids are waiting for replies.
            LocalProtocolError: the request does not fit in a frame.

        On cancellation the id is forgotten, so a late reply is dropped and the id can be reused.
        """
        if not self._open:
            raise Disconnected(self._why())
        rid = self.conn.allocate_id()
        if rid is None:
            raise RoostError("too many requests waiting for replies")
        msg = make(rid)
        waiter = self._waiter(monotonic(), on_reply)
        self.send_nowait(msg)
        self._waiters[rid] = waiter
        try:
            await waiter.wait()
        finally:
            if self._waiters.get(rid) is waiter:
                del self._waiters[rid]
                self.conn.forget_id(rid)
        reply = waiter.reply
        if isinstance(reply, BaseException):
            raise reply
        assert reply is not None
        return reply

    async def hello(self, msg: m.Hello | m.HelloId) -> m.Message:
        """Send a hello and wait for the broker's hello reply.

        Raises:
            Disconnected: the link died first.
        """
        if not self._open:
            raise Disconnected(self._why())
        waiter = self._hello = self._waiter(monotonic())
        self.send_nowait(msg)
        await waiter.wait()
        reply = waiter.reply
        if isinstance(reply, BaseException):
            raise reply
        assert reply is not None
        return reply

    # -- tasks ---------------------------------------------------------------------------------

    def start(self, tg: anyio.abc.TaskGroup) -> None:
        """Start the link's tasks (its reader and its writer) in ``tg``."""
        tg.start_soon(self.run_reader)
        tg.start_soon(self.run_writer)

    async def run_writer(self) -> None:
        """Write queued frames, several per system call when they pile up, until the link dies."""
        try:
            async for data in self._out_recv:
                batch = [data]
                while True:
                    try:
                        batch.append(self._out_recv.receive_nowait())
                    except anyio.WouldBlock:
                        break
                await self.stream.send(b"".join(batch) if len(batch) > 1 else data)
        except Exception as exc:
            self.close(exc)

    async def run_reader(self) -> None:
        """Read and dispatch messages until the link dies; EOF and errors close the link."""
        try:
            while True:
                try:
                    data = await self.stream.receive(_READ_SIZE)
                except anyio.EndOfStream:
                    self.close(Disconnected("the broker closed the connection"))
                    return
                self.feed(data)
        except Exception as exc:
            self.close(exc)

    def feed(self, data: bytes) -> None:
        """Handle received bytes: wake waiters, pass other messages to ``on_message``.

        Raises:
            ProtocolError: the bytes break the protocol (the caller closes the link).
        """
        for msg in self.conn.receive_data(data):
            self._dispatch(msg)

    def _dispatch(self, msg: m.Message | m.BadValue) -> None:
        if isinstance(msg, REPLIES) or (isinstance(msg, m.BadValue) and msg.code in REPLY_CODES):
            waiter = self._waiters.pop(msg.id, None)
            if waiter is None:
                emit = self.emits.unacked.pop(msg.id, None)
                if emit is not None:
                    self.emits.settle(emit, msg)
                return  # else the requester gave up (timeout or cancel)
            self.last_answered_send = max(self.last_answered_send, waiter.sent_at)
            if isinstance(msg, m.BadValue):
                waiter.reply = InvalidValue(f"reply with an invalid value: {msg.reason}")
            else:
                waiter.reply = msg
                if waiter.on_reply is not None:
                    waiter.on_reply(msg)
            waiter.wake()
        elif isinstance(msg, (m.ServerHello, m.ServerHelloId)):
            waiter = self._hello
            if waiter is not None:
                self._hello = None
                self.last_answered_send = max(self.last_answered_send, waiter.sent_at)
                waiter.reply = msg
                waiter.wake()
        else:
            self.on_message(msg)

    # -- ending --------------------------------------------------------------------------------

    def close(self, error: BaseException | None = None) -> None:
        """End the link: fail every waiter with ``Disconnected``, cancel the link's tasks.

        Idempotent; the first ``error`` is kept as the reason.
        """
        if not self._open:
            return
        self._open = False
        self.error = error
        self.closed.set()
        self._end_writing()
        exc = Disconnected(self._why())
        waiters = list(self._waiters.values())
        self._waiters.clear()
        if self._hello is not None:
            waiters.append(self._hello)
            self._hello = None
        for waiter in waiters:
            waiter.reply = exc
            waiter.wake()
        self.emits.link_lost(self._why())
        if self.scope is not None:
            self.scope.cancel()

    def _end_writing(self) -> None:
        self._out_send.close()
        self._out_recv.close()

    async def aclose(self) -> None:
        """Close the link and its socket (shielded, so it also works while cancelled)."""
        self.close()
        with anyio.CancelScope(shield=True):
            try:
                await self._close_socket()
            except Exception as exc:  # the socket may already be broken; nothing to recover
                log.debug("closing the socket failed: %r", exc)

    async def _close_socket(self) -> None:
        await self.stream.aclose()

    def _why(self) -> str:
        if self.error is None:
            return "the connection to the broker is closed"
        return f"the connection to the broker was lost: {self.error or repr(self.error)}"

    def statistics(self) -> dict[str, Any]:
        """A snapshot: requests waiting for a reply."""
        return {"waiting": len(self._waiters)}
