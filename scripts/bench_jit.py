"""adkit.jit against the plain forward, measured in one run (ratios, never timed tests).

    python scripts/bench_jit.py [--quick] [--others]

1. Aggarwal's scalar product graph (adkit.families.product_graph), widths 2, 8, 32 and
   depths 4 to 256: jit(grad(f)) replay time / plain-Python f time, and the first call
   (record + emit + compile) against the target 10 us per edge + 50 ms.
2. A chain of 400 elementwise ops on 10-entry arrays: jit(grad) / numpy forward.
3. The numpy MLP of scripts/bench_core.py (4 tanh layers x 512, batch 256, softmax CE):
   jit(grad) / numpy forward (set OMP_NUM_THREADS=1 for one BLAS thread).

With --others, the same run also times, where installed (never dependencies of adkit), JAX's
jax.jit(jax.grad(f)) (replays, and its first call: trace + XLA compile) and PyTorch's eager
autograd (a fresh graph per call, torch.autograd.grad), on the same three programs and as
ratios to the same forward; each gradient is checked against adkit's. JAX runs in float64;
with OMP_NUM_THREADS=1, torch and XLA are held to one thread too.
"""

from __future__ import annotations

import os
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


def product_graphs(quick: bool, others: dict[str, Any]) -> None:
    print("product graph: jit(grad(f)) / plain-Python f (target <= 4); first call vs 10 us/edge + 50 ms")
    head = f"{'width':>5} {'depth':>5} {'edges':>7} {'ratio':>7} {'first call':>11} {'target':>9}"
    if others:
        head += f" | {'jax':>7} {'jax first':>10} {'per edge':>9} | {'torch':>7}"
    print(head)
    for width in (2, 8) if quick else (2, 8, 32):
        for depth in (4, 16) if quick else (4, 16, 64, 256):
            if width * width * depth > 70000:
                continue  # width 32, depth 256: 262k edges, the first call alone takes ~15 s and GBs
            spec = product_graph(depth, width)
            t0 = time.perf_counter()
            jg = ad.jit(ad.grad(spec.f))
            jg(*spec.args)
            first = time.perf_counter() - t0
            forward = best(lambda: spec.f(*spec.args))
            ratio = best(lambda: jg(*spec.args)) / forward
            target = 10e-6 * spec.n_edges + 0.05
            row = f"{width:>5} {depth:>5} {spec.n_edges:>7} {ratio:>7.2f} {first * 1e3:>9.1f}ms {target * 1e3:>7.1f}ms"
            if others:
                row += (
                    " | "
                    + _jax_product_cell(others, spec, forward)
                    + " | "
                    + _torch_product_cell(others, spec, forward)
                )
            print(row, flush=True)


JAX_COMPILE_LIMIT = 4500  # edges: jax's compile grows ~ edges^1.6 (12 s at 4,000, minutes at 16,000)


def _jax_product_cell(others: dict[str, Any], spec: Any, forward: float) -> str:
    jax = others.get("jax")
    if jax is None:
        return f"{'-':>7} {'-':>10} {'-':>9}"
    if spec.n_edges > JAX_COMPILE_LIMIT:
        return f"{'not run: compile ~minutes':>28}"
    t0 = time.perf_counter()
    jg = jax.jit(jax.grad(spec.f))
    g = float(jg(*spec.args))
    first = time.perf_counter() - t0
    _check("jax", g, spec.exact_grad)
    ratio = best(lambda: float(jg(*spec.args))) / forward
    return f"{ratio:>7.2f} {first * 1e3:>8.0f}ms {first / spec.n_edges * 1e3:>7.2f}ms"


def _torch_product_cell(others: dict[str, Any], spec: Any, forward: float) -> str:
    torch = others.get("torch")
    if torch is None:
        return f"{'-':>7}"

    def by_torch(w: float) -> float:
        x = torch.tensor(w, dtype=torch.float64, requires_grad=True)
        (g,) = torch.autograd.grad(spec.f(x), x)
        return float(g)

    _check("torch", by_torch(*spec.args), spec.exact_grad)
    return f"{best(lambda: by_torch(*spec.args)) / forward:>7.2f}"


def _check(name: str, got: Any, want: Any, rtol: float = 1e-12) -> None:
    """A peer's gradient against the exact (or adkit's) one: float64 rounding only, so 1e-12
    relative (the product graphs are exact; the chain and MLP agree to ~1e-15 where run)."""
    got, want = (np.concatenate([np.ravel(np.asarray(a, float)) for a in _leaves(t)]) for t in (got, want))
    err = float(np.max(np.abs(got - want)) / max(float(np.max(np.abs(want))), 1e-300))
    if not err <= rtol:
        raise SystemExit(f"{name}'s gradient differs from adkit's / the exact one: relative error {err:.2e}")


def chain(others: dict[str, Any]) -> None:
    rng = np.random.default_rng(0)
    x = rng.uniform(0.5, 1.5, 10)

    def program(m: Any) -> Callable[[Any], Any]:
        """The chain written against a numpy-like module m (numpy, jax.numpy, torch)."""

        def f(x: Any) -> Any:
            for _ in range(100):
                x = m.tanh(x) * 0.9 + m.sin(x) * 0.1  # 4 elementwise ops per step: 400 ops
            return m.sum(x)

        return f

    f = program(np)
    jg = ad.jit(ad.grad(f))
    forward = best(lambda: f(x))
    ratio = best(lambda: jg(x)) / forward
    eager = best(lambda: ad.grad(f)(x)) / forward
    print(
        f"chain of 400 elementwise ops on 10 entries: jit(grad) / numpy forward = {ratio:.2f} (target <= 3; eager {eager:.1f})"
    )
    if others:
        print("  " + _others_line(others, program, (x,), ad.grad(f)(x), forward))


