"""Gradient checking of any callable: check_grad, assert_grad, taylor_test, check_every.

The question a checker answers: is the gradient someone wrote (by hand, or got from any
framework) right for this numpy function? The answer must be one to trust (no false
alarms from finite-difference noise, float32, or kinks) and a report that points at the
bug (which parameter, which entry, and what kind of mistake it looks like).

How an entry is judged (one row per parameter entry, or per (output, entry) pair when f
returns an array and its Jacobian is checked):

* numeric side Ge: finite differences from `adkit.engines.numeric` (central by default),
  with the documented step rule and an error estimate per entry. Before the checks, f's
  noise is *measured* (8 evaluations, see `measure_noise`): if f is noisier than the
  round-off of its float type (it computes in float32 internally, say), steps are chosen
  from the measured noise instead and the report says "step below noise".
* rho = |Ge - Ga| / max(|Ge + Ga|, floor): the lecture's relative error. The floor is
  1e-3 x the largest |Ge| checked, so two tiny values are compared absolutely (no 0/0, and
  a zero analytic entry next to FD noise is not a failure).
* pass when rho <= threshold (1e-6 for float64; per-dtype thresholds below), *or* when
  |Ge - Ga| is within 3x the finite-difference error estimate: FD noise never blames a
  correct gradient (such entries are counted, and flagged when the FD error is large).
* kinks are detected, not guessed: the one-sided differences (f(x+h) - f(x))/h and
  (f(x) - f(x-h))/h at h and h/2 disagree by a jump that does not shrink with h (for a
  smooth f the gap halves with h). At a kink the analytic value passes when it lies
  between the two one-sided slopes (a subgradient: relu'(0) = 0 is the left slope) or
  within 1e-3 of one of them. Kinks are listed separately in the report.

Large models: `sample=N` checks N seeded random entries per parameter. mode="projection"
checks v^T J u for a random direction u per parameter (and a random v over f's outputs)
in O(1) evaluations; when it fails, the parameter is bisected with projections on halves
(O(log n) evaluations) down to small blocks checked entry by entry, which names the
culprit entries (a projection alone hides which entry is wrong).
"""

from __future__ import annotations

import html
import math
import time
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from adkit.engines import numeric as _num
from adkit.trees import as_input, tree_flatten, tree_unflatten

# thresholds on rho per dtype (of the parameters, i.e. of the analytic gradient), when the
# finite differences are evaluated in that dtype too; float32 central differences are good
# to about eps^(2/3) ~ 2e-5 relative, float16 ones to about 1e-2.
THRESHOLDS = {"float64": 1e-6, "float32": 1e-3, "float16": 5e-2}
# ... and when the finite differences are evaluated in float64 (fd_dtype="float64"): then
# only the analytic side's own rounding limits the agreement.
THRESHOLDS_FD64 = {"float64": 1e-6, "float32": 1e-4, "float16": 1e-2}
KINK_THRESHOLD = 1e-3
FLOOR = 1e-3  # rho's denominator is at least FLOOR x the largest |numeric| entry checked
FD_MULTIPLE = 3.0  # |Ge - Ga| <= FD_MULTIPLE x (FD error estimate) passes
KINK_NOISE_MULTIPLE = 100.0  # a kink's jump must exceed this many one-sided noise levels
BLOCK = 16  # projection re-checks stop bisecting at blocks this small
MAX_CULPRITS = 10  # ... and stop once this many failing entries are named


class GradCheckWarning(UserWarning):
    """A check whose verdict is weaker than it looks (low precision, huge FD errors)."""


# --- the report ---------------------------------------------------------------------------------------------


@dataclass
class EntryResult:
    """One checked entry (or projection): the two sides and the verdict."""

    entry: str  # "W[2, 3]" (and " -> out[1]" for a Jacobian entry)
    param: str
    index: tuple[int, ...]
    analytic: float
    numeric: float
    abs_error: float
    rho: float
    fd_error: float
    step: float
    passed: bool
    status: str  # "ok", "ok (within FD error)", "FAIL", "kink ok", "kink FAIL", "skipped"
    kink: bool = False
    one_sided: tuple[float, float] | None = None  # (left slope, right slope) at a kink
    out_index: tuple[int, ...] = ()
    projection: bool = False

    def to_dict(self) -> dict[str, Any]:
        d = {
            "entry": self.entry,
            "param": self.param,
            "index": list(self.index),
            "analytic": _num_json(self.analytic),
            "numeric": _num_json(self.numeric),
            "abs_error": _num_json(self.abs_error),
            "rho": _num_json(self.rho),
            "fd_error": _num_json(self.fd_error),
            "step": _num_json(self.step),
            "passed": bool(self.passed),
            "status": self.status,
            "kink": bool(self.kink),
        }
        if self.one_sided is not None:
            d["one_sided"] = [_num_json(self.one_sided[0]), _num_json(self.one_sided[1])]
        if self.out_index:
            d["out_index"] = list(self.out_index)
        if self.projection:
            d["projection"] = True
        return d


def _num_json(x: Any) -> Any:
    x = float(x)
    return x if math.isfinite(x) else str(x)


@dataclass
class ParamSummary:
    name: str
    shape: tuple[int, ...]
    dtype: str
    size: int
    checked: int
    failed: int
    kinks: int
    max_rho: float
    threshold: float


