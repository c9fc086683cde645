"""Phase-diagram sweeps: grids over hyperparameters and initial conditions, solved in vmapped chunks.

A :class:`SweepSpec` names the swept axes (any subset of ``eta, eta_p, beta, alpha_p, sigma2, p0, s0`` for
the per-mode model; the hyperparameter axes for the small matrix model) and the fixed values of the rest.
:func:`run_sweep` flattens the grid, solves it chunk by chunk, saves every finished chunk atomically to
``out/chunks/chunk_00012.npz`` (so a killed sweep restarted with the same arguments resumes and gives
bit-identical results), and assembles labelled arrays into ``out/sweep.npz`` + ``out/sweep.json``.

How a chunk is solved (per-mode model). Every grid point is its own adaptive solve
(:func:`linsim.sweep_solver.solve_modes_points`): an additive Runge-Kutta (IMEX) pair, explicit in (p, w)
and implicit in the EMA lag w_a - w, so the EMA rate beta costs no stability-limited steps; each point's step
is controlled in the max norm over (p, w, w_a) (every point meets rtol/atol on its own). The sweep's
quantities are computed on the fly inside the same jitted loop, so nothing is saved along the way and a
diverged point or one out of steps cannot affect its neighbours. The chunks of a sweep have equal sizes
(they differ by at most one point); with several local JAX devices that many chunks run at once under
``jax.pmap``, otherwise one chunk per CPU core in threads. A point's numbers depend neither on its chunk nor on
the device or thread count. (``method`` and ``n_save`` apply to the matrix model, which saves ``n_save``
log-spaced times and post-processes them.)

Quantities (arrays of the grid's shape): ``collapsed`` (s(T) < collapse_threshold * max(1, s0)),
``converged`` (|p(T) - p+| <= 1% |p+| and not collapsed), ``p_final``, ``s_final``, ``tau_final``,
``p_plus`` (fixed points in docs/theory_dynamics.md), ``t_1pct`` (time after which p stays within 1% of p+:
the last entry into the band, located on the cubic Hermite interpolant of the solver step where it happens;
NaN if never or collapsed), ``balance_residual`` (max over the solver's accepted steps of
|c(t) - e^{-2 eta t} c(0)| / (p0^2/alpha_p + s0), c = p^2/alpha_p - s; NaN where eta_p != eta), ``status``
(0 ok, 1 diverged, 2 max_steps) and ``steps`` (attempted solver steps of the point).

Reference: Tian, Chen & Ganguli, ICML 2021 (the per-mode dynamics, eq. 15-17); docs/theory_dynamics.md.
"""
from __future__ import annotations

import dataclasses
import functools
import hashlib
import json
import math
import re
import shutil
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

import numpy as np

import linsim  # noqa: F401  (float64)
from linsim.errors import LinsimError
from linsim.host import cores
from linsim.io import atomic_savez, atomic_write_json, to_jsonable
from linsim.progress import ProgressBar
from linsim.theory import invariants as inv

MODE_AXES = ("eta", "eta_p", "beta", "alpha_p", "sigma2", "p0", "s0")
MATRIX_AXES = ("eta", "eta_p", "beta", "alpha_p", "sigma2")
#: Fixed values of the parameters that are not swept. beta = inf (SimSiam, tau = 1) is the setting of the
#: basin table (docs/theory_dynamics.md); eta_p = None means "equal to eta" at every grid point.
DEFAULTS: dict[str, float | None] = {
    "eta": 0.04, "eta_p": None, "beta": math.inf, "alpha_p": 1.0, "sigma2": 0.5, "p0": 0.1, "s0": 0.1,
}
QUANTITIES = ("collapsed", "converged", "p_final", "s_final", "tau_final", "p_plus", "t_1pct",
              "balance_residual", "status")
STATUS = {0: "ok", 1: "diverged", 2: "max_steps"}
DIVERGENCE_BOUND = 1e6
_MAX_GRID = 10_000_000
MAX_MATRIX_N = 64  # matrix-model sweeps vmap full n x n solves per grid point
SLOTS = 128  # per-mode points integrated side by side within a chunk (see linsim.sweep_solver)

# ------------------------------------------------------------------------------------------ grid specs

_NUM = r"[-+]?(?:\d+\.?\d*(?:[eE][-+]?\d+)?|\.\d+(?:[eE][-+]?\d+)?|inf|infinity)"


def _float(text: str, what: str, spec: str) -> float:
    t = text.strip()
    if not re.fullmatch(_NUM, t, flags=re.IGNORECASE):
        raise LinsimError(f"bad grid spec {spec!r}: {what} {t!r} is not a number")
    return float(t)


def _count(text: str, spec: str) -> int:
    t = text.strip()
    if not re.fullmatch(r"\+?\d+", t) or int(t) < 1:
        raise LinsimError(f"bad grid spec {spec!r}: the number of points must be an integer >= 1, got {t!r}")
    if int(t) > _MAX_GRID:
        raise LinsimError(f"bad grid spec {spec!r}: {int(t)} points on one axis is more than {_MAX_GRID}")
    return int(t)


