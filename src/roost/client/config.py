"""Client settings: timeouts, the broker address and path resolution.

Rules of this module:

- Pure values and functions; the only outside input is the environment, read by
  :func:`default_server` when asked.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Final

__all__ = (
    "DEFAULT_PORT",
    "TimeoutConfig",
    "default_server",
    "normalise_base",
    "parse_server",
    "resolve_path",
)

#: The ESHET native port (protocol.md §1).
DEFAULT_PORT: Final = 11236


@dataclass(frozen=True, slots=True)
class TimeoutConfig:
    """Liveness settings of one client connection (protocol.md §8, §12).

    Args:
        idle_ping: send a ping after this many seconds without sending anything.
        server_timeout: declared in hello; the broker drops this client after this many seconds
            without receiving anything from it (0 disables it, and then leases are refused).
            A whole number of seconds, at most 65535.
        ping_timeout: a ping without answer after this many seconds means the connection is
            dead; the client drops it and reconnects.

    Raises:
        ValueError: a non-positive ``idle_ping`` or ``ping_timeout``, or a ``server_timeout``
            outside 0..65535.
    """

    idle_ping: float = 15.0
    server_timeout: int = 30
    ping_timeout: float = 5.0

    def __post_init__(self) -> None:
        if self.idle_ping <= 0 or self.ping_timeout <= 0:
            raise ValueError("idle_ping and ping_timeout must be positive")
        if (
            not 0 <= self.server_timeout <= 0xFFFF
            or int(self.server_timeout) != self.server_timeout
        ):
            raise ValueError("server_timeout must be a whole number of seconds in 0..65535")


def default_server() -> str:
    """``ROOST_SERVER``, else ``ESHET_SERVER``, else ``localhost:11236``."""
    return os.environ.get("ROOST_SERVER") or os.environ.get("ESHET_SERVER") or "localhost"


def parse_server(server: str) -> tuple[str, int]:
    """Split ``host[:port]`` (``[v6addr]:port`` for IPv6) into host and port.

    Raises:
        ValueError: an empty host, or a port that is not an integer in 1..65535.
    """
    text = server.strip()
    host, port = text, DEFAULT_PORT
    if text.startswith("["):
        end = text.find("]")
        if end < 0:
            raise ValueError(f"bad server address {server!r}")
        host, rest = text[1:end], text[end + 1 :]
        if rest:
            if not rest.startswith(":"):
                raise ValueError(f"bad server address {server!r}")
            port = _port(rest[1:], server)
    elif text.count(":") == 1:
        host, port_text = text.split(":")
        port = _port(port_text, server)
    if not host:
        raise ValueError(f"bad server address {server!r}: no host")
    return host, port


def _port(text: str, server: str) -> int:
    try:
        port = int(text)
    except ValueError:
        raise ValueError(f"bad port in server address {server!r}") from None
    if not 0 < port < 0x10000:
        raise ValueError(f"bad port in server address {server!r}")
    return port


def normalise_base(base: str) -> str:
    """Make ``base`` absolute and end with exactly one ``/``."""
    if not base.startswith("/"):
        base = "/" + base
    return base if base.endswith("/") else base + "/"


def resolve_path(base: str, path: str) -> str:
    """An absolute path as is; a relative one appended to ``base`` (which ends with ``/``).

    Validation is the broker's job (it answers ``invalid_path``).
    """
    return path if path.startswith("/") else base + path
