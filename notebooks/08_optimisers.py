# ---
# jupyter:
#   jupytext:
#     text_representation:
#       extension: .py
#       format_name: percent
#       format_version: '1.3'
#       jupytext_version: 1.19.6
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# # 8. Optimisers
#
# Gradient descent takes theta <- theta - eta g. The lectures' optimisers change how the
# gradient g becomes a step: momentum accumulates a velocity, AdaGrad / RMSProp / AdaDelta
# scale each component by its gradient history, Adam does both with bias correction,
# delta-bar-delta adapts one rate per component [ECH, AGG, SCH, HAM]. `adkit.optim` has
# each rule as written on the slides, optax-style:
#
#     opt = ad.optim.adam(lr=1e-3); state = opt.init(params)
#     params, state = opt.update(params, grads, state)
#
# We run them on the lecture's bowls and on Rosenbrock's valley, then train the two-layer
# Iris network of the lecture [RAB].

# %%
import matplotlib.pyplot as plt
import numpy as np

import adkit as ad
from adkit import data, nn, optim
from adkit.display import Table

try:  # in Jupyter, display() renders the HTML tables; as a plain script, print the text
    from IPython.display import display
except ImportError:
    display = print

# %% [markdown]
# ## The rules
#
# Each optimiser carries its rule (`opt.rule`) in the lecture's symbols: theta the
# parameters, g the gradient, eta the learning rate, d the momentum decay, rho a moving
# average's decay, delta the stabiliser; r, s and v start at 0.

# %%
optimisers = {
    "sgd": optim.sgd(0.05),
    "momentum (Echenim)": optim.momentum(0.05, d=0.5),
    "momentum (Hamilton)": optim.momentum_hamilton(alpha=0.05, beta=0.5),
    "nesterov": optim.nesterov(0.05, d=0.5),
    "simplified nesterov": optim.simplified_nesterov(0.05, d=0.5),
    "adagrad": optim.adagrad(0.5),
    "rmsprop": optim.rmsprop(0.05),
    "rmsprop + nesterov": optim.rmsprop_nesterov(0.02, d=0.5),
    "adadelta": optim.adadelta(rho=0.99),
    "adam": optim.adam(0.2),
    "delta-bar-delta": optim.delta_bar_delta(0.05, kappa=0.01, phi=0.3),
}
display(
    Table("update rules", ["optimiser", "rule"], [[name, " ".join(o.rule.split())] for name, o in optimisers.items()])
)

# %% [markdown]
# ## Circular and elliptical bowls
#
# On L = x^2 + y^2 the gradient points at the minimum, and gradient descent walks
# straight to it. On L = x^2 + 4 y^2 the gradient is steeper across the valley than along
# it: with a step that suits the steep direction, y overshoots and changes sign at every
# step while x creeps: the zig-zag.

# %%
circular = lambda w: w[0] ** 2 + w[1] ** 2
elliptical = lambda w: w[0] ** 2 + 4 * w[1] ** 2
start = np.array([-2.0, 1.0])
gd = optim.sgd(0.22)
path_circ = np.array(optim.run(circular, start, gd, 25).path)
path_ell = np.array(optim.run(elliptical, start, gd, 25).path)

# circular: every iterate on the line from the start to the minimum (x = -2 y)
assert np.allclose(path_circ[:, 0], -2 * path_circ[:, 1], rtol=1e-12, atol=1e-300)
# elliptical: y flips sign each step (factor 1 - 8 eta = -0.76), x keeps its sign (1 - 2 eta = 0.56)
assert np.all(np.sign(path_ell[1:, 1]) == -np.sign(path_ell[:-1, 1]))
assert np.all(path_ell[:, 0] < 0)


def contours(ax, f, xlim, ylim, levels):
    X, Y = np.meshgrid(np.linspace(*xlim, 200), np.linspace(*ylim, 200))
    ax.contour(X, Y, f(np.array([X, Y])), levels=levels, colors="lightgray", linewidths=0.8)
    ax.plot(0, 0, "k+")


fig, axes = plt.subplots(1, 2, figsize=(10, 4))
for ax, f, path, title in [
    (axes[0], circular, path_circ, "x^2 + y^2: straight in"),
    (axes[1], elliptical, path_ell, "x^2 + 4y^2: zig-zag"),
]:
    contours(ax, f, (-2.3, 1), (-1.2, 1.2), 15)
    ax.plot(path[:, 0], path[:, 1], "o-", ms=3, label="gradient descent, eta = 0.22")
    ax.set_title(title)
    ax.set_aspect("equal")
    ax.legend(fontsize=8, loc="lower right")
