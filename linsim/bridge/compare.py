"""Hold the linear theory against a real BYOL/SimSiam run: `linsim bridge compare RUN`.

1. **Statistics.** The run's initial network (``checkpoints/init.eqx``) maps two augmented views of real
   images to the predictor's input z (the projector output). Treating z as the input of a linear online
   network W (initialised to the identity, so that the linear model starts with the real network's
   features), X = sym E[z1 z2^T] and X' = (E[z1 z1^T] + E[z2 z2^T])/2 - X (Tian, Chen & Ganguli, ICML 2021,
   Sec. 3: X the mean-view second moment, X' the augmentation covariance; ``linsim.Stats.from_views``).
2. **Parameters.** The run's SGD settings are mapped with ``linsim.mapping``: the trainer's loss is BYOL's
   l2-normalised 2 - 2 cos(q, z') *summed* over the two view orders and averaged over the batch; linsim's
   SGD simulator with ``normalized=True, symmetric=True`` uses the same per-sample loss *averaged* over the
   orders, so the gradient scale is g = 2: alpha = 2 lr, eta = wd/2, alpha_p = pred_lr_ratio,
   eta_p = alpha_p pred_wd/2, EMA rate (1 - m)(1 - mu)/alpha per unit ODE time (a step lasts
   alpha/(1 - mu) of it), momentum mu as is (docs/mapping.md).
3. **Simulation.** The matching linear model (d x d matrices W, Wp, Wa) runs as a finite-batch SGD ensemble
   on Gaussian views with these X, X' (``linsim.dynamics.stochastic.simulate_sgd``), batch = the run's batch
   size, the same number of steps, the run's initial predictor Wp(0), W(0) = Wa(0) = I, heavy-ball momentum,
   EMA after the step, and the run's predictor rule (linear = gradient, symmetric, DirectPred/DirectCopy in
   the code's form). A cosine schedule is a chain of one-epoch runs at each epoch's mid-epoch lr.
4. **Side by side, per epoch.** Eigenvalues of Wp (symmetric part) and of F, asymmetry, commutator, balance
   residual and the number of collapsed modes, with the same definitions for both
   (``linsim.bridge.evaluate.predictor_report``). F is the predictor input's uncentred correlation, which the
   trainer estimates by an EMA of E[z z^T] over views; for the linear model it is W (X + X') W^T.
5. **Verdicts** (each: prediction, real and simulated numbers, tolerance, held or not):
   symmetry (with weight decay eta > 0 Wp becomes symmetric), alignment (the commutator [F, Wp] decays),
   balance (Wp^T Wp - alpha_p W W^T decays, Theorem 1), p_j proportional to sqrt(s_j) at the end (the
   relation DirectPred builds in), the number of collapsed modes, and the shapes of the Wp and F spectra
   against the simulation.

Writes ``RUN/comparison.json`` and ``RUN/comparison.png`` atomically (or into ``out``).
"""
from __future__ import annotations

import dataclasses
import math
from pathlib import Path
from typing import Any

import numpy as np

from linsim.errors import LinsimError

#: a mode counts as collapsed when its F eigenvalue is below this fraction of the largest
COLLAPSE_REL = 1e-3
#: a decay prediction (asymmetry, commutator, balance) holds when the final value is at most this fraction
#: of the initial one
DECAY_FACTOR = 0.5
#: p_j proportional to sqrt(s_j) holds when their Spearman rank correlation over live modes is at least this
SPEARMAN_MIN = 0.8
#: two spectra have the same shape when, each divided by its largest magnitude, they differ by at most this
SHAPE_TOL = 0.25


@dataclasses.dataclass(frozen=True)
class CompareOptions:
    """images: how many pre-training images estimate X, X'; seeds: simulated SGD ensemble size; seed: the
    augmentation key for the estimate and the ensemble's seed."""

    images: int = 512
    seeds: int = 4
    seed: int = 0

    def __post_init__(self) -> None:
        for name, lo in (("images", 8), ("seeds", 1), ("seed", 0)):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int) or v < lo:
                raise LinsimError(f"{name} must be an integer >= {lo}, got {v!r}")


