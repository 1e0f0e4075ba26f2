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
# # 1. Computational graphs and the chain rule
#
# A computational graph is a DAG in which every node computes a function of its incoming
# nodes [AGG I]. `adkit.trace(f, *args)` runs `f` once and records that graph: one node per
# operation, with its value, and on every edge (i, j) the *local derivative*
# z(i, j) = dy(j)/dy(i) at the traced point.
#
# This notebook covers
# 1. colah's example `e = (a + b)(b + 1)` [HAM], drawn with values and local derivatives;
# 2. Aggarwal's two-path example `o = cos(w^2) + sin(w^2)`;
# 3. the 3 x 3 path factoring `dZ/dX = (alpha + beta + gamma)(delta + epsilon + zeta)`;
# 4. pathwise aggregation by hand against adkit's `paths` engine.

# %%
import math

import numpy as np

import adkit as ad

try:  # in Jupyter, display() renders the HTML tables; as a plain script, print the text
    from IPython.display import display
except ImportError:
    display = print

# %% [markdown]
# ## colah's example
#
# c = a + b, d = b + 1, e = c * d, at a = 2, b = 1. The lecture's values: c = 3, d = 2,
# e = 6, de/da = 2, de/db = 1*2 + 1*3 = 5.


# %%
def e(a, b):
    c = ad.label(a + b, "c")  # ad.label names the graph node as the lecture does
    d = ad.label(b + 1, "d")
    return ad.label(c * d, "e")


G = ad.trace(e, 2.0, 1.0)
display(G)  # the graph and its evaluation trace
values = {n.label: n.value for n in G.nodes}
assert (values["c"], values["d"], values["e"]) == (3.0, 2.0, 6.0)

# %% [markdown]
# Each edge carries its local derivative: dc/da = dc/db = dd/db = 1, de/dc = d = 2,
# de/dd = c = 3.

# %%
ax = G.draw(title="e = (a + b)(b + 1) at a = 2, b = 1")
for edge in G.edges:
    print(f"z({G.nodes[edge.src].label}, {G.nodes[edge.dst].label}) = {edge.z:g}")

# %% [markdown]
# The multivariate chain rule sums over the edges leaving a node. From b there are two
# paths to e: b -> c -> e (1 * 2) and b -> d -> e (1 * 3), so de/db = 5. Every engine
# agrees:

# %%
de_da, de_db = ad.grad(e, argnums=(0, 1))(2.0, 1.0)
assert (de_da, de_db) == (2.0, 5.0), (de_da, de_db)
result = ad.compare(e, 2.0, 1.0, engines=("forward", "reverse", "symbolic", "paths"))
display(result)
assert all(row.abs_error == 0.0 for row in result.rows if row.error is None)

# %% [markdown]
# The same graph as Graphviz text, for those who have `dot` installed
# (`dot -Tpng graph.dot -o graph.png`):

# %%
print(G.to_dot())

# %% [markdown]
# ## Two paths: o = cos(w^2) + sin(w^2) [AGG]
#
# y = z = w^2, p = cos(y), q = sin(z), o = p + q. There are two paths from w to o, and
# do/dw = -2w sin(w^2) + 2w cos(w^2): one term per path.


# %%
def o(w):
    y = ad.label(w**2, "y")
    z = ad.label(w**2, "z")
    p, q = ad.label(np.cos(y), "p"), ad.label(np.sin(z), "q")
    return ad.label(p + q, "o")


w0 = 1.3
G2 = ad.trace(o, w0)
paths = list(ad.iter_paths(G2))
for p in paths:
    print(p)
by_hand = [-2 * w0 * math.sin(w0**2), 2 * w0 * math.cos(w0**2)]  # via p, via q
assert G2.count_paths() == 2
assert np.allclose(sorted(p.product for p in paths), sorted(by_hand))
assert math.isclose(ad.grad(o)(w0), sum(by_hand), rel_tol=1e-14)
ax = G2.draw(highlight=paths[0].nodes, title="o = cos(w^2) + sin(w^2): the path through p highlighted")

