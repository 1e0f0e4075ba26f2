"""The op registry's machinery: `Op`, the tracer protocol and `bind`.

An `Op` is a plain object holding everything every engine needs about one primitive
(autodidax's primitives, ChainRules' rule table). Engines give ops meaning through
*traces*: a trace is one derivative call (one level); its tracers wrap values. `bind`
sends an op to the innermost trace among its arguments; the values an inner trace sees
of an outer trace's tracers are constants, which is what keeps perturbations of nested
derivatives apart (d/dx [x * d/dy (x + y)] = 1, not 2).

Derivative rules are stored as *expressions* over the op's argument names and `out`,
written with registry ops (`"1 - out * out"` for tanh, `"cos(x)"` for sin), like
ChainRules' `@scalar_rule`. Each engine compiles them: evaluated on traced values they
re-enter dispatch (so every rule is itself differentiable and higher order is free);
on Python floats the engines inline them into generated fast paths.
"""

from __future__ import annotations

import ast
import itertools
import math
import re
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from adkit.errors import (
    AdkitTypeError,
    AdkitValueError,
    InPlaceUpdateError,
    LeakedTracerError,
    TracerConversionError,
    UnsupportedFunctionError,
)

REGISTRY: dict[str, Op] = {}
NUMPY_NAMES: dict[Any, Op] = {}

# Names that rule and scalar expressions may use besides op names.
_SCALAR_BUILTINS = {"math": math, "inf": math.inf, "pi": math.pi}


@dataclass(eq=False)
class Op:
    """One primitive: its numpy implementation and everything engines need about it.

    Fields (see DESIGN.md, "The op registry"):
      name, label      registry key and a display label
      impl             numpy implementation (scalars and arrays)
      args             argument names; rule expressions refer to them (and to `out`)
      variadic         takes any number of positional inputs (*xs)
      params           keyword parameters and their defaults (axis, alpha, ...)
      scalar           expression for Python floats (math module), a fast path
      partials         one expression per argument: d out / d arg, written with registry
                       ops; None for an argument with no derivative. Or a callable
                       (out, *xs, **params) -> list, for variadic ops.
      jvp, vjp         overrides for structural ops where scalar partials do not fit:
                       jvp(tangents, xs, out, nb, **params) with `nb` leading batch axes
                       on each tangent (None for a constant input);
                       vjp(g, xs, out, needed, **params) -> one cotangent per input
      sympy            (sympy_module, *symbols, **params) -> sympy expression
      domain           (rng, shape) -> valid sample inputs of that shape, away from kinks
                       (elementwise ops; the registry-wide tests sample it)
      examples         rng -> [(args, params), ...] sample calls (structural ops)
      kinks            where the op is not differentiable and what it returns there
      complex_step     whether f(x + ih) is analytic here (complex-step is valid)
      numpy_names      numpy callables that map to this op
      reached_by       for an op with neither a numpy name nor adkit.<name>: how it is used
      nograd           derivative zero everywhere (comparisons, sign): engines skip it
      linear           linear in its (differentiable) inputs
      piecewise_linear its JVP/VJP is linear in the tangent/cotangent with coefficients that
                       are piecewise constant in the values (max, sort, getitem, any linear op):
                       a zero coefficient is then an exact zero, see `zeros_are_structural`
      multilinear      linear in each input when the others are held fixed (matmul, einsum)
      complex_ok       its rules are right for complex arguments too (JAX's convention, README
                       "Complex numbers"): analytic ops, whose partials are then the complex
                       derivative, and ops with complex-aware jvp/vjp. Any other op refuses a
                       complex argument by name (or hands it to `complex_variant`)
      complex_variant  name of the op that computes this one on complex arguments (abs ->
                       abs_complex: |z| is not analytic, so it needs its own rule)
    """

    name: str
    impl: Callable[..., Any]
    args: tuple[str, ...] = ("x",)
    variadic: bool = False
    params: dict[str, Any] = field(default_factory=dict)
    scalar: str | None = None
    partials: tuple[str | None, ...] | Callable[..., Sequence[Any]] | None = None
    jvp: Callable[..., Any] | None = None
    vjp: Callable[..., Any] | None = None
    sympy: Callable[..., Any] | None = None
    domain: Callable[[np.random.Generator, tuple[int, ...]], tuple[Any, ...]] | None = None
    examples: Callable[[np.random.Generator], list[tuple[tuple[Any, ...], dict[str, Any]]]] | None = None
    kinks: str = ""
    complex_step: bool = True
    numpy_names: tuple[Any, ...] = ()
    nograd: bool = False
    linear: bool = False
    piecewise_linear: bool = False
    multilinear: bool = False
    complex_ok: bool = False
    complex_variant: str | None = None
    sympy_refusal: str = ""  # why an op has no sympy form (fft, svd): the symbolic engine says so
    label: str = ""
    doc: str = ""
    reached_by: str = ""  # how users reach an op that has no numpy name nor adkit.<name>
    vjp_needs_out: bool = True  # False when the VJP uses only the output's shape
    # filled by compile_rules: which arguments (and whether `out`) the rules read, so the
    # tape keeps only those values alive (the others as their shapes)
    keeps: tuple[bool, ...] = field(default=(), repr=False)
    keeps_out: bool = field(default=True, repr=False)
    # compiled forms, filled by compile_rules()
    scalar_fn: Callable[..., Any] | None = field(default=None, repr=False)
    partial_fns: tuple[Callable[..., Any] | None, ...] = field(default=(), repr=False)
    kernels: dict[Any, Callable[..., Any] | None] = field(default_factory=dict, repr=False)
    fast: dict[type, Callable[..., Any]] = field(default_factory=dict, repr=False)
    exact_zeros: dict[Any, bool] = field(default_factory=dict, repr=False)  # zeros_are_structural cache

    def __post_init__(self) -> None:
        self.label = self.label or self.name

    @property
    def structural(self) -> bool:
        """True when the op is differentiated by jvp/vjp overrides, not partials."""
        return self.partials is None and not self.nograd

    def __call__(self, *args: Any, **params: Any) -> Any:
        if not params and args:
            first = type(args[0])
            if first is float:
                fn = self.scalar_fn
                if fn is not None:
                    for a in args:
                        if type(a) is not float:
                            break
                    else:
                        try:
                            return fn(*args)
                        except (ArithmeticError, ValueError):
                            pass  # numpy semantics (inf, nan and a warning) below
            else:
                fast = self.fast.get(first)
                if fast is not None:
                    return fast(*args)
        return bind(self, args, params)

    def __repr__(self) -> str:
        return f"<op {self.name}>"


