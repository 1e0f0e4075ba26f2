"""Text / HTML / LaTeX tables and graph drawing (matplotlib imported lazily, here only).

The evaluation traces follow the lecture slides [RAB]: the forward evaluation trace
(a1 = w0, a4 = a2 * a3, ...), the tangent trace for one seeded input
(da4 = a3·da2 + a2·da3, with numbers) and the reverse adjoint trace
(abar5 = abar6·cos(a5) + abar7·(-sin(a5)), with numbers).
"""

from __future__ import annotations

import html
import io
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


def _layout(graph: Graph) -> dict[int, tuple[float, float]]:
    level = [0] * len(graph.nodes)
    for e in sorted(graph.edges, key=lambda e: e.dst):
        level[e.dst] = max(level[e.dst], level[e.src] + 1)
    by_level: dict[int, list[int]] = {}
    for i, lv in enumerate(level):
        by_level.setdefault(lv, []).append(i)
    pos = {}
    for lv, ids in by_level.items():
        for k, i in enumerate(ids):
            pos[i] = (float(lv), (len(ids) - 1) / 2.0 - k)
    return pos


def draw_graph(graph: Graph, ax: Any = None, highlight: Sequence[int] | None = None, top_k: int | None = None) -> Any:
    """Draw the graph: nodes with labels and values, each edge with its z(i, j).

    `highlight`: node ids along one path, drawn in red. `top_k`: highlight the k paths
    with the largest |product of local derivatives|. Returns the matplotlib Axes.
    """
    import matplotlib.pyplot as plt

    if ax is None:
        width = max(6.0, 1.6 * (1 + max((p[0] for p in _layout(graph).values()), default=0)))
        _, ax = plt.subplots(figsize=(min(width, 18.0), 5.0))
    pos = _layout(graph)
    hot: dict[tuple[int, int], str] = {}
    if top_k:
        from adkit.engines.paths import heaviest_paths

        colors = ["tab:red", "tab:orange", "tab:purple", "tab:green", "tab:brown"]
        for r, path in enumerate(heaviest_paths(graph, top_k)):
            for a, b in zip(path.nodes, path.nodes[1:]):
                hot.setdefault((a, b), colors[r % len(colors)])
    if highlight:
        for a, b in zip(highlight, highlight[1:]):
            hot[(a, b)] = "tab:red"
    for e in graph.edges:
        (x0, y0), (x1, y1) = pos[e.src], pos[e.dst]
        color = hot.get((e.src, e.dst), "0.55")
        ax.annotate(
            "",
            xy=(x1 - 0.18, y1),
            xytext=(x0 + 0.18, y0),
            arrowprops={"arrowstyle": "->", "color": color, "lw": 2.2 if color != "0.55" else 1.0},
        )
        # a third of the way along the edge: the labels of edges that cross do not collide
        ax.text(x0 + (x1 - x0) / 3, y0 + (y1 - y0) / 3 + 0.06, _z_number(e.z), fontsize=8, color=color, ha="center")
    for node in graph.nodes:
        x, y = pos[node.id]
        face = "#e8f1fb" if node.op is None else "#fdf6e3"
        name = node.op.label if node.op is not None and node.label == node.op.name else node.label
        ax.text(
            x,
            y,
            f"{name}\n{_num(node.value)}",
            ha="center",
            va="center",
            fontsize=9,
            bbox={"boxstyle": "round,pad=0.3", "fc": face, "ec": "0.3"},
        )
    xs = [p[0] for p in pos.values()] or [0.0]
    ys = [p[1] for p in pos.values()] or [0.0]
    ax.set_xlim(min(xs) - 0.6, max(xs) + 0.6)
    ax.set_ylim(min(ys) - 0.8, max(ys) + 0.8)
    ax.axis("off")
    return ax