plt.show()

# %% [markdown]
# ## Momentum damps the zig-zag
#
# With a small safe step eta = 0.05, plain gradient descent needs many steps; momentum's
# velocity v <- d v - eta g adds up the consistent component along the valley and cancels
# the alternating one across it. Steps to reach L < 1e-6 from (-2, 1), every optimiser
# on the elliptical bowl (at most 300 steps):


# %%
def steps_to(losses, tol=1e-6):
    reached = np.nonzero(losses < tol)[0]
    return int(reached[0]) if reached.size else None


runs = {name: optim.run(elliptical, start, opt, 300) for name, opt in optimisers.items()}
steps = {name: steps_to(r.losses) for name, r in runs.items()}
display(
    Table(
        "x^2 + 4y^2 from (-2, 1)",
        ["optimiser", "hyperparameters", "steps to L < 1e-6", "L after 300 steps"],
        [
            [name, repr(optimisers[name]).split("(", 1)[1][:-1], str(steps[name] or "> 300"), f"{r.losses[-1]:.2g}"]
            for name, r in runs.items()
        ],
    )
)
assert steps["momentum (Echenim)"] < steps["sgd"] / 2
assert steps["momentum (Echenim)"] == steps["momentum (Hamilton)"]  # the same method, two notations
# Bengio's form holds Theta = theta + d v: the same method, a step apart at most in this count
assert abs(steps["nesterov"] - steps["simplified nesterov"]) <= 1

# %% [markdown]
# RMSProp's step eta / sqrt(r) g does not shrink with the gradient near the bottom: with a
# constant eta it hovers around the minimum (L ~ 1e-3 above). A schedule fixes it:
# exponential decay eta_t = eta0 exp(-k t) [AGG], which composes with any rule.

# %%
decayed = optim.run(elliptical, start, optim.rmsprop(optim.exponential_decay(0.05, 0.02)), 300)
print(
    f"rmsprop, constant eta: L = {runs['rmsprop'].losses[-1]:.2g}; eta_t = 0.05 exp(-0.02 t): L = {decayed.losses[-1]:.2g}"
)
assert decayed.losses[-1] < 1e-3 * runs["rmsprop"].losses[-1]

# %%
fig, ax = plt.subplots(figsize=(6, 4))
contours(ax, elliptical, (-2.3, 1), (-1.2, 1.2), 15)
for name, style in [("sgd", "o-"), ("momentum (Echenim)", "s--"), ("nesterov", "^-."), ("adam", "d:")]:
    path = np.array(runs[name].path[:40])
    ax.plot(path[:, 0], path[:, 1], style, ms=3, label=name)
ax.set_title("x^2 + 4y^2, first 40 steps")
ax.set_aspect("equal")
ax.legend(fontsize=8)
plt.show()

# %% [markdown]
# ## Rosenbrock's valley
#
# L = (1 - x)^2 + 100 (y - x^2)^2 has its minimum at (1, 1) at the end of a long curved
# valley. From (-1.2, 1), gradient descent with the largest step that does not diverge
# crawls along the valley floor; momentum and Adam reach the end.

# %%
rosenbrock = lambda w: (1 - w[0]) ** 2 + 100 * (w[1] - w[0] ** 2) ** 2
valley = {
    "sgd, eta = 1e-3": optim.run(rosenbrock, np.array([-1.2, 1.0]), optim.sgd(1e-3), 1500),
    "momentum, eta = 1e-3, d = 0.9": optim.run(rosenbrock, np.array([-1.2, 1.0]), optim.momentum(1e-3, 0.9), 1500),
    "adam, eta = 0.05": optim.run(rosenbrock, np.array([-1.2, 1.0]), optim.adam(0.05), 1500),
}
distance = {name: float(np.linalg.norm(r.params - 1.0)) for name, r in valley.items()}
display(
    Table(
        "Rosenbrock from (-1.2, 1), 1500 steps",
        ["optimiser", "final (x, y)", "distance to (1, 1)", "final L"],
        [
            [n, np.array2string(r.params, precision=4), f"{distance[n]:.2g}", f"{r.losses[-1]:.2g}"]
            for n, r in valley.items()
        ],
    )
)
assert distance["sgd, eta = 1e-3"] > 0.1
assert distance["momentum, eta = 1e-3, d = 0.9"] < 1e-2 and distance["adam, eta = 0.05"] < 1e-2

