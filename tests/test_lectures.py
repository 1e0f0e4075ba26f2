"""The worked examples of the lecture notes (shared/SEEDS.md sections 1, 5, 7 and 9).

Every example runs through both differentiating engines ("forward" and "reverse") and is
checked against a reference that does not come from adkit: the closed form the lecture
derives (written out here in plain numpy / math), or central finite differences
computed in this file.
"""

import itertools
import math

import numpy as np
import pytest
from reference import central_diff

import adkit as ad

ENGINES = ("forward", "reverse")


# --- independent references ---------------------------------------------------------------


def np_sigmoid(v):
    return 1.0 / (1.0 + np.exp(-v))


def np_softmax(u, axis=-1):
    e = np.exp(u - np.max(u, axis=axis, keepdims=True))
    return e / np.sum(e, axis=axis, keepdims=True)


# Tolerance for "adkit vs the lecture's closed form": both evaluate the same elementary
# functions, only in a different order, so they agree to a few ulps; 1e-12 leaves room.
RTOL_CLOSED = 1e-12
# Tolerance for "adkit vs central differences with h = 1e-6": the truncation error is
# O(h^2 f''') ~ 1e-12 and the rounding error O(eps |f| / h) ~ 1e-10, so 1e-7 is safe
# while still catching any wrong derivative (errors of order 1e-2 or more).
RTOL_FD, ATOL_FD = 1e-7, 1e-8


# =========================================================================================
# Section 1: computational graphs and the chain rule [AGG I, HAM]
# =========================================================================================


def colah(a, b):
    c = a + b
    d = b + 1.0
    e = c * d
    return c, d, e


@pytest.mark.parametrize("engine", ENGINES)
def test_colah_gradient_values(engine):
    # SEEDS §1 [HAM]: at a = 2, b = 1: e = 6, de/da = 2, de/db = 1*2 + 1*3 = 5 (exact in floats)
    value, (dea, deb) = ad.value_and_grad(lambda a, b: colah(a, b)[2], argnums=(0, 1), engine=engine)(2.0, 1.0)
    assert value == 6.0
    assert (dea, deb) == (2.0, 5.0)


def test_colah_intermediate_values_forward_trace():
    # SEEDS §1 [HAM]: c = 3, d = 2, e = 6; seeding b carries dc/db = 1, dd/db = 1, de/db = 5
    values, tangents = ad.jvp(colah, (2.0, 1.0), (0.0, 1.0))
    assert tuple(values) == (3.0, 2.0, 6.0)
    assert tuple(tangents) == (1.0, 1.0, 5.0)
    _, tangents_a = ad.jvp(colah, (2.0, 1.0), (1.0, 0.0))
    assert tuple(tangents_a) == (1.0, 0.0, 2.0)


def test_colah_intermediate_values_reverse_trace():
    # SEEDS §1 [HAM]: the adjoint of e flows back as ebar*d = 2 to a and ebar*d + ebar*c = 5 to b
    values, pullback = ad.vjp(colah, 2.0, 1.0)
    assert tuple(values) == (3.0, 2.0, 6.0)
    assert pullback((0.0, 0.0, 1.0)) == (2.0, 5.0)
    # the cotangents of c and d alone: dc/d(a, b) = (1, 1), dd/d(a, b) = (0, 1)
    assert pullback((1.0, 0.0, 0.0)) == (1.0, 1.0)
    assert pullback((0.0, 1.0, 0.0)) == (0.0, 1.0)


def two_paths(w):
    # SEEDS §1 [AGG]: y = z = w^2, p = cos(y), q = sin(z), o = K(p, q) = p + q
    y = w**2
    z = w**2
    p = np.cos(y)
    q = np.sin(z)
    return p + q


def two_paths_closed(w):
    # SEEDS §1 [AGG]: do/dw = -2w sin(w^2) + 2w cos(w^2)
    return -2 * w * math.sin(w**2) + 2 * w * math.cos(w**2)


