"""Transforms on containers: Jacobians and Hessians keep the structure of outputs and inputs."""

import numpy as np
import pytest

import adkit as ad

ENGINES = ("forward", "reverse")


def fd_jacobian(f, x, h=1e-6):
    """Central differences, column by column (h ~ eps^(1/3): truncation and rounding ~1e-10)."""
    x = np.asarray(x, dtype=float)
    cols = []
    for i in range(x.size):
        e = np.zeros(x.size)
        e[i] = h
        cols.append((np.asarray(f(x + e.reshape(x.shape))) - np.asarray(f(x - e.reshape(x.shape)))) / (2 * h))
    return np.stack(cols, axis=-1).reshape(np.shape(f(x)) + x.shape)


@pytest.mark.parametrize("engine", ENGINES)
def test_jacobian_of_a_dict_output_has_the_dict_structure(engine):
    x = np.array([0.3, -1.2, 2.0])
    outputs = {"s": lambda v: np.sin(v), "c": lambda v: np.cos(v[0]) * v[2]}
    jac = ad.jacobian(lambda v: {k: g(v) for k, g in outputs.items()}, engine=engine)(x)
    assert set(jac) == {"s", "c"}
    for key, g in outputs.items():
        # rtol 1e-7: central differences at h = 1e-6 are good to ~1e-10 here
        np.testing.assert_allclose(jac[key], fd_jacobian(g, x), rtol=1e-7, atol=1e-9)
    assert not np.any(np.signbit(jac["s"]) & (jac["s"] == 0))  # no -0.0 entries in the output


@pytest.mark.parametrize("engine", ENGINES)
def test_jacobian_of_a_tuple_of_scalars_is_stacked(engine):
    # the lectures' vector functions: f(x, y) = [x^2, y^2, 2xy]
    jac = ad.jacobian(lambda x, y: (x * x, y * y, 2 * x * y), argnums=(0, 1), engine=engine)(3.0, 5.0)
    np.testing.assert_array_equal(np.stack(jac, axis=1), [[6.0, 0.0], [0.0, 10.0], [10.0, 6.0]])


def test_hessian_of_a_dict_of_parameters_is_nested():
    x = np.array([1.0, 2.0, 3.0])

    def f(p):
        return np.sum(p["a"] ** 2) * p["b"]

    hess = ad.hessian(f)({"a": x, "b": 2.0})
    # d2f/da2 = 2b I, d2f/da db = 2a, d2f/db2 = 0: closed forms of this quadratic-times-linear f
    np.testing.assert_array_equal(hess["a"]["a"], 4.0 * np.eye(3))
    np.testing.assert_array_equal(hess["a"]["b"], 2.0 * x)
    np.testing.assert_array_equal(hess["b"]["a"], 2.0 * x)
    assert hess["b"]["b"] == 0.0


def test_symbolic_engine_refuses_large_inputs_and_compare_falls_back():
    W = np.ones((30, 30))  # 900 entries: one sympy symbol each would take minutes

    def f(W):
        return np.sum(np.tanh(W))

    with pytest.raises(ad.AdkitError, match="900"):
        ad.grad(f, engine="symbolic")(W)
    result = ad.compare(f, W, engines=("reverse", "symbolic"))
    assert "numeric" in result.reference_kind
    assert result["symbolic"].error and result["reverse"].error is None


@pytest.mark.parametrize("chunk", [1, 4, 7, 1024])
def test_forward_jacobian_in_chunks_equals_one_pass_and_reverse(chunk):
    # chunking only changes how many basis directions ride in each pass: results are equal
    # up to rounding (1e-12), whatever the chunk size relative to the 21 + 5 inputs
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(7, 3)), rng.normal(size=5)

    def f(x, y):
        return np.tanh(x @ np.ones(3)) * np.sum(y)

    chunked = ad.jacobian(f, argnums=(0, 1), engine="forward", chunk=chunk)(x, y)
    reverse = ad.jacobian(f, argnums=(0, 1), engine="reverse")(x, y)
    for a, b in zip(chunked, reverse):
        np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-14)


def test_forward_jacobian_rejects_a_bad_chunk():
    with pytest.raises(ValueError, match="chunk"):
        ad.jacobian(np.sin, engine="forward", chunk=0)(np.ones(3))


