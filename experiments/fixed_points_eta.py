"""Figure 4: fixed points p+/p- against eta, meeting at eta_c = 1/(4(1+sigma2)); simulated end points on top.

For sigma2 in {0, 0.5, 1}: the analytic branches (sec 3.4) and the final p of balanced per-mode runs started
at p0 = 0.9 (SimSiam, alpha_p = 1); above eta_c every run collapses (p -> 0).
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
        fig, ax = plt.subplots(figsize=(6.5, 4.2), layout="constrained")
        for sigma2, c in zip((0.0, 0.5, 1.0), ("C0", "C1", "C2")):
            eta_c = ls.eta_critical(1.0, sigma2)
            etas = np.linspace(0, eta_c, 400)
            fps = [ls.fixed_points(e, 1.0, sigma2) for e in etas]
            ax.plot(etas, [f.p_plus for f in fps], color=c, label=f"σ² = {sigma2:g}: p+ (stable)")
            ax.plot(etas, [f.p_minus for f in fps], color=c, ls="--", label="p- (saddle)")
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
        ax.set(xlabel="η (weight decay)", ylabel="p", title="Fixed points vs η; circles: simulated final p from p0 = 0.9")
        ax.legend(frameon=False, fontsize=7, ncol=2)
    return save(fig, out, "fixed_points_eta", **data)


if __name__ == "__main__":
    print(make(Path(__file__).resolve().parents[1] / "figures"))
