"""Finite-batch SGD and its SDE (docs/predictors_and_noise.md): the exact moment identities behind the diffusion,
the measured SGD-to-ODE convergence rate, and SDE-vs-SGD agreement of ensemble means and variances."""
from __future__ import annotations

import dataclasses
import json

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from linsim.config import Config, Hyper, Init, Noise, Solver, Stats
from linsim.dynamics import stochastic as sto
from linsim.dynamics.matrix import matrix_field
from linsim.dynamics.modes import modes_field
from linsim.initial import psd_sqrt
from linsim.dynamics.variant import Variant
from linsim.errors import LinsimError
from linsim.initial import initial_state
from linsim.io import dumps
from linsim.solve import make_args, simulate

seeds = st.integers(0, 2**31 - 1)
VARIANTS = [Variant("grad"), Variant("symmetric"), Variant("identity")]


def _cfg(model="matrix", n=4, n1=None, noise=None, t_max=2.0, dt=0.05, n_save=2, seed=0, **hyper):
    h = dict(eta=0.04, beta=0.5, alpha_p=1.0)
    h.update(hyper)
    return Config(
        model=model, n1=n1, hyper=Hyper(**h), stats=Stats.isotropic(n, 0.5), init=Init(scale=1.0, seed=seed),
        solver=Solver(t_max=t_max, dt=dt, method="euler", n_save=n_save), noise=noise or Noise(),
    )


def _random_stats(seed, n):
    rng = np.random.default_rng(seed)
    A, B = rng.standard_normal((n, n)), rng.standard_normal((n, n))
    return Stats.matrices(A @ A.T / n + 0.1 * np.eye(n), B @ B.T / (2 * n))


def _state(cfg, seed):
    y = initial_state(dataclasses.replace(cfg, init=Init(scale=0.7, seed=seed, target="independent")))
    return {k: jnp.asarray(v) for k, v in y.items()}


# ---------------------------------------------------------------- exact identities behind (a) and (b)


@given(seed=seeds, v=st.sampled_from(VARIANTS), symmetric=st.booleans())
def test_expected_gradient_is_the_ode_drift(seed, v, symmetric):
    """grad of l(theta, S) (S = E[z z^T] of the two views) = -(ODE field + weight decay), either view order."""
    cfg = dataclasses.replace(_cfg(n1=3, alpha_p=1.7, predictor=v.predictor), stats=_random_stats(seed, 4))
    y, args = _state(cfg, seed), make_args(cfg)
    S = jnp.asarray(sto.view_moment(cfg))
    g = jax.grad(sto.moment_loss)(y, S, model="matrix", variant=v, simsiam=False, symmetric=symmetric)
    dW, dP = sto._update_direction(g, y, args, "matrix", v)
    f = matrix_field(0.0, y, args, v)
    np.testing.assert_allclose(dW, f["W"], atol=1e-12)
    np.testing.assert_allclose(dP, f["Wp"], atol=1e-12)


def test_expected_gradient_modes():
    cfg = dataclasses.replace(_cfg("modes", alpha_p=2.0), stats=Stats.diagonal([1.0, 0.5, 2.0, 0.1], [0.5, 0.2, 0.0, 1.0]))
    y, args = _state(cfg, 3), make_args(cfg)
    g = jax.grad(sto.moment_loss)(y, jnp.asarray(sto.view_moment(cfg)), model="modes", variant=Variant(), simsiam=False)
    dW, dP = sto._update_direction(g, y, args, "modes", Variant())
    f = modes_field(0.0, y, args)
    np.testing.assert_allclose(dW, f["w"], atol=1e-12)
    np.testing.assert_allclose(dP, f["p"], atol=1e-12)


@given(seed=seeds, symmetric=st.booleans())
def test_minibatch_loss_is_moment_loss_of_batch_moment(seed, symmetric):
    """The un-normalised minibatch loss equals l(theta, Z) at Z = mean_b z_b z_b^T (the loss is linear in Z)."""
    cfg = _cfg(n1=3)
    y = _state(cfg, seed)
    rng = np.random.default_rng(seed)
    x1, x2 = rng.standard_normal((2, 7, 4))
    z = np.concatenate([x1, x2], axis=1)
    kw = dict(model="matrix", variant=Variant(), simsiam=False, symmetric=symmetric)
    a = sto.minibatch_loss(y, jnp.asarray(x1), jnp.asarray(x2), **kw)
    b = sto.moment_loss(y, jnp.asarray(z.T @ z / 7), **kw)
    np.testing.assert_allclose(a, b, rtol=1e-12)


