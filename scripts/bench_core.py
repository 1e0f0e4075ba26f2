#!/usr/bin/env python3
"""Speed of adkit's gradients relative to plain evaluation of the same program.

    .venv/bin/python scripts/bench_core.py           # full run (~1-3 minutes)
    .venv/bin/python scripts/bench_core.py --quick   # fewer cells, shorter timings (< 30 s)

Every number printed is a ratio measured in this run: gradient time / time of the plain
evaluation of the *same* Python function (no absolute-time targets: the machines this
runs on are shared and noisy). Each measurement is a batch of calls lasting at least
`min_time` seconds; the batches of the baseline and of the gradients are interleaved,
`repeats` times per cell, and the best (minimum) per-call time of each is kept.

1. Aggarwal's deep product-node graph as a scalar Python program (one binary multiply
   per edge), reverse and forward mode, against the issue's targets (reverse <= 30x,
   forward <= 20x per cell).
2. A numpy MLP (4 tanh layers of 512, batch 256, softmax cross-entropy), reverse mode,
   against the target <= 3x (and, for reference, the same gradient written by hand in numpy).
3. The product-node graph vectorised (one numpy op per layer), reverse mode: no target.
4. With --others: the same scalar graph and MLP differentiated by other AD libraries that
   are importable here (micrograd, HIPS autograd, PyTorch, JAX's jit on graphs up to 4,500
   edges, whose first call, the compile, is excluded; the MLP by autograd only: see
   scripts/bench_jit.py --others for torch and jax on it; none is a dependency of adkit:
   install them yourself), as ratios to the same plain programs, beside adkit's.

The exit code is 0 whatever the outcome: this is a report, not a test.
"""

from __future__ import annotations

import argparse
import datetime
import math
import os
import platform
import sys
import time
from collections.abc import Callable
from typing import Any

import numpy as np

import adkit as ad
from adkit.families import product_graph

REVERSE_TARGET = 30.0  # scalar graph: reverse gradient / plain, per cell (from the issue)
FORWARD_TARGET = 20.0  # scalar graph: forward gradient / plain, per cell
MLP_TARGET = 3.0  # MLP: reverse gradient / numpy forward
CHECK_RTOL = 1e-9  # gradients vs the closed form, relative
FLOAT_MAX = sys.float_info.max

FOR_SCALE = """\
For scale (quoted from the issue, not measured here): for the same scalar program on this
kind of machine, a hand-written reverse sweep in plain floats costs 4-9x the forward;
micrograd 36-790x, PyTorch (0-d tensors) 116-615x, HIPS autograd 234-2978x,
JAX eager 4500-25000x."""


# --- timing ---------------------------------------------------------------------------------


def _batch(fn: Callable[..., Any], args: tuple[Any, ...], n: int) -> float:
    """Seconds for n calls of fn(*args)."""
    t0 = time.perf_counter()
    for _ in range(n):
        fn(*args)
    return time.perf_counter() - t0


def _calibrate(fn: Callable[..., Any], args: tuple[Any, ...], min_time: float) -> int:
    """The number of calls whose batch lasts at least min_time seconds."""
    n = 1
    while True:
        t = _batch(fn, args, n)
        if t >= min_time:
            return n
        # aim a little past min_time, at most 10x more calls per step
        n = max(n + 1, min(10 * n, math.ceil(n * 1.2 * min_time / max(t, 1e-9))))


def faults_per_call(fn: Callable[..., Any], args: tuple[Any, ...], n: int = 5) -> float | None:
    """Minor page faults per call over n calls in a row (None where `resource` is missing).

    Each fault is a page the allocator had returned to the OS and the call touches again
    (~1 us each with zeroing); glibc does that when more than its trim threshold is free
    at the top of the heap, which depends on what ran before in the process."""
    try:
        import resource
    except ImportError:
        return None
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    for _ in range(n):
        fn(*args)
    return (resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before) / n


