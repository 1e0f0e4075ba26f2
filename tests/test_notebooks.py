"""The lecture notebooks (notebooks/*.py, jupytext py:percent) run top to bottom.

Each notebook is executed as a script with runpy in a fresh namespace, with matplotlib's
Agg backend and a temporary working directory, under a time limit. The notebooks assert
the lecture's values (colah's de/db = 5, Rabbany's traces, ...), so a broken library
breaks its notebook here.

Stray outputs: in Jupyter a cell whose last statement is an expression shows its value,
so a cell ending in `ax.set_title(...)` prints `Text(0.5, 1.0, '...')` under the figure.
Each notebook's code cells are parsed (ast) and none may end in a matplotlib call whose
value would be shown.

HTML displays: the notebooks show tables and reports with IPython's `display()`. The test
puts a stand-in `IPython.display` module in place that calls `_repr_html_` on everything
displayed, exactly what Jupyter does, and requires a string; adkit objects left in the
notebook's namespace are checked the same way.
"""

from __future__ import annotations

import ast
import fnmatch
import io
import runpy
import shutil
import subprocess
import sys
import time
import tokenize
import types
from pathlib import Path

import pytest

matplotlib = pytest.importorskip("matplotlib")
matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

NOTEBOOKS = sorted((Path(__file__).resolve().parent.parent / "notebooks").glob("*.py"))
TIME_LIMIT = 60.0  # seconds per notebook (each is written to run in well under 30 s)


def _html_objects(namespace: dict) -> dict[str, object]:
    """adkit objects in a notebook's namespace that Jupyter would render as HTML."""
    found = {}
    for name, value in namespace.items():
        if isinstance(value, type) or name.startswith("__"):
            continue
        if type(value).__module__.startswith("adkit") and hasattr(value, "_repr_html_"):
            found[name] = value
    return found


def test_notebooks_found():
    names = [p.name for p in NOTEBOOKS]
    assert len(names) >= 6, names
    for p in NOTEBOOKS:
        head = p.read_text().splitlines()[:12]
        assert head[0] == "# ---" and any("format_name: percent" in line for line in head), p.name


def _fake_ipython(displayed: list) -> tuple[types.ModuleType, types.ModuleType]:
    """IPython and IPython.display stand-ins whose display() renders HTML as Jupyter would."""

    def display(*objs, **kwargs):
        for obj in objs:
            html = obj._repr_html_() if hasattr(obj, "_repr_html_") else None
            displayed.append((obj, html))
            print(obj)

    ipython = types.ModuleType("IPython")
    # matplotlib looks at sys.modules["IPython"]: say "recent IPython, not inside a kernel"
    ipython.version_info = (99, 0, 0)
    ipython.get_ipython = lambda: None
    ipython_display = types.ModuleType("IPython.display")
    ipython_display.display = display
    ipython.display = ipython_display
    return ipython, ipython_display


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_notebook_runs(path, tmp_path, monkeypatch):
    monkeypatch.setenv("MPLBACKEND", "Agg")
    monkeypatch.chdir(tmp_path)
    displayed: list = []
    ipython, ipython_display = _fake_ipython(displayed)
    monkeypatch.setitem(sys.modules, "IPython", ipython)
    monkeypatch.setitem(sys.modules, "IPython.display", ipython_display)
    plt.close("all")
    start = time.perf_counter()
    try:
        namespace = runpy.run_path(str(path), run_name="__main__")
    finally:
        elapsed = time.perf_counter() - start
        plt.close("all")
    assert elapsed <= TIME_LIMIT, f"{path.name} took {elapsed:.1f} s (limit {TIME_LIMIT:.0f} s)"
    for obj, html in displayed:
        if hasattr(obj, "_repr_html_"):
            assert isinstance(html, str) and html, f"{path.name}: {type(obj).__name__}._repr_html_() returned {html!r}"
    for name, obj in _html_objects(namespace).items():
        html = obj._repr_html_()
        assert isinstance(html, str) and html, f"{path.name}: {name}._repr_html_() returned {html!r}"


def test_repr_html_of_every_display_the_notebooks_use():
    """Graph, trace tables, compare results, bench results, check reports: HTML strings."""
    import numpy as np

    import adkit as ad
    from adkit import bench

    def f(a, b):
        return (a + b) * (b + 1)

    G = ad.trace(f, 2.0, 1.0)
    objects = [G, G.evaluation_trace(), G.tangent_trace("b"), G.adjoint_trace(), ad.compare(f, 2.0, 1.0)]
    objects.append(bench.run(engines=["forward", "reverse"], depths=(2, 3), min_time=0.0, max_repeats=1))
    if hasattr(ad, "check_grad"):
        objects.append(ad.check_grad(lambda x: np.sum(x**2), np.array([1.0, 2.0])))
        objects.append(ad.taylor_test(lambda x: np.sum(x**2), np.array([1.0, 2.0])))
    for obj in objects:
        html = obj._repr_html_()
        assert isinstance(html, str) and html.strip(), type(obj).__name__


