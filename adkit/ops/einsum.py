"""np.einsum as a registry op: multilinear, so its JVP and VJP are einsums themselves.

For out = einsum("ij,jk->ik", A, B), the cotangent of an operand is the einsum of the
output cotangent with the other operands, producing that operand's subscripts:
dA = einsum("ik,jk->ij", g, B). An index that appears only in that operand (summed out,
as in "ij->i") is restored by broadcasting; a repeated index inside one operand (a trace
"ii->", a diagonal "ii->i") gets its cotangent on the diagonal, through identity
matrices: d/dA einsum("ii->", A) = I. numpy's whole syntax is accepted: "..." for
broadcast batch axes, the implicit output (no "->"), and the operand-list form
einsum(a, [0, 1], b, [1, 2]); each call is first normalised to explicit letters
(`normalize`), so the rules only ever see "ij,jk->ik".
"""

from __future__ import annotations

import string
from typing import Any

import numpy as np

from adkit.ops.core import REGISTRY, Op, register, shape_of

LETTERS = string.ascii_letters  # the 52 labels numpy's einsum accepts


def _implicit_output(ins: list[str], ellipsis: bool) -> str:
    """numpy's implicit mode: the labels that appear exactly once, in alphabetical order
    (upper case before lower case, as numpy sorts them), after the broadcast axes."""
    joined = "".join(ins)
    once = "".join(sorted(c for c in set(joined) if c != "." and joined.count(c) == 1))
    return ("..." if ellipsis else "") + once


def normalize(subscripts: str, shapes: list[tuple[int, ...]]) -> tuple[list[str], str]:
    """'...ij,...jk' with the operands' shapes -> (['Aij', 'Ajk'], 'Aik'): every axis named
    by one letter, '...' replaced by letters for the broadcast axes, the implicit output
    made explicit. Shapes are checked as numpy would (a clear error, not a deep traceback)."""
    spec = subscripts.replace(" ", "")
    inputs, arrow, output = spec.partition("->")
    ins = inputs.split(",")
    if len(ins) != len(shapes):
        raise ValueError(f"einsum subscripts {subscripts!r} name {len(ins)} operands, got {len(shapes)}")
    ellipsis = any("..." in s for s in ins)
    if not arrow:
        output = _implicit_output(ins, ellipsis)
    for s in [*ins, output]:
        if s.replace("...", "").strip(LETTERS) or s.count("...") > 1:
            raise ValueError(f"einsum subscripts {subscripts!r}: labels must be letters, with at most one '...' each")
    if "..." in output and not ellipsis:
        raise ValueError(f"einsum subscripts {subscripts!r}: '...' in the output but in no operand")
    free = [c for c in LETTERS if c not in spec]
    n_broadcast = 0
    for s, shape in zip(ins, shapes):
        named = len(s.replace("...", ""))
        if "..." in s:
            n_broadcast = max(n_broadcast, len(shape) - named)
        elif named != len(shape):
            raise ValueError(f"einsum: operand subscripts {s!r} name {named} axes, the operand has {len(shape)}")
    if n_broadcast > len(free):
        raise ValueError("einsum: too many axes to name with 52 letters")
    batch = "".join(free[:n_broadcast])
    out_ins = []
    for s, shape in zip(ins, shapes):
        if "..." in s:
            k = len(shape) - len(s.replace("...", ""))
            if k < 0:
                raise ValueError(f"einsum: operand subscripts {s!r} name more axes than the operand's {len(shape)}")
            s = s.replace("...", batch[n_broadcast - k :])
        out_ins.append(s)
    output = output.replace("...", batch)
    if len(set(output)) != len(output):
        raise ValueError(f"einsum output subscripts {output!r} repeat a label")
    unknown = set(output) - set("".join(out_ins))
    if unknown:
        raise ValueError(f"einsum output label(s) {''.join(sorted(unknown))!r} appear in no operand")
    return out_ins, output


def from_operand_lists(args: tuple[Any, ...]) -> tuple[str, list[Any]]:
    """einsum(a, [0, 1], b, [1, 2], [0, 2]) -> ('ab,bc->ac', [a, b]): numpy's second form,
    integer labels (and Ellipsis) in lists after each operand, an optional output list."""
    operands, subs = list(args[0::2]), list(args[1::2])
    output = None
    if len(operands) > len(subs):  # an odd count: the last item is the output list
        output = operands.pop()

    def letters(sub: Any) -> str:
        out = ""
        for label in sub:
            if label is Ellipsis:
                out += "..."
            elif isinstance(label, (int, np.integer)) and 0 <= int(label) < len(LETTERS):
                out += LETTERS[int(label)]
            else:
                raise ValueError(f"einsum operand-list labels are integers 0..51 or Ellipsis, got {label!r}")
        return out

    spec = ",".join(letters(s) for s in subs)
    if output is not None:
        spec += "->" + letters(output)
    return spec, operands


def _explicit(subscripts: str, operands: Any) -> tuple[list[str], str]:
    return normalize(subscripts, [shape_of(x) for x in operands])


def _einsum_impl(*operands: Any, subscripts: str) -> Any:
    ins, out = _explicit(subscripts, operands)
    return np.einsum(f"{','.join(ins)}->{out}", *operands)


