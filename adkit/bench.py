"""The timing harness behind `adkit bench`: every engine on deep product-node graphs.

For each engine x width x depth cell: a warm-up call (which also gives the gradient and
its relative error against the family's exact value), then repeats until a minimum time,
reporting the median and the spread. Before anything is timed, every engine must agree
with the exact gradient on the smallest graph. An engine that exceeds its time budget
in a cell is not run on larger graphs of that width: those cells are shown as skipped,
with the time its fitted growth predicts. A hard per-cell timeout keeps one engine from
hanging the run.

The growth fit per engine says, in plain words, what the lectures predict: path
enumeration multiplies its time by about `width` per added layer (a semilog fit), the
other engines grow polynomially in the number of edges (a log-log fit over the larger
graphs; exponent about 1 for reverse mode, with R^2 near 1).
"""

from __future__ import annotations

import csv
import json
import math
import os
import platform
import signal
import statistics
import time
from collections.abc import Callable, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from adkit.display import format_count, format_seconds
from adkit.errors import AdkitError
from adkit.families import FAMILIES, GraphSpec
from adkit.transforms import ENGINES, grad

DEFAULT_DEPTHS = tuple(range(2, 21, 2)) + (32, 64, 128, 256, 512, 1000)
MAX_EDGES = 20_000_000
AGREEMENT_RTOL = {"forward": 1e-12, "reverse": 1e-12, "symbolic": 1e-12, "paths": 1e-12, "numeric": 1e-5}


class BenchError(AdkitError, RuntimeError):
    """The harness cannot run as asked (engines disagree, bad sizes)."""


@dataclass
class Cell:
    engine: str
    width: int
    depth: int
    nodes: int
    edges: int
    paths: int
    status: str  # ok | skipped | timeout | error
    seconds: float | None = None  # median
    spread: tuple[float, float] | None = None  # (min, max) over repeats
    repeats: int = 0
    rel_error: float | None = None
    predicted_seconds: float | None = None
    message: str = ""
    work: int = 0  # path steps (paths engine) or edges (others): what the cost scales with


@dataclass
class Fit:
    engine: str
    width: int
    per_layer: float | None  # time multiplies by this per added layer (semilog fit)
    exponent: float | None  # time ~ edges**exponent (log-log fit over the larger graphs)
    r2: float | None
    points: int

    @property
    def exponential(self) -> bool:
        """Time multiplies by a clear factor per added layer (1.3 or more)."""
        return self.per_layer is not None and self.per_layer >= 1.3

    def sentence(self) -> str:
        parts = [f"{self.engine} (width {self.width}):"]
        if self.per_layer is not None:
            parts.append(f"time x{self.per_layer:.2f} per added layer")
        if self.exponent is not None:
            parts.append(f"~ edges^{self.exponent:.2f} (R² {self.r2:.3f}) over the larger graphs")
        if len(parts) == 1:
            return parts[0] + " too few measured sizes to fit"
        if self.per_layer is not None:
            parts.append(
                f"-> exponential: the paths multiply by {self.width} per layer"
                if self.exponential
                else "-> polynomial in the graph's size"
            )
        return " ".join(parts)


