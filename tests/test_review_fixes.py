"""Regression tests for input validation and status reporting found in review."""
from __future__ import annotations

import math

import numpy as np
import pytest

import linsim as ls
from linsim.config import Config, Hyper, Noise, Solver, Stats
from linsim.errors import LinsimError


@pytest.mark.parametrize(
    "make, needle",
    [
        (lambda: Hyper(stop_grad=False, beta=0.5), "beta = inf"),
        (lambda: Hyper(eta_p=math.inf), "eta_p"),
        (lambda: Stats.diagonal([], []), "non-empty"),
        (lambda: Stats.matrices(np.zeros((0, 0)), np.zeros((0, 0))), "non-empty"),
        (lambda: Stats.from_views(np.zeros((5, 0)), np.zeros((5, 0))), "n >= 1"),
        (lambda: Stats.matrices(np.array([["a", "b"], ["c", "d"]]), np.eye(2)), "real numbers"),
        (lambda: Stats.matrices(np.eye(2) * (1 + 1j), np.eye(2)), "complex"),
        (lambda: Config(solver=Solver(method="euler", dt=1e-9, t_max=300.0)), "max_steps"),
        (lambda: Config(solver=Solver(dt=0.5, t_max=0.1), noise=Noise(kind="sgd")), "larger than t_max"),
        (lambda: Config(hyper=Hyper(predictor="directpred")), "euler"),
    ],
)
def test_bad_configs_raise(make, needle):
    with pytest.raises(LinsimError, match=needle):
        make()


def test_initial_state_beyond_bound_is_bad_input():
    cfg = Config(init=ls.Init(scale=1e200))
    with pytest.raises(LinsimError, match="divergence_bound"):
        ls.simulate(cfg)


def test_no_stop_grad_field_uses_online_target():
    # With stop_grad off the target is the online net itself, whatever the Wa entry of the state holds.
    from linsim.dynamics.matrix import matrix_field

    rng = np.random.default_rng(0)
    W, Wp, Wa = (rng.standard_normal((3, 3)) for _ in range(3))
    args = {k: np.asarray(v) for k, v in dict(eta=0.1, eta_p=0.1, beta=np.inf, alpha_p=1.0, X=np.eye(3), Xp=0.5 * np.eye(3)).items()}
    v = ls.Variant(stop_grad=False)
    a = matrix_field(0.0, {"W": W, "Wp": Wp, "Wa": Wa}, args, v)
    b = matrix_field(0.0, {"W": W, "Wp": Wp, "Wa": W}, args, v)
    for k in ("W", "Wp"):
        np.testing.assert_allclose(a[k], b[k], rtol=0, atol=1e-14)


def test_fixed_points_absent_when_one_decay_is_zero():
    assert not ls.fixed_points(0.0, 1.0, 0.5, eta_p=0.01).exists
    assert not ls.fixed_points(0.04, 1.0, 0.5, eta_p=0.0).exists
    assert ls.fixed_points(0.0, 1.0, 0.5).exists  # eta = eta_p = 0: the line p = 1/(1+sigma2)


def test_max_steps_is_not_reported_as_divergence():
    cfg = Config(solver=Solver(t_max=300.0, max_steps=16))
    tr = ls.simulate(cfg)
    s = tr.summary()
    assert tr.status == "max_steps" and s["n_diverged"] == 0 and not s["diverged"]
    assert tr.t_end < 300 and tr.ts[-1] <= tr.t_end and np.all(np.isfinite(tr.s))


def test_diverged_run_round_trips_its_mode_flags(tmp_path):
    cfg = Config(hyper=Hyper(eta=0.0, beta=math.inf), stats=Stats.isotropic(3, 0.5),
                 solver=Solver(t_max=100, method="euler", dt=1.0))
    y0 = {"p": np.array([0.5, 0.5, 3.0]), "w": np.array([0.5, 0.5, 3.0]), "wa": np.array([0.5, 0.5, 3.0])}
    tr = ls.simulate(cfg, y0=y0)
    tr.save(tmp_path)
    back = ls.Trajectory.load(tmp_path)
    assert list(back.diverged_modes) == list(tr.diverged_modes) == [False, False, True]
    assert back.summary()["n_diverged"] == 1
