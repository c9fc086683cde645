"""`linsim simulate` (one run: table, files, plot) and `linsim fixed-points` (the analytic picture)."""
from __future__ import annotations

import sys
from pathlib import Path
from typing import Optional

import typer

from linsim.cli._app import app, check_out, choices, cli_command, default_out, finish, fmt_value
from linsim.config import (DIRECTCOPY_NORMS, DIRECTPRED_FORMS, MODELS, NOISE_KINDS, PREDICTORS, SAMPLERS, SOLVERS, Config, Hyper,
                           Init, Solver, Stats, default_n_save)
from linsim.errors import LinsimError
from linsim.io import atomic_dir, dumps, output_names

_H = Hyper()  # the defaults `simulate` and `fixed-points` share
SIGMA2 = 0.5
#: The files a simulate run writes (what --force may replace in a folder written before manifests existed).
OUTPUTS = ("config.json", "summary.json", "trajectory.npz", "ensemble.npz", "run.png")


def build_config(
    *, model: str, n: int, n1: Optional[int], eta: float, eta_p: Optional[float], beta: float, alpha_p: float,
    sigma2: float, stop_grad: bool, predictor: str, t_max: float, n_save: Optional[int], solver: str, rtol: float,
    atol: float, dt: float, init_scale: float, seed: int, balanced: bool, target: str,
    stats_file: Optional[Path] = None,
) -> Config:
    """Assemble and validate a Config from CLI values (raises LinsimError on the first mistake)."""
    hyper = Hyper(eta=eta, eta_p=eta_p, beta=beta, alpha_p=alpha_p, stop_grad=stop_grad, predictor=predictor)
    if n < 1:
        raise LinsimError(f"n must be >= 1, got {n}")
    stats = Stats.isotropic(n, sigma2) if stats_file is None else load_stats(stats_file)
    return Config(
        model=model,
        n1=n1,
        hyper=hyper,
        stats=stats,
        init=Init(scale=init_scale, seed=seed, balanced=balanced, target=target),
        solver=Solver(t_max=t_max, n_save=default_n_save(model, stats.n, n1) if n_save is None else n_save,
                      method=solver, rtol=rtol, atol=atol, dt=dt),
    )


def load_stats(path: Path) -> Stats:
    """Read X, X' from an .npz: keys (X, Xp) matrices, (x, xp) diagonal spectra, or (x1, x2) paired views."""
    import numpy as np

    if not path.is_file():
        raise LinsimError(f"statistics file {path} does not exist")
    try:
        with np.load(path) as z:
            arrays = {k: z[k] for k in z.files}
    except Exception as err:  # noqa: BLE001  (any unreadable file is bad input)
        raise LinsimError(f"cannot read statistics file {path}: {err}") from None
    keys = set(arrays)
    if {"X", "Xp"} <= keys:
        return Stats.matrices(arrays["X"], arrays["Xp"])
    if {"x", "xp"} <= keys:
        return Stats.diagonal(arrays["x"], arrays["xp"])
    if {"x1", "x2"} <= keys:
        return Stats.from_views(arrays["x1"], arrays["x2"])
    raise LinsimError(f"{path} must hold arrays (X, Xp), (x, xp) or (x1, x2); found {sorted(keys)}")


def load_init(path: Path) -> dict:
    """Initial weights from an .npz (its arrays by name; checked against the model by ``check_y0``)."""
    import numpy as np

    if not path.is_file():
        raise LinsimError(f"initial-state file {path} does not exist")
    try:
        with np.load(path, allow_pickle=False) as z:
            return {k: z[k] for k in z.files}
    except Exception as err:  # noqa: BLE001  (any unreadable file is bad input)
        raise LinsimError(f"cannot read initial-state file {path} as .npz: {str(err).splitlines()[0] if str(err) else type(err).__name__}") from None


