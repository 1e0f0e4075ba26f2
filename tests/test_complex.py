"""Complex numbers, JAX's convention (README, "Complex numbers").

Oracles: central finite differences along the real and the imaginary part of each input
(never adkit's own rules), closed forms, and JAX where it is installed. For a real-valued f
of z = x + iy the gradient is df/dx - i df/dy; with holomorphic=True it is f'(z).
"""

from __future__ import annotations

import numpy as np
import pytest

import adkit as ad
from adkit.errors import AdkitTypeError
from adkit.ops import REGISTRY

ENGINES = ("forward", "reverse")
# Central differences with h = 1e-6 on functions whose third derivatives are O(10) here:
# truncation h^2 f''' / 6 ~ 1e-12, rounding eps |f| / h ~ 1e-10. rtol 1e-7 leaves a 1000x
# margin and is still far below the O(1) error of a wrong convention (a sign or a conj).
H = 1e-6
RTOL = 1e-7
ATOL = 1e-8


def fd_conj_gradient(f, z):
    """df/dx - i df/dy of a real-valued f at complex z (scalar or array), by central differences."""
    z = np.asarray(z, dtype=complex)
    g = np.zeros(z.shape, dtype=complex)
    for idx in np.ndindex(*z.shape):
        e = np.zeros(z.shape)
        e[idx] = H
        dx = (f(z + e) - f(z - e)) / (2 * H)
        dy = (f(z + 1j * e) - f(z - 1j * e)) / (2 * H)
        g[idx] = dx - 1j * dy
    return g if z.shape else g[()]


REAL_VALUED = {
    "abs_squared": lambda z: np.abs(z) ** 2,
    "z_conj_z": lambda z: np.real(z * np.conj(z)),
    "abs_sin": lambda z: np.abs(np.sin(z)),
    "angle": lambda z: np.angle(z),
    "imag_log": lambda z: np.imag(np.log(z)),
    "real_exp_iz_z2": lambda z: np.real(np.exp(1j * z) * z**2),
    "abs_of_rational": lambda z: np.abs((z - 1) / (z + 2j)) ** 3,
    "tracer_methods": lambda z: (z.conj() * z).real + z.imag**2,
}


@pytest.mark.parametrize("name", sorted(REAL_VALUED))
def test_gradient_of_real_function_of_complex_scalar(name):
    f = REAL_VALUED[name]
    z = 0.7 - 1.3j
    got = ad.grad(f)(z)
    assert isinstance(got, complex)
    np.testing.assert_allclose(got, fd_conj_gradient(f, z), rtol=RTOL, atol=ATOL)


def test_gradient_of_real_function_of_complex_array():
    w = np.array([1 - 2j, 0.5j, 3.0])

    def f(z):
        return np.sum(np.abs(z * w - 1) ** 2) + np.real(np.sum(z**2)) + np.sum(np.angle(z + 3))

    z = np.array([0.3 + 0.2j, -1.1 + 0.4j, 0.8 - 0.9j])
    got = ad.grad(f)(z)
    assert got.dtype == np.complex128
    np.testing.assert_allclose(got, fd_conj_gradient(f, z), rtol=RTOL, atol=ATOL)
    # closed form of the first term: 2 conj(w) conj(z w - 1)... written as JAX's df/dx - i df/dy
    g1 = ad.grad(lambda z: np.sum(np.abs(z * w - 1) ** 2))(z)
    np.testing.assert_allclose(g1, 2 * w * np.conj(z * w - 1), rtol=1e-14)


def test_abs_squared_matches_jax_documented_value():
    # JAX: grad(lambda z: jnp.abs(z) ** 2)(3 + 4j) == 6 - 8j (2 conj(z)), not 6 + 8j
    assert ad.grad(lambda z: np.abs(z) ** 2)(3 + 4j) == pytest.approx(6 - 8j, rel=1e-15)


def test_mixed_real_and_complex_arguments():
    def f(x, z):
        return np.abs(x * z + 1j) ** 2

    x, z = 0.4, 1.0 - 0.5j
    gx, gz = ad.grad(f, argnums=(0, 1))(x, z)
    assert isinstance(gx, float)  # a real input gets a real gradient
    assert gx == pytest.approx((f(x + H, z) - f(x - H, z)) / (2 * H), rel=RTOL)
    np.testing.assert_allclose(gz, fd_conj_gradient(lambda v: f(x, v), z), rtol=RTOL)


