"""m-view losses of the fastssl code and the kernel-estimation / orthogonality-rank studies."""
import numpy as np
import pytest
from hypothesis import given, strategies as st

from linsim.errors import LinsimError
from linsim.spectral import losses as L
from linsim.spectral import multiview as mv

m, B, d = 4, 16, 8  # fixed shapes


@given(seed=st.integers(0, 10_000))
def test_property14_identical_views_floor(seed):
    z1 = np.random.default_rng(seed).standard_normal((B, d))
    z = np.tile(z1, (m, 1))
    # λ = 0 leaves the invariance term; unbiased pooled std makes it exactly d/(mB)² (not 0)
    assert np.isclose(float(mv.multiview_barlow_loss(z, m, lambd=0.0)), d / (m * B) ** 2, rtol=1e-10)


@given(seed=st.integers(0, 10_000), lambd=st.floats(1e-3, 1.0))
def test_property14_view_permutation_invariance(seed, lambd):
    rng = np.random.default_rng(seed)
    z = rng.standard_normal((m * B, d))
    perm = rng.permutation(m)
    zp = z.reshape(m, B, d)[perm].reshape(m * B, d)
    # sums of O(100) terms: 1e-12 relative covers reordering of floating-point sums
    assert np.isclose(float(mv.multiview_barlow_loss(z, m, lambd)), float(mv.multiview_barlow_loss(zp, m, lambd)), rtol=1e-12)
    assert np.isclose(float(mv.multiview_vicreg_loss(z, m)), float(mv.multiview_vicreg_loss(zp, m)), rtol=1e-12)


@given(seed=st.integers(0, 10_000), lambd=st.floats(1e-3, 1.0))
def test_property14_two_views_is_half_sum_of_bt(seed, lambd):
    z = np.random.default_rng(seed).standard_normal((2 * B, d))
    zt = (z - z.mean(0)) / z.std(0, ddof=1)
    a, b = zt[:B], zt[B:]
    def bt(x, y):
        C = x.T @ y / B
        return np.sum((1 - np.diag(C)) ** 2) + lambd * (np.sum(C**2) - np.sum(np.diag(C) ** 2))
    assert np.isclose(float(mv.multiview_barlow_loss(z, 2, lambd)), 0.5 * (bt(a, b) + bt(b, a)), rtol=1e-12)


def test_two_view_vicreg_matches_official_structure():
    z = np.random.default_rng(1).standard_normal((2 * B, d))
    # m = 2: one term, z_i vs the other view; equals official VICReg with eps = 0 up to the ε in the std
    ref = float(L.vicreg_loss(z[:B], z[B:], 25.0, 25.0, 1.0, eps=0.0))
    assert np.isclose(float(mv.multiview_vicreg_loss(z, 2)), ref, rtol=1e-12)


def test_bad_view_count():
    with pytest.raises(LinsimError, match="not m\\*B"):
        mv.multiview_barlow_loss(np.zeros((10, 3)), 3)


def test_cf1_kernel_estimation_error_shape_and_budget():
    T = mv.augmentation_chain()
    assert np.allclose(T.sum(1), 1.0)
    small = mv.kernel_estimation_error(T, [2, 4], budget=400, d=4, n_seeds=3)
    big = mv.kernel_estimation_error(T, [2, 4], budget=6400, d=4, n_seeds=3)
    assert small.shape == (2, 3) and np.all((small >= 0) & (small <= 1 + 1e-12))
    assert np.all(big.mean(1) < small.mean(1))  # more views in total -> better kernel estimate


def test_cf2_rank_increases_with_orthogonality_weight():
    r = mv.orthogonality_rank_study([1e-3, 1e-2, 1e-1, 1.0], [4], D=12)
    assert r.shape == (1, 4)
    assert np.all(np.diff(r[0]) > 0)  # monotone in λ 
