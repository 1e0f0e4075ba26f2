"""The finite-difference evidence, and what f itself reveals before any entry is judged.

Finite differences (`adkit.engines.numeric`) give, per entry, Ge and an error estimate.
They are only evidence if f is what it claims to be, so f is first probed:

* f is always called on copies of the point (`GuardedCall`): if f writes into its
  argument (`x += 1`), the check's own point stays intact, and the mutation is recorded
  (the entry and the values before / after) so that the verdict can name it.
* f(x) is evaluated three times at the same point: a nondeterministic f (random noise,
  dropout, a race) gives different values, and their spread is part of the noise level.
* the noise of f's values near x is measured (`numeric.measure_noise`, 4th differences
  along short lines); if it is far above the round-off of f's float type, the steps are
  chosen from the measured noise (h = noise^(1/3) for central differences).
* the precision f really computes in: the dtype of its output, or, when it returns float64,
  the granularity of its values (every value it returned near x is a float32 number: f
  casts to float32 inside). Steps and thresholds are then those of that precision, and the
  report says so (fd_dtype="float64" cannot buy precision f throws away).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from adkit.check.params import _label, _Leaf
from adkit.engines import numeric as _num
from adkit.trees import tree_flatten, tree_unflatten

REPEATS = 3  # evaluations of f at the point itself: a nondeterministic f shows a spread


class GuardedCall:
    """f(params, *args) on copies of the parameter values, noting any change f makes to them.

    `mutation` is None, or a sentence naming the first entry f changed (the value passed
    and the value found after the call). With `record` a list, every output is appended.
    """

    def __init__(self, f: Callable[..., Any], treedef: Any, args: Sequence[Any], leaves: list[_Leaf]) -> None:
        self.f, self.treedef, self.args, self.leaves = f, treedef, tuple(args), leaves
        self.mutation: str | None = None
        self.record: list[np.ndarray] | None = None

    def __call__(self, values: list[Any]) -> Any:
        copies = [np.array(v, copy=True) if isinstance(v, np.ndarray) else v for v in values]
        out = self.f(tree_unflatten(self.treedef, copies), *self.args)
        if self.mutation is None:
            self.mutation = _first_change(self.leaves, values, copies, "f")
        if self.record is not None:
            try:
                self.record.append(np.array(out, dtype=np.float64, copy=True).reshape(-1))
            except (TypeError, ValueError):
                pass
        return out


def _first_change(leaves: list[_Leaf], before: list[Any], after: list[Any], who: str) -> str | None:
    """'f modifies its argument in place: x[2] was 0.5 when passed and 1.5 after the call', or None."""
    for leaf, b, a in zip(leaves, before, after):
        if not isinstance(b, np.ndarray):
            continue
        a = np.asarray(a)
        if a.shape != b.shape:
            return f"{who} modifies its argument in place: {leaf.name} had shape {b.shape} when passed, {a.shape} after the call"
        if np.array_equal(a, b):  # the common case, fast; NaN entries are compared below
            continue
        same = (a == b) | (np.isnan(a) & np.isnan(b)) if a.dtype.kind in "fc" else a == b
        if not np.all(same):
            i = int(np.flatnonzero(~np.asarray(same).reshape(-1))[0])
            label, _ = _label(leaf.name, b.shape, i)
            return (
                f"{who} modifies its argument in place: {label} was {b.reshape(-1)[i]:.6g} when passed and "
                f"{a.reshape(-1)[i]:.6g} after the call"
            )
    return None


def args_changed(before: list[np.ndarray], args: Sequence[Any]) -> str | None:
    """A sentence if f changed one of the extra arrays passed as args= during the check."""
    after = [a for a in tree_flatten(tuple(args))[0] if isinstance(a, np.ndarray)]
    for n, (b, a) in enumerate(zip(before, after)):
        if a.shape != b.shape or not np.array_equal(a, b, equal_nan=a.dtype.kind in "fc"):
            return f"f modifies the data passed as args= in place (array {n} of args changed during the check)"
    return None


def array_args(args: Sequence[Any]) -> list[np.ndarray]:
    return [np.array(a, copy=True) for a in tree_flatten(tuple(args))[0] if isinstance(a, np.ndarray)]


@dataclass
class Probe:
    """What f revealed before the check: its noise, determinism and working precision."""

    noise: Any = None  # absolute noise level of f's values (shape of f's output), or None
    noise_rel: float = 0.0  # ... relative to max |f|
    spread: float = 0.0  # max |f(x) - f(x)| over the repeated calls at the point
    repeated: list[float] = field(default_factory=list)  # the first output entry, per call at x
    computes_in: np.dtype | None = None  # f's working precision, when coarser than its inputs'
    precision_seen: str = ""  # how computes_in was seen: "f returns float32", ...


def probe(point: _num.Point, call: GuardedCall, f0: np.ndarray, seed: int, noise_probe: bool) -> Probe:
    """Repeated calls at x, the noise probe, and f's working precision (see the module doc)."""
    result = Probe()
    call.record = []
    try:
        again = [point() for _ in range(REPEATS - 1)]
        same = [np.array_equal(f0, a, equal_nan=True) for a in again]
        if not all(same):
            result.spread = float(max(np.max(np.abs(a - f0)) for a in again))
            result.repeated = [float(v.reshape(-1)[0]) for v in [f0, *again]]
        if noise_probe:
            try:  # 18 evaluations; f may refuse points near x (a domain edge): then no probe
                result.noise = _num.measure_noise(point, f0, np.random.default_rng([seed, 1]))
            except Exception:  # noqa: BLE001
                result.noise = None
        outputs = list(call.record)
    finally:
        call.record = None
    if result.spread > 0:
        spread = np.full(f0.shape, result.spread)
        result.noise = spread if result.noise is None else np.maximum(result.noise, spread)
    fmag = float(np.max(np.abs(f0))) if f0.size else 0.0
    if result.noise is not None and fmag > 0:
        result.noise_rel = float(np.max(result.noise)) / fmag
    out_dt = point.out_dtype
    inputs_eps = max((_num.machine_eps(w.dtype) for w in point.work), default=2.2e-16)
    if out_dt is not None and out_dt.kind == "f" and _num.machine_eps(out_dt) > inputs_eps:
        result.computes_in, result.precision_seen = out_dt, f"f returns {out_dt}"
    else:
        seen = _granularity(outputs)
        if seen is not None and _num.machine_eps(seen) > inputs_eps:
            result.computes_in = seen
            result.precision_seen = (
                f"every value f returned near the point ({sum(o.size for o in outputs)} values) is a {seen} number"
            )
    return result