# --- real inputs, complex intermediates -------------------------------------------------------


@pytest.mark.parametrize("engine", ENGINES)
def test_real_functions_with_complex_intermediates(engine):
    cases = [
        (lambda x: np.abs(x * (3 + 4j)), 1.0, 5.0),  # 5|x|
        (lambda x: np.real(x * (2 + 1j) * np.conj(x * (2 + 1j))), 1.5, 15.0),  # 5 x^2
        (lambda t: np.real(np.exp(1j * t)), 0.5, -np.sin(0.5)),
        (lambda t: np.imag(np.exp(1j * t)), 0.5, np.cos(0.5)),
        (lambda x: np.angle(1 + 1j * x), 2.0, 1 / (1 + 4.0)),  # arctan(x)
        (lambda x: np.abs(1j * x - 1) ** 2, 0.3, 0.6),  # x^2 + 1
    ]
    for f, x, want in cases:
        assert ad.grad(f, engine=engine)(x) == pytest.approx(want, rel=1e-14)


@pytest.mark.parametrize("engine", ENGINES)
def test_jacobian_of_real_to_complex(engine):
    x = np.array([0.3, -0.7])
    jac = ad.jacobian(lambda x: np.exp(1j * x) * x, engine=engine)(x)
    want = np.diag((1j * x + 1) * np.exp(1j * x))
    np.testing.assert_allclose(jac, want, rtol=1e-14, atol=1e-16)


def test_hessian_through_complex_intermediates():
    # |x (3 + 4i)|^2 = 25 x^2 and Re(exp(i x)) = cos x
    assert ad.hessian(lambda x: np.abs(x * (3 + 4j)) ** 2)(1.0) == pytest.approx(50.0, rel=1e-14)
    assert ad.hessian(lambda x: np.real(np.exp(1j * x)))(0.3) == pytest.approx(-np.cos(0.3), rel=1e-14)


def test_jvp_and_vjp_are_complex_linear_and_paired_by_re():
    def f(z):
        return np.sin(z) * np.conj(z)

    z, t, c = 0.4 + 0.3j, 0.2 - 0.9j, -0.6 + 0.5j
    _, tangent = ad.jvp(f, (z,), (t,))
    fd = (f(z + H * t) - f(z - H * t)) / (2 * H)
    np.testing.assert_allclose(tangent, fd, rtol=RTOL)
    _, pullback = ad.vjp(f, z)
    (ct,) = pullback(c)
    # the pairing Re(c t): <vjp(c), t> = <c, jvp(t)>
    assert np.real(ct * t) == pytest.approx(np.real(c * tangent), rel=1e-13)


# --- holomorphic=True -------------------------------------------------------------------------

HOLOMORPHIC_OPS = sorted(
    name
    for name, op in REGISTRY.items()
    if op.complex_ok and isinstance(op.partials, tuple) and op.domain is not None and not op.nograd
)


@pytest.mark.parametrize("engine", ENGINES)
@pytest.mark.parametrize("name", HOLOMORPHIC_OPS)
def test_every_analytic_op_gives_its_complex_derivative(name, engine):
    """Registry-wide: each complex-safe elementwise op, at a point of its domain moved off the
    real axis, has grad(holomorphic=True) equal to the difference quotient along the real
    direction and along the imaginary one (Cauchy-Riemann: both are f'(z) for analytic f)."""
    op = REGISTRY[name]
    rng = np.random.default_rng(len(name))
    args = list(op.domain(rng, ()))
    args = [a + 0.15j * (k + 1) for k, a in enumerate(args)]
    for k in range(len(args)):
        if op.partials[k] is None:
            continue

        def f(v, k=k):
            call = list(args)
            call[k] = v
            return op(*call)

        got = ad.grad(f, holomorphic=True, engine=engine)(args[k])
        along_re = (
            op.impl(*[a + H if i == k else a for i, a in enumerate(args)])
            - op.impl(*[a - H if i == k else a for i, a in enumerate(args)])
        ) / (2 * H)
        along_im = (
            op.impl(*[a + 1j * H if i == k else a for i, a in enumerate(args)])
            - op.impl(*[a - 1j * H if i == k else a for i, a in enumerate(args)])
        ) / (2j * H)
        np.testing.assert_allclose(got, along_re, rtol=1e-6, atol=1e-8, err_msg=f"{name} d/d{op.args[k]}")
        np.testing.assert_allclose(got, along_im, rtol=1e-6, atol=1e-8, err_msg=f"{name} d/d{op.args[k]}")


