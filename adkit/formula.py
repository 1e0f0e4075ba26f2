"""Formulas from the command line, parsed by a whitelist — never eval'd.

`parse("sin(x * y) + x")` returns a `Formula`: a callable of its variables (in order of
first appearance) that evaluates with adkit's registry ops, so every engine
differentiates it (`adkit.grad(parse("x**2 + y"), argnums=(0, 1))(1.0, 2.0)`).

The text is handed to `ast.parse(text, mode="eval")` only to get a syntax tree; the tree
is then checked node by node against an explicit whitelist and turned into a small tree
of our own, which is what `Formula.__call__` walks. Nothing of the user's string is ever
compiled, eval'd, exec'd or sympified. Allowed:

- numbers (int and float literals; all become Python floats, so `9**9**9` is a float
  power that overflows to inf at once instead of a Python-int computation that hangs);
- variable names (ASCII letters, digits and `_`, not starting with `_`, not a function
  name);
- `+ - * / **` and unary `-` / `+`;
- calls by plain name of the registry's scalar elementwise ops (sin, exp, log, tanh,
  sigmoid, relu, maximum, product, ...) with the right number of positional arguments,
  and keyword arguments only for the op's declared numeric parameters, given as numbers
  (`leaky_relu(x, alpha=0.2)`, `clip(x, lo=-1, hi=1)`).

Anything else (attributes, subscripts, strings, lambdas, comprehensions, comparisons,
boolean operators, conditional expressions, calls of other names, ...) is a
`FormulaError` that names the offending part and shows where it is. Limits: at most
`MAX_LENGTH` characters and `MAX_DEPTH` levels of nesting.
"""

from __future__ import annotations

import ast
import difflib
import inspect
import math
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from adkit.ops.core import REGISTRY, Op

MAX_LENGTH = 2000
MAX_DEPTH = 100

_NAME_RE = re.compile(r"[A-Za-z][A-Za-z0-9_]*\Z")

_BINOPS = {ast.Add: "add", ast.Sub: "sub", ast.Mult: "mul", ast.Div: "div", ast.Pow: "pow"}
_BINOP_SYMBOLS = {
    ast.Mod: "%",
    ast.FloorDiv: "//",
    ast.MatMult: "@",
    ast.LShift: "<<",
    ast.RShift: ">>",
    ast.BitOr: "|",
    ast.BitAnd: "&",
    ast.BitXor: "^",
}
_DESCRIPTIONS = {
    ast.Attribute: "attribute access",
    ast.Subscript: "subscript",
    ast.Lambda: "lambda",
    ast.ListComp: "list comprehension",
    ast.SetComp: "set comprehension",
    ast.DictComp: "dict comprehension",
    ast.GeneratorExp: "generator expression",
    ast.List: "list",
    ast.Tuple: "tuple",
    ast.Set: "set",
    ast.Dict: "dict",
    ast.Compare: "comparison",
    ast.BoolOp: "boolean operator",
    ast.IfExp: "conditional expression (if/else)",
    ast.NamedExpr: "assignment expression (:=)",
    ast.JoinedStr: "f-string",
    ast.FormattedValue: "f-string",
    ast.Starred: "starred argument",
    ast.Await: "await",
    ast.Yield: "yield",
    ast.YieldFrom: "yield from",
    ast.Slice: "slice",
}


class FormulaError(ValueError):
    """A formula that is not allowed, with where it goes wrong.

    `reason` is the short message, `column` the 1-based column of the offending part
    (None when it is the whole formula), `text` the formula.
    """

    def __init__(self, reason: str, text: str = "", column: int | None = None, width: int = 1) -> None:
        self.reason = reason
        self.text = text
        self.column = column
        message = reason
        if column is not None:
            message += f" (column {column})"
            shown = "".join(" " if ch == "\t" else "?" if ord(ch) < 32 or ord(ch) == 127 else ch for ch in text)
            caret = column - 1
            if len(shown) > 100:  # a window around the offending part
                lo = max(0, caret - 50)
                hi = min(len(shown), caret + 50)
                shown = ("…" if lo else "") + shown[lo:hi] + ("…" if hi < len(shown) else "")
                caret = caret - lo + (1 if lo else 0)
            width = max(1, min(width, len(shown) - caret))
            message += f"\n  {shown}\n  {' ' * caret}{'^' * width}"
        super().__init__(message)


def functions() -> dict[str, Op]:
    """The registry ops a formula may call: scalar elementwise ops with derivative rules."""
    return {name: op for name, op in REGISTRY.items() if op.partials is not None and not op.nograd}


