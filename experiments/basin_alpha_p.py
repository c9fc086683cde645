"""The collapse basin shrinks as the relative predictor learning rate alpha_p grows.

A (p0, s0, alpha_p) sweep of the per-mode SimSiam system at eta = 0.04, sigma2 = 0.5: which initial conditions
collapse (red) or reach p+ (green), for alpha_p in {0.5, 1, 2, 10}, with the fraction of the grid that collapses;
the solid line is the analytic basin edge (the stable manifold of the saddle p-), the dashed one the eta = 0 edge
s0 = p0^2/alpha_p. Theory: docs/theory_dynamics.md (fixed points and basins).
"""
from __future__ import annotations

import tempfile
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from matplotlib.colors import ListedColormap  # noqa: E402

from _common import save  # noqa: E402
from linsim.dynamics.modes import basin_boundary  # noqa: E402
from linsim.plots import STYLE  # noqa: E402
from linsim.sweep import SweepSpec, run_sweep  # noqa: E402

ALPHAS = (0.5, 1.0, 2.0, 10.0)


def make(out: Path) -> list[Path]:
    spec = SweepSpec(axes={"p0": "-1:1:81", "s0": "0.002:0.3:60", "alpha_p": ALPHAS},
                     fixed={"eta": 0.04, "sigma2": 0.5}, t_max=1000.0)
    with tempfile.TemporaryDirectory() as tmp:
        res = run_sweep(spec, tmp, progress=False)
        collapsed = np.asarray(res["collapsed"], dtype=bool)
    p0, s0 = (np.asarray(spec.coords[k]) for k in ("p0", "s0"))
    edges = {}
    with plt.rc_context(STYLE):
        fig, axes = plt.subplots(1, len(ALPHAS), figsize=(14, 3.6), layout="constrained", sharey=True)
        for i, (ax, a) in enumerate(zip(axes, ALPHAS)):
            c = collapsed[:, :, i].T
            ax.pcolormesh(p0, s0, c, cmap=ListedColormap(["#d6ead6", "#e8a0a0"]), vmin=0, vmax=1, shading="nearest")
            for k, b in enumerate(basin_boundary(0.04, a, 0.5, p_lim=(-1.2, 1.2), s_max=0.4)):
                ax.plot(b[0], b[1], "k-", lw=1.3, label="basin edge (stable manifold of p−)" if k == 0 else None)
                edges[f"edge_alpha_p{a:g}_{k}"] = b
            pl = np.linspace(-1, 0, 100)
            ax.plot(pl, pl**2 / a, "k--", lw=0.9, label="η = 0 edge s0 = p0²/α_p")
            ax.set(title=f"α_p = {a:g}: {c.mean():.1%} of the grid collapses", xlabel="p0", xlim=(-1, 1), ylim=(0, 0.3))
        axes[0].set_ylabel("s0")
        axes[0].legend(fontsize=7, loc="upper right", framealpha=0.9)
        fig.suptitle("Per-mode SimSiam, η = 0.04, σ² = 0.5: initial conditions that collapse (red) or reach p+ (green); "
                     "a larger α_p shrinks the collapse basin")
    return save(fig, out, "basin_alpha_p", p0=p0, s0=s0, alpha_p=np.array(ALPHAS), collapsed=collapsed, **edges)


if __name__ == "__main__":
    print(make(Path(__file__).resolve().parents[1] / "figures"))
