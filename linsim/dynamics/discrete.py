"""The discrete full-batch simulator in the training code's order: heavy-ball SGD steps, optional
DirectPred/DirectCopy resets, and the target EMA after the step.

One step of ``simulate_discrete`` (step counter k, learning rate alpha = ``Solver.dt``, momentum
mu = ``Noise.momentum``):

1. F_hat <- EMA(F_hat, F(W)), F = W X W^T (F_hat_1 = F_1)            -- only used by a reset rule
2. D = the ODE's field at (W, Wp, Wa): -(grad J + eta W) for W, alpha_p (-grad_Wp J) - eta_p Wp for Wp
3. buf <- mu buf + D per block; W <- W + alpha buf_W, Wp <- Wp + alpha buf_Wp        (``heavy_ball``)
4. Wp <- rule(F_hat) when k % freq == 0 (DirectPred / DirectCopy only)
5. Wa <- gamma_a Wa + (1 - gamma_a) W_new, gamma_a = 1 - beta alpha/(1 - mu) (SimSiam: Wa = W_new)

Step 3 is torch.optim.SGD (dampening 0, no Nesterov: buf = mu buf + (grad + wd param), param -= lr buf)
in the theory's units; ``linsim.mapping`` converts a torch/optax configuration and its buffers. The
momentum buffers are part of the state: ``resume_state(traj)`` returns the state at the end of a run and
``simulate_discrete(cfg, start=...)`` continues from it, so a learning-rate schedule is a chain of runs.
Every rate of the config (eta, eta_p, beta) is per unit ODE time and a step lasts alpha/(1 - mu) of it
(``time_per_step``): at small alpha the run follows the ODE of the same ``Hyper``, to first order in alpha.
So torch's EMA momentum m is 1 - beta alpha/(1 - mu) (``linsim.mapping``: beta here is ``beta_ode``).

References: Tian, Chen & Ganguli (ICML 2021), Lemma 1 and Eqs. 18-19; the official trainer
facebookresearch/luckmatters ``ssl/real-dataset/byol_trainer.py`` for the order of operations;
PyTorch ``torch.optim.SGD`` for the momentum convention. docs/predictors_and_noise.md, docs/mapping.md.
"""
from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np

from linsim.config import Config
from linsim.dynamics.predictors import KEYS, RULES, corr_step, correlation, ema_target, reset_predictor
from linsim.errors import LinsimError
from linsim.loops import scan_saving


def time_per_step(cfg: Config) -> float:
    """ODE time per discrete step: alpha / (1 - mu), the momentum-effective step (alpha = ``Solver.dt``)."""
    return float(cfg.solver.dt) / (1.0 - float(cfg.noise.momentum))


def buffer_names(model: str) -> tuple[str, str]:
    """Names of the momentum buffers of the online network and of the predictor ('buf_W', 'buf_Wp', ...)."""
    kW, kP, _ = KEYS[model]
    return f"buf_{kW}", f"buf_{kP}"


def heavy_ball(W, Wp, buf, dW, dP, dt, mu):
    """buf <- mu buf + D per block, then (W, Wp) <- (W, Wp) + dt buf (torch SGD momentum in ODE units).

    ``buf`` is the pair (buf_W, buf_Wp); dW, dP the update directions -(grad + weight decay)."""
    bW = mu * buf[0] + dW
    bP = mu * buf[1] + dP
    return W + dt * bW, Wp + dt * bP, (bW, bP)


def zero_buffers(y: dict, model: str):
    kW, kP, _ = KEYS[model]
    return jnp.zeros_like(y[kW]), jnp.zeros_like(y[kP])


@functools.partial(jax.jit, static_argnames=("model", "variant", "rule", "form", "norm", "freq", "n_save", "save_every"))
def _run(carry0, args, dt, mu, rho, eps, *, model, variant, rule, form, norm, freq, n_save, save_every):
    from linsim.solve import FIELDS  # late import: solve imports this module lazily too

    field = FIELDS[model]
    kW, kP, kA = KEYS[model]
    X = args["X"] if model == "matrix" else args["x"]

    def step(carry):
        y, buf, F_hat, k = carry
        if rule is not None:
            F_hat = corr_step(F_hat, correlation(y[kW], X, model), rho, k)
        d = field(0.0, y, args, variant)
        W, Wp, buf = heavy_ball(y[kW], y[kP], buf, d[kW], d[kP], dt, mu)
        if rule is not None:
            Wp = reset_predictor(Wp, F_hat, k, rule=rule, freq=freq, eps=eps, form=form, norm=norm,
                                 alpha_p=args["alpha_p"], model=model)
        Wa = ema_target(y[kA], W, dt / (1.0 - mu), args["beta"])  # EMA rate beta per unit ODE time
        return {kW: W, kP: Wp, kA: Wa}, buf, F_hat, k + 1

    return scan_saving(step, carry0, n_save - 1, save_every, save=lambda c: (c[0], c[1], c[2]))


