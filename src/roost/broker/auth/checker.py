"""Password checks off the event loop, one at a time.

Rules of this module:

- The only I/O of the auth package: one worker thread runs the argon2id checks (tens of
  milliseconds and 64 MiB each), so the event loop never blocks on one and a burst of logins
  cannot take more memory than one check needs.
- The result comes back on the loop as ``done(ok, now)``; a failed or cancelled check is
  ``False``.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

__all__ = ("PasswordChecker",)


class PasswordChecker:
    """Runs password checks for one broker on its event loop's behalf."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self._pool: ThreadPoolExecutor | None = None

    def submit(self, check: Callable[[], bool], done: Callable[[bool, float], None]) -> None:
        """Run ``check()`` in the worker thread, then ``done(result, now)`` on the loop."""
        loop = self._loop
        if self._pool is None:
            self._pool = ThreadPoolExecutor(1, thread_name_prefix="roost-login")

        def finished(future: asyncio.Future[bool]) -> None:
            ok = not future.cancelled() and future.exception() is None and future.result()
            done(bool(ok), loop.time())

        loop.run_in_executor(self._pool, check).add_done_callback(finished)

    def close(self) -> None:
        """Drop the checks not started yet; idempotent."""
        if self._pool is not None:
            self._pool.shutdown(wait=False, cancel_futures=True)
            self._pool = None
