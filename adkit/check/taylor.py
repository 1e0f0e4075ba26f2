"""taylor_test: a step-free gradient check from the convergence rate of the Taylor remainder.

residual(h) = |f(x + h d) - f(x) - h <g, d>| for h = h0, h0/2, h0/4, ...; the rate between
two steps is log2(residual(h) / residual(h/2)): about 2 when g is the gradient along d (the
residual is the O(h^2) remainder), about 1 when it is not (an O(h) term is left). Points at
the round-off floor are trimmed (there the residual is noise).

One direction sees only <g - grad f, d>: an error in one entry out of many is invisible
along a direction that barely moves that entry. So several seeded random directions are
used (4 by default); the test PASSES only when every direction shows rate ~2 (or a residual
at round-off everywhere), FAILS when one shows rate ~1, and is INCONCLUSIVE otherwise
(rates in between, or too few steps above the floor), with the reason.
"""

from __future__ import annotations

import html
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from adkit.check.params import leaf_names
from adkit.check.report import _num_json
from adkit.check.verdict import FAILED, INCONCLUSIVE, PASSED
from adkit.engines import numeric as _num
from adkit.trees import as_input, tree_flatten, tree_unflatten

DIRECTIONS = 4
MAX_STEPS = 60  # halvings of h0 when n_steps is not given (2^-64 is below any float64 point's ulp)
RATE_RIGHT = 1.8  # the median of the last rates at or above this: the remainder is O(h^2)
RATE_WRONG = 1.2  # ... at or below this: an O(h) term is left, the gradient is wrong along d


@dataclass
class TaylorDirection:
    """The residuals along one direction, their rates, and what they say."""

    outcome: str  # "pass", "fail" or "inconclusive"
    rate: float
    explanation: str
    steps: list[float]
    residuals: list[float]
    floors: list[float]
    kept: list[bool]
    rates: list[float]
    directional_derivative: float

    def to_dict(self) -> dict[str, Any]:
        return {
            "outcome": self.outcome,
            "rate": _num_json(self.rate),
            "explanation": self.explanation,
            "steps": self.steps,
            "residuals": self.residuals,
            "floors": self.floors,
            "kept": self.kept,
            "rates": [_num_json(r) for r in self.rates],
            "directional_derivative": self.directional_derivative,
        }


@dataclass
class TaylorResult:
    """The verdict over all directions, and each direction's residuals and rates.

    verdict "PASSED" / "FAILED" / "INCONCLUSIVE" (ok is True only for PASSED), reasons (why
    it did not pass), directions (one TaylorDirection each). rate, explanation, steps,
    residuals, floors, kept, rates and directional_derivative are the deciding direction's:
    the first failing one, else the first inconclusive one, else the one with the lowest rate.
    """

    ok: bool
    verdict: str
    seed: int
    directions: list[TaylorDirection]
    deciding: TaylorDirection
    reasons: list[str] = field(default_factory=list)

    @property
    def rate(self) -> float:
        return self.deciding.rate

    @property
    def explanation(self) -> str:
        return self.deciding.explanation

    @property
    def steps(self) -> list[float]:
        return self.deciding.steps

    @property
    def residuals(self) -> list[float]:
        return self.deciding.residuals

    @property
    def floors(self) -> list[float]:
        return self.deciding.floors

    @property
    def kept(self) -> list[bool]:
        return self.deciding.kept

    @property
    def rates(self) -> list[float]:
        return self.deciding.rates

    @property
    def directional_derivative(self) -> float:
        return self.deciding.directional_derivative

    def __bool__(self) -> bool:
        return bool(self.ok)

    def __str__(self) -> str:
        lines = [f"Taylor test {self.verdict}: {self.explanation}"]
        lines.extend(f"  - {r}" for r in self.reasons)
        summary = ", ".join(
            f"{d.rate:.2f} ({d.outcome})" if d.rate == d.rate else f"- ({d.outcome})" for d in self.directions
        )
        lines.append(f"  {len(self.directions)} direction(s), seed {self.seed}; rates: {summary}")
        lines.append(f"  the deciding direction: <g, d> = {self.directional_derivative:.10g}")
        lines.append("  h           residual    rate   ")
        for i, (h, r, kept) in enumerate(zip(self.steps, self.residuals, self.kept)):
            rate = self.rates[i - 1] if i > 0 else math.nan
            rate_s = f"{rate:5.2f}" if rate == rate else "     "
            note = "" if kept else "  (round-off floor: trimmed)"
            lines.append(f"  {h:<10.3e}  {r:<10.3e}  {rate_s}{note}")
        return "\n".join(lines)

    def _repr_html_(self) -> str:
        try:
            return f"<pre>{html.escape(str(self))}</pre>"
        except Exception:  # noqa: BLE001
            return "<pre>Taylor test result</pre>"

    def to_dict(self) -> dict[str, Any]:
        return {
            "ok": bool(self.ok),
            "verdict": self.verdict,
            "reasons": list(self.reasons),
            "seed": self.seed,
            **self.deciding.to_dict(),
            "directions": [d.to_dict() for d in self.directions],
        }


