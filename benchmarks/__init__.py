"""roost's benchmarks: ``python -m benchmarks [--quick] [SUITE...]`` (``make bench`` runs all).

Each suite is a module of this package with a ``run(quick: bool) -> None`` function that prints
its own table. Figures are only compared within one run on one machine: the tables report
absolute rates for the record, and ratios (against targets or a baseline measured in the same
run) for judgement.
"""

__all__ = ()
