"""np.einsum as a registry op: multilinear, so its JVP and VJP are einsums themselves.

For out = einsum("ij,jk->ik", A, B), the cotangent of an operand is the einsum of the
output cotangent with the other operands, producing that operand's subscripts:
dA = einsum("ik,jk->ij", g, B). An index that appears only in that operand (summed out,
as in "ij->i") is restored by broadcasting. Repeated indices inside one operand (traces,
diagonals: "ii->") are refused with a clear error.
"""

from __future__ import annotations

import string
from typing import Any

import numpy as np

from adkit.errors import UnsupportedFunctionError
from adkit.ops.core import REGISTRY, Op, register, shape_of


def parse_subscripts(subscripts: str, n_operands: int) -> tuple[list[str], str]:
    """'ij,jk->ik' -> (['ij', 'jk'], 'ik'); implicit output (no '->') as numpy defines it."""
    spec = subscripts.replace(" ", "")
    if "." in spec:
        raise UnsupportedFunctionError("np.einsum with '...' is not supported on traced values: name every axis")
    inputs, arrow, output = spec.partition("->")
    ins = inputs.split(",")
    if len(ins) != n_operands:
        raise ValueError(f"einsum subscripts {subscripts!r} name {len(ins)} operands, got {n_operands}")
    for s in ins:
        if len(set(s)) != len(s):
            raise UnsupportedFunctionError(
                f"np.einsum with a repeated index inside one operand ({s!r}: a trace or a diagonal) is not "
                "supported on traced values: use np.trace, or multiply by np.eye and sum"
            )
    if not arrow:  # numpy's implicit mode: indices that appear once, in alphabetical order
        counts = {c: sum(s.count(c) for s in ins) for c in set("".join(ins))}
        output = "".join(sorted(c for c, k in counts.items() if k == 1))
    return ins, output


def _einsum_impl(*operands: Any, subscripts: str) -> Any:
    ins, out = parse_subscripts(subscripts, len(operands))
    return np.einsum(f"{','.join(ins)}->{out}", *operands)


def _cotangent(g: Any, operands: Any, k: int, ins: list[str], out: str) -> Any:
    einsum = REGISTRY["einsum"]
    target = ins[k]
    others = [(s, x) for i, (s, x) in enumerate(zip(ins, operands)) if i != k]
    available = set(out).union(*[set(s) for s, _ in others])
    kept = "".join(c for c in target if c in available)  # indices the einsum can produce
    spec = ",".join([out] + [s for s, _ in others]) + "->" + kept
    result = einsum(g, *[x for _, x in others], subscripts=spec)
    if kept != target:  # indices summed out of this operand only: broadcast back
        shape = shape_of(operands[k])
        expanded = tuple(shape[target.index(c)] if c in kept else 1 for c in target)
        result = REGISTRY["broadcast_to"](REGISTRY["reshape"](result, shape=expanded), shape=shape)
    return result


def _einsum_vjp(g, xs, out, needed, subscripts):
    ins, o = parse_subscripts(subscripts, len(xs))
    return tuple(_cotangent(g, xs, k, ins, o) if need else None for k, need in enumerate(needed))


def _einsum_jvp(tangents, xs, out, nb, subscripts):
    ins, o = parse_subscripts(subscripts, len(xs))
    free = next(c for c in string.ascii_letters if c not in subscripts)  # the batch axis's index
    einsum = REGISTRY["einsum"]
    total = None
    for k, t in enumerate(tangents):
        if t is None:
            continue
        subs = [(free if nb else "") + s if i == k else s for i, s in enumerate(ins)]
        spec = ",".join(subs) + "->" + (free if nb else "") + o
        term = einsum(*[t if i == k else x for i, x in enumerate(xs)], subscripts=spec)
        total = term if total is None else total + term
    return total


def _sympy_einsum(sp, *operands, subscripts):
    ins, out = parse_subscripts(subscripts, len(operands))
    result = np.einsum(f"{','.join(ins)}->{out}", *[np.asarray(x, dtype=object) for x in operands])
    result = np.asarray(result, dtype=object)
    return result[()] if result.ndim == 0 else result


register(
    Op(
        "einsum",
        _einsum_impl,
        variadic=True,
        params={"subscripts": ""},
        jvp=_einsum_jvp,
        vjp=_einsum_vjp,
        multilinear=True,
        vjp_needs_out=False,
        sympy=_sympy_einsum,
        examples=lambda rng: [
            ((rng.uniform(-1, 1, size=(2, 3)), rng.uniform(-1, 1, size=(3, 4))), {"subscripts": "ij,jk->ik"}),
            ((rng.uniform(-1, 1, size=(2, 3)),), {"subscripts": "ij->i"}),
            ((rng.uniform(-1, 1, size=(2, 3)), rng.uniform(-1, 1, size=3)), {"subscripts": "ij,j->"}),
            ((rng.uniform(-1, 1, size=(2, 3)), rng.uniform(-1, 1, size=(2, 3))), {"subscripts": "ij,ij->ji"}),
            ((rng.uniform(-1, 1, size=(2, 3, 2)), rng.uniform(-1, 1, size=(2, 2))), {"subscripts": "bij,bj->bi"}),
            ((rng.uniform(-1, 1, size=3), rng.uniform(-1, 1, size=2)), {"subscripts": "i,j"}),
        ],
        numpy_names=(np.einsum,),
        label="Σ∏",
        doc="np.einsum with named axes (no '...', no repeated index inside one operand); "
        "backward: einsums of the cotangent with the other operands.",
    )
)

__all__ = ["parse_subscripts"]