def measure(
    fns: dict[str, Callable[..., Any]], args: tuple[Any, ...], min_time: float, repeats: int
) -> dict[str, float]:
    """Best per-call seconds of each fn(*args); batches of the fns interleaved per repeat."""
    counts = {name: _calibrate(fn, args, min_time) for name, fn in fns.items()}
    best = dict.fromkeys(fns, math.inf)
    names = list(fns)
    for r in range(repeats):
        k = r % len(names)  # rotate the order so no fn always runs first
        for name in names[k:] + names[:k]:
            n = counts[name]
            best[name] = min(best[name], _batch(fns[name], args, n) / n)
    return best


# --- 1. the product-node graph as a scalar program ----------------------------------------------


def scalar_graph(width: int, depth: int) -> tuple[Callable[[Any], Any], int, int]:
    """(f, edges, N): Aggarwal's product-node graph as the scalar program of
    `adkit.families.product_graph` (one binary multiply per edge; constants powers of two
    whose product is 1, so out = w**N with N = width**depth paths), its edge count, and N."""
    spec = product_graph(depth=depth, width=width)
    return spec.f, spec.n_edges, spec.n_paths


def _fmt_big(n: int) -> str:
    if n < 10**6:
        return str(n)
    e = math.log2(n)
    return f"2^{e:.0f}" if e == int(e) else f"{n:.2e}"


def _rel(a: float, b: float) -> float:
    return abs(a - b) / max(abs(b), 1e-300)


def bench_scalar_graph(widths, depths, min_time, repeats) -> list[dict[str, Any]]:
    print("== 1. Product-node graph, scalar Python program (one binary multiply per edge) ==")
    print(
        f"   adkit.families.product_graph at w = exp(-600/N): out = w**N, d out/dw = N*out/w; targets: "
        f"reverse <= {REVERSE_TARGET:g}x, forward <= {FORWARD_TARGET:g}x"
    )
    head = (
        f"{'width':>5} {'depth':>5} {'edges':>7} {'paths N':>9} {'plain ns/edge':>13} "
        f"{'reverse/plain':>13} {'forward/plain':>13} {'rev ns/edge':>11}  verdict"
    )
    print(head)
    print("-" * len(head))
    rows = []
    for width in widths:
        for depth in depths:
            f, edges, n = scalar_graph(width, depth)
            row: dict[str, Any] = {"width": width, "depth": depth, "edges": edges, "N": n}
            lead = f"{width:>5} {depth:>5} {edges:>7} {_fmt_big(n):>9} "
            if n > FLOAT_MAX:
                row["verdict"] = "overflow"
                row["reason"] = (
                    f"N = {width}^{depth} ~ 10^{math.log10(n):.0f} paths: w = exp(-600/N) rounds to 1.0, "
                    f"so d out/dw = N exceeds float64's max ~1.8e308 (adkit raises NonFiniteDerivativeError)"
                )
                print(lead + f"{'-':>13} {'overflow':>13} {'overflow':>13} {'-':>11}  beyond float64 range")
                rows.append(row)
                continue
            w = math.exp(-600 / n)
            rev = ad.grad(f)
            fwd = ad.grad(f, engine="forward")
            out = f(w)
            exact = n * out / w
            g_rev, g_fwd = rev(w), fwd(w)
            err = max(_rel(g_rev, exact), _rel(g_fwd, exact))
            row["check_err"] = err
            checked = err <= CHECK_RTOL and out > 0 and math.isfinite(exact)
            t = measure({"plain": f, "reverse": rev, "forward": fwd}, (w,), min_time, repeats)
            r_rev, r_fwd = t["reverse"] / t["plain"], t["forward"] / t["plain"]
            ok = r_rev <= REVERSE_TARGET and r_fwd <= FORWARD_TARGET
            verdict = ("PASS" if ok else "FAIL") if checked else "FAIL (gradient check)"
            if checked and not ok:
                which = [
                    s for s, bad in (("reverse", r_rev > REVERSE_TARGET), ("forward", r_fwd > FORWARD_TARGET)) if bad
                ]
                verdict += f" ({', '.join(which)})"
            row.update(
                plain_ns=1e9 * t["plain"] / edges,
                rev_ratio=r_rev,
                fwd_ratio=r_fwd,
                rev_ns=1e9 * t["reverse"] / edges,
                verdict=verdict,
                ok=ok and checked,
            )
            print(
                lead + f"{row['plain_ns']:>13.1f} {r_rev:>12.1f}x {r_fwd:>12.1f}x {row['rev_ns']:>11.0f}  {verdict}",
                flush=True,
            )
            if not checked:
                print(f"      gradient check: max relative error {err:.2e} (out = {out:.3e}, closed form {exact:.6e})")
            rows.append(row)
    timed = [r for r in rows if "ok" in r]
    passed = sum(r["ok"] for r in timed)
    errs = [r["check_err"] for r in timed]
    if errs:
        print(
            f"   gradient check: reverse and forward vs N*out/w in every timed cell, "
            f"max relative error {max(errs):.1e} (tolerance {CHECK_RTOL:g})"
        )
    for r in rows:
        if r["verdict"] == "overflow":
            print(f"   width {r['width']}, depth {r['depth']}: not timed: {r['reason']}")
    print(
        f"   SUMMARY scalar graph: {passed}/{len(timed)} timed cells meet both targets "
        f"(reverse <= {REVERSE_TARGET:g}x, forward <= {FORWARD_TARGET:g}x)"
        + (f"; {len(rows) - len(timed)} cell(s) beyond float64 range" if len(rows) > len(timed) else "")
    )
    if timed:
        print(
            f"   ranges: reverse {min(r['rev_ratio'] for r in timed):.1f}-{max(r['rev_ratio'] for r in timed):.1f}x, "
            f"forward {min(r['fwd_ratio'] for r in timed):.1f}-{max(r['fwd_ratio'] for r in timed):.1f}x"
        )
    print()
    return rows


