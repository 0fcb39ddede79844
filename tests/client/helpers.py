"""Small helpers shared by the client tests."""

from __future__ import annotations

from typing import Any

import anyio

__all__ = ("WAIT", "Collector", "Counter")

#: Upper bound for anything a test awaits; failures surface as TimeoutError, never a hang.
WAIT = 5.0


class Collector:
    """Collects callback values and lets a test await the n-th one."""

    def __init__(self) -> None:
        self.values: list[Any] = []
        self._changed = anyio.Event()

    def __call__(self, value: Any) -> None:
        self.values.append(value)
        self._changed.set()

    async def wait_for(self, count: int, timeout: float = WAIT) -> list[Any]:
        """Wait until ``count`` values arrived; return all of them."""
        with anyio.fail_after(timeout):
            while len(self.values) < count:
                self._changed = anyio.Event()
                await self._changed.wait()
        return self.values


class Counter:
    """Counts calls of a no-argument hook and lets a test await the n-th one."""

    def __init__(self) -> None:
        self.count = 0
        self.times: list[float] = []
        self._changed = anyio.Event()

    def __call__(self) -> None:
        self.count += 1
        self.times.append(anyio.current_time())
        self._changed.set()

    async def wait_for(self, count: int, timeout: float = WAIT) -> float:
        """Wait until the hook ran ``count`` times; return the time of that call."""
        with anyio.fail_after(timeout):
            while self.count < count:
                self._changed = anyio.Event()
                await self._changed.wait()
        return self.times[count - 1]