@dataclass
class GradCheckReport:
    """The verdict of check_grad, and everything needed to act on it.

    ok, max_rel_error, threshold; entries (every checked row), worst (the rows to look at
    first), kinks (rows where a kink was detected, judged by the kink rule); counts;
    which side is analytic and which numeric; the seed; diagnosis (what the mistake looks
    like, per parameter), problems (structure / shape mismatches) and hints.
    str(report) is a table; _repr_html_ renders it in Jupyter; to_dict() is JSON-ready.
    """

    ok: bool
    max_rel_error: float
    threshold: float
    kink_threshold: float
    method: str
    mode: str
    seed: int
    sample: int | None
    analytic_side: str
    numeric_side: str
    entries: list[EntryResult]
    params: list[ParamSummary]
    n_checked: int
    n_failed: int
    n_kinks: int
    n_total: int
    n_evaluations: int
    seconds: float
    diagnosis: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    hints: list[str] = field(default_factory=list)
    max_rows: int = 10
    function: str = "f"

    def __bool__(self) -> bool:
        return bool(self.ok)

    @property
    def failures(self) -> list[EntryResult]:
        return [e for e in self.entries if not e.passed]

    @property
    def kinks(self) -> list[EntryResult]:
        return [e for e in self.entries if e.kink]

    @property
    def worst(self) -> list[EntryResult]:
        def key(e: EntryResult) -> tuple[int, float]:
            r = e.rho if math.isfinite(e.rho) else math.inf
            return (0 if not e.passed else 1, -r)

        rows = [e for e in self.entries if e.status != "skipped" and not (e.kink and e.passed)]
        return sorted(rows, key=key)[: self.max_rows]

    # --- text ---
    def headline(self) -> str:
        verdict = "PASSED" if self.ok else "FAILED"
        unit = "checks (projections and entries)" if self.mode == "projection" else "checked entries"
        what = f"{self.n_failed} of {self.n_checked} {unit} fail" if self.n_failed else "every check agrees"
        if self.problems and not self.n_failed:
            what = f"{len(self.problems)} structural problem(s)"
        elif self.problems:
            what += f"; {len(self.problems)} structural problem(s)"
        return (
            f"gradient check {verdict}: {what} (max rho {_fmt(self.max_rel_error)}, threshold {_fmt(self.threshold)})"
        )

    def __str__(self) -> str:
        try:
            return self._text()
        except Exception as exc:  # noqa: BLE001 (a report must always print)
            return f"gradient check {'PASSED' if self.ok else 'FAILED'} (report could not be formatted: {exc!r})"

    def __repr__(self) -> str:
        return f"<GradCheckReport ok={self.ok} max_rel_error={_fmt(self.max_rel_error)} checked={self.n_checked} failed={self.n_failed}>"

    def _text(self) -> str:
        lines = [self.headline()]
        sampled = (
            f"{self.n_checked} of {self.n_total} entries (sample={self.sample} per parameter, seed {self.seed})"
            if self.sample is not None and self.n_checked < self.n_total
            else f"{self.n_checked} of {self.n_total} entries (seed {self.seed})"
        )
        lines.append(f"  function: {self.function}   mode: {self.mode}   checked: {sampled}")
        lines.append(f"  analytic (Ga): {self.analytic_side}")
        lines.append(f"  numeric  (Ge): {self.numeric_side}")
        lines.append(
            f"  rule: rho = |Ge - Ga| / max(|Ge + Ga|, floor) <= {_fmt(self.threshold)}"
            f" (kinks: {_fmt(self.kink_threshold)}), or |Ge - Ga| <= {FD_MULTIPLE:g} x FD error;"
            f" {self.n_evaluations} evaluations of f, {self.seconds:.2f} s"
        )
        if self.problems:
            lines.append("problems:")
            lines.extend(f"  - {p}" for p in self.problems)
        if self.diagnosis:
            lines.append("diagnosis:")
            lines.extend(f"  - {d}" for d in self.diagnosis)
        worst = self.worst
        if worst:
            lines.append("worst entries:" if not self.ok else "largest discrepancies:")
            lines.extend(_table(worst))
        kinks = self.kinks
        if kinks:
            lines.append(
                f"kinks detected ({len(kinks)}): one-sided slopes disagree; the analytic value must lie "
                f"between them (or within {_fmt(self.kink_threshold)} of one)"
            )
            lines.extend(_kink_table(kinks[: self.max_rows]))
            if len(kinks) > self.max_rows:
                lines.append(f"  ... and {len(kinks) - self.max_rows} more")
        if len(self.params) > 1:
            lines.append("per parameter:")
            w = max(len(p.name) for p in self.params)
            for p in self.params:
                lines.append(
                    f"  {p.name:<{w}}  shape {str(p.shape):<12} {p.dtype:<8} checked {p.checked:>6}  "
                    f"failed {p.failed:>4}  kinks {p.kinks:>3}  max rho {_fmt(p.max_rho)}"
                )
        if self.hints:
            lines.append("hints:")
            lines.extend(f"  - {h}" for h in self.hints)
        return "\n".join(lines)

    def _repr_html_(self) -> str:
        try:
            return self._html()
        except Exception:  # noqa: BLE001 (never raise in a notebook's display hook)
            try:
                return f"<pre>{html.escape(str(self))}</pre>"
            except Exception:  # noqa: BLE001
                return "<pre>gradient check report (could not be rendered)</pre>"

    def _html(self) -> str:
        e = html.escape
        color = "#1a7f37" if self.ok else "#cf222e"
        parts = [f'<div class="adkit-gradcheck"><p><b style="color:{color}">{e(self.headline())}</b></p>']
        parts.append(
            "<ul>"
            f"<li>analytic (Ga): {e(self.analytic_side)}</li>"
            f"<li>numeric (Ge): {e(self.numeric_side)}</li>"
            f"<li>mode {e(self.mode)}, seed {self.seed}, {self.n_checked} of {self.n_total} entries checked, "
            f"{self.n_evaluations} evaluations, {self.seconds:.2f} s</li></ul>"
        )
        for title, items in (("problems", self.problems), ("diagnosis", self.diagnosis), ("hints", self.hints)):
            if items:
                parts.append(f"<p>{title}:</p><ul>" + "".join(f"<li>{e(i)}</li>" for i in items) + "</ul>")
        head = ["entry", "analytic", "numeric", "abs err", "rho", "FD err", "step", "status"]

        def table(rows: list[EntryResult]) -> str:
            out = ["<table><tr>" + "".join(f"<th>{h}</th>" for h in head) + "</tr>"]
            for r in rows:
                cells = [r.entry, _g(r.analytic), _g(r.numeric), _fmt(r.abs_error), _fmt(r.rho)]
                cells += [_fmt(r.fd_error), _fmt(r.step), r.status]
                style = "" if r.passed else ' style="color:#cf222e"'
                out.append(f"<tr{style}>" + "".join(f"<td>{e(str(c))}</td>" for c in cells) + "</tr>")
            return "".join(out) + "</table>"

        if self.worst:
            parts.append("<p>worst entries:</p>" + table(self.worst))
        if self.kinks:
            parts.append("<p>kinks detected:</p>" + table(self.kinks[: self.max_rows]))
        parts.append("</div>")
        return "".join(parts)

    def to_dict(self) -> dict[str, Any]:
        return {
            "ok": bool(self.ok),
            "max_rel_error": _num_json(self.max_rel_error),
            "threshold": self.threshold,
            "kink_threshold": self.kink_threshold,
            "function": self.function,
            "method": self.method,
            "mode": self.mode,
            "seed": self.seed,
            "sample": self.sample,
            "analytic_side": self.analytic_side,
            "numeric_side": self.numeric_side,
            "n_checked": self.n_checked,
            "n_failed": self.n_failed,
            "n_kinks": self.n_kinks,
            "n_total": self.n_total,
            "n_evaluations": self.n_evaluations,
            "seconds": self.seconds,
            "worst": [r.to_dict() for r in self.worst],
            "kinks": [r.to_dict() for r in self.kinks],
            "failures": [r.to_dict() for r in self.failures[:100]],
            "params": [
                {
                    "name": p.name,
                    "shape": list(p.shape),
                    "dtype": p.dtype,
                    "size": p.size,
                    "checked": p.checked,
                    "failed": p.failed,
                    "kinks": p.kinks,
                    "max_rho": _num_json(p.max_rho),
                    "threshold": p.threshold,
                }
                for p in self.params
            ],
            "diagnosis": list(self.diagnosis),
            "problems": list(self.problems),
            "hints": list(self.hints),
        }


def _fmt(x: Any) -> str:
    try:
        x = float(x)
    except (TypeError, ValueError):
        return str(x)
    if math.isnan(x):
        return "nan"
    return f"{x:.1e}" if x != 0 else "0"


def _g(x: Any) -> str:
    try:
        return f"{float(x):.10g}"
    except (TypeError, ValueError):
        return str(x)


def _table(rows: list[EntryResult]) -> list[str]:
    head = ("entry", "analytic", "numeric", "abs err", "rho", "FD err", "step", "status")
    body = [
        (
            r.entry,
            _g(r.analytic),
            _g(r.numeric),
            _fmt(r.abs_error),
            _fmt(r.rho),
            _fmt(r.fd_error),
            _fmt(r.step),
            r.status,
        )
        for r in rows
    ]
    widths = [max(len(h), *(len(b[i]) for b in body)) for i, h in enumerate(head)]
    fmt = "  " + "  ".join(f"{{:<{w}}}" for w in widths)
    return [fmt.format(*head)] + [fmt.format(*b) for b in body]


def _kink_table(rows: list[EntryResult]) -> list[str]:
    head = ("entry", "analytic", "left slope", "right slope", "central", "status")
    body = []
    for r in rows:
        left, right = r.one_sided if r.one_sided is not None else (math.nan, math.nan)
        body.append((r.entry, _g(r.analytic), _g(left), _g(right), _g(r.numeric), r.status))
    widths = [max(len(h), *(len(b[i]) for b in body)) for i, h in enumerate(head)]
    fmt = "  " + "  ".join(f"{{:<{w}}}" for w in widths)
    return [fmt.format(*head)] + [fmt.format(*b) for b in body]


