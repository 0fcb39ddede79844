"""Access control for the HTTP gateway's plain HTTP requests.

Rules of this module:

- A plain HTTP request is ``anonymous`` unless it carries Basic credentials
  (:mod:`roost.broker.auth.basic`), which are accepted where password logins are (TLS or
  loopback, or ``password_login = true``) and make it act as that user. The gateway's HTTP API
  sends each user's requests through a router session of that user, checked against the rules
  like any other.
- Where the broker accepts no anonymous connections (the gateway's address is not loopback
  and ``--allow-anonymous`` is off, or its listener says ``anonymous = false``), the HTTP API
  (``/call/``, ``/get/``, ``/set/``) and the figures are refused with 403 to a request without
  credentials before anything reaches the broker, as a TCP client that does not log in is
  refused. The dashboard's page and files stay open: its websocket logs in.
- The figures (``/metrics``, ``/api/stats``) name every client (ids, addresses), so they also
  need what ``/meta/clients`` needs: no access rules, or ``admin`` on ``/meta`` for the
  request's user.
- Websockets are connections of the broker and log in (or not) like TCP clients: not guarded
  here.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import NoReturn

from aiohttp import web

from roost.broker.auth.access import Access
from roost.broker.auth.acl import ANONYMOUS
from roost.broker.auth.basic import BasicLogins
from roost.broker.auth.gate import audit_log
from roost.broker.listeners import Listener

__all__ = ("API", "FIGURES", "http_guard")

#: The gateway routes that read the broker's figures.
FIGURES = frozenset({"/metrics", "/api/stats"})
#: The prefixes of the gateway's HTTP API routes (they act on the tree).
API = ("/call/", "/get/", "/set/")


def http_guard(
    access: Access, listener: Listener, allow_anonymous: bool
) -> Callable[[web.Request], Awaitable[str | None]]:
    """The gateway's ``authenticate`` hook, for the broker whose access layer is ``access``.

    Returns the user a request with Basic credentials acts as (``None``: anonymous). Refuses
    with 403 the HTTP API and the figures where the gateway's address accepts no anonymous
    connections and the request has no credentials, Basic credentials where it accepts no
    password logins, and the figures to a user who may not read ``/meta/clients``.
    """

    grants = access.grants
    logins = BasicLogins(access)

    async def authenticate(request: web.Request) -> str | None:
        path = request.path
        figures = path in FIGURES
        if not figures and not path.startswith(API):
            return None
        header = request.headers.get("Authorization")
        user = ANONYMOUS
        if header is not None:
            if not listener.allows_passwords():
                why = "password logins need TLS or loopback on this address"
                _refuse(request, user, why)
            user = await logins.user(request, header)
        elif not listener.allows_anonymous(allow_anonymous):
            _refuse(request, user, "this address accepts no anonymous requests")
        if figures:
            found = grants(user)
            if found is not None and not getattr(found, "admin", False):
                _refuse(request, user, "the broker's figures need admin on /meta")
        return None if user == ANONYMOUS else user

    return authenticate


def _refuse(request: web.Request, user: str, why: str) -> NoReturn:
    audit_log.warning(
        "forbidden: user=%s peer=%s http %s",
        user,
        request.remote,
        request.path,
        extra={"user": user, "peer": request.remote, "path": request.path},
    )
    raise web.HTTPForbidden(text=f"forbidden: {why}")
