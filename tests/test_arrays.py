"""Arrays built from traced values and numpy's array vocabulary (issue 11, items 4, 7, 8).

Oracles, none of them adkit: the results printed in numpy's own documentation (values
copied from the docstrings of numpy 2.x), numpy itself on the same plain inputs, central
finite differences of the plain numpy function (tests/reference.py), and closed forms.
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from reference import central_diff

import adkit as ad
from adkit.errors import AdkitError

ENGINES = ad.ENGINES
TRACING = ("forward", "reverse")

# Central differences with h = 1e-6 on functions whose inputs are O(1): truncation
# h^2 |f'''| / 6 ~ 1e-12 and rounding eps |f| / h ~ 1e-10, so 1e-7 (relative and absolute)
# passes every right derivative with a 1000x margin and fails any wrong rule (O(1) errors).
# The numeric engine's own Richardson error (~1e-10 here) is inside the same bound.
RTOL_FD = ATOL_FD = 1e-7
# Values through tracers against numpy on the same inputs: the same float operations up
# to reassociation (a sum as a stack and a reduction, a lerp written as numpy writes it),
# so a few ulps; 1e-12 leaves a wide margin and is far below any indexing mistake.
RTOL_VALUE = 1e-12


def traced_value(f, *xs, engine="forward"):
    """f's value computed on traced inputs (the adapters run, not numpy's own functions)."""
    xs = tuple(np.asarray(x, dtype=float) for x in xs)
    if engine == "forward":
        return ad.jvp(f, xs, tuple(np.zeros_like(x) for x in xs))[0]
    return ad.vjp(f, *xs)[0]


def jacobian_fd(f, x):
    """Central-difference Jacobian of f at x, shape f(x).shape + x.shape."""
    out_shape = np.shape(f(x))
    rows = [central_diff(lambda z, k=k: np.asarray(f(z), dtype=float)[k], x) for k in np.ndindex(out_shape)]
    return np.reshape(np.stack(rows), out_shape + np.shape(x))


# --- numpy's documentation examples (values) --------------------------------------------------

M43 = [[1, 2, 3], [4, 5, 6], [7, 8, 9], [10, 11, 12]]
X33 = np.arange(9).reshape(3, 3)
X222 = np.arange(8).reshape(2, 2, 2)
X25 = np.arange(10).reshape(2, 5)
MED = [[10, 7, 4], [3, 2, 1]]
DOC_EXAMPLES = {
    "tril": (lambda a: np.tril(a, -1), M43, [[0, 0, 0], [4, 0, 0], [7, 8, 0], [10, 11, 12]]),
    "triu": (lambda a: np.triu(a, -1), M43, [[1, 2, 3], [4, 5, 6], [0, 8, 9], [0, 0, 12]]),
    "diag": (np.diag, X33, [0, 4, 8]),
    "diag k=1": (lambda a: np.diag(a, k=1), X33, [1, 5]),
    "diag k=-1": (lambda a: np.diag(a, k=-1), X33, [3, 7]),
    "diag of diag": (lambda a: np.diag(np.diag(a)), X33, [[0, 0, 0], [0, 4, 0], [0, 0, 8]]),
    "diagflat": (np.diagflat, [[1, 2], [3, 4]], np.diag([1, 2, 3, 4])),
    "diagflat k=1": (lambda a: np.diagflat(a, 1), [1, 2], [[0, 1, 0], [0, 0, 2], [0, 0, 0]]),
    "trace eye": (np.trace, np.eye(3), 3.0),
    "trace 3-d": (np.trace, X222, [6, 8]),
    "trace 4-d shape": (lambda a: np.shape(np.trace(a)), np.arange(24).reshape(2, 2, 2, 3), (2, 3)),
    "roll 2": (lambda a: np.roll(a, 2), np.arange(10), [8, 9, 0, 1, 2, 3, 4, 5, 6, 7]),
    "roll -2": (lambda a: np.roll(a, -2), np.arange(10), [2, 3, 4, 5, 6, 7, 8, 9, 0, 1]),
    "roll 2-d": (lambda a: np.roll(a, 1), X25, [[9, 0, 1, 2, 3], [4, 5, 6, 7, 8]]),
    "roll axis 0": (lambda a: np.roll(a, 1, axis=0), X25, [[5, 6, 7, 8, 9], [0, 1, 2, 3, 4]]),
    "roll tuple": (lambda a: np.roll(a, (1, 1), axis=(1, 0)), X25, [[9, 5, 6, 7, 8], [4, 0, 1, 2, 3]]),
    "flip": (np.flip, X222, [[[7, 6], [5, 4]], [[3, 2], [1, 0]]]),
    "flip 0": (lambda a: np.flip(a, 0), X222, [[[4, 5], [6, 7]], [[0, 1], [2, 3]]]),
    "flip 1": (lambda a: np.flip(a, 1), X222, [[[2, 3], [0, 1]], [[6, 7], [4, 5]]]),
    "fliplr": (np.fliplr, np.diag([1.0, 2.0, 3.0]), [[0, 0, 1], [0, 2, 0], [3, 0, 0]]),
    "flipud": (np.flipud, np.diag([1.0, 2.0, 3.0]), [[0, 0, 3], [0, 2, 0], [1, 0, 0]]),
    "rot90": (np.rot90, [[1, 2], [3, 4]], [[2, 4], [1, 3]]),
    "rot90 k=2": (lambda a: np.rot90(a, 2), [[1, 2], [3, 4]], [[4, 3], [2, 1]]),
    "rot90 axes": (lambda a: np.rot90(a, 1, (1, 2)), X222, [[[1, 3], [0, 2]], [[5, 7], [4, 6]]]),
    "pad constant": (
        lambda a: np.pad(a, (2, 3), "constant", constant_values=(4, 6)),
        [1, 2, 3, 4, 5],
        [4, 4, 1, 2, 3, 4, 5, 6, 6, 6],
    ),
    "pad edge": (lambda a: np.pad(a, (2, 3), "edge"), [1, 2, 3, 4, 5], [1, 1, 1, 2, 3, 4, 5, 5, 5, 5]),
    "pad reflect": (lambda a: np.pad(a, (2, 3), "reflect"), [1, 2, 3, 4, 5], [3, 2, 1, 2, 3, 4, 5, 4, 3, 2]),
    "pad symmetric": (lambda a: np.pad(a, (2, 3), "symmetric"), [1, 2, 3, 4, 5], [2, 1, 1, 2, 3, 4, 5, 5, 4, 3]),
    "pad wrap": (lambda a: np.pad(a, (2, 3), "wrap"), [1, 2, 3, 4, 5], [4, 5, 1, 2, 3, 4, 5, 1, 2, 3]),
    "pad 2-d": (
        lambda a: np.pad(a, ((1,), (2,))),
        [[1, 2], [3, 4]],
        [[0, 0, 0, 0, 0, 0], [0, 0, 1, 2, 0, 0], [0, 0, 3, 4, 0, 0], [0, 0, 0, 0, 0, 0]],
    ),
    "kron": (lambda a: np.kron(a, [5, 6, 7]), [1, 10, 100], [5, 6, 7, 50, 60, 70, 500, 600, 700]),
    "kron swapped": (lambda a: np.kron([5, 6, 7], a), [1, 10, 100], [5, 50, 500, 6, 60, 600, 7, 70, 700]),
    "kron eye": (
        lambda a: np.kron(a, np.ones((2, 2))),
        np.eye(2),
        [[1, 1, 0, 0], [1, 1, 0, 0], [0, 0, 1, 1], [0, 0, 1, 1]],
    ),
    "cross": (lambda a: np.cross(a, [4, 5, 6]), [1, 2, 3], [-3, 6, -3]),
    "cross rows": (lambda a: np.cross(a, a[::-1]), [[1, 2, 3], [4, 5, 6]], [[-3, 6, -3], [3, -6, 3]]),
    "cross axisc": (
        lambda a: np.cross(a, a[::-1], axisc=0),
        [[1, 2, 3], [4, 5, 6]],
        [[-3, 3], [6, -6], [-3, 3]],
    ),
    "outer": (lambda a: np.outer(np.ones(3), a), [-2.0, 0.0, 2.0], [[-2, 0, 2]] * 3),
    "moveaxis": (lambda a: np.shape(np.moveaxis(a, 0, -1)), np.zeros((3, 4, 5)), (4, 5, 3)),
    "moveaxis lists": (lambda a: np.shape(np.moveaxis(a, [0, 1], [-1, -2])), np.zeros((3, 4, 5)), (5, 4, 3)),
    "rollaxis": (lambda a: np.shape(np.rollaxis(a, 3, 1)), np.ones((3, 4, 5, 6)), (3, 6, 4, 5)),
    "rollaxis 2": (lambda a: np.shape(np.rollaxis(a, 2)), np.ones((3, 4, 5, 6)), (5, 3, 4, 6)),
    "rollaxis to end": (lambda a: np.shape(np.rollaxis(a, 1, 4)), np.ones((3, 4, 5, 6)), (3, 5, 6, 4)),
    "expand_dims": (lambda a: np.shape(np.expand_dims(a, axis=(0, 1))), [1, 2], (1, 1, 2)),
    "atleast_3d 0-d": (lambda a: np.shape(np.atleast_3d(a)), 3.0, (1, 1, 1)),
    "atleast_3d 1-d": (lambda a: np.shape(np.atleast_3d(a)), np.arange(3), (1, 3, 1)),
    "atleast_3d 2-d": (lambda a: np.shape(np.atleast_3d(a)), np.ones((4, 3)), (4, 3, 1)),
    "broadcast_to": (lambda a: np.broadcast_to(a, (3, 3)), [1, 2, 3], [[1, 2, 3]] * 3),
    "select": (lambda a: np.select([a < 3, a > 3], [a, a**2], 42), np.arange(6), [0, 1, 2, 42, 16, 25]),
    "nansum": (np.nansum, [1, np.nan], 1.0),
    "nansum axis": (lambda a: np.nansum(a, axis=0), [[1, 1], [1, np.nan]], [2, 1]),
    "nanmean": (np.nanmean, [[1, np.nan], [3, 4]], 8.0 / 3.0),
    "nanmean axis 1": (lambda a: np.nanmean(a, axis=1), [[1, np.nan], [3, 4]], [1, 3.5]),
    "nanmax": (np.nanmax, [[1, 2], [3, np.nan]], 3.0),
    "nanmax axis 0": (lambda a: np.nanmax(a, axis=0), [[1, 2], [3, np.nan]], [3, 2]),
    "nanmin axis 1": (lambda a: np.nanmin(a, axis=1), [[1, 2], [3, np.nan]], [1, 3]),
    "cumsum axis 0": (lambda a: np.cumsum(a, axis=0), [[1, 2, 3], [4, 5, 6]], [[1, 2, 3], [5, 7, 9]]),
    "cumsum axis 1": (lambda a: np.cumsum(a, axis=1), [[1, 2, 3], [4, 5, 6]], [[1, 3, 6], [4, 9, 15]]),
    "cumsum reversed": (lambda a: np.cumsum(a[::-1])[::-1], [1, 2, 3], [6, 5, 3]),
    "median": (np.median, MED, 3.5),
    "median axis 0": (lambda a: np.median(a, axis=0), MED, [6.5, 4.5, 2.5]),
    "median axis 1": (lambda a: np.median(a, axis=1), MED, [7, 2]),
    "percentile": (lambda a: np.percentile(a, 50), MED, 3.5),
    "percentile axis 0": (lambda a: np.percentile(a, 50, axis=0), MED, [6.5, 4.5, 2.5]),
    "percentile keepdims": (lambda a: np.percentile(a, 50, axis=1, keepdims=True), MED, [[7], [2]]),
    "quantile": (lambda a: np.quantile(a, 0.5), MED, 3.5),
    "quantile axis 1": (lambda a: np.quantile(a, 0.5, axis=1), MED, [7, 2]),
    "interp": (lambda fp: np.interp(2.5, [1, 2, 3], fp), [3, 2, 0], 1.0),
    "interp many": (
        lambda fp: np.interp([0, 1, 1.5, 2.72, 3.14], [1, 2, 3], fp),
        [3, 2, 0],
        [3, 3, 2.5, 0.56, 0],
    ),
    "interp right": (lambda fp: np.interp(3.14, [1, 2, 3], fp, right=-99.0), [3, 2, 0], -99.0),
    "add.reduce": (np.add.reduce, [1, 2, 3], 6),
    "add.reduce axis 0": (lambda a: np.add.reduce(a, 0), X222, [[4, 6], [8, 10]]),
    "add.reduce axis 1": (lambda a: np.add.reduce(a, 1), X222, [[2, 4], [10, 12]]),
    "add.reduce axis 2": (lambda a: np.add.reduce(a, 2), X222, [[1, 5], [9, 13]]),
    "add.accumulate": (np.add.accumulate, [2, 3, 5], [2, 5, 10]),
    "multiply.accumulate": (np.multiply.accumulate, [2, 3, 5], [2, 6, 30]),
    "add.accumulate axis 1": (lambda a: np.add.accumulate(a, axis=1), np.eye(2), [[1, 1], [0, 1]]),
    "multiply.outer": (lambda a: np.multiply.outer(a, [4, 5, 6]), [1, 2, 3], [[4, 5, 6], [8, 10, 12], [12, 15, 18]]),
    "multiply.reduce": (np.multiply.reduce, [2, 3, 5], 30),
    "maximum.reduce": (np.maximum.reduce, [2, 7, 5], 7),
    "minimum.reduce axis": (lambda a: np.minimum.reduce(a, axis=1), MED, [4, 1]),
    "real imag conj": (lambda a: np.real(a) + 10 * np.imag(a) + np.conj(a), [1.0, -2.0], [2, -4]),
    "column_stack": (lambda a: np.column_stack((a, a + 1)), [1, 2, 3], [[1, 2], [2, 3], [3, 4]]),
    "dstack": (lambda a: np.dstack((a, a + 1)), [1, 2, 3], [[[1, 2], [2, 3], [3, 4]]]),
    "dstack columns": (lambda a: np.dstack((a, a + 1)), [[1], [2], [3]], [[[1, 2]], [[2, 3]], [[3, 4]]]),
    "hstack": (lambda a: np.hstack((a, a + 3)), [1, 2, 3], [1, 2, 3, 4, 5, 6]),
    "vstack": (lambda a: np.vstack((a, a + 3)), [1, 2, 3], [[1, 2, 3], [4, 5, 6]]),
    "append": (lambda a: np.append(a, [[4, 5, 6], [7, 8, 9]]), [1, 2, 3], np.arange(1, 10)),
    "append axis 0": (
        lambda a: np.append(a, [[7, 8, 9]], axis=0),
        [[1, 2, 3], [4, 5, 6]],
        np.arange(1, 10).reshape(3, 3),
    ),
    "hsplit": (lambda a: np.hsplit(a, 2)[1], np.arange(16.0).reshape(4, 4), [[2, 3], [6, 7], [10, 11], [14, 15]]),
    "vsplit": (lambda a: np.vsplit(a, 2)[0], np.arange(16.0).reshape(4, 4), [[0, 1, 2, 3], [4, 5, 6, 7]]),
    "dsplit": (
        lambda a: np.dsplit(a, 2)[1],
        np.arange(16.0).reshape(2, 2, 4),
        [[[2, 3], [6, 7]], [[10, 11], [14, 15]]],
    ),
    "r_": (lambda a: np.r_[a, 0, 0, a + 3], [1, 2, 3], [1, 2, 3, 0, 0, 4, 5, 6]),
    "c_": (lambda a: np.c_[a, a + 3], [1, 2, 3], [[1, 4], [2, 5], [3, 6]]),
    "array of entries": (lambda a: np.array([[a[0], a[1]], [a[2], 7.0]]), [1, 2, 3], [[1, 2], [3, 7]]),
    "average": (np.average, [1, 2, 3, 4], 2.5),
    "average weights": (lambda a: np.average(a, weights=np.arange(10, 0, -1)), np.arange(1, 11), 4.0),
    "average axis": (
        lambda a: np.average(a, axis=1, weights=[0.25, 0.75]),
        np.arange(6).reshape(3, 2),
        [0.75, 2.75, 4.75],
    ),
    "ptp": (np.ptp, [[4, 9, 2, 10], [6, 9, 7, 12]], 10),
    "ptp axis 1": (lambda a: np.ptp(a, axis=1), [[4, 9, 2, 10], [6, 9, 7, 12]], [8, 6]),
    "ptp axis 0": (lambda a: np.ptp(a, axis=0), [[4, 9, 2, 10], [6, 9, 7, 12]], [2, 0, 5, 2]),
    "linspace": (lambda a: np.linspace(a[0], a[1], num=5), [2, 3], [2, 2.25, 2.5, 2.75, 3]),
    "linspace open": (lambda a: np.linspace(a[0], a[1], num=5, endpoint=False), [2, 3], [2, 2.2, 2.4, 2.6, 2.8]),
    "linspace step": (lambda a: np.linspace(a[0], a[1], num=5, retstep=True)[1], [2, 3], 0.25),
    "polyval": (lambda p: np.polyval(p, 5), [3, 0, 1], 76),
    "trapezoid": (np.trapezoid, [1, 2, 3], 4.0),
    "trapezoid x": (lambda y: np.trapezoid(y, x=[4, 6, 8]), [1, 2, 3], 8.0),
    "trapezoid dx": (lambda y: np.trapezoid(y, dx=2), [1, 2, 3], 8.0),
    "gradient": (np.gradient, [1, 2, 4, 7, 11, 16], [1, 1.5, 2.5, 3.5, 4.5, 5]),
    "gradient spacing": (lambda f: np.gradient(f, 2), [1, 2, 4, 7, 11, 16], [0.5, 0.75, 1.25, 1.75, 2.25, 2.5]),
    "ediff1d": (np.ediff1d, [1, 2, 4, 7, 0], [1, 2, 3, -7]),
    "ediff1d ends": (
        lambda a: np.ediff1d(a, to_begin=-99, to_end=[88, 99]),
        [1, 2, 4, 7, 0],
        [-99, 1, 2, 3, -7, 88, 99],
    ),
    "cov": (lambda a: np.cov(a.T), [[0, 2], [1, 1], [2, 0]], [[1, -1], [-1, 1]]),
    "correlate": (lambda a: np.correlate(a, [0, 1, 0.5]), [1, 2, 3], [3.5]),
    "correlate same": (lambda a: np.correlate(a, [0, 1, 0.5], "same"), [1, 2, 3], [2, 3.5, 3]),
    "correlate full": (lambda a: np.correlate(a, [0, 1, 0.5], "full"), [1, 2, 3], [0.5, 2, 3.5, 3, 0]),
    "delete": (lambda a: np.delete(a, 1, 0), np.arange(1, 13).reshape(3, 4), [[1, 2, 3, 4], [9, 10, 11, 12]]),
    "resize": (lambda a: np.resize(a, (2, 3)), [[0, 1], [2, 3]], [[0, 1, 2], [3, 0, 1]]),
    "maximum.accumulate": (np.maximum.accumulate, [1, 3, 2, 5, 4], [1, 3, 3, 5, 5]),
    "meshgrid x": (lambda a: np.meshgrid(a, [0.0, 1.0])[0], [0, 0.5, 1], [[0, 0.5, 1], [0, 0.5, 1]]),
    "meshgrid y": (lambda a: np.meshgrid([0, 0.5, 1], a)[1], [0, 1], [[0, 0, 0], [1, 1, 1]]),
    "fmod": (lambda a: np.fmod(a, 2), [-3, -2, -1, 1, 2, 3], [-1, 0, -1, 1, 0, 1]),
    "fmod divisor": (lambda a: np.fmod([5, 3], a), [2, 2], [1, 1]),
    "ldexp": (lambda a: np.ldexp(a, np.arange(4)), [5, 5, 5, 5], [5, 10, 20, 40]),
    "nan_to_num": (
        np.nan_to_num,
        [np.inf, -np.inf, np.nan, -128, 128],
        [1.7976931348623157e308, -1.7976931348623157e308, 0, -128, 128],
    ),
    "nan_to_num values": (
        lambda a: np.nan_to_num(a, nan=-9999, posinf=33333333, neginf=33333333),
        [np.inf, -np.inf, np.nan, -128, 128],
        [33333333, 33333333, -9999, -128, 128],
    ),
    "real_if_close": (lambda a: np.real_if_close(a + 4e-14j), [2.1, 5.2], [2.1, 5.2]),
}


@pytest.mark.parametrize("engine", TRACING)
@pytest.mark.parametrize("name", list(DOC_EXAMPLES))
def test_numpy_documentation_examples(name, engine):
    f, x, expected = DOC_EXAMPLES[name]
    got = traced_value(f, x, engine=engine)
    if isinstance(expected, tuple):  # a shape
        assert tuple(got) == expected
    else:
        np.testing.assert_allclose(got, expected, rtol=RTOL_VALUE)
        assert np.shape(got) == np.shape(expected)


# --- Jacobians against central differences, values against numpy ------------------------------

_rng = np.random.default_rng(11)
A = _rng.normal(size=(4, 4))
V = _rng.normal(size=5)
B = _rng.normal(size=(2, 3, 4))
XP = np.array([-1.0, 0.0, 1.5, 2.0])

CASES = {
    "tril": (lambda a: np.tril(a, -1), A),
    "triu": (lambda a: np.triu(a, 1), A),
    "tril of a vector": (np.tril, V),
    "diag of a matrix": (lambda a: np.diag(a, 1), A),
    "diag of a vector": (lambda a: np.diag(a, -2), V),
    "diagflat": (lambda a: np.diagflat(a[:2, :2], 1), A),
    "diagonal axes": (lambda a: np.diagonal(a, 1, 2, 0), B),
    "trace offset": (lambda a: np.trace(a, -1), A),
    "trace axes": (lambda a: np.trace(a, 1, 0, 2), B),
    "fmod": (lambda a: np.fmod(3.0 * a, a[::-1] + 2.5), A),
    "ldexp": (lambda a: np.ldexp(a, [[1, -2, 0, 3]]), A),
    "nan_to_num": (lambda a: np.nan_to_num(np.exp(a)), np.array([1000.0, 0.5, 2.0])),  # exp(1000 +- h) = inf
    "roll": (lambda a: np.roll(a, 3), A),
    "roll axes": (lambda a: np.roll(a, (1, -2), axis=(0, 1)), A),
    "flip": (np.flip, B),
    "fliplr": (np.fliplr, A),
    "flipud": (np.flipud, A),
    "rot90": (np.rot90, A),
    "rot90 k=3 axes": (lambda a: np.rot90(a, 3, axes=(1, 2)), B),
    "pad constant": (lambda a: np.pad(a, ((1, 2), (0, 1)), constant_values=(3.0, 4.0)), A),
    "pad edge": (lambda a: np.pad(a, 2, mode="edge"), A),
    "pad reflect": (lambda a: np.pad(a, (1, 3), mode="reflect"), V),
    "pad symmetric": (lambda a: np.pad(a, (3, 2), mode="symmetric"), V),
    "pad wrap": (lambda a: np.pad(a, ((1, 1), (2, 0)), mode="wrap"), A),
    "kron": (lambda a: np.kron(a[:2, :3], a[1:, 1:]), A),
    "kron vectors": (lambda a: np.kron(a, a[:2]), V),
    "cross": (lambda a: np.cross(a[:3], a[2:]), V),
    "cross rows": (lambda a: np.cross(a[:, :3], a[:, 1:]), A),
    "cross axis": (lambda a: np.cross(a[:3, :2], a[1:, 2:], axis=0), A),
    "outer": (lambda a: np.outer(a, a[:2]), V),
    "moveaxis": (lambda a: np.moveaxis(a, [0, 1], [-1, 0]), B),
    "rollaxis": (lambda a: np.rollaxis(a, 2, 1), B),
    "atleast_3d": (np.atleast_3d, A),
    "select": (lambda a: np.select([a < -0.5, a > 0.5], [a**2, 2 * a], default=-a), V),
    "nansum": (lambda a: np.nansum(np.where(a > 1.0, np.nan, a) * a, axis=0), A),
    "nanmean": (lambda a: np.nanmean(np.where(a > 1.0, np.nan, a) * a, axis=1), A),
    "nanmax": (lambda a: np.nanmax(np.where(a > 1.0, np.nan, a) * a), A),
    "nanmin": (lambda a: np.nanmin(np.where(a > 1.0, np.nan, a) * a, axis=0), A),
    "cumsum axis": (lambda a: np.cumsum(a, axis=0), B),
    "cumsum reversed": (lambda a: np.cumsum(a[::-1])[::-1], V),
    "median odd": (np.median, V),
    "median even": (lambda a: np.median(a[:4]), V),
    "median axis": (lambda a: np.median(a, axis=1, keepdims=True), A),
    "percentile": (lambda a: np.percentile(a, [10, 50, 90]), V),
    "quantile axis": (lambda a: np.quantile(a, [0.3, 0.8], axis=0), A),
    "quantile midpoint": (lambda a: np.quantile(a, [0.2, 0.7], method="midpoint"), A),
    "quantile nearest": (lambda a: np.quantile(a, 0.4, method="nearest"), A),
    "quantile lower higher": (lambda a: np.quantile(a, 0.4, method="lower") + np.quantile(a, 0.4, method="higher"), A),
    "interp in fp": (lambda a: np.interp([-3.0, 0.1, 1.7, 2.0, 9.0], XP, a[:4]), V),
    "interp in x": (lambda a: np.interp(a, XP, [1.0, 2.0, -1.0, 0.5]), V),
    "interp in xp": (lambda a: np.interp([0.3, 1.2], np.sort(a), [1.0, 2.0, -1.0, 0.5, 3.0]), V),
    "add.reduce": (np.add.reduce, A),
    "add.accumulate": (lambda a: np.add.accumulate(a, axis=1), A),
    "multiply.reduce": (lambda a: np.multiply.reduce(a, axis=1), A),
    "multiply.accumulate": (np.multiply.accumulate, V),
    "maximum.reduce": (np.maximum.reduce, A),
    "add.outer": (lambda a: np.add.outer(a, a[:2]), V),
    "column_stack": (lambda a: np.column_stack([a, a**2]), V),
    "dstack": (lambda a: np.dstack([a, a**2]), A),
    "hstack": (lambda a: np.hstack([a, a[1:] ** 2]), V),
    "vstack": (lambda a: np.vstack([a, a**2]), V),
    "append": (lambda a: np.append(a, a[:2, :2] ** 2), A),
    "append axis": (lambda a: np.append(a, a[:1] ** 2, axis=0), A),
    "hsplit": (lambda a: np.hsplit(a, 2)[1] ** 2, A),
    "vsplit": (lambda a: np.vsplit(a, [1, 3])[1] ** 2, A),
    "dsplit": (lambda a: np.dsplit(a, 2)[0] ** 2, B),
    "r_": (lambda a: np.r_[a, a[:2] ** 2, 3.0], V),
    "c_": (lambda a: np.c_[a, a**2], V),
    "array of entries": (lambda a: np.array([[a[0], a[1] * a[2]], [2.0, np.sin(a[3])]]), V),
    "array of rows": (lambda a: np.array([a, 2.0 * a, np.ones(5)]), V),
    "asarray of a list": (lambda a: np.asarray([a[0] ** 2, 1.0, a[1]]) * a[2], V),
    "mean and std of a list": (lambda a: np.array([np.mean([a[0], a[1], a[2]]), np.std([a[0], 2.0 * a[1]])]), V),
    "sum of a list": (lambda a: np.sum([a[0], a[1] * a[2], 1.0]), V),
    "take_along_axis": (lambda a: np.take_along_axis(a, np.array([[2, 0, 1, 1]]), 0), A),
    "average weighted": (lambda a: np.average(a, axis=0, weights=a[:, 0] ** 2), A),
    "average returned": (lambda a: np.stack(np.average(a, axis=1, weights=[1.0, 2.0, 3.0, 4.0], returned=True)), A),
    "ptp": (lambda a: np.ptp(a, axis=1), A),
    "linspace": (lambda a: np.linspace(a[0], a[1], 4), V),
    "linspace arrays": (lambda a: np.linspace(a[:2], a[2:4], 3, endpoint=False, axis=1), V),
    "logspace": (lambda a: np.logspace(a[0], a[1], 4), V),
    "polyval": (lambda a: np.polyval(a[:3], a[3:]), V),
    "trapezoid": (lambda a: np.trapezoid(a, x=np.sort(a[:, 0]), axis=0), A),
    "meshgrid": (lambda a: np.stack(np.meshgrid(a[:2], a[2:])), V),
    "nanvar": (lambda a: np.nanvar(np.where(a > 1.0, np.nan, a) * a, axis=0, ddof=1), A),
    "nanstd": (lambda a: np.nanstd(np.where(a > 1.0, np.nan, a) * a), A),
    "nanmedian": (lambda a: np.nanmedian(np.where(a > 1.0, np.nan, a) * a), A),
    "nancumsum": (lambda a: np.nancumsum(np.where(a > 1.0, np.nan, a) * a, axis=1), A),
    "maximum.accumulate": (np.maximum.accumulate, V),
    "minimum.accumulate": (lambda a: np.minimum.accumulate(a, axis=1), A),
    "ediff1d": (lambda a: np.ediff1d(a, to_begin=a[0] ** 2), A),
    "resize": (lambda a: np.resize(a, (3, 4)), V),
    "partition": (lambda a: np.partition(a, 2, axis=1), A),
    "cumulative_sum": (lambda a: np.cumulative_sum(a, axis=0, include_initial=True), A),
    "matrix_transpose": (np.matrix_transpose, B),
    "vecdot": (lambda a: np.vecdot(a, a[::-1]), A),
    "cov": (np.cov, A),
    "cov two": (lambda a: np.cov(a[0], a[1] ** 2, bias=True), A),
    "corrcoef": (np.corrcoef, A),
    "correlate": (lambda a: np.correlate(a, a[:3] ** 2, mode="full"), V),
    "gradient": (np.gradient, V),
    "gradient 2-d": (lambda a: np.stack(np.gradient(a, 0.5, 2.0, edge_order=2)), A),
    "block": (lambda a: np.block([[a[:2, :2], np.ones((2, 1))], [a[2:, :1] ** 2, a[2:, 1:3]]]), A),
    "delete": (lambda a: np.delete(a, [0, 2], axis=1), A),
    "insert": (lambda a: np.insert(a, [1, 3], a[:2] ** 2), V),
    "extract": (lambda a: np.extract(a > 0, a), A),
    "unique": (np.unique, A),
    "unwrap": (lambda a: np.unwrap(4 * a), V),
    "flat": (lambda a: a.flat[3] * a.flat[-1], V),
}


@pytest.mark.parametrize("engine", TRACING)
@pytest.mark.parametrize("name", list(CASES))
def test_jacobian_matches_central_differences(name, engine):
    f, x = CASES[name]
    with np.errstate(invalid="ignore"):
        want = f(x)
        np.testing.assert_allclose(traced_value(f, x, engine=engine), want, rtol=RTOL_VALUE, atol=1e-15)
        expected = jacobian_fd(f, x)
    got = ad.jacobian(f, engine=engine)(x)
    assert got.shape == np.shape(want) + x.shape
    np.testing.assert_allclose(got, expected, rtol=RTOL_FD, atol=ATOL_FD)


def test_order_statistics_with_nan_are_nan_like_numpy():
    x = np.array([[1.0, np.nan, 3.0], [0.5, 2.0, -1.0]])
    for f in (np.median, lambda a: np.quantile(a, 0.3, axis=1), lambda a: np.percentile(a, [20, 60], axis=1)):
        np.testing.assert_array_equal(traced_value(f, x), f(x))  # NaN where numpy has NaN
    for f in (np.nanmedian, lambda a: np.nanpercentile(a, 30), lambda a: np.nanmedian(a[1], 0)):
        np.testing.assert_allclose(traced_value(f, x), f(x), rtol=RTOL_VALUE)


@pytest.mark.parametrize("engine", [e for e in ENGINES if e != "numeric"])
def test_interp_at_knots_follows_the_kink_policy(engine):
    xp, fp = [0.0, 1.0, 2.0, 3.0], [0.0, 2.0, 1.0, 4.0]  # slopes 2, -1, 3

    def at(x):
        return ad.grad(lambda t: np.interp(t, xp, fp), engine=engine)(x)

    # a knot between slopes of opposite signs is a local extremum: derivative 0
    assert at(1.0) == 0.0 and at(2.0) == 0.0
    # between knots, the slope of the interval (closed form)
    assert at(0.5) == pytest.approx(2.0, rel=RTOL_FD) and at(2.5) == pytest.approx(3.0, rel=RTOL_FD)
    # outside the knots the value is constant (fp[0] or fp[-1])
    assert at(-1.0) == 0.0 and at(4.0) == 0.0


def test_numeric_engine_at_an_interp_knot_averages_the_slopes():
    # finite differences of numpy's own np.interp see (2 + (-1)) / 2 at the kink: the
    # numeric engine is an oracle of the function, not of the kink policy
    g = ad.grad(lambda t: np.interp(t, [0.0, 1.0, 2.0], [0.0, 2.0, 1.0]), engine="numeric")(1.0)
    assert g == pytest.approx(0.5, rel=1e-6)  # 1e-6: Richardson's error at a kink is ~1e-12


def test_interp_at_a_monotone_knot_takes_the_right_slope():
    # slopes 1 and 3 on either side of x = 1: the interval to the right (documented choice)
    assert ad.grad(lambda t: np.interp(t, [0.0, 1.0, 2.0], [0.0, 1.0, 4.0]))(1.0) == pytest.approx(3.0)


def test_traced_quantile_level_is_refused():
    # the derivative with respect to q is not implemented: refused, never silently 0
    with pytest.raises(AdkitError, match="traced q"):
        ad.grad(lambda q: np.quantile(np.array([1.0, 3.0, 2.0]), q))(0.3)


# a sample through all five engines: the gradient of a scalar made from each function
FIVE_ENGINE_SAMPLE = [
    "tril",
    "diag of a vector",
    "trace axes",
    "roll axes",
    "rot90",
    "pad reflect",
    "kron vectors",
    "cross",
    "select",
    "nanmean",
    "median even",
    "percentile",
    "interp in fp",
    "interp in x",
    "add.accumulate",
    "column_stack",
    "dstack",
    "r_",
    "array of entries",
    "mean and std of a list",
    "average weighted",
    "linspace",
    "polyval",
    "gradient",
    "cov",
    "block",
    "insert",
]


@pytest.mark.parametrize("engine", ENGINES)
@pytest.mark.parametrize("name", FIVE_ENGINE_SAMPLE)
def test_every_engine_differentiates_a_sample(name, engine):
    f, x = CASES[name]
    x = x[: min(len(x), 3)] if x.ndim == 3 else x  # keeps the symbolic engine's expressions small
    weights = np.cos(np.arange(np.size(f(x)))).reshape(np.shape(f(x)))

    def loss(z):  # arithmetic only: f may return an object array holding plain floats too
        y = f(z)
        return np.sum(weights * y + y * y * y)

    with np.errstate(invalid="ignore"):
        expected = central_diff(loss, x)
    np.testing.assert_allclose(ad.grad(loss, engine=engine)(x), expected, rtol=RTOL_FD, atol=ATOL_FD)


# --- item 4: arrays built from traced values, in every engine --------------------------------


@pytest.mark.parametrize("engine", ENGINES)
def test_np_array_of_traced_scalars(engine):
    def f(x, y):
        a = np.array([[x, y], [x * y, 2.0]])  # a mix of traced scalars and a float
        return np.sum(a @ np.array([x, 1.0]))

    # f = x^2 + y + x^2 y + 2, so df/dx = 2x + 2xy and df/dy = 1 + x^2 (closed form)
    x, y = 1.5, -0.5
    gx, gy = ad.grad(f, argnums=(0, 1), engine=engine)(x, y)
    assert gx == pytest.approx(2 * x + 2 * x * y, rel=RTOL_FD) and gy == pytest.approx(1 + x * x, rel=RTOL_FD)


@pytest.mark.parametrize("engine", ENGINES)
def test_lists_of_traced_values_and_their_statistics(engine):
    def f(x):
        values = [x[0], x[1] ** 2, x[2], 1.0]
        return np.mean(values) + np.std(values) + np.sum(values) * np.var(np.asarray(values))

    x = np.array([0.3, -1.2, 0.8])
    np.testing.assert_allclose(ad.grad(f, engine=engine)(x), central_diff(f, x), rtol=RTOL_FD, atol=ATOL_FD)


@pytest.mark.parametrize("engine", ENGINES)
def test_np_array_mixing_floats_traced_scalars_and_traced_arrays(engine):
    def f(x, s):
        a = np.array([x, [s, 1.0, s * s]])  # a traced row and a row built from pieces
        return np.sum(np.cos(a[0]) * a[1]) + np.prod(np.asarray(a)[:, 0])

    x, s = np.array([0.2, 0.4, -0.6]), 0.7
    gx, gs = ad.grad(f, argnums=(0, 1), engine=engine)(x, s)
    np.testing.assert_allclose(gx, central_diff(lambda z: f(z, s), x), rtol=RTOL_FD, atol=ATOL_FD)
    assert gs == pytest.approx(central_diff(lambda t: f(x, t), s), rel=RTOL_FD, abs=ATOL_FD)


@pytest.mark.parametrize("engine", ENGINES)
def test_function_returning_np_array_of_traced_values(engine):
    # the output itself is an object array: jacobian and grad stack it
    def f(x):
        return np.array([x[0] ** 2, x[0] * x[1], 3.0])

    x = np.array([1.5, -2.0])
    if engine in TRACING:
        np.testing.assert_allclose(
            ad.jacobian(f, engine=engine)(x), [[3.0, 0.0], [-2.0, 1.5], [0.0, 0.0]], rtol=RTOL_VALUE
        )
    g = ad.grad(lambda z: np.dot(f(z), [1.0, 2.0, 3.0]), engine=engine)(x)
    np.testing.assert_allclose(g, [3.0 - 4.0, 3.0], rtol=RTOL_FD)


def test_hessian_through_np_array():
    # (2,) + (1, 1) broadcasts to (1, 2): f = x0^2 x1 + x1^3 + 2 (x0 x1)^2, so
    # H = [[2 x1 + 4 x1^2, 2 x0 + 8 x0 x1], [2 x0 + 8 x0 x1, 6 x1 + 4 x0^2]]
    def f(x):
        return np.sum(np.array([x[0] ** 2 * x[1], x[1] ** 3]) + np.array([[x[0] * x[1]]]) ** 2)

    x0, x1 = 1.5, -0.5
    want = [[2 * x1 + 4 * x1**2, 2 * x0 + 8 * x0 * x1], [2 * x0 + 8 * x0 * x1, 6 * x1 + 4 * x0**2]]
    np.testing.assert_allclose(ad.hessian(f)(np.array([x0, x1])), want, rtol=RTOL_VALUE)
    # nested grad: an inner np.array of the outer trace's values (levels kept apart)
    g = ad.grad(lambda x: x * ad.grad(lambda y: np.sum(np.array([x * y, y])))(2.0))(3.0)
    assert g == pytest.approx(7.0, rel=RTOL_VALUE)  # the inner grad is x + 1; d/dx [x (x + 1)] = 2x + 1


def test_escapes_from_np_array_still_refuse():
    def as_float(x):
        return float(np.array([x]))

    def float_array(x):
        return np.sum(np.array([x, x], dtype=float))

    def astype(x):
        return np.array([x, 1.0]).astype(float)

    # refused, never a number without its derivative (numpy reports the last one as a
    # ValueError: "setting an array element with a sequence")
    for f in (as_float, float_array, astype):
        with pytest.raises((TypeError, ValueError, AdkitError)):
            ad.grad(f)(1.0)


def test_jacobian_of_traced_entries_vs_jax(jax64):
    jax = jax64
    jnp = jax.numpy
    x = np.array([0.3, -0.7, 1.1])
    mine = ad.jacobian(lambda z: np.array([z[0] * z[1], np.sin(z[2]), z[0]]))(x)
    theirs = jax.jacobian(lambda z: jnp.array([z[0] * z[1], jnp.sin(z[2]), z[0]]))(x)
    np.testing.assert_allclose(mine, np.asarray(theirs), rtol=RTOL_VALUE)


# --- item 8: one-entry outputs and non-differentiable outputs -----------------------------------


@pytest.mark.parametrize("engine", ENGINES)
@pytest.mark.parametrize("shape", [(1,), (1, 1)])
def test_grad_of_a_one_entry_output_is_that_entry(engine, shape):
    def f(x):
        return np.reshape(np.sum(x**3), shape)

    x = np.array([1.0, -2.0])
    value, g = ad.value_and_grad(f, engine=engine)(x)
    np.testing.assert_allclose(g, 3 * x**2, rtol=RTOL_FD)
    assert np.shape(value) == shape and value[(0,) * len(shape)] == pytest.approx(-7.0)


@pytest.mark.parametrize("engine", ENGINES)
def test_grad_of_more_entries_still_refuses(engine):
    with pytest.raises(TypeError, match="jacobian"):
        ad.grad(lambda x: x * 2.0, engine=engine)(np.ones(2))


@pytest.mark.parametrize("engine", ENGINES)
@pytest.mark.parametrize(
    "f",
    [
        lambda x: x[0] > 0,
        lambda x: np.sum(x > 0),
        lambda x: np.argmax(x),
        lambda x: np.count_nonzero(x > 0.5),
        lambda x: x[:1] < 0,
        lambda x: np.floor(x[1:2, None]).astype(int),
    ],
    ids=["bool", "int sum", "argmax", "count", "bool (1,)", "int (1, 1)"],
)
def test_bool_and_integer_outputs_have_zero_gradient(engine, f):
    # piecewise constant outputs: derivative 0 wherever it exists (autograd gives 0 too)
    x = np.array([1.0, -2.0, 0.7])
    value, g = ad.value_and_grad(f, engine=engine)(x)
    np.testing.assert_array_equal(value, f(x))
    assert np.shape(value) == np.shape(f(x))
    assert g.dtype == np.float64 and np.array_equal(g, np.zeros(3))


@pytest.mark.parametrize("engine", TRACING)
def test_jacobian_of_a_bool_array_is_zero(engine):
    x = np.array([1.0, -2.0])
    np.testing.assert_array_equal(ad.jacobian(lambda z: z > 0, engine=engine)(x), np.zeros((2, 2)))


# --- random parameters (hypothesis): values against numpy, Jacobians against differences ---------

SHAPES = st.sampled_from([(5,), (3, 4), (2, 3, 2)])


def _check_against_numpy(f, x):
    np.testing.assert_allclose(traced_value(f, x), f(x), rtol=RTOL_VALUE, atol=1e-15)
    np.testing.assert_allclose(ad.jacobian(f)(x), jacobian_fd(f, x), rtol=RTOL_FD, atol=ATOL_FD)


@settings(max_examples=15, deadline=None)
@given(
    shape=SHAPES,
    mode=st.sampled_from(["constant", "edge", "reflect", "symmetric", "wrap"]),
    widths=st.lists(st.tuples(st.integers(0, 3), st.integers(0, 3)), min_size=3, max_size=3),
    seed=st.integers(0, 2**16),
)
def test_pad_with_random_widths_and_modes(shape, mode, widths, seed):
    x = np.random.default_rng(seed).normal(size=shape)
    pad = widths[: len(shape)]
    if mode in ("reflect", "symmetric", "wrap"):
        pad = [(min(b, n - 1), min(a, n - 1)) for (b, a), n in zip(pad, shape)]  # one reflection at most
    kwargs = {"constant_values": 1.5} if mode == "constant" else {}
    _check_against_numpy(lambda a: np.pad(a, pad, mode=mode, **kwargs), x)


@settings(max_examples=15, deadline=None)
@given(shape=SHAPES, shift=st.integers(-7, 7), k=st.integers(-5, 5), seed=st.integers(0, 2**16), data=st.data())
def test_roll_rot90_diagonal_with_random_parameters(shape, shift, k, seed, data):
    x = np.random.default_rng(seed).normal(size=shape)
    axis = data.draw(st.integers(-len(shape), len(shape) - 1))
    _check_against_numpy(lambda a: np.roll(a, shift, axis=axis), x)
    if len(shape) >= 2:
        axes = data.draw(st.permutations(range(len(shape)))).__getitem__(slice(2))
        _check_against_numpy(lambda a: np.rot90(a, k, axes=tuple(axes)), x)
        offset = data.draw(st.integers(-2, 2))
        _check_against_numpy(lambda a: np.trace(a, offset, axes[0], axes[1]), x)


@settings(max_examples=15, deadline=None)
@given(
    shape=SHAPES,
    q=st.lists(st.floats(0.0, 1.0), min_size=1, max_size=3),
    method=st.sampled_from(["linear", "lower", "higher", "midpoint", "nearest"]),
    seed=st.integers(0, 2**16),
    data=st.data(),
)
def test_quantile_with_random_levels_methods_and_axes(shape, q, method, seed, data):
    x = np.random.default_rng(seed).normal(size=shape)  # distinct entries: no ties
    axis = data.draw(st.sampled_from([None, *range(len(shape))]))
    keepdims = data.draw(st.booleans())
    _check_against_numpy(lambda a: np.quantile(a, q, axis=axis, method=method, keepdims=keepdims), x)


@pytest.mark.parametrize("engine", ["reverse", "forward", "symbolic", "paths"])
def test_math_ufunc_on_an_object_array_with_plain_numbers_is_refused_with_the_fix(engine):
    """np.array([x, 1.0]) is an object array holding a plain float beside a traced value;
    numpy computes np.exp of it entry by entry with .exp() methods, which a float lacks.
    That is refused by name, with np.stack as the fix (and np.stack's gradient is right:
    d/da sum(exp([a0, 1, a1])) = exp(a))."""
    a = np.array([0.1, 0.2])
    with pytest.raises(ad.AdkitError, match=r"np\.exp met an object array.*np\.stack\(\[x, 1\.0\]\)") as info:
        ad.grad(lambda v: np.sum(np.exp(np.array([v[0], 1.0, v[1]]))), engine=engine)(a)
    assert isinstance(info.value, TypeError)  # what numpy raised, for existing except clauses
    got = ad.grad(lambda v: np.sum(np.exp(np.stack([v[0], 1.0, v[1]]))), engine=engine)(a)
    np.testing.assert_allclose(got, np.exp(a), rtol=1e-13)


@pytest.mark.parametrize("engine", ["reverse", "forward", "symbolic", "paths", "numeric"])
def test_integer_casts_of_traced_values_are_constants(engine):
    """x.astype(int), np.int64(x) and x.astype(bool) are piecewise constant in x: plain arrays
    (derivative 0), usable as indices (autograd's test_cast_to_int: W's last column, cast,
    picks rows of W). d/dW sum(W[idx]) counts how often each row is picked; the column that
    made idx gets nothing from the cast. The symbolic engine reads the mask as 1 / 0."""
    w = np.array([[0.5, 1.0, 2.7], [1.5, -2.0, 0.2], [0.3, 0.1, 1.9]])

    def picked(v):
        rows = v[:, -1].astype(np.int64)  # [2, 0, 1]
        also = np.int64(v[:, -1])
        return np.sum(v[rows, :-1]) + np.sum(v[also, :-1] * v[also, :-1].astype(bool))

    expected = np.zeros_like(w)
    expected[:, :-1] = 2.0  # every row picked once by each sum; the boolean mask is 1 (no entry is 0)
    # numeric differences of this piecewise-linear f are exact up to rounding of the steps
    np.testing.assert_allclose(ad.grad(picked, engine=engine)(w), expected, rtol=1e-9, atol=1e-9)
