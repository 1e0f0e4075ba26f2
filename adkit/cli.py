"""The `adkit` command."""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Sequence

import numpy as np

EXAMPLES = """examples:
  adkit demo        differentiate the lecture examples with the forward and reverse engines
"""


def _demo(args: argparse.Namespace) -> int:
    import adkit as ad

    rows = []

    def colah(a, b):
        return (a + b) * (b + 1.0)

    def two_paths(w):
        return np.cos(w**2) + np.sin(w**2)

    def rabbany(w0, w1, x):
        return np.cos(w1 * x + w0)

    cases = [
        ("colah: e = (a+b)(b+1) at a=2, b=1", colah, (2.0, 1.0), (0, 1)),
        ("two paths: cos(w^2) + sin(w^2) at w=1.5", two_paths, (1.5,), (0,)),
        ("Rabbany: y2 = cos(w1 x + w0) at (0.5, 2, 3)", rabbany, (0.5, 2.0, 3.0), (0, 1, 2)),
    ]
    print("adkit demo: lecture examples, forward and reverse mode\n")
    for title, f, point, nums in cases:
        print(title)
        for engine in ("forward", "reverse"):
            start = time.perf_counter()
            g = ad.grad(f, argnums=nums, engine=engine)(*point)
            seconds = time.perf_counter() - start
            rows.append((title, engine, g))
            print(f"  {engine:8s} gradient = {tuple(round(float(v), 12) for v in g)}   ({seconds * 1e6:.0f} µs)")
        print()
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="adkit",
        description="The same derivatives computed five ways, side by side.",
        epilog=EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    demo = sub.add_parser(
        "demo",
        help="differentiate the lecture examples with forward and reverse mode",
        epilog="example:\n  adkit demo",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    demo.set_defaults(run=_demo)
    from adkit import bench

    bench.add_parser(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "run", None):
        parser.print_help(sys.stderr)
        return 2
    return args.run(args)
