"""The timing harness behind `adkit bench`: every engine on deep product-node graphs.

For each engine x width x depth cell: a warm-up call (which also gives the gradient and
its relative error against the family's exact value), then repeats until a minimum time,
reporting the median and the spread. Before anything is timed, every engine must agree
with the exact gradient on the smallest graph. A cell is "ok" when its error is within
the engine's expected accuracy (expected_accuracy), "inaccurate" beyond it, "failed"
when the engine raised. An engine that exceeds its time budget in a cell is not run on
larger graphs of that width: those cells are shown as skipped, with the time its fitted
growth predicts. A hard per-cell timeout keeps one engine from hanging the run; Ctrl-C
stops the sweep and keeps the finished cells (BenchInterrupted).

The growth verdict per engine says, in plain words, what the lectures predict when the
timings show it: path enumeration multiplies its time by about `width` per added layer
(log-time linear in depth), the other engines grow polynomially in the number of edges
(log-time linear in log-edges, exponent about 1 for reverse mode). Both models are
fitted to the same cells and a verdict is declared only when one clearly explains the
data better (classify_growth); otherwise it is "undecided", with both fits' R^2.
"""

from __future__ import annotations

import csv
import dataclasses
import gc
import json
import math
import os
import platform
import signal
import statistics
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager, nullcontext
from dataclasses import asdict, dataclass, field
from typing import IO, Any

import numpy as np

from adkit.errors import AdkitError
from adkit.families import FAMILIES, GraphSpec
from adkit.formatting import format_count, format_seconds
from adkit.transforms import ENGINES, grad

DEFAULT_DEPTHS = tuple(range(2, 21, 2)) + (24, 28, 32, 64, 128, 256, 512, 1000)
MAX_EDGES = 20_000_000
AGREEMENT_RTOL = {
    "forward": 1e-12,
    "reverse": 1e-12,
    "symbolic": 1e-12,
    "paths": 1e-12,
    "numeric": 1e-5,
    "jit": 1e-12,
}
JIT = "jit"  # ad.jit(ad.grad(f)): the source-transformed reverse sweep, timed on replays


class BenchError(AdkitError, RuntimeError):
    """The harness cannot run as asked (engines disagree, bad sizes)."""


class BenchInterrupted(KeyboardInterrupt):
    """Ctrl-C during `run`: `.result` holds the cells finished before it (and their fits)."""

    def __init__(self, result: BenchResult) -> None:
        super().__init__("interrupted")
        self.result = result


EPS = float(np.finfo(np.float64).eps)
EXACT_ULPS = 4.0
NUMERIC_FACTOR = 100.0


def expected_accuracy(engine: str, nodes: int, edges: int) -> float:
    """The relative error an engine is expected to stay within on a graph of this size.

    Forward, reverse and paths apply exact local rules, and symbolic evaluates sympy's
    derivative at 30 digits: their only error is rounding, at most half an ulp per
    operation, and an operation per node and per edge (a local derivative, a product, an
    accumulation) compounds to gamma_n ~ n eps/2 for n operations when nothing cancels
    (Higham, Accuracy and Stability of Numerical Algorithms, ch. 3). Allowed:
    EXACT_ULPS (4) eps per node and edge, eight times that bound.

    The numeric engine uses Richardson's table of central differences with base step
    h = eps^(1/5) max(1, |x|): its truncation error is O(h^6) = O(eps^(6/5)) where f's
    higher derivatives are of f's size, and its rounding error is about eps |f| / h =
    eps^(4/5) (3e-13), amplified by the table's weights and by the rounding in f itself
    (again one per node and edge). Allowed: NUMERIC_FACTOR (100) eps^(4/5) per node and
    edge. On the product graphs, whose f = C w**N has higher derivatives N times larger
    at each order, the truncation term takes over past depth ~8 at width 2: those cells
    are reported "inaccurate", which they are.
    """
    size = max(nodes + edges, 1)
    if engine == "numeric":
        return NUMERIC_FACTOR * EPS**0.8 * size
    return EXACT_ULPS * EPS * size


@dataclass
class Cell:
    engine: str
    width: int
    depth: int
    nodes: int
    edges: int
    paths: int
    status: str  # ok | inaccurate | failed | skipped | timeout | overflow
    seconds: float | None = None  # median
    spread: tuple[float, float] | None = None  # (min, max) over repeats
    repeats: int = 0
    rel_error: float | None = None
    predicted_seconds: float | None = None
    message: str = ""
    work: int = 0  # path steps (paths engine) or edges (others): what the cost scales with
    expected_error: float | None = None  # the relative error within which the cell is "ok"
    first_call_seconds: float | None = None  # jit: the first call (record + generate + compile)

    @property
    def measured(self) -> bool:
        """The cell was timed (its gradient may still be inaccurate)."""
        return self.status in ("ok", "inaccurate") and self.seconds is not None


