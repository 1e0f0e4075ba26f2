"""Linear algebra: np.linalg on stacks of matrices (every op works on the last two axes and
broadcasts over the leading ones, as numpy does), with the rules of the literature:

    d(A^-1) = -A^-1 dA A^-1                    VJP: -A^-T G A^-T
    x = A^-1 b:  dx = A^-1 (db - dA x)         VJP: gb = A^-T g, gA = -gb x^T
    d det A = det A tr(A^-1 dA)                VJP: g det A A^-T         (Jacobi)
    d log|det A| = tr(A^-1 dA)                 VJP: g A^-T
    A = L L^T:  dL = L Phi(L^-1 dA L^-T)       Phi: lower triangle, diagonal halved (Murray 2016)
    A = V diag(w) V^T:  dw = diag(V^T dA V),   dV = V (F o V^T dA V),  F_ij = 1 / (w_j - w_i)
    A = U S V^T:  dS = diag(U^T dA V),         dU, dV as in Townsend 2016 (below)
    A = Q R:  C = Q^T dA R^-1,  dQ = Q Om + (I - Q Q^T) dA R^-1,  dR = (C - Om) R,
              Om = tril(C, -1) - tril(C, -1)^T (Walter and Lehmann 2018)
    d A^+ = -A^+ dA A^+ + A^+ A^+T dA^T (I - A A^+) + (I - A^+ A) dA^T A^+T A^+   (Golub and Pereyra)

Every rule is written with registry ops, so it is differentiable again. A decomposition
with several outputs (eigh, svd, qr) is one op whose value packs the outputs into one
array; np.linalg.eigh & co unpack it (getitem, reshape), so the decomposition is computed
once. Where a derivative does not exist (eigenvectors at a repeated eigenvalue, singular
vectors at a repeated singular value, a rank-deficient pinv) it is refused by name
(UndefinedDerivativeError): in forward mode always, in reverse mode when the loss uses
those vectors (a cotangent reaches them). A loss that is invariant to the arbitrary basis
(a projector V V^T) does have a derivative, but a check at one basis cannot tell such a
loss from one that is merely stationary there (sum(v_0^3) at the identity), so both are
refused rather than risk a wrong number.
sympy has no counterpart of eigh, svd and qr that matches numpy's conventions: the
symbolic engine refuses them by name (`sympy_refusal`).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from adkit.errors import AdkitTypeError, UndefinedDerivativeError, UnsupportedFunctionError
from adkit.ops.array import expand_to, unbroadcast
from adkit.ops.core import REGISTRY, Op, primal, register, shape_of

R = REGISTRY

# Two eigenvalues (or squared singular values) closer than this, relative to the largest
# magnitude, are one repeated value: 1 / (w_j - w_i) would be rounding noise (a few ulps
# of differences of numbers computed to ~n eps relative accuracy), not a derivative.
DEGENERATE_RTOL = 1e-10


# --- helpers on the last two axes (leading axes broadcast; forward mode's batch too) --------


def mT(x: Any) -> Any:
    """Transpose of the last two axes."""
    n = len(shape_of(x))
    return R["transpose"](x, axes=tuple(range(n - 2)) + (n - 1, n - 2))


def _mm(*xs: Any) -> Any:
    out = xs[0]
    for x in xs[1:]:
        out = R["matmul"](out, x)
    return out


def _diag_part(x: Any) -> Any:
    n = shape_of(x)[-1]
    return R["sum"](x * np.eye(n), axis=-1)


def _diag_embed(v: Any) -> Any:
    n = shape_of(v)[-1]
    return R["reshape"](v, shape=shape_of(v) + (1,)) * np.eye(n)


def _col(v: Any) -> Any:
    return R["reshape"](v, shape=shape_of(v) + (1,))


def _row(v: Any) -> Any:
    s = shape_of(v)
    return R["reshape"](v, shape=s[:-1] + (1,) + s[-1:])


def sympy_refusal(what: str, reason: str) -> Any:
    """A `sympy` entry for an op sympy cannot rebuild: the symbolic engine refuses it by
    name (the registry-wide tests check that it does, through `symbolic_refusal`)."""

    def refuse(sp: Any, *args: Any, **params: Any) -> Any:
        raise UnsupportedFunctionError(
            f"the symbolic engine cannot differentiate {what}: {reason}. Use engine='forward', "
            "'reverse' or 'numeric' for it."
        )

    refuse.symbolic_refusal = what  # type: ignore[attr-defined]
    return refuse


def _per_matrix(fn: Any) -> Any:
    """A sympy form on one 2-D matrix applied to every matrix of a stack (object arrays)."""

    def form(sp: Any, *args: Any, **params: Any) -> Any:
        a = np.asarray(args[0], dtype=object)
        if a.ndim == 2:
            return fn(sp, *args, **params)
        others = [np.asarray(b, dtype=object) for b in args[1:]]
        results = [
            np.asarray(fn(sp, a[i], *[b[i] if b.ndim == a.ndim else b for b in others], **params), dtype=object)
            for i in range(a.shape[0])
        ]
        return np.stack(results)

    return form


def _matrix(sp: Any, a: Any) -> Any:
    return sp.Matrix(np.asarray(a, dtype=object))


def _array(m: Any) -> np.ndarray:
    return np.array(m.tolist(), dtype=object)


def _check_square(a: Any, name: str) -> None:
    s = np.shape(a)
    if len(s) < 2 or s[-1] != s[-2]:
        raise np.linalg.LinAlgError(
            f"np.linalg.{name} takes a square matrix or a stack of them (shape (..., n, n)), got shape {s}"
        )


def _check_matrix(a: Any, name: str) -> None:
    if np.ndim(a) < 2:
        raise np.linalg.LinAlgError(f"np.linalg.{name} takes a matrix or a stack of them, got shape {np.shape(a)}")


def _call(name: str, fn: Any, *args: Any, **kw: Any) -> Any:
    """numpy's routine, with a LinAlgError that names it (a singular matrix, ...)."""
    try:
        return fn(*args, **kw)
    except np.linalg.LinAlgError as exc:
        raise np.linalg.LinAlgError(f"np.linalg.{name}: {exc}") from exc


