"""The paths engine's two routes (issue 12): a program of Python floats is recorded on the
reverse engine's tape and enumerated in layer blocks; anything else is traced into a Graph,
scalarised, and enumerated the same way. Same paths, same counts, same refusals, the same
numbers as independent oracles (closed forms, the complex step, a forward recursion in
numpy); no timings here (scripts/bench_paths.py measures them)."""

from __future__ import annotations

import cmath
import math
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest

import adkit as ad
from adkit.engines import paths
from adkit.families import layered_dag, product_graph

# Every path product is a few hundred rounded multiplies (depth x (width + 1) at most) of
# float64 (2**-53 each), and the sum over paths is pairwise: the relative error stays below
# ~1e-13 on these graphs; 1e-12 leaves room, and a wrong path (missing, doubled) would
# change the sum by at least one product, 1/n_paths >= 1e-6 of it.
PATH_SUM_RTOL = 1e-12


@pytest.mark.parametrize("depth, width", [(12, 2), (16, 2), (3, 8), (5, 8), (2, 32), (3, 32), (4, 32)])
def test_benchmark_cells_give_the_closed_form_gradient(depth: int, width: int) -> None:
    spec = product_graph(depth, width)  # the gradient is width**depth (families.product_graph)
    with ad.paths_budget(spec.n_paths):
        assert paths._scalar_program(spec.f, spec.args, (0,)) is not None  # the tape route, not the Graph
        got = ad.grad(spec.f, engine="paths")(*spec.args)
    assert got == pytest.approx(float(width**depth), rel=PATH_SUM_RTOL)


@pytest.mark.parametrize("depth, width", [(5, 2), (4, 8), (3, 32)])
def test_the_lectures_n_ary_product_nodes_take_the_tape_route(depth: int, width: int) -> None:
    # adkit.product has no scalar fast path: its float results are generic tape nodes, whose
    # local derivatives are their VJP at 1.0 (as on the Graph route)
    spec = product_graph(depth, width, nary=True)
    assert paths._scalar_program(spec.f, spec.args, (0,)) is not None
    assert ad.grad(spec.f, engine="paths")(*spec.args) == pytest.approx(float(width**depth), rel=PATH_SUM_RTOL)


