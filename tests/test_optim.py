"""adkit.optim against the slides' formulas, worked by hand in plain floats.

Each first-order rule takes three steps on L(x, y) = x^2 + 4 y^2 + x y (gradient
(2x + y, 8y + x), written out below, not taken from adkit), and the iterates are compared
with an independent scalar re-implementation of the slide's rule (SEEDS.md §10-11).
The second-order tools are checked against closed forms, numpy's linear solver and, where
installed, scipy.optimize.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

import adkit as ad
from adkit import optim


def grad_xy(x: float, y: float) -> tuple[float, float]:
    """Gradient of L = x^2 + 4 y^2 + x y, by hand."""
    return 2 * x + y, 8 * y + x


START = (1.5, -0.5)


# ---- plain-float references: one function per slide formula, three steps each ----------


def ref_sgd(eta):
    th, out = list(START), []
    for _ in range(3):
        g = grad_xy(*th)
        th = [th[i] - eta * g[i] for i in range(2)]
        out.append(th)
    return out


def ref_momentum(eta, d):  # Echenim: v <- d v - eta g; theta <- theta + v
    th, v, out = list(START), [0.0, 0.0], []
    for _ in range(3):
        g = grad_xy(*th)
        v = [d * v[i] - eta * g[i] for i in range(2)]
        th = [th[i] + v[i] for i in range(2)]
        out.append(th)
    return out


def ref_hamilton(alpha, beta):  # Delta_i w = alpha g + beta Delta_(i-1) w; w <- w - Delta_i w
    w, dw, out = list(START), [0.0, 0.0], []
    for _ in range(3):
        g = grad_xy(*w)
        dw = [alpha * g[i] + beta * dw[i] for i in range(2)]
        w = [w[i] - dw[i] for i in range(2)]
        out.append(w)
    return out


def ref_nesterov(eta, d):  # v <- d v - eta grad(theta + d v); theta <- theta + v
    th, v, out = list(START), [0.0, 0.0], []
    for _ in range(3):
        g = grad_xy(th[0] + d * v[0], th[1] + d * v[1])
        v = [d * v[i] - eta * g[i] for i in range(2)]
        th = [th[i] + v[i] for i in range(2)]
        out.append(th)
    return out


def ref_simplified_nesterov(eta, d):  # Theta <- Theta + d^2 v - eta (1 + d) g; v <- d v - eta g
    T, v, out = list(START), [0.0, 0.0], []
    for _ in range(3):
        g = grad_xy(*T)
        T = [T[i] + d * d * v[i] - eta * (1 + d) * g[i] for i in range(2)]
        v = [d * v[i] - eta * g[i] for i in range(2)]
        out.append(T)
    return out


def ref_adagrad(eta, delta):  # r <- r + g^2; theta <- theta - eta / (delta + sqrt r) g
    th, r, out = list(START), [0.0, 0.0], []
    for _ in range(3):
        g = grad_xy(*th)
        r = [r[i] + g[i] ** 2 for i in range(2)]
        th = [th[i] - eta / (delta + math.sqrt(r[i])) * g[i] for i in range(2)]
        out.append(th)
    return out


def ref_rmsprop(eta, rho, delta):  # r <- rho r + (1 - rho) g^2; theta <- theta - eta / sqrt(delta + r) g
    th, r, out = list(START), [0.0, 0.0], []
    for _ in range(3):
        g = grad_xy(*th)
        r = [rho * r[i] + (1 - rho) * g[i] ** 2 for i in range(2)]
        th = [th[i] - eta / math.sqrt(delta + r[i]) * g[i] for i in range(2)]
        out.append(th)
    return out


def ref_rmsprop_nesterov(eta, rho, d, delta):  # [AGG]: gradient at W + beta V
    th, r, v, out = list(START), [0.0, 0.0], [0.0, 0.0], []
    for _ in range(3):
        g = grad_xy(th[0] + d * v[0], th[1] + d * v[1])
        r = [rho * r[i] + (1 - rho) * g[i] ** 2 for i in range(2)]
        v = [d * v[i] - eta / math.sqrt(delta + r[i]) * g[i] for i in range(2)]
        th = [th[i] + v[i] for i in range(2)]
        out.append(th)
    return out


def ref_adadelta(rho, delta):
    th, r, s, out = list(START), [0.0, 0.0], [0.0, 0.0], []
    for _ in range(3):
        g = grad_xy(*th)
        r = [rho * r[i] + (1 - rho) * g[i] ** 2 for i in range(2)]
        v = [-math.sqrt(delta + s[i]) / math.sqrt(delta + r[i]) * g[i] for i in range(2)]
        s = [rho * s[i] + (1 - rho) * v[i] ** 2 for i in range(2)]
        th = [th[i] + v[i] for i in range(2)]
        out.append(th)
    return out


def ref_adam(eta, rho1, rho2, delta):
    th, s, r, out = list(START), [0.0, 0.0], [0.0, 0.0], []
    for i in range(1, 4):
        g = grad_xy(*th)
        s = [rho1 * s[k] + (1 - rho1) * g[k] for k in range(2)]
        r = [rho2 * r[k] + (1 - rho2) * g[k] ** 2 for k in range(2)]
        sh = [s[k] / (1 - rho1**i) for k in range(2)]
        rh = [r[k] / (1 - rho2**i) for k in range(2)]
        th = [th[k] - eta * sh[k] / (delta + math.sqrt(rh[k])) for k in range(2)]
        out.append(th)
    return out


def ref_delta_bar_delta(eta0, kappa, phi, theta):  # Jacobs 1988, one rate per component
    w, eta, bar, out = list(START), [eta0, eta0], [0.0, 0.0], []
    for _ in range(3):
        g = grad_xy(*w)
        for k in range(2):
            if bar[k] * g[k] > 0:
                eta[k] += kappa
            elif bar[k] * g[k] < 0:
                eta[k] *= 1 - phi
        w = [w[k] - eta[k] * g[k] for k in range(2)]
        bar = [(1 - theta) * g[k] + theta * bar[k] for k in range(2)]
        out.append(w)
    return out


CASES = {
    "sgd": (optim.sgd(lr=0.1), ref_sgd(0.1)),
    "momentum": (optim.momentum(lr=0.05, d=0.8), ref_momentum(0.05, 0.8)),
    "momentum_hamilton": (optim.momentum_hamilton(alpha=0.05, beta=0.8), ref_hamilton(0.05, 0.8)),
    "nesterov": (optim.nesterov(lr=0.05, d=0.8), ref_nesterov(0.05, 0.8)),
    "simplified_nesterov": (optim.simplified_nesterov(lr=0.05, d=0.8), ref_simplified_nesterov(0.05, 0.8)),
    "adagrad": (optim.adagrad(lr=0.3, delta=1e-7), ref_adagrad(0.3, 1e-7)),
    "rmsprop": (optim.rmsprop(lr=0.01, rho=0.9, delta=1e-6), ref_rmsprop(0.01, 0.9, 1e-6)),
    "rmsprop_nesterov": (
        optim.rmsprop_nesterov(lr=0.01, rho=0.9, d=0.8, delta=1e-6),
        ref_rmsprop_nesterov(0.01, 0.9, 0.8, 1e-6),
    ),
    "adadelta": (optim.adadelta(rho=0.95, delta=1e-6), ref_adadelta(0.95, 1e-6)),
    "adam": (optim.adam(lr=0.1, beta1=0.9, beta2=0.999, eps=1e-8), ref_adam(0.1, 0.9, 0.999, 1e-8)),
    # the first step has delta_bar = 0 (no change), the second a sign flip in x, the third agreement
    "delta_bar_delta": (
        optim.delta_bar_delta(lr=0.2, kappa=0.05, phi=0.5, theta=0.7),
        ref_delta_bar_delta(0.2, 0.05, 0.5, 0.7),
    ),
}


def loss_xy(p):
    x, y = p["x"][0], p["y"]
    return x**2 + 4 * y**2 + x * y


@pytest.mark.parametrize("name", CASES)
def test_first_three_steps_match_the_slide_formula(name):
    opt, expected = CASES[name]
    # parameters as a dict holding an array and a float: the update keeps the structure
    params = {"x": np.array([START[0]]), "y": START[1]}
    state = opt.init(params)
    grad_fn = ad.grad(loss_xy)
    for step, (x_ref, y_ref) in enumerate(expected, start=1):
        grads = grad_fn if opt.lookahead_leaf is not None else grad_fn(params)
        params, state = opt.update(params, grads, state)
        assert isinstance(params["x"], np.ndarray) and params["x"].shape == (1,)
        assert isinstance(params["y"], float)
        # same arithmetic in another order: agreement to a few ulps of values of order 1
        assert params["x"][0] == pytest.approx(x_ref, rel=1e-12, abs=1e-14), (name, step)
        assert params["y"] == pytest.approx(y_ref, rel=1e-12, abs=1e-14), (name, step)
        assert state["step"] == step


def test_the_cases_move_the_parameters_differently():
    """A guard on the references themselves: eleven rules, eleven different third iterates."""
    thirds = {tuple(np.round(ref[2], 12)) for _, ref in CASES.values()}
    # momentum and momentum_hamilton are the same iterates by construction
    assert len(thirds) == len(CASES) - 1


def test_hamilton_and_echenim_momentum_are_the_same_method():
    a, b = optim.momentum(lr=0.05, d=0.8), optim.momentum_hamilton(alpha=0.05, beta=0.8)
    f = lambda w: np.sum(w**2 * np.array([1.0, 4.0]))
    ta = optim.run(f, np.array([1.0, 1.0]), a, 20)
    tb = optim.run(f, np.array([1.0, 1.0]), b, 20)
    np.testing.assert_allclose(np.array(ta.path), np.array(tb.path), rtol=1e-12, atol=1e-15)


def test_simplified_nesterov_tracks_nesterov_shifted_by_d_v():
    """Bengio's claim: on Theta = theta + d v the simplified rule reproduces Nesterov."""
    f = lambda w: w[0] ** 2 + 4 * w[1] ** 2 + np.sin(w[0] * w[1])
    lr, d = 0.03, 0.9
    full, simple = optim.nesterov(lr, d), optim.simplified_nesterov(lr, d)
    theta = np.array([1.0, -0.7])
    s_full = full.init(theta)
    Theta, s_simple = theta.copy(), simple.init(theta)  # v = 0 at the start, so Theta = theta
    g = ad.grad(f)
    for _ in range(15):
        theta, s_full = full.update(theta, g, s_full)
        Theta, s_simple = simple.update(Theta, g(Theta), s_simple)
        np.testing.assert_allclose(Theta, theta + d * s_full["v"], rtol=1e-12, atol=1e-14)


