"""np.linalg on traced values: closed forms from the literature, central differences of
gauge-invariant functions, batched shapes, and the refusals where no derivative exists.

Oracles: closed forms (Jacobi's d det = det tr(A^-1 dA), d log|det| = A^-T, d sigma_i =
u_i^T dA v_i, d w_i = v_i^T dA v_i, the explicit 2x2 Cholesky factor differentiated by
sympy), central differences of numpy's own routines, and JAX where it is installed.
Decompositions are compared through functions that do not depend on their arbitrary signs
(|U|, U U^T, projectors, reconstructions), so that finite differences are meaningful.
"""

from __future__ import annotations

import numpy as np
import pytest

import adkit as ad
from adkit.errors import UndefinedDerivativeError, UnsupportedFunctionError

# Central differences, h = eps^(1/3) * max(1, |x|) ~ 6e-6: truncation h^2 |f'''| / 6 plus
# rounding eps |f| / h, ~1e-10 relative for these O(1), well-conditioned (cond < ~10)
# matrices; the decompositions' derivatives carry 1 / (gap between eigenvalues), gaps >=
# ~0.1 at these seeds, so ~1e-8 at worst. 1e-7 leaves a 10x margin and is six orders of
# magnitude below the O(1) error of a wrong rule.
FD_STEP = np.finfo(float).eps ** (1 / 3)
FD_TOL = 1e-7
# Two exact computations of the same closed form (adkit's rule vs numpy's inverse or
# decomposition): only rounding separates them, a few hundred ulps for 4x4 matrices.
EXACT_TOL = 1e-11
ENGINES = ("forward", "reverse")


def fd_grad(f, x):
    """Central-difference gradient of the scalar numpy function f at x."""
    x = np.asarray(x, dtype=float)
    g = np.empty_like(x)
    for idx in np.ndindex(*x.shape):
        h = FD_STEP * max(1.0, abs(x[idx]))
        plus, minus = x.copy(), x.copy()
        plus[idx] += h
        minus[idx] -= h
        g[idx] = (f(plus) - f(minus)) / (plus[idx] - minus[idx])
    return g


def check(f, x, engines=ENGINES, tol=FD_TOL):
    """grad of f in each engine against central differences of f on plain numpy arrays."""
    want = fd_grad(f, x)
    for engine in engines:
        got = ad.grad(f, engine=engine)(x)
        np.testing.assert_allclose(got, want, rtol=tol, atol=tol, err_msg=engine)


def rng_for(name):
    return np.random.default_rng(sum(map(ord, name)))


def well_conditioned(rng, *shape):
    return rng.uniform(-1, 1, size=shape) + 3 * np.eye(shape[-1])


def symmetric(rng, *shape):
    m = rng.uniform(-1, 1, size=shape)
    return m + np.swapaxes(m, -1, -2)


def spd(rng, *shape):
    m = rng.uniform(-1, 1, size=shape)
    return m @ np.swapaxes(m, -1, -2) + shape[-1] * np.eye(shape[-1])


# --- closed forms ---------------------------------------------------------------------------------


@pytest.mark.parametrize("engine", ENGINES)
@pytest.mark.parametrize("shape", [(4, 4), (2, 3, 3)])
def test_det_is_jacobis_formula(engine, shape):
    """d det A = det A tr(A^-1 dA): the gradient of det is det(A) A^-T (per matrix of a stack)."""
    a = well_conditioned(rng_for("det"), *shape)
    got = ad.grad(lambda x: np.sum(np.linalg.det(x)), engine=engine)(a)
    want = np.linalg.det(a)[..., None, None] * np.swapaxes(np.linalg.inv(a), -1, -2)
    np.testing.assert_allclose(got, want, rtol=EXACT_TOL, atol=EXACT_TOL)


