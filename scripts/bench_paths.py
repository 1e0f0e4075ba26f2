#!/usr/bin/env python3
"""Speed of the paths engine, the exponential baseline (issue 12): time per path.

    .venv/bin/python scripts/bench_paths.py           # the table of README's Speed section (~20 s)
    .venv/bin/python scripts/bench_paths.py --quick   # shorter timings (~5 s)

For each cell of Aggarwal's product graph as a scalar program (adkit.families.product_graph,
one binary multiply per edge; width**depth paths), one run measures:
- the paths engine's time per gradient, `ad.grad(spec.f, engine="paths")`, and per path;
- the marginal cost per path: the time difference to the previous depth of the same width,
  divided by the difference in paths (what one more path costs, without the per-graph
  set-up of recording the program and merging its chains);
- the reverse engine's time on the same graph, and the ratio (the paths engine enumerates
  every path; reverse mode adds them up in one sweep over the edges).
Each time is the best per-call time over `repeats` batches lasting at least `min_time`
seconds, the two engines' batches interleaved. Every gradient is checked against the closed
form width**depth first. Target (issue 12): <= 100 ns per path in every cell with at least
4,096 paths, and a marginal cost well under it. The exit code is 0 whatever the outcome.
"""

from __future__ import annotations

import argparse
import math
import platform
import sys
import time
from collections.abc import Callable
from typing import Any

import numpy as np

import adkit as ad
from adkit.families import product_graph

CELLS = {2: (12, 16, 20), 8: (3, 4, 5), 32: (2, 3, 4)}  # width: depths
TARGET_NS_PER_PATH = 100.0
TARGET_MIN_PATHS = 4096
CHECK_RTOL = 1e-12  # the gradient against width**depth (tests/test_paths.py: PATH_SUM_RTOL)


def best_seconds(fns: dict[str, Callable[[], Any]], min_time: float, repeats: int) -> dict[str, float]:
    """Best per-call seconds of each fn; one batch of each per repeat, interleaved."""
    calls = {}
    for name, fn in fns.items():
        n = 1
        while (elapsed := _batch(fn, n)) < min_time:
            n = max(n + 1, min(10 * n, math.ceil(n * 1.2 * min_time / max(elapsed, 1e-9))))
        calls[name] = n
    best = dict.fromkeys(fns, math.inf)
    for _ in range(repeats):
        for name, fn in fns.items():
            best[name] = min(best[name], _batch(fn, calls[name]) / calls[name])
    return best


def _batch(fn: Callable[[], Any], n: int) -> float:
    start = time.perf_counter()
    for _ in range(n):
        fn()
    return time.perf_counter() - start


def bench_cells(cells: dict[int, tuple[int, ...]], min_time: float, repeats: int) -> list[dict[str, Any]]:
    """One row per (width, depth): times, ns per path, marginal ns per path, verdict."""
    rows = []
    for width, depths in cells.items():
        previous = None
        for depth in depths:
            spec = product_graph(depth, width)
            paths_grad = ad.grad(spec.f, engine="paths")
            reverse_grad = ad.grad(spec.f, engine="reverse")
            with ad.paths_budget(spec.n_paths):
                got = paths_grad(*spec.args)
                error = abs(got - spec.exact_grad) / spec.exact_grad
                times = best_seconds(
                    {"paths": lambda: paths_grad(*spec.args), "reverse": lambda: reverse_grad(*spec.args)},
                    min_time,
                    repeats,
                )
            row = {
                "width": width,
                "depth": depth,
                "paths": spec.n_paths,
                "paths_s": times["paths"],
                "ns_per_path": times["paths"] / spec.n_paths * 1e9,
                "marginal_ns": None,
                "reverse_s": times["reverse"],
                "ratio": times["paths"] / times["reverse"],
                "error": error,
            }
            if previous is not None:
                extra = spec.n_paths - previous["paths"]
                row["marginal_ns"] = (times["paths"] - previous["paths_s"]) / extra * 1e9
            row["verdict"] = verdict(row)
            rows.append(row)
            previous = row
    return rows


def verdict(row: dict[str, Any]) -> str:
    if row["error"] > CHECK_RTOL:
        return f"WRONG: relative error {row['error']:.2g} against width**depth"
    if row["paths"] < TARGET_MIN_PATHS:
        return "no target (fewer than 4,096 paths: set-up dominates)"
    return "ok" if row["ns_per_path"] <= TARGET_NS_PER_PATH else f"over the {TARGET_NS_PER_PATH:g} ns target"


def _ms(seconds: float) -> str:
    return f"{seconds * 1e3:.2f} ms"


def table(rows: list[dict[str, Any]]) -> str:
    """The rows as a Markdown table (README's Speed section)."""
    lines = [
        "| width | depth | paths | paths engine | ns/path | marginal ns/path | reverse | paths/reverse | verdict |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        marginal = "" if r["marginal_ns"] is None else f"{r['marginal_ns']:.1f}"
        lines.append(
            f"| {r['width']} | {r['depth']} | {r['paths']:,} | {_ms(r['paths_s'])} | {r['ns_per_path']:.1f} | "
            f"{marginal} | {_ms(r['reverse_s'])} | {r['ratio']:.1f}x | {r['verdict']} |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="shorter timings")
    parser.add_argument("--repeats", type=int, default=None, help="batches per engine and cell (default 7; 3 quick)")
    args = parser.parse_args(argv)
    min_time = 0.02 if args.quick else 0.1
    repeats = args.repeats or (3 if args.quick else 7)
    print(
        f"adkit paths engine, {time.strftime('%Y-%m-%d %H:%M')}; Python {platform.python_version()}, numpy {np.__version__}"
    )
    print(
        f"target: <= {TARGET_NS_PER_PATH:g} ns per path in every cell with >= {TARGET_MIN_PATHS:,} paths "
        f"(best of {repeats} batches of >= {min_time:g} s)\n"
    )
    rows = bench_cells(CELLS, min_time, repeats)
    print(table(rows))
    targeted = [r for r in rows if r["paths"] >= TARGET_MIN_PATHS]
    met = sum(r["verdict"] == "ok" for r in targeted)
    marginal = max(r["marginal_ns"] for r in rows if r["marginal_ns"] is not None)
    print(f"\nSUMMARY paths: {met}/{len(targeted)} cells within target; largest marginal cost {marginal:.1f} ns/path")
    return 0


if __name__ == "__main__":
    sys.exit(main())
