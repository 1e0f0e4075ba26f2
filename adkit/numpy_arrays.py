"""numpy's array vocabulary on traced values, as compositions of registry ops.

Each adapter rewrites one numpy function (np.roll, np.pad, np.median, np.interp, ...)
into registry ops that every engine already differentiates: gathers (`getitem` with
integer index arrays, whose VJP adds the cotangents back where they came from), slices,
reshapes and transposes, `where`, `concatenate`, `stack` and arithmetic. No new rule,
so forward, reverse, symbolic, paths and hessians get them all, and the numbers are
checked against numpy's own results and finite differences in tests/test_arrays.py.

Index computations (which entry goes where) run on the plain values: they carry no
derivative. Where the choice of entries changes with the values (the sorted order of
np.median, the interval of np.interp) the function has kinks; the derivative there is
the one of the entries picked, as documented per function.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import numpy as np

from adkit.errors import UnsupportedFunctionError
from adkit.numpy_api import (
    CONSTANT_FUNCTIONS,
    FUNCTIONS,
    UFUNC_COMPOSITES,
    _atleast,
    _diagonal,
    _moveaxis,
    _no_out,
    _sort,
    _split,
)
from adkit.ops.array import norm_axes
from adkit.ops.core import REGISTRY, Tracer, lift_object, primal, shape_of

R = REGISTRY


def _ndim(a: Any) -> int:
    return len(shape_of(a))


def _along(axis: int, index: Any) -> tuple[Any, ...]:
    """An index selecting `index` along `axis` and everything along the axes before it."""
    return (slice(None),) * axis + (index,)


def _as_traced(a: Any) -> Any:
    """A traced value, an object array of traced values, or plain numbers, as an array
    registry ops accept (plain numbers become float arrays)."""
    a = lift_object(a)
    return a if isinstance(a, Tracer) else np.asarray(a, dtype=float)


# --- building and splitting ------------------------------------------------------------------


def _dstack(tup):
    return R["concatenate"](*[_atleast(3)(a) for a in tup], axis=2)


def _column_stack(tup):
    cols = [R["reshape"](a, shape=(-1, 1)) if _ndim(a) < 2 else a for a in tup]
    return R["concatenate"](*cols, axis=1)


def _append(arr, values, axis=None):
    if axis is None:
        return R["concatenate"](R["reshape"](arr, shape=(-1,)), R["reshape"](values, shape=(-1,)), axis=0)
    return R["concatenate"](arr, values, axis=axis)


def _split_along(axis: int, least: int, name: str) -> Callable[..., Any]:
    def adapter(ary, indices_or_sections):
        if _ndim(ary) < least:
            raise ValueError(f"{name} only works on arrays of {least} or more dimensions")
        return _split(ary, indices_or_sections, axis=axis if _ndim(ary) > 1 or axis == 0 else 0)

    return adapter


# --- rearranging -----------------------------------------------------------------------------------


def _rollaxis(a, axis, start=0):
    n = _ndim(a)
    axis, start = int(axis) % n, int(start) + (n if start < 0 else 0)
    if not 0 <= start <= n:
        raise np.exceptions.AxisError(f"start={start} out of range for {n} dimensions")
    if axis < start:
        start -= 1
    if axis == start:
        return a
    order = [i for i in range(n) if i != axis]
    order.insert(start, axis)
    return R["transpose"](a, axes=tuple(order))


def _flip(m, axis=None):
    n = _ndim(m)
    axes = norm_axes(axis, n)
    return m[tuple(slice(None, None, -1) if i in axes else slice(None) for i in range(n))]


def _rot90(m, k=1, axes=(0, 1)):
    n = _ndim(m)
    a0, a1 = (int(a) % n for a in axes)
    if a0 == a1 or len(axes) != 2:
        raise ValueError("rot90: axes must be two different axes")
    k %= 4
    if k == 0:
        return m
    if k == 2:
        return _flip(_flip(m, a0), a1)
    order = list(range(n))
    order[a0], order[a1] = order[a1], order[a0]
    if k == 1:
        return R["transpose"](_flip(m, a1), axes=tuple(order))
    return _flip(R["transpose"](m, axes=tuple(order)), a1)


def _roll(a, shift, axis=None):
    """np.roll: a gather along each axis with the indices numpy's roll gives arange(n)."""
    if axis is None:
        return R["reshape"](_roll(R["reshape"](a, shape=(-1,)), shift, 0), shape=shape_of(a))
    shifts, axes = np.broadcast_arrays(np.atleast_1d(shift), np.atleast_1d(axis))
    for s, ax in zip(shifts.tolist(), axes.tolist()):
        ax = int(ax) % _ndim(a)
        a = a[_along(ax, np.roll(np.arange(shape_of(a)[ax]), s))]
    return a