@pytest.mark.parametrize("engine", ENGINES)
def test_slogdet_gradient_is_the_inverse_transpose(engine):
    """d log|det A| = A^-T, whatever the sign (a matrix with det < 0 here); the sign is a constant."""
    a = well_conditioned(rng_for("slogdet"), 2, 3, 3) * np.array([1.0, -1.0])[:, None, None]
    assert np.all(np.linalg.det(a)[1] < 0)
    got = ad.grad(lambda x: np.sum(np.linalg.slogdet(x).logabsdet), engine=engine)(a)
    np.testing.assert_allclose(got, np.swapaxes(np.linalg.inv(a), -1, -2), rtol=EXACT_TOL, atol=EXACT_TOL)
    sign_grad = ad.grad(lambda x: np.sum(np.linalg.slogdet(x)[0][:, None, None] * x), engine=engine)(a)
    np.testing.assert_array_equal(sign_grad, np.broadcast_to(np.linalg.slogdet(a)[0][:, None, None], a.shape))


@pytest.mark.parametrize("engine", ENGINES)
@pytest.mark.parametrize("shape", [(4, 3), (3, 3), (2, 5)])
def test_singular_value_derivative_is_u_v_transpose(engine, shape):
    """d sigma_i = u_i^T dA v_i: the gradient of sigma_i is the outer product u_i v_i^T."""
    a = rng_for("sigma").uniform(-1, 1, size=shape)
    u, s, vh = np.linalg.svd(a, full_matrices=False)
    for i in range(len(s)):
        for form in (
            lambda x: np.linalg.svd(x, full_matrices=False)[1][i],
            lambda x: np.linalg.svd(x, compute_uv=False)[i],
        ):
            got = ad.grad(form, engine=engine)(a)
            np.testing.assert_allclose(got, np.outer(u[:, i], vh[i]), rtol=EXACT_TOL, atol=EXACT_TOL)


@pytest.mark.parametrize("engine", ENGINES)
def test_eigenvalue_derivative_is_v_v_transpose(engine):
    """d w_i = v_i^T dA v_i. numpy's eigh reads the lower triangle, so on a symmetric input
    X + X^T the gradient w.r.t. X is 2 v_i v_i^T (eigh, eigvalsh and eig agree)."""
    x = rng_for("eigen").uniform(-1, 1, size=(4, 4))
    w, v = np.linalg.eigh(x + x.T)
    for i in range(4):
        want = 2 * np.outer(v[:, i], v[:, i])
        for form in (
            lambda y: np.linalg.eigh(y + y.T)[0][i],
            lambda y: np.linalg.eigvalsh(y + y.T)[i],
            lambda y: np.sort(np.linalg.eigvals(y + y.T))[i],
        ):
            np.testing.assert_allclose(ad.grad(form, engine=engine)(x), want, rtol=EXACT_TOL, atol=EXACT_TOL)


def test_cholesky_of_a_2x2_matrix_against_sympy():
    """The explicit 2x2 factor L = [[sqrt(a), 0], [b / sqrt(a), sqrt(c - b^2 / a)]] of
    [[a, b], [b, c]] (read from the lower triangle), differentiated by sympy."""
    import sympy as sp

    a, b, c = sp.symbols("a b c", positive=True)
    lower = sp.Matrix([[sp.sqrt(a), 0], [b / sp.sqrt(a), sp.sqrt(c - b**2 / a)]])
    point = {a: 2.0, b: 0.6, c: 1.5}
    m = np.array([[2.0, 7.0], [0.6, 1.5]])  # the upper entry is never read
    weights = np.array([[0.3, 0.0], [-1.2, 0.7]])
    loss = sum(weights[i, j] * lower[i, j] for i in range(2) for j in range(2))
    want = np.array([[float(sp.diff(loss, a).subs(point)), 0.0], [float(sp.diff(loss, b).subs(point)), 0.0]])
    want[1, 1] = float(sp.diff(loss, c).subs(point))
    for engine in ENGINES:
        got = ad.grad(lambda x: np.sum(weights * np.linalg.cholesky(x)), engine=engine)(m)
        np.testing.assert_allclose(got, want, rtol=EXACT_TOL, atol=EXACT_TOL)


