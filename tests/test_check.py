"""Gradient checking: check_grad, assert_grad, taylor_test, check_every, `adkit check`, the
pytest plugin.

The wrong gradients below are the usual hand-derivation bugs, each planted on a correct
gradient; each test asserts the check fails *and* that the report names the reason. The
thresholds are check_grad's defaults (1e-6 on rho for float64, 1e-3 for float32, 1e-3
at kinks); the planted errors are far above them (a 1% scale gives rho = 5e-3) and
correct gradients sit far below (central differences are good to ~1e-10 here).
"""

import json
import subprocess
import sys
import warnings

import numpy as np
import pytest

import adkit as ad
from adkit.check import GradCheckReport, GradCheckWarning, check_every

pytest_plugins = ["pytester"]

# --- a small tanh network with a hand-written gradient ------------------------------------------------

RNG = np.random.default_rng(7)
X = RNG.standard_normal((12, 4))
Y = RNG.standard_normal(12)


def mlp_loss(p):
    h = np.tanh(X @ p["W"] + p["b"])
    return np.mean((h @ p["v"] - Y) ** 2)


def mlp_grad(p):
    z = X @ p["W"] + p["b"]
    h = np.tanh(z)
    dout = 2 * (h @ p["v"] - Y) / len(Y)
    dz = np.outer(dout, p["v"]) * (1 - h**2)
    return {"W": X.T @ dz, "b": dz.sum(axis=0), "v": h.T @ dout}


def mlp_params(seed=0, n_hidden=3):
    rng = np.random.default_rng(seed)
    return {
        "W": rng.standard_normal((4, n_hidden)),
        "b": rng.standard_normal(n_hidden),
        "v": rng.standard_normal(n_hidden),
    }


def planted(change):
    def g(p):
        out = {k: np.array(v) for k, v in mlp_grad(p).items()}
        change(out)
        return out

    return g


# --- correct gradients pass --------------------------------------------------------------------------------


def test_correct_gradients_pass_in_every_form():
    p = mlp_params()
    for grad in (mlp_grad, mlp_grad(p), None):  # a callable, precomputed arrays, adkit's reverse engine
        report = ad.check_grad(mlp_loss, p, grad)
        assert report.ok, report
        assert report.n_checked == report.n_total == 4 * 3 + 3 + 3
        assert report.max_rel_error < 1e-7  # central differences ~1e-10 relative here
    # lists / tuples / Python floats as parameters
    f = lambda p: np.sin(p[0]) * np.sum(p[1] ** 2)
    g = lambda p: [np.cos(p[0]) * np.sum(p[1] ** 2), 2 * np.sin(p[0]) * p[1]]
    report = ad.check_grad(f, [0.3, np.array([1.0, -2.0])], g)
    assert report.ok and [e.entry for e in report.entries] == ["params[0]", "params[1][0]", "params[1][1]"]
    assert ad.assert_grad(f, (0.3, np.array([1.0, -2.0])), g).ok


@pytest.mark.parametrize("method", ["central", "forward", "backward", "richardson", "complex"])
def test_every_method_accepts_a_correct_gradient(method):
    report = ad.check_grad(mlp_loss, mlp_params(1), mlp_grad, method=method)
    assert report.ok, report


def test_noise_in_f_never_blames_a_correct_gradient():
    # f's values carry relative noise 1e-9 (as if computed in a noisy solver): far above
    # float64 round-off, so the step rule's steps are below the noise; the noise probe
    # must notice, enlarge the steps and say so, and no entry may be blamed
    for seed in range(5):
        noise = np.random.default_rng(100 + seed)
        f = lambda p, noise=noise: mlp_loss(p) * (1 + 1e-9 * noise.standard_normal())
        report = ad.check_grad(f, mlp_params(seed), mlp_grad, seed=seed)
        assert report.ok, report
        assert any("step below noise" in h for h in report.hints)


