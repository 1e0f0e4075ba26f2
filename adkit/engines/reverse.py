"""Reverse mode: a tape (Wengert list) recorded while f runs, then one backward sweep.

Each op appends an entry to the tape: the indices of its traced inputs and what the
sweep needs. The sweep walks the tape backwards, accumulating adjoints
    S(i, o) = sum over successors j of S(j, o) * z(i, j),   S(o, o) = 1
(the lecture's dynamic program, "sum all outgoing edges"): every edge is touched once.

The tape holds plain numbers and indices, no references back to tracers, so recording
creates no reference cycles and the cyclic garbage collector has nothing to chase. The
sweep is a loop, not a recursion: a chain of a million ops is fine.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from adkit.engines.fastpath import install
from adkit.ops.array import unbroadcast
from adkit.ops.core import Op, ShapeOnly, Trace, Tracer, local_partials, primal, shape_of

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


class Node:
    """A tape entry for a generic op: what its VJP or partials need in the sweep."""

    __slots__ = ("op", "parents", "vals", "out", "params")

    def __init__(self, op: Op, parents: list[int | None], vals: list[Any], out: Any, params: dict[str, Any]):
        self.op = op
        self.parents = parents
        self.vals = vals
        self.out = out
        self.params = params

    def cotangents(self, g: Any) -> Sequence[Any]:
        """One cotangent per input (None for constants): the VJP of this node at g."""
        op, vals = self.op, self.vals
        needed = [p is not None for p in self.parents]
        if op.partials is None:
            return op.vjp(g, vals, self.out, needed, **self.params)
        parts = local_partials(op, self.out, vals, self.params, needed)
        result = []
        for p, v in zip(parts, vals):
            if p is None:
                result.append(None)
                continue
            owned = _is_scratch(p, g) and not any(p is w for w in (*vals, self.out))
            result.append(unbroadcast(strong_mul(g, p, into=p if owned else None), shape_of(v)))
        return result


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


def strong_mul(g: Any, p: Any, into: Any = None) -> Any:
    """g * p, where a zero cotangent g gives zero even if p is inf or NaN.

    The branch np.where did not take gets g = 0; its local derivatives (sqrt at 0,
    log at 0) must not turn that zero into NaN.
    """
    if type(p) is float:
        if p == 1.0:
            return g
        if p == -1.0:
            return -g
    with np.errstate(invalid="ignore", over="ignore"):
        r = g * p if into is None else np.multiply(g, p, out=into)
        if isinstance(r, np.ndarray):
            if r.dtype.kind in "fc" and not np.isfinite(np.sum(r)) and not np.isfinite(r).all():
                r = np.where(np.asarray(g) == 0, 0.0, r)
            return r
    if (type(r) is float or isinstance(r, np.floating)) and not math.isfinite(r) and g == 0:
        r = 0.0
    return r


class ReverseTrace(Trace):
    """One reverse-mode derivative call: owns the tape."""

    __slots__ = ("entries", "tape", "leaf_finite")

    def __init__(self) -> None:
        super().__init__()
        self.entries: list[Any] = []
        self.tape: Any = self.entries  # what ops append to; a dead tape once the call returns
        self.leaf_finite: dict[int, bool] = {}  # after a sweep: inputs whose gradient was checked

    def __exit__(self, *exc: object) -> None:
        super().__exit__(*exc)
        self.tape = _DeadTape()

    def new_input(self, value: Any) -> Var:
        v = make_var(value, len(self.tape), self)
        self.tape.append(None)
        return v

    def process(self, op: Op, args: Sequence[Any], params: dict[str, Any]) -> Any:
        vals: list[Any] = []
        parents: list[int | None] = []
        for a in args:
            if isinstance(a, Var) and a._trace is self:
                vals.append(a.value)
                parents.append(a.index)
            else:
                vals.append(a)
                parents.append(None)
        out = op(*vals, **params)
        tape = self.tape
        v = make_var(out, len(tape), self)
        if op.keeps:  # keep alive only what the rules read (activations cost memory)
            vals = [
                x if keep or not isinstance(x, np.ndarray) else ShapeOnly(x.shape) for x, keep in zip(vals, op.keeps)
            ]
        kept_out = out if op.keeps_out or not isinstance(out, np.ndarray) else ShapeOnly(out.shape)
        tape.append(Node(op, parents, vals, kept_out, params))
        return v

    def backward(self, out_index: int, seed: Any) -> list[Any]:
        """Adjoints of every tape entry for the output at `out_index` seeded with `seed`."""
        return self.backward_many({out_index: seed})

    def backward_many(self, seeds: dict[int, Any]) -> list[Any]:
        """Adjoints of every tape entry, with the given adjoints seeded (index -> seed).

        Entries never reached keep the marker `UNTOUCHED` (a float zero).
        """
        tape = self.entries
        top = max(seeds)
        adj: list[Any] = [UNTOUCHED] * (top + 1)
        checked: dict[int, bool] = {}  # input index -> its (array) gradient is finite
        for i, s in seeds.items():
            adj[i] = s
        flt, tup = float, tuple
        for k in range(top, -1, -1):
            a = adj[k]
            if a.__class__ is flt:
                if not a:
                    continue  # unreached, or a zero cotangent: contributes nothing
                e = tape[k]
                if e.__class__ is tup:
                    if len(e) == 4:
                        i, p, j, q = e
                        adj[i] += a * p
                        adj[j] += a * q
                    else:
                        i, p = e
                        adj[i] += a * p
                    continue
            else:
                e = tape[k]
            if e is None:
                continue
            if type(e) is tuple:
                idx: Sequence[Any] = e[0::2]
                cots: Sequence[Any] = [strong_mul(a, p) for p in e[1::2]]
            else:
                idx = e.parents
                cots = e.cotangents(a)
            for i, c in zip(idx, cots):
                if i is None or c is None:
                    continue
                b = adj[i]
                new = c if b is UNTOUCHED else b + c
                adj[i] = new
                if tape[i] is None and type(new) is np.ndarray:
                    # an input's gradient: check it is finite now, while it is still in cache
                    with np.errstate(over="ignore", invalid="ignore"):
                        checked[i] = bool(np.isfinite(np.sum(new))) or bool(np.all(np.isfinite(new)))
        self.leaf_finite = checked
        return adj

    def find_nonfinite(self, out_index: int) -> str:
        """Describe the first op whose local derivative is inf or NaN (for error messages)."""
        for k, e in enumerate(self.entries[: out_index + 1]):
            if e is None:
                continue
            if type(e) is tuple:
                parts, node_desc = e[1::2], "a scalar op"
            else:
                if e.op.partials is None:
                    continue
                needed = [p is not None for p in e.parents]
                parts = [p for p in local_partials(e.op, e.out, e.vals, e.params, needed) if p is not None]
                node_desc = f"{e.op.name}({', '.join(_short(primal(v)) for v in e.vals)})"
            for p in parts:
                pv = primal(p)
                if not np.all(np.isfinite(pv)):
                    return f"the local derivative of {node_desc} (tape entry {k}) is {_short(pv)}"
        return (
            "every value and every local derivative is finite, so the derivative overflows: a sum of "
            "products of local derivatives exceeded the float range (~1.8e308 in float64)"
        )


def _short(v: Any) -> str:
    a = np.asarray(v)
    if a.size <= 4:
        return np.array2string(a, precision=6) if a.ndim else f"{float(a):.6g}" if a.dtype.kind in "fiub" else str(a)
    return f"array{a.shape} with {int((~np.isfinite(a)).sum()) if a.dtype.kind == 'f' else 0} non-finite entries"


class Var(Tracer):
    """A value under one reverse trace: its value and its index on the tape."""

    __slots__ = ("value", "index", "_trace")

    def __init__(self, value: Any, index: int, trace: ReverseTrace) -> None:
        self.value = value
        self.index = index
        self._trace = trace

    def __repr__(self) -> str:
        return f"Var({self.value!r}, index={self.index})"


class FloatVar(Var):
    """A Var whose value is a Python float: the generated scalar fast paths live here,
    so they need no type checks on values.

    It has no Python-level __init__: `FloatVar()` plus three slot stores costs about half
    of a call through `Var.__init__`, and this is the hottest allocation of the engine.
    """

    __slots__ = ()
    __init__ = object.__init__  # type: ignore[assignment]


def make_var(value: Any, index: int, trace: ReverseTrace) -> Var:
    if type(value) is not float:
        return Var(value, index, trace)
    v = FloatVar()
    v.value, v.index, v._trace = value, index, trace
    return v


_UNARY = """
def fast(self):
    x = self.value
    try:
        out = OUT
        p0 = P0
    except (ArithmeticError, ValueError):
        return bind(OP, (self,), NOPARAMS)
    tr = self._trace
    tape = tr.tape
    v = FloatVar()
    v.value = out
    v.index = len(tape)
    v._trace = tr
    tape.append((self.index, p0))
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
            tape = tr.tape
            v = FloatVar()
            v.value = out
            v.index = len(tape)
            v._trace = tr
            tape.append((self.index, p0, o.index, p1))
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
        tape = tr.tape
        v = FloatVar()
        v.value = out
        v.index = len(tape)
        v._trace = tr
        tape.append((self.index, p0))
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
        tape = tr.tape
        v = FloatVar()
        v.value = out
        v.index = len(tape)
        v._trace = tr
        tape.append((self.index, p1))
        return v
    return bind(OP, (o, self), NOPARAMS)
"""


install(FloatVar, {"unary": _UNARY, "left": _LEFT, "right": _RIGHT})

__all__ = ["FloatVar", "Var", "ReverseTrace", "make_var"]