# --- 2. a numpy MLP --------------------------------------------------------------------------------


def mlp_setup(batch=256, dim=512, hidden=512, layers=4, classes=10, seed=0):
    rng = np.random.default_rng(seed)
    params: dict[str, np.ndarray] = {}
    d = dim
    for i in range(layers):
        params[f"W{i}"] = rng.standard_normal((d, hidden)) / np.sqrt(d)
        params[f"b{i}"] = 0.1 * rng.standard_normal(hidden)
        d = hidden
    params[f"W{layers}"] = rng.standard_normal((d, classes)) / np.sqrt(d)
    params[f"b{layers}"] = 0.1 * rng.standard_normal(classes)
    x = rng.standard_normal((batch, dim))
    onehot = np.eye(classes)[rng.integers(0, classes, batch)]

    def loss(p: dict[str, Any], x: np.ndarray, onehot: np.ndarray) -> Any:
        h = x
        for i in range(layers):
            h = np.tanh(h @ p[f"W{i}"] + p[f"b{i}"])
        logits = h @ p[f"W{layers}"] + p[f"b{layers}"]
        logp = logits - ad.logsumexp(logits, axis=1, keepdims=True)
        return -np.sum(onehot * logp) / x.shape[0]

    def manual_grad(p: dict[str, np.ndarray], x: np.ndarray, onehot: np.ndarray) -> dict[str, np.ndarray]:
        """The same gradient written by hand in numpy: a floor for any tape (reference only)."""
        hs = [x]
        for i in range(layers):
            hs.append(np.tanh(hs[-1] @ p[f"W{i}"] + p[f"b{i}"]))
        logits = hs[-1] @ p[f"W{layers}"] + p[f"b{layers}"]
        e = np.exp(logits - logits.max(axis=1, keepdims=True))
        d = (e / e.sum(axis=1, keepdims=True) - onehot) / x.shape[0]
        g = {f"W{layers}": hs[layers].T @ d, f"b{layers}": d.sum(axis=0)}
        dh = d @ p[f"W{layers}"].T
        for i in range(layers - 1, -1, -1):
            dz = dh * (1.0 - hs[i + 1] ** 2)
            g[f"W{i}"], g[f"b{i}"] = hs[i].T @ dz, dz.sum(axis=0)
            if i:
                dh = dz @ p[f"W{i}"].T
        return g

    return loss, manual_grad, params, x, onehot


