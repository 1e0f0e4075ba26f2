"""In-place array kernels generated from the registry's partial expressions.

A rule such as arcsin's `1.0 / sqrt(1.0 - x * x)`, evaluated on numpy arrays op by op,
allocates an array per step (x * x, 1 - that, sqrt, 1 / that: four arrays the size of
x). The kernel generated here evaluates the same expression writing every step after
the first into the array that step allocated:

    t0 = multiply(x, x); subtract(1.0, t0, out=t0); sqrt(t0, out=t0); divide(1.0, t0, out=t0)

so one array is allocated, and it is returned fresh, owned by the caller (the reverse
engine then multiplies the cotangent into it). Same ufuncs in the same order: results
are bitwise those of the op-by-op evaluation.

A kernel is compiled for one combination of which names are arrays and which are
numbers, and applies when every array is a plain float ndarray of one shape and dtype
(then every intermediate has that shape and dtype too); `adkit.ops.core.local_partials`
checks that first and falls back to the op-by-op rule otherwise. An
expression with anything but arithmetic, numbers, names and calls of registry ops whose
implementation is a numpy ufunc (`where` and comparisons, for instance) gets no kernel.
"""

from __future__ import annotations

import ast
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

_BINARY = {ast.Add: "add", ast.Sub: "subtract", ast.Mult: "multiply", ast.Div: "true_divide", ast.Pow: "power"}
_SYMBOL = {ast.Add: "+", ast.Sub: "-", ast.Mult: "*", ast.Div: "/", ast.Pow: "**"}
_COMPARE = {
    ast.Eq: "equal",
    ast.NotEq: "not_equal",
    ast.Lt: "less",
    ast.LtE: "less_equal",
    ast.Gt: "greater",
    ast.GtE: "greater_equal",
}
_COMPARE_SYMBOL = {ast.Eq: "==", ast.NotEq: "!=", ast.Lt: "<", ast.LtE: "<=", ast.Gt: ">", ast.GtE: ">="}


class _Unsupported(Exception):
    pass


class _Writer:
    """Turns one expression into statements; each value is (code, kind), with kind
    "temp" (a float array this kernel allocated), "array" (an input), "mask" (a boolean
    array: a comparison's result, never written into) or "scalar"."""

    def __init__(self, arrays: set[str], scalars: set[str], ufuncs: dict[str, np.ufunc]):
        self.arrays, self.scalars, self.ufuncs = arrays, scalars, ufuncs
        self.lines: list[str] = []
        self.names: dict[str, Any] = {}
        self.count = 0

    def value(self, node: ast.AST) -> tuple[str, str]:
        if isinstance(node, ast.Constant) and type(node.value) in (int, float):
            return repr(node.value), "scalar"
        if isinstance(node, ast.Name):
            if node.id in self.arrays:
                return node.id, "array"
            if node.id in self.scalars:
                return node.id, "scalar"
            raise _Unsupported(node.id)
        if isinstance(node, ast.BinOp) and type(node.op) in _BINARY:
            left, right = self.value(node.left), self.value(node.right)
            if left[1] == right[1] == "scalar":  # Python arithmetic, as the op-by-op rule does it
                return f"({left[0]} {_SYMBOL[type(node.op)]} {right[0]})", "scalar"
            return self.apply(getattr(np, _BINARY[type(node.op)]), [left, right])
        if isinstance(node, ast.UnaryOp) and isinstance(node.op, (ast.USub, ast.UAdd)):
            code, kind = self.value(node.operand)
            if isinstance(node.op, ast.UAdd):
                return code, kind
            return (f"(-{code})", "scalar") if kind == "scalar" else self.apply(np.negative, [(code, kind)])
        if isinstance(node, ast.Compare) and len(node.ops) == 1 and type(node.ops[0]) in _COMPARE:
            left, right = self.value(node.left), self.value(node.comparators[0])
            if left[1] == right[1] == "scalar":
                return f"({left[0]} {_COMPARE_SYMBOL[type(node.ops[0])]} {right[0]})", "scalar"
            return self.apply(getattr(np, _COMPARE[type(node.ops[0])]), [left, right], "mask")
        if (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Name)
            and node.func.id == "where"
            and len(node.args) == 3
        ):
            cond, a, b = (self.value(arg) for arg in node.args)
            if a[1] == b[1] == "scalar" and cond[1] == "scalar":
                raise _Unsupported("where on numbers only")
            return self.apply(np.where, [cond, a, b], "new")
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and not node.keywords:
            ufunc = self.ufuncs.get(node.func.id)
            if ufunc is not None and ufunc.nin == len(node.args) and ufunc.nout == 1:
                values = [self.value(a) for a in node.args]
                if all(kind == "scalar" for _, kind in values):
                    raise _Unsupported("a registry op on numbers only")
                return self.apply(ufunc, values)
        raise _Unsupported(ast.dump(node))

    def apply(self, ufunc: Any, values: Sequence[tuple[str, str]], result: str = "temp") -> tuple[str, str]:
        """A call of `ufunc`, written into the first temporary among its arguments when its
        result is a float array like them (`result` "temp"); a new array otherwise ("mask":
        a boolean result; "new": np.where, which has no out=)."""
        fn = f"_{ufunc.__name__}"
        self.names[fn] = ufunc
        args = ", ".join(code for code, _ in values)
        temps = [code for code, kind in values if kind == "temp"]
        if result != "temp":
            name = f"t{self.count}"
            self.count += 1
            self.lines.append(f"{name} = {fn}({args})")
            return name, "mask" if result == "mask" else "temp"
        if temps:
            self.lines.append(f"{fn}({args}, out={temps[0]})")
            return temps[0], "temp"
        name = f"t{self.count}"
        self.count += 1
        self.lines.append(f"{name} = {fn}({args})")
        return name, "temp"


def compile_kernel(
    expr: str,
    names: Sequence[str],
    arrays: Sequence[str],
    defaults: dict[str, Any],
    ufuncs: dict[str, np.ufunc],
) -> Callable[..., Any] | None:
    """A function of `names` (then the keyword parameters in `defaults`) evaluating `expr`
    with in-place ufuncs (see the module docstring), for calls where the names in `arrays`
    are float ndarrays of one shape and dtype and the other names and parameters are
    Python numbers. None when the expression has a construct kernels do not cover."""
    numbers = [n for n in names if n not in arrays] + list(defaults)
    writer = _Writer(set(arrays), set(numbers), ufuncs)
    try:
        code, _ = writer.value(ast.parse(expr, mode="eval").body)
    except (_Unsupported, SyntaxError):
        return None
    signature = ", ".join([*names, *(f"{p}=_default_{p}" for p in defaults)])
    body = "".join(f"    {line}\n" for line in writer.lines)
    source = f"def kernel({signature}):\n{body}    return {code}\n"
    namespace = {**writer.names, **{f"_default_{p}": v for p, v in defaults.items()}}
    exec(compile(source, f"<kernel {expr}>", "exec"), namespace)  # noqa: S102 (registry rules, never user input)
    kernel = namespace["kernel"]
    kernel.source = source
    return kernel
