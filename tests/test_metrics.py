"""Collapse metrics (linsim.metrics): properties listed in docs/metrics.md,
participation-ratio bounds, alpha-ReQ recovery, input validation, and the Li et al. (2022) released spectra.

Tolerances: metric identities that hold in exact arithmetic are checked to 1e-10 (relative), which leaves
several orders of magnitude above float64 round-off of an SVD of the sizes used here (<= 64 x 64, error
~1e-14 relative) and sums of <= 2048 terms.
"""
from __future__ import annotations


import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from scipy.stats import spearmanr

from linsim import metrics as M
from linsim.errors import LinsimError

from shared_data import LI_AUC, LI_FILE, LI_KEYS, LI_PATH, LI_RANKME  # noqa: F401



def _rng(seed: int) -> np.random.Generator:
    return np.random.default_rng(seed)


def _descending_spectrum(seed: int, d: int, zeros: int = 0) -> np.ndarray:
    s = np.sort(_rng(seed).exponential(size=d))[::-1]
    if zeros:
        s[d - zeros :] = 0.0
    return s


def _orthonormal(rng: np.random.Generator, n: int, k: int) -> np.ndarray:
    q, _ = np.linalg.qr(rng.normal(size=(n, k)))
    return q[:, :k]


seeds = st.integers(0, 2**31 - 1)
dims = st.integers(1, 64)


# ---------------------------------------------------------------------------------------------------
# Li et al. CEV-AUC (docs/metrics.md)


@given(seed=seeds, d=dims, data=st.data())
def test_auc_range(seed, d, data):
    zeros = data.draw(st.integers(0, d - 1))
    s = _descending_spectrum(seed, d, zeros)
    auc = M.cev_auc(s, singular_values=True)
    # CEV_k >= k/d for a descending spectrum, so AUC >= (d+1)/(2d); 1e-12 absorbs summation round-off.
    assert (d + 1) / (2 * d) - 1e-12 <= auc <= 1 + 1e-12


@given(d=dims, c=st.floats(1e-6, 1e6))
def test_auc_equality_cases(d, c):
    # exact in exact arithmetic; 1e-12 absorbs the round-off of cumsum over <= 64 equal terms.
    assert M.cev_auc(np.full(d, c), singular_values=True) == pytest.approx((d + 1) / (2 * d), abs=1e-12)
    assert M.cev_auc(np.r_[c, np.zeros(d - 1)], singular_values=True) == 1.0


@given(seed=seeds, d=dims, c=st.floats(1e-8, 1e8))
def test_auc_scale_invariance(seed, d, c):
    s = _descending_spectrum(seed, d)
    assert M.cev_auc(c * s, singular_values=True) == pytest.approx(M.cev_auc(s, singular_values=True), rel=1e-10)
    z = _rng(seed).normal(size=(max(d, 2) + 3, d))
    assert M.cev_auc(c * z) == pytest.approx(M.cev_auc(z), rel=1e-10)


@given(seed=seeds, n=st.integers(2, 40), d=st.integers(1, 12))
def test_centering_before_svd(seed, n, d):
    rng = _rng(seed)
    z = rng.normal(size=(n, d))
    shifted = z + 10.0 * rng.normal(size=(1, d))
    ref = np.linalg.svd(z - z.mean(0), compute_uv=False)
    # centring removes any common offset: identical spectra (1e-10 relative to sigma_1; the offset of
    # norm ~30 costs ~1e-14 relative in the subtraction)
    np.testing.assert_allclose(M.singular_values(z), ref, rtol=0, atol=1e-10 * ref[0])
    np.testing.assert_allclose(M.singular_values(shifted), ref, rtol=0, atol=1e-10 * ref[0])
    assert M.cev_auc(shifted) == pytest.approx(M.cev_auc(z), rel=1e-10)
    # without centring the raw spectrum is used
    np.testing.assert_allclose(
        M.singular_values(z, center=False), np.linalg.svd(z, compute_uv=False), rtol=1e-12, atol=1e-12
    )


@given(seed=seeds, n=st.integers(2, 40), d=st.integers(1, 12))
def test_normalize_then_center(seed, n, d):
    z = _rng(seed).normal(size=(n, d)) * _rng(seed + 1).exponential(size=(n, 1))
    r = z / (np.linalg.norm(z, axis=1, keepdims=True) + 1e-6)  # Li et al. save_reprs_clean.py
    ref = np.linalg.svd(r - r.mean(0), compute_uv=False)
    np.testing.assert_allclose(M.singular_values(z, normalize=True), ref, rtol=0, atol=1e-12)


