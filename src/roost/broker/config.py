"""The broker's configuration file: ``roost serve --config roost.toml``.

Rules of this module:

- One TOML file, one table per concern: ``[leases]`` (what ``--lease-config`` holds) and the
  sections that other parts of the broker register in :data:`SECTIONS`. Each section has one
  parser, ``parse(table, where) -> settings``, that checks every key and returns an immutable
  value; the broker gets the parsed values, never the raw TOML.
- Reading is strict: an unknown section or key, a wrong type or a value out of range is a
  :class:`~roost.errors.ConfigError` naming the file, the line and the key. A typo must never
  fall back to a default silently.
- Command-line flags override the file; that merge happens in ``roost serve``, not here.
- No I/O besides reading the file once.
"""

from __future__ import annotations

import math
import os
import re
import tomllib
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Final

from roost.broker.auth.settings import parse_acl, parse_groups, parse_users, parse_users_file
from roost.broker.leases.config import LeaseConfigError, parse_lease_config
from roost.broker.leases.lockroutes import parse_locks_section
from roost.broker.leases.poolroutes import parse_pools_section
from roost.broker.limits import parse_limits
from roost.broker.listeners import parse_listeners
from roost.broker.storefile import parse_store_section
from roost.errors import ConfigError

__all__ = (
    "SECTIONS",
    "BrokerConfig",
    "HttpConfig",
    "Where",
    "load_config",
    "parse_config",
)

_HEADER: Final = re.compile(r"^\s*(\[\[?)\s*([^\]]+?)\s*\]\]?\s*(?:#.*)?$")
_KEY: Final = re.compile(r"""^\s*("[^"]*"|'[^']*'|[A-Za-z0-9_.-]+)\s*=""")


def _line_index(text: str) -> dict[str, int]:
    """Dotted key -> line number (1-based) for every table header and key in ``text``.

    Arrays of tables are numbered as the decoded data is (``acl[0]``, ``acl[1]``...). Keys that
    are only implied (inline tables, dotted keys) fall back to their table's line.
    """
    index: dict[str, int] = {}
    counts: dict[str, int] = {}
    table = ""
    for number, line in enumerate(text.splitlines(), 1):
        header = _HEADER.match(line)
        if header is not None:
            name = ".".join(part.strip().strip("\"'") for part in header.group(2).split("."))
            if header.group(1) == "[[":
                n = counts.get(name, 0)
                counts[name] = n + 1
                table = f"{name}[{n}]"
            else:
                table = name
            index.setdefault(table, number)
            continue
        key = _KEY.match(line)
        if key is not None:
            name = ".".join(p.strip().strip("\"'") for p in key.group(1).split("."))
            index.setdefault(f"{table}.{name}" if table else name, number)
    return index


@dataclass(frozen=True, slots=True)
class Where:
    """Where a section's parser is reading: the file, and the dotted key of the table.

    Parsers raise :meth:`error` for any problem; it finds the line of the key in the file.
    """

    path: str
    key: str
    lines: Mapping[str, int] = field(default_factory=dict, repr=False, compare=False)

    def sub(self, name: str | int) -> Where:
        """The place of a key (``name``) or an array item (an ``int``) inside this table."""
        key = f"{self.key}[{name}]" if isinstance(name, int) else f"{self.key}.{name}"
        return Where(self.path, key, self.lines)

    def line(self, key: str | None = None) -> int | None:
        """The line of ``key`` (relative to this table) or of the table itself, if known."""
        full = self.key if key is None else f"{self.key}.{key}"
        while full:
            if full in self.lines:
                return self.lines[full]
            full = full.rpartition(".")[0] if "." in full else ""
        return None

    def error(self, problem: str, key: str | None = None) -> ConfigError:
        """A :class:`ConfigError` for ``key`` (relative to this table; ``None``: the table)."""
        full = self.key if key is None else f"{self.key}.{key}"
        return ConfigError(self.path, full, problem, self.line(key))

    # Checks most sections need; each returns the value or raises :meth:`error`.

    def table(self, value: object, known: Iterable[str]) -> Mapping[str, Any]:
        """``value`` as a table whose keys are all among ``known``."""
        if not isinstance(value, dict):
            raise self.error(f"must be a table, not {value!r}")
        allowed = tuple(known)
        for key in value:
            if key not in allowed:
                raise self.error(f"unknown key (expected one of: {', '.join(allowed)})", key)
        return value

    def integer(self, table: Mapping[str, Any], key: str, default: int, minimum: int) -> int:
        """An integer >= ``minimum``; ``default`` when absent."""
        value = table.get(key, default)
        if isinstance(value, int) and not isinstance(value, bool) and value >= minimum:
            return value
        raise self.error(f"must be an integer >= {minimum}, not {value!r}", key)

    def seconds(self, table: Mapping[str, Any], key: str, default: float, *, zero: bool) -> float:
        """A finite number of seconds, > 0 (or >= 0 when ``zero`` is allowed)."""
        value = table.get(key, default)
        if (
            isinstance(value, (int, float))
            and not isinstance(value, bool)
            and math.isfinite(value)
            and (value > 0 or (zero and value == 0))
        ):
            return float(value)
        bound = ">= 0" if zero else "> 0"
        raise self.error(f"must be a finite number of seconds {bound}, not {value!r}", key)

    def boolean(self, table: Mapping[str, Any], key: str, default: bool) -> bool:
        """``true`` or ``false``."""
        value = table.get(key, default)
        if isinstance(value, bool):
            return value
        raise self.error(f"must be true or false, not {value!r}", key)

    def string(self, table: Mapping[str, Any], key: str, default: str | None = None) -> str:
        """A string; required when ``default`` is ``None``."""
        value = table.get(key, default)
        if value is None:
            raise self.error("is required", key)
        if isinstance(value, str):
            return value
        raise self.error(f"must be a string, not {value!r}", key)


