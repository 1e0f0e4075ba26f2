"""Paths: the pathwise aggregation lemma, literally — the exponential baseline.

    do/dw = sum over every path P from w to o of prod_{(i, j) in P} z(i, j)   [AGG I]

For each input, every path to the output is enumerated (depth-first over numpy chunks
of partial paths, so the product of a path's prefix is computed once for all paths that
continue it, and a chain of single-successor nodes is one step), the local derivatives
along it are multiplied, and the products are added: ~1-10 ns per path on the product
graphs (the one-path-at-a-time loop took ~500 ns). The number of paths grows as
width**depth on the lecture's product-node graphs; `Graph.count_paths` knows it in
advance by dynamic programming, so the engine refuses before it starts when the count
exceeds the budget. `heaviest_paths` finds the k paths with the largest |product|
without enumerating them (dynamic programming over log|z|).
"""

from __future__ import annotations

import heapq
import math
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import numpy as np

from adkit.errors import AdkitError, AdkitTypeError, AdkitValueError, NonFiniteDerivativeError
from adkit.formatting import format_count, format_seconds
from adkit.graph import Graph, trace

DEFAULT_BUDGET = 1_000_000
SECONDS_PER_PATH_EDGE = 2e-9  # measured order of magnitude of one edge step of the chunked enumeration
_budget = [DEFAULT_BUDGET]


class PathBudgetExceeded(AdkitError, RuntimeError):
    """The number of paths to enumerate exceeds the budget."""


@contextmanager
def paths_budget(n: int) -> Iterator[None]:
    """Temporarily allow the paths engine to enumerate up to `n` paths per call.

    n is a whole number of paths: there is no unlimited budget, because the count can be
    astronomically large (width**depth); `adkit.trace(f, *args).count_paths()` tells it."""
    if isinstance(n, bool) or not isinstance(n, (int, np.integer, float, np.floating)):
        raise AdkitTypeError(f"paths_budget(n) takes a number of paths, got {type(n).__name__}")
    if not (math.isfinite(n) and n >= 0 and n == int(n)):
        raise AdkitValueError(
            f"paths_budget({n!r}): the budget must be a whole, finite, non-negative number of paths. "
            "An unlimited budget could enumerate for longer than the age of the universe: count the "
            "paths first (adkit.trace(f, *args).count_paths()) and pass that count, e.g. "
            "paths_budget(10**9), or use engine='reverse', which adds up the same paths in one sweep."
        )
    old = _budget[0]
    _budget[0] = int(n)
    try:
        yield
    finally:
        _budget[0] = old


@dataclass
class Path:
    """One path from an input to the output and the product of its local derivatives."""

    nodes: list[int]
    labels: list[str]
    product: float

    def __str__(self) -> str:
        return f"{' -> '.join(self.labels)}: {self.product:.6g}"


def _prepare(graph: Graph) -> tuple[Graph, list[list[Any]], list[int]]:
    g = graph if graph.scalar else graph.scalarize()
    return g, g.successors(), g.path_counts_to_output()


def path_lengths_total(g: Graph, counts: Sequence[int]) -> list[int]:
    """L(i): total number of edges over all paths from node i to the output."""
    succ = g.successors()
    total = [0] * len(g.nodes)
    for i in range(len(g.nodes) - 1, -1, -1):
        total[i] = sum(counts[e.dst] + total[e.dst] for e in succ[i])
    return total


def check_budget(g: Graph, counts: Sequence[int], sources: Sequence[int], budget: int | None = None) -> None:
    budget = _budget[0] if budget is None else budget
    n = sum(counts[s] for s in sources)
    if n <= budget:
        return
    lengths = path_lengths_total(g, counts)
    edges = sum(lengths[s] for s in sources)
    seconds = math.exp(min(math.log(edges) + math.log(SECONDS_PER_PATH_EDGE), 700.0))
    raise PathBudgetExceeded(
        f"the paths engine would enumerate {format_count(n)} paths ({format_count(edges)} edge steps, "
        f"{_about(format_seconds(seconds))}) "
        f"but its budget is {budget:,} paths. Raise it with `with adkit.paths_budget({n if n < 10**15 else 'N'}): ...` if you "
        "really want to wait, or use engine='reverse', which adds up the same paths by dynamic "
        "programming in one sweep."
    )


def _about(duration: str) -> str:
    return duration if duration.startswith("longer") else f"about {duration}"