def print_table(summary: dict, fp, out: Path | None) -> None:
    """The compact terminal report: one line per mode, the invariants and where the files went."""
    typer.echo(f"{'mode':>4} {'p':>11} {'s':>11} {'tau':>9}  state")
    for j, m in enumerate(summary["modes"]):
        if m.get("diverged"):
            state = f"diverged (t = {fmt_value(m['divergence_time'])})"
        elif m["collapsed"]:
            state = f"collapsed (t = {fmt_value(m['collapse_time'])})"
        elif m.get("settled", True):
            state = f"settled (t = {fmt_value(m['settle_time'])})"
        else:
            state = "still moving at t_max"
        typer.echo(f"{j:>4} {m['p']:>11.6f} {m['s']:>11.4e} {fmt_value(m['tau'], '.6f'):>9}  {state}")
    diverged = f", {summary['n_diverged']} diverged" if summary.get("n_diverged") else ""
    typer.echo(f"{summary['n_collapsed']}/{summary['n_modes']} modes collapsed{diverged}; status: {summary['status']}, "
               f"t_end = {summary['t_end']:g}, {summary['steps']} solver steps")
    if fp is not None:
        if fp.exists:
            typer.echo(f"fixed points: p+ = {fp.p_plus:.6f}, p- = {fp.p_minus:.6f}, eta_c = {fp.eta_c:.6f}")
        elif summary["config"]["hyper"]["eta"] >= fp.eta_c:
            typer.echo(f"eta >= eta_c = {fp.eta_c:.6f}: no non-trivial fixed point, every mode must collapse")
        else:
            typer.echo("no non-trivial fixed point: exactly one of eta and eta_p is zero")
    inv = summary["invariants"]
    parts = [f"{k} = {fmt_value(v, '.3e')}" for k, v in inv.items() if not k.endswith("note")]
    typer.echo("invariants: " + ", ".join(parts))
    if out is not None:
        typer.echo(f"wrote {out}/ ({', '.join(output_names(out))})")


# ---------------------------------------------------------------- predictor rules and stochastic dynamics


def with_rules_and_noise(cfg: Config, *, rho: float, eps: float, freq: int, form: str, norm: str, noise: str,
                         batch: int, lr: Optional[float], seeds: int, momentum: float = 0.0, sampler: str = "auto") -> Config:
    """Add the DirectPred/DirectCopy parameters and the noise model to a Config (``--lr`` overrides ``--dt``)."""
    import dataclasses

    from linsim.config import Noise, Predictor

    solver = cfg.solver if lr is None else dataclasses.replace(cfg.solver, dt=lr)
    return dataclasses.replace(cfg, solver=solver, predictor=Predictor(rho=rho, eps=eps, freq=freq, form=form, norm=norm),
                               noise=Noise(kind=noise, batch=batch, seeds=seeds, momentum=momentum, sampler=sampler))


CHECKPOINT_SECONDS = 10.0  # an unfinished SGD ensemble is checkpointed at most this often (after a call)


def _unfinished(out: Path, cfg: Config, force: bool):
    """(checkpoint path, partial run to continue or None) for ``simulate --noise sgd --out OUT``."""
    from linsim.dynamics import sgd_checkpoint

    ckpt = sgd_checkpoint.path_for(out)
    if not ckpt.exists():
        return ckpt, None
    partial = sgd_checkpoint.load(ckpt, cfg)
    if partial is None and not force:
        raise LinsimError(f"{ckpt} holds an unfinished SGD run of another configuration for this --out; rerun that "
                          "command to finish it, or pass --force to start this one (its checkpoint replaces that one)")
    if partial is not None:
        typer.echo(f"continuing the unfinished run checkpointed in {ckpt} (after call {partial['calls_done']} of "
                   f"{partial['calls']})", err=True)
    return ckpt, partial


def _run_sgd_resumable(cfg: Config, y0, ckpt: Path, partial, progress):
    """``simulate_sgd`` checkpointing to ``ckpt`` (at most every CHECKPOINT_SECONDS) so that a killed run can finish."""
    import time

    from linsim.dynamics import sgd_checkpoint
    from linsim.dynamics.stochastic import simulate_sgd

    last = [time.monotonic()]

    def on_call(done: int, calls: int, saved) -> None:
        if time.monotonic() - last[0] >= CHECKPOINT_SECONDS:
            sgd_checkpoint.save(ckpt, cfg, done, calls, saved())
            last[0] = time.monotonic()

    return simulate_sgd(cfg, y0, progress=progress, on_call=on_call, partial=partial)


def print_ensemble(ens: dict) -> None:
    """Ensemble mean +- std over seeds of the final p_j and s_j (modes by descending mean s)."""
    drawn = f" (drawn as {ens['sampler']})" if "sampler" in ens else ""
    typer.echo(f"{ens['kind']} ensemble: {ens['seeds']} seeds, batch {ens['batch']}{drawn}, lr {ens['lr']:g}, t = {ens['t']:g}"
               + (f", {ens['diverged_seeds']} diverged (excluded)" if ens["diverged_seeds"] else ""))
    typer.echo(f"{'mode':>4} {'p mean':>11} {'p std':>10} {'s mean':>11} {'s std':>10}")
    for j, (pm, ps, sm, ss) in enumerate(zip(ens["p_mean"], ens["p_std"], ens["s_mean"], ens["s_std"])):
        typer.echo(f"{j:>4} {pm:>11.6f} {ps:>10.3e} {sm:>11.4e} {ss:>10.3e}")


