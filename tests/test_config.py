"""Config validation (each bad input -> LinsimError naming the parameter) and the JSON round trip."""
from __future__ import annotations

import json
import math

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from linsim.config import Config, Hyper, Init, Solver, Stats
from linsim.errors import LinsimError
from linsim.io import dumps


@given(st.floats(max_value=-1e-300, allow_nan=False, allow_infinity=False))
def test_negative_eta_rejected(eta):
    with pytest.raises(LinsimError, match=r"^eta \(weight decay\)"):
        Hyper(eta=eta)


@given(st.floats(max_value=-1e-300, allow_nan=False, allow_infinity=False))
def test_negative_eta_p_rejected(eta_p):
    with pytest.raises(LinsimError, match=r"^eta_p"):
        Hyper(eta_p=eta_p)


@given(st.floats(max_value=0.0, allow_nan=False))
def test_nonpositive_beta_rejected(beta):
    with pytest.raises(LinsimError, match=r"^beta"):
        Hyper(beta=beta)


@given(st.one_of(st.floats(max_value=0.0, allow_nan=False), st.just(math.inf)))
def test_bad_alpha_p_rejected(alpha_p):
    with pytest.raises(LinsimError, match=r"^alpha_p"):
        Hyper(alpha_p=alpha_p)


@pytest.mark.parametrize("name", ["eta", "beta", "alpha_p"])
def test_nan_and_non_numbers_rejected(name):
    for bad in (math.nan, "abc", None):
        with pytest.raises(LinsimError, match=rf"^{name}"):
            Hyper(**{name: bad})


@given(st.floats(max_value=-1e-300, allow_nan=False, allow_infinity=False))
def test_negative_sigma2_rejected(sigma2):
    with pytest.raises(LinsimError, match=r"^sigma2"):
        Stats.isotropic(4, sigma2)


@given(st.integers(0, 2**31 - 1), st.floats(1e-6, 1.0))
def test_non_psd_X_rejected(seed, depth):
    """A symmetric matrix with one eigenvalue -depth is rejected, naming X (or X')."""
    rng = np.random.default_rng(seed)
    Q, _ = np.linalg.qr(rng.standard_normal((4, 4)))
    bad = Q @ np.diag([1.0, 0.5, 0.2, -depth]) @ Q.T
    with pytest.raises(LinsimError, match=r"^X must be positive semi-definite"):
        Stats.matrices(bad, np.eye(4))
    with pytest.raises(LinsimError, match=r"^X' must be positive semi-definite"):
        Stats.matrices(np.eye(4), bad)


@given(st.integers(0, 2**31 - 1), st.floats(1e-6, 1.0))
def test_non_symmetric_X_rejected(seed, eps):
    rng = np.random.default_rng(seed)
    A = rng.standard_normal((4, 4))
    X = A @ A.T
    X[0, 1] += eps * max(1.0, np.abs(X).max())
    with pytest.raises(LinsimError, match=r"^X must be symmetric"):
        Stats.matrices(X, np.eye(4))


def test_shape_mismatch_rejected():
    with pytest.raises(LinsimError, match=r"^X' must be 4x4"):
        Stats.matrices(np.eye(4), np.eye(3))
    with pytest.raises(LinsimError, match=r"^X must be a non-empty square matrix"):
        Stats.matrices(np.ones((3, 4)), np.eye(3))


@given(st.integers(1, 8), st.integers(1, 4))
def test_n1_larger_than_n_rejected_in_matrix_model(n, extra):
    with pytest.raises(LinsimError, match=r"^n1="):
        Config(model="matrix", n1=n + extra, stats=Stats.isotropic(n, 0.5))
    assert Config(model="matrix", n1=n, stats=Stats.isotropic(n, 0.5)).out_dim == n


