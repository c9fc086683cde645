"""Stochastic dynamics of the linear BYOL/SimSiam model: finite-batch SGD (the ground truth for a linear
network fed Gaussian data) and the SDE that matches its first two moments.

(a) SGD (``simulate_sgd``): x ~ N(0, X), two views x_i = x + e_i with e_i ~ N(0, X') (docs/predictors_and_noise.md); one step on a
    minibatch of B samples with lr alpha (= ``Solver.dt``) for W and alpha alpha_p for Wp, weight decay
    eta / eta_p, optional SGD momentum mu (PyTorch convention, momentum on the gradient + weight decay; saved
    times then count alpha/(1 - mu) of ODE time per step, as in ``linsim.dynamics.discrete``), target
    EMA gamma_a = 1 - beta alpha/(1 - mu) applied after the online step (SimSiam: Wa = W). Gradients are
    ``jax.grad`` of the minibatch loss with ``stop_gradient`` on the target. Losses, per sample:
      un-normalised  1/2 ||Wp W x1 - Wa x2||^2            (expectation = the ODE's J)
      normalised     2 - 2 <y/|y|, z/|z|>,  y = Wp W x1, z = Wa x2   (BYOL's regression loss)
    ``symmetric=True`` averages the loss over both view orders (x1 -> x2 and x2 -> x1). Averaging (not the
    code's sum) keeps the un-normalised loss's time scale equal to the ODE's; the official code sums the
    two directions, i.e. it equals ``symmetric=True`` with twice the learning rate. DirectPred/DirectCopy
    resets use the batch estimate d = sym(mean f1 f2^T), f_i = W x_i, whose expectation is W X W^T, as in
    the full-batch simulator (the code's mean f f^T over views estimates W (X+X') W^T instead).
    Drawing a batch (``Noise.sampler``, ``uses_moments``): the views are x1 = u + v, x2 = u - v with independent
    u ~ N(0, X + X'/2), v ~ N(0, X'/2) (``view_roots``; elementwise roots for diagonal statistics), and the
    un-normalised loss depends on the batch only through sum_b zeta_b zeta_b^T of the whitened pairs, a
    Wishart matrix; for B >= 2n it is drawn exactly through its Bartlett factor A (``linsim.dynamics.wishart``):
    n (2n - 1) normals and 2n chi-squares per step instead of 2 B n normals, and two (n1, 2n, 2n) products
    (``factor_loss``). Same seed, same numbers, on either path; the two paths give different draws of the
    same distribution.
(b) SDE (``simulate_sde``): d theta = f(theta) dt + sqrt(alpha / B) Sigma(theta)^{1/2} dB_t, with f the ODE
    (``matrix_field`` / ``modes_field``) and Sigma the covariance of the per-sample gradient (times alpha_p
    on Wp, as the predictor's step is alpha alpha_p). Itô Euler-Maruyama (diffrax) with a
    VirtualBrownianTree; with step h = alpha its one-step mean and covariance equal SGD's.

The per-sample diffusion, exactly and without Monte Carlo: the per-sample loss is *linear* in the outer
product Z = z z^T of the stacked views z = (x1, x2) ~ N(0, S), S = [[X+X', X], [X, X+X']]:
l(theta, Z) = 1/2 tr(L Z L^T) with L = [Wp W, -Wa], so the per-sample gradient is g(theta, Z), linear in Z,
and its mean g(theta, S) is minus the ODE drift (without weight decay). Write z = S^{1/2} zeta with
zeta ~ N(0, I): vec(zeta zeta^T - I) has covariance I + K (K the commutation matrix), which is also the
covariance of the Gaussian symmetric matrix M = (G + G^T)/sqrt(2), G with iid N(0, 1) entries. Hence
g(theta, S^{1/2} M S^{1/2}) has exactly the per-sample gradient covariance Sigma(theta) (Isserlis), and the
diffusion is the linear operator M -> sqrt(alpha/B) g(theta, S^{1/2} M S^{1/2}) driven by a (2n x 2n)
Brownian matrix (symmetrised). Cost O(n^3) per step; no (n n1)^2 covariance matrix is ever formed.

What the SDE captures: the drift (exact ODE) and the gradient-noise covariance at every state, so ensemble
means and variances to first order in alpha/B (weak order 1 for alpha -> 0; Li, Tai & E 2017).
What it does not: the non-Gaussian (third and higher) cumulants of the per-sample gradient; the O(alpha)
discretisation bias of SGD when integrated with h < alpha (implicit regularisation terms); momentum, the
l2-normalised loss and predictor resets (use ``simulate_sgd``); the code's EMA-after-step order (O(alpha)).

Per-mode model: each mode j is its own scalar network (n = n1 = 1) fed by its own data coordinate
(variance x_j, augmentation x'_j), so the noise never couples modes nor breaks alignment; the matrix model
has that coupling. References: Tian, Chen & Ganguli, ICML 2021 (Lemma 1;
DirectPred, Eqs. 18-19); docs/predictors_and_noise.md (SGD, SDE, predictor rules).
"""
from __future__ import annotations