@dataclass
class Fit:
    """The growth of one engine's time with depth, and the verdict the fits support.

    per_layer, r2_per_layer: exp(slope) and R^2 of log(seconds) against depth (the
    exponential model); exponent, r2: slope and R^2 of log(seconds) against log(edges)
    (the polynomial model), both over the same measured cells. verdict: "exponential",
    "polynomial" or "undecided" (see classify_growth), reason: the evidence in words.
    """

    engine: str
    width: int
    per_layer: float | None
    exponent: float | None
    r2: float | None
    points: int
    r2_per_layer: float | None = None
    verdict: str = "undecided"
    reason: str = ""

    @property
    def exponential(self) -> bool:
        return self.verdict == "exponential"

    def sentence(self) -> str:
        parts = [f"{self.engine} (width {self.width}):"]
        if self.per_layer is not None:
            parts.append(f"time x{self.per_layer:.2f} per added layer (R² {_r2_text(self.r2_per_layer)}),")
        if self.exponent is not None:
            parts.append(f"~ edges^{self.exponent:.2f} (R² {_r2_text(self.r2)})")
        if len(parts) == 1:
            return parts[0] + f" too few measured sizes to fit ({self.points})"
        if self.verdict == "exponential":
            parts.append(f"-> exponential: the paths multiply by {self.width} per layer")
        elif self.verdict == "polynomial":
            parts.append("-> polynomial in the graph's size")
        else:
            parts.append(f"-> undecided ({self.reason})")
        return " ".join(parts)


def _r2_text(r2: float | None) -> str:
    return "—" if r2 is None else f"{r2:.3f}"


# The growth verdict. Both models have two parameters, so their residual sums of
# squares compare directly: under Gaussian noise in log-time the log-likelihood ratio of
# model a over model b is (n/2) ln(SSE_b / SSE_a). A verdict needs: at least
# MIN_GROWTH_POINTS sizes; the chosen model explaining the data (R^2 >= GOOD_FIT_R2); a
# log-likelihood ratio of at least MIN_LOG_LIKELIHOOD_RATIO over the other model (3: the
# data are e^3 ~ 20 times likelier, "strong" evidence; with 4 sizes the other model must
# leave 4.5 times more residual, with 8 sizes 2.1 times); and, for "exponential", a
# factor per layer of at least MIN_PER_LAYER (1.05 per layer over a few depths is noise
# or overhead, not the lectures' width**depth).
MIN_GROWTH_POINTS = 4
GOOD_FIT_R2 = 0.95
MIN_LOG_LIKELIHOOD_RATIO = 3.0
MIN_PER_LAYER = 1.3


@dataclass
class GrowthFit:
    """classify_growth's answer: both models' parameters and R^2, the verdict, and why."""

    per_layer: float | None
    r2_exponential: float | None
    exponent: float | None
    r2_polynomial: float | None
    verdict: str
    reason: str


def _line_fit(x: np.ndarray, y: np.ndarray) -> tuple[float, float, float]:
    """Slope, residual sum of squares and R^2 of the least-squares line y ~ x."""
    slope, intercept = np.polyfit(x, y, 1)
    sse = float(np.sum((y - (slope * x + intercept)) ** 2))
    ss = float(np.sum((y - y.mean()) ** 2))
    return float(slope), sse, (1.0 - sse / ss if ss > 0 else 0.0)


