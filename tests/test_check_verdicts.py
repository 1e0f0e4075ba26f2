"""The checker cannot be fooled: three-valued verdicts (PASSED / FAILED / INCONCLUSIVE).

Every gradient below is hand-written from a closed form (a numpy function's derivative
from calculus, the logistic-regression and softmax cross-entropy gradients from the
textbooks), or a deliberately wrong copy of one; adkit's own engines are never the truth.
A check may only PASS on evidence; f mutating its input, f being noisy, finite differences
straddling a kink, a gradient of the wrong shape or containing NaN must never pass.
"""

import warnings

import numpy as np
import pytest

import adkit as ad
from adkit.check import FAILED, INCONCLUSIVE, PASSED, GradCheckWarning

RNG = np.random.default_rng(2024)
X = RNG.standard_normal((40, 5))
Y = np.sign(RNG.standard_normal(40))  # labels in {-1, +1}


def logistic_loss(w):
    """mean log(1 + exp(-y x.w)), the logistic regression loss."""
    return np.mean(np.log1p(np.exp(-Y * (X @ w))))


def logistic_grad(w):
    """d/dw: -mean(y x sigma(-y x.w)), by hand."""
    return -(X.T @ (Y / (1.0 + np.exp(Y * (X @ w))))) / len(Y)


LABELS = RNG.integers(0, 3, size=40)


def softmax_ce(W):
    """mean cross-entropy of softmax(X W) against LABELS (W: 5 x 3)."""
    z = X @ W
    z = z - z.max(axis=1, keepdims=True)
    return np.mean(np.log(np.exp(z).sum(axis=1)) - z[np.arange(len(z)), LABELS])


def softmax_ce_grad(W):
    """X^T (softmax - onehot) / n, by hand."""
    z = X @ W
    p = np.exp(z - z.max(axis=1, keepdims=True))
    p /= p.sum(axis=1, keepdims=True)
    p[np.arange(len(p)), LABELS] -= 1.0
    return X.T @ p / len(p)


def w0():
    return np.random.default_rng(5).standard_normal(5) * 0.5


def test_the_oracles_pass_and_their_wrong_copies_fail():
    assert ad.check_grad(logistic_loss, w0(), logistic_grad).verdict == PASSED
    W = np.random.default_rng(6).standard_normal((5, 3))
    report = ad.check_grad(softmax_ce, W, softmax_ce_grad)
    assert report.verdict == PASSED and report.ok and report.reasons == []
    wrong = ad.check_grad(softmax_ce, W, lambda W: softmax_ce_grad(W) * len(X))  # a sum where a mean was meant
    assert wrong.verdict == FAILED and not wrong.ok and "fail" in wrong.reasons[0]


def rosenbrock(x):
    return np.sum(100 * (x[1:] - x[:-1] ** 2) ** 2 + (1 - x[:-1]) ** 2)


def rosenbrock_grad(x):  # scipy.optimize.rosen_der's closed form
    g = np.zeros_like(x)
    g[:-1] = -400 * x[:-1] * (x[1:] - x[:-1] ** 2) - 2 * (1 - x[:-1])
    g[1:] += 200 * (x[1:] - x[:-1] ** 2)
    return g


def sinc_grad(x):  # np.sinc(x) = sin(pi x) / (pi x)
    px = np.pi * x
    return (np.cos(px) * px - np.sin(px)) / (np.pi * x**2)


ORACLES = [
    (lambda x: np.sum(np.exp(3 * x)), lambda x: 3 * np.exp(3 * x)),
    (lambda x: np.sum(np.tanh(x) ** 2), lambda x: 2 * np.tanh(x) * (1 - np.tanh(x) ** 2)),
    (lambda x: np.sum(np.polyval([3.0, -2.0, 0.5, 1.0], x)), lambda x: np.polyval([9.0, -4.0, 0.5], x)),
    (rosenbrock, rosenbrock_grad),
    (lambda x: np.sum(np.sinc(x)), sinc_grad),
]


