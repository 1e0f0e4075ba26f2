"""adkit.jit: the compiled program returns what the eager engines return, or defers to them.

Oracles: the eager engines (the jit must equal them bit for bit: it replays the same
registry ops, so no tolerance is needed, and == is the test), closed forms for the lecture
example, and the eager engines' refusals for the strong-zero rule.
"""

from __future__ import annotations

import math
import zlib
from typing import Any

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import adkit as ad
from adkit.errors import JitCacheError, NonFiniteDerivativeError, TracerConversionError
from adkit.ops import REGISTRY
from tests.test_registry import case_labels, draw_case


def same(a: Any, b: Any) -> bool:
    """Equal structure and equal numbers (NaN-free), ndarray or float alike."""
    la, da = ad.transforms.tree_flatten(a)
    lb, db = ad.transforms.tree_flatten(b)
    return da == db and all(np.shape(x) == np.shape(y) and np.array_equal(x, y) for x, y in zip(la, lb))


def f2(x: Any, y: Any) -> Any:
    return np.sin(x * y) + x**2 * np.exp(y) - np.tanh(x / y)


def h1(x: np.ndarray) -> Any:
    return np.sum(np.sin(x) ** 2) * x[0] + np.sum(np.log1p(x * x))


V = np.array([1.0, -0.5, 2.0])
TRANSFORMS = {
    "grad": (lambda f: ad.grad(f, argnums=(0, 1)), f2, (1.3, 0.7), (-0.4, 2.1)),
    "value_and_grad": (lambda f: ad.value_and_grad(f, argnums=(0, 1)), f2, (1.3, 0.7), (0.2, -1.5)),
    "hessian": (ad.hessian, h1, (np.array([0.3, 1.2, -0.7]),), (np.array([2.0, 0.1, 0.4]),)),
    "jvp": (lambda f: lambda x: ad.jvp(f, (x,), (V,)), h1, (np.array([0.3, 1.2, -0.7]),), (np.array([1.0, 2.0, 3.0]),)),
    "plain": (lambda f: f, f2, (1.3, 0.7), (0.5, 0.25)),
    "array grad": (ad.grad, h1, (np.array([0.3, 1.2, -0.7]),), (np.array([-1.0, 0.5, 0.1]),)),
}


@pytest.mark.parametrize("name", list(TRANSFORMS))
def test_jit_of_transforms_equals_eager(name: str) -> None:
    make, f, first, second = TRANSFORMS[name]
    eager = make(f)
    jitted = ad.jit(make(f))
    for args in (first, second, first):  # record, replay at a new point, replay again
        assert same(jitted(*args), eager(*args))
    assert len(next(iter(jitted._cache.values())).programs) == 1  # replayed, not re-recorded


def test_lecture_example_gradient_and_source() -> None:
    """SEEDS §1: y = sin(w1 x + w0); closed form dy/dw1 = x cos(.), dy/dx = w1 cos(.), dy/dw0 = cos(.)."""
    jg = ad.jit(ad.grad(lambda w1, x, w0: np.sin(w1 * x + w0), argnums=(0, 1, 2)))
    w1, x, w0 = 2.0, 3.0, 1.0
    c = math.cos(w1 * x + w0)
    assert jg(w1, x, w0) == pytest.approx((x * c, w1 * c, c), rel=1e-15)  # a few roundings
    src = jg.source(w1, x, w0)
    lines = [line.strip() for line in src.splitlines()]
    assert lines[1:4] == ["v1 = w1 * x", "v2 = v1 + w0", "v3 = math.sin(v2)"]
    assert "v2_bar = math.cos(v2)" in lines
    assert lines.index("w1_bar = v2_bar * x") > lines.index("v2_bar = math.cos(v2)")
    assert lines[-1] == "return [w1_bar, x_bar, w0_bar]"


def test_product_graph_matches_exact_gradient() -> None:
    """SEEDS §5 (Aggarwal's product graph): the exact gradient is known in closed form."""
    spec = ad.families.product_graph(6, 3)
    jg = ad.jit(ad.grad(spec.f))
    assert jg(*spec.args) == ad.grad(spec.f)(*spec.args)
    assert jg(*spec.args) == pytest.approx(float(spec.exact_grad), rel=1e-13)  # ~100 products


def _registry_cases() -> list[tuple[str, str]]:
    return [(name, label) for name, op in REGISTRY.items() if not op.nograd for label in case_labels(op)]