def _rand(rng: np.random.Generator, *shape: int) -> np.ndarray:
    return rng.uniform(-1, 1, size=shape)


def _well_conditioned(rng: np.random.Generator, *shape: int) -> np.ndarray:
    n = shape[-1]
    return _rand(rng, *shape) + 3 * np.eye(n)


def _spd(rng: np.random.Generator, *shape: int) -> np.ndarray:
    m = _rand(rng, *shape)
    return m @ np.swapaxes(m, -1, -2) + shape[-1] * np.eye(shape[-1])


# --- inv ----------------------------------------------------------------------------------


def _inv_impl(a: Any) -> Any:
    _check_square(a, "inv")
    return _call("inv", np.linalg.inv, a)


register(
    Op(
        "inv",
        _inv_impl,
        jvp=lambda tangents, xs, out, nb: -_mm(out, tangents[0], out),
        vjp=lambda g, xs, out, needed: (-_mm(mT(out), g, mT(out)),),
        sympy=_per_matrix(lambda sp, a: _array(_matrix(sp, a).inv())),
        examples=lambda rng: [((_well_conditioned(rng, 3, 3),), {}), ((_well_conditioned(rng, 2, 3, 3),), {})],
        numpy_names=(np.linalg.inv,),
        doc="Matrix inverse (stacks too); backward -A^-T G A^-T.",
    )
)


# --- solve ----------------------------------------------------------------------------------


def _solve_impl(a: Any, b: Any) -> Any:
    _check_square(a, "solve")
    n = np.shape(a)[-1]
    if np.ndim(b) == 0 or (np.ndim(b) == 1 and np.shape(b)[0] != n) or (np.ndim(b) > 1 and np.shape(b)[-2] != n):
        raise ValueError(f"np.linalg.solve: b must have shape ({n},) or (..., {n}, k) for a of shape {np.shape(a)}")
    return _call("solve", np.linalg.solve, a, b)


def _as_columns(t: Any, vector: bool, a_ndim: int, nb: int = 0) -> Any:
    """A right-hand side as a stack of column matrices (numpy: a 1-D b is one vector for
    every matrix of a stack); `nb` leading batch axes of a forward-mode tangent kept."""
    if not vector:
        return t
    s = shape_of(t)
    return R["reshape"](t, shape=s[:nb] + (1,) * (a_ndim - 2) + s[nb:] + (1,))


def _solve_jvp(tangents, xs, out, nb):
    a, b = xs
    ta, tb = tangents
    vector = len(shape_of(b)) == 1
    a_ndim = len(shape_of(a))
    x = _col(out) if vector else out
    full = len(shape_of(x))  # a tangent's own batch axes go before the stack's (broadcasting)
    rhs = None
    if tb is not None:
        rhs = _as_columns(tb, vector, a_ndim, nb) if vector else expand_to(tb, full, nb)
    if ta is not None:
        term = -R["matmul"](expand_to(ta, full, nb), x)
        rhs = term if rhs is None else rhs + term
    dx = R["solve"](a, rhs)
    if vector:
        dx = R["reshape"](dx, shape=shape_of(dx)[:-1])
    return dx


def _solve_vjp(g, xs, out, needed):
    a, b = xs
    vector = len(shape_of(b)) == 1
    gb = R["solve"](mT(a), _col(g) if vector else g)
    ga = None
    if needed[0]:
        x = _col(out) if vector else out
        ga = unbroadcast(-R["matmul"](gb, mT(x)), shape_of(a))
    if needed[1]:
        gb = R["reshape"](gb, shape=shape_of(gb)[:-1]) if vector else gb
        gb = unbroadcast(gb, shape_of(b))
    return ga, gb if needed[1] else None


def _sympy_solve(sp: Any, a: Any, b: Any) -> Any:
    b = np.asarray(b, dtype=object)
    column = b.reshape(-1, 1) if b.ndim == 1 else b
    return _array(_matrix(sp, a).inv() * sp.Matrix(column)).reshape(b.shape)


register(
    Op(
        "solve",
        _solve_impl,
        args=("a", "b"),
        jvp=_solve_jvp,
        vjp=_solve_vjp,
        sympy=_per_matrix(_sympy_solve),
        examples=lambda rng: [
            ((_well_conditioned(rng, 3, 3), _rand(rng, 3)), {}),
            ((_well_conditioned(rng, 3, 3), _rand(rng, 3, 2)), {}),
            ((_well_conditioned(rng, 2, 3, 3), _rand(rng, 2, 3, 2)), {}),
            ((_well_conditioned(rng, 2, 3, 3), _rand(rng, 3)), {}),
        ],
        numpy_names=(np.linalg.solve,),
        doc="Solve A x = b (b a vector, a matrix or a stack; A a stack too); backward gb = A^-T g, gA = -gb x^T.",
    )
)


# --- det and log|det| -------------------------------------------------------------------------


