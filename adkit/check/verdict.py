"""The verdict: each entry, then the whole check, is PASSED, FAILED or INCONCLUSIVE.

Per entry (rho = |Ge - Ga| / max(|Ge + Ga|, floor), the lecture's relative error; the floor
is 1e-3 x the largest |Ge| checked, so two tiny values are compared absolutely):

* pass   rho <= threshold (1e-6 for float64; per-dtype thresholds below); or |Ge - Ga|
         within 3x the finite-difference error estimate *and* that estimate small enough to
         decide (`resolution`: 10 x threshold x |Ge|, 1e-4 x |Ge| for one-sided
         differences, never above 1e-2 x |Ge|; |Ge| at least 1e-2 x the largest |Ge|
         checked): the evidence brackets Ga tightly;
* fail   Ga is not finite, or |Ge - Ga| exceeds both the threshold and 3x the FD error;
* inconclusive   the FD error is too large to decide (noise, a kink within one step), the
         one-sided differences are inconsistent (a kink near x), or f is not finite near x.

Kinks are detected, not guessed: the one-sided differences at h and h/2 disagree by a jump
that does not shrink with h (for a smooth f the gap halves with h). At a kink the analytic
value passes when it lies between the two one-sided slopes (a subgradient: relu'(0) = 0 is
the left slope) or within kink_threshold of one of them. A kink *near* x (within one step,
not at x) makes the differences straddle it: such an entry is inconclusive ("kink within
one step"), never failed; the sample point is not moved (check at another point to judge it).

The check PASSES only when every checked entry passes and nothing undermines the evidence;
it FAILS on any failed entry or a structural problem (wrong structure, wrong shape); else it
is INCONCLUSIVE with the reasons: f changes its argument in place, f is too noisy to resolve
the gradient, entries that cannot be decided, nothing checked.
"""

from __future__ import annotations

import math
from collections import Counter

import numpy as np

from adkit.check.evidence import _Row
from adkit.check.params import _label, _Leaf
from adkit.engines import numeric as _num

# thresholds on rho per dtype (of the parameters, i.e. of the analytic gradient), when the
# finite differences are evaluated in that dtype too; float32 central differences are good
# to about eps^(2/3) ~ 2e-5 relative, float16 ones to about 1e-2.
THRESHOLDS = {"float64": 1e-6, "float32": 1e-3, "float16": 5e-2}
# ... and when the finite differences are evaluated in float64 (fd_dtype="float64"): then
# only the analytic side's own rounding limits the agreement.
THRESHOLDS_FD64 = {"float64": 1e-6, "float32": 1e-4, "float16": 1e-2}
MAX_THRESHOLD = 5e-2  # a noisy f needing a looser threshold than this cannot be checked
KINK_THRESHOLD = 1e-3
FLOOR = 1e-3  # rho's denominator is at least FLOOR x the largest |numeric| entry checked
FD_MULTIPLE = 3.0  # |Ge - Ga| <= FD_MULTIPLE x (FD error estimate) passes ...
RESOLVE = 10.0  # ... when that estimate is at most RESOLVE x threshold x |Ge| (else: inconclusive),
# or, for one-sided differences (truncation error ~ sqrt(eps) h f''), at most 1e-4 x |Ge|;
# never more than 1e-2 x |Ge|: an FD error of 1% cannot vouch for anything sharper
METHOD_RESOLUTION = {"forward": 1e-4, "backward": 1e-4}
MAX_RESOLVE = 1e-2
KINK_NOISE_MULTIPLE = 100.0  # a kink's jump must exceed this many one-sided noise levels

PASSED, FAILED, INCONCLUSIVE = "PASSED", "FAILED", "INCONCLUSIVE"
INCONCLUSIVE_FD = "inconclusive (FD error too large)"
INCONCLUSIVE_KINK = "inconclusive (kink within one step)"
INCONCLUSIVE_NONFINITE = "inconclusive (f not finite near x)"


def _threshold_for(leaf_dtype: np.dtype, fd_eps: float) -> float:
    an = _num.machine_eps(leaf_dtype)
    worst = max(an, fd_eps)
    if worst <= 1e-15:
        return THRESHOLDS["float64"]
    table = THRESHOLDS_FD64 if fd_eps <= 1e-15 else THRESHOLDS
    return table["float32"] if worst <= 2e-7 else table["float16"]


def resolution(threshold: float, method: str) -> float:
    """The largest FD error (relative to |Ge|) under which "within the FD error" may pass."""
    return min(MAX_RESOLVE, max(RESOLVE * threshold, METHOD_RESOLUTION.get(method, 0.0)))


