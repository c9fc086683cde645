"""Benchmark: steps/s of linsim's finite-batch SGD simulator against a plain numpy loop doing the same maths.

Setting: matrix model, n = n1 = 128, B = 256, X = I, X' = 0.5 I (sampled through the general matrix square
roots, as the library does), float64, un-normalised loss, one seed, lr alpha = 0.01, EMA beta = 0.5.
One step, both sides: sample x, e1, e2 (3 x (B, n) normals, 3 matmuls by X^1/2, X'^1/2), forward
f1 = x1 W^T, y1 = f1 Wp^T, z2 = x2 Wa^T, gradients (numpy: by hand, r = y1 - z2, dWp = r^T f1 / B,
dW = (r Wp)^T x1 / B; linsim: jax.grad), weight decay, the two SGD steps and the target EMA.
linsim runs ``simulate_sgd`` (jit + lax.scan, compiled once before timing).

Usage: python experiments/benchmarks/sgd.py [--steps 300]

Result (2026-11-25, the project's 2-CPU-core container shared with other jobs, numpy + OpenBLAS, jax 0.10.2
CPU, float64; three runs, 300 steps at n = 128 and 6000 at n = 8):
    n = n1 = 128, B = 256: linsim 265-367 steps/s, numpy 307-482 steps/s, ratio 0.55-0.77x
    n = n1 =   8, B =  32: linsim ~29,700 steps/s,  numpy ~32,000 steps/s,  ratio 0.8-0.9x
The design target (>= 10x numpy) is NOT met. At n = 128 a step is ~16 (B x 128 x 128) float64 GEMMs plus
3 x 32768 normals: both sides are bound by those, not by Python, and on this CPU XLA's float64 GEMM is ~1.5x
slower than OpenBLAS (3.1 vs 2.0 ms for the same 16 GEMMs) and threefry ~1.6x slower than numpy's PCG64
(1.5 vs 1.0 ms); lax.scan unrolling and the rbg PRNG did not help. At n = 8 XLA's per-op cost inside the
scan (~30 us/step) matches numpy's interpreter overhead. linsim's gains are elsewhere: vmap over seeds,
jax.grad for every loss variant, and the same code on an accelerator (not measured here).
"""
from __future__ import annotations

import argparse
import time

import numpy as np

import linsim  # noqa: F401  (float64 JAX)
from linsim.config import Config, Hyper, Init, Noise, Solver, Stats
from linsim.dynamics.stochastic import simulate_sgd
from linsim.initial import initial_state

ALPHA, BETA, ETA, ALPHA_P, SIGMA2 = 0.01, 0.5, 0.04, 1.0, 0.5


def config(steps: int, N: int, B: int) -> Config:
    return Config(
        model="matrix", n1=N, hyper=Hyper(eta=ETA, beta=BETA, alpha_p=ALPHA_P), stats=Stats.isotropic(N, SIGMA2),
        init=Init(scale=1.0, seed=0), solver=Solver(t_max=steps * ALPHA, dt=ALPHA, method="euler", n_save=2),
        noise=Noise(kind="sgd", batch=B, seeds=1),
    )


def numpy_sgd(cfg: Config, steps: int) -> np.ndarray:
    """The same SGD in a plain numpy loop (hand-written gradients)."""
    N, B = cfg.stats.n, cfg.noise.batch
    rng = np.random.default_rng(0)
    y = initial_state(cfg)
    W, Wp, Wa = y["W"], y["Wp"], y["Wa"]

    def sqrtm(a):
        lam, U = np.linalg.eigh(a)
        return (U * np.sqrt(np.clip(lam, 0, None))) @ U.T

    Xh, Xph = sqrtm(cfg.stats.X), sqrtm(cfg.stats.Xp)
    for _ in range(steps):
        x = rng.standard_normal((B, N)) @ Xh
        x1 = x + rng.standard_normal((B, N)) @ Xph
        x2 = x + rng.standard_normal((B, N)) @ Xph
        f1 = x1 @ W.T
        r = f1 @ Wp.T - x2 @ Wa.T
        gWp = r.T @ f1 / B
        gW = (r @ Wp).T @ x1 / B
        W = W - ALPHA * (gW + ETA * W)
        Wp = Wp - ALPHA * (ALPHA_P * gWp + ETA * Wp)
        Wa = Wa + ALPHA * BETA * (W - Wa)
    return W


def bench(N: int, B: int, steps: int) -> tuple[float, float]:
    cfg = config(steps, N, B)
    simulate_sgd(cfg)  # compile
    t = time.perf_counter()
    e = simulate_sgd(cfg)
    t_jax = time.perf_counter() - t
    assert np.all(np.isfinite(e.states["W"]))
    numpy_sgd(cfg, 5)  # warm BLAS
    t = time.perf_counter()
    numpy_sgd(cfg, steps)
    t_np = time.perf_counter() - t
    return steps / t_jax, steps / t_np


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=300)
    steps = ap.parse_args().steps
    print("SGD steps/s, float64, one seed (linsim: jit + lax.scan; numpy: plain loop, same maths)")
    for N, B, k in ((128, 256, 1), (8, 32, 20)):  # the target setting, then a small one (overhead-bound)
        r_jax, r_np = bench(N, B, steps * k)
        print(f"  n = n1 = {N:3d}, B = {B:3d}: linsim {r_jax:10.1f}  numpy {r_np:10.1f}  ratio {r_jax / r_np:6.2f}x")


if __name__ == "__main__":
    main()