@settings(max_examples=4)  # each example retraces jacfwd/hessian (no jit): keep it short
@given(seed=seeds, symmetric=st.booleans(), v=st.sampled_from(VARIANTS))
def test_diffusion_covariance_is_per_sample_gradient_covariance(seed, symmetric, v):
    """The SDE's noise operator M -> g(S^1/2 M S^1/2), M = (G + G^T)/sqrt 2, has covariance J J^T equal to the
    per-sample gradient covariance, computed independently by Isserlis: g_m(z) = z^T A_m z (A_m = Hessian / 2)
    and Cov(g_m, g_k) = 2 tr(A_m S A_k S)."""
    n, n1 = 3, 2
    cfg = dataclasses.replace(_cfg(n=n, n1=n1, alpha_p=1.3, predictor=v.predictor), stats=_random_stats(seed, n))
    y, args = _state(cfg, seed), make_args(cfg)
    S = sto.view_moment(cfg)
    op = sto.diffusion_operator(y, args, jnp.asarray(psd_sqrt(S)), model="matrix", variant=v,
                                symmetric=symmetric, scale=1.0)

    def flat(G):
        out = op.mv(G)
        return jnp.concatenate([out["W"].ravel(), out["Wp"].ravel()])

    J = jax.jacfwd(flat)(jnp.zeros((2 * n, 2 * n))).reshape(-1, 4 * n * n)
    cov_op = J @ J.T

    def per_sample(z):  # the update direction of one sample's gradient, without weight decay
        g = jax.grad(sto.moment_loss)(y, jnp.outer(z, z), model="matrix", variant=v, simsiam=False, symmetric=symmetric)
        dW, dP = sto._update_direction(g, y, {**args, "eta": 0.0, "eta_p": 0.0}, "matrix", v)
        return jnp.concatenate([dW.ravel(), dP.ravel()])

    A = 0.5 * jax.hessian(per_sample)(jnp.zeros(2 * n))  # (D, 2n, 2n)
    cov_ref = 2 * jnp.einsum("mab,bc,kcd,da->mk", A, S, A, S)
    np.testing.assert_allclose(cov_op, cov_ref, atol=1e-11 * float(jnp.abs(cov_ref).max() + 1))


def test_normalized_loss_is_scale_invariant():
    cfg = _cfg(n1=3)
    y = _state(cfg, 1)
    x1, x2 = (jnp.asarray(a) for a in np.random.default_rng(1).standard_normal((2, 5, 4)))
    kw = dict(model="matrix", variant=Variant(), simsiam=False, normalized=True, symmetric=True)
    a = sto.minibatch_loss(y, x1, x2, **kw)
    b = sto.minibatch_loss({**y, "Wp": 3.0 * y["Wp"], "Wa": 0.5 * y["Wa"]}, x1, x2, **kw)
    np.testing.assert_allclose(a, b, rtol=1e-12)
    assert 0.0 <= float(a) <= 4.0


# ---------------------------------------------------------------- drawing a batch: views and the Wishart factor


def _stats_of(kind, seed, n):
    """Diagonal statistics with zero and unequal entries, or general PSD matrices (the two forms view_roots takes)."""
    if kind == "general":
        return _random_stats(seed, n)
    rng = np.random.default_rng(seed)
    xp = rng.uniform(0, 1, n)
    xp[0] = 0.0  # a direction without augmentation: R_v has a zero
    return Stats.diagonal(rng.uniform(0.1, 2, n), xp)


@settings(max_examples=15)
@given(seed=seeds, kind=st.sampled_from(["diagonal", "general"]))
def test_view_roots_give_the_view_moment(seed, kind):
    """x1 = u + v, x2 = u - v with u ~ N(0, R_u^2), v ~ N(0, R_v^2): Cov(x1, x2) = T diag(R_u^2, R_v^2) T^T must be
    S = [[X + X', X], [X, X + X']] exactly (a root of X' instead of X'/2 is off by X'/2)."""
    cfg = dataclasses.replace(_cfg(n1=3), stats=_stats_of(kind, seed, 4))
    Ru, Rv, diag = sto.view_roots(cfg)
    assert diag == (kind == "diagonal")
    U, V = (np.diag(R**2) if diag else R @ R for R in (Ru, Rv))
    np.testing.assert_allclose(np.block([[U + V, U - V], [U - V, U + V]]), sto.view_moment(cfg), atol=1e-12)
    m = dataclasses.replace(_cfg("modes"), stats=Stats.diagonal(np.diag(cfg.stats.X), np.diag(cfg.stats.Xp)))
    Ru_m, Rv_m, _ = sto.view_roots(m)
    np.testing.assert_allclose(Ru_m**2 + Rv_m**2, m.stats.x + m.stats.xp, atol=1e-12)
    np.testing.assert_allclose(Ru_m**2 - Rv_m**2, m.stats.x, atol=1e-12)


