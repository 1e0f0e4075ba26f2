"""scipy.stats densities for traced values, like jax.scipy.stats or autograd.scipy.stats.

scipy.stats converts its inputs with np.asarray and computes on numpy's object array of
traced scalars, which fails (np.isnan of an object array) or would drop the derivative;
adkit refuses it by name. The functions here take scipy's arguments and defaults
(`norm.logpdf(x, loc=0, scale=1)`, `t.logpdf(x, df, loc=0, scale=1)`, ...), broadcast
like scipy, work on plain arrays too, and are written with numpy functions and
scipy.special ops adkit differentiates, in their numerically stable forms: log_ndtr for
norm.logcdf, xlogy for the Poisson pmf, gammaln for the normalizing constants, a
Cholesky factor for the multivariate normal.

    from adkit.scipy import stats          # instead of: from scipy import stats
    ad.grad(lambda mu: np.sum(stats.norm.logpdf(data, loc=mu, scale=2.0)))(0.5)

Outside the support the log-density is -inf (the density 0) with derivative 0, as the
limit from inside; the branch inside the support is evaluated only at points inside it,
so no NaN leaks into the derivative. Importing this module does not import scipy; the
ops that need scipy.special (gammaln, ndtr, ...) import it on first use.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from adkit.errors import UnsupportedFunctionError
from adkit.ops.core import REGISTRY, Tracer, primal

__all__ = [
    "beta",
    "cauchy",
    "dirichlet",
    "expon",
    "gamma",
    "laplace",
    "logistic",
    "multivariate_normal",
    "norm",
    "poisson",
    "t",
]

_LOG_2PI = math.log(2.0 * math.pi)


def _op(name: str, *args: Any, **params: Any) -> Any:
    return REGISTRY[name](*args, **params)


def _standardize(x: Any, loc: Any, scale: Any) -> Any:
    return (x - loc) / scale


def _on_support(inside: Any, y: Any, safe: float) -> tuple[Any, Any]:
    """(`y` where `inside`, `safe` elsewhere; the mask): the double-where that keeps the
    formula of the support away from points where it is NaN (log of a negative)."""
    mask = np.asarray(primal(inside), dtype=bool)
    return np.where(mask, y, safe), mask


def _outside(mask: Any, logp: Any) -> Any:
    return np.where(mask, logp, -np.inf)


def _from_log(logpdf: Any) -> Any:
    """pdf(*args) = exp(logpdf(*args)), with logpdf's signature and a docstring saying so."""

    def pdf(*args: Any, **kwargs: Any) -> Any:
        return np.exp(logpdf(*args, **kwargs))

    pdf.__doc__ = f"exp of {logpdf.__qualname__}: the density itself."
    pdf.__qualname__ = logpdf.__qualname__.replace("logpdf", "pdf").replace("logpmf", "pmf")
    return pdf


class norm:
    """The normal distribution N(loc, scale^2), as scipy.stats.norm."""

    @staticmethod
    def logpdf(x: Any, loc: Any = 0.0, scale: Any = 1.0) -> Any:
        """-z^2/2 - log(scale) - log(2 pi)/2 with z = (x - loc) / scale."""
        z = _standardize(x, loc, scale)
        return -0.5 * z * z - np.log(scale) - 0.5 * _LOG_2PI

    pdf = staticmethod(_from_log(logpdf))

    @staticmethod
    def cdf(x: Any, loc: Any = 0.0, scale: Any = 1.0) -> Any:
        """Phi(z) (scipy.special.ndtr)."""
        return _op("ndtr", _standardize(x, loc, scale))

    @staticmethod
    def logcdf(x: Any, loc: Any = 0.0, scale: Any = 1.0) -> Any:
        """log Phi(z) by log_ndtr: accurate far in the lower tail, where Phi(z) underflows."""
        return _op("log_ndtr", _standardize(x, loc, scale))

    @staticmethod
    def sf(x: Any, loc: Any = 0.0, scale: Any = 1.0) -> Any:
        """1 - Phi(z) = Phi(-z), accurate in the upper tail."""
        return _op("ndtr", -_standardize(x, loc, scale))

    @staticmethod
    def logsf(x: Any, loc: Any = 0.0, scale: Any = 1.0) -> Any:
        """log(1 - Phi(z)) = log_ndtr(-z)."""
        return _op("log_ndtr", -_standardize(x, loc, scale))

    @staticmethod
    def ppf(q: Any, loc: Any = 0.0, scale: Any = 1.0) -> Any:
        """The quantile loc + scale ndtri(q)."""
        return loc + scale * _op("ndtri", q)


