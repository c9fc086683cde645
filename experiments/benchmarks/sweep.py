"""Benchmark: a 100 x 100 (eta, beta) phase sweep of the per-mode system vs a scipy solve_ivp loop.

Grid: eta in linspace(0, 0.2, 100), beta in geomspace(0.01, 100, 100); sigma2 0.5, alpha_p 1, (p0, s0) =
(0.1, 0.1), t = 100, rtol 1e-8, atol 1e-12, both with an explicit 5(4) Runge-Kutta pair (linsim: diffrax Tsit5
via ``linsim.sweep.run_sweep``; scipy: ``solve_ivp(method="RK45")``, Dormand-Prince), both saving 1001 times.
The scipy loop is timed on a random subset of points and scaled to the full grid. Side by side in one run.

Result (2026-11-25, 2 CPU cores of a container shared with other jobs, jax 0.10.2 / diffrax 0.7.2; two runs,
the spread is load from the other jobs):
    linsim sweep, 10,000 points, 4 chunks of 2793:  warm 1.25-2.05 s; cold 3.3-8.2 s (incl. 2-6 s compilation)
    scipy solve_ivp RK45 loop (30 / 100 random points): 25-26 ms/point -> 254-261 s for 10,000 (scaled)
    ratio (scipy / linsim):  127-203x warm (target >= 100x); 32-76x cold, i.e. counting the one-off compilation
    max |p_final(linsim) - p_final(scipy)| on the subset: 6e-9
Chunk size (warm): 625 -> 1.64 s, 1250 -> 1.33 s, 2793 (default) -> 1.25 s, 10000 (one chunk) -> 10.3 s.
The speed comes from solving each chunk as one vector of modes with a max-norm step control and from
ordering the grid by beta (stiffness) before chunking; see linsim/sweep.py. Rerun:
    python experiments/benchmarks/sweep.py [--subset 100] [--chunk-size N]
"""
from __future__ import annotations

import argparse
import math
import tempfile
import time

import numpy as np
from scipy.integrate import solve_ivp

from linsim.sweep import SweepSpec, run_sweep

ETA = np.linspace(0.0, 0.2, 100)
BETA = np.geomspace(0.01, 100.0, 100)
SIGMA2, ALPHA_P, P0, S0, T, RTOL, ATOL, N_SAVE = 0.5, 1.0, 0.1, 0.1, 100.0, 1e-8, 1e-12, 1001


def rhs(t, y, eta, beta):
    """Section 3.2 per-mode field with x = 1, x' = sigma2, eta_p = eta (plain floats: the fastest scipy form)."""
    p, w, wa = y
    e = wa - (1.0 + SIGMA2) * p * w
    return [ALPHA_P * w * e - eta * p, p * e - eta * w, beta * (w - wa)]


def scipy_point(eta: float, beta: float, ts: np.ndarray) -> np.ndarray:
    w0 = math.sqrt(S0)
    sol = solve_ivp(rhs, (0.0, T), [P0, w0, w0], method="RK45", t_eval=ts, rtol=RTOL, atol=ATOL, args=(eta, beta))
    return sol.y[:, -1]


def spec() -> SweepSpec:
    return SweepSpec(axes={"eta": ETA, "beta": BETA}, fixed={"sigma2": SIGMA2, "alpha_p": ALPHA_P, "p0": P0, "s0": S0},
                     t_max=T, n_save=N_SAVE, rtol=RTOL, atol=ATOL, method="tsit5")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--subset", type=int, default=100, help="scipy points to time (scaled to the grid)")
    ap.add_argument("--chunk-size", type=int, default=None)
    a = ap.parse_args()
    sp = spec()
    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        r = run_sweep(sp, f"{tmp}/cold", chunk_size=a.chunk_size, progress=False)
        cold = time.perf_counter() - t0
        t0 = time.perf_counter()
        run_sweep(sp, f"{tmp}/warm", chunk_size=a.chunk_size, progress=False)
        warm = time.perf_counter() - t0
    rng = np.random.default_rng(0)
    pick = rng.choice(sp.size, size=a.subset, replace=False)
    ts = sp.ts()
    t0 = time.perf_counter()
    finals = [scipy_point(ETA[i // 100], BETA[i % 100], ts) for i in pick]
    per_point = (time.perf_counter() - t0) / a.subset
    scipy_total = per_point * sp.size
    p_lin = r["p_final"].ravel()[pick]
    err = np.max(np.abs(np.array([f[0] for f in finals]) - p_lin))
    print(f"grid {sp.shape[0]} x {sp.shape[1]} (eta, beta), t = {T:g}, rtol {RTOL:g}, {r.info['n_chunks']} chunks "
          f"of {r.info['chunk_size']}")
    print(f"linsim sweep:   cold {cold:.2f} s (incl. compilation), warm {warm:.2f} s")
    print(f"scipy RK45:     {per_point * 1e3:.1f} ms/point on {a.subset} points -> {scipy_total:.0f} s for {sp.size}")
    print(f"ratio:          {scipy_total / cold:.0f}x cold, {scipy_total / warm:.0f}x warm (target >= 100x)")
    print(f"max |p_final(linsim) - p_final(scipy)| on the subset: {err:.2e}")


if __name__ == "__main__":
    main()
