"""Symbolic: the function rebuilt as a sympy expression and differentiated by sympy.

The traced graph is rebuilt node by node from each op's *sympy counterpart* only —
never from adkit's derivative rules — so this engine is an independent oracle: when it
agrees with forward and reverse mode, the rules are right. Array values become numpy
object arrays of sympy expressions (one symbol per input element).

Two flavours: the whole composition as one expression tree (its derivative shows the
lectures' expression swell, measured by `sympy.count_ops`), and the same derivatives
with common sub-expressions factored out (`sympy.cse`). Inputs given exactly (ints,
fractions.Fraction) are evaluated exactly.
"""

from __future__ import annotations

import fractions
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from adkit.errors import AdkitError, AdkitTypeError, ExpressionTooDeepError, NonFiniteDerivativeError
from adkit.graph import Graph, trace
from adkit.ops.core import primal

MAX_SYMBOLS = 400
# Exact evaluation builds every integer power exactly: 7**123456789 has 3.5e8 bits and
# takes minutes and gigabytes. A power whose exact value would have more bits than this
# is evaluated at 30 significant digits instead (mpmath: its size is then only its exponent).
EXACT_EVALUATION_BITS = 100_000

# Up to which depth and size (as a tree, shared sub-expressions counted each time) f is
# rebuilt as one sympy expression. Sympy's constructors, diff and evalf recurse once per
# level, a few Python frames each (a 60-step Horner loop, 120 levels, exceeds the default
# recursion limit), and its cache compares expressions as trees (x <- x + sin(x) / 1000
# doubles the tree at every step: 20 steps take minutes). Larger expressions are
# differentiated node by node. (Sympy folds many graphs into small expressions: a
# product-node graph of any depth is c * w**n.)
EXPRESSION_DEPTH_LIMIT = 64
EXPRESSION_SIZE_LIMIT = 100_000


def _sympy():
    import sympy

    return sympy


def to_sympy_constant(c: Any) -> Any:
    """A numeric constant as sympy: ints exact, floats as the decimal they print as."""
    sp = _sympy()
    c = primal(c)
    if isinstance(c, np.ndarray):
        out = np.empty(c.shape, dtype=object)
        for idx in np.ndindex(c.shape):
            out[idx] = to_sympy_constant(c[idx])
        return out
    if isinstance(c, (bool, np.bool_)):
        return bool(c)
    if isinstance(c, (int, np.integer)):
        return sp.Integer(int(c))
    if isinstance(c, fractions.Fraction):
        return sp.Rational(c.numerator, c.denominator)
    if isinstance(c, (float, np.floating)):
        c = float(c)
        if c != c or c in (float("inf"), float("-inf")):
            return sp.nan if c != c else (sp.oo if c > 0 else -sp.oo)
        return sp.Integer(int(c)) if c.is_integer() and abs(c) < 2**53 else sp.Rational(repr(c))
    return c


def _as_number(sp: Any, a: Any) -> Any:
    """True / False as 1 / 0 (sympy's arithmetic refuses booleans; numpy's treats them so)."""
    if isinstance(a, (bool, np.bool_)):
        return sp.Integer(int(a))
    if isinstance(a, np.ndarray) and a.dtype == object and any(isinstance(v, (bool, np.bool_)) for v in a.flat):
        return np.vectorize(lambda v: _as_number(sp, v), otypes=[object])(a)
    return a


def _apply(op, args: Sequence[Any], params: dict[str, Any]) -> Any:
    if op.sympy is None:
        raise AdkitError(
            f"the symbolic engine cannot differentiate {op.name}: {op.sympy_refusal or 'it has no sympy form'}"
        )
    sp = _sympy()
    # a boolean constant (a mask) as a number, except where it is a condition (np.where's c)
    args = [a if name == "c" else _as_number(sp, a) for a, name in zip(args, (*op.args, *[""] * len(args)))]
    if op.partials is not None:  # elementwise: the sympy form per element
        if any(isinstance(a, np.ndarray) and a.ndim > 0 for a in args):
            arrays = np.broadcast_arrays(*[np.asarray(a, dtype=object) for a in args])
            out = np.empty(arrays[0].shape, dtype=object)
            for idx in np.ndindex(out.shape):
                out[idx] = op.sympy(sp, *[a[idx] for a in arrays], **params)
            return out
        scalars = [a[()] if isinstance(a, np.ndarray) else a for a in args]
        return op.sympy(sp, *scalars, **params)
    return op.sympy(sp, *args, **params)


