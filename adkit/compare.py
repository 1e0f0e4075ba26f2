"""One function through every engine, side by side: gradient, error, seconds.

The error column is only as good as the reference, so the reference says, per input,
what is known at the point:

* a number: sympy's derivative evaluated exactly (int and fraction inputs) or at 30
  digits, or, where sympy cannot have the function, the numeric engine's Richardson
  estimate (the table says which);
* "kink": one-sided derivatives differ here (a tie of max, abs or relu at 0). The
  derivative does not exist; the kink policy (DESIGN.md) picks a value between the
  one-sided derivatives, so an engine is judged by whether its value lies between them,
  never by its distance to whichever side sympy's Piecewise happened to pick;
* "infinite/undefined at this point" (sqrt, log or x**0.5 at 0): no finite number is
  right, so none is shown as the reference, and an engine returning a finite value
  there is marked WRONG;
* "beyond float64": the derivative exists but no float holds it (7**123456789);
* "f jumps here" (floor, sign at their steps): no derivative; the reference stays the
  derivative of the pieces, which is what the engines give for steps.

Kinks, jumps and blow-ups are found by one-sided finite differences: with
D+(h) = (f(x+h) - f(x))/h and D-(h) = (f(x) - f(x-h))/h, the gap D+ - D- is about
h f''(x) where f is smooth (it shrinks with h), tends to the jump of f' at a kink (it
stays), and grows like 1/h where f itself jumps (_one_sided_shape). Every engine call,
the reference and the probe run under a time budget (SIGALRM, in the main thread only),
so no formula keeps compare busy for long.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from adkit.formatting import format_seconds
from adkit.transforms import ENGINES, grad
from adkit.trees import tree_flatten, tree_unflatten

TIME_BUDGET = 10.0  # seconds per engine and for the reference
MAX_PROBED_INPUTS = 64  # one-sided probes cost 7 calls of f per input entry
EXACT = "exact"
DIGITS = "30 digits"
NUMERIC = "numeric"
KINK = "kink"
UNDEFINED = "infinite/undefined at this point"
BEYOND_FLOAT64 = "beyond float64"
JUMP = "f jumps here: no derivative; the reference is the derivative of the pieces (the policy for steps)"


class TimeBudgetExceeded(TimeoutError):
    """An engine (or the reference) ran past compare's time budget."""


@dataclass
class EngineRow:
    engine: str
    gradient: list[float] | None
    abs_error: float | None
    rel_error: float | None
    seconds: float | None
    note: str = ""
    error: str | None = None
    verdict: str = ""  # at kinks and undefined points: how the engine's value stands


