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
# # 3. Forward vs reverse mode
#
# Forward mode seeds a tangent on one input and carries values and tangents through the
# graph in one pass: the derivatives of *every output* with respect to *that input*.
# Reverse mode evaluates forward keeping the values, then sweeps backwards with adjoints:
# the derivatives of *one output* with respect to *every input* [RAB, HAM]. We reproduce
# Rabbany's traces, then measure what a full Jacobian of R^n -> R^m costs each way.

# %%
import math
import time

import matplotlib.pyplot as plt
import numpy as np

import adkit as ad

try:  # in Jupyter, display() renders the HTML tables; as a plain script, print the text
    from IPython.display import display
except ImportError:
    display = print

# %% [markdown]
# ## The evaluation trace [RAB]
#
# y1 = sin(w1 x + w0), y2 = cos(w1 x + w0), as the Wengert list
# a1 = w0, a2 = w1, a3 = x, a4 = a2 * a3, a5 = a4 + a1, a6 = sin(a5) = y1, a7 = cos(a5) = y2.
# The graph is traced for output y2 (y1 is computed too, so a6 appears, but it does not
# reach the output).

# %%
w0, w1, x = 0.5, 2.0, 1.5


def y2(w0, w1, x):
    a5 = w1 * x + w0
    y1 = np.sin(a5)  # noqa: F841 (computed as in the lecture; its adjoint is 0)
    return np.cos(a5)


G = ad.trace(y2, w0, w1, x)
display(G.evaluation_trace())


def column(table):
    """The numbers of a trace table, by the name in its first column."""
    return {row[0]: float(row[-1]) for row in table.rows}


a = column(G.evaluation_trace())
s = w1 * x + w0
assert math.isclose(a["a5"], s) and math.isclose(a["a6"], math.sin(s), rel_tol=1e-5)

# %% [markdown]
# ## Forward mode: the tangent trace, seed dw1 = 1
#
# The lecture: da4 = a2 da3 + da2 a3 = x, da5 = x, da6 = x cos(w1 x + w0),
# da7 = -x sin(w1 x + w0).

# %%
tangent = G.tangent_trace("w1")
display(tangent)
d = column(tangent)
lecture = {"da4": x, "da5": x, "da6": x * math.cos(s), "da7": -x * math.sin(s)}
for name, value in lecture.items():
    assert math.isclose(d[name], value, rel_tol=1e-5), (name, d[name], value)


# %% [markdown]
# One forward pass gives the derivatives of *both* outputs with respect to w1:


# %%
def both(w0, w1, x):
    a5 = w1 * x + w0
    return np.stack([np.sin(a5), np.cos(a5)])


_, dy_dw1 = ad.jvp(both, (w0, w1, x), (0.0, 1.0, 0.0))
print("d(y1, y2)/dw1 =", dy_dw1)
assert np.allclose(dy_dw1, [lecture["da6"], lecture["da7"]], rtol=1e-14)

# %% [markdown]
# ## Reverse mode: the adjoint trace for y2
#
# The lecture: abar7 = 1, abar6 = 0, abar5 = -sin(a5), abar4 = abar1 = abar5,
# abar2 = abar4 a3 = -x sin(..), abar3 = abar4 a2 = -w1 sin(..).

# %%
adjoint = G.adjoint_trace()
display(adjoint)
b = column(adjoint)
lecture_bar = {
    "a7bar": 1.0,
    "a6bar": 0.0,
    "a5bar": -math.sin(s),
    "a4bar": -math.sin(s),
    "a1bar": -math.sin(s),
    "a2bar": -x * math.sin(s),
    "a3bar": -w1 * math.sin(s),
}
for name, value in lecture_bar.items():
    assert math.isclose(b[name], value, rel_tol=1e-5, abs_tol=1e-12), (name, b[name], value)

# %% [markdown]
# One backward pass gives the whole gradient of y2 (with respect to w0, w1 and x):

# %%
grad_y2 = ad.grad(y2, argnums=(0, 1, 2))(w0, w1, x)
print("dy2/d(w0, w1, x) =", grad_y2)
assert np.allclose(grad_y2, [lecture_bar["a1bar"], lecture_bar["a2bar"], lecture_bar["a3bar"]], rtol=1e-14)

# %% [markdown]
# The tables also print as LaTeX, for slides:

# %%
print(adjoint.to_latex())

# %% [markdown]
# ## A Jacobian both ways [RAB]
#
# f(x, y) = [x^2, y^2, 2xy] has J = [[2x, 0], [0, 2y], [2y, 2x]]. Forward mode builds it a
# column (one input) at a time, reverse mode a row (one output) at a time.

# %%
f = lambda v: np.stack([v[0] ** 2, v[1] ** 2, 2 * v[0] * v[1]])
v = np.array([3.0, 5.0])
J_lecture = np.array([[2 * v[0], 0], [0, 2 * v[1]], [2 * v[1], 2 * v[0]]])
J_fwd = ad.jacobian(f, engine="forward")(v)
J_rev = ad.jacobian(f, engine="reverse")(v)
print(J_fwd)
assert np.array_equal(J_fwd, J_lecture) and np.array_equal(J_rev, J_lecture)

