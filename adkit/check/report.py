"""The report of a gradient check: its verdict, the reasons, and the rows to act on.

str(report) is a table (headline with the verdict, how the two sides were computed, the
rule, the worst entries, kinks, per-parameter summary, hints); _repr_html_ renders it in
Jupyter; to_dict() is JSON-ready. Warnings point at the user's line: `warn_user` skips
adkit's own frames (check_grad, assert_grad, the pytest fixture) when choosing stacklevel.
"""

from __future__ import annotations

import html
import math
import os
import sys
import warnings
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from adkit.check.evidence import _Row
from adkit.check.params import _label, _Leaf
from adkit.check.verdict import FAILED, FD_MULTIPLE, PASSED

_ADKIT_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
_PLUGIN_FILE = "adkit_pytest.py"


class GradCheckWarning(UserWarning):
    """A check whose verdict is weaker than it looks (low precision, huge FD errors)."""


def warn_user(message: str) -> None:
    """warnings.warn(GradCheckWarning) attributed to the first frame outside adkit (the user's line)."""
    frame = sys._getframe(1)
    level = 2  # 1 would be this function's own line
    while frame is not None:
        path = os.path.abspath(frame.f_code.co_filename)
        if not (path.startswith(_ADKIT_DIR + os.sep) or os.path.basename(path) == _PLUGIN_FILE):
            break
        frame = frame.f_back
        level += 1
    warnings.warn(message, GradCheckWarning, stacklevel=level)


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
    status: str  # "ok", "ok (within FD error)", "FAIL", "kink ok ...", "kink FAIL", "inconclusive (...)"
    kink: bool = False
    one_sided: tuple[float, float] | None = None  # (left slope, right slope) at a kink
    out_index: tuple[int, ...] = ()
    projection: bool = False
    outcome: str = "pass"  # "pass", "fail" or "inconclusive"

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
            "outcome": self.outcome,
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

    verdict: "PASSED", "FAILED" or "INCONCLUSIVE"; ok is True only for PASSED; reasons says
    why a check did not pass (failed entries, structural problems, f mutating its argument,
    noise, entries the finite differences cannot decide). max_rel_error, threshold; entries (every checked row), worst (the rows to look at
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
    verdict: str = ""
    reasons: list[str] = field(default_factory=list)
    n_inconclusive: int = 0
    precision: str = ""  # what f computes in, when that is not what the parameters suggest
    resolution: float = 1e-5  # the largest FD error, relative to |Ge|, that may vouch for an entry

    def __post_init__(self) -> None:
        if not self.verdict:
            self.verdict = PASSED if self.ok else FAILED
        self.ok = self.verdict == PASSED

    def __bool__(self) -> bool:
        return bool(self.ok)

    @property
    def failures(self) -> list[EntryResult]:
        return [e for e in self.entries if e.outcome == "fail"]

    @property
    def inconclusive(self) -> list[EntryResult]:
        return [e for e in self.entries if e.outcome == "inconclusive"]

    @property
    def kinks(self) -> list[EntryResult]:
        return [e for e in self.entries if e.kink]

    @property
    def worst(self) -> list[EntryResult]:
        def key(e: EntryResult) -> tuple[int, float]:
            r = e.rho if math.isfinite(e.rho) else math.inf
            return ({"fail": 0, "inconclusive": 1}.get(e.outcome, 2), -r)

        rows = [e for e in self.entries if not (e.kink and e.passed)]
        return sorted(rows, key=key)[: self.max_rows]

    # --- text ---
    def headline(self) -> str:
        unit = "checks (projections and entries)" if self.mode == "projection" else "checked entries"
        if self.n_failed:
            what = f"{self.n_failed} of {self.n_checked} {unit} fail"
            if self.mode == "entries" and self.n_checked < self.n_total:
                what += f" (a sample of {self.n_total}: at least {self.n_failed} wrong)"
            if self.problems:
                what += f"; {len(self.problems)} structural problem(s)"
        elif self.problems:
            what = f"{len(self.problems)} structural problem(s)"
        elif self.verdict == PASSED:
            what = "every check agrees"
        else:
            what = self.reasons[0].split("; ")[0] if self.reasons else "the evidence does not decide"
            if len(self.reasons) > 1:
                what += f" (and {len(self.reasons) - 1} more reason{'s' if len(self.reasons) > 2 else ''} below)"
        return (
            f"gradient check {self.verdict}: {what} "
            f"(max rho {_fmt(self.max_rel_error)}, threshold {_fmt(self.threshold)})"
        )

    def __str__(self) -> str:
        try:
            return self._text()
        except Exception as exc:  # noqa: BLE001 (a report must always print)
            return f"gradient check {self.verdict} (report could not be formatted: {exc!r})"

    def __repr__(self) -> str:
        return f"<GradCheckReport {self.verdict} max_rel_error={_fmt(self.max_rel_error)} checked={self.n_checked} failed={self.n_failed}>"

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
        if self.precision:
            lines.append(f"  precision: {self.precision}")
        lines.append(
            f"  rule: rho = |Ge - Ga| / max(|Ge + Ga|, floor) <= {_fmt(self.threshold)}"
            f" (kinks: {_fmt(self.kink_threshold)}), or |Ge - Ga| <= {FD_MULTIPLE:g} x FD error"
            f" <= {FD_MULTIPLE:g} x {_fmt(self.resolution)} x |Ge|;"
            f" {self.n_evaluations} evaluations of f, {self.seconds:.2f} s"
        )
        if self.problems:
            lines.append("problems:")
            lines.extend(f"  - {p}" for p in self.problems)
        other = [r for r in self.reasons if r not in self.problems and not r.endswith("(see the diagnosis)")]
        if other:
            lines.append(f"why {self.verdict}:" if self.verdict != PASSED else "notes:")
            lines.extend(f"  - {r}" for r in other)
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
        color = {"PASSED": "#1a7f37", "FAILED": "#cf222e"}.get(self.verdict, "#9a6700")
        parts = [f'<div class="adkit-gradcheck"><p><b style="color:{color}">{e(self.headline())}</b></p>']
        parts.append(
            "<ul>"
            f"<li>analytic (Ga): {e(self.analytic_side)}</li>"
            f"<li>numeric (Ge): {e(self.numeric_side)}</li>"
            f"<li>mode {e(self.mode)}, seed {self.seed}, {self.n_checked} of {self.n_total} entries checked, "
            f"{self.n_evaluations} evaluations, {self.seconds:.2f} s</li></ul>"
        )
        for title, items in (
            ("reasons", self.reasons),
            ("diagnosis", self.diagnosis),
            ("hints", self.hints),
        ):
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
            "verdict": self.verdict,
            "reasons": list(self.reasons),
            "precision": self.precision,
            "max_rel_error": _num_json(self.max_rel_error),
            "threshold": self.threshold,
            "kink_threshold": self.kink_threshold,
            "resolution": self.resolution,
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
            "n_inconclusive": self.n_inconclusive,
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


def to_entry(r: _Row, leaves: list[_Leaf], out_shape: tuple[int, ...]) -> EntryResult:
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
        outcome=r.outcome,
        status=r.verdict or "",
        kink=r.kink,
        one_sided=(r.bw, r.fw) if r.kink else None,
        out_index=out_idx,
        projection=r.projection,
    )