# --- central differences of gauge-invariant functions, batched shapes ---------------------------------

GAUGE_INVARIANT = {
    "svd |U| |Vh| (square, full)": (
        lambda a: (
            np.sum(np.abs(np.linalg.svd(a)[0]) * np.arange(9.0).reshape(3, 3))
            + np.sum(np.abs(np.linalg.svd(a)[2]) ** 3)
        ),
        (3, 3),
    ),
    "svd U U^T weighted (tall, reduced)": (
        lambda a: np.sum(
            np.cos(np.linalg.svd(a, full_matrices=False)[0][:, :2] @ np.linalg.svd(a, full_matrices=False)[0][:, :2].T)
        ),
        (5, 3),
    ),
    "svd reconstruction (wide, batched)": (lambda a: np.sum(np.sin(_reconstruct(a))), (2, 2, 4)),
    "svd full U (tall by 1) |U|": (
        lambda a: np.sum(np.abs(np.linalg.svd(a)[0]) * np.arange(16.0).reshape(4, 4)),
        (4, 3),
    ),
    "svd full Vh (wide by 1) |Vh|": (
        lambda a: np.sum(np.abs(np.linalg.svd(a)[2]) ** 2 * np.arange(16.0).reshape(4, 4)),
        (3, 4),
    ),
    "eigh |V| with weights, batched": (
        lambda a: np.sum(np.abs(np.linalg.eigh(a + np.swapaxes(a, -1, -2))[1]) * np.arange(3.0)),
        (2, 3, 3),
    ),
    "eigh UPLO=U projector": (
        lambda a: np.sum(
            np.linalg.eigh(a, UPLO="U")[1][:, :2]
            @ np.linalg.eigh(a, UPLO="U")[1][:, :2].T
            * np.arange(16.0).reshape(4, 4)
        ),
        (4, 4),
    ),
    "eig of a non-symmetric matrix, |V|": (
        lambda a: np.sum(np.abs(np.linalg.eig(a + np.diag([0.0, 3.0, 6.0]))[1]) * np.arange(9.0).reshape(3, 3)),
        (3, 3),
    ),
    "eigvals product and sum": (
        lambda a: (
            np.prod(np.linalg.eigvals(a + np.diag([0.0, 3.0, 6.0])))
            + np.sum(np.linalg.eigvals(a + np.diag([0.0, 3.0, 6.0])) ** 2)
        ),
        (3, 3),
    ),
    "qr Q and R (tall)": (
        lambda a: np.sum(np.linalg.qr(a)[0] * np.arange(8.0).reshape(4, 2)) + np.sum(np.linalg.qr(a)[1] ** 2),
        (4, 2),
    ),
    "qr R (wide)": (lambda a: np.sum(np.linalg.qr(a, mode="r") * np.arange(10.0).reshape(2, 5)), (2, 5)),
    "qr batched": (lambda a: np.sum(np.sin(np.linalg.qr(a)[0])) + np.sum(np.linalg.qr(a)[1]), (2, 3, 3)),
    "cholesky upper and lower, batched": (
        lambda a: (
            np.sum(np.linalg.cholesky(_spd_of(a)) * np.arange(9.0).reshape(3, 3))
            + np.sum(np.linalg.cholesky(_spd_of(a), upper=True) ** 2)
        ),
        (2, 3, 3),
    ),
    "inv batched": (lambda a: np.sum(np.sin(np.linalg.inv(a + 3 * np.eye(3)))), (2, 3, 3)),
    "solve batched, vector b": (lambda a: np.sum(np.linalg.solve(a + 3 * np.eye(3), np.arange(3.0)) ** 2), (2, 3, 3)),
    "solve batched, matrix b": (lambda a: np.sum(np.linalg.solve(a[0] + 3 * np.eye(3), a[1:]) ** 2), (3, 3, 3)),
    "pinv tall and wide": (
        lambda a: np.sum(np.linalg.pinv(a) ** 2) + np.sum(np.linalg.pinv(a.T) * np.arange(12.0).reshape(4, 3)),
        (4, 3),
    ),
    "matrix_power 5 and -3": (
        lambda a: (
            np.sum(np.linalg.matrix_power(a + 2 * np.eye(3), 5)) + np.sum(np.linalg.matrix_power(a + 2 * np.eye(3), -3))
        ),
        (3, 3),
    ),
    "multi_dot": (
        lambda a: np.sum(
            np.linalg.multi_dot(
                [
                    a,
                    a.T,
                    np.arange(4.0),
                ]
            )
        ),
        (4, 3),
    ),
    "lstsq solution and residuals": (
        lambda a: np.sum(np.linalg.lstsq(a, np.arange(5.0))[0] ** 2) + np.linalg.lstsq(a, np.arange(5.0))[1][0],
        (5, 3),
    ),
    "norms nuc, 2, -2, fro, 1, inf": (
        lambda a: sum(np.linalg.norm(a, o) for o in ("nuc", 2, -2, "fro", 1, -1, np.inf, -np.inf)),
        (4, 3),
    ),
    "norm nuc over axes, keepdims": (
        lambda a: np.sum(np.linalg.norm(a, "nuc", axis=(0, 2), keepdims=True) * np.arange(2.0)[None, :, None]),
        (3, 2, 4),
    ),
    "cond": (lambda a: np.linalg.cond(a) + np.linalg.cond(a, -2) + np.linalg.cond(a + 3 * np.eye(3), "fro"), (3, 3)),
    "det and slogdet batched": (lambda a: np.sum(np.linalg.det(a) ** 2) + np.sum(np.linalg.slogdet(a)[1]), (2, 3, 3)),
}