@dataclass
class SymbolicDerivative:
    """f as a sympy expression, its derivatives and their values at the point."""

    graph: Graph
    symbols: list[Any]  # one sympy Symbol or object array per input node
    expression: Any  # f's output
    derivatives: list[Any]  # per input node: expression (or object array of expressions)
    point: dict[Any, Any]
    exact: bool
    values: list[Any] = field(default_factory=list)
    inexact_reason: str = ""  # why exact inputs were evaluated at 30 digits (the exact-evaluation budget)
    depth: int = 0  # ops on the longest input-to-output path; set when too deep for one expression

    @property
    def count_ops(self) -> int:
        """Operations in the derivative expressions as trees (expression swell)."""
        sp = _sympy()
        return int(sum(sp.count_ops(d) for d in _flat(self._derivatives())))

    def cse(self) -> tuple[list[tuple[Any, Any]], list[Any]]:
        """Common sub-expressions factored out of all derivatives at once (sympy.cse)."""
        return _sympy().cse(_flat(self._derivatives()))

    def _derivatives(self) -> list[Any]:
        if self.derivatives is None:
            raise ExpressionTooDeepError(self._too_deep_message())
        return self.derivatives

    def _too_deep_message(self) -> str:
        return (
            f"f's graph is {self.depth} ops deep and its sympy expression would be more than "
            f"{EXPRESSION_DEPTH_LIMIT} levels deep or {EXPRESSION_SIZE_LIMIT:,} nodes as a tree (sympy "
            "recurses once per level, past Python's recursion limit, and walks trees: it would take hours). "
            "Its derivatives were computed node by node (one sympy symbol per node, the chain rule over the "
            "graph), so their values are here, but not as one expression: count_ops, cse and latex need a "
            "shallower function (fewer steps in a loop)"
        )

    @property
    def count_ops_cse(self) -> int:
        sp = _sympy()
        repl, reduced = self.cse()
        return int(sum(sp.count_ops(e) for _, e in repl) + sum(sp.count_ops(e) for e in reduced))

    def latex(self) -> list[str]:
        sp = _sympy()
        return [sp.latex(d) for d in _flat(self._derivatives())]

    def __str__(self) -> str:
        if self.derivatives is None:
            return self._too_deep_message()
        lines = [f"f = {self.expression}"]
        for sym, d in zip(self.symbols, self.derivatives):
            lines.append(f"d f / d {sym} = {d}")
        return "\n".join(lines)


def _flat(xs: Sequence[Any]) -> list[Any]:
    out = []
    for x in xs:
        if isinstance(x, np.ndarray):
            out.extend(x.reshape(-1).tolist())
        else:
            out.append(x)
    return out


def symbolic_derivative(
    f: Callable[..., Any], *args: Any, argnums: int | Sequence[int] | None = None
) -> SymbolicDerivative:
    """Trace f, rebuild it in sympy from the ops' sympy forms, differentiate each input.

    With `argnums`, only those arguments become symbols; the others reach f unchanged,
    as constants (a loop count, an index), as in grad(f, argnums).
    """
    from adkit.trees import argnums_tuple

    sp = _sympy()
    nums = tuple(range(len(args))) if argnums is None else argnums_tuple(argnums, len(args))
    traced_args = [args[n] for n in nums]
    leaves = _leaves(traced_args)
    n_symbols = sum(int(np.size(leaf)) for leaf in leaves)
    if n_symbols > MAX_SYMBOLS:
        raise AdkitError(
            f"the symbolic engine makes one sympy symbol per input entry, and these arguments have "
            f"{n_symbols:,} (its limit is {MAX_SYMBOLS}: sympy's time grows quickly with expression size). "
            "Use engine='reverse' or 'forward' for inputs this large, or pass a smaller slice."
        )
    exact = all(_is_exact(leaf) for leaf in leaves)
    call_args = list(args)
    for n in nums:
        call_args[n] = _as_float_tree(args[n])
    graph = trace(f, *call_args, argnums=nums)
    digits = _digits(leaves)
    values: list[Any] = [None] * len(graph.nodes)
    symbols, point = [], {}
    exact_leaves = iter(leaves)
    for i in graph.inputs:
        node = graph.nodes[i]
        raw = next(exact_leaves)
        if np.ndim(node.value) == 0:
            s = sp.Symbol(node.label, real=True)
            point[s] = to_sympy_constant(raw) if exact else sp.Float(float(node.value), digits)
        else:
            arr = np.asarray(node.value)
            s = np.empty(arr.shape, dtype=object)
            raw_arr = np.asarray(raw, dtype=object) if exact else arr
            for idx in np.ndindex(arr.shape):
                name = f"{node.label}_{'_'.join(str(int(k)) for k in idx)}"
                s[idx] = sp.Symbol(name, real=True)
                point[s[idx]] = to_sympy_constant(raw_arr[idx]) if exact else sp.Float(float(arr[idx]), digits)
        values[i] = s
        symbols.append(s)
    try:
        return _whole_expression(f, args, graph, values, symbols, point, exact)
    except (_TooDeep, RecursionError):  # RecursionError: sympy recursed too deep even so
        return _node_by_node(graph, symbols, point, exact, graph_depth(graph))


