"""Closed forms (docs/spectral.md) against their losses and against gradient descent."""
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from linsim.errors import LinsimError
from linsim.spectral import closed_forms as cf
from linsim.spectral import graphs as g
from linsim.spectral import losses as L
from linsim.spectral.datasets import gaussian_classes
from linsim.spectral.optimize import minimize_restarts

N, K = 12, 3  # fixed shapes (JAX compiles once per shape)


def _connected_graph(seed, N=N, p=0.3):
    """Random weighted graph plus a ring, so it is connected."""
    rng = np.random.default_rng(seed)
    G = np.triu(rng.uniform(0.2, 2.0, (N, N)) * (rng.random((N, N)) < p), 1)
    ring = np.roll(np.eye(N), 1, axis=1)
    G = G + G.T + ring + ring.T
    np.fill_diagonal(G, 0.0)
    return G


def _rankme(Z):
    from linsim.metrics import rankme
    return rankme(Z)


@given(seed=st.integers(0, 10_000))
def test_property2_vicreg_hard_limit_is_laplacian_eigenmaps(seed):
    G = _connected_graph(seed)
    Z, ell = cf.vicreg_hard_embedding(G, K)
    H, Lap = g.centering(N), g.laplacian(G)
    # entries O(1): 1e-8 absolute (observed ~1e-14)
    assert np.allclose(H @ Z, Z, atol=1e-8)
    assert np.allclose(Z.T @ H @ Z / N, np.eye(K), atol=1e-8)
    opt = np.trace(Z.T @ Lap @ Z)
    assert np.isclose(opt, N * ell.sum(), rtol=1e-10)
    rng = np.random.default_rng(seed + 1)
    for _ in range(100):  # random centred, whitened Z are feasible and never better
        Q, _ = np.linalg.qr(H @ rng.standard_normal((N, K)))
        Zr = np.sqrt(N) * Q
        assert np.trace(Zr.T @ Lap @ Zr) >= opt - 1e-8


@settings(max_examples=2)  # 4 L-BFGS restarts per example (expensive: stiff β = 200)
@given(seed=st.integers(0, 10_000), log_gamma_scale=st.floats(-1.0, 1.0))
def test_property3_vicreg_finite_gamma_beats_gd(seed, log_gamma_scale):
    G = _connected_graph(seed)
    alpha, beta = 1.0, 200.0
    ell_all, _ = cf.centered_laplacian_eigs(G)
    gamma = alpha / (2 * ell_all[K - 1]) * 10.0**log_gamma_scale
    Z, sigma, ell = cf.vicreg_finite_embedding(G, K, alpha, gamma)
    f = lambda Z: L.vicreg_graph_loss(Z, jnp.asarray(G), alpha, beta, gamma)  # noqa: E731
    val = float(f(Z))
    assert np.isclose(val, cf.vicreg_finite_value(ell, alpha, gamma), rtol=1e-12)
    assert np.sum(np.isclose(sigma, 1.0)) == np.sum(ell <= alpha / (2 * gamma))
    # at finite beta the closed form is only the beta -> infinity limit (docs/spectral.md): GD may beat it, but
    # not the exact finite-beta optimum on the K smallest Laplacian eigenvectors, which the closed form bounds
    from linsim.spectral.exact import vicreg_finite_beta_optimum

    ell_c, U = cf.centered_laplacian_eigs(G)
    T, cert = vicreg_finite_beta_optimum(ell_c[:K], alpha, beta, gamma, n_starts=2, seed=seed)
    opt = float(f(np.sqrt(N) * U[:, :K] @ T))
    assert opt <= val + 1e-12
    res = minimize_restarts(f, (N, K), n_starts=4, seed=seed)
    # 1e-8 relative: L-BFGS stops at gradient 1e-10 on an O(1) loss
    assert opt <= res.value + 1e-8 * abs(opt)


def test_property3_rankme_non_increasing_in_gamma():
    G = _connected_graph(7)
    gammas = np.logspace(-2, 2, 25)
    r = [_rankme(cf.vicreg_finite_embedding(G, K, 1.0, gm)[0]) for gm in gammas]
    nunit = [np.sum(cf.vicreg_finite_embedding(G, K, 1.0, gm)[1] == 1.0) for gm in gammas]
    assert all(a >= b - 1e-12 for a, b in zip(r, r[1:]))  # pairwise, up to rounding
    assert all(a >= b for a, b in zip(nunit, nunit[1:])) and nunit[0] == K and nunit[-1] == 0


def _data(seed, sizes=(8, 10, 12, 14), D=6):
    d = gaussian_classes(n_per_class=sizes, dim=D, n_nuisance=1, seed=seed)
    return d.X, d.y


