"""Edge cases of adkit's forward and reverse engines: repeated uses, nesting
(perturbation confusion), higher derivatives, very long tapes, kinks, masked branches,
errors and their messages, dtypes, broadcasting, and the array ops.

References are closed forms written here or central finite differences computed here.
Known adkit bugs are marked xfail(strict=True) on the affected cases only (see
/tmp/adkit_bugs_lectures.md), so each fails loudly once fixed.
"""

import itertools
import math
import re
import time

import numpy as np
import pytest
from reference import central_diff

import adkit as ad
from adkit.errors import LeakedTracerError, NonFiniteDerivativeError, UnsupportedFunctionError

ENGINES = ("forward", "reverse")


# adkit vs central differences with h = 1e-6: truncation O(h^2 f''') ~ 1e-12, rounding
# O(eps |f| / h) ~ 1e-10, so 1e-7 passes a right derivative and fails any wrong one.
RTOL_FD, ATOL_FD = 1e-7, 1e-8
# adkit vs a closed form of the same elementary functions: equal up to a few ulps.
RTOL_CLOSED = 1e-12


# --- repeated uses and repeated calls -------------------------------------------------------


@pytest.mark.parametrize("engine", ENGINES)
def test_x_times_x_counts_both_uses_scalar(engine):
    for x in (-1.5, 0.0, 3.0):
        # d(x*x)/dx = x + x: both uses of x contribute; exact in floating point
        assert ad.grad(lambda x: x * x, engine=engine)(x) == 2 * x


@pytest.mark.parametrize("engine", ENGINES)
def test_x_times_x_counts_both_uses_array(engine):
    x = np.array([[-1.5, 0.0], [2.0, 7.25]])
    g = ad.grad(lambda x: np.sum(x * x), engine=engine)(x)
    np.testing.assert_array_equal(g, 2 * x)  # x + x is exact
    # three uses of x: twice in x * x, once added on its own (gradient 2x + 1)
    g2 = ad.grad(lambda x: np.sum(x * x + x), engine=engine)(x)
    np.testing.assert_array_equal(g2, 2 * x + 1)


@pytest.mark.parametrize("engine", ENGINES)
def test_gradient_function_called_twice_gives_identical_results(engine):
    def f(x):
        return np.sum(np.sin(x) * np.exp(x[::-1]))

    g = ad.grad(f, engine=engine)
    x = np.array([0.1, -0.4, 2.0])
    first = g(x)
    second = g(x)
    np.testing.assert_array_equal(first, second)
    first[0] = 1e9  # results are fresh arrays, not shared state
    np.testing.assert_array_equal(g(x), second)
    h = ad.grad(lambda x: np.sin(x) * x, engine=engine)
    assert h(1.0) == h(1.0)


# --- perturbation confusion ------------------------------------------------------------


PAIRS = list(itertools.product(ENGINES, ENGINES))


@pytest.mark.parametrize("outer, inner", PAIRS)
def test_perturbation_confusion(outer, inner):
    # d/dx [x * d/dy (x + y)] = d/dx [x * 1] = 1; confusing the two perturbations gives 2
    def f(x):
        return x * ad.grad(lambda y: x + y, engine=inner)(1.0)

    assert ad.grad(f, engine=outer)(3.0) == 1.0


@pytest.mark.parametrize("outer, inner", PAIRS)
def test_perturbation_confusion_closure(outer, inner):
    # d/dx [d/dy (x * y)] = d/dx x = 1; the inner function closes over the outer variable
    def f(x):
        return ad.grad(lambda y: x * y, engine=inner)(2.0)

    assert ad.grad(f, engine=outer)(3.0) == 1.0

    # and d/dx [x * d/dy (x * y^2)|_{y=2}] = d/dx [4 x^2] = 8x
    def h(x):
        return x * ad.grad(lambda y: x * y * y, engine=inner)(2.0)

    assert ad.grad(h, engine=outer)(3.0) == pytest.approx(24.0, rel=1e-15)


