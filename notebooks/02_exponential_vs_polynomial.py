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
# # 2. Exponential vs polynomial
#
# The pathwise lemma (notebook 1) is an algorithm: enumerate every path from w to o,
# multiply the local derivatives along it, add up. On Aggarwal's deep *product-node*
# graphs [AGG I] (input w, `depth` layers of `width` nodes, each node the product of every
# node of the layer below) the number of paths is width**depth, so that algorithm is
# exponential in the depth. Backpropagation computes the same sum by dynamic programming,
# touching each edge once. Here we count the paths, time both, fit the growth and
# rebuild the dynamic program by hand.

# %%
import math

import matplotlib.pyplot as plt
import numpy as np

import adkit as ad
from adkit import bench, families
from adkit.display import Table

try:  # in Jupyter, display() renders the HTML tables; as a plain script, print the text
    from IPython.display import display
except ImportError:
    display = print

# %% [markdown]
# ## A product-node graph
#
# In a product node the partial derivative with respect to one input is the product of
# the other inputs. `families.product_graph` builds the graph with node values that are
# exact powers of two, and knows its exact gradient: width**depth. With `nary=True` each
# product node is one call of the lecture's n-ary product node (`ad.product`), so the
# traced graph is the lecture's graph: one node per product.

# %%
spec = families.product_graph(depth=3, width=2, nary=True)
print(spec.describe())
G = ad.trace(spec.f, *spec.args)
print(G, "-", G.count_paths(), "paths")
assert G.count_paths() == spec.n_paths == 2**3
assert (len(G.nodes), len(G.edges)) == (spec.n_nodes, spec.n_edges)
ax = G.draw(top_k=2, title="product graph, depth 3, width 2: 2 of its 8 paths")

# %% [markdown]
# Aggarwal's figure: input w, 5 layers of 2 product nodes, output o: all 2^5 = 32 paths.
# On an edge into a product node, z(i, j) = c_j times the other inputs = y(j) / y(i), so
# the product along any path telescopes to o / w = 1: every path contributes 1, and
# do/dw = 32 is the number of paths. The paths engine enumerates them and gets it
# exactly; so does the same graph written with one binary multiply per edge (the default
# `nary=False`, the program the benchmark times).

# %%
spec5 = families.product_graph(depth=5, width=2, nary=True)
G5 = ad.trace(spec5.f, *spec5.args)
ax = G5.draw(top_k=3, title="Aggarwal's product graph: w, 5 layers of 2 product nodes, o; 3 of the 32 paths")
products = [p.product for p in ad.iter_paths(G5)]
g_paths = ad.grad(spec5.f, engine="paths")(*spec5.args)
binary = families.product_graph(depth=5, width=2)
print(f"{len(products)} paths enumerated, each with product {set(products)}; d o/dw = {g_paths}")
assert len(products) == G5.count_paths() == ad.trace(binary.f, *binary.args).count_paths() == 32
assert set(products) == {1.0}
assert g_paths == ad.grad(binary.f, engine="paths")(*binary.args) == spec5.exact_grad == 32.0

# %% [markdown]
# ## Path counts: width**depth
#
# `Graph.count_paths()` counts without enumerating (a dynamic program, below). The count is
# width**depth in every cell:

# %%
widths, depths = (2, 3, 4, 8), range(1, 7)
header = ["width \\ depth", *map(str, depths)]
rows = []
for width in widths:
    counts = [ad.trace(s.f, *s.args).count_paths() for s in (families.product_graph(d, width) for d in depths)]
    assert counts == [width**d for d in depths]
    rows.append([str(width), *(f"{c:,}" for c in counts)])
display(Table("paths from w to the output (counted by Graph.count_paths)", header, rows))

# %% [markdown]
# "A million paths for a network with 100 nodes in each of three layers" [AGG]: a dense
# tanh network on one input (`families.layered_dag`), counted after scalarising its
# matrix products into one node per unit.

# %%
mlp = families.layered_dag(depth=3, width=100)
n_mlp = ad.trace(mlp.f, *mlp.args).count_paths()
print(f"{mlp.name}: {n_mlp:,} paths")
assert n_mlp == 100**3

# %% [markdown]
# ## The harness: every engine vs depth
#
# A short run of the harness behind `adkit bench` (few depths, short timing windows, so
# it takes a few seconds; run `adkit bench` for the full sweep). Before timing, the
# harness checks every engine against the exact gradient. Once an engine needs more
# than `budget` seconds it is not run on deeper graphs: those cells show the time its
# growth predicts (dotted in the plot).

# %%
result = bench.run(
    engines=["forward", "reverse", "paths"],
    widths=(2,),
    depths=(2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 32, 64),
    min_time=0.01,
    max_repeats=5,
    budget=0.5,
    timeout=2.0,
)
display(result)
ok = [c for c in result.cells if c.status == "ok"]
assert all(c.rel_error is not None and c.rel_error <= 1e-12 for c in ok)

