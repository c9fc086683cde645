"""Pairwise-relation graphs G and their spectral objects (notation of docs/spectral.md).

Every builder returns a dense float64 ``(N, N)`` numpy array that is symmetric, nonnegative and has a
zero diagonal. Row order for multi-view batches is view-major: row ``v * n + i`` is view ``v`` of image
``i`` (so the two-view graph is ``[[0, I], [I, 0]]`` for ``X = [X_a; X_b]``).
"""
from __future__ import annotations

import numpy as np

from linsim.errors import LinsimError

__all__ = [
    "validate_graph",
    "two_view_graph",
    "multi_view_graph",
    "label_graph",
    "nuisance_graph",
    "knn_graph",
    "degree",
    "laplacian",
    "normalized_adjacency",
    "random_walk",
    "centering",
    "n_components",
]


def validate_graph(G) -> np.ndarray:
    """Check G is square, finite, symmetric, nonnegative, zero-diagonal; return it as float64."""
    G = np.asarray(G, dtype=float)
    if G.ndim != 2 or G.shape[0] != G.shape[1]:
        raise LinsimError(f"graph G must be a square matrix, found shape {G.shape}")
    if not np.all(np.isfinite(G)):
        raise LinsimError(f"graph G must be finite, found {int(np.sum(~np.isfinite(G)))} non-finite entries")
    scale = max(1.0, float(np.max(np.abs(G)))) if G.size else 1.0
    asym = float(np.max(np.abs(G - G.T))) if G.size else 0.0
    if asym > 1e-12 * scale:
        raise LinsimError(f"graph G must be symmetric, found max |G - G^T| = {asym:.3g}")
    if G.size and float(G.min()) < 0:
        i, j = np.unravel_index(int(np.argmin(G)), G.shape)
        raise LinsimError(f"graph G must be nonnegative, found G[{i}, {j}] = {G[i, j]:.3g}")
    diag = np.abs(np.diag(G))
    if G.size and float(diag.max()) > 0:
        i = int(np.argmax(diag))
        raise LinsimError(f"graph G must have a zero diagonal, found G[{i}, {i}] = {G[i, i]:.3g}")
    return G


def two_view_graph(n: int) -> np.ndarray:
    """Two-view positive graph G = [[0, I_n], [I_n, 0]] (identity I2)."""
    return multi_view_graph(n, 2)


def multi_view_graph(n: int, views: int) -> np.ndarray:
    """V-view graph: all views of one image are connected, G = (1 1^T - I_V) ⊗ I_n, view-major (I3)."""
    if int(n) < 1 or int(views) < 2:
        raise LinsimError(f"a multi-view graph needs n >= 1 images and views >= 2, found n={n}, views={views}")
    J = np.ones((views, views)) - np.eye(views)
    return np.kron(J, np.eye(int(n)))


def label_graph(y) -> np.ndarray:
    """Label-clique ("aligned") graph: G_ij = 1/m_c if y_i = y_j = c and i != j, so X^T L X = S_W (I4)."""
    y = np.asarray(y)
    if y.ndim != 1:
        raise LinsimError(f"labels must be a 1-D array, found shape {y.shape}")
    same = (y[:, None] == y[None, :]).astype(float)
    _, inverse, counts = np.unique(y, return_inverse=True, return_counts=True)
    G = same / counts[inverse][:, None]
    np.fill_diagonal(G, 0.0)
    return G


def nuisance_graph(s) -> np.ndarray:
    """Misaligned graph: the clique graph of a nuisance variable s drawn independently of the labels."""
    return label_graph(s)


def knn_graph(X, k: int) -> np.ndarray:
    """Symmetrised (union) k-nearest-neighbour graph of the rows of X with unit weights."""
    X = np.asarray(X, dtype=float)
    N = X.shape[0]
    if not 1 <= int(k) < N:
        raise LinsimError(f"k-NN graph needs 1 <= k < N, found k={k}, N={N}")
    sq = np.sum(X * X, axis=1)
    d2 = sq[:, None] + sq[None, :] - 2.0 * X @ X.T
    np.fill_diagonal(d2, np.inf)
    nn = np.argsort(d2, axis=1, kind="stable")[:, : int(k)]
    G = np.zeros((N, N))
    G[np.repeat(np.arange(N), int(k)), nn.ravel()] = 1.0
    return np.maximum(G, G.T)


def degree(G) -> np.ndarray:
    """Degree vector d = G 1 (the diagonal of Dg)."""
    return np.asarray(G, dtype=float).sum(axis=1)


def laplacian(G) -> np.ndarray:
    """Combinatorial Laplacian L = Dg - G; sum_ij G_ij |z_i - z_j|^2 = 2 tr(Z^T L Z) (I1)."""
    G = np.asarray(G, dtype=float)
    return np.diag(G.sum(axis=1)) - G


def normalized_adjacency(G) -> np.ndarray:
    """Normalized adjacency Ĝ = Dg^{-1/2} G Dg^{-1/2}; isolated nodes get zero rows."""
    G = np.asarray(G, dtype=float)
    d = G.sum(axis=1)
    inv = np.where(d > 0, 1.0 / np.sqrt(np.where(d > 0, d, 1.0)), 0.0)
    return inv[:, None] * G * inv[None, :]


def random_walk(G) -> np.ndarray:
    """Row-stochastic P = Dg^{-1} G (the positive weights of the G-form NT-Xent)."""
    G = np.asarray(G, dtype=float)
    d = G.sum(axis=1)
    if np.any(d <= 0):
        raise LinsimError(f"P = Dg^-1 G needs every node to have a positive degree, found {int(np.sum(d <= 0))} isolated nodes")
    return G / d[:, None]


def centering(N: int) -> np.ndarray:
    """Centering matrix H = I_N - (1/N) 1 1^T."""
    return np.eye(N) - np.full((N, N), 1.0 / N)


def n_components(G) -> int:
    """Number of connected components of the graph (multiplicity of the Laplacian eigenvalue 0)."""
    from scipy.sparse.csgraph import connected_components

    return int(connected_components(np.asarray(G) > 0, directed=False)[0])