# --- parameters: names, leaves, the analytic side --------------------------------------------------------


def leaf_names(tree: Any, root: str | None = None) -> list[str]:
    """Readable names of the leaves of params, in tree_flatten order: W, layers[0].b, x."""
    if isinstance(tree, dict):
        out = []
        for k in tree:
            out.extend(leaf_names(tree[k], str(k) if root is None else f"{root}.{k}"))
        return out
    if isinstance(tree, (list, tuple)) and not (isinstance(tree, tuple) and hasattr(tree, "_fields")):
        out = []
        for i, x in enumerate(tree):
            out.extend(leaf_names(x, f"{root if root is not None else 'params'}[{i}]"))
        return out
    return [root if root is not None else "x"]


def _label(name: str, shape: tuple[int, ...], i: int) -> tuple[str, tuple[int, ...]]:
    if not shape:
        return name, ()
    idx = tuple(int(j) for j in np.unravel_index(i, shape))
    return f"{name}[{', '.join(map(str, idx))}]", idx


def _describe(fn: Any) -> str:
    name = getattr(fn, "__qualname__", None) or getattr(fn, "__name__", None) or type(fn).__name__
    module = getattr(fn, "__module__", None)
    return f"{module}.{name}" if module and module not in ("__main__", "builtins") else str(name)


@dataclass
class _Leaf:
    name: str
    value: Any  # as passed to f (float or ndarray)
    shape: tuple[int, ...]
    dtype: np.dtype
    analytic: np.ndarray | None = None  # (out_size, leaf_size) float64
    problem: str | None = None
    transposed_shape: bool = False
    threshold: float = 1e-6


def _analytic_side(
    f: Callable[..., Any], params: Any, grad: Any, args: Sequence[Any], out_shape: tuple[int, ...]
) -> tuple[Any, str]:
    if grad is None:
        import adkit

        fn = lambda p: f(p, *args)
        try:
            if out_shape == ():
                g = adkit.grad(fn)(params)
            else:
                g = adkit.jacobian(fn, engine="reverse")(params)
        except Exception as exc:
            raise ValueError(
                "grad=None asks adkit's reverse engine to differentiate f, and it could not "
                f"({type(exc).__name__}: {exc}). Pass the gradient to check as grad= (a callable "
                "or precomputed arrays)."
            ) from exc
        what = "adkit.grad (reverse engine)" if out_shape == () else "adkit.jacobian (reverse engine)"
        return g, what
    if callable(grad):
        return grad(params, *args), f"grad={_describe(grad)}"
    return grad, "precomputed arrays (grad=...)"


def _match_analytic(leaves: list[_Leaf], params: Any, g: Any, out_shape: tuple[int, ...], problems: list[str]) -> None:
    """Attach the analytic gradient's leaves to the parameters' leaves (by name or position)."""
    p_leaves, p_def = tree_flatten(params)
    g_leaves, g_def = tree_flatten(g)
    names = [leaf.name for leaf in leaves]
    g_names = leaf_names(g)
    if g_def == p_def:
        pairs = dict(zip(names, g_leaves))
    elif isinstance(params, dict) and isinstance(g, dict):
        pairs = {n: v for n, v in zip(g_names, g_leaves) if n in names}
        for n in g_names:
            if n not in names:
                problems.append(f"grad has an entry {n!r} that params does not have")
    elif len(g_leaves) == len(p_leaves):
        pairs = dict(zip(names, g_leaves))
    else:
        problems.append(
            f"grad has {len(g_leaves)} array(s) but params has {len(p_leaves)}: their structures differ "
            f"(params: {', '.join(names)}; grad: {', '.join(g_names)})"
        )
        for leaf in leaves:
            leaf.problem = "no matching gradient"
        return
    out_size = int(np.prod(out_shape, dtype=np.int64))
    for leaf in leaves:
        if leaf.name not in pairs:
            leaf.problem = f"grad has no entry for parameter {leaf.name!r}"
            problems.append(leaf.problem)
            continue
        try:
            a = np.asarray(pairs[leaf.name], dtype=np.float64)
        except (TypeError, ValueError) as exc:
            leaf.problem = f"grad for {leaf.name} is not numeric ({exc})"
            problems.append(leaf.problem)
            continue
        want = tuple(out_shape) + leaf.shape
        if a.shape == want or (a.size == 1 and int(np.prod(want, dtype=np.int64)) == 1):
            leaf.analytic = a.reshape(out_size, -1)
            continue
        if out_shape == () and len(leaf.shape) == 2 and a.shape == leaf.shape[::-1]:
            leaf.analytic = a.T.reshape(1, -1)
            leaf.transposed_shape = True
            leaf.problem = (
                f"grad for {leaf.name} has shape {a.shape}, but {leaf.name} has shape {leaf.shape}: "
                "the gradient of a parameter has the parameter's shape"
            )
            problems.append(leaf.problem)
            continue
        size = int(np.prod(want, dtype=np.int64))
        extra = ""
        if out_shape and a.shape == leaf.shape + tuple(out_shape):
            leaf.problem = (
                f"grad for {leaf.name} has shape {a.shape} = {leaf.name}.shape + out.shape: the Jacobian's axes are "
                f"in the wrong order; adkit's convention is out.shape + {leaf.name}.shape = {want}"
            )
            problems.append(leaf.problem)
            continue
        if a.size == size - 1:
            extra = ": one entry short (an entry dropped?)"
        elif a.size == size:
            extra = ": same number of entries, different layout (reshaped or flattened?)"
        elif a.size < size and a.ndim < len(want):
            extra = " (summed over an axis? broadcasting undone on the wrong side?)"
        leaf.problem = f"grad for {leaf.name} has shape {a.shape}, but {leaf.name} has shape {leaf.shape}{extra}"
        if out_shape:
            leaf.problem = (
                f"grad for {leaf.name} has shape {a.shape}; the Jacobian of an output of shape {out_shape} "
                f"with respect to {leaf.name} {leaf.shape} has shape {want}{extra}"
            )
        problems.append(leaf.problem)


def _threshold_for(leaf_dtype: np.dtype, fd_eps: float) -> float:
    an = _num.machine_eps(leaf_dtype)
    worst = max(an, fd_eps)
    if worst <= 1e-15:
        return THRESHOLDS["float64"]
    table = THRESHOLDS_FD64 if fd_eps <= 1e-15 else THRESHOLDS
    return table["float32"] if worst <= 2e-7 else table["float16"]


# --- check_grad ---------------------------------------------------------------------------------------------


