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
# # 9. Second-order methods
#
# Around W0 the loss is approximately quadratic,
# L(W) ≈ L(W0) + (W - W0)^T grad L(W0) + (W - W0)^T H (W - W0) / 2, with the Hessian
# H_ij = d^2 L / dw_i dw_j. Newton's method jumps to the stationary point of that model,
# W* = W0 - H^-1 grad L(W0), without a step size [AGG, SCH]. We check the lecture's claims
# with adkit: one Newton step solves a quadratic; conjugate gradients solve a
# d-dimensional quadratic in d steps using only Hessian-vector products; L-BFGS beats
# gradient descent on Rosenbrock; three ways to compute H v; and Newton's attraction to
# saddle points.

# %%
import timeit

import matplotlib.pyplot as plt
import numpy as np

import adkit as ad
from adkit import optim
from adkit.display import Table

try:  # in Jupyter, display() renders the HTML tables; as a plain script, print the text
    from IPython.display import display
except ImportError:
    display = print

# %% [markdown]
# ## Newton: one step on a quadratic
#
# L = x^2 + 4 y^2 has H = diag(2, 8) everywhere. From any point, W0 - H^-1 grad L(W0) is
# the minimum, exactly; gradient descent with its best constant step (eta = 0.2, which
# makes both directions contract by 0.6) needs dozens.

# %%
bowl = lambda w: w[0] ** 2 + 4 * w[1] ** 2
w0 = np.array([3.0, -2.0])
print("Hessian:", ad.hessian(bowl)(w0).tolist())
w1 = optim.newton_step(bowl, w0)
assert np.array_equal(w1, [0.0, 0.0])
gd = optim.run(bowl, w0, optim.sgd(0.2), 100)
gd_steps = int(np.nonzero(gd.losses < 1e-12)[0][0])
print(f"Newton: {w0} -> {w1} in one step; gradient descent (eta = 0.2): {gd_steps} steps to L < 1e-12")
assert gd_steps > 20

# %% [markdown]
# ## Conjugate gradients: d steps, Hessian-vector products only
#
# Newton's step needs H^-1 grad L, a linear system. Conjugate gradients solve it touching
# H only through products H q: q_(t+1) = -grad L(W_(t+1)) + (q_t^T H grad L / q_t^T H q_t) q_t
# with an exact line search along each q_t [AGG]. On a d-dimensional quadratic the
# directions are H-conjugate and CG ends in at most d steps; with only k distinct
# eigenvalues, in k steps. H v comes from adkit's forward-over-reverse `ad.hvp`; H is
# never formed.

# %%
d = 10
rng = np.random.default_rng(0)
Q, _ = np.linalg.qr(rng.normal(size=(d, d)))
b = rng.normal(size=d)
results = {}
for label, eigenvalues in [
    ("10 distinct eigenvalues in [1, 10]", np.linspace(1.0, 10.0, d)),
    ("3 distinct eigenvalues (1, 5, 9)", np.repeat([1.0, 5.0, 9.0], [4, 3, 3])),
]:
    A = Q @ np.diag(eigenvalues) @ Q.T
    quadratic = lambda w, A=A: 0.5 * w @ A @ w - b @ w
    hvp = lambda v, quadratic=quadratic: ad.hvp(quadratic, (np.zeros(d),), (v,))
    result = optim.cg(hvp, b, tol=1e-10)
    assert result.converged
    np.testing.assert_allclose(result.x, np.linalg.solve(A, b), rtol=1e-8)
    results[label] = result
    print(f"{label}: {result.nit} steps, residual {result.residual_norms[-1]:.1e}")
assert results["10 distinct eigenvalues in [1, 10]"].nit == d
assert results["3 distinct eigenvalues (1, 5, 9)"].nit == 3

fig, ax = plt.subplots(figsize=(6, 3.5))
for (label, r), style in zip(results.items(), ["o-", "s--"]):
    ax.semilogy(r.residual_norms, style, label=label)
ax.set_xlabel("CG step")
ax.set_ylabel("||b - H x||")
ax.set_title(f"CG on a {d}-dimensional quadratic")
ax.legend(fontsize=8)
plt.show()

# %% [markdown]
# ## L-BFGS vs gradient descent on Rosenbrock
#
# Quasi-Newton methods build a Hessian approximation from successive gradients; L-BFGS
# keeps only the last m pairs (s, y) [AGG]. On Rosenbrock from (-1.2, 1) it reaches the
# minimum in a few dozen iterations; gradient descent with the largest stable step is
# still crawling along the valley after 2000.

