"""np.inner, np.dot, np.vdot, np.outer and np.matmul follow numpy's semantics for every
shape combination (0-d, 1-d and n-d operands), in every engine.

Oracles: numpy itself for values and shapes, central differences for derivatives. The
products are bilinear, so central differences have no truncation error in either operand:
only round-off, about eps * |f| / h = 1e-16 * 10 / 1e-6 = 1e-9, hence the tolerance 1e-7.
"""

import numpy as np
import pytest
from reference import central_diff, central_jacobian

import adkit as ad

TOL = 1e-7
SHAPES = [
    ((), (3,)),
    ((3,), ()),
    ((), ()),
    ((3,), (3,)),
    ((2, 3), (3,)),
    ((3,), (2, 3)),
    ((2, 3), (4, 3)),
    ((2, 3), (3, 4)),
    ((5, 4), (2, 3, 4)),
    ((2, 3, 4), (5, 4)),
    ((2, 3, 4), (4,)),
    ((4,), (2, 4, 3)),
    ((2, 3, 4), (3, 4, 2)),
    ((2, 3), (2, 3)),
]
PRODUCTS = [np.inner, np.dot, np.vdot, np.outer, np.matmul]


def _numpy_accepts(fn, sa, sb):
    try:
        fn(np.ones(sa), np.ones(sb))
    except ValueError:
        return False
    return True


VALID = [(fn, sa, sb) for fn in PRODUCTS for sa, sb in SHAPES if _numpy_accepts(fn, sa, sb)]
INVALID = [(fn, sa, sb) for fn in PRODUCTS for sa, sb in SHAPES if not _numpy_accepts(fn, sa, sb)]


def _operands(sa, sb, seed=0):
    rng = np.random.default_rng(seed)
    return rng.normal(size=sa), rng.normal(size=sb)


def _ids(case):
    fn, sa, sb = case
    return f"{fn.__name__}-{sa}-{sb}"


def test_the_issue_cases_are_valid_numpy():
    # the cases the issue names are in the table: a 0-d operand and (5,4)·(2,3,4) -> (5,2,3)
    assert (np.inner, (), (3,)) in VALID
    assert np.inner(np.ones((5, 4)), np.ones((2, 3, 4))).shape == (5, 2, 3)
    assert (np.inner, (5, 4), (2, 3, 4)) in VALID and (np.dot, (2, 3, 4), (3, 4, 2)) in VALID


@pytest.mark.parametrize("case", VALID, ids=_ids)
@pytest.mark.parametrize("engine", ["forward", "reverse"])
def test_value_and_jacobian_match_numpy(case, engine):
    fn, sa, sb = case
    a, b = _operands(sa, sb)
    expected = fn(a, b)
    out, _ = ad.vjp(fn, a, b) if engine == "reverse" else ad.jvp(fn, (a, b), (a, b))
    assert np.shape(out) == expected.shape
    np.testing.assert_allclose(out, expected, rtol=1e-12, atol=1e-12)
    ja, jb = ad.jacobian(fn, argnums=(0, 1), engine=engine)(a, b)
    np.testing.assert_allclose(ja, central_jacobian(lambda x: fn(x, b), a), atol=TOL)
    np.testing.assert_allclose(jb, central_jacobian(lambda y: fn(a, y), b), atol=TOL)
    assert np.shape(ja) == expected.shape + a.shape and np.shape(jb) == expected.shape + b.shape


def _engine_cases():
    """Every engine on every valid case, except the symbolic engine on outputs of more than
    100 entries (np.outer of 24 and 20 entries: 480 sympy sums, ~3 s each; the smaller
    cases test the same code, and forward and reverse cover the large ones)."""
    return [
        pytest.param(case, engine, id=f"{engine}-{_ids(case)}")
        for case in VALID
        for engine in ad.ENGINES
        if engine != "symbolic" or np.size(case[0](np.ones(case[1]), np.ones(case[2]))) <= 100
    ]


@pytest.mark.parametrize(("case", "engine"), _engine_cases())
def test_weighted_sum_gradient_in_every_engine(case, engine):
    # a random weight per output entry: a wrong output shape or order cannot hide in a sum
    fn, sa, sb = case
    a, b = _operands(sa, sb)
    weights = np.random.default_rng(1).normal(size=np.shape(fn(a, b)))

    def loss(x, y):
        return np.sum(fn(x, y) * weights)

    ga, gb = ad.grad(loss, argnums=(0, 1), engine=engine)(a, b)
    np.testing.assert_allclose(ga, central_diff(lambda x: loss(x, b), a), atol=TOL)
    np.testing.assert_allclose(gb, central_diff(lambda y: loss(a, y), b), atol=TOL)
    assert np.shape(ga) == a.shape and np.shape(gb) == b.shape


@pytest.mark.parametrize("case", INVALID, ids=_ids)
def test_shapes_numpy_refuses_are_refused(case):
    fn, sa, sb = case
    a, b = _operands(sa, sb)
    with pytest.raises(ValueError):
        ad.grad(lambda x, y: np.sum(fn(x, y)), argnums=(0, 1))(a, b)
