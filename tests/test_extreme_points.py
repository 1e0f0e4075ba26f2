"""Random programs at extreme points: every engine agrees with mpmath or refuses.

Programs are small expression trees over one input, drawn from ops whose float64 behaviour at
the edges is where plausible wrong numbers come from (overflow of exp, log and sqrt at 0,
integer powers at 0, kinks of abs / relu / maximum). Each is evaluated at a point near
overflow, at 0, at a kink or at a tiny or huge magnitude. The oracle is the same tree in
mpmath at 60 digits: its value, and its one-sided difference quotients with a step of 1e-40.

Verdicts, per engine:
- where float64's value of f is inf or NaN, the engine refuses (an AdkitError), or (exact
  arithmetic: the symbolic engine) returns mpmath's derivative;
- where mpmath's left and right derivatives agree (f is differentiable there), the engine
  returns that derivative or refuses;
- elsewhere (a kink, an infinite slope, the edge of the domain) it refuses or returns a
  number between the one-sided derivatives (the kink policy's subgradients).
A finite number outside those is the failure this test exists for.
"""

from __future__ import annotations

import math

import mpmath
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import adkit as ad
from adkit.errors import AdkitError

# (name, numpy / adkit function, mpmath function); mpmath returns None outside the reals
UNARY = {
    "exp": (np.exp, mpmath.exp),
    "log": (np.log, lambda v: mpmath.log(v) if v >= 0 else None),  # log(0) = -inf, as in numpy
    "log1p": (np.log1p, lambda v: mpmath.log1p(v) if v >= -1 else None),  # log1p(-1) = -inf
    "sqrt": (np.sqrt, lambda v: mpmath.sqrt(v) if v >= 0 else None),
    "tanh": (np.tanh, mpmath.tanh),
    "sigmoid": (ad.sigmoid, lambda v: 1 / (1 + mpmath.exp(-v))),
    "abs": (np.abs, abs),
    "relu": (ad.relu, lambda v: v if v > 0 else mpmath.mpf(0)),
    "square": (lambda v: v**2, lambda v: v**2),
    "cube": (lambda v: v**3, lambda v: v**3),
    "pow0": (lambda v: v**0, lambda v: mpmath.mpf(1)),
    "arctan": (np.arctan, mpmath.atan),
}
BINARY = {
    "add": (lambda a, b: a + b, lambda a, b: a + b),
    "mul": (lambda a, b: a * b, lambda a, b: a * b),
    "max": (np.maximum, lambda a, b: max(a, b)),
    "logaddexp": (np.logaddexp, lambda a, b: mpmath.log(mpmath.exp(a) + mpmath.exp(b))),
}
POINTS = [0.0, 1e-300, -1e-300, 1.0, -1.0, 2.0, 700.0, 709.0, 710.0, 1000.0, -745.0, -1000.0, 1e154, 1e200, -2.5]
CONSTANTS = [0.5, 2.0, -1.0, 0.0]


def trees(depth: int):
    leaf = st.just(("x",)) | st.sampled_from(CONSTANTS).map(lambda c: ("c", c))
    if depth == 0:
        return leaf
    sub = trees(depth - 1)
    return (
        st.tuples(st.just("u"), st.sampled_from(sorted(UNARY)), sub)
        | st.tuples(st.just("b"), st.sampled_from(sorted(BINARY)), sub, sub)
        | leaf
    )


def evaluate(tree, x, mp: bool):
    kind = tree[0]
    if kind == "x":
        return x
    if kind == "c":
        return mpmath.mpf(tree[1]) if mp else tree[1]
    if kind == "u":
        inner = evaluate(tree[2], x, mp)
        if mp and inner is None:
            return mpmath.mpf(1) if tree[1] == "pow0" else None  # IEEE: nan**0 = 1
        return UNARY[tree[1]][1 if mp else 0](inner)
    a, b = evaluate(tree[2], x, mp), evaluate(tree[3], x, mp)
    if mp and (a is None or b is None):
        return None
    return BINARY[tree[1]][1 if mp else 0](a, b)


def uses_x(tree) -> bool:
    return tree[0] == "x" or any(uses_x(t) for t in tree[2:] if isinstance(t, tuple))


def one_sided(tree, x: float):
    """(value, left, right) of the tree at x with mpmath (None where undefined). 60 digits, plus
    as many as x is small: exp(1e-300) = 1 + 1e-300 needs 300 digits to see the 1e-300."""
    digits = 60 + (int(-math.log10(abs(x))) + 40 if 0 < abs(x) < 1 else 0)
    with mpmath.workdps(digits):
        m = mpmath.mpf(x)
        h = mpmath.mpf(10) ** -30 * (abs(m) if m else mpmath.mpf(10) ** -10)  # relative to x: x may be 1e-300
        try:
            f0, fl, fr = (evaluate(tree, m + d, mp=True) for d in (0, -h, h))
        except OverflowError:  # exp(1e154) is beyond even mpmath's integers: no oracle
            return None, None, None
        left = None if f0 is None or fl is None else (f0 - fl) / h
        right = None if f0 is None or fr is None else (fr - f0) / h
        return f0, left, right


