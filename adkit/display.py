"""Text / HTML / LaTeX tables and graph drawing (matplotlib imported lazily, here only).

The evaluation traces follow the lecture slides [RAB]: the forward evaluation trace
(a1 = w0, a4 = a2 * a3, ...), the tangent trace for one seeded input
(da4 = a3·da2 + a2·da3, with numbers) and the reverse adjoint trace
(abar5 = abar6·cos(a5) + abar7·(-sin(a5)), with numbers).
"""

from __future__ import annotations

import html
import io
import math
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from adkit.formatting import format_count as format_count  # re-exported for display.format_count users
from adkit.formatting import format_seconds as format_seconds
from adkit.graph import Graph, Node, local_jacobians

# --- tables -------------------------------------------------------------------------------


def text_table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """An aligned plain-text table, laid out by rich (imported here, lazily)."""
    try:
        from rich import box
        from rich.console import Console
        from rich.table import Table as RichTable
        from rich.text import Text
    except ImportError:  # pragma: no cover - rich is a dependency; plain layout as a fallback
        return _plain_table(header, rows)
    table = RichTable(box=box.SIMPLE_HEAD, show_edge=False, pad_edge=False, header_style="")
    for h in header:
        table.add_column(Text(str(h)), no_wrap=True)
    for r in rows:
        table.add_row(*[Text(str(c)) for c in r])  # Text: cell contents are never read as markup
    buf = io.StringIO()
    Console(file=buf, width=100_000, color_system=None, emoji=False, highlight=False).print(table)
    return "\n".join(line.rstrip() for line in buf.getvalue().splitlines() if line.strip())


def _plain_table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    cols = [list(map(str, col)) for col in zip(header, *rows)] if rows else [[h] for h in header]
    widths = [max(len(c) for c in col) for col in cols]
    line = "  ".join(h.ljust(w) for h, w in zip(header, widths))
    sep = "  ".join("-" * w for w in widths)
    body = ["  ".join(str(c).ljust(w) for c, w in zip(r, widths)) for r in rows]
    return "\n".join([line, sep, *body])