@settings(max_examples=20)
@given(seed=seeds, kind=st.sampled_from(["diagonal", "general"]), symmetric=st.booleans(),
       v=st.sampled_from(VARIANTS + [Variant("grad", stop_grad=False)]), model=st.sampled_from(["matrix", "modes"]))
def test_factor_loss_is_the_minibatch_loss(seed, kind, symmetric, v, model):
    """For any batch zeta (B, p) and any A with A A^T = zeta^T zeta (here the Cholesky factor), the moment
    sampler's loss, gradient and DirectPred estimate d equal the sample path's on the views x1 = u + v, x2 = u - v
    built from zeta. Pure algebra, so to rounding (rtol 1e-10 over O(1) entries); a wrong sign of the swapped
    block, a missing 1/B or a transposed root fails at O(1)."""
    n, B = 4, 11
    cfg = dataclasses.replace(_cfg(model, n=n, n1=None if model == "modes" else 3, predictor=v.predictor),
                              stats=_stats_of(kind if model == "matrix" else "diagonal", seed, n))
    Ru, Rv, diag = (jnp.asarray(r) if not isinstance(r, bool) else r for r in sto.view_roots(cfg))
    y = _state(cfg, seed)
    rng = np.random.default_rng(seed)
    kw = dict(model=model, variant=v, simsiam=False, symmetric=symmetric)
    if model == "matrix":
        zeta = rng.standard_normal((B, 2 * n))
        A = np.linalg.cholesky(zeta.T @ zeta)
        u, w = sto._times(zeta[:, :n], Ru, diag), sto._times(zeta[:, n:], Rv, diag)
    else:  # per mode its own (B, 2) batch
        zeta = rng.standard_normal((B, n, 2))
        A = np.linalg.cholesky(np.einsum("bma,bmc->mac", zeta, zeta))
        u, w = zeta[..., 0] * Ru, zeta[..., 1] * Rv
    x1, x2 = u + w, u - w
    A = jnp.asarray(A)
    a, ga = jax.value_and_grad(sto.minibatch_loss)(y, x1, x2, **kw)
    b, gb = jax.value_and_grad(sto.factor_loss)(y, A, Ru, Rv, diag=diag, batch=B, **kw)
    np.testing.assert_allclose(b, a, rtol=1e-10)
    for k in ga:
        np.testing.assert_allclose(gb[k], ga[k], rtol=1e-10, atol=1e-12, err_msg=k)
    kW = "W" if model == "matrix" else "w"
    f1, f2 = (sto._forward(y, p, q, model, v, False)[2] for p, q in ((x1, x2), (x2, x1)))
    d_ref = (f1.T @ f2 + f2.T @ f1) / (2 * B) if model == "matrix" else jnp.mean(f1 * f2, axis=0)
    d = sto.factor_correlation(y[kW], A, Ru, Rv, model=model, diag=diag, batch=B)
    np.testing.assert_allclose(d, d_ref, rtol=1e-10, atol=1e-12)


def test_bartlett_factor_has_the_wishart_moments():
    """A A^T ~ Wishart_p(I, B): E[W_ij] = B delta_ij, Var(W_ij) = B (1 + delta_ij) (p = 3, B = 5, 40,000 draws).
    Tolerance 5 standard errors of each estimate (SE of a mean: sqrt(Var/K); of a variance: ~sqrt((m4 - var^2)/K),
    bounded here by 6 Var/sqrt(K) for these chi-square-like entries); a chi-square with B - i + 1 degrees
    of freedom moves the mean by 1 (= 90 SE), a normal diagonal by far more."""
    from linsim.dynamics.wishart import bartlett

    K, p, B = 40_000, 3, 5
    A = np.asarray(jax.jit(lambda k: bartlett(k, p, B, lead=(K,)))(jax.random.PRNGKey(11)))
    assert np.all(np.triu(A, 1) == 0) and np.all(np.diagonal(A, axis1=1, axis2=2) > 0)
    W = A @ np.swapaxes(A, 1, 2)
    var = B * (1 + np.eye(p))
    np.testing.assert_array_less(np.abs(W.mean(0) - B * np.eye(p)), 5 * np.sqrt(var / K))
    np.testing.assert_array_less(np.abs(W.var(0) - var), 5 * 6 * var / np.sqrt(K))
    with pytest.raises(ValueError, match="batch >= p"):
        bartlett(jax.random.PRNGKey(0), 4, 3)