def test_cev_curve_definition():
    s = np.array([4.0, 3.0, 2.0, 1.0])
    np.testing.assert_allclose(M.cev_curve(s, singular_values=True), [0.4, 0.7, 0.9, 1.0], rtol=1e-15)
    assert M.cev_auc(s, singular_values=True) == pytest.approx(3.0 / 4, rel=1e-15)
    # sigma, not sigma^2, and unsorted input is sorted first
    assert M.cev_auc(s[::-1], singular_values=True) == M.cev_auc(s, singular_values=True)


# ---------------------------------------------------------------------------------------------------
# RankMe (docs/metrics.md)


@given(seed=seeds, n=st.integers(2, 64), k=st.integers(1, 64), data=st.data())
def test_rankme_equal_singular_values_bias_bound(seed, n, k, data):
    q = min(n, k)
    r = data.draw(st.integers(1, q))
    rng = _rng(seed)
    s = data.draw(st.floats(1e-3, 1e3))
    z = _orthonormal(rng, n, r) @ (s * _orthonormal(rng, k, r).T)
    eps = M.RANKME_EPS
    value = M.rankme(z)
    # The SVD's numerically-zero singular values (~1e-16 s) add ~1e-16 to p_k, 9 orders below eps, so
    # the bounds need only 1e-12 relative slack for round-off.
    if (r, q) == (1, 1):
        # The one case where the reference bound eps*r*ln(max(r,2)) = 0.69 eps is violated: p_1 = 1 + eps, so
        # RankMe = (1+eps)^-(1+eps) = 1 - eps(1+eps) + O(eps^2), a *downward* bias of 1.0 eps.
        assert value == pytest.approx((1 + eps) ** -(1 + eps), rel=1e-14)
        return
    # The reference bound exactly as stated (it holds for every (r, q) != (1, 1); checked on a grid q <= 69 and
    # q in {128, 512, 2048, 4096} while writing this test).
    assert abs(value - r) / r <= eps * (r * np.log(max(r, 2)) + 17 * (q - r)) + 1e-12
    # the eps floor biases upward, except for r = q in {1, 2}, where r*eps*(ln r - 1) < 0
    if not (r == q and r <= 2):
        assert value >= r * (1 - 1e-12)


def test_rankme_bias_reference_values():
    # The reference quotes these two values to 4-5 significant digits: tolerance = half a unit of the last digit.
    one = np.r_[1.0, np.zeros(2047)]
    assert M.rankme(one, singular_values=True) == pytest.approx(1.0033, abs=5e-5)
    assert M.rankme(np.ones(2048), singular_values=True) == pytest.approx(2050.8, abs=0.05)
    # with eps = 0 the value is exactly r (0 log 0 = 0)
    assert M.rankme(one, eps=0.0, singular_values=True) == 1.0
    assert M.rankme(np.ones(8), eps=0.0, singular_values=True) == pytest.approx(8.0, rel=1e-14)


@given(seed=seeds, n=st.integers(2, 30), k=st.integers(1, 12), c=st.floats(1e-6, 1e6))
def test_rankme_scale_and_orthogonal_invariance(seed, n, k, c):
    rng = _rng(seed)
    z = rng.normal(size=(n, k)) * rng.exponential(size=k)
    q = _orthonormal(rng, k, k)
    p = _orthonormal(rng, n, n)
    # singular values of cZQ are c * sigma(Z) to ~1e-15 relative; p_k is then equal to ~1e-15 and the
    # entropy to ~1e-14: 1e-10 is a safe margin.
    assert M.rankme(c * z @ q) == pytest.approx(M.rankme(z), rel=1e-10)
    assert M.rankme(p @ z) == pytest.approx(M.rankme(z), rel=1e-10)


def test_rankme_does_not_center():
    z = np.ones((10, 4))  # rank 1 raw; centred it would be all zero
    assert M.rankme(z) == pytest.approx(1.0, abs=1e-5)  # eps bias for (r, q) = (1, 4): 3 * 17 * 1e-7
    with pytest.raises(LinsimError, match="all singular values are zero"):
        M.cev_auc(z)


# ---------------------------------------------------------------------------------------------------
# participation ratio, std of normalised embeddings, alpha-ReQ


@given(seed=seeds, d=dims, data=st.data())
def test_participation_ratio_bounds(seed, d, data):
    zeros = data.draw(st.integers(0, d - 1))
    s = _descending_spectrum(seed, d, zeros)
    rank = d - zeros
    pr = M.participation_ratio(s, singular_values=True)
    # Cauchy-Schwarz: 1 <= PR <= rank; 1e-12 relative covers the round-off of two sums of <= 64 terms.
    assert 1 - 1e-12 <= pr <= rank * (1 + 1e-12)


