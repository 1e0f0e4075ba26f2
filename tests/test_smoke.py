import math

import numpy as np

import adkit as ad


def test_colah_example_both_engines():
    # SEEDS §1 [HAM]: e = (a + b)(b + 1) at a = 2, b = 1: de/da = 2, de/db = 5 (exact in floats)
    for engine in ("forward", "reverse"):
        assert ad.grad(lambda a, b: (a + b) * (b + 1.0), argnums=(0, 1), engine=engine)(2.0, 1.0) == (2.0, 5.0)


def test_sin_product():
    g = ad.grad(lambda x, y: np.sin(x * y) + x)(1.0, 2.0)
    assert math.isclose(g, 2 * math.cos(2.0) + 1, rel_tol=1e-15)