@pytest.mark.parametrize("sampler", ["samples", "moments"])
def test_one_sgd_step_has_the_exact_mean_and_covariance(sampler):
    """One SGD step from a fixed state (general X, X', n = 3, n1 = 2, B = 8, 4,000 seeds): the update's mean is
    alpha times the ODE drift and its covariance alpha^2 Sigma / B, Sigma the per-sample gradient covariance from
    the SDE's diffusion operator (tested above against Isserlis). Tolerance: 5 standard errors per entry
    (mean: sqrt(C_ii / K); covariance: sqrt((C_ii C_jj + C_ij^2) / K), Gaussian fourth moments; the update is a
    quadratic form, heavier-tailed, so the SE is inflated 1.5x). 55 entries: a false alarm ~1e-5. A batch drawn
    with the wrong view covariance or Wishart degrees of freedom shifts the covariance by >= 1/B = 12% (>= 5 SE)."""
    n, n1, B, K, alpha = 3, 2, 8, 4000, 0.01
    base = dataclasses.replace(_cfg(n=n, n1=n1, alpha_p=1.3, dt=alpha, t_max=alpha, n_save=2), stats=_random_stats(5, n))
    cfg = dataclasses.replace(base, noise=Noise(kind="sgd", batch=B, seeds=K, sampler=sampler))
    y0 = {k: np.asarray(v) for k, v in _state(cfg, 2).items()}
    e = sto.simulate_sgd(cfg, y0=y0)
    assert e.extras["sampler"] == sampler
    upd = np.concatenate([(e.states[k][:, 1] - y0[k]).reshape(K, -1) for k in ("W", "Wp")], axis=1)
    y, args = {k: jnp.asarray(v) for k, v in y0.items()}, make_args(cfg)
    f = matrix_field(0.0, y, args, Variant())
    mean_ref = alpha * np.concatenate([np.ravel(f["W"]), np.ravel(f["Wp"])])
    op = sto.diffusion_operator(y, args, jnp.asarray(psd_sqrt(sto.view_moment(cfg))), model="matrix",
                                variant=Variant(), symmetric=False, scale=alpha / np.sqrt(B))
    J = jax.jacfwd(lambda G: jnp.concatenate([op.mv(G)["W"].ravel(), op.mv(G)["Wp"].ravel()]))(jnp.zeros((2 * n, 2 * n)))
    J = np.asarray(J).reshape(upd.shape[1], -1)
    cov_ref = J @ J.T
    d = np.sqrt(np.diag(cov_ref))
    np.testing.assert_array_less(np.abs(upd.mean(0) - mean_ref), 5 * 1.5 * d / np.sqrt(K))
    se_cov = 1.5 * np.sqrt((np.outer(d**2, d**2) + cov_ref**2) / K)
    np.testing.assert_array_less(np.abs(np.cov(upd.T) - cov_ref), 5 * se_cov)


def test_sampler_choice_and_errors():
    """'auto' samples the moments where exact and cheaper; 'moments' where it is not exact is a clear error."""
    mk = lambda model, n, B, **kw: _cfg(model, n=n, noise=Noise(kind="sgd", batch=B, **kw))  # noqa: E731
    assert sto.uses_moments(mk("matrix", 4, 8)) is False  # B = 2n: exact, but 28 + 240 draws > 2 B n = 64
    assert sto.uses_moments(mk("matrix", 128, 256)) is True  # 32,640 + 7,680 < 65,536
    assert sto.uses_moments(mk("matrix", 128, 255)) is False  # B < 2n: the Wishart is singular
    assert sto.uses_moments(mk("modes", 4, 30)) is False and sto.uses_moments(mk("modes", 4, 31)) is True  # 1 + 60 < 2 B
    assert sto.uses_moments(mk("matrix", 128, 256, normalized=True)) is False
    assert sto.uses_moments(mk("matrix", 4, 8, sampler="moments")) is True
    assert sto.uses_moments(mk("matrix", 128, 256, sampler="samples")) is False
    with pytest.raises(LinsimError, match="normalised loss needs every sample"):
        sto.simulate_sgd(mk("matrix", 4, 8, sampler="moments", normalized=True))
    with pytest.raises(LinsimError, match="batch >= 8"):
        sto.simulate_sgd(mk("matrix", 4, 7, sampler="moments"))
    with pytest.raises(LinsimError, match="unknown sampler"):
        Noise(kind="sgd", sampler="wishart")
    with pytest.raises(LinsimError, match="applies to --noise sgd only"):
        Noise(kind="sde", sampler="moments")


