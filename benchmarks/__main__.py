"""Run benchmark suites: ``python -m benchmarks [--quick] [SUITE...]``.

With no suite named, every registered suite runs, in registry order. A suite is registered by
adding its module name (``benchmarks/<name>.py``, defining ``run(quick: bool) -> None``) to
:data:`SUITES`.
"""

from __future__ import annotations

import argparse
import importlib
import platform
import sys
import time

__all__ = ("SUITES", "main")

#: Registered suites, in the order a full run executes them.
SUITES: tuple[str, ...] = (
    "codec",
    "broker",
    "client",
    "clients",
    "leases",
    "gateway",
    "subtree",
    "store",
    "pools",
    "amplification",
    "stalls",
    "soak",
    "fuzz",
    "access",
)


def main(argv: list[str] | None = None) -> int:
    """Run the named suites (all when none is named); return the exit status.

    Unknown suite names are an error (status 2) before anything runs.
    """
    parser = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__)
    parser.add_argument("suites", nargs="*", metavar="SUITE", help=f"one of: {', '.join(SUITES)}")
    parser.add_argument("--quick", action="store_true", help="shorter runs, rougher figures")
    args = parser.parse_args(argv)
    names = args.suites or list(SUITES)
    unknown = [name for name in names if name not in SUITES]
    if unknown:
        parser.error(f"unknown suite(s) {', '.join(unknown)}; known: {', '.join(SUITES)}")
    print(f"roost benchmarks - Python {platform.python_version()} on {platform.machine()}")
    for name in names:
        started = time.perf_counter()
        module = importlib.import_module(f"benchmarks.{name}")
        module.run(quick=args.quick)
        print(f"[{name}: {time.perf_counter() - started:.1f} s]\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
