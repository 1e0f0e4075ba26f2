"""`adkit.jit`: source transformation on the registry (the other classic AD strategy).

    >>> jg = ad.jit(ad.grad(f))      # any function built from registry ops, transforms included
    >>> jg(1.0, 2.0)                 # first call per input signature: record, emit, compile
    >>> jg(3.0, 4.0)                 # later calls: the compiled straight-line program only
    >>> print(jg.source(1.0, 2.0))   # the generated program (v1 = w1 * x ...; v3_bar = ...)

fn runs once per input signature (container structure, shapes and dtypes of float
arrays, Python float vs array, the values of int / bool / str arguments and of integer
or bool arrays, which are constants of the program) on a recording trace
(adkit.jit.trace): every registry op becomes one instruction. `grad`'s backward sweep
runs its rules with registry ops, so it is recorded too, and the emitted program is the
adjoint program (Tapenade's output, on our registry). Replays are checked, never trusted:

  * guards: branches on traced values and traced indices seen while recording are
    checked at replay; a call taking another branch is recorded again (up to
    `max_variants` programs per signature, then JitCacheError);
  * the strong-zero rule: a program whose result is inf or NaN is not returned; the call
    goes to the eager engines, which apply the rule (0 x inf is 0 only when the zero is
    exact by structure) and refuse the rest by name;
  * a recording that read a concrete traced value it cannot guard (np.argsort of a traced
    array, np.max's tie weights, ...) runs eagerly for that signature (`jg.eager_reason`).

Constants captured by closure are baked into the program when it is recorded: a
captured array is held by the program itself (changes made in place are seen), but a
float, or a name rebound to a new object afterwards, is not seen: call `jg.clear()`, or
pass such values as arguments (they are then inputs, not constants).
Called on values traced by an enclosing transform (ad.grad(ad.jit(f))), the jitted
function runs fn directly, so the enclosing transform differentiates it as usual.
"""

from __future__ import annotations

import functools
import inspect
import sys
import types
from collections.abc import Callable
from typing import Any

import numpy as np

from adkit.engines import gc_paused as _gc_paused
from adkit.errors import AdkitTypeError, JitCacheError
from adkit.jit.emit import MISS, NONFINITE, Program, emit, identifier
from adkit.jit.naming import adjoint_names
from adkit.jit.trace import Const, JitTrace, JitTracer, record_nograd
from adkit.ops import core
from adkit.ops.core import Tracer, scalar_namespace
from adkit.trees import tree_flatten, tree_unflatten

__all__ = ["Jitted", "jit"]

MAX_SIGNATURES = 64  # input signatures kept per jitted function


def jit(fn: Callable[..., Any], max_variants: int = 8) -> Jitted:
    """fn, recorded once per input signature and replayed as compiled straight-line code
    (see the module docstring). `max_variants`: programs kept per signature (one per set
    of branch outcomes) before JitCacheError."""
    if not callable(fn):
        raise AdkitTypeError(f"jit needs a function, got {type(fn).__name__}")
    return Jitted(fn, max_variants)


class _Entry:
    """The programs of one input signature, tried in order."""

    __slots__ = ("programs", "out_def", "eager_reason")

    def __init__(self) -> None:
        self.programs: list[Program] = []
        self.out_def: Any = None
        self.eager_reason: str | None = None


def _leaf_signature(x: Any) -> tuple[Any, bool]:
    """(the part of the cache key for one leaf, whether it is a traced input)."""
    t = type(x)
    if t is float or t is np.float64:
        return t, True
    if t is np.ndarray:
        if x.dtype.kind == "f":
            return (x.shape, x.dtype.str), True
        # integer / bool arrays (labels, indices, masks) are constants of the program, keyed by content
        return ("array", x.shape, x.dtype.str, x.tobytes()), False
    if isinstance(x, np.floating):
        return (t, x.dtype.str), True
    if x is None or t in (int, bool, str, np.int64, np.bool_):
        return (t, x), False  # static: part of the program
    raise AdkitTypeError(
        f"jit: an argument of type {t.__name__} is neither a number, a numpy array nor a container "
        "(dict / list / tuple) of them; pass it through a closure instead"
    )