# --- the checked tree -------------------------------------------------------------------------


@dataclass(frozen=True)
class _Num:
    value: float


@dataclass(frozen=True)
class _Var:
    index: int


@dataclass(frozen=True)
class _Apply:
    op: Op
    args: tuple[Any, ...]
    params: tuple[tuple[str, float], ...] = ()


def _evaluate(node: Any, values: Sequence[Any]) -> Any:
    if type(node) is _Num:
        return node.value
    if type(node) is _Var:
        return values[node.index]
    args = [_evaluate(a, values) for a in node.args]
    return node.op(*args, **dict(node.params))


# --- the checker ------------------------------------------------------------------------------


class _Checker:
    def __init__(self, text: str) -> None:
        self.text = text
        self.variables: list[str] = []
        self.calls: set[str] = set()
        self.allowed = functions()
        self.plain_names: set[str] = set()  # names used as values somewhere (not as callees)
        self._line_bytes = text.encode("utf-8")

    # positions: ast columns are UTF-8 byte offsets; report character columns (1-based)
    def _col(self, byte_offset: int | None) -> int | None:
        if byte_offset is None:
            return None
        return len(self._line_bytes[:byte_offset].decode("utf-8", errors="replace")) + 1

    def fail(self, reason: str, node: ast.AST | None = None, start: int | None = None, end: int | None = None) -> None:
        if node is not None and start is None:
            start = getattr(node, "col_offset", None)
            end = getattr(node, "end_col_offset", None)
            if getattr(node, "end_lineno", 1) != getattr(node, "lineno", 1):
                end = None
        col = self._col(start)
        width = 1
        if col is not None and end is not None:
            end_col = self._col(end)
            assert end_col is not None
            width = max(1, end_col - col)
        raise FormulaError(reason, self.text, col, width)

    def segment(self, node: ast.AST, limit: int = 40) -> str:
        seg = ast.get_source_segment(self.text, node) or type(node).__name__
        return seg if len(seg) <= limit else seg[: limit - 1] + "…"

    def check(self, node: ast.AST, depth: int) -> Any:
        if depth > MAX_DEPTH:
            self.fail(
                f"the formula is nested more than {MAX_DEPTH} levels deep", start=getattr(node, "col_offset", None)
            )
        if isinstance(node, ast.Constant):
            return _Num(self.number(node))
        if isinstance(node, ast.Name):
            return self.name(node)
        if isinstance(node, ast.BinOp):
            op_name = _BINOPS.get(type(node.op))
            if op_name is None:
                symbol = _BINOP_SYMBOLS.get(type(node.op), type(node.op).__name__)
                self.fail_operator(node, symbol)
            left = self.check(node.left, depth + 1)
            right = self.check(node.right, depth + 1)
            return _Apply(REGISTRY[op_name], (left, right))
        if isinstance(node, ast.UnaryOp):
            if isinstance(node.op, ast.USub):
                return _Apply(REGISTRY["neg"], (self.check(node.operand, depth + 1),))
            if isinstance(node.op, ast.UAdd):
                return self.check(node.operand, depth + 1)
            symbol = "not" if isinstance(node.op, ast.Not) else "~"
            self.fail(f"operator {symbol!r} is not allowed; use + - * / ** and function calls", node)
        if isinstance(node, ast.Call):
            return self.call(node, depth)
        self.fail_other(node)
        raise AssertionError("unreachable")

    def fail_operator(self, node: ast.BinOp, symbol: str) -> None:
        # point at the operator itself: between the end of the left operand and the right one
        start = node.left.end_col_offset
        end = node.right.col_offset
        if start is not None and node.left.end_lineno == node.lineno == node.right.lineno:
            pos = self._line_bytes.find(symbol.encode(), start, end)
            if pos >= 0:
                self.fail(f"operator {symbol!r} is not allowed; use + - * / **", start=pos, end=pos + len(symbol))
        self.fail(f"operator {symbol!r} is not allowed; use + - * / **", node)

    def fail_other(self, node: ast.AST) -> None:
        if isinstance(node, ast.Attribute):
            end = node.end_col_offset
            start = None if end is None else end - len(node.attr.encode("utf-8"))
            self.fail(f"attribute access '.{node.attr}' is not allowed", start=start, end=end)
        if isinstance(node, ast.Compare):
            self.fail(f"comparison '{self.segment(node)}' is not allowed", node)
        if isinstance(node, ast.BoolOp):
            word = "and" if isinstance(node.op, ast.And) else "or"
            self.fail(f"boolean operator '{word}' is not allowed", node)
        what = _DESCRIPTIONS.get(type(node), f"{type(node).__name__} expression")
        self.fail(f"{what} '{self.segment(node)}' is not allowed in a formula", node)

    def number(self, node: ast.Constant) -> float:
        v = node.value
        if isinstance(v, bool) or v is None or v is Ellipsis:
            self.fail(f"'{v}' is not a number", node)
        if isinstance(v, str):
            self.fail(f"string {self.segment(node)} is not allowed in a formula", node)
        if isinstance(v, bytes):
            self.fail(f"bytes {self.segment(node)} are not allowed in a formula", node)
        if isinstance(v, complex):
            self.fail(f"complex number '{self.segment(node)}' is not allowed (real numbers only)", node)
        if isinstance(v, int):
            try:
                return float(v)
            except OverflowError:
                return math.inf
        if isinstance(v, float):
            return v
        self.fail(f"constant '{self.segment(node)}' is not allowed", node)
        raise AssertionError("unreachable")

    def check_name(self, name: str, node: ast.AST) -> None:
        if name.startswith("_"):
            self.fail(f"name '{name}' is not allowed: names may not start with '_'", node)
        if not _NAME_RE.match(name):
            self.fail(f"name '{name}' is not allowed: use ASCII letters, digits and '_'", node)

    def name(self, node: ast.Name) -> _Var:
        name = node.id
        self.check_name(name, node)
        if name in REGISTRY:
            hint = f"; call it as {name}(...)" if name in self.allowed else ""
            self.fail(f"'{name}' is a function name and cannot be used as a variable{hint}", node)
        if name not in self.variables:
            self.variables.append(name)
        return _Var(self.variables.index(name))

    def call(self, node: ast.Call, depth: int) -> _Apply:
        func = node.func
        if not isinstance(func, ast.Name):
            if isinstance(func, ast.Attribute):
                self.fail_other(func)
            self.fail(f"calling '{self.segment(func)}' is not allowed: call functions by name, like sin(x)", func)
        assert isinstance(func, ast.Name)
        name = func.id
        self.check_name(name, func)
        if name in self.plain_names and name not in REGISTRY:
            self.fail(f"'{name}' is a variable, not a function", func)
        op = self.allowed.get(name)
        if op is None:
            if name in REGISTRY:
                self.fail(
                    f"'{name}' is not allowed in a formula: only scalar elementwise functions "
                    f"with derivatives ({self.function_list()})",
                    func,
                )
            close = difflib.get_close_matches(name, list(self.allowed), n=3)
            hint = f"; did you mean {' or '.join(close)}?" if close else f"; functions: {self.function_list()}"
            self.fail(f"unknown function '{name}'{hint}", func)
        assert op is not None
        self.calls.add(name)
        for a in node.args:
            if isinstance(a, ast.Starred):
                self.fail(f"starred argument '{self.segment(a)}' is not allowed", a)
        for kw in node.keywords:
            if kw.arg is None:
                self.fail(f"'**' arguments are not allowed: '{self.segment(kw)}'", kw)
        n = len(node.args)
        if op.variadic:
            if n < 1:
                self.fail(f"{name}() needs at least one argument", node)
        elif n != len(op.args):
            plural = "" if len(op.args) == 1 else "s"
            self.fail(f"{name}() takes {len(op.args)} argument{plural} ({', '.join(op.args)}), got {n}", node)
        params = []
        for kw in node.keywords:
            assert kw.arg is not None
            default = op.params.get(kw.arg)
            if kw.arg not in op.params or isinstance(default, bool) or not isinstance(default, (int, float)):
                numeric = [p for p, d in op.params.items() if isinstance(d, (int, float)) and not isinstance(d, bool)]
                allowed = f"its parameters: {', '.join(numeric)}" if numeric else "it has no parameters"
                self.fail(f"{name}() has no keyword argument '{kw.arg}' ({allowed})", kw)
            params.append((kw.arg, self.keyword_number(kw)))
        args = tuple(self.check(a, depth + 1) for a in node.args)
        return _Apply(op, args, tuple(params))

    def keyword_number(self, kw: ast.keyword) -> float:
        v = kw.value
        sign = 1.0
        while isinstance(v, ast.UnaryOp) and isinstance(v.op, (ast.USub, ast.UAdd)):
            if isinstance(v.op, ast.USub):
                sign = -sign
            v = v.operand
        if not isinstance(v, ast.Constant):
            self.fail(f"keyword argument '{kw.arg}' must be a number, like {kw.arg}=0.1", kw.value)
        assert isinstance(v, ast.Constant)
        return sign * self.number(v)

    def function_list(self) -> str:
        return ", ".join(sorted(self.allowed))