def register(op: Op) -> Op:
    """Add `op` to the registry (and its numpy names to the numpy dispatch table).

    This is the documented way to add a custom op once: every engine and the
    registry-wide tests pick it up. Rules may use any op already registered.
    """
    if op.name in REGISTRY:
        raise AdkitValueError(f"an op named {op.name!r} is already registered")
    if op.partials is None and not op.nograd and (op.jvp is None or op.vjp is None):
        raise AdkitValueError(
            f"op {op.name!r} needs derivative rules: `partials` (one expression per "
            "argument), or both `jvp` and `vjp` overrides, or nograd=True"
        )
    if op.jvp is not None and not isinstance(op.jvp, _EmptySafeJVP):
        op.jvp = _EmptySafeJVP(op.jvp)
    if op.vjp is not None and not isinstance(op.vjp, _EmptySafeVJP):
        op.vjp = _EmptySafeVJP(op.vjp)
    REGISTRY[op.name] = op
    for np_name in op.numpy_names:
        NUMPY_NAMES[np_name] = op
    if _compiled:
        compile_rules(op)
    return op


class _EmptySafeJVP:
    """An op's JVP override, answering itself where an array is empty: a linear map from
    or to a space of dimension 0 is zero, so an empty input contributes nothing and an
    empty output (or an empty batch of directions) has an all-zero tangent. The overrides
    themselves (loops over entries, stacks of per-entry terms) need not handle size 0."""

    __slots__ = ("rule",)

    def __init__(self, rule: Callable[..., Any]) -> None:
        self.rule = rule

    def __call__(self, tangents: Sequence[Any], xs: Sequence[Any], out: Any, nb: int, **params: Any) -> Any:
        batch = next((shape_of(t)[:nb] for t in tangents if t is not None), ())
        if math.prod(batch) == 0 or math.prod(shape_of(out)) == 0:
            return np.zeros(batch + shape_of(out))
        if any(t is not None and math.prod(shape_of(x)) == 0 for t, x in zip(tangents, xs)):
            tangents = [None if t is None or math.prod(shape_of(x)) == 0 else t for t, x in zip(tangents, xs)]
            if all(t is None for t in tangents):
                return np.zeros(batch + shape_of(out))
        return self.rule(tangents, xs, out, nb, **params)


class _EmptySafeVJP:
    """The VJP counterpart: the cotangent of an empty input is an empty zero array, and
    every cotangent of an empty output is zero."""

    __slots__ = ("rule",)

    def __init__(self, rule: Callable[..., Any]) -> None:
        self.rule = rule

    def __call__(self, g: Any, xs: Sequence[Any], out: Any, needed: Sequence[bool], **params: Any) -> Any:
        empty = [need and math.prod(shape_of(x)) == 0 for x, need in zip(xs, needed)]
        if math.prod(shape_of(out)) == 0:
            empty = list(needed)
        if not any(empty):
            return self.rule(g, xs, out, needed, **params)
        rest = [need and not e for need, e in zip(needed, empty)]
        cots = list(self.rule(g, xs, out, rest, **params)) if any(rest) else [None] * len(xs)
        return tuple(np.zeros(shape_of(x)) if e else c for x, e, c in zip(xs, empty, cots))


def unregister(name: str) -> None:
    """Remove a custom op (tests use it to keep the registry clean)."""
    op = REGISTRY.pop(name)
    for np_name in op.numpy_names:
        if NUMPY_NAMES.get(np_name) is op:
            del NUMPY_NAMES[np_name]


_compiled = False


def rule_namespace() -> dict[str, Any]:
    """Names rule expressions see on traced or array values: the registry ops."""
    ns: dict[str, Any] = dict(_SCALAR_BUILTINS)
    ns.update(REGISTRY)
    return ns


def scalar_namespace() -> dict[str, Any]:
    """Names rule expressions see on Python floats: each op's scalar function."""
    ns: dict[str, Any] = dict(_SCALAR_BUILTINS)
    for name, op in REGISTRY.items():
        ns[name] = op.scalar_fn if op.scalar_fn is not None else op
    return ns


def arg_names(op: Op, n: int | None = None) -> list[str]:
    """Argument names of `op` (for a variadic op, x0 ... x(n-1))."""
    if op.variadic:
        return [f"x{i}" for i in range(n or 0)]
    return list(op.args)


