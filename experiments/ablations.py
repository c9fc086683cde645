"""Ablations of the linear BYOL model: no stop-gradient, no predictor, symmetric predictor, no EMA.

Full-matrix model n = 10, n1 = 6, X = I, X' = 0.5 I, eta = 0.02, alpha_p = 1, one random init (scale 0.5) for
every variant. Reference BYOL: gradient-trained predictor, stop-gradient, EMA target beta = 0.5. Variants:
no EMA (SimSiam, Wa = W), symmetric predictor (Wp kept symmetric), no predictor (Wp = I), no stop-gradient
(SimSiam with the gradient through the target). (a) tr F(t) / tr F(0), F = W X W^T, on a log scale, with the
analytic decay of the two collapsing variants: without a predictor the system is linear and decays at twice
the largest eigenvalue of its block matrix; without the stop-gradient ||W||^2 decays at least as
exp(-2 (eta + lambda_min(X')) t). (b) Modes alive over time. Theory: docs/theory_dynamics.md (what the
stop-gradient, the predictor and the EMA do); Tian, Chen & Ganguli, ICML 2021.
"""
from __future__ import annotations

import math
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

import linsim as ls  # noqa: E402
from _common import save  # noqa: E402
from linsim.plots import STYLE  # noqa: E402

ETA, SIGMA2, BETA = 0.02, 0.5, 0.5
INF = float("inf")
VARIANTS = (  # key, label, Hyper, colour, line style
    ("byol", "BYOL (predictor, stop-grad, EMA β = 0.5)", ls.Hyper(eta=ETA, beta=BETA), "k", "-"),
    ("no_ema", "no EMA (SimSiam, Wa = W)", ls.Hyper(eta=ETA, beta=INF), "tab:blue", "--"),
    ("symmetric", "symmetric predictor", ls.Hyper(eta=ETA, beta=BETA, predictor="symmetric"), "tab:green", ":"),
    ("no_predictor", "no predictor (Wp = I)", ls.Hyper(eta=ETA, beta=BETA, predictor="identity"), "tab:red", "-"),
    ("no_stop_grad", "no stop-gradient (SimSiam)", ls.Hyper(eta=ETA, beta=INF, stop_grad=False), "tab:purple", "-"),
)


def no_predictor_rate(x: float = 1.0, xp: float = SIGMA2, eta: float = ETA, beta: float = BETA) -> float:
    """Largest eigenvalue of [[-(x + x' + eta), beta], [x, -beta]]: the decay rate of W, Wa without a predictor."""
    tr, det = -(x + xp + eta) - beta, beta * (xp + eta)
    return (tr + math.sqrt(tr * tr - 4 * det)) / 2


def make(out: Path) -> list[Path]:
    data = {}
    t_max = 200.0
    with plt.rc_context(STYLE):
        fig, axes = plt.subplots(1, 2, figsize=(13, 4.9), layout="constrained")
        for key, label, hyper, c, style in VARIANTS:
            cfg = ls.Config(model="matrix", n1=6, hyper=hyper, stats=ls.Stats.isotropic(10, SIGMA2),
                            init=ls.Init(scale=0.5, seed=1), solver=ls.Solver(t_max=t_max, n_save=401))
            tr = ls.simulate(cfg)
            trace = tr.s.sum(1)
            alive = (tr.s > cfg.solver.collapse_threshold * np.maximum(1.0, tr.s[0])).sum(1)
            data.update({f"ts_{key}": tr.ts, f"trace_{key}": trace, f"alive_{key}": alive})
            axes[0].plot(tr.ts, np.maximum(trace / trace[0], 1e-30), style, color=c, lw=1.6, label=label)
            axes[1].step(tr.ts, alive, style, color=c, lw=1.6, where="post", label=label)
        t = np.linspace(0, t_max, 200)
        rate_np = no_predictor_rate()
        lam0 = ETA + SIGMA2
        data.update({"no_predictor_rate": rate_np, "no_stop_grad_bound_rate": lam0})
        axes[0].plot(t, np.exp(2 * rate_np * t), color="tab:red", lw=0.9, ls=(0, (1, 3)),
                     label=f"analytic: exp(2 λ_max t), λ_max = {rate_np:.4f}")
        axes[0].plot(t, np.exp(-2 * lam0 * t), color="tab:purple", lw=0.9, ls=(0, (1, 3)),
                     label=f"analytic bound: exp(−2 (η + λ_min(X')) t)")
        fp = ls.fixed_points(ETA, 1.0, SIGMA2)
        axes[0].set(yscale="log", ylim=(1e-20, 10), xlabel="t", ylabel="tr F(t) / tr F(0)  (floor 1e-20: solver atol²)",
                    title=f"(a) size of the representation; survivors settle at s = p+² = {fp.s_plus:.3f}")
        axes[0].legend(loc="upper center", bbox_to_anchor=(0.5, -0.14), ncol=2, frameon=False, fontsize=7.5)
        axes[1].set(xlabel="t", ylabel="modes alive (s_j above the collapse threshold)", ylim=(-0.3, 6.5),
                    title="(b) without the stop-gradient or the predictor every mode collapses;\n"
                          "without EMA or with a symmetric predictor BYOL still learns")
        axes[1].legend(loc="center right", fontsize=7.5)
        fig.suptitle(f"Ablations of linear BYOL (n = 10, n1 = 6, η = {ETA:g}, σ² = {SIGMA2:g}, one init)")
    return save(fig, out, "ablations", **data)


if __name__ == "__main__":
    print(make(Path(__file__).resolve().parents[1] / "figures"))