# --- the formula ------------------------------------------------------------------------------


class Formula:
    """A checked formula: call it with one value per variable (in `.variables` order).

    It evaluates by walking the checked tree with registry ops, so it works on floats,
    numpy arrays and every engine's traced values (grad, jvp, trace, ...).
    """

    def __init__(self, text: str) -> None:
        if not isinstance(text, str):
            raise FormulaError(f"a formula is a string, not {type(text).__name__}")
        if len(text) > MAX_LENGTH:
            raise FormulaError(f"the formula is {len(text):,} characters long; the limit is {MAX_LENGTH:,}")
        self.text = text.strip()
        _check_characters(self.text)
        if not self.text:
            raise FormulaError("the formula is empty")
        try:
            tree = ast.parse(self.text, mode="eval")
        except SyntaxError as exc:
            col = min(exc.offset or len(self.text) + 1, len(self.text) + 1) if exc.lineno in (None, 1) else None
            raise FormulaError(f"syntax error: {exc.msg}", self.text, col) from None
        except (RecursionError, MemoryError):
            raise FormulaError(f"the formula is too deeply nested (at most {MAX_DEPTH} levels)") from None
        except ValueError as exc:
            raise FormulaError(f"cannot parse the formula: {exc}") from None
        checker = _Checker(self.text)
        callees = {id(n.func) for n in ast.walk(tree) if isinstance(n, ast.Call)}
        checker.plain_names = {n.id for n in ast.walk(tree) if isinstance(n, ast.Name) and id(n) not in callees}
        try:
            self._tree = checker.check(tree.body, 1)
        except RecursionError:  # pragma: no cover (MAX_DEPTH keeps the walk shallow)
            raise FormulaError(f"the formula is too deeply nested (at most {MAX_DEPTH} levels)") from None
        self.variables: tuple[str, ...] = tuple(checker.variables)
        self._tree_order = self.variables  # the order the checked tree reads its variables in
        self.functions: tuple[str, ...] = tuple(sorted(checker.calls))
        # so that inspect.signature (used by adkit.trace and compare to name inputs) sees x, y, ...
        self.__signature__ = inspect.Signature(
            [inspect.Parameter(v, inspect.Parameter.POSITIONAL_ONLY) for v in self.variables]
        )

    def set_order(self, names: Sequence[str]) -> None:
        """Reorder the variables (positional arguments, graph inputs), e.g. as --at gave them."""
        if sorted(names) != sorted(self.variables):
            raise FormulaError(f"the variables are {', '.join(self.variables)}, not {', '.join(names)}")
        self.variables = tuple(names)
        self.__signature__ = inspect.Signature(
            [inspect.Parameter(v, inspect.Parameter.POSITIONAL_ONLY) for v in self.variables]
        )

    def bind(self, *values: Any, **named: Any) -> list[Any]:
        """Values in `.variables` order from positional and/or named values."""
        if len(values) > len(self.variables):
            raise FormulaError(
                f"the formula has {len(self.variables)} variable(s) ({', '.join(self.variables) or 'none'}) "
                f"but got {len(values)} values"
            )
        bound = dict(zip(self.variables, values))
        for k, v in named.items():
            if k not in self.variables:
                raise FormulaError(
                    f"'{k}' is not a variable of the formula; its variables are {', '.join(self.variables) or 'none'}"
                )
            if k in bound:
                raise FormulaError(f"'{k}' is given twice")
            bound[k] = v
        missing = [v for v in self.variables if v not in bound]
        if missing:
            raise FormulaError(
                f"no value for {', '.join(missing)}: give " + " ".join(f"--at {m}=NUMBER" for m in missing)
            )
        return [bound[v] for v in self.variables]

    def __call__(self, *values: Any, **named: Any) -> Any:
        bound = dict(zip(self.variables, self.bind(*values, **named)))
        return _evaluate(self._tree, [bound[v] for v in self._tree_order])

    def __repr__(self) -> str:
        return f"Formula({self.text!r})"

    def __str__(self) -> str:
        return self.text


def parse(text: str) -> Formula:
    """Check `text` against the whitelist and return a callable `Formula`."""
    return Formula(text)


def _check_characters(text: str) -> None:
    for i, ch in enumerate(text):
        if ch in "\n\r":
            raise FormulaError("a formula is one line: it contains a line break", text.replace("\n", " "), i + 1)
        if ord(ch) < 32 and ch != "\t" or ord(ch) == 127:
            raise FormulaError(f"control character {ch!r} in the formula", text, i + 1)
