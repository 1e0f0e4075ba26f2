"""np.fft: every transform against finite differences along the real and the imaginary part
of each input entry (the transforms are linear, so central differences are exact up to
rounding), forward == reverse through the pairing Re(c t), Parseval, and JAX where installed.
The cases are the registry entries' own examples (tests/test_registry.py's harness compares
real values only, so the complex-valued transforms are checked here)."""

from __future__ import annotations

import numpy as np
import pytest

import adkit as ad
from adkit.errors import AdkitError
from adkit.ops import REGISTRY

FOURIER = ("fftn", "ifftn", "rfftn", "irfftn")
# Linear maps: a central difference has no truncation error, only rounding ~ eps |f| / h
# with |f| ~ 10 and h = 1e-3: 2e-12. 1e-9 leaves a 500x margin; a wrong transpose or a
# missing Hermitian weight is off by O(1).
H = 1e-3
TOL = 1e-9


def _cases():
    for name in FOURIER:
        op = REGISTRY[name]
        for k, (args, params) in enumerate(op.examples(np.random.default_rng(0))):
            yield pytest.param(name, args[0], params, id=f"{name}-example{k}")


def fd_jacobian(f, x, directions, h=H):
    """d f / d(direction * e_j) for each entry j: a list over the directions (1, and 1j for complex)."""
    x = np.asarray(x)
    cols = []
    for d in directions:
        jac = np.zeros(np.shape(f(x)) + x.shape, dtype=complex)
        for idx in np.ndindex(*x.shape):
            e = np.zeros(x.shape, dtype=x.dtype)
            e[idx] = h * d
            jac[(Ellipsis, *idx)] = (f(x + e) - f(x - e)) / (2 * h)
        cols.append(jac)
    return cols


@pytest.mark.parametrize(("name", "x", "params"), list(_cases()))
@pytest.mark.parametrize("engine", ["forward", "reverse"])
def test_real_input_jacobian_matches_finite_differences(name, x, params, engine):
    op = REGISTRY[name]
    (want,) = fd_jacobian(lambda v: op.impl(v, **params), x, [1.0])
    got = ad.jacobian(lambda v: op(v, **params), engine=engine)(x)
    np.testing.assert_allclose(got, want, rtol=TOL, atol=TOL)


@pytest.mark.parametrize(("name", "x", "params"), [c for c in _cases() if c.values[0] != "rfftn"])
def test_complex_input_jvp_and_vjp_match_finite_differences(name, x, params):
    """Complex input: the JVP along t and the VJP with c satisfy Re(vjp(c) t) = Re(c jvp(t)),
    and the JVP is the difference quotient along t (real and imaginary parts at once)."""
    op = REGISTRY[name]
    rng = np.random.default_rng(3)
    z = x + 1j * rng.uniform(-1, 1, size=np.shape(x))
    t = rng.uniform(-1, 1, size=z.shape) + 1j * rng.uniform(-1, 1, size=z.shape)
    out, tangent = ad.jvp(lambda v: op(v, **params), (z,), (t,))
    fd = (op.impl(z + H * t, **params) - op.impl(z - H * t, **params)) / (2 * H)
    np.testing.assert_allclose(tangent, fd, rtol=TOL, atol=TOL)
    c = rng.uniform(-1, 1, size=np.shape(out))
    if np.iscomplexobj(out):
        c = c + 1j * rng.uniform(-1, 1, size=np.shape(out))
    _, pullback = ad.vjp(lambda v: op(v, **params), z)
    (ct,) = pullback(c)
    lhs, rhs = np.sum(np.real(ct * t)), np.sum(np.real(c * tangent))
    assert lhs == pytest.approx(rhs, rel=1e-12, abs=1e-12)


def test_rfft_refuses_complex_input():
    with pytest.raises(AdkitError, match="rfftn got a complex argument"):
        ad.grad(lambda z: np.sum(np.abs(np.fft.rfft(z))))(np.array([1 + 1j, 2.0]))


