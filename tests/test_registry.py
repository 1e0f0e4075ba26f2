"""Registry-wide tests: every op in `adkit.ops.REGISTRY` is checked the same way.

Nothing here names an op to test it: the test cases are generated from the registry at
collection time, so registering a new op gets it covered (DESIGN.md section 1, tests
(a)-(e)). The oracles only use an op's *definition* (its numpy `impl` and its `sympy`
form), never its derivative rules, so agreement really tests the rules:

  (b) both engines against central finite differences written here (full Jacobians,
      random-direction JVPs, random-cotangent VJPs) and against complex-step;
  (c) JVP/VJP consistency (the dot-product test) and forward == reverse;
  (d) completeness of every registry entry;
  (e) a deliberately wrong rule is caught by the very helpers used above;
  (a) every rule against sympy.diff of the op's sympy form;
  plus: nograd ops hand back plain values, the float fast path and the sympy form agree
  with the numpy implementation.

Known adkit bugs are marked per case in KNOWN_BUGS (xfail, strict: the mark fails as soon
as the bug is fixed); reproductions are in the report that accompanies this file.
"""

from __future__ import annotations

import re
import zlib
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import adkit
from adkit.ops import REGISTRY, Op, Tracer, register, unregister
from adkit.ops.elementwise import domain, uniform

# --- tolerances ------------------------------------------------------------------------
EPS = float(np.finfo(np.float64).eps)  # 2.2e-16
# Central differences: the step that balances truncation against rounding is
# h = eps^(1/3) * max(1, |x|) ~ 6e-6 (per entry). Truncation error is h^2 |f'''| / 6 and
# rounding error ~ eps |f| / h, both ~ eps^(2/3) ~ 4e-11 relative, times a curvature
# factor. The worst curvature in the registry's domains is a few 1e3 relative to f'
# (reciprocal and div at |y| = 0.1: f'''/f' = 6/y^2 = 600; pow at x = 0.2, y = -2;
# tan at 1.2), which puts the true FD error near 1e-8 relative at worst. rtol = 1e-6
# leaves a 100x margin for that, and is still five orders of magnitude below what a
# wrong rule produces (a wrong rule is off by O(1): see the wrong-rule tests below).
# atol = 1e-8 covers entries whose exact value is 0 or tiny (off-diagonal Jacobian
# entries are exactly 0 in both; 1e-8 ~ the absolute FD rounding error eps |f| / h for
# |f| ~ 10). Not 1e-12: central differences cannot deliver that. (Observed at the fixed
# seeds: worst relative error 2.2e-9, reciprocal near |x| = 0.1; so rtol has a 450x margin.)
FD_STEP = EPS ** (1.0 / 3.0)
FD_RTOL = 1e-6
FD_ATOL = 1e-8
# Complex step: f'(x) ~ Im f(x + ih) / h. There is no subtraction, hence no cancellation,
# so h can be tiny (1e-20: truncation h^2 |f'''| is ~1e-40) and the result is accurate to a
# few ulps of f'. The reverse-mode rule is evaluated in floating point too (a handful of
# roundings, e.g. 1 - x*x in arccos' rule loses ~2 bits at |x| = 0.9). rtol = 1e-12
# (~4500 ulps) is generous for that and 6 orders of magnitude tighter than FD can test.
# (Observed worst: 1.3e-15 relative, logsumexp.)
CS_STEP = 1e-20
CS_RTOL = 1e-12
CS_ATOL = 1e-14
# Engine-vs-engine and the dot-product identity: the same local partials combined in a
# different order, so only rounding separates them: n * eps relative to the sum of
# |terms| (n <= ~50 entries here) ~ 1e-14. 1e-12 leaves a 100x margin. (Today forward and
# reverse Jacobians are bit-identical; exact equality is not promised, so not asserted.)
AGREE_RTOL = 1e-12
AGREE_ATOL = 1e-14
# A value computed two ways (float fast path vs numpy, sympy vs numpy): a few ulps.
VALUE_RTOL = 1e-13
VALUE_ATOL = 1e-15

ENGINES = ("forward", "reverse")


# --- sampling: cases drawn from each op's domain or examples ----------------------------------


def _seed(*parts: Any) -> int:
    return zlib.crc32("|".join(map(str, parts)).encode())


def case_labels(op: Op) -> list[str]:
    """The calls an op is tested at: each of its examples; or domain points of shape (),
    (3,) and, for ops of two or more inputs, broadcasting (3, 1) against (4,)."""
    labels: list[str] = []
    if op.examples is not None:
        labels += [f"example{i}" for i in range(len(op.examples(np.random.default_rng(0))))]
    if op.domain is not None:
        labels += ["scalar", "array"]
        if len(op.domain(np.random.default_rng(0), ())) >= 2:
            labels.append("broadcast")
    return labels


def draw_case(op: Op, label: str, rng: np.random.Generator) -> tuple[tuple[Any, ...], dict[str, Any]]:
    """Fresh (args, params) for the case `label`, drawn with `rng`."""
    if label.startswith("example"):
        args, params = op.examples(rng)[int(label[len("example") :])]
        return tuple(args), dict(params)
    if label == "scalar":
        return tuple(op.domain(rng, ())), {}
    if label == "array":
        return tuple(op.domain(rng, (3,))), {}
    if label == "broadcast":
        # the (3,1) and (4,) draws are independent, so a coupled domain (maximum's x and y
        # kept apart) is only guaranteed kink-free pairwise within a draw; the chance that
        # some x_i, y_j pair falls within an FD step (~1e-5) of a tie is ~1e-4, and the
        # seeds are fixed, so a kink hit would be reproducible, not flaky
        a, b = op.domain(rng, (3, 1)), op.domain(rng, (4,))
        return tuple(a[i] if i % 2 == 0 else b[i] for i in range(len(a))), {}
    raise ValueError(label)


