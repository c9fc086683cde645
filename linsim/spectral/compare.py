"""Closed form, its domain, the best certified optimum, and gradient descent for one SSL loss on a pairwise graph.

Shared by ``linsim spectral`` and the figure recipes, so neither re-implements the comparison. The domains and
the exact or certified solutions used outside them are described in docs/spectral.md ("Closed forms and their
domains").
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Optional

import numpy as np

from linsim.spectral.optimize import OptResult

__all__ = ["SpectralSolution", "solve", "closed_form_vs_gd", "probe_accuracy", "CERTIFY_RTOL", "CERTIFY_ATOL"]

#: gradient descent may land below the reported optimum by this much (relative) before the optimum counts as
#: beaten: L-BFGS stops at gradient norm ~1e-10, and the losses are O(1) sums of O(N²) float64 terms.
CERTIFY_RTOL = 1e-8
#: absolute floor of that tolerance, for optima at (or near) 0 such as BarlowTwins' C = I: the loss is a sum of
#: O(1) terms whose float64 rounding (~1e-15) can even make a computed non-negative loss slightly negative.
CERTIFY_ATOL = 1e-12


def probe_accuracy(Z, y) -> float:
    """Train accuracy of a closed-form least-squares linear probe (one-hot targets, with bias)."""
    classes, yi = np.unique(y, return_inverse=True)
    A = np.hstack([Z, np.ones((Z.shape[0], 1))])
    coef, *_ = np.linalg.lstsq(A, np.eye(len(classes))[yi], rcond=None)
    return float(np.mean(np.argmax(A @ coef, axis=1) == yi))


@dataclass(frozen=True)
class SpectralSolution:
    """What ``linsim spectral`` reports: the closed form and whether the problem is inside its domain, the best
    optimum that can be certified (closed form, exact construction, or multi-start numerics with its spread),
    and the independent gradient-descent restarts it is checked against."""

    Z: np.ndarray
    closed_form: str
    closed_form_valid: bool
    reason: Optional[str]
    closed_form_loss: Optional[float]
    optimum_loss: float
    optimum_kind: str
    optimum_detail: str
    optimum_spread: Optional[dict]
    gd: OptResult
    certified: bool
    extra: dict = field(default_factory=dict)

    def summary(self) -> dict[str, Any]:
        """JSON-ready fields (the embedding Z is left out)."""
        gap = lambda ref: None if ref is None else float(self.gd.value - ref)  # noqa: E731
        return {
            "closed_form": self.closed_form, "closed_form_valid": self.closed_form_valid, "reason": self.reason,
            "closed_form_loss": self.closed_form_loss, "optimum_loss": self.optimum_loss,
            "optimum_kind": self.optimum_kind, "optimum_detail": self.optimum_detail,
            "optimum_spread": self.optimum_spread, "certified": self.certified,
            "gd_loss": self.gd.value, "gd_losses": self.gd.values,
            "gap_gd_minus_optimum": gap(self.optimum_loss), "gap_gd_minus_closed": gap(self.closed_form_loss),
            **self.extra,
        }


def _spread_of(values) -> dict:
    v = np.asarray(values, dtype=float)
    f = v[np.isfinite(v)]
    best = float(np.min(f))
    return {"restarts": int(v.size), "best": best, "median": float(np.median(f)), "worst": float(np.max(f)),
            "n_at_best": int(np.sum(f <= best + CERTIFY_RTOL * max(abs(best), 1e-300))), "rtol": CERTIFY_RTOL}


def _vicreg(Xc, G, K, alpha, beta, gamma, seed, n_starts):
    import scipy.linalg

    import linsim.spectral as sp
    from linsim.spectral.exact import vicreg_finite_beta_optimum

    N, D = Xc.shape
    if N <= D:
        if np.linalg.matrix_rank(Xc) < N - 1:
            return dict(W=None, closed=None, name="low-data regime (N <= D): needs rank(X_c) = N - 1",
                        valid=False, reason=f"N <= D but rank(X_c) = {np.linalg.matrix_rank(Xc)} < N - 1 = {N - 1}")
        ell, U = sp.centered_laplacian_eigs(G)
        K = min(K, ell.size)
        lam, E = ell[:K], np.sqrt(N) * U[:, :K]
        to_W = lambda T: np.linalg.pinv(Xc) @ (E @ T)  # noqa: E731
        name = "low-data regime (N <= D): W = X^+ Z*, Z* = sqrt(N) [u_2..u_{K+1}] diag(sigma) (beta -> infinity)"
    else:
        A_L, B, _ = sp.linear_stats(Xc, G)
        sp.closed_forms._check_pd(B)
        lam_all, V = scipy.linalg.eigh(A_L, B)
        lam = lam_all[:K]
        to_W = lambda T: V[:, :K] @ T  # noqa: E731
        name = "linear VICReg: eigh(A_L, B) smallest K, scaled by sigma_k = min(1, alpha/(2 gamma lambda_k)) (beta -> infinity)"
    W_cf = to_W(np.diag(sp.vicreg_sigma(lam, alpha, gamma)))
    T, cert = vicreg_finite_beta_optimum(lam, alpha, beta, gamma, n_starts=n_starts, seed=seed)
    return dict(W=W_cf, W_opt=to_W(T), cert=cert, lam=lam, name=name)


def solve(method, X, y, G, K, alpha, beta, gamma, lambd, tau, gd_starts, seed, n_starts=6) -> SpectralSolution:
    """Closed form (with its domain checked), best certified optimum, and best-of-``gd_starts`` L-BFGS on one loss.

    ``method``: vicreg (linear, G-form at finite β), barlow (linear), spectral-contrastive (linear encoder,
    HaoChen et al.'s loss) or simclr (non-parametric Z). ``n_starts``: random starts of the certified
    multi-start optimiser (on top of its structured starts).
    """
    import jax.numpy as jnp

    import linsim.spectral as sp
    from linsim.spectral import exact as ex

    X = np.asarray(X, dtype=float)
    G = np.asarray(G, dtype=float)
    N, D = X.shape
    Xc = X - X.mean(0)
    Gj = jnp.asarray(G)
    extra: dict[str, Any] = {}
    rtol_close = 1e-12
    if method == "vicreg":
        Xj = jnp.asarray(Xc)
        f = lambda W: sp.vicreg_graph_loss(Xj @ W, Gj, alpha, beta, gamma)  # noqa: E731
        shape, Xuse = (D, K), Xc
        r = _vicreg(Xc, G, K, alpha, beta, gamma, seed, n_starts)
        name = r["name"]
        if r["W"] is None:
            W_cf, closed, valid, reason, W_opt, kind, detail, spread = None, None, False, r["reason"], None, None, "", None
        else:
            W_cf, W_opt, cert = r["W"], r["W_opt"], r["cert"]
            closed, opt = float(f(W_cf)), float(f(W_opt))
            extra["generalized_eigenvalues"] = r["lam"]
            improvement = closed - opt
            valid = K == 1 or improvement <= rtol_close * max(1.0, abs(closed))
            reason = None if valid else (
                f"beta = {beta:g} is finite: the closed form is the beta -> infinity limit, and correlated "
                f"dimensions lower the loss by {improvement:.3g}")
            spread = cert.spread()
            if valid and closed <= opt:
                W_opt, kind, detail = W_cf, "closed form", name
            else:
                kind = "certified numerical"
                detail = ("exact K x K reduction (von Neumann trace inequality), multi-start L-BFGS-B + Newton; "
                          "limit beta -> infinity = the closed form")
    elif method == "barlow":
        Xj = jnp.asarray(Xc)
        f = lambda W: sp.barlow_graph_loss(Xj @ W, Gj, lambd)  # noqa: E731
        shape, Xuse = (D, K), Xc
        _, B, S = sp.linear_stats(Xc, G)
        rho, _, _ = ex.whitened_cca(B, S)
        h = K / np.sum(1.0 / rho[:K]) if np.all(rho[:K] > 0) else None
        extra["canonical_correlations"] = rho[:K]
        extra["h"] = h
        name = "linear BarlowTwins: tied-CCA span (B^{-1/2} V_K), within-span mixing refined"
        try:
            W_cf, info = sp.barlow_population_weights(B, S, K, lambd=lambd, seed=seed)
            closed = float(f(W_cf))
        except Exception:  # noqa: BLE001 - rho_K <= 0: no tied-CCA closed form
            W_cf, closed = None, None
        valid = W_cf is not None and rho[0] <= 1.0 + 1e-12
        if valid:
            reason, W_opt, kind, detail, spread = None, W_cf, "closed form", name, None
        else:
            reason = (f"canonical correlation rho_K = {rho[K - 1]:.4g} <= 0" if W_cf is None else
                      f"canonical correlation rho_1 = {rho[0]:.4g} > 1 (graph degrees vary): the tied-CCA span "
                      "is not optimal")
            W0 = ex.barlow_zero_loss_weights(B, S, K) if h is not None and h > 1 else None
            if W0 is not None and float(f(W0)) <= 1e-20:
                W_opt, kind, spread = W0, "exact", None
                detail = (f"zero loss (C = I) outside the tied-CCA span, reachable since h = {h:.4g} > 1; "
                          "certified by loss >= 0")
            else:
                x0s = [W_cf] if W_cf is not None else []
                W_opt, cert = ex.barlow_certified_weights(B, S, K, lambd, x0s=x0s, n_starts=n_starts, seed=seed)
                kind, spread = "certified numerical", cert.spread()
                detail = "multi-start L-BFGS-B + Newton over all W, from the tied-CCA solution and random starts"
    elif method == "spectral-contrastive":
        Xj = jnp.asarray(X)
        f = lambda W: sp.spectral_contrastive_graph_loss(Xj @ W, Gj)  # noqa: E731
        shape, Xuse = (D, K), X
        W_cf, mu = ex.spectral_contrastive_encoder_weights(X, G, K)
        closed = float(f(W_cf))
        name = "linear encoder, HaoChen et al. loss: eigh(X^T w X, X^T D X) top K, W = [v_k sqrt(mu_k)]"
        valid, reason, W_opt, kind, detail, spread = True, None, W_cf, "closed form", name, None
        extra["eigenvalues"] = mu
        W_mat, _ = sp.spectral_contrastive_linear_weights(X, G, K)
        # the matrix form min ||X W W^T X^T - Ghat|| coincides with it only for constant degree
        extra["matrix_form_subspace_distance"] = sp.subspace_distance(W_mat, W_cf)
    elif method == "simclr":
        f = lambda Z: sp.nt_xent_graph_loss(Z, Gj, tau)  # noqa: E731
        shape, Xuse = (N, K), None
        from scipy.sparse.csgraph import connected_components

        C, comp = connected_components(G > 0, directed=False)
        sizes = np.bincount(comp)
        is_cliques = np.array_equal((G > 0) | np.eye(N, dtype=bool), comp[:, None] == comp[None, :])
        name = "SimCLR: each clique collapsed to one vertex of a regular simplex (equal class sizes, K >= C-1)"
        W_cf = None
        Z_cf = sp.simclr_clique_embedding(comp, K, require_domain=False) if is_cliques and K >= C - 1 and C >= 2 else None
        closed = None if Z_cf is None else float(f(Z_cf))
        equal = sizes.min() == sizes.max()
        valid = Z_cf is not None and equal
        if valid:
            reason, Z_opt, kind, detail, spread = None, Z_cf, "closed form", name, None
        elif is_cliques and C >= 2:
            reason = (f"class sizes differ ({sizes.min()} to {sizes.max()}): the regular simplex is not optimal"
                      if Z_cf is not None else f"K = {K} < C - 1 = {C - 1}: no regular simplex fits")
            M, cert = ex.simclr_class_centres(sizes, K, tau, n_starts=n_starts, seed=seed)
            Z_opt = M[comp]
            kind, spread = "certified numerical", cert.spread()
            detail = "class centres optimised with each class collapsed to one point (multi-start L-BFGS-B + Newton)"
            Mn = M[:, : min(K, C)]
            cos = (Mn @ Mn.T)[~np.eye(C, dtype=bool)]
            extra["centre_cosines"] = [float(cos.min()), float(cos.max())]
        else:
            reason = "the graph is not a union of cliques (no closed form)"
            res = sp.minimize_restarts(f, shape, n_starts=max(n_starts, 2), seed=seed + 1, scale=1.0 / np.sqrt(N))
            Z_opt, kind, spread = res.x, "numerical", _spread_of(res.values)
            detail = f"best of {res.values.size} L-BFGS restarts on Z (no closed form, no reduction)"
    else:  # pragma: no cover - the CLI checks the method
        raise ValueError(method)

    gd = sp.minimize_restarts(f, shape, n_starts=gd_starts, seed=seed, scale=1.0 / np.sqrt(shape[0]))
    if method != "simclr":
        opt_point = W_opt
        optimum = None if W_opt is None else float(f(W_opt))
    else:
        opt_point = Z_opt
        optimum = float(f(Z_opt))
    certified = True
    if optimum is None:
        optimum, opt_point, kind, spread, certified = gd.value, gd.x, "numerical", _spread_of(gd.values), False
        detail = "best gradient-descent restart (nothing certified)"
    elif gd.value < optimum - max(CERTIFY_RTOL * abs(optimum), CERTIFY_ATOL):
        detail = f"gradient descent beat the {kind} optimum {optimum:.10g}: the reported value is not certified"
        optimum, opt_point, kind, certified = gd.value, gd.x, "gradient descent", False
    elif gd.value < optimum:  # the same optimum up to rounding: report the lower value (a gap is never < 0)
        optimum, opt_point = gd.value, gd.x
    Z = opt_point if method == "simclr" else Xuse @ opt_point
    return SpectralSolution(Z=np.asarray(Z), closed_form=name, closed_form_valid=bool(valid), reason=reason,
                            closed_form_loss=closed, optimum_loss=float(optimum), optimum_kind=kind,
                            optimum_detail=detail, optimum_spread=spread, gd=gd, certified=certified, extra=extra)


def closed_form_vs_gd(method, X, y, G, K, alpha, beta, gamma, lambd, tau, gd_starts, seed):
    """Backward-compatible 4-tuple (Z, closed_form_loss, gd_result, extra) from :func:`solve`; Z is the optimum."""
    s = solve(method, X, y, G, K, alpha, beta, gamma, lambd, tau, gd_starts, seed)
    extra = {k: v for k, v in s.summary().items() if k not in ("gd_loss", "gd_losses")}
    return s.Z, s.closed_form_loss, s.gd, extra
