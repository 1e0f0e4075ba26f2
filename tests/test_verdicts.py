"""The package's layering (issue 10): engines and the registry never reach up to the
presentation layer, module-level imports form no circle, engines print nothing.

Checked by parsing the sources with `ast` (no import side effects): an import inside a
function counts too for the engines and ops, since a lazy import is still a dependency.
"""

from __future__ import annotations

import ast
from pathlib import Path

import adkit

PACKAGE = Path(adkit.__file__).parent
# the presentation and tool layer: tables and drawing, the command line, the harnesses
PRESENTATION = {"adkit.display", "adkit.cli", "adkit.bench", "adkit.compare", "adkit.check", "adkit.check_command"}


def _module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports(tree: ast.AST, module: str, top_level_only: bool) -> set[str]:
    """Names of adkit modules imported by the tree."""
    found: set[str] = set()
    nodes = ast.iter_child_nodes(tree) if top_level_only else ast.walk(tree)
    for node in nodes:
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            assert node.level == 0, f"{module}: relative import (adkit uses absolute imports)"
            base = node.module or ""
            found.add(base)
            found.update(f"{base}.{alias.name}" for alias in node.names)  # `from adkit import display`
    return {name for name in found if name == "adkit" or name.startswith("adkit.")}


def _sources() -> dict[str, ast.AST]:
    return {_module_name(p): ast.parse(p.read_text(), str(p)) for p in sorted(PACKAGE.rglob("*.py"))}


def test_engines_and_ops_never_import_the_presentation_layer():
    offenders = []
    for module, tree in _sources().items():
        if module.startswith(("adkit.engines", "adkit.ops")):
            bad = sorted(name for name in _imports(tree, module, top_level_only=False) if _is_up(name))
            if bad:
                offenders.append(f"{module} imports {', '.join(bad)}")
    assert not offenders, offenders


def _is_up(name: str) -> bool:
    return any(name == p or name.startswith(p + ".") for p in PRESENTATION)


def test_module_level_imports_form_no_circle():
    """The import graph at import time is a DAG (a lazy import inside a function, like
    Graph.draw() loading display, is the only way up)."""
    sources = _sources()
    edges = {m: {n for n in _imports(t, m, top_level_only=True) if n in sources and n != m} for m, t in sources.items()}
    # a module's package __init__ is imported with it: not an edge of interest
    edges = {m: {n for n in deps if not m.startswith(n + ".")} for m, deps in edges.items()}
    state: dict[str, int] = {}

    def visit(m: str, stack: list[str]) -> None:
        state[m] = 1
        for n in sorted(edges[m]):
            if state.get(n) == 1:
                raise AssertionError("import circle: " + " -> ".join(stack[stack.index(n) :] + [n]))
            if n not in state:
                visit(n, stack + [n])
        state[m] = 2

    for m in sorted(edges):
        if m not in state:
            visit(m, [m])


def test_formatting_helpers_sit_at_the_bottom():
    tree = ast.parse((PACKAGE / "formatting.py").read_text())
    assert _imports(tree, "adkit.formatting", top_level_only=False) == set()
    tree = ast.parse((PACKAGE / "engines" / "paths.py").read_text())
    assert "adkit.formatting" in _imports(tree, "adkit.engines.paths", top_level_only=True)


def test_engines_print_nothing():
    calls = [
        f"{module}:{node.lineno}"
        for module, tree in _sources().items()
        if module.startswith(("adkit.engines", "adkit.ops"))
        for node in ast.walk(tree)
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "print"
    ]
    assert not calls, calls
