"""One entry point, ``simulate(config) -> Trajectory``, and the jit-compiled solvers behind it.

Adaptive: diffrax (Tsit5/Dopri5/Dopri8/Kvaerno5) in float64 with a PID controller, saving at requested
times, with a terminal event when the state goes non-finite or exceeds ``divergence_bound``.
Fixed step: explicit Euler with step dt = alpha, which is full-batch SGD with learning rate alpha and the EMA
momentum gamma_a = 1 - alpha beta (docs/theory_dynamics.md), the EMA taking the pre-step W (the official code and the
discrete predictor/SGD simulators take the post-step W: an O(alpha^2 beta) difference per step). The solvers take parameters as arrays, so the same
compiled function serves a vmapped sweep. A run with momentum (``Noise.momentum`` > 0, euler) is heavy-ball
full-batch SGD in the training code's order: ``linsim.dynamics.discrete``.
"""
from __future__ import annotations

import functools
from typing import Any, Callable

import diffrax as dfx
import jax
import jax.numpy as jnp
import numpy as np

from linsim.config import MATRIX_SAVE_BUDGET, Config, default_n_save  # noqa: F401  (re-exported)
from linsim.dynamics.matrix import field_args, matrix_field
from linsim.dynamics.modes import modes_field
from linsim.dynamics.variant import Variant
from linsim.errors import LinsimError
from linsim.initial import initial_arrays
from linsim.loops import scan_saving
from linsim.trajectory import Trajectory

FIELDS: dict[str, Callable] = {"modes": modes_field, "matrix": matrix_field}
_SOLVERS = {"tsit5": dfx.Tsit5, "dopri5": dfx.Dopri5, "dopri8": dfx.Dopri8, "kvaerno5": dfx.Kvaerno5}


def make_args(cfg: Config) -> dict[str, jax.Array]:
    """The traced parameters of the field for a config (scalars as 0-d arrays, statistics as arrays)."""
    h = cfg.hyper
    args = {
        "eta": jnp.asarray(h.eta, jnp.float64),
        "eta_p": jnp.asarray(h.eta_p_value, jnp.float64),
        "beta": jnp.asarray(h.beta, jnp.float64),
        "alpha_p": jnp.asarray(h.alpha_p, jnp.float64),
    }
    if cfg.model == "modes":
        args.update(x=jnp.asarray(cfg.stats.x), xp=jnp.asarray(cfg.stats.xp))
    else:
        args.update(X=jnp.asarray(cfg.stats.X), Xp=jnp.asarray(cfg.stats.Xp))
    return args


def variant_of(cfg: Config) -> Variant:
    pred = cfg.hyper.predictor if cfg.hyper.predictor in ("grad", "symmetric", "identity") else "grad"
    return Variant(predictor=pred, stop_grad=bool(cfg.hyper.stop_grad))


def _exploded(y, bound):
    leaves = jax.tree_util.tree_leaves(y)
    bad = [jnp.any(~jnp.isfinite(v)) | jnp.any(jnp.abs(v) > bound) for v in leaves]
    return functools.reduce(jnp.logical_or, bad)


def _adaptive(y0, args, ts, dt0, rtol, atol, bound, *, model, variant, method, max_steps):
    """The adaptive solve: (ys at ts followed by the state at t_end, t_end, diverged, ok, number of steps)."""
    field = FIELDS[model]
    term = dfx.ODETerm(lambda t, y, a: field(t, y, a, variant))
    event = dfx.Event(lambda t, y, a, **kw: _exploded(y, bound))
    sol = dfx.diffeqsolve(
        term,
        _SOLVERS[method](),
        t0=ts[0],
        t1=ts[-1],
        dt0=dt0,
        y0=y0,
        args=args,
        saveat=dfx.SaveAt(ts=ts, t1=True),
        stepsize_controller=dfx.PIDController(rtol=rtol, atol=atol),
        event=event,
        max_steps=max_steps,
        throw=False,
    )
    diverged = sol.result == dfx.RESULTS.event_occurred
    ok = (sol.result == dfx.RESULTS.successful) | diverged
    return sol.ys, sol.ts[-1], diverged, ok, sol.stats["num_steps"]


@functools.partial(jax.jit, static_argnames=("model", "variant", "method", "max_steps"))
def solve_adaptive(y0, args, ts, dt0, rtol, atol, bound, *, model, variant, method="tsit5", max_steps=1_000_000):
    """Integrate from ts[0] to ts[-1]; returns (ys at ts, state at t_end, t_end, diverged, ok, number of steps)."""
    ys, t_end, diverged, ok, steps = _adaptive(y0, args, ts, dt0, rtol, atol, bound, model=model, variant=variant,
                                               method=method, max_steps=max_steps)
    split = lambda f: jax.tree_util.tree_map(f, ys)  # noqa: E731
    return split(lambda v: v[:-1]), split(lambda v: v[-1]), t_end, diverged, ok, steps


