"""Benchmark: seed-steps/s of linsim's finite-batch SGD ensembles against numpy loops doing the same batch arithmetic,
and the step against its matrix products alone. Sides interleaved; medians; thread counts and load printed.

Setting: matrix model, n = n1 = 128, B = 256, float64, un-normalised loss, lr alpha = 0.01, EMA beta = 0.5; data
X = I, X' = 0.5 I (diagonal) or a random PSD pair (general). Sides:
  linsim moments   ``simulate_sgd`` with the default sampler: the batch drawn as its exact second moment (a Bartlett
                   factor A of a Wishart_2n(I, B) matrix: n (2n - 1) normals, 2n chi-squares) and the loss
                   1/(2B) ||L C A||^2: 5 products, two of them (n1, 2n, 2n).
  linsim samples   ``--sampler samples``: B pairs of views x1 = u + v, x2 = u - v (2 B n normals; elementwise roots for
                   diagonal data, two products otherwise), jax.grad of the minibatch loss (6 products).
  numpy 3-draw     a plain loop: x, e1, e2 drawn and multiplied by X^1/2, X'^1/2 (3 B n normals, 3 products; this
                   benchmark's baseline before the samplers), forward and hand-written backward (6 products).
  numpy 2-draw     the same loop drawing u, v (2 B n normals; elementwise roots when diagonal): the best numpy sample path.
  products alone   the moment step's 5 products in a jitted scan, nothing else (no random numbers, no updates).
linsim runs K = 1 and K = 8 seeds (vmapped); numpy has no seed axis, so its seed-steps/s are its steps/s.
Same seed, same numbers: each linsim side is run twice and compared bit for bit.

Usage: python experiments/benchmarks/sgd.py [--steps 300] [--rounds 5]
Result: see docs/benchmarks.md (the last measured numbers).
"""
from __future__ import annotations

import argparse
import os
import statistics
import time

import numpy as np

import linsim  # noqa: F401  (float64 JAX)
import jax
import jax.numpy as jnp
from linsim.config import Config, Hyper, Init, Noise, Solver, Stats
from linsim.dynamics.stochastic import simulate_sgd, view_roots
from linsim.dynamics.wishart import bartlett
from linsim.initial import initial_state, psd_sqrt

N, B = 128, 256
ALPHA, BETA, ETA, ALPHA_P = 0.01, 0.5, 0.04, 1.0


def stats(kind: str) -> Stats:
    if kind == "diagonal":
        return Stats.isotropic(N, 0.5)
    rng = np.random.default_rng(0)
    A, C = rng.standard_normal((N, N)), rng.standard_normal((N, N))
    return Stats.matrices(A @ A.T / N + 0.1 * np.eye(N), C @ C.T / (2 * N))


def config(kind: str, steps: int, seeds: int, sampler: str) -> Config:
    return Config(
        model="matrix", n1=N, hyper=Hyper(eta=ETA, beta=BETA, alpha_p=ALPHA_P), stats=stats(kind),
        init=Init(scale=1.0, seed=0), solver=Solver(t_max=steps * ALPHA, dt=ALPHA, method="euler", n_save=2),
        noise=Noise(kind="sgd", batch=B, seeds=seeds, sampler=sampler),
    )


def numpy_sgd(cfg: Config, steps: int, draws: int) -> np.ndarray:
    """The same SGD in a plain numpy loop (hand-written gradients); ``draws`` = 3 (x, e1, e2) or 2 (u, v)."""
    rng = np.random.default_rng(0)
    y = initial_state(cfg)
    W, Wp, Wa = y["W"], y["Wp"], y["Wa"]
    if draws == 3:
        R1, R2 = psd_sqrt(cfg.stats.X), psd_sqrt(cfg.stats.Xp)
        diag = False
    else:
        R1, R2, diag = view_roots(cfg)
    for _ in range(steps):
        if draws == 3:
            x = rng.standard_normal((B, N)) @ R1
            x1 = x + rng.standard_normal((B, N)) @ R2
            x2 = x + rng.standard_normal((B, N)) @ R2
        else:
            u, v = rng.standard_normal((B, N)), rng.standard_normal((B, N))
            u, v = (u * R1, v * R2) if diag else (u @ R1, v @ R2)
            x1, x2 = u + v, u - v
        f1 = x1 @ W.T
        r = f1 @ Wp.T - x2 @ Wa.T
        gWp = r.T @ f1 / B
        gW = (r @ Wp).T @ x1 / B
        W = W - ALPHA * (gW + ETA * W)
        Wp = Wp - ALPHA * (ALPHA_P * gWp + ETA * Wp)
        Wa = Wa + ALPHA * BETA * (W - Wa)
    return W


