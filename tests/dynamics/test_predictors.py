"""Predictor rules (DirectPred, DirectCopy, symmetric projection), the rho-accumulator and the discrete
simulator that applies them (docs/predictors_and_noise.md)."""
from __future__ import annotations

import dataclasses
import json

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from linsim.config import Config, Hyper, Init, Predictor, Solver, Stats
from linsim.dynamics import predictors as pr
from linsim.dynamics.modes import fixed_points
from linsim.errors import LinsimError
from linsim.io import dumps
from linsim.solve import simulate

seeds = st.integers(0, 2**31 - 1)
epss = st.floats(0.0, 1.0)


def random_psd(seed: int, d: int = 128, rank: int | None = None) -> np.ndarray:
    """A random PSD matrix A A^T (rank-deficient when rank < d, so some eigenvalues sit at ~0, +-)."""
    rng = np.random.default_rng(seed)
    A = rng.standard_normal((d, rank or d)) * rng.uniform(0.1, 3.0)
    return A @ A.T / d


def rel_comm(F, P):
    return np.linalg.norm(F @ P - P @ F) / (np.linalg.norm(F) * np.linalg.norm(P))


# ---------------------------------------------------------------- the operators (docs/predictors_and_noise.md)


@given(seed=seeds, eps=epss, rank=st.sampled_from([128, 40]))
def test_directpred_code_operator(seed, eps, rank):
    F = random_psd(seed, 128, rank)
    P = np.asarray(pr.directpred(jnp.asarray(F), eps, form="code"))
    # symmetric and commuting with F (float64 eigh: far inside the float32 bounds 1e-6 / 1e-5 of the DirectPred test plan)
    assert np.linalg.norm(P - P.T) <= 1e-12 * np.linalg.norm(P)
    assert rel_comm(F, P) <= 1e-10
    s = np.linalg.eigvalsh(F)
    expected = np.maximum(np.sqrt(np.maximum(s, 0) / s.max()) + eps, 1e-4)
    np.testing.assert_allclose(np.linalg.eigvalsh(P), np.sort(expected), atol=1e-7)
    assert abs(np.linalg.eigvalsh(P).max() - (1 + eps)) <= 1e-10


@given(seed=seeds, eps=epss, alpha_p=st.floats(0.1, 10.0))
def test_directpred_theory_form_eigenvalues(seed, eps, alpha_p):
    F = random_psd(seed, 16)
    P = np.asarray(pr.directpred(jnp.asarray(F), eps, form="theory", alpha_p=alpha_p))
    s = np.linalg.eigvalsh(F)
    np.testing.assert_allclose(np.linalg.eigvalsh(P), np.sqrt(alpha_p * s) + eps, rtol=1e-9, atol=1e-12)
    assert rel_comm(F, P) <= 1e-10


def test_directpred_zero_and_negative_spectrum():
    """F_hat = 0 (or negative definite): every u_j is 0, so p_j = max(eps, 1e-4): the documented floor."""
    for F in (np.zeros((3, 3)), -np.eye(3)):
        np.testing.assert_allclose(pr.directpred(jnp.asarray(F), 0.0, form="code"), 1e-4 * np.eye(3), atol=1e-15)
        np.testing.assert_allclose(pr.directpred(jnp.asarray(F), 0.2, form="code"), 0.2 * np.eye(3), atol=1e-15)


@given(seed=seeds, eps=epss, norm=st.sampled_from(["fro", "spectral"]))
def test_directcopy_symmetric_commuting(seed, eps, norm):
    F = random_psd(seed, 32)
    P = np.asarray(pr.directcopy(jnp.asarray(F), eps, norm))
    assert np.linalg.norm(P - P.T) <= 1e-12 * np.linalg.norm(P)
    assert rel_comm(F, P) <= 1e-12
    s = np.linalg.eigvalsh(F)
    scale = np.linalg.norm(s) if norm == "fro" else np.abs(s).max()
    np.testing.assert_allclose(np.linalg.eigvalsh(P), s / scale + eps, atol=1e-12)


