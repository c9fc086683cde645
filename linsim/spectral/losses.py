"""SSL losses in JAX: the graph (G) forms of Balestriero & LeCun (NeurIPS 2022) and the official two-view forms.

All functions are pure and jit/grad-friendly. Shape checks run on the Python side (static shapes), so they
work under ``jax.jit`` too. ``G`` is a dense symmetric matrix (see ``linsim.spectral.graphs``).
"""
from __future__ import annotations

import jax
import jax.numpy as jnp

from linsim.errors import LinsimError

__all__ = [
    "vicreg_graph_loss",
    "vicreg_loss",
    "nt_xent_graph_loss",
    "nt_xent_loss",
    "barlow_graph_loss",
    "barlow_loss",
    "barlow_linear_loss",
    "spectral_contrastive_graph_loss",
    "spectral_contrastive_loss",
    "spectral_contrastive_matrix_loss",
]


def _check_pair(z_a, z_b) -> None:
    if z_a.ndim != 2 or z_b.ndim != 2:
        raise LinsimError(f"z_a and z_b must be 2-D (batch, dim), found ndim {z_a.ndim} and {z_b.ndim}")
    if z_a.shape != z_b.shape:
        raise LinsimError(f"z_a and z_b must have the same shape, found {tuple(z_a.shape)} and {tuple(z_b.shape)}")
    if z_a.shape[0] < 2:
        raise LinsimError(f"a batch needs at least 2 rows, found {z_a.shape[0]}")


def _check_graph(Z, G) -> None:
    if Z.ndim != 2:
        raise LinsimError(f"Z must be 2-D (N, K), found shape {tuple(Z.shape)}")
    if G.shape != (Z.shape[0], Z.shape[0]):
        raise LinsimError(f"G must be (N, N) = {(Z.shape[0], Z.shape[0])} to match Z, found {tuple(G.shape)}")


def offdiag_sq_sum(C):
    """Sum of squared off-diagonal entries, sum_{k != l} C_kl^2."""
    return jnp.sum(C**2) - jnp.sum(jnp.diag(C) ** 2)


def vicreg_graph_loss(Z, G, alpha=1.0, beta=1.0, gamma=1.0, eps=0.0):
    """VICReg in G-form: (α/K)Σ relu(1−√Σ_kk) + (β/K)Σ_{k≠l}Σ_kl² + γ/(NK) tr(ZᵀLZ), Σ = ZᵀHZ/N."""
    Z, G = jnp.asarray(Z), jnp.asarray(G)
    _check_graph(Z, G)
    N, K = Z.shape
    Zc = Z - Z.mean(axis=0)
    S = Zc.T @ Zc / N
    var_term = jnp.sum(jax.nn.relu(1.0 - jnp.sqrt(jnp.diag(S) + eps))) / K
    cov_term = offdiag_sq_sum(S) / K
    L = jnp.diag(G.sum(axis=1)) - G
    inv_term = jnp.trace(Z.T @ L @ Z) / (N * K)
    return alpha * var_term + beta * cov_term + gamma * inv_term


def vicreg_loss(z_a, z_b, sim_coeff=25.0, std_coeff=25.0, cov_coeff=1.0, eps=1e-4):
    """Official two-view VICReg (facebookresearch/vicreg main_vicreg.py): λ·mse + μ·std hinge + ν·cov."""
    z_a, z_b = jnp.asarray(z_a), jnp.asarray(z_b)
    _check_pair(z_a, z_b)
    n, K = z_a.shape
    repr_loss = jnp.mean((z_a - z_b) ** 2)
    xa, xb = z_a - z_a.mean(0), z_b - z_b.mean(0)
    std_a = jnp.sqrt(jnp.var(xa, axis=0, ddof=1) + eps)
    std_b = jnp.sqrt(jnp.var(xb, axis=0, ddof=1) + eps)
    std_loss = 0.5 * jnp.mean(jax.nn.relu(1 - std_a)) + 0.5 * jnp.mean(jax.nn.relu(1 - std_b))
    cov_a, cov_b = xa.T @ xa / (n - 1), xb.T @ xb / (n - 1)
    cov_loss = offdiag_sq_sum(cov_a) / K + offdiag_sq_sum(cov_b) / K
    return sim_coeff * repr_loss + std_coeff * std_loss + cov_coeff * cov_loss


def _cosine(Z):
    Zn = Z / jnp.linalg.norm(Z, axis=1, keepdims=True)
    return Zn @ Zn.T


def nt_xent_graph_loss(Z, G, tau=0.1):
    """NT-Xent in G-form: −(1/N) Σ_i Σ_{j≠i} P_ij log softmax_{k≠i}(s_ik/τ)_j with P = Dg⁻¹G, cosine s."""
    Z, G = jnp.asarray(Z), jnp.asarray(G)
    _check_graph(Z, G)
    N = Z.shape[0]
    logits = _cosine(Z) / tau
    logits = jnp.where(jnp.eye(N, dtype=bool), -jnp.inf, logits)
    logp = jax.nn.log_softmax(logits, axis=1)
    logp = jnp.where(jnp.eye(N, dtype=bool), 0.0, logp)
    P = G / G.sum(axis=1, keepdims=True)
    return -jnp.sum(P * logp) / N