@pytest.mark.parametrize("e1, e2, e3", list(itertools.product(ENGINES, ENGINES, ENGINES)))
def test_perturbation_confusion_three_deep(e1, e2, e3):
    # d/dz (x + y + z) = 1; d/dy [x y * 1] = x; so f(x) = x * x and f'(x) = 2x
    def f(x):
        def g(y):
            return x * y * ad.grad(lambda z: x + y + z, engine=e3)(0.5)

        return x * ad.grad(g, engine=e2)(-1.0)

    assert ad.grad(f, engine=e1)(3.0) == pytest.approx(6.0, rel=1e-15)
    # pure closures three deep: d/dx d/dy d/dz (x y z) = 1
    k = lambda x: ad.grad(lambda y: ad.grad(lambda z: x * y * z, engine=e3)(0.7), engine=e2)(-2.0)
    assert ad.grad(k, engine=e1)(1.3) == pytest.approx(1.0, rel=1e-15)


# --- higher derivatives ----------------------------------------------------------------------


def tanh3_closed(x):
    # tanh' = 1 - t^2 = s; tanh'' = -2 t s; tanh''' = -2 (s' t + s t') = -2 (-2 t^2 s + s^2)
    #       = -2 s (s - 2 t^2) = -2 sech^2 (1 - 3 tanh^2)
    t = math.tanh(x)
    return -2 * (1 - t * t) * (1 - 3 * t * t)


def test_tanh_third_derivative_closed_form_matches_sympy():
    sympy = pytest.importorskip("sympy")
    x = sympy.symbols("x")
    d3 = sympy.diff(sympy.tanh(x), x, 3)
    for v in (-1.1, 0.0, 0.4, 2.0):
        assert float(d3.subs(x, v)) == pytest.approx(tanh3_closed(v), rel=1e-13, abs=1e-15)


@pytest.mark.parametrize("engines", list(itertools.product(ENGINES, ENGINES, ENGINES)))
@pytest.mark.parametrize("x", [-1.1, 0.0, 0.7])
def test_third_derivatives(engines, x):
    e1, e2, e3 = engines
    d3 = lambda f: ad.grad(ad.grad(ad.grad(f, engine=e3), engine=e2), engine=e1)
    assert d3(np.sin)(x) == pytest.approx(-math.cos(x), rel=RTOL_CLOSED, abs=1e-15)
    assert d3(np.tanh)(x) == pytest.approx(tanh3_closed(x), rel=RTOL_CLOSED, abs=1e-15)


def hess_f1(x):
    return np.sum(x**3) + x[0] * x[1]


def hess_f1_closed(x):
    H = np.diag(6 * x)
    H[0, 1] += 1
    H[1, 0] += 1
    return H


def hess_f2(x):
    return np.exp(x[0]) * np.sin(x[1]) + x[2] ** 2 * x[0]


def hess_f2_closed(x):
    a, b, c = x
    return np.array(
        [
            [math.exp(a) * math.sin(b), math.exp(a) * math.cos(b), 2 * c],
            [math.exp(a) * math.cos(b), -math.exp(a) * math.sin(b), 0.0],
            [2 * c, 0.0, 2 * a],
        ]
    )


A_QUAD = np.array([[2.0, 1.0, 0.0], [-1.0, 3.0, 0.5], [0.0, 2.0, 1.0]])


def hess_f3(x):
    return x @ A_QUAD @ x + np.sum(np.log1p(x * x))


def hess_f3_closed(x):
    return A_QUAD + A_QUAD.T + np.diag(2 * (1 - x * x) / (1 + x * x) ** 2)


HESSIAN_CASES = [
    pytest.param(hess_f1, hess_f1_closed, id="cubic"),
    pytest.param(hess_f2, hess_f2_closed, id="exp_sin"),
    pytest.param(hess_f3, hess_f3_closed, id="quadratic_form"),
]


@pytest.mark.parametrize("f, closed", HESSIAN_CASES)
def test_hessian_closed_form_and_finite_differences(f, closed):
    x = np.array([0.3, -0.8, 1.2])
    H = ad.hessian(f)(x)
    assert H.shape == (3, 3)
    np.testing.assert_allclose(H, closed(x), rtol=RTOL_CLOSED, atol=1e-14)
    # central differences of the (reverse-mode) gradient, one column per direction
    g = ad.grad(f)
    fd = np.stack([(g(x + 1e-6 * e) - g(x - 1e-6 * e)) / 2e-6 for e in np.eye(3)], axis=1)
    np.testing.assert_allclose(H, fd, rtol=1e-6, atol=1e-7)  # FD error ~1e-9 on O(1) entries