@pytest.mark.parametrize("method", ["central", "forward", "richardson"])
@pytest.mark.parametrize("oracle", range(len(ORACLES)))
def test_right_gradients_pass_and_a_01_percent_error_in_the_largest_entry_fails(oracle, method):
    # the strict rules must not cost false INCONCLUSIVEs on ordinary smooth functions; an
    # error of 1e-3 relative in the largest entry (rho 5e-4) is far above every threshold used
    f, g = ORACLES[oracle]
    for seed in range(4):
        rng = np.random.default_rng(seed)
        x = rng.standard_normal(6) * rng.choice([0.3, 1.0, 2.0])

        def wrong(x):
            out = g(x)
            out[np.argmax(np.abs(out))] *= 1.001
            return out

        assert ad.check_grad(f, x, g, method=method, seed=seed).verdict == PASSED
        assert ad.check_grad(f, x, wrong, method=method, seed=seed).verdict == FAILED


# --- f mutates its input ------------------------------------------------------------------------------------


def mutating_loss(w):
    w += 1.0  # a bug in the user's f: the caller's array moves
    return logistic_loss(w)


def test_a_zero_gradient_never_passes_when_f_mutates_its_input():
    w = w0()
    before = w.copy()
    report = ad.check_grad(mutating_loss, w, lambda w: np.zeros_like(w))
    assert report.verdict == FAILED, report  # f on copies is logistic_loss(w + 1): its gradient is not 0
    assert np.array_equal(w, before)  # the check never lets f touch the caller's array
    assert any("modifies its argument in place" in r for r in report.reasons)


def test_a_right_gradient_of_a_mutating_f_is_inconclusive_and_names_the_entry():
    # evaluated on copies, f is w -> logistic_loss(w + 1), whose gradient is logistic_grad(w + 1):
    # right numbers, yet a function that moves its argument cannot be vouched for
    report = ad.check_grad(mutating_loss, w0(), lambda w: logistic_grad(w + 1.0))
    assert report.verdict == INCONCLUSIVE and not report.ok and report.n_failed == 0, report
    (reason,) = [r for r in report.reasons if "in place" in r]
    assert "x[0] was" in reason and "after the call" in reason, reason
    assert str(report).startswith("gradient check INCONCLUSIVE: f modifies its argument in place")
    with pytest.raises(AssertionError, match="INCONCLUSIVE"):
        ad.assert_grad(mutating_loss, w0(), lambda w: logistic_grad(w + 1.0))


def test_mutation_in_a_dict_of_parameters_is_named_by_its_key():
    def loss(p):
        p["b"][0] = 0.0  # overwrites a bias
        return logistic_loss(p["w"]) + np.sum(p["b"] ** 2)

    p = {"w": w0(), "b": np.array([0.7, -0.3])}
    grad = {"w": logistic_grad(p["w"]), "b": np.array([0.0, -0.6])}  # right for f on copies
    report = ad.check_grad(loss, p, grad)
    assert report.verdict == INCONCLUSIVE and any("b[0] was 0.7" in r for r in report.reasons), report


def test_f_that_modifies_the_data_passed_as_args_is_inconclusive():
    def loss(w, X):
        X *= 1.0001  # drifts the data on every call
        return np.mean(np.log1p(np.exp(-Y * (X @ w))))

    data = X.copy()
    report = ad.check_grad(loss, w0(), lambda w, X: logistic_grad(w), args=(data,))
    assert report.verdict != PASSED and any("args= in place" in r for r in report.reasons), report


# --- f is noisy ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("scale", [1.0, 1e-1, 1e-2])
def test_a_noisy_f_never_passes_a_wrong_gradient(scale):
    # noise of 1e-3 on f: the finite-difference error estimate is huge, and today's rule
    # "|Ge - Ga| <= 3 x FD error" let a zero gradient through
    for seed in range(4):
        noise = np.random.default_rng(seed)
        f = lambda w, noise=noise: scale * logistic_loss(w) + 1e-3 * noise.standard_normal()
        for wrong in (lambda w: np.zeros_like(w), lambda w: -scale * logistic_grad(w)):
            report = ad.check_grad(f, w0(), wrong, seed=seed)
            assert report.verdict != PASSED, report
            assert any("not deterministic" in h and "calls at the same point returned" in h for h in report.hints)


