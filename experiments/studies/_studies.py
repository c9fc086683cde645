"""Helpers shared by the bridge studies in experiments/studies/ (not part of the package API).

A study trains a few real BYOL/SimSiam networks with :func:`linsim.bridge.train.train`, tabulates what the
linear theory predicts next to what happened, and writes ``<out>/study_<name>.png`` (figure),
``<out>/study_<name>.csv`` (the table) and ``<out>/study_<name>.json`` (prediction, verdict, run times).

Sizes (``--size``):

- ``tiny``: one epoch on 32 images, the 2 first configurations of a study; a smoke test (tens of seconds a
  run on a 2-core CPU, almost all of it compilation).
- ``small`` (default): resnet-tiny at width 1/16 on 16 x 16 crops of 256 built-in images, batch 32, a few
  epochs; a study takes under a minute on 2 CPU cores. At this size the networks only start to learn (linear
  probe 0.36 for the random network, 0.33-0.54 after a run, one seed): the tables test the plumbing and show
  trends at best (``docs/studies.md`` gives the numbers).
- ``full``: ResNet-18 on CIFAR-10 (``--data-dir`` holding ``cifar-10-batches-py``), batch 256, 100 epochs
  (or the study's own budget), the sizes of the published recipes; meant for a GPU.
"""
from __future__ import annotations

import argparse
import csv
import io
import math
import os
import shutil
import tempfile
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Callable

import numpy as np

from linsim.errors import LinsimError
from linsim.io import atomic_savefig, atomic_write_json, atomic_write_text

SIZES = ("tiny", "small", "full")

#: TrainConfig keyword arguments of each size (a study overrides the knob it varies)
BASE = {
    "tiny": dict(arch="resnet-tiny", width=0.0625, image_size=16, proj_hidden=32, proj_dim=8, batch_size=16,
                 epochs=1, eval_size=16, probe_train=40, probe_test=20, lr=0.05, momentum=0.9, wd=4e-4, ema=0.99),
    "small": dict(arch="resnet-tiny", width=0.0625, image_size=16, proj_hidden=64, proj_dim=16, batch_size=32,
                  epochs=4, eval_size=128, probe_train=400, probe_test=200, lr=0.05, momentum=0.9, wd=4e-4,
                  ema=0.99),
    "full": dict(arch="resnet18", dataset="cifar10", image_size=32, batch_size=256, epochs=100, eval_size=2048,
                 probe_train=10000, probe_test=2000, lr=0.03, momentum=0.9, wd=4e-4, ema=0.996),
}
#: pre-training images of each size (None: the whole pre-training set)
N_PRETRAIN = {"tiny": 32, "small": 256, "full": None}


@dataclass(frozen=True)
class Run:
    """One training run of a study: a name (its folder), the TrainConfig and the knob's value for the table."""

    name: str
    cfg: Any
    value: Any
    extra: dict = field(default_factory=dict)


def check_size(size: str) -> str:
    """``size`` if it is one of ``SIZES``, else LinsimError."""
    if size not in SIZES:
        raise LinsimError(f"unknown study size {size!r}; choose one of {', '.join(SIZES)}")
    return size


def base_config(size: str, data_dir: str | None = None, **changes: Any):
    """The TrainConfig of ``size`` with ``changes`` (full size needs ``data_dir``, the CIFAR-10 folder)."""
    from linsim.bridge.config import TrainConfig

    kw = dict(BASE[check_size(size)])
    if size == "full":
        if not data_dir:
            raise LinsimError("--size full trains on CIFAR-10: pass --data-dir (the folder holding "
                              "cifar-10-batches-py; nothing is downloaded)")
        kw["data_dir"] = str(data_dir)
    kw.update(changes)
    return TrainConfig(**kw)


