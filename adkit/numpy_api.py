"""numpy names -> registry ops, through `__array_ufunc__` and `__array_function__`.

Plain numpy code (np.sin, np.sum, `@`, np.where, np.stack, ...) runs unchanged on
adkit's tracers: numpy hands each call to the tracer, and this module maps it to a
registry op, or to a short composition of registry ops for conveniences such as
np.expand_dims. Anything else raises an error that names the function.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import numpy as np

from adkit.errors import UnsupportedFunctionError
from adkit.ops.core import NUMPY_HANDLERS, NUMPY_NAMES, REGISTRY, Tracer, primal, shape_of

R = REGISTRY


def _name(fn: Any) -> str:
    module = getattr(fn, "__module__", None) or "numpy"
    public = ".".join(part for part in module.split(".") if not part.startswith("_"))
    public = "np" + public[len("numpy") :] if public.startswith("numpy") else public
    return f"{public}.{getattr(fn, '__name__', fn)}"


def _unsupported(what: str) -> UnsupportedFunctionError:
    supported = ", ".join(sorted({_name(f) for f in list(NUMPY_NAMES) + list(FUNCTIONS)}))
    return UnsupportedFunctionError(
        f"{what} is not supported on adkit's traced values (no entry in the op registry). "
        f"Rewrite it with supported functions ({supported}), or register an op for it "
        "(see adkit.ops.register)."
    )


def handle_ufunc(ufunc: Any, method: str, inputs: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
    if method != "__call__":
        raise _unsupported(f"np.{ufunc.__name__}.{method}")
    for key in kwargs:
        if key not in ("dtype", "casting") or key == "dtype" and not _is_float_dtype(kwargs[key]):
            raise UnsupportedFunctionError(
                f"np.{ufunc.__name__}(..., {key}=...) is not supported on traced values: "
                "call it without that keyword (results are new arrays)."
            )
    op = NUMPY_NAMES.get(ufunc)
    if op is None:
        composite = UFUNC_COMPOSITES.get(ufunc)
        if composite is None:
            raise _unsupported(f"np.{ufunc.__name__}")
        return composite(*inputs)
    return op(*inputs)


def _is_float_dtype(dtype: Any) -> bool:
    return dtype is None or np.issubdtype(np.dtype(dtype), np.floating)


def handle_function(func: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
    adapter = FUNCTIONS.get(func)
    if adapter is None:
        if func in CONSTANT_FUNCTIONS:
            return func(*_primal_tree(args), **_primal_tree(kwargs))
        raise _unsupported(_name(func))
    return adapter(*args, **kwargs)


def _primal_tree(x: Any) -> Any:
    if isinstance(x, Tracer):
        return primal(x)
    if isinstance(x, (list, tuple)):
        return type(x)(_primal_tree(i) for i in x)
    if isinstance(x, dict):
        return {k: _primal_tree(v) for k, v in x.items()}
    return x


def _no_out(name: str, **kw: Any) -> None:
    for key, value in kw.items():
        if value is not None:
            raise UnsupportedFunctionError(f"{name}(..., {key}=...) is not supported on traced values")


# --- adapters: numpy signature -> registry op -------------------------------------------


def _check_reduction_keywords(np_name: str, dtype: Any, out: Any, kw: dict[str, Any]) -> None:
    """Refuse, naming it, what a reduction on traced values cannot honour: out=, a mask
    (where=), a start value (initial=), or an integer dtype (no derivative)."""
    _no_out(np_name, out=out, **{k: v for k, v in kw.items() if k not in ("initial", "where")})
    if kw.get("initial") is not None or not (kw.get("where") is None or kw.get("where") is True):
        raise UnsupportedFunctionError(
            f"{np_name}(..., initial=/where=) is not supported on traced values: reduce a masked or "
            "padded array instead (np.where(mask, x, 0) for a sum, np.where(mask, x, 1) for a product)"
        )
    if not _is_float_dtype(dtype):
        raise UnsupportedFunctionError(
            f"{np_name}(..., dtype={np.dtype(dtype).name}) on traced values: an integer or non-float "
            "result has no derivative; drop dtype= or pass a float dtype"
        )


def _reduction(op_name: str, np_name: str) -> Callable[..., Any]:
    def adapter(a, axis=None, dtype=None, out=None, keepdims=False, **kw):
        _check_reduction_keywords(np_name, dtype, out, kw)
        return R[op_name](a, axis=axis, keepdims=bool(keepdims))

    return adapter


def _prod(a, axis=None, dtype=None, out=None, keepdims=False, **kw):
    """np.prod: the lecture's product node over the entries along the axes (one op)."""
    _check_reduction_keywords("np.prod", dtype, out, kw)
    return R["prod"](a, axis=axis, keepdims=bool(keepdims))