@pytest.mark.parametrize("engine", ENGINES)
@pytest.mark.parametrize("w", [-1.3, 0.0, 0.4, 2.1])
def test_two_path_example(engine, w):
    g = ad.grad(two_paths, engine=engine)(w)
    assert g == pytest.approx(two_paths_closed(w), rel=RTOL_CLOSED, abs=1e-15)
    assert g == pytest.approx(central_diff(two_paths, w), rel=RTOL_FD, abs=ATOL_FD)


@pytest.mark.parametrize("engine", ENGINES)
@pytest.mark.parametrize("w", [-0.8, 0.5, 1.7])
def test_univariate_chain_rule_cos_w2(engine, w):
    # SEEDS §1: d/dw cos(w^2) = -sin(w^2) * 2w
    g = ad.grad(lambda w: np.cos(w * w), engine=engine)(w)
    assert g == pytest.approx(-math.sin(w**2) * 2 * w, rel=RTOL_CLOSED)


@pytest.mark.parametrize("engine", ENGINES)
@pytest.mark.parametrize("w", [-2.0, 0.0, 0.3, 3.0])
def test_sigmoid_of_sigmoid(engine, w):
    # SEEDS §1 [AGG]: sigmoid(sigmoid(w)) = 1 / (1 + exp(-1/(1+exp(-w)))).
    # closed form by the chain rule with sigma' = sigma (1 - sigma):
    s1 = 1.0 / (1.0 + math.exp(-w))
    s2 = 1.0 / (1.0 + math.exp(-s1))
    expected = s2 * (1 - s2) * s1 * (1 - s1)

    def explicit(w):  # the lecture's written-out expression, in plain numpy
        return 1.0 / (1.0 + np.exp(-1.0 / (1.0 + np.exp(-w))))

    nested = ad.grad(lambda w: ad.sigmoid(ad.sigmoid(w)), engine=engine)(w)
    written_out = ad.grad(explicit, engine=engine)(w)
    assert nested == pytest.approx(expected, rel=RTOL_CLOSED)
    assert written_out == pytest.approx(expected, rel=RTOL_CLOSED)
    assert nested == pytest.approx(central_diff(explicit, w), rel=RTOL_FD, abs=ATOL_FD)


def path_factoring_program(x):
    # SEEDS §1 [HAM]: X -> {3 nodes} -> Y -> {3 nodes} -> Z
    h1, h2, h3 = np.sin(x), x**2, np.exp(x)  # edges alpha = cos x, beta = 2x, gamma = e^x
    y = h1 + h2 + h3
    k1, k2, k3 = np.cos(y), y**3, 2.0 * y  # edges delta = -sin y, epsilon = 3y^2, zeta = 2
    return k1 + k2 + k3


@pytest.mark.parametrize("engine", ENGINES)
@pytest.mark.parametrize("x", [-0.7, 0.2, 0.9])
def test_path_factoring_3x3(engine, x):
    y = math.sin(x) + x**2 + math.exp(x)
    first = (math.cos(x), 2 * x, math.exp(x))  # alpha, beta, gamma
    second = (-math.sin(y), 3 * y**2, 2.0)  # delta, epsilon, zeta
    # SEEDS §2 lemma: the sum over all 9 paths of the product of edge derivatives ...
    paths = list(itertools.product(first, second))
    assert len(paths) == 9
    by_paths = sum(a * b for a, b in paths)
    # ... factors as (alpha + beta + gamma)(delta + epsilon + zeta) (SEEDS §1 [HAM])
    factored = sum(first) * sum(second)
    assert by_paths == pytest.approx(factored, rel=1e-13)  # same sums, rounding order differs
    g = ad.grad(path_factoring_program, engine=engine)(x)
    assert g == pytest.approx(factored, rel=RTOL_CLOSED)
    assert g == pytest.approx(central_diff(path_factoring_program, x), rel=RTOL_FD, abs=ATOL_FD)


# =========================================================================================
# Section 5: forward vs reverse mode [RAB, HAM]
# =========================================================================================

W0, W1, X = 0.3, -1.2, 0.7


def rabbany(w0, w1, x):
    # SEEDS §5 [RAB]: a1 = w0, a2 = w1, a3 = x, a4 = a2*a3, a5 = a4 + a1,
    # a6 = sin(a5) = y1, a7 = cos(a5) = y2; returns (a4, a5, y1, y2) to expose the trace
    a1, a2, a3 = w0, w1, x
    a4 = a2 * a3
    a5 = a4 + a1
    return a4, a5, np.sin(a5), np.cos(a5)