class Jitted:
    """A jit-compiled function: call it like fn; `source(*args)` shows its program."""

    def __init__(self, fn: Callable[..., Any], max_variants: int = 8) -> None:
        self.fn = fn
        self.max_variants = max_variants
        self._cache: dict[Any, _Entry] = {}
        functools.update_wrapper(self, fn)

    def clear(self) -> None:
        """Forget every program (after mutating a constant fn captured, for instance)."""
        self._cache.clear()

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        if not kwargs and all(type(a) is float for a in args):  # the common scalar case, quickly
            key: Any = len(args)
            traced = args
            leaves = None
        else:
            leaves, treedef = tree_flatten((args, kwargs))
            parts = []
            traced_list = []
            for leaf in leaves:
                if isinstance(leaf, Tracer):  # under an enclosing transform: just run fn
                    return self.fn(*args, **kwargs)
                sig, is_traced = _leaf_signature(leaf)
                parts.append(sig)
                if is_traced:  # an np.float64 was recorded as a float (new_input): it runs as one
                    traced_list.append(float(leaf) if type(leaf) is np.float64 else leaf)
            key = (_hashable(treedef), tuple(parts))
            traced = traced_list
        entry = self._cache.get(key)
        if entry is not None:
            if entry.eager_reason is not None:
                return self.fn(*args, **kwargs)
            for program in entry.programs:
                out = self._run(program, traced)
                if out is MISS:
                    continue
                if out is NONFINITE:
                    return self.fn(*args, **kwargs)  # the eager engines apply the strong-zero rule
                return tree_unflatten(entry.out_def, out)
            if len(entry.programs) >= self.max_variants:
                raise JitCacheError(
                    f"jit of {_name(self.fn)}: {self.max_variants} programs recorded for this input signature, "
                    "and this call takes yet another path through fn's branches on traced values. Use fn "
                    "without jit, raise jit(fn, max_variants=...), or replace the branches with np.where."
                )
        else:
            if len(self._cache) >= MAX_SIGNATURES:
                del self._cache[next(iter(self._cache))]  # the oldest signature goes
            entry = self._cache[key] = _Entry()
        return self._record_and_run(entry, args, kwargs, traced)

    @staticmethod
    def _run(program: Program, traced: Any) -> Any:
        try:
            if program.uses_numpy:
                with np.errstate(all="ignore"):
                    return program.run(*traced)
            return program.run(*traced)
        except (ArithmeticError, ValueError):  # Python floats raise where IEEE gives inf / NaN
            return NONFINITE

    def _record(
        self, args: Any, kwargs: Any, names: bool = False
    ) -> tuple[JitTrace, list[int], list[Any], Any, tuple[dict[int, str], dict[int, str]]]:
        """Run fn once on a new recording trace: (trace, input refs, output refs, output
        structure, input names for the source)."""
        leaves, treedef = tree_flatten((args, kwargs))
        trace = JitTrace()
        inputs = []
        new_leaves = []
        for leaf in leaves:
            if _leaf_signature(leaf)[1]:
                t = trace.new_input(leaf)
                inputs.append(t.ref)
                new_leaves.append(t)
            else:
                new_leaves.append(leaf)
        a, kw = tree_unflatten(treedef, new_leaves)
        previous = core.nograd_recorder
        core.nograd_recorder = record_nograd
        try:
            with trace, adjoint_names(trace, enabled=names) as named:
                result = self.fn(*a, **kw)
        except Exception as error:
            if trace.concrete is None:
                raise
            # fn read a traced value's number before it failed: the recording was not going to
            # be replayed anyway, and the eager call decides (a rule may answer there, or raise)
            raise _RunsEagerly(trace.concrete) from error
        finally:
            core.nograd_recorder = previous
        out_leaves, out_def = tree_flatten(result)
        outputs = []
        for leaf in out_leaves:
            if isinstance(leaf, JitTracer) and leaf._trace is trace:
                outputs.append(leaf.ref)
            elif isinstance(leaf, Tracer):
                trace.mark_concrete("fn returned a value traced by a transform inside it (a leaked tracer)")
                outputs.append(Const(core.primal(leaf)))
            else:
                outputs.append(Const(leaf))
        if not names:
            return trace, inputs, outputs, out_def, ({}, {})
        input_names = self._input_names(args, kwargs, inputs)
        named.update(input_names)
        return trace, inputs, outputs, out_def, (named, _output_names(outputs, input_names))

    def _record_and_run(self, entry: _Entry, args: Any, kwargs: Any, traced: Any) -> Any:
        with _gc_paused():  # the collector's passes over a growing recording would make it quadratic
            try:
                trace, inputs, outputs, out_def, _ = self._record(args, kwargs)
            except _RunsEagerly as eager:
                entry.eager_reason = eager.reason
                return self.fn(*args, **kwargs)
            concrete = trace.concrete
            program = None if concrete else emit(trace, inputs, outputs, title=f"jit_{_name(self.fn)}")
            trace.release()
        if program is None:
            if "not finite" not in concrete:
                entry.eager_reason = concrete
            return self.fn(*args, **kwargs)
        entry.programs.append(program)
        entry.out_def = out_def
        out = self._run(program, traced)
        if out is MISS or out is NONFINITE:
            return self.fn(*args, **kwargs)
        return tree_unflatten(out_def, out)

    def source(self, *args: Any, **kwargs: Any) -> str:
        """The program jit runs for these arguments: the recorded ops in order, then (for a
        gradient) the adjoints in reverse order, named like the lecture (v3_bar = ...)."""
        with _gc_paused():
            try:
                trace, inputs, outputs, _, (names, aliases) = self._record(args, kwargs, names=True)
            except _RunsEagerly as eager:
                return f"# {_name(self.fn)} runs eagerly at these arguments: {eager.reason}\n"
            if trace.concrete is not None:
                text = f"# {_name(self.fn)} runs eagerly at these arguments: {trace.concrete}\n"
            else:
                text = emit(trace, inputs, outputs, names, title=_name(self.fn), aliases=aliases).source
            trace.release()
        return text

    @property
    def eager_reason(self) -> str | None:
        """Why some input signature runs eagerly (None when every one is compiled)."""
        return next((e.eager_reason for e in self._cache.values() if e.eager_reason), None)

    def _input_names(self, args: Any, kwargs: Any, inputs: list[int]) -> dict[int, str]:
        try:
            params = list(inspect.signature(self.fn).parameters.values())
        except (TypeError, ValueError):
            params = []
        positional = [p.name for p in params if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
        taken: set[str] = set(scalar_namespace())
        names: dict[int, str] = {}
        k = 0
        for n, arg in enumerate(list(args) + list(kwargs.values())):
            base = positional[n] if n < len(positional) else (list(kwargs)[n - len(args)] if n >= len(args) else "x")
            leaves = [leaf for leaf in tree_flatten(arg)[0] if _leaf_signature(leaf)[1]]
            for j in range(len(leaves)):
                names[inputs[k]] = identifier(base if len(leaves) == 1 else f"{base}_{j}", taken)
                k += 1
        return names


class _RunsEagerly(Exception):
    """A recording that failed after it was marked concrete: the eager call decides."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def _output_names(outputs: list[Any], input_names: dict[int, str]) -> dict[int, str]:
    """Names of outputs by position: when the last outputs are one per input (a gradient),
    the gradient of input x is x_bar."""
    ins = list(input_names.values())
    names: dict[int, str] = {}
    if 0 < len(ins) <= len(outputs) and all(type(r) is int for r in outputs[-len(ins) :]):
        for k, name in zip(range(len(outputs) - len(ins), len(outputs)), ins):
            if outputs[k] not in input_names:
                names[k] = f"{name}_bar"
    return names


def _hashable(treedef: Any) -> Any:
    if treedef is None:
        return None
    kind, keys, children = treedef
    return kind, None if keys is None else tuple(keys), tuple(_hashable(c) for c in children)


def _name(fn: Any) -> str:
    name = getattr(fn, "__name__", "fn")
    return name if name.isidentifier() and name != "<lambda>" else "fn"


class _CallableModule(types.ModuleType):
    """`adkit.jit` is both this package and the function (the package is imported on first
    use of `ad.jit`, which then refers to it): calling the package calls `jit`."""

    def __call__(self, fn: Callable[..., Any], max_variants: int = 8) -> Jitted:
        return jit(fn, max_variants)


sys.modules[__name__].__class__ = _CallableModule
