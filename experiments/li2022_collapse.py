"""Li, Efros & Pathak (ECCV 2022), Figure 3, from the released spectra: collapse grows with data size up to 20%.

Alexander C. Li, Alexei A. Efros, Deepak Pathak, "Understanding Collapse in Non-Contrastive Siamese Representation
Learning", ECCV 2022. The spectra ship with linsim (``linsim.data.li2022_spectra()``, MIT licence, see
``linsim/data/li2022/README.md``): singular values of centred ResNet-18 SimSiam backbone features on ImageNet
train, for models pretrained on 1-100% of ImageNet. Writes

- ``figures/li2022_collapse.png``: top, sigma_k (log), sigma_k/sigma_1 (log) and the cumulative explained variance
  CEV_k; bottom, CEV-AUC (the paper's Eq. 2) against data %, RankMe (Garrido et al., ICML 2023) against data %,
  and AUC against RankMe, one quantity per axis;
- ``figures/li2022_collapse.csv``: one row per model: data %, CEV-AUC, RankMe, participation ratio, alpha-ReQ
  (+R^2), k at CEV >= 0.9, sigma_10/sigma_1, sigma_100/sigma_1 (1-based).

What it shows: CEV-AUC rises from 0.6098 (1%) to a peak of 0.8787 at 20% and eases to 0.8714 (50%) and 0.8578
(100%); RankMe orders the six models exactly in reverse (465.3, 323.6, 186.6, 140.1, 161.4, 165.6; Spearman -1).
So for this small model, more pretraining data means more dimensional collapse up to 20%, then slightly less.

Usage: ``python experiments/li2022_collapse.py [--data PATH] [--out DIR]`` (about 2 s). Theory: docs/metrics.md.
"""
from __future__ import annotations

import argparse
import csv
import io
from pathlib import Path

import numpy as np
from scipy.stats import spearmanr

from linsim import metrics as M
from linsim.data import LI2022_FILE, LI2022_PERCENTS, li2022_spectra
from linsim.io import atomic_savefig, atomic_write_text

PERCENTS = LI2022_PERCENTS
REPO = Path(__file__).resolve().parents[1]


def load_spectra(data: str | None) -> tuple[dict[int, np.ndarray], str]:
    """The six spectra: from ``--data`` (an npz with keys percent_<x>), else the copy shipped with linsim."""
    if data is None:
        return {p: s for p, s in zip(PERCENTS, li2022_spectra().values())}, f"linsim.data ({LI2022_FILE})"
    path = Path(data)
    path = path / LI2022_FILE if path.is_dir() else path
    if not path.is_file():
        raise SystemExit(f"error: {path} not found")
    with np.load(path) as npz:
        return {p: np.asarray(npz[f"percent_{p}"]) for p in PERCENTS}, path.name


