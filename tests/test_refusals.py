"""What adkit refuses, and how: every refusal is an `ad.AdkitError` (and the builtin
TypeError / ValueError that fits, so `except TypeError` keeps working), with a message
that says what happened and what to do. Plus the numeric engine on functions that write
into their argument, complex numbers, masked arrays, nesting, and the supported list."""

from __future__ import annotations

import math
import re
from pathlib import Path

import numpy as np
import pytest

import adkit as ad
from adkit.errors import (
    AdkitTypeError,
    InPlaceUpdateError,
    NestedEngineError,
    TracerConversionError,
)
from adkit.numpy_api import supported_names

ENGINES = ad.ENGINES
TRACING = tuple(e for e in ENGINES if e != "numeric")  # numeric only calls f on plain floats
ROOT = Path(__file__).resolve().parent.parent


def refusal(engine, f, *args, kind=ad.AdkitError, builtin=TypeError, match=None):
    """ad.grad(f, engine)(*args) raises an AdkitError that is also `builtin`."""
    with pytest.raises(kind, match=match) as info:
        ad.grad(f, engine=engine)(*args)
    assert isinstance(info.value, ad.AdkitError) and isinstance(info.value, builtin), type(info.value).__mro__
    return str(info.value)


# --- converting a traced value --------------------------------------------------------------------------


def _stored(x):
    a = np.zeros(3)
    a[0] = x  # numpy raises its own ValueError "setting an array element with a sequence"
    return np.sum(a)


def _counted(x):
    total = 0.0
    for _ in range(x):
        total = total + 1.0
    return total


CONVERSIONS = {
    "np.array(x, dtype=float)": (
        lambda x: np.sum(np.array(x, dtype=float)),
        TracerConversionError,
        TypeError,
        "np.stack",
    ),
    "float(x)": (lambda x: float(x) * x, TracerConversionError, TypeError, "adkit.primal"),
    "math.sin(x)": (lambda x: math.sin(x), TracerConversionError, TypeError, "float"),
    "int(x)": (lambda x: int(x) * x, TracerConversionError, TypeError, "np.floor"),
    "round(x)": (lambda x: round(x) * x, TracerConversionError, TypeError, "np.round"),
    "range(x)": (_counted, TracerConversionError, TypeError, "not in argnums"),
    "(a, b)[x]": (lambda x: (1.0, 2.0)[x], TracerConversionError, TypeError, "index"),
    "a[0] = x": (_stored, InPlaceUpdateError, ValueError, "np.where"),
    "x[0] = 1": (lambda x: x.__setitem__(0, 1.0), InPlaceUpdateError, TypeError, "np.where"),
    "x.item()": (lambda x: x.item() * x, TracerConversionError, TypeError, "primal"),
}


@pytest.mark.parametrize("engine", TRACING)
@pytest.mark.parametrize("what", list(CONVERSIONS))
def test_conversions_are_adkit_errors(what, engine):
    f, kind, builtin, advice = CONVERSIONS[what]
    x = np.array([1.5, 2.0]) if what == "x[0] = 1" else 1.5
    message = refusal(engine, f, x, kind=kind, builtin=builtin)
    assert advice in message  # says what to do


@pytest.mark.parametrize("engine", TRACING)
def test_in_place_operator_on_a_plain_array_says_what_to_write(engine):
    def f(x):
        a = np.zeros(2)
        a += x
        return np.sum(a)

    assert "a = a + x" in refusal(engine, f, 1.0, kind=ad.UnsupportedFunctionError)


def test_stored_traced_value_keeps_the_users_line_in_the_traceback():
    with pytest.raises(InPlaceUpdateError) as info:
        ad.grad(_stored)(1.0)
    assert any(entry.name == "_stored" for entry in info.traceback)


@pytest.mark.parametrize("engine", ENGINES)
def test_formatting_a_traced_value_formats_its_number(engine):
    shown = []

    def f(x):
        shown.append(f"{x:.3f}")
        return x * x

    assert ad.grad(f, engine=engine)(1.25) == pytest.approx(2.5, rel=1e-8)  # numeric: Richardson
    assert shown[0] == "1.250"


def test_formatting_an_array_with_a_float_spec_says_what_to_do():
    with pytest.raises(TracerConversionError, match="adkit.primal"):
        ad.grad(lambda x: (f"{x:.3f}", np.sum(x))[1])(np.ones(2))


# --- complex numbers, masked arrays, np.matrix -------------------------------------------------------------