@pytest.mark.parametrize("name,label", _registry_cases())
def test_registry_ops_jit_grad_equals_eager(name: str, label: str) -> None:
    op = REGISTRY[name]
    rng = np.random.default_rng(zlib.crc32(f"jit|{name}|{label}".encode()))
    args, params = draw_case(op, label, rng)
    floats = [
        k for k, a in enumerate(args) if isinstance(a, float) or (isinstance(a, np.ndarray) and a.dtype.kind == "f")
    ]
    if not floats:
        pytest.skip(f"{name} {label}: no float input to differentiate")

    def f(*xs: Any) -> Any:
        out = op(*xs, **params)
        if np.iscomplexobj(ad.primal(out)):  # np.fft's ops: a real-valued function of them
            out = np.real(out) + 0.5 * np.imag(out)
        return np.sum(out * 1.5)

    eager = ad.grad(f, argnums=tuple(floats))
    expected = eager(*args)
    jg = ad.jit(eager)
    assert same(jg(*args), expected)
    args2, _ = draw_case(op, label, rng)
    if all(np.shape(a) == np.shape(b) for a, b in zip(args, args2)) and all(
        type(a) is type(b) for a, b in zip(args, args2)
    ):
        assert same(jg(*args2), eager(*args2))  # replay (or an eager fallback) at a new point


UNARY = ["sin", "cos", "tanh", "exp", "sigmoid", "softplus", "arctan"]
BINARY = ["add", "sub", "mul"]


@st.composite
def programs(draw: Any) -> list[tuple[str, int, int]]:
    n = draw(st.integers(1, 12))
    return [
        (draw(st.sampled_from(UNARY + BINARY)), draw(st.integers(0, 2 + k)), draw(st.integers(0, 2 + k)))
        for k in range(n)
    ]


def _run(program: list[tuple[str, int, int]], x: Any, y: Any, z: Any) -> Any:
    values = [x, y, z]
    for name, i, j in program:
        op = REGISTRY[name]
        values.append(op(values[i]) if name in UNARY else op(values[i], values[j]))
    return values[-1]


@given(programs(), st.floats(-2, 2), st.floats(-2, 2), st.floats(-2, 2))
def test_random_programs_jit_grad_equals_eager(program: Any, x: float, y: float, z: float) -> None:
    def f(a: Any, b: Any, c: Any) -> Any:
        return _run(program, a, b, c)

    eager = ad.grad(f, argnums=(0, 1, 2))
    jg = ad.jit(eager)
    jg(0.5, -0.25, 1.5)  # record elsewhere, then replay at the drawn point
    assert same(jg(x, y, z), eager(x, y, z))


def branchy(x: Any) -> Any:
    if x > 0:
        return x**3
    return np.sin(x)


def test_branches_become_guards_and_rerecord() -> None:
    jg = ad.jit(ad.grad(branchy))
    assert jg(2.0) == 12.0
    assert jg(-1.0) == math.cos(-1.0)  # the recorded x > 0 branch would give 3.0
    assert jg(3.0) == 27.0
    assert jg(-2.0) == math.cos(-2.0)
    assert len(jg._cache[1].programs) == 2


def test_bool_of_traced_value_inside_grad_is_guarded() -> None:
    def f(x: Any) -> Any:
        return x * x if bool(x - 1.0 > 0) else -x

    jg = ad.jit(ad.grad(f))
    assert [jg(v) for v in (3.0, 0.0, 2.5, -4.0)] == [6.0, -1.0, 5.0, -1.0]


def test_int_arguments_are_static_and_keyed() -> None:
    """An int argument is part of the signature (a loop count, an index): one program per value."""
    jg = ad.jit(ad.grad(lambda x, k: x[k] ** 2 * k))
    x = np.array([1.0, 2.0, 3.0])
    assert same(jg(x, 1), np.array([0.0, 4.0, 0.0]))
    assert same(jg(x, 2), np.array([0.0, 0.0, 12.0]))
    assert len(jg._cache) == 2


def test_cache_is_bounded() -> None:
    def f(x: Any) -> Any:
        for threshold in range(10):
            if x < threshold:
                return x * threshold
        return x

    jf = ad.jit(f, max_variants=2)
    assert jf(-1.0) == 0.0 * -1.0
    assert jf(0.5) == 0.5
    with pytest.raises(JitCacheError, match="max_variants"):
        jf(1.5)