def iter_paths(graph: Graph, source: int | str | None = None) -> Iterator[Path]:
    """Every path from the source input(s) to the output, streamed (never all held)."""
    g, succ, counts = _prepare(graph)
    labels = [n.label for n in g.nodes]
    for s in g._sources(source):
        nodes = [s]
        prods = [1.0]
        cursor = [0]
        while nodes:
            node = nodes[-1]
            if node == g.output:
                yield Path(list(nodes), [labels[i] for i in nodes], prods[-1])
                nodes.pop(), prods.pop(), cursor.pop()
                continue
            edges = succ[node]
            i = cursor[-1]
            while i < len(edges) and counts[edges[i].dst] == 0:
                i += 1
            if i < len(edges):
                cursor[-1] = i + 1
                e = edges[i]
                nodes.append(e.dst)
                prods.append(prods[-1] * e.z)
                cursor.append(0)
            else:
                nodes.pop(), prods.pop(), cursor.pop()


PATH_CHUNK = 1 << 14  # partial paths per numpy chunk: enough to amortise Python, small enough for the cache

Frontier = dict  # node -> prefix products (1-d array) of partial paths from the source ending at it


def extend_paths(frontier: Frontier, live: Sequence[Sequence[tuple[int, Any]]]) -> dict[int, list[np.ndarray]]:
    """Every partial path of the frontier extended by each live edge out of its last node:
    per new last node, arrays of the longer paths' products. The partial paths ending at
    one node are an array, so one numpy multiply extends them all along an edge, and a
    prefix product is computed once for every path that continues it."""
    grown: dict[int, list[np.ndarray]] = {}
    for node, prods in frontier.items():
        for dst, z in live[node]:
            grown.setdefault(dst, []).append(prods * z)
    return grown


def live_successors(succ: Sequence[Sequence[Any]], counts: Sequence[int], out: int) -> list[list[tuple[int, Any]]]:
    """Per node, the (successor, z) pairs a path can continue along, with chains merged.

    Edges into nodes with no path to the output, and exact-zero edges (which carry 0
    even against inf), are dropped. A node other than the output with a single live edge
    is a link of a chain that every path through it follows to the end: an edge into it
    jumps straight to the chain's end, carrying z times the chain's product (computed
    once, in reverse topological order, and shared by every path through the chain).
    The paths and their number stay the same; a path is one step per branching node."""
    live = [[(e.dst, e.z) for e in edges if counts[e.dst] and not e.exact_zero] for edges in succ]
    for node in range(len(live) - 1, -1, -1):  # node indices are a topological order
        merged = []
        for dst, z in live[node]:
            if dst != out and len(live[dst]) == 1:
                end, z_end = live[dst][0]  # already merged: end is a branching node or the output
                dst, z = end, z * z_end
            merged.append((dst, z))
        live[node] = merged
    return live


def sum_over_paths(g: Graph, succ: Sequence[Sequence[Any]], counts: Sequence[int], source: int) -> Any:
    """sum over paths from `source` of the product of z along the path [AGG I].

    Enumerated, as the lemma says, in numpy chunks: a chunk (a Frontier) holds up to
    about PATH_CHUNK partial paths grouped by their last node; `extend_paths` lengthens
    them all by one edge, the paths that reached the output are added up, and the rest
    are cut into chunks again and go on a stack (depth first, so memory stays about
    depth x width x PATH_CHUNK). Edges into nodes with no path to the output, and
    exact-zero edges (which carry 0 even against inf), are never followed."""
    out = g.output
    if source == out:
        return 1.0
    live = live_successors(succ, counts, out)
    total = 0.0
    stack: list[Frontier] = [{source: np.ones(1)}]
    while stack:
        grown = extend_paths(stack.pop(), live)
        finished = grown.pop(out, None)
        if finished is not None:
            total += np.concatenate(finished).sum() if len(finished) > 1 else finished[0].sum()
        chunk: Frontier = {}
        size = 0
        for node, parts in grown.items():
            prods = np.concatenate(parts) if len(parts) > 1 else parts[0]
            for lo in range(0, len(prods), PATH_CHUNK):
                chunk[node] = prods[lo : lo + PATH_CHUNK]
                size += len(chunk[node])
                if size >= PATH_CHUNK:
                    stack.append(chunk)
                    chunk, size = {}, 0
        if chunk:
            stack.append(chunk)
    return total.item() if isinstance(total, np.generic) else total


def paths_gradient(graph: Graph, budget: int | None = None) -> list[float]:
    """do/dx for every input element of the graph, by enumerating every path."""
    g, succ, counts = _prepare(graph)
    if g.output is None:
        return [0.0 for _ in g.inputs]
    check_budget(g, counts, g.inputs, budget)
    return [sum_over_paths(g, succ, counts, s) if counts[s] else 0.0 for s in g.inputs]


