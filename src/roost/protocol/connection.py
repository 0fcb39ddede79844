"""One side of one ESHET connection, sans-IO (in the manner of h11's ``Connection``).

Rules of this module:

- ``receive_data(bytes)`` returns the complete messages received, in order; a value error comes back
  as a :class:`~roost.protocol.messages.BadValue` in its place; anything that must close the
  connection raises :class:`~roost.errors.FramingError` (the object is unusable afterwards).
  ``receive_frames`` then ``receive_payload`` per payload do the same in steps, for a caller that
  takes some payloads apart itself.
- ``send(message)`` returns the frame bytes to write and records the request ids this side
  originated, so that a reply to an id nobody waits for is caught (protocol.md §7) and no two
  outstanding requests share an id.
- Role checks: a broker (``Role.SERVER``) refuses server-only messages from its peer; a client
  (``Role.CLIENT``) refuses client-only ones, and anything but replies to its own requests before
  the hello reply (protocol.md §6).
- Extension messages (Part II) are never sent to a peer that has not sent one first (E1).
- No sockets, no clock, no logging.
"""

from __future__ import annotations

import enum
from typing import Final

from roost.errors import FramingError, InvalidValue, LocalProtocolError
from roost.protocol import codec
from roost.protocol import messages as m
from roost.protocol.framing import FrameDecoder
from roost.protocol.values import validate

__all__ = ("ID_SPACE", "Connection", "Role")

#: Request ids are u16 (protocol.md §7).
ID_SPACE: Final = 0x10000

#: Requests a broker sends to an owner, which the owner answers with 0x05/0x06.
_SERVER_REQUESTS: Final = frozenset({0x11, 0x21, 0x22, 0x47, 0x68, 0x69})
#: Requests a client sends that the broker answers (everything with an id except replies).
_CLIENT_REQUESTS: Final = (m.CLIENT_ONLY - {0x01, 0x02}) | {0x11}

# What a received type byte means for each role, looked up once per frame.
_UNKNOWN, _FORBIDDEN, _PLAIN, _REPLY, _HELLO, _HELLO_REPLY = range(6)


def _kinds(role: Role) -> tuple[int, ...]:
    forbidden = m.SERVER_ONLY if role is Role.SERVER else m.CLIENT_ONLY
    replies = {0x05, 0x06} if role is Role.SERVER else {0x05, 0x06, 0x07, 0x08, 0x0A, 0x0B}
    hellos = {0x01: _HELLO, 0x02: _HELLO} if role is Role.SERVER else {0x03: _HELLO_REPLY}
    if role is Role.CLIENT:
        hellos[0x04] = _HELLO_REPLY
    table = []
    for code in range(256):
        if code not in m.BY_CODE:
            table.append(_UNKNOWN)
        elif code in forbidden:
            table.append(_FORBIDDEN)
        elif code in replies:
            table.append(_REPLY)
        else:
            table.append(hellos.get(code, _PLAIN))
    return tuple(table)


class Role(enum.Enum):
    """Which side of the connection this object plays."""

    CLIENT = "client"
    SERVER = "server"


_KINDS: Final = {role: _kinds(role) for role in Role}