# %%
fig, ax = plt.subplots(figsize=(6, 4.5))
X, Y = np.meshgrid(np.linspace(-1.5, 1.5, 300), np.linspace(-0.5, 1.6, 300))
ax.contour(X, Y, np.log10(rosenbrock(np.array([X, Y])) + 1e-3), levels=20, colors="lightgray", linewidths=0.8)
for (name, r), style in zip(valley.items(), ["-", "--", "-."]):
    path = np.array(r.path)
    ax.plot(path[:, 0], path[:, 1], style, lw=1.5, label=name)
ax.plot(1, 1, "k*", ms=10)
ax.set_title("Rosenbrock: trajectories (contours of log10 L)")
ax.legend(fontsize=8, loc="lower right")
plt.show()

# %% [markdown]
# ## The Iris network [RAB]
#
# y_hat = softmax(W h(V x)) with x = (petal length, petal width, 1): D = 2 features plus a
# bias input, M = 16 sigmoid hidden units, C = 3 classes, softmax cross-entropy, gradient
# descent. The lecture writes the backward pass by hand:
#
#     dy = yh - y; dw = z.T @ dy / N; dz = dy @ w.T; dv = x.T @ (dz * z * (1 - z)) / N
#
# adkit's gradient of the loss must be exactly that.

# %%
iris = data.load_iris()
features = iris.X[:, 2:]
x = np.hstack([(features - features.mean(axis=0)) / features.std(axis=0), np.ones((150, 1))])
Y = nn.one_hot(iris.y, 3)
rng = np.random.default_rng(0)
params = {"V": nn.init_weights(3, 16, "glorot", rng), "W": nn.init_weights(16, 3, "glorot", rng)}


def logits(p, x):
    return ad.sigmoid(x @ p["V"]) @ p["W"]


def loss(p):
    return nn.softmax_cross_entropy(logits(p, x), iris.y)


def lecture_gradient(p):
    z = 1 / (1 + np.exp(-(x @ p["V"])))
    u = z @ p["W"]
    yh = np.exp(u - u.max(axis=1, keepdims=True))
    yh /= yh.sum(axis=1, keepdims=True)
    dy = yh - Y
    dw = z.T @ dy / len(x)
    dz = dy @ p["W"].T
    dv = x.T @ (dz * z * (1 - z)) / len(x)
    return {"V": dv, "W": dw}


g_adkit, g_hand = ad.grad(loss)(params), lecture_gradient(params)
for key in params:
    np.testing.assert_allclose(g_adkit[key], g_hand[key], rtol=1e-12, atol=1e-15)

training = optim.run(loss, params, optim.sgd(0.5), 400)
accuracy = nn.accuracy(logits(training.params, x), iris.y)
print(f"loss {training.losses[0]:.3f} -> {training.losses[-1]:.3f}; training accuracy {accuracy:.1%}")
assert accuracy >= 0.95

# %%
fig, axes = plt.subplots(1, 2, figsize=(11, 4))
axes[0].plot(training.losses)
axes[0].set_xlabel("step")
axes[0].set_ylabel("softmax cross-entropy")
axes[0].set_title("gradient descent, eta = 0.5")
G0, G1 = np.meshgrid(np.linspace(-2.2, 2.2, 300), np.linspace(-2.2, 2.2, 300))
grid = np.column_stack([G0.ravel(), G1.ravel(), np.ones(G0.size)])
regions = np.argmax(logits(training.params, grid), axis=1).reshape(G0.shape)
axes[1].contourf(G0, G1, regions, levels=[-0.5, 0.5, 1.5, 2.5], alpha=0.25, colors=["C0", "C1", "C2"])
for c, marker in zip(range(3), ["o", "s", "^"]):
    axes[1].scatter(x[iris.y == c, 0], x[iris.y == c, 1], marker=marker, s=14, c=f"C{c}", label=iris.target_names[c])
axes[1].set_xlabel("petal length (standardised)")
axes[1].set_ylabel("petal width (standardised)")
axes[1].set_title(f"decision regions, {accuracy:.0%} training accuracy")
axes[1].legend(fontsize=8)
plt.show()