def products_alone(steps: int, diag: bool):
    """The moment step's products only (5, or 9 with general roots), chained so nothing is hoisted out of the loop."""
    rng = np.random.default_rng(1)
    W0, Wp0, Wa0 = (jnp.asarray(rng.standard_normal((N, N)) / 10) for _ in range(3))
    A = bartlett(jax.random.PRNGKey(0), 2 * N, B)
    R = jnp.asarray(psd_sqrt(stats("general").X))

    @jax.jit
    def run(W, Wp):
        def body(c, _):
            W, Wp = c
            PW = Wp @ W
            D, E = PW - Wa0, PW + Wa0
            if not diag:
                D, E = D @ R, E @ R
            P = jnp.concatenate([D, E], axis=1) @ A
            G = P @ A.T
            Gd = G[:, :N] + G[:, N:] if diag else G[:, :N] @ R + G[:, N:] @ R
            return (W - 1e-9 * (Wp.T @ Gd), Wp - 1e-9 * (Gd @ W.T)), None

        return jax.lax.scan(body, (W, Wp), None, length=steps)[0]

    return lambda: jax.block_until_ready(run(W0, Wp0))


def rng_alone(steps: int):
    @jax.jit
    def run(key):
        def body(c, i):
            return c + bartlett(jax.random.fold_in(key, i), 2 * N, B)[-1, -1], None

        return jax.lax.scan(body, 0.0, jnp.arange(steps))[0]

    return lambda: jax.block_until_ready(run(jax.random.PRNGKey(0)))


def timed(fn) -> float:
    t = time.perf_counter()
    fn()
    return time.perf_counter() - t


def threads() -> str:
    try:
        from threadpoolctl import threadpool_info

        blas = ", ".join(f"{d['internal_api']} {d['num_threads']}" for d in threadpool_info()) or "unknown"
    except ImportError:
        blas = "unknown (threadpoolctl not installed)"
    return f"numpy BLAS: {blas}; XLA: {os.cpu_count()} CPUs visible, XLA_FLAGS={os.environ.get('XLA_FLAGS', '')!r}"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=300)
    ap.add_argument("--rounds", type=int, default=5)
    a = ap.parse_args()
    S = a.steps
    print(__doc__.splitlines()[0])
    print(threads())
    for kind in ("diagonal", "general"):
        sides = {}
        for K in (1, 8):
            for sampler in ("auto", "samples"):
                cfg = config(kind, S, K, sampler)
                first = simulate_sgd(cfg)  # compile, and the reference for "same seed, same numbers"
                again = simulate_sgd(cfg)
                assert np.array_equal(first.states["W"], again.states["W"]), "same seed gave different numbers"
                assert first.extras["sampler"] == ("moments" if sampler == "auto" else "samples")
                name = f"linsim {first.extras['sampler']}, K = {K}"
                sides[name] = (lambda c=cfg: simulate_sgd(c), S * K)
        for draws in (3, 2):
            cfg = config(kind, S, 1, "auto")
            numpy_sgd(cfg, 5, draws)
            sides[f"numpy {draws}-draw"] = (lambda c=cfg, d=draws: numpy_sgd(c, S, d), S)
        prod, rng = products_alone(S, kind == "diagonal"), rng_alone(S)
        prod(), rng()
        sides["products alone"], sides["Bartlett draw alone"] = (prod, S), (rng, S)
        times = {k: [] for k in sides}
        loads = []
        for _ in range(a.rounds):  # interleaved: every side once per round
            loads.append(os.getloadavg()[0])
            for k, (fn, _) in sides.items():
                times[k].append(timed(fn))
        rate = {k: sides[k][1] / statistics.median(v) for k, v in times.items()}
        per = {k: 1e3 * statistics.median(v) / S for k, v in times.items()}
        print(f"\n{kind} X, X' (n = n1 = {N}, B = {B}, {S} steps, {a.rounds} interleaved rounds, "
              f"load {min(loads):.1f}-{max(loads):.1f})")
        for k in sides:
            print(f"  {k:<24} {rate[k]:9.1f} seed-steps/s   {per[k]:7.3f} ms per {'call' if 'alone' in k else 'run'} step")
        m1, m8 = rate["linsim moments, K = 1"], rate["linsim moments, K = 8"]
        for base in ("numpy 3-draw", "numpy 2-draw"):
            print(f"  linsim moments / {base}: K = 1 {m1 / rate[base]:.2f}x, K = 8 {m8 / rate[base]:.2f}x  (goal >= 2x)")
        step = 1 / m1
        print(f"  moment step / its products alone: {step / (1 / rate['products alone']):.2f}x  (goal <= 1.5x); "
              f"the Bartlett draw is {100 * (1 / rate['Bartlett draw alone']) / step:.0f}% of the step")


if __name__ == "__main__":
    main()
