"""Hypothesis strategies and shared helpers for the dynamics/theory/solver property tests.

JAX compiles once per shape and per static argument, so matrices come in a few FIXED shapes
(``SHAPES``) and every parameter is passed to the fields as a (traced) array. Random matrices are drawn
from a hypothesis-chosen seed (numpy RNG): generic, well-conditioned draws that still shrink to a seed.
"""
from __future__ import annotations

import math

import jax.numpy as jnp
import numpy as np
from hypothesis import strategies as st

from linsim.dynamics.variant import Variant
from linsim.solve import solve_adaptive

SHAPES = [(4, 3), (6, 6), (3, 1)]  # (n, n1): rank-deficient (n1 < n), square, and a single output unit
N_SAVE = 51  # one save-grid length for every adaptive solve, so each (model, shape, variant) compiles once

# Tolerances of the adaptive solver used by the invariant tests. Tsit5 with a PID controller keeps the
# local error per step below atol + rtol |y|; over the O(10^2 - 10^3) steps of these runs the global
# error on O(1) states stays ~1e-9 or below, far under the 1e-8 invariant bounds (docs/theory_dynamics.md).
RTOL, ATOL = 1e-10, 1e-12

seeds = st.integers(0, 2**31 - 1)
positive = st.floats(0.0, 1.0)


def log_uniform(lo: float, hi: float):
    """Floats spread evenly in log scale over [lo, hi]."""
    return st.floats(math.log(lo), math.log(hi)).map(math.exp)


etas = st.floats(0.0, 0.1)
alphas = log_uniform(0.1, 10.0)
betas = st.one_of(st.just(math.inf), log_uniform(0.01, 100.0))  # inf = SimSiam (Wa = W)
scales = st.floats(0.1, 1.0)
sigma2s = st.floats(0.0, 2.0)


def psd(rng: np.random.Generator, n: int, scale: float = 1.0, floor: float = 0.0) -> np.ndarray:
    """A random PSD n x n matrix A A^T / n (Wishart-like, eigenvalues ~ [0, 4]) times scale, plus floor I."""
    A = rng.standard_normal((n, n))
    M = scale * (A @ A.T) / n + floor * np.eye(n)
    return (M + M.T) / 2


@st.composite
def stats(draw, n: int, xp_floor: float = 0.0):
    """Random PSD (X, X') of size n; X' >= xp_floor I."""
    rng = np.random.default_rng(draw(seeds))
    X = psd(rng, n, draw(st.floats(0.2, 2.0)))
    Xp = psd(rng, n, draw(st.floats(0.0, 1.0)), floor=xp_floor)
    return X, Xp


@st.composite
def hypers(draw, eta=etas, beta=betas, alpha_p=alphas, same_eta_p: bool = True):
    """Scalar hyperparameters (floats) in the ranges of the invariant tests."""
    e = draw(eta)
    return {
        "eta": e,
        "eta_p": e if same_eta_p else draw(etas),
        "beta": draw(beta),
        "alpha_p": draw(alpha_p),
    }


def matrix_args(X, Xp, h: dict) -> dict:
    """The traced args of the matrix field (float64 arrays)."""
    out = {k: jnp.asarray(float(v), jnp.float64) for k, v in h.items()}
    out.update(X=jnp.asarray(X, jnp.float64), Xp=jnp.asarray(Xp, jnp.float64))
    return out


def modes_args(x, xp, h: dict, m: int | None = None) -> dict:
    """The traced args of the per-mode field. The field is elementwise, so every entry may be a per-mode
    array: a whole parameter sweep is one solve. With ``m``, every entry is broadcast to shape (m,) so all
    solves of m modes share one compilation."""
    out = {k: jnp.asarray(v, jnp.float64) for k, v in dict(h, x=x, xp=xp).items()}
    if m is not None:
        out = {k: jnp.broadcast_to(v, (m,)) for k, v in out.items()}
    return out


def matrix_state(rng: np.random.Generator, n: int, n1: int, scale: float, target: str = "copy") -> dict:
    """W ~ N(0, scale^2/n), Wp ~ N(0, scale^2/n1); Wa = W ('copy') or an independent draw."""
    W = scale * rng.standard_normal((n1, n)) / math.sqrt(n)
    Wp = scale * rng.standard_normal((n1, n1)) / math.sqrt(n1)
    Wa = W.copy() if target == "copy" else scale * rng.standard_normal((n1, n)) / math.sqrt(n)
    return {"W": jnp.asarray(W), "Wp": jnp.asarray(Wp), "Wa": jnp.asarray(Wa)}


def integrate(y0: dict, args: dict, t_max: float, model: str, variant: Variant = Variant(), n_save: int = N_SAVE,
              rtol: float = RTOL, atol: float = ATOL, bound: float = 1e6, max_steps: int = 200_000):
    """Adaptive Tsit5 solve saving at linspace(0, t_max, n_save); returns (ts, numpy states) and asserts success."""
    ts = jnp.linspace(0.0, t_max, n_save)
    y0 = {k: jnp.asarray(v, jnp.float64) for k, v in y0.items()}
    out = solve_adaptive(y0, args, ts, 1e-3, rtol, atol, bound, model=model, variant=variant, max_steps=max_steps)
    ys, diverged, ok = out[0], out[-3], out[-2]  # (ys, ..., diverged, ok, num_steps)
    assert bool(ok) and not bool(diverged), "the reference solve must succeed"
    return np.asarray(ts), {k: np.asarray(v) for k, v in ys.items()}


@st.composite
def diag_stats(draw, m: int):
    """Non-isotropic per-mode statistics: data variances x_j in [0.2, 3] and augmentation variances x'_j in
    [0, 1.5], drawn independently per mode (x = 1, x' = sigma2 is only the isotropic special case)."""
    x = draw(st.lists(st.floats(0.2, 3.0), min_size=m, max_size=m))
    xp = draw(st.lists(st.floats(0.0, 1.5), min_size=m, max_size=m))
    return np.asarray(x), np.asarray(xp)


@st.composite
def distinct_eta_p(draw):
    """(eta, eta_p) with eta_p != eta, so a test cannot pass by confusing the two weight decays."""
    eta = draw(st.floats(0.0, 0.2))
    eta_p = draw(st.floats(0.0, 0.2).filter(lambda v: abs(v - eta) > 0.02))
    return eta, eta_p