@pytest.mark.parametrize("engine", ["forward", "reverse"])
def test_complex_constant_gives_the_right_derivative(engine):
    # |x (3 + 4i)| = 5 |x|: once refused (the engines had no complex rules and gave -1.4)
    assert ad.grad(lambda x: np.abs(x * (3 + 4j)), engine=engine)(1.0) == pytest.approx(5.0, rel=1e-15)
    # |x0 i| + |2 x1| = |x0| + 2 |x1|
    got = ad.grad(lambda x: np.sum(np.abs(x * np.array([1j, 2.0]))), engine=engine)(np.ones(2))
    np.testing.assert_allclose(got, [1.0, 2.0], rtol=1e-15)


@pytest.mark.parametrize("engine", ["symbolic", "paths"])
def test_graph_engines_refuse_complex_intermediates(engine):
    assert "complex" in refusal(engine, lambda x: np.abs(x * (3 + 4j)), 1.0, kind=AdkitTypeError)


def test_numeric_engine_differentiates_complex_intermediates_as_a_black_box():
    # f maps reals to reals; finite differences only call it: d/dx 5|x| = 5 at x = 1
    assert ad.grad(lambda x: np.abs(x * (3 + 4j)), engine="numeric")(1.0) == pytest.approx(5.0, rel=1e-8)


@pytest.mark.parametrize("engine", ENGINES)
@pytest.mark.parametrize(
    "value", [1 + 2j, np.complex128(1.0), np.array([1.0 + 0j, 2.0])], ids=["complex", "np", "array"]
)
def test_complex_input_is_refused(engine, value):
    assert "complex" in refusal(engine, lambda z: np.sum(z * z), value, kind=AdkitTypeError)


def test_numeric_engine_refuses_a_complex_output():
    # d/dx (x i) = i: the real part of a finite difference would give 0
    refusal("numeric", lambda x: x * 1j, 1.0, kind=AdkitTypeError)


def test_complex_step_of_real_functions_still_works():
    assert ad.numeric_grad(np.sin, 0.7, method="complex") == pytest.approx(math.cos(0.7), rel=1e-15)
    report = ad.check_grad(lambda x: np.sum(np.exp(x)), np.array([0.1, 0.2]), grad=np.exp, method="complex")
    assert report.ok


@pytest.mark.filterwarnings("ignore:the matrix subclass:PendingDeprecationWarning")
@pytest.mark.parametrize("engine", ENGINES)
def test_masked_array_and_matrix_inputs_are_refused(engine):
    masked = np.ma.array([1.0, 2.0, 3.0], mask=[0, 1, 0])
    assert "filled" in refusal(engine, lambda x: np.sum(x * x), masked, kind=AdkitTypeError)
    assert "np.asarray" in refusal(engine, lambda x: np.sum(x * x), np.matrix([[1.0, 2.0]]), kind=AdkitTypeError)


@pytest.mark.parametrize("engine", TRACING)
def test_masked_constant_beside_a_traced_value_is_refused(engine):
    masked = np.ma.array([1.0, 2.0], mask=[0, 1])
    refusal(engine, lambda x: np.sum(x * masked), np.ones(2))


# --- the numeric engine and functions that write into their argument ----------------------------------------


def test_numeric_engine_evaluates_a_mutating_f_on_copies():
    def f(x):
        x[0] = x[0] * x[1]  # f(x) = x0 x1 + x2 for the caller
        return x[0] + x[2]

    x = np.array([2.0, 3.0, 5.0])
    g = ad.grad(f, engine="numeric")(x)
    np.testing.assert_allclose(g, [3.0, 2.0, 1.0], rtol=1e-8)  # closed form (x1, x0, 1); Richardson
    np.testing.assert_array_equal(x, [2.0, 3.0, 5.0])  # the caller's array is untouched
    np.testing.assert_allclose(ad.numeric_grad(f, x), [3.0, 2.0, 1.0], rtol=1e-7)  # central differences


def test_numeric_engine_refuses_an_f_that_writes_into_a_constant():
    def f(x, buffer):
        buffer += x
        return np.sum(buffer * buffer)

    buffer = np.ones(2)
    message = refusal("numeric", f, 1.0, buffer, kind=InPlaceUpdateError, builtin=ValueError)
    assert "copy" in message
    np.testing.assert_array_equal(buffer, [1.0, 1.0])


# --- nesting an engine that runs f on plain numbers -------------------------------------------------------------


