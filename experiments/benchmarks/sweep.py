"""Benchmark: a 100 x 100 (eta, beta) sweep of the per-mode model vs a vmapped fixed-step RK4 and a scipy
LSODA loop, at equal accuracy, sides interleaved.

Grid: eta in linspace(0, 0.2, 100), beta in geomspace(0.01, 100, 100); sigma2 0.5, alpha_p 1, (p0, s0) =
(0.1, 0.1), t = 100. Error of a method: max over points of |p(T) - p_ref(T)| and |s(T) - s_ref(T)|, against a
reference this script computes (diffrax Dopri8, rtol 1e-12, atol 1e-14, one max-norm solve of all points;
kept in the system's temp folder for reruns, ``--fresh-reference`` recomputes it).

Sides, each giving the final state of every point:
  linsim   ``run_sweep`` (files written, all quantities) at ``--rtol`` (atol 1e-12), warm;
  RK4      a jitted, vmapped fixed-step RK4 (final state only): the largest step of a ladder whose error is
           <= linsim's (beta = 100 makes dt > 2.78/100 unstable, so RK4 cannot go cheaper than ~3600 steps);
  LSODA    ``scipy.integrate.solve_ivp(method="LSODA")`` loop (final state only) on ``--subset`` random points,
           scaled to the grid: the loosest rtol of a ladder whose error on the subset is <= linsim's error on
           the whole grid (a subset's max error is at most the grid's, so this favours LSODA).
Rounds interleave the sides (linsim, RK4, LSODA, ...); the script prints per-trajectory wall and CPU times
(medians over rounds), the ratios of the medians, the max errors, the thread counts and the load average.
linsim runs its chunks in one thread per available core; XLA's RK4 and scipy run as they do by default.

Result: see docs/benchmarks.md (the last measured numbers). Rerun:
    python experiments/benchmarks/sweep.py [--rtol 1e-10] [--rounds 3] [--subset 40]
"""
from __future__ import annotations

import argparse
import math
import os
import platform
import tempfile
import time

import jax
import jax.numpy as jnp
import numpy as np
from scipy.integrate import solve_ivp

import linsim
from linsim.dynamics.modes import modes_field
from linsim.dynamics.variant import Variant
from linsim.host import cores
from linsim.sweep import SweepSpec, parallel_chunks, run_sweep

ETA = np.linspace(0.0, 0.2, 100)
BETA = np.geomspace(0.01, 100.0, 100)
SIGMA2, ALPHA_P, P0, S0, T = 0.5, 1.0, 0.1, 0.1, 100.0
RK4_STEPS = (3700, 4000, 5000, 6000, 8000, 12000, 16000, 24000)
LSODA_RTOLS = (1e-7, 3e-8, 1e-8, 3e-9, 1e-9, 3e-10, 1e-10, 3e-11, 1e-11, 1e-12)


def grid() -> tuple[np.ndarray, np.ndarray]:
    e, b = np.meshgrid(ETA, BETA, indexing="ij")
    return e.ravel(), b.ravel()


def args_of(eta: np.ndarray, beta: np.ndarray) -> dict:
    n = eta.size
    return {"eta": jnp.asarray(eta), "eta_p": jnp.asarray(eta), "beta": jnp.asarray(beta),
            "alpha_p": jnp.full(n, ALPHA_P), "x": jnp.ones(n), "xp": jnp.full(n, SIGMA2)}


def y0_of(n: int) -> dict:
    w0 = math.sqrt(S0)
    return {"p": jnp.full(n, P0), "w": jnp.full(n, w0), "wa": jnp.full(n, w0)}


