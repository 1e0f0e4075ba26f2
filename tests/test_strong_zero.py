"""Right or refused: overflow, 0 x inf, integer powers at 0, smooth rules at ties.

Every case here returned a plausible wrong number (or disagreed between engines) before the
strong-zero rule was rethought (adkit/ops/strong_zero.py). Oracles are independent of adkit's
rules: mpmath at 50 digits, sympy, or the function's own closed form.
"""

from __future__ import annotations

import math

import mpmath
import numpy as np
import pytest
import sympy

import adkit as ad
from adkit.errors import AdkitError, NonFiniteDerivativeError
from adkit.ops.core import REGISTRY, zeros_are_structural
from tests.reference import central_diff

EXACT = ("forward", "reverse", "paths")  # the engines that apply the registry's rules
ALL = ad.ENGINES


def mp_derivative(expr, x: float) -> float:
    """d expr / dx at x with mpmath at 50 significant digits (expr built from mpmath functions)."""
    with mpmath.workdps(50):
        return float(mpmath.diff(expr, mpmath.mpf(x)))


# --- overflow never becomes a finite gradient ------------------------------------------------


@pytest.mark.parametrize("engine", EXACT)
def test_log_of_overflowed_exp_is_refused_naming_exp(engine):
    # exp(1000) = inf in float64; 1/inf = 0 made the gradient 0.0 (the truth is 1)
    with pytest.raises(NonFiniteDerivativeError, match="exp"):
        ad.grad(lambda x: np.log(np.exp(x)), engine=engine)(1000.0)


def test_symbolic_engine_proves_log_exp():
    assert ad.grad(lambda x: np.log(np.exp(x)), engine="symbolic")(1000.0) == pytest.approx(1.0, rel=1e-15)


def _logistic_data():
    X = np.array([[1.0, 2.0], [3.0, -1.0], [1000.0, 1.0]])
    y = np.array([1.0, -1.0, -1.0])
    return X, y


@pytest.mark.parametrize("engine", EXACT)
def test_naive_logistic_loss_with_a_large_margin_is_refused(engine):
    X, y = _logistic_data()
    loss = lambda w: np.mean(np.log1p(np.exp(-y * (X @ w))))
    with pytest.raises(NonFiniteDerivativeError, match="exp"):
        ad.grad(loss, engine=engine)(np.array([1.0, 0.5]))


@pytest.mark.parametrize("engine", ALL)
def test_stable_logistic_loss_agrees_with_mpmath(engine):
    # the same loss written with np.logaddexp: finite, and right (mpmath oracle, per weight)
    X, y = _logistic_data()
    w0 = np.array([1.0, 0.5])
    g = ad.grad(lambda w: np.mean(np.logaddexp(0.0, -y * (X @ w))), engine=engine)(w0)
    for j in range(2):

        def loss_j(t, j=j):
            w = [mpmath.mpf(v) for v in w0]
            w[j] = t
            return sum(mpmath.log(1 + mpmath.exp(-yi * (xi[0] * w[0] + xi[1] * w[1]))) for xi, yi in zip(X, y)) / 3

        # 1e-7: the numeric engine's central differences (the exact engines agree to ~1e-15)
        assert g[j] == pytest.approx(mp_derivative(loss_j, w0[j]), rel=1e-7)


@pytest.mark.parametrize("engine", EXACT)
def test_overflow_inside_a_finite_value_is_refused(engine):
    # arctan(log(exp(710))) is pi/2 in float64 (exp overflowed), its derivative 1/(1 + 710^2)
    with pytest.raises(NonFiniteDerivativeError, match="exp"):
        ad.grad(lambda x: np.arctan(np.log(np.exp(x))), engine=engine)(710.0)


@pytest.mark.parametrize("engine", EXACT)
def test_naive_sigmoid_far_left_is_refused_not_zeroed(engine):
    with pytest.raises(NonFiniteDerivativeError, match="overflow"):
        ad.grad(lambda x: 1.0 / (1.0 + np.exp(-x)), engine=engine)(-1000.0)


@pytest.mark.parametrize("engine", ("forward", "reverse", "paths", "symbolic"))
def test_overflow_in_the_branch_where_did_not_take_is_harmless(engine):
    # ELU at 1000: exp(1000) = inf in the untaken branch; f = x there, so f' = 1
    elu = lambda x: np.where(x > 0, x, np.exp(x) - 1.0)
    assert ad.grad(elu, engine=engine)(1000.0) == 1.0


