"""Stepwise learning of linear Barlow Twins (Simon, Knutins, Ziyin, Geisz, Fetterman & Albrecht, "On the Stepwise
Nature of Self-Supervised Learning", ICML 2023) and toy case 1 of dimensional collapse under strong augmentation
(Jing, Vincent, LeCun & Tian, "Understanding Dimensional Collapse in Contrastive Self-supervised Learning",
ICLR 2022). JAX, float64.
"""
from __future__ import annotations

from functools import partial

import jax
import jax.numpy as jnp
import numpy as np

from linsim.errors import LinsimError
from linsim.loops import scan_saving

__all__ = [
    "cross_correlation",
    "bt_flow_field",
    "aligned_trajectory",
    "embedding_eigenvalues",
    "step_times",
    "loss_staircase",
    "final_weights",
    "simulate_bt_flow",
    "kernel_final_embedding",
    "jing_case1",
]


def cross_correlation(x, x_pos) -> np.ndarray:
    """Γ = (1/2n) Σ_i (x_i x_i'ᵀ + x_i' x_iᵀ) from n positive pairs (rows of x and x_pos)."""
    x, x_pos = np.asarray(x, dtype=float), np.asarray(x_pos, dtype=float)
    if x.shape != x_pos.shape:
        raise LinsimError(f"x and x_pos must have the same shape, found {x.shape} and {x_pos.shape}")
    return (x.T @ x_pos + x_pos.T @ x) / (2 * x.shape[0])


def bt_flow_field(W, Gamma):
    """Gradient flow of L = ‖WΓWᵀ − I‖_F²: dW/dt = −4(WΓWᵀ − I)WΓ."""
    d = W.shape[0]
    return -4.0 * (W @ Gamma @ W.T - jnp.eye(d)) @ W @ Gamma


def aligned_trajectory(gammas, s0, t) -> np.ndarray:
    """Exact s_j(t)² = e^{8γ_j t}/(s_j(0)⁻² + γ_j(e^{8γ_j t} − 1)) from aligned init; shape (len(t), d)."""
    g = np.asarray(gammas, dtype=float)[None, :]
    s0 = np.broadcast_to(np.asarray(s0, dtype=float), g.shape[1:])[None, :]
    e = np.exp(8.0 * g * np.asarray(t, dtype=float)[:, None])
    return e / (s0**-2 + g * (e - 1.0))


def embedding_eigenvalues(gammas, s0, t) -> np.ndarray:
    """λ_j(t) = γ_j s_j(t)², the logistic eigenvalues of C; shape (len(t), d)."""
    return np.asarray(gammas, dtype=float)[None, :] * aligned_trajectory(gammas, s0, t)


def step_times(gammas, lam0) -> np.ndarray:
    """Half-crossing (λ_j = ½) times t_j = ln((1 − λ_j(0))/λ_j(0))/(8γ_j); inf for γ_j ≤ 0."""
    g = np.asarray(gammas, dtype=float)
    lam0 = np.broadcast_to(np.asarray(lam0, dtype=float), g.shape)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(g > 0, np.log((1.0 - lam0) / lam0) / (8.0 * np.where(g > 0, g, 1.0)), np.inf)


def loss_staircase(lams) -> np.ndarray:
    """L(t) = Σ_j (1 − λ_j(t))² for eigenvalues of C (last axis): plateaus d, d−1, …, #{γ_j ≤ 0}."""
    return np.sum((1.0 - np.asarray(lams)) ** 2, axis=-1)


def final_weights(Gamma, d, U=None) -> np.ndarray:
    """W_∞ = U_d diag(γ_j^{-1/2}) V_dᵀ, the whitened top-d eigenprojection of Γ (needs γ_j > 0)."""
    g, V = np.linalg.eigh(np.asarray(Gamma, dtype=float))
    g, V = g[::-1][:d], V[:, ::-1][:, :d]
    if np.any(g <= 0):
        raise LinsimError(f"W_inf needs the top-{d} eigenvalues of Gamma positive, found {g.min():.3g}")
    U = np.eye(d) if U is None else np.asarray(U)
    return U @ np.diag(g**-0.5) @ V.T


@partial(jax.jit, static_argnames=("n_steps", "save_every"))
def _euler(W0, Gamma, dt, n_steps, save_every):
    return scan_saving(lambda W: W + dt * bt_flow_field(W, Gamma), W0, n_steps // save_every, save_every,
                       with_initial=False)