def _reconstruct(a):
    u, s, vh = np.linalg.svd(a, full_matrices=False)
    return u @ (s[..., :, None] * vh)


def _spd_of(a):
    return a @ np.swapaxes(a, -1, -2) + 3 * np.eye(a.shape[-1])


@pytest.mark.parametrize("name", list(GAUGE_INVARIANT))
def test_against_central_differences(name):
    f, shape = GAUGE_INVARIANT[name]
    x = rng_for(name).uniform(-1, 1, size=shape)
    check(f, x)


def test_values_equal_numpy():
    """Inside a derivative, every np.linalg function returns numpy's value (the same routine)."""
    rng = rng_for("values")
    a, s = rng.uniform(-1, 1, size=(4, 3)), spd(rng, 3, 3)
    calls = [
        (lambda x: np.linalg.svd(x), a),
        (lambda x: np.linalg.svd(x, full_matrices=False), a),
        (lambda x: np.linalg.qr(x), a),
        (lambda x: np.linalg.qr(x.T), a),
        (lambda x: np.linalg.eigh(x), s),
        (lambda x: np.linalg.eig(x), s),
        (lambda x: np.linalg.cholesky(x), s),
        (lambda x: np.linalg.slogdet(x), s),
        (lambda x: np.linalg.pinv(x), a),
        (lambda x: np.linalg.lstsq(x, np.arange(4.0)), a),
        (lambda x: np.linalg.lstsq(x.T, np.arange(6.0).reshape(3, 2)), a),
    ]
    for call, x in calls:
        seen = []
        ad.grad(lambda y: seen.append(call(y)) or 0.0 * np.sum(y))(x)
        want = call(x)
        got = seen[0]
        if isinstance(want, np.ndarray):
            got, want = [got], [want]
        assert type(got).__name__ == type(want).__name__ and len(got) == len(want)
        for g, w in zip(got, want):
            np.testing.assert_allclose(ad.primal(g), w, rtol=1e-13, atol=1e-13)


