"""adkit.jit against the plain forward, measured in one run (ratios, never timed tests).

    python scripts/bench_jit.py [--quick]

1. Aggarwal's scalar product graph (adkit.families.product_graph), widths 2, 8, 32 and
   depths 4 to 256: jit(grad(f)) replay time / plain-Python f time, and the first call
   (record + emit + compile) against the target 10 us per edge + 50 ms.
2. A chain of 400 elementwise ops on 10-entry arrays: jit(grad) / numpy forward.
3. The numpy MLP of scripts/bench_core.py (4 tanh layers x 512, batch 256, softmax CE):
   jit(grad) / numpy forward (set OMP_NUM_THREADS=1 for one BLAS thread).
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from typing import Any

import numpy as np

import adkit as ad
from adkit.families import product_graph


def best(fn: Callable[[], Any], budget: float = 0.3) -> float:
    """Best of repeated timings (seconds per call) within about `budget` seconds."""
    fn()
    t0 = time.perf_counter()
    fn()
    once = max(time.perf_counter() - t0, 1e-7)
    reps = max(1, min(1000, int(0.05 / once)))
    times = []
    end = time.perf_counter() + budget
    while True:
        t0 = time.perf_counter()
        for _ in range(reps):
            fn()
        times.append((time.perf_counter() - t0) / reps)
        if time.perf_counter() > end or len(times) >= 7:
            return min(times)


def product_graphs(quick: bool) -> None:
    print("product graph: jit(grad(f)) / plain-Python f (target <= 4); first call vs 10 us/edge + 50 ms")
    print(f"{'width':>5} {'depth':>5} {'edges':>7} {'ratio':>7} {'first call':>11} {'target':>9}")
    for width in (2, 8) if quick else (2, 8, 32):
        for depth in (4, 16) if quick else (4, 16, 64, 256):
            if width * width * depth > 70000:
                continue  # width 32, depth 256: 262k edges, the first call alone takes ~15 s and GBs
            spec = product_graph(depth, width)
            t0 = time.perf_counter()
            jg = ad.jit(ad.grad(spec.f))
            jg(*spec.args)
            first = time.perf_counter() - t0
            ratio = best(lambda: jg(*spec.args)) / best(lambda: spec.f(*spec.args))
            target = 10e-6 * spec.n_edges + 0.05
            print(f"{width:>5} {depth:>5} {spec.n_edges:>7} {ratio:>7.2f} {first * 1e3:>9.1f}ms {target * 1e3:>7.1f}ms")


def chain() -> None:
    rng = np.random.default_rng(0)
    x = rng.uniform(0.5, 1.5, 10)

    def f(x: Any) -> Any:
        for _ in range(100):
            x = np.tanh(x) * 0.9 + np.sin(x) * 0.1  # 4 elementwise ops per step: 400 ops
        return np.sum(x)

    jg = ad.jit(ad.grad(f))
    ratio = best(lambda: jg(x)) / best(lambda: f(x))
    eager = best(lambda: ad.grad(f)(x)) / best(lambda: f(x))
    print(
        f"chain of 400 elementwise ops on 10 entries: jit(grad) / numpy forward = {ratio:.2f} (target <= 3; eager {eager:.1f})"
    )


def mlp() -> None:
    rng = np.random.default_rng(0)
    sizes = [512] * 5
    params = [(rng.normal(0, 1 / np.sqrt(a), (a, b)), np.zeros(b)) for a, b in zip(sizes[:-1], sizes[1:])]
    x = rng.normal(size=(256, 512))
    labels = rng.integers(0, 512, 256)
    onehot = np.eye(512)[labels]

    def loss(params: Any, x: Any) -> Any:
        h = x
        for w, b in params:
            h = np.tanh(h @ w + b)
        return -np.sum(onehot * (h - ad.logsumexp(h, axis=1, keepdims=True))) / 256

    jg = ad.jit(ad.grad(loss))
    ratio = best(lambda: jg(params, x), 1.0) / best(lambda: loss(params, x), 1.0)
    eager = best(lambda: ad.grad(loss)(params, x), 1.0) / best(lambda: loss(params, x), 1.0)
    print(f"numpy MLP 4 x 512, batch 256: jit(grad) / numpy forward = {ratio:.2f} (target <= 2.5; eager {eager:.2f})")


if __name__ == "__main__":
    quick = "--quick" in sys.argv
    product_graphs(quick)
    chain()
    if not quick:
        mlp()
