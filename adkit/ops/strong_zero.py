"""The strong-zero rule: when 0 x inf in the chain rule is taken as 0, and when it is refused.

The chain rule multiplies local derivatives along every path. A product 0 x inf (or 0 x NaN)
is taken as 0 only when the zero is *exact by structure*: it holds in a neighbourhood of
the point, so the output really does not depend on that value there — np.where's untaken
branch, relu left of 0, the losers of a max, a constant factor 0 (`0 * x`), a basis tangent
that does not involve this input. Any other zero (2x at x = 0, 1/inf after exp overflowed,
an underflowed product) is a number that happens to be 0 at this point, and 0 x inf stays
NaN, so the derivative is refused with NonFiniteDerivativeError instead of a plausible 0.

Engines apply the rule in a second, strict pass that runs only when the plain pass produced
inf or NaN. Alongside each tangent (forward) or cotangent (reverse) the strict pass carries a
boolean `live` mask: the entries that the seed reaches through edges whose local derivative
is not an exact zero (`zeros_are_structural`). A dead entry is exactly 0; a live one keeps
whatever the arithmetic gives, inf and NaN included.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from adkit.ops.core import REGISTRY, Op, ShapeOnly, all_finite, local_partials, primal, shape_of, zeros_are_structural

_WEIGHTS = np.random.default_rng(20261202)


def live_of(v: Any) -> Any:
    """The live mask of a seed: its nonzero entries (a NaN entry is live)."""
    p = primal(v)
    return bool(p != 0) if np.ndim(p) == 0 else np.asarray(p) != 0


def keep_live(v: Any, live: Any) -> Any:
    """v with its dead entries set to an exact 0 (traced values stay traced)."""
    if np.all(live):
        return v
    if not np.any(live):
        return 0.0 if shape_of(v) == () else np.zeros(shape_of(v), dtype=_float_dtype(v))
    return REGISTRY["where"](live, v, 0.0)


def edge_live(
    op: Op, i: int, traced: tuple[bool, ...], partial: Any, live: Any, vals: Sequence[Any], params: dict[str, Any]
) -> Any:
    """Live entries of the product partial * (co)tangent: live on the seed's side, and not
    an exact zero of the partial."""
    exact = exact_zeros(op, i, traced, partial, vals, params)
    return live if exact is False else np.logical_and(live, ~exact)


def exact_zeros(
    op: Op, i: int, traced: tuple[bool, ...], partial: Any, vals: Sequence[Any], params: dict[str, Any]
) -> Any:
    """The entries where the op's i-th local derivative is an exact zero (False: none): the
    rule is piecewise constant (`zeros_are_structural`), it is 0 here, and it is still 0 at
    the neighbouring floats of every traced input. The last condition keeps a kink's own
    point out: relu'(0) = 0 by the kink policy, but relu' is 1 just right of 0, so relu(sqrt(x))
    at 0 is refused (its right derivative is infinite), not 0; relu at -1 is an exact 0."""
    if not zeros_are_structural(op, i, traced):
        return False
    zero = np.asarray(primal(partial)) == 0
    if not zero.any() or not isinstance(op.partials, tuple):
        return zero
    base = [primal(v) for v in vals]
    if any(type(v) is ShapeOnly for v in base):
        return zero  # a value the rules do not read: the rule cannot move with it
    rule = op.partial_fns[i]
    with np.errstate(all="ignore"):
        for j, t in enumerate(traced):
            for direction in (np.inf, -np.inf) if t else ():
                moved = list(base)
                moved[j] = np.nextafter(base[j], direction)
                try:
                    nearby = np.asarray(primal(rule(op.impl(*moved, **params), *moved, **params)))
                except (ArithmeticError, ValueError, TypeError):
                    return False  # not evaluable next to the point: no exact zeros claimed
                zero, nearby = np.broadcast_arrays(zero, nearby == 0)
                zero = zero & nearby
    return zero


def through_linear(
    apply: Callable[[Sequence[Any]], Sequence[Any]], lives: Sequence[Any], shapes: Sequence[Any]
) -> list[Any]:
    """Live masks through a map that is linear in its (co)tangents with coefficients that are
    exact (a structural op: getitem, sum, max, matmul with a constant operand): the map applied
    to random positive weights on the live entries is nonzero exactly where a live entry reaches
    (with probability 1: no cancellation of random weights)."""
    weights = []
    for live, shape in zip(lives, shapes):
        if live is None:
            weights.append(None)
        else:
            w = _WEIGHTS.uniform(1.0, 2.0, size=shape) * np.broadcast_to(live, shape)
            weights.append(float(w) if shape == () else w)
    with np.errstate(all="ignore"):
        outs = apply(weights)
    return [None if o is None else _nonzero(o) for o in outs]


def conservative(lives: Sequence[Any], shape: tuple[int, ...], nb: int = 0) -> Any:
    """Live mask of a value computed by an op that is not known to have exact zeros: every
    entry (per batch row: the first `nb` axes) is live when any input entry is."""
    if nb == 0:
        anything = any(np.any(live) for live in lives if live is not None)
        return bool(anything) if shape == () else np.full(shape, anything)
    rows = None
    for live in lives:
        if live is None:
            continue
        live = np.asarray(live)
        r = live.reshape(live.shape[:nb] + (-1,)).any(axis=-1) if live.ndim > nb else live
        rows = r if rows is None else rows | r
    rows = np.zeros(shape[:nb], dtype=bool) if rows is None else rows
    return np.broadcast_to(rows.reshape(rows.shape + (1,) * (len(shape) - nb)), shape).copy()


def unbroadcast_live(live: Any, shape: tuple[int, ...], nb: int = 0) -> Any:
    """A live mask summed down to an input's shape (an entry is live when any copy is)."""
    from adkit.ops.array import unbroadcast

    lshape = np.shape(live)
    target = lshape[:nb] + tuple(shape)
    if lshape == target:
        return live
    return _nonzero(unbroadcast(np.asarray(live, dtype=float), tuple(shape), nb))


