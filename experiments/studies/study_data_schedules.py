"""Study (e): data schedules of Li, Efros & Pathak (ECCV 2022), CEV-AUC tracked, and how well AUC forecasts accuracy.

Li, Efros & Pathak, "Understanding Collapse in Non-Contrastive Siamese Representation Learning", ECCV 2022:
partial dimensional collapse of the backbone features, measured label-free by the area under the cumulative
explained-variance curve (CEV-AUC: larger = variance in fewer directions = more collapsed), forecasts the
linear-probe accuracy across runs (a higher AUC, a lower accuracy); a continual (single-pass) schedule acts as
a regulariser against collapse, and a hybrid (multi-epoch training resumed from a single-pass checkpoint)
improves the probe. Their schedules (every epoch runs the same number of steps, whatever its data):

- iid: the whole pool, multi-epoch;
- single_pass: the pool split into as many chunks as stages; stage k trains on chunk k only (cycled);
- cumulative: stage k trains on chunks 0..k;
- fixed_subset: chunk 0 at every stage (the "x% of the data" baseline);
- hybrid: single_pass for the first half of the stages, then iid.

Each stage is a chained ``train(..., resume=True, data=...)`` call with the stage's images resampled to the
pool's size (so every stage runs the same steps and a resumed run is the uninterrupted one). CEV-AUC is
measured after every stage on a FIXED set of pool images (the trainer's own AUC uses the current stage's
images, which repeat under these schedules). The forecast: Spearman rank correlation (scipy.stats) between
CEV-AUC and linear-probe accuracy, over the final states of the schedules and over all (schedule, stage)
states pooled.
Usage: python experiments/studies/study_data_schedules.py [--size tiny|small|full] [--out figures] [--data-dir D]
"""
from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

import _studies as S  # noqa: E402
from linsim.plots import STYLE  # noqa: E402

NAME = "data_schedules"
SCHEDULES = ("iid", "single_pass", "cumulative", "fixed_subset", "hybrid")
#: per size: schedules, number of stages (= chunks), epochs per stage, pool size (pre-training images)
SETUP = {"tiny": (("iid", "single_pass"), 2, 1, 32),
         "small": (SCHEDULES, 4, 1, 256),
         "full": (SCHEDULES, 20, 5, None)}
EVAL_IMAGES = {"tiny": 32, "small": 256, "full": 5000}


def plan(size: str = "small", data_dir: str | None = None) -> list[S.Run]:
    """One Run per schedule (the configuration of its last stage; stage k trains to epoch k * epochs_per_stage)."""
    schedules, stages, per, _ = SETUP[S.check_size(size)]
    cfg = S.base_config(size, data_dir, epochs=stages * per, predictor="linear")
    return [S.Run(s, cfg, s, {"stages": stages, "epochs_per_stage": per}) for s in schedules]


def stage_indices(schedule: str, k: int, stages: int, n: int, seed: int = 0) -> np.ndarray:
    """Pool indices (n of them) that stage k (0-based) trains on under ``schedule``."""
    if schedule not in SCHEDULES:
        raise ValueError(f"unknown schedule {schedule!r}")
    chunks = np.array_split(np.arange(n), stages)
    if schedule == "hybrid":
        schedule = "single_pass" if k < stages // 2 else "iid"
    if schedule == "iid":
        return np.arange(n)
    part = {"single_pass": chunks[k], "fixed_subset": chunks[0],
            "cumulative": np.concatenate(chunks[: k + 1])}[schedule]
    rng = np.random.default_rng([seed, k, 0x5C])
    return part[np.resize(rng.permutation(part.size), n)]


def fixed_auc(run_dir: Path, images: np.ndarray) -> dict:
    """CEV-AUC and RankMe of the backbone features of the run's last checkpoint on fixed images."""
    from linsim.bridge import evaluate as E
    from linsim.bridge import train as T

    cfg, state = T.load_run(run_dir, "last")
    return E.representation_report(T.backbone_features(state, cfg, images), prefix="backbone")


