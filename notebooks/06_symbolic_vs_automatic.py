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
# # 6. Symbolic vs automatic differentiation
#
# Symbolic differentiation turns an expression into the expression of its derivative.
# Written out as a tree, a derivative does not reuse shared sub-expressions, so it can
# grow much faster than the function: *expression swell* [RAB]. AD never writes the
# derivative down; it evaluates it on the program's graph, where sharing is free.
# Common sub-expression elimination (CSE) gives the symbolic side its sharing back. And
# sometimes the symbolic answer is simply better: exact, closed-form, or cheap to reuse.

# %%
import fractions
import time

import matplotlib.pyplot as plt
import numpy as np
import sympy as sp

import adkit as ad
from adkit import families
from adkit.display import Table

try:  # in Jupyter, display() renders the HTML tables; as a plain script, print the text
    from IPython.display import display
except ImportError:
    display = print

# %% [markdown]
# ## Sharing in the smallest example [AGG]
#
# f(w) = sin(w^2) + cos(w^2). Dynamic programming differentiates w^2 once and uses it on
# both paths; the derivative tree contains w^2 twice (and w twice more). CSE names the
# shared part x0 = w^2:

# %%
res = ad.symbolic_derivative(lambda w: np.sin(w**2) + np.cos(w**2), 1.0)
print("derivative as a tree:", res.derivatives[0])
replacements, reduced = res.cse()
print("with CSE:", replacements, reduced)
w = res.symbols[0]
assert sp.simplify(res.derivatives[0] - (2 * w * sp.cos(w**2) - 2 * w * sp.sin(w**2))) == 0
assert replacements == [(replacements[0][0], w**2)]

# %% [markdown]
# ## Expression swell, measured
#
# Iterate x <- x sin(x) + x^2, d times. The program grows by 4 nodes per level. Its
# derivative as a tree (`count_ops`, sympy's operation count) multiplies by about 4 per
# level, because each level uses x three times and the derivative of each use copies the
# whole sub-expression below. With CSE (`count_ops_cse`) it grows by a constant per level,
# like the program.


# %%
def nest(d):
    def f(x):
        for _ in range(d):
            x = np.sin(x) * x + x * x
        return x

    return f


depths = list(range(1, 8))
swell = []
for d in depths:
    start = time.perf_counter()
    r = ad.symbolic_derivative(nest(d), 0.3)
    n_ops, n_ops_cse = r.count_ops, r.count_ops_cse
    seconds = time.perf_counter() - start
    g = ad.trace(nest(d), 0.3)
    start = time.perf_counter()
    g_rev = ad.grad(nest(d))(0.3)
    seconds_rev = time.perf_counter() - start
    assert abs(g_rev - float(r.values[0])) <= 1e-12 * abs(g_rev)
    swell.append((d, len(g.nodes), len(g.edges), n_ops, n_ops_cse, seconds, seconds_rev))
display(
    Table(
        "x <- x sin(x) + x^2, d times",
        ["d", "graph nodes", "graph edges", "derivative ops (tree)", "ops with CSE", "sympy s", "reverse s"],
        [[str(d), str(n), str(e), f"{o:,}", str(c), f"{s:.3f}", f"{t:.1e}"] for d, n, e, o, c, s, t in swell],
    )
)

# %%
ops = np.array([row[3] for row in swell], dtype=float)
ops_cse = np.array([row[4] for row in swell], dtype=float)
nodes = np.array([row[1] for row in swell], dtype=float)
growth = np.exp(np.polyfit(depths[2:], np.log(ops[2:]), 1)[0])
step_cse = np.polyfit(depths, ops_cse, 1)[0]
step_nodes = np.diff(nodes).mean()
print(f"tree: x{growth:.2f} per level; with CSE: +{step_cse:.1f} operations per level; graph: +{step_nodes:g} nodes")
assert growth > 3 and ops[-1] / ops_cse[-1] > 100
assert np.allclose(np.diff(ops_cse[1:]), np.diff(ops_cse[1:]).mean(), rtol=0.2)  # linear

fig, ax = plt.subplots(figsize=(6, 4))
ax.semilogy(depths, ops, "o-", label="derivative as a tree (count_ops)")
ax.semilogy(depths, ops_cse, "s-", label="with common sub-expressions (CSE)")
ax.semilogy(depths, nodes, "^-", label="the program's graph (nodes)")
ax.set_xlabel("nesting depth d")
ax.set_ylabel("size")
ax.set_title("expression swell")
ax.legend()
fig.tight_layout()

