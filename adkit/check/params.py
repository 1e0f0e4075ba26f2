"""The parameters being checked: their readable names, and the analytic gradient matched to them.

A check names every entry the way the user wrote the parameters (`W[2, 3]`,
`layers[0].b`), and refuses a claimed gradient whose structure or shapes differ from the
parameters' with a message naming the mismatch (a transposed matrix, an entry short, the
Jacobian's axes in the wrong order) instead of comparing numbers that do not correspond.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from adkit.trees import tree_flatten


def leaf_names(tree: Any, root: str | None = None) -> list[str]:
    """Readable names of the leaves of params, in tree_flatten order: W, layers[0].b, x."""
    if isinstance(tree, dict):
        out = []
        for k in tree:
            out.extend(leaf_names(tree[k], str(k) if root is None else f"{root}.{k}"))
        return out
    if isinstance(tree, (list, tuple)) and not (isinstance(tree, tuple) and hasattr(tree, "_fields")):
        out = []
        for i, x in enumerate(tree):
            out.extend(leaf_names(x, f"{root if root is not None else 'params'}[{i}]"))
        return out
    return [root if root is not None else "x"]


def _label(name: str, shape: tuple[int, ...], i: int) -> tuple[str, tuple[int, ...]]:
    if not shape:
        return name, ()
    idx = tuple(int(j) for j in np.unravel_index(i, shape))
    return f"{name}[{', '.join(map(str, idx))}]", idx


def _describe(fn: Any) -> str:
    name = getattr(fn, "__qualname__", None) or getattr(fn, "__name__", None) or type(fn).__name__
    module = getattr(fn, "__module__", None)
    return f"{module}.{name}" if module and module not in ("__main__", "builtins") else str(name)


@dataclass
class _Leaf:
    name: str
    value: Any  # as passed to f (float or ndarray)
    shape: tuple[int, ...]
    dtype: np.dtype
    analytic: np.ndarray | None = None  # (out_size, leaf_size) float64
    problem: str | None = None
    transposed_shape: bool = False
    threshold: float = 1e-6
    resolve: float = 1e-5  # an entry passes within the FD error only if that error is below this x |Ge|


def _analytic_side(
    f: Callable[..., Any], params: Any, grad: Any, args: Sequence[Any], out_shape: tuple[int, ...]
) -> tuple[Any, str]:
    if grad is None:
        import adkit

        fn = lambda p: f(p, *args)
        try:
            if out_shape == ():
                g = adkit.grad(fn)(params)
            else:
                g = adkit.jacobian(fn, engine="reverse")(params)
        except Exception as exc:
            raise ValueError(
                "grad=None asks adkit's reverse engine to differentiate f, and it could not "
                f"({type(exc).__name__}: {exc}). Pass the gradient to check as grad= (a callable "
                "or precomputed arrays)."
            ) from exc
        what = "adkit.grad (reverse engine)" if out_shape == () else "adkit.jacobian (reverse engine)"
        return g, what
    if callable(grad):
        return grad(params, *args), f"grad={_describe(grad)}"
    return grad, "precomputed arrays (grad=...)"


def _match_analytic(leaves: list[_Leaf], params: Any, g: Any, out_shape: tuple[int, ...], problems: list[str]) -> None:
    """Attach the analytic gradient's leaves to the parameters' leaves (by name or position)."""
    p_leaves, p_def = tree_flatten(params)
    g_leaves, g_def = tree_flatten(g)
    names = [leaf.name for leaf in leaves]
    g_names = leaf_names(g)
    if g_def == p_def:
        pairs = dict(zip(names, g_leaves))
    elif isinstance(params, dict) and isinstance(g, dict):
        pairs = {n: v for n, v in zip(g_names, g_leaves) if n in names}
        for n in g_names:
            if n not in names:
                problems.append(f"grad has an entry {n!r} that params does not have")
    elif _sequences_alike(g_def) == _sequences_alike(p_def):  # a list where params has a tuple
        pairs = dict(zip(names, g_leaves))
    else:
        count = f"grad has {len(g_leaves)} array(s), params {len(p_leaves)}; " if len(g_leaves) != len(p_leaves) else ""
        problems.append(
            f"grad's structure differs from params': {count}params is {_structure(params)}, grad is "
            f"{_structure(g)}; return the gradient in the structure of params"
        )
        for leaf in leaves:
            leaf.problem = "no matching gradient"
        return
    out_size = int(np.prod(out_shape, dtype=np.int64))
    for leaf in leaves:
        if leaf.name not in pairs:
            leaf.problem = f"grad has no entry for parameter {leaf.name!r}"
            problems.append(leaf.problem)
            continue
        if np.iscomplexobj(pairs[leaf.name]):  # casting would drop the imaginary part silently
            leaf.problem = f"grad for {leaf.name} is complex; the gradient of a real function is real"
            problems.append(leaf.problem)
            continue
        try:
            a = np.asarray(pairs[leaf.name], dtype=np.float64)
        except (TypeError, ValueError) as exc:
            leaf.problem = f"grad for {leaf.name} is not numeric ({exc})"
            problems.append(leaf.problem)
            continue
        want = tuple(out_shape) + leaf.shape
        if a.shape == want or (a.size == 1 and int(np.prod(want, dtype=np.int64)) == 1):
            leaf.analytic = a.reshape(out_size, -1)
            continue
        if out_shape == () and len(leaf.shape) == 2 and a.shape == leaf.shape[::-1]:
            leaf.analytic = a.T.reshape(1, -1)
            leaf.transposed_shape = True
            leaf.problem = (
                f"grad for {leaf.name} has shape {a.shape}, but {leaf.name} has shape {leaf.shape}: "
                "the gradient of a parameter has the parameter's shape"
            )
            problems.append(leaf.problem)
            continue
        size = int(np.prod(want, dtype=np.int64))
        extra = ""
        if out_shape and a.shape == leaf.shape + tuple(out_shape):
            leaf.problem = (
                f"grad for {leaf.name} has shape {a.shape} = {leaf.name}.shape + out.shape: the Jacobian's axes are "
                f"in the wrong order; adkit's convention is out.shape + {leaf.name}.shape = {want}"
            )
            problems.append(leaf.problem)
            continue
        if a.size == size - 1:
            extra = ": one entry short (an entry dropped?)"
        elif a.size == size:
            extra = ": same number of entries, different layout (reshaped or flattened?)"
        elif a.size < size and a.ndim < len(want):
            extra = " (summed over an axis? broadcasting undone on the wrong side?)"
        leaf.problem = f"grad for {leaf.name} has shape {a.shape}, but {leaf.name} has shape {leaf.shape}{extra}"
        if out_shape:
            leaf.problem = (
                f"grad for {leaf.name} has shape {a.shape}; the Jacobian of an output of shape {out_shape} "
                f"with respect to {leaf.name} {leaf.shape} has shape {want}{extra}"
            )
        problems.append(leaf.problem)


def _sequences_alike(treedef: Any) -> Any:
    """A tree description in which lists and tuples are the same kind of container."""
    if treedef is None:
        return None
    kind, keys, children = treedef
    return ("seq" if kind in ("list", "tuple") else kind, keys, [_sequences_alike(c) for c in children])


def _structure(tree: Any) -> str:
    """A short description of a container: 'a dict with keys W, b', 'a list of 2', 'an array'."""
    if isinstance(tree, dict):
        return f"a dict with keys {', '.join(map(str, tree))}"
    if isinstance(tree, (list, tuple)):
        return f"a {type(tree).__name__} of {len(tree)}"
    return "a single array" if isinstance(tree, np.ndarray) else f"a single {type(tree).__name__}"
