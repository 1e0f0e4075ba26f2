"""All engines on the shared registry, graphs, paths, symbolic swell and compare() (issue 3).

Every engine registered with `adkit.grad` (forward and reverse always; symbolic and paths;
numeric as soon as it registers itself in `adkit.transforms.DIFFERENTIATING_ENGINES`) is
checked the same way, with oracles written here:

* the registry, op by op: every differentiable op at points from its own domain (shape ()
  and (3,)) and every structural op at its own examples, each engine against central
  finite differences of the op's numpy implementation, and the engines against each other;
* random expression DAGs (hypothesis): several scalar inputs, shared sub-expressions, every
  elementwise registry op with its inputs kept inside its domain by construction;
* the worked examples of SEEDS.md sections 1-3 (colah, the two-path example, 3 x 3 path
  factoring, Aggarwal's product-node graph, sin(w^2) + cos(w^2) and expression swell),
  heaviest paths against brute force, the local derivatives on graph edges against finite
  differences;
* the paths engine's budget, path counts far beyond enumeration (10^6, 2^200);
* compare(), to_dot() / draw(), exact symbolic evaluation on ints and fractions.

The only derivative values written here are the lecture's (SEEDS.md, cited where used);
everything else is computed by an independent oracle (finite differences of numpy code,
sympy on a formula typed in this file, brute-force enumeration).
"""

from __future__ import annotations

import json
import math
import re
import sys
import time
import zlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from fractions import Fraction
from typing import Any

import numpy as np
import pytest
import sympy as sp
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

import adkit
from adkit.families import layered_dag, product_graph
from adkit.ops import REGISTRY, Op
from adkit.transforms import DIFFERENTIATING_ENGINES

# --- engines ------------------------------------------------------------------------------
# Every engine adkit.grad can run today. "numeric" (finite differences) joins by itself once
# its module registers it; nothing here names it except for its looser tolerance.
ENGINES = tuple(e for e in adkit.ENGINES if e in ("forward", "reverse") or e in DIFFERENTIATING_ENGINES)
# Engines that are exact up to floating-point rounding: they combine the same exact local
# derivatives (forward: dual numbers; reverse: one backward sweep; paths: the sum over paths
# of the products; symbolic: sympy's derivative of the sympy forms, evaluated at 30 digits).
EXACT_ENGINES = tuple(e for e in ENGINES if e != "numeric")
# The reference the other engines are compared with: sympy's derivative evaluated at 30
# digits is the most accurate number available (it does not even round intermediate results).
REFERENCE = "symbolic" if "symbolic" in ENGINES else "reverse"

# --- tolerances -------------------------------------------------------------------------------
EPS = float(np.finfo(np.float64).eps)
# Central differences written here, step h = eps^(1/3) * max(1, |x|) ~ 6e-6 per entry: the
# step that balances truncation (h^2 |f'''| / 6) against rounding (eps |f| / h); both are
# ~eps^(2/3) ~ 4e-11 relative times a curvature factor. The registry domains' worst curvature
# (reciprocal / div at |y| = 0.1: f'''/f' = 6 / y^2 = 600; tan near 1.2) puts the true FD error
# near 1e-8 relative at worst. The engines' own errors are far smaller (rounding for forward,
# reverse, paths and symbolic; Richardson extrapolation for numeric), so the oracle's error is
# what the tolerance must absorb, the same for every engine: rtol = 1e-6, a 100x margin, and
# still 5 orders of magnitude below what a wrong rule produces (an O(1) error). atol covers
# entries whose exact value is 0 or tiny: ~ the FD rounding error eps |F| / h for |F| up to
# ~10, per unit of total cotangent weight. (Observed at the fixed seeds, every engine: worst
# 1.9e-9 relative, logsumexp over 24 entries; a 500x margin.)
FD_STEP = EPS ** (1.0 / 3.0)
FD_RTOL = {e: 1e-6 for e in ENGINES}
FD_ATOL = 1e-8
# Engines against each other (registry cases): forward, reverse, paths and symbolic evaluate
# the same exact derivative; only rounding separates them (a few ulps per local derivative,
# n ulps for a sum of n terms, n <= ~50 here: ~1e-14 relative to the gradient's largest
# entry). 1e-12 leaves a 100x margin and is 4 orders tighter than finite differences could
# check. The error is measured against the largest entry of the reference gradient (a
# norm-wise bound): rounding in an entry that is a sum of terms of mixed sign is relative to
# the terms, not to the (possibly tiny) sum. (Observed: worst 8.6e-16, softmax.) numeric is
# a finite-difference engine (Richardson extrapolation, error ~ eps^(4/5) ~ 3e-13 times a
# curvature factor): it is held to 1e-7 (observed: worst 4.3e-11, softmax).
AGREE_RTOL = {e: (1e-7 if e == "numeric" else 1e-12) for e in ENGINES}
# Random DAGs: 1e-9 (the figure), measured against the sum over paths of |product of
# local derivatives| (computed here from the traced graph): every exact engine adds up exactly
# these products in some order, so its rounding error is ~n eps times that sum however much
# the products cancel; the deeper compositions (up to ~12 ops plus guards) also carry the
# rounding of each local derivative, amplified by its rule's condition number (the guards
# keep those small, see below). (Observed over 1,500 programs: worst 2.7e-15 for the exact
# engines.) numeric: 1e-6 (observed worst 7.5e-10; it differences through up to a dozen
# nested ops, so its truncation error is larger here than on single ops).
DAG_RTOL = {e: (1e-6 if e == "numeric" else 1e-9) for e in ENGINES}
# numeric's rounding error scales with the function's value, not with the gradient: Richardson
# on steps h ~ eps^(1/5) leaves ~eps^(4/5) |f| ~ 3e-13 |f| times a chain factor, which matters
# where a chain of anchors makes the gradient ~1e-7 of the value (observed worst over the
# fallback programs: 3.7e-12 |f|). 1e-10 |f| leaves a 27x margin.
DAG_ATOL_PER_VALUE = {e: (1e-10 if e == "numeric" else 0.0) for e in ENGINES}

# The symbolic engine's cost grows fast with the number of input entries for some forms (one
# sympy Max over 24 entries takes ~6 s to differentiate), so its structural cases use inputs
# cut down to at most this many entries where the op allows (see small_example).
SYMBOLIC_MAX_ENTRIES = 12


def _seed(*parts: Any) -> int:
    return zlib.crc32("|".join(map(str, parts)).encode())


def _grad_all(f: Callable[..., Any], xs: Sequence[Any], engine: str) -> list[Any]:
    """Gradient w.r.t. every positional argument, as a list (one entry per argument)."""
    g = adkit.grad(f, argnums=tuple(range(len(xs))), engine=engine)(*xs)
    return list(g)


def fd_grad(F: Callable[..., Any], xs: Sequence[Any], k: int) -> Any:
    """Central-difference gradient of the scalar numpy function F w.r.t. xs[k], entry by
    entry, h = eps^(1/3) max(1, |x|); divided by the step actually taken (x + h rounds)."""
    x = np.array(xs[k], dtype=np.float64)
    as_float = np.ndim(xs[k]) == 0 and not isinstance(xs[k], np.ndarray)

    def at(v: np.ndarray) -> float:
        args = list(xs)
        args[k] = float(v) if as_float else v
        return float(F(*args))

    out = np.empty(x.shape)
    for idx in np.ndindex(*x.shape):
        h = FD_STEP * max(1.0, abs(float(x[idx])))
        xp, xm = x.copy(), x.copy()
        xp[idx] += h
        xm[idx] -= h
        out[idx] = (at(xp) - at(xm)) / (xp[idx] - xm[idx])
    return float(out) if as_float else out


def worst(got: Any, want: Any, scale: Any) -> float:
    """max |got - want| / scale (entrywise scale, or one number); inf on a shape mismatch
    or a non-finite result."""
    g = np.asarray(got, dtype=np.float64)
    w = np.asarray(want, dtype=np.float64)
    if g.shape != w.shape or not np.all(np.isfinite(g)):
        return math.inf
    diff = np.abs(g - w)
    with np.errstate(divide="ignore", over="ignore", invalid="ignore"):
        err = np.where(diff == 0.0, 0.0, diff / np.asarray(scale, dtype=np.float64))
    return float(np.max(err)) if err.size else 0.0