@dataclass
class BenchResult:
    cells: list[Cell]
    fits: list[Fit]
    config: dict[str, Any]
    environment: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "config": self.config,
            "environment": self.environment,
            "cells": [{k: _finite_or_text(v) for k, v in asdict(c).items()} for c in self.cells],
            "fits": [asdict(f) | {"summary": f.sentence()} for f in self.fits],
        }

    def to_json(self, path: str | os.PathLike[str]) -> None:
        with open(path, "w") as fh:
            json.dump(self.to_dict(), fh, indent=2, default=_json_default)

    def to_csv(self, path: str | os.PathLike[str]) -> None:
        fields = list(asdict(self.cells[0]).keys()) if self.cells else []
        with open(path, "w", newline="") as fh:
            fh.write("# " + json.dumps(self.environment, default=_json_default) + "\n")
            writer = csv.DictWriter(fh, fieldnames=fields)
            writer.writeheader()
            for c in self.cells:
                row = asdict(c)
                row["spread"] = "" if c.spread is None else f"{c.spread[0]:.6g}..{c.spread[1]:.6g}"
                writer.writerow(row)

    def rows(self) -> tuple[list[str], list[list[str]]]:
        header = ["engine", "width", "depth", "edges", "paths", "time", "spread", "rel error", "status"]
        body = []
        for c in self.cells:
            t = (
                format_seconds(c.seconds)
                if c.seconds is not None
                else (f"~{format_seconds(c.predicted_seconds)} (predicted)" if c.predicted_seconds else "—")
            )
            spread = f"{format_seconds(c.spread[0])}–{format_seconds(c.spread[1])}" if c.spread else ""
            err = f"{c.rel_error:.1e}" if c.rel_error is not None else "—"
            status = c.status if not c.message else f"{c.status}: {c.message}"
            body.append(
                [c.engine, str(c.width), str(c.depth), str(c.edges), format_count(c.paths), t, spread, err, status]
            )
        return header, body

    def __str__(self) -> str:
        from adkit.display import text_table

        header, body = self.rows()
        return text_table(header, body) + "\n\n" + "\n".join(f.sentence() for f in self.fits)

    def _repr_html_(self) -> str | None:
        try:
            from adkit.display import html_table

            header, body = self.rows()
            fits = "".join(f"<li>{f.sentence()}</li>" for f in self.fits)
            return html_table(header, body) + f"<ul>{fits}</ul>"
        except Exception:  # noqa: BLE001 (display hooks never raise)
            return None

    def plot(self, path: str | os.PathLike[str] | None = None) -> Any:
        """Time vs depth (log axis), one line per engine and width; relative error vs depth."""
        import matplotlib

        if path is not None:
            matplotlib.use("Agg", force=False)
        import matplotlib.pyplot as plt

        fig, (ax_t, ax_e) = plt.subplots(1, 2, figsize=(12, 4.5))
        measured = [c.seconds for c in self.cells if c.status == "ok" and c.seconds]
        cap = min(86400.0, 1e4 * max(measured)) if measured else 86400.0  # predictions drawn up to here
        for engine in self.config["engines"]:
            for width in self.config["widths"]:
                cs = [c for c in self.cells if c.engine == engine and c.width == width]
                ok = [c for c in cs if c.status == "ok"]
                label = engine if len(self.config["widths"]) == 1 else f"{engine}, width {width}"
                if ok:
                    line = ax_t.plot([c.depth for c in ok], [c.seconds for c in ok], "o-", label=label)[0]
                    pred = [c for c in cs if c.predicted_seconds and c.predicted_seconds <= cap]
                    if pred:
                        ax_t.plot(
                            [ok[-1].depth] + [c.depth for c in pred],
                            [ok[-1].seconds] + [c.predicted_seconds for c in pred],
                            ":",
                            color=line.get_color(),
                        )
                    errs = [(c.depth, min(max(c.rel_error, 1e-17), 1e3)) for c in ok if c.rel_error is not None]
                    if errs:
                        ax_e.plot(*zip(*errs), "o-", label=label, color=line.get_color())
        for ax in (ax_t, ax_e):
            ax.set_xscale("log")
            ax.set_yscale("log")
            ax.set_xlabel("depth (layers)")
            ax.legend(fontsize=8)
        ax_t.set_ylabel("seconds per gradient")
        ax_t.set_title("time vs depth (dotted: predicted, not run)")
        ax_e.set_ylabel("relative error vs exact (clipped to [1e-17, 1e3])")
        ax_e.set_title("accuracy")
        fig.tight_layout()
        if path is not None:
            fig.savefig(path, dpi=110)
            plt.close(fig)
        return fig


