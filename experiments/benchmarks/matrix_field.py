"""Benchmark: one full-matrix vector-field evaluation vs the bare matrix products it needs, sides interleaved.

linsim's jit-compiled ``matrix_field`` (BYOL variant, float64, n = n1 = 256) in its two lean forms
(``linsim.dynamics.matrix.field_args``):
  general   X, X' PSD matrices with X + X' precomputed: 5 products (W(X+X'), Wp[.], Wa X, Wp^T G, G W^T);
  diagonal  X, X' diagonal, passed as vectors: 3 products (Wp[.], Wp^T G, G W^T) and column scalings;
each against numpy doing only those products (no elementwise work). Rounds alternate linsim and numpy; the
script prints the medians, the ratios linsim / numpy (target <= 1.5), the thread counts and the load.
On a loaded machine multi-threaded BLAS timings swing by 10-40x; ``--single-thread`` compares one thread each.

Run: ``python experiments/benchmarks/matrix_field.py [--n 256] [--repeats 50] [--rounds 5]``.
Result: see docs/benchmarks.md (the last measured numbers).
"""
from __future__ import annotations

import argparse
import os
import sys
import time

if "--single-thread" in sys.argv:  # before jax is imported: XLA's Eigen GEMMs on one thread
    os.environ["XLA_FLAGS"] = (os.environ.get("XLA_FLAGS", "") + " --xla_cpu_multi_thread_eigen=false"
                               " intra_op_parallelism_threads=1").strip()

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402

import linsim  # noqa: E402,F401  (float64)
from linsim.dynamics.matrix import field_args, matrix_field  # noqa: E402
from linsim.host import cores  # noqa: E402


def _per_call(fn, repeats: int) -> float:
    t0 = time.perf_counter()
    for _ in range(repeats):
        fn()
    return (time.perf_counter() - t0) / repeats


def _blas_threads() -> str:
    try:
        from threadpoolctl import threadpool_info

        return ", ".join(f"{d['internal_api']} {d['num_threads']}" for d in threadpool_info()) or "unknown"
    except ImportError:
        return "unknown (threadpoolctl not installed)"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=256)
    ap.add_argument("--repeats", type=int, default=50, help="calls per timing")
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--single-thread", action="store_true",
                    help="one thread for both sides (numpy's BLAS and XLA): stabler numbers on a loaded machine")
    a = ap.parse_args()
    if a.single_thread:
        from threadpoolctl import threadpool_limits

        threadpool_limits(1)
    n = a.n
    rng = np.random.default_rng(0)
    A, B = rng.standard_normal((n, n)), rng.standard_normal((n, n))
    X, Xp = A @ A.T / n, 0.5 * B @ B.T / n
    x, xp = rng.uniform(0.5, 1.5, n), rng.uniform(0.1, 0.5, n)
    W, Wp, Wa = (rng.standard_normal((n, n)) / np.sqrt(n) for _ in range(3))
    XX = X + Xp
    state = {k: jnp.asarray(v) for k, v in dict(W=W, Wp=Wp, Wa=Wa).items()}
    hyper = dict(eta=0.01, eta_p=0.01, beta=0.5, alpha_p=1.0)
    args_g = field_args({**{k: jnp.asarray(v) for k, v in hyper.items()}, "X": X, "Xp": Xp})
    args_d = field_args({**{k: jnp.asarray(v) for k, v in hyper.items()}, "X": np.diag(x), "Xp": np.diag(xp)})
    assert "XX" in args_g and "x" in args_d
    f = jax.jit(matrix_field)

    def lin(args):
        return lambda: jax.block_until_ready(f(0.0, state, args))

    def np_general():
        G = -(Wp @ (W @ XX)) + Wa @ X
        Wp.T @ G
        G @ W.T

    def np_diagonal():  # the products only; the column scalings are left out
        G = Wp @ W
        Wp.T @ G
        G @ W.T

    sides = {"linsim general": lin(args_g), "numpy 5 products": np_general,
             "linsim diagonal": lin(args_d), "numpy 3 products": np_diagonal}
    for fn in sides.values():
        fn()  # compile / warm up
    print(f"n = n1 = {n}, float64; {cores()} cores available, load {os.getloadavg()[0]:.1f}; "
          f"numpy BLAS threads: {_blas_threads()}; XLA_FLAGS: {os.environ.get('XLA_FLAGS', '')!r}; jax {jax.__version__}")
    times = {k: [] for k in sides}
    for _ in range(a.rounds):
        for k, fn in sides.items():
            times[k].append(_per_call(fn, a.repeats))
    med = {k: float(np.median(v)) for k, v in times.items()}
    for k, v in med.items():
        print(f"  {k:18s} {v * 1e3:8.3f} ms per call (median of {a.rounds} rounds of {a.repeats})")
    rg = np.median(np.array(times["linsim general"]) / np.array(times["numpy 5 products"]))
    rd = np.median(np.array(times["linsim diagonal"]) / np.array(times["numpy 3 products"]))
    print(f"ratio linsim / numpy, general statistics:  {rg:.2f}  (target <= 1.5)")
    print(f"ratio linsim / numpy, diagonal statistics: {rd:.2f}  (target <= 1.5)")
    print(f"diagonal / general field (linsim): {med['linsim diagonal'] / med['linsim general']:.2f}; load now "
          f"{os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
