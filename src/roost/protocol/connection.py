"""One side of one ESHET connection, sans-IO (in the manner of h11's ``Connection``).

Rules of this module:

- ``receive_data(bytes)`` returns the complete messages received, in order; a value error comes back
  as a :class:`~roost.protocol.messages.BadValue` in its place; anything that must close the
  connection raises :class:`~roost.errors.FramingError` (and the object is unusable afterwards).
- ``send(message)`` returns the frame bytes to write and records request ids this side originated,
  so that a reply to an id nobody waits for is caught (protocol.md §7).
- Role checks: a broker (``Role.SERVER``) refuses server-only messages from its peer; a client
  (``Role.CLIENT``) refuses client-only ones and anything before the hello reply.
- No sockets, no clock, no logging.
"""

from __future__ import annotations

import enum
from typing import Final

from roost.errors import FramingError, LocalProtocolError
from roost.protocol import codec
from roost.protocol import messages as m
from roost.protocol.framing import FrameDecoder

__all__ = ("ID_SPACE", "Connection", "Role")

#: Request ids are u16 (protocol.md §7).
ID_SPACE: Final = 0x10000

_REPLY_CODES: Final = frozenset({0x05, 0x06})
_STATE_REPLY_CODES: Final = frozenset({0x07, 0x08, 0x0A, 0x0B})
_HELLO_REPLY_CODES: Final = frozenset({0x03, 0x04})

#: Requests a broker sends to an owner, which the owner answers with 0x05/0x06.
_SERVER_REQUESTS: Final = frozenset({0x11, 0x21, 0x22, 0x47, 0x68, 0x69})


class Role(enum.Enum):
    """Which side of the connection this object plays."""

    CLIENT = "client"
    SERVER = "server"


class Connection:
    """Protocol state of one connection: framing, role checks, hello phase and request ids.

    Args:
        role: ``Role.SERVER`` for the broker's end, ``Role.CLIENT`` for a client's end.
    """

    __slots__ = (
        "_decoder",
        "_next_id",
        "_outstanding",
        "_peer_forbidden",
        "hello_done",
        "role",
        "timeout",
        "version",
    )

    def __init__(self, role: Role) -> None:
        self.role = role
        self._decoder = FrameDecoder()
        self._next_id = 0
        self._outstanding: set[int] = set()
        self._peer_forbidden = m.SERVER_ONLY if role is Role.SERVER else m.CLIENT_ONLY
        #: True once a hello was received (server) or its reply received (client).
        self.hello_done = False
        #: The idle timeout (seconds) declared by the latest hello; 0 means none.
        self.timeout = 0
        self.version = m.VERSION

    # -- ids ---------------------------------------------------------------------------------

    @property
    def outstanding(self) -> frozenset[int]:
        """Ids of requests this side sent that still wait for their reply."""
        return frozenset(self._outstanding)

    def allocate_id(self) -> int | None:
        """Return the next request id not outstanding (counter from 0, mod 65536), or ``None``.

        ``None`` means all 65536 ids are outstanding (the broker answers ``too_many_requests``).
        The id becomes outstanding when the request carrying it is passed to :meth:`send`.
        """
        outstanding = self._outstanding
        if len(outstanding) >= ID_SPACE:
            return None
        rid = self._next_id
        while rid in outstanding:
            rid = (rid + 1) & 0xFFFF
        self._next_id = (rid + 1) & 0xFFFF
        return rid

    def forget_id(self, rid: int) -> None:
        """Stop waiting for the reply to ``rid`` (a cancelled request); a late reply is then
        a protocol error on the server side and ignored by :meth:`receive_data` on the client side.
        """
        self._outstanding.discard(rid)

    # -- sending -----------------------------------------------------------------------------

    def send(self, msg: m.Message) -> bytes:
        """Encode ``msg`` as a frame, after checking this role may send it.

        Raises:
            LocalProtocolError: the message is the peer's to send, or does not fit in a frame.
        """
        code = msg.code
        if code in (m.CLIENT_ONLY if self.role is Role.SERVER else m.SERVER_ONLY):
            raise LocalProtocolError(f"a {self.role.value} cannot send {type(msg).__name__}")
        data = codec.encode(msg)
        if self.role is Role.SERVER:
            if code in _SERVER_REQUESTS:
                self._outstanding.add(msg.id)  # type: ignore[union-attr]
        elif code not in (0x01, 0x02, 0x05, 0x06) and hasattr(msg, "id"):
            self._outstanding.add(msg.id)
        return data

    # -- receiving ---------------------------------------------------------------------------

    def receive_data(self, data: bytes) -> list[m.Message | m.BadValue]:
        """Feed received bytes; return every complete message in arrival order.

        Raises:
            FramingError: the peer broke the protocol (protocol.md §3, §5, §6, §7); close the
                connection.
        """
        payloads = self._decoder.feed(data)
        if not payloads:
            return []
        out: list[m.Message | m.BadValue] = []
        forbidden = self._peer_forbidden
        decode = codec.decode
        outstanding = self._outstanding
        server = self.role is Role.SERVER
        for payload in payloads:
            code = payload[0]
            if code in forbidden:
                raise FramingError(f"the peer may not send type 0x{code:02x}")
            msg = decode(payload)
            if code in _REPLY_CODES or (not server and code in _STATE_REPLY_CODES):
                rid = msg.id
                if rid not in outstanding:
                    if server:
                        raise FramingError(f"reply to id {rid}, which nobody waits for")
                    continue  # a reply to a request the client gave up on
                outstanding.discard(rid)
            elif code < 0x03:
                if isinstance(msg, m.BadValue):
                    raise FramingError(f"invalid client id in hello_id: {msg.reason}")
                if msg.version != m.VERSION:  # type: ignore[union-attr]
                    raise FramingError(f"unsupported protocol version {msg.version}")  # type: ignore[union-attr]
                self.hello_done = True
                self.timeout = msg.timeout  # type: ignore[union-attr]
            elif not server:
                if code in _HELLO_REPLY_CODES:
                    self.hello_done = True
                elif not self.hello_done:
                    raise FramingError(f"type 0x{code:02x} received before the hello reply")
            out.append(msg)
        return out