def _inverse_transpose(a: Any, name: str) -> Any:
    with np.errstate(all="ignore"):
        cond = np.linalg.cond(primal(a))
    if not np.all(cond < 1.0 / np.finfo(float).eps):  # numerically singular (NaN, inf: singular too)
        raise UndefinedDerivativeError(
            f"np.linalg.{name}: the derivative's formula needs A^-1 and A is singular here (its determinant is 0)"
        )
    return mT(R["inv"](a))


def _det_impl(a: Any) -> Any:
    _check_square(a, "det")
    return np.linalg.det(a)


def _cofactors(a: Any, out: Any) -> Any:
    """d det(A) / dA, the cofactor matrix adj(A)^T (Jacobi's formula). For an invertible A it
    is det(A) A^-T, written with registry ops so that it can be differentiated again. det is a
    polynomial, so it has this derivative at a singular A too: from A = U S V^T,
    cof(A) = det(U) det(V) U diag(prod_{j != i} s_j) V^T (0 when the rank is below n - 1),
    computed from the values; its own derivative there is refused (adkit does not
    differentiate the SVD at a zero singular value)."""
    values = primal(a)
    with np.errstate(all="ignore"):
        cond = np.linalg.cond(values)
    if np.all(cond < 1.0 / np.finfo(float).eps):
        return _trailing(out) * mT(R["inv"](a))
    if not np.all(np.isfinite(values)):
        raise UndefinedDerivativeError("np.linalg.det: the matrix has inf or NaN entries")
    if a is not values:
        raise UndefinedDerivativeError(
            "np.linalg.det: a second derivative of det at a singular matrix (its determinant is 0): the "
            "cofactor matrix there comes from an SVD, which adkit does not differentiate at a zero singular value"
        )
    u, sv, vt = np.linalg.svd(values)
    n = sv.shape[-1]
    others = np.stack([np.prod(np.delete(sv, i, axis=-1), axis=-1) for i in range(n)], axis=-1)
    signs = np.linalg.det(u) * np.linalg.det(vt)
    return (signs[..., None, None] * u * others[..., None, :]) @ vt


def _trailing(v: Any) -> Any:
    return R["reshape"](v, shape=shape_of(v) + (1, 1))


register(
    Op(
        "det",
        _det_impl,
        jvp=lambda tangents, xs, out, nb: R["sum"](tangents[0] * _cofactors(xs[0], out), axis=(-2, -1)),
        vjp=lambda g, xs, out, needed: (_trailing(g) * _cofactors(xs[0], out),),
        sympy=_per_matrix(lambda sp, a: _matrix(sp, a).det()),
        examples=lambda rng: [
            ((_rand(rng, 3, 3) + 2 * np.eye(3),), {}),
            ((_rand(rng, 2, 3, 3) + 2 * np.eye(3),), {}),
        ],
        numpy_names=(np.linalg.det,),
        doc="Determinant (stacks too); backward g cof(A), the cofactor matrix (Jacobi's formula): det(A) A^-T "
        "for an invertible A, from the SVD at a singular one.",
    )
)


def _logabsdet_impl(a: Any) -> Any:
    _check_square(a, "slogdet")
    return np.linalg.slogdet(a)[1]


register(
    Op(
        "logabsdet",
        _logabsdet_impl,
        jvp=lambda tangents, xs, out, nb: R["sum"](tangents[0] * _inverse_transpose(xs[0], "slogdet"), axis=(-2, -1)),
        vjp=lambda g, xs, out, needed: (_trailing(g) * _inverse_transpose(xs[0], "slogdet"),),
        vjp_needs_out=False,
        sympy=_per_matrix(lambda sp, a: sp.log(sp.Abs(_matrix(sp, a).det()))),
        examples=lambda rng: [
            ((_rand(rng, 3, 3) + 2 * np.eye(3),), {}),
            ((_rand(rng, 2, 3, 3) - 2 * np.eye(3),), {}),
        ],
        reached_by="np.linalg.slogdet(a) (its logabsdet; the sign is piecewise constant)",
        complex_step=False,
        kinks="log |det A| is not analytic (an absolute value: complex step does not apply); needs an "
        "invertible matrix for its derivative (A^-T): refused at a singular one",
        doc="log |det A| (stacks too), the second output of np.linalg.slogdet; backward g A^-T.",
    )
)


# --- cholesky ---------------------------------------------------------------------------------


def _lower_mask(n: int, upper: bool = False) -> np.ndarray:
    mask = np.tril(np.ones((n, n)))
    return mask.T if upper else mask


def _symmetric_from_triangle(t: Any, upper: bool) -> Any:
    """The symmetric matrix a routine that reads one triangle of A sees: dS = tril(dA) +
    tril(dA, -1)^T (or the upper triangle)."""
    n = shape_of(t)[-1]
    part = t * _lower_mask(n, upper)
    return part + mT(part * (1.0 - np.eye(n)))


def _triangle_cotangent(m: Any, upper: bool) -> Any:
    """The transpose of `_symmetric_from_triangle`: M + M^T on the read triangle's off-
    diagonal entries, M on the diagonal, 0 on the ignored triangle."""
    n = shape_of(m)[-1]
    off = _lower_mask(n, upper) - np.eye(n)
    return (m + mT(m)) * off + m * np.eye(n)


def _from_lower(a: Any) -> np.ndarray:
    """The symmetric matrix of A's lower triangle (object arrays too: sympy forms)."""
    a = np.asarray(a, dtype=object)
    lower = np.tril(a)
    return lower + np.tril(a, -1).T


