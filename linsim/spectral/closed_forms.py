"""Closed-form optima of the spectral SSL losses: non-parametric Z and linear W (Balestriero & LeCun, "Contrastive and
Non-Contrastive Self-Supervised Learning Recover Global and Local Spectral Embedding Methods", NeurIPS 2022).

Every closed form states its domain; outside it see ``linsim.spectral.exact`` and docs/spectral.md ("Closed forms
and their domains").

numpy/scipy, float64. ``G`` is a pairwise-relation graph (``linsim.spectral.graphs``); X is (N, D).
"""
from __future__ import annotations

import numpy as np
import scipy.linalg

from linsim.errors import LinsimError
from linsim.spectral.graphs import laplacian, n_components, normalized_adjacency, validate_graph

__all__ = [
    "centered_laplacian_eigs",
    "vicreg_hard_embedding",
    "vicreg_sigma",
    "vicreg_finite_embedding",
    "vicreg_finite_value",
    "simplex_vertices",
    "simclr_clique_embedding",
    "barlow_graph_optimum",
    "spectral_contrastive_embedding",
    "linear_stats",
    "vicreg_linear_weights",
    "low_data_weights",
    "vicreg_low_data_weights",
    "equalize_diagonal",
    "barlow_linear_weights",
    "barlow_population_weights",
    "spectral_contrastive_linear_weights",
    "fisher_lda",
    "orthonormal_basis",
    "subspace_distance",
]


# ----------------------------------------------------------------------------------------------- helpers
def orthonormal_basis(A, rtol=1e-10) -> np.ndarray:
    """Orthonormal basis of the column span of A (SVD, singular values below rtol·max dropped)."""
    U, s, _ = np.linalg.svd(np.asarray(A, dtype=float), full_matrices=False)
    return U[:, s > rtol * (s[0] if s.size else 1.0)]


def subspace_distance(A, B) -> float:
    """Spectral-norm distance ‖P_A − P_B‖₂ between the projectors onto span(A) and span(B) (sin of largest angle)."""
    QA, QB = orthonormal_basis(A), orthonormal_basis(B)
    if QA.shape[1] != QB.shape[1]:
        return 1.0
    return float(np.linalg.norm(QA @ QA.T - QB @ QB.T, 2))


def _check_K(K, maxK, what="K"):
    if not 1 <= int(K) <= maxK:
        raise LinsimError(f"{what} must be in [1, {maxK}], found {K}")
    return int(K)


# ------------------------------------------------------------------------------------ non-parametric Z
def centered_laplacian_eigs(G):
    """Eigenpairs of L on 1^⊥ (Laplacian eigenmaps): ascending ℓ (N−1 values) and orthonormal U ⟂ 1 with L U = U diag(ℓ)."""
    G = validate_graph(G)
    N = G.shape[0]
    Q = scipy.linalg.null_space(np.ones((1, N)))  # (N, N-1) orthonormal basis of 1^⊥
    ell, V = np.linalg.eigh(Q.T @ laplacian(G) @ Q)
    return np.maximum(ell, 0.0), Q @ V


def vicreg_hard_embedding(G, K):
    """VICReg hard limit = Laplacian eigenmaps: Z* = √N [u_2..u_{K+1}], value tr(Z*ᵀLZ*) = N Σ ℓ_j.

    Domain: α, β → ∞ (the constraint Σ_Z = I_K); any graph.
    """
    ell, U = centered_laplacian_eigs(G)
    K = _check_K(K, U.shape[1])
    N = U.shape[0]
    return np.sqrt(N) * U[:, :K], ell[:K]


def vicreg_sigma(ell, alpha, gamma) -> np.ndarray:
    """Per-dim std of the finite-γ VICReg optimum (β → ∞): σ_k = min(1, α/(2γℓ_k)) (σ = 1 where ℓ = 0)."""
    ell = np.asarray(ell, dtype=float)
    with np.errstate(divide="ignore"):
        return np.where(ell > 0, np.minimum(1.0, alpha / (2.0 * gamma * np.where(ell > 0, ell, 1.0))), 1.0)


def vicreg_finite_embedding(G, K, alpha=1.0, gamma=1.0):
    """VICReg with finite invariance weight γ, β→∞: z_k = √N σ_k u_{k+1}; returns (Z, σ, ℓ).

    Domain: β = ∞ (or K = 1). At finite β correlated columns do better; the exact optimum is
    ``linsim.spectral.exact.vicreg_finite_beta_optimum``, whose β → ∞ limit this is.
    """
    Z, ell = vicreg_hard_embedding(G, K)
    sigma = vicreg_sigma(ell, alpha, gamma)
    return Z * sigma, sigma, ell