def _tril(m, k=0):
    """np.tril: the entries above the k-th diagonal replaced by 0 (a 1-D m is broadcast
    to a square first, as numpy does)."""
    return R["where"](np.tri(*shape_of(m)[-2:], k=int(k), dtype=bool), m, 0.0)


def _triu(m, k=0):
    return R["where"](~np.tri(*shape_of(m)[-2:], k=int(k) - 1, dtype=bool), m, 0.0)


def _diag(v, k=0):
    """np.diag: the k-th diagonal of a 2-D array, or a 2-D array with v on its k-th
    diagonal (a gather from v followed by one zero: no scatter)."""
    if _ndim(v) == 2:
        return _diagonal(v, k)
    if _ndim(v) != 1:
        raise ValueError("Input must be 1- or 2-d.")
    n, k = shape_of(v)[0], int(k)
    size = n + abs(k)
    index = np.full((size, size), n)  # n: the zero appended after v
    rows = np.arange(n) + max(0, -k)
    index[rows, rows + k] = np.arange(n)
    return R["concatenate"](v, np.zeros(1), axis=0)[(index,)]


def _diagflat(v, k=0):
    return _diag(R["reshape"](v, shape=(-1,)), k)


def _kron(a, b):
    """np.kron as a broadcast product: entry (i, j) of a times b, interleaved, merged."""
    a, b = _as_traced(a), _as_traced(b)
    sa, sb = shape_of(a), shape_of(b)
    d = max(len(sa), len(sb))
    sa, sb = (1,) * (d - len(sa)) + sa, (1,) * (d - len(sb)) + sb
    left = R["reshape"](a, shape=tuple(v for n in sa for v in (n, 1)))
    right = R["reshape"](b, shape=tuple(v for n in sb for v in (1, n)))
    return R["reshape"](left * right, shape=tuple(p * q for p, q in zip(sa, sb)))


def _cross(a, b, axisa=-1, axisb=-1, axisc=-1, axis=None):
    """np.cross of 3-vectors (and the z component of 2-vectors), component by component."""
    if axis is not None:
        axisa = axisb = axisc = axis
    a, b = _moveaxis(_as_traced(a), axisa, -1), _moveaxis(_as_traced(b), axisb, -1)
    na, nb = shape_of(a)[-1], shape_of(b)[-1]
    if na not in (2, 3) or nb not in (2, 3):
        raise ValueError("incompatible dimensions for cross product (dimension must be 2 or 3)")
    x = [a[..., i] for i in range(na)] + [0.0] * (3 - na)
    y = [b[..., i] for i in range(nb)] + [0.0] * (3 - nb)
    z = x[0] * y[1] - x[1] * y[0]
    if na == 2 and nb == 2:
        return z
    c = R["stack"](x[1] * y[2] - x[2] * y[1], x[2] * y[0] - x[0] * y[2], z, axis=-1)
    return _moveaxis(c, -1, axisc) if _ndim(c) > 1 else c


def _pad(array, pad_width, mode="constant", **kwargs):
    """np.pad as one gather per axis: the source index of every padded entry is what
    np.pad gives arange(n) in the same mode (constant: two extra slots for the values)."""
    if callable(mode) or mode not in ("constant", "edge", "reflect", "symmetric", "wrap", "empty"):
        raise UnsupportedFunctionError(
            f"np.pad(..., mode={mode!r}) is not supported on traced values: use 'constant', "
            "'edge', 'reflect', 'symmetric' or 'wrap'"
        )
    if kwargs.get("reflect_type", "even") != "even" or set(kwargs) - {"constant_values", "reflect_type"}:
        raise UnsupportedFunctionError(f"np.pad(..., {', '.join(kwargs)}) is not supported on traced values")
    n = _ndim(array)
    widths = np.broadcast_to(np.asarray(pad_width, dtype=int), (n, 2))
    values = np.broadcast_to(np.asarray(primal(kwargs.get("constant_values", 0)), dtype=float), (n, 2))
    if isinstance(kwargs.get("constant_values"), Tracer):
        raise UnsupportedFunctionError("np.pad with traced constant_values is not supported: pad, then add")
    for ax in range(n):
        before, after = (int(w) for w in widths[ax])
        if before == after == 0:
            continue
        size = shape_of(array)[ax]
        if mode in ("constant", "empty"):
            slot = list(shape_of(array))
            slot[ax] = 1
            source = R["concatenate"](np.full(slot, values[ax, 0]), array, np.full(slot, values[ax, 1]), axis=ax)
            index = np.pad(np.arange(1, size + 1), (before, after), constant_values=(0, size + 1))
        else:
            source = array
            index = np.pad(np.arange(size), (before, after), mode=mode)
        array = source[_along(ax, index)]
    return array


def _select(condlist, choicelist, default=0):
    if len(condlist) != len(choicelist):
        raise ValueError("list of cases must be same length as list of conditions")
    result = default
    for cond, choice in reversed(list(zip(condlist, choicelist))):
        result = R["where"](np.asarray(primal(lift_object(cond)), dtype=bool), choice, result)
    return result