class _TooDeep(Exception):
    """An expression being built is deeper or larger than the limits above."""


def _whole_expression(
    f: Callable[..., Any],
    args: Sequence[Any],
    graph: Graph,
    values: list[Any],
    symbols: list[Any],
    point: dict[Any, Any],
    exact: bool,
) -> SymbolicDerivative:
    """f as one sympy expression of the input symbols, differentiated by sympy.diff."""
    sp = _sympy()
    walked: dict[int, Any] = {}
    for node in graph.nodes:
        if node.op is None:
            continue
        args_sym = [values[p] if p is not None else to_sympy_constant(c) for p, c in zip(node.parents, node.consts)]
        values[node.id] = _apply(node.op, args_sym, node.params)
        if _too_deep(values[node.id], walked):
            raise _TooDeep
    if graph.output is None:
        expr = to_sympy_constant(f(*args))
    else:
        expr = values[graph.output]
    if isinstance(expr, np.ndarray):
        if expr.size != 1:
            raise AdkitTypeError("the symbolic engine differentiates scalar outputs; use adkit.jacobian for arrays")
        expr = expr.reshape(-1)[0]
    derivs = []
    for s in symbols:
        if isinstance(s, np.ndarray):
            d = np.empty(s.shape, dtype=object)
            for idx in np.ndindex(s.shape):
                d[idx] = sp.diff(expr, s[idx])
            derivs.append(d)
        else:
            derivs.append(sp.diff(expr, s))
    result = SymbolicDerivative(graph, symbols, expr, derivs, point, exact)
    if exact:
        huge = _exact_power_too_large(_flat(derivs), point)
        if huge:
            result.exact = exact = False
            result.inexact_reason = (
                f"evaluated at 30 digits: exactly, {huge} would exceed the exact-evaluation budget "
                f"of {EXACT_EVALUATION_BITS:,} bits"
            )
            point = {s: sp.Float(v, 30) for s, v in point.items()}
    result.values = [_evaluate(d, point, exact, _digits(list(point.values()))) for d in derivs]
    return result


def _exact_power_too_large(expressions: Sequence[Any], point: dict[Any, Any]) -> str:
    """The first power b**e whose exact value at the point would have more than
    EXACT_EVALUATION_BITS bits (|e| log2|b|, estimated at 15 digits), as text; else ''."""
    import mpmath

    sp = _sympy()
    for expr in expressions:
        for power in sp.sympify(expr).atoms(sp.Pow):
            try:
                base = mpmath.mpf(abs(sp.N(power.base, 15, subs=point)))
                exponent = mpmath.mpf(abs(sp.N(power.exp, 15, subs=point)))
                bits = exponent * abs(mpmath.log(base, 2)) if base > 0 else mpmath.mpf(0)
            except (TypeError, ValueError, ArithmeticError):  # complex or undefined: not our concern here
                continue
            if bits > EXACT_EVALUATION_BITS:  # named by the estimates: the exact values are what we avoid
                return f"{_number_text(base)}**{_number_text(exponent)} (~{mpmath.nstr(bits, 2)} bits)"
    return ""


def _number_text(m: Any) -> str:
    import mpmath

    return str(int(m)) if m == int(m) and abs(m) < 10**15 else mpmath.nstr(m, 6)