@dataclass
class CompareResult:
    """Rows of `compare`: one per engine. Prints as a table; HTML in Jupyter; to_dict().

    reference[i] is None where input i has no finite reference value; status[i] says
    why ("kink", "infinite/undefined at this point", "beyond float64"), one_sided[i]
    holds the left and right derivatives at a kink.
    """

    rows: list[EngineRow]
    reference: list[float | None] | None
    reference_kind: str
    value: float | None
    names: list[str] = field(default_factory=list)
    status: list[str] = field(default_factory=list)
    one_sided: list[tuple[float, float] | None] = field(default_factory=list)

    def __getitem__(self, engine: str) -> EngineRow:
        for row in self.rows:
            if row.engine == engine:
                return row
        raise KeyError(engine)

    def to_dict(self) -> dict[str, Any]:
        return {
            "value": self.value,
            "inputs": self.names,
            "reference": self.reference,
            "reference_kind": self.reference_kind,
            "reference_status": self.status,
            "one_sided": [list(s) if s is not None else None for s in self.one_sided],
            "engines": [
                {
                    "engine": r.engine,
                    "gradient": r.gradient,
                    "abs_error": r.abs_error,
                    "rel_error": r.rel_error,
                    "seconds": r.seconds,
                    "note": r.note,
                    "error": r.error,
                    "verdict": r.verdict,
                }
                for r in self.rows
            ],
        }

    def to_json(self, **kw: Any) -> str:
        return json.dumps(self.to_dict(), **kw)

    def reference_lines(self) -> list[str]:
        """One line per input without a finite reference value: what is known there."""
        lines = []
        for i, status in enumerate(self.status):
            name = self.names[i] if i < len(self.names) else f"input {i}"
            if status == KINK and self.one_sided[i] is not None:
                left, right = self.one_sided[i]
                lines.append(
                    f"d/d{name}: kink (one-sided derivatives {left:.6g} and {right:.6g}): no derivative exists; "
                    "engines follow the kink policy when their value lies between them"
                )
            elif status not in (EXACT, DIGITS, NUMERIC):
                lines.append(f"d/d{name}: {status}")
        return lines

    def _cells(self) -> tuple[list[str], list[list[str]]]:
        header = ["engine", "gradient", "abs error", "rel error", "time", "note"]
        body = []
        for r in self.rows:
            if r.error:
                body.append([r.engine, "—", "—", "—", "—", r.error])
                continue
            note = "; ".join(part for part in (r.verdict, r.note) if part)
            body.append(
                [
                    r.engine,
                    _fmt_vec(r.gradient),
                    _fmt_err(r.abs_error),
                    _fmt_err(r.rel_error),
                    format_seconds(r.seconds),
                    note,
                ]
            )
        return header, body

    def __str__(self) -> str:
        from adkit.display import text_table

        header, body = self._cells()
        title = f"f = {self.value:.10g}   " if self.value is not None else ""
        lines = [title + f"reference: {self.reference_kind}", *self.reference_lines()]
        return "\n".join(lines) + "\n" + text_table(header, body)

    def _repr_html_(self) -> str | None:
        try:
            import html

            from adkit.display import html_table

            header, body = self._cells()
            notes = "".join(f"<br>{html.escape(line)}" for line in self.reference_lines())
            return f"<p>reference: {html.escape(self.reference_kind)}{notes}</p>" + html_table(header, body)
        except Exception:  # noqa: BLE001 (a display hook must never raise)
            return None


def _fmt_vec(v: Sequence[float] | None) -> str:
    if v is None:
        return "—"
    shown = ", ".join(f"{x:.10g}" for x in v[:4])
    return f"[{shown}{', …' if len(v) > 4 else ''}]"


def _fmt_err(e: float | None) -> str:
    return "—" if e is None else f"{e:.1e}"


def _flat_grads(g: Any) -> list[float]:
    leaves, _ = tree_flatten(g)
    out: list[float] = []
    for leaf in leaves:
        out.extend(float(v) for v in np.asarray(leaf, dtype=float).reshape(-1))
    return out


def _time(fn: Callable[[], Any], min_seconds: float = 0.05, max_repeats: int = 50) -> tuple[Any, float]:
    start = time.perf_counter()
    result = fn()
    first = time.perf_counter() - start
    if first > min_seconds:
        return result, first
    best = first
    total = first
    for _ in range(max_repeats):
        start = time.perf_counter()
        fn()
        t = time.perf_counter() - start
        best = min(best, t)
        total += t
        if total > min_seconds:
            break
    return result, best


def _budgeted(seconds: float, what: str, fn: Callable[[], Any]) -> Any:
    """fn() under the time budget; past it, TimeBudgetExceeded names the budget."""
    from adkit.bench import time_limit

    try:
        with time_limit(seconds):
            return fn()
    except TimeoutError as exc:
        raise TimeBudgetExceeded(
            f"{what} ran past compare's time budget of {seconds:g} s (time_budget=...; on the command line "
            "--time-budget SECONDS)"
        ) from exc


