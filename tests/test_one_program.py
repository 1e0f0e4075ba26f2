"""Five engines, one program: every engine accepts what the others accept.

Programs with Python control flow, loops over integer arguments, tuple / list indexing
with integer arguments, recursion, closures and containers. The arguments not in
argnums are constants in every engine (a loop count stays a plain int). Every engine must
return the derivative of the closed form (derived by hand below, or by a plain-float
reimplementation of the recurrence), to its accuracy, or refuse by name for a reason
inherent to it (the paths budget, the symbolic size limit): never a different number.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import adkit as ad
from adkit.engines.paths import PathBudgetExceeded

ENGINES = ad.ENGINES
# Relative to the gradient's largest entry. forward / reverse / paths apply the same rules
# in float64 (a few roundings per op: ~1e-15 on these short programs); symbolic evaluates at
# 30 digits; the closed forms are themselves float64 (a few ulps). 1e-11 leaves two orders
# of margin for the longest loops. numeric is Richardson extrapolation of central
# differences (error ~ eps^(4/5) * scale for smooth f: ~1e-10 to 1e-8 here), so 1e-6.
RTOL = {e: (1e-6 if e == "numeric" else 1e-11) for e in ENGINES}
INHERENT = {"paths": (PathBudgetExceeded,), "symbolic": (ad.AdkitError,)}  # symbolic: its size limit


def _flat(tree) -> np.ndarray:
    leaves, _ = ad.transforms.tree_flatten(tree)
    return np.concatenate([np.asarray(leaf, dtype=float).reshape(-1) for leaf in leaves])


def assert_engine_agrees(engine, f, args, argnums, expected, kwargs=None):
    try:
        got = ad.grad(f, argnums=argnums, engine=engine)(*args, **(kwargs or {}))
    except INHERENT.get(engine, ()) as exc:
        if engine == "symbolic":
            assert "limit" in str(exc), f"symbolic refused for a reason that is not its size limit: {exc}"
        return
    got_flat, want = _flat(got), _flat(expected)
    assert got_flat.shape == want.shape, (engine, got, expected)
    scale = max(1.0, float(np.max(np.abs(want))))
    err = float(np.max(np.abs(got_flat - want))) / scale
    assert err <= RTOL[engine], f"{engine}: {got} vs closed form {expected} (rel error {err:.1e})"


# --- the programs and their closed-form derivatives -------------------------------------------------------


def iterpower(x, n):
    acc = 1.0
    for _ in range(n):
        acc = acc * x
    return acc * x  # x ** (n + 1)


def iterpower_grad(x, n):
    return (n + 1) * x**n


def pick(a, b, c, i):
    """Tuple and list indexing with an integer argument."""
    first = (a, b, c)[i]
    second = [a, b, c][2 - i]
    return first * a + np.sin(second)


def pick_grad(a, b, c, i):
    g = [0.0, 0.0, 0.0]
    g[i] += a
    g[0] += (a, b, c)[i]
    g[2 - i] += math.cos((a, b, c)[2 - i])
    return tuple(g)


def branchy(x, k):
    """Python control flow on the traced value and on an integer argument."""
    if x > 0 and k % 2 == 0:
        return x**3 * k
    if x > 0:
        return np.exp(x) / k
    return np.sin(x) * k


def branchy_grad(x, k):
    if x > 0 and k % 2 == 0:
        return 3 * x**2 * k
    if x > 0:
        return math.exp(x) / k
    return math.cos(x) * k


def horner(x, coeffs):
    """A polynomial with integer coefficients given as a constant tuple: Horner's loop."""
    acc = 0.0
    for c in coeffs:
        acc = acc * x + c
    return acc


def horner_grad(x, coeffs):
    n = len(coeffs) - 1
    return sum((n - k) * c * x ** (n - k - 1) for k, c in enumerate(coeffs[:-1]))


def sine_iterate(x, n):
    """A while loop counting down an integer argument: x_{k+1} = sin(x_k)."""
    while n > 0:
        x = np.sin(x)
        n -= 1
    return x


def sine_iterate_grad(x, n):
    d = 1.0
    for _ in range(n):  # the chain rule in plain floats: prod cos(x_k)
        d *= math.cos(x)
        x = math.sin(x)
    return d


def recurse(x, depth):
    """Recursion on an integer argument: r_0 = x, r_d = r_{d-1} * x + 1."""
    return x if depth == 0 else recurse(x, depth - 1) * x + 1.0


def recurse_grad(x, depth):
    r, d = x, 1.0
    for _ in range(depth):
        r, d = r * x + 1.0, d * x + r
    return d


def entries(x, i, j):
    """Indexing an array argument by integer arguments."""
    return x[i] * x[j] + np.sum(x)


def entries_grad(x, i, j):
    g = np.ones_like(x)
    g[i] += x[j]
    g[j] += x[i]
    return g


def doubled_sine(x, n):
    """x_{k+1} = (sin(x_k) + sin(x_k)) / 2: the value of sine_iterate, but 2**n paths."""
    for _ in range(n):
        x = np.sin(x) * 0.5 + np.sin(x) * 0.5
    return x


def cubes(x):
    return np.sum(x**3)


def tanh_closure(w):
    """A closure over a plain float."""
    return lambda x: np.tanh(w * x)


def model_loss(params, data, n_layers):
    """A container of parameters, constant data and a loop over an integer argument."""
    h = data
    for _ in range(n_layers):
        h = h @ params["w"] + params["b"]
    return np.sum(h * h)


