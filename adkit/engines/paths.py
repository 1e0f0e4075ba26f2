"""Paths: the pathwise aggregation lemma, literally — the exponential baseline.

    do/dw = sum over every path P from w to o of prod_{(i, j) in P} z(i, j)   [AGG I]

For each input, every path to the output is enumerated and its local derivatives are
multiplied, and the products are added. The enumeration is vectorised: the partial paths
ending at nodes with the same successors (a layer of the lecture's product graph) are one
numpy block, extended along every edge by one multiply, so the product of a path's prefix
is computed once for all the paths that continue it, and a chain of single-successor nodes
is one step: 1-10 ns per path on the product graphs (the one-path-at-a-time loop took
~500 ns). A program of Python floats is recorded with `reverse.record` (the one engine
this one imports, as the numeric engine does: a tape of FloatVars *is* the lecture's graph,
a Wengert list with z(i, j) on it), so the set-up costs about what reverse mode's recording
costs (scripts/bench_paths.py); any other program is traced into a Graph and scalarised. The number of paths grows as width**depth
on the lecture's product-node graphs; it is counted in advance by dynamic programming
(`Graph.count_paths`), so the engine refuses before it starts when the count exceeds the
budget. `heaviest_paths` finds the k paths with the largest |product| without enumerating
them (dynamic programming over log|z|).
"""

from __future__ import annotations

import heapq
import math
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import numpy as np

from adkit.engines import gc_paused
from adkit.engines.reverse import FloatVar, record
from adkit.errors import AdkitError, AdkitTypeError, AdkitValueError, NonFiniteDerivativeError
from adkit.formatting import format_count, format_seconds
from adkit.graph import Graph, trace

DEFAULT_BUDGET = 1_000_000
SECONDS_PER_PATH = 1e-8  # enumeration time per path, the upper end of scripts/bench_paths.py's 1-10 ns
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


Preds = Sequence[Sequence[tuple[int, Any]]]  # per node (in topological order), its (input node, z) pairs


def graph_preds(graph: Graph) -> list[list[tuple[int, Any]]]:
    """A scalar graph's live edges as (input node, z) pairs per node: without the exact-zero
    edges (a mask, a constant 0: a path through one carries 0 even against inf)."""
    preds: list[list[tuple[int, Any]]] = [[] for _ in graph.nodes]
    for e in graph.edges:
        if not e.exact_zero:
            preds[e.dst].append((e.src, e.z))
    return preds