def compare(
    f: Callable[..., Any],
    *args: Any,
    engines: Sequence[str] = ENGINES,
    argnums: int | Sequence[int] | None = None,
    min_seconds: float = 0.05,
    time_budget: float = TIME_BUDGET,
    reference_args: Sequence[Any] | None = None,
) -> CompareResult:
    """Differentiate f at args with each engine; report gradient, error and seconds.

    The reference is the symbolic engine's derivative evaluated at 30 digits (exactly
    when the inputs are ints or fractions); where sympy cannot have it, the numeric
    engine's Richardson estimate, and the table says so. Inputs at a kink, where the
    derivative is infinite or undefined, or beyond float64 get no reference number (see
    the module docstring); errors are measured over the other inputs. Each engine and
    the reference get `time_budget` seconds. `reference_args`: the same point given
    exactly (ints, fractions.Fraction) for the symbolic reference, when args are floats.
    """
    nums = tuple(range(len(args))) if argnums is None else ((argnums,) if isinstance(argnums, int) else tuple(argnums))
    unknown = [e for e in engines if e not in ENGINES]
    if unknown:
        raise ValueError(f"unknown engine(s) {', '.join(unknown)}; choose from {', '.join(ENGINES)}")
    if not time_budget > 0:
        raise ValueError(f"time_budget must be a positive number of seconds, got {time_budget!r}")
    exact_args = tuple(reference_args) if reference_args is not None else args
    symbolic, symbolic_error = _symbolic(f, exact_args, nums, time_budget)
    reference, status, kind = _reference(f, args, nums, symbolic, symbolic_error, time_budget)
    one_sided: list[tuple[float, float] | None] = [None] * len(status)
    if len(status) > MAX_PROBED_INPUTS:
        kind += f"; kinks not probed ({len(status)} inputs, more than {MAX_PROBED_INPUTS})"
    else:
        try:
            probes = _budgeted(time_budget, "the kink probe", lambda: _probe_kinks(f, args, nums, len(status)))
            one_sided = _apply_probes(probes, reference, status)
        except TimeBudgetExceeded as exc:
            kind += f"; kinks not probed: {exc}"
    names = _input_names(f, args, nums)
    rows = []
    for engine in engines:
        try:
            g = grad(f, argnums=nums, engine=engine)
            result, seconds = _budgeted(
                time_budget, f"the {engine} engine", lambda g=g: _time(lambda: g(*args), min_seconds=min_seconds)
            )
        except Exception as exc:  # noqa: BLE001 (each engine's failure is a row, not a crash)
            rows.append(EngineRow(engine, None, None, None, None, error=f"{type(exc).__name__}: {exc}"))
            continue
        flat = _flat_grads(result)
        abs_err, rel_err = _errors(flat, reference)
        note = _note(engine, f, args, nums, symbolic, time_budget)
        verdict = _verdict(flat, status, one_sided, names)
        rows.append(EngineRow(engine, flat, abs_err, rel_err, seconds, note=note, verdict=verdict))
    try:
        from adkit.graph import trace

        v = _budgeted(time_budget, "tracing f for its value", lambda: trace(f, *args, argnums=nums).value)
        value = float(v) if v is not None and np.ndim(v) == 0 else None
    except Exception:  # noqa: BLE001
        value = None
    return CompareResult(rows, reference, kind, value, names, status, one_sided)


def _apply_probes(
    probes: list[tuple[str, float, float] | None], reference: list[float | None], status: list[str]
) -> list[tuple[float, float] | None]:
    """Update reference and status (in place) with what the one-sided probes found; the
    one-sided derivatives at kinks."""
    one_sided: list[tuple[float, float] | None] = [None] * len(status)
    for i, probe in enumerate(probes):
        if probe is None or status[i].startswith(BEYOND_FLOAT64):
            continue
        shape, left, right = probe
        if shape == "kink" and (reference[i] is None or _between(reference[i], left, right)):
            # A reference outside the one-sided slopes means the probe was fooled (an
            # oscillation faster than its steps): at a true kink any value sympy gives lies
            # between. Settled finite slopes on both sides also overrule a sympy form that
            # is undefined at its own kink (a Heaviside(0) left as nan).
            status[i], one_sided[i], reference[i] = KINK, (left, right), None
        elif status[i] == UNDEFINED:
            continue
        elif shape == "jump":  # the reference stays: the pieces' derivative, which the policy gives
            status[i] = JUMP
        elif shape == "unbounded" and status[i] == NUMERIC:  # sympy's finite value outranks the probe
            status[i], reference[i] = UNDEFINED, None
    return one_sided


