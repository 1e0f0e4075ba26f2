"""grad, value_and_grad, jvp, vjp, jacobian, hessian, hvp: pick an engine, run it.

Arguments may be floats, ints (promoted to float), numpy arrays, or containers (dict,
list, tuple, nested) of them — a model's parameters; gradients come back with the same
structure and shapes. `argnums` as an int gives one gradient, as a tuple a tuple (JAX's
convention). Every call creates a fresh trace (a new level), so nested derivatives never
confuse their perturbations and no state is left behind between calls.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from adkit.engines import ENGINES, GRAD_ENGINES
from adkit.engines import gc_paused as _gc_paused
from adkit.engines.forward import Dual, ForwardTrace, make_dual
from adkit.engines.reverse import ReverseTrace, Var, gradient_of, node_of
from adkit.engines.reverse import record as _record
from adkit.errors import (
    AdkitTypeError,
    AdkitValueError,
    NonFiniteDerivativeError,
    translate_numpy_refusals,
)
from adkit.graph import refuse_nesting
from adkit.ops import strong_zero
from adkit.ops.core import REGISTRY, Tracer, is_complex, lift_object, peek, primal, shape_of
from adkit.trees import Prepared as _Prepared
from adkit.trees import argnums_tuple, as_input, refuse_complex_inputs, tree_flatten, tree_unflatten
from adkit.trees import is_scalar_list as _is_scalar_list
from adkit.trees import output_value as _output_value

DIFFERENTIATING_ENGINES = GRAD_ENGINES  # the engines besides forward and reverse register here


_is_finite = strong_zero.is_finite


def _check_finite(values: Sequence[Any], describe: Callable[[], str], what: str) -> None:
    for v in values:
        if not _is_finite(v):
            reason = describe()
            advice = (
                "The exact value is too large for this float type: scale the function down, or use "
                "exact arithmetic (the symbolic engine with integer or Fraction inputs)."
                if "overflow" in reason
                else "The function is not differentiable at this point: move the point, or rewrite "
                "the function (np.linalg.norm instead of sqrt(sum(x**2)), np.where to mask a branch)."
            )
            raise NonFiniteDerivativeError(f"the {what} is not finite: {reason}. {advice}")


def _lifted(out: Any) -> Any:
    """f's output with its object arrays of traced values stacked, while f's trace is live."""
    leaves, treedef = tree_flatten(out)
    return tree_unflatten(treedef, [lift_object(leaf) for leaf in leaves])


def _fresh(g: Any, like: Any) -> Any:
    """A gradient in the form of its input: float for float, a fresh array otherwise."""
    if isinstance(g, Tracer):  # a recording trace (adkit.jit) makes the conversion a step of its program
        record = getattr(g._trace, "record_call", None)
        return g if record is None else record("like_input", _fresh, g, like=_form_of(like))
    if g is None:
        return 0.0 if isinstance(like, float) else np.zeros(shape_of(like), dtype=_dtype(like))
    if isinstance(like, (float, complex)):
        return complex(g) if isinstance(like, complex) or is_complex(g) else float(g)
    dtype = _dtype(like)
    if dtype.kind == "f" and is_complex(g):  # a Jacobian of complex outputs by real inputs
        dtype = np.result_type(dtype, np.complex64)
    if (
        type(g) is np.ndarray
        and g.dtype == dtype
        and g.shape == shape_of(like)
        and g.base is None
        and g.flags.writeable
        and g is not like
    ):
        return g  # a new array made by the sweep and owned by nobody else: no copy needed
    g = np.array(g, dtype=dtype)
    if g.shape != shape_of(like):
        g = np.broadcast_to(g, shape_of(like)).copy()
    return g


def _form_of(like: Any) -> Any:
    """What `_fresh` reads of an input (its type, shape and dtype), without its data."""
    like = peek(like)
    if isinstance(like, (float, complex)):
        return type(like)(0)
    return np.broadcast_to(np.zeros((), dtype=_dtype(like)), shape_of(like))


def _dtype(x: Any) -> Any:
    d = np.result_type(primal(x))
    return d if d.kind in "fc" else np.float64


# --- reverse mode ------------------------------------------------------------------------------


def _sweep(
    trace: ReverseTrace, prep: _Prepared, seeds: Sequence[tuple[Var, Any]], retain: bool = True
) -> list[list[Any]]:
    trace.backward(seeds, retain)
    # A cotangent passed through unchanged (add's VJP) can be the adjoint of two inputs, or
    # the caller's own cotangent: each gradient must still be a fresh array of its own.
    handed_out = {id(s) for _, s in seeds}
    grads = []
    for leaves, traced in zip(prep.leaves, prep.traced):
        row = []
        for leaf, v in zip(leaves, traced):
            g = _fresh(gradient_of(v), leaf)
            if type(g) is np.ndarray and id(g) in handed_out:
                g = g.copy()
            handed_out.add(id(g))
            row.append(g)
        grads.append(row)
    return grads


def _seed(value: Any) -> Any:
    if type(value) is float:
        return 1.0
    if isinstance(value, Tracer):
        return np.ones((), dtype=_dtype(value))[()]  # keeps float32 float32 in nested calls
    return np.ones_like(value, dtype=_dtype(value))


@_gc_paused()
def _reverse_value_and_grad(f, args, argnums, single, holomorphic=False):
    trace, prep, out = _record(f, args, argnums)
    try:
        value = out.value if isinstance(out, Var) and out._trace is trace else out
        if shape_of(value) != ():
            raise AdkitTypeError(
                f"grad needs f to return a scalar (or an array with one entry), but it returned an array "
                f"of shape {shape_of(value)}: use adkit.jacobian(f) for the derivatives of every entry, or reduce the output "
                "(np.sum, np.mean) first"
            )
        _check_complex(prep.leaves, [value], holomorphic, "grad")
        _check_value(value, lambda: _diagnose(f, args, argnums))
        if isinstance(out, Var) and out._trace is trace:
            grads = _sweep(trace, prep, [(out, _seed(value))], retain=False)
            if not _all_finite(grads, prep):
                # maybe 0 * inf in a branch np.where did not take: record and sweep again with
                # the strong-zero rule (adkit.ops.strong_zero); what is still inf or NaN is refused
                trace.release()
                trace, prep, out = _record(f, args, argnums, strict=True)
                grads = _sweep(trace, prep, [(out, _seed(value))])
                _check_finite(_flat(grads), lambda: _describe(trace, out, value, prep), "gradient")
        else:
            grads = [[_fresh(None, leaf) for leaf in leaves] for leaves in prep.leaves]
    finally:
        trace.release()
    return _plain(value), prep.rebuild(grads, single)


def _check_complex(leaves: Sequence[Sequence[Any]], outputs: Sequence[Any], holomorphic: bool, who: str) -> None:
    """JAX's rules for complex values (README, "Complex numbers"): without holomorphic=True a
    gradient needs a real output; with it, inputs and outputs are complex and the result is
    the complex derivative f'(z)."""
    complex_out = any(is_complex(o) for o in outputs)
    if holomorphic:
        if not all(is_complex(leaf) for ls in leaves for leaf in ls):
            raise AdkitTypeError(
                f"{who}(..., holomorphic=True) needs complex inputs (JAX's rule): pass z + 0j, or leave "
                "holomorphic=False for a real input"
            )
        if not complex_out:
            raise AdkitTypeError(
                f"{who}(..., holomorphic=True) needs f to return complex values; a real-valued f of complex "
                "inputs is not holomorphic: leave holomorphic=False (JAX's convention for its gradient)"
            )
    elif complex_out and (who == "grad" or any(is_complex(leaf) for ls in leaves for leaf in ls)):
        raise AdkitTypeError(
            f"{who} of a function with a complex output needs holomorphic=True (then it is the complex "
            "derivative f'(z), for a holomorphic f). Otherwise differentiate a real-valued function of it: "
            'np.real(f), np.imag(f) or np.abs(f) ** 2 (JAX\'s rules, README "Complex numbers")'
        )