# %%
rosenbrock = lambda w: (1 - w[0]) ** 2 + 100 * (w[1] - w[0] ** 2) ** 2
quasi = optim.lbfgs(rosenbrock, np.array([-1.2, 1.0]), m=10, tol=1e-8)
descent = optim.run(rosenbrock, np.array([-1.2, 1.0]), optim.sgd(1e-3), 2000)
print(f"L-BFGS: x = {quasi.x}, L = {quasi.fun:.2e}, {quasi.nit} iterations, {quasi.nfev} gradient evaluations")
print(f"gradient descent: x = {descent.params}, L = {descent.losses[-1]:.2e} after 2000 steps")
assert quasi.converged and quasi.nit < 100 and np.allclose(quasi.x, 1.0, atol=1e-6)
assert np.linalg.norm(descent.params - 1.0) > 0.1

fig, axes = plt.subplots(1, 2, figsize=(11, 4))
X, Y = np.meshgrid(np.linspace(-1.5, 1.5, 300), np.linspace(-0.5, 1.6, 300))
axes[0].contour(X, Y, np.log10(rosenbrock(np.array([X, Y])) + 1e-3), levels=20, colors="lightgray", linewidths=0.8)
path = np.array(descent.path)
axes[0].plot(path[:, 0], path[:, 1], "-", label="gradient descent, 2000 steps")
axes[0].plot(quasi.path[:, 0], quasi.path[:, 1], "o--", ms=3, label=f"L-BFGS, {quasi.nit} iterations")
axes[0].plot(1, 1, "k*", ms=10)
axes[0].legend(fontsize=8, loc="lower right")
axes[0].set_title("trajectories")
axes[1].semilogy(descent.losses, label="gradient descent")
axes[1].semilogy([rosenbrock(p) + 1e-300 for p in quasi.path], "o--", ms=3, label="L-BFGS")
axes[1].set_xlabel("iteration")
axes[1].set_ylabel("L")
axes[1].set_xscale("symlog", linthresh=10)
axes[1].legend(fontsize=8)
axes[1].set_title("loss")
plt.show()

# %% [markdown]
# ## Three Hessian-vector products
#
# 1. exact, forward over reverse: `ad.hvp(f, (x,), (v,))` differentiates the reverse-mode
#    gradient in direction v with dual numbers (one pass, no H);
# 2. the lecture's eq. 23: H v ≈ (grad L(W0 + delta v) - grad L(W0)) / delta,
#    `ad.optim.hvp_fd(f, x, v, delta)`: two gradients, error O(delta) plus round-off
#    ~ eps / delta;
# 3. the full Hessian times v: `ad.hessian(f)(x) @ v`, d directional derivatives.
#
# On the d-dimensional Rosenbrock function, first the error of eq. 23 against the exact
# product as delta shrinks, then the cost of each as d grows.


# %%
def rosenbrock_nd(x):
    return np.sum(100 * (x[1:] - x[:-1] ** 2) ** 2 + (1 - x[:-1]) ** 2)


rng = np.random.default_rng(1)
x, v = 0.5 * rng.normal(size=10), rng.normal(size=10)
exact = ad.hvp(rosenbrock_nd, (x,), (v,))
full = ad.hessian(rosenbrock_nd)(x) @ v
np.testing.assert_allclose(full, exact, rtol=1e-12, atol=1e-10)
deltas = 10.0 ** -np.arange(1, 14, 0.5)
errors = np.array([np.linalg.norm(optim.hvp_fd(rosenbrock_nd, x, v, dl) - exact) for dl in deltas])
relative = errors / np.linalg.norm(exact)
slope = np.polyfit(np.log10(deltas[:6]), np.log10(relative[:6]), 1)[0]  # delta from 1e-1 to ~3e-4
best = deltas[np.argmin(relative)]
print(f"eq. 23: error slope {slope:.2f} for large delta (O(delta)); best delta {best:.0e}, error {relative.min():.1e}")
assert 0.9 < slope < 1.1
assert 1e-10 <= best <= 1e-6 and relative.min() < 1e-6
assert relative[-1] > 100 * relative.min()  # round-off wins below the best delta

