"""np.fft: the discrete Fourier transforms as linear ops.

Every transform here is linear, so its JVP is the same transform of the tangent, and its VJP
the transpose (JAX's convention, README "Complex numbers": cotangents pair with tangents by
Re(c t), so a complex-linear map's VJP is its plain transpose, no conjugate). The DFT matrix
F_n is symmetric, so the transpose of a transform is the same transform of the cotangent,
followed by the transpose of numpy's cropping / zero padding to `n`. The real transforms
need more care: rfft keeps the first n//2 + 1 outputs of a real input (its transpose
zero-pads the cotangent, transforms, and keeps the real part); irfft rebuilds the other half
of the spectrum from conjugates, which makes it real-linear only, and its transpose weights
each kept frequency by how often it appears in the full spectrum (1 for 0 and n/2, else 2).

numpy's fft, fft2, ifft, ... (adkit.numpy_api) are fftn / ifftn / rfftn / irfftn with their
`s` and `axes`. sympy has no FFT: the symbolic engine refuses these ops by name.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from adkit.ops.core import REGISTRY, Op, is_complex, primal, register, shape_of

NO_SYMPY = "sympy has no discrete Fourier transform: use engine='reverse' or 'forward'"


def plan(shape: tuple[int, ...], s: Any, axes: Any, c2r: bool = False) -> tuple[tuple[int, ...], tuple[int, ...]]:
    """numpy's rules for (s, axes), made explicit: the transformed axes (non-negative) and
    the transform length along each (irfftn: 2 (m - 1) along the last axis by default)."""
    nd = len(shape)
    if axes is None:
        axes = tuple(range(nd)) if s is None else tuple(range(nd - len(s), nd))
    axes = tuple(int(a) % nd for a in axes) if nd else tuple(axes)
    if s is None:
        sizes = [shape[a] for a in axes]
        if c2r and sizes:
            sizes[-1] = 2 * (sizes[-1] - 1)
    else:
        sizes = list(s)
    return axes, tuple(int(n) for n in sizes)


def _resize(v: Any, axis: int, length: int) -> Any:
    """v cropped or zero-padded to `length` along `axis`: the transpose of numpy's own
    cropping / padding of an input to the transform length."""
    shape = shape_of(v)
    have = shape[axis]
    if have == length:
        return v
    if have > length:
        index = [slice(None)] * len(shape)
        index[axis] = slice(0, length)
        return REGISTRY["getitem"](v, index=tuple(index))
    pad = list(shape)
    pad[axis] = length - have
    return REGISTRY["concatenate"](v, np.zeros(pad, dtype=np.result_type(primal(v))), axis=axis)


def _back_to(c: Any, x_shape: tuple[int, ...], axes: tuple[int, ...]) -> Any:
    for a in axes:
        c = _resize(c, a, x_shape[a])
    return c


def _shifted(axes: tuple[int, ...], nb: int) -> tuple[int, ...]:
    return tuple(a + nb for a in axes)


def _c2c(name: str, numpy_fn: Any) -> None:
    """fftn or ifftn: complex-linear, F symmetric: VJP = the same transform of g."""

    def impl(x: Any, s: Any = None, axes: Any = None, norm: Any = None) -> Any:
        axes_, s_ = plan(np.shape(x), s, axes)
        return numpy_fn(x, s=s_, axes=axes_, norm=norm)

    def jvp(tangents, xs, out, nb, s=None, axes=None, norm=None):
        axes_, s_ = plan(shape_of(xs[0]), s, axes)
        return REGISTRY[name](tangents[0], s=s_, axes=_shifted(axes_, nb), norm=norm)

    def vjp(g, xs, out, needed, s=None, axes=None, norm=None):
        x_shape = shape_of(xs[0])
        axes_, s_ = plan(x_shape, s, axes)
        return (_back_to(REGISTRY[name](g, s=s_, axes=axes_, norm=norm), x_shape, axes_),)

    register(
        Op(
            name,
            impl,
            params={"s": None, "axes": None, "norm": None},
            jvp=jvp,
            vjp=vjp,
            vjp_needs_out=False,
            linear=True,
            complex_ok=True,
            complex_step=False,
            sympy_refusal=NO_SYMPY,
            kinks="none (linear); complex output, so complex-step does not apply",
            examples=_examples,
            numpy_names=(numpy_fn,),
            doc=f"np.fft.{name} (and its 1-d / 2-d forms): linear, VJP = np.fft.{name} of the cotangent.",
        )
    )


def _rfftn_impl(x: Any, s: Any = None, axes: Any = None, norm: Any = None) -> Any:
    axes_, s_ = plan(np.shape(x), s, axes)
    return np.fft.rfftn(x, s=s_, axes=axes_, norm=norm)


def _rfftn_jvp(tangents, xs, out, nb, s=None, axes=None, norm=None):
    axes_, s_ = plan(shape_of(xs[0]), s, axes)
    return REGISTRY["rfftn"](tangents[0], s=s_, axes=_shifted(axes_, nb), norm=norm)


def _rfftn_vjp(g, xs, out, needed, s=None, axes=None, norm=None):
    """rfftn = fft over the other axes after rfft along the last: transposes in reverse order;
    rfft's transpose zero-pads the half spectrum to n, transforms, and keeps the real part."""
    x_shape = shape_of(xs[0])
    axes_, s_ = plan(x_shape, s, axes)
    last, n = axes_[-1], s_[-1]
    c = g
    if len(axes_) > 1:
        c = REGISTRY["fftn"](c, s=s_[:-1], axes=axes_[:-1], norm=norm)
    c = REGISTRY["fftn"](_resize(c, last, n), s=(n,), axes=(last,), norm=norm)
    return (_back_to(REGISTRY["real"](c), x_shape, axes_),)