def test_seed_groups_run_in_threads_give_the_same_ensemble(monkeypatch):
    """Seeds run in equal groups on threads (a CPU with >= 2 cores) give each seed the numbers of one vmapped call,
    in seed order (a swapped or misaligned group differs at O(1); XLA may round batched products differently, so
    1e-12 relative, though this machine gives them bit for bit)."""
    cfg = _cfg(noise=Noise(kind="sgd", batch=8, seeds=4, momentum=0.5), t_max=0.2, n_save=3, predictor="directpred")
    assert sto._seed_groups(4) in (1, 2, 4) and sto._seed_groups(3) in (1, 3) and sto._seed_groups(1) == 1
    monkeypatch.setattr(sto, "_seed_groups", lambda K: 2)
    a = sto.simulate_sgd(cfg)
    monkeypatch.setattr(sto, "_seed_groups", lambda K: 1)
    b = sto.simulate_sgd(cfg)
    for k in a.states:
        np.testing.assert_allclose(a.states[k], b.states[k], rtol=1e-12, atol=1e-14)
    for k in ("final_buf_W", "final_buf_Wp", "final_F_hat"):
        np.testing.assert_allclose(a.extras[k], b.extras[k], rtol=1e-12, atol=1e-14)
    assert not np.allclose(a.states["W"][0, -1], a.states["W"][2, -1])


def test_sgd_runs_in_calls_that_report_progress_and_change_no_number(monkeypatch):
    """The steps run in ~CALLS equal calls (progress after each), each continuing the last one's weights, buffers,
    F_hat and step counter: the ensemble equals one call bit for bit (a dropped or doubled save, or a restarted
    key stream, would not)."""
    cfg = _cfg(noise=Noise(kind="sgd", batch=8, seeds=2, momentum=0.5, sampler="moments"), t_max=2.0, n_save=41,
               predictor="directpred")
    seen = []
    a = sto.simulate_sgd(cfg, progress=lambda done, total: seen.append((done, total)))
    steps = int(round((a.ts[-1] - a.ts[0]) / 0.1))  # momentum 0.5: a step lasts dt / (1 - mu) = 0.1
    assert len(seen) == sto.CALLS and seen[-1] == (steps, steps)
    assert [d for d, _ in seen] == sorted({d for d, _ in seen})
    assert sto._blocks_per_call(300) == 15 and sto._blocks_per_call(7) == 1 and sto._blocks_per_call(1) == 1
    monkeypatch.setattr(sto, "CALLS", 1)
    b = sto.simulate_sgd(cfg)
    assert a.ts.shape == b.ts.shape == (21,)
    for k in a.states:
        np.testing.assert_array_equal(a.states[k], b.states[k])
    for k in ("final_buf_W", "final_buf_Wp", "final_F_hat", "final_step"):
        np.testing.assert_array_equal(a.extras[k], b.extras[k])


def test_sgd_moments_reproducible_and_seeded():
    """Same seed, same numbers on the moment path too (per mode and matrix); different seeds differ."""
    for model in ("matrix", "modes"):
        cfg = _cfg(model, noise=Noise(kind="sgd", batch=8, seeds=2, sampler="moments"), t_max=0.2, n_save=2)
        a, b = sto.simulate_sgd(cfg), sto.simulate_sgd(cfg)
        k = "W" if model == "matrix" else "w"
        np.testing.assert_array_equal(a.states[k], b.states[k])
        assert not np.allclose(a.states[k][0, -1], a.states[k][1, -1])


# ---------------------------------------------------------------- (a) SGD: reproducibility, options, rate


