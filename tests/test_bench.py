"""The timing harness `adkit.bench` and the `adkit bench` command (issue 5).

- a tiny sweep (every available engine, width 2, depths 1..3): a cell per engine x depth,
  all ok, exact engines exact; JSON / CSV with every cell and the environment; a PNG plot;
- the per-engine budget (later sizes skipped, with a predicted time), the hard per-cell
  timeout (a slow cell is cut off and run() returns promptly), the agreement check (a
  wrong engine stops the run before anything is timed);
- the growth fits on synthetic data, and on real timings (paths ~ x width per layer,
  reverse ~ edges**1);
- parse_sizes; `adkit bench` end to end in a subprocess, and its usage errors (exit 2,
  a message, no traceback).

Cases marked xfail(strict=True) are adkit bugs, reproduced in /tmp/adkit_bugs_bench.md.
"""

from __future__ import annotations

import csv
import dataclasses
import io
import json
import os
import platform
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

import adkit as ad
from adkit import bench, cli
from adkit.bench import BenchError, BenchResult, Cell, check_agreement, loglog_fit, parse_sizes, run, semilog_fit
from adkit.families import product_graph
from adkit.transforms import DIFFERENTIATING_ENGINES, ENGINES

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
DEPTHS = [1, 2, 3]
MIN_TIME = 0.001
# Engines whose gradient of the product graph is exact up to rounding (the graph's
# values are powers of two, so in practice exactly 0 error); the harness's own
# agreement tolerance for them is 1e-12, and numeric differences get 1e-5.
EXACT_RTOL = 1e-12
NUMERIC_RTOL = 1e-5


def _rtol(engine: str) -> float:
    return NUMERIC_RTOL if engine == "numeric" else EXACT_RTOL


@pytest.fixture(scope="module")
def sweep() -> BenchResult:
    """The tiny sweep, run once for the tests that read its result."""
    return run(widths=[2], depths=DEPTHS, min_time=MIN_TIME)


# --- the tiny sweep ------------------------------------------------------------------------------


def test_available_engines_are_known_and_include_forward_and_reverse():
    engines = bench.available_engines()
    assert {"forward", "reverse"} <= set(engines)
    assert all(e in ENGINES for e in engines)
    assert [e for e in ENGINES if e in engines] == engines  # in adkit.ENGINES order


def test_sweep_has_a_cell_for_every_engine_and_depth(sweep):
    engines = bench.default_engines()
    assert sweep.config["engines"] == engines  # engines=None means every available engine, then jit
    keys = [(c.engine, c.width, c.depth) for c in sweep.cells]
    assert sorted(keys) == sorted((e, 2, d) for e in engines for d in DEPTHS)
    assert len(set(keys)) == len(keys)


def test_sweep_cells_are_measured_and_exact(sweep):
    for c in sweep.cells:
        spec = product_graph(c.depth, c.width)
        assert c.status == "ok", c
        assert (c.nodes, c.edges, c.paths) == (spec.n_nodes, spec.n_edges, spec.n_paths)
        assert c.repeats >= 1
        lo, hi = c.spread
        assert 0 < lo <= c.seconds <= hi
        # repeats stop at max_repeats (30) or once their total reaches min_time
        assert c.repeats == 30 or c.repeats == 1 or c.repeats * hi >= MIN_TIME, c
        assert c.rel_error is not None and c.rel_error <= _rtol(c.engine), c
        assert c.predicted_seconds is None and c.message == ""


def test_sweep_fits_one_per_engine_in_plain_words(sweep):
    assert [f.engine for f in sweep.fits] == sweep.config["engines"]
    for f in sweep.fits:
        assert f.points == len(DEPTHS)
        assert f.per_layer is not None and f.per_layer > 0
        assert f"{f.engine} (width 2): time x" in f.sentence()


def test_sweep_table(sweep):
    header, body = sweep.rows()
    assert header[:3] == ["engine", "width", "depth"]
    assert len(body) == len(sweep.cells)
    text = str(sweep)
    for engine in sweep.config["engines"]:
        assert engine in text
    assert "per added layer" in text


def test_json_has_every_cell_and_the_environment(sweep, tmp_path):
    path = tmp_path / "bench.json"
    sweep.to_json(path)
    data = json.loads(path.read_text())
    env = data["environment"]
    for key in ("python", "numpy", "sympy", "cpu"):
        assert env[key], key
    import sympy

    assert env["python"] == platform.python_version()
    assert env["numpy"] == np.__version__
    assert env["sympy"] == sympy.__version__
    assert data["config"]["depths"] == DEPTHS and data["config"]["widths"] == [2]
    cells = data["cells"]
    assert len(cells) == len(sweep.cells)
    assert {(c["engine"], c["depth"]) for c in cells} == {(e, d) for e in sweep.config["engines"] for d in DEPTHS}
    for c, cell in zip(cells, sweep.cells):
        assert c["seconds"] == cell.seconds and c["status"] == "ok" and c["paths"] == 2 ** c["depth"]
        assert c["rel_error"] == cell.rel_error
    assert [f["engine"] for f in data["fits"]] == sweep.config["engines"]
    assert all("per added layer" in f["summary"] for f in data["fits"])


def test_csv_is_a_header_and_a_row_per_cell_without_comment_lines(sweep, tmp_path):
    # issue 10: no "# environment" line (plain CSV readers choke on it); the
    # environment is in the JSON
    path = tmp_path / "bench.csv"
    sweep.to_csv(path)
    lines = path.read_text().splitlines()
    assert not any(line.startswith("#") for line in lines)
    rows = list(csv.DictReader(io.StringIO("\n".join(lines))))
    header = list(rows[0])
    assert header == [f.name for f in dataclasses.fields(Cell)]  # every field of a cell
    assert {"engine", "width", "depth", "edges", "paths", "status", "seconds", "spread", "rel_error"} <= set(header)
    assert len(rows) == len(sweep.cells)
    for row, cell in zip(rows, sweep.cells):
        assert (row["engine"], int(row["depth"]), row["status"]) == (cell.engine, cell.depth, "ok")
        assert float(row["seconds"]) == cell.seconds
        lo, hi = (float(x) for x in row["spread"].split(".."))
        assert lo <= float(row["seconds"]) * (1 + 1e-5) and hi >= float(row["seconds"]) * (1 - 1e-5)  # 6 digits


def test_plot_writes_a_png(sweep, tmp_path):
    path = tmp_path / "bench.png"
    sweep.plot(path)
    data = path.read_bytes()
    assert data[:8] == PNG_MAGIC and len(data) > 5000