def compile_rules(op: Op, namespace: dict[str, Any] | None = None) -> None:
    """Compile the op's scalar and partial expressions into functions.

    Rules see the registry ops by name (`namespace`, default: the registry as it is now).
    """
    # parameters keep their defaults: lambda x, alpha=_default_alpha: ...
    names = ", ".join(list(op.args) + [f"{p}=_default_{p}" for p in op.params])
    defaults = {f"_default_{p}": v for p, v in op.params.items()}
    if op.scalar is not None and not op.variadic:
        op.scalar_fn = eval(f"lambda {names}: {op.scalar}", {**_SCALAR_BUILTINS, **defaults})  # noqa: S307 (registry source, never user input)
    if isinstance(op.partials, tuple):
        ns = {**(rule_namespace() if namespace is None else namespace), **defaults}
        fns = []
        for expr in op.partials:
            fns.append(None if expr is None else eval(f"lambda out, {names}: {expr}", ns))  # noqa: S307
        op.partial_fns = tuple(fns)
        op.kernels.clear()
        op.exact_zeros.clear()
        used = set(re.findall(r"[A-Za-z_]\w*", " ".join(e for e in op.partials if e)))
        op.keeps = tuple(a in used for a in op.args)
        op.keeps_out = "out" in used
    else:
        op.keeps = ()
        op.keeps_out = op.vjp_needs_out


def compile_all() -> None:
    """Compile every registered op once the registry is complete (rules name other ops)."""
    global _compiled
    namespace = rule_namespace()
    for op in REGISTRY.values():
        compile_rules(op, namespace)
    _compiled = True


def local_partials(
    op: Op, out: Any, vals: Sequence[Any], params: dict[str, Any], needed: Sequence[bool], quiet: bool = True
) -> list[Any]:
    """Local partials d out / d vals[i] for the inputs that need them (None elsewhere).

    On plain float arrays of one shape the op's in-place kernels compute them (one
    allocation per partial instead of one per step); on anything else, the rule
    expressions op by op (traced values, numpy scalars, broadcasting). inf and NaN
    partials are the callers' business: numpy's warnings for them are silenced here
    (`quiet`), or by the caller, which then passes quiet=False.
    """
    if callable(op.partials):
        parts = list(op.partials(out, *vals, **params))
        return [p if need else None for p, need in zip(parts, needed)]
    if quiet:
        with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
            return _partials(op, out, vals, params, needed)
    return _partials(op, out, vals, params, needed)


def _partials(op: Op, out: Any, vals: Sequence[Any], params: dict[str, Any], needed: Sequence[bool]) -> list[Any]:
    kinds = _kernel_kinds(out, vals)
    result = []
    for i, (generic, need) in enumerate(zip(op.partial_fns, needed)):
        if not need or generic is None:
            result.append(None)
            continue
        kernel = None if kinds is None else _partial_kernel(op, i, kinds)
        try:
            result.append((generic if kernel is None else kernel)(out, *vals, **params))
        except (ArithmeticError, ValueError):
            # Python floats raise where IEEE arithmetic gives inf or nan (0.5 / 0.0):
            # evaluate the rule in numpy floats instead, as numpy would.
            with np.errstate(all="ignore"):
                result.append(generic(_ieee(out), *[_ieee(v) for v in vals], **params))
    return result


def _kernel_kinds(out: Any, vals: Sequence[Any]) -> tuple[str, ...] | None:
    """For an in-place kernel (adkit.ops.kernels): the kind of out and of each input, "a"
    (float ndarray), "n" (Python number) or "-" (not kept by the tape: rules do not read
    it), when every array has one shape and dtype; None when kernels do not apply."""
    ref = None
    kinds = []
    for v in (out, *vals):
        t = type(v)
        if t is np.ndarray:
            if ref is None:
                if v.dtype.kind != "f":
                    return None
                ref = v
            elif v.shape != ref.shape or v.dtype != ref.dtype:
                return None
            kinds.append("a")
        elif t is float or t is int:
            kinds.append("n")
        elif t is ShapeOnly:
            kinds.append("-")
        else:
            return None
    return None if ref is None else tuple(kinds)


def _partial_kernel(op: Op, i: int, kinds: tuple[str, ...]) -> Callable[..., Any] | None:
    """The in-place kernel of the op's i-th partial for these kinds of values (compiled once)."""
    key = (i, kinds)
    if key not in op.kernels:
        from adkit.ops.kernels import compile_kernel

        names = ("out", *op.args)
        arrays = [n for n, k in zip(names, kinds) if k == "a"]
        ufuncs = {name: o.impl for name, o in REGISTRY.items() if isinstance(o.impl, np.ufunc)}
        op.kernels[key] = compile_kernel(op.partials[i], names, arrays, op.params, ufuncs)
    return op.kernels[key]