def _too_deep(value: Any, known: dict[int, Any]) -> bool:
    """Whether a sympy expression (or any entry of an object array) is deeper than
    EXPRESSION_DEPTH_LIMIT levels or larger than EXPRESSION_SIZE_LIMIT as a tree. Walked
    iteratively; `known` maps id(subexpression) -> (depth, tree size, subexpression) and is
    shared between the calls for one graph, so each sub-expression is walked once."""
    for expr in np.asarray(value, dtype=object).reshape(-1):
        stack = [expr]
        while stack:
            e = stack[-1]
            if id(e) in known:
                stack.pop()
                continue
            args = getattr(e, "args", ())
            pending = [a for a in args if id(a) not in known]
            if pending:
                stack.extend(pending)
                continue
            depth = 1 + max((known[id(a)][0] for a in args), default=0)
            size = 1 + sum(known[id(a)][1] for a in args)
            known[id(e)] = (depth, size, e)  # e kept alive, so that ids stay unique
            stack.pop()
        depth, size, _ = known[id(expr)]
        if depth > EXPRESSION_DEPTH_LIMIT or size > EXPRESSION_SIZE_LIMIT:
            return True
    return False


def graph_depth(graph: Graph) -> int:
    """The number of ops on the longest path from an input to the output (iteratively:
    the nodes are in evaluation order)."""
    depth = [0] * len(graph.nodes)
    for node in graph.nodes:
        if node.op is not None:
            depth[node.id] = 1 + max((depth[p] for p in node.parents if p is not None), default=0)
    return depth[graph.output] if graph.output is not None else 0


def _node_by_node(
    graph: Graph, symbols: list[Any], point: dict[Any, Any], exact: bool, depth: int
) -> SymbolicDerivative:
    """The chain rule over the graph with one sympy symbol per node entry (symbolic
    reverse accumulation): each node's sympy form is written in its parents' symbols, so
    no expression is deeper than one op and sympy never recurses on the graph's depth.

    Forward, in evaluation order: each entry's value (exact where rational, else 30
    digits) and its local derivatives d entry / d parent entry, by sympy.diff of the op's
    sympy form (never adkit's rules). Backward, in reverse order:
    adjoint(parent) += adjoint(entry) * d entry / d parent."""
    sp = _sympy()
    node_symbols: list[Any] = [None] * len(graph.nodes)
    at = dict(point)  # symbol -> value
    edges: dict[Any, list[tuple[Any, Any]]] = {}  # entry symbol -> [(parent symbol, local derivative)]
    forms: dict[Any, tuple[Any, list[Any], list[Any]]] = {}  # elementwise op call -> its sympy form and partials
    for i, s in zip(graph.inputs, symbols):
        node_symbols[i] = s
    for node in graph.nodes:
        if node.op is None:
            continue
        parents = [
            node_symbols[p] if p is not None else to_sympy_constant(c) for p, c in zip(node.parents, node.consts)
        ]
        expr = _apply(node.op, parents, node.params)
        shape = np.shape(expr) if isinstance(expr, np.ndarray) else ()
        syms = np.empty(shape, dtype=object)
        if node.op.partials is not None:  # elementwise: one sympy form (and its partials) per kind of call
            broadcast = np.broadcast_arrays(*[np.asarray(a, dtype=object) for a in parents])
            for idx in np.ndindex(shape):
                entry = [b[idx] for b in broadcast]
                is_symbol = [isinstance(e, sp.Symbol) and e in at for e in entry]
                key = (node.op.name, repr(node.params), tuple("?" if v else e for v, e in zip(is_symbol, entry)))
                if key not in forms:
                    generic = [sp.Dummy(real=True) if v else e for v, e in zip(is_symbol, entry)]
                    form = sp.sympify(_apply(node.op, generic, node.params))
                    forms[key] = (form, generic, [sp.diff(form, g) if v else None for v, g in zip(is_symbol, generic)])
                form, generic, partials = forms[key]
                sub = {g: at[e] for g, e, v in zip(generic, entry, is_symbol) if v}
                s = syms[idx] = sp.Dummy(f"n{node.id}", real=True)
                at[s] = _evaluate(form, sub, exact)
                edges[s] = [(e, _evaluate(d, sub, exact)) for e, d in zip(entry, partials) if d is not None]
        else:  # structural: each entry's expression in the parents' entries
            exprs = np.asarray(expr, dtype=object)
            for idx in np.ndindex(shape):
                e = sp.sympify(exprs[idx])
                s = syms[idx] = sp.Dummy(f"n{node.id}", real=True)
                at[s] = _evaluate(e, at, exact)
                edges[s] = [(q, _evaluate(sp.diff(e, q), at, exact)) for q in e.free_symbols]
        node_symbols[node.id] = syms[()] if shape == () else syms
    adjoint: dict[Any, Any] = {}
    if graph.output is not None:
        out = np.asarray(node_symbols[graph.output], dtype=object)
        if out.size != 1:
            raise AdkitTypeError("the symbolic engine differentiates scalar outputs; use adkit.jacobian for arrays")
        adjoint[out.reshape(-1)[0]] = sp.Integer(1)
    for node in reversed(graph.nodes):
        if node.op is None:
            continue
        for s in np.asarray(node_symbols[node.id], dtype=object).reshape(-1):
            a = adjoint.get(s)
            if a is not None:
                for q, d in edges[s]:
                    adjoint[q] = adjoint.get(q, sp.Integer(0)) + a * d
    values = []
    for s in symbols:
        if isinstance(s, np.ndarray):
            v = np.empty(s.shape, dtype=object)
            for idx in np.ndindex(s.shape):
                v[idx] = adjoint.get(s[idx], sp.Integer(0))
            values.append(v)
        else:
            values.append(adjoint.get(s, sp.Integer(0)))
    result = SymbolicDerivative(graph, symbols, None, None, point, exact, depth=depth)
    result.values = values
    return result