def test_second_derivatives():
    """Rules are made of registry ops: the Hessian of log det A is -A^-T (x) A^-T (Giles 2008:
    d^2 log det = -tr(A^-1 dA A^-1 dA)), and the Hessian of a sum of eigenvalues squared is
    2 (the trace of A^2 = sum w_i^2 in a symmetric A)."""
    a = well_conditioned(rng_for("hessian"), 3, 3)
    h = ad.hessian(lambda x: np.linalg.slogdet(x)[1])(a)
    inv = np.linalg.inv(a)
    np.testing.assert_allclose(h, -np.einsum("jk,li->ijkl", inv, inv), rtol=EXACT_TOL, atol=EXACT_TOL)
    s = symmetric(rng_for("hessian2"), 3, 3)
    h2 = ad.hessian(lambda x: np.sum(np.linalg.eigvalsh(x + x.T) ** 2))(s)
    want = ad.hessian(lambda x: np.sum((x + x.T) ** 2))(s)  # sum w_i^2 = ||X + X^T||_F^2
    np.testing.assert_allclose(h2, want, rtol=1e-9, atol=1e-9)


# --- refusals where the derivative does not exist ----------------------------------------------------


def test_repeated_eigenvalues_refuse_eigenvectors_in_forward_mode():
    a = np.diag([1.0, 1.0, 3.0])
    with pytest.raises(UndefinedDerivativeError, match=r"np\.linalg\.eigh.*repeated"):
        ad.grad(lambda x: np.sum(np.linalg.eigh(x)[1][:, 0] ** 3), engine="forward")(a)
    with pytest.raises(UndefinedDerivativeError, match=r"np\.linalg\.eigh"):
        ad.grad(lambda x: np.sum(np.linalg.eigh(x)[1][:, 0] ** 3), engine="reverse")(a)


def test_repeated_eigenvalues_leave_the_other_derivatives():
    """At diag-like A with eigenvalues 1, 1, 3, 5 (rotated): the eigenvalues and the eigenvectors
    of the simple eigenvalues have derivatives (against central differences, both modes); a loss
    that uses the repeated eigenvalue's eigenvectors is refused, even a projector onto their space
    (which has a derivative, but a check at one basis cannot tell it from sum(v_0^3))."""
    rng = np.random.default_rng(11)
    q, _ = np.linalg.qr(rng.normal(size=(4, 4)))
    a = q @ np.diag([1.0, 1.0, 3.0, 5.0]) @ q.T
    a = np.tril(a) + np.tril(a, -1).T  # exactly symmetric
    weights = rng.normal(size=(4, 4))

    def simple(x):
        w, v = np.linalg.eigh(x)
        return np.sum(weights[:, 2:] * np.abs(v[:, 2:])) + np.sum(w**2)

    check(simple, a, engines=("reverse",), tol=1e-6)  # gaps >= 2: FD error ~1e-9, 1e-6 keeps a margin
    check(lambda x: np.sum(np.linalg.eigvalsh(x) ** 2) + np.sum(np.linalg.eigvalsh(x)[:2]), a, tol=1e-6)
    with pytest.raises(UndefinedDerivativeError, match=r"np\.linalg\.eigh"):
        ad.grad(lambda x: np.sum(weights * (np.linalg.eigh(x)[1][:, :2] @ np.linalg.eigh(x)[1][:, :2].T)))(a)


def test_repeated_singular_values():
    a = np.eye(3)
    with pytest.raises(UndefinedDerivativeError, match=r"np\.linalg\.svd.*singular values are repeated"):
        ad.grad(lambda x: np.sum(np.abs(np.linalg.svd(x)[0])), engine="forward")(a)
    with pytest.raises(UndefinedDerivativeError, match=r"np\.linalg\.svd"):
        ad.grad(lambda x: np.sum(np.linalg.svd(x)[0][:, 0] ** 3), engine="reverse")(a)
    # the nuclear norm (sum of singular values) is smooth at the identity: gradient U V^T = I
    for engine in ENGINES:
        np.testing.assert_allclose(
            ad.grad(lambda x: np.linalg.norm(x, "nuc"), engine=engine)(a), np.eye(3), rtol=1e-14, atol=1e-14
        )