def _flat(grads: list[list[Any]]) -> list[Any]:
    return [g for gs in grads for g in gs]


def _all_finite(grads: list[list[Any]], prep: _Prepared) -> bool:
    """Every gradient is finite (array gradients of inputs were checked during the sweep)."""
    return all(
        getattr(node_of(v), "finite", None) or _is_finite(g)
        for gs, traced in zip(grads, prep.traced)
        for g, v in zip(gs, traced)
    )


def _check_value(value: Any, why: Callable[[], str]) -> None:
    """A gradient is the derivative of a finite value: at a point where f is inf or NaN
    (an overflow on the way, log(0)), no derivative is returned; `why` names the op."""
    if not _is_finite(value):
        raise NonFiniteDerivativeError(
            f"f's value at this point is {_short_value(value)}, so it has no derivative there: {why()}. "
            "Rewrite f so that no intermediate overflows (np.logaddexp, adkit.softplus, adkit.sigmoid) or "
            "leaves its domain, or move the point."
        )


def _short_value(value: Any) -> str:
    p = np.asarray(primal(value))
    return f"{float(p):g}" if p.size == 1 else f"an array with {int((~np.isfinite(p)).sum())} inf / NaN entries"


def _describe(trace: ReverseTrace, out: Var, value: Any, prep: _Prepared) -> str:
    p = primal(value)
    if not np.all(np.isfinite(p)):
        return f"the function's value itself is {p}"
    for leaves in prep.leaves:
        for leaf in leaves:
            if not np.all(np.isfinite(primal(leaf))):
                return "an input is inf or NaN"
    return trace.find_nonfinite(out)


