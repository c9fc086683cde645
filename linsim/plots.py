"""Shared figure style and the plots of a single run (eigenvalue flows; the (p, s) plane with parabolas)."""
from __future__ import annotations

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from linsim.dynamics.modes import fixed_points  # noqa: E402

STYLE = {
    "figure.dpi": 110,
    "axes.grid": True,
    "grid.alpha": 0.3,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "font.size": 9,
}


def _mode_colors(m: int):
    return plt.cm.viridis(np.linspace(0.0, 0.9, max(m, 1)))


def _isotropic_sigma2(traj) -> float | None:
    st = traj.config.stats
    if st.kind == "isotropic" or (st.is_diagonal and np.allclose(st.x, 1) and np.allclose(st.xp, st.xp[0])):
        return float(st.xp[0])
    return None


def plot_flows(ax_p, ax_s, traj) -> None:
    """p_j(t) and s_j(t) per mode, collapsed modes dashed, the fixed point p+ as a dotted line."""
    colors = _mode_colors(traj.s.shape[1])
    for j, c in enumerate(colors):
        ls = "--" if traj.collapsed[j] else "-"
        ax_p.plot(traj.ts, traj.p[:, j], ls, color=c, lw=1.2)
        ax_s.semilogy(traj.ts, np.maximum(traj.s[:, j], 1e-300), ls, color=c, lw=1.2)
    sigma2 = _isotropic_sigma2(traj)
    h = traj.config.hyper
    if sigma2 is not None:
        fp = fixed_points(h.eta, h.alpha_p, sigma2, eta_p=h.eta_p_value)
        if fp.exists:
            ax_p.axhline(fp.p_plus, color="k", ls=":", lw=1, label=f"p+ = {fp.p_plus:.4f}")
            ax_p.legend(loc="best", frameon=False)
    ax_p.set(xlabel="t", ylabel="p_j (predictor eigenvalue)", title="predictor eigenvalues")
    ax_s.set(xlabel="t", ylabel="s_j (eigenvalue of F)", title="online eigenvalues (log)")
    ax_s.set_ylim(bottom=max(1e-12, np.nanmin(np.maximum(traj.s, 1e-12))))


def plot_phase_plane(ax, traj) -> None:
    """Trajectories in the (p, s) plane with the invariant parabolas s = p^2/alpha_p + e^{-2 eta t} c_j (sec 3.3)."""
    h = traj.config.hyper
    colors = _mode_colors(traj.s.shape[1])
    pmin, pmax = float(np.nanmin(traj.p)), float(np.nanmax(traj.p))
    span = max(pmax - pmin, 0.2)
    grid = np.linspace(pmin - 0.1 * span, pmax + 0.1 * span, 400)
    ax.plot(grid, grid**2 / h.alpha_p, "k-", lw=1, label="s = p²/α_p (balanced)")
    for j, c in enumerate(colors):
        c0 = traj.p[0, j] ** 2 / h.alpha_p - traj.s[0, j]
        ax.plot(grid, grid**2 / h.alpha_p - c0, ":", color=c, lw=0.8)
        ax.plot(traj.p[:, j], traj.s[:, j], "-", color=c, lw=1.4)
        ax.plot(traj.p[0, j], traj.s[0, j], "o", color=c, ms=3)
        ax.plot(traj.p[-1, j], traj.s[-1, j], "x" if traj.collapsed[j] else "*", color=c, ms=6)
    sigma2 = _isotropic_sigma2(traj)
    if sigma2 is not None:
        fp = fixed_points(h.eta, h.alpha_p, sigma2, eta_p=h.eta_p_value)
        if fp.exists and h.eta > 0:
            ax.plot([fp.p_plus], [fp.s_plus], "k*", ms=10, label="p+ (stable)")
            ax.plot([fp.p_minus], [fp.s_minus], "ks", mfc="none", ms=7, label="p- (saddle)")
    ax.plot([0], [0], "kx", ms=7, label="collapse (0, 0)")
    smax = float(np.nanmax(traj.s))
    ax.set_ylim(-0.02 * max(smax, 0.1), 1.15 * max(smax, 0.1))
    ax.set(xlabel="p", ylabel="s", title="(p, s) plane; dotted: initial parabolas")
    ax.legend(loc="upper left", frameon=False, fontsize=7)


def plot_matrix_diagnostics(ax, traj) -> None:
    """Asymmetry of Wp and the normalised commutator [F, Wp] on a log scale (sec 2.6)."""
    for key, label in (("asymmetry", "‖Wp − Wpᵀ‖/‖Wp‖"), ("commutator", "‖[F, Wp]‖/(‖F‖‖Wp‖)")):
        ax.semilogy(traj.ts, np.maximum(traj.extras[key], 1e-17), label=label)
    if traj.balance is not None:
        ax.semilogy(traj.ts, np.maximum(traj.balance, 1e-17), label="balance residual")
    ax.set(xlabel="t", title="alignment and invariants")
    ax.legend(frameon=False, fontsize=7)


def plot_run(traj):
    """The figure written by ``linsim simulate``: flows plus the (p, s) plane (modes) or diagnostics (matrix)."""
    with plt.rc_context(STYLE):
        fig, axes = plt.subplots(1, 3, figsize=(13, 3.8), layout="constrained")
        plot_flows(axes[0], axes[1], traj)
        if traj.config.model == "modes":
            plot_phase_plane(axes[2], traj)
        else:
            plot_matrix_diagnostics(axes[2], traj)
        h = traj.config.hyper
        fig.suptitle(
            f"{traj.config.model} model: eta={h.eta:g}, beta={h.beta:g}, alpha_p={h.alpha_p:g}, "
            f"{int(traj.collapsed.sum())}/{traj.s.shape[1]} modes collapsed, status {traj.status}"
        )
    return fig