def test_jacobians_are_checked_for_array_outputs():
    A = np.array([[1.0, 2.0, 0.5], [0.0, -1.0, 3.0]])
    f = lambda x: np.tanh(A @ x)
    jac = lambda x: (1 - np.tanh(A @ x) ** 2)[:, None] * A
    x = np.array([0.2, -0.1, 0.4])
    report = ad.check_grad(f, x, jac)
    assert report.ok and report.n_checked == 6
    assert report.entries[0].entry == "x[0] -> out[0]"
    assert ad.check_grad(f, x).ok  # grad=None: adkit.jacobian, reverse mode
    bad = ad.check_grad(f, x, lambda x: jac(x).T)
    assert not bad.ok and "wrong order" in bad.problems[0]


# --- wrong gradients fail, each for its own reason ----------------------------------------------------------


def test_scaled_by_1_01_fails_as_a_constant_factor():
    def scale(g):
        g["W"] *= 1.01

    report = ad.check_grad(mlp_loss, mlp_params(), planted(scale))
    assert not report.ok
    assert report.n_failed == 12 and all(e.param == "W" for e in report.failures)
    assert report.max_rel_error == pytest.approx(0.01 / 2.01, rel=1e-3)  # rho of a 1% scale
    assert any(d.startswith("W: analytic = 1.01 x numeric") and "constant factor" in d for d in report.diagnosis)


def test_one_entry_dropped_fails_as_a_missing_term():
    def drop(g):
        g["W"][2, 1] = 0.0

    report = ad.check_grad(mlp_loss, mlp_params(), planted(drop))
    assert not report.ok and [e.entry for e in report.failures] == ["W[2, 1]"]
    assert "missing term" in report.diagnosis[0] and "W[2, 1]" in report.diagnosis[0]
    # ... or literally dropped from the array: a structural problem that says so
    short = ad.check_grad(mlp_loss, mlp_params(), planted(lambda g: g.update(b=g["b"][:-1])))
    assert not short.ok and "one entry short" in short.problems[0]


def test_two_entries_swapped_fails_as_a_swap():
    def swap(g):
        g["v"][[0, 2]] = g["v"][[2, 0]]

    report = ad.check_grad(mlp_loss, mlp_params(), planted(swap))
    assert not report.ok and {e.entry for e in report.failures} == {"v[0]", "v[2]"}
    assert any("swapped" in d and "v[0]" in d and "v[2]" in d for d in report.diagnosis)


def test_transposed_matrix_gradient_fails_as_transposed():
    # a non-square W: the transpose has the wrong shape, and matches once transposed back
    report = ad.check_grad(mlp_loss, mlp_params(), planted(lambda g: g.update(W=g["W"].T)))
    assert not report.ok and "shape (3, 4)" in report.problems[0]
    assert "transposed" in report.diagnosis[0]
    # a square matrix: same shape, wrong entries
    S = np.random.default_rng(3).standard_normal((3, 3))
    f = lambda M: np.sum(np.sin(M @ S))
    g = lambda M: np.cos(M @ S) @ S.T
    M = np.random.default_rng(4).standard_normal((3, 3))
    assert ad.check_grad(f, M, g).ok
    bad = ad.check_grad(f, M, lambda M: g(M).T)
    assert not bad.ok and "transposed" in bad.diagnosis[0]


def test_sign_flip_fails_as_a_sign_flip():
    report = ad.check_grad(mlp_loss, mlp_params(), planted(lambda g: g.update(b=-g["b"])))
    assert not report.ok and {e.param for e in report.failures} == {"b"}
    assert any(d.startswith("b:") and "sign is flipped" in d for d in report.diagnosis)


def test_sparse_error_is_named_by_the_projection_recheck():
    # one wrong entry among 20,000: a sample of 20 per parameter almost surely misses it,
    # the projection sees that W is wrong and the bisection names the entry
    rng = np.random.default_rng(5)
    A = rng.standard_normal((30, 100))
    W0 = rng.standard_normal((100, 200)) * 0.1
    f = lambda W: np.sum(np.tanh(A @ W) ** 2)

    def g(W):
        t = np.tanh(A @ W)
        out = A.T @ (2 * t * (1 - t**2))
        out[17, 123] += 1e-3 * np.abs(out).max()
        return out

    sampled = ad.check_grad(f, W0, g, sample=20)
    assert sampled.ok and any("sampled 20 entries" in h for h in sampled.hints)  # the honest caveat
    report = ad.check_grad(f, W0, g, mode="projection")
    assert not report.ok
    assert [e.entry for e in report.failures if not e.projection] == ["x[17, 123]"]
    assert "projection fails" in report.diagnosis[0] and "x[17, 123]" in report.diagnosis[0]
    assert report.n_evaluations < 400  # bisection, not 4 x 20,000 evaluations