def parse_grid(spec: str | float | Sequence[float]) -> np.ndarray:
    """Parse a grid spec into a 1-D float array.

    ``"start:stop:num"`` -> ``linspace(start, stop, num)``; ``"log:start:stop:num"`` -> ``geomspace`` (start,
    stop > 0); ``"a,b,c"`` -> a list (``inf`` allowed, e.g. beta); a single number -> a one-point grid.
    Malformed specs raise :class:`LinsimError` naming the problem.

    >>> parse_grid("0:1:3").tolist(), parse_grid("log:0.01:1:3").tolist(), parse_grid("0.5,inf").tolist()
    ([0.0, 0.5, 1.0], [0.01, 0.1, 1.0], [0.5, inf])
    """
    if not isinstance(spec, str):
        arr = np.atleast_1d(np.asarray(spec, dtype=float))
        if arr.ndim != 1 or arr.size == 0 or np.any(np.isnan(arr)):
            raise LinsimError(f"bad grid {spec!r}: need a non-empty 1-D list of numbers")
        return arr
    text = spec.strip()
    if not text:
        raise LinsimError("bad grid spec '': empty")
    if text.lower().startswith("log:"):
        parts = text[4:].split(":")
        if len(parts) != 3:
            raise LinsimError(f"bad grid spec {spec!r}: a log grid is log:start:stop:num")
        a, b = _float(parts[0], "start", spec), _float(parts[1], "stop", spec)
        num = _count(parts[2], spec)
        if not (0 < a < math.inf and 0 < b < math.inf):
            raise LinsimError(f"bad grid spec {spec!r}: a log grid needs finite start and stop > 0")
        return np.geomspace(a, b, num)
    if ":" in text:
        parts = text.split(":")
        if len(parts) != 3:
            raise LinsimError(f"bad grid spec {spec!r}: a linear grid is start:stop:num (or log:start:stop:num)")
        a, b = _float(parts[0], "start", spec), _float(parts[1], "stop", spec)
        num = _count(parts[2], spec)
        if not (math.isfinite(a) and math.isfinite(b)):
            raise LinsimError(f"bad grid spec {spec!r}: a linear grid needs finite start and stop")
        return np.linspace(a, b, num)
    items = text.split(",")
    return np.array([_float(t, "list item", spec) for t in items], dtype=float)


# ------------------------------------------------------------------------------------------ the spec


def _check_value(name: str, v: float) -> None:
    if math.isnan(v):
        raise LinsimError(f"{name} must be a number, got NaN")
    finite = math.isfinite(v)
    if name in ("eta", "eta_p", "sigma2") and not (finite and v >= 0):
        raise LinsimError(f"{name} must be finite and >= 0, got {v:g}")
    if name == "beta" and not v > 0:
        raise LinsimError(f"beta (EMA rate) must be > 0 (inf means SimSiam), got {v:g}")
    if name == "alpha_p" and not (finite and v > 0):
        raise LinsimError(f"alpha_p (relative predictor learning rate) must be finite and > 0, got {v:g}")
    if name == "p0" and not finite:
        raise LinsimError(f"p0 must be finite, got {v:g}")
    if name == "s0" and not (finite and v >= 0):
        raise LinsimError(f"s0 (initial eigenvalue of F = w^2) must be finite and >= 0, got {v:g}")


def _pairs(obj: Any, what: str) -> list[tuple[str, Any]]:
    if obj is None:
        return []
    if isinstance(obj, Mapping):
        return list(obj.items())
    try:
        return [(str(k), v) for k, v in obj]
    except (TypeError, ValueError):
        raise LinsimError(f"{what} must be a mapping name -> values") from None