@pytest.mark.parametrize("engine", ("forward", "reverse", "symbolic", "numeric", "paths"))
def test_has_aux_returns_plain_auxiliary_data(engine):
    def loss(w):
        pred = np.tanh(w * 2.0)
        return (pred - 0.5) ** 2, {"pred": pred}

    (value, aux), g = ad.value_and_grad(loss, engine=engine, has_aux=True)(0.3)
    # aux is the plain value, not a tracer; the gradient is 2 (t - 0.5) * 2 (1 - t^2)
    t = np.tanh(0.6)
    assert aux["pred"] == pytest.approx(t, rel=1e-15) and not isinstance(aux["pred"], ad.ops.Tracer)
    assert value == pytest.approx((t - 0.5) ** 2, rel=1e-15)
    assert g == pytest.approx(2 * (t - 0.5) * 2 * (1 - t * t), rel=1e-8)  # 1e-8: the numeric engine's FD
    g2, aux2 = ad.grad(loss, engine=engine, has_aux=True)(0.3)
    assert g2 == g and aux2["pred"] == aux["pred"]


def test_has_aux_needs_a_pair():
    with pytest.raises(TypeError, match="pair"):
        ad.grad(lambda w: w * w, has_aux=True)(1.0)


def test_label_names_graph_nodes_and_changes_nothing_else():
    def e(a, b):
        c = ad.label(a + b, "c")
        d = ad.label(b + 1.0, "d")
        return ad.label(c * d, "e")

    G = ad.trace(e, 2.0, 1.0)
    assert [n.label for n in G.nodes] == ["a", "b", "c", "d", "e"]
    assert {n.label: n.value for n in G.nodes} == {"a": 2.0, "b": 1.0, "c": 3.0, "d": 2.0, "e": 6.0}
    assert ad.grad(e, argnums=(0, 1))(2.0, 1.0) == (2.0, 5.0)  # colah's example, SEEDS §1
    assert e(2.0, 1.0) == 6.0


COMPOSITES = {
    "var": lambda x: np.var(x, axis=0),
    "std-ddof1": lambda x: np.std(x, axis=1, ddof=1),
    "var-all": lambda x: np.var(x),
    "cumsum-axis0": lambda x: np.cumsum(x, axis=0),
    "cumsum-flat": lambda x: np.cumsum(x),
    "log10": lambda x: np.log10(x * x + 1.0),
    "log2": lambda x: np.log2(x * x + 1.0),
    "exp2": lambda x: np.exp2(x),
    "diff": lambda x: np.diff(x),
    "diff-n2-axis0": lambda x: np.diff(x, n=2, axis=0),
    "tensordot-pairs": lambda x: np.tensordot(x, x, axes=([0], [0])),
    "tensordot-2": lambda x: np.tensordot(x, x * x, axes=2),
    "split": lambda x: np.split(x, 3, axis=1)[1],
    "array_split": lambda x: np.array_split(x, 2, axis=1)[0],
    "sort-axis0": lambda x: np.sort(x, axis=0),
    "sort-flat": lambda x: np.sort(x * x - x, axis=None),
    "tile": lambda x: np.tile(x, (2, 1, 3)),
    "tile-int": lambda x: np.tile(x[0], 2),
    "norm-1-axis0": lambda x: np.linalg.norm(x, ord=1, axis=0),
    "norm-inf-axis1": lambda x: np.linalg.norm(x, ord=np.inf, axis=1, keepdims=True),
    "norm-3-vector": lambda x: np.linalg.norm(x[:, 0], ord=3),
    "cumprod-axis1": lambda x: np.cumprod(x, axis=1),
    "cumprod-method": lambda x: x.cumprod(),
    "take-axis1": lambda x: np.take(x, [2, 0, 2], axis=1),
    "take-flat": lambda x: np.take(x, [[5, 1], [1, 0]]),
    "repeat-axis0": lambda x: np.repeat(x, [1, 0, 2, 1], axis=0),
    "repeat-flat": lambda x: x.repeat(2),
    "diagonal": lambda x: np.diagonal(x[:3]) + x[:3].diagonal(1).sum(),
    "compress": lambda x: np.compress([True, False, True], x, axis=1),
    "conj-real": lambda x: x.conj() * x.real + x.imag,
    "searchsorted-as-index": lambda x: x[np.searchsorted(np.sort(x[:, 0]), 0.0) % 4],
}


@pytest.mark.parametrize("engine", ENGINES)
@pytest.mark.parametrize("name", sorted(COMPOSITES))
def test_numpy_conveniences_match_numpy_and_finite_differences(name, engine):
    # numpy functions adkit builds from registry ops: the value is numpy's, the Jacobian
    # matches central differences (rtol 1e-6: FD truncation ~1e-10 at h = 1e-6, curvature ~1)
    f = COMPOSITES[name]
    x = np.random.default_rng(3).normal(size=(4, 3))
    value, _ = ad.vjp(f, x)
    np.testing.assert_allclose(value, f(x), rtol=1e-13)
    np.testing.assert_allclose(ad.jacobian(f, engine=engine)(x), fd_jacobian(f, x), rtol=1e-6, atol=1e-8)


