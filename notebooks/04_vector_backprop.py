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
# # 4. Vector-centric backpropagation
#
# Between layers i and i+1 with Jacobian J (J_kr = d f_k / d z_i^(r)), the backward pass
# is g_i = J^T g_(i+1) [AGG III]. For the usual layers J^T g never needs J: each layer has
# a short backward rule. We check the lecture's table of rules against adkit's engines,
# then implement Echenim's mini-batch algorithm in matrix form in plain numpy and check
# it against adkit.

# %%
import numpy as np

import adkit as ad
from adkit.display import Table

try:  # in Jupyter, display() renders the HTML tables; as a plain script, print the text
    from IPython.display import display
except ImportError:
    display = print

# %% [markdown]
# ## The table of forward and backward rules
#
# z is a layer's input, z' its output, g' the gradient arriving from above, g the gradient
# passed below. The inputs avoid the kinks (0 for ReLU, +-1 for hard tanh), where the
# derivative is a convention.

# %%
rng = np.random.default_rng(0)
z = np.array([-1.7, -0.4, 0.3, 0.9, 2.2])
W = rng.normal(size=(5, 3))
g_up5, g_up3 = rng.normal(size=5), rng.normal(size=3)

layers = {
    # name: (forward z -> z', backward (z, z', g') -> g, g', forward rule, backward rule)
    "linear": (lambda z: W.T @ z, lambda z, zo, g: W @ g, g_up3, "z' = W^T z", "g = W g'"),
    "sigmoid": (ad.sigmoid, lambda z, zo, g: g * zo * (1 - zo), g_up5, "z' = 1/(1+exp(-z))", "g = g' z'(1-z')"),
    "tanh": (np.tanh, lambda z, zo, g: g * (1 - zo**2), g_up5, "z' = tanh z", "g = g' (1-z'^2)"),
    "relu": (ad.relu, lambda z, zo, g: g * (z > 0), g_up5, "z' = max(z, 0)", "g = g' I(z>0)"),
    "hard tanh": (
        ad.hard_tanh,
        lambda z, zo, g: g * ((z >= -1) & (z <= 1)),
        g_up5,
        "z' = clip(z, -1, 1)",
        "g = g' inside [-1,1], 0 outside",
    ),
    "max": (
        np.max,
        lambda z, zo, g: g * (z == zo),
        1.0,
        "z' = max_k z_k",
        "g = g' at the argmax, 0 elsewhere",
    ),
}
engines = ("forward", "reverse", "symbolic", "paths")

# %% [markdown]
# Each engine computes g as the gradient of g' . f(z) with respect to z; the table column
# shows the largest difference from the rule.

# %%
rows = []
for name, (fwd, bwd, g_up, f_rule, b_rule) in layers.items():
    z_out = fwd(z)
    g_rule = bwd(z, z_out, g_up)
    errors = []
    for engine in engines:
        g_engine = ad.grad(lambda z, fwd=fwd, g_up=g_up: np.sum(g_up * fwd(z)), engine=engine)(z)
        errors.append(float(np.max(np.abs(g_engine - g_rule))))
    # and reverse mode's own pullback, which is exactly J^T g'
    _, pullback = ad.vjp(fwd, z)
    errors.append(float(np.max(np.abs(pullback(g_up)[0] - g_rule))))
    assert max(errors) < 1e-12, (name, errors)
    rows.append([name, f_rule, b_rule, *(f"{e:.1e}" for e in errors)])
display(Table("backward rules vs adkit (max |difference|)", ["layer", "forward", "backward", *engines, "vjp"], rows))

# %% [markdown]
# The same rule is J^T g' with the Jacobian written out: for the elementwise layers J is
# diagonal, for max it is a single row with one 1.

# %%
for name in ("sigmoid", "max"):
    fwd, bwd, g_up, *_ = layers[name]
    J = ad.jacobian(fwd, engine="forward")(z)
    print(f"{name}: Jacobian shape {np.shape(J)}")
    print(np.round(J, 4))
    assert np.allclose(np.atleast_2d(J).T @ np.atleast_1d(g_up), bwd(z, fwd(z), g_up), rtol=1e-13)

