"""linsim.bridge.evaluate: predictor spectra and invariants, collapse metrics, kNN and linear probe (numpy only)."""
from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from linsim.bridge.config import TrainConfig
from linsim.bridge import evaluate as ev
from linsim.errors import DivergenceError, LinsimError

seeds = st.integers(0, 2**31 - 1)
dims = st.sampled_from([3, 6])  # few fixed shapes
alphas = st.floats(0.1, 10.0)
# Float64 eigen-decompositions of O(1) matrices with eigenvalue gaps >= 0.1 are accurate to ~1e-13;
# 1e-9 leaves four orders of margin.
TOL = 1e-9


def _orth(rng, d):
    q, r = np.linalg.qr(rng.standard_normal((d, d)))
    return q * np.sign(np.diag(r))


def _spread_psd(rng, d):
    """F = Q diag(lam) Q^T with eigenvalues at least 0.1 apart (well-defined eigenvectors)."""
    lam = np.arange(1, d + 1) * 0.5 + rng.uniform(0, 0.4, d)
    Q = _orth(rng, d)
    return (Q * lam) @ Q.T, Q, lam


# --------------------------------------------------------------------------------------------------
# predictor_report


@given(seeds, dims)
def test_symmetric_predictor_has_real_spectrum_and_no_asymmetry(seed, d):
    rng = np.random.default_rng(seed)
    A = rng.standard_normal((d, d))
    Wp = (A + A.T) / 2
    F, _, _ = _spread_psd(rng, d)
    r = ev.predictor_report(Wp, F)
    assert np.max(np.abs(r["wp_eig_imag"])) < TOL
    assert r["asymmetry"] < TOL
    # Wp is symmetric, so its eigenvalues and those of its symmetric part coincide
    assert np.allclose(r["wp_eig_real"], r["wp_sym_eig"], atol=TOL)
    assert r["balance"] is None


@given(seeds, dims)
def test_spectra_sorted_descending_and_match_numpy(seed, d):
    rng = np.random.default_rng(seed)
    Wp = rng.standard_normal((d, d))
    F, _, lam = _spread_psd(rng, d)
    r = ev.predictor_report(Wp, F)
    re, im = np.array(r["wp_eig_real"]), np.array(r["wp_eig_imag"])
    assert np.all(np.diff(re) <= TOL)
    assert np.all(np.diff(r["wp_sym_eig"]) <= 0) and np.all(np.diff(r["f_eig"]) <= 0)
    assert np.allclose(r["f_eig"], np.sort(lam)[::-1], atol=TOL)
    # same multiset as numpy's eigenvalues; conjugate pairs are sorted (+imag first)
    ref = np.linalg.eigvals(Wp)
    got = re + 1j * im
    assert np.allclose(np.sort_complex(got), np.sort_complex(ref), atol=1e-8)
    assert math.isclose(np.sum(re), np.trace(Wp), abs_tol=1e-9) and abs(np.sum(im)) < 1e-9


def test_rotation_predictor_has_complex_pair():
    c, s = math.cos(0.3), math.sin(0.3)
    Wp = 2.0 * np.array([[c, -s, 0], [s, c, 0], [0, 0, 0.5]])
    r = ev.predictor_report(Wp, np.eye(3))
    assert np.allclose(r["wp_eig_real"], [2 * c, 2 * c, 1.0])
    assert np.allclose(r["wp_eig_imag"], [2 * s, -2 * s, 0.0])
    assert r["asymmetry"] > 0.5  # ||Wp - Wp^T|| = 2*sqrt(2)*2s ~ 3.3, ||Wp|| ~ 2.9


@given(seeds, dims, st.floats(0.1, 3.0), st.floats(0.0, 1.0), st.floats(-2.0, 2.0))
def test_predictor_that_is_a_function_of_F_commutes_and_aligns(seed, d, a, b, c):
    rng = np.random.default_rng(seed)
    F, _, _ = _spread_psd(rng, d)
    Wp = a * F + b * F @ F + c * np.eye(d)  # increasing function of F: same eigenvectors, same order
    r = ev.predictor_report(Wp, F)
    assert r["commutator"] < TOL
    assert np.min(r["alignment"]) > 1 - 1e-8
    assert len(r["alignment"]) == d