def _cholesky_impl(a: Any) -> Any:
    _check_square(a, "cholesky")
    return _call("cholesky", np.linalg.cholesky, a)


def _phi(x: Any) -> Any:
    n = shape_of(x)[-1]
    return x * (np.tril(np.ones((n, n)), -1) + 0.5 * np.eye(n))


def _cholesky_jvp(tangents, xs, out, nb):
    ds = _symmetric_from_triangle(tangents[0], upper=False)
    inner = mT(R["solve"](out, mT(R["solve"](out, ds))))  # L^-1 dS L^-T
    return R["matmul"](out, _phi(inner))


def _cholesky_vjp(g, xs, out, needed):
    p = _phi(R["matmul"](mT(out), g))
    lt = mT(out)
    return (_triangle_cotangent(mT(R["solve"](lt, mT(R["solve"](lt, p)))), upper=False),)  # L^-T P L^-1


register(
    Op(
        "cholesky",
        _cholesky_impl,
        jvp=_cholesky_jvp,
        vjp=_cholesky_vjp,
        sympy=_per_matrix(lambda sp, a: _array(_matrix(sp, _from_lower(a)).cholesky(hermitian=False))),
        examples=lambda rng: [((_spd(rng, 3, 3),), {}), ((_spd(rng, 2, 3, 3),), {})],
        numpy_names=(np.linalg.cholesky,),
        complex_step=False,
        kinks="complex input means a Hermitian factorisation (conjugates), not the analytic extension: "
        "complex step does not apply; A must be positive definite (numpy's LinAlgError otherwise)",
        doc="Cholesky factor L (A = L L^T; numpy reads A's lower triangle, so the upper one has "
        "derivative 0); rule from Murray 2016: dL = L Phi(L^-1 dS L^-T).",
    )
)


# --- repeated eigenvalues / singular values -----------------------------------------------------


def _gaps(values: Any) -> tuple[Any, np.ndarray]:
    """(F, degenerate): F_ij = 1 / (v_j - v_i) off the diagonal and 0 where the two values are
    one repeated value (`degenerate`, a plain boolean mask), from registry ops on `values`."""
    v = np.asarray(primal(values))
    scale = np.max(np.abs(v), axis=-1, keepdims=True)[..., None] if v.size else 1.0
    diff_p = v[..., None, :] - v[..., :, None]
    n = v.shape[-1]
    degenerate = (np.abs(diff_p) <= DEGENERATE_RTOL * np.maximum(scale, np.finfo(float).tiny)) & ~np.eye(n, dtype=bool)
    safe = ~degenerate & ~np.eye(n, dtype=bool)
    diff = _row(values) - _col(values)
    return R["where"](safe, 1.0 / R["where"](safe, diff, 1.0), 0.0), degenerate


def _refuse_degenerate(op_name: str, what: str, advice: str) -> UndefinedDerivativeError:
    return UndefinedDerivativeError(
        f"np.linalg.{op_name}: {what} are repeated here, so the {advice} are not unique (any basis of their "
        "space is one) and have no derivative. For the values alone use "
        + ("np.linalg.eigvalsh." if op_name == "eigh" else "np.linalg.svd(a, compute_uv=False).")
    )


def _check_unused(cotangent: Any, columns: np.ndarray, error: Any) -> None:
    """Refuse when a cotangent reaches vectors (`columns`, a mask over the last axis) that have
    no derivative: an exact zero cotangent there means the loss does not use them."""
    if columns.any() and np.any(np.asarray(primal(cotangent))[..., np.broadcast_to(columns, columns.shape)] != 0):
        raise error


def _repeated_columns(degenerate: np.ndarray) -> np.ndarray:
    """Which columns (of every matrix in a stack) belong to a repeated value."""
    return np.any(degenerate, axis=tuple(range(degenerate.ndim - 1)))


# --- eigh, eigvalsh -------------------------------------------------------------------------------


def _eigh_impl(a: Any, UPLO: str = "L") -> Any:
    _check_square(a, "eigh")
    w, v = _call("eigh", np.linalg.eigh, a, UPLO=UPLO)
    return np.concatenate([w[..., None, :], v], axis=-2)


def _unpack_eigh(out: Any) -> tuple[Any, Any]:
    return out[..., 0, :], out[..., 1:, :]


def _eigh_jvp(tangents, xs, out, nb, UPLO="L"):
    w, v = _unpack_eigh(out)
    f, degenerate = _gaps(w)
    if degenerate.any():
        raise _refuse_degenerate("eigh", "eigenvalues", "eigenvectors")
    ds = _symmetric_from_triangle(tangents[0], upper=UPLO == "U")
    p = _mm(mT(v), ds, v)
    dw = _diag_part(p)
    dv = R["matmul"](v, f * p)
    return R["concatenate"](R["reshape"](dw, shape=shape_of(dw)[:-1] + (1,) + shape_of(dw)[-1:]), dv, axis=-2)


def _eigh_vjp(g, xs, out, needed, UPLO="L"):
    w, v = _unpack_eigh(out)
    gw, gv = _unpack_eigh(g)
    f, degenerate = _gaps(w)
    _check_unused(gv, _repeated_columns(degenerate), _refuse_degenerate("eigh", "eigenvalues", "eigenvectors"))
    k = R["matmul"](mT(v), gv)
    m = _mm(v, _diag_embed(gw) + f * k, mT(v))
    return (_triangle_cotangent(m, upper=UPLO == "U"),)


def _symmetric(rng: np.random.Generator, *shape: int) -> np.ndarray:
    m = _rand(rng, *shape)
    return m + np.swapaxes(m, -1, -2)