# %% [markdown]
# ## What a Jacobian of R^n -> R^m costs
#
# f(x) = B tanh(A x) with a hidden layer of 32 units. Forward mode: one JVP pass per input
# (n passes). Reverse mode: one recorded evaluation, then one backward sweep per output
# (m sweeps). Best of 3 timings with `time.perf_counter`, first with m = 4 and n growing,
# then with n = 4 and m growing.

# %%
rng = np.random.default_rng(0)


def network(n, m, hidden=32):
    A = rng.normal(size=(hidden, n)) / math.sqrt(n)
    B = rng.normal(size=(m, hidden)) / math.sqrt(hidden)
    return lambda x: B @ np.tanh(A @ x)


def jacobian_forward(f, x):
    return np.stack([ad.jvp(f, (x,), (e,))[1] for e in np.eye(x.size)], axis=1)


def jacobian_reverse(f, x, m):
    _, pullback = ad.vjp(f, x)
    return np.stack([pullback(e)[0] for e in np.eye(m)])


def best_time(fn, repeats=3):
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def measure(n, m):
    f, x = network(n, m), rng.normal(size=n)
    assert np.allclose(jacobian_forward(f, x), jacobian_reverse(f, x, m), rtol=1e-12, atol=1e-14)
    return best_time(lambda: jacobian_forward(f, x)), best_time(lambda: jacobian_reverse(f, x, m))


sizes = [1, 2, 4, 8, 16, 32, 64]
grow_n = {n: measure(n, 4) for n in sizes}
grow_m = {m: measure(4, m) for m in sizes}
for label, table in (("m = 4, n varies", grow_n), ("n = 4, m varies", grow_m)):
    print(label)
    for k, (tf, tr) in table.items():
        print(f"  {k:3d}: forward {tf * 1e3:7.2f} ms   reverse {tr * 1e3:7.2f} ms")

# %%
fig, axes = plt.subplots(1, 2, figsize=(11, 4), sharey=True)
for ax, table, xlabel in ((axes[0], grow_n, "n inputs (m = 4 outputs)"), (axes[1], grow_m, "m outputs (n = 4 inputs)")):
    ks = list(table)
    ax.loglog(ks, [t[0] for t in table.values()], "o-", label="forward: one pass per input")
    ax.loglog(ks, [t[1] for t in table.values()], "s-", label="reverse: one sweep per output")
    ax.set_xlabel(xlabel)
    ax.legend()
axes[0].set_ylabel("seconds per Jacobian")
fig.suptitle("Jacobian of R^n -> R^m: forward cost follows n, reverse cost follows m")
fig.tight_layout()

# %% [markdown]
# With many inputs and few outputs (a loss of many weights) reverse mode wins; with few
# inputs and many outputs forward mode wins. Timings depend on the machine and its load,
# so what is checked is the count the lecture reasons with: a forward pass and a backward
# sweep each do one multiply-add per edge of the scalarised graph
# (da_j += z(i, j) da_i, abar_i += abar_j z(i, j)), and the two Jacobian functions above
# make n passes and m sweeps (counted as they run).


# %%
def multiply_adds(n, m):
    """(forward, reverse) multiply-adds for the Jacobian of a network R^n -> R^m: the
    forward passes jacobian_forward makes (calls of f under ad.jvp) and the backward sweeps
    of reverse mode (calls of the pullback, as in jacobian_reverse), each times the edges."""
    f, x = network(n, m), rng.normal(size=n)
    edges = sum(np.count_nonzero(e.z) for e in ad.trace(f, x).edges)  # scalar edges: Jacobian entries
    counted = {"jvp": 0, "vjp": 0}

    def count(kind, fn):
        def counting(*args):
            counted[kind] += 1
            return fn(*args)

        return counting

    jacobian_forward(count("jvp", f), x)
    _, pullback = ad.vjp(f, x)
    for e in np.eye(m):
        count("vjp", pullback)(e)
    return counted["jvp"] * edges, counted["vjp"] * edges


for n, m in ((64, 4), (4, 64)):
    fwd, rev = multiply_adds(n, m)
    t_forward, t_reverse = grow_n[64] if n == 64 else grow_m[64]
    print(
        f"n = {n}, m = {m}: forward {fwd:,} multiply-adds ({t_forward * 1e3:.2f} ms), "
        f"reverse {rev:,} ({t_reverse * 1e3:.2f} ms)"
    )
    assert (fwd > rev) == (n > m), (n, m, fwd, rev)
    assert fwd / rev == n / m  # the same edges, n passes against m sweeps

# %% [markdown]
# `ad.jacobian(f, engine="forward")` does not loop: it carries all n tangents at once as
# one array per node (one vectorised pass), and `engine="reverse"` records once and
# sweeps once per output. In numpy, where a pass costs mostly its fixed overhead, the
# vectorised forward Jacobian is cheap even for large n:

# %%
f, x = network(64, 4), rng.normal(size=64)
t_fwd = best_time(lambda: ad.jacobian(f, engine="forward")(x))
t_rev = best_time(lambda: ad.jacobian(f, engine="reverse")(x))
print(f"n = 64, m = 4: ad.jacobian forward {t_fwd * 1e3:.2f} ms, reverse {t_rev * 1e3:.2f} ms")
assert np.allclose(ad.jacobian(f, engine="forward")(x), ad.jacobian(f, engine="reverse")(x), rtol=1e-12)