def test_rabbany_forward_trace_jvp():
    # SEEDS §5 [RAB]: seed da2 = 1 (on w1): da4 = x, da5 = x, da6 = x cos(w1 x + w0), da7 = -x sin(w1 x + w0)
    a5 = W1 * X + W0
    values, tangents = ad.jvp(rabbany, (W0, W1, X), (0.0, 1.0, 0.0))
    np.testing.assert_allclose(values, [W1 * X, a5, math.sin(a5), math.cos(a5)], rtol=RTOL_CLOSED)
    da4, da5, da6, da7 = tangents
    assert da4 == X and da5 == X  # exact: one multiplication by the seed 1
    assert da6 == pytest.approx(X * math.cos(a5), rel=RTOL_CLOSED)
    assert da7 == pytest.approx(-X * math.sin(a5), rel=RTOL_CLOSED)


def test_rabbany_reverse_trace_vjp():
    # SEEDS §5 [RAB]: for y2: abar7 = 1, abar6 = 0, abar5 = -sin(a5), abar4 = abar1 = abar5,
    # abar2 = abar4 * a3 = -x sin(..), abar3 = abar4 * a2 = -w1 sin(..)
    a5 = W1 * X + W0
    _, pullback = ad.vjp(rabbany, W0, W1, X)
    bar_w0, bar_w1, bar_x = pullback((0.0, 0.0, 0.0, 1.0))
    assert bar_w0 == pytest.approx(-math.sin(a5), rel=RTOL_CLOSED)
    assert bar_w1 == pytest.approx(-X * math.sin(a5), rel=RTOL_CLOSED)
    assert bar_x == pytest.approx(-W1 * math.sin(a5), rel=RTOL_CLOSED)
    # the same tape, read for y1 instead (abar6 = 1, abar7 = 0): cos(a5) times the same edges
    bar = pullback((0.0, 0.0, 1.0, 0.0))
    np.testing.assert_allclose(bar, [math.cos(a5), X * math.cos(a5), W1 * math.cos(a5)], rtol=RTOL_CLOSED)


@pytest.mark.parametrize("engine", ENGINES)
def test_rabbany_example_both_engines(engine):
    # the same derivatives of y1 and y2 through grad with either engine
    a5 = W1 * X + W0
    g1 = ad.grad(lambda *a: rabbany(*a)[2], argnums=(0, 1, 2), engine=engine)(W0, W1, X)
    g2 = ad.grad(lambda *a: rabbany(*a)[3], argnums=(0, 1, 2), engine=engine)(W0, W1, X)
    np.testing.assert_allclose(g1, [math.cos(a5), X * math.cos(a5), W1 * math.cos(a5)], rtol=RTOL_CLOSED)
    np.testing.assert_allclose(g2, [-math.sin(a5), -X * math.sin(a5), -W1 * math.sin(a5)], rtol=RTOL_CLOSED)


def jac_example_vec(v):
    x, y = v[0], v[1]
    return np.stack([x**2, y**2, 2 * x * y])


@pytest.mark.parametrize("engine", ENGINES)
@pytest.mark.parametrize("x, y", [(1.5, -2.0), (0.0, 3.0), (-0.25, 0.5)])
def test_jacobian_example(engine, x, y):
    # SEEDS §5 [RAB]: f(x, y) = [x^2, y^2, 2xy], J = [[2x, 0], [0, 2y], [2y, 2x]]
    expected = np.array([[2 * x, 0.0], [0.0, 2 * y], [2 * y, 2 * x]])
    J = ad.jacobian(jac_example_vec, engine=engine)(np.array([x, y]))
    assert J.shape == (3, 2)
    # products by 2 and by small dyadic numbers are exact in binary floating point
    np.testing.assert_allclose(J, expected, rtol=1e-15, atol=0)
    # the same function with two scalar arguments: one Jacobian column per argument
    Jx, Jy = ad.jacobian(lambda x, y: np.stack([x**2, y**2, 2 * x * y]), argnums=(0, 1), engine=engine)(x, y)
    np.testing.assert_allclose(Jx, expected[:, 0], rtol=1e-15, atol=0)
    np.testing.assert_allclose(Jy, expected[:, 1], rtol=1e-15, atol=0)


