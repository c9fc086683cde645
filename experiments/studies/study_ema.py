"""Study (b): a slower EMA target (momentum m closer to 1, smaller beta) slows convergence; the end state barely moves.

Theory (Tian, Chen & Ganguli, ICML 2021, Sec. 4-5; docs/theory_dynamics.md): the EMA rate beta = (1 - m)/alpha
(per unit ODE time, ``linsim.mapping``) does not enter the fixed points p+, s+ of a mode, only how fast they
are reached (tau = w_a / w < 1 while a mode grows). The theory column integrates the per-mode ODE at each
run's mapped parameters for the leading mode (largest x_j) of the initial network's predictor-input
statistics (x, x'; weak modes barely move in a short run, whatever beta), from p0 = the mean |eigenvalue|
of the initial predictor and s0 = 1 (the linear model of ``linsim bridge compare`` starts at W = I), and
times it as the real runs are timed (below), in SGD steps. Caveat: the real loss is l2-normalised, the
ODE's is not.

Runs: BYOL with a gradient-trained linear predictor and EMA momentum m in EMAS[size] (m = 0 is SimSiam).
Measured: the steps t50 and t90 at which the predictor's symmetric spectrum p(t) has travelled 50% and 90%
of the largest distance ||p(end) - p(0)|| of any run (the same target for every run; none if a run never
gets there),
logged every few steps, and the end state (final spectrum of Wp normalised by its largest eigenvalue, RankMe
of the projector output, linear-probe accuracy).
Usage: python experiments/studies/study_ema.py [--size tiny|small|full] [--out figures] [--data-dir D]
"""
from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

import _studies as S  # noqa: E402
from linsim.plots import STYLE  # noqa: E402

NAME = "ema"
EMAS = {"tiny": (0.9, 0.99), "small": (0.0, 0.9, 0.99), "full": (0.0, 0.9, 0.99, 0.996)}
FRACS = (0.5, 0.9)  # t50 / t90: steps to travel 50% / 90% of the largest distance any run travels
LOG_EVERY = {"tiny": 0, "small": 2, "full": 0}


def plan(size: str = "small", data_dir: str | None = None) -> list[S.Run]:
    """The runs of the study at ``size`` (configurations only; nothing is trained)."""
    return [S.Run(f"ema{m:g}", S.base_config(size, data_dir, ema=m, predictor="linear", log_every=LOG_EVERY[size]), m)
            for m in EMAS[S.check_size(size)]]


def reach_step(steps, values, target: float) -> float | None:
    """First step at which the distance travelled from the start, ||v(t) - v(0)||, reaches ``target`` (None:
    not within the run)."""
    v = np.asarray(values, float).reshape(len(steps), -1)
    d = np.linalg.norm(v - v[0], axis=1)
    hit = np.flatnonzero(d >= target)
    return float(np.asarray(steps)[hit[0]]) if hit.size and target > 0 else None


def common_target(curves, frac: float = 0.5) -> float:
    """``frac`` of the largest distance travelled by any run: every run is timed to the same distance."""
    dist = []
    for v in curves:
        a = np.asarray(v, float).reshape(len(v), -1)
        dist.append(float(np.linalg.norm(a[-1] - a[0])))
    return frac * max(dist)