def nt_xent_loss(z_a, z_b, tau=0.1):
    """Standard symmetric SimCLR NT-Xent over the 2n anchors (positive = the other view), cosine similarity."""
    z_a, z_b = jnp.asarray(z_a), jnp.asarray(z_b)
    _check_pair(z_a, z_b)
    n = z_a.shape[0]
    Z = jnp.concatenate([z_a, z_b], axis=0)
    logits = _cosine(Z) / tau
    logits = jnp.where(jnp.eye(2 * n, dtype=bool), -jnp.inf, logits)
    logp = jax.nn.log_softmax(logits, axis=1)
    pos = jnp.concatenate([jnp.arange(n, 2 * n), jnp.arange(0, n)])
    return -jnp.mean(logp[jnp.arange(2 * n), pos])


def _standardize(Z, eps):
    Zc = Z - Z.mean(axis=0)
    return Zc / jnp.sqrt(jnp.mean(Zc**2, axis=0) + eps)


def barlow_graph_loss(Z, G, lambd=0.0051, eps=0.0):
    """BarlowTwins in G-form: C_G = ẐᵀGẐ/(1ᵀG1), Ẑ column-standardised over N rows (biased var)."""
    Z, G = jnp.asarray(Z), jnp.asarray(G)
    _check_graph(Z, G)
    Zs = _standardize(Z, eps)
    C = Zs.T @ G @ Zs / jnp.sum(G)
    return jnp.sum((1.0 - jnp.diag(C)) ** 2) + lambd * offdiag_sq_sum(C)


def barlow_loss(z_a, z_b, lambd=0.0051, eps=1e-5):
    """Official two-view BarlowTwins (facebookresearch/barlowtwins main.py): BN per view, C = ẑ_aᵀẑ_b/n."""
    z_a, z_b = jnp.asarray(z_a), jnp.asarray(z_b)
    _check_pair(z_a, z_b)
    n = z_a.shape[0]
    C = _standardize(z_a, eps).T @ _standardize(z_b, eps) / n
    return jnp.sum((1.0 - jnp.diag(C)) ** 2) + lambd * offdiag_sq_sum(C)


def barlow_linear_loss(W, B, S_G, lambd=0.0051):
    """Linear BarlowTwins G-form as a function of W: C = D^{-1/2} WᵀS_G W D^{-1/2}, D = diag(WᵀBW)."""
    W, B, S_G = jnp.asarray(W), jnp.asarray(B), jnp.asarray(S_G)
    s = 1.0 / jnp.sqrt(jnp.sum(W * (B @ W), axis=0))
    C = (W.T @ S_G @ W) * s[:, None] * s[None, :]
    return jnp.sum((1.0 - jnp.diag(C)) ** 2) + lambd * offdiag_sq_sum(C)


def spectral_contrastive_matrix_loss(U, G):
    """Matrix form of the spectral-contrastive loss (HaoChen et al. 2021): ‖UUᵀ − Ĝ‖_F², Ĝ = Dg^{-1/2}GDg^{-1/2}."""
    U, G = jnp.asarray(U), jnp.asarray(G)
    _check_graph(U, G)
    d = G.sum(axis=1)
    inv = jnp.where(d > 0, 1.0 / jnp.sqrt(jnp.where(d > 0, d, 1.0)), 0.0)
    Ghat = inv[:, None] * G * inv[None, :]
    return jnp.sum((U @ U.T - Ghat) ** 2)


def spectral_contrastive_graph_loss(F, G):
    """Spectral-contrastive loss on a graph: −2 Σ_ij w_ij f_iᵀf_j + Σ_ij d_i d_j (f_iᵀf_j)², w = G/1ᵀG1.

    Equals ``spectral_contrastive_matrix_loss(sqrt(d) * F, G) - ‖Ĝ‖_F²`` (d = degrees of w).
    """
    F, G = jnp.asarray(F), jnp.asarray(G)
    _check_graph(F, G)
    w = G / jnp.sum(G)
    d = w.sum(axis=1)
    S = F @ F.T
    return -2.0 * jnp.sum(w * S) + jnp.sum(d[:, None] * d[None, :] * S**2)


def spectral_contrastive_loss(z_a, z_b):
    """Two-view spectral-contrastive loss (HaoChen et al. 2021): −2 mean_i z_aiᵀz_bi + mean_{i≠j} (z_aiᵀz_bj)²."""
    z_a, z_b = jnp.asarray(z_a), jnp.asarray(z_b)
    _check_pair(z_a, z_b)
    n = z_a.shape[0]
    S = z_a @ z_b.T
    pos = jnp.mean(jnp.diag(S))
    neg = (jnp.sum(S**2) - jnp.sum(jnp.diag(S) ** 2)) / (n * (n - 1))
    return -2.0 * pos + neg