def zeros_are_structural(op: Op, i: int, traced: tuple[bool, ...]) -> bool:
    """Whether a zero in the op's i-th local derivative is an *exact* zero: one that holds in a
    whole neighbourhood of the point, so that 0 x inf there is taken as 0 (the strong-zero rule).

    The policy (README, "Non-differentiable points"): the product of a zero and an infinite
    (or NaN) factor in the chain rule is 0 only when the zero is structural — the partial is
    piecewise constant in the traced values (np.where's untaken branch, relu left of 0, the
    non-winners of a max, a constant factor 0 in 0 * x), so the output really does not depend
    on that input near the point. A zero that merely happens at the point (2x at x = 0, 1/inf
    after an overflow, an underflowed exp) says nothing, and 0 x inf stays NaN: the derivative
    is refused, never silently 0.

    For an elementwise op the partial expression is read: it is piecewise constant when the
    traced arguments (and `out`) reach it only through comparisons and nograd ops. A
    structural op qualifies when it is linear or piecewise linear, or multilinear with only
    input `i` traced (the others are then constant coefficients).
    """
    key = (i, traced)
    cache = op.exact_zeros
    if key not in cache:
        if op.partials is None:
            cache[key] = op.linear or op.piecewise_linear or (op.multilinear and sum(traced) == 1)
        elif not isinstance(op.partials, tuple) or op.partials[i] is None:
            cache[key] = False
        else:
            names = {a for a, t in zip(arg_names(op, len(traced)), traced) if t} | {"out"}
            cache[key] = not _depends(ast.parse(op.partials[i], mode="eval").body, names)
    return cache[key]


def _depends(node: ast.AST, names: set[str]) -> bool:
    """Whether an expression's value can change with `names` other than by jumps (through
    comparisons and nograd ops only). Conservative: anything unknown depends."""
    if isinstance(node, ast.Name):
        return node.id in names
    if isinstance(node, (ast.Constant, ast.Compare)):
        return False
    if isinstance(node, ast.UnaryOp):
        return not isinstance(node.op, ast.Not) and _depends(node.operand, names)
    if isinstance(node, ast.BinOp):
        return _depends(node.left, names) or _depends(node.right, names)
    if isinstance(node, ast.IfExp):
        return _depends(node.body, names) or _depends(node.orelse, names)
    if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id in REGISTRY:
        called = REGISTRY[node.func.id]
        if called.nograd:
            return False
        args = node.args[1:] if called.name == "where" else node.args
        return any(_depends(a, names) for a in args) or any(_depends(k.value, names) for k in node.keywords)
    return True


def _ieee(v: Any) -> Any:
    return np.float64(v) if type(v) is float else v


# ---------------------------------------------------------------------------
# Traces and tracers

_levels = itertools.count(1)


class Trace:
    """One derivative call. Later traces get higher levels (they are nested inside)."""

    __slots__ = ("level", "active")

    def __init__(self) -> None:
        self.level = next(_levels)
        self.active = True

    def process(self, op: Op, args: Sequence[Any], params: dict[str, Any]) -> Any:
        raise NotImplementedError

    def __enter__(self) -> Trace:
        return self

    def __exit__(self, *exc: object) -> None:
        self.active = False