def _sizes(ins: list[str], operands: Any) -> dict[str, int]:
    sizes: dict[str, int] = {}
    for s, x in zip(ins, operands):
        for c, n in zip(s, shape_of(x)):
            sizes[c] = max(sizes.get(c, 1), n)
    return sizes


def _cotangent(g: Any, operands: Any, k: int, ins: list[str], out: str) -> Any:
    """The cotangent of operand k: an einsum of g with the other operands onto operand k's
    distinct labels; labels it alone carries are broadcast back, repeated labels put on the
    diagonal (times identity matrices), broadcast size-1 axes summed."""
    einsum = REGISTRY["einsum"]
    target = ins[k]
    sizes = _sizes(ins, operands)
    others = [(s, x) for i, (s, x) in enumerate(zip(ins, operands)) if i != k]
    available = set(out).union(*[set(s) for s, _ in others])
    distinct = "".join(dict.fromkeys(target))
    kept = "".join(c for c in distinct if c in available)
    result = einsum(g, *[x for _, x in others], subscripts=",".join([out] + [s for s, _ in others]) + "->" + kept)
    if kept != distinct:  # labels summed out of this operand only: broadcast back
        expanded = tuple(sizes[c] if c in kept else 1 for c in distinct)
        full = tuple(sizes[c] for c in distinct)
        result = REGISTRY["broadcast_to"](REGISTRY["reshape"](result, shape=expanded), shape=full)
    if distinct != target:  # a repeated label: the cotangent lives on the diagonal
        spare = iter(c for c in LETTERS if c not in "".join(ins) + out)
        renamed, eyes, subs = "", [], [distinct]
        for c in target:
            if c in renamed:
                fresh = next(spare)
                eyes.append(np.eye(sizes[c]))
                subs.append(c + fresh)
                renamed += fresh
            else:
                renamed += c
        result = einsum(result, *eyes, subscripts=",".join(subs) + "->" + renamed)
    shape = shape_of(operands[k])
    if shape_of(result) != shape:  # a size-1 axis broadcast against a longer one
        axes = tuple(i for i, n in enumerate(shape) if n == 1 and shape_of(result)[i] != 1)
        result = REGISTRY["sum"](result, axis=axes, keepdims=True)
    return result


def _einsum_vjp(g, xs, out, needed, subscripts):
    ins, o = _explicit(subscripts, xs)
    return tuple(_cotangent(g, xs, k, ins, o) if need else None for k, need in enumerate(needed))


def _einsum_jvp(tangents, xs, out, nb, subscripts):
    ins, o = _explicit(subscripts, xs)
    batch = next(c for c in LETTERS if c not in "".join(ins) + o) if nb else ""  # the directions' axis
    einsum = REGISTRY["einsum"]
    total = None
    for k, t in enumerate(tangents):
        if t is None:
            continue
        subs = [batch + s if i == k else s for i, s in enumerate(ins)]
        term = einsum(*[t if i == k else x for i, x in enumerate(xs)], subscripts=",".join(subs) + "->" + batch + o)
        total = term if total is None else total + term
    return total


def _sympy_einsum(sp, *operands, subscripts):
    objects = [np.asarray(x, dtype=object) for x in operands]
    ins, out = normalize(subscripts, [x.shape for x in objects])
    result = np.asarray(np.einsum(f"{','.join(ins)}->{out}", *objects), dtype=object)
    return result[()] if result.ndim == 0 else result


def _examples(rng: np.random.Generator) -> list[tuple[tuple[Any, ...], dict[str, Any]]]:
    r = lambda *s: rng.uniform(-1, 1, size=s)  # noqa: E731
    return [
        ((r(2, 3), r(3, 4)), {"subscripts": "ij,jk->ik"}),
        ((r(2, 3),), {"subscripts": "ij->i"}),
        ((r(2, 3), r(3)), {"subscripts": "ij,j->"}),
        ((r(2, 3), r(2, 3)), {"subscripts": "ij,ij->ji"}),
        ((r(2, 3, 2), r(2, 2)), {"subscripts": "bij,bj->bi"}),
        ((r(3), r(2)), {"subscripts": "i,j"}),
        ((r(3, 3),), {"subscripts": "ii->"}),
        ((r(3, 3),), {"subscripts": "ii->i"}),
        ((r(2, 3, 3), r(3)), {"subscripts": "bii,i->b"}),
        ((r(2, 2, 3, 4), r(2, 1, 4, 2)), {"subscripts": "...ij,...jk->...ik"}),
        ((r(2, 3), r(3, 2)), {"subscripts": "ij,jk"}),
        ((r(1, 3), r(4, 3)), {"subscripts": "ij,ij->i"}),
    ]


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
        examples=_examples,
        numpy_names=(np.einsum,),
        label="Σ∏",
        doc="np.einsum, numpy's whole syntax ('...', implicit output, repeated labels for traces and "
        "diagonals; the operand-list form through np.einsum); backward: einsums of the cotangent with the "
        "other operands.",
    )
)

__all__ = ["from_operand_lists", "normalize"]
