"""A raw-protocol test client: frames over an anyio TCP socket, decoded with roost.protocol.

It does no role or id checking of its own, so tests see exactly what the broker sends::

    async with await Wire.connect(port) as a:
        await a.hello()
        await a.send(m.ActionRegister(1, "/a"))
        assert await a.recv() == m.ReplyOk(1, NIL)
"""

from __future__ import annotations

import contextlib
import ssl
from collections import deque
from types import TracebackType
from typing import Any, TypeVar

import anyio
from anyio.abc import SocketStream

from roost.protocol import codec
from roost.protocol import messages as m
from roost.protocol.framing import FrameDecoder
from roost.protocol.values import NIL, Value, pack

__all__ = (
    "DEFAULT_TIMEOUT",
    "Wire",
    "connect",
    "err",
    "ok",
    "packed",
    "v",
)

#: Seconds to wait for an expected frame (the conformance bound is 0.3 s; CI machines vary).
DEFAULT_TIMEOUT = 5.0

M = TypeVar("M")


def v(obj: Any) -> Value:
    """A value packed from a Python object."""
    return Value.of(obj)


def ok(rid: int, obj: Any = None) -> m.ReplyOk:
    """The expected ``reply ok`` for ``rid`` with ``obj``."""
    return m.ReplyOk(rid, NIL if obj is None else Value.of(obj))


def err(rid: int, obj: Any) -> m.ReplyError:
    """The expected ``reply error`` for ``rid`` with ``obj`` (a str for broker errors)."""
    return m.ReplyError(rid, Value.of(obj))