# %%
fig = result.plot()
fig.axes[0].set_ylim(top=1e3)  # the predictions for the paths engine leave the plot
for c in result.cells:
    if c.status == "skipped":
        years = c.predicted_seconds / (365.25 * 86400)
        human = f"{years:.3g} years" if years >= 1 else f"{c.predicted_seconds / 60:.3g} minutes"
        print(f"{c.engine} at depth {c.depth}: not run; its growth predicts {human}")

# %% [markdown]
# ## The growth fit
#
# The harness fits, per engine, the factor by which the time multiplies per added layer
# (semilog fit over the deepest graphs) and the exponent of time ~ edges**k (log-log fit
# over the larger half). Path enumeration should multiply by about `width` = 2 per layer;
# forward and reverse mode grow with the number of edges (linearly in the depth here), so
# their per-layer factor stays near 1.

# %%
for fit in result.fits:
    print(fit.sentence())

# %% [markdown]
# Timings are noisy (a shared machine, a laptop on battery), so the lesson is also stated
# without a clock: the harness's work count per cell is edges for forward and reverse and
# path steps (paths x path length) for enumeration, and that count doubles per layer.

# %%
paths_work = {c.depth: c.work for c in result.cells if c.engine == "paths"}
reverse_work = {c.depth: c.work for c in result.cells if c.engine == "reverse"}
two_layers = range(2, 24, 2)  # depth d to d + 2: paths x4, edges + the same number
assert all(paths_work[d + 2] > 4 * paths_work[d] for d in two_layers)
assert all(reverse_work[d + 2] - reverse_work[d] == reverse_work[4] - reverse_work[2] for d in two_layers)

# %% [markdown]
# The same fit written out: log(time) against depth is a straight line for the paths
# engine, with slope log(2) once the fixed per-call overhead no longer matters (the
# vectorised enumeration costs a few nanoseconds per path, so below ~2^16 paths the
# per-call overhead still dominates).

# %%
deep = [c for c in ok if c.engine == "paths" and c.depth >= 18]
slope = np.polyfit([c.depth for c in deep], np.log([c.seconds for c in deep]), 1)[0]
print(f"paths engine, depth >= 18: time x{math.exp(slope):.2f} per added layer (width 2 predicts x2)")
ratio = {
    c.depth: c.seconds / next(r.seconds for r in ok if r.engine == "reverse" and r.depth == c.depth)
    for c in ok
    if c.engine == "paths"
}
print("paths / reverse time ratio by depth:", {d: round(r, 1) for d, r in ratio.items()})

# %% [markdown]
# ## Why dynamic programming rescues us
#
# S(i, o) = sum over successors j of S(j, o) * z(i, j), with S(o, o) = 1, computed
# backwards over the evaluation order [AGG II]. Each edge is used once, so the work is
# the number of edges; enumeration's work is the total length of all paths. The same
# recursion with z = 1 counts paths (N), and with N(j) + L(j) the total path length (L).


# %%
def backprop_by_hand(graph):
    """S(w, o) by the dynamic program, and the number of edge visits it made."""
    S = [0.0] * len(graph.nodes)
    N = [0] * len(graph.nodes)  # paths from i to o
    L = [0] * len(graph.nodes)  # total length of those paths (enumeration's work)
    S[graph.output], N[graph.output] = 1.0, 1
    succ = graph.successors()
    visits = 0
    for i in reversed(range(len(graph.nodes))):
        for edge in succ[i]:
            S[i] += S[edge.dst] * edge.z
            N[i] += N[edge.dst]
            L[i] += N[edge.dst] + L[edge.dst]
            visits += 1
    w = graph.inputs[0]
    return S[w], N[w], L[w], visits


sweep = range(2, 41, 2)
work = []
for depth in sweep:
    s = families.product_graph(depth, 2)
    g, n, length, visits = backprop_by_hand(ad.trace(s.f, *s.args))
    assert g == s.exact_grad and n == s.n_paths
    work.append((visits, length))
print(f"depth 40: dynamic programming {work[-1][0]:,} edge visits; enumeration {work[-1][1]:,} edge steps")

# %%
fig, ax = plt.subplots(figsize=(6, 4))
ax.semilogy(list(sweep), [v for v, _ in work], "o-", label="dynamic programming (edges)")
ax.semilogy(list(sweep), [length for _, length in work], "s-", label="path enumeration (total path length)")
ax.set_xlabel("depth (width 2)")
ax.set_ylabel("multiplications")
ax.set_title("the same sum, two algorithms")
ax.legend()
fig.tight_layout()