def _reshape(a, *args, **kw):
    shape = kw.pop("shape", kw.pop("newshape", args[0] if args else None))
    if isinstance(shape, (int, np.integer)):
        shape = (int(shape),)
    return R["reshape"](a, shape=tuple(int(s) for s in shape))


def _transpose(a, axes=None):
    return R["transpose"](a, axes=None if axes is None else tuple(axes))


def _swapaxes(a, axis1, axis2):
    n = len(shape_of(a))
    axes = list(range(n))
    axes[axis1], axes[axis2] = axes[axis2], axes[axis1]
    return R["transpose"](a, axes=tuple(axes))


def _moveaxis(a, source, destination):
    n = len(shape_of(a))
    order = [i for i in range(n) if i != source % n]
    order.insert(destination % n, source % n)
    return R["transpose"](a, axes=tuple(order))


def _concatenate(arrays, axis=0, out=None, dtype=None, casting=None):
    _no_out("np.concatenate", out=out)
    arrays = list(arrays)
    if axis is None:
        arrays = [R["reshape"](x, shape=(-1,)) for x in arrays]
        axis = 0
    return R["concatenate"](*arrays, axis=axis)


def _stack(arrays, axis=0, out=None, dtype=None, casting=None):
    _no_out("np.stack", out=out)
    return R["stack"](*list(arrays), axis=axis)


def _atleast(n):
    def adapter(*arys):
        results = []
        for a in arys:
            s = shape_of(a)
            if len(s) < n:
                s = (1,) * (n - len(s)) + s if n < 3 or len(s) != 2 else s + (1,)
                a = R["reshape"](a, shape=s)
            results.append(a)
        return results[0] if len(results) == 1 else results

    return adapter


def _hstack(tup, dtype=None, casting=None):
    arrs = [_atleast(1)(a) for a in tup]
    return R["concatenate"](*arrs, axis=0 if len(shape_of(arrs[0])) == 1 else 1)


def _vstack(tup, dtype=None, casting=None):
    return R["concatenate"](*[_atleast(2)(a) for a in tup], axis=0)


def _expand_dims(a, axis):
    s = list(shape_of(a))
    axes = (axis,) if isinstance(axis, (int, np.integer)) else tuple(axis)
    n = len(s) + len(axes)
    for ax in sorted(int(x) % n for x in axes):
        s.insert(ax, 1)
    return R["reshape"](a, shape=tuple(s))


def _squeeze(a, axis=None):
    s = shape_of(a)
    if axis is None:
        keep = [d for d in s if d != 1]
    else:
        axes = {int(x) % len(s) for x in ((axis,) if isinstance(axis, (int, np.integer)) else axis)}
        keep = [d for i, d in enumerate(s) if i not in axes]
    return R["reshape"](a, shape=tuple(keep))


def _ravel(a, order="C"):
    return R["reshape"](a, shape=(-1,))


def _dot(a, b, out=None):
    """np.dot: a product with a 0-d operand, matmul up to 2-d, and for n-d operands the sum
    over the last axis of a and the second-to-last of b (the last, when b is 1-d)."""
    _no_out("np.dot", out=out)
    na, nb = len(shape_of(a)), len(shape_of(b))
    if na == 0 or nb == 0:
        return R["mul"](a, b)
    if na <= 2 and nb <= 2:
        return R["matmul"](a, b)
    return _contract_last(a, b, -2 if nb > 1 else -1, "np.dot")


