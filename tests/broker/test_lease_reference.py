"""docs/reference/leases.md names every public name of the lease modules."""

from __future__ import annotations

import importlib
from pathlib import Path

import pytest

REFERENCE = Path(__file__).resolve().parents[2] / "docs" / "reference" / "leases.md"
MODULES = [
    "roost.protocol.tokens",
    "roost.broker.leases.table",
    "roost.broker.leases.core",
    "roost.broker.leases.types",
    "roost.broker.leases.queries",
    "roost.broker.leases.views",
    "roost.broker.leases.checks",
    "roost.broker.leases.wire",
    "roost.broker.leases.store",
    "roost.broker.leases.routes",
    "roost.broker.leases.config",
]


@pytest.mark.parametrize("name", MODULES)
def test_reference_names_every_export(name: str) -> None:
    """Each name in the module's __all__ appears in the lease reference as `name`."""
    text = REFERENCE.read_text(encoding="utf-8")
    module = importlib.import_module(name)
    missing = [n for n in module.__all__ if f"`{n}" not in text]
    assert not missing, f"{name}: not in docs/reference/leases.md: {missing}"