def test_sgd_reproducible_and_seeded():
    cfg = _cfg(noise=Noise(kind="sgd", batch=8, seeds=3), t_max=0.5, n_save=3)
    a, b = sto.simulate_sgd(cfg), sto.simulate_sgd(cfg)
    np.testing.assert_array_equal(a.states["W"], b.states["W"])
    assert not np.allclose(a.states["W"][0, -1], a.states["W"][1, -1])  # seeds differ
    np.testing.assert_array_equal(a.states["W"][:, 0], np.broadcast_to(a.states["W"][0, 0], a.states["W"][:, 0].shape))
    c = sto.simulate_sgd(dataclasses.replace(cfg, init=Init(scale=1.0, seed=1)))
    assert not np.allclose(a.states["W"][0, -1], c.states["W"][0, -1])
    summ = a.summary()
    assert set(summ) >= {"s_mean", "s_std", "p_mean", "p_std"} and len(summ["s_mean"]) == 4
    json.loads(dumps(summ))


def test_sgd_options_run_finite():
    """Momentum + normalised symmetric loss + DirectPred resets (d = sym(mean f1 f2^T)) in one run."""
    noise = Noise(kind="sgd", batch=16, seeds=2, momentum=0.9, normalized=True, symmetric=True)
    cfg = _cfg(n1=3, noise=noise, t_max=0.5, dt=0.01, n_save=3, predictor="directpred")
    e = sto.simulate_sgd(cfg)
    assert np.all(np.isfinite(e.s)) and not e.diverged.any()
    Wp = e.states["Wp"][:, -1]
    np.testing.assert_allclose(Wp, np.swapaxes(Wp, -1, -2), atol=1e-13)  # freq = 1: Wp is the rule's output


def test_sgd_divergent_seeds_are_flagged():
    e = sto.simulate_sgd(_cfg(noise=Noise(kind="sgd", batch=1, seeds=2), t_max=30.0, dt=1.5, n_save=3))
    assert e.diverged.all()
    assert np.isnan(e.mean_std("s")[0]).all() and e.summary()["diverged_seeds"] == 2


def test_sgd_converges_to_ode_at_rate_alpha():
    """Error of the ensemble mean of F = W W^T at t = 2 against the ODE (tsit5, rtol 1e-11), halving alpha
    and quadrupling B: (0.1, 16), (0.05, 64), (0.025, 256), K = 128 seeds, n = n1 = 4, init scale 1.

    Measured (K = 512; batches drawn as samples at B = 16, as moments at 64 and 256): relative errors 1.49e-1,
    5.78e-2, 2.64e-2 (ensemble standard error 4e-3, 1e-3, 4e-4), i.e. error ratios 2.6 and 2.2 per halving,
    fitted order 1.2 in alpha: first order, dominated by
    the Euler discretisation bias (full-batch Euler errors 1.13e-1, 5.3e-2, 2.6e-2); the noise-induced
    bias O(alpha/B) is below it. Asserted: fitted order in [0.8, 1.6], every ratio >= 1.6."""
    ode = simulate(dataclasses.replace(_cfg(), solver=Solver(t_max=2.0, n_save=2, rtol=1e-11, atol=1e-13)))
    F_ode = ode.states["W"][-1] @ ode.states["W"][-1].T
    alphas, errs = [0.1, 0.05, 0.025], []
    for a, B in zip(alphas, [16, 64, 256]):
        e = sto.simulate_sgd(_cfg(noise=Noise(kind="sgd", batch=B, seeds=128), dt=a, n_save=2))
        W = e.states["W"][:, -1]
        F = np.einsum("kij,klj->kil", W, W).mean(0)
        errs.append(np.linalg.norm(F - F_ode) / np.linalg.norm(F_ode))
    order = np.polyfit(np.log(alphas), np.log(errs), 1)[0]
    ratios = np.array(errs[:-1]) / np.array(errs[1:])
    assert 0.8 <= order <= 1.6, (errs, order)
    assert np.all(ratios >= 1.6), (errs, ratios)


# ---------------------------------------------------------------- (b) SDE vs SGD