def load_data(size: str, data_dir: str | None = None, *, n: int | None = None, seed: int = 0):
    """The ImageData of ``size``; its pre-training set cut to ``n`` images (default ``N_PRETRAIN[size]``),
    a seeded random subset so that every class appears."""
    from linsim.bridge import data as D

    cfg = base_config(size, data_dir)
    data = D.load_dataset(cfg.dataset, cfg.data_dir, seed=seed)
    n = N_PRETRAIN[size] if n is None else n
    if n is not None:
        if n > data.pretrain.shape[0]:
            raise LinsimError(f"the study needs {n} pre-training images; {data.name} has {data.pretrain.shape[0]}")
        idx = np.sort(np.random.default_rng([seed, 0x57D]).permutation(data.pretrain.shape[0])[:n])
        data = replace(data, pretrain=data.pretrain[idx])
    return data


def with_pretrain(data, images: np.ndarray):
    """``data`` with another pre-training set (the labelled probe split stays)."""
    return replace(data, pretrain=np.ascontiguousarray(images))


def train_run(run: Run, runs_dir: Path, data, *, resume: bool = False) -> tuple[dict, list[dict], float]:
    """Train ``run`` into ``runs_dir/run.name`` (replacing an earlier run there unless ``resume``); returns
    (summary, epoch records, wall seconds of this call)."""
    from linsim.bridge.report import read_metrics
    from linsim.bridge.train import train

    t0 = time.perf_counter()
    summary = train(run.cfg, runs_dir / run.name, resume=resume, force=not resume, data=data, progress=False)
    records = read_metrics(runs_dir / run.name)
    return summary, records, time.perf_counter() - t0


def train_all(runs: list[Run], runs_dir: str | Path | None, data, *, stats: bool = False):
    """Train every run in a :class:`RunsDir` one after the other: returns the list of (run, summary, records,
    seconds) from :func:`train_run` and, with ``stats``, (x, x') of the first run's initial network
    (:func:`init_stats`), else None."""
    with RunsDir(runs_dir) as rd:
        results = [(r, *train_run(r, rd, data)) for r in runs]
        xs = init_stats(rd / runs[0].name, data) if stats else None
    return results, xs


def epoch_records(records: list[dict]) -> list[dict]:
    """The end-of-epoch records (epoch 0 = before training) of a run's metrics."""
    return [r for r in records if r.get("kind") == "epoch"]


def init_stats(run_dir: Path, data, *, images: int = 256, seed: int = 0):
    """X, X' of the predictor input of a run's initial network on two augmented views (as
    ``linsim bridge compare`` estimates them): returns (x_j, x'_j) per mode (X's eigenbasis)."""
    import jax

    from linsim.bridge import train as T
    from linsim.config import Stats
    from linsim.mapping import spectra_from_stats

    cfg, init = T.load_run(run_dir, "init")
    n = min(images, data.pretrain.shape[0])
    z = T.predictor_inputs(init, cfg, data.pretrain[:n], jax.random.PRNGKey(seed), views=2).astype(np.float64)
    x, xp, _ = spectra_from_stats(Stats.from_views(z[0], z[1]))
    return np.asarray(x), np.asarray(xp)


def theory_params(cfg):
    """The run's TrainConfig mapped onto the theory (``linsim.bridge.compare.theory_of_run``: g = 2)."""
    from linsim.bridge.compare import theory_of_run

    return theory_of_run(cfg)


def n_collapsed(f_eig, rel: float = 1e-3) -> int:
    """Modes of F below ``rel`` times its largest eigenvalue (``linsim.bridge.compare.n_collapsed``)."""
    from linsim.bridge.compare import n_collapsed as nc

    return nc(f_eig, rel)


