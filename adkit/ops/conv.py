"""Convolutions [SCH]: 1-D (numpy's np.convolve) and the lecture's 2-D convolution.

    z_{x,y} = sum_{a,b} w_{a,b} h_{x-a, y-b}                     (conv2d, true convolution)

Both are bilinear, so the JVP is conv(t_h, w) + conv(h, t_w), and the VJP is again a
convolution: the gradient with respect to the input is the cotangent convolved with the
filter rotated by 180 degrees (the lecture's delta^l = delta^{l+1} * rot180(w)), and the
gradient with respect to the filter is a correlation of the input with the cotangent.
The rules are written with the ops themselves, so they are differentiable to any order.
Modes: "full" (every overlap) and "valid" (only complete overlaps).
"""

from __future__ import annotations

from typing import Any

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from adkit.ops.array import per_direction
from adkit.ops.core import REGISTRY, Op, register, shape_of

MODES = ("full", "valid")


def _check_mode(mode: str) -> None:
    if mode not in MODES:
        raise ValueError(f"convolution mode must be one of {', '.join(MODES)}, got {mode!r}")


def _flip(x: Any) -> Any:
    return REGISTRY["getitem"](x, index=(slice(None, None, -1),) * len(shape_of(x)))


# --- 1-D ---------------------------------------------------------------------------------------


def _convolve_impl(a: Any, v: Any, mode: str = "full") -> Any:
    _check_mode(mode)
    a, v = np.asarray(a), np.asarray(v)
    if a.ndim != 1 or v.ndim != 1:
        raise ValueError("convolve takes two 1-D arrays")
    if mode == "valid" and len(v) > len(a):
        a, v = v, a  # numpy's rule: valid convolution is symmetric in its arguments
    return np.convolve(a, v, mode=mode)


def _convolution_vjp(name: str, default_mode: str):
    """The VJP shared by convolve and conv2d: convolutions with flipped operands.

    full  (y[n] = sum_k a[k] v[n-k]):  ga = conv_valid(g, flip(v)), gv = conv_valid(g, flip(a))
    valid (a at least as large as v):  ga = conv_full(g, flip(v)),  gv = flip(conv_valid(a, flip(g)))
    (the lecture's delta^l = delta^{l+1} convolved with the filter rotated by 180 degrees).
    """

    def vjp(g, xs, out, needed, mode=default_mode):
        a, v = xs
        conv = REGISTRY[name]
        if mode == "valid" and shape_of(v)[0] > shape_of(a)[0]:  # 1-D valid is symmetric in a, v
            gv, ga = vjp(g, (v, a), out, needed[::-1], mode)
            return ga, gv
        if mode == "full":
            ga = conv(g, _flip(v), mode="valid") if needed[0] else None
            gv = conv(g, _flip(a), mode="valid") if needed[1] else None
        else:
            ga = conv(g, _flip(v), mode="full") if needed[0] else None
            gv = _flip(conv(a, _flip(g), mode="valid")) if needed[1] else None
        return ga, gv

    return vjp


def _bilinear_jvp(name, default_mode):
    def jvp(tangents, xs, out, nb, mode=default_mode):
        a, v = xs
        ta, tv = tangents
        op = REGISTRY[name]
        terms = []
        if ta is not None:
            terms.append(per_direction(ta, nb, lambda t: op(t, v, mode=mode)))
        if tv is not None:
            terms.append(per_direction(tv, nb, lambda t: op(a, t, mode=mode)))
        return terms[0] if len(terms) == 1 else terms[0] + terms[1]

    return jvp


register(
    Op(
        "convolve",
        _convolve_impl,
        vjp_needs_out=False,
        multilinear=True,
        args=("a", "v"),
        params={"mode": "full"},
        jvp=_bilinear_jvp("convolve", "full"),
        vjp=_convolution_vjp("convolve", "full"),
        sympy=lambda sp, a, v, mode="full": _convolve_impl(
            np.asarray(a, dtype=object), np.asarray(v, dtype=object), mode
        ),
        examples=lambda rng: [
            ((rng.uniform(-1, 1, size=5), rng.uniform(-1, 1, size=3)), {}),
            ((rng.uniform(-1, 1, size=5), rng.uniform(-1, 1, size=3)), {"mode": "valid"}),
            ((rng.uniform(-1, 1, size=2), rng.uniform(-1, 1, size=4)), {"mode": "valid"}),
        ],
        numpy_names=(np.convolve,),
        label="∗",
        doc="1-D discrete convolution (np.convolve), modes full and valid ('same' is a slice of full).",
    )
)


# --- 2-D ---------------------------------------------------------------------------------------


def _conv2d_impl(x: Any, w: Any, mode: str = "valid") -> Any:
    _check_mode(mode)
    x, w = np.asarray(x), np.asarray(w)
    if x.ndim != 2 or w.ndim != 2:
        raise ValueError("conv2d takes a 2-D input and a 2-D filter")
    k, m = w.shape
    if mode == "full":
        x = np.pad(x, ((k - 1, k - 1), (m - 1, m - 1)))
    if x.shape[0] < k or x.shape[1] < m:
        raise ValueError(f"conv2d valid mode needs the input {x.shape} at least as large as the filter {w.shape}")
    windows = sliding_window_view(x, (k, m))
    return np.einsum("ijab,ab->ij", windows, w[::-1, ::-1])


register(
    Op(
        "conv2d",
        _conv2d_impl,
        vjp_needs_out=False,
        multilinear=True,
        args=("x", "w"),
        params={"mode": "valid"},
        jvp=_bilinear_jvp("conv2d", "valid"),
        vjp=_convolution_vjp("conv2d", "valid"),
        sympy=lambda sp, x, w, mode="valid": _conv2d_impl(
            np.asarray(x, dtype=object), np.asarray(w, dtype=object), mode
        ),
        examples=lambda rng: [
            ((rng.uniform(-1, 1, size=(4, 5)), rng.uniform(-1, 1, size=(2, 3))), {}),
            ((rng.uniform(-1, 1, size=(3, 3)), rng.uniform(-1, 1, size=(2, 2))), {"mode": "full"}),
        ],
        label="∗",
        doc="The lecture's 2-D convolution z_{x,y} = sum_{a,b} w_{ab} h_{x-a,y-b} (modes valid and "
        "full). Backward: the input's gradient is the cotangent convolved with the filter rotated "
        "by 180 degrees; the filter's is a correlation of the input with the cotangent.",
    )
)

__all__ = ["MODES"]