fig, ax = plt.subplots(figsize=(6, 4))
ax.loglog(deltas, relative, "o-", label="eq. 23 vs exact")
ax.loglog(deltas, deltas * relative[0] / deltas[0], "k:", lw=0.8, label="O(delta)")
ax.loglog(deltas, np.finfo(float).eps / deltas * 10, "k--", lw=0.8, label="~ eps / delta (round-off)")
ax.invert_xaxis()
ax.set_xlabel("delta")
ax.set_ylabel("relative error of H v")
ax.set_title("finite-difference Hessian-vector product")
ax.legend(fontsize=8)
plt.show()


# %% [markdown]
# Timings are shown, never asserted: they depend on the machine (best of 3 runs each).

# %%
dims = [16, 64, 256, 512]
methods = {
    "forward over reverse (ad.hvp)": lambda x, v: ad.hvp(rosenbrock_nd, (x,), (v,)),
    "eq. 23 (two gradients)": lambda x, v: optim.hvp_fd(rosenbrock_nd, x, v, 1e-7),
    "full Hessian @ v": lambda x, v: ad.hessian(rosenbrock_nd)(x) @ v,
}
cost = {name: [] for name in methods}
for n in dims:
    x, v = 0.5 * rng.normal(size=n), rng.normal(size=n)
    reference = ad.hvp(rosenbrock_nd, (x,), (v,))
    for name, method in methods.items():
        assert np.allclose(method(x, v), reference, rtol=1e-5, atol=1e-4 * np.abs(reference).max())
        cost[name].append(min(timeit.repeat(lambda: method(x, v), number=1, repeat=3)))
display(
    Table(
        "seconds per Hessian-vector product (this machine, best of 3)",
        ["method"] + [f"d = {n}" for n in dims],
        [[name] + [f"{t:.2g}" for t in ts] for name, ts in cost.items()],
    )
)

fig, ax = plt.subplots(figsize=(6, 4))
for (name, ts), style in zip(cost.items(), ["o-", "s--", "^-."]):
    ax.loglog(dims, ts, style, label=name)
ax.set_xlabel("dimension d")
ax.set_ylabel("seconds")
ax.set_title("cost of H v: the full Hessian grows with d")
ax.legend(fontsize=8)
plt.show()

# %% [markdown]
# ## Newton is attracted to saddle points
#
# Newton's step goes to the stationary point of the local quadratic model, whatever its
# kind. L = x^4 / 4 - x^2 / 2 + y^2 / 2 has minima at (±1, 0) and a saddle at (0, 0),
# where d^2 L / dx^2 = -1 < 0. Started at (0.4, 0.5), inside the strip |x| < 1/sqrt(3)
# where the model curves downwards in x, Newton converges to the saddle; gradient descent
# from the same point rolls down to the minimum (1, 0) [AGG].

# %%
saddle_fn = lambda w: w[0] ** 4 / 4 - w[0] ** 2 / 2 + w[1] ** 2 / 2
newton_path = [np.array([0.4, 0.5])]
for _ in range(6):
    newton_path.append(optim.newton_step(saddle_fn, newton_path[-1]))
newton_path = np.array(newton_path)
gd_saddle = optim.run(saddle_fn, np.array([0.4, 0.5]), optim.sgd(0.1), 200)
eigenvalues = np.linalg.eigvalsh(ad.hessian(saddle_fn)(newton_path[-1]))
print(
    f"Newton ends at {newton_path[-1]}, Hessian eigenvalues {eigenvalues}; gradient descent ends at {gd_saddle.params}"
)
assert np.allclose(newton_path[-1], [0.0, 0.0], atol=1e-12)
assert eigenvalues.min() < 0 < eigenvalues.max()  # a saddle, not a minimum
assert np.allclose(gd_saddle.params, [1.0, 0.0], atol=1e-6)

fig, ax = plt.subplots(figsize=(6, 4))
X, Y = np.meshgrid(np.linspace(-1.5, 1.5, 200), np.linspace(-0.8, 0.8, 200))
ax.contour(X, Y, saddle_fn(np.array([X, Y])), levels=25, colors="lightgray", linewidths=0.8)
ax.plot(newton_path[:, 0], newton_path[:, 1], "o-", label="Newton: to the saddle")
gd_path = np.array(gd_saddle.path)
ax.plot(gd_path[:, 0], gd_path[:, 1], "s--", ms=2, label="gradient descent: to the minimum")
ax.plot([-1, 1], [0, 0], "k*", ms=9)
ax.plot(0, 0, "kx", ms=9)
ax.set_title("x^4/4 - x^2/2 + y^2/2")
ax.legend(fontsize=8)
plt.show()
