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


# initial conditions of the collapse phase diagrams: 10 x 8 points (p0, s0) in [-0.5, 1] x [0.01, 0.5]
IC_P0 = np.linspace(-0.5, 1.0, 10)
IC_S0 = np.linspace(0.01, 0.5, 8)


def collapse_sweep(axes: dict, fixed: dict, t_max: float = 3000.0) -> dict:
    """Sweep ``axes`` (two hyperparameters) x the IC_P0 x IC_S0 initial conditions with ``linsim.sweep``;
    returns the fractions of initial conditions that collapsed / converged to p+ / neither by t_max, and the
    median time to 1% of p+ over converged ones, each of the two hyperparameter axes' shape."""
    import tempfile

    from linsim.sweep import SweepSpec, run_sweep

    spec = SweepSpec(axes={**{k: list(map(float, v)) for k, v in axes.items()}, "p0": IC_P0.tolist(), "s0": IC_S0.tolist()},
                     fixed=fixed, t_max=t_max)
    with tempfile.TemporaryDirectory() as tmp:
        res = run_sweep(spec, tmp, progress=False)
        collapsed = np.asarray(res["collapsed"], bool)
        converged = np.asarray(res["converged"], bool)
        t1 = np.asarray(res["t_1pct"], float)
    t_conv = np.where(converged, t1, np.nan)
    with np.errstate(all="ignore"):
        import warnings

        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            median_t = np.nanmedian(t_conv.reshape(*t_conv.shape[:2], -1), axis=-1)
    return {"collapsed": collapsed, "converged": converged, "frac_collapsed": collapsed.mean((2, 3)),
            "frac_converged": converged.mean((2, 3)), "frac_undecided": (~collapsed & ~converged).mean((2, 3)),
            "median_t_1pct": median_t}


def analytic_fraction(eta: float, alpha_p: float, sigma2: float) -> float:
    """Fraction of the IC grid inside the tau = 1 collapse basin (``linsim.dynamics.modes.in_collapse_basin``)."""
    from linsim.dynamics.modes import in_collapse_basin

    P, S = np.meshgrid(IC_P0, IC_S0, indexing="ij")
    return float(in_collapse_basin(P, S, eta, alpha_p, sigma2).mean())
