"""Study (a): weight decay makes the linear predictor symmetric and aligned with F; large weight decay collapses modes.

Theory (Tian, Chen & Ganguli, "Understanding Self-supervised Learning Dynamics without Contrastive Pairs",
ICML 2021, Sec. 4-5; docs/theory_dynamics.md): with weight decay eta > 0 the antisymmetric part of Wp and the
commutator [F, Wp] decay, so Wp becomes symmetric and shares F's eigenvectors; with eta = 0 nothing pulls
them there. A mode j with data variance x_j and augmentation variance x'_j collapses from any start once
eta >= eta_c,j = x_j^2 / (4 (x_j + x'_j)), so a larger eta collapses more modes. Each run's SGD settings are
mapped with ``linsim.mapping`` (as ``linsim bridge compare`` does: g = 2, eta = wd / 2) and x_j, x'_j are
estimated from the initial network's predictor inputs on two augmented views.

Runs: BYOL with a gradient-trained linear predictor, weight decay wd (backbone, projector and predictor
alike) in WDS[size]. Measured per run: asymmetry ||Wp - Wp^T|| / ||Wp|| and mean eigenvector alignment of
Wp with F before and after training, the number of collapsed modes of F (the EMA of the predictor input's
correlation): eigenvalues below 1e-3 of the initial network's largest (absolute collapse, s_j -> 0 in the
theory; also below 1e-3 of the run's own largest, relative collapse), the projector output's RankMe and the
linear-probe accuracy.
Usage: python experiments/studies/study_weight_decay.py [--size tiny|small|full] [--out figures] [--data-dir D]
"""
from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

import _studies as S  # noqa: E402
from linsim.plots import STYLE  # noqa: E402

NAME = "weight_decay"
WDS = {"tiny": (0.0, 0.1), "small": (0.0, 0.1, 1.0), "full": (0.0, 4e-4, 4e-3, 4e-2)}
#: a decay "happened" when the final value is at most this fraction of the initial one (as ``bridge compare``)
DECAY_FACTOR = 0.5


def plan(size: str = "small", data_dir: str | None = None) -> list[S.Run]:
    """The runs of the study at ``size`` (configurations only; nothing is trained)."""
    return [S.Run(f"wd{wd:g}", S.base_config(size, data_dir, wd=wd, predictor="linear"), wd)
            for wd in WDS[S.check_size(size)]]


def _mean(v) -> float | None:
    return None if v is None else float(np.mean(v))