@pytest.mark.parametrize(
    "make, pattern",
    [
        (lambda: Config(model="tensor"), r"^unknown model 'tensor'"),
        (lambda: Hyper(predictor="mlp"), r"^unknown predictor 'mlp'"),
        (lambda: Solver(method="rk4"), r"^unknown solver 'rk4'"),
        (lambda: Solver(rtol=0), r"^rtol"),
        (lambda: Solver(t_max=-1), r"^t_max"),
        (lambda: Solver(n_save=1), r"^n_save"),
        (lambda: Solver(method="euler", dt=2.0, t_max=1.0), r"^Euler step dt"),
        (lambda: Init(scale=0), r"^init scale"),
        (lambda: Init(target="random"), r"^init target"),
        (lambda: Init(seed=-1), r"^seed"),
        (lambda: Config(n1=0), r"^n1"),
    ],
)
def test_unknown_or_invalid_names_rejected(make, pattern):
    with pytest.raises(LinsimError, match=pattern):
        make()


def test_modes_model_needs_diagonal_stats():
    rng = np.random.default_rng(0)
    A = rng.standard_normal((4, 4))
    with pytest.raises(LinsimError, match=r"per-mode model needs commuting \(diagonal\) X and X'"):
        Config(model="modes", stats=Stats.matrices(A @ A.T, np.eye(4)))
    with pytest.raises(LinsimError, match=r"n1 must equal n=4"):
        Config(model="modes", n1=3, stats=Stats.isotropic(4))
    Config(model="modes", stats=Stats.diagonal([1.0, 2.0], [0.1, 0.2]))  # diagonal: accepted
    Config(model="matrix", stats=Stats.matrices(A @ A.T, np.eye(4)))  # general: fine for the matrix model


@st.composite
def configs(draw):
    kind = draw(st.sampled_from(["isotropic", "diagonal", "matrix"]))
    n = draw(st.sampled_from([3, 4]))
    rng = np.random.default_rng(draw(st.integers(0, 2**31 - 1)))
    if kind == "isotropic":
        stats = Stats.isotropic(n, draw(st.floats(0.0, 2.0)))
    elif kind == "diagonal":
        stats = Stats.diagonal(rng.uniform(0.1, 2, n), rng.uniform(0, 1, n))
    else:
        A = rng.standard_normal((n, n))
        stats = Stats.matrices(A @ A.T, np.eye(n) * 0.3)
    model = "matrix" if kind == "matrix" else draw(st.sampled_from(["modes", "matrix"]))
    stop_grad = draw(st.booleans())  # no stop-gradient is defined for SimSiam only (Tian et al. 2021, Theorem 2)
    hyper = Hyper(
        eta=draw(st.floats(0, 0.1)),
        eta_p=draw(st.one_of(st.none(), st.floats(0, 0.1))),
        beta=draw(st.one_of(st.just(math.inf), st.floats(0.01, 100))) if stop_grad else math.inf,
        alpha_p=draw(st.floats(0.1, 10)),
        stop_grad=stop_grad,
        predictor=draw(st.sampled_from(["grad", "symmetric", "identity"])),
    )
    init = Init(scale=draw(st.floats(0.1, 1)), seed=draw(st.integers(0, 1000)), balanced=draw(st.booleans()),
                target=draw(st.sampled_from(["copy", "independent"])))
    solver = Solver(t_max=draw(st.floats(1, 500)), n_save=draw(st.integers(2, 500)),
                    method=draw(st.sampled_from(["tsit5", "dopri5", "kvaerno5"])), rtol=draw(st.floats(1e-12, 1e-3)))
    n1 = draw(st.one_of(st.none(), st.integers(1, n))) if model == "matrix" else None
    return Config(model=model, n1=n1, hyper=hyper, stats=stats, init=init, solver=solver)


@given(configs())
def test_json_round_trip(cfg):
    """Config -> strict JSON text -> Config gives the same config (beta = inf survives as "inf")."""
    text = dumps(cfg.to_json())
    back = Config.from_json(json.loads(text))
    assert dumps(back.to_json()) == text
    assert back.hyper == cfg.hyper and back.init == cfg.init and back.solver == cfg.solver
    assert back.model == cfg.model and back.n1 == cfg.n1
    np.testing.assert_array_equal(back.stats.X, cfg.stats.X)
    np.testing.assert_array_equal(back.stats.Xp, cfg.stats.Xp)