import functools
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, Callable

import diffrax as dfx
import jax
import jax.numpy as jnp
import lineax as lx
import numpy as np

from linsim.config import Config
from linsim.dynamics.discrete import buffer_names, heavy_ball, time_per_step
from linsim.dynamics.predictors import KEYS, RULES, corr_step, ema_target, reset_predictor, symmetrize
from linsim.dynamics.variant import Variant, ema_parts
from linsim.dynamics.wishart import bartlett
from linsim.errors import LinsimError
from linsim.host import cores
from linsim.initial import initial_arrays, psd_sqrt
from linsim.loops import scan_saving


def view_moment(cfg: Config) -> np.ndarray:
    """S = E[z z^T] of the stacked views z = (x1, x2): [[X+X', X], [X, X+X']] (2n x 2n; docs/theory_dynamics.md, the model), or per
    mode the 2 x 2 blocks [[x+x', x], [x, x+x']] (shape (m, 2, 2))."""
    if cfg.model == "modes":
        x, xp = cfg.stats.x, cfg.stats.xp
        return np.stack([np.stack([x + xp, x], -1), np.stack([x, x + xp], -1)], -2)
    X, Xp = cfg.stats.X, cfg.stats.Xp
    return np.block([[X + Xp, X], [X, X + Xp]])


# ---------------------------------------------------------------- losses


def _forward(y, x1, x2, model: str, variant: Variant, simsiam):
    """Online prediction Wp W x1 and target Wa x2 (stop-gradient unless variant.stop_grad is False).

    Matrix: x (B, n) -> (B, n1). Modes: x (B, m) -> (B, m), each column one scalar network."""
    kW, kP, kA = KEYS[model]
    W, Wp, Wa = y[kW], y[kP], y[kA]
    if variant.stop_grad:
        Wa = jax.lax.stop_gradient(jnp.where(simsiam, W, Wa))
    else:  # gradient through the target branch with Wa = W (Tian et al. 2021, Theorem 2)
        Wa = W
    if model == "matrix":
        f1 = x1 @ W.T
        y1 = f1 if variant.predictor == "identity" else f1 @ Wp.T
        return y1, x2 @ Wa.T, f1
    f1 = x1 * W
    y1 = f1 if variant.predictor == "identity" else f1 * Wp
    return y1, x2 * Wa, f1


def minibatch_loss(y, x1, x2, *, model: str, variant: Variant, simsiam, normalized=False, symmetric=False):
    """Mean over the batch of the per-sample loss (module docstring); symmetric averages both view orders."""

    def one(a, b):
        pred, targ, _ = _forward(y, a, b, model, variant, simsiam)
        if normalized:
            pn = pred / jnp.linalg.norm(pred, axis=-1, keepdims=True)
            tn = targ / jnp.linalg.norm(targ, axis=-1, keepdims=True)
            return jnp.mean(2.0 - 2.0 * jnp.sum(pn * tn, axis=-1))
        return 0.5 * jnp.mean(jnp.sum((pred - targ) ** 2, axis=-1))

    return 0.5 * (one(x1, x2) + one(x2, x1)) if symmetric else one(x1, x2)


def _loss_blocks(y, model: str, variant: Variant, simsiam):
    """The per-sample residual is PW x1 - Wa x2: returns PW (Wp W, or W without a predictor) and the target Wa
    (stop-gradient unless variant.stop_grad is False, then Wa = W)."""
    kW, kP, kA = KEYS[model]
    W, Wp, Wa = y[kW], y[kP], y[kA]
    Wa = jax.lax.stop_gradient(jnp.where(simsiam, W, Wa)) if variant.stop_grad else W
    if variant.predictor == "identity":
        return W, Wa
    return (Wp @ W if model == "matrix" else Wp * W), Wa


def moment_loss(y, Z, *, model: str, variant: Variant, simsiam, symmetric=False):
    """The un-normalised per-sample loss as a linear function of Z = z z^T (z = (x1, x2)):
    l = 1/2 tr(L Z L^T), L = [Wp W, -Wa]; l(theta, S) is the expected loss J (docs/theory_dynamics.md)."""
    PW, Wa = _loss_blocks(y, model, variant, simsiam)
    if model == "matrix":
        L = jnp.concatenate([PW, -Wa], axis=1)
        Lsw = jnp.concatenate([-Wa, PW], axis=1)  # the swapped view order x2 -> x1
        q = lambda A: 0.5 * jnp.trace(A @ Z @ A.T)  # noqa: E731
    else:
        L = jnp.stack([PW, -Wa], -1)  # (m, 2)
        Lsw = jnp.stack([-Wa, PW], -1)
        q = lambda A: 0.5 * jnp.sum(jnp.einsum("ma,mab,mb->m", A, Z, A))  # noqa: E731
    return 0.5 * (q(L) + q(Lsw)) if symmetric else q(L)


