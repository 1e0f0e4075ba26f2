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
# # 5. Checking gradients
#
# A hand-written backward pass is easy to get subtly wrong, and a wrong gradient often
# still trains, just badly. The lecture's check [AGG, RAB]: perturb one weight by
# epsilon, dL/dw ≈ (L(w + eps) - L(w)) / eps, and compare the analytic value G_a with the
# estimate G_e by
#
#     rho = |G_e - G_a| / |G_e + G_a|,
#
# which should be below 1e-6 (below 1e-3 when ReLU's kinks are involved). Check a random
# sample of weights, a few times during training. We do this by hand, catch a wrong
# gradient, look at why the step size matters (truncation vs round-off, and the
# complex-step trick that has no round-off), then use adkit's checker.

# %%
import math

import matplotlib.pyplot as plt
import numpy as np

import adkit as ad
from adkit.display import Table
from adkit.engines.numeric import step_size

try:  # in Jupyter, display() renders the HTML tables; as a plain script, print the text
    from IPython.display import display
except ImportError:
    display = print

# %% [markdown]
# ## A two-layer network and its hand-written gradient [RAB]
#
# y_hat = softmax(W^T sigmoid(V^T x)), cross-entropy loss, N examples with D = 2 features
# plus a bias column, M = 6 hidden units, C = 3 classes. The gradient in the lecture's
# code shape: `dy = yh - y; dw = z.T @ dy / N; dz = dy @ w.T; dv = x.T @ (dz * z * (1-z)) / N`.

# %%
rng = np.random.default_rng(0)
N, D, M, C = 30, 3, 6, 3
X = np.c_[rng.normal(size=(N, D - 1)), np.ones(N)]
Y = np.eye(C)[rng.integers(0, C, size=N)]
params = {"V": rng.normal(size=(D, M)), "W": rng.normal(size=(M, C))}


def sigmoid(t):
    return 1 / (1 + np.exp(-t))


def softmax(u):
    e = np.exp(u - np.max(u, axis=1, keepdims=True))
    return e / np.sum(e, axis=1, keepdims=True)


def loss(p, X, Y):
    u = sigmoid(X @ p["V"]) @ p["W"]
    return -np.sum(Y * (u - np.log(np.sum(np.exp(u), axis=1, keepdims=True)))) / X.shape[0]


def grads(p, X, Y):
    z = sigmoid(X @ p["V"])
    dy = softmax(z @ p["W"]) - Y
    dw = z.T @ dy / X.shape[0]
    dz = dy @ p["W"].T
    dv = X.T @ (dz * z * (1 - z)) / X.shape[0]
    return {"V": dv, "W": dw}


def grads_wrong(p, X, Y):
    """The classic slip: the sigmoid's derivative z (1 - z) is forgotten in dv."""
    z = sigmoid(X @ p["V"])
    dy = softmax(z @ p["W"]) - Y
    return {"V": X.T @ (dy @ p["W"].T) / X.shape[0], "W": z.T @ dy / X.shape[0]}


print(f"loss = {loss(params, X, Y):.6f}")

# %% [markdown]
# ## rho by hand, on a random sample of weights
#
# The lecture's one-sided difference and the central difference
# (L(w + eps) - L(w - eps)) / 2 eps, for several eps, on 8 randomly chosen weights.


# %%
def perturbed(p, key, idx, delta):
    q = {k: v.copy() for k, v in p.items()}
    q[key][idx] += delta
    return loss(q, X, Y)


def estimate(key, idx, eps, central):
    if central:
        return (perturbed(params, key, idx, eps) - perturbed(params, key, idx, -eps)) / (2 * eps)
    return (perturbed(params, key, idx, eps) - loss(params, X, Y)) / eps


def rho(ge, ga):
    return abs(ge - ga) / abs(ge + ga)


sample = [(k, tuple(int(i) for i in rng.integers(0, params[k].shape))) for k in rng.choice(["V", "W"], size=8)]
G_right, G_wrong = grads(params, X, Y), grads_wrong(params, X, Y)
eps_values = [1e-3, 1e-4, 1e-5, 1e-6, 1e-7, 1e-8, 1e-9]
worst = {}
for eps in eps_values:
    for central in (False, True):
        ge = {(k, i): estimate(k, i, eps, central) for k, i in sample}
        worst[eps, central, "right"] = max(rho(ge[k, i], G_right[k][i]) for k, i in sample)
        worst[eps, central, "wrong"] = max(rho(ge[k, i], G_wrong[k][i]) for k, i in sample)
