"""Graph builders and the graph identities (Laplacian quadratic form, two-view and V-view graphs, label graph)."""
import re

import numpy as np
import pytest
from hypothesis import given, strategies as st

from linsim.errors import LinsimError
from linsim.spectral import graphs as g


def _random_graph(seed, N=10, p=0.4):
    rng = np.random.default_rng(seed)
    G = rng.uniform(0.1, 2.0, (N, N)) * (rng.random((N, N)) < p)
    G = np.triu(G, 1)
    return G + G.T


@given(seed=st.integers(0, 10_000))
def test_identity_I1_dirichlet_energy(seed):
    G = _random_graph(seed)
    Z = np.random.default_rng(seed + 1).standard_normal((10, 3))
    lhs = sum(G[i, j] * np.sum((Z[i] - Z[j]) ** 2) for i in range(10) for j in range(10))
    # sums of ~100 O(1) terms: 1e-12 relative is ~100x the float64 rounding floor
    assert np.isclose(lhs, 2 * np.trace(Z.T @ g.laplacian(G) @ Z), rtol=1e-12)


def test_two_view_and_multi_view_I2_I3():
    n, V = 5, 3
    assert np.array_equal(g.two_view_graph(n), np.block([[np.zeros((n, n)), np.eye(n)], [np.eye(n), np.zeros((n, n))]]))
    Z = np.random.default_rng(0).standard_normal((V * n, 2))
    Zv = Z.reshape(V, n, 2)
    rhs = V * np.sum((Zv - Zv.mean(0)) ** 2)
    assert np.isclose(np.trace(Z.T @ g.laplacian(g.multi_view_graph(n, V)) @ Z), rhs, rtol=1e-12)
    assert np.allclose(g.degree(g.multi_view_graph(n, V)), V - 1)


@given(sizes=st.lists(st.integers(2, 7), min_size=2, max_size=4), seed=st.integers(0, 1000))
def test_label_graph_laplacian_is_within_class_scatter_I4(sizes, seed):
    rng = np.random.default_rng(seed)
    y = np.repeat(np.arange(len(sizes)), sizes)
    rng.shuffle(y)
    X = rng.standard_normal((y.size, 4)) * 3 + 1
    S_W = sum((X[y == c] - X[y == c].mean(0)).T @ (X[y == c] - X[y == c].mean(0)) for c in range(len(sizes)))
    G = g.validate_graph(g.label_graph(y))
    # a handful of O(10) sums: 1e-10·‖S_W‖
    assert np.max(np.abs(X.T @ g.laplacian(G) @ X - S_W)) < 1e-10 * np.abs(S_W).max()
    assert g.n_components(G) == len(sizes)


def test_knn_and_nuisance_graphs_are_valid():
    X = np.random.default_rng(0).standard_normal((20, 3))
    G = g.validate_graph(g.knn_graph(X, 3))
    assert np.all(G.sum(1) >= 3)
    s = np.random.default_rng(1).integers(0, 3, 20)
    assert np.array_equal(g.nuisance_graph(s), g.label_graph(s))
    w = np.linalg.eigvalsh(g.normalized_adjacency(G))
    assert w.max() < 1 + 1e-12 and w.min() > -1 - 1e-12  # spectrum of Ĝ in [-1, 1]
    assert np.allclose(g.random_walk(G).sum(1), 1.0)
    assert np.allclose(g.centering(4) @ np.ones(4), 0.0)


@pytest.mark.parametrize("G, msg", [
    (np.ones((2, 3)), "square"),
    (np.array([[0.0, 1.0], [2.0, 0.0]]), "symmetric, found max |G - G^T| = 1"),
    (np.array([[0.0, -1.0], [-1.0, 0.0]]), "nonnegative, found G[0, 1] = -1"),
    (np.array([[1.0, 1.0], [1.0, 0.0]]), "zero diagonal, found G[0, 0] = 1"),
    (np.array([[0.0, np.nan], [np.nan, 0.0]]), "finite"),
])
def test_validate_graph_says_what_was_found(G, msg):
    with pytest.raises(LinsimError, match=re.escape(msg)):
        g.validate_graph(G)


def test_bad_builder_inputs():
    with pytest.raises(LinsimError, match="k=5, N=5"):
        g.knn_graph(np.zeros((5, 2)), 5)
    with pytest.raises(LinsimError, match="views=1"):
        g.multi_view_graph(3, 1)
