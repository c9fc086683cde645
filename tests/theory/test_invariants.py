"""Conservation laws along simulated trajectories (the balance law and the per-mode integral of motion, docs/theory_dynamics.md) and the diagnostics of
linsim.theory.invariants (docs/theory_dynamics.md, invariants)."""
from __future__ import annotations


import jax.numpy as jnp
import numpy as np
from hypothesis import given
from hypothesis import strategies as st

from linsim.dynamics.variant import Variant
from linsim.solve import solve_euler
from linsim.theory.invariants import (
    alignment,
    asymmetry,
    balance_residual_matrix,
    balance_residual_modes,
    commutator_norm,
    matrix_modes,
)
from strategies import SHAPES, alphas, betas, hypers, integrate, matrix_args, matrix_state, modes_args, scales, seeds, stats

M = 8


def spec_balance_residual(ts, W, Wp, alpha_p, eta):
    """Section 10 form: ||C(t) - e^{-2 eta t} C(0)||_F / ||C(0)||_F with C = Wp^T Wp / alpha_p - W W^T."""
    C = np.einsum("tji,tjk->tik", Wp, Wp) / alpha_p - np.einsum("tij,tkj->tik", W, W)
    dev = C - np.exp(-2 * eta * np.asarray(ts))[:, None, None] * C[0]
    return np.linalg.norm(dev, axis=(1, 2)) / np.linalg.norm(C[0])


@st.composite
def balance_cases(draw):
    n, n1 = draw(st.sampled_from(SHAPES))
    X, Xp = draw(stats(n))
    h = draw(hypers())
    rng = np.random.default_rng(draw(seeds))
    state = matrix_state(rng, n, n1, draw(scales), target=draw(st.sampled_from(["copy", "independent"])))
    return X, Xp, h, state


@given(balance_cases())
def test_balance_law_adaptive(case):
    """Invariant 1: Wp^T Wp - alpha_p W W^T decays exactly as e^{-2 eta t}, any X, X', beta (Tian et al. 2021, Theorem 1).

    Tsit5 at rtol 1e-10 / atol 1e-12 over t in [0, 5]: the states carry ~1e-10 relative error, so the
    quadratic quantity C carries ~1e-10 relative to its terms; the bound 1e-8 (the invariant tests' bound) leaves 100x.
    """
    X, Xp, h, state = case
    ts, ys = integrate(state, matrix_args(X, Xp, h), 5.0, "matrix")
    res = spec_balance_residual(ts, ys["W"], ys["Wp"], h["alpha_p"], h["eta"])
    assert np.max(res) <= 1e-8
    assert np.max(balance_residual_matrix(ts, ys["W"], ys["Wp"], h["alpha_p"], h["eta"])) <= 1e-8


