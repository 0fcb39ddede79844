"""The roost client library: an ESHET-compatible async client with leases, and a blocking twin.

``Client`` runs on asyncio and trio (through anyio); ``SyncClient`` offers the same verbs as
blocking methods for scripts and notebooks.
"""

from roost.client.client import Client, EventEmitter, StateHandle
from roost.client.config import TimeoutConfig
from roost.client.leases import Lease, LeaseValidator, LeaseWallet, WalletEntry
from roost.client.reconnect import Backoff
from roost.client.streams import Subscription
from roost.client.sync import SyncClient, SyncLease, SyncSubscription
from roost.protocol.messages import Unknown

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
