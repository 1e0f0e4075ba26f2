"""Drawings for the lecture slides (issue 13, "lecture polish"), tested through matplotlib's
objects, never through pixels:

- display(G) in Jupyter shows the drawing: Graph._repr_svg_ is an SVG document, and
  _repr_html_ embeds it; a large graph gets a bounded text display instead;
- Aggarwal's product-node figure (SEEDS.md §2): the n-ary product graph drawn with one box
  per product node, one arrow per edge, highlighted paths named in a legend, and every
  edge label beside its line (its rendered box clear of the edge and of the nodes);
- the bench plot: engines told apart by line style, widths by marker, an accuracy panel
  whose y-data follow the errors (0 drawn in its own band), depth ticks that do not overlap.
"""

from __future__ import annotations

import base64
import math
import re
import xml.etree.ElementTree as ET

import numpy as np
import pytest

import adkit as ad
from adkit import display, families
from adkit.bench import BenchResult, Cell

matplotlib = pytest.importorskip("matplotlib")
matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402


@pytest.fixture(autouse=True)
def _close_figures():
    before = set(plt.get_fignums())
    yield
    for number in set(plt.get_fignums()) - before:
        plt.close(number)


@pytest.fixture(scope="module")
def bench_figure():
    """The bench plot of the synthetic sweep, drawn once for the tests that read it."""
    fig = _synthetic_result().plot()
    fig.canvas.draw()
    yield fig
    plt.close(fig)


def colah(a, b):
    c = ad.label(a + b, "c")
    d = ad.label(b + 1, "d")
    return ad.label(c * d, "e")


def _artists(ax, gid: str) -> list:
    return [a for a in ax.get_children() if a.get_gid() == gid]


# --- display(G) ----------------------------------------------------------------------------------


def _svg_root(text: str) -> ET.Element:
    root = ET.fromstring(text.encode())
    assert root.tag.endswith("svg"), root.tag
    return root


def test_repr_svg_is_a_drawing_of_the_graph():
    G = ad.trace(colah, 2.0, 1.0)
    figures_before = plt.get_fignums()
    svg = G._repr_svg_()
    assert isinstance(svg, str)
    root = _svg_root(svg)
    # matplotlib writes each artist as a group; 5 nodes and 5 edges at least
    assert sum(1 for _ in root.iter()) > 20
    # drawn off pyplot: Jupyter shows no second copy of the figure under the cell
    assert plt.get_fignums() == figures_before


def test_repr_html_embeds_the_drawing_and_the_trace():
    G = ad.trace(colah, 2.0, 1.0)
    page = G._repr_html_()
    match = re.search(r'src="data:image/svg\+xml;base64,([A-Za-z0-9+/=]+)"', page)
    assert match, page[:300]
    _svg_root(base64.b64decode(match.group(1)).decode())
    assert "forward evaluation trace" in page and "a5 = a3 * a4" in page


def test_large_graph_display_is_bounded_text():
    spec = families.chain(display.MAX_DRAWN_NODES + 200)
    G = ad.trace(spec.f, *spec.args)
    assert G._repr_svg_() is None
    page = G._repr_html_()
    assert "too many to draw" in page and "<img" not in page
    # the trace is cut to its first rows: a few kB, not one row per node
    assert page.count("<tr>") == display.MAX_HTML_ROWS + 1
    assert len(page) < 20_000


def test_largest_drawn_graph_still_gets_a_drawing():
    spec = families.chain(display.MAX_DRAWN_NODES - 1)
    G = ad.trace(spec.f, *spec.args)
    assert len(G.nodes) == display.MAX_DRAWN_NODES
    _svg_root(G._repr_svg_())


# --- Aggarwal's product-node figure --------------------------------------------------------------


def _segment_hits_box(p0, p1, box, samples: int = 200) -> bool:
    """Whether the segment p0-p1 (display coords) passes through the box (a Bbox)."""
    for t in np.linspace(0.0, 1.0, samples):
        x, y = p0[0] + t * (p1[0] - p0[0]), p0[1] + t * (p1[1] - p0[1])
        if box.x0 < x < box.x1 and box.y0 < y < box.y1:
            return True
    return False


def _rendered(ax):
    ax.figure.canvas.draw()
    return ax.figure.canvas.get_renderer()


