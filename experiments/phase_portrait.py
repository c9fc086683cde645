"""Per-mode (p, s) phase portrait: invariant parabolas, the collapse basin and its edge, eta = 0 and eta > 0.

SimSiam (tau = 1), sigma2 = 0.5, alpha_p = 1. Left, eta = 0: trajectories stay on the parabolas
s = p^2/alpha_p + c and the basin edge is the exact parabola pair. Right, eta = 0.04: trajectories relax onto
s = p^2/alpha_p and the basin edge is the stable manifold of the saddle p- (``linsim.dynamics.modes.
basin_boundary``). The shading is the analytic basin; the crosses mark the points of a 60 x 60 grid of
simulated initial conditions whose simulated fate disagrees with it (none away from the edge). Curves are
drawn from 1500 log-spaced saves. Theory: docs/theory_dynamics.md (fixed points and basins).
"""
from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from matplotlib.path import Path as MPath  # noqa: E402

import linsim as ls  # noqa: E402
from _common import grid_modes, log_times, save  # noqa: E402
from linsim.dynamics.modes import basin_boundary  # noqa: E402
from linsim.plots import STYLE  # noqa: E402

SIGMA2, ALPHA_P, ETA = 0.5, 1.0, 0.04
P_LIM, S_LIM = (-1.5, 1.5), (0.0, 2.0)
GREEN, RED = "#d6ead6", "#f2c4c4"


def basin_polygon(eta: float) -> np.ndarray:
    """Closed polygon (n, 2) of the collapse basin in the (p, s) box: the region below the basin edge."""
    k = 1.0 + SIGMA2
    lo, hi = -2.0, 2.0
    if eta == 0:
        pl = np.linspace(lo, 0.0, 400)
        pr = np.linspace(1 / k, hi, 400)
        left = np.stack([pl, pl**2 / ALPHA_P], 1)
        right = np.stack([pr, (pr**2 - k**-2) / ALPHA_P], 1)
        return np.concatenate([[[lo, 0.0]], left, [[0.0, 0.0], [1 / k, 0.0]], right, [[hi, 0.0]]])
    b_left, b_right = sorted(basin_boundary(eta, ALPHA_P, SIGMA2, p_lim=(lo, hi), s_max=3.0), key=lambda b: b[0, -1])
    return np.concatenate([[[lo, 0.0], [lo, 3.0]], b_left.T[::-1], b_right.T, [[hi, 0.0]]])


def zoom(ax, data, p0, s0) -> None:
    """Near the origin at eta > 0 on a log s axis: the saddle, the thin basin sliver along s ~ 0, collapsing modes."""
    poly = data[f"edge_eta{ETA:g}"]
    edge = poly[(poly[:, 1] > 0)]
    p, s, col = (data[f"sample_{k}_eta{ETA:g}"] for k in ("p", "s", "collapsed"))
    ax.fill_between([-0.4, 1.4], 1e-8, 10, color=GREEN, lw=0, zorder=0)
    ax.fill(poly[:, 0], np.maximum(poly[:, 1], 1e-8), color=RED, lw=0, zorder=0)
    ax.plot(edge[:, 0], edge[:, 1], color="tab:red", lw=1.8, zorder=3)
    for j in range(p.shape[1]):
        ax.plot(p[:, j], np.maximum(s[:, j], 1e-300), color="k", ls="--" if col[j] else "-", lw=1.1, zorder=4)
    ax.plot(p0, s0, "o", color="k", ms=4, zorder=6)
    fp = ls.fixed_points(ETA, ALPHA_P, SIGMA2)
    ax.plot(fp.p_plus, fp.s_plus, "*", color="tab:blue", ms=13, zorder=7)
    ax.plot(fp.p_minus, fp.s_minus, "s", color="tab:blue", mfc="white", ms=7, zorder=7)
    ax.set(yscale="log", xlim=(-0.4, 1.4), ylim=(1e-8, 2.5), xlabel="p", ylabel="s (log scale)",
           title=f"zoom, η = {ETA:g}, log s: below the red edge\nmodes collapse (dashed: s → 0)")