def _evaluate(d: Any, point: dict[Any, Any], exact: bool, digits: int = 30) -> Any:
    if isinstance(d, np.ndarray):
        out = np.empty(d.shape, dtype=object)
        for idx in np.ndindex(d.shape):
            out[idx] = _evaluate(d[idx], point, exact, digits)
        return out
    try:
        v = d.xreplace(point)
        v = v.doit() if hasattr(v, "doit") else v
    except TypeError as exc:  # a branch condition met a non-real value (log1p(-1) is zoo in sympy)
        raise NonFiniteDerivativeError(
            f"the symbolic derivative cannot be evaluated here: a branch condition in it compares a value "
            f"that is not a real number ({exc}); the function is not differentiable at this point"
        ) from exc
    return v if exact and getattr(v, "is_Rational", False) else v.evalf(digits)


def _digits(values: Sequence[Any]) -> int:
    """Significant digits for evaluating at float inputs: 30, plus as many as the smallest
    nonzero input is small (log1p(1e-300) > 0 decides relu's branch: 30 digits would see
    log(1 + 1e-300) as 0), at most 360."""
    flat = [abs(float(v)) for leaf in values for v in np.asarray(leaf, dtype=object).reshape(-1)]
    smallest = min((v for v in flat if v), default=1.0)
    return 30 + min(330, max(0, int(-math.log10(smallest)))) if smallest < 1 else 30


def _leaves(args: Sequence[Any]) -> list[Any]:
    from adkit.trees import tree_flatten

    return [leaf for a in args for leaf in tree_flatten(a)[0]]


def _is_exact(x: Any) -> bool:
    if isinstance(x, (bool, np.bool_)):
        return False
    if isinstance(x, (int, np.integer, fractions.Fraction)):
        return True
    if isinstance(x, np.ndarray):
        return x.dtype.kind in "iu" or (x.dtype == object and all(_is_exact(v) for v in x.reshape(-1)))
    return False


def _as_float_tree(a: Any) -> Any:
    from adkit.trees import tree_flatten, tree_unflatten

    leaves, treedef = tree_flatten(a)
    return tree_unflatten(treedef, [_to_float(leaf) for leaf in leaves])


def _to_float(x: Any) -> Any:
    if isinstance(x, fractions.Fraction):
        return float(x)
    if isinstance(x, np.ndarray) and x.dtype == object:
        return x.astype(float)
    return x


def _to_number(v: Any) -> float:
    from adkit.errors import NonFiniteDerivativeError

    try:
        x = float(v)
    except TypeError as exc:
        raise NonFiniteDerivativeError(f"the symbolic derivative does not evaluate to a real number here: {v}") from exc
    if x != x or x in (float("inf"), float("-inf")):
        raise NonFiniteDerivativeError(f"the symbolic derivative is not finite here: {v!s}")
    return x