@pytest.mark.parametrize("depth, width", [(5, 2), (3, 3)])
def test_product_graph_figure_has_the_lectures_nodes_edges_and_paths(depth, width):
    spec = families.product_graph(depth=depth, width=width, nary=True)
    G = ad.trace(spec.f, *spec.args)
    ax = G.draw(top_k=3)
    # the lecture's graph: input, depth x width product nodes, output (counts from the
    # family's closed form, not from the drawing code)
    assert len(_artists(ax, "node")) == spec.n_nodes == 1 + depth * width + 1
    assert len(_artists(ax, "edge")) == spec.n_edges
    labels = _artists(ax, "edge label")
    assert len(labels) == spec.n_edges
    # three highlighted paths, each of depth + 1 edges, each edge drawn once per path
    assert len(_artists(ax, "path")) == 3 * (depth + 1)
    legend = ax.get_legend()
    assert [t.get_text().split(":")[0] for t in legend.get_texts()] == ["path 1", "path 2", "path 3"]
    # every path product telescopes to out / w = 1 on this graph [families.product_graph]
    assert all(t.get_text().endswith("= 1") for t in legend.get_texts())
    assert len({_dashes(h) for h in legend.legend_handles}) == 3, "paths differ by line style, not colour alone"


def test_edge_labels_sit_beside_their_lines():
    spec = families.product_graph(depth=5, width=2, nary=True)
    for G, top_k in ((ad.trace(spec.f, *spec.args), 3), (ad.trace(colah, 2.0, 1.0), None)):
        ax = G.draw(top_k=top_k)
        renderer = _rendered(ax)
        labels = _artists(ax, "edge label")
        nodes = [n.get_window_extent(renderer) for n in _artists(ax, "node")]  # in G.nodes order
        boxes = [label.get_window_extent(renderer) for label in labels]  # in G.edges order
        assert len(nodes) == len(G.nodes) and len(boxes) == len(G.edges)
        for edge, label, box in zip(G.edges, labels, boxes):
            # the straight line between the two nodes' centres, which the arrow follows
            start, end = nodes[edge.src].get_points().mean(axis=0), nodes[edge.dst].get_points().mean(axis=0)
            assert not _segment_hits_box(start, end, box), f"label {label.get_text()!r} lies on its edge"
            assert not any(box.overlaps(n) for n in nodes), f"label {label.get_text()!r} covers a node"
        for i, a in enumerate(boxes):
            for b in boxes[i + 1 :]:
                assert not a.overlaps(b), "two edge labels overlap"


def test_edge_labels_are_the_local_derivatives():
    G = ad.trace(colah, 2.0, 1.0)
    ax = G.draw()
    # colah's example [HAM]: dc/da = dc/db = dd/db = 1, de/dc = d = 2, de/dd = c = 3
    assert sorted(t.get_text() for t in _artists(ax, "edge label")) == ["1", "1", "1", "2", "3"]
    assert sorted(t.get_text() for t in ax.texts if "\n" in t.get_text()) == [
        "a\n2",
        "b\n1",
        "c\n3",
        "d\n2",
        "e\n6",
    ]


def test_highlight_and_title():
    G = ad.trace(colah, 2.0, 1.0)
    a, b = G.inputs
    e = G.output
    c = next(n.id for n in G.nodes if n.label == "c")
    ax = G.draw(highlight=[b, c, e], title="colah")
    assert ax.get_title() == "colah"
    assert len(_artists(ax, "path")) == 2
    # colah: de/db along b -> c -> e is dc/db * de/dc = 1 * d = 2
    assert [t.get_text() for t in ax.get_legend().get_texts()] == ["highlighted path: product of z = 2"]
    with pytest.raises(ValueError, match="no edge from node"):
        G.draw(highlight=[a, e])
    assert len(_artists(G.draw(edge_labels=False), "edge label")) == 0


def test_top_k_on_array_nodes_is_refused():
    G = ad.trace(lambda x: np.sum(np.sin(x)), np.ones(3))
    with pytest.raises(ValueError, match="scalarize"):
        G.draw(top_k=2)
    ax = G.scalarize().draw(top_k=2)
    assert len(ax.get_legend().get_texts()) == 2


# --- the bench plot ------------------------------------------------------------------------------

DEPTHS = [2, 4, 6, 8, 10, 12, 16, 32, 64, 128, 256, 512, 1000]
ENGINES = ["forward", "reverse", "symbolic", "numeric", "paths"]


def _synthetic_result() -> BenchResult:
    """A sweep with known numbers (no timing): exact engines at 0 error or one ulp, the
    numeric engine's error growing with depth, paths skipped past depth 12."""
    cells = []
    for width in (2, 3):
        for k, engine in enumerate(ENGINES):
            for depth in DEPTHS:
                seconds = 1e-5 * (k + 1) * depth * width
                err = {"numeric": min(1e-13 * 10.0 ** (depth / 4), 1e5), "reverse": 2.2e-16 if depth == 64 else 0.0}
                cell = Cell(engine, width, depth, 1, 1, width**depth, "ok", seconds=seconds)
                cell.rel_error = err.get(engine, 0.0)
                if engine == "paths" and depth > 12:
                    cell.status, cell.seconds, cell.rel_error = "skipped", None, None
                    cell.predicted_seconds = 1e-5 * float(width) ** min(depth, 200)
                cells.append(cell)
    config = {"engines": ENGINES, "widths": [2, 3], "depths": DEPTHS}
    return BenchResult(cells, [], config)