def test_schedules_follow_the_lecture_formulas_and_drive_any_rule():
    exp_decay, inv_decay = optim.exponential_decay(0.4, 0.5), optim.inverse_decay(0.4, 0.5)
    assert [exp_decay(t) for t in range(3)] == pytest.approx([0.4, 0.4 * math.exp(-0.5), 0.4 * math.exp(-1.0)])
    assert [inv_decay(t) for t in range(3)] == pytest.approx([0.4, 0.4 / 1.5, 0.4 / 2.0])
    # sgd with eta_t: three steps by hand
    th, expected = list(START), []
    for t in range(3):
        g = grad_xy(*th)
        th = [th[i] - 0.4 / (1 + 0.5 * t) * g[i] for i in range(2)]
        expected.append(th)
    opt = optim.sgd(lr=inv_decay)
    params, state = np.array(START), opt.init(np.array(START))
    for ref in expected:
        params, state = opt.update(params, np.array(grad_xy(*params)), state)
        np.testing.assert_allclose(params, ref, rtol=1e-13)
    assert "inverse_decay" in repr(opt)


def test_clipping_by_value_and_by_norm_then_the_rule():
    by_value = optim.clip_by_value(optim.momentum(lr=0.1, d=0.5), limit=1.0)
    p, s = by_value.update(np.array([0.0, 0.0]), np.array([3.0, -0.25]), by_value.init(np.zeros(2)))
    np.testing.assert_allclose(p, [-0.1, 0.025])  # g clipped to (1, -0.25), v = -0.1 g
    by_norm = optim.clip_by_norm(optim.sgd(lr=1.0), max_norm=1.0)
    grads = {"a": np.array([3.0]), "b": np.array([[4.0]])}  # global norm 5
    p, _ = by_norm.update({"a": np.zeros(1), "b": np.zeros((1, 1))}, grads, by_norm.init(grads))
    np.testing.assert_allclose(p["a"], [-0.6])
    np.testing.assert_allclose(p["b"], [[-0.8]])
    small = {"a": np.array([0.3]), "b": np.array([[0.4]])}  # norm 0.5: untouched
    p, _ = by_norm.update({"a": np.zeros(1), "b": np.zeros((1, 1))}, small, by_norm.init(small))
    np.testing.assert_allclose(p["a"], [-0.3])
    # clipping composes with a look-ahead rule too (the gradient function is clipped)
    clipped_nesterov = optim.clip_by_value(optim.nesterov(lr=0.1, d=0.9), limit=0.5)
    p, _ = clipped_nesterov.update(np.array([10.0]), ad.grad(lambda w: w[0] ** 2), clipped_nesterov.init(np.zeros(1)))
    np.testing.assert_allclose(p, [10.0 - 0.05])