@given(seed=st.integers(0, 10_000))
def test_property4_linear_vicreg_is_lpp(seed):
    X, y = _data(seed)
    G = g.knn_graph(X, 4)
    A_L, B, _ = cf.linear_stats(X, G)
    W, lam = cf.vicreg_linear_weights(X, G, K)
    assert np.allclose(W.T @ B @ W, np.eye(K), atol=1e-8)
    opt = np.trace(W.T @ A_L @ W)
    assert np.isclose(opt, lam.sum(), rtol=1e-10)
    w, U = np.linalg.eigh(B)
    Bmh = U @ np.diag(w**-0.5) @ U.T
    rng = np.random.default_rng(seed)
    for _ in range(100):
        Q, _ = np.linalg.qr(rng.standard_normal((X.shape[1], K)))
        assert np.trace((Bmh @ Q).T @ A_L @ (Bmh @ Q)) >= opt - 1e-8


@given(sizes=st.lists(st.integers(5, 15), min_size=4, max_size=4), seed=st.integers(0, 10_000))
def test_property5_aligned_graph_recovers_lda(sizes, seed):
    X, y = _data(seed, tuple(sizes), D=8)
    W, lam = cf.vicreg_linear_weights(X, g.label_graph(y), 3)
    V, r = cf.fisher_lda(X, y)
    # the projector distance is limited by the conditioning of S_W (~1e3 here): 1e-8
    assert cf.subspace_distance(W, V) < 1e-8
    assert np.allclose(lam, 1.0 / (1.0 + r), rtol=1e-9)
    lam_all = cf.vicreg_linear_weights(X, g.label_graph(y), 4)[1]
    assert np.isclose(lam_all[3], 1.0, atol=1e-10)  # λ = 1 for k ≥ C


@given(seed=st.integers(0, 10_000))
def test_property6_low_data_regime(seed):
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((8, 12))  # N ≤ D, rank N
    G = _connected_graph(seed, N=8)
    W, Z = cf.vicreg_low_data_weights(X, G, 2)
    assert np.allclose(X @ W, Z, atol=1e-8)
    with pytest.raises(LinsimError, match="singular"):
        cf.vicreg_linear_weights(X, G, 2)
    Wf, Zf = cf.vicreg_low_data_weights(X, G, 2, alpha=1.0, gamma=5.0)
    assert np.allclose(X @ Wf, Zf, atol=1e-8)


def _population(seed, D=6):
    rng = np.random.default_rng(seed)
    A = rng.standard_normal((D, D))
    B = A @ A.T / D + 0.1 * np.eye(D)
    w, U = np.linalg.eigh(B)
    Bh = U @ np.diag(w**0.5) @ U.T
    return B, Bh, rng


@settings(max_examples=3)  # 6 BFGS restarts per example
@given(seed=st.integers(0, 10_000), rho_lo=st.floats(0.05, 0.9))
def test_property7_barlow_tied_cca(seed, rho_lo):
    D, Kb, lam = 6, 2, 1.0
    B, Bh, rng = _population(seed, D)
    rho = np.sort(rng.uniform(rho_lo, 0.99, D))[::-1]
    V = np.linalg.qr(rng.standard_normal((D, D)))[0]
    S = Bh @ V @ np.diag(rho) @ V.T @ Bh
    W, info = cf.barlow_population_weights(B, S, Kb, lambd=lam)
    assert info["loss"] <= np.sum((1 - rho[:Kb]) ** 2) + 1e-9
    # the explicit equalised point has C = h·I
    Wq = np.linalg.inv(Bh) @ V[:, :Kb] @ np.diag(rho[:Kb] ** -0.5) @ cf.equalize_diagonal(1 / rho[:Kb])
    s = 1 / np.sqrt(np.diag(Wq.T @ B @ Wq))
    C = (Wq.T @ S @ Wq) * s[:, None] * s[None, :]
    assert np.max(np.abs(C - info["h"] * np.eye(Kb))) < 1e-10
    f = lambda W: L.barlow_linear_loss(W, jnp.asarray(B), jnp.asarray(S), lam)  # noqa: E731
    res = minimize_restarts(f, (D, Kb), n_starts=6, seed=seed)
    assert cf.subspace_distance(Bh @ res.x, V[:, :Kb]) < 1e-4  # 1e-4 (observed ≤ 2e-7)
    assert info["loss"] <= res.value + 1e-9  # closed form never beaten (observed gap ≤ 1e-15)


def test_equalize_diagonal_general_K():
    d = np.array([0.3, 1.0, 2.5, 7.0, 11.0])
    Q = cf.equalize_diagonal(d)
    assert np.allclose(Q.T @ Q, np.eye(5), atol=1e-13)
    assert np.allclose(np.diag(Q.T @ np.diag(d) @ Q), d.mean(), atol=1e-12)