def merge(a: Any, b: Any) -> Any:
    """Live where either is (None: no mask yet)."""
    if a is None:
        return b
    return np.logical_or(a, b)


def _nonzero(v: Any) -> Any:
    p = np.asarray(primal(v))
    m = p != 0
    return bool(m) if p.ndim == 0 else m


def _float_dtype(v: Any) -> Any:
    d = np.result_type(primal(v))
    return d if d.kind == "f" else np.float64


def is_finite(v: Any) -> bool:
    """Every entry of a (traced) value is finite; arrays in one BLAS pass (core.all_finite)."""
    p = primal(v)
    if type(p) is float:
        return math.isfinite(p)
    return all_finite(np.asarray(p))


def bad_value_text(desc: str, out: Any) -> str:
    """Why a value an op computed from finite inputs is not finite: an overflow (inf) or a
    point outside the op's domain (NaN: log of a negative number, 0 / 0)."""
    p = np.asarray(primal(out))
    if np.isinf(p).any():
        return (
            f"{desc} overflowed to inf and the result depends on it (no intermediate may overflow: "
            "np.logaddexp, adkit.softplus and adkit.sigmoid do not)"
        )
    return f"{desc} is undefined there (NaN: outside its domain) and the result depends on it"


def short_value(v: Any) -> str:
    """A value for an error message: small ones in full, large ones by shape."""
    if type(v) is ShapeOnly:  # a value a tape did not keep (the rule does not read it)
        return f"an array of shape {v.shape}"
    a = np.asarray(primal(v))
    if a.size <= 4:
        return np.array2string(a, precision=6) if a.ndim else f"{float(a):.6g}" if a.dtype.kind in "fiub" else str(a)
    return f"array{a.shape} with {int((~np.isfinite(a)).sum()) if a.dtype.kind == 'f' else 0} non-finite entries"


def describe_call(op: Op, vals: Sequence[Any] | None, where: str = "") -> str:
    """op(its arguments) for an error message (`where`: e.g. the tape entry)."""
    args = "" if vals is None else f"({', '.join(short_value(v) for v in vals)})"
    return f"{op.name}{args}{where}"


def explain(
    op: Op, vals: Sequence[Any], out: Any, params: dict[str, Any], needed: Sequence[bool], where: str = ""
) -> str:
    """Why an op makes a derivative inf or NaN, the engines' shared diagnosis: its value
    overflowed or left its domain while its inputs were finite, or one of its local
    derivatives is inf or NaN. Empty when the op shows neither."""
    desc = describe_call(op, vals, where)
    kept_out = None if out is None or type(out) is ShapeOnly else primal(out)
    ins = [primal(v) for v in vals if type(v) is not ShapeOnly]
    if kept_out is not None and not np.all(np.isfinite(kept_out)) and all(np.all(np.isfinite(v)) for v in ins):
        return bad_value_text(desc, kept_out)
    if op.partials is not None:
        for p in local_partials(op, out, vals, params, list(needed)):
            if p is not None and not np.all(np.isfinite(primal(p))):
                return f"the local derivative of {desc} is {short_value(p)}"
    return ""


def zero_met_infinity(desc: str, carried: str) -> str:
    """The strict passes' culprit when neither value nor local derivative explains it."""
    return (
        f"at {desc} a finite {carried} became inf or NaN: a local derivative that is 0 at this point "
        "(not an exact zero) met an infinite one, or a product overflowed"
    )