def _diagnose(f: Callable[..., Any], args: Sequence[Any], argnums: tuple[int, ...], traces: Sequence[Any] = ()) -> str:
    """Name the op that made the value or the derivative inf or NaN: the culprit a strict
    forward pass found, or else the first op on a tape of f whose value overflowed or whose
    local derivative is not finite."""
    for t in traces:
        if getattr(t, "culprit", None):
            return t.culprit
    try:
        trace, prep, _ = _record(f, args, argnums, strict=True, output=lambda raw: raw)
    except Exception:  # noqa: BLE001 (diagnosis only: the original error is what matters)
        return "a local derivative on the way is inf or NaN"
    try:
        if not all(np.all(np.isfinite(primal(leaf))) for leaves in prep.leaves for leaf in leaves):
            return "an input is inf or NaN"
        return trace.find_nonfinite(None)
    finally:
        trace.release()


def _plain(value: Any) -> Any:
    if isinstance(value, np.ndarray) and value.shape == ():
        return value[()]
    return value


# --- forward mode ----------------------------------------------------------------------------------


FORWARD_CHUNK = 1024  # basis directions carried per forward pass (ForwardDiff's chunk size)


def _forward_jacobian(f, args, argnums, single, scalar_output=False, chunk=None, holomorphic=False):
    """Forward passes carrying a batch of basis tangents (vector mode): the whole Jacobian.

    All n input directions ride in one pass when n <= chunk, else in ceil(n / chunk)
    passes. Each pass's output tangents are written into the result before the next pass
    starts (and a pass whose tangents are not finite is redone in strict mode alone), so
    the memory is that of one pass (chunk x the size of each value) plus the result.
    """
    leaves_all = []
    for n in argnums:
        leaves, _ = tree_flatten(args[n])
        leaves_all.extend(as_input(leaf, f"argument {n}") for leaf in leaves)
    if not holomorphic and any(is_complex(leaf) for leaf in leaves_all):
        raise AdkitTypeError(
            "engine='forward' needs real inputs unless holomorphic=True (JAX's jacfwd rule: one complex "
            "tangent direction does not give the gradient of a non-holomorphic function). Use "
            "engine='reverse', or holomorphic=True for a holomorphic f"
        )
    sizes = [1 if type(leaf) is float else math.prod(shape_of(leaf)) for leaf in leaves_all]
    total = sum(sizes)
    batched = not (total == 1 and len(leaves_all) == 1 and type(leaves_all[0]) is float)
    offsets = [0]
    for size in sizes:
        offsets.append(offsets[-1] + size)
    chunk = FORWARD_CHUNK if chunk is None else int(chunk)
    if chunk < 1:
        raise AdkitValueError(f"chunk must be a positive number of directions, got {chunk}")

    def one_pass(lo: int, hi: int, strict: bool = False) -> tuple[_Prepared, list[Any], Any, ForwardTrace]:
        trace = ForwardTrace(batched=batched, strict=strict)

        def make(leaf: Any, k: int) -> Dual:
            if not batched:
                return make_dual(leaf, 1.0, trace)
            t = np.zeros((hi - lo,) + shape_of(leaf), dtype=_dtype(leaf))  # complex for a complex leaf
            first, last = max(lo, offsets[k]), min(hi, offsets[k + 1])
            if first < last:
                t.reshape(hi - lo, -1)[
                    np.arange(first - lo, last - lo), np.arange(first - offsets[k], last - offsets[k])
                ] = 1
            return make_dual(leaf, t, trace)

        with _gc_paused(), translate_numpy_refusals, trace:
            prep = _Prepared(args, argnums, make)
            outs, out_def = _output_leaves(f(*prep.args))
        return prep, outs, out_def, trace

    def tangents_of(lo: int, hi: int) -> tuple[_Prepared, list[Any], Any, list[Any]]:
        """One pass's outputs and their tangents (None for an output that does not depend
        on the inputs); redone in strict mode when a tangent is not finite."""
        prep, outs, out_def, trace = one_pass(lo, hi)
        if not all(_is_finite(o.tangent) for o in outs if isinstance(o, Dual) and o._trace is trace):
            prep, outs, out_def, trace = one_pass(lo, hi, strict=True)  # the strong-zero rule: ops/strong_zero.py
            strict_traces.append(trace)  # its culprit names the op for an error message
        ours = [isinstance(o, Dual) and o._trace is trace for o in outs]
        tans = [o.tangent if mine else None for o, mine in zip(outs, ours)]
        values = [o.value if mine else o for o, mine in zip(outs, ours)]
        prep.traced = prep.args = []  # they hold the seed tangents, not needed once f has run
        return prep, values, out_def, tans

    strict_traces: list[ForwardTrace] = []
    bounds = [(lo, min(lo + chunk, total)) for lo in range(0, total, chunk)] if batched else [(0, 1)]
    prep, values, out_def, tans = tangents_of(*(bounds[0] if bounds else (0, 0)))
    out_shapes = [shape_of(v) for v in values]
    if scalar_output or holomorphic:
        _check_complex([leaves_all], values, holomorphic, "grad" if scalar_output else "jacobian")
    if scalar_output and out_shapes[0] != ():
        raise AdkitTypeError(
            f"grad needs f to return a scalar (or an array with one entry), but it returned an array "
            f"of shape {out_shapes[0]}: use adkit.jacobian(f) for the derivatives of every entry"
        )
    if scalar_output and tans[0] is not None:
        _check_value(values[0], lambda: _diagnose(f, args, argnums))
    if not batched and out_def is None and (tans[0] is None or type(tans[0]) is float):
        # one float input, one scalar output (the lectures' f(w)): the tangent is the derivative
        _check_finite(
            [t for t in tans if t is not None], lambda: _diagnose(f, args, argnums, strict_traces), "derivative"
        )
        derivative = 0.0 if tans[0] is None else tans[0]
        return _plain(values[0]), prep.rebuild([[derivative] * len(row) for row in prep.leaves], single)
    nested = any(isinstance(t, Tracer) for t in tans)
    pending = [tans]
    del tans  # from here on only the generator below holds a pass's tangents

    def passes() -> Any:
        for n, (lo, hi) in enumerate(bounds):
            tans = pending.pop() if n == 0 else tangents_of(lo, hi)[3]
            _check_finite(
                [t for t in tans if t is not None], lambda: _diagnose(f, args, argnums, strict_traces), "derivative"
            )
            yield lo, hi, tans
            tans = None  # not kept while the next pass runs

    leaves = [leaf for row in prep.leaves for leaf in row]
    if nested:
        blocks = _jacobian_of_tracers(passes(), leaves, out_shapes, offsets, batched)
    else:
        blocks = _jacobian_filled(passes(), leaves, out_shapes, offsets)
    results = []
    for per_leaf in blocks:
        rows, k = [], 0
        for row in prep.leaves:
            rows.append(per_leaf[k : k + len(row)])
            k += len(row)
        results.append(prep.rebuild(rows, single))
    values = [_plain(v) for v in values]
    if out_def is None:
        return values[0], results[0]
    return tree_unflatten(out_def, values), tree_unflatten(out_def, results)


