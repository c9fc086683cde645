"""Initial states for the matrix and per-mode models from an Init config (seeded numpy RNG)."""
from __future__ import annotations

import jax.numpy as jnp
import numpy as np

from linsim.config import Config
from linsim.errors import LinsimError


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


def check_initial(y0: dict, bound: float) -> None:
    """A run must start finite and inside the divergence bound (else it is bad input, not a divergence)."""
    for k, v in y0.items():
        v = np.asarray(v)
        if not np.all(np.isfinite(v)):
            raise LinsimError(f"initial state {k} is not finite")
        if np.any(np.abs(v) > bound):
            raise LinsimError(f"initial state {k} has entries above divergence_bound={bound:g} (init scale too large?)")


def initial_arrays(cfg: Config, y0: dict | None = None) -> dict:
    """The run's starting state as float64 jax arrays: ``y0`` if given, else drawn from ``cfg.init``; checked."""
    y0 = initial_state(cfg) if y0 is None else y0
    check_initial(y0, cfg.solver.divergence_bound)
    return {k: jnp.asarray(v, jnp.float64) for k, v in y0.items()}