@dataclass(frozen=True)
class SweepSpec:
    """A grid of runs: swept ``axes`` (ordered name -> values), ``fixed`` values and solver settings.

    ``axes`` and ``fixed`` may be given as dicts; they are normalised to tuples (hashable, ordered), with
    every unswept parameter of the model resolved into ``fixed`` from :data:`DEFAULTS`. Axis values may be
    grid-spec strings (see :func:`parse_grid`). Matrix model (``model="matrix"``, small ``n``/``n1``): the
    hyperparameter axes only, every grid point starting from the same seeded init (:class:`linsim.config.Init`
    with ``init_scale``, ``seed``, ``balanced``); its quantities describe the leading mode of F, and
    ``collapsed`` means every mode collapsed.
    """

    axes: Any
    fixed: Any = ()
    model: str = "modes"
    n: int = 4
    n1: int | None = None
    init_scale: float = 0.5
    seed: int = 0
    balanced: bool = False
    t_max: float = 1000.0
    n_save: int = 1001
    rtol: float = 1e-8
    atol: float = 1e-12
    method: str = "tsit5"
    collapse_threshold: float = 1e-6
    max_steps: int = 200_000

    def __post_init__(self) -> None:
        if self.model not in ("modes", "matrix"):
            raise LinsimError(f"unknown model {self.model!r}; choose modes or matrix")
        allowed = MODE_AXES if self.model == "modes" else MATRIX_AXES
        axes = []
        for name, vals in _pairs(self.axes, "axes"):
            if name not in allowed:
                raise LinsimError(f"cannot sweep {name!r} with the {self.model} model; sweepable: {', '.join(allowed)}")
            if name in dict(axes):
                raise LinsimError(f"axis {name!r} given twice")
            arr = parse_grid(vals)
            for v in arr:
                _check_value(name, float(v))
            axes.append((name, tuple(float(v) for v in arr)))
        if not axes:
            raise LinsimError("a sweep needs at least one axis with several values")
        fixed_in = dict(_pairs(self.fixed, "fixed"))
        fixed = []
        for name in allowed:
            if name in dict(axes):
                if name in fixed_in and fixed_in[name] is not None:
                    raise LinsimError(f"{name!r} is both swept and fixed")
                continue
            v = fixed_in.get(name, DEFAULTS[name])
            if v is not None:
                v = float(v)
                _check_value(name, v)
            fixed.append((name, v))
        extra = set(fixed_in) - set(allowed)
        if extra:
            raise LinsimError(f"cannot set {', '.join(sorted(extra))} with the {self.model} model")
        object.__setattr__(self, "axes", tuple(axes))
        object.__setattr__(self, "fixed", tuple(fixed))
        size = math.prod(len(v) for _, v in axes)
        if size > _MAX_GRID:
            raise LinsimError(f"the grid has {size} points, more than {_MAX_GRID}")
        from linsim.config import SOLVERS, Init, Solver, Stats

        if self.method not in SOLVERS or self.method in ("euler", "kvaerno5"):
            raise LinsimError(f"sweep solver must be one of tsit5, dopri5, dopri8, got {self.method!r}")
        Solver(t_max=self.t_max, n_save=self.n_save, rtol=self.rtol, atol=self.atol,
               collapse_threshold=self.collapse_threshold, max_steps=self.max_steps)
        if self.model == "matrix":
            if not (isinstance(self.n, (int, np.integer)) and 1 <= self.n <= MAX_MATRIX_N):
                raise LinsimError(f"matrix-model sweeps are for small networks: n must be an integer in [1, {MAX_MATRIX_N}], got {self.n!r}")
            Stats.isotropic(self.n, 0.5)
            if self.n1 is not None and not (isinstance(self.n1, int) and 1 <= self.n1 <= self.n):
                raise LinsimError(f"n1 must be an integer in [1, n={self.n}], got {self.n1!r}")
            Init(scale=self.init_scale, seed=self.seed, balanced=self.balanced)

    # -------------------------------------------------------------- grid geometry

    @property
    def dims(self) -> tuple[str, ...]:
        return tuple(n for n, _ in self.axes)

    @property
    def coords(self) -> dict[str, np.ndarray]:
        return {n: np.asarray(v, dtype=float) for n, v in self.axes}

    @property
    def shape(self) -> tuple[int, ...]:
        return tuple(len(v) for _, v in self.axes)

    @property
    def size(self) -> int:
        return int(math.prod(self.shape))

    def params(self, idx: np.ndarray) -> dict[str, np.ndarray]:
        """Per-point parameter arrays at flat grid indices ``idx`` (C order over ``dims``)."""
        idx = np.asarray(idx, dtype=np.int64)
        sub = np.unravel_index(idx, self.shape)
        out = {n: np.asarray(v, dtype=float)[i] for (n, v), i in zip(self.axes, sub)}
        for n, v in self.fixed:
            out[n] = np.full(idx.shape, np.nan if v is None else v)
        if "eta_p" not in dict(self.axes) and dict(self.fixed).get("eta_p") is None:
            out["eta_p"] = out["eta"].copy()
        return out

    def ts(self) -> np.ndarray:
        """Save times: log-spaced ``expm1(linspace(0, log1p(t_max), n_save))`` (uniform relative resolution)."""
        ts = np.expm1(np.linspace(0.0, math.log1p(self.t_max), self.n_save))
        ts[0], ts[-1] = 0.0, self.t_max
        return ts

    def order(self) -> np.ndarray:
        """Flat indices sorted by a stiffness key so each chunk holds points needing similar steps.

        Keys (most significant first): the EMA rate beta (inf -> 0: SimSiam has no EMA pole), the initial
        p-rate alpha_p (1 + sigma2) s0, then eta. Only speed depends on this order, never correctness.
        """
        idx = np.arange(self.size)
        P = self.params(idx)
        beta = np.where(np.isinf(P["beta"]), 0.0, P["beta"])
        s0 = P["s0"] if self.model == "modes" else np.full(self.size, self.init_scale**2)
        rate = P["alpha_p"] * (1 + P["sigma2"]) * s0
        return idx[np.lexsort((P["eta"], rate, beta))]

    # -------------------------------------------------------------- identity

    def to_json(self) -> dict:
        d = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        d["axes"] = {n: list(v) for n, v in self.axes}
        d["fixed"] = {n: v for n, v in self.fixed}
        return to_jsonable(d)

    @classmethod
    def from_json(cls, d: Mapping) -> "SweepSpec":
        def num(v):
            return float(v) if isinstance(v, str) and v in ("inf", "-inf") else v

        d = dict(d)
        d["axes"] = [(k, [num(x) for x in v]) for k, v in d["axes"].items()]
        d["fixed"] = [(k, num(v)) for k, v in d["fixed"].items()]
        return cls(**d)

    def hash(self, chunk_size: int | None = None) -> str:
        """sha256 of the canonical JSON of the spec (and the chunk size, which fixes the chunk layout)."""
        # the axis order is part of the identity (it fixes the grid's layout), so it is hashed as a list
        payload = {"spec": self.to_json(), "dims": list(self.dims), "chunk_size": chunk_size}
        return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()


