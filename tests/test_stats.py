"""adkit.scipy.stats and the incomplete gamma / beta ops, against independent oracles.

Values: scipy.stats itself. Gradients: central differences of scipy.stats' values (not of
adkit's functions), and for the norm, t, gamma and beta log-densities the closed-form
derivatives written out below with scipy.special.digamma. The incomplete gamma and beta
functions and 1/Gamma: mpmath's own numerical differentiation at 50 digits. Both the
forward and the reverse engine.
"""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

import adkit as ad
from adkit.errors import UnsupportedFunctionError

st = pytest.importorskip("scipy.stats")
sc = pytest.importorskip("scipy.special")
mp = pytest.importorskip("mpmath")
ast = pytest.importorskip("adkit.scipy.stats")
asc = pytest.importorskip("adkit.scipy.special")

ENGINES = ("forward", "reverse")
# Values: the same formulas as scipy's in a different order of operations, a few roundings
# of log/exp apart; 1e-12 relative leaves room for log-densities that cancel (|logpdf| << terms).
VALUE_RTOL = 1e-12
# Central differences with h = 1e-6 (relative): truncation ~h^2 f''' ~ 1e-12, rounding
# ~eps |f| / h ~ 1e-10 relative; 1e-7 is well above both and far below any wrong rule.
FD_RTOL = 1e-7
# Closed forms evaluated in float64 against adkit's chain rule: a handful of roundings.
CLOSED_RTOL = 1e-12

rng = np.random.default_rng(20261202)
X = rng.normal(size=(3, 4))
POSITIVE_X = rng.uniform(0.2, 4.0, size=(3, 4))
UNIT_X = rng.uniform(0.05, 0.95, size=(3, 4))
LOC = rng.normal(size=(4,))  # broadcast against x's last axis
SCALE = rng.uniform(0.5, 2.0, size=(3, 1))  # and against its first

# (name, method, args): every argument is differentiated in turn (the first is the point)
CASES = [
    ("norm", "logpdf", (X, LOC, SCALE)),
    ("norm", "pdf", (X, LOC, SCALE)),
    ("norm", "cdf", (X, LOC, SCALE)),
    ("norm", "logcdf", (X, LOC, SCALE)),
    ("norm", "sf", (X, LOC, SCALE)),
    ("norm", "logsf", (X, LOC, SCALE)),
    ("norm", "ppf", (UNIT_X, LOC, SCALE)),
    ("t", "logpdf", (X, 3.5, LOC, SCALE)),
    ("t", "pdf", (X, rng.uniform(1.0, 6.0, size=(4,)), LOC, SCALE)),
    ("gamma", "logpdf", (POSITIVE_X, 2.5, 0.0, SCALE)),
    ("gamma", "pdf", (POSITIVE_X, rng.uniform(0.5, 4.0, size=(4,)))),
    ("beta", "logpdf", (UNIT_X, 2.0, 3.5)),
    ("beta", "pdf", (UNIT_X, rng.uniform(0.5, 3.0, size=(4,)), 1.7)),
    ("expon", "logpdf", (POSITIVE_X, 0.0, SCALE)),
    ("expon", "pdf", (POSITIVE_X, 0.1, SCALE)),
    ("laplace", "logpdf", (X, LOC + 0.05, SCALE)),  # away from the kink x = loc
    ("laplace", "pdf", (X, LOC + 0.05, SCALE)),
    ("logistic", "logpdf", (X, LOC, SCALE)),
    ("logistic", "pdf", (X, LOC, SCALE)),
    ("cauchy", "logpdf", (X, LOC, SCALE)),
    ("cauchy", "pdf", (X, LOC, SCALE)),
]


def _call(module, name, method, args):
    return getattr(getattr(module, name), method)(*args)


@pytest.mark.parametrize(("name", "method", "args"), CASES, ids=lambda c: c if isinstance(c, str) else "")
def test_values_equal_scipy(name, method, args):
    got = _call(ast, name, method, args)
    want = _call(st, name, method, args)
    assert np.shape(got) == np.shape(want)
    np.testing.assert_allclose(got, want, rtol=VALUE_RTOL, atol=0)


def central_difference(f, args, i, h=1e-6):
    """d sum(f(*args)) / d args[i], entry by entry, by central differences."""
    base = np.asarray(args[i], dtype=float)
    grad = np.zeros_like(base)
    for index in np.ndindex(base.shape):
        step = h * max(1.0, abs(base[index]))
        shifted = []
        for sign in (1.0, -1.0):
            moved = base.copy()
            moved[index] += sign * step
            shifted.append(np.sum(f(*args[:i], moved, *args[i + 1 :])))
        grad[index] = (shifted[0] - shifted[1]) / (2 * step)
    return grad


