"""What the router asks of the access layer, and the answers of a broker without one.

Rules of this module:

- The router holds one :class:`Gate` and calls it at the few places where identity matters:
  a login or reload request, a hello (admission, id takeover) and a refused request. Permission
  checks themselves are the session's :class:`~roost.broker.auth.acl.Grants`, decided in the
  router where the request is handled, so nothing here runs per message.
- This base class is the open door (no users, no rules); :mod:`roost.broker.auth.access`
  replaces it with the real one. Synchronous, like the router.
"""

from __future__ import annotations

import logging
from typing import Any

from roost.broker import frames
from roost.broker.session import Session
from roost.protocol import messages as m

__all__ = ("Gate", "audit_log", "denied")

#: Refused requests and logins, one record each (``extra``: user, peer, permission, path).
audit_log = logging.getLogger("roost.broker.access")


class Gate:
    """Admission and refusals without access control: everybody is ``anonymous`` and may do
    everything; logins are refused as unavailable."""

    def handle(self, session: Session, msg: Any, now: float) -> None:
        """An identity request (``auth_login``, ``auth_reload``, ``auth_delegate``)."""
        session.opted_in = True
        if isinstance(msg, m.AuthLogin):
            self.login(session, msg, now)
        elif not session.conn.hello_done:
            session.push(frames.err_map(msg.id, "unregistered"))
        elif isinstance(msg, m.AuthReload):
            self.reload(session, msg, now)
        else:
            self.delegate(session, msg, now)

    def delegate(self, session: Session, msg: Any, now: float) -> None:
        """An ``auth_delegate`` request (after the hello)."""
        session.push(frames.err_map(msg.id, "bad_args"))

    def login(self, session: Session, msg: Any, now: float) -> None:
        """An ``auth_login`` request (before or after the hello)."""
        session.opted_in = True
        session.push(frames.err_map(msg.id, "login_unavailable"))

    def reload(self, session: Session, msg: Any, now: float) -> None:
        """An ``auth_reload`` request (after the hello)."""
        session.opted_in = True
        session.push(frames.err_map(msg.id, "forbidden"))

    def admit(self, session: Session, now: float) -> bool:
        """A hello arrived: True to go on, False after closing the connection."""
        return True

    def may_take_over(self, session: Session, other: Session) -> bool:
        """True if ``session`` may take the client id that ``other`` holds."""
        return True

    def deny(self, session: Session, permission: str, path: str, rid: int, *, ext: bool) -> None:
        """Refuse request ``rid`` with ``forbidden`` (a map for an extension request) and
        audit it."""
        session.push(frames.err_map(rid, "forbidden") if ext else frames.err(rid, "forbidden"))
        audit_log.warning(
            "forbidden: user=%s peer=%s %s %s",
            session.user,
            session.peer,
            permission,
            path,
            extra={
                "user": session.user,
                "peer": session.peer,
                "permission": permission,
                "path": path,
            },
        )


def denied(gate: Gate, session: Session, permission: str, path: str, rid: int) -> bool:
    """True (after ``gate.deny`` sent ``forbidden``) if ``session`` may not do this; a decision
    made before costs one dict lookup (``Grants.decided``)."""
    g = session.grants
    if g is None or g.decided[permission].get(path) or g.allows(permission, path):
        return False
    gate.deny(session, permission, path, rid, ext=False)
    return True
