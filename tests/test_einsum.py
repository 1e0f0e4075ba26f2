"""np.einsum's whole syntax on traced values, against numpy and central differences.

Oracles: numpy's own np.einsum (values, on the examples of its documentation) and central
differences of np.einsum (Jacobians, forward and reverse). Nothing here is computed by
adkit's rules except the value under test.
"""

from __future__ import annotations

import string

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import adkit as ad
from adkit.ops import REGISTRY

# Central differences with h = eps^(1/3) ~ 6e-6: einsum is multilinear, so along one entry
# it is linear (a polynomial of degree 1 in that entry, 2 for a repeated operand), and the
# truncation error is zero or h^2-small; what remains is rounding, eps |f| / h ~ 4e-11 |f|.
# The entries here are O(1) and |f| <= ~20, so 1e-8 absolute and relative leaves a margin of
# ~10x, and a wrong rule (an O(1) error) is caught.
FD_STEP = np.finfo(float).eps ** (1 / 3)
TOL = 1e-8


def fd_jacobian(f, args, k):
    """Central-difference Jacobian of the numpy function f(*args) w.r.t. args[k]."""
    x = np.array(args[k], dtype=float)
    base = np.asarray(f(*args))
    jac = np.empty(base.shape + x.shape)
    for idx in np.ndindex(*x.shape):
        plus, minus = x.copy(), x.copy()
        plus[idx] += FD_STEP
        minus[idx] -= FD_STEP
        hi = f(*[plus if i == k else a for i, a in enumerate(args)])
        lo = f(*[minus if i == k else a for i, a in enumerate(args)])
        jac[(Ellipsis, *idx)] = (np.asarray(hi) - np.asarray(lo)) / (plus[idx] - minus[idx])
    return jac


def check_jacobians(call, arrays):
    """call(*arrays) (a function of the arrays that uses np.einsum) differentiated by forward and
    reverse mode w.r.t. every array, against central differences of the same call on numpy arrays."""
    for k in range(len(arrays)):
        want = fd_jacobian(call, arrays, k)
        for engine in ("forward", "reverse"):
            got = ad.jacobian(call, argnums=k, engine=engine)(*arrays)
            np.testing.assert_allclose(got, want, rtol=TOL, atol=TOL, err_msg=f"operand {k}, {engine}")


A = np.arange(25.0).reshape(5, 5)
B = np.arange(5.0)
C = np.arange(6.0).reshape(2, 3)
T = np.arange(60.0).reshape(3, 4, 5)
U = np.arange(24.0).reshape(4, 3, 2)

# numpy's documentation examples of np.einsum (numpy.org, numpy.einsum), string and operand-list forms
DOC_EXAMPLES = [
    ("ii", (A,)),
    ((A, [0, 0]), None),
    ("ii->i", (A,)),
    ((A, [0, 0], [0]), None),
    ("ij->i", (A,)),
    ((A, [0, 1], [0]), None),
    ("...j->...", (A,)),
    ("ji", (C,)),
    ("ij->ji", (C,)),
    ((C, [1, 0]), None),
    ("ij,j", (A, B)),
    ((A, [0, 1], B, [1]), None),
    ("...j,j", (A, B)),
    ("i,i", (B, B)),
    ((B, [0], B, [0]), None),
    ("i,j", (np.arange(2.0) + 1, B)),
    ((np.arange(2.0) + 1, [0], B, [1], [0, 1]), None),
    ("..., ...", (np.array(3.0), C)),
    (",ij", (np.array(3.0), C)),
    ((np.array(3.0), [Ellipsis], C, [Ellipsis]), None),
    ("ijk,jil->kl", (T, U)),
    ((T, [0, 1, 2], U, [1, 0, 3], [2, 3]), None),
    ("ki,jk->ij", (np.arange(6.0).reshape(3, 2), np.arange(12.0).reshape(4, 3))),
    ("ki,...k->i...", (np.arange(6.0).reshape(3, 2), np.arange(12.0).reshape(4, 3))),
    ("k...,jk", (np.arange(6.0).reshape(3, 2), np.arange(12.0).reshape(4, 3))),
]