@pytest.mark.parametrize("inner", ["symbolic", "numeric", "paths"])
def test_nesting_a_plain_number_engine_is_refused(inner):
    with pytest.raises(NestedEngineError, match="forward"):
        ad.grad(lambda x: ad.grad(lambda y: y**3, engine=inner)(x))(2.0)
    with pytest.raises(NestedEngineError):  # a closure over the outer variable: would silently give 0
        ad.grad(lambda x: ad.grad(lambda y: x * y**2, engine=inner)(1.0))(2.0)
    with pytest.raises(TypeError):  # still a TypeError for existing code
        ad.jvp(lambda x: ad.grad(lambda y: y**3, engine=inner)(x), (2.0,), (1.0,))


def test_numeric_grad_inside_a_derivative_is_refused():
    with pytest.raises(NestedEngineError):
        ad.grad(lambda x: ad.numeric_grad(lambda y: y**3, x))(2.0)


def test_nesting_forward_and_reverse_still_works():
    # d/dx [x * d/dy (x y^2) at y = 1] = d/dx 2 x^2 = 4 x
    assert ad.grad(lambda x: x * ad.grad(lambda y: x * y**2, engine="forward")(1.0))(2.0) == 8.0


def test_trace_inside_a_derivative_is_refused():
    with pytest.raises(NestedEngineError):
        ad.grad(lambda x: ad.trace(lambda y: y * 2.0, x).value)(1.0)


# --- budgets and other arguments ---------------------------------------------------------------------------------


@pytest.mark.parametrize("budget", [math.inf, math.nan, -1, 2.5])
def test_paths_budget_must_be_a_finite_count(budget):
    with pytest.raises(ad.AdkitError, match="count_paths") as info:
        with ad.paths_budget(budget):
            pass
    assert isinstance(info.value, ValueError)


def test_paths_budget_accepts_whole_numbers():
    with ad.paths_budget(1e3):
        assert ad.grad(lambda x: x * x * x, engine="paths")(2.0) == 12.0
    with ad.paths_budget(1):
        with pytest.raises(ad.PathBudgetExceeded):
            ad.grad(lambda x: x * x * x, engine="paths")(2.0)


@pytest.mark.parametrize("engine", ENGINES)
def test_bad_arguments_are_adkit_errors(engine):
    refusal(engine, lambda x: x * np.ones(2), 1.0)  # not a scalar output
    refusal(engine, lambda x: x, True)  # a bool
    refusal(engine, lambda x: x, "1.0")  # a string
    with pytest.raises(ad.AdkitError) as info:
        ad.grad(lambda x: x, argnums=3, engine=engine)(1.0)
    assert isinstance(info.value, ValueError)


def test_unknown_engine_and_leaked_tracer_are_adkit_errors():
    with pytest.raises(ad.AdkitError):
        ad.grad(lambda x: x, engine="magic")
    leaked = []
    ad.grad(lambda x: leaked.append(x) or x)(1.0)
    with pytest.raises(ad.LeakedTracerError):
        ad.grad(lambda y: leaked[0] * y)(1.0)


def test_no_bare_builtin_errors_in_the_engines():
    """Every raise in the engines' argument handling and tracing is in the AdkitError
    family (reverse.py's one RuntimeError is an internal invariant, not a refusal)."""
    files = [
        "transforms.py",
        "trees.py",
        "graph.py",
        "ops/core.py",
        "engines/forward.py",
        "engines/symbolic.py",
        "engines/numeric.py",
        "engines/paths.py",
    ]
    bare = re.compile(r"raise (TypeError|ValueError|RuntimeError|FloatingPointError|OverflowError)\(")
    found = [
        f"{name}: {line.strip()}"
        for name in files
        for line in (ROOT / "adkit" / name).read_text().splitlines()
        if bare.search(line)
    ]
    assert not found, "raise an AdkitError subclass (adkit/errors.py) instead:\n" + "\n".join(found)


# --- unsupported functions are named as the user called them --------------------------------------------------------


def _unsupported_message(fn):
    with pytest.raises(ad.UnsupportedFunctionError) as info:
        ad.grad(lambda x: fn(x))(0.5)
    assert isinstance(info.value, TypeError)
    return str(info.value)


def test_a_vectorized_python_function_is_named_as_such():
    message = _unsupported_message(np.frompyfunc(lambda v: v, 1, 1))
    assert message.startswith("the Python function <lambda> vectorized by np.vectorize / np.frompyfunc"), message
    assert "np.<lambda>" not in message
    # np.vectorize runs the Python function on each traced entry (an object array): differentiated
    np.testing.assert_allclose(
        ad.grad(lambda x: np.sum(np.vectorize(lambda v: v * v)(x)))(np.array([0.5, 2.0])), [1.0, 4.0]
    )