@given(d=dims, c=st.floats(1e-6, 1e6))
def test_participation_ratio_equality_cases(d, c):
    assert M.participation_ratio(np.full(d, c), singular_values=True) == pytest.approx(d, rel=1e-12)
    assert M.participation_ratio(np.r_[c, np.zeros(d - 1)], singular_values=True) == 1.0


def test_participation_ratio_uses_sigma_squared():
    # lambda = sigma^2 = (4, 1): (5)^2 / 17
    assert M.participation_ratio(np.array([2.0, 1.0]), singular_values=True) == pytest.approx(25 / 17, rel=1e-15)


def test_std_normalized_isotropic_and_collapsed():
    d = 16
    z = _rng(0).normal(size=(4000, d))
    # For isotropic Gaussians each coordinate of z/|z| has variance exactly 1/d; the sample std over
    # 4000 rows (averaged over 16 dims) has relative standard error ~ 1/sqrt(2*4000*16) ~ 3e-3: 2% is >6 SE.
    assert M.std_normalized(z) == pytest.approx(1 / np.sqrt(d), rel=0.02)
    collapsed = _rng(1).exponential(size=(100, 1)) * _rng(2).normal(size=(1, d))  # one direction, positive scales
    assert M.std_normalized(collapsed) < 1e-12


@given(alpha=st.floats(0.2, 3.0), d=st.integers(8, 256), logc=st.floats(-10, 10))
def test_alpha_req_recovers_planted_exponent_on_spectrum(alpha, d, logc):
    k = np.arange(1, d + 1)
    s = np.exp(logc) * k ** (-alpha / 2)  # lambda = sigma^2 ~ k^-alpha
    fit = M.alpha_req(s, singular_values=True)
    # an exact power law is fitted exactly: error = round-off of a 2x2 weighted normal-equation solve
    assert fit.alpha == pytest.approx(alpha, abs=1e-9)
    assert fit.r2 == pytest.approx(1.0, abs=1e-12)


@given(seed=seeds, alpha=st.floats(0.5, 2.5))
def test_alpha_req_recovers_planted_exponent_on_embeddings(seed, alpha):
    rng = _rng(seed)
    n, d = 200, 32
    u = _orthonormal(rng, n, d + 1)
    ones = np.ones((n, 1)) / np.sqrt(n)
    u = u - ones @ (ones.T @ u)  # columns orthogonal to 1, so the centred spectrum is exactly planted
    u, _ = np.linalg.qr(u[:, :d])
    s = np.arange(1, d + 1) ** (-alpha / 2)
    z = (u * s) @ _orthonormal(rng, d, d).T + 5.0  # an offset that centring removes
    fit = M.alpha_req(z)
    # SVD round-off on a 200 x 32 matrix (~1e-14 relative) propagates to ~1e-12 in alpha.
    assert fit.alpha == pytest.approx(alpha, abs=1e-8)
    assert fit.r2 > 1 - 1e-10


def test_alpha_req_k_range_and_errors():
    s = np.r_[np.arange(1, 11) ** -1.0, 0.5 * np.arange(11, 21) ** -1.0]
    assert M.alpha_req(s, singular_values=True, k_range=(1, 10)).alpha == pytest.approx(2.0, abs=1e-10)
    with pytest.raises(LinsimError, match="k_range"):
        M.alpha_req(s, singular_values=True, k_range=(5, 5))
    with pytest.raises(LinsimError, match="at least 2"):
        M.alpha_req(np.r_[1.0, 0.0, 0.0], singular_values=True)


# ---------------------------------------------------------------------------------------------------
# summarize, validation, array types


def test_summarize_keys_embeddings_and_spectra():
    z = _rng(3).normal(size=(50, 6))
    s = M.summarize(z)
    assert set(s) >= {"cev_auc", "rankme", "participation_ratio", "alpha_req", "std_normalized", "dim", "n"}
    assert (s["dim"], s["n"]) == (6, 50)
    assert s["cev_auc"] == M.cev_auc(z) and s["rankme"] == M.rankme(z)
    assert s["participation_ratio"] == pytest.approx(M.participation_ratio(z), rel=1e-15)
    assert s["std_normalized"] == M.std_normalized(z)
    sv = M.summarize(M.singular_values(z), singular_values=True)
    assert sv["std_normalized"] is None and sv["n"] is None and sv["dim"] == 6
    assert sv["cev_auc"] == pytest.approx(s["cev_auc"], rel=1e-15)
    # rank-1 embeddings: AUC 1, PR 1, alpha-ReQ undefined (None) rather than an error
    r1 = M.summarize(np.outer(np.arange(10.0), np.ones(3)))
    assert r1["cev_auc"] == pytest.approx(1.0, abs=1e-12) and r1["alpha_req"] is None


