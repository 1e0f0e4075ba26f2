"""Deep graphs: the symbolic engine differentiates a 60-step Horner loop and a 2,000-op
chain (node by node, one sympy symbol per node, when the graph is too deep for one sympy
expression), never shows a raw RecursionError, and the graph's own conversions and
displays do not recurse either.

Oracles: numpy's polynomial derivative, exact Fraction arithmetic, the chain rule in plain
floats, and central differences.
"""

import math
from fractions import Fraction

import numpy as np
import pytest
from reference import central_diff

import adkit as ad
from adkit.engines import symbolic
from adkit.errors import ExpressionTooDeepError

COEFFS = np.linspace(-1.0, 1.0, 60)


def horner(x, coeffs=COEFFS):
    p = 0.0
    for c in coeffs:
        p = p * x + c
    return p


def chain(x, steps=2000):
    for _ in range(steps):
        x = np.sin(x) * 0.001 + x
    return x


def chain_derivative(x, steps=2000):
    """x_{k+1} = x_k + 0.001 sin(x_k): d x_n / d x_0 = prod_k (1 + 0.001 cos(x_k)), in plain
    floats. Each step's rounding is ~eps relative, so n steps leave ~n eps: 2000 steps ~5e-13."""
    want = 1.0
    for _ in range(steps):
        want *= 1.0 + 0.001 * math.cos(x)
        x = math.sin(x) * 0.001 + x
    return want


def test_sixty_step_horner_loop():
    # np.polyval of the derivative's coefficients: |p'| ~ 2 here and each of the 60 terms
    # carries a relative rounding error of a few eps in float64: rtol 1e-12 is 10^3 above that
    want = np.polyval(np.polyder(COEFFS), 0.3)
    assert ad.grad(horner, engine="symbolic")(0.3) == pytest.approx(want, rel=1e-12)


def test_sixty_step_horner_loop_is_exact_with_fractions():
    coeffs = [(-1) ** k * (k % 7) for k in range(60)]
    x = Fraction(1, 3)
    exact = sum(k * c * x ** (k - 1) for k, c in enumerate(reversed(coeffs)) if k)
    got = ad.grad(lambda v: horner(v, coeffs), engine="symbolic")(x)
    assert got == pytest.approx(float(exact), rel=4e-16)  # one rounding of the exact rational, 2 ulps


def test_two_thousand_op_chain():
    # rtol 1e-11: 20x the rounding of the plain-float oracle (see chain_derivative)
    assert ad.grad(chain, engine="symbolic")(0.3) == pytest.approx(chain_derivative(0.3), rel=1e-11)


def test_deep_array_graph():
    # elementwise steps (entries never mix, so no expression swell), then structural ops
    matrix = np.array([[1.0, -2.0, 0.5], [0.3, 0.2, -1.0]])

    def f(x):
        for _ in range(100):
            x = np.sin(x) * 0.01 + x
        return np.sum((matrix @ x) ** 2)

    x = np.array([0.1, 0.5, -0.3])
    # central differences on a smooth f whose third derivatives are ~10: error ~ 10 h^2 +
    # eps |f| / h ~ 1e-9
    np.testing.assert_allclose(ad.grad(f, engine="symbolic")(x), central_diff(f, x), atol=1e-8)


def test_too_deep_for_one_expression_is_said_by_name():
    res = ad.symbolic_derivative(lambda x: chain(x, steps=100), 0.3)
    assert float(res.values[0]) == pytest.approx(chain_derivative(0.3, steps=100), rel=1e-12)
    assert "300 ops deep" in str(res)
    with pytest.raises(ExpressionTooDeepError, match="ops deep.*node by node"):
        res.count_ops  # noqa: B018 (the property raises)
    with pytest.raises(ExpressionTooDeepError):
        res.latex()


def test_a_recursion_error_inside_sympy_falls_back_to_node_by_node(monkeypatch):
    # with the depth limit lifted, the 120-op Horner expression makes sympy recurse past
    # Python's limit: the engine must catch that and differentiate node by node instead
    monkeypatch.setattr(symbolic, "EXPRESSION_DEPTH_LIMIT", 10**6)
    raised = []
    whole = symbolic._whole_expression

    def spy(*args):
        try:
            return whole(*args)
        except RecursionError:
            raised.append(True)
            raise

    monkeypatch.setattr(symbolic, "_whole_expression", spy)
    want = np.polyval(np.polyder(COEFFS), 0.3)
    assert ad.grad(horner, engine="symbolic")(0.3) == pytest.approx(want, rel=1e-12)
    assert raised, "sympy did not recurse too deep: this test no longer exercises the fallback"


def test_shallow_graphs_keep_their_expression():
    res = ad.symbolic_derivative(lambda x: horner(x, COEFFS[:5]), 0.3)
    assert res.count_ops > 0 and res.depth == 0


def test_graph_conversions_and_displays_do_not_recurse():
    # 1,200 nodes: deeper than Python's recursion limit of 1,000
    graph = ad.trace(lambda x: chain(x, steps=400), 0.3)
    assert len(graph.nodes) == 1201
    assert graph.count_paths() == 2**400
    assert "digraph" in graph.to_dot()
    for table in (graph.evaluation_trace(), graph.adjoint_trace(), graph.tangent_trace()):
        assert len(str(table).splitlines()) > 1200
    assert len(graph.scalarize().nodes) == 1201