def test_numeric_engine_refuses_points_where_f_overflows_inside():
    # a black box cannot tell a masked overflow (ELU above) from a used one (arctan(log(exp(710)))
    # is pi/2 in float64, flat: its finite difference would be 0, the truth 1 / (1 + 710^2))
    for f, x in [
        (lambda x: np.where(x > 0, x, np.exp(x) - 1.0), 1000.0),
        (lambda x: np.arctan(np.log(np.exp(x))), 710.0),
    ]:
        with pytest.raises(NonFiniteDerivativeError, match="overflow"):
            ad.grad(f, engine="numeric")(x)


@pytest.mark.parametrize(
    "f, x",
    [
        (lambda x: np.where(x > 0, np.sqrt(np.abs(x)), 0.0), 0.0),  # slope +inf on one side, 0 on the other
        (lambda x: np.floor(x) + x, 1.0),  # a jump
        (lambda x: x * np.sqrt(np.abs(x)) + ad.relu(np.sqrt(np.abs(x))), 0.0),
    ],
)
def test_numeric_engine_refuses_where_differences_do_not_converge(f, x):
    with pytest.raises(NonFiniteDerivativeError, match="do not converge"):
        ad.grad(f, engine="numeric")(x)


@pytest.mark.parametrize(
    "f, x, expected",
    [
        (lambda x: np.log(1e-5 + x), 0.0, 1e5),  # varies on a scale 1e-5: smaller steps are tried
        (lambda x: np.sqrt(x), 1e-6, 500.0),
        (lambda x: 1.0 / x, 1e-3, -1e6),
        (lambda x: np.tan(x), 1.5, 1.0 / math.cos(1.5) ** 2),
    ],
)
def test_numeric_engine_adapts_its_step_to_steep_smooth_functions(f, x, expected):
    # 1e-7: Richardson at the adapted step is good to ~1e-8 relative here (was 16 % off at log)
    assert ad.grad(f, engine="numeric")(x) == pytest.approx(expected, rel=1e-7)


@pytest.mark.parametrize("engine", ALL)
def test_nan_in_the_untaken_branch_does_not_leak(engine):
    # sqrt(-1) = nan and sqrt'(-1) = nan in the branch np.where drops: f = 0 near x = -1
    x = np.array([-1.0, 1.0, 4.0])
    f = lambda x: np.sum(np.where(x > 0, np.sqrt(np.abs(x)) * np.sign(x) + np.sqrt(x), 0.0))
    with np.errstate(invalid="ignore"):
        expected = central_diff(f, x, h=1e-6)
    # 1e-6: central differences with h = 1e-6 on sqrt (second derivative ~1)
    np.testing.assert_allclose(ad.grad(f, engine=engine)(x), expected, rtol=1e-6, atol=1e-8)


# --- a zero that merely happens at the point is not an exact zero ------------------------------


@pytest.mark.parametrize("engine", EXACT)
def test_sqrt_squared_at_zero_is_refused_not_zero(engine):
    # d/dx sqrt(x)^2 = 1 for x > 0; the chain rule meets 2 sqrt(0) = 0 times sqrt'(0) = inf,
    # and that zero is not exact (it holds at x = 0 only): 0 used to be returned
    with pytest.raises(NonFiniteDerivativeError, match="sqrt"):
        ad.grad(lambda x: np.sqrt(x) ** 2, engine=engine)(0.0)
    with pytest.raises(NonFiniteDerivativeError, match="sqrt"):
        ad.grad(lambda x: np.sum(np.sqrt(x) ** 2), engine=engine)(np.array([0.0, 1.0]))


@pytest.mark.parametrize("engine", ALL)
def test_constant_zero_factor_is_an_exact_zero(engine):
    # (0 x)^0.5 + x = x for every x: f' = 1 (forward said 1, reverse raised)
    assert ad.grad(lambda x: (0.0 * x) ** 0.5 + x, engine=engine)(1.0) == pytest.approx(1.0, rel=1e-9)


@pytest.mark.parametrize("engine", EXACT)
def test_masks_of_max_and_getitem_are_exact_zeros(engine):
    x = np.array([0.0, 1.0, 4.0])
    np.testing.assert_array_equal(ad.grad(lambda x: np.max(np.sqrt(x)), engine=engine)(x), [0.0, 0.0, 0.25])
    np.testing.assert_array_equal(ad.grad(lambda x: np.sum(np.sqrt(x)[1:]), engine=engine)(x), [0.0, 0.5, 0.25])