def _times(M, R, diag: bool):
    """M R for a symmetric root R, given as a matrix or (diag) as the vector of its diagonal."""
    return M * R if diag else M @ R


def factor_loss(y, A, Ru, Rv, *, model: str, variant: Variant, simsiam, symmetric=False, diag=True, batch=1):
    """The un-normalised minibatch loss of a batch known only through sum_b zeta_b zeta_b^T = A A^T, where the
    views are x1 = u + v, x2 = u - v with u = R_u zeta_u, v = R_v zeta_v and zeta = (zeta_u, zeta_v)
    (``view_roots``): L z = (PW - Wa) u + (PW + Wa) v, so the loss is 1/(2B) ||[(PW - Wa) R_u, (PW + Wa) R_v] A||_F^2
    (the swapped view order flips the sign of the second block). Matrix: A (2n, 2n); modes: A (m, 2, 2)."""
    PW, Wa = _loss_blocks(y, model, variant, simsiam)
    D, E = PW - Wa, PW + Wa

    def q(E):
        if model == "matrix":
            P = jnp.concatenate([_times(D, Ru, diag), _times(E, Rv, diag)], axis=1) @ A
        else:
            P = jnp.einsum("ma,mab->mb", jnp.stack([D * Ru, E * Rv], -1), A)
        return 0.5 * jnp.sum(P * P) / batch

    return 0.5 * (q(E) + q(-E)) if symmetric else q(E)


def factor_correlation(W, A, Ru, Rv, *, model: str, diag=True, batch=1):
    """The DirectPred/DirectCopy batch estimate d = sym(mean_b f1 f2^T), f_i = W x_i, from the same factor A:
    f1 = [W R_u, W R_v] zeta, f2 = [W R_u, -W R_v] zeta (matrix; per mode the scalar analogue)."""
    if model == "matrix":
        K1 = jnp.concatenate([_times(W, Ru, diag), _times(W, Rv, diag)], axis=1) @ A
        K2 = jnp.concatenate([_times(W, Ru, diag), -_times(W, Rv, diag)], axis=1) @ A
        return symmetrize(K1 @ K2.T) / batch
    k1 = jnp.einsum("ma,mab->mb", jnp.stack([W * Ru, W * Rv], -1), A)
    k2 = jnp.einsum("ma,mab->mb", jnp.stack([W * Ru, -W * Rv], -1), A)
    return jnp.sum(k1 * k2, axis=-1) / batch


def _gradient_direction(g, y, args, model, variant):
    """-grad per block, the predictor's scaled by alpha_p (its lr is alpha alpha_p), symmetrised for
    the symmetric rule, zero when the predictor is removed."""
    kW, kP, _ = KEYS[model]
    if variant.predictor == "identity":
        return -g[kW], jnp.zeros_like(y[kP])
    gp = symmetrize(g[kP]) if (variant.predictor == "symmetric" and model == "matrix") else g[kP]
    return -g[kW], -args["alpha_p"] * gp


def _update_direction(g, y, args, model, variant):
    """The SGD step direction -(grad + weight decay) per block (weight decay eta_p per unit time, as in the ODE)."""
    kW, kP, _ = KEYS[model]
    dW, dP = _gradient_direction(g, y, args, model, variant)
    if variant.predictor != "identity":  # a removed predictor (Wp = I) is not trained nor decayed
        dP = dP - args["eta_p"] * y[kP]
    return dW - args["eta"] * y[kW], dP


# ---------------------------------------------------------------- (a) finite-batch SGD


def view_roots(cfg: Config) -> tuple[np.ndarray, np.ndarray, bool]:
    """R_u = (X + X'/2)^{1/2} and R_v = (X'/2)^{1/2}: with u = x + (e1 + e2)/2 ~ N(0, X + X'/2) and
    v = (e1 - e2)/2 ~ N(0, X'/2), independent (their covariance is (X' - X')/4 = 0), the views are x1 = u + v and
    x2 = u - v. Two draws of n numbers per sample instead of three. Returns (R_u, R_v, diag): vectors when the
    statistics are diagonal (always per mode), so the roots act elementwise."""
    st = cfg.stats
    if cfg.model == "modes" or st.is_diagonal:
        x, xp = np.asarray(st.x, float), np.asarray(st.xp, float)
        return np.sqrt(np.clip(x + xp / 2, 0, None)), np.sqrt(np.clip(xp / 2, 0, None)), True
    return psd_sqrt(st.X + st.Xp / 2), psd_sqrt(st.Xp / 2), False