def test_a_noisy_f_with_a_right_gradient_is_inconclusive_with_the_reason():
    noise = np.random.default_rng(3)
    f = lambda w: 1e-2 * logistic_loss(w) + 1e-3 * noise.standard_normal()
    report = ad.check_grad(f, w0(), lambda w: 1e-2 * logistic_grad(w))
    assert report.verdict == INCONCLUSIVE, report
    assert any("too noisy" in r for r in report.reasons) and report.n_failed == 0


def test_a_slightly_noisy_f_still_passes_a_right_gradient_when_the_noise_is_resolvable():
    # relative noise 1e-10 (an iterative solver's tolerance): finite differences with steps
    # chosen from the measured noise resolve the gradient to ~1e-5, far below its size
    noise = np.random.default_rng(4)
    f = lambda W: softmax_ce(W) * (1 + 1e-10 * noise.standard_normal())
    W = np.random.default_rng(6).standard_normal((5, 3))
    assert ad.check_grad(f, W, softmax_ce_grad).verdict == PASSED
    assert ad.check_grad(f, W, lambda W: 1.01 * softmax_ce_grad(W)).verdict == FAILED


# --- wrong shapes, structures, NaN ---------------------------------------------------------------------------


def test_a_gradient_of_the_wrong_shape_or_structure_is_failed_with_the_mismatch_named():
    w = w0()
    short = ad.check_grad(logistic_loss, w, lambda w: logistic_grad(w)[:4])
    assert short.verdict == FAILED and "shape (4,)" in short.problems[0]
    column = ad.check_grad(logistic_loss, w, lambda w: logistic_grad(w)[:, None])
    assert column.verdict == FAILED and "shape (5, 1)" in column.problems[0]
    p = {"w": w, "b": 0.3}
    loss = lambda p: logistic_loss(p["w"]) + p["b"] ** 2
    as_list = ad.check_grad(loss, p, lambda p: [logistic_grad(p["w"]), 2 * p["b"]])
    assert as_list.verdict == FAILED and "structure differs" in as_list.problems[0], as_list
    assert "a dict with keys w, b" in as_list.problems[0] and "a list of 2" in as_list.problems[0]
    nothing = ad.check_grad(logistic_loss, w, lambda w: None)
    assert nothing.verdict == FAILED
    complex_grad = ad.check_grad(logistic_loss, w, lambda w: logistic_grad(w) + 0j)  # casting would hide it
    assert complex_grad.verdict == FAILED and "is complex" in complex_grad.problems[0]


def test_nan_in_the_users_gradient_is_failed_never_passed():
    def nan_at_2(w):
        g = logistic_grad(w)
        g[2] = np.nan
        return g

    report = ad.check_grad(logistic_loss, w0(), nan_at_2)
    assert report.verdict == FAILED and [e.entry for e in report.failures] == ["x[2]"]
    assert report.failures[0].status == "FAIL (analytic not finite)"
    all_nan = ad.check_grad(logistic_loss, w0(), lambda w: np.full(5, np.nan))
    assert all_nan.verdict == FAILED and all_nan.n_failed == 5


# --- kinks ---------------------------------------------------------------------------------------------------


def relu_sum(x):
    return np.sum(np.maximum(x, 0.0) * np.array([1.0, 2.0, 3.0]))


def relu_sum_grad(x):
    return np.where(x > 0, 1.0, 0.0) * np.array([1.0, 2.0, 3.0])


