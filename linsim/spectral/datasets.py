"""Built-in toy data for the spectral CLI and tests: anisotropic Gaussian classes with an independent nuisance."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from linsim.errors import LinsimError

__all__ = ["Dataset", "gaussian_classes", "two_view"]


@dataclass(frozen=True)
class Dataset:
    """Rows X (N, D), labels y (N,), nuisance s (N,) independent of y (for the misaligned graph)."""

    X: np.ndarray
    y: np.ndarray
    s: np.ndarray


def gaussian_classes(n_per_class=(30, 40, 50, 60), dim=10, n_nuisance=3, sep=3.0, nuisance_sep=3.0, seed=0) -> Dataset:
    """Anisotropic Gaussian classes: class means along random directions, shared
    anisotropic covariance diag(logspace(0, -1)), plus a nuisance cluster offset s ⟂ y (drawn independently)."""
    counts = np.atleast_1d(np.asarray(n_per_class, dtype=int))
    if counts.ndim != 1 or counts.size < 2 or np.any(counts < 2):
        raise LinsimError(f"need at least 2 classes with at least 2 points each, found n_per_class={counts.tolist()}")
    if dim < 2:
        raise LinsimError(f"dim must be >= 2, found {dim}")
    rng = np.random.default_rng(seed)
    C = counts.size
    y = np.repeat(np.arange(C), counts)
    N = y.size
    means = sep * rng.standard_normal((C, dim)) / np.sqrt(2.0)
    scales = np.logspace(0, -1, dim)
    X = means[y] + rng.standard_normal((N, dim)) * scales
    s = rng.integers(0, max(1, int(n_nuisance)), size=N)
    if n_nuisance > 1:
        offsets = nuisance_sep * rng.standard_normal((int(n_nuisance), dim)) / np.sqrt(2)
        X = X + offsets[s]
    return Dataset(X=X, y=y, s=s)


def two_view(X, noise=0.5, seed=0):
    """Two augmented views X_a = X + ε_a, X_b = X + ε_b stacked view-major ([X_a; X_b]) for the two-view graph (I2)."""
    X = np.asarray(X, dtype=float)
    rng = np.random.default_rng(seed)
    return np.vstack([X + noise * rng.standard_normal(X.shape), X + noise * rng.standard_normal(X.shape)])
