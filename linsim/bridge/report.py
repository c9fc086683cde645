"""Tables and plots of a bridge run, read from its ``metrics.jsonl`` (one JSON object per line).

Records are those written by the trainer: ``epoch``, ``step``, ``kind`` ("epoch" or "step"), ``loss``,
``images_per_s``, the keys of :func:`linsim.bridge.evaluate.predictor_report` (absent or None without a
linear predictor), of :func:`linsim.bridge.evaluate.representation_report` with prefixes ``backbone`` and
``proj``, ``knn_acc``, ``probe_acc`` and ``collapsed``. Epoch 0 is the state before training. Any key may be
missing or None (NaN is stored as null): it is then left out of the table and the plots. See docs/bridge.md.
"""
from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any, Callable

import numpy as np

from linsim.errors import LinsimError
from linsim.io import atomic_savefig

__all__ = ["PLOT_FILES", "aligned_fraction", "collapse_threshold", "read_metrics", "table", "plot_run"]

#: The files written by :func:`plot_run` (each only when the run logged something to draw in it).
PLOT_FILES = ("spectra.png", "predictor_invariants.png", "collapse.png", "accuracy.png")


# --------------------------------------------------------------------------------------------------
# reading


def read_metrics(run_dir: str | Path) -> list[dict[str, Any]]:
    """The records of ``run_dir/metrics.jsonl`` in file order; LinsimError naming the file if it is missing or bad."""
    run = Path(run_dir)
    if not run.is_dir():
        raise LinsimError(f"{run} is not a folder (expected a bridge run folder with metrics.jsonl)")
    path = run / "metrics.jsonl"
    if not path.is_file():
        raise LinsimError(f"{run} is not a bridge run: {path} not found")
    try:
        text = path.read_text()
    except (OSError, UnicodeDecodeError) as err:
        raise LinsimError(f"{path} could not be read: {err}") from None
    records = []
    for i, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            rec = json.loads(line)
        except json.JSONDecodeError as err:
            raise LinsimError(f"{path} line {i} is not valid JSON ({err.msg} at column {err.colno})") from None
        if not isinstance(rec, dict):
            raise LinsimError(f"{path} line {i} is not a JSON object")
        ep = rec.get("epoch")
        if isinstance(ep, bool) or not isinstance(ep, int) or ep < 0:
            raise LinsimError(f"{path} line {i} has no valid 'epoch' (found {ep!r})")
        records.append(rec)
    if not records:
        raise LinsimError(f"{path} holds no records (the run has not finished its first evaluation)")
    return records