def reference(eta, beta) -> tuple[np.ndarray, np.ndarray]:
    """(p(T), s(T)) by diffrax Dopri8 at rtol 1e-12, atol 1e-14 (all points one vector, max-norm control)."""
    import diffrax as dfx
    import optimistix as optx

    term = dfx.ODETerm(lambda t, y, a: modes_field(t, y, a, Variant()))
    sol = jax.jit(lambda y, a: dfx.diffeqsolve(
        term, dfx.Dopri8(), 0.0, T, 1e-3, y, a, saveat=dfx.SaveAt(t1=True), max_steps=1_000_000,
        stepsize_controller=dfx.PIDController(rtol=1e-12, atol=1e-14, norm=optx.max_norm)).ys)(
        y0_of(eta.size), args_of(eta, beta))
    return np.asarray(sol["p"][-1]), np.asarray(sol["w"][-1]) ** 2


def rk4_solver(n_steps: int):
    """Jitted vmapped classical RK4 with n_steps fixed steps to T; returns the final (p, s)."""
    dt = T / n_steps

    @jax.jit
    def run(y, a):
        f = lambda y: modes_field(0.0, y, a, Variant())  # noqa: E731
        axpy = lambda y, k, c: jax.tree_util.tree_map(lambda u, v: u + c * v, y, k)  # noqa: E731

        def body(_, y):
            k1 = f(y)
            k2 = f(axpy(y, k1, dt / 2))
            k3 = f(axpy(y, k2, dt / 2))
            k4 = f(axpy(y, k3, dt))
            return jax.tree_util.tree_map(lambda u, a1, a2, a3, a4: u + dt / 6 * (a1 + 2 * a2 + 2 * a3 + a4),
                                          y, k1, k2, k3, k4)

        y = jax.lax.fori_loop(0, n_steps, body, y)
        return y["p"], y["w"] ** 2

    return run


def lsoda_point(eta: float, beta: float, rtol: float) -> tuple[float, float]:
    def rhs(t, y):
        p, w, wa = y
        e = wa - (1.0 + SIGMA2) * p * w
        return [ALPHA_P * w * e - eta * p, p * e - eta * w, beta * (w - wa)]

    w0 = math.sqrt(S0)
    sol = solve_ivp(rhs, (0.0, T), [P0, w0, w0], method="LSODA", rtol=rtol, atol=rtol * 1e-2, t_eval=[T])
    return sol.y[0, -1], sol.y[1, -1] ** 2


def err(p, s, ref) -> float:
    return float(max(np.max(np.abs(p - ref[0])), np.max(np.abs(s - ref[1]))))


def timed(fn):
    w, c = time.perf_counter(), time.process_time()
    out = fn()
    return out, time.perf_counter() - w, time.process_time() - c


