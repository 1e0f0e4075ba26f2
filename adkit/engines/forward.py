"""Forward mode: dual numbers (value, tangent), one pass per input direction.

A `Dual` carries the value a_i and its tangent da_i = d a_i / d(seed direction); each op
maps (a, da) to (f(a), sum_i f_i'(a) da_i) — the lecture's "sum all incoming edges"
from the source. The tangent may carry one leading batch axis: with the identity as
seed, one pass gives a whole Jacobian (vector mode, ForwardDiff's chunks).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from adkit.engines.fastpath import install
from adkit.ops.array import expand_to
from adkit.ops.core import REGISTRY, Op, Trace, Tracer, evaluate, local_partials, shape_of


class ForwardTrace(Trace):
    """One forward-mode derivative call; `batched` when tangents have a batch axis;
    `strict`: apply strong_mul's zero rule at every op (see strong_mul)."""

    __slots__ = ("nb", "strict")

    def __init__(self, batched: bool = False, strict: bool = False) -> None:
        super().__init__()
        self.nb = 1 if batched else 0
        self.strict = strict

    def process(self, op: Op, args: Sequence[Any], params: dict[str, Any]) -> Any:
        out, vals, duals = evaluate(self, op, args, params)
        tans = [None if d is None else d.tangent for d in duals]
        nb = self.nb
        if op.partials is None:
            tangent = op.jvp(tans, vals, out, nb, **params)
        else:
            out_ndim = len(shape_of(out))
            tangent = None
            with np.errstate(divide="ignore", invalid="ignore", over="ignore"):  # inf / NaN: checked by callers
                parts = local_partials(op, out, vals, params, [t is not None for t in tans], quiet=False)
                for p, t in zip(parts, tans):
                    if t is None or p is None:
                        continue
                    t = expand_to(t, out_ndim, nb) if nb else t
                    term = strong_mul(p, t) if self.strict else p * t
                    tangent = term if tangent is None else tangent + term
            batch = next(shape_of(t)[:nb] for t in tans if t is not None)
            target = batch + shape_of(out)
            if tangent is None:
                tangent = np.zeros(target) if target else 0.0
            elif shape_of(tangent) != target:
                tangent = REGISTRY["broadcast_to"](tangent, shape=target)
        return make_dual(out, tangent, self)


def strong_mul(p: Any, t: Any) -> Any:
    """p * t, except that an exact zero on either side gives zero even against inf or NaN.

    A zero tangent means "this value does not depend on the seed"; a zero local
    derivative means "the output does not depend on this input here" (the branch
    np.where did not take). Neither may be turned into NaN by an infinite factor on
    the other side (sqrt'(0) = inf, log'(0) = inf). Reverse mode applies the rule to its
    cotangents (reverse.strong_mul). Checking every product costs a pass over it, so
    forward passes multiply plainly first, and a pass whose derivative comes out inf or
    NaN is run again with strict=True (the NaN of 0 * inf either reaches the result or
    is masked by a later np.where, which this rule would have zeroed too).
    """
    with np.errstate(invalid="ignore", over="ignore"):
        r = p * t
    if isinstance(r, np.ndarray):
        if r.dtype.kind in "fc" and not np.isfinite(r).all():
            r = np.where((np.asarray(t) == 0) | (np.asarray(p) == 0), 0.0, r)
    elif type(r) is float or isinstance(r, np.floating):
        if not math.isfinite(r) and (t == 0 or p == 0):
            r = 0.0
    return r


class Dual(Tracer):
    """A value and its tangent under one forward trace."""

    __slots__ = ("value", "tangent", "_trace")

    def __init__(self, value: Any, tangent: Any, trace: ForwardTrace) -> None:
        self.value = value
        self.tangent = tangent
        self._trace = trace

    def __repr__(self) -> str:
        return f"Dual({self.value!r}, tangent={self.tangent!r})"


class FloatDual(Dual):
    """A Dual whose value and tangent are Python floats: home of the generated fast
    paths, which then need no type checks. No Python-level __init__ (see FloatVar)."""

    __slots__ = ()
    __init__ = object.__init__  # type: ignore[assignment]


def make_dual(value: Any, tangent: Any, trace: ForwardTrace) -> Dual:
    if type(value) is float and type(tangent) is float:
        d = FloatDual()
        d.value, d.tangent, d._trace = value, tangent, trace
        return d
    return Dual(value, tangent, trace)


_UNARY = """
def fast(self):
    tr = self._trace
    if tr.active:
        x = self.value
        try:
            out = OUT
            t = P0 * self.tangent
        except (ArithmeticError, ValueError):
            return bind(OP, (self,), NOPARAMS)
        if t == t:
            d = FloatDual()
            d.value = out
            d.tangent = t
            d._trace = tr
            return d
    return bind(OP, (self,), NOPARAMS)
"""

_LEFT = """
def fast(self, o):
    to = type(o)
    tr = self._trace
    if not tr.active:
        pass
    elif to is FloatDual:
        if o._trace is tr:
            x = self.value
            y = o.value
            try:
                out = OUT
                t = P0 * self.tangent + P1 * o.tangent
            except (ArithmeticError, ValueError):
                return bind(OP, (self, o), NOPARAMS)
            if t == t:
                d = FloatDual()
                d.value = out
                d.tangent = t
                d._trace = tr
                return d
    elif to is float or to is int or to is f64:
        x = self.value
        y = o if to is float else float(o)
        try:
            out = OUT
            t = P0 * self.tangent
        except (ArithmeticError, ValueError):
            return bind(OP, (self, o), NOPARAMS)
        if t == t:
            d = FloatDual()
            d.value = out
            d.tangent = t
            d._trace = tr
            return d
    return bind(OP, (self, o), NOPARAMS)
"""

_RIGHT = """
def fast(self, o):
    to = type(o)
    tr = self._trace
    if tr.active and (to is float or to is int or to is f64):
        x = o if to is float else float(o)
        y = self.value
        try:
            out = OUT
            t = P1 * self.tangent
        except (ArithmeticError, ValueError):
            return bind(OP, (o, self), NOPARAMS)
        if t == t:
            d = FloatDual()
            d.value = out
            d.tangent = t
            d._trace = tr
            return d
    return bind(OP, (o, self), NOPARAMS)
"""


install(FloatDual, {"unary": _UNARY, "left": _LEFT, "right": _RIGHT})


__all__ = ["Dual", "FloatDual", "ForwardTrace", "make_dual", "strong_mul"]
