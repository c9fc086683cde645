"""The picture `linsim sweep` draws: a 41 x 17 (eta, beta) sweep from (p0, s0) = (0.1, 0.1), as in the README.

Equivalent to ``linsim sweep --eta 0:0.2:41 --beta log:0.01:100:17`` (sigma2 = 0.5, alpha_p = 1, t = 1000):
collapsed or not, the final p, and the time to come within 1% of p+, with eta_c marked. Just below eta_c the
basin of collapse grows to include this start (0.1, 0.1), so the collapsed region begins slightly left of eta_c.
Theory and options: docs/sweeps.md, docs/theory_dynamics.md.
"""
from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np

from linsim.io import atomic_savez
from linsim.sweep import SweepSpec, run_sweep
from linsim.sweep_plots import plot_sweep


def make(out: Path) -> list[Path]:
    spec = SweepSpec(axes={"eta": "0:0.2:41", "beta": "log:0.01:100:17"}, fixed={"sigma2": 0.5, "alpha_p": 1.0},
                     t_max=1000.0)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        res = run_sweep(spec, tmp, progress=False)
        png = plot_sweep(res, out / "sweep_eta_beta.png")
        data = {k: np.asarray(res[k]) for k in ("collapsed", "converged", "p_final", "t_1pct", "p_plus")}
    npz = atomic_savez(out / "sweep_eta_beta.npz", eta=np.asarray(spec.coords["eta"]), beta=np.asarray(spec.coords["beta"]),
                       **data)
    return [Path(png), Path(npz)]


if __name__ == "__main__":
    print(make(Path(__file__).resolve().parents[1] / "figures"))