def _epoch_records(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Per-epoch records (kind "epoch" or no kind); all records if there are none."""
    ep = [r for r in records if r.get("kind", "epoch") == "epoch"]
    return ep or list(records)


def _num(x: Any) -> float:
    """A JSON value as a float: None (stored NaN) -> nan, "inf"/"-inf" -> +-inf."""
    if x is None or isinstance(x, bool):
        return math.nan
    if isinstance(x, str):
        try:
            return float(x)
        except ValueError:
            return math.nan
    try:
        return float(x)
    except (TypeError, ValueError):
        return math.nan


def _vec(x: Any) -> np.ndarray | None:
    if not isinstance(x, list) or not x:
        return None
    return np.array([_num(v) for v in x])


def aligned_fraction(rec: dict[str, Any]) -> float:
    """F-weighted mean alignment sum_j s_j |u_Wp,j . u_F,j| / sum_j s_j (s = eigenvalues of F, clipped at 0).

    Weighting by the variance of each mode discounts the collapsed, near-degenerate tail of F, where the
    per-eigenvector alignment is ill-defined. NaN when the record has no alignment or F.
    """
    a, s = _vec(rec.get("alignment")), _vec(rec.get("f_eig"))
    if a is None or s is None or a.shape != s.shape:
        return math.nan
    s = np.clip(s, 0, None)
    return float(np.sum(s * a) / np.sum(s)) if np.sum(s) > 0 else math.nan


def collapse_threshold(run_dir: str | Path) -> float:
    """The RankMe below which the run flagged its projector output as collapsed.

    Read from the run's ``config.json`` (``train.collapse_rankme``, capped at 1 + (d - 1)/2 for projector
    width d, as :func:`linsim.bridge.evaluate.is_collapsed` caps it); the evaluation default
    ``COLLAPSE_RANKME`` when the folder has no readable config.
    """
    from linsim.bridge.evaluate import COLLAPSE_RANKME

    try:
        blob = json.loads((Path(run_dir) / "config.json").read_text())
        bar = float(blob["train"]["collapse_rankme"])
    except (OSError, ValueError, TypeError, KeyError):
        return COLLAPSE_RANKME
    if not math.isfinite(bar):
        return COLLAPSE_RANKME
    d = (blob.get("resolved") or {}).get("proj_dim") or blob["train"].get("proj_dim")
    if isinstance(d, int) and not isinstance(d, bool) and d >= 1:
        bar = min(bar, 1.0 + (d - 1) / 2)
    return bar


# --------------------------------------------------------------------------------------------------
# table


def _first(key: str) -> Callable[[dict[str, Any]], float]:
    return lambda r: _num(v[0]) if (v := r.get(key)) and isinstance(v, list) else math.nan


def _max_abs(key: str) -> Callable[[dict[str, Any]], float]:
    return lambda r: float(np.nanmax(np.abs(v))) if (v := _vec(r.get(key))) is not None else math.nan


def _scalar(key: str) -> Callable[[dict[str, Any]], float]:
    return lambda r: _num(r.get(key))


# (header, getter, format, legend)
_COLUMNS: list[tuple[str, Callable[[dict[str, Any]], float], str, str]] = [
    ("loss", _scalar("loss"), "{:.4f}", "training loss (mean over the epoch; epoch 0: the first batch at initialisation)"),
    ("img/s", _scalar("images_per_s"), "{:.0f}", "training images per second"),
    ("Wp re1", _first("wp_eig_real"), "{:.3g}", "largest real part of an eigenvalue of Wp"),
    ("Wp |im|", _max_abs("wp_eig_imag"), "{:.2g}", "largest |imaginary part| of an eigenvalue of Wp"),
    ("symWp1", _first("wp_sym_eig"), "{:.3g}", "top eigenvalue of (Wp + Wp^T)/2"),
    ("F1", _first("f_eig"), "{:.3g}", "top eigenvalue of F (EMA correlation of the predictor input)"),
    ("asym", _scalar("asymmetry"), "{:.2e}", "||Wp - Wp^T|| / ||Wp||"),
    ("comm", _scalar("commutator"), "{:.2e}", "||[F, Wp]|| / (||F|| ||Wp||)"),
    ("align", aligned_fraction, "{:.3f}", "F-weighted mean |u_Wp,j . u_F,j|"),
    ("balance", _scalar("balance"), "{:.2e}", "||Wp^T Wp/alpha_p - W W^T|| normalised (0 = balanced)"),
    ("bb AUC", _scalar("backbone_cev_auc"), "{:.3f}", "CEV-AUC of backbone features (higher = more collapsed)"),
    ("bb rank", _scalar("backbone_rankme"), "{:.1f}", "RankMe of backbone features"),
    ("pj AUC", _scalar("proj_cev_auc"), "{:.3f}", "CEV-AUC of projector outputs"),
    ("pj rank", _scalar("proj_rankme"), "{:.1f}", "RankMe of projector outputs"),
    ("kNN", _scalar("knn_acc"), "{:.3f}", "weighted kNN accuracy (cosine, k nearest)"),
    ("probe", _scalar("probe_acc"), "{:.3f}", "linear-probe test accuracy"),
]


def _fmt(fmt: str, x: float) -> str:
    return "-" if not math.isfinite(x) and not math.isinf(x) else fmt.format(x)


def table(records: list[dict[str, Any]], *, legend: bool = True) -> str:
    """Plain-text per-epoch table; columns that no record fills are left out (e.g. Wp's without a linear predictor)."""
    rows = _epoch_records(records)
    cols = [c for c in _COLUMNS if any(not math.isnan(c[1](r)) for r in rows)]
    header = ["epoch", *(c[0] for c in cols)]
    body = []
    for r in rows:
        cells = [str(r.get("epoch"))]
        cells += [_fmt(fmt, get(r)) for _, get, fmt, _ in cols]
        flag = r.get("collapsed")
        body.append([*cells, "COLLAPSED" if flag else ""])
    header.append("")
    widths = [max(len(h), *(len(b[i]) for b in body)) for i, h in enumerate(header)]
    lines = ["  ".join(h.rjust(w) for h, w in zip(header, widths)).rstrip()]
    lines += ["  ".join(c.rjust(w) for c, w in zip(b, widths)).rstrip() for b in body]
    if legend:
        lines.append("")
        lines += [f"{h:>8}: {text}" for h, _, _, text in cols]
    return "\n".join(lines)


# --------------------------------------------------------------------------------------------------
# plots


#: Where exact zeros are drawn on log axes.
_LOG_FLOOR = 1e-17


def _plain_log_ticks(ax) -> None:
    """Log axis labelled 2, 5, 10 ... instead of 2x10^0."""
    from matplotlib.ticker import FuncFormatter

    def minor(v: float, _pos: int) -> str:
        lead = round(v / 10 ** math.floor(math.log10(v))) if v > 0 else 0
        return f"{v:g}" if lead in (2, 5) else ""

    ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
    ax.yaxis.set_minor_formatter(FuncFormatter(minor))


def _series(rows, key):
    return np.array([_num(r.get(key)) for r in rows])


def _matrix(rows, key) -> np.ndarray | None:
    """(epochs, d) array of a list-valued key (NaN rows where missing); None if no record has it."""
    vecs = [_vec(r.get(key)) for r in rows]
    d = max((v.size for v in vecs if v is not None), default=0)
    if d == 0:
        return None
    out = np.full((len(rows), d), np.nan)
    for i, v in enumerate(vecs):
        if v is not None:
            out[i, : v.size] = v
    return out


def _has(y: np.ndarray | None) -> bool:
    return y is not None and bool(np.any(np.isfinite(y)))


def _lines(ax, x, M, *, log=False):
    """One line per eigenvalue index (sorted order), dark = top; log: positive part on a log axis."""
    import matplotlib.pyplot as plt

    log = log and bool(np.any(M > 0))  # nothing positive (a collapsed F): stay linear
    colors = plt.cm.viridis(np.linspace(0.0, 0.9, M.shape[1]))
    lw = 1.2 if M.shape[1] <= 16 else 0.6
    for j in range(M.shape[1]):
        y = M[:, j]
        if log:
            y = np.where(y > 0, y, np.nan)
        ax.plot(x, y, "-", color=colors[j], lw=lw, marker="." if x.size < 30 else None, ms=3)
    if log:
        ax.set_yscale("log")


def _spectra_figure(rows, x):
    import matplotlib.pyplot as plt

    re, im = _matrix(rows, "wp_eig_real"), _matrix(rows, "wp_eig_imag")
    sym, f = _matrix(rows, "wp_sym_eig"), _matrix(rows, "f_eig")
    panels = [p for p in (re, sym, f) if p is not None]
    if not panels:
        return None
    good = [] if re is None or im is None else [
        i for i in range(len(rows)) if np.all(np.isfinite(re[i])) and np.all(np.isfinite(im[i]))
    ]
    ncol = len(panels) + (1 if good else 0)
    fig, axes = plt.subplots(1, ncol, figsize=(3.6 * ncol, 3.4), layout="constrained", squeeze=False)
    axes = list(axes[0])
    if re is not None:
        ax = axes.pop(0)
        _lines(ax, x, re)
        ax.axhline(0, color="k", lw=0.6)
        ax.set(xlabel="epoch", ylabel="Re λ_j(Wp)", title="eigenvalues of Wp (real parts)")
    if sym is not None:
        ax = axes.pop(0)
        _lines(ax, x, sym)
        ax.axhline(0, color="k", lw=0.6)
        ax.set(xlabel="epoch", ylabel="λ_j((Wp+Wpᵀ)/2)", title="symmetric part of Wp")
    if f is not None:
        ax = axes.pop(0)
        _lines(ax, x, f, log=True)
        ax.set(xlabel="epoch", ylabel="λ_j(F)", title="eigenvalues of F (log)")
    if good:
        ax = axes.pop(0)
        first, last = good[0], good[-1]
        ax.plot(re[first], im[first], "o", mfc="none", color="0.5", ms=4, label=f"epoch {x[first]:g}")
        ax.plot(re[last], im[last], "x", color="C3", ms=5, label=f"epoch {x[last]:g}")
        ax.axhline(0, color="k", lw=0.6)
        ax.set(xlabel="Re λ(Wp)", ylabel="Im λ(Wp)", title="eigenvalues of Wp (complex plane)")
        ax.legend(frameon=False, fontsize=7)
    return fig


def _invariants_figure(rows, x):
    import matplotlib.pyplot as plt

    keys = [("asymmetry", "asymmetry ‖Wp − Wpᵀ‖/‖Wp‖"), ("commutator", "‖[F, Wp]‖/(‖F‖‖Wp‖)"),
            ("balance", "balance ‖Wpᵀ Wp/α_p − W Wᵀ‖ (normalised)")]
    logged = [(k, lab, _series(rows, k)) for k, lab in keys]
    logged = [t for t in logged if _has(t[2])]
    align = _matrix(rows, "alignment")
    if not logged and align is None:
        return None
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(9, 3.4), layout="constrained")
    for k, lab, y in logged:
        # exact zeros (a symmetric or DirectPred predictor has asymmetry 0) are drawn at _LOG_FLOOR
        ax1.semilogy(x, np.where(y >= 0, np.maximum(y, _LOG_FLOOR), np.nan), "-o", ms=3, label=lab)
    ax1.set(xlabel="epoch", title=f"predictor invariants (log; 0 drawn at {_LOG_FLOOR:g})")
    if logged:
        ax1.legend(frameon=False, fontsize=7)
    if align is not None:
        m = align.shape[1]
        top = min(m, 4)
        colors = plt.cm.viridis(np.linspace(0.0, 0.9, top))
        for j in range(top):
            ax2.plot(x, align[:, j], "-", color=colors[j], lw=1, label=f"mode {j + 1}")
        ax2.plot(x, [aligned_fraction(r) for r in rows], "k-o", ms=3, lw=1.6, label="F-weighted mean")
        ax2.plot(x, np.nanmean(align, axis=1), "k:", lw=1, label=f"mean of all {m}")
        ax2.set_ylim(-0.02, 1.02)
        ax2.legend(frameon=False, fontsize=7)
    ax2.set(xlabel="epoch", ylabel="|u_Wp,j · u_F,j|", title="eigenvector alignment of Wp and F")
    return fig