def make(out: Path, size: str = "small", *, data_dir: str | None = None, runs: Path | None = None) -> list[Path]:
    import time

    t0 = time.perf_counter()
    runs_ = plan(size, data_dir)
    data = S.load_data(size, data_dir)
    rows, curves = [], {}
    results, (x, xp) = S.train_all(runs_, runs, data, stats=True)
    for r, _, recs, sec in results:
        ep = S.epoch_records(recs)
        curves[r.value] = ep
        rows.append({"wd": r.value, "eta": S.theory_params(r.cfg).eta, "_ep": ep, "seconds": sec})
    from linsim.mapping import mode_fates

    eta_c = np.sort([f["eta_c"] for f in mode_fates(S.theory_params(runs_[0].cfg), x, xp)])
    table = []
    for row in rows:
        first, last = row["_ep"][0], row["_ep"][-1]
        table.append({
            "wd": row["wd"], "eta": row["eta"], "eta_c_min": float(eta_c[0]), "eta_c_median": float(np.median(eta_c)),
            "eta_c_max": float(eta_c[-1]), "predicted_collapsed": int(np.sum(eta_c <= row["eta"])),
            "measured_collapsed": S.n_collapsed_vs_init(last["f_eig"], first["f_eig"]),
            "collapsed_vs_own_max": S.n_collapsed(last["f_eig"]), "modes": len(eta_c),
            "asym_init": first["asymmetry"], "asym_final": last["asymmetry"],
            "align_init": _mean(first["alignment"]), "align_final": _mean(last["alignment"]),
            "comm_final": last["commutator"], "proj_rankme": last["proj_rankme"], "probe_acc": last["probe_acc"],
            "epochs": last["epoch"], "seconds": round(row["seconds"], 1)})

    ratio = {t["wd"]: t["asym_final"] / t["asym_init"] for t in table}
    zero = [t for t in table if t["wd"] == 0]
    pos = [t for t in table if t["wd"] > 0]
    sym_held = bool(pos and zero and all(ratio[t["wd"]] <= DECAY_FACTOR for t in pos) and ratio[0.0] > DECAY_FACTOR)
    align_held = bool(pos and zero and all(t["align_final"] > zero[0]["align_final"] for t in pos))
    coll = [t["measured_collapsed"] for t in table]
    coll_held = bool(all(b >= a for a, b in zip(coll, coll[1:])) and coll[-1] > coll[0])
    pred_match = sum(t["predicted_collapsed"] == t["measured_collapsed"] for t in table)
    prediction = ("eta > 0: asymmetry of Wp falls (final <= 0.5 x initial) and alignment with F rises; eta = 0: "
                  "neither; larger eta: more collapsed modes (eta >= eta_c,j)")
    outcome = ("; ".join(f"wd {t['wd']:g} (eta {t['eta']:.3g}): asym {t['asym_init']:.3f}->{t['asym_final']:.3f}, "
                         f"align {t['align_init']:.3f}->{t['align_final']:.3f}, collapsed {t['measured_collapsed']}/"
                         f"{t['modes']} (predicted {t['predicted_collapsed']})" for t in table))
    verdict = (f"symmetry {S.held(sym_held)}; alignment {S.held(align_held)}; "
               f"more collapse with larger eta {S.held(coll_held)}; predicted = measured "
               f"collapsed-mode count in {pred_match}/{len(table)} runs")

    with plt.rc_context(STYLE):
        fig, ax = plt.subplots(1, 4, figsize=(16, 3.8), layout="constrained")
        colors = plt.cm.viridis(np.linspace(0, 0.85, len(table)))
        for t, c in zip(table, colors):
            ep = curves[t["wd"]]
            e = [r["epoch"] for r in ep]
            ax[0].plot(e, [r["asymmetry"] for r in ep], "o-", color=c, label=f"wd {t['wd']:g} (η {t['eta']:.3g})")
            ax[1].plot(e, [_mean(r["alignment"]) for r in ep], "o-", color=c)
            f = np.clip(np.asarray(ep[-1]["f_eig"], float), 1e-12, None)
            ax[2].semilogy(np.arange(1, f.size + 1), f / np.max(ep[0]["f_eig"]), "o-", color=c, ms=3)
            ax[3].axhline(t["eta"] if t["eta"] > 0 else np.nan, color=c, lw=1.5)
        ax[0].set(xlabel="epoch", ylabel="‖Wp − Wpᵀ‖/‖Wp‖", title="asymmetry of Wp")
        ax[0].legend(frameon=False, fontsize=7)
        ax[1].set(xlabel="epoch", ylabel="mean |u_Wp,j · u_F,j|", title="alignment of Wp with F")
        ax[2].axhline(1e-3, color="k", ls=":", lw=1)
        ax[2].set(xlabel="mode j", ylabel="s_j / s_1(initial network)",
                  title="final spectrum of F (dotted: collapsed below)")
        floor = 1e-8  # display floor: modes with no signal (x_j = 0, eta_c = 0) sit on it
        ax[3].semilogy(np.arange(1, eta_c.size + 1), np.maximum(eta_c[::-1], floor), "k.",
                       label="η_c,j (initial network; floor 1e-8)")
        ax[3].set(xlabel="mode j", ylabel="η", title="mapped η (lines) vs critical η_c,j", ylim=(floor / 2, None))
        ax[3].legend(frameon=False, fontsize=7, loc="lower left")
        fig.suptitle(f"Study (a), weight decay ({size} size): symmetry, alignment and collapse of the linear predictor")
        S.caption(fig, f"Theory: {prediction}. Outcome: {outcome}. Verdict: {verdict}.")
    rep = S.report(NAME, size, prediction, outcome, verdict, time.perf_counter() - t0,
                   eta_c=eta_c.tolist(), x=np.asarray(x).tolist(), xp=np.asarray(xp).tolist(),
                   symmetry_held=sym_held, alignment_held=align_held, collapse_held=coll_held)
    return S.write_outputs(out, NAME, fig, table, rep)


if __name__ == "__main__":
    S.main(make, __doc__)
