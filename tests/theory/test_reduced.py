"""Reduced (Wp, F) dynamics (docs/theory_dynamics.md, eigenspace alignment) and the alignment commutator identity (docs/theory_dynamics.md, eigenspace alignment)."""
from __future__ import annotations

import math

import jax.numpy as jnp
import numpy as np
from hypothesis import given
from hypothesis import strategies as st

from linsim.dynamics.matrix import matrix_field
from linsim.dynamics.variant import Variant
from linsim.theory.reduced import commutator, k_lower_bound, k_matrix, reduced_field, solve_reduced
from strategies import alphas, matrix_args, seeds, sigma2s

D = 4


def random_pair(rng, d=D, scale=1.0):
    A = rng.standard_normal((d, d))
    B = rng.standard_normal((d, d))
    return scale * (A + A.T) / 2, scale * B @ B.T / d  # symmetric Wp, PSD F


def red_args(sigma2, eta, alpha_p, tau):
    return {k: jnp.asarray(v, jnp.float64) for k, v in dict(sigma2=sigma2, eta=eta, alpha_p=alpha_p, tau=tau).items()}


@given(seeds, sigma2s, st.floats(0.0, 0.2), alphas, st.floats(-1.0, 2.0))
def test_commutator_identity(seed, sigma2, eta, alpha_p, tau):
    """dL/dt = [dF, Wp] + [F, dWp] equals -(K L + L K) to relative error 1e-10 (invariant 5).

    Both sides are sums of ~10 products of O(1-10) matrices: round-off ~1e-14 relative to the largest term."""
    Wp, F = random_pair(np.random.default_rng(seed))
    args = red_args(sigma2, eta, alpha_p, tau)
    d = reduced_field(0.0, {"Wp": jnp.asarray(Wp), "F": jnp.asarray(F)}, args)
    dL = commutator(d["F"], Wp) + commutator(F, d["Wp"])
    L = commutator(F, Wp)
    K = k_matrix(jnp.asarray(Wp), jnp.asarray(F), args)
    want = -(K @ L + L @ K)
    assert np.linalg.norm(dL - want) <= 1e-10 * np.linalg.norm(want)
    assert np.linalg.norm(want) > 0


@given(seeds, sigma2s, st.floats(0.0, 0.1), alphas, st.floats(-1.0, 2.0), st.sampled_from([(4, 4), (6, 4)]))
def test_reduced_field_is_matrix_field(seed, sigma2, eta, alpha_p, tau, shape):
    """With X = I, X' = sigma2 I, Wa = tau W and symmetric Wp, the 'symmetric' matrix field gives exactly
    dWp and dF = dW W^T + W dW^T of the reduced ODE (docs/theory_dynamics.md, eigenspace alignment). Field-level identity: tolerance 1e-12."""
    n, n1 = shape
    rng = np.random.default_rng(seed)
    Wp, _ = random_pair(rng, n1, 0.5)
    W = rng.standard_normal((n1, n)) / math.sqrt(n)
    h = dict(eta=eta, eta_p=eta, beta=1.0, alpha_p=alpha_p)
    dm = matrix_field(0.0, {"W": jnp.asarray(W), "Wp": jnp.asarray(Wp), "Wa": jnp.asarray(tau * W)},
                      matrix_args(np.eye(n), sigma2 * np.eye(n), h), Variant("symmetric"))
    d = reduced_field(0.0, {"Wp": jnp.asarray(Wp), "F": jnp.asarray(W @ W.T)}, red_args(sigma2, eta, alpha_p, tau))
    np.testing.assert_allclose(dm["Wp"], d["Wp"], rtol=0, atol=1e-12)
    np.testing.assert_allclose(dm["W"] @ W.T + W @ dm["W"].T, d["F"], rtol=0, atol=1e-12)


@given(seeds, sigma2s, st.floats(0.02, 0.2), alphas, st.floats(-0.5, 0.5))
def test_commutator_decays_when_k_is_positive(seed, sigma2, eta, alpha_p, tau):
    """On trajectories with lambda_min(K) >= lambda_0 > 0: ||L(t)|| <= (1 + 1e-6) e^{-2 lambda_0 t} ||L(0)||
    (invariant 5). lambda_0 = 3 eta/2 - tau^2/(4(1+sigma2)) is a rigorous lower bound because F stays PSD
    (dF = A F + F A with A symmetric); it is also checked at the saved times. The 1e-6 slack absorbs the
    solver's ~1e-10 relative error on L (the norm falls by at most e^{-2 lambda_0 T} ~ 1e-2 here)."""
    args = red_args(sigma2, eta, alpha_p, tau)
    lam0 = float(k_lower_bound(args))
    if lam0 < 0.005:
        eta = eta + (0.005 - lam0) / 1.5
        args = red_args(sigma2, eta, alpha_p, tau)
        lam0 = float(k_lower_bound(args))
    Wp, F = random_pair(np.random.default_rng(seed), scale=0.5)
    ts = jnp.linspace(0.0, 20.0, 51)
    ys = solve_reduced({"Wp": jnp.asarray(Wp), "F": jnp.asarray(F)}, args, ts)
    Wps, Fs = np.asarray(ys["Wp"]), np.asarray(ys["F"])
    Ks = np.stack([np.asarray(k_matrix(jnp.asarray(a), jnp.asarray(b), args)) for a, b in zip(Wps, Fs)])
    assert np.min(np.linalg.eigvalsh((Ks + np.swapaxes(Ks, 1, 2)) / 2)) >= lam0 - 1e-12
    L = np.linalg.norm(Fs @ Wps - Wps @ Fs, axis=(1, 2))
    assert L[0] > 1e-3
    assert np.all(L <= (1 + 1e-6) * np.exp(-2 * lam0 * np.asarray(ts)) * L[0])