# --- the jit row (issue 12) -------------------------------------------------------------------------


def test_jit_row_is_timed_on_replays_with_its_first_call_apart(sweep, tmp_path):
    assert sweep.config["engines"][-1] == "jit"
    jit_cells = [c for c in sweep.cells if c.engine == "jit"]
    assert [c.depth for c in jit_cells] == DEPTHS
    for c in sweep.cells:
        if c.engine == "jit":  # record + compile is its own number, never one of the replays
            assert c.first_call_seconds is not None and c.first_call_seconds > 0, c
        else:
            assert c.first_call_seconds is None, c
    header, body = sweep.rows()
    column = header.index("first call")
    assert all((row[column] != "") == (row[0] == "jit") for row in body)
    sweep.to_json(tmp_path / "b.json")
    cells = json.loads((tmp_path / "b.json").read_text())["cells"]
    assert [c["first_call_seconds"] for c in cells] == [c.first_call_seconds for c in sweep.cells]
    sweep.to_csv(tmp_path / "b.csv")
    rows = list(csv.DictReader(io.StringIO((tmp_path / "b.csv").read_text())))
    assert all((r["first_call_seconds"] != "") == (r["engine"] == "jit") for r in rows)


@pytest.mark.parametrize("width, depth", [(1, 5), (2, 7), (3, 4), (4, 3), (2, 40)])
def test_jit_gradient_is_the_closed_form(width, depth):
    # the family's closed form d(C w**N)/dw = N = width**depth at w = 1, never an engine's
    # number; every value on the way is a power of two, so the replays are exact (and the
    # first call, which records, returns the same number as the replays)
    spec = product_graph(depth=depth, width=width)
    g = bench.gradient_function("jit", spec.f)
    first, replay, again = g(*spec.args), g(*spec.args), g(*spec.args)
    assert first == replay == again == spec.exact_grad == width**depth
    assert g.eager_reason is None  # compiled, not a silent eager fallback


def test_jit_row_alone_with_a_fit_per_width():
    result = run(engines=["jit"], widths=[2, 3], depths=[2, 8, 16, 32], min_time=MIN_TIME)
    assert {c.engine for c in result.cells} == {"jit"}
    for c in result.cells:
        assert c.status == "ok" and c.rel_error == 0.0 and c.first_call_seconds > 0, c
    assert [(f.engine, f.width) for f in result.fits] == [("jit", 2), ("jit", 3)]


def test_a_jit_that_disagrees_stops_the_run(monkeypatch):
    real = bench.gradient_function

    def off_by_one(engine, f):
        g = real(engine, f)
        return (lambda *a: g(*a) + 1.0) if engine == "jit" else g

    monkeypatch.setattr(bench, "gradient_function", off_by_one)
    with pytest.raises(BenchError, match=r"disagree[\s\S]*jit: gradient"):
        run(engines=["reverse", "jit"], widths=[2], depths=[2], min_time=MIN_TIME)


def test_a_wrong_first_call_makes_the_jit_cell_inaccurate(monkeypatch):
    # the recording call's gradient is judged too, not only the timed replays
    real = bench.gradient_function

    def wrong_on_first_call(engine, f):
        g, calls = real(engine, f), []

        def h(*a):
            calls.append(1)
            return g(*a) * (2.0 if len(calls) == 1 else 1.0)

        return h if engine == "jit" else g

    monkeypatch.setattr(bench, "gradient_function", wrong_on_first_call)
    monkeypatch.setattr(bench, "check_agreement", lambda engines, spec: None)
    result = run(engines=["jit"], widths=[2], depths=[3], min_time=MIN_TIME)
    (cell,) = result.cells
    assert cell.status == "inaccurate" and cell.rel_error == 1.0


def test_unknown_engine_names_jit_among_the_choices():
    with pytest.raises(BenchError, match="paths, jit"):
        run(engines=["jax"], widths=[2], depths=[2])


# --- peers: other AD libraries in the same table (issue 12) ---------------------------------------


class _FakeValue:
    """A stand-in for micrograd's Value (a scalar reverse-mode node with .grad and
    .backward()), small enough to read: the peer tests need no AD library installed."""

    def __init__(self, data, parents=(), local=()):
        self.data, self.grad, self._parents, self._local = float(data), 0.0, parents, local

    def __mul__(self, other):
        other = other if isinstance(other, _FakeValue) else _FakeValue(other)
        return _FakeValue(self.data * other.data, (self, other), (other.data, self.data))

    __rmul__ = __mul__

    def backward(self):
        order, seen = [], set()

        def visit(v):
            if id(v) not in seen:
                seen.add(id(v))
                for p in v._parents:
                    visit(p)
                order.append(v)

        visit(self)
        self.grad = 1.0
        for v in reversed(order):
            for p, z in zip(v._parents, v._local):
                p.grad += z * v.grad


@pytest.fixture
def fake_micrograd(monkeypatch):
    """micrograd importable (sys.modules), and torch made not importable, whatever is installed."""
    import types

    package, engine = types.ModuleType("micrograd"), types.ModuleType("micrograd.engine")
    engine.Value = _FakeValue
    package.engine = engine
    monkeypatch.setitem(sys.modules, "micrograd", package)
    monkeypatch.setitem(sys.modules, "micrograd.engine", engine)
    monkeypatch.setitem(sys.modules, "torch", None)  # import torch raises ImportError
    return engine


def test_peer_rows_beside_the_engines_and_a_missing_peer_is_a_note(fake_micrograd):
    result = run(engines=["reverse"], peers=["micrograd", "torch"], widths=[2], depths=[1, 3], min_time=MIN_TIME)
    assert result.config["engines"] == ["reverse", "micrograd"]
    assert [(c.engine, c.depth) for c in result.cells] == [
        ("reverse", 1),
        ("reverse", 3),
        ("micrograd", 1),
        ("micrograd", 3),
    ]
    for c in result.cells:
        if c.engine == "micrograd":  # the fake's gradient against the closed form width**depth
            assert c.status == "ok" and c.rel_error == 0.0 and c.first_call_seconds > 0, c
    (note,) = result.config["notes"]
    assert note.startswith("torch not timed") and "pip install torch" in note
    assert "note: torch not timed" in str(result)
    assert [f.engine for f in result.fits] == ["reverse", "micrograd"]