# --- reductions ignoring NaN -------------------------------------------------------------------------


def _nan_reduction(name: str, fill: float) -> Callable[..., Any]:
    """np.nansum / nanprod / nanmax / nanmin: the NaN entries replaced by the reduction's
    neutral value (their derivative is 0), then the plain reduction."""

    def adapter(a, axis=None, dtype=None, out=None, keepdims=False, **kw):
        _no_out(f"np.nan{name}", out=out)
        mask = np.isnan(primal(a))
        return R[name](R["where"](mask, fill, a) if mask.any() else a, axis=axis, keepdims=bool(keepdims))

    return adapter


def _nanmean(a, axis=None, dtype=None, out=None, keepdims=False, **kw):
    _no_out("np.nanmean", out=out)
    kept = ~np.isnan(primal(a))
    count = np.sum(kept, axis=axis, keepdims=bool(keepdims))
    total = R["sum"](R["where"](kept, a, 0.0), axis=axis, keepdims=bool(keepdims))
    return total / np.asarray(count, dtype=float)


# --- order statistics: gathers from the sorted values ---------------------------------------------------

_METHODS = ("linear", "lower", "higher", "midpoint", "nearest")


def _quantile(a, q, axis=None, out=None, overwrite_input=False, method="linear", keepdims=False, **kw):
    """np.quantile: sort (a gather), then interpolate between the two order statistics
    around the virtual index q (n - 1). Each result is a fixed combination of two input
    entries, so its derivative is that combination's weights; where entries tie, or q (n - 1)
    is an integer with method 'linear', the derivative goes to the entries argsort put there
    (np.median of an even count averages the two middle ones)."""
    _no_out("np.quantile", out=out)
    if method not in _METHODS or kw.get("interpolation") is not None:
        raise UnsupportedFunctionError(f"np.quantile(..., method={method!r}) on traced values: use one of {_METHODS}")
    if isinstance(q, Tracer):
        raise UnsupportedFunctionError(
            "np.quantile / np.percentile with a traced q: the derivative with respect to q is not supported"
        )
    q = np.asarray(q, dtype=float)
    if np.any((q < 0) | (q > 1)):
        raise ValueError("Quantiles must be in the range [0, 1]")
    nd = _ndim(a)
    if axis is None:
        sorted_a, ax = _sort(a, axis=None), 0
    else:
        ax = norm_axes(axis, nd)
        if len(ax) != 1:
            raise UnsupportedFunctionError("np.quantile over several axes on traced values: reshape first")
        ax = ax[0]
        sorted_a = _moveaxis(_sort(a, axis=ax), ax, 0)
    n = shape_of(sorted_a)[0]
    virtual = q * (n - 1)
    lo = np.floor(virtual).astype(int)
    hi = np.minimum(lo + 1, n - 1)
    t = virtual - lo
    if method == "lower":
        hi, t = lo, np.zeros_like(t)
    elif method == "higher":
        lo = np.ceil(virtual).astype(int)
        hi, t = lo, np.zeros_like(t)
    elif method == "nearest":
        lo = np.around(virtual).astype(int)
        hi, t = lo, np.zeros_like(t)
    elif method == "midpoint":  # numpy: halfway between the neighbours unless q (n - 1) is whole
        t = np.where(virtual % 1 == 0, 0.0, 0.5)
    below, above = sorted_a[(lo,)], sorted_a[(hi,)]
    extra = (1,) * (_ndim(below) - q.ndim)
    t = t.reshape(q.shape + extra)
    diff = above - below
    result = R["where"](t >= 0.5, above - diff * (1.0 - t), below + diff * t)
    if keepdims:
        result = R["reshape"](
            result, shape=q.shape + tuple(1 if axis is None or i == ax else s for i, s in enumerate(shape_of(a)))
        )
    return _nan_where_nan(a, result, axis, keepdims)


def _percentile(a, q, axis=None, out=None, overwrite_input=False, method="linear", keepdims=False, **kw):
    q = q if isinstance(q, Tracer) else np.asarray(q, dtype=float) / 100.0
    return _quantile(a, q, axis, out, overwrite_input, method, keepdims, **kw)


def _nan_where_nan(a: Any, result: Any, axis: Any, keepdims: bool) -> Any:
    """numpy's median and quantiles are NaN over any slice holding a NaN (a sort would put
    the NaN last and pick a number)."""
    hit = np.isnan(primal(a)).any(axis=axis, keepdims=bool(keepdims))
    return R["where"](hit, np.nan, result) if hit.any() else result