def check_grad(
    f: Callable[..., Any],
    params: Any,
    grad: Any = None,
    *,
    args: Sequence[Any] = (),
    sample: int | None = None,
    seed: int = 0,
    method: str = "central",
    mode: str = "entries",
    threshold: float | None = None,
    kink_threshold: float = KINK_THRESHOLD,
    fd_dtype: Any = None,
    max_rows: int = 10,
    warn: bool = True,
) -> GradCheckReport:
    """Check a claimed gradient of f at params against finite differences.

    f       any Python callable, called as f(params, *args); returns a scalar (its gradient
            is checked) or an array (its Jacobian, shape out.shape + param.shape, is checked)
    params  an array, a float, or a dict / list / tuple (nested) of arrays
    grad    the claimed gradient: a callable grad(params, *args) returning the structure of
            params, or the precomputed arrays; None: adkit's reverse engine differentiates f
    sample  check N seeded random entries per parameter instead of all of them
    seed    seeds the sample, the projection directions and the noise probe
    method  finite differences: "central" (default), "forward", "backward", "richardson",
            "complex" (complex-step: analytic f only)
    mode    "entries" (default) or "projection": v^T J u per parameter in O(1) evaluations,
            bisecting to name the culprit entries when it fails
    threshold        on rho; default per dtype: 1e-6 float64, 1e-3 float32, 5e-2 float16
                     (1e-4 / 1e-2 when fd_dtype="float64")
    kink_threshold   tolerance at detected kinks (1e-3)
    fd_dtype         evaluate the finite differences with the parameters cast to this
                     dtype (e.g. "float64" for float32 parameters, when f accepts it)

    Returns a GradCheckReport (report.ok, str(report)).
    """
    start = time.perf_counter()
    if mode not in ("entries", "projection"):
        raise ValueError(f"mode must be 'entries' or 'projection', got {mode!r}")
    if method not in _num.METHODS:
        raise ValueError(f"unknown method {method!r}; choose one of {', '.join(_num.METHODS)}")
    if sample is not None and (not isinstance(sample, (int, np.integer)) or sample < 1):
        raise ValueError(f"sample must be a positive integer (entries per parameter), got {sample!r}")
    args = tuple(args)
    p_leaves, p_def = tree_flatten(params)
    names = leaf_names(params)
    leaves: list[_Leaf] = []
    for name, raw in zip(names, p_leaves):
        v = as_input(raw, f"parameter {name}")
        a = np.asarray(v)
        leaves.append(_Leaf(name, v, a.shape, a.dtype if a.dtype.kind == "f" else np.dtype(np.float64)))
    hints: list[str] = []
    problems: list[str] = []
    clean_params = tree_unflatten(p_def, [leaf.value for leaf in leaves])

    def call(values: list[Any]) -> Any:
        return f(tree_unflatten(p_def, values), *args)

    # --- the numeric side's point (optionally in another dtype) ---
    fd_dt = None if fd_dtype is None else np.dtype(fd_dtype)
    point = _num.Point(call, [leaf.value for leaf in leaves], dtype=fd_dt)
    try:
        f0 = point()
    except Exception as exc:
        if fd_dt is None:
            raise
        hints.append(
            f"f does not accept {fd_dt} input ({type(exc).__name__}: {exc}): finite differences in the parameters' dtype"
        )
        fd_dt = None
        point = _num.Point(call, [leaf.value for leaf in leaves])
        f0 = point()
    if not np.all(np.isfinite(f0)):
        raise ValueError(f"f is not finite at params (f = {f0}): there is nothing to check there")
    out_shape = f0.shape
    out_size = int(np.prod(out_shape, dtype=np.int64))
    fd_eps = max(_num.machine_eps(w.dtype) for w in point.work) if point.work else 2.2e-16
    if point.out_dtype is not None and point.out_dtype.kind == "f":
        fd_eps = max(fd_eps, _num.machine_eps(point.out_dtype))

    # --- thresholds, and the float32 warning ---
    for leaf in leaves:
        leaf.threshold = threshold if threshold is not None else _threshold_for(leaf.dtype, fd_eps)
    low = sorted({str(leaf.dtype) for leaf in leaves if _num.machine_eps(leaf.dtype) > 1e-15})
    if low:
        default = max(_threshold_for(leaf.dtype, fd_eps) for leaf in leaves)
        offer = (
            ""
            if fd_eps <= 1e-15
            else " If f accepts float64 input, pass fd_dtype='float64' to evaluate the finite differences "
            f"in float64 (threshold {_threshold_for(np.dtype(low[-1]), 2.2e-16):.0e})."
        )
        msg = (
            f"parameters are {'/'.join(low)}: the lecture's rho < 1e-6 is a float64 target; "
            f"in {low[-1]} this check uses threshold {default:.0e}.{offer}"
        )
        if threshold is not None and threshold < default:
            msg += (
                f" The threshold {threshold:.0e} you asked for is below what {low[-1]} resolves: expect false failures."
            )
        hints.append(msg)
        if warn and (fd_eps > 1e-15 or (threshold is not None and threshold < default)):
            warnings.warn(msg, GradCheckWarning, stacklevel=2)

    # --- the analytic side ---
    g, analytic_side = _analytic_side(f, clean_params, grad, args, out_shape)
    _match_analytic(leaves, clean_params, g, out_shape, problems)

    rng = np.random.default_rng(seed)
    # --- noise probe: is f noisier than its float type's round-off? ---
    eps_eff: float | None = None
    noise = None
    if method != "complex":
        try:  # 18 evaluations; f may refuse points near x (a domain edge): then no probe
            noise = _num.measure_noise(point, f0, np.random.default_rng([seed, 1]))
        except Exception:  # noqa: BLE001
            noise = None
        if noise is not None:
            fmag = float(np.max(np.abs(f0))) if f0.size else 0.0
            noise_rel = float(np.max(noise)) / fmag if fmag > 0 else 0.0
            if noise_rel > 100 * fd_eps:
                eps_eff = noise_rel
                for leaf in leaves:  # the working precision is the measured noise, not the dtype's:
                    if threshold is None:  # FD error ~ noise^(2/3); 100x that, as 1e-6 is for float64
                        leaf.threshold = min(5e-2, max(leaf.threshold, 100 * noise_rel ** (2 / 3)))
                hints.append(
                    f"step below noise: f's values are noisy at ~{noise_rel:.1e} relative (measured), far above "
                    f"the round-off of its float type ({fd_eps:.1e}); does f compute in lower precision inside? "
                    f"The steps were enlarged (the rule with eps = {noise_rel:.1e}) and the check is only as "
                    "sharp as that noise allows."
                )

    overall_threshold = max(leaf.threshold for leaf in leaves) if leaves else THRESHOLDS["float64"]
    ctx = _Context(f0=f0, noise=noise, eps=eps_eff, method=method, out_shape=out_shape, kink_threshold=kink_threshold)
    if method == "complex":
        _num.check_complex_step(lambda p: f(p, *args), (clean_params,), (0,))
        ctx.cpoint = _num.Point(call, [leaf.value for leaf in leaves], complex_values=True)

    if mode == "entries" and sample is None and warn:
        n_all = sum(int(np.prod(leaf.shape, dtype=np.int64)) for leaf in leaves)
        if n_all >= 20_000:
            warnings.warn(
                f"checking every one of {n_all} entries costs about {4 * n_all} evaluations of f; "
                "pass sample=N (N random entries per parameter) or mode='projection'",
                GradCheckWarning,
                stacklevel=2,
            )
    rows: list[_Row] = []
    n_total = 0
    for k, leaf in enumerate(leaves):
        size = int(np.prod(leaf.shape, dtype=np.int64))
        n_total += size * out_size
        if leaf.analytic is None:
            continue
        if mode == "entries":
            if sample is None or sample >= size:
                idx = np.arange(size)
            else:
                idx = np.sort(rng.choice(size, size=int(sample), replace=False))
            rows.extend(_check_entries(point, ctx, k, leaf, idx))
        else:
            rows.extend(_check_projection(point, ctx, k, leaf, rng))

    # --- verdicts ---
    scale = max((abs(r.n) for r in rows if r.n == r.n and not r.projection), default=0.0)
    floor_entries = max(FLOOR * scale, np.finfo(np.float64).tiny)
    for r in rows:
        if not r.projection:  # projections were judged as they were taken (bisection needs it)
            _judge(r, floor_entries, leaves[r.k].threshold, kink_threshold)
    entries = [_to_entry(r, leaves, out_shape) for r in rows]
    diagnosis = _diagnose_all(leaves, rows, floor_entries, out_shape, ctx)
    # transposed-shape leaves: their rows compared the transpose
    for k, leaf in enumerate(leaves):
        if leaf.transposed_shape:
            mine = [r for r in rows if r.k == k and not r.projection and r.verdict != "skipped"]
            good = sum(1 for r in mine if r.passed)
            if mine and good == len(mine):
                diagnosis.insert(
                    0,
                    f"{leaf.name}: the gradient is transposed: its transpose matches the finite differences at "
                    f"all {len(mine)} checked entries (return grad.T, or build it as x.T @ delta rather than delta.T @ x)",
                )
            elif mine:
                diagnosis.insert(
                    0,
                    f"{leaf.name}: gradient of the transposed shape, and even its transpose fails at {len(mine) - good} entries",
                )

    n_checked = sum(1 for r in rows if r.verdict != "skipped")
    n_failed = sum(1 for r in rows if not r.passed)
    n_kinks = sum(1 for r in rows if r.kink)
    skipped = sum(1 for r in rows if r.verdict == "skipped")
    ok = n_failed == 0 and not problems and n_checked > 0
    rhos = [r.rho for r in rows if r.verdict != "skipped"]
    max_rho = max((x if x == x else math.inf for x in rhos), default=0.0)

    # --- hints ---
    unresolved = [r for r in rows if r.verdict == "unresolved"]
    if unresolved:
        hints.append(
            f"{len(unresolved)} entries unresolved (not counted as failures): their one-sided differences are "
            "inconsistent at this step (a kink within one step of the point, or f varies on a scale below the "
            f"step, e.g. {_label(leaves[unresolved[0].k].name, leaves[unresolved[0].k].shape, unresolved[0].i)[0]} "
            f"with h = {unresolved[0].h:.2g}); check them at another point, with step=, or fd_dtype='float64'"
        )
    if skipped:
        hints.append(f"{skipped} entries skipped: f is not finite on one side of the point (a domain edge)")
    by_fd = [r for r in rows if r.verdict == "ok (within FD error)"]
    if by_fd:
        loose = [r for r in by_fd if r.e > 1e-2 * max(abs(r.n), floor_entries)]
        if loose:
            hints.append(
                f"{len(loose)} entries passed only because the finite-difference error is large (> 1% of the "
                "value): the check cannot resolve them (step below noise? a kink within one step?); "
                "try method='richardson', or fd_dtype='float64'"
            )
    if n_kinks:
        names_k = sorted({leaves[r.k].name for r in rows if r.kink})
        hints.append(
            f"kink suspected: {n_kinks} entries sit at (or within one step of) a point where f is not "
            f"differentiable (in {', '.join(names_k)}); relu/abs/max at 0 or at a tie. They are judged by the "
            "kink rule; move the point slightly to check them as smooth entries"
        )
    if mode == "entries" and sample is not None and n_checked < n_total:
        hints.append(
            f"sampled {sample} entries per parameter ({n_checked} of {n_total}): errors in other entries can "
            "go unseen; a larger sample, or mode='projection' (which sees every entry at once), covers more"
        )
    if leaves and all(leaf.analytic is not None and not np.any(leaf.analytic) for leaf in leaves) and scale > 0:
        hints.append("the analytic gradient is zero everywhere but f is not flat: is the gradient ever written?")
    if not rows and not problems:
        hints.append("nothing was checked: params has no entries")

    numeric_side = _numeric_description(method, point, eps_eff, fd_dt)
    per_param = []
    for k, leaf in enumerate(leaves):
        mine = [r for r in rows if r.k == k and r.verdict != "skipped"]
        per_param.append(
            ParamSummary(
                leaf.name,
                leaf.shape,
                str(leaf.dtype),
                int(np.prod(leaf.shape, dtype=np.int64)),
                len(mine),
                sum(1 for r in mine if not r.passed),
                sum(1 for r in mine if r.kink),
                max((r.rho if r.rho == r.rho else math.inf for r in mine), default=0.0),
                leaf.threshold,
            )
        )
    return GradCheckReport(
        ok=ok,
        max_rel_error=max_rho,
        threshold=overall_threshold,
        kink_threshold=kink_threshold,
        method=method,
        mode=mode,
        seed=seed,
        sample=sample,
        analytic_side=analytic_side,
        numeric_side=numeric_side,
        entries=entries,
        params=per_param,
        n_checked=n_checked,
        n_failed=n_failed,
        n_kinks=n_kinks,
        n_total=n_total,
        n_evaluations=point.evaluations + ctx.extra_evaluations + (ctx.cpoint.evaluations if ctx.cpoint else 0),
        seconds=time.perf_counter() - start,
        diagnosis=diagnosis,
        problems=problems,
        hints=hints,
        max_rows=max_rows,
        function=_describe(f),
    )