def _sample_views(key, B, Ru, Rv, diag):
    """B pairs of views (x1, x2), each (B, dim): x1 = u + v, x2 = u - v (``view_roots``)."""
    ku, kv = jax.random.split(key)
    shape = (B, Ru.shape[-1])
    u = _times(jax.random.normal(ku, shape), Ru, diag)  # rows R_u zeta (R_u symmetric)
    v = _times(jax.random.normal(kv, shape), Rv, diag)
    return u + v, u - v


SAMPLE_COST_CHI2 = 30  # a chi-square variate costs about 30 normals (jax.random.chisquare, measured on a CPU)


def uses_moments(cfg: Config) -> bool:
    """Does SGD sample the batch second moment (a Bartlett factor, ``linsim.dynamics.wishart``) instead of the B
    samples? Only for the un-normalised loss (the normalised one needs every sample) and B >= p, the dimension
    of a stacked pair of views (p = 2n; 2 per mode). 'auto' also asks for fewer random numbers: p (p - 1)/2
    normals and p chi-squares against 2 B n normals (always so for the matrix model; per mode when B >= 31)."""
    nz = cfg.noise
    p = 2 * cfg.stats.n if cfg.model == "matrix" else 2
    exact = not nz.normalized and nz.batch >= p
    if nz.sampler == "samples":
        return False
    if nz.sampler == "moments":
        if not exact:
            why = "the normalised loss needs every sample" if nz.normalized else f"it needs batch >= {p} (2 x the input dimension)"
            raise LinsimError(f"sampler 'moments' cannot be used here: {why}; use --sampler samples or auto")
        return True
    return exact and p * (p - 1) / 2 + SAMPLE_COST_CHI2 * p < nz.batch * p


@functools.partial(
    jax.jit,
    static_argnames=("model", "variant", "batch", "normalized", "symmetric", "rule", "form", "norm", "freq",
                     "n_save", "save_every", "moments", "diag"),
)
def _run_sgd(carry0, keys, args, Ru, Rv, dt, momentum, rho, eps, *, model, variant, batch, normalized, symmetric,
             rule, form, norm, freq, n_save, save_every, moments, diag):
    kW, kP, kA = KEYS[model]
    simsiam, _ = ema_parts(args["beta"])
    if moments:
        p, lead = (2 * Ru.shape[-1], ()) if model == "matrix" else (2, Ru.shape)
        grad = jax.grad(functools.partial(factor_loss, model=model, variant=variant, simsiam=simsiam,
                                          symmetric=symmetric, diag=diag, batch=batch))
    else:
        grad = jax.grad(functools.partial(minibatch_loss, model=model, variant=variant, simsiam=simsiam,
                                          normalized=normalized, symmetric=symmetric))

    def batch_step(key, y):
        """The minibatch gradient and (with a predictor rule) the batch correlation d, from one batch."""
        if moments:
            A = bartlett(key, p, batch, lead)
            d = None if rule is None else factor_correlation(y[kW], A, Ru, Rv, model=model, diag=diag, batch=batch)
            return grad(y, A, Ru, Rv), d
        x1, x2 = _sample_views(key, batch, Ru, Rv, diag)
        d = None
        if rule is not None:
            _, _, f1 = _forward(y, x1, x2, model, variant, simsiam)
            _, _, f2 = _forward(y, x2, x1, model, variant, simsiam)
            d = symmetrize(f1.T @ f2) / batch if model == "matrix" else jnp.mean(f1 * f2, axis=0)
        return grad(y, x1, x2), d

    def one_seed(key, carry0):
        def step(carry):
            y, buf, F_hat, k = carry
            g, d = batch_step(jax.random.fold_in(key, k), y)
            if rule is not None:  # accumulate F_hat from the batch before the step (the official trainer's order)
                F_hat = corr_step(F_hat, d, rho, k)
            dW, dP = _update_direction(g, y, args, model, variant)
            W, Wp, buf = heavy_ball(y[kW], y[kP], buf, dW, dP, dt, momentum)
            if rule is not None:
                Wp = reset_predictor(Wp, F_hat, k, rule=rule, freq=freq, eps=eps, form=form, norm=norm,
                                     alpha_p=args["alpha_p"], model=model)
            Wa = ema_target(y[kA], W, dt / (1.0 - momentum), args["beta"])  # EMA rate beta per unit ODE time
            return {kW: W, kP: Wp, kA: Wa}, buf, F_hat, k + 1

        return scan_saving(step, carry0, n_save - 1, save_every, save=lambda c: c[:3])

    return jax.vmap(one_seed)(keys, carry0)


def _keys(cfg: Config, salt: int):
    base = jax.random.fold_in(jax.random.PRNGKey(int(cfg.init.seed)), salt)
    return jax.random.split(base, int(cfg.noise.seeds))


