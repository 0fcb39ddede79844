"""The auth sections of the configuration file: ``[users]``, ``users_file``, ``[groups]`` and
``[[acl]]``, and the settings the broker gets from them.

Rules of this module:

- Every parser checks every key and raises :class:`~roost.errors.ConfigError` naming the file,
  line and key (through the config's ``Where``).
- :func:`auth_settings` merges the sections of one parsed file with the users file it names;
  the broker calls it again on reload, so a reload sees exactly what a restart would.
"""

from __future__ import annotations

import os
import tomllib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final, Protocol

from roost.broker.auth.acl import EVERYBODY, PERMISSIONS, Pattern, Rule, compile_pattern
from roost.broker.auth.users import USER_NAME, Users, valid_hash, valid_user_name
from roost.errors import ConfigError

__all__ = (
    "DEFAULT_LOGIN_DELAY",
    "AuthSettings",
    "from_sections",
    "parse_acl",
    "parse_groups",
    "parse_users",
    "parse_users_file",
    "read_users_file",
)

#: Seconds a failed login waits before its reply (doubling with each failure on a connection).
DEFAULT_LOGIN_DELAY: Final = 1.0


class _Where(Protocol):
    @property
    def path(self) -> str: ...

    def sub(self, name: str | int) -> Any: ...

    def error(self, problem: str, key: str | None = None) -> ConfigError: ...

    def table(self, value: object, known: Sequence[str]) -> Mapping[str, Any]: ...

    def string(self, table: Mapping[str, Any], key: str, default: str | None = None) -> str: ...


@dataclass(frozen=True, slots=True)
class AuthSettings:
    """Users, groups and rules of one broker.

    Attributes:
        users: the users and their groups.
        rules: the access rules; none at all means no access control.
        login_delay: seconds before a failed login is answered (doubles per failure).
        reload: re-reads the settings from their files (``None``: nothing to reload from).
    """

    users: Users = field(default_factory=Users)
    rules: tuple[Rule, ...] = ()
    login_delay: float = DEFAULT_LOGIN_DELAY
    reload: Callable[[], AuthSettings] | None = field(default=None, compare=False)


def parse_users(value: object, where: _Where) -> dict[str, str]:
    """``[users]``: ``name = "$argon2id$..."`` per user (written by ``roost passwd``)."""
    if not isinstance(value, dict):
        raise where.error(f"must be a table of user = hash, not {value!r}")
    out: dict[str, str] = {}
    for name, hashed in value.items():
        if not valid_user_name(name):
            raise where.error(
                f"bad user name (expected {USER_NAME.pattern}, not 'anonymous')", name
            )
        if not valid_hash(hashed):
            raise where.error(
                "must be an argon2id hash ($argon2id$...); make one with roost passwd", name
            )
        out[name] = hashed
    return out


def parse_users_file(value: object, where: _Where) -> str:
    """``users_file = "users.toml"``: a TOML file with a ``[users]`` table, relative to the
    configuration file."""
    if not isinstance(value, str) or not value:
        raise where.error(f"must be a file name, not {value!r}")
    return os.path.join(os.path.dirname(os.path.abspath(where.path)), value)


def read_users_file(path: str) -> dict[str, str]:
    """Read the ``[users]`` table of a users file (a missing file has no users).

    Raises:
        ConfigError: unreadable, not TOML, another table than ``[users]``, or a bad entry.
    """
    try:
        with open(path, "rb") as f:
            data = tomllib.load(f)
    except FileNotFoundError:
        return {}
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise ConfigError(path, None, f"cannot read users: {exc}") from exc
    for key in data:
        if key != "users":
            raise ConfigError(path, key, "a users file holds only a [users] table")
    return parse_users(data.get("users", {}), _FileWhere(path, "users"))