def classify_growth(depths: Sequence[float], sizes: Sequence[float], seconds: Sequence[float]) -> GrowthFit:
    """Exponential in depth (log t ~ depth) or polynomial in size (log t ~ log size)?

    Fits both models to the same cells and decides only when the data separate them
    (thresholds above); otherwise "undecided", with both fits' quality in the reason.
    """
    n = len(seconds)
    if n < 2:
        return GrowthFit(None, None, None, None, "undecided", f"{n} measured size(s): nothing to fit")
    y = np.log(np.asarray(seconds, float))
    per_layer_slope, sse_exp, r2_exp = _line_fit(np.asarray(depths, float), y)
    exponent, sse_poly, r2_poly = _line_fit(np.log(np.asarray(sizes, float)), y)
    per_layer = math.exp(per_layer_slope)
    quality = (
        f"R² {r2_exp:.2f} exponential vs {r2_poly:.2f} polynomial over {n} sizes, depths {min(depths)}-{max(depths)}"
    )
    if n < MIN_GROWTH_POINTS:
        return GrowthFit(per_layer, r2_exp, exponent, r2_poly, "undecided", f"{n} sizes are too few; {quality}")

    def clearly_better(sse_a: float, sse_b: float) -> bool:
        if sse_b <= 0:
            return False
        return sse_a <= 0 or n / 2 * math.log(sse_b / sse_a) >= MIN_LOG_LIKELIHOOD_RATIO

    if r2_exp >= GOOD_FIT_R2 and per_layer >= MIN_PER_LAYER and clearly_better(sse_exp, sse_poly):
        return GrowthFit(per_layer, r2_exp, exponent, r2_poly, "exponential", quality)
    if r2_poly >= GOOD_FIT_R2 and clearly_better(sse_poly, sse_exp):
        return GrowthFit(per_layer, r2_exp, exponent, r2_poly, "polynomial", quality)
    if per_layer < MIN_PER_LAYER and r2_exp < GOOD_FIT_R2 and r2_poly < GOOD_FIT_R2 and abs(exponent) < 0.5:
        why = "time hardly changes with size: overhead and noise dominate"
    elif r2_exp < GOOD_FIT_R2 and r2_poly < GOOD_FIT_R2:
        why = "neither model fits: noisy timings"
    else:
        why = "both models fit about equally: more or farther-apart depths would separate them"
    return GrowthFit(per_layer, r2_exp, exponent, r2_poly, "undecided", f"{why}; {quality}")


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

    def to_json(self, path: str | os.PathLike[str] | IO[str]) -> None:
        """Every cell, the fits, the configuration and the environment; path "-" or a
        text stream writes to it."""
        with _text_output(path) as fh:
            json.dump(self.to_dict(), fh, indent=2, default=_json_default)
            fh.write("\n")

    def to_csv(self, path: str | os.PathLike[str] | IO[str]) -> None:
        """One row per cell (a header line, then data: no comment line, so any CSV
        reader takes it; the environment is in the JSON). Path "-" or a stream too."""
        fields = [f.name for f in dataclasses.fields(Cell)]
        with _text_output(path) as fh:
            writer = csv.DictWriter(fh, fieldnames=fields, lineterminator="\n")
            writer.writeheader()
            for c in self.cells:
                row = asdict(c)
                row["spread"] = "" if c.spread is None else f"{c.spread[0]:.6g}..{c.spread[1]:.6g}"
                writer.writerow(row)

    def rows(self) -> tuple[list[str], list[list[str]]]:
        header = ["engine", "width", "depth", "edges", "paths", "time", "spread", "first call", "rel error", "status"]
        body = []
        for c in self.cells:
            t = (
                format_seconds(c.seconds)
                if c.seconds is not None
                else (f"~{format_seconds(c.predicted_seconds)} (predicted)" if c.predicted_seconds else "—")
            )
            spread = f"{format_seconds(c.spread[0])}–{format_seconds(c.spread[1])}" if c.spread else ""
            first = format_seconds(c.first_call_seconds) if c.first_call_seconds is not None else ""
            err = f"{c.rel_error:.1e}" if c.rel_error is not None else "—"
            status = c.status if not c.message else f"{c.status}: {c.message}"
            body.append(
                [
                    c.engine,
                    str(c.width),
                    str(c.depth),
                    str(c.edges),
                    format_count(c.paths),
                    t,
                    spread,
                    first,
                    err,
                    status,
                ]
            )
        return header, body

    def __str__(self) -> str:
        from adkit.display import text_table

        header, body = self.rows()
        notes = "".join(f"\nnote: {n}" for n in self.config.get("notes", []))
        return text_table(header, body) + "\n\n" + "\n".join(f.sentence() for f in self.fits) + notes

    def _repr_html_(self) -> str | None:
        try:
            from adkit.display import html_table

            header, body = self.rows()
            fits = "".join(f"<li>{f.sentence()}</li>" for f in self.fits)
            return html_table(header, body) + f"<ul>{fits}</ul>"
        except Exception:  # noqa: BLE001 (display hooks never raise)
            return None

    def plot(self, path: str | os.PathLike[str] | None = None) -> Any:
        """Time vs depth and relative error vs depth, one line per engine and width.

        Engines differ by line style (and colour), widths by marker, so the figure reads in
        black and white. Predicted times of cells not run are faint with hollow markers.
        The accuracy panel plots log10 of the relative error; an error of exactly 0 (the
        exact engines on these power-of-two graphs) has no logarithm and is drawn in a band
        below the axis, one row per engine and width. Returns the matplotlib Figure.
        """
        import matplotlib

        if path is not None:
            matplotlib.use("Agg", force=False)
        import matplotlib.pyplot as plt
        from matplotlib.lines import Line2D

        engines, widths = list(self.config["engines"]), list(self.config["widths"])
        fig, (ax_t, ax_e) = plt.subplots(1, 2, figsize=(13, 5.2))
        measured = [c.seconds for c in self.cells if c.measured and c.seconds]
        cap = min(86400.0, 1e4 * max(measured)) if measured else 86400.0  # predictions drawn up to here
        n_series = len(engines) * len(widths)
        zero_rows = {}  # (engine, width) -> y of its row in the "exactly 0" band
        for i, engine in enumerate(engines):
            color, style = _engine_style(engine, i)
            for j, width in enumerate(widths):
                marker = WIDTH_MARKERS[j % len(WIDTH_MARKERS)]
                kw = {"color": color, "ls": style, "marker": marker, "ms": 5, "lw": 1.6}
                name = f"{engine}, width {width}"
                cs = [c for c in self.cells if c.engine == engine and c.width == width]
                ok = [c for c in cs if c.measured and c.seconds]
                if not ok:
                    continue
                ax_t.plot([c.depth for c in ok], [c.seconds for c in ok], label=name, gid="time", **kw)
                pred = [c for c in cs if c.predicted_seconds and c.predicted_seconds <= cap]
                if pred:
                    ax_t.plot(
                        [ok[-1].depth] + [c.depth for c in pred],
                        [ok[-1].seconds] + [c.predicted_seconds for c in pred],
                        label=f"{name} (predicted)",
                        gid="predicted",
                        alpha=0.45,
                        mfc="none",
                        **kw | {"lw": 1.0},
                    )
                errs = [c for c in ok if c.rel_error is not None]
                zeros = [c.depth for c in errs if c.rel_error == 0]
                if len(zeros) < len(errs):
                    # a gap where the error is 0, so no line runs into the band
                    ys = [math.log10(min(c.rel_error, ERROR_CEILING)) if c.rel_error > 0 else math.nan for c in errs]
                    ax_e.plot([c.depth for c in errs], ys, label=name, gid="error", **kw)
                if zeros:
                    row = zero_rows[(engine, width)] = ZERO_BAND_TOP - 0.35 * (1 + i * len(widths) + j)
                    ax_e.plot(zeros, [row] * len(zeros), label=f"{name} (error 0)", gid="exact", **kw | {"lw": 1.0})
        if zero_rows:
            band_bottom = ZERO_BAND_TOP - 0.35 * (n_series + 1)
            ax_e.axhspan(band_bottom, ZERO_BAND_TOP, color="0.93", zorder=0)
            ax_e.axhline(ZERO_BAND_TOP, color="0.6", lw=0.8)
        else:
            band_bottom = ZERO_BAND_TOP
        eps = math.log10(float(np.finfo(np.float64).eps))
        logs = [ln.get_ydata() for ln in ax_e.get_lines() if ln.get_gid() == "error"]
        top = max([eps + 2.5] + [float(np.nanmax(y)) + 1.0 for y in logs if np.isfinite(y).any()])
        top = min(top, math.log10(ERROR_CEILING) + 0.7)
        ax_e.set_ylim(band_bottom, top)
        ax_e.axhline(eps, color="0.3", ls=(0, (1, 3)), lw=1.0)
        ax_e.annotate(
            "float64 ε = 2.2e-16",
            (0.0, eps),
            xycoords=("axes fraction", "data"),
            xytext=(4, 3),
            textcoords="offset points",
            ha="left",
            va="bottom",
            fontsize=8,
            color="0.3",
        )
        step = 3 if top - ZERO_BAND_TOP > 9 else 1
        decades = [k for k in range(-15, math.floor(top) + 1) if (k + 15) % step == 0]
        ticks = decades + ([(ZERO_BAND_TOP + band_bottom) / 2] if zero_rows else [])
        labels = [f"$10^{{{k}}}$" for k in decades] + (["exactly 0"] if zero_rows else [])
        ax_e.set_yticks(ticks, labels)
        ax_t.set_yscale("log")
        for ax in (ax_t, ax_e):
            _depth_axis(ax, self.config["depths"], fig)
            ax.grid(True, which="major", color="0.9", lw=0.6)
        ax_t.set_ylabel("seconds per gradient")
        ax_t.set_title("time vs depth (faint, hollow markers: predicted, not run)", fontsize=11)
        ax_e.set_ylabel("relative error vs the exact gradient")
        ax_e.set_title(f"accuracy (errors above 1e{math.log10(ERROR_CEILING):.0f} drawn at the top)", fontsize=11)
        handles = [
            Line2D([], [], color=_engine_style(e, i)[0], ls=_engine_style(e, i)[1], lw=1.6)
            for i, e in enumerate(engines)
        ]
        handles += [
            Line2D([], [], color="0.2", ls="none", marker=WIDTH_MARKERS[j % len(WIDTH_MARKERS)], ms=6)
            for j in range(len(widths))
        ]
        names = engines + [f"width {w}" for w in widths]
        ncol = min(len(names), 8)  # with peers the legend takes two rows, not a row wider than the figure
        rows = -(-len(names) // ncol)
        fig.legend(handles, names, loc="lower center", ncol=ncol, frameon=False, fontsize=10, handlelength=3.2)
        fig.tight_layout(rect=(0, 0.035 + 0.035 * rows, 1, 1))
        if path is not None:
            fig.savefig(path, dpi=110)
            plt.close(fig)
        return fig


ENGINE_STYLES = {
    "forward": ("tab:blue", "-"),
    "reverse": ("tab:orange", "--"),
    "symbolic": ("tab:green", "-."),
    "numeric": ("tab:red", ":"),
    "paths": ("tab:purple", (0, (7, 2, 1, 2, 1, 2))),
    "jit": ("tab:brown", (0, (3, 1))),
    # the peers (adkit bench --peers): colours and dash patterns of their own
    "torch": ("tab:pink", (0, (5, 1, 1, 1))),
    "jax": ("tab:gray", (0, (1, 1))),
    "autograd": ("tab:olive", (0, (4, 2))),
    "micrograd": ("tab:cyan", (0, (2, 2, 6, 2))),
}
WIDTH_MARKERS = ("o", "s", "^", "D", "v", "P", "X")
ERROR_CEILING = 1e3  # relative errors above this (a wrong derivative) are drawn at the ceiling
ZERO_BAND_TOP = -17.0  # log10: below every nonzero float64 relative error (>= 2**-53 ~ 1.1e-16)


def _engine_style(engine: str, index: int) -> tuple[str, Any]:
    """(colour, line style) of an engine in the bench plot."""
    if engine in ENGINE_STYLES:
        return ENGINE_STYLES[engine]
    styles = list(ENGINE_STYLES.values())
    return f"C{index % 10}", styles[index % len(styles)][1]


def _depth_axis(ax: Any, depths: Sequence[int], fig: Any) -> None:
    """Depth on the x axis: logarithmic where the depths span a decade or more, labelled
    with the depths themselves (not 10^k), thinned so that no two labels overlap."""
    import matplotlib.pyplot as plt
    from matplotlib.font_manager import FontProperties
    from matplotlib.ticker import NullLocator

    depths = sorted(set(int(d) for d in depths))
    log = len(depths) > 1 and depths[-1] >= 10 * depths[0]
    if log:
        ax.set_xscale("log")
    ax.set_xlim(depths[0] / 1.25 if log else depths[0] - 0.5, depths[-1] * 1.25 if log else depths[-1] + 0.5)
    scale = math.log10 if log else float
    lo, hi = (scale(v) for v in ax.get_xlim())
    axis_inches = ax.get_position().width * fig.get_figwidth()
    per_inch = (hi - lo) / axis_inches
    char_inches = 0.6 * FontProperties(size=plt.rcParams["xtick.labelsize"]).get_size_in_points() / 72
    kept: list[int] = []
    for d in depths:
        # room between two label centres: half of each label, and a gap of two characters
        room = char_inches * ((len(str(d)) + len(str(kept[-1]))) / 2 + 2) * per_inch if kept else 0.0
        if not kept or scale(d) - scale(kept[-1]) >= room:
            kept.append(d)
        elif d == depths[-1]:
            kept[-1] = d  # the deepest graph always gets its label
    ax.set_xticks(kept, [str(d) for d in kept])
    ax.xaxis.set_minor_locator(NullLocator())
    ax.set_xlabel("depth (layers)")


@contextmanager
def _text_output(path: str | os.PathLike[str] | IO[str]) -> Iterator[IO[str]]:
    """An open text stream: "-" is stdout, a stream is used as is, a path is opened."""
    import sys

    if isinstance(path, str) and path == "-":
        yield sys.stdout
        sys.stdout.flush()
    elif hasattr(path, "write"):
        yield path  # type: ignore[misc]
    else:
        with open(path, "w", newline="") as fh:  # type: ignore[arg-type]
            yield fh


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


def environment_info(peers: Sequence[str] = ()) -> dict[str, Any]:
    """Versions and machine of a run; with the versions of the peers timed, if any."""
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
    if peers:
        info["peers"] = peer_versions(peers)
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
def time_limit(seconds: float):
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
    ok = [c for c in done if c.measured and c.seconds]
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
                g = gradient_function(engine, spec.f)(*spec.args)
        except Exception as exc:  # noqa: BLE001
            problems.append(f"{engine}: {type(exc).__name__}: {exc}")
            continue
        err = _rel_error(g, spec.exact_grad)
        if err is None or err > AGREEMENT_RTOL.get(engine, 1e-8):
            problems.append(f"{engine}: gradient {g!r}, exact {spec.exact_grad!r} (relative error {err})")
    if problems:
        raise BenchError(f"engines disagree on {spec.name}, so nothing is timed:\n  " + "\n  ".join(problems))


def gradient_function(engine: str, f: Callable[..., Any]) -> Callable[..., Any]:
    """What the harness times for `engine`: grad(f) through that engine, and for "jit"
    ad.jit(ad.grad(f)) (the reverse engine's rules, recorded once and replayed)."""
    if engine == JIT:
        from adkit.jit import jit

        return jit(grad(f))
    if engine in PEERS:
        return PEERS[engine][1](f)
    return grad(f, engine=engine)


def _torch_gradient(f: Callable[..., Any]) -> Callable[[float], float]:
    """torch.autograd.grad of f at a fresh float64 leaf: a new graph per call, as adkit's grad
    builds a new tape per call (no .grad accumulated from one call to the next)."""
    import torch

    def by_torch(w: float) -> float:
        x = torch.tensor(w, dtype=torch.float64, requires_grad=True)
        (g,) = torch.autograd.grad(f(x), x)
        return float(g)

    return by_torch


def _jax_gradient(f: Callable[..., Any]) -> Callable[[float], float]:
    """jax.jit(jax.grad(f)) in float64 (in float32 every cell would be "inaccurate"). The first
    call traces and compiles (the "first call" column); `run` turns float64 on for the whole
    sweep, so a replay pays no set-up; called outside `run` with float64 off, each call turns
    it on for itself (jax.enable_x64), leaving the user's global setting as it was."""
    import jax

    enable_x64 = getattr(jax, "enable_x64", None)
    if enable_x64 is None:  # older jax has it only here
        from jax.experimental import enable_x64

    compiled = jax.jit(jax.grad(f))

    def by_jax(w: float) -> float:
        if jax.config.jax_enable_x64:
            return float(compiled(w))
        with enable_x64(True):
            return float(compiled(w))

    by_jax.compiles_in_background = True  # type: ignore[attr-defined]  (see _interrupts_held)
    return by_jax


def _jax_float64(peers: Sequence[str]) -> Callable[[], None]:
    """float64 in jax for a sweep that times it; returns what puts the user's setting back."""
    if "jax" not in peers:
        return lambda: None
    import jax

    before = jax.config.jax_enable_x64
    jax.config.update("jax_enable_x64", True)
    return lambda: jax.config.update("jax_enable_x64", before)


def _autograd_gradient(f: Callable[..., Any]) -> Callable[[float], float]:
    """HIPS autograd's grad (a new trace per call, like adkit's reverse engine)."""
    import autograd

    g = autograd.grad(f)
    return lambda w: float(g(w))


def _micrograd_gradient(f: Callable[..., Any]) -> Callable[[float], float]:
    """micrograd's Value graph and .backward(), fresh per call."""
    from micrograd.engine import Value

    def by_micrograd(w: float) -> float:
        x = Value(w)
        f(x).backward()
        return float(x.grad)

    return by_micrograd


# Other AD libraries `adkit bench --peers` can time on the same programs (never dependencies
# of adkit): name -> (module to import, gradient of a scalar f of one float). jax is jit'ed, so
# its first call (trace + XLA compile) is in the "first call" column, like adkit's jit.
PEERS: dict[str, tuple[str, Callable[[Callable[..., Any]], Callable[[float], float]]]] = {
    "torch": ("torch", _torch_gradient),
    "jax": ("jax", _jax_gradient),
    "autograd": ("autograd", _autograd_gradient),
    "micrograd": ("micrograd.engine", _micrograd_gradient),
}


def peer_versions(peers: Sequence[str]) -> dict[str, str]:
    """The installed version of each peer timed (its distribution's metadata, else "unknown")."""
    from importlib import metadata

    versions = {}
    for name in peers:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = "unknown"
    return versions


def importable_peers(peers: Sequence[str]) -> tuple[list[str], list[str]]:
    """(the peers that import here, a note for each one that does not); BenchError for a
    name that is not a known peer."""
    import importlib

    found, notes = [], []
    for name in peers:
        if name not in PEERS:
            raise BenchError(f"unknown peer {name!r}; choose from {', '.join(PEERS)}")
        try:
            with _interrupts_held():  # importing torch or jax swallows a Ctrl-C (seen): held, then raised
                importlib.import_module(PEERS[name][0])
        except Exception as exc:  # noqa: BLE001 (a broken install is a note too, not a crash)
            notes.append(f"{name} not timed: it does not import here ({type(exc).__name__}: {exc}); pip install {name}")
            continue
        found.append(name)
    return found, notes


def default_engines() -> list[str]:
    """What `run(engines=None)` and `adkit bench` time: every available engine, then jit."""
    return available_engines() + [JIT]


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
    peers: Sequence[str] = (),
) -> BenchResult:
    """Time every engine on every (width, depth) graph of the family; fit the growth.

    budget: seconds per gradient beyond which an engine is not run on larger depths
    (those cells are reported as skipped, with the predicted time). timeout: a hard
    limit per cell. progress(cell, done, total) is called after each cell. Ctrl-C
    (KeyboardInterrupt) raises BenchInterrupted, whose `.result` has the finished cells.
    peers: other AD libraries (PEERS) timed after the engines, as rows of their own; one
    that does not import is a note in `result.config["notes"]`, not an error.
    """
    installed = default_engines()
    engines = installed if engines is None else list(engines)
    for e in engines:
        if e not in (*ENGINES, JIT):
            raise BenchError(f"unknown engine {e!r}; choose from {', '.join((*ENGINES, JIT))}")
        if e not in installed:
            raise BenchError(f"engine {e!r} is not available in this installation (available: {', '.join(installed)})")
    if family not in FAMILIES:
        raise BenchError(f"unknown family {family!r}; choose from {', '.join(FAMILIES)}")
    checked = engines  # the peers are judged per cell (rel error), not required to agree first
    found, notes = importable_peers(peers)
    engines = engines + [p for p in found if p not in engines]
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
    cells: list[Cell] = []
    restore_jax = _jax_float64(found)
    gc.collect()
    gc.freeze()  # what exists now (torch's and jax's millions of objects) is not traversed by each cell's collection
    try:
        for width in widths:
            check_agreement(checked, make(depth=depths[0], width=width) if family != "chain" else make(depth=depths[0]))
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
                    first_call = _predict_first_call(history, cell.edges)
                    slow_first = first_call is not None and first_call > timeout
                    if over_budget or (predicted is not None and predicted > timeout) or slow_first:
                        over_budget = True
                        cell.status = "skipped"
                        cell.predicted_seconds = predicted
                        cell.message = (
                            f"first call (compile) predicted ~{format_seconds(first_call)}, over the {timeout:g} s limit"
                            if slow_first
                            else "over the time budget"
                        )
                    elif spec.overflow and engine != "symbolic":
                        cell.status = "overflow"
                        cell.message = f"exact gradient ~1e{spec.exact_grad_log10:.0f} is beyond float64"
                    else:
                        over_budget = _measure_cell(cell, spec, timeout, budget, min_time, max_repeats)
                    history.append(cell)
                    cells.append(cell)
                    done_count += 1
                    if progress is not None:
                        progress(cell, done_count, total)
    except KeyboardInterrupt:  # Ctrl-C: keep what was measured
        config = _config(engines, widths, depths, family, budget, timeout, min_time, interrupted=True)
        raise BenchInterrupted(_result(cells, config | {"peers": list(peers), "notes": notes})) from None
    finally:
        gc.unfreeze()
        restore_jax()
    config = _config(engines, widths, depths, family, budget, timeout, min_time, interrupted=False)
    return _result(cells, config | {"peers": list(peers), "notes": notes})


