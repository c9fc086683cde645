"""Spectral closed forms: exact optima, task alignment of the pair graph G, and the VICReg rank staircase.

Balestriero & LeCun, "Contrastive and Non-Contrastive Self-Supervised Learning Recover Global and Local Spectral
Embedding Methods" (NeurIPS 2022): VICReg, SimCLR and Barlow Twins solve spectral-embedding problems on G.
Data: built-in anisotropic Gaussian classes (``linsim.spectral.gaussian_classes(n_nuisance=4, seed=0)``: C = 4
classes of 30/40/50/60 points in D = 10, plus an independent 4-cluster nuisance s), embedding dim K = 3.

(a) Closed form vs best-of-3 L-BFGS (``minimize_restarts``, random starts) on the same loss and label graph, as in
    ``linsim spectral``: the bars are the relative excess (GD - optimum)/|optimum| of the best and of every
    restart (log scale): all positive, so gradient descent never beats the reported optimum, which is the closed
    form inside its domain and the certified numerical optimum outside it (hatched: VICReg at finite beta = 100,
    alpha = 1, gamma = 20, whose closed form is the beta -> inf limit). Barlow Twins on the data, lambda = 0.0051;
    spectral-contrastive: the linear-encoder optimum of the normalised adjacency.
(b) Aligned (label-clique) vs misaligned (nuisance-clique) graph: train accuracy of a least-squares linear probe
    on the labels y for the closed-form VICReg, Barlow Twins and spectral-contrastive solutions, with the
    projector distance of each span to Fisher LDA on the bars (0 = the same span).
(c) Non-parametric VICReg at finite invariance weight on the k-NN graph (k = 10) of the same data, K = 8,
    alpha = 1: number of unit-variance dims and RankMe of Z* over a log gamma grid; dotted lines at the
    predicted drops gamma = alpha / (2 ell_k).
Theory: docs/spectral.md.
"""
from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

import linsim.spectral as sp  # noqa: E402
from _common import save  # noqa: E402
from linsim.spectral.compare import closed_form_vs_gd, probe_accuracy  # noqa: E402
from linsim.metrics import rankme  # noqa: E402
from linsim.plots import STYLE  # noqa: E402

K = 3
ALPHA, GAMMA, BETA, LAMBD = 1.0, 20.0, 100.0, 0.0051
GD_STARTS = 3
METHODS = (("vicreg", "VICReg\n(finite γ = 20)"), ("barlow", "Barlow Twins\n(λ = 0.0051)"),
           ("spectral-contrastive", "spectral-\ncontrastive"))
K_RANK, KNN = 8, 10


def _closed_weights(method, X, G):
    """Closed-form linear weights and the inputs they act on (centred X, except spectral-contrastive)."""
    Xc = X - X.mean(0)
    if method == "vicreg":
        return sp.vicreg_linear_weights(Xc, G, K)[0], Xc
    if method == "barlow":
        return sp.barlow_linear_weights(Xc, G, K)[0], Xc
    return sp.spectral_contrastive_linear_weights(X, G, K)[0], X


def _span(a: np.ndarray) -> str:
    """'100%' or '38-41%': the range of accuracies in a row."""
    lo, hi = round(100 * a.min()), round(100 * a.max())
    return f"{lo}%" if lo == hi else f"{lo}-{hi}%"