def test_a_peer_with_a_wrong_gradient_is_inaccurate_not_a_stop(fake_micrograd, monkeypatch):
    monkeypatch.setattr(_FakeValue, "backward", lambda self: None)  # every gradient stays 0
    result = run(engines=["reverse"], peers=["micrograd"], widths=[2], depths=[2], min_time=MIN_TIME)
    (cell,) = [c for c in result.cells if c.engine == "micrograd"]
    assert cell.status == "inaccurate" and cell.rel_error == 1.0


@pytest.mark.parametrize("peer, module", [(name, module) for name, (module, _) in bench.PEERS.items()])
def test_installed_peer_gradient_is_the_closed_form(peer, module):
    # runs only where the peer is installed (none is a dependency); exact on these graphs
    # (powers of two), so any float64 reverse mode gives width**depth exactly
    pytest.importorskip(module)
    spec = product_graph(depth=5, width=3)
    assert bench.gradient_function(peer, spec.f)(*spec.args) == spec.exact_grad == 3**5


def test_unknown_peer_is_refused_with_the_choices():
    with pytest.raises(BenchError, match="torch, jax, autograd, micrograd"):
        run(engines=["reverse"], peers=["tensorflow"], widths=[2], depths=[2])


def test_cli_peers_option(fake_micrograd, capsys, tmp_path):
    code, out, err = _cli(
        ["bench", "--depth", "1:2", "--engines", "reverse", "--peers", "micrograd,torch", "--min-time", "0"]
        + ["--json", str(tmp_path / "b.json")],
        capsys,
    )
    assert code == 0, err
    assert "micrograd" in out and "note: torch not timed" in out
    data = json.loads((tmp_path / "b.json").read_text())
    assert {c["engine"] for c in data["cells"]} == {"reverse", "micrograd"}
    assert data["config"]["peers"] == ["micrograd", "torch"] and len(data["config"]["notes"]) == 1


def test_peer_cells_are_timed_with_the_garbage_collector_off_and_versions_recorded(fake_micrograd, monkeypatch):
    """A full collection inside a timed call costs time in proportion to every object in the
    process, not to the call's work: timed with gc off (as timeit), back on afterwards."""
    import gc

    seen = []
    backward = _FakeValue.backward
    monkeypatch.setattr(_FakeValue, "backward", lambda self: (seen.append(gc.isenabled()), backward(self)))
    assert gc.isenabled()
    result = run(engines=["reverse"], peers=["micrograd"], widths=[2], depths=[2], min_time=MIN_TIME)
    assert seen and not any(seen) and gc.isenabled() and gc.get_freeze_count() == 0
    assert "micrograd" in result.environment["peers"] and "peers" in result.to_dict()["environment"]


def test_interrupts_held_raise_after_the_block():
    """What protects jax's compile (and a peer's import): a Ctrl-C or the time limit's alarm
    during the block lets the block finish, then is raised."""
    finished = []
    with pytest.raises(KeyboardInterrupt):
        with bench._interrupts_held():
            os.kill(os.getpid(), signal.SIGINT)
            finished.append(True)
    assert finished == [True]
    with pytest.raises(TimeoutError):
        with bench._interrupts_held():
            os.kill(os.getpid(), signal.SIGALRM)
            finished.append(True)
    assert finished == [True, True]
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler


def test_first_call_prediction_scales_quadratically_from_a_slow_enough_one():
    def cell(edges, first):
        return Cell("jax", 2, 1, 1, edges, 1, "ok", seconds=1e-5, first_call_seconds=first)

    assert bench._predict_first_call([], 100) is None
    assert bench._predict_first_call([cell(10, 0.09)], 1000) is None  # set-up dominated: not scaled
    assert bench._predict_first_call([cell(10, 0.09), cell(100, 1.0)], 400) == pytest.approx(16.0)


def test_a_compile_predicted_over_the_limit_is_skipped_before_it_starts(fake_micrograd, monkeypatch):
    monkeypatch.setattr(bench, "_predict_first_call", lambda done, edges: 100.0 if done else None)
    result = run(engines=[], peers=["micrograd"], widths=[2], depths=[1, 2, 3], min_time=MIN_TIME, timeout=5)
    assert [c.status for c in result.cells] == ["ok", "skipped", "skipped"]
    assert "first call (compile) predicted" in result.cells[1].message


def test_cli_ctrl_c_while_importing_the_peers(monkeypatch, capsys):
    def interrupted(peers):
        raise KeyboardInterrupt

    monkeypatch.setattr(bench, "importable_peers", interrupted)
    code, out, err = _cli(["bench", "--depth", "1", "--engines", "reverse", "--peers", "torch"], capsys)
    assert code == 130 and "interrupted before any cell was measured" in err and "Traceback" not in err


def test_jax_peer_is_float64_and_leaves_the_users_setting():
    """2**130 overflows float32: only a float64 gradient is exact. jax's global x64 flag is
    as the user left it, after gradient_function and after a run."""
    jax = pytest.importorskip("jax")
    before = jax.config.jax_enable_x64
    jax.config.update("jax_enable_x64", False)
    try:
        spec = product_graph(depth=130, width=2)
        assert bench.gradient_function("jax", spec.f)(*spec.args) == spec.exact_grad == 2.0**130
        assert jax.config.jax_enable_x64 is False
        result = run(engines=[], peers=["jax"], widths=[2], depths=[130], min_time=MIN_TIME)
        assert result.cells[0].status == "ok" and result.cells[0].rel_error == 0.0
        assert result.cells[0].first_call_seconds is not None
        assert jax.config.jax_enable_x64 is False
    finally:
        jax.config.update("jax_enable_x64", before)


# --- budget, timeout, agreement ---------------------------------------------------------------------


def test_budget_skips_larger_sizes_with_a_predicted_time(tmp_path):
    seen = []
    result = run(
        engines=["forward", "reverse"],
        depths=[1, 2, 3, 4],
        budget=1e-9,  # any measured time exceeds it
        min_time=0,
        progress=lambda cell, done, total: seen.append((cell.engine, cell.depth, done, total)),
    )
    for engine in ("forward", "reverse"):
        cells = [c for c in result.cells if c.engine == engine]
        assert [c.status for c in cells] == ["ok", "skipped", "skipped", "skipped"]
        assert cells[0].seconds > 0
        predicted = [c.predicted_seconds for c in cells[1:]]
        assert all(p is not None and p > cells[0].seconds for p in predicted)
        assert predicted == sorted(predicted)  # a growth fit: more layers, more time
        for c in cells[1:]:
            assert c.seconds is None and c.repeats == 0 and c.rel_error is None
            assert "budget" in c.message
    assert [(e, d) for e, d, _, _ in seen] == [(e, d) for e in ("forward", "reverse") for d in (1, 2, 3, 4)]
    assert [(done, total) for _, _, done, total in seen] == [(k, 8) for k in range(1, 9)]
    assert "(predicted)" in str(result)
    result.plot(tmp_path / "skipped.png")  # the dotted predicted lines
    assert (tmp_path / "skipped.png").read_bytes()[:8] == PNG_MAGIC