def _granularity(outputs: list[np.ndarray]) -> np.dtype | None:
    """float16 / float32 when every (non-integer, distinct) value f returned is representable there."""
    values = np.concatenate(outputs) if outputs else np.zeros(0)
    values = values[np.isfinite(values)]
    if len(np.unique(values)) < 4 or np.all(values == np.round(values)):
        return None  # too few values to tell, or integers (representable everywhere)
    for dt in (np.dtype(np.float16), np.dtype(np.float32)):
        with np.errstate(over="ignore"):
            if np.all(values.astype(dt).astype(np.float64) == values):
                return dt
    return None


@dataclass
class _Context:
    f0: np.ndarray
    noise: Any
    eps: float | None
    method: str
    out_shape: tuple[int, ...]
    kink_threshold: float
    cpoint: Any = None
    extra_evaluations: int = 0
    bisections: dict[str, tuple[int, int, int, bool]] = field(default_factory=dict)


@dataclass
class _Row:
    k: int  # leaf
    i: int  # flat index in the leaf (-1: a projection)
    o: int  # flat output index
    a: float
    n: float
    e: float
    h: float
    fw: float = math.nan
    bw: float = math.nan
    jump: float = math.nan
    snoise: float = math.nan
    d1: float = math.nan  # forward - backward slope at h
    d2: float = math.nan  # ... and at h/2
    fw1: float = math.nan  # forward slope at h
    projection: bool = False
    label: str = ""
    verdict: str | None = None  # the status shown in the report
    outcome: str = "pass"  # "pass", "fail" or "inconclusive"
    rho: float = math.nan
    kink: bool = False

    @property
    def passed(self) -> bool:
        return self.outcome == "pass"