def _parse_leases(value: object, where: Where) -> Any:
    table = where.table(value, ("ttl_max", "max_resources", "max_waits", "max_leases", "resource"))
    try:
        return parse_lease_config(table, where.path)
    except LeaseConfigError as exc:
        key = f"{where.key}.{exc.key}" if exc.key else where.key
        relative = exc.key
        raise LeaseConfigError(where.path, key, exc.problem, where.line(relative)) from exc


@dataclass(frozen=True, slots=True)
class HttpConfig:
    """The ``[http]`` section: the gateway's port (0: no gateway)."""

    port: int


def _parse_http(value: object, where: Where) -> HttpConfig:
    table = where.table(value, ("port",))
    port = where.integer(table, "port", 11237, 0)
    if port > 65535:
        raise where.error(f"must be a port number from 0 to 65535, not {port}", "port")
    return HttpConfig(port)


#: Section name -> parser. A parser checks its table and returns the section's settings.
SECTIONS: dict[str, Callable[[object, Where], Any]] = {
    "leases": _parse_leases,
    "http": _parse_http,
    "store": parse_store_section,
    "locks": parse_locks_section,
    "pools": parse_pools_section,
    "limits": parse_limits,
    "listener": parse_listeners,
    "users": parse_users,
    "users_file": parse_users_file,
    "groups": parse_groups,
    "acl": parse_acl,
}


@dataclass(frozen=True, slots=True)
class BrokerConfig:
    """A parsed configuration file: the settings of each section present in it.

    Attributes:
        path: the file it was read from.
        sections: section name -> the value its parser returned (absent sections are missing).
    """

    path: str
    sections: Mapping[str, Any]

    def get(self, name: str, default: Any = None) -> Any:
        """The parsed settings of section ``name``, or ``default`` if the file has none."""
        return self.sections.get(name, default)


def parse_config(text: str, path: str = "<config>") -> BrokerConfig:
    """Parse the text of a configuration file.

    Raises:
        ConfigError: not valid TOML (with line and column), an unknown section, or a section's
            parser refused a key.
    """
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        line = re.search(r"line (\d+)", str(exc))
        raise ConfigError(
            path, None, f"not valid TOML: {exc}", int(line.group(1)) if line else None
        ) from exc
    lines = _line_index(text)
    sections: dict[str, Any] = {}
    for name, value in data.items():
        parser = SECTIONS.get(name)
        where = Where(path, name, lines)
        if parser is None:
            known = ", ".join(f"[{s}]" for s in sorted(SECTIONS))
            raise where.error(f"unknown section (expected one of: {known})")
        sections[name] = parser(value, where)
    return BrokerConfig(path, sections)


def load_config(path: str | os.PathLike[str]) -> BrokerConfig:
    """Read and parse the configuration file at ``path``.

    Raises:
        ConfigError: the file cannot be read, or see :func:`parse_config`.
    """
    source = os.fspath(path)
    try:
        with open(source, encoding="utf-8") as f:
            text = f.read()
    except (OSError, UnicodeDecodeError) as exc:
        reason = getattr(exc, "strerror", None) or str(exc)
        raise ConfigError(source, None, f"cannot read: {reason}") from exc
    return parse_config(text, source)
