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
# # 10. Batch normalisation
#
# Batch normalisation standardises each unit's pre-activation over the mini-batch, then
# lets the network rescale it [AGG, SCH, RAB]:
#
#     mu = mean_i v_i;  sigma^2 = mean_i (v_i - mu)^2 + eps;  v_hat = (v - mu) / sigma;
#     a = gamma v_hat + beta
#
# gamma and beta are learned by backpropagation *through* mu and sigma: every output
# depends on every example of the batch. At inference there is no batch, and running
# averages of mu and sigma^2 collected during training take its place. We check the
# backward pass in every engine, train a network in training mode and use it in
# inference mode, and look at what normalisation does to the gradient norms.

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
# ## The backward pass, five ways
#
# With an upstream gradient R = dL/da, Ioffe and Szegedy's backward pass is
#
#     dL/dv = gamma / (n sigma) (n R - sum_i R_i - v_hat sum_i R_i v_hat_i),
#     dL/dgamma = sum_i R_i v_hat_i,  dL/dbeta = sum_i R_i.
#
# adkit's engines never see this formula: they differentiate `nn.batch_norm`, written as
# the forward definition above. Symbolic rebuilds it in sympy, numeric uses finite
# differences, paths sums over every path of the graph.

# %%
rng = np.random.default_rng(0)
n, units, eps = 4, 2, 1e-5
v = rng.normal(loc=1.0, scale=2.0, size=(n, units))
gamma, beta = np.array([1.5, -2.0]), np.array([0.1, -0.3])
R = rng.normal(size=(n, units))


def upstream(v, gamma, beta):
    return np.sum(R * nn.batch_norm(v, gamma, beta, eps))


mu = v.mean(axis=0)
sigma = np.sqrt(((v - mu) ** 2).mean(axis=0) + eps)
v_hat = (v - mu) / sigma
by_hand = (
    gamma / (n * sigma) * (n * R - R.sum(axis=0) - v_hat * (R * v_hat).sum(axis=0)),
    (R * v_hat).sum(axis=0),
    R.sum(axis=0),
)
rows = []
for engine in ad.ENGINES:
    grads = ad.grad(upstream, argnums=(0, 1, 2), engine=engine)(v, gamma, beta)
    worst = max(float(np.max(np.abs(g - h) / (np.abs(h) + 1e-300))) for g, h in zip(grads, by_hand))
    rows.append([engine, f"{worst:.1e}"])
    # finite differences: truncation and round-off ~1e-9 relative; every other engine: round-off only
    assert worst < (1e-7 if engine == "numeric" else 1e-10), (engine, worst)
display(
    Table(
        "batch norm backward: largest relative difference from Ioffe & Szegedy's formula", ["engine", "rel. diff"], rows
    )
)

# %% [markdown]
# The same in adkit's side-by-side comparison (reference: the symbolic engine at 30 digits):

# %%
display(ad.compare(upstream, v, gamma, beta))

# %% [markdown]
# ## Training mode and inference mode
#
# A [2, 16, 16, 2] network with batch normalisation before each hidden ReLU learns the two
# moons. `nn.mlp(..., return_stats=True)` also returns the batch statistics, which
# `ad.grad(..., has_aux=True)` passes through untouched; `nn.update_running` folds them
# into running averages (momentum 0.9). At inference (`training=False`) those averages
# replace the batch's statistics, so a single example can be classified, and the answer no
# longer depends on which other examples share the batch.

# %%
moons = data.make_moons(100, noise=0.1, seed=0)
params = nn.init_mlp([2, 16, 16, 2], init="he", seed=0, batch_norm=True)
running = nn.init_running(params)
opt = optim.adam(0.02)
state = opt.init(params)
batches = np.random.default_rng(1)


def loss_and_stats(p, x, y):
    logits, stats = nn.mlp(p, x, "relu", return_stats=True)
    return nn.softmax_cross_entropy(logits, y), stats


value_grad = ad.value_and_grad(loss_and_stats, has_aux=True)
losses = []
for _ in range(100):
    batch = batches.choice(len(moons.y), size=32, replace=False)
    (loss, stats), grads = value_grad(params, moons.X[batch], moons.y[batch])
    params, state = opt.update(params, grads, state)
    running = nn.update_running(running, stats, momentum=0.9)
    losses.append(float(loss))

eval_logits = nn.mlp(params, moons.X, "relu", training=False, running=running)
eval_accuracy = nn.accuracy(eval_logits, moons.y)
print(
    f"mini-batch loss {np.mean(losses[:10]):.3f} -> {np.mean(losses[-10:]):.3f}; inference accuracy {eval_accuracy:.1%}"
)
assert eval_accuracy >= 0.95