def fixed_case(op: Op, label: str) -> tuple[tuple[Any, ...], dict[str, Any]]:
    return draw_case(op, label, np.random.default_rng(_seed(op.name, label)))


def diff_positions(op: Op, args: Sequence[Any]) -> tuple[int, ...]:
    """Inputs with a derivative: those with a partial (where's condition has none)."""
    if isinstance(op.partials, tuple):
        return tuple(i for i, p in enumerate(op.partials) if p is not None)
    return tuple(range(len(args)))


def arg_label(op: Op, i: int) -> str:
    return op.args[i] if not op.variadic and i < len(op.args) else f"x{i}"


def closed(fn: Callable[..., Any], args: Sequence[Any], params: dict[str, Any], pos: Sequence[int]):
    """fn with params and the non-differentiated inputs closed over: a function of args[pos]."""

    def f(*diff: Any) -> Any:
        full = list(args)
        for p, v in zip(pos, diff):
            full[p] = v
        return fn(*full, **params)

    return f


def random_like(x: Any, rng: np.random.Generator) -> Any:
    """A random direction or cotangent of x's shape, scaled to max |entry| = 1."""
    shape = np.shape(x)
    v = rng.uniform(-1.0, 1.0, size=shape)
    v = v / np.max(np.abs(v))
    return float(v) if shape == () else v


# --- the independent oracles ---------------------------------------------------------------


def fd_jacobian(f: Callable[..., Any], xs: Sequence[Any], k: int) -> np.ndarray:
    """Central-difference Jacobian of the numpy function f(*xs) w.r.t. xs[k], entry by
    entry, with h = eps^(1/3) * max(1, |x_i|); shape f(xs).shape + xs[k].shape."""
    x = np.array(xs[k], dtype=np.float64)
    as_float = isinstance(xs[k], float)

    def at(v: np.ndarray) -> np.ndarray:
        args = list(xs)
        args[k] = float(v) if as_float else v
        return np.asarray(f(*args), dtype=np.float64)

    out_shape = at(x).shape
    jac = np.empty(out_shape + x.shape)
    for idx in np.ndindex(*x.shape):
        h = FD_STEP * max(1.0, abs(float(x[idx])))
        xp, xm = x.copy(), x.copy()
        xp[idx] += h
        xm[idx] -= h
        # divide by the step actually taken (x + h is rounded), not by 2h
        jac[(Ellipsis, *idx)] = (at(xp) - at(xm)) / (xp[idx] - xm[idx])
    return jac


def fd_directional(f: Callable[..., Any], xs: Sequence[Any], vs: Sequence[Any]) -> np.ndarray:
    """Central difference of f along the direction vs (max |v| = 1), h = eps^(1/3) * max(1, max|x|).
    (x + hv) - (x - hv) differs from 2hv by ~eps |x| per entry: 1e-10 relative, negligible.)"""
    h = FD_STEP * max([1.0] + [float(np.max(np.abs(x))) for x in xs])
    plus = f(*[x + h * v for x, v in zip(xs, vs)])
    minus = f(*[x - h * v for x, v in zip(xs, vs)])
    return (np.asarray(plus, dtype=np.float64) - np.asarray(minus, dtype=np.float64)) / (2.0 * h)


def complex_step_jacobian(f: Callable[..., Any], xs: Sequence[Any], k: int) -> np.ndarray:
    """Im f(x + i h e_j) / h for every entry j of xs[k]: no subtraction, no cancellation."""
    x = np.array(xs[k], dtype=np.complex128)
    as_scalar = isinstance(xs[k], float)

    def at(v: np.ndarray) -> np.ndarray:
        args = list(xs)
        args[k] = complex(v) if as_scalar else v
        return np.asarray(f(*args))

    out_shape = at(x).shape
    jac = np.empty(out_shape + x.shape)
    for idx in np.ndindex(*x.shape):
        xc = x.copy()
        xc[idx] += 1j * CS_STEP
        jac[(Ellipsis, *idx)] = np.imag(at(xc)) / CS_STEP
    return jac


def mismatch(got: Any, want: Any, rtol: float, atol: float, scale: Any = None) -> str | None:
    """None when |got - want| <= atol + rtol * scale entrywise (scale defaults to |want|),
    else a description of the worst entry. NaN or inf in `got` is a mismatch."""
    if isinstance(got, Tracer):
        return f"got a traced value {got!r}, expected a plain array"
    got_a = np.asarray(got, dtype=np.float64)
    want_a = np.asarray(want, dtype=np.float64)
    if got_a.shape != want_a.shape:
        return f"shape {got_a.shape}, expected {want_a.shape}"
    bound = atol + rtol * (np.abs(want_a) if scale is None else np.asarray(scale))
    err = np.abs(got_a - want_a)
    bad = ~(err <= bound)
    if not bad.any():
        return None
    ratio = np.where(bad, np.nan_to_num(err / bound, nan=np.inf), -1.0)
    i = np.unravel_index(int(np.argmax(ratio)), ratio.shape) if ratio.ndim else ()
    return (
        f"{int(bad.sum())} of {bad.size} entries off; worst at {i}: got {got_a[i]!r}, "
        f"expected {want_a[i]!r} (|error| {err[i]:.2e} > tolerance {np.broadcast_to(bound, err.shape)[i]:.2e})"
    )


# --- the checking helpers (shared by the registry-wide tests and the wrong-rule tests) ---------