def _contract_last(a, b, b_axis, name):
    """The last axis of a contracted with axis `b_axis` of b: tensordot(a, b, ([-1], [b_axis]))."""
    sa, sb = shape_of(a), shape_of(b)
    if sa[-1] != sb[b_axis]:
        raise ValueError(
            f"{name}: shapes {sa} and {sb} not aligned: {sa[-1]} (dim {len(sa) - 1}) != "
            f"{sb[b_axis]} (dim {b_axis % len(sb)})"
        )
    return _tensordot(a, b, axes=([-1], [b_axis]))


def _outer(a, b, out=None):
    _no_out("np.outer", out=out)
    return R["mul"](R["reshape"](a, shape=(-1, 1)), R["reshape"](b, shape=(1, -1)))


def _inner(a, b):
    """np.inner: a product with a 0-d operand, else the sum over the last axes of both
    (shape a.shape[:-1] + b.shape[:-1])."""
    if len(shape_of(a)) == 0 or len(shape_of(b)) == 0:
        return R["mul"](a, b)
    return _contract_last(a, b, -1, "np.inner")


def _vdot(a, b):
    """np.vdot: the dot product of the flattened operands, which must have equal sizes."""
    na, nb = math.prod(shape_of(a)), math.prod(shape_of(b))
    if na != nb:
        raise ValueError(f"np.vdot: the operands have different sizes ({na} and {nb} entries)")
    return R["sum"](R["mul"](R["reshape"](a, shape=(-1,)), R["reshape"](b, shape=(-1,))))


def _where(condition, x=None, y=None):
    if x is None and y is None:
        return np.where(primal(condition))
    return R["where"](primal(condition), x, y)


def _clip(a, a_min=None, a_max=None, out=None, **kw):
    a_min = kw.pop("min", a_min)
    a_max = kw.pop("max", a_max)
    _no_out("np.clip", out=out)
    if isinstance(a_min, Tracer) or isinstance(a_max, Tracer):
        return R["minimum"](R["maximum"](a, -np.inf if a_min is None else a_min), np.inf if a_max is None else a_max)
    lo = -np.inf if a_min is None else a_min
    hi = np.inf if a_max is None else a_max
    if np.ndim(lo) or np.ndim(hi):
        return R["minimum"](R["maximum"](a, lo), hi)
    return R["clip"](a, lo=float(lo), hi=float(hi))


def _norm(x, ord=None, axis=None, keepdims=False):
    """np.linalg.norm: Euclidean / Frobenius through the registry's norm op (norm'(0) = 0);
    vector norms ord = 1, inf, -inf and p > 0 as the reductions they are."""
    nd = len(shape_of(x))
    vector = isinstance(axis, (int, np.integer)) or (axis is None and nd == 1)
    if ord in (None, "fro") or (ord == 2 and vector):
        return R["norm"](x, axis=axis, keepdims=keepdims)
    if vector and isinstance(ord, (int, float, np.integer, np.floating)) and ord != 0:
        magnitude = R["abs"](x)
        if ord == np.inf:
            return R["max"](magnitude, axis=axis, keepdims=keepdims)
        if ord == -np.inf:
            return R["min"](magnitude, axis=axis, keepdims=keepdims)
        if ord == 1:
            return R["sum"](magnitude, axis=axis, keepdims=keepdims)
        if ord > 0:
            return R["sum"](magnitude ** float(ord), axis=axis, keepdims=keepdims) ** (1.0 / float(ord))
    raise UnsupportedFunctionError(
        f"np.linalg.norm(..., ord={ord!r}) is not supported on traced values: the Euclidean / "
        "Frobenius norm (ord=None) is, and vector norms with ord = 1, inf, -inf or p > 0"
    )


def _broadcast_to(array, shape, subok=False):
    shape = (shape,) if isinstance(shape, (int, np.integer)) else tuple(shape)
    return R["broadcast_to"](array, shape=shape)


def _copy(a, *args, **kwargs):
    return R["pos"](a)


def _trace(a, offset=0, axis1=0, axis2=1, dtype=None, out=None):
    if len(shape_of(a)) != 2 or offset:
        raise UnsupportedFunctionError("np.trace is supported on traced 2-D arrays with offset 0 only")
    return R["sum"](_diagonal(a))


def _logaddexp(x, y):
    m = R["maximum"](x, y)
    return m + R["log1p"](R["exp"](-R["abs"](x - y)))