def _check_start(start: dict, y0: dict, model: str) -> dict:
    names = buffer_names(model)
    missing = [k for k in (*names, "step") if k not in start]
    if missing:
        raise LinsimError(f"a start state needs the momentum buffers and the step counter; missing {', '.join(missing)}")
    kW, kP, _ = KEYS[model]
    for name, key in zip(names, (kW, kP)):
        if np.shape(start[name]) != np.shape(y0[key]):
            raise LinsimError(f"start {name} has shape {np.shape(start[name])}, the state {key} has {np.shape(y0[key])}")
        if not np.all(np.isfinite(start[name])):
            raise LinsimError(f"start {name} is not finite")
    step = start["step"]
    if int(step) != step or step < 0:
        raise LinsimError(f"start step must be a non-negative integer, got {step!r}")
    return start


def simulate_discrete(cfg: Config, y0: dict | None = None, start: dict | None = None):
    """Full-batch discrete run (module docstring) with step ``cfg.solver.dt`` and momentum ``cfg.noise.momentum``.

    ``y0``: initial weights (default drawn from ``cfg.init``); ``start``: continue a previous run, a dict
    with the momentum buffers ``buf_W``, ``buf_Wp`` (``buf_w``, ``buf_p`` per mode), the step counter
    ``step``, optionally the time ``t`` it ended at, and for a reset rule ``F_hat`` (``resume_state``
    builds it). Times are ODE times: ``t_max``
    and the saved ``ts`` count alpha/(1 - mu) per step (``time_per_step``), and the EMA uses
    gamma_a = 1 - beta alpha/(1 - mu), so a momentum run approximates the ODE of the same ``Hyper``.
    Returns a Trajectory whose ``ts`` continue from the start step, with ``extras`` holding the buffers
    (and ``F_hat``) at the saved times.
    """
    from linsim.initial import initial_arrays
    from linsim.solve import euler_grid, make_args, variant_of
    from linsim.trajectory import Trajectory

    if cfg.noise.kind != "none":
        raise LinsimError("stochastic runs go through linsim.dynamics.stochastic.simulate_ensemble, not the discrete simulator")
    rule = cfg.hyper.predictor if cfg.hyper.predictor in RULES else None
    s, pr = cfg.solver, cfg.predictor
    y0 = initial_arrays(cfg, y0)
    kW, kP, _ = KEYS[cfg.model]
    X = cfg.stats.X if cfg.model == "matrix" else cfg.stats.x
    h = time_per_step(cfg)
    t0 = 0.0
    if start is None:
        buf0, F0, k0 = zero_buffers(y0, cfg.model), jnp.zeros_like(correlation(y0[kW], jnp.asarray(X), cfg.model)), 0
    else:
        start = _check_start(start, y0, cfg.model)
        names = buffer_names(cfg.model)
        buf0 = tuple(jnp.asarray(start[nm], jnp.float64) for nm in names)
        k0 = int(start["step"])
        t0 = float(start.get("t", k0 * h))  # a chain of runs with different steps keeps its own clock
        F0 = start.get("F_hat")
        if F0 is None:
            if rule is not None and k0 > 0:
                raise LinsimError(f"continuing a {rule} run needs its correlation estimate F_hat in the start state")
            F0 = correlation(y0[kW], jnp.asarray(X), cfg.model) * 0.0
        F0 = jnp.asarray(F0, jnp.float64)
    n_save, every = euler_grid(s.t_max, h, s.n_save)
    ys, bufs, Fs = _run(
        (y0, buf0, F0, jnp.asarray(k0)), make_args(cfg), jnp.asarray(s.dt), jnp.asarray(cfg.noise.momentum),
        jnp.asarray(pr.rho), jnp.asarray(pr.eps), model=cfg.model, variant=variant_of(cfg), rule=rule, form=pr.form,
        norm=pr.norm, freq=int(pr.freq), n_save=n_save, save_every=every,
    )
    ts = t0 + np.arange(n_save) * every * h
    traj = Trajectory.from_states(cfg, ts, {k: np.asarray(v) for k, v in ys.items()}, steps=(n_save - 1) * every)
    keep = len(traj.ts)
    for name, b in zip(buffer_names(cfg.model), bufs):
        traj.extras[name] = np.asarray(b)[:keep]
    if rule is not None:
        traj.extras["F_hat"] = np.asarray(Fs)[:keep]
    traj.extras["step0"] = np.asarray(k0)
    return traj


def resume_state(traj) -> tuple[dict, dict]:
    """(y0, start) that continue a discrete run from its last saved point: ``simulate_discrete(cfg, y0, start)``."""
    model = traj.config.model
    names = buffer_names(model)
    if any(nm not in traj.extras for nm in names):
        raise LinsimError("this trajectory holds no momentum buffers: only discrete runs (simulate_discrete) can be continued")
    y0 = {k: np.asarray(v[-1]) for k, v in traj.states.items()}
    k_end = int(traj.extras.get("step0", 0)) + int(round((traj.ts[-1] - traj.ts[0]) / time_per_step(traj.config)))
    start = {nm: np.asarray(traj.extras[nm][-1]) for nm in names}
    start["step"] = k_end
    start["t"] = float(traj.ts[-1])
    if "F_hat" in traj.extras:
        start["F_hat"] = np.asarray(traj.extras["F_hat"][-1])
    return y0, start