register(
    Op(
        "eigh",
        _eigh_impl,
        params={"UPLO": "L"},
        jvp=_eigh_jvp,
        vjp=_eigh_vjp,
        sympy=sympy_refusal(
            "np.linalg.eigh", "sympy's eigenvectors have no fixed order, sign or norm to match numpy's"
        ),
        examples=lambda rng: [
            ((_symmetric(rng, 3, 3),), {}),
            ((_rand(rng, 2, 3, 3),), {"UPLO": "U"}),
        ],
        reached_by="np.linalg.eigh(a) and np.linalg.eig of a symmetric matrix (eigenvalues, eigenvectors)",
        complex_step=False,
        kinks="eigenvectors at a repeated eigenvalue have no derivative: refused (forward mode), or in reverse "
        "mode when the loss uses them; complex input means a Hermitian "
        "matrix (conjugates), not the analytic extension",
        doc="Symmetric eigendecomposition, eigenvalues ascending (value packed as [w; V], shape (..., n+1, n)); "
        "numpy reads one triangle (UPLO). dw = diag(V^T dA V), dV = V (F o V^T dA V), F_ij = 1/(w_j - w_i). "
        "The symbolic engine refuses it (sympy has no counterpart with numpy's conventions).",
    )
)


def _eigvalsh_impl(a: Any, UPLO: str = "L") -> Any:
    _check_square(a, "eigvalsh")
    return _call("eigvalsh", np.linalg.eigvalsh, a, UPLO=UPLO)


def _eigenvectors(a: Any, UPLO: str) -> Any:
    return _unpack_eigh(R["eigh"](a, UPLO=UPLO))[1]


def _eigvalsh_jvp(tangents, xs, out, nb, UPLO="L"):
    v = _eigenvectors(xs[0], UPLO)
    return _diag_part(_mm(mT(v), _symmetric_from_triangle(tangents[0], upper=UPLO == "U"), v))


def _eigvalsh_vjp(g, xs, out, needed, UPLO="L"):
    v = _eigenvectors(xs[0], UPLO)
    return (_triangle_cotangent(_mm(v, _diag_embed(g), mT(v)), upper=UPLO == "U"),)


register(
    Op(
        "eigvalsh",
        _eigvalsh_impl,
        params={"UPLO": "L"},
        jvp=_eigvalsh_jvp,
        vjp=_eigvalsh_vjp,
        vjp_needs_out=False,
        sympy=sympy_refusal("np.linalg.eigvalsh", "sympy's eigenvalues are roots of a polynomial, not sorted floats"),
        examples=lambda rng: [((_symmetric(rng, 3, 3),), {}), ((_rand(rng, 2, 3, 3),), {"UPLO": "U"})],
        numpy_names=(np.linalg.eigvalsh,),
        complex_step=False,
        kinks="at a repeated eigenvalue the ascending eigenvalues are not differentiable (they cross): "
        "d w_i = v_i^T dA v_i uses the eigenvectors numpy returned (like max at a tie); sums over the "
        "repeated ones are exact. Second derivatives there are refused (they need eigenvector derivatives)",
        doc="Eigenvalues of a symmetric matrix, ascending; d w_i = v_i^T dA v_i.",
    )
)


# --- svd ----------------------------------------------------------------------------------------


def _svd_shapes(shape: tuple[int, ...], full_matrices: bool) -> tuple[int, int, int, int, int]:
    m, n = shape[-2], shape[-1]
    k = min(m, n)
    return m, n, k, (m if full_matrices else k), (n if full_matrices else k)


def _svd_impl(a: Any, full_matrices: bool = True) -> Any:
    _check_matrix(a, "svd")
    u, s, vh = _call("svd", np.linalg.svd, a, full_matrices=full_matrices)
    batch = np.shape(a)[:-2]
    v = np.swapaxes(vh, -1, -2)
    return np.concatenate([u.reshape(batch + (-1,)), s, v.reshape(batch + (-1,))], axis=-1)


def unpack_svd(out: Any, shape: tuple[int, ...], full_matrices: bool) -> tuple[Any, Any, Any]:
    """(U, S, V) from the svd op's packed value [U.ravel(), S, V.ravel()] (V = Vh^T)."""
    m, n, k, cu, cv = _svd_shapes(shape, full_matrices)
    batch = shape_of(out)[:-1]
    u = R["reshape"](out[..., : m * cu], shape=batch + (m, cu))
    s = out[..., m * cu : m * cu + k]
    v = R["reshape"](out[..., m * cu + k :], shape=batch + (n, cv))
    return u, s, v


def _pack_svd(u: Any, s: Any, v: Any) -> Any:
    flat = lambda x: R["reshape"](x, shape=shape_of(x)[:-2] + (-1,))  # noqa: E731
    return R["concatenate"](flat(u), s, flat(v), axis=-1)


def _svd_factors(xs, out, full_matrices):
    a = xs[0]
    m, n, k, cu, cv = _svd_shapes(shape_of(a), full_matrices)
    u, s, v = unpack_svd(out, shape_of(a), full_matrices)
    uk, vk = u[..., :, :k], v[..., :, :k]
    f, degenerate = _gaps(s * s)
    sp = np.asarray(primal(s))
    smallest = sp[..., -1] if k else np.ones(1)
    if m != n and np.any(smallest <= DEGENERATE_RTOL * np.max(np.abs(sp), initial=0.0)):
        raise UndefinedDerivativeError(
            "np.linalg.svd: a singular value is 0 here and the matrix is not square, so the singular vectors "
            "have no derivative; for the values alone use np.linalg.svd(a, compute_uv=False)"
        )
    return a, (m, n, k, cu, cv), u, s, v, uk, vk, f, degenerate