def simulate_bt_flow(Gamma, W0, dt=1e-3, t_max=5.0, save_every=10):
    """Euler integration (lax.scan) of the BT gradient flow from W0 (d, m).

    Returns (t, Ws, lams, loss): saved times, weights (T, d, m), eigenvalues of C = WΓWᵀ (descending), loss.
    """
    Gamma = jnp.asarray(Gamma, dtype=jnp.float64)
    W0 = jnp.asarray(W0, dtype=jnp.float64)
    n_steps = int(round(t_max / dt))
    n_steps -= n_steps % save_every
    Ws = _euler(W0, Gamma, float(dt), n_steps, int(save_every))
    C = jnp.einsum("tdm,mk,tek->tde", Ws, Gamma, Ws)
    lams = np.asarray(jnp.linalg.eigvalsh(C))[:, ::-1]
    t = dt * save_every * np.arange(1, n_steps // save_every + 1)
    loss = np.asarray(jnp.sum((C - jnp.eye(W0.shape[0])) ** 2, axis=(1, 2)))
    return t, np.asarray(Ws), lams, loss


def kernel_final_embedding(Psi, n, d, k_test, rcond=1e-10) -> np.ndarray:
    """Kernel form of W_∞: f_j(x) = γ_j^{-1/2} b_jᵀ K^{+1/2} k(x), K = ΨΨᵀ, M = K^{1/2}P_swap K^{1/2}/(2n).

    Psi: (2n, p) training features (rows i and n+i a positive pair); k_test: (2n, T) kernel columns k(x).
    Returns (d, T) embeddings (defined up to a left orthogonal U_d).
    """
    Psi = np.asarray(Psi, dtype=float)
    K = Psi @ Psi.T
    w, E = np.linalg.eigh(K)
    keep = w > rcond * w.max()
    Kh = (E[:, keep] * np.sqrt(w[keep])) @ E[:, keep].T
    Kmh = (E[:, keep] / np.sqrt(w[keep])) @ E[:, keep].T
    P = np.zeros((2 * n, 2 * n))
    P[np.arange(n), np.arange(n, 2 * n)] = 1.0
    P[np.arange(n, 2 * n), np.arange(n)] = 1.0
    g, Bv = np.linalg.eigh(Kh @ P @ Kh / (2 * n))
    g, Bv = g[::-1][:d], Bv[:, ::-1][:, :d]
    return (Bv / np.sqrt(g)).T @ Kmh @ np.asarray(k_test, dtype=float)


@partial(jax.jit, static_argnames=("steps", "n_data", "batch", "dim", "n_aug"))
def _jing_run(key, noise, steps, n_data, batch, dim, n_aug, lr, tau):
    kx, kw, kb, kloop, ktest = jax.random.split(key, 5)
    x = jax.random.normal(kx, (n_data, dim))
    bound = 1.0 / jnp.sqrt(dim)  # torch nn.Linear default init
    params = (jax.random.uniform(kw, (dim, dim), minval=-bound, maxval=bound),
              jax.random.uniform(kb, (dim,), minval=-bound, maxval=bound))
    mask = jnp.concatenate([jnp.zeros(dim - n_aug), jnp.ones(n_aug)])

    def loss(p, x1, x2):
        W, b = p
        z1, z2 = x1 @ W.T + b, x2 @ W.T + b
        logits = z1 @ z2.T / tau  # unnormalised InfoNCE, one direction (directclr toy_task/case_1.py)
        return -jnp.mean(jnp.diag(jax.nn.log_softmax(logits, axis=1)))

    grad = jax.grad(loss)

    def step(p, k):
        k1, k2, k3 = jax.random.split(k, 3)
        xi = x[jax.random.randint(k1, (batch,), 0, n_data)]  # with replacement (cheap; torch: without)
        x1 = xi + noise * mask * jax.random.normal(k2, xi.shape)
        x2 = xi + noise * mask * jax.random.normal(k3, xi.shape)
        g = grad(p, x1, x2)
        return jax.tree_util.tree_map(lambda a, b: a - lr * b, p, g), None

    params, _ = jax.lax.scan(step, params, jax.random.split(kloop, steps))
    W, b = params
    zt = jax.random.normal(ktest, (1000, dim)) @ W.T + b
    zc = zt - zt.mean(0)
    ev = jnp.linalg.eigvalsh(zc.T @ zc / 999)[::-1]
    return jnp.log(ev)


def jing_case1(noise=1.5, steps=10_000, seeds=(0, 1, 2), n_data=10_000, batch=128, lr=1e-3, tau=0.1):
    """Jing et al. 2022 toy case 1: Linear(16,16)+bias, InfoNCE on unnormalised z₁z₂ᵀ/τ, noise on the last 8
    dims only, SGD; returns the seed-averaged sorted log-eigenvalues of cov(Wx + b) on 1000 fresh N(0, I) points."""
    runs = [_jing_run(jax.random.PRNGKey(int(s)), float(noise), int(steps), int(n_data), int(batch), 16, 8,
                      float(lr), float(tau)) for s in seeds]
    return np.mean(np.stack([np.asarray(r) for r in runs]), axis=0)
