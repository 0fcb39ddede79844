"""eshet.py's client API on roost's client: change ``eshet`` to ``roost.eshet`` in the imports.

``from roost.eshet import Client, TimeoutConfig, Unknown`` and
``from roost.eshet.sync_client import SyncClient`` give the classes of the same names with
eshet.py's behaviour (a client that connects in the background from its constructor, callbacks
whose coroutines run in tasks, a blocking client returning ``concurrent.futures.Future``), on
roost's faster connection engine. They work against roost and against any ESHET broker.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from roost.eshet.client import Client
from roost.eshet.exceptions import Disconnected, ErrorValue, ESHETException
from roost.eshet.protocol import TimeoutConfig
from roost.protocol.messages import Unknown

if TYPE_CHECKING:
    from roost.eshet.sync_client import SyncClient

__all__ = (
    "Client",
    "Disconnected",
    "ESHETException",
    "ErrorValue",
    "SyncClient",
    "TimeoutConfig",
    "Unknown",
)


def __getattr__(name: str) -> Any:
    if name != "SyncClient":
        raise AttributeError(f"module 'roost.eshet' has no attribute {name!r}")
    from roost.eshet.sync_client import SyncClient  # noqa: PLC0415

    globals()[name] = SyncClient
    return SyncClient


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})