def _svd_jvp(tangents, xs, out, nb, full_matrices=True):
    a, (m, n, k, cu, cv), u, s, v, uk, vk, f, degenerate = _svd_factors(xs, out, full_matrices)
    if degenerate.any():
        raise _refuse_degenerate("svd", "singular values", "singular vectors")
    if full_matrices and abs(m - n) >= 2:
        raise UndefinedDerivativeError(
            "np.linalg.svd(a, full_matrices=True) of a non-square matrix in forward mode: the extra columns of "
            f"{'U' if m > n else 'Vh'} span the orthogonal complement in a basis numpy picks arbitrarily, which has "
            "no derivative. Use full_matrices=False (or reverse mode, when the loss does not use those columns)"
        )
    da = tangents[0]
    p = _mm(mT(uk), da, vk)
    ds = _diag_part(p)
    sm = _diag_embed(s)
    du = R["matmul"](uk, f * (R["matmul"](p, sm) + R["matmul"](sm, mT(p))))
    dv = R["matmul"](vk, f * (R["matmul"](sm, p) + R["matmul"](mT(p), sm)))
    inv_s = _row(1.0 / s)
    if m > k:
        du = du + (da - R["matmul"](uk, R["matmul"](mT(uk), da))) @ vk * inv_s
    if n > k:
        dv = dv + (mT(da) - R["matmul"](vk, R["matmul"](mT(vk), mT(da)))) @ uk * inv_s
    if cu > k:  # the complement's columns move only to stay orthogonal to U: dP = -U dU^T P
        perp = u[..., :, k:]
        du = R["concatenate"](du, -_mm(uk, mT(du), perp), axis=-1)
    if cv > k:
        perp = v[..., :, k:]
        dv = R["concatenate"](dv, -_mm(vk, mT(dv), perp), axis=-1)
    return _pack_svd(du, ds, dv)


def _svd_vjp(g, xs, out, needed, full_matrices=True):
    a, (m, n, k, cu, cv), u, s, v, uk, vk, f, degenerate = _svd_factors(xs, out, full_matrices)
    gu, gs, gv = unpack_svd(g, shape_of(a), full_matrices)
    if cu > k:  # the complement's cotangent, carried onto U: <gP, -U dU^T P> = <-P gP^T U, dU>
        perp, gperp = u[..., :, k:], gu[..., :, k:]
        _check_complement(gperp, "U")
        gu = gu[..., :, :k] - _mm(perp, mT(gperp), uk)
    if cv > k:
        perp, gperp = v[..., :, k:], gv[..., :, k:]
        _check_complement(gperp, "Vh")
        gv = gv[..., :, :k] - _mm(perp, mT(gperp), vk)
    refusal = _refuse_degenerate("svd", "singular values", "singular vectors")
    _check_unused(gu, _repeated_columns(degenerate), refusal)
    _check_unused(gv, _repeated_columns(degenerate), refusal)
    ku, kv = R["matmul"](mT(uk), gu), R["matmul"](mT(vk), gv)
    sm = _diag_embed(s)
    inner = R["matmul"](f * (ku - mT(ku)), sm) + _diag_embed(gs) + R["matmul"](sm, f * (kv - mT(kv)))
    ga = _mm(uk, inner, mT(vk))
    inv_s = _row(1.0 / s)
    if m > k:
        ga = ga + R["matmul"]((gu - R["matmul"](uk, ku)) * inv_s, mT(vk))
    if n > k:
        ga = ga + R["matmul"](uk, mT((gv - R["matmul"](vk, kv)) * inv_s))
    return (ga,)


def _check_complement(gperp: Any, which: str) -> None:
    """The complement's basis is arbitrary when it has two or more columns: refused when the
    loss uses it (one column is unique up to its sign, and differentiated)."""
    if shape_of(gperp)[-1] >= 2:
        columns = np.ones(shape_of(gperp)[-1], dtype=bool)
        error = UndefinedDerivativeError(
            f"np.linalg.svd(a, full_matrices=True): the loss uses the extra columns of {which}, a basis of the "
            "orthogonal complement that numpy picks arbitrarily (it has no derivative). Use full_matrices=False"
        )
        _check_unused(gperp, columns, error)


register(
    Op(
        "svd",
        _svd_impl,
        params={"full_matrices": True},
        jvp=_svd_jvp,
        vjp=_svd_vjp,
        sympy=sympy_refusal("np.linalg.svd", "sympy has no singular value decomposition"),
        examples=lambda rng: [
            ((_rand(rng, 3, 3),), {}),
            ((_rand(rng, 4, 3),), {"full_matrices": False}),
            ((_rand(rng, 2, 2, 3),), {"full_matrices": False}),
            ((_rand(rng, 3, 2),), {"full_matrices": True}),
            ((_rand(rng, 2, 3),), {"full_matrices": True}),
        ],
        reached_by="np.linalg.svd(a, full_matrices=..., compute_uv=True) -> (U, S, Vh)",
        complex_step=False,
        kinks="singular vectors at a repeated singular value (or a zero one of a non-square matrix) have no "
        "derivative: refused (in reverse mode when the loss uses them); so are the extra columns of "
        "full_matrices=True when there are two or more (an arbitrary basis of the complement)",
        doc="Singular value decomposition (value packed as [U, S, V] flattened); rules of Townsend 2016: "
        "dS = diag(U^T dA V), dU = U (F o (P S + S P^T)) + (I - U U^T) dA V S^-1, F_ij = 1/(s_j^2 - s_i^2). "
        "The symbolic engine refuses it (sympy has no SVD).",
    )
)