def _irfftn_impl(x: Any, s: Any = None, axes: Any = None, norm: Any = None) -> Any:
    axes_, s_ = plan(np.shape(x), s, axes, c2r=True)
    return np.fft.irfftn(x, s=s_, axes=axes_, norm=norm)


def _irfftn_jvp(tangents, xs, out, nb, s=None, axes=None, norm=None):
    axes_, s_ = plan(shape_of(xs[0]), s, axes, c2r=True)
    return REGISTRY["irfftn"](tangents[0], s=s_, axes=_shifted(axes_, nb), norm=norm)


_SCALE = {
    None: lambda n: 1.0 / n,
    "backward": lambda n: 1.0 / n,
    "ortho": lambda n: 1.0 / math.sqrt(n),
    "forward": lambda n: 1.0,
}


def _irfftn_vjp(g, xs, out, needed, s=None, axes=None, norm=None):
    """irfft along the last axis: y_j = scale * sum_k X_k w^(jk) over the Hermitian extension X
    of the kept half, so sum_j g_j y_j = Re(sum_k c_k t_k) with c_k = weight_k * scale *
    sum_j g_j w^(jk) = weight_k * scale * conj(rfft(g))_k, weight 1 at k = 0 and n/2, else 2.
    Then the transpose of ifft over the other axes (ifft itself)."""
    x_shape = shape_of(xs[0])
    axes_, s_ = plan(x_shape, s, axes, c2r=True)
    last, n = axes_[-1], s_[-1]
    m = n // 2 + 1
    weights = np.full(m, 2.0)
    weights[0] = 1.0
    if n % 2 == 0:
        weights[-1] = 1.0
    shape = [1] * len(x_shape)
    shape[last] = m
    weights = (weights * _SCALE[norm](n)).reshape(shape)
    c = REGISTRY["conj"](REGISTRY["rfftn"](g, s=(n,), axes=(last,), norm="backward")) * weights
    if len(axes_) > 1:
        c = REGISTRY["ifftn"](c, s=s_[:-1], axes=axes_[:-1], norm=norm)
    c = _back_to(c, x_shape, axes_)
    return (c if is_complex(xs[0]) else REGISTRY["real"](c),)


