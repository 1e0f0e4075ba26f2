"""Forward mode in chunks: ceil(n / chunk) passes of at most `chunk` tangent directions,
each consumed into the result before the next one runs, so the memory is one pass plus
the result (and not every pass at once); the answer does not depend on the chunk size.

Oracles: closed forms and central differences (round-off only for these polynomials and
sines at h = 1e-6: ~eps * |f| / h ~ 1e-9, tolerance 1e-7).
"""

import tracemalloc

import numpy as np
import pytest
from reference import central_jacobian

import adkit as ad

TOL = 1e-7


def test_peak_memory_is_one_pass_not_all_passes():
    """grad of sum(sin(x)) over n = 4,000 inputs in chunks of 256 (16 passes).

    One pass holds the seed tangents (chunk x n floats: 8.2 MB) and, while np.sin runs, its
    output tangent (the same size) plus the n-entry local derivative cos(x); everything
    else (the values, the result, the output tangent of the sum: n or chunk floats) is
    smaller by a factor chunk. So a pass peaks near 2 pass sizes; the bound allows 4, for
    an allocator's temporaries. Keeping all 16 passes, as adkit used to, costs 16 pass
    sizes at least (observed: 16.3 before the fix, 2.0 after)."""
    n, chunk = 4000, 256
    x = np.linspace(0.1, 1.0, n)

    def f(v):
        return np.sum(np.sin(v))

    ad.jacobian(f, engine="forward", chunk=4)(x[:8])  # first-call imports and caches outside the measure
    tracemalloc.start()
    try:
        g = ad.jacobian(f, engine="forward", chunk=chunk)(x)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    one_pass = chunk * n * x.itemsize
    np.testing.assert_allclose(g, np.cos(x), rtol=1e-13)  # closed form; a few ulps of rounding
    assert peak < 4 * one_pass + g.nbytes, f"peak {peak / one_pass:.1f} pass sizes"


@pytest.mark.parametrize("chunk", [1, 2, 3, 7, 1024])
def test_the_chunk_size_does_not_change_the_jacobian(chunk):
    # container inputs whose leaves straddle the chunk boundaries, container outputs
    params = {"a": np.array([0.3, -1.2, 0.7]), "b": np.array([[0.5, 2.0], [-0.4, 1.1]]), "c": 0.9}

    def f(p):
        u = np.sin(p["a"]) * p["c"] + np.sum(p["b"] ** 2)
        return {"u": u, "v": p["b"] @ p["a"][:2] * p["c"] ** 2}

    jac = ad.jacobian(f, engine="forward", chunk=chunk)(params)
    for out in ("u", "v"):
        for leaf in ("a", "b", "c"):

            def entry(x, out=out, leaf=leaf):
                return f({**params, leaf: x if leaf != "c" else float(x)})[out]

            want = central_jacobian(entry, params[leaf])
            assert np.shape(jac[out][leaf]) == want.shape, (out, leaf)
            np.testing.assert_allclose(jac[out][leaf], want, atol=TOL)


def test_strict_pass_is_redone_for_its_chunk_only():
    """np.where masks sqrt at 0 (local derivative inf, multiplied by a zero tangent):
    the chunk that meets it is redone in strict mode; the other chunks are unaffected.
    d/dx_i sum(where(x > 0, sqrt(x), 0)) = 1 / (2 sqrt(x_i)) for x_i > 0, else 0."""
    x = np.array([4.0, 0.0, 1.0, 9.0, 0.0, 0.25])

    def f(v):
        return np.sum(np.where(v > 0, np.sqrt(v), 0.0))

    want = np.where(x > 0, 0.5 / np.sqrt(np.where(x > 0, x, 1.0)), 0.0)
    for chunk in (1, 2, 4, 6):
        np.testing.assert_allclose(ad.grad(f, engine="forward")(x), want, rtol=1e-15)
        np.testing.assert_allclose(ad.jacobian(f, engine="forward", chunk=chunk)(x), want, rtol=1e-15)