def check_budget(counts: Sequence[int], sources: Sequence[int], budget: int | None = None) -> None:
    """Refuse, before enumerating anything, more paths from `sources` than the budget."""
    budget = _budget[0] if budget is None else budget
    n = sum(counts[s] for s in sources)
    if n <= budget:
        return
    seconds = math.exp(min(math.log(n) + math.log(SECONDS_PER_PATH), 700.0))
    raise PathBudgetExceeded(
        f"the paths engine would enumerate {format_count(n)} paths ({_about(format_seconds(seconds))}) "
        f"but its budget is {budget:,} paths. Raise it with `with adkit.paths_budget({n if n < 10**15 else 'N'}): ...`, "
        "or use engine='reverse', which adds up the same paths by dynamic "
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


PATH_CHUNK = 1 << 13  # products per extended block: 64 KB, in cache and under glibc's mmap threshold (no fresh pages)


def count_and_merge(preds: Preds, out: int) -> tuple[list[int], list[list[tuple[int, Any]]]]:
    """N(i), the number of paths from each node to the output, and per node the (successor,
    z) pairs a path can continue along, with chains merged: one backward pass, like the
    reverse sweep's (N(o) = 1, and each node pushes its count to its inputs).

    Edges into nodes with no path to the output are dropped. A node other than the output
    with a single live edge is a link of a chain that every path through it follows to the
    end: an edge into it jumps straight to the chain's end, carrying z times the chain's
    product (computed once and shared by every path through the chain). The paths and
    their number stay the same; a path is one step per branching node."""
    counts = [0] * len(preds)
    counts[out] = 1
    live: list[list[tuple[int, Any]]] = [[] for _ in preds]
    for node in range(out, -1, -1):  # node indices are a topological order
        n = counts[node]
        if not n:
            continue
        onward = live[node]
        end, z_end = onward[0] if node != out and len(onward) == 1 else (node, 1.0)
        for src, z in preds[node]:
            counts[src] += n
            live[src].append((end, z * z_end))
    return counts, live


def extend_paths(prefixes: np.ndarray, z: np.ndarray) -> np.ndarray:
    """Every partial path of a block extended by every live edge out of its last node.

    prefixes[i, p]: the product along partial path p ending at the block's i-th node (the
    block's nodes share their successors); z[j, i]: the local derivative of the i-th
    node's j-th edge. Result [j, i, p] = z[j, i] * prefixes[i, p]: one numpy multiply
    extends every path of the block along every edge, and a prefix product is computed
    once for all the paths that continue it."""
    return z[:, :, None] * prefixes[None, :, :]


Rows = slice | list[int]  # edges of a block step: a slice when contiguous (a view, not a copy)


@dataclass
class _BlockStep:
    """How the paths of a block of nodes (all with the same successors) go on: the
    (edges, nodes) matrix of local derivatives, the edges that reach the output (None if
    none do), and the blocks the other edges lead to (successors grouped by their own
    successors)."""

    z: np.ndarray
    to_output: Rows | None
    onward: list[tuple[tuple[int, ...], Rows]]


def _block_step(nodes: tuple[int, ...], live: Sequence[Sequence[tuple[int, Any]]], out: int) -> _BlockStep:
    z = np.array([[z for _, z in live[node]] for node in nodes], dtype=float).T
    groups: dict[tuple[int, ...], tuple[list[int], list[int]]] = {}
    to_output = []
    for j, (dst, _) in enumerate(live[nodes[0]]):
        if dst == out:
            to_output.append(j)
        else:
            dsts, rows = groups.setdefault(tuple(d for d, _ in live[dst]), ([], []))
            dsts.append(dst)
            rows.append(j)
    onward = [(tuple(dsts), _rows(rows)) for dsts, rows in groups.values()]
    return _BlockStep(z, _rows(to_output) if to_output else None, onward)


def _rows(rows: list[int]) -> Rows:
    return slice(rows[0], rows[-1] + 1) if rows == list(range(rows[0], rows[-1] + 1)) else rows


def sum_over_paths(
    live: Sequence[Sequence[tuple[int, Any]]], out: int, source: int, steps: dict | None = None
) -> float:
    """sum over paths from `source` of the product of z along the path [AGG I].

    Enumerated, as the lemma says, in numpy blocks: a block holds the prefix products of
    partial paths ending at nodes with the same successors (a whole layer of the lecture's
    product graph), `extend_paths` lengthens them all by one edge in one multiply, the
    paths that reached the output are added up, and the rest go on, regrouped into blocks
    (by destination, merging the paths that meet at a node) and cut into pieces whose
    extension holds about PATH_CHUNK products, on a stack (depth first, so memory stays
    about depth x PATH_CHUNK products). `live` comes from `count_and_merge`; `steps`
    caches each block's plan (shared between the sources of one graph)."""
    if source == out:
        return 1.0
    steps = {} if steps is None else steps
    total = 0.0
    stack: list[list[tuple[tuple[int, ...], np.ndarray]]] = [[((source,), np.ones((1, 1)))]]
    while stack:
        grown: dict[tuple[int, ...], list[np.ndarray]] = {}
        for nodes, prefixes in stack.pop():
            step = steps.get(nodes)
            if step is None:
                step = steps[nodes] = _block_step(nodes, live, out)
            paths = extend_paths(prefixes, step.z)
            if step.to_output is not None:
                total += paths[step.to_output].sum()
            for dsts, rows in step.onward:
                grown.setdefault(dsts, []).append(paths[rows].reshape(len(dsts), -1))
        chunk: list[tuple[tuple[int, ...], np.ndarray]] = []
        size = 0
        for dsts, parts in grown.items():
            prefixes = parts[0] if len(parts) == 1 else np.concatenate(parts, axis=1)
            fan_out = len(live[dsts[0]])  # extending the block multiplies its size by this
            width = max(1, PATH_CHUNK // (len(dsts) * fan_out))
            for lo in range(0, prefixes.shape[1], width):
                piece = prefixes[:, lo : lo + width]
                chunk.append((dsts, piece))
                size += piece.size * fan_out
                if size >= PATH_CHUNK:
                    stack.append(chunk)
                    chunk, size = [], 0
        if chunk:
            stack.append(chunk)
    return float(total)


def sum_over_all_paths(
    live: Sequence[Sequence[tuple[int, Any]]], counts: Sequence[int], out: int, sources: Sequence[int]
) -> list[float]:
    """[AGG I] for each source, over `count_and_merge`'s live edges (the caller has checked
    the budget)."""
    steps: dict = {}
    return [sum_over_paths(live, out, s, steps) if counts[s] else 0.0 for s in sources]


def paths_gradient(graph: Graph, budget: int | None = None) -> list[float]:
    """do/dx for every input element of the graph, by enumerating every path."""
    g, _, counts = _prepare(graph)
    if g.output is None:
        return [0.0 for _ in g.inputs]
    check_budget(counts, g.inputs, budget)  # counted over every edge, as Graph.count_paths
    live_counts, live = count_and_merge(graph_preds(g), g.output)
    return sum_over_all_paths(live, live_counts, g.output, g.inputs)


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


def _scalar_program(f: Callable[..., Any], args: Sequence[Any], argnums: tuple[int, ...]) -> Any:
    """A program whose values are all Python floats, recorded on the reverse engine's tape:
    its FloatVars are the Wengert list with the local derivatives on them (~0.3 us per op,
    against ~10 us per op for adkit.trace and the Graph's edges). Returns (value, counts,
    live, inputs, output, prep), counts and live as `count_and_merge` gives them, once the
    budget is checked; or None when the Graph route must take it: arrays or numpy scalars,
    a zero local derivative (the strong-zero rule must classify it as exact or not), a
    non-finite value or local derivative (whose refusal names the culprit), or f raising
    (the Graph route raises it again)."""
    from adkit.trees import as_input, tree_flatten

    try:
        if not all(type(as_input(leaf, "")) is float for n in argnums for leaf in tree_flatten(args[n])[0]):
            return None
        trace, prep, out = record(f, args, argnums)
    except Exception:  # noqa: BLE001 (the generic route raises it with its own diagnosis)
        return None
    try:
        entries = trace.entries
        traced = out.__class__ is FloatVar and out._trace is trace
        value = out.value if traced else out
        if type(value) is not float or not math.isfinite(value) or {e.__class__ for e in entries} != {FloatVar}:
            return None
        inputs = list(range(prep.total))  # the tape starts with the inputs
        if not traced:  # f does not depend on its inputs
            return value, [], [], inputs, None, prep
        for k, v in enumerate(entries):
            v.adj = k  # the node's index (the tape is released unswept)
        merged = _tape_count_and_merge(entries, out.adj)
        if merged is not None:
            check_budget(merged[0], inputs)
            return value, *merged, inputs, out.adj, prep
        return None
    finally:
        trace.release()


def _tape_count_and_merge(entries: Sequence[Any], out: int) -> tuple[list[int], list[list[tuple[int, Any]]]] | None:
    """`count_and_merge` read straight off a tape of FloatVars whose `adj` is their index
    (the same pass, without building the predecessor lists first: it is most of the
    engine's per-graph cost). None if a live edge's z is zero, not finite or not a scalar.
    A fast-path op's z are its d0, d1; a generic op's float result (in0 None) has its Node
    in d1."""
    counts = [0] * len(entries)
    counts[out] = 1
    live: list[list[tuple[int, Any]]] = [[] for _ in entries]
    for node in range(out, -1, -1):
        n = counts[node]
        if not n:
            continue
        v = entries[node]
        a = v.in0
        onward = live[node]
        end, z_end = onward[0] if node != out and len(onward) == 1 else (node, 1.0)
        if a is None:
            if v.d1 is not None and not _generic_op_edges(v.d1, n, end, z_end, counts, live):
                return None
            continue  # an input, or a generic op's edges pushed
        z = v.d0
        if z == 0.0 or z - z != 0.0:  # zero, inf or NaN
            return None
        i = a.adj
        counts[i] += n
        live[i].append((end, z * z_end))
        b = v.in1  # (d1 is unset when in1 is None)
        if b is not None:
            z = v.d1
            if z == 0.0 or z - z != 0.0:
                return None
            i = b.adj
            counts[i] += n
            live[i].append((end, z * z_end))
    return counts, live


def _generic_op_edges(
    node: Any, n: int, end: int, z_end: float, counts: list[int], live: list[list[tuple[int, Any]]]
) -> bool:
    """`_tape_count_and_merge`'s step for the float result of an op without a scalar fast
    path (n-ary product, ops with parameters): its local derivatives are its VJP at 1.0,
    as `graph.local_jacobians` takes them. False if one is not a finite nonzero scalar."""
    with np.errstate(all="ignore"):  # a non-finite one declines the tape; the Graph route warns
        cotangents = node.cotangents(1.0)
    for parent, z in zip(node.parents, cotangents):
        if parent is None:
            continue
        if not isinstance(z, float):  # (np.float64 is one)
            if np.ndim(z) != 0 or np.iscomplexobj(z):
                return False
            z = float(z)
        if z == 0.0 or z - z != 0.0:
            return False
        i = parent.adj
        counts[i] += n
        live[i].append((end, z * z_end))
    return True


@gc_paused()  # as in reverse mode: the collector's passes over the tape would cost more than it
def paths_value_and_grad(f: Callable[..., Any], args: Sequence[Any], argnums: tuple[int, ...], single: bool):
    """The engine entry point used by adkit.grad(f, engine="paths"): the arguments not in
    argnums are constants. A program of Python floats is recorded on the reverse engine's
    tape (`_scalar_program`); anything else is traced into a Graph and scalarised."""
    recorded = _scalar_program(f, args, argnums)
    if recorded is None:
        return _graph_value_and_grad(f, args, argnums, single)
    value, counts, live, inputs, output, prep = recorded
    grads = [0.0] * len(inputs) if output is None else sum_over_all_paths(live, counts, output, inputs)
    if not all(math.isfinite(g) for g in grads):
        raise NonFiniteDerivativeError(_NONFINITE_SUM.format(where="every local derivative is finite"))
    per_leaf = iter(grads)
    return value, prep.rebuild([[next(per_leaf) for _ in leaves] for leaves in prep.leaves], single)


_NONFINITE_SUM = (
    "the sum over paths is not finite: a local derivative on some path is inf or NaN ({where}), or the "
    "sum overflows. The function is not differentiable at this point, or its derivative is too large "
    "for float64."
)


def _graph_value_and_grad(f: Callable[..., Any], args: Sequence[Any], argnums: tuple[int, ...], single: bool):
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
        raise NonFiniteDerivativeError(_NONFINITE_SUM.format(where=_first_nonfinite_edge(graph)))
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