@functools.partial(jax.jit, static_argnames=("model", "variant", "method", "max_steps"))
def solve_adaptive_stacked(y0, args, ts, dt0, rtol, atol, bound, *, model, variant, method="tsit5", max_steps=1_000_000):
    """``solve_adaptive`` with the saves and the end state in one array per block, (len(ts) + 1, ...), so that a
    large run is split on the host without a copy (slicing inside the jit copied all saves: 80 MB at n = 256)."""
    return _adaptive(y0, args, ts, dt0, rtol, atol, bound, model=model, variant=variant, method=method,
                     max_steps=max_steps)


@functools.partial(jax.jit, static_argnames=("model", "variant", "n_save", "save_every"))
def solve_euler(y0, args, dt, *, model, variant, n_save, save_every):
    """Explicit Euler y <- y + dt f(y): full-batch SGD steps of size dt (EMA on the pre-step W); saves every
    ``save_every`` steps."""
    field = FIELDS[model]

    def step(y):
        return jax.tree_util.tree_map(lambda a, b: a + dt * b, y, field(0.0, y, args, variant))

    return scan_saving(step, y0, n_save - 1, save_every)


def euler_grid(t_max: float, dt: float, n_save: int) -> tuple[int, int]:
    """(n_save, save_every) so that saves fall exactly on SGD steps and cover [0, ~t_max]."""
    n_steps = max(1, int(round(t_max / dt)))
    save_every = max(1, n_steps // (n_save - 1))
    return n_steps // save_every + 1, save_every


def _checked_ts(ts: Any) -> np.ndarray:
    """Save times checked on the host (diffrax's own checks are NaN-producing, see linsim._cache)."""
    try:
        arr = np.asarray(ts, dtype=float)
    except (TypeError, ValueError):
        raise LinsimError("ts must be a 1-D array of save times") from None
    if arr.ndim != 1 or arr.size < 2 or not np.all(np.isfinite(arr)) or np.any(np.diff(arr) <= 0):
        raise LinsimError(f"ts must be at least 2 finite, strictly increasing save times, got shape {arr.shape}")
    return arr


def simulate(cfg: Config, ts: Any = None, y0: dict | None = None) -> Trajectory:
    """Run one configuration and return its Trajectory (states at saved times, status, derived series).

    ``ts``: save times (default ``linspace(0, t_max, n_save)``; ignored for Euler, which saves on steps).
    ``y0``: an explicit initial state (default drawn from ``cfg.init``), a dict of arrays {p, w, wa} of shape
    (n,) for the per-mode model or W (n1, n), Wp (n1, n1), Wa (n1, n) for the matrix model; a wrong key or
    shape is one LinsimError naming it (``linsim.initial.check_y0``).

    Stochastic configurations (``cfg.noise.kind`` 'sgd' or 'sde') are refused: they return an ensemble of
    runs, not one Trajectory; use ``simulate_sgd``, ``simulate_sde`` or ``simulate_ensemble``.
    """
    if cfg.noise.kind != "none":
        raise LinsimError(f"cfg.noise.kind is {cfg.noise.kind!r}: simulate integrates one deterministic run; use "
                          f"linsim.simulate_{cfg.noise.kind}(cfg) or linsim.simulate_ensemble(cfg), which return an Ensemble")
    y0 = initial_arrays(cfg, y0)
    if cfg.hyper.predictor in ("directpred", "directcopy"):
        from linsim.dynamics.predictors import simulate_discrete_predictor  # discrete reset rules

        return simulate_discrete_predictor(cfg, y0=y0)
    if cfg.noise.kind == "none" and cfg.noise.momentum:  # full-batch SGD with heavy-ball momentum, EMA after the step
        from linsim.dynamics.discrete import simulate_discrete

        return simulate_discrete(cfg, y0=y0)
    s = cfg.solver
    args = make_args(cfg)
    if cfg.model == "matrix":  # diagonal statistics as vectors, else X + X' precomputed (fewer products)
        args = field_args(args)
    variant = variant_of(cfg)
    if s.method == "euler":
        n_save, every = euler_grid(s.t_max, s.dt, s.n_save)
        ys = solve_euler(y0, args, jnp.asarray(s.dt), model=cfg.model, variant=variant, n_save=n_save, save_every=every)
        ts_np = np.arange(n_save) * every * s.dt
        ys = {k: np.asarray(v) for k, v in ys.items()}
        return Trajectory.from_states(cfg, ts_np, ys, steps=(n_save - 1) * every)
    ts = jnp.linspace(0.0, s.t_max, s.n_save) if ts is None else jnp.asarray(_checked_ts(ts), jnp.float64)
    stacked, t_end, diverged, ok, steps = solve_adaptive_stacked(
        y0, args, ts, s.dt, s.rtol, s.atol, s.divergence_bound,
        model=cfg.model, variant=variant, method=s.method, max_steps=s.max_steps,
    )
    stacked = {k: np.asarray(v) for k, v in stacked.items()}  # no copy on a CPU; the slices below are views
    ys, y_end = {k: v[:-1] for k, v in stacked.items()}, {k: v[-1] for k, v in stacked.items()}
    status = "diverged" if bool(diverged) else ("ok" if bool(ok) else "max_steps")
    return Trajectory.from_states(cfg, np.asarray(ts), ys, status=status, t_end=float(t_end), steps=int(steps), y_end=y_end)