class Connection:
    """Protocol state of one connection: framing, role checks, hello phase and request ids.

    Args:
        role: ``Role.SERVER`` for the broker's end, ``Role.CLIENT`` for a client's end.

    Attributes:
        role: as given.
        hello_done: server: a valid hello was received; client: a hello reply was received.
        timeout: the idle timeout in seconds declared by the latest hello (received by a server,
            sent by a client); 0 means none.
        version: the protocol version, always 1.
        opted_in: the peer has sent an extension message (Part II), so extension messages may
            be sent to it.
    """

    __slots__ = (
        "_decoder",
        "_forgotten",
        "_hello_pending",
        "_kinds",
        "_next_id",
        "_outstanding",
        "_own_forbidden",
        "_requests",
        "hello_done",
        "opted_in",
        "role",
        "timeout",
        "version",
    )

    def __init__(self, role: Role) -> None:
        self.role = role
        self._decoder = FrameDecoder()
        self._kinds = _KINDS[role]
        server = role is Role.SERVER
        self._requests = _SERVER_REQUESTS if server else _CLIENT_REQUESTS
        self._own_forbidden = m.CLIENT_ONLY if server else m.SERVER_ONLY
        self._next_id = 0
        # Created on first use: most connections a broker serves never get a request from it.
        self._outstanding: set[int] | None = None
        self._forgotten: set[int] | None = None
        self._hello_pending = 0
        self.hello_done = False
        self.timeout = 0
        self.version = m.VERSION
        self.opted_in = False

    @property
    def partial(self) -> bool:
        """True while an incomplete frame is held back (more bytes of it are awaited)."""
        return self._decoder.buffered > 0

    # -- ids ---------------------------------------------------------------------------------

    @property
    def outstanding(self) -> frozenset[int]:
        """Ids of requests this side sent whose reply has not arrived (forgotten ones included)."""
        return frozenset(self._outstanding or ())

    def allocate_id(self) -> int | None:
        """Return the next request id not outstanding, or ``None`` when all 65536 are.

        The counter starts at 0 and moves +1 mod 65536 per id handed out, skipping ids still
        outstanding (protocol.md §7). ``None`` means every id waits for a reply (a broker then
        answers the requester ``too_many_requests``). The id becomes outstanding when the request
        carrying it is passed to :meth:`send`; an id allocated but never sent is simply skipped.
        """
        outstanding = self._outstanding
        rid = self._next_id
        if outstanding:
            if len(outstanding) >= ID_SPACE:
                return None
            while rid in outstanding:
                rid = (rid + 1) & 0xFFFF
        self._next_id = (rid + 1) & 0xFFFF
        return rid

    def claim_id(self) -> int | None:
        """Allocate a request id as :meth:`allocate_id` does and mark it outstanding at once.

        For a peer that builds a request frame itself (a broker splicing a forwarded call from
        the bytes it received) instead of passing a message to :meth:`send`; the reply is then
        matched as for any sent request. ``None`` when all 65536 ids are outstanding.
        """
        rid = self.allocate_id()
        if rid is not None:
            if self._outstanding is None:
                self._outstanding = set()
            self._outstanding.add(rid)
        return rid

    def forget_id(self, rid: int) -> None:
        """Stop waiting for the reply to ``rid`` (a cancelled or timed-out request).

        The peer still owes exactly one reply, so the id stays reserved (never reallocated) until
        that reply arrives; :meth:`receive_data` then consumes it silently. An id that is not
        outstanding is ignored.
        """
        if self._outstanding and rid in self._outstanding:
            if self._forgotten is None:
                self._forgotten = set()
            self._forgotten.add(rid)

    # -- sending -----------------------------------------------------------------------------

    def send(self, msg: m.Message) -> bytes:
        """Encode ``msg`` as a frame, after checking this role may send it now.

        Requests this side originates (a client's requests, a broker's forwards to owners) have
        their id recorded as outstanding until the reply arrives.

        Raises:
            LocalProtocolError: the message is the peer's to send; it is an extension message and
                the peer never sent one; its request id is already outstanding; or it does not
                encode (too large, bad path, field out of range).
        """
        code = msg.code
        if code in self._own_forbidden:
            raise LocalProtocolError(f"a {self.role.value} cannot send {type(msg).__name__}")
        if code >= 0x50 and self.role is Role.SERVER and not self.opted_in:
            raise LocalProtocolError(
                f"{type(msg).__name__} sent to a peer that has not used the extension"
            )
        data = codec.encode(msg)
        if code in self._requests:
            rid: int = msg.id  # type: ignore[union-attr]
            if self._outstanding is None:
                self._outstanding = set()
            elif rid in self._outstanding:
                raise LocalProtocolError(f"request id {rid} is already outstanding")
            self._outstanding.add(rid)
        elif code < 0x03:
            self._hello_pending += 1
            self.timeout = msg.timeout  # type: ignore[union-attr]
        return data

    # -- receiving ---------------------------------------------------------------------------

    def receive_data(self, data: bytes | bytearray | memoryview) -> list[m.Message | m.BadValue]:
        """Feed received bytes; return every complete message in arrival order.

        A reply to a forgotten id (:meth:`forget_id`) is consumed and not returned. A message
        whose value is invalid is returned as a :class:`~roost.protocol.messages.BadValue`
        (a reply's id is consumed all the same). Nothing is returned when any frame of ``data``
        breaks the protocol.

        Raises:
            FramingError: the peer broke the protocol (protocol.md §3, §5, §6, §7): bad framing or
                layout, an unknown or forbidden type code, a reply to an id nobody waits for, a
                hello with a version other than 1 or an invalid client id, a hello reply nobody
                asked for, or (client) another message before the hello reply. Close the
                connection.
        """
        payloads = self._decoder.feed(data)
        if not payloads:
            return []
        out: list[m.Message | m.BadValue] = []
        kinds = self._kinds
        table = codec.DECODER_TABLE
        # Plain ESHET messages after the hello change no state: decoded inline, the rest by
        # receive_payload (a method call per message is a measurable share of a client's work).
        plain_ok = self.hello_done or self.role is Role.SERVER
        for payload in payloads:
            code = payload[0]
            if plain_ok and code < 0x50 and kinds[code] == _PLAIN:
                out.append(table[code](payload))  # type: ignore[misc]
                continue
            msg = self.receive_payload(payload)
            if msg is not None:
                out.append(msg)
            plain_ok = self.hello_done or self.role is Role.SERVER
        return out

    def receive_frames(self, data: bytes | bytearray | memoryview) -> list[bytes]:
        """Feed received bytes; return the payload of every complete frame, undecoded.

        The step-by-step form of :meth:`receive_data`: pass each payload, in order, to
        :meth:`receive_payload`, or take it apart by its type byte where the connection's state
        cannot change (a server's ``action_call`` and ``event_emit`` once the hello is done).

        Raises:
            FramingError: a bad sync byte or a zero-length frame. Close the connection.
        """
        return self._decoder.feed(data)

    def receive_payload(self, payload: bytes) -> m.Message | m.BadValue | None:
        """Decode one payload from :meth:`receive_frames` and apply it to this connection.

        Returns:
            The message, a :class:`~roost.protocol.messages.BadValue` for an invalid value, or
            ``None`` for a reply to a forgotten id (consumed).

        Raises:
            FramingError: as :meth:`receive_data`, for this payload.
        """
        code = payload[0]
        kind = self._kinds[code]
        if kind == _PLAIN:
            if not self.hello_done and self.role is Role.CLIENT:
                raise FramingError(f"type 0x{code:02x} received before the hello reply")
            msg = codec.DECODER_TABLE[code](payload)  # type: ignore[misc]
            if code >= 0x50:
                self.opted_in = True
            return msg
        if kind == _REPLY:
            msg = codec.DECODER_TABLE[code](payload)  # type: ignore[misc]
            rid: int = msg.id  # type: ignore[union-attr]
            outstanding = self._outstanding
            if outstanding is None or rid not in outstanding:
                raise FramingError(f"reply to id {rid}, which nobody waits for")
            outstanding.discard(rid)
            if self._forgotten and rid in self._forgotten:
                self._forgotten.discard(rid)
                return None
            return msg
        if kind == _FORBIDDEN:
            raise FramingError(f"a {self.role.value} may not receive type 0x{code:02x}")
        if kind == _UNKNOWN:
            raise FramingError(f"unknown type code 0x{code:02x}")
        return self._hello(kind, codec.DECODER_TABLE[code](payload))  # type: ignore[misc]

    def take_reply(self, payload: bytes) -> tuple[int, bytes] | None:
        """Take a payload from :meth:`receive_frames` apart as a reply (0x05 or 0x06) without
        building a message: the fast form of :meth:`receive_payload` for the common case.

        Returns:
            ``(id, value bytes)`` when ``payload`` is a reply this side may receive, to an
            outstanding id that was not forgotten, with a valid value; the id is then no longer
            outstanding. ``None`` otherwise, with nothing changed: pass the payload to
            :meth:`receive_payload`, which consumes it or reports its error.
        """
        code = payload[0]
        if code not in {0x05, 0x06} or self._kinds[code] != _REPLY:
            return None
        rid = (payload[1] << 8) | payload[2] if len(payload) > 3 else -1
        outstanding = self._outstanding
        if outstanding is None or rid not in outstanding:
            return None
        if self._forgotten and rid in self._forgotten:
            return None
        raw = payload[3:]
        try:
            validate(raw)
        except InvalidValue:
            return None
        outstanding.discard(rid)
        return rid, raw

    def _hello(self, kind: int, msg: m.Message | m.BadValue) -> m.Message:
        """Apply a received hello (server) or hello reply (client)."""
        if isinstance(msg, m.BadValue):
            raise FramingError(f"invalid client id in a hello: {msg.reason}")
        if kind == _HELLO:
            assert isinstance(msg, m.Hello | m.HelloId)
            if msg.version != m.VERSION:
                raise FramingError(f"unsupported protocol version {msg.version}")
            self.timeout = msg.timeout
        else:
            if not self._hello_pending:
                raise FramingError("a hello reply without a hello")
            self._hello_pending -= 1
        self.hello_done = True
        return msg
