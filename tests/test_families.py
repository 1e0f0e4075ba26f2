"""Graph families (issue 5): Aggarwal's product-node graphs, chains, layered DAGs, any function.

What the families promise and how each promise is checked independently of the code
that makes the spec:

- path counts: width**depth as exact Python ints (any size), and the path count of the
  traced graph (dynamic programming over `adkit.trace(...).scalarize()`) agrees;
- the exact gradient: width**depth; confirmed independently by evaluating f at w = 2
  (f is the monomial w**N, exact in binary floating point) and by the forward and
  reverse engines;
- node values finite and away from 0 at depth 1000, path products not all equal
  (`adkit.iter_paths`), and their sum is the gradient (the pathwise lemma);
- past float64 the spec flags overflow with the right order of magnitude and the
  engines raise NonFiniteDerivativeError (never a silent inf);
- chain, layered_dag and from_function: exact gradients against the engines and central
  differences, counts against the traced graph.

Cases marked xfail(strict=True) are adkit bugs, reproduced in /tmp/adkit_bugs_bench.md.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

import adkit as ad
from adkit.families import FAMILIES, GraphSpec, chain, from_function, layered_dag, product_graph
from adkit.transforms import DIFFERENTIATING_ENGINES

# Forward and reverse mode compute the same sum of products as the closed forms, in a
# different order: a few roundings per layer, so ~1e-15 relative even at depth 1000.
# 1e-12 leaves room for that and is the harness's own agreement tolerance for exact engines.
ENGINE_RTOL = 1e-12


def _traced(spec: GraphSpec) -> ad.Graph:
    return ad.trace(spec.f, *spec.args).scalarize()


def _rel(a: float, b: float) -> float:
    return abs(a - b) / abs(b)


# --- product_graph: paths ------------------------------------------------------------------------


@pytest.mark.parametrize(
    "depth, width",
    [(1, 1), (1, 2), (3, 2), (10, 3), (64, 2), (170, 64), (1000, 2), (2000, 2), (5000, 7)],
)
def test_product_graph_path_count_is_exact_width_pow_depth(depth, width):
    spec = product_graph(depth, width)
    assert type(spec.n_paths) is int  # exact, not a float approximation
    assert spec.n_paths == width**depth


@pytest.mark.parametrize("depth, width", [(1, 1), (1, 2), (2, 2), (3, 2), (6, 2), (2, 3), (4, 3), (3, 4), (2, 7)])
def test_product_graph_traced_path_count_matches(depth, width):
    # count_paths is dynamic programming over the traced, scalarised graph: an
    # independent count of the graph the engines actually differentiate.
    spec = product_graph(depth, width)
    assert _traced(spec).count_paths() == spec.n_paths == width**depth


@pytest.mark.parametrize("depth, width", [(3, 2), (2, 3), (1, 4)])
def test_spec_counts_are_the_lecture_graph(depth, width):
    # n_nodes / n_edges count the lecture's graph (one n-ary product node per node); the
    # nary=True program is exactly that graph, so its trace must have those counts. The
    # default program computes each node with binary multiplies, hence more nodes.
    spec = product_graph(depth, width, nary=True)
    g = ad.trace(spec.f, *spec.args)
    assert (spec.n_nodes, spec.n_edges) == (len(g.nodes), len(g.edges))
    assert g.count_paths() == spec.n_paths
    binary = ad.trace(product_graph(depth, width).f, 1.0)
    assert len(binary.nodes) >= spec.n_nodes and binary.count_paths() == spec.n_paths
    for engine in ("forward", "reverse", "paths"):
        assert ad.grad(spec.f, engine=engine)(*spec.args) == spec.exact_grad


# --- product_graph: the exact gradient --------------------------------------------------------------


# (1022, 2): the largest width-2 depth the engines handle; at 1023 the gradient 2**1023 is
# still a float64, but the engines' intermediate tangents/adjoints (gradient times node
# values up to 8) overflow, and they raise NonFiniteDerivativeError (said plainly).
@pytest.mark.parametrize("depth, width", [(1, 1), (1, 2), (3, 2), (4, 3), (6, 5), (100, 8), (1000, 2), (1022, 2)])
def test_product_graph_exact_gradient_is_width_pow_depth_and_engines_agree(depth, width):
    spec = product_graph(depth, width)
    assert not spec.overflow
    assert spec.exact_grad == float(width**depth)  # exact: a power of an integer, rounded once
    assert spec.exact_grad_log10 == pytest.approx(depth * math.log10(width), rel=1e-12)
    for engine in ("forward", "reverse"):
        g = ad.grad(spec.f, engine=engine)(*spec.args)
        assert _rel(g, spec.exact_grad) <= ENGINE_RTOL, engine


@pytest.mark.parametrize("depth, width", [(1, 2), (3, 2), (2, 3), (5, 2)])
def test_product_graph_exact_gradient_agrees_with_every_exact_engine_on_small_graphs(depth, width):
    spec = product_graph(depth, width)
    engines = [e for e in ("symbolic", "paths") if e in DIFFERENTIATING_ENGINES]
    for engine in engines:
        g = ad.grad(spec.f, engine=engine)(*spec.args)
        assert _rel(g, spec.exact_grad) <= ENGINE_RTOL, engine


@pytest.mark.parametrize("depth, width", [(1, 2), (3, 2), (2, 3), (4, 2), (3, 3)])
def test_product_graph_is_the_monomial_w_pow_n(depth, width):
    # Independent of every engine: f(w) = C * w**N with C = 1 and N = width**depth, so
    # f(2) = 2**N and df/dw at w = 1 is N. Every constant is a power of two, so f(2.0)
    # is computed exactly in binary floating point: compare with ==.
    spec = product_graph(depth, width)
    n = width**depth
    assert spec.f(1.0) == 1.0
    assert spec.f(2.0) == 2.0**n
    assert spec.exact_grad == n * spec.f(1.0) / 1.0


# --- product_graph: node values and path products ---------------------------------------------------


@pytest.mark.parametrize("width", [2, 3])
def test_product_graph_node_values_finite_and_away_from_zero_at_depth_1000(width):
    g = ad.trace(product_graph(1000, width).f, 1.0)
    assert len(g.nodes) > 1000 * width
    values = np.array([float(n.value) for n in g.nodes])
    assert np.all(np.isfinite(values))
    assert np.all(values != 0)
    # "Away from 0 at any depth": values that drifted by a constant factor per layer would
    # be ~2**±1000 here; any design that keeps every layer O(1) passes this loose bound.
    assert np.all(np.abs(values) >= 2.0**-20) and np.all(np.abs(values) <= 2.0**20)
    assert g.value == 1.0  # the documented output value: exactly 1


@pytest.mark.parametrize("depth, width", [(3, 2), (2, 3)])
def test_product_graph_paths_add_up_to_the_gradient(depth, width):
    spec = product_graph(depth, width)
    paths = list(ad.iter_paths(ad.trace(spec.f, *spec.args)))
    assert len(paths) == spec.n_paths
    # the pathwise aggregation lemma; the products are powers of two, so the sum is exact
    assert math.fsum(p.product for p in paths) == spec.exact_grad


@pytest.mark.parametrize("depth, width", [(3, 2), (2, 3)])
def test_product_graph_local_derivatives_differ(depth, width):
    g = ad.trace(product_graph(depth, width).f, 1.0).scalarize()
    assert len({e.z for e in g.edges}) > 1


@pytest.mark.parametrize("depth, width", [(3, 2), (2, 3)])
def test_product_graph_path_products_telescope_to_out_over_w(depth, width):
    # In an all-to-all product graph z(i, j) = v_j / v_i, so every path product is out / w
    # (documented in families.product_graph): the paths differ in their local derivatives,
    # never in their products. Checked here on the enumerated paths, not assumed.
    spec = product_graph(depth, width)
    g = ad.trace(spec.f, *spec.args)
    products = [p.product for p in ad.iter_paths(g)]
    assert len(products) == spec.n_paths
    assert all(p == g.value / spec.args[0] for p in products)


# --- product_graph: past float64 ------------------------------------------------------------------


OVERFLOWING = [(2000, 2), (200, 64), (1025, 2), (1100, 2), (342, 8)]


@pytest.mark.parametrize("depth, width", OVERFLOWING)
def test_product_graph_overflow_is_flagged_with_its_order_of_magnitude(depth, width):
    spec = product_graph(depth, width)
    assert spec.overflow is True
    assert spec.exact_grad is None
    # log10 of the exact value width**depth; 1e-12 relative is far below the 0.1 decade shown
    assert spec.exact_grad_log10 == pytest.approx(depth * math.log10(width), rel=1e-12)
    assert spec.n_paths == width**depth


@pytest.mark.parametrize("depth, width", [(1024, 2), (512, 4), (256, 16)])
def test_product_graph_overflow_flag_at_the_float64_boundary(depth, width):
    spec = product_graph(depth, width)
    assert spec.overflow is True and spec.exact_grad is None


@pytest.mark.parametrize("depth, width", [(1000, 2), (10, 2)])
def test_describe_without_overflow(depth, width):
    text = product_graph(depth, width).describe()
    assert "beyond float64" not in text
    assert f"{product_graph(depth, width).n_nodes} nodes" in text


def test_describe_small_graph_exact_numbers():
    text = product_graph(10, 2).describe()
    assert "1,024 paths" in text and "1024.0" in text


@pytest.mark.parametrize("depth, width", [(2000, 2), (200, 64)])
def test_describe_says_beyond_float64(depth, width):
    text = product_graph(depth, width).describe()
    assert "beyond float64" in text
    assert f"10^{depth * math.log10(width):.1f}" in text


@pytest.mark.parametrize("engine", ["forward", "reverse"])
@pytest.mark.parametrize("depth, width", [(2000, 2), (342, 8)])
def test_engines_raise_on_an_overflowing_gradient(engine, depth, width):
    spec = product_graph(depth, width)
    with pytest.raises(ad.NonFiniteDerivativeError, match="overflow"):
        ad.grad(spec.f, engine=engine)(*spec.args)


def test_paths_engine_refuses_an_overflowing_graph_with_an_adkit_error():
    spec = product_graph(2000, 2)
    with pytest.raises(ad.AdkitError):
        ad.grad(spec.f, engine="paths")(*spec.args)


def test_symbolic_engine_does_not_return_a_silent_inf():
    spec = product_graph(1100, 2)
    with pytest.raises(ad.NonFiniteDerivativeError):
        ad.grad(spec.f, engine="symbolic")(*spec.args)


@pytest.mark.parametrize("kwargs", [{"depth": 0, "width": 2}, {"depth": 3, "width": 0}, {"depth": -1, "width": 2}])
def test_product_graph_rejects_empty_sizes(kwargs):
    with pytest.raises(ValueError):
        product_graph(**kwargs)


# --- chain and layered_dag ---------------------------------------------------------------------------


def _central_difference(f, x: float, h: float = 1e-5) -> float:
    return (float(f(x + h)) - float(f(x - h))) / (2 * h)


# Central differences with h = 1e-5: truncation ~ h**2 |f'''| / 6 ~ 1e-11 and rounding
# ~ eps |f| / h ~ 1e-11 for these O(1) functions; 1e-6 relative is a safe bound, and a
# wrong closed form (a missed factor of a layer) is off by far more.
FD_RTOL = 1e-6

CHAINS = [(1, "sin"), (5, "sin"), (50, "sin"), (3, "tanh"), (40, "tanh")]
DAGS = [(1, 1, "tanh"), (3, 4, "tanh"), (5, 3, "sigmoid"), (8, 6, "tanh"), (4, 2, "sigmoid")]


@pytest.mark.parametrize("depth, op", CHAINS)
def test_chain_exact_gradient(depth, op):
    spec = chain(depth, op)
    assert spec.n_paths == 1
    for engine in ("forward", "reverse"):
        assert _rel(ad.grad(spec.f, engine=engine)(*spec.args), spec.exact_grad) <= ENGINE_RTOL, engine
    assert _rel(_central_difference(spec.f, spec.args[0]), spec.exact_grad) <= FD_RTOL


@pytest.mark.parametrize("depth, op", CHAINS[:3])
def test_chain_counts_match_traced_graph(depth, op):
    spec = chain(depth, op)
    g = _traced(spec)
    assert (spec.n_nodes, spec.n_edges, spec.n_paths) == (len(g.nodes), len(g.edges), g.count_paths())


@pytest.mark.parametrize("depth, width, activation", DAGS)
def test_layered_dag_exact_gradient(depth, width, activation):
    spec = layered_dag(depth, width, activation)
    assert spec.exact_grad != 0
    for engine in ("forward", "reverse"):
        assert _rel(ad.grad(spec.f, engine=engine)(*spec.args), spec.exact_grad) <= ENGINE_RTOL, engine
    assert _rel(_central_difference(spec.f, spec.args[0]), spec.exact_grad) <= FD_RTOL


@pytest.mark.parametrize("depth, width, activation", [(1, 1, "tanh"), (3, 3, "tanh"), (2, 4, "sigmoid")])
def test_layered_dag_path_count_matches_traced_graph(depth, width, activation):
    spec = layered_dag(depth, width, activation)
    assert spec.n_paths == width**depth == _traced(spec).count_paths()


def test_layered_dag_activations_and_seeds_differ():
    # the activation and the seed are real parameters, not ignored
    grads = {
        layered_dag(3, 3, "tanh", seed=0).exact_grad,
        layered_dag(3, 3, "sigmoid", seed=0).exact_grad,
        layered_dag(3, 3, "tanh", seed=1).exact_grad,
    }
    assert len(grads) == 3


@pytest.mark.parametrize("call", [lambda: chain(3, "cos"), lambda: layered_dag(2, 2, "relu")])
def test_unknown_chain_op_or_activation_is_rejected(call):
    with pytest.raises(ValueError):
        call()


def test_families_registry():
    assert FAMILIES["product"] is product_graph
    assert FAMILIES["chain"] is chain
    assert FAMILIES["layered"] is layered_dag


# --- from_function --------------------------------------------------------------------------------------


def test_from_function_counts_and_symbolic_exact_gradient():
    def f(x):
        return x * x + np.sin(x)

    spec = from_function(f, 0.5)
    # graph: x, x*x (two edges to x), sin(x), the sum: 4 nodes, 5 edges, and 3 paths
    # (x->mul twice, x->sin) from x to the output
    assert (spec.n_nodes, spec.n_edges, spec.n_paths) == (4, 5, 3)
    assert spec.name == "f"
    assert spec.args == (0.5,)
    # symbolic (sympy) gradient, printed to 17 digits: 2x + cos x
    assert _rel(spec.exact_grad, 2 * 0.5 + math.cos(0.5)) <= 1e-15
    assert _rel(ad.grad(spec.f)(*spec.args), spec.exact_grad) <= ENGINE_RTOL


def test_from_function_two_arguments_differentiates_the_first():
    def g(x, y):
        return x * y + x

    spec = from_function(g, 3.0, 2.0)
    assert spec.exact_grad == 3.0  # d/dx (x y + x) = y + 1
    assert spec.n_paths == 2  # x -> mul -> add and x -> add
    g_traced = _traced(spec)
    assert (spec.n_nodes, spec.n_edges) == (len(g_traced.nodes), len(g_traced.edges)) == (4, 4)


def test_from_function_given_exact_gradient_and_name():
    spec = from_function(lambda x: x**3, 2.0, exact_grad=12.0, name="cube")
    assert spec.exact_grad == 12.0 and spec.name == "cube"
    assert "cube" in spec.describe()


def test_from_function_array_argument():
    spec = from_function(lambda x: np.sum(x * x), np.array([1.0, 2.0, 3.0]))
    np.testing.assert_array_equal(spec.exact_grad, [2.0, 4.0, 6.0])