@dataclass(frozen=True, slots=True)
class _FileWhere:
    path: str
    key: str

    def sub(self, name: str | int) -> _FileWhere:
        return _FileWhere(self.path, f"{self.key}.{name}")

    def error(self, problem: str, key: str | None = None) -> ConfigError:
        return ConfigError(self.path, self.key if key is None else f"{self.key}.{key}", problem)

    def table(self, value: object, known: Sequence[str]) -> Mapping[str, Any]:
        raise NotImplementedError

    def string(self, table: Mapping[str, Any], key: str, default: str | None = None) -> str:
        raise NotImplementedError


def parse_groups(value: object, where: _Where) -> dict[str, frozenset[str]]:
    """``[groups]``: ``name = ["user", ...]``."""
    if not isinstance(value, dict):
        raise where.error(f"must be a table of group = [users], not {value!r}")
    out: dict[str, frozenset[str]] = {}
    for name, members in value.items():
        if USER_NAME.fullmatch(name) is None:
            raise where.error(f"bad group name (expected {USER_NAME.pattern})", name)
        if not isinstance(members, list) or not all(
            isinstance(x, str) and (valid_user_name(x) or x == "anonymous") for x in members
        ):
            raise where.error("must be a list of user names", name)
        out[name] = frozenset(members)
    return out


_RULE_KEYS: Final = ("user", "group", "paths", "allow")


def parse_acl(value: object, where: _Where) -> tuple[Rule, ...]:
    """``[[acl]]``: each table has ``user`` (a name, ``anonymous`` or ``*``) or ``group``,
    ``paths`` (patterns) and ``allow`` (permissions, or ``["all"]``)."""
    if not isinstance(value, list):
        raise where.error("must be [[acl]] tables")
    rules: list[Rule] = []
    for i, item in enumerate(value):
        at = where.sub(i)
        table = at.table(item, _RULE_KEYS)
        if ("user" in table) == ("group" in table):
            raise at.error("needs exactly one of user or group")
        if "user" in table:
            subject = at.string(table, "user")
            if subject not in (EVERYBODY, "anonymous") and not valid_user_name(subject):
                raise at.error(f"bad user name {subject!r}", "user")
        else:
            group = at.string(table, "group")
            if USER_NAME.fullmatch(group) is None:
                raise at.error(f"bad group name {group!r}", "group")
            subject = "@" + group
        patterns: list[Pattern] = []
        paths = table.get("paths")
        if not isinstance(paths, list) or not paths:
            raise at.error("must be a non-empty list of path patterns", "paths")
        for text in paths:
            try:
                patterns.append(compile_pattern(text if isinstance(text, str) else repr(text)))
            except ValueError as exc:
                raise at.error(str(exc), "paths") from None
        allow = table.get("allow")
        if not isinstance(allow, list) or not allow:
            raise at.error(f"must be a non-empty list of: all, {', '.join(PERMISSIONS)}", "allow")
        perms: set[str] = set()
        for perm in allow:
            if perm == "all":
                perms.update(PERMISSIONS)
            elif perm in PERMISSIONS:
                perms.add(perm)
            else:
                raise at.error(
                    f"unknown permission {perm!r} (expected all, {', '.join(PERMISSIONS)})",
                    "allow",
                )
        rules.append(Rule(subject, tuple(patterns), frozenset(perms)))
    return tuple(rules)


def from_sections(get: Callable[[str], Any]) -> AuthSettings:
    """The auth settings of a parsed configuration file (``get``: its section lookup, as
    ``BrokerConfig.get``): ``[users]`` merged with the users file (the file wins), ``[groups]``
    and ``[[acl]]``.

    Raises:
        ConfigError: the users file is unreadable or wrong.
    """
    hashes: dict[str, str] = dict(get("users") or {})
    users_file = get("users_file")
    if users_file is not None:
        hashes.update(read_users_file(users_file))
    groups = get("groups") or {}
    rules = get("acl") or ()
    return AuthSettings(users=Users(hashes, groups), rules=tuple(rules))