def _measure_cell(cell: Cell, spec: GraphSpec, timeout: float, budget: float, min_time: float, repeats: int) -> bool:
    """Time one cell and judge its accuracy (in place); True when the engine should stop
    growing (over the budget, or cut off by the hard timeout)."""
    from adkit.engines import gc_paused
    from adkit.engines.paths import paths_budget

    first_result = None
    gc.collect()  # the garbage of earlier cells is not collected on this one's time
    try:
        g = gradient_function(cell.engine, spec.f)
        # the collector off while timing, as timeit does: a collection lands on whichever engine
        # allocates then (with torch and jax loaded: micrograd 20 ms per call, 1 s once)
        with time_limit(timeout), paths_budget(10**12), gc_paused():
            if cell.engine == JIT or cell.engine in PEERS:  # the first call records / compiles apart
                start = time.perf_counter()
                with _interrupts_held() if getattr(g, "compiles_in_background", False) else nullcontext():
                    first_result = g(*spec.args)
                cell.first_call_seconds = time.perf_counter() - start
            result, times = _measure(lambda: g(*spec.args), min_time, repeats)
    except TimeoutError:
        cell.status = "timeout"
        cell.message = f"over the {timeout:g} s hard limit"
        if cell.first_call_seconds is None and getattr(g, "compiles_in_background", False):
            cell.message += " (its compile cannot be stopped midway: it ran to the end first)"
        return True
    except Exception as exc:  # noqa: BLE001 (a failing cell is reported, the run goes on)
        cell.status = "failed"
        cell.message = f"{type(exc).__name__}: {str(exc).splitlines()[0][:120]}"
        return False
    cell.seconds = statistics.median(times)
    cell.spread = (min(times), max(times))
    cell.repeats = len(times)
    cell.rel_error = _rel_error(result, spec.exact_grad)
    if first_result is not None and cell.rel_error is not None:  # the recording call is judged too
        first_error = _rel_error(first_result, spec.exact_grad)
        if not first_error <= cell.rel_error:  # the larger error, and nan wins
            cell.rel_error = first_error
    cell.expected_error = expected_accuracy(cell.engine, cell.nodes, cell.edges)
    if getattr(g, "eager_reason", None):  # jit could not compile this graph: the time is eager adkit's
        cell.message = f"ran eagerly: {g.eager_reason}"
    if cell.rel_error is not None and not cell.rel_error <= cell.expected_error:  # nan is inaccurate too
        cell.status = "inaccurate"
        cell.message = f"relative error above the expected {cell.expected_error:.1e}"
    return cell.seconds > budget