def test_diagonal_rules_match_matrix_rules():
    s = np.array([2.0, 0.5, 0.1, 0.0])
    for rule, kw in (("directpred", dict(form="code")), ("directpred", dict(form="theory", alpha_p=2.0)),
                     ("directcopy", dict(norm="fro")), ("directcopy", dict(norm="spectral"))):
        M = pr.apply_rule(jnp.diag(s), rule, eps=0.05, **kw)
        v = pr.apply_rule(jnp.asarray(s), rule, eps=0.05, diagonal=True, **kw)
        np.testing.assert_allclose(np.diag(np.asarray(M)), v, atol=1e-14)


@given(seed=seeds)
def test_symmetrize_projection(seed):
    A = np.random.default_rng(seed).standard_normal((5, 5))
    S = np.asarray(pr.symmetrize(jnp.asarray(A)))
    np.testing.assert_array_equal(S, S.T)
    np.testing.assert_allclose(pr.symmetrize(jnp.asarray(S)), S, rtol=0, atol=0)


@given(seed=seeds, rho=st.floats(0.0, 0.99))
def test_accumulator_exact(seed, rho):
    """F_hat_1 = d_1 (no (1 - rho) factor), F_hat_t = rho F_hat_{t-1} + (1 - rho) d_t, bit for bit."""
    ds = np.random.default_rng(seed).standard_normal((6, 3, 3))
    F = pr.corr_init(jnp.asarray(ds[0]))
    np.testing.assert_array_equal(F, ds[0])
    ref = ds[0]
    for d in ds[1:]:
        F = pr.corr_update(F, jnp.asarray(d), rho)
        ref = rho * ref + (1.0 - rho) * d
        np.testing.assert_array_equal(np.asarray(F), ref)

    def body(F, kd):
        k, d = kd
        F = pr.corr_step(F, d, rho, k)
        return F, F

    _, Fs = jax.lax.scan(body, jnp.zeros((3, 3)), (jnp.arange(6), jnp.asarray(ds)))
    np.testing.assert_allclose(Fs[-1], ref, rtol=1e-14, atol=1e-15)  # inside jit XLA may fuse to FMA
    np.testing.assert_array_equal(Fs[0], ds[0])


def test_rule_errors():
    with pytest.raises(LinsimError, match="form"):
        pr.directpred(jnp.eye(2), 0.0, form="sqrt")
    with pytest.raises(LinsimError, match="norm"):
        pr.directcopy(jnp.eye(2), 0.0, norm="nuclear")
    with pytest.raises(LinsimError, match="rule"):
        pr.apply_rule(jnp.eye(2), "solve", eps=0.0)


# ---------------------------------------------------------------- config


def test_predictor_config_validation_and_json():
    for bad in (dict(rho=1.0), dict(rho=-0.1), dict(eps=-1.0), dict(freq=0), dict(freq=1.5), dict(form="x"), dict(norm="x")):
        with pytest.raises(LinsimError):
            Predictor(**bad)
    cfg = Config(hyper=Hyper(predictor="directcopy"), solver=Solver(method="euler"),
                 predictor=Predictor(rho=0.5, eps=0.3, freq=5, form="code", norm="spectral"))
    back = Config.from_json(json.loads(dumps(cfg.to_json())))
    assert back.predictor == cfg.predictor
    old = cfg.to_json()
    del old["predictor"]  # configs written before issue 3 still load, with the defaults
    assert Config.from_json(json.loads(dumps(old))).predictor == Predictor()


# ---------------------------------------------------------------- the discrete simulator


def _toy(model, predictor, **kw):
    solver = Solver(t_max=kw.pop("t_max", 300.0), dt=0.05, method="euler", n_save=kw.pop("n_save", 31))
    return Config(
        model=model,
        hyper=Hyper(eta=0.04, beta=0.5, predictor=predictor),
        stats=Stats.isotropic(4, 0.5),
        init=Init(scale=1.0, seed=kw.pop("seed", 0), balanced=kw.pop("balanced", False)),
        solver=solver,
        predictor=Predictor(**kw),
    )