def test_full_matrices_complement_basis():
    """For a 5x2 matrix, full_matrices=True's last 3 columns of U are an arbitrary basis of the
    complement: forward mode refuses them; reverse mode refuses a loss that uses them and
    differentiates one that does not. A 3x2 matrix has a one-column complement, unique up to
    its sign: both modes differentiate it."""
    a = rng_for("complement").uniform(-1, 1, size=(5, 2))
    with pytest.raises(UndefinedDerivativeError, match="full_matrices"):
        ad.grad(lambda x: np.sum(np.linalg.svd(x)[1]), engine="forward")(a)
    with pytest.raises(UndefinedDerivativeError, match="extra columns of U"):
        ad.grad(lambda x: np.sum(np.linalg.svd(x)[0] ** 3), engine="reverse")(a)
    check(lambda x: np.sum(np.linalg.svd(x)[1]) + np.sum(np.abs(np.linalg.svd(x)[0][:, :2])), a, engines=("reverse",))
    check(lambda x: np.sum(np.abs(np.linalg.svd(x[:3])[0]) * np.arange(9.0).reshape(3, 3)), a)


def test_complex_eigenvalues_are_refused_by_name():
    rotation = np.array([[0.0, -1.0], [1.0, 0.0]])
    with pytest.raises(ad.errors.AdkitTypeError, match=r"np\.linalg\.eig.*complex eigenvalues"):
        ad.grad(lambda x: np.sum(np.linalg.eig(x)[0]))(rotation)


def test_rank_deficient_and_singular_matrices_are_refused():
    rank_one = np.outer([1.0, 2.0, 3.0], [1.0, -1.0])
    with pytest.raises(UndefinedDerivativeError, match=r"np\.linalg\.pinv.*rank-deficient"):
        ad.grad(lambda x: np.sum(np.linalg.pinv(x)))(rank_one)
    singular = np.array([[1.0, 2.0], [2.0, 4.0]])
    with pytest.raises(ad.errors.NonFiniteDerivativeError):  # log |det| = -inf: no derivative either
        ad.grad(lambda x: np.linalg.slogdet(x)[1])(singular)
    with pytest.raises(UndefinedDerivativeError, match=r"np\.linalg\.qr.*full column rank"):
        ad.grad(lambda x: np.sum(np.linalg.qr(x)[0]))(np.ones((3, 2)))


def _cofactor_matrix(a: np.ndarray) -> np.ndarray:
    """(-1)^(i+j) times the minor of entry (i, j): Laplace's expansion, independent of any
    factorisation."""
    n = a.shape[0]
    return np.array(
        [[(-1) ** (i + j) * np.linalg.det(np.delete(np.delete(a, i, 0), j, 1)) for j in range(n)] for i in range(n)]
    )


@pytest.mark.parametrize("engine", ["reverse", "forward"])
def test_det_has_its_cofactor_matrix_as_derivative_at_singular_matrices(engine):
    """det is a polynomial: its derivative is the cofactor matrix everywhere (Jacobi's
    formula), also where A^-1 does not exist. Rank n - 1 (nonzero cofactors), rank n - 2
    (all cofactors 0), the zero 1 x 1 (cofactor 1) and 2 x 2 matrices, an empty stack, a
    stack mixing a singular and an invertible matrix. Tolerance: the
    SVD's rounding is ~eps relative to the largest cofactor (||A||^(n-1)), so 1e-12 of the
    matrix's scale; the minors are exact for these small integers."""
    rank_two = np.array([[1.0, 2.0, 3.0], [4.0, 5.0, 6.0], [7.0, 8.0, 9.0]])
    rank_one = np.outer([1.0, 2.0, 3.0], [1.0, -1.0, 2.0])
    for a in (np.array([[1.0, 2.0], [2.0, 4.0]]), rank_two, rank_one, np.zeros((1, 1)), np.zeros((2, 2))):
        got = ad.grad(np.linalg.det, engine=engine)(a)
        scale = np.linalg.norm(a) ** (a.shape[0] - 1)
        np.testing.assert_allclose(got, _cofactor_matrix(a), rtol=0, atol=1e-12 * scale)
    empty = ad.grad(lambda s: np.sum(np.linalg.det(s)), engine=engine)(np.zeros((0, 3, 3)))
    assert empty.shape == (0, 3, 3)
    stack = np.stack([rank_two, rank_two + np.eye(3)])
    got = ad.grad(lambda s: np.sum(np.linalg.det(s)), engine=engine)(stack)
    for k in range(2):
        np.testing.assert_allclose(got[k], _cofactor_matrix(stack[k]), rtol=0, atol=1e-12 * 300)


