"""`linsim spectral METHOD`: closed-form optimum vs gradient descent for one SSL loss on a pairwise graph (§2.5-2.6)."""
from __future__ import annotations

from pathlib import Path
from typing import Optional

import numpy as np
import typer

from linsim.cli._app import app, check_out, cli_command, default_out
from linsim.errors import LinsimError
from linsim.metrics import rankme
from linsim.spectral.compare import closed_form_vs_gd, probe_accuracy

METHODS = ("vicreg", "simclr", "barlow", "spectral-contrastive")
GRAPHS = ("label", "two-view", "knn", "nuisance")
#: The files a spectral run writes (what --force may replace in a folder written before manifests existed).
OUTPUTS = ("spectral.png", "summary.json", "config.json")


def _load(path: Optional[Path], what: str, ndim: int) -> Optional[np.ndarray]:
    if path is None:
        return None
    if not Path(path).is_file():
        raise LinsimError(f"{what} file {path} does not exist")
    try:
        arr = np.load(path, allow_pickle=False)
    except Exception as err:  # noqa: BLE001 - any unreadable file is bad input
        raise LinsimError(f"cannot read {what} file {path} as .npy: {err}") from None
    if arr.ndim != ndim:
        raise LinsimError(f"{what} must be a {ndim}-D array, found shape {arr.shape}")
    if ndim == 2:
        if np.iscomplexobj(arr) or not (np.issubdtype(arr.dtype, np.integer) or np.issubdtype(arr.dtype, np.floating)):
            raise LinsimError(f"{what} must hold real numbers, found dtype {arr.dtype}")
        if not np.all(np.isfinite(arr)):
            raise LinsimError(f"{what} must be finite numbers, found {int(np.sum(~np.isfinite(arr)))} non-finite entries")
    return arr