def _finite_or_text(x: Any) -> Any:
    """JSON has no inf: an infinite prediction is written as the string "inf"."""
    if isinstance(x, float) and not math.isfinite(x):
        return "inf" if x > 0 else ("-inf" if x < 0 else "nan")
    return x


def _json_default(o: Any) -> Any:
    if isinstance(o, (np.floating, np.integer)):
        return o.item()
    if isinstance(o, int):
        return o
    return str(o)


def environment_info() -> dict[str, Any]:
    import sys

    info: dict[str, Any] = {
        "python": sys.version.split()[0],
        "numpy": np.__version__,
        "platform": platform.platform(),
        "machine": platform.machine(),
        "cpu": _cpu_name(),
        "cores": os.cpu_count(),
    }
    try:
        import sympy

        info["sympy"] = sympy.__version__
    except ImportError:  # pragma: no cover
        info["sympy"] = None
    from adkit import __version__

    info["adkit"] = __version__
    return info


def _cpu_name() -> str:
    try:
        with open("/proc/cpuinfo") as fh:
            for line in fh:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


@contextmanager
def _timeout(seconds: float):
    """Raise TimeoutError in the main thread after `seconds` (SIGALRM; no-op elsewhere)."""
    usable = hasattr(signal, "setitimer") and _is_main_thread() and seconds > 0

    def handler(signum: int, frame: Any) -> None:
        raise TimeoutError

    if not usable:
        yield
        return
    old = signal.signal(signal.SIGALRM, handler)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old)


def _is_main_thread() -> bool:
    import threading

    return threading.current_thread() is threading.main_thread()


def _rel_error(g: Any, exact: Any) -> float | None:
    if exact is None:
        return None
    g = np.asarray(g, dtype=float)
    exact = np.asarray(exact, dtype=float)
    scale = float(np.max(np.abs(exact))) or 1.0
    return float(np.max(np.abs(g - exact))) / scale


def _measure(fn: Callable[[], Any], min_time: float, max_repeats: int) -> tuple[Any, list[float]]:
    start = time.perf_counter()
    result = fn()  # warm-up; also the value checked
    first = time.perf_counter() - start
    times: list[float] = []
    total = 0.0
    if first > min_time:  # slow cell: the warm-up is the measurement
        return result, [first]
    while total < min_time and len(times) < max_repeats:
        start = time.perf_counter()
        fn()
        t = time.perf_counter() - start
        times.append(t)
        total += t
    return result, times


def semilog_fit(depths: Sequence[float], seconds: Sequence[float]) -> float | None:
    """exp(slope) of log(seconds) against depth: the factor per added layer."""
    if len(depths) < 2:
        return None
    slope = np.polyfit(np.asarray(depths, float), np.log(np.asarray(seconds, float)), 1)[0]
    return float(math.exp(slope))


def loglog_fit(edges: Sequence[float], seconds: Sequence[float]) -> tuple[float | None, float | None]:
    """Exponent and R^2 of log(seconds) against log(edges)."""
    if len(edges) < 3:
        return None, None
    x, y = np.log(np.asarray(edges, float)), np.log(np.asarray(seconds, float))
    slope, intercept = np.polyfit(x, y, 1)
    resid = y - (slope * x + intercept)
    ss = float(np.sum((y - y.mean()) ** 2))
    r2 = 1.0 - float(np.sum(resid**2)) / ss if ss > 0 else 1.0
    return float(slope), r2


def work(engine: str, spec: GraphSpec) -> int:
    """What an engine's cost is proportional to: path steps for paths, edges for the rest."""
    if engine == "paths":
        return spec.n_paths * (spec.params.get("depth", 1) + 1)
    return max(spec.n_edges, 1)


