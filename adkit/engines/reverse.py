"""Reverse mode: a tape (Wengert list) recorded while f runs, then one backward sweep.

Each op appends a node to the tape: its traced inputs (earlier nodes) and what the sweep
needs. The sweep walks the tape backwards, accumulating adjoints
    S(i, o) = sum over successors j of S(j, o) * z(i, j),   S(o, o) = 1
(the lecture's dynamic program, "sum all outgoing edges"): every edge is touched once.
The adjoint lives on the node (`adj`), so the sweep needs no index table.

A scalar op's node is its result itself (`FloatVar`: value, two inputs, two local
derivatives): one object per op, the cheapest record Python allows. Other ops get a
`Node` holding only what their rule reads, so large activations are not kept alive.
A FloatVar points back to its trace (`_trace`), so a tape is a reference cycle while it
is recorded; `ReverseTrace.release()` breaks it when the derivative call is done, and
everything is then freed by reference counting, never left to the cyclic garbage
collector. The sweep is a loop, not a recursion: a chain of a million ops is fine.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Any

import numpy as np

from adkit.engines.fastpath import install
from adkit.errors import translate_numpy_refusals
from adkit.ops import strong_zero
from adkit.ops.array import unbroadcast
from adkit.ops.core import (
    REGISTRY,
    Op,
    ShapeOnly,
    Trace,
    Tracer,
    all_finite,
    evaluate,
    is_complex,
    local_partials,
    primal,
    shape_of,
    zeros_are_structural,
)
from adkit.trees import Prepared, output_value

UNTOUCHED = float(0)  # the initial adjoint: compared by identity


class _DeadTape:
    """The tape of a finished derivative call: recording onto it is a leaked tracer."""

    def __len__(self) -> int:
        return 0

    def append(self, entry: Any) -> None:
        from adkit.errors import LeakedTracerError

        raise LeakedTracerError(
            "a traced value from a grad/vjp call that has already returned was used (a leaked "
            "tracer): do not keep traced values in globals or closures that outlive the call."
        )


_DEAD_TAPE = _DeadTape()


class Node:
    """The tape node of a generic op (or of a non-float input, with op None): the input
    nodes, what its VJP or partials need in the sweep, and the adjoint."""

    __slots__ = ("op", "parents", "vals", "out", "params", "adj", "finite", "live", "real_in")

    def __init__(self, op: Op | None, parents: Sequence[Any], vals: list[Any], out: Any, params: dict[str, Any]):
        self.op = op
        self.parents = parents
        self.vals = vals
        self.out = out
        self.params = params
        self.adj: Any = UNTOUCHED
        self.finite: bool | None = None  # for an input: its gradient was checked finite in the sweep
        self.live: Any = None  # strict sweeps: entries of adj the seed reaches (adkit.ops.strong_zero)
        self.real_in: Any = None  # a complex op's real inputs, whose cotangents are real parts (see `process`)

    def cotangents(self, g: Any) -> Sequence[Any]:
        """One cotangent per input (None for constants): the VJP of this node at g."""
        op, vals = self.op, self.vals
        needed = [p is not None for p in self.parents]
        if op.partials is None:
            cots = op.vjp(g, vals, self.out, needed, **self.params)
            return cots if self.real_in is None else _real_parts(cots, self.real_in)
        parts = local_partials(op, self.out, vals, self.params, needed, quiet=False)  # the sweep is quiet
        result = []
        g_shape = shape_of(g)
        for p, v in zip(parts, vals):
            if p is None:
                result.append(None)
                continue
            owned = type(p) is np.ndarray and _is_scratch(p, g) and not any(p is w for w in (*vals, self.out))
            c = _mul(g, p, p if owned else None)
            v_shape = shape_of(v)
            result.append(c if v_shape == g_shape and shape_of(c) == g_shape else unbroadcast(c, v_shape))
        return result if self.real_in is None else _real_parts(result, self.real_in)

    def strict_cotangents(self, g: Any, live: Any) -> tuple[list[Any], list[Any]]:
        """The VJP at g under the strong-zero rule (adkit.ops.strong_zero): one cotangent and
        one live mask per input (None for constants); dead entries are exact zeros."""
        op, vals, out, params = self.op, self.vals, self.out, self.params
        needed = [p is not None for p in self.parents]
        traced = tuple(needed)
        if op.partials is None:
            cots = op.vjp(g, vals, out, needed, **params)
            if all(zeros_are_structural(op, i, traced) for i, need in enumerate(needed) if need):
                lives = strong_zero.through_linear(
                    lambda w: op.vjp(w[0], vals, out, needed, **params), [live], [shape_of(out)]
                )
            else:
                lives = [
                    strong_zero.conservative([live], shape_of(v)) if need else None for v, need in zip(vals, needed)
                ]
            if self.real_in is not None:
                cots = _real_parts(cots, self.real_in)
            return [None if c is None else strong_zero.keep_live(c, lv) for c, lv in zip(cots, lives)], lives
        cots, lives = [], []
        for i, (p, v) in enumerate(zip(local_partials(op, out, vals, params, needed), vals)):
            if p is None:
                cots.append(None)
                lives.append(None)
                continue
            c = g * p
            edge = np.broadcast_to(strong_zero.edge_live(op, i, traced, p, live, vals, params), shape_of(c))
            cots.append(unbroadcast(strong_zero.keep_live(c, edge), shape_of(v)))
            lives.append(strong_zero.unbroadcast_live(edge, shape_of(v)))
        return (cots if self.real_in is None else _real_parts(cots, self.real_in)), lives


def _real_parts(cots: Sequence[Any], real_in: Sequence[bool]) -> list[Any]:
    """The cotangents of real inputs of an op with a complex value are real parts: a real
    input's tangent t is real, so the pairing Re(c t) only sees Re(c) (JAX's convention)."""
    return [c if c is None or not real or not is_complex(c) else REGISTRY["real"](c) for c, real in zip(cots, real_in)]


def _is_scratch(p: Any, g: Any) -> bool:
    """p is a fresh array the rule just made, of the product's shape and type: the product
    can be written into it, saving an allocation per elementwise op in the sweep."""
    return (
        type(p) is np.ndarray
        and type(g) is np.ndarray
        and p.base is None
        and p.flags.writeable
        and p.shape == g.shape
        and p.dtype == np.result_type(p, g)
    )


def _mul(g: Any, p: Any, into: Any = None) -> Any:
    """g * p (into a scratch array when given), skipping the product by +-1."""
    if type(p) is float:
        if p == 1.0:
            return g
        if p == -1.0:
            return -g
    return g * p if into is None else np.multiply(g, p, out=into)


class ReverseTrace(Trace):
    """One reverse-mode derivative call: owns the tape."""

    __slots__ = ("entries", "tape", "swept", "consumed", "strict", "culprit")

    def __init__(self, strict: bool = False) -> None:
        super().__init__()
        # strict: a tape for the strong-zero rule (adkit.ops.strong_zero): every op gets a
        # Node (no scalar fast paths, which do not record their op) and the sweep carries
        # live masks; `culprit` is then the first node whose cotangents came out inf or NaN
        self.strict = strict
        self.culprit: Node | None = None
        self.entries: list[Any] = []  # FloatVar and Node objects, in the order they were computed
        self.tape: Any = self.entries  # what ops append to; a dead tape once the call returns
        self.swept = False
        self.consumed = False  # swept with retain=False: the kept values are gone

    def __exit__(self, *exc: object) -> None:
        super().__exit__(*exc)
        self.tape = _DEAD_TAPE

    def release(self) -> None:
        """Drop the tape (the call is done): breaks the node -> trace -> tape cycle, so
        reference counting frees everything at once."""
        self.entries.clear()
        self.tape = _DEAD_TAPE

    def new_input(self, value: Any) -> Var:
        if type(value) is float and not self.strict:
            v = _float_var(value, self, None, None, None, None)
            self.tape.append(v)
            return v
        node = Node(None, (), [], None, {})
        self.tape.append(node)
        return NodeVar(value, self, node)

    def process(self, op: Op, args: Sequence[Any], params: dict[str, Any]) -> Any:
        out, vals, traced = evaluate(self, op, args, params)
        parents = [None if v is None else node_of(v) for v in traced]
        tape = self.tape
        real_in = None
        if out.__class__ is not float and is_complex(out):
            real_in = [p is not None and not is_complex(x) for p, x in zip(parents, vals)]
        if op.keeps:  # keep alive only what the rules read (activations cost memory)
            vals = [
                x if keep or not isinstance(x, np.ndarray) else ShapeOnly(x.shape) for x, keep in zip(vals, op.keeps)
            ]
        kept_out = out if op.keeps_out or not isinstance(out, np.ndarray) else ShapeOnly(out.shape)
        node = Node(op, parents, vals, kept_out, params)
        if real_in is not None and any(real_in):
            node.real_in = real_in
        if type(out) is float and not self.strict:  # a FloatVar, so that the scalar fast paths apply to it
            v: Var = _float_var(out, self, None, None, None, node)
            tape.append(v)
            return v
        tape.append(node)
        return NodeVar(out, self, node)

    def backward(self, seeds: Iterable[tuple[Var, Any]], retain: bool = True) -> None:
        """Accumulate into every node's `adj` the adjoint of the seeded outputs
        (pairs (traced output, its cotangent)); inputs' gradients are then `gradient_of`.

        A second sweep over the same tape (Jacobian rows, pullbacks) starts from zero.
        With retain=False (one gradient: nothing sweeps this tape again) each node drops
        the values it kept as soon as its rule has used them, so the forward's
        activations are freed during the sweep and their memory serves the cotangents
        (PyTorch's retain_graph=False). A strict tape applies the strong-zero rule at every
        step (the callers' second pass when a gradient came out inf or NaN).
        """
        tape = self.entries
        if self.consumed:
            raise RuntimeError("this tape was swept with retain=False: its kept values are gone")
        self.consumed = not retain
        if self.swept:
            for n in tape:
                n.adj = UNTOUCHED
                if n.__class__ is Node:
                    n.finite = n.live = None
        self.swept = True
        with np.errstate(all="ignore"):  # inf and NaN are found by the callers' checks
            if self.strict:
                self._sweep_strict(seeds, retain)
            else:
                self._sweep(seeds, retain)

    def _sweep_strict(self, seeds: Iterable[tuple[Var, Any]], retain: bool) -> None:
        self.culprit = None
        for v, s in seeds:
            n = v.node
            n.adj = s if n.adj is UNTOUCHED else n.adj + s
            n.live = strong_zero.merge(n.live, strong_zero.live_of(s))
        for n in reversed(self.entries):
            a = n.adj
            if a is UNTOUCHED or n.op is None:
                continue
            n.adj = UNTOUCHED
            cots, lives = n.strict_cotangents(a, n.live)
            if not retain:
                n.vals = n.out = None
            if (
                self.culprit is None
                and strong_zero.is_finite(a)
                and not all(c is None or strong_zero.is_finite(c) for c in cots)
            ):
                self.culprit = n
            for par, c, live in zip(n.parents, cots, lives):
                if par is not None and c is not None:
                    par.adj = c if par.adj is UNTOUCHED else par.adj + c
                    par.live = strong_zero.merge(par.live, live)

    def _sweep(self, seeds: Iterable[tuple[Var, Any]], retain: bool) -> None:
        tape = self.entries
        for v, s in seeds:
            n = node_of(v)
            n.adj = s if n.adj is UNTOUCHED else n.adj + s
        flt, fv = float, FloatVar
        for n in reversed(tape):
            a = n.adj
            if a is UNTOUCHED:
                continue  # unreached (a zero cotangent is multiplied: 0 x inf must show up as NaN)
            if a.__class__ is flt:
                if n.__class__ is fv:
                    x = n.in0
                    if x is not None:  # a scalar fast-path op
                        x.adj = x.adj + a * n.d0
                        y = n.in1
                        if y is not None:
                            y.adj = y.adj + a * n.d1
                        continue
            if n.__class__ is fv:
                if n.in0 is None:
                    n = n.d1  # the Node of a generic op with a float result (None for an input)
                    if n is None:
                        continue
                else:  # a fast-path op reached by a non-float cotangent (np.float64, a tracer)
                    parents = (n.in0, n.in1)
                    cots = [a * n.d0, None if n.in1 is None else a * n.d1]
                    _accumulate(parents, cots)
                    continue
            if n.op is None:
                continue  # an input
            n.adj = UNTOUCHED  # an intermediate's adjoint is not needed once passed on: free it
            cots = n.cotangents(a)
            if not retain:
                n.vals = n.out = None
            _accumulate(n.parents, cots)

    def find_nonfinite(self, out: Var | None) -> str:
        """Describe where the derivative stopped being finite (for error messages): on a strict
        tape that has been swept, the op whose cotangents first came out inf or NaN; otherwise
        the first op whose value overflowed or whose local derivative is inf or NaN."""
        if self.culprit is not None:
            return _explain(self.culprit, self.entries.index(self.culprit))
        last = None if out is None else node_of(out)
        for k, e in enumerate(self.entries):
            node = _rule_node(e)
            if node is None:
                continue
            if node.__class__ is FloatVar:
                parts = [node.d0] + ([node.d1] if node.in1 is not None else [])
                if not all(np.all(np.isfinite(primal(p))) for p in parts):
                    return f"the local derivative of a scalar op (tape entry {k}) is not finite"
            elif node.op is not None and node.op.partials is not None:
                explained = _explain(node, k)
                if explained:
                    return explained
            if e is last:
                break
        return (
            "every value and every local derivative is finite, so the derivative overflows: a sum of "
            "products of local derivatives exceeded the float range (~1.8e308 in float64)"
        )

    def recorded_ops(self) -> Iterator[Op]:
        """The registry ops recorded through the generic path (the scalar fast paths excluded)."""
        for e in self.entries:
            node = _rule_node(e)
            if node.__class__ is Node and node.op is not None:
                yield node.op


def _explain(node: Node, k: int) -> str:
    """Why `node` (tape entry k) makes a derivative inf or NaN (strong_zero.explain), or, for a
    strict sweep's culprit, that its finite local derivatives turned a cotangent inf or NaN.
    Empty when the node shows none of these."""
    where = f" (tape entry {k})"
    if node.vals is not None:
        needed = [p is not None for p in node.parents]
        found = strong_zero.explain(node.op, node.vals, node.out, node.params, needed, where)
        if found:
            return found
    if node.live is not None:
        return strong_zero.zero_met_infinity(strong_zero.describe_call(node.op, node.vals, where), "cotangent")
    return ""


def _rule_node(entry: Any) -> Any:
    """What holds a tape entry's rule: the entry itself (a Node, or a FloatVar of a
    scalar fast-path op), the Node of a generic op with a float result, None for a float input."""
    return entry.d1 if entry.__class__ is FloatVar and entry.in0 is None else entry


def _accumulate(parents: Sequence[Any], cots: Sequence[Any]) -> None:
    """Add each cotangent to its input node's adjoint; an input's array gradient is checked
    for inf / NaN right away, while it is still in cache."""
    for par, c in zip(parents, cots):
        if par is None or c is None:
            continue
        b = par.adj
        new = c if b is UNTOUCHED else b + c
        par.adj = new
        if par.__class__ is Node and par.op is None and type(new) is np.ndarray:
            par.finite = all_finite(new)


class Var(Tracer):
    """A value under one reverse trace."""

    __slots__ = ("value", "_trace")

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.value!r})"


class NodeVar(Var):
    """A non-float value (array, numpy scalar, an outer tracer) and its tape Node."""

    __slots__ = ("node",)

    def __init__(self, value: Any, trace: ReverseTrace, node: Node) -> None:
        self.value = value
        self._trace = trace
        self.node = node


class FloatVar(Var):
    """A Python float under a reverse trace, and its own tape node: the adjoint `adj`, the
    traced inputs `in0`, `in1` (None when absent) and the local derivatives `d0`, `d1`
    (the edge labels z of the lecture's graph). An input has in0 = in1 = d1 = None; the
    result of a generic op has in0 = None and its Node in d1.

    The generated scalar fast paths live here, so they need no type checks on values. No
    Python-level __init__: `FloatVar()` plus slot stores costs about half of a call through
    an __init__, and this is the hottest allocation of the engine.
    """

    __slots__ = ("adj", "in0", "d0", "in1", "d1")
    __init__ = object.__init__  # type: ignore[assignment]


def _float_var(value: float, trace: ReverseTrace, in0: Any, d0: Any, in1: Any, d1: Any) -> FloatVar:
    v = FloatVar()
    v.value, v._trace, v.adj, v.in0, v.d0, v.in1, v.d1 = value, trace, UNTOUCHED, in0, d0, in1, d1
    return v


def node_of(v: Var) -> Any:
    """The tape node of a traced value (a FloatVar is its own)."""
    return v if v.__class__ is FloatVar else v.node


def record(
    f: Callable[..., Any],
    args: Sequence[Any],
    argnums: tuple[int, ...],
    strict: bool = False,
    output: Callable[[Any], Any] = output_value,
) -> tuple[ReverseTrace, Prepared, Any]:
    """Run f on a new tape (a strict one for the strong-zero rule: see reverse.ReverseTrace);
    f's result goes through `output` (the checked value; its leaves for a Jacobian). The
    caller releases the trace when done with it (on an error here, it is released before
    the error propagates)."""
    trace = ReverseTrace(strict)
    try:
        with translate_numpy_refusals, trace:
            prep = Prepared(args, argnums, lambda leaf, k: trace.new_input(leaf))
            out = output(f(*prep.args))
    except BaseException:
        trace.release()
        raise
    return trace, prep, out


def gradient_of(v: Var) -> Any:
    """The adjoint accumulated on v's node by the last sweep, or None if the sweep never reached it."""
    a = node_of(v).adj
    return None if a is UNTOUCHED else a


_UNARY = """
def fast(self):
    x = self.value
    try:
        out = OUT
        p0 = P0
    except (ArithmeticError, ValueError):
        return bind(OP, (self,), NOPARAMS)
    tr = self._trace
    v = FloatVar()
    v.value = out
    v._trace = tr
    v.adj = UNTOUCHED
    v.in0 = self
    v.d0 = p0
    v.in1 = None
    tr.tape.append(v)
    return v
"""

_LEFT = """
def fast(self, o):
    to = type(o)
    if to is FloatVar:
        tr = self._trace
        if o._trace is tr:
            x = self.value
            y = o.value
            try:
                out = OUT
                p0 = P0
                p1 = P1
            except (ArithmeticError, ValueError):
                return bind(OP, (self, o), NOPARAMS)
            v = FloatVar()
            v.value = out
            v._trace = tr
            v.adj = UNTOUCHED
            v.in0 = self
            v.d0 = p0
            v.in1 = o
            v.d1 = p1
            tr.tape.append(v)
            return v
    elif to is float or to is int or to is f64:
        x = self.value
        y = o if to is float else float(o)
        try:
            out = OUT
            p0 = P0
        except (ArithmeticError, ValueError):
            return bind(OP, (self, o), NOPARAMS)
        tr = self._trace
        v = FloatVar()
        v.value = out
        v._trace = tr
        v.adj = UNTOUCHED
        v.in0 = self
        v.d0 = p0
        v.in1 = None
        tr.tape.append(v)
        return v
    return bind(OP, (self, o), NOPARAMS)
"""

_RIGHT = """
def fast(self, o):
    to = type(o)
    if to is float or to is int or to is f64:
        x = o if to is float else float(o)
        y = self.value
        try:
            out = OUT
            p1 = P1
        except (ArithmeticError, ValueError):
            return bind(OP, (o, self), NOPARAMS)
        tr = self._trace
        v = FloatVar()
        v.value = out
        v._trace = tr
        v.adj = UNTOUCHED
        v.in0 = self
        v.d0 = p1
        v.in1 = None
        tr.tape.append(v)
        return v
    return bind(OP, (o, self), NOPARAMS)
"""


install(FloatVar, {"unary": _UNARY, "left": _LEFT, "right": _RIGHT}, {"UNTOUCHED": UNTOUCHED})

__all__ = ["FloatVar", "Node", "NodeVar", "ReverseTrace", "Var", "gradient_of", "node_of"]