@pytest.mark.parametrize("engine", EXACT)
def test_a_kink_point_is_not_an_exact_zero(engine):
    # relu'(0) = 0 by the kink policy, but relu' is 1 just right of 0: relu(sqrt(x)) at 0 has
    # an infinite right derivative, so 0 x inf there is refused, not taken as 0
    with pytest.raises(NonFiniteDerivativeError, match="sqrt"):
        ad.grad(lambda x: ad.relu(np.sqrt(x)), engine=engine)(0.0)
    with pytest.raises(NonFiniteDerivativeError, match="sqrt"):
        ad.grad(lambda x: np.sum(ad.relu(np.sqrt(x))), engine=engine)(np.array([0.0, 1.0]))
    # away from the kink relu' = 0 holds in a neighbourhood: an exact zero
    assert ad.grad(lambda x: np.sqrt(ad.relu(x)), engine=engine)(-1.0) == 0.0


def test_jacobians_vjps_and_hessians_apply_the_same_rule():
    x = np.array([-1.0, 1.0, 4.0])
    f = lambda x: np.where(x > 0, np.sqrt(np.abs(x)), 0.0)
    expected = np.diag([0.0, 0.5, 0.25])
    for engine in ("forward", "reverse"):
        np.testing.assert_allclose(ad.jacobian(f, engine=engine)(x), expected, rtol=1e-15)
    np.testing.assert_allclose(ad.vjp(f, x)[1](np.ones(3))[0], [0.0, 0.5, 0.25], rtol=1e-15)
    # d2/dx2 of x^1.5 = 0.75 / sqrt(x): 0.75 at 1, 0.375 at 4; 0 where the branch is not taken
    h = ad.hessian(lambda x: np.sum(np.where(x > 0, np.abs(x) ** 1.5, 0.0)))(x)
    np.testing.assert_allclose(h, np.diag([0.0, 0.75, 0.375]), rtol=1e-12)
    with pytest.raises(NonFiniteDerivativeError, match="sqrt"):
        ad.jvp(lambda x: np.sqrt(x) ** 2, (0.0,), (1.0,))
    with pytest.raises(NonFiniteDerivativeError, match="sqrt"):
        ad.jacobian(lambda x: np.sqrt(x) ** 2)(np.zeros(2))


# --- integer powers at 0 -----------------------------------------------------------------------

_t = sympy.Symbol("t")
POLYNOMIALS = {
    "x**0": (lambda x: x**0, _t**0),
    "x**1": (lambda x: x**1, _t),
    "x**2": (lambda x: x**2, _t**2),
    "x**3 - 2x**2 + x**0": (lambda x: x**3 - 2 * x**2 + x**0, _t**3 - 2 * _t**2 + 1),
    "horner": (lambda x: ((2.0 * x + 3.0) * x + 4.0) * x + 5.0, ((2 * _t + 3) * _t + 4) * _t + 5),
    "vandermonde": (
        lambda x: np.array([1.0, -2.0, 3.0, 0.5]) @ np.stack([x**3, x**2, x**1, x**0]),
        _t**3 - 2 * _t**2 + 3 * _t + sympy.Rational(1, 2),
    ),
}


@pytest.mark.parametrize("engine", ALL)
@pytest.mark.parametrize("name", sorted(POLYNOMIALS))
def test_polynomials_at_zero_have_their_exact_derivative(engine, name):
    f, expr = POLYNOMIALS[name]
    expected = float(sympy.diff(expr, _t).subs(_t, 0))
    got = ad.grad(f, engine=engine)(0.0)
    # exact engines: the exact number; numeric: central differences, ~1e-10 absolute here
    assert got == pytest.approx(expected, abs=1e-15 if engine != "numeric" else 1e-8)


@pytest.mark.parametrize("name", sorted(POLYNOMIALS))
def test_second_derivatives_of_polynomials_at_zero(name):
    f, expr = POLYNOMIALS[name]
    expected = float(sympy.diff(expr, _t, 2).subs(_t, 0))
    assert ad.hessian(f)(0.0) == expected


def test_vander_at_zero_every_engine():
    for engine in ALL:
        g = ad.grad(lambda x: np.sum(np.vander(np.stack([x, x + 1.0]), 4)), engine=engine)(0.0)
        # d/dx of sum_k x^k + (x+1)^k, k = 0..3, at 0: (0 + 1 + 0 + 0) + (0 + 1 + 2 + 3) = 7
        assert g == pytest.approx(7.0, abs=1e-8), engine


# --- smooth where the function is smooth: logaddexp -------------------------------------------


def test_logaddexp_hessian_at_a_tie_matches_sympy():
    a, b = sympy.symbols("a b")
    h = sympy.hessian(sympy.log(sympy.exp(a) + sympy.exp(b)), (a, b)).subs({a: 0.5, b: 0.5})
    expected = np.array(h.evalf(30).tolist(), dtype=float)
    np.testing.assert_allclose(
        ad.hessian(lambda x: np.logaddexp(x[0], x[1]))(np.array([0.5, 0.5])), expected, rtol=1e-14
    )