@pytest.mark.slow  # two ensembles of 300 seeds plus the SDE's compilation (~7-15 s)
def test_sde_matches_sgd_mean_and_variance():
    """At t = 2 (alpha = 0.02, B = 16, K = 300, n = 4, n1 = 3) the relative spread of s_j is ~2-50%:
    visible but small. Means agree within 4 standard errors and variances within 4 standard errors of the
    variance (sqrt(2/(K-1)) var, Gaussian approximation). Measured (this setting): SDE means
    (0.8427, 0.4419, 0.00170) +- std (0.0190, 0.0124, 0.00076); SGD drawn as samples (0.8424, 0.4430, 0.00170)
    +- (0.0172, 0.0119, 0.00077), mean differences -0.2, 1.0, -0.05 SE, variance ratios SDE/SGD 1.22, 1.09, 0.98;
    drawn as moments (0.8420, 0.4405, 0.00165) +- (0.0178, 0.0119, 0.00067), -0.5, -1.4, -0.9 SE, 1.14, 1.08, 1.27."""
    K = 300
    base = _cfg(n1=3, t_max=2.0, dt=0.02, n_save=2, alpha_p=1.5)
    sde = sto.simulate_sde(dataclasses.replace(base, noise=Noise(kind="sde", batch=16, seeds=K)))
    ode = simulate(base)
    for sampler in ("samples", "moments"):  # both ways of drawing SGD's batches (B = 16 >= 2n = 8)
        sgd = sto.simulate_sgd(dataclasses.replace(base, noise=Noise(kind="sgd", batch=16, seeds=K, sampler=sampler)))
        s1, s2 = sgd.s[:, -1], sde.s[:, -1]
        m1, m2, v1, v2 = s1.mean(0), s2.mean(0), s1.var(0, ddof=1), s2.var(0, ddof=1)
        se_mean = np.sqrt((v1 + v2) / K)
        assert np.all(np.abs(m1 - m2) <= 4 * se_mean), (sampler, m1, m2, se_mean)
        se_var = np.sqrt(2 / (K - 1)) * np.sqrt(v1**2 + v2**2)
        assert np.all(np.abs(v1 - v2) <= 4 * se_var), (sampler, v1, v2, se_var)
        # the noise is visible: the spread is far above the SGD bias
        assert np.all(np.sqrt(v1) > 10 * se_mean / np.sqrt(2))
        assert np.all(np.abs(m1 - ode.s[-1]) < 0.1 * np.abs(ode.s[-1]) + 3 * se_mean)


def test_sde_modes_and_errors():
    cfg = _cfg("modes", noise=Noise(kind="sde", batch=32, seeds=4, sde_dt=0.025), t_max=0.5, n_save=3)
    e = sto.simulate_sde(cfg, brownian="unsafe")
    assert e.s.shape == (4, 3, 4) and np.all(np.isfinite(e.s))
    with pytest.raises(LinsimError, match="momentum"):
        Noise(kind="sde", momentum=0.9)
    with pytest.raises(LinsimError, match="resets"):
        sto.simulate_sde(dataclasses.replace(cfg, hyper=Hyper(predictor="directpred")))
    with pytest.raises(LinsimError, match="matrix"):
        sto.simulate_sgd(dataclasses.replace(cfg, noise=Noise(kind="sgd", normalized=True)))
    with pytest.raises(LinsimError, match="none"):
        sto.simulate_ensemble(dataclasses.replace(cfg, noise=Noise()))
    for bad in (dict(kind="langevin"), dict(batch=0), dict(seeds=0), dict(momentum=1.0), dict(sde_dt=0.0)):
        with pytest.raises(LinsimError):
            Noise(**bad)


def test_cli_noise_writes_ensemble(tmp_path):
    """`linsim simulate --noise sgd`: summary.json gains "ensemble" with per-mode means and spreads."""
    from typer.testing import CliRunner

    from linsim.cli import app

    out = tmp_path / "run"
    res = CliRunner().invoke(app, ["simulate", "--n", "2", "--noise", "sgd", "--batch", "8", "--lr", "0.05",
                                   "--seeds", "3", "--t-max", "0.5", "--n-save", "3", "--out", str(out), "--no-plot"])
    assert res.exit_code == 0, res.output
    ens = json.loads((out / "summary.json").read_text())["ensemble"]
    assert ens["seeds"] == 3 and len(ens["s_mean"]) == len(ens["p_std"]) == 2
    assert "sgd ensemble: 3 seeds" in res.output and (out / "ensemble.npz").is_file()
    bad = CliRunner().invoke(app, ["simulate", "--noise", "sde", "--predictor", "directpred", "--out", str(tmp_path / "x")])
    assert bad.exit_code == 2 and not (tmp_path / "x").exists()
