"""``/ws``: eshetsrv's websocket protocol, each client an ordinary router session.

Rules of this module:

- One websocket is one :class:`~roost.broker.gateway.link.Link`: its JSON forms become native
  messages for the router, and what the router queues for it comes back as JSON forms
  (:mod:`roost.broker.gateway.forms`). Everything the client registers, observes or holds ends
  with the websocket, exactly as for a TCP connection.
- Two tasks per websocket (aiohttp's reader, one writer draining a queue), none per message.
- The broker's bound on unsent output applies: text the writer has not sent yet counts.
- Close codes: a message that is not a JSON form, or a protocol error -> 4000 with the reason;
  the idle timeout of the hello -> 4000 ``timeout``; the broker's deadlines -> 4000
  ``hello_timeout`` / ``idle_timeout``; a takeover by ``hello_id`` -> 4000 ``takeover``; no
  login where one is needed, or too many failed ones -> 4000 ``login_required`` /
  ``login_failed``;
  ``slow_consumer`` -> 1008; a broker stop -> 1001; an internal error -> 1011.
- A websocket is a connection of the broker's: it counts against ``max_connections``. When they
  are all open, the upgrade completes and the websocket is closed at once with 1013 ("try again
  later") and the text ``max_connections (N) open``, which a browser's ``onclose`` can show
  (an HTTP error before the upgrade would reach a page only as 1006). Upgrades in progress
  count too, so concurrent ones cannot pass the limit together.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections import deque
from typing import Any, Final

from aiohttp import WSMsgType, web

from roost.broker.gateway.forms import FormError, to_form, to_message
from roost.broker.gateway.link import Host, Link
from roost.broker.guard import LogEvery
from roost.protocol import codec
from roost.protocol import messages as m

__all__ = ("FULL", "MAX_MESSAGE", "Admission", "WsClient", "close_code", "handle_ws")

#: Largest websocket message accepted, in bytes (a frame's value is at most 64 KiB as msgpack).
MAX_MESSAGE: Final = 1024 * 1024
#: The close code of a websocket refused because ``max_connections`` are open ("try again later").
FULL: Final = 1013
#: Close reasons that close with 4000 and the reason as text.
_CLOSE_4000: Final = frozenset(
    (
        "protocol_error",
        "timeout",
        "hello_timeout",
        "idle_timeout",
        "frame_timeout",
        "takeover",
        "login_required",
        "login_failed",
    )
)

log = logging.getLogger("roost.broker.gateway")

#: Notifications (event_notify, state_changed known and unknown, and the subtree pushes
#: subtree_event, subtree_changed, subtree_unknown): the same frame goes to every listener, so
#: its text is made once and kept in a small cache.
_NOTIFICATIONS: Final = frozenset((0x33, 0x44, 0x45, 0x7C, 0x7D, 0x7E))
_TEXTS_KEPT: Final = 256
_TEXT_CACHE_SIZE: Final = 8192  # larger payloads are not kept (bounds the cache's memory)
_texts: dict[bytes, str] = {}


def close_code(reason: str) -> tuple[int, str]:
    """The websocket close code and text for a session's close reason."""
    kind = reason.split(":", 1)[0]
    if kind in _CLOSE_4000:
        code = 4000
    else:
        code = {"slow_consumer": 1008, "shutdown": 1001, "internal_error": 1011}.get(kind, 1000)
    # A close frame's reason has at most 123 bytes.
    return code, reason.encode("utf-8")[:123].decode("utf-8", "ignore")


