"""Optima beyond the textbook closed forms: finite-beta VICReg, BarlowTwins with canonical correlations above 1,
SimCLR with unequal class sizes, and the spectral-contrastive loss of a linear encoder on any graph.

Each function states its domain; derivations are in docs/spectral.md ("Closed forms and their domains").
numpy/scipy float64 for the linear algebra, JAX for the small multi-start problems.
"""
from __future__ import annotations

import numpy as np
import scipy.linalg

from linsim.errors import LinsimError
from linsim.spectral.closed_forms import _check_K, _check_pd, equalize_diagonal, simplex_vertices
from linsim.spectral.graphs import validate_graph
from linsim.spectral.optimize import Certified, multistart

__all__ = [
    "vicreg_reduced_loss",
    "vicreg_unit_variance_optimum",
    "vicreg_finite_beta_optimum",
    "whitened_cca",
    "barlow_zero_loss_mixing",
    "barlow_zero_loss_weights",
    "barlow_certified_weights",
    "simclr_collapsed_loss",
    "simclr_class_centres",
    "spectral_contrastive_encoder_weights",
]


def _unit_columns_gauge(U, B=None):
    """Σ_k (u_kᵀ B u_k − 1)²: fixes the scale of columns on which a loss does not depend (B = I by default)."""
    import jax.numpy as jnp

    n2 = jnp.sum(U * U, axis=0) if B is None else jnp.sum(U * (B @ U), axis=0)
    return jnp.sum((n2 - 1.0) ** 2)


# ------------------------------------------------------------------------------------ VICReg, finite beta
def vicreg_reduced_loss(theta, lam, alpha, beta, gamma):
    """VICReg G-form restricted to Y = E_K T (E_K: eigenvectors of the K smallest λ), T = U diag(r), |u_k| = 1.

    (1/K)[α Σ(1 − r_k) + β Σ_{k≠l} (TᵀT)_kl² + γ Σ_ik λ_i T_ik²] for r ∈ [0, 1]^K: the exact loss of that Y
    (hinge relu(1 − √Σ_kk) = 1 − r_k). theta = [r (K), U (K·K, row-major)].
    """
    import jax.numpy as jnp

    K = lam.shape[0]
    r = theta[:K]
    U = theta[K:].reshape(K, K)
    T = U / jnp.linalg.norm(U, axis=0) * r
    Gm = T.T @ T
    off = jnp.sum(Gm**2) - jnp.sum(jnp.diag(Gm) ** 2)
    return (alpha * jnp.sum(1.0 - r) + beta * off + gamma * jnp.sum(lam[:, None] * T**2)) / K


def _vicreg_T_value(T, lam, alpha, beta, gamma) -> float:
    """numpy twin of ``vicreg_reduced_loss`` evaluated at a mixing matrix T (columns of norm <= 1)."""
    K = lam.size
    r = np.linalg.norm(T, axis=0)
    Gm = T.T @ T
    off = np.sum(Gm**2) - np.sum(np.diag(Gm) ** 2)
    return float((alpha * np.sum(np.maximum(1.0 - r, 0.0)) + beta * off + gamma * np.sum(lam[:, None] * T**2)) / K)


def _vicreg_gauge(theta, lam, alpha, beta, gamma):
    """Unit |u_k|, and TTᵀ diagonal: every minimiser has TTᵀ = diag(g) (von Neumann), so the penalty keeps the
    minimum and removes the nearly flat left rotations T -> OT (flat at β = ∞)."""
    import jax.numpy as jnp

    K = lam.shape[0]
    U = theta[K:].reshape(K, K)
    T = U / jnp.linalg.norm(U, axis=0) * theta[:K]
    P = T @ T.T
    return _unit_columns_gauge(U) + jnp.sum(P**2) - jnp.sum(jnp.diag(P) ** 2)