def _sgd_start(cfg: Config, y0, start: dict | None):
    """Per-seed initial carry (y, momentum buffers, F_hat, step): ``y0`` shared by every seed with zero buffers,
    or ``start`` = ``Ensemble.resume_state()`` (per-seed states, buffers, F_hat and the step counter)."""
    K = int(cfg.noise.seeds)
    kW, kP, kA = KEYS[cfg.model]
    if start is None:
        y0 = initial_arrays(cfg, y0)
        rep = lambda v: jnp.broadcast_to(v, (K,) + v.shape)  # noqa: E731
        F0 = jnp.zeros((K,) + (y0[kP].shape[-1],) * (2 if cfg.model == "matrix" else 1), jnp.float64)
        return ({k: rep(v) for k, v in y0.items()}, (rep(jnp.zeros_like(y0[kW])), rep(jnp.zeros_like(y0[kP]))),
                F0, jnp.zeros((K,), jnp.int64))
    names = buffer_names(cfg.model)
    need = [kW, kP, kA, *names, "F_hat", "step"]
    missing = [k for k in need if k not in start]
    if missing:
        raise LinsimError(f"an ensemble start state needs {', '.join(need)}; missing {', '.join(missing)}")
    arr = {k: np.asarray(start[k], float) for k in need if k != "step"}
    lead = {np.shape(v)[0] if np.ndim(v) else None for v in arr.values()}
    if lead != {K}:
        raise LinsimError(f"an ensemble start state needs a leading seed axis of length seeds={K}, got {sorted(map(str, lead))}")
    for k, v in arr.items():
        if not np.all(np.isfinite(v)):
            raise LinsimError(f"start state {k} is not finite (continue only the seeds that did not diverge)")
    step = np.broadcast_to(np.asarray(start["step"]), (K,))
    if np.any(step < 0) or np.any(step != np.round(step)):
        raise LinsimError("start step must be a non-negative integer")
    y = {k: jnp.asarray(arr[k]) for k in (kW, kP, kA)}
    return y, (jnp.asarray(arr[names[0]]), jnp.asarray(arr[names[1]])), jnp.asarray(arr["F_hat"]), jnp.asarray(step.astype(np.int64))


def _seed_groups(K: int) -> int:
    """How many groups of seeds to run side by side: on a CPU, the largest divisor of K up to the core count
    (equal groups share one compilation); one group elsewhere. XLA runs one step's small products on about one core,
    so two groups on two threads gave 1.2-1.3x the seed-steps/s of one vmapped call (n = 128, B = 256)."""
    if jax.default_backend() != "cpu":
        return 1
    return max(g for g in range(1, min(K, cores()) + 1) if K % g == 0)


def _over_seed_groups(run, carry0, keys):
    """``run(carry, keys)`` over equal groups of seeds in threads (``_seed_groups``), concatenated in seed order.
    Every seed's numbers depend only on its key; the grouping depends only on K and the machine."""
    K = keys.shape[0]
    G = _seed_groups(K)
    if G == 1:
        return run(carry0, keys)
    size = K // G
    part = lambda i: jax.tree_util.tree_map(lambda a: a[i * size:(i + 1) * size], (carry0, keys))  # noqa: E731
    with ThreadPoolExecutor(G) as pool:
        outs = list(pool.map(lambda i: jax.block_until_ready(run(*part(i))), range(G)))
    return jax.tree_util.tree_map(lambda *a: jnp.concatenate(a), *outs)


CALLS = 20  # an ensemble runs in about this many equal calls, so that it can report progress between them


def _blocks_per_call(n_blocks: int) -> int:
    """Save blocks per call: the divisor of ``n_blocks`` nearest n_blocks / CALLS (equal calls, one compilation)."""
    divisors = [d for d in range(1, n_blocks + 1) if n_blocks % d == 0]
    return min(divisors, key=lambda d: (abs(d - n_blocks / CALLS), d))