def model_loss_grad(params, data, n_layers):
    # one layer (n_layers = 1): L = |data w + b|^2, dL/dw = 2 data^T r, dL/db = 2 sum(r)
    assert n_layers == 1
    r = data @ params["w"] + params["b"]
    return {"w": 2.0 * data.T @ r, "b": 2.0 * float(np.sum(r))}


CASES = [
    ("iterpower", iterpower, (1.7, 5), 0, lambda: iterpower_grad(1.7, 5)),
    ("iterpower n=0", iterpower, (-0.3, 0), 0, lambda: iterpower_grad(-0.3, 0)),
    ("pick i=0", pick, (0.5, -1.5, 2.0, 0), (0, 1, 2), lambda: pick_grad(0.5, -1.5, 2.0, 0)),
    ("pick i=1", pick, (0.5, -1.5, 2.0, 1), (0, 1, 2), lambda: pick_grad(0.5, -1.5, 2.0, 1)),
    ("pick i=2", pick, (0.5, -1.5, 2.0, 2), (0, 1, 2), lambda: pick_grad(0.5, -1.5, 2.0, 2)),
    ("branchy even", branchy, (1.2, 4), 0, lambda: branchy_grad(1.2, 4)),
    ("branchy odd", branchy, (1.2, 3), 0, lambda: branchy_grad(1.2, 3)),
    ("branchy negative", branchy, (-0.7, 3), 0, lambda: branchy_grad(-0.7, 3)),
    ("horner", horner, (0.9, (3, -2, 0, 5, 1)), 0, lambda: horner_grad(0.9, (3, -2, 0, 5, 1))),
    ("sine iterate", sine_iterate, (1.1, 6), 0, lambda: sine_iterate_grad(1.1, 6)),
    ("recursion", recurse, (0.8, 7), 0, lambda: recurse_grad(0.8, 7)),
    # 2**21 paths: beyond the paths engine's default budget of 10**6
    ("doubled sine", doubled_sine, (0.9, 21), 0, lambda: sine_iterate_grad(0.9, 21)),
    # 401 inputs: beyond the symbolic engine's limit of 400 symbols
    ("401 cubes", cubes, (np.linspace(-1.0, 1.0, 401),), 0, lambda: 3.0 * np.linspace(-1.0, 1.0, 401) ** 2),
    (
        "array entries",
        entries,
        (np.array([0.5, -2.0, 3.0, 1.5]), 1, 3),
        0,
        lambda: entries_grad(np.array([0.5, -2.0, 3.0, 1.5]), 1, 3),
    ),
    ("closure", tanh_closure(0.6), (1.3,), 0, lambda: 0.6 * (1.0 - math.tanh(0.6 * 1.3) ** 2)),
    (
        "container model",
        model_loss,
        ({"w": np.array([[0.5, -1.0], [2.0, 0.25]]), "b": 0.3}, np.array([[1.0, 2.0], [-1.0, 0.5]]), 1),
        0,
        lambda: model_loss_grad(
            {"w": np.array([[0.5, -1.0], [2.0, 0.25]]), "b": 0.3}, np.array([[1.0, 2.0], [-1.0, 0.5]]), 1
        ),
    ),
]


@pytest.mark.parametrize("engine", ENGINES)
@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
def test_every_engine_gives_the_closed_form(case, engine):
    _, f, args, argnums, expected = case
    assert_engine_agrees(engine, f, args, argnums, expected())


def test_the_inherent_refusals_happen():
    """The two refusals the table above allows are real ones, named."""
    with pytest.raises(PathBudgetExceeded, match="budget"):
        ad.grad(doubled_sine, engine="paths")(0.9, 21)
    with pytest.raises(ad.AdkitError, match="limit is 400"):
        ad.grad(cubes, engine="symbolic")(np.linspace(-1.0, 1.0, 401))


@pytest.mark.parametrize("engine", ENGINES)
def test_keyword_arguments_are_constants(engine):
    assert_engine_agrees(engine, iterpower, (1.3,), 0, iterpower_grad(1.3, 4), kwargs={"n": 4})


def test_compare_treats_other_arguments_as_constants():
    """compare runs every engine and its symbolic reference with the same argnums."""
    result = ad.compare(iterpower, 2.0, 4, argnums=0, min_seconds=0.0)
    expected = iterpower_grad(2.0, 4)
    assert result.reference == [pytest.approx(expected, rel=1e-15)]  # symbolic: 30 digits
    for row in result.rows:
        assert row.error is None, f"{row.engine}: {row.error}"
        assert row.gradient == [pytest.approx(expected, rel=RTOL[row.engine])], row.engine


def test_trace_and_symbolic_take_argnums():
    graph = ad.trace(iterpower, 2.0, 3, argnums=0)
    assert graph.input_names == ["x"]
    assert graph.count_paths() == 4  # x enters each of the 4 multiplications once
    res = ad.symbolic_derivative(iterpower, 2, 3, argnums=0)
    assert res.exact and res.values == [32]  # 4 x^3 at 2, exactly


@given(
    x=st.floats(-1.5, 1.5).filter(lambda v: abs(v) > 1e-3),
    n=st.integers(0, 6),
    i=st.integers(0, 2),
    engine=st.sampled_from(ENGINES),
)
def test_random_integer_arguments(x, n, i, engine):
    """Loop counts and indices drawn at random: every engine, the closed form."""
    assert_engine_agrees(engine, iterpower, (x, n), 0, iterpower_grad(x, n))
    assert_engine_agrees(engine, pick, (x, 0.25, -0.75, i), (0, 1, 2), pick_grad(x, 0.25, -0.75, i))
    assert_engine_agrees(engine, recurse, (x, n), 0, recurse_grad(x, n))