def derivative_problems(
    op: Op, args: Sequence[Any], params: dict[str, Any], engine: str, rng: np.random.Generator
) -> list[str]:
    """Everything wrong with `op`'s derivatives at this call in `engine`, against central
    differences of op.impl: the full Jacobian w.r.t. each input, then a random direction
    (forward: adkit.jvp) or a random cotangent (reverse: adkit.vjp). [] when all agree."""
    problems: list[str] = []
    pos = diff_positions(op, args)
    f = closed(op, args, params, pos)
    f_np = closed(op.impl, args, params, pos)
    xs = [args[p] for p in pos]
    names = [arg_label(op, p) for p in pos]
    fd = [fd_jacobian(f_np, xs, k) for k in range(len(xs))]
    for k, name in enumerate(names):
        try:
            jac = adkit.jacobian(f, argnums=k, engine=engine)(*xs)
        except Exception as exc:  # a crash is reported like a wrong number
            problems.append(f"{op.name}: {engine} jacobian d/d{name} raised {exc!r}")
            continue
        msg = mismatch(jac, fd[k], FD_RTOL, FD_ATOL)
        if msg:
            problems.append(f"{op.name}: {engine} jacobian d/d{name} vs central differences: {msg}")
    out_ndim = np.ndim(f_np(*xs))
    if engine == "forward":
        vs = [random_like(x, rng) for x in xs]
        want = fd_directional(f_np, xs, vs)
        # error bound: the FD error of each term J_ij v_j, so scale by sum_j |J_ij| |v_j|
        scale = sum(np.tensordot(np.abs(j), np.abs(np.asarray(v)), axes=np.ndim(v)) for j, v in zip(fd, vs)) + np.zeros(
            np.shape(want)
        )
        try:
            _, tangent = adkit.jvp(f, xs, vs)
        except Exception as exc:
            return [*problems, f"{op.name}: jvp along a random direction raised {exc!r}"]
        msg = mismatch(tangent, want, FD_RTOL, FD_ATOL, scale)
        if msg:
            problems.append(f"{op.name}: jvp along a random direction vs central differences: {msg}")
    else:
        try:
            out, pullback = adkit.vjp(f, *xs)
            g = random_like(out, rng)
            cts = pullback(g)
        except Exception as exc:
            return [*problems, f"{op.name}: vjp with a random cotangent raised {exc!r}"]
        for k, name in enumerate(names):
            # g^T J_fd, and its error bound sum_i |g_i| (atol + rtol |J_ij|)
            want = np.tensordot(np.asarray(g), fd[k], axes=out_ndim)
            scale = np.tensordot(np.abs(np.asarray(g)), np.abs(fd[k]), axes=out_ndim)
            msg = mismatch(cts[k], want, FD_RTOL, FD_ATOL * float(np.sum(np.abs(g))), scale)
            if msg:
                problems.append(f"{op.name}: vjp d/d{name} with a random cotangent vs central differences: {msg}")
    return problems


def dot_product_problems(op: Op, args: Sequence[Any], params: dict[str, Any], rng: np.random.Generator) -> list[str]:
    """The adjoint identity <vjp(g), t> == <g, jvp(t)> for random g and t: JVP and VJP
    rules describe the same linear map (transposes of each other)."""
    pos = diff_positions(op, args)
    f = closed(op, args, params, pos)
    xs = [args[p] for p in pos]
    ts = [random_like(x, rng) for x in xs]
    try:
        _, jt = adkit.jvp(f, xs, ts)
        out, pullback = adkit.vjp(f, *xs)
        g = random_like(out, rng)
        cts = pullback(g)
    except Exception as exc:
        return [f"{op.name}: jvp/vjp raised {exc!r}"]
    terms_l = [np.ravel(np.asarray(c, dtype=np.float64)) * np.ravel(np.asarray(t)) for c, t in zip(cts, ts)]
    terms_r = np.ravel(np.asarray(g)) * np.ravel(np.asarray(jt, dtype=np.float64))
    lhs = float(sum(np.sum(t) for t in terms_l))
    rhs = float(np.sum(terms_r))
    scale = float(sum(np.sum(np.abs(t)) for t in terms_l) + np.sum(np.abs(terms_r)))
    if not abs(lhs - rhs) <= AGREE_ATOL + AGREE_RTOL * scale:
        return [f"{op.name}: <vjp(g), t> = {lhs!r} but <g, jvp(t)> = {rhs!r} (sum of |terms| {scale:.3g})"]
    return []


def complex_step_problems(op: Op, args: Sequence[Any], params: dict[str, Any]) -> list[str]:
    """Reverse-mode Jacobians against complex-step Jacobians of op.impl (complex_step ops)."""
    pos = diff_positions(op, args)
    xs = [args[p] for p in pos]
    f, f_np = closed(op, args, params, pos), closed(op.impl, args, params, pos)
    problems = []
    for k in range(len(xs)):
        want = complex_step_jacobian(f_np, xs, k)
        got = adkit.jacobian(f, argnums=k, engine="reverse")(*xs)
        msg = mismatch(got, want, CS_RTOL, CS_ATOL)
        if msg:
            problems.append(f"{op.name}: reverse jacobian d/d{arg_label(op, pos[k])} vs complex step: {msg}")
    return problems


def sympy_namespace(sp: Any) -> dict[str, Any]:
    """Registry op names -> their sympy forms, for evaluating rule expressions symbolically."""
    ns: dict[str, Any] = {"pi": sp.pi, "inf": sp.oo}
    for name, op in REGISTRY.items():
        if op.sympy is not None:
            ns[name] = (lambda o: lambda *a, **k: o.sympy(sp, *a, **k))(op)
    ns["where"] = lambda c, a, b: sp.Piecewise((a, c), (b, True))
    ns["sign"] = sp.sign
    return ns