def _errors(flat: list[float], reference: list[float | None] | None) -> tuple[float | None, float | None]:
    """Largest absolute error over the inputs with a reference number, and that error
    relative to the largest reference entry."""
    if reference is None or len(reference) != len(flat):
        return None, None
    pairs = [(a, r) for a, r in zip(flat, reference) if r is not None]
    if not pairs and reference:
        return None, None
    abs_err = max((abs(a - r) for a, r in pairs), default=0.0)
    if math.isnan(abs_err) or any(not math.isfinite(a) for a, _ in pairs):
        abs_err = math.inf
    scale = max((abs(r) for _, r in pairs), default=0.0)
    return abs_err, (abs_err / scale if scale > 0 else abs_err)


# Membership of an engine's value in [left, right] at a kink allows for the error of the
# one-sided estimates: their rounding (~ eps |f| / h with h = 1e-4 / 256) and the
# curvature left after the one-step extrapolation; 1e-6 relative covers both for f of
# moderate size and is far below any kink jump the probe reports (>= 1e-6 scale too).
KINK_RTOL = 1e-6


def _between(value: float, left: float, right: float) -> bool:
    lo, hi = sorted((left, right))
    slack = KINK_RTOL * max(1.0, abs(lo), abs(hi))
    return lo - slack <= value <= hi + slack


def _verdict(
    flat: list[float], status: list[str], one_sided: list[tuple[float, float] | None], names: list[str]
) -> str:
    """How the engine's value stands at kinks and infinite derivatives ('' elsewhere)."""
    if len(flat) != len(status):
        return ""
    parts = []
    for i, (value, st) in enumerate(zip(flat, status)):
        name = names[i] if len(names) == len(flat) else f"#{i}"
        if st == KINK and one_sided[i] is not None:
            lo, hi = sorted(one_sided[i])
            if _between(value, lo, hi):
                parts.append(f"{name}: kink, follows the policy")
            else:
                parts.append(f"{name}: WRONG at the kink: {value:.6g} is outside [{lo:.6g}, {hi:.6g}]")
        elif st == UNDEFINED and math.isfinite(value):
            parts.append(f"{name}: WRONG: a finite value where the derivative is infinite/undefined")
    return "; ".join(parts)


def _input_names(f: Callable[..., Any], args: Sequence[Any], nums: Sequence[int]) -> list[str]:
    from adkit.graph import _param_names

    base = _param_names(f, len(args))
    names = []
    for n in nums:
        leaves, _ = tree_flatten(args[n])
        for k, leaf in enumerate(leaves):
            size = int(np.size(leaf))
            stem = base[n] if len(leaves) == 1 else f"{base[n]}{k}"
            names.extend([stem] if size == 1 and np.ndim(leaf) == 0 else [f"{stem}[{i}]" for i in range(size)])
    return names


def _symbolic(f: Callable[..., Any], args: Sequence[Any], nums: tuple[int, ...], budget: float) -> tuple[Any, str]:
    """sympy's derivative of f at args (or None, and why not); the arguments not in nums
    are constants."""
    try:
        from adkit.engines.symbolic import symbolic_derivative

        return _budgeted(budget, "the symbolic reference", lambda: symbolic_derivative(f, *args, argnums=nums)), ""
    except TimeBudgetExceeded as exc:
        return None, str(exc)
    except Exception as exc:  # noqa: BLE001 (fall back to a numeric reference)
        return None, f"{type(exc).__name__}: {exc}"


def _sympy_status(v: Any) -> tuple[float | None, str | None]:
    """A sympy value as a float reference, or why it is not one."""
    import sympy

    if v.has(sympy.zoo, sympy.oo, -sympy.oo, sympy.nan) or v.is_extended_real is False:
        return None, UNDEFINED
    try:
        x = float(v)
    except TypeError:
        return None, UNDEFINED
    if math.isinf(x):
        return None, f"{BEYOND_FLOAT64} (about {_magnitude(v)})"
    return (x, None) if math.isfinite(x) else (None, UNDEFINED)