def _divide(x, y, *args):
    return R["div"](x, y)


def _convolve(a, v, mode="full"):
    """np.convolve: 'full' and 'valid' are registry modes; 'same' is the centred slice of full."""
    if mode not in ("full", "valid", "same"):
        raise ValueError(f"np.convolve mode must be 'full', 'valid' or 'same', got {mode!r}")
    if mode != "same":
        return R["convolve"](a, v, mode=mode)
    n, m = shape_of(a)[0], shape_of(v)[0]
    full = R["convolve"](a, v, mode="full")
    size, start = max(n, m), (min(n, m) - 1) // 2
    return full[start : start + size]


def _einsum(subscripts, *operands, out=None, optimize=False, **kw):
    _no_out("np.einsum", out=out)
    if not isinstance(subscripts, str):
        raise UnsupportedFunctionError("np.einsum on traced values takes the subscripts string form ('ij,jk->ik')")
    return R["einsum"](*operands, subscripts=subscripts)


def _var(a, axis=None, dtype=None, out=None, ddof=0, keepdims=False, **kw):
    """Variance as the mean of squared deviations (divided by n - ddof)."""
    _no_out("np.var", out=out)
    mean = R["mean"](a, axis=axis, keepdims=True)
    dev = a - mean
    shape = shape_of(a)
    n = math.prod(shape[i] for i in _axes(axis, len(shape)))
    if n - ddof <= 0:
        raise ValueError(f"np.var with ddof={ddof} over {n} entries: nothing left to divide by")
    return R["sum"](dev * dev, axis=axis, keepdims=keepdims) / float(n - ddof)


def _std(a, axis=None, dtype=None, out=None, ddof=0, keepdims=False, **kw):
    return R["sqrt"](_var(a, axis=axis, out=out, ddof=ddof, keepdims=keepdims))


def _axes(axis, ndim):
    if axis is None:
        return tuple(range(ndim))
    return tuple(int(a) % ndim for a in ((axis,) if isinstance(axis, (int, np.integer)) else axis))


def _cumprod(a, axis=None, dtype=None, out=None):
    _check_reduction_keywords("np.cumprod", dtype, out, {})
    return R["cumprod"](a, axis=axis)


def _cumsum(a, axis=None, dtype=None, out=None):
    """Cumulative sum as a product with a triangular matrix of ones (linear, so exact)."""
    _no_out("np.cumsum", out=out)
    if axis is None:
        a, axis = R["reshape"](a, shape=(-1,)), 0
    n = shape_of(a)[axis]
    moved = _moveaxis(a, axis, -1)
    summed = R["matmul"](moved, np.triu(np.ones((n, n))))
    return _moveaxis(summed, -1, axis)


def _diff(a, n=1, axis=-1, prepend=None, append=None):
    """np.diff: neighbouring differences along an axis, n times (slices and a subtraction)."""
    if prepend is not None or append is not None:
        raise UnsupportedFunctionError(
            "np.diff(..., prepend=/append=) is not supported on traced values: concatenate first"
        )
    ndim = len(shape_of(a))
    if ndim == 0:
        raise ValueError("diff requires input that is at least one dimensional")
    axis = int(axis) % ndim
    if n < 0:
        raise ValueError(f"order must be non-negative but got {n}")
    lead = (slice(None),) * axis
    for _ in range(int(n)):
        a = a[lead + (slice(1, None),)] - a[lead + (slice(None, -1),)]
    return a


_LETTERS = "abcdefghijklmnopqrstuvwxyz"


def _tensordot(a, b, axes=2):
    """np.tensordot as the einsum it is: contract the given axes of a with those of b."""
    na, nb = len(shape_of(a)), len(shape_of(b))
    if isinstance(axes, (int, np.integer)):
        if not 0 <= axes <= min(na, nb):
            raise ValueError(f"tensordot: axes={axes} does not fit arrays of {na} and {nb} dimensions")
        left, right = list(range(na - axes, na)), list(range(axes))
    else:
        left, right = ([int(i)] if np.ndim(i) == 0 else [int(k) for k in i] for i in axes)
        left, right = [i % na for i in left], [i % nb for i in right]
    if len(left) != len(right) or na + nb > len(_LETTERS):
        raise ValueError("tensordot: the two lists of axes must have the same length")
    sa = list(_LETTERS[:na])
    sb = list(_LETTERS[na : na + nb])
    for i, j in zip(left, right):
        sb[j] = sa[i]
    kept = [c for i, c in enumerate(sa) if i not in left] + [c for j, c in enumerate(sb) if j not in right]
    return R["einsum"](a, b, subscripts=f"{''.join(sa)},{''.join(sb)}->{''.join(kept)}")


