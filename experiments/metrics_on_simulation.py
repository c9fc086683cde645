"""Collapse metrics on simulated weights over time: CEV-AUC (Li, Efros & Pathak) and RankMe as weight decay
prunes the weak modes of the linear BYOL model.

Full-matrix model n = n1 = 32, diagonal data variances x_j geometric from 1 to 0.05, augmentation variance
x' = 0.5, beta = 0.5, alpha_p = 1, one random balanced init (scale 0.5, Wp(0) = (W W^T)^(1/2)), eta in {0.002, 0.01, 0.03}, saved at 150
log-spaced times to t = 2000. The representation's population covariance is F = W X W^T, so its singular
values are sqrt(eig F): the metrics are those of the features of the simulated W on clean inputs, the
quantity Li et al. measure on real networks. Theory: a mode survives weight decay only if
eta < x_j^2 / (4 (x_j + x')) and then ends at s_j = x_j (p+_j)^2 (docs/theory_dynamics.md, fixed points); dotted
lines are the metrics of that end state (an upper bound on survivors: a mode can also collapse from its init).
Larger eta prunes more modes: CEV-AUC rises and RankMe falls over training, the signature of dimensional
collapse in Li et al. (ECCV 2022) and Garrido et al. (RankMe, ICML 2023). Metrics: docs/metrics.md.
"""
from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

import linsim as ls  # noqa: E402
from _common import log_times, save  # noqa: E402
from linsim import metrics as M  # noqa: E402
from linsim.plots import STYLE  # noqa: E402

N, XP, BETA = 32, 0.5, 0.5
X = np.geomspace(1.0, 0.05, N)
ETAS = (0.002, 0.01, 0.03)
T_MAX = 2000.0


def end_state(eta: float) -> np.ndarray:
    """Per-mode eigenvalue of F = W X W^T at the stable fixed point, x_j w_j^2 = x_j (p+_j)^2 / alpha_p, where it
    exists, else 0 (collapsed)."""
    out = np.zeros(N)
    for j, x in enumerate(X):
        fp = ls.fixed_points(eta, 1.0, XP, x=float(x))
        if fp.exists:
            out[j] = x * fp.s_plus  # fixed_points' s is w^2; F's eigenvalue carries the data variance x_j
    return out


def metrics_of(s: np.ndarray) -> tuple[float, float]:
    """(CEV-AUC, RankMe) of a representation whose covariance has eigenvalues s (singular values sqrt(s))."""
    sv = np.sqrt(np.maximum(s, 0.0))
    return M.cev_auc(sv, singular_values=True), M.rankme(sv, singular_values=True)


def make(out: Path) -> list[Path]:
    data = {"x": X}
    colors = ("tab:blue", "tab:orange", "tab:red")
    with plt.rc_context(STYLE):
        fig, axes = plt.subplots(1, 3, figsize=(16, 4.7), layout="constrained")
        for eta, c in zip(ETAS, colors):
            cfg = ls.Config(model="matrix", hyper=ls.Hyper(eta=eta, beta=BETA), stats=ls.Stats.diagonal(X, XP * np.ones(N)),
                            init=ls.Init(scale=0.5, seed=0, balanced=True), solver=ls.Solver(t_max=T_MAX))
            tr = ls.simulate(cfg, ts=log_times(T_MAX, 150, 0.1))
            auc, rme = np.array([metrics_of(s) for s in tr.s]).T
            end = end_state(eta)
            auc_end, rme_end = metrics_of(end)
            n_can = int((end > 0).sum())
            data.update({f"ts_eta{eta:g}": tr.ts, f"s_eta{eta:g}": tr.s, f"cev_auc_eta{eta:g}": auc,
                         f"rankme_eta{eta:g}": rme, f"end_s_eta{eta:g}": end, f"alive_end_eta{eta:g}": int((~tr.collapsed).sum())})
            label = (f"η = {eta:g}: {int((~tr.collapsed).sum())} of {N} modes above the collapse threshold at t = {T_MAX:g}; "
                     f"{n_can} survive in the end")
            axes[1].plot(tr.ts[1:], auc[1:], color=c, lw=1.6, label=label)
            axes[1].axhline(auc_end, color=c, ls=":", lw=1)
            axes[2].plot(tr.ts[1:], rme[1:], color=c, lw=1.6, label=label)
            axes[2].axhline(rme_end, color=c, ls=":", lw=1)
            if eta == ETAS[-1]:
                cm = plt.cm.viridis(np.linspace(0, 0.9, N))
                for j in range(N):
                    axes[0].plot(tr.ts[1:], np.maximum(tr.s[1:, j], 1e-16), color=cm[j], lw=0.9)
        axes[0].set(xscale="log", yscale="log", ylim=(1e-16, 3), xlabel="t (log scale)", ylabel="eigenvalues s_j of F",
                    title=f"(a) spectrum of F = W X Wᵀ over time, η = {ETAS[-1]:g}\n(colour: data variance x_j, 1 → 0.05)")
        axes[1].set(xscale="log", xlabel="t (log scale)", ylabel="CEV-AUC (higher = more collapsed)",
                    title="(b) CEV-AUC of the simulated representation\n(dotted: the analytic end state)")
        axes[2].set(xscale="log", xlabel="t (log scale)", ylabel="RankMe (effective rank)",
                    title="(c) RankMe of the simulated representation\n(dotted: the analytic end state)")
        for ax in axes[1:]:
            ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.15), frameon=False, fontsize=7.5)
        fig.suptitle(f"Collapse metrics on simulated linear BYOL weights (n = {N}, x' = {XP:g}, β = {BETA:g}): "
                     "weight decay prunes weak modes, CEV-AUC rises and RankMe falls")
    return save(fig, out, "metrics_on_simulation", **data)


if __name__ == "__main__":
    print(make(Path(__file__).resolve().parents[1] / "figures"))