@contextmanager
def _interrupts_held() -> Iterator[None]:
    """Ctrl-C and the cell's time limit held until the block ends, then raised.

    Around a peer's import (torch's and jax's swallow a Ctrl-C that arrives during it) and
    around jax's first call: jax compiles in a thread of its own while the caller waits, and
    a signal that interrupts the wait leaves the compile running; the interpreter then
    crashes at exit (a segmentation fault, seen with jax 0.10.2). So a compile runs to its
    end; cells whose compile is predicted to exceed the time limit are skipped before it
    starts (_predict_first_call).
    """
    if not _is_main_thread():
        yield
        return
    held: list[int] = []
    previous = {s: signal.signal(s, lambda signum, frame: held.append(signum)) for s in (signal.SIGINT, signal.SIGALRM)}
    try:
        yield
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)
    if signal.SIGINT in held:
        raise KeyboardInterrupt
    if signal.SIGALRM in held:
        raise TimeoutError


def _predict_first_call(done: list[Cell], edges: int) -> float | None:
    """The first call (record or trace, and compile) on a graph of `edges` edges, scaled
    quadratically from the largest one measured: a bound, not a fit (adkit's jit grows about
    linearly, jax's XLA compile about as edges^1.6 on these graphs). Only from a first call of
    at least FIRST_CALL_SCALES seconds: below, a fixed set-up cost (torch's, jax's ~0.1 s)
    dominates it and would not scale. None when there is none such."""
    firsts = [c for c in done if c.first_call_seconds is not None and c.first_call_seconds >= FIRST_CALL_SCALES]
    if not firsts:
        return None
    last = firsts[-1]
    return last.first_call_seconds * (edges / max(last.edges, 1)) ** 2