@pytest.mark.parametrize("f, closed", HESSIAN_CASES)
def test_hvp_equals_hessian_times_vector(f, closed):
    x = np.array([0.3, -0.8, 1.2])
    for v in (np.array([1.0, 0.0, 0.0]), np.array([0.5, -2.0, 1.5])):
        hv = ad.hvp(f, (x,), (v,))
        np.testing.assert_allclose(hv, closed(x) @ v, rtol=RTOL_CLOSED, atol=1e-14)
        np.testing.assert_allclose(hv, ad.hessian(f)(x) @ v, rtol=RTOL_CLOSED, atol=1e-14)


# --- a very long tape -----------------------------------------------------------------------


def test_million_op_chain_reverse():
    n, c = 1_000_000, 1.0000001

    def chain(x):
        for _ in range(n):
            x = x * c
        return x

    start = time.perf_counter()
    g = ad.grad(chain, engine="reverse")(1.0)  # no RecursionError on a 1e6-entry tape
    elapsed = time.perf_counter() - start
    # d/dx (x c^n) = c^n; rounding grows at most ~n eps = 2e-10 relative along the product
    assert g == pytest.approx(c**n, rel=1e-9)
    assert elapsed < 15.0


# --- non-differentiable points ----------------------------------------------------------------


@pytest.mark.parametrize("engine", ENGINES)
def test_abs_at_zero(engine):
    # abs'(0) = 0 (a subgradient; also what central differences give)
    assert ad.grad(np.abs, engine=engine)(0.0) == 0.0
    assert ad.grad(np.abs, engine=engine)(0.0) == central_diff(np.abs, 0.0)
    np.testing.assert_array_equal(
        ad.grad(lambda x: np.sum(np.abs(x)), engine=engine)(np.array([-2.0, 0.0, 3.0])), [-1.0, 0.0, 1.0]
    )


@pytest.mark.parametrize("engine", ENGINES)
def test_relu_at_zero(engine):
    # SEEDS §4: ReLU backward g = g' * I(z > 0), so relu'(0) = 0
    assert ad.grad(ad.relu, engine=engine)(0.0) == 0.0
    np.testing.assert_array_equal(
        ad.grad(lambda x: np.sum(ad.relu(x)), engine=engine)(np.array([-1.0, 0.0, 2.0])), [0.0, 0.0, 1.0]
    )


@pytest.mark.parametrize("engine", ENGINES)
def test_maximum_tie_splits_evenly(engine):
    # on a tie each input gets 0.5: exactly what central differences of max(x, y) give
    gx, gy = ad.grad(np.maximum, argnums=(0, 1), engine=engine)(1.5, 1.5)
    assert (gx, gy) == (0.5, 0.5)
    assert gx == pytest.approx(central_diff(lambda x: max(x, 1.5), 1.5), rel=1e-9)
    gx, gy = ad.grad(lambda x, y: np.sum(np.maximum(x, y)), argnums=(0, 1), engine=engine)(
        np.array([1.0, 2.0, 3.0]), np.array([1.0, 5.0, 0.0])
    )
    np.testing.assert_array_equal(gx, [0.5, 0.0, 1.0])
    np.testing.assert_array_equal(gy, [0.5, 1.0, 0.0])


@pytest.mark.parametrize("engine", ENGINES)
def test_hard_tanh_at_plus_minus_one(engine):
    # SEEDS §4: hard tanh backward copies the gradient inside the closed interval [-1, 1]
    assert ad.grad(ad.hard_tanh, engine=engine)(1.0) == 1.0
    assert ad.grad(ad.hard_tanh, engine=engine)(-1.0) == 1.0
    np.testing.assert_array_equal(
        ad.grad(lambda x: np.sum(ad.hard_tanh(x)), engine=engine)(np.array([-2.0, -1.0, 0.3, 1.0, 1.5])),
        [0.0, 1.0, 1.0, 1.0, 0.0],
    )


@pytest.mark.parametrize("engine", ENGINES)
def test_leaky_relu_at_zero_explicit_alpha(engine):
    # SEEDS §9: leaky ReLU is alpha v for v <= 0, so its derivative at 0 is alpha
    assert ad.grad(lambda x: ad.leaky_relu(x, alpha=0.2), engine=engine)(0.0) == pytest.approx(0.2, rel=1e-15)
    assert ad.grad(lambda x: ad.leaky_relu(x, alpha=0.2), engine=engine)(-3.0) == pytest.approx(0.2, rel=1e-15)


