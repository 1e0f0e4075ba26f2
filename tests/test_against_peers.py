"""adkit's derivatives against JAX's and PyTorch's, and an independent referee where they differ.

Neither library is a dependency: the comparisons skip where it is not installed. Every
elementwise op of the registry (those with a sampling domain and no parameters) is compared
with the function of the same meaning in jax (gradient and Hessian) and in torch (gradient), so a new registry op is compared
automatically (or the test asks for it to be named in the list of ops the peer lacks).

Where they differ, the peers do not decide: mpmath at high precision or one-sided
differences do, in tests that run without either library. What they found (jax 0.10.2,
torch 2.13.0, CPU):
  * torch's digamma derivative (trigamma) is off by up to ~5e-10 relative in float64;
    adkit's and jax's agree with mpmath to ~1e-16 (test_digamma_derivative_...).
  * at kinks each library picks its own element of the generalized gradient: abs'(0) is 0
    in adkit, 1 in jax; clip at its bounds 1 in adkit, 0.5 in jax; fmax on a tie 1/2 each
    in adkit, all to the second argument in jax; the norm at 0 is 0 in adkit, NaN in jax;
    hypot at (0, 0) 0 in adkit, (0.5, 0.5) in jax, NaN in torch (which agrees with adkit on
    abs, clip and the norm). adkit's choices are checked against one-sided differences below
    (test_kink_conventions_are_generalized_gradients).
  * where(x > 0, sqrt(|x|), 0) at x = 0: jax's gradient is NaN (0 * inf from the branch not
    taken, its FAQ's "where trap"; torch's too), adkit's is 0, the slope of the branch taken.
  * numpy's cholesky and eigvalsh read one triangle of their input, jax's symmetrize it: their
    Jacobians differ off the diagonal, and agree on symmetrized inputs (compared so below).
  * at a singular matrix, adkit and jax return det's derivative, the cofactor matrix; torch
    2.13 returns 0, which is wrong (at [[1, 2], [2, 4]], d det / d a11 = a22 = 4).
"""

from __future__ import annotations

import math
import zlib

import numpy as np
import pytest

import adkit as ad
from adkit.ops import REGISTRY

mp = pytest.importorskip("mpmath")

# Two float64 implementations of the same derivative: each is within a few ulps of the truth
# on the ops' domains (test_special checks adkit's against mpmath at 1e-14), and special
# functions in other libraries use other algorithms (Cephes, XLA's own series), within
# ~1e-13 of each other where observed. 1e-10 leaves a 1000x margin and is still far below
# what a wrong rule gives (off by O(1)). atol for entries that are exactly 0 in both.
PEER_RTOL = 1e-10
PEER_ATOL = 1e-13
# torch's trigamma in float64 is accurate to ~5e-10 relative only (mpmath, see below):
# a looser bound for that op alone, so the rest stays at PEER_RTOL.
TORCH_RTOL = {"digamma": 1e-8}

ELEMENTWISE = sorted(name for name, op in REGISTRY.items() if op.domain is not None and not op.nograd and not op.params)

# the same function under another name, per library (a dotted path from the package)
JAX_NAMES = {
    "sub": "numpy.subtract",
    "mul": "numpy.multiply",
    "div": "numpy.divide",
    "neg": "numpy.negative",
    "pos": "numpy.positive",
    "pow": "numpy.power",
    "sigmoid": "nn.sigmoid",
    "softplus": "nn.softplus",
    "relu": "nn.relu",
    "hard_tanh": "nn.hard_tanh",
    "log_expit": "nn.log_sigmoid",
}
NOT_IN_JAX = {"product", "erfcinv", "j0", "j1", "y0", "y1", "k0", "k1", "k0e", "k1e"}
TORCH_NAMES = {
    "arcsin": "asin",
    "arccos": "acos",
    "arctan": "atan",
    "arctan2": "atan2",
    "arcsinh": "asinh",
    "arccosh": "acosh",
    "arctanh": "atanh",
    "pos": "positive",
    "loggamma": "lgamma",
    "softplus": "nn.functional.softplus",
    "hard_tanh": "nn.functional.hardtanh",
    "log_expit": "nn.functional.logsigmoid",
    "i1": "special.i1",
    "i0e": "special.i0e",
    "i1e": "special.i1e",
}
NOT_IN_TORCH = {
    "product": "adkit's own n-ary product node",
    "erfcinv": "no torch function",
    "gamma": "no torch function",
    "beta": "no torch function",
    "betaln": "no torch function",
    "rel_entr": "no torch function",
    "cbrt": "no torch function",
    "kl_div": "torch.kl_div is another function (the loss target * (log target - input))",
    "heaviside": "torch has no derivative for heaviside",
    **dict.fromkeys(
        ["j0", "j1", "y0", "y1", "k0", "k1", "k0e", "k1e"], "torch.special's Bessel functions have no derivative"
    ),
}


def _resolve(package, path: str):
    obj = package
    for part in path.split("."):
        obj = getattr(obj, part, None)
        if obj is None:
            return None
    return obj