FIRST_CALL_SCALES = 0.5


def _config(
    engines: Sequence[str],
    widths: Sequence[int],
    depths: Sequence[int],
    family: str,
    budget: float,
    timeout: float,
    min_time: float,
    interrupted: bool,
) -> dict[str, Any]:
    return {
        "engines": list(engines),
        "widths": list(widths),
        "depths": list(depths),
        "family": family,
        "budget": budget,
        "timeout": timeout,
        "min_time": min_time,
        "interrupted": interrupted,
    }


def _result(cells: list[Cell], config: dict[str, Any]) -> BenchResult:
    fits = [
        _fit(engine, width, [c for c in cells if c.engine == engine and c.width == width])
        for width in config["widths"]
        for engine in config["engines"]
    ]
    return BenchResult(cells, fits, config, environment_info([e for e in config["engines"] if e in PEERS]))


def _fit(engine: str, width: int, cells: list[Cell]) -> Fit:
    """The growth verdict over the measured depths from a quarter of the largest one on
    (at least MIN_GROWTH_POINTS): the growth is about large graphs, and on the smallest
    ones a per-call overhead flattens every engine's time; a factor of 4 in depth still
    separates d -> c**d from d -> d**p (over depths 12-20 both fit any timing). Cells
    that take less than 4x the smallest cell's time are left out too: their time is mostly
    the per-call overhead (the vectorised paths engine spends 0.1-0.5 ms of its 3 ms at
    2**20 paths on set-up), which no growth model describes."""
    measured = sorted((c for c in cells if c.measured and c.seconds), key=lambda c: c.depth)
    top = measured[-1].depth if measured else 0
    floor = 4 * min((c.seconds for c in measured), default=0.0)
    larger = [c for c in measured if 4 * c.depth >= top and c.seconds >= floor]
    larger = measured[-max(MIN_GROWTH_POINTS, len(larger)) :]
    g = classify_growth([c.depth for c in larger], [c.edges for c in larger], [c.seconds for c in larger])
    return Fit(
        engine, width, g.per_layer, g.exponent, g.r2_polynomial, len(measured), g.r2_exponential, g.verdict, g.reason
    )


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
  adkit bench --peers torch,jax,autograd,micrograd   also time those that are installed
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
    p.add_argument(
        "--engines",
        default=None,
        help="comma-separated engines among forward,reverse,symbolic,numeric,paths,jit (default: all)",
    )
    p.add_argument(
        "--peers",
        default="",
        help=f"other AD libraries to time on the same graphs, where installed: {','.join(PEERS)} (default none)",
    )
    p.add_argument("--family", default="product", choices=sorted(FAMILIES), help="graph family (default product)")
    p.add_argument(
        "--budget",
        type=float,
        default=1.0,
        help="seconds per gradient beyond which an engine stops growing (default 1)",
    )
    p.add_argument("--timeout", type=float, default=20.0, help="hard limit per cell in seconds (default 20)")
    p.add_argument("--min-time", type=float, default=0.2, help="minimum measured time per cell (default 0.2 s)")
    p.add_argument(
        "--json", metavar="FILE", help="write every cell, the fits and the environment as JSON ('-': stdout)"
    )
    p.add_argument("--csv", metavar="FILE", help="write every cell as CSV ('-': stdout; the table goes to stderr)")
    p.add_argument("--plot", metavar="FILE", help="write a PNG plot: time and error vs depth")
    p.set_defaults(run=main)