@given(balance_cases())
def test_balance_law_euler_bound(case):
    """Invariant 1 for SGD (Euler step h = SGD learning rate), made exact. Expanding one step gives
    C_{k+1} = (1 - 2 eta h) C_k + h^2 D_k with D = dWp^T dWp / alpha_p - dW dW^T, hence
    ||C(t) - e^{-2 eta t} C(0)|| <= h t max_k ||D_k|| + |(1 - 2 eta h)^k - e^{-2 eta t}| ||C(0)||.

    The rule of thumb "<= 10 h t" is this bound with max ||D|| <= 10 ||C(0)||, which is not universal: over 300
    random draws of these ranges the constant reached 24.5 (alpha_p ~ 10, ||X|| ~ 2.7, ||W|| ~ 2.4). So we
    assert (a) the one-step identity to 1e-12 (pure round-off of O(1-10^2) terms), and (b) the bound with
    the constant measured along the run; (c) the residual is not identically ~0 (Euler is not exact).
    h = 1e-3, 5000 steps, every step saved.
    """
    X, Xp, h, state = case
    dt, n_steps = 1e-3, 5000
    args = matrix_args(X, Xp, h)
    ys = solve_euler(state, args, jnp.asarray(dt), model="matrix", variant=Variant(), n_save=n_steps + 1, save_every=1)
    W, Wp = np.asarray(ys["W"]), np.asarray(ys["Wp"])
    ts = np.arange(n_steps + 1) * dt
    a, eta = h["alpha_p"], h["eta"]
    C = np.einsum("tji,tjk->tik", Wp, Wp) / a - np.einsum("tij,tkj->tik", W, W)
    dW, dWp = (W[1:] - W[:-1]) / dt, (Wp[1:] - Wp[:-1]) / dt  # Euler increments = the field at step k
    D = np.einsum("tji,tjk->tik", dWp, dWp) / a - np.einsum("tij,tkj->tik", dW, dW)
    scale = np.max(np.linalg.norm(C, axis=(1, 2))) + dt * np.max(np.linalg.norm(D, axis=(1, 2)))
    step_err = C[1:] - (1 - 2 * eta * dt) * C[:-1] - dt**2 * D
    assert np.max(np.abs(step_err)) <= 1e-12 * max(1.0, scale)
    c0 = np.linalg.norm(C[0])
    res = spec_balance_residual(ts, W, Wp, a, eta)
    K = np.concatenate([[0.0], np.maximum.accumulate(np.linalg.norm(D, axis=(1, 2)))]) / c0
    k = np.arange(n_steps + 1)
    bound = dt * ts * K + np.abs((1 - 2 * eta * dt) ** k - np.exp(-2 * eta * ts))
    assert np.all(res <= bound * (1 + 1e-9) + 1e-12)
    assert np.max(res) > 1e-12


@given(seeds, st.floats(0.0, 0.1), alphas, betas)
def test_integral_of_motion_per_mode(seed, eta, alpha_p, beta):
    """Invariant 2: c = p^2/alpha_p - w^2 obeys c(t) = e^{-2 eta t} c(0) for any w_a path (EMA or SimSiam)
    and any per-mode (x, x') (docs/theory_dynamics.md, invariants; non-isotropic per-mode field).

    |c(t) - e^{-2 eta t} c(0)| <= 1e-8 max(1, |c(0)|) up to t = 100 (the invariant tests' bound): the solver's ~1e-10 relative
    error on O(1) states bounds the error on the quadratic c well below that.
    """
    rng = np.random.default_rng(seed)
    p0, w0, wa0 = rng.uniform(-1.5, 1.5, M), rng.uniform(0.01, 1.5, M), rng.uniform(-1.0, 1.5, M)
    x, xp = rng.uniform(0.5, 2.0, M), rng.uniform(0.0, 1.0, M)
    args = modes_args(x, xp, dict(eta=eta, eta_p=eta, beta=beta, alpha_p=alpha_p), m=M)
    ts, ys = integrate({"p": p0, "w": w0, "wa": wa0}, args, 100.0, "modes")
    c = ys["p"] ** 2 / alpha_p - ys["w"] ** 2
    dev = np.abs(c - np.exp(-2 * eta * ts)[:, None] * c[0])
    assert np.all(dev <= 1e-8 * np.maximum(1.0, np.abs(c[0])))
    assert np.max(balance_residual_modes(ts, ys["p"], ys["w"] ** 2, alpha_p, eta)) <= 1e-8


# ------------------------------------------------------------------ the diagnostics themselves