@pytest.mark.parametrize("model", ["matrix", "modes"])
def test_theory_directpred_reaches_gradient_fixed_point(model):
    """DirectPred in the toy (docs/predictors_and_noise.md): with p_j = sqrt(alpha_p s_j) the discrete toy converges to the gradient predictor's
    (p+, s+); n = n1 = 4, eta = 0.04, sigma2 = 0.5, alpha = 0.05 (Euler has the ODE's fixed points)."""
    fp = fixed_points(0.04, 1.0, 0.5)
    dp = simulate(_toy(model, "directpred", eps=0.0, form="theory", rho=0.3))
    grad = simulate(_toy(model, "grad", balanced=True))  # balanced init: every mode in the surviving basin
    assert dp.status == "ok" and not dp.collapsed.any() and not grad.collapsed.any()
    np.testing.assert_allclose(dp.p[-1], fp.p_plus, atol=1e-3)
    np.testing.assert_allclose(dp.s[-1], fp.s_plus, atol=1e-3)
    np.testing.assert_allclose(np.sort(dp.p[-1]), np.sort(grad.p[-1]), atol=1e-3)
    np.testing.assert_allclose(np.sort(dp.s[-1]), np.sort(grad.s[-1]), atol=1e-3)
    if model == "matrix":
        assert dp.extras["asymmetry"][-1] < 1e-12 and dp.extras["commutator"][-1] < 1e-6


def test_reset_order_code_faithful():
    """freq = 1, saved every step: the saved Wp is exactly rule(F_hat) of that step, F_hat_1 = F(W_0) and the
    target is the EMA of the *updated* W (gamma_a = 1 - alpha beta)."""
    cfg = _toy("matrix", "directpred", eps=0.01, form="code", rho=0.3, t_max=0.5, n_save=11)
    tr = simulate(cfg)
    W0 = tr.states["W"][0]
    np.testing.assert_allclose(tr.extras["F_hat"][1], W0 @ W0.T, rtol=1e-14)
    for k in range(1, len(tr.ts)):
        np.testing.assert_allclose(tr.states["Wp"][k], pr.directpred(tr.extras["F_hat"][k], 0.01, "code"), atol=1e-13)
        assert abs(np.linalg.eigvalsh(tr.states["Wp"][k]).max() - 1.01) < 1e-12
    ab = 0.05 * 0.5
    Wa1 = tr.states["Wa"][0] + ab * (tr.states["W"][1] - tr.states["Wa"][0])
    np.testing.assert_allclose(tr.states["Wa"][1], Wa1, rtol=1e-13)


def test_freq_trains_predictor_between_resets():
    """freq = 5: Wp is the rule's output at steps 0, 5, 10 ... and gradient-trained in between."""
    cfg = _toy("matrix", "directcopy", eps=0.3, rho=0.5, freq=5, t_max=1.0, n_save=21)
    tr = simulate(cfg)
    for k in range(1, len(tr.ts)):
        rule = np.asarray(pr.directcopy(tr.extras["F_hat"][k], 0.3, "fro", cfg.predictor.form))
        on_reset = (k - 1) % 5 == 0  # saved index k holds the state after step k - 1
        assert np.allclose(tr.states["Wp"][k], rule, atol=1e-13) == on_reset


def test_directcopy_modes_runs_and_code_form_top_mode_decays():
    """Section 4.4: the code form's p_max = 1 + eps > tau/(1+sigma2) makes the top mode shrink in the toy."""
    tr = simulate(_toy("modes", "directcopy", eps=0.3, rho=0.5, t_max=20.0))
    assert tr.status == "ok" and np.all(np.isfinite(tr.s))
    code = simulate(_toy("modes", "directpred", eps=0.0, form="code", t_max=20.0))
    top = np.argmax(code.s[0])
    assert code.s[-1, top] < code.s[0, top]


def test_discrete_predictor_rejects_other_rules():
    with pytest.raises(LinsimError, match="directpred or directcopy"):
        pr.simulate_discrete_predictor(_toy("modes", "grad"))
    cfg = dataclasses.replace(_toy("modes", "directpred"), noise=dataclasses.replace(Config().noise, kind="sgd"))
    with pytest.raises(LinsimError, match="stochastic"):
        pr.simulate_discrete_predictor(cfg)