@pytest.mark.parametrize("engine", ENGINES)
def test_leaky_relu_default_alpha(engine):
    alpha = ad.leaky_relu.params["alpha"]
    assert ad.grad(ad.leaky_relu, engine=engine)(0.0) == pytest.approx(alpha, rel=1e-15)
    g = ad.grad(lambda x: np.sum(ad.leaky_relu(x)), engine=engine)(np.array([-2.0, 0.0, 1.0]))
    np.testing.assert_allclose(g, [alpha, alpha, 1.0], rtol=1e-15)


# --- masked branches: np.where ------------------------------------------------------------


X_MASK = np.array([0.0, -1.0, 4.0, -0.5, 2.25])


def where_sqrt(x):
    return np.sum(np.where(x > 0, np.sqrt(x), 0.0))


def where_log(x):
    return np.sum(np.where(x > 0, np.log(x), x))


@pytest.mark.filterwarnings("ignore::RuntimeWarning")
@pytest.mark.parametrize("engine", ENGINES)
@pytest.mark.parametrize("f", [where_sqrt, where_log])
def test_where_untaken_branch_does_not_poison_gradient_arrays(engine, f):
    g = ad.grad(f, engine=engine)(X_MASK)
    pos = X_MASK > 0
    # closed form: taken branch's derivative where x > 0; 0 (sqrt case) or 1 (identity) elsewhere
    if f is where_sqrt:
        expected = np.where(pos, 0.5 / np.sqrt(np.where(pos, X_MASK, 1.0)), 0.0)
    else:
        expected = np.where(pos, 1.0 / np.where(pos, X_MASK, 1.0), 1.0)
    assert np.all(np.isfinite(g))
    np.testing.assert_allclose(g, expected, rtol=RTOL_CLOSED)


@pytest.mark.filterwarnings("ignore::RuntimeWarning")
@pytest.mark.parametrize("engine", ENGINES)
def test_where_untaken_branch_jacobian(engine):
    J = ad.jacobian(lambda x: np.where(x > 0, np.sqrt(x), 0.0), engine=engine)(X_MASK)
    pos = X_MASK > 0
    expected = np.diag(np.where(pos, 0.5 / np.sqrt(np.where(pos, X_MASK, 1.0)), 0.0))
    np.testing.assert_allclose(J, expected, rtol=RTOL_CLOSED)


@pytest.mark.filterwarnings("ignore::RuntimeWarning")
@pytest.mark.parametrize("engine", ENGINES)
def test_where_untaken_branch_scalar_sqrt_at_zero(engine):
    assert ad.grad(lambda x: np.where(x > 0, np.sqrt(x), 0.0), engine=engine)(0.0) == 0.0


@pytest.mark.filterwarnings("ignore::RuntimeWarning")
@pytest.mark.parametrize("engine", ENGINES)
def test_where_untaken_branch_scalar_log_negative(engine):
    assert ad.grad(lambda x: np.where(x > 0, np.log(x), x), engine=engine)(-1.0) == 1.0


# --- non-finite derivatives and their errors ---------------------------------------------------


def names_in(err):
    """The error message without adkit's fixed advice, which mentions sqrt(sum(x**2)) whatever the op."""
    return str(err).replace("sqrt(sum(x**2))", "")


@pytest.mark.filterwarnings("ignore::RuntimeWarning")
@pytest.mark.parametrize("engine", ENGINES)
def test_sqrt_at_zero_raises_named_error_scalar(engine):
    with pytest.raises(NonFiniteDerivativeError) as info:
        ad.grad(np.sqrt, engine=engine)(0.0)
    assert "sqrt" in names_in(info.value)


@pytest.mark.filterwarnings("ignore::RuntimeWarning")
@pytest.mark.parametrize("engine", ENGINES)
def test_sqrt_at_zero_raises_named_error_array(engine):
    with pytest.raises(NonFiniteDerivativeError) as info:
        ad.grad(lambda x: np.sum(np.sqrt(x)), engine=engine)(np.array([0.0, 1.0]))
    assert "sqrt" in names_in(info.value)


@pytest.mark.parametrize("engine", ENGINES)
@pytest.mark.parametrize("norm", [np.linalg.norm, ad.norm], ids=["np.linalg.norm", "ad.norm"])
def test_norm_gradient_zero_vector_and_elsewhere(engine, norm):
    g0 = ad.grad(norm, engine=engine)(np.zeros(3))
    assert np.all(np.isfinite(g0))
    np.testing.assert_array_equal(g0, np.zeros(3))
    x = np.array([3.0, -4.0, 12.0])
    g = ad.grad(norm, engine=engine)(x)
    np.testing.assert_allclose(g, x / 13.0, rtol=RTOL_CLOSED)  # x / |x|
    np.testing.assert_allclose(g, central_diff(lambda v: np.sqrt(np.sum(v * v)), x), rtol=RTOL_FD, atol=ATOL_FD)