def make(out: Path, size: str = "small", *, data_dir: str | None = None, runs: Path | None = None) -> list[Path]:
    import time

    t0 = time.perf_counter()
    runs_ = plan(size, data_dir)
    _, stages, per, n_pool = SETUP[size]
    data = S.load_data(size, data_dir, n=n_pool)
    n = data.pretrain.shape[0]
    ev = data.pretrain[np.sort(np.random.default_rng(7).permutation(n)[: min(EVAL_IMAGES[size], n)])]
    table, states = [], []
    with S.RunsDir(runs) as rd:
        for r in runs_:
            sec = 0.0
            for k in range(stages):
                idx = stage_indices(r.value, k, stages, n)
                stage = S.Run(r.name, r.cfg.replace(epochs=(k + 1) * per), r.value)
                _, recs, s = S.train_run(stage, rd, S.with_pretrain(data, data.pretrain[idx]), resume=k > 0)
                sec += s
                init_probe = recs[0]["probe_acc"]
                last = S.epoch_records(recs)[-1]
                rep = fixed_auc(rd / r.name, ev)
                states.append({"schedule": r.value, "stage": k + 1, "epoch": last["epoch"],
                               "unique_images": int(np.unique(idx).size), "cev_auc": rep["backbone_cev_auc"],
                               "rankme": rep["backbone_rankme"], "probe_acc": last["probe_acc"],
                               "knn_acc": last["knn_acc"]})
            fin = states[-1]
            table.append({"schedule": r.value, "cev_auc": fin["cev_auc"], "backbone_rankme": fin["rankme"],
                          "probe_acc": fin["probe_acc"], "knn_acc": fin["knn_acc"],
                          "unique_images_seen": int(np.unique(np.concatenate(
                              [stage_indices(r.value, k, stages, n) for k in range(stages)])).size),
                          "epochs": fin["epoch"], "seconds": round(sec, 1)})
    rho_final = S.spearman([t["cev_auc"] for t in table], [t["probe_acc"] for t in table])
    rho_all = S.spearman([s["cev_auc"] for s in states], [s["probe_acc"] for s in states])
    for t in table:
        t["spearman_final"] = rho_final
        t["spearman_all_stages"] = rho_all
    acc = {t["schedule"]: t["probe_acc"] for t in table}
    auc = {t["schedule"]: t["cev_auc"] for t in table}
    ok = S.learned([s["probe_acc"] for s in states], init_probe)  # else accuracy is noise: undecided
    checks = [("AUC forecasts accuracy (Spearman over final states < 0)",
               None if rho_final is None or not ok else rho_final < 0),
              ("pooled over stages (Spearman < 0)", None if rho_all is None or not ok else rho_all < 0)]
    if "single_pass" in auc and "iid" in auc:
        checks.append(("single pass less collapsed than iid (lower AUC)", auc["single_pass"] < auc["iid"]))
    if "hybrid" in acc and "iid" in acc:
        checks.append(("hybrid probe >= iid probe", acc["hybrid"] >= acc["iid"] if ok else None))
    prediction = ("higher CEV-AUC (more collapse) forecasts lower probe accuracy (negative rank correlation); "
                  "single pass collapses less than iid; hybrid beats iid")
    outcome = ("; ".join(f"{t['schedule']}: AUC {t['cev_auc']:.4f}, probe {S.fmt(t['probe_acc'])}" for t in table)
               + f"; Spearman(AUC, probe) final {S.fmt(rho_final)} (n={len(table)}), all stages {S.fmt(rho_all)} "
               f"(n={len(states)})")
    verdict = "; ".join(f"{name}: {S.held(c)}" for name, c in checks)
    if not ok:
        verdict += (f" (accuracy-based checks undecided: no state's probe beat the initial network's "
                    f"{S.fmt(init_probe)} by {S.LEARN_MARGIN}; the Spearman numbers are then rank noise)")

    with plt.rc_context(STYLE):
        fig, ax = plt.subplots(1, 3, figsize=(14, 3.8), layout="constrained")
        colors = dict(zip(SCHEDULES, plt.cm.tab10(np.arange(len(SCHEDULES)))))
        for r in runs_:
            st = [s for s in states if s["schedule"] == r.value]
            e = [s["epoch"] for s in st]
            ax[0].plot(e, [s["cev_auc"] for s in st], "o-", color=colors[r.value], label=r.value)
            ax[1].plot(e, [s["probe_acc"] for s in st], "o-", color=colors[r.value])
            ax[2].scatter([s["cev_auc"] for s in st], [s["probe_acc"] for s in st], color=colors[r.value], s=14,
                          alpha=0.6)
            ax[2].scatter([st[-1]["cev_auc"]], [st[-1]["probe_acc"]], color=colors[r.value], s=60, edgecolor="k")
        ax[0].set(xlabel="epoch", ylabel="CEV-AUC (fixed images)", title="collapse of the backbone features")
        ax[0].legend(frameon=False, fontsize=7)
        ax[1].set(xlabel="epoch", ylabel="linear-probe accuracy", title="probe accuracy")
        ax[2].set(xlabel="CEV-AUC", ylabel="probe accuracy",
                  title=f"Spearman: final {S.fmt(rho_final) or 'n/a'}, all {S.fmt(rho_all) or 'n/a'}")
        fig.suptitle(f"Study (e), data schedules of Li, Efros & Pathak 2022 ({size} size, {stages} stages)")
        S.caption(fig, f"Prediction: {prediction}. Outcome: {outcome}. Verdict: {verdict}.")
    rep = S.report(NAME, size, prediction, outcome, verdict, time.perf_counter() - t0, stages=states,
                   spearman_final=rho_final, spearman_all=rho_all, checks=dict(checks), probe_init=init_probe)
    return S.write_outputs(out, NAME, fig, table, rep)


if __name__ == "__main__":
    S.main(make, __doc__)