def vicreg_finite_value(ell, alpha=1.0, gamma=1.0) -> float:
    """Loss of the finite-γ, β → ∞ VICReg optimum: (1/K) Σ_k h(ℓ_k), h = γℓ if ℓ ≤ α/(2γ) else α(1 − α/(4γℓ))."""
    ell = np.asarray(ell, dtype=float)
    small = ell <= alpha / (2.0 * gamma)
    h = np.where(small, gamma * ell, alpha * (1.0 - alpha / (4.0 * gamma * np.where(small, 1.0, ell))))
    return float(np.mean(h))


def simplex_vertices(C, K) -> np.ndarray:
    """C unit vectors in R^K (K ≥ C−1) with pairwise cosine −1/(C−1): a regular simplex."""
    C, K = int(C), int(K)
    if C < 2 or K < C - 1:
        raise LinsimError(f"a regular simplex of C={C} vertices needs C >= 2 and K >= C-1, found K={K}")
    E = np.eye(C) - 1.0 / C
    Q = orthonormal_basis(E)  # (C, C-1)
    V = E @ Q
    V /= np.linalg.norm(V, axis=1, keepdims=True)
    return np.hstack([V, np.zeros((C, K - (C - 1)))])


def simclr_clique_embedding(y, K, require_domain=True):
    """SimCLR optimum for a clique graph: every class at one vertex of a regular simplex, rank C−1.

    Domain: a union of cliques with EQUAL class sizes and K ≥ C−1 (Graf, Hofer, Niethammer & Kwitt, "Dissecting
    Supervised Contrastive Learning", ICML 2021, Thm. 1). Unequal sizes raise unless ``require_domain=False``
    (then the simplex is only a feasible point); their optimum is ``linsim.spectral.exact.simclr_class_centres``.
    """
    y = np.asarray(y)
    classes, inverse, counts = np.unique(y, return_inverse=True, return_counts=True)
    if require_domain and counts.min() != counts.max():
        raise LinsimError(f"the regular simplex is the SimCLR optimum only for equal class sizes, found sizes "
                          f"{counts.min()} to {counts.max()} (see linsim.spectral.simclr_class_centres)")
    return simplex_vertices(len(classes), K)[inverse]


def barlow_graph_optimum(G, K):
    """BarlowTwins G-form: C_G = I is feasible iff K ≤ C−1 (C components, constant degree); returns (Z or None, C−1).

    When feasible the optimum is the Laplacian eigenmaps' zero-eigenvalue set (K invariant, decorrelated, unit-variance columns).
    Domain: constant degree (checked; raises otherwise): for irregular graphs C_G[k,k] can exceed 1.
    """
    G = validate_graph(G)
    d = G.sum(axis=1)
    if np.ptp(d) > 1e-12 * max(1.0, float(d.max())):
        raise LinsimError(f"the BarlowTwins rank cap assumes a constant-degree graph, found degrees in [{d.min():.4g}, {d.max():.4g}]")
    cap = n_components(G) - 1
    if int(K) > cap:
        return None, cap
    Z, _ = vicreg_hard_embedding(G, K)
    return Z, cap


def spectral_contrastive_embedding(G, K):
    """Spectral-contrastive optimum by Eckart–Young (HaoChen, Wei, Gaidon & Ma, NeurIPS 2021, Eq. 5), any graph: U* = Q_K Λ_K^{1/2} (top-K μ > 0 of Ĝ); returns (U, F, μ).

    F = U / √d with d the degrees of G/1ᵀG1 is the embedding f(x_i) of ``spectral_contrastive_graph_loss``.
    """
    G = validate_graph(G)
    K = _check_K(K, G.shape[0])
    mu, Q = np.linalg.eigh(normalized_adjacency(G))
    mu, Q = mu[::-1][:K], Q[:, ::-1][:, :K]
    mu = np.maximum(mu, 0.0)
    U = Q * np.sqrt(mu)
    d = G.sum(axis=1) / G.sum()
    F = U / np.sqrt(np.where(d > 0, d, 1.0))[:, None]
    return U, F, mu


# ------------------------------------------------------------------------------------------ linear W
def linear_stats(X, G):
    """A_L = XᵀLX/N, B = XᵀHX/N, S_G = XᵀGX/(1ᵀG1) on column-centred X."""
    X = np.asarray(X, dtype=float)
    G = validate_graph(G)
    if G.shape[0] != X.shape[0]:
        raise LinsimError(f"G must be (N, N) with N = X.shape[0] = {X.shape[0]}, found {G.shape}")
    Xc = X - X.mean(axis=0)
    N = X.shape[0]
    return Xc.T @ laplacian(G) @ Xc / N, Xc.T @ Xc / N, Xc.T @ G @ Xc / G.sum()