@pytest.mark.parametrize("engine", ALL)
def test_logaddexp_gradient_far_out_and_at_ties(engine):
    for x, y in [(1000.0, 1000.0), (-1000.0, -1000.0), (0.3, 0.3), (700.0, -5.0)]:
        gx, gy = ad.grad(np.logaddexp, argnums=(0, 1), engine=engine)(x, y)

        def along(t, which):
            u, v = (t, mpmath.mpf(y)) if which == 0 else (mpmath.mpf(x), t)
            return mpmath.log(mpmath.exp(u) + mpmath.exp(v))

        # 1e-12: |out| ~ 1000 rounds to ~1e-13 relative, then exp(x - out)
        assert gx == pytest.approx(mp_derivative(lambda t: along(t, 0), x), rel=1e-12, abs=1e-300)
        assert gy == pytest.approx(mp_derivative(lambda t: along(t, 1), y), rel=1e-12, abs=1e-300)


@pytest.mark.parametrize("engine", ALL)
def test_maximum_ties_split_evenly_in_every_engine(engine):
    # the kink policy; the symbolic engine's Piecewise used to pick one side (0, 1)
    assert ad.grad(np.maximum, argnums=(0, 1), engine=engine)(1.0, 1.0) == pytest.approx((0.5, 0.5), abs=1e-9)
    assert ad.grad(np.minimum, argnums=(0, 1), engine=engine)(-2.0, -2.0) == pytest.approx((0.5, 0.5), abs=1e-9)


def test_clip_with_array_bounds_follows_the_clip_policy():
    # derivative 1 on the closed interval [lo, hi], as with scalar bounds (was 0.5 at lo)
    x = np.array([0.0, 0.5, 1.0, 2.0, -1.0])
    scalar = ad.grad(lambda x: np.sum(np.clip(x, 0.0, 1.0)))(x)
    array = ad.grad(lambda x: np.sum(np.clip(x, np.zeros(5), np.ones(5))))(x)
    np.testing.assert_array_equal(scalar, [1.0, 1.0, 1.0, 0.0, 0.0])
    np.testing.assert_array_equal(array, scalar)


# --- the classification of exact zeros, checked against the rules' values -----------------------


def test_exact_zero_classification_of_known_rules():
    assert zeros_are_structural(REGISTRY["mul"], 0, (True, False))  # 0 * x: the constant 0
    assert not zeros_are_structural(REGISTRY["mul"], 0, (True, True))  # x * y with y = 0 here
    assert zeros_are_structural(REGISTRY["where"], 1, (False, True, True))
    assert zeros_are_structural(REGISTRY["relu"], 0, (True,))
    assert not zeros_are_structural(REGISTRY["pow"], 0, (True, False))  # 2x is 0 at 0 only
    assert not zeros_are_structural(REGISTRY["tanh"], 0, (True,))  # 1 - out^2 underflows to 0


@pytest.mark.parametrize(
    "name", sorted(n for n, op in REGISTRY.items() if isinstance(op.partials, tuple) and op.domain is not None)
)
def test_rules_classified_exact_are_locally_constant(name):
    # Independent of the classifier's reading of the expression: a partial classified as
    # piecewise constant must not change under a small move of the traced inputs (away
    # from the domain's kinks); a wrong classification would zero a real 0 x inf.
    op = REGISTRY[name]
    rng = np.random.default_rng(7)
    xs = op.domain(rng, (32,))
    traced = tuple(True for _ in op.args)
    moved = tuple(x + 1e-7 if np.issubdtype(np.asarray(x).dtype, np.floating) else x for x in xs)
    for i, expr in enumerate(op.partials):
        if expr is None or not zeros_are_structural(op, i, traced):
            continue
        with np.errstate(all="ignore"):
            p0 = np.broadcast_to(op.partial_fns[i](op.impl(*xs), *xs), (32,))
            p1 = np.broadcast_to(op.partial_fns[i](op.impl(*moved), *moved), (32,))
        np.testing.assert_array_equal(p0, p1, err_msg=f"{name}'s partial {i} is not piecewise constant")


def test_every_refusal_is_an_adkit_error():
    with pytest.raises(AdkitError):
        ad.grad(lambda x: np.log(np.exp(x)))(1000.0)
    assert math.isfinite(ad.grad(lambda x: np.logaddexp(x, 0.0))(1000.0))