def bench_mlp(min_time, repeats) -> dict[str, Any]:
    print("== 2. numpy MLP: 4 tanh layers of 512, batch 256, input 512, 10 classes, softmax cross-entropy ==")
    loss, manual_grad, params, x, onehot = mlp_setup()
    g = ad.grad(loss)
    grads = g(params, x, onehot)
    by_hand = manual_grad(params, x, onehot)
    hand_err = max(float(np.max(np.abs(grads[k] - by_hand[k]))) for k in params)
    # finite-difference check on 3 random entries (central differences)
    rng = np.random.default_rng(1)
    names = list(params)
    worst = 0.0
    for _ in range(3):
        name = names[rng.integers(len(names))]
        idx = tuple(int(rng.integers(s)) for s in params[name].shape)
        h = 1e-5
        p_plus = {k: v.copy() for k, v in params.items()}
        p_minus = {k: v.copy() for k, v in params.items()}
        p_plus[name][idx] += h
        p_minus[name][idx] -= h
        fd = (loss(p_plus, x, onehot) - loss(p_minus, x, onehot)) / (2 * h)
        an = grads[name][idx]
        err = abs(fd - an) / max(abs(an), 1e-6)
        worst = max(worst, err)
        print(f"   check {name}{list(idx)}: reverse {an:+.10e}  finite difference {fd:+.10e}  rel. diff {err:.1e}")
    print(f"   adkit's gradient vs the hand-written numpy gradient: max abs difference {hand_err:.1e}")
    checked = worst < 1e-4
    t = measure({"plain": loss, "reverse": g, "by hand": manual_grad}, (params, x, onehot), min_time, repeats)
    ratio = t["reverse"] / t["plain"]
    ok = ratio <= MLP_TARGET and checked
    verdict = "PASS" if ok else "FAIL" + ("" if checked else " (gradient check)")
    print(
        f"   numpy forward {1e3 * t['plain']:.2f} ms, reverse gradient (all weights and biases) "
        f"{1e3 * t['reverse']:.2f} ms: ratio {ratio:.2f}x (target <= {MLP_TARGET:g}x)  {verdict}"
    )
    print(
        f"   reference, no target: the same gradient hand-written in numpy {1e3 * t['by hand']:.2f} ms = "
        f"{t['by hand'] / t['plain']:.2f}x the forward (what avoiding all tape overhead would give here)"
    )
    faults = {name: faults_per_call(fn, (params, x, onehot)) for name, fn in (("plain", loss), ("reverse", g))}
    faults["by hand"] = faults_per_call(manual_grad, (params, x, onehot))
    if None not in faults.values():
        print(
            "   page faults per call, 5 calls in a row: "
            + ", ".join(f"{name} {count:.0f}" for name, count in faults.items())
            + " (a gradient keeps activations and returns new arrays, so when glibc hands that memory"
            " back to the OS after each call, every call faults it in again: ~1 us per 4 KiB page)"
        )
    print()
    return {"plain": t["plain"], "reverse": t["reverse"], "ratio": ratio, "verdict": verdict, "faults": faults}


# --- 4. other AD libraries, where importable ------------------------------------------------------


def _import(name: str) -> Any:
    try:
        return __import__(name, fromlist=["_"])
    except ImportError:
        return None


JAX_COMPILE_LIMIT = 4500  # edges: jax's XLA compile grows ~ edges^1.6 (12 s at 4,000 edges)