@given(seeds, dims)
def test_random_predictor_does_not_commute(seed, d):
    rng = np.random.default_rng(seed)
    F, _, _ = _spread_psd(rng, d)
    Wp = rng.standard_normal((d, d))
    r = ev.predictor_report(Wp, F)
    # generic pairs: [F, Wp] = 0 is a measure-zero event; 1e-6 is far below the typical O(0.1) value
    assert r["commutator"] > 1e-6
    assert 0 < r["commutator"] <= math.sqrt(2) + 1e-12  # ||AB - BA|| <= sqrt(2) ||A|| ||B|| (Böttcher-Wenzel)
    assert all(0 <= x <= 1 + 1e-12 for x in r["alignment"])


@given(seeds, dims, alphas)
def test_balanced_pair_has_zero_balance(seed, d, alpha_p):
    rng = np.random.default_rng(seed)
    W = rng.standard_normal((d, 5))
    lam, U = np.linalg.eigh(W @ W.T)
    root = (U * np.sqrt(np.clip(lam, 0, None))) @ U.T
    Wp = math.sqrt(alpha_p) * root  # Wp^T Wp = alpha_p W W^T
    assert ev.predictor_report(Wp, np.eye(d), W, alpha_p=alpha_p)["balance"] < 1e-10
    # any orthogonal factor on the left keeps Wp^T Wp, so a non-symmetric Wp can be balanced too
    Q = _orth(rng, d)
    assert ev.predictor_report(Q @ Wp, np.eye(d), W, alpha_p=alpha_p)["balance"] < 1e-10
    # scaling Wp by 1.5: C = 1.25 W W^T, normaliser (2.25 + 1) ||W W^T||
    r = ev.predictor_report(1.5 * Wp, np.eye(d), W, alpha_p=alpha_p)
    assert math.isclose(r["balance"], 1.25 / 3.25, rel_tol=1e-9)


@given(seeds, dims, alphas, st.floats(0.2, 5.0))
def test_balance_scales_with_alpha_p(seed, d, alpha_p, k):
    rng = np.random.default_rng(seed)
    W = rng.standard_normal((d, 4))
    Wp = rng.standard_normal((d, d))
    r1 = ev.predictor_report(Wp, np.eye(d), W, alpha_p=alpha_p)["balance"]
    # Wp^T Wp / alpha_p is unchanged by Wp -> sqrt(k) Wp, alpha_p -> k alpha_p
    r2 = ev.predictor_report(math.sqrt(k) * Wp, np.eye(d), W, alpha_p=k * alpha_p)["balance"]
    assert 0 < r1 <= 1 and math.isclose(r1, r2, rel_tol=1e-9)


def test_predictor_report_is_json_ready_and_checks_input():
    rng = np.random.default_rng(0)
    r = ev.predictor_report(rng.standard_normal((4, 4)).astype(np.float32), np.eye(4), rng.standard_normal((4, 3)))
    for v in r.values():
        assert isinstance(v, (float, list)) and (not isinstance(v, list) or all(type(x) is float for x in v))
    with pytest.raises(LinsimError, match="square"):
        ev.predictor_report(np.ones((3, 4)), np.eye(3))
    with pytest.raises(LinsimError, match="F must"):
        ev.predictor_report(np.eye(3), np.eye(4))
    with pytest.raises(LinsimError, match="W_before"):
        ev.predictor_report(np.eye(3), np.eye(3), np.ones((4, 3)))
    with pytest.raises(LinsimError, match="alpha_p"):
        ev.predictor_report(np.eye(3), np.eye(3), alpha_p=0.0)
    bad = np.eye(3)
    bad[0, 1] = np.nan
    with pytest.raises(DivergenceError, match="Wp contains 1 non-finite"):
        ev.predictor_report(bad, np.eye(3))


# --------------------------------------------------------------------------------------------------
# representation_report and is_collapsed


