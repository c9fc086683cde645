"""Full-matrix field (Tian et al. 2021, Lemma 1): it is the gradient of the expected loss, and the stop-gradient-removal
(Tian et al. 2021, Theorem 2) and predictor-removal (docs/theory_dynamics.md, ablations) variants collapse as the theory says.

Field identities compare two float64 evaluations of O(1) polynomials in O(1) matrices: the round-off of
each is a few ulps times the number of summed terms (<= 10^2), so 1e-12 is a safe bound.
"""
from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np
from hypothesis import given
from hypothesis import strategies as st

from linsim.dynamics.matrix import expected_loss, matrix_field, no_predictor_matrix, no_stopgrad_hessian
from linsim.dynamics.variant import Variant
from strategies import SHAPES, hypers, integrate, log_uniform, matrix_args, matrix_state, seeds, stats

FIELD_TOL = 1e-12

shapes = st.sampled_from(SHAPES)


@st.composite
def cases(draw, xp_floor=0.0, **hyper_kw):
    n, n1 = draw(shapes)
    X, Xp = draw(stats(n, xp_floor))
    h = draw(hypers(**hyper_kw))
    rng = np.random.default_rng(draw(seeds))
    state = matrix_state(rng, n, n1, draw(st.floats(0.1, 1.0)), target="independent")
    return X, Xp, h, state


def vec(W):
    """Column-stacking vec, so that vec(A W B) = (B^T kron A) vec(W) (Tian et al. 2021, Theorem 2)."""
    return jnp.reshape(W.T, (-1,))


def unvec(v, n1, n):
    return jnp.reshape(v, (n, n1)).T


@given(cases(same_eta_p=False), st.sampled_from(["grad", "symmetric", "identity"]))
def test_field_is_minus_gradient_of_expected_loss(case, predictor):
    """dW = -dJ/dW - eta W, dWp = alpha_p (-dJ/dWp) - eta_p Wp (sym for 'symmetric'), Wa held fixed (Tian et al. 2021, Lemma 1)."""
    X, Xp, h, state = case
    args = matrix_args(X, Xp, h)
    variant = Variant(predictor=predictor)
    Wa = state["W"] if math.isinf(h["beta"]) else state["Wa"]  # the (stop-gradient) target
    fixed_args = dict(args, beta=jnp.asarray(1.0))  # a finite beta: expected_loss then uses Wa as given
    gW, gWp = jax.grad(lambda W, Wp: expected_loss({"W": W, "Wp": Wp, "Wa": Wa}, fixed_args, variant), (0, 1))(
        state["W"], state["Wp"]
    )
    d = matrix_field(0.0, state, args, variant)
    np.testing.assert_allclose(d["W"], -gW - h["eta"] * state["W"], rtol=0, atol=FIELD_TOL)
    if predictor == "identity":
        want_Wp = jnp.zeros_like(state["Wp"])
    else:
        g = -gWp if predictor == "grad" else -(gWp + gWp.T) / 2
        want_Wp = h["alpha_p"] * g - h["eta_p"] * state["Wp"]
    np.testing.assert_allclose(d["Wp"], want_Wp, rtol=0, atol=FIELD_TOL)
    want_Wa = d["W"] if math.isinf(h["beta"]) else h["beta"] * (state["W"] - state["Wa"])
    np.testing.assert_allclose(d["Wa"], want_Wa, rtol=0, atol=FIELD_TOL)


@given(cases(beta=st.just(math.inf)), st.sampled_from(["grad", "identity"]))
def test_no_stopgrad_is_hessian_flow_and_full_gradient(case, predictor):
    """Without stop-gradient (Wa = W): d vec(W)/dt = -H vec(W) = -dJ(W, Wp, W)/dW - eta W (Tian et al. 2021, Theorem 2)."""
    X, Xp, h, state = case
    args = matrix_args(X, Xp, h)
    variant = Variant(predictor=predictor, stop_grad=False)
    d = matrix_field(0.0, state, args, variant)
    n1, n = state["W"].shape
    Wp = jnp.eye(n1) if predictor == "identity" else state["Wp"]
    H = no_stopgrad_hessian(Wp, args["X"], args["Xp"], args["eta"])
    np.testing.assert_allclose(d["W"], unvec(-H @ vec(state["W"]), n1, n), rtol=0, atol=FIELD_TOL)
    gW = jax.grad(lambda W: expected_loss({"W": W, "Wp": state["Wp"], "Wa": W}, args, variant))(state["W"])
    np.testing.assert_allclose(d["W"], -gW - h["eta"] * state["W"], rtol=0, atol=FIELD_TOL)


@given(cases(beta=log_uniform(0.01, 100.0)))
def test_no_predictor_field_is_block_matrix(case):
    """W_p = I with stop-gradient: d/dt [W, Wa] = [W, Wa] M (docs/theory_dynamics.md, ablations)."""
    X, Xp, h, state = case
    args = matrix_args(X, Xp, h)
    d = matrix_field(0.0, state, args, Variant(predictor="identity"))
    M = no_predictor_matrix(args["X"], args["Xp"], args["eta"], args["beta"])
    rows = jnp.concatenate([state["W"], state["Wa"]], axis=1) @ M
    n = X.shape[0]
    np.testing.assert_allclose(d["W"], rows[:, :n], rtol=0, atol=FIELD_TOL)
    np.testing.assert_allclose(d["Wa"], rows[:, n:], rtol=0, atol=FIELD_TOL)
    np.testing.assert_array_equal(d["Wp"], 0.0)


