"""DirectPred vs the gradient-trained predictor in the linear toy, with the un-normalised and the normalised loss.

Matrix model n = n1 = 6, X = I, X' = 0.5 I, eta = 0.04, beta = 0.5, SGD steps of size alpha = 0.05, one random
init for every rule. The toy's loss is the UN-normalised 1/2 |Wp W x1 - Wa x2|^2 of the theory, while BYOL and
the DirectPred code use the l2-normalised loss 2 - 2 cos(Wp W x1, Wa x2). Columns:
1. gradient-trained predictor (un-normalised, full batch);
2. DirectPred p_j = sqrt(alpha_p s_j) (un-normalised, full batch): the same fixed point p+ as gradient training;
3. DirectPred in the code's form p_j = sqrt(s_j/s_max) + 0.01 (un-normalised, full batch): its top eigenvalue
   1.01 exceeds 1/(1 + sigma2), so every mode decays: s_j -> 0 (bottom row, log scale), a total collapse that
   the p_j panel alone would hide;
4. the same code form with the normalised loss (minibatch SGD, B = 256): no mode dies; the spectrum of F
   equalises, since a normalised loss is blind to the overall scale of Wp.
Theory: docs/predictors_and_noise.md (DirectPred and the normalised loss).
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
from linsim.config import Noise, Predictor  # noqa: E402
from linsim.dynamics.stochastic import simulate_sgd  # noqa: E402
from linsim.plots import STYLE  # noqa: E402

# (key, title, predictor rule, Predictor, normalised loss?)
RULES = (
    ("grad", "gradient-trained predictor\nun-normalised loss", "grad", Predictor(), False),
    ("dp_theory", "DirectPred p = √(α_p s)\nun-normalised loss", "directpred", Predictor(eps=0.0, form="theory"), False),
    ("dp_code", "DirectPred code form √(s/s_max) + 0.01\nun-normalised loss", "directpred", Predictor(eps=0.01, form="code"),
     False),
    ("dp_code_normalised", "DirectPred code form √(s/s_max) + 0.01\nnormalised loss (SGD, B = 256)", "directpred",
     Predictor(eps=0.01, form="code"), True),
)
ETA, SIGMA2, N = 0.04, 0.5, 6


def run(rule: str, pred: Predictor, normalised: bool):
    """One toy run: full-batch Euler (= full-batch SGD) or, for the normalised loss, minibatch SGD."""
    cfg = ls.Config(model="matrix", hyper=ls.Hyper(eta=ETA, beta=0.5, predictor=rule), stats=ls.Stats.isotropic(N, SIGMA2),
                    init=ls.Init(scale=0.8, seed=2), solver=ls.Solver(t_max=200.0, n_save=401, method="euler", dt=0.05),
                    predictor=pred)
    if not normalised:
        tr = ls.simulate(cfg)
        return tr.ts, tr.p, tr.s
    cfg = dataclasses.replace(cfg, noise=Noise(kind="sgd", batch=256, seeds=1, normalized=True))
    ens = simulate_sgd(cfg)
    return ens.ts, ens.p[0], ens.s[0]


def make(out: Path) -> list[Path]:
    fp = ls.fixed_points(ETA, 1.0, SIGMA2)
    data = {}
    with plt.rc_context(STYLE):
        fig, axes = plt.subplots(2, len(RULES), figsize=(15, 6.4), layout="constrained", sharex=True)
        for col, (key, title, rule, pred, normalised) in enumerate(RULES):
            ts, p, s = run(rule, pred, normalised)
            alive = int((s[-1] > 1e-6 * max(1.0, s[0].max())).sum())
            data.update({f"ts_{key}": ts, f"p_{key}": p, f"s_{key}": s, f"alive_{key}": alive})
            ax_p, ax_s = axes[0, col], axes[1, col]
            ax_p.plot(ts, p, lw=1.1)
            ax_s.plot(ts, np.maximum(s, 1e-30), lw=1.1)
            if not normalised:
                ax_p.axhline(fp.p_plus, color="k", ls=":", lw=1, label=f"p+ = {fp.p_plus:.3f}")
                ax_s.axhline(fp.s_plus, color="k", ls=":", lw=1, label=f"s+ = {fp.s_plus:.3f}")
                ax_p.legend(loc="lower right", fontsize=7)
            ax_p.set_title(f"{title}\n{alive}/{N} modes alive at t = {ts[-1]:g}", fontsize=8.5)
            ax_s.set(yscale="log", ylim=(1e-12, 10), xlabel="t = α · step")
        axes[0, 0].set_ylabel("p_j (eigenvalues of Wp)")
        axes[1, 0].set_ylabel("s_j (eigenvalues of F, log scale)")
        fig.suptitle(f"DirectPred in the linear toy (n = {N}, η = {ETA:g}, σ² = {SIGMA2:g}, β = 0.5): the toy's loss is "
                     "un-normalised unless stated; rows: p_j(t) and s_j(t)", fontsize=10)
    return save(fig, out, "directpred_toy", **data)


if __name__ == "__main__":
    print(make(Path(__file__).resolve().parents[1] / "figures"))