def symbolic_problems(op: Op, rng: np.random.Generator, n_points: int = 6) -> list[str]:
    """Each partial of `op`, evaluated on sympy symbols (with `out` = the op's sympy form),
    against sympy.diff of the sympy form: simplify(difference) == 0 for smooth ops; for ops
    with kinks (or not analytic), numerically at domain points (sympy cannot simplify
    piecewise identities reliably, and they only hold away from the kinks).

    A rule's `x == y` is Python's structural equality on sympy symbols (False), so tie
    branches (maximum's 0.5) are evaluated off the tie, which is where the domain samples."""
    import sympy as sp

    sample = op.domain(rng, ())
    n = len(sample)
    names = [arg_label(op, i) for i in range(n)]
    pos = diff_positions(op, sample)
    # the condition of `where` (no partial) is a boolean: a plain symbol; the others are real
    syms = [sp.Symbol(nm, real=True) if i in pos else sp.Symbol(nm) for i, nm in enumerate(names)]
    params = {k: sp.sympify(v) for k, v in op.params.items()}
    form = op.sympy(sp, *syms, **params)
    if isinstance(op.partials, tuple):
        ns = {**sympy_namespace(sp), **dict(zip(names, syms)), **params, "out": form}
        rules = [None if e is None else sp.sympify(eval(e, ns)) for e in op.partials]  # noqa: S307
    else:
        rules = [sp.sympify(r) for r in op.partials(form, *syms, **params)]
    smooth = not op.kinks and op.complex_step
    points = [sample] + [op.domain(rng, ()) for _ in range(n_points - 1)]
    problems = []
    for i in pos:
        rule = sp.nsimplify(rules[i], rational=True)  # 1.0 -> 1, 0.5 -> 1/2: exact algebra
        want = sp.diff(form, syms[i])
        if smooth:
            diff = sp.simplify(rule - want)
            if diff != 0:
                problems.append(f"{op.name}: d/d{names[i]} rule {rule} != diff {want} (difference {diff})")
            continue
        for pt in points:
            subs = {s: (sp.Float(float(v)) if i2 in pos else bool(v)) for i2, (s, v) in enumerate(zip(syms, pt))}
            got_v = complex(sp.N(rule.subs(subs)))
            want_v = complex(sp.N(want.subs(subs)))
            if not abs(got_v - want_v) <= 1e-12 + 1e-12 * abs(want_v):
                problems.append(
                    f"{op.name}: d/d{names[i]} at {pt}: rule {rule} gives {got_v}, diff {want} gives {want_v}"
                )
    return problems


def completeness_problems(op: Op) -> list[str]:
    """Registry invariants every entry must satisfy (DESIGN.md: impl, rule, sympy form,
    domain; plus a name users reach it by)."""
    p: list[str] = []
    if REGISTRY.get(op.name) is not op:
        p.append(f"{op.name}: not registered under its own name")
    if not callable(op.impl):
        p.append(f"{op.name}: no numpy implementation")
    if not op.label:
        p.append(f"{op.name}: no display label")
    if not op.nograd:
        if isinstance(op.partials, tuple):
            if op.variadic or len(op.partials) != len(op.args):
                p.append(f"{op.name}: {len(op.partials)} partials for arguments {op.args}")
            if all(e is None for e in op.partials):
                p.append(f"{op.name}: every partial is None")
            if len(op.partial_fns) != len(op.partials):
                p.append(f"{op.name}: partial expressions not compiled")
        elif callable(op.partials):
            if not op.variadic:
                p.append(f"{op.name}: callable partials are meant for variadic ops")
        elif not (callable(op.jvp) and callable(op.vjp)):
            p.append(f"{op.name}: no derivative rule (partials, or jvp and vjp overrides)")
        if op.sympy is None and not op.sympy_refusal:
            p.append(f"{op.name}: no sympy form, and no sympy_refusal saying why")
        if not op.complex_step and not op.kinks:
            p.append(f"{op.name}: complex_step=False (not analytic) but no `kinks` text says where or why")
    if op.domain is None and op.examples is None:
        p.append(f"{op.name}: neither a domain sampler nor examples")
    if not op.numpy_names and getattr(adkit, op.name, None) is not op and not op.reached_by:
        p.append(f"{op.name}: no numpy name and not public as adkit.{op.name}")
    for fn in op.numpy_names:
        if adkit.ops.NUMPY_NAMES.get(fn) is not op:
            p.append(f"{op.name}: numpy name {fn} dispatches to {adkit.ops.NUMPY_NAMES.get(fn)!r}")
    if getattr(adkit, op.name, op) is not op:
        p.append(f"{op.name}: adkit.{op.name} is not the registry op")
    for label in case_labels(op):
        args, params = fixed_case(op, label)
        try:
            out = op.impl(*args, **params)
        except Exception as exc:
            p.append(f"{op.name}: impl fails at its own sample {label}: {exc!r}")
            continue
        if not np.all(np.isfinite(np.asarray(out, dtype=np.float64))):
            p.append(f"{op.name}: impl is not finite at its own sample {label}")
    return p


# --- known adkit bugs: marked per case (strict xfail) -----------------------------------------
# key: (test kind, op name, case label or None = any, engine or None = any)
KNOWN_BUGS: dict[tuple[str, str, str | None, str | None], str] = {}


_USED_BUG_KEYS: set[tuple[str, str, str | None, str | None]] = set()


def _marks(kind: str, name: str, label: str | None = None, engine: str | None = None) -> list[Any]:
    for key, reason in KNOWN_BUGS.items():
        k, n, lab, eng = key
        if k == kind and n == name and lab in (None, label) and eng in (None, engine):
            _USED_BUG_KEYS.add(key)
            return [pytest.mark.xfail(strict=True, reason=reason)]
    return []