def _jacobian_filled(passes, leaves, out_shapes, offsets):
    """Write each pass's tangents (rows lo:hi of the input directions) straight into the
    Jacobian blocks, one of shape out_shape + leaf shape per output and input leaf, and
    drop them before the next pass: the memory is one pass plus the result."""
    blocks: list[list[Any] | None] = [None] * len(out_shapes)
    for lo, hi, tans in passes:
        for i, tangent in enumerate(tans):
            if tangent is None:
                continue
            if blocks[i] is None:
                blocks[i] = [np.zeros(out_shapes[i] + shape_of(leaf), np.result_type(tangent)) for leaf in leaves]
            rows = np.reshape(tangent, (hi - lo, -1))
            for k, block in enumerate(blocks[i]):
                first, last = max(lo, offsets[k]), min(hi, offsets[k + 1])
                if first < last:
                    columns = block.reshape(-1, offsets[k + 1] - offsets[k])
                    columns[:, first - offsets[k] : last - offsets[k]] = rows[first - lo : last - lo].T
        tans = tangent = rows = None  # free this pass before the generator runs the next one
    results = []
    for shape, out_blocks in zip(out_shapes, blocks):
        out_blocks = out_blocks or [np.zeros(shape + shape_of(leaf)) for leaf in leaves]
        for b in out_blocks:
            np.add(b, 0.0, out=b)  # no -0.0 entries
        results.append(
            [float(b) if type(leaf) is float and b.shape == () else b for leaf, b in zip(leaves, out_blocks)]
        )
    return results


def _jacobian_of_tracers(passes, leaves, out_shapes, offsets, batched):
    """The same when the tangents are an outer derivative's tracers (a nested call): the
    passes are concatenated with registry ops so that the outer trace records them."""
    pieces: list[list[Any]] = [[] for _ in out_shapes]
    for lo, hi, tans in passes:
        for shape, t, parts in zip(out_shapes, tans, pieces):
            parts.append((np.zeros((hi - lo,) + shape) if batched else np.zeros(shape)) if t is None else t)
    blocks = []
    for shape, parts in zip(out_shapes, pieces):
        tangent = parts[0] if len(parts) == 1 else REGISTRY["concatenate"](*parts, axis=0)
        if not batched:
            blocks.append([tangent])
        else:
            blocks.append(
                [_jacobian_block(tangent[offsets[k] : offsets[k + 1]], leaf, shape) for k, leaf in enumerate(leaves)]
            )
    return blocks


