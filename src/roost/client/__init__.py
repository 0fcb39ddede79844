"""The roost client library: an ESHET-compatible async client with leases, and a blocking twin.

``Client`` runs on asyncio and trio (through anyio); ``SyncClient`` offers the same verbs as
blocking methods for scripts and notebooks. The blocking twin loads on first use, so programs
that only use the async client (the ``roost`` command line) do not pay for it at start-up.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from roost.client.client import Client, EventEmitter, StateHandle
from roost.client.config import TimeoutConfig
from roost.client.leases import Lease, LeaseValidator, LeaseWallet, WalletEntry
from roost.client.reconnect import Backoff
from roost.client.streams import Subscription
from roost.protocol.messages import Unknown

if TYPE_CHECKING:
    from roost.client.sync import SyncClient, SyncLease, SyncSubscription

__all__ = (
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
    "Unknown",
    "WalletEntry",
)

_SYNC = frozenset({"SyncClient", "SyncLease", "SyncSubscription"})


def __getattr__(name: str) -> Any:
    if name not in _SYNC:
        raise AttributeError(f"module 'roost.client' has no attribute {name!r}")
    from roost.client import sync  # noqa: PLC0415

    value = getattr(sync, name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})
