"""Token shape, comparison and derivation (protocol.md E4, E5; conformance L20)."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from roost.protocol.tokens import (
    Comparison,
    ancestors,
    compare,
    covers,
    is_valid_token,
    make_token,
    meta_name,
    newer,
    overlaps,
    resource_problem,
    root_of,
    sublease,
    unmeta_name,
    valid_resource,
)

C = Comparison


def tok(seq: list[Any], epoch: Any = 1, resource: Any = "lab/arm", **extra: Any) -> dict[str, Any]:
    """A token on ``resource`` with ``seq``."""
    return {"epoch": epoch, "seq": seq, "resource": resource, "client_names": [], **extra}


@pytest.mark.parametrize(
    "name",
    [
        "lab",
        "lab/arm",
        "a_b/C9/x",
        "0",
        "lab/robot1/arm",
        "holders",
        "event",
        "printer-1",
        "lab.arm",
        "job:42",
        "ci/dev-1.local:5/x",
    ],
)
def test_valid_resource_names(name: str) -> None:
    """Segments of [A-Za-z0-9_] (then also '-', '.', ':') joined by '/' are valid names."""
    assert valid_resource(name)
    assert resource_problem(name) is None


@pytest.mark.parametrize(
    "name",
    [
        "",
        "/lab",
        "lab/",
        "lab//arm",
        "lab/holder",
        "lab/events/x",
        "holder",
        "-lb",
        "lab/.x",
        "lab arm",
        "läb",
        "lab\n",
        None,
        3,
        b"lab",
    ],
)
def test_invalid_resource_names(name: object) -> None:
    """Empty segments, reserved segments, other characters and non-str are invalid (E4, L29)."""
    assert not valid_resource(name)
    assert resource_problem(name)


@pytest.mark.parametrize(
    ("name", "words"),
    [
        ("", "empty"),
        ("lab//arm", "empty segment"),
        ("lab/holder", "reserved"),
        ("lab arm", "character ' '"),
        ("lab/-x", "must start with"),
        ("x" * 1025, "1025 characters"),
        (3, "not int"),
    ],
)
def test_resource_problem_says_why(name: object, words: str) -> None:
    """The reason names what is wrong with the name."""
    problem = resource_problem(name)
    assert problem is not None and words in problem


def test_meta_names() -> None:
    """Word-only names keep their path form; the others escape '-', '.', ':' reversibly."""
    assert meta_name("lab/arm_1") == "lab/arm_1"
    assert meta_name("printer-1") == "printer_2D1"
    assert meta_name("lab.arm/job:42") == "lab_2Earm/job_3A42"
    for name in ("printer-1", "lab.arm/job:42", "a-b.c:d"):
        assert unmeta_name(meta_name(name)) == name


def test_hierarchy_helpers() -> None:
    """covers/overlaps work by segments, not by string prefix (protocol.md E4)."""
    assert list(ancestors("a/b/c")) == ["a/b", "a"]
    assert list(ancestors("a")) == []
    assert covers("lab", "lab/arm") and covers("lab", "lab")
    assert not covers("lab/arm", "lab") and not covers("lab", "laboratory")
    assert overlaps("lab/arm", "lab") and overlaps("lab", "lab/arm/x")
    assert not overlaps("lab/arm", "lab/cam")


@pytest.mark.parametrize(
    "token",
    [
        None,
        [],
        {"seq": [1], "resource": "r"},
        tok([], 1),
        tok(["1"]),
        tok([-1]),
        tok([True]),
        tok([1.0]),
        tok([1], epoch="1"),
        tok([1], epoch=True),
        tok([1], resource="lab//x"),
        tok([1], resource=5),
        {**tok([1]), "client_names": "alice"},
        {**tok([1]), "client_names": [1]},
    ],
)
def test_malformed_tokens(token: object) -> None:
    """E5 rule 1: every malformed shape is rejected and compares INVALID."""
    assert not is_valid_token(token)
    assert compare(token, tok([1])) is C.INVALID
    assert compare(tok([1]), token) is C.INVALID


def test_client_names_may_be_absent() -> None:
    """A token without client_names is well formed; names never matter to compare."""
    bare = {"epoch": 1, "seq": [5], "resource": "lab/arm"}
    assert is_valid_token(bare)
    assert compare(bare, tok([5], client_names=["x"])) is C.SAME


@pytest.mark.parametrize(
    ("a", "b", "expected"),
    [
        ([5], [5], C.SAME),
        ([5], [5, 0], C.SUPER_LEASE),
        ([5, 0], [5], C.SUB_LEASE),
        ([5, 3], [5, 4], C.OLDER),
        ([6], [5, 99], C.NEWER),
        ([5, 2, 10], [5, 2, 11], C.OLDER),
        ([5, 3], [5, 2, 7], C.NEWER),
    ],
)
def test_compare_table(a: list[int], b: list[int], expected: Comparison) -> None:
    """L20: the E5 table holds."""
    assert compare(tok(a), tok(b)) is expected


def test_compare_resources_then_epochs() -> None:
    """L20: different resources first, then different epochs."""
    assert compare(tok([5], 1), tok([9], 2)) is C.DIFFERENT_EPOCHS
    assert compare(tok([5], 1, "a"), tok([5], 2, "b")) is C.DIFFERENT_RESOURCES
    assert C.OLDER == "OLDER"


seqs = st.lists(st.integers(min_value=0, max_value=4), min_size=1, max_size=4)


@given(seqs, seqs)
def test_compare_algebra(a: list[int], b: list[int]) -> None:
    """Case L20: NEWER mirrors OLDER, SUB mirrors SUPER, SAME iff equal."""
    ab, ba = compare(tok(a), tok(b)), compare(tok(b), tok(a))
    mirror = {
        C.NEWER: C.OLDER,
        C.OLDER: C.NEWER,
        C.SUB_LEASE: C.SUPER_LEASE,
        C.SUPER_LEASE: C.SUB_LEASE,
        C.SAME: C.SAME,
    }
    assert ba is mirror[ab]
    assert (ab is C.SAME) == (a == b)


@given(seqs, seqs, seqs)
def test_older_is_transitive(a: list[int], b: list[int], c: list[int]) -> None:
    """L20: OLDER is transitive."""
    if compare(tok(a), tok(b)) is C.OLDER and compare(tok(b), tok(c)) is C.OLDER:
        assert compare(tok(a), tok(c)) is C.OLDER


@given(seqs, seqs)
def test_larger_root_wins(a: list[int], b: list[int]) -> None:
    """L20: any sub-lease of a larger root is NEWER than anything with a smaller root."""
    if a[0] > b[0]:
        assert compare(tok(a), tok(b)) is C.NEWER


def test_sublease_and_newer() -> None:
    """sublease appends 0 and a name; newer bumps the last element; both leave the input alone."""
    t = make_token(7, 5, "lab/arm", "alice")
    assert t == {"epoch": 7, "seq": [5], "resource": "lab/arm", "client_names": ["alice"]}
    s = sublease(t, "planner")
    assert s["seq"] == [5, 0] and s["client_names"] == ["alice", "planner"]
    assert compare(s, t) is C.SUB_LEASE
    n = newer(s)
    assert n["seq"] == [5, 1] and compare(n, s) is C.NEWER
    assert t["seq"] == [5] and s["seq"] == [5, 0]
    assert root_of(n) == 5
    assert make_token(7, 6, "x", None)["client_names"] == []


def test_derivation_rejects_malformed() -> None:
    """sublease/newer raise ValueError on a malformed token instead of inventing one."""
    with pytest.raises(ValueError, match="well-formed"):
        sublease({"seq": []}, "x")
    with pytest.raises(ValueError, match="well-formed"):
        newer({"epoch": 1, "seq": [1], "resource": ""})
