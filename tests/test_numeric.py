"""The numeric engine: finite differences on black-box callables.

Tolerances follow from the step rule (module doc of adkit.engines.numeric), for functions
whose derivatives are O(1) at the test points:
  forward / backward  h = eps^(1/2): truncation ~ h |f''| / 2 ~ 1e-8, round-off ~ eps / h ~ 1e-8
  central             h = eps^(1/3): truncation ~ h^2 |f'''| / 6 ~ 1e-11, round-off ~ 4e-11
  richardson          h = eps^(1/5), h/2, h/4: O(h^6) truncation, round-off ~ 4 eps / h ~ 1e-12
  complex             no cancellation: a few ulps of the derivative
Each tolerance below is about 100x the estimate, except where a test compares methods.
"""

import math

import numpy as np
import pytest

import adkit as ad
from adkit.engines import numeric as nm

# (f, exact derivative, points): smooth, with O(1) derivatives at the points
SMOOTH = [
    (lambda x: np.sin(x) * np.exp(x), lambda x: (np.cos(x) + np.sin(x)) * np.exp(x), [-1.3, 0.0, 0.7, 2.0]),
    (lambda x: np.log(x) * x**2, lambda x: 2 * x * np.log(x) + x, [0.5, 1.0, 3.0]),
    (lambda x: np.tanh(x) ** 3, lambda x: 3 * np.tanh(x) ** 2 * (1 - np.tanh(x) ** 2), [-0.8, 0.3, 1.1]),
    (lambda x: 1.0 / (1.0 + x**2), lambda x: -2 * x / (1 + x**2) ** 2, [-2.0, 0.5, 1.5]),
]
TOL = {"forward": 1e-6, "backward": 1e-6, "central": 1e-8, "richardson": 1e-10, "complex": 1e-14}


@pytest.mark.parametrize("method", nm.METHODS)
def test_each_method_against_closed_forms(method):
    for f, df, points in SMOOTH:
        for x in points:
            g = nm.numeric_grad(f, x, method=method)
            assert isinstance(g, float)
            assert abs(g - df(x)) <= TOL[method] * max(1.0, abs(df(x))), (method, x, g, df(x))


@pytest.mark.parametrize("method", nm.METHODS)
def test_error_estimates_bracket_the_true_error(method):
    # the estimate must be an upper bound of |computed - exact| (that is what the checker
    # relies on to never blame a correct gradient), and not a uselessly loose one
    worst_ratio = 0.0
    for f, df, points in SMOOTH:
        x = np.array(points)
        g, err = nm.numeric_grad(lambda v: np.sum(f(v)), x, method=method, return_error=True)
        true = np.abs(g - df(x))
        assert np.all(true <= err), (method, true, err)
        worst_ratio = max(worst_ratio, float(np.max(err / np.maximum(np.abs(df(x)), 1.0))))
    assert worst_ratio < 100 * TOL[method]


def test_step_rule_documented_powers_of_eps():
    eps64, eps32 = np.finfo(np.float64).eps, np.finfo(np.float32).eps
    x = np.array([0.0, 0.5, -3.0, 1e300])
    assert np.allclose(nm.step_size(x, "central"), eps64 ** (1 / 3) * np.maximum(1, np.abs(x)))
    assert np.allclose(nm.step_size(x, "forward"), eps64 ** (1 / 2) * np.maximum(1, np.abs(x)))
    assert np.allclose(
        nm.step_size(x[:3].astype(np.float32), "central"), eps32 ** (1 / 3) * np.maximum(1, np.abs(x[:3]))
    )


# points representable in each dtype (1e300 only in float64)
_STEP_POINTS = [
    (dtype, x)
    for dtype in (np.float64, np.float32, np.float16)
    for x in (0.0, 1.0, -1.0, 3.0e-8, 1e4, -7.5e3, 1e300, 5e-324)
    if abs(x) <= float(np.finfo(dtype).max) / 2
]