rows = [
    [f"{eps:.0e}", *(f"{worst[eps, c, g]:.1e}" for c in (False, True) for g in ("right", "wrong"))]
    for eps in eps_values
]
header = ["eps", "one-sided, right", "one-sided, wrong", "central, right", "central, wrong"]
display(Table("max rho over 8 sampled weights", header, rows))

# %% [markdown]
# With the right gradient, central differences get rho far below 1e-6 over a wide range
# of eps. The one-sided difference's rho falls only like eps (its truncation error is
# O(eps)) until round-off takes over, so its best is much closer to the threshold. The
# wrong gradient is caught at every eps, as soon as the sample contains an entry of V:

# %%
best_central = min(worst[eps, True, "right"] for eps in eps_values)
best_one_sided = min(worst[eps, False, "right"] for eps in eps_values)
print(f"best max rho, right gradient: central {best_central:.1e}, one-sided {best_one_sided:.1e}")
assert best_central < 1e-6 and best_central < best_one_sided
assert any(k == "V" for k, _ in sample)
assert all(worst[eps, c, "wrong"] > 1e-3 for eps in eps_values for c in (False, True))

# %% [markdown]
# ## Truncation vs round-off: the error against the step size
#
# For f(x) = e^x / sqrt(sin^3 x + cos^3 x) at x = 1.5 (Squire and Trapp's test function),
# against the exact derivative from the symbolic engine:
# - one-sided difference: truncation error ~ h, round-off ~ eps/h, best h ~ sqrt(eps);
# - central difference: truncation ~ h^2, round-off ~ eps/h, best h ~ eps^(1/3);
# - complex step Im f(x + ih) / h: no subtraction, hence no cancellation; truncation ~ h^2
#   and nothing else, so any tiny h gives the derivative to machine precision.

# %%
f = lambda x: np.exp(x) / np.sqrt(np.sin(x) ** 3 + np.cos(x) ** 3)
x0 = 1.5
exact = float(ad.symbolic_derivative(f, x0).values[0])
eps = np.finfo(float).eps
hs = np.logspace(-1, -20, 77)
rel = lambda d: max(abs(d - exact) / abs(exact), 1e-17)  # 1e-17 marks "exact" on the log axis
err_forward = np.array([rel((f(x0 + h) - f(x0)) / h) for h in hs])
err_central = np.array([rel((f(x0 + h) - f(x0 - h)) / (2 * h)) for h in hs])
err_complex = np.array([rel(np.imag(f(x0 + 1j * h)) / h) for h in hs])
best = {name: hs[np.argmin(err)] for name, err in (("one-sided", err_forward), ("central", err_central))}
print(f"exact f'(1.5) = {exact:.15g}")
for name, err in (("one-sided", err_forward), ("central", err_central), ("complex step", err_complex)):
    print(f"{name:12s}: best relative error {err.min():.1e} at h = {hs[np.argmin(err)]:.1e}")
print(f"theory: sqrt(eps) = {math.sqrt(eps):.1e}, eps^(1/3) = {eps ** (1 / 3):.1e}")

# %%
fig, ax = plt.subplots(figsize=(7, 4.5))
ax.loglog(hs, err_forward, ".-", label="one-sided (f(x+h) - f(x)) / h")
ax.loglog(hs, err_central, ".-", label="central (f(x+h) - f(x-h)) / 2h")
ax.loglog(hs, err_complex, ".-", label="complex step Im f(x+ih) / h")
ax.loglog(hs, eps / hs, "k:", lw=1, label="round-off ~ eps / h")
ax.loglog(hs, hs, "k--", lw=0.8, label="truncation ~ h, h^2")
ax.loglog(hs, hs**2, "k--", lw=0.8)
for method, marker in (("forward", "v"), ("central", "^"), ("complex", "*")):  # adkit's default steps
    h_rule = float(step_size(x0, method))
    ax.loglog(h_rule, rel(ad.numeric_grad(f, x0, method=method)), marker, ms=11, color="k")