def _cases(kind: str, select: Callable[[Op], bool], engines: Sequence[str | None] = (None,)) -> list[Any]:
    params = []
    for name, op in REGISTRY.items():
        if not select(op):
            continue
        for label in case_labels(op):
            for engine in engines:
                ident = f"{name}-{label}" + (f"-{engine}" if engine else "")
                args = (name, label, engine) if engine else (name, label)
                params.append(pytest.param(*args, id=ident, marks=_marks(kind, name, label, engine)))
    return params


def _ops(kind: str, select: Callable[[Op], bool]) -> list[Any]:
    return [pytest.param(name, id=name, marks=_marks(kind, name)) for name, op in REGISTRY.items() if select(op)]


FOURIER = ("fftn", "ifftn", "rfftn", "irfftn")


def differentiable(op: Op) -> bool:
    # the Fourier transforms have complex values, which these real-valued oracles cannot
    # compare: tests/test_fft.py checks them along real and imaginary directions
    return not op.nograd and op.name not in FOURIER


# --- (b) every differentiable op, both engines, against central differences --------------------


@pytest.mark.parametrize(("name", "label", "engine"), _cases("fd", differentiable, ENGINES))
def test_derivatives_match_finite_differences(name: str, label: str, engine: str) -> None:
    op = REGISTRY[name]
    args, params = fixed_case(op, label)
    rng = np.random.default_rng(_seed(name, label, engine, "direction"))
    problems = derivative_problems(op, args, params, engine, rng)
    assert not problems, "\n".join(problems)


# Engines besides forward and reverse that are installed (symbolic, paths, later numeric):
# they only offer grad, so they are checked on a random linear functional sum(g * op(...)).
OTHER_ENGINES = tuple(e for e in adkit.ENGINES if e not in ENGINES and e in adkit.transforms.DIFFERENTIATING_ENGINES)
# sympy's cost grows quickly with the number of entries (the symbolic gradient of one
# sp.Max over 24 entries takes ~6 s), so the symbolic engine is sampled on the cases with
# at most this many input entries. Ops whose every case is larger (today max, min and
# getitem, 20-24 entries) are left to the forward and reverse checks above.
SYMBOLIC_MAX_ENTRIES = 12


def engine_grad_problems(
    op: Op, args: Sequence[Any], params: dict[str, Any], engine: str, rng: np.random.Generator
) -> list[str]:
    """adkit.grad(engine=...) of sum(g * op(...)) for a random g, against g^T J_fd."""
    pos = diff_positions(op, args)
    f, f_np = closed(op, args, params, pos), closed(op.impl, args, params, pos)
    xs = [args[p] for p in pos]
    out_ndim = np.ndim(f_np(*xs))
    g = random_like(f_np(*xs), rng)
    try:
        grads = adkit.grad(lambda *a: np.sum(g * f(*a)), argnums=tuple(range(len(xs))), engine=engine)(*xs)
    except Exception as exc:
        return [f"{op.name}: {engine} grad raised {exc!r}"]
    problems = []
    for k in range(len(xs)):
        fd = fd_jacobian(f_np, xs, k)
        want = np.tensordot(np.asarray(g), fd, axes=out_ndim)
        scale = np.tensordot(np.abs(np.asarray(g)), np.abs(fd), axes=out_ndim)
        msg = mismatch(grads[k], want, FD_RTOL, FD_ATOL * float(np.sum(np.abs(g))), scale)
        if msg:
            problems.append(f"{op.name}: {engine} grad d/d{arg_label(op, pos[k])} vs central differences: {msg}")
    return problems


def _other_engine_cases() -> list[Any]:
    if not OTHER_ENGINES:
        return []
    cases = []
    for p in _cases("engines", differentiable, OTHER_ENGINES):
        name, label, engine = p.values
        entries = sum(np.size(a) for a in fixed_case(REGISTRY[name], label)[0])
        if engine != "symbolic" or entries <= SYMBOLIC_MAX_ENTRIES:
            cases.append(p)
    return cases


def symbolic_refusal(op: Op) -> str | None:
    """What the symbolic engine refuses by name for an op sympy has no counterpart of (svd, ...)."""
    return getattr(op.sympy, "symbolic_refusal", None)


@pytest.mark.parametrize(("name", "label", "engine"), _other_engine_cases())
def test_other_engines_match_finite_differences(name: str, label: str, engine: str) -> None:
    op = REGISTRY[name]
    args, params = fixed_case(op, label)
    refused = symbolic_refusal(op)
    if engine == "symbolic" and refused:
        pos = diff_positions(op, args)
        f = closed(op, args, params, pos)
        with pytest.raises(adkit.errors.UnsupportedFunctionError, match=re.escape(refused)):
            adkit.grad(lambda *a: np.sum(f(*a)), argnums=tuple(range(len(pos))), engine=engine)(*[args[p] for p in pos])
        return
    rng = np.random.default_rng(_seed(name, label, engine, "cotangent"))
    problems = engine_grad_problems(op, args, params, engine, rng)
    assert not problems, "\n".join(problems)


def _complex_ok(op: Op) -> bool:
    return differentiable(op) and op.complex_step


@pytest.mark.parametrize(("name", "label"), _cases("complex_step", _complex_ok))
def test_reverse_mode_matches_complex_step(name: str, label: str) -> None:
    op = REGISTRY[name]
    args, params = fixed_case(op, label)
    pos = diff_positions(op, args)
    try:
        closed(op.impl, args, params, pos)(*[np.asarray(args[p], dtype=np.complex128) for p in pos])
    except TypeError as exc:
        pytest.skip(f"{name}'s impl rejects complex input ({exc}); see test_complex_step_ops_accept_complex")
    problems = complex_step_problems(op, args, params)
    assert not problems, "\n".join(problems)


