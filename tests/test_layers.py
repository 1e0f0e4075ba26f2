"""The folder layout is the architecture (DESIGN.md, "Data flows one way"): the registry
(adkit/ops) imports no engine and nothing above; the engines import the registry, the graph
and the low-level helpers, never the layers above them (transforms, jit, compare, check,
bench, display, cli). Every import is read with `ast`, including those inside functions."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "adkit"
ABOVE_ENGINES = ("transforms", "jit", "compare", "check", "bench", "display", "cli", "nn", "optim", "families")


def imported_modules(path: Path) -> set[str]:
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
    return {m for m in found if m == "adkit" or m.startswith("adkit.")}


def _below(module: str, layers: tuple[str, ...]) -> bool:
    parts = module.split(".")
    return len(parts) < 2 or parts[1] not in layers


@pytest.mark.parametrize("path", sorted((PACKAGE / "ops").glob("*.py")), ids=lambda p: p.name)
def test_the_registry_imports_no_engine_and_nothing_above(path: Path) -> None:
    bad = [m for m in imported_modules(path) if m == "adkit" or not _below(m, ("engines", "graph", *ABOVE_ENGINES))]
    assert not bad, f"adkit/ops/{path.name} imports {bad}"


@pytest.mark.parametrize("path", sorted((PACKAGE / "engines").glob("*.py")), ids=lambda p: p.name)
def test_engines_import_nothing_above_them(path: Path) -> None:
    bad = [m for m in imported_modules(path) if m == "adkit" or not _below(m, ABOVE_ENGINES)]
    assert not bad, f"adkit/engines/{path.name} imports {bad}"


def test_the_layer_check_sees_imports_inside_functions(tmp_path: Path) -> None:
    module = tmp_path / "m.py"
    module.write_text("import numpy\ndef f():\n    from adkit.transforms import grad\n    import adkit.ops.core\n")
    assert imported_modules(module) == {"adkit.transforms", "adkit.ops.core"}