def _extend_sizes(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """The sizes of the arrays `extend_paths` returns: one entry per partial path extended
    by one (merged) edge."""
    sizes: list[int] = []
    real = paths.extend_paths

    def counted(prefixes: np.ndarray, z: np.ndarray) -> np.ndarray:
        grown = real(prefixes, z)
        sizes.append(grown.size)
        return grown

    monkeypatch.setattr(paths, "extend_paths", counted)
    return sizes


@pytest.mark.parametrize("depth, width", [(6, 2), (3, 8), (2, 32)])
def test_each_path_is_enumerated_once_per_branching_step(depth: int, width: int, monkeypatch) -> None:
    # Chains merged, the lecture graph is left, and the last layer's nodes are links of the
    # output's chain: a path takes one step per layer, the last one ending at the output, so
    # the extended partial paths are width + width**2 + ... + width**depth: each path
    # counted once, none twice.
    sizes = _extend_sizes(monkeypatch)
    spec = product_graph(depth, width)
    ad.grad(spec.f, engine="paths")(*spec.args)
    assert sum(sizes) == sum(width**k for k in range(1, depth + 1))


# --- random scalar programs against the complex step ------------------------------------------------

UNARY = {"sin": (cmath.sin, np.sin), "exp": (cmath.exp, np.exp), "tanh": (cmath.tanh, np.tanh)}
BINARY = ("+", "-", "*", "/")


def random_program(seed: int, n_inputs: int = 3, n_ops: int = 14) -> Callable[..., Any]:
    """A random DAG of scalar ops (values shared, x * x, chains) that runs on floats, adkit
    tracers (numpy functions) and complex numbers (cmath): analytic, so the complex step
    is an independent oracle."""
    rng = np.random.default_rng(seed)
    plan = []
    for k in range(n_ops):
        n = n_inputs + k
        if rng.random() < 0.3:
            plan.append((str(rng.choice(list(UNARY))), int(rng.integers(max(0, n - 4), n)), None))
        else:
            a, b = (int(i) for i in rng.integers(0, n, size=2))
            op = str(rng.choice(BINARY))
            plan.append(("+" if op == "-" and a == b else op, a, b))  # no x - x: a zero z declines the tape

    def f(*xs: Any) -> Any:
        is_complex = any(isinstance(x, complex) for x in xs)
        vals = list(xs)
        for op, a, b in plan:
            x = vals[a]
            if op in UNARY:
                vals.append(UNARY[op][0 if is_complex else 1](x * 0.5))  # * 0.5: exp stays moderate
            elif op == "+":
                vals.append(x + vals[b])
            elif op == "-":
                vals.append(x - vals[b])
            elif op == "*":
                vals.append(x * vals[b])
            else:
                vals.append(x / (1.5 + vals[b] * vals[b]))  # the denominator stays >= 1.5
        return vals[-1] + vals[-2] * vals[-3]

    return f


def complex_step_grad(f: Callable[..., Any], xs: tuple[float, ...]) -> list[float]:
    """df/dx_k = Im f(x + i h e_k) / h: no subtraction, so exact to rounding for h = 1e-30."""
    h = 1e-30
    return [f(*[complex(x, h if j == k else 0.0) for j, x in enumerate(xs)]).imag / h for k in range(len(xs))]


@pytest.mark.parametrize("seed", range(25))
def test_random_scalar_programs_match_the_complex_step(seed: int) -> None:
    f = random_program(seed)
    xs = tuple(float(x) for x in np.random.default_rng(1000 + seed).uniform(-1.5, 1.5, size=3))
    recorded = paths._scalar_program(f, xs, (0, 1, 2))
    assert recorded is not None  # the tape route
    counts, inputs = recorded[1], recorded[3]
    graph = ad.trace(f, *xs)
    assert [counts[i] for i in inputs] == [graph.count_paths(s) for s in graph.inputs]
    got = ad.grad(f, argnums=(0, 1, 2), engine="paths")(*xs)
    want = complex_step_grad(f, xs)
    # relative to the sum over paths of |product|: the scale of any path sum's rounding
    scales = [math.fsum(abs(p.product) for p in ad.iter_paths(graph, source=s)) for s in graph.inputs]
    for g, w, s in zip(got, want, scales):
        assert abs(g - w) <= PATH_SUM_RTOL * s + 1e-300, (g, w, s)


@pytest.mark.parametrize("seed", range(8))
def test_the_tape_route_and_the_graph_route_agree(seed: int) -> None:
    f = random_program(seed, n_inputs=2, n_ops=20)
    xs = (0.4 + 0.1 * seed, -0.7)
    tape = ad.grad(f, argnums=(0, 1), engine="paths")(*xs)
    _, graph = paths._graph_value_and_grad(f, xs, (0, 1), single=False)
    # the two routes compute each local derivative with the same rule, by two code paths
    # (compiled float expressions, numpy), and add the same paths up in the same blocks
    assert tape == pytest.approx(graph, rel=1e-13, abs=1e-300)


# --- the generic route: arrays, scalarised ----------------------------------------------------------


@pytest.mark.parametrize("depth, width", [(2, 5), (3, 6), (4, 3)])
def test_array_programs_match_the_forward_recursion(depth: int, width: int) -> None:
    spec = layered_dag(depth, width)  # exact_grad: a forward recursion written in numpy
    assert paths._scalar_program(spec.f, spec.args, (0,)) is None  # numpy arrays: the Graph route
    got = ad.grad(spec.f, engine="paths")(*spec.args)
    scale = math.fsum(abs(p.product) for p in ad.iter_paths(ad.trace(spec.f, *spec.args)))
    assert abs(got - spec.exact_grad) <= PATH_SUM_RTOL * scale


# --- refusals and fall-backs --------------------------------------------------------------------------


def test_the_budget_refusal_is_the_same_on_both_routes() -> None:
    spec = product_graph(21, 2)  # 2,097,152 paths: over the default budget
    with pytest.raises(ad.PathBudgetExceeded) as tape:
        ad.grad(spec.f, engine="paths")(*spec.args)
    with pytest.raises(ad.PathBudgetExceeded) as graph:
        paths._graph_value_and_grad(spec.f, spec.args, (0,), single=True)
    assert str(tape.value) == str(graph.value)
    assert "2,097,152 paths" in str(tape.value)


def test_a_zero_local_derivative_takes_the_graph_route() -> None:
    # A zero z may be exact (a mask: the path carries 0 even against inf) or accidental
    # (0 x inf is NaN): the Graph route classifies it (adkit.ops.strong_zero), so the tape
    # route declines; the gradient is still the sum over paths.
    def f(x: Any, y: Any) -> Any:
        return x * y + np.sin(x)

    assert paths._scalar_program(f, (0.5, 0.0), (0, 1)) is None  # d(x*y)/dx = y = 0
    dx, dy = ad.grad(f, argnums=(0, 1), engine="paths")(0.5, 0.0)
    assert dx == pytest.approx(math.cos(0.5), rel=1e-15) and dy == 0.5  # y + cos(x), x
    assert paths._scalar_program(f, (0.5, 2.0), (0, 1)) is not None


def test_an_overflowing_sum_is_refused_on_the_tape_route() -> None:
    # Every local derivative and value finite, the product along the path not: the five
    # square roots' derivatives at the smallest subnormal multiply to ~1e311. Refused, never inf.
    def f(x: Any) -> Any:
        return np.sqrt(np.sqrt(np.sqrt(np.sqrt(np.sqrt(x)))))

    x = 5e-324
    assert math.isfinite(f(x)) and paths._scalar_program(f, (x,), (0,)) is not None
    with pytest.raises(ad.NonFiniteDerivativeError, match="sum over paths is not finite"):
        ad.grad(f, engine="paths")(x)


# --- scripts/bench_paths.py still runs ------------------------------------------------------------------


def test_bench_paths_script_checks_and_reports(capsys) -> None:
    import importlib.util
    import pathlib

    script = pathlib.Path(__file__).resolve().parent.parent / "scripts" / "bench_paths.py"
    spec = importlib.util.spec_from_file_location("bench_paths", script)
    bench_paths = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench_paths)
    rows = bench_paths.bench_cells({2: (3, 13), 8: (2,)}, min_time=0.0005, repeats=1)
    # a smoke test, not a timing: the gradients pass the script's check, the verdicts follow
    # the path counts, and the marginal cost is reported where there is a previous depth
    assert [r["error"] <= bench_paths.CHECK_RTOL for r in rows] == [True] * 3
    assert [r["verdict"].startswith("no target") for r in rows] == [True, False, True]
    assert [r["marginal_ns"] is None for r in rows] == [True, False, True]
    assert "| 2 | 13 | 8,192 |" in bench_paths.table(rows)
