"""The long run of the broker fuzzer (tests/broker/fuzzer.py): ``python -m benchmarks fuzz`` or
``make fuzz MINUTES=10``.

Runs hypothesis examples in batches of 200 with fresh seeds until ``MINUTES`` (environment,
default 1; 0.2 with ``--quick``) have passed, against one broker (a new one after a failure).
Prints the minutes run, examples, examples per second and every failure found (its first
line; hypothesis prints the falsifying example above it). Exits non-zero if one was found.
"""

from __future__ import annotations

import os
import sys
import time

from hypothesis import HealthCheck, given, seed, settings
from tests.broker.fuzzer import Fuzzer, fuzz_broker, steps

from benchmarks.common import Table

__all__ = ("run",)

BATCH = 200


def _batch(fuzzer: Fuzzer, number: int) -> None:
    @seed(number)
    @settings(
        max_examples=BATCH,
        deadline=None,
        database=None,
        suppress_health_check=list(HealthCheck),
    )
    @given(example=steps)
    def batch(example: object) -> None:
        fuzzer.run(example)  # type: ignore[arg-type]

    batch()


def run(quick: bool = False) -> None:
    """Fuzz for ``MINUTES`` and print the table; raise SystemExit(1) after failures."""
    minutes = float(os.environ.get("MINUTES", "0.2" if quick else "1"))
    failures: list[str] = []
    examples = 0
    started = time.perf_counter()
    until = started + minutes * 60
    number = int(time.time())
    while time.perf_counter() < until:
        with fuzz_broker() as fuzzer:
            try:
                while time.perf_counter() < until:
                    number += 1
                    _batch(fuzzer, number)
            except Exception as exc:  # a failure found: report it, go on with a new broker
                first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
                failures.append(f"seed {number}: {first}")
            finally:
                examples += fuzzer.examples
    elapsed = time.perf_counter() - started
    table = Table("broker fuzzer", ["minutes", "examples", "examples/s", "failures"])
    table.add(f"{elapsed / 60:.1f}", examples, f"{examples / elapsed:.0f}", len(failures))
    table.print()
    for failure in failures:
        print(f"failure: {failure}")
    if failures:
        raise SystemExit(1)


if __name__ == "__main__":
    run("--quick" in sys.argv)