def test_structural_problems_are_reported():
    p = mlp_params()
    missing = ad.check_grad(mlp_loss, p, lambda p: {"W": mlp_grad(p)["W"], "v": mlp_grad(p)["v"]})
    assert not missing.ok and "no entry for parameter 'b'" in missing.problems[0]
    extra = ad.check_grad(mlp_loss, p, lambda p: {**mlp_grad(p), "c": np.zeros(2)})
    assert not extra.ok and "'c'" in extra.problems[0]


# --- kinks ---------------------------------------------------------------------------------------------------


def relu_net(seed):
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((10, 4))
    y = rng.standard_normal(10)
    p = {"W": rng.standard_normal((4, 5)), "b": rng.standard_normal(5), "v": rng.standard_normal(5)}
    p["b"][1] = -(X @ p["W"])[3, 1]  # hidden unit 1 sits exactly at its kink (z = 0) for sample 3

    def loss(p):
        return np.sum((np.maximum(X @ p["W"] + p["b"], 0.0) @ p["v"] - y) ** 2)

    def grad(p, slope_at_zero=0.0):
        z = X @ p["W"] + p["b"]
        h = np.maximum(z, 0.0)
        r = 2 * (h @ p["v"] - y)
        dz = np.outer(r, p["v"]) * np.where(z > 0, 1.0, np.where(z == 0, slope_at_zero, 0.0))
        return {"W": X.T @ dz, "b": dz.sum(axis=0), "v": h.T @ r}

    return loss, grad, p


@pytest.mark.parametrize("seed", range(5))
def test_relu_unit_at_a_kink_passes_by_the_kink_rule_and_says_so(seed):
    loss, grad, p = relu_net(seed)
    # a hand-written gradient with relu'(0) = 0 (the left slope), and adkit's reverse engine
    # (np.maximum(z, 0) at a tie gives each input half: the average of the slopes)
    for g in (None, grad):
        report = ad.check_grad(loss, p, g, seed=seed)
        assert report.ok, report
        # exactly the entries feeding unit 1 sit at the kink: W[:, 1] and b[1]
        assert {e.entry for e in report.kinks} == {"W[0, 1]", "W[1, 1]", "W[2, 1]", "W[3, 1]", "b[1]"}
        assert all(e.status.startswith("kink ok") for e in report.kinks)
        assert "kinks detected" in str(report) and any("kink suspected" in h for h in report.hints)
    # central differences alone would blame relu'(0) = 0: at the kink they average the slopes
    b1 = next(e for e in report.kinks if e.entry == "b[1]")
    assert b1.status == "kink ok (left slope)"
    assert abs(b1.numeric - b1.analytic) / abs(b1.numeric + b1.analytic) > 1e-3
    # a value outside the one-sided slopes is not a subgradient: it fails, at the kink
    bad = ad.check_grad(loss, p, lambda q: grad(q, slope_at_zero=3.0), seed=seed)
    assert not bad.ok and all(e.status == "kink FAIL" for e in bad.failures)


def test_no_kinks_are_reported_for_smooth_functions():
    for seed in range(10):
        report = ad.check_grad(mlp_loss, mlp_params(seed), mlp_grad, seed=seed)
        assert report.ok and report.n_kinks == 0


# --- Taylor test ---------------------------------------------------------------------------------------------


def test_taylor_rates_two_for_right_one_for_wrong():
    p = mlp_params(2)
    right = ad.taylor_test(mlp_loss, p, mlp_grad)
    assert right.ok and 1.9 < right.rate < 2.1, right
    wrong = ad.taylor_test(mlp_loss, p, planted(lambda g: g.update(v=g["v"] * 1.01)))
    assert not wrong.ok and 0.9 < wrong.rate < 1.1, wrong
    assert "rate" in str(right) and json.dumps(wrong.to_dict())
    # grad=None (reverse engine), an explicit direction, and the round-off floor trimmed
    lin = ad.taylor_test(lambda x: np.sum(3.0 * x), np.ones(4), None)
    assert lin.ok and not any(lin.kept)  # a linear f: every residual is round-off


