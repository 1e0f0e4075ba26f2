"""Which entries a check looks at: all of them, a seeded sample, or random projections.

Large models: `sample=N` checks N seeded random entries per parameter (an error in an
entry outside the sample goes unseen: the report says how many were checked of how many).
mode="projection" checks v^T J u for a random direction u per parameter (and a random v
over f's outputs) in O(1) evaluations; when it fails, the parameter is bisected with
projections on halves (O(log n) evaluations) down to small blocks checked entry by entry,
which names the culprit entries (a projection alone hides which entry is wrong). The
bisection stops after MAX_CULPRITS wrong entries: the report then says "at least".
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from adkit.check.evidence import _check_entries, _Context, _Row
from adkit.check.params import _Leaf
from adkit.check.verdict import FLOOR, _judge
from adkit.engines import numeric as _num

BLOCK = 16  # projection re-checks stop bisecting at blocks this small
MAX_CULPRITS = 10  # ... and stop once this many failing entries are named


def sample_entries(size: int, sample: int | None, rng: np.random.Generator) -> np.ndarray:
    """Every flat index of a parameter of `size` entries, or `sample` of them (sorted, seeded)."""
    if sample is None or sample >= size:
        return np.arange(size)
    return np.sort(rng.choice(size, size=int(sample), replace=False))


def check_projection(point: _num.Point, ctx: _Context, k: int, leaf: _Leaf, rng: np.random.Generator) -> list[_Row]:
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
            leaf.resolve,
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
                _judge(r, local, leaf.threshold, ctx.kink_threshold, leaf.resolve)
            rows.extend(found)
            culprits.extend(r for r in found if r.outcome == "fail")
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
    ctx.bisections[leaf.name] = (stats["levels"], stats["evaluations"], len(culprits), len(culprits) >= MAX_CULPRITS)
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
