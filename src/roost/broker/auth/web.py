"""Access control for the HTTP gateway's broker figures (``/metrics``, ``/api/stats``).

Rules of this module:

- HTTP requests cannot log in: they are ``anonymous``. The gateway's HTTP API and websocket
  clients are router sessions, checked like any other; this guard covers the two routes that
  read the broker's own figures, which name every client (ids, addresses).
- Those need what ``/meta/clients`` needs: no access rules, or ``admin`` on ``/meta`` for
  ``anonymous``; and an address that accepts anonymous connections at all.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from aiohttp import web

from roost.broker.auth.acl import ANONYMOUS
from roost.broker.auth.gate import audit_log
from roost.broker.listeners import Listener

__all__ = ("FIGURES", "figures_guard")

#: The gateway routes that read the broker's figures.
FIGURES = frozenset({"/metrics", "/api/stats"})


def figures_guard(
    grants: Callable[[str], object | None], listener: Listener, allow_anonymous: bool
) -> Callable[[web.Request], Awaitable[None]]:
    """The gateway's ``authenticate`` hook: refuses the figures with 403 where ``anonymous``
    may not read ``/meta/clients`` (``grants``: the access layer's per-user lookup)."""

    async def authenticate(request: web.Request) -> None:
        if request.path not in FIGURES:
            return
        if not listener.allows_anonymous(allow_anonymous):
            why = "this address accepts no anonymous requests"
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
