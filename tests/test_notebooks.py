"""The lecture notebooks (notebooks/*.py, jupytext py:percent) run top to bottom.

Each notebook is executed as a script with runpy in a fresh namespace, with matplotlib's
Agg backend and a temporary working directory, under a time limit. The notebooks assert
the lecture's values (colah's de/db = 5, Rabbany's traces, ...), so a broken library
breaks its notebook here.

HTML displays: the notebooks show tables and reports with IPython's `display()`. The test
puts a stand-in `IPython.display` module in place that calls `_repr_html_` on everything
displayed, exactly what Jupyter does, and requires a string; adkit objects left in the
notebook's namespace are checked the same way.
"""

from __future__ import annotations

import runpy
import sys
import time
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