def default_chunk_size(spec: SweepSpec) -> int:
    """Default points per chunk: 2048 for the per-mode model (nothing is saved along a solve, so memory is
    small; chunks bound the work lost to a kill and feed one thread per core), else bounding a chunk's saved
    states to about 64 MB."""
    if spec.model == "modes":
        return 2048
    per_point = spec.n_save * 8 * 3 * spec.n * (spec.n1 or spec.n)
    return int(max(1, min(4096, (64 << 20) // per_point)))


def chunk_layout(spec: SweepSpec, chunk_size: int) -> list[np.ndarray]:
    """The chunks (flat grid indices, in :meth:`SweepSpec.order`) for at most ``chunk_size`` points each:
    ceil(size / chunk_size) chunks of equal size (differing by at most one point, so one compiled shape)."""
    n_chunks = -(-spec.size // chunk_size)
    return np.array_split(spec.order(), n_chunks)


def parallel_chunks(spec: SweepSpec) -> int:
    """How many chunks run at once locally: one per JAX device (pmap), else one per available CPU core
    (threads; a per-mode chunk solve runs on one core). The matrix model runs one chunk at a time."""
    import jax  # JAX is imported where a sweep is solved, so specs and grid errors stay cheap

    if spec.model != "modes":
        return 1
    ndev = len(jax.local_devices())
    if ndev > 1:
        return ndev
    return cores()


# ------------------------------------------------------------------------------------------ solving


@functools.lru_cache(maxsize=None)
def _pmapped(slots: int, max_steps: int):
    import jax

    from linsim.sweep_solver import solve_modes_points

    f = functools.partial(solve_modes_points, slots=slots, max_steps=max_steps)
    return jax.pmap(f, in_axes=(0, 0, 0, None, None, None, None, None))


def _pad(idx: np.ndarray, size: int) -> np.ndarray:
    return np.concatenate([idx, np.full(size - idx.size, idx[-1])]) if idx.size < size else idx


def _first_persist(ts: np.ndarray, g: np.ndarray) -> np.ndarray:
    """Per row of g (points x times): the time after which g <= 0 holds to the end, interpolated linearly
    inside the last crossing interval; NaN where g > 0 at the final time."""
    n, T = g.shape
    out = np.full(n, np.nan)
    ok = g <= 0
    fin = ok[:, -1]
    bad_any = ~ok
    # last index with g > 0 (or -1 if none)
    last_bad = np.where(bad_any.any(axis=1), T - 1 - np.argmax(bad_any[:, ::-1], axis=1), -1)
    j = np.clip(last_bad, 0, T - 2)
    rows = np.arange(n)
    g0, g1 = g[rows, j], g[rows, j + 1]
    with np.errstate(invalid="ignore", divide="ignore"):
        frac = np.where(np.isfinite(g0) & (g0 != g1), g0 / (g0 - g1), 1.0)
    t = ts[j] + (ts[j + 1] - ts[j]) * frac
    out[fin] = np.where(last_bad[fin] < 0, ts[0], t[fin])
    return out


def p_plus(eta: np.ndarray, sigma2: np.ndarray) -> np.ndarray:
    """p+ = [1 + sqrt(1 - 4 eta (1+sigma2))] / (2 (1+sigma2)), NaN beyond eta_c (docs/theory_dynamics.md; x = 1)."""
    k = 1.0 + np.asarray(sigma2, float)
    disc = 1.0 - 4.0 * np.asarray(eta, float) * k
    with np.errstate(invalid="ignore"):
        return np.where(disc >= 0, (1.0 + np.sqrt(np.maximum(disc, 0.0))) / (2.0 * k), np.nan)


def _quantities(spec, P, ts, p, s, tau, s0, c_scale, status, floor_s0=None):
    """The per-point outputs from saved series p, s (points x times) and final tau."""
    pp = p_plus(P["eta"], P["sigma2"])
    good = status == 0
    floor = spec.collapse_threshold * np.maximum(1.0, s0 if floor_s0 is None else floor_s0)
    collapsed = good & (s[:, -1] < floor)
    with np.errstate(invalid="ignore"):
        g = np.abs(p - pp[:, None]) - 0.01 * np.abs(pp)[:, None]
        g = np.where(np.isnan(g), np.inf, g)
    t1 = _first_persist(ts, g)
    converged = good & ~collapsed & np.isfinite(t1)
    t1 = np.where(converged, t1, np.nan)
    return {
        "collapsed": collapsed, "converged": converged,
        "p_final": np.where(good, p[:, -1], np.nan), "s_final": np.where(good, s[:, -1], np.nan),
        "tau_final": np.where(good & ~collapsed, tau, np.nan), "p_plus": pp, "t_1pct": t1,
        "status": status.astype(np.int8),
    }


def _mode_inputs(spec: SweepSpec, idx: np.ndarray, size: int):
    P = spec.params(_pad(idx, size))
    params = {"eta": P["eta"], "eta_p": P["eta_p"], "beta": P["beta"], "alpha_p": P["alpha_p"],
              "x": np.ones_like(P["eta"]), "xp": P["sigma2"]}
    return params, P["p0"], P["s0"]


_MODE_KEYS = (*QUANTITIES, "steps")


def _solve_modes_chunks(spec: SweepSpec, idx_list: list[np.ndarray], size: int) -> list[dict]:
    """Solve several padded chunks at once: under pmap with several local devices, else in threads."""
    import jax

    from linsim.sweep_solver import solve_modes_points

    consts = (spec.t_max, spec.rtol, spec.atol, DIVERGENCE_BOUND, spec.collapse_threshold)
    inputs = [_mode_inputs(spec, idx, size) for idx in idx_list]
    slots = min(SLOTS, size)
    if len(idx_list) > 1 and len(jax.local_devices()) > 1:
        stack = lambda j: jax.tree_util.tree_map(lambda *a: np.stack(a), *[inp[j] for inp in inputs])  # noqa: E731
        r = _pmapped(slots, spec.max_steps)(stack(0), stack(1), stack(2), *consts)
        results = [{k: np.asarray(r[k][i]) for k in _MODE_KEYS} for i in range(len(idx_list))]
    else:
        def one(inp):
            r = solve_modes_points(*inp, *consts, slots=slots, max_steps=spec.max_steps)
            return {k: np.asarray(r[k]) for k in _MODE_KEYS}

        if len(inputs) > 1:
            from concurrent.futures import ThreadPoolExecutor

            with ThreadPoolExecutor(len(inputs)) as pool:
                results = list(pool.map(one, inputs))
        else:
            results = [one(inputs[0])]
    return [{"idx": idx, **{k: v[: idx.size] for k, v in r.items()}} for idx, r in zip(idx_list, results)]


def _solve_matrix_chunk(spec: SweepSpec, idx: np.ndarray, size: int) -> dict:
    """Matrix model: vmap of linsim.solve.solve_adaptive over grid points sharing one seeded init."""
    import jax
    import jax.numpy as jnp

    from linsim.dynamics.variant import Variant
    from linsim.config import Config, Hyper, Init, Stats
    from linsim.initial import initial_state
    from linsim.solve import solve_adaptive

    P = spec.params(_pad(idx, size))
    ts = spec.ts()
    y0s = []
    n = spec.n
    for i in range(size):
        hyper = Hyper(eta=P["eta"][i], eta_p=P["eta_p"][i], beta=P["beta"][i], alpha_p=P["alpha_p"][i])
        cfg = Config(model="matrix", n1=spec.n1, hyper=hyper, stats=Stats.isotropic(n, P["sigma2"][i]),
                     init=Init(scale=spec.init_scale, seed=spec.seed, balanced=spec.balanced))
        y0s.append(initial_state(cfg))
    y0 = {k: jnp.asarray(np.stack([y[k] for y in y0s])) for k in y0s[0]}
    args = {k: jnp.asarray(P[k]) for k in ("eta", "eta_p", "beta", "alpha_p")}
    args["x"] = jnp.ones((size, n))  # isotropic statistics as diagonals: the field's 3-product form
    args["xp"] = jnp.asarray(P["sigma2"])[:, None] * jnp.ones(n)

    def one(y, a):
        ys, _, _, diverged, ok, steps = solve_adaptive(y, a, jnp.asarray(ts), 0.01, spec.rtol, spec.atol,
                                                       DIVERGENCE_BOUND, model="matrix", variant=Variant(),
                                                       method=spec.method, max_steps=spec.max_steps)
        return ys, diverged, ok, steps

    ys, div, ok, steps = jax.jit(jax.vmap(one))(y0, args)
    W, Wp, Wa = (np.asarray(ys[k]) for k in ("W", "Wp", "Wa"))
    Wa = np.where(np.isinf(P["beta"])[:, None, None, None], W, Wa)
    status = np.where(np.asarray(div), 1, np.where(np.asarray(ok), 0, 2))
    with np.errstate(invalid="ignore", divide="ignore", over="ignore"):
        Wc, Wpc, Wac = (np.nan_to_num(a, nan=0.0, posinf=0.0, neginf=0.0) for a in (W, Wp, Wa))
        s, p, tau, _, _, _ = inv.matrix_modes(Wc, Wpc, Wac, np.eye(n))
    s0max = s[:, 0].max(axis=-1)
    q = _quantities(spec, P, ts, p[..., 0], s[..., 0], tau[:, -1, 0], None, None, status, floor_s0=s0max)
    floor = spec.collapse_threshold * np.maximum(1.0, s0max)
    q["collapsed"] = (status == 0) & np.all(s[:, -1] < floor[:, None], axis=-1)
    q["frac_collapsed"] = np.where(status == 0, np.mean(s[:, -1] < floor[:, None], axis=-1), np.nan)
    q["converged"] &= ~q["collapsed"]
    bal = np.full(size, np.nan)
    for i in range(size):
        if status[i] == 0 and P["eta_p"][i] == P["eta"][i]:
            bal[i] = float(np.max(inv.balance_residual_matrix(ts, W[i], Wp[i], P["alpha_p"][i], P["eta"][i])))
    q["balance_residual"] = bal
    q["steps"] = np.asarray(steps).astype(np.int64)
    return {"idx": idx, **{k: v[: idx.size] for k, v in q.items()}}


def compute_chunks(spec: SweepSpec, idx_list: list[np.ndarray], size: int) -> list[dict]:
    """Solve chunks (flat-index arrays, each padded to ``size``); pure function of its inputs."""
    if spec.model == "matrix":
        return [_solve_matrix_chunk(spec, idx, size) for idx in idx_list]
    return _solve_modes_chunks(spec, idx_list, size)


def _chunk_task(spec: SweepSpec, idx: np.ndarray, size: int) -> dict:
    """The unit of work shipped to a Dask worker (importing linsim there switches on float64)."""
    import linsim  # noqa: F401

    return compute_chunks(spec, [idx], size)[0]


# ------------------------------------------------------------------------------------------ results


@dataclass
class SweepResult:
    """Labelled sweep output: ``data[name]`` has shape ``spec.shape`` with axes ``dims`` and values ``coords``."""

    spec: SweepSpec
    data: dict[str, np.ndarray]
    out_dir: Path | None = None
    files: list[str] = field(default_factory=list)
    info: dict[str, Any] = field(default_factory=dict)

    @property
    def dims(self) -> tuple[str, ...]:
        return self.spec.dims

    @property
    def coords(self) -> dict[str, np.ndarray]:
        return self.spec.coords

    def __getitem__(self, name: str) -> np.ndarray:
        return self.data[name]

    def summary(self) -> dict[str, Any]:
        d = self.data
        n = self.spec.size
        status = d["status"]
        unresolved = (status == 0) & ~d["collapsed"] & ~d["converged"]
        bal = d["balance_residual"]
        return {
            "grid_shape": list(self.spec.shape),
            "dims": list(self.dims),
            "n_points": n,
            "fraction_collapsed": float(np.mean(d["collapsed"])),
            "fraction_converged": float(np.mean(d["converged"])),
            "fraction_unresolved": float(np.mean(unresolved)),
            "fraction_diverged": float(np.mean(status == 1)),
            "fraction_max_steps": float(np.mean(status == 2)),
            "n_diverged": int(np.sum(status == 1)),
            "n_max_steps": int(np.sum(status == 2)),
            "max_balance_residual": float(np.nanmax(bal)) if np.any(np.isfinite(bal)) else None,
            "median_t_1pct": float(np.nanmedian(d["t_1pct"])) if np.any(np.isfinite(d["t_1pct"])) else None,
        }

    @classmethod
    def load(cls, out_dir: str | Path) -> "SweepResult":
        out_dir = Path(out_dir)
        meta = json.loads((out_dir / "sweep.json").read_text())
        spec = SweepSpec.from_json(meta["spec"])
        with np.load(out_dir / "sweep.npz") as z:
            data = {k: z[k] for k in z.files if not k.startswith("axis_") and k != "dims"}
        return cls(spec, data, out_dir, meta.get("files", []), meta.get("info", {}))


def _get_client(scheduler: Any):
    try:
        import distributed
    except ImportError:  # pragma: no cover - depends on the environment
        raise LinsimError("a Dask scheduler needs the optional dependency distributed: pip install linsim[dask]") from None
    if isinstance(scheduler, distributed.Client):
        return scheduler, False
    if isinstance(scheduler, str):
        try:
            return distributed.Client(scheduler, timeout="10s"), True
        except (OSError, TimeoutError, ValueError) as err:
            raise LinsimError(f"could not connect to the Dask scheduler {scheduler!r}: {err}") from None
    raise LinsimError(f"scheduler must be an address like tcp://host:8786 or a distributed.Client, got {scheduler!r}")


OWNED = ("chunks", "spec.json", "sweep.npz", "sweep.json")


def _owned_names(out: Path) -> set[str]:
    """Entries of a sweep folder that linsim wrote: OWNED, the sweep*.png plots and the bookkeeping files."""
    from linsim.io import BOOKKEEPING

    return set(OWNED) | {p.name for p in out.glob("sweep*.png")} | set(BOOKKEEPING)


def _shown(names: list[str]) -> str:
    return ", ".join(names[:3]) + (f" and {len(names) - 3} more" if len(names) > 3 else "")


def prepare_sweep_out(spec: SweepSpec, out_dir: str | Path, chunk_size: int, force: bool = False) -> tuple[Path, bool]:
    """Check (without writing) that ``out_dir`` can take this sweep; returns (path, resuming).

    A folder whose spec.json has the same hash resumes; a different hash is refused unless ``force`` (which
    replaces the sweep's own files only: OWNED and sweep*.png; other files in the folder are kept). A
    damaged sweep folder (spec.json not a readable file) is refused unless ``force``. A non-empty folder
    without spec.json is refused, with or without ``force``, unless it holds only a sweep's own files. The
    place must be writable (:func:`linsim.io.check_writable`); stale temporaries of dead processes go.
    """
    from linsim.io import check_writable, clean_stale_tmp, is_stale_tmp

    out = Path(out_dir)
    h = spec.hash(chunk_size)
    if (out.exists() or out.is_symlink()) and not out.is_dir():
        raise LinsimError(f"output path {out} exists and is not a folder; choose another --out")
    check_writable(out)
    if not out.is_dir():
        return out, False
    clean_stale_tmp(out)
    clean_stale_tmp(out / "chunks")
    spec_path = out / "spec.json"
    owned = _owned_names(out)
    entries = [p.name for p in out.iterdir() if not is_stale_tmp(p.name)]
    foreign = sorted(n for n in entries if n not in owned)
    chunks = out / "chunks"
    if (chunks.exists() or chunks.is_symlink()) and not chunks.is_dir():  # tampered: replace or refuse
        if force and not foreign:
            return out, False
        hint = "--force to replace the sweep's files" if not foreign else "remove it by hand"
        raise LinsimError(f"{out} holds a damaged sweep (chunks is not a folder); use another --out or {hint}")
    if spec_path.is_file():
        try:
            old = json.loads(spec_path.read_text())["hash"]
        except (OSError, ValueError, KeyError, TypeError):
            old = None
        if old == h:
            return out, True
        if not force:
            if old is None:
                raise LinsimError(f"{out} holds a damaged sweep (spec.json is not a readable sweep spec); "
                                  "use another --out or --force to replace the sweep's files")
            raise LinsimError(f"{out} holds a sweep with a different spec or chunk size (hash {str(old)[:12]} != "
                              f"{h[:12]}); use another --out or --force to replace the sweep's files")
        return out, False
    if spec_path.exists() or spec_path.is_symlink():  # a folder or something else where the spec belongs
        if force and not foreign:
            return out, False
        hint = "--force to replace the sweep's files" if not foreign else "remove it by hand"
        raise LinsimError(f"{out} holds a damaged sweep (spec.json is not a file); use another --out or {hint}")
    if foreign:
        raise LinsimError(f"output folder {out} is not a sweep folder: it holds files linsim did not write "
                          f"({_shown(foreign)}); linsim never replaces them: choose another --out")
    from linsim.io import BOOKKEEPING

    if not force and any(n not in BOOKKEEPING for n in entries):  # sweep files without their spec.json
        raise LinsimError(f"{out} holds a damaged sweep (no spec.json); use another --out or --force to replace "
                          "the sweep's files")
    return out, False


prepare_out = prepare_sweep_out  # the older name


def _check_chunk(path: Path, idx: np.ndarray, model: str) -> bool:
    """True if ``path`` is a finished chunk for flat indices ``idx``, False if it does not exist; LinsimError
    naming the file if it exists but is not such a chunk (a tampered or foreign file)."""
    if not (path.exists() or path.is_symlink()):
        return False
    where = f"{path.parent.parent}: chunks/{path.name}"
    need = {"idx", "steps", *QUANTITIES} | ({"frac_collapsed"} if model == "matrix" else set())
    kinds = {"collapsed": "b", "converged": "b", "status": "iu", "steps": "iu", "idx": "iu"}
    try:
        with np.load(path, allow_pickle=False) as z:
            arrays = {k: z[k] for k in z.files}
    except Exception as err:  # noqa: BLE001  (any unreadable file is damage)
        raise LinsimError(f"{where} is damaged ({type(err).__name__}); delete it to recompute that chunk") from None
    missing = sorted(need - set(arrays))
    if missing:
        raise LinsimError(f"{where} is damaged (missing {', '.join(missing)}); delete it to recompute that chunk")
    for k in need:
        a = arrays[k]
        if a.dtype.kind not in kinds.get(k, "f") or a.shape != idx.shape:
            raise LinsimError(f"{where} is damaged ({k} has dtype {a.dtype} and shape {a.shape}, expected "
                              f"{'integer' if kinds.get(k) == 'iu' else 'bool' if kinds.get(k) == 'b' else 'float'} "
                              f"of shape {idx.shape}); delete it to recompute that chunk")
    if not np.array_equal(arrays["idx"], idx):
        raise LinsimError(f"{where} holds other grid points than this sweep's chunk; delete it to recompute it")
    return True


def _local_devices() -> int:
    import jax

    return len(jax.local_devices())


def _threaded(spec: SweepSpec, chunks: list[np.ndarray], todo: list[int], size: int,
              save: Callable[[int, dict], None]) -> None:
    """Per-mode chunks on a pool of one thread per core (a chunk solve runs on one core and releases the
    GIL), each saved as soon as it is done; an exception (e.g. from ``save``) cancels the chunks not started."""
    from concurrent.futures import ThreadPoolExecutor, as_completed

    pool = ThreadPoolExecutor(parallel_chunks(spec))
    try:
        futs = {pool.submit(compute_chunks, spec, [chunks[i]], size): i for i in todo}
        for fut in as_completed(futs):
            save(futs[fut], fut.result()[0])
    finally:
        pool.shutdown(wait=True, cancel_futures=True)


def run_sweep(spec: SweepSpec, out_dir: str | Path, chunk_size: int | None = None, progress: bool = True,
              scheduler: Any = None, *, force: bool = False,
              on_chunk: Callable[[int, int], None] | None = None) -> SweepResult:
    """Solve every grid point of ``spec`` in chunks, resumably, and write sweep.npz / sweep.json.

    ``chunk_size``: points per chunk (default :func:`default_chunk_size`, bounding memory). ``scheduler``: a
    Dask address (``"tcp://..."``) or a ``distributed.Client``: chunks are computed on the cluster and
    written here. ``force``: replace a folder holding a different sweep (only linsim's own files are
    removed). ``on_chunk(done, total)``: called after each chunk is saved (raising there stops the sweep;
    a rerun resumes). Resumed sweeps are bit-identical to uninterrupted ones.

    The folder is locked while the sweep writes it (:func:`linsim.io.lock_dir`): a second sweep into the
    same folder waits for the first, then resumes from (or, with ``force``, replaces) what it finished.
    """
    from linsim.io import lock_dir

    if not isinstance(spec, SweepSpec):
        raise LinsimError("run_sweep needs a SweepSpec")
    cs = default_chunk_size(spec) if chunk_size is None else chunk_size
    if not (isinstance(cs, (int, np.integer)) and cs >= 1):
        raise LinsimError(f"chunk_size must be a positive integer, got {chunk_size!r}")
    cs = int(min(cs, spec.size))
    out, resuming = prepare_sweep_out(spec, out_dir, cs, force)
    client = owns_client = None
    if scheduler is not None:
        client, owns_client = _get_client(scheduler)
    try:
        with lock_dir(out, what="linsim sweep"):
            out, resuming = prepare_sweep_out(spec, out, cs, force)  # again: a sweep we waited for may have finished
            return _run_locked(spec, out, cs, resuming, progress, client, on_chunk)
    finally:
        if owns_client:
            client.close()


def _run_locked(spec: SweepSpec, out: Path, cs: int, resuming: bool, progress: bool, client: Any,
                on_chunk: Callable[[int, int], None] | None) -> SweepResult:
    """run_sweep's body, with the folder checked and locked."""
    from linsim.io import write_manifest

    if not resuming:
        for name in OWNED:
            target = out / name
            if target.is_dir() and not target.is_symlink():
                shutil.rmtree(target)
            elif target.exists() or target.is_symlink():
                target.unlink()
        for png in out.glob("sweep*.png"):
            png.unlink()
    chunk_dir = out / "chunks"
    chunk_dir.mkdir(parents=True, exist_ok=True)
    h = spec.hash(cs)
    if not resuming:
        atomic_write_json(out / "spec.json", {"hash": h, "chunk_size": cs, "spec": spec.to_json(),
                                              "linsim_version": linsim.__version__})
        write_manifest(out, "sweep", (*OWNED, "sweep.png"))
    chunks = chunk_layout(spec, cs)
    n_chunks, size = len(chunks), max(c.size for c in chunks)
    path_of = lambda i: chunk_dir / f"chunk_{i:05d}.npz"  # noqa: E731

    def finished(i: int) -> bool:
        return _check_chunk(path_of(i), chunks[i], spec.model)

    todo = [i for i in range(n_chunks) if not finished(i)]
    n_done = n_chunks - len(todo)
    t0 = time.perf_counter()
    bar = ProgressBar(progress, "sweep", "chunks", n_chunks, n_done)

    def save(i: int, res: dict) -> None:
        nonlocal n_done
        atomic_savez(path_of(i), **res)
        n_done += 1
        bar.advance()
        if on_chunk is not None:
            on_chunk(n_done, n_chunks)

    try:
        if client is not None:
            from distributed import as_completed

            futs = {client.submit(_chunk_task, spec, chunks[i], size, pure=False): i for i in todo}
            for fut in as_completed(list(futs)):
                save(futs[fut], fut.result())
        elif spec.model == "modes" and _local_devices() == 1 and parallel_chunks(spec) > 1:
            _threaded(spec, chunks, todo, size, save)
        else:
            at_once = parallel_chunks(spec)
            for g in range(0, len(todo), at_once):
                group = todo[g:g + at_once]
                for i, res in zip(group, compute_chunks(spec, [chunks[i] for i in group], size)):
                    save(i, res)
    finally:
        bar.close()
    elapsed = time.perf_counter() - t0
    result = assemble(spec, out, n_chunks)
    result.info.update({"chunk_size": cs, "points_per_chunk": size, "n_chunks": n_chunks,
                        "chunks_resumed": n_chunks - len(todo), "wall_s": elapsed, "hash": h,
                        "scheduler": None if client is None else str(getattr(client, "scheduler", client))})
    write_result(result)
    return result


def assemble(spec: SweepSpec, out: Path, n_chunks: int) -> SweepResult:
    """Scatter the chunk files into labelled arrays of the grid's shape."""
    flat: dict[str, np.ndarray] = {}
    for i in range(n_chunks):
        with np.load(out / "chunks" / f"chunk_{i:05d}.npz") as z:
            idx = z["idx"]
            for k in z.files:
                if k == "idx":
                    continue
                if k not in flat:
                    fill = False if z[k].dtype == bool else (-1 if np.issubdtype(z[k].dtype, np.integer) else np.nan)
                    flat[k] = np.full(spec.size, fill, dtype=z[k].dtype)
                flat[k][idx] = z[k]
    data = {k: v.reshape(spec.shape) for k, v in flat.items()}
    return SweepResult(spec, data, out)


def write_result(result: SweepResult) -> None:
    """Write sweep.npz (quantities + axis_<name> coordinates + dims) and sweep.json (grid, spec, summary)."""
    out = result.out_dir
    spec = result.spec
    arrays = dict(result.data)
    arrays.update({f"axis_{n}": v for n, v in spec.coords.items()})
    arrays["dims"] = np.array(spec.dims)
    atomic_savez(out / "sweep.npz", **arrays)
    files = sorted({*result.files, str(out / "sweep.npz"), str(out / "sweep.json")})
    result.files = files
    atomic_write_json(out / "sweep.json", {
        "linsim_version": linsim.__version__,
        "grid": {"dims": list(spec.dims), "shape": list(spec.shape), "coords": spec.coords},
        "spec": spec.to_json(),
        "quantities": sorted(result.data),
        "summary": result.summary(),
        "info": result.info,
        "files": files,
    })


def sweep(axes: Mapping[str, Any], out_dir: str | Path, **kwargs: Any) -> SweepResult:
    """Convenience: ``sweep({"eta": "0:0.2:50", "alpha_p": "0.5,1,2,10"}, "runs/x", sigma2=0.5)``.

    Keyword arguments that name parameters become fixed values; the others go to :class:`SweepSpec` or
    :func:`run_sweep` (chunk_size, progress, scheduler, force).
    """
    run_kw = {k: kwargs.pop(k) for k in ("chunk_size", "progress", "scheduler", "force", "on_chunk") if k in kwargs}
    fixed = {k: kwargs.pop(k) for k in list(kwargs) if k in MODE_AXES}
    return run_sweep(SweepSpec(axes=axes, fixed=fixed, **kwargs), out_dir, **run_kw)


__all__ = ["SweepSpec", "SweepResult", "parse_grid", "run_sweep", "sweep", "default_chunk_size",
           "compute_chunks", "p_plus", "DEFAULTS", "QUANTITIES"]


if __name__ == "__main__":  # pragma: no cover
    print(parse_grid(sys.argv[1]))
