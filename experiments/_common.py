"""Helpers shared by the figure recipes (imported by experiments/*.py, not part of the package API)."""
from __future__ import annotations

from pathlib import Path

import numpy as np

import linsim as ls
from linsim.io import atomic_savefig, atomic_savez


def grid_modes(p0, s0, *, eta, alpha_p=1.0, sigma2=0.5, beta=float("inf"), t_max=400.0, n_save=201, rtol=1e-8,
               ts=None):
    """Integrate one per-mode system per (p0, s0) pair at once: the modes model is elementwise, so a grid
    of initial conditions is just a vector of modes with identical statistics. ``ts``: save times (default
    n_save evenly spaced; pass ``log_times`` for curves that must follow fast early motion)."""
    p0, s0 = np.ravel(p0), np.ravel(s0)
    m = p0.size
    cfg = ls.Config(
        hyper=ls.Hyper(eta=eta, beta=beta, alpha_p=alpha_p),
        stats=ls.Stats.diagonal(np.ones(m), sigma2 * np.ones(m)),
        solver=ls.Solver(t_max=t_max, n_save=n_save, rtol=rtol, atol=1e-12),
    )
    w0 = np.sqrt(s0)
    return ls.simulate(cfg, ts=ts, y0={"p": p0, "w": w0, "wa": w0.copy()})


def log_times(t_max: float, n: int = 1500, t_min: float = 1e-3) -> np.ndarray:
    """Save times 0, then n log-spaced from t_min to t_max: dense where the flow is fast (drawn curves, not chords)."""
    return np.concatenate([[0.0], np.geomspace(t_min, t_max, n)])


def save(fig, out: Path, name: str, **data) -> list[Path]:
    """Write figures/<name>.png and figures/<name>.npz (the data behind it), atomically."""
    out.mkdir(parents=True, exist_ok=True)
    paths = [atomic_savefig(fig, out / f"{name}.png", dpi=130)]
    if data:
        paths.append(atomic_savez(out / f"{name}.npz", **{k: np.asarray(v) for k, v in data.items()}))
    import matplotlib.pyplot as plt

    plt.close(fig)
    return paths
