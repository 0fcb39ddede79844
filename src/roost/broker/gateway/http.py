"""eshetsrv's HTTP API: ``/call/<path>``, ``/get/<path>``, ``/set/<path>``.

Rules of this module:

- Every HTTP request goes through a session of the gateway's own (:class:`InternalClient`),
  an ordinary router client: HTTP sees exactly what a TCP client would, errors included. An
  anonymous request goes through one shared session; a request the access hook found to act as
  a user (``request[USER]``) through that user's session, made on the user's first request
  (one per user, so at most as many as the users file names).
- JSON bodies and results; the HTTP method is not checked (as eshetsrv). Success: 200 with the
  result (``null`` for a plain ok); an ESHET error: ``520 ESHET Error`` with the error value as
  JSON; a body that is not JSON: 400 with a text message; ``?wrap`` wraps the result as
  ``{"value": ...}``.
- The broker never times a call out; HTTP does: no answer within ``timeout`` seconds gives
  ``520`` with ``"timeout"`` (the owner's late reply is then dropped).
- At most ``max_requests`` requests wait for their answer at once; one more gets ``503`` with
  ``Retry-After: 1`` and a text naming the limit, before anything reaches the broker.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from typing import Any, Final

from aiohttp import web

from roost.broker.gateway.forms import json_value, wire_value
from roost.broker.gateway.link import Host, Link
from roost.broker.session import Session
from roost.protocol import messages as m

__all__ = (
    "DEFAULT_MAX_REQUESTS",
    "DEFAULT_TIMEOUT",
    "USER",
    "GatewayUnavailable",
    "HttpApi",
    "InternalClient",
)

#: The request key holding the user a request acts as (``None``: anonymous).
USER: Final = web.RequestKey[str | None]("roost.user")
#: Seconds an HTTP request waits for its answer.
DEFAULT_TIMEOUT: Final = 30.0
#: HTTP requests waiting for their answer at once (``max_http_requests`` of the limits).
DEFAULT_MAX_REQUESTS: Final = 1024


class GatewayUnavailable(Exception):
    """The gateway's session is closed (the broker is stopping) or has no free request id."""


class InternalClient:
    """The gateway's own router session: requests with futures, and event listens.

    Args:
        host: the broker.
        on_event: called with (path, value) for every event on a path in ``listens``.
        listens: event paths to listen to from the start (again after a reconnect).
        trusted: the session is the broker's own: access rules do not apply to it. Only for
            sessions that serve no outside request (the lease watcher of the metrics).
        user: the user the session acts as (its grants apply); ``None``: anonymous.
    """

    def __init__(
        self,
        host: Host,
        on_event: Callable[[str, Any], None] | None = None,
        listens: tuple[str, ...] = (),
        *,
        trusted: bool = False,
        user: str | None = None,
    ) -> None:
        self._host = host
        self._trusted = trusted
        self._user = user
        self._on_event = on_event
        self._listens = listens
        self._waiting: dict[int, asyncio.Future[m.Message]] = {}
        self._next = 0
        self._link: Link | None = None

    @property
    def session(self) -> Session | None:
        """The router session while it is open (``None`` before :meth:`start`)."""
        return self._link.session if self._link is not None else None

    def start(self) -> None:
        """Open the session (say hello, listen to the events); again if it was closed."""
        link = self._link
        if link is not None and not link.is_closing():
            return
        self._link = link = Link(self._host, self._deliver, self._closed, "gateway")
        session = link.session
        if self._trusted and session is not None:
            session.trusted = True
        if self._user is not None and session is not None:
            session.user = self._user
        link.send(m.Hello(m.VERSION, 0))
        for path in self._listens:
            rid = self._claim()
            self._waiting[rid] = asyncio.get_running_loop().create_future()
            link.send(m.EventListen(rid, path))

    def close(self) -> None:
        """End the session."""
        if self._link is not None:
            self._link.lost()
        self._fail_all()

    def _claim(self) -> int:
        waiting = self._waiting
        if len(waiting) >= 0x10000:
            raise GatewayUnavailable("too many requests in flight")
        rid = self._next
        while rid in waiting:
            rid = (rid + 1) & 0xFFFF
        self._next = (rid + 1) & 0xFFFF
        return rid

    async def request(self, make: Callable[[int], m.Message], timeout: float) -> m.Message:
        """Send ``make(id)`` and wait for its reply.

        Raises:
            GatewayUnavailable: the session is closed, or every id is in flight.
            TimeoutError: no reply within ``timeout`` seconds.
        """
        self.start()
        link = self._link
        assert link is not None
        rid = self._claim()
        future: asyncio.Future[m.Message] = asyncio.get_running_loop().create_future()
        self._waiting[rid] = future
        link.send(make(rid))
        # The id stays taken until the reply comes, even after a timeout.
        return await asyncio.wait_for(asyncio.shield(future), timeout)

    def _deliver(self, msg: m.Message) -> None:
        if type(msg) is m.EventNotify:
            if self._on_event is not None:
                self._on_event(msg.path, msg.value.obj)
            return
        rid = getattr(msg, "id", None)
        if rid is None:
            return
        future = self._waiting.pop(rid, None)
        if future is not None and not future.done():
            future.set_result(msg)

    def _closed(self, reason: str, graceful: bool) -> None:
        self._fail_all()

    def _fail_all(self) -> None:
        waiting, self._waiting = self._waiting, {}
        for future in waiting.values():
            if not future.done():
                future.set_exception(GatewayUnavailable("the broker is stopping"))
                future.exception()  # retrieved here: nobody may be awaiting it any more