def test_taylor_trims_the_round_off_floor():
    # with steps down to 2^-40 the smallest residuals of a right gradient hit round-off;
    # those points are trimmed, so the rate stays ~2 instead of collapsing
    res = ad.taylor_test(lambda x: np.sum(np.exp(x)), np.array([0.3, -0.2]), lambda x: np.exp(x), n_steps=40)
    assert res.ok and 1.9 < res.rate < 2.1
    assert res.kept[0] and not res.kept[-1]


# --- large models, float32 ------------------------------------------------------------------------------------


def test_a_200k_parameter_problem_with_sample_20():
    rng = np.random.default_rng(11)
    Xb = rng.standard_normal((16, 400))
    Yb = rng.standard_normal((16, 10))
    p = {"W1": rng.standard_normal((400, 480)) * 0.05, "b1": np.zeros(480), "W2": rng.standard_normal((480, 10)) * 0.05}
    assert sum(v.size for v in p.values()) > 197_000

    def loss(p):
        return 0.5 * np.mean(np.sum((np.tanh(Xb @ p["W1"] + p["b1"]) @ p["W2"] - Yb) ** 2, axis=1))

    report = ad.check_grad(loss, p, sample=20)  # grad=None: the reverse engine
    assert report.ok and report.n_checked == 60 and report.n_total == sum(v.size for v in p.values())
    assert report.n_evaluations < 400  # 4 per entry, plus the noise probe


def test_float32_parameters():
    p32 = {k: v.astype(np.float32) for k, v in mlp_params(3).items()}
    loss32 = lambda p: np.mean((np.tanh(X.astype(np.float32) @ p["W"] + p["b"]) @ p["v"] - Y.astype(np.float32)) ** 2)

    def grad32(p):
        return {k: v.astype(np.float32) for k, v in mlp_grad({k: v.astype(np.float64) for k, v in p.items()}).items()}

    with pytest.warns(GradCheckWarning, match="1e-6 is a float64 target"):
        report = ad.check_grad(loss32, p32, grad32)
    assert report.ok and report.threshold == 1e-3, report
    assert any("float32" in h and "fd_dtype='float64'" in h for h in report.hints)
    with pytest.warns(GradCheckWarning):
        bad = ad.check_grad(loss32, p32, lambda p: {k: v * np.float32(1.01) for k, v in grad32(p).items()})
    assert not bad.ok  # a 1% error (rho 5e-3) is still far above float32's threshold
    # finite differences in float64: no warning, a tighter threshold
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        report64 = ad.check_grad(loss32, p32, grad32, fd_dtype="float64")
    assert report64.ok and report64.threshold == 1e-4
    # asking float32 for float64's threshold warns that it will give false failures
    with pytest.warns(GradCheckWarning, match="expect false failures"):
        ad.check_grad(loss32, p32, grad32, threshold=1e-6)


def test_float64_parameters_with_float32_inside_f():
    # the values f returns are float32 numbers: the check uses float32's steps and
    # threshold, and says why (tests/test_check_verdicts.py checks the details)
    f = lambda x: float(np.sum(np.sin(x.astype(np.float32)) ** 2))
    with pytest.warns(GradCheckWarning, match="f computes in float32"):
        report = ad.check_grad(f, np.linspace(0.1, 2.0, 6), lambda x: np.sin(2 * x))
    assert report.ok and report.threshold == 1e-3 and "f computes in float32" in report.precision, report


def test_complex_method_refuses_non_analytic_f_in_check_grad():
    with pytest.raises(ValueError, match="`abs`"):
        ad.check_grad(lambda x: np.sum(np.abs(x) * x), np.array([0.3, -1.2]), lambda x: x, method="complex")


# --- the report ------------------------------------------------------------------------------------------------


