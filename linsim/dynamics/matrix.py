"""Full-matrix vector field of the linear BYOL/SimSiam model (Tian, Chen & Ganguli 2021, Lemma 1).

State: ``{"W": (n1, n), "Wp": (n1, n1), "Wa": (n1, n)}``. Args (traced, so they can be vmapped):
``eta, eta_p, beta, alpha_p`` (scalars) and ``X, Xp`` (n x n PSD).
Reference: Tian, Chen & Ganguli, "Understanding Self-supervised Learning Dynamics without Contrastive Pairs", ICML 2021,
Lemma 1 (the flow) and Theorem 2 (no stop-gradient); docs/theory_dynamics.md (model, ablations, numerics).
"""
from __future__ import annotations

import jax.numpy as jnp

from linsim.dynamics.variant import Variant, ema_parts


def matrix_field(t, state, args, variant: Variant = Variant()):
    """dW_p = a_p G W^T - eta_p W_p, dW = W_p^T G - eta W, dW_a = beta (W - W_a), G = -W_p W (X+X') + W_a X (TCG21 Lemma 1).

    Statistics: ``X, Xp`` (matrices; ``XX`` = X + X' may be given precomputed: 5 matrix products per call
    instead of 6) or ``x, xp`` (the diagonals of diagonal statistics: W X is a column scaling, 3 products).
    """
    W, Wp, Wa = state["W"], state["Wp"], state["Wa"]
    simsiam, beta = ema_parts(args["beta"])
    # SimSiam (beta = inf) and the no-stop-gradient variant (TCG21 Theorem 2) both use the online net as target
    Wa = W if not variant.stop_grad else jnp.where(simsiam, W, Wa)
    if "x" in args:  # diagonal statistics: A @ diag(v) = A * v (column scaling)
        x = args["x"]
        times_x = lambda A: A * x  # noqa: E731
        WXX = W * (x + args["xp"])  # W (X + X')
    else:
        X = args["X"]
        times_x = lambda A: A @ X  # noqa: E731
        WXX = W @ (args["XX"] if "XX" in args else X + args["Xp"])
    if variant.predictor == "identity":  # predictor removed (docs/theory_dynamics.md, ablations): Wp = I
        G = -WXX + times_x(Wa)
        dW = G - args["eta"] * W
        dWp = jnp.zeros_like(Wp)
    else:
        G = -Wp @ WXX + times_x(Wa)
        dW = Wp.T @ G - args["eta"] * W
        gWp = G @ W.T
        if variant.predictor == "symmetric":  # symmetrised predictor gradient (docs/predictors_and_noise.md)
            gWp = 0.5 * (gWp + gWp.T)
        dWp = args["alpha_p"] * gWp - args["eta_p"] * Wp
    if not variant.stop_grad:  # gradient also through the target branch with Wa = W (TCG21 Theorem 2)
        P = jnp.eye(W.shape[0], dtype=W.dtype) if variant.predictor == "identity" else Wp
        dW = dW + P @ times_x(W) - WXX
    dWa = dW if not variant.stop_grad else jnp.where(simsiam, dW, beta * (W - Wa))
    return {"W": dW, "Wp": dWp, "Wa": dWa}


def field_args(args):
    """The matrix field's statistics in their cheapest form: ``x, xp`` when X and X' are diagonal (checked
    on the concrete arrays), else ``X, Xp`` plus the precomputed ``XX`` = X + X'. Other keys are kept."""
    import numpy as np

    X, Xp = np.asarray(args["X"]), np.asarray(args["Xp"])
    out = {k: v for k, v in args.items() if k not in ("X", "Xp")}
    off = lambda A: np.any(A - np.diag(np.diag(A)) != 0)  # noqa: E731
    if X.ndim == 2 and not (off(X) or off(Xp)):
        out.update(x=jnp.asarray(np.diag(X)), xp=jnp.asarray(np.diag(Xp)))
    else:
        out.update(X=jnp.asarray(X), Xp=jnp.asarray(Xp), XX=jnp.asarray(X + Xp))
    return out


def expected_loss(state, args, variant: Variant = Variant()):
    """J = 1/2 tr(Wp W (X+X') W^T Wp^T) - tr(Wp W X Wa^T) + 1/2 tr(Wa (X+X') Wa^T) (docs/theory_dynamics.md, the model)."""
    W, Wp, Wa = state["W"], state["Wp"], state["Wa"]
    simsiam, _ = ema_parts(args["beta"])
    Wa = jnp.where(simsiam, W, Wa)
    if variant.predictor == "identity":
        Wp = jnp.eye(W.shape[0], dtype=W.dtype)
    XX = args["X"] + args["Xp"]
    PW = Wp @ W
    return 0.5 * jnp.trace(PW @ XX @ PW.T) - jnp.trace(PW @ args["X"] @ Wa.T) + 0.5 * jnp.trace(Wa @ XX @ Wa.T)


def no_stopgrad_hessian(Wp, X, Xp, eta):
    """H = X (x) (Wp-I)^T(Wp-I) + X' (x) (Wp^T Wp + I) + eta I, with d vec(W)/dt = -H vec(W) (TCG21 Theorem 2)."""
    n1 = Wp.shape[0]
    I1 = jnp.eye(n1, dtype=Wp.dtype)
    A = (Wp - I1).T @ (Wp - I1)
    B = Wp.T @ Wp + I1
    return jnp.kron(X, A) + jnp.kron(Xp, B) + eta * jnp.eye(X.shape[0] * n1, dtype=Wp.dtype)


def no_predictor_matrix(X, Xp, eta, beta):
    """M = [[-(X+X'+eta I), beta I], [X, -beta I]] with d/dt [W, Wa] = [W, Wa] M (docs/theory_dynamics.md, ablations)."""
    n = X.shape[0]
    I = jnp.eye(n, dtype=X.dtype)
    top = jnp.concatenate([-(X + Xp + eta * I), beta * I], axis=1)
    bottom = jnp.concatenate([X, -beta * I], axis=1)
    return jnp.concatenate([top, bottom], axis=0)