@pytest.mark.parametrize(("dtype", "x"), _STEP_POINTS)
@pytest.mark.parametrize("method", ["forward", "central", "richardson"])
def test_step_never_leaves_x_unmoved(dtype, x, method):
    xd = dtype(x)
    h = float(nm.step_size(xd, method, dtype=dtype))
    for sign in (1, -1):
        for scale in (1.0, 0.5, 0.25, 1e-30):  # the rule's step, the halved ones, and a far too small one
            xs, moved = nm.rounded_step(xd, h * scale, sign, dtype)
            assert xs != xd and moved > 0
            # the step taken is exactly the distance between the two representable points
            assert moved == abs(float(xs) - float(xd))
            assert type(xs) is np.dtype(dtype).type


def test_huge_and_zero_points_give_right_derivatives():
    # at 1e300 the step is ~6e294 (relative); f = x^2 / 1e300 has derivative 2 x / 1e300 = 2
    g = nm.numeric_grad(lambda x: (x / 1e150) ** 2, 1e300)
    assert abs(g - 2.0) < 1e-8
    assert nm.numeric_grad(lambda x: np.sin(x), 0.0) == pytest.approx(1.0, abs=1e-10)
    g32 = nm.numeric_grad(lambda x: np.sum(np.sin(x)), np.array([0.0, 1e4, 1.0], dtype=np.float32))
    assert g32.dtype == np.float32
    # float32 central differences: about eps32^(2/3) ~ 2.4e-5 relative, x |f''| / |f'| at 1e4
    assert np.allclose(g32[[0, 2]], np.cos([0.0, 1.0]), atol=1e-3)


def test_complex_step_accuracy():
    f = lambda x: np.exp(x) / np.sqrt(np.sin(x) ** 3 + np.cos(x) ** 3)  # Squire & Trapp's test function
    x = 1.5
    exact = float(
        np.exp(x)
        * (np.sin(x) ** 3 + np.cos(x) ** 3 - 0.5 * (3 * np.sin(x) ** 2 * np.cos(x) - 3 * np.cos(x) ** 2 * np.sin(x)))
        / (np.sin(x) ** 3 + np.cos(x) ** 3) ** 1.5
    )
    g = nm.numeric_grad(f, x, method="complex")
    assert abs(g - exact) <= 4 * np.finfo(float).eps * abs(exact)  # to round-off
    c = nm.numeric_grad(f, x, method="central")
    assert abs(c - exact) > 100 * abs(g - exact)  # central differences are far worse here


@pytest.mark.parametrize(
    "f, op",
    [
        (lambda x: np.sum(np.abs(x) * x), "abs"),
        (lambda x: np.sum(ad.relu(x) ** 2), "relu"),
        (lambda x: np.sum(np.maximum(x, 0.5) * x), "maximum"),
    ],
)
def test_complex_step_refuses_non_analytic_ops_and_names_them(f, op):
    with pytest.raises(ValueError, match=rf"`{op}`.*complex_step=False"):
        nm.numeric_grad(f, np.array([0.3, -1.2]), method="complex")
    # a Python float input too (traced as a 0-d array: the scalar fast paths record no op)
    with pytest.raises(ValueError, match=rf"`{op}`"):
        nm.numeric_grad(f, 0.7, method="complex")


def test_complex_step_refuses_a_black_box_that_drops_the_imaginary_part():
    def black_box(x):  # float() cannot be traced by adkit; on complex input it drops Im
        return float(np.real(np.sin(x))) * 2.0

    with pytest.raises(ValueError, match="real result"):
        nm.numeric_grad(black_box, 0.3, method="complex")
    # a traceable analytic function is accepted
    assert nm.numeric_grad(lambda x: np.sin(x) * 2.0, 0.3, method="complex") == pytest.approx(
        2 * math.cos(0.3), rel=1e-15
    )


def test_richardson_beats_central():
    for f, df, points in SMOOTH:
        x = np.array(points)
        ex = df(x)
        c = nm.numeric_grad(lambda v: np.sum(f(v)), x, method="central")
        r = nm.numeric_grad(lambda v: np.sum(f(v)), x, method="richardson")
        assert np.max(np.abs(r - ex)) < np.max(np.abs(c - ex)) / 5