def test_report_text_html_and_dict():
    report = ad.check_grad(mlp_loss, mlp_params(), planted(lambda g: g.update(b=-g["b"])), seed=42)
    text = str(report)
    assert text.startswith("gradient check FAILED")
    for column in ("entry", "analytic", "numeric", "abs err", "rho", "FD err", "step", "status"):
        assert column in text
    assert "analytic (Ga): grad=" in text and "numeric  (Ge): central differences" in text and "seed 42" in text
    assert "<table>" in report._repr_html_() and "FAILED" in report._repr_html_()
    d = json.loads(json.dumps(report.to_dict()))
    assert d["ok"] is False and d["seed"] == 42 and d["n_failed"] == 3 and d["worst"][0]["entry"].startswith("b[")
    assert not report and ad.check_grad(mlp_loss, mlp_params(), mlp_grad)


def test_repr_html_never_raises():
    report = ad.check_grad(mlp_loss, mlp_params(), mlp_grad)
    report.entries = None  # a corrupted report must still render something
    html = report._repr_html_()
    assert isinstance(html, str) and html
    assert isinstance(str(report), str)


def test_assert_grad_raises_with_the_report_and_hides_its_frames():
    with pytest.raises(AssertionError) as info:
        ad.assert_grad(mlp_loss, mlp_params(), planted(lambda g: g.update(b=-g["b"])))
    assert "gradient check FAILED" in str(info.value) and "sign is flipped" in str(info.value)
    assert "__tracebackhide__" in ad.assert_grad.__code__.co_varnames


# --- training loops ------------------------------------------------------------------------------------------


def test_check_every_n_steps_of_a_training_loop():
    p = mlp_params(5)
    check = check_every(10, sample=3)
    broken_from = 25
    with pytest.raises(AssertionError, match="training step 30"):
        for step in range(50):
            g = mlp_grad(p) if step < broken_from else planted(lambda g: g.update(v=-g["v"]))(p)
            check(step, mlp_loss, p, g)
            p = {k: p[k] - 0.05 * g[k] for k in p}
    assert [s for s, _ in check.history] == [0, 10, 20, 30]
    assert [r.ok for _, r in check.history] == [True, True, True, False]
    assert check.history[0][1].seed != check.history[1][1].seed  # new entries sampled each time
    quiet = check_every(5, on_fail="record")
    assert quiet(3, mlp_loss, p, mlp_grad) is None and isinstance(quiet(5, mlp_loss, p, mlp_grad), GradCheckReport)


# --- the pytest plugin ---------------------------------------------------------------------------------------

PLUGIN_TESTS = """
import numpy as np
import pytest

def loss(w):
    return np.sum(np.sin(w) * w)

def right(w):
    return np.cos(w) * w + np.sin(w)

def wrong(w):
    return np.cos(w) * w  # the product rule's second term forgotten

W = np.array([0.3, -1.2, 2.0])

def test_right(grad_check):
    report = grad_check(loss, W, right)
    assert report.ok and report.seed == SEED

def test_wrong(grad_check):
    grad_check(loss, W, wrong)

@pytest.mark.grad_check(sample=2, method="richardson")
def test_marker_options(grad_check):
    report = grad_check(loss, W, right)
    assert report.n_checked == 2 and report.method == "richardson"
    assert not grad_check.report(loss, W, wrong).ok

def test_taylor(grad_check):
    grad_check.taylor(loss, W, right)
"""


def test_pytest_plugin_fixture_assertion_and_options(pytester):
    pytester.makepyfile(test_grads=PLUGIN_TESTS.replace("SEED", "0"))
    result = pytester.runpytest("-p", "no:cacheprovider")
    result.assert_outcomes(passed=3, failed=1)
    out = result.stdout.str()
    assert "test_wrong" in out and "gradient check FAILED: 3 of 3 checked entries fail" in out
    assert "worst entries:" in out and "x[2]" in out  # the report is the assertion message
    # the assertion hides adkit's own frames: the traceback ends in the user's test
    assert "adkit/check/" not in out and "pytest_plugin.py:" not in out
    seeded = pytester.runpytest("-p", "no:cacheprovider", "--adkit-seed", "7", "-k", "right")
    seeded.assert_outcomes(failed=1)  # the test asserts seed 0: the option reached the fixture
    pytester.makepyfile(test_grads=PLUGIN_TESTS.replace("SEED", "7"))
    pytester.runpytest("-p", "no:cacheprovider", "--adkit-seed", "7", "-k", "right").assert_outcomes(passed=1)


