"""Per-eigenmode dynamics of the linear BYOL/SimSiam model and its analytic picture.

State ``{"p", "w", "wa"}`` (arrays of shape (m,)): p is an eigenvalue of Wp, s = w^2 the matching eigenvalue
of F = W X W^T, and tau = wa / w (the EMA ratio). The (p, w, wa) form is the n = n1 = 1 case of the matrix
field, well posed through collapse (docs/theory_dynamics.md, per-mode reduction). Args: ``eta, eta_p, beta, alpha_p`` and per-mode data and
augmentation variances ``x, xp`` (isotropic: x = 1, xp = sigma2).
Reference: Tian, Chen & Ganguli, "Understanding Self-supervised Learning Dynamics without Contrastive Pairs", ICML 2021
(the decoupled per-mode dynamics); docs/theory_dynamics.md (reduction, fixed points, basins, EMA).
"""
from __future__ import annotations

import functools
import math
from dataclasses import dataclass

import jax
import jax.numpy as jnp
import numpy as np

from linsim.dynamics.variant import Variant, ema_parts


def modes_field(t, state, args, variant: Variant = Variant()):
    """e = x w_a - (x+x') p w; dp = a_p w e - eta_p p; dw = p e - eta w; dw_a = beta (w - w_a) (Lemma 1 at n = n1 = 1)."""
    p, w, wa = state["p"], state["w"], state["wa"]
    x, xp = args["x"], args["xp"]
    simsiam, beta = ema_parts(args["beta"])
    wa = w if not variant.stop_grad else jnp.where(simsiam, w, wa)  # no stop-grad: target = online (TCG21 Theorem 2)
    pe = jnp.ones_like(p) if variant.predictor == "identity" else p
    e = x * wa - (x + xp) * pe * w
    dw = pe * e - args["eta"] * w
    if not variant.stop_grad:  # gradient through the target branch too (Theorem 2, scalar case)
        dw = dw + pe * w * x - w * (x + xp)
    if variant.predictor == "identity":
        dp = jnp.zeros_like(p)
    else:
        dp = args["alpha_p"] * w * e - args["eta_p"] * p
    dwa = dw if not variant.stop_grad else jnp.where(simsiam, dw, beta * (w - wa))
    return {"p": dp, "w": dw, "wa": dwa}


def pst_view(state):
    """(p, s, tau) = (p, w^2, w_a / w) (TCG21's chart vs the amplitudes); tau is NaN where w = 0 (collapsed)."""
    p, w, wa = (jnp.asarray(state[k]) for k in ("p", "w", "wa"))
    safe = jnp.where(w == 0, 1.0, w)
    return p, w**2, jnp.where(w == 0, jnp.nan, wa / safe)


def pst_field(p, s, tau, x=1.0, xp=0.5, eta=0.0, alpha_p=1.0, beta=1.0):
    """The 3-D (p, s, tau) system of TCG21's per-mode analysis (valid while s > 0)."""
    k = x + xp
    dp = alpha_p * s * (x * tau - k * p) - eta * p
    ds = 2 * p * s * (x * tau - k * p) - 2 * eta * s
    dtau = beta * (1 - tau) - tau * ds / (2 * s)
    return dp, ds, dtau


# ------------------------------------------- fixed points and stability (docs/theory_dynamics.md, fixed points)


def eta_critical(x=1.0, xp=0.5):
    """eta_c = x^2 / (4 (x + x')); isotropic: 1 / (4 (1 + sigma2)) (docs/theory_dynamics.md)."""
    return x**2 / (4.0 * (x + xp))


@dataclass(frozen=True)
class FixedPoints:
    """Non-trivial fixed points p+/p- (s = (eta_p/eta) p^2 / alpha_p, tau = 1) and eta_c (docs/theory_dynamics.md)."""

    p_plus: float
    p_minus: float
    s_plus: float
    s_minus: float
    eta_c: float
    exists: bool


def fixed_points(eta, alpha_p=1.0, sigma2=0.5, x=1.0, eta_p=None) -> FixedPoints:
    """p^+- = [x +- sqrt(x^2 - 4 eta (x+x'))] / (2 (x+x')), s^+- = p^2 eta_p / (eta alpha_p) (docs/theory_dynamics.md).

    With eta = eta_p = 0 the non-trivial set is the line p = x/(x+x') of any s; s is then reported on the
    balanced parabola s = p^2/alpha_p, and p- = 0 is the line of collapsed states. NaN (exists=False) where
    they do not exist: eta >= eta_c, or exactly one of eta and eta_p is zero.
    """
    xp = sigma2
    k = x + xp
    eta_p = eta if eta_p is None else eta_p
    disc = x**2 - 4.0 * eta * k
    eta_c = eta_critical(x, xp)
    # No non-trivial fixed point if the discriminant is negative, or if exactly one of eta, eta_p is 0
    # (eta = 0 < eta_p: p decays while s grows without bound; eta > 0 = eta_p: only s = 0 is fixed).
    if disc < 0 or (eta == 0) != (eta_p == 0):
        return FixedPoints(math.nan, math.nan, math.nan, math.nan, eta_c, False)
    r = math.sqrt(disc)
    pp, pm = (x + r) / (2 * k), (x - r) / (2 * k)
    ratio = 1.0 if eta == 0 else eta_p / eta
    return FixedPoints(pp, pm, ratio * pp**2 / alpha_p, ratio * pm**2 / alpha_p, eta_c, True)


