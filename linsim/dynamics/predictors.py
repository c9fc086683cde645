"""Closed-form predictor rules (DirectPred, DirectCopy, symmetric projection), applied as resets between
SGD steps by the discrete simulator ``linsim.dynamics.discrete``.

Each rule is one small pure function of the correlation estimate F_hat (a symmetric n1 x n1 matrix, or its
diagonal for the per-mode model); the EMA of F_hat is the pair ``corr_init`` / ``corr_update`` (optax
style: state in, state out). ``simulate_discrete_predictor`` runs the code-faithful order of operations
of the official trainer with expected (full-batch) gradients, i.e. explicit Euler with step dt = alpha.

References: Tian, Chen & Ganguli (ICML 2021), Eqs. 18-19 and facebookresearch/luckmatters
``ssl/real-dataset/byol_trainer.py`` @cb23d10 (``Accumulator``, ``compute_w_corr``, ``regulate_predictor``);
Wang, Chen, Du & Tian (arXiv 2110.04947) for DirectCopy. docs/predictors_and_noise.md (code semantics,
DirectCopy, DirectPred inside the linear toy).
"""
from __future__ import annotations

import jax.numpy as jnp

from linsim.config import Config
from linsim.dynamics.variant import ema_parts
from linsim.errors import LinsimError

P_FLOOR = 1e-4  # the code's clamp(p, min=1e-4) (``compute_w_corr``)
RULES = ("directpred", "directcopy")


# ---------------------------------------------------------------- one small pure function per rule


def symmetrize(Wp):
    """(Wp + Wp^T) / 2: the code's ``predictor_reg=symmetric`` projection (docs/predictors_and_noise.md)."""
    return 0.5 * (Wp + jnp.swapaxes(Wp, -1, -2))


def directpred_eigs(s, eps=0.01, form: str = "code", alpha_p=1.0):
    """DirectPred's eigenvalue map s_j -> p_j (Eq. 18; docs/predictors_and_noise.md).

    form='code' (``balance_type=boost_scale``, ``dyn_convert=2``): u_j = max(s_j, 0) / max_j s_j,
    p_j = max(sqrt(u_j) + eps, 1e-4). If max_j s_j <= 0 (F_hat = 0) every u_j is taken as 0.
    form='theory' (the toy-consistent form, docs/predictors_and_noise.md): p_j = sqrt(alpha_p max(s_j, 0)) + eps; with eps = 0 the toy keeps the
    gradient predictor's fixed points p+- because they satisfy s = p^2 / alpha_p (docs/theory_dynamics.md). This holds
    for X = I: the balance law ties Wp to W W^T, not to F = W X W^T, so with other data spectra p still
    settles at p+ but s_j = x_j w_j^2 does not match the gradient predictor's s+.
    """
    s = jnp.asarray(s)
    sp = jnp.clip(s, 0.0, None)
    if form == "code":
        smax = jnp.max(s, axis=-1, keepdims=True)
        u = sp / jnp.where(smax > 0, smax, 1.0)
        return jnp.maximum(jnp.sqrt(u) + eps, P_FLOOR)
    if form == "theory":
        return jnp.sqrt(alpha_p * sp) + eps
    raise LinsimError(f"unknown DirectPred form {form!r}; choose 'code' or 'theory'")


def directpred(F_hat, eps=0.01, form: str = "code", alpha_p=1.0):
    """W_p = U diag(p_j) U^T with (s_j, U) = eigh(sym F_hat) and p_j = ``directpred_eigs(s_j)`` (Eq. 18).

    The code used ``torch.eig`` (general solver, real part); eigh of the symmetrised matrix is the same for
    a symmetric F_hat and is the recommended re-implementation. Note the default form is the
    paper's ('code'); ``Predictor`` in the config defaults to 'theory' for the un-normalised toy (docs/predictors_and_noise.md).
    """
    s, U = jnp.linalg.eigh(symmetrize(F_hat))
    p = directpred_eigs(s, eps, form, alpha_p)
    return (U * p[..., None, :]) @ jnp.swapaxes(U, -1, -2)