# ------------------------------------------------------------------ invariant 3: stop-gradient removal


@given(cases())
def test_hessian_symmetric_psd_with_floor(case):
    """H is symmetric PSD and lambda_min(H) >= eta + lambda_min(X') (Tian et al. 2021, Theorem 2).

    H is assembled from Kronecker products of O(1) matrices: entries carry ~1e-15 round-off, so the
    symmetry is exact to 1e-12 and the eigenvalue bound holds to 1e-10 (eigvalsh backward error ~ n eps ||H||).
    """
    X, Xp, h, state = case
    H = np.asarray(no_stopgrad_hessian(state["Wp"], jnp.asarray(X), jnp.asarray(Xp), h["eta"]))
    np.testing.assert_allclose(H, H.T, rtol=0, atol=FIELD_TOL)
    lam = np.linalg.eigvalsh(H)
    assert lam[0] >= -1e-10
    assert lam[0] >= h["eta"] + np.linalg.eigvalsh(Xp)[0] - 1e-10


@given(cases(xp_floor=0.01, beta=st.just(math.inf)))
def test_no_stopgrad_collapses_monotonically(case):
    """Invariant 3: ||W||_F is non-increasing and ||W(T)|| <= 1.01 e^{-lambda_0 T} ||W(0)||, lambda_0 = eta + lambda_min(X').

    lambda_0 >= 0.01 makes ||W|| drop by >= 1e-3 (relative) between saves (dt = 0.1), far above the
    ~1e-9 solver error, so a 1e-12 relative slack is enough.
    """
    X, Xp, h, state = case
    args = matrix_args(X, Xp, h)
    T = 5.0
    _, ys = integrate(state, args, T, "matrix", Variant(stop_grad=False))
    norms = np.linalg.norm(ys["W"], axis=(1, 2))
    assert np.all(np.diff(norms) <= 1e-12 * norms[:-1])
    lam0 = h["eta"] + np.linalg.eigvalsh(Xp)[0]
    assert norms[-1] <= 1.01 * math.exp(-lam0 * T) * norms[0]


# ------------------------------------------------------------------ invariant 4: predictor removal


@given(st.sampled_from([4, 6]), seeds, st.floats(0.001, 0.1), log_uniform(0.01, 100.0))
def test_no_predictor_matrix_is_stable(n, seed, eta, beta):
    """max Re eig(M) < 0 whenever eta > 0 (docs/theory_dynamics.md, ablations; observed <= -1e-14)."""
    rng = np.random.default_rng(seed)
    M = no_predictor_matrix(jnp.asarray(psd_(rng, n)), jnp.asarray(psd_(rng, n, 0.5)), eta, beta)
    assert np.max(np.real(np.linalg.eigvals(np.asarray(M)))) < 0


def psd_(rng, n, scale=1.0):
    A = rng.standard_normal((n, n))
    return scale * (A @ A.T) / n


@given(cases(eta=st.floats(0.01, 0.1), beta=st.one_of(st.just(math.inf), log_uniform(0.05, 20.0))))
def test_no_predictor_collapses(case):
    """Invariant 4: with eta + lambda_min(X') >= 0.01, ||W(T)|| <= 1e-3 ||W(0)|| at T = 10/|max Re eig(M)|.

    SimSiam (Wa = W) reduces to dW = -W (X' + eta I), whose slowest rate is eta + lambda_min(X'). The bound
    leaves a factor 1e-3 / e^{-10} ~ 22 for the non-normal transient of M; the solver error (~1e-9) is irrelevant.
    """
    X, Xp, h, state = case
    args = matrix_args(X, Xp, h)
    state = dict(state, Wp=jnp.eye(state["Wp"].shape[0]))
    if math.isinf(h["beta"]):
        rate = h["eta"] + np.linalg.eigvalsh(Xp)[0]
    else:
        M = no_predictor_matrix(args["X"], args["Xp"], args["eta"], args["beta"])
        rate = -np.max(np.real(np.linalg.eigvals(np.asarray(M))))
    assert rate > 0
    _, ys = integrate(state, args, 10.0 / rate, "matrix", Variant(predictor="identity"), max_steps=200_000)
    norms = np.linalg.norm(ys["W"], axis=(1, 2))
    assert norms[-1] <= 1e-3 * norms[0]
    np.testing.assert_array_equal(ys["Wp"][-1], np.eye(state["Wp"].shape[0]))


@given(cases(), st.sampled_from([Variant(), Variant("symmetric"), Variant("identity"), Variant(stop_grad=False)]))
def test_lean_statistics_give_the_same_field(case, variant):
    # The field's cheap forms (X + X' precomputed; diagonal X, X' as vectors: column scalings instead of
    # products) compute the same sums in another order: FIELD_TOL (module docstring) bounds the difference.
    from linsim.dynamics.matrix import field_args

    X, Xp, h, state = case
    full = matrix_args(X, Xp, h)
    lean = field_args(full)
    assert ("XX" in lean) != ("x" in lean)
    diag = field_args(matrix_args(np.diag(np.diag(X)), np.diag(np.diag(Xp)), h))
    assert "x" in diag and "X" not in diag
    for a, b in ((full, lean), (matrix_args(np.diag(np.diag(X)), np.diag(np.diag(Xp)), h), diag)):
        fa, fb = matrix_field(0.0, state, a, variant), matrix_field(0.0, state, b, variant)
        for k in fa:
            np.testing.assert_allclose(fb[k], fa[k], rtol=0, atol=FIELD_TOL)