def test_an_engine_under_its_budget_runs_every_size():
    # reverse mode takes well under 1 ms at depth 100; the budget is 1 s and the timeout 20 s.
    # (Fixed in db74e81: one measured size used to predict x2 per layer, so 2**50 x 0.1 ms.)
    result = run(engines=["reverse"], depths=[50, 100], min_time=0, budget=1.0)
    assert [c.status for c in result.cells] == ["ok", "ok"]


def test_prediction_for_a_far_depth_does_not_crash():
    # (fixed in db74e81: factor ** (depth - last) used to overflow a float)
    result = run(engines=["forward"], depths=[1, 1100], budget=1e-9, min_time=0)
    assert result.cells[1].status in ("skipped", "overflow")


def test_predictions_grow_like_each_engines_work(tmp_path):
    # paths: 2**30 paths at depth 30 against 2**2 at depth 2, so any fitted growth predicts
    # a factor of far more than 1e5; forward mode: 15 times the edges, far less than 1e3.
    result = run(engines=["paths", "forward"], depths=[1, 2, 30, 1100], budget=1e-9, min_time=0)
    pred = {(c.engine, c.depth): c.predicted_seconds for c in result.cells if c.status == "skipped"}
    assert pred[("paths", 30)] / pred[("paths", 2)] > 1e5
    assert 1 < pred[("forward", 30)] / pred[("forward", 2)] < 1e3
    assert pred[("paths", 1100)] > 1e300  # beyond any wait (possibly inf): shown, not crashed
    header, body = result.rows()
    assert not any(word in " ".join(row) for row in body for word in ("inf", "nan"))
    # strict JSON: no Infinity / NaN literals, whatever the predictions are
    result.to_json(tmp_path / "r.json")

    def refuse(constant):
        raise AssertionError(f"non-standard JSON constant {constant}")

    data = json.loads((tmp_path / "r.json").read_text(), parse_constant=refuse)
    assert len(data["cells"]) == 8


def test_overflowing_sizes_are_reported_not_run():
    result = run(engines=["forward", "reverse"], depths=[1, 2, 1000, 1100], min_time=0, budget=60)
    for c in result.cells:
        if c.depth == 1100:
            assert c.status == "overflow", c
            assert "beyond float64" in c.message and "1e331" in c.message
            assert c.seconds is None and c.rel_error is None
        else:
            assert c.status == "ok" and c.rel_error <= EXACT_RTOL, c


def test_table_of_an_overflowing_cell():
    cell = Cell("forward", 2, 1100, 2202, 4400, 2**1100, "overflow", message="beyond float64")
    result = BenchResult([cell], [], {"engines": ["forward"], "widths": [2]})
    header, body = result.rows()
    assert "overflow" in body[0][-1]


def _slow_family(monkeypatch, slow_from: int, seconds: float = 30.0) -> None:
    """The product family, but f sleeps `seconds` on graphs of depth >= slow_from."""
    real = bench.FAMILIES["product"]

    def make(depth, width=2):
        spec = real(depth=depth, width=width)
        if depth >= slow_from:
            inner = spec.f

            def f(w):
                time.sleep(seconds)
                return inner(w)

            spec.f = f
        return spec

    monkeypatch.setitem(bench.FAMILIES, "product", make)


def test_hard_timeout_cuts_a_slow_cell_and_run_returns_promptly(monkeypatch):
    _slow_family(monkeypatch, slow_from=3)
    handler = signal.getsignal(signal.SIGALRM)
    start = time.perf_counter()
    result = run(engines=["forward", "reverse"], depths=[1, 2, 3, 4], timeout=0.2, min_time=0, budget=60)
    elapsed = time.perf_counter() - start
    # two cells cut at 0.2 s each; a missing timeout would sleep 30 s per cell
    assert elapsed < 5
    for engine in ("forward", "reverse"):
        cells = {c.depth: c for c in result.cells if c.engine == engine}
        assert cells[1].status == cells[2].status == "ok"
        assert cells[3].status == "timeout" and "hard limit" in cells[3].message and cells[3].seconds is None
        assert cells[4].status == "skipped"  # a timed-out engine is not run on larger graphs
    # the alarm is cleared and the previous handler restored
    assert signal.getitimer(signal.ITIMER_REAL) == (0.0, 0.0)
    assert signal.getsignal(signal.SIGALRM) == handler


def test_timeout_interrupts_the_paths_engine():
    # the real exponential engine: 2**34 paths take many seconds even enumerated in numpy
    # chunks (~1 ns per path); the alarm stops it at 0.05 s
    spec = product_graph(34, 2)
    start = time.perf_counter()
    with pytest.raises(TimeoutError), ad.paths_budget(2**34), bench.time_limit(0.05):
        ad.grad(spec.f, engine="paths")(*spec.args)
    assert time.perf_counter() - start < 1.0
    assert signal.getitimer(signal.ITIMER_REAL) == (0.0, 0.0)


def _wrong_paths_engine(monkeypatch, factor: float = 1 + 1e-6) -> list[int]:
    """Register, under the name "paths", an engine whose gradient is off by `factor`."""
    calls = []

    def wrong(f, args, argnums, single):
        calls.append(1)
        value, g = ad.value_and_grad(f, argnums=argnums[0] if single else argnums)(*args)
        return value, g * factor

    monkeypatch.setitem(DIFFERENTIATING_ENGINES, "paths", wrong)
    return calls


def test_disagreeing_engine_stops_the_run_before_anything_is_timed(monkeypatch):
    calls = _wrong_paths_engine(monkeypatch)
    timed = []
    with pytest.raises(BenchError, match="disagree") as info:
        run(engines=["forward", "paths", "reverse"], depths=[1, 2, 3], min_time=0, progress=lambda *a: timed.append(a))
    message = str(info.value)
    assert "paths:" in message and "forward:" not in message and "reverse:" not in message
    assert "nothing is timed" in message
    assert timed == []  # no cell was measured
    assert calls == [1]  # the wrong engine ran once, for the check, and never again