def _svdvals_impl(a: Any) -> Any:
    _check_matrix(a, "svd")
    return _call("svd", np.linalg.svd, a, compute_uv=False)


def _singular_vectors(a: Any) -> tuple[Any, Any]:
    u, _, v = unpack_svd(R["svd"](a, full_matrices=False), shape_of(a), False)
    return u, v


register(
    Op(
        "svdvals",
        _svdvals_impl,
        jvp=lambda tangents, xs, out, nb: _diag_part(
            _mm(mT(_singular_vectors(xs[0])[0]), tangents[0], _singular_vectors(xs[0])[1])
        ),
        vjp=lambda g, xs, out, needed: (
            _mm(_singular_vectors(xs[0])[0], _diag_embed(g), mT(_singular_vectors(xs[0])[1])),
        ),
        vjp_needs_out=False,
        sympy=sympy_refusal("np.linalg.svd(a, compute_uv=False)", "sympy has no singular value decomposition"),
        examples=lambda rng: [((_rand(rng, 3, 3),), {}), ((_rand(rng, 4, 2),), {}), ((_rand(rng, 2, 2, 3),), {})],
        numpy_names=(np.linalg.svdvals,) if hasattr(np.linalg, "svdvals") else (),
        reached_by="np.linalg.svd(a, compute_uv=False), np.linalg.norm(a, 'nuc' / 2 / -2)",
        complex_step=False,
        kinks="at a repeated singular value the descending values are not differentiable (they cross): "
        "d s_i = u_i^T dA v_i uses the vectors numpy returned (like max at a tie); at a zero singular value "
        "s is |.|-like (a kink)",
        doc="Singular values, descending; d s_i = u_i^T dA v_i.",
    )
)


# --- qr ---------------------------------------------------------------------------------------------


def _qr_impl(a: Any) -> Any:
    s = np.shape(a)
    if len(s) < 2 or s[-2] < s[-1]:
        raise np.linalg.LinAlgError(f"the qr op takes a square or tall matrix (m >= n), got shape {s}")
    q, r = np.linalg.qr(a)
    return np.concatenate([q, r], axis=-2)


def _unpack_qr(out: Any, n: int) -> tuple[Any, Any]:
    m = shape_of(out)[-2] - n
    return out[..., :m, :], out[..., m:, :]


def _right_solve(x: Any, r: Any) -> Any:
    """x R^-1."""
    return mT(R["solve"](mT(r), mT(x)))


def _qr_factors(xs, out):
    n = shape_of(xs[0])[-1]
    q, r = _unpack_qr(out, n)
    diag = np.abs(np.diagonal(np.asarray(primal(r)), axis1=-2, axis2=-1))
    if np.any(diag <= DEGENERATE_RTOL * np.max(diag, initial=0.0)):
        raise UndefinedDerivativeError(
            "np.linalg.qr: the matrix does not have full column rank here (R has a zero on its diagonal), "
            "so Q has no derivative"
        )
    return q, r


def _qr_jvp(tangents, xs, out, nb):
    q, r = _qr_factors(xs, out)
    da = tangents[0]
    n = shape_of(r)[-1]
    da_r = _right_solve(da, r)
    c = R["matmul"](mT(q), da_r)
    low = c * np.tril(np.ones((n, n)), -1)
    omega = low - mT(low)
    dr = R["matmul"](c - omega, r)
    dq = R["matmul"](q, omega) + da_r - R["matmul"](q, c)
    return R["concatenate"](dq, dr, axis=-2)


def _qr_vjp(g, xs, out, needed):
    q, r = _qr_factors(xs, out)
    n = shape_of(r)[-1]
    gq, gr = _unpack_qr(g, n)
    m1 = R["matmul"](gr, mT(r))
    m2 = R["matmul"](mT(q), gq) - m1
    nmat = m1 + (m2 - mT(m2)) * np.tril(np.ones((n, n)), -1)
    x = R["matmul"](q, nmat) + gq - R["matmul"](q, R["matmul"](mT(q), gq))
    return (mT(R["solve"](r, mT(x))),)  # x R^-T


register(
    Op(
        "qr",
        _qr_impl,
        jvp=_qr_jvp,
        vjp=_qr_vjp,
        sympy=sympy_refusal("np.linalg.qr", "sympy's QR decomposition has other signs than numpy's (Householder)"),
        examples=lambda rng: [((_rand(rng, 3, 3),), {}), ((_rand(rng, 4, 2),), {}), ((_rand(rng, 2, 3, 2),), {})],
        reached_by="np.linalg.qr(a) and qr(a, mode='r') (value packed as [Q; R], shape (..., m + n, n))",
        complex_step=False,
        kinks="needs full column rank (R invertible): refused otherwise; complex input means a unitary Q "
        "(conjugates), not the analytic extension",
        doc="Reduced QR of a square or tall matrix (wide ones: np.linalg.qr splits them); rule of Walter and "
        "Lehmann 2018: C = Q^T dA R^-1, dQ = Q Om + (I - Q Q^T) dA R^-1, dR = (C - Om) R. "
        "The symbolic engine refuses it.",
    )
)


# --- pinv --------------------------------------------------------------------------------------------


def _pinv_impl(a: Any) -> Any:
    _check_matrix(a, "pinv")
    return _call("pinv", np.linalg.pinv, a)