def _output_leaves(raw: Any) -> tuple[list[Any], Any]:
    """f's output as checked leaves: one array, or the leaves of a dict / list / tuple of
    arrays (then the Jacobian has that structure). A list or tuple of scalars is stacked
    into one vector, as the lectures write vector functions: f(x, y) = [x^2, y^2, 2xy]."""
    if isinstance(raw, (dict, list, tuple)) and not _is_scalar_list(raw):
        leaves, treedef = tree_flatten(raw)
        return [_output_value(o) for o in leaves], treedef
    return [_output_value(raw)], None


def _jacobian_block(block: Any, leaf: Any, out_shape: tuple[int, ...]) -> Any:
    """Rows of the batched tangent belonging to one input leaf, as out_shape + leaf shape."""
    nin, nout = len(shape_of(leaf)), len(out_shape)
    axes = tuple(range(nin, nin + nout)) + tuple(range(nin))
    if isinstance(block, Tracer):
        block = REGISTRY["reshape"](block, shape=shape_of(leaf) + out_shape)
        return REGISTRY["transpose"](block, axes=axes)
    block = np.transpose(np.reshape(block, shape_of(leaf) + out_shape), axes) + 0.0  # + 0.0: no -0.0 entries
    return float(block) if isinstance(leaf, float) and out_shape == () else np.array(block)


# --- the public transforms ----------------------------------------------------------------------------------


def _check_callable(f: Any, name: str) -> None:
    if not callable(f):
        raise AdkitTypeError(f"{name} expects a function as its first argument, got {type(f).__name__}: {f!r:.60}")


def _engine_fn(engine: str) -> str:
    if not isinstance(engine, str) or engine not in ENGINES:
        raise AdkitValueError(f"unknown engine {engine!r}; choose one of {', '.join(ENGINES)}")
    if engine not in ("forward", "reverse") and engine not in DIFFERENTIATING_ENGINES:
        raise AdkitValueError(f"engine {engine!r} is not available in this version of adkit")
    return engine


def value_and_grad(
    f: Callable[..., Any],
    argnums: int | Sequence[int] = 0,
    engine: str = "reverse",
    has_aux: bool = False,
    holomorphic: bool = False,
) -> Callable[..., Any]:
    """f -> (x -> (f(x), df/dx)). f must return a scalar.

    engine: "reverse" (default: one recording, one backward sweep), "forward" (one
    vector-mode pass with a basis of tangents), or any of adkit.ENGINES.
    has_aux: f returns (scalar, aux); the result is ((value, aux), gradient), with aux as
    plain values (JAX's convention), e.g. for logging accuracy next to a loss.
    Complex inputs (JAX's convention, README "Complex numbers"): for a real-valued f the
    gradient is df/dx - i df/dy at z = x + iy (the conjugate of the steepest-ascent
    direction); holomorphic=True: f is holomorphic, the result is f'(z).
    """
    _check_callable(f, "value_and_grad")
    _engine_fn(engine)

    @functools.wraps(f)
    def wrapped(*args: Any, **kwargs: Any) -> Any:
        g = functools.partial(f, **kwargs) if kwargs else f
        aux_box: list[Any] = []
        if has_aux:
            g = _split_aux(g, aux_box)
        seen: list[Any] = []
        g = _scalar_output(g, seen)
        nums = argnums_tuple(argnums, len(args))
        single = isinstance(argnums, int)
        if engine == "reverse":
            value, grads = _reverse_value_and_grad(g, args, nums, single, holomorphic)
        elif engine == "forward":
            value, grads = _forward_jacobian(g, args, nums, single, scalar_output=True, holomorphic=holomorphic)
        else:
            refuse_nesting(args, f"engine={engine!r}")
            refuse_complex_inputs([leaf for n in nums for leaf in tree_flatten(args[n])[0]], f"engine={engine!r}")
            if holomorphic:
                raise AdkitValueError(f"holomorphic=True needs engine='reverse' or 'forward', not {engine!r}")
            value, grads = DIFFERENTIATING_ENGINES[engine](g, args, nums, single)
            if has_aux:  # these engines may call f at other points: aux from f at the point itself
                g(*args)
        if seen:  # f's own value at the point: its shape (1,) or (1, 1), or its bools / integers
            value = seen[0]
        return ((value, aux_box[-1] if aux_box else None), grads) if has_aux else (value, grads)

    return wrapped


def _scalar_output(f: Callable[..., Any], seen: list[Any]) -> Callable[..., Any]:
    """f for grad: an output with one entry (shape (1,) or (1, 1)) is that entry, as in
    autograd and PyTorch (JAX refuses it); a bool or integer output (piecewise constant:
    comparisons, counts, argmax) is a constant 0.0, so its gradient is 0 in every engine.
    `seen` receives f's own output for those two cases (the first call is at the point)."""

    def main(*args: Any) -> Any:
        out = value = f(*args)
        while isinstance(value, Tracer):
            value = value.value
        if type(value) is float:  # the common case, kept cheap for small functions
            return out
        out = lift_object(out)
        value = primal(out)
        if isinstance(value, (bool, int, np.bool_, np.integer, np.ndarray)) and np.asarray(value).dtype.kind in "biu":
            seen.append(value)
            out = value = np.zeros(np.shape(value))  # piecewise constant: derivative 0
        elif np.ndim(value) and np.size(value) == 1 and isinstance(value, (np.ndarray, np.number)):
            seen.append(value)
        else:
            return out
        return REGISTRY["reshape"](out, shape=()) if np.size(value) == 1 else out

    return main