def test_agreement_check_reports_a_failing_engine(monkeypatch):
    def broken(f, args, argnums, single):
        raise RuntimeError("engine exploded")

    monkeypatch.setitem(DIFFERENTIATING_ENGINES, "paths", broken)
    with pytest.raises(BenchError, match="engine exploded"):
        check_agreement(["forward", "paths"], product_graph(2, 2))


def test_agreement_check_passes_for_every_available_engine():
    check_agreement(bench.available_engines(), product_graph(3, 2))
    check_agreement(bench.available_engines(), product_graph(2, 3))


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"engines": ["bogus"]}, "unknown engine"),
        ({"family": "bogus"}, "unknown family"),
        ({"depths": []}, "positive"),
        ({"depths": [0, 1]}, "positive"),
        ({"widths": [0]}, "positive"),
    ],
)
def test_run_rejects_bad_arguments(kwargs, match):
    with pytest.raises(BenchError, match=match):
        run(**({"engines": ["forward"], "depths": [1]} | kwargs), min_time=0)


@pytest.mark.parametrize("family", ["chain", "layered"])
def test_other_families(family):
    result = run(engines=["forward", "reverse"], widths=[2], depths=[1, 2, 3], family=family, min_time=0)
    assert len(result.cells) == 6
    for c in result.cells:
        # chain and the layered DAG are not exact in floating point: forward and reverse
        # agree with the closed forms to a few roundings per layer
        assert c.status == "ok" and c.rel_error <= EXACT_RTOL, c


# --- growth fits ------------------------------------------------------------------------------------


@pytest.mark.parametrize("base", [1.5, 2.0, 3.0, 64.0])
def test_semilog_fit_recovers_the_base(base):
    depths = np.arange(1, 11)
    seconds = 1e-6 * base**depths
    # exact data: only rounding in the least-squares fit
    assert semilog_fit(depths, seconds) == pytest.approx(base, rel=1e-9)


@pytest.mark.parametrize("exponent", [1.0, 1.5, 2.0])
def test_loglog_fit_recovers_exponent_and_r2(exponent):
    edges = np.array([10, 30, 100, 300, 1000, 3000])
    slope, r2 = loglog_fit(edges, 5e-8 * edges**exponent)
    assert slope == pytest.approx(exponent, rel=1e-9)
    assert r2 == pytest.approx(1.0, abs=1e-12)


def test_loglog_fit_r2_drops_with_noise():
    edges = np.array([10, 30, 100, 300, 1000, 3000])
    noise = np.array([1.0, 1.6, 0.7, 1.4, 0.6, 1.3])
    slope, r2 = loglog_fit(edges, 1e-7 * edges * noise)
    assert 0.5 < r2 < 0.999 and slope == pytest.approx(1.0, abs=0.2)


def test_fits_need_enough_points():
    assert semilog_fit([3], [1.0]) is None
    assert loglog_fit([10, 20], [1.0, 2.0]) == (None, None)


def test_fit_sentence():
    f = bench.Fit("paths", 2, per_layer=2.0, exponent=3.0, r2=0.9, points=5, r2_per_layer=0.999, verdict="exponential")
    assert (
        f.sentence() == "paths (width 2): time x2.00 per added layer (R² 0.999), ~ edges^3.00 (R² 0.900) "
        "-> exponential: the paths multiply by 2 per layer"
    )
    assert "too few" in bench.Fit("paths", 4, None, None, None, 1).sentence()
    flat = bench.Fit("reverse", 2, 1.01, 0.95, 0.99, 9, 0.6, verdict="polynomial").sentence()
    assert flat.endswith("-> polynomial in the graph's size")
    noisy = bench.Fit("reverse", 2, 1.4, 0.3, 0.5, 5, 0.6, verdict="undecided", reason="neither model fits").sentence()
    assert noisy.endswith("-> undecided (neither model fits)")


@pytest.mark.parametrize("width, depths", [(2, [6, 7, 8, 9, 10]), (3, [4, 5, 6, 7])])
def test_paths_work_grows_by_the_width_per_layer(width, depths, monkeypatch):
    # The lectures' claim, counted rather than timed (timings belong to `adkit bench`, whose
    # growth verdict reports them): the edge steps the paths engine actually takes (every
    # partial path extended by one edge is one entry of the array extend_paths returns),
    # multiply by the width with every added layer.
    from adkit.engines import paths

    steps = [0]
    real = paths.extend_paths

    def counted(prefixes, z):
        grown = real(prefixes, z)
        steps[0] += grown.size
        return grown

    monkeypatch.setattr(paths, "extend_paths", counted)
    counts = []
    for depth in depths:
        spec = product_graph(depth=depth, width=width)
        steps[0] = 0
        ad.grad(spec.f, argnums=tuple(range(len(spec.args))), engine="paths")(*spec.args)
        counts.append(steps[0])
    ratios = [b / a for a, b in zip(counts, counts[1:])]
    # width**depth paths of depth + 1 edges: the ratio tends to the width from above
    assert all(width <= r <= width * 1.35 for r in ratios), (counts, ratios)


def test_reverse_work_grows_linearly_in_edges():
    # Counted, not timed: one tape entry per op and one sweep over the tape, so the work of
    # reverse mode is a fixed multiple of the graph's edges at every depth (the lectures'
    # dynamic program touches each edge once).
    from adkit.engines.reverse import ReverseTrace

    sizes = []
    real_backward = ReverseTrace.backward

    def counting_backward(self, seeds, retain=True):
        sizes.append(len(self.entries))
        return real_backward(self, seeds, retain)

    ReverseTrace.backward = counting_backward
    try:
        for depth in [2, 8, 32, 128, 512]:
            spec = product_graph(depth=depth, width=2)  # edges grow linearly with the depth
            ad.grad(spec.f, argnums=tuple(range(len(spec.args))))(*spec.args)
    finally:
        ReverseTrace.backward = real_backward
    exponent, r2 = loglog_fit([2, 8, 32, 128, 512], sizes)
    assert 0.95 < exponent < 1.05 and r2 > 0.999, (sizes, exponent, r2)