def _fd(point: _num.Point, ctx: _Context, entries: list[tuple[int, int]]) -> tuple[Any, Any, Any, Any]:
    """(value, error, step, sides) for the entries, by the context's method."""
    if ctx.method == "complex":
        res = _num.fd_entries(ctx.cpoint, entries, "complex")
        return res.value, res.error, res.step, None
    sides = _num.fd_entries(point, entries, "central", sides=True, f0=ctx.f0, noise=ctx.noise, eps=ctx.eps)
    if ctx.method == "central":
        return sides.value, sides.error, sides.step, sides.sides
    res = _num.fd_entries(point, entries, ctx.method, f0=ctx.f0, noise=ctx.noise, eps=ctx.eps)
    return res.value, res.error, res.step, sides.sides


def _rows_from(
    k: int,
    idx: Sequence[int],
    analytic: np.ndarray,
    value: np.ndarray,
    err: np.ndarray,
    step: np.ndarray,
    sides: Any,
    out_size: int,
) -> list[_Row]:
    rows = []
    n = len(idx)
    val = value.reshape(n, out_size)
    er = err.reshape(n, out_size)
    sd = {key: arr.reshape(n, out_size) for key, arr in sides.items()} if sides is not None else None
    for m, i in enumerate(idx):
        for o in range(out_size):
            r = _Row(k, int(i), o, float(analytic[o, m]), float(val[m, o]), float(er[m, o]), float(step[m]))
            if sd is not None:  # one-sided slopes at h/2: forward (right) and backward (left)
                r.fw, r.bw = float(sd["forward"][m, o]), float(sd["backward"][m, o])
                r.jump, r.snoise = float(sd["jump"][m, o]), float(sd["noise"][m, o])
                r.d1, r.d2 = float(sd["delta1"][m, o]), float(sd["delta"][m, o])
                r.fw1 = float(sd["forward1"][m, o])
            rows.append(r)
    return rows


def _check_entries(point: _num.Point, ctx: _Context, k: int, leaf: _Leaf, idx: np.ndarray) -> list[_Row]:
    if len(idx) == 0:
        return []
    entries = [(k, int(i)) for i in idx]
    value, err, step, sides = _fd(point, ctx, entries)
    out_size = leaf.analytic.shape[0]
    return _rows_from(k, idx, leaf.analytic[:, idx], value, err, step, sides, out_size)


def numeric_description(method: str, point: _num.Point, eps: float | None, fd_dt: Any, seen: Probe) -> str:
    """The numeric side's line of the report: the rule, the eps it used, and why."""
    dt = str(point.work[0].dtype) if point.work else "float64"
    if seen.noise_rel and eps is not None and eps == seen.noise_rel:
        eps_text = f"eps = {eps:.1e} (measured noise)"
    elif seen.computes_in is not None:
        eps_text = f"eps of {seen.computes_in} (f computes in {seen.computes_in})"
    else:
        eps_text = f"eps of {dt}"
    rules = {
        "central": f"central differences, h = eps^(1/3)·max(1,|x|), {eps_text}; error estimate from h/2",
        "forward": f"forward differences, h = eps^(1/2)·max(1,|x|), {eps_text}; error estimate from h/2",
        "backward": f"backward differences, h = eps^(1/2)·max(1,|x|), {eps_text}; error estimate from h/2",
        "richardson": f"Richardson extrapolation of central differences at h, h/2, h/4, h = eps^(1/5)·max(1,|x|), {eps_text}",
        "complex": "complex step Im f(x+ih)/h, h = 1e-20·max(1,|x|)",
    }
    text = rules[method]
    if fd_dt is not None:
        text += f", inputs in {fd_dt}"
    if method != "central" and method != "complex":
        text += "; kinks detected with central-step one-sided differences"
    return text
