"""Structural array ops: JVP and VJP overrides where scalar partials do not fit.

Every rule is written with registry ops, so it is differentiable itself. A JVP rule gets
`nb` (0 or 1): the number of leading batch axes on each tangent (forward mode's vector
mode carries a whole basis of directions in one pass). A VJP rule gets `needed`, one flag
per input, and returns None where no cotangent is needed.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from adkit.ops.core import REGISTRY, Op, register, shape_of
from adkit.ops.elementwise import REAL, sp_norm

# --- helpers (plain functions over registry ops) ---------------------------------


def _op(name: str) -> Op:
    return REGISTRY[name]


def norm_axes(axis: Any, ndim: int) -> tuple[int, ...]:
    """Axis argument as a sorted tuple of non-negative axes (None: all axes)."""
    if axis is None:
        return tuple(range(ndim))
    if isinstance(axis, (int, np.integer)):
        axis = (axis,)
    out = []
    for a in axis:
        a = int(a)
        if not -ndim <= a < ndim:
            raise np.exceptions.AxisError(a, ndim)
        out.append(a % ndim)
    return tuple(sorted(out))


def kept_shape(shape: tuple[int, ...], axes: tuple[int, ...]) -> tuple[int, ...]:
    return tuple(1 if i in axes else n for i, n in enumerate(shape))


def unbroadcast(g: Any, shape: tuple[int, ...], nb: int = 0) -> Any:
    """Sum `g` down to `shape` (undo numpy broadcasting), keeping `nb` leading axes."""
    gshape = shape_of(g)
    target = gshape[:nb] + tuple(shape)
    if gshape == target:
        return g
    lead = len(gshape) - len(target)
    axes = tuple(range(nb, nb + lead))
    axes += tuple(nb + lead + i for i, n in enumerate(shape) if n == 1 and gshape[nb + lead + i] != 1)
    if axes:
        g = _op("sum")(g, axis=axes, keepdims=False)
    if shape_of(g) != target:
        g = _op("reshape")(g, shape=target)
    return g


def expand_to(t: Any, ndim: int, nb: int) -> Any:
    """Insert axes after the `nb` batch axes so that `t` has `ndim` non-batch axes."""
    s = shape_of(t)
    missing = ndim - (len(s) - nb)
    if missing <= 0:
        return t
    return _op("reshape")(t, shape=s[:nb] + (1,) * missing + s[nb:])


def _swap_last(x: Any) -> Any:
    n = len(shape_of(x))
    return _op("transpose")(x, axes=tuple(range(n - 2)) + (n - 1, n - 2))


def _is_basic_index(index: Any) -> bool:
    items = index if isinstance(index, tuple) else (index,)
    return all(isinstance(i, (int, np.integer, slice)) or i is None or i is Ellipsis for i in items)


def per_direction(t: Any, nb: int, fn: Any) -> Any:
    """Apply a linear map to a tangent, or to each direction of a batched tangent (nb = 1)."""
    if not nb:
        return fn(t)
    return _op("stack")(*[fn(t[i]) for i in range(shape_of(t)[0])], axis=0)


def _shift_axis(axis: int, ndim: int, nb: int) -> int:
    return (axis % ndim) + nb


# --- sympy forms of structural ops: they act on numpy object arrays of sympy expressions ---


def obj(x: Any) -> np.ndarray:
    """A sympy expression or object array as a numpy object array."""
    return np.asarray(x, dtype=object)


def obj_result(a: Any) -> Any:
    a = np.asarray(a, dtype=object)
    return a[()] if a.ndim == 0 else a


def obj_reduce(x: Any, axis: Any, keepdims: bool, fn: Any) -> Any:
    """Reduce an object array over `axis` with fn(list of entries) -> entry."""
    x = obj(x)
    axes = norm_axes(axis, x.ndim)
    rest = [i for i in range(x.ndim) if i not in axes]
    reduced = math.prod(x.shape[i] for i in axes)
    flat = np.transpose(x, rest + list(axes)).reshape(math.prod(x.shape[i] for i in rest), reduced)
    out = np.empty(flat.shape[0], dtype=object)
    for r in range(flat.shape[0]):
        out[r] = fn(list(flat[r]))
    out = out.reshape([x.shape[i] for i in rest])
    if keepdims:
        out = out.reshape(kept_shape(x.shape, axes))
    return obj_result(out)


def _sp_sum(sp, x, axis=None, keepdims=False):
    return obj_reduce(x, axis, keepdims, lambda v: sp.Add(*v))


def _sp_mean(sp, x, axis=None, keepdims=False):
    n = math.prod(obj(x).shape[a] for a in norm_axes(axis, obj(x).ndim))
    return obj_reduce(x, axis, keepdims, lambda v: sp.Add(*v) / n)


def _sp_elementwise(fn, *xs):
    arrays = np.broadcast_arrays(*[obj(x) for x in xs])
    out = np.empty(arrays[0].shape, dtype=object)
    for idx in np.ndindex(out.shape):
        out[idx] = fn(*[a[idx] for a in arrays])
    return obj_result(out)


def _sp_softmax(sp, x, axis=-1):
    e = _sp_elementwise(sp.exp, x)
    return obj_result(obj(e) / obj(obj_reduce(e, axis, True, lambda v: sp.Add(*v))))


def _sp_index_add(sp, g, index=(), shape=()):
    z = np.full(shape, sp.Integer(0), dtype=object)
    np.add.at(z, index, obj(g))
    return obj_result(z)


# --- matmul ----------------------------------------------------------------------


def _matmul_jvp(tangents, xs, out, nb):
    a, b = xs
    ta, tb = tangents
    matmul, reshape = _op("matmul"), _op("reshape")
    sa, sb = shape_of(a), shape_of(b)
    a_vec, b_vec = len(sa) == 1, len(sb) == 1
    a2 = (1,) + sa if a_vec else sa
    b2 = sb + (1,) if b_vec else sb
    nd = max(len(a2), len(b2))
    result = None
    for t, other, t_shape, other_first in ((ta, b, a2, False), (tb, a, b2, True)):
        if t is None:
            continue
        bshape = shape_of(t)[:nb]
        t = reshape(t, shape=bshape + (1,) * (nd - len(t_shape)) + t_shape) if nb else reshape(t, shape=t_shape)
        o = reshape(other, shape=b2 if other_first is False else a2)
        term = matmul(o, t) if other_first else matmul(t, o)
        result = term if result is None else result + term
    s = shape_of(result)
    final = s[:nb] + shape_of(out)
    return reshape(result, shape=final) if s != final else result


def _matmul_vjp(g, xs, out, needed):
    a, b = xs
    matmul, reshape = _op("matmul"), _op("reshape")
    sa, sb = shape_of(a), shape_of(b)
    a2 = (1,) + sa if len(sa) == 1 else sa
    b2 = sb + (1,) if len(sb) == 1 else sb
    so = shape_of(out)
    o2 = so
    if len(sa) == 1:
        o2 = o2[:-1] + (1,) + o2[-1:] if len(sb) != 1 else (1,) + o2
    if len(sb) == 1:
        o2 = o2 + (1,)
    g2 = reshape(g, shape=o2)
    ga = gb = None
    if needed[0]:
        ga = unbroadcast(matmul(g2, _swap_last(reshape(b, shape=b2))), a2)
        ga = reshape(ga, shape=sa)
    if needed[1]:
        gb = unbroadcast(matmul(_swap_last(reshape(a, shape=a2)), g2), b2)
        gb = reshape(gb, shape=sb)
    return ga, gb


def _matmul_examples(rng):
    r = lambda *s: rng.uniform(-1, 1, size=s)  # noqa: E731
    return [
        ((r(3, 4), r(4, 2)), {}),
        ((r(4), r(4, 3)), {}),
        ((r(3, 4), r(4)), {}),
        ((r(4), r(4)), {}),
        ((r(2, 3, 4), r(4, 2)), {}),
        ((r(3, 4), r(2, 4, 5)), {}),
    ]


matmul = register(
    Op(
        "matmul",
        np.matmul,
        vjp_needs_out=False,
        args=("x", "y"),
        jvp=_matmul_jvp,
        vjp=_matmul_vjp,
        multilinear=True,
        sympy=lambda sp, x, y: obj_result(np.matmul(obj(x), obj(y))),
        examples=_matmul_examples,
        numpy_names=(np.matmul,),
        label="@",
        doc="Matrix product (numpy's matmul semantics, 1-D operands included). "
        "Backward: dA = G B^T, dB = A^T G (the lecture's g_i = J^T g_{i+1}).",
    )
)


# --- reductions --------------------------------------------------------------------


def _reduce_jvp(name):
    def jvp(tangents, xs, out, nb, axis=None, keepdims=False):
        (t,) = tangents
        axes = norm_axes(axis, len(shape_of(xs[0])))
        return _op(name)(t, axis=tuple(a + nb for a in axes), keepdims=keepdims)

    return jvp


def _expand_cotangent(g, x_shape, axis, keepdims):
    axes = norm_axes(axis, len(x_shape))
    if not keepdims:
        g = _op("reshape")(g, shape=kept_shape(x_shape, axes))
    return g, axes


def _sum_vjp(g, xs, out, needed, axis=None, keepdims=False):
    shape = shape_of(xs[0])
    g, _ = _expand_cotangent(g, shape, axis, keepdims)
    return (_op("broadcast_to")(g, shape=shape),)


def _mean_vjp(g, xs, out, needed, axis=None, keepdims=False):
    shape = shape_of(xs[0])
    g, axes = _expand_cotangent(g, shape, axis, keepdims)
    n = math.prod(shape[a] for a in axes)
    return (_op("broadcast_to")(g / float(n), shape=shape),)


def _reduction_examples(rng):
    x = rng.uniform(-1, 1, size=(3, 4, 2))
    return [
        ((x,), {}),
        ((x,), {"axis": 1}),
        ((x,), {"axis": (0, 2), "keepdims": True}),
        ((x,), {"axis": -1}),
        ((rng.uniform(-1, 1, size=5),), {"axis": 0}),
    ]


register(
    Op(  # noqa: A001
        "sum",
        lambda x, axis=None, keepdims=False: np.sum(x, axis=axis, keepdims=keepdims),
        params={"axis": None, "keepdims": False},
        jvp=_reduce_jvp("sum"),
        vjp=_sum_vjp,
        linear=True,
        sympy=_sp_sum,
        examples=_reduction_examples,
        numpy_names=(np.sum,),
        label="Σ",
        doc="Sum over axes; backward broadcasts the cotangent back.",
    )
)
mean = register(
    Op(
        "mean",
        lambda x, axis=None, keepdims=False: np.mean(x, axis=axis, keepdims=keepdims),
        params={"axis": None, "keepdims": False},
        jvp=_reduce_jvp("mean"),
        vjp=_mean_vjp,
        linear=True,
        sympy=_sp_mean,
        examples=_reduction_examples,
        numpy_names=(np.mean,),
        doc="Mean over axes; backward broadcasts the cotangent divided by the count.",
    )
)


def _extremum(name, np_fn):
    def weights(x, out, axis, keepdims):
        shape = shape_of(x)
        axes = norm_axes(axis, len(shape))
        from adkit.ops.core import primal

        xv, ov = np.asarray(primal(x)), np.asarray(primal(out))
        if not keepdims:
            ov = ov.reshape(kept_shape(shape, axes))
        hit = (xv == ov).astype(xv.dtype if np.issubdtype(xv.dtype, np.floating) else float)
        return hit / hit.sum(axis=axes, keepdims=True), axes

    def jvp(tangents, xs, out, nb, axis=None, keepdims=False):
        w, axes = weights(xs[0], out, axis, keepdims)
        return _op("sum")(tangents[0] * w, axis=tuple(a + nb for a in axes), keepdims=keepdims)

    def vjp(g, xs, out, needed, axis=None, keepdims=False):
        w, _ = weights(xs[0], out, axis, keepdims)
        g, _ = _expand_cotangent(g, shape_of(xs[0]), axis, keepdims)
        return (g * w,)

    def examples(rng):
        x = rng.permutation(24).reshape(3, 4, 2) / 10.0
        return [((x,), {}), ((x,), {"axis": 1}), ((x,), {"axis": (0, 2), "keepdims": True})]

    return register(
        Op(
            name,
            lambda x, axis=None, keepdims=False: np_fn(x, axis=axis, keepdims=keepdims),
            params={"axis": None, "keepdims": False},
            jvp=jvp,
            vjp=vjp,
            piecewise_linear=True,
            examples=examples,
            sympy=lambda sp, x, axis=None, keepdims=False: obj_reduce(
                x, axis, keepdims, lambda v: sp.Max(*v) if name == "max" else sp.Min(*v)
            ),
            complex_step=False,
            numpy_names=(np_fn, getattr(np, "a" + name)) if hasattr(np, "a" + name) else (np_fn,),
            kinks="on ties the gradient is split evenly between the tied entries "
            "(what central differences give; JAX does the same)",
            doc=f"{name} over axes: backward copies the gradient to the {name}imal entries.",
        )
    )


_extremum("max", np.max)
_extremum("min", np.min)


def _norm_weights(x, out, axis, keepdims):
    shape = shape_of(x)
    axes = norm_axes(axis, len(shape))
    n = out if keepdims else _op("reshape")(out, shape=kept_shape(shape, axes))
    return x / _op("where")(n == 0, 1.0, n), axes


def _norm_jvp(tangents, xs, out, nb, axis=None, keepdims=False):
    w, axes = _norm_weights(xs[0], out, axis, keepdims)
    return _op("sum")(tangents[0] * w, axis=tuple(a + nb for a in axes), keepdims=keepdims)


def _norm_vjp(g, xs, out, needed, axis=None, keepdims=False):
    w, _ = _norm_weights(xs[0], out, axis, keepdims)
    g, _ = _expand_cotangent(g, shape_of(xs[0]), axis, keepdims)
    return (g * w,)


def _norm_impl(x, axis=None, keepdims=False):
    x = np.asarray(x)
    return np.sqrt(np.sum(x * x, axis=axis, keepdims=keepdims))[()]


norm = register(
    Op(
        "norm",
        _norm_impl,
        params={"axis": None, "keepdims": False},
        jvp=_norm_jvp,
        vjp=_norm_vjp,
        sympy=lambda sp, x, axis=None, keepdims=False: obj_reduce(x, axis, keepdims, lambda v: sp_norm(sp, v)),
        examples=_reduction_examples,
        complex_step=False,
        numpy_names=(np.linalg.norm,),
        label="‖·‖",
        kinks="at x = 0 the gradient is 0 (the minimum; 0 is a subgradient), never NaN",
        doc="Euclidean (Frobenius) norm sqrt(sum x^2) over axes; gradient x / ‖x‖.",
    )
)


def _logsumexp_impl(x, axis=None, keepdims=False):
    x = np.asarray(x)
    m = np.max(x, axis=axis, keepdims=True)
    m = np.where(np.isfinite(m), m, 0.0)
    r = np.log(np.sum(np.exp(x - m), axis=axis, keepdims=True)) + m
    if not keepdims:
        r = np.squeeze(r, axis=axis) if axis is not None else r.reshape(())
    return r[()]


def _softmax_impl(x, axis=-1):
    x = np.asarray(x)
    e = np.exp(x - np.max(x, axis=axis, keepdims=True))
    return e / np.sum(e, axis=axis, keepdims=True)


def _logsumexp_jvp(tangents, xs, out, nb, axis=None, keepdims=False):
    axes = norm_axes(axis, len(shape_of(xs[0])))
    y = _op("softmax")(xs[0], axis=axes)
    return _op("sum")(tangents[0] * y, axis=tuple(a + nb for a in axes), keepdims=keepdims)


def _logsumexp_vjp(g, xs, out, needed, axis=None, keepdims=False):
    axes = norm_axes(axis, len(shape_of(xs[0])))
    g, _ = _expand_cotangent(g, shape_of(xs[0]), axis, keepdims)
    return (g * _op("softmax")(xs[0], axis=axes),)


logsumexp = register(
    Op(
        "logsumexp",
        _logsumexp_impl,
        params={"axis": None, "keepdims": False},
        jvp=_logsumexp_jvp,
        vjp=_logsumexp_vjp,
        examples=_reduction_examples,
        sympy=lambda sp, x, axis=None, keepdims=False: _sp_elementwise(
            sp.log, obj_reduce(_sp_elementwise(sp.exp, x), axis, keepdims, lambda v: sp.Add(*v))
        ),
        doc="log(sum(exp(x))) over axes, shifted by the max so it never overflows; its gradient is the softmax.",
    )
)


def _softmax_jvp(tangents, xs, out, nb, axis=-1):
    axes = norm_axes(axis, len(shape_of(xs[0])))
    t = tangents[0]
    return out * (t - _op("sum")(out * t, axis=tuple(a + nb for a in axes), keepdims=True))


def _softmax_vjp(g, xs, out, needed, axis=-1):
    axes = norm_axes(axis, len(shape_of(xs[0])))
    return (out * (g - _op("sum")(g * out, axis=axes, keepdims=True)),)


softmax = register(
    Op(
        "softmax",
        _softmax_impl,
        params={"axis": -1},
        jvp=_softmax_jvp,
        vjp=_softmax_vjp,
        examples=lambda rng: [
            ((rng.uniform(-2, 2, size=(3, 4)),), {}),
            ((rng.uniform(-2, 2, size=(3, 4)),), {"axis": 0}),
            ((rng.uniform(-2, 2, size=5),), {}),
        ],
        sympy=_sp_softmax,
        doc="exp(x) / sum(exp(x)) along an axis. Jacobian dy_k/du_c = y_k (δ_kc - y_c) "
        "(the lecture's softmax Jacobian).",
    )
)


# --- shape ops ----------------------------------------------------------------------


def _reshape_impl(x, shape):
    if isinstance(x, np.ndarray) and x.shape == tuple(shape):
        return x  # no new view: keeps arrays the sweep made "owned" (no defensive copy later)
    return np.reshape(x, shape)


reshape = register(
    Op(
        "reshape",
        _reshape_impl,
        vjp_needs_out=False,
        params={"shape": ()},
        linear=True,
        jvp=lambda tangents, xs, out, nb, shape: _op("reshape")(
            tangents[0], shape=shape_of(tangents[0])[:nb] + shape_of(out)
        ),
        vjp=lambda g, xs, out, needed, shape: (_op("reshape")(g, shape=shape_of(xs[0])),),
        sympy=lambda sp, x, shape=(): obj_result(np.reshape(obj(x), shape)),
        examples=lambda rng: [
            ((rng.uniform(-1, 1, size=(3, 4)),), {"shape": (2, 6)}),
            ((rng.uniform(-1, 1, size=(3, 4)),), {"shape": (-1,)}),
            ((rng.uniform(-1, 1, size=()),), {"shape": (1, 1)}),
        ],
        numpy_names=(np.reshape,),
    )
)


def _transpose_impl(x, axes=None):
    return np.transpose(x, axes)


def _full_axes(axes, ndim):
    return tuple(reversed(range(ndim))) if axes is None else tuple(int(a) % ndim for a in axes)


transpose = register(
    Op(
        "transpose",
        _transpose_impl,
        vjp_needs_out=False,
        params={"axes": None},
        linear=True,
        jvp=lambda tangents, xs, out, nb, axes=None: _op("transpose")(
            tangents[0], axes=tuple(range(nb)) + tuple(a + nb for a in _full_axes(axes, len(shape_of(xs[0]))))
        ),
        vjp=lambda g, xs, out, needed, axes=None: (
            _op("transpose")(g, axes=tuple(np.argsort(_full_axes(axes, len(shape_of(xs[0])))).tolist())),
        ),
        sympy=lambda sp, x, axes=None: obj_result(np.transpose(obj(x), axes)),
        examples=lambda rng: [
            ((rng.uniform(-1, 1, size=(3, 4)),), {}),
            ((rng.uniform(-1, 1, size=(2, 3, 4)),), {"axes": (1, 2, 0)}),
        ],
        numpy_names=(np.transpose,),
        label="ᵀ",
    )
)


def _broadcast_jvp(tangents, xs, out, nb, shape):
    t = expand_to(tangents[0], len(shape), nb)
    return _op("broadcast_to")(t, shape=shape_of(t)[:nb] + tuple(shape))


broadcast_to = register(
    Op(
        "broadcast_to",
        lambda x, shape: np.broadcast_to(x, shape),
        vjp_needs_out=False,
        params={"shape": ()},
        linear=True,
        jvp=_broadcast_jvp,
        vjp=lambda g, xs, out, needed, shape: (unbroadcast(g, shape_of(xs[0])),),
        sympy=lambda sp, x, shape=(): obj_result(np.broadcast_to(obj(x), shape).copy()),
        examples=lambda rng: [
            ((rng.uniform(-1, 1, size=(3, 1)),), {"shape": (2, 3, 4)}),
            ((rng.uniform(-1, 1, size=()),), {"shape": (3,)}),
        ],
        numpy_names=(np.broadcast_to,),
        doc="Broadcasting made explicit; backward sums over the broadcast axes (unbroadcast).",
    )
)


def _getitem_impl(x, index):
    return np.asarray(x)[index] if not isinstance(x, np.ndarray) else x[index]


def _batched_index(t, index, nb, name, **extra):
    """Apply an indexing op to a tangent with `nb` leading batch axes."""
    op = _op(name)
    if nb == 0:
        return op(t, index=index, **extra)
    if _is_basic_index(index):
        items = index if isinstance(index, tuple) else (index,)
        if extra:
            extra = {"shape": shape_of(t)[:nb] + tuple(extra["shape"])}
        return op(t, index=(slice(None),) * nb + items, **extra)
    return per_direction(t, nb, lambda row: op(row, index=index, **extra))


getitem = register(
    Op(
        "getitem",
        _getitem_impl,
        vjp_needs_out=False,
        params={"index": ()},
        linear=True,
        jvp=lambda tangents, xs, out, nb, index: _batched_index(tangents[0], index, nb, "getitem"),
        vjp=lambda g, xs, out, needed, index: (_op("index_add")(g, index=index, shape=shape_of(xs[0])),),
        sympy=lambda sp, x, index=(): obj_result(obj(x)[index]),
        examples=lambda rng: [
            ((rng.uniform(-1, 1, size=(4, 5)),), {"index": (1, slice(1, 4))}),
            ((rng.uniform(-1, 1, size=(4, 5)),), {"index": (np.array([0, 2, 2]),)}),
            ((rng.uniform(-1, 1, size=(4, 5)),), {"index": (Ellipsis, None, 2)}),
            ((rng.uniform(-1, 1, size=(4, 5)),), {"index": (np.array([[True, False, True, False, True]] * 4),)}),
        ],
        label="[]",
        reached_by="x[index] on a traced array",
        doc="Indexing and slicing (basic, integer-array and boolean). Backward scatters the "
        "cotangent into zeros, adding where an index repeats.",
    )
)


def _index_add_impl(g, index, shape):
    g = np.asarray(g)
    z = np.zeros(shape, dtype=np.result_type(g.dtype, np.float64) if g.dtype.kind != "f" else g.dtype)
    if _is_basic_index(index):
        z[index] = g
    else:
        np.add.at(z, index, g)
    return z


index_add = register(
    Op(
        "index_add",
        _index_add_impl,
        vjp_needs_out=False,
        params={"index": (), "shape": ()},
        linear=True,
        jvp=lambda tangents, xs, out, nb, index, shape: _batched_index(
            tangents[0], index, nb, "index_add", shape=shape
        ),
        vjp=lambda g, xs, out, needed, index, shape: (_op("getitem")(g, index=index),),
        sympy=_sp_index_add,
        examples=lambda rng: [((rng.uniform(-1, 1, size=(3,)),), {"index": (np.array([0, 2, 2]),), "shape": (4,)})],
        reached_by="the VJP of getitem (x[index]); its own JVP and VJP make getitem twice differentiable",
        doc="zeros(shape) with g added at index: the transpose of getitem (np.add.at).",
    )
)


def _concat_impl(*xs, axis=0):
    return np.concatenate(xs, axis=axis)


def _full_tangents(tangents, xs, nb):
    """One tangent per input, each of shape batch + input shape: zeros for the constants."""
    batch = next(shape_of(u)[:nb] for u in tangents if u is not None)
    parts = []
    for t, x in zip(tangents, xs):
        want = batch + shape_of(x)
        if t is None:
            t = np.zeros(want)
        elif shape_of(t) != want:
            t = _op("broadcast_to")(t, shape=want)
        parts.append(t)
    return parts


def _concat_jvp(tangents, xs, out, nb, axis=0):
    parts = _full_tangents(tangents, xs, nb)
    return _op("concatenate")(*parts, axis=_shift_axis(axis, len(shape_of(out)), nb))


def _concat_vjp(g, xs, out, needed, axis=0):
    ndim = len(shape_of(out))
    ax = axis % ndim
    result, start = [], 0
    for x, need in zip(xs, needed):
        n = shape_of(x)[ax]
        result.append(g[(slice(None),) * ax + (slice(start, start + n),)] if need else None)
        start += n
    return tuple(result)


concatenate = register(
    Op(
        "concatenate",
        _concat_impl,
        vjp_needs_out=False,
        variadic=True,
        params={"axis": 0},
        linear=True,
        jvp=_concat_jvp,
        vjp=_concat_vjp,
        sympy=lambda sp, *xs, axis=0: obj_result(np.concatenate([obj(x) for x in xs], axis=axis)),
        examples=lambda rng: [
            ((rng.uniform(-1, 1, size=(2, 3)), rng.uniform(-1, 1, size=(4, 3))), {}),
            ((rng.uniform(-1, 1, size=(2, 3)), rng.uniform(-1, 1, size=(2, 1))), {"axis": 1}),
        ],
        numpy_names=(np.concatenate,),
    )
)


def _stack_impl(*xs, axis=0):
    return np.stack(xs, axis=axis)


def _stack_jvp(tangents, xs, out, nb, axis=0):
    parts = _full_tangents(tangents, xs, nb)
    return _op("stack")(*parts, axis=_shift_axis(axis, len(shape_of(out)), nb))


def _stack_vjp(g, xs, out, needed, axis=0):
    ax = axis % len(shape_of(out))
    return tuple(g[(slice(None),) * ax + (i,)] if need else None for i, need in enumerate(needed))


stack = register(
    Op(
        "stack",
        _stack_impl,
        vjp_needs_out=False,
        variadic=True,
        params={"axis": 0},
        linear=True,
        jvp=_stack_jvp,
        vjp=_stack_vjp,
        sympy=lambda sp, *xs, axis=0: obj_result(np.stack([obj(x) for x in xs], axis=axis)),
        examples=lambda rng: [
            ((rng.uniform(-1, 1, size=(2, 3)), rng.uniform(-1, 1, size=(2, 3))), {}),
            ((rng.uniform(-1, 1), rng.uniform(-1, 1), rng.uniform(-1, 1)), {}),
            ((rng.uniform(-1, 1, size=3), rng.uniform(-1, 1, size=3)), {"axis": 1}),
        ],
        numpy_names=(np.stack,),
    )
)


# --- the lecture's product node --------------------------------------------------------


def _product_partials(out, *xs):
    """d(x0 x1 ... xn)/dx_i = product of all the others, by prefix and suffix products.

    No division, so a zero input is fine (the lecture's product node: the partial with
    respect to one input is the product of the other inputs).
    """
    n = len(xs)
    prefix: list[Any] = [None] * n
    running: Any = None
    for i in range(n):
        prefix[i] = running
        running = xs[i] if running is None else running * xs[i]
    result: list[Any] = [None] * n
    suffix: Any = None
    for i in range(n - 1, -1, -1):
        left = prefix[i]
        if left is None:
            result[i] = 1.0 if suffix is None else suffix
        else:
            result[i] = left if suffix is None else left * suffix
        suffix = xs[i] if suffix is None else xs[i] * suffix
    return result


def _product_impl(*xs):
    out = xs[0]
    for x in xs[1:]:
        out = out * x
    return out


product = register(
    Op(
        "product",
        _product_impl,
        variadic=True,
        partials=_product_partials,
        sympy=lambda sp, *xs: sp.Mul(*xs),
        domain=lambda rng, shape: tuple(REAL(rng, shape) for _ in range(4)),
        label="∏",
        doc="The lecture's product node: x0 x1 ... xn of any number of inputs; the partial "
        "with respect to one input is the product of the others (computed without division). "
        "np.prod(x, axis) is this node over the entries along the axis.",
    )
)


# --- the product node over the entries of an array (np.prod) ------------------------------


def _group(x: Any, axes: tuple[int, ...], nb: int) -> Any:
    """x with its (non-batch) `axes` moved last and flattened into one: shape
    batch + kept + (m,). Registry ops, so it works on traced values too."""
    ndim = len(shape_of(x)) - nb
    kept = [a for a in range(ndim) if a not in axes]
    order = tuple(range(nb)) + tuple(nb + a for a in kept + list(axes))
    moved = _op("transpose")(x, axes=order) if order != tuple(range(nb + ndim)) else x
    moved_shape = shape_of(moved)
    return _op("reshape")(moved, shape=moved_shape[: nb + len(kept)] + (math.prod(moved_shape[nb + len(kept) :]),))


def _ungroup(y: Any, x_shape: tuple[int, ...], axes: tuple[int, ...], nb: int) -> Any:
    """Inverse of _group: back to batch + x_shape."""
    kept = [a for a in range(len(x_shape)) if a not in axes]
    batch = shape_of(y)[:nb]
    moved = _op("reshape")(y, shape=batch + tuple(x_shape[a] for a in kept + list(axes)))
    perm = kept + list(axes)
    inverse = tuple(range(nb)) + tuple(nb + perm.index(a) for a in range(len(x_shape)))
    return _op("transpose")(moved, axes=inverse) if inverse != tuple(range(nb + len(x_shape))) else moved


def _prod_others_impl(x, axis=None):
    """Each entry replaced by the product of the *other* entries of its group (the entries
    reduced together by np.prod(x, axis)): exclusive prefix products times exclusive
    suffix products, so no division and zeros are fine. Works on object arrays (sympy)."""
    x = np.asarray(x)
    if x.ndim == 0:
        return np.ones_like(x)
    axes = norm_axes(axis, x.ndim)
    order = [a for a in range(x.ndim) if a not in axes] + list(axes)
    moved = x if order == list(range(x.ndim)) else np.transpose(x, order)
    flat = moved.reshape(moved.shape[: x.ndim - len(axes)] + (math.prod(moved.shape[x.ndim - len(axes) :]),))
    if flat.shape[-1] == 0:
        return x.copy()
    prefix = np.empty_like(flat)  # prod_{k < j} x_k
    prefix[..., 0] = 1
    np.cumprod(flat[..., :-1], axis=-1, out=prefix[..., 1:])
    suffix = np.empty_like(flat)  # prod_{k > j} x_k
    suffix[..., -1] = 1
    np.cumprod(flat[..., :0:-1], axis=-1, out=suffix[..., -2::-1])
    others = (prefix * suffix).reshape(moved.shape)
    return others if moved is x else np.transpose(others, np.argsort(order))


def _prod_others_jvp(tangents, xs, out, nb, axis=None):
    """d others_j = sum over i != j of t_i * prod_{k != i, j} x_k: the prefix and suffix
    products carried as dual numbers, P_{j+1} = P_j x_j, dP_{j+1} = dP_j x_j + P_j t_j
    (one step per entry of a group; used for second and higher derivatives only)."""
    (t,) = tangents
    x = xs[0]
    x_shape = shape_of(x)
    if not x_shape:
        return 0.0 * t
    axes = norm_axes(axis, len(x_shape))
    gx, gt = _group(x, axes, 0), _group(t, axes, nb)
    m = shape_of(gx)[-1]
    xj = [gx[..., j] for j in range(m)]
    tj = [gt[..., j] for j in range(m)]
    prefix, dprefix = [1.0] * m, [0.0] * m
    for j in range(m - 1):
        prefix[j + 1] = prefix[j] * xj[j]
        dprefix[j + 1] = dprefix[j] * xj[j] + prefix[j] * tj[j]
    suffix, dsuffix = [1.0] * m, [0.0] * m
    for j in range(m - 1, 0, -1):
        suffix[j - 1] = suffix[j] * xj[j]
        dsuffix[j - 1] = dsuffix[j] * xj[j] + suffix[j] * tj[j]
    zero = 0.0 * tj[0]  # the shape batch + kept, for entries whose terms are all zero
    d = [dprefix[j] * suffix[j] + prefix[j] * dsuffix[j] + zero for j in range(m)]
    return _ungroup(_op("stack")(*d, axis=-1), x_shape, axes, nb)


def _prod_others_vjp(g, xs, out, needed, axis=None):
    # the Jacobian d others_i / d x_j = prod_{k != i, j} x_k is symmetric: the VJP is the JVP
    return (_prod_others_jvp((g,), xs, out, 0, axis=axis),)


def _prod_examples(rng):
    def signed(*shape):
        return rng.uniform(0.5, 1.5, size=shape) * rng.choice([-1.0, 1.0], size=shape)

    one_zero, two_zeros = signed(3, 4), signed(3, 4)
    one_zero[1, 2] = 0.0
    two_zeros[0, 1] = two_zeros[0, 3] = 0.0
    return [
        ((signed(5),), {}),
        ((signed(3, 4),), {"axis": 1}),
        ((one_zero,), {"axis": 0}),
        ((two_zeros,), {"axis": 1, "keepdims": True}),
        ((one_zero,), {}),
        ((signed(2, 3, 2),), {"axis": (0, 2)}),
    ]


prod_others = register(
    Op(
        "prod_others",
        _prod_others_impl,
        params={"axis": None},
        jvp=_prod_others_jvp,
        vjp=_prod_others_vjp,
        sympy=lambda sp, x, axis=None: obj_result(_prod_others_impl(obj(x), axis)),
        examples=lambda rng: [
            (args, {k: v for k, v in kw.items() if k != "keepdims"}) for args, kw in _prod_examples(rng)
        ],
        reached_by="the JVP and VJP of np.prod (its local partials); its own rules make np.prod twice differentiable",
        label="∏≠",
        doc="Each entry replaced by the product of the other entries reduced with it: the "
        "partials of np.prod (the product node's 'product of all the other inputs'), "
        "computed without division.",
    )
)


def _prod_jvp(tangents, xs, out, nb, axis=None, keepdims=False):
    (t,) = tangents
    x = xs[0]
    axes = norm_axes(axis, len(shape_of(x)))
    term = _op("prod_others")(x, axis=axis) * t
    return _op("sum")(term, axis=tuple(a + nb for a in axes), keepdims=keepdims) if axes else term


def _prod_vjp(g, xs, out, needed, axis=None, keepdims=False):
    x = xs[0]
    g, _ = _expand_cotangent(g, shape_of(x), axis, keepdims)
    return (g * _op("prod_others")(x, axis=axis),)


prod = register(
    Op(
        "prod",
        lambda x, axis=None, keepdims=False: np.prod(x, axis=axis, keepdims=keepdims),
        params={"axis": None, "keepdims": False},
        jvp=_prod_jvp,
        vjp=_prod_vjp,
        sympy=lambda sp, x, axis=None, keepdims=False: obj_reduce(x, axis, keepdims, lambda v: sp.Mul(*v)),
        examples=_prod_examples,
        reached_by="np.prod(x, axis) on a traced array",
        label="∏",
        doc="np.prod: the lecture's product node over the entries along `axis`, as one op; "
        "the partial with respect to an entry is the product of the others (prod_others, "
        "no division, so zeros work).",
    )
)


def _cumprod_jvp(tangents, xs, out, nb, axis=None):
    """y_k = y_(k-1) x_k carried as dual numbers: dy_k = dy_(k-1) x_k + y_(k-1) t_k
    (no division, so zeros are fine)."""
    (t,) = tangents
    x = xs[0]
    axes = norm_axes(axis, len(shape_of(x)))  # axis None: every axis, flattened
    lx, lt = _group(x, axes, 0), _group(t, axes, nb)
    n = shape_of(lx)[-1]
    y, dy, dys = None, None, []
    for k in range(n):
        xk, tk = lx[..., k], lt[..., k]
        dy = tk if k == 0 else dy * xk + y * tk
        y = xk if k == 0 else y * xk
        dys.append(dy)
    out = _op("stack")(*dys, axis=-1)
    return out if axis is None else _ungroup(out, shape_of(x), axes, nb)


def _cumprod_vjp(g, xs, out, needed, axis=None):
    """cot_i = sum_(k >= i) g_k dy_k/dx_i = y_(i-1) R_i, with R_i = g_i + x_(i+1) R_(i+1)
    summed from the end (y_(-1) = 1): the products of the other factors, no division."""
    x = xs[0]
    axes = norm_axes(axis, len(shape_of(x)))
    lx = _group(x, axes, 0)
    lg = g if axis is None else _group(g, axes, 0)  # g of a flattened cumprod is flat already
    n = shape_of(lx)[-1]
    xk = [lx[..., k] for k in range(n)]
    prefix = [1.0] * n  # y_(k-1)
    for k in range(1, n):
        prefix[k] = xk[0] if k == 1 else prefix[k - 1] * xk[k - 1]
    cots: list[Any] = [None] * n
    running = None
    for k in range(n - 1, -1, -1):
        running = lg[..., k] if running is None else lg[..., k] + xk[k + 1] * running
        cots[k] = prefix[k] * running
    return (_ungroup(_op("stack")(*cots, axis=-1), shape_of(x), axes, 0),)


def _cumprod_examples(rng):
    def signed(*shape):
        return rng.uniform(0.5, 1.5, size=shape) * rng.choice([-1.0, 1.0], size=shape)

    with_zero = signed(3, 4)
    with_zero[1, 1] = 0.0
    return [
        ((signed(5),), {"axis": 0}),
        ((signed(3, 4),), {"axis": 1}),
        ((with_zero,), {"axis": 0}),
        ((with_zero,), {"axis": -1}),
        ((signed(2, 3),), {}),
    ]


cumprod = register(
    Op(
        "cumprod",
        lambda x, axis=None: np.cumprod(x, axis=axis),
        params={"axis": None},
        jvp=_cumprod_jvp,
        vjp=_cumprod_vjp,
        sympy=lambda sp, x, axis=None: obj_result(np.cumprod(obj(x), axis=axis)),
        examples=_cumprod_examples,
        reached_by="np.cumprod(x, axis) on a traced array",
        label="∏…",
        doc="Cumulative product along an axis (flattened when axis is None): running "
        "product nodes; its derivatives are products of the other factors, computed "
        "without division (one step per entry along the axis).",
    )
)

# the domain sampler of POSITIVE is kept importable for custom-op docs and tests
__all__ = ["expand_to", "kept_shape", "norm_axes", "per_direction", "unbroadcast"]