# inference mode: one example at a time gives exactly the batch's answers
one_at_a_time = np.vstack([nn.mlp(params, x[None], "relu", training=False, running=running) for x in moons.X[:8]])
np.testing.assert_allclose(one_at_a_time, eval_logits[:8], rtol=1e-12)
# training mode: the same example gets another output in another batch
first = moons.X[:1]
with_upper = nn.mlp(params, np.vstack([first, moons.X[1:16]]), "relu")[0]
with_lower = nn.mlp(params, np.vstack([first, moons.X[100:115]]), "relu")[0]
print("example 0 in training mode, two batches:", with_upper.round(3), with_lower.round(3))
assert not np.allclose(with_upper, with_lower, atol=1e-3)
try:
    nn.mlp(params, first, "relu")
except ValueError as error:
    print("training mode, one example:", error)

# running averages vs the statistics of the whole training set at the first layer
pre = moons.X @ params["W1"]
np.testing.assert_allclose(running["mean1"], pre.mean(axis=0), atol=0.2 * pre.std(axis=0).max())

# %%
fig, axes = plt.subplots(1, 2, figsize=(11, 4))
axes[0].plot(losses, lw=0.8)
axes[0].set_xlabel("step (mini-batches of 32)")
axes[0].set_ylabel("softmax cross-entropy")
axes[0].set_title("training, batch statistics")
G0, G1 = np.meshgrid(np.linspace(-1.5, 2.5, 200), np.linspace(-1.0, 1.5, 200))
grid = np.column_stack([G0.ravel(), G1.ravel()])
regions = np.argmax(nn.mlp(params, grid, "relu", training=False, running=running), axis=1).reshape(G0.shape)
axes[1].contourf(G0, G1, regions, levels=[-0.5, 0.5, 1.5], alpha=0.25, colors=["C0", "C1"])
for c, marker in zip(range(2), ["o", "s"]):
    axes[1].scatter(*moons.X[moons.y == c].T, marker=marker, s=12, c=f"C{c}", label=moons.target_names[c])
axes[1].set_title(f"inference mode (running averages): {eval_accuracy:.0%}")
axes[1].legend(fontsize=8)
plt.show()

# %% [markdown]
# ## What normalisation does to the gradient norms
#
# The [64, 30, 30, 30, 30, 10] sigmoid network of notebook 7 on the 8x8 digits: without
# normalisation ||dL/db|| shrinks about 4x per layer going down; with batch norm
# (||dL/dbeta||, beta being the layer's bias) the four hidden layers receive gradients of
# the same size. Then a few gradient-descent steps with the same step size for both:
# the normalised network learns faster, since its first layers move too.

# %%
digits = data.load_digits()
x, y = digits.X[:300] / 16.0, digits.y[:300]
sizes = [64, 30, 30, 30, 30, 10]
networks = {
    "sigmoid": nn.init_mlp(sizes, init="lecun", seed=0),
    "sigmoid + batch norm": nn.init_mlp(sizes, init="lecun", seed=0, batch_norm=True),
}


def digits_loss(p):
    return nn.softmax_cross_entropy(nn.mlp(p, x, "sigmoid"), y)


norms = {name: nn.layer_grad_norms(ad.grad(digits_loss)(p))[:4] for name, p in networks.items()}
display(
    Table(
        "||dL/db|| per hidden layer at initialisation",
        ["network", "layer 1", "layer 2", "layer 3", "layer 4", "layer 4 / layer 1"],
        [[name] + [f"{g:.3g}" for g in ns] + [f"{ns[3] / ns[0]:.1f}"] for name, ns in norms.items()],
    )
)
assert norms["sigmoid"][3] / norms["sigmoid"][0] > 30
assert norms["sigmoid + batch norm"][3] / norms["sigmoid + batch norm"][0] < 3

curves = {name: optim.run(digits_loss, p, optim.sgd(0.5), 40).losses for name, p in networks.items()}
print({name: f"{c[0]:.3f} -> {c[-1]:.3f}" for name, c in curves.items()})
assert curves["sigmoid + batch norm"][-1] < 0.5 * curves["sigmoid"][-1]

fig, axes = plt.subplots(1, 2, figsize=(11, 4))
for (name, ns), style in zip(norms.items(), ["o-", "s--"]):
    axes[0].semilogy(range(1, 5), ns, style, label=name)
    axes[1].plot(curves[name], style[1:], label=name)
axes[0].set_xticks(range(1, 5))
axes[0].set_xlabel("hidden layer")
axes[0].set_ylabel("||dL/db||")
axes[0].set_title("gradient norms at initialisation")
axes[1].set_xlabel("gradient-descent step (eta = 0.5, full batch of 300)")
axes[1].set_ylabel("loss")
axes[1].set_title("training")
for ax in axes:
    ax.legend(fontsize=8)
plt.show()