def main(argv: list[str] | None = None, quiet: bool = False) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default=None, help=f"{LI2022_FILE} or the folder holding it [default: the shipped copy]")
    parser.add_argument("--out", default=str(REPO / "figures"), help="output folder (default: <repo>/figures)")
    args = parser.parse_args(argv)
    spectra, source = load_spectra(args.data)
    out = Path(args.out)

    rows = []
    for p, s in spectra.items():
        summary = M.summarize(s, singular_values=True)
        sd = np.sort(s.astype(np.float64))[::-1]
        cev = M.cev_curve(s, singular_values=True)
        rows.append(
            {
                "data_percent": p,
                "cev_auc": summary["cev_auc"],
                "rankme": summary["rankme"],
                "participation_ratio": summary["participation_ratio"],
                "alpha_req": summary["alpha_req"],
                "alpha_req_r2": summary["alpha_req_r2"],
                "k_cev_0.9": int(np.argmax(cev >= 0.9)) + 1,
                "sv10_over_sv1": sd[9] / sd[0],
                "sv100_over_sv1": sd[99] / sd[0],
            }
        )

    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=list(rows[0]), lineterminator="\n")
    writer.writeheader()
    for r in rows:
        writer.writerow({k: (f"{v:.6g}" if isinstance(v, float) else v) for k, v in r.items()})
    atomic_write_text(out / "li2022_collapse.csv", buf.getvalue())

    from matplotlib.figure import Figure

    fig = Figure(figsize=(14, 7.6), layout="constrained")
    (ax_s, ax_r, ax_c), (ax_a, ax_m, ax_x) = fig.subplots(2, 3)
    colors = {p: c for p, c in zip(PERCENTS, ["#440154", "#3b528b", "#21918c", "#5ec962", "#b8b000", "#e66101"])}
    for p, s in spectra.items():
        sd = np.sort(s.astype(np.float64))[::-1]
        k = np.arange(1, sd.size + 1)
        ax_s.plot(k, sd, color=colors[p], lw=1, label=f"{p}%")
        ax_r.plot(k, sd / sd[0], color=colors[p], lw=1)
        ax_c.plot(k, np.cumsum(sd) / sd.sum(), color=colors[p], lw=1)
    ax_s.set(yscale="log", xlabel="k", ylabel=r"$\sigma_k$", title="singular values")
    ax_s.legend(fontsize=7, title="pretraining data", title_fontsize=7)
    ax_r.set(yscale="log", xlabel="k", ylabel=r"$\sigma_k/\sigma_1$", title="normalised spectrum")
    ax_c.set(xlabel="k", ylabel=r"CEV$_k=\sum_{i\leq k}\sigma_i/\sum_i\sigma_i$", ylim=(0, 1.02),
             title="cumulative explained variance")
    x = [r["data_percent"] for r in rows]
    auc = np.array([r["cev_auc"] for r in rows])
    rme = np.array([r["rankme"] for r in rows])
    peak = x[int(np.argmax(auc))]
    ax_a.plot(x, auc, "o-", color="k")
    ax_a.plot(peak, auc.max(), "o", ms=11, mfc="none", color="tab:red")
    for xi, a in zip(x, auc):
        ax_a.annotate(f"{a:.3f}", (xi, a), xytext=(0, -13), textcoords="offset points", ha="center", fontsize=7)
    ax_a.set_ylim(auc.min() - 0.04, auc.max() + 0.02)
    ax_a.set(xscale="log", xlabel="ImageNet data for pretraining (%)", ylabel="CEV-AUC (higher = more collapsed)",
             title=f"CEV-AUC peaks at {peak}% ({auc.max():.4f}),\nthen eases at 50% and 100%")
    ax_m.plot(x, rme, "s-", color="tab:blue")
    ax_m.set(xscale="log", xlabel="ImageNet data for pretraining (%)", ylabel="RankMe (higher = less collapsed)",
             title=f"RankMe is lowest at {x[int(np.argmin(rme))]}% ({rme.min():.1f})")
    rho = spearmanr(auc, rme).statistic
    for p, a, r in zip(x, auc, rme):
        ax_x.plot(r, a, "o", color=colors[p], ms=7, label=f"{p}%")
    ax_x.set(xlabel="RankMe", ylabel="CEV-AUC", title=f"the two metrics rank the models in reverse\n(Spearman {rho:+.2f})")
    ax_x.legend(fontsize=7)
    fig.suptitle(f"Li, Efros & Pathak (ECCV 2022), Fig. 3: ResNet-18 SimSiam, ImageNet; spectra from {source}", fontsize=10)
    atomic_savefig(fig, out / "li2022_collapse.png", dpi=130)

    if quiet:
        return
    for r in rows:
        print(f"{r['data_percent']:>4d}%  AUC {r['cev_auc']:.4f}  RankMe {r['rankme']:7.1f}  "
              f"PR {r['participation_ratio']:6.1f}  k(CEV>=0.9) {r['k_cev_0.9']}")
    print(f"wrote {out / 'li2022_collapse.png'} and {out / 'li2022_collapse.csv'}")


def make(out: Path) -> list[Path]:
    """For ``linsim figures``: the released spectra's collapse trend."""
    main(["--out", str(out)], quiet=True)
    return [Path(out) / "li2022_collapse.png", Path(out) / "li2022_collapse.csv"]


if __name__ == "__main__":
    main()