@pytest.mark.parametrize("engine", ["forward", "reverse"])
def test_power_spectrum_parseval(engine):
    # sum |fft(x)|^2 = N sum x^2 (Parseval), so its gradient is 2 N x
    x = np.array([0.3, -1.2, 0.5, 2.0, 0.1])
    g = ad.grad(lambda x: np.sum(np.abs(np.fft.fft(x)) ** 2), engine=engine)(x)
    np.testing.assert_allclose(g, 2 * len(x) * x, rtol=1e-13)


@pytest.mark.parametrize(
    "f",
    [
        lambda x: np.sum(np.abs(np.fft.fft(x, n=8)) ** 2 * np.arange(8)),
        lambda x: np.sum(np.fft.irfft(np.fft.rfft(x) * np.array([1, 2, 3, 0.5])) ** 3),
        lambda x: np.sum(np.abs(np.fft.rfft(x, n=5, norm="ortho")) ** 3),
        lambda x: np.real(np.sum(np.fft.ifft(x * (1 + 2j), norm="forward") * np.arange(6))),
        lambda x: np.sum(np.abs(np.fft.fft2(x.reshape(2, 3))) ** 2 * np.arange(6).reshape(2, 3)),
        lambda x: np.sum(np.fft.irfft2(np.fft.rfft2(x.reshape(2, 3)) * 1.5j + 1, s=(2, 3)) ** 2),
        lambda x: np.sum(np.fft.fftshift(x) * np.arange(6)) + np.sum(np.fft.ifftshift(x) ** 2),
        lambda x: np.sum(
            np.abs(np.fft.fftn(x.reshape(3, 2), s=(4, 3), axes=(0, 1))) ** 2 * np.arange(12).reshape(4, 3)
        ),
        lambda x: np.sum(np.fft.irfftn(np.fft.ifftn(x.reshape(2, 3) + 0j, axes=(0,)), s=(2, 4), axes=(0, 1)) ** 2),
    ],
)
@pytest.mark.parametrize("engine", ["forward", "reverse"])
def test_real_functions_through_ffts(f, engine):
    x = np.array([0.3, -1.2, 0.5, 2.0, 0.1, -0.7])
    got = ad.grad(f, engine=engine)(x)
    # up to cubic: h = 1e-5 puts truncation h^2 f''' / 6 (f''' ~ 1e2 here) and rounding eps |f| / h
    # (|f| ~ 1e2) near 2e-9 each; rtol 1e-7 is a 50x margin
    (fd,) = fd_jacobian(f, x, [1.0], h=1e-5)
    np.testing.assert_allclose(got, np.real(fd), rtol=1e-7, atol=1e-7)


def test_gradient_through_fft_of_complex_input_matches_finite_differences():
    def f(z):
        return np.sum(np.abs(np.fft.fft(z * np.array([1, 2j, 3]))) ** 3)

    z = np.array([0.3 - 0.2j, 1.0 + 0.5j, -0.4j])
    got = ad.grad(f)(z)
    dx, dy = fd_jacobian(f, z, [1.0, 1j], h=1e-5)  # cubic: as in test_real_functions_through_ffts
    np.testing.assert_allclose(got, np.real(dx) - 1j * np.real(dy), rtol=1e-7, atol=1e-7)


def test_symbolic_engine_refuses_fft_by_name():
    with pytest.raises(AdkitError, match="irfftn"):
        ad.grad(lambda x: np.sum(np.fft.irfft(x)), engine="symbolic")(np.array([1.0, 2.0, 3.0]))


def test_against_jax(jax64):
    jax = jax64
    jnp = jax.numpy
    x = np.array([0.3, -1.2, 0.5, 2.0, 0.1, -0.7])

    def f(np_):
        return lambda x: np_.sum(np_.fft.irfft(np_.fft.rfft(x, norm="ortho") * np_.arange(4), n=7) ** 2)

    np.testing.assert_allclose(ad.grad(f(np))(x), jax.grad(f(jnp))(x), rtol=1e-10)