def _leaves_like(tree: Any, what: str, names: Sequence[str], xs: Sequence[np.ndarray]) -> list[np.ndarray]:
    """The float64 leaves of `tree`, checked to match x leaf for leaf and shape for shape."""
    leaves, _ = tree_flatten(tree)
    if len(leaves) != len(xs):
        raise ValueError(f"{what} has {len(leaves)} array(s) but x has {len(xs)}")
    arrays = [np.asarray(leaf, dtype=np.float64) for leaf in leaves]
    for name, a, xl in zip(names, arrays, xs):
        if a.shape != xl.shape:
            raise ValueError(f"{what} for {name} has shape {a.shape}, but {name} has shape {xl.shape}")
    return arrays


def taylor_test(
    f: Callable[..., Any],
    x: Any,
    grad: Any = None,
    direction: Any = None,
    *,
    args: Sequence[Any] = (),
    seed: int = 0,
    h0: float = 2.0**-4,
    n_steps: int | None = None,
    directions: int = DIRECTIONS,
) -> TaylorResult:
    """Step-free gradient check: convergence rate of the first-order Taylor remainder.

    f(x, *args) must return a scalar; x an array or a dict / list / tuple of arrays;
    grad the claimed gradient at x (callable grad(x, *args) or arrays; None: adkit's
    reverse engine); direction like x (one given direction), or `directions` seeded random
    ones (|d_i| ~ max(1, |x_i|)). Rates about 2 mean the gradient is right along d, about 1
    that it is wrong (pyadjoint's taylor_test, with the round-off floor trimmed instead of
    polluting the rates). result.verdict is PASSED only when every direction says rate ~2.
    n_steps: how many halvings of h0; default: halve until the residual reaches the
    round-off floor (at most 60), so that a small error, whose O(h) term only dominates
    at small h, is seen before the floor hides it.
    """
    if not isinstance(directions, (int, np.integer)) or isinstance(directions, bool) or directions < 1:
        raise ValueError(f"directions must be a positive integer, got {directions!r}")
    args = tuple(args)
    leaves, treedef = tree_flatten(x)
    names = leaf_names(x)
    xs = [np.array(as_input(leaf, f"x {n}"), copy=True) for n, leaf in zip(names, leaves)]
    is_float = [isinstance(as_input(leaf, "x"), float) for leaf in leaves]
    xs = [a if a.dtype.kind == "f" else a.astype(np.float64) for a in xs]

    def build(vals: list[np.ndarray]) -> Any:
        return tree_unflatten(treedef, [float(v) if fl else np.array(v, copy=True) for v, fl in zip(vals, is_float)])

    def fval(vals: list[np.ndarray]) -> float:
        out = np.asarray(f(build(vals), *args))
        if out.shape != ():
            raise TypeError(f"taylor_test needs f to return a scalar, got shape {out.shape}")
        return float(out)

    if grad is None:
        import adkit

        g = adkit.grad(lambda p: f(p, *args))(build(xs))
    elif callable(grad):
        g = grad(build(xs), *args)
    else:
        g = grad
    gs = _leaves_like(g, "grad", names, xs)
    if not all(np.all(np.isfinite(gl)) for gl in gs):
        raise ValueError("grad is not finite at x (NaN or inf entries): a Taylor test cannot pass it")
    if direction is not None:
        dirs = [_leaves_like(direction, "direction", names, xs)]
    else:
        rng = np.random.default_rng(seed)
        dirs = [
            [rng.standard_normal(xl.shape) * np.maximum(1.0, np.abs(xl.astype(np.float64))) for xl in xs]
            for _ in range(int(directions))
        ]
    f0 = fval(xs)
    results = [_along(fval, xs, gs, ds, f0, h0, n_steps) for ds in dirs]
    failing = [d for d in results if d.outcome == "fail"]
    undecided = [d for d in results if d.outcome == "inconclusive"]
    if failing:
        verdict, deciding = FAILED, failing[0]
    elif undecided:
        verdict, deciding = INCONCLUSIVE, undecided[0]
    else:
        verdict = PASSED
        deciding = min(results, key=lambda d: d.rate if d.rate == d.rate else math.inf)
    reasons = [
        f"direction {n + 1} of {len(results)}: {d.explanation}" for n, d in enumerate(results) if d.outcome != "pass"
    ]
    return TaylorResult(verdict == PASSED, verdict, seed, results, deciding, reasons)