# %% [markdown]
# ## The 3 x 3 path factoring [HAM]
#
# X feeds three nodes, which are added into Y; Y feeds three nodes, which are added into
# Z. The local derivatives from X are alpha = cos X, beta = 2X, gamma = exp X; from Y,
# delta = 1 - tanh(Y)^2, epsilon = 3Y^2, zeta = 2. There are 3 * 3 = 9 paths, and the sum
# of their products factors:
# dZ/dX = (alpha + beta + gamma)(delta + epsilon + zeta).


# %%
def Z(X):
    Y = np.sin(X) + X**2 + np.exp(X)
    return np.tanh(Y) + Y**3 + 2 * Y


X0 = 0.4
G3 = ad.trace(Z, X0)
G3.nodes[5].label, G3.nodes[-1].label = "Y", "Z"
Y0 = math.sin(X0) + X0**2 + math.exp(X0)
alpha, beta, gamma = math.cos(X0), 2 * X0, math.exp(X0)
delta, epsilon, zeta = 1 - math.tanh(Y0) ** 2, 3 * Y0**2, 2.0
products = sorted(p.product for p in ad.iter_paths(G3))
expected = sorted(u * v for u in (alpha, beta, gamma) for v in (delta, epsilon, zeta))
print(f"{G3.count_paths()} paths; their products: {np.round(products, 4)}")
assert G3.count_paths() == 9
assert np.allclose(products, expected, rtol=1e-13)
factored = (alpha + beta + gamma) * (delta + epsilon + zeta)
assert math.isclose(sum(products), factored, rel_tol=1e-13)
assert math.isclose(ad.grad(Z)(X0), factored, rel_tol=1e-13)
print(f"sum over 9 paths = {sum(products):.12g}; (alpha+beta+gamma)(delta+epsilon+zeta) = {factored:.12g}")

# %% [markdown]
# The factored form is the point of backpropagation: 9 products of 2 factors (and 8
# additions) become 2 sums and 1 product. The three heaviest paths:

# %%
for p in ad.heaviest_paths(G3, 3):
    print(p)
ax = G3.draw(top_k=3, title="Z(X): 9 paths, the 3 heaviest highlighted")

# %% [markdown]
# ## Pathwise aggregation by hand vs the `paths` engine
#
# The lemma [AGG I]: do/dw = sum over all paths P from w to o of the product of z(i, j)
# along P. Below, a depth-first enumeration written from scratch on the graph's edges,
# against `ad.iter_paths` and `ad.grad(..., engine="paths")`, on a function with two
# inputs and shared sub-expressions.


# %%
def all_paths(graph, source):
    """Every path from `source` to the output, as lists of edges (depth-first).

    A path is a sequence of edges, not of nodes: x * x has two edges x -> mul, so two paths.
    """
    succ = {}
    for edge in graph.edges:
        succ.setdefault(edge.src, []).append(edge)
    stack, found = [(source, [])], []
    while stack:
        node, path = stack.pop()
        if node == graph.output:
            found.append(path)
        for edge in succ.get(node, []):
            stack.append((edge.dst, [*path, edge]))
    return found


def pathwise_gradient(graph, source):
    return sum(math.prod(edge.z for edge in path) for path in all_paths(graph, source))


def h(x, y):
    u = x * y
    v = np.sin(u) + x * x
    return v * u + np.exp(v)


G4 = ad.trace(h, 0.7, -1.2)
by_hand = [pathwise_gradient(G4, s) for s in G4.inputs]
engine = ad.grad(h, argnums=(0, 1), engine="paths")(0.7, -1.2)
reverse = ad.grad(h, argnums=(0, 1), engine="reverse")(0.7, -1.2)
print(f"by hand: {by_hand}\npaths engine: {list(engine)}\nreverse mode: {list(reverse)}")
print(f"paths from x: {G4.count_paths('x')}, from y: {G4.count_paths('y')}")
assert np.allclose(by_hand, engine, rtol=1e-13) and np.allclose(engine, reverse, rtol=1e-13)
assert len(all_paths(G4, G4.inputs[0])) == G4.count_paths("x")