def _check_full_rank(a: Any) -> None:
    a = np.asarray(primal(a))
    s = np.linalg.svd(a, compute_uv=False)
    tol = max(a.shape[-2:]) * np.finfo(float).eps * np.max(s, axis=-1, initial=0.0)
    if np.any(np.min(s, axis=-1, initial=np.inf) <= tol):
        raise UndefinedDerivativeError(
            "np.linalg.pinv: the matrix is rank-deficient here; the pseudo-inverse jumps when the rank changes, so "
            "it has no derivative (adkit differentiates pinv of full-rank matrices)"
        )


def _pinv_jvp(tangents, xs, out, nb):
    a, p, da = xs[0], out, tangents[0]
    _check_full_rank(a)
    m, n = shape_of(a)[-2:]
    dat = mT(da)
    left = np.eye(m) - R["matmul"](a, p)
    right = np.eye(n) - R["matmul"](p, a)
    return -_mm(p, da, p) + _mm(p, mT(p), dat, left) + _mm(right, dat, mT(p), p)


def _pinv_vjp(g, xs, out, needed):
    a, p = xs[0], out
    _check_full_rank(a)
    m, n = shape_of(a)[-2:]
    gt = mT(g)
    left = np.eye(m) - R["matmul"](a, p)
    right = np.eye(n) - R["matmul"](p, a)
    return (-_mm(mT(p), g, mT(p)) + _mm(left, gt, p, mT(p)) + _mm(mT(p), p, gt, right),)


register(
    Op(
        "pinv",
        _pinv_impl,
        jvp=_pinv_jvp,
        vjp=_pinv_vjp,
        sympy=_per_matrix(lambda sp, a: _array(_matrix(sp, a).pinv())),
        examples=lambda rng: [((_rand(rng, 4, 2),), {}), ((_rand(rng, 2, 3),), {}), ((_rand(rng, 2, 3, 3),), {})],
        numpy_names=(np.linalg.pinv,),
        complex_step=False,
        kinks="differentiable at full rank only (the pseudo-inverse jumps where the rank changes): refused at a "
        "rank-deficient matrix; numpy computes it through an SVD, not the analytic extension",
        doc="Moore-Penrose pseudo-inverse; rule of Golub and Pereyra 1973 (constant rank).",
    )
)


# --- eig (real eigenvalues) --------------------------------------------------------------------------


def _eig_impl(a: Any) -> Any:
    _check_square(a, "eig")
    w, v = _call("eig", np.linalg.eig, a)
    if np.iscomplexobj(w):
        raise AdkitTypeError(
            "np.linalg.eig: this matrix has complex eigenvalues (and eigenvectors); adkit's traced engines are "
            "real and do not differentiate complex results. For a symmetric matrix use np.linalg.eigh; otherwise "
            "use engine='numeric' on a real-valued function of them"
        )
    return np.concatenate([w[..., None, :], v], axis=-2)


def _eig_factors(out: Any) -> tuple[Any, Any, Any]:
    w, v = _unpack_eigh(out)
    f, degenerate = _gaps(w)
    if degenerate.any() or not np.all(np.isfinite(np.linalg.cond(np.asarray(primal(v))))):
        raise UndefinedDerivativeError(
            "np.linalg.eig: eigenvalues are repeated here (or the matrix is defective), so the eigenvectors, and "
            "for a non-symmetric matrix the eigenvalues too, have no derivative"
        )
    return w, v, f


def _eig_jvp(tangents, xs, out, nb):
    w, v, f = _eig_factors(out)
    p = R["solve"](v, R["matmul"](tangents[0], v))  # V^-1 dA V
    dv = R["matmul"](v, f * p)
    dv = dv - v * _row(_diag_part(R["matmul"](mT(v), dv)))  # numpy's unit-norm columns
    dw = _diag_part(p)
    return R["concatenate"](_row(dw), dv, axis=-2)


def _eig_vjp(g, xs, out, needed):
    w, v, f = _eig_factors(out)
    gw, gv = _unpack_eigh(g)
    e = _diag_embed(_diag_part(R["matmul"](mT(v), gv)))
    n = _diag_embed(gw) + f * (R["matmul"](mT(v), gv) - _mm(mT(v), v, e))
    return (R["solve"](mT(v), R["matmul"](n, mT(v))),)  # V^-T N V^T


register(
    Op(
        "eig",
        _eig_impl,
        jvp=_eig_jvp,
        vjp=_eig_vjp,
        sympy=sympy_refusal("np.linalg.eig", "sympy's eigenvectors have no fixed order, sign or norm to match numpy's"),
        examples=lambda rng: [
            ((_symmetric(rng, 3, 3),), {}),
            ((0.3 * _rand(rng, 3, 3) + np.diag([1.0, 3.0, 5.0]),), {}),  # Gershgorin: real eigenvalues
            ((_symmetric(rng, 2, 2, 2),), {}),
        ],
        reached_by="np.linalg.eig(a) -> (eigenvalues, eigenvectors) of a matrix with real eigenvalues "
        "(every symmetric one); np.linalg.eigvals",
        complex_step=False,
        kinks="complex eigenvalues are refused (adkit's engines are real); repeated eigenvalues too (no "
        "derivative); numpy's complex input path is not the analytic extension",
        doc="Eigendecomposition with real eigenvalues (value packed as [w; V], numpy's order and unit-norm "
        "columns): P = V^-1 dA V, dw = diag(P), dV = V (F o P) - V diag(V^T V (F o P)). "
        "The symbolic engine refuses it.",
    )
)

__all__ = ["mT", "sympy_refusal", "unpack_svd"]
