"""The pure reconnect policy: backoff caps, full jitter, retryable versus fatal failures."""

from __future__ import annotations

import itertools

import anyio
import pytest

from roost.client.reconnect import Backoff, is_retryable
from roost.errors import (
    ConnectionClosed,
    Disconnected,
    FramingError,
    LocalProtocolError,
    RemoteError,
)


def test_cap_doubles_from_initial_to_maximum() -> None:
    """The cap starts at 0.1 s, doubles per attempt and stops at 10 s."""
    backoff = Backoff()
    caps = [backoff.cap(n) for n in range(10)]
    assert caps[:4] == pytest.approx([0.1, 0.2, 0.4, 0.8])
    assert caps[-1] == 10.0
    assert all(a <= b for a, b in itertools.pairwise(caps))
    assert backoff.cap(10_000) == 10.0


def test_delay_is_full_jitter_over_the_cap() -> None:
    """The delay is rand() times the cap: 0 at rand 0, just under the cap at rand near 1."""
    backoff = Backoff(initial=0.5, maximum=4.0)
    assert backoff.delay(2, rand=lambda: 0.0) == 0.0
    assert backoff.delay(2, rand=lambda: 0.5) == pytest.approx(1.0)
    assert backoff.delay(30, rand=lambda: 0.999) == pytest.approx(3.996)


def test_default_random_delays_stay_within_cap() -> None:
    """Random delays never exceed the cap of their attempt."""
    backoff = Backoff()
    for attempt in range(12):
        for _ in range(50):
            assert 0.0 <= backoff.delay(attempt) <= backoff.cap(attempt)


@pytest.mark.parametrize(
    ("initial", "maximum", "factor"), [(0.0, 1.0, 2.0), (2.0, 1.0, 2.0), (0.1, 1.0, 0.5)]
)
def test_bad_backoff_settings_are_refused(initial: float, maximum: float, factor: float) -> None:
    """Non-positive initial, maximum below initial, or shrinking factor raise ValueError."""
    with pytest.raises(ValueError):
        Backoff(initial, maximum, factor)


@pytest.mark.parametrize(
    "exc",
    [
        ConnectionRefusedError(),
        OSError("unreachable"),
        TimeoutError(),
        Disconnected(),
        ConnectionClosed(),
        FramingError("bad sync byte"),
        anyio.EndOfStream(),
        anyio.BrokenResourceError(),
    ],
)
def test_network_failures_are_retryable(exc: BaseException) -> None:
    """Lost, refused, timed-out or garbled connections are worth another attempt."""
    assert is_retryable(exc)


@pytest.mark.parametrize(
    "exc", [LocalProtocolError("ours"), TypeError("bug"), RemoteError("x"), KeyError("k")]
)
def test_local_mistakes_are_fatal(exc: BaseException) -> None:
    """Our own protocol misuse and programming errors stop the client."""
    assert not is_retryable(exc)