def _dashes(line) -> tuple:
    """The dash pattern a line is drawn with (get_linestyle() says only '--' for a custom
    pattern, and matplotlib has no public getter for the pattern itself)."""
    offset, dashes = line._unscaled_dash_pattern
    return (offset, tuple(dashes) if dashes else None)


def _series(ax, gid: str) -> dict[str, object]:
    return {line.get_label(): line for line in ax.get_lines() if line.get_gid() == gid}


def test_bench_plot_styles_engines_by_line_style_and_widths_by_marker(bench_figure):
    fig = bench_figure
    ax_t, ax_e = fig.axes
    lines = _series(ax_t, "time")
    assert len(lines) == len(ENGINES) * 2
    style = {e: {_dashes(lines[f"{e}, width {w}"]) for w in (2, 3)} for e in ENGINES}
    assert all(len(s) == 1 for s in style.values()), "one line style per engine"
    assert len({next(iter(s)) for s in style.values()}) == len(ENGINES), "engines differ by line style"
    markers = {w: {lines[f"{e}, width {w}"].get_marker() for e in ENGINES} for w in (2, 3)}
    assert all(len(m) == 1 for m in markers.values()) and markers[2] != markers[3], "widths differ by marker"
    legend_texts = [t.get_text() for t in fig.legends[0].get_texts()]
    assert legend_texts == [*ENGINES, "width 2", "width 3"]
    predicted = _series(ax_t, "predicted")
    assert set(predicted) == {"paths, width 2 (predicted)", "paths, width 3 (predicted)"}


def test_bench_plot_accuracy_panel_follows_the_errors(bench_figure):
    ax_e = bench_figure.axes[1]
    errors = _series(ax_e, "error")
    numeric = errors["numeric, width 2"]
    expected = [math.log10(min(1e-13 * 10.0 ** (d / 4), 1e3)) for d in DEPTHS]
    assert np.allclose(numeric.get_ydata(), expected), "log10 of the relative error, capped at 1e3"
    assert np.ptp(numeric.get_ydata()) > 10  # not a flat line at a clip floor
    # reverse: one ulp at depth 64, exactly 0 elsewhere (a gap in the line, a row in the band)
    reverse = errors["reverse, width 2"].get_ydata()
    assert np.isclose(reverse[DEPTHS.index(64)], math.log10(2.2e-16))
    assert np.isnan(reverse).sum() == len(DEPTHS) - 1
    exact = _series(ax_e, "exact")
    assert set(exact) == {
        f"{e}, width {w} (error 0)" for e in ("forward", "reverse", "symbolic", "paths") for w in (2, 3)
    }
    rows = {line.get_ydata()[0] for line in exact.values()}
    assert len(rows) == len(exact), "every exact engine and width has its own row in the 0 band"
    lowest_error = min(np.nanmin(line.get_ydata()) for line in errors.values())
    assert max(rows) < lowest_error, "the 0 band lies below every nonzero error"
    assert "exactly 0" in [t.get_text() for t in ax_e.get_yticklabels()]


def test_bench_plot_depth_ticks_are_readable(bench_figure):
    fig = bench_figure
    renderer = fig.canvas.get_renderer()
    for ax in fig.axes:
        assert ax.get_xscale() == "log"  # depths span 2..1000
        labels = [t for t in ax.get_xticklabels() if t.get_text() and t.get_visible()]
        texts = [t.get_text() for t in labels]
        assert texts[0] == "2" and texts[-1] == "1000", texts
        assert len(texts) >= 6 and all(t.isdigit() for t in texts), texts  # depths, not 10^k
        boxes = [t.get_window_extent(renderer) for t in labels]
        assert all(not a.overlaps(b) for a, b in zip(boxes, boxes[1:])), texts


def test_bench_plot_linear_depths_for_a_short_sweep():
    cells = [Cell("reverse", 2, d, 1, 1, 2**d, "ok", seconds=1e-5 * d, rel_error=0.0) for d in (1, 2, 3)]
    fig = BenchResult(cells, [], {"engines": ["reverse"], "widths": [2], "depths": [1, 2, 3]}).plot()
    assert fig.axes[0].get_xscale() == "linear"
    assert [t.get_text() for t in fig.axes[0].get_xticklabels()] == ["1", "2", "3"]
    # every error exactly 0: the accuracy axis ends a few decades above float64's epsilon
    # (2.2e-16), not at 1e3 with twenty empty decades above the band
    assert fig.axes[1].get_ylim()[1] < -12