# ---------------------------------------------------------------- pieces (pure where possible)


def theory_of_run(tcfg) -> "Any":
    """The run's TrainConfig -> ``linsim.mapping.TheoryParams`` against linsim's normalised symmetric SGD loss (g = 2)."""
    from linsim.mapping import LossConvention, TrainingConventions, to_theory

    if tcfg.optimizer != "sgd":
        raise LinsimError(f"compare maps SGD runs only (the theory has no {tcfg.optimizer} optimiser)")
    # The per-order loss equals linsim's per-sample normalised loss (factor 1, which LossConvention spells
    # half=True), and the two orders are added: g = 2.
    loss = LossConvention(half=True, symmetrised="sum")
    tc = TrainingConventions(lr=tcfg.lr, momentum=tcfg.momentum, ema=tcfg.ema, weight_decay=tcfg.wd,
                             pred_lr=tcfg.lr * tcfg.pred_lr_ratio, pred_weight_decay=tcfg.pred_wd_value, loss=loss)
    return to_theory(tc)


def p_vs_sqrt_s(Wp, F, collapse_rel: float = COLLAPSE_REL) -> dict[str, Any]:
    """p_j = u_j^T sym(Wp) u_j in F's eigenbasis (s_j descending) against sqrt(s_j) over the live modes
    (s_j >= collapse_rel max s): Spearman rank correlation and the spread std/mean of p_j / sqrt(s_j)."""
    Fs = (np.asarray(F, float) + np.asarray(F, float).T) / 2
    s, U = np.linalg.eigh(Fs)
    s, U = s[::-1], U[:, ::-1]
    P = (np.asarray(Wp, float) + np.asarray(Wp, float).T) / 2
    p = np.einsum("ij,ik,kj->j", U, P, U)
    live = s >= collapse_rel * max(float(s[0]), 1e-300)
    rs = np.sqrt(np.clip(s[live], 0, None))
    out = {"p": p.tolist(), "s": s.tolist(), "live": int(live.sum()), "spearman": None, "ratio_spread": None}
    if live.sum() >= 3:
        out["spearman"] = float(_spearman(p[live], rs))
        ratio = p[live] / rs
        out["ratio_spread"] = float(np.std(ratio) / abs(np.mean(ratio))) if np.mean(ratio) != 0 else None
    return out


def _spearman(a, b) -> float:
    ra = np.argsort(np.argsort(a)).astype(float)
    rb = np.argsort(np.argsort(b)).astype(float)
    ra -= ra.mean()
    rb -= rb.mean()
    den = math.sqrt(float(ra @ ra) * float(rb @ rb))
    return float(ra @ rb / den) if den > 0 else 0.0


def n_collapsed(f_eig, collapse_rel: float = COLLAPSE_REL) -> int:
    """Modes whose F eigenvalue is below ``collapse_rel`` times the largest."""
    f = np.asarray(f_eig, float)
    return int(np.sum(f < collapse_rel * max(float(f.max()), 1e-300)))


def _shape_gap(a, b) -> float:
    a, b = np.asarray(a, float), np.asarray(b, float)
    na, nb = np.max(np.abs(a)), np.max(np.abs(b))
    if na == 0 or nb == 0:
        return float("inf")
    return float(np.max(np.abs(a / na - b / nb)))


# ---------------------------------------------------------------- the simulation


