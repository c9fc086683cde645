"""`linsim sweep`: a phase diagram over (eta, eta_p, beta, alpha_p, sigma2, p0, s0) grids.

Each parameter option takes a grid spec (``0:0.2:50`` linspace, ``log:1e-3:1:20`` geometric,
``0.5,1,2,10`` list, ``inf`` allowed) or a single value. Unswept parameters default to eta 0.04,
eta_p = eta, beta inf (SimSiam, tau = 1: the setting of the basin analysis in docs/theory_dynamics.md),
alpha_p 1, sigma2 0.5, p0 0.1, s0 0.1. Writes ``<out>/sweep.npz``, ``sweep.json``, ``sweep.png``,
``spec.json`` and ``chunks/`` (resume: rerun the same command).
"""
from __future__ import annotations

import json
import math
import sys
from pathlib import Path
from typing import Optional

import typer

from linsim.cli._app import app, choices, cli_command, default_out, finish
from linsim.errors import LinsimError

_GRID_HELP = "grid spec (start:stop:num, log:start:stop:num, a,b,c) or one value"


def build_spec(values: dict, *, model: str, n: int, n1: Optional[int], t_max: float, rtol: float):
    """A validated SweepSpec from the CLI's per-parameter strings (None = default, 1 value = fixed)."""
    from linsim.sweep import SweepSpec, parse_grid

    axes, fixed = {}, {}
    for name, text in values.items():
        if text is None:
            continue
        grid = parse_grid(text)
        if grid.size == 1:
            fixed[name] = float(grid[0])
        else:
            axes[name] = grid
    if not axes:
        raise LinsimError("nothing to sweep: give at least one option a grid, e.g. --eta 0:0.2:50")
    if model == "matrix":
        bad = [k for k in ("p0", "s0") if values.get(k) is not None]
        if bad:
            raise LinsimError(f"--{bad[0]} applies to the per-mode model only (the matrix model uses a seeded init)")
    return SweepSpec(axes=axes, fixed=fixed, model=model, n=n, n1=n1, t_max=t_max, rtol=rtol)


