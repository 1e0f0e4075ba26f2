"""adkit.nn and adkit.data: every layer's backward pass against finite differences, the
symbolic engine and the closed forms of the lectures; batch norm; Iris trained to >= 95 %."""

from __future__ import annotations

import numpy as np
import pytest

import adkit as ad
from adkit import data, nn, optim

RNG = np.random.default_rng(7)
X = RNG.normal(size=(4, 3))  # a batch of 4 examples, 3 features: small enough for sympy


def _weighted(layer, out_shape, seed=0):
    """sum(layer(...) * R) for a fixed random R: a scalar whose gradient is the layer's
    backward pass applied to the upstream gradient R."""
    R = np.random.default_rng(seed).normal(size=out_shape)
    return lambda *args: np.sum(layer(*args) * R)


def _assert_engines_agree(f, args, symbolic=True):
    argnums = tuple(range(len(args)))
    reverse = ad.grad(f, argnums=argnums)(*args)
    # central differences (adkit's numeric engine reads only the numpy implementations)
    numeric = ad.grad(f, argnums=argnums, engine="numeric")(*args)
    others = {"numeric": (numeric, 1e-6)}  # step ~1e-5 on O(1) values: error ~1e-9 .. 1e-7
    if symbolic:
        others["symbolic"] = (ad.grad(f, argnums=argnums, engine="symbolic")(*args), 1e-10)
    others["forward"] = (ad.grad(f, argnums=argnums, engine="forward")(*args), 1e-12)
    for engine, (grads, tol) in others.items():
        for a, b in zip(ad.transforms.tree_flatten(reverse)[0], ad.transforms.tree_flatten(grads)[0]):
            np.testing.assert_allclose(a, b, rtol=tol, atol=tol, err_msg=engine)
    return reverse[0] if len(args) == 1 else reverse


@pytest.mark.parametrize("name", sorted(nn.ACTIVATIONS))
def test_each_activation_layer_backward(name):
    # avoid the kinks (0 for relu / leaky_relu, +-1 for hard tanh), where the value is a convention
    x = np.array([[-1.7, -0.4, 0.3], [0.9, 2.2, -0.6]])
    _assert_engines_agree(_weighted(nn.activation(name), x.shape), (x,))


def test_dense_layer_backward_is_the_lectures_matrix_rules():
    W, b = RNG.normal(size=(3, 2)), RNG.normal(size=2)
    R = np.random.default_rng(0).normal(size=(4, 2))
    gx, gW, gb = _assert_engines_agree(_weighted(nn.dense, (4, 2)), (X, W, b))
    # g = R W^T, dW = x^T R, db = sum over the batch [AGG III]
    np.testing.assert_allclose(gx, R @ W.T, rtol=1e-13)
    np.testing.assert_allclose(gW, X.T @ R, rtol=1e-13)
    np.testing.assert_allclose(gb, R.sum(axis=0), rtol=1e-13)