BOWLS = {
    "circular": (lambda w: w[0] ** 2 + w[1] ** 2),
    "elliptical": (lambda w: w[0] ** 2 + 4 * w[1] ** 2),
}
CONVERGING = {
    "sgd": optim.sgd(0.1),
    "momentum": optim.momentum(0.05, 0.8),
    "momentum_hamilton": optim.momentum_hamilton(0.05, 0.8),
    "nesterov": optim.nesterov(0.05, 0.8),
    "simplified_nesterov": optim.simplified_nesterov(0.05, 0.8),
    "adagrad": optim.adagrad(0.5),
    "rmsprop": optim.rmsprop(0.01),
    "rmsprop_nesterov": optim.rmsprop_nesterov(0.01, d=0.5),
    # AdaDelta's step sqrt(s)/sqrt(r) g is as large as its recent steps: with a short memory
    # (rho = 0.9) it settles into the cycle y -> -y on the steep axis; rho = 0.99 converges
    "adadelta": optim.adadelta(rho=0.99, delta=1e-6),
    "adam": optim.adam(0.05),
    "delta_bar_delta": optim.delta_bar_delta(0.05, kappa=0.005, phi=0.3),
    "adam+decay+clip": optim.clip_by_norm(optim.adam(optim.exponential_decay(0.1, 0.002)), 1.0),
}