PLOT_FORMATS = (".png", ".svg", ".pdf", ".jpg", ".jpeg", ".eps", ".ps", ".tif", ".tiff", ".webp")


def check_outputs(json_path: str | None, csv_path: str | None, plot_path: str | None) -> None:
    """Refuse, before anything runs, output paths that cannot be written (ValueError)."""
    import importlib.util

    given = {flag: path for flag, path in (("--json", json_path), ("--csv", csv_path), ("--plot", plot_path)) if path}
    if list(given.values()).count("-") > 1:
        raise ValueError("only one of --json and --csv can write to stdout ('-')")
    seen: dict[str, str] = {}
    for flag, path in given.items():
        if path == "-":
            if flag == "--plot":
                raise ValueError("--plot -: a picture cannot go to stdout; give a file name like bench.png")
            continue
        full = os.path.abspath(path)
        folder = os.path.dirname(full)
        if full in seen:
            raise ValueError(f"{seen[full]} and {flag} both write {path}: give each its own file")
        seen[full] = flag
        if os.path.isdir(full):
            raise ValueError(f"{flag} {path}: is a folder; give a file name")
        if not os.path.exists(folder):
            raise ValueError(f"{flag} {path}: cannot write it: the folder {folder} does not exist")
        if not os.path.isdir(folder):
            raise ValueError(f"{flag} {path}: cannot write it: {folder} is not a folder")
        if not os.access(folder, os.W_OK | os.X_OK) or (os.path.exists(full) and not os.access(full, os.W_OK)):
            raise ValueError(f"{flag} {path}: cannot write it: permission denied")
    if plot_path and plot_path != "-":
        ext = os.path.splitext(plot_path)[1].lower()
        if ext and ext not in PLOT_FORMATS:
            raise ValueError(
                f"--plot {plot_path}: unknown picture format {ext!r}; use one of {', '.join(PLOT_FORMATS)}"
            )
        if importlib.util.find_spec("matplotlib") is None:
            raise ValueError("--plot needs matplotlib, which is not installed (pip install matplotlib)")