def _single_field(y, args, variant):
    """The per-mode field on a flat vector [p, w, wa] (or [p, w] for SimSiam)."""
    state = {"p": y[0], "w": y[1], "wa": y[2] if y.shape[0] == 3 else y[1]}
    d = modes_field(0.0, state, args, variant)
    out = [d["p"], d["w"]] + ([d["wa"]] if y.shape[0] == 3 else [])
    return jnp.stack(out)


@functools.partial(jax.jit, static_argnames=("variant", "simsiam"))
def _jacobian_at(p, s, args, variant: Variant, simsiam: bool):
    w = jnp.sqrt(s)
    y = jnp.stack([p, w] + ([] if simsiam else [w]))
    return jax.jacfwd(_single_field)(y, args, variant)


def jacobian(p, s, args, variant: Variant = Variant()):
    """Jacobian of the (p, w, w_a) field at (p, w = sqrt(s), w_a = w), by jax.jacfwd; 2x2 for SimSiam.

    One compiled function per (variant, SimSiam or not, argument shapes), instead of one small compilation
    per operation of an eager jacfwd."""
    simsiam = bool(np.isinf(np.asarray(args["beta"])))
    f64 = lambda v: jnp.asarray(np.asarray(v, dtype=np.float64))  # noqa: E731
    return _jacobian_at(f64(p), f64(s), {k: f64(v) for k, v in args.items()}, variant=variant, simsiam=simsiam)


def classify(eigs, tol=1e-12) -> str:
    """'stable' (all Re < 0), 'unstable' (all Re > 0), 'saddle' (mixed) or 'marginal' (some |Re| <= tol)."""
    re = np.real(np.asarray(eigs))
    if np.any(np.abs(re) <= tol):
        return "marginal"
    if np.all(re < 0):
        return "stable"
    if np.all(re > 0):
        return "unstable"
    return "saddle"


def stability(p, s, args, variant: Variant = Variant()):
    """(eigenvalues, classification) of the Jacobian at (p, s, tau = 1)."""
    eig = np.linalg.eigvals(np.asarray(jacobian(p, s, args, variant)))
    eig = eig[np.argsort(np.real(eig))]
    return eig, classify(eig)


# ------------------------------------------------ eta = 0 closed forms (docs/theory_dynamics.md, basins)


def collapses_eta0(p0, s0, alpha_p=1.0, sigma2=0.5):
    """Exact eta = 0, tau = 1 basin: (p0 < 0 and s0 < p0^2/a_p) or (p0 > 1/k and s0 < (p0^2 - k^-2)/a_p) (docs/theory_dynamics.md)."""
    k = 1.0 + sigma2
    p0, s0 = np.asarray(p0), np.asarray(s0)
    return ((p0 < 0) & (s0 < p0**2 / alpha_p)) | ((p0 > 1 / k) & (s0 < (p0**2 - k**-2) / alpha_p))


def _t_of_p(p, c, alpha_p, k):
    """Antiderivative t(p) of dt/dp = 1 / ((p^2 + alpha_p c)(1 - k p)) (docs/theory_dynamics.md), up to a constant."""
    p = np.asarray(p, dtype=float)
    if abs(alpha_p * c) <= 1e-14:  # on the balanced parabola up to rounding: the c = 0 branch is exact there
        c = 0.0
    if c == 0:
        return -1.0 / p + k * np.log(np.abs(p / (1 - k * p)))
    if c > 0:
        q = math.sqrt(alpha_p * c)
        C = k**2 / (1 + k**2 * q**2)
        return (C / (2 * k)) * np.log(p**2 + q**2) + (C / (k**2 * q)) * np.arctan(p / q) - (C / k) * np.log(np.abs(1 - k * p))
    r = math.sqrt(-alpha_p * c)
    a = 1 / (2 * r * (1 - k * r))
    b = -1 / (2 * r * (1 + k * r))
    e = k**2 / (1 - k**2 * r**2)
    return a * np.log(np.abs(p - r)) + b * np.log(np.abs(p + r)) - (e / k) * np.log(np.abs(1 - k * p))


def time_between(p0, p, c, alpha_p=1.0, sigma2=0.5):
    """Time for the eta = 0, tau = 1 flow dp/dt = (p^2 + alpha_p c)(1 - k p) to go from p0 to p (docs/theory_dynamics.md)."""
    k = 1.0 + sigma2
    return _t_of_p(p, c, alpha_p, k) - _t_of_p(p0, c, alpha_p, k)