def test_isotropic_versus_rank_one_features():
    rng = np.random.default_rng(1)
    n, d = 400, 16
    iso = ev.representation_report(rng.standard_normal((n, d)), prefix="b")
    assert set(iso) == {"b_cev_auc", "b_rankme", "b_eff_rank", "b_std", "b_constant"}
    # isotropic: singular values within ~(1 +- sqrt(d/n)) = 1 +- 0.2 of each other, so AUC is close to its
    # floor (d+1)/(2d) = 0.53 (a linear spread over 0.8..1.2 gives ~0.56) and RankMe / participation ratio
    # close to d
    assert iso["b_cev_auc"] < 0.6 and iso["b_rankme"] > 0.9 * d and iso["b_eff_rank"] > 0.8 * d
    assert abs(iso["b_std"] - 1 / math.sqrt(d)) < 0.02 and iso["b_constant"] is False
    assert not ev.is_collapsed(iso["b_rankme"], d)
    r1 = ev.representation_report(np.outer(rng.standard_normal(n), rng.standard_normal(d)), prefix="p")
    # rank 1: the centred spectrum has one non-zero value (AUC = 1 up to round-off), RankMe = 1 + eps bias
    assert r1["p_cev_auc"] > 1 - 1e-9 and abs(r1["p_rankme"] - 1) < 1e-3 and abs(r1["p_eff_rank"] - 1) < 1e-9
    assert ev.is_collapsed(r1["p_rankme"], d)


@pytest.mark.parametrize("value", [0.0, 3.0, -1e4])
def test_constant_features_are_complete_collapse_without_nan(value):
    rng = np.random.default_rng(2)
    z = np.full((64, 8), value, dtype=np.float32)
    z[:, 0] = value * 0.5
    # float32 round-off of a constant map (relative 1e-8) must not look like spread features
    z = z * (1 + 1e-8 * rng.standard_normal(z.shape)).astype(np.float32)
    r = ev.representation_report(z, prefix="proj")
    assert r == {"proj_cev_auc": 1.0, "proj_rankme": r["proj_rankme"], "proj_eff_rank": 1.0, "proj_std": 0.0,
                 "proj_constant": True}
    assert 1.0 <= r["proj_rankme"] < 1.001 and ev.is_collapsed(r["proj_rankme"], 8)


def test_representation_report_input_errors():
    with pytest.raises(LinsimError, match="2 rows"):
        ev.representation_report(np.ones((1, 4)), prefix="b")
    with pytest.raises(LinsimError, match="2-D"):
        ev.representation_report(np.ones(4), prefix="b")
    with pytest.raises(DivergenceError, match="backbone features"):
        ev.representation_report(np.full((3, 2), np.inf), prefix="backbone")


def test_is_collapsed_threshold():
    assert ev.is_collapsed(1.2) and ev.is_collapsed(1.49) and not ev.is_collapsed(1.5)
    assert ev.COLLAPSE_RANKME == TrainConfig().collapse_rankme  # one bar for training and evaluation
    assert not ev.is_collapsed(1.2, 100, threshold=1.1)
    # a 1-D representation always has RankMe ~1: not collapse by itself; 2-D: bar at 1.5
    assert not ev.is_collapsed(1.0, 1) and ev.is_collapsed(1.4, 2) and not ev.is_collapsed(1.6, 2)
    with pytest.raises(DivergenceError):
        ev.is_collapsed(float("nan"))


# --------------------------------------------------------------------------------------------------
# kNN and linear probe


def _clusters(rng, n, d=32, classes=5, spread=0.3):
    centres = rng.standard_normal((classes, d))
    y = rng.integers(0, classes, n)
    return centres[y] + spread * rng.standard_normal((n, d)) / math.sqrt(d), y


def _knn_reference(xtr, ytr, xte, k, t):
    """Loop-and-sort version of the InstDisc vote, independent of the vectorised one."""
    out = []
    for x in xte:
        sims = [float(x @ a / (np.linalg.norm(x) * np.linalg.norm(a))) for a in xtr]
        order = sorted(range(len(sims)), key=lambda i: -sims[i])[:k]
        votes = {}
        for i in order:
            votes[int(ytr[i])] = votes.get(int(ytr[i]), 0.0) + math.exp(sims[i] / t)
        best = max(votes.values())
        out.append(min(c for c, v in votes.items() if v == best))
    return np.array(out)