def _points(name: str):
    """The op's inputs drawn from its domain, shape (5,), at a seed fixed per op."""
    return REGISTRY[name].domain(np.random.default_rng(zlib.crc32(name.encode())), (5,))


def _float_positions(args) -> list[int]:
    return [k for k, a in enumerate(args) if np.asarray(a).dtype.kind == "f"]


def _adkit_gradient(name: str, args, k: int):
    op = REGISTRY[name]
    return ad.grad(lambda *a: np.sum(op(*a)), argnums=k)(*args)


def _jax_function(jax, name: str):
    if name in NOT_IN_JAX:
        pytest.skip(f"jax has no {name}")
    fn = None
    for path in [JAX_NAMES[name]] if name in JAX_NAMES else [f"numpy.{name}", f"scipy.special.{name}", f"nn.{name}"]:
        fn = fn or _resolve(jax, path)
    assert fn is not None, (
        f"jax has no function for the registry op {name}: map it in JAX_NAMES or add it to NOT_IN_JAX"
    )
    return fn


@pytest.mark.parametrize("name", ELEMENTWISE)
def test_elementwise_gradient_matches_jax(name, jax64):
    jax = jax64
    fn = _jax_function(jax, name)
    args = _points(name)
    for k in _float_positions(args):
        theirs = jax.grad(lambda *a: jax.numpy.sum(fn(*a)), argnums=k)(*[jax.numpy.asarray(a) for a in args])
        np.testing.assert_allclose(
            _adkit_gradient(name, args, k),
            np.asarray(theirs),
            rtol=PEER_RTOL,
            atol=PEER_ATOL,
            err_msg=f"{name} arg {k}",
        )


@pytest.mark.parametrize("name", ELEMENTWISE)
def test_elementwise_hessian_matches_jax(name, jax64):
    """Second derivatives: adkit's forward over its reverse rules (the rules are written with
    registry ops, so they are differentiated in turn) against jax.hessian. Same tolerance:
    one more derivative of the same closed forms, a few more roundings."""
    jax = jax64
    fn = _jax_function(jax, name)
    op = REGISTRY[name]
    args = _points(name)
    for k in _float_positions(args):
        mine = ad.hessian(lambda *a: np.sum(op(*a)), argnums=k)(*args)
        theirs = jax.hessian(lambda *a: jax.numpy.sum(fn(*a)), argnums=k)(*[jax.numpy.asarray(a) for a in args])
        np.testing.assert_allclose(mine, np.asarray(theirs), rtol=PEER_RTOL, atol=PEER_ATOL, err_msg=f"{name} arg {k}")


@pytest.mark.parametrize("name", ELEMENTWISE)
def test_elementwise_gradient_matches_torch(name):
    torch = pytest.importorskip("torch")
    if name in NOT_IN_TORCH:
        pytest.skip(f"not compared with torch: {NOT_IN_TORCH[name]}")
    path = TORCH_NAMES.get(name, name)
    fn = _resolve(torch, path) or _resolve(torch.special, path)
    assert fn is not None, f"torch has no function for the registry op {name}: map it in TORCH_NAMES or NOT_IN_TORCH"
    args = _points(name)
    for k in _float_positions(args):
        leaves = [
            torch.tensor(a, dtype=torch.float64, requires_grad=True) if i == k else torch.tensor(a)
            for i, a in enumerate(args)
        ]
        (theirs,) = torch.autograd.grad(torch.sum(fn(*leaves)), leaves[k])
        np.testing.assert_allclose(
            _adkit_gradient(name, args, k),
            theirs.numpy(),
            rtol=TORCH_RTOL.get(name, PEER_RTOL),
            atol=PEER_ATOL,
            err_msg=f"{name} arg {k}",
        )


# --- structural and linear-algebra ops: the registry's example calls, through their numpy names --

STRUCTURAL = [
    (name, i)
    for name, op in sorted(REGISTRY.items())
    if op.examples is not None and op.numpy_names and not op.nograd
    for i in range(len(op.examples(np.random.default_rng(0))))
]
COMPLEX_OUTPUT = {"fftn", "ifftn", "rfftn"}  # compared through (real part, imaginary part)
# jax symmetrizes these ops' input, numpy reads one triangle: compared on (X + X^T) / 2
SYMMETRIZED_BY_JAX = {"cholesky", "eigvalsh"}


