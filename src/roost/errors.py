"""Every exception roost raises, under one root.

::

    RoostError
    ├── ProtocolError             the peer broke the wire protocol (remote garbage)
    │   ├── FramingError          bad sync byte, length, truncated fields, unknown code...
    │   └── InvalidValue          a value that is not exactly one valid msgpack object
    ├── LocalProtocolError        we tried to send something our role may not send (misuse)
    ├── ConnectionClosed          the connection is gone
    │   └── Disconnected          a request was in flight when the connection was lost
    ├── ConnectFailed             could not reach the broker (also an OSError)
    ├── RemoteError               an error reply from the peer; ``.value`` is the wire value
    │   └── LeaseError            an extension reply with a lease ``status``
    │       ├── AlreadyClaimed, NotHolder, NotWaiting, NoLease, Older, Revoked,
    │       ├── WrongEpoch, InvalidLease, Unmanaged, TimeoutRequired,
    │       ├── InvalidResource, NotPermitted, ResourceLimit, WaitLimit
    │       ├── InvalidKey, NotLocked, NotSaved   durable locks
    │       ├── NoMatch, InvalidRequirements      pools (NoneFree is an AlreadyClaimed)
    │       └── LeaseWaitTimeout  also a TimeoutError
    ├── LeaseLost                 a held lease ended (``.reason``)
    ├── LeasesUnsupported         the broker is a plain ESHET server without the lease extension
    ├── ConfigError               a broker configuration file or setting cannot be used
    │                             (also a ValueError; names the file, line and key)
    ├── SubtreeUnsupported        the broker does not offer subtree subscriptions
    ├── StoreError                the broker's store file cannot be read or written (names it)
    └── LoginFailed               the broker refused the login (wrong user or password...)
        └── AuthUnsupported       the broker does not offer logins (no auth extension)

Local misuse and remote garbage live on separate branches: a ``ProtocolError`` always means the
peer sent something wrong, a ``LocalProtocolError`` always means this process did.
"""

from __future__ import annotations

from typing import Any

__all__ = (
    "AlreadyClaimed",
    "AuthUnsupported",
    "ConfigError",
    "ConnectFailed",
    "ConnectionClosed",
    "Disconnected",
    "FramingError",
    "InvalidKey",
    "InvalidLease",
    "InvalidRequirements",
    "InvalidResource",
    "InvalidValue",
    "LeaseError",
    "LeaseLost",
    "LeaseWaitTimeout",
    "LeasesUnsupported",
    "LocalProtocolError",
    "LoginFailed",
    "NoLease",
    "NoMatch",
    "NoneFree",
    "NotHolder",
    "NotLocked",
    "NotPermitted",
    "NotSaved",
    "NotWaiting",
    "Older",
    "ProtocolError",
    "RemoteError",
    "ResourceLimit",
    "Revoked",
    "RoostError",
    "StoreError",
    "SubtreeUnsupported",
    "TimeoutRequired",
    "Unmanaged",
    "WaitLimit",
    "WrongEpoch",
    "lease_error_for",
)


class RoostError(Exception):
    """Root of every exception roost raises."""


class ConfigError(RoostError, ValueError):
    """A broker configuration file or setting cannot be used.

    ``str(err)`` is one line: ``FILE:LINE: KEY: what is wrong`` (``LINE`` left out when it is not
    known, ``KEY`` when the whole file is at fault). ``path``, ``line``, ``key`` and ``problem``
    hold the parts. It is also a ``ValueError``, the type of every other bad setting.
    """

    def __init__(self, path: str, key: str | None, problem: str, line: int | None = None) -> None:
        self.path = path
        self.key = key
        self.problem = problem
        self.line = line
        where = f"{path}:{line}" if line is not None else path
        if key:
            where = f"{where}: {key}"
        super().__init__(f"{where}: {problem}")


class ProtocolError(RoostError):
    """The peer sent bytes that break the wire protocol."""


class FramingError(ProtocolError):
    """A framing or layout error: the connection must be closed (protocol.md §3)."""


class InvalidValue(ProtocolError):
    """A value is not exactly one valid msgpack object (protocol.md §4.2).

    The connection survives: the broker answers ``invalid_value``.
    """


class LocalProtocolError(RoostError):
    """This side tried to send a message its role may not send, or sent it at the wrong time."""


class ConnectionClosed(RoostError):
    """The connection to the broker is closed."""


class Disconnected(ConnectionClosed):
    """The connection was lost while a request waited for its answer."""