def tau_ema(ts, ps, beta):
    """tau(t) = e^{-beta t} [p(0) + beta int_0^t p e^{beta t'} dt'] / p(t) (eta = 0, c = 0; docs/theory_dynamics.md, EMA).

    The integral uses the trapezoid rule on the given (fine) time grid.
    """
    ts, ps = np.asarray(ts, float), np.asarray(ps, float)
    g = ps * np.exp(beta * (ts - ts[-1]))  # scaled by e^{-beta t_end} against overflow
    integral = np.concatenate([[0.0], np.cumsum(0.5 * (g[1:] + g[:-1]) * np.diff(ts))])
    num = ps[0] * np.exp(-beta * ts[-1]) + beta * integral
    return np.exp(-beta * (ts - ts[-1])) * num / ps


# ------------------------------------------------------------------ eta > 0: the basin edge (docs/theory_dynamics.md)


def _ps_field(p, s, x, xp, eta, eta_p, alpha_p):
    """The tau = 1 (SimSiam) per-mode field in (p, s): dp = a_p s (x - k p) - eta_p p, ds = 2 s (p (x - k p) - eta)."""
    g = x - (x + xp) * p
    return alpha_p * s * g - eta_p * p, 2.0 * s * (p * g - eta)


def basin_boundary(eta, alpha_p=1.0, sigma2=0.5, x=1.0, eta_p=None, p_lim=(-2.0, 2.0), s_max=3.0, delta=1e-7):
    """Edge of the collapse basin for eta > 0, tau = 1: the two branches of the stable manifold of the saddle p-.

    Each branch is integrated backwards in time (scipy LSODA, rtol 1e-10) from p- +/- delta * v, v the
    Jacobian's stable eigenvector, until it leaves p_lim x (0, s_max]. Returns a list of two (2, n) arrays
    [p; s], each starting at the saddle; [] where p- does not exist (eta = 0 or eta >= eta_c). The collapse
    basin is the region below/left of this curve that contains the origin (docs/theory_dynamics.md, basins).
    """
    from scipy.integrate import solve_ivp

    fp = fixed_points(eta, alpha_p, sigma2, x=x, eta_p=eta_p)
    eta_p = eta if eta_p is None else eta_p
    if not fp.exists or eta == 0:
        return []
    xp = sigma2
    k = x + xp
    p0, s0 = fp.p_minus, fp.s_minus
    # Jacobian of the (p, s) field at the saddle (analytic)
    g = x - k * p0
    J = np.array([[-alpha_p * s0 * k - eta_p, alpha_p * g], [2.0 * s0 * (g - k * p0), 2.0 * (p0 * g - eta)]])
    lam, vec = np.linalg.eig(J)
    v = np.real(vec[:, int(np.argmin(np.real(lam)))])
    v = v / np.linalg.norm(v)

    def back(t, y):
        dp, ds = _ps_field(y[0], y[1], x, xp, eta, eta_p, alpha_p)
        return [-dp, -ds]

    def leave(t, y):
        return min(y[0] - p_lim[0], p_lim[1] - y[0], s_max - y[1], y[1])

    leave.terminal = True
    scale = max(abs(p0), s0, 1e-3)
    branches = []
    for sign in (1.0, -1.0):
        y0 = [p0 + sign * delta * scale * v[0], s0 + sign * delta * scale * v[1]]
        sol = solve_ivp(back, (0.0, 1e5), y0, method="LSODA", rtol=1e-10, atol=1e-14, events=leave, dense_output=False,
                        max_step=np.inf)
        path = np.concatenate([[[p0], [s0]], sol.y], axis=1)
        branches.append(path)
    return branches


def in_collapse_basin(p0, s0, eta, alpha_p=1.0, sigma2=0.5, x=1.0):
    """True where (p0, s0) lies in the tau = 1 (SimSiam) collapse basin: the exact eta = 0 formula, everything for
    eta >= eta_c, else the region below the saddle's stable manifold (:func:`basin_boundary`)."""
    from matplotlib.path import Path as _Path

    p0, s0 = np.broadcast_arrays(np.asarray(p0, float), np.asarray(s0, float))
    if eta == 0:
        return collapses_eta0(p0, s0, alpha_p, sigma2)
    if eta >= eta_critical(x, sigma2):
        return np.ones(p0.shape, bool)
    lo = min(-2.0, float(p0.min()) - 1.0)
    hi = max(2.0, float(p0.max()) + 1.0)
    top = max(3.0, 2.0 * float(s0.max()))
    left, right = sorted(basin_boundary(eta, alpha_p, sigma2, x=x, p_lim=(lo, hi), s_max=top), key=lambda b: b[0, -1])
    # close the region below the edge along the box: through the top corners where a branch left through the top
    up_left = [[lo, top]] if left[1, -1] >= top - 1e-9 else []
    up_right = [[hi, top]] if right[1, -1] >= top - 1e-9 else []
    poly = np.concatenate([[[lo, -1.0]], *([np.array(up_left)] if up_left else []), left.T[::-1], right.T,
                           *([np.array(up_right)] if up_right else []), [[hi, -1.0]]])
    inside = _Path(poly).contains_points(np.stack([p0.ravel(), s0.ravel()], 1))
    return inside.reshape(p0.shape)
