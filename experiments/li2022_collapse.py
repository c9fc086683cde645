"""Li, Efros & Pathak (ECCV 2022) Figure 3 from the authors' released spectra: collapse grows with data size.

Reads ``li2022_resnet18_imagenet_train_sv.npz`` (singular values of centred ResNet-18 SimSiam backbone
features on ImageNet train, models pretrained on 1-100% of ImageNet; ``../shared/data/li2022``) and writes

- ``figures/li2022_collapse.png``: sigma_k (log), sigma_k/sigma_1 (log), CEV_k, and CEV-AUC and RankMe
  against data % (log x);
- ``figures/li2022_collapse.csv``: one row per model: data %, CEV-AUC, RankMe, participation ratio,
  alpha-ReQ (+R^2), k at CEV >= 0.9, sigma_10/sigma_1, sigma_100/sigma_1 (the columns of the theory notes'
  §3.3 table).

Usage: ``python experiments/li2022_collapse.py [--data PATH] [--out DIR]`` (about 2 s).

Result (computed with this script): AUC 0.6098, 0.7480, 0.8449, 0.8787, 0.8714, 0.8578 and RankMe 465.3,
323.6, 186.6, 140.1, 161.4, 165.6 for 1, 5, 10, 20, 50, 100%: identical to
``../shared/theory/spectral_and_collapse.md`` §3.3; the two orders are exactly reversed (Spearman -1).
k at CEV >= 0.9 also matches (430, 310, 238, 189, 193, 221). The §3.3 columns "sigma_10/sigma_1" and
"sigma_100/sigma_1" are in fact 0-based ``s[10]/s[0]`` and ``s[100]/s[0]`` (sigma_11, sigma_101); this CSV
uses 1-based sigma_10 and sigma_100 (e.g. 0.605 vs the notes' 0.585 at 1%).

References: Li et al. 2022, arXiv 2209.15007, Eq. 2 and Fig. 3 (``plot_collapse.ipynb``); RankMe,
Garrido et al. 2023; theory notes §3.2-3.3, §6.1-6.2.
"""
from __future__ import annotations

import argparse
import csv
import io
import os
from pathlib import Path

import numpy as np

from linsim import metrics as M
from linsim.io import atomic_savefig, atomic_write_text

FILE = "li2022_resnet18_imagenet_train_sv.npz"
PERCENTS = (1, 5, 10, 20, 50, 100)
REPO = Path(__file__).resolve().parents[1]


def find_data(data: str | None) -> Path:
    """The npz: ``--data`` (file or folder), else ``<repo>/../shared/data/li2022``, else ``$LINSIM_SHARED``."""
    candidates: list[Path] = []
    if data:
        p = Path(data)
        candidates = [p / FILE if p.is_dir() else p]
    else:
        candidates.append(REPO / ".." / "shared" / "data" / "li2022" / FILE)
        if os.environ.get("LINSIM_SHARED"):
            shared = Path(os.environ["LINSIM_SHARED"])
            candidates += [shared / "data" / "li2022" / FILE, shared / "li2022" / FILE, shared / FILE]
    for p in candidates:
        if p.is_file():
            return p.resolve()
    raise SystemExit(f"error: {FILE} not found (looked at {', '.join(map(str, candidates))}); pass --data")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default=None, help=f"{FILE} or the folder holding it")
    parser.add_argument("--out", default=str(REPO / "figures"), help="output folder (default: <repo>/figures)")
    args = parser.parse_args(argv)
    path = find_data(args.data)
    out = Path(args.out)

    with np.load(path) as npz:
        spectra = {p: np.asarray(npz[f"percent_{p}"]) for p in PERCENTS}

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

    fig = Figure(figsize=(15, 3.6), layout="constrained")
    ax_s, ax_r, ax_c, ax_m = fig.subplots(1, 4)
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
    ax_m.plot(x, [r["cev_auc"] for r in rows], "o-", color="k", label="CEV-AUC (left)")
    ax_m.set(xscale="log", xlabel="ImageNet data for pretraining (%)", ylabel="CEV-AUC (higher = more collapsed)",
             title="collapse vs data size (ResNet-18 SimSiam)")
    ax_m2 = ax_m.twinx()
    ax_m2.plot(x, [r["rankme"] for r in rows], "s--", color="tab:red", label="RankMe (right)")
    ax_m2.set_ylabel("RankMe", color="tab:red")
    handles = ax_m.get_legend_handles_labels()[0] + ax_m2.get_legend_handles_labels()[0]
    ax_m.legend(handles, [h.get_label() for h in handles], fontsize=7, loc="center right")
    fig.suptitle(f"Li, Efros & Pathak 2022, Fig. 3 from the released spectra ({path.name})", fontsize=9)
    atomic_savefig(fig, out / "li2022_collapse.png", dpi=130)

    for r in rows:
        print(f"{r['data_percent']:>4d}%  AUC {r['cev_auc']:.4f}  RankMe {r['rankme']:7.1f}  "
              f"PR {r['participation_ratio']:6.1f}  k(CEV>=0.9) {r['k_cev_0.9']}")
    print(f"wrote {out / 'li2022_collapse.png'} and {out / 'li2022_collapse.csv'}")


def make(out: Path) -> list[Path]:
    """Figure 10 for ``linsim figures``: the released spectra's collapse trend."""
    main(["--out", str(out)])
    return [Path(out) / "li2022_collapse.png", Path(out) / "li2022_collapse.csv"]


if __name__ == "__main__":
    main()