def _numeric_description(method: str, point: _num.Point, eps_eff: float | None, fd_dt: Any) -> str:
    dt = str(point.work[0].dtype) if point.work else "float64"
    eps = f"eps = {eps_eff:.1e} (measured noise)" if eps_eff else f"eps of {dt}"
    rules = {
        "central": f"central differences, h = eps^(1/3)·max(1,|x|), {eps}; error estimate from h/2",
        "forward": f"forward differences, h = eps^(1/2)·max(1,|x|), {eps}; error estimate from h/2",
        "backward": f"backward differences, h = eps^(1/2)·max(1,|x|), {eps}; error estimate from h/2",
        "richardson": f"Richardson extrapolation of central differences at h, h/2, h/4, h = eps^(1/5)·max(1,|x|), {eps}",
        "complex": "complex step Im f(x+ih)/h, h = 1e-20·max(1,|x|)",
    }
    text = rules[method]
    if fd_dt is not None:
        text += f", evaluated in {fd_dt}"
    if method != "central" and method != "complex":
        text += "; kinks detected with central-step one-sided differences"
    return text


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
    bisections: dict[str, tuple[int, int, int]] = field(default_factory=dict)


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
    verdict: str | None = None
    rho: float = math.nan
    passed: bool = True
    kink: bool = False


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


def _judge(r: _Row, floor: float, threshold: float, kink_threshold: float) -> None:
    a, n, e = r.a, r.n, r.e
    r.kink = False
    if not math.isfinite(n):
        r.verdict, r.passed, r.rho = "skipped", True, math.nan
        return
    diff = abs(a - n)
    r.rho = diff / max(abs(a + n), floor) if math.isfinite(a) else math.inf
    if not math.isfinite(a):
        r.verdict, r.passed = "FAIL (analytic not finite)", False
        return
    smooth_ok = r.rho <= threshold or diff <= FD_MULTIPLE * e
    # kink detection: the one-sided slopes' gap does not shrink with h
    if math.isfinite(r.jump):
        slope_scale = max(abs(r.fw), abs(r.bw), floor)
        if r.jump > max(KINK_NOISE_MULTIPLE * r.snoise, threshold * slope_scale):
            gap = max(abs(r.d1), abs(r.d2))
            fw1 = r.fw1
            bw1 = fw1 - r.d1
            if abs(r.d1 - r.d2) > 0.25 * gap or abs(fw1 - r.fw) > 0.25 * gap or abs(bw1 - r.bw) > 0.25 * gap:
                # a kink at x keeps the gap as h halves, and each one-sided slope stays put;
                # here the gap neither halves (smooth) nor stays: a kink within one step of
                # x, or f varies on a scale below the step. FD cannot judge this entry.
                if r.rho <= threshold or diff <= FD_MULTIPLE * e:
                    r.verdict, r.passed = "ok", True
                else:
                    r.verdict, r.passed = "unresolved", True
                return
            r.kink = True
            lo, hi = min(r.fw, r.bw), max(r.fw, r.bw)
            tol = kink_threshold * max(abs(lo), abs(hi), floor) + FD_MULTIPLE * r.snoise
            inside = lo - tol <= a <= hi + tol
            rho_sides = min(abs(a - s) / max(abs(a + s), floor) for s in (lo, hi))
            r.rho = 0.0 if lo <= a <= hi else rho_sides
            r.passed = inside or rho_sides <= kink_threshold or smooth_ok
            if not r.passed:
                r.verdict = "kink FAIL"
            elif abs(a - r.bw) <= tol and abs(a - r.bw) <= abs(a - r.fw):
                r.verdict = "kink ok (left slope)"
            elif abs(a - r.fw) <= tol:
                r.verdict = "kink ok (right slope)"
            else:
                r.verdict = "kink ok (between the slopes)"
            return
    if r.rho <= threshold:
        r.verdict, r.passed = "ok", True
    elif diff <= FD_MULTIPLE * e:
        r.verdict, r.passed = "ok (within FD error)", True
    else:
        r.verdict, r.passed = "FAIL", False