def simulate_sgd(cfg: Config, y0: dict | None = None, start: dict | None = None,
                 progress: Callable[[int, int], None] | None = None, on_call: Callable | None = None,
                 partial: dict | None = None) -> "Ensemble":
    """Finite-batch SGD ensemble (``cfg.noise.seeds`` seeds, shared initial state), step alpha = ``cfg.solver.dt``,
    saved every ``save_every`` steps as in the Euler solver. Seeds come from ``cfg.init.seed``.

    ``start``: continue an ensemble (``Ensemble.resume_state()``): per-seed weights, momentum buffers, F_hat,
    the step counter and the end time ``t`` (saved times continue from it); the minibatches continue the same
    random stream, so a run of 2T steps equals a run of T steps continued for T (a learning-rate schedule is a
    chain of runs with different ``Solver.dt``).

    The steps run in about ``CALLS`` equal compiled calls, always the same for a given config (so the numbers do
    not depend on ``progress``); ``progress(steps_done, steps_total)`` is called after each. A killed run can be
    continued bit for bit: ``on_call(calls_done, calls, saved)`` is called after each call but the last, where
    ``saved()`` returns (states, momentum buffers, F_hat) saved so far (leading axes: seed, time); passing
    ``partial={"calls_done", "calls", "ys", "bufs", "Fs"}`` from it to the same config continues the run."""
    from linsim.limits import check_simulation
    from linsim.solve import euler_grid, make_args, variant_of

    check_simulation(cfg)  # before any n x n work (square roots of the statistics)

    s, nz, pr = cfg.solver, cfg.noise, cfg.predictor
    rule = cfg.hyper.predictor if cfg.hyper.predictor in RULES else None
    moments = uses_moments(cfg)
    Ru, Rv, diag = view_roots(cfg)
    h = time_per_step(cfg)  # alpha / (1 - mu): saved times are ODE times, as in the discrete simulator
    n_save, every = euler_grid(s.t_max, h, s.n_save)
    carry0 = _sgd_start(cfg, y0, start)
    n_blocks = n_save - 1
    per_call = _blocks_per_call(n_blocks)
    run = functools.partial(
        _run_sgd, args=make_args(cfg), Ru=jnp.asarray(Ru), Rv=jnp.asarray(Rv), dt=jnp.asarray(s.dt),
        momentum=jnp.asarray(nz.momentum), rho=jnp.asarray(pr.rho), eps=jnp.asarray(pr.eps),
        model=cfg.model, variant=variant_of(cfg), batch=int(nz.batch), normalized=bool(nz.normalized),
        symmetric=bool(nz.symmetric), rule=rule, form=pr.form, norm=pr.norm, freq=int(pr.freq),
        n_save=per_call + 1, save_every=every, moments=moments, diag=diag,
    )
    keys, k0 = _keys(cfg, 1), np.asarray(carry0[3])
    calls = n_blocks // per_call
    joined = lambda: jax.tree_util.tree_map(lambda *a: np.concatenate(a, axis=1), *parts)  # noqa: E731
    carry, parts, first = carry0, [], 0
    if partial is not None:  # continue an interrupted run after its last finished call
        first = int(partial["calls_done"])
        if int(partial["calls"]) != calls or not 0 < first <= calls:
            raise LinsimError(f"the partial run was cut into {partial['calls']} calls, this one into {calls}: not the same run")
        parts = [(partial["ys"], tuple(partial["bufs"]), partial["Fs"])]
    for i in range(first, calls):  # each call saves its start state and per_call more
        if i > 0:
            ys_last, bufs_last, F_last = jax.tree_util.tree_map(lambda a: jnp.asarray(a[:, -1]), parts[-1])
            carry = (ys_last, bufs_last, F_last, jnp.asarray(k0 + i * per_call * every))
        out = jax.tree_util.tree_map(np.asarray, _over_seed_groups(run, carry, keys))
        parts.append(out if i == 0 else jax.tree_util.tree_map(lambda a: a[:, 1:], out))
        if progress is not None:
            progress((i + 1) * per_call * every, n_blocks * every)
        if on_call is not None and i + 1 < calls:
            on_call(i + 1, calls, joined)
    ys, bufs, Fs = joined()
    t0 = float(np.asarray(start["t"]).reshape(-1)[0]) if start is not None and "t" in start else float(k0[0]) * h
    ens = Ensemble.from_states(cfg, t0 + np.arange(n_save) * every * h, ys, kind="sgd")

    for name, b in zip(buffer_names(cfg.model), bufs):  # final momentum buffers and F_hat, per seed
        ens.extras[f"final_{name}"] = np.asarray(b)[:, -1]
    ens.extras["final_F_hat"] = np.asarray(Fs)[:, -1]
    ens.extras["final_step"] = k0 + (n_save - 1) * every
    ens.extras["final_t"] = float(ens.ts[-1])
    ens.extras["sampler"] = "moments" if moments else "samples"
    return ens


# ---------------------------------------------------------------- (b) the SDE


def diffusion_operator(y, args, Sh, *, model, variant, symmetric, scale):
    """The linear map M -> scale * (update direction of the per-sample gradient at Z = S^{1/2} M S^{1/2})
    (module docstring), as a lineax operator acting on a symmetric-izable Brownian increment M."""
    kW, kP, kA = KEYS[model]
    simsiam, _ = ema_parts(args["beta"])
    gfun = jax.grad(functools.partial(moment_loss, model=model, variant=variant, simsiam=simsiam, symmetric=symmetric))
    shape = Sh.shape

    def apply(G):
        M = (G + jnp.swapaxes(G, -1, -2)) / jnp.sqrt(2.0)
        Z = Sh @ M @ Sh
        dW, dP = _gradient_direction(gfun(y, Z), y, args, model, variant)
        dA = jnp.where(simsiam, dW, jnp.zeros_like(y[kA]))  # Wa gets no noise (it only tracks W)
        return {kW: scale * dW, kP: scale * dP, kA: scale * dA}

    return lx.FunctionLinearOperator(apply, jax.ShapeDtypeStruct(shape, y[kW].dtype))


