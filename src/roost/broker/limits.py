"""What one client may make the broker hold: the ``[limits]`` settings and their parser.

Rules of this module:

- One frozen :class:`Limits` value is decided at start-up (``[limits]`` of the configuration
  file, then the command-line flags over it) and handed to the broker; nothing changes it later.
- Each limit is checked where the resource is created (a registration, a subscription, an
  accepted connection, a connection's deadlines), never per message.
- Every limit has an error a client can see, named in docs/reference/limits.md: path limits
  give ``invalid_path`` (as an over-long or malformed path does in ESHET), count limits give
  ``too_many_registrations`` (this connection) or ``tree_full`` (the whole broker).
- No I/O.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, fields
from typing import Any, Final, Protocol

__all__ = (
    "TOO_MANY_REGISTRATIONS",
    "TREE_FULL",
    "Limits",
    "parse_limits",
)

#: Error reply: this connection has ``max_per_connection`` registrations and subscriptions.
TOO_MANY_REGISTRATIONS: Final = "too_many_registrations"
#: Error reply: the tree holds ``max_tree_entries`` nodes and directories.
TREE_FULL: Final = "tree_full"

# Keys whose value is a number of seconds (0 turns the deadline off); the rest are counts.
_SECONDS: Final = frozenset(
    {"hello_timeout", "frame_timeout", "max_idle", "accept_backoff", "http_idle"}
)
# Counts where 0 means "no limit".
_ZERO_OFF: Final = frozenset({"max_connections", "max_http_connections"})


class Where(Protocol):
    """What the parser needs of :class:`roost.broker.config.Where` (the file and key)."""

    def table(self, value: object, known: Iterable[str]) -> Mapping[str, Any]:
        """``value`` as a table whose keys are all among ``known``."""
        ...

    def integer(self, table: Mapping[str, Any], key: str, default: int, minimum: int) -> int:
        """An integer >= ``minimum``."""
        ...

    def seconds(self, table: Mapping[str, Any], key: str, default: float, *, zero: bool) -> float:
        """A finite number of seconds."""
        ...


@dataclass(frozen=True, slots=True)
class Limits:
    """The broker's resource limits; defaults are generous for real use.

    Attributes:
        max_path_length: longest path, in characters (``invalid_path`` beyond).
        max_path_depth: most segments in a path (``invalid_path`` beyond).
        max_tree_entries: nodes plus directories in the whole tree (``tree_full``).
        max_per_connection: registrations plus listens and observes of one connection
            (``too_many_registrations``).
        max_entries_per_connection: tree entries (nodes and the directories their paths
            need) one connection's registrations and subscriptions may create
            (``too_many_registrations``); deep paths cost one per new segment.
        max_connections: open connections; one more is closed at accept (0: no limit).
        hello_timeout: seconds a new connection has to complete its hello (0: none).
        frame_timeout: seconds a started frame has to arrive whole (0: none).
        max_idle: seconds of silence after which a connection that asked for timeout 0 is
            closed (0: never).
        accept_backoff: seconds accepting pauses when the process runs out of descriptors.
        max_http_body: largest HTTP request body the gateway reads, in bytes (413 beyond).
        max_http_requests: HTTP ``/call``, ``/get`` and ``/set`` requests waiting for their
            answer at once (503 for one more).
        max_http_connections: open TCP connections to the gateway's HTTP port; one more is
            answered 503 and closed at accept (0: no limit).
        http_idle: seconds an HTTP connection may stay without a request in progress (from
            its accept, or since its last answer) before it is closed (0: never).
    """

    max_path_length: int = 1024
    max_path_depth: int = 32
    max_tree_entries: int = 1_000_000
    max_per_connection: int = 10_000
    max_entries_per_connection: int = 50_000
    max_connections: int = 10_000
    hello_timeout: float = 10.0
    frame_timeout: float = 30.0
    max_idle: float = 3600.0
    accept_backoff: float = 1.0
    max_http_body: int = 1024 * 1024
    max_http_requests: int = 1024
    max_http_connections: int = 1024
    http_idle: float = 75.0

    def __post_init__(self) -> None:
        for f in fields(self):
            value = getattr(self, f.name)
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                raise ValueError(f"{f.name} must be a number, not {value!r}")
            low = 0 if f.name in _SECONDS or f.name in _ZERO_OFF else 1
            if not value >= low or value == float("inf"):
                raise ValueError(f"{f.name} must be a finite number >= {low}, not {value!r}")
        if self.accept_backoff <= 0:
            raise ValueError("accept_backoff must be > 0")

    def replace(self, **changes: Any) -> Limits:
        """A copy with the given limits changed (``None`` values are ignored)."""
        current = {f.name: getattr(self, f.name) for f in fields(self)}
        current.update({k: v for k, v in changes.items() if v is not None})
        return Limits(**current)


def parse_limits(value: object, where: Where) -> Limits:
    """Parse the ``[limits]`` table of the configuration file.

    Raises:
        ConfigError: an unknown key, or a value of the wrong type or out of range.
    """
    names = [f.name for f in fields(Limits)]
    table = where.table(value, names)
    defaults = Limits()
    out: dict[str, Any] = {}
    for name in names:
        default = getattr(defaults, name)
        if name in _SECONDS:
            out[name] = where.seconds(table, name, default, zero=name != "accept_backoff")
        else:
            out[name] = where.integer(table, name, default, 0 if name in _ZERO_OFF else 1)
    return Limits(**out)