@pytest.mark.parametrize("bowl", BOWLS)
@pytest.mark.parametrize("name", CONVERGING)
def test_every_rule_reaches_the_bottom_of_the_bowls(name, bowl):
    trajectory = optim.run(BOWLS[bowl], np.array([1.0, 1.0]), CONVERGING[name], 1500)
    # the minimum is the origin; 1e-2 leaves room for the constant-step rules' last
    # oscillations (rmsprop's step eta / sqrt(r) stays ~eta near the bottom)
    assert np.linalg.norm(trajectory.params) < 1e-2, (name, bowl, trajectory.params)
    assert trajectory.losses[-1] < trajectory.losses[0]


def test_bad_inputs_are_refused_with_a_reason():
    with pytest.raises(TypeError, match="look-ahead"):
        opt = optim.nesterov(0.1)
        opt.update(np.ones(2), np.ones(2), opt.init(np.ones(2)))
    opt = optim.adam(0.1)
    with pytest.raises(ValueError, match="structure"):
        opt.update({"a": np.ones(2)}, {"b": np.ones(2)}, opt.init({"a": np.ones(2)}))
    with pytest.raises(ValueError, match="shape"):
        opt.update(np.ones(2), np.ones(3), opt.init(np.ones(2)))
    with pytest.raises(ValueError, match="not finite"):
        opt.update(np.ones(2), np.array([1.0, np.nan]), opt.init(np.ones(2)))
    with pytest.raises(ValueError, match="state"):
        opt.update(np.ones(2), np.ones(2), {})
    with pytest.raises(ValueError, match="lr"):
        optim.sgd(lr=-1.0)
    with pytest.raises(ValueError, match="beta1"):
        optim.adam(beta1=1.0)
    with pytest.raises(TypeError, match="expected arrays"):
        optim.sgd(0.1).init({"a": "text"})


