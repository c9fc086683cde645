"""`linsim spectral METHOD`: closed-form optimum vs gradient descent for one SSL loss on a pairwise graph (§2.5-2.6)."""
from __future__ import annotations

from pathlib import Path
from typing import Optional

import numpy as np
import typer

from linsim.cli._app import app, check_out, cli_command, default_out
from linsim.errors import LinsimError

METHODS = ("vicreg", "simclr", "barlow", "spectral-contrastive")
GRAPHS = ("label", "two-view", "knn", "nuisance")


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
    if ndim == 2 and (not np.issubdtype(arr.dtype, np.number) or not np.all(np.isfinite(arr))):
        raise LinsimError(f"{what} must be finite numbers, found {int(np.sum(~np.isfinite(arr.astype(float))))} non-finite entries")
    return arr


def _probe_accuracy(Z, y) -> float:
    """Train accuracy of a closed-form least-squares linear probe (one-hot targets, with bias)."""
    classes, yi = np.unique(y, return_inverse=True)
    A = np.hstack([Z, np.ones((Z.shape[0], 1))])
    coef, *_ = np.linalg.lstsq(A, np.eye(len(classes))[yi], rcond=None)
    return float(np.mean(np.argmax(A @ coef, axis=1) == yi))


def _rankme(Z) -> float:
    from linsim.metrics import rankme

    return float(rankme(np.asarray(Z)))


def _run(method, X, y, G, K, alpha, beta, gamma, lambd, tau, gd_starts, seed):
    """Closed form and GD for one method; returns (Z_closed, closed_loss, gd_result, extra)."""
    import jax.numpy as jnp

    import linsim.spectral as sp

    N, D = X.shape
    Xc = X - X.mean(0)
    Xj, Gj = jnp.asarray(Xc), jnp.asarray(G)
    extra = {}
    if method == "vicreg":
        if N <= D:
            W, Z = sp.vicreg_low_data_weights(Xc, G, K, alpha, gamma)
            extra["closed_form"] = "A-W3 (N <= D): W = X^+ Z*, Z* from A-Z2"
        else:
            W, lam = sp.vicreg_linear_weights(Xc, G, K, alpha, gamma)
            extra["closed_form"] = "A-W2: eigh(A_L, B) smallest K, scaled by sigma_k = min(1, alpha/(2 gamma lambda_k))"
            extra["generalized_eigenvalues"] = lam
        f = lambda W: sp.vicreg_graph_loss(Xj @ W, Gj, alpha, beta, gamma)  # noqa: E731
        shape = (D, K)
    elif method == "barlow":
        W, info = sp.barlow_linear_weights(Xc, G, K, lambd=lambd, seed=seed)
        extra["closed_form"] = f"A-W4: tied-CCA span, within-span mixing '{info['point']}'"
        extra["canonical_correlations"] = info["rho"]
        f = lambda W: sp.barlow_graph_loss(Xj @ W, Gj, lambd)  # noqa: E731
        shape = (D, K)
    elif method == "spectral-contrastive":
        Xr = jnp.asarray(X)
        W, mu = sp.spectral_contrastive_linear_weights(X, G, K)
        extra["closed_form"] = "A-W6: eigh(X^T Ghat X, X^T X) top K"
        Gh = jnp.asarray(sp.normalized_adjacency(G))
        f = lambda W: jnp.sum((Xr @ W @ W.T @ Xr.T - Gh) ** 2)  # noqa: E731
        shape = (D, K)
        Xc = X
    else:  # simclr: non-parametric Z (no linear closed form is known, A-W5)
        W = None
        f = lambda Z: sp.nt_xent_graph_loss(Z, Gj, tau)  # noqa: E731
        shape = (N, K)
        from scipy.sparse.csgraph import connected_components

        comps, comp = connected_components(G > 0, directed=False)
        is_cliques = np.array_equal((G > 0) | np.eye(N, dtype=bool), comp[:, None] == comp[None, :])
        if is_cliques and K >= comps - 1 and comps >= 2:
            Z = sp.simclr_clique_embedding(comp, K)
            extra["closed_form"] = "A-Z3: cliques collapsed onto a regular simplex (non-parametric Z)"
        else:
            Z = None
            extra["closed_form"] = f"none: A-Z3 needs a clique graph with K >= C-1 (C = {comps})"
    scale = 1.0 / np.sqrt(shape[0])
    gd = sp.minimize_restarts(f, shape, n_starts=gd_starts, seed=seed, scale=scale)
    if W is not None:
        Z = Xc @ W
    closed = float(f(W if W is not None else Z)) if (W is not None or Z is not None) else None
    Z_report = Z if Z is not None else gd.x
    return Z_report, closed, gd, extra


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
    force: bool = typer.Option(False, "--force", help="replace an existing output folder"),
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
    check_out(out, force)

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

    Z, closed, gd, extra = _run(method, X, y, G, dim, alpha, beta, gamma, lambd, tau, gd_starts, seed)
    summary = {
        "method": method, "graph": graph, "N": N, "D": D, "K": dim,
        "closed_form": extra.pop("closed_form"),
        "closed_form_loss": closed, "gd_loss": gd.value, "gd_losses": gd.values,
        "gap_gd_minus_closed": None if closed is None else gd.value - closed,
        "rank": int(np.linalg.matrix_rank(Z - Z.mean(0), tol=1e-8 * max(1.0, np.abs(Z).max()))),
        "rankme": _rankme(Z),
        "probe_accuracy": None if y is None else _probe_accuracy(Z, y),
        "lda_subspace_distance": None,
    }
    if method == "vicreg" and graph == "label" and N > D:
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
    with atomic_dir(out, force=force) as tmp:
        atomic_savefig(fig, tmp / "spectral.png", dpi=110)
        atomic_write_json(tmp / "summary.json", summary)
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
    typer.echo(f"  wrote {out}/spectral.png, {out}/summary.json")