@given(seeds, st.sampled_from([1, 3, 7]))
def test_knn_matches_reference_vote(seed, k):
    rng = np.random.default_rng(seed)
    xtr, ytr = rng.standard_normal((40, 6)), rng.integers(0, 4, 40)
    xte, yte = rng.standard_normal((15, 6)), rng.integers(0, 4, 15)
    pred = _knn_reference(xtr, ytr, xte, k, 0.1)
    assert ev.knn_accuracy(xtr, ytr, xte, yte, k=k) == pytest.approx(np.mean(pred == yte), abs=1e-12)


def test_knn_separable_and_random_labels():
    rng = np.random.default_rng(3)
    x, y = _clusters(rng, 1500, classes=10)
    assert ev.knn_accuracy(x[:1000], y[:1000], x[1000:], y[1000:]) == 1.0
    yr = rng.integers(0, 10, 1500)
    acc = ev.knn_accuracy(x[:1000], yr[:1000], x[1000:], yr[1000:])
    # labels independent of features: Binomial(500, 0.1)/500, std 0.013; 0.06 is > 4 std
    assert abs(acc - 0.1) < 0.06
    # k larger than the training set is clipped to it, not an error; small memory blocks change nothing
    few = (x[:5], y[:5], x[5:60], y[5:60])
    assert ev.knn_accuracy(*few, k=50) == ev.knn_accuracy(*few, k=5)
    assert ev.knn_accuracy(x[:1000], y[:1000], x[1000:], yr[1000:], memory=7000) == pytest.approx(
        ev.knn_accuracy(x[:1000], y[:1000], x[1000:], yr[1000:]), abs=0
    )


def test_probe_separable_random_and_deterministic():
    rng = np.random.default_rng(4)
    x, y = _clusters(rng, 1500, d=64, classes=10, spread=2.0)  # overlapping in distance, linearly separable
    a = ev.linear_probe_accuracy(x[:1000], y[:1000], x[1000:], y[1000:])
    assert a > 0.95
    assert ev.linear_probe_accuracy(x[:1000], y[:1000], x[1000:], y[1000:]) == a
    yr = rng.integers(0, 10, 1500)
    acc = ev.linear_probe_accuracy(x[:1000], yr[:1000], x[1000:], yr[1000:])
    assert abs(acc - 0.1) < 0.06  # as for kNN: chance 0.1, std 0.013 on 500 test points
    # a constant feature column (std 0) is harmless
    xc = np.concatenate([x, np.ones((1500, 1))], axis=1)
    assert ev.linear_probe_accuracy(xc[:1000], y[:1000], xc[1000:], y[1000:]) > 0.95


def test_probe_and_knn_input_errors():
    x = np.ones((10, 3))
    y = np.arange(10) % 2
    with pytest.raises(LinsimError, match="train labels must have shape"):
        ev.knn_accuracy(x, y[:5], x, y)
    with pytest.raises(LinsimError, match="same width"):
        ev.linear_probe_accuracy(x, y, np.ones((10, 4)), y)
    with pytest.raises(LinsimError, match="class indices"):
        ev.knn_accuracy(x, y - 1, x, y)
    with pytest.raises(LinsimError, match="integer"):
        ev.linear_probe_accuracy(x, y + 0.5, x, y)
    with pytest.raises(DivergenceError):
        ev.knn_accuracy(np.full((10, 3), np.nan), y, x, y)


def test_probe_agrees_with_sklearn_logistic_regression():
    from sklearn.linear_model import LogisticRegression  # a dev dependency

    rng = np.random.default_rng(5)
    x, y = _clusters(rng, 600, d=20, classes=4, spread=6.0)  # overlapping classes: accuracy well below 1
    xtr, xte = x[:300], x[300:]
    mu, sd = xtr.mean(0), xtr.std(0)
    # sklearn minimises C sum(CE) + ||W||^2/2, i.e. mean CE + ||W||^2 / (2 C n): the same objective at C = 1/(l2 n)
    ref = LogisticRegression(C=1 / (ev.PROBE_L2 * 300), tol=1e-10, max_iter=5000)
    ref.fit((xtr - mu) / sd, y[:300])
    want = float(np.mean(ref.predict((xte - mu) / sd) == y[300:]))
    got = ev.linear_probe_accuracy(xtr, y[:300], xte, y[300:], steps=1000)
    assert 0.3 < want < 0.95
    # both solve the same convex problem; a point or two may sit on a decision boundary (1/300 each)
    assert abs(got - want) <= 2 / 300, (got, want)
