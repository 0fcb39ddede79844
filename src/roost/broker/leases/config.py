"""The broker's lease settings, read from a TOML file (``roost serve --lease-config FILE``).

Rules of this module:

- Reading is strict: an unknown key, a wrong type, a value out of range or a repeated resource
  is a :class:`LeaseConfigError` naming the file, the key and what is wrong, in one line. A
  typo must not silently fall back to a default.
- The result is an immutable :class:`LeaseConfig`; nothing here touches the lease table.
- The file is read once, at start-up; no I/O besides that.

A file looks like::

    ttl_max = 3600          # seconds, the largest ttl a lease may ask for
    max_resources = 10000   # resource records the broker keeps at most
    max_waits = 1000        # queued acquires one connection may have at once
    max_leases = 1000       # leases one connection may hold at once

    [[resource]]
    name = "lab/scope"
    max_holders = 3         # shared holders at most; 0 (the default) = unlimited
    takeable = true         # false: lease_take gets NOT_PERMITTED

Every key is optional. With at least one ``[[resource]]`` table only the declared resources
can be leased.
"""

from __future__ import annotations

import math
import os
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Final

from roost.broker.leases.core import (
    DEFAULT_MAX_LEASES,
    DEFAULT_MAX_RESOURCES,
    DEFAULT_MAX_WAITS,
    DEFAULT_TTL_MAX,
)
from roost.broker.leases.types import Declared
from roost.errors import ConfigError
from roost.protocol.tokens import MAX_RESOURCE, RESERVED_SEGMENTS, valid_resource

__all__ = ("LeaseConfig", "LeaseConfigError", "load_lease_config", "parse_lease_config")

_TOP_KEYS: Final = ("ttl_max", "max_resources", "max_waits", "max_leases", "resource")
_RESOURCE_KEYS: Final = ("name", "max_holders", "takeable")


class LeaseConfigError(ConfigError):
    """A lease configuration file or its ``[leases]`` section cannot be used.

    ``str(err)`` is one line: ``FILE: KEY: what is wrong`` (``KEY`` left out when the whole
    file is at fault). ``path``, ``key`` and ``problem`` hold the parts.
    """


@dataclass(frozen=True, slots=True)
class LeaseConfig:
    """Lease settings of one broker (defaults as without a file).

    Attributes:
        resources: the declared resources; empty means every valid name can be leased.
        ttl_max: the largest ``ttl`` a lease may ask for, seconds.
        max_resources: resource records kept at most; idle ones are forgotten to make room
            (``RESOURCE_LIMIT`` when all are in use).
        max_waits: queued acquires one connection may have at once (``WAIT_LIMIT`` beyond).
        max_leases: leases one connection may hold at once (``RESOURCE_LIMIT`` beyond).
        source: the file it was read from, if any.
    """

    resources: tuple[Declared, ...] = ()
    ttl_max: float = DEFAULT_TTL_MAX
    max_resources: int = DEFAULT_MAX_RESOURCES
    max_waits: int = DEFAULT_MAX_WAITS
    max_leases: int = DEFAULT_MAX_LEASES
    source: str | None = field(default=None, compare=False)


def _count(source: str, key: str, value: object, minimum: int) -> int:
    if isinstance(value, int) and not isinstance(value, bool) and value >= minimum:
        return value
    raise LeaseConfigError(source, key, f"must be an integer >= {minimum}, not {value!r}")


def _resource_name(source: str, key: str, value: object) -> str:
    if not isinstance(value, str):
        raise LeaseConfigError(source, key, f"must be a string, not {value!r}")
    if not valid_resource(value):
        reserved = " or ".join(repr(s) for s in sorted(RESERVED_SEGMENTS))
        raise LeaseConfigError(
            source,
            key,
            f"{value!r} is not a resource name (segments of letters, digits and _ joined by "
            f"'/', at most {MAX_RESOURCE} characters, no segment {reserved})",
        )
    return value


def _unknown(source: str, where: str, table: Mapping[str, Any], known: tuple[str, ...]) -> None:
    for key in table:
        if key not in known:
            name = f"{where}.{key}" if where else key
            raise LeaseConfigError(
                source, name, f"unknown key (expected one of: {', '.join(known)})"
            )


def _declared(source: str, items: object) -> tuple[Declared, ...]:
    if not isinstance(items, list):
        raise LeaseConfigError(
            source, "resource", "must be an array of tables, written [[resource]]"
        )
    out: list[Declared] = []
    seen: set[str] = set()
    for i, item in enumerate(items):
        where = f"resource[{i}]"
        if not isinstance(item, dict):
            raise LeaseConfigError(source, where, f"must be a table, not {item!r}")
        _unknown(source, where, item, _RESOURCE_KEYS)
        if "name" not in item:
            raise LeaseConfigError(source, f"{where}.name", "is required")
        name = _resource_name(source, f"{where}.name", item["name"])
        if name in seen:
            raise LeaseConfigError(source, f"{where}.name", f"{name!r} is declared twice")
        seen.add(name)
        max_holders = _count(source, f"{where}.max_holders", item.get("max_holders", 0), 0)
        takeable = item.get("takeable", True)
        if not isinstance(takeable, bool):
            raise LeaseConfigError(
                source, f"{where}.takeable", f"must be true or false, not {takeable!r}"
            )
        out.append(Declared(name, max_holders, takeable))
    return tuple(out)


def parse_lease_config(data: Mapping[str, Any], source: str = "<lease config>") -> LeaseConfig:
    """Check the decoded TOML ``data`` and build the settings.

    Args:
        data: the file's top-level table.
        source: the name errors start with (the file's path).

    Raises:
        LeaseConfigError: an unknown key, a wrong type or range, a bad or repeated resource name.
    """
    _unknown(source, "", data, _TOP_KEYS)
    ttl_max: Any = data.get("ttl_max", DEFAULT_TTL_MAX)
    if (
        not isinstance(ttl_max, (int, float))
        or isinstance(ttl_max, bool)
        or not math.isfinite(ttl_max)
        or ttl_max <= 0
    ):
        raise LeaseConfigError(
            source, "ttl_max", f"must be a finite number of seconds > 0, not {ttl_max!r}"
        )
    return LeaseConfig(
        resources=_declared(source, data.get("resource", [])),
        ttl_max=float(ttl_max),
        max_resources=_count(
            source, "max_resources", data.get("max_resources", DEFAULT_MAX_RESOURCES), 1
        ),
        max_waits=_count(source, "max_waits", data.get("max_waits", DEFAULT_MAX_WAITS), 1),
        max_leases=_count(source, "max_leases", data.get("max_leases", DEFAULT_MAX_LEASES), 1),
        source=source,
    )


def load_lease_config(path: str | os.PathLike[str]) -> LeaseConfig:
    """Read the lease settings from the TOML file at ``path``.

    Raises:
        LeaseConfigError: the file cannot be read, is not valid TOML (the message gives line
            and column), or its content is wrong (see :func:`parse_lease_config`).
    """
    source = os.fspath(path)
    try:
        with open(source, "rb") as f:
            data = tomllib.load(f)
    except OSError as exc:
        raise LeaseConfigError(source, None, f"cannot read: {exc.strerror or exc}") from exc
    except tomllib.TOMLDecodeError as exc:
        raise LeaseConfigError(source, None, f"not valid TOML: {exc}") from exc
    return parse_lease_config(data, source)