def test_batch_norm_backward_against_every_engine_and_the_closed_form():
    gamma, beta = np.array([1.5, -0.5, 2.0]), np.array([0.1, 0.2, -0.3])
    eps = 1e-5
    R = np.random.default_rng(0).normal(size=X.shape)
    layer = lambda v, g, b: nn.batch_norm(v, g, b, eps)
    gv, gg, gb = _assert_engines_agree(_weighted(layer, X.shape), (X, gamma, beta))
    np.testing.assert_allclose(ad.grad(_weighted(layer, X.shape), engine="paths")(X, gamma, beta), gv, rtol=1e-12)
    # Ioffe & Szegedy's backward pass, written out: with v_hat = (v - mu) / sigma,
    # dv = gamma / (n sigma) (n R - sum R - v_hat sum(R v_hat)), dgamma = sum R v_hat, dbeta = sum R
    n = X.shape[0]
    mu = X.mean(axis=0)
    sigma = np.sqrt(((X - mu) ** 2).mean(axis=0) + eps)
    v_hat = (X - mu) / sigma
    dv = gamma / (n * sigma) * (n * R - R.sum(axis=0) - v_hat * (R * v_hat).sum(axis=0))
    np.testing.assert_allclose(gv, dv, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(gg, (R * v_hat).sum(axis=0), rtol=1e-12)
    np.testing.assert_allclose(gb, R.sum(axis=0), rtol=1e-12)


def test_batch_norm_inference_backward():
    mean, var = np.array([0.1, -0.2, 0.3]), np.array([0.5, 1.5, 2.0])
    layer = lambda v, g, b: nn.batch_norm_inference(v, g, b, mean, var)
    _assert_engines_agree(_weighted(layer, X.shape), (X, np.ones(3) * 1.2, np.zeros(3)))


def test_losses_backward_and_closed_forms():
    z = RNG.normal(size=(4, 3))
    labels = np.array([0, 2, 1, 2])
    Y = nn.one_hot(labels, 3)
    g = _assert_engines_agree(lambda z: nn.softmax_cross_entropy(z, labels), (z,))
    softmax = np.exp(z) / np.exp(z).sum(axis=1, keepdims=True)
    np.testing.assert_allclose(g, (softmax - Y) / 4, rtol=1e-12)  # y_hat - y [RAB], mean over 4
    t = np.array([[1.0, 0.0, 1.0], [0.0, 0.0, 1.0], [1.0, 1.0, 0.0], [0.0, 1.0, 0.0]])
    g = _assert_engines_agree(lambda z: nn.binary_cross_entropy(z, t), (z,))
    np.testing.assert_allclose(g, (1 / (1 + np.exp(-z)) - t) / z.size, rtol=1e-12)
    target = RNG.normal(size=(4, 3))
    g = _assert_engines_agree(lambda p: nn.mse(p, target), (z,))
    np.testing.assert_allclose(g, 2 * (z - target) / z.size, rtol=1e-12)


def test_losses_are_numerically_stable_for_huge_logits():
    z = np.array([[1000.0, 0.0, -1000.0], [-800.0, 800.0, 0.0]])
    ce, g = ad.value_and_grad(lambda z: nn.softmax_cross_entropy(z, np.array([1, 1])))(z)
    # row 0: logsumexp = 1000 exactly in floats, loss 1000 - 0; row 1: loss 0
    assert ce == pytest.approx(500.0) and np.all(np.isfinite(g))
    np.testing.assert_allclose(g, np.array([[0.5, -0.5, 0.0], [0.0, 0.0, 0.0]]), atol=1e-300)
    bce, g = ad.value_and_grad(lambda z: nn.binary_cross_entropy(z, np.array([0.0, 1.0])))(np.array([800.0, -800.0]))
    assert bce == pytest.approx(800.0) and np.all(np.isfinite(g))  # -log(1 - sigmoid(800)) = 800
    np.testing.assert_allclose(g, [0.5, -0.5])


def test_label_and_parameter_errors_are_clear():
    with pytest.raises(ValueError, match="integers in 0..2"):
        nn.softmax_cross_entropy(np.zeros((2, 3)), np.array([0, 3]))
    with pytest.raises(ValueError, match=r"shape \(n, classes\)"):
        nn.softmax_cross_entropy(np.zeros(3), np.array([0]))
    with pytest.raises(ValueError, match="do not match"):
        nn.softmax_cross_entropy(np.zeros((2, 3)), np.zeros((2, 4)))
    with pytest.raises(ValueError, match="unknown activation"):
        nn.mlp(nn.init_mlp([2, 2]), np.zeros((3, 2)), "swish")
    with pytest.raises(ValueError, match="unknown initialiser"):
        nn.init_mlp([2, 2], init="xavier_magic")
    with pytest.raises(ValueError, match="W1, W2"):
        nn.mlp({"W1": np.eye(2), "W3": np.eye(2)}, np.zeros((3, 2)))
    with pytest.raises(ValueError, match="at least 2 examples"):
        nn.batch_norm(np.ones((1, 3)), 1.0, 0.0)
    with pytest.raises(ValueError, match="running averages"):
        nn.mlp(nn.init_mlp([2, 3, 2], batch_norm=True), np.zeros((1, 2)), training=False)


def test_l2_penalty_counts_weights_only():
    params = {"W1": np.array([[1.0, 2.0]]), "b1": np.array([5.0, 5.0]), "W2": np.array([[3.0], [1.0]])}
    assert nn.l2_penalty(params, 0.1) == pytest.approx(0.1 * (1 + 4 + 9 + 1))
    g = _assert_engines_agree(lambda p: nn.l2_penalty(p, 0.1), (params,))
    np.testing.assert_allclose(g["W1"], 0.2 * params["W1"])
    np.testing.assert_allclose(g["b1"], 0.0)


def test_mlp_backward_with_and_without_batch_norm():
    y = np.array([0, 1, 1, 0])
    for batch_norm in (False, True):
        params = nn.init_mlp([3, 2, 2], init="glorot", seed=1, batch_norm=batch_norm)
        loss = lambda p: nn.softmax_cross_entropy(nn.mlp(p, X, "tanh"), y) + nn.l2_penalty(p, 1e-2)
        _assert_engines_agree(loss, (params,))


@pytest.mark.parametrize(
    "init, std", [("lecun", np.sqrt(1 / 400)), ("he", np.sqrt(2 / 400)), ("glorot", np.sqrt(2 / 500))]
)
def test_initialisers_have_the_lectures_spread(init, std):
    W = nn.init_weights(400, 100, init, np.random.default_rng(0))
    # 40 000 Gaussian samples: the sample std is within 1 % of the true one (5 sigma ~ 1.8 %)
    assert W.shape == (400, 100) and abs(W.std() / std - 1) < 0.02 and abs(W.mean()) < 5 * std / 200


def test_batch_norm_training_statistics_running_averages_and_inference():
    params = nn.init_mlp([3, 5, 2], seed=0, batch_norm=True)
    assert set(params) == {"W1", "gamma1", "beta1", "W2", "b2"}
    rng = np.random.default_rng(0)
    population = rng.normal(loc=2.0, scale=3.0, size=(2000, 3))
    # training mode: the normalised pre-activations of any batch have mean 0 and variance var/(var+eps)
    v = population[:50] @ params["W1"]
    a = nn.batch_norm(v, 1.0, 0.0)
    np.testing.assert_allclose(a.mean(axis=0), 0.0, atol=1e-12)
    np.testing.assert_allclose(a.var(axis=0), v.var(axis=0) / (v.var(axis=0) + 1e-5), rtol=1e-12)
    # running averages of many batches approach the population statistics of x W1
    running = nn.init_running(params)
    assert set(running) == {"mean1", "var1"}
    for batch in np.split(population, 40):
        _, stats = nn.mlp(params, batch, return_stats=True)
        running = nn.update_running(running, stats, momentum=0.9)
    pre = population @ params["W1"]
    # 0.9 momentum keeps ~10 batches of 50: sampling error of the mean ~ 3 std / sqrt(500)
    np.testing.assert_allclose(running["mean1"], pre.mean(axis=0), atol=0.15 * pre.std(axis=0).max())
    np.testing.assert_allclose(running["var1"], pre.var(axis=0), rtol=0.15)
    # inference mode: one example at a time gives the same output as the whole batch
    one_by_one = np.vstack([nn.mlp(params, x[None], training=False, running=running) for x in population[:5]])
    np.testing.assert_allclose(one_by_one, nn.mlp(params, population[:5], training=False, running=running))
    # and it differs from training mode on that batch (other statistics)
    assert not np.allclose(one_by_one, nn.mlp(params, population[:5]))


def test_stats_through_grad_has_aux_are_plain_arrays():
    params = nn.init_mlp([3, 4, 2], seed=0, batch_norm=True)
    y = np.array([0, 1, 1, 0])

    def loss(p):
        logits, stats = nn.mlp(p, X, "relu", return_stats=True)
        return nn.softmax_cross_entropy(logits, y), stats

    grads, stats = ad.grad(loss, has_aux=True)(params)
    running = nn.update_running(nn.init_running(params), stats)
    np.testing.assert_allclose(running["mean1"], 0.1 * (X @ params["W1"]).mean(axis=0))
    assert set(grads) == set(params)


def test_layer_grad_norms_show_the_sigmoid_chain_vanishing():
    digits = data.load_digits()
    x, y = digits.X[:200] / 16.0, digits.y[:200]
    norms = {}
    for act, init in (("sigmoid", "lecun"), ("relu", "he")):
        params = nn.init_mlp([64, 30, 30, 30, 30, 10], init=init, seed=0)
        g = ad.grad(lambda p: nn.softmax_cross_entropy(nn.mlp(p, x, act), y))(params)
        norms[act] = nn.layer_grad_norms(g)
        np.testing.assert_allclose(norms[act][0], np.linalg.norm(g["b1"]))
    # sigmoid' <= 1/4: every earlier hidden layer's ||dL/db|| is smaller (Nielsen: ~4x per layer)
    assert np.all(np.diff(norms["sigmoid"][:4]) > 0) and norms["sigmoid"][3] / norms["sigmoid"][0] > 20
    assert norms["relu"][3] / norms["relu"][0] < 5


def test_iris_two_layer_network_reaches_95_percent_in_seconds():
    iris = data.load_iris()
    features = iris.X[:, 2:]  # petal length and width: D = 2 (+ a bias column)
    x = np.hstack([(features - features.mean(axis=0)) / features.std(axis=0), np.ones((150, 1))])
    rng = np.random.default_rng(0)
    params = {"V": nn.init_weights(3, 16, "glorot", rng), "W": nn.init_weights(16, 3, "glorot", rng)}

    def loss(p):
        return nn.softmax_cross_entropy(ad.sigmoid(x @ p["V"]) @ p["W"], iris.y)

    trained = optim.run(loss, params, optim.sgd(0.5), 400).params
    assert nn.accuracy(ad.sigmoid(x @ trained["V"]) @ trained["W"], iris.y) >= 0.95


def test_datasets_load_offline_with_their_published_facts():
    iris = data.load_iris()
    assert iris.X.shape == (150, 4) and np.bincount(iris.y).tolist() == [50, 50, 50]
    np.testing.assert_allclose(iris.X[0], [5.1, 3.5, 1.4, 0.2])
    # Fisher (1936) class means of sepal length: 5.006, 5.936, 6.588
    np.testing.assert_allclose([iris.X[iris.y == c, 0].mean() for c in range(3)], [5.006, 5.936, 6.588])
    digits = data.load_digits()
    assert digits.X.shape == (1797, 64) and digits.X.min() == 0 and digits.X.max() == 16
    assert np.bincount(digits.y).sum() == 1797 and len(digits.target_names) == 10
    spirals = data.make_spirals(50, classes=3, seed=1)
    assert spirals.X.shape == (150, 2) and np.array_equal(spirals.X, data.make_spirals(50, classes=3, seed=1).X)
    moons = data.make_moons(30, noise=0.0)
    np.testing.assert_allclose(moons.X[0], [1.0, 0.0])
    with pytest.raises(ValueError, match="n_per_class"):
        data.make_moons(0)


def test_import_adkit_does_not_load_the_training_modules():
    import subprocess
    import sys

    code = "import sys, adkit; print([m for m in ('adkit.optim', 'adkit.nn', 'adkit.data') if m in sys.modules])"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
    assert ad.optim.adam is optim.adam and ad.nn.mlp is nn.mlp and ad.data.load_iris is data.load_iris
