"""check_grad and assert_grad: the checker's parts put together.

params -> names and leaves (params.py) -> f probed: copies, determinism, noise, precision
(evidence.py) -> thresholds -> the analytic side matched to params (params.py) -> the
entries or projections to check (sampling.py) -> finite differences per entry
(evidence.py) -> each entry judged, then the whole check (verdict.py) -> the report
(report.py).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from adkit.check import evidence
from adkit.check.evidence import GuardedCall, _check_entries, _Context, _first_change, _Row
from adkit.check.params import _analytic_side, _describe, _label, _Leaf, _match_analytic, leaf_names
from adkit.check.report import GradCheckReport, ParamSummary, to_entry, warn_user
from adkit.check.sampling import check_projection, sample_entries
from adkit.check.verdict import (
    FLOOR,
    INCONCLUSIVE_FD,
    KINK_THRESHOLD,
    MAX_THRESHOLD,
    THRESHOLDS,
    _diagnose_all,
    _judge,
    _threshold_for,
    overall,
    resolution,
)
from adkit.engines import numeric as _num
from adkit.trees import as_input, tree_flatten, tree_unflatten

MODES = ("entries", "projection")


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

    f       any Python callable, called as f(params, *args) on copies of params; returns a
            scalar (its gradient is checked) or an array (its Jacobian, shape
            out.shape + param.shape, is checked)
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
                     (1e-4 / 1e-2 when fd_dtype="float64"), and the precision f really
                     computes in (a float32 cast inside f gives float32's threshold)
    kink_threshold   tolerance at detected kinks (1e-3)
    fd_dtype         evaluate the finite differences with the parameters cast to this
                     dtype (e.g. "float64" for float32 parameters, when f accepts it)

    Returns a GradCheckReport: report.verdict is "PASSED", "FAILED" or "INCONCLUSIVE"
    (report.reasons says why), report.ok is True only for PASSED; str(report) is the table.
    """
    start = time.perf_counter()
    if mode not in MODES:
        raise ValueError(f"mode must be one of {', '.join(map(repr, MODES))}, got {mode!r}")
    if method not in _num.METHODS:
        raise ValueError(f"unknown method {method!r}; choose one of {', '.join(_num.METHODS)}")
    if sample is not None and (isinstance(sample, bool) or not isinstance(sample, (int, np.integer)) or sample < 1):
        raise ValueError(f"sample must be a positive integer (entries per parameter), got {sample!r}")
    args = tuple(args)
    p_leaves, p_def = tree_flatten(params)
    leaves: list[_Leaf] = []
    for name, raw in zip(leaf_names(params), p_leaves):
        v = as_input(raw, f"parameter {name}")
        a = np.asarray(v)
        v = np.array(v, copy=True) if isinstance(v, np.ndarray) else v  # never the caller's arrays
        leaves.append(_Leaf(name, v, a.shape, a.dtype if a.dtype.kind == "f" else np.dtype(np.float64)))
    hints: list[str] = []
    problems: list[str] = []
    limits: list[str] = []  # what keeps the evidence from supporting a PASS
    data_before = evidence.array_args(args)

    # --- the numeric side's point (optionally in another dtype), f always on copies ---
    call = GuardedCall(f, p_def, args, leaves)
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

    # --- what f reveals: determinism, noise, working precision ---
    seen = evidence.probe(point, call, f0, seed, noise_probe=method != "complex")
    eps_eff, precision = _precision_and_thresholds(leaves, point, seen, f0, fd_dt, threshold, warn, hints, limits)

    # --- the analytic side, on a copy of params ---
    clean = tree_unflatten(p_def, [leaf.value for leaf in leaves])
    given = tree_unflatten(
        p_def, [np.array(v, copy=True) if isinstance(v, np.ndarray) else v for v in tree_flatten(clean)[0]]
    )
    g, analytic_side = _analytic_side(f, given, grad, args, out_shape)
    grad_mutation = _first_change(leaves, tree_flatten(clean)[0], tree_flatten(given)[0], "grad")
    if grad_mutation and callable(grad):
        hints.append(f"{grad_mutation} (the check gave it a copy)")
    _match_analytic(leaves, clean, g, out_shape, problems)

    rng = np.random.default_rng(seed)
    for leaf in leaves:
        leaf.resolve = resolution(leaf.threshold, method)
    overall_threshold = max(leaf.threshold for leaf in leaves) if leaves else THRESHOLDS["float64"]
    ctx = _Context(
        f0=f0, noise=seen.noise, eps=eps_eff, method=method, out_shape=out_shape, kink_threshold=kink_threshold
    )
    if method == "complex":
        _num.check_complex_step(lambda p: f(p, *args), (clean,), (0,))
        ctx.cpoint = _num.Point(call, [leaf.value for leaf in leaves], complex_values=True)

    if mode == "entries" and sample is None and warn:
        n_all = sum(int(np.prod(leaf.shape, dtype=np.int64)) for leaf in leaves)
        if n_all >= 20_000:
            warn_user(
                f"checking every one of {n_all} entries costs about {4 * n_all} evaluations of f; "
                "pass sample=N (N random entries per parameter) or mode='projection'"
            )
    rows: list[_Row] = []
    n_total = 0
    for k, leaf in enumerate(leaves):
        size = int(np.prod(leaf.shape, dtype=np.int64))
        n_total += size * out_size
        if leaf.analytic is None:
            continue
        if mode == "entries":
            rows.extend(_check_entries(point, ctx, k, leaf, sample_entries(size, sample, rng)))
        else:
            rows.extend(check_projection(point, ctx, k, leaf, rng))

    # --- verdicts ---
    scale = max((abs(r.n) for r in rows if r.n == r.n and not r.projection), default=0.0)
    floor_entries = max(FLOOR * scale, np.finfo(np.float64).tiny)
    for r in rows:
        if not r.projection:  # projections were judged as they were taken (bisection needs it)
            _judge(r, floor_entries, leaves[r.k].threshold, kink_threshold, leaves[r.k].resolve)
    entries = [to_entry(r, leaves, out_shape) for r in rows]
    diagnosis = _diagnose_all(leaves, rows, floor_entries, out_shape, ctx.bisections)
    for k, leaf in enumerate(leaves):  # transposed-shape leaves: their rows compared the transpose
        if leaf.transposed_shape:
            mine = [r for r in rows if r.k == k and not r.projection and r.outcome != "inconclusive"]
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

    mutation = call.mutation
    changed_args = evidence.args_changed(data_before, args)
    if changed_args:
        limits.append(changed_args)
    unit = "checks (projections and entries)" if mode == "projection" else "checked entries"
    verdict, reasons = overall(rows, problems, mutation, limits, unit)
    n_checked = len(rows)
    n_failed = sum(1 for r in rows if r.outcome == "fail")
    n_inconclusive = sum(1 for r in rows if r.outcome == "inconclusive")
    n_kinks = sum(1 for r in rows if r.kink)
    max_rho = max((r.rho for r in rows if r.rho == r.rho), default=0.0)

    # --- hints ---
    if n_kinks:
        names_k = sorted({leaves[r.k].name for r in rows if r.kink})
        hints.append(
            f"kink suspected: {n_kinks} entries sit at (or within one step of) a point where f is not "
            f"differentiable (in {', '.join(names_k)}); relu/abs/max at 0 or at a tie. They are judged by the "
            "kink rule; move the point slightly to check them as smooth entries"
        )
    unresolved = [r for r in rows if r.verdict == INCONCLUSIVE_FD and not r.projection]
    if unresolved:
        first = unresolved[0]
        hints.append(
            f"the first undecided entry: {_label(leaves[first.k].name, leaves[first.k].shape, first.i)[0]} "
            f"(analytic {first.a:.6g}, numeric {first.n:.6g}, FD error {first.e:.2g}, step {first.h:.2g}); "
            f"an entry passes within the FD error only when that error is at most {leaves[first.k].resolve:.0e} x |Ge|"
        )
    if mode == "entries" and sample is not None and n_checked < n_total:
        hints.append(
            f"sampled {sample} entries per parameter ({n_checked} of {n_total}): errors in other entries can "
            "go unseen; a larger sample, or mode='projection' (which sees every entry at once), covers more"
        )
    if leaves and all(leaf.analytic is not None and not np.any(leaf.analytic) for leaf in leaves) and scale > 0:
        hints.append("the analytic gradient is zero everywhere but f is not flat: is the gradient ever written?")

    numeric_side = evidence.numeric_description(method, point, eps_eff, fd_dt, seen)
    per_param = []
    for k, leaf in enumerate(leaves):
        mine = [r for r in rows if r.k == k]
        per_param.append(
            ParamSummary(
                leaf.name,
                leaf.shape,
                str(leaf.dtype),
                int(np.prod(leaf.shape, dtype=np.int64)),
                len(mine),
                sum(1 for r in mine if r.outcome == "fail"),
                sum(1 for r in mine if r.kink),
                max((r.rho for r in mine if r.rho == r.rho), default=0.0),
                leaf.threshold,
            )
        )
    return GradCheckReport(
        ok=verdict == "PASSED",
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
        verdict=verdict,
        reasons=reasons,
        n_inconclusive=n_inconclusive,
        precision=precision,
        resolution=max((leaf.resolve for leaf in leaves), default=0.0),
    )