class Tracer:
    """A value seen by one trace. Engines subclass it (Dual, Var)."""

    __slots__ = ()
    __array_priority__ = 1000
    _trace: Trace
    value: Any

    # --- numpy protocol: handled by adkit.numpy_api (installed at import) ---
    def __array_ufunc__(self, ufunc: Any, method: str, *inputs: Any, **kwargs: Any) -> Any:
        return NUMPY_HANDLERS["ufunc"](ufunc, method, inputs, kwargs)

    def __array_function__(self, func: Any, types: Any, args: Any, kwargs: Any) -> Any:
        return NUMPY_HANDLERS["function"](func, args, kwargs)

    def __array__(self, dtype: Any = None, copy: Any = None) -> Any:
        integer = dtype is not None and np.dtype(dtype).kind in "iub"
        refused = None if integer else _scipy_caller()
        if refused is not None:
            raise UnsupportedFunctionError(
                f"{refused[0]} is not supported on adkit's traced values: it converts its input to a plain "
                f"numpy array, which would drop the derivative. {refused[1]}"
            )
        if dtype is None or np.dtype(dtype) == object:
            return object_array(self)  # np.array([x, y]): adkit stacks it where it meets it
        if integer:  # np.int64(x), np.asarray(x, dtype=int): indices, masks
            return _integer_cast(self, dtype)
        caller = _numpy_caller()
        if caller is not None:
            raise UnsupportedFunctionError(
                f"{caller} is not supported on adkit's traced values: it converts its input to a plain "
                "numpy array, which would drop the derivative. Rewrite it with numpy functions adkit "
                "supports (adkit.numpy_api.supported_names()), or register an op (adkit.ops.register)."
            )
        raise TracerConversionError(
            "a traced adkit value cannot be converted to a plain numpy array (np.array(x), "
            "np.asarray(x), np.array([x, ...]), a[i:j] = x): that would drop its derivative. Build arrays with "
            "np.stack / np.concatenate instead, or use adkit.primal(x) if you only need the numbers."
        )

    # --- array-like attributes ---
    def peek(self) -> Any:
        """The value one level down, for its type or shape only (see `peek`)."""
        return self.value

    @property
    def shape(self) -> tuple[int, ...]:
        return np.shape(peek(self))

    @property
    def ndim(self) -> int:
        return len(self.shape)

    @property
    def size(self) -> int:
        return math.prod(self.shape)

    @property
    def dtype(self) -> Any:
        if sys._getframe(1).f_globals.get("__name__") in _NUMPY_METHODS:
            # np.mean / np.std of an object array of tracers finish with
            # `ret.dtype.type(ret / n)`: np.object_ keeps ret (float64 would drop the derivative)
            return _OBJECT
        return np.result_type(primal(self))

    @property
    def T(self) -> Any:
        return REGISTRY["transpose"](self)

    @property
    def real(self) -> Any:
        return REGISTRY["real"](self)

    @property
    def imag(self) -> Any:
        return REGISTRY["imag"](self)

    def conj(self) -> Any:
        return REGISTRY["conj"](self)

    conjugate = conj

    def __len__(self) -> int:
        shape = self.shape
        if not shape:
            raise AdkitTypeError("len() of a 0-d traced value (a scalar has no length)")
        return shape[0]

    def __iter__(self) -> Any:
        return (self[i] for i in range(len(self)))

    def __getitem__(self, index: Any) -> Any:
        return REGISTRY["getitem"](self, index=index)

    def __setitem__(self, index: Any, value: Any) -> None:
        raise InPlaceUpdateError(
            "in-place assignment into a traced array (x[i] = v) is not supported: its derivative would "
            "be lost. Build a new array instead (np.where(mask, new, x), np.concatenate, np.stack)."
        )

    def __bool__(self) -> bool:
        return bool(primal(self))

    def __float__(self) -> float:
        raise TracerConversionError(
            "float() of a traced adkit value (also math.* functions, np.float64(x)) would drop its "
            "derivative. Keep it as it is (numpy functions accept it), or, if you only need the "
            "number, use adkit.primal(x)."
        )

    def __complex__(self) -> complex:
        raise TracerConversionError(
            "complex() of a traced adkit value would drop its derivative. Keep it as it is (x * 1j, "
            "x + 0j and numpy functions keep it), or use complex(adkit.primal(x)) for the number."
        )

    def __int__(self) -> int:
        raise TracerConversionError(
            "int() of a traced adkit value would drop its derivative (and truncate it). For a "
            "piecewise-constant value use np.floor(x) (a constant); for a loop count or an index, "
            "pass it as a separate, non-differentiated argument (it stays a plain int), or use "
            "int(adkit.primal(x))."
        )

    def __index__(self) -> int:
        raise TracerConversionError(
            "a traced adkit value cannot be used as an index or a count (seq[x], range(x)): it is a "
            "float being differentiated. Pass integers as separate arguments that are not in argnums "
            "(they stay plain ints), or use int(adkit.primal(x)) if you mean to drop the derivative."
        )

    def __round__(self, ndigits: int | None = None) -> Any:
        raise TracerConversionError(
            "round() of a traced adkit value would turn it into a plain number. Use np.round(x) "
            "(a constant: its derivative is 0 almost everywhere), or adkit.primal(x) for the number."
        )

    def __format__(self, spec: str) -> str:
        if not spec:
            return str(self)
        try:
            return format(primal(self), spec)  # printing a value does not touch its derivative
        except (TypeError, ValueError) as exc:
            raise TracerConversionError(
                f"cannot format a traced adkit value with {spec!r}: {exc}. Format adkit.primal(x) "
                "(its plain value) instead."
            ) from exc

    __hash__ = object.__hash__

    # --- methods numpy arrays have ---
    def sum(self, axis: Any = None, keepdims: bool = False) -> Any:
        return REGISTRY["sum"](self, axis=axis, keepdims=keepdims)

    def mean(self, axis: Any = None, keepdims: bool = False) -> Any:
        return REGISTRY["mean"](self, axis=axis, keepdims=keepdims)

    def max(self, axis: Any = None, keepdims: bool = False) -> Any:
        return REGISTRY["max"](self, axis=axis, keepdims=keepdims)

    def min(self, axis: Any = None, keepdims: bool = False) -> Any:
        return REGISTRY["min"](self, axis=axis, keepdims=keepdims)

    def prod(self, axis: Any = None, keepdims: bool = False) -> Any:
        return REGISTRY["prod"](self, axis=axis, keepdims=keepdims)

    def reshape(self, *shape: Any) -> Any:
        if len(shape) == 1 and isinstance(shape[0], (tuple, list)):
            shape = tuple(shape[0])
        return REGISTRY["reshape"](self, shape=tuple(shape))

    def transpose(self, *axes: Any) -> Any:
        if len(axes) == 1 and isinstance(axes[0], (tuple, list)):
            axes = tuple(axes[0])
        return REGISTRY["transpose"](self, axes=tuple(axes) or None)

    def ravel(self) -> Any:
        return REGISTRY["reshape"](self, shape=(-1,))

    flatten = ravel

    def dot(self, other: Any) -> Any:
        return REGISTRY["matmul"](self, other)

    def astype(self, dtype: Any) -> Any:
        kind = np.dtype(dtype).kind
        if kind == "f" or (kind == "c" and is_complex(self)):
            return self
        if kind == "c":
            return REGISTRY["add"](self, 0j)  # promotion to complex: the identity on the value
        if kind in "iub":
            return _integer_cast(self, dtype)
        raise TracerConversionError(
            f"astype({dtype}) of a traced value would drop its derivative: only float and complex dtypes keep it"
        )

    # Other ndarray methods (std, clip, argmax, copy, ...) are added after the class as
    # the numpy functions of the same names (_ndarray_method); these two must refuse.
    def sort(self, axis: int = -1) -> None:
        raise InPlaceUpdateError("x.sort() sorts in place, which a traced array cannot do: use np.sort(x)")

    def item(self, *args: Any) -> Any:
        raise TracerConversionError(
            "x.item() of a traced adkit value would drop its derivative: index it (x[0, 1]) "
            "instead, or use adkit.primal(x) if you only need the number."
        )

    # --- operators (engines replace the hot ones with generated fast paths) ---
    def __add__(self, other: Any) -> Any:
        return REGISTRY["add"](self, other)

    def __radd__(self, other: Any) -> Any:
        return REGISTRY["add"](other, self)

    def __sub__(self, other: Any) -> Any:
        return REGISTRY["sub"](self, other)

    def __rsub__(self, other: Any) -> Any:
        return REGISTRY["sub"](other, self)

    def __mul__(self, other: Any) -> Any:
        return REGISTRY["mul"](self, other)

    def __rmul__(self, other: Any) -> Any:
        return REGISTRY["mul"](other, self)

    def __truediv__(self, other: Any) -> Any:
        return REGISTRY["div"](self, other)

    def __rtruediv__(self, other: Any) -> Any:
        return REGISTRY["div"](other, self)

    def __pow__(self, other: Any) -> Any:
        return REGISTRY["pow"](self, other)

    def __rpow__(self, other: Any) -> Any:
        return REGISTRY["pow"](other, self)

    def __matmul__(self, other: Any) -> Any:
        return REGISTRY["matmul"](self, other)

    def __floordiv__(self, other: Any) -> Any:
        return np.floor_divide(self, other)

    def __rfloordiv__(self, other: Any) -> Any:
        return np.floor_divide(other, self)

    def __mod__(self, other: Any) -> Any:
        return np.remainder(self, other)

    def __rmod__(self, other: Any) -> Any:
        return np.remainder(other, self)

    def __rmatmul__(self, other: Any) -> Any:
        return REGISTRY["matmul"](other, self)

    def __neg__(self) -> Any:
        return REGISTRY["neg"](self)

    def __pos__(self) -> Any:
        return self

    def __abs__(self) -> Any:
        return REGISTRY["abs"](self)

    def __lt__(self, other: Any) -> Any:
        return REGISTRY["less"](self, other)

    def __le__(self, other: Any) -> Any:
        return REGISTRY["less_equal"](self, other)

    def __gt__(self, other: Any) -> Any:
        return REGISTRY["greater"](self, other)

    def __ge__(self, other: Any) -> Any:
        return REGISTRY["greater_equal"](self, other)

    def __eq__(self, other: Any) -> Any:  # type: ignore[override]
        return REGISTRY["equal"](self, other)

    def __ne__(self, other: Any) -> Any:  # type: ignore[override]
        return REGISTRY["not_equal"](self, other)


