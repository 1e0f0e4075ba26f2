"""The command-line formula parser: a whitelist over the syntax tree, never eval."""

from __future__ import annotations

import ast
import builtins
import math
import time
import warnings

import pytest

import adkit as ad
from adkit.formula import MAX_DEPTH, MAX_LENGTH, Formula, FormulaError, functions, parse

# --- hostile input -------------------------------------------------------------------------

HOSTILE = [
    # (formula, a part of the message)
    ("().__class__", "attribute access '.__class__'"),
    ("().__class__.__bases__[0].__subclasses__()", "attribute access"),
    ("x.real", "attribute access '.real'"),
    ("__import__('os')", "'__import__'"),
    ("__builtins__", "names may not start with '_'"),
    ("_x + 1", "names may not start with '_'"),
    ("lambda: 1", "lambda"),
    ("(lambda x: x)(1)", "calling"),
    ("import os", "syntax error"),
    ("from os import system", "syntax error"),
    ("open('x')", "unknown function 'open'"),
    ("eval('1')", "unknown function 'eval'"),
    ("exec('1')", "unknown function 'exec'"),
    ("getattr(x, 'y')", "unknown function 'getattr'"),
    ("foo(x)", "unknown function 'foo'"),
    ("x(1) + x", "'x' is a variable, not a function"),
    ("sin(x)(y)", "calling 'sin(x)'"),
    ("x[0]", "subscript"),
    ("x[::2]", "subscript"),
    ("'abc'", "string"),
    ("b'abc'", "bytes"),
    ("f'{x}'", "f-string"),
    ("[i for i in x]", "list comprehension"),
    ("(i for i in x)", "generator expression"),
    ("{i: i for i in x}", "dict comprehension"),
    ("[x, y]", "list"),
    ("(x, y)", "tuple"),
    ("{x}", "set"),
    ("{x: y}", "dict"),
    ("x < y", "comparison"),
    ("x == y", "comparison"),
    ("x and y", "boolean operator 'and'"),
    ("x or y", "boolean operator 'or'"),
    ("not x", "operator 'not'"),
    ("~x", "operator '~'"),
    ("x if y else z", "conditional expression"),
    ("(y := 2)", "assignment expression"),
    ("x % 2", "operator '%'"),
    ("x // 2", "operator '//'"),
    ("x @ y", "operator '@'"),
    ("x << 2", "operator '<<'"),
    ("x ^ 2", "operator '^'"),
    ("True + x", "'True' is not a number"),
    ("None", "'None' is not a number"),
    ("...", "is not a number"),
    ("1j * x", "complex number"),
    ("sin(*x)", "starred argument"),
    ("sin(**x)", "'**' arguments"),
    ("sin(x, y)", "sin() takes 1 argument"),
    ("maximum(x)", "maximum() takes 2 arguments"),
    ("product()", "at least one argument"),
    ("leaky_relu(x, beta=0.1)", "no keyword argument 'beta'"),
    ("sin(x, alpha=0.1)", "no keyword argument 'alpha'"),
    ("leaky_relu(x, alpha=y)", "must be a number"),
    ("leaky_relu(x, alpha='a')", "string"),
    ("sum(x)", "'sum' is not allowed"),
    ("matmul(x, y)", "'matmul' is not allowed"),
    ("sign(x)", "'sign' is not allowed"),
    ("greater(x, y)", "'greater' is not allowed"),
    ("sin + 1", "'sin' is a function name"),
    ("x ** exp", "'exp' is a function name"),
    ("α + 1", "ASCII letters"),
    ("await x", "await"),
    ("(yield x)", "yield"),
    ("x; y", "syntax error"),
    ("x = 1", "syntax error"),
    ("x +", "syntax error"),
    ("sin(x", "syntax error"),
    ("x\n+ 1", "one line"),
    ("x\x00", "control character"),
    ("", "empty"),
    ("   ", "empty"),
]


@pytest.mark.parametrize("text, part", HOSTILE)
def test_hostile_formulas_are_refused_with_the_offending_part(text, part):
    with pytest.raises(FormulaError) as info:
        parse(text)
    assert part in str(info.value)
    assert isinstance(info.value, ValueError)


def test_error_points_at_the_column_with_a_caret():
    with pytest.raises(FormulaError) as info:
        parse("sin(x) + (x).__class__")
    err = info.value
    assert err.column == 14
    lines = str(err).splitlines()
    assert "(column 14)" in lines[0]
    assert lines[1] == "  sin(x) + (x).__class__"
    assert lines[2] == "  " + " " * 13 + "^" * len("__class__")


def test_operator_error_points_at_the_operator():
    with pytest.raises(FormulaError) as info:
        parse("exp(x) + log(y) % 3")
    assert info.value.column == 17