@pytest.mark.parametrize("name, example", STRUCTURAL, ids=[f"{n}-{i}" for n, i in STRUCTURAL])
def test_structural_jacobian_matches_jax(name, example, jax64):
    """The Jacobian of each example call of a structural or linear-algebra op, adkit's through
    the numpy function against jax.jacobian of jax.numpy's function of the same name."""
    jax, jnp = jax64, jax64.numpy
    op = REGISTRY[name]
    numpy_fn = op.numpy_names[0]
    module = jnp.linalg if "linalg" in numpy_fn.__module__ else jnp.fft if "fft" in numpy_fn.__module__ else jnp
    jax_fn = getattr(module, numpy_fn.__name__)
    args, params = op.examples(np.random.default_rng(zlib.crc32(name.encode())))[example]
    positions = [k for k, a in enumerate(args) if np.asarray(a).dtype.kind == "f"]
    if not positions:
        pytest.skip("no real float input (complex ones follow JAX's convention: test_complex)")
    for k in positions:

        def at(fn, m, x, k=k):
            if name in SYMMETRIZED_BY_JAX:
                x = (x + m.swapaxes(x, -1, -2)) / 2
            full = [m.asarray(a) if isinstance(a, np.ndarray) else a for a in args]
            full[k] = x
            if name == "einsum":  # jax's subscripts are positional-only
                return fn(params["subscripts"], *full)
            if op.variadic:  # concatenate, stack: numpy's and jax's take one sequence
                return fn(full, **params)
            out = fn(*full, **params)
            return m.stack([m.real(out), m.imag(out)]) if name in COMPLEX_OUTPUT else out

        mine = ad.jacobian(lambda x: at(numpy_fn, np, x))(np.asarray(args[k], float))
        theirs = jax.jacobian(lambda x: at(jax_fn, jnp, x))(jnp.asarray(args[k], float))
        np.testing.assert_allclose(mine, np.asarray(theirs), rtol=PEER_RTOL, atol=PEER_ATOL, err_msg=f"{name} arg {k}")


@pytest.mark.parametrize("x", [0.64879986, 1.56900276, 0.55563004, 2.478193, 5.0])
def test_digamma_derivative_where_torch_differs(x):
    """The points where torch's trigamma is 3e-10 to 5e-10 off: adkit's derivative of digamma
    against mpmath's psi(1, x) at 40 digits. adkit's is scipy's polygamma(1, x), a few ulps
    from the truth: 1e-14 relative (~45 ulps) as in test_special."""
    import adkit.scipy.special as sc

    with mp.workdps(40):
        exact = mp.psi(1, x)
        assert abs(mp.mpf(ad.grad(sc.digamma)(x)) - exact) <= 1e-14 * abs(exact)


# --- kinks: adkit's convention, checked against one-sided differences ------------------------

# (label, f, x, adkit's documented gradient (the op's `kinks` text), kind of check)
KINKS = [
    ("abs at 0", lambda x: np.sum(np.abs(x)), [0.0, 1.0, -2.0], [0.0, 1.0, -1.0], "convex"),
    ("clip at its bounds", lambda x: np.sum(np.clip(x, -1.0, 1.0)), [-1.0, 1.0, 0.3, 2.0], [1, 1, 1, 0], "separable"),
    ("fmax on a tie", lambda x: np.sum(np.fmax(x, 1.0)), [1.0, 2.0], [0.5, 1.0], "convex"),
    ("norm at 0", lambda x: np.linalg.norm(x), [0.0, 0.0], [0.0, 0.0], "convex"),
    ("hypot at (0, 0)", lambda x: np.hypot(x[0], x[1]), [0.0, 0.0], [0.0, 0.0], "convex"),
    ("copysign(x, -1) at 0", lambda x: np.sum(np.copysign(x, -1.0)), [0.0, 2.0], [0.0, -1.0], "separable"),
    ("relu at 0", lambda x: np.sum(ad.relu(x)), [0.0, 1.0], [0.0, 1.0], "convex"),
]
STEP = 1e-6  # one-sided differences of piecewise-linear / conic functions: exact up to rounding ~eps/STEP


@pytest.mark.parametrize("label, f, x, documented, kind", KINKS, ids=[k[0] for k in KINKS])
def test_kink_conventions_are_generalized_gradients(label, f, x, documented, kind):
    """adkit's value at a kink is the documented one, and an element of the generalized
    gradient by a test independent of any AD: for a convex f, the subgradient inequality
    f(x + t v) >= f(x) + t g.v along random directions; for a separable f, each entry
    between the left and the right one-sided difference quotients."""
    x = np.array(x)
    g = ad.grad(f)(x)
    np.testing.assert_array_equal(g, documented)
    if kind == "convex":
        for v in np.random.default_rng(0).normal(size=(20, x.size)):
            for t in (STEP, -STEP):
                assert f(x + t * v) >= f(x) + t * float(g @ v) - 1e-12, (label, v, t)
    else:
        for i in range(x.size):
            e = np.zeros_like(x)
            e[i] = STEP
            right, left = (f(x + e) - f(x)) / STEP, (f(x) - f(x - e)) / STEP
            assert min(left, right) - 1e-8 <= g[i] <= max(left, right) + 1e-8, (label, i, left, right)


def test_where_does_not_leak_the_branch_not_taken():
    """jax's gradient of where(x > 0, sqrt(|x|), 0) at x = 0 is NaN (0 * sqrt's infinite slope
    from the unused branch); adkit's is the slope of the branch taken: 0, and 1/(2 sqrt 2) at 2."""
    g = ad.grad(lambda x: np.sum(np.where(x > 0, np.sqrt(np.abs(x)), 0.0)))(np.array([2.0, 0.0]))
    np.testing.assert_allclose(g, [1 / (2 * math.sqrt(2.0)), 0.0], rtol=1e-15)
