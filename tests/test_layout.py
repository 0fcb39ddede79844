"""The layout shows the architecture: no import circles under ``src/``, no oversized modules,
and the public face of ``roost`` is exactly what the reference documents."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import roost

SRC = Path(roost.__file__).resolve().parent
DOCS = SRC.parent.parent / "docs"
MAX_LINES = 600


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(SRC.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _modules() -> dict[str, Path]:
    return {_module_name(p): p for p in sorted(SRC.rglob("*.py"))}


def _imports(path: Path, name: str, known: dict[str, Path]) -> set[str]:
    """Every roost module that ``path`` imports, wherever the import statement stands
    (module level, under ``TYPE_CHECKING`` or inside a function)."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    out: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            out.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.rsplit(".", node.level - 1)[0] if node.level > 1 else package
                target = f"{base}.{node.module}" if node.module else base
            else:
                target = node.module or ""
            for alias in node.names:
                sub = f"{target}.{alias.name}"
                # `from package import module` ties to the module, not the package's face.
                out.add(sub if sub in known else target)
    return {m for m in out if m in known and m != name}


def _graph() -> dict[str, set[str]]:
    known = _modules()
    return {name: _imports(path, name, known) for name, path in known.items()}


def _circles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component: list[str] = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


def test_circle_finder_finds_a_circle() -> None:
    """The checker itself: a two-module loop and a three-module loop are both reported."""
    graph = {"a": {"b"}, "b": {"a"}, "c": {"d"}, "d": {"e"}, "e": {"c"}, "f": {"a"}}
    assert _circles(graph) == [["a", "b"], ["c", "d", "e"]]


def test_import_graph_is_read() -> None:
    """The graph sees real edges (so an empty graph cannot pass the circle test)."""
    graph = _graph()
    assert "roost.broker.router" in graph["roost.broker.server"]
    assert "roost.broker.tree" in graph["roost.broker.session"]


def test_no_import_circles() -> None:
    """No group of modules under src/roost imports each other in a loop."""
    assert _circles(_graph()) == []


def test_no_module_over_limit() -> None:
    """No source file is longer than 600 lines: split by concern instead."""
    long = {
        name: n
        for name, path in _modules().items()
        if (n := len(path.read_text().splitlines())) > MAX_LINES
    }
    assert long == {}


def test_protocol_package_is_sans_io() -> None:
    """roost.protocol imports no sockets, event loop or clock."""
    banned = {"socket", "asyncio", "anyio", "trio", "time", "ssl", "selectors"}
    for path in (SRC / "protocol").rglob("*.py"):
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                names = {a.name.split(".")[0] for a in node.names}
            elif isinstance(node, ast.ImportFrom) and not node.level:
                names = {(node.module or "").split(".")[0]}
            else:
                continue
            assert not names & banned, f"{path.name} imports {names & banned}"


def test_documented_names_are_all() -> None:
    """The names the reference lists for ``roost`` are exactly ``roost.__all__``."""
    text = (DOCS / "reference" / "README.md").read_text()
    section = text.split("## The `roost` package", 1)[1]
    documented: set[str] = set()
    for row in section.splitlines():
        if row.startswith("| `"):
            first_cell = row.split("|")[1]
            documented.update(re.findall(r"`([A-Za-z_]+)`", first_cell))
    assert documented == set(roost.__all__)


def test_top_level_names_import() -> None:
    """Every name in ``roost.__all__`` resolves (the lazy ones too)."""
    for name in roost.__all__:
        assert getattr(roost, name) is not None
