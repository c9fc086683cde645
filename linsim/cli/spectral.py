"""`linsim spectral METHOD`: closed form (domain checked), certified optimum and gradient descent for one SSL loss\non a pairwise graph (docs/spectral.md)."""
from __future__ import annotations

from pathlib import Path
from typing import Optional

import numpy as np
import typer

from linsim.cli._app import app, check_out, cli_command, default_out
from linsim.errors import LinsimError
from linsim.metrics import rankme

METHODS = ("vicreg", "simclr", "barlow", "spectral-contrastive")
GRAPHS = ("label", "two-view", "knn", "nuisance")
#: The files a spectral run writes (what --force may replace in a folder written before manifests existed).
OUTPUTS = ("spectral.png", "summary.json", "config.json")


def spectral_memory_check(N: int, D: int, rows: str, cols: str) -> None:
    """Refuse (exit 2) a problem whose N x N graph and D x D moments would not fit (linsim.limits)."""
    from linsim.limits import check_memory

    check_memory({"the N x N graph": (8.0 * 8 * N * N, rows), "the D x D moments": (8.0 * 8 * D * D, cols),
                  "the data": (8.0 * 4 * N * D, rows)}, f"spectral on N={N} points in D={D} dimensions")


def _load(path: Optional[Path], what: str, ndim: int) -> Optional[np.ndarray]:
    """Read one .npy array (refusing other formats, pickles and wrong shapes in one line, before computing)."""
    if path is None:
        return None
    path = Path(path)
    if not path.is_file():
        raise LinsimError(f"{what} file {path} does not exist")
    if path.suffix.lower() != ".npy":
        raise LinsimError(f"{what} file {path}: expected a .npy file written by numpy.save, found suffix "
                          f"{path.suffix or '(none)'!r}")
    try:
        arr = np.load(path, allow_pickle=False)
    except ValueError as err:
        why = "it holds pickled Python objects" if "pickle" in str(err) else str(err).splitlines()[0]
        raise LinsimError(f"cannot read {what} file {path} as a .npy array: {why}") from None
    except Exception as err:  # noqa: BLE001 - any unreadable file is bad input
        raise LinsimError(f"cannot read {what} file {path} as a .npy array: {str(err).splitlines()[0]}") from None
    if not isinstance(arr, np.ndarray):  # a .npz archive renamed .npy
        if hasattr(arr, "close"):
            arr.close()
        raise LinsimError(f"{what} file {path} is a .npz archive, not a single .npy array")
    if arr.ndim != ndim:
        raise LinsimError(f"{what} must be a {ndim}-D array, found shape {arr.shape}")
    if ndim == 2:
        if np.iscomplexobj(arr) or not (np.issubdtype(arr.dtype, np.integer) or np.issubdtype(arr.dtype, np.floating)):
            raise LinsimError(f"{what} must hold real numbers, found dtype {arr.dtype}")
        if not np.all(np.isfinite(arr)):
            raise LinsimError(f"{what} must be finite numbers, found {int(np.sum(~np.isfinite(arr)))} non-finite entries")
    else:  # labels / nuisance: numbers (class ids), encoded as 0..C-1
        if arr.dtype.kind in "US":
            raise LinsimError(f"{what} must be numeric class ids, found strings (dtype {arr.dtype}); encode them "
                              "first, e.g. numpy.unique(y, return_inverse=True)[1]")
        if arr.dtype.kind not in "biuf":
            raise LinsimError(f"{what} must be numeric class ids, found dtype {arr.dtype}")
        if arr.dtype.kind == "f" and not np.all(np.isfinite(arr)):
            raise LinsimError(f"{what} must be finite, found {int(np.sum(~np.isfinite(arr)))} non-finite entries")
        arr = np.unique(arr, return_inverse=True)[1].reshape(-1)
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
    beta: float = typer.Option(100.0, "--beta", help="VICReg covariance weight (G-form); the closed form is its beta -> infinity limit"),
    gamma: float = typer.Option(1.0, "--gamma", help="VICReg invariance weight (G-form)"),
    lambd: float = typer.Option(0.0051, "--lambd", help="BarlowTwins off-diagonal weight"),
    tau: float = typer.Option(0.5, "--tau", help="SimCLR temperature"),
    classes: int = typer.Option(4, "--classes", help="built-in data: number of classes"),
    n_per_class: int = typer.Option(40, "--n-per-class", help="built-in data: points per class"),
    input_dim: int = typer.Option(10, "--input-dim", help="built-in data: input dimension D"),
    gd_starts: int = typer.Option(3, "--gd-starts", help="random starts for the gradient-descent comparison"),
    certify_starts: int = typer.Option(
        6, "--certify-starts",
        help="random starts (besides structured ones) of the certified optimiser used outside a closed form's domain"),
    seed: int = typer.Option(0, "--seed"),
    json_out: bool = typer.Option(False, "--json", help="print a JSON object instead of text"),
    out: Optional[Path] = typer.Option(None, "--out", help="output folder (default runs/spectral-<time>)"),
    force: bool = typer.Option(False, "--force", help="replace linsim's outputs in an existing output folder (a folder holding other files is refused)"),
) -> None:
    """Closed-form optimum of an SSL loss on a pairwise graph, checked against its domain, vs gradient descent.

    Outside a closed form's domain the command says so and reports the best optimum it can certify instead
    (docs/spectral.md, "Closed forms and their domains").
    """
    import linsim.spectral as sp
    from linsim.io import atomic_dir, atomic_savefig, atomic_write_json, dumps

    if method not in METHODS:
        raise LinsimError(f"unknown method {method!r}; choose one of {', '.join(METHODS)}")
    if graph not in GRAPHS:
        raise LinsimError(f"unknown graph {graph!r}; choose one of {', '.join(GRAPHS)}")
    for name, v, lo in (("--seed", seed, 0), ("--dim", dim, 1), ("--k", k, 1), ("--gd-starts", gd_starts, 1),
                        ("--certify-starts", certify_starts, 1),
                        ("--classes", classes, 2),
                        ("--n-per-class", n_per_class, 2), ("--input-dim", input_dim, 2)):
        if v < lo:
            raise LinsimError(f"{name} must be >= {lo}, found {v}")
    for name, v in (("--alpha", alpha), ("--beta", beta), ("--gamma", gamma), ("--tau", tau), ("--lambd", lambd)):
        if not (np.isfinite(v) and v > 0):
            raise LinsimError(f"{name} must be a finite number > 0, found {v}")
    out = default_out("spectral") if out is None else out
    check_out(out, force, "spectral", OUTPUTS)
    if data is None:  # the built-in data: refuse sizes that cannot fit before generating anything
        spectral_memory_check(2 * classes * n_per_class if graph == "two-view" else classes * n_per_class,
                              input_dim, "--n-per-class or --classes", "--input-dim")

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
    if data is not None:
        spectral_memory_check(N, D, "the rows of --data", "the columns of --data")
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
        "classes": classes, "n_per_class": n_per_class, "input_dim": input_dim, "gd_starts": gd_starts,
        "certify_starts": certify_starts, "seed": seed,
    }
    from linsim.spectral.compare import probe_accuracy, solve  # JAX and scipy: imported on use only

    sol = solve(method, X, y, G, dim, alpha, beta, gamma, lambd, tau, gd_starts, seed, n_starts=certify_starts)
    Z, gd, closed = sol.Z, sol.gd, sol.closed_form_loss
    summary = {
        "method": method, "graph": graph, "N": N, "D": D, "K": dim, **sol.summary(),
        "rank": int(np.linalg.matrix_rank(Z - Z.mean(0), tol=1e-8 * max(1.0, np.abs(Z).max()))),
        "rankme": float(rankme(np.asarray(Z))),
        "probe_accuracy": None if y is None else probe_accuracy(Z, y),
        "lda_subspace_distance": None,
    }
    if method == "vicreg" and graph == "label" and N > D and dim <= len(np.unique(y)) - 1:
        # beyond C - 1 dims both eigenproblems are degenerate (lambda = 1, r = 0): no unique span to compare
        W, _ = sp.vicreg_linear_weights(X, G, dim)
        summary["lda_subspace_distance"] = sp.subspace_distance(W, sp.fisher_lda(X, y, min(dim, D))[0])

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(9, 3.6))
    Zc = Z - Z.mean(0)
    P = Zc @ np.linalg.svd(Zc, full_matrices=False)[2][:2].T if Zc.shape[1] >= 2 else np.hstack([Zc, 0 * Zc])
    axes[0].scatter(P[:, 0], P[:, 1], c=None if y is None else y, s=8, cmap="tab10")
    axes[0].set_title(f"{method}: optimal embedding (top-2 PCs)", fontsize=9)
    axes[1].plot(np.sort(gd.values), "o", label="GD restarts")
    axes[1].axhline(sol.optimum_loss, color="k", ls="-", label=f"optimum ({sol.optimum_kind})")
    if closed is not None and not sol.closed_form_valid:
        axes[1].axhline(closed, color="r", ls="--", label="closed form (outside its domain)")
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
    typer.echo(f"  closed form        {sol.closed_form}")
    if sol.closed_form_valid:
        typer.echo(f"  closed-form loss   {fmt(closed)}   (inside its domain: the optimum)")
    else:
        typer.echo(f"  outside the closed form's domain: {sol.reason}")
        typer.echo(f"  closed-form loss   {fmt(closed)}   (not the optimum here)")
    spread = sol.optimum_spread
    how = "" if spread is None else (f"; {spread['n_at_best']} of {spread['restarts']} restarts reach it, "
                                     f"worst {spread['worst']:.10g}")
    label = "optimum" if sol.certified else "best found (NOT certified)"
    typer.echo(f"  {label:<18} {fmt(sol.optimum_loss)}   [{sol.optimum_kind}: {sol.optimum_detail}{how}]")
    gap = summary["gap_gd_minus_optimum"]
    verdict = "GD does not beat it" if sol.certified else "GD beat the certified value"
    typer.echo(f"  GD loss (best of {gd_starts}) {fmt(gd.value)}   gap to optimum {fmt(gap)}   ({verdict})")
    typer.echo(f"  rank {summary['rank']}   RankMe {summary['rankme']:.4f}   probe accuracy {fmt(summary['probe_accuracy'])}")
    if summary["lda_subspace_distance"] is not None:
        typer.echo(f"  subspace distance to Fisher LDA {summary['lda_subspace_distance']:.3g}")
    typer.echo(f"  wrote {out}/spectral.png, {out}/summary.json, {out}/config.json")