class WsClient:
    """One websocket client of the router.

    Args:
        host: the broker.
        ws: the prepared websocket.
        peer: the remote address.
        sock: the websocket's TCP socket (the connection deadlines of a socket apply).
    """

    def __init__(self, host: Host, ws: web.WebSocketResponse, peer: Any, sock: Any = None) -> None:
        self.host = host
        self.ws = ws
        self.queue: deque[str] = deque()
        self.wakeup = asyncio.Event()
        #: Set once the broker closed the session: the close code and text to send.
        self.closing: tuple[int, str] | None = None
        self.link = Link(
            host, self._deliver, self._closed, peer, take_payload=self._notification, sock=sock
        )

    def _notification(self, payload: bytes) -> bool:
        """A notification's text, made once for all the listeners that get the same frame."""
        if payload[0] not in _NOTIFICATIONS:
            return False
        text = _texts.get(payload)
        if text is None:
            msg = codec.decode(payload)
            form = None if isinstance(msg, m.BadValue) else to_form(msg)
            if form is None:  # never for what the broker sends; dropped like any such frame
                return True
            text = json.dumps(form, separators=(",", ":"), ensure_ascii=False)
            if len(payload) <= _TEXT_CACHE_SIZE:
                if len(_texts) >= _TEXTS_KEPT:
                    _texts.clear()
                _texts[payload] = text
        self._queue(text)
        return True

    def _deliver(self, msg: m.Message) -> None:
        form = to_form(msg)
        if form is None:
            return
        self._queue(json.dumps(form, separators=(",", ":"), ensure_ascii=False))

    def _queue(self, text: str) -> None:
        self.queue.append(text)
        self.link.backlog += len(text)
        self.wakeup.set()

    def _closed(self, reason: str, graceful: bool) -> None:
        self.closing = close_code(reason)
        if not graceful:
            self.queue.clear()
            self.link.backlog = 0
        self.wakeup.set()

    def receive(self, text: str) -> None:
        """Handle one text message from the client.

        Raises:
            FormError: it is not JSON, or not one of the JSON forms.
        """
        try:
            form = json.loads(text)
        except ValueError:
            raise FormError("invalid JSON") from None
        self.link.send(to_message(form))

    def fail(self, reason: str) -> None:
        """Close the session for a protocol error (logged; the websocket gets 4000)."""
        session = self.link.session
        if session is not None and not session.closed:
            loop = asyncio.get_running_loop()
            self.host.router.disconnect(session, f"protocol_error: {reason}", loop.time())

    async def write_loop(self) -> None:
        """Send queued forms in order; close the websocket once the broker closed the session."""
        ws = self.ws
        queue = self.queue
        while True:
            await self.wakeup.wait()
            self.wakeup.clear()
            while queue:
                text = queue.popleft()
                self.link.backlog -= len(text)
                try:
                    await ws.send_str(text)
                except (ConnectionError, RuntimeError):
                    queue.clear()
                    self.link.backlog = 0
                    break
            if self.closing is not None:
                code, message = self.closing
                with contextlib.suppress(ConnectionError, RuntimeError):
                    await ws.close(code=code, message=message.encode("utf-8"))
                return


class Admission:
    """Whether one more websocket may open: open connections plus upgrades in progress against
    ``max_connections``."""

    def __init__(self, host: Host) -> None:
        self.host = host
        #: Upgrades between the check and their session's opening.
        self.starting = 0
        #: Websockets refused because ``max_connections`` were open.
        self.refused = 0
        self._warn = LogEvery()

    def full(self) -> int:
        """The limit if it is reached (0 if there is room)."""
        limit = self.host.limits.max_connections
        if limit and len(self.host.router.sessions) + self.starting >= limit:
            return limit
        return 0

    def note_refused(self, remote: str | None, limit: int) -> None:
        """Count one refused websocket (one log line a minute at most)."""
        self.refused += 1
        self._warn(
            "refusing websocket from %s: max_connections (%d) open",
            remote,
            limit,
            limit="max_connections",
        )


async def _refuse(request: web.Request, admission: Admission, limit: int) -> web.WebSocketResponse:
    admission.note_refused(request.remote, limit)
    ws = web.WebSocketResponse()
    await ws.prepare(request)
    with contextlib.suppress(ConnectionError, RuntimeError):
        await ws.close(code=FULL, message=f"max_connections ({limit}) open".encode())
    return ws


async def handle_ws(
    request: web.Request, host: Host, admission: Admission
) -> web.WebSocketResponse:
    """Serve one websocket until either side closes it."""
    limit = admission.full()
    if limit:
        return await _refuse(request, admission, limit)
    ws = web.WebSocketResponse(max_msg_size=MAX_MESSAGE)
    admission.starting += 1
    try:
        await ws.prepare(request)
    finally:
        admission.starting -= 1
    transport = request.transport
    peer = transport.get_extra_info("peername") if transport else "websocket"
    sock = transport.get_extra_info("socket") if transport else None
    client = WsClient(host, ws, peer, sock)
    writer = asyncio.create_task(client.write_loop())
    try:
        async for msg in ws:
            if msg.type is WSMsgType.TEXT:
                try:
                    client.receive(msg.data)
                except FormError as exc:
                    client.fail(str(exc))
            elif msg.type is WSMsgType.BINARY:
                client.fail("binary messages are not JSON forms")
            if client.closing is not None:
                break
    finally:
        client.link.lost()
        if client.closing is None:
            writer.cancel()
        with contextlib.suppress(asyncio.CancelledError, ConnectionError):
            await writer
    return ws
