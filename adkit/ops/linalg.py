"""Linear algebra: np.linalg.inv, solve and det on square 2-D matrices.

    d(A^-1) = -A^-1 dA A^-1          VJP: -A^-T G A^-T
    x = A^-1 b:  dx = A^-1 (db - dA x)    VJP: gb = A^-T g, gA = -gb x^T
    d det A = det A * tr(A^-1 dA)     VJP: g det A A^-T

Every rule is written with registry ops (solve, inv, matmul, transpose), so it is
differentiable again; a singular matrix raises numpy's LinAlgError, named.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from adkit.ops.array import per_direction
from adkit.ops.core import REGISTRY, Op, register, shape_of


def _square(a: Any, name: str) -> None:
    s = np.shape(a)
    if len(s) != 2 or s[0] != s[1]:
        raise ValueError(f"np.linalg.{name} on traced values takes one square 2-D matrix, got shape {s}")


def _t(x: Any) -> Any:
    return REGISTRY["transpose"](x)


def _inv_impl(a: Any) -> Any:
    _square(a, "inv")
    return np.linalg.inv(a)


def _inv_jvp(tangents, xs, out, nb):
    matmul = REGISTRY["matmul"]
    return per_direction(tangents[0], nb, lambda t: -matmul(matmul(out, t), out))


def _inv_vjp(g, xs, out, needed):
    matmul = REGISTRY["matmul"]
    return (-matmul(matmul(_t(out), g), _t(out)),)


register(
    Op(
        "inv",
        _inv_impl,
        jvp=_inv_jvp,
        vjp=_inv_vjp,
        sympy=lambda sp, a: np.array(sp.Matrix(np.asarray(a, dtype=object)).inv().tolist(), dtype=object),
        examples=lambda rng: [((rng.uniform(-1, 1, size=(3, 3)) + 3 * np.eye(3),), {})],
        numpy_names=(np.linalg.inv,),
        doc="Matrix inverse; backward -A^-T G A^-T.",
    )
)


def _solve_impl(a: Any, b: Any) -> Any:
    _square(a, "solve")
    if np.ndim(b) not in (1, 2) or np.shape(b)[0] != np.shape(a)[0]:
        raise ValueError(f"np.linalg.solve: b must have shape ({np.shape(a)[0]},) or ({np.shape(a)[0]}, k)")
    return np.linalg.solve(a, b)


def _outer_or_matmul(u: Any, x: Any) -> Any:
    if len(shape_of(x)) == 1:
        return REGISTRY["reshape"](u, shape=(-1, 1)) * REGISTRY["reshape"](x, shape=(1, -1))
    return REGISTRY["matmul"](u, _t(x))


def _solve_jvp(tangents, xs, out, nb):
    a, _ = xs
    ta, tb = tangents
    solve, matmul = REGISTRY["solve"], REGISTRY["matmul"]
    total = None
    if tb is not None:
        total = per_direction(tb, nb, lambda t: solve(a, t))
    if ta is not None:
        term = per_direction(ta, nb, lambda t: -solve(a, matmul(t, out)))
        total = term if total is None else total + term
    return total


def _solve_vjp(g, xs, out, needed):
    a, _ = xs
    gb = REGISTRY["solve"](_t(a), g)
    return (-_outer_or_matmul(gb, out) if needed[0] else None, gb if needed[1] else None)


register(
    Op(
        "solve",
        _solve_impl,
        args=("a", "b"),
        jvp=_solve_jvp,
        vjp=_solve_vjp,
        sympy=lambda sp, a, b: np.array(
            (sp.Matrix(np.asarray(a, dtype=object)).inv() * sp.Matrix(np.asarray(b, dtype=object))).tolist(),
            dtype=object,
        ).reshape(np.shape(b)),
        examples=lambda rng: [
            ((rng.uniform(-1, 1, size=(3, 3)) + 3 * np.eye(3), rng.uniform(-1, 1, size=3)), {}),
            ((rng.uniform(-1, 1, size=(3, 3)) + 3 * np.eye(3), rng.uniform(-1, 1, size=(3, 2))), {}),
        ],
        numpy_names=(np.linalg.solve,),
        doc="Solve A x = b (b a vector or a matrix); backward gb = A^-T g, gA = -gb x^T.",
    )
)


def _det_impl(a: Any) -> Any:
    _square(a, "det")
    return np.linalg.det(a)


def _det_jvp(tangents, xs, out, nb):
    (a,) = xs
    inv_t = _t(REGISTRY["inv"](a))
    axes = (nb, nb + 1)
    return out * REGISTRY["sum"](tangents[0] * inv_t, axis=axes)


def _det_vjp(g, xs, out, needed):
    (a,) = xs
    return (g * out * _t(REGISTRY["inv"](a)),)


register(
    Op(
        "det",
        _det_impl,
        jvp=_det_jvp,
        vjp=_det_vjp,
        sympy=lambda sp, a: sp.Matrix(np.asarray(a, dtype=object)).det(),
        examples=lambda rng: [((rng.uniform(-1, 1, size=(3, 3)) + 2 * np.eye(3),), {})],
        numpy_names=(np.linalg.det,),
        kinks="needs an invertible matrix for its derivative (A^-T)",
        doc="Determinant; backward g det(A) A^-T (Jacobi's formula).",
    )
)

__all__: list[str] = []