def mode_ode(tp, x, xp, p0, s0, t_max: float, n_save: int = 400):
    """The per-mode ODE of the linear theory (Tian, Chen & Ganguli, ICML 2021, Eqs. 13-15 per eigenmode) at the
    mapped parameters ``tp`` (``TheoryParams``; EMA rate ``tp.beta_ode``) for modes with data variance ``x``,
    augmentation variance ``xp`` (scalars or one per mode), from p0 and s0 = w0^2 (one per mode).
    Returns the Trajectory."""
    import linsim as ls

    p0, s0 = np.atleast_1d(np.asarray(p0, float)), np.atleast_1d(np.asarray(s0, float))
    m = p0.size
    x, xp = np.broadcast_to(np.asarray(x, float), (m,)).copy(), np.broadcast_to(np.asarray(xp, float), (m,)).copy()
    cfg = ls.Config(hyper=tp.hyper(), stats=ls.Stats.diagonal(x, xp),
                    solver=ls.Solver(t_max=float(t_max), n_save=n_save, rtol=1e-8, atol=1e-12))
    w0 = np.sqrt(s0)
    return ls.simulate(cfg, y0={"p": p0, "w": w0, "wa": w0.copy()})


def n_collapsed_vs_init(f_eig, f_eig_init, rel: float = 1e-3) -> int:
    """Modes of F below ``rel`` times the INITIAL network's largest eigenvalue: absolute collapse (s_j -> 0 in
    the theory), which also counts a uniform shrinkage of every mode that :func:`n_collapsed` cannot see."""
    return int(np.sum(np.asarray(f_eig, float) < rel * float(np.max(f_eig_init))))


def spearman(a, b) -> float | None:
    """Spearman rank correlation (scipy.stats.spearmanr); None with fewer than 3 points or a constant input."""
    from scipy.stats import spearmanr

    a, b = np.asarray(a, float), np.asarray(b, float)
    ok = np.isfinite(a) & np.isfinite(b)
    if ok.sum() < 3 or np.ptp(a[ok]) == 0 or np.ptp(b[ok]) == 0:
        return None
    return float(spearmanr(a[ok], b[ok]).statistic)


#: accuracy comparisons are decided only if some run's final probe beats the random initial network's probe
#: by this much: the probe's test split has 200 images at small size, so one accuracy has a standard error of
#: about sqrt(0.1 x 0.9 / 200) = 0.021 near chance, and 0.05 is about 2.4 of them
LEARN_MARGIN = 0.05


def learned(final_accs, init_acc) -> bool:
    """Whether any run learned something a linear probe sees (``LEARN_MARGIN`` above the initial network)."""
    accs = [a for a in final_accs if a is not None]
    return bool(accs and init_acc is not None and max(accs) - init_acc >= LEARN_MARGIN)


def held(ok: bool | None) -> str:
    """'held', 'did not hold', or 'undecided' (too few points to tell)."""
    return "undecided" if ok is None else "held" if ok else "did not hold"


def fmt(v: Any) -> str:
    """A table cell: 4 significant digits for floats, '' for None."""
    if v is None:
        return ""
    if isinstance(v, (bool, np.bool_)):
        return str(bool(v))
    if isinstance(v, (int, np.integer)):
        return str(int(v))
    if isinstance(v, (float, np.floating)):
        return "nan" if not math.isfinite(float(v)) else f"{float(v):.4g}"
    return str(v)


def csv_text(rows: list[dict]) -> str:
    """The rows as CSV (columns: every key in first-seen order)."""
    cols = list(dict.fromkeys(k for r in rows for k in r))
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(cols)
    for r in rows:
        w.writerow([fmt(r.get(c)) for c in cols])
    return buf.getvalue()


def markdown_table(rows: list[dict]) -> str:
    """The rows as a Markdown table (what docs/studies.md shows)."""
    cols = list(dict.fromkeys(k for r in rows for k in r))
    lines = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    lines += ["| " + " | ".join(fmt(r.get(c)) for c in cols) + " |" for r in rows]
    return "\n".join(lines)


def write_outputs(out: Path, name: str, fig, rows: list[dict], report: dict) -> list[Path]:
    """Write study_<name>.png, .csv (the table) and .json (prediction, outcome, verdict, table, timings)."""
    import matplotlib.pyplot as plt

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    paths = [atomic_savefig(fig, out / f"study_{name}.png", dpi=120, bbox_inches="tight"),
             atomic_write_text(out / f"study_{name}.csv", csv_text(rows)),
             atomic_write_json(out / f"study_{name}.json", {**report, "table": rows})]
    plt.close(fig)
    return paths