def spec(rtol: float) -> SweepSpec:
    return SweepSpec(axes={"eta": ETA, "beta": BETA}, fixed={"sigma2": SIGMA2, "alpha_p": ALPHA_P, "p0": P0, "s0": S0},
                     t_max=T, rtol=rtol, atol=1e-12)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rtol", type=float, default=1e-10, help="linsim's rtol")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--subset", type=int, default=40, help="LSODA points per round (scaled to the grid)")
    ap.add_argument("--fresh-reference", action="store_true", help="recompute the cached reference solution")
    a = ap.parse_args()
    eta, beta = grid()
    n = eta.size
    print(f"host: {platform.processor() or platform.machine()}, {cores()} cores available, "
          f"load average {os.getloadavg()[0]:.1f}; jax {jax.__version__} ({len(jax.local_devices())} device), "
          f"linsim {linsim.__version__}; linsim chunk threads: {parallel_chunks(spec(a.rtol))}")
    t0 = time.perf_counter()
    cache = os.path.join(tempfile.gettempdir(), "linsim-bench-sweep-reference.npz")  # same grid: reuse
    if a.fresh_reference or not os.path.exists(cache):
        ref = reference(eta, beta)
        np.savez(cache, p=ref[0], s=ref[1])
    with np.load(cache) as z:
        ref = (z["p"], z["s"])
    print(f"reference (Dopri8, rtol 1e-12): {time.perf_counter() - t0:.1f} s ({cache})")
    sp = spec(a.rtol)
    tmp = tempfile.TemporaryDirectory()
    k = iter(range(10**6))
    run = lambda: run_sweep(sp, f"{tmp.name}/{next(k)}", progress=False)  # noqa: E731
    r, cold, _ = timed(run)
    e_lin = err(r["p_final"].ravel(), r["s_final"].ravel(), ref)
    steps = r["steps"].ravel()
    print(f"linsim: cold run {cold:.2f} s (incl. compilation); max error {e_lin:.2e}; steps per point mean "
          f"{steps.mean():.0f}, max {steps.max()}; {r.info['n_chunks']} chunks of {r.info['points_per_chunk']} points")
    y0, args = y0_of(n), args_of(eta, beta)
    rk4 = None
    for ns in RK4_STEPS:  # the cheapest RK4 at least as accurate as linsim
        f = rk4_solver(ns)
        e = err(*[np.asarray(v) for v in f(y0, args)], ref)
        if np.isfinite(e) and e <= e_lin:
            rk4, e_rk4, n_rk4 = f, e, ns
            break
    if rk4 is None:
        rk4, e_rk4, n_rk4 = f, e, ns
        print(f"RK4: no step count up to {ns} reaches linsim's error; using {ns}")
    rng = np.random.default_rng(0)
    pick = rng.choice(n, size=a.subset, replace=False)
    rt_l = LSODA_RTOLS[-1]
    for rt in LSODA_RTOLS:  # the loosest LSODA at least as accurate (on the subset) as linsim on the grid
        fin = np.array([lsoda_point(eta[i], beta[i], rt) for i in pick])
        e_ls = err(fin[:, 0], fin[:, 1], (ref[0][pick], ref[1][pick]))
        if e_ls <= e_lin:
            rt_l = rt
            break
    print(f"RK4: {n_rk4} steps (dt = {T / n_rk4:.4g}), max error {e_rk4:.2e};  LSODA: rtol {rt_l:g} (atol rtol/100), "
          f"max error on the subset {e_ls:.2e}")
    times = {"linsim": [], "rk4": [], "lsoda": []}
    for rnd in range(a.rounds):
        _, w, c = timed(run)
        times["linsim"].append((w / n, c / n))
        _, w, c = timed(lambda: jax.block_until_ready(rk4(y0, args)))
        times["rk4"].append((w / n, c / n))
        sub = rng.choice(n, size=a.subset, replace=False)
        _, w, c = timed(lambda: [lsoda_point(eta[i], beta[i], rt_l) for i in sub])
        times["lsoda"].append((w / a.subset, c / a.subset))
        print(f"round {rnd + 1}: " + ", ".join(f"{k} {1e6 * v[-1][0]:.1f} us" for k, v in times.items())
              + f" per trajectory (wall); load {os.getloadavg()[0]:.1f}")
    med = {k: np.median(np.array(v), axis=0) for k, v in times.items()}
    tmp.cleanup()
    print("\nper trajectory (median over rounds)      wall        CPU    max error")
    for name, e in (("linsim run_sweep", e_lin), (f"RK4 vmapped, {n_rk4} steps", e_rk4), (f"LSODA loop, rtol {rt_l:g}", e_ls)):
        key = name.split()[0].lower()
        print(f"  {name:34s} {1e6 * med[key][0]:9.1f} us {1e6 * med[key][1]:9.1f} us   {e:.2e}")
    print(f"ratio linsim / RK4 (goal <= 1.5):   {med['linsim'][0] / med['rk4'][0]:.2f} wall, "
          f"{med['linsim'][1] / med['rk4'][1]:.2f} CPU")
    print(f"ratio LSODA / linsim (goal >= 150): {med['lsoda'][0] / med['linsim'][0]:.0f} wall, "
          f"{med['lsoda'][1] / med['linsim'][1]:.0f} CPU")


if __name__ == "__main__":
    main()