def html_table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    head = "".join(f"<th>{html.escape(str(h))}</th>" for h in header)
    body = "".join("<tr>" + "".join(f"<td>{html.escape(str(c))}</td>" for c in r) + "</tr>" for r in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def latex_table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    def esc(s: str) -> str:
        return str(s).replace("_", r"\_").replace("·", r"\cdot ").replace("&", r"\&")

    lines = [r"\begin{tabular}{" + "l" * len(header) + "}", " & ".join(esc(h) for h in header) + r" \\ \hline"]
    lines += [" & ".join(esc(c) for c in r) + r" \\" for r in rows]
    lines.append(r"\end{tabular}")
    return "\n".join(lines)


@dataclass
class Table:
    """A titled table that prints as text and renders as HTML or LaTeX."""

    title: str
    header: list[str]
    rows: list[list[str]]

    def __str__(self) -> str:
        return f"{self.title}\n{text_table(self.header, self.rows)}"

    def _repr_html_(self) -> str | None:
        try:
            return f"<p><b>{html.escape(self.title)}</b></p>" + html_table(self.header, self.rows)
        except Exception:  # noqa: BLE001 (a display hook never raises)
            return None

    def to_latex(self) -> str:
        return latex_table(self.header, self.rows)

    def to_dict(self) -> dict[str, Any]:
        return {"title": self.title, "columns": self.header, "rows": self.rows}


# --- evaluation traces -------------------------------------------------------------------------


def _num(v: Any) -> str:
    a = np.asarray(v)
    if a.ndim == 0:
        return f"{float(a):.6g}"
    return np.array2string(a, precision=4, separator=", ", threshold=6)


def _arg_text(graph: Graph, node: Node, pos: int) -> str:
    p = node.parents[pos]
    return graph.nodes[p].name if p is not None else _num(node.consts[pos])


def definition(graph: Graph, node: Node) -> str:
    """`a4 = a2 * a3`, `a6 = sin(a5)`, `a1 = w0` for a node."""
    if node.op is None:
        return f"{node.name} = {node.label}"
    args = [_arg_text(graph, node, i) for i in range(len(node.parents))]
    infix = {"add": "+", "sub": "-", "mul": "*", "div": "/", "pow": "**", "matmul": "@"}
    if node.op.name in infix and len(args) == 2:
        return f"{node.name} = {args[0]} {infix[node.op.name]} {args[1]}"
    if node.op.name == "neg":
        return f"{node.name} = -{args[0]}"
    params = "".join(f", {k}={v!r}" for k, v in node.params.items() if k != "index")
    if node.op.name == "getitem":
        return f"{node.name} = {args[0]}[{node.params.get('index')!r}]"
    return f"{node.name} = {node.op.name}({', '.join(args)}{params})"


def partial_text(graph: Graph, node: Node, pos: int) -> str:
    """The rule for d node / d input `pos`, with argument names replaced by node names."""
    op = node.op
    if op is None or not isinstance(op.partials, tuple) or op.partials[pos] is None:
        return f"∂{node.name}/∂{_arg_text(graph, node, pos)}"
    names = {a: _arg_text(graph, node, i) for i, a in enumerate(op.args)}
    names["out"] = node.name
    for k, v in node.params.items():
        names[k] = repr(v)
    text = re.sub(r"\b[A-Za-z_]\w*\b", lambda m: names.get(m.group(0), m.group(0)), op.partials[pos])
    return text if re.fullmatch(r"[\w.]+(\([^()]*\))?", text) else f"({text})"


def _z_number(z: Any) -> str:
    if np.ndim(z) != 0:
        return "J"
    text = _num(z)
    return f"({text})" if text.startswith("-") else text


def _z_short(z: Any) -> str:
    """z(i, j) for a drawing: 4 significant digits, J for a Jacobian block."""
    return f"{float(z):.4g}" if np.ndim(z) == 0 else "J"


def _paren(text: str) -> str:
    return f"({text})" if text.startswith("-") else text


def _times(factor: str, tangent: str, bar_first: bool = False) -> str:
    """`a3·da2` (or `a4bar·a3`), but `da4` for a factor 1 and `-da4` for -1, as on the slides."""
    if factor in ("1", "1.0", "(1.0)"):
        return tangent
    if factor in ("-1", "-1.0", "(-1.0)"):
        return f"-{tangent}"
    return f"{tangent}·{factor}" if bar_first else f"{factor}·{tangent}"


def evaluation_trace(graph: Graph) -> Table:
    """The forward evaluation trace: one row per node, its definition and value."""
    rows = [[node.name, definition(graph, node), _num(node.value)] for node in graph.nodes]
    return Table("forward evaluation trace", ["node", "definition", "value"], rows)


def tangent_trace(graph: Graph, seed: str | int = 0) -> Table:
    """Forward mode by hand: seed d(input) = 1, then da_j = sum_i z(i, j) da_i."""
    inputs = graph.inputs
    if isinstance(seed, str):
        by_label = {graph.nodes[i].label: i for i in inputs}
        if seed not in by_label:
            raise ValueError(f"no input named {seed!r}; inputs are {', '.join(by_label)}")
        seed_id = by_label[seed]
    else:
        seed_id = inputs[seed]
    dots: list[Any] = [0.0] * len(graph.nodes)
    rows = []
    jac_cache = {}
    for node in graph.nodes:
        if node.op is None:
            dots[node.id] = np.ones_like(np.asarray(node.value, dtype=float)) if node.id == seed_id else 0.0
            if np.ndim(node.value) == 0:
                dots[node.id] = float(np.asarray(dots[node.id]))
            rows.append(
                [f"d{node.name}", f"d{node.name} = {1 if node.id == seed_id else 0} (seed)", _num(dots[node.id])]
            )
            continue
        jacs = jac_cache[node.id] = local_jacobians(node, graph.nodes)
        terms, numbers, total = [], [], 0.0
        for pos, p in enumerate(node.parents):
            if p is None:
                continue
            z = jacs[pos]
            src = graph.nodes[p].name
            terms.append(_times(partial_text(graph, node, pos), f"d{src}"))
            numbers.append(f"{_z_number(z)}·{_paren(_num(dots[p]))}")
            contrib = (
                z * dots[p]
                if np.ndim(z) == 0
                else (np.asarray(z) @ np.asarray(dots[p], dtype=float).reshape(-1)).reshape(np.shape(node.value))
            )
            total = total + contrib
        dots[node.id] = total
        rows.append(
            [f"d{node.name}", f"d{node.name} = " + " + ".join(terms) + " = " + " + ".join(numbers), _num(total)]
        )
    title = f"tangent trace (forward mode), seed d{graph.nodes[seed_id].label} = 1"
    return Table(title, ["tangent", "rule and numbers", "value"], rows)


def adjoint_trace(graph: Graph) -> Table:
    """Reverse mode by hand: abar_o = 1, abar_i = sum over children j of abar_j z(i, j)."""
    if graph.output is None:
        return Table("adjoint trace (reverse mode)", ["adjoint", "rule and numbers", "value"], [])
    bars: list[Any] = [0.0] * len(graph.nodes)
    out = graph.output
    bars[out] = np.ones_like(np.asarray(graph.nodes[out].value, dtype=float))
    if np.ndim(bars[out]) == 0:
        bars[out] = 1.0
    children: list[list[tuple[Node, int]]] = [[] for _ in graph.nodes]
    for node in graph.nodes:
        for pos, p in enumerate(node.parents):
            if p is not None:
                children[p].append((node, pos))
    jacs = {node.id: local_jacobians(node, graph.nodes) for node in graph.nodes if node.op is not None}
    rows = []
    for i in range(len(graph.nodes) - 1, -1, -1):
        node = graph.nodes[i]
        if i == out:
            rows.append([f"{node.name}bar", f"{node.name}bar = 1 (seed)", _num(bars[i])])
            continue
        terms, numbers = [], []
        total: Any = 0.0
        for child, pos in children[i]:
            z = jacs[child.id][pos]
            terms.append(_times(partial_text(graph, child, pos), f"{child.name}bar", bar_first=True))
            numbers.append(f"{_paren(_num(bars[child.id]))}·{_z_number(z)}")
            if np.ndim(z) == 0:
                contrib = bars[child.id] * z
            else:
                contrib = (np.asarray(bars[child.id], dtype=float).reshape(-1) @ np.asarray(z)).reshape(
                    np.shape(node.value)
                )
            total = total + contrib
        bars[i] = total
        rule = " + ".join(terms) if terms else "0 (does not reach the output)"
        rows.append(
            [
                f"{node.name}bar",
                f"{node.name}bar = {rule}" + (" = " + " + ".join(numbers) if numbers else ""),
                _num(total),
            ]
        )
    return Table("adjoint trace (reverse mode), seed on the output", ["adjoint", "rule and numbers", "value"], rows)


# --- drawing -----------------------------------------------------------------------------------------

MAX_DRAWN_NODES = 60  # Jupyter's display(G) draws graphs up to this size; larger ones get text only
NODE_FONT = 9.0  # points
EDGE_FONT = 8.0
# highlighted paths differ by line style as well as colour (readable in print and by the colour-blind)
PATH_STYLES = (
    ("tab:red", "-"),
    ("tab:blue", "--"),
    ("tab:green", "-."),
    ("tab:purple", ":"),
    ("tab:orange", (0, (6, 2, 1, 2, 1, 2))),
)


def _layout(graph: Graph) -> dict[int, tuple[float, float]]:
    """Nodes in columns by longest distance from an input; within a column, ordered by the
    mean height of their parents (one barycentre sweep, which untangles most lecture graphs)."""
    level = [0] * len(graph.nodes)
    parents: list[list[int]] = [[] for _ in graph.nodes]
    for e in sorted(graph.edges, key=lambda e: e.dst):
        level[e.dst] = max(level[e.dst], level[e.src] + 1)
        parents[e.dst].append(e.src)
    by_level: dict[int, list[int]] = {}
    for i, lv in enumerate(level):
        by_level.setdefault(lv, []).append(i)
    pos: dict[int, tuple[float, float]] = {}
    for lv in sorted(by_level):
        ids = by_level[lv]
        if lv > 0:
            mean_y = {i: float(np.mean([pos[p][1] for p in parents[i]])) if parents[i] else 0.0 for i in ids}
            ids = sorted(ids, key=lambda i: -mean_y[i])  # stable: ties keep evaluation order
        for k, i in enumerate(ids):
            pos[i] = (float(lv), (len(ids) - 1) / 2.0 - k)
    return pos


def _figure_size(pos: dict[int, tuple[float, float]], legend: bool) -> tuple[float, float]:
    """Inches: about 1.5 per column and 1 per row of the layout, within slide-friendly bounds."""
    n_levels = 1 + int(max((p[0] for p in pos.values()), default=0))
    n_rows = 1 + int(max((p[1] for p in pos.values()), default=0) - min((p[1] for p in pos.values()), default=0))
    return min(max(6.0, 1.5 * n_levels + 1.0), 18.0), min(max(2.8, 1.0 * n_rows + 0.9 + 0.3 * legend), 9.0)


def _node_text(node: Node) -> str:
    from adkit.graph import _fmt

    name = node.op.label if node.op is not None and node.label == node.op.name else node.label
    return f"{name}\n{_fmt(node.value)}"


def _text_size_points(text: str, fontsize: float) -> tuple[float, float]:
    """Approximate width and height of `text` in points (DejaVu Sans averages ~0.6 em per char)."""
    lines = text.split("\n")
    return max(len(line) for line in lines) * 0.6 * fontsize, len(lines) * 1.2 * fontsize


def _box_exit(
    center: tuple[float, float], half: tuple[float, float], toward: tuple[float, float]
) -> tuple[float, float]:
    """Where the segment from a box's centre toward a point leaves the box (data coords)."""
    dx, dy = toward[0] - center[0], toward[1] - center[1]
    t = min(half[0] / abs(dx) if dx else math.inf, half[1] / abs(dy) if dy else math.inf, 1.0)
    return center[0] + t * dx, center[1] + t * dy


def _overlap(a: tuple[float, float, float, float], b: tuple[float, float, float, float]) -> bool:
    """Whether two (left, bottom, width, height) boxes intersect."""
    return a[0] < b[0] + b[2] and b[0] < a[0] + a[2] and a[1] < b[1] + b[3] and b[1] < a[1] + a[3]


def _highlighted_paths(graph: Graph, highlight: Sequence[int] | None, top_k: int | None) -> list[tuple[list[int], str]]:
    """(node ids, legend text) for each path to highlight."""
    paths: list[tuple[list[int], str]] = []
    if top_k:
        from adkit.engines.paths import heaviest_paths

        if not (graph.scalar or graph.is_scalar()):
            raise ValueError(
                "top_k highlights paths between scalar nodes, and this graph has array nodes: "
                "draw G.scalarize() (one node per element) instead"
            )
        for r, path in enumerate(heaviest_paths(graph, top_k)):
            paths.append((path.nodes, f"path {r + 1}: product of z = {path.product:.4g}"))
    if highlight:
        z = {}
        for e in graph.edges:
            z.setdefault((e.src, e.dst), e.z)
        nodes = [int(i) for i in highlight]
        missing = [(a, b) for a, b in zip(nodes, nodes[1:]) if (a, b) not in z]
        if missing or len(nodes) < 2:
            where = f"no edge from node {missing[0][0]} to node {missing[0][1]}" if missing else "fewer than 2 nodes"
            raise ValueError(f"highlight must list node ids along a path of the graph: {where}")
        product = math.prod(float(z[pair]) if np.ndim(z[pair]) == 0 else math.nan for pair in zip(nodes, nodes[1:]))
        paths.append(
            (nodes, "highlighted path" + (f": product of z = {product:.4g}" if math.isfinite(product) else ""))
        )
    return paths


def _set_limits(ax: Any, pos: dict[int, tuple[float, float]], n_paths: int) -> tuple[float, float]:
    """Axis limits around the layout (with room below for the paths' legend); returns the
    data units per point in x and in y, from the axes' size on the page."""
    fig = ax.figure
    box = ax.get_position()
    width_pt = box.width * fig.get_figwidth() * 72
    height_pt = box.height * fig.get_figheight() * 72
    xs = [p[0] for p in pos.values()] or [0.0]
    ys = [p[1] for p in pos.values()] or [0.0]
    legend_pt = 8.0 + 16.0 * math.ceil(n_paths / 3) if n_paths else 0.0
    legend_room = (max(ys) - min(ys) + 1.1) * legend_pt / max(height_pt - legend_pt, 1.0)
    ax.set_xlim(min(xs) - 0.5, max(xs) + 0.5)
    ax.set_ylim(min(ys) - 0.55 - legend_room, max(ys) + 0.55)
    ax.axis("off")
    return (max(xs) - min(xs) + 1.0) / width_pt, (max(ys) - min(ys) + 1.1 + legend_room) / height_pt


def _draw_nodes(
    ax: Any, graph: Graph, pos: dict[int, tuple[float, float]], per_pt: tuple[float, float]
) -> dict[int, tuple[float, float]]:
    """One rounded box per node, sized to its text (op or name, and value); inputs blue,
    the output green. Returns each box's half width and half height (data units)."""
    from matplotlib.patches import FancyBboxPatch

    half: dict[int, tuple[float, float]] = {}
    for node in graph.nodes:
        text = _node_text(node)
        w, h = _text_size_points(text, NODE_FONT)
        (x, y), (hx, hy) = pos[node.id], ((w / 2 + 5) * per_pt[0], (h / 2 + 4) * per_pt[1])
        half[node.id] = (hx, hy)
        face = "#dbe9f7" if node.op is None else ("#dcefd8" if node.id == graph.output else "#fdf6e3")
        patch = FancyBboxPatch(
            (x - hx, y - hy), 2 * hx, 2 * hy, boxstyle="round,pad=0,rounding_size=0.04", fc=face, ec="0.25", lw=1.0
        )
        patch.set_gid("node")
        patch.set_zorder(3)
        ax.add_patch(patch)
        ax.text(x, y, text, ha="center", va="center", fontsize=NODE_FONT, zorder=4, linespacing=1.1)
    return half


def draw_graph(
    graph: Graph,
    ax: Any = None,
    highlight: Sequence[int] | None = None,
    top_k: int | None = None,
    title: str | None = None,
    edge_labels: bool = True,
) -> Any:
    """Draw the graph as on the lecture slides: nodes in columns from the inputs (left) to
    the output (right), each with its op (or name) and value; every edge an arrow with its
    local derivative z(i, j) written beside it (never on the line, a node or another label).

    `highlight`: node ids along one path; `top_k`: the k paths with the largest
    |product of local derivatives| (found without enumerating them). Each highlighted path
    is drawn in its own colour and line style, side by side where paths share an edge, and
    named in a legend with its product. Returns the matplotlib Axes.
    """
    from matplotlib.lines import Line2D
    from matplotlib.patches import FancyArrowPatch, PathPatch
    from matplotlib.path import Path as MplPath
    from matplotlib.transforms import offset_copy

    pos = _layout(graph)
    paths = _highlighted_paths(graph, highlight, top_k)
    if ax is None:
        import matplotlib.pyplot as plt

        _, ax = plt.subplots(figsize=_figure_size(pos, bool(paths)))
    fig = ax.figure
    x_per_pt, y_per_pt = _set_limits(ax, pos, len(paths))
    half = _draw_nodes(ax, graph, pos, (x_per_pt, y_per_pt))

    on_path: dict[tuple[int, int], list[int]] = {}
    for r, (nodes, _) in enumerate(paths):
        for a, b in zip(nodes, nodes[1:]):
            on_path.setdefault((a, b), []).append(r)
    multiplicity: dict[tuple[int, int], int] = {}
    for e in graph.edges:
        multiplicity[(e.src, e.dst)] = multiplicity.get((e.src, e.dst), 0) + 1
    seen: dict[tuple[int, int], int] = {}
    # boxes (points: left, bottom, width, height) of the nodes and of the labels placed so far
    taken = [
        ((x - hx) / x_per_pt, (y - hy) / y_per_pt, 2 * hx / x_per_pt, 2 * hy / y_per_pt)
        for (x, y), (hx, hy) in ((pos[i], half[i]) for i in half)
    ]
    for e in graph.edges:
        pair = (e.src, e.dst)
        k = seen[pair] = seen.get(pair, -1) + 1
        start = _box_exit(pos[e.src], half[e.src], pos[e.dst])
        end = _box_exit(pos[e.dst], half[e.dst], pos[e.src])
        rad = 0.4 * (k - (multiplicity[pair] - 1) / 2)  # x * x: two edges, bent apart
        arrow = FancyArrowPatch(
            start,
            end,
            arrowstyle="-|>",
            mutation_scale=11,
            lw=1.0,
            color="0.45",
            connectionstyle=f"arc3,rad={rad}",
            shrinkA=0,
            shrinkB=1,
            zorder=1,
        )
        arrow.set_gid("edge")
        ax.add_patch(arrow)
        # on the page (points): the edge's unit normal pointing up (left for a vertical
        # edge), or for a bent edge the direction of its bulge (arc3's Bezier at t = 1/2)
        dx_pt, dy_pt = (end[0] - start[0]) / x_per_pt, (end[1] - start[1]) / y_per_pt
        length = math.hypot(dx_pt, dy_pt) or 1.0
        nx, ny = -dy_pt / length, dx_pt / length
        if ny < 0 or (ny == 0 and nx > 0):
            nx, ny = -nx, -ny
        bulge = (0.5 * rad * dy_pt, -0.5 * rad * dx_pt)
        if rad:
            nx, ny = bulge[0] / math.hypot(*bulge), bulge[1] / math.hypot(*bulge)
        mid = ((start[0] + end[0]) / 2, (start[1] + end[1]) / 2)
        control = (mid[0] + 2 * bulge[0] * x_per_pt, mid[1] + 2 * bulge[1] * y_per_pt)
        strands = on_path.get(pair, []) if k == 0 else []
        for s, r in enumerate(strands):  # paths sharing an edge run side by side
            shift = 3.2 * (s - (len(strands) - 1) / 2)
            color, style = PATH_STYLES[r % len(PATH_STYLES)]
            strand = PathPatch(
                MplPath([start, control, end], [MplPath.MOVETO, MplPath.CURVE3, MplPath.CURVE3]),
                fill=False,
                ec=color,
                ls=style,
                lw=2.2,
                zorder=2,
                capstyle="butt",
                transform=offset_copy(ax.transData, fig=fig, x=nx * shift, y=ny * shift, units="points"),
            )
            strand.set_gid("path")
            ax.add_patch(strand)
        if not edge_labels:
            continue
        label = _z_short(e.z)
        w, h = _text_size_points(label, EDGE_FONT)
        # beside the line: the label's centre is half its extent (and a gap) off the edge;
        # near-horizontal edges get it in the middle, others a third of the way along, so
        # the labels of two crossing edges do not meet where the edges cross
        away = 3.0 + 1.6 * len(strands) + abs(nx) * w / 2 + abs(ny) * h / 2
        t = 0.5 if rad or abs(ny) > 0.95 else 0.3
        # the upper side first, then the lower one, then other points along the edge:
        # the first place that covers no node and no label placed before
        sides = [(bulge[0] + nx * away, bulge[1] + ny * away)] + ([(-nx * away, -ny * away)] if not rad else [])
        places = []
        for along in (t, 0.5, 0.7, 0.2):
            anchor = (start[0] + along * (end[0] - start[0]), start[1] + along * (end[1] - start[1]))
            for ox, oy in sides:
                box = (anchor[0] / x_per_pt + ox - w / 2, anchor[1] / y_per_pt + oy - h / 2, w, h)
                places.append((anchor, (ox, oy), box))
        anchor, offset, box = next((p for p in places if not any(_overlap(p[2], o) for o in taken)), places[0])
        taken.append(box)
        ax.annotate(
            label,
            anchor,
            xytext=offset,
            textcoords="offset points",
            ha="center",
            va="center",
            fontsize=EDGE_FONT,
            color="0.15",
            fontweight="bold" if strands else "normal",
            zorder=5,
            gid="edge label",
        )
    if paths:
        handles = [
            Line2D([], [], color=c, ls=ls, lw=2.6)
            for c, ls in (PATH_STYLES[r % len(PATH_STYLES)] for r in range(len(paths)))
        ]
        ax.legend(
            handles,
            [text for _, text in paths],
            loc="lower center",
            ncol=min(len(paths), 3),
            fontsize=9,
            frameon=False,
            handlelength=3.0,
        )
    if title:
        ax.set_title(title, fontsize=12)
    return ax


def graph_svg(graph: Graph) -> str | None:
    """The drawing as SVG text, for Jupyter's display(G); None (text only) for a graph of
    more than MAX_DRAWN_NODES nodes, or without matplotlib. pyplot is not used, so no
    second copy of the figure appears under the cell."""
    if len(graph.nodes) > MAX_DRAWN_NODES:
        return None
    try:
        from matplotlib.figure import Figure
    except ImportError:  # pragma: no cover - matplotlib is a dependency
        return None
    fig = Figure(figsize=_figure_size(_layout(graph), False))
    draw_graph(graph, ax=fig.add_subplot())
    buf = io.StringIO()
    fig.savefig(buf, format="svg", bbox_inches="tight")
    return buf.getvalue()


MAX_HTML_ROWS = 40  # rows of the evaluation trace shown by display(G); G.evaluation_trace() has all


def graph_html(graph: Graph) -> str:
    """display(G) in Jupyter: the summary line, the drawing (small graphs), and the first
    rows of the forward evaluation trace."""
    import base64

    parts = [f"<p>{html.escape(repr(graph))}</p>"]
    svg = graph_svg(graph)
    if svg is not None:
        data = base64.b64encode(svg.encode()).decode("ascii")
        parts.append(f'<img alt="computational graph" src="data:image/svg+xml;base64,{data}"/>')
    else:
        parts.append(
            f"<p>{len(graph.nodes):,} nodes: too many to draw here (display draws up to {MAX_DRAWN_NODES}); "
            "G.draw() draws it anyway.</p>"
        )
    shown = graph.nodes[:MAX_HTML_ROWS]
    rows = [[node.name, definition(graph, node), _num(node.value)] for node in shown]
    parts.append("<p><b>forward evaluation trace</b></p>" + html_table(["node", "definition", "value"], rows))
    if len(graph.nodes) > len(shown):
        parts.append(f"<p>... {len(graph.nodes) - len(shown):,} more rows: print(G.evaluation_trace())</p>")
    return "".join(parts)