def test_accepts_jax_arrays():
    import jax.numpy as jnp

    z = _rng(4).normal(size=(30, 5))
    assert M.summarize(jnp.asarray(z)) == M.summarize(z)


@pytest.mark.parametrize(
    ("fn", "arg", "match"),
    [
        (M.cev_auc, np.ones(5), "2-D"),
        (M.cev_auc, np.ones((2, 3, 4)), "2-D"),
        (M.cev_auc, np.ones((1, 4)), "at least 2 rows"),
        (M.cev_auc, np.zeros((0, 4)), "empty"),
        (M.cev_auc, np.array([[1.0, np.nan], [0.0, 1.0]]), "non-finite"),
        (M.rankme, np.array([[1.0, np.inf], [0.0, 1.0]]), "non-finite"),
        (M.std_normalized, np.array([["a", "b"], ["c", "d"]]), "numeric"),
    ],
)
def test_embedding_validation(fn, arg, match):
    with pytest.raises(LinsimError, match=match):
        fn(arg)


@pytest.mark.parametrize(
    ("arg", "match"),
    [
        (np.ones((3, 3)), "1-D"),
        (np.array([]), "empty"),
        (np.array([1.0, -0.1]), "non-negative"),
        (np.array([1.0, np.nan]), "non-finite"),
        (np.zeros(4), "all singular values are zero"),
        (np.array([1 + 1j]), "real"),
    ],
)
def test_spectrum_validation(arg, match):
    for fn in (M.cev_auc, M.rankme, M.participation_ratio, M.summarize):
        with pytest.raises(LinsimError, match=match):
            fn(arg, singular_values=True)


# ---------------------------------------------------------------------------------------------------
# Li, Efros & Pathak 2022 released spectra (docs/metrics.md)


@pytest.fixture(scope="module")
def li2022() -> dict[str, np.ndarray]:
    with np.load(LI_PATH) as data:
        return {k: data[k] for k in LI_KEYS}


def test_li2022_auc_values_and_order(li2022):
    auc = [M.cev_auc(li2022[k], singular_values=True) for k in LI_KEYS]
    # the reference table is rounded to 4 decimals (error <= 5e-5); 1e-4.
    np.testing.assert_allclose(auc, LI_AUC, rtol=0, atol=1e-4)
    # AUC ranks the six models as the reference values do (1% < 5% < 10% < 100% < 50% < 20%)
    assert list(np.argsort(auc)) == list(np.argsort(LI_AUC)) == [0, 1, 2, 5, 4, 3]


def test_li2022_rankme_values_and_reversed_order(li2022):
    auc = [M.cev_auc(li2022[k], singular_values=True) for k in LI_KEYS]
    rm = [M.rankme(li2022[k], singular_values=True) for k in LI_KEYS]
    # The reference prints RankMe to one decimal: the rounding error is <= 0.05; computing in float64 on the float32
    # values differs from a float32 computation by ~1e-4 (measured), far inside that, so atol = 0.05.
    np.testing.assert_allclose(rm, LI_RANKME, rtol=0, atol=0.05)
    assert spearmanr(auc, rm).statistic == pytest.approx(-1.0, abs=1e-12)
    assert list(np.argsort(rm)) == list(np.argsort(auc))[::-1]


def test_extreme_scales_do_not_overflow():
    # Every metric but std_normalized is scale-free; sigma^2 of 1e160-scaled data overflows float64 unless the
    # spectrum is divided by sigma_1 first. Tolerance 1e-9: only rounding in the SVD of rescaled data differs.
    z = np.random.default_rng(1).standard_normal((50, 8))
    ref = M.summarize(z)
    for c in (1e160, 1e-200):
        got = M.summarize(z * c)
        for k in ("cev_auc", "rankme", "participation_ratio", "alpha_req", "alpha_req_r2"):
            assert np.isfinite(got[k]) and abs(got[k] - ref[k]) <= 1e-9 * abs(ref[k]), (c, k)
    # huge rows normalise to unit length (no overflow in the norm); the 1e-12 norm floor (torch's
    # F.normalize) maps rows far below it to ~0, so tiny embeddings give 0 by that convention
    assert abs(M.std_normalized(z * 1e160) - ref["std_normalized"]) <= 1e-12
    assert M.std_normalized(z * 1e-200) < 1e-100