def _json(value: Any, status: int = 200, reason: str | None = None) -> web.Response:
    return web.Response(
        status=status,
        reason=reason,
        text=json.dumps(value, separators=(",", ":"), ensure_ascii=False),
        content_type="application/json",
    )


class HttpApi:
    """The three HTTP verbs over the gateway's sessions.

    Args:
        client: the gateway's session for anonymous requests.
        timeout: seconds a request waits for its answer.
        max_requests: requests waiting for their answer at once.
        host: the broker, to open a session per user (without it, every request is
            anonymous).
    """

    def __init__(
        self,
        client: InternalClient,
        timeout: float = DEFAULT_TIMEOUT,
        max_requests: int = DEFAULT_MAX_REQUESTS,
        *,
        host: Host | None = None,
    ) -> None:
        self.client = client
        self._host = host
        #: The sessions of users whose requests came with credentials, by user.
        self.users: dict[str, InternalClient] = {}
        self.timeout = timeout
        self.max_requests = max_requests
        #: Requests waiting for their answer now.
        self.in_flight = 0

    def routes(self) -> list[web.RouteDef]:
        """The routes to add to the application (any method)."""
        return [
            web.route("*", "/call/{path:.+}", self.call),
            web.route("*", "/get/{path:.+}", self.get),
            web.route("*", "/set/{path:.+}", self.set),
        ]

    async def call(self, request: web.Request) -> web.Response:
        """``/call/<path>``: body a JSON array of args (empty body: no args)."""
        body = await request.read()
        if not body.strip():
            args: Any = []
        else:
            try:
                args = json.loads(body)
            except ValueError:
                return web.Response(status=400, text="the body is not JSON")
        path = "/" + request.match_info["path"]
        value = wire_value(args)
        return await self._answer(request, lambda rid: m.ActionCall(rid, path, value))

    async def get(self, request: web.Request) -> web.Response:
        """``/get/<path>``: a prop's or state's value."""
        path = "/" + request.match_info["path"]
        return await self._answer(request, lambda rid: m.Get(rid, path))

    async def set(self, request: web.Request) -> web.Response:
        """``/set/<path>``: body the JSON value."""
        body = await request.read()
        try:
            obj = json.loads(body)
        except ValueError:
            return web.Response(status=400, text="the body is not JSON")
        path = "/" + request.match_info["path"]
        value = wire_value(obj)
        return await self._answer(request, lambda rid: m.Set(rid, path, value))

    def _client(self, user: str | None) -> InternalClient:
        if user is None or self._host is None:
            return self.client
        client = self.users.get(user)
        if client is None:
            client = self.users[user] = InternalClient(self._host, user=user)
        return client

    def close(self) -> None:
        """End the users' sessions (the anonymous one is its owner's to close)."""
        users, self.users = self.users, {}
        for client in users.values():
            client.close()

    async def _answer(self, request: web.Request, make: Callable[[int], m.Message]) -> web.Response:
        if self.in_flight >= self.max_requests:
            return web.Response(
                status=503,
                text=f"too many HTTP requests in flight (max_http_requests {self.max_requests})",
                headers={"Retry-After": "1"},
            )
        self.in_flight += 1
        try:
            reply = await self._client(request.get(USER)).request(make, self.timeout)
        except GatewayUnavailable as exc:
            return web.Response(status=503, text=str(exc))
        except TimeoutError:
            return _json("timeout", 520, "ESHET Error")
        finally:
            self.in_flight -= 1
        if not isinstance(reply, m.ReplyOk | m.ReplyError):  # pragma: no cover - by protocol
            return web.Response(status=502, text=f"unexpected answer {type(reply).__name__}")
        value = json_value(reply.value.obj)
        if "wrap" in request.query:
            value = {"value": value}
        if isinstance(reply, m.ReplyOk):
            return _json(value)
        return _json(value, 520, "ESHET Error")
