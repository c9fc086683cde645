"""Full-matrix alignment: with weight decay the commutator [F, Wp] and the asymmetry of Wp decay exponentially;
without it both stall and a mode can be left behind (docs/theory_dynamics.md, eigenspace alignment).

X = I, X' = 0.5 I, n = 10, n1 = 6, alpha_p = 1, beta = 0.5, free (gradient-trained) predictor, init scale 0.3,
the same init for eta = 0 and eta = 0.02. Tian, Chen & Ganguli, "Understanding Self-supervised Learning Dynamics
without Contrastive Pairs" (ICML 2021), eigenspace alignment of Wp and F.
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


ETAS = (0.0, 0.02)


def make(out: Path) -> list[Path]:
    data = {}
    fp = ls.fixed_points(0.02, 1.0, 0.5)
    with plt.rc_context(STYLE):
        fig, axes = plt.subplots(1, 4, figsize=(16, 4.2), layout="constrained")
        for eta, ls_, ax_eig in zip(ETAS, ("--", "-"), axes[2:]):
            cfg = ls.Config(model="matrix", n1=6, hyper=ls.Hyper(eta=eta, beta=0.5, alpha_p=1.0),
                            stats=ls.Stats.isotropic(10, 0.5), init=ls.Init(scale=0.3, seed=1),
                            solver=ls.Solver(t_max=300.0, n_save=601))
            tr = ls.simulate(cfg)
            axes[0].semilogy(tr.ts, np.maximum(tr.extras["commutator"], 1e-17), ls_, color="C0", label=f"η = {eta:g}")
            axes[1].semilogy(tr.ts, np.maximum(tr.extras["asymmetry"], 1e-17), ls_, color="C1", label=f"η = {eta:g}")
            eig = np.asarray(tr.extras["wp_eig"])
            colors = plt.cm.viridis(np.linspace(0, 0.9, eig.shape[1]))
            for j in range(eig.shape[1]):
                ax_eig.plot(tr.ts, eig[:, j], color=colors[j], lw=1.2, label=f"eigenvalue {j + 1}")
            if eta > 0:
                ax_eig.axhline(fp.p_plus, color="k", ls=":", lw=1, label=f"p+ = {fp.p_plus:.3f}")
            else:
                ax_eig.axhline(1 / 1.5, color="k", ls=":", lw=1, label="1/(1+σ²) (η = 0 line of fixed points)")
            ax_eig.set(xlabel="t", ylabel="eigenvalues of sym(Wp)",
                       title=f"η = {eta:g}: eigenvalues of (Wp + Wpᵀ)/2\n{int(tr.collapsed.sum())} of 6 modes collapsed")
            ax_eig.legend(frameon=False, fontsize=6.5, loc="upper center", bbox_to_anchor=(0.5, -0.16), ncol=3)
            data.update({f"ts_eta{eta:g}": tr.ts, f"commutator_eta{eta:g}": tr.extras["commutator"],
                         f"asymmetry_eta{eta:g}": tr.extras["asymmetry"], f"wp_eig_eta{eta:g}": eig,
                         f"collapsed_eta{eta:g}": tr.collapsed})
        axes[0].set(xlabel="t", ylabel="‖[F, Wp]‖ / (‖F‖ ‖Wp‖)", title="normalised commutator of F and Wp")
        axes[1].set(xlabel="t", ylabel="‖Wp − Wpᵀ‖ / ‖Wp‖", title="asymmetry of Wp")
        for ax in axes[:2]:
            ax.legend(frameon=False)
        axes[3].sharey(axes[2])
        fig.suptitle("Full-matrix BYOL (n = 10, n1 = 6, σ² = 0.5, β = 0.5, one init): weight decay aligns Wp with F "
                     "and makes it symmetric; without it both stall")
    return save(fig, out, "matrix_alignment", **data)


if __name__ == "__main__":
    print(make(Path(__file__).resolve().parents[1] / "figures"))