# --- registry cases -----------------------------------------------------------------------------


FOURIER = ("fftn", "ifftn", "rfftn", "irfftn")


def differentiable(op: Op) -> bool:
    # the Fourier transforms have complex values, which these real-valued oracles cannot
    # compare: tests/test_fft.py checks them along real and imaginary directions
    return not op.nograd and op.name not in FOURIER


def diff_positions(op: Op, n_args: int) -> tuple[int, ...]:
    """Inputs with a derivative (where's condition has none)."""
    if isinstance(op.partials, tuple):
        return tuple(i for i, p in enumerate(op.partials) if p is not None)
    return tuple(range(n_args))


def small_example(op: Op, args: Sequence[Any], params: dict[str, Any]) -> tuple[Any, ...]:
    """The example cut down (each axis k to its first 2 + k % 2 entries: unequal lengths,
    so a transposition bug still shows) when it has more than SYMBOLIC_MAX_ENTRIES entries
    and the op still accepts it with the same output rank; otherwise unchanged."""
    if sum(int(np.size(a)) for a in args) <= SYMBOLIC_MAX_ENTRIES:
        return tuple(args)
    small = tuple(
        a[tuple(slice(0, 2 + k % 2) for k in range(a.ndim))] if isinstance(a, np.ndarray) else a for a in args
    )
    try:
        if np.ndim(op.impl(*small, **params)) == np.ndim(op.impl(*args, **params)):
            return small
    except Exception:  # noqa: BLE001 (an index or shape parameter ties the example to its size)
        pass
    return tuple(args)


@dataclass
class Case:
    """One call of an op: the full argument list, its params, the differentiated
    positions, and a fixed positive cotangent g: the engines differentiate sum(g * op)."""

    op: Op
    args: tuple[Any, ...]
    params: dict[str, Any]
    pos: tuple[int, ...]
    g: Any

    def _closed(self, fn: Callable[..., Any]) -> Callable[..., Any]:
        def F(*diff: Any) -> Any:
            full = list(self.args)
            for p, v in zip(self.pos, diff):
                full[p] = v
            out = fn(*full, **self.params)
            return self.g * out if np.ndim(self.g) == 0 else np.sum(self.g * out)

        return F

    @property
    def f(self) -> Callable[..., Any]:
        """sum(g * op(...)) through adkit (what the engines differentiate)."""
        return self._closed(self.op)

    @property
    def f_numpy(self) -> Callable[..., Any]:
        """The same function on the op's numpy implementation (the FD oracle's)."""
        return self._closed(self.op.impl)

    @property
    def xs(self) -> list[Any]:
        return [self.args[p] for p in self.pos]


def make_case(name: str, label: str, small: bool = False) -> Case:
    """The case `label` of op `name`: "scalar" / "array" draw from the op's domain with
    shape () / (3,); "exampleN" is the op's N-th example (cut down when `small`)."""
    op = REGISTRY[name]
    rng = np.random.default_rng(_seed("test_engines", name, label))
    if label.startswith("example"):
        args, params = op.examples(rng)[int(label[len("example") :])]
        args, params = tuple(args), dict(params)
        if small:
            args = small_example(op, args, params)
    else:
        args, params = tuple(op.domain(rng, () if label == "scalar" else (3,))), {}
    pos = diff_positions(op, len(args))
    out_shape = np.shape(op.impl(*args, **params))
    # positive weights: for elementwise ops each gradient entry is one g_i f'(x_i), with no
    # cancellation between entries, so the relative tolerances above mean what they say
    g = rng.uniform(0.5, 1.5, size=out_shape)
    return Case(op, args, params, pos, float(g) if out_shape == () else g)


def symbolic_refusal(op: Op) -> str | None:
    """What the symbolic engine refuses by name for an op sympy has no counterpart of (svd, ...)."""
    return getattr(op.sympy, "symbolic_refusal", None)


def case_labels(op: Op) -> list[str]:
    labels = []
    if op.domain is not None and op.examples is None:
        labels += ["scalar", "array"]
    if op.examples is not None:
        labels += [f"example{i}" for i in range(len(op.examples(np.random.default_rng(0))))]
    return labels


# Known adkit bugs, per case: (op, label, engine or "agree") -> reason; marked xfail, strict,
# so a mark fails the suite as soon as its bug is fixed and cannot go stale. Empty at
# present (clip's sympy defaults, found here on an older checkout, were fixed in 9f866be).
KNOWN_BUGS: dict[tuple[str, str, str], str] = {}


def _params(with_engine: bool) -> list[Any]:
    out = []
    for name, op in REGISTRY.items():
        if not differentiable(op):
            continue
        for label in case_labels(op):
            for engine in ENGINES if with_engine else (None,):
                key = (name, label, engine or "agree")
                marks = [pytest.mark.xfail(strict=True, reason=KNOWN_BUGS[key])] if key in KNOWN_BUGS else []
                values = (name, label, engine) if with_engine else (name, label)
                ident = "-".join(v for v in values if v)
                out.append(pytest.param(*values, id=ident, marks=marks))
    return out


@pytest.mark.parametrize(("name", "label", "engine"), _params(with_engine=True))
def test_registry_op_matches_finite_differences(name: str, label: str, engine: str) -> None:
    """Every differentiable op, every engine, scalar and array points from the op's domain
    (structural ops: their examples), against central differences of the numpy impl."""
    case = make_case(name, label, small=engine == "symbolic")
    refused = symbolic_refusal(case.op)
    if engine == "symbolic" and refused:  # sympy has no counterpart (svd, ...): refused by name
        with pytest.raises(adkit.errors.UnsupportedFunctionError, match=re.escape(refused)):
            _grad_all(case.f, case.xs, engine)
        return
    got = _grad_all(case.f, case.xs, engine)
    for k, p in enumerate(case.pos):
        want = fd_grad(case.f_numpy, case.xs, k)
        # tolerance per entry: rtol |want| + atol per unit of cotangent weight
        scale = FD_RTOL[engine] * np.abs(want) + FD_ATOL * float(np.sum(case.g))
        err = worst(got[k], want, scale)
        assert err <= 1.0, (
            f"{name} {label}: {engine} d/d(arg {p}) = {got[k]!r}, central differences {want!r} "
            f"(worst error {err:.2g} x tolerance)"
        )


@pytest.mark.parametrize(("name", "label"), _params(with_engine=False))
def test_registry_op_engines_agree(name: str, label: str) -> None:
    """The engines against each other at AGREE_RTOL (exact up to rounding), on the same
    inputs (cut down for the symbolic engine's sake where the op allows)."""
    case = make_case(name, label, small=True)
    refused = symbolic_refusal(case.op)  # then the symbolic engine is no reference (tested above)
    reference = "reverse" if refused and REFERENCE == "symbolic" else REFERENCE
    ref = _grad_all(case.f, case.xs, reference)
    for engine in ENGINES if not refused else [e for e in ENGINES if e != "symbolic"]:
        got = _grad_all(case.f, case.xs, engine)
        for k, p in enumerate(case.pos):
            scale = AGREE_RTOL[engine] * max(float(np.max(np.abs(ref[k]))), 1e-300)
            err = worst(got[k], ref[k], scale)
            assert err <= 1.0, (
                f"{name} {label}: {engine} d/d(arg {p}) = {got[k]!r} but {reference} gives {ref[k]!r} "
                f"(worst error {err:.2g} x tolerance)"
            )


def test_registry_cases_cover_every_differentiable_op() -> None:
    """Every differentiable op is exercised above, by domain points or by examples."""
    missing = [n for n, op in REGISTRY.items() if differentiable(op) and not case_labels(op)]
    assert not missing, f"ops without a domain or examples, so untested on the engines: {missing}"
    assert {"forward", "reverse", "symbolic", "paths"} <= set(ENGINES)