def _collapse_figure(rows, x, threshold: float):
    import matplotlib.pyplot as plt

    got = {(p, m): _series(rows, f"{p}_{m}") for p in ("backbone", "proj") for m in ("cev_auc", "rankme")}
    if not any(_has(v) for v in got.values()):
        return None
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(9, 3.4), layout="constrained")
    for p, c in (("backbone", "C0"), ("proj", "C1")):
        if _has(got[(p, "cev_auc")]):
            ax1.plot(x, got[(p, "cev_auc")], "-o", color=c, ms=3, label=p)
        if _has(got[(p, "rankme")]):
            ax2.plot(x, got[(p, "rankme")], "-o", color=c, ms=3, label=p)
    ax1.set(xlabel="epoch", ylabel="CEV-AUC", title="CEV-AUC (Li et al. 2022; higher = more collapsed)")
    ax2.axhline(threshold, color="k", ls=":", lw=1, label=f"collapse threshold ({threshold:g})")
    ax2.set_yscale("log")
    _plain_log_ticks(ax2)
    ax2.set(xlabel="epoch", ylabel="RankMe", title="RankMe (Garrido et al. 2023; log)")
    ax1.legend(frameon=False, fontsize=7)
    ax2.legend(frameon=False, fontsize=7)
    return fig