# --- no stray matplotlib outputs in Jupyter ----------------------------------------------------

# matplotlib functions and methods that return an object (Text, Legend, [Line2D], Axes,
# Figure, ...), which Jupyter prints when the call ends a cell; `draw` is adkit's Graph.draw
# (returns the Axes) and `plot` also covers BenchResult.plot (returns the Figure)
MATPLOTLIB_RETURNING = frozenset(
    """plot loglog semilogx semilogy scatter bar barh hist hist2d errorbar fill_between
    fill_betweenx step stem pie boxplot violinplot imshow matshow pcolormesh contour contourf
    clabel quiver streamplot text annotate arrow axhline axvline axhspan axvspan axline
    set_title set_xlabel set_ylabel title xlabel ylabel suptitle supxlabel supylabel legend
    figlegend colorbar set_xlim set_ylim xlim ylim set_xticks set_yticks xticks yticks
    set_xticklabels set_yticklabels subplots subplot add_subplot figure gca gcf twinx twiny
    table figtext draw""".split()
)


def code_cells(path: Path) -> list[tuple[int, str]]:
    """(first line number, source) of each code cell of a jupytext py:percent notebook."""
    cells: list[tuple[int, list[str]]] = []
    for number, line in enumerate(path.read_text().splitlines(), start=1):
        if line.startswith("# %%"):
            is_code = "[markdown]" not in line and "[md]" not in line and "[raw]" not in line
            cells.append((number + 1, []) if is_code else (number + 1, None))
        elif cells and cells[-1][1] is not None:
            cells[-1][1].append(line)
    return [(first, "\n".join(lines)) for first, lines in cells if lines is not None]


def _ends_with_semicolon(source: str) -> bool:
    """IPython's rule: a cell whose last token (comments aside) is `;` shows no value."""
    skip = {tokenize.NEWLINE, tokenize.NL, tokenize.COMMENT, tokenize.ENDMARKER, tokenize.INDENT, tokenize.DEDENT}
    tokens = [t for t in tokenize.generate_tokens(io.StringIO(source).readline) if t.type not in skip]
    return bool(tokens) and tokens[-1].string == ";"


def displayed_matplotlib_call(source: str) -> str | None:
    """The name of the matplotlib call whose value Jupyter would show after this cell, or None."""
    body = ast.parse(source).body
    if not body or not isinstance(body[-1], ast.Expr) or _ends_with_semicolon(source):
        return None
    call = body[-1].value
    if not isinstance(call, ast.Call):
        return None
    func = call.func
    name = func.attr if isinstance(func, ast.Attribute) else func.id if isinstance(func, ast.Name) else None
    return name if name in MATPLOTLIB_RETURNING else None


@pytest.mark.parametrize(
    "source, shown",
    [
        ('ax.set_title("x")', "set_title"),
        ("fig, ax = plt.subplots()\nax.plot([1, 2])\nax.legend()  # a comment", "legend"),
        ("plt.plot([1, 2])", "plot"),
        ("G.draw(top_k=2)", "draw"),
        ('ax.set_title("x");', None),
        ('ax.set_title("x");  # hidden', None),
        ('_ = ax.set_title("x")', None),
        ('ax = G.draw(title="x")', None),
        ("ax.legend()\nfig.tight_layout()", None),
        ('print("ax.legend()")', None),
        ("for ax in axes:\n    ax.legend()", None),
        ("x = 1\nx", None),
    ],
)
def test_displayed_matplotlib_call_detects_what_jupyter_would_show(source, shown):
    assert displayed_matplotlib_call(source) == shown


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_no_cell_ends_in_a_displayed_matplotlib_object(path):
    cells = code_cells(path)
    assert cells, f"{path.name} has no code cells"
    stray = [(first, name) for first, source in cells if (name := displayed_matplotlib_call(source))]
    where = "; ".join(f"the cell at line {first} ends in {name}(...)" for first, name in stray)
    assert not stray, (
        f"{path.name}: {where}, whose value Jupyter prints (Text(...), <Legend ...>, ...): "
        "assign it, end the cell with fig.tight_layout(), or pass title= to G.draw"
    )


# --- no timing asserts -------------------------------------------------------------------------

CLOCKS = frozenset({"perf_counter", "perf_counter_ns", "process_time", "monotonic", "time", "time_ns", "timeit"})
# attributes of adkit's results that hold measured times (Cell.seconds, BenchResult.fits, ...)
TIMED_ATTRIBUTES = frozenset({"seconds", "first_call_seconds", "predicted_seconds", "fits", "per_layer", "exponent"})