def _norm_of(F_hat, norm: str, diagonal: bool):
    if norm == "fro":
        return jnp.sqrt(jnp.sum(F_hat * F_hat, axis=(-1,) if diagonal else (-2, -1)))
    if norm == "spectral":
        if diagonal:
            return jnp.max(jnp.abs(F_hat), axis=-1)
        return jnp.max(jnp.abs(jnp.linalg.eigvalsh(symmetrize(F_hat))), axis=-1)
    raise LinsimError(f"unknown DirectCopy norm {norm!r}; choose 'fro' or 'spectral'")


def directcopy(F_hat, eps=0.3, norm: str = "fro", form: str = "code"):
    """DirectCopy's predictor from the correlation estimate F_hat (symmetrised first).

    form='code': W_p = F_hat / ||F_hat|| + eps I, the rule of Wang, Chen, Du & Tian, "Towards demystifying
    representation learning with non-contrastive self-supervision" (arXiv 2110.04947, 2021), DirectCopy; the
    norm type is not stated there, so Frobenius ('fro') and spectral are offered. F_hat = 0 gives eps I.
    In the un-normalised linear toy this form caps p near 1/sqrt(k) + eps whatever the scale of F, so s grows
    without bound (docs/predictors_and_noise.md).
    form='theory': W_p = F_hat + eps I (no normalisation), linsim's form for the toy: per mode p_j = f_j + eps
    with f_j the eigenvalue of F = W X W^T, whose non-trivial fixed points are p = p+- of the gradient
    predictor with f = p - eps (:func:`directcopy_fixed_points`). Symmetric whenever F_hat is.
    """
    F_hat = symmetrize(F_hat)
    eye = jnp.eye(F_hat.shape[-1], dtype=F_hat.dtype)
    if form == "theory":
        return F_hat + eps * eye
    if form != "code":
        raise LinsimError(f"unknown DirectCopy form {form!r}; choose 'code' or 'theory'")
    nrm = _norm_of(F_hat, norm, diagonal=False)[..., None, None]
    return F_hat / jnp.where(nrm > 0, nrm, 1.0) + eps * eye


def directcopy_eigs(s, eps=0.3, norm: str = "fro", form: str = "code"):
    """DirectCopy on a diagonal F_hat = diag(s) (per-mode model): p_j = s_j / ||s|| + eps ('code') or
    p_j = s_j + eps ('theory'); see :func:`directcopy`."""
    s = jnp.asarray(s)
    if form == "theory":
        return s + eps
    if form != "code":
        raise LinsimError(f"unknown DirectCopy form {form!r}; choose 'code' or 'theory'")
    nrm = _norm_of(s, norm, diagonal=True)[..., None]
    return s / jnp.where(nrm > 0, nrm, 1.0) + eps


def directcopy_fixed_points(eta, sigma2=0.5, eps=0.01, x=1.0):
    """Per-mode fixed points of DirectCopy's theory form p = f + eps, f = x w^2 the eigenvalue of F.

    At a non-trivial fixed point (tau = 1) ds/dt = 0 needs p (x - k p) = eta, k = x + sigma2: the gradient
    predictor's p+- = [x +- sqrt(x^2 - 4 eta k)] / (2k) (Tian, Chen & Ganguli, ICML 2021;
    docs/theory_dynamics.md); then f+- = p+- - eps and s+- = w^2 = f+- / x. A branch exists where p > eps,
    i.e. f > 0; p+ is stable when it exists (d/dp [p (x - k p)] = x - 2 k p+ < 0). Returns FixedPoints
    (p_plus, p_minus, s_plus, s_minus, eta_c, exists) with s = w^2; NaN where no branch exists.
    """
    from linsim.dynamics.modes import FixedPoints, fixed_points

    fp = fixed_points(eta, 1.0, sigma2, x=x)
    if not fp.exists or fp.p_plus <= eps:
        return FixedPoints(float("nan"), float("nan"), float("nan"), float("nan"), fp.eta_c, False)
    s_minus = (fp.p_minus - eps) / x if fp.p_minus > eps else float("nan")
    return FixedPoints(fp.p_plus, fp.p_minus, (fp.p_plus - eps) / x, s_minus, fp.eta_c, True)


# ---------------------------------------------------------------- the rho-EMA of the correlation (Eq. 19)


def corr_init(d):
    """First call of the code's ``Accumulator``: F_hat_1 = d_1 (no (1 - rho) factor)."""
    return d


