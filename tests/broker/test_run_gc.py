"""settle_gc: the collector settings ``roost serve`` applies once listening."""

from __future__ import annotations

import subprocess
import sys

from roost.broker.run import GC_YOUNG_THRESHOLD

_PROBE = """
import gc
from roost.broker.run import settle_gc
before = gc.get_threshold()
settle_gc()
after = gc.get_threshold()
print(gc.get_freeze_count(), before[1:] == after[1:], after[0])
"""


def test_settle_gc_freezes_startup_heap() -> None:
    """settle_gc freezes the start-up objects and raises only the young threshold."""
    # A separate interpreter: freezing changes the collector of the whole process.
    out = subprocess.run(
        [sys.executable, "-c", _PROBE], capture_output=True, text=True, timeout=60, check=True
    ).stdout.split()
    frozen, older_kept, young = int(out[0]), out[1], int(out[2])
    assert frozen > 1000
    assert older_kept == "True"
    assert young == GC_YOUNG_THRESHOLD
