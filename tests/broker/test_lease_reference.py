"""docs/reference/leases.md names every public name of the lease modules."""

from __future__ import annotations

import importlib
from pathlib import Path

import pytest

REFERENCE = Path(__file__).resolve().parents[2] / "docs" / "reference" / "leases.md"
MODULES = [
    "roost.protocol.tokens",
    "roost.broker.leases",
    "roost.broker.lease_core",
    "roost.broker.lease_types",
    "roost.broker.lease_queries",
    "roost.broker.lease_views",
    "roost.broker.lease_checks",
    "roost.broker.lease_wire",
    "roost.broker.lease_store",
    "roost.broker.lease_routes",
    "roost.broker.lease_config",
]


@pytest.mark.parametrize("name", MODULES)
def test_reference_names_every_export(name: str) -> None:
    """Each name in the module's __all__ appears in the lease reference as `name`."""
    text = REFERENCE.read_text(encoding="utf-8")
    module = importlib.import_module(name)
    missing = [n for n in module.__all__ if f"`{n}" not in text]
    assert not missing, f"{name}: not in docs/reference/leases.md: {missing}"