# --- parse_sizes ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "text, expected",
    [
        ("2", [2]),
        ("2,4,8", [2, 4, 8]),
        (" 8, 2 ,2", [2, 8]),  # sorted, duplicates dropped, spaces ignored
        ("1:5", [1, 2, 3, 4, 5]),
        ("4:16:4", [4, 8, 12, 16]),
        ("4:15:4", [4, 8, 12]),
        ("3:3", [3]),
        ("1:3,10", [1, 2, 3, 10]),
    ],
)
def test_parse_sizes(text, expected):
    assert parse_sizes(text) == expected


@pytest.mark.parametrize(
    "text", ["", ",", "abc", "0", "-1", "2,0", "1.5", "5:1", "1:5:0", "1:5:-1", "1:2:3:4", "a:b", "-3:2", "200000"]
)
def test_parse_sizes_rejects(text):
    with pytest.raises(ValueError):
        parse_sizes(text)


# --- the `adkit bench` command -----------------------------------------------------------------------

ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")


def _table_engines(out: str) -> list[str]:
    """The engine column of the rows of the rich table printed by `adkit bench`."""
    return [line.split()[1] for line in out.splitlines() if re.match(r"[│|] \w+ +[│|] +\d", line)]


def test_bench_command_end_to_end(tmp_path):
    files = {k: tmp_path / f"out.{k}" for k in ("json", "csv", "png")}
    # FORCE_COLOR and TTY_INTERACTIVE make rich draw its progress bar although stderr is a pipe
    env = os.environ | {"FORCE_COLOR": "1", "TTY_INTERACTIVE": "1", "MPLBACKEND": "Agg"}
    args = [
        "--width",
        "2",
        "--depth",
        "1:3",
        "--min-time",
        "0",
        "--json",
        files["json"],
        "--csv",
        files["csv"],
        "--plot",
        files["png"],
    ]
    proc = subprocess.run(
        [sys.executable, "-m", "adkit", "bench", *map(str, args)],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env=env,
        timeout=120,
    )
    out, err = ANSI.sub("", proc.stdout), ANSI.sub("", proc.stderr)
    assert proc.returncode == 0, err
    assert "Traceback" not in err
    engines = bench.default_engines()
    assert sorted(_table_engines(out)) == sorted(e for e in engines for _ in range(3))
    assert "growth fits" in out and "per added layer" in out
    # progress and messages on stderr, none of it on stdout
    assert re.search(r"checking agreement|\w+ +width 2 depth \d", err)
    assert "checking agreement" not in out
    for name in files.values():
        assert f"wrote {name}" in err and str(name) not in out
    data = json.loads(files["json"].read_text())
    assert len(data["cells"]) == 3 * len(engines)
    assert {"python", "numpy", "sympy", "cpu"} <= set(data["environment"])
    assert len(files["csv"].read_text().splitlines()) == 1 + 3 * len(engines)  # header, rows
    assert files["png"].read_bytes()[:8] == PNG_MAGIC


def _cli(argv, capsys):
    """Run `adkit ...` in this process; (exit code, stdout, stderr). An exception escaping
    here would be a traceback on the command line."""
    try:
        code = cli.main(argv)
    except SystemExit as exc:
        code = exc.code
    out, err = capsys.readouterr()
    return code, out, err


@pytest.mark.parametrize(
    "argv, mentions",
    [
        (["--width", "abc"], "abc"),
        (["--depth", "0"], "'0'"),
        (["--depth", "5:1"], "5:1"),
        (["--width", "2,-3"], "2,-3"),
        (["--budget", "-1"], "--budget"),
        (["--budget", "0"], "--budget"),
        (["--timeout", "0"], "--timeout"),
        (["--min-time", "-1"], "--min-time"),
        (["--plot", "/nonexistent-folder-adkit/x.png"], "/nonexistent-folder-adkit/x.png"),
        (["--json", "/nonexistent-folder-adkit/x.json"], "/nonexistent-folder-adkit/x.json"),
        (["--engines", "forward,bogus"], "bogus"),
        (["--family", "bogus"], "bogus"),
        (["--budget", "abc"], "abc"),
    ],
)
def test_bench_usage_errors_exit_2_with_a_message(argv, mentions, capsys, tmp_path):
    code, out, err = _cli(["bench", "--depth", "1", "--min-time", "0", *argv], capsys)
    assert code == 2
    assert mentions in err
    assert "Traceback" not in err and out == ""


def test_bench_usage_error_through_python_m_adkit(tmp_path):
    proc = subprocess.run(
        [sys.executable, "-m", "adkit", "bench", "--depth", "5:1"],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        timeout=60,
    )
    assert proc.returncode == 2
    assert "5:1" in proc.stderr and "Traceback" not in proc.stderr
    assert proc.stdout == ""


def test_bench_disagreement_exits_1(monkeypatch, capsys):
    _wrong_paths_engine(monkeypatch)
    code, out, err = _cli(["bench", "--depth", "1:2", "--engines", "forward,paths", "--min-time", "0"], capsys)
    assert code == 1
    assert "disagree" in err and "paths" in err
    assert "Traceback" not in err and "adkit bench" not in out


def test_bench_unavailable_engine_is_bad_usage(monkeypatch, capsys):
    monkeypatch.delitem(DIFFERENTIATING_ENGINES, "paths")
    code, out, err = _cli(["bench", "--depth", "1:2", "--engines", "forward,paths", "--min-time", "0"], capsys)
    assert code == 2 and "paths" in err


def test_bench_engines_option_selects_engines(capsys):
    code, out, err = _cli(
        ["bench", "--width", "2", "--depth", "1,2", "--engines", "reverse", "--min-time", "0"], capsys
    )
    assert code == 0
    assert _table_engines(out) == ["reverse", "reverse"]
    assert "reverse (width 2)" in out and "forward" not in out


def test_bench_command_past_float64(capsys):
    depths = "1,2,4,8,16,32,64,128,256,512,1000,1100"
    code, out, err = _cli(["bench", "--depth", depths, "--engines", "forward", "--min-time", "0"], capsys)
    assert code == 0 and "beyond float64" in out


def test_bench_help_has_examples(capsys):
    code, out, err = _cli(["bench", "--help"], capsys)
    assert code == 0
    assert "examples:" in out and "--depth" in out and "--budget" in out and "adkit bench --width" in out


def test_paths_column_of_huge_counts():
    # 2**1000 paths: the table shows the order of magnitude
    cell = Cell("forward", 2, 1000, 2002, 4000, 2**1000, "ok", seconds=1e-3, spread=(1e-3, 1e-3), repeats=1)
    header, body = BenchResult([cell], [], {"engines": ["forward"], "widths": [2]}).rows()
    text = body[0][header.index("paths")]
    assert re.search(r"e\+?301$", text) and "inf" not in text


