"""``linsim metrics FILE``: collapse metrics (Li et al. CEV-AUC, RankMe, participation ratio, alpha-ReQ) of saved arrays.

Input: .npy (one array), .npz (every array, named by its key) or .csv (one array). Without
``--singular-values`` each array must be 2-D embeddings ``(N, d)``; with it, a 1-D array is one spectrum
and a 2-D array holds one spectrum per row (named ``name[i]``). All input is read and validated before
anything is written: bad input exits with code 2 and leaves no output folder.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Optional

import numpy as np
import typer

import linsim
from linsim import metrics as M
from linsim.cli._app import app, check_out, cli_command, default_out
from linsim.errors import LinsimError
from linsim.io import atomic_dir, atomic_savefig, atomic_write_json, dumps
from linsim.metrics_io import load_arrays

_MAX_LEGEND = 12
#: The files a metrics run writes (what --force may replace in a folder written before manifests existed).
OUTPUTS = ("metrics.json", "spectra.png")


def _entries(
    file: Path, arrays: dict[str, np.ndarray], sv: bool, normalize: bool, alpha_range: tuple[int, int] = M.ALPHA_REQ_K_RANGE
) -> list[dict[str, Any]]:
    """Validate every array and compute its metrics, spectrum and CEV curve (raises LinsimError)."""
    out: list[dict[str, Any]] = []
    for name, arr in arrays.items():
        if sv:
            if arr.ndim == 1:
                items = [(name, arr)]
            elif arr.ndim == 2:
                items = [(f"{name}[{i}]", row) for i, row in enumerate(arr)]
            else:
                raise LinsimError(
                    f"{file}: array {name!r} has shape {arr.shape}; with --singular-values expected 1-D "
                    "(one spectrum) or 2-D (one spectrum per row)"
                )
        else:
            if arr.ndim != 2:
                hint = " (pass --singular-values if it holds singular values)" if arr.ndim == 1 else ""
                raise LinsimError(
                    f"{file}: array {name!r} has shape {arr.shape}; expected 2-D embeddings (N, d){hint}"
                )
            items = [(name, arr)]
        for item_name, a in items:
            try:
                summary = M.summarize(a, singular_values=sv, normalize=normalize, alpha_range=alpha_range)
                spectrum = (
                    M.check_spectrum(a) if sv else M.check_spectrum(M.singular_values(a, normalize=normalize))
                )
            except LinsimError as err:
                raise LinsimError(f"{file}: array {item_name!r}: {err}") from None
            out.append({"name": item_name, "shape": list(a.shape), **summary, "_spectrum": spectrum})
    return out


def _fmt(x: Any, spec: str) -> str:
    """Format ``x`` with ``spec`` (e.g. ``'>9.3f'``); None becomes a right-aligned ``-`` of the same width."""
    if x is None:
        return "-".rjust(int("".join(c for c in spec.split(".")[0] if c.isdigit()) or 1))
    return format(x, spec)


def _table(entries: list[dict[str, Any]]) -> str:
    width = max(4, *(len(e["name"]) for e in entries))
    head = f"{'name':<{width}}  {'dim':>5}  {'n':>7}  {'CEV-AUC':>7}  {'RankMe':>8}  {'PR':>8}  {'alpha-ReQ':>9}  {'R2':>5}  {'k fit':>7}"
    rows = [head]
    for e in entries:
        rows.append(
            f"{e['name']:<{width}}  {e['dim']:>5d}  {_fmt(e['n'], '>7d')}  {e['cev_auc']:>7.4f}  "
            f"{e['rankme']:>8.2f}  {e['participation_ratio']:>8.2f}  {_fmt(e['alpha_req'], '>9.3f')}  "
            f"{_fmt(e['alpha_req_r2'], '>5.2f')}  "
            f"{'-' if e.get('alpha_req_range') is None else '{}-{}'.format(*e['alpha_req_range']):>7}"
        )
    return "\n".join(rows)


def _figure(entries: list[dict[str, Any]], title: str) -> Any:
    from matplotlib.figure import Figure

    fig = Figure(figsize=(13, 3.8), layout="constrained")
    ax_s, ax_r, ax_c = fig.subplots(1, 3)
    for i, e in enumerate(entries):
        s = e["_spectrum"]
        k = np.arange(1, s.size + 1)
        label = e["name"] if i < _MAX_LEGEND else None
        ax_s.plot(k, s, lw=1, label=label)
        ax_r.plot(k, s / s[0], lw=1, label=label)
        ax_c.plot(k, np.cumsum(s) / s.sum(), lw=1, label=f"{e['name']} (AUC {e['cev_auc']:.3f})" if label else None)
    ax_s.set(yscale="log", xlabel="k", ylabel=r"$\sigma_k$", title="singular values")
    ax_r.set(yscale="log", xlabel="k", ylabel=r"$\sigma_k/\sigma_1$", title="normalised spectrum")
    ax_c.set(xlabel="k", ylabel=r"CEV$_k$", ylim=(0, 1.02), title="cumulative explained variance (Li et al.)")
    ax_c.legend(fontsize=7, loc="lower right")
    fig.suptitle(title, fontsize=9)
    return fig


@app.command("metrics")
@cli_command
def metrics(
    file: Path = typer.Argument(..., help="A .npy, .npz (every array) or .csv file of embeddings (N, d) or spectra."),
    singular_values: bool = typer.Option(
        False, "--singular-values", help="The arrays hold singular values: 1-D, or 2-D with one spectrum per row."
    ),
    alpha_range: str = typer.Option(
        "4:100", "--alpha-range", metavar="K_MIN:K_MAX",
        help="alpha-ReQ fitting range: 1-based eigenvalue ranks, inclusive, clipped to the numerical rank; R2 is "
        "taken over the same ranks. Default 4:100, the reference code's (fastssl). docs/metrics.md",
    ),
    normalize: bool = typer.Option(
        False, "--normalize", help="L2-normalise embedding rows before centring (Li et al.'s --normalize flag)."
    ),
    as_json: bool = typer.Option(False, "--json", help='Print JSON {"out": folder, "results": [one object per array]} instead of a table.'),
    out: Optional[Path] = typer.Option(None, "--out", help="Output folder (default: a fresh runs/metrics-<time>-<pid>)."),
    no_plot: bool = typer.Option(False, "--no-plot", help="Do not write the spectra/CEV figure."),
    force: bool = typer.Option(False, "--force", help="Replace linsim's outputs in an existing --out folder (a folder holding other files is refused)."),
) -> None:
    """Collapse metrics of saved embeddings or spectra: CEV-AUC (Li et al. 2022), RankMe, participation ratio, alpha-ReQ."""
    if singular_values and normalize:
        raise LinsimError("--normalize applies to embeddings only; it cannot be combined with --singular-values")
    k_range = M.parse_k_range(alpha_range)
    arrays = load_arrays(file)
    entries = _entries(file, arrays, singular_values, normalize, k_range)
    results = [{k: v for k, v in e.items() if not k.startswith("_")} for e in entries]

    out_dir = Path(out) if out is not None else default_out("metrics")
    check_out(out_dir, force, "metrics", OUTPUTS)
    record = {
        "command": "metrics",
        "linsim_version": linsim.__version__,
        "input": str(file),
        "singular_values": singular_values,
        "normalize": normalize,
        "alpha_req_k_range": list(k_range),
        "rankme_eps": M.RANKME_EPS,
        "results": results,
    }
    fig = None if no_plot else _figure(entries, f"{file.name}  ({'spectra' if singular_values else 'embeddings'})")
    with atomic_dir(out_dir, force=force, command="metrics", owned=OUTPUTS) as tmp:
        atomic_write_json(tmp / "metrics.json", record)
        if fig is not None:
            atomic_savefig(fig, tmp / "spectra.png", dpi=120)

    typer.echo(dumps({"out": str(out_dir), "results": results}) if as_json else _table(entries))
    typer.echo(f"wrote {out_dir}", err=True)
