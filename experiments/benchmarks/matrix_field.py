"""Benchmark: one full-matrix vector-field evaluation vs the bare matrix products it needs.

linsim's jit-compiled ``matrix_field`` (BYOL variant, general PSD X and X', float64, n = n1 = 256) against
numpy doing only the six n x n products the field needs (W X, W X', Wp W(X+X'), Wa X, Wp^T G, G W^T) with
no elementwise work. Ratio = linsim / numpy; the target is <= 2.

Run: ``python experiments/benchmarks/matrix_field.py [--n 256] [--repeats 200]``.
Result (2-core x86_64 CI-class machine, 2026-11-25, linsim 0.1.0): see the README's benchmark table.
"""
from __future__ import annotations

import argparse
import time

import jax
import jax.numpy as jnp
import numpy as np

import linsim  # noqa: F401  (float64)
from linsim.dynamics.matrix import matrix_field


def _best(fn, repeats: int) -> float:
    fn()  # warm-up (compilation for jax)
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return float(np.median(times))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=256)
    ap.add_argument("--repeats", type=int, default=200)
    a = ap.parse_args()
    n = a.n
    rng = np.random.default_rng(0)
    A = rng.standard_normal((n, n))
    X = A @ A.T / n
    B = rng.standard_normal((n, n))
    Xp = 0.5 * B @ B.T / n
    W, Wp, Wa = (rng.standard_normal((n, n)) / np.sqrt(n) for _ in range(3))

    state = {k: jnp.asarray(v) for k, v in dict(W=W, Wp=Wp, Wa=Wa).items()}
    args = {k: jnp.asarray(v) for k, v in dict(eta=0.01, eta_p=0.01, beta=0.5, alpha_p=1.0, X=X, Xp=Xp).items()}
    f = jax.jit(matrix_field)

    def run_linsim():
        jax.block_until_ready(f(0.0, state, args))

    def run_numpy():
        WX = W @ X
        WXX = WX + W @ Xp
        G = -(Wp @ WXX) + Wa @ X
        Wp.T @ G
        G @ W.T

    t_l = _best(run_linsim, a.repeats)
    t_n = _best(run_numpy, a.repeats)
    print(f"n = n1 = {n}, float64, median of {a.repeats}")
    print(f"linsim matrix_field (jit): {t_l * 1e3:8.3f} ms")
    print(f"numpy bare 6 matmuls     : {t_n * 1e3:8.3f} ms")
    print(f"ratio linsim / numpy     : {t_l / t_n:8.3f}  (target <= 2)")


if __name__ == "__main__":
    main()