def caption(fig, text: str) -> None:
    """The prediction and the outcome under the axes (wrapped)."""
    import textwrap

    fig.text(0.01, 0.0, "\n".join(textwrap.wrap(text, 190)), ha="left", va="top", fontsize=7.5)


class RunsDir:
    """Where run folders go: ``runs`` if given (kept), else a temporary folder removed at the end."""

    def __init__(self, runs: str | Path | None):
        self.keep = runs is not None
        self.path = Path(runs) if runs is not None else Path(tempfile.mkdtemp(prefix="linsim_study_"))

    def __enter__(self) -> Path:
        self.path.mkdir(parents=True, exist_ok=True)
        return self.path

    def __exit__(self, *exc) -> None:
        if not self.keep:
            shutil.rmtree(self.path, ignore_errors=True)


def cpu_speedups(size: str, runs: Path | None) -> None:
    """For CPU sizes, before JAX starts its backend: XLA's CPU optimisation passes off (these short runs are
    dominated by compilation; about 2x faster end to end here) and a persistent compilation cache (chained
    runs of one configuration compile once). Does nothing once a backend exists or for ``full``."""
    from jax._src import xla_bridge

    if size == "full" or getattr(xla_bridge, "_backends", None):
        return
    os.environ.setdefault("XLA_FLAGS", "--xla_backend_optimization_level=0")
    if runs is not None:
        import jax

        jax.config.update("jax_compilation_cache_dir", str(Path(runs) / ".jax_cache"))
        jax.config.update("jax_persistent_cache_min_compile_time_secs", 1.0)


def main(make: Callable, doc: str | None) -> None:
    """argparse front end of a study: --size, --out, --data-dir, --runs."""
    p = argparse.ArgumentParser(description=(doc or "").split("\n\n")[0])
    p.add_argument("--size", default="small", choices=SIZES, help="tiny (smoke test), small (CPU), full (GPU)")
    p.add_argument("--out", type=Path, default=Path(__file__).resolve().parents[2] / "figures",
                   help="where study_<name>.png/.csv/.json go [default: figures/]")
    p.add_argument("--data-dir", default=None, help="CIFAR-10 folder (needed by --size full)")
    p.add_argument("--runs", type=Path, default=None,
                   help="keep the run folders here [default: a temporary folder, removed at the end]")
    a = p.parse_args()
    if a.size == "full" and not a.data_dir:
        p.error("--size full trains on CIFAR-10: pass --data-dir")
    cache_root = a.runs if a.runs is not None else Path(tempfile.gettempdir()) / "linsim_study_cache"
    cpu_speedups(a.size, cache_root)
    t0 = time.perf_counter()
    paths = make(a.out, size=a.size, data_dir=a.data_dir, runs=a.runs)
    print(f"{time.perf_counter() - t0:.0f} s ->", ", ".join(str(x) for x in paths))


def report(name: str, size: str, prediction: str, outcome: str, verdict: str, seconds: float, **more: Any) -> dict:
    """The JSON report of a study (also what docs/studies.md quotes)."""
    return {"study": name, "size": size, "prediction": prediction, "outcome": outcome, "verdict": verdict,
            "seconds": round(float(seconds), 1), **more}


__all__ = ["SIZES", "BASE", "N_PRETRAIN", "LEARN_MARGIN", "Run", "base_config", "load_data", "with_pretrain",
           "train_run", "train_all", "epoch_records", "init_stats", "theory_params", "mode_ode", "n_collapsed",
           "n_collapsed_vs_init", "spearman", "learned", "held", "fmt", "csv_text", "markdown_table",
           "write_outputs", "caption", "RunsDir", "cpu_speedups", "main", "report"]
