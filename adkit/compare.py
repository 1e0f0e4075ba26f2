"""One function through every engine, side by side: gradient, error, seconds."""

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
from adkit.trees import tree_flatten


@dataclass
class EngineRow:
    engine: str
    gradient: list[float] | None
    abs_error: float | None
    rel_error: float | None
    seconds: float | None
    note: str = ""
    error: str | None = None


@dataclass
class CompareResult:
    """Rows of `compare`: one per engine. Prints as a table; HTML in Jupyter; to_dict()."""

    rows: list[EngineRow]
    reference: list[float] | None
    reference_kind: str
    value: float | None
    names: list[str] = field(default_factory=list)

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
            "engines": [
                {
                    "engine": r.engine,
                    "gradient": r.gradient,
                    "abs_error": r.abs_error,
                    "rel_error": r.rel_error,
                    "seconds": r.seconds,
                    "note": r.note,
                    "error": r.error,
                }
                for r in self.rows
            ],
        }

    def to_json(self, **kw: Any) -> str:
        return json.dumps(self.to_dict(), **kw)

    def _cells(self) -> tuple[list[str], list[list[str]]]:
        header = ["engine", "gradient", "abs error", "rel error", "time", "note"]
        body = []
        for r in self.rows:
            if r.error:
                body.append([r.engine, "—", "—", "—", "—", r.error])
                continue
            body.append(
                [
                    r.engine,
                    _fmt_vec(r.gradient),
                    _fmt_err(r.abs_error),
                    _fmt_err(r.rel_error),
                    format_seconds(r.seconds),
                    r.note,
                ]
            )
        return header, body

    def __str__(self) -> str:
        from adkit.display import text_table

        header, body = self._cells()
        title = f"f = {self.value:.10g}   reference: {self.reference_kind}" if self.value is not None else ""
        return title + "\n" + text_table(header, body)

    def _repr_html_(self) -> str | None:
        try:
            from adkit.display import html_table

            header, body = self._cells()
            return f"<p>reference: {self.reference_kind}</p>" + html_table(header, body)
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


def compare(
    f: Callable[..., Any],
    *args: Any,
    engines: Sequence[str] = ENGINES,
    argnums: int | Sequence[int] | None = None,
    min_seconds: float = 0.05,
) -> CompareResult:
    """Differentiate f at args with each engine; report gradient, error and seconds.

    The reference is the symbolic engine's derivative evaluated at 30 digits (exactly
    when the inputs are ints or fractions); where sympy cannot have it, the numeric
    engine's Richardson estimate, and the table says so.
    """
    nums = tuple(range(len(args))) if argnums is None else ((argnums,) if isinstance(argnums, int) else tuple(argnums))
    unknown = [e for e in engines if e not in ENGINES]
    if unknown:
        raise ValueError(f"unknown engine(s) {', '.join(unknown)}; choose from {', '.join(ENGINES)}")
    reference, kind = _reference(f, args, nums)
    rows = []
    value = None
    for engine in engines:
        try:
            g = grad(f, argnums=nums, engine=engine)
            result, seconds = _time(lambda g=g: g(*args), min_seconds=min_seconds)
        except Exception as exc:  # noqa: BLE001 (each engine's failure is a row, not a crash)
            rows.append(EngineRow(engine, None, None, None, None, error=f"{type(exc).__name__}: {exc}"))
            continue
        flat = _flat_grads(result)
        abs_err = rel_err = None
        if reference is not None and len(reference) == len(flat):
            diffs = [abs(a - b) for a, b in zip(flat, reference)]
            abs_err = max(diffs) if diffs else 0.0
            scale = max((abs(r) for r in reference), default=0.0)
            rel_err = abs_err / scale if scale > 0 else abs_err
        rows.append(EngineRow(engine, flat, abs_err, rel_err, seconds, note=_note(engine, f, args)))
    try:
        from adkit.graph import trace

        v = trace(f, *args).value
        value = float(v) if v is not None and np.ndim(v) == 0 else None
    except Exception:  # noqa: BLE001
        value = None
    names = _input_names(f, args, nums)
    return CompareResult(rows, reference, kind, value, names)


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


def _reference(f: Callable[..., Any], args: Sequence[Any], nums: tuple[int, ...]) -> tuple[list[float] | None, str]:
    try:
        from adkit.engines.symbolic import symbolic_derivative

        res = symbolic_derivative(f, *args)
        leaves_per_arg = [len(tree_flatten(a)[0]) for a in args]
        starts = np.cumsum([0] + leaves_per_arg).tolist()
        values: list[float] = []
        for n in nums:
            for v in res.values[starts[n] : starts[n + 1]]:
                arr = np.asarray(v, dtype=object).reshape(-1)
                values.extend(float(x) for x in arr)
        if all(math.isfinite(v) for v in values):
            return values, "symbolic, exact" if res.exact else "symbolic, 30 digits"
    except Exception:  # noqa: BLE001 (fall back to a numeric reference)
        pass
    try:
        g = grad(f, argnums=nums, engine="numeric")(*args)
        return _flat_grads(g), "numeric (finite differences): symbolic not available for this function"
    except Exception:  # noqa: BLE001
        return None, "none available"


def _note(engine: str, f: Callable[..., Any], args: Sequence[Any]) -> str:
    try:
        if engine == "paths":
            from adkit.graph import trace

            return f"{trace(f, *args).count_paths():,} paths"
        if engine == "symbolic":
            from adkit.engines.symbolic import symbolic_derivative

            res = symbolic_derivative(f, *args)
            return f"{res.count_ops} ops as a tree, {res.count_ops_cse} with CSE"
    except Exception:  # noqa: BLE001
        return ""
    return ""