def _accuracy_figure(records, rows, x):
    import matplotlib.pyplot as plt

    loss, ips = _series(rows, "loss"), _series(rows, "images_per_s")
    knn, probe = _series(rows, "knn_acc"), _series(rows, "probe_acc")
    steps = [r for r in records if r.get("kind") == "step"]
    if not any(_has(v) for v in (loss, ips, knn, probe)) and not steps:
        return None
    fig, axes = plt.subplots(1, 3, figsize=(12, 3.4), layout="constrained")
    if steps:
        # place step records on the epoch axis by the (step, epoch) pairs of the epoch records
        es, ee = _series(rows, "step"), np.asarray(x, dtype=float)
        ok = np.isfinite(es)
        sx = _series(steps, "step")
        xs = np.interp(sx, es[ok], ee[ok]) if ok.sum() >= 2 else _series(steps, "epoch")
        axes[0].plot(xs, _series(steps, "loss"), "-", color="0.6", lw=0.8, marker="." if len(steps) < 50 else None,
                     label="every N steps")
    axes[0].plot(x, loss, "-o", color="C0", ms=3, label="epoch mean")
    axes[0].set(xlabel="epoch", ylabel="loss", title="training loss")
    axes[0].legend(frameon=False, fontsize=7)
    for y, lab, c in ((knn, "kNN", "C2"), (probe, "linear probe", "C3")):
        if _has(y):
            axes[1].plot(x, y, "-o", color=c, ms=3, label=lab)
    axes[1].set(xlabel="epoch", ylabel="test accuracy", title="kNN and linear-probe accuracy")
    if _has(knn) or _has(probe):
        axes[1].legend(frameon=False, fontsize=7)
    else:
        axes[1].text(0.5, 0.5, "no labels", ha="center", va="center", transform=axes[1].transAxes)
    axes[2].plot(x, ips, "-o", color="C4", ms=3)
    axes[2].set(xlabel="epoch", ylabel="images / s", title="throughput")
    return fig