@app.command()
@cli_command
def sweep(
    eta: Optional[str] = typer.Option(None, help=f"weight decay of W [{_GRID_HELP}; default 0.04]"),
    eta_p: Optional[str] = typer.Option(None, "--eta-p", help="weight decay of Wp [default: eta at each point]"),
    beta: Optional[str] = typer.Option(None, help="EMA rate; inf = SimSiam [default inf]"),
    alpha_p: Optional[str] = typer.Option(None, "--alpha-p", help="relative predictor learning rate [default 1]"),
    sigma2: Optional[str] = typer.Option(None, help="augmentation variance X' = sigma2 I [default 0.5]"),
    p0: Optional[str] = typer.Option(None, help="initial p (per-mode model) [default 0.1]"),
    s0: Optional[str] = typer.Option(None, help="initial s = w^2 (per-mode model) [default 0.1]"),
    model: str = typer.Option("modes", help=choices("'modes' (one mode per grid point) or 'matrix' (small n, seeded init)", ("modes", "matrix"))),
    n: int = typer.Option(4, help="matrix model: input dimension"),
    n1: Optional[int] = typer.Option(None, help="matrix model: output dimension [default n]"),
    t_max: float = typer.Option(1000.0, "--t-max", help="integration time"),
    rtol: float = typer.Option(1e-8, help="relative tolerance of the adaptive solver (atol 1e-12)"),
    chunk_size: Optional[int] = typer.Option(None, "--chunk-size", help="grid points per chunk [default: memory-bounded]"),
    out: Optional[Path] = typer.Option(None, help="output folder [default runs/sweep-<time>]"),
    force: bool = typer.Option(False, "--force", help="replace the files of a different (or damaged) sweep in --out; other files are kept"),
    scheduler: Optional[str] = typer.Option(None, help="Dask scheduler address (tcp://host:8786); needs linsim[dask]"),
    as_json: bool = typer.Option(False, "--json", help="print the summary as JSON on stdout"),
    no_progress: bool = typer.Option(False, "--no-progress", help="no progress bar"),
    plot: bool = typer.Option(True, "--plot/--no-plot", help="write sweep.png"),
) -> None:
    """Phase-diagram sweep of the linear BYOL/SimSiam dynamics (collapse, final p, time to 1% of p+)."""
    from linsim.io import lock_dir
    from linsim.sweep import _get_client, default_chunk_size, prepare_sweep_out, run_sweep

    if chunk_size is not None and chunk_size < 1:
        raise LinsimError(f"--chunk-size must be >= 1, got {chunk_size}")
    values = {"eta": eta, "eta_p": eta_p, "beta": beta, "alpha_p": alpha_p, "sigma2": sigma2, "p0": p0, "s0": s0}
    spec = build_spec(values, model=model, n=n, n1=n1, t_max=t_max, rtol=rtol)
    out = default_out("sweep") if out is None else out
    cs = min(chunk_size or default_chunk_size(spec), spec.size)
    prepare_sweep_out(spec, out, cs, force)  # every check before anything is written
    if scheduler is not None:
        client, owns = _get_client(scheduler)
        scheduler = client
    else:
        owns = False
    try:
        with lock_dir(out, what="linsim sweep"):  # held through the plot: a second sweep waits for all of it
            result = run_sweep(spec, out, chunk_size=cs, progress=not no_progress and sys.stderr.isatty(),
                               scheduler=scheduler, force=force)
            if plot:
                from linsim.io import atomic_write_json
                from linsim.sweep_plots import plot_sweep

                png = plot_sweep(result, out / "sweep.png")
                result.files = sorted({*result.files, str(png)})
                meta = json.loads((out / "sweep.json").read_text())
                meta["files"] = result.files
                atomic_write_json(out / "sweep.json", meta)
    finally:
        if owns:
            scheduler.close()
    summ = result.summary()
    _report(result, summ, spec, out, model, as_json)
    if summ["n_diverged"]:  # exit 3 / 4 as simulate does (docs/outputs_and_errors.md)
        finish("diverged", out, f"{summ['n_diverged']} of {summ['n_points']} grid points became non-finite or "
                                "exceeded the divergence bound (status 1 in sweep.npz)")
    if summ["n_max_steps"]:
        finish("max_steps", out, f"{summ['n_max_steps']} of {summ['n_points']} grid points stopped at max_steps "
                                 "before t_max (status 2 in sweep.npz); loosen --rtol or shorten --t-max")


def _report(result, summ: dict, spec, out: Path, model: str, as_json: bool) -> None:
    """The summary on stdout: JSON, or three lines of text."""
    if as_json:
        from linsim.io import dumps

        typer.echo(dumps({"out": str(out), **summ, "chunks": result.info["n_chunks"],
                          "chunks_resumed": result.info["chunks_resumed"], "files": result.files}))
        return
    shape = " x ".join(f"{len(v)} {k}" for k, v in spec.axes)
    typer.echo(f"sweep: {shape} = {spec.size} points ({model} model), {result.info['n_chunks']} chunks"
               + (f" ({result.info['chunks_resumed']} resumed)" if result.info["chunks_resumed"] else ""))
    typer.echo(f"collapsed {summ['fraction_collapsed']:.1%}, converged to p+ {summ['fraction_converged']:.1%}, "
               f"unresolved at t = {spec.t_max:g}: {summ['fraction_unresolved']:.1%}"
               + (f", diverged {summ['fraction_diverged']:.1%}" if summ["n_diverged"] else "")
               + (f", stopped at max_steps {summ['fraction_max_steps']:.1%}" if summ["n_max_steps"] else ""))
    mb = summ["max_balance_residual"]
    if mb is not None and math.isfinite(mb):
        typer.echo(f"max balance residual {mb:.2e}")
    typer.echo(f"wrote {out}/ ({', '.join(Path(f).name for f in result.files)})")