@pytest.mark.parametrize("engine", ENGINES)
@pytest.mark.parametrize(("name", "method", "args"), CASES, ids=lambda c: c if isinstance(c, str) else "")
def test_gradients_match_central_differences_of_scipy(name, method, args, engine):
    args = tuple(np.asarray(a, dtype=float) for a in args)
    scipy_fn = getattr(getattr(st, name), method)
    ours = getattr(getattr(ast, name), method)
    grads = ad.grad(lambda *a: np.sum(ours(*a)), argnums=tuple(range(len(args))), engine=engine)(*args)
    for i, got in enumerate(grads):
        want = central_difference(scipy_fn, args, i)
        np.testing.assert_allclose(
            got, want, rtol=FD_RTOL, atol=FD_RTOL * np.max(np.abs(want)), err_msg=f"argument {i}"
        )


def _t_closed_form(x, df, loc, scale):
    z = (x - loc) / scale
    d_x = -(df + 1.0) * z / (scale * (df + z * z))
    d_df = (
        0.5 * sc.digamma(0.5 * (df + 1.0))
        - 0.5 * sc.digamma(0.5 * df)
        - 0.5 / df
        - 0.5 * np.log1p(z * z / df)
        + 0.5 * (df + 1.0) * z * z / (df * (df + z * z))
    )
    d_scale = -1.0 / scale + (df + 1.0) * z * z / (scale * (df + z * z))
    return d_x, d_df, -d_x, d_scale


# (name, args, closed-form partial derivatives of logpdf with respect to each argument)
CLOSED_FORMS = [
    (
        "norm",
        (1.3, 0.4, 1.7),
        lambda x, m, s: ((m - x) / s**2, (x - m) / s**2, -1.0 / s + (x - m) ** 2 / s**3),
    ),
    ("t", (1.3, 3.5, 0.4, 1.7), _t_closed_form),
    (
        "gamma",
        (1.3, 2.5, 0.0, 1.7),
        lambda x, a, loc, s: (
            (a - 1.0) / (x - loc) - 1.0 / s,
            np.log((x - loc) / s) - sc.digamma(a),
            -(a - 1.0) / (x - loc) + 1.0 / s,
            -a / s + (x - loc) / s**2,
        ),
    ),
    (
        "beta",
        (0.3, 2.0, 3.5),
        lambda x, a, b: (
            (a - 1.0) / x - (b - 1.0) / (1.0 - x),
            np.log(x) - sc.digamma(a) + sc.digamma(a + b),
            np.log1p(-x) - sc.digamma(b) + sc.digamma(a + b),
        ),
    ),
]


@pytest.mark.parametrize("engine", ENGINES)
@pytest.mark.parametrize(("name", "point", "closed_form"), CLOSED_FORMS, ids=[c[0] for c in CLOSED_FORMS])
def test_logpdf_gradients_match_closed_forms(name, point, closed_form, engine):
    logpdf = getattr(ast, name).logpdf
    got = ad.grad(logpdf, argnums=tuple(range(len(point))), engine=engine)(*point)
    np.testing.assert_allclose(got, closed_form(*point), rtol=CLOSED_RTOL, atol=0)


# --- discrete and multivariate ----------------------------------------------------------------


@pytest.mark.parametrize("engine", ENGINES)
def test_poisson_matches_scipy_and_d_mu(engine):
    k = np.array([0.0, 1.0, 3.0, 7.0, 2.5, -1.0])  # 2.5 and -1 are outside the support
    mu = np.array([[0.4], [3.2]])
    np.testing.assert_allclose(ast.poisson.logpmf(k, mu), st.poisson.logpmf(k, mu), rtol=VALUE_RTOL)
    np.testing.assert_allclose(ast.poisson.pmf(k, mu), st.poisson.pmf(k, mu), rtol=VALUE_RTOL)
    np.testing.assert_allclose(ast.poisson.logpmf(k, mu, loc=1), st.poisson.logpmf(k, mu, loc=1), rtol=VALUE_RTOL)
    counts = k[:4]
    got = ad.grad(lambda m: np.sum(ast.poisson.logpmf(counts, m)), engine=engine)(mu)
    np.testing.assert_allclose(got, np.sum(counts / mu - 1.0, axis=1, keepdims=True), rtol=CLOSED_RTOL)
    # xlogy: k = 0 at mu = 0 is log 1 = 0, as in scipy, with d/dmu = -1
    assert ast.poisson.logpmf(0.0, 0.0) == st.poisson.logpmf(0, 0.0) == 0.0
    assert ad.grad(lambda m: ast.poisson.logpmf(0.0, m), engine=engine)(0.0) == -1.0
    with pytest.raises(UnsupportedFunctionError, match=r"poisson\.logpmf: the counts k"):
        ad.grad(lambda c: ast.poisson.logpmf(c, 2.0), engine=engine)(3.0)