def _predict(done: list[Cell], depth: int, units: int) -> float | None:
    """Seconds the engine would take on a graph of `units` work, scaled linearly in work
    from its largest measured cell (exponential for paths, since its work is the number
    of path steps); None before anything was measured, inf past the float range."""
    ok = [c for c in done if c.status == "ok" and c.seconds]
    if not ok:
        return None
    last = ok[-1]
    log_seconds = math.log(last.seconds) + math.log(units) - math.log(max(last.work, 1))
    return math.exp(log_seconds) if log_seconds < 700 else math.inf


def check_agreement(engines: Sequence[str], spec: GraphSpec) -> None:
    """Every engine must agree with the exact gradient before anything is timed."""
    from adkit.engines.paths import paths_budget

    problems = []
    for engine in engines:
        try:
            with paths_budget(10**7):
                g = grad(spec.f, engine=engine)(*spec.args)
        except Exception as exc:  # noqa: BLE001
            problems.append(f"{engine}: {type(exc).__name__}: {exc}")
            continue
        err = _rel_error(g, spec.exact_grad)
        if err is None or err > AGREEMENT_RTOL.get(engine, 1e-8):
            problems.append(f"{engine}: gradient {g!r}, exact {spec.exact_grad!r} (relative error {err})")
    if problems:
        raise BenchError(f"engines disagree on {spec.name}, so nothing is timed:\n  " + "\n  ".join(problems))


def available_engines() -> list[str]:
    """The engines installed in this adkit (all five once every engine is registered)."""
    from adkit.transforms import DIFFERENTIATING_ENGINES

    return [e for e in ENGINES if e in ("forward", "reverse") or e in DIFFERENTIATING_ENGINES]


def run(
    engines: Sequence[str] | None = None,
    widths: Sequence[int] = (2,),
    depths: Sequence[int] = DEFAULT_DEPTHS,
    family: str = "product",
    budget: float = 1.0,
    timeout: float = 20.0,
    min_time: float = 0.05,
    max_repeats: int = 1000,
    progress: Callable[[Cell, int, int], None] | None = None,
) -> BenchResult:
    """Time every engine on every (width, depth) graph of the family; fit the growth.

    budget: seconds per gradient beyond which an engine is not run on larger depths
    (those cells are reported as skipped, with the predicted time). timeout: a hard
    limit per cell. progress(cell, done, total) is called after each cell.
    """
    from adkit.engines.paths import paths_budget

    installed = available_engines()
    engines = installed if engines is None else list(engines)
    for e in engines:
        if e not in ENGINES:
            raise BenchError(f"unknown engine {e!r}; choose from {', '.join(ENGINES)}")
        if e not in installed:
            raise BenchError(f"engine {e!r} is not available in this installation (available: {', '.join(installed)})")
    if family not in FAMILIES:
        raise BenchError(f"unknown family {family!r}; choose from {', '.join(FAMILIES)}")
    widths = sorted(set(int(w) for w in widths))
    depths = sorted(set(int(d) for d in depths))
    if not widths or not depths or min(widths) < 1 or min(depths) < 1:
        raise BenchError("widths and depths must be positive integers")
    make = FAMILIES[family]
    largest = max(widths) ** 2 * max(depths)
    if largest > MAX_EDGES:
        raise BenchError(
            f"the largest graph asked for (width {max(widths)}, depth {max(depths)}) has ~{largest:,} edges; "
            f"the harness stops at {MAX_EDGES:,} (a traced graph of that size does not fit in memory): "
            "use smaller --width / --depth"
        )
    for width in widths:
        check_agreement(engines, make(depth=depths[0], width=width) if family != "chain" else make(depth=depths[0]))
    cells: list[Cell] = []
    total = len(engines) * len(widths) * len(depths)
    done_count = 0
    for width in widths:
        for engine in engines:
            history: list[Cell] = []
            over_budget = False
            for depth in depths:
                spec = make(depth=depth, width=width) if family != "chain" else make(depth=depth)
                cell = Cell(
                    engine, width, depth, spec.n_nodes, spec.n_edges, spec.n_paths, "ok", work=work(engine, spec)
                )
                predicted = _predict(history, depth, cell.work)
                if over_budget or (predicted is not None and predicted > timeout):
                    over_budget = True
                    cell.status = "skipped"
                    cell.predicted_seconds = predicted
                    cell.message = "over the time budget"
                elif spec.overflow and engine != "symbolic":
                    cell.status = "overflow"
                    cell.message = f"exact gradient ~1e{spec.exact_grad_log10:.0f} is beyond float64"
                else:
                    g = grad(spec.f, engine=engine)
                    try:
                        with _timeout(timeout), paths_budget(10**12):
                            result, times = _measure(lambda g=g, spec=spec: g(*spec.args), min_time, max_repeats)
                        cell.seconds = statistics.median(times)
                        cell.spread = (min(times), max(times))
                        cell.repeats = len(times)
                        cell.rel_error = _rel_error(result, spec.exact_grad)
                        if cell.seconds > budget:
                            over_budget = True
                    except TimeoutError:
                        cell.status = "timeout"
                        cell.message = f"over the {timeout:g} s hard limit"
                        over_budget = True
                    except Exception as exc:  # noqa: BLE001 (a failing cell is reported, the run goes on)
                        cell.status = "error"
                        cell.message = f"{type(exc).__name__}: {str(exc).splitlines()[0][:120]}"
                history.append(cell)
                cells.append(cell)
                done_count += 1
                if progress is not None:
                    progress(cell, done_count, total)
    fits = [
        _fit(engine, width, [c for c in cells if c.engine == engine and c.width == width])
        for width in widths
        for engine in engines
    ]
    config = {
        "engines": engines,
        "widths": widths,
        "depths": depths,
        "family": family,
        "budget": budget,
        "timeout": timeout,
        "min_time": min_time,
    }
    return BenchResult(cells, fits, config, environment_info())