def make(out: Path) -> list[Path]:
    data = sp.gaussian_classes(n_nuisance=4, seed=0)
    X, y, s = data.X, data.y, data.s
    graphs = {"aligned (label graph)": sp.label_graph(y), "misaligned (nuisance graph)": sp.nuisance_graph(s)}

    # (a) closed form vs L-BFGS, label graph
    closed, optimum, valid, gd_best, gd_all = [], [], [], [], []
    for method, _ in METHODS:
        _, c, gd, extra = closed_form_vs_gd(method, X, y, graphs["aligned (label graph)"], K, ALPHA, BETA, GAMMA, LAMBD,
                                            0.5, GD_STARTS, 0)
        closed.append(c)
        valid.append(bool(extra["closed_form_valid"]))
        optimum.append(gd.value - extra["gap_gd_minus_optimum"])  # the closed form, or the certified optimum outside its domain
        gd_best.append(gd.value)
        gd_all.append(gd.values)
    closed, optimum, valid = np.array(closed), np.array(optimum), np.array(valid)
    gd_best, gd_all = np.array(gd_best), np.array(gd_all)

    # (b) aligned vs misaligned: probe accuracy on y and distance to the LDA span
    W_lda = sp.fisher_lda(X, y)[0]
    acc = np.zeros((len(graphs), len(METHODS)))
    dist = np.zeros_like(acc)
    for i, G in enumerate(graphs.values()):
        for j, (method, _) in enumerate(METHODS):
            W, Xin = _closed_weights(method, X, G)
            acc[i, j] = probe_accuracy(Xin @ W, y)
            dist[i, j] = sp.subspace_distance(W, W_lda)
    acc_lda = probe_accuracy((X - X.mean(0)) @ W_lda, y)
    majority = np.bincount(y).max() / y.size

    # (c) VICReg at finite invariance weight: rank vs gamma on the k-NN graph
    Gk = sp.knn_graph(X, KNN)
    gammas = np.logspace(-2, 3, 201)
    n_unit, rme = np.zeros(gammas.size), np.zeros(gammas.size)
    for i, g in enumerate(gammas):
        Z, sigma, ell = sp.vicreg_finite_embedding(Gk, K_RANK, ALPHA, g)
        n_unit[i] = np.sum(sigma >= 1.0 - 1e-12)
        rme[i] = rankme(Z)
    drops = np.array([ALPHA / (2 * e) for e in ell if e > 0])

    with plt.rc_context(STYLE):
        fig, axes = plt.subplots(1, 3, figsize=(17, 4.8), layout="constrained")
        ax = axes[0]
        xs = np.arange(len(METHODS))
        rel_best = (gd_best - optimum) / np.abs(optimum)
        rel_all = (gd_all - optimum[:, None]) / np.abs(optimum[:, None])
        floor = 1e-17  # below double-precision resolution of a relative gap; bars of a zero gap sit here
        colors = ["tab:green" if r >= -1e-12 else "tab:red" for r in rel_best]
        bars = ax.bar(xs, np.maximum(np.abs(rel_best), floor), 0.5, bottom=0, color=colors,
                      label="best L-BFGS: (GD − optimum) / |optimum| > 0")
        for b, ok in zip(bars, valid):
            if not ok:
                b.set_hatch("//")
        if not valid.all():
            ax.bar([0], [0], color="white", edgecolor="k", hatch="//",
                   label="closed form outside its domain (finite β):\noptimum certified numerically")
        for j in xs:
            ax.plot(np.full(GD_STARTS, j) + np.linspace(-0.12, 0.12, GD_STARTS), np.maximum(np.abs(rel_all[j]), floor), "k.",
                    ms=6, label=f"each of {GD_STARTS} restarts" if j == 0 else None)
            ax.annotate(f"{rel_best[j]:+.1e}", (j, max(abs(rel_best[j]), floor) * 2), ha="center", va="bottom", fontsize=8)
        ax.axhline(np.finfo(float).eps, color="gray", ls=":", lw=1, label="machine epsilon")
        ax.set(yscale="log", ylim=(1e-17, 1.0), xticks=xs, xticklabels=[m[1] for m in METHODS],
               ylabel="relative excess of gradient descent over the optimum",
               title=("(a) gradient descent never beats the reported optimum\n(label graph, K = 3; all bars > 0)"
                      if np.all(rel_best >= -1e-12) else "(a) gradient descent BEATS a reported optimum (red bar)"))
        ax.legend(fontsize=7.5, loc="upper right")

        ax = axes[1]
        for i, (gname, color) in enumerate(zip(graphs, ("tab:green", "tab:red"))):
            bars = ax.bar(xs + (i - 0.5) * 0.38, acc[i], 0.38, color=color, label=gname)
            for b, dd in zip(bars, dist[i]):
                ax.text(b.get_x() + b.get_width() / 2, b.get_height() + 0.01, f"d_LDA\n{dd:.2g}", ha="center",
                        va="bottom", fontsize=7)
        ax.axhline(acc_lda, color="k", ls="--", lw=1, label=f"Fisher LDA ({acc_lda:.0%})")
        ax.axhline(majority, color="gray", ls=":", lw=1, label=f"majority class ({majority:.0%})")
        ax.set(ylim=(0, 1.3), xticks=xs,
               xticklabels=["VICReg\n(β → ∞)", "Barlow Twins", "spectral-\ncontrastive"],
               ylabel="linear-probe train accuracy on y",
               title=f"(b) aligned G: {_span(acc[0])} accuracy, VICReg's span = LDA;\n"
                     f"misaligned G: {_span(acc[1])} (chance {majority:.0%})")
        ax.legend(fontsize=7.5, loc="upper right", ncol=2)

        ax = axes[2]
        ax.plot(gammas, n_unit, color="tab:blue", lw=2, label="# unit-variance dims (σ_k = 1)")
        ax.plot(gammas, rme, color="tab:purple", lw=1.5, label="RankMe of Z*")
        for k, g in enumerate(drops):
            ax.axvline(g, color="gray", ls=":", lw=1, label="predicted drop γ = α/(2ℓ_k)" if k == 0 else None)
        ax.set(xscale="log", xlabel="invariance weight γ", ylabel="rank", ylim=(0, K_RANK + 1),
               title=f"(c) VICReg rank vs γ (k-NN graph, K = {K_RANK}, α = 1):\n"
                     f"staircase {int(n_unit[0])} → {int(n_unit[-1])} ({sp.n_components(Gk)} graph components)")
        ax.legend(fontsize=8, loc="lower left")
        fig.suptitle("Spectral closed forms on the built-in Gaussian classes (C = 4, N = 180, D = 10)")
    return save(fig, out, "spectral_closed_forms", methods=np.array([m[0] for m in METHODS]),
                closed_loss=closed, gd_best_loss=gd_best, gd_losses=gd_all, graphs=np.array(list(graphs)),
                optimum_loss=optimum, closed_form_valid=valid, relative_excess_best=rel_best, relative_excess_all=rel_all, probe_accuracy=acc,
                lda_subspace_distance=dist, majority_fraction=majority, lda_probe_accuracy=acc_lda, gammas=gammas,
                n_unit_dims=n_unit, rankme=rme, predicted_drops=drops, knn_ell=ell)


if __name__ == "__main__":
    print(make(Path(__file__).resolve().parents[1] / "figures"))
