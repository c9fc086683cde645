"""Study (c): a larger predictor learning-rate ratio alpha_p protects against collapse.

Theory (Tian, Chen & Ganguli, ICML 2021, Sec. 5; docs/theory_dynamics.md, collapse basins): with weight decay
eta > 0 each mode has a collapse basin bounded by the stable manifold of the saddle p-; it shrinks as the
predictor's relative learning rate alpha_p grows, so fewer modes collapse. The theory column is the fraction
of a grid of starts (p0 in [-1, 1], s0 in (0, 1]) that collapses in the per-mode ODE at each run's mapped
parameters (``linsim.mapping``, as ``linsim bridge compare``: eta = wd / 2), averaged over the modes (x_j,
x'_j) of the initial network's predictor-input statistics that have eta < eta_c,j (the others collapse from
any start, whatever alpha_p), integrated to ODE time 20 / eta. To make the basin visible
at small sizes the runs use a weight decay WD[size] larger than the recipe's 4e-4.

Runs: BYOL with a gradient-trained linear predictor whose learning rate is alpha_p times the network's,
alpha_p in RATIOS[size]. Measured: collapsed modes of F (below 1e-3 of the largest), RankMe of the projector
output (collapse flag: RankMe < 1.5), linear-probe accuracy. Collapsed modes: eigenvalues of F (the EMA of
the predictor input's correlation) below 1e-3 of the initial network's largest (absolute collapse), and
below 1e-3 of the run's own largest (relative collapse).
Usage: python experiments/studies/study_pred_lr.py [--size tiny|small|full] [--out figures] [--data-dir D]
"""
from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

import _studies as S  # noqa: E402
from linsim.plots import STYLE  # noqa: E402

NAME = "pred_lr"
RATIOS = {"tiny": (0.1, 10.0), "small": (0.1, 1.0, 10.0), "full": (0.1, 1.0, 3.0, 10.0)}
WD = {"tiny": 2e-3, "small": 2e-3, "full": 4e-3}
GRID = (21, 15)
RANKME_TOL = 0.25  # (p0, s0) grid of the basin fraction


def plan(size: str = "small", data_dir: str | None = None) -> list[S.Run]:
    """The runs of the study at ``size`` (configurations only; nothing is trained)."""
    return [S.Run(f"alphap{a:g}", S.base_config(size, data_dir, pred_lr_ratio=a, wd=WD[size], predictor="linear"), a)
            for a in RATIOS[S.check_size(size)]]


def basin_fraction(tp, x, xp) -> tuple[float, int]:
    """(fraction of (mode, start) pairs on the (p0, s0) grid whose s ends below 1e-3 of its start, number of
    modes used): per-mode ODE to time 20 / eta over the modes with eta < eta_c,j (module docstring)."""
    from linsim.dynamics.modes import eta_critical

    x, xp = np.asarray(x, float), np.asarray(xp, float)
    live = np.array([xj > 0 and tp.eta < float(eta_critical(xj, xpj)) for xj, xpj in zip(x, xp)], bool)
    if not live.any():
        return 1.0, 0
    p0, s0 = np.meshgrid(np.linspace(-1, 1, GRID[0]), np.linspace(0.02, 1, GRID[1]), indexing="ij")
    k = int(live.sum())
    P0, S0 = np.tile(p0.ravel(), k), np.tile(s0.ravel(), k)
    X, XP = np.repeat(x[live], p0.size), np.repeat(xp[live], p0.size)
    tr = S.mode_ode(tp, X, XP, P0, S0, t_max=20.0 / max(tp.eta, 1e-4), n_save=2)
    s_end = np.asarray(tr.s)[-1]
    coll = np.isfinite(s_end) & (s_end < 1e-3 * S0)
    return float(coll.mean()), k