COV = np.array([[2.0, 0.3, -0.2], [0.3, 1.0, 0.1], [-0.2, 0.1, 0.7]])
MEAN = np.array([0.1, -0.4, 0.2])


@pytest.mark.parametrize(
    ("x", "mean", "cov"),
    [
        (rng.normal(size=(5, 3)), MEAN, COV),
        (rng.normal(size=3), MEAN, COV),
        (rng.normal(size=(2, 4, 3)), None, COV),
        (rng.normal(size=(4, 3)), MEAN, np.array([0.5, 1.5, 2.0])),  # a vector of variances
        (rng.normal(size=(4, 3)), MEAN, 1.7),  # a scalar variance
        (rng.normal(size=6), 0.3, 2.0),  # one-dimensional points
        (rng.normal(size=5), None, 1),  # scipy's defaults
    ],
)
def test_multivariate_normal_matches_scipy(x, mean, cov):
    for method in ("logpdf", "pdf"):
        got = getattr(ast.multivariate_normal, method)(x, mean, cov)
        want = getattr(st.multivariate_normal, method)(x, mean, cov)
        assert np.shape(got) == np.shape(want)
        np.testing.assert_allclose(got, want, rtol=VALUE_RTOL)


@pytest.mark.parametrize("engine", ENGINES)
def test_multivariate_normal_gradients(engine):
    x = rng.normal(size=(4, 3))
    f = ast.multivariate_normal.logpdf
    got_x, got_mean, got_cov = ad.grad(lambda *a: np.sum(f(*a)), argnums=(0, 1, 2), engine=engine)(x, MEAN, COV)
    precision = np.linalg.inv(COV)
    deviation = x - MEAN
    # closed forms: d/dx = -P (x - m); d/dcov = S = (P d d^T P - P) / 2 per point for a symmetric
    # perturbation. Like np.linalg.cholesky (and scipy's eigh), only cov's lower triangle is read:
    # the gradient is tril(2 S) with S's diagonal, as scipy's finite differences see it too
    np.testing.assert_allclose(got_x, -deviation @ precision, rtol=CLOSED_RTOL, atol=1e-14)
    np.testing.assert_allclose(got_mean, np.sum(deviation @ precision, axis=0), rtol=CLOSED_RTOL)
    outer = np.einsum("ni,nj->ij", deviation @ precision, deviation @ precision)
    symmetric = 0.5 * (outer - len(x) * precision)
    lower = np.tril(2.0 * symmetric) - np.diag(np.diag(symmetric))
    # 1e-12: LAPACK's inverse against adkit's Cholesky-and-solve, ~cond(cov) ulps of entries ~10
    np.testing.assert_allclose(got_cov, lower, rtol=1e-12, atol=1e-12)
    fd_cov = central_difference(st.multivariate_normal.logpdf, (x, MEAN, COV), 2)
    np.testing.assert_allclose(got_cov, fd_cov, rtol=FD_RTOL, atol=FD_RTOL)