NUMPY_HANDLERS: dict[str, Callable[..., Any]] = {}


_IN_PLACE_METHODS = {
    "fill",
    "put",
    "resize",
    "setfield",
    "setflags",
    "itemset",
    "partition",
    "byteswap",
    "dump",
    "tolist",
}


def _ndarray_method(name: str) -> Callable[..., Any]:
    """What tracer.<name>(...) does for an ndarray method Tracer does not define: the numpy
    function of that name (differentiated, or refused by name like any numpy function);
    a clear error for in-place and byte-level methods."""
    function = getattr(np, name, None)
    if name not in _IN_PLACE_METHODS and callable(function):

        def method(self: Tracer, *args: Any, **kwargs: Any) -> Any:
            return function(self, *args, **kwargs)

    else:

        def method(self: Tracer, *args: Any, **kwargs: Any) -> Any:
            raise TracerConversionError(
                f"ndarray.{name}() is not available on a traced adkit value: it works in place, on "
                "the raw bytes or on plain Python values, which would lose the derivative. Build a "
                "new array instead (np.where, np.concatenate, indexing)"
            )

    method.__name__ = name
    return method


# Every other public ndarray method, as a class attribute. Not through __getattr__: a
# __getattr__ hook would turn off CPython's attribute-access specialisation for every
# tracer and make the scalar engines much slower.
for _name in dir(np.ndarray):
    if not _name.startswith("_") and not hasattr(Tracer, _name) and callable(getattr(np.ndarray, _name)):
        setattr(Tracer, _name, _ndarray_method(_name))


def _numpy_caller() -> str | None:
    """np.<name> when numpy's own Python code (np.vectorize, ...) is converting a traced
    value to an array, so that the refusal names the function the user called."""
    frame = sys._getframe(2)
    outermost = None
    while frame is not None and frame.f_globals.get("__name__", "").split(".")[0] == "numpy":
        outermost = frame
        frame = frame.f_back
    if outermost is None:
        return None
    code = outermost.f_code
    return "np." + getattr(code, "co_qualname", code.co_name).split(".")[0]


_WRAPPER_NAMES = {"wrapper", "inner", "wrapped", "decorated"}
# scipy.special's Python functions whose numpy code fails on object arrays (np.isfinite of
# one, complex weights); adkit.scipy.special has them as registry compositions
_SCIPY_SPECIAL_FAILING = {"logsumexp", "log_softmax", "multigammaln"}


