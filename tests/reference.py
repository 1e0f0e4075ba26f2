"""Independent references shared by the tests: finite differences written from scratch."""

import numpy as np


def central_diff(f, x, h=1e-6):
    """Central differences (f(x + h e_i) - f(x - h e_i)) / 2h of a scalar f, one entry at a time."""
    if np.ndim(x) == 0:
        x = float(x)
        return (f(x + h) - f(x - h)) / (2 * h)
    x = np.array(x, dtype=np.float64)
    g = np.zeros_like(x)
    for i in np.ndindex(x.shape):
        e = np.zeros_like(x)
        e[i] = h
        g[i] = (f(x + e) - f(x - e)) / (2 * h)
    return g


def central_jacobian(f, x, h=1e-6):
    """Central differences of an array-valued f: shape f(x).shape + x.shape, one input entry at a time."""
    x = np.array(x, dtype=np.float64)
    out_shape = np.shape(f(x))
    jac = np.zeros(out_shape + x.shape)
    for i in np.ndindex(x.shape):
        e = np.zeros_like(x)
        e[i] = h
        jac[(Ellipsis,) + i] = (np.asarray(f(x + e)) - np.asarray(f(x - e))) / (2 * h)
    return jac