@pytest.mark.parametrize("offset_in_steps", [0.3, 0.7, -0.3, -0.7])
def test_a_right_relu_gradient_near_a_kink_is_never_failed(offset_in_steps):
    # central differences use h ~ eps^(1/3) ~ 6e-6 here: x[1] within one step of relu's kink
    # makes them straddle it. The point is not moved: the verdict is INCONCLUSIVE, naming the kink
    x = np.array([0.8, offset_in_steps * 6.06e-6, -1.3])
    report = ad.check_grad(relu_sum, x, relu_sum_grad)
    assert report.verdict == INCONCLUSIVE and report.n_failed == 0, report
    assert any("kink lies within one finite-difference step" in r for r in report.reasons)
    assert [e.entry for e in report.inconclusive] == ["x[1]"]
    # a wrong value there cannot pass either
    wrong = ad.check_grad(relu_sum, x, lambda x: relu_sum_grad(x) + np.array([0.0, 7.0, 0.0]))
    assert wrong.verdict != PASSED


def test_a_kink_much_closer_than_a_step_counts_as_at_the_point():
    # 0.05 steps from the kink the one-sided slopes are steady at h and h/2: the kink rule
    # applies (a value between the slopes passes), as for a kink exactly at x
    x = np.array([0.8, 0.05 * 6.06e-6, -1.3])
    report = ad.check_grad(relu_sum, x, relu_sum_grad)
    assert report.verdict == PASSED and [e.entry for e in report.kinks] == ["x[1]"], report
    assert ad.check_grad(relu_sum, x, lambda x: relu_sum_grad(x) + np.array([0.0, 7.0, 0.0])).verdict == FAILED


# --- the report tells the truth about precision; warnings point at the user's line ---------------------------


def sin_sq_in_float32(x):
    """sum(sin(x)^2) computed in float32 inside, returned as a float64 Python float."""
    return float(np.sum(np.sin(np.asarray(x, dtype=np.float32)) ** 2))


def sin_sq_grad(x):
    return np.sin(2.0 * np.asarray(x, dtype=np.float64))  # d/dx sin(x)^2 = sin(2x)


def test_fd_dtype_float64_on_an_f_that_computes_in_float32_says_so():
    x32 = np.linspace(0.1, 2.0, 6).astype(np.float32)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        report = ad.check_grad(sin_sq_in_float32, x32, sin_sq_grad, fd_dtype="float64")
    assert report.verdict == PASSED, report
    text = str(report)
    assert "precision: f computes in float32" in text and "is a float32 number" in text
    assert (
        "eps of float32 (f computes in float32)" in report.numeric_side and "inputs in float64" in report.numeric_side
    )
    assert report.threshold == 1e-3  # float32's threshold, not the 1e-4 fd_dtype='float64' would allow
    assert min(e.step for e in report.entries) > 1e-4  # float32 steps ~ eps32^(1/3) ~ 5e-3, not 6e-6
    assert caught and all(w.filename == __file__ for w in caught), [(w.filename, str(w.message)) for w in caught]
    assert any("f computes in float32" in str(w.message) for w in caught)
    with pytest.warns(GradCheckWarning):
        wrong = ad.check_grad(sin_sq_in_float32, x32, lambda x: 1.01 * sin_sq_grad(x), fd_dtype="float64")
    assert wrong.verdict == FAILED  # rho 5e-3: above float32's threshold


def test_float64_parameters_and_a_float32_output_dtype():
    f = lambda x: np.sum(np.sin(x.astype(np.float32)) ** 2)  # returns np.float32
    with pytest.warns(GradCheckWarning, match="f computes in float32 \\(f returns float32\\)") as record:
        report = ad.check_grad(f, np.linspace(0.1, 2.0, 6), sin_sq_grad)
    assert report.verdict == PASSED and report.threshold == 1e-3
    assert all(w.filename == __file__ for w in record)


def test_warnings_point_at_the_users_line_through_assert_grad_and_the_fixture():
    from adkit.pytest_plugin import GradChecker

    p32 = w0().astype(np.float32)
    f32 = lambda w: logistic_loss(w.astype(np.float64)).astype(np.float32)
    g32 = lambda w: logistic_grad(w.astype(np.float64)).astype(np.float32)
    for run in (
        lambda: ad.check_grad(f32, p32, g32),
        lambda: ad.assert_grad(f32, p32, g32),
        lambda: GradChecker()(f32, p32, g32),
        lambda: GradChecker().report(f32, p32, g32),
    ):
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            run()
        assert caught and all(w.filename == __file__ for w in caught), [w.filename for w in caught]