def _scipy_caller() -> tuple[str, str] | None:
    """(scipy.linalg.<name>, advice) when scipy.linalg's Python code (past numpy's own frames) is
    converting a traced value to an array: LAPACK needs numbers, and scipy's own error about
    object arrays would not say why; likewise scipy.special's logsumexp and log_softmax, and
    scipy.stats' distribution methods (np.isnan of an object array), named by the outermost one.
    Other scipy functions may compute on numpy's object arrays of traced scalars (as
    scipy.special.softmax does), so they are let through."""
    frame = sys._getframe(2)
    while frame is not None and frame.f_globals.get("__name__", "").split(".")[0] == "numpy":
        frame = frame.f_back
    found = None
    while frame is not None and frame.f_globals.get("__name__", "").split(".")[0] == "scipy":
        module, name = frame.f_globals["__name__"], frame.f_code.co_name
        if name in _WRAPPER_NAMES:  # a decorator's frame (scipy's batching): the function it wraps
            wrapped = [v for v in frame.f_locals.values() if callable(v) and hasattr(v, "__module__")]
            module, name = next(((v.__module__ or "", v.__name__) for v in wrapped), (module, name))
        if module.startswith("scipy.linalg") and not name.startswith("_"):
            found = (
                f"scipy.linalg.{name}",
                "Use the numpy functions adkit differentiates (np.linalg's, adkit.numpy_api.supported_names()), "
                "or register an op (adkit.ops.register).",
            )
        elif module.startswith("scipy.special") and name in _SCIPY_SPECIAL_FAILING:
            found = (f"scipy.special.{name}", f"Use adkit.scipy.special.{name}, which takes scipy's arguments.")
        elif module.startswith("scipy.stats") and not name.startswith("_"):
            found = _scipy_stats_caller(frame, name) or found
        frame = frame.f_back
    return found


def _scipy_stats_caller(frame: Any, method: str) -> tuple[str, str] | None:
    """("scipy.stats.norm.logpdf", advice) for the frame of a distribution's method (of scipy's
    distribution object, or of a frozen one: norm(0, 1).logpdf); None for other frames."""
    owner = frame.f_locals.get("self")
    if owner is None:
        return None
    owner = getattr(owner, "dist", owner)  # a frozen distribution holds the distribution
    dist = getattr(owner, "name", None) or type(owner).__name__.removesuffix("_frozen").removesuffix("_gen")
    from adkit.scipy import stats  # lazily: adkit.scipy.stats imports this module

    ours = getattr(getattr(stats, dist, None), method, None)
    advice = (
        f"Use adkit.scipy.stats.{dist}.{method}, which takes scipy's arguments."
        if ours is not None
        else f"adkit.scipy.stats has drop-in densities for {', '.join(stats.__all__)}; write this one with "
        "numpy functions and scipy.special ops adkit differentiates."
    )
    return f"scipy.stats.{dist}.{method}", advice


def all_finite(a: np.ndarray) -> bool:
    """Every entry of a numeric array is finite (no inf, no NaN), in one pass.

    For contiguous float arrays the pass is BLAS's dot product a . a, about 3x cheaper
    than np.sum: it is finite iff every entry is, unless the squares overflow (entries
    beyond ~1e154), and then the entries are looked at one by one. Warnings silenced.
    """
    with np.errstate(over="ignore", invalid="ignore"):
        if a.dtype.kind == "f" and a.dtype.itemsize >= 4 and a.flags.c_contiguous:
            flat = a.reshape(-1)
            if math.isfinite(np.vdot(flat, flat)):
                return True
        elif np.isfinite(np.sum(a)):
            return True
        return bool(np.isfinite(a).all())


_OBJECT = np.dtype(object)
_NUMPY_METHODS = ("numpy._core._methods", "numpy.core._methods")  # numpy 2, numpy 1


def object_array(x: Tracer) -> np.ndarray:
    """A traced value as numpy's object array of traced scalars (what np.array([x, y]) and
    np.asarray(x) build from it). numpy's object loops compute on the entries; adkit turns
    such an array back into one traced array (`lift_object`) wherever it meets one."""
    shape = x.shape
    out = np.empty(shape, dtype=object)
    if shape == ():
        out[()] = x
    else:
        for index in np.ndindex(shape):
            out[index] = x[index]
    return out


def lift_object(a: Any) -> Any:
    """An object array holding traced values -> one traced array (a `stack` of its entries,
    reshaped); anything else unchanged. Numbers among the entries are constants."""
    if type(a) is not np.ndarray or a.dtype is not _OBJECT:
        return a
    entries = a.reshape(-1).tolist()
    if not any(isinstance(e, Tracer) for e in entries):
        return a
    for e in entries:
        if not (isinstance(e, (Tracer, int, float, np.number)) and np.ndim(primal(e)) == 0):
            raise TracerConversionError(
                f"an object array mixing traced values with {type(e).__name__} entries of shape "
                f"{np.shape(primal(e))}: adkit stacks object arrays of traced scalars and numbers only"
            )
    stacked = REGISTRY["stack"](*[e if isinstance(e, Tracer) else float(e) for e in entries])
    return REGISTRY["reshape"](stacked, shape=a.shape)


def _integer_cast(x: Tracer, dtype: Any) -> np.ndarray:
    """x as integers (truncated, as numpy casts) or booleans: a plain array, a constant of the
    derivative. An integer-valued function of x is piecewise constant, so its derivative is 0
    wherever it exists (as np.floor's); JAX's astype(int) and torch's .long() do the same.
    Python's int(x) stays refused (it is mostly a loop count or an index written by mistake)."""
    return np.asarray(primal(x)).astype(dtype)


def primal(x: Any) -> Any:
    """The plain value under every level of tracing."""
    while isinstance(x, Tracer):
        x = x.value
    return x