def test_update_is_pure():
    params = {"w": np.array([1.0, 2.0])}
    opt = optim.adam(0.1)
    state = opt.init(params)
    new, new_state = opt.update(params, {"w": np.array([0.5, -0.5])}, state)
    assert params["w"].tolist() == [1.0, 2.0] and state["step"] == 0
    assert np.all(state["s"]["w"] == 0) and new_state["step"] == 1 and new["w"] is not params["w"]


# ---- second order -----------------------------------------------------------------------


def test_newton_solves_the_elliptical_bowl_in_one_step():
    f = lambda w: w[0] ** 2 + 4 * w[1] ** 2
    np.testing.assert_allclose(optim.newton_step(f, np.array([3.0, -2.0])), [0.0, 0.0], atol=1e-14)


def test_newton_on_a_general_quadratic_is_the_linear_solve():
    rng = np.random.default_rng(3)
    M = rng.normal(size=(4, 4))
    A, b = M @ M.T + 4 * np.eye(4), rng.normal(size=4)
    f = lambda w: 0.5 * w @ A @ w - b @ w
    x0 = rng.normal(size=4)
    np.testing.assert_allclose(optim.newton_step(f, x0), np.linalg.solve(A, b), rtol=1e-10)
    # damping lambda: the step solves (A + lambda I) p = grad
    damped = optim.newton_step(f, x0, damping=2.0)
    np.testing.assert_allclose(damped, x0 - np.linalg.solve(A + 2 * np.eye(4), A @ x0 - b), rtol=1e-10)


def test_newton_goes_to_the_saddle_and_refuses_a_singular_hessian():
    saddle = lambda w: w[0] ** 2 - w[1] ** 2  # stationary point (0, 0) is a saddle
    np.testing.assert_allclose(optim.newton_step(saddle, np.array([0.3, 0.2])), [0.0, 0.0], atol=1e-15)
    with pytest.raises(np.linalg.LinAlgError, match="singular"):
        optim.newton_step(lambda w: w[0] ** 2 + 0 * w[1], np.array([1.0, 1.0]))


def test_cg_solves_a_d_dimensional_quadratic_in_d_steps_from_hvps_only():
    rng = np.random.default_rng(0)
    d = 8
    Q, _ = np.linalg.qr(rng.normal(size=(d, d)))
    A = Q @ np.diag(np.linspace(1.0, 10.0, d)) @ Q.T
    b = rng.normal(size=d)
    calls = []

    def hvp(v):
        calls.append(1)
        return A @ v

    result = optim.cg(hvp, b, tol=1e-10)
    assert result.converged and result.nit <= d
    np.testing.assert_allclose(result.x, np.linalg.solve(A, b), rtol=1e-8)
    assert len(calls) == result.nit  # one Hessian-vector product per step, nothing else
    assert result.residual_norms[0] == pytest.approx(np.linalg.norm(b))


def test_cg_with_adkit_hvp_is_the_newton_direction():
    f = lambda w: np.sum(np.exp(w)) + w[0] * w[1] ** 2 + np.sum(w**2)
    x = np.array([0.2, -0.3, 0.5])
    g = ad.grad(f)(x)
    step = optim.cg(lambda v: ad.hvp(f, (x,), (v,)), g).x
    np.testing.assert_allclose(step, np.linalg.solve(ad.hessian(f)(x), g), rtol=1e-9)


def test_cg_refuses_an_indefinite_operator():
    with pytest.raises(ValueError, match="positive definite"):
        optim.cg(lambda v: np.array([1.0, -1.0]) * v, np.array([1.0, 1.0]))


def rosenbrock(w):
    return (1 - w[0]) ** 2 + 100 * (w[1] - w[0] ** 2) ** 2


def test_lbfgs_finds_the_rosenbrock_minimum_where_gradient_descent_crawls():
    result = optim.lbfgs(rosenbrock, np.array([-1.2, 1.0]), m=10, tol=1e-8)
    assert result.converged and result.nit < 100
    np.testing.assert_allclose(result.x, [1.0, 1.0], atol=1e-7)  # gradient 1e-8 near a minimum of curvature ~1
    assert result.fun == pytest.approx(rosenbrock(result.x)) and result.path.shape == (result.nit + 1, 2)
    gd = optim.run(rosenbrock, np.array([-1.2, 1.0]), optim.sgd(1e-3), 300)
    assert np.linalg.norm(gd.params - 1.0) > 0.1  # after 3x the iterations, still far away