# --- unsupported functions and bad inputs -----------------------------------------------------


@pytest.mark.parametrize("engine", ENGINES)
def test_unsupported_numpy_function_histogram(engine):
    with pytest.raises(UnsupportedFunctionError, match=r"np\.histogram"):
        ad.grad(lambda x: np.sum(np.histogram(x)[1]), engine=engine)(np.ones(3))


@pytest.mark.parametrize("engine", ENGINES)
def test_unsupported_numpy_function_fft_named(engine):
    # np.fft.fft and its kin are supported (tests/test_fft.py); hfft is not
    with pytest.raises(UnsupportedFunctionError, match=r"np\.fft\.hfft\b"):
        ad.grad(lambda x: np.sum(np.fft.hfft(x)), engine=engine)(np.ones(3))


@pytest.mark.parametrize("engine", ENGINES)
def test_integer_inputs_are_promoted(engine):
    g = ad.grad(lambda x: x**2, engine=engine)(3)
    assert g == 6.0 and isinstance(g, float)
    ga = ad.grad(lambda x: np.sum(x**2), engine=engine)(np.array([1, -2, 3]))
    assert ga.dtype == np.float64
    np.testing.assert_array_equal(ga, [2.0, -4.0, 6.0])
    gm = ad.grad(lambda x, y: x * y, argnums=(0, 1), engine=engine)(2, np.int64(5))
    assert gm == (5.0, 2.0)


@pytest.mark.parametrize("engine", ENGINES)
@pytest.mark.parametrize("bad", ["abc", None, object()])
def test_non_numeric_input_raises_type_error(engine, bad):
    with pytest.raises(TypeError, match="expected a float, an int, a numpy array"):
        ad.grad(lambda x: x * 2.0, engine=engine)(bad)


@pytest.mark.parametrize("engine", ENGINES)
def test_grad_of_non_scalar_output_mentions_jacobian(engine):
    with pytest.raises(TypeError, match="jacobian"):
        ad.grad(lambda x: np.sin(x), engine=engine)(np.ones(3))


@pytest.mark.parametrize("engine", ENGINES)
def test_np_array_of_traced_values_is_stacked(engine):
    # np.array([x, y]) is an object array of traced values; adkit stacks it where it meets it
    assert ad.grad(lambda x, y: np.sum(np.array([x, y]) ** 2), argnums=(0, 1), engine=engine)(1.0, 2.0) == (
        2.0,
        4.0,
    )


# --- shapes and dtypes ------------------------------------------------------------------------


@pytest.mark.parametrize("engine", ENGINES)
def test_broadcasting_is_undone(engine):
    x = np.array([0.5, -1.0, 2.0])
    y = np.array([1.0, 2.0, -3.0, 0.25])
    f = lambda x, y: np.sum(np.sin(x[:, None] * y[None, :]))
    gx, gy = ad.grad(f, argnums=(0, 1), engine=engine)(x, y)
    assert gx.shape == (3,) and gy.shape == (4,)
    np.testing.assert_allclose(gx, central_diff(lambda v: f(v, y), x), rtol=RTOL_FD, atol=ATOL_FD)
    np.testing.assert_allclose(gy, central_diff(lambda v: f(x, v), y), rtol=RTOL_FD, atol=ATOL_FD)
    # a scalar broadcast against an array gets the sum of the array's gradient
    gs = ad.grad(lambda s, x: np.sum(s * x), argnums=0, engine=engine)(2.0, x)
    assert gs == pytest.approx(np.sum(x), rel=1e-15)


@pytest.mark.parametrize("engine", ENGINES)
def test_float32_gradients_keep_dtype(engine):
    x = np.array([0.5, -1.0, 2.0], dtype=np.float32)
    g = ad.grad(lambda x: np.sum(np.sin(x) * x), engine=engine)(x)
    assert g.dtype == np.float32
    # float32 precision: eps32 ~ 6e-8, so compare at 1e-5 relative
    np.testing.assert_allclose(g, np.cos(x.astype(np.float64)) * x + np.sin(x.astype(np.float64)), rtol=1e-5)


