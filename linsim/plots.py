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


MAX_LINES = 48  # at most this many modes are drawn: a plot's cost stays bounded for any n


def _mode_colors(m: int):
    return plt.cm.viridis(np.linspace(0.0, 0.9, max(m, 1)))


def shown_modes(m: int, cap: int = MAX_LINES) -> list[tuple[int, object]]:
    """(mode index, colour) of the modes to draw: all of them, or ``cap`` evenly spaced ones for large m."""
    idx = np.arange(m) if m <= cap else np.unique(np.linspace(0, m - 1, cap).round().astype(int))
    return list(zip(idx.tolist(), _mode_colors(len(idx))))


def _isotropic_sigma2(traj) -> float | None:
    st = traj.config.stats
    if st.kind == "isotropic" or (st.is_diagonal and np.allclose(st.x, 1) and np.allclose(st.xp, st.xp[0])):
        return float(st.xp[0])
    return None


def _positive_times(traj):
    """Mask of saved times t > 0 (the flows are drawn on a log time axis, where the fast early motion shows)."""
    return np.asarray(traj.ts) > 0


def plot_flows(ax_p, ax_s, traj) -> None:
    """p_j(t) and s_j(t) per mode on a log time axis, collapsed modes dashed, the fixed point p+ dotted."""
    keep = _positive_times(traj)
    log_t = bool(np.any(keep))  # a run that stopped before its first positive save has nothing to log-scale
    keep = keep if log_t else np.ones_like(keep)
    ts = np.asarray(traj.ts)[keep]
    for j, c in shown_modes(traj.s.shape[1]):
        ls = "--" if traj.collapsed[j] else "-"
        ax_p.plot(ts, traj.p[keep, j], ls, color=c, lw=1.2)
        ax_s.plot(ts, np.maximum(traj.s[keep, j], 1e-300), ls, color=c, lw=1.2)
    sigma2 = _isotropic_sigma2(traj)
    h = traj.config.hyper
    if sigma2 is not None:
        fp = fixed_points(h.eta, h.alpha_p, sigma2, eta_p=h.eta_p_value)
        if fp.exists:
            ax_p.axhline(fp.p_plus, color="k", ls=":", lw=1, label=f"p+ = {fp.p_plus:.4f}")
            ax_s.axhline(fp.s_plus, color="k", ls=":", lw=1, label=f"s+ = {fp.s_plus:.4f}")
    for ax in (ax_p, ax_s):
        ax.set_xscale("log" if log_t else "linear")
    ax_s.set_yscale("log")
    tlabel = "t (log scale)" if log_t else "t"
    ax_p.set(xlabel=tlabel, ylabel="p_j (eigenvalue of Wp)", title="predictor eigenvalues p_j(t)")
    ax_s.set(xlabel=tlabel, ylabel="s_j (eigenvalue of F, log scale)", title="online eigenvalues s_j(t)")
    ax_s.set_ylim(bottom=max(1e-12, np.nanmin(np.maximum(traj.s, 1e-12))))


def _legend_below(ax, ncol: int = 2) -> None:
    """A legend under the axes, so that no curve runs through it (none if nothing is labelled)."""
    if not ax.get_legend_handles_labels()[0]:
        return
    ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.2), ncol=ncol, frameon=False, fontsize=7)


