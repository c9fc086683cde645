"""simulate / solve_euler / make_args: divergence reporting, collapse detection, Euler = SGD, determinism."""
from __future__ import annotations

import math

import numpy as np
import pytest

import linsim  # noqa: F401
from linsim.config import Config, Hyper, Init, Solver, Stats
from linsim.dynamics.modes import fixed_points
from linsim.solve import make_args, simulate

M = 8


def test_euler_with_too_large_step_diverges_and_keeps_finite_prefix():
    """No predictor, SimSiam: dw = -(x' + eta) w, so Euler multiplies w by 1 - dt (x' + eta) = -1.7 per step
    at dt = 5 (x' = 0.5, eta = 0.04): |w| grows like 1.7^k and crosses the 1e6 bound within ~30 steps,
    while the ODE itself decays. The run is reported 'diverged' and only the finite prefix is kept."""
    cfg = Config(model="modes", stats=Stats.isotropic(M, 0.5),
                 hyper=Hyper(eta=0.04, beta=math.inf, predictor="identity"),
                 solver=Solver(method="euler", dt=5.0, t_max=500.0, n_save=101))
    traj = simulate(cfg)
    assert traj.status == "diverged" and traj.summary()["diverged"]
    assert 1 < len(traj.ts) < 101
    for v in traj.states.values():
        assert np.all(np.isfinite(v)) and np.all(np.abs(v) <= cfg.solver.divergence_bound)
    w = traj.states["w"]
    np.testing.assert_allclose(w[1:], w[:-1] * (1 - 5.0 * 0.54), rtol=1e-12)  # the exact Euler map
    assert traj.t_end > traj.ts[-1]  # it diverged after the last kept save
    # the same model at a stable step decays
    ok = simulate(Config(model="modes", stats=Stats.isotropic(M, 0.5),
                         hyper=Hyper(eta=0.04, beta=math.inf, predictor="identity"),
                         solver=Solver(method="euler", dt=0.5, t_max=500.0, n_save=101)))
    assert ok.status == "ok" and np.all(np.abs(ok.states["w"][-1]) < 1e-10)


def test_adaptive_run_stops_at_divergence_bound():
    """A growing BYOL mode (p: 0.05 -> p+ = 0.62) with divergence_bound = 0.3 triggers the terminal event:
    status 'diverged', t_end where |state| first exceeds 0.3, and the kept saves all lie within the bound."""
    cfg = Config(model="modes", stats=Stats.isotropic(M, 0.5), hyper=Hyper(eta=0.01, beta=1.0),
                 init=Init(scale=0.05, balanced=True),
                 solver=Solver(t_max=200.0, n_save=51, divergence_bound=0.3))
    traj = simulate(cfg)
    assert traj.status == "diverged"
    assert 0 < traj.t_end < 200.0 and len(traj.ts) < 51
    for v in traj.states.values():
        assert np.all(np.abs(v) <= 0.3)
    assert np.max(np.abs(traj.states["p"][-1])) > 0.2  # it was near the bound when it stopped


def test_collapse_detected_above_eta_c_and_not_below():
    """eta > eta_c = 1/6 (sigma2 = 0.5): every mode collapses, with a finite collapse time. eta = 0.01 from
    a balanced init near p+: no mode collapses and p ends at p+ (to 1e-6; rtol 1e-10 solve, T = 300)."""
    cfg = Config(model="modes", stats=Stats.isotropic(M, 0.5), hyper=Hyper(eta=0.2, beta=0.5),
                 solver=Solver(t_max=300.0, n_save=51, rtol=1e-10, atol=1e-12))
    traj = simulate(cfg)
    assert traj.status == "ok"
    assert np.all(traj.collapsed) and np.all(np.isfinite(traj.collapse_time))
    assert np.all(traj.collapse_time <= 300.0) and traj.summary()["n_collapsed"] == M
    fp = fixed_points(0.01, 1.0, 0.5)
    y0 = {"p": np.full(M, 0.5), "w": np.full(M, 0.5), "wa": np.full(M, 0.5)}
    live = simulate(Config(model="modes", stats=Stats.isotropic(M, 0.5), hyper=Hyper(eta=0.01, beta=0.5),
                           solver=Solver(t_max=300.0, n_save=51, rtol=1e-10, atol=1e-12)), y0=y0)
    assert not np.any(live.collapsed) and np.all(np.isnan(live.collapse_time))
    np.testing.assert_allclose(live.p[-1], fp.p_plus, atol=1e-6)