def _split(a, indices_or_sections, axis=0, strict=True):
    """np.split / np.array_split: slices of a traced array (each one differentiable)."""
    n = shape_of(a)[axis]
    if isinstance(indices_or_sections, (int, np.integer)):
        sections = int(indices_or_sections)
        if sections <= 0:
            raise ValueError("number sections must be larger than 0.")
        if strict and n % sections:
            raise ValueError("array split does not result in an equal division")
        size, extra = divmod(n, sections)
        bounds = [0]
        for k in range(sections):
            bounds.append(bounds[-1] + size + (1 if k < extra else 0))
    else:
        bounds = [0] + [min(int(i), n) for i in indices_or_sections] + [n]
    lead = (slice(None),) * (axis % len(shape_of(a)))
    return [a[lead + (slice(lo, max(lo, hi)),)] for lo, hi in zip(bounds[:-1], bounds[1:])]


def _sort(a, axis=-1, kind=None, order=None, stable=None):
    """np.sort as a gather: the sorting permutation is found on the plain values (argsort),
    then the traced entries are picked in that order, so each output entry's derivative is
    that of the input entry it came from (at ties, the one argsort put first)."""
    if order is not None:
        raise UnsupportedFunctionError("np.sort(..., order=) (structured arrays) is not supported on traced values")
    if axis is None:
        a, axis = R["reshape"](a, shape=(-1,)), 0
    shape = shape_of(a)
    if not shape:
        raise np.exceptions.AxisError(axis, 0)
    idx = np.argsort(primal(a), axis=axis, kind=kind, stable=stable)
    grids = list(np.indices(shape, sparse=True))
    grids[int(axis) % len(shape)] = idx
    return a[tuple(grids)]


def _tile(a, reps):
    """np.tile: broadcast the array against new axes interleaved with its own, then merge."""
    reps = (int(reps),) if isinstance(reps, (int, np.integer)) else tuple(int(r) for r in reps)
    shape = shape_of(a)
    d = max(len(shape), len(reps))
    shape = (1,) * (d - len(shape)) + tuple(shape)
    reps = (1,) * (d - len(reps)) + reps
    if any(r < 0 for r in reps):
        raise ValueError("negative dimensions are not allowed")
    interleaved = R["reshape"](a, shape=tuple(v for n in shape for v in (1, n)))
    spread = R["broadcast_to"](interleaved, shape=tuple(v for r, n in zip(reps, shape) for v in (r, n)))
    return R["reshape"](spread, shape=tuple(r * n for r, n in zip(reps, shape)))


def _gather(a: Any, index: np.ndarray, axis: Any) -> Any:
    """Entries of a at integer positions `index` along `axis` (flattened when None): a
    getitem, whose derivative adds the cotangents back where they came from."""
    if axis is None:
        a, axis = R["reshape"](a, shape=(-1,)), 0
    ndim = len(shape_of(a))
    return a[(slice(None),) * (int(axis) % ndim) + (index,)]


def _take(a, indices, axis=None, out=None, mode="raise"):
    _no_out("np.take", out=out)
    if mode != "raise":
        raise UnsupportedFunctionError("np.take(..., mode=) is not supported on traced values")
    return _gather(a, np.asarray(primal(indices), dtype=np.intp), axis)


def _repeat(a, repeats, axis=None):
    n = math.prod(shape_of(a)) if axis is None else shape_of(a)[axis]
    return _gather(a, np.repeat(np.arange(n), np.asarray(primal(repeats))), axis)