def test_csv_of_an_empty_result_is_its_header(tmp_path):
    BenchResult([], [], {"engines": [], "widths": []}, {"python": "x"}).to_csv(tmp_path / "e.csv")
    assert Path(tmp_path / "e.csv").read_text().splitlines() == [",".join(f.name for f in dataclasses.fields(Cell))]


def test_bench_refuses_a_graph_too_large_to_trace(capsys):
    code, out, err = _cli(["bench", "--width", "100000", "--depth", "2"], capsys)
    assert code == 2 and "edges" in err and "Traceback" not in err


# --- issue 10: verdicts that hold ---------------------------------------------------------------------


def test_expected_accuracy_follows_the_documented_rules():
    eps = np.finfo(np.float64).eps
    # exact engines: EXACT_ULPS (4) eps per node and edge; numeric: 100 eps^(4/5) per node and edge
    for engine in ("forward", "reverse", "paths", "symbolic"):
        assert bench.expected_accuracy(engine, 10, 30) == pytest.approx(4 * eps * 40, rel=1e-12)
    assert bench.expected_accuracy("numeric", 10, 30) == pytest.approx(100 * eps**0.8 * 40, rel=1e-12)


def test_numeric_cells_far_from_the_exact_gradient_are_inaccurate_not_ok(tmp_path, monkeypatch):
    # f = w**(2**depth) at w = 1, exact gradient 2**depth (the family's closed form). The
    # numeric engine itself is now right here or refuses (it adapts its step and refuses
    # what does not converge), so a numeric engine that is 1 % off on graphs deeper than 1
    # stands in for an inaccurate one: such cells must not be called "ok".
    # Depth 1 first: the harness's agreement check runs on the smallest graph.
    from adkit.engines import GRAD_ENGINES

    honest = GRAD_ENGINES["numeric"]

    def one_percent_off(f, args, argnums, single):
        value, g = honest(f, args, argnums, single)
        return value, (g if abs(np.sum(g)) <= 2.0 else g * 1.01)

    monkeypatch.setitem(GRAD_ENGINES, "numeric", one_percent_off)
    result = run(engines=["numeric", "reverse"], depths=[1, 4, 8], min_time=0, budget=60)
    cells = {(c.engine, c.depth): c for c in result.cells}
    assert cells[("numeric", 1)].status == "ok"
    for depth in (4, 8):
        bad = cells[("numeric", depth)]
        assert bad.rel_error == pytest.approx(0.01, rel=1e-3), bad  # the premise, from the closed form
        assert bad.status == "inaccurate" and "expected" in bad.message, bad
        assert cells[("reverse", depth)].status == "ok"
    assert "inaccurate" in str(result)
    result.to_json(tmp_path / "r.json")
    result.to_csv(tmp_path / "r.csv")
    data = json.loads((tmp_path / "r.json").read_text())
    assert [c["status"] for c in data["cells"]] == [c.status for c in result.cells]
    rows = list(csv.DictReader(io.StringIO((tmp_path / "r.csv").read_text())))
    assert [r["status"] for r in rows] == ["ok", "inaccurate", "inaccurate", "ok", "ok", "ok"]
    assert all(float(r["expected_error"]) > 0 for r in rows)


def test_a_cell_whose_engine_raises_is_failed(monkeypatch):
    real = DIFFERENTIATING_ENGINES["paths"]

    def flaky(f, args, argnums, single):
        if flaky.calls:  # the agreement check passes, the timed cells raise
            raise ArithmeticError("broken on purpose")
        flaky.calls += 1
        return real(f, args, argnums, single)

    flaky.calls = 0
    monkeypatch.setitem(DIFFERENTIATING_ENGINES, "paths", flaky)
    result = run(engines=["paths"], depths=[1, 2], min_time=0)
    assert [c.status for c in result.cells] == ["failed", "failed"]
    assert "broken on purpose" in result.cells[0].message


def _cells(depths, seconds, engine="reverse"):
    return [
        Cell(engine, 2, d, 0, 6 * d + 2, 2**d, "ok", seconds=s, spread=(s, s), repeats=1)
        for d, s in zip(depths, seconds)
    ]


def test_growth_verdict_on_exact_exponential_timings():
    depths = list(range(1, 11))
    fit = bench._fit("paths", 2, _cells(depths, [1e-6 * 2.0**d for d in depths], "paths"))
    assert fit.verdict == "exponential" and fit.per_layer == pytest.approx(2.0, rel=1e-9)
    assert fit.r2_per_layer == pytest.approx(1.0, abs=1e-12) and fit.r2 < 0.99  # a power law bends away
    assert "exponential" in fit.sentence() and "R² 1.000" in fit.sentence()


def test_growth_verdict_on_exact_polynomial_timings():
    depths = [2, 4, 8, 16, 32, 64, 128, 256, 512, 1000]
    fit = bench._fit("reverse", 2, _cells(depths, [1e-7 * (6 * d + 2) for d in depths]))
    assert fit.verdict == "polynomial" and fit.exponent == pytest.approx(1.0, rel=1e-9)
    assert fit.r2 == pytest.approx(1.0, abs=1e-12) and fit.r2_per_layer < 0.95
    assert fit.sentence().endswith("-> polynomial in the graph's size")


@pytest.mark.parametrize(
    "relative",
    [
        [1.0, 1.0, 1.1, 1.6, 2.2],  # overhead, then two preempted cells: "exponential" before
        [1.0, 1.02, 0.97, 1.01, 1.6],  # flat with one outlier
        [1.0, 1.05, 0.95, 1.4, 1.9],
    ],
)
def test_growth_verdict_is_undecided_on_a_noisy_short_series(relative):
    # 5 depths of a layered graph in reverse mode (tens of µs, so noise dominates):
    # neither model explains the data, and the verdict says so with both fits' quality
    depths = [1, 2, 3, 4, 5]
    fit = bench._fit("reverse", 2, _cells(depths, [5e-5 * r for r in relative]))
    assert fit.verdict == "undecided", fit
    assert "-> undecided (" in fit.sentence() and "R²" in fit.reason and "sizes, depths" in fit.reason


def test_growth_verdict_needs_enough_sizes():
    fit = bench._fit("paths", 2, _cells([1, 2, 3], [1e-6, 2e-6, 4e-6], "paths"))  # exact x2, but 3 sizes
    assert fit.verdict == "undecided" and "too few" in fit.reason
    assert bench.classify_growth([1], [8], [1e-6]).verdict == "undecided"