class ConnectFailed(RoostError, OSError):
    """The broker could not be reached."""


class RemoteError(RoostError):
    """The peer answered a request with an error reply.

    ``value`` is the decoded wire value, for example ``"path_not_found"``; ``path`` is the path
    of a pipelined emit or state change the broker refused (``None`` for a request's own reply).
    """

    def __init__(self, value: Any, path: str | None = None) -> None:
        super().__init__(value)
        self.value = value
        self.path = path

    def __str__(self) -> str:
        return str(self.value) if self.path is None else f"{self.path}: {self.value}"


class LeaseError(RemoteError):
    """An extension reply whose ``status`` is not ``OK``.

    ``status`` is the wire status (``"OLDER"``), ``reply`` the whole reply map (it carries
    ``holders``, ``reason`` and friends where the protocol defines them).
    """

    status: str = ""

    def __init__(self, reply: dict[str, Any]) -> None:
        super().__init__(reply)
        self.reply = reply
        self.status = str(reply.get("status", self.status))

    @property
    def holders(self) -> list[dict[str, Any]]:
        """The current holders the broker reported with this refusal."""
        holders = self.reply.get("holders")
        return list(holders) if isinstance(holders, list) else []

    def __str__(self) -> str:
        reason = self.reply.get("reason")
        text = f"{self.status} ({reason})" if reason else self.status
        shown = [describe_holder(h) for h in self.holders[:3] if isinstance(h, dict)]
        if not shown:
            return text
        more = len(self.holders) - len(shown)
        return f"{text}: held by " + "; ".join(shown) + (f" and {more} more" if more > 0 else "")


def describe_holder(entry: dict[str, Any]) -> str:
    """A holder (or waiter) entry in words: ``name (user@host, pid N) on RES since 12:03:04,
    note "..."``, leaving out what the holder did not say."""
    import contextlib  # noqa: PLC0415 (only for formatting a refusal)
    import time  # noqa: PLC0415

    name = entry.get("name") or f"client {entry.get('client', '?')}"
    user, host, pid = entry.get("user"), entry.get("host"), entry.get("pid")
    where = "@".join(str(part) for part in (user, host) if part)
    details = [part for part in (where, f"pid {pid}" if pid is not None else "") if part]
    text = f"{name} ({', '.join(details)})" if details else str(name)
    resource = entry.get("resource")
    if isinstance(resource, str):
        text += f" on {resource}"
    since = entry.get("since")
    if isinstance(since, int | float) and not isinstance(since, bool):
        with contextlib.suppress(OverflowError, OSError, ValueError):
            text += " since " + time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(since))
    note = entry.get("note")
    if note:
        text += f', note "{note}"'
    return text


class AlreadyClaimed(LeaseError):
    """The resource is held incompatibly (``ALREADY_CLAIMED``)."""

    status = "ALREADY_CLAIMED"


class LeaseWaitTimeout(LeaseError, TimeoutError):
    """A queued acquire reached its deadline (``TIMEOUT``)."""

    status = "TIMEOUT"


class NotHolder(LeaseError):
    """The token is valid but this connection does not hold it (``NOT_HOLDER``)."""

    status = "NOT_HOLDER"


class NotWaiting(LeaseError):
    """No such queued wait of this connection (``NOT_WAITING``)."""

    status = "NOT_WAITING"


class NoLease(LeaseError):
    """A guarded node was called without a covering lease (``NO_LEASE``)."""

    status = "NO_LEASE"


class Older(LeaseError):
    """A newer grant exists for the token's resource (``OLDER``)."""

    status = "OLDER"


class Revoked(LeaseError):
    """The token's lease has ended (``REVOKED``); ``reason`` says why."""

    status = "REVOKED"

    @property
    def reason(self) -> str | None:
        reason = self.reply.get("reason")
        return reason if isinstance(reason, str) else None


class WrongEpoch(LeaseError):
    """The token comes from another broker run (``WRONG_EPOCH``)."""

    status = "WRONG_EPOCH"


class InvalidLease(LeaseError):
    """The token is malformed or was never issued (``INVALID_LEASE``)."""

    status = "INVALID_LEASE"


class Unmanaged(LeaseError):
    """The resource is not managed, or the token is not for it (``UNMANAGED``)."""

    status = "UNMANAGED"


class TimeoutRequired(LeaseError):
    """Leases need a connection with a non-zero idle timeout (``TIMEOUT_REQUIRED``)."""

    status = "TIMEOUT_REQUIRED"


