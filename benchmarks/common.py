"""Timing helpers and a small table printer shared by the benchmark suites.

Rules of this module:

- Rates are measured with ``time.perf_counter`` over enough calls to last ``min_time``, best of
  ``repeat`` rounds (the least disturbed round, as ``timeit`` recommends).
- Figures mean something only next to others from the same run on the same machine.
"""

from __future__ import annotations

import gc
import statistics
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

__all__ = ("Table", "format_rate", "percentiles", "rate", "time_calls")


def time_calls(fn: Callable[[], object], calls: int) -> float:
    """Seconds taken by ``calls`` calls of ``fn``, with the garbage collector paused."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        started = time.perf_counter()
        for _ in range(calls):
            fn()
        return time.perf_counter() - started
    finally:
        if enabled:
            gc.enable()


def rate(
    fn: Callable[[], object], *, per_call: int = 1, min_time: float = 0.2, repeat: int = 3
) -> float:
    """Operations per second of ``fn``: best of ``repeat`` rounds of at least ``min_time`` s.

    Args:
        fn: the operation; called many times.
        per_call: operations one call performs (a batch of frames, for example).
        min_time: the shortest round; the number of calls per round doubles until reached.
        repeat: rounds; the fastest counts.
    """
    calls = 1
    while (elapsed := time_calls(fn, calls)) < min_time:
        # Double while rounds are too short to extrapolate from, then aim straight for min_time.
        if elapsed < min_time / 10:
            calls *= 2
        else:
            calls = int(calls * min_time * 1.1 / elapsed) + 1
    best = elapsed
    for _ in range(repeat - 1):
        best = min(best, time_calls(fn, calls))
    return calls * per_call / best


def percentiles(samples: Sequence[float], points: Sequence[float] = (50, 99)) -> list[float]:
    """The given percentiles (0.1-99.9, in steps of 0.1) of ``samples``, interpolated; all
    ``nan`` if fewer than 2."""
    if len(samples) < 2:
        return [float("nan")] * len(points)
    cuts = statistics.quantiles(samples, n=1000, method="inclusive")
    return [cuts[round(point * 10) - 1] for point in points]


def format_rate(value: float) -> str:
    """A rate with thousands separators, no decimals: ``1,234,567``."""
    return f"{value:,.0f}"


@dataclass
class Table:
    """A plain-text table: give the title and column names, ``add`` rows, then ``print``.

    Numbers are right-aligned, text left-aligned.
    """

    title: str
    columns: Sequence[str]
    rows: list[list[str]] = field(default_factory=list)

    def add(self, *cells: object) -> None:
        """Append a row; cells are converted with ``str``."""
        if len(cells) != len(self.columns):
            raise ValueError(f"expected {len(self.columns)} cells, got {len(cells)}")
        self.rows.append([str(cell) for cell in cells])

    def render(self) -> str:
        """The table as text, title first."""
        widths = [len(name) for name in self.columns]
        for row in self.rows:
            widths = [max(width, len(cell)) for width, cell in zip(widths, row, strict=True)]
        numeric = [
            all(_is_number(row[i]) for row in self.rows) and bool(self.rows)
            for i in range(len(self.columns))
        ]

        def line(cells: Sequence[str]) -> str:
            parts = [
                cell.rjust(width) if right else cell.ljust(width)
                for cell, width, right in zip(cells, widths, numeric, strict=True)
            ]
            return "  ".join(parts).rstrip()

        rule = "  ".join("-" * width for width in widths)
        return "\n".join([self.title, line(self.columns), rule, *map(line, self.rows)])

    def print(self) -> None:
        """Print :meth:`render` followed by a blank line."""
        print(self.render(), end="\n\n")


def _is_number(cell: str) -> bool:
    try:
        float(cell.replace(",", "").rstrip("x%"))
    except ValueError:
        return False
    return True