def _judge(r: _Row, floor: float, threshold: float, kink_threshold: float, resolve: float) -> None:
    """Set r.outcome, r.verdict (the status shown), r.rho and r.kink by the rules above."""
    a, n, e = r.a, r.n, r.e
    r.kink = False
    if not math.isfinite(a):
        r.rho = math.inf
        r.verdict, r.outcome = "FAIL (analytic not finite)", "fail"
        return
    if not math.isfinite(n):
        r.verdict, r.outcome, r.rho = INCONCLUSIVE_NONFINITE, "inconclusive", math.nan
        return
    diff = abs(a - n)
    r.rho = diff / max(abs(a + n), floor)
    within_fd = diff <= FD_MULTIPLE * e and e <= resolve * max(abs(n), 10 * floor)
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
                if r.rho <= threshold or within_fd:
                    r.verdict, r.outcome = "ok", "pass"
                else:
                    r.verdict, r.outcome = INCONCLUSIVE_KINK, "inconclusive"
                return
            r.kink = True
            lo, hi = min(r.fw, r.bw), max(r.fw, r.bw)
            tol = kink_threshold * max(abs(lo), abs(hi), floor) + FD_MULTIPLE * r.snoise
            inside = lo - tol <= a <= hi + tol
            rho_sides = min(abs(a - s) / max(abs(a + s), floor) for s in (lo, hi))
            r.rho = 0.0 if lo <= a <= hi else rho_sides
            if not (inside or rho_sides <= kink_threshold or r.rho <= threshold or within_fd):
                r.verdict, r.outcome = "kink FAIL", "fail"
            elif abs(a - r.bw) <= tol and abs(a - r.bw) <= abs(a - r.fw):
                r.verdict, r.outcome = "kink ok (left slope)", "pass"
            elif abs(a - r.fw) <= tol:
                r.verdict, r.outcome = "kink ok (right slope)", "pass"
            else:
                r.verdict, r.outcome = "kink ok (between the slopes)", "pass"
            return
    if r.rho <= threshold:
        r.verdict, r.outcome = "ok", "pass"
    elif within_fd:
        r.verdict, r.outcome = "ok (within FD error)", "pass"
    elif diff <= FD_MULTIPLE * e:
        r.verdict, r.outcome = INCONCLUSIVE_FD, "inconclusive"
    else:
        r.verdict, r.outcome = "FAIL", "fail"


def overall(
    rows: list[_Row],
    problems: list[str],
    mutation: str | None,
    limits: list[str],
    unit: str,
) -> tuple[str, list[str]]:
    """(PASSED / FAILED / INCONCLUSIVE, the reasons): see the module doc."""
    n_failed = sum(1 for r in rows if r.outcome == "fail")
    reasons: list[str] = []
    if n_failed:
        reasons.append(f"{n_failed} of {len(rows)} {unit} fail (see the diagnosis)")
    reasons.extend(problems)
    if mutation:
        reasons.append(
            f"{mutation}; check_grad evaluated f on copies, so its numbers are f's on an untouched point, "
            "but code that calls f twice sees two points (copy the argument inside f)"
        )
    reasons.extend(limits)
    by_status = Counter(r.verdict or "" for r in rows if r.outcome == "inconclusive")
    explain = {
        INCONCLUSIVE_FD: "the finite-difference error estimate is too large to tell right from wrong "
        "(noise, or f changing on a scale below the step); try method='richardson' or fd_dtype='float64'",
        INCONCLUSIVE_KINK: "a kink lies within one finite-difference step of the point (the differences straddle "
        "it); check at another point",
        INCONCLUSIVE_NONFINITE: "f is not finite on either side of the point (a domain edge)",
    }
    for status, count in by_status.items():
        reasons.append(f"{count} entr{'y' if count == 1 else 'ies'} {status}: {explain.get(status, '')}".rstrip(": "))
    if not rows and not problems:
        reasons.append("nothing was checked (params has no entries)")
    if n_failed or problems:
        return FAILED, reasons
    if reasons:
        return INCONCLUSIVE, reasons
    return PASSED, reasons


# --- diagnosis -------------------------------------------------------------------------------------------------


def _diagnose_all(
    leaves: list[_Leaf],
    rows: list[_Row],
    floor: float,
    out_shape: tuple[int, ...],
    bisections: dict[str, tuple[int, int, int, bool]],
) -> list[str]:
    msgs = []
    for k, leaf in enumerate(leaves):
        if leaf.transposed_shape:
            continue
        mine = [r for r in rows if r.k == k and not r.projection and r.verdict != INCONCLUSIVE_NONFINITE]
        proj = [r for r in rows if r.k == k and r.projection]
        fails = [r for r in mine if r.outcome == "fail" and not r.kink]
        kink_fails = [r for r in mine if r.outcome == "fail" and r.kink]
        prefix = ""
        if proj and proj[0].outcome == "fail":
            levels, evals, found, capped = bisections.get(leaf.name, (0, 0, 0, False))
            if found:
                prefix = (
                    f"the projection fails; bisecting with projections on halves ({levels} levels, "
                    f"{evals} evaluations) names {'at least ' if capped else ''}{found} wrong "
                    f"entr{'y' if found == 1 else 'ies'}{' (it stops at that many)' if capped else ''}: "
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
