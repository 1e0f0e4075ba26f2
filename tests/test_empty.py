"""Empty inputs and outputs: every transform and every engine returns arrays of the right
(empty) shapes, never an IndexError or a failed np.stack from inside adkit.

Oracles: numpy for the shapes (and for which calls are valid at all) and central
differences for the entries. Every function here is linear or polynomial of low degree in
the non-empty inputs, so central differences with h = 1e-6 err by round-off only,
~eps * |f| / h ~ 1e-9 for |f| <= 10: tolerance 1e-7.
"""

import numpy as np
import pytest
from reference import central_diff, central_jacobian

import adkit as ad
from adkit.ops import REGISTRY

TOL = 1e-7
EMPTY = np.array([])


@pytest.mark.parametrize("engine", ad.ENGINES)
@pytest.mark.parametrize("shape", [(0,), (0, 3), (2, 0)])
def test_grad_of_a_sum_over_nothing(engine, shape):
    g = ad.grad(lambda x: np.sum(x**2), engine=engine)(np.ones(shape))
    assert isinstance(g, np.ndarray) and g.shape == shape and g.dtype == np.float64


@pytest.mark.parametrize("engine", ad.ENGINES)
def test_value_and_grad_with_an_empty_argument(engine):
    value, (gx, gy) = ad.value_and_grad(lambda x, y: np.sum(x) + y * y, argnums=(0, 1), engine=engine)(EMPTY, 3.0)
    assert value == 9.0 and gx.shape == (0,) and gy == pytest.approx(6.0, abs=TOL)


@pytest.mark.parametrize(
    ("engine", "kw"),
    [("forward", {}), ("forward", {"chunk": 1}), ("reverse", {})],
    ids=["forward", "chunked", "reverse"],
)
def test_jacobian_of_an_empty_output(engine, kw):
    jac = ad.jacobian(lambda x: x[:0], engine=engine, **kw)(np.ones(3))
    assert jac.shape == (0, 3)
    jac = ad.jacobian(lambda x: x[:, :0] * 2.0, engine=engine, **kw)(np.ones((2, 3)))
    assert jac.shape == (2, 0, 2, 3)


@pytest.mark.parametrize("engine", ["forward", "reverse"])
def test_jacobian_of_an_empty_input(engine):
    jac = ad.jacobian(lambda x: np.sum(x) * np.ones(2), engine=engine)(EMPTY)
    assert jac.shape == (2, 0)
    assert ad.jacobian(lambda x: x * 2.0, engine=engine)(EMPTY).shape == (0, 0)
    ja, jb = ad.jacobian(lambda a, b: np.sum(a) + b**2, argnums=(0, 1), engine=engine)(np.zeros((0, 2)), np.ones(2))
    assert ja.shape == (2, 0, 2)
    np.testing.assert_allclose(jb, 2.0 * np.eye(2), atol=TOL)


def test_hessian_with_empty_arrays():
    assert ad.hessian(lambda x: np.sum(x**3))(EMPTY).shape == (0, 0)
    h = ad.hessian(lambda x: np.sum(x[:0] ** 2) + x[0] * x[1])(np.ones(2))
    np.testing.assert_allclose(h, [[0.0, 1.0], [1.0, 0.0]], atol=TOL)
    assert ad.hvp(lambda x: np.sum(x**2), (EMPTY,), (EMPTY,)).shape == (0,)


def test_jvp_and_vjp_with_empty_arrays():
    value, tangent = ad.jvp(lambda x: x * 2.0, (EMPTY,), (EMPTY,))
    assert value.shape == (0,) and tangent.shape == (0,)
    value, tangent = ad.jvp(lambda x: x[:0], (np.ones(2),), (np.ones(2),))
    assert value.shape == (0,) and tangent.shape == (0,)
    out, pullback = ad.vjp(lambda x: x[:0], np.ones(2))
    assert out.shape == (0,)
    (ct,) = pullback(EMPTY)
    np.testing.assert_array_equal(ct, np.zeros(2))


@pytest.mark.parametrize("engine", ad.ENGINES)
def test_empty_containers(engine):
    gp, gy = ad.grad(lambda p, y: y * 2.0, argnums=(0, 1), engine=engine)({}, 1.0)
    assert gp == {} and gy == pytest.approx(2.0, abs=TOL)
    assert ad.grad(lambda p, y: y * 2.0, engine=engine)([], 1.0) == []
    g = ad.grad(lambda p: np.sum(p["a"]) + np.sum(p["b"] ** 2), engine=engine)({"a": EMPTY, "b": np.ones(2)})
    assert g["a"].shape == (0,)
    np.testing.assert_allclose(g["b"], [2.0, 2.0], atol=TOL)


# --- every elementwise op of the registry on empty arrays -------------------------------------


def _elementwise_ops():
    return [name for name, op in REGISTRY.items() if op.domain is not None and not op.nograd]