def _spec(example):
    first, arrays = example
    if arrays is None:  # operand-list form: operands at even positions, an optional output list last
        operands = list(first[0 : 2 * (len(first) // 2) : 2])
        return (lambda *xs: np.einsum(*_interleave(first, xs))), operands
    return (lambda *xs: np.einsum(first, *xs)), list(arrays)


def _interleave(form, operands):
    out = list(form)
    for i, x in enumerate(operands):
        out[2 * i] = x
    return out


@pytest.mark.parametrize("example", DOC_EXAMPLES, ids=lambda e: str(e[0]) if isinstance(e[0], str) else "lists")
def test_numpy_documentation_examples(example):
    """Values equal np.einsum's on the documentation's integer-valued arrays (exactly: the same
    sums of products of small integers), and Jacobians equal central differences at random points."""
    call, operands = _spec(example)
    want = call(*operands)
    seen = []

    def traced(*xs):
        value = call(*xs)
        seen.append(ad.primal(value))
        return np.sum(value)

    ad.grad(traced, argnums=tuple(range(len(operands))))(*operands)
    np.testing.assert_array_equal(seen[0], want)
    rng = np.random.default_rng(len(str(example[0])))
    check_jacobians(call, [rng.uniform(-1, 1, size=np.shape(x)) for x in operands])


def test_optimize_is_accepted_and_ignored():
    x, y = np.random.default_rng(0).uniform(-1, 1, size=(2, 3, 3))
    for optimize in (True, "greedy", "optimal", False):
        got = ad.grad(lambda a: np.einsum("ij,jk,kl->", a, y, a, optimize=optimize))(x)
        want = fd_jacobian(lambda a: np.einsum("ij,jk,kl->", a, y, a), [x], 0)
        np.testing.assert_allclose(got, want, rtol=TOL, atol=TOL)


def test_broadcast_batch_axes_of_size_one():
    """'...' and named axes of size 1 broadcast as in numpy; their cotangents are summed back."""
    rng = np.random.default_rng(1)
    check_jacobians(
        lambda a, b: np.einsum("...ij,...jk->...ik", a, b), [rng.normal(size=(2, 1, 2, 3)), rng.normal(size=(3, 3, 2))]
    )
    check_jacobians(lambda a, b: np.einsum("ij,ij->i", a, b), [rng.normal(size=(1, 3)), rng.normal(size=(4, 3))])


def test_traces_and_diagonals_of_higher_order():
    """Repeated labels: a generalized diagonal 'iij->ij', a double trace 'ijij->', a diagonal
    against another operand 'ii,i->i'."""
    rng = np.random.default_rng(2)
    check_jacobians(lambda a: np.einsum("iij->ij", a), [rng.normal(size=(3, 3, 2))])
    check_jacobians(lambda a: np.einsum("ijij->", a), [rng.normal(size=(2, 3, 2, 3))])
    check_jacobians(lambda a, b: np.einsum("ii,i->i", a, b), [rng.normal(size=(3, 3)), rng.normal(size=3)])
    check_jacobians(lambda a: np.einsum("ii,ij->j", a, a), [rng.normal(size=(3, 3))])


def test_jvp_and_vjp_are_einsums():
    """The derivative of an einsum is made of einsums (plus reshapes / broadcasts for summed-out
    labels): the traced gradient program contains no other arithmetic op."""
    y = np.random.default_rng(3).normal(size=(3, 4))
    f = lambda a: np.einsum("ij,jk->", a, y)  # noqa: E731
    for engine in ("reverse", "forward"):
        g = ad.trace(lambda a: ad.grad(f, engine=engine)(a), np.ones((2, 3)))
        names = {node.op.name for node in g.nodes if node.op is not None}
        assert "einsum" in names
        assert names <= {"einsum", "broadcast_to", "reshape", "stack", "getitem", "add"}, names


def test_second_derivative_through_einsum():
    """The rule is made of registry ops, so a Hessian works: d^2/da^2 of a^T M a is M + M^T."""
    m = np.random.default_rng(4).normal(size=(3, 3))
    h = ad.hessian(lambda a: np.einsum("i,ij,j", a, m, a))(np.ones(3))
    np.testing.assert_allclose(h, m + m.T, rtol=1e-14, atol=1e-14)


@pytest.mark.parametrize(
    ("args", "fragment"),
    [
        (("ij,jk", np.ones((2, 3))), "name 2 operands"),
        (("ij->k", np.ones((2, 3))), "appear in no operand"),
        (("ij->ii", np.ones((2, 2))), "repeat a label"),
        (("ijk", np.ones((2, 3))), "name 3 axes"),
        (("i1", np.ones((2, 3))), "labels must be letters"),
        (("i->...", np.ones(2)), "in no operand"),
    ],
)
def test_bad_subscripts_are_named(args, fragment):
    with pytest.raises(ValueError, match=fragment):
        ad.grad(lambda a: np.sum(np.einsum(args[0], a)))(args[1])


@st.composite
def einsum_calls(draw):
    """A random valid einsum: 1-3 operands over labels 'abcd' (sizes 2-3), repeated labels
    allowed, an explicit or implicit output."""
    sizes = {c: draw(st.integers(2, 3)) for c in "abcd"}
    n_ops = draw(st.integers(1, 3))
    subs = [draw(st.text(alphabet="abcd", min_size=0, max_size=3)) for _ in range(n_ops)]
    used = sorted(set("".join(subs)))
    spec = ",".join(subs)
    if draw(st.booleans()):
        out = "".join(draw(st.permutations(used))[: draw(st.integers(0, len(used)))])
        spec += "->" + out
    seed = draw(st.integers(0, 2**31))
    rng = np.random.default_rng(seed)
    arrays = [rng.uniform(-1, 1, size=tuple(sizes[c] for c in s)) for s in subs]
    return spec, arrays


@given(einsum_calls())
def test_random_einsums_match_numpy_and_central_differences(call):
    spec, arrays = call
    f = lambda *xs: np.einsum(spec, *xs)  # noqa: E731
    seen = []
    ad.grad(lambda *xs: np.sum(seen.append(ad.primal(f(*xs))) or f(*xs)), argnums=tuple(range(len(arrays))))(*arrays)
    np.testing.assert_allclose(seen[0], f(*arrays), rtol=1e-14, atol=1e-14)  # same sums, maybe another order
    check_jacobians(f, arrays)


def test_all_52_letters_and_the_registry_op_sees_explicit_subscripts():
    """Upper- and lower-case labels both work (numpy's 52), and the normalisation makes '...'
    explicit with letters the call does not use."""
    from adkit.ops.einsum import normalize

    assert normalize("...ij,...jk", [(2, 3, 4), (4, 5)]) == (["aij", "jk"], "aik")
    assert normalize("...,...", [(), (2,)]) == (["", "a"], "a")
    assert normalize("Ab,bA", [(2, 3), (3, 2)]) == (["Ab", "bA"], "")
    x = np.random.default_rng(5).normal(size=(2, 2))
    check_jacobians(lambda a: np.einsum("Zz->zZ", a), [x])
    assert REGISTRY["einsum"].multilinear
    assert set(string.ascii_letters) >= set("".join(normalize("...i", [(2,) * 20])[0]))