def test_small_examples_keep_unequal_axes() -> None:
    """The cut-down structural inputs used for the symbolic engine still have unequal
    axis lengths (2, 3, 2 ...), so an axis mix-up would not cancel out."""
    op = REGISTRY["sum"]
    args, params = op.examples(np.random.default_rng(0))[1]
    (small,) = small_example(op, args, params)
    assert small.shape == (2, 3, 2)
    assert np.array_equal(small, args[0][:2, :3, :2])


# --- random expression DAGs (hypothesis) -----------------------------------------------------------
#
# A program is a list of op nodes over several scalar inputs; each operand of a node is an
# earlier value (inputs or nodes, so sub-expressions are shared whenever an index is drawn
# twice) passed through a *guard* chosen at build time from the concrete values, which keeps
# the op inside its domain and away from its kinks (all engines use the same kink
# conventions, but the symbolic engine's sympy forms are Piecewise: their derivative *at* a
# kink is not the registry's convention, so kinks are avoided by a margin, not met):
#   squash      arctan(v)              in (-pi/2, pi/2): nothing overflows whatever the depth
#   pos         exp(0.6 arctan(v))     in (0.39, 2.57): log, sqrt, log1p, pow's base
#   unit        0.55 arctan(v)         in (-0.87, 0.87): arcsin, arccos
#   tan         0.75 arctan(v)         in (-1.18, 1.18): tan, away from its poles
#   shift c     v + c                  away from 0 (div, reciprocal), from a kink or a tie
#   anchor d    d + 0.03 arctan(v)     any op not known below: its own domain sample d, moved
#                                      by less than the domain's distance to its kinks (0.1)
# Values are kept to |v| <= 3 before any op (larger ones are squashed first). The guards
# use arctan, not tanh: tanh's rule 1 - tanh(v)^2 cancels catastrophically once tanh
# saturates (at v = 10 it keeps ~7 of 16 digits), arctan's 1 / (1 + v^2) never does, so the
# guards do not themselves lose the accuracy the tolerance below is meant to check.

REAL, NONZERO, POSITIVE, BOUNDED, UNIT, TAN, TIE, COND = "real nonzero pos bounded unit tan tie cond".split()
DAG_KINDS: dict[str, tuple[str, ...]] = {
    **{n: (REAL, REAL) for n in ("add", "sub", "mul")},
    "div": (REAL, NONZERO),
    "pow": (POSITIVE, BOUNDED),
    "reciprocal": (NONZERO,),
    **{n: (POSITIVE,) for n in ("log", "log1p", "sqrt")},
    **{n: (UNIT,) for n in ("arcsin", "arccos")},
    "tan": (TAN,),
    **{
        n: (REAL,)
        for n in ("neg", "pos", "square", "exp", "expm1", "sin", "cos", "arctan", "sinh", "cosh", "tanh")
        + ("sigmoid", "softplus", "relu", "leaky_relu", "abs", "hard_tanh", "clip")
    },
    **{n: (REAL, TIE) for n in ("maximum", "minimum")},
    "where": (COND, REAL, REAL),
}
# kinks of the kinked ops, and the params they are called with (clip: a finite interval;
# leaky_relu: a slope that is not the default, so a dropped param would show)
DAG_KINKS: dict[str, tuple[float, ...]] = {
    "relu": (0.0,),
    "leaky_relu": (0.0,),
    "abs": (0.0,),
    "hard_tanh": (-1.0, 1.0),
    "clip": (-0.5, 0.5),
}
DAG_PARAMS: dict[str, dict[str, Any]] = {"clip": {"lo": -0.5, "hi": 0.5}, "leaky_relu": {"alpha": 0.2}}
KINK_MARGIN = 0.1  # >> the numeric engine's largest step (~7e-4) times any chain factor seen
MAX_DAG_NODES = 12  # inputs + op nodes (the guards add a few registry nodes each)

DAG_OPS = tuple(
    sorted(n for n, op in REGISTRY.items() if differentiable(op) and op.domain is not None and op.examples is None)
)

GUARDS: dict[str, Callable[[Any, float], Any]] = {
    "squash": lambda v, c: np.arctan(v),
    "pos": lambda v, c: np.exp(0.6 * np.arctan(v)),
    "unit": lambda v, c: 0.55 * np.arctan(v),
    "tan": lambda v, c: 0.75 * np.arctan(v),
    "shift": lambda v, c: v + c,
    "anchor": lambda v, c: c + 0.03 * np.arctan(v),
}


@dataclass(frozen=True)
class Operand:
    src: int  # index into inputs + node values; -1 for a constant
    guards: tuple[tuple[str, float], ...] = ()
    const: Any = None


@dataclass(frozen=True)
class DagNode:
    op: str
    operands: tuple[Operand, ...]


@dataclass(frozen=True)
class Program:
    inputs: tuple[float, ...]
    nodes: tuple[DagNode, ...]

    def run(self, *xs: Any) -> Any:
        """Evaluate on floats or on any engine's tracers; the output is the sum of the op
        nodes no other node uses."""
        values = list(xs)
        used = set()
        for node in self.nodes:
            args = []
            for o in node.operands:
                if o.src < 0:
                    args.append(o.const)
                    continue
                used.add(o.src)
                v = values[o.src]
                for name, c in o.guards:
                    v = GUARDS[name](v, c)
                args.append(v)
            values.append(REGISTRY[node.op](*args, **DAG_PARAMS.get(node.op, {})))
        sinks = [values[len(xs) + i] for i in range(len(self.nodes)) if len(xs) + i not in used]
        out = sinks[0]
        for s in sinks[1:]:
            out = out + s
        return out

    def __repr__(self) -> str:  # readable in hypothesis' falsifying example
        lines = [f"inputs {self.inputs}"]
        for i, n in enumerate(self.nodes):
            ops = []
            for o in n.operands:
                if o.src < 0:
                    ops.append(repr(o.const))
                    continue
                s = f"v{o.src}"
                for g, c in o.guards:
                    s = f"{g}[{c:g}]({s})" if g in ("shift", "anchor") else f"{g}({s})"
                ops.append(s)
            lines.append(f"v{len(self.inputs) + i} = {n.op}({', '.join(ops)})")
        return "Program(" + "; ".join(lines) + ")"


def _apply_guards(v: float, guards: Sequence[tuple[str, float]]) -> float:
    for name, c in guards:
        v = float(GUARDS[name](v, c))
    return v


def _away(v: float, points: Sequence[float]) -> tuple[tuple[str, float], ...]:
    """A shift that moves v at least KINK_MARGIN away from every point (none if it is)."""
    for c in (0.0, 2.5 * KINK_MARGIN, -2.5 * KINK_MARGIN, 5 * KINK_MARGIN):
        if all(abs(v + c - p) >= KINK_MARGIN for p in points):
            return () if c == 0.0 else (("shift", c),)
    raise AssertionError("unreachable: the points are further apart than the shifts")


def _guards_for(op: str, kind: str, v: float, first: float | None) -> tuple[tuple[str, float], ...]:
    if kind == POSITIVE:
        return (("pos", 0.0),)
    if kind == UNIT:
        return (("unit", 0.0),)
    if kind == TAN:
        return (("tan", 0.0),)
    if kind == BOUNDED:
        return (("squash", 0.0),)
    guards: tuple[tuple[str, float], ...] = (("squash", 0.0),) if abs(v) > 3.0 else ()
    w = _apply_guards(v, guards)
    if kind == NONZERO:
        return guards + _away(w, (0.0,))
    if kind == TIE:
        assert first is not None
        return guards + _away(w, (first,))
    return guards + _away(w, DAG_KINKS.get(op, ()))


class Chooser:
    """The choices a program is built from; drawn by hypothesis, or by a seeded numpy
    generator (to check what the generator produces, below)."""

    def integer(self, lo: int, hi: int) -> int:
        raise NotImplementedError

    def op(self) -> str:
        raise NotImplementedError

    def boolean(self) -> bool:
        raise NotImplementedError

    def input(self) -> float:
        raise NotImplementedError