@pytest.mark.parametrize(
    "call",
    [lambda: ad.grad(123), lambda: ad.jacobian("f"), lambda: ad.jvp(None, (1.0,), (1.0,)), lambda: ad.vjp(3.0, 1.0)],
)
def test_a_non_function_is_refused_with_a_clear_type_error(call):
    with pytest.raises(TypeError, match="expects a function"):
        call()


# --- tapes are freed by reference counting, never left to the cyclic garbage collector ---


def _live_tape_objects():
    from adkit.engines import reverse

    kinds = (reverse.ReverseTrace, reverse.Var, reverse.Node)
    return sum(isinstance(o, kinds) for o in __import__("gc").get_objects())


def _mlp_loss(params, x):
    h = np.tanh(x @ params["W"] + params["b"])
    return np.sum(h * h) + params["c"] * params["c"]


def _raises_inside(x):
    y = x * x + np.sin(x)
    raise RuntimeError(f"user error after {type(y).__name__}")


def _pullback_dropped():
    _, pullback = ad.vjp(lambda x, y: (x * y, np.sin(x) * y), 0.5, 2.0)
    pullback((1.0, 1.0))


TAPE_USERS = {
    "grad of a scalar program": lambda: ad.grad(lambda x: x * x * np.sin(x) + x / 3)(0.7),
    "grad with containers": lambda: ad.grad(_mlp_loss)(
        {"W": np.ones((3, 2)) * 0.1, "b": np.zeros(2), "c": 2.0}, np.ones((4, 3))
    ),
    "value_and_grad with has_aux": lambda: ad.value_and_grad(lambda x: (x * x, {"x": x + 1}), has_aux=True)(1.5),
    "reverse jacobian": lambda: ad.jacobian(lambda v: np.sin(v) * v[0])(np.arange(3.0)),
    "grad of grad": lambda: ad.grad(ad.grad(lambda x: x * x * x))(0.3),
    "hessian": lambda: ad.hessian(lambda v: np.sum(v**3))(np.ones(2)),
    "dropped pullback": _pullback_dropped,
    "f raising": lambda: pytest.raises(RuntimeError, ad.grad(_raises_inside), 0.3),
    "non-scalar output refused": lambda: pytest.raises(TypeError, ad.grad(lambda v: v * 2), np.ones(2)),
}


@pytest.mark.parametrize("call", TAPE_USERS.values(), ids=TAPE_USERS.keys())
def test_tapes_are_freed_without_the_cyclic_gc(call):
    """With the cyclic GC off, a finished derivative call leaves no tape, node or tracer
    behind: each tape is freed by reference counting when the call returns (a leftover
    reference cycle would keep it, and everything it holds, alive until a GC pass)."""
    import gc

    was = gc.isenabled()
    gc.collect()
    gc.disable()
    try:
        before = _live_tape_objects()
        call()
        after = _live_tape_objects()
    finally:
        if was:
            gc.enable()
    assert after == before


# --- every returned gradient is an array of its own ----------------------------------------------


def _owned_by_nobody_else(results, others):
    arrays = [a for a in results if isinstance(a, np.ndarray)]
    for i, a in enumerate(arrays):
        for b in arrays[i + 1 :] + [o for o in others if isinstance(o, np.ndarray)]:
            assert not np.shares_memory(a, b)


@pytest.mark.parametrize("engine", ENGINES)
def test_gradients_never_share_memory_with_each_other_or_the_callers_arrays(engine):
    """add's VJP hands its cotangent to both inputs unchanged, and f = x * 1.0 hands the
    caller's cotangent straight back: the returned gradients must still be fresh arrays,
    so that an in-place update of one (`gx -= lr * ...`) cannot change another."""
    x, y = np.ones(3), np.full(3, 2.0)
    gx, gy = ad.grad(lambda a, b: np.sum(np.sin(a + b)), argnums=(0, 1), engine=engine)(x, y)
    _owned_by_nobody_else([gx, gy], [x, y])
    g = ad.grad(lambda p: np.sum(p["a"] + p["b"]), engine=engine)({"a": x, "b": y})
    _owned_by_nobody_else([g["a"], g["b"]], [x, y])
    jx, jy = ad.jacobian(lambda a, b: a + b, argnums=(0, 1), engine=engine)(x, y)
    _owned_by_nobody_else([jx, jy], [x, y])


def test_pullback_never_returns_the_callers_cotangent():
    x, ct = np.ones(3), np.arange(3.0)
    _, pullback = ad.vjp(lambda a, b: a * 1.0 + b, x, x.copy())
    ga, gb = pullback(ct)
    np.testing.assert_array_equal(ga, ct)
    _owned_by_nobody_else([ga, gb], [ct, x])


def test_jvp_never_returns_the_callers_tangent():
    x, t = np.ones(3), np.arange(3.0)
    _, tangent = ad.jvp(lambda a: a, (x,), (t,))
    np.testing.assert_array_equal(tangent, t)
    assert not np.shares_memory(tangent, t)