def make(out: Path) -> list[Path]:
    P, S = np.meshgrid(np.linspace(*P_LIM, 60), np.linspace(0.01, S_LIM[1], 60))
    data = {"p0": P, "s0": S}
    p0 = np.array([-1.2, -0.8, -0.3, 0.05, 0.3, 0.9, 1.3, 1.4])
    s0 = np.array([1.6, 0.3, 0.05, 0.02, 1.5, 0.1, 0.4, 1.8])
    with plt.rc_context(STYLE):
        fig, axes = plt.subplots(1, 3, figsize=(16, 5.2), layout="constrained", width_ratios=[1, 1, 0.8])
        for ax, eta in zip(axes, (0.0, ETA)):
            grid = grid_modes(P, S, eta=eta, alpha_p=ALPHA_P, sigma2=SIGMA2, t_max=1500.0 if eta == 0 else 600.0,
                              n_save=2)
            collapsed = grid.collapsed.reshape(P.shape)
            poly = basin_polygon(eta)
            predicted = MPath(poly).contains_points(np.stack([P.ravel(), S.ravel()], 1)).reshape(P.shape)
            wrong = collapsed != predicted
            data.update({f"collapsed_eta{eta:g}": collapsed, f"predicted_eta{eta:g}": predicted,
                         f"edge_eta{eta:g}": poly})
            ax.fill_between(P_LIM, S_LIM[0], S_LIM[1], color=GREEN, lw=0, zorder=0)
            ax.fill(poly[:, 0], poly[:, 1], color=RED, lw=0, zorder=0)
            pg = np.linspace(*P_LIM, 300)
            for c in np.linspace(-1.0, 1.5, 11):
                ax.plot(pg, pg**2 / ALPHA_P + c, color="0.55", lw=0.5, ls=":", zorder=1)
            k = 1 + SIGMA2
            if eta == 0:
                edge_label = "basin edge (exact): s = p²/α_p, s = (p² − 1/k²)/α_p"
                ax.axvline(1 / k, color="tab:blue", lw=1.2, ls="--", zorder=2, label="fixed points: the line p = 1/(1+σ²)")
            else:
                edge_label = "basin edge: stable manifold of the saddle p−"
            inside = (poly[:, 1] > 0) & (poly[:, 0] > P_LIM[0] - 0.6) & (poly[:, 0] < P_LIM[1] + 0.6)
            ax.plot(np.where(inside, poly[:, 0], np.nan), np.where(inside, poly[:, 1], np.nan), color="tab:red", lw=1.8,
                    zorder=3, label=edge_label)
            sample = grid_modes(p0, s0, eta=eta, alpha_p=ALPHA_P, sigma2=SIGMA2, t_max=1500.0, ts=log_times(1500.0))
            data.update({f"sample_p_eta{eta:g}": sample.p, f"sample_s_eta{eta:g}": sample.s,
                         f"sample_collapsed_eta{eta:g}": sample.collapsed})
            for j in range(p0.size):
                ax.plot(sample.p[:, j], sample.s[:, j], color="k", lw=1.1, zorder=4,
                        label="trajectories (dot: start)" if j == 0 else None)
                ax.plot(p0[j], s0[j], "o", color="k", ms=4, zorder=6, clip_on=False)
            if eta > 0:
                fp = ls.fixed_points(eta, ALPHA_P, SIGMA2)
                ax.plot(fp.p_plus, fp.s_plus, "*", color="tab:blue", ms=13, zorder=7, clip_on=False,
                        label=f"p+ = {fp.p_plus:.3f} (stable node)")
                ax.plot(fp.p_minus, fp.s_minus, "s", color="tab:blue", mfc="white", ms=7, zorder=8, clip_on=False,
                        label=f"p− = {fp.p_minus:.3f} (saddle)")
            ax.plot(0, 0, "X", color="darkred", ms=7, zorder=7, clip_on=False, label="collapse (0, 0)")
            if wrong.any():
                ax.plot(P[wrong], S[wrong], "x", color="m", ms=4, zorder=5,
                        label=f"grid points off the prediction ({wrong.sum()}/{wrong.size})")
            ax.set(xlim=P_LIM, ylim=(-0.04, S_LIM[1]), xlabel="p (eigenvalue of the predictor)",
                   ylabel="s (eigenvalue of F)",
                   title=f"η = {eta:g}: collapse basin (red) = {predicted.mean():.0%} of the box\n"
                         f"simulated 60 × 60 grid agrees on {1 - wrong.mean():.2%} of points")
            ax.axhline(0, color="k", lw=0.6, zorder=2)
            ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.13), ncol=2, fontsize=7.5, frameon=False)
        zoom(axes[2], data, p0, s0)
        fig.suptitle("Per-mode phase portrait, SimSiam (τ = 1), σ² = 0.5, α_p = 1; dotted: invariant parabolas "
                     "s = p²/α_p + c (η = 0 keeps c; η > 0 relaxes c → 0)", fontsize=10)
    return save(fig, out, "phase_portrait", **data)


if __name__ == "__main__":
    print(make(Path(__file__).resolve().parents[1] / "figures"))