def make(out: Path, size: str = "small", *, data_dir: str | None = None, runs: Path | None = None) -> list[Path]:
    import time

    t0 = time.perf_counter()
    runs_ = plan(size, data_dir)
    data = S.load_data(size, data_dir)
    results, (x, xp) = S.train_all(runs_, runs, data, stats=True)
    top = int(np.argmax(x))
    xm, xpm = float(x[top]), float(xp[top])
    table, traj = [], {}
    end_ref = None
    for r, _, recs, sec in results:
        recs = sorted(recs, key=lambda q: q["step"])
        steps = [q["step"] for q in recs]
        spec = np.asarray([q["wp_sym_eig"] for q in recs], float)
        tp = S.theory_params(r.cfg)
        p0 = float(np.mean(np.abs(spec[0])))
        tr = S.mode_ode(tp, xm, xpm, [p0], [1.0], t_max=max(steps[-1] * tp.time_per_step, 1e-6))
        traj[r.value] = (steps, spec, np.asarray(tr.ts) / tp.time_per_step, np.asarray(tr.p)[:, 0])
    tgt_real = {f: common_target([v[1] for v in traj.values()], f) for f in FRACS}
    tgt_ode = {f: common_target([v[3][:, None] for v in traj.values()], f) for f in FRACS}
    for r, _, recs, sec in results:
        steps, spec, ode_steps, pth = traj[r.value]
        last = S.epoch_records(recs)[-1]
        tp = S.theory_params(r.cfg)
        p_end = spec[-1]
        end_norm = p_end / np.max(np.abs(p_end))
        end_ref = end_norm if end_ref is None else end_ref
        table.append({"ema": r.value, "beta_ode": tp.beta_ode, "time_per_step": tp.time_per_step,
                      **{f"t{round(100 * f)}_steps_theory": reach_step(ode_steps, pth, tgt_ode[f]) for f in FRACS},
                      **{f"t{round(100 * f)}_steps_measured": reach_step(steps, spec, tgt_real[f]) for f in FRACS},
                      "wp_top_final": float(p_end[0]), "end_shape_gap": float(np.max(np.abs(end_norm - end_ref))),
                      "proj_rankme": last["proj_rankme"], "probe_acc": last["probe_acc"], "steps": steps[-1],
                      "seconds": round(sec, 1)})

    ema_sorted = sorted(table, key=lambda t: t["ema"])
    never = float("inf")  # a run that never travels the target distance is the slowest

    def slower(key: str) -> bool:
        v = [never if t[key] is None else t[key] for t in ema_sorted]
        return bool(all(b >= a for a, b in zip(v, v[1:])) and v[-1] > v[0])

    slow_held = slower("t50_steps_measured") and slower("t90_steps_measured")
    slow_theory = slower("t50_steps_theory") and slower("t90_steps_theory")
    gaps = [t["end_shape_gap"] for t in table]
    probes = [t["probe_acc"] for t in table if t["probe_acc"] is not None]
    end_held = bool(max(gaps) <= 0.25)
    prediction = ("t50 and t90 (steps to travel 50% / 90% of a common distance) grow as m -> 1 (beta falls); "
                  "the end state (Wp's normalised spectrum) stays within 0.25 of the first run's")
    outcome = "; ".join(f"m {t['ema']:g} (beta_ode {t['beta_ode']:.3g}): t50/t90 measured "
                        f"{S.fmt(t['t50_steps_measured']) or '-'}/"
                        f"{S.fmt(t['t90_steps_measured']) or '-'} vs ODE {S.fmt(t['t50_steps_theory']) or '-'}/"
                        f"{S.fmt(t['t90_steps_theory']) or '-'} steps, end-shape gap {t['end_shape_gap']:.3f}, "
                        f"probe {S.fmt(t['probe_acc'])}" for t in table)
    verdict = (f"slower convergence with m -> 1: ODE {S.held(slow_theory)}, real runs {S.held(slow_held)}; "
               f"end state unchanged "
               f"{'held' if end_held else 'did not hold'} (largest gap {max(gaps):.3f}, tolerance 0.25"
               + (f"; probe accuracy spread {max(probes) - min(probes):.3f}" if probes else "") + ")")

    with plt.rc_context(STYLE):
        fig, ax = plt.subplots(1, 3, figsize=(14, 3.8), layout="constrained")
        colors = plt.cm.plasma(np.linspace(0, 0.85, len(table)))
        for t, c in zip(table, colors):
            steps, spec, ts_steps, pth = traj[t["ema"]]
            ax[0].plot(steps, spec[:, 0], "o-", ms=3, color=c, label=f"m {t['ema']:g}: top eig")
            ax[0].plot(steps, spec.mean(axis=1), "--", color=c, lw=1)
            ax[1].plot(ts_steps, pth, color=c, label=f"β_ode {t['beta_ode']:.3g}")
            p_end = spec[-1]
            ax[2].plot(np.arange(1, p_end.size + 1), p_end / np.max(np.abs(p_end)), "o-", ms=3, color=c)
        ax[0].set(xlabel="SGD step", ylabel="eigenvalue of sym(Wp)", title="real: top (solid) and mean (dashed)")
        ax[0].legend(frameon=False, fontsize=7)
        ax[1].set(xlabel="SGD step", ylabel="p (leading mode)", title="per-mode ODE at the mapped parameters")
        ax[1].legend(frameon=False, fontsize=7)
        ax[2].set(xlabel="mode j", ylabel="p_j / max |p|", title="end state: normalised spectrum of Wp")
        fig.suptitle(f"Study (b), EMA momentum ({size} size)")
        S.caption(fig, f"Theory: {prediction}. Outcome: {outcome}. Verdict: {verdict}.")
    rep = S.report(NAME, size, prediction, outcome, verdict, time.perf_counter() - t0, x_top=xm, xp_top=xpm,
                   slow_held=slow_held, slow_theory=slow_theory, end_held=end_held)
    return S.write_outputs(out, NAME, fig, table, rep)


if __name__ == "__main__":
    S.main(make, __doc__)