@functools.partial(jax.jit, static_argnames=("model", "variant", "symmetric", "n_steps", "brownian"))
def _run_sde(y0, keys, args, Sh, ts, h, scale, *, model, variant, symmetric, n_steps, brownian="virtual"):
    from linsim.solve import FIELDS

    field = FIELDS[model]
    drift = dfx.ODETerm(lambda t, y, a: field(t, y, a, variant))
    t0, t1 = ts[0], ts[-1]

    def one_seed(key):
        if brownian == "virtual":
            bm = dfx.VirtualBrownianTree(t0, t1, tol=h / 4, shape=Sh.shape, key=key,
                                         levy_area=dfx.BrownianIncrement)
        else:
            bm = dfx.UnsafeBrownianPath(shape=Sh.shape, key=key, levy_area=dfx.BrownianIncrement)
        diff = dfx.ControlTerm(
            lambda t, y, a: diffusion_operator(y, a, Sh, model=model, variant=variant, symmetric=symmetric,
                                               scale=scale), bm)
        sol = dfx.diffeqsolve(
            dfx.MultiTerm(drift, diff), dfx.Euler(), t0=t0, t1=t1, dt0=None, y0=y0, args=args,
            saveat=dfx.SaveAt(ts=ts), stepsize_controller=dfx.StepTo(jnp.linspace(t0, t1, n_steps + 1)),
            max_steps=n_steps + 1, throw=False, adjoint=dfx.ForwardMode(),
        )
        return sol.ys

    return jax.vmap(one_seed)(keys)


def simulate_sde(cfg: Config, y0: dict | None = None, brownian: str = "virtual") -> "Ensemble":
    """Itô Euler-Maruyama ensemble of the SDE (module docstring) with step ``cfg.noise.sde_dt`` (default alpha),
    diffusion scale sqrt(alpha / B) with alpha = ``cfg.solver.dt``; saves at the Euler solver's save times.
    ``brownian``: 'virtual' (VirtualBrownianTree, any step) or 'unsafe' (UnsafeBrownianPath, faster)."""
    from linsim.limits import check_simulation
    from linsim.solve import euler_grid, make_args, variant_of

    check_simulation(cfg)  # before any n x n work (square roots of the statistics)

    s, nz = cfg.solver, cfg.noise
    if brownian not in ("virtual", "unsafe"):
        raise LinsimError(f"brownian must be 'virtual' or 'unsafe', got {brownian!r}")
    alpha = s.dt
    h = alpha if nz.sde_dt is None else float(nz.sde_dt)
    n_save, every = euler_grid(s.t_max, alpha, s.n_save)
    ts = np.arange(n_save) * every * alpha
    n_steps = max(1, int(round(ts[-1] / h)))
    Sh = psd_sqrt(view_moment(cfg)) if cfg.model == "matrix" else np.stack([psd_sqrt(b) for b in view_moment(cfg)])
    ys = _run_sde(
        initial_arrays(cfg, y0), _keys(cfg, 2), make_args(cfg), jnp.asarray(Sh), jnp.asarray(ts), jnp.asarray(ts[-1] / n_steps),
        jnp.asarray(np.sqrt(alpha / nz.batch)), model=cfg.model, variant=variant_of(cfg),
        symmetric=bool(nz.symmetric), n_steps=n_steps, brownian=brownian,
    )
    return Ensemble.from_states(cfg, ts, ys, kind="sde")


def simulate_ensemble(cfg: Config, y0: dict | None = None,
                      progress: Callable[[int, int], None] | None = None) -> "Ensemble":
    """Dispatch on ``cfg.noise.kind``: 'sgd' (with ``progress``, see ``simulate_sgd``) or 'sde' ('none' raises:
    use ``linsim.solve.simulate``)."""
    if cfg.noise.kind == "sgd":
        return simulate_sgd(cfg, y0, progress=progress)
    if cfg.noise.kind == "sde":
        return simulate_sde(cfg, y0)
    raise LinsimError("noise is 'none': use linsim.solve.simulate for the deterministic dynamics")


# ---------------------------------------------------------------- ensemble summaries