def corr_update(F_hat, d, rho):
    """F_hat_t = rho F_hat_{t-1} + (1 - rho) d_t (Eq. 19, ``Accumulator`` with ``dyn_lambda`` = rho)."""
    return rho * F_hat + (1.0 - rho) * d


def corr_step(F_hat, d, rho, k):
    """``corr_init`` at step k = 0, ``corr_update`` afterwards (jit-friendly)."""
    return jnp.where(k == 0, corr_init(d), corr_update(F_hat, d, rho))


def apply_rule(F_hat, rule: str, *, eps, form: str = "code", norm: str = "fro", alpha_p=1.0, diagonal=False):
    """The predictor that ``rule`` builds from F_hat (a matrix, or the diagonal vector when ``diagonal``)."""
    if rule == "directpred":
        return directpred_eigs(F_hat, eps, form, alpha_p) if diagonal else directpred(F_hat, eps, form, alpha_p)
    if rule == "directcopy":
        return directcopy_eigs(F_hat, eps, norm, form) if diagonal else directcopy(F_hat, eps, norm, form)
    raise LinsimError(f"unknown predictor rule {rule!r}; choose one of {', '.join(RULES)}")


# ---------------------------------------------------------------- discrete (Euler = full-batch SGD) simulator

KEYS = {"matrix": ("W", "Wp", "Wa"), "modes": ("w", "p", "wa")}


def correlation(W, X, model: str):
    """F = W X W^T (matrix) or its diagonal x_j w_j^2 (modes): the expectation of the theory's predictor-input
    correlation (docs/theory_dynamics.md). The code's batch estimate E[f f^T] over views has expectation W (X + X') W^T; the
    difference only rescales s_j by (1 + sigma2) in the isotropic toy."""
    return W @ X @ W.T if model == "matrix" else X * W * W


def ema_target(Wa, W_new, dt, beta):
    """Wa <- gamma_a Wa + (1 - gamma_a) W_new with gamma_a = 1 - dt beta; SimSiam (beta = inf): Wa = W_new.

    Applied after the online step, as the official trainer does (docs/mapping.md)."""
    simsiam, b = ema_parts(beta)
    return jnp.where(simsiam, W_new, Wa + dt * b * (W_new - Wa))


def reset_predictor(Wp, F_hat, k, *, rule, freq, eps, form, norm, alpha_p, model):
    """Overwrite Wp with the rule's output when k % freq == 0 (``regulate_predictor``, also at k = 0)."""
    new = apply_rule(F_hat, rule, eps=eps, form=form, norm=norm, alpha_p=alpha_p, diagonal=(model == "modes"))
    return jnp.where(k % freq == 0, new, Wp)


def simulate_discrete_predictor(cfg: Config, y0: dict | None = None):
    """Discrete simulation of a DirectPred/DirectCopy predictor (``linsim.dynamics.discrete.simulate_discrete``,
    with momentum ``cfg.noise.momentum``): explicit Euler with step ``cfg.solver.dt``
    (= full-batch SGD with learning rate alpha, any solver method) in the official trainer's order:

    1. F_hat <- EMA(F_hat, F(W)) with F = W X W^T (F_hat_1 = F_1); 2. expected gradients at (W, Wp, Wa);
    3. W += alpha dW/dt, Wp += alpha dWp/dt (the predictor is gradient-trained between resets);
    4. Wp <- rule(F_hat) when step % freq == 0 (so at step 0 too); 5. Wa <- gamma_a Wa + (1-gamma_a) W,
    gamma_a = 1 - alpha beta (SimSiam: Wa = W). Works for the matrix and per-mode models (diagonal F_hat).
    Returns a Trajectory; ``extras['F_hat']`` holds the correlation estimate at the saved steps.
    """
    from linsim.dynamics.discrete import simulate_discrete

    rule = cfg.hyper.predictor
    if rule not in RULES:
        raise LinsimError(f"simulate_discrete_predictor needs predictor directpred or directcopy, got {rule!r}")
    if cfg.noise.kind != "none":
        raise LinsimError("stochastic runs go through linsim.dynamics.stochastic.simulate_ensemble, not the discrete predictor simulator")
    return simulate_discrete(cfg, y0=y0)
