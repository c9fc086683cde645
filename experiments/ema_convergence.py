"""EMA (beta) leaves the fixed point unchanged but slows convergence; tau(t) < 1 while p grows.

Per-mode model, sigma2 = 0.5, eta = 0.01, alpha_p = 1, (p0, s0) = (0.1, 0.1), beta in {inf, 1, 0.1, 0.01}
(time to come within 1% of p+: about 9.0, 13.7, 62.9, 688 at this figure's save resolution). Theory:
docs/theory_dynamics.md (EMA).
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

BETAS = (float("inf"), 1.0, 0.1, 0.01)


def time_to_1pct(ts, p, p_plus):
    """First time after which |p - p+| <= 0.01 p+ holds for good."""
    bad = np.flatnonzero(np.abs(p - p_plus) > 0.01 * p_plus)
    return np.nan if bad.size == 0 or bad[-1] + 1 >= ts.size else ts[bad[-1] + 1]


def make(out: Path) -> list[Path]:
    eta, sigma2 = 0.01, 0.5
    fp = ls.fixed_points(eta, 1.0, sigma2)
    ts = np.unique(np.concatenate([[0.0], np.logspace(-2, np.log10(3000), 3000)]))
    data, t1 = {"ts": ts}, []
    with plt.rc_context(STYLE):
        fig, axes = plt.subplots(1, 3, figsize=(13, 3.8), layout="constrained")
        for beta, c in zip(BETAS, plt.cm.plasma(np.linspace(0, 0.85, len(BETAS)))):
            cfg = ls.Config(hyper=ls.Hyper(eta=eta, beta=beta), stats=ls.Stats.isotropic(1, sigma2),
                            solver=ls.Solver(t_max=ts[-1], rtol=1e-10, atol=1e-13))
            tr = ls.simulate(cfg, ts=ts, y0={"p": np.array([0.1]), "w": np.sqrt([0.1]), "wa": np.sqrt([0.1])})
            p, s, tau = tr.p[:, 0], tr.s[:, 0], tr.tau[:, 0]
            t1.append(time_to_1pct(ts, p, fp.p_plus))
            lab = f"β = {beta:g}: t(1%) = {t1[-1]:.1f}"
            axes[0].semilogx(ts[1:], p[1:], color=c, label=lab)
            axes[1].semilogx(ts[1:], s[1:], color=c)
            axes[2].semilogx(ts[1:], tau[1:], color=c)
            data.update({f"p_beta{beta:g}": p, f"s_beta{beta:g}": s, f"tau_beta{beta:g}": tau})
        axes[0].axhline(fp.p_plus, color="k", ls=":", lw=1)
        axes[0].set(xlabel="t", ylabel="p", title=f"p(t) → p+ = {fp.p_plus:.4f} for every β")
        axes[0].legend(frameon=False, fontsize=7)
        axes[1].axhline(fp.s_plus, color="k", ls=":", lw=1)
        axes[1].set(xlabel="t", ylabel="s", title="s(t)")
        axes[2].axhline(1, color="k", ls=":", lw=1)
        axes[2].set(xlabel="t", ylabel="τ = w_a / w", title="τ(t) < 1 while the mode grows")
        fig.suptitle("EMA slows convergence without moving the fixed point (σ² = 0.5, η = 0.01, α_p = 1)")
    data["t_to_1pct"] = np.array(t1)
    data["betas"] = np.array(BETAS)
    return save(fig, out, "ema_convergence", **data)


if __name__ == "__main__":
    print(make(Path(__file__).resolve().parents[1] / "figures"))
