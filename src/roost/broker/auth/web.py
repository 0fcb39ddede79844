"""Access control for the HTTP gateway's plain HTTP requests.

Rules of this module:

- HTTP requests cannot log in: they are ``anonymous``, and the gateway's HTTP API sends them
  through one router session of its own, checked against the rules like any other.
- Where the broker accepts no anonymous connections (the gateway's address is not loopback
  and ``--allow-anonymous`` is off, or its listener says ``anonymous = false``), the HTTP API
  (``/call/``, ``/get/``, ``/set/``) and the figures are refused with 403 before anything
  reaches the broker, as a TCP client that does not log in is refused. The dashboard's page
  and files stay open: its websocket logs in.
- The figures (``/metrics``, ``/api/stats``) name every client (ids, addresses), so they also
  need what ``/meta/clients`` needs: no access rules, or ``admin`` on ``/meta`` for
  ``anonymous``.
- Websockets are connections of the broker and log in (or not) like TCP clients: not guarded
  here.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from aiohttp import web

from roost.broker.auth.acl import ANONYMOUS
from roost.broker.auth.gate import audit_log
from roost.broker.listeners import Listener

__all__ = ("API", "FIGURES", "http_guard")

#: The gateway routes that read the broker's figures.
FIGURES = frozenset({"/metrics", "/api/stats"})
#: The prefixes of the gateway's HTTP API routes (they act on the tree).
API = ("/call/", "/get/", "/set/")


def http_guard(
    grants: Callable[[str], object | None], listener: Listener, allow_anonymous: bool
) -> Callable[[web.Request], Awaitable[None]]:
    """The gateway's ``authenticate`` hook: refuses the HTTP API and the figures with 403 where
    the gateway's address accepts no anonymous connections, and the figures where
    ``anonymous`` may not read ``/meta/clients`` (``grants``: the access layer's per-user
    lookup)."""

    async def authenticate(request: web.Request) -> None:
        path = request.path
        figures = path in FIGURES
        if not figures and not path.startswith(API):
            return
        if not listener.allows_anonymous(allow_anonymous):
            why = "this address accepts no anonymous requests"
        elif not figures:
            return
        else:
            found = grants(ANONYMOUS)
            if found is None or getattr(found, "admin", False):
                return
            why = "the broker's figures need admin on /meta"
        audit_log.warning(
            "forbidden: user=anonymous peer=%s http %s",
            request.remote,
            request.path,
            extra={"user": ANONYMOUS, "peer": request.remote, "path": request.path},
        )
        raise web.HTTPForbidden(text=f"forbidden: {why}")

    return authenticate