def test_growth_fits_use_inaccurate_cells_too():
    # an inaccurate gradient was still timed: its time counts for the growth
    cells = _cells(range(1, 7), [1e-6 * 2.0**d for d in range(1, 7)], "numeric")
    for c in cells[3:]:
        c.status = "inaccurate"
    assert bench._fit("numeric", 2, cells).points == 6


# --- output paths, stdout, Ctrl-C ---------------------------------------------------------------------


def _no_run(monkeypatch):
    def refuse(*a, **k):
        raise AssertionError("run() must not start when an output path is bad")

    monkeypatch.setattr(bench, "run", refuse)


@pytest.mark.parametrize(
    "make_argv, mentions",
    [
        (lambda d: ["--json", str(d)], "is a folder"),
        (lambda d: ["--csv", str(d / "file.txt" / "x.csv")], "is not a folder"),
        (lambda d: ["--json", str(d / "missing" / "x.json")], "does not exist"),
        (lambda d: ["--json", str(d / "same"), "--csv", str(d / "same")], "both write"),
        (lambda d: ["--json", "-", "--csv", "-"], "only one"),
        (lambda d: ["--plot", "-"], "stdout"),
        (lambda d: ["--plot", str(d / "x.docx")], "unknown picture format"),
    ],
)
def test_bad_output_paths_exit_2_before_running(make_argv, mentions, monkeypatch, capsys, tmp_path):
    (tmp_path / "file.txt").write_text("a file, not a folder")
    _no_run(monkeypatch)
    code, out, err = _cli(["bench", "--depth", "1", *make_argv(tmp_path)], capsys)
    assert code == 2 and mentions in err and "Traceback" not in err and out == ""


def test_check_outputs_refuses_an_unwritable_folder(monkeypatch, tmp_path):
    # os.access decides (a permission test with chmod would pass vacuously as root)
    monkeypatch.setattr(bench.os, "access", lambda path, mode: False)
    with pytest.raises(ValueError, match="permission denied"):
        bench.check_outputs(str(tmp_path / "x.json"), None, None)


def test_csv_to_stdout_is_pure_csv(capsys):
    argv = ["bench", "--width", "2", "--depth", "1,2", "--engines", "reverse", "--min-time", "0", "--csv", "-"]
    code, out, err = _cli(argv, capsys)
    assert code == 0
    rows = list(csv.DictReader(io.StringIO(out)))  # the whole of stdout is the CSV
    assert [(r["engine"], r["depth"], r["status"]) for r in rows] == [("reverse", "1", "ok"), ("reverse", "2", "ok")]
    assert "growth fits" in err  # the table moved to stderr


def test_json_to_stdout_is_pure_json(capsys):
    argv = ["bench", "--width", "2", "--depth", "1,2", "--engines", "reverse", "--min-time", "0", "--json", "-"]
    code, out, err = _cli(argv, capsys)
    assert code == 0
    data = json.loads(out)  # the whole of stdout is the JSON
    assert [c["depth"] for c in data["cells"]] == [1, 2] and data["config"]["interrupted"] is False
    assert "growth fits" in err


def _interrupt_at(monkeypatch, depth: int) -> None:
    """The product family, but f raises KeyboardInterrupt (as Ctrl-C does) from `depth` on."""
    real = bench.FAMILIES["product"]

    def make(depth, width=2, _from=depth):
        spec = real(depth=depth, width=width)
        if depth >= _from:

            def f(w):
                raise KeyboardInterrupt

            spec.f = f
        return spec

    monkeypatch.setitem(bench.FAMILIES, "product", make)


def test_run_interrupted_keeps_the_finished_cells(monkeypatch):
    _interrupt_at(monkeypatch, 3)
    with pytest.raises(bench.BenchInterrupted) as info:
        run(engines=["forward", "reverse"], depths=[1, 2, 3, 4], min_time=0)
    result = info.value.result
    assert [(c.engine, c.depth, c.status) for c in result.cells] == [("forward", 1, "ok"), ("forward", 2, "ok")]
    assert result.config["interrupted"] is True
    assert isinstance(info.value, KeyboardInterrupt)  # callers that stop on Ctrl-C still stop


def test_ctrl_c_prints_and_writes_what_was_measured(monkeypatch, capsys, tmp_path):
    _interrupt_at(monkeypatch, 3)
    files = {k: tmp_path / f"out.{k}" for k in ("json", "csv", "png")}
    argv = ["bench", "--depth", "1:4", "--engines", "forward,reverse", "--min-time", "0"]
    argv += ["--json", str(files["json"]), "--csv", str(files["csv"]), "--plot", str(files["png"])]
    code, out, err = _cli(argv, capsys)
    assert code == 130
    assert _table_engines(out) == ["forward", "forward"] and "interrupted" in out + err
    data = json.loads(files["json"].read_text())
    assert [c["depth"] for c in data["cells"]] == [1, 2] and data["config"]["interrupted"] is True
    assert len(files["csv"].read_text().splitlines()) == 3
    assert files["png"].read_bytes()[:8] == PNG_MAGIC


def test_a_real_sigint_stops_the_command_cleanly(tmp_path):
    # a real SIGINT from the OS, sent by the process to itself when the depth-3 cell
    # starts (deterministic: no sleeping, no racing against start-up)
    script = (
        "import os, signal, sys\n"
        "from adkit import bench, cli\n"
        "real = bench.FAMILIES['product']\n"
        "def make(depth, width=2):\n"
        "    spec = real(depth=depth, width=width)\n"
        "    if depth >= 3:\n"
        "        inner = spec.f\n"
        "        def f(w):\n"
        "            os.kill(os.getpid(), signal.SIGINT)\n"
        "            return inner(w)\n"
        "        spec.f = f\n"
        "    return spec\n"
        "bench.FAMILIES['product'] = make\n"
        "sys.exit(cli.main(sys.argv[1:]))\n"
    )
    out_json = tmp_path / "out.json"
    proc = subprocess.run(
        [sys.executable, "-c", script, "bench", "--depth", "1:5", "--engines", "reverse", "--min-time", "0"]
        + ["--json", str(out_json)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 130, proc.stderr
    assert "Traceback" not in proc.stderr
    assert _table_engines(ANSI.sub("", proc.stdout)) == ["reverse", "reverse"]
    assert [c["depth"] for c in json.loads(out_json.read_text())["cells"]] == [1, 2]