def plot_phase_plane(ax, traj, log_s: bool = False) -> None:
    """Trajectories in the (p, s) plane with the invariant parabolas s = p^2/alpha_p + e^{-2 eta t} c_j.

    ``log_s``: s on a log axis (shows modes collapsing to s -> 0). Theory: docs/theory_dynamics.md (invariants).
    """
    h = traj.config.hyper
    colors = shown_modes(traj.s.shape[1])  # (mode, colour): at most MAX_LINES of them
    pmin, pmax = float(np.nanmin(traj.p)), float(np.nanmax(traj.p))
    span = max(pmax - pmin, 0.2)
    grid = np.linspace(pmin - 0.1 * span, pmax + 0.1 * span, 400)
    smax = float(np.nanmax(traj.s))
    if not log_s:
        ax.plot(grid, grid**2 / h.alpha_p, "k-", lw=1, label="s = p²/α_p (balanced)")
        for i, (j, c) in enumerate(colors):
            c0 = traj.p[0, j] ** 2 / h.alpha_p - traj.s[0, j]
            ax.plot(grid, grid**2 / h.alpha_p - c0, ":", color=c, lw=0.8,
                    label="initial parabolas s = p²/α_p + c_j" if i == 0 else None)
    for j, c in colors:
        s = np.maximum(traj.s[:, j], 1e-300) if log_s else traj.s[:, j]
        ax.plot(traj.p[:, j], s, "--" if traj.collapsed[j] else "-", color=c, lw=1.4)
        ax.plot(traj.p[0, j], s[0], "o", color=c, ms=4, zorder=5, clip_on=False)
        ax.plot(traj.p[-1, j], max(s[-1], 1e-300) if log_s else s[-1], "x" if traj.collapsed[j] else "*",
                color=c, ms=7, zorder=5, clip_on=False)
    sigma2 = _isotropic_sigma2(traj)
    if sigma2 is not None:
        fp = fixed_points(h.eta, h.alpha_p, sigma2, eta_p=h.eta_p_value)
        if fp.exists and h.eta > 0:
            ax.plot([fp.p_plus], [fp.s_plus], "k*", ms=11, mfc="none", zorder=6, label="p+ (stable)")
            ax.plot([fp.p_minus], [fp.s_minus], "ks", mfc="none", ms=7, zorder=6, label="p− (saddle)")
    if log_s:
        floor = max(1e-12, float(np.nanmin(np.maximum(traj.s, 1e-12))))
        ax.set_yscale("log")
        ax.set_ylim(floor, 2 * max(smax, 1e-3))
        ax.set(xlabel="p", ylabel="s (log scale)", title="(p, s) plane, log s (dashed: collapsed)")
    else:
        ax.plot([0], [0], "kX", ms=7, zorder=4, clip_on=False, label="collapse (0, 0)")
        ax.set_ylim(-0.03 * max(smax, 0.1), 1.1 * max(smax, 0.1))
        ax.set(xlabel="p", ylabel="s", title="(p, s) plane (dot: start; star: end; x: collapsed)")
    _legend_below(ax)


def plot_matrix_diagnostics(ax, traj) -> None:
    """Asymmetry of Wp and the normalised commutator [F, Wp] on a log scale (docs/theory_dynamics.md, eigenspace alignment)."""
    for key, label in (("asymmetry", "‖Wp − Wpᵀ‖/‖Wp‖"), ("commutator", "‖[F, Wp]‖/(‖F‖‖Wp‖)")):
        ax.semilogy(traj.ts, np.maximum(traj.extras[key], 1e-17), label=label)
    if traj.balance is not None:
        ax.semilogy(traj.ts, np.maximum(traj.balance, 1e-17), label="balance residual")
    ax.set(xlabel="t", title="alignment and invariants")
    ax.legend(frameon=False, fontsize=7)


def plot_run(traj):
    """The figure written by ``linsim simulate``: flows on a log time axis, plus the (p, s) plane in linear and
    log s (modes model) or the alignment diagnostics (matrix model)."""
    modes = traj.config.model == "modes"
    with plt.rc_context(STYLE):
        fig, axes = plt.subplots(1, 4 if modes else 3, figsize=(17 if modes else 13, 4.4), layout="constrained")
        plot_flows(axes[0], axes[1], traj)
        _legend_below(axes[0], 1)
        if axes[1].get_legend_handles_labels()[0]:
            _legend_below(axes[1], 1)
        if modes:
            plot_phase_plane(axes[2], traj)
            plot_phase_plane(axes[3], traj, log_s=True)
        else:
            plot_matrix_diagnostics(axes[2], traj)
        h = traj.config.hyper
        fig.suptitle(
            f"{traj.config.model} model: eta={h.eta:g}, beta={h.beta:g}, alpha_p={h.alpha_p:g}, "
            f"{int(traj.collapsed.sum())}/{traj.s.shape[1]} modes collapsed (dashed), status {traj.status}"
            + (f"; {len(shown_modes(traj.s.shape[1]))} of {traj.s.shape[1]} modes drawn" if traj.s.shape[1] > MAX_LINES else "")
        )
    return fig
