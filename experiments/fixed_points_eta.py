"""Fixed points p+ (stable) and p- (saddle) against eta, meeting at eta_c = 1/(4(1+sigma2)); simulations on top.

For sigma2 in {0, 0.5, 1}: the analytic branches and the final p of per-mode SimSiam runs started at p0 = 0.9,
s0 = 0.81 (alpha_p = 1); above eta_c every run collapses (p -> 0). Theory: docs/theory_dynamics.md (fixed points).
"""
from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

import linsim as ls  # noqa: E402
from _common import save  # noqa: E402
from linsim.plots import STYLE  # noqa: E402


def make(out: Path) -> list[Path]:
    data = {}
    with plt.rc_context(STYLE):
        fig, ax = plt.subplots(figsize=(8.5, 4.4), layout="constrained")
        for sigma2, c in zip((0.0, 0.5, 1.0), ("C0", "C1", "C2")):
            eta_c = ls.eta_critical(1.0, sigma2)
            etas = np.linspace(0, eta_c, 400)
            fps = [ls.fixed_points(e, 1.0, sigma2) for e in etas]
            ax.plot(etas, [f.p_plus for f in fps], color=c, label=f"σ² = {sigma2:g} (η_c = {eta_c:.4g})")
            ax.plot(etas, [f.p_minus for f in fps], color=c, ls="--")
            ax.axvline(eta_c, color=c, ls=":", lw=1)
            # simulation: one mode per eta, balanced start p0 = 0.9, s0 = 0.81
            eta_sim = np.linspace(0.002, 1.4 * eta_c, 25)
            m = eta_sim.size
            cfg = ls.Config(hyper=ls.Hyper(eta=0.0, beta=float("inf")), stats=ls.Stats.diagonal(np.ones(m), sigma2 * np.ones(m)),
                            solver=ls.Solver(t_max=3000.0, n_save=3, rtol=1e-8, atol=1e-12))
            import jax.numpy as jnp

            from linsim.solve import make_args, solve_adaptive, variant_of

            args = make_args(cfg)
            args["eta"] = args["eta_p"] = jnp.asarray(eta_sim)
            y0 = {"p": jnp.full(m, 0.9), "w": jnp.full(m, 0.9), "wa": jnp.full(m, 0.9)}
            ys, *_ = solve_adaptive(y0, args, jnp.array([0.0, 1500.0, 3000.0]), 0.01, 1e-8, 1e-12, 1e6,
                                    model="modes", variant=variant_of(cfg))
            p_end = np.asarray(ys["p"][-1])
            ax.plot(eta_sim, p_end, "o", color=c, ms=3.5, mfc="none")
            data.update({f"eta_sigma2_{sigma2:g}": eta_sim, f"p_end_sigma2_{sigma2:g}": p_end})
        ax.set(xlabel="η (weight decay)", ylabel="p (eigenvalue of the predictor)",
               title="Fixed points of one mode against weight decay η (SimSiam, α_p = 1)")
        from matplotlib.lines import Line2D

        colour_legend = ax.legend(frameon=False, fontsize=8, loc="upper right", title="colour", title_fontsize=8)
        ax.add_artist(colour_legend)
        styles = [Line2D([], [], color="k", label="p+ (stable node)"), Line2D([], [], color="k", ls="--", label="p− (saddle)"),
                  Line2D([], [], color="k", ls=":", lw=1, label="η_c = 1/(4(1+σ²))"),
                  Line2D([], [], color="k", marker="o", mfc="none", ls="none", ms=4, label="simulated final p, p0 = 0.9")]
        ax.legend(handles=styles, frameon=False, fontsize=8, loc="center left", bbox_to_anchor=(1.01, 0.5), title="style",
                  title_fontsize=8)
    return save(fig, out, "fixed_points_eta", **data)


if __name__ == "__main__":
    print(make(Path(__file__).resolve().parents[1] / "figures"))
