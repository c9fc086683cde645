"""Sympy derivations (linsim.theory.symbolic) against the numeric per-mode model (docs/theory_dynamics.md, per-mode reduction and fixed points).

Agreement to 1e-10: the closed forms are evaluated in float64 on both sides (round-off ~1e-15); the
Jacobian eigenvalues come from the 30-digit roots of the exact characteristic polynomial on the sympy side
and from LAPACK on a 3 x 3 float64 matrix (backward error ~1e-16 ||J||) on the numeric side, and the
eigenvalues at p+- are well separated (no defective clusters), so their condition number is O(1-10).
"""
from __future__ import annotations

import math

import jax.numpy as jnp
import numpy as np
import sympy as sp
from hypothesis import given
from hypothesis import strategies as st

from linsim.dynamics.modes import eta_critical, fixed_points, jacobian, modes_field, stability
from linsim.theory import symbolic as sym
from strategies import alphas, log_uniform, modes_args, sigma2s

TOL = 1e-10
fracs = st.floats(0.01, 0.99)  # eta / eta_c


def test_symbolic_closed_forms():
    """eta_c = x^2/(4(x+x')), p+ p- = eta/(x+x'), p+ + p- = x/(x+x') and s+- = (eta_p/eta) p+-^2/alpha_p."""
    fp = sym.fixed_points()
    x, xp, eta, eta_p, a = sym.x, sym.xp, sym.eta, sym.eta_p, sym.alpha_p
    assert sp.simplify(fp["eta_c"] - x**2 / (4 * (x + xp))) == 0
    assert sp.simplify(fp["p_plus"] * fp["p_minus"] - eta / (x + xp)) == 0
    assert sp.simplify(fp["p_plus"] + fp["p_minus"] - x / (x + xp)) == 0
    for which in ("plus", "minus"):
        assert sp.simplify(fp[f"s_{which}"] - eta_p / eta * fp[f"p_{which}"] ** 2 / a) == 0
        # and the point zeroes the symbolic field
        F = sym.field().subs(sym.point(which))
        assert all(sp.simplify(f) == 0 for f in F)


def test_symbolic_origin_eigenvalues():
    """At the origin the (p, w, w_a) Jacobian is diag(-eta_p, -eta, -beta) (docs/theory_dynamics.md)."""
    eig = sym.jacobian_eigenvalues("origin")
    assert set(eig) == {-sym.eta_p, -sym.eta, -sym.beta}


@given(sigma2s, st.floats(0.5, 2.0), fracs, st.floats(0.2, 3.0), alphas)
def test_fixed_points_and_eta_c_match_numeric(sigma2, x, frac, ratio, alpha_p):
    """Lambdified p+-, s+- and eta_c equal linsim.dynamics.modes.fixed_points / eta_critical to 1e-10."""
    eta = frac * eta_critical(x, sigma2)
    eta_p = ratio * eta
    num = fixed_points(eta, alpha_p, sigma2, x=x, eta_p=eta_p)
    pp, pm, sp_, sm = sym.lambdified()["fixed_points"](x, sigma2, eta, eta_p, alpha_p)
    np.testing.assert_allclose([pp, pm, sp_, sm], [num.p_plus, num.p_minus, num.s_plus, num.s_minus], rtol=TOL, atol=1e-14)
    np.testing.assert_allclose(sym.lambdified()["eta_c"](x, sigma2), num.eta_c, rtol=TOL)


@given(st.floats(-1.5, 1.5), st.floats(-1.5, 1.5), st.floats(-1.5, 1.5), st.floats(0.5, 2.0), sigma2s,
       st.floats(0.0, 0.1), st.floats(0.0, 0.1), alphas, log_uniform(0.01, 100.0))
def test_field_and_jacobian_match_numeric(p, w, wa, x, xp, eta, eta_p, alpha_p, beta):
    """The symbolic field and Jacobian equal modes_field and its jax.jacfwd Jacobian anywhere (docs/theory_dynamics.md)."""
    h = dict(eta=eta, eta_p=eta_p, beta=beta, alpha_p=alpha_p)
    vals = (p, w, wa, x, xp, eta, eta_p, alpha_p, beta)
    d = modes_field(0.0, {"p": jnp.asarray(p), "w": jnp.asarray(w), "wa": jnp.asarray(wa)}, modes_args(x, xp, h))
    np.testing.assert_allclose(sym.lambdified()["field"](*vals), [d["p"], d["w"], d["wa"]], rtol=TOL, atol=1e-12)
    # linsim's jacobian() evaluates at w_a = w (tau = 1): compare there.
    s = w**2
    J_num = np.asarray(jacobian(p, s, modes_args(x, xp, h)))
    J_sym = np.asarray(sym.lambdified()["jacobian"](p, abs(w), abs(w), x, xp, eta, eta_p, alpha_p, beta), dtype=float)
    np.testing.assert_allclose(J_num, J_sym, rtol=TOL, atol=1e-12)


@given(sigma2s, fracs, alphas, log_uniform(0.01, 100.0), st.sampled_from(["plus", "minus", "origin"]))
def test_jacobian_eigenvalues_match_numeric(sigma2, frac, alpha_p, beta, which):
    """Symbolic eigenvalues (exact charpoly, 30-digit roots) equal modes.stability's to 1e-10 (docs/theory_dynamics.md)."""
    eta = frac * eta_critical(1.0, sigma2)
    fp = fixed_points(eta, alpha_p, sigma2)
    p, s = {"plus": (fp.p_plus, fp.s_plus), "minus": (fp.p_minus, fp.s_minus), "origin": (0.0, 0.0)}[which]
    args = modes_args(1.0, sigma2, dict(eta=eta, eta_p=eta, beta=beta, alpha_p=alpha_p))
    eig_num, _ = stability(p, s, args)
    values = {"x": 1.0, "x'": sigma2, "eta": eta, "eta_p": eta, "alpha_p": alpha_p, "beta": beta}
    eig_sym = np.array(sym.jacobian_eigenvalues(which, values))
    key = lambda e: (round(e.real, 8), e.imag)  # noqa: E731
    a, b = sorted(eig_sym, key=key), sorted(eig_num, key=key)
    np.testing.assert_allclose(np.array(a), np.array(b), rtol=TOL, atol=1e-12)


def test_eigenvalues_at_fixed_points_do_not_depend_on_alpha_p():
    """Independence of alpha_p, made exact: the characteristic polynomial at p+- has no alpha_p."""
    lam = sp.Symbol("lambda")
    for which in ("plus", "minus"):
        J = sym.jacobian().subs(sym.point(which)).subs(sym.eta_p, sym.eta)
        coeffs = sp.Poly(J.charpoly(lam).as_expr(), lam).all_coeffs()
        assert all(sp.simplify(sp.diff(c, sym.alpha_p)) == 0 for c in coeffs)
    # and a numeric spot-check of the table value -2 eta that appears at both points
    vals = {"x": 1.0, "x'": 0.5, "eta": 0.04, "eta_p": 0.04, "beta": 0.5}
    for a in (1.0, 10.0):
        eig = sym.jacobian_eigenvalues("plus", dict(vals, alpha_p=a))
        assert min(abs(e - (-0.08)) for e in eig) <= 1e-12
    assert not math.isnan(eig[0].real)