def vicreg_unit_variance_optimum(lam, alpha, beta, gamma):
    """Best unit-variance VICReg point at finite β: Gram TᵀT = I + E, eig(E)_i = −γ(λ_i − λ̄)/(2β), diag E = 0.

    Returns (T, value, kkt) or None when some 1 + e_i < 0. Exact among configurations with every σ_k = 1
    (value (1/K)[β Σ e_i² + γ Σ (1 + e_i) λ_i], lower than the β → ∞ closed form by γ² Σ(λ_i − λ̄)²/(4βK));
    ``kkt`` is True when no column gains by shrinking (2γ(TᵀΛT)_kk + 4β Σ_{l≠k} Γ_kl² ≤ α for all k).
    """
    lam = np.asarray(lam, dtype=float)
    K = lam.size
    e = -gamma * (lam - lam.mean()) / (2.0 * beta)
    if np.any(1.0 + e < 0):
        return None
    Q = equalize_diagonal(e)  # diag(Qᵀ diag(e) Q) = mean(e) = 0
    T = np.sqrt(1.0 + e)[:, None] * Q
    Gm = T.T @ T
    value = float((beta * np.sum(e**2) + gamma * np.sum((1.0 + e) * lam)) / K)
    shrink = 2.0 * gamma * np.diag(T.T @ (lam[:, None] * T)) + 4.0 * beta * (np.sum(Gm**2, axis=1) - np.diag(Gm) ** 2)
    return T, value, bool(np.all(shrink <= alpha * (1.0 + 1e-12)))


def vicreg_finite_beta_optimum(lam, alpha, beta, gamma, n_starts=8, seed=0):
    """Certified optimum of VICReg at finite β given the K smallest eigenvalues λ of the invariance operator.

    Exact reduction (von Neumann's trace inequality): for any Y with Gram Γ = YᵀY the point E_K diag(√g)Rᵀ
    (Γ = R diag(g) Rᵀ, g descending, paired with λ ascending) has the same variance and covariance terms and
    no larger invariance term, so the optimum is E_K T with T a K×K matrix. T is found by multi-start
    L-BFGS-B + Newton from the β → ∞ closed form, the unit-variance optimum, rank-deficient starts and
    random starts. Returns (T, Certified); W = V_K T (linear) or Z = √N U_K T (non-parametric).
    """
    import jax.numpy as jnp

    from linsim.spectral.closed_forms import vicreg_sigma

    lam = np.asarray(lam, dtype=float)
    K = lam.size
    sigma = np.clip(vicreg_sigma(lam, alpha, gamma), 1e-3, 1.0)
    rng = np.random.default_rng(seed)
    starts = [np.concatenate([sigma, np.eye(K).ravel()])]
    unit = vicreg_unit_variance_optimum(lam, alpha, beta, gamma)
    if unit is not None:
        T = unit[0]
        starts.append(np.concatenate([np.ones(K), (T / np.linalg.norm(T, axis=0)).ravel()]))
    for m in range(K):  # first m dims orthogonal, the rest collapsed onto one direction (rank m+1)
        for target in {m, 0}:
            U = np.eye(K)
            U[:, m:] = 0.0
            U[target, m:] = 1.0
            U += 1e-3 * rng.standard_normal((K, K))
            starts.append(np.concatenate([sigma, U.ravel()]))
    for _ in range(int(n_starts)):
        starts.append(np.concatenate([rng.uniform(0.05, 1.0, K), rng.standard_normal(K * K)]))
    lo = np.concatenate([np.zeros(K), np.full(K * K, -np.inf)])
    hi = np.concatenate([np.ones(K), np.full(K * K, np.inf)])
    res = multistart(vicreg_reduced_loss, starts, args=(lam, float(alpha), float(beta), float(gamma)),
                     bounds=(lo, hi), gauge=_vicreg_gauge, maxiter=500)
    r, U = res.x[:K], res.x[K:].reshape(K, K)
    T = U / np.linalg.norm(U, axis=0) * r
    if unit is not None and unit[2] and unit[1] < res.value:  # the exact unit-variance point, when it is a KKT point
        T, values = unit[0], np.append(res.values, unit[1])
        res = Certified(x=np.concatenate([np.ones(K), T.ravel()]), value=unit[1], values=values, rtol=res.rtol)
    return T, res


# ------------------------------------------------------------------------------------ BarlowTwins
def whitened_cca(B, S):
    """Tied canonical correlations: eigenpairs of M = B^{-1/2} S_G B^{-1/2} (ρ descending), and B^{-1/2}."""
    B, S = np.asarray(B, dtype=float), np.asarray(S, dtype=float)
    _check_pd(B)
    wB, UB = np.linalg.eigh(B)
    Bmh = UB @ np.diag(wB**-0.5) @ UB.T
    rho, V = np.linalg.eigh(Bmh @ S @ Bmh)
    return rho[::-1], V[:, ::-1], Bmh


