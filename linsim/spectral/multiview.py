"""m-view losses exactly as in the fastssl code (Agrawal et al., arXiv 2312.10725; github.com/kumarkrishna/fastssl)
and two studies: the sampled-graph kernel estimation error and the orthogonality/rank study.

Stacked embeddings z have shape (m·B, d), view-major: rows a·B..(a+1)·B−1 are view a.
"""
from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from linsim.errors import LinsimError
from linsim.metrics import rankme
from linsim.spectral.graphs import normalized_adjacency
from linsim.spectral.losses import offdiag_sq_sum

__all__ = [
    "multiview_barlow_loss",
    "multiview_vicreg_loss",
    "augmentation_chain",
    "kernel_estimation_error",
    "orthogonality_rank_study",
]


def _split(z, m):
    z = jnp.asarray(z)
    if z.ndim != 2:
        raise LinsimError(f"z must be 2-D (m*B, d), found shape {tuple(z.shape)}")
    if int(m) < 2 or z.shape[0] % int(m):
        raise LinsimError(f"z has {z.shape[0]} rows, which is not m*B for m = {m} views (m >= 2)")
    return z.reshape(int(m), z.shape[0] // int(m), z.shape[1])


def multiview_barlow_loss(z, m, lambd=1.0 / 128):
    """fastssl BarlowTwinLoss: pooled unbiased standardisation; m>2 invariance to the mean view."""
    zv = _split(z, m)
    m, B, d = zv.shape
    flat = zv.reshape(m * B, d)
    zt = (flat - flat.mean(0)) / jnp.std(flat, axis=0, ddof=1)
    zt = zt.reshape(m, B, d)
    if m == 2:
        total = 0.0
        for i in range(2):
            C = zt[i].T @ zt[1 - i] / B
            total = total + jnp.sum((1 - jnp.diag(C)) ** 2) + lambd * offdiag_sq_sum(C)
        return total / m
    zbar = zt.mean(0)
    inv = jnp.mean(jnp.sum((1 - jnp.einsum("anb,nb->ab", zt, zbar) / B) ** 2, axis=1))
    Cbar = zbar.T @ zbar / B
    return inv + lambd * offdiag_sq_sum(Cbar)


def _vic_terms(z1, z2):
    B, d = z1.shape
    repr_ = jnp.mean((z1 - z2) ** 2)
    c1, c2 = z1 - z1.mean(0), z2 - z2.mean(0)
    std = 0.5 * jnp.mean(jax.nn.relu(1 - jnp.std(c1, axis=0, ddof=1))) + 0.5 * jnp.mean(
        jax.nn.relu(1 - jnp.std(c2, axis=0, ddof=1)))
    cov = offdiag_sq_sum(c1.T @ c1 / (B - 1)) / d + offdiag_sq_sum(c2.T @ c2 / (B - 1)) / d
    return repr_, std, cov


def multiview_vicreg_loss(z, m, lambd=25.0, mu=25.0):
    """fastssl VICRegLoss: view i vs the leave-one-out mean of the others; m>2 averaged, m=2 only i=0."""
    zv = _split(z, m)
    m = zv.shape[0]
    total = zv.sum(0)
    idx = [0] if m == 2 else range(m)
    acc = 0.0
    for i in idx:
        r, s, c = _vic_terms(zv[i], (total - zv[i]) / (m - 1))
        acc = acc + lambd * r + mu * s + c
    return acc if m == 2 else acc / m


# --------------------------------------------------------------------------------------------- kernel estimation
def augmentation_chain(n_atoms=40, n_classes=4, width=2.0, leak=0.02):
    """Row-stochastic T[x, a] = p(a|x) on a ring of atoms split into classes ("augmentation Markov chain").

    Images are atoms (uniform); a view stays in the image's class block with a Gaussian window of ``width``
    atoms, and jumps anywhere with total probability ``leak``.
    """
    idx = np.arange(n_atoms)
    cls = idx * n_classes // n_atoms
    dist = np.abs(idx[:, None] - idx[None, :])
    T = np.exp(-0.5 * (dist / width) ** 2) * (cls[:, None] == cls[None, :])
    T = (1 - leak) * T / T.sum(1, keepdims=True) + leak / n_atoms
    return T


def _top_eigspace(G, d):
    """Top-d eigenvectors of the normalized adjacency of G."""
    _, V = np.linalg.eigh(normalized_adjacency(G))
    return V[:, ::-1][:, :d]


def kernel_estimation_error(T, views, budget, d, n_seeds=5, seed=0):
    """Projector distance of the top-d eigenspace of the sampled positive-pair graph to the population one.

    For each m in ``views``, n = budget // m images, m views each; the empirical pair graph counts the
    m(m−1) ordered pairs per image. Population graph: P(a, a') = mean_x T[x,a]T[x,a'] (off-diagonal kept).
    Both eigenspaces are those of the normalised adjacency Ĝ (the closed-form span on one-hot atoms).
    Returns an array (len(views), n_seeds).
    """
    T = np.asarray(T, dtype=float)
    A = T.shape[1]
    P = T.T @ T / T.shape[0]
    V_pop = _top_eigspace(P, d)
    Ppop = V_pop @ V_pop.T
    rng = np.random.default_rng(seed)
    out = np.zeros((len(views), n_seeds))
    cdf = np.cumsum(T, axis=1)
    for i, m in enumerate(views):
        n = int(budget) // int(m)
        for r in range(n_seeds):
            x = rng.integers(0, T.shape[0], size=n)
            u = rng.random((n, int(m)))
            a = np.minimum((u[:, :, None] > cdf[x][:, None, :]).sum(-1), A - 1)  # (n, m) atoms
            onehot = np.zeros((n, int(m), A))
            np.put_along_axis(onehot, a[:, :, None], 1.0, axis=2)
            s = onehot.sum(1)  # (n, A) counts per image
            G = s.T @ s - np.einsum("nma,nmb->ab", onehot, onehot)  # ordered pairs of distinct views
            V = _top_eigspace(G, d)
            out[i, r] = np.linalg.norm(V @ V.T - Ppop, 2)
    return out


# --------------------------------------------------------------------------------------------- orthogonality vs rank
def orthogonality_rank_study(lambdas, dims, D=24, rho0=0.95, decay=0.8, n_starts=2, seed=0, init_scale=0.1):
    """RankMe of the column-normalised optimum W of whitened population BT (ρ_k = ρ0·decay^k) vs λ and d.

    Minimises ``barlow_linear_loss`` with B = I, S = diag(ρ) by L-BFGS from small random starts (best kept).
    Returns an array (len(dims), len(lambdas)).
    """
    from linsim.spectral.losses import barlow_linear_loss
    from linsim.spectral.optimize import minimize_restarts

    rho = rho0 * decay ** np.arange(D)
    B, S = jnp.eye(D), jnp.diag(jnp.asarray(rho))
    out = np.zeros((len(dims), len(lambdas)))
    for i, d in enumerate(dims):
        for j, lam in enumerate(lambdas):
            res = minimize_restarts(lambda W, lam=lam: barlow_linear_loss(W, B, S, lam), (D, int(d)),
                                    n_starts=n_starts, seed=seed, scale=init_scale)
            W = res.x / np.linalg.norm(res.x, axis=0, keepdims=True)
            out[i, j] = _rankme(W)
    return out


def _rankme(Z, eps=1e-7):
    return float(rankme(np.asarray(Z), eps=eps))
