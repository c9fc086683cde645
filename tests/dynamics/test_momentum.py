"""Heavy-ball momentum in the discrete full-batch simulator and in the SGD ensembles: convergence to the
rescaled ODE, the mu = 0 limit, continuation of runs (buffers in the state) and learning-rate schedules."""
from __future__ import annotations

import dataclasses
import json
import math

import numpy as np
import pytest
from typer.testing import CliRunner

import linsim as ls
from linsim.cli import app
from linsim.config import Noise
from linsim.dynamics.discrete import resume_state, simulate_discrete, time_per_step
from linsim.dynamics.stochastic import simulate_sgd
from linsim.errors import LinsimError
from linsim.mapping import LossConvention, TrainingConventions, to_theory
from torch_reference import exact_views, torch_style_run

X4 = np.diag([1.0, 0.8, 0.6, 0.4])


def _cfg(mu=0.9, dt=1e-3, t_max=3.0, n_save=2, beta=0.5, predictor="grad", noise="none", **kw):
    return ls.Config(model="matrix", hyper=ls.Hyper(eta=0.04, beta=beta, predictor=predictor),
                     stats=ls.Stats.matrices(X4, 0.5 * np.eye(4)), init=ls.Init(scale=0.8, seed=1, target="independent"),
                     solver=ls.Solver(t_max=t_max, n_save=n_save, method="euler", dt=dt),
                     noise=Noise(kind=noise, momentum=mu, **kw))


def _rel(a, b):
    return max(np.linalg.norm(a[k] - b[k]) / np.linalg.norm(b[k]) for k in ("W", "Wp", "Wa"))


def test_momentum_approaches_rescaled_ode_first_order():
    """mu = 0.9, beta = 0.05, eta = 0.04, X = diag(1, .8, .6, .4), X' = 0.5 I, independent target, t = 3 in
    ODE time (alpha/(1-mu) per step): against the ODE of the same Hyper (tsit5, rtol 1e-11), the relative
    error for alpha = 2e-3, 1e-3, 5e-4 (150, 300, 600 steps) was measured as
    2.28e-2, 1.12e-2, 5.54e-3: ratios 2.03 and 2.03 per halving, i.e. first order in alpha (the buffer's
    start-up lag is alpha mu/(1-mu)^2 of ODE time). Asserted: every ratio in [1.8, 2.3].
    Without the 1/(1-mu) rescaling the same runs miss the ODE by O(1): asserted > 0.1 at the smallest alpha."""
    ode = ls.simulate(dataclasses.replace(_cfg(mu=0.0, beta=0.05),
                                          solver=ls.Solver(t_max=3.0, n_save=2, rtol=1e-11, atol=1e-13), noise=Noise()))
    y_ode = {k: v[-1] for k, v in ode.states.items()}
    errs = []
    for a in (2e-3, 1e-3, 5e-4):
        tr = simulate_discrete(_cfg(dt=a, beta=0.05))
        assert tr.ts[-1] == pytest.approx(3.0, rel=1e-12) and tr.steps == round(3.0 * 0.1 / a)
        errs.append(_rel({k: v[-1] for k, v in tr.states.items()}, y_ode))
    ratios = np.array(errs[:-1]) / np.array(errs[1:])
    assert np.all((ratios > 1.8) & (ratios < 2.3)), (errs, ratios)
    unscaled = ls.simulate(dataclasses.replace(ode.config, solver=ls.Solver(t_max=0.3, n_save=2, rtol=1e-11, atol=1e-13)))
    assert _rel({k: v[-1] for k, v in tr.states.items()}, {k: v[-1] for k, v in unscaled.states.items()}) > 0.1


def test_zero_momentum_simsiam_equals_euler():
    """mu = 0 and SimSiam (no EMA, so the pre-/post-step EMA orders coincide): the momentum path is exactly
    the plain Euler solver (same arithmetic: 0 * buf + d = d), to rounding (1e-14 relative)."""
    cfg = dataclasses.replace(_cfg(mu=0.0, dt=0.01, t_max=2.0, n_save=5), hyper=ls.Hyper(eta=0.04, beta=math.inf))
    a, b = simulate_discrete(cfg), ls.simulate(cfg)
    np.testing.assert_array_equal(a.ts, b.ts)
    for k in ("W", "Wp"):
        np.testing.assert_allclose(a.states[k], b.states[k], rtol=1e-14, atol=1e-15)


@pytest.mark.parametrize("predictor", ["grad", "directpred"])
def test_discrete_run_continues_exactly(predictor):
    """A run of 2T equals a run of T continued for T from ``resume_state`` (weights, buffers, F_hat, step)."""
    whole = simulate_discrete(_cfg(dt=0.01, t_max=2.0, n_save=5, predictor=predictor))
    first = simulate_discrete(_cfg(dt=0.01, t_max=1.0, n_save=3, predictor=predictor))
    y0, start = resume_state(first)
    assert start["step"] == 10 and ("F_hat" in start) == (predictor == "directpred")
    rest = simulate_discrete(_cfg(dt=0.01, t_max=1.0, n_save=3, predictor=predictor), y0=y0, start=start)
    np.testing.assert_allclose(rest.ts, whole.ts[2:], rtol=1e-14)
    for k in whole.states:
        np.testing.assert_array_equal(rest.states[k][-1], whole.states[k][-1])
    np.testing.assert_array_equal(rest.extras["buf_W"][-1], whole.extras["buf_W"][-1])