def _fit(engine: str, width: int, cells: list[Cell]) -> Fit:
    ok = [c for c in cells if c.status == "ok" and c.seconds]
    tail = ok[-4:]
    per_layer = semilog_fit([c.depth for c in tail], [c.seconds for c in tail])
    larger = ok[len(ok) // 2 :]
    exponent, r2 = loglog_fit([c.edges for c in larger], [c.seconds for c in larger])
    return Fit(engine, width, per_layer, exponent, r2, len(ok))


def parse_sizes(text: str) -> list[int]:
    """'2' -> [2]; '2,4,8' -> [2, 4, 8]; '1:20' -> 1..20; '4:64:4' -> 4, 8, ..., 64."""
    out: list[int] = []
    for part in text.split(","):
        part = part.strip()
        if not part:
            continue
        if ":" in part:
            bits = part.split(":")
            if len(bits) not in (2, 3):
                raise ValueError(f"bad range {part!r}: use START:STOP or START:STOP:STEP")
            start, stop = int(bits[0]), int(bits[1])
            step = int(bits[2]) if len(bits) == 3 else 1
            if step < 1 or stop < start:
                raise ValueError(f"bad range {part!r}: STOP must be >= START and STEP >= 1")
            out.extend(range(start, stop + 1, step))
        else:
            out.append(int(part))
    if not out or min(out) < 1:
        raise ValueError(f"sizes must be positive integers, got {text!r}")
    if len(out) > 10_000 or max(out) > 100_000:
        raise ValueError(f"sizes too large in {text!r} (at most 10,000 sizes, each at most 100,000)")
    return sorted(set(out))


# --- the `adkit bench` command ------------------------------------------------------------------

BENCH_EXAMPLES = """examples:
  adkit bench                                  the default sweep: widths 2 and 3 (well under a minute)
  adkit bench --width 2,4 --depth 1:12         two widths, depths 1 to 12
  adkit bench --engines forward,reverse,paths --depth 4,16,64 --budget 0.5
  adkit bench --json out.json --csv out.csv --plot out.png
"""


def add_parser(sub: Any) -> None:
    """Register `adkit bench` on an argparse subparsers object."""
    import argparse

    p = sub.add_parser(
        "bench",
        help="time every engine on deep product-node graphs",
        epilog=BENCH_EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Time the engines on Aggarwal's product-node graphs (width**depth paths) and "
        "fit how their cost grows.",
    )
    p.add_argument("--width", default="2,3", help="width(s): 2 or 2,4,8 (default 2,3)")
    p.add_argument("--depth", default=None, help="depths: 1:20, 4:64:4 or 4,16,64 (default 2:20:2,32,64,...,1000)")
    p.add_argument("--engines", default=None, help="comma-separated engines (default: all)")
    p.add_argument("--family", default="product", choices=sorted(FAMILIES), help="graph family (default product)")
    p.add_argument(
        "--budget",
        type=float,
        default=1.0,
        help="seconds per gradient beyond which an engine stops growing (default 1)",
    )
    p.add_argument("--timeout", type=float, default=20.0, help="hard limit per cell in seconds (default 20)")
    p.add_argument("--min-time", type=float, default=0.2, help="minimum measured time per cell (default 0.2 s)")
    p.add_argument("--json", metavar="FILE", help="write every cell and the environment as JSON")
    p.add_argument("--csv", metavar="FILE", help="write every cell as CSV")
    p.add_argument("--plot", metavar="FILE", help="write a PNG plot: time and error vs depth")
    p.set_defaults(run=main)


def main(args: Any) -> int:
    """Run the sweep with a progress bar on stderr; the table and the fits on stdout."""
    import sys

    from rich.console import Console
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn
    from rich.table import Table

    err = Console(stderr=True)
    try:
        widths = parse_sizes(args.width)
        depths = parse_sizes(args.depth) if args.depth else list(DEFAULT_DEPTHS)
        engines = [e.strip() for e in args.engines.split(",") if e.strip()] if args.engines else None
        if args.budget <= 0 or args.timeout <= 0 or args.min_time < 0:
            raise ValueError("--budget and --timeout must be positive, --min-time non-negative")
        for path in (args.json, args.csv, args.plot):
            if path and not os.path.isdir(os.path.dirname(os.path.abspath(path))):
                raise ValueError(f"cannot write {path}: its folder does not exist")
    except ValueError as exc:
        print(f"adkit bench: {exc}", file=sys.stderr)
        return 2
    with Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        TextColumn("{task.completed}/{task.total}"),
        TimeElapsedColumn(),
        console=err,
        transient=True,
    ) as bar:
        task = bar.add_task("checking agreement", total=None)

        def progress(cell: Cell, done: int, total: int) -> None:
            bar.update(
                task, total=total, completed=done, description=f"{cell.engine:8s} width {cell.width} depth {cell.depth}"
            )

        try:
            result = run(
                engines,
                widths,
                depths,
                family=args.family,
                budget=args.budget,
                timeout=args.timeout,
                min_time=args.min_time,
                progress=progress,
            )
        except BenchError as exc:
            print(f"adkit bench: {exc}", file=sys.stderr)
            return 1 if "disagree" in str(exc) else 2
    out = Console(soft_wrap=False, width=max(120, Console().width))
    header, body = result.rows()
    table = Table(title=f"adkit bench: {args.family} graphs", header_style="bold")
    for h in header:
        table.add_column(
            h, justify="right" if h in ("width", "depth", "edges", "paths", "time", "rel error") else "left"
        )
    for row in body:
        table.add_row(*row)
    out.print(table)
    out.print("growth fits:")
    for f in result.fits:
        out.print("  " + f.sentence(), soft_wrap=True, markup=False, highlight=False)
    if args.json:
        result.to_json(args.json)
        err.print(f"wrote {args.json}")
    if args.csv:
        result.to_csv(args.csv)
        err.print(f"wrote {args.csv}")
    if args.plot:
        result.plot(args.plot)
        err.print(f"wrote {args.plot}")
    return 0