@pytest.mark.parametrize("engine", ENGINES)
@pytest.mark.parametrize("u", [[0.5, -1.0, 2.0], [0.0, 0.0, 0.0, 0.0], [10.0, -3.0, 7.5, 1.0, 0.2]])
def test_softmax_jacobian(engine, u):
    # SEEDS §7 [RAB]: d y_k / d u_c = y_k (1 - y_k) if k = c, else -y_c y_k, i.e. y_k (δ_kc - y_c)
    u = np.array(u)
    y = np_softmax(u)
    expected = y[:, None] * (np.eye(len(u)) - y[None, :])
    J = ad.jacobian(ad.softmax, engine=engine)(u)
    assert J.shape == (len(u), len(u))
    # entries are O(1) products of probabilities; atol covers entries that cancel to ~0
    np.testing.assert_allclose(J, expected, rtol=RTOL_CLOSED, atol=1e-15)
    # a softmax Jacobian's rows sum to zero (the outputs sum to 1 whatever u is)
    np.testing.assert_allclose(J.sum(axis=0), 0.0, atol=1e-15)


# =========================================================================================
# Section 7: two-layer network [RAB]
# =========================================================================================

N, D, M, C = 24, 3, 16, 3


def two_layer_data(seed=0):
    rng = np.random.default_rng(seed)
    x = np.concatenate([rng.normal(size=(N, D - 1)), np.ones((N, 1))], axis=1)  # 2 features + bias
    labels = rng.integers(0, C, size=N)
    y = np.eye(C)[labels]
    V = rng.normal(scale=0.5, size=(D, M))
    W = rng.normal(scale=0.5, size=(M, C))
    return x, y, V, W


def two_layer_loss(V, W, x, y):
    """Sigmoid hidden layer, softmax output, mean cross-entropy; plain numpy code."""
    z = 1.0 / (1.0 + np.exp(-(x @ V)))  # N x M
    u = z @ W  # N x C
    log_yh = u - ad.logsumexp(u, axis=1, keepdims=True)  # stable log-softmax
    return -np.sum(y * log_yh) / x.shape[0]


def two_layer_hand_gradients(V, W, x, y):
    """SEEDS §7 [RAB]: dy = yh - y; dw = z.T @ dy / N; dz = dy @ w.T; dv = x.T @ (dz * z * (1-z)) / N."""
    n = x.shape[0]
    z = np_sigmoid(x @ V)
    yh = np_softmax(z @ W, axis=1)
    dy = yh - y
    dw = z.T @ dy / n
    dz = dy @ W.T
    dv = x.T @ (dz * z * (1 - z)) / n
    return dv, dw


@pytest.mark.parametrize("engine", ENGINES)
def test_two_layer_network_matches_lecture_formulas(engine):
    x, y, V, W = two_layer_data()
    dV, dW = ad.grad(two_layer_loss, argnums=(0, 1), engine=engine)(V, W, x, y)
    hand_dV, hand_dW = two_layer_hand_gradients(V, W, x, y)
    assert dV.shape == (D, M) and dW.shape == (M, C)
    # same algebra in a different order (log-softmax vs softmax); entries are ~1e-2
    np.testing.assert_allclose(dW, hand_dW, rtol=1e-10, atol=1e-14)
    np.testing.assert_allclose(dV, hand_dV, rtol=1e-10, atol=1e-14)


def test_two_layer_hand_formulas_match_finite_differences():
    # the hand formulas themselves, against central differences of the plain-numpy loss
    # (a few entries: the test's reference must not be wrong either)
    x, y, V, W = two_layer_data(seed=1)
    hand_dV, hand_dW = two_layer_hand_gradients(V, W, x, y)

    def loss_np(V, W):
        z = np_sigmoid(x @ V)
        return -np.sum(y * np.log(np_softmax(z @ W, axis=1))) / N

    fd_W = central_diff(lambda w: loss_np(V, w), W)
    fd_V = central_diff(lambda v: loss_np(v, W), V)
    np.testing.assert_allclose(hand_dW, fd_W, rtol=1e-6, atol=1e-9)  # FD error ~1e-10 on O(1e-2) entries
    np.testing.assert_allclose(hand_dV, fd_V, rtol=1e-6, atol=1e-9)


