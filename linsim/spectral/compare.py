"""Closed form vs gradient descent for one SSL loss on a pairwise graph, and a linear probe (§2.5-2.6).

Shared by ``linsim spectral`` and the figure recipes, so neither re-implements the comparison.
"""
from __future__ import annotations

import numpy as np

def probe_accuracy(Z, y) -> float:
    """Train accuracy of a closed-form least-squares linear probe (one-hot targets, with bias)."""
    classes, yi = np.unique(y, return_inverse=True)
    A = np.hstack([Z, np.ones((Z.shape[0], 1))])
    coef, *_ = np.linalg.lstsq(A, np.eye(len(classes))[yi], rcond=None)
    return float(np.mean(np.argmax(A @ coef, axis=1) == yi))


def closed_form_vs_gd(method, X, y, G, K, alpha, beta, gamma, lambd, tau, gd_starts, seed):
    """Closed form and best-of-``gd_starts`` L-BFGS on the same loss; returns (Z, closed_loss, gd_result, extra).

    ``method``: vicreg (A-W2/A-W3), barlow (A-W4), spectral-contrastive (A-W6) or simclr (A-Z3, non-parametric).
    """
    import jax.numpy as jnp

    import linsim.spectral as sp

    N, D = X.shape
    Xc = X - X.mean(0)
    Xj, Gj = jnp.asarray(Xc), jnp.asarray(G)
    extra = {}
    if method == "vicreg":
        if N <= D:
            W, Z = sp.vicreg_low_data_weights(Xc, G, K, alpha, gamma)
            extra["closed_form"] = "A-W3 (N <= D): W = X^+ Z*, Z* from A-Z2"
        else:
            W, lam = sp.vicreg_linear_weights(Xc, G, K, alpha, gamma)
            extra["closed_form"] = "A-W2: eigh(A_L, B) smallest K, scaled by sigma_k = min(1, alpha/(2 gamma lambda_k))"
            extra["generalized_eigenvalues"] = lam
        f = lambda W: sp.vicreg_graph_loss(Xj @ W, Gj, alpha, beta, gamma)  # noqa: E731
        shape = (D, K)
    elif method == "barlow":
        W, info = sp.barlow_linear_weights(Xc, G, K, lambd=lambd, seed=seed)
        extra["closed_form"] = f"A-W4: tied-CCA span, within-span mixing '{info['point']}'"
        extra["canonical_correlations"] = info["rho"]
        f = lambda W: sp.barlow_graph_loss(Xj @ W, Gj, lambd)  # noqa: E731
        shape = (D, K)
    elif method == "spectral-contrastive":
        Xr = jnp.asarray(X)
        W, mu = sp.spectral_contrastive_linear_weights(X, G, K)
        extra["closed_form"] = "A-W6: eigh(X^T Ghat X, X^T X) top K"
        Gh = jnp.asarray(sp.normalized_adjacency(G))
        f = lambda W: jnp.sum((Xr @ W @ W.T @ Xr.T - Gh) ** 2)  # noqa: E731
        shape = (D, K)
        Xc = X
    else:  # simclr: non-parametric Z (no linear closed form is known, A-W5)
        W = None
        f = lambda Z: sp.nt_xent_graph_loss(Z, Gj, tau)  # noqa: E731
        shape = (N, K)
        from scipy.sparse.csgraph import connected_components

        comps, comp = connected_components(G > 0, directed=False)
        is_cliques = np.array_equal((G > 0) | np.eye(N, dtype=bool), comp[:, None] == comp[None, :])
        if is_cliques and K >= comps - 1 and comps >= 2:
            Z = sp.simclr_clique_embedding(comp, K)
            extra["closed_form"] = "A-Z3: cliques collapsed onto a regular simplex (non-parametric Z)"
        else:
            Z = None
            extra["closed_form"] = f"none: A-Z3 needs a clique graph with K >= C-1 (C = {comps})"
    scale = 1.0 / np.sqrt(shape[0])
    gd = sp.minimize_restarts(f, shape, n_starts=gd_starts, seed=seed, scale=scale)
    if W is not None:
        Z = Xc @ W
    closed = float(f(W if W is not None else Z)) if (W is not None or Z is not None) else None
    Z_report = Z if Z is not None else gd.x
    return Z_report, closed, gd, extra
