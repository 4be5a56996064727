"""The package's shape, from its own imports: no import cycle between modules or between
subpackages, no import against the layer order, no module over 400 lines, few modules flat in
the root. Every ``import`` counts, lazy ones inside functions and ``TYPE_CHECKING`` ones too.

The graph is built with ``ast`` (nothing is imported), so a planted cycle or an upward import
in a scratch copy of the package fails exactly as it would in the real one.
"""

from __future__ import annotations

import ast
import shutil
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "src" / "torchann"

# Bottom to top. A module may import its own subpackage and any layer below its own; the names
# on one line are peers that never import each other. The root modules (``__init__``,
# ``__main__``) sit above everything: they re-export and start the command line.
LAYERS: tuple[tuple[str, ...], ...] = (
    ("core",),
    ("runtime",),
    ("render",),
    ("data",),
    ("preprocess",),
    ("network",),
    ("batching",),
    ("training",),
    ("inspect",),
    ("model",),
    ("export",),
    ("report",),
    ("api",),
    ("tuning", "dask", "mlflow"),
    ("server",),  # torchann serve's package; a folder serve/ would hide the function torchann.serve
    ("bench",),
    ("cli",),
)
MAX_LINES = 400
MAX_ROOT_MODULES = 12


def modules(root: Path) -> dict[str, Path]:
    """Dotted name (``torchann.data.table``; a package by its own name) -> file."""
    out = {}
    for path in sorted(root.rglob("*.py")):
        parts = path.relative_to(root.parent).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        out[name] = path
    return out


def import_graph(root: Path) -> dict[str, set[str]]:
    """Module -> the package's modules it imports (a name imported from a module counts as
    that module). A package's ``__init__`` importing its own children is left out: it is the
    package's public face, not a dependency of the children on it."""
    mods = modules(root)
    top = root.name

    def resolve(name: str) -> str | None:
        while name and name not in mods:
            name = name.rpartition(".")[0]
        return name or None

    graph: dict[str, set[str]] = {}
    for name, path in mods.items():
        here = name if path.name == "__init__.py" else name.rpartition(".")[0]
        targets: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
            if isinstance(node, ast.Import):
                wanted = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    base = here
                    for _ in range(node.level - 1):
                        base = base.rpartition(".")[0]
                    base = f"{base}.{node.module}" if node.module else base
                wanted = [base] + [f"{base}.{a.name}" for a in node.names]
            else:
                continue
            for w in wanted:
                if w == top or w.startswith(top + "."):
                    r = resolve(w)
                    if r is not None and r != name:
                        targets.add(r)
        if path.name == "__init__.py":
            targets = {t for t in targets if not t.startswith(name + ".")}
        graph[name] = targets
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one node (Tarjan), each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on: set[str] = set()
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in sorted(graph.get(v, ())):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


def subpackage(name: str) -> str | None:
    parts = name.split(".")
    return parts[1] if len(parts) > 1 and parts[1] not in ("__main__",) else None


def rank(sub: str) -> int:
    for i, peers in enumerate(LAYERS):
        if sub in peers:
            return i
    raise KeyError(sub)


def problems(root: Path) -> list[str]:
    """Everything wrong with the package's shape, one line each."""
    mods = modules(root)
    graph = import_graph(root)
    out = []
    without_root = {m: {t for t in e if t != root.name} for m, e in graph.items() if m != root.name}
    for c in cycles(without_root):
        out.append("module cycle: " + " -> ".join(c))
    packages: dict[str, set[str]] = {}
    for m, targets in without_root.items():
        a = subpackage(m) or m
        packages.setdefault(a, set()).update((subpackage(t) or t) for t in targets if (subpackage(t) or t) != a)
    for c in cycles(packages):
        out.append("subpackage cycle: " + " -> ".join(c))
    for m, targets in graph.items():
        a = subpackage(m)
        if a is None:
            continue
        if a not in {s for peers in LAYERS for s in peers}:
            out.append(f"{m}: subpackage {a!r} has no place in LAYERS (tests/test_architecture.py)")
            continue
        for t in sorted(targets):
            b = subpackage(t)
            if b is None or b == a:
                if b is None and t != root.name + ".__main__":
                    out.append(f"{m} imports {t}, the package root: import the module that defines the name")
                continue
            if b in {s for peers in LAYERS for s in peers} and rank(b) >= rank(a):
                out.append(f"{m} imports {t}: {a} may not import {b} (same or higher layer)")
    for m, path in mods.items():
        n = len(path.read_text(encoding="utf-8").splitlines())
        if n > MAX_LINES:
            out.append(f"{m}: {n} lines, over {MAX_LINES}: it holds two concepts")
    flat = [m for m, p in mods.items() if m.count(".") == 1 and p.name != "__init__.py"]
    if len(flat) > MAX_ROOT_MODULES:
        out.append(f"{len(flat)} modules flat in the package root (at most {MAX_ROOT_MODULES})")
    return out


def test_the_package_keeps_its_layers():
    assert problems(PACKAGE) == []


def test_every_subpackage_says_what_it_holds_and_may_import():
    for init in sorted(PACKAGE.glob("*/__init__.py")):
        doc = ast.get_docstring(ast.parse(init.read_text(encoding="utf-8"))) or ""
        assert len(doc) > 80, f"{init}: the docstring should say what the subpackage holds"
        if init.parent.name not in ("core", "cli"):
            assert "May import" in doc, f"{init}: say which layers it may import"


@pytest.fixture()
def scratch(tmp_path):
    copy = tmp_path / "torchann"
    shutil.copytree(PACKAGE, copy, ignore=shutil.ignore_patterns("__pycache__"))
    return copy


def test_a_planted_cycle_fails(scratch):
    (scratch / "data" / "columns.py").write_text(
        (scratch / "data" / "columns.py").read_text() + "\n\ndef _planted():\n    from .readers import load_table\n")
    found = problems(scratch)
    assert any(p.startswith("module cycle:") and "torchann.data.columns" in p and "torchann.data.readers" in p
               for p in found), found


def test_an_upward_import_fails_even_when_lazy(scratch):
    spec = scratch / "network" / "spec.py"
    spec.write_text(spec.read_text() + "\n\ndef _planted():\n    from ..report.page import report_html\n")
    assert "torchann.network.spec imports torchann.report.page: network may not import report (same or higher layer)" \
        in problems(scratch)


def test_a_subpackage_cycle_fails_and_a_long_module_fails(scratch):
    (scratch / "core" / "choices.py").write_text((scratch / "core" / "choices.py").read_text() +
                                                "\n\ndef _planted():\n    from ..runtime import devices\n")
    (scratch / "data" / "long.py").write_text('"""x"""\n' + "x = 1\n" * 400)
    found = problems(scratch)
    assert any(p.startswith("subpackage cycle:") and "core" in p and "runtime" in p for p in found), found
    assert "torchann.data.long: 401 lines, over 400: it holds two concepts" in found


def test_the_graph_sees_the_imports_that_are_there():
    graph = import_graph(PACKAGE)
    assert "torchann.data.table" in graph["torchann.data.readers"]  # from .table import Key, Table
    assert "torchann.model.base" in graph["torchann.api.model"]
    assert "torchann.report.page" not in graph["torchann.model.base"]  # the model never asks its report
