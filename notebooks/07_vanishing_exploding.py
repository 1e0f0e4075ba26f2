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
# # 7. Vanishing and exploding gradients
#
# Backpropagation multiplies one local derivative per layer. In a chain of sigmoid
# neurons each factor is w_j sigma'(z_j), and sigma' is at most 1/4, so the gradient
# reaching the first layers shrinks geometrically [SCH, AGG]; with large weights the same
# product grows geometrically instead. We reproduce the lecture's numbers with adkit's
# gradients: the 1/4 bound, the 16x drop over two layers, the w = 100 explosion
# (25 per layer), and the per-layer gradient norms of a [64, 30, 30, 30, 30, 10] network
# with sigmoid, ReLU and batch normalisation.

# %%
import matplotlib.pyplot as plt
import numpy as np

import adkit as ad
from adkit import data, nn
from adkit.display import Table

try:  # in Jupyter, display() renders the HTML tables; as a plain script, print the text
    from IPython.display import display
except ImportError:
    display = print

# %% [markdown]
# ## sigmoid' <= 1/4, tanh' <= 1
#
# sigma'(z) = sigma(z)(1 - sigma(z)) is largest at z = 0, where sigma = 1/2: 1/4.
# adkit differentiates the registry's sigmoid; the maximum over a fine grid is the bound.

# %%
z = np.linspace(-8, 8, 1601)  # contains z = 0
d_sigmoid = ad.grad(lambda z: np.sum(ad.sigmoid(z)))(z)  # elementwise: d/dz_i of sum_j sigma(z_j)
d_tanh = ad.grad(lambda z: np.sum(np.tanh(z)))(z)
assert d_sigmoid.max() == 0.25 and z[np.argmax(d_sigmoid)] == 0.0
assert d_tanh.max() == 1.0
print(f"max sigma' = {d_sigmoid.max()}, max tanh' = {d_tanh.max()}; ten sigmoid layers: 0.25^10 = {0.25**10:.3g}")

fig, ax = plt.subplots(figsize=(6, 3.5))
ax.plot(z, d_sigmoid, label="sigmoid'(z)")
ax.plot(z, d_tanh, "--", label="tanh'(z)")
ax.axhline(0.25, color="gray", lw=0.8, ls=":")
ax.set_xlabel("z")
ax.set_title("local derivatives of the squashing activations")
ax.legend()
plt.show()

# %% [markdown]
# ## A chain of one-neuron layers [SCH]
#
# a_j = sigma(z_j), z_j = w_j a_(j-1) + b_j, j = 1..4, and a cost C(a_4). The slide writes
# the gradient with respect to the first bias out in full:
#
#     dC/db1 = sigma'(z1) w2 sigma'(z2) w3 sigma'(z3) w4 sigma'(z4) dC/da4
#
# With |w_j| < 1 each factor |w_j sigma'(z_j)| is below 1/4, so dC/db1 is at least 16
# times smaller than dC/db3. We check the product formula against adkit's gradient, then
# the bound, for random weights in (-1, 1).


# %%
def chain(b, w, x=0.7):
    """Four one-neuron sigmoid layers; the cost is C = a4^2 / 2 (dC/da4 = a4)."""
    a = x
    for j in range(4):
        a = ad.sigmoid(w[j] * a + b[j])
    return 0.5 * a**2


def chain_by_hand(b, w, x=0.7):
    """The slide's product of local derivatives, in plain numpy."""
    sig = lambda t: 1 / (1 + np.exp(-t))
    a, zs = x, []
    for j in range(4):
        zs.append(w[j] * a + b[j])
        a = sig(zs[-1])
    ds = [sig(t) * (1 - sig(t)) for t in zs]
    return ds[0] * w[1] * ds[1] * w[2] * ds[2] * w[3] * ds[3] * a


rng = np.random.default_rng(0)
ratios = []
for _ in range(200):
    w, b = rng.uniform(-1, 1, 4), rng.normal(size=4)
    g = ad.grad(chain)(b, w)
    assert np.isclose(g[0], chain_by_hand(b, w), rtol=1e-12, atol=0)
    ratios.append(abs(g[2] / g[0]))
ratios = np.array(ratios)
assert ratios.min() >= 16  # |w sigma'| <= 1/4 twice
print(f"|dC/db3| / |dC/db1| over 200 random chains: min {ratios.min():.1f}, median {np.median(ratios):.0f}")

# %% [markdown]
# Ten layers at the best possible point (every z_j = 0, w_j = 1, biases b_j = -a_(j-1)):
# dC/db1 = 0.25^10 dC/da10 (C = a10, so dC/da10 = 1).


# %%
def deep_chain(b, w, x=0.7):
    a = x
    for j in range(len(b)):
        a = ad.sigmoid(w[j] * a + b[j])
    return a  # C = a_L, dC/da_L = 1