@dataclass
class Ensemble:
    """K stochastic runs sharing an initial state: states with a leading seed axis (K, T, ...), the per-mode
    series s, p (K, T, m) in the Trajectory convention (matrix: eigenvalues of F = W X W^T, descending, and
    p_j = u_j^T Wp u_j; modes: s = w^2, p as simulated), and mean/std over seeds."""

    config: Config
    ts: np.ndarray
    states: dict[str, np.ndarray]
    s: np.ndarray
    p: np.ndarray
    kind: str
    extras: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def from_states(cls, cfg: Config, ts, states, kind: str) -> "Ensemble":
        from linsim.theory import invariants as inv

        states = {k: np.asarray(v) for k, v in states.items()}
        bound = cfg.solver.divergence_bound
        # a seed whose state ever leaves the finite world (or exceeds divergence_bound) is flagged diverged
        # and excluded from the statistics; its s, p are NaN from its first bad time on
        bad_t = np.zeros(next(iter(states.values())).shape[:2], bool)
        for v in states.values():
            flat = v.reshape(v.shape[0], v.shape[1], -1)
            bad_t |= ~np.all(np.isfinite(flat), axis=-1) | np.any(np.abs(np.nan_to_num(flat, nan=np.inf)) > bound, axis=-1)
        bad_t = np.logical_or.accumulate(bad_t, axis=1)
        clean = {k: np.where(bad_t.reshape(bad_t.shape + (1,) * (v.ndim - 2)), 0.0, v) for k, v in states.items()}
        if cfg.model == "modes":
            s, p = clean["w"] ** 2, clean["p"].copy()
        else:
            s, p, _, _, _, _ = inv.matrix_modes(clean["W"], clean["Wp"], clean["Wa"], cfg.stats.X)
        s, p = np.where(bad_t[..., None], np.nan, s), np.where(bad_t[..., None], np.nan, p)
        return cls(cfg, np.asarray(ts, float), states, s, p, kind, {"diverged": bad_t[:, -1]})

    @property
    def seeds(self) -> int:
        return int(self.s.shape[0])

    @property
    def diverged(self) -> np.ndarray:
        """Per seed: did the run leave the finite world (or exceed ``divergence_bound``)?"""
        return self.extras["diverged"]

    def mean_std(self, name: str) -> tuple[np.ndarray, np.ndarray]:
        """Mean and standard deviation (ddof = 1; 0 for one seed) of 's' or 'p' over the seeds that did not
        diverge, shape (T, m); NaN if every seed diverged."""
        x = getattr(self, name)[~self.diverged]
        if x.shape[0] == 0:
            nan = np.full(x.shape[1:], np.nan)
            return nan, nan.copy()
        std = x.std(axis=0, ddof=1) if x.shape[0] > 1 else np.zeros_like(x[0])
        return x.mean(axis=0), std

    def resume_state(self) -> dict:
        """The per-seed state at the end of an SGD ensemble (weights, momentum buffers, F_hat, step counter), to
        continue it with ``simulate_sgd(cfg, start=...)`` (the same seeds; change ``Solver.dt`` for a schedule)."""
        if "final_step" not in self.extras:
            raise LinsimError("only SGD ensembles carry the optimiser state needed to continue them")
        out = {k: np.asarray(v[:, -1]) for k, v in self.states.items()}
        out.update({k[len("final_"):]: v for k, v in self.extras.items() if k.startswith("final_")})
        return out

    def trajectory(self, i: int = 0):
        """Seed ``i`` as a Trajectory (for the table, plots and invariants)."""
        from linsim.trajectory import Trajectory

        steps = int(round((self.ts[-1] - self.ts[0]) / time_per_step(self.config))) if self.kind == "sgd" else 0
        return Trajectory.from_states(self.config, self.ts, {k: v[i] for k, v in self.states.items()}, steps=steps)

    def summary(self) -> dict[str, Any]:
        """Final-time ensemble statistics per mode, ordered by descending mean s (JSON-ready)."""
        sm, ss = self.mean_std("s")
        pm, ps = self.mean_std("p")
        order = np.argsort(-sm[-1], kind="stable")
        nz = self.config.noise
        return {
            "kind": self.kind,
            "seeds": self.seeds,
            "diverged_seeds": int(self.diverged.sum()),
            "batch": int(nz.batch),
            "lr": float(self.config.solver.dt),
            **({"sampler": self.extras["sampler"]} if "sampler" in self.extras else {}),
            "t": float(self.ts[-1]),
            "s_mean": sm[-1, order].tolist(),
            "s_std": ss[-1, order].tolist(),
            "p_mean": pm[-1, order].tolist(),
            "p_std": ps[-1, order].tolist(),
        }

    def arrays(self) -> dict[str, np.ndarray]:
        """Series for ``ensemble.npz``; an SGD ensemble adds its end state as ``resume_<key>`` arrays, so
        ``{k[7:]: v for k, v in np.load(f).items() if k.startswith("resume_")}`` is a ``start`` for ``simulate_sgd``."""
        sm, ss = self.mean_std("s")
        pm, ps = self.mean_std("p")
        out = {"ts": self.ts, "s": self.s, "p": self.p, "s_mean": sm, "s_std": ss, "p_mean": pm, "p_std": ps}
        if "final_step" in self.extras:
            out.update({f"resume_{k}": np.asarray(v) for k, v in self.resume_state().items()})
        return out