# --- tracer lifetime and pullbacks -----------------------------------------------------------


@pytest.mark.parametrize("engine", ENGINES)
def test_leaked_array_tracer_raises(engine):
    leak = []

    def f(x):
        leak.append(x)
        return np.sum(x * 2.0)

    ad.grad(f, engine=engine)(np.ones(2))
    with pytest.raises(LeakedTracerError):
        leak[0] * 3.0
    with pytest.raises(LeakedTracerError):
        np.sin(leak[0])


@pytest.mark.parametrize("engine", ENGINES)
def test_leaked_scalar_tracer_raises(engine):
    leak = []

    def f(x):
        leak.append(x)
        return x * 2.0

    ad.grad(f, engine=engine)(1.0)
    with pytest.raises(LeakedTracerError):
        leak[0] * 3.0
    with pytest.raises(LeakedTracerError):
        np.sin(leak[0])


def test_vjp_pullback_can_be_called_twice():
    def f(x, y):
        return np.sin(x) * y, np.sum(x * y)

    x, y = np.array([0.3, -1.2]), np.array([2.0, 0.5])
    out, pullback = ad.vjp(f, x, y)
    ct = (np.array([1.0, -2.0]), 0.5)
    first = pullback(ct)
    second = pullback(ct)
    for a, b in zip(first, second):
        np.testing.assert_array_equal(a, b)
    # closed form: d/dx = ct0 cos(x) y + ct1 y; d/dy = ct0 sin(x) + ct1 x
    np.testing.assert_allclose(first[0], ct[0] * np.cos(x) * y + ct[1] * y, rtol=RTOL_CLOSED)
    np.testing.assert_allclose(first[1], ct[0] * np.sin(x) + ct[1] * x, rtol=RTOL_CLOSED)
    # the pullback is linear in the cotangent
    doubled = pullback((2 * ct[0], 2 * ct[1]))
    np.testing.assert_allclose(doubled[0], 2 * first[0], rtol=1e-15)


# --- array ops vs finite differences --------------------------------------------------------

RNG = np.random.default_rng(11)
MAT = RNG.normal(size=(3, 4))
VEC3 = RNG.normal(size=3)
VEC4 = RNG.normal(size=4)
A34 = RNG.normal(size=(3, 4))


def op_indexing(x):  # x: (3, 4)
    fancy = np.sum(x[[0, 2], [3, 1]] * np.array([1.0, -2.0]))
    return x[1, 2] * np.sum(x[0, :]) + np.sum(x[:, 1:] ** 2) + np.sum(x[::2, ::-1] * x[-1, 0]) + fancy


def op_concatenate(x):
    return np.sum(np.concatenate([x[0], 2 * x[1], x[2, :2] ** 2]) ** 2) + np.sum(np.concatenate([x, x**2], axis=1)[1])


def op_stack(x):
    s = np.stack([np.sin(x[0]), x[1] * x[2], x[0]], axis=1)
    return np.sum(s * np.arange(12.0).reshape(4, 3))


def op_where(x):
    return np.sum(np.where(x > 0, x**2, np.sin(x)))


def op_mean(x):
    return np.mean(x**2) + np.sum(np.mean(np.exp(x), axis=0) * VEC4)


def op_max(x):
    return np.max(np.tanh(x)) + np.sum(np.max(x * x, axis=1))


def op_matmul_2d_2d(x):
    return np.sum(np.tanh(x @ A34.T))


def op_matmul_1d_2d(x):
    return np.sum(np.sin(VEC3 @ x))


def op_matmul_2d_1d(x):
    return np.sum((x @ VEC4) ** 2)


def op_matmul_1d_1d(x):
    return (x[0] @ x[1]) ** 2


ARRAY_OPS = [
    op_indexing,
    op_concatenate,
    op_stack,
    op_where,
    op_mean,
    op_max,
]
MATMUL_OPS = [op_matmul_2d_2d, op_matmul_1d_2d, op_matmul_2d_1d, op_matmul_1d_1d]


@pytest.mark.parametrize("engine", ENGINES)
@pytest.mark.parametrize("f", ARRAY_OPS, ids=lambda f: f.__name__)
def test_array_ops_vs_finite_differences(engine, f):
    g = ad.grad(f, engine=engine)(MAT)
    assert g.shape == MAT.shape
    np.testing.assert_allclose(g, central_diff(f, MAT), rtol=RTOL_FD, atol=ATOL_FD)


