"""The recording trace of `adkit.jit`: every `bind` becomes one SSA instruction.

`JitTrace` is a `Trace` like the engines' (autodidax's staging trace): when fn runs on
`JitTracer` inputs, each registry op reaching it is computed on the concrete values (so
Python control flow and the engines' own checks see real numbers) and appended to a
straight-line program: `Instr(op, inputs, params)`. The engines' traces nested inside
(the tape of `grad`, the duals of `jvp`) see JitTracers as constants of an outer level and
send their rules' ops back through dispatch, so the backward sweep of `grad` is recorded
by the same trace: no transform needs a special case.

What the program cannot replay is watched:
  * a branch on a traced value (`if x > 0`, `bool(v)`) or a traced integer used as an
    index becomes a *guard*: the program checks the same outcome at replay, and a call
    whose guards fail is recorded again;
  * a finiteness check of the engines (is the gradient inf or NaN?) becomes a guard
    whose failure sends the call to the eager engines, which apply the strong-zero rule;
  * any other read of a concrete value (`adkit.primal` inside an op's rule, np.argsort
    of a traced array, ...) would bake that value into the program: the recording is
    marked *concrete* and the jit runs that signature eagerly instead (always right).
"""

from __future__ import annotations

import math
import sys
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from adkit.ops import core
from adkit.ops.core import Op, Trace, Tracer

# Functions that read a traced value's number for its shape, dtype or printing only:
# harmless for a replayed program (adkit's own such reads use `core.peek`, which is not watched).
_HARMLESS = {
    "shape",
    "dtype",
    "ndim",
    "size",
    "_dtype",
    "_float_dtype",
    "is_scalar_list",
    "__format__",
    "__repr__",
    "__len__",
    "__iter__",
    "_short",
    "_short_value",
    "_plain",
    "as_input",
}
# Reads that are harmless only for some values: a float scalar output, for the check of
# f's output type in grad (an integer or 1-entry output is handled apart, by its value).
_HARMLESS_IF = {
    "_scalar_output.<locals>.main": lambda v: np.ndim(v) == 0 and np.result_type(v).kind == "f",
}
# The engines' finiteness checks: a guard that the value is (still) finite.
_FINITE_CHECKS = {"_is_finite", "is_finite", "_all_finite", "all_finite", "_check_value"}


@dataclass(eq=False)
class Instr:
    """One recorded op: `out = op(*inputs, **params)`; an input is a JitTracer's id (int)
    or a Const. `scalar`: computed with the op's Python-float expression."""

    op: Op
    inputs: tuple[Any, ...]
    params: dict[str, Any]
    out: int
    scalar: bool
    value: Any = field(repr=False, default=None)


@dataclass(eq=False)
class Const:
    value: Any


@dataclass(eq=False)
class Guard:
    """At replay: `kind` "true"/"false" (bool of var), "equal" (var == value, an index),
    "finite" (var is finite; a failure goes to the eager engines)."""

    kind: str
    var: int
    value: Any = None


class JitTracer(Tracer):
    """A value under a JitTrace: its concrete number and the id of its SSA variable."""

    __slots__ = ("_value", "_trace", "ref")

    def __init__(self, value: Any, trace: JitTrace, ref: int) -> None:
        self._value = value
        self._trace = trace
        self.ref = ref

    @property
    def value(self) -> Any:
        trace = self._trace
        if trace.active:
            trace.observe(self, sys._getframe(1))
        return self._value

    def peek(self) -> Any:
        return self._value

    @property
    def shape(self) -> tuple[int, ...]:
        return np.shape(self._value)

    @property
    def dtype(self) -> Any:
        return np.result_type(self._value)

    def __bool__(self) -> bool:
        outcome = bool(self._value)
        self._trace.guard("true" if outcome else "false", self)
        return outcome

    def __index__(self) -> int:
        v = self._value
        if isinstance(v, (int, np.integer)) and not isinstance(v, (bool, np.bool_)):
            self._trace.guard("equal", self, int(v))
            return int(v)
        return Tracer.__index__(self)

    def __repr__(self) -> str:
        return f"JitTracer(v{self.ref}={self._value!r})"


def _arithmetic(name: str, reflected: bool) -> Any:
    """JitTracer's `+ - * /` between floats of its own recording: straight to a scalar
    instruction (what bind would choose, without its general dispatch: the sweep of
    grad is mostly these); anything else goes through the registry as usual."""
    op = core.REGISTRY[name]

    def method(self: JitTracer, other: Any) -> Any:
        trace = self._trace
        v = self._value
        if trace.active and v.__class__ is float:
            if other.__class__ is float:
                w = other
            elif other.__class__ is JitTracer and other._trace is trace and other._value.__class__ is float:
                w = other._value
            else:
                return op(other, self) if reflected else op(self, other)
            if reflected:
                return trace._scalar(op, (other, self), [w, v])
            return trace._scalar(op, (self, other), [v, w])
        return op(other, self) if reflected else op(self, other)

    return method