def test_columns_count_characters_not_bytes():
    with pytest.raises(FormulaError) as info:
        parse("x + y + ‘abc’")  # typographic quotes: a syntax error
    assert info.value.column is not None
    with pytest.raises(FormulaError) as info:
        parse("'é' + x.real")
    assert info.value.column == 1  # the string comes first


def test_nothing_is_executed(tmp_path):
    marker = tmp_path / "pwned"
    for text in [
        f"__import__('os').system('touch {marker}')",
        f"open('{marker}', 'w')",
        f"().__class__.__base__.__subclasses__()[0]('{marker}')",
    ]:
        with pytest.raises(FormulaError):
            parse(text)
    assert not marker.exists()


def test_no_eval_exec_or_sympify(monkeypatch):
    import sympy

    def forbidden(*args, **kwargs):
        raise AssertionError("the formula parser must not eval, exec or sympify")

    monkeypatch.setattr(builtins, "eval", forbidden)
    monkeypatch.setattr(builtins, "exec", forbidden)
    monkeypatch.setattr(sympy, "sympify", forbidden)
    f = parse("sin(x * y) + x ** 2 / y - leaky_relu(-x, alpha=0.2)")
    assert f(1.5, 2.0) == pytest.approx(math.sin(3.0) + 2.25 / 2.0 - 0.2 * -1.5)


def test_huge_exponents_are_float_and_fast():
    start = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        f = parse("9**9**9**9")
        assert f() == math.inf
        g = parse("x ** 9 ** 9 ** 9")
        assert g(2.0) == math.inf
        assert parse("1" + "0" * 500)() == math.inf  # an int literal past the float range
        assert parse("2 ** 3")() == 8.0 and type(parse("2 ** 3")()) is float
    assert time.perf_counter() - start < 1.0


def test_deeply_nested_parentheses_are_refused_fast():
    start = time.perf_counter()
    with pytest.raises(FormulaError, match="characters long"):
        parse("(" * 10000 + "x" + ")" * 10000)
    with pytest.raises(FormulaError, match="too many nested parentheses"):
        parse("(" * 300 + "x" + ")" * 300)
    with pytest.raises(FormulaError, match=f"more than {MAX_DEPTH} levels"):
        parse("-" * 1999 + "x")
    with pytest.raises(FormulaError, match=f"more than {MAX_DEPTH} levels"):
        parse("sin(" * 150 + "x" + ")" * 150)
    assert parse("sin(" * 50 + "x" + ")" * 50)(0.5) == pytest.approx(_iterate(math.sin, 0.5, 50))
    assert parse("(" * 150 + "x" + ")" * 150)(2.0) == 2.0  # parentheses alone add no nesting
    assert time.perf_counter() - start < 2.0


def _iterate(fn, x, n):
    for _ in range(n):
        x = fn(x)
    return x


def test_a_100_kb_formula_is_refused_before_parsing(monkeypatch):
    calls = []
    real_parse = ast.parse
    monkeypatch.setattr(ast, "parse", lambda *a, **k: calls.append(1) or real_parse(*a, **k))
    with pytest.raises(FormulaError, match=f"limit is {MAX_LENGTH:,}"):
        parse("x+" * 50_000 + "x")
    assert calls == []


@pytest.mark.parametrize("exc", [RecursionError, MemoryError])
def test_parser_exhaustion_is_a_formula_error(monkeypatch, exc):
    def boom(*args, **kwargs):
        raise exc("too deep")

    monkeypatch.setattr(ast, "parse", boom)
    with pytest.raises(FormulaError, match="too deeply nested"):
        parse("x + 1")


# --- evaluation -----------------------------------------------------------------------------

CASES = [
    ("sin(x * y) + x", lambda x, y: math.sin(x * y) + x),
    ("x ** 2 / y - 3 * x + 0.5", lambda x, y: x**2 / y - 3 * x + 0.5),
    ("-x ** 2 + +y", lambda x, y: -(x**2) + y),
    ("exp(-x) * log(y) + sqrt(y)", lambda x, y: math.exp(-x) * math.log(y) + math.sqrt(y)),
    (
        "tanh(x) + sigmoid(y) + softplus(x - y)",
        lambda x, y: math.tanh(x) + 1 / (1 + math.exp(-y)) + math.log1p(math.exp(x - y)),
    ),
    ("maximum(x, y) * minimum(x, y) + abs(x - y)", lambda x, y: max(x, y) * min(x, y) + abs(x - y)),
    ("product(x, y, x, 2)", lambda x, y: x * y * x * 2),
    ("relu(x - y) + leaky_relu(y - x, alpha=0.1)", lambda x, y: max(x - y, 0) + (y - x if y > x else 0.1 * (y - x))),
    ("clip(x * y, lo=-1, hi=1.5)", lambda x, y: min(max(x * y, -1), 1.5)),
    ("2 ** x ** 0.5 / (1 + y) ** -2", lambda x, y: 2 ** (x**0.5) / (1 + y) ** -2),
]


