"""The broker fuzzer, bounded: random valid and invalid traffic from several clients never
stops a witness client from being served, and never logs an unexpected error. The long run is
``make fuzz MINUTES=10`` (``python -m benchmarks fuzz``)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings

from tests.broker.fuzzer import Fuzzer, Step, fuzz_broker, steps


@pytest.fixture(scope="module")
def fuzzer() -> Iterator[Fuzzer]:
    """One broker for every example of the module."""
    with fuzz_broker() as fuzz:
        yield fuzz


@settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(example=steps)
def test_random_traffic_never_hurts_the_witness(
    fuzzer: Fuzzer, example: tuple[list[Any], list[Step]]
) -> None:
    """Every example: the witness is answered within 5 s and nothing is logged at ERROR."""
    fuzzer.run(example)