def close(a: float, b, scale: float, engine: str = "") -> bool:
    # Exact engines: 1e-7 relative, plus 1e-7 of the program's own scale absolute: float64
    # evaluation of a depth-3 tree loses at most a few ulps per op, so a correct engine is
    # within ~1e-13 of the 60-digit truth here; 1e-7 leaves room for cancellation in sums and
    # still catches any plausible wrong number (a 0 for a nonzero slope, a sign, a missing
    # factor). The numeric engine: 1e-4, the convergence it requires before it answers
    # (adkit.engines.numeric.CONVERGED_RTOL).
    tol = 1e-4 if engine == "numeric" else 1e-7
    return abs(a - float(b)) <= tol * (abs(float(b)) + scale)


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much])
@given(tree=trees(3), x=st.sampled_from(POINTS))
def test_every_engine_agrees_with_mpmath_or_refuses(tree, x):
    if not uses_x(tree):
        return
    f = lambda v: evaluate(tree, v, mp=False)  # noqa: E731
    with np.errstate(all="ignore"):
        try:
            value = float(np.asarray(f(x)))
        except (OverflowError, ZeroDivisionError, ValueError):  # Python float arithmetic refused
            value = math.nan
    f_mp, left, right = one_sided(tree, x)
    smooth = (
        left is not None
        and right is not None
        and mpmath.isfinite(left)
        and mpmath.isfinite(right)
        and abs(left - right) <= mpmath.mpf(10) ** -20 * (abs(left) + abs(right) + mpmath.mpf(10) ** -300)
    )
    representable = smooth and abs(left) < 1.7e308  # else the derivative is beyond float64: refuse
    with np.errstate(all="ignore"):
        try:
            lost = x != 0 and float(np.asarray(f(0.0))) == value  # x is below f's float64 resolution
        except (OverflowError, ZeroDivisionError, ValueError):
            lost = False
    for engine in ad.ENGINES:
        with np.errstate(all="ignore"):
            try:
                got = ad.grad(f, engine=engine)(x)
            except AdkitError:
                continue  # refused: always allowed
            except (OverflowError, ZeroDivisionError):
                continue  # Python float arithmetic in f itself raised: nothing was returned
        assert math.isfinite(got), f"{engine} returned {got} at {x}: {tree}"
        if not math.isfinite(value):
            # f overflowed in float64: only exact arithmetic (the symbolic engine) can still know
            # the derivative, and then it must be mpmath's
            assert representable and f_mp is not None and mpmath.isfinite(f_mp), (
                f"{engine} returned {got} where f({x}) = {value}: {tree}"
            )
            assert close(got, left, 1.0, engine), f"{engine}: {got}, mpmath {mpmath.nstr(left, 15)} at x={x}: {tree}"
            continue
        scale = abs(value) + 1.0
        if lost:
            # f's float64 program does not see x here (max(0.5, x + 0.5) at 1e-300 is a tie in
            # float64): the engines differentiate that program, mpmath the exact function
            continue
        if smooth:
            assert representable, f"{engine} returned {got} for a derivative beyond float64 at x={x}: {tree}"
            assert close(got, left, scale, engine), f"{engine}: {got}, mpmath {mpmath.nstr(left, 15)} at x={x}: {tree}"
        else:
            sides = [float(s) for s in (left, right) if s is not None and mpmath.isfinite(s) and abs(s) < 1e300]
            slack = (1e-4 if engine == "numeric" else 1e-7) * scale  # each engine's accuracy, as in `close`
            assert sides and min(sides) - slack <= got <= max(sides) + slack, (
                f"{engine}: {got} is not between the one-sided derivatives {sides} at x={x}: {tree}"
            )


@pytest.mark.parametrize(
    "tree, x",
    [
        (("u", "log", ("u", "exp", ("x",))), 1000.0),  # overflow: refused, never 0
        (("u", "arctan", ("u", "log", ("u", "exp", ("x",)))), 710.0),  # overflow inside a finite value
        (("u", "relu", ("u", "sqrt", ("x",))), 0.0),  # a kink meets an infinite slope
        (("b", "mul", ("u", "sqrt", ("x",)), ("u", "sqrt", ("x",))), 0.0),  # 0 x inf that is not exact
        (("u", "pow0", ("x",)), 0.0),  # x**0 at 0: exactly 0
        (("b", "logaddexp", ("x",), ("x",)), 1000.0),
        (("b", "max", ("u", "square", ("x",)), ("c", 0.5)), -1.0),
        (("u", "sigmoid", ("u", "log1p", ("x",))), -1.0),  # f = (1+x)/(2+x) on x >= -1 only: one-sided
        (("u", "relu", ("u", "log1p", ("x",))), -1.0),  # sympy's log1p(-1) is zoo inside relu's branch
    ],
)
def test_the_hard_cases_explicitly(tree, x):
    # the property above on the cases it exists for (hypothesis draws few examples in CI)
    test_every_engine_agrees_with_mpmath_or_refuses.hypothesis.inner_test(tree, x)