def heaviest_paths(graph: Graph, k: int = 5, source: int | str | None = None) -> list[Path]:
    """The k paths with the largest |product of local derivatives|, without enumerating.

    Dynamic programming in log space over the reversed topological order: each node
    keeps its k best continuations to the output (log|prod|, sign, edge, rank of the
    continuation), O(edges * k log k).
    """
    g, succ, counts = _prepare(graph)
    if g.output is None:
        return []
    best: list[list[tuple[float, float, Any, int]]] = [[] for _ in g.nodes]
    best[g.output] = [(0.0, 1.0, None, -1)]
    for i in range(len(g.nodes) - 1, -1, -1):
        if i == g.output or not counts[i]:
            continue
        cands = []
        for e in succ[i]:
            if e.z == 0 or not best[e.dst]:
                continue
            lz = math.log(abs(e.z))
            for r, (lp, sign, _, _) in enumerate(best[e.dst]):
                cands.append((lz + lp, math.copysign(1.0, e.z) * sign, e, r))
        best[i] = heapq.nlargest(k, cands, key=lambda c: c[0])
    labels = [n.label for n in g.nodes]
    found = []
    for s in g._sources(source):
        for entry in best[s]:
            found.append((entry, s))
    found = heapq.nlargest(k, found, key=lambda c: c[0][0])
    paths = []
    for (logp, sign, edge, rank), s in found:
        nodes = [s]
        product = 1.0  # multiplied along the path, so the product is exact, not exp(log)
        node_entry = (logp, sign, edge, rank)
        while node_entry[2] is not None:
            e, r = node_entry[2], node_entry[3]
            nodes.append(e.dst)
            product *= e.z
            node_entry = best[e.dst][r]
        paths.append(Path(nodes, [labels[i] for i in nodes], product))
    return paths


def paths_value_and_grad(f: Callable[..., Any], args: Sequence[Any], argnums: tuple[int, ...], single: bool):
    """The engine entry point used by adkit.grad(f, engine="paths"): the arguments not in
    argnums are constants."""
    from adkit.trees import tree_flatten, tree_unflatten

    graph = trace(f, *args, argnums=argnums)
    if graph.output is not None and np.size(graph.nodes[graph.output].value) != 1:
        raise AdkitTypeError("grad needs f to return a scalar; use adkit.jacobian for array outputs")
    if graph.output is not None and not np.all(np.isfinite(graph.nodes[graph.output].value)):
        raise NonFiniteDerivativeError(
            f"f's value at this point is {float(np.asarray(graph.nodes[graph.output].value).reshape(-1)[0])}, so it "
            f"has no derivative there ({_first_overflow(graph)}). Rewrite f so that no intermediate overflows "
            "(np.logaddexp, adkit.softplus, adkit.sigmoid), or move the point."
        )
    grads_flat = paths_gradient(graph) if graph.output is not None else None
    if grads_flat is not None and not all(math.isfinite(g) for g in grads_flat):
        raise NonFiniteDerivativeError(
            "the sum over paths is not finite: a local derivative on some path is inf or NaN "
            f"({_first_nonfinite_edge(graph)}), or the sum overflows. The function is not "
            "differentiable at this point, or its derivative is too large for float64."
        )
    # map the scalarised input elements back to the traced leaves, in trace order
    sizes = [int(np.size(graph.nodes[i].value)) for i in graph.inputs]
    starts = np.cumsum([0] + sizes).tolist()
    inputs = iter(range(len(graph.inputs)))
    result = []
    for n in argnums:
        leaves, treedef = tree_flatten(args[n])
        out_leaves = []
        for _leaf in leaves:
            idx = next(inputs)
            shape = np.shape(graph.nodes[graph.inputs[idx]].value)
            if grads_flat is None:
                vals = np.zeros(shape)
            else:
                vals = np.array(grads_flat[starts[idx] : starts[idx + 1]], dtype=float).reshape(shape)
            out_leaves.append(float(vals) if shape == () else vals)
        result.append(tree_unflatten(treedef, out_leaves))
    value = graph.value
    value = float(value) if value is not None and np.ndim(value) == 0 else value
    return value, (result[0] if single else tuple(result))


def _first_overflow(graph: Graph) -> str:
    """The first node whose value is inf or NaN although its inputs are finite."""
    for node in graph.nodes:
        if node.op is None or np.all(np.isfinite(node.value)):
            continue
        if all(p is None or np.all(np.isfinite(graph.nodes[p].value)) for p in node.parents):
            bad = np.asarray(node.value)[~np.isfinite(node.value)]
            return f"{node.label} {'overflowed to inf' if np.isinf(bad).any() else 'is undefined there (NaN)'}"
    return "an input is inf or NaN"


def _first_nonfinite_edge(graph: Graph) -> str:
    g = graph if graph.scalar else graph.scalarize()
    for e in g.edges:
        if not math.isfinite(e.z):
            return f"edge {g.nodes[e.src].label} -> {g.nodes[e.dst].label} has z = {e.z}"
    return "every edge is finite"


def _register() -> None:
    from adkit.engines import GRAD_ENGINES as DIFFERENTIATING_ENGINES

    DIFFERENTIATING_ENGINES["paths"] = paths_value_and_grad


_register()
