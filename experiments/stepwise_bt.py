"""Linear Barlow Twins learns the top eigendirections of Gamma one at a time from small init.

n = 500 synthetic positive pairs in m = 10 dims (planted variances 4, 2, 1, 0.5, ... halving, random rotation,
independent view noise 0.3), Gamma = ``cross_correlation`` of the pairs; embedding dim d = 4. Gradient flow of
L = ||W Gamma W^T - I||_F^2 (``simulate_bt_flow``, Euler dt = 1e-3) from W(0) with N(0, a^2/m) entries, a = 1e-4.
Left: eigenvalues of C(t) = W Gamma W^T; right: the loss staircase 4 -> 3 -> 2 -> 1 -> 0. Dashed: the exact
aligned-init curves (``embedding_eigenvalues`` / ``loss_staircase``) with s_j(0)^2 = a^2/m; vertical lines: the
predicted half-crossing times ``step_times``. Simon, Knutins, Ziyin, Geisz, Fetterman & Albrecht, "On the
Stepwise Nature of Self-Supervised Learning" (ICML 2023), Fig. 1; theory: docs/spectral.md (stepwise dynamics).
"""
from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

import linsim.spectral as sp  # noqa: E402
from _common import save  # noqa: E402
from linsim.plots import STYLE  # noqa: E402

M, D, N_PAIRS, A, NOISE = 10, 4, 500, 1e-4, 0.3
DT, T_MAX = 1e-3, 8.0


def make(out: Path) -> list[Path]:
    rng = np.random.default_rng(0)
    variances = 4.0 * 0.5 ** np.arange(M)
    R = np.linalg.qr(rng.standard_normal((M, M)))[0]
    x = (rng.standard_normal((N_PAIRS, M)) * np.sqrt(variances)) @ R.T
    xa = x + NOISE * rng.standard_normal(x.shape)
    xb = x + NOISE * rng.standard_normal(x.shape)
    Gamma = sp.cross_correlation(xa, xb)
    gam = np.linalg.eigvalsh(Gamma)[::-1]

    W0 = A / np.sqrt(M) * rng.standard_normal((D, M))
    t, _, lams, loss = sp.simulate_bt_flow(Gamma, W0, dt=DT, t_max=T_MAX, save_every=10)
    s0 = A / np.sqrt(M)
    lam_th = sp.embedding_eigenvalues(gam[:D], s0, t)
    loss_th = sp.loss_staircase(lam_th)
    t_pred = sp.step_times(gam[:D], gam[:D] * s0**2)
    t_meas = np.array([t[np.argmax(lams[:, j] >= 0.5)] if np.any(lams[:, j] >= 0.5) else np.nan for j in range(D)])

    colors = plt.cm.viridis(np.linspace(0.0, 0.85, D))
    with plt.rc_context(STYLE):
        fig, axes = plt.subplots(1, 2, figsize=(13, 4.4), layout="constrained")
        ax = axes[0]
        for j in range(D):
            ax.plot(t, lams[:, j], color=colors[j], lw=2, label=f"λ_{j + 1}(t), γ_{j + 1} = {gam[j]:.2f}")
            ax.plot(t, lam_th[:, j], color=colors[j], ls="--", lw=1.2)
            ax.axvline(t_pred[j], color=colors[j], ls=":", lw=1)
        ax.plot([], [], "k--", lw=1.2, label="aligned-init closed form")
        ax.plot([], [], "k:", lw=1, label="predicted step time t_j")
        ax.set(xlabel="t = lr × step", ylabel="eigenvalue of C(t) = WΓWᵀ", ylim=(-0.03, 1.12),
               title="eigenvalues of C(t) rise to 1 one at a time, in order of γ_j")
        ax.legend(fontsize=8, loc="lower right")

        ax = axes[1]
        ax.plot(t, loss, color="tab:blue", lw=2, label="simulated loss (random init)")
        ax.plot(t, loss_th, "k--", lw=1.2, label="closed form Σ_j (1 − λ_j(t))²")
        for j in range(D):
            ax.axvline(t_pred[j], color=colors[j], ls=":", lw=1)
            ax.annotate(f"t_{j + 1} = {t_pred[j]:.2f}\n(sim {t_meas[j]:.2f})", (t_pred[j], D - j + 0.08),
                        xytext=(4, 0), textcoords="offset points", fontsize=8, va="bottom")
        ax.set(xlabel="t = lr × step", ylabel="loss ‖C − I‖²_F", ylim=(-0.1, D + 0.75), yticks=range(D + 1),
               title="loss staircase 4 → 3 → 2 → 1 → 0")
        ax.legend(fontsize=8, loc="upper right")
        fig.suptitle(f"Stepwise linear Barlow Twins (m = {M}, d = {D}, n = {N_PAIRS} pairs, init scale a = {A:g}): "
                     "predicted step times t_j = ln((1 − λ_j(0))/λ_j(0)) / (8γ_j)")
    return save(fig, out, "stepwise_bt", t=t, eigenvalues=lams, loss=loss, eigenvalues_theory=lam_th,
                loss_theory=loss_th, gammas=gam, step_times_predicted=t_pred, step_times_measured=t_meas)


if __name__ == "__main__":
    print(make(Path(__file__).resolve().parents[1] / "figures"))