def _others_line(
    others: dict[str, Any],
    program: Callable[[Any], Callable[..., Any]],
    args: tuple[Any, ...],
    want: Any,
    forward: float,
) -> str:
    """jax.jit(jax.grad(f)) and torch's autograd on the program, as ratios to `forward`."""
    parts = []
    jax = others.get("jax")
    if jax is not None:
        t0 = time.perf_counter()
        jg = jax.jit(jax.grad(program(jax.numpy)))  # in the first argument, as adkit's
        g = jax.block_until_ready(jg(*args))
        first = time.perf_counter() - t0
        _check("jax", g, want)
        ratio = best(lambda: jax.block_until_ready(jg(*args)), 1.0) / forward
        parts.append(f"jax jit(grad) {ratio:.2f} (first call {first * 1e3:.0f} ms)")
    torch = others.get("torch")
    if torch is not None:
        f = program(torch)
        tensors = _rebuild(args, [torch.from_numpy(np.asarray(v, dtype=np.float64)) for v in _leaves(args)])

        def by_torch() -> list[Any]:
            """torch.autograd.grad in the first argument only (as jax.grad and adkit's), on
            fresh leaves over the same memory (no copy): a new graph per call."""
            wrt = [t.detach().requires_grad_() for t in _leaves_of(tensors[0])]
            grads = torch.autograd.grad(f(_rebuild(tensors[0], wrt), *tensors[1:]), wrt)
            return [g.numpy() for g in grads]

        _check("torch", by_torch(), want)
        eager = best(lambda: f(*tensors), 1.0) / forward
        parts.append(f"torch autograd {best(by_torch, 1.0) / forward:.2f} (torch forward {eager:.2f})")
    return "others / numpy forward: " + ("; ".join(parts) or "none installed")


def _leaves(tree: Any) -> list[Any]:
    """The arrays of a nest of tuples and lists, in order."""
    if isinstance(tree, (tuple, list)):
        return [leaf for t in tree for leaf in _leaves(t)]
    return [np.asarray(tree)]


def _leaves_of(tree: Any) -> list[Any]:
    """The tensors of a nest of tuples and lists, in order (as they are)."""
    if isinstance(tree, (tuple, list)):
        return [leaf for t in tree for leaf in _leaves_of(t)]
    return [tree]


def _rebuild(tree: Any, leaves: list[Any]) -> Any:
    """tree's structure with `leaves` in place of its arrays."""
    it = iter(leaves)

    def build(t: Any) -> Any:
        if isinstance(t, (tuple, list)):
            return type(t)(build(u) for u in t)
        return next(it)

    return build(tree)


def mlp(others: dict[str, Any]) -> None:
    rng = np.random.default_rng(0)
    sizes = [512] * 5
    params = [(rng.normal(0, 1 / np.sqrt(a), (a, b)), np.zeros(b)) for a, b in zip(sizes[:-1], sizes[1:])]
    x = rng.normal(size=(256, 512))
    labels = rng.integers(0, 512, 256)
    onehot = np.eye(512)[labels]

    def program(m: Any) -> Callable[..., Any]:
        """The loss against a numpy-like module m; its own logsumexp (numpy has none)."""
        if m is np:
            lse = ad.logsumexp
        elif m.__name__ == "torch":
            lse = m.logsumexp
        else:
            from jax.nn import logsumexp as lse
        hot = m.asarray(onehot) if m.__name__ != "torch" else m.tensor(onehot)

        def loss(params: Any, x: Any) -> Any:
            h = x
            for w, b in params:
                h = m.tanh(h @ w + b)
            if m.__name__ == "torch":
                return -m.sum(hot * (h - lse(h, dim=1, keepdim=True))) / 256
            return -m.sum(hot * (h - lse(h, axis=1, keepdims=True))) / 256

        return loss

    loss = program(np)
    jg = ad.jit(ad.grad(loss))
    forward = best(lambda: loss(params, x), 1.0)
    ratio = best(lambda: jg(params, x), 1.0) / forward
    eager = best(lambda: ad.grad(loss)(params, x), 1.0) / forward
    print(f"numpy MLP 4 x 512, batch 256: jit(grad) / numpy forward = {ratio:.2f} (target <= 2.5; eager {eager:.2f})")
    if others:
        want = ad.grad(loss)(params, x)
        print("  " + _others_line(others, program, (params, x), want, forward))


def import_others() -> dict[str, Any]:
    """jax (float64 on) and torch, those installed; one thread each when OMP_NUM_THREADS=1."""
    found: dict[str, Any] = {}
    one_thread = os.environ.get("OMP_NUM_THREADS") == "1"
    if one_thread:
        os.environ.setdefault("XLA_FLAGS", "--xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1")
    try:
        import jax

        jax.config.update("jax_enable_x64", True)
        found["jax"] = jax
    except ImportError:
        print("jax: not installed (pip install jax jaxlib)")
    try:
        import torch

        if one_thread:
            torch.set_num_threads(1)
        found["torch"] = torch
    except ImportError:
        print("torch: not installed")
    versions = ", ".join(f"{name} {module.__version__}" for name, module in found.items())
    print(f"--others: {versions or 'none installed'}; threads: {'one' if one_thread else 'default'}")
    return found


if __name__ == "__main__":
    quick = "--quick" in sys.argv
    others = import_others() if "--others" in sys.argv else {}
    product_graphs(quick, others)
    chain(others)
    if not quick:
        mlp(others)