@pytest.mark.parametrize("text, reference", CASES)
@pytest.mark.parametrize("point", [(0.7, 1.9), (2.5, 0.3)])
def test_evaluation_matches_plain_math(text, reference, point):
    f = parse(text)
    assert f.variables == ("x", "y")
    assert f(*point) == pytest.approx(reference(*point), rel=1e-12)


def test_variables_in_order_of_first_appearance_and_metadata():
    f = parse("  cos(w1 * x + w0) * w1 ")
    assert f.variables == ("w1", "x", "w0")
    assert f.text == "cos(w1 * x + w0) * w1"
    assert f.functions == ("cos",)
    assert str(f) == f.text and "cos" in repr(f)
    import inspect

    assert list(inspect.signature(f).parameters) == ["w1", "x", "w0"]
    assert f(2.0, 3.0, 0.5) == pytest.approx(math.cos(6.5) * 2.0)
    assert f(w0=0.5, w1=2.0, x=3.0) == pytest.approx(math.cos(6.5) * 2.0)
    assert parse("1 + 2").variables == ()
    assert parse("1 + 2")() == 3.0


def test_unbound_names_are_listed():
    f = parse("x * y + z")
    with pytest.raises(FormulaError, match="no value for y, z: give --at y=NUMBER --at z=NUMBER"):
        f(1.0)
    with pytest.raises(FormulaError, match="not a variable"):
        f(1.0, 2.0, 3.0, w=1.0)
    with pytest.raises(FormulaError, match="given twice"):
        f(1.0, 2.0, 3.0, x=1.0)
    with pytest.raises(FormulaError, match="3 variable"):
        f(1.0, 2.0, 3.0, 4.0)


def test_only_scalar_elementwise_ops_are_callable():
    allowed = functions()
    assert {"sin", "exp", "log", "tanh", "sigmoid", "relu", "maximum", "product", "leaky_relu"} <= set(allowed)
    for name, op in allowed.items():
        assert op.partials is not None and not op.nograd, name
    for name in ("sum", "matmul", "softmax", "reshape", "getitem", "sign", "floor", "equal"):
        assert name not in allowed


def test_not_a_string():
    with pytest.raises(FormulaError, match="a formula is a string"):
        Formula(b"x")  # type: ignore[arg-type]


# --- derivatives through adkit --------------------------------------------------------------

ENGINES = ("forward", "reverse", "symbolic", "paths")

GRADIENTS = [
    ("sin(x * y) + x", (1.0, 2.0), lambda x, y: (y * math.cos(x * y) + 1, x * math.cos(x * y))),
    ("x ** 3 * y - y / x", (1.5, 0.5), lambda x, y: (3 * x**2 * y + y / x**2, x**3 - 1 / x)),
    (
        "exp(x * y) + log(x + y)",
        (0.3, 0.9),
        lambda x, y: (y * math.exp(x * y) + 1 / (x + y), x * math.exp(x * y) + 1 / (x + y)),
    ),
    (
        "tanh(x) * sigmoid(y)",
        (0.4, -0.2),
        lambda x, y: ((1 - math.tanh(x) ** 2) * _sig(y), math.tanh(x) * _sig(y) * (1 - _sig(y))),
    ),
    ("(x + y) * (y + 1)", (2.0, 1.0), lambda x, y: (y + 1, x + 2 * y + 1)),
]


def _sig(v):
    return 1 / (1 + math.exp(-v))


@pytest.mark.parametrize("engine", ENGINES)
@pytest.mark.parametrize("text, point, closed_form", GRADIENTS)
def test_gradients_match_closed_forms(engine, text, point, closed_form):
    f = parse(text)
    g = ad.grad(f, argnums=(0, 1), engine=engine)(*point)
    assert [float(v) for v in g] == pytest.approx(closed_form(*point), rel=1e-10)


def test_formula_under_jvp_trace_and_hessian():
    f = parse("x * x * y + sin(y)")
    value, tangent = ad.jvp(f, (2.0, 0.5), (1.0, 0.0))
    assert float(value) == pytest.approx(2.0 + math.sin(0.5))
    assert float(tangent) == pytest.approx(2 * 2.0 * 0.5)
    graph = ad.trace(f, 2.0, 0.5)
    assert graph.input_names == ["x", "y"]
    assert graph.count_paths("x") == 2
    h = ad.hessian(parse("x ** 3"))(2.0)
    assert float(h) == pytest.approx(12.0)
