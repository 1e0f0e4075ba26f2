"""numpy names -> registry ops, through `__array_ufunc__` and `__array_function__`.

Plain numpy code (np.sin, np.sum, `@`, np.where, np.stack, ...) runs unchanged on
adkit's tracers: numpy hands each call to the tracer, and this module maps it to a
registry op, or to a short composition of registry ops for conveniences such as
np.expand_dims. Anything else raises an error that names the function.
"""

from __future__ import annotations

import math
import sys
from collections import namedtuple
from collections.abc import Callable
from typing import Any

import numpy as np

from adkit.errors import AdkitTypeError, AdkitValueError, UnsupportedFunctionError
from adkit.ops.core import NUMPY_HANDLERS, NUMPY_NAMES, REGISTRY, Tracer, is_complex, lift_object, primal, shape_of
from adkit.ops.special import scipy_ufunc

R = REGISTRY


def _public_module(module: str) -> str | None:
    """A module's public path (private parts such as numpy._core dropped), or None."""
    parts = [part for part in module.split(".") if not part.startswith("_")]
    return ".".join(parts) if parts and not module.startswith("_") else None


def _short(module: str) -> str:
    return "np" + module[len("numpy") :] if module == "numpy" or module.startswith("numpy.") else module


def public_names(fn: Any) -> list[str]:
    """Every public dotted name bound to fn, sorted: ["np.abs", "np.absolute"] for numpy's
    absolute ufunc, ["scipy.special.digamma", "scipy.special.psi"] for scipy's psi ufunc.

    A ufunc's __name__ alone would misname it (scipy's digamma calls itself psi, and has
    no __module__): the name is looked up where fn is bound: in its __module__ (and, for
    a ufunc, numpy too), or else in every loaded public module.
    """
    module = getattr(fn, "__module__", None)
    if isinstance(module, str):
        candidates = [module] + (["numpy"] if isinstance(fn, np.ufunc) else [])
    else:
        candidates = [m for m in list(sys.modules) if _public_module(m) == m]
    names = set()
    for m in candidates:
        public = _public_module(m)
        mod = sys.modules.get(public) if public else None
        namespace = getattr(mod, "__dict__", None)
        if not isinstance(namespace, dict):
            continue
        for key, value in list(namespace.items()):
            if value is fn and not key.startswith("_"):
                names.add(f"{_short(public)}.{key}")
    return sorted(names, key=lambda n: (n.count("."), n))


def describe_function(fn: Any) -> str:
    """The function a user called, by the names they can call it by.

    Private functions (scipy.special.zeta calls the ufunc _zeta) are named after the
    public library function that called them; a Python function vectorized with
    np.vectorize / np.frompyfunc is named as such."""
    names = public_names(fn)
    if names:
        return " / ".join(names)
    name = str(getattr(fn, "__name__", fn))
    if name.endswith(" (vectorized)"):
        return f"the Python function {name[: -len(' (vectorized)')]} vectorized by np.vectorize / np.frompyfunc"
    caller = _public_caller()
    kind = "ufunc" if isinstance(fn, np.ufunc) else "function"
    return f"{caller} (through its internal {kind} {name})" if caller else f"the {kind} {name}"


def _public_caller() -> str | None:
    """`module.function` of the first caller outside adkit and numpy, when it is a
    library's public function (the user's own code is not renamed)."""
    frame = sys._getframe(1)
    while frame is not None and frame.f_globals.get("__name__", "").split(".")[0] in ("adkit", "numpy"):
        frame = frame.f_back
    if frame is None:
        return None
    public = _public_module(frame.f_globals.get("__name__", ""))
    namespace = getattr(sys.modules.get(public or ""), "__dict__", {})
    candidate = namespace.get(frame.f_code.co_name)
    if getattr(candidate, "__code__", None) is frame.f_code:
        return f"{_short(public)}.{frame.f_code.co_name}"
    return None


