"""Figure 6: DirectPred vs the gradient-trained predictor in the linear toy (sec 4.2-4.4).

Matrix model n = n1 = 6, X = I, X' = 0.5 I, eta = 0.04, beta = 0.5, full-batch SGD steps (Euler) of size
alpha = 0.05, the same random init for each rule: the gradient predictor; DirectPred in the theory-consistent
form p_j = sqrt(alpha_p s_j) (eps = 0), which reaches the same fixed point p+; and DirectPred in the code form
p_j = sqrt(s_j / s_max) + eps, whose top eigenvalue 1 + eps exceeds tau/(1+sigma2), so in the un-normalised
toy the modes decay (sec 4.4).
"""
from __future__ import annotations

import dataclasses
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

import linsim as ls  # noqa: E402
from _common import save  # noqa: E402
from linsim.config import Predictor  # noqa: E402
from linsim.plots import STYLE  # noqa: E402

RULES = (
    ("gradient predictor", "grad", Predictor()),
    ("DirectPred, p = sqrt(α_p s)", "directpred", Predictor(eps=0.0, form="theory")),
    ("DirectPred, code form sqrt(s/s_max)+0.01", "directpred", Predictor(eps=0.01, form="code")),
)


def make(out: Path) -> list[Path]:
    base = ls.Config(model="matrix", hyper=ls.Hyper(eta=0.04, beta=0.5), stats=ls.Stats.isotropic(6, 0.5),
                     init=ls.Init(scale=0.8, seed=2), solver=ls.Solver(t_max=200.0, n_save=401, method="euler", dt=0.05))
    fp = ls.fixed_points(0.04, 1.0, 0.5)
    data = {}
    with plt.rc_context(STYLE):
        fig, axes = plt.subplots(1, len(RULES), figsize=(13, 3.6), layout="constrained", sharey=True)
        for ax, (label, rule, pred) in zip(axes, RULES):
            cfg = dataclasses.replace(base, hyper=dataclasses.replace(base.hyper, predictor=rule), predictor=pred)
            tr = ls.simulate(cfg)
            ax.plot(tr.ts, tr.p, lw=1.2)
            ax.axhline(fp.p_plus, color="k", ls=":", lw=1)
            n_alive = int((~tr.collapsed).sum())
            ax.set(title=f"{label}\n{n_alive}/6 modes alive, final p = {np.round(np.sort(tr.p[-1])[::-1][:3], 4)}...",
                   xlabel="t = α · step")
            key = label.split(",")[0].replace(" ", "_") + ("_code" if pred.form == "code" and rule == "directpred" else "")
            data[f"p_{key}"] = tr.p
            data[f"s_{key}"] = tr.s
            data["ts"] = tr.ts
        axes[0].set_ylabel("p_j = u_jᵀ Wp u_j (F's eigenbasis)")
        fig.suptitle(f"Linear toy, η = 0.04, σ² = 0.5, β = 0.5: dotted line p+ = {fp.p_plus:.4f}")
    return save(fig, out, "directpred_toy", **data)


if __name__ == "__main__":
    print(make(Path(__file__).resolve().parents[1] / "figures"))