@app.command("spectral")
@cli_command
def spectral(
    method: str = typer.Argument(..., help="vicreg | simclr | barlow | spectral-contrastive"),
    data: Optional[Path] = typer.Option(None, "--data", help="(N, D) .npy of inputs; default: built-in Gaussian classes"),
    labels: Optional[Path] = typer.Option(None, "--labels", help="(N,) .npy of labels (probe and label graph)"),
    nuisance: Optional[Path] = typer.Option(None, "--nuisance", help="(N,) .npy nuisance variable for --graph nuisance"),
    graph: str = typer.Option("label", "--graph", help="label | two-view | knn | nuisance"),
    k: int = typer.Option(5, "--k", help="neighbours for --graph knn"),
    dim: int = typer.Option(3, "--dim", help="embedding dimension K"),
    alpha: float = typer.Option(1.0, "--alpha", help="VICReg variance weight (G-form)"),
    beta: float = typer.Option(100.0, "--beta", help="VICReg covariance weight (G-form)"),
    gamma: float = typer.Option(1.0, "--gamma", help="VICReg invariance weight (G-form)"),
    lambd: float = typer.Option(0.0051, "--lambd", help="BarlowTwins off-diagonal weight"),
    tau: float = typer.Option(0.5, "--tau", help="SimCLR temperature"),
    classes: int = typer.Option(4, "--classes", help="built-in data: number of classes"),
    n_per_class: int = typer.Option(40, "--n-per-class", help="built-in data: points per class"),
    input_dim: int = typer.Option(10, "--input-dim", help="built-in data: input dimension D"),
    gd_starts: int = typer.Option(3, "--gd-starts", help="random starts for the gradient-descent comparison"),
    seed: int = typer.Option(0, "--seed"),
    json_out: bool = typer.Option(False, "--json", help="print a JSON object instead of text"),
    out: Optional[Path] = typer.Option(None, "--out", help="output folder (default runs/spectral-<time>)"),
    force: bool = typer.Option(False, "--force", help="replace linsim's outputs in an existing output folder (a folder holding other files is refused)"),
) -> None:
    """Closed-form optimum of an SSL loss on a pairwise graph vs gradient descent (theory note §2.5-2.6)."""
    import linsim.spectral as sp
    from linsim.io import atomic_dir, atomic_savefig, atomic_write_json, dumps

    if method not in METHODS:
        raise LinsimError(f"unknown method {method!r}; choose one of {', '.join(METHODS)}")
    if graph not in GRAPHS:
        raise LinsimError(f"unknown graph {graph!r}; choose one of {', '.join(GRAPHS)}")
    for name, v, lo in (("--dim", dim, 1), ("--k", k, 1), ("--gd-starts", gd_starts, 1), ("--classes", classes, 2),
                        ("--n-per-class", n_per_class, 2), ("--input-dim", input_dim, 2)):
        if v < lo:
            raise LinsimError(f"{name} must be >= {lo}, found {v}")
    for name, v in (("--alpha", alpha), ("--beta", beta), ("--gamma", gamma), ("--tau", tau), ("--lambd", lambd)):
        if not (np.isfinite(v) and v > 0):
            raise LinsimError(f"{name} must be a finite number > 0, found {v}")
    out = default_out("spectral") if out is None else out
    check_out(out, force, "spectral", OUTPUTS)

    X = _load(data, "data", 2)
    y = _load(labels, "labels", 1)
    s = _load(nuisance, "nuisance", 1)
    if X is None:
        if labels is not None or nuisance is not None:
            raise LinsimError("--labels/--nuisance need --data")
        ds = sp.gaussian_classes(n_per_class=[n_per_class] * classes, dim=input_dim, seed=seed)
        X, y, s = ds.X, ds.y, ds.s
    X = X.astype(float)
    N, D = X.shape
    for name, v in (("labels", y), ("nuisance", s)):
        if v is not None and v.shape[0] != N:
            raise LinsimError(f"{name} must have one entry per row of data (N = {N}), found shape {v.shape}")
    if graph == "two-view":
        if data is None:
            X, y = sp.two_view(X, seed=seed), np.concatenate([y, y])
        elif N % 2:
            raise LinsimError(f"--graph two-view needs an even number of rows ([X_a; X_b]), found N = {N}")
        G = sp.two_view_graph(X.shape[0] // 2)
    elif graph == "label":
        if y is None:
            raise LinsimError("--graph label needs --labels")
        G = sp.label_graph(y)
    elif graph == "nuisance":
        if s is None:
            raise LinsimError("--graph nuisance needs --nuisance (a variable independent of the labels)")
        G = sp.nuisance_graph(s)
    else:
        G = sp.knn_graph(X, k)
    N, D = X.shape
    if method != "simclr" and dim > D:
        raise LinsimError(f"--dim must be <= the input dimension D = {D} for a linear closed form, found {dim}")
    if np.any(G.sum(1) <= 0):
        raise LinsimError(f"the {graph} graph has {int(np.sum(G.sum(1) <= 0))} isolated rows (a class of size 1?)")

    from linsim import __version__

    config = {
        "linsim_version": __version__, "command": "spectral", "method": method, "graph": graph,
        "data": None if data is None else str(Path(data).resolve()),
        "labels": None if labels is None else str(Path(labels).resolve()),
        "nuisance": None if nuisance is None else str(Path(nuisance).resolve()),
        "k": k, "dim": dim, "alpha": alpha, "beta": beta, "gamma": gamma, "lambd": lambd, "tau": tau,
        "classes": classes, "n_per_class": n_per_class, "input_dim": input_dim, "gd_starts": gd_starts, "seed": seed,
    }
    Z, closed, gd, extra = closed_form_vs_gd(method, X, y, G, dim, alpha, beta, gamma, lambd, tau, gd_starts, seed)
    summary = {
        "method": method, "graph": graph, "N": N, "D": D, "K": dim,
        "closed_form": extra.pop("closed_form"),
        "closed_form_loss": closed, "gd_loss": gd.value, "gd_losses": gd.values,
        "gap_gd_minus_closed": None if closed is None else gd.value - closed,
        "rank": int(np.linalg.matrix_rank(Z - Z.mean(0), tol=1e-8 * max(1.0, np.abs(Z).max()))),
        "rankme": float(rankme(np.asarray(Z))),
        "probe_accuracy": None if y is None else probe_accuracy(Z, y),
        "lda_subspace_distance": None,
    }
    if method == "vicreg" and graph == "label" and N > D and dim <= len(np.unique(y)) - 1:
        # beyond C - 1 dims both eigenproblems are degenerate (lambda = 1, r = 0): no unique span to compare
        W, _ = sp.vicreg_linear_weights(X, G, dim)
        summary["lda_subspace_distance"] = sp.subspace_distance(W, sp.fisher_lda(X, y, min(dim, D))[0])
    summary.update(extra)

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(9, 3.6))
    Zc = Z - Z.mean(0)
    P = Zc @ np.linalg.svd(Zc, full_matrices=False)[2][:2].T if Zc.shape[1] >= 2 else np.hstack([Zc, 0 * Zc])
    axes[0].scatter(P[:, 0], P[:, 1], c=None if y is None else y, s=8, cmap="tab10")
    axes[0].set_title(f"{method}: closed-form embedding (top-2 PCs)")
    axes[1].plot(np.sort(gd.values), "o", label="GD restarts")
    if closed is not None:
        axes[1].axhline(closed, color="k", ls="--", label="closed form")
    axes[1].set_xlabel("restart (sorted)")
    axes[1].set_ylabel("loss")
    axes[1].legend()
    fig.tight_layout()
    with atomic_dir(out, force=force, command="spectral", owned=OUTPUTS) as tmp:
        atomic_savefig(fig, tmp / "spectral.png", dpi=110)
        atomic_write_json(tmp / "summary.json", {"config": config, **summary})
        atomic_write_json(tmp / "config.json", config)
    plt.close(fig)
    summary["out"] = str(out)
    if json_out:
        typer.echo(dumps(summary))
        return
    fmt = lambda v: "n/a" if v is None else f"{v:.10g}"  # noqa: E731
    typer.echo(f"{method} on {graph} graph: N={N} D={D} K={dim}")
    typer.echo(f"  closed form        {summary['closed_form']}")
    typer.echo(f"  closed-form loss   {fmt(closed)}")
    typer.echo(f"  GD loss (best of {gd_starts}) {fmt(gd.value)}   gap {fmt(summary['gap_gd_minus_closed'])}")
    typer.echo(f"  rank {summary['rank']}   RankMe {summary['rankme']:.4f}   probe accuracy {fmt(summary['probe_accuracy'])}")
    if summary["lda_subspace_distance"] is not None:
        typer.echo(f"  subspace distance to Fisher LDA {summary['lda_subspace_distance']:.3g}")
    typer.echo(f"  wrote {out}/spectral.png, {out}/summary.json, {out}/config.json")