@pytest.mark.parametrize("engine", ENGINES)
def test_holomorphic_jacobian(engine):
    z = np.array([0.5 + 0.1j, -0.2 + 0.7j])
    jac = ad.jacobian(lambda z: np.exp(z) * z, holomorphic=True, engine=engine)(z)
    np.testing.assert_allclose(jac, np.diag(np.exp(z) * (z + 1)), rtol=1e-14)


def test_complex_output_without_holomorphic_is_refused():
    with pytest.raises(AdkitTypeError, match="holomorphic=True"):
        ad.grad(lambda z: z * z)(1 + 1j)
    with pytest.raises(AdkitTypeError, match="holomorphic=True"):
        ad.jacobian(lambda z: z * z)(np.array([1 + 1j]))


def test_holomorphic_needs_complex_inputs_and_outputs():
    with pytest.raises(AdkitTypeError, match="complex inputs"):
        ad.grad(lambda x: x * x, holomorphic=True)(1.0)
    with pytest.raises(AdkitTypeError, match="holomorphic=False"):
        ad.grad(lambda z: np.abs(z), holomorphic=True)(1 + 1j)


def test_forward_engine_needs_holomorphic_for_complex_inputs():
    with pytest.raises(AdkitTypeError, match="engine='reverse'"):
        ad.grad(lambda z: np.abs(z), engine="forward")(1 + 1j)


@pytest.mark.parametrize("engine", ["symbolic", "numeric", "paths"])
def test_other_engines_refuse_complex_inputs(engine):
    with pytest.raises(AdkitTypeError, match="complex"):
        ad.grad(lambda z: np.abs(z), engine=engine)(1 + 1j)


@pytest.mark.parametrize(
    "f, op",
    [
        (lambda z: np.sum(np.maximum(np.abs(z), 0) * np.maximum(z, 0)), "maximum"),
        (lambda z: np.abs(np.max(z)), "max"),
        (lambda z: np.abs(np.sign(z)), "sign"),
        (lambda z: np.abs(np.hypot(z, 1.0)), "hypot"),
    ],
)
def test_ops_without_complex_rules_refuse_by_name(f, op):
    with pytest.raises(AdkitTypeError, match=rf"\b{op}\b got a complex argument"):
        ad.grad(f)(np.array([1 + 1j, 2 - 1j]))


def test_complex_step_still_checks_real_functions():
    assert ad.numeric_grad(np.sin, 0.7, method="complex") == pytest.approx(np.cos(0.7), rel=1e-15)
    with pytest.raises(ValueError, match="abs"):  # |.| breaks analyticity: complex-step refuses it
        ad.numeric_grad(lambda x: np.abs(x * (3 + 4j)), 1.0, method="complex")


def test_against_jax(jax64):
    jax = jax64
    jnp = jax.numpy
    z = 0.7 - 1.3j
    for f, jf in [
        (lambda z: np.abs(z) ** 2, lambda z: jnp.abs(z) ** 2),
        (lambda z: np.real(z * np.exp(1.5j)), lambda z: jnp.real(z * jnp.exp(1.5j))),
        (lambda z: np.angle(z) * np.abs(np.sin(z)), lambda z: jnp.angle(z) * jnp.abs(jnp.sin(z))),
    ]:
        np.testing.assert_allclose(ad.grad(f)(z), complex(jax.grad(jf)(z)), rtol=1e-12)
    np.testing.assert_allclose(
        ad.grad(np.sin, holomorphic=True)(z), complex(jax.grad(jnp.sin, holomorphic=True)(z)), rtol=1e-12
    )


def test_structural_ops_on_complex_arrays():
    """matmul, einsum, indexing, concatenate, stack, transpose, reshape, broadcasting, mean:
    the complex-safe structural ops, through a real-valued f of a complex matrix."""
    A = np.array([[1 - 1j, 0.5], [2j, -1.0 + 0.3j]])

    def f(z):
        m = z.reshape(2, 2)
        y = np.einsum("ij,jk->ik", A, m) + m.T @ A
        w = np.concatenate([y[0], np.stack([y[1, 0], z[3]])]) * np.ones((3, 1))
        return np.sum(np.abs(w) ** 2) + np.real(np.mean(w * w)) + np.sum(np.imag(np.where(np.abs(z) > 1, z, 2 * z)))

    z = np.array([0.3 + 0.2j, -1.1 + 0.4j, 0.8 - 0.9j, 0.1 + 0.5j])
    np.testing.assert_allclose(ad.grad(f)(z), fd_conj_gradient(f, z), rtol=RTOL, atol=1e-7)