@app.command()
@cli_command
def simulate(
    eta: float = typer.Option(_H.eta, help="weight decay of W (and of Wp unless --eta-p)"),
    eta_p: Optional[float] = typer.Option(None, "--eta-p", help="weight decay of the predictor Wp [default: eta]"),
    beta: float = typer.Option(_H.beta, help="EMA rate relative to the learning rate; inf = SimSiam"),
    alpha_p: float = typer.Option(_H.alpha_p, "--alpha-p", help="relative learning rate of the predictor"),
    sigma2: float = typer.Option(SIGMA2, help="augmentation variance: X = I, X' = sigma2 I (finite, >= 0)"),
    stats: Optional[Path] = typer.Option(None, help=".npz with X, Xp (matrices), x, xp (spectra) or x1, x2 (paired views); overrides --sigma2 and --n"),
    model: str = typer.Option("modes", help=choices("'modes' (per-eigenmode p, w, w_a) or 'matrix' (full W, Wp, Wa)", MODELS)),
    n: int = typer.Option(8, help="input dimension; for --model modes the number of modes (one per input dimension)"),
    n1: Optional[int] = typer.Option(None, help="output dimension of W, --model matrix only (the per-mode model refuses it) [default: n]"),
    t_max: float = typer.Option(300.0, "--t-max", help="integration time (units of the online learning rate)"),
    n_save: Optional[int] = typer.Option(None, "--n-save", help="number of saved time points [default 301; the matrix model keeps at most ~64 MB of states, e.g. 51 at n = 256]"),
    init_scale: float = typer.Option(0.5, "--init-scale", help="scale of the random initialisation"),
    seed: int = typer.Option(0, help="random seed of the initialisation"),
    balanced: bool = typer.Option(False, help="balanced init Wp^T Wp = alpha_p W W^T (all modes on s = p^2/alpha_p)"),
    target: str = typer.Option("copy", help=choices("Wa(0): 'copy' of W(0) or 'independent'", ("copy", "independent"))),
    init: Optional[Path] = typer.Option(None, "--init", help=".npz of initial weights: p, w, wa (per-mode, shape (n,)) or W, Wp, Wa (matrix; (n1, n), (n1, n1), (n1, n)); replaces the random draw (wa/Wa may be left out with --beta inf)"),
    stop_grad: bool = typer.Option(True, "--stop-grad/--no-stop-grad", help="keep the stop-gradient on the target"),
    predictor: str = typer.Option("grad", help=choices("predictor rule: grad, symmetric, identity (no predictor), directpred, directcopy", PREDICTORS)),
    solver: Optional[str] = typer.Option(None, help=choices("tsit5, dopri5, dopri8, kvaerno5 (adaptive) or euler (= full-batch SGD) [default: euler for directpred/directcopy and --noise runs, else tsit5]", SOLVERS)),
    rtol: float = typer.Option(1e-9, help="relative tolerance of adaptive solvers"),
    atol: float = typer.Option(1e-12, help="absolute tolerance of adaptive solvers"),
    dt: float = typer.Option(0.01, help="Euler step (the SGD learning rate alpha); initial step otherwise"),
    out: Optional[Path] = typer.Option(None, help="output folder [default: a fresh folder under runs/]"),
    force: bool = typer.Option(False, help="replace linsim's outputs in an existing output folder (a folder holding other files is refused)"),
    json_out: bool = typer.Option(False, "--json", help="print the summary as JSON on stdout instead of the table"),
    plot: bool = typer.Option(True, "--plot/--no-plot", help="write run.png"),
    # predictor rules (--predictor directpred/directcopy) and stochastic dynamics
    rho: float = typer.Option(0.3, help="directpred/directcopy: EMA rate of the correlation estimate F_hat"),
    eps: float = typer.Option(0.01, help="directpred: added to every p_j; directcopy: eps I added to F_hat (or F_hat/||F_hat||)"),
    freq: int = typer.Option(1, help="directpred/directcopy: reset Wp every FREQ steps (SGD-trained in between)"),
    form: str = typer.Option("theory", help=choices("directpred: 'theory' p = sqrt(alpha_p s)+eps or 'code' sqrt(s/s_max)+eps (Tian et al. 2021); directcopy: 'theory' Wp = F+eps I or 'code' F/||F||+eps I (Wang et al. 2021; grows without bound in this toy)", DIRECTPRED_FORMS)),
    norm: str = typer.Option("fro", help=choices("directcopy 'code' form: the norm of F_hat", DIRECTCOPY_NORMS)),
    noise: str = typer.Option("none", help=choices("none (ODE), sgd (finite-batch SGD ensemble) or sde (gradient-noise SDE ensemble)", NOISE_KINDS)),
    batch: int = typer.Option(256, help="--noise sgd/sde: minibatch size B"),
    lr: Optional[float] = typer.Option(None, help="SGD learning rate alpha (overrides --dt)"),
    seeds: int = typer.Option(1, help="--noise sgd/sde: ensemble size (noise seeds derived from --seed)"),
    sampler: str = typer.Option("auto", help=choices("--noise sgd: draw each batch as B 'samples', or as their exact second moment ('moments': one Wishart draw; un-normalised loss, batch >= 2n), or 'auto' (moments where exact and cheaper)", SAMPLERS)),
    no_progress: bool = typer.Option(False, "--no-progress", help="--noise sgd: no progress bar (shown on a terminal)"),
    momentum: float = typer.Option(0.0, help="heavy-ball SGD momentum mu (torch convention; full-batch with the euler solver, or --noise sgd); at small lr a step lasts lr/(1-mu) of ODE time"),
) -> None:
    """Integrate the linear BYOL/SimSiam dynamics and report what happens to every eigenmode."""
    if solver is None:
        solver = "euler" if predictor in ("directpred", "directcopy") or noise != "none" or momentum else "tsit5"
    cfg = build_config(
        model=model, n=n, n1=n1, eta=eta, eta_p=eta_p, beta=beta, alpha_p=alpha_p, sigma2=sigma2,
        stop_grad=stop_grad, predictor=predictor, t_max=t_max, n_save=n_save, solver=solver, rtol=rtol,
        atol=atol, dt=dt, init_scale=init_scale, seed=seed, balanced=balanced, target=target, stats_file=stats,
    )
    cfg = with_rules_and_noise(cfg, rho=rho, eps=eps, freq=freq, form=form, norm=norm, noise=noise, batch=batch,
                               lr=lr, seeds=seeds, momentum=momentum, sampler=sampler)
    if n1 is not None and model == "modes":
        raise LinsimError("--n1 applies to --model matrix only: the per-mode model has one mode per input dimension (--n)")
    y0 = None if init is None else load_init(init)
    out = out if out is not None else default_out("simulate")
    check_out(out, force, "simulate", OUTPUTS)
    if y0 is not None:
        from linsim.initial import check_y0

        y0 = check_y0(cfg, y0)

    from linsim.dynamics.modes import fixed_points
    from linsim.solve import simulate as run

    ens = ckpt = None
    if cfg.noise.kind == "sgd":  # an ensemble; the per-mode table and the plot show seed 0
        ckpt, partial = _unfinished(out, cfg, force)
        from linsim.progress import ProgressBar

        with ProgressBar(not no_progress and sys.stderr.isatty(), "sgd", "steps") as bar:
            ens = _run_sgd_resumable(cfg, y0, ckpt, partial, bar.update)
        traj = ens.trajectory(0)
    elif cfg.noise.kind == "sde":
        from linsim.dynamics.stochastic import simulate_sde

        ens = simulate_sde(cfg, y0)
        traj = ens.trajectory(0)
    else:
        traj = run(cfg, y0=y0)
    summary = {"config": cfg.to_json(), **traj.summary()}
    if ens is not None:
        summary["ensemble"] = ens.summary()
    with atomic_dir(out, force=force, command="simulate", owned=OUTPUTS) as tmp:
        traj.save(tmp)
        if ens is not None:  # summary.json gains "ensemble"; ensemble.npz holds the series
            from linsim.io import atomic_savez, atomic_write_json

            atomic_write_json(tmp / "summary.json", summary)
            atomic_savez(tmp / "ensemble.npz", **ens.arrays())
        if plot:
            from linsim.io import atomic_savefig
            from linsim.plots import plot_run

            atomic_savefig(plot_run(traj), tmp / "run.png")
    if ckpt is not None:  # finished and written: the unfinished-run checkpoint (linsim's own) has served
        ckpt.unlink(missing_ok=True)
    h, pr = cfg.hyper, cfg.predictor
    applies = h.stop_grad and (h.predictor in ("grad", "symmetric") or (h.predictor == "directpred" and pr.form == "theory"))
    fp = fixed_points(eta, alpha_p, sigma2, eta_p=h.eta_p_value) if cfg.stats.kind == "isotropic" and applies else None
    if h.stop_grad and h.predictor == "directcopy" and pr.form == "theory" and cfg.stats.kind == "isotropic" \
            and h.eta_p_value == h.eta:
        from linsim.dynamics.predictors import directcopy_fixed_points

        fp = directcopy_fixed_points(eta, sigma2, pr.eps)  # p+- as the gradient predictor, s = p - eps
    if json_out:
        typer.echo(dumps({"out": str(out), **summary}))
    else:
        print_table(summary, fp, out)
        if ens is not None:
            print_ensemble(summary["ensemble"])
    if summary["diverged"]:
        finish("diverged", out, f"the state became non-finite or exceeded {cfg.solver.divergence_bound:g} at t = {traj.t_end:.4g}")
    if ens is not None and summary["ensemble"]["diverged_seeds"]:
        finish("diverged", out, f"{summary['ensemble']['diverged_seeds']} of {summary['ensemble']['seeds']} seeds "
                                f"became non-finite or exceeded {cfg.solver.divergence_bound:g}")
    if summary["status"] == "max_steps":
        finish("max_steps", out, f"the solver stopped at max_steps before t_max (t_end = {traj.t_end:.4g}); "
                                 "loosen rtol or shorten t_max")