def test_nonfinite_result_goes_to_eager_strong_zero_rule() -> None:
    """np.where's untaken branch: sqrt'(0) = inf times an exact structural zero is 0 (the
    eager engines' strict pass); the plain replayed program gives NaN and must not return it."""

    def f(x: Any) -> Any:
        return np.where(x > 0, np.sqrt(np.abs(x)), 0.0)

    jg = ad.jit(ad.grad(f))
    assert jg(4.0) == 0.25
    assert jg(0.0) == ad.grad(f)(0.0) == 0.0


def test_nonfinite_derivative_is_refused_by_name() -> None:
    jg = ad.jit(ad.grad(np.sqrt))
    assert jg(4.0) == 0.25
    with pytest.raises(NonFiniteDerivativeError, match="sqrt"):
        jg(0.0)


def test_concrete_reads_run_eagerly() -> None:
    """np.max's VJP reads the values (which entry won): baking that in would be wrong at
    another point, so this signature runs eagerly."""

    def f(x: Any) -> Any:
        return np.max(x) * 2.0

    jg = ad.jit(ad.grad(f))
    a, b = np.array([1.0, 3.0]), np.array([4.0, 3.0])
    assert same(jg(a), np.array([0.0, 2.0]))
    assert same(jg(b), np.array([2.0, 0.0]))
    assert jg.eager_reason is not None


def test_nesting_grad_of_jit_and_jit_of_jit() -> None:
    assert ad.grad(ad.jit(f2))(1.3, 0.7) == ad.grad(f2)(1.3, 0.7)
    assert ad.jit(ad.jit(ad.grad(f2)))(1.3, 0.7) == ad.grad(f2)(1.3, 0.7)
    assert ad.grad(ad.jit(ad.grad(f2)))(1.3, 0.7) == ad.grad(ad.grad(f2))(1.3, 0.7)


def test_float_of_traced_value_is_refused_as_eagerly() -> None:
    with pytest.raises(TracerConversionError):
        ad.jit(lambda x: math.sin(x))(1.0)


SCALE = 2.0


def test_closure_constants_in_place_changes_seen_rebinding_needs_clear() -> None:
    """A captured array is held by the program itself (in-place changes are seen); a
    rebound name is not (the program holds the old object) until clear()."""
    global SCALE
    weights = np.array([1.0, 2.0])
    jf = ad.jit(ad.grad(lambda x: np.sum(weights * x * x) * SCALE))
    x = np.array([1.0, 1.0])
    assert same(jf(x), np.array([4.0, 8.0]))
    weights[:] = [3.0, 3.0]
    assert same(jf(x), np.array([12.0, 12.0]))
    SCALE = 1.0
    try:
        assert same(jf(x), np.array([12.0, 12.0]))  # documented: the recorded constant
        jf.clear()
        assert same(jf(x), np.array([6.0, 6.0]))
    finally:
        SCALE = 2.0


def test_signature_distinguishes_shapes_and_containers() -> None:
    jg = ad.jit(ad.grad(lambda p: np.sum(p["w"] ** 2) + p["b"]))
    assert same(jg({"w": np.array([1.0, 2.0]), "b": 1.0}), {"w": np.array([2.0, 4.0]), "b": 1.0})
    assert same(jg({"w": np.array([3.0]), "b": 1.0}), {"w": np.array([6.0]), "b": 1.0})
    assert len(jg._cache) == 2


def test_cli_trace_code_prints_the_adjoint_program(capsys: pytest.CaptureFixture[str]) -> None:
    from adkit.cli import main

    assert main(["trace", "--code", "sin(w1*x + w0)", "--at", "w1=2", "--at", "x=3", "--at", "w0=1"]) == 0
    out = capsys.readouterr().out
    assert "a4 = a1 * a2" in out  # the evaluation trace
    for line in ("v1 = w1 * x", "v2 = v1 + w0", "v3 = math.sin(v2)", "v2_bar = math.cos(v2)"):
        assert line in out
    assert out.index("v3 = math.sin(v2)") < out.index("v2_bar = math.cos(v2)")


def test_parameter_names_that_clash_with_the_program_namespace() -> None:
    def f(f_sin: Any, sin: Any, t1: Any) -> Any:
        return np.sum(np.sin(f_sin) * sin) + t1

    g = ad.grad(f, argnums=(0, 1, 2))
    args = (np.array([0.5, 1.5]), np.array([2.0, -1.0]), 1.0)
    assert "def f(" in ad.jit(g).source(*args)
    assert same(tuple(map(np.asarray, ad.jit(g)(*args))), tuple(map(np.asarray, g(*args))))


