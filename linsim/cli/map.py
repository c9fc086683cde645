"""`linsim map`: a training configuration (PyTorch/optax conventions) -> the theory's parameters, and with
measured spectra the predicted fate of every mode (``linsim.mapping``; docs/mapping.md)."""
from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from linsim.cli._app import app, cli_command, fmt_value
from linsim.io import dumps


@app.command("map")
@cli_command
def map_cmd(
    lr: float = typer.Option(..., help="SGD learning rate of the online network (backbone + projector)"),
    momentum: float = typer.Option(0.0, help="SGD momentum mu (torch: buf = mu buf + grad + wd p)"),
    ema: float = typer.Option(0.0, help="target EMA momentum m (Wa <- m Wa + (1-m) W after each step); 0 = SimSiam"),
    wd: float = typer.Option(0.0, help="torch weight_decay of the online network"),
    pred_wd: Optional[float] = typer.Option(None, "--pred-wd", help="weight_decay of the predictor [default: --wd]"),
    pred_lr: Optional[float] = typer.Option(None, "--pred-lr", help="learning rate of the predictor [default: --lr]"),
    loss: str = typer.Option("sum", help="reduction over the d output elements: 'sum' (||e||^2) or 'mean' (torch MSELoss)"),
    out_dim: Optional[int] = typer.Option(None, "--out-dim", help="d, the predictor's output dimension (needed for --loss mean)"),
    half: bool = typer.Option(False, "--half/--no-half", help="the loss has a 1/2 in front (the theory's 1/2 ||e||^2)"),
    batch_reduction: str = typer.Option("mean", "--batch-reduction", help="'mean' or 'sum' over the batch"),
    batch_size: Optional[int] = typer.Option(None, "--batch-size", help="B (needed for --batch-reduction sum; with --steps-per-epoch unused)"),
    symmetrised: bool = typer.Option(False, "--symmetrised/--no-symmetrised", help="the loss adds both view orders (BYOL's code)"),
    sym_mean: bool = typer.Option(False, "--sym-mean", help="the loss averages both view orders (SimSiam's 1/2 D(p1,z2) + 1/2 D(p2,z1))"),
    stats: Optional[Path] = typer.Option(None, help=".npz with measured spectra: x, xp (per mode), X, Xp (matrices) or x1, x2 (paired views)"),
    steps_per_epoch: Optional[int] = typer.Option(None, "--steps-per-epoch", help="report relaxation times in epochs too"),
    json_out: bool = typer.Option(False, "--json", help="print JSON"),
) -> None:
    """Convert a training config to the theory's alpha, beta, eta, eta_p, alpha_p (and momentum-effective
    time per step); with --stats, predict each mode's fate (eta vs eta_c, fixed points, relaxation time)."""
    from linsim.errors import LinsimError
    from linsim.mapping import LossConvention, TrainingConventions, mode_fates, spectra_from_stats, to_theory

    if symmetrised and sym_mean:
        raise LinsimError("choose one of --symmetrised (sum of both view orders) and --sym-mean (their mean)")
    lc = LossConvention(output=loss, out_dim=out_dim, batch=batch_reduction, batch_size=batch_size, half=half,
                        symmetrised="sum" if symmetrised else ("mean" if sym_mean else "no"))
    tc = TrainingConventions(lr=lr, momentum=momentum, ema=ema, weight_decay=wd, pred_lr=pred_lr,
                             pred_weight_decay=pred_wd, loss=lc)
    if steps_per_epoch is not None and steps_per_epoch < 1:
        raise LinsimError(f"--steps-per-epoch must be >= 1, got {steps_per_epoch}")
    tp = to_theory(tc)
    result = {"training": tc, "gradient_scale": lc.gradient_scale(), "theory": tp.to_json()}
    fates, note = None, None
    if stats is not None:
        from linsim.cli.simulate import load_stats

        x, xp, note = spectra_from_stats(load_stats(stats))
        fates = mode_fates(tp, x, xp, steps_per_epoch=steps_per_epoch)
        result["modes"] = fates
        result["n_predicted_collapsed"] = sum(f["fate"].startswith("collapses") for f in fates)
        if note:
            result["note"] = note
    if json_out:
        typer.echo(dumps(result))
        return
    typer.echo(f"gradient scale g = {lc.gradient_scale():.6g} (training-loss gradient / gradient of 1/2 E||e||^2)")
    typer.echo(f"alpha   = {tp.alpha:.6g}   ODE time per SGD step (g lr)")
    typer.echo(f"eta     = {tp.eta:.6g}   weight decay of W per unit time (wd / g)")
    typer.echo(f"eta_p   = {tp.eta_p_value:.6g}   weight decay of Wp per unit time (alpha_p wd_p / g)")
    typer.echo(f"alpha_p = {tp.alpha_p:.6g}   predictor learning-rate ratio (lr_p / lr)")
    typer.echo(f"beta    = {fmt_value(tp.beta, '.6g')}   EMA rate (1 - m) / alpha, without momentum (inf = SimSiam)")
    typer.echo(f"momentum {tp.momentum:g}: ODE time per step alpha/(1-mu) = {tp.time_per_step:.6g}; "
               f"EMA rate per unit ODE time beta (1-mu) = {fmt_value(tp.beta_ode, '.6g')} (linsim's --beta)")
    typer.echo(f"simulate: linsim simulate --eta {tp.eta:.6g} --eta-p {tp.eta_p_value:.6g} --alpha-p {tp.alpha_p:.6g} "
               f"--beta {fmt_value(tp.beta_ode, '.6g')} --solver euler --dt {tp.alpha:.6g}"
               + (f" --momentum {tp.momentum:g}" if tp.momentum else ""))
    if fates is None:
        return
    if note:
        typer.echo(f"note: {note}")
    ep = steps_per_epoch is not None
    typer.echo(f"{'mode':>4} {'x':>9} {'xp':>9} {'eta_c':>9} {'p+':>9} {'p-':>9} {'relax t':>9} {'steps':>9}"
               + (f" {'epochs':>9}" if ep else "") + "  fate")
    for f in fates:
        typer.echo(f"{f['mode']:>4} {f['x']:>9.4g} {f['xp']:>9.4g} {f['eta_c']:>9.4g} {fmt_value(f['p_plus']):>9} "
                   f"{fmt_value(f['p_minus']):>9} {fmt_value(f['relax_time']):>9} {fmt_value(f['relax_steps']):>9}"
                   + (f" {fmt_value(f['relax_epochs']):>9}" if ep else "") + f"  {f['fate']}"
                   + ("" if f["step_stable"] in (None, True) else " [discrete step unstable at p+]"))
    typer.echo(f"{result['n_predicted_collapsed']}/{len(fates)} modes predicted to collapse from any start (eta = {tp.eta:.4g}); "
               "relax t: 1/(slowest decay rate at p+) in ODE time, steps = relax t / (alpha/(1-mu))")