def _split_aux(f: Callable[..., Any], box: list[Any]) -> Callable[..., Any]:
    def main(*args: Any) -> Any:
        result = f(*args)
        if not (isinstance(result, tuple) and len(result) == 2):
            raise AdkitTypeError("with has_aux=True, f must return a pair (scalar output, auxiliary data)")
        out, aux = result
        leaves, treedef = tree_flatten(aux)
        box.append(tree_unflatten(treedef, [_plain(primal(leaf)) for leaf in leaves]))
        return out

    return main


def grad(
    f: Callable[..., Any],
    argnums: int | Sequence[int] = 0,
    engine: str = "reverse",
    has_aux: bool = False,
    holomorphic: bool = False,
) -> Callable[..., Any]:
    """f -> df/dx (shape of x; a tuple of gradients when argnums is a tuple).

    has_aux: f returns (scalar, aux) and the result is (gradient, aux).
    holomorphic: f is a holomorphic function of complex inputs: the result is f'(z). Without
    it, f must be real-valued, and for a complex z = x + iy the result is df/dx - i df/dy
    (JAX's convention; README "Complex numbers").

    >>> grad(lambda x, y: x * y + np.sin(x))(1.0, 2.0)   # 2 + cos(1)
    """
    _check_callable(f, "grad")
    vg = value_and_grad(f, argnums, engine, has_aux, holomorphic)

    @functools.wraps(f)
    def wrapped(*args: Any, **kwargs: Any) -> Any:
        value, grads = vg(*args, **kwargs)
        return (grads, value[1]) if has_aux else grads

    return wrapped


def jacobian(
    f: Callable[..., Any],
    argnums: int | Sequence[int] = 0,
    engine: str = "reverse",
    chunk: int | None = None,
    holomorphic: bool = False,
) -> Callable[..., Any]:
    """f -> its Jacobian, of shape f(x).shape + x.shape.

    "forward": passes carrying up to `chunk` tangents at once (default 1024; n = input
    size directions in all): best when there are fewer inputs than outputs. "reverse": one recording, then one backward sweep per
    output entry: best when there are fewer outputs than inputs.
    Complex values: real inputs may give complex outputs (the Jacobian is then complex:
    dy = J dx); complex inputs need holomorphic=True with complex outputs (J = f'(z)), or
    real outputs in reverse mode (rows as adkit.grad's, JAX's convention).
    """
    _check_callable(f, "jacobian")
    _engine_fn(engine)
    if engine not in ("forward", "reverse"):
        raise AdkitValueError("jacobian supports engine='forward' or 'reverse'")

    @functools.wraps(f)
    def wrapped(*args: Any, **kwargs: Any) -> Any:
        g = functools.partial(f, **kwargs) if kwargs else f
        nums = argnums_tuple(argnums, len(args))
        single = isinstance(argnums, int)
        if engine == "forward":
            return _forward_jacobian(g, args, nums, single, chunk=chunk, holomorphic=holomorphic)[1]
        return _reverse_jacobian(g, args, nums, single, holomorphic)

    return wrapped


@_gc_paused()
def _reverse_jacobian(f, args, argnums, single, holomorphic=False):
    """One recording, then one backward sweep per output entry (rows of the Jacobian)."""
    trace = ReverseTrace()
    try:
        with translate_numpy_refusals, trace:
            prep = _Prepared(args, argnums, lambda leaf, k: trace.new_input(leaf))
            outs, out_def = _output_leaves(f(*prep.args))
        strict_tape = _StrictTape(lambda: _record(f, args, argnums, True, lambda raw: _output_leaves(raw)[0]))
        try:
            results = [
                _reverse_jacobian_of(trace, prep, out, single, lambda i=i: strict_tape.output(i), holomorphic)
                for i, out in enumerate(outs)
            ]
        finally:
            strict_tape.release()
    finally:
        trace.release()
    return results[0] if out_def is None else tree_unflatten(out_def, results)


class _StrictTape:
    """f recorded once more on a strict tape, on first need (a sweep gave inf or NaN)."""

    def __init__(self, record: Callable[[], tuple[ReverseTrace, _Prepared, Any]]) -> None:
        self.record = record
        self.taken: tuple[ReverseTrace, _Prepared, list[Any]] | None = None

    def get(self) -> tuple[ReverseTrace, _Prepared, Any]:
        if self.taken is None:
            self.taken = self.record()
        return self.taken

    def output(self, i: int) -> tuple[ReverseTrace, _Prepared, Any]:
        trace, prep, outs = self.get()
        return trace, prep, outs[i]

    def release(self) -> None:
        if self.taken is not None:
            self.taken[0].release()