@pytest.mark.parametrize(
    ("fn", "names"),
    [
        (np.fft.hfft, ["np.fft.hfft"]),  # its submodule, not numpy's private numpy.fft._pocketfft
        (np.histogram, ["np.histogram"]),
        (np.invert, ["np.bitwise_not", "np.invert"]),  # one ufunc, every name it has
    ],
)
def test_a_numpy_function_is_named_with_its_module(fn, names):
    named = _unsupported_message(fn).split(" is not supported")[0]
    assert all(name in named.split(" / ") for name in names), named


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("digamma", "scipy.special.digamma"),
        ("erf", "scipy.special.erf"),
        ("zeta", "scipy.special.zeta"),
        ("gammaln", "scipy.special.gammaln"),
    ],
)
def test_scipy_functions_are_named_as_scipy_names_them(name, expected):
    special = pytest.importorskip("scipy.special")
    fn = getattr(special, name) if name != "zeta" else lambda x: special.zeta(x + 2.0, 1.0)
    try:
        ad.grad(lambda x: fn(x))(0.5)
    except ad.UnsupportedFunctionError as exc:
        message = str(exc)
    else:  # differentiated: then the registry's tests check its derivative
        pytest.skip(f"scipy.special.{name} is supported by this adkit")
    assert message.startswith(expected), message
    assert not message.startswith("np."), message


def test_supported_list_is_generated_from_the_registry():
    names = supported_names()
    for works in ("np.logaddexp", "np.exp2", "np.conj", "np.conjugate", "np.round", "np.sin", "np.linalg.norm"):
        assert works in names
    assert names == sorted(set(names), key=lambda n: (n.count("."), n))
    message = _unsupported_message(np.histogram)
    assert "np.logaddexp, " in message and "np.conj, " in message


def test_readme_lists_exactly_the_supported_functions():
    """README.md's list is scripts/supported_functions.py's output. Names this numpy (or
    an absent scipy) does not have are skipped: the README is written on numpy 2."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("supported_functions", ROOT / "scripts" / "supported_functions.py")
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)
    listed = script.listed((ROOT / "README.md").read_text())
    here = [name for name in listed if _resolves(name)]
    assert here == supported_names(), "README.md is stale: run .venv/bin/python scripts/supported_functions.py"


def _resolves(name: str) -> bool:
    import importlib

    module, _, attr = name.rpartition(".")
    module = "numpy" + module[2:] if module == "np" or module.startswith("np.") else module
    try:
        return hasattr(importlib.import_module(module), attr)
    except ImportError:
        return False


@pytest.mark.parametrize(
    "name, call",
    [
        ("scipy.linalg.sqrtm", lambda sl, ss, a: np.sum(sl.sqrtm(a))),
        ("scipy.linalg.solve_triangular", lambda sl, ss, a: np.sum(sl.solve_triangular(a, np.ones(2)))),
        ("scipy.linalg.expm", lambda sl, ss, a: np.sum(sl.expm(a))),
        ("scipy.special.logsumexp", lambda sl, ss, a: ss.logsumexp(a)),
        ("scipy.special.log_softmax", lambda sl, ss, a: np.sum(ss.log_softmax(a))),
    ],
)
def test_scipy_functions_that_need_plain_arrays_are_refused_by_name(name, call):
    """scipy.linalg converts its input for LAPACK, and scipy.special's logsumexp / log_softmax
    run numpy code that fails on object arrays: each is refused naming the function the user
    called (not scipy's "object arrays are not supported" or numpy's isfinite TypeError)."""
    sl = pytest.importorskip("scipy.linalg")
    ss = pytest.importorskip("scipy.special")
    a = np.array([[2.0, 0.5], [0.0, 3.0]])
    with pytest.raises(ad.UnsupportedFunctionError, match=rf"^{re.escape(name)} is not supported") as info:
        ad.grad(lambda v: call(sl, ss, v))(a)
    assert isinstance(info.value, ad.AdkitError)
    if name.startswith("scipy.special"):
        assert f"adkit.scipy.special.{name.split('.')[-1]}" in str(info.value)


def test_scipy_special_softmax_still_computes_on_object_arrays():
    """softmax's numpy code works on numpy's object arrays of traced scalars: it is let
    through, and its gradient is the closed form d/dx sum(s**2) = 2 s * (s - sum(s**2))."""
    ss = pytest.importorskip("scipy.special")
    x = np.array([0.1, 0.5, 1.0])
    s = np.exp(x) / np.sum(np.exp(x))
    got = ad.grad(lambda v: np.sum(ss.softmax(v) ** 2))(x)
    np.testing.assert_allclose(got, 2 * s * (s - np.sum(s**2)), rtol=1e-12)
