"""``roost serve --store``: usage errors are told before the broker starts."""

from __future__ import annotations

from tests.cli.conftest import RunRoost


def test_store_needs_a_state_dir(roost: RunRoost) -> None:
    result = roost("serve", "--port", "0", "--store", "/store/**")
    assert result.code == 2
    assert "need --state-dir" in result.err


def test_bad_store_pattern(roost: RunRoost, tmp_path: object) -> None:
    result = roost("serve", "--port", "0", "--state-dir", str(tmp_path), "--store", "/store/#")
    assert result.code == 2
    assert "--store" in result.err
    assert "use /** for any depth" in result.err