def _check_pd(B, what="the covariance B = XᵀHX/N"):
    w = np.linalg.eigvalsh(B)
    if w[0] <= 1e-12 * max(w[-1], 1e-300):
        raise LinsimError(f"{what} is singular (smallest/largest eigenvalue {w[0]:.2g}/{w[-1]:.2g}); "
                          "with N <= D use the low-data closed form (vicreg_low_data_weights)")


def vicreg_linear_weights(X, G, K, alpha=None, gamma=None):
    """Linear VICReg (= LPP): eigh(A_L, B) smallest K, WᵀBW = I; with α, γ rescaled by σ_k. Returns (W, λ).

    Domain: β = ∞ (or K = 1), N > D with B nonsingular (checked). At finite β see
    ``linsim.spectral.exact.vicreg_finite_beta_optimum`` (exact reduction to a K×K problem).
    """
    A_L, B, _ = linear_stats(X, G)
    K = _check_K(K, B.shape[0])
    _check_pd(B)
    lam, V = scipy.linalg.eigh(A_L, B)
    W, lam = V[:, :K], lam[:K]
    if gamma is not None:
        W = W * vicreg_sigma(lam, 1.0 if alpha is None else alpha, gamma)
    return W, lam


def low_data_weights(X, Z) -> np.ndarray:
    """Low-data regime: minimum-norm W* = X⁺ Z*, exact when Z* ∈ range(X) (e.g. rank X = N ≤ D)."""
    return np.linalg.pinv(np.asarray(X, dtype=float)) @ np.asarray(Z, dtype=float)


def vicreg_low_data_weights(X, G, K, alpha=None, gamma=None):
    """Low-data VICReg (β → ∞): solve on the graph (Laplacian eigenmaps, finite γ when given) and map back with X⁺; returns (W, Z*)."""
    X = np.asarray(X, dtype=float)
    if gamma is None:
        Z, _ = vicreg_hard_embedding(G, K)
    else:
        Z, _, _ = vicreg_finite_embedding(G, K, 1.0 if alpha is None else alpha, gamma)
    return low_data_weights(X, Z), Z


def equalize_diagonal(d, max_rotations=None) -> np.ndarray:
    """Orthogonal Q with diag(Qᵀ diag(d) Q) constant = mean(d), by ≤ K−1 Givens rotations."""
    d = np.asarray(d, dtype=float)
    K = d.size
    M = np.diag(d)
    Q = np.eye(K)
    target = d.mean()
    for _ in range(K - 1 if max_rotations is None else max_rotations):
        diag = np.diag(M)
        i, j = int(np.argmax(diag)), int(np.argmin(diag))
        if diag[i] - diag[j] <= 1e-15 * max(abs(target), 1.0):
            break
        a, b, c = M[i, i], M[j, j], M[i, j]
        # rotated (i,i) entry: a cos² + b sin² + 2c sin cos; solve = target for θ
        # write as (a+b)/2 + (a-b)/2 cos2θ + c sin2θ = target
        r = np.hypot((a - b) / 2.0, c)
        phi = np.arctan2(c, (a - b) / 2.0)
        theta = 0.5 * (np.arccos(np.clip((target - (a + b) / 2.0) / r, -1.0, 1.0)) + phi)
        R = np.eye(K)
        cs, sn = np.cos(theta), np.sin(theta)
        R[i, i], R[j, j], R[i, j], R[j, i] = cs, cs, -sn, sn
        # new basis vector i = cs e_i + sn e_j ; j = -sn e_i + cs e_j
        M = R.T @ M @ R
        Q = Q @ R
    return Q


def barlow_linear_weights(X, G, K, lambd=0.0051, refine=True, seed=0):
    """Linear BarlowTwins: W in span B^{-1/2}V_K (tied CCA); mixing = best of CCA, equalised-diagonal, refined.

    Returns (W, info) with info = {rho, h, loss_cca, loss_equalized, loss}. The equalised point
    W = B^{-1/2}V_K diag(ρ)^{-1/2}Q gives C = h·I, h = K/Σρ_k⁻¹; the within-span K×K mixing is then refined
    by L-BFGS (it is not always the equalised point: for well-separated ρ the CCA point can be better).

    Domain: canonical correlations ρ_1 ≤ 1 (always true for constant-degree graphs, where Ĝ ≤ I) and ρ_K > 0;
    ``info["in_domain"]`` says whether it holds. With ρ_1 > 1 the optimum leaves the tied-CCA span: zero loss
    when h > 1 (``linsim.spectral.exact.barlow_zero_loss_weights``), else ``barlow_certified_weights``.
    """
    _, B, S = linear_stats(X, G)
    return barlow_population_weights(B, S, K, lambd=lambd, refine=refine, seed=seed)