@app.command("fixed-points")
@cli_command
def fixed_points_cmd(
    eta: float = typer.Option(_H.eta, help="weight decay of W (and of Wp unless --eta-p)"),
    eta_p: Optional[float] = typer.Option(None, "--eta-p", help="weight decay of the predictor Wp [default: eta]"),
    sigma2: float = typer.Option(SIGMA2, help="augmentation variance (X = I, X' = sigma2 I)"),
    alpha_p: float = typer.Option(_H.alpha_p, "--alpha-p", help="relative predictor learning rate"),
    beta: float = typer.Option(_H.beta, help="EMA rate used for the stability analysis (inf = SimSiam)"),
    json_out: bool = typer.Option(False, "--json", help="print JSON"),
) -> None:
    """p+, p-, s+, s-, eta_c and the stability of each fixed point of the per-mode dynamics (defaults: those of
    ``linsim simulate``; docs/theory_dynamics.md)."""
    h = Hyper(eta=eta, eta_p=eta_p, beta=beta, alpha_p=alpha_p)  # validates
    Stats.isotropic(1, sigma2)
    import jax.numpy as jnp
    import numpy as np

    from linsim.dynamics.modes import fixed_points, stability

    eta_p = h.eta_p_value
    fp = fixed_points(eta, alpha_p, sigma2, eta_p=eta_p)
    args = {k: jnp.asarray(v, jnp.float64) for k, v in
            dict(eta=eta, eta_p=eta_p, beta=beta, alpha_p=alpha_p, x=1.0, xp=sigma2).items()}
    points = {"origin": (0.0, 0.0)}
    if fp.exists:
        points.update(p_plus=(fp.p_plus, fp.s_plus), p_minus=(fp.p_minus, fp.s_minus))
    stab = {}
    for name, (p, s) in points.items():
        eig, kind = stability(p, s, args)
        stab[name] = {"p": p, "s": s, "eigenvalues": [float(np.real(e)) for e in eig],
                      "eigenvalues_imag": [float(np.imag(e)) for e in eig], "stability": kind}
    result = {
        "eta": eta, "eta_p": eta_p, "sigma2": sigma2, "alpha_p": alpha_p, "beta": beta,
        "p_plus": fp.p_plus, "p_minus": fp.p_minus, "s_plus": fp.s_plus, "s_minus": fp.s_minus,
        "eta_c": fp.eta_c, "exists": fp.exists, "stability": stab,
    }
    if eta == 0:
        result["note"] = "eta = 0: p = 1/(1+sigma2) is a line of fixed points (any s); s+ is given on the balanced parabola"
    if json_out:
        typer.echo(dumps(result))
        return
    typer.echo(f"eta_c = 1/(4(1+sigma2)) = {fp.eta_c:.6f}")
    if not fp.exists:
        typer.echo(f"eta = {eta:g} >= eta_c: only the trivial fixed point; every mode collapses")
    for name, d in stab.items():
        eig = ", ".join(f"{e:+.4f}" for e in d["eigenvalues"])
        typer.echo(f"{name:>8}: p = {d['p']:.6f}, s = {d['s']:.6f}  -> {d['stability']} (eigenvalues {eig})")