# --- taylor_test ---------------------------------------------------------------------------------------------


A1000 = np.random.default_rng(0).standard_normal(1000)
X1000 = np.random.default_rng(1).standard_normal(1000)


def f1000(x):
    return np.sum(np.sin(x) * A1000) + 0.5 * np.sum(x**2)


def g1000(x):
    return np.cos(x) * A1000 + x


@pytest.mark.parametrize("error", [1.0, 1e-2, 1e-3])
def test_taylor_one_wrong_entry_of_1000_never_passes_for_any_seed(error):
    # an entry of size ~1 off by 1e-3: along one random direction its O(h) term shows only
    # below h ~ 1e-6 (so the steps go down to the round-off floor), and a direction that
    # barely moves that entry hides it (so several directions are used)
    def wrong(x):
        g = g1000(x)
        g[123] += error
        return g

    for seed in range(25):
        result = ad.taylor_test(f1000, X1000, wrong, seed=seed)
        assert result.verdict != PASSED and not result.ok, (seed, str(result))


def test_taylor_right_gradients_pass_for_every_seed():
    for seed in range(25):
        assert ad.taylor_test(f1000, X1000, g1000, seed=seed).verdict == PASSED
        assert ad.taylor_test(logistic_loss, w0(), logistic_grad, seed=seed).verdict == PASSED


def test_taylor_reports_every_direction_and_refuses_nan():
    result = ad.taylor_test(softmax_ce, np.ones((5, 3)) * 0.1, lambda W: softmax_ce_grad(W) * 1.5)
    assert result.verdict == FAILED and len(result.directions) == 4 and result.reasons
    assert "4 direction(s)" in str(result) and result.to_dict()["directions"][0]["outcome"] == "fail"
    with pytest.raises(ValueError, match="not finite"):
        ad.taylor_test(logistic_loss, w0(), lambda w: np.full(5, np.nan))
    with pytest.raises(ValueError, match="directions"):
        ad.taylor_test(logistic_loss, w0(), logistic_grad, directions=0)


# --- the pytest fixture ----------------------------------------------------------------------------------------

pytest_plugins = ["pytester"]

FIXTURE_TESTS = """
import numpy as np

def loss(w):
    w += 1.0  # mutates its argument
    return np.sum(np.sin(w) * w)

def right_on_copies(w):
    v = w + 1.0
    return np.cos(v) * v + np.sin(v)

def test_inconclusive_fails(grad_check):
    grad_check(loss, np.array([0.3, -1.2, 2.0]), right_on_copies)

def test_float32_warning_points_here(grad_check):
    w = np.array([0.3, -1.2], dtype=np.float32)
    grad_check(lambda w: np.sum(w ** 2), w, lambda w: 2 * w)  # WARNING LINE
"""


def test_the_fixture_fails_an_inconclusive_check_and_warns_at_the_users_line(pytester):
    path = pytester.makepyfile(test_fixture=FIXTURE_TESTS)
    result = pytester.runpytest("-p", "no:cacheprovider", "-W", "always::UserWarning")
    result.assert_outcomes(passed=1, failed=1)
    out = result.stdout.str()
    assert "gradient check INCONCLUSIVE: f modifies its argument in place: x[0] was 0.3" in out
    line = next(n for n, text in enumerate(FIXTURE_TESTS.lstrip("\n").splitlines(), 1) if "WARNING LINE" in text)
    assert f"test_fixture.py:{line}: GradCheckWarning" in out, out
    assert "pytest_plugin.py" not in out and path.exists()


def test_nothing_to_check_is_inconclusive_not_passed():
    report = ad.check_grad(lambda x: np.sum(x) + 1.0, np.zeros(0), lambda x: np.zeros(0))
    assert report.verdict == INCONCLUSIVE and report.reasons == ["nothing was checked (params has no entries)"]