@pytest.mark.parametrize("engine", ENGINES)
def test_two_layer_network_params_as_dict(engine):
    x, y, V, W = two_layer_data(seed=2)
    grads = ad.grad(lambda p: two_layer_loss(p["V"], p["W"], x, y), engine=engine)({"V": V, "W": W})
    hand_dV, hand_dW = two_layer_hand_gradients(V, W, x, y)
    assert isinstance(grads, dict) and list(grads) == ["V", "W"]
    np.testing.assert_allclose(grads["V"], hand_dV, rtol=1e-10, atol=1e-14)
    np.testing.assert_allclose(grads["W"], hand_dW, rtol=1e-10, atol=1e-14)


def affine_loss_broadcast(p, x):
    # x @ W + b written with broadcasting and a sum instead of `@`
    out = np.sum(x[:, :, None] * p["W"][None, :, :], axis=1) + p["b"]
    return np.sum(np.tanh(out) ** 2)


def affine_loss_matmul(p, x):
    return np.sum(np.tanh(x @ p["W"] + p["b"]) ** 2)


@pytest.mark.parametrize(
    "loss, engine",
    [
        (affine_loss_broadcast, "forward"),
        (affine_loss_broadcast, "reverse"),
        (affine_loss_matmul, "forward"),
        (affine_loss_matmul, "reverse"),
    ],
)
def test_params_as_dict(loss, engine):
    # DESIGN §2: an argument may be a dict of arrays; its gradient comes back as a dict
    rng = np.random.default_rng(3)
    x = rng.normal(size=(5, 3))
    params = {"W": rng.normal(size=(3, 2)), "b": rng.normal(size=(2,))}
    g = ad.grad(loss, engine=engine)(params, x)
    assert isinstance(g, dict) and set(g) == {"W", "b"}
    assert g["W"].shape == (3, 2) and g["b"].shape == (2,)
    fd_W = central_diff(lambda w: affine_loss_broadcast({"W": w, "b": params["b"]}, x), params["W"])
    fd_b = central_diff(lambda b: affine_loss_broadcast({"W": params["W"], "b": b}, x), params["b"])
    np.testing.assert_allclose(g["W"], fd_W, rtol=RTOL_FD, atol=ATOL_FD)
    np.testing.assert_allclose(g["b"], fd_b, rtol=RTOL_FD, atol=ATOL_FD)


# =========================================================================================
# Section 9: vanishing and exploding gradients [SCH, AGG]
# =========================================================================================


def sigmoid_chain_cost(b, w, a0, target):
    """Four one-neuron sigmoid layers: z_j = w_j a_(j-1) + b_j, a_j = sigma(z_j); C = (a4 - y)^2 / 2."""
    a = a0
    for j in range(4):
        a = ad.sigmoid(w[j] * a + b[j])
    return 0.5 * (a - target) ** 2


def sigmoid_chain_closed_form(b, w, a0, target):
    """SEEDS §9 [SCH]: dC/db_j = sigma'(z_j) w_(j+1) sigma'(z_(j+1)) ... w4 sigma'(z4) dC/da4."""
    a, zs = a0, []
    for j in range(4):
        z = w[j] * a + b[j]
        zs.append(z)
        a = np_sigmoid(z)
    dC_da4 = a - target
    sp = [np_sigmoid(z) * (1 - np_sigmoid(z)) for z in zs]
    db = np.zeros(4)
    for j in range(4):
        prod = sp[j]
        for k in range(j + 1, 4):
            prod *= w[k] * sp[k]
        db[j] = prod * dC_da4
    return db, sp


