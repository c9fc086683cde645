"""Figure 1: per-mode phase portrait in (p, s) with invariant parabolas and the collapse basin (sec 3.3-3.6).

SimSiam (tau = 1), sigma2 = 0.5, alpha_p = 1; left eta = 0 (exact basin boundary overlaid), right eta = 0.04
(basin bounded by the stable manifold of the saddle p-). The shading is computed by integrating a 60 x 60
grid of initial conditions; white curves are sample trajectories.
"""
from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

import linsim as ls  # noqa: E402
from _common import grid_modes, save  # noqa: E402
from linsim.plots import STYLE  # noqa: E402

SIGMA2, ALPHA_P = 0.5, 1.0


def make(out: Path) -> list[Path]:
    P, S = np.meshgrid(np.linspace(-1.5, 1.5, 60), np.linspace(0.005, 2.0, 60))
    data = {"p0": P, "s0": S}
    with plt.rc_context(STYLE):
        fig, axes = plt.subplots(1, 2, figsize=(11, 4.4), layout="constrained")
        for ax, eta in zip(axes, (0.0, 0.04)):
            traj = grid_modes(P, S, eta=eta, alpha_p=ALPHA_P, sigma2=SIGMA2, t_max=1500.0 if eta == 0 else 600.0)
            collapsed = traj.collapsed.reshape(P.shape)
            data[f"collapsed_eta{eta}"] = collapsed
            ax.contourf(P, S, collapsed.astype(float), levels=[-0.5, 0.5, 1.5], colors=["#d8ecd8", "#f3c9c9"])
            grid = np.linspace(-1.5, 1.5, 300)
            for c in np.linspace(-1.0, 1.5, 11):
                ax.plot(grid, grid**2 / ALPHA_P + c, color="0.6", lw=0.5, ls=":")
            # sample trajectories
            p0 = np.array([-1.2, -0.8, -0.3, 0.05, 0.3, 0.9, 1.3, 1.4])
            s0 = np.array([1.6, 0.3, 0.05, 0.02, 1.5, 0.1, 0.4, 1.8])
            sample = grid_modes(p0, s0, eta=eta, alpha_p=ALPHA_P, sigma2=SIGMA2, t_max=600.0, n_save=2001)
            for j in range(p0.size):
                ax.plot(sample.p[:, j], sample.s[:, j], color="k", lw=1)
                ax.plot(p0[j], s0[j], "ko", ms=3)
            k = 1 + SIGMA2
            if eta == 0:
                pl = np.linspace(-1.5, 0, 100)
                ax.plot(pl, pl**2 / ALPHA_P, "r-", lw=1.5, label="exact basin boundary")
                pr = np.linspace(1 / k, 1.5, 100)
                ax.plot(pr, (pr**2 - k**-2) / ALPHA_P, "r-", lw=1.5)
                ax.axvline(1 / k, color="b", lw=1, ls="--", label="line of fixed points p = 1/(1+σ²)")
            else:
                fp = ls.fixed_points(eta, ALPHA_P, SIGMA2)
                ax.plot(fp.p_plus, fp.s_plus, "b*", ms=12, label=f"p+ = {fp.p_plus:.3f} (stable)")
                ax.plot(fp.p_minus, fp.s_minus, "bs", mfc="none", ms=8, label=f"p- = {fp.p_minus:.3f} (saddle)")
            ax.set(xlim=(-1.5, 1.5), ylim=(0, 2), xlabel="p (predictor eigenvalue)", ylabel="s (eigenvalue of F)",
                   title=f"eta = {eta:g}: red = collapse basin ({collapsed.mean():.1%} of grid)")
            ax.legend(loc="upper center", fontsize=7, frameon=True)
        fig.suptitle("Per-mode (p, s) phase portrait, SimSiam, σ² = 0.5, α_p = 1; dotted: invariant parabolas s = p²/α_p + c")
    return save(fig, out, "phase_portrait", **data)


if __name__ == "__main__":
    print(make(Path(__file__).resolve().parents[1] / "figures"))