def test_learning_rate_schedule_is_a_chain_of_runs():
    """lr 0.05 for 3 steps then 0.02 for 3 steps, momentum 0.9 and EMA 0.99 (torch MSELoss over d = 3):
    two chained linsim runs (remapped alpha, beta per segment, buffers carried) equal the hand-written
    torch loop with the lr changed mid-way (rtol 1e-11: rounding only, as in test_mapping)."""
    rng = np.random.default_rng(3)
    A = rng.standard_normal((4, 4))
    X, Xp = A @ A.T / 4 + 0.2 * np.eye(4), 0.3 * np.eye(4)
    x1, x2 = exact_views(X, Xp)
    W, Wp, Wa = rng.standard_normal((3, 4)) / 2, rng.standard_normal((3, 3)) / 2, rng.standard_normal((3, 4)) / 2
    loss = LossConvention(output="mean", out_dim=3)
    y, start, ref = {"W": W, "Wp": Wp, "Wa": Wa}, None, None
    bW = bP = None
    for lr in (0.05, 0.02):
        tc = TrainingConventions(lr=lr, momentum=0.9, ema=0.99, weight_decay=1e-3, loss=loss)
        tp = to_theory(tc)
        cfg = ls.Config(model="matrix", n1=3, hyper=ls.Hyper(eta=tp.eta, beta=tp.beta_ode), stats=ls.Stats.matrices(X, Xp),
                        solver=ls.Solver(t_max=3 * tp.time_per_step, n_save=4, method="euler", dt=tp.alpha),
                        noise=Noise(momentum=0.9))
        tr = simulate_discrete(cfg, y0=y, start=start)
        y, start = resume_state(tr)
        ref = torch_style_run(W if ref is None else ref[0], Wp if ref is None else ref[1], Wa if ref is None else ref[2],
                              x1, x2, tc, 3, bW, bP)[-1]
        bW, bP = ref[3], ref[4]
    assert start["step"] == 6
    # the clock continues across segments of different step sizes: 3 x (2/3 * 0.05 / 0.1) + 3 x (2/3 * 0.02 / 0.1)
    assert tr.ts[0] == pytest.approx(1.0) and tr.ts[-1] == pytest.approx(1.4) and start["t"] == pytest.approx(1.4)
    for k, want in zip(("W", "Wp", "Wa"), ref[:3]):
        np.testing.assert_allclose(y[k], want, rtol=1e-11, atol=1e-12)


def test_sgd_ensemble_continues_exactly_and_uses_ode_time():
    """SGD ensemble with momentum: saved times are ODE times (t_max = 0.4 at alpha/(1-mu) = 0.1 per step:
    4 steps), and T + T continued from ``resume_state`` equals 2T bitwise (same minibatch stream)."""
    cfg = _cfg(dt=0.01, t_max=0.4, n_save=5, noise="sgd", batch=8, seeds=3)
    e1 = simulate_sgd(cfg)
    assert e1.ts[-1] == pytest.approx(0.4) and int(e1.extras["final_step"][0]) == 4
    whole = simulate_sgd(dataclasses.replace(cfg, solver=dataclasses.replace(cfg.solver, t_max=0.8, n_save=9)))
    rest = simulate_sgd(cfg, start=e1.resume_state())
    np.testing.assert_allclose(rest.ts, whole.ts[4:], rtol=1e-14)
    for k in whole.states:
        np.testing.assert_array_equal(rest.states[k][:, -1], whole.states[k][:, -1])
    assert not np.allclose(rest.states["W"][0, -1], rest.states["W"][1, -1])  # the seeds stay distinct
    arrs = e1.arrays()  # what `linsim simulate --noise sgd` writes to ensemble.npz
    start = {k[len("resume_"):]: v for k, v in arrs.items() if k.startswith("resume_")}
    assert set(start) == set(e1.resume_state())
    np.testing.assert_array_equal(simulate_sgd(cfg, start=start).states["W"][:, -1], whole.states["W"][:, -1])


def test_bad_momentum_inputs():
    with pytest.raises(LinsimError, match="euler"):
        dataclasses.replace(_cfg(), solver=ls.Solver(t_max=1.0))
    first = simulate_discrete(_cfg(dt=0.01, t_max=0.1, n_save=2))
    y0, start = resume_state(first)
    with pytest.raises(LinsimError, match="missing"):
        simulate_discrete(_cfg(dt=0.01, t_max=0.1, n_save=2), y0=y0, start={"step": 1})
    with pytest.raises(LinsimError, match="seed axis"):
        simulate_sgd(_cfg(dt=0.01, t_max=0.1, n_save=2, noise="sgd", batch=4, seeds=2),
                     start={**{k: v[None] for k, v in y0.items()}, **start, "F_hat": np.zeros((1, 4, 4))})
    assert time_per_step(_cfg(dt=0.01)) == pytest.approx(0.1)


def test_cli_simulate_momentum(tmp_path):
    """`linsim simulate --momentum 0.9 --dt 0.01 --t-max 1`: 10 steps of ODE time 0.1 each."""
    r = CliRunner().invoke(app, ["simulate", "--momentum", "0.9", "--dt", "0.01", "--t-max", "1", "--n-save", "3",
                                 "--n", "3", "--json", "--no-plot", "--out", str(tmp_path / "run")])
    assert r.exit_code == 0, r.output
    d = json.loads(r.output[r.output.index("{"):])
    assert d["steps"] == 10 and d["t_end"] == pytest.approx(1.0) and d["config"]["noise"]["momentum"] == 0.9