@pytest.mark.parametrize("engine", ENGINES)
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_vanishing_gradient_chain(engine, seed):
    rng = np.random.default_rng(seed)
    w = rng.uniform(-1, 1, size=4)  # |w| < 1
    b = rng.normal(size=4)
    a0, target = 0.8, 0.1
    db = ad.grad(sigmoid_chain_cost, engine=engine)(b, w, a0, target)
    expected, sp = sigmoid_chain_closed_form(b, w, a0, target)
    assert db.shape == (4,)
    np.testing.assert_allclose(db, expected, rtol=RTOL_CLOSED)
    # vanishing: |w_j sigma'(z_j)| <= 1/4 for |w| < 1, so |dC/db1| <= |dC/db3| / 16
    assert abs(db[0]) < abs(db[2])
    assert abs(db[0]) <= abs(db[2]) / 16
    assert max(sp) <= 0.25


@pytest.mark.parametrize("engine", ENGINES)
def test_exploding_gradient_chain(engine):
    # SEEDS §9 [SCH]: w = 100 with b_j = -100 a_(j-1) keeps z_j = 0, sigma'(z_j) = 1/4,
    # so every layer multiplies the gradient by w sigma' = 25 (exact in binary floats)
    a0, target = 0.5, 0.0
    w = np.full(4, 100.0)
    b = np.zeros(4)
    a = a0
    for j in range(4):
        b[j] = -100.0 * a
        assert w[j] * a + b[j] == 0.0
        a = np_sigmoid(w[j] * a + b[j])
    db = ad.grad(sigmoid_chain_cost, engine=engine)(b, w, a0, target)
    expected, sp = sigmoid_chain_closed_form(b, w, a0, target)
    assert sp == [0.25] * 4
    np.testing.assert_allclose(db, expected, rtol=RTOL_CLOSED)
    for j in range(3):
        assert db[j] / db[j + 1] == pytest.approx(25.0, rel=1e-15)
    # dC/db4 = sigma'(0) (a4 - y) = 0.25 * 0.5, then x25 per layer back to b1
    assert db[3] == pytest.approx(0.125, rel=1e-15)
    assert db[0] == pytest.approx(0.125 * 25**3, rel=1e-15)


# --- SEEDS §8: convolution backprop [SCH] ----------------------------------------------------------


def _conv2d_loops(h, w):
    """z_{x,y} = sum_{a,b} w_{ab} h_{x-a, y-b} over complete overlaps, written as loops (SEEDS §8)."""
    k, m = w.shape
    out = np.zeros((h.shape[0] - k + 1, h.shape[1] - m + 1))
    for x in range(out.shape[0]):
        for y in range(out.shape[1]):
            for a in range(k):
                for b in range(m):
                    out[x, y] += w[a, b] * h[x + k - 1 - a, y + m - 1 - b]
    return out


@pytest.mark.parametrize("engine", ENGINES)
def test_convolution_backprop_is_convolution_with_the_rotated_filter(engine):
    # z^{l+1} = conv(sigma(z^l), w) + b; the lecture: delta^l = (delta^{l+1} conv rot180(w)) * sigma'(z^l),
    # the full-mode convolution of the next deltas with the filter rotated by 180 degrees.
    rng = np.random.default_rng(8)
    z, w, b = rng.normal(size=(6, 5)), rng.normal(size=(3, 2)), 0.3
    target = rng.normal(size=(4, 4))
    np.testing.assert_allclose(ad.conv2d(ad.sigmoid(z), w), _conv2d_loops(ad.sigmoid(z), w), rtol=1e-13)

    def cost(z):
        return 0.5 * np.sum((ad.conv2d(ad.sigmoid(z), w) + b - target) ** 2)

    delta_next = _conv2d_loops(ad.sigmoid(z), w) + b - target  # dC/dz^{l+1}
    rot = w[::-1, ::-1]
    padded = np.pad(delta_next, ((2, 2), (1, 1)))  # full mode: every overlap of the deltas and the filter
    s = ad.sigmoid(z)
    # the lecture's formula, with the loop convolution above: deltas (padded for full mode)
    # convolved with the rotated filter, times sigma'(z^l)
    lecture = _conv2d_loops(padded, rot) * s * (1 - s)
    # 1e-12: the same sums in a different order (a few dozen terms of size ~1)
    np.testing.assert_allclose(ad.grad(cost, engine=engine)(z), lecture, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(lecture, central_diff(cost, z), rtol=1e-6, atol=1e-8)