def _reverse_jacobian_of(
    trace: ReverseTrace,
    prep: _Prepared,
    out: Any,
    single: bool,
    strict: Callable[[], tuple[ReverseTrace, _Prepared, Any]],
    holomorphic: bool = False,
) -> Any:
    ours = isinstance(out, Var) and out._trace is trace
    value = out.value if ours else out
    _check_complex(prep.leaves, [value], holomorphic, "jacobian")
    # complex outputs of real inputs: the real parts of seeds 1 and -i give Re and Im of a row
    parts = (1.0, -1j) if is_complex(value) and not holomorphic else (1.0,)
    out_shape = shape_of(value)
    m = math.prod(out_shape)
    rows: list[list[list[Any]]] = []

    def row(seed: Any) -> list[list[Any]]:
        grads = _sweep(trace, prep, [(out, seed)])
        if not _all_finite(grads, prep):
            s_trace, s_prep, s_out = strict()  # the strong-zero rule: see _reverse_value_and_grad
            grads = _sweep(s_trace, s_prep, [(s_out, seed)])
            if not _all_finite(grads, s_prep):
                _check_finite(_flat(grads), lambda: s_trace.find_nonfinite(s_out), "Jacobian")
        return grads

    for k in range(m):
        if ours:
            if out_shape == ():
                seeds = [_seed(value) * w for w in parts]
            else:
                seeds = []
                for w in parts:
                    seed = np.zeros(out_shape, dtype=_dtype(value))
                    seed.reshape(-1)[k] = w
                    seeds.append(seed)
            grads = row(seeds[0])
            if len(seeds) == 2:
                imag = row(seeds[1])
                grads = [[re + 1j * im for re, im in zip(rs, ims)] for rs, ims in zip(grads, imag)]
        else:
            grads = [[_fresh(None, leaf) for leaf in leaves] for leaves in prep.leaves]
        rows.append(grads)
    per_leaf = []
    for a, leaves in enumerate(prep.leaves):
        row = []
        for b, leaf in enumerate(leaves):
            entries = [rows[k][a][b] for k in range(m)]
            if out_shape == ():
                row.append(entries[0])
            elif not entries:  # an empty output: a Jacobian with no rows
                row.append(np.zeros(out_shape + shape_of(leaf), dtype=_dtype(leaf)))
            elif any(isinstance(e, Tracer) for e in entries):
                row.append(REGISTRY["reshape"](REGISTRY["stack"](*entries), shape=out_shape + shape_of(leaf)))
            else:
                row.append(np.stack([np.asarray(e) for e in entries]).reshape(out_shape + shape_of(leaf)) + 0.0)
        per_leaf.append(row)
    if ours:
        _check_finite([e for r in per_leaf for e in r], lambda: trace.find_nonfinite(out), "Jacobian")
    return prep.rebuild(per_leaf, single)


def jvp(f: Callable[..., Any], primals: Sequence[Any], tangents: Sequence[Any]) -> tuple[Any, Any]:
    """Forward mode: (f(*primals), directional derivative of f along `tangents`).

    One pass of dual numbers; `tangents` has the structure of `primals`.
    """
    _check_callable(f, "jvp")
    primals, tangents = tuple(primals), tuple(tangents)
    if len(primals) != len(tangents):
        raise AdkitValueError(f"jvp got {len(primals)} primals but {len(tangents)} tangents")

    def one_pass(strict: bool) -> tuple[list[Any], list[Any], Any]:
        trace = ForwardTrace(strict=strict)
        args = []
        for n, (p, t) in enumerate(zip(primals, tangents)):
            pl, pd = tree_flatten(p)
            tl, td = tree_flatten(t)
            if pd != td or len(pl) != len(tl):
                raise AdkitValueError(f"tangent {n} does not have the structure of primal {n}")
            duals = []
            for leaf, tan in zip(pl, tl):
                leaf = as_input(leaf, f"primal {n}")
                tan = as_input(tan, f"tangent {n}")
                if is_complex(tan) and not is_complex(leaf):
                    raise AdkitTypeError(
                        f"tangent {n} is complex but its primal is real: a real input moves along real "
                        "directions only. Pass a complex primal (z + 0j) to differentiate along complex ones"
                    )
                if shape_of(tan) != shape_of(leaf):
                    raise AdkitValueError(
                        f"tangent {n} has shape {shape_of(tan)} but its primal has shape {shape_of(leaf)}"
                    )
                duals.append(make_dual(leaf, tan, trace))
            args.append(tree_unflatten(pd, duals))
        with _gc_paused(), translate_numpy_refusals, trace:
            out = _lifted(f(*args))
        leaves, treedef = tree_flatten(out)
        values, tans = [], []
        for o in leaves:
            o = _output_value(o)
            if isinstance(o, Dual) and o._trace is trace:
                values.append(_plain(o.value))
                tans.append(o.tangent)
            else:
                values.append(o)
                tans.append(0.0 if shape_of(o) == () else np.zeros(shape_of(o)))
        return values, tans, treedef

    values, tans, treedef = one_pass(strict=False)
    if not all(_is_finite(t) for t in tans):
        values, tans, treedef = one_pass(strict=True)  # the strong-zero rule: ops/strong_zero.py
    given = {id(t) for t in tree_flatten(tangents)[0]}  # f = identity hands a tangent straight back
    tans = [t.copy() if type(t) is np.ndarray and id(t) in given else t for t in tans]
    _check_finite(
        tans,
        lambda: _diagnose(f, primals, tuple(range(len(primals)))),
        "directional derivative",
    )
    return tree_unflatten(treedef, values), tree_unflatten(treedef, tans)


