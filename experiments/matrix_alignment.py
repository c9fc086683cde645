"""Figure 5: full-matrix alignment. The commutator [F, Wp] and the asymmetry of Wp decay when eta > 0;
with eta = 0 the asymmetry persists and some modes collapse (sec 2.6, theory note check [D]).

X = I, X' = 0.5 I, n = 10, n1 = 6, alpha_p = 1, beta = 0.5, free (gradient) predictor, init scale 0.3.
"""
from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

import linsim as ls  # noqa: E402
from _common import save  # noqa: E402
from linsim.plots import STYLE  # noqa: E402


def make(out: Path) -> list[Path]:
    data = {}
    with plt.rc_context(STYLE):
        fig, axes = plt.subplots(1, 3, figsize=(13, 3.8), layout="constrained")
        for eta, ls_ in ((0.0, "--"), (0.02, "-")):
            cfg = ls.Config(model="matrix", n1=6, hyper=ls.Hyper(eta=eta, beta=0.5, alpha_p=1.0),
                            stats=ls.Stats.isotropic(10, 0.5), init=ls.Init(scale=0.3, seed=1),
                            solver=ls.Solver(t_max=300.0, n_save=601))
            tr = ls.simulate(cfg)
            axes[0].semilogy(tr.ts, np.maximum(tr.extras["commutator"], 1e-17), ls_, color="C0", label=f"η = {eta:g}")
            axes[1].semilogy(tr.ts, np.maximum(tr.extras["asymmetry"], 1e-17), ls_, color="C1", label=f"η = {eta:g}")
            axes[2].plot(tr.ts, tr.extras["wp_eig"], ls_, lw=1)
            data.update({f"ts_eta{eta:g}": tr.ts, f"commutator_eta{eta:g}": tr.extras["commutator"],
                         f"asymmetry_eta{eta:g}": tr.extras["asymmetry"], f"wp_eig_eta{eta:g}": tr.extras["wp_eig"]})
        fp = ls.fixed_points(0.02, 1.0, 0.5)
        axes[2].axhline(fp.p_plus, color="k", ls=":", lw=1)
        axes[0].set(xlabel="t", title="‖[F, Wp]‖ / (‖F‖‖Wp‖)")
        axes[1].set(xlabel="t", title="‖Wp − Wpᵀ‖ / ‖Wp‖")
        axes[2].set(xlabel="t", title=f"eig sym(Wp): solid η = 0.02, dashed η = 0; dotted p+ = {fp.p_plus:.3f}")
        for ax in axes[:2]:
            ax.legend(frameon=False)
        fig.suptitle("Full-matrix BYOL (n = 10, n1 = 6, β = 0.5): weight decay aligns Wp with F and makes it symmetric")
    return save(fig, out, "matrix_alignment", **data)


if __name__ == "__main__":
    print(make(Path(__file__).resolve().parents[1] / "figures"))
