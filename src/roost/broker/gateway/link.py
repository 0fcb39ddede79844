"""A router session whose peer is not a TCP socket: the transport the gateway plugs in.

Rules of this module:

- :class:`Link` stands in for the asyncio transport of an ordinary connection: the broker's
  connection protocol (``Host.attach``) opens a session on it, the server's flush writes the
  session's frames to it, and the router closes it like any other. So a websocket client or
  the gateway's own HTTP client is an ordinary session: same hello, same routing, same limits,
  the same cleanup when it ends.
- Inbound, :meth:`Link.send` encodes a native message as the frame a TCP client would have
  sent and hands it to the connection protocol; a message that cannot become a frame (too
  large, a path that is not representable) is answered with the error reply the broker gives
  for it, queued on the session so replies keep request order.
- Outbound, each written frame is decoded back into its message and handed to ``deliver``.
- ``get_write_buffer_size`` is what the consumer has not sent on yet (``backlog``), so the
  broker's bound on unsent output (protocol.md §14) holds for these sessions too.
- A link made for a remote peer (a websocket) answers ``get_extra_info("socket")`` with that
  peer's TCP socket, so the connection deadlines a socket connection has (hello, ``max_idle``)
  and the broker's "is this owner gone" check apply to it as to a TCP client. The gateway's
  own session has no socket and none of those deadlines.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol

from roost.broker import frames
from roost.broker.limits import Limits
from roost.broker.router import Router
from roost.broker.session import Session
from roost.errors import LocalProtocolError
from roost.protocol import codec
from roost.protocol import messages as m
from roost.protocol.framing import FrameDecoder
from roost.protocol.values import Value

__all__ = ("Host", "Link", "SessionProtocol")


class SessionProtocol(Protocol):
    """The broker's per-connection protocol object, as the gateway uses it."""

    session: Session | None

    def data_received(self, data: bytes) -> None:
        """Bytes from the peer."""

    def connection_lost(self, exc: Exception | None) -> None:
        """The peer has gone."""


class Host(Protocol):
    """The broker, as the gateway uses it."""

    @property
    def router(self) -> Router:
        """The broker's router."""

    @property
    def limits(self) -> Limits:
        """The broker's resource limits."""

    def attach(self, transport: Any) -> SessionProtocol:
        """Open a session on ``transport`` (an object with asyncio transport's methods)."""


class Link:
    """A transport for one session whose peer exchanges messages, not bytes.

    Args:
        host: the broker.
        deliver: called with each message the broker sends to the peer, in order.
        closed: called once when the broker closes the session, with the session's close
            reason and whether queued output should still go out (``close``) or be dropped
            (``abort``).
        peer: the peer's address for logs and ``/meta/clients``.
        take_payload: tried first with each payload the broker sends; True means it was handled
            (a consumer that caches what it makes of fan-out frames, which are the same bytes
            for every listener).
        sock: the remote peer's TCP socket (a websocket's), or ``None`` for a peer inside the
            broker (see the module rules).
    """

    def __init__(
        self,
        host: Host,
        deliver: Callable[[m.Message], None],
        closed: Callable[[str, bool], None],
        peer: tuple[str, int] | str,
        *,
        take_payload: Callable[[bytes], bool] | None = None,
        sock: Any = None,
    ) -> None:
        self._deliver = deliver
        self._sock = sock
        self._take_payload = take_payload
        self._closed = closed
        self._peer = peer
        self._decoder = FrameDecoder()
        self._closing = False
        #: Bytes the consumer holds and has not sent on yet (it keeps this up to date).
        self.backlog = 0
        self.protocol = host.attach(self)

    @property
    def session(self) -> Session | None:
        """The router session (``None`` only before it is opened)."""
        return self.protocol.session

    # -- inbound ---------------------------------------------------------------------------------

    def send(self, msg: m.Message) -> None:
        """Hand ``msg`` to the broker as if it had arrived on a TCP connection."""
        if self._closing:
            return
        try:
            data = codec.encode(msg)
        except LocalProtocolError:
            self._refuse(msg)
            return
        self.protocol.data_received(data)

    def _refuse(self, msg: m.Message) -> None:
        """Answer a message that has no frame the way the broker answers its nearest kin."""
        session = self.session
        if session is None or session.closed:
            return
        name = "invalid_path" if _unwritable_path(getattr(msg, "path", None)) else "value_too_large"
        if isinstance(msg, m.ReplyOk | m.ReplyError):
            # An owner's reply that cannot be forwarded: the requester learns why.
            self.send(m.ReplyError(msg.id, Value.of(name)))
            return
        rid = getattr(msg, "id", None)
        if rid is None:
            return
        if msg.code >= 0x50:
            session.opted_in = True
            session.push(frames.err_map(rid, name))
        else:
            session.push(frames.err(rid, name))

    def lost(self) -> None:
        """The peer has gone: the session ends as on a TCP close (idempotent)."""
        if not self._closing:
            self._closing = True
            self.protocol.connection_lost(None)

    # -- the transport the broker writes to ------------------------------------------------------

    def write(self, data: bytes) -> None:
        take = self._take_payload
        for payload in self._decoder.feed(data):
            if take is not None and take(payload):
                continue
            msg = codec.decode(payload)
            if isinstance(msg, m.BadValue):  # the broker only sends values it validated
                continue
            self._deliver(msg)

    def get_write_buffer_size(self) -> int:
        return self.backlog

    def is_closing(self) -> bool:
        return self._closing

    def close(self) -> None:
        self._finish(graceful=True)

    def abort(self) -> None:
        self._finish(graceful=False)

    def _finish(self, *, graceful: bool) -> None:
        if self._closing:
            return
        self._closing = True
        session = self.session
        reason = (session.close_reason if session is not None else None) or "disconnected"
        self._closed(reason, graceful)

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        if name == "peername":
            return self._peer
        if name == "socket" and self._sock is not None:
            return self._sock
        return default

    def set_write_buffer_limits(self, high: int | None = None, low: int | None = None) -> None:
        """Nothing to do: the broker applies its own bound through ``backlog``."""


def _unwritable_path(path: object) -> bool:
    """True for a path no frame can carry (a character above U+00FF, or NUL)."""
    if not isinstance(path, str):
        return False
    try:
        return 0 in path.encode("latin-1")
    except UnicodeEncodeError:
        return True