class InvalidResource(LeaseError):
    """A bad or undeclared resource name (``INVALID_RESOURCE``)."""

    status = "INVALID_RESOURCE"


class NotPermitted(LeaseError):
    """The resource may not be taken (``NOT_PERMITTED``)."""

    status = "NOT_PERMITTED"


class ResourceLimit(LeaseError):
    """The broker's resource table is full (``RESOURCE_LIMIT``)."""

    status = "RESOURCE_LIMIT"


class WaitLimit(LeaseError):
    """This connection already has the most queued acquires the broker allows
    (``WAIT_LIMIT``; ``reply["max_waits"]`` is that number)."""

    status = "WAIT_LIMIT"


class InvalidKey(LeaseError):
    """The key does not open the durable lock (``INVALID_KEY``); the text names who locked it
    and the note they left, ``reply["lock"]`` is the lock info."""

    status = "INVALID_KEY"


class NotLocked(LeaseError):
    """There is no durable lock on the resource (``NOT_LOCKED``)."""

    status = "NOT_LOCKED"


class NotSaved(LeaseError):
    """The broker could not write the change to its state directory (``NOT_SAVED``); nothing
    changed."""

    status = "NOT_SAVED"


class NoMatch(LeaseError):
    """No resource in the pool's inventory matches the requirements (``NO_MATCH``): waiting
    would never help."""

    status = "NO_MATCH"


class NoneFree(AlreadyClaimed):
    """Every pool resource matching the requirements is held and the request did not wait
    (``NONE_FREE``)."""

    status = "NONE_FREE"


class InvalidRequirements(LeaseError):
    """The pool requirements use an operator or shape the broker does not support
    (``INVALID_REQUIREMENTS``)."""

    status = "INVALID_REQUIREMENTS"


class LeaseLost(RoostError):
    """A lease this client held has ended; ``reason`` says why (``taken``, ``disconnected``...).

    For a take, ``by`` is the taker's holder entry and ``why`` the reason the taker gave.
    """

    def __init__(
        self, reason: str, by: dict[str, Any] | None = None, why: str | None = None
    ) -> None:
        super().__init__(reason)
        self.reason = reason
        self.by = by
        self.why = why

    def __str__(self) -> str:
        return lost_text(self.reason, self.by, self.why)


def lost_text(reason: str, by: dict[str, Any] | None, why: str | None) -> str:
    """Why a lease was lost, in words: ``taken by NAME (...): "why"`` for a take."""
    text = reason
    if by:
        text += f" by {describe_holder(by)}"
    if why:
        text += f': "{why}"'
    return text


class LeasesUnsupported(RoostError):
    """The broker does not offer the lease extension (a plain ESHET server)."""


class LoginFailed(RoostError):
    """The broker refused this client's login: wrong user name or password, password login not
    allowed on that listener, or a login required and none given. Not retried."""


class AuthUnsupported(LoginFailed):
    """A user was given, but the broker does not offer logins (a plain ESHET server, or a
    roost broker without the auth extension). Not retried."""


_BY_STATUS: dict[str, type[LeaseError]] = {
    cls.status: cls
    for cls in (
        AlreadyClaimed,
        LeaseWaitTimeout,
        NotHolder,
        NotWaiting,
        NoLease,
        Older,
        Revoked,
        WrongEpoch,
        InvalidLease,
        Unmanaged,
        TimeoutRequired,
        InvalidResource,
        NotPermitted,
        ResourceLimit,
        WaitLimit,
        InvalidKey,
        NotLocked,
        NotSaved,
        NoMatch,
        NoneFree,
        InvalidRequirements,
    )
}


def no_lease_reply(text: str) -> dict[str, Any]:
    """The reply map for the plain error ``NO_LEASE`` (or ``NO_LEASE: who holds it``)."""
    rest = text.partition(":")[2].strip()
    return {"status": "NO_LEASE", "reason": rest} if rest else {"status": "NO_LEASE"}


def lease_error_for(reply: dict[str, Any]) -> LeaseError:
    """Build the exception for an extension error reply map, by its ``status``."""
    status = reply.get("status")
    cls = _BY_STATUS.get(status, LeaseError) if isinstance(status, str) else LeaseError
    return cls(reply)


class SubtreeUnsupported(RoostError):
    """The broker does not offer subtree subscriptions (a plain ESHET server)."""


class StoreError(RoostError):
    """The broker's store of values (in its state dir) cannot be read or written; the message
    names the file. A broker refuses to start rather than drop stored values it cannot read."""
