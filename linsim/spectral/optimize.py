"""Gradient-based minimisation of a JAX loss from several starts: the "GD" side of closed form vs GD, and the
multi-start certified optimiser used where no closed form applies (docs/spectral.md)."""
from __future__ import annotations

import functools
from dataclasses import dataclass

import jax
import jax.numpy as jnp
import numpy as np
import scipy.optimize

__all__ = ["Certified", "OptResult", "minimize_restarts", "multistart"]


def _one_blas_thread():
    """Limit BLAS to one thread while scipy's L-BFGS-B runs: its many tiny BLAS calls are ~20x slower when a
    multi-threaded OpenBLAS competes for shared cores (observed). A no-op without threadpoolctl."""
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:  # pragma: no cover - optional
        import contextlib

        return contextlib.nullcontext()
    return threadpool_limits(limits=1, user_api="blas")


@dataclass(frozen=True)
class OptResult:
    """Best point and value over the restarts, with every restart's final value."""

    x: np.ndarray
    value: float
    values: np.ndarray


def minimize_restarts(loss, shape, n_starts=5, seed=0, scale=1.0, x0s=None, maxiter=3000, gtol=1e-10):
    """Minimise ``loss(x)`` (x of ``shape``) by scipy L-BFGS on jitted JAX gradients from random N(0, scale²) starts.

    ``x0s`` (a list of arrays) are extra deterministic starts tried before the random ones.
    """
    shape = tuple(int(s) for s in shape)
    vg = jax.jit(jax.value_and_grad(lambda v: loss(jnp.reshape(v, shape))))

    def fun(v):
        val, g = vg(jnp.asarray(v))
        val, g = float(val), np.asarray(g, dtype=float)
        if not np.isfinite(val) or not np.all(np.isfinite(g)):
            return np.inf, np.zeros_like(g)
        return val, g

    rng = np.random.default_rng(seed)
    starts = [np.asarray(x, dtype=float).ravel() for x in (x0s or [])]
    starts += [scale * rng.standard_normal(int(np.prod(shape))) for _ in range(int(n_starts))]
    best_x, best_v, values = None, np.inf, []
    with _one_blas_thread():
        for x0 in starts:
            res = scipy.optimize.minimize(fun, x0, jac=True, method="L-BFGS-B",
                                          options={"maxiter": maxiter, "gtol": gtol, "ftol": 1e-15})
            v = float(vg(jnp.asarray(res.x))[0])
            values.append(v)
            if np.isfinite(v) and v < best_v:
                best_x, best_v = res.x.reshape(shape), v
    return OptResult(x=best_x, value=best_v, values=np.asarray(values))


@dataclass(frozen=True)
class Certified:
    """Best point of a multi-start local search, with every start's final value (its spread over restarts).

    ``n_at_best`` counts the starts that ended within ``rtol`` (relative) of the best value: several
    independent starts agreeing is the evidence, not a proof, that the best value is the global minimum.
    """

    x: np.ndarray
    value: float
    values: np.ndarray
    rtol: float

    @property
    def n_at_best(self) -> int:
        """Number of starts whose final value is within ``rtol`` of the best (relative, floor 1e-300)."""
        return int(np.sum(self.values <= self.value + self.rtol * max(abs(self.value), 1e-300)))

    def spread(self) -> dict:
        """JSON-ready summary: restarts, best, median, worst, and how many restarts reached the best."""
        v = self.values[np.isfinite(self.values)]
        return {"restarts": int(self.values.size), "best": self.value, "median": float(np.median(v)),
                "worst": float(np.max(v)), "n_at_best": self.n_at_best, "rtol": self.rtol}


def _newton_polish(vg, hess, x, lower, upper, iters=40):
    """Projected (modified) Newton steps from ``x`` on the free variables; keeps only steps that lower the value."""
    f, g = vg(x)
    for _ in range(iters):
        at_lo = (x <= lower + 1e-14) & (g > 0)
        at_hi = (x >= upper - 1e-14) & (g < 0)
        free = ~(at_lo | at_hi)
        if not np.any(free):
            break
        H = hess(x)[np.ix_(free, free)]
        w, V = np.linalg.eigh(0.5 * (H + H.T))
        keep = np.abs(w) > 1e-12 * max(np.max(np.abs(w)), 1e-300)
        gf = g[free]
        step = np.zeros_like(x)
        step[free] = -V[:, keep] @ ((V[:, keep].T @ gf) / np.abs(w[keep]))  # |eigenvalue|: no uphill at saddles
        t, improved = 1.0, False
        for _ in range(30):
            xn = np.clip(x + t * step, lower, upper)
            fn, gn = vg(xn)
            if np.isfinite(fn) and fn < f:
                x, f, g, improved = xn, fn, gn, True
                break
            t *= 0.5
        if not improved:
            break
    return x, f