@pytest.mark.parametrize("name", _ops("complex_impl", _complex_ok))
def test_complex_step_ops_accept_complex(name: str) -> None:
    """complex_step=True promises f(x + ih) is analytic, and DESIGN.md asks for a numpy
    implementation that takes complex input "where mathematically valid": the numeric
    engine's complex-step needs it."""
    op = REGISTRY[name]
    label = case_labels(op)[0]
    args, params = fixed_case(op, label)
    pos = diff_positions(op, args)
    cargs = [np.asarray(a, dtype=np.complex128) + 1e-20j if i in pos else a for i, a in enumerate(args)]
    out = op.impl(*cargs, **params)
    assert np.iscomplexobj(out), f"{name}'s impl dropped the imaginary part"


# --- (c) JVP/VJP consistency, forward == reverse ----------------------------------------------


@pytest.mark.parametrize(("name", "label"), _cases("dot", differentiable))
@given(seed=st.integers(min_value=0, max_value=2**32 - 1))
def test_jvp_vjp_dot_product(name: str, label: str, seed: int) -> None:
    """<vjp(g), t> == <g, jvp(t)> at a point and g, t drawn from `seed`. For structural ops
    this ties each JVP override to its VJP override; for ops with partials it ties the
    forward engine's use of them to the reverse engine's."""
    op = REGISTRY[name]
    rng = np.random.default_rng(seed)
    args, params = draw_case(op, label, rng)
    problems = dot_product_problems(op, args, params, rng)
    assert not problems, "\n".join(problems)


def _has_partials(op: Op) -> bool:
    return differentiable(op) and op.partials is not None


@pytest.mark.parametrize(("name", "label"), _cases("agree", _has_partials))
def test_forward_and_reverse_jacobians_agree(name: str, label: str) -> None:
    op = REGISTRY[name]
    args, params = fixed_case(op, label)
    pos = diff_positions(op, args)
    f = closed(op, args, params, pos)
    xs = [args[p] for p in pos]
    for k in range(len(xs)):
        fwd = adkit.jacobian(f, argnums=k, engine="forward")(*xs)
        rev = adkit.jacobian(f, argnums=k, engine="reverse")(*xs)
        msg = mismatch(fwd, rev, AGREE_RTOL, AGREE_ATOL)
        assert msg is None, f"{name} d/d{arg_label(op, pos[k])}: forward vs reverse: {msg}"


# --- (d) completeness ---------------------------------------------------------------------------


@pytest.mark.parametrize("name", _ops("complete", lambda op: True))
def test_registry_entry_is_complete(name: str) -> None:
    problems = completeness_problems(REGISTRY[name])
    assert not problems, "\n".join(problems)


def test_registry_is_not_empty_and_every_kind_is_covered() -> None:
    # the parametrized tests above are only as good as what they loop over
    ops = list(REGISTRY.values())
    assert len(ops) >= 40
    assert any(isinstance(op.partials, tuple) for op in ops)
    assert any(callable(op.partials) for op in ops)
    assert any(op.partials is None and not op.nograd for op in ops)
    assert any(op.nograd for op in ops)
    assert any(op.complex_step is False and not op.nograd for op in ops)


def test_known_bug_entries_match_a_test_case() -> None:
    """Every KNOWN_BUGS entry marked at least one collected case (no stale, silent marks)."""
    unused = set(KNOWN_BUGS) - _USED_BUG_KEYS
    assert not unused, f"KNOWN_BUGS entries that match no test case: {sorted(unused, key=str)}"


# --- nograd ops: plain values in, plain values out ---------------------------------------------


@pytest.mark.parametrize(("name", "label", "engine"), _cases("nograd", lambda op: op.nograd, ENGINES))
def test_nograd_ops_return_plain_values(name: str, label: str, engine: str) -> None:
    """Inside a derivative, a nograd op (and each numpy name of it) returns a plain numpy
    or Python value equal to impl on the plain inputs, and acts as a constant: d/dx of
    sum(op(x, ...) * x) is op(x, ...) itself."""
    op = REGISTRY[name]
    args, params = fixed_case(op, label)
    seen: list[tuple[str, Any]] = []

    def f(*xs: Any) -> Any:
        seen.append((f"adkit op {name}", op(*xs, **params)))
        for fn in op.numpy_names:
            seen.append((f"np.{fn.__name__}", fn(*xs, **params)))
        return np.sum(op(*xs, **params) * xs[0])

    grads = adkit.grad(f, argnums=tuple(range(len(args))), engine=engine)(*args)
    expected = op.impl(*args, **params)
    assert seen
    for what, result in seen:
        assert not isinstance(result, Tracer), f"{what} returned a traced value {result!r}"
        np.testing.assert_array_equal(result, expected, err_msg=what)
    # only the explicit x factor carries a derivative; broadcasting sums it down to x's shape
    x0_shape = np.shape(args[0])
    want = np.broadcast_to(np.asarray(expected, dtype=np.float64), np.broadcast(*args).shape)
    want = want.sum(axis=tuple(range(want.ndim - len(x0_shape))))
    want = want.sum(axis=tuple(i for i, n in enumerate(x0_shape) if n == 1), keepdims=True).reshape(x0_shape)
    assert mismatch(grads[0], want, 0.0, 0.0) is None
    for g, a in zip(grads[1:], args[1:]):
        assert mismatch(g, np.zeros(np.shape(a)), 0.0, 0.0) is None


# --- the op's other definitions agree with its numpy implementation -----------------------------


def _has_scalar(op: Op) -> bool:
    return op.scalar is not None and op.domain is not None