def _examples(rng: np.random.Generator) -> list[tuple[tuple[Any, ...], dict[str, Any]]]:
    return [
        ((rng.uniform(-1, 1, size=(5,)),), {}),
        ((rng.uniform(-1, 1, size=(4,)),), {"s": (6,), "axes": (0,), "norm": "ortho"}),
        ((rng.uniform(-1, 1, size=(3, 4)),), {"s": (2, 5), "axes": (0, 1), "norm": "forward"}),
        ((rng.uniform(-1, 1, size=(3, 4)),), {"axes": (0,)}),
    ]


_c2c("fftn", np.fft.fftn)
_c2c("ifftn", np.fft.ifftn)
register(
    Op(
        "rfftn",
        _rfftn_impl,
        params={"s": None, "axes": None, "norm": None},
        jvp=_rfftn_jvp,
        vjp=_rfftn_vjp,
        vjp_needs_out=False,
        linear=True,
        complex_step=False,
        sympy_refusal=NO_SYMPY,
        kinks="none (linear); real input only (numpy would drop an imaginary part, so a complex input is refused)",
        examples=_examples,
        numpy_names=(np.fft.rfftn,),
        doc="np.fft.rfftn (and rfft, rfft2): the first n//2 + 1 frequencies of a real input.",
    )
)
register(
    Op(
        "irfftn",
        _irfftn_impl,
        params={"s": None, "axes": None, "norm": None},
        jvp=_irfftn_jvp,
        vjp=_irfftn_vjp,
        vjp_needs_out=False,
        linear=True,
        complex_ok=True,
        complex_step=False,
        sympy_refusal=NO_SYMPY,
        kinks="none (real-linear: the imaginary parts of the 0 and n/2 frequencies are ignored, as numpy does)",
        examples=lambda rng: [
            ((rng.uniform(-1, 1, size=(5,)),), {}),
            ((rng.uniform(-1, 1, size=(4,)),), {"s": (7,), "axes": (0,), "norm": "ortho"}),
            ((rng.uniform(-1, 1, size=(3, 4)),), {"s": (2, 4), "axes": (0, 1), "norm": "forward"}),
        ],
        numpy_names=(np.fft.irfftn,),
        doc="np.fft.irfftn (and irfft, irfft2): a real signal from its half spectrum.",
    )
)


def _shift(name: str, numpy_fn: Any, inverse: str) -> None:
    def jvp(tangents, xs, out, nb, axes=None):
        nd = len(shape_of(xs[0]))
        axes_ = tuple(range(nd)) if axes is None else tuple(int(a) % nd for a in np.atleast_1d(axes))
        return REGISTRY[name](tangents[0], axes=_shifted(axes_, nb))

    register(
        Op(
            name,
            lambda x, axes=None: numpy_fn(x, axes=axes),
            params={"axes": None},
            jvp=jvp,
            vjp=lambda g, xs, out, needed, axes=None: (REGISTRY[inverse](g, axes=axes),),
            vjp_needs_out=False,
            linear=True,
            piecewise_linear=True,
            complex_ok=True,
            sympy=lambda sp, x, axes=None: numpy_fn(x, axes=axes),
            examples=lambda rng: [
                ((rng.uniform(-1, 1, size=(5,)),), {}),
                ((rng.uniform(-1, 1, size=(3, 4)),), {"axes": 1}),
            ],
            numpy_names=(numpy_fn,),
            doc=f"np.fft.{name}: a permutation (np.roll); its transpose is np.fft.{inverse}.",
        )
    )


_shift("fftshift", np.fft.fftshift, "ifftshift")
_shift("ifftshift", np.fft.ifftshift, "fftshift")