def _scalar_gradients_of_others(f: Callable[[Any], Any], edges: int = 0) -> dict[str, Callable[[float], Any]]:
    """d f / d w by each importable library (f uses only * on its input): micrograd, HIPS
    autograd, PyTorch (torch.autograd.grad on a fresh float64 leaf per call) and, up to
    JAX_COMPILE_LIMIT edges, jax.jit(jax.grad(f)) in float64 (compiled by its first call)."""
    fns: dict[str, Callable[[float], Any]] = {}
    engine = _import("micrograd.engine")
    if engine is not None:

        def by_micrograd(w: float) -> float:
            v = engine.Value(w)
            f(v).backward()
            return v.grad

        fns["micrograd"] = by_micrograd
    autograd = _import("autograd")
    if autograd is not None:
        fns["autograd"] = autograd.grad(f)
    torch = _import("torch")
    if torch is not None:

        def by_torch(w: float) -> float:
            x = torch.tensor(w, dtype=torch.float64, requires_grad=True)
            return float(torch.autograd.grad(f(x), x)[0])

        fns["torch"] = by_torch
    jax = _import("jax")
    if jax is not None and edges <= JAX_COMPILE_LIMIT:
        jax.config.update("jax_enable_x64", True)  # a script of its own: float64 for the whole run
        compiled = jax.jit(jax.grad(f))
        fns["jax jit"] = lambda w: float(compiled(w))
    return fns


def _mlp_gradient_by_autograd(layers: int = 4) -> Callable[..., Any] | None:
    """The MLP loss of mlp_setup written with autograd.numpy, and its gradient."""
    autograd, anp = _import("autograd"), _import("autograd.numpy")
    if autograd is None or anp is None:
        return None

    def loss(p: dict[str, Any], x: np.ndarray, onehot: np.ndarray) -> Any:
        h = x
        for i in range(layers):
            h = anp.tanh(anp.dot(h, p[f"W{i}"]) + p[f"b{i}"])
        logits = anp.dot(h, p[f"W{layers}"]) + p[f"b{layers}"]
        top = anp.max(logits, axis=1, keepdims=True)
        lse = top + anp.log(anp.sum(anp.exp(logits - top), axis=1, keepdims=True))
        return -anp.sum(onehot * (logits - lse)) / x.shape[0]

    return autograd.grad(loss)


def bench_others(cells, min_time, repeats) -> None:
    print("== 4. Other AD libraries on the same programs (ratios to the plain program; importable ones only) ==")
    others = _scalar_gradients_of_others(lambda w: w)
    if not others:
        print("   none importable here (tried micrograd, autograd, torch, jax): pip install them to compare\n")
        return
    for width, depth in cells:
        f, edges, n = scalar_graph(width, depth)
        w = math.exp(-600 / n)
        exact = n * f(w) / w
        fns = {"plain": f, "adkit": ad.grad(f), **_scalar_gradients_of_others(f, edges)}
        wrong = [name for name, fn in fns.items() if name != "plain" and _rel(float(fn(w)), exact) > CHECK_RTOL]
        t = measure(fns, (w,), min_time, repeats)
        ratios = ", ".join(f"{name} {t[name] / t['plain']:.1f}x" for name in fns if name != "plain")
        note = f"  (wrong gradient: {', '.join(wrong)})" if wrong else ""
        print(f"   scalar product graph width {width}, depth {depth} ({edges} edges): {ratios}{note}")
    by_autograd = _mlp_gradient_by_autograd()
    if by_autograd is not None:
        loss, _, params, x, onehot = mlp_setup()
        g = ad.grad(loss)
        ours, theirs = g(params, x, onehot), by_autograd(params, x, onehot)
        diff = max(float(np.max(np.abs(ours[k] - theirs[k]))) for k in params)
        t = measure({"plain": loss, "adkit": g, "autograd": by_autograd}, (params, x, onehot), min_time, repeats)
        print(
            f"   numpy MLP: adkit {t['adkit'] / t['plain']:.2f}x, autograd {t['autograd'] / t['plain']:.2f}x "
            f"the numpy forward (gradients agree to {diff:.1e})"
        )
    print()


# --- 3. the product-node graph vectorised ---------------------------------------------------------


def product_graph_numpy(width: int, depth: int) -> Callable[[Any], Any]:
    """The same graph (constants 1), one numpy op per layer: layer = consts * np.prod(layer);
    the first layer's nodes are each w, so out = w**N with N = width**depth, as in scalar_graph."""
    consts = [np.ones(width) for _ in range(depth - 1)]
    ones = np.ones(width)

    def f(w: Any) -> Any:
        layer = w * ones
        for c in consts:
            layer = c * np.prod(layer)
        return np.prod(layer)

    return f