@pytest.mark.parametrize("name", _ops("fast", _has_scalar))
def test_float_fast_path_matches_impl(name: str) -> None:
    """op(floats) with default params takes the compiled `scalar` expression: it must
    compute what the numpy implementation computes."""
    op = REGISTRY[name]
    rng = np.random.default_rng(_seed(name, "fast"))
    for _ in range(5):
        args = tuple(op.domain(rng, ()))
        want = op.impl(*args)
        got = op(*args)
        assert not isinstance(got, np.ndarray) or got.shape == ()
        assert mismatch(got, want, VALUE_RTOL, VALUE_ATOL) is None, (args, got, want)


def _has_partial_expressions(op: Op) -> bool:
    return isinstance(op.partials, tuple) and op.domain is not None


def _kernel_inputs(op: Op, rng: np.random.Generator, dtype: Any, number_at: int | None) -> list[Any]:
    """Domain samples of shape (3, 4) in `dtype`; argument `number_at` as a Python float."""
    vals: list[Any] = [np.asarray(v, dtype=dtype) for v in op.domain(rng, (3, 4))]
    if number_at is not None:
        vals[number_at] = float(op.domain(rng, ())[number_at])
    return vals


@pytest.mark.parametrize("name", _ops("kernels", _has_partial_expressions))
def test_in_place_kernels_equal_the_op_by_op_rule(name: str) -> None:
    """On plain arrays, local partials come from kernels generated from the rule
    expressions (adkit.ops.kernels): the same ufuncs applied in place. They must give
    exactly (bitwise) what evaluating the expression op by op gives, in float64 and
    float32 and with an argument given as a Python number, and a fresh array that
    aliases no input."""
    from adkit.ops.core import local_partials

    op = REGISTRY[name]
    rng = np.random.default_rng(_seed(name, "kernels"))
    settings = [(np.float64, None), (np.float32, None)] + [(np.float64, k) for k in range(len(op.args))]
    for dtype, number_at in settings:
        vals = _kernel_inputs(op, rng, dtype, number_at)
        if all(type(v) is float for v in vals):
            continue
        with np.errstate(all="ignore"):
            out = op.impl(*vals)
            got = local_partials(op, out, vals, {}, [True] * len(vals))
            for i, fn in enumerate(op.partial_fns):
                if fn is None:
                    assert got[i] is None
                    continue
                want = fn(out, *vals)
                assert np.shape(got[i]) == np.shape(want) and np.result_type(got[i]) == np.result_type(want), (
                    dtype,
                    number_at,
                    i,
                )
                assert np.array_equal(got[i], want, equal_nan=True), (dtype, number_at, i, got[i], want)
                if isinstance(got[i], np.ndarray) and not any(got[i] is v for v in (out, *vals)):
                    assert not any(np.shares_memory(got[i], v) for v in (out, *vals) if isinstance(v, np.ndarray))


def test_kernels_cover_the_smooth_elementwise_ops() -> None:
    """The ops whose rules are arithmetic on ufuncs get a kernel (the test above is not vacuous)."""
    from adkit.ops.core import _partial_kernel

    for name in ("tanh", "sin", "cos", "log1p", "arctan", "div", "pow", "reciprocal"):
        op = REGISTRY[name]
        kinds = ("a",) * (1 + len(op.args))
        assert _partial_kernel(op, 0, kinds) is not None, name
    assert _partial_kernel(REGISTRY["relu"], 0, ("a", "a")) is not None  # where and comparisons are covered
    assert _partial_kernel(REGISTRY["sigmoid"], 0, ("a", "a")) is None  # sigmoid(-x): not a numpy ufunc


def sympy_evaluate(sp: Any, op: Op, args: Sequence[Any], params: dict[str, Any]) -> np.ndarray:
    """op's sympy form at numeric args, the way the symbolic engine applies it: per element
    for ops with partials, on numpy object arrays of sympy numbers for structural ops."""

    def to_sp(a: Any) -> Any:
        if isinstance(a, (bool, np.bool_)):
            return bool(a)
        if np.ndim(a) == 0:
            return sp.Float(float(a))
        arr = np.asarray(a)
        out = np.empty(arr.shape, dtype=object)
        for idx in np.ndindex(*arr.shape):
            out[idx] = to_sp(arr[idx])
        return out

    sargs = [to_sp(a) for a in args]
    if op.partials is not None:
        arrays = np.broadcast_arrays(*[np.asarray(a, dtype=object) for a in sargs])
        result = np.empty(arrays[0].shape, dtype=object)
        for idx in np.ndindex(*result.shape):
            result[idx] = op.sympy(sp, *[a[idx] for a in arrays], **params)
    else:
        result = np.asarray(op.sympy(sp, *sargs, **params), dtype=object)
    values = np.empty(result.shape, dtype=np.complex128)
    for idx in np.ndindex(*result.shape):
        values[idx] = complex(sp.N(result[idx]))
    return values


@pytest.mark.parametrize(
    ("name", "label"), _cases("sympy_value", lambda op: op.sympy is not None and not symbolic_refusal(op))
)
def test_sympy_form_matches_impl(name: str, label: str) -> None:
    """The symbolic oracle is only an oracle if the sympy form *is* the op: evaluate it at
    each sample call (domain points with default params, as op(x) means, or the examples)
    and compare with impl. Both are the same function in float64 vs 15-digit sympy
    arithmetic: a few ulps apart."""
    import sympy as sp

    op = REGISTRY[name]
    args, params = fixed_case(op, label)
    got = sympy_evaluate(sp, op, args, params)
    want = np.asarray(op.impl(*args, **params), dtype=np.float64)
    assert np.all(np.abs(got.imag) <= VALUE_ATOL), f"{name}: sympy form is complex: {got}"
    msg = mismatch(got.real, want, VALUE_RTOL, VALUE_ATOL)
    assert msg is None, f"{name} at {label}: sympy form vs impl: {msg}"


# --- (a) every rule against sympy.diff ---------------------------------------------------------


