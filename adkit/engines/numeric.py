"""Numeric engine: finite differences on any Python callable (a black box).

f is only ever *called* (at real points, or at complex points for complex-step); its
code is never read, so this engine is an independent oracle for the others and works on
functions adkit cannot trace. It is the engine the gradient checker (`adkit.check`)
stands on.

Methods (``method=``)
    "forward"     (f(x+h) - f(x)) / h                                  error O(h)
    "backward"    (f(x) - f(x-h)) / h                                  error O(h)
    "central"     (f(x+h) - f(x-h)) / 2h                  (default)    error O(h^2)
    "richardson"  central differences at h, h/2, h/4 extrapolated      error O(h^6)
                  twice (Richardson's table, with the steps' true ratios)
    "complex"     Im f(x + ih) / h: no subtraction, so no cancellation: accurate to
                  round-off, but valid only when f is analytic (see below)

Step rule (documented; the same for every entry of every argument)
    eps = np.finfo(dtype).eps, where dtype is the lower precision of the entry's dtype and
    f's output dtype (a float32 result from float64 input means float32 noise), and
        forward / backward   h = eps^(1/2) * max(1, |x|)     (balances O(h) vs eps/h)
        central              h = eps^(1/3) * max(1, |x|)     (balances O(h^2) vs eps/h)
        richardson           h = eps^(1/5) * max(1, |x|)     (base step of the table)
        complex              h = 1e-20 * max(1, |x|)         (no cancellation: tiny is fine)
    Then the step is *rounded*: x + h is computed in the entry's dtype and the step
    actually taken is h = (x + h) - x, so the displacement is exactly representable and
    the difference quotient divides by the true distance between the two points. A step
    with x + h == x is never used: the step is doubled until the point moves. A `step=`
    argument replaces the rule's base step (it is still rounded the same way).

Error estimate (``return_error=True``), per entry, an estimate of |computed - true|:
    truncation   the same difference at h/2: for an O(h^p) method the error of D(h) is
                 about |D(h) - D(h/2)| * 2^p / (2^p - 1)  (4/3 for central, 2 for one-sided);
                 for Richardson |R22 - R21|
    round-off    2 eps |f| per evaluation, divided by the distance between the points
                 (eps |f| / h for one-sided and central differences)
    estimate  =  truncation + round-off
    Complex-step: 4 eps |derivative| (no cancellation; truncation h^2 f''' / 6 is nil).

Domain edges: if f is not finite at x + h or x - h (log just right of 0), the central
difference falls back to the one-sided difference on the finite side.

Complex-step is valid only for analytic f. Before using it, f is traced once with the
reverse engine's tape (adkit's op registry records every op f uses); if any op's registry
entry says complex_step=False (abs, relu, maximum, ...) a ValueError names it. If f cannot
be traced (a true black box), f is run on complex input instead and refused when its
result is real (the imaginary part was dropped: np.abs, np.real, float(), ...) or NaN.

Public: numeric_grad, numeric_jacobian, step_size; `adkit.grad(f, engine="numeric")`
(registered below) uses Richardson extrapolation: the most accurate of the real-valued
methods, at three times the evaluations of central differences.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from adkit.errors import (
    AdkitTypeError,
    AdkitValueError,
    InPlaceUpdateError,
    NestedEngineError,
    NonFiniteDerivativeError,
)
from adkit.trees import argnums_tuple, as_input, refuse_complex_inputs, tree_flatten, tree_unflatten

METHODS = ("central", "forward", "backward", "richardson", "complex")
_POWER = {"forward": 1 / 2, "backward": 1 / 2, "central": 1 / 3, "richardson": 1 / 5}
COMPLEX_STEP = 1e-20


# --- the step rule ----------------------------------------------------------------------------------


def machine_eps(dtype: Any) -> float:
    """eps of a float dtype (float64 for anything that is not a float: ints, objects)."""
    dt = np.dtype(dtype)
    if dt.kind == "c":
        dt = np.dtype(np.finfo(dt).dtype)
    if dt.kind != "f":
        dt = np.dtype(np.float64)
    return float(np.finfo(dt).eps)


def step_size(x: Any, method: str = "central", dtype: Any = None, eps: float | None = None) -> np.ndarray:
    """The rule's base step for each entry of x (before rounding; see the module doc).

    >>> step_size(np.array([0.0, 1e300]), "central")   # eps^(1/3) * max(1, |x|)
    """
    _check_method(method)
    xa = np.asarray(x)
    if eps is None:
        eps = machine_eps(dtype if dtype is not None else (xa.dtype if xa.dtype.kind == "f" else np.float64))
    scale = np.maximum(1.0, np.abs(xa.astype(np.float64)))
    if method == "complex":
        return COMPLEX_STEP * scale
    return eps ** _POWER[method] * scale


def rounded_step(x: Any, h: float, sign: int, dtype: Any) -> tuple[Any, float]:
    """(x + sign*h computed in dtype, the distance actually moved), never zero.

    The displacement (x + h) - x is exact in floating point, so it is the step the
    difference quotient must divide by. If x + h == x (h below half an ulp of x) h is
    doubled until the point moves.
    """
    dt = np.dtype(dtype)
    x0 = dt.type(x)
    h = float(h)
    if not math.isfinite(float(x0)):
        raise AdkitValueError(f"cannot take a finite difference at a non-finite point x = {float(x0)}")
    if not h > 0 or not math.isfinite(h):
        raise AdkitValueError(f"the step must be a positive finite number, got {h}")
    for _ in range(2100):
        with np.errstate(over="ignore"):
            xs = dt.type(float(x0) + sign * h) if dt != np.float64 else x0 + sign * h
        if not math.isfinite(float(xs)):
            raise AdkitValueError(
                f"x {'+' if sign > 0 else '-'} h overflows {dt} at x = {float(x0):.6g}, h = {h:.3g}: "
                "give a smaller step= or use a one-sided method"
            )
        moved = abs(float(xs) - float(x0))
        if moved > 0:
            return xs, moved
        h *= 2.0
    raise AdkitValueError(f"no step moves x = {float(x0)!r}")  # pragma: no cover (unreachable for finite x)


def _check_method(method: str) -> None:
    if method not in METHODS:
        raise AdkitValueError(f"unknown finite-difference method {method!r}; choose one of {', '.join(METHODS)}")


# --- f as a function of the entries of its differentiated arguments ------------------------------------------


class Point:
    """f(*args) as a function of the entries of the differentiated leaves.

    Holds private, contiguous working copies of the leaves (never the caller's arrays),
    and passes f a fresh copy of each at every call (f may write into its argument);
    `at(k, i, v)` evaluates f with entry i of leaf k set to v and restores it. Python
    float leaves are passed to f as Python floats (or complex numbers for complex-step).
    """

    def __init__(
        self,
        call: Callable[[list[Any]], Any],
        leaves: Sequence[Any],
        *,
        dtype: Any = None,
        complex_values: bool = False,
    ) -> None:
        self.call = call
        self.is_float = [isinstance(leaf, (float, int)) and not isinstance(leaf, bool) for leaf in leaves]
        self.work: list[np.ndarray] = []
        for leaf in leaves:
            a = np.asarray(leaf)
            dt = np.dtype(dtype) if dtype is not None else (a.dtype if a.dtype.kind == "f" else np.dtype(np.float64))
            if complex_values:
                dt = np.dtype(np.complex128 if dt == np.float64 else np.complex64)
            self.work.append(np.array(a, dtype=dt, copy=True, order="C"))
        self.flat = [w.reshape(-1) for w in self.work]
        self.complex_values = complex_values
        self.evaluations = 0
        self.out_dtype: np.dtype | None = None

    @property
    def sizes(self) -> list[int]:
        return [w.size for w in self.work]

    def values(self) -> list[Any]:
        """The leaves to pass to f: fresh copies, so that an f that writes into its
        argument (x[0] = a * b) cannot change the point of the next evaluation."""
        out: list[Any] = []
        for w, is_float in zip(self.work, self.is_float):
            if is_float:
                out.append(complex(w[()]) if self.complex_values else float(w[()]))
            else:
                out.append(w.copy())
        return out

    def __call__(self) -> np.ndarray:
        out = self.call(self.values())
        self.evaluations += 1
        a = _as_output(out)
        if self.out_dtype is None:
            self.out_dtype = a.dtype
        if a.dtype.kind == "c":
            return a.astype(np.complex128)
        return a.astype(np.float64)

    def at(self, k: int, i: int, value: Any) -> np.ndarray:
        flat = self.flat[k]
        old = flat[i]
        flat[i] = value
        try:
            return self()
        finally:
            flat[i] = old

    def entry_dtype(self, k: int) -> np.dtype:
        return self.work[k].dtype

    def eps(self, k: int) -> float:
        """Noise level per unit of |f| for leaf k: the lower precision of input and output."""
        e = machine_eps(self.work[k].dtype)
        if self.out_dtype is not None and self.out_dtype.kind in "fc":
            e = max(e, machine_eps(self.out_dtype))
        return e


def _as_output(out: Any) -> np.ndarray:
    from adkit.ops.core import Tracer

    if isinstance(out, Tracer):
        from adkit.graph import NESTING_ADVICE

        raise NestedEngineError(
            "f returned a traced adkit value to the numeric engine: f uses a value traced by an enclosing "
            f"derivative call (a closure over the outer variable). {NESTING_ADVICE}"
        )
    if isinstance(out, (list, tuple)):
        out = np.asarray(out)
    if isinstance(out, (bool, np.bool_)) or not isinstance(out, (int, float, complex, np.number, np.ndarray)):
        raise AdkitTypeError(f"f must return a number or a numpy array, got {type(out).__name__}")
    a = np.asarray(out)
    if a.dtype.kind not in "fciu":
        raise AdkitTypeError(f"f must return numbers, got an array of dtype {a.dtype}")
    return a


# --- finite differences over a list of entries -----------------------------------------------------------------


@dataclass
class FDResult:
    """Finite differences for a list of entries (k = leaf index, i = flat index).

    value[n], error[n]   derivative estimate d f / d x_entry (shape of f's output), and
                         its error estimate (when requested; else NaN)
    step[n]              the (rounded) step actually used
    sides                with sides=True (central only): one-sided differences for
                         kink detection: "forward"/"backward" at h/2, "jump" =
                         |D1 - 2 D2| where Dk = forward - backward at h/2^(k-1) (about 0
                         for smooth f, about the slope's jump at a kink), "delta1" = D1,
                         "delta" = D2, "forward1" = the forward slope at h,
                         "noise" = round-off level of a one-sided difference at h/2
    """

    value: np.ndarray
    error: np.ndarray
    step: np.ndarray
    method: str
    fallback: list[int] = field(default_factory=list)
    sides: dict[str, np.ndarray] | None = None


def fd_entries(
    point: Point,
    entries: Sequence[tuple[int, int]],
    method: str = "central",
    *,
    step: float | None = None,
    error: bool = True,
    sides: bool = False,
    f0: np.ndarray | None = None,
    noise: Any = None,
    eps: float | None = None,
    adaptive: bool = False,
) -> FDResult:
    """Finite-difference derivatives of f with respect to each entry (k, i).

    noise: the absolute noise level of f's values when known (measured), used in the
    round-off part of the error estimate in place of eps |f|; eps overrides the rule's
    machine epsilon (the checker passes a measured one for noisy functions). adaptive
    (Richardson only): where the extrapolation has not converged (a function that varies on
    a scale much smaller than the default step, log(1e-5 + x) at 0), retry with steps 16,
    256, ... times smaller and keep the estimate with the smallest error.
    """
    _check_method(method)
    if method == "complex":
        return _complex_entries(point, entries, step)
    if f0 is None:
        f0 = point()
    shape = f0.shape
    n = len(entries)
    value = np.empty((n,) + shape)
    err = np.full((n,) + shape, np.nan)
    steps = np.empty(n)
    fallback: list[int] = []
    side_arrays = {
        key: np.empty((n,) + shape) for key in ("forward", "backward", "jump", "delta", "delta1", "forward1", "noise")
    }
    noise_abs = None if noise is None else np.asarray(noise, dtype=np.float64)
    for m, (k, i) in enumerate(entries):
        dt = point.entry_dtype(k)
        e = eps if eps is not None else point.eps(k)
        x = point.flat[k][i]
        base = float(step) if step is not None else float(step_size(x, method, eps=e))

        def fval(v: np.ndarray) -> np.ndarray:
            mag = e * np.abs(v)
            return mag if noise_abs is None else np.maximum(mag, noise_abs)

        def shifted(h: float, sign: int) -> tuple[np.ndarray, float]:
            xs, moved = rounded_step(x, h, sign, dt)
            return point.at(k, i, xs), moved

        if method in ("forward", "backward"):
            sign = 1 if method == "forward" else -1
            f1, h1 = shifted(base, sign)
            d1 = sign * (f1 - f0) / h1
            value[m], steps[m] = d1, h1
            if error:
                f2, h2 = shifted(base / 2, sign)
                d2 = sign * (f2 - f0) / h2
                err[m] = 2.0 * np.abs(d1 - d2) + 2.0 * (fval(f1) + fval(f0)) / h1
            continue

        if method == "richardson":
            res = _richardson(shifted, base, fval)
            for shrink in (16.0, 256.0, 4096.0, 65536.0) if adaptive else ():
                if res is not None and np.all(res[1] <= 1e-6 * np.abs(res[0])):
                    break
                smaller = _richardson(shifted, base / shrink, fval)
                if smaller is not None and (res is None or np.max(smaller[1]) < np.max(res[1])):
                    res = smaller
            if adaptive and res is not None and _kink_within(shifted, res[2], f0, fval):
                # a kink inside the stencil. At the point itself (relu at 0, a tie of max) the
                # central difference averages its two slopes, a subgradient as the kink policy
                # allows; a kink beside the point (|x| at x = 1e-300: every central difference
                # is 0) gives a converged number that is not the derivative: refused
                xr = abs(float(np.real(x)))
                if xr != 0 and not _kink_within(shifted, min(res[2] * 1e-3, xr * 1e-3), f0, fval):
                    res = (res[0], np.full_like(np.asarray(res[1], dtype=float), np.inf), res[2])
            if res is not None:
                value[m], err[m], steps[m] = res
                continue
            fallback.append(m)  # f not finite at a Richardson point: plain central below
            base = float(step_size(x, "central", eps=e))

        fp, hp = shifted(base, 1)
        fm, hm = shifted(base, -1)
        need_half = error or sides
        if need_half:
            fp2, hp2 = shifted(base / 2, 1)
            fm2, hm2 = shifted(base / 2, -1)
        if not (np.all(np.isfinite(fp)) and np.all(np.isfinite(fm))):
            # a domain edge: one-sided on the side where f is finite
            sign = 1 if np.all(np.isfinite(fp)) else -1
            f1, h1 = (fp, hp) if sign > 0 else (fm, hm)
            d1 = sign * (f1 - f0) / h1
            value[m], steps[m] = d1, h1
            if method != "richardson":
                fallback.append(m)
            if need_half:
                f2, h2 = (fp2, hp2) if sign > 0 else (fm2, hm2)
                d2 = sign * (f2 - f0) / h2
                err[m] = 2.0 * np.abs(d1 - d2) + 2.0 * (fval(f1) + fval(f0)) / h1
            if sides:
                for key in side_arrays:
                    side_arrays[key][m] = np.nan
            continue
        d1 = (fp - fm) / (hp + hm)
        value[m], steps[m] = d1, (hp + hm) / 2
        if error:
            d2 = (fp2 - fm2) / (hp2 + hm2)
            err[m] = (4.0 / 3.0) * np.abs(d1 - d2) + 2.0 * (fval(fp) + fval(fm)) / (hp + hm)
        if sides:
            fw1, bw1 = (fp - f0) / hp, (f0 - fm) / hm
            fw2, bw2 = (fp2 - f0) / hp2, (f0 - fm2) / hm2
            side_arrays["forward"][m] = fw2
            side_arrays["backward"][m] = bw2
            side_arrays["delta"][m] = fw2 - bw2
            side_arrays["delta1"][m] = fw1 - bw1
            side_arrays["forward1"][m] = fw1
            side_arrays["jump"][m] = np.abs((fw1 - bw1) - 2.0 * (fw2 - bw2))
            side_arrays["noise"][m] = 2.0 * (fval(fp2) + fval(f0)) / min(hp2, hm2)
    return FDResult(value, err, steps, method, fallback, side_arrays if sides else None)


def measure_noise(
    point: Point,
    f0: np.ndarray | None = None,
    rng: np.random.Generator | None = None,
    rel: float = 1e-6,
    offset: float = 1e-4,
    lines: int = 2,
) -> np.ndarray | None:
    """The noise level of f's values near the point (absolute, shape of f's output).

    Moré and Wild's idea (ECnoise), in its simplest form: evaluate f at 9 equally spaced
    points o + t d, t = -4..4, along a random direction d with |d_i| ~ rel * max(1, |x_i|)
    (every entry moves by many ulps, yet a smooth f is a cubic along such a short line);
    the 4th differences of the values are then pure noise, and for noise of standard
    deviation s, E[(4th difference)^2] = 70 s^2.

    The lines do not pass through x itself but through o = x + a random offset of relative
    size `offset`: a kink through x (a ReLU unit at exactly 0) would otherwise sit on every
    line and look like noise. Of `lines` lines the smallest estimate is kept (a kink
    crossing one short line is unlikely; crossing all of them, very). Costs 9 evaluations
    per line. Returns None when f is not finite along a line.
    """
    rng = rng if rng is not None else np.random.default_rng(0)
    saved = [w.copy() for w in point.work]
    bases = [x.real.astype(np.float64) for x in saved]
    scales = [np.maximum(1.0, np.abs(b)) for b in bases]
    dts = [w.dtype for w in saved]
    estimates = []
    try:
        for _ in range(lines):
            # origins and directions rounded to the working dtype, so that every point of
            # the line is exactly representable: input rounding is not f's noise
            origin = [
                (b + rng.standard_normal(b.shape) * s * offset).astype(dt).astype(np.float64)
                for b, s, dt in zip(bases, scales, dts)
            ]
            dirs = []
            for o, s, dt in zip(origin, scales, dts):
                step = rng.standard_normal(o.shape) * s * max(rel, 8 * machine_eps(dt))
                dirs.append((o + step).astype(dt).astype(np.float64) - o)
            values = []
            for t in range(-4, 5):
                for w, o, d in zip(point.work, origin, dirs):
                    w[...] = (o + t * d).astype(w.dtype)
                values.append(point())
            vals = np.array(values)
            if not np.all(np.isfinite(vals)):
                return None
            d4 = np.diff(vals, n=4, axis=0)
            estimates.append(np.sqrt(np.mean(d4**2, axis=0) / 70.0))
    finally:
        for w, x in zip(point.work, saved):
            w[...] = x
    return np.min(np.array(estimates), axis=0) if estimates else None


def _kink_within(
    shifted: Callable[[float, int], tuple[np.ndarray, float]], h: float, f0: np.ndarray, fval: Callable[..., Any]
) -> bool:
    """Whether f's slope jumps inside [x - h, x + h]: the gap between the forward and the
    backward difference shrinks like h for a smooth f (it is about h f''), but stays at the
    jump of the slope for a kink, so |gap(h) - 2 gap(h/2)| is ~0 for smooth f and ~|jump| at
    a kink. Round-off (fval) and a 1e-6 relative margin keep smooth functions clear."""
    slopes = []
    for step in (h, h / 2):
        (fp, hp), (fm, hm) = shifted(step, 1), shifted(step, -1)
        if not (np.all(np.isfinite(fp)) and np.all(np.isfinite(fm))):
            return False  # the edge of the domain: handled by the caller's fallback
        slopes.append(((fp - f0) / hp, (f0 - fm) / hm, 2.0 * (fval(fp) + fval(f0) + fval(fm)) / min(hp, hm)))
    (fw1, bw1, _), (fw2, bw2, noise) = slopes
    gap1, gap2 = fw1 - bw1, fw2 - bw2
    jump = np.abs(gap1 - 2.0 * gap2)  # the slope's jump at a kink; of order h^2 f(3) when smooth
    # a kink keeps the gap as h halves (jump ~ |gap1|); a smooth f halves it (jump << |gap1|)
    return bool(np.any((jump > 0.5 * np.abs(gap1)) & (jump > 1e-6 * (np.abs(fw1) + np.abs(bw1)) + 10.0 * noise)))


def _richardson(
    shifted: Callable[[float, int], tuple[np.ndarray, float]], base: float, fval: Callable[[np.ndarray], np.ndarray]
) -> tuple[np.ndarray, np.ndarray, float] | None:
    """Central differences at h, h/2, h/4 and two Richardson extrapolations.

    Returns (R22, |R22 - R21| + round-off, h) or None when f is not finite somewhere.
    Uses each level's true step (after rounding) in the extrapolation weights.
    """
    ds, hs, fmags = [], [], []
    for level in range(3):
        fp, hp = shifted(base / 2**level, 1)
        fm, hm = shifted(base / 2**level, -1)
        if not (np.all(np.isfinite(fp)) and np.all(np.isfinite(fm))):
            return None
        ds.append((fp - fm) / (hp + hm))
        hs.append((hp + hm) / 2)
        fmags.append(fval(fp) + fval(fm))
    t1, t2 = hs[0] / hs[1], hs[1] / hs[2]
    r11 = ds[1] + (ds[1] - ds[0]) / (t1**2 - 1)
    r21 = ds[2] + (ds[2] - ds[1]) / (t2**2 - 1)
    t = hs[0] / hs[2]
    r22 = r21 + (r21 - r11) / (t**2 - 1)
    roundoff = 2.0 * 2.0 * fmags[2] / (2 * hs[2])  # the h/4 level's noise, amplified ~1.7x by the weights
    return r22, np.abs(r22 - r21) + roundoff, hs[0]


def _complex_entries(point: Point, entries: Sequence[tuple[int, int]], step: float | None) -> FDResult:
    if not point.complex_values:
        raise AdkitValueError("complex-step needs a Point built with complex_values=True")
    values, errs, steps = [], [], []
    for k, i in entries:
        x = point.flat[k][i]
        h = float(step) if step is not None else float(step_size(x.real, "complex"))
        out = point.at(k, i, x + 1j * h)
        if out.dtype.kind != "c" or point.out_dtype is None or point.out_dtype.kind != "c":
            raise AdkitValueError(_REAL_RESULT)
        d = out.imag / h
        if not np.all(np.isfinite(d)):
            raise AdkitValueError(
                "complex-step gave a non-finite derivative: f is not analytic at this point "
                "(or overflows); use method='central'"
            )
        e = machine_eps(point.entry_dtype(k))
        values.append(d)
        errs.append(4.0 * e * np.abs(d))
        steps.append(h)
    shape = values[0].shape if values else ()
    return FDResult(
        np.array(values).reshape((len(values),) + shape),
        np.array(errs).reshape((len(values),) + shape),
        np.array(steps),
        "complex",
    )


_REAL_RESULT = (
    "method='complex' needs f to be analytic, but f returned a real result for complex input: "
    "it drops the imaginary part (np.abs, np.real, float(), a comparison, ...), so complex-step "
    "differentiation is invalid for it; use method='central' or 'richardson'"
)


# --- complex-step validity ----------------------------------------------------------------------------------


def complex_step_blockers(f: Callable[..., Any], args: Sequence[Any], argnums: Sequence[int]) -> list[str] | None:
    """Names of the ops f uses at args whose registry entry says complex_step=False.

    f is traced once with the reverse engine's tape. The inputs are traced as 0-d / n-d
    numpy arrays (never Python floats) so that every op is recorded with its registry
    entry (the scalar fast paths record bare partials). Returns None when f cannot be
    traced (a true black box: the caller then falls back to a run on complex input).
    """
    from adkit.engines.reverse import ReverseTrace

    trace = ReverseTrace()
    try:
        with trace:
            call_args = list(args)
            for n in argnums:
                leaves, treedef = tree_flatten(args[n])
                traced = []
                for leaf in leaves:
                    leaf = as_input(leaf, f"argument {n}")
                    arr = np.asarray(leaf)
                    traced.append(trace.new_input(arr if arr.dtype.kind == "f" else arr.astype(np.float64)))
                call_args[n] = tree_unflatten(treedef, traced)
            f(*call_args)
        ops = list(trace.recorded_ops())
    except Exception:  # noqa: BLE001 (any failure: f is a black box to adkit)
        return None
    finally:
        trace.release()
    names: list[str] = []
    for op in ops:
        if not op.complex_step and op.name not in names:
            names.append(op.name)
    return names


def check_complex_step(f: Callable[..., Any], args: Sequence[Any], argnums: Sequence[int]) -> None:
    """Raise ValueError, naming the op, when complex-step is not valid for f at args."""
    blockers = complex_step_blockers(f, args, argnums)
    if blockers:
        from adkit.ops import REGISTRY

        details = []
        for name in blockers:
            op = REGISTRY.get(name)
            why = f": {op.kinks}" if op is not None and op.kinks else ""
            details.append(f"`{name}` (not analytic{why})")
        raise AdkitValueError(
            f"method='complex' needs f to be analytic, but f uses {', '.join(details)}; "
            f"the op registry marks {'it' if len(blockers) == 1 else 'them'} complex_step=False, "
            "so Im f(x + ih) / h is not the derivative. Use method='central' or 'richardson'."
        )


# --- the public functions ---------------------------------------------------------------------------------


class _Args:
    """f(*args) as a function of the leaves of the differentiated arguments."""

    def __init__(self, f: Callable[..., Any], args: Sequence[Any], argnums: tuple[int, ...]) -> None:
        from adkit.graph import refuse_nesting

        refuse_nesting(args, "the numeric engine")
        self.f = f
        self.args = [arg if n in argnums else _read_only(arg) for n, arg in enumerate(args)]
        self.argnums = argnums
        self.treedefs: list[Any] = []
        self.counts: list[int] = []
        self.leaves: list[Any] = []
        for n in argnums:
            leaves, treedef = tree_flatten(args[n])
            leaves = [as_input(leaf, f"argument {n}") for leaf in leaves]
            refuse_complex_inputs(leaves, "the numeric engine (finite differences along real directions)")
            self.treedefs.append(treedef)
            self.counts.append(len(leaves))
            self.leaves.extend(leaves)

    def call(self, values: list[Any]) -> Any:
        args = list(self.args)
        pos = 0
        for n, treedef, count in zip(self.argnums, self.treedefs, self.counts):
            args[n] = tree_unflatten(treedef, values[pos : pos + count])
            pos += count
        try:
            return self.f(*args)
        except ValueError as exc:
            if "read-only" not in str(exc) or isinstance(exc, AdkitValueError):
                raise
            raise InPlaceUpdateError(
                "f writes into an array argument that is not differentiated. The numeric engine calls f "
                "many times, so it passes such arrays read-only (each call must see the same data): "
                "copy the array inside f before writing into it (a = a.copy())."
            ) from exc

    def rebuild(self, per_leaf: list[Any], single: bool) -> Any:
        trees, pos = [], 0
        for treedef, count in zip(self.treedefs, self.counts):
            trees.append(tree_unflatten(treedef, per_leaf[pos : pos + count]))
            pos += count
        return trees[0] if single else tuple(trees)


def _read_only(arg: Any) -> Any:
    """arg with each numpy array leaf (in dicts / lists / tuples) replaced by a read-only view."""
    leaves, treedef = tree_flatten(arg)
    if not any(type(leaf) is np.ndarray for leaf in leaves):
        return arg
    views = []
    for leaf in leaves:
        if type(leaf) is np.ndarray:
            leaf = leaf.view()
            leaf.flags.writeable = False
        views.append(leaf)
    return tree_unflatten(treedef, views)


def _jacobian_blocks(
    f: Callable[..., Any],
    args: Sequence[Any],
    argnums: int | Sequence[int],
    method: str,
    step: float | None,
    return_error: bool,
    scalar: bool,
    adaptive: bool = False,
) -> tuple[Any, Any, Any]:
    _check_method(method)
    nums = argnums_tuple(argnums, len(args))
    single = isinstance(argnums, int)
    prob = _Args(f, args, nums)
    if method == "complex":
        check_complex_step(f, args, nums)
        point = Point(prob.call, prob.leaves, complex_values=True)
        f0 = np.real(point())
        if point.out_dtype is not None and point.out_dtype.kind != "c":
            raise AdkitValueError(_REAL_RESULT)
    else:
        point = Point(prob.call, prob.leaves)
        f0 = point()
        if f0.dtype.kind == "c":
            raise AdkitTypeError(
                "f returned a complex value: adkit differentiates real-valued functions (complex numbers "
                "are not supported yet), and a real finite difference would drop the imaginary part. "
                "Differentiate np.real(f) and np.imag(f) separately."
            )
    if not np.all(np.isfinite(f0)):
        raise NonFiniteDerivativeError(f"f is not finite at the point (f = {f0}): no finite difference there")
    out_shape = f0.shape
    if scalar and out_shape != ():
        raise AdkitTypeError(
            f"grad needs f to return a scalar, but it returned an array of shape {out_shape}: "
            "use numeric_jacobian for the derivatives of every entry"
        )
    entries = [(k, i) for k, size in enumerate(point.sizes) for i in range(size)]
    res = fd_entries(
        point, entries, method, step=step, error=return_error, f0=None if method == "complex" else f0, adaptive=adaptive
    )
    grads, errs = [], []
    pos = 0
    for k, leaf in enumerate(prob.leaves):
        size = point.sizes[k]
        lshape = np.shape(leaf)
        block = res.value[pos : pos + size].reshape(lshape + out_shape)
        eblock = res.error[pos : pos + size].reshape(lshape + out_shape)
        pos += size
        # the adkit convention: out_shape + leaf_shape
        nin, nout = len(lshape), len(out_shape)
        axes = tuple(range(nin, nin + nout)) + tuple(range(nin))
        block, eblock = np.transpose(block, axes), np.transpose(eblock, axes)
        dt = leaf.dtype if isinstance(leaf, np.ndarray) and leaf.dtype.kind == "f" else np.float64
        if isinstance(leaf, float) and out_shape == ():
            grads.append(float(block))
            errs.append(float(eblock))
        else:
            grads.append(np.array(block, dtype=dt))
            errs.append(np.array(eblock))
    value = f0[()] if out_shape == () else f0
    return value, prob.rebuild(grads, single), prob.rebuild(errs, single)


def numeric_grad(
    f: Callable[..., Any],
    *args: Any,
    argnums: int | Sequence[int] = 0,
    method: str = "central",
    step: float | None = None,
    return_error: bool = False,
) -> Any:
    """Finite-difference gradient of a scalar f at args (any callable; f is only called).

    Gradients have the structure and shapes of the arguments (dicts / lists / tuples of
    arrays are fine); argnums as an int gives one gradient, as a tuple a tuple. With
    return_error=True returns (gradient, error estimate) of the same structure.

    >>> numeric_grad(lambda x: np.sum(np.sin(x)), np.array([0.0, 1.0]))   # cos(x)
    """
    _, g, e = _jacobian_blocks(f, args, argnums, method, step, return_error, scalar=True)
    return (g, e) if return_error else g


def numeric_jacobian(
    f: Callable[..., Any],
    *args: Any,
    argnums: int | Sequence[int] = 0,
    method: str = "central",
    step: float | None = None,
    return_error: bool = False,
) -> Any:
    """Finite-difference Jacobian, of shape f(x).shape + x.shape per argument leaf."""
    _, j, e = _jacobian_blocks(f, args, argnums, method, step, return_error, scalar=False)
    return (j, e) if return_error else j


def numeric_value_and_grad(
    f: Callable[..., Any], args: Sequence[Any], argnums: tuple[int, ...], single: bool
) -> tuple[Any, Any]:
    """The engine entry point of adkit.grad(f, engine="numeric"): Richardson extrapolation,
    refused where the extrapolation does not converge (`_check_converged`)."""
    nums = argnums[0] if single else argnums
    _refuse_overflow(f, args, nums)
    try:
        value, g, err = _jacobian_blocks(
            f, args, nums, "richardson", None, return_error=True, scalar=True, adaptive=True
        )
    except OverflowError as exc:  # Python float arithmetic inside f, near the point
        raise NonFiniteDerivativeError(
            f"f overflowed near the point ({exc}): finite differences need f finite around it"
        ) from None
    _check_converged(value, g, err)
    return (float(value) if np.ndim(value) == 0 else value), g


def _refuse_overflow(f: Callable[..., Any], args: Sequence[Any], argnums: Any) -> None:
    """Refuse a point where f overflows inside (numpy reports it): a finite difference sees
    only f's values, and an inf that f's later steps turn into a finite number (arctan(log(
    exp(710))) is pi/2) makes f flat there, so the difference would be a plausible 0. A
    black box cannot tell such an overflow from one that np.where masks; the exact engines can."""
    prob = _Args(f, args, argnums_tuple(argnums, len(args)))
    point = Point(prob.call, prob.leaves)
    seen: list[str] = []
    old = np.seterrcall(lambda kind, flag: seen.append(kind))
    try:
        with np.errstate(over="call"):
            point()
    except OverflowError:
        seen.append("overflow")
    finally:
        np.seterrcall(old)
    if seen:
        raise NonFiniteDerivativeError(
            "f overflows inside at this point (numpy reported an overflow): finite differences of its values "
            "cannot tell whether the result depends on the overflowed value. Use the exact engines (reverse, "
            "forward), which know which values are used, or rewrite f so that nothing overflows."
        )


# Richardson's error estimate |R22 - R21| on a smooth f is ~1e-10 of the derivative or below
# (round-off included); at a kink, a jump, an infinite slope or an overflow inside f the
# levels h, h/2, h/4 disagree by a large fraction of the estimate. 1e-4 separates the two
# with a wide margin on both sides (tests/test_strong_zero.py has both kinds).
CONVERGED_RTOL = 1e-4


def _check_converged(value: Any, grads: Any, errors: Any) -> None:
    """Refuse a finite-difference gradient whose error estimate says it is not a derivative:
    right or refused, as the other engines (never a plausible number across a kink)."""
    floor = 1e-8 * max(1.0, float(np.max(np.abs(value))))  # derivatives that are 0 next to a large f
    for g, e in zip(tree_flatten(grads)[0], tree_flatten(errors)[0]):
        g, e = np.asarray(g, dtype=np.float64), np.asarray(e, dtype=np.float64)
        bad = ~(e <= CONVERGED_RTOL * np.abs(g) + floor)
        if np.any(bad):
            k = int(np.flatnonzero(bad.reshape(-1))[0])
            raise NonFiniteDerivativeError(
                f"the finite differences do not converge at this point (entry {k}: {g.reshape(-1)[k]:.6g} with an "
                f"error estimate of {e.reshape(-1)[k]:.2g} across steps h, h/2, h/4): f is not differentiable "
                "here (a kink, a jump, an infinite slope) or loses its accuracy inside (an overflow, a "
                "cancellation). The exact engines (reverse, forward) name the op."
            )


def _register() -> None:
    from adkit.engines import GRAD_ENGINES as DIFFERENTIATING_ENGINES

    DIFFERENTIATING_ENGINES["numeric"] = numeric_value_and_grad


_register()

__all__ = [
    "METHODS",
    "FDResult",
    "Point",
    "check_complex_step",
    "complex_step_blockers",
    "fd_entries",
    "numeric_grad",
    "numeric_jacobian",
    "numeric_value_and_grad",
    "rounded_step",
    "step_size",
]