# %% [markdown]
# The derivative for d = 2, as LaTeX (paste it into a markdown cell to see it typeset):

# %%
print(ad.symbolic_derivative(nest(2), 0.3).latex()[0])

# %% [markdown]
# ## When symbolic wins
#
# **1. Exact answers.** With exact inputs (ints, `fractions.Fraction`) the symbolic engine
# evaluates exactly. Three steps of the logistic map x <- 4x(1 - x) at x = 1/3: the
# derivative is a rational number, and the floating-point engines are within rounding
# of it.


# %%
def logistic(x):
    for _ in range(3):
        x = 4 * x * (1 - x)
    return x


exact = ad.symbolic_derivative(logistic, fractions.Fraction(1, 3)).values[0]
print(f"exact: {exact} = {float(exact):.17g}")
assert isinstance(exact, sp.Rational)
comparison = ad.compare(logistic, fractions.Fraction(1, 3), engines=("forward", "reverse", "symbolic"))
display(comparison)
assert comparison.reference_kind == "symbolic, exact"
assert comparison["reverse"].rel_error < 1e-14

# %% [markdown]
# **2. Closed forms.** On Aggarwal's product-node graphs sympy multiplies the product out:
# the output is C w^N and its derivative one monomial, whatever the depth, while the
# number of paths doubles with every layer.

# %%
rows = []
for depth in (5, 10, 20, 40, 80):
    spec = families.product_graph(depth, 2)
    r = ad.symbolic_derivative(spec.f, *spec.args)
    assert float(r.values[0]) == spec.exact_grad
    formula = str(r.derivatives[0])
    rows.append(
        [str(depth), f"{spec.n_paths:,}", str(r.count_ops), formula if len(formula) < 40 else formula[:36] + "..."]
    )
    assert r.count_ops <= 2
display(Table("product graphs, width 2: the symbolic derivative", ["depth", "paths", "ops", "derivative"], rows))

# %% [markdown]
# **3. A formula to reuse.** A derivative derived once can be compiled (`sympy.lambdify`)
# and evaluated on many points. With CSE it is competitive with vectorised reverse mode;
# without CSE the swollen tree costs more and more per point.

# %%
xs = np.linspace(0.1, 0.5, 10_000)


def best_time(fn, repeats=3):
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


timings = []
for d in range(1, 6):
    r = ad.symbolic_derivative(nest(d), 0.3)
    x, dexpr = r.symbols[0], r.derivatives[0]
    tree, shared = sp.lambdify(x, dexpr, "numpy"), sp.lambdify(x, dexpr, "numpy", cse=True)
    f_d = nest(d)
    reverse = ad.grad(lambda v: np.sum(f_d(v)))  # f_d is elementwise: the sum's gradient is f_d'
    assert np.allclose(tree(xs), reverse(xs), rtol=1e-10) and np.allclose(shared(xs), reverse(xs), rtol=1e-10)
    timings.append((d, best_time(lambda: tree(xs)), best_time(lambda: shared(xs)), best_time(lambda: reverse(xs))))
for d, t_tree, t_cse, t_rev in timings:
    print(
        f"d = {d}: lambdified tree {t_tree * 1e3:6.2f} ms   with CSE {t_cse * 1e3:5.2f} ms   reverse {t_rev * 1e3:5.2f} ms"
    )

# %%
fig, ax = plt.subplots(figsize=(6, 4))
ds = [t[0] for t in timings]
ax.semilogy(ds, [t[1] for t in timings], "o-", label="lambdified derivative tree")
ax.semilogy(ds, [t[2] for t in timings], "s-", label="lambdified with CSE")
ax.semilogy(ds, [t[3] for t in timings], "^-", label="adkit reverse mode (vectorised)")
ax.set_xticks(ds)
ax.set_xlabel("nesting depth d")
ax.set_ylabel(f"seconds for {xs.size:,} derivatives")
ax.set_title("evaluating a derivative many times")
ax.legend()
fig.tight_layout()

# %% [markdown]
# In short: the symbolic derivative is the thing to have when you want a formula (to
# read, to simplify, to evaluate exactly, to compile once and reuse) and the function is
# small or collapses to a closed form. For a program with many levels of reuse, such as a
# neural network, written out as a tree it swells exponentially; AD's cost stays a small
# multiple of the program's.
