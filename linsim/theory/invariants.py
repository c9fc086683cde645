"""Invariants and alignment diagnostics along a trajectory (numpy; leading axis = time).

References: Tian, Chen & Ganguli, "Understanding Self-supervised Learning Dynamics without Contrastive
Pairs", ICML 2021 (arXiv 2102.06810): Theorem 1 (weight decay balances the predictor and the layer before
it), the per-mode invariant parabola and the eigenspace-alignment result; derivations and
conventions in docs/theory_dynamics.md.
"""
from __future__ import annotations

import numpy as np


def _fro(a: np.ndarray) -> np.ndarray:
    return np.sqrt(np.sum(a * a, axis=(-2, -1)))


def balance_residual_matrix(ts, W, Wp, alpha_p, eta):
    """||C(t) - e^{-2 eta t} C(0)||_F / (||Wp^T Wp(0)||/a_p + ||W W^T(0)||), C = Wp^T Wp / a_p - W W^T (Thm 1).

    The denominator is the size of the two terms at t = 0, so it stays meaningful for balanced inits (C(0) = 0).
    """
    ts = np.asarray(ts)
    cee = lambda i: (np.swapaxes(Wp[i], -1, -2) @ Wp[i] / alpha_p, W[i] @ np.swapaxes(W[i], -1, -2))  # noqa: E731
    PP0, WW0 = cee(0)
    C0, scale = PP0 - WW0, _fro(PP0) + _fro(WW0)
    out = np.empty(len(ts))
    for i in range(0, len(ts), 8):  # a few states at a time: at n = 256 all at once took 4 x 27 MB of temporaries
        PP, WW = cee(slice(i, i + 8))
        out[i:i + 8] = _fro(PP - WW - np.exp(-2 * eta * ts[i:i + 8])[:, None, None] * C0)
    return out / max(scale, np.finfo(float).tiny)


def balance_residual(W, Wp, alpha_p):
    """||C||_F / (||Wp^T Wp||_F/a_p + ||W W^T||_F), C = Wp^T Wp / a_p - W W^T, at one time (Thm 1).

    C decays like e^{-2 eta t} under weight decay eta, so this is 0 for a balanced pair and at most 1.
    W is (d, h) (the layer whose output feeds the predictor), Wp is (d, d); leading axes broadcast.
    """
    PP = np.swapaxes(Wp, -1, -2) @ Wp / alpha_p
    WW = W @ np.swapaxes(W, -1, -2)
    return _fro(PP - WW) / np.maximum(_fro(PP) + _fro(WW), np.finfo(float).tiny)


def balance_residual_modes_series(ts, p, s, alpha_p, eta):
    """|c_j(t) - e^{-2 eta t} c_j(0)| / (p_j(0)^2/a_p + s_j(0)), c = p^2/a_p - s, per time and mode (Eq. 7).

    p, s: (T, m); alpha_p, eta: scalars or per-mode arrays (m,). Returns (T, m)."""
    ts = np.asarray(ts)
    c = p**2 / alpha_p - s
    pred = np.exp(-2 * np.multiply.outer(ts, eta)).reshape(ts.size, -1) * c[0]
    scale = np.maximum(p[0] ** 2 / alpha_p + s[0], np.finfo(float).tiny)
    return np.abs(c - pred) / scale


def balance_residual_modes(ts, p, s, alpha_p, eta):
    """The per-mode integral-of-motion residual (Tian et al. 2021, Eq. 7), max over modes: shape (T,)."""
    return np.max(balance_residual_modes_series(ts, p, s, alpha_p, eta), axis=-1)


def asymmetry(Wp):
    """||Wp - Wp^T||_F / ||Wp||_F: 0 for a symmetric predictor (docs/theory_dynamics.md)."""
    return _fro(Wp - np.swapaxes(Wp, -1, -2)) / np.maximum(_fro(Wp), np.finfo(float).tiny)


def commutator_norm(F, Wp):
    """||[F, Wp]||_F / (||F||_F ||Wp||_F): 0 once Wp and F share eigenvectors (eigenspace alignment)."""
    L = F @ Wp - Wp @ F
    return _fro(L) / np.maximum(_fro(F) * _fro(Wp), np.finfo(float).tiny)


def _diag_in_basis(U, A):
    """Diagonal of U^T A U (column j: u_j^T A u_j), with BLAS matmuls."""
    return np.sum(U * (A @ U), axis=-2)


def _eigh_desc(A):
    """Eigen-decomposition of sym(A), eigenvalues in descending order."""
    lam, U = np.linalg.eigh((A + np.swapaxes(A, -1, -2)) / 2)
    return lam[..., ::-1], U[..., ::-1]


def matrix_modes(W, Wp, Wa, X):
    """Per-mode view of matrix states (X: n x n, or its diagonal as a vector): s_j = eig(F = W X W^T)
    (descending), p_j = u_j^T Wp u_j, tau_j = u_j^T (Wa X W^T) u_j / s_j (NaN where s_j = 0), eig(sym Wp)
    (descending), F and the eigenvector alignment |u_{Wp,j}^T u_{F,j}| (both bases sorted by eigenvalue, sym(Wp); docs/theory_dynamics.md)."""
    X = np.asarray(X)
    WX = W * X if X.ndim == 1 else W @ X  # a 1-D X is the diagonal of diagonal statistics
    WT = np.swapaxes(W, -1, -2)
    F = WX @ WT
    F = (F + np.swapaxes(F, -1, -2)) / 2
    s, U = _eigh_desc(F)
    p = _diag_in_basis(U, Wp)
    fa = _diag_in_basis(U, (Wa * X if X.ndim == 1 else Wa @ X) @ WT)
    with np.errstate(divide="ignore", invalid="ignore"):
        tau = np.where(s > 0, fa / np.where(s > 0, s, 1.0), np.nan)
    wp_eig, UP = _eigh_desc(Wp)
    align = np.abs(np.sum(U * UP, axis=-2))
    return np.clip(s, 0, None), p, tau, wp_eig, F, align


def alignment(F, Wp):
    """|u_{Wp,j}^T u_{F,j}|, both eigenbases sorted by eigenvalue (descending), sym(Wp) (docs/theory_dynamics.md)."""
    _, UF = _eigh_desc(F)
    _, UP = _eigh_desc(Wp)
    return np.abs(np.sum(UF * UP, axis=-2))
