"""Graph families for the harness: Aggarwal's deep product-node graphs, chains, layered DAGs.

Each family returns a `GraphSpec`: the function `f`, its arguments, the exact gradient
(from a closed form, never from an engine), the number of paths from the input to the
output, and node and edge counts.

Product-node graph [AGG I]: input w; `depth` layers of `width` product nodes; each node
is its own constant times the product of every node of the layer below; the output is
the product of the last layer. Every path picks one node per layer, so there are
width**depth paths. The constants of each layer are powers of two whose product is 1,
and w = 1, so every node value is an exact power of two (finite and away from 0 at any
depth), path products differ from path to path (z(i, j) = c_j / v_i), and the output is
exactly 1. The output is a monomial C w**N with N = width**depth, so the exact
derivative is N * out / w = width**depth. Past float64 (width**depth > 1.8e308: depth
> 1024 at width 2, > 170 at width 64) the spec says so (`overflow`, and
`exact_grad_log10`), and the engines raise NonFiniteDerivativeError, never a silent inf.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

FLOAT64_MAX_LOG10 = math.log10(np.finfo(np.float64).max)


def _log10_int(n: int) -> float:
    """log10 of a positive int of any size (math.log10 is exact enough and never overflows)."""
    return math.log10(n)


@dataclass
class GraphSpec:
    """A benchmark problem: f, its arguments and what is known about it exactly."""

    name: str
    f: Callable[..., Any]
    args: tuple[Any, ...]
    exact_grad: Any  # the exact gradient w.r.t. args[0], or None where it overflows float64
    n_paths: int
    n_nodes: int
    n_edges: int
    exact_grad_log10: float = 0.0
    params: dict[str, Any] = field(default_factory=dict)

    @property
    def overflow(self) -> bool:
        """True when the exact derivative (or the engines' intermediate values on the way
        to it) leaves the float64 range."""
        return self.exact_grad is None or self.exact_grad_log10 > FLOAT64_MAX_LOG10

    def describe(self) -> str:
        grad = (
            f"exact gradient ~ 10^{self.exact_grad_log10:.1f}: beyond float64 (max ~1.8e308, "
            "counting the values on the way)"
            if self.overflow
            else f"exact gradient {self.exact_grad!r}"
        )
        from adkit.display import format_count

        return f"{self.name}: {self.n_nodes} nodes, {self.n_edges} edges, {format_count(self.n_paths)} paths, {grad}"


def _layer_constants(width: int, depth: int) -> list[list[float]]:
    """Per layer, `width` powers of two whose product is exactly 1 (varied by layer)."""
    layers = []
    for d in range(depth):
        exps = [((d * 7 + k * 3) % 5) - 2 for k in range(width)]
        exps[-1] -= sum(exps)  # product of the layer's constants = 2**0
        layers.append([2.0**e for e in exps])
    return layers


def product_graph(depth: int, width: int = 2, nary: bool = False) -> GraphSpec:
    """Aggarwal's deep product-node graph as a scalar program.

    By default each product node is computed with one binary multiply per edge (the
    program the speed targets are about); with `nary=True` each is one call of the
    lecture's n-ary product node (`adkit.product`), so the traced graph is exactly the
    lecture's graph. `n_nodes` and `n_edges` count the lecture's graph (product nodes
    as single nodes) in both cases; the binary program has more, smaller nodes.

    Every path product equals out / w: z(i, j) = c_j prod_{k != i} v_k = v_j / v_i, so
    the product along any path telescopes. The local derivatives differ from edge to
    edge; their products along whole paths cannot, in any all-to-all product graph.
    """
    if depth < 1 or width < 1:
        raise ValueError("product_graph needs depth >= 1 and width >= 1")
    consts = _layer_constants(width, depth)
    if nary:
        from adkit.graph import label
        from adkit.ops import REGISTRY

        product = REGISTRY["product"]

        def f(w: Any) -> Any:
            layer = [w]
            for cs in consts:
                layer = [product(c, *layer) for c in cs]
            return label(product(*layer), "o") if len(layer) > 1 else layer[0]  # o: the lecture's name

    else:

        def f(w: Any) -> Any:
            layer = [w]
            for cs in consts:
                new = []
                for c in cs:
                    acc = c
                    for x in layer:
                        acc = acc * x
                    new.append(acc)
                layer = new
            out = layer[0]
            for x in layer[1:]:
                out = out * x
            return out

    n_paths = width**depth
    log10 = _log10_int(n_paths)
    try:
        exact: float | None = float(n_paths)
    except OverflowError:
        exact = None
    # tangents and adjoints on the way reach the gradient times a node value (at most
    # 2**max_exp): past the float range there, every engine overflows
    max_exp = max(abs(math.log2(c)) for cs in consts for c in cs)
    if exact is not None and log10 + max_exp * math.log10(2.0) > FLOAT64_MAX_LOG10:
        exact = None
    n_nodes = 1 + width * depth + 1
    n_edges = width + width * width * (depth - 1) + width
    return GraphSpec(
        f"product_graph(depth={depth}, width={width})",
        f,
        (1.0,),
        exact,
        n_paths,
        n_nodes,
        n_edges,
        log10,
        {"depth": depth, "width": width},
    )


def chain(depth: int, op: str = "sin") -> GraphSpec:
    """x -> g(g(...g(x))): one path; exact gradient by the chain rule in closed form."""
    fns = {
        "sin": (math.sin, math.cos),
        "tanh": (math.tanh, lambda v: 1.0 - math.tanh(v) ** 2),
    }
    if op not in fns:
        raise ValueError(f"chain op must be one of {', '.join(fns)}")
    g, dg = fns[op]

    def f(x: Any) -> Any:
        for _ in range(depth):
            x = np.sin(x) if op == "sin" else np.tanh(x)
        return x

    x0 = 0.7
    grad, v = 1.0, x0
    for _ in range(depth):
        grad *= dg(v)
        v = g(v)
    return GraphSpec(
        f"chain(depth={depth}, op={op})",
        f,
        (x0,),
        grad,
        1,
        depth + 1,
        depth,
        math.log10(abs(grad)) if grad else 0.0,
        {"depth": depth, "op": op},
    )


def layered_dag(depth: int, width: int = 4, activation: str = "tanh", seed: int = 0) -> GraphSpec:
    """An MLP-like layered DAG on one scalar input: dense layers with tanh or sigmoid nodes.

    Paths: width**depth (every node feeds every node of the next layer). The exact
    gradient comes from the same recursion written out by hand in numpy (an independent
    forward-mode computation with the activation's closed-form derivative).
    """
    rng = np.random.default_rng(seed)
    weights = [rng.normal(size=(width, 1))] + [
        rng.normal(size=(width, width)) / math.sqrt(width) for _ in range(depth - 1)
    ]
    readout = rng.normal(size=width) / math.sqrt(width)
    act = {"tanh": (np.tanh, lambda a: 1 - a * a), "sigmoid": (lambda z: 1 / (1 + np.exp(-z)), lambda a: a * (1 - a))}
    if activation not in act:
        raise ValueError("activation must be tanh or sigmoid")
    phi, dphi = act[activation]

    def f(x: Any) -> Any:
        h = x
        for k, W in enumerate(weights):
            z = W[:, 0] * h if k == 0 else W @ h
            h = np.tanh(z) if activation == "tanh" else 1 / (1 + np.exp(-z))
        return readout @ h

    x0 = 0.3
    h, dh = np.array([x0]), np.array([1.0])
    for k, W in enumerate(weights):
        z, dz = (W[:, 0] * h[0], W[:, 0] * dh[0]) if k == 0 else (W @ h, W @ dh)
        h = phi(z)
        dh = dphi(h) * dz
    grad = float(readout @ dh)
    n_edges = width + width * width * (depth - 1) + width
    return GraphSpec(
        f"layered_dag(depth={depth}, width={width}, {activation})",
        f,
        (x0,),
        grad,
        width**depth,
        1 + width * depth + 1,
        n_edges,
        math.log10(abs(grad)) if grad else 0.0,
        {"depth": depth, "width": width, "activation": activation},
    )


def from_function(f: Callable[..., Any], *args: Any, exact_grad: Any = None, name: str | None = None) -> GraphSpec:
    """A spec for any user function: counts from its traced graph; the exact gradient is
    the symbolic engine's (sympy) unless given."""
    from adkit.graph import trace

    g = trace(f, *args)
    if exact_grad is None:
        from adkit.engines.symbolic import symbolic_derivative

        vals = symbolic_derivative(f, *args).values[0]
        exact_grad = np.asarray(vals, dtype=float) if isinstance(vals, np.ndarray) else float(vals)
    sg = g.scalarize()
    return GraphSpec(
        name or getattr(f, "__name__", "f"),
        f,
        tuple(args),
        exact_grad,
        sg.count_paths(sg.inputs[0]),
        len(sg.nodes),
        len(sg.edges),
    )


FAMILIES: dict[str, Callable[..., GraphSpec]] = {"product": product_graph, "chain": chain, "layered": layered_dag}

__all__ = ["FAMILIES", "GraphSpec", "chain", "from_function", "layered_dag", "product_graph"]