def make(out: Path, size: str = "small", *, data_dir: str | None = None, runs: Path | None = None) -> list[Path]:
    import time

    t0 = time.perf_counter()
    runs_ = plan(size, data_dir)
    data = S.load_data(size, data_dir)
    trained, (x, xp) = S.train_all(runs_, runs, data, stats=True)
    results = [(r, S.epoch_records(recs), sec) for r, _, recs, sec in trained]
    table = []
    for r, ep, sec in results:
        tp = S.theory_params(r.cfg)
        frac, k = basin_fraction(tp, x, xp)
        last = ep[-1]
        table.append({"alpha_p": r.value, "eta": tp.eta, "basin_fraction_theory": frac, "modes_with_basin": k,
                      "measured_collapsed": S.n_collapsed_vs_init(last["f_eig"], ep[0]["f_eig"]),
                      "collapsed_vs_own_max": S.n_collapsed(last["f_eig"]), "modes": len(last["f_eig"]),
                      "proj_rankme": last["proj_rankme"], "collapsed_flag": last["collapsed"],
                      "probe_acc": last["probe_acc"], "epochs": last["epoch"], "seconds": round(sec, 1)})
    fr = [t["basin_fraction_theory"] for t in table]
    mc = [t["measured_collapsed"] for t in table]
    rk = [t["proj_rankme"] for t in table]
    theory_mono = bool(all(b <= a for a, b in zip(fr, fr[1:])) and fr[-1] < fr[0])
    # RankMe must rise by more than RANKME_TOL to count (run-to-run noise at equal settings is ~0.05 here)
    held = bool(all(b <= a for a, b in zip(mc, mc[1:])) and (mc[-1] < mc[0] or rk[-1] > rk[0] + RANKME_TOL))
    if all(t["collapsed_flag"] for t in table):
        held = None  # every run collapsed (RankMe < 1.5): there is no protection to compare
    prediction = "collapse basin (and the number of collapsed modes) shrinks as alpha_p grows"
    outcome = "; ".join(f"alpha_p {t['alpha_p']:g}: basin fraction (ODE) {t['basin_fraction_theory']:.3f}, "
                        f"collapsed modes {t['measured_collapsed']}/{t['modes']}, RankMe {t['proj_rankme']:.2f}, "
                        f"probe {S.fmt(t['probe_acc'])}" for t in table)
    verdict = (f"theory: basin shrinks with alpha_p {S.held(theory_mono)}; real runs: larger alpha_p protects "
               f"{'undecided: every run collapsed' if held is None else S.held(held)} (collapsed modes non-increasing "
               f"and fewer, or RankMe higher by > {RANKME_TOL})")

    with plt.rc_context(STYLE):
        fig, ax = plt.subplots(1, 3, figsize=(14, 3.8), layout="constrained")
        colors = plt.cm.viridis(np.linspace(0, 0.85, len(table)))
        for (r, ep, _), c in zip(results, colors):
            e = [q["epoch"] for q in ep]
            ax[0].plot(e, [q["proj_rankme"] for q in ep], "o-", color=c, label=f"α_p {r.value:g}")
            ax[1].plot(e, [S.n_collapsed_vs_init(q["f_eig"], ep[0]["f_eig"]) for q in ep], "o-", color=c)
            ax[1].plot(e, [S.n_collapsed(q["f_eig"]) for q in ep], "s--", color=c, ms=4)
        ax[0].set(xlabel="epoch", ylabel="RankMe of projector output", title="real runs: effective rank")
        ax[0].legend(frameon=False, fontsize=7)
        ax[1].set(xlabel="epoch", ylabel="collapsed modes of F",
                  title="real runs: below 1e-3 s_1(0) (solid), 1e-3 s_1(t) (dashed)")
        ax[2].plot([t["alpha_p"] for t in table], fr, "ko-", label="ODE: collapsing fraction of the start grid")
        ax[2].set(xscale="log", xlabel="α_p", ylabel="fraction", ylim=(-0.02, 1.02),
                  title=f"theory: basin (η {table[0]['eta']:.3g}, "
                        f"{table[0]['modes_with_basin']} modes with η < η_c)")
        ax[2].legend(frameon=False, fontsize=7)
        fig.suptitle(f"Study (c), predictor learning-rate ratio α_p ({size} size)")
        S.caption(fig, f"Theory: {prediction}. Outcome: {outcome}. Verdict: {verdict}.")
    rep = S.report(NAME, size, prediction, outcome, verdict, time.perf_counter() - t0, x=np.asarray(x).tolist(),
                   xp=np.asarray(xp).tolist(),
                   theory_monotone=theory_mono, held=held)
    return S.write_outputs(out, NAME, fig, table, rep)


if __name__ == "__main__":
    S.main(make, __doc__)