def main(args: Any) -> int:
    """Run the sweep with a progress bar on stderr; the table and the fits on stdout
    (on stderr when --csv - or --json - takes stdout). Ctrl-C stops the sweep: the
    finished cells are shown and written, and the exit code is 130."""
    import sys

    from rich.console import Console
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn
    from rich.table import Table

    err = Console(stderr=True)
    try:
        widths = parse_sizes(args.width)
        depths = parse_sizes(args.depth) if args.depth else list(DEFAULT_DEPTHS)
        engines = [e.strip() for e in args.engines.split(",") if e.strip()] if args.engines else None
        peers = [p.strip() for p in (getattr(args, "peers", "") or "").split(",") if p.strip()]
        if args.budget <= 0 or args.timeout <= 0 or args.min_time < 0:
            raise ValueError("--budget and --timeout must be positive, --min-time non-negative")
        check_outputs(args.json, args.csv, args.plot)
    except ValueError as exc:
        print(f"adkit bench: {exc}", file=sys.stderr)
        return 2
    interrupted = False
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
                peers=peers,
            )
        except BenchError as exc:
            print(f"adkit bench: {exc}", file=sys.stderr)
            return 1 if "disagree" in str(exc) else 2
        except BenchInterrupted as exc:
            result, interrupted = exc.result, True
        except KeyboardInterrupt:  # before the sweep began (importing the peers takes seconds)
            print("adkit bench: interrupted before any cell was measured", file=sys.stderr)
            return 130
    stdout_taken = "-" in (args.json, args.csv)
    out = Console(stderr=stdout_taken, soft_wrap=False, width=max(120, Console().width))
    header, body = result.rows()
    title = f"adkit bench: {args.family} graphs" + (
        " (interrupted: the cells finished before Ctrl-C)" if interrupted else ""
    )
    table = Table(title=title, header_style="bold")
    for h in header:
        table.add_column(
            h,
            justify="right" if h in ("width", "depth", "edges", "paths", "time", "first call", "rel error") else "left",
        )
    for row in body:
        table.add_row(*row)
    out.print(table)
    out.print("growth fits:")
    for f in result.fits:
        out.print("  " + f.sentence(), soft_wrap=True, markup=False, highlight=False)
    for note in result.config.get("notes", []):
        out.print("note: " + note, soft_wrap=True, markup=False, highlight=False)
    code = 130 if interrupted else 0
    for path, write in ((args.json, result.to_json), (args.csv, result.to_csv), (args.plot, result.plot)):
        if not path:
            continue
        if write == result.plot and not any(c.measured for c in result.cells):
            err.print(f"not writing {path}: no cell was measured")
            continue
        try:
            write(path)
        except OSError as exc:
            print(f"adkit bench: cannot write {path}: {exc.strerror or exc}", file=sys.stderr)
            code = code or 1
            continue
        if path != "-":
            err.print(f"wrote {path}")
    if interrupted:
        print(f"adkit bench: interrupted after {len(result.cells)} cell(s)", file=sys.stderr)
    return code