def biases_for_zero_z(w, x=0.7):
    """b_j = -w_j a_(j-1), so that every z_j = 0 (sigma' at its maximum 1/4)."""
    b, a = [], x
    for wj in w:
        b.append(-wj * a)
        a = 0.5
    return np.array(b)


w10 = np.ones(10)
g10 = ad.grad(deep_chain)(biases_for_zero_z(w10), w10)
assert np.isclose(g10[0], 0.25**10, rtol=1e-12)
print(f"dC/db1 = {g10[0]:.4g} = 0.25^10; dC/db10 = {g10[-1]}")

# %% [markdown]
# ## Exploding: w = 100 [SCH]
#
# With w_j = 100 and b_j = -100 a_(j-1) every z_j is 0 again, sigma' = 1/4, and each layer
# multiplies the gradient by w sigma' = 25. Going back from layer 4 to layer 1 the
# gradient grows 25^3 = 15625 times.

# %%
w_big = np.full(4, 100.0)
g_big = ad.grad(deep_chain)(biases_for_zero_z(w_big), w_big)
growth = g_big[:-1] / g_big[1:]
assert np.allclose(growth, 25.0, rtol=1e-12)
assert np.isclose(g_big[0] / g_big[3], 25.0**3, rtol=1e-12)
display(
    Table(
        "dC/db_j in a chain with w = 100, z = 0",
        ["layer j", "dC/db_j", "factor to the next layer"],
        [[str(j + 1), f"{g_big[j]:.6g}", f"{growth[j]:.6g}" if j < 3 else ""] for j in range(4)],
    )
)

# %% [markdown]
# ## Per-layer gradient norms of a deep network [SCH]
#
# Nielsen's experiment behind the slide: a [784, 30, 30, 30, 30, 10] sigmoid network on
# MNIST has ||dL/db|| = 0.003, 0.017, 0.07, 0.285 in hidden layers 1..4 at initialisation:
# each layer learns about 4x slower than the next. We take the 8x8 digits (64 inputs,
# adkit.data) and a [64, 30, 30, 30, 30, 10] network, and compare sigmoid with
# sqrt(1/r) initialisation, ReLU with He initialisation, and sigmoid with batch
# normalisation before each activation. The gradient is the mean over 1000 examples of
# the softmax cross-entropy's.

# %%
digits = data.load_digits()
x, y = digits.X[:1000] / 16.0, digits.y[:1000]
sizes = [64, 30, 30, 30, 30, 10]
setups = {
    "sigmoid, sqrt(1/r)": ("sigmoid", "lecun", False),
    "ReLU, He": ("relu", "he", False),
    "sigmoid + batch norm": ("sigmoid", "lecun", True),
}
norms = {}
for name, (act, init, batch_norm) in setups.items():
    params = nn.init_mlp(sizes, init=init, seed=0, batch_norm=batch_norm)
    grads = ad.grad(lambda p: nn.softmax_cross_entropy(nn.mlp(p, x, act), y))(params)
    norms[name] = nn.layer_grad_norms(grads)[:4]  # the four hidden layers

display(
    Table(
        "||dL/db|| per hidden layer at initialisation (batch norm: ||dL/dbeta||)",
        ["network", "layer 1", "layer 2", "layer 3", "layer 4", "layer 4 / layer 1"],
        [[name] + [f"{v:.3g}" for v in n] + [f"{n[3] / n[0]:.1f}"] for name, n in norms.items()]
        + [["Nielsen, MNIST sigmoid", "0.003", "0.017", "0.07", "0.285", f"{0.285 / 0.003:.1f}"]],
    )
)

sig = norms["sigmoid, sqrt(1/r)"]
per_layer = sig[1:] / sig[:-1]
assert np.all((per_layer > 2.5) & (per_layer < 8))  # Nielsen: 5.7, 4.1, 4.1
assert sig[3] / sig[0] > 30
assert norms["ReLU, He"][3] / norms["ReLU, He"][0] < 3
assert norms["sigmoid + batch norm"][3] / norms["sigmoid + batch norm"][0] < 3
print("sigmoid: factor per layer", np.round(per_layer, 2))

# %%
fig, ax = plt.subplots(figsize=(6, 4))
for (name, n), style in zip(norms.items(), ["o-", "s--", "^-."]):
    ax.semilogy(range(1, 5), n, style, label=name)
ax.semilogy(range(1, 5), [0.003, 0.017, 0.07, 0.285], "k:", label="Nielsen (MNIST, sigmoid)")
ax.set_xticks(range(1, 5))
ax.set_xlabel("hidden layer")
ax.set_ylabel("||dL/db||")
ax.set_title("earlier layers learn slower with sigmoids")
ax.legend(fontsize=8)
plt.show()

# %% [markdown]
# The fixes of the slide, in adkit's terms: ReLU (`nn.ACTIVATIONS["relu"]`, derivative 1 on
# the active side), careful initialisation (`nn.init_mlp(..., init="he")`), batch
# normalisation (notebook 10) and gradient clipping for the exploding case
# (`ad.optim.clip_by_norm(opt, c)`, notebook 08).