def _first_line(text: str, limit: int = 160) -> str:
    line = text.splitlines()[0] if text else ""
    return line if len(line) <= limit else line[: limit - 1] + "…"


def _magnitude(v: Any) -> str:
    """A huge sympy number as 4.54E+104333097, or as 10^(3.01e+308) when even its exponent is long."""
    import mpmath
    import sympy

    text = str(sympy.N(v, 3))
    if len(text) <= 30:
        return text
    return f"10^({mpmath.nstr(mpmath.log10(abs(sympy.N(v, 15)._to_mpmath(60))), 4)})"


def _reference(
    f: Callable[..., Any],
    args: Sequence[Any],
    nums: tuple[int, ...],
    symbolic: Any,
    symbolic_error: str,
    budget: float,
) -> tuple[list[float | None], list[str], str]:
    """Per input: the reference value (None where there is none) and its status; the kind."""
    if symbolic is not None:
        leaves_per_arg = [len(tree_flatten(a)[0]) for a in args]
        starts = np.cumsum([0] + leaves_per_arg).tolist()
        values: list[float | None] = []
        status: list[str] = []
        digits = EXACT if symbolic.exact else DIGITS
        for n in nums:
            for v in symbolic.values[starts[n] : starts[n + 1]]:
                for x in np.asarray(v, dtype=object).reshape(-1):
                    number, problem = _sympy_status(x)
                    values.append(number)
                    status.append(problem or digits)
        kind = "symbolic, exact" if symbolic.exact else "symbolic, 30 digits"
        if symbolic.inexact_reason:
            kind += f" ({symbolic.inexact_reason})"
        return values, status, kind
    why = f"symbolic not available for this function ({_first_line(symbolic_error)})" if symbolic_error else ""
    try:
        g = _budgeted(budget, "the numeric reference", lambda: grad(f, argnums=nums, engine="numeric")(*args))
        flat = _flat_grads(g)
        return list(flat), [NUMERIC] * len(flat), f"numeric (finite differences): {why}"
    except Exception as exc:  # noqa: BLE001
        return [], [], f"none available: {why}; numeric: {type(exc).__name__}: {exc}"


def _probe_kinks(
    f: Callable[..., Any], args: Sequence[Any], nums: tuple[int, ...], n_inputs: int
) -> list[tuple[str, float, float] | None]:
    """Per input entry: ("smooth" | "kink" | "jump", left, right) from one-sided
    differences of f along that entry, or None where f cannot be probed (a non-scalar or
    non-finite output, an entry at the edge of f's domain). Which ops f
    uses cannot rule kinks out: np.where and comparisons make them from analytic pieces
    and leave no op in the trace."""
    flat_args = [tree_flatten(a) for a in args]
    slots = [(n, k, idx) for n in nums for k, leaf in enumerate(flat_args[n][0]) for idx in np.ndindex(np.shape(leaf))]
    if len(slots) != n_inputs:
        return [None] * n_inputs

    def call_with(slot: tuple[int, int, tuple[int, ...]], x: float) -> float:
        n, k, idx = slot
        leaves = [np.array(leaf, dtype=float) for leaf in flat_args[n][0]]
        leaves[k][idx] = x
        new_args = list(args)
        new_args[n] = tree_unflatten(flat_args[n][1], [leaf if leaf.ndim else float(leaf) for leaf in leaves])
        out = np.asarray(f(*new_args), dtype=float)
        if out.size != 1:
            raise ValueError("not a scalar function")
        return float(out.reshape(-1)[0])

    out: list[tuple[str, float, float] | None] = []
    with np.errstate(all="ignore"):
        for slot in slots:
            try:
                x0 = float(np.asarray(flat_args[slot[0]][0][slot[1]], dtype=float)[slot[2]])
                out.append(_one_sided_shape(lambda x, slot=slot: call_with(slot, x), x0))
            except Exception:  # noqa: BLE001 (f refused a nearby point: no probe for this entry)
                out.append(None)
    return out


