"""Loss forms: graph (G) forms vs the official two-view forms."""
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given, strategies as st

from linsim.errors import LinsimError
from linsim.spectral import graphs as g
from linsim.spectral import losses as L

n, K = 6, 4  # one fixed shape: JAX compiles once


def _pair(seed):
    rng = np.random.default_rng(seed)
    return rng.standard_normal((n, K)), rng.standard_normal((n, K))


def _nt_xent_reference(za, zb, tau):
    """Independent numpy NT-Xent (SimCLR): loop over the 2n anchors."""
    Z = np.vstack([za, zb])
    Z = Z / np.linalg.norm(Z, axis=1, keepdims=True)
    tot = 0.0
    for i in range(2 * n):
        j = (i + n) % (2 * n)
        s = Z @ Z[i] / tau
        others = np.delete(s, i)
        tot += -(s[j] - np.log(np.sum(np.exp(others))))
    return tot / (2 * n)


@given(seed=st.integers(0, 10_000), tau=st.floats(0.05, 1.0))
def test_property1_loss_form_equivalence(seed, tau):
    za, zb = _pair(seed)
    Z, G = np.vstack([za, zb]), g.two_view_graph(n)
    ref = _nt_xent_reference(za, zb, tau)
    # logsumexp of ≤ 12 terms with logits ≤ 20: relative rounding ~1e-15, 1e-10 as required
    assert np.isclose(float(L.nt_xent_graph_loss(Z, G, tau)), ref, rtol=1e-10)
    assert np.isclose(float(L.nt_xent_loss(za, zb, tau)), ref, rtol=1e-10)
    tr = np.trace(Z.T @ g.laplacian(G) @ Z)
    assert np.isclose(tr, np.sum((za - zb) ** 2), rtol=1e-12)
    repr_only = float(L.vicreg_loss(za, zb, sim_coeff=1.0, std_coeff=0.0, cov_coeff=0.0))
    assert np.isclose(repr_only, tr / (n * K), rtol=1e-12)


@given(seed=st.integers(0, 10_000))
def test_symmetries(seed):
    za, zb = _pair(seed)
    for f in (L.vicreg_loss, L.nt_xent_loss, L.barlow_loss, L.spectral_contrastive_loss):
        assert np.isclose(float(f(za, zb)), float(f(zb, za)), rtol=1e-12)


def test_official_vicreg_against_numpy_reference():
    za, zb = _pair(3)
    def part(z):
        zc = z - z.mean(0)
        std = np.sqrt(zc.var(0, ddof=1) + 1e-4)
        cov = zc.T @ zc / (n - 1)
        return np.mean(np.maximum(0, 1 - std)), (np.sum(cov**2) - np.sum(np.diag(cov) ** 2)) / K
    (sa, ca), (sb, cb) = part(za), part(zb)
    ref = 25 * np.mean((za - zb) ** 2) + 25 * (sa + sb) / 2 + (ca + cb)
    assert np.isclose(float(L.vicreg_loss(za, zb)), ref, rtol=1e-12)


def test_barlow_forms():
    za, zb = _pair(4)
    bn = lambda z: (z - z.mean(0)) / np.sqrt(z.var(0) + 1e-5)  # noqa: E731
    C = bn(za).T @ bn(zb) / n
    ref = np.sum((1 - np.diag(C)) ** 2) + 0.0051 * (np.sum(C**2) - np.sum(np.diag(C) ** 2))
    assert np.isclose(float(L.barlow_loss(za, zb)), ref, rtol=1e-12)
    # G-form with pooled standardisation equals the linear population form with B, S_G of the same rows
    Z, G = np.vstack([za, zb]), g.two_view_graph(n)
    Zc = Z - Z.mean(0)
    B, S = Zc.T @ Zc / (2 * n), Zc.T @ G @ Zc / G.sum()
    assert np.isclose(float(L.barlow_graph_loss(Z, G, 0.3)), float(L.barlow_linear_loss(np.eye(K), B, S, 0.3)),
                      rtol=1e-12)
    # a perfectly invariant standardised representation (constant degree) has C_G = I: loss 0
    Zi = np.vstack([za, za])
    Zs = (Zi - Zi.mean(0)) / Zi.std(0)
    Cg = Zs.T @ G @ Zs / G.sum()
    assert np.allclose(np.diag(Cg), 1.0, atol=1e-12)


def test_spectral_contrastive_graph_vs_matrix_form():
    rng = np.random.default_rng(5)
    N = 2 * n
    G = np.triu(rng.random((N, N)) * (rng.random((N, N)) < 0.5), 1)
    G = G + G.T + g.two_view_graph(n)  # no isolated nodes
    F = rng.standard_normal((N, K))
    d = G.sum(1) / G.sum()
    Ghat = g.normalized_adjacency(G)
    lhs = float(L.spectral_contrastive_graph_loss(F, G))
    rhs = float(L.spectral_contrastive_matrix_loss(np.sqrt(d)[:, None] * F, G)) - np.sum(Ghat**2)
    assert np.isclose(lhs, rhs, rtol=1e-10, atol=1e-12)


def test_vicreg_graph_loss_terms():
    Z, _ = _pair(6)
    Z = (Z - Z.mean(0)) / Z.std(0)  # unit variance: variance hinge is zero
    G = g.label_graph(np.array([0, 0, 0, 1, 1, 1]))
    Lap = g.laplacian(G)
    S = np.cov(Z.T, bias=True)
    ref = 2.0 * (np.sum(S**2) - np.sum(np.diag(S) ** 2)) / K + 3.0 * np.trace(Z.T @ Lap @ Z) / (n * K)
    assert np.isclose(float(L.vicreg_graph_loss(Z, G, 1.0, 2.0, 3.0)), ref, rtol=1e-12)


def test_input_checks():
    with pytest.raises(LinsimError, match=r"z_a and z_b must have the same shape, found \(4, 8\) and \(4, 9\)"):
        L.vicreg_loss(jnp.zeros((4, 8)), jnp.zeros((4, 9)))
    with pytest.raises(LinsimError, match="G must be"):
        L.nt_xent_graph_loss(jnp.ones((4, 2)), jnp.zeros((3, 3)))
