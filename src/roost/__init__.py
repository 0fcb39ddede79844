"""roost: an asyncio coordination broker over msgpack TCP, wire-compatible with ESHET.

The public surface is listed in ``__all__``. Heavy modules load on first use, so that
``import roost`` stays cheap for command-line clients.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from roost.errors import (
    ConnectionClosed,
    Disconnected,
    LeaseError,
    LeaseLost,
    LeasesUnsupported,
    ProtocolError,
    RemoteError,
    RoostError,
)
from roost.protocol.messages import Unknown, UnknownType

if TYPE_CHECKING:
    from roost.broker import Broker, serve
    from roost.client import Client, SyncClient

__version__ = "0.1.0"

__all__ = (
    "Broker",
    "Client",
    "ConnectionClosed",
    "Disconnected",
    "LeaseError",
    "LeaseLost",
    "LeasesUnsupported",
    "ProtocolError",
    "RemoteError",
    "RoostError",
    "SyncClient",
    "Unknown",
    "UnknownType",
    "__version__",
    "serve",
)

_LAZY = {
    "Broker": "roost.broker",
    "serve": "roost.broker",
    "Client": "roost.client",
    "SyncClient": "roost.client",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'roost' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value
