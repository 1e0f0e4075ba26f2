"""Forward mode: dual numbers (value, tangent), one pass per input direction.

A `Dual` carries the value a_i and its tangent da_i = d a_i / d(seed direction); each op
maps (a, da) to (f(a), sum_i f_i'(a) da_i) — the lecture's "sum all incoming edges"
from the source. The tangent may carry one leading batch axis: with the identity as
seed, one pass gives a whole Jacobian (vector mode, ForwardDiff's chunks).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from adkit.engines.fastpath import install
from adkit.ops import strong_zero
from adkit.ops.array import expand_to
from adkit.ops.core import REGISTRY, Op, Trace, Tracer, evaluate, local_partials, shape_of, zeros_are_structural


class ForwardTrace(Trace):
    """One forward-mode derivative call; `batched` when tangents have a batch axis;
    `strict`: apply the strong-zero rule at every op (adkit.ops.strong_zero: tangents carry
    live masks, `culprit` names the first op whose tangent came out inf or NaN)."""

    __slots__ = ("nb", "strict", "culprit")

    def __init__(self, batched: bool = False, strict: bool = False) -> None:
        super().__init__()
        self.nb = 1 if batched else 0
        self.strict = strict
        self.culprit: str | None = None

    def process(self, op: Op, args: Sequence[Any], params: dict[str, Any]) -> Any:
        if self.strict:
            return _strict_jvp(self, op, args, params)
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
                    term = p * t
                    tangent = term if tangent is None else tangent + term
            batch = next(shape_of(t)[:nb] for t in tans if t is not None)
            target = batch + shape_of(out)
            if tangent is None:
                tangent = np.zeros(target) if target else 0.0
            elif shape_of(tangent) != target:
                tangent = REGISTRY["broadcast_to"](tangent, shape=target)
        return make_dual(out, tangent, self)


def _strict_jvp(trace: ForwardTrace, op: Op, args: Sequence[Any], params: dict[str, Any]) -> StrictDual:
    """The JVP of one op under the strong-zero rule: tangents with live masks (entries the seed
    reaches through local derivatives that are not exact zeros); dead entries are exact zeros."""
    out, vals, duals = evaluate(trace, op, args, params)
    nb = trace.nb
    tans = [None if d is None else d.tangent for d in duals]
    lives = [None if d is None else d.live for d in duals]
    traced = tuple(t is not None for t in tans)
    batch = next(shape_of(t)[:nb] for t in tans if t is not None)
    target = batch + shape_of(out)
    with np.errstate(all="ignore"):
        if op.partials is None:
            tangent = op.jvp(tans, vals, out, nb, **params)
            if all(zeros_are_structural(op, i, traced) for i, t in enumerate(traced) if t):
                shapes = [None if t is None else shape_of(t) for t in tans]
                live = strong_zero.through_linear(lambda w: [op.jvp(w, vals, out, nb, **params)], lives, shapes)[0]
            else:
                live = strong_zero.conservative(lives, target, nb)
        else:
            tangent, live = None, None
            out_ndim = len(shape_of(out))
            for i, p in enumerate(local_partials(op, out, vals, params, list(traced), quiet=False)):
                if p is None or tans[i] is None:
                    continue
                t, lv = tans[i], lives[i]
                if nb:
                    t, lv = expand_to(t, out_ndim, nb), np.asarray(expand_to(np.asarray(lv), out_ndim, nb))
                term = p * t
                edge = np.broadcast_to(strong_zero.edge_live(op, i, traced, p, lv, vals, params), shape_of(term))
                term = strong_zero.keep_live(term, edge)
                tangent = term if tangent is None else tangent + term
                live = strong_zero.merge(live, edge)
        if tangent is None:
            tangent, live = (np.zeros(target) if target else 0.0), np.zeros(target, dtype=bool)
        if shape_of(tangent) != target:
            tangent = REGISTRY["broadcast_to"](tangent, shape=target)
        live = np.broadcast_to(live, target) if np.shape(live) != target else live
        tangent = strong_zero.keep_live(tangent, live)
    if (
        trace.culprit is None
        and not strong_zero.is_finite(tangent)
        and all(t is None or strong_zero.is_finite(t) for t in tans)
    ):
        trace.culprit = strong_zero.explain(op, vals, out, params, traced) or strong_zero.zero_met_infinity(
            strong_zero.describe_call(op, vals), "tangent"
        )
    return StrictDual(out, tangent, trace, live)


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


class StrictDual(Dual):
    """A Dual of a strict trace: also the live mask of its tangent (adkit.ops.strong_zero).
    Never a FloatDual, so every op goes through `ForwardTrace.process`."""

    __slots__ = ("live",)

    def __init__(self, value: Any, tangent: Any, trace: ForwardTrace, live: Any) -> None:
        super().__init__(value, tangent, trace)
        self.live = live


def make_dual(value: Any, tangent: Any, trace: ForwardTrace) -> Dual:
    if trace.strict:
        return StrictDual(value, tangent, trace, strong_zero.live_of(tangent))
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


__all__ = ["Dual", "FloatDual", "ForwardTrace", "StrictDual", "make_dual"]
