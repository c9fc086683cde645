"""`linsim bridge compare RUN`: the linear theory held against a real run (``linsim.bridge.compare``)."""
from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from linsim.cli._app import cli_command
from linsim.cli.bridge import bridge
from linsim.io import dumps


@bridge.command("compare")
@cli_command
def compare_cmd(
    run: Path = typer.Argument(..., help="a run folder written by `linsim bridge train` (linear predictor)"),
    images: int = typer.Option(512, help="pre-training images whose augmented views estimate X and X'"),
    seeds: int = typer.Option(4, help="size of the simulated SGD ensemble"),
    seed: int = typer.Option(0, help="seed of the augmentations for the estimate and of the simulated ensemble"),
    out: Optional[Path] = typer.Option(None, help="folder for comparison.json and comparison.png [default: RUN]; a folder holding other files is refused"),
    force: bool = typer.Option(False, help="replace the comparison in an existing --out folder written by linsim"),
    json_out: bool = typer.Option(False, "--json", help="print comparison.json's content instead of the verdicts"),
) -> None:
    """Simulate the linear model that the run's initial features and training config map to, put real and
    simulated spectra and invariants side by side and print a verdict per prediction of the theory."""
    from linsim.bridge.compare import CompareOptions, compare, verdict_lines

    result = compare(run, CompareOptions(images=images, seeds=seeds, seed=seed), out=out, force=force)
    if json_out:
        typer.echo(dumps(result))
        return
    tp = result["theory"]
    typer.echo(f"mapped: alpha = {tp['alpha']:.4g}, eta = {tp['eta']:.4g}, eta_p = {tp['eta_p']:.4g}, "
               f"alpha_p = {tp['alpha_p']:.4g}, beta = {tp['beta']:.4g}, momentum {tp['momentum']:g} "
               f"(time per step {tp['time_per_step']:.4g}); X, X' from {result['stats']['images']} images")
    for line in verdict_lines(result):
        typer.echo(line)
    typer.echo(f"{result['held']} held, {result['not_held']} did not hold, {result['undecided']} undecided; "
               f"wrote {', '.join(result['files'])}")