def test_det_second_derivative_at_a_singular_matrix_is_refused():
    singular = np.array([[1.0, 2.0], [2.0, 4.0]])
    with pytest.raises(UndefinedDerivativeError, match=r"np\.linalg\.det.*second derivative.*singular"):
        ad.hessian(np.linalg.det)(singular)
    # away from it, the Hessian of det is the constant permutation tensor (2 x 2: d2 det / da11 da22 = 1)
    h = ad.hessian(np.linalg.det)(singular + np.eye(2))
    assert h[0, 0, 1, 1] == pytest.approx(1.0, abs=1e-12) and h[0, 1, 1, 0] == pytest.approx(-1.0, abs=1e-12)


def test_symbolic_engine_refuses_decompositions_by_name_and_differentiates_the_rest():
    a = well_conditioned(rng_for("symbolic"), 2, 2)
    for fn, name in (
        (lambda x: np.sum(np.linalg.svd(x)[1]), "np.linalg.svd"),
        (lambda x: np.sum(np.linalg.eigh(x)[0]), "np.linalg.eigh"),
        (lambda x: np.sum(np.linalg.qr(x)[1]), "np.linalg.qr"),
    ):
        with pytest.raises(UnsupportedFunctionError, match=name):
            ad.grad(fn, engine="symbolic")(a)
    f = lambda x: np.linalg.det(x) + np.sum(np.linalg.inv(x)) + np.sum(np.linalg.cholesky(x @ x.T))  # noqa: E731
    np.testing.assert_allclose(ad.grad(f, engine="symbolic")(a), ad.grad(f)(a), rtol=1e-12, atol=1e-12)


def test_unsupported_modes_are_named():
    a = np.ones((4, 2)) + np.eye(4, 2)
    with pytest.raises(UnsupportedFunctionError, match="mode='complete'"):
        ad.grad(lambda x: np.sum(np.linalg.qr(x, mode="complete")[0]))(a)
    with pytest.raises(UnsupportedFunctionError, match="hermitian=True"):
        ad.grad(lambda x: np.sum(np.linalg.svd(x.T @ x, hermitian=True)[0]))(a)
    s = spd(rng_for("hermitian"), 3, 3)  # the values alone: the same singular values
    check(lambda x: np.sum(np.linalg.svd(x + x.T, compute_uv=False, hermitian=True) ** 2), s)
    with pytest.raises(ValueError, match="invalid norm order"):
        ad.grad(lambda x: np.linalg.norm(x, 3))(a)


def test_against_jax(jax64):
    jax = jax64
    jnp = jax.numpy
    a = rng_for("jax").uniform(-1, 1, size=(4, 3))
    s = spd(rng_for("jax"), 3, 3)
    pairs = [
        (lambda x: np.linalg.norm(x, "nuc"), lambda x: jnp.linalg.norm(x, "nuc"), a),
        (lambda x: np.sum(np.linalg.pinv(x)), lambda x: jnp.sum(jnp.linalg.pinv(x)), a),
        # JAX symmetrizes the input of cholesky and eigh, numpy reads one triangle: compare on X + X^T
        (lambda x: np.sum(np.linalg.cholesky(x + x.T)), lambda x: jnp.sum(jnp.linalg.cholesky(x + x.T)), s),
        (lambda x: np.sum(np.linalg.eigvalsh(x + x.T) ** 3), lambda x: jnp.sum(jnp.linalg.eigvalsh(x + x.T) ** 3), s),
        (lambda x: np.linalg.slogdet(x)[1], lambda x: jnp.linalg.slogdet(x)[1], s),
    ]
    for ours, theirs, x in pairs:
        np.testing.assert_allclose(ad.grad(ours)(x), np.asarray(jax.grad(theirs)(x)), rtol=1e-10, atol=1e-10)


