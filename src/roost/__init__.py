"""roost: an asyncio coordination broker over msgpack TCP, wire-compatible with ESHET.

The public surface is listed in ``__all__`` and documented in ``docs/reference/README.md``.
The client and the broker load on first use, so that ``import roost`` stays cheap for
command-line clients.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from roost._version import __version__
from roost.errors import (
    AlreadyClaimed,
    AuthUnsupported,
    ConfigError,
    ConnectFailed,
    ConnectionClosed,
    Disconnected,
    FramingError,
    InvalidKey,
    InvalidLease,
    InvalidRequirements,
    InvalidResource,
    InvalidValue,
    LeaseError,
    LeaseLost,
    LeasesUnsupported,
    LeaseWaitTimeout,
    LocalProtocolError,
    LoginFailed,
    NoLease,
    NoMatch,
    NoneFree,
    NotHolder,
    NotLocked,
    NotPermitted,
    NotSaved,
    NotWaiting,
    Older,
    ProtocolError,
    RemoteError,
    ResourceLimit,
    Revoked,
    RoostError,
    StoreError,
    SubtreeUnsupported,
    TimeoutRequired,
    Unmanaged,
    WaitLimit,
    WrongEpoch,
)
from roost.protocol.messages import Unknown, UnknownType

if TYPE_CHECKING:
    from roost.broker import Broker, serve
    from roost.client import (
        Backoff,
        Client,
        EventEmitter,
        Lease,
        LeaseValidator,
        LeaseWallet,
        StateHandle,
        Subscription,
        SyncClient,
        SyncLease,
        SyncSubscription,
        TimeoutConfig,
    )

__all__ = (
    "AlreadyClaimed",
    "AuthUnsupported",
    "Backoff",
    "Broker",
    "Client",
    "ConfigError",
    "ConnectFailed",
    "ConnectionClosed",
    "Disconnected",
    "EventEmitter",
    "FramingError",
    "InvalidKey",
    "InvalidLease",
    "InvalidRequirements",
    "InvalidResource",
    "InvalidValue",
    "Lease",
    "LeaseError",
    "LeaseLost",
    "LeaseValidator",
    "LeaseWaitTimeout",
    "LeaseWallet",
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
    "StateHandle",
    "StoreError",
    "Subscription",
    "SubtreeUnsupported",
    "SyncClient",
    "SyncLease",
    "SyncSubscription",
    "TimeoutConfig",
    "TimeoutRequired",
    "Unknown",
    "UnknownType",
    "Unmanaged",
    "WaitLimit",
    "WrongEpoch",
    "__version__",
    "serve",
)

_CLIENT = (
    "Backoff",
    "Client",
    "EventEmitter",
    "Lease",
    "LeaseValidator",
    "LeaseWallet",
    "StateHandle",
    "Subscription",
    "SyncClient",
    "SyncLease",
    "SyncSubscription",
    "TimeoutConfig",
)
_LAZY = {
    "Broker": "roost.broker",
    "serve": "roost.broker",
    **dict.fromkeys(_CLIENT, "roost.client"),
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'roost' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})