def test_pytest_plugin_loads_without_numpy_or_adkit(pytester):
    # the plugin is loaded in every test run of every project with adkit installed
    pytester.makepyfile(
        test_light="""
        import sys
        def test_nothing_heavy_loaded():
            assert "numpy" not in sys.modules and "adkit" not in sys.modules
        """
    )
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", "--trace-config")
    result.assert_outcomes(passed=1)
    assert "adkit_pytest" in result.stdout.str()  # and it was loaded, through the entry point


# --- `adkit check` ------------------------------------------------------------------------------------------------

USER_MODULE = """
import numpy as np

def loss(x):
    return np.sum(np.sin(x) * x)

def loss_grad(x):
    return np.cos(x) * x + np.sin(x)

def wrong_grad(x):
    return np.cos(x) * x

def ploss(p):
    return np.sum(p["W"] ** 2) * np.sum(p["b"])

def pgrad(p):
    return {"W": 2 * p["W"] * np.sum(p["b"]), "b": np.full_like(p["b"], np.sum(p["W"] ** 2))}

def crashes(x):
    raise RuntimeError("not today")
"""


def adkit_check(tmp_path, *argv):
    return subprocess.run(
        [sys.executable, "-m", "adkit", "check", *argv], cwd=tmp_path, capture_output=True, text=True, timeout=120
    )


def test_cli_exit_codes_pass_fail_json(tmp_path):
    (tmp_path / "usermod.py").write_text(USER_MODULE)
    ok = adkit_check(tmp_path, "usermod:loss", "--grad", "usermod:loss_grad", "--shape", "3,4", "--seed", "2")
    assert ok.returncode == 0 and "gradient check PASSED" in ok.stdout and "(3, 4)" in ok.stdout and not ok.stderr
    bad = adkit_check(tmp_path, "usermod:loss", "--grad", "usermod:wrong_grad", "--shape", "5", "--json")
    assert bad.returncode == 1
    data = json.loads(bad.stdout)  # JSON only on stdout
    assert data["ok"] is False and data["n_failed"] == 5 and data["target"] == "usermod:loss"
    np.savez(tmp_path / "p.npz", W=np.ones((2, 3)), b=np.arange(3.0))
    dict_point = adkit_check(tmp_path, "usermod:ploss", "--grad", "usermod:pgrad", "--at", "p.npz", "--sample", "2")
    assert dict_point.returncode == 0 and "4 of 9 entries" in dict_point.stdout
    np.save(tmp_path / "x.npy", np.linspace(-1, 1, 4))
    no_grad = adkit_check(tmp_path, "usermod:loss", "--at", "x.npy")  # adkit's reverse engine
    assert no_grad.returncode == 0 and "adkit.grad (reverse engine)" in no_grad.stdout


@pytest.mark.parametrize(
    "argv, message",
    [
        (["nosuchmodule:loss", "--shape", "3"], "module 'nosuchmodule' not found"),
        (["usermod:nosuchfunc", "--shape", "3"], "has no attribute 'nosuchfunc'"),
        (["usermod:loss", "--shape", "3,x"], "--shape '3,x'"),
        (["usermod:loss", "--at", "missing.npy"], "no such file"),
        (["usermod:loss", "--at", "garbage.npy"], "cannot read it"),
        (["usermod:crashes", "--shape", "2"], "usermod:crashes raised RuntimeError: not today"),
        (["usermod:loss"], "give the point"),
    ],
)
def test_cli_usage_errors_exit_2_with_one_line(tmp_path, argv, message):
    (tmp_path / "usermod.py").write_text(USER_MODULE)
    (tmp_path / "garbage.npy").write_bytes(b"this is not numpy")
    r = adkit_check(tmp_path, *argv)
    assert r.returncode == 2, r
    assert r.stdout == "" and message in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1 and "Traceback" not in r.stderr