def test_pytrees_argnums_and_the_engine_hook():
    def f(p, s):
        return np.sum(p["w"] ** 2) * s + np.sin(p["b"][0]) * p["b"][1]

    p = {"w": np.array([1.0, -2.0]), "b": [0.5, np.array(3.0)]}
    gp, gs = nm.numeric_grad(f, p, 1.5, argnums=(0, 1))
    assert set(gp) == {"w", "b"} and isinstance(gp["b"], list) and isinstance(gp["b"][0], float)
    assert np.allclose(gp["w"], 2 * p["w"] * 1.5, atol=1e-8)
    assert gp["b"][0] == pytest.approx(math.cos(0.5) * 3.0, abs=1e-8)
    assert gs == pytest.approx(5.0, abs=1e-8)
    # adkit.grad(engine="numeric") (Richardson) agrees with reverse mode to ~1e-10
    num = ad.grad(f, argnums=(0, 1), engine="numeric")(p, 1.5)
    rev = ad.grad(f, argnums=(0, 1))(p, 1.5)
    assert np.allclose(num[0]["w"], rev[0]["w"], atol=1e-9) and num[1] == pytest.approx(rev[1], abs=1e-9)
    v, g = ad.value_and_grad(lambda x: x**3, engine="numeric")(2.0)
    assert v == 8.0 and g == pytest.approx(12.0, abs=1e-9)
    with pytest.raises(TypeError, match="scalar"):
        ad.grad(lambda x: x * 2, engine="numeric")(np.ones(2))


def test_jacobian_shape_convention_matches_adkit():
    A = np.arange(6.0).reshape(2, 3)
    f = lambda x: np.tanh(A @ x)
    x = np.array([0.1, -0.2, 0.3])
    jn, err = nm.numeric_jacobian(f, x, return_error=True)
    jr = ad.jacobian(f)(x)
    assert jn.shape == jr.shape == (2, 3) and err.shape == (2, 3)
    assert np.allclose(jn, jr, atol=1e-8) and np.all(np.abs(jn - jr) <= err)
    M = nm.numeric_jacobian(lambda m: m @ m, np.eye(2) + 0.1)
    assert M.shape == (2, 2, 2, 2)


def test_domain_edge_falls_back_to_one_sided():
    x = 4e-6  # log is not defined at x - h for the central step 6e-6
    with np.errstate(invalid="ignore"):
        g = nm.numeric_grad(np.log, x)
    # a forward difference with h ~ 6e-6 > x: rough (the slope of log over [x, x+h]), but finite
    assert math.isfinite(g) and (math.log(x + 6.06e-6) - math.log(x)) / 6.06e-6 == pytest.approx(g, rel=1e-2)
    with np.errstate(all="ignore"):
        assert math.isfinite(nm.numeric_grad(np.sqrt, 0.0))


def test_black_box_functions_work():
    def f(x):  # not traceable by adkit (float(), math, a Python loop over values)
        return sum(math.sin(float(v)) ** 2 for v in x)

    x = np.array([0.3, 1.1])
    assert np.allclose(nm.numeric_grad(f, x), np.sin(2 * x), atol=1e-9)
    with pytest.raises(Exception):  # noqa: B017 (whatever adkit raises: it cannot trace float())
        ad.grad(f)(x)


def test_measure_noise_finds_injected_noise():
    rng = np.random.default_rng(0)
    clean = nm.Point(lambda v: np.sum(np.sin(v[0])), [np.linspace(0.1, 1, 5)])
    sigma = float(nm.measure_noise(clean))
    assert sigma < 1e-14  # round-off only
    for level in (1e-12, 1e-8):
        noisy = nm.Point(
            lambda v, level=level: np.sum(np.sin(v[0])) + level * rng.standard_normal(), [np.linspace(0.1, 1, 5)]
        )
        sigma = float(nm.measure_noise(noisy))
        assert level / 4 < sigma < level * 4  # 2 lines x 5 fourth differences: a rough estimate


def test_callers_arrays_are_never_modified():
    x = np.array([1.0, 2.0, 3.0])
    before = x.copy()
    nm.numeric_grad(lambda v: np.sum(v**2), x, method="richardson")
    nm.numeric_grad(lambda v: np.sum(v**2), x, method="complex")
    assert np.array_equal(x, before)