@settings(max_examples=3)  # each example runs two L-BFGS solves
@given(seed=st.integers(0, 10_000))
def test_barlow_graph_feasibility_rank_cap(seed):
    y = np.repeat(np.arange(4), 5)  # equal classes: constant degree
    G = g.label_graph(y)
    Z, cap = cf.barlow_graph_optimum(G, 3)
    assert cap == 3 and float(L.barlow_graph_loss(Z, G, 1.0)) < 1e-20
    assert cf.barlow_graph_optimum(G, 4)[0] is None
    # K = C > C−1: only C−1 standardized columns can be perfectly invariant, so with lambda = 1 every Z pays
    # at least 1 (observed minimum over L-BFGS restarts: 1 - 3e-16); the closed form at K = C−1 pays 0.
    from linsim.spectral.optimize import minimize_restarts

    best = minimize_restarts(lambda Z: L.barlow_graph_loss(Z, jnp.asarray(G), 1.0), (20, 4), n_starts=2, seed=seed)
    assert best.value >= 1 - 1e-9  # L-BFGS converges to gtol 1e-10; a value below 1 would refute the cap
    with pytest.raises(LinsimError, match="constant-degree"):
        cf.barlow_graph_optimum(g.label_graph(np.array([0, 0, 1, 1, 1])), 1)


def test_barlow_irregular_graph_diagonal_can_exceed_one():
    """The BarlowTwins rank-cap statement needs constant degree: with unequal 1/m_c cliques C_G[k,k] > 1 is possible."""
    y = np.array([0, 0, 1, 1, 1, 1, 2, 2, 2, 2])
    G = g.label_graph(y)
    z = np.array([0.0, 1.0, -1.0])[y]  # centred, zero on the small class
    z = z / z.std()
    # C_kk = (N − Σ_c a_c²)/(N − C) = (10 − 2.5)/7 for this column (derived here)
    assert np.isclose(float(z @ G @ z / G.sum()), 7.5 / 7, rtol=1e-12)


def test_simclr_simplex_beats_gd_on_clique_graph():
    y = np.repeat(np.arange(3), 3)
    G = g.label_graph(y)
    Z = cf.simclr_clique_embedding(y, 2)
    assert np.linalg.matrix_rank(Z) == 2
    Zn = Z / np.linalg.norm(Z, axis=1, keepdims=True)
    assert np.allclose((Zn @ Zn.T)[y[:, None] != y[None, :]], -0.5)
    f = lambda Z: L.nt_xent_graph_loss(Z, jnp.asarray(G), 0.5)  # noqa: E731
    res = minimize_restarts(f, (9, 2), n_starts=4, seed=0)
    # GD only approaches the simplex; 1e-7 covers the L-BFGS stopping tolerance (observed gap < 1e-9)
    assert float(f(Z)) <= res.value + 1e-7
    with pytest.raises(LinsimError, match="K >= C-1"):
        cf.simplex_vertices(4, 2)


@given(seed=st.integers(0, 10_000))
def test_spectral_contrastive_eckart_young(seed):
    G = _connected_graph(seed)
    U, F, mu = cf.spectral_contrastive_embedding(G, K)
    Ghat = g.normalized_adjacency(G)
    val = float(L.spectral_contrastive_matrix_loss(U, G))
    w = np.linalg.eigvalsh(Ghat)[::-1]
    assert np.isclose(val, np.sum(w**2) - np.sum(np.maximum(w[:K], 0) ** 2), rtol=1e-10)
    assert np.isclose(float(L.spectral_contrastive_graph_loss(F, G)), val - np.sum(Ghat**2), rtol=1e-9, atol=1e-12)


@settings(max_examples=3)
@given(seed=st.integers(0, 10_000))
def test_spectral_contrastive_linear_beats_gd(seed):
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((25, 6))
    G = _connected_graph(seed, N=25, p=0.15)
    W, mu = cf.spectral_contrastive_linear_weights(X, G, 2)
    Gh = jnp.asarray(g.normalized_adjacency(G))
    Xj = jnp.asarray(X)
    f = lambda W: jnp.sum((Xj @ W @ W.T @ Xj.T - Gh) ** 2)  # noqa: E731
    res = minimize_restarts(f, (6, 2), n_starts=6, seed=seed)
    assert float(f(W)) <= res.value + 1e-9  # exact optimum; L-BFGS converges to it (observed gap ~1e-15)


def test_fisher_lda_needs_nonsingular_scatter():
    with pytest.raises(LinsimError, match="S_W"):
        cf.fisher_lda(np.ones((6, 3)), np.array([0, 0, 0, 1, 1, 1]))