def _symbolic_ok(op: Op) -> bool:
    return differentiable(op) and op.partials is not None and op.sympy is not None and op.domain is not None


@pytest.mark.parametrize("name", _ops("symbolic", _symbolic_ok))
def test_partials_match_sympy_diff(name: str) -> None:
    op = REGISTRY[name]
    problems = symbolic_problems(op, np.random.default_rng(_seed(name, "symbolic")))
    assert not problems, "\n".join(problems)


# --- (e) a deliberately wrong rule is caught; a correct custom op passes ------------------------


def _cube(name: str, rule: str) -> Op:
    return Op(
        name,
        lambda x: x**3,
        scalar="x * x * x",
        partials=(rule,),
        sympy=lambda sp, x: x**3,
        domain=domain(uniform(-2.0, 2.0)),
    )


@pytest.fixture
def custom_op(request: pytest.FixtureRequest):
    """Register the Op built by request.param for one test, and always unregister it."""
    op = register(request.param())
    try:
        yield op
    finally:
        unregister(op.name)
    assert op.name not in REGISTRY


@pytest.mark.parametrize("custom_op", [lambda: _cube("cube_wrong", "2.0 * x * x")], indirect=True)
def test_wrong_partial_is_caught(custom_op: Op) -> None:
    op = custom_op
    for engine in ENGINES:
        for label in case_labels(op):
            args, params = fixed_case(op, label)
            problems = derivative_problems(op, args, params, engine, np.random.default_rng(0))
            assert problems, f"the wrong rule of {op.name} passed the {engine} FD check at {label}"
            assert all("cube_wrong" in p for p in problems)
            # both the Jacobian and the random direction/cotangent check see it
            assert any("jacobian" in p for p in problems) and any("random" in p for p in problems)
    for label in case_labels(op):
        args, params = fixed_case(op, label)
        assert complex_step_problems(op, args, params), f"complex step missed the wrong rule at {label}"
        # the dot-product test cannot see it: JVP and VJP use the same (wrong) partial consistently
        assert dot_product_problems(op, args, params, np.random.default_rng(0)) == []
    assert symbolic_problems(op, np.random.default_rng(0)), "the symbolic check missed the wrong rule"


@pytest.mark.parametrize("custom_op", [lambda: _cube("cube_ok", "3.0 * x * x")], indirect=True)
def test_correct_custom_op_passes_and_is_differentiable(custom_op: Op) -> None:
    """The custom-op API: register an Op with one rule expression, and every engine (and
    these registry-wide checks) picks it up; the rule is made of registry ops, so it is
    differentiable itself (second derivatives for free)."""
    op = custom_op
    for engine in ENGINES:
        for label in case_labels(op):
            args, params = fixed_case(op, label)
            assert derivative_problems(op, args, params, engine, np.random.default_rng(0)) == []
    for label in case_labels(op):
        args, params = fixed_case(op, label)
        assert dot_product_problems(op, args, params, np.random.default_rng(0)) == []
        assert complex_step_problems(op, args, params) == []
    assert symbolic_problems(op, np.random.default_rng(0)) == []
    assert completeness_problems(op) == [f"{op.name}: no numpy name and not public as adkit.{op.name}"]

    x = 0.7
    for engine in ENGINES:
        # a np-free function of the op: d/dx [2 cube(x) + x] = 6 x^2 + 1
        g = adkit.grad(lambda t: 2.0 * op(t) + t, engine=engine)(x)
        assert isinstance(g, float)
        assert mismatch(g, 6.0 * x * x + 1.0, VALUE_RTOL, 0.0) is None
        xa = np.array([0.5, -1.5, 2.0])
        ga = adkit.grad(lambda t: op(t).sum(), engine=engine)(xa)
        assert mismatch(ga, 3.0 * xa * xa, VALUE_RTOL, 0.0) is None
    # higher order: cube'' = 6x, cube''' = 6 (forward over reverse, through the rule)
    assert mismatch(adkit.hessian(op)(x), 6.0 * x, VALUE_RTOL, 0.0) is None
    third = adkit.grad(lambda t: adkit.grad(lambda u: adkit.grad(op)(u), engine="forward")(t))(x)
    assert mismatch(third, 6.0, VALUE_RTOL, 0.0) is None


def _wrong_transpose_op() -> Op:
    # a structural op y = 2x whose VJP override is not the transpose of its JVP override
    return Op(
        "double_wrong_vjp",
        lambda x: 2.0 * np.asarray(x),
        jvp=lambda tangents, xs, out, nb: 2.0 * tangents[0],
        vjp=lambda g, xs, out, needed: (3.0 * g,),
        sympy=lambda sp, x: 2 * x,
        examples=lambda rng: [((rng.uniform(-1, 1, size=(3,)),), {})],
    )


@pytest.mark.parametrize("custom_op", [_wrong_transpose_op], indirect=True)
def test_inconsistent_jvp_vjp_overrides_are_caught(custom_op: Op) -> None:
    op = custom_op
    args, params = fixed_case(op, "example0")
    assert dot_product_problems(op, args, params, np.random.default_rng(1))
    # the FD check sees the wrong VJP in reverse mode and passes the right JVP in forward mode
    assert derivative_problems(op, args, params, "reverse", np.random.default_rng(1))
    assert derivative_problems(op, args, params, "forward", np.random.default_rng(1)) == []


def test_incomplete_entry_is_reported() -> None:
    op = Op("half_done", np.sin, partials=("cos(x)",), complex_step=False)  # no sympy, domain, name
    problems = completeness_problems(op)
    for fragment in ("not registered", "no sympy form", "no `kinks`", "neither a domain", "no numpy name"):
        assert any(fragment in p for p in problems), (fragment, problems)