class _TapeOwner:
    """Held by a pullback: releases the tape (and the strict one, if it was recorded) when
    the pullback is dropped."""

    __slots__ = ("trace", "strict")

    def __init__(self, trace: ReverseTrace, strict: _StrictTape) -> None:
        self.trace = trace
        self.strict = strict

    def __del__(self) -> None:
        self.trace.release()
        self.strict.release()


def vjp(f: Callable[..., Any], *primals: Any) -> tuple[Any, Callable[[Any], tuple[Any, ...]]]:
    """Reverse mode: (f(*primals), pullback) with pullback(ct) = ct^T J, one per primal.

    The tape is recorded once; the pullback may be called any number of times.
    """
    _check_callable(f, "vjp")
    nums = tuple(range(len(primals)))
    with _gc_paused():
        trace, prep, out = _record(f, primals, nums, output=_lifted)
    owner = _TapeOwner(
        trace, _StrictTape(lambda: _record(f, primals, nums, True, lambda raw: tree_flatten(_lifted(raw))[0]))
    )
    leaves, treedef = tree_flatten(out)
    leaves = [_output_value(o) for o in leaves]
    values = [_plain(o.value) if isinstance(o, Var) and o._trace is trace else o for o in leaves]

    def pullback(cotangent: Any) -> tuple[Any, ...]:
        cl, cd = tree_flatten(cotangent)
        if cd != treedef or len(cl) != len(leaves):
            raise AdkitValueError("the cotangent must have the structure of f's output")
        seeds: list[tuple[Var, Any]] = []
        for k, (o, c, v) in enumerate(zip(leaves, cl, values)):
            if shape_of(c) != shape_of(v):
                raise AdkitValueError(f"cotangent of shape {shape_of(c)} for an output of shape {shape_of(v)}")
            if is_complex(c) and not is_complex(v):
                raise AdkitTypeError("a complex cotangent for a real output: the cotangent of a real value is real")
            if isinstance(o, Var) and o._trace is trace:
                seeds.append((k, o, as_input(c, "cotangent")))
        explain = trace.find_nonfinite
        with _gc_paused():
            if seeds:
                grads = _sweep(owner.trace, prep, [(o, c) for _, o, c in seeds])
                if not _all_finite(grads, prep):  # the strong-zero rule: see _reverse_value_and_grad
                    s_trace, s_prep, s_outs = owner.strict.get()
                    s_seeds = [(s_outs[i], c) for i, _, c in seeds if isinstance(s_outs[i], Var)]
                    grads = _sweep(s_trace, s_prep, s_seeds)
                    explain = s_trace.find_nonfinite
            else:
                grads = [[_fresh(None, leaf) for leaf in ls] for ls in prep.leaves]
        _check_finite([g for gs in grads for g in gs], lambda: explain(None), "vector-Jacobian product")
        return tuple(prep.rebuild(grads, single=False))

    return tree_unflatten(treedef, values), pullback


def hessian(f: Callable[..., Any], argnums: int | Sequence[int] = 0) -> Callable[..., Any]:
    """f -> its Hessian (forward over reverse: the Jacobian, in forward mode, of the
    reverse-mode gradient). Shape x.shape + x.shape."""
    return jacobian(grad(f, argnums), argnums, engine="forward")


def hvp(f: Callable[..., Any], primals: Sequence[Any], tangents: Sequence[Any]) -> Any:
    """Hessian-vector product H v without forming H: forward mode over the reverse-mode
    gradient (one backward sweep on dual numbers)."""
    primals = tuple(primals)
    nums = tuple(range(len(primals)))
    g = grad(f, argnums=nums)
    _, hv = jvp(lambda *xs: g(*xs), primals, tangents)
    return hv[0] if len(primals) == 1 else hv


__all__ = [
    "ENGINES",
    "grad",
    "hessian",
    "hvp",
    "jacobian",
    "jvp",
    "tree_flatten",
    "tree_unflatten",
    "value_and_grad",
    "vjp",
]