def symbolic_value_and_grad(f: Callable[..., Any], args: Sequence[Any], argnums: tuple[int, ...], single: bool):
    """The engine entry point used by adkit.grad(f, engine="symbolic"): the arguments
    not in argnums are constants."""
    from adkit.trees import tree_flatten, tree_unflatten

    value = trace(f, *[_as_float_tree(a) if n in argnums else a for n, a in enumerate(args)], argnums=argnums).value
    if value is not None and np.any(np.isnan(value)):
        # as every engine: no derivative where f's value is NaN in float64 (sympy would carry on
        # into complex numbers: log of a negative number). An overflow (inf) is no obstacle to
        # exact arithmetic: log(exp(1000)) has derivative 1, and sympy proves it
        raise NonFiniteDerivativeError(
            "f's value at this point is nan in float64, so it has no derivative there (a function is "
            "outside its domain, or inf - inf after an overflow)"
        )
    try:
        res = symbolic_derivative(f, *args, argnums=argnums)
        if value is not None and not np.all(np.isfinite(value)) and not _finite_exactly(res):
            raise NonFiniteDerivativeError(
                "f's value at this point is not finite, in float64 nor exactly: it has no derivative there"
            )
        _check_between_sides(res)
    except OverflowError as exc:  # sympy / mpmath on numbers like exp(1e154)
        raise NonFiniteDerivativeError(
            f"the symbolic engine cannot evaluate f at this point ({exc}: a number beyond what sympy "
            "represents), so it returns no derivative"
        ) from None
    values = iter(res.values)
    result = []
    for n in argnums:
        leaves, treedef = tree_flatten(args[n])
        out = []
        for _leaf in leaves:
            v = next(values)
            if isinstance(v, np.ndarray):
                out.append(np.vectorize(_to_number, otypes=[float])(v))
            else:
                out.append(_to_number(v))
        result.append(tree_unflatten(treedef, out))
    value = res.graph.value
    value = float(value) if value is not None and np.ndim(value) == 0 else value
    return value, (result[0] if single else tuple(result))


def _finite_exactly(res: SymbolicDerivative) -> bool:
    """Whether f's exact value at the point is a finite real number (float64 overflowed, but
    exact arithmetic may still know f and its derivative: log(exp(1000)) = 1000)."""
    sp = _sympy()
    if res.expression is None:
        return False
    for e in np.asarray(res.expression, dtype=object).reshape(-1):
        v = sp.N(sp.sympify(e).xreplace(res.point), 30)
        if not (v.is_real and v.is_finite):
            return False
    return True


KINK_CHECK_SYMBOLS = 20  # beyond this many inputs the check below would cost more than the derivative


def _check_between_sides(res: SymbolicDerivative) -> None:
    """Right or refused at kinks: where f's expression has kinked pieces (Piecewise, Abs,
    Max, sign), each derivative's value at the point must lie between its values just left
    and just right of the point, input by input (the kink policy's values do: relu'(0) = 0
    is between 0 and 1). relu(sqrt(x)) at 0 gives 0 by sympy's Piecewise, but the derivative
    just right of 0 is huge: refused, as by the other engines."""
    sp = _sympy()
    derivs = res.derivatives
    if derivs is None or len(res.point) > KINK_CHECK_SYMBOLS:
        return
    flat = _flat(derivs)
    if not any(d.has(sp.Piecewise, sp.Abs, sp.Max, sp.Min, sp.sign, sp.Heaviside) for d in flat):
        return
    values = [complex(sp.N(v, 30)) for v in _flat(res.values)]
    for s, x in res.point.items():
        delta = sp.Float(10, 30) ** -20 * max(1, abs(sp.Float(x, 30)))
        sides = []
        for shifted in (x - delta, x + delta):
            point = dict(res.point)
            point[s] = shifted
            try:
                sides.append([complex(sp.N(_evaluate(d, point, False), 30)) for d in flat])
            except (TypeError, ValueError, ArithmeticError):
                sides.append([None] * len(flat))
        for k, v in enumerate(values):
            near = [
                side[k].real
                for side in sides
                if side[k] is not None and side[k].imag == 0 and np.isfinite(side[k].real)
            ]
            if not near:
                continue
            margin = 1e-12 * (abs(v.real) + max(abs(n) for n in near) + 1.0)
            if not min(near) - margin <= v.real <= max(near) + margin:
                raise NonFiniteDerivativeError(
                    f"the symbolic derivative at this point ({v.real:.6g}) is not between its values just beside "
                    f"it ({', '.join(f'{n:.6g}' for n in near)}): f is not differentiable here (a kink meets an "
                    "infinite slope), so no derivative is returned"
                )


def _register() -> None:
    from adkit.engines import GRAD_ENGINES as DIFFERENTIATING_ENGINES

    DIFFERENTIATING_ENGINES["symbolic"] = symbolic_value_and_grad


_register()

__all__ = ["SymbolicDerivative", "symbolic_derivative", "to_sympy_constant"]