class HypothesisChooser(Chooser):
    # inputs in [-2, 2]; not tiny (below 1e-3 products can reach the subnormal range, where
    # floats lose relative precision and no relative tolerance is meaningful); 0 allowed
    _x = st.floats(-2.0, 2.0, allow_nan=False).filter(lambda v: v == 0.0 or abs(v) >= 1e-3)

    def __init__(self, draw: Any) -> None:
        self.draw = draw

    def integer(self, lo: int, hi: int) -> int:
        return self.draw(st.integers(lo, hi))

    def op(self) -> str:
        return self.draw(st.sampled_from(DAG_OPS))

    def boolean(self) -> bool:
        return self.draw(st.booleans())

    def input(self) -> float:
        return self.draw(self._x)


class RngChooser(Chooser):
    def __init__(self, seed: int) -> None:
        self.rng = np.random.default_rng(seed)

    def integer(self, lo: int, hi: int) -> int:
        return int(self.rng.integers(lo, hi + 1))

    def op(self) -> str:
        return DAG_OPS[int(self.rng.integers(len(DAG_OPS)))]

    def boolean(self) -> bool:
        return bool(self.rng.integers(2))

    def input(self) -> float:
        return float(self.rng.uniform(-2.0, 2.0))


def build_program(choose: Chooser) -> Program:
    n_in = choose.integer(2, 4)
    inputs = tuple(choose.input() for _ in range(n_in))
    n_nodes = choose.integer(1, MAX_DAG_NODES - n_in)
    values: list[float] = list(inputs)
    nodes: list[DagNode] = []
    for _ in range(n_nodes):
        name = choose.op()
        op = REGISTRY[name]
        if name in DAG_KINDS:
            kinds = DAG_KINDS[name]
        elif op.variadic:  # product
            kinds = (REAL,) * choose.integer(2, 3)
        else:  # an op registered later: anchored to its own domain sample
            kinds = ("anchor",) * len(op.domain(np.random.default_rng(0), ()))
        sample = op.domain(np.random.default_rng(_seed("dag", name)), ())
        operands: list[Operand] = []
        concrete: list[Any] = []
        for i, kind in enumerate(kinds):
            if kind == COND or (kind == "anchor" and isinstance(op.partials, tuple) and op.partials[i] is None):
                c = choose.boolean() if kind == COND else sample[i]
                operands.append(Operand(-1, const=c))
                concrete.append(c)
                continue
            src = choose.integer(0, len(values) - 1)
            if kind == "anchor":
                guards: tuple[tuple[str, float], ...] = (("anchor", float(sample[i])),)
            else:
                guards = _guards_for(name, kind, values[src], concrete[0] if kind == TIE else None)
            operands.append(Operand(src, guards))
            concrete.append(_apply_guards(values[src], guards))
        nodes.append(DagNode(name, tuple(operands)))
        values.append(float(op(*concrete, **DAG_PARAMS.get(name, {}))))
    return Program(inputs, tuple(nodes))


@st.composite
def programs(draw: Any) -> Program:
    return build_program(HypothesisChooser(draw))


def abs_path_sums(graph: adkit.Graph) -> list[float]:
    """Per input: sum over every path to the output of |product of z| (dynamic programming
    over |z|, written here): the scale of any engine's rounding error."""
    g = graph.scalarize()
    acc = [0.0] * len(g.nodes)
    if g.output is None:
        return [0.0] * len(g.inputs)
    acc[g.output] = 1.0
    succ = g.successors()
    for i in range(len(g.nodes) - 1, -1, -1):
        if i != g.output:
            acc[i] = sum(abs(float(e.z)) * acc[e.dst] for e in succ[i])
    return [acc[i] for i in g.inputs]


def _shared_program() -> Program:
    """v3 = x0 * x1 is used by three nodes (a shared sub-expression); a log and an arcsin
    guarded into their domains; a maximum and an abs kept off their kinks."""
    sq, pos, unit = ("squash", 0.0), ("pos", 0.0), ("unit", 0.0)
    return Program(
        (0.7, -1.3, 0.4),
        (
            DagNode("mul", (Operand(0), Operand(1))),  # v3 = -0.91
            DagNode("log", (Operand(3, (pos,)),)),  # v4 = -0.44
            DagNode("arcsin", (Operand(3, (unit,)),)),  # v5 = -0.42
            DagNode("maximum", (Operand(4), Operand(2))),  # v6 = max(-0.44, 0.4)
            DagNode("mul", (Operand(3), Operand(6, (sq,)))),  # v7
            DagNode("abs", (Operand(5),)),  # v8
            DagNode("pow", (Operand(7, (pos,)), Operand(8, (sq,)))),  # v9
        ),
    )


def check_program(prog: Program) -> None:
    """Every engine agrees with the reference on the program (and returns its value); the
    graph's path count is the number of paths iter_paths streams, whose products add up
    to the gradient."""
    xs = prog.inputs
    value = prog.run(*xs)
    assert math.isfinite(value)
    graph = adkit.trace(prog.run, *xs)
    scales = abs_path_sums(graph)
    ref = _grad_all(prog.run, xs, REFERENCE)
    for k, (r, s) in enumerate(zip(ref, scales)):  # |sum of products| <= sum of |products|
        assert abs(r) <= s * (1 + 1e-9) + 1e-300, f"|d/dx{k}| = {abs(r)} exceeds sum of |path products| {s}"
    for engine in ENGINES:
        val, grads = adkit.value_and_grad(prog.run, argnums=tuple(range(len(xs))), engine=engine)(*xs)
        assert val == pytest.approx(value, rel=1e-12, abs=1e-300), f"{engine}: f = {val}, built as {value}"
        for k, (got, want, s) in enumerate(zip(grads, ref, scales)):
            assert abs(got - want) <= DAG_RTOL[engine] * s + DAG_ATOL_PER_VALUE[engine] * abs(value) + 1e-300, (
                f"{engine}: d/dx{k} = {got!r}, {REFERENCE} gives {want!r} "
                f"(error {abs(got - want):.3g}, sum of |path products| {s:.3g})\n{prog!r}"
            )
    g = graph.scalarize()
    for k, src in enumerate(g.inputs):
        n = g.count_paths(src)
        if n <= 20_000:
            paths = list(adkit.iter_paths(g, source=src))
            assert len(paths) == n
            assert math.fsum(p.product for p in paths) == pytest.approx(ref[k], rel=1e-9, abs=1e-9 * scales[k])


def _nested_kinks_program() -> Program:
    """A program hypothesis once drew: clip(log1p(arcsin(...))) inside a minimum. Building
    minimum's condition made sympy's Piecewise fold the inner Piecewise and call as_set,
    which recursed in periodicity() for ~5 minutes (the symbolic engine now builds kinked
    ops' Piecewise as written: elementwise.piecewise)."""
    return Program(
        inputs=(0.6, -1.1671654623163403, -0.0, 0.3162146037421887),
        nodes=(
            DagNode(op="exp", operands=(Operand(src=3, guards=(), const=None),)),
            DagNode(op="leaky_relu", operands=(Operand(src=2, guards=(("shift", 0.25),), const=None),)),
            DagNode(op="arcsin", operands=(Operand(src=0, guards=(("unit", 0.0),), const=None),)),
            DagNode(op="arcsin", operands=(Operand(src=6, guards=(("unit", 0.0),), const=None),)),
            DagNode(op="log1p", operands=(Operand(src=6, guards=(("pos", 0.0),), const=None),)),
            DagNode(op="clip", operands=(Operand(src=8, guards=(), const=None),)),
            DagNode(op="reciprocal", operands=(Operand(src=5, guards=(), const=None),)),
            DagNode(
                op="minimum",
                operands=(Operand(src=5, guards=(), const=None), Operand(src=9, guards=(), const=None)),
            ),
        ),
    )


@settings(deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much])
@given(programs())
@example(_shared_program())
@example(_nested_kinks_program())
def test_random_dags_all_engines_agree(prog: Program) -> None:
    """Random expression DAGs (several inputs, shared sub-expressions, every elementwise
    op, each kept in its domain): all engines agree. Examples: the profile's max_examples
    (tests/conftest.py: derandomized in CI)."""
    check_program(prog)


