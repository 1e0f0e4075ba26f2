"""More numpy elementwise functions: inverse hyperbolics, angle units, sinc, fmax/fmin,
logaddexp2, cbrt, copysign, heaviside, trunc (same conventions as adkit.ops.elementwise).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from adkit.ops.core import Op, register
from adkit.ops.elementwise import AWAY_FROM_ZERO, REAL, _ties_apart, domain, piecewise, uniform
from adkit.ops.special import sp_abs

# --- inverse hyperbolic functions ----------------------------------------------------
register(
    Op(
        "arcsinh",
        np.arcsinh,
        scalar="math.asinh(x)",
        partials=("1.0 / hypot(x, 1.0)",),  # 1 / sqrt(1 + x^2) without overflow of x^2
        sympy=lambda sp, x: sp.asinh(x),
        domain=domain(REAL),
        numpy_names=(np.arcsinh,),
    )
)
register(
    Op(
        "arccosh",
        np.arccosh,
        scalar="math.acosh(x)",
        partials=("1.0 / sqrt((x - 1.0) * (x + 1.0))",),
        sympy=lambda sp, x: sp.acosh(x),
        domain=domain(uniform(1.2, 3.0)),
        kinks="defined for x >= 1; arccosh'(1) = +inf (refused)",
        numpy_names=(np.arccosh,),
    )
)
register(
    Op(
        "arctanh",
        np.arctanh,
        scalar="math.atanh(x)",
        partials=("1.0 / ((1.0 - x) * (1.0 + x))",),  # 1 / (1 - x^2), accurate near ±1
        sympy=lambda sp, x: sp.atanh(x),
        domain=domain(uniform(-0.9, 0.9)),
        kinks="defined on (-1, 1); at ±1 value and derivative are infinite (refused)",
        numpy_names=(np.arctanh,),
    )
)

# --- angle units ------------------------------------------------------------------------
register(
    Op(
        "deg2rad",
        lambda x: x * (math.pi / 180.0) if np.iscomplexobj(x) else np.deg2rad(x),
        scalar="x * (pi / 180.0)",
        partials=("pi / 180.0",),
        sympy=lambda sp, x: x * sp.pi / 180,
        domain=domain(REAL),
        linear=True,
        numpy_names=(np.deg2rad, np.radians),
    )
)
register(
    Op(
        "rad2deg",
        lambda x: x * (180.0 / math.pi) if np.iscomplexobj(x) else np.rad2deg(x),
        scalar="x * (180.0 / pi)",
        partials=("180.0 / pi",),
        sympy=lambda sp, x: x * 180 / sp.pi,
        domain=domain(REAL),
        linear=True,
        numpy_names=(np.rad2deg, np.degrees),
    )
)


# --- sinc -------------------------------------------------------------------------------
_SINC_MAX_ORDER = 12


def _sinc_derivative(x: Any, k: int = 1) -> Any:
    """The k-th derivative of np.sinc(x) = sin(pi x) / (pi x), accurate everywhere.

    Near 0 the closed form (cos(pi x) - sinc(x)) / x cancels catastrophically (sinc'(1e-8)
    would come out as rounding noise), so for |x| < 1 the Taylor series is summed,
    sinc^(k)(x) = sum_{2j >= k} (-1)^j pi^(2j) (2j)! / ((2j - k)! (2j + 1)!) x^(2j - k)
    (terms fall below 1e-17 by j = k/2 + 24); for |x| >= 1 Leibniz's rule on
    sin(pi x) * (pi x)^-1. Both lose accuracy for high orders: beyond order 12 it refuses.
    """
    k = int(k)
    if not 0 <= k <= _SINC_MAX_ORDER:
        raise ValueError(f"sinc: derivatives of order {k} are not supported (0 to {_SINC_MAX_ORDER} are)")
    x = np.asarray(x, dtype=np.result_type(x, 1.0))  # float32 stays float32
    near = np.abs(x.real) < 1.0
    xs = np.where(near, x, 0.0)
    series = np.zeros_like(x)
    for j in range((k + 1) // 2, k // 2 + 25):
        c = (
            (-1) ** j
            * math.pi ** (2 * j)
            * math.factorial(2 * j)
            / (math.factorial(2 * j - k) * math.factorial(2 * j + 1))
        )
        series = series + c * xs ** (2 * j - k)
    xf = np.where(near, 1.0, x)
    s, c = np.sin(math.pi * xf), np.cos(math.pi * xf)
    far = np.zeros_like(x)
    for m in range(k + 1):
        trig = (s, c, -s, -c)[m % 4]  # d^m/dx^m sin(pi x) = pi^m sin(pi x + m pi / 2)
        r = k - m
        far = far + math.comb(k, m) * math.pi ** (m - 1) * trig * (-1) ** r * math.factorial(r) / xf ** (r + 1)
    return np.where(near, series, far)[()]


def _away_from_zero(rng: np.random.Generator) -> tuple[np.ndarray]:
    return (rng.uniform(0.5, 2.5, size=4) * rng.choice([-1.0, 1.0], size=4),)


def _sp_sinc_derivative(sp: Any, x: Any, k: int = 1) -> Any:
    t = sp.Dummy("t")
    return sp.diff(sp.sinc(sp.pi * t), t, int(k)).subs(t, x)


register(
    Op(
        "sinc",
        np.sinc,
        partials=("sinc_derivative(x, k=1)",),
        sympy=lambda sp, x: sp.sinc(sp.pi * x),
        # away from sinc's stationary points (derivative 0)
        domain=domain(uniform(-2.5, 2.5, avoid=(-2.459, -1.4303, 0.0, 1.4303, 2.459), gap=0.1)),
        reached_by="np.sinc(x) on a traced x",
        doc="np.sinc(x) = sin(pi x) / (pi x), 1 at 0; its derivatives are summed as series near 0.",
    )
)
register(
    Op(
        "sinc_derivative",
        _sinc_derivative,
        params={"k": 1},
        partials=("sinc_derivative(x, k=k + 1)",),
        sympy=_sp_sinc_derivative,
        domain=domain(uniform(-2.5, 2.5)),
        # |x| >= 0.5: sympy's 15-digit evaluation of the closed form (the value oracle of the
        # registry tests) cancels near 0 for high orders; tests/test_special.py checks there
        examples=lambda rng: [(_away_from_zero(rng), {"k": k}) for k in (2, 3)],
        reached_by="the derivative rules of np.sinc (order k = 1, 2, ...)",
        doc="The k-th derivative of np.sinc (k <= 12), accurate near 0 where the closed form cancels.",
    )
)


# --- fmax / fmin: maximum / minimum that skip NaN -----------------------------------------
def _sp_skip_nan(sp: Any, x: Any, y: Any, both: Any) -> Any:
    """fmax / fmin in sympy: a NaN argument is skipped, as numpy does."""
    return y if x == sp.nan else (x if y == sp.nan else both)


_FMAX_TIE = (
    "on a tie each input gets half the gradient (as np.maximum); a NaN input is skipped: the other one gets it all"
)
register(
    Op(
        "fmax",
        np.fmax,
        args=("x", "y"),
        scalar="x if x > y or y != y else (y if y > x or x != x else x)",
        partials=(
            "where(x > y, 1.0, where(x == y, 0.5, where(y != y, 1.0, 0.0)))",
            "where(y > x, 1.0, where(x == y, 0.5, where(x != x, 1.0, 0.0)))",
        ),
        sympy=lambda sp, x, y: _sp_skip_nan(sp, x, y, piecewise(sp, (x, x > y), (y, True))),
        domain=_ties_apart,
        complex_step=False,
        kinks=_FMAX_TIE,
        numpy_names=(np.fmax,),
    )
)
register(
    Op(
        "fmin",
        np.fmin,
        args=("x", "y"),
        scalar="x if x < y or y != y else (y if y < x or x != x else x)",
        partials=(
            "where(x < y, 1.0, where(x == y, 0.5, where(y != y, 1.0, 0.0)))",
            "where(y < x, 1.0, where(x == y, 0.5, where(x != x, 1.0, 0.0)))",
        ),
        sympy=lambda sp, x, y: _sp_skip_nan(sp, x, y, piecewise(sp, (x, x < y), (y, True))),
        domain=_ties_apart,
        complex_step=False,
        kinks=_FMAX_TIE,
        numpy_names=(np.fmin,),
    )
)


# --- logaddexp2, cbrt, copysign ------------------------------------------------------------
def _logaddexp2(x: Any, y: Any) -> Any:
    """np.logaddexp2; the analytic formula for complex input (complex-step), which numpy refuses."""
    if np.iscomplexobj(x) or np.iscomplexobj(y):
        return np.log2(np.exp2(x) + np.exp2(y))
    return np.logaddexp2(x, y)


register(
    Op(
        "logaddexp2",
        _logaddexp2,
        args=("x", "y"),
        # 2^x / (2^x + 2^y) = 2^(x - out): x - out <= 0, so nothing overflows
        partials=("pow(2.0, x - out)", "pow(2.0, y - out)"),
        sympy=lambda sp, x, y: sp.log(2**x + 2**y) / sp.log(2),
        domain=domain(REAL, REAL),
        numpy_names=(np.logaddexp2,),
        doc="log2(2^x + 2^y) without overflow; its partials are the base-2 softmax weights.",
    )
)
register(
    Op(
        "cbrt",
        np.cbrt,
        partials=("1.0 / (3.0 * out * out)",),
        sympy=lambda sp, x: piecewise(sp, (-((-x) ** sp.Rational(1, 3)), x < 0), (x ** sp.Rational(1, 3), True)),
        domain=domain(AWAY_FROM_ZERO),
        complex_step=False,
        kinks="cbrt'(0) = +inf (refused); numpy's cbrt is real-only, so complex-step does not apply",
        numpy_names=(np.cbrt,),
    )
)
register(
    Op(
        "copysign",
        np.copysign,
        args=("x", "y"),
        scalar="math.copysign(x, y)",
        # |x| * (±1 by y's sign bit): d/dx = sign(x) * that; derivative 0 in y (a sign)
        partials=("sign(x) * copysign(1.0, y)", "0.0 * y"),
        sympy=lambda sp, x, y: piecewise(sp, (-sp_abs(sp, x), y < 0), (sp_abs(sp, x), True)),
        domain=domain(AWAY_FROM_ZERO, AWAY_FROM_ZERO),
        complex_step=False,
        kinks="|x| with y's sign: d/dx at x = 0 is 0 (the kink of |x|); d/dy is 0 (it jumps at y = 0, like sign)",
        numpy_names=(np.copysign,),
    )
)
register(
    Op(
        "heaviside",
        np.heaviside,
        args=("x", "h0"),
        # a step in x (derivative 0 off the step); the value at x == 0 is h0, so d/dh0 is 1 there
        partials=("0.0 * x", "where(x == 0.0, 1.0, 0.0)"),
        sympy=lambda sp, x, h0: piecewise(sp, (0, x < 0), (h0, sp.Eq(x, 0)), (1, True)),
        domain=domain(AWAY_FROM_ZERO, REAL),
        complex_step=False,
        kinks="a step at x = 0: d/dx is 0 (as for sign); the value there is h0 (derivative 1 in h0)",
        numpy_names=(np.heaviside,),
    )
)
register(
    Op(
        "trunc",
        np.trunc,
        scalar="float(math.trunc(x))",
        nograd=True,
        numpy_names=(np.trunc,),
        domain=domain(AWAY_FROM_ZERO),
        doc="Piecewise constant: derivative 0 wherever it exists.",
    )
)