def _along(
    fval: Callable[[list[np.ndarray]], float],
    xs: list[np.ndarray],
    gs: list[np.ndarray],
    ds: list[np.ndarray],
    f0: float,
    h0: float,
    n_steps: int | None,
) -> TaylorDirection:
    """Residuals and rates along one direction d, and the outcome they support."""
    dg = float(sum(np.sum(gl * dl) for gl, dl in zip(gs, ds)))
    eps = max([_num.machine_eps(xl.dtype) for xl in xs] + [2.2e-16])
    input_rounding = sum(float(np.sum(np.abs(gl) * np.abs(xl.astype(np.float64)))) for gl, xl in zip(gs, xs))
    steps, residuals, floors = [], [], []
    for j in range(n_steps if n_steps is not None else MAX_STEPS):
        h = h0 / 2**j
        moved = [(xl.astype(np.float64) + h * dl).astype(xl.dtype) for xl, dl in zip(xs, ds)]
        fh = fval(moved)
        steps.append(h)
        residuals.append(abs(fh - f0 - h * dg))
        floors.append(8 * eps * (abs(fh) + abs(f0) + abs(h * dg) + input_rounding))
        at_floor = [r <= 10 * fl for r, fl in zip(residuals[-2:], floors[-2:])]
        if n_steps is None and j >= 2 and all(at_floor):
            break
    kept = [r > 10 * fl for r, fl in zip(residuals, floors)]
    rates = []
    for i in range(1, len(steps)):
        if kept[i - 1] and kept[i] and residuals[i] > 0:
            rates.append(math.log2(residuals[i - 1] / residuals[i]))
        else:
            rates.append(math.nan)
    good = [r for r in rates if r == r]

    def result(outcome: str, rate: float, explanation: str) -> TaylorDirection:
        return TaylorDirection(outcome, rate, explanation, steps, residuals, floors, kept, rates, dg)

    if not any(kept):
        return result(
            "pass",
            math.nan,
            "the residual is at the round-off floor at every step: the first-order model is exact to "
            "round-off along d (f linear along d?)",
        )
    if not all(np.isfinite(residuals)):
        return result("inconclusive", math.nan, "f is not finite along d within h0; pass a smaller h0")
    if not good:
        return result(
            "inconclusive", math.nan, "fewer than two consecutive steps above the round-off floor; pass a larger h0"
        )
    rate = float(np.median(good[-3:]))  # the smallest steps above the floor: the asymptotic regime
    if rate >= RATE_RIGHT:
        return result("pass", rate, f"rate {rate:.2f} (about 2): the gradient is right along this direction")
    if rate <= RATE_WRONG:
        return result(
            "fail",
            rate,
            f"rate {rate:.2f} (about 1): the gradient is wrong along this direction (a term linear in h is left over)",
        )
    return result(
        "inconclusive",
        rate,
        f"rate {rate:.2f}, between 1 and 2: a small gradient error, or a kink within h|d|; "
        "try smaller steps (n_steps) or another seed",
    )