def barlow_zero_loss_mixing(rho, K):
    """Unit columns V (in the eigenbasis of M, D×K) with VᵀMV = I, i.e. BarlowTwins loss exactly 0, or None.

    Needs h = K/Σ_{k≤K} 1/ρ_k > 1 (then the tied-CCA span cannot reach 0): top eigenvector k is rotated
    towards bottom eigenvector j (pairs (K, D), (K−1, D−1), ...) until Σ_k 1/a_k = K, a_k = c²ρ_k + s²ρ_j
    the Rayleigh quotients of the rotated M-orthogonal basis P; then V = P diag(a)^{-1/2} Q with Q from
    ``equalize_diagonal`` makes diag(VᵀV) = 1 while VᵀMV = QᵀQ = I. None if the pairs cannot reach Σ 1/a = K.
    """
    rho = np.asarray(rho, dtype=float)
    D = rho.size
    K = int(K)
    if K > D or np.any(rho[:K] <= 0) or K / np.sum(1.0 / rho[:K]) <= 1.0:
        return None
    a = rho[:K].copy()
    partner = {}
    deficit = K - np.sum(1.0 / a)  # > 0: need Σ 1/a to grow to K
    for n, k in enumerate(range(K - 1, -1, -1)):
        j = D - 1 - n
        if j < K or deficit <= 0:
            break
        gain_max = np.inf if rho[j] <= 0 else 1.0 / rho[j] - 1.0 / rho[k]
        if gain_max <= 0:
            break
        partner[k] = j
        if gain_max >= deficit:
            a[k] = 1.0 / (1.0 / rho[k] + deficit)
            deficit = 0.0
            break
        a[k] = rho[j]
        deficit -= gain_max
    if deficit > 1e-12 * K:
        return None
    P = np.zeros((D, K))
    for k in range(K):
        if k in partner:
            j = partner[k]
            s2 = np.clip((rho[k] - a[k]) / (rho[k] - rho[j]), 0.0, 1.0)
            P[k, k], P[j, k] = np.sqrt(1.0 - s2), np.sqrt(s2)
        else:
            P[k, k] = 1.0
    Q = equalize_diagonal(1.0 / a)
    V = P @ np.diag(a**-0.5) @ Q
    return V / np.linalg.norm(V, axis=0)  # norms are 1 up to rounding


def barlow_zero_loss_weights(B, S, K):
    """Linear BarlowTwins with zero loss (C = I exactly) when h > 1: W = B^{-1/2} V_M V, or None (see above)."""
    rho, VM, Bmh = whitened_cca(B, S)
    K = _check_K(K, rho.size)
    V = barlow_zero_loss_mixing(rho, K)
    return None if V is None else Bmh @ VM @ V


def _barlow_flat_loss(w, B, S, lambd):
    from linsim.spectral.losses import barlow_linear_loss

    return barlow_linear_loss(w.reshape(B.shape[0], -1), B, S, lambd)


def _barlow_gauge(w, B, S, lambd):
    return _unit_columns_gauge(w.reshape(B.shape[0], -1), B)


def barlow_certified_weights(B, S, K, lambd, x0s=(), n_starts=8, seed=0):
    """Certified numerical optimum of linear BarlowTwins over all W (D×K): multi-start L-BFGS-B + Newton.

    For canonical correlations above 1 with h ≤ 1, where the tied-CCA span is not optimal and zero loss is out
    of reach. ``x0s``: extra starts (e.g. the tied-CCA solution). Returns (W, Certified).
    """
    import jax.numpy as jnp

    from linsim.spectral.losses import barlow_linear_loss

    B, S = np.asarray(B, dtype=float), np.asarray(S, dtype=float)
    D = B.shape[0]
    rng = np.random.default_rng(seed)
    starts = [np.asarray(x, dtype=float) for x in x0s] + [rng.standard_normal((D, K)) for _ in range(int(n_starts))]
    res = multistart(_barlow_flat_loss, starts, args=(B, S, float(lambd)), gauge=_barlow_gauge)
    return res.x.reshape(D, K), res