def _one_sided_shape(fn: Callable[[float], float], x0: float) -> tuple[str, float, float] | None:
    """Classify the point x0 of fn from one-sided differences at three steps h, h/16,
    h/256 (h = 1e-4 max(1, |x0|)): "smooth", "kink" (the gap D+ - D- stays the same at
    every step while each side's slope settles), "jump" (f(x0 +- h) - f(x0) does not
    shrink with h) or "unbounded" (a one-sided slope keeps growing as h shrinks: sqrt at
    0). A pattern must hold over both ratios of steps: a kink between h/256 and h from
    x0, or an oscillation faster than the steps, breaks it at one of them. The slopes
    returned at a kink are extrapolated once, (16 D(h/256) - D(h/16)) / 15, which removes
    their O(h) curvature term. Differences count only above rounding, 1e3 eps max|f| / step.
    """
    eps = float(np.finfo(float).eps)
    steps = [1e-4 * max(1.0, abs(x0)) / 16**k for k in range(3)]
    f0 = fn(x0)
    if not math.isfinite(f0):
        return None
    changes: dict[int, list[float]] = {}  # +1 right, -1 left: f(x0 + side h) - f(x0), per step
    slopes: dict[int, list[float]] = {}
    size = abs(f0)
    for side in (1, -1):
        try:
            points = [(x0 + side * h, fn(x0 + side * h)) for h in steps]
        except Exception:  # noqa: BLE001 (outside f's domain on this side)
            continue
        if all(math.isfinite(v) for _, v in points):
            changes[side] = [v - f0 for _, v in points]
            slopes[side] = [(v - f0) / (x - x0) for x, v in points]  # the true (rounded) step
            size = max(size, *(abs(v) for _, v in points))
    rounding = 1e3 * eps * size
    noise = rounding / steps[-1]
    pairs = ((0, 1), (1, 2))
    for c in changes.values():  # f itself moves by a step that does not shrink with h
        if all(abs(c[j]) > 0.9 * abs(c[i]) for i, j in pairs) and abs(c[-1]) > max(
            rounding, KINK_RTOL * max(1.0, abs(f0))
        ):
            return "jump", math.nan, math.nan
    for d in slopes.values():  # grows like h**(a-1), 0 < a < 1: sqrt, cbrt at 0
        if all(abs(d[j]) > 2 * abs(d[i]) + noise for i, j in pairs):
            return "unbounded", math.nan, math.nan
    if len(slopes) < 2:
        return None
    right_d, left_d = slopes[1], slopes[-1]
    gaps = [r - left for r, left in zip(right_d, left_d)]
    right, left = (16 * right_d[2] - right_d[1]) / 15, (16 * left_d[2] - left_d[1]) / 15
    threshold = max(noise, KINK_RTOL * max(1.0, abs(left_d[2]), abs(right_d[2])))
    if abs(gaps[2]) <= threshold:
        return "smooth", left, right
    stays = all(abs(gaps[j]) >= 0.5 * abs(gaps[i]) for i, j in pairs)
    # each side smooth: D(h) = slope + c h, so its change shrinks 16-fold with the step
    settles = all(abs(d[2] - d[1]) <= min(0.25 * abs(gaps[2]), abs(d[1] - d[0]) / 4 + noise) for d in slopes.values())
    if stays and settles:  # a jump of f'
        return "kink", left, right
    return "smooth", left, right


def _note(
    engine: str, f: Callable[..., Any], args: Sequence[Any], nums: tuple[int, ...], symbolic: Any, budget: float
) -> str:
    try:
        if engine == "paths":
            from adkit.graph import trace

            return _budgeted(budget, "counting paths", lambda: f"{trace(f, *args, argnums=nums).count_paths():,} paths")
        if engine == "symbolic" and symbolic is not None:
            return _budgeted(
                budget, "counting", lambda: f"{symbolic.count_ops} ops as a tree, {symbolic.count_ops_cse} with CSE"
            )
    except Exception:  # noqa: BLE001
        return ""
    return ""