def bench_vectorised(widths, depths, min_time, repeats) -> list[dict[str, Any]]:
    print("== 3. Product-node graph vectorised (layer = consts * np.prod(layer)), reverse mode; no target ==")
    head = f"{'width':>5} {'depth':>5} {'plain us':>9} {'reverse us':>11} {'reverse/plain':>13}"
    print(head)
    print("-" * len(head))
    rows = []
    for width in widths:
        for depth in depths:
            n = width**depth
            if n > FLOAT_MAX:
                print(f"{width:>5} {depth:>5} {'-':>9} {'-':>11} {'overflow':>13}")
                rows.append({"width": width, "depth": depth, "ratio": None})
                continue
            w = math.exp(-600 / n)
            f = product_graph_numpy(width, depth)
            rev = ad.grad(f)
            exact = n * float(f(w)) / w
            err = _rel(rev(w), exact)
            t = measure({"plain": f, "reverse": rev}, (w,), min_time, repeats)
            ratio = t["reverse"] / t["plain"]
            note = "" if err <= CHECK_RTOL else f"  (gradient check failed: rel. error {err:.1e})"
            print(
                f"{width:>5} {depth:>5} {1e6 * t['plain']:>9.1f} {1e6 * t['reverse']:>11.1f} {ratio:>12.1f}x{note}",
                flush=True,
            )
            rows.append({"width": width, "depth": depth, "ratio": ratio})
    print()
    return rows


def _adkit_revision() -> str:
    """The git commit of the working tree (and whether adkit/ has uncommitted changes)."""
    import subprocess

    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    try:
        rev = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], cwd=root, capture_output=True, text=True, check=True
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--", "adkit"], cwd=root, capture_output=True, text=True, check=True
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown (not a git checkout)"
    return rev + (" (adkit/ has uncommitted changes)" if dirty else "")


# --- main ------------------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="fewer cells and shorter timings (< 30 s)")
    ap.add_argument("--min-time", type=float, default=None, help="seconds per timed batch (default 0.2; quick 0.05)")
    ap.add_argument("--repeats", type=int, default=None, help="interleaved batches per cell (default 5; quick 3)")
    ap.add_argument(
        "--others",
        action="store_true",
        help="also time micrograd, HIPS autograd, torch, jax where importable (section 4)",
    )
    opts = ap.parse_args(argv)
    min_time = opts.min_time if opts.min_time is not None else (0.05 if opts.quick else 0.2)
    repeats = opts.repeats if opts.repeats is not None else (3 if opts.quick else 5)
    if opts.quick:
        widths, depths, vec_depths = (2, 8, 32), (4, 16), (4, 16)
    else:
        widths, depths, vec_depths = (2, 8, 32), (4, 16, 64, 256), (4, 16, 64)

    started = time.perf_counter()
    blas = {k: v for k, v in os.environ.items() if "BLAS" in k or k in ("OMP_NUM_THREADS", "MKL_NUM_THREADS")}
    print(
        f"adkit {ad.__version__} speed benchmark, {datetime.date.today().isoformat()}: "
        f"Python {platform.python_version()}, numpy {np.__version__}, {os.cpu_count()} CPUs, {platform.machine()}"
    )
    print(f"commit {_adkit_revision()}; BLAS-related environment: {blas or 'none set'}")
    print(
        f"timing: best of {repeats} interleaved batches of >= {min_time:g} s each per measurement"
        + (" (quick mode)" if opts.quick else "")
    )
    print()
    bench_scalar_graph(widths, depths, min_time, repeats)
    bench_mlp(min_time, repeats)
    bench_vectorised(widths, vec_depths, min_time, repeats)
    if opts.others:
        bench_others([(2, 16), (8, 16), (32, 16)] if not opts.quick else [(8, 16)], min_time, repeats)
    print(FOR_SCALE)
    print(f"\n(total {time.perf_counter() - started:.0f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