def assert_grad(f: Callable[..., Any], params: Any, grad: Any = None, **kwargs: Any) -> GradCheckReport:
    """check_grad, raising AssertionError whose message is the report unless it PASSED.

    An INCONCLUSIVE check raises too (its message starts with the reasons): a test must not
    pass on evidence that does not support the gradient. Returns the report when the check
    passes. Its own frames are hidden from pytest's tracebacks, so a failing test shows the
    report, not adkit's internals.
    """
    __tracebackhide__ = True
    report = check_grad(f, params, grad, **kwargs)
    if not report.ok:
        raise AssertionError(str(report))
    return report


def _precision_and_thresholds(
    leaves: list[_Leaf],
    point: _num.Point,
    seen: evidence.Probe,
    f0: np.ndarray,
    fd_dt: np.dtype | None,
    threshold: float | None,
    warn: bool,
    hints: list[str],
    limits: list[str],
) -> tuple[float | None, str]:
    """Each leaf's threshold, from its dtype and what the probe saw of f; (eps for the steps, precision note).

    The eps for the steps is None (each leaf's own dtype), f's working precision when it
    is coarser than its inputs, or the measured noise when that is larger still.
    """
    fd_eps = max((_num.machine_eps(w.dtype) for w in point.work), default=2.2e-16)
    if point.out_dtype is not None and point.out_dtype.kind == "f":
        fd_eps = max(fd_eps, _num.machine_eps(point.out_dtype))
    eps_eff: float | None = None
    precision = ""
    if seen.computes_in is not None:
        fd_eps = max(fd_eps, _num.machine_eps(seen.computes_in))
        eps_eff = fd_eps
        inputs = str(fd_dt) if fd_dt is not None else "/".join(sorted({str(w.dtype) for w in point.work}))
        precision = (
            f"f computes in {seen.computes_in} ({seen.precision_seen}) although its inputs are {inputs}: "
            f"steps and threshold are {seen.computes_in}'s (eps {fd_eps:.1e})"
        )
        if fd_dt is not None:
            precision += f"; fd_dtype='{fd_dt}' cannot add precision f discards"
    if seen.spread > 0:
        values = ", ".join(f"{v:.10g}" for v in seen.repeated)
        hints.append(
            f"f is not deterministic: {len(seen.repeated)} calls at the same point returned {values} "
            f"(spread {seen.spread:.2g}, {seen.spread / max(float(np.max(np.abs(f0))), 1e-300):.1e} relative); "
            "random noise in f (a fresh random draw, dropout, sampling?) limits what finite differences can show"
        )

    # --- thresholds ---
    for leaf in leaves:
        leaf.threshold = threshold if threshold is not None else _threshold_for(leaf.dtype, fd_eps)
    if seen.noise_rel > 100 * fd_eps:
        eps_eff = seen.noise_rel
        needed = 100 * seen.noise_rel ** (2 / 3)  # FD error ~ noise^(2/3); 100x that, as 1e-6 is for float64
        for leaf in leaves:
            if threshold is None:
                leaf.threshold = min(MAX_THRESHOLD, max(leaf.threshold, needed))
        hints.append(
            f"step below noise: f's values are noisy at ~{seen.noise_rel:.1e} relative (measured), far above "
            f"the round-off of its float type ({fd_eps:.1e}); the steps were enlarged (the rule with "
            f"eps = {seen.noise_rel:.1e}) and the check is only as sharp as that noise allows"
        )
        if needed > MAX_THRESHOLD and threshold is None:
            limits.append(
                f"f is too noisy to check: its values vary by ~{seen.noise_rel:.1e} relative "
                f"({'between calls at the same point' if seen.spread > 0 else 'near the point'}), so finite "
                f"differences resolve the gradient only to ~{needed:.0e} relative, looser than any useful threshold"
            )
    low = sorted({str(leaf.dtype) for leaf in leaves if _num.machine_eps(leaf.dtype) > 1e-15})
    if low:
        default = max(_threshold_for(leaf.dtype, fd_eps) for leaf in leaves)
        offer = ""
        if fd_eps > 1e-15 and seen.computes_in is None:
            offer = (
                " If f accepts float64 input, pass fd_dtype='float64' to evaluate the finite differences "
                f"in float64 (threshold {_threshold_for(np.dtype(low[-1]), 2.2e-16):.0e})."
            )
        elif fd_eps > 1e-15:
            offer = f" {precision}."
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
            warn_user(msg)
    elif precision and warn:
        warn_user(f"{precision}; the threshold is {max(leaf.threshold for leaf in leaves):.0e}, not 1e-6")
    return eps_eff, precision
