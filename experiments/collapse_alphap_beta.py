"""Collapse phase diagram over the relative predictor learning rate alpha_p and the EMA rate beta, with the
analytic boundary.

Per-mode model, eta = 0.04, sigma2 = 0.5, 80 initial conditions (p0, s0) in [-0.5, 1] x [0.01, 0.5] at every
(alpha_p, beta), integrated to t = 3000 with ``linsim.sweep``. (a) Fraction of initial conditions that
collapse: it falls as alpha_p grows, whatever beta. (b) The same fraction against alpha_p for three beta, and
the analytic tau = 1 (SimSiam) fraction from the stable manifold of the saddle p-, which moves with alpha_p
(s- = (p-)^2/alpha_p) while p+ does not. Theory: docs/theory_dynamics.md (fixed points and basins);
Tian, Chen & Ganguli, ICML 2021.
"""
from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from _common import analytic_fraction, collapse_sweep, save  # noqa: E402
from linsim.plots import STYLE  # noqa: E402

ETA, SIGMA2 = 0.04, 0.5
ALPHAS = np.logspace(-1, 1, 13)
BETAS = np.logspace(-2, 2, 9)


def make(out: Path) -> list[Path]:
    r = collapse_sweep({"alpha_p": ALPHAS, "beta": BETAS}, {"sigma2": SIGMA2, "eta": ETA})
    a_fine = np.logspace(-1, 1, 41)
    analytic = np.array([analytic_fraction(ETA, a, SIGMA2) for a in a_fine])
    with plt.rc_context(STYLE):
        fig, axes = plt.subplots(1, 2, figsize=(12.6, 4.8), layout="constrained")
        ax = axes[0]
        mesh = ax.pcolormesh(ALPHAS, BETAS, r["frac_collapsed"].T, cmap="RdYlGn_r", vmin=0, vmax=0.5, shading="nearest")
        ia, ib = np.nonzero(r["frac_undecided"] > 0)
        if ia.size:
            ax.plot(ALPHAS[ia], BETAS[ib], "kx", ms=6, label="some runs undecided at t = 3000")
            ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.14), frameon=False, fontsize=8)
        ax.set(xscale="log", yscale="log", xlabel="α_p (relative predictor learning rate)", ylabel="β (EMA rate)",
               title="(a) fraction of initial conditions that collapse:\nit falls with α_p at every β")
        fig.colorbar(mesh, ax=ax, label="collapsed fraction")
        ax = axes[1]
        for b, c in zip((0.01, 1.0, 100.0), ("tab:purple", "tab:blue", "tab:orange")):
            j = int(np.argmin(np.abs(BETAS - b)))
            ax.plot(ALPHAS, r["frac_collapsed"][:, j], "o-", color=c, ms=4, label=f"simulated, β = {BETAS[j]:g}")
        ax.plot(a_fine, analytic, "k-", lw=1.5, label="analytic, β = ∞ (stable manifold of p−)")
        ax.set(xscale="log", xlabel="α_p (relative predictor learning rate)", ylabel="collapsed fraction",
               ylim=(0, None), title="(b) a faster predictor shrinks the collapse basin;\nβ barely moves it")
        ax.legend(fontsize=8)
        fig.suptitle(f"Collapse phase diagram of one mode over (α_p, β): η = {ETA:g}, σ² = {SIGMA2:g}, "
                     "80 initial conditions per cell")
    return save(fig, out, "collapse_alphap_beta", alphas=ALPHAS, betas=BETAS, alpha_fine=a_fine,
                analytic_fraction=analytic, **{k: v for k, v in r.items() if k.startswith(("frac", "median"))})


if __name__ == "__main__":
    print(make(Path(__file__).resolve().parents[1] / "figures"))
