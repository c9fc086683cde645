"""Reduced matrix dynamics of (Wp, F = W X W^T) under X = I, X' = sigma2 I, Wa = tau W, symmetric Wp, and the
eigenspace-alignment identity dL/dt = -(K L + L K) for L = [F, Wp].

Reference: Tian, Chen & Ganguli, "Understanding Self-supervised Learning Dynamics without Contrastive Pairs", ICML 2021
(the reduced dynamics and eigenspace alignment); docs/theory_dynamics.md (eigenspace alignment).
State ``{"Wp", "F"}`` (d x d, symmetric); args ``sigma2, eta, alpha_p, tau`` (scalars, tau held fixed).
"""
from __future__ import annotations

import diffrax as dfx
import jax
import jax.numpy as jnp


def anticommutator(A, B):
    """{A, B} = A B + B A."""
    return A @ B + B @ A


def reduced_field(t, state, args):
    """dWp = -(a_p/2) k {Wp, F} + a_p tau F - eta Wp; dF = -k {Wp^2, F} + tau {Wp, F} - 2 eta F, k = 1 + sigma2 (docs/theory_dynamics.md)."""
    Wp, F = state["Wp"], state["F"]
    k, tau, eta, a_p = 1.0 + args["sigma2"], args["tau"], args["eta"], args["alpha_p"]
    dWp = -(a_p / 2) * k * anticommutator(Wp, F) + a_p * tau * F - eta * Wp
    dF = -k * anticommutator(Wp @ Wp, F) + tau * anticommutator(Wp, F) - 2 * eta * F
    return {"Wp": dWp, "F": dF}


def commutator(F, Wp):
    """L = [F, Wp] = F Wp - Wp F (antisymmetric for symmetric F, Wp)."""
    return F @ Wp - Wp @ F


def k_matrix(Wp, F, args):
    """K = (1+sigma2) Wp^2 - tau Wp + (a_p/2)(1+sigma2) F + (3 eta/2) I, so that dL/dt = -(K L + L K) (derived; docs/theory_dynamics.md)."""
    k = 1.0 + args["sigma2"]
    eye = jnp.eye(Wp.shape[0], dtype=Wp.dtype)
    return k * Wp @ Wp - args["tau"] * Wp + 0.5 * args["alpha_p"] * k * F + 1.5 * args["eta"] * eye


def k_lower_bound(args):
    """lambda_min(K) >= 3 eta/2 - tau^2/(4 (1+sigma2)) for any symmetric Wp and PSD F (docs/theory_dynamics.md)."""
    return 1.5 * args["eta"] - args["tau"] ** 2 / (4.0 * (1.0 + args["sigma2"]))


@jax.jit
def solve_reduced(y0, args, ts, rtol=1e-10, atol=1e-12):
    """Integrate the reduced ODE (Tsit5, PID control) and return the states at ``ts``."""
    sol = dfx.diffeqsolve(
        dfx.ODETerm(reduced_field), dfx.Tsit5(), t0=ts[0], t1=ts[-1], dt0=1e-3, y0=y0, args=args,
        saveat=dfx.SaveAt(ts=ts), stepsize_controller=dfx.PIDController(rtol=rtol, atol=atol), max_steps=100_000,
    )
    return sol.ys