@pytest.mark.parametrize("engine", ENGINES)
@pytest.mark.parametrize("f", MATMUL_OPS, ids=lambda f: f.__name__)
def test_matmul_vs_finite_differences(engine, f):
    g = ad.grad(f, engine=engine)(MAT)
    np.testing.assert_allclose(g, central_diff(f, MAT), rtol=RTOL_FD, atol=ATOL_FD)


@pytest.mark.parametrize("engine", ENGINES)
def test_max_ties_split_evenly(engine):
    # two-way tie: 1/2 each, which is also what central differences give
    x2 = np.array([1.0, 3.0, 3.0, 2.0])
    g2 = ad.grad(np.max, engine=engine)(x2)
    np.testing.assert_array_equal(g2, [0.0, 0.5, 0.5, 0.0])
    np.testing.assert_allclose(g2, central_diff(np.max, x2), rtol=1e-9)
    # three-way tie: split evenly, 1/3 each (central differences would give 1/2 each here:
    # a one-sided perturbation breaks the tie, so FD is not the reference for this case)
    g3 = ad.grad(np.max, engine=engine)(np.array([3.0, 1.0, 3.0, 3.0]))
    np.testing.assert_allclose(g3, [1 / 3, 0.0, 1 / 3, 1 / 3], rtol=1e-15)
    # ties along an axis: each row splits its own unit of gradient
    gax = ad.grad(lambda x: np.sum(np.max(x, axis=1)), engine=engine)(np.array([[1.0, 1.0, 0.0], [3.0, 1.0, 3.0]]))
    np.testing.assert_array_equal(gax, [[0.5, 0.5, 0.0], [0.5, 0.0, 0.5]])


# --- the finiteness check every gradient goes through --------------------------------------------


@pytest.mark.parametrize("dtype", [np.float64, np.float32, np.complex128])
@pytest.mark.parametrize("layout", ["contiguous", "transposed", "0-d", "empty"])
def test_all_finite_agrees_with_isfinite_all(dtype, layout):
    """adkit.ops.core.all_finite (one BLAS dot product a . a for contiguous floats) says
    exactly what np.isfinite(a).all() says, including for huge finite entries whose
    squares overflow (1e200**2 = inf: the fast test fails, the exact one must decide)."""
    from adkit.ops.core import all_finite

    rng = np.random.default_rng(3)
    shapes = {"contiguous": (6, 5), "transposed": (5, 6), "0-d": (), "empty": (0, 3)}
    for bad in (None, np.inf, -np.inf, np.nan, 1e200, -3e300):
        a = rng.standard_normal(shapes[layout]).astype(dtype)
        if layout == "transposed":
            a = a.T
        if bad is not None and a.size:
            with np.errstate(over="ignore"):  # 1e200 in float32 is inf
                a[np.unravel_index(rng.integers(a.size), a.shape)] = bad
        assert all_finite(a) == bool(np.isfinite(a).all()), (dtype, layout, bad)


@pytest.mark.parametrize("engine", ENGINES)
@pytest.mark.parametrize("reduce", [np.sum, np.prod, np.mean], ids=["sum", "prod", "mean"])
@pytest.mark.parametrize(
    ("keywords", "named"),
    [({"where": np.array([True, False, True])}, "where="), ({"dtype": np.int64}, "dtype=int64")],
    ids=["mask", "integer dtype"],
)
def test_reduction_keywords_without_a_derivative_are_refused_by_name(engine, reduce, keywords, named):
    """A mask array used to crash inside the keyword check ("truth value of an array is
    ambiguous"); an integer dtype was silently ignored. Both now name the keyword."""
    with pytest.raises(UnsupportedFunctionError, match=re.escape(named)):
        ad.grad(lambda v: np.sum(reduce(v, **keywords)), engine=engine)(np.arange(1.0, 7.0).reshape(2, 3))


# --- ndarray methods and operators on traced arrays -----------------------------------------------