def _diagonal(a, offset=0, axis1=0, axis2=1):
    """np.diagonal of a traced 2-D array: a gather of (i, i + offset)."""
    shape = shape_of(a)
    if len(shape) != 2 or (axis1, axis2) not in ((0, 1), (-2, -1)):
        raise UnsupportedFunctionError("np.diagonal is supported on traced 2-D arrays (axis1=0, axis2=1) only")
    rows = np.arange(max(0, -offset), min(shape[0], shape[1] - offset))
    return a[(rows, rows + offset)]


def _compress(condition, a, axis=None, out=None):
    _no_out("np.compress", out=out)
    return _gather(a, np.flatnonzero(np.asarray(primal(condition), dtype=bool)), axis)


FUNCTIONS: dict[Any, Callable[..., Any]] = {
    np.linalg.inv: lambda a: R["inv"](a),
    np.linalg.solve: lambda a, b: R["solve"](a, b),
    np.linalg.det: lambda a: R["det"](a),
    np.var: _var,
    np.std: _std,
    np.cumsum: _cumsum,
    np.cumprod: _cumprod,
    np.convolve: _convolve,
    np.einsum: _einsum,
    np.sum: _reduction("sum", "np.sum"),
    np.mean: _reduction("mean", "np.mean"),
    np.max: _reduction("max", "np.max"),
    np.amax: _reduction("max", "np.amax"),
    np.min: _reduction("min", "np.min"),
    np.amin: _reduction("min", "np.amin"),
    np.prod: _prod,
    np.reshape: _reshape,
    np.transpose: _transpose,
    np.swapaxes: _swapaxes,
    np.moveaxis: _moveaxis,
    np.concatenate: _concatenate,
    np.stack: _stack,
    np.hstack: _hstack,
    np.vstack: _vstack,
    np.atleast_1d: _atleast(1),
    np.atleast_2d: _atleast(2),
    np.expand_dims: _expand_dims,
    np.squeeze: _squeeze,
    np.ravel: _ravel,
    np.dot: _dot,
    np.outer: _outer,
    np.inner: _inner,
    np.vdot: _vdot,
    np.where: _where,
    np.clip: _clip,
    np.linalg.norm: _norm,
    np.broadcast_to: _broadcast_to,
    np.copy: _copy,
    np.trace: _trace,
    np.diff: _diff,
    np.tensordot: _tensordot,
    np.sort: _sort,
    np.take: _take,
    np.diagonal: _diagonal,
    np.compress: _compress,
    np.repeat: _repeat,
    np.tile: _tile,
    np.split: _split,
    np.array_split: lambda a, indices_or_sections, axis=0: _split(a, indices_or_sections, axis, strict=False),
}

UFUNC_COMPOSITES: dict[Any, Callable[..., Any]] = {
    np.logaddexp: _logaddexp,
    np.log2: lambda x: R["log"](x) / math.log(2.0),
    np.log10: lambda x: R["log"](x) / math.log(10.0),
    np.exp2: lambda x: R["exp"](x * math.log(2.0)),
    # piecewise constant (derivative 0) and x - floor(x / y) y (derivatives 1 and -floor(x / y))
    np.floor_divide: lambda x, y: R["floor"](x / y),
    np.remainder: lambda x, y: x - R["floor"](x / y) * y,
    np.conjugate: lambda x: R["pos"](x),  # traced values are real
}

# functions whose result carries no derivative: computed on the plain values
CONSTANT_FUNCTIONS = {
    np.shape,
    np.ndim,
    np.size,
    np.zeros_like,
    np.ones_like,
    np.empty_like,
    np.full_like,
    np.argmax,
    np.argmin,
    np.argsort,
    np.argpartition,
    np.searchsorted,
    np.nonzero,
    np.allclose,
    np.isclose,
    np.array_equal,
    np.result_type,
    np.iscomplexobj,
    np.isrealobj,
    np.sign,
    np.round,
    np.around,
    np.count_nonzero,
    np.any,
    np.all,
    np.isfinite,
    np.isnan,
    np.isinf,
    np.floor,
    np.ceil,
}

NUMPY_HANDLERS["ufunc"] = handle_ufunc
NUMPY_HANDLERS["function"] = handle_function

__all__ = ["FUNCTIONS", "handle_function", "handle_ufunc"]
