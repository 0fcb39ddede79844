"""The access layer: logins, admission at hello, id takeover, reload and the lease ACL.

Rules of this module:

- :func:`install_access` puts an :class:`Access` in the router's ``gate`` slot and wraps its
  extension handler (lease requests are checked against the ``lease``/``take``/``call``/``set``
  /``register`` permissions of their resource or path before the lease layer sees them).
- A login (``auth_login``, before the hello) checks the password off the event loop
  (``submit``: run a blocking function in a worker thread, then call back on the loop). A
  failed login is answered only after a delay that doubles with each failure of the
  connection (a timer: nothing sleeps); after :data:`MAX_FAILURES` the connection is closed.
  Unknown user and wrong password get the same answer; the log tells them apart.
- Grants are compiled once per user and shared by that user's sessions; a reload compiles
  them again, and takes from every live session what it may no longer do: registrations and
  subscriptions are dropped, and a connection that speaks the extension is told which
  (``access_changed``).
- Synchronous except for ``submit`` and timers, like the router.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Hashable
from typing import Any, Final, Protocol

from roost.broker import frames, states
from roost.broker.auth.acl import ANONYMOUS, Grants, grants_for, resource_path
from roost.broker.auth.gate import Gate, audit_log
from roost.broker.auth.settings import AuthSettings
from roost.broker.router import Router
from roost.broker.session import Session
from roost.broker.tree import ACTION, PROP, STATE, Node
from roost.errors import ConfigError
from roost.protocol import messages as m
from roost.protocol.values import Value, pack

__all__ = (
    "MAX_FAILURES",
    "Access",
    "DelegateLease",
    "HostFailures",
    "LeaseLayerView",
    "RevokeLeases",
    "Submit",
    "failure_delay",
    "install_access",
    "peer_host",
)

#: Failed logins one connection may make before it is closed.
MAX_FAILURES: Final = 3
#: The longest delay before a failed login is answered, in seconds.
MAX_DELAY: Final = 30.0
#: Failures from one peer address are forgotten after this long without another, in seconds.
HOST_MEMORY: Final = 900.0
#: Peer addresses whose failures are remembered at most (the table is cleared beyond).
MAX_HOSTS: Final = 4096

#: Run ``fn`` in a worker thread, then ``done(result, now)`` on the event loop.
Submit = Callable[[Callable[[], bool], Callable[[bool, float], None]], None]
#: End the leases of a session whose resource ``keep`` refuses; returns their resources.
RevokeLeases = Callable[[Session, Callable[[str], bool], float], list[str]]
#: A sub-lease of a held lease (token) for a user; returns the reply map.
DelegateLease = Callable[[Session, object, str, float], dict[str, Any]]

log = logging.getLogger("roost.broker.auth")

# Extension request code -> (permission, body key, key is a resource name).
# Extension request code -> (permission, body key, key is a resource name, what a missing key
# means: "" the whole tree, None a malformed request the lease layer refuses). An acquire by
# requirements (a pool) names no resource: it needs ``lease`` on the whole tree.
_LEASE_CHECKS: Final[dict[int, tuple[str, str, bool, str | None]]] = {
    0x50: ("lease", "resource", True, ""),
    0x51: ("take", "resource", True, None),
    0x54: ("lease", "resource", True, None),
    0x56: ("lease", "resource", True, None),
    0x57: ("lease", "prefix", True, ""),
    0x58: ("register", "path", False, None),
    0x59: ("call", "path", False, None),
    0x5A: ("set", "path", False, None),
    0x5B: ("lease", "resource", True, None),  # lock_set
    0x5C: ("lease", "resource", True, None),  # lock_clear
    0x5D: ("lease", "resource", True, ""),  # lock_info (none: every lock)
    0x5E: ("lease", "none", True, ""),  # pool_list
    0x5F: ("admin", "none", True, ""),  # pool_reload
}


class Access(Gate):
    """Logins, admission and reload for one router.

    Args:
        router: the router to guard.
        settings: users, groups and rules.
        submit: runs the password check off the event loop.
        allow_anonymous: the ``--allow-anonymous`` flag (for listeners that leave it open).
        revoke_leases: ends leases the rules no longer grant (from the lease layer).
        delegate_lease: makes a sub-lease for another user (from the lease layer).
    """

    def __init__(
        self,
        router: Router,
        settings: AuthSettings,
        submit: Submit,
        *,
        allow_anonymous: bool,
        revoke_leases: RevokeLeases | None = None,
        delegate_lease: DelegateLease | None = None,
    ) -> None:
        self.router = router
        self.revoke_leases = revoke_leases
        self.delegate_lease = delegate_lease
        self.settings = settings
        self.submit = submit
        self.allow_anonymous = allow_anonymous
        self._grants: dict[str, Grants] = {}
        self._busy: set[Session] = set()
        self._failures: dict[Session, int] = {}
        #: Failed logins per peer address, with the time of the latest: opening more
        #: connections does not make guessing faster.
        self.host_failures = HostFailures()
        #: Sessions whose user came from a password (a reload that removes it closes them).
        self._by_password: set[Session] = set()

    # -- grants --------------------------------------------------------------------------------

    def grants(self, user: str) -> Grants | None:
        """The compiled grants of ``user``; ``None`` when there are no rules at all."""
        rules = self.settings.rules
        if not rules:
            return None
        found = self._grants.get(user)
        if found is None:
            found = grants_for(user, rules, self.settings.users.groups)
            self._grants[user] = found
        return found

    # -- login ---------------------------------------------------------------------------------

    def _reply(self, session: Session, rid: int, status: str, **fields: Any) -> None:
        code = 0x05 if status == "OK" else 0x06
        session.push(frames.reply(code, rid, pack({"status": status, **fields})))

    def login(self, session: Session, msg: Any, now: float) -> None:
        session.opted_in = True
        rid = msg.id
        if session.conn.hello_done:
            self._reply(session, rid, "bad_args", reason="log in before hello")
            return
        if session in self._busy:
            self._reply(session, rid, "busy", reason="a login is already in progress")
            return
        body = msg.body.obj
        user = body.get("user") if isinstance(body, dict) else None
        password = body.get("password") if isinstance(body, dict) else None
        if not isinstance(user, str) or not isinstance(password, str):
            self._reply(session, rid, "bad_args", reason="expected {user: str, password: str}")
            return
        listener = session.listener
        if listener is not None and not listener.allows_passwords():
            self._audit(session, user, "password login refused on a plain network listener")
            self._reply(
                session,
                rid,
                "forbidden",
                reason="password login needs TLS on this listener (or password_login = true)",
            )
            return
        self._busy.add(session)
        users = self.settings.users
        self.submit(
            lambda: users.verify(user, password),
            lambda ok, when: self._checked(session, rid, user, ok, when),
        )

    def _checked(self, session: Session, rid: int, user: str, ok: bool, now: float) -> None:
        if session.closed:
            self._busy.discard(session)
            return
        if ok:
            self._busy.discard(session)
            session.user = user
            self._by_password.add(session)
            self.host_failures.forget(peer_host(session.peer))
            log.info(
                "login: user=%s peer=%s",
                user,
                session.peer,
                extra={"user": user, "peer": session.peer},
            )
            self._reply(session, rid, "OK", user=user)
            return
        known = user in self.settings.users.hashes
        self._audit(session, user, "wrong password" if known else "unknown user")
        failures = self._failures.get(session, 0) + 1
        self._failures[session] = failures
        count = self.host_failures.failed(peer_host(session.peer), now)
        delay = failure_delay(self.settings.login_delay, max(failures, count))
        self.router.hooks.call_later(delay, lambda when: self._refuse(session, rid, failures, when))

    def _refuse(self, session: Session, rid: int, failures: int, now: float) -> None:
        self._busy.discard(session)
        if session.closed:
            return
        self._reply(session, rid, "bad_login", reason="wrong user name or password")
        if failures >= MAX_FAILURES:
            # On the next loop turn, after the flush that delivers the reply.
            self.router.hooks.call_later(
                0, lambda when: self.router.disconnect(session, "login_failed", when)
            )

    @staticmethod
    def _audit(session: Session, user: str, why: str) -> None:
        audit_log.warning(
            "login refused: user=%s peer=%s: %s",
            user,
            session.peer,
            why,
            extra={"user": user, "peer": session.peer, "reason": why},
        )

    # -- hello ---------------------------------------------------------------------------------

    def admit(self, session: Session, now: float) -> bool:
        if session in self._busy:
            self.router.disconnect(session, "protocol_error: hello during a login", now)
            return False
        if session.trusted:
            session.grants = None
            return True
        listener = session.listener
        if (
            session.user == ANONYMOUS
            and listener is not None
            and not listener.allows_anonymous(self.allow_anonymous)
        ):
            self._audit(session, ANONYMOUS, "this listener needs a login before hello")
            self.router.disconnect(session, "login_required", now)
            return False
        session.grants = self.grants(session.user)
        return True

    def permit(self, session: Session, pattern: str, kind: str) -> Callable[[str], bool] | None:
        """Which paths a subtree subscription of ``session`` may see (the router's
        ``subtrees.permit``): those its grants allow to observe (states) or listen to
        (events); ``None`` without rules."""
        grants = session.grants
        if grants is None:
            return None
        permission = "observe" if kind is STATE else "listen"
        return lambda path: grants.allows(permission, path)

    def may_take_over(self, session: Session, other: Session) -> bool:
        if other.user == session.user:
            return True
        self._audit(session, session.user, f"client id held by user {other.user}")
        return False

    # -- delegation ----------------------------------------------------------------------------

    def delegate(self, session: Session, msg: Any, now: float) -> None:
        body = msg.body.obj
        token = body.get("token") if isinstance(body, dict) else None
        user = body.get("user") if isinstance(body, dict) else None
        if token is None or not isinstance(user, str) or self.delegate_lease is None:
            self._reply(session, msg.id, "bad_args", reason="expected {token: map, user: str}")
            return
        reply = self.delegate_lease(session, token, user, now)
        status = reply.get("status", "bad_args")
        fields = {k: x for k, x in reply.items() if k != "status"}
        self._reply(session, msg.id, status, **fields)

    # -- reload --------------------------------------------------------------------------------

    def reload(self, session: Session, msg: Any, now: float) -> None:
        session.opted_in = True
        grants = session.grants
        if grants is not None and not grants.admin:
            self.deny(session, "admin", "/meta/reload", msg.id, ext=True)
            return
        try:
            users, rules = self.reload_now(now)
        except (ConfigError, RuntimeError) as exc:
            self._reply(session, msg.id, "reload_failed", reason=str(exc))
            return
        self._reply(session, msg.id, "OK", users=users, rules=rules)

    def reload_now(self, now: float) -> tuple[int, int]:
        """Re-read users and rules and apply them to every live session.

        Returns:
            The number of users and of rules now in force.

        Raises:
            RuntimeError: the broker has no files to reload from.
            ConfigError: the files are wrong (nothing changes then).
        """
        source = self.settings.reload
        if source is None:
            raise RuntimeError("no configuration file to reload")
        fresh = source()
        self.apply(
            AuthSettings(
                users=fresh.users,
                rules=fresh.rules,
                login_delay=self.settings.login_delay,
                reload=source,
            ),
            now,
        )
        log.info(
            "reloaded: %d users, %d rules",
            len(fresh.users.hashes),
            len(fresh.rules),
            extra={"users": len(fresh.users.hashes), "rules": len(fresh.rules)},
        )
        return len(fresh.users.hashes), len(fresh.rules)

    def apply(self, settings: AuthSettings, now: float) -> None:
        """Put ``settings`` in force: new grants for every session, and what a session may no
        longer do is taken from it."""
        self.settings = settings
        self._grants.clear()
        router = self.router
        for session in list(router.sessions):
            if session.closed or not session.conn.hello_done or session.trusted:
                continue
            if session in self._by_password and session.user not in settings.users.hashes:
                self._tell(session, "user removed", [])
                router.disconnect(session, "access_revoked: user removed", now)
                continue
            grants = self.grants(session.user)
            session.grants = grants
            # Subtree subscriptions go on, seeing what the new grants allow.
            index = self.router.subtrees
            for sub in list(index.subs_of(session).values()):
                index.remove(sub)
                sub.allows = self.permit(session, sub.pattern, sub.kind)
                index.add(sub)
            if grants is not None:
                self._revoke(session, grants, now)

    def _revoke(self, session: Session, grants: Grants, now: float) -> None:
        dropped: list[str] = []
        for node in list(session.owned):
            if not grants.allows("register", node.path):
                self._drop_owned(session, node)
                dropped.append(node.path)
        for node in list(session.listening):
            if not grants.allows("observe" if node.kind is STATE else "listen", node.path):
                self._drop_listener(session, node)
                dropped.append(node.path)
        leases: list[str] = []
        if self.revoke_leases is not None:

            def keep(resource: str) -> bool:
                path = resource_path(resource)
                return grants.allows("lease", path) or grants.allows("take", path)

            leases = self.revoke_leases(session, keep, now)
        if dropped or leases:
            log.info(
                "access revoked: user=%s peer=%s paths=%s leases=%s",
                session.user,
                session.peer,
                ",".join(dropped),
                ",".join(leases),
                extra={
                    "user": session.user,
                    "peer": session.peer,
                    "paths": dropped,
                    "leases": leases,
                },
            )
            self._tell(session, "access rules changed", dropped, leases)
            self.router.meta.clients_changed(now)

    @staticmethod
    def _tell(
        session: Session, reason: str, dropped: list[str], leases: list[str] | None = None
    ) -> None:
        if session.opted_in:
            body = Value.of({"reason": reason, "dropped": dropped, "leases": leases or []})
            session.push(session.conn.send(m.AccessChanged(body)))

    def _drop_owned(self, session: Session, node: Node[Session]) -> None:
        """Take ``node`` from its owner as a close would (protocol.md §10.6), one node only."""
        owned = session.owned
        assert isinstance(owned, list)
        owned.remove(node)
        node.owner = None
        node.guard = None
        tree = self.router.tree
        if node.kind is ACTION or node.kind is PROP:
            tree.remove(node)
            return
        if node.kind is STATE and node.value is not None:
            node.value = None
            states.notify_unknown(node)
        if not node.listeners:
            tree.remove(node)

    def _drop_listener(self, session: Session, node: Node[Session]) -> None:
        listening = session.listening
        assert isinstance(listening, list)
        listening.remove(node)
        node.drop_listener(session)
        if node.owner is None and not node.listeners and not node.internal:
            self.router.tree.remove(node)

    def gone(self, session: Session, reason: str, now: float) -> None:
        """Forget a closed session."""
        self._busy.discard(session)
        self._failures.pop(session, None)
        self._by_password.discard(session)

    # -- leases --------------------------------------------------------------------------------

    def check_extension(self, session: Session, msg: Any) -> bool:
        """True if ``session`` may make this lease request (else ``forbidden`` was sent)."""
        grants = session.grants
        check = _LEASE_CHECKS.get(msg.code)
        if grants is None or check is None:
            return True
        permission, key, resource, missing = check
        body = msg.body.obj
        target = body.get(key) if isinstance(body, dict) else None
        if not isinstance(target, str):
            if missing is None or target is not None:
                return True  # the lease layer answers bad_args
            target = missing
        path = "/" if resource and target == "" else resource_path(target) if resource else target
        allowed = grants.admin if permission == "admin" else grants.allows(permission, path)
        if allowed:
            return True
        self.deny(session, permission, path, msg.id, ext=True)
        return False


def peer_host(peer: str) -> str:
    """The address part of ``host:port`` or ``[v6]:port`` (without brackets)."""
    return (peer.rpartition(":")[0] or peer).strip("[]")


def failure_delay(base: float, failures: int) -> float:
    """Seconds before the answer to a login that failed for the ``failures``-th time: ``base``
    doubled per failure, at most :data:`MAX_DELAY`."""
    return min(MAX_DELAY, base * 2.0 ** min(failures - 1, 16))


class HostFailures:
    """Failed logins per peer address, shared by every way of logging in (the native
    extension and HTTP Basic credentials), so that switching between them does not make
    guessing faster. A host's failures are forgotten after :data:`HOST_MEMORY` seconds without
    another; at most :data:`MAX_HOSTS` hosts are remembered (the table is cleared beyond)."""

    def __init__(self) -> None:
        self._by_host: dict[str, tuple[int, float]] = {}

    def failed(self, host: str, now: float) -> int:
        """Count one failure of ``host`` at ``now``; return its failures in a row."""
        by_host = self._by_host
        count, last = by_host.get(host, (0, now))
        count = 1 if now - last > HOST_MEMORY else count + 1
        if len(by_host) >= MAX_HOSTS and host not in by_host:
            by_host.clear()
        by_host[host] = (count, now)
        return count

    def forget(self, host: str) -> None:
        """A success: forget the failures of ``host``."""
        self._by_host.pop(host, None)


class _Table(Protocol):
    bind_tokens: bool
    user_of: Callable[[Hashable], str] | None

    def revoke(
        self, conn: Hashable, keep: Callable[[str], bool], reason: str, now: float
    ) -> tuple[list[str], list[Any]]: ...

    def delegate(
        self, conn: Hashable, token: object, user: str, now: float
    ) -> tuple[dict[str, Any], list[Any]]: ...


class LeaseLayerView(Protocol):
    """What the access layer uses of the lease layer (``roost.broker.leases.LeaseLayer``)."""

    @property
    def table(self) -> _Table: ...

    def apply(self, effects: list[Any], now: float) -> None: ...


def install_access(
    router: Router,
    settings: AuthSettings,
    submit: Submit,
    *,
    allow_anonymous: bool = False,
    leases: LeaseLayerView | None = None,
) -> Access:
    """Guard ``router`` with ``settings``: logins, admission, lease checks, reload. With
    ``leases``, tokens are bound to their holders once there are users or rules, reload ends
    leases no longer granted, and ``auth_delegate`` makes sub-leases."""
    revoke_leases: RevokeLeases | None = None
    delegate_lease: DelegateLease | None = None
    if leases is not None:
        layer = leases
        layer.table.bind_tokens = bool(settings.rules or settings.users.hashes)
        layer.table.user_of = lambda session: session.user  # type: ignore[attr-defined]

        def revoke_leases(session: Session, keep: Callable[[str], bool], now: float) -> list[str]:
            ended, effects = layer.table.revoke(session, keep, "access_revoked", now)
            layer.apply(effects, now)
            return ended

        def delegate_lease(session: Session, token: object, user: str, now: float) -> Any:
            reply, effects = layer.table.delegate(session, token, user, now)
            layer.apply(effects, now)
            return reply

    access = Access(
        router,
        settings,
        submit,
        allow_anonymous=allow_anonymous,
        revoke_leases=revoke_leases,
        delegate_lease=delegate_lease,
    )
    router.gate = access
    router.subtrees.permit = access.permit
    router.disconnect_hooks.append(access.gone)
    inner = router.handle_extension

    def handle_extension(session: Session, msg: Any, now: float) -> None:
        if access.check_extension(session, msg):
            inner(session, msg, now)

    router.handle_extension = handle_extension  # type: ignore[method-assign]
    return access
