"""The client's public surface: every listed name imports and is documented."""

from __future__ import annotations

import inspect
import re
from pathlib import Path

import roost.client
from roost.client import Client, Lease, SyncClient, SyncLease

REFERENCE = Path(__file__).resolve().parents[2] / "docs" / "reference" / "client.md"


def _public_members(cls: type) -> set[str]:
    return {name for name, _ in inspect.getmembers(cls) if not name.startswith("_")}


def test_all_names_import() -> None:
    """Every name in roost.client.__all__ exists and the tuple is sorted and unique."""
    names = roost.client.__all__
    assert isinstance(names, tuple)
    assert list(names) == sorted(set(names))
    for name in names:
        assert getattr(roost.client, name) is not None


def test_reference_documents_every_public_name() -> None:
    """docs/reference/client.md names every export and every public member of the main
    classes."""
    text = REFERENCE.read_text(encoding="utf-8")
    documented = set(re.findall(r"`([A-Za-z_][A-Za-z0-9_]*)", text))
    missing = [name for name in roost.client.__all__ if name not in documented]
    for cls in (Client, SyncClient, Lease, SyncLease):
        missing += [f"{cls.__name__}.{n}" for n in _public_members(cls) if n not in documented]
    assert missing == []
