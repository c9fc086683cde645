"""Divergence is detected per mode (modes model) with its time; the finite prefix is kept."""
import numpy as np

import linsim as ls


def test_euler_blowup_flags_only_the_exploding_mode():
    # Euler step dt = 1 is unstable for a mode with p = w = 3 (the local rate ~ k p w^2 = 40 > 2/dt) but stable
    # for the two small modes, so exactly one mode must be flagged.
    cfg = ls.Config(hyper=ls.Hyper(eta=0.0, beta=float("inf")), stats=ls.Stats.isotropic(3, 0.5),
                    solver=ls.Solver(t_max=100, method="euler", dt=1.0))
    y0 = {"p": np.array([0.5, 0.5, 3.0]), "w": np.array([0.5, 0.5, 3.0]), "wa": np.array([0.5, 0.5, 3.0])}
    tr = ls.simulate(cfg, y0=y0)
    summ = tr.summary()
    assert tr.status == "diverged" and summ["diverged"] is True
    assert summ["n_diverged"] == 1
    assert list(tr.diverged_modes) == [False, False, True]
    assert np.all(np.isfinite(tr.s)) and tr.ts[-1] < tr.t_end <= 100
    flagged = [m for m in summ["modes"] if m["diverged"]]
    assert flagged[0]["divergence_time"] == tr.t_end


def test_adaptive_event_fires_when_bound_is_crossed():
    # A healthy mode growing from p = 0.1 to p+ ~ 0.667 crosses |p| = 0.5 once; with divergence_bound = 0.5 the
    # terminal event must stop the solve at the crossing. Measured: t_end equals the first point of the save
    # grid (spacing 1e-3) past the crossing, so two grid spacings is a safe bound that still fails if the
    # event fired a solver step (~0.1 here) early or late.
    y0 = {"p": np.array([0.1]), "w": np.array([0.3]), "wa": np.array([0.3])}
    base = dict(hyper=ls.Hyper(eta=0.0, beta=float("inf")), stats=ls.Stats.isotropic(1, 0.5))
    ts = np.linspace(0, 40, 40001)
    free = ls.simulate(ls.Config(**base, solver=ls.Solver(t_max=40, rtol=1e-10, atol=1e-12)), ts=ts, y0=y0)
    biggest = np.max(np.abs(np.stack([free.states[k][:, 0] for k in ("p", "w", "wa")])), axis=0)
    assert biggest[-1] > 0.5 and biggest[0] < 0.5
    crossing = ts[np.argmax(biggest > 0.5)]
    stopped = ls.simulate(ls.Config(**base, solver=ls.Solver(t_max=40, rtol=1e-10, atol=1e-12, divergence_bound=0.5)), ts=ts, y0=y0)
    assert stopped.status == "diverged"
    assert abs(stopped.t_end - crossing) <= 2e-3  # save grid spacing 1e-3; event located within one step
    assert stopped.ts[-1] <= stopped.t_end
    assert all(np.all(np.abs(v) <= 0.5) for v in stopped.states.values())
