"""Graph: the traced computational DAG (Wengert list) that graph-based engines read.

`trace(f, *args)` runs f once on graph tracers and returns a `Graph`: one node per op
(op, input nodes by argument position, value, a readable label), and one edge per
(input position -> node) carrying the local derivative z(i, j) = dy(j)/dy(i) at the
traced point [AGG I]. Parents are an ordered tuple with positions, never a set: x * x
has two edges to x, so paths are not undercounted.

Array nodes can be *scalarised* (one node per element; an edge wherever a Jacobian
entry of an op is nonzero), which is what path counting and path enumeration need:
an MLP with three hidden layers of 100 units has 100**3 = 10**6 paths from each input
to one output.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from adkit.errors import AdkitTypeError, AdkitValueError, NestedEngineError, translate_numpy_refusals
from adkit.ops.core import (
    Op,
    Trace,
    Tracer,
    is_complex,
    lift_object,
    local_partials,
    primal,
    shape_of,
)

NESTING_ADVICE = (
    "These engines run f on plain numbers, so the outer derivative would be lost. Nest forward "
    "or reverse mode instead (engine='forward' / 'reverse' inside), or call the symbolic, numeric or "
    "paths engine outermost."
)


def refuse_nesting(args: Sequence[Any], who: str) -> None:
    """Refuse to run `who` (the symbolic, numeric or paths engine, adkit.trace) on values
    traced by an enclosing derivative call: it runs f on plain numbers, so the outer
    derivative would be lost."""
    from adkit.trees import tree_flatten

    for n, arg in enumerate(args):
        if any(isinstance(leaf, Tracer) for leaf in tree_flatten(arg)[0]):
            raise NestedEngineError(
                f"{who} was called inside another derivative: argument {n} is a value traced by the "
                f"enclosing grad / jvp / jacobian. {NESTING_ADVICE}"
            )


@dataclass
class Node:
    """One node of the graph: an input (op None) or an op applied to earlier nodes."""

    id: int
    op: Op | None
    parents: tuple[int | None, ...]  # node id per argument position; None for a constant
    consts: tuple[Any, ...]  # the constant arguments (None where a parent is)
    params: dict[str, Any]
    value: Any
    label: str

    @property
    def name(self) -> str:
        """Wengert-list name: a1, a2, ... in evaluation order (the lectures' naming)."""
        return f"a{self.id + 1}"

    @property
    def shape(self) -> tuple[int, ...]:
        return shape_of(self.value)

    def describe(self) -> str:
        if self.op is None:
            return f"{self.label} (input)"
        args = ", ".join(f"n{p}" if p is not None else _fmt(c) for p, c in zip(self.parents, self.consts))
        return f"{self.label} = {self.op.name}({args})"


@dataclass
class Edge:
    """Edge i -> j at argument position `position` of j, with z(i, j) = dy(j)/dy(i)."""

    src: int
    dst: int
    position: int
    z: Any
    exact_zero: bool = False  # z is 0 by structure (a mask, a constant 0): paths through it carry 0


def _fmt(v: Any) -> str:
    v = primal(v)
    if np.ndim(v) == 0:
        try:
            return f"{float(v):.4g}"
        except (TypeError, ValueError):
            return str(v)
    return f"array{np.shape(v)}"


class GraphTrace(Trace):
    """Records every op applied to its tracers as a graph node."""

    __slots__ = ("nodes",)

    def __init__(self) -> None:
        super().__init__()
        self.nodes: list[Node] = []

    def new_input(self, value: Any, label: str) -> GraphTracer:
        node = Node(len(self.nodes), None, (), (), {}, value, label)
        self.nodes.append(node)
        return GraphTracer(value, node.id, self)

    def process(self, op: Op, args: Sequence[Any], params: dict[str, Any]) -> Any:
        parents: list[int | None] = []
        consts: list[Any] = []
        vals: list[Any] = []
        for a in args:
            if isinstance(a, GraphTracer) and a._trace is self:
                parents.append(a.node)
                consts.append(None)
                vals.append(a.value)
            elif isinstance(a, Tracer):
                raise NestedEngineError(
                    f"{op.name} mixes a value traced by an enclosing derivative call (a closure over the "
                    "outer variable) into a graph being traced (adkit.trace, or the symbolic or paths "
                    f"engine). {NESTING_ADVICE}"
                )
            else:
                parents.append(None)
                consts.append(a)
                vals.append(a)
        out = op(*vals, **params)
        if is_complex(out):
            raise AdkitTypeError(
                f"{op.name} made a complex value: graphs (adkit.trace, the symbolic and paths engines) hold "
                "real values only, one real local derivative per edge. Use engine='reverse' or 'forward', "
                'which follow JAX\'s convention for complex values (README, "Complex numbers")'
            )
        node = Node(len(self.nodes), op, tuple(parents), tuple(consts), dict(params), out, op.name)
        self.nodes.append(node)
        return GraphTracer(out, node.id, self)


class GraphTracer(Tracer):
    __slots__ = ("value", "node", "_trace")

    def __init__(self, value: Any, node: int, trace: GraphTrace) -> None:
        self.value = value
        self.node = node
        self._trace = trace

    def __repr__(self) -> str:
        return f"GraphTracer(node={self.node}, value={self.value!r})"


@dataclass
class Graph:
    """A traced computation: nodes in evaluation order, edges with local derivatives."""

    nodes: list[Node]
    inputs: list[int]
    output: int | None
    input_names: list[str] = field(default_factory=list)
    scalar: bool = False
    _edges: list[Edge] | None = field(default=None, repr=False)

    # --- structure ----------------------------------------------------------------
    @property
    def edges(self) -> list[Edge]:
        """Every edge with its local derivative z(i, j) at the traced point."""
        if self._edges is None:
            self._edges = self._local_derivatives()
        return self._edges

    def _local_derivatives(self) -> list[Edge]:
        edges = []
        for node in self.nodes:
            if node.op is None or self.scalar:
                continue
            for pos, z in enumerate(local_jacobians(node, self.nodes)):
                if node.parents[pos] is not None:
                    exact = type(z) is float and z == 0 and bool(np.all(exact_zero_entries(node, self.nodes, pos)))
                    edges.append(Edge(node.parents[pos], node.id, pos, z, exact))
        return edges

    @property
    def value(self) -> Any:
        return None if self.output is None else self.nodes[self.output].value

    def successors(self) -> list[list[Edge]]:
        out: list[list[Edge]] = [[] for _ in self.nodes]
        for e in self.edges:
            out[e.src].append(e)
        return out

    def is_scalar(self) -> bool:
        return all(n.shape == () for n in self.nodes)

    def __len__(self) -> int:
        return len(self.nodes)

    # --- scalarisation -----------------------------------------------------------------
    def scalarize(self) -> Graph:
        """One node per array element; an edge wherever a local Jacobian entry is nonzero."""
        if self.scalar or self.is_scalar():
            g = Graph(self.nodes, self.inputs, self.output, self.input_names, scalar=False)
            g._edges = [e for e in self.edges]
            g.scalar = True
            return g
        nodes: list[Node] = []
        edges: list[Edge] = []
        ids: dict[tuple[int, int], int] = {}
        inputs: list[int] = []
        names: list[str] = []
        for node in self.nodes:
            value = np.asarray(node.value)
            size = value.size
            for k in range(size):
                idx = np.unravel_index(k, value.shape) if value.ndim else ()
                suffix = "[" + ",".join(str(int(i)) for i in idx) + "]" if value.ndim else ""
                nid = len(nodes)
                ids[(node.id, k)] = nid
                nodes.append(Node(nid, node.op, (), (), node.params, float(value.reshape(-1)[k]), node.label + suffix))
                if node.op is None:
                    inputs.append(nid)
                    names.append(node.label + suffix)
            if node.op is None:
                continue
            for pos, jac in enumerate(local_jacobians(node, self.nodes)):
                parent = node.parents[pos]
                if parent is None:
                    continue
                psize = np.asarray(self.nodes[parent].value).size
                jac = np.asarray(jac, dtype=float).reshape(size, psize)
                if node.op.partials is not None:
                    # an elementwise op: every entry its broadcasting pairs is an edge, except
                    # exact zeros (a mask); a zero that only happens at this point stays an
                    # edge, so that 0 x inf on a path stays NaN
                    ones = np.ones(np.shape(np.asarray(node.value)))
                    pattern = _elementwise_jacobian(ones, np.shape(np.asarray(self.nodes[parent].value)), ones.shape)
                    exact = np.broadcast_to(exact_zero_entries(node, self.nodes, pos), ones.shape).reshape(-1, 1)
                    rows, cols = np.nonzero(pattern.reshape(size, psize) * ~((jac == 0) & exact))
                else:
                    rows, cols = np.nonzero(jac)
                for r, c in zip(rows.tolist(), cols.tolist()):
                    edges.append(Edge(ids[(parent, c)], ids[(node.id, r)], pos, float(jac[r, c])))
        out_node = None
        if self.output is not None:
            if np.asarray(self.nodes[self.output].value).size != 1:
                raise AdkitValueError("only a graph with one scalar output can be scalarised for paths")
            out_node = ids[(self.output, 0)]
        for e in edges:
            parents = list(nodes[e.dst].parents)
            parents.append(e.src)
            nodes[e.dst].parents = tuple(parents)
        g = Graph(nodes, inputs, out_node, names, scalar=True)
        g._edges = edges
        return g

    # --- paths ------------------------------------------------------------------------------
    def count_paths(self, source: int | str | None = None) -> int:
        """Number of paths from the input(s) to the output, by dynamic programming.

        N(o) = 1 and N(i) = sum over edges i -> j of N(j), computed backwards over the
        topological order; exact Python integers, however large. With `source` (an input
        node id or name) only the paths from that input; otherwise from every input.
        """
        g = self if self.scalar else self.scalarize()
        counts = g.path_counts_to_output()
        sources = g._sources(source)
        return sum(counts[s] for s in sources)

    def path_counts_to_output(self) -> list[int]:
        """N(i): the number of paths from each node to the output."""
        counts = [0] * len(self.nodes)
        if self.output is None:
            return counts
        counts[self.output] = 1
        succ = self.successors()
        for i in range(len(self.nodes) - 1, -1, -1):
            if i != self.output:
                counts[i] = sum(counts[e.dst] for e in succ[i])
        return counts

    def _sources(self, source: int | str | None) -> list[int]:
        if source is None:
            return list(self.inputs)
        if isinstance(source, str):
            matches = [i for i, n in zip(self.inputs, self.input_names) if n == source]
            if not matches:
                matches = [i for i, n in zip(self.inputs, self.input_names) if n.split("[")[0] == source]
            if not matches:
                raise AdkitValueError(f"no input named {source!r}; inputs are {', '.join(self.input_names)}")
            return matches
        return [int(source)]

    # --- display ------------------------------------------------------------------------------
    def to_dot(self, highlight: Sequence[int] | None = None) -> str:
        """Graphviz DOT text: nodes with values, edges labelled with z(i, j)."""
        on_path = set(zip(highlight, highlight[1:])) if highlight else set()
        lines = ["digraph adkit {", "  rankdir=LR;", '  node [shape=box, fontname="Helvetica"];']
        for n in self.nodes:
            shape = "ellipse" if n.op is None else "box"
            lines.append(f'  n{n.id} [label="{_dot_escape(n.label)}\\n{_dot_escape(_fmt(n.value))}", shape={shape}];')
        for e in self.edges:
            style = ", color=red, penwidth=2" if (e.src, e.dst) in on_path else ""
            lines.append(f'  n{e.src} -> n{e.dst} [label="{_dot_escape(_fmt(e.z))}"{style}];')
        lines.append("}")
        return "\n".join(lines)

    def draw(
        self,
        ax: Any = None,
        highlight: Sequence[int] | None = None,
        top_k: int | None = None,
        title: str | None = None,
        edge_labels: bool = True,
    ) -> Any:
        """Draw with matplotlib: node values, and the local derivative beside each edge;
        `top_k` / `highlight` draw paths with a legend. Returns the Axes."""
        from adkit.display import draw_graph  # matplotlib is imported there, lazily

        return draw_graph(self, ax=ax, highlight=highlight, top_k=top_k, title=title, edge_labels=edge_labels)

    def __repr__(self) -> str:
        kind = "scalar graph" if self.scalar or self.is_scalar() else "graph"
        return f"<adkit {kind}: {len(self.nodes)} nodes, {len(self.edges)} edges, inputs {', '.join(self.input_names)}>"

    def evaluation_trace(self) -> Any:
        """The forward evaluation trace as a table (a1 = w0, a4 = a2 * a3, ...)."""
        from adkit.display import evaluation_trace

        return evaluation_trace(self)

    def tangent_trace(self, seed: str | int = 0) -> Any:
        """Forward mode by hand for one seeded input, as a table with the numbers."""
        from adkit.display import tangent_trace

        return tangent_trace(self, seed)

    def adjoint_trace(self) -> Any:
        """Reverse mode by hand (adjoints abar_i), as a table with the numbers."""
        from adkit.display import adjoint_trace

        return adjoint_trace(self)

    def _repr_html_(self) -> str | None:
        """Jupyter's display(G): the drawing (up to display.MAX_DRAWN_NODES nodes) and the
        start of the evaluation trace."""
        try:
            from adkit.display import graph_html

            return graph_html(self)
        except Exception:  # noqa: BLE001 (a display hook never raises)
            return None

    def _repr_svg_(self) -> str | None:
        """The drawing as SVG, or None (text only) for a graph too large to draw legibly."""
        try:
            from adkit.display import graph_svg

            return graph_svg(self)
        except Exception:  # noqa: BLE001 (a display hook never raises)
            return None


def _dot_escape(s: str) -> str:
    return s.replace("\\", "\\\\").replace('"', '\\"')


def local_jacobians(node: Node, nodes: Sequence[Node]) -> list[Any]:
    """Local derivative of `node` w.r.t. each argument position, at the traced values.

    Scalar node and scalar input: a float. Otherwise a Jacobian of shape
    (node.size, input.size), from the op's partials (elementwise ops) or from its VJP
    rule applied to each basis cotangent (structural ops). None for constant arguments.
    """
    op = node.op
    assert op is not None
    vals = [nodes[p].value if p is not None else c for p, c in zip(node.parents, node.consts)]
    needed = [p is not None for p in node.parents]
    out = node.value
    out_shape = shape_of(out)
    out_size = math.prod(out_shape)
    if op.nograd:
        return [None if not need else np.zeros((out_size, math.prod(shape_of(v)))) for v, need in zip(vals, needed)]
    if op.partials is not None:
        parts = local_partials(op, out, vals, node.params, needed)
        result = []
        for p, v, need in zip(parts, vals, needed):
            if not need:
                result.append(None)
                continue
            in_shape = shape_of(v)
            if out_shape == () and in_shape == ():
                result.append(float(primal(p)))
                continue
            result.append(_elementwise_jacobian(np.asarray(primal(p), dtype=float), in_shape, out_shape))
        return result
    rows: list[list[Any]] = [[] for _ in vals]
    for k in range(out_size):
        g = np.zeros(out_shape)
        g.reshape(-1)[k] = 1.0
        cots = op.vjp(g if out_shape else 1.0, vals, out, needed, **node.params)
        for pos, (c, need) in enumerate(zip(cots, needed)):
            if need:
                rows[pos].append(np.asarray(primal(c), dtype=float).reshape(-1))
    result = []
    for pos, need in enumerate(needed):
        if not need:
            result.append(None)
        elif out_shape == () and shape_of(vals[pos]) == ():
            result.append(float(rows[pos][0][0]))
        elif not rows[pos]:  # an empty output: a Jacobian with no rows
            result.append(np.zeros((0, math.prod(shape_of(vals[pos])))))
        else:
            result.append(np.stack(rows[pos]))
    return result


def exact_zero_entries(node: Node, nodes: Sequence[Node], pos: int) -> Any:
    """Where the local derivative of `node` w.r.t. argument `pos` is an exact zero (a mask,
    not a zero that happens at this point: adkit.ops.strong_zero.exact_zeros); False if nowhere."""
    from adkit.ops import strong_zero

    op = node.op
    if not isinstance(op.partials, tuple):
        return False
    vals = [nodes[p].value if p is not None else c for p, c in zip(node.parents, node.consts)]
    needed = [p is not None for p in node.parents]
    partial = local_partials(op, node.value, vals, node.params, needed)[pos]
    return strong_zero.exact_zeros(op, pos, tuple(needed), partial, vals, node.params)


def _elementwise_jacobian(p: np.ndarray, in_shape: tuple[int, ...], out_shape: tuple[int, ...]) -> np.ndarray:
    """Jacobian of an elementwise op output w.r.t. one (possibly broadcast) input."""
    out_size, in_size = math.prod(out_shape), math.prod(in_shape)
    p_full = np.broadcast_to(p, out_shape).reshape(-1)
    src = np.broadcast_to(np.arange(in_size).reshape(in_shape), out_shape).reshape(-1)
    jac = np.zeros((out_size, in_size))
    np.add.at(jac, (np.arange(out_size), src), p_full)
    return jac


def label(x: Any, name: str) -> Any:
    """Name the graph node of `x` (c = ad.label(a + b, "c")) when f is traced; x unchanged.

    Outside adkit.trace, and under the other engines, it does nothing, so a function can
    carry the lecture's names for its intermediate values and still be differentiated.
    """
    v = x
    while isinstance(v, Tracer):
        if isinstance(v, GraphTracer) and v._trace.active:
            v._trace.nodes[v.node].label = str(name)
        v = v.value
    return x


def trace(
    f: Callable[..., Any],
    *args: Any,
    names: Sequence[str] | None = None,
    argnums: int | Sequence[int] | None = None,
) -> Graph:
    """Run f once on graph tracers and return its computational graph.

    Inputs are named after f's parameters (or `names`); containers (dict, list, tuple)
    of arrays are accepted, each leaf an input node. With `argnums`, only those
    arguments are traced: the others reach f unchanged, as constants (a loop count
    `for i in range(n)`, an index `(a, b, c)[i]`), as in grad(f, argnums).
    """
    from adkit.trees import argnums_tuple, as_input, refuse_complex_inputs, tree_flatten, tree_unflatten

    refuse_nesting(args, "adkit.trace (which the symbolic and paths engines use)")
    traced_nums = range(len(args)) if argnums is None else argnums_tuple(argnums, len(args))
    gt = GraphTrace()
    arg_names = list(names) if names is not None else _param_names(f, len(args))
    call_args = list(args)
    input_ids: list[int] = []
    labels: list[str] = []
    with translate_numpy_refusals, gt:
        for n in traced_nums:
            base = arg_names[n] if n < len(arg_names) else f"x{n}"
            leaves, treedef = tree_flatten(args[n])
            tracers = []
            for k, leaf in enumerate(leaves):
                label = base if len(leaves) == 1 else f"{base}{k}"
                leaf = as_input(leaf, f"argument {n}")
                refuse_complex_inputs([leaf], "adkit.trace (and the symbolic and paths engines)")
                t = gt.new_input(leaf, label)
                input_ids.append(t.node)
                labels.append(label)
                tracers.append(t)
            call_args[n] = tree_unflatten(treedef, tracers)
        out = lift_object(f(*call_args))  # np.array([x, y]): one traced array
    output = out.node if isinstance(out, GraphTracer) and out._trace is gt else None
    return Graph(gt.nodes, input_ids, output, labels)


def _param_names(f: Callable[..., Any], n: int) -> list[str]:
    import inspect

    try:
        params = [
            p.name
            for p in inspect.signature(f).parameters.values()
            if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)
        ]
    except (TypeError, ValueError):
        params = []
    names = params[:n]
    names += [f"x{i}" for i in range(len(names), n)]
    return names
