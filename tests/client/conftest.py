"""Client tests run on both anyio backends, against a real broker on a loopback port."""

from __future__ import annotations

import pytest


@pytest.fixture(params=["asyncio", "trio"])
def anyio_backend(request: pytest.FixtureRequest) -> str:
    """Every async client test runs once on asyncio and once on trio."""
    backend: str = request.param
    return backend
