"""Containers of arrays (pytrees) and the checks every transform applies to inputs.

Arguments may be floats, ints, numpy arrays, or dicts / lists / tuples (nested) of them;
gradients come back in the same structure. Kept apart from the transforms so that the
graph and the engines can use it without importing the transforms.
"""

from __future__ import annotations

import fractions
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import numpy as np

from adkit.errors import AdkitTypeError, AdkitValueError
from adkit.ops.core import NDARRAY_SUBCLASS_ADVICE, REGISTRY, Tracer, is_complex, lift_object, primal


def tree_flatten(tree: Any) -> tuple[list[Any], Any]:
    """Leaves of a dict / list / tuple nest, in order, and a description to rebuild it."""
    if isinstance(tree, dict):
        keys = list(tree)
        parts = [tree_flatten(tree[k]) for k in keys]
        return [leaf for p in parts for leaf in p[0]], ("dict", keys, [p[1] for p in parts])
    if isinstance(tree, (list, tuple)) and not _is_namedtuple(tree):
        parts = [tree_flatten(x) for x in tree]
        return [leaf for p in parts for leaf in p[0]], (type(tree).__name__, None, [p[1] for p in parts])
    return [tree], None


def _is_namedtuple(x: Any) -> bool:
    return isinstance(x, tuple) and hasattr(x, "_fields")


def tree_unflatten(treedef: Any, leaves: Sequence[Any]) -> Any:
    return _build(treedef, iter(leaves))


def _build(d: Any, it: Iterator[Any]) -> Any:
    """The tree of `d` with its leaves taken from `it`. A module function, not a recursive
    closure: such a closure is a reference cycle that would keep the leaves (and through
    traced leaves, a whole tape) alive until the cyclic garbage collector runs."""
    if d is None:
        return next(it)
    kind, keys, children = d
    built = [_build(c, it) for c in children]
    if kind == "dict":
        return dict(zip(keys, built))
    return tuple(built) if kind == "tuple" else list(built)


def as_input(x: Any, where: str) -> Any:
    """A leaf ready to be traced: ints promoted to float, complex numbers kept complex (the
    forward and reverse engines differentiate them; the others refuse them by name with
    `refuse_complex_inputs`); anything else refused by name (bools, masked arrays, np.matrix,
    non-numeric objects), so that every engine sees the same inputs."""
    if isinstance(x, Tracer):
        return x
    if isinstance(x, bool) or isinstance(x, np.bool_):
        raise AdkitTypeError(f"{where}: got a bool; expected a float, an int or a numpy array of numbers")
    if isinstance(x, (int, np.integer, fractions.Fraction)):
        return float(x)
    if isinstance(x, float):
        return float(x)
    if isinstance(x, np.floating):
        return float(x) if x.dtype == np.float64 else np.asarray(x)
    if isinstance(x, complex):
        return complex(x)
    if isinstance(x, np.complexfloating):
        return complex(x) if x.dtype == np.complex128 else np.asarray(x)
    if isinstance(x, np.ndarray):
        if type(x) is not np.ndarray and not isinstance(x, np.memmap):
            raise AdkitTypeError(f"{where}: got a {type(x).__module__}.{type(x).__name__}; {NDARRAY_SUBCLASS_ADVICE}")
        kind = x.dtype.kind
        if kind == "f" or kind == "c":
            return x
        if kind in "iu":
            return x.astype(np.float64)
        raise AdkitTypeError(f"{where}: a numpy array of dtype {x.dtype} cannot be differentiated; expected numbers")
    raise AdkitTypeError(
        f"{where}: expected a float, an int, a numpy array, or a dict / list / tuple of them; got {type(x).__name__}"
    )


def refuse_complex_inputs(leaves: Sequence[Any], who: str) -> None:
    """Refuse complex inputs in an engine that differentiates along real directions only."""
    for leaf in leaves:
        if is_complex(leaf):
            raise AdkitTypeError(
                f"{who} differentiates real inputs only, and got a complex input: use engine='reverse' "
                "(adkit.grad's default), which follows JAX's convention for complex inputs (README, "
                '"Complex numbers"), or pass the real and imaginary parts as two real arguments.'
            )


def argnums_tuple(argnums: int | Sequence[int], nargs: int) -> tuple[int, ...]:
    """argnums as a tuple of non-negative positions, checked against the call's arity."""
    nums = (argnums,) if isinstance(argnums, int) else tuple(argnums)
    for n in nums:
        if not isinstance(n, int) or not -nargs <= n < nargs:
            raise AdkitValueError(f"argnums={argnums!r} does not fit a call with {nargs} positional argument(s)")
    return tuple(n % nargs for n in nums)


class Prepared:
    """f's arguments with the differentiated ones (argnums) replaced by what `make(leaf, k)`
    returns for their k-th leaf (an engine's tracers); `rebuild` puts per-leaf results back
    into the arguments' structure."""

    def __init__(self, args: Sequence[Any], argnums: tuple[int, ...], make: Callable[[Any, int], Any]):
        self.args = list(args)
        self.treedefs: list[Any] = []
        self.leaves: list[list[Any]] = []
        self.traced: list[list[Any]] = []
        k = 0
        for n in argnums:
            leaves, treedef = tree_flatten(args[n])
            leaves = [as_input(leaf, f"argument {n}") for leaf in leaves]
            traced = []
            for leaf in leaves:
                traced.append(make(leaf, k))
                k += 1
            self.treedefs.append(treedef)
            self.leaves.append(leaves)
            self.traced.append(traced)
            self.args[n] = tree_unflatten(treedef, traced)
        self.total = k

    def rebuild(self, per_leaf: Sequence[Sequence[Any]], single: bool) -> Any:
        trees = tuple(tree_unflatten(d, vals) for d, vals in zip(self.treedefs, per_leaf))
        return trees[0] if single else trees


def is_scalar_list(x: Any) -> bool:
    return isinstance(x, (list, tuple)) and bool(x) and all(np.ndim(primal(o)) == 0 for o in x)


def output_value(out: Any) -> Any:
    """Check f's output is numeric and return it (lists of scalars are stacked, and so
    are object arrays of traced values: np.array([x, y]))."""
    out = lift_object(out)
    if is_scalar_list(out):
        out = REGISTRY["stack"](*out)
    if isinstance(out, Tracer):
        return out
    if not isinstance(out, (int, float, np.number, np.bool_, np.ndarray)):  # bools: derivative 0
        raise AdkitTypeError(f"f must return a number or a numpy array, got {type(out).__name__}")
    return out
