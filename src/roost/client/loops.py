"""The event loop of a thread a client starts for itself.

Rules of this module:

- A :class:`~roost.client.SyncClient` (roost's, and ``roost.eshet``'s) owns the loop that runs
  in its thread, so it takes uvloop where uvloop is installed (it is a dependency wherever it
  builds) and asyncio's own loop otherwise; both are asyncio loops to everything that runs on
  them. A ``Client`` runs in the loop of the program that uses it and never chooses.
"""

from __future__ import annotations

import asyncio
import importlib
from typing import Any

__all__ = ("new_loop",)


def new_loop() -> asyncio.AbstractEventLoop:
    """A new event loop: uvloop's when it can be imported, else asyncio's."""
    try:
        uvloop: Any = importlib.import_module("uvloop")
    except ImportError:
        return asyncio.new_event_loop()
    loop: asyncio.AbstractEventLoop = uvloop.new_event_loop()
    return loop