def _names_and_calls(node: ast.AST) -> tuple[set[str], set[str]]:
    """Names read, and names of functions called, anywhere inside `node`; a read of a timed
    attribute (`cell.seconds`) counts as a call of a clock."""
    names, calls = set(), set()
    for sub in ast.walk(node):
        if isinstance(sub, ast.Name):
            names.add(sub.id)
        elif isinstance(sub, ast.Attribute) and sub.attr in TIMED_ATTRIBUTES:
            calls.add("perf_counter")
        elif isinstance(sub, ast.Call):
            func = sub.func
            calls.add(func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", ""))
    return names, calls


def _outside_functions(tree: ast.AST):
    """Every node of the module except those inside function bodies (their own scopes)."""
    stack = [tree]
    while stack:
        node = stack.pop()
        yield node
        if not isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)):
            stack.extend(ast.iter_child_nodes(node))


def timing_asserts(source: str) -> list[int]:
    """Line numbers of asserts on measured times: an assert that reads a value computed
    from a clock (time.perf_counter, ...), directly or through the notebook's functions
    (one that calls a clock, or such a function) and module-level variables (assigned
    from such a call or variable), followed until nothing new is found."""
    tree = ast.parse(source)
    functions = [n for n in ast.walk(tree) if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef))]
    clocked_funcs: set[str] = set()
    changed = True
    while changed:
        changed = False
        for fn in functions:
            if fn.name not in clocked_funcs and _names_and_calls(fn)[1] & (CLOCKS | clocked_funcs):
                clocked_funcs.add(fn.name)
                changed = True
    clocked_names: set[str] = set()
    changed = True
    while changed:
        changed = False
        for node in _outside_functions(tree):
            if isinstance(node, (ast.Assign, ast.AugAssign, ast.AnnAssign)) and node.value is not None:
                targets, value = (node.targets if isinstance(node, ast.Assign) else [node.target]), node.value
            elif isinstance(node, ast.For):  # a comprehension's variables stay inside it
                targets, value = [node.target], node.iter
            else:
                continue
            names, calls = _names_and_calls(value)
            if calls & (CLOCKS | clocked_funcs) or names & clocked_names:
                for target in targets:
                    for sub in ast.walk(target):
                        if isinstance(sub, ast.Name) and sub.id not in clocked_names:
                            clocked_names.add(sub.id)
                            changed = True
    lines = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Assert):
            names, calls = _names_and_calls(node.test)
            if names & clocked_names or calls & (CLOCKS | clocked_funcs):
                lines.append(node.lineno)
    return sorted(lines)


def test_timing_asserts_are_found():
    source = """
import time
def best_time(fn):
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start
def measure(n):
    assert n > 0
    return best_time(lambda: n), best_time(lambda: n)
table = {n: measure(n) for n in (1, 2)}
assert table[2][0] > table[2][1]
count = 3 * 4
assert count == 12
for k, (tf, tr) in table.items():
    ratio = tf / tr
assert ratio > 1
assert best_time(print) < 1.0
fit = {f.engine: f for f in result.fits}
assert fit["paths"].per_layer > 1
work = [c.work for c in result.cells]
assert work[1] > work[0]
assert all(c.seconds > 0 for c in result.cells)
"""
    assert timing_asserts(source) == [11, 16, 17, 19, 22]


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_no_notebook_asserts_a_timing(path):
    """Timings depend on the machine and its load: a notebook prints them and asserts only
    what is exact (values, operation counts)."""
    lines = timing_asserts(path.read_text())
    assert not lines, f"{path.name}: asserts on measured times at line(s) {lines}; assert operation counts instead"


def test_jupyter_notebook_files_are_ignored_by_git():
    """The notebooks are kept as jupytext .py files; the .ipynb files Jupyter writes beside
    them (with outputs) stay local."""
    root = NOTEBOOKS[0].parent.parent
    patterns = [p.strip() for p in (root / ".gitignore").read_text().splitlines() if p.strip()[:1] not in ("", "#")]
    name = NOTEBOOKS[0].with_suffix(".ipynb").name
    assert any(fnmatch.fnmatch(name, p) for p in patterns if not p.startswith("!")), patterns
    assert not any(fnmatch.fnmatch(name, p[1:]) for p in patterns if p.startswith("!")), patterns
    if shutil.which("git") and (root / ".git").exists():
        ignored = subprocess.run(
            ["git", "check-ignore", "-q", str(NOTEBOOKS[0].with_suffix(".ipynb"))], cwd=root, check=False
        )
        assert ignored.returncode == 0, "git does not ignore the notebooks' .ipynb files"