def supported_names() -> list[str]:
    """Every numpy name that works on traced values, sorted: generated from the op
    registry (`NUMPY_NAMES`) and this module's tables, so that the unsupported-function
    message and the README's list (tests/test_refusals.py compares them) cannot drift."""
    functions = list(NUMPY_NAMES) + list(FUNCTIONS) + list(UFUNC_COMPOSITES) + list(CONSTANT_FUNCTIONS)
    return sorted({name for fn in functions for name in public_names(fn)}, key=lambda n: (n.count("."), n))


def _unsupported(what: str) -> UnsupportedFunctionError:
    return UnsupportedFunctionError(
        f"{what} is not supported on adkit's traced values (no entry in the op registry). "
        f"Rewrite it with supported functions ({', '.join(supported_names())}), or register an op for it "
        "(see adkit.ops.register)."
    )


def handle_ufunc(ufunc: Any, method: str, inputs: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
    inputs = tuple(lift_object(x) for x in inputs)
    if method != "__call__":
        from adkit.numpy_arrays import ufunc_method

        result = ufunc_method(ufunc, method, inputs, dict(kwargs))
        if result is None:
            raise _unsupported(f"{describe_function(ufunc)}.{method}")
        return result
    for key in kwargs:
        if key == "out":
            raise UnsupportedFunctionError(
                f"{describe_function(ufunc)}(..., out=...) is not supported on traced values, nor an in-place "
                "operator on a plain numpy array (a += x): the result would be stored in a plain array and "
                "lose its derivative. Write a = a + x (a new array) instead."
            )
        if key not in ("dtype", "casting") or key == "dtype" and not _is_float_dtype(kwargs[key]):
            raise UnsupportedFunctionError(
                f"{describe_function(ufunc)}(..., {key}=...) is not supported on traced values: "
                "call it without that keyword (results are new arrays)."
            )
    op = NUMPY_NAMES.get(ufunc)
    if op is None:
        composite = UFUNC_COMPOSITES.get(ufunc) or scipy_ufunc(ufunc)  # scipy.special's ufuncs
        if composite is None:
            raise _unsupported(describe_function(ufunc))
        return composite(*inputs)
    return op(*inputs)


def _is_float_dtype(dtype: Any) -> bool:
    return dtype is None or np.issubdtype(np.dtype(dtype), np.floating)


def handle_function(func: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
    args = _lift_tree(args)
    adapter = FUNCTIONS.get(func)
    if adapter is None:
        if func in CONSTANT_FUNCTIONS:
            return func(*_primal_tree(args), **_primal_tree(kwargs))
        raise _unsupported(describe_function(func))
    return adapter(*args, **kwargs)


def _lift_tree(x: Any) -> Any:
    """Object arrays of traced values (np.array([x, y])) inside the arguments, stacked."""
    if isinstance(x, (list, tuple)):
        return type(x)(_lift_tree(i) for i in x)
    return lift_object(x)


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
    src = [int(s) % n for s in np.atleast_1d(source)]
    dst = [int(d) % n for d in np.atleast_1d(destination)]
    if len(src) != len(dst):
        raise ValueError("`source` and `destination` arguments must have the same number of elements")
    order = [i for i in range(n) if i not in src]
    for d, s in sorted(zip(dst, src)):
        order.insert(d, s)
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
            if len(s) < n:  # numpy's rule: (N,) -> (1, N) -> (1, N, 1); (M, N) -> (M, N, 1)
                s = (1,) * (n - len(s)) + s if n < 3 or not s else (1,) * (2 - len(s)) + s + (1,)
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
        raise AdkitValueError(f"np.vdot: the operands have different sizes ({na} and {nb} entries)")
    if is_complex(a):
        a = R["conj"](a)  # np.vdot conjugates its first argument
    return R["sum"](R["mul"](R["reshape"](a, shape=(-1,)), R["reshape"](b, shape=(-1,))))


def _where(condition, x=None, y=None):
    if x is None and y is None:
        return np.where(primal(condition))
    return R["where"](primal(condition), x, y)


def _clip(a, a_min=None, a_max=None, out=None, **kw):
    a_min = kw.pop("min", a_min)
    a_max = kw.pop("max", a_max)
    _no_out("np.clip", out=out)
    lo = -np.inf if a_min is None else a_min
    hi = np.inf if a_max is None else a_max
    if isinstance(lo, Tracer) or isinstance(hi, Tracer) or np.ndim(lo) or np.ndim(hi):
        # the clip op's policy for traced or array bounds: a's derivative is 1 on the closed
        # interval [lo, hi] (a tie with a bound goes to a), a bound's where it is active
        return R["where"](R["less"](a, lo), lo, R["where"](R["greater"](a, hi), hi, a))
    return R["clip"](a, lo=float(lo), hi=float(hi))


def _norm(x, ord=None, axis=None, keepdims=False):
    """np.linalg.norm: Euclidean / Frobenius through the registry's norm op (norm'(0) = 0);
    vector norms ord = 1, inf, -inf and p > 0 as the reductions they are."""
    nd = len(shape_of(x))
    vector = isinstance(axis, (int, np.integer)) or (axis is None and nd == 1)
    if is_complex(x) and (vector or ord not in (2, -2, "nuc")):
        x = R["abs"](x)  # these norms of complex entries are the same norms of their moduli
    if not vector and ord is not None and (axis is None and nd == 2 or axis is not None and len(axis) == 2):
        return _matrix_norm(x, ord, (-2, -1) if axis is None else tuple(axis), keepdims)
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
    _no_out("np.trace", out=out)
    return R["sum"](_diagonal(a, offset, axis1, axis2), axis=-1)


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


def _einsum(*operands, out=None, optimize=False, dtype=None, order="K", casting="safe"):
    """np.einsum in both of numpy's forms (a subscripts string, or operands each followed by a
    list of integer labels); `optimize` is accepted and ignored (the value is the same)."""
    from adkit.ops.einsum import from_operand_lists

    _no_out("np.einsum", out=out)
    if not _is_float_dtype(dtype):
        raise UnsupportedFunctionError(f"np.einsum(..., dtype={dtype}) on traced values: only float dtypes")
    if isinstance(operands[0], str):
        subscripts, operands = operands[0], list(operands[1:])
    else:
        subscripts, operands = from_operand_lists(operands)
    return R["einsum"](*operands, subscripts=subscripts)


def _var(a, axis=None, dtype=None, out=None, ddof=0, keepdims=False, **kw):
    """Variance as the mean of squared deviations (divided by n - ddof)."""
    _no_out("np.var", out=out)
    mean = R["mean"](a, axis=axis, keepdims=True)
    dev = a - mean
    shape = shape_of(a)
    n = math.prod(shape[i] for i in _axes(axis, len(shape)))
    if n - ddof <= 0:
        raise AdkitValueError(f"np.var with ddof={ddof} over {n} entries: nothing left to divide by")
    square = R["real"](dev * R["conj"](dev)) if is_complex(dev) else dev * dev  # |dev|^2: np.var is real
    return R["sum"](square, axis=axis, keepdims=keepdims) / float(n - ddof)


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


def _vander(x, N=None, increasing=False):
    """np.vander: columns x^(N-1) ... x^0 (or increasing), as powers of the column x[:, None]."""
    n = shape_of(x)[0] if N is None else int(N)
    powers = np.arange(n, dtype=float) if increasing else np.arange(n - 1, -1, -1, dtype=float)
    return R["pow"](R["reshape"](x, shape=(-1, 1)), powers)


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
    """np.diagonal: axis1 and axis2 moved last, then a gather of (i, i + offset) (numpy
    puts the diagonal last too)."""
    n = len(shape_of(a))
    if n < 2:
        raise ValueError("diag requires an array of at least two dimensions")
    a1, a2 = int(axis1) % n, int(axis2) % n
    if a1 == a2:
        raise ValueError("axis1 and axis2 cannot be the same")
    moved = R["transpose"](a, axes=tuple(i for i in range(n) if i not in (a1, a2)) + (a1, a2))
    rows_n, cols_n = shape_of(moved)[-2:]
    start = max(0, -offset)
    rows = np.arange(start, max(start, min(rows_n, cols_n - offset)))
    return moved[(Ellipsis, rows, rows + offset)]


def _compress(condition, a, axis=None, out=None):
    _no_out("np.compress", out=out)
    return _gather(a, np.flatnonzero(np.asarray(primal(condition), dtype=bool)), axis)


# --- np.linalg: decompositions unpack their registry op's packed value --------------------------

SlogdetResult = namedtuple("SlogdetResult", ["sign", "logabsdet"])
EighResult = namedtuple("EighResult", ["eigenvalues", "eigenvectors"])
EigResult = namedtuple("EigResult", ["eigenvalues", "eigenvectors"])
SVDResult = namedtuple("SVDResult", ["U", "S", "Vh"])
QRResult = namedtuple("QRResult", ["Q", "R"])


def _slogdet(a):
    """(sign, log|det|): the sign is piecewise constant (a plain value), log|det| the registry op."""
    return SlogdetResult(np.linalg.slogdet(primal(a))[0], R["logabsdet"](a))


def _cholesky(a, /, *, upper=False):
    if upper:  # numpy reads the upper triangle and returns L^T
        from adkit.ops.linalg import mT

        return mT(R["cholesky"](mT(a)))
    return R["cholesky"](a)


def _eigh(a, UPLO="L"):
    out = R["eigh"](a, UPLO=UPLO)
    return EighResult(out[..., 0, :], out[..., 1:, :])


def _eig(a):
    out = R["eig"](a)
    return EigResult(out[..., 0, :], out[..., 1:, :])


def _svd(a, full_matrices=True, compute_uv=True, hermitian=False):
    """np.linalg.svd: (U, S, Vh) unpacked from the svd op, or the svdvals op for compute_uv=False."""
    from adkit.ops.linalg import mT, unpack_svd

    if not compute_uv:
        return R["svdvals"](a)  # hermitian=True gives the same values
    if hermitian:
        raise UnsupportedFunctionError(
            "np.linalg.svd(..., hermitian=True) is not supported on traced values: numpy then builds U and Vh "
            "from an eigendecomposition, with other signs than the general SVD; use hermitian=False (the same "
            "singular values) or np.linalg.eigh"
        )
    u, s, v = unpack_svd(R["svd"](a, full_matrices=bool(full_matrices)), shape_of(a), bool(full_matrices))
    return SVDResult(u, s, mT(v))


def _qr(a, mode="reduced"):
    """np.linalg.qr, modes 'reduced', 'complete' (square or wide: the same) and 'r'. A wide matrix
    [X Y] is X = Q R_X (square) and R = [R_X, Q^T Y], as numpy's Householder steps give."""
    from adkit.ops.linalg import mT

    m, n = shape_of(a)[-2:]
    if mode not in ("reduced", "complete", "r") or (mode == "complete" and m > n):
        raise UnsupportedFunctionError(
            f"np.linalg.qr(..., mode={mode!r}) is not supported on traced values: modes 'reduced' and 'r' are "
            "('complete' for square or wide matrices; for a tall one its extra columns are an arbitrary basis)"
        )
    if m < n:
        q, r_x = _qr(a[..., :, :m])
        r = R["concatenate"](r_x, R["matmul"](mT(q), a[..., :, m:]), axis=-1)
    else:
        out = R["qr"](a)
        q, r = out[..., :m, :], out[..., m:, :]
    return r if mode == "r" else QRResult(q, r)


def _pinv(a, rcond=None, hermitian=False, **kw):
    """np.linalg.pinv of a full-rank matrix (the derivative refuses a rank-deficient one). A
    cut-off (rcond / rtol) only changes the value of a matrix with tiny singular values: refused."""
    cutoff = kw.get("rtol", rcond)
    if cutoff is not None:
        s = np.linalg.svd(primal(a), compute_uv=False)
        if np.any(s[..., -1:] <= np.asarray(cutoff)[..., None] * s[..., :1]):
            raise UnsupportedFunctionError(
                "np.linalg.pinv(..., rcond/rtol=) cuts off singular values of this matrix: the pseudo-inverse of a "
                "rank-deficient matrix has no derivative (adkit differentiates the full-rank case)"
            )
    return R["pinv"](a)


def _matrix_power(a, n):
    """A^n by repeated squaring (matmuls); n < 0 through the inverse; A^0 = I (a constant)."""
    if not isinstance(n, (int, np.integer)):
        raise TypeError(f"np.linalg.matrix_power: the exponent must be an integer, got {n!r}")
    shape = shape_of(a)
    if len(shape) < 2 or shape[-1] != shape[-2]:
        raise np.linalg.LinAlgError(f"np.linalg.matrix_power takes square matrices, got shape {shape}")
    n = int(n)
    if n == 0:
        return np.broadcast_to(np.eye(shape[-1]), shape).copy()
    if n < 0:
        a, n = R["inv"](a), -n
    result = None
    while n:
        if n & 1:
            result = a if result is None else R["matmul"](result, a)
        n >>= 1
        if n:
            a = R["matmul"](a, a)
    return result


def _multi_dot(arrays, *, out=None):
    _no_out("np.linalg.multi_dot", out=out)
    arrays = list(arrays)
    if len(arrays) < 2:
        raise ValueError("np.linalg.multi_dot expects at least two arrays")
    result = arrays[0]
    for x in arrays[1:]:
        result = R["matmul"](result, x)
    return result


def _lstsq(a, b, rcond=None):
    """np.linalg.lstsq of a full-rank 2-D a: x = pinv(a) b (the minimum-norm solution when a is
    wide), numpy's residuals (squared residual norms when m > n), rank and singular values."""
    m, n = shape_of(a)[-2:]
    rank = int(np.linalg.matrix_rank(primal(a)))
    if rank < min(m, n) or len(shape_of(a)) != 2:
        raise UnsupportedFunctionError(
            "np.linalg.lstsq on traced values takes one 2-D matrix of full rank: the least-squares "
            "solution of a rank-deficient system has no derivative"
        )
    x = R["matmul"](R["pinv"](a), b)
    if m > n:
        r = b - R["matmul"](a, x)
        residuals = R["sum"](r * r, axis=0)
        residuals = R["reshape"](residuals, shape=(1,)) if len(shape_of(b)) == 1 else residuals
    else:
        residuals = np.empty((0,))
    return x, residuals, rank, R["svdvals"](a)  # a plain tuple, as numpy's


def _cond(x, p=None):
    if p not in (None, 2, -2):
        return _matrix_norm(x, p, (-2, -1), False) * _matrix_norm(R["inv"](x), p, (-2, -1), False)
    s = R["svdvals"](x)
    ratio = s[..., 0] / s[..., -1]
    return 1.0 / ratio if p == -2 else ratio


def _vector_norm(x, axis, keepdims, ord):
    """np.linalg.vector_norm: a vector norm over all entries (axis=None) or the given axis."""
    if axis is not None:
        return _norm(x, ord, axis, keepdims)
    result = _norm(R["reshape"](x, shape=(-1,)), ord, 0, False)
    return R["reshape"](result, shape=(1,) * len(shape_of(x))) if keepdims else result


def _matrix_norm(x, ord, axes, keepdims):
    """Matrix norms over two axes: 'fro', 'nuc' / 2 / -2 (singular values), 1 / -1 (column sums
    of |x|), inf / -inf (row sums)."""
    nd = len(shape_of(x))
    row_axis, col_axis = (int(ax) % nd for ax in axes)
    if ord in (None, "fro"):
        result = R["norm"](x, axis=(row_axis, col_axis), keepdims=False)
    elif ord in ("nuc", 2, -2):
        batch = tuple(i for i in range(nd) if i not in (row_axis, col_axis))
        s = R["svdvals"](R["transpose"](x, axes=batch + (row_axis, col_axis)))
        result = R["sum"](s, axis=-1) if ord == "nuc" else (s[..., 0] if ord == 2 else s[..., -1])
    elif ord in (1, -1, np.inf, -np.inf):
        summed, other = (row_axis, col_axis) if ord in (1, -1) else (col_axis, row_axis)
        sums = R["sum"](R["abs"](x), axis=summed, keepdims=True)
        result = (R["max"] if ord > 0 else R["min"])(sums, axis=other, keepdims=True)
        result = R["reshape"](
            result, shape=tuple(n for i, n in enumerate(shape_of(x)) if i not in (row_axis, col_axis))
        )
    else:
        raise ValueError(f"np.linalg.norm: invalid norm order {ord!r} for matrices")
    if keepdims:
        shape = tuple(1 if i in (row_axis, col_axis) else n for i, n in enumerate(shape_of(x)))
        result = R["reshape"](result, shape=shape)
    return result


def _fft(name: str, c2r: bool = False, ndim: int | None = None) -> Callable[..., Any]:
    """np.fft.<1-d / 2-d / n-d transform> as the n-d op with numpy's (n, axis) or (s, axes)."""

    def adapter(a, *args, **kw):
        if ndim == 1:
            n, axis, norm = _fft_args(args, kw, ("n", "axis", "norm"), (None, -1, None))
            s, axes = (None if n is None else (n,)), (axis,)
        else:
            s, axes, norm = _fft_args(args, kw, ("s", "axes", "norm"), (None, (-2, -1) if ndim == 2 else None, None))
        return R[name](a, s=None if s is None else tuple(s), axes=None if axes is None else tuple(axes), norm=norm)

    return adapter


def _fft_args(
    args: tuple[Any, ...], kw: dict[str, Any], names: tuple[str, ...], defaults: tuple[Any, ...]
) -> list[Any]:
    if kw.pop("out", None) is not None:
        raise UnsupportedFunctionError("np.fft.*(..., out=...) is not supported on traced values")
    values = list(args) + [kw.pop(n, d) for n, d in zip(names[len(args) :], defaults[len(args) :])]
    if kw:
        raise UnsupportedFunctionError(f"np.fft: keyword(s) {sorted(kw)} are not supported on traced values")
    return values


FFT_FUNCTIONS: dict[Any, Callable[..., Any]] = {
    np.fft.fft: _fft("fftn", ndim=1),
    np.fft.ifft: _fft("ifftn", ndim=1),
    np.fft.rfft: _fft("rfftn", ndim=1),
    np.fft.irfft: _fft("irfftn", ndim=1),
    np.fft.fft2: _fft("fftn", ndim=2),
    np.fft.ifft2: _fft("ifftn", ndim=2),
    np.fft.rfft2: _fft("rfftn", ndim=2),
    np.fft.irfft2: _fft("irfftn", ndim=2),
    np.fft.fftn: _fft("fftn"),
    np.fft.ifftn: _fft("ifftn"),
    np.fft.rfftn: _fft("rfftn"),
    np.fft.irfftn: _fft("irfftn"),
    np.fft.fftshift: lambda x, axes=None: R["fftshift"](x, axes=axes),
    np.fft.ifftshift: lambda x, axes=None: R["ifftshift"](x, axes=axes),
}

FUNCTIONS: dict[Any, Callable[..., Any]] = {
    np.linalg.inv: lambda a: R["inv"](a),
    np.linalg.solve: lambda a, b: R["solve"](a, b),
    np.linalg.det: lambda a: R["det"](a),
    np.linalg.slogdet: _slogdet,
    np.linalg.cholesky: _cholesky,
    np.linalg.eigh: _eigh,
    np.linalg.eigvalsh: lambda a, UPLO="L": R["eigvalsh"](a, UPLO=UPLO),
    np.linalg.eig: _eig,
    np.linalg.eigvals: lambda a: _eig(a).eigenvalues,
    np.linalg.svd: _svd,
    np.linalg.qr: _qr,
    np.linalg.pinv: _pinv,
    np.linalg.matrix_power: _matrix_power,
    np.linalg.multi_dot: _multi_dot,
    np.linalg.lstsq: _lstsq,
    np.linalg.cond: _cond,
    np.var: _var,
    np.std: _std,
    np.cumsum: _cumsum,
    np.cumprod: _cumprod,
    np.convolve: _convolve,
    np.einsum: _einsum,
    np.sum: _reduction("sum", "np.sum"),
    np.real: lambda val: R["real"](val),
    **FFT_FUNCTIONS,
    np.imag: lambda val: R["imag"](val),
    np.angle: lambda z, deg=False: R["angle"](z, deg=bool(deg)),
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
    np.vander: _vander,
    np.split: _split,
    np.array_split: lambda a, indices_or_sections, axis=0: _split(a, indices_or_sections, axis, strict=False),
    np.sinc: lambda x: R["sinc"](x),
}

if hasattr(np.linalg, "svdvals"):  # numpy >= 2
    FUNCTIONS[np.linalg.svdvals] = lambda x: R["svdvals"](x)
    FUNCTIONS[np.linalg.matrix_norm] = lambda x, keepdims=False, ord="fro": _matrix_norm(x, ord, (-2, -1), keepdims)
    FUNCTIONS[np.linalg.vector_norm] = lambda x, axis=None, keepdims=False, ord=2: _vector_norm(x, axis, keepdims, ord)

UFUNC_COMPOSITES: dict[Any, Callable[..., Any]] = {
    np.log2: lambda x: R["log"](x) / math.log(2.0),
    np.log10: lambda x: R["log"](x) / math.log(10.0),
    np.exp2: lambda x: R["exp"](x * math.log(2.0)),
    # piecewise constant (derivative 0) and x - floor(x / y) y (derivatives 1 and -floor(x / y))
    np.floor_divide: lambda x, y: R["floor"](x / y),
    np.remainder: lambda x, y: x - R["floor"](x / y) * y,
    # C's fmod: x - trunc(x / y) y (derivatives 1 and -trunc(x / y), as for remainder)
    np.fmod: lambda x, y: x - R["trunc"](x / y) * y,
    np.ldexp: lambda x, n: x * _power_of_two(n),
}


def _power_of_two(n: Any) -> Any:
    """2**n for np.ldexp's integer exponent (exact): a traced exponent is not an integer."""
    if isinstance(n, Tracer):
        raise AdkitTypeError("np.ldexp(x, n) needs an integer exponent n, not a traced value: use x * 2.0 ** n")
    return np.ldexp(1.0, n)


def _nan_to_num(x: Any, copy: bool = True, nan: float = 0.0, posinf: Any = None, neginf: Any = None) -> Any:
    """Finite entries pass through (derivative 1); inf and NaN become numbers that do not
    depend on x (derivative 0)."""
    values = primal(x)
    return R["where"](np.isfinite(values), x, np.nan_to_num(values, nan=nan, posinf=posinf, neginf=neginf))


def _real_if_close(a: Any, tol: float = 100) -> Any:
    """numpy's rule: the real part when every imaginary part is below tol machine epsilons."""
    if not is_complex(a):
        return a
    values = primal(a)
    eps = np.finfo(values.dtype).eps if tol > 1 else 1.0
    return R["real"](a) if np.all(np.abs(values.imag) < tol * eps) else a


FUNCTIONS[np.nan_to_num] = _nan_to_num
FUNCTIONS[np.real_if_close] = _real_if_close

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
    np.fix,
    np.linalg.matrix_rank,
}

NUMPY_HANDLERS["ufunc"] = handle_ufunc
NUMPY_HANDLERS["function"] = handle_function


def _ufunc_method(ufunc: Any) -> Callable[..., Any]:
    def method(self: Tracer, *others: Any) -> Any:
        return ufunc(self, *others)

    method.__name__ = ufunc.__name__
    return method


# numpy's object loops call x.sin(), x.exp(), ... on each entry of an object array
# (np.sin(np.array([x, y]))): on a traced entry that is the ufunc itself
for _ufunc in list(NUMPY_NAMES) + list(UFUNC_COMPOSITES):
    if isinstance(_ufunc, np.ufunc) and not hasattr(Tracer, _ufunc.__name__):
        setattr(Tracer, _ufunc.__name__, _ufunc_method(_ufunc))


__all__ = ["FUNCTIONS", "describe_function", "handle_function", "handle_ufunc", "public_names", "supported_names"]
