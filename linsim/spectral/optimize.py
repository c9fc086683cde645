"""Gradient-based minimisation of a JAX loss from random starts (the "GD" side of closed form vs GD, §2.5-2.6)."""
from __future__ import annotations

from dataclasses import dataclass

import jax
import jax.numpy as jnp
import numpy as np
import scipy.optimize

__all__ = ["OptResult", "minimize_restarts"]


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
    for x0 in starts:
        res = scipy.optimize.minimize(fun, x0, jac=True, method="L-BFGS-B",
                                      options={"maxiter": maxiter, "gtol": gtol, "ftol": 1e-15})
        v = float(vg(jnp.asarray(res.x))[0])
        values.append(v)
        if np.isfinite(v) and v < best_v:
            best_x, best_v = res.x.reshape(shape), v
    return OptResult(x=best_x, value=best_v, values=np.asarray(values))