def test_complex_tangent_or_cotangent_of_a_real_value_is_refused():
    with pytest.raises(AdkitTypeError, match="tangent 0 is complex"):
        ad.jvp(np.sin, (1.0,), (1j,))
    _, pullback = ad.vjp(np.sin, 1.0)
    with pytest.raises(AdkitTypeError, match="complex cotangent"):
        pullback(1j)


@pytest.mark.parametrize(
    "name",
    ["norm", "vdot", "var_std", "prod", "cumprod", "convolve"],
)
def test_numpy_functions_on_complex_arrays(name):
    """numpy's complex semantics: norms of moduli, vdot conjugates its first argument, var is
    real (mean |z - mean|^2); products and convolution are complex-bilinear."""
    w = np.array([1 - 2j, 0.5j, 3.0, -1 + 1j])
    f = {
        "norm": lambda z: np.linalg.norm(z) + np.linalg.norm(z.reshape(2, 2)) + np.linalg.norm(z, 1),
        "vdot": lambda z: np.real(np.vdot(z, w)) + np.imag(np.vdot(w, z * z)),
        "var_std": lambda z: np.var(z) + np.std(z * w),
        "prod": lambda z: np.abs(np.prod(z * w)) ** 2,
        "cumprod": lambda z: np.sum(np.abs(np.cumprod(z)) ** 2),
        "convolve": lambda z: np.sum(np.abs(np.convolve(z, w)) ** 2),
    }[name]
    z = np.array([0.3 + 0.2j, -1.1 + 0.4j, 0.8 - 0.9j, 0.1 + 0.5j])
    assert np.isrealobj(f(z))
    # |f| up to ~1e2 (convolve): rounding eps |f| / h ~ 2e-8 absolute, hence atol 1e-7
    np.testing.assert_allclose(ad.grad(f)(z), fd_conj_gradient(f, z), rtol=RTOL, atol=1e-7)


@pytest.mark.parametrize("engine", ENGINES)
def test_linear_algebra_on_complex_matrices(engine):
    """inv, solve and det are holomorphic: their (transposed, unconjugated) rules hold for
    complex matrices; checked by finite differences along real and imaginary parts."""
    A = np.array([[2 + 1j, 0.5 - 0.3j], [0.2j, 1.5 - 0.5j]])
    b = np.array([1 - 1j, 0.5])

    def f(A):
        return (
            np.sum(np.abs(np.linalg.inv(A) * np.array([[1, 2j], [3, 1 - 1j]])) ** 2)
            + np.sum(np.abs(np.linalg.solve(A, b * A[0])) ** 2)
            + np.abs(np.linalg.det(A)) ** 2
        )

    if engine == "reverse":
        np.testing.assert_allclose(ad.grad(f)(A), fd_conj_gradient(f, A), rtol=RTOL, atol=1e-7)
    z = A.ravel()
    jac = ad.jacobian(lambda z: np.linalg.inv(z.reshape(2, 2)), holomorphic=True, engine=engine)(z)
    # d inv(A) / d A_kl = -inv(A) E_kl inv(A), holomorphic
    Ai = np.linalg.inv(A)
    want = -np.einsum("ik,lj->ijkl", Ai, Ai).reshape(2, 2, 4)
    np.testing.assert_allclose(jac, want, rtol=1e-13)


def test_kinks_at_zero():
    # |z| at 0: the subgradient 0 (as for the real abs); |z|^2 = z conj(z) is smooth there
    assert ad.grad(lambda z: np.abs(z))(0j) == 0
    assert ad.grad(lambda z: np.abs(z) ** 2)(0j) == 0
    # arg z has no derivative at 0, and sqrt(|z|^2) = |z| written this way meets sqrt'(0) = inf
    with pytest.raises(ad.NonFiniteDerivativeError, match="angle"):
        ad.grad(lambda z: np.angle(z))(0j)
    with pytest.raises(ad.NonFiniteDerivativeError, match="sqrt"):
        ad.grad(lambda z: np.sqrt(np.real(z * np.conj(z))))(0j)