def barlow_population_weights(B, S, K, lambd=0.0051, refine=True, seed=0):
    """Linear BarlowTwins from the covariances B (pooled) and S_G (positive-pair) directly; see ``barlow_linear_weights``."""
    import jax.numpy as jnp

    from linsim.spectral.losses import barlow_linear_loss
    from linsim.spectral.optimize import minimize_restarts

    B, S = np.asarray(B, dtype=float), np.asarray(S, dtype=float)
    K = _check_K(K, B.shape[0])
    _check_pd(B)
    wB, UB = np.linalg.eigh(B)
    Bmh = UB @ np.diag(wB**-0.5) @ UB.T
    rho, V = np.linalg.eigh(Bmh @ S @ Bmh)
    rho, V = rho[::-1][:K], V[:, ::-1][:, :K]
    if rho[-1] <= 0:
        raise LinsimError(f"the tied-CCA closed form needs K positive canonical correlations, found rho_K = {rho[-1]:.3g}")
    base = Bmh @ V
    Q = equalize_diagonal(1.0 / rho)
    W_eq = base @ np.diag(rho**-0.5) @ Q
    loss = lambda W: float(barlow_linear_loss(W, B, S, lambd))  # noqa: E731
    cands = {"cca": base, "equalized": W_eq}
    info = {"rho": rho, "h": K / np.sum(1.0 / rho), "loss_cca": loss(base), "loss_equalized": loss(W_eq),
            "in_domain": bool(rho[0] <= 1.0 + 1e-12)}
    if refine:
        Bj, Sj = jnp.asarray(B), jnp.asarray(S)
        basej = jnp.asarray(base)
        res = minimize_restarts(lambda A: barlow_linear_loss(basej @ A, Bj, Sj, lambd), (K, K), n_starts=2,
                                seed=seed, x0s=[np.eye(K), np.diag(rho**-0.5) @ Q])
        cands["refined"] = base @ res.x
    name = min(cands, key=lambda k: loss(cands[k]))
    info["loss"], info["point"] = loss(cands[name]), name
    return cands[name], info


def spectral_contrastive_linear_weights(X, G, K):
    """Matrix-form spectral-contrastive: min ‖XWWᵀXᵀ − Ĝ‖², (XᵀĜX)w = μ(XᵀX)w, top-K μ > 0, W* = [w_k √μ_k]; (W, μ).

    Domain: this is the optimum of HaoChen et al.'s loss with a linear encoder only for constant degree; for
    any degrees use ``linsim.spectral.exact.spectral_contrastive_encoder_weights``.
    """
    X = np.asarray(X, dtype=float)
    G = validate_graph(G)
    if G.shape[0] != X.shape[0]:
        raise LinsimError(f"G must be (N, N) with N = X.shape[0] = {X.shape[0]}, found {G.shape}")
    K = _check_K(K, X.shape[1])
    XtX = X.T @ X
    _check_pd(XtX, "XᵀX")
    mu, V = scipy.linalg.eigh(X.T @ normalized_adjacency(G) @ X, XtX)
    mu, V = mu[::-1][:K], V[:, ::-1][:, :K]
    return V * np.sqrt(np.maximum(mu, 0.0)), mu


def fisher_lda(X, y, K=None):
    """Fisher LDA directions: top-K of S_B v = r S_W v (K defaults to C−1); returns (W, r)."""
    X = np.asarray(X, dtype=float)
    y = np.asarray(y)
    classes = np.unique(y)
    mu = X.mean(axis=0)
    S_W = np.zeros((X.shape[1],) * 2)
    S_B = np.zeros_like(S_W)
    for c in classes:
        Xc = X[y == c]
        m = Xc.mean(axis=0)
        S_W += (Xc - m).T @ (Xc - m)
        S_B += len(Xc) * np.outer(m - mu, m - mu)
    K = len(classes) - 1 if K is None else _check_K(K, X.shape[1])
    _check_pd(S_W, "the within-class scatter S_W")
    r, V = scipy.linalg.eigh(S_B, S_W)
    return V[:, ::-1][:, :K], r[::-1][:K]