class Wire:
    """One raw connection to a broker."""

    def __init__(self, stream: SocketStream) -> None:
        self.stream = stream
        self.decoder = FrameDecoder()
        self.inbox: deque[m.Message | m.BadValue] = deque()
        self.eof = False
        self.client_id: Value | None = None
        self._next_id = 0

    @classmethod
    async def connect(
        cls, port: int, host: str = "127.0.0.1", *, ssl_context: ssl.SSLContext | None = None
    ) -> Wire:
        """Open a TCP connection, or TLS with ``ssl_context`` (no hello)."""
        with anyio.fail_after(DEFAULT_TIMEOUT):
            if ssl_context is None:
                stream: Any = await anyio.connect_tcp(host, port)
            else:
                stream = await anyio.connect_tcp(
                    host, port, ssl_context=ssl_context, tls_standard_compatible=False
                )
        return cls(stream)

    async def __aenter__(self) -> Wire:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Close the socket (ignoring errors of an already broken one)."""
        with contextlib.suppress(OSError, anyio.BrokenResourceError, anyio.ClosedResourceError):
            await self.stream.aclose()

    def next_id(self) -> int:
        """A fresh request id (0, 1, 2, ... mod 65536)."""
        rid = self._next_id
        self._next_id = (rid + 1) & 0xFFFF
        return rid

    # -- sending -------------------------------------------------------------------------------

    async def send(self, *msgs: m.Message) -> None:
        """Encode and send messages in one write."""
        await self.send_raw(b"".join(codec.encode(msg) for msg in msgs))

    async def send_raw(self, data: bytes) -> None:
        """Send bytes as they are."""
        await self.stream.send(data)

    async def send_payload(self, payload: bytes) -> None:
        """Send one frame around a hand-made payload."""
        await self.send_raw(b"G" + len(payload).to_bytes(2, "big") + payload)

    # -- receiving -----------------------------------------------------------------------------

    async def _fill(self) -> bool:
        """Read one chunk into the inbox; False at EOF."""
        try:
            data = await self.stream.receive(65536)
        except (anyio.EndOfStream, anyio.BrokenResourceError, ConnectionResetError, ssl.SSLError):
            self.eof = True
            return False
        for payload in self.decoder.feed(data):
            self.inbox.append(codec.decode(payload))
        return True

    async def recv(self, timeout: float = DEFAULT_TIMEOUT) -> m.Message | m.BadValue:
        """The next message.

        Raises:
            TimeoutError: nothing within ``timeout``.
            AssertionError: the connection closed first.
        """
        with anyio.fail_after(timeout):
            while not self.inbox:
                if not await self._fill():
                    raise AssertionError("connection closed while a message was expected")
        return self.inbox.popleft()

    async def recv_as(self, cls: type[M], timeout: float = DEFAULT_TIMEOUT) -> M:
        """The next message, asserting its type."""
        msg = await self.recv(timeout)
        assert isinstance(msg, cls), f"expected {cls.__name__}, got {msg!r}"
        return msg

    async def request(self, msg: m.Message, timeout: float = DEFAULT_TIMEOUT) -> Any:
        """Send a request and return the next message (its reply, when nothing else is due)."""
        await self.send(msg)
        return await self.recv(timeout)

    async def expect_closed(self, timeout: float = DEFAULT_TIMEOUT) -> None:
        """Assert the broker closes the connection within ``timeout`` without sending anything
        more than what is already in the inbox (which must be empty)."""
        assert not self.inbox, f"unexpected messages before close: {list(self.inbox)}"
        with anyio.fail_after(timeout):
            while await self._fill():
                assert not self.inbox, f"message before close: {list(self.inbox)}"

    async def expect_silence(self, duration: float = 0.3) -> None:
        """Assert nothing arrives (and the connection stays open) for ``duration`` seconds."""
        assert not self.inbox, f"unexpected messages: {list(self.inbox)}"
        with anyio.move_on_after(duration):
            while True:
                assert await self._fill(), "connection closed"
                assert not self.inbox, f"unexpected messages: {list(self.inbox)}"

    async def assert_open(self) -> None:
        """Assert the connection is usable: a ping gets ``ok nil``."""
        rid = self.next_id()
        assert await self.request(m.Ping(rid)) == ok(rid)

    # -- common exchanges ----------------------------------------------------------------------

    async def hello(self, timeout: int = 30, client_id: Any = None) -> Value:
        """Say hello (``hello_id`` when ``client_id`` is given) and return the client id."""
        if client_id is None:
            await self.send(m.Hello(1, timeout))
            reply = await self.recv_as(m.ServerHelloId)
            self.client_id = reply.client_id
        else:
            cid = client_id if isinstance(client_id, Value) else Value.of(client_id)
            await self.send(m.HelloId(1, timeout, cid))
            await self.recv_as(m.ServerHello)
            self.client_id = cid
        return self.client_id

    async def login(self, user: str, password: str) -> Any:
        """Send ``auth_login``; return the reply message."""
        body = Value.of({"user": user, "password": password})
        return await self.request(m.AuthLogin(self.next_id(), body))

    async def call_ok(self, msg: m.Message) -> None:
        """Send a request that must be answered ``ok nil``."""
        reply = await self.request(msg)
        assert reply == m.ReplyOk(msg.id, NIL), f"{msg!r} -> {reply!r}"  # type: ignore[union-attr]

    async def register(self, kind: str, path: str) -> None:
        """Register an action, prop, event or state, asserting ``ok nil``."""
        cls: Any = {
            "action": m.ActionRegister,
            "prop": m.PropRegister,
            "event": m.EventRegister,
            "state": m.StateRegister,
        }[kind]
        await self.call_ok(cls(self.next_id(), path))

    async def ls(self, path: str) -> Any:
        """Call ``/meta/ls [path]``; return the reply message."""
        return await self.request(m.ActionCall(self.next_id(), "/meta/ls", v([path])))


async def connect(
    port: int, *, hello: bool = True, timeout: int = 30, client_id: Any = None
) -> Wire:
    """Connect, and say hello unless ``hello`` is False."""
    wire = await Wire.connect(port)
    if hello:
        await wire.hello(timeout, client_id)
    return wire


def packed(obj: Any) -> bytes:
    """msgpack bytes of ``obj`` (str as str, bytes as bin)."""
    return pack(obj)