METHODS = {
    "std": (lambda v: v.std(ddof=1), lambda v: np.std(v, ddof=1)),
    "var": (lambda v: v.var(axis=0).sum(), lambda v: np.var(v, axis=0).sum()),
    "cumsum": (lambda v: (v.cumsum() ** 2).sum(), lambda v: (np.cumsum(v) ** 2).sum()),
    "clip": (lambda v: (v.clip(-0.5, 0.5) ** 2).sum(), lambda v: (np.clip(v, -0.5, 0.5) ** 2).sum()),
    "squeeze": (lambda v: (v[None].squeeze() ** 3).sum(), lambda v: (v**3).sum()),
    "swapaxes": (lambda v: v.swapaxes(0, 1)[2, 0] * v[1, 1], lambda v: v[0, 2] * v[1, 1]),
    "copy": (lambda v: (v.copy() * v).sum(), lambda v: (v * v).sum()),
    "trace": (lambda v: v[:, :2].trace() * v[0, 2], lambda v: (v[0, 0] + v[1, 1]) * v[0, 2]),
    "argmax": (lambda v: v.ravel()[v.argmax()] ** 2, lambda v: np.max(v) ** 2),
    "remainder": (lambda v: (v % 0.7).sum() + (2.0 % (v + 3.0)).sum(), None),
    "floor_divide": (lambda v: (v * (5.0 // (v + 3.0))).sum() + (v // 0.7).sum(), None),
}


@pytest.mark.parametrize("engine", ENGINES)
@pytest.mark.parametrize("name", sorted(METHODS))
def test_ndarray_methods_and_operators_on_traced_values(name, engine):
    """x.std(), x % y, ... on traced arrays are the numpy functions of the same names:
    the gradient equals that of the function form (exactly: the same ops), and matches
    central differences (RTOL_FD / ATOL_FD, the file's FD tolerances) away from the
    jumps of % and //."""
    method, function = METHODS[name]
    x = np.array([[0.31, -0.62, 0.13], [0.45, 0.92, -0.27]])
    g = ad.grad(method, engine=engine)(x)
    if function is not None:
        np.testing.assert_array_equal(g, ad.grad(function, engine=engine)(x))
    np.testing.assert_allclose(g, central_diff(method, x), rtol=RTOL_FD, atol=ATOL_FD)


@pytest.mark.parametrize(
    "call, error, says",
    [
        (lambda v: v.item(), TypeError, "item"),
        (lambda v: v.sort(), TypeError, "np.sort"),
        (lambda v: v.fill(0.0), TypeError, "fill"),
        (lambda v: v.tolist(), TypeError, "tolist"),
        (lambda v: v.choose([0, 0, 0]).sum(), UnsupportedFunctionError, "np.choose"),
        (lambda v: np.sum(np.fft.hfft(v).real), UnsupportedFunctionError, "np.fft.hfft"),
    ],
    ids=["item", "sort", "fill", "tolist", "choose", "fft"],
)
def test_ndarray_methods_without_a_derivative_say_so(call, error, says):
    with pytest.raises(error, match=re.escape(says)):
        ad.grad(lambda v: np.sum(call(v)))(np.ones(3))


def test_tracers_have_no_getattr_hook():
    """Unknown ndarray methods get class attributes (adkit.ops.core._ndarray_method), never a
    __getattr__: that hook turns off CPython's attribute specialisation for every tracer,
    and the scalar engines' fast paths (slot reads) get ~1.7x slower."""
    from adkit.ops.core import Tracer

    assert all("__getattr__" not in vars(cls) for cls in Tracer.__mro__ if cls is not object)
    assert callable(Tracer.choose) and callable(Tracer.compress)


@pytest.mark.parametrize("engine", ad.ENGINES)
def test_every_engine_gives_the_subgradient_zero_at_the_tip_of_norm_and_hypot(engine):
    """DESIGN.md's kink policy (0 at a minimum) holds in every engine: the symbolic engine
    builds norm and hypot as Piecewise((0, all entries 0), (sqrt(sum x^2), True)), so its
    derivative there is 0, not sympy's 0 / 0; numeric differences see 0 by symmetry."""
    g = ad.grad(lambda v: np.linalg.norm(v), engine=engine)(np.zeros(3))
    np.testing.assert_array_equal(g, np.zeros(3))
    assert ad.grad(lambda a, b: np.hypot(a, b), argnums=(0, 1), engine=engine)(0.0, 0.0) == (0.0, 0.0)
    ga, gb = ad.grad(lambda a, b: np.hypot(a, b), argnums=(0, 1), engine=engine)(3.0, -4.0)
    assert ga == pytest.approx(0.6, rel=1e-6) and gb == pytest.approx(-0.8, rel=1e-6)  # 1e-6: numeric's FD error
