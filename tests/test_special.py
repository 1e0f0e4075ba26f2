"""scipy.special functions and the extra numpy elementwise functions on traced values.

The registry-wide tests (tests/test_registry.py) check every rule against finite
differences, complex step and sympy at ordinary points. Here the oracle is mpmath at
high precision (it ships with sympy), at the hard points: large arguments, near poles,
erfinv near ±1, log_ndtr far in the tail (where phi and Phi underflow), sinc near 0,
and the places where adkit must refuse instead of returning a number. Derivatives in
mpmath are its own numerical differentiation (mp.diff) of its own function, at a
working precision far beyond float64: independent of adkit's rules.
"""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

import adkit as ad
from adkit.errors import NonFiniteDerivativeError, UnsupportedFunctionError

sc = pytest.importorskip("scipy.special")
mp = pytest.importorskip("mpmath")
asc = pytest.importorskip("adkit.scipy.special")

ENGINES = ("forward", "reverse")

# A rule evaluated in float64 at a point where it is well conditioned is a handful of
# roundings away from the truth: 1e-14 relative is ~45 ulps. Points where the function
# itself amplifies rounding get their own tolerance below, with the reason.
RTOL = 1e-14


def mp_derivative(f, x: float, order: int = 1, dps: int = 120):
    """d^order f / dx^order at the float x, by mpmath at `dps` digits."""
    with mp.workdps(dps):
        # a step of 10^(-dps/3) relative to x: truncation and rounding both ~10^(-2 dps/3),
        # and the step stays inside the domain however small x is (logit at 1e-300)
        h = mp.mpf(10) ** (-(dps // 3)) * (abs(mp.mpf(x)) if x else 1)
        return mp.diff(f, mp.mpf(x), order, h=h)


def assert_close(got, want, rtol: float, what: str) -> None:
    got = float(got)
    want = mp.mpf(want)
    assert np.isfinite(got), f"{what}: got {got}"
    err = abs(mp.mpf(got) - want)
    assert err <= rtol * abs(want), (
        f"{what}: got {got!r}, mpmath {mp.nstr(want, 17)} (relative error {float(err / abs(want)):.2e})"
    )


def mp_ncdf_log(x):
    return mp.log(mp.ncdf(x))


def mp_ndtri(p):
    return mp.findroot(lambda t: mp.ncdf(t) - p, float(sc.ndtri(float(p))))


# (function of a traced scalar, mpmath function, point, tolerance, mpmath digits)
HARD_POINTS = [
    (sc.erf, mp.erf, 0.3, RTOL, 60),
    (sc.erf, mp.erf, 6.0, RTOL, 60),
    # erf'(26) = 2.9e-294: tiny but a float, so it must not underflow to 0 (erf(26) = 1 - 6e-296
    # needs 300 digits to differentiate)
    (sc.erf, mp.erf, 26.0, RTOL, 400),
    (sc.erfc, mp.erfc, -5.0, RTOL, 60),
    (sc.erfc, mp.erfc, 10.0, RTOL, 60),
    (sc.erfinv, mp.erfinv, 0.5, RTOL, 60),
    (sc.erfinv, mp.erfinv, -0.999, RTOL, 60),
    # erfinv'(x) = sqrt(pi)/2 exp(erfinv(x)^2): exp amplifies erfinv's rounding by 2 erfinv^2 ~ 70
    (sc.erfinv, mp.erfinv, 1 - 2**-53, 3e-14, 120),  # 120 digits: mpmath's step must be << 1 - x
    (sc.erfinv, mp.erfinv, -1 + 2**-53, 3e-14, 120),
    (sc.erfcinv, lambda x: mp.erfinv(1 - x), 1e-10, 3e-14, 60),
    (sc.ndtr, mp.ncdf, -30.0, RTOL, 60),
    (sc.ndtr, mp.ncdf, 8.0, RTOL, 60),
    # log_ndtr: phi and Phi both underflow for x < -38; their ratio (~ -x) must not
    (sc.log_ndtr, mp_ncdf_log, -1e5, RTOL, 60),
    (sc.log_ndtr, mp_ncdf_log, -40.0, RTOL, 60),
    (sc.log_ndtr, mp_ncdf_log, 0.0, RTOL, 60),
    (sc.log_ndtr, mp_ncdf_log, 5.0, RTOL, 60),
    # x = 30: the derivative 1.5e-196 is exp(-x^2/2)-small; x^2 / 2 = 450 carries its
    # rounding (450 * 2^-53 ~ 5e-14) into the result
    (sc.log_ndtr, mp_ncdf_log, 30.0, 3e-13, 400),
    # ndtri'(p) = 1 / phi(ndtri(p)): exp(ndtri^2 / 2) amplifies ndtri's rounding by ndtri^2 ~ 1370
    (sc.ndtri, mp_ndtri, 1e-300, 1e-12, 60),
    (sc.ndtri, mp_ndtri, 0.3, RTOL, 60),
    (sc.expit, lambda x: 1 / (1 + mp.exp(-x)), -700.0, RTOL, 60),
    (sc.expit, lambda x: 1 / (1 + mp.exp(-x)), 30.0, RTOL, 60),
    (sc.logit, lambda x: mp.log(x / (1 - x)), 1e-300, RTOL, 60),
    (sc.logit, lambda x: mp.log(x / (1 - x)), 1 - 1e-12, RTOL, 60),
    (sc.log_expit, lambda x: -mp.log(1 + mp.exp(-x)), -1000.0, RTOL, 60),
    (sc.log_expit, lambda x: -mp.log(1 + mp.exp(-x)), 40.0, RTOL, 60),
    (sc.gammaln, lambda x: mp.log(abs(mp.gamma(x))), 1e-10, RTOL, 60),
    (sc.gammaln, lambda x: mp.log(abs(mp.gamma(x))), -2.5, RTOL, 60),
    (sc.gammaln, lambda x: mp.log(abs(mp.gamma(x))), 1e10, RTOL, 60),
    # scipy's digamma within d of a negative pole has relative error ~ eps / d (its
    # reflection formula): 1e-8 from the pole at -1, that is ~1e-8; gammaln' is digamma
    (sc.gammaln, lambda x: mp.log(abs(mp.gamma(x))), -1 + 1e-8, 3e-8, 60),
    (sc.gamma, mp.gamma, -2.5, RTOL, 60),
    (sc.gamma, mp.gamma, 150.0, RTOL, 60),
    (sc.digamma, mp.digamma, 1e-10, RTOL, 60),
    (sc.digamma, mp.digamma, -1 + 1e-8, RTOL, 60),  # digamma' = trigamma, accurate near poles
    (sc.digamma, mp.digamma, 1e8, RTOL, 60),
    (sc.digamma, mp.digamma, 1.4616321449683622, RTOL, 60),  # digamma's zero
    (sc.loggamma, mp.loggamma, 1e10, RTOL, 60),
    (sc.i0, lambda x: mp.besseli(0, x), 5.0, RTOL, 60),
    (sc.i1, lambda x: mp.besseli(1, x), 1e-8, RTOL, 60),
    (sc.i1, lambda x: mp.besseli(1, x), 600.0, RTOL, 60),
    (sc.i0e, lambda x: mp.exp(-abs(x)) * mp.besseli(0, x), -3.0, RTOL, 60),
    # i0e' = i1e - i0e: both ~ 1 / sqrt(2 pi x), their difference ~ 1 / (2x) of that, so x / 2
    # times the rounding (an accuracy limit of the exponentially scaled functions' rules)
    (sc.i0e, lambda x: mp.exp(-abs(x)) * mp.besseli(0, x), 100.0, 1e-13, 60),
    (sc.i1e, lambda x: mp.exp(-abs(x)) * mp.besseli(1, x), 1e-5, RTOL, 60),
    (sc.k0, lambda x: mp.besselk(0, x), 0.01, RTOL, 60),
    (sc.k1, lambda x: mp.besselk(1, x), 600.0, RTOL, 60),
    (sc.k0e, lambda x: mp.exp(x) * mp.besselk(0, x), 1e-5, RTOL, 60),
    (sc.j0, lambda x: mp.besselj(0, x), 30.0, RTOL, 60),
    (sc.j1, lambda x: mp.besselj(1, x), 0.5, RTOL, 60),
    (sc.y0, lambda x: mp.bessely(0, x), 0.8935769662791675, RTOL, 60),  # near Y_0's first zero
    (sc.y1, lambda x: mp.bessely(1, x), 0.01, RTOL, 60),
    (lambda x: sc.jv(2.5, x), lambda x: mp.besselj(2.5, x), 1.7, RTOL, 60),
    (lambda x: sc.jn(3, x), lambda x: mp.besselj(3, x), 2.0, RTOL, 60),
    (lambda x: sc.yn(2, x), lambda x: mp.bessely(2, x), 0.7, RTOL, 60),
    (lambda x: sc.yv(0.5, x), lambda x: mp.bessely(0.5, x), 2.3, RTOL, 60),
    (lambda x: sc.iv(1.5, x), lambda x: mp.besseli(1.5, x), 40.0, RTOL, 60),
    (lambda x: sc.ive(0.5, x), lambda x: mp.exp(-abs(x)) * mp.besseli(0.5, x), 2.0, RTOL, 60),
    (lambda x: sc.kv(2.5, x), lambda x: mp.besselk(2.5, x), 0.3, RTOL, 60),
    (lambda x: sc.kve(1.0, x), lambda x: mp.exp(x) * mp.besselk(1, x), 7.0, RTOL, 60),
    (lambda x: asc.polygamma(3, x), lambda x: mp.psi(3, x), 0.01, RTOL, 60),
    (lambda x: asc.polygamma(0, x), lambda x: mp.psi(0, x), 2.5, RTOL, 60),
    (lambda x: sc.xlogy(x, 3.0), lambda x: x * mp.log(3), -2.0, RTOL, 60),
    (lambda y: sc.xlogy(2.0, y), lambda y: 2 * mp.log(y), 1e-200, RTOL, 60),
    (lambda y: sc.xlog1py(2.0, y), lambda y: 2 * mp.log1p(y), -0.999, RTOL, 60),
    (lambda a: sc.beta(a, 2.0), lambda a: mp.beta(a, 2), 1e-3, RTOL, 60),
    (lambda b: sc.betaln(30.0, b), lambda b: mp.log(mp.beta(30, b)), 40.0, RTOL, 60),
    (sc.entr, lambda x: -x * mp.log(x), 1e-100, RTOL, 60),
    (lambda y: sc.rel_entr(0.5, y), lambda y: mp.mpf(0.5) * mp.log(mp.mpf(0.5) / y), 3.0, RTOL, 60),
    (lambda y: sc.kl_div(0.5, y), lambda y: mp.mpf(0.5) * mp.log(mp.mpf(0.5) / y) - mp.mpf(0.5) + y, 3.0, RTOL, 60),
    (sc.erfcx, lambda x: mp.exp(x * x) * mp.erfc(x), -5.0, RTOL, 60),
    # 2 x erfcx - 2 / sqrt(pi) would keep only 1 / x^2 of the digits: the asymptotic series does better
    (sc.erfcx, lambda x: mp.exp(x * x) * mp.erfc(x), 1e5, RTOL, 60),
    # numpy's extras
    (np.sinc, lambda x: mp.sinc(mp.pi * x), 1e-8, RTOL, 60),  # (cos - sinc) / x would be all noise
    (np.sinc, lambda x: mp.sinc(mp.pi * x), 0.3, RTOL, 60),
    (np.sinc, lambda x: mp.sinc(mp.pi * x), -1.7, RTOL, 60),
    (np.arcsinh, mp.asinh, 1e200, RTOL, 60),  # 1 / sqrt(1 + x^2) overflows x^2: hypot does not
    (np.arcsinh, mp.asinh, -1e-10, RTOL, 60),
    # near the singularities: x - 1 and 1 - x are exact, so (x - 1)(x + 1) keeps every digit
    (np.arccosh, mp.acosh, 1 + 1e-10, RTOL, 60),
    (np.arctanh, mp.atanh, 1 - 1e-10, RTOL, 60),
    (np.cbrt, lambda x: mp.sign(x) * abs(x) ** (mp.mpf(1) / 3), -8.0, RTOL, 60),
    (np.cbrt, lambda x: mp.sign(x) * abs(x) ** (mp.mpf(1) / 3), 1e-300, RTOL, 60),
    (np.deg2rad, lambda x: x * mp.pi / 180, 45.0, RTOL, 60),
    (np.degrees, lambda x: x * 180 / mp.pi, 1.0, RTOL, 60),
    (lambda x: np.logaddexp2(x, 1000.5), lambda x: mp.log(2**x + 2**1000.5, 2), 1000.0, RTOL, 60),
    (lambda y: np.logaddexp2(0.0, y), lambda y: mp.log(1 + 2**y, 2), -1000.0, RTOL, 400),
]


@pytest.mark.parametrize(
    ("f", "mp_f", "x", "rtol", "dps"), HARD_POINTS, ids=[f"{i}-{p[2]!r}" for i, p in enumerate(HARD_POINTS)]
)
@pytest.mark.parametrize("engine", ENGINES)
def test_derivative_against_mpmath(f, mp_f, x, rtol, dps, engine):
    want = mp_derivative(mp_f, x, dps=dps)
    assert_close(ad.grad(f, engine=engine)(x), want, rtol, f"d/dx at {x!r} ({engine})")


# second derivatives at hard points: forward over reverse (ad.hessian), against mpmath
SECOND = [
    # log_ndtr'' far in the tail: through erfcx' of a large argument (the asymptotic series)
    (sc.log_ndtr, mp_ncdf_log, -1e5, RTOL, 60),
    (sc.log_ndtr, mp_ncdf_log, -12.0, RTOL, 60),
    (sc.log_ndtr, mp_ncdf_log, 1.5, RTOL, 60),
    (sc.erfinv, mp.erfinv, 0.999999, RTOL, 60),
    (sc.gammaln, lambda x: mp.log(abs(mp.gamma(x))), 0.01, RTOL, 60),
    (np.sinc, lambda x: mp.sinc(mp.pi * x), 1e-8, RTOL, 60),
    (np.sinc, lambda x: mp.sinc(mp.pi * x), 2.2, RTOL, 60),
    (lambda x: sc.kv(1.5, x), lambda x: mp.besselk(1.5, x), 2.0, RTOL, 60),
]


@pytest.mark.parametrize(("f", "mp_f", "x", "rtol", "dps"), SECOND, ids=[f"{i}-{p[2]!r}" for i, p in enumerate(SECOND)])
def test_second_derivative_against_mpmath(f, mp_f, x, rtol, dps):
    assert_close(ad.hessian(f)(x), mp_derivative(mp_f, x, order=2, dps=dps), rtol, f"d2/dx2 at {x!r}")


@pytest.mark.parametrize("order", [1, 2, 3, 4])
@pytest.mark.parametrize("x", [0.0, 1e-9, 1e-3, 0.99, 1.01, -3.3])
def test_sinc_derivatives_of_every_order_near_zero(order, x):
    """np.sinc's k-th derivative by nesting grad k times: the series keeps it exact near 0."""
    f = np.sinc
    for _ in range(order):
        f = ad.grad(f)
    want = mp_derivative(lambda t: mp.sinc(mp.pi * t), x, order) if x else _sinc_derivative_at_zero(order)
    if want == 0:
        assert f(x) == 0.0
        return
    # x = 0.99 / 1.01 sit on both sides of the switch from the series to the closed form;
    # sin(pi x) at x ~ 3 carries pi x's rounding (~1e-15 absolute), hence 1e-13 there
    assert_close(f(x), want, 1e-13, f"sinc^({order})({x})")


def _sinc_derivative_at_zero(order: int):
    """sinc(x) = sum (-1)^j (pi x)^(2j) / (2j + 1)!: the 2j-th derivative at 0 is (-1)^j pi^(2j) / (2j + 1)."""
    return 0 if order % 2 else (-1) ** (order // 2) * mp.pi**order / (order + 1)


@pytest.mark.parametrize("order", [1, 2, 3])
@pytest.mark.parametrize("x", [-3.0, 2.0, 6.4, 6.6, 50.0, 1e5])
def test_erfcx_derivatives_against_mpmath(order, x):
    """The helper op behind erfcx' and log_ndtr'': exact where 2 x erfcx - 2/sqrt(pi) cancels."""
    from adkit.ops import REGISTRY

    want = mp_derivative(lambda t: mp.exp(t * t) * mp.erfc(t), x, order)
    # documented worst cases near the switch at 6.5 (see _erfcx_derivative): 2e-14, 6e-13, 2e-11
    rtol = {1: 3e-14, 2: 1e-12, 3: 3e-11}[order]
    assert_close(REGISTRY["erfcx_derivative"](x, n=order), want, rtol, f"erfcx^({order})({x})")


@pytest.mark.parametrize("engine", ENGINES)
def test_scipy_copies_of_elementary_functions(engine):
    x = np.array([0.3, -0.6, 2.5])  # inside log1p's domain
    cases = [  # (scipy function, its derivative written here)
        (sc.exp2, lambda t: np.log(2.0) * 2.0**t),
        (sc.exp10, lambda t: np.log(10.0) * 10.0**t),
        (sc.sindg, lambda t: np.pi / 180 * np.cos(np.deg2rad(t))),
        (sc.cosdg, lambda t: -np.pi / 180 * np.sin(np.deg2rad(t))),
        (sc.log1p, lambda t: 1 / (1 + t)),
        (sc.cbrt, lambda t: 1 / (3 * np.cbrt(t) ** 2)),
        (sc.round, lambda t: 0 * t),
    ]
    for fn, slope in cases:
        g = ad.grad(lambda t: np.sum(fn(t)), engine=engine)(x)
        np.testing.assert_allclose(g, slope(x), rtol=1e-14, atol=0, err_msg=fn.__name__)  # a few ulps


# --- refusals: infinite derivatives, traced orders, unsupported functions ---------------


@pytest.mark.parametrize(
    ("f", "x"),
    [
        (sc.erfinv, 1.0),  # value inf
        (sc.erfcinv, 0.0),
        (sc.ndtri, 0.0),
        (sc.logit, 0.0),
        (sc.entr, 0.0),  # entr(0) = 0, entr'(0) = +inf
        (np.cbrt, 0.0),  # cbrt'(0) = +inf
        (sc.digamma, -2.0),  # a pole
        (lambda x: sc.xlogy(x, 0.0), 2.0),  # 2 log 0
        (np.arccosh, 1.0),
    ],
)
@pytest.mark.parametrize("engine", ENGINES)
def test_infinite_derivatives_are_refused(f, x, engine):
    with pytest.raises(NonFiniteDerivativeError):
        ad.grad(f, engine=engine)(x)


@pytest.mark.parametrize("engine", ENGINES)
def test_xlogy_at_zero_has_zero_derivative_in_y(engine):
    # xlogy(0, y) = 0 for every y (scipy's convention), including y = 0
    for y in (0.0, 2.0):
        assert ad.grad(lambda y: sc.xlogy(0.0, y), engine=engine)(y) == 0.0
        assert ad.grad(lambda y: sc.xlog1py(0.0, y), engine=engine)(y - 1.0) == 0.0


def test_traced_orders_are_refused_by_name():
    with pytest.raises(UnsupportedFunctionError, match=r"scipy\.special\.jv: the derivative with respect to the order"):
        ad.grad(lambda v: sc.jv(v, 1.5))(0.5)
    with pytest.raises(UnsupportedFunctionError, match="scipy.special.polygamma"):
        ad.grad(lambda n: asc.polygamma(n, 1.5))(1.0)
    with pytest.raises(ValueError, match="scipy.special.yn: the order must be an integer"):
        ad.grad(lambda x: sc.yn(1.5, x))(2.0)
    with pytest.raises(ValueError, match="non-negative integer"):
        asc.polygamma(-1, 2.0)


def test_unsupported_scipy_ufunc_is_named():
    with pytest.raises(UnsupportedFunctionError, match=r"scipy\.special\.gammaincinv is not supported"):
        ad.grad(lambda x: sc.gammaincinv(x, 0.3))(0.5)


def test_import_adkit_does_not_import_scipy():
    code = (
        "import sys, adkit, adkit.scipy.special, numpy as np\n"
        "assert 'scipy' not in sys.modules, 'import adkit imported scipy'\n"
        "print(adkit.grad(np.sinc)(0.5))\n"
        "assert 'scipy' not in sys.modules\n"
        "import math; assert adkit.ops.REGISTRY['erf'](0.5) == math.erf(0.5)  # the float fast path\n"
        "assert 'scipy' not in sys.modules\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, capture_output=True)


# --- logsumexp, softmax, log_softmax (scipy's signatures) -------------------------------------


def fd_gradient(f, x: np.ndarray) -> np.ndarray:
    """Central differences of a scalar numpy function, h = 1e-6: truncation ~h^2 f''' ~ 1e-12,
    rounding ~eps |f| / h ~ 1e-10 (|f| ~ 1), so 1e-8 separates right from wrong."""
    g = np.zeros_like(x)
    for i in np.ndindex(x.shape):
        e = np.zeros_like(x)
        e[i] = 1e-6
        g[i] = (f(x + e) - f(x - e)) / 2e-6
    return g


A = np.array([[0.3, 1.2, -0.7], [2.0, -1.0, 0.5]])
B = np.array([1.0, -0.5, 2.0])


@pytest.mark.parametrize(
    "kwargs",
    [
        {},
        {"axis": 0},
        {"axis": 1, "keepdims": True},
        {"b": B},
        {"b": B, "axis": 1},
        {"b": np.array([0.0, 1.0, 3.0]), "axis": (0, 1)},
    ],
)
@pytest.mark.parametrize("engine", ENGINES)
def test_logsumexp_matches_scipy_value_and_gradient(kwargs, engine):
    np.testing.assert_allclose(asc.logsumexp(A, **kwargs), sc.logsumexp(A, **kwargs), rtol=1e-15, atol=0)
    g = ad.grad(lambda a: np.sum(asc.logsumexp(a, **kwargs)), engine=engine)(A)
    np.testing.assert_allclose(g, fd_gradient(lambda a: np.sum(sc.logsumexp(a, **kwargs)), A), rtol=1e-8, atol=1e-9)


@pytest.mark.parametrize("engine", ENGINES)
def test_logsumexp_gradient_in_b_and_return_sign(engine):
    b = np.array([[1.0, -3.0, 0.5], [0.2, 0.0, -1.0]])  # row 0 sums negative: sign -1
    out, sign = asc.logsumexp(A, b=b, axis=1, return_sign=True)
    want_out, want_sign = sc.logsumexp(A, b=b, axis=1, return_sign=True)
    np.testing.assert_allclose(out, want_out, rtol=1e-15)
    np.testing.assert_array_equal(sign, want_sign)

    def f(bb):
        return np.sum(asc.logsumexp(A, b=bb, axis=1, return_sign=True)[0])

    g = ad.grad(f, engine=engine)(b)
    want = fd_gradient(lambda bb: np.sum(sc.logsumexp(A, b=bb, axis=1, return_sign=True)[0]), b)
    np.testing.assert_allclose(g, want, rtol=1e-8, atol=1e-9)


def test_logsumexp_of_a_large_spread_does_not_overflow():
    a = np.array([1000.0, 0.0, -1000.0])
    g = ad.grad(lambda t: asc.logsumexp(t, b=np.array([1.0, 2.0, 3.0])))(a)
    np.testing.assert_array_equal(g, [1.0, 0.0, 0.0])  # e^-1000 underflows in the true values too


@pytest.mark.parametrize("axis", [None, 0, 1])
def test_softmax_and_log_softmax_follow_scipy(axis):
    np.testing.assert_allclose(asc.softmax(A, axis=axis), sc.softmax(A, axis=axis), rtol=1e-15)
    np.testing.assert_allclose(asc.log_softmax(A, axis=axis), sc.log_softmax(A, axis=axis), rtol=1e-14, atol=1e-15)
    w = np.arange(6.0).reshape(2, 3)
    for ours, theirs in ((asc.softmax, sc.softmax), (asc.log_softmax, sc.log_softmax)):
        g = ad.grad(lambda a: np.sum(w * ours(a, axis=axis)))(A)
        np.testing.assert_allclose(g, fd_gradient(lambda a: np.sum(w * theirs(a, axis=axis)), A), rtol=1e-8, atol=1e-9)


def test_adkit_scipy_special_reexports_scipy():
    assert asc.erf is sc.erf and asc.jv is sc.jv
    assert asc.logsumexp is not sc.logsumexp


# --- numpy elementwise extras ------------------------------------------------------------


@pytest.mark.parametrize("engine", ENGINES)
def test_fmax_fmin_skip_nan_and_split_ties(engine):
    nan = np.nan
    x = np.array([1.0, nan, 2.0, 3.0])
    y = np.array([nan, 5.0, 2.0, 1.0])
    for fn, winner in ((np.fmax, [0, 1, 0.5, 0]), (np.fmin, [0, 1, 0.5, 1])):
        value, (gx, gy) = ad.value_and_grad(lambda a, b: np.sum(fn(a, b)), argnums=(0, 1), engine=engine)(x, y)
        assert value == np.sum(fn(x, y))  # numpy's own NaN semantics: NaN is skipped
        np.testing.assert_array_equal(gy, winner)
        np.testing.assert_array_equal(gx, [1.0, 0.0, 0.5, 1.0 - winner[3]])


@pytest.mark.parametrize("engine", ENGINES)
def test_zero_derivative_functions(engine):
    x = np.array([-1.7, -0.2, 0.4, 2.5])
    for fn in (np.trunc, np.fix, np.round, np.rint, np.floor, np.ceil, np.sign):
        g = ad.grad(lambda t: np.sum(fn(t) * t), engine=engine)(x)
        np.testing.assert_array_equal(g, fn(x))  # only the explicit factor t is differentiated


@pytest.mark.parametrize("engine", ENGINES)
def test_heaviside_copysign(engine):
    # heaviside(x, h0) = h0 exactly where x == 0: d/dh0 is 1 there and 0 elsewhere
    x = np.array([-1.0, 0.0, 2.0])
    g = ad.grad(lambda h: np.sum(np.heaviside(x, h)), engine=engine)(np.full(3, 0.5))
    np.testing.assert_array_equal(g, [0.0, 1.0, 0.0])
    # copysign(x, y) = |x| sign(y): d/dx = sign(x) sign(y), 0 at the kink x = 0; nothing in y
    xs, ys = np.array([2.0, -3.0, 0.0, 1.5]), np.array([-1.0, -2.0, 5.0, 0.5])
    gx, gy = ad.grad(lambda a, b: np.sum(np.copysign(a, b)), argnums=(0, 1), engine=engine)(xs, ys)
    np.testing.assert_array_equal(gx, [-1.0, 1.0, 0.0, 1.0])
    np.testing.assert_array_equal(gy, np.zeros(4))