class t:
    """Student's t distribution with `df` degrees of freedom, as scipy.stats.t."""

    @staticmethod
    def logpdf(x: Any, df: Any, loc: Any = 0.0, scale: Any = 1.0) -> Any:
        """log Gamma((df+1)/2) - log Gamma(df/2) - log(pi df)/2 - log(scale) - (df+1)/2 log(1 + z^2/df)."""
        z = _standardize(x, loc, scale)
        half = 0.5 * (df + 1.0)
        return (
            _op("gammaln", half)
            - _op("gammaln", 0.5 * df)
            - 0.5 * np.log(math.pi * df)
            - np.log(scale)
            - half * np.log1p(z * z / df)
        )

    pdf = staticmethod(_from_log(logpdf))


class gamma:
    """The gamma distribution with shape `a`, as scipy.stats.gamma (density y^(a-1) e^-y / Gamma(a))."""

    @staticmethod
    def logpdf(x: Any, a: Any, loc: Any = 0.0, scale: Any = 1.0) -> Any:
        """xlogy(a - 1, y) - y - log Gamma(a) - log(scale) for y = (x - loc) / scale >= 0, else -inf."""
        y = _standardize(x, loc, scale)
        y, inside = _on_support(y >= 0, y, 1.0)
        return _outside(inside, _op("xlogy", a - 1.0, y) - y - _op("gammaln", a) - np.log(scale))

    pdf = staticmethod(_from_log(logpdf))


class beta:
    """The beta distribution with shapes `a`, `b` on [loc, loc + scale], as scipy.stats.beta."""

    @staticmethod
    def logpdf(x: Any, a: Any, b: Any, loc: Any = 0.0, scale: Any = 1.0) -> Any:
        """xlogy(a - 1, y) + xlog1py(b - 1, -y) - log B(a, b) - log(scale) for 0 <= y <= 1, else -inf."""
        y = _standardize(x, loc, scale)
        y, inside = _on_support((y >= 0) & (y <= 1), y, 0.5)
        log_density = _op("xlogy", a - 1.0, y) + _op("xlog1py", b - 1.0, -y) - _op("betaln", a, b) - np.log(scale)
        return _outside(inside, log_density)

    pdf = staticmethod(_from_log(logpdf))


class expon:
    """The exponential distribution, as scipy.stats.expon (rate 1 / scale)."""

    @staticmethod
    def logpdf(x: Any, loc: Any = 0.0, scale: Any = 1.0) -> Any:
        """-y - log(scale) for y = (x - loc) / scale >= 0, else -inf."""
        y = _standardize(x, loc, scale)
        y, inside = _on_support(y >= 0, y, 0.0)
        return _outside(inside, -y - np.log(scale))

    pdf = staticmethod(_from_log(logpdf))


class laplace:
    """The Laplace distribution, as scipy.stats.laplace (density e^-|y| / (2 scale))."""

    @staticmethod
    def logpdf(x: Any, loc: Any = 0.0, scale: Any = 1.0) -> Any:
        """-|y| - log(2 scale); not differentiable at x = loc (np.abs' kink)."""
        return -np.abs(_standardize(x, loc, scale)) - np.log(2.0 * scale)

    pdf = staticmethod(_from_log(logpdf))


class logistic:
    """The logistic distribution, as scipy.stats.logistic (density e^-y / (1 + e^-y)^2 / scale)."""

    @staticmethod
    def logpdf(x: Any, loc: Any = 0.0, scale: Any = 1.0) -> Any:
        """-y - 2 log(1 + e^-y) - log(scale), with logaddexp(0, -y) so that e^-y never overflows."""
        y = _standardize(x, loc, scale)
        return -y - 2.0 * np.logaddexp(0.0, -y) - np.log(scale)

    pdf = staticmethod(_from_log(logpdf))


class cauchy:
    """The Cauchy distribution, as scipy.stats.cauchy (density 1 / (pi scale (1 + y^2)))."""

    @staticmethod
    def logpdf(x: Any, loc: Any = 0.0, scale: Any = 1.0) -> Any:
        """-log(pi scale) - log1p(y^2)."""
        y = _standardize(x, loc, scale)
        return -np.log(math.pi * scale) - np.log1p(y * y)

    pdf = staticmethod(_from_log(logpdf))


class poisson:
    """The Poisson distribution with mean `mu`, as scipy.stats.poisson (k counts, plain numbers)."""

    @staticmethod
    def logpmf(k: Any, mu: Any, loc: Any = 0) -> Any:
        """xlogy(k, mu) - mu - log Gamma(k + 1): xlogy makes k = 0, mu = 0 give 0, as scipy.
        -inf where k - loc is negative or not an integer. The counts k and the shift loc are
        data on the integers, without a derivative: traced ones are refused."""
        if isinstance(k, Tracer) or isinstance(loc, Tracer):
            raise UnsupportedFunctionError(
                "adkit.scipy.stats.poisson.logpmf: the counts k and loc live on the integers and have no "
                "derivative; pass them as plain numbers (differentiate with respect to mu)"
            )
        k = np.asarray(k, dtype=float) - np.asarray(loc, dtype=float)
        inside = (k >= 0) & (k == np.floor(k))
        k = np.where(inside, k, 0.0)
        return _outside(inside, _op("xlogy", k, mu) - mu - _op("gammaln", k + 1.0))

    pmf = staticmethod(_from_log(logpmf))