def test_lbfgs_agrees_with_scipy():
    scipy_optimize = pytest.importorskip("scipy.optimize")
    rng = np.random.default_rng(1)
    M = rng.normal(size=(5, 5))
    A, b = M @ M.T + np.eye(5), rng.normal(size=5)
    problems = [
        (rosenbrock, np.array([-1.2, 1.0])),
        (lambda w: 0.5 * w @ A @ w - b @ w + 0.1 * np.sum(w**4), np.zeros(5)),
    ]
    for f, x0 in problems:
        ours = optim.lbfgs(f, x0, tol=1e-9)
        theirs = scipy_optimize.minimize(
            lambda w: float(f(w)), x0, jac=lambda w: np.asarray(ad.grad(f)(w)), method="L-BFGS-B", tol=1e-14
        )
        # both stop at a gradient of ~1e-9 on well-conditioned minima: x agrees to ~1e-7
        np.testing.assert_allclose(ours.x, theirs.x, atol=1e-6)
        assert ours.fun == pytest.approx(theirs.fun, abs=1e-10)


def test_the_three_hessian_vector_products_agree():
    def f(w):
        return np.sum(w**3) + w[0] * w[1] ** 2 + np.sin(w[2])

    x, v = np.array([0.5, -1.0, 0.3]), np.array([1.0, 2.0, -1.0])
    # the Hessian by hand: diag(6 w) + [[0, 2 w1, 0], [2 w1, 2 w0, 0], [0, 0, 0]] - sin(w2) e3 e3^T
    H = np.diag(6 * x)
    H[0, 1] = H[1, 0] = 2 * x[1]
    H[1, 1] += 2 * x[0]
    H[2, 2] -= np.sin(x[2])
    exact = H @ v
    np.testing.assert_allclose(ad.hvp(f, (x,), (v,)), exact, rtol=1e-13)
    np.testing.assert_allclose(ad.hessian(f)(x) @ v, exact, rtol=1e-13)
    # eq. 23 with delta = 1e-6: O(delta) truncation ~1e-6 and round-off eps/delta ~1e-10
    np.testing.assert_allclose(optim.hvp_fd(f, x, v, 1e-6), exact, rtol=1e-4, atol=1e-5)


def test_eq23_error_is_first_order_in_delta_until_round_off():
    f = lambda w: np.sum(w**3) + w[0] * w[1] ** 2
    x, v = np.array([0.5, -1.0]), np.array([1.0, 2.0])
    exact = ad.hvp(f, (x,), (v,))
    deltas = 10.0 ** -np.arange(1, 13)
    errors = np.array([np.linalg.norm(optim.hvp_fd(f, x, v, d) - exact) for d in deltas])
    # truncation region (delta 1e-1 .. 1e-4): the error drops 10x per decade, i.e. O(delta)
    ratios = errors[:3] / errors[1:4]
    np.testing.assert_allclose(ratios, 10.0, rtol=0.05)
    # the error is smallest near sqrt(eps) ~ 1e-8 and grows again below: round-off ~ eps / delta
    best = int(np.argmin(errors))
    assert 6 <= best + 1 <= 10, errors
    assert errors[-1] > 100 * errors[best]


def test_second_order_inputs_are_checked():
    with pytest.raises(ValueError, match="delta"):
        optim.hvp_fd(lambda w: np.sum(w**2), np.ones(2), np.ones(2), delta=0.0)
    with pytest.raises(ValueError, match="shape"):
        optim.hvp_fd(lambda w: np.sum(w**2), np.ones(2), np.ones(3))
    with pytest.raises(ValueError, match="x0"):
        optim.cg(lambda v: v, np.ones(2), x0=np.ones(3))
    with pytest.raises(ValueError, match="m must"):
        optim.lbfgs(rosenbrock, np.zeros(2), m=0)
    with pytest.raises(TypeError, match="float or a numpy array"):
        optim.newton_step(lambda p: p["a"] ** 2, {"a": 1.0})
