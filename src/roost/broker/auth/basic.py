"""HTTP Basic logins for the gateway's plain HTTP requests (``curl -u alice ...``).

Rules of this module:

- A request with ``Authorization: Basic ...`` acts as that user, with that user's grants,
  where the gateway's address accepts password logins (loopback, or ``password_login = true``):
  the same rule as for a login over TCP, since HTTP sends the password in the clear.
- The password is checked as for a login (argon2id, off the event loop, in the access layer's
  one worker thread). A success is remembered for :data:`REMEMBER` seconds, keyed by the
  user and a SHA-256 of the password and valid only for the users file it was checked
  against (a reload forgets it), so a script's requests do not each pay an argon2 check.
- A failure is answered ``401`` only after a delay that doubles with each failure from the
  peer's address, counted together with its failed logins over TCP
  (:class:`~roost.broker.auth.access.HostFailures`), and is audited. At most :data:`MAX_CHECKS`
  password checks wait at once; one more is answered ``503`` with ``Retry-After``, so a flood
  of guesses cannot queue unbounded work.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import hashlib
import time
from typing import Final

from aiohttp import web

from roost.broker.auth.access import Access, failure_delay, peer_host
from roost.broker.auth.gate import audit_log
from roost.broker.auth.users import Users

__all__ = ("MAX_CHECKS", "REMEMBER", "BasicLogins")

#: Seconds a checked user and password are remembered.
REMEMBER: Final = 300.0
#: Password checks waiting at once; one more request is answered 503.
MAX_CHECKS: Final = 16
#: Remembered logins at most (the memory is cleared beyond).
MAX_REMEMBERED: Final = 1024

_CHALLENGE: Final = {"WWW-Authenticate": 'Basic realm="roost", charset="UTF-8"'}


def _credentials(header: str) -> tuple[str, str]:
    """User and password of a ``Basic`` authorization header.

    Raises:
        web.HTTPBadRequest: not ``Basic <base64 of user:password>``.
    """
    scheme, _, encoded = header.strip().partition(" ")
    if scheme.lower() != "basic":
        raise web.HTTPBadRequest(text="only Basic authorization is accepted")
    try:
        text = base64.b64decode(encoded.strip(), validate=True).decode()
    except (binascii.Error, UnicodeDecodeError):
        raise web.HTTPBadRequest(text="malformed Basic authorization") from None
    user, sep, password = text.partition(":")
    if not sep or not user:
        raise web.HTTPBadRequest(text="malformed Basic authorization: expected user:password")
    return user, password


class BasicLogins:
    """Checks the Basic credentials of HTTP requests against the access layer's users."""

    def __init__(self, access: Access) -> None:
        self.access = access
        #: (user, SHA-256 of the password) -> (the users it was checked against, expiry).
        self._known: dict[tuple[str, bytes], tuple[Users, float]] = {}
        #: Password checks running or waiting now.
        self.checking = 0

    async def user(self, request: web.Request, header: str) -> str:
        """The user ``header`` names, once its password is known to be right.

        Raises:
            web.HTTPException: 400 (malformed), 401 (wrong user or password, after a delay),
                503 (too many checks waiting).
        """
        user, password = _credentials(header)
        users = self.access.settings.users
        key = (user, hashlib.sha256(password.encode()).digest())
        now = time.monotonic()
        known = self._known.get(key)
        if known is not None and known[0] is users and known[1] > now:
            return user
        if self.checking >= MAX_CHECKS:
            raise web.HTTPServiceUnavailable(
                text=f"too many logins being checked (at most {MAX_CHECKS})",
                headers={"Retry-After": "1"},
            )
        self.checking += 1
        try:
            ok = await self._check(users, user, password)
        finally:
            self.checking -= 1
        host = peer_host(request.remote or "?")
        if ok:
            if len(self._known) >= MAX_REMEMBERED:
                self._known.clear()
            self._known[key] = (users, time.monotonic() + REMEMBER)
            self.access.host_failures.forget(host)
            return user
        await self._fail(host, user, request.path, users)
        raise AssertionError("unreachable")  # pragma: no cover - _fail raises

    async def _check(self, users: Users, user: str, password: str) -> bool:
        loop = asyncio.get_running_loop()
        done: asyncio.Future[bool] = loop.create_future()

        def finished(ok: bool, _now: float) -> None:
            if not done.done():
                done.set_result(ok)

        self.access.submit(lambda: users.verify(user, password), finished)
        return await done

    async def _fail(self, host: str, user: str, path: str, users: Users) -> None:
        count = self.access.host_failures.failed(host, asyncio.get_running_loop().time())
        why = "wrong password" if user in users.hashes else "unknown user"
        audit_log.warning(
            "forbidden: user=%s peer=%s http %s: %s",
            user,
            host,
            path,
            why,
            extra={"user": user, "peer": host, "path": path},
        )
        await asyncio.sleep(failure_delay(self.access.settings.login_delay, count))
        raise web.HTTPUnauthorized(text="wrong user name or password", headers=_CHALLENGE)
