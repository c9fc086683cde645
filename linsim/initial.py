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
    """Draw the initial state; balanced init sets Wp = sqrt(alpha_p) (W W^T)^{1/2} so C = 0 (docs/theory_dynamics.md, invariants)."""
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


def state_shapes(cfg: Config) -> dict[str, tuple[int, ...]]:
    """The state a run of ``cfg`` integrates: per-mode {p, w, wa} of shape (n,), or matrix W (n1, n),
    Wp (n1, n1), Wa (n1, n)."""
    n, n1 = cfg.stats.n, cfg.out_dim
    if cfg.model == "modes":
        return {"p": (n,), "w": (n,), "wa": (n,)}
    return {"W": (n1, n), "Wp": (n1, n1), "Wa": (n1, n)}


def check_y0(cfg: Config, y0) -> dict[str, np.ndarray]:
    """An explicit initial state as float64 numpy arrays, or one LinsimError naming the key and the expected
    shape (missing, unknown, wrongly shaped or non-numeric entries). The target (``wa``/``Wa``) may be left
    out for SimSiam (beta = inf), where it is W itself."""
    shapes = state_shapes(cfg)
    expected = ", ".join(f"{k} {v}" for k, v in shapes.items())
    where = f"the {cfg.model} model" + (f" (n1={cfg.out_dim}, n={cfg.stats.n})" if cfg.model == "matrix" else f" ({cfg.stats.n} modes)")
    if not hasattr(y0, "keys"):
        raise LinsimError(f"y0 must be a dict of arrays {expected} for {where}, got {type(y0).__name__}")
    target, online = ("wa", "w") if cfg.model == "modes" else ("Wa", "W")
    extra = sorted(str(k) for k in y0.keys() if k not in shapes)
    if extra:
        raise LinsimError(f"y0 has an unknown key {extra[0]!r}; the state of {where} is {expected}")
    out: dict[str, np.ndarray] = {}
    for k, shape in shapes.items():
        if k not in y0:
            if k == target and cfg.hyper.simsiam and online in y0:
                continue
            raise LinsimError(f"y0 is missing {k!r} (expected shape {shape} for {where})")
        try:
            a = np.asarray(y0[k], dtype=np.float64)
        except (TypeError, ValueError):
            raise LinsimError(f"y0[{k!r}] must hold real numbers of shape {shape}") from None
        if np.iscomplexobj(y0[k]):
            raise LinsimError(f"y0[{k!r}] must be real, got complex values")
        if a.shape != shape:
            hint = " (transposed?)" if a.shape == shape[::-1] and a.ndim == 2 else ""
            raise LinsimError(f"y0[{k!r}] has shape {a.shape}, expected {shape} for {where}{hint}")
        out[k] = a
    if target not in out:
        out[target] = out[online].copy()
    return out


def initial_arrays(cfg: Config, y0: dict | None = None) -> dict:
    """The run's starting state as float64 jax arrays: ``y0`` if given (checked by :func:`check_y0`), else
    drawn from ``cfg.init``; refused if not finite or if the run would not fit in memory
    (:func:`linsim.limits.check_simulation`). Every simulator calls this before allocating anything large."""
    from linsim.limits import check_simulation

    check_simulation(cfg)
    y0 = initial_state(cfg) if y0 is None else check_y0(cfg, y0)
    check_initial(y0, cfg.solver.divergence_bound)
    return {k: jnp.asarray(v, jnp.float64) for k, v in y0.items()}