@pytest.mark.parametrize("name", _elementwise_ops())
@pytest.mark.parametrize("shape", [(0,), (0, 3)])
def test_registry_ops_on_empty_arrays(name, shape):
    op = REGISTRY[name]
    args = tuple(op.domain(np.random.default_rng(0), shape))
    if isinstance(op.partials, tuple):
        pos = tuple(i for i, p in enumerate(op.partials) if p is not None)
    else:
        pos = tuple(range(len(args)))

    def f(*xs):
        full = list(args)
        for p, x in zip(pos, xs):
            full[p] = x
        return op(*full)

    xs = [args[p] for p in pos]
    out_shape = np.shape(op.impl(*args))
    for engine in ad.ENGINES:
        grads = ad.grad(lambda *a: np.sum(f(*a)), argnums=tuple(range(len(xs))), engine=engine)(*xs)
        assert [np.shape(g) for g in grads] == [np.shape(x) for x in xs], (name, engine)
    for engine in ("forward", "reverse"):
        jacs = ad.jacobian(f, argnums=tuple(range(len(xs))), engine=engine)(*xs)
        assert [np.shape(j) for j in jacs] == [out_shape + np.shape(x) for x in xs], (name, engine)


# --- structural functions on empty arrays, where numpy allows them -----------------------------

STRUCTURAL = {
    "matmul, inner size 0": (lambda a, b: a @ b, (np.ones((2, 0)), np.ones((0, 3)))),
    "matmul, no rows": (lambda a, b: a @ b, (np.ones((0, 2)), np.ones((2, 3)))),
    "sum over axis 0": (lambda a: np.sum(a, axis=0), (np.ones((0, 3)),)),
    "sum over axis 1": (lambda a: np.sum(a, axis=1), (np.ones((0, 3)),)),
    "prod": (np.prod, (EMPTY,)),
    "prod over axis 0": (lambda a: np.prod(a, axis=0), (np.ones((0, 3)),)),
    "norm": (np.linalg.norm, (EMPTY,)),
    "softmax": (lambda a: ad.softmax(a), (np.ones((0, 3)),)),
    "reshape": (lambda a: a.reshape(3, 0), (np.ones((0, 3)),)),
    "transpose": (lambda a: a.T, (np.ones((0, 3)),)),
    "broadcast_to": (lambda a: np.broadcast_to(a, (2, 0)), (EMPTY,)),
    "slice": (lambda a: a[:0], (np.ones(3),)),
    "empty index": (lambda a: a[np.array([], dtype=int)], (np.ones(3),)),
    "concatenate": (lambda a, b: np.concatenate([a, b]), (EMPTY, np.ones(2))),
    "stack": (lambda a, b: np.stack([a, b]), (EMPTY, EMPTY)),
    "cumprod": (np.cumprod, (EMPTY,)),
    "cumsum": (np.cumsum, (EMPTY,)),
    "einsum": (lambda a, b: np.einsum("ij,jk->ik", a, b), (np.ones((2, 0)), np.ones((0, 3)))),
    "det of 0x0": (np.linalg.det, (np.ones((0, 0)),)),
    "inv of 0x0": (np.linalg.inv, (np.ones((0, 0)),)),
    "solve 0x0": (np.linalg.solve, (np.ones((0, 0)), EMPTY)),
    "dot": (np.dot, (EMPTY, EMPTY)),
    "inner": (np.inner, (np.ones((2, 0)), np.ones((3, 0)))),
    "outer": (np.outer, (EMPTY, np.ones(2))),
    "vdot": (np.vdot, (EMPTY, EMPTY)),
    "sort": (np.sort, (EMPTY,)),
    "where": (lambda a: np.where(a > 0, a, 0.0), (EMPTY,)),
    "tile": (lambda a: np.tile(a, 3), (EMPTY,)),
    "diff": (np.diff, (np.ones(1),)),
    "max of nothing": (lambda a: np.max(a, axis=1), (np.ones((3, 0)),)),
    "logsumexp of nothing": (lambda a: ad.logsumexp(a), (EMPTY,)),
    "convolve with nothing": (np.convolve, (np.ones(2), EMPTY)),
}


def _numpy_refuses(fn, args):
    try:
        fn(*args)
    except ValueError:
        return True
    return False


@pytest.mark.parametrize("case", list(STRUCTURAL), ids=list(STRUCTURAL))
def test_structural_functions_on_empty_arrays(case):
    fn, args = STRUCTURAL[case]
    nums = tuple(range(len(args)))
    if _numpy_refuses(fn, args):  # e.g. the max of nothing: adkit refuses the same way
        with pytest.raises(ValueError):
            ad.grad(lambda *a: np.sum(fn(*a)), argnums=nums)(*args)
        return
    for engine in ("forward", "reverse"):
        jacs = ad.jacobian(fn, argnums=nums, engine=engine)(*args)
        for k, jac in enumerate(jacs):
            want = central_jacobian(lambda x, k=k: fn(*args[:k], x, *args[k + 1 :]), args[k])
            assert np.shape(jac) == want.shape, (case, engine, k)
            np.testing.assert_allclose(jac, want, atol=TOL)
    for engine in ad.ENGINES:
        grads = ad.grad(lambda *a: np.sum(fn(*a)), argnums=nums, engine=engine)(*args)
        for k, g in enumerate(grads):
            want = central_diff(lambda x, k=k: np.sum(fn(*args[:k], x, *args[k + 1 :])), args[k])
            assert np.shape(g) == np.shape(want), (case, engine, k)
            np.testing.assert_allclose(g, want, atol=TOL)