def peek(x: Any) -> Any:
    """The plain value under every level of tracing, for reading its type or shape only:
    a recording trace (adkit.jit) does not treat such a read as a use of the number."""
    while isinstance(x, Tracer):
        x = x.peek()
    return x


class ShapeOnly:
    """What a tape keeps of a value its rules never read: its shape (for unbroadcast)."""

    __slots__ = ("shape",)

    def __init__(self, shape: tuple[int, ...]) -> None:
        self.shape = shape

    def __repr__(self) -> str:
        return f"<value of shape {self.shape}, not kept>"


def shape_of(x: Any) -> tuple[int, ...]:
    """Shape of a float, array or tracer without going through numpy dispatch."""
    t = type(x)
    if t is np.ndarray or t is ShapeOnly:
        return x.shape
    if t is float:
        return ()
    if isinstance(x, Tracer):
        x = peek(x)
        t = type(x)
        if t is float:
            return ()
        if t is np.ndarray:
            return x.shape
    return np.shape(x)


def evaluate(trace: Trace, op: Op, args: Sequence[Any], params: dict[str, Any]) -> tuple[Any, list[Any], list[Any]]:
    """An engine's first step in `process`: (op's value, the arguments' values under
    `trace`, and per argument the trace's own tracer or None for a constant).

    Values traced by an enclosing derivative call go back through dispatch; plain
    values go straight to the numpy implementation."""
    vals: list[Any] = []
    own: list[Any] = []
    outer = False
    for a in args:
        if isinstance(a, Tracer):
            if a._trace is trace:
                vals.append(a.value)
                own.append(a)
                outer = outer or isinstance(a.value, Tracer)
                continue
            outer = True
        vals.append(a)
        own.append(None)
    out = op(*vals, **params) if outer else op.impl(*vals, **params)
    return out, vals, own


nograd_recorder: Callable[[Op, Sequence[Any], dict[str, Any]], Any] | None = None  # set by adkit.jit


def bind(op: Op, args: Sequence[Any], params: dict[str, Any]) -> Any:
    """Apply `op`: the innermost active trace among `args` interprets it."""
    if nograd_recorder is not None and op.nograd:  # adkit.jit records: the result depends on the inputs
        return nograd_recorder(op, args, params)
    if op.nograd:
        if not op.complex_ok and any(is_complex(a) for a in args):
            raise _complex_refusal(op, args)
        return op.impl(*[primal(lift_object(a)) for a in args], **params)
    top: Trace | None = None
    for a in args:
        if isinstance(a, Tracer):
            t = a._trace
            if not t.active:
                raise LeakedTracerError(
                    f"{op.name} got a traced value from a grad/jvp call that has already "
                    "returned (a leaked tracer): do not keep traced values in globals or "
                    "closures that outlive the derivative call."
                )
            if top is None or t.level > top.level:
                top = t
        elif type(a) is np.ndarray and a.dtype is _OBJECT:  # np.array([x, y]) of traced values
            lifted = [lift_object(b) for b in args]
            if any(b is not a for a, b in zip(args, lifted)):
                return bind(op, lifted, params)
    if top is None:
        return op.impl(*args, **params)
    for a in args:
        t = type(a)
        if t is float or t is int or t is np.ndarray or isinstance(a, Tracer):
            continue
        check_constant(op, a)
    if not op.complex_ok and any(is_complex(a) for a in args):
        if op.complex_variant is None:
            raise _complex_refusal(op, args)
        return bind(REGISTRY[op.complex_variant], args, params)
    return top.process(op, args, params)


def is_complex(v: Any) -> bool:
    """v (a plain or traced value) is a complex number or a complex array (only its type is
    read, through `peek`)."""
    if isinstance(v, Tracer):
        v = peek(v)
    t = type(v)
    if t is float or t is int:
        return False
    if t is np.ndarray:
        return v.dtype.kind == "c"
    return isinstance(v, (complex, np.complexfloating))


def check_constant(op: Op, a: Any) -> None:
    """Refuse a constant that adkit's traced engines would differentiate wrongly: ndarray
    subclasses such as masked arrays (each engine would treat the mask differently) and
    np.matrix (its * is a matrix product)."""
    if isinstance(a, np.ndarray) and type(a) is not np.ndarray and not isinstance(a, np.memmap):
        raise AdkitTypeError(
            f"{op.name} got a constant of type {type(a).__module__}.{type(a).__name__} beside a traced value: "
            f"{NDARRAY_SUBCLASS_ADVICE}"
        )


NDARRAY_SUBCLASS_ADVICE = (
    "adkit's engines work on plain numpy arrays only (a mask, or np.matrix's matrix product for *, "
    "would be handled differently by each engine). Pass np.asarray(m) for an np.matrix, and for a masked "
    "array m.filled(value) or m.compressed(), or np.where(m.mask, 0.0, m.data) inside f."
)


def _complex_refusal(op: Op, args: Sequence[Any]) -> AdkitTypeError:
    value = next(primal(a) for a in args if is_complex(a))
    shown = f"{value:.6g}" if np.ndim(value) == 0 else f"an array of shape {np.shape(value)}"
    return AdkitTypeError(
        f"{op.name} got a complex argument ({shown}): adkit has no complex rule for {op.name} (it is not analytic, or "
        "its complex rule is not written yet), so its derivative would be wrong. Write that step with real "
        "arithmetic on np.real(z) and np.imag(z) (|z| = np.abs(z) is supported), or register a complex rule."
    )
