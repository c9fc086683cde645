"""The per-mode sweep solver (linsim.sweep_solver): accuracy against an independent stiff solver, no stiffness
cost from the EMA rate, the on-the-fly time to 1% against a dense reference, per-point statuses and point
independence (a point's numbers do not depend on its neighbours or the slot count).

References are scipy's Radau (implicit, order 5) at rtol 1e-12, atol 1e-14: its error is < 1e-10 here, far
below the tolerances asserted. Few fixed shapes (M = 8 points, slots 4 or 8) keep compilation cheap.
"""
from __future__ import annotations

import math

import jax.numpy as jnp
import numpy as np
import pytest
from scipy.integrate import solve_ivp

from linsim.sweep_solver import A_EXPLICIT, A_IMPLICIT, B, B_HAT, C, solve_modes_points

SIGMA2, P0, S0 = 0.5, 0.1, 0.1


def _params(eta, beta, alpha_p=1.0):
    eta, beta = np.broadcast_arrays(np.asarray(eta, float), np.asarray(beta, float))
    return {"eta": jnp.asarray(eta), "eta_p": jnp.asarray(eta), "beta": jnp.asarray(beta),
            "alpha_p": jnp.full(eta.shape, alpha_p), "x": jnp.ones(eta.shape), "xp": jnp.full(eta.shape, SIGMA2)}


def _solve(eta, beta, t_max=100.0, rtol=1e-9, slots=8, max_steps=200_000, p0=P0, s0=S0):
    par = _params(eta, beta)
    m = par["eta"].shape[0]
    r = solve_modes_points(par, jnp.full(m, p0), jnp.full(m, s0), t_max, rtol, 1e-12, 1e6, 1e-6, slots=slots,
                           max_steps=max_steps)
    return {k: np.asarray(v) for k, v in r.items()}


def _radau(eta, beta, t_max, dense=False):
    def rhs(t, y):
        p, w, wa = y
        wa = wa if math.isfinite(beta) else w  # SimSiam: the target is the online network
        e = wa - (1 + SIGMA2) * p * w
        dw = p * e - eta * w
        return [w * e - eta * p, dw, beta * (w - wa) if math.isfinite(beta) else dw]

    w0 = math.sqrt(S0)
    sol = solve_ivp(rhs, (0, t_max), [P0, w0, w0], method="Radau", rtol=1e-12, atol=1e-14, dense_output=dense)
    return sol


ETAS = np.array([0.0, 0.01, 0.04, 0.1, 0.16, 0.18, 0.04, 0.04])
BETAS = np.array([100.0, 0.01, 1.0, 10.0, 3.0, 100.0, 1e4, 0.3])


def test_tableau_is_consistent():
    # row sums are the stage times (to the published coefficients' rounding), b and b_hat are consistent
    np.testing.assert_allclose(A_EXPLICIT.sum(1), C, atol=1e-11)
    np.testing.assert_allclose(A_IMPLICIT.sum(1), C, atol=1e-11)
    assert B.sum() == pytest.approx(1, abs=1e-12) and B_HAT.sum() == pytest.approx(1, abs=1e-12)
    for k in range(1, 5):  # order conditions sum b c^(k-1) = 1/k up to order 5 (the bushy trees)
        assert B @ C ** (k - 1) == pytest.approx(1 / k, abs=1e-10)
    np.testing.assert_array_equal(np.triu(A_EXPLICIT), 0)  # explicit part explicit


def test_final_state_matches_an_independent_stiff_solver():
    r = _solve(ETAS, BETAS)
    assert np.all(r["status"] == 0)
    for i, (eta, beta) in enumerate(zip(ETAS, BETAS)):
        ref = _radau(eta, beta, 100.0).y[:, -1]
        # rtol 1e-9 per step; global error amplification over t = 100 stays < 100 on these points
        assert r["p_final"][i] == pytest.approx(ref[0], abs=1e-7)
        assert r["s_final"][i] == pytest.approx(ref[1] ** 2, abs=1e-7)
        assert r["wa_final"][i] == pytest.approx(ref[2], abs=1e-7)


def test_large_beta_costs_no_extra_steps_and_tends_to_simsiam():
    r = _solve(0.04, np.array([1.0, 10.0, 100.0, 1e3, 1e4, 1e6, np.inf, np.inf]))
    steps = r["steps"]
    # an explicit method needs beta h < ~3, i.e. >= 3e5 steps at beta = 1e4 over t = 100; here the step count
    # stays within 3x of SimSiam's (beta = inf) at every beta
    assert steps.max() <= 3 * steps[-1], steps
    # wa - w = O(1/beta): beta = 1e6 agrees with SimSiam to ~1e-6
    assert abs(r["p_final"][5] - r["p_final"][6]) < 1e-5
    assert r["tau_final"][6] == 1.0


def test_time_to_one_percent_matches_a_dense_reference():
    etas, betas = np.array([0.01, 0.04, 0.1, 0.01]), np.array([np.inf, 0.5, 5.0, 0.1])
    r = _solve(np.concatenate([etas, etas]), np.concatenate([betas, betas]), t_max=300.0)
    for i, (eta, beta) in enumerate(zip(etas, betas)):
        k = 1 + SIGMA2
        pp = (1 + math.sqrt(1 - 4 * eta * k)) / (2 * k)
        sol = _radau(eta, beta, 300.0, dense=True)
        t = np.linspace(0, 300, 300_001)
        bad = np.abs(sol.sol(t)[0] - pp) > 0.01 * pp
        assert r["balance_residual"][i] < 1e-7
        if bad[-1]:  # still outside the band at t_max (here: collapsed)
            assert not r["converged"][i] and np.isnan(r["t_1pct"][i])
            continue
        t_ref = t[np.flatnonzero(bad).max() + 1]  # first grid time after the last excursion (spacing 1e-3)
        assert r["converged"][i] and r["t_1pct"][i] == pytest.approx(t_ref, abs=2e-3), (eta, beta)
    assert np.sum(r["converged"][:4]) >= 3  # the cases above mostly converge


def test_points_are_independent_of_neighbours_and_slots():
    a = _solve(ETAS, BETAS, slots=8)
    b = _solve(ETAS[::-1], BETAS[::-1], slots=4)  # other neighbours, other slots, refilled slots
    for k in ("p_final", "s_final", "t_1pct", "balance_residual", "steps"):
        np.testing.assert_array_equal(a[k], b[k][::-1], err_msg=k)


def test_statuses_are_per_point():
    # one point out of steps (beta = 0.01 needs the most steps here) does not affect the others
    r = _solve(ETAS, BETAS, max_steps=150)
    assert np.any(r["status"] == 2) and np.any(r["status"] == 0)
    full = _solve(ETAS, BETAS)
    ok = r["status"] == 0
    np.testing.assert_array_equal(r["p_final"][ok], full["p_final"][ok])
    assert np.all(np.isnan(r["p_final"][~ok])) and not np.any(r["collapsed"][~ok])
    # a state beyond the divergence bound (1e6) is reported as diverged (status 1) at its first accepted step
    d = _solve(ETAS, BETAS, p0=2e6)
    assert np.all(d["status"] == 1) and np.all(np.isnan(d["p_final"]))