# ---------------------------------------------------------------------------------------------------
# alpha-ReQ fitting range (issue: the exponent depends strongly on it; R^2 must be on the same ranks)


def _reference_fit(lam, trange0):
    """The fastssl ``stringer_get_powerlaw`` fit (weighted LS on log-log, weights 1/k), 0-based ``trange0``."""
    k = trange0 + 1.0
    x = np.stack([-np.log(k), np.ones_like(k)], axis=1)
    w = (1.0 / k)[:, None]
    return np.linalg.solve(x.T @ (x * w), (w * x).T @ np.log(lam[trange0]))[0]


def test_alpha_req_default_range_is_the_reference_codes():
    assert M.ALPHA_REQ_K_RANGE == (4, 100)
    rng = _rng(11)
    s = np.sort(rng.uniform(0.5, 1.5, 300) * np.arange(1, 301) ** -0.6)[::-1]  # noisy power law, 300 ranks
    lam = s**2 / np.sum(s**2)
    fit = M.alpha_req(s, singular_values=True)
    assert (fit.k_min, fit.k_max) == (4, 100)
    # same estimator as np.arange(3, 100) in the reference code; 1e-12: two 2x2 solves of the same sums
    assert fit.alpha == pytest.approx(_reference_fit(lam, np.arange(3, 100)), abs=1e-12)
    # R^2 on the fitted ranks only
    k = np.arange(4, 101)
    y = np.log(lam[3:100])
    pred = -fit.alpha * np.log(k) + np.average(y + fit.alpha * np.log(k), weights=1 / k)
    r2 = 1 - np.sum((y - pred) ** 2) / np.sum((y - y.mean()) ** 2)
    assert fit.r2 == pytest.approx(r2, abs=1e-12)


def test_alpha_req_range_matters_and_is_user_settable():
    # a spectrum whose slope changes at k = 10: the fitting range decides the exponent
    k = np.arange(1, 61, dtype=float)
    lam = np.where(k <= 10, k**-0.5, 10**1.5 * k**-2.0)
    s = np.sqrt(lam)
    head = M.alpha_req(s, singular_values=True, k_range=(1, 10))
    tail = M.alpha_req(s, singular_values=True, k_range=(10, 60))
    assert head.alpha == pytest.approx(0.5, abs=1e-10) and tail.alpha == pytest.approx(2.0, abs=1e-10)
    default = M.alpha_req(s, singular_values=True)
    assert (default.k_min, default.k_max) == (4, 60)  # clipped to the 60 non-zero eigenvalues
    assert 0.5 < default.alpha < 2.0 and default.r2 < 1.0
    summ = M.summarize(s, singular_values=True, alpha_range=(1, 10))
    assert summ["alpha_req"] == pytest.approx(0.5, abs=1e-10) and summ["alpha_req_range"] == [1, 10]
    assert M.summarize(s, singular_values=True)["alpha_req_range"] == [4, 60]
    assert M.parse_k_range("4:100") == (4, 100)
    for bad in ("5", "a:b", "7:3", "0:5"):
        with pytest.raises(LinsimError, match="K_MIN:K_MAX"):
            M.parse_k_range(bad)
    # too few non-zero eigenvalues for the default range: undefined (None in summaries), not a wrong number
    assert M.summarize(np.r_[1.0, 0.5, 0.2, 0.0], singular_values=True)["alpha_req"] is None


def test_cli_metrics_alpha_range(tmp_path):
    import json

    from typer.testing import CliRunner

    from linsim.cli import app

    k = np.arange(1, 61, dtype=float)
    np.save(tmp_path / "s.npy", np.sqrt(np.where(k <= 10, k**-0.5, 10**1.5 * k**-2.0)))
    runner = CliRunner()
    res = runner.invoke(app, ["metrics", str(tmp_path / "s.npy"), "--singular-values", "--alpha-range", "1:10",
                              "--json", "--no-plot", "--out", str(tmp_path / "o")])
    assert res.exit_code == 0, res.output
    row = json.loads(res.stdout)["results"][0]
    assert row["alpha_req"] == pytest.approx(0.5, abs=1e-10) and row["alpha_req_range"] == [1, 10]
    assert json.loads((tmp_path / "o" / "metrics.json").read_text())["alpha_req_k_range"] == [1, 10]
    bad = runner.invoke(app, ["metrics", str(tmp_path / "s.npy"), "--singular-values", "--alpha-range", "10",
                              "--out", str(tmp_path / "b")])
    assert bad.exit_code == 2 and "K_MIN:K_MAX" in bad.output and not (tmp_path / "b").exists()
