"""Collapse phase diagram over weight decay eta and EMA rate beta, with the analytic boundaries.

Per-mode model, sigma2 = 0.5, alpha_p = 1, 80 initial conditions (p0, s0) in [-0.5, 1] x [0.01, 0.5] at every
(eta, beta), integrated to t = 3000 with ``linsim.sweep``. (a) Fraction of initial conditions that collapse;
above eta_c = 1/(4(1 + sigma2)) every mode collapses (vertical line; cells with runs still undecided at
t = 3000, critical slowing just above eta_c with slow EMA, are marked x). (b) The same fraction against eta for
three beta, and the analytic tau = 1 (SimSiam) fraction from the stable manifold of the saddle p-: beta barely
moves the basin. (At eta = 0 the modes with p0 > 1/(1 + sigma2) and small s0 stop on the line s = 0 of
fixed points; any eta > 0 pulls p below 1/(1 + sigma2) there and they grow back, hence the drop after eta = 0.) (c) Median time to come within 1% of p+: EMA slows convergence about as 1/beta.
Theory: docs/theory_dynamics.md (fixed points and basins, EMA); Tian, Chen & Ganguli, ICML 2021.
"""
from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

import linsim as ls  # noqa: E402
from _common import analytic_fraction, collapse_sweep, save  # noqa: E402
from linsim.plots import STYLE  # noqa: E402

SIGMA2, ALPHA_P = 0.5, 1.0
ETAS = np.round(np.linspace(0.0, 0.2, 21), 4)
BETAS = np.logspace(-2, 2, 9)


def make(out: Path) -> list[Path]:
    r = collapse_sweep({"eta": ETAS, "beta": BETAS}, {"sigma2": SIGMA2, "alpha_p": ALPHA_P})
    eta_c = ls.eta_critical(1.0, SIGMA2)
    eta_fine = np.linspace(0.0, 0.2, 81)
    analytic = np.array([analytic_fraction(e, ALPHA_P, SIGMA2) for e in eta_fine])
    with plt.rc_context(STYLE):
        fig, axes = plt.subplots(1, 3, figsize=(16.5, 4.8), layout="constrained")
        ax = axes[0]
        de, lb = ETAS[1] - ETAS[0], np.log10(BETAS)
        mesh = ax.pcolormesh(ETAS, BETAS, r["frac_collapsed"].T, cmap="RdYlGn_r", vmin=0, vmax=1, shading="nearest")
        ie, ib = np.nonzero(r["frac_undecided"] > 0)
        if ie.size:
            ax.plot(ETAS[ie], BETAS[ib], "kx", ms=6, label="some runs undecided at t = 3000")
        ax.axvline(eta_c, color="k", ls="--", lw=1.3, label=f"η_c = 1/(4(1+σ²)) = {eta_c:.4f}")
        ax.set(yscale="log", xlabel="η (weight decay)", ylabel="β (EMA rate)",
               title="(a) fraction of initial conditions that collapse\n(x: some runs still undecided at t = 3000)")
        fig.colorbar(mesh, ax=ax, label="collapsed fraction")
        ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.14), frameon=False, fontsize=8)
        ax = axes[1]
        for b, c in zip((0.01, 1.0, 100.0), ("tab:purple", "tab:blue", "tab:orange")):
            j = int(np.argmin(np.abs(BETAS - b)))
            ax.plot(ETAS, r["frac_collapsed"][:, j], "o-", color=c, ms=4, label=f"simulated, β = {BETAS[j]:g}")
        ax.plot(eta_fine, analytic, "k-", lw=1.5, label="analytic, β = ∞ (stable manifold of p−)")
        ax.axvline(eta_c, color="k", ls="--", lw=1.3, label="η_c")
        ax.set(xlabel="η (weight decay)", ylabel="collapsed fraction", ylim=(0, 1.05),
               title="(b) the basin grows with η and fills everything at η_c;\nβ barely moves it")
        ax.legend(loc="upper left", fontsize=8, frameon=True, framealpha=0.9)
        ax = axes[2]
        for e, c in zip((0.01, 0.05, 0.1), ("tab:green", "tab:olive", "tab:brown")):
            i = int(np.argmin(np.abs(ETAS - e)))
            ax.plot(BETAS, r["median_t_1pct"][i], "o-", color=c, ms=4, label=f"η = {ETAS[i]:g}")
        ref = r["median_t_1pct"][int(np.argmin(np.abs(ETAS - 0.05))), 0]
        small = BETAS <= 1.0
        ax.plot(BETAS[small], ref * BETAS[0] / BETAS[small], "k:", lw=1, label="∝ 1/β")
        ax.set(xscale="log", yscale="log", xlabel="β (EMA rate)", ylabel="median time to within 1% of p+",
               title="(c) EMA slows convergence (about 1/β for small β)\nbut leaves the end point p+ unchanged")
        ax.legend(fontsize=8)
        fig.suptitle(f"Collapse phase diagram of one mode over (η, β): σ² = {SIGMA2:g}, α_p = {ALPHA_P:g}, "
                     "80 initial conditions per cell")
    return save(fig, out, "collapse_eta_beta", etas=ETAS, betas=BETAS, eta_c=eta_c, eta_fine=eta_fine,
                analytic_fraction=analytic, **{k: v for k, v in r.items() if k.startswith(("frac", "median"))})


if __name__ == "__main__":
    print(make(Path(__file__).resolve().parents[1] / "figures"))
