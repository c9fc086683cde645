"""``linsim bridge``: train a real BYOL/SimSiam network and look at what it logged.

``linsim bridge train`` with no options trains resnet-tiny on the built-in shapes set (a few minutes on a
2-core CPU) and writes ``runs/bridge-<time>-<pid>/`` (config.json, metrics.jsonl, summary.json,
checkpoints/). ``linsim bridge show RUN`` prints the run's table and writes its plots. Bad options or paths:
one line on stderr, exit 2, nothing computed. A non-finite loss: exit 3. See docs/bridge.md.
"""
from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any, Optional

import typer

from linsim.cli._app import app, cli_command, default_out

bridge = typer.Typer(
    help="Real BYOL/SimSiam training whose logs speak the theory's language (train, show).",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
)
app.add_typer(bridge, name="bridge")


def _d(name: str) -> str:
    """The TrainConfig default of ``name``, for help texts."""
    from linsim.bridge.config import TrainConfig

    value = {f.name: f.default for f in dataclasses.fields(TrainConfig)}[name]
    return f"[default: {value}]"


@bridge.command("train")
@cli_command
def train_cmd(
    dataset: Optional[str] = typer.Option(None, help="builtin | cifar10 | stl10 | npz | digits " + _d("dataset")),
    data_dir: Optional[Path] = typer.Option(None, "--data-dir", help="folder of the CIFAR-10 / STL-10 files, or the .npz file"),
    epochs: Optional[int] = typer.Option(None, help="training epochs (passes over the pre-training images) " + _d("epochs")),
    batch_size: Optional[int] = typer.Option(None, "--batch-size", help="images per step " + _d("batch_size")),
    lr: Optional[float] = typer.Option(None, help="learning rate (optax/PyTorch convention) " + _d("lr")),
    momentum: Optional[float] = typer.Option(None, help="SGD (or LARS) momentum " + _d("momentum")),
    wd: Optional[float] = typer.Option(None, help="weight decay of backbone and projector " + _d("wd")),
    pred_wd: Optional[float] = typer.Option(None, "--pred-wd", help="weight decay of the predictor [default: --wd]"),
    ema: Optional[float] = typer.Option(None, help="target EMA momentum m; 0 = SimSiam " + _d("ema")),
    pred_lr_ratio: Optional[float] = typer.Option(None, "--pred-lr-ratio", help="predictor lr / lr (the theory's alpha_p) " + _d("pred_lr_ratio")),
    predictor: Optional[str] = typer.Option(None, help="linear | symmetric | directpred | directcopy | mlp | none " + _d("predictor")),
    arch: Optional[str] = typer.Option(None, help="resnet-tiny | resnet18 " + _d("arch")),
    width: Optional[float] = typer.Option(None, help="channel multiplier of the ResNet widths 64-128-256-512 [default: 0.125 for resnet-tiny, 1 for resnet18]"),
    proj_hidden: Optional[int] = typer.Option(None, "--proj-hidden", help="projector hidden width [default: 128 for resnet-tiny, 512 for resnet18]"),
    proj_dim: Optional[int] = typer.Option(None, "--proj-dim", help="projector output size d = predictor size [default: 32 for resnet-tiny, 128 for resnet18]"),
    views: Optional[int] = typer.Option(None, help="augmented views per image, m >= 2 " + _d("views")),
    image_size: Optional[int] = typer.Option(None, "--image-size", help="side of the augmented views in pixels [default: 96 for stl10, else 32]"),
    seed: Optional[int] = typer.Option(None, help="seed of initialisation, batches and augmentations " + _d("seed")),
    optimizer: Optional[str] = typer.Option(None, help="sgd | lars " + _d("optimizer")),
    schedule: Optional[str] = typer.Option(None, help="constant | cosine learning rate " + _d("schedule")),
    no_stop_grad: bool = typer.Option(False, "--no-stop-grad", help="let gradients flow through the target branch (needs --ema 0)"),
    freq: Optional[int] = typer.Option(None, help="DirectPred/DirectCopy: reset Wp every FREQ steps " + _d("freq")),
    rho: Optional[float] = typer.Option(None, help="EMA factor of the correlation estimate F_hat " + _d("rho")),
    eps: Optional[float] = typer.Option(None, help="DirectPred/DirectCopy epsilon [default: 0.01 / 0.3]"),
    eval_size: Optional[int] = typer.Option(None, "--eval-size", help="images of the fixed evaluation subset " + _d("eval_size")),
    probe_train: Optional[int] = typer.Option(None, "--probe-train", help="labelled training images of the kNN/linear probe (0 = no probe) " + _d("probe_train")),
    probe_test: Optional[int] = typer.Option(None, "--probe-test", help="test images of the kNN/linear probe " + _d("probe_test")),
    collapse_rankme: Optional[float] = typer.Option(None, "--collapse-rankme", help="projector RankMe below this counts as collapse " + _d("collapse_rankme")),
    log_every: Optional[int] = typer.Option(None, "--log-every", help="also log every N steps (0 = per epoch only) " + _d("log_every")),
    precision: Optional[str] = typer.Option(None, help="auto (bf16 on GPU, f32 on CPU) | f32 | bf16 " + _d("precision")),
    stop_on_collapse: bool = typer.Option(False, "--stop-on-collapse", help="stop when the projector output collapses"),
    out: Optional[Path] = typer.Option(None, help="run folder [default: runs/bridge-<time>-<pid>]"),
    resume: bool = typer.Option(False, "--resume", help="continue the run in --out from its last checkpoint"),
    force: bool = typer.Option(False, "--force", help="replace linsim's files of a previous run in --out"),
    quiet: bool = typer.Option(False, "--quiet", help="no progress output on stderr"),
) -> None:
    """Train BYOL (--ema > 0) or SimSiam (--ema 0) and log the predictor's spectra, collapse metrics and probes."""
    from linsim.bridge.config import TrainConfig
    from linsim.bridge.train import prepare_run_dir, read_config, train
    from linsim.errors import LinsimError

    given: dict[str, Any] = {
        "dataset": dataset, "data_dir": None if data_dir is None else str(data_dir), "epochs": epochs,
        "batch_size": batch_size, "lr": lr, "momentum": momentum, "wd": wd, "pred_wd": pred_wd, "ema": ema,
        "pred_lr_ratio": pred_lr_ratio, "predictor": predictor, "arch": arch, "width": width, "proj_hidden": proj_hidden, "proj_dim": proj_dim, "views": views,
        "image_size": image_size, "seed": seed, "optimizer": optimizer, "schedule": schedule, "freq": freq,
        "rho": rho, "eps": eps, "eval_size": eval_size, "log_every": log_every, "precision": precision,
        "probe_train": probe_train, "probe_test": probe_test, "collapse_rankme": collapse_rankme,
    }
    given = {k: v for k, v in given.items() if v is not None}
    if no_stop_grad:
        given["stop_grad"] = False
    if stop_on_collapse:
        given["stop_on_collapse"] = True
    if resume:
        if out is None:
            raise LinsimError("--resume needs --out RUN (the folder of the run to continue)")
        prepare_run_dir(out, resume=True, force=force)
        saved, _ = read_config(out)
        cfg = saved.replace(**given)
    else:
        if given.get("dataset") == "stl10" and "image_size" not in given:
            given["image_size"] = 96  # STL-10's native size (the original recipe crops 96 x 96 views)
        cfg = TrainConfig(**given)
    if data_dir is not None and not data_dir.exists():
        raise LinsimError(f"--data-dir {data_dir} does not exist")
    out = default_out("bridge") if out is None else out
    try:
        summary = train(cfg, out, resume=resume, force=force, progress=not quiet)
    except KeyboardInterrupt:
        typer.echo(f"\ninterrupted: continue with `linsim bridge train --resume --out {out}` (from the last "
                   "completed epoch)", err=True)
        raise typer.Exit(130) from None
    final = summary["final"]
    parts = [f"{summary['status']}: {summary['epochs_done']} epochs ({summary['steps']} steps, "
             f"{summary['time_s']:.0f} s)"]
    if final.get("loss") is not None:
        parts.append(f"loss {final['loss']:.4f}")
    parts.append(f"projector RankMe {final['proj_rankme']:.2f}")
    if final.get("knn_acc") is not None:
        parts.append(f"kNN {final['knn_acc']:.3f}, probe {final['probe_acc']:.3f}")
    if summary["collapsed"]:
        parts.append(f"COLLAPSED (RankMe < {summary['collapse_threshold_rankme']:g})")
    typer.echo(", ".join(parts) + f" -> {out}")


@bridge.command("show")
@cli_command
def show_cmd(
    run: Path = typer.Argument(..., help="a run folder written by `linsim bridge train`"),
    no_plots: bool = typer.Option(False, "--no-plots", help="print the table only"),
) -> None:
    """Print a run's per-epoch table and write its plots (PNG files in the run folder)."""
    from linsim.bridge import report

    records = report.read_metrics(run)
    typer.echo(report.table(records))
    if not no_plots:
        for path in report.plot_run(run, records):
            typer.echo(f"wrote {path}")