def _as_covariance(cov: Any, dim: int) -> Any:
    """scipy's cov argument (a number, a vector of variances or a matrix) as a (dim, dim) matrix."""
    ndim = np.ndim(primal(cov))
    if ndim == 0:
        return cov * np.eye(dim)
    if ndim == 1:
        return np.diag(cov)
    return cov


class multivariate_normal:
    """The multivariate normal N(mean, cov), as scipy.stats.multivariate_normal.

    x has the dimension d on its last axis (any leading axes are points); the result has
    the leading axes, squeezed as scipy does (one point: a number). cov is factored as
    L L^T (np.linalg.cholesky, differentiable): log p = -|L^-1 (x - mean)|^2 / 2 -
    sum log diag L - d log(2 pi) / 2. A covariance that is not positive definite is
    refused by np.linalg.cholesky (scipy's allow_singular is not supported). Like
    np.linalg.cholesky and scipy, only cov's lower triangle is read, so the gradient with
    respect to cov is lower triangular (symmetrize it, G + G^T - diag G, for a symmetric one).
    """

    @staticmethod
    def logpdf(x: Any, mean: Any = None, cov: Any = 1) -> Any:
        shape = np.shape(primal(x))
        if mean is not None and np.ndim(primal(mean)) > 0:
            dim = np.shape(primal(mean))[-1]
        elif np.ndim(primal(cov)) > 0:
            dim = np.shape(primal(cov))[-1]
        else:
            dim = 1  # scipy: no vector mean nor matrix cov means one-dimensional points
        if dim == 1 and (len(shape) == 0 or shape[-1] != 1):
            x = np.reshape(x, (*shape, 1))  # scipy: a vector of one-dimensional points
        if np.shape(primal(x))[-1] != dim:
            raise ValueError(f"multivariate_normal.logpdf: x has dimension {np.shape(primal(x))[-1]}, mean/cov {dim}")
        deviation = x if mean is None else x - mean
        points = np.reshape(deviation, (-1, dim))
        factor = np.linalg.cholesky(_as_covariance(cov, dim))
        whitened = np.linalg.solve(factor, np.transpose(points))  # L^-1 (x - mean), one column per point
        log_det = 2.0 * np.sum(np.log(np.diagonal(factor)))
        logp = -0.5 * np.sum(whitened * whitened, axis=0) - 0.5 * log_det - 0.5 * dim * _LOG_2PI
        batch = tuple(n for n in np.shape(primal(deviation))[:-1] if n != 1)  # scipy squeezes the output
        return np.reshape(logp, batch)

    pdf = staticmethod(_from_log(logpdf))


class dirichlet:
    """The Dirichlet distribution with concentrations `alpha` (K,), as scipy.stats.dirichlet.

    x has the K components on its FIRST axis, as in scipy: shape (K,) for one point or
    (K, N) for N points, or K - 1 components (the last is then 1 minus their sum, as in
    scipy); each point must lie in the simplex (scipy's check, repeated here).
    """

    @staticmethod
    def logpdf(x: Any, alpha: Any) -> Any:
        """sum_i xlogy(alpha_i - 1, x_i) - (sum_i log Gamma(alpha_i) - log Gamma(sum_i alpha_i))."""
        k = np.shape(primal(alpha))
        if len(k) == 1 and np.shape(primal(x))[:1] == (k[0] - 1,):
            x = np.concatenate([x, 1.0 - np.sum(x, axis=0, keepdims=True)], axis=0)
        values = np.asarray(primal(x), dtype=float)
        if len(k) != 1 or values.shape[:1] != k:
            raise ValueError(
                f"dirichlet.logpdf: x must have the {k} components of alpha on its first axis, got shape {values.shape}"
            )
        if np.any(values < 0) or np.any(np.abs(values.sum(axis=0) - 1.0) > 1e-9):
            raise ValueError(
                "dirichlet.logpdf: each point x must be in the simplex (x >= 0, summing to 1 along axis 0)"
            )
        column = np.reshape(alpha, k + (1,) * (values.ndim - 1))
        log_norm = np.sum(_op("gammaln", alpha)) - _op("gammaln", np.sum(alpha))
        return np.sum(_op("xlogy", column - 1.0, x), axis=0) - log_norm

    pdf = staticmethod(_from_log(logpdf))
