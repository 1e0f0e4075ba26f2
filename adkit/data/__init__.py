"""Small datasets for the training lectures, loaded offline from the package.

- `load_iris()`: Fisher's Iris, 150 x 4 features, 3 classes (the lectures' two-layer
  network example [RAB]).
- `load_digits()`: 1797 8x8 handwritten digits, 64 features, 10 classes (the
  [64, 30, 30, 30, 30, 10] network of the vanishing-gradient lecture).
- `make_spirals(...)`, `make_moons(...)`: seeded synthetic 2-D classification sets.

The two files come from scikit-learn 1.9.1 (BSD 3-clause; see README.md and
LICENSE-scikit-learn.txt beside this module). Everything returns plain numpy arrays.
"""

from __future__ import annotations

import gzip
from importlib import resources
from typing import NamedTuple

import numpy as np


class Dataset(NamedTuple):
    """Features X (n, d) float64, integer labels y (n,), and the names of both."""

    X: np.ndarray
    y: np.ndarray
    feature_names: tuple[str, ...]
    target_names: tuple[str, ...]


def _read_csv_gz(name: str, skip_header: int) -> np.ndarray:
    with resources.files(__name__).joinpath(name).open("rb") as raw, gzip.open(raw, "rt") as text:
        return np.loadtxt(text, delimiter=",", skiprows=skip_header)


def load_iris() -> Dataset:
    """Fisher's Iris: 150 flowers, 4 measurements in cm, classes 0 setosa, 1 versicolor,
    2 virginica (50 each)."""
    table = _read_csv_gz("iris.csv.gz", skip_header=1)
    features = ("sepal length (cm)", "sepal width (cm)", "petal length (cm)", "petal width (cm)")
    return Dataset(table[:, :4], table[:, 4].astype(np.int64), features, ("setosa", "versicolor", "virginica"))


def load_digits() -> Dataset:
    """1797 handwritten digits as 8x8 images flattened row by row to 64 pixels in 0..16;
    labels 0..9. `X.reshape(-1, 8, 8)` gives the images."""
    table = _read_csv_gz("digits.csv.gz", skip_header=0)
    features = tuple(f"pixel_{r}_{c}" for r in range(8) for c in range(8))
    return Dataset(table[:, :64], table[:, 64].astype(np.int64), features, tuple(str(d) for d in range(10)))


def _check_sizes(n_per_class: int, noise: float) -> None:
    if not isinstance(n_per_class, (int, np.integer)) or n_per_class < 1:
        raise ValueError(f"n_per_class must be a positive integer; got {n_per_class!r}")
    if not np.isfinite(noise) or noise < 0:
        raise ValueError(f"noise must be a finite number >= 0; got {noise!r}")


def make_spirals(n_per_class: int = 100, classes: int = 3, noise: float = 0.2, seed: int = 0) -> Dataset:
    """`classes` interleaved spiral arms in the plane (cs231n's toy set): arm k has points
    r (sin t, cos t) with r in [0, 1] and t = 4 r + 2 pi k / classes + noise * N(0, 1)."""
    _check_sizes(n_per_class, noise)
    if not isinstance(classes, (int, np.integer)) or classes < 2:
        raise ValueError(f"classes must be an integer >= 2; got {classes!r}")
    rng = np.random.default_rng(seed)
    r = np.tile(np.linspace(0.0, 1.0, n_per_class), classes)
    y = np.repeat(np.arange(classes), n_per_class)
    t = 4.0 * r + 2.0 * np.pi * y / classes + noise * rng.standard_normal(r.size)
    X = np.stack([r * np.sin(t), r * np.cos(t)], axis=1)
    return Dataset(X, y, ("x1", "x2"), tuple(f"arm {k}" for k in range(classes)))


def make_moons(n_per_class: int = 100, noise: float = 0.1, seed: int = 0) -> Dataset:
    """Two interleaved half circles: class 0 on (cos t, sin t), class 1 on
    (1 - cos t, 1/2 - sin t), t in [0, pi], plus Gaussian noise of standard deviation `noise`."""
    _check_sizes(n_per_class, noise)
    rng = np.random.default_rng(seed)
    t = np.linspace(0.0, np.pi, n_per_class)
    upper = np.stack([np.cos(t), np.sin(t)], axis=1)
    lower = np.stack([1.0 - np.cos(t), 0.5 - np.sin(t)], axis=1)
    X = np.concatenate([upper, lower]) + noise * rng.standard_normal((2 * n_per_class, 2))
    y = np.repeat(np.arange(2), n_per_class)
    return Dataset(X, y, ("x1", "x2"), ("upper moon", "lower moon"))


__all__ = ["Dataset", "load_digits", "load_iris", "make_moons", "make_spirals"]
