"""Initial states for the matrix and per-mode models from an Init config (seeded numpy RNG)."""
from __future__ import annotations

import numpy as np

from linsim.config import Config


def psd_sqrt(a: np.ndarray) -> np.ndarray:
    """Symmetric square root of a PSD matrix (eigenvalues clipped at 0 against rounding)."""
    lam, U = np.linalg.eigh((a + a.T) / 2)
    return (U * np.sqrt(np.clip(lam, 0, None))) @ U.T


def initial_state(cfg: Config) -> dict[str, np.ndarray]:
    """Draw the initial state; balanced init sets Wp = sqrt(alpha_p) (W W^T)^{1/2} so C = 0 (sec 9)."""
    rng = np.random.default_rng(cfg.init.seed)
    a = cfg.init.scale
    alpha_p = cfg.hyper.alpha_p
    if cfg.model == "modes":
        m = cfg.stats.n
        p = a * rng.standard_normal(m)
        w = a * np.abs(rng.standard_normal(m))
        if cfg.init.balanced:
            p = np.sqrt(alpha_p) * w
        wa = a * np.abs(rng.standard_normal(m)) if cfg.init.target == "independent" else w.copy()
        if cfg.hyper.simsiam:  # SimSiam has no separate target: Wa is W
            wa = w.copy()
        if cfg.hyper.predictor == "identity":
            p = np.ones(m)
        return {"p": p, "w": w, "wa": wa}
    n, n1 = cfg.stats.n, cfg.out_dim
    W = a * rng.standard_normal((n1, n)) / np.sqrt(n)
    Wp = a * rng.standard_normal((n1, n1)) / np.sqrt(n1)
    if cfg.init.balanced:
        Wp = np.sqrt(alpha_p) * psd_sqrt(W @ W.T)
    if cfg.hyper.predictor == "symmetric":
        Wp = (Wp + Wp.T) / 2
    if cfg.hyper.predictor == "identity":
        Wp = np.eye(n1)
    Wa = a * rng.standard_normal((n1, n)) / np.sqrt(n) if cfg.init.target == "independent" else W.copy()
    if cfg.hyper.simsiam:  # SimSiam has no separate target: Wa is W
        Wa = W.copy()
    return {"W": W, "Wp": Wp, "Wa": Wa}