def _median(a, axis=None, out=None, overwrite_input=False, keepdims=False):
    _no_out("np.median", out=out)
    if axis is None:
        sorted_a = _sort(a, axis=None)
    else:
        ax = norm_axes(axis, _ndim(a))
        if len(ax) != 1:
            raise UnsupportedFunctionError("np.median over several axes on traced values: reshape first")
        sorted_a = _moveaxis(_sort(a, axis=ax[0]), ax[0], 0)
    n = shape_of(sorted_a)[0]
    middle = sorted_a[n // 2] if n % 2 else R["mean"](sorted_a[n // 2 - 1 : n // 2 + 1], axis=0)
    if keepdims:
        axes = norm_axes(axis, _ndim(a))
        middle = R["reshape"](middle, shape=tuple(1 if i in axes else s for i, s in enumerate(shape_of(a))))
    return _nan_where_nan(a, middle, axis, keepdims)


def _interp(x, xp, fp, left=None, right=None, period=None):
    """np.interp as gathers: the interval [xp_j, xp_j+1] holding x is found on the plain
    values, then fp_j + (x - xp_j) (fp_j+1 - fp_j) / (xp_j+1 - xp_j), differentiable in x,
    xp and fp. At a knot the derivative in x is the slope of the interval to its right
    (the last interval at the right end), or 0 where the knot is a local extremum (the
    slopes on its two sides have opposite signs: the registry's kink policy); outside
    [xp_0, xp_-1] it is 0 (left / right)."""
    if period is not None:
        raise UnsupportedFunctionError("np.interp(..., period=) is not supported on traced values")
    x, xp, fp = _as_traced(x), _as_traced(xp), _as_traced(fp)
    xv, xpv = np.asarray(primal(x)), np.asarray(primal(xp))
    if xpv.ndim != 1 or shape_of(fp) != xpv.shape:
        raise ValueError("fp and xp are not of the same length")
    m = xpv.shape[0]
    if m == 1:
        return R["broadcast_to"](R["reshape"](fp, shape=()), shape=xv.shape)
    j = np.clip(np.searchsorted(xpv, xv, side="right") - 1, 0, m - 2)
    fpv = np.asarray(primal(fp))
    with np.errstate(divide="ignore", invalid="ignore"):
        slopes = np.diff(fpv) / np.diff(xpv)
    extremum = (xv == xpv[j]) & (j > 0) & (slopes[j - 1] * slopes[j] < 0)
    if np.any(extremum):  # the kink policy: derivative 0 at a local extremum
        x = R["where"](extremum, xv, x)
    x0, x1, f0, f1 = xp[(j,)], xp[(j + 1,)], fp[(j,)], fp[(j + 1,)]
    width = x1 - x0
    inside = f0 + (x - x0) * ((f1 - f0) / R["where"](primal(width) == 0, 1.0, width))
    first, last = fp[0], fp[m - 1]
    result = R["where"](xv < xpv[0], first if left is None else left, inside)
    return R["where"](xv > xpv[-1], last if right is None else right, result)


# --- more of numpy's vocabulary: weighted means, grids, polynomials, integrals -----------------------


def _take_along_axis(arr, indices, axis=-1):
    """np.take_along_axis: a gather with `indices` along `axis` and the identity elsewhere."""
    if axis is None:
        arr, axis = R["reshape"](arr, shape=(-1,)), 0
    n = _ndim(arr)
    axis = int(axis) % n
    grids = [np.arange(s).reshape((1,) * i + (-1,) + (1,) * (n - i - 1)) for i, s in enumerate(shape_of(arr))]
    grids[axis] = np.asarray(primal(indices), dtype=np.intp)
    return arr[tuple(grids)]


def _average(a, axis=None, weights=None, returned=False, *, keepdims=False):
    """np.average: sum(a w) / sum(w) along axis (w may be traced too), as numpy computes it."""
    kw = {"axis": axis, "keepdims": bool(keepdims)}
    if weights is None:
        avg = R["mean"](a, **kw)
        scale = float(math.prod(shape_of(a)) / max(1, math.prod(shape_of(avg))))
    else:
        w = _as_traced(weights)
        if shape_of(w) != shape_of(a):
            if axis is None:
                raise TypeError("Axis must be specified when shapes of a and weights differ.")
            if _ndim(w) != 1 or shape_of(w)[0] != shape_of(a)[int(axis)]:
                raise ValueError("Shape of weights must be consistent with shape of a along specified axis.")
            w = R["reshape"](w, shape=tuple(-1 if i == int(axis) % _ndim(a) else 1 for i in range(_ndim(a))))
        scale = R["sum"](w, **kw)
        if np.any(primal(scale) == 0):
            raise ZeroDivisionError("Weights sum to zero, can't be normalized")
        avg = R["sum"](a * w, **kw) / scale
    if returned:
        return avg, R["broadcast_to"](scale, shape=shape_of(avg)) if isinstance(scale, Tracer) else np.full(
            shape_of(avg), primal(scale)
        )
    return avg


def _ptp(a, axis=None, out=None, keepdims=False):
    _no_out("np.ptp", out=out)
    return R["max"](a, axis=axis, keepdims=bool(keepdims)) - R["min"](a, axis=axis, keepdims=bool(keepdims))


def _linspace(start, stop, num=50, endpoint=True, retstep=False, dtype=None, axis=0, **kw):
    """np.linspace with traced end points: start + k (stop - start) / div, the last point
    stop itself (as numpy does)."""
    if not _float(dtype):
        raise UnsupportedFunctionError("np.linspace(..., dtype=<integer>) of traced values has no derivative")
    num = int(num)
    if num < 0:
        raise ValueError(f"Number of samples, {num}, must be non-negative.")
    div = num - 1 if endpoint else num
    start, stop = _as_traced(start), _as_traced(stop)
    delta = stop - start
    steps = np.arange(num, dtype=float).reshape((-1,) + (1,) * _ndim(delta))
    step = delta / float(div) if div > 0 else np.nan
    y = (steps * step if div > 0 else steps * delta) + start
    if endpoint and num > 1:
        y = R["concatenate"](y[:-1], R["broadcast_to"](stop, shape=shape_of(y)[1:])[None], axis=0)
    if axis != 0:
        y = _moveaxis(y, 0, axis)
    return (y, step) if retstep else y


def _logspace(start, stop, num=50, endpoint=True, base=10.0, dtype=None, axis=0):
    return R["pow"](base, _linspace(start, stop, num, endpoint, dtype=dtype, axis=axis))


def _polyval(p, x):
    """np.polyval by Horner's rule, as numpy evaluates it: y = y x + p_k."""
    y = np.zeros(shape_of(x))
    for k in range(len(p)):
        y = y * x + p[k]
    return y


def _trapezoid(y, x=None, dx=1.0, axis=-1):
    """np.trapezoid: sum of d (y_k+1 + y_k) / 2 along axis, with d = diff(x) or dx."""
    nd = _ndim(y)
    axis = int(axis) % nd
    if x is None:
        d = dx
    elif _ndim(x) == 1:
        d = R["reshape"](np.diff(x), shape=tuple(-1 if i == axis else 1 for i in range(nd)))
    else:
        d = np.diff(x, axis=axis)
    upper, lower = y[_along(axis, slice(1, None))], y[_along(axis, slice(None, -1))]
    return R["sum"](d * (upper + lower) / 2.0, axis=axis)


def _meshgrid(*xi, copy=True, sparse=False, indexing="xy"):
    if indexing not in ("xy", "ij"):
        raise ValueError("Valid values for `indexing` are 'xy' and 'ij'.")
    ndim = len(xi)
    ones = (1,) * ndim
    shapes = [ones[:i] + (-1,) + ones[i + 1 :] for i in range(ndim)]
    if indexing == "xy" and ndim > 1:
        shapes[0], shapes[1] = (1, -1) + ones[2:], (-1, 1) + ones[2:]
    output = [R["reshape"](x, shape=s) for x, s in zip(xi, shapes)]
    if not sparse:
        full = np.broadcast_shapes(*[shape_of(o) for o in output])
        output = [R["broadcast_to"](o, shape=full) for o in output]
    return tuple(output)


def _nanvar(a, axis=None, dtype=None, out=None, ddof=0, keepdims=False, **kw):
    """np.nanvar: the variance of the entries that are not NaN (NaN entries: derivative 0)."""
    _no_out("np.nanvar", out=out)
    kept = ~np.isnan(primal(a))
    mean = R["sum"](R["where"](kept, a, 0.0), axis=axis, keepdims=True) / np.sum(kept, axis=axis, keepdims=True)
    dev = R["where"](kept, a - mean, 0.0)
    total = R["sum"](dev * dev, axis=axis, keepdims=bool(keepdims))
    return total / (np.sum(kept, axis=axis, keepdims=bool(keepdims)) - float(ddof))


def _nanstd(a, axis=None, dtype=None, out=None, ddof=0, keepdims=False, **kw):
    return R["sqrt"](_nanvar(a, axis=axis, out=out, ddof=ddof, keepdims=keepdims))


def _nan_fallback(name: str, plain: Callable[..., Any], takes_q: bool) -> Callable[..., Any]:
    """np.nanmedian / nanpercentile / nanquantile: without NaN, the plain function; with
    NaN over the whole flattened array, the plain function of the other entries."""

    def adapter(a, *args, **kw):
        args = list(args)
        q = [args.pop(0) if args else kw.pop("q")] if takes_q else []
        axis = args.pop(0) if args else kw.pop("axis", None)
        mask = np.isnan(primal(a))
        if not mask.any():
            return plain(a, *q, axis, *args, **kw)
        if axis is None and not kw.get("keepdims") and not args:
            return plain(a[(~mask,)], *q, **kw)
        raise UnsupportedFunctionError(f"np.{name} along an axis of a traced array holding NaN: drop the NaN first")

    return adapter


def _nan_cumulative(name: str, fill: float) -> Callable[..., Any]:
    def adapter(a, axis=None, dtype=None, out=None):
        _no_out(f"np.nan{name}", out=out)
        return getattr(np, name)(R["where"](np.isnan(primal(a)), fill, a), axis=axis)

    return adapter


def _cumulative(name: str, initial: float) -> Callable[..., Any]:
    """np.cumulative_sum / cumulative_prod (numpy 2.1): np.cumsum / cumprod, with the
    initial value first when include_initial=True."""

    def adapter(x, /, *, axis=None, dtype=None, out=None, include_initial=False):
        _no_out(f"np.cumulative_{name}", out=out)
        if axis is None:
            if _ndim(x) > 1:
                raise ValueError("For arrays which have more than one dimension ``axis`` argument is required.")
            axis = 0
        result = getattr(np, "cum" + name)(x, axis=axis)
        if include_initial:
            slot = tuple(1 if i == int(axis) % _ndim(x) else s for i, s in enumerate(shape_of(x)))
            result = R["concatenate"](np.full(slot, initial), result, axis=axis)
        return result

    return adapter


def _running_extreme(ufunc: Any, a: Any, axis: int) -> Any:
    """np.maximum.accumulate / minimum.accumulate: a gather of the running arg-extremum
    (found on the plain values; at ties the later entry)."""
    values = np.asarray(primal(a))
    axis = int(axis) % values.ndim
    positions = np.arange(values.shape[axis]).reshape((-1,) + (1,) * (values.ndim - axis - 1))
    hits = np.where(values == ufunc.accumulate(values, axis=axis), positions, 0)
    return _take_along_axis(a, np.maximum.accumulate(hits, axis=axis), axis)


def _ediff1d(ary, to_end=None, to_begin=None):
    flat = R["reshape"](ary, shape=(-1,))
    parts = [flat[1:] - flat[:-1]]
    if to_begin is not None:
        parts.insert(0, R["reshape"](_as_traced(to_begin), shape=(-1,)))
    if to_end is not None:
        parts.append(R["reshape"](_as_traced(to_end), shape=(-1,)))
    return R["concatenate"](*parts, axis=0)


def _resize(a, new_shape):
    """np.resize: the flattened entries repeated cyclically (a gather)."""
    return R["reshape"](a, shape=(-1,))[(np.resize(np.arange(math.prod(shape_of(a))), new_shape),)]


def _partition(a, kth, axis=-1, kind="introselect", order=None):
    """np.partition: a gather in the order numpy's argpartition gives (the same order)."""
    if order is not None:
        raise UnsupportedFunctionError("np.partition(..., order=) is not supported on traced values")
    if axis is None:
        a, axis = R["reshape"](a, shape=(-1,)), 0
    return _take_along_axis(a, np.argpartition(primal(a), kth, axis=axis, kind=kind), axis)


def _cov(m, y=None, rowvar=True, bias=False, ddof=None, fweights=None, aweights=None, *, dtype=None):
    """np.cov: (X - mean) (X - mean)^T / (n - ddof), rows as variables (rowvar=True)."""
    if fweights is not None or aweights is not None:
        raise UnsupportedFunctionError("np.cov(..., fweights=/aweights=) is not supported on traced values")
    X = _atleast(2)(_as_traced(m))
    if not rowvar and shape_of(X)[0] != 1:
        X = R["transpose"](X)
    if y is not None:
        Y = _atleast(2)(_as_traced(y))
        if not rowvar and shape_of(Y)[0] != 1:
            Y = R["transpose"](Y)
        X = R["concatenate"](X, Y, axis=0)
    ddof = (0 if bias else 1) if ddof is None else int(ddof)
    dev = X - R["mean"](X, axis=1, keepdims=True)
    c = R["matmul"](dev, R["transpose"](dev)) / float(shape_of(X)[1] - ddof)
    return R["reshape"](c, shape=tuple(n for n in shape_of(c) if n != 1))


def _corrcoef(x, y=None, rowvar=True, *, dtype=None):
    """np.corrcoef: cov / (s_i s_j) with s the standard deviations (not clipped to [-1, 1];
    numpy's clip only removes rounding)."""
    c = _cov(x, y, rowvar)
    if _ndim(c) == 0:
        return c / c
    s = R["sqrt"](_diagonal(c))
    return c / s[:, None] / s[None, :]


def _correlate(a, v, mode="valid"):
    """np.correlate of real arrays: the convolution with v reversed (numpy's definition)."""
    return np.convolve(a, _as_traced(v)[::-1], mode=mode)


def _gradient(f, *varargs, axis=None, edge_order=1):
    """np.gradient with uniform scalar spacings: central differences inside, one-sided
    differences of order 1 or 2 at the edges (numpy's formulas)."""
    n = _ndim(f)
    axes = norm_axes(axis, n)
    spacings = [1.0] * len(axes) if not varargs else list(varargs) * (len(axes) if len(varargs) == 1 else 1)
    if len(spacings) != len(axes) or any(np.ndim(primal(d)) for d in spacings):
        raise UnsupportedFunctionError("np.gradient on traced values takes scalar spacings (one, or one per axis)")
    if edge_order not in (1, 2):
        raise ValueError("'edge_order' greater than 2 not supported")
    out = []
    for ax, dx in zip(axes, spacings):
        size = shape_of(f)[ax]
        if size < edge_order + 1:
            raise ValueError(
                "Shape of array too small to calculate a numerical gradient, at least (edge_order + 1) elements are required."
            )

        def at(k):  # noqa: B023 (used within this iteration only)
            return f[_along(ax, k)]

        inner = (at(slice(2, None)) - at(slice(None, -2))) / (2.0 * dx)
        if edge_order == 1:
            first = (at(slice(1, 2)) - at(slice(0, 1))) / dx
            last = (at(slice(-1, None)) - at(slice(-2, -1))) / dx
        else:
            first = (-1.5 * at(slice(0, 1)) + 2.0 * at(slice(1, 2)) - 0.5 * at(slice(2, 3))) / dx
            last = (0.5 * at(slice(-3, -2)) - 2.0 * at(slice(-2, -1)) + 1.5 * at(slice(-1, None))) / dx
        out.append(R["concatenate"](first, inner, last, axis=ax))
    return out[0] if len(out) == 1 else tuple(out)


def _block(arrays):
    """np.block: the innermost lists concatenated along the last axis, the next along the
    one before, ... (every piece first given as many dimensions as the deepest)."""

    def depth(x):
        return 1 + depth(x[0]) if isinstance(x, list) else 0

    def leaves(x):
        return [leaf for item in x for leaf in leaves(item)] if isinstance(x, list) else [x]

    levels = depth(arrays)
    nd = max([levels] + [_ndim(leaf) for leaf in leaves(arrays)])

    def build(x, level):
        if isinstance(x, list):
            return R["concatenate"](*[build(item, level + 1) for item in x], axis=level - levels)
        if isinstance(x, tuple):
            raise TypeError("np.block: arrays is a tuple; only lists can be used to arrange blocks")
        return R["reshape"](x, shape=(1,) * (nd - _ndim(x)) + shape_of(x))

    return build(arrays, 0)


def _delete(arr, obj, axis=None):
    """np.delete: a gather of the entries numpy keeps (np.delete of their positions)."""
    if axis is None:
        arr, axis = R["reshape"](arr, shape=(-1,)), 0
    axis = int(axis) % _ndim(arr)
    return arr[_along(axis, np.delete(np.arange(shape_of(arr)[axis]), primal(obj)))]


def _insert(arr, obj, values, axis=None):
    """np.insert into a 1-D (or flattened) array: a gather from arr followed by the values,
    in the order np.insert gives their positions."""
    if axis is None or _ndim(arr) == 1:
        arr = R["reshape"](arr, shape=(-1,))
    else:
        raise UnsupportedFunctionError("np.insert along an axis of a traced array: concatenate slices instead")
    values = _as_traced(values)
    n, k = shape_of(arr)[0], math.prod(shape_of(values))
    index = np.insert(np.arange(n), primal(obj), n + np.arange(k).reshape(shape_of(values)))
    return R["concatenate"](arr, R["reshape"](values, shape=(-1,)), axis=0)[(index,)]


def _extract(condition, arr):
    flat = R["reshape"](arr, shape=(-1,))
    return flat[(np.flatnonzero(np.asarray(primal(condition))),)]


def _unique(ar, return_index=False, return_inverse=False, return_counts=False, axis=None, **kw):
    """np.unique of a traced array: each distinct value is the entry where it first occurs
    (a gather); equal entries are merged, so the derivative goes to that first entry."""
    if axis is not None:
        raise UnsupportedFunctionError("np.unique(..., axis=) is not supported on traced values")
    plain = np.unique(primal(ar), return_index=True, return_inverse=True, return_counts=True, **kw)
    result = [R["reshape"](ar, shape=(-1,))[(plain[1],)]]
    result += [part for flag, part in zip((return_index, return_inverse, return_counts), plain[1:]) if flag]
    return result[0] if len(result) == 1 else tuple(result)


def _unwrap(p, discont=None, axis=-1, *, period=2 * math.pi):
    """np.unwrap: p plus the multiples of the period numpy adds (piecewise constant)."""
    values = np.asarray(primal(p))
    return p + (np.unwrap(values, discont=discont, axis=axis, period=period) - values)


# --- ufunc methods ----------------------------------------------------------------------------------------


def ufunc_method(ufunc: Any, method: str, inputs: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
    """np.add.reduce / accumulate, np.multiply.reduce / accumulate, np.maximum and
    np.minimum .reduce / .accumulate, and <binary ufunc>.outer, as registry ops."""
    reduce_ops = {np.add: "sum", np.multiply: "prod", np.maximum: "max", np.minimum: "min"}
    accumulate_ops = {np.add: np.cumsum, np.multiply: np.cumprod}
    if method == "outer" and ufunc.nin == 2 and not kwargs:
        a, b = inputs
        return ufunc(R["reshape"](a, shape=shape_of(a) + (1,) * _ndim(b)), b)
    if method in ("reduce", "accumulate") and len(inputs) == 1:
        (a,) = inputs
        axis = kwargs.pop("axis", 0)
        keepdims = kwargs.pop("keepdims", False)
        out, dtype = kwargs.pop("out", None), kwargs.pop("dtype", None)
        if not kwargs and out in (None, (None,)) and _float(dtype):
            if method == "reduce" and ufunc in reduce_ops:
                return R[reduce_ops[ufunc]](a, axis=axis, keepdims=bool(keepdims))
            if method == "accumulate" and ufunc in accumulate_ops and not keepdims:
                return accumulate_ops[ufunc](a, axis=axis)
            if method == "accumulate" and ufunc in (np.maximum, np.minimum) and not keepdims:
                return _running_extreme(ufunc, a, axis)
    return None


def _float(dtype: Any) -> bool:
    return dtype is None or np.issubdtype(np.dtype(dtype), np.floating)


FUNCTIONS.update(
    {
        np.atleast_3d: _atleast(3),
        np.dstack: _dstack,
        np.column_stack: _column_stack,
        np.append: _append,
        np.hsplit: _split_along(1, 1, "hsplit"),
        np.vsplit: _split_along(0, 2, "vsplit"),
        np.dsplit: _split_along(2, 3, "dsplit"),
        np.rollaxis: _rollaxis,
        np.flip: _flip,
        np.fliplr: lambda m: _flip(m, 1),
        np.flipud: lambda m: _flip(m, 0),
        np.rot90: _rot90,
        np.roll: _roll,
        np.tril: _tril,
        np.triu: _triu,
        np.diag: _diag,
        np.diagflat: _diagflat,
        np.kron: _kron,
        np.cross: _cross,
        np.pad: _pad,
        np.select: _select,
        np.nansum: _nan_reduction("sum", 0.0),
        np.nanprod: _nan_reduction("prod", 1.0),
        np.nanmax: _nan_reduction("max", -math.inf),
        np.nanmin: _nan_reduction("min", math.inf),
        np.nanmean: _nanmean,
        np.quantile: _quantile,
        np.percentile: _percentile,
        np.median: _median,
        np.interp: _interp,
        np.take_along_axis: _take_along_axis,
        np.average: _average,
        np.ptp: _ptp,
        np.linspace: _linspace,
        np.logspace: _logspace,
        np.polyval: _polyval,
        np.meshgrid: _meshgrid,
        np.nanvar: _nanvar,
        np.nanstd: _nanstd,
        np.nanmedian: _nan_fallback("nanmedian", _median, takes_q=False),
        np.nanpercentile: _nan_fallback("nanpercentile", _percentile, takes_q=True),
        np.nanquantile: _nan_fallback("nanquantile", _quantile, takes_q=True),
        np.nancumsum: _nan_cumulative("cumsum", 0.0),
        np.nancumprod: _nan_cumulative("cumprod", 1.0),
        np.ediff1d: _ediff1d,
        np.resize: _resize,
        np.partition: _partition,
        np.cov: _cov,
        np.corrcoef: _corrcoef,
        np.correlate: _correlate,
        np.gradient: _gradient,
        np.block: _block,
        np.delete: _delete,
        np.insert: _insert,
        np.extract: _extract,
        np.unique: _unique,
        np.unwrap: _unwrap,
    }
)

NUMPY_2 = {  # functions numpy 1.x lacks (cumulative_*: numpy 2.1)
    "trapezoid": _trapezoid,
    "matrix_transpose": lambda x: R["transpose"](x, axes=tuple(range(_ndim(x) - 2)) + (_ndim(x) - 1, _ndim(x) - 2)),
    "cumulative_sum": _cumulative("sum", 0.0),
    "cumulative_prod": _cumulative("prod", 1.0),
}
FUNCTIONS.update({getattr(np, name): adapter for name, adapter in NUMPY_2.items() if hasattr(np, name)})
if hasattr(np, "vecdot"):  # numpy >= 2.0: a gufunc, reached through __array_ufunc__
    UFUNC_COMPOSITES[np.vecdot] = lambda x1, x2: R["sum"](x1 * x2, axis=-1)
CONSTANT_FUNCTIONS.update({np.nanargmax, np.nanargmin, np.unravel_index, np.ravel_multi_index})
Tracer.flat = property(lambda self: R["reshape"](self, shape=(-1,)), doc="the entries, flattened (read-only)")

__all__ = ["ufunc_method"]