def plot_run(run_dir: str | Path, records: list[dict[str, Any]]) -> list[Path]:
    """Write the run's figures into ``run_dir`` atomically and return their paths (see ``PLOT_FILES``).

    spectra.png: eigenvalues of Wp (real parts; the complex plane at the first and last epoch), of its
    symmetric part and of F over epochs; predictor_invariants.png: asymmetry, commutator, balance and
    eigenvector alignment; collapse.png: CEV-AUC and RankMe of backbone and projector, with the run's
    collapse threshold (:func:`collapse_threshold`); accuracy.png: loss,
    kNN / probe accuracy and images/s. Figures with nothing to draw (no linear predictor) are not written.
    """
    import matplotlib.pyplot as plt

    from linsim.plots import STYLE

    run = Path(run_dir)
    if not run.is_dir():
        raise LinsimError(f"{run} is not a folder")
    if not records:
        raise LinsimError(f"no records to plot for {run}")
    rows = _epoch_records(records)
    x = np.array([r["epoch"] for r in rows], dtype=float)
    title = run.name
    out = []
    with plt.rc_context(STYLE):
        builders = (
            lambda: _spectra_figure(rows, x),
            lambda: _invariants_figure(rows, x),
            lambda: _collapse_figure(rows, x, collapse_threshold(run)),
            lambda: _accuracy_figure(records, rows, x),
        )
        for name, build in zip(PLOT_FILES, builders):
            fig = build()
            if fig is None:
                continue
            try:
                fig.suptitle(f"{title}: {name.removesuffix('.png').replace('_', ' ')}")
                out.append(atomic_savefig(fig, run / name))
            finally:
                plt.close(fig)
    return out