ax.set_ylim(1e-17, 10)
ax.invert_xaxis()
ax.set_xlabel("step h")
ax.set_ylabel("relative error of f'(1.5)")
ax.set_title("truncation vs round-off (black markers: adkit's step rule)")
ax.legend(fontsize=8)
fig.tight_layout()

# %%
assert 1e-10 <= best["one-sided"] <= 1e-6  # near sqrt(eps) ~ 1.5e-8
assert 1e-7 <= best["central"] <= 1e-3  # near eps^(1/3) ~ 6e-6
assert err_complex[hs <= 1e-8].max() <= 4 * eps  # no round-off floor, however small h gets
assert err_complex.min() < err_central.min() < err_forward.min()

# %% [markdown]
# ## adkit's checker
#
# `ad.check_grad(f, params, grad, args=...)` does the comparison entry by entry with
# central differences, a step rule per entry, an error estimate per entry (so that
# finite-difference noise never blames a correct gradient) and a diagnosis of what a
# wrong gradient looks like. It reports the lecture's rho.

# %%
report = ad.check_grad(loss, params, grads, args=(X, Y))
display(report)
assert report.ok and report.max_rel_error < 1e-6

# %%
report_wrong = ad.check_grad(loss, params, grads_wrong, args=(X, Y))
display(report_wrong)
assert not report_wrong.ok
assert {e.param for e in report_wrong.failures} == {"V"}  # the slip is in dv, and only there

# %% [markdown]
# A step-free second opinion, the Taylor test: the remainder |f(x + h d) - f(x) - h <g, d>|
# shrinks like h^2 when g is the gradient, only like h when it is not.

# %%
taylor_right = ad.taylor_test(loss, params, grads, args=(X, Y))
taylor_wrong = ad.taylor_test(loss, params, grads_wrong, args=(X, Y))
print(f"right gradient: rate {taylor_right.rate:.2f}; wrong gradient: rate {taylor_wrong.rate:.2f}")
assert taylor_right.ok and abs(taylor_right.rate - 2) < 0.2
assert not taylor_wrong.ok and abs(taylor_wrong.rate - 1) < 0.2

# %% [markdown]
# ## Kinks: why ReLU gets the looser threshold
#
# At a kink the one-sided slopes differ, and the central difference returns their
# average, which is neither. Here one of two ReLU units sits exactly at 0, and both
# weights feed it: adkit's gradient uses relu'(0) = 0, the central difference returns the
# mean of the two one-sided slopes, and rho is far above 1e-6. adkit's checker detects
# the kink (the one-sided slopes disagree by a jump that does not shrink with the step)
# and accepts a value between the two slopes.

# %%
A = np.array([[1.0, 1.0], [2.0, -1.0]])
f_relu = lambda w: np.sum(ad.relu(A @ w))
w_kink = np.array([1.0, -1.0])  # A @ w_kink = [0, 3]: the first unit is at its kink
g_ad, g_fd = ad.grad(f_relu)(w_kink), ad.numeric_grad(f_relu, w_kink)
print("adkit:", g_ad, " central difference:", g_fd, " rho:", [f"{rho(e, a):.2f}" for e, a in zip(g_fd, g_ad)])
assert max(rho(e, a) for e, a in zip(g_fd, g_ad)) > 1e-3
kink_report = ad.check_grad(f_relu, w_kink)
display(kink_report)
assert kink_report.ok and kink_report.n_kinks == 2

# %% [markdown]
# ## The numeric engine
#
# `ad.grad(f, engine="numeric")` differentiates any callable by Richardson-extrapolated
# central differences: good to ~1e-12 here, where forward and reverse mode are exact to
# the last bit or two.

# %%
for engine in ("numeric", "forward", "reverse"):
    g = ad.grad(f, engine=engine)(x0)
    print(f"{engine:8s} f'(1.5) = {g:.15g}   relative error {abs(g - exact) / exact:.1e}")
assert abs(ad.grad(f, engine="numeric")(x0) - exact) / exact < 1e-9