@pytest.mark.parametrize("inner", ENGINES)
@pytest.mark.parametrize("outer", ENGINES)
def test_multivariate_normal_hessian_is_minus_precision(inner, outer):
    point = np.array([0.3, -1.1, 0.8])
    hessian = ad.jacobian(ad.grad(lambda v: ast.multivariate_normal.logpdf(v, MEAN, COV), engine=inner), engine=outer)
    # -cov^-1 by LAPACK's inverse against adkit's Cholesky-and-solve: ~cond(cov) ulps
    np.testing.assert_allclose(hessian(point), -np.linalg.inv(COV), rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(
        ad.hessian(lambda v: ast.multivariate_normal.logpdf(v, MEAN, COV))(point), -np.linalg.inv(COV), rtol=1e-12
    )


@pytest.mark.parametrize("engine", ENGINES)
def test_dirichlet_matches_scipy_and_its_gradient(engine):
    alpha = np.array([1.5, 2.0, 3.5])
    points = rng.dirichlet(alpha, size=4).T  # scipy's layout: components on the first axis
    for x in (points, points[:, 0], points[:-1]):  # K - 1 components: scipy completes the last
        np.testing.assert_allclose(ast.dirichlet.logpdf(x, alpha), st.dirichlet.logpdf(x, alpha), rtol=VALUE_RTOL)
        np.testing.assert_allclose(ast.dirichlet.pdf(x, alpha), st.dirichlet.pdf(x, alpha), rtol=VALUE_RTOL)
    got = ad.grad(lambda a: np.sum(ast.dirichlet.logpdf(points, a)), engine=engine)(alpha)
    n = points.shape[1]
    closed = np.sum(np.log(points), axis=1) - n * (sc.digamma(alpha) - sc.digamma(np.sum(alpha)))
    np.testing.assert_allclose(got, closed, rtol=CLOSED_RTOL)
    got_x = ad.grad(lambda x: np.sum(ast.dirichlet.logpdf(x, alpha)), engine=engine)(points)
    np.testing.assert_allclose(got_x, (alpha[:, None] - 1.0) / points, rtol=CLOSED_RTOL)
    with pytest.raises(ValueError, match="simplex"):
        ast.dirichlet.logpdf(np.array([0.5, 0.6, 0.1]), alpha)


def test_outside_the_support_is_minus_inf_without_nan_in_the_derivative():
    x = np.array([-0.5, 0.7, 1.4])
    for name, args in (("gamma", (2.5,)), ("expon", ()), ("beta", (2.0, 3.0))):
        got = getattr(ast, name).logpdf(x, *args)
        np.testing.assert_allclose(got, getattr(st, name).logpdf(x, *args), rtol=VALUE_RTOL)
        # the density (not its log) is differentiable everywhere here; outside, derivative 0
        grad = ad.grad(lambda v, name=name, args=args: np.sum(getattr(ast, name).pdf(v, *args)))(x)
        np.testing.assert_allclose(grad, central_difference(getattr(st, name).pdf, (x, *args), 0), rtol=FD_RTOL)


def test_multigammaln_value_and_gradient():
    a = np.array([3.5, 4.25])
    np.testing.assert_allclose(asc.multigammaln(a, 3), sc.multigammaln(a, 3), rtol=VALUE_RTOL)
    got = ad.grad(lambda v: np.sum(asc.multigammaln(v, 3)))(a)
    np.testing.assert_allclose(got, sum(sc.digamma(a - 0.5 * j) for j in range(3)), rtol=CLOSED_RTOL)
    with pytest.raises(UnsupportedFunctionError, match=r"scipy\.special\.multigammaln.*adkit\.scipy\.special"):
        ad.grad(lambda v: sc.multigammaln(v, 3))(3.5)


# --- scipy.stats itself on traced values: refused by name -------------------------------------


@pytest.mark.parametrize("engine", ENGINES)
@pytest.mark.parametrize(
    ("call", "named", "advice"),
    [
        (lambda v: np.sum(st.norm.logpdf(v)), "scipy.stats.norm.logpdf", "adkit.scipy.stats.norm.logpdf"),
        (lambda v: np.sum(st.norm(0.0, 2.0).cdf(v)), "scipy.stats.norm.cdf", "adkit.scipy.stats.norm.cdf"),
        (lambda v: np.sum(st.t.logpdf(1.0, df=3.0, loc=v)), "scipy.stats.t.logpdf", "adkit.scipy.stats.t.logpdf"),
        (lambda v: np.sum(st.poisson.logpmf(2, v)), "scipy.stats.poisson.logpmf", "adkit.scipy.stats.poisson.logpmf"),
        (
            lambda v: st.multivariate_normal.logpdf(v, np.zeros(2)),
            "scipy.stats.multivariate_normal.logpdf",
            "adkit.scipy.stats.multivariate_normal.logpdf",
        ),
        (lambda v: np.sum(st.skewnorm.logpdf(v, 2.0)), "scipy.stats.skewnorm.logpdf", "adkit.scipy.stats has"),
    ],
)
def test_scipy_stats_on_traced_values_is_refused_by_name(call, named, advice, engine):
    with pytest.raises(UnsupportedFunctionError) as refusal:
        ad.grad(call, engine=engine)(np.array([0.3, 1.2]))
    assert named in str(refusal.value) and advice in str(refusal.value)


def test_import_does_not_import_scipy():
    code = (
        "import sys, numpy as np, adkit, adkit.scipy.stats as s\n"
        "assert 'scipy' not in sys.modules, 'importing adkit.scipy.stats imported scipy'\n"
        "print(adkit.grad(lambda v: np.sum(s.norm.logpdf(v, 0.5, 2.0)))(np.ones(2)))\n"
        "assert 'scipy' not in sys.modules, 'norm.logpdf needs no scipy'\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, capture_output=True)


# --- registry ops: 1/Gamma, incomplete gamma and beta (d/dx; d/da refused) --------------------

DPS = 50


def mp_dx(f, x):
    """d f / dx at the float x by mpmath at 50 digits (its own differentiation of its own f)."""
    with mp.workdps(DPS):
        return float(mp.diff(f, mp.mpf(x)))


@pytest.mark.parametrize("engine", ENGINES)
@pytest.mark.parametrize("a", [0.3, 1.0, 2.5, 30.0])
@pytest.mark.parametrize("x", [0.05, 1.3, 20.0])
def test_incomplete_gamma_derivatives_match_mpmath(a, x, engine):
    lower = mp_dx(lambda t: mp.gammainc(a, 0, t, regularized=True), x)
    # ~20 roundings in exp(xlogy - x - gammaln) with arguments up to ~100: 1e-13 relative
    for fn, want in ((sc.gammainc, lower), (sc.gammaincc, -lower)):
        got = ad.grad(lambda v, fn=fn: fn(a, v), engine=engine)(x)
        assert got == pytest.approx(want, rel=1e-13, abs=1e-300)


@pytest.mark.parametrize("engine", ENGINES)
@pytest.mark.parametrize(("a", "b"), [(0.5, 0.5), (2.0, 3.5), (7.0, 1.2)])
@pytest.mark.parametrize("x", [0.02, 0.4, 0.97])
def test_incomplete_beta_derivative_matches_mpmath(a, b, x, engine):
    want = mp_dx(lambda t: mp.betainc(a, b, 0, t, regularized=True), x)
    got = ad.grad(lambda v: sc.betainc(a, b, v), engine=engine)(x)
    assert got == pytest.approx(want, rel=1e-13)


@pytest.mark.parametrize("engine", ENGINES)
@pytest.mark.parametrize("x", [-3.0, -2.0 + 1e-9, -2.5, -1.0, -0.3, 0.0, 0.7, 2.0, 4.2, 30.0])
def test_rgamma_derivatives_match_mpmath(x, engine):
    # 1/Gamma is entire: at the poles of Gamma (0, -1, -2, ...) its value is 0 and its
    # derivative (-1)^n n!, which -psi(x) / Gamma(x) would give as 0 * inf; 1e-13 relative:
    # a few roundings of gamma, cos, sin, digamma
    with mp.workdps(DPS):
        first, second = (float(mp.diff(mp.rgamma, mp.mpf(x), n)) for n in (1, 2))
    assert ad.grad(sc.rgamma, engine=engine)(x) == pytest.approx(first, rel=1e-13)
    assert ad.grad(ad.grad(sc.rgamma, engine=engine), engine="forward")(x) == pytest.approx(second, rel=1e-13)
    assert ad.grad(sc.rgamma, engine="symbolic")(x) == pytest.approx(first, rel=1e-13)


@pytest.mark.parametrize("engine", ENGINES)
def test_derivative_in_the_shape_parameters_is_refused(engine):
    why = "differentiate with respect to x only"
    with pytest.raises(UnsupportedFunctionError, match=rf"scipy\.special\.gammainc: .*{why}"):
        ad.grad(lambda a: sc.gammainc(a, 1.0), engine=engine)(0.5)
    with pytest.raises(UnsupportedFunctionError, match=rf"scipy\.special\.gammaincc: .*{why}"):
        ad.grad(lambda a: sc.gammaincc(a, 1.0), engine=engine)(0.5)
    with pytest.raises(UnsupportedFunctionError, match=rf"scipy\.special\.betainc: .*{why}"):
        ad.grad(lambda b: sc.betainc(2.0, b, 0.3), engine=engine)(1.5)
    with pytest.raises(UnsupportedFunctionError, match=rf"scipy\.special\.betainc: .*{why}"):
        ad.grad(lambda x: sc.betainc(x, 2.0, x), engine=engine)(0.3)
    with pytest.raises(UnsupportedFunctionError, match=r"scipy\.special\.gammainc: an array for the shape parameter a"):
        ad.grad(lambda x: np.sum(sc.gammainc(np.array([1.0, 2.0]), x)), engine=engine)(np.array([0.5, 1.5]))