def test_balance_residuals_detect_violation():
    """Exact series give 0; a perturbation of size d gives a residual of order d (the residuals can fail)."""
    rng = np.random.default_rng(0)
    ts = np.linspace(0, 3, 7)
    eta, alpha_p = 0.1, 2.0
    p0, s0 = rng.uniform(-1, 1, 4), rng.uniform(0.1, 1, 4)
    c = (p0**2 / alpha_p - s0) * np.exp(-2 * eta * ts)[:, None]
    p = np.tile(p0, (7, 1))
    s = p**2 / alpha_p - c
    assert np.max(balance_residual_modes(ts, p, s, alpha_p, eta)) <= 1e-15
    s[3, 1] += 1e-3
    assert np.max(balance_residual_modes(ts, p, s, alpha_p, eta)) > 1e-4
    # matrix form: Wp(t) = e^{-eta t} Wp0, W(t) = e^{-eta t} W0 satisfy C(t) = e^{-2 eta t} C(0) exactly
    W0, Wp0 = rng.standard_normal((3, 4)), rng.standard_normal((3, 3))
    decay = np.exp(-eta * ts)[:, None, None]
    W, Wp = decay * W0, decay * Wp0
    assert np.max(balance_residual_matrix(ts, W, Wp, alpha_p, eta)) <= 1e-15
    Wp = Wp.copy()
    Wp[-1] *= 1.01
    assert np.max(balance_residual_matrix(ts, W, Wp, alpha_p, eta)) > 1e-3
    # computed a few states at a time: every time across block edges (19 = 2 x 8 + 3) equals the direct formula
    ts = np.linspace(0, 3, 19)
    W, Wp = rng.standard_normal((19, 3, 4)), rng.standard_normal((19, 3, 3))
    C = np.swapaxes(Wp, 1, 2) @ Wp / alpha_p - W @ np.swapaxes(W, 1, 2)
    scale = np.linalg.norm(Wp[0].T @ Wp[0] / alpha_p) + np.linalg.norm(W[0] @ W[0].T)
    direct = np.linalg.norm(C - np.exp(-2 * eta * ts)[:, None, None] * C[0], axis=(1, 2)) / scale
    np.testing.assert_allclose(balance_residual_matrix(ts, W, Wp, alpha_p, eta), direct, rtol=1e-12)


@given(seeds)
def test_asymmetry_commutator_alignment(seed):
    """asymmetry(sym) = 0, asymmetry(antisym) = 2; [F, g(F)] = 0 and alignment 1 for g increasing (docs/theory_dynamics.md)."""
    rng = np.random.default_rng(seed)
    A = rng.standard_normal((5, 5))
    S, K = A + A.T, A - A.T
    assert asymmetry(S) <= 1e-15
    np.testing.assert_allclose(asymmetry(K), 2.0, rtol=1e-14)
    F = A @ A.T
    Wp = 0.3 * F + 0.1 * F @ F + np.eye(5)  # increasing in F's eigenvalues: same eigenvectors, same order
    assert commutator_norm(F, Wp) <= 1e-14
    np.testing.assert_allclose(alignment(F, Wp), 1.0, atol=1e-8)  # eigenvectors of distinct eigenvalues
    assert commutator_norm(F, S) > 1e-3  # a generic symmetric matrix does not commute with F


@given(seeds)
def test_matrix_modes_on_diagonal_states(seed):
    """Diagonal W, Wp, Wa, X: s = w^2 x (sorted descending), p = Wp_jj, tau = wa/w (docs/theory_dynamics.md, eigenspace alignment)."""
    rng = np.random.default_rng(seed)
    w, p, wa = rng.uniform(0.1, 1, 4), rng.uniform(-1, 1, 4), rng.uniform(-1, 1, 4)
    x = rng.uniform(0.5, 2, 4)
    s, pp, tau, wp_eig, F, _ = matrix_modes(np.diag(w)[None], np.diag(p)[None], np.diag(wa)[None], np.diag(x))
    order = np.argsort(-(w**2 * x))
    np.testing.assert_allclose(s[0], (w**2 * x)[order], rtol=1e-14)
    np.testing.assert_allclose(pp[0], p[order], rtol=1e-14)
    np.testing.assert_allclose(tau[0], (wa / w)[order], rtol=1e-13)
    np.testing.assert_allclose(wp_eig[0], np.sort(p)[::-1], rtol=1e-14)