@pytest.mark.skipif(not hasattr(np.linalg, "matrix_norm"), reason="numpy < 2 has no matrix_norm / vector_norm")
def test_numpy2_norm_functions():
    a = rng_for("norm2").uniform(-1, 1, size=(3, 4))
    check(
        lambda x: (
            np.linalg.matrix_norm(x, ord="nuc")
            + np.linalg.matrix_norm(x)
            + np.sum(np.linalg.vector_norm(x, axis=0, ord=3))
            + np.sum(np.linalg.vector_norm(x, keepdims=True))
            + np.sum(np.linalg.svdvals(x) ** 3)
        ),
        a,
    )
    # the rank is an integer: a constant in the derivative
    np.testing.assert_array_equal(ad.grad(lambda x: np.linalg.matrix_rank(x) * np.sum(x))(a), np.full(a.shape, 3.0))


def fd_hessian(f, x):
    """Second-order central differences of the numpy function f, h = eps^(1/4) ~ 1.2e-4 (the
    step that balances truncation h^2 |f''''| against rounding eps |f| / h^2: ~1e-8 relative)."""
    h = np.finfo(float).eps ** 0.25
    n = x.size
    hess = np.empty((n, n))
    basis = np.eye(n).reshape((n, *x.shape)) * h
    for i in range(n):
        for j in range(n):
            ei, ej = basis[i], basis[j]
            hess[i, j] = (f(x + ei + ej) - f(x + ei - ej) - f(x - ei + ej) + f(x - ei - ej)) / (4 * h * h)
    return hess.reshape(x.shape + x.shape)


SECOND_ORDER = {
    "eigh |V|": (lambda a: np.sum(np.abs(np.linalg.eigh(a + a.T)[1]) * np.arange(3.0)), (3, 3)),
    "svd reduced |U|, S": (
        lambda a: (
            np.sum(np.abs(np.linalg.svd(a, full_matrices=False)[0]) * np.arange(3.0)) + np.sum(np.linalg.svd(a)[1] ** 3)
        ),
        (4, 3),
    ),
    "qr Q": (lambda a: np.sum(np.linalg.qr(a)[0] * np.arange(3.0)), (4, 3)),
    "cholesky": (lambda a: np.sum(np.linalg.cholesky(a @ a.T + 3 * np.eye(3)) ** 2), (3, 3)),
    "pinv": (lambda a: np.sum(np.linalg.pinv(a) ** 2), (4, 3)),
    "eig |V| and eigvals": (
        lambda a: (
            np.sum(np.abs(np.linalg.eig(0.3 * a + np.diag([0.0, 3.0, 6.0]))[1]))
            + np.prod(np.linalg.eigvals(0.3 * a + np.diag([0.0, 3.0, 6.0])))
        ),
        (3, 3),
    ),
}


@pytest.mark.parametrize("name", list(SECOND_ORDER))
def test_hessians_against_second_differences(name):
    """The rules are made of registry ops, so they differentiate again (forward over reverse);
    against second-order central differences of numpy (error ~1e-8 relative: 1e-5 keeps a margin
    of 1000 and is still far below the O(1) error of a wrong second derivative)."""
    f, shape = SECOND_ORDER[name]
    x = rng_for(name).uniform(-1, 1, size=shape)
    np.testing.assert_allclose(ad.hessian(f)(x), fd_hessian(f, x), rtol=1e-5, atol=1e-5)