def simulate_run(tcfg, stats, Wp0: np.ndarray, tp, *, steps_per_epoch: int, epochs: int, seeds: int, seed: int):
    """The linear model's SGD ensemble, one saved state per epoch: states (K, epochs + 1, d, d) per key."""
    import linsim as ls
    from linsim.bridge.train import lr_schedule
    from linsim.config import Noise, Predictor
    from linsim.dynamics.stochastic import simulate_sgd

    rules = {"linear": "grad", "symmetric": "symmetric", "directpred": "directpred", "directcopy": "directcopy"}
    if tcfg.predictor not in rules:
        raise LinsimError(f"compare needs a linear predictor (linear, symmetric, directpred, directcopy); "
                          f"the run's predictor is {tcfg.predictor!r}")
    d = Wp0.shape[0]
    Wp0 = (Wp0 + Wp0.T) / 2 if tcfg.predictor == "symmetric" else Wp0
    y0 = {"W": np.eye(d), "Wp": np.asarray(Wp0, float), "Wa": np.eye(d)}
    total = steps_per_epoch * epochs
    sched = lr_schedule(tcfg, total)
    states = {k: [np.broadcast_to(v, (seeds,) + v.shape)] for k, v in y0.items()}
    start = None
    for e in range(epochs):
        lr_e = float(sched(np.asarray(e * steps_per_epoch + steps_per_epoch // 2, np.int32)))
        tp_e = theory_of_run(tcfg.replace(lr=lr_e)) if tcfg.schedule != "constant" else tp
        if lr_e <= 0:
            break
        cfg = ls.Config(
            model="matrix", n1=d,
            hyper=ls.Hyper(eta=tp_e.eta, eta_p=tp_e.eta_p, beta=tp_e.beta_ode, alpha_p=tp_e.alpha_p,
                           stop_grad=bool(tcfg.stop_grad), predictor=rules[tcfg.predictor]),
            stats=stats, init=ls.Init(seed=seed),
            solver=ls.Solver(t_max=steps_per_epoch * tp_e.time_per_step, n_save=2, method="euler", dt=tp_e.alpha,
                             max_steps=max(1_000_000, 2 * steps_per_epoch)),
            predictor=Predictor(rho=tcfg.rho, eps=tcfg.eps_value, freq=tcfg.freq, form="code"),
            noise=Noise(kind="sgd", batch=int(tcfg.batch_size), seeds=seeds, momentum=tp_e.momentum,
                        normalized=True, symmetric=True),
        )
        ens = simulate_sgd(cfg, y0=y0 if start is None else None, start=start)
        if ens.diverged.any():
            raise LinsimError(f"the simulated linear model diverged in epoch {e + 1} (alpha = {tp_e.alpha:.3g}): "
                              "its learning rate is too large for the linear model")
        start = ens.resume_state()
        for k in states:
            states[k].append(ens.states[k][:, -1])
    return {k: np.stack(v, axis=1) for k, v in states.items()}


def sim_records(states: dict, stats, alpha_p: float) -> list[dict[str, Any]]:
    """Per saved epoch: ``predictor_report`` of each seed (F = W (X + X') W^T, W the linear online network),
    spectra and scalars averaged over seeds, plus the collapsed-mode count of the mean F spectrum."""
    from linsim.bridge.evaluate import predictor_report

    K, T = states["W"].shape[:2]
    XX = stats.X + stats.Xp
    out = []
    for t in range(T):
        reps = []
        for k in range(K):
            W, Wp = states["W"][k, t], states["Wp"][k, t]
            reps.append(predictor_report(Wp, W @ XX @ W.T, W, alpha_p=alpha_p))
        rec = {key: np.mean([r[key] for r in reps], axis=0).tolist()
               for key in ("wp_sym_eig", "f_eig", "wp_eig_real", "asymmetry", "commutator", "balance")}
        rec["n_collapsed"] = n_collapsed(rec["f_eig"])
        out.append(rec)
    return out


# ---------------------------------------------------------------- verdicts


def _decay_verdict(name: str, key: str, real: list[dict], sim: list[dict], why: str) -> dict:
    """The theory's asymptotic statement ``why``; what it predicts for this budget is what the linear model
    did in the same number of steps: decayed (final <= DECAY_FACTOR x initial) or not. Held when the real
    run did the same."""
    r0, r1 = real[0].get(key), real[-1].get(key)
    s0, s1 = sim[0][key], sim[-1][key]
    expected = bool(s1 <= DECAY_FACTOR * s0)
    verdict = {"name": name, "prediction": why + (" (the linear model decays within this budget)" if expected
                                                  else " (the linear model does not decay within this budget)"),
               "real": {"initial": r0, "final": r1}, "sim": {"initial": s0, "final": s1}, "expected_decay": expected,
               "tolerance": f"decayed means final <= {DECAY_FACTOR} x initial; held when real and linear agree"}
    verdict["held"] = None if (r0 is None or r1 is None) else bool((r1 <= DECAY_FACTOR * r0) == expected)
    return verdict


def verdicts(real: list[dict], sim: list[dict], tp, pq_real: dict, pq_sim: dict, d: int, t_total: float) -> list[dict]:
    """The predictions of the theory, each held against the real run (module docstring, step 5).

    ``t_total``: the run's length in ODE time (steps x alpha/(1 - mu)), so 2 eta t_total is the balance
    law's decay exponent."""
    decay = tp.eta > 0
    law = f"; exp(-2 eta t) = {math.exp(-2 * tp.eta_p_value * t_total) if tp.eta == tp.eta_p_value else math.nan:.3g} at t = {t_total:.3g}"
    out = [
        _decay_verdict("symmetry", "asymmetry", real, sim,
                       "weight decay eta > 0 makes Wp symmetric" if decay else "without weight decay the asymmetry persists"),
        _decay_verdict("alignment", "commutator", real, sim, "Wp and F become simultaneously diagonalisable ([F, Wp] -> 0)"),
        _decay_verdict("balance", "balance", real, sim,
                       ("Wp^T Wp - alpha_p W W^T decays like exp(-2 eta t)" + law) if decay
                       else "without weight decay the imbalance is conserved"),
    ]
    sp, ss = pq_real.get("spearman"), pq_sim.get("spearman")
    expected = ss is not None and ss >= SPEARMAN_MIN
    out.append({"name": "p_vs_sqrt_s",
                "prediction": "at equilibrium p_j is proportional to sqrt(s_j) (p_j = u_j^T Wp u_j)"
                              + (" (reached by the linear model within this budget)" if expected
                                 else " (not reached by the linear model within this budget)"),
                "real": {"spearman": sp, "ratio_spread": pq_real.get("ratio_spread"), "live_modes": pq_real["live"]},
                "sim": {"spearman": ss, "ratio_spread": pq_sim.get("ratio_spread")}, "expected": expected,
                "tolerance": f"reached means Spearman rank correlation >= {SPEARMAN_MIN} over modes with s_j >= "
                             f"{COLLAPSE_REL} max s; held when real and linear agree",
                "held": None if sp is None else bool((sp >= SPEARMAN_MIN) == expected)})
    nr, ns = n_collapsed(real[-1]["f_eig"]), sim[-1]["n_collapsed"]
    tol = max(1, round(0.1 * d))
    out.append({"name": "collapsed_modes", "prediction": "the linear model predicts how many modes collapse",
                "real": nr, "sim": ns, "tolerance": f"|real - sim| <= {tol} (s_j < {COLLAPSE_REL} max s counts as collapsed)",
                "held": bool(abs(nr - ns) <= tol)})
    for name, key in (("wp_spectrum", "wp_sym_eig"), ("f_spectrum", "f_eig")):
        gap = _shape_gap(real[-1][key], sim[-1][key])
        out.append({"name": name, "prediction": f"the final {key} spectrum has the simulated shape",
                    "real": real[-1][key], "sim": sim[-1][key], "gap": gap,
                    "tolerance": f"max |a/max|a| - b/max|b|| <= {SHAPE_TOL}", "held": bool(gap <= SHAPE_TOL)})
    return out


# ---------------------------------------------------------------- the figure


def plot_comparison(real: list[dict], sim: list[dict], pq_real: dict, pq_sim: dict, epochs_real, epochs_sim):
    """Real (solid) against simulated (dashed): Wp and F spectra, asymmetry, commutator, balance, p vs sqrt(s)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(2, 3, figsize=(13, 7.5))
    panels = [("wp_sym_eig", "eigenvalues of sym(Wp)", False), ("f_eig", "eigenvalues of F", True)]
    for a, (key, title, log) in zip(ax[0, :2], panels):
        R = np.array([r[key] for r in real], float)
        S = np.array([r[key] for r in sim], float)
        for j in range(R.shape[1]):
            a.plot(epochs_real, R[:, j], "-", color=f"C{j % 10}", lw=1)
            a.plot(epochs_sim, S[:, j], "--", color=f"C{j % 10}", lw=1)
        if log:
            a.set_yscale("symlog", linthresh=max(1e-6, 1e-3 * float(np.nanmax(np.abs(R)))))
        a.set_title(f"{title} (solid real, dashed linear)")
        a.set_xlabel("epoch")
    for a, key in zip([ax[0, 2], ax[1, 0], ax[1, 1]], ["asymmetry", "commutator", "balance"]):
        a.plot(epochs_real, [r.get(key) if r.get(key) is not None else np.nan for r in real], "-o", ms=3, label="real")
        a.plot(epochs_sim, [r[key] for r in sim], "--s", ms=3, label="linear model")
        a.set_title(key)
        a.set_xlabel("epoch")
        a.legend()
    a = ax[1, 2]
    for pq, style, label in ((pq_real, "o", "real"), (pq_sim, "s", "linear model")):
        s, p = np.asarray(pq["s"]), np.asarray(pq["p"])
        a.plot(np.sqrt(np.clip(s, 0, None)), p, style, label=label, alpha=0.8)
    a.set_xlabel("sqrt(s_j)")
    a.set_ylabel("p_j = u_j^T Wp u_j")
    a.set_title("end: p_j against sqrt(s_j)")
    a.legend()
    fig.tight_layout()
    return fig


# ---------------------------------------------------------------- the whole comparison


OUTPUTS = ("comparison.json", "comparison.png")


def compare(run_dir: str | Path, options: CompareOptions = CompareOptions(), out: str | Path | None = None,
            data=None, force: bool = False) -> dict[str, Any]:
    """Compare a run folder with the linear theory (module docstring); returns the comparison dict and writes
    ``comparison.json`` and ``comparison.png`` into ``out`` (default: the run folder). ``data``: an
    ``ImageData`` to estimate X, X' from instead of reloading the run's dataset. A separate ``out`` is a linsim
    output folder like any other (``linsim.io.atomic_dir``): checked before any compute, refused if it holds
    files linsim did not write, and replaced only with ``force``."""
    import jax

    from linsim.bridge import data as D
    from linsim.bridge import train as T
    from linsim.config import Stats
    from linsim.io import atomic_dir, atomic_savefig, atomic_write_json, prepare_out

    run_dir = Path(run_dir)
    separate = out is not None and Path(out).resolve() != run_dir.resolve()
    out = Path(out) if separate else run_dir
    if separate:
        prepare_out(out, force, "bridge compare")  # only files in a linsim manifest count as linsim's
    tcfg, blob = T.read_config(run_dir)
    records = [r for r in T._read_records(run_dir) if r.get("kind") == "epoch"]
    if len(records) < 2:
        raise LinsimError(f"{run_dir} has {len(records)} epoch record(s); compare needs the epoch-0 record and at least one trained epoch")
    if any("wp_sym_eig" not in r for r in records):
        raise LinsimError(f"{run_dir} logged no predictor spectra: compare needs a linear predictor run")
    spe = int(blob.get("resolved", {}).get("steps_per_epoch") or 0)
    if spe < 1:
        raise LinsimError(f"{run_dir}/config.json lacks resolved.steps_per_epoch")
    tp = theory_of_run(tcfg)
    if data is None:
        data = D.load_dataset(tcfg.dataset, tcfg.data_dir, seed=tcfg.seed)
    n_img = min(options.images, data.pretrain.shape[0])
    rng = np.random.default_rng([options.seed, 0xC0])
    images = data.pretrain[np.sort(rng.permutation(data.pretrain.shape[0])[:n_img])]
    _, init = T.load_run(run_dir, "init")
    z = T.predictor_inputs(init, tcfg, images, jax.random.PRNGKey(options.seed), views=2).astype(np.float64)
    if not np.all(np.isfinite(z)):
        raise LinsimError("the run's initial predictor inputs are not finite")
    stats = Stats.from_views(z[0], z[1])
    Wp0 = np.asarray(init.online.predictor.Wp, np.float64)
    d = Wp0.shape[0]
    epochs_real = [int(r["epoch"]) for r in records]
    n_epochs = max(epochs_real)
    states = simulate_run(tcfg, stats, Wp0, tp, steps_per_epoch=spe, epochs=n_epochs, seeds=options.seeds,
                          seed=options.seed)
    sim = sim_records(states, stats, tp.alpha_p)
    real = [{k: r.get(k) for k in ("epoch", "step", "wp_sym_eig", "f_eig", "wp_eig_real", "asymmetry", "commutator",
                                   "balance")} for r in records]
    for r in real:
        r["n_collapsed"] = n_collapsed(r["f_eig"])
    _, last = T.load_run(run_dir, "last")
    pq_real = p_vs_sqrt_s(np.asarray(last.online.predictor.Wp, float), np.asarray(last.F_hat, float))
    W, Wp = states["W"][:, -1], states["Wp"][:, -1]
    XX = stats.X + stats.Xp
    pq_sim = p_vs_sqrt_s(Wp[0], W[0] @ XX @ W[0].T)
    vs = verdicts(real, sim, tp, pq_real, pq_sim, d, t_total=n_epochs * spe * tp.time_per_step)
    result = {
        "run": str(run_dir),
        "theory": tp.to_json(),
        "mapping": "trainer loss = sum over the 2 view orders of linsim's normalised loss: g = 2",
        "stats": {"images": n_img, "x_eig": np.linalg.eigvalsh(stats.X)[::-1].tolist(),
                  "xp_eig": np.linalg.eigvalsh(stats.Xp)[::-1].tolist()},
        "simulation": {"seeds": options.seeds, "batch": tcfg.batch_size, "steps_per_epoch": spe, "epochs": n_epochs,
                       "model": "matrix", "d": d, "loss": "l2-normalised, symmetric", "W0": "identity"},
        "real": real, "sim": [{"epoch": e, **r} for e, r in zip(range(len(sim)), sim)],
        "p_vs_sqrt_s": {"real": pq_real, "sim": pq_sim},
        "verdicts": vs,
        "held": sum(v["held"] is True for v in vs), "not_held": sum(v["held"] is False for v in vs),
        "undecided": sum(v["held"] is None for v in vs),
    }
    import matplotlib.pyplot as plt

    fig = plot_comparison(real, sim, pq_real, pq_sim, epochs_real, list(range(len(sim))))

    def write(folder: Path) -> None:
        atomic_savefig(fig, folder / "comparison.png", dpi=110)
        atomic_write_json(folder / "comparison.json", result)

    try:
        if separate:
            with atomic_dir(out, force=force, command="bridge compare") as tmp:
                write(tmp)
        else:  # the run folder is linsim's; these two names are among its own files
            write(out)
    finally:
        plt.close(fig)
    result["files"] = [str(out / name) for name in OUTPUTS]
    return result


def verdict_lines(result: dict[str, Any]) -> list[str]:
    """One line per verdict for the terminal."""
    lines = []
    for v in result["verdicts"]:
        mark = {True: "held", False: "did not hold", None: "undecided"}[v["held"]]
        if v["name"] in ("symmetry", "alignment", "balance"):
            r, s = v["real"], v["sim"]
            nums = (f"real {_g(r['initial'])} -> {_g(r['final'])}, linear {_g(s['initial'])} -> {_g(s['final'])}")
        elif v["name"] == "p_vs_sqrt_s":
            nums = (f"real Spearman {_g(v['real']['spearman'])} (ratio spread {_g(v['real']['ratio_spread'])}), "
                    f"linear {_g(v['sim']['spearman'])}")
        elif v["name"] == "collapsed_modes":
            nums = f"real {v['real']}, linear {v['sim']}"
        else:
            nums = f"shape gap {_g(v['gap'])}"
        lines.append(f"{v['name']:<16} {mark:<13} {nums}   [{v['prediction']}; tolerance {v['tolerance']}]")
    return lines


def _g(x) -> str:
    return "-" if x is None else f"{x:.3g}"