def _to_entry(r: _Row, leaves: list[_Leaf], out_shape: tuple[int, ...]) -> EntryResult:
    leaf = leaves[r.k]
    out_idx: tuple[int, ...] = ()
    if r.projection:
        label, idx = r.label, ()
    else:
        label, idx = _label(leaf.name, leaf.shape, r.i)
        if out_shape:
            out_idx = tuple(int(j) for j in np.unravel_index(r.o, out_shape))
            label += f" -> out[{', '.join(map(str, out_idx))}]"
    return EntryResult(
        entry=label,
        param=leaf.name,
        index=idx,
        analytic=r.a,
        numeric=r.n,
        abs_error=abs(r.a - r.n),
        rho=r.rho,
        fd_error=r.e,
        step=r.h,
        passed=r.passed,
        status=r.verdict or "",
        kink=r.kink,
        one_sided=(r.bw, r.fw) if r.kink else None,
        out_index=out_idx,
        projection=r.projection,
    )


# --- projection mode ---------------------------------------------------------------------------------------


def _check_projection(point: _num.Point, ctx: _Context, k: int, leaf: _Leaf, rng: np.random.Generator) -> list[_Row]:
    """v^T J u for one random direction per parameter; bisect to the culprits on failure."""
    if ctx.method == "complex":
        raise ValueError("mode='projection' uses real finite differences; choose method='central' or 'richardson'")
    size = int(np.prod(leaf.shape, dtype=np.int64))
    if size == 0:
        return []
    out_size = leaf.analytic.shape[0]
    z = rng.standard_normal(size)
    v = None
    if ctx.out_shape:
        v = rng.standard_normal(out_size)
        v /= np.linalg.norm(v)
    perm = rng.permutation(size)
    eps = ctx.eps if ctx.eps is not None else point.eps(k)
    t0 = 2.0 ** round(math.log2(eps ** (1 / 3)))  # a power of two: t0 / 2 is exact
    x = point.flat[k]
    x64 = x.astype(np.float64)
    scale = np.maximum(1.0, np.abs(x64))
    noise = None
    if ctx.noise is not None:
        nz = np.asarray(ctx.noise, dtype=np.float64).reshape(-1)
        noise = float(np.sqrt(np.sum((v * nz) ** 2))) if v is not None else float(nz[0])
    f0 = float(np.vdot(v, ctx.f0.reshape(-1))) if v is not None else float(ctx.f0)
    weights = leaf.analytic if v is None else (v @ leaf.analytic)[None, :]  # (1, size)
    stats = {"evaluations": 0, "levels": 0}

    def project(idx: np.ndarray, label: str, floor: float | None) -> _Row:
        d = np.zeros(size)
        d[idx] = z[idx] * scale[idx]
        d /= np.max(np.abs(d))  # every entry moves by at most t * max(1, |x_i|)
        # round d so that x + t d is exactly representable at t = t0/2 (hence at t0 too)
        tm = t0 / 2
        d = ((x64 + tm * d).astype(x.dtype).astype(np.float64) - x64) / tm
        line = _line_point(point, k, d, v)
        res = _num.fd_entries(line, [(0, 0)], "central", step=t0, sides=True, f0=np.asarray(f0), noise=noise, eps=eps)
        stats["evaluations"] += line.evaluations
        sd = res.sides
        r = _Row(k, -1, 0, float(weights[0] @ d), float(res.value[0]), float(res.error[0]), float(res.step[0]))
        r.fw, r.bw = float(sd["forward"][0]), float(sd["backward"][0])
        r.jump, r.snoise = float(sd["jump"][0]), float(sd["noise"][0])
        r.d1, r.d2, r.fw1 = float(sd["delta1"][0]), float(sd["delta"][0]), float(sd["forward1"][0])
        r.projection, r.label = True, label
        _judge(
            r,
            floor if floor is not None else max(FLOOR * abs(r.n), np.finfo(np.float64).tiny),
            leaf.threshold,
            ctx.kink_threshold,
        )
        return r

    what = "v^T J u" if v is not None else "<grad, u>"
    top = project(perm, f"{leaf.name}: {what} (projection over {size} entries)", None)
    rows = [top]
    if top.passed:
        ctx.extra_evaluations += stats["evaluations"]
        return rows
    floor = max(FLOOR * abs(top.n), np.finfo(np.float64).tiny)
    culprits: list[_Row] = []

    def bisect(idx: np.ndarray, depth: int) -> None:
        if len(culprits) >= MAX_CULPRITS:
            return
        stats["levels"] = max(stats["levels"], depth)
        if len(idx) <= BLOCK:
            found = _check_entries(point, ctx, k, leaf, np.sort(idx))
            local = max(FLOOR * max((abs(r.n) for r in found), default=0.0), np.finfo(np.float64).tiny)
            for r in found:
                _judge(r, local, leaf.threshold, ctx.kink_threshold)
            rows.extend(found)
            culprits.extend(r for r in found if not r.passed)
            return
        halves = (idx[: len(idx) // 2], idx[len(idx) // 2 :])
        checks = [project(h, "", floor) for h in halves]
        failing = [h for h, r in zip(halves, checks) if not r.passed]
        if not failing:  # inconclusive: follow the more suspicious half
            failing = [halves[int(np.argmax([r.rho if r.rho == r.rho else 0.0 for r in checks]))]]
        for h in failing:
            bisect(h, depth + 1)

    before = point.evaluations
    bisect(perm, 1)
    stats["evaluations"] += point.evaluations - before
    ctx.extra_evaluations += stats["evaluations"] - (point.evaluations - before)
    ctx.bisections[leaf.name] = (stats["levels"], stats["evaluations"], len(culprits))
    return rows


def _line_point(point: _num.Point, k: int, d: np.ndarray, v: np.ndarray | None) -> _num.Point:
    """f along the line x_k + t d (other parameters fixed) as a Point in the scalar t."""
    base = point.work[k]
    b64 = base.astype(np.float64).reshape(-1)
    shape, dt, is_float = base.shape, base.dtype, point.is_float[k]

    def call(values: list[Any]) -> Any:
        t = values[0]
        vals = point.values()
        moved = (b64 + t * d).astype(dt).reshape(shape)
        vals[k] = float(moved) if is_float else moved
        out = point.call(vals)
        if v is None:
            return out
        return np.vdot(v, np.asarray(out, dtype=np.float64).reshape(-1))

    return _num.Point(call, [0.0])


# --- diagnosis -------------------------------------------------------------------------------------------------


def _diagnose_all(
    leaves: list[_Leaf], rows: list[_Row], floor: float, out_shape: tuple[int, ...], ctx: _Context
) -> list[str]:
    msgs = []
    for k, leaf in enumerate(leaves):
        if leaf.transposed_shape:
            continue
        mine = [r for r in rows if r.k == k and not r.projection and r.verdict != "skipped"]
        proj = [r for r in rows if r.k == k and r.projection]
        fails = [r for r in mine if not r.passed and not r.kink]
        kink_fails = [r for r in mine if not r.passed and r.kink]
        prefix = ""
        if proj and not proj[0].passed:
            levels, evals, found = ctx.bisections.get(leaf.name, (0, 0, 0))
            if found:
                prefix = (
                    f"the projection fails; bisecting with projections on halves ({levels} levels, "
                    f"{evals} evaluations) names {found} wrong entr{'y' if found == 1 else 'ies'}: "
                )
            else:
                msgs.append(
                    f"{leaf.name}: the projection fails but no entry checked on the bisection path does: "
                    "many small errors adding up, or finite-difference trouble along the direction; "
                    "run mode='entries' on this parameter"
                )
                continue
        if fails:
            msgs.append(f"{leaf.name}: {prefix}{_diagnose_leaf(leaf, mine, fails, floor, out_shape)}")
        for r in kink_fails[:3]:
            label, _ = _label(leaf.name, leaf.shape, r.i)
            msgs.append(
                f"{label}: at a kink, analytic {r.a:.6g} lies outside the one-sided slopes "
                f"[{min(r.fw, r.bw):.6g}, {max(r.fw, r.bw):.6g}]: not a subgradient"
            )
    return msgs


def _factor_note(c: float) -> str:
    for target, note in (
        (2.0, " (a term counted twice, or a missing 1/2?)"),
        (0.5, " (a missing factor 2: d(x^2)/dx = 2x?)"),
    ):
        if abs(c - target) <= 1e-3 * target:
            return note
    if abs(c) > 2 and abs(c - round(c)) <= 1e-6 * abs(c):
        return f" (a sum where a mean was meant: a factor {round(c)} = a batch size?)"
    if 0 < abs(c) < 0.5 and abs(1 / c - round(1 / c)) <= 1e-6 / abs(c):
        return f" (a mean where a sum was meant: 1/{round(1 / c)}?)"
    return ""


def _diagnose_leaf(leaf: _Leaf, mine: list[_Row], fails: list[_Row], floor: float, out_shape: tuple[int, ...]) -> str:
    thr = leaf.threshold

    def close(p: float, q: float, e: float) -> bool:
        return abs(p - q) <= max(10 * thr * (abs(p) + abs(q)), FD_MULTIPLE * e, thr * floor)

    def name(r: _Row) -> str:
        label, _ = _label(leaf.name, leaf.shape, r.i)
        if out_shape:
            label += f" -> out[{', '.join(map(str, np.unravel_index(r.o, out_shape)))}]"
        return label

    def listing(rs: list[_Row], n: int = 3) -> str:
        text = ", ".join(f"{name(r)} (analytic {r.a:.6g}, numeric {r.n:.6g})" for r in rs[:n])
        return text + (f" and {len(rs) - n} more" if len(rs) > n else "")

    nf = len(fails)
    of = f"{nf} of {len(mine)} checked entries"
    # a missing term: analytic exactly zero where f moves
    if all(r.a == 0 and abs(r.n) > floor for r in fails):
        return (
            f"analytic is 0 where the finite differences are not, at {of}: {listing(fails)}: "
            "a missing term (a contribution never added, or an entry never written)"
        )
    # a sign flip
    if all(close(r.a, -r.n, r.e) for r in fails) and any(abs(r.n) > floor for r in fails):
        return f"analytic = -numeric at {of}: the sign is flipped (gradient of -f? ascent vs descent?)"
    # a constant factor
    valid = [r for r in fails if abs(r.n) > floor and r.a != 0]
    if len(valid) >= 2 or (len(valid) == 1 and len(mine) == 1):
        ratios = np.array([r.a / r.n for r in valid])
        c = float(np.median(ratios))
        if np.all(np.abs(ratios - c) <= 1e-3 * abs(c)) and abs(c - 1) > thr:
            return f"analytic = {c:.6g} x numeric at {of}: a constant factor{_factor_note(c)}"
    # a transposed square matrix
    if not out_shape and len(leaf.shape) == 2 and leaf.shape[0] == leaf.shape[1] and leaf.analytic is not None:
        at = leaf.analytic.reshape(leaf.shape).T.reshape(-1)
        if all(close(float(at[r.i]), r.n, r.e) for r in fails):
            return (
                f"the gradient is transposed: analytic[j, i] matches numeric[i, j] at all {nf} failing entries "
                "(x.T @ delta where delta.T @ x was meant, or the other way round?)"
            )
    # swapped entries (each holds the other's derivative)
    pairs: list[tuple[_Row, _Row]] = []
    used: set[int] = set()
    for r in fails:
        if id(r) in used:
            continue
        for s in fails:
            if s is r or id(s) in used:
                continue
            if close(r.a, s.n, s.e) and close(s.a, r.n, r.e):
                pairs.append((r, s))
                used.update((id(r), id(s)))
                break
    if pairs and len(used) == nf:
        text = "; ".join(f"{name(r)} and {name(s)}" for r, s in pairs[:3])
        return f"entries swapped: {text} hold each other's derivatives (an index mix-up)"
    # misplaced: a failing entry's analytic value is another checked entry's derivative
    numeric_of = {r.i: r for r in mine if abs(r.n) > floor}
    moved = []
    for r in fails:
        for s in numeric_of.values():
            if s is not r and close(r.a, s.n, s.e):
                moved.append((r, s))
                break
    if moved and len(moved) == nf:
        text = "; ".join(f"{name(r)} holds the derivative of {name(s)}" for r, s in moved[:3])
        return f"misplaced entries: {text} (an indexing bug)"
    if nf == 1:
        return f"one entry wrong (of {len(mine)} checked): {listing(fails)}"
    if nf <= 5:
        return f"{of} wrong, no common pattern (not a sign, a factor, a transpose or a swap): {listing(fails, 5)}"
    return (
        f"{of} wrong, no common pattern (not a sign, a constant factor, a transpose or a swap); "
        f"the worst: {listing(sorted(fails, key=lambda r: -r.rho if r.rho == r.rho else 0.0))}"
    )


# --- assert_grad, training-time checks ---------------------------------------------------------------------


def assert_grad(f: Callable[..., Any], params: Any, grad: Any = None, **kwargs: Any) -> GradCheckReport:
    """check_grad, raising AssertionError whose message is the report when it fails.

    Returns the report when the check passes. Its own frames are hidden from pytest's
    tracebacks, so a failing test shows the report, not adkit's internals.
    """
    __tracebackhide__ = True
    report = check_grad(f, params, grad, **kwargs)
    if not report.ok:
        raise AssertionError(str(report))
    return report


class PeriodicGradCheck:
    """Check a sample of gradient entries every `every` steps of a training loop.

    The lecture's advice: check the gradient "a few times during training" (a gradient
    can be right at initialisation and wrong once units saturate or cross kinks).

        check = adkit.check.check_every(100, sample=5)
        for step in range(steps):
            g = my_grad(params)
            check(step, loss, params, g)        # raises AssertionError on a wrong gradient
            params = update(params, g)

    Each check uses seed + step, so different entries are sampled each time. on_fail:
    "raise" (AssertionError with the report), "warn" (GradCheckWarning), or "record"
    (only kept in .history). .history holds (step, report) pairs.
    """

    def __init__(
        self, every: int = 100, *, sample: int | None = 5, seed: int = 0, on_fail: str = "raise", **check_kwargs: Any
    ) -> None:
        if not isinstance(every, int) or every < 1:
            raise ValueError(f"every must be a positive integer, got {every!r}")
        if on_fail not in ("raise", "warn", "record"):
            raise ValueError(f"on_fail must be 'raise', 'warn' or 'record', got {on_fail!r}")
        self.every, self.sample, self.seed, self.on_fail = every, sample, seed, on_fail
        self.kwargs = check_kwargs
        self.history: list[tuple[int, GradCheckReport]] = []

    def due(self, step: int) -> bool:
        return step % self.every == 0

    def __call__(
        self, step: int, f: Callable[..., Any], params: Any, grad: Any = None, **kwargs: Any
    ) -> GradCheckReport | None:
        __tracebackhide__ = True
        if not self.due(step):
            return None
        options = {**self.kwargs, **kwargs}
        options.setdefault("warn", False)
        report = check_grad(f, params, grad, sample=self.sample, seed=self.seed + step, **options)
        self.history.append((step, report))
        if not report.ok:
            message = f"gradient check at training step {step} failed:\n{report}"
            if self.on_fail == "raise":
                raise AssertionError(message)
            if self.on_fail == "warn":
                warnings.warn(message, GradCheckWarning, stacklevel=2)
        return report

    @property
    def ok(self) -> bool:
        return all(r.ok for _, r in self.history)


def check_every(every: int = 100, **kwargs: Any) -> PeriodicGradCheck:
    """A PeriodicGradCheck: call it with (step, f, params, grad) inside a training loop."""
    return PeriodicGradCheck(every, **kwargs)


# --- taylor_test ----------------------------------------------------------------------------------------------


@dataclass
class TaylorResult:
    """Residuals of the first-order Taylor model along a direction, and their rates.

    residual(h) = |f(x + h d) - f(x) - h <g, d>| for h = h0, h0/2, h0/4, ...; the rate
    between two steps is log2(residual(h) / residual(h/2)): about 2 when g is the gradient
    (the residual is the O(h^2) remainder), about 1 when it is not (an O(h) term is left).
    Points at the round-off floor are trimmed (kept[i] False): there the residual is noise.
    """

    ok: bool
    rate: float
    verdict: str
    steps: list[float]
    residuals: list[float]
    floors: list[float]
    kept: list[bool]
    rates: list[float]
    directional_derivative: float
    seed: int

    def __bool__(self) -> bool:
        return bool(self.ok)

    def __str__(self) -> str:
        lines = [f"Taylor test {'PASSED' if self.ok else 'FAILED'}: {self.verdict}"]
        lines.append(f"  <g, d> = {self.directional_derivative:.10g}   seed {self.seed}")
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
            "rate": _num_json(self.rate),
            "verdict": self.verdict,
            "steps": self.steps,
            "residuals": self.residuals,
            "floors": self.floors,
            "kept": self.kept,
            "rates": [_num_json(r) for r in self.rates],
            "directional_derivative": self.directional_derivative,
            "seed": self.seed,
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
    n_steps: int = 16,
) -> TaylorResult:
    """Step-free gradient check: convergence rate of the first-order Taylor remainder.

    f(x, *args) must return a scalar; x an array or a dict / list / tuple of arrays;
    grad the claimed gradient at x (callable grad(x, *args) or arrays; None: adkit's
    reverse engine); direction like x (default: seeded random, |d_i| ~ max(1, |x_i|)).
    Rates about 2 mean the gradient is right along d, about 1 that it is wrong (pyadjoint's
    taylor_test, with the round-off floor trimmed instead of polluting the rates).
    """
    args = tuple(args)
    leaves, treedef = tree_flatten(x)
    names = leaf_names(x)
    xs = [np.asarray(as_input(leaf, f"x {n}")) for n, leaf in zip(names, leaves)]
    is_float = [isinstance(as_input(leaf, "x"), float) for leaf in leaves]
    xs = [a if a.dtype.kind == "f" else a.astype(np.float64) for a in xs]

    def build(vals: list[np.ndarray]) -> Any:
        return tree_unflatten(treedef, [float(v) if fl else v for v, fl in zip(vals, is_float)])

    def fval(vals: list[np.ndarray]) -> float:
        out = np.asarray(f(build(vals), *args))
        if out.shape != ():
            raise TypeError(f"taylor_test needs f to return a scalar, got shape {out.shape}")
        return float(out)

    x_tree = build(xs)
    if grad is None:
        import adkit

        g = adkit.grad(lambda p: f(p, *args))(x_tree)
    elif callable(grad):
        g = grad(x_tree, *args)
    else:
        g = grad
    gs = _leaves_like(g, "grad", names, xs)
    if direction is None:
        rng = np.random.default_rng(seed)
        ds = [rng.standard_normal(xl.shape) * np.maximum(1.0, np.abs(xl.astype(np.float64))) for xl in xs]
    else:
        ds = _leaves_like(direction, "direction", names, xs)
    dg = float(sum(np.sum(gl * dl) for gl, dl in zip(gs, ds)))
    f0 = fval(xs)
    eps = max([_num.machine_eps(xl.dtype) for xl in xs] + [2.2e-16])
    input_rounding = sum(float(np.sum(np.abs(gl) * np.abs(xl.astype(np.float64)))) for gl, xl in zip(gs, xs))
    steps, residuals, floors = [], [], []
    for j in range(n_steps):
        h = h0 / 2**j
        moved = [(xl.astype(np.float64) + h * dl).astype(xl.dtype) for xl, dl in zip(xs, ds)]
        fh = fval(moved)
        steps.append(h)
        residuals.append(abs(fh - f0 - h * dg))
        floors.append(8 * eps * (abs(fh) + abs(f0) + abs(h * dg) + input_rounding))
    kept = [r > 10 * fl for r, fl in zip(residuals, floors)]
    rates = []
    for i in range(1, n_steps):
        if kept[i - 1] and kept[i] and residuals[i] > 0:
            rates.append(math.log2(residuals[i - 1] / residuals[i]))
        else:
            rates.append(math.nan)
    good = [r for r in rates if r == r]
    if not any(kept) or not good:
        reason = (
            "the residual is at the round-off floor at every step: the first-order model is exact "
            "to round-off (f linear along d?)"
            if not any(kept)
            else "inconclusive: fewer than two consecutive steps above the round-off floor; pass a larger h0"
        )
        return TaylorResult(True, math.nan, reason, steps, residuals, floors, kept, rates, dg, seed)
    tail = good[-3:]  # the smallest steps above the floor: the asymptotic regime
    rate = float(np.median(tail))
    if rate >= 1.8:
        verdict, ok = f"rate {rate:.2f} (about 2): the gradient is right along this direction", True
    elif rate <= 1.2:
        verdict, ok = (
            f"rate {rate:.2f} (about 1): the gradient is wrong along this direction (a term linear in h is left over)",
            False,
        )
    else:
        verdict, ok = (
            f"rate {rate:.2f}, between 1 and 2: inconclusive (a small gradient error, or a kink within h|d|?)",
            rate >= 1.5,
        )
    return TaylorResult(ok, rate, verdict, steps, residuals, floors, kept, rates, dg, seed)


__all__ = [
    "GradCheckReport",
    "GradCheckWarning",
    "EntryResult",
    "PeriodicGradCheck",
    "TaylorResult",
    "assert_grad",
    "check_every",
    "check_grad",
    "leaf_names",
    "taylor_test",
]