# ------------------------------------------------------------------------------------ SimCLR
def simclr_collapsed_loss(M, sizes, tau):
    """G-form NT-Xent when class c sits at one point μ_c: (1/N) Σ_c m_c log[(m_c − 1) + Σ_{d≠c} m_d e^{(s_cd − 1)/τ}].

    s_cd = cosine of the centres (rows of M); valid for any clique graph (P uniform over each class). JAX.
    """
    import jax.numpy as jnp

    M = jnp.asarray(M)
    m = jnp.asarray(sizes, dtype=M.dtype)
    Mn = M / jnp.linalg.norm(M, axis=1, keepdims=True)
    s = Mn @ Mn.T
    C = m.shape[0]
    off = (1.0 - jnp.eye(C)) * m[None, :] * jnp.exp((s - 1.0) / tau)
    return jnp.sum(m * jnp.log(m - 1.0 + off.sum(axis=1))) / jnp.sum(m)


def _simclr_flat_loss(v, sizes, tau):
    return simclr_collapsed_loss(v.reshape(sizes.shape[0], -1), sizes, tau)


def _simclr_gauge(v, sizes, tau):
    return _unit_columns_gauge(v.reshape(sizes.shape[0], -1).T)


def simclr_class_centres(sizes, K, tau, n_starts=8, seed=0):
    """Optimal class centres of SimCLR on a clique graph with class sizes m_c (numerical, multi-start).

    With equal sizes the regular simplex is optimal (Jensen + Σ_{c≠d} s_cd ≥ −C); with unequal sizes no
    formula is known, so the C unit centres are optimised in min(K, C) dimensions from the simplex (when
    K ≥ C−1) and random starts. Returns (unit centres (C, K), Certified).
    """
    import jax.numpy as jnp

    sizes = np.asarray(sizes, dtype=float)
    C = sizes.size
    if C < 2 or np.any(sizes < 2):
        raise LinsimError(f"SimCLR class centres need >= 2 classes of >= 2 points, found sizes {sizes.astype(int).tolist()}")
    K = int(K)
    Kr = min(K, C)
    rng = np.random.default_rng(seed)
    starts = []
    if K >= C - 1:
        starts.append(simplex_vertices(C, Kr) + 1e-4 * rng.standard_normal((C, Kr)))
    starts += [rng.standard_normal((C, Kr)) for _ in range(int(n_starts))]
    res = multistart(_simclr_flat_loss, starts, args=(sizes, float(tau)), gauge=_simclr_gauge)
    M = res.x.reshape(C, Kr)
    M = M / np.linalg.norm(M, axis=1, keepdims=True)
    return np.hstack([M, np.zeros((C, K - Kr))]), res


# ------------------------------------------------------------------------------------ spectral contrastive
def spectral_contrastive_encoder_weights(X, G, K):
    """HaoChen et al. (NeurIPS 2021, Eq. 5) spectral-contrastive loss of a linear encoder f(x) = Wᵀx, any degrees.

    With w = G/1ᵀG1 and D = diag(w1): L(W) = ‖D^{1/2}XWWᵀXᵀD^{1/2} − Ĝ‖² − ‖Ĝ‖², and D^{1/2}ĜD^{1/2} = w, so
    by Eckart–Young on the column space of D^{1/2}X: (Xᵀ w X) v = μ (Xᵀ D X) v, W* = [v_k √μ_k] over the top-K
    μ > 0 (vᵀXᵀDXv = 1), optimal value −Σ_k μ_k². Returns (W, μ).
    """
    X = np.asarray(X, dtype=float)
    G = validate_graph(G)
    if G.shape[0] != X.shape[0]:
        raise LinsimError(f"G must be (N, N) with N = X.shape[0] = {X.shape[0]}, found {G.shape}")
    K = _check_K(K, X.shape[1])
    w = G / G.sum()
    d = w.sum(axis=1)
    XDX = X.T @ (d[:, None] * X)
    _check_pd(XDX, "XᵀDX (degree-weighted second moment)")
    mu, V = scipy.linalg.eigh(X.T @ w @ X, XDX)
    mu, V = mu[::-1][:K], V[:, ::-1][:, :K]
    return V * np.sqrt(np.maximum(mu, 0.0)), mu