for _name, _op in (("add", "add"), ("sub", "sub"), ("mul", "mul"), ("truediv", "div")):
    setattr(JitTracer, f"__{_name}__", _arithmetic(_op, reflected=False))
    setattr(JitTracer, f"__r{_name}__", _arithmetic(_op, reflected=True))


def _scalarish(v: Any, ref: Any) -> bool:
    """A value the eager engines compute with in Python floats: a float or int, or an
    np.float64 constant (the float fast paths convert those, and a sweep's seed is one).
    An np.float64 *result* (of a numpy-only op, of np.sum) stays numpy: numpy's exp and
    the math module's can differ in the last bit."""
    t = type(v)
    return t is float or t is int or (t is np.float64 and type(ref) is Const)


class JitTrace(Trace):
    """One recording of fn: the instructions, guards (in program order) and outputs."""

    __slots__ = ("steps", "count", "concrete", "variables")

    def __init__(self) -> None:
        super().__init__()
        self.steps: list[Instr | Guard] = []
        self.count = 0
        self.concrete: str | None = None  # why the recording cannot be replayed, if so
        self.variables: dict[int, JitTracer] = {}

    def release(self) -> None:
        """Drop the recording (its tracers point back here: a reference cycle)."""
        self.steps = []
        self.variables = {}

    def new_input(self, value: Any) -> JitTracer:
        if type(value) is np.float64:
            value = float(value)
        return self._new(value)

    def _new(self, value: Any) -> JitTracer:
        self.count += 1
        t = JitTracer(value, self, self.count)
        self.variables[self.count] = t
        return t

    def ref(self, a: Any) -> Any:
        if isinstance(a, JitTracer) and a._trace is self:
            return a.ref
        if isinstance(a, Tracer):  # an inner trace's value reaching an outer op: not expected
            self.mark_concrete(f"a value of another trace ({type(a).__name__}) reached {type(self).__name__}")
            return Const(core.primal(a))
        return Const(a)

    def process(self, op: Op, args: Any, params: dict[str, Any]) -> JitTracer:
        if not params and op.scalar_fn is not None and not op.variadic:  # floats only: the hot case
            vals = []
            for a in args:
                if a.__class__ is JitTracer and a._trace is self:
                    v = a._value
                elif a.__class__ is float:
                    v = a
                else:
                    break
                if v.__class__ is not float:
                    break
                vals.append(v)
            else:
                return self._scalar(op, args, vals)
        params = {k: self._static(v) for k, v in params.items()} if params else params
        refs = tuple(self.ref(a) for a in args)
        vals = [self.variables[r]._value if type(r) is int else r.value for r in refs]
        scalar = (
            not params
            and op.scalar_fn is not None
            and not op.variadic
            and all(_scalarish(v, r) for v, r in zip(vals, refs))
            and any(type(v) is not int for v in vals)
        )
        if scalar:
            args = [self.variables[r] if type(r) is int else float(r.value) for r in refs]
            return self._scalar(op, args, [float(v) for v in vals])
        with np.errstate(all="ignore"):
            out = op.impl(*vals, **params)
        same = self._same_as_input(op, refs, out)
        if same is not None:
            return same
        t = self._new(out)
        self.steps.append(Instr(op, refs, params, t.ref, False))
        return t

    def _scalar(self, op: Op, args: Any, vals: list[float]) -> JitTracer:
        """A scalar instruction: args are this trace's JitTracers and floats, vals their floats."""
        if op.name == "mul":  # 1.0 * v is v, bit for bit (the seed of a sweep)
            a, b = args
            if a.__class__ is float and a == 1.0 and b.__class__ is JitTracer and b._value.__class__ is float:
                return b
            if b.__class__ is float and b == 1.0 and a.__class__ is JitTracer and a._value.__class__ is float:
                return a
        try:
            out = op.scalar_fn(*vals)
        except (ArithmeticError, ValueError):
            with np.errstate(all="ignore"):
                out = float(op.impl(*[np.float64(v) for v in vals]))
        refs = tuple([a.ref if a.__class__ is JitTracer else Const(a) for a in args])
        t = self._new(out)
        self.steps.append(Instr(op, refs, {}, t.ref, True))
        return t

    def record_call(self, name: str, fn: Any, t: Any, **params: Any) -> Any:
        """fn(t, **params) for a plain function the transforms apply to a result (the
        conversion of a gradient to its input's form): a step of the program, shown as
        f_<name>, or t itself when it changes nothing."""
        if not (isinstance(t, JitTracer) and t._trace is self):
            return t
        v = t._value
        out = fn(v, **params)
        if type(out) is type(v) and np.shape(out) == np.shape(v) and np.result_type(out) == np.result_type(v):
            return t
        op = _CALLED.get(fn)
        if op is None:
            op = _CALLED[fn] = Op(name=name, impl=fn)
        new = self._new(out)
        self.steps.append(Instr(op, (t.ref,), params, new.ref, False))
        return new

    def _same_as_input(self, op: Op, refs: tuple[Any, ...], out: Any) -> JitTracer | None:
        """The input an op hands back unchanged, bit for bit: 1.0 * v (the seed of a sweep),
        np.where with a constant condition (a branch the rule decided by constants)."""
        chosen = None
        if op.name == "mul":
            for c, other in ((refs[0], refs[1]), (refs[1], refs[0])):
                if type(c) is Const and type(other) is int and _all_ones(c.value):
                    chosen = other
        elif op.name == "where" and type(refs[0]) is Const and type(refs[0].value) in (bool, np.bool_):
            chosen = refs[1] if refs[0].value else refs[2]
        if type(chosen) is not int:
            return None
        v = self.variables[chosen]._value
        if type(v) is type(out) and np.shape(v) == np.shape(out) and np.result_type(v) == np.result_type(out):
            return self.variables[chosen]
        return None

    def _static(self, v: Any) -> Any:
        """A parameter with traced values inside (a data-dependent index): their recorded
        values, each guarded."""
        if isinstance(v, JitTracer) and v._trace is self:
            self.guard("equal", v, v._value)
            return v._value
        if isinstance(v, Tracer):
            self.mark_concrete("a traced value inside an op's parameters")
            return core.primal(v)
        if isinstance(v, tuple):
            return tuple(self._static(x) for x in v)
        if isinstance(v, list):
            return [self._static(x) for x in v]
        return v

    def guard(self, kind: str, t: JitTracer, value: Any = None) -> None:
        if self.active:
            self.steps.append(Guard(kind, t.ref, value))

    def mark_concrete(self, why: str) -> None:
        if self.concrete is None:
            self.concrete = why

    def observe(self, t: JitTracer, frame: Any) -> None:
        """A read of t's concrete value from outside the trace (see the module docstring)."""
        if frame.f_code is _PRIMAL_CODE:
            frame = frame.f_back
        name = frame.f_code.co_name
        if not frame.f_globals.get("__name__", "").startswith("adkit."):
            name = "?"  # only adkit's own functions are known to be harmless or finiteness checks
        if name in _HARMLESS:
            return
        harmless_if = _HARMLESS_IF.get(getattr(frame.f_code, "co_qualname", name))
        if harmless_if is not None and frame.f_globals.get("__name__") == "adkit.transforms":
            if harmless_if(t._value):
                return
        if name in _FINITE_CHECKS:
            if _finite(t._value):
                self.guard("finite", t)
            else:
                self.mark_concrete("a value or derivative is not finite at this point")
            return
        if name == "__bool__":
            self.guard("true" if bool(t._value) else "false", t)
            return
        module = frame.f_globals.get("__name__", "?")
        self.mark_concrete(f"{module}.{frame.f_code.co_name} reads a traced value's number")


_PRIMAL_CODE = core.primal.__code__
_CALLED: dict[Any, Op] = {}  # record_call's functions, as ops of the program


def _all_ones(c: Any) -> bool:
    if isinstance(c, (float, int, np.floating)):
        return c == 1.0
    return isinstance(c, np.ndarray) and c.dtype.kind == "f" and bool(np.all(c == 1.0))


def _finite(v: Any) -> bool:
    if type(v) is float:
        return math.isfinite(v)
    try:
        return bool(np.all(np.isfinite(v)))
    except TypeError:
        return True


def record_nograd(op: Op, args: Any, params: dict[str, Any]) -> Any:
    """`bind` of a nograd op (a comparison, sign, floor) while a JitTrace records: its
    result still depends on the inputs, so it is recorded (the engines skip it)."""
    stripped = []
    trace = None
    for a in args:
        while isinstance(a, Tracer) and not isinstance(a, JitTracer):
            a = a.value
        if isinstance(a, JitTracer) and a._trace.active:
            trace = a._trace
        stripped.append(a)
    if trace is None:
        return op.impl(*[core.primal(a) for a in args], **params)
    return trace.process(op, stripped, params)