@functools.lru_cache(maxsize=None)
def _compiled(loss, gauge):
    """Jitted value-and-gradient and Hessian of loss + gauge, and the loss alone (compiled once per shape)."""

    def obj(v, *args):
        return loss(v, *args) if gauge is None else loss(v, *args) + gauge(v, *args)

    return jax.jit(jax.value_and_grad(obj)), jax.jit(jax.hessian(obj)), jax.jit(loss)


def multistart(loss, starts, args=(), bounds=None, gauge=None, maxiter=2000, polish=True, rtol=1e-9) -> Certified:
    """Minimise a smooth JAX ``loss(v, *args)`` (v flat) from every start: L-BFGS-B, then projected Newton polish.

    ``bounds``: ``(lower, upper)`` arrays (±inf allowed) or None. ``gauge(v, *args)``: a penalty that is zero on
    a slice meeting every orbit of a symmetry of ``loss`` (e.g. Σ(|u_k|² − 1)² for scale-invariant columns);
    it is added while optimising, so that flat directions neither stall L-BFGS nor make the Hessian singular,
    and left out of the reported values. Pass module-level functions (not closures) so that the compiled
    functions are reused across calls. Returns a :class:`Certified` with the best point and the final value
    of every start. Intended for small problems (the Newton polish forms the Hessian).
    """
    starts = [np.asarray(s, dtype=float).ravel() for s in starts]
    n = starts[0].size
    lower = np.full(n, -np.inf) if bounds is None else np.asarray(bounds[0], dtype=float)
    upper = np.full(n, np.inf) if bounds is None else np.asarray(bounds[1], dtype=float)
    vg_c, hess_c, loss_c = _compiled(loss, gauge)
    args = tuple(jnp.asarray(a) for a in args)
    vg_j = lambda v: vg_c(v, *args)  # noqa: E731
    hess_j = lambda v: hess_c(v, *args)  # noqa: E731
    loss_j = lambda v: loss_c(v, *args)  # noqa: E731

    def vg(v):
        val, g = vg_j(jnp.asarray(v))
        val, g = float(val), np.asarray(g, dtype=float)
        if not np.isfinite(val) or not np.all(np.isfinite(g)):
            return np.inf, np.zeros_like(g)
        return val, g

    def hess(v):
        H = np.asarray(hess_j(jnp.asarray(v)), dtype=float)
        return np.where(np.isfinite(H), H, 0.0)

    sb = None if bounds is None else list(zip(np.where(np.isfinite(lower), lower, None),
                                             np.where(np.isfinite(upper), upper, None)))
    best_x, best_v, values = None, np.inf, []
    with _one_blas_thread():
        for x0 in starts:
            x, v = _one_start(vg, hess, loss_j, x0, lower, upper, sb, maxiter, polish)
            values.append(v)
            if np.isfinite(v) and v < best_v:
                best_x, best_v = x, v
    return Certified(x=best_x, value=float(best_v), values=np.asarray(values, dtype=float), rtol=rtol)


def _one_start(vg, hess, loss_j, x0, lower, upper, sb, maxiter, polish):
    """L-BFGS-B from x0, then the Newton polish; returns (x, loss without gauge)."""
    x0 = np.clip(x0, lower, upper)
    res = scipy.optimize.minimize(vg, x0, jac=True, method="L-BFGS-B", bounds=sb,
                                  options={"maxiter": maxiter, "gtol": 1e-13, "ftol": 1e-16, "maxcor": 30})
    x = np.clip(res.x, lower, upper)
    if polish and np.isfinite(vg(x)[0]):
        x, _ = _newton_polish(vg, hess, x, lower, upper)
    v = float(loss_j(jnp.asarray(x)))
    return x, (v if np.isfinite(v) else np.inf)