@pytest.mark.parametrize("beta", [0.5, math.inf])
def test_euler_is_sgd_on_expected_loss(beta):
    """Euler with step dt reproduces a hand-written full-batch SGD loop on J (docs/theory_dynamics.md, the model) to 1e-12:
    W <- W - dt (dJ/dW + eta W), Wp <- Wp - dt (alpha_p dJ/dWp + eta_p Wp), and the EMA
    Wa <- gamma_a Wa + (1 - gamma_a) W with gamma_a = 1 - dt beta (SimSiam: Wa = W).

    The EMA here uses the pre-step W (simultaneous update), which is what explicit Euler is; BYOL's code
    applies the EMA after the online step, an O(dt^2) per-step difference that this test does not cover.
    Both sides do the same float64 operations up to reassociation: ~1e-16 per step, ~1e-14 after 100 steps.
    """
    n, n1, dt, eta, eta_p, alpha_p = 4, 3, 0.01, 0.03, 0.05, 2.0
    rng = np.random.default_rng(1)
    A = rng.standard_normal((n, n))
    X, Xp = A @ A.T / n, 0.3 * np.eye(n)
    cfg = Config(model="matrix", n1=n1, stats=Stats.matrices(X, Xp),
                 hyper=Hyper(eta=eta, eta_p=eta_p, beta=beta, alpha_p=alpha_p),
                 init=Init(scale=0.8, seed=3, target="copy" if math.isinf(beta) else "independent"),
                 solver=Solver(method="euler", dt=dt, t_max=1.0, n_save=11))
    traj = simulate(cfg)
    W, Wp, Wa = (np.array(traj.states[k][0]) for k in ("W", "Wp", "Wa"))
    simsiam = math.isinf(beta)
    gamma_a = 0.0 if simsiam else 1 - dt * beta
    out = {"W": [W], "Wp": [Wp], "Wa": [Wa]}
    for step in range(1, 101):
        target = W if simsiam else Wa
        G = -Wp @ W @ (X + Xp) + target @ X  # -dJ/d(Wp W) with the target held fixed
        gW, gWp = -Wp.T @ G, -G @ W.T  # dJ/dW, dJ/dWp
        W_new = W - dt * (gW + eta * W)
        Wp = Wp - dt * (alpha_p * gWp + eta_p * Wp)
        Wa = W_new if simsiam else gamma_a * Wa + (1 - gamma_a) * W
        W = W_new
        if step % 10 == 0:
            for k, v in (("W", W), ("Wp", Wp), ("Wa", Wa)):
                out[k].append(v)
    assert len(traj.ts) == 11 and traj.steps == 100
    np.testing.assert_allclose(traj.ts, np.arange(11) * 0.1, rtol=0, atol=1e-15)
    for k in ("W", "Wp", "Wa"):
        np.testing.assert_allclose(traj.states[k], np.stack(out[k]), rtol=0, atol=1e-12, err_msg=k)


@pytest.mark.parametrize("model", ["modes", "matrix"])
def test_same_seed_same_arrays(model):
    """Determinism: the same config gives bit-identical arrays; another seed gives different ones."""
    def run(seed):
        return simulate(Config(model=model, n1=3 if model == "matrix" else None, stats=Stats.isotropic(4, 0.5),
                               init=Init(seed=seed), solver=Solver(t_max=10.0, n_save=51)))

    a, b, c = run(7), run(7), run(8)
    for k in a.states:
        np.testing.assert_array_equal(a.states[k], b.states[k])
        assert not np.array_equal(a.states[k][0], c.states[k][0])
    np.testing.assert_array_equal(a.s, b.s)


def test_make_args_carries_config_values():
    cfg = Config(model="modes", stats=Stats.diagonal([1.0, 2.0], [0.1, 0.3]),
                 hyper=Hyper(eta=0.02, eta_p=0.05, beta=math.inf, alpha_p=3.0))
    args = make_args(cfg)
    assert float(args["eta"]) == 0.02 and float(args["eta_p"]) == 0.05 and float(args["alpha_p"]) == 3.0
    assert math.isinf(float(args["beta"]))
    np.testing.assert_array_equal(args["x"], [1.0, 2.0])
    np.testing.assert_array_equal(args["xp"], [0.1, 0.3])
    margs = make_args(Config(model="matrix", stats=Stats.isotropic(3, 0.2), hyper=Hyper(eta=0.03)))
    np.testing.assert_array_equal(margs["Xp"], 0.2 * np.eye(3))
    assert float(margs["eta_p"]) == 0.03  # eta_p defaults to eta