# %% [markdown]
# ## Echenim's mini-batch algorithm in matrix form
#
# A batch of M examples is the M columns of a matrix. With Omega^i of shape
# (n_(i-1), n_i) and Phi the activation:
#
# - forward: zeta^i = Omega^i^T alpha^(i-1) + beta^i, alpha^i = Phi(zeta^i);
# - backward: B^L = Phi'(zeta^L) ⊙ grad_a C, B^j = Phi'(zeta^j) ⊙ (Omega^(j+1) B^(j+1));
# - gradients: grad Omega^j = (1/M) alpha^(j-1) B^j^T, grad beta^j = (1/M) B^j 1_M.
#
# Here Phi is the sigmoid everywhere and the cost is the mean over the batch of
# 1/2 ||alpha^L - y||^2, so the per-example grad_a C is alpha^L - y.

# %%
sizes = [4, 6, 5, 3]  # n_0 (inputs), hidden, hidden, n_L (outputs)
M = 8
X = rng.normal(size=(sizes[0], M))
Y = rng.uniform(size=(sizes[-1], M))
params = [
    {"Omega": rng.normal(size=(a, b)) / np.sqrt(a), "beta": rng.normal(size=b) * 0.1} for a, b in zip(sizes, sizes[1:])
]


def sigmoid(t):
    return 1 / (1 + np.exp(-t))


def echenim(params, X, Y):
    """Forward and backward pass in matrix form; returns the gradients and the P^j."""
    alphas, zetas = [X], []
    for layer in params:
        zetas.append(layer["Omega"].T @ alphas[-1] + layer["beta"][:, None])
        alphas.append(sigmoid(zetas[-1]))
    dphi = [sigmoid(t) * (1 - sigmoid(t)) for t in zetas]
    B = dphi[-1] * (alphas[-1] - Y)
    grads, Ps = [None] * len(params), [None] * len(params)
    for j in reversed(range(len(params))):
        grads[j] = {"Omega": alphas[j] @ B.T / M, "beta": B @ np.ones(M) / M}
        Ps[j] = params[j]["Omega"] @ B  # dC/d alpha^(j-1), per example
        if j > 0:
            B = dphi[j - 1] * Ps[j]
    return grads, Ps


def cost(params, X, Y):
    a = X
    for layer in params:
        a = ad.sigmoid(layer["Omega"].T @ a + layer["beta"][:, None])
    return 0.5 * np.sum((a - Y) ** 2) / M


grads_by_hand, Ps = echenim(params, X, Y)
grads_ad = ad.grad(cost)(params, X, Y)
for j, (mine, theirs) in enumerate(zip(grads_by_hand, grads_ad), start=1):
    for key in ("Omega", "beta"):
        err = np.max(np.abs(mine[key] - theirs[key]))
        print(f"layer {j} grad {key:5s} shape {mine[key].shape}: max |numpy - adkit| = {err:.1e}")
        assert err < 1e-14

# %% [markdown]
# P^1 = Omega^1 B^1 is the gradient of each example's cost with respect to its input
# column (backward induction); adkit's gradient of the mean cost with respect to X is
# P^1 / M. Forward mode agrees with reverse mode on the weights too:

# %%
dC_dX = ad.grad(cost, argnums=1)(params, X, Y)
assert np.allclose(Ps[0] / M, dC_dX, rtol=1e-12, atol=1e-16)
grads_fwd = ad.grad(cost, engine="forward")(params, X, Y)
assert all(np.allclose(a[k], b[k], rtol=1e-12, atol=1e-16) for a, b in zip(grads_fwd, grads_ad) for k in a)
print("P^1 / M == dC/dX:", np.allclose(Ps[0] / M, dC_dX), "| forward == reverse on every weight")