def test_in_place_buffers_never_touch_inputs_or_earlier_results() -> None:
    def f(x: Any) -> Any:
        return np.sum(np.tanh(np.exp(x) * 0.5) ** 2)

    jg = ad.jit(ad.grad(f))
    x = np.linspace(-1.0, 1.0, 3000)  # large enough for in-place updates (IN_PLACE_MIN_SIZE)
    x_copy = x.copy()
    first = jg(x)
    assert "out=" in next(iter(jg._cache.values())).programs[0].source  # the in-place path is exercised
    kept = first.copy()
    second = jg(x * 2.0)
    assert np.array_equal(x, x_copy)
    assert np.array_equal(first, kept)  # the second call did not write into the first result
    assert same(second, ad.grad(f)(x * 2.0))


def _paren_depth(text: str) -> int:
    depth = deepest = 0
    for ch in text:
        depth += (ch == "(") - (ch == ")")
        deepest = max(deepest, depth)
    return deepest


def test_deep_chains_of_single_use_values_stay_below_the_parser_limit() -> None:
    """Values read once are written inside their reader's expression (fewer lines to
    compile); a chain of 600 such values is cut into expressions of bounded nesting
    (CPython's parser refuses 200 nested parentheses), and the result is still the eager
    engine's, bit for bit (Python evaluates a nested expression op by op)."""

    def f(x: Any) -> Any:
        for _ in range(300):
            x = np.sin(x) * 1.25
        return x

    jg = ad.jit(ad.grad(f))
    assert same(jg(0.3), ad.grad(f)(0.3))
    source = next(iter(jg._cache.values())).programs[0].source
    # sin(x) is read twice (by the next layer, by the sweep's cos) and keeps its line; the
    # ~900 other recorded instructions are inlined
    assert source.count("\n") < 400
    assert _paren_depth(source) < 100


def test_long_random_programs_with_reused_names_equal_eager() -> None:
    """Register reuse and inlining together: values read by several later instructions,
    some of them inlined into much later lines, must keep their names until their last
    reader (40 seeded programs of 20-80 ops over 3 inputs)."""
    rng = np.random.default_rng(20261202)
    ops = UNARY + BINARY
    for _ in range(40):
        program = [
            (ops[rng.integers(len(ops))], int(rng.integers(0, 3 + k)), int(rng.integers(0, 3 + k)))
            for k in range(int(rng.integers(20, 80)))
        ]

        def f(a: Any, b: Any, c: Any, program: Any = program) -> Any:
            return _run(program, a, b, c)

        eager = ad.grad(f, argnums=(0, 1, 2))
        jg = ad.jit(eager)
        point = tuple(float(v) for v in rng.uniform(-1.5, 1.5, 3))
        jg(0.5, -0.25, 1.5)
        assert same(jg(*point), eager(*point))


@pytest.mark.parametrize(
    "x",
    [1.5, np.float64(1.5), np.array(1.5), np.array([0.5, 1.5])],
    ids=["float", "np.float64", "0-d array", "array"],
)
def test_jit_returns_the_types_eager_returns(x: Any) -> None:
    """A replayed program hands back what the eager call does: Python floats for a float
    (or np.float64) input, arrays of the same shape for arrays."""

    def f(v: Any) -> Any:
        return np.sum(np.sin(v) * v)

    for transform in (ad.grad, ad.value_and_grad):
        eager = transform(f)
        jg = ad.jit(eager)
        jg(x)  # the recording call
        expected, got = eager(x), jg(x)
        flat_expected = expected if isinstance(expected, tuple) else (expected,)
        flat_got = got if isinstance(got, tuple) else (got,)
        assert [type(v) for v in flat_got] == [type(v) for v in flat_expected]
        assert [np.shape(v) for v in flat_got] == [np.shape(v) for v in flat_expected]
        assert same(got, expected)


def test_a_recording_that_fails_after_a_concrete_read_runs_eagerly() -> None:
    """det's rule reads the matrix's values (its condition number) before it picks a formula:
    such a recording is never replayed, so a failure inside it must not reach the caller
    when the eager call answers (the cofactor matrix of a singular matrix)."""
    singular = np.array([[1.0, 2.0], [2.0, 4.0]])
    jg = ad.jit(ad.grad(np.linalg.det))
    assert same(jg(singular), ad.grad(np.linalg.det)(singular))
    assert jg.eager_reason is not None and "reads a traced value" in jg.eager_reason
    assert jg.source(singular).startswith("# det runs eagerly")