def test_dag_generator_shares_subexpressions_and_covers_ops() -> None:
    """The DAG generator is not degenerate: programs reuse values (shared sub-expressions),
    use every elementwise op of the registry, and evaluate finite."""
    seen_ops: set[str] = set()
    shared = 0
    for seed in range(200):
        prog = build_program(RngChooser(seed))
        srcs = [o.src for n in prog.nodes for o in n.operands if o.src >= 0]
        shared += len(srcs) != len(set(srcs))
        seen_ops.update(n.op for n in prog.nodes)
        assert math.isfinite(prog.run(*prog.inputs))
    assert shared >= 100
    assert seen_ops == set(DAG_OPS)


def test_dag_fallback_for_ops_without_a_guard(monkeypatch: pytest.MonkeyPatch) -> None:
    """An elementwise op registered later has no entry in DAG_KINDS: its operands are
    anchored to its own domain sample. Exercised here on every op of today's registry, as
    if none had an entry."""
    monkeypatch.setattr(sys.modules[__name__], "DAG_KINDS", {})
    seen: set[str] = set()
    for seed in range(max(25, len(DAG_OPS) // 2)):  # enough programs to meet 3/4 of the ops
        prog = build_program(RngChooser(1000 + seed))
        for node in prog.nodes:
            seen.add(node.op)
            if not REGISTRY[node.op].variadic:
                assert all(o.src < 0 or [g for g, _ in o.guards] == ["anchor"] for o in node.operands)
        check_program(prog)
    assert len(seen) >= len(DAG_OPS) * 3 // 4


# --- SEEDS.md section 1: colah's example, the two-path example, path factoring -----------------


def colah(a: Any, b: Any) -> Any:
    """SEEDS.md section 1 [HAM, after colah's blog]: c = a + b, d = b + 1, e = c * d."""
    c = a + b
    d = b + 1
    return c * d


def exact_or_close(engine: str, got: Any, want: Any) -> bool:
    """For results that are exact in float64 (small integers, powers of two): equality for
    the exact engines (forward, reverse, paths, symbolic: nothing to round), the engine's
    agreement tolerance for numeric (finite differences are never exact)."""
    if engine in EXACT_ENGINES:
        return bool(np.all(np.asarray(got) == np.asarray(want)))
    return bool(np.allclose(got, want, rtol=AGREE_RTOL[engine], atol=0.0))


@pytest.mark.parametrize("engine", ENGINES)
def test_colah_every_engine(engine: str) -> None:
    """At a = 2, b = 1: e = 6, de/da = 2, de/db = 1*2 + 1*3 = 5 (SEEDS.md section 1)."""
    for a, b in [(2, 1), (2.0, 1.0), (Fraction(2), Fraction(1))]:
        value, (da, db) = adkit.value_and_grad(colah, argnums=(0, 1), engine=engine)(a, b)
        assert value == 6.0
        assert exact_or_close(engine, [da, db], [2.0, 5.0]), (engine, a, b, da, db)


def test_colah_symbolic_is_exact_with_int_inputs() -> None:
    res = adkit.symbolic_derivative(colah, 2, 1)
    assert res.exact
    assert res.values == [sp.Integer(2), sp.Integer(5)]
    assert all(isinstance(v, sp.Integer) for v in res.values)
    a, b = res.symbols
    assert sp.expand(res.expression - (a + b) * (b + 1)) == 0
    assert sp.simplify(res.derivatives[1] - (a + 2 * b + 1)) == 0


def test_colah_graph_paths() -> None:
    """b reaches e by two paths (through c and through d), with products 1*2 and 1*3
    (the lecture's de/db = 1*2 + 1*3); a by one."""
    g = adkit.trace(colah, 2.0, 1.0)
    assert g.count_paths("a") == 1 and g.count_paths("b") == 2 and g.count_paths() == 3
    assert sorted(p.product for p in adkit.iter_paths(g, "b")) == [2.0, 3.0]
    assert [p.product for p in adkit.iter_paths(g, "a")] == [2.0]


def two_path(w: Any) -> Any:
    """SEEDS.md section 1 [AGG]: y = z = w^2, p = cos(y), q = sin(z), o = p + q."""
    y = w**2
    return np.cos(y) + np.sin(y)


@pytest.mark.parametrize("w", [0.5, 1.3, -2.1])
@pytest.mark.parametrize("engine", ENGINES)
def test_two_path_example_every_engine(engine: str, w: float) -> None:
    """do/dw = -2w sin(w^2) + 2w cos(w^2) (SEEDS.md section 1)."""
    want = -2 * w * math.sin(w * w) + 2 * w * math.cos(w * w)
    got = adkit.grad(two_path, engine=engine)(w)
    assert got == pytest.approx(want, rel=AGREE_RTOL[engine], abs=1e-15)


@pytest.mark.parametrize("w", [0.5, 1.3, -2.1])
def test_two_path_example_paths(w: float) -> None:
    """Two paths from w to o; their products are -sin(w^2) 2w and cos(w^2) 2w, and add up
    to the gradient (the pathwise aggregation lemma, SEEDS.md section 2)."""
    g = adkit.trace(two_path, w)
    assert g.count_paths() == 2
    paths = list(adkit.iter_paths(g))
    assert len(paths) == 2
    assert all(p.nodes[0] == g.inputs[0] and p.nodes[-1] == g.output for p in paths)
    want = sorted([-math.sin(w * w) * 2 * w, math.cos(w * w) * 2 * w])
    assert sorted(p.product for p in paths) == pytest.approx(want, rel=1e-14)
    total = sum(p.product for p in paths)
    assert total == pytest.approx(adkit.grad(two_path, engine="reverse")(w), rel=1e-14, abs=1e-15)


# the 3 x 3 factoring example (SEEDS.md section 1 [HAM]): X -> {3 nodes} -> Y -> {3 nodes}
# -> Z, edge derivatives alpha, beta, gamma then delta, epsilon, zeta.
FIRST = (2, 3, 5)  # alpha, beta, gamma
SECOND = (7, 11, 13)  # delta, epsilon, zeta


def factoring_linear(x: Any) -> Any:
    y = FIRST[0] * x + FIRST[1] * x + FIRST[2] * x
    return SECOND[0] * y + SECOND[1] * y + SECOND[2] * y


def factoring_nonlinear(x: Any) -> Any:
    y = np.sin(x) + np.exp(x) + x**3
    return np.tanh(y) + np.cos(y) + y**2


@pytest.mark.parametrize("engine", ENGINES)
def test_path_factoring_3x3_linear(engine: str) -> None:
    """9 paths; dZ/dX = (alpha + beta + gamma)(delta + epsilon + zeta)."""
    want = sum(FIRST) * sum(SECOND)
    g = adkit.trace(factoring_linear, 1.0)
    assert g.count_paths() == 9
    assert [e.z for e in g.successors()[g.inputs[0]]] == list(FIRST)
    assert adkit.symbolic_derivative(factoring_linear, 3).values == [sp.Integer(want)]
    assert exact_or_close(engine, adkit.grad(factoring_linear, engine=engine)(3), want)  # integers


@pytest.mark.parametrize("engine", ENGINES)
def test_path_factoring_3x3_nonlinear(engine: str) -> None:
    """The same shape with nonlinear nodes: alpha, beta, gamma are the local derivatives
    on X's three out-edges, delta, epsilon, zeta those on Y's; the 9 path products are the
    alpha_i delta_j, and dZ/dX = (alpha + beta + gamma)(delta + epsilon + zeta)."""
    x = 0.4
    g = adkit.trace(factoring_nonlinear, x)
    assert g.count_paths() == 9
    succ = g.successors()
    (xin,) = g.inputs
    branchy = [i for i in range(len(g.nodes)) if len(succ[i]) == 3]
    assert branchy[0] == xin and len(branchy) == 2  # X and Y fan out to three nodes each
    first = [e.z for e in succ[xin]]
    second = [e.z for e in succ[branchy[1]]]
    products = sorted(p.product for p in adkit.iter_paths(g))
    assert products == pytest.approx(sorted(a * d for a in first for d in second), rel=1e-14)
    want = sum(first) * sum(second)
    assert adkit.grad(factoring_nonlinear, engine=engine)(x) == pytest.approx(want, rel=AGREE_RTOL[engine])
    assert want == pytest.approx(fd_grad(factoring_nonlinear, [x], 0), rel=FD_RTOL[engine])


# --- SEEDS.md section 2: Aggarwal's product-node graph, pathwise aggregation ----------------------


@pytest.mark.parametrize("engine", ENGINES)
def test_aggarwal_product_graph_depth5_width2(engine: str) -> None:
    """Input w, 5 layers of 2 product nodes, output O: 2^5 = 32 paths (SEEDS.md section 2).
    Every node value is a power of two (families.product_graph), so every product and sum
    is exact in float64 and the exact engines must give spec.exact_grad exactly."""
    spec = product_graph(depth=5, width=2)
    assert spec.n_paths == 32
    g = adkit.trace(spec.f, *spec.args)
    assert g.count_paths() == 32
    got = adkit.grad(spec.f, engine=engine)(*spec.args)
    assert exact_or_close(engine, got, spec.exact_grad), (engine, got)


def test_aggarwal_product_graph_paths_sum_to_gradient() -> None:
    """The lemma, literally: the 32 path products (each the product of the other inputs
    of every product node on the way) add up to the gradient."""
    spec = product_graph(depth=5, width=2)
    g = adkit.trace(spec.f, *spec.args)
    paths = list(adkit.iter_paths(g))
    assert len(paths) == 32 == len({tuple(p.nodes) for p in paths})
    assert math.fsum(p.product for p in paths) == spec.exact_grad
    assert adkit.symbolic_derivative(spec.f, 1).values == [sp.Integer(32)]


def _brute_force_top(g: adkit.Graph, k: int) -> list[tuple[tuple[int, ...], float]]:
    paths = [(tuple(p.nodes), p.product) for p in adkit.iter_paths(g)]
    return sorted(paths, key=lambda t: -abs(t[1]))[:k]


@pytest.mark.parametrize(("depth", "width", "k"), [(3, 3, 5), (4, 2, 16), (2, 4, 3)])
def test_heaviest_paths_equal_brute_force_top_k(depth: int, width: int, k: int) -> None:
    """heaviest_paths (dynamic programming in log space) = the k largest |products| of a
    full enumeration; the products of all paths add up to the gradient."""
    spec = layered_dag(depth=depth, width=width, seed=depth * 10 + width)
    g = adkit.trace(spec.f, *spec.args)
    top = adkit.heaviest_paths(g, k=k)
    want = _brute_force_top(g, k)
    assert len(top) == min(k, spec.n_paths)
    assert [abs(p.product) for p in top] == pytest.approx([abs(w[1]) for w in want], rel=1e-12)
    assert [tuple(p.nodes) for p in top] == [w[0] for w in want]  # random weights: no ties
    assert [p.product for p in top] == pytest.approx([w[1] for w in want], rel=1e-12)  # signs too
    total = math.fsum(p.product for p in adkit.iter_paths(g))
    assert total == pytest.approx(spec.exact_grad, rel=1e-12, abs=1e-15)


def test_heaviest_paths_k_beyond_count_returns_every_path() -> None:
    spec = product_graph(depth=3, width=2)
    g = adkit.trace(spec.f, *spec.args)
    top = adkit.heaviest_paths(g, k=100)
    assert len(top) == 8
    assert sorted(abs(p.product) for p in top) == sorted(abs(p.product) for p in adkit.iter_paths(g))


# --- graph edges carry z(i, j) -------------------------------------------------------------------


def _edge_fd(g: adkit.Graph, edge: Any) -> float:
    """Central difference of node dst's op w.r.t. its argument at `edge.position`, the
    other arguments held at their traced values: z(i, j) = dy(j)/dy(i) by its definition."""
    node = g.nodes[edge.dst]
    vals = [g.nodes[p].value if p is not None else c for p, c in zip(node.parents, node.consts)]
    x = float(vals[edge.position])
    h = FD_STEP * max(1.0, abs(x))

    def at(v: float) -> float:
        args = list(vals)
        args[edge.position] = v
        return float(node.op.impl(*args, **node.params))

    return (at(x + h) - at(x - h)) / ((x + h) - (x - h))


EDGE_FUNCTIONS = {
    "colah": (colah, (2.0, 1.0)),
    "two_path": (two_path, (1.3,)),
    "mixed": (lambda x, y: np.sin(x * y) + x**2 / y + np.tanh(x) * np.exp(-y) + np.maximum(x, y), (0.7, 1.9)),
    "activations": (lambda x: adkit.sigmoid(x) * adkit.softplus(x) + np.arctan(x) ** 3, (0.3,)),
}


@pytest.mark.parametrize("name", EDGE_FUNCTIONS)
def test_edges_carry_local_derivatives(name: str) -> None:
    f, args = EDGE_FUNCTIONS[name]
    g = adkit.trace(f, *args)
    assert g.edges, "no edges"
    for e in g.edges:
        want = _edge_fd(g, e)
        assert e.z == pytest.approx(want, rel=FD_RTOL["forward"], abs=FD_ATOL), (
            f"edge {g.nodes[e.src].label} -> {g.nodes[e.dst].label}: z = {e.z}, central differences {want}"
        )
    # every edge joins an earlier node to a later one, at a position that holds it
    for e in g.edges:
        assert e.src < e.dst and g.nodes[e.dst].parents[e.position] == e.src


def test_x_times_x_has_two_edges_to_x() -> None:
    """Parents are positions, not a set: x * x has two edges to x, each with z = x, so
    two paths whose products add up to 2x."""
    g = adkit.trace(lambda x: x * x, 3.0)
    (x,) = g.inputs
    edges = [e for e in g.edges if e.src == x]
    assert len(edges) == 2 and {e.position for e in edges} == {0, 1}
    assert [e.z for e in edges] == [3.0, 3.0]
    assert g.count_paths() == 2
    assert sum(p.product for p in adkit.iter_paths(g)) == 6.0
    for engine in ENGINES:
        assert exact_or_close(engine, adkit.grad(lambda x: x * x, engine=engine)(3.0), 6.0), engine


# --- SEEDS.md section 3: sin(w^2) + cos(w^2), expression swell ----------------------------------


def test_sin_cos_w2_symbolic_swell_and_cse() -> None:
    """f(w) = sin(w^2) + cos(w^2) (SEEDS.md section 3): "DP differentiates w^2 once, naive
    expansion twice". The one-tree derivative holds w^2 (and its derivative 2w) twice; CSE
    factors w^2 out once; so the tree has more operations than the CSE form."""
    f = lambda w: np.sin(w**2) + np.cos(w**2)  # noqa: E731
    res = adkit.symbolic_derivative(f, 1.5)
    (w,) = res.symbols
    (d,) = res.derivatives
    assert sp.simplify(d - (2 * w * sp.cos(w**2) - 2 * w * sp.sin(w**2))) == 0  # SEEDS.md section 1
    assert d.count(w**2) == 2  # differentiated twice: once under sin, once under cos
    repl, (reduced,) = res.cse()
    assert [rhs for _, rhs in repl] == [w**2]
    assert reduced.count(w**2) == 0
    assert res.count_ops > res.count_ops_cse
    assert float(res.values[0]) == pytest.approx(adkit.grad(f)(1.5), rel=1e-14)
    latex = res.latex()[0]
    assert "\\sin" in latex and "\\cos" in latex and "w^{2}" in latex
    assert str(d) in str(res)


def _nested(depth: int, step: Callable[[Any], Any]) -> Callable[[Any], Any]:
    def f(w: Any) -> Any:
        y = w**2
        for _ in range(depth):
            y = step(y)
        return y

    return f


def test_expression_swell_grows_with_depth() -> None:
    """The naive (tree) derivative of sin(sin(...sin(w^2))) grows faster than the one with
    shared sub-expressions (CSE): their ratio increases with every level. Observed with
    sympy 1.14: tree 4, 8, 13, 19, 26, 34 ops (quadratic), CSE 4, 7, 10, 13, 16, 19 (+3 a
    level, linear: the chain rule's DP)."""
    tree, cse = [], []
    for depth in range(1, 7):
        res = adkit.symbolic_derivative(_nested(depth, np.sin), 0.7)
        tree.append(res.count_ops)
        cse.append(res.count_ops_cse)
        assert float(res.values[0]) == pytest.approx(adkit.grad(_nested(depth, np.sin))(0.7), rel=1e-13)
    ratios = [t / c for t, c in zip(tree, cse)]
    assert all(r2 > r1 for r1, r2 in zip(ratios, ratios[1:])), (tree, cse)
    tree_steps = [b - a for a, b in zip(tree, tree[1:])]
    assert all(s2 > s1 for s1, s2 in zip(tree_steps, tree_steps[1:])), tree  # superlinear
    cse_steps = [b - a for a, b in zip(cse, cse[1:])]
    assert max(cse_steps) == min(cse_steps), cse  # linear


def test_expression_swell_is_exponential_with_two_uses_per_level() -> None:
    """y <- sin(y) + cos(y) uses y twice per level (the two-path example, repeated): the
    tree derivative at least doubles per level, the CSE form grows by a constant.
    Observed: tree 9, 33, 97, 257, 641; CSE 8, 14, 20, 26, 32."""
    tree, cse = [], []
    for depth in range(1, 6):
        res = adkit.symbolic_derivative(_nested(depth, lambda y: np.sin(y) + np.cos(y)), 0.7)
        tree.append(res.count_ops)
        cse.append(res.count_ops_cse)
    assert all(b >= 2 * a for a, b in zip(tree, tree[1:])), tree
    cse_steps = [b - a for a, b in zip(cse, cse[1:])]
    assert max(cse_steps) == min(cse_steps), cse
    assert tree[-1] > 15 * cse[-1]


# --- the path budget and counts beyond enumeration --------------------------------------------------


def test_path_budget_refuses_before_enumerating() -> None:
    """product_graph(depth=25) has 2^25 = 33,554,432 paths: the paths engine refuses at
    once (the count comes from dynamic programming), with the count, an estimated time,
    and how to raise the budget."""
    spec = product_graph(depth=25, width=2)
    start = time.perf_counter()
    with pytest.raises(adkit.PathBudgetExceeded) as info:
        adkit.grad(spec.f, engine="paths")(*spec.args)
    elapsed = time.perf_counter() - start
    assert elapsed < 10.0  # refused before the enumeration (the message estimates its time)
    msg = str(info.value)
    assert f"{2**25:,}" == "33,554,432" and "33,554,432 paths" in msg
    assert "paths_budget" in msg
    assert re.search(r"about [0-9.]+(e[+-]?\d+)? (ms|s|minutes|hours|days|years)\b", msg), msg
    assert isinstance(info.value, adkit.AdkitError)


def test_path_budget_can_be_raised_and_is_restored() -> None:
    spec = product_graph(depth=5, width=2)
    with adkit.paths_budget(31):
        with pytest.raises(adkit.PathBudgetExceeded, match="32 paths"):
            adkit.grad(spec.f, engine="paths")(*spec.args)
    with adkit.paths_budget(32):  # the budget is inclusive
        assert adkit.grad(spec.f, engine="paths")(*spec.args) == spec.exact_grad
    big = product_graph(depth=21, width=2)  # 2,097,152 paths: over the default budget
    with pytest.raises(adkit.PathBudgetExceeded):
        adkit.grad(big.f, engine="paths")(*big.args)
    with adkit.paths_budget(2**21):
        small = product_graph(depth=10, width=2)
        assert adkit.grad(small.f, engine="paths")(*small.args) == small.exact_grad
    with pytest.raises(adkit.PathBudgetExceeded):  # restored on exit
        adkit.grad(big.f, engine="paths")(*big.args)


def test_mlp_three_hidden_layers_of_100_has_a_million_paths() -> None:
    """SEEDS.md section 2: "a million paths for a network with 100 nodes in each of three
    layers": one input, three tanh layers of 100 units (numpy @), one output."""
    rng = np.random.default_rng(3)
    w1 = rng.normal(size=(100, 1))
    w2, w3 = rng.normal(size=(100, 100)) / 10, rng.normal(size=(100, 100)) / 10
    w4 = rng.normal(size=(100,)) / 10

    def mlp(x: Any) -> Any:
        h = np.tanh(w1 @ x)
        h = np.tanh(w2 @ h)
        h = np.tanh(w3 @ h)
        return w4 @ h

    start = time.perf_counter()
    g = adkit.trace(mlp, np.array([0.3]))
    n = g.count_paths()
    elapsed = time.perf_counter() - start
    assert n == 10**6 and type(n) is int
    assert elapsed < 5.0, f"tracing, scalarising and counting took {elapsed:.1f} s"
    with adkit.paths_budget(10**6 - 1), pytest.raises(adkit.PathBudgetExceeded, match="1,000,000 paths"):
        adkit.grad(mlp, engine="paths")(np.array([0.3]))


def test_path_count_beyond_enumeration_is_exact() -> None:
    """product_graph(depth=200, width=2): exactly 2^200 paths, a Python int, counted by
    dynamic programming (enumeration would never finish)."""
    spec = product_graph(depth=200, width=2)
    start = time.perf_counter()
    n = adkit.trace(spec.f, *spec.args).count_paths()
    assert time.perf_counter() - start < 5.0
    assert n == 2**200 and type(n) is int
    assert n == spec.n_paths


# --- compare() ---------------------------------------------------------------------------------------


def _cmp_f(x: Any, y: Any) -> Any:
    return np.sin(x * y) + x**2 / y


def test_compare_rows_errors_and_round_trip() -> None:
    x, y = 0.7, 1.3
    res = adkit.compare(_cmp_f, x, y, engines=ENGINES, min_seconds=0.0)
    assert [r.engine for r in res.rows] == list(ENGINES)
    assert res.reference_kind.startswith("symbolic")
    fd = [fd_grad(_cmp_f, [x, y], k) for k in range(2)]
    assert res.reference == pytest.approx(fd, rel=FD_RTOL["symbolic"])
    assert res.value == pytest.approx(float(_cmp_f(x, y)), rel=1e-15)
    for row in res.rows:
        assert row.error is None, row.error
        assert row.gradient == pytest.approx(res.reference, rel=AGREE_RTOL[row.engine])
        assert row.rel_error is not None and row.rel_error <= AGREE_RTOL[row.engine]
        assert row.abs_error is not None and row.abs_error <= AGREE_RTOL[row.engine] * max(map(abs, fd))
        assert row.seconds is not None and row.seconds >= 0.0
        assert res[row.engine] is row
    d = res.to_dict()
    assert json.loads(res.to_json()) == d
    assert [e["engine"] for e in d["engines"]] == list(ENGINES)
    assert d["reference"] == res.reference
    text = str(res)
    for engine in ENGINES:
        assert engine in text
    html = res._repr_html_()
    assert isinstance(html, str) and "<table" in html
    for engine in ENGINES:
        assert engine in html


def test_compare_exact_reference_and_every_listed_engine() -> None:
    """Int inputs: the reference is exact (colah: 2 and 5, SEEDS.md section 1). With the
    default engine list every engine of adkit.ENGINES gets a row; one that is not
    available yet is an error row, not a crash."""
    res = adkit.compare(colah, 2, 1, min_seconds=0.0)
    assert [r.engine for r in res.rows] == list(adkit.ENGINES)
    assert res.reference == [2.0, 5.0] and "exact" in res.reference_kind
    for row in res.rows:
        if row.engine in ENGINES:
            assert row.error is None and exact_or_close(row.engine, row.gradient, [2.0, 5.0])
            assert row.abs_error == 0.0 if row.engine in EXACT_ENGINES else row.rel_error <= AGREE_RTOL[row.engine]
        else:
            assert row.error and row.gradient is None


def test_compare_html_never_raises(monkeypatch: pytest.MonkeyPatch) -> None:
    import adkit.display

    res = adkit.compare(_cmp_f, 0.7, 1.3, engines=("forward", "reverse"), min_seconds=0.0)

    def broken(*args: Any, **kwargs: Any) -> str:
        raise RuntimeError("display broken")

    monkeypatch.setattr(adkit.display, "html_table", broken)
    assert res._repr_html_() is None
    assert "forward" in str(res)  # the text table does not use the HTML helper


# --- to_dot() and draw() --------------------------------------------------------------------------------

_DOT_NODE = re.compile(r'^\s*n(\d+) \[label="((?:[^"\\]|\\.)*)"(?:, [a-z]+=[^,\]]+)*\];$')
_DOT_EDGE = re.compile(r'^\s*n(\d+) -> n(\d+) \[label="((?:[^"\\]|\\.)*)"(?:, [a-z]+=[^,\]]+)*\];$')


def test_to_dot_is_valid_dot_with_every_node_and_edge() -> None:
    f, args = EDGE_FUNCTIONS["mixed"]
    g = adkit.trace(f, *args)
    dot = g.to_dot()
    lines = dot.strip().splitlines()
    assert lines[0].startswith("digraph") and lines[0].rstrip().endswith("{") and lines[-1] == "}"
    assert dot.count("{") == dot.count("}") == 1
    nodes, edges = {}, []
    for line in lines[1:-1]:
        if m := _DOT_NODE.match(line):
            nodes[int(m.group(1))] = m.group(2)
        elif m := _DOT_EDGE.match(line):
            edges.append((int(m.group(1)), int(m.group(2)), m.group(3)))
        else:
            assert re.match(r"^\s*(rankdir=\w+|node \[[^\]]*\]);$", line), f"not a DOT statement: {line!r}"
    assert set(nodes) == {n.id for n in g.nodes}
    for n in g.nodes:
        assert nodes[n.id].startswith(n.label)
    assert len(edges) == len(g.edges)
    for (src, dst, label), e in zip(edges, g.edges):
        assert (src, dst) == (e.src, e.dst)
        assert float(label) == pytest.approx(e.z, rel=1e-3, abs=1e-4)  # printed to 4 digits


def test_draw_returns_matplotlib_axes() -> None:
    matplotlib = pytest.importorskip("matplotlib")
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.axes import Axes

    g = adkit.trace(colah, 2.0, 1.0)
    ax = g.draw()
    try:
        assert isinstance(ax, Axes)
        texts = " ".join(t.get_text() for t in ax.texts)
        for n in g.nodes:  # inputs by name, ops by their display symbol (+, *)
            assert (n.label if n.op is None else n.op.label) in texts
        fig, own = plt.subplots()
        assert g.draw(ax=own) is own
        plt.close(fig)
    finally:
        plt.close("all")


# --- exact symbolic evaluation -------------------------------------------------------------------------


def _rational_f(x: Any, y: Any) -> Any:
    return x * x / y + x**3 - 2 * x * y + 7


@pytest.mark.parametrize(
    ("x", "y"),
    [(Fraction(1, 3), Fraction(2, 7)), (Fraction(-5, 11), Fraction(13, 3)), (3, Fraction(1, 2)), (2, 5)],
)
def test_symbolic_exact_with_fractions(x: Any, y: Any) -> None:
    """Exact inputs give exact rationals: equal to sympy's own derivative of the formula
    typed here, and grad's floats are those rationals correctly rounded."""
    X, Y = sp.symbols("X Y")
    formula = X * X / Y + X**3 - 2 * X * Y + 7
    at = {X: sp.Rational(x), Y: sp.Rational(y)}
    want = [sp.diff(formula, v).subs(at) for v in (X, Y)]
    res = adkit.symbolic_derivative(_rational_f, x, y)
    assert res.exact
    assert res.values == want
    assert all(isinstance(v, sp.Rational) for v in res.values)
    got = adkit.grad(_rational_f, argnums=(0, 1), engine="symbolic")(x, y)
    assert list(got) == [float(w) for w in want]
    assert all(type(v) is float for v in got)


def test_symbolic_exact_with_int_arrays() -> None:
    """An int array is exact too: d/dx sum(x^3) / 7 = 3 x^2 / 7, entry by entry."""
    x = np.array([1, 2, -3])
    res = adkit.symbolic_derivative(lambda v: np.sum(v * v * v) / 7, x)
    assert res.exact
    (vals,) = res.values
    assert list(vals) == [sp.Rational(3 * int(v) ** 2, 7) for v in x]


def test_symbolic_float_inputs_are_not_exact() -> None:
    res = adkit.symbolic_derivative(_rational_f, 1 / 3, 2 / 7)
    assert not res.exact
    want = [fd_grad(_rational_f, [1 / 3, 2 / 7], k) for k in range(2)]
    assert [float(v) for v in res.values] == pytest.approx(want, rel=FD_RTOL["symbolic"])


# --- saturated activations: relative accuracy of the local derivative --------------------------------


def _saturation_cases() -> list[Any]:
    cases = []
    for name, x in [("tanh", 15.0), ("tanh", -15.0), ("tanh", 20.0), ("sigmoid", 30.0), ("sigmoid", -30.0)]:
        for engine in EXACT_ENGINES:
            cases.append(pytest.param(name, x, engine, id=f"{name}({x:g})-{engine}"))
    return cases


@pytest.mark.parametrize(("name", "x", "engine"), _saturation_cases())
def test_saturated_activation_derivative_accuracy(name: str, x: float, engine: str) -> None:
    """Saturated activations, against sympy's derivative of the formula typed here at 30
    digits. sigmoid' = s(x) s(-x) keeps its relative accuracy: sigmoid'(30) ~ 9.4e-14 to
    a few ulps, like sigmoid'(-30). tanh' = 1 - tanh(x)^2 is computed from the output (as
    in JAX and PyTorch: the backward pass needs only what the forward kept), so it is
    accurate in absolute terms only: tanh(x) is rounded to within eps/2, and 1 - y^2 then
    carries an error of about eps (2.2e-16), whatever the size of tanh'(x) ~ 3.7e-13 at
    15 or 1.7e-17 at 20. Bound: 4 eps absolute for tanh (2x margin over eps + the
    rounding of y*y); the engines' agreement tolerance, relative, for sigmoid."""
    X = sp.Symbol("X", real=True)
    form = {"tanh": sp.tanh(X), "sigmoid": 1 / (1 + sp.exp(-X))}[name]
    want = float(sp.diff(form, X).subs(X, sp.Float(x, 30)).evalf(30))
    got = adkit.grad(lambda v: REGISTRY[name](v), engine=engine)(x)
    if name == "tanh":
        assert abs(got - want) <= 4 * np.finfo(float).eps
    else:
        assert got == pytest.approx(want, rel=AGREE_RTOL[engine], abs=0.0)


# --- a gradient's sweep frees the forward's values as it goes ----------------------------------


def _tanh_net(ws: list[np.ndarray], x: np.ndarray) -> Any:
    h = x
    for w in ws:
        h = np.tanh(h @ w)
    return np.sum(h * h)


def test_single_sweep_drops_kept_values_and_refuses_a_second_sweep() -> None:
    """backward(retain=False), what grad uses, releases each node's kept values once its
    rule has run (so activations do not outlive their use); sweeping again is an error,
    not a silently wrong gradient. retain=True (Jacobian rows, pullbacks) keeps them and
    gives the same gradient on every sweep."""
    from adkit.engines.reverse import Node, ReverseTrace, gradient_of

    rng = np.random.default_rng(7)
    ws = [rng.standard_normal((5, 5)) / 3 for _ in range(3)]
    x = rng.standard_normal((4, 5))
    want = adkit.grad(_tanh_net)(ws, x)
    for retain in (True, False):
        trace = ReverseTrace()
        with trace:
            traced = [trace.new_input(w) for w in ws]
            out = _tanh_net(traced, x)
        trace.backward([(out, 1.0)], retain=retain)
        for t, w in zip(traced, want):
            np.testing.assert_array_equal(gradient_of(t), w)
        ops = [n for n in trace.entries if isinstance(n, Node) and n.op is not None]
        assert ops and all((n.vals is None) != retain for n in ops)
        if retain:
            trace.backward([(out, 1.0)])
            np.testing.assert_array_equal(gradient_of(traced[0]), want[0])
        else:
            with pytest.raises(RuntimeError, match="retain=False"):
                trace.backward([(out, 1.0)])
        trace.release()
