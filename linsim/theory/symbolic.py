"""Sympy derivations of the per-mode (p, w, w_a) model: fixed points, eta_c, Jacobian and its eigenvalues.

Same equations as :func:`linsim.dynamics.modes.modes_field` (the n = n1 = 1 case of Lemma 1).
Reference: Tian, Chen & Ganguli, "Understanding Self-supervised Learning Dynamics without Contrastive Pairs", ICML 2021;
docs/theory_dynamics.md (per-mode reduction; fixed points and stability).
"""
from __future__ import annotations

import functools

import mpmath
import sympy as sp

p, w, wa, s = sp.symbols("p w w_a s", real=True)
x, xp, eta, eta_p, alpha_p, beta = sp.symbols("x x' eta eta_p alpha_p beta", positive=True)
STATE = (p, w, wa)
PARAMS = (x, xp, eta, eta_p, alpha_p, beta)


def field() -> sp.Matrix:
    """(dp, dw, dw_a) with e = x w_a - (x+x') p w, dp = a_p w e - eta_p p, dw = p e - eta w, dw_a = beta (w - w_a) (docs/theory_dynamics.md)."""
    e = x * wa - (x + xp) * p * w
    return sp.Matrix([alpha_p * w * e - eta_p * p, p * e - eta * w, beta * (w - wa)])


def jacobian() -> sp.Matrix:
    """Symbolic Jacobian d(dp, dw, dw_a)/d(p, w, w_a)."""
    return field().jacobian(STATE)


@functools.lru_cache(maxsize=None)
def fixed_points() -> dict[str, sp.Expr]:
    """p+- solving p (x - (x+x') p) = eta, s+- = (eta_p/eta) p^2/a_p (from dp = 0 at w_a = w), and eta_c."""
    roots = sp.solve(sp.Eq(p * (x - (x + xp) * p), eta), p)
    ref = {x: 1, xp: sp.Rational(1, 2), eta: sp.Rational(1, 100)}
    p_minus, p_plus = sorted(roots, key=lambda r: float(r.subs(ref)))
    # dp = 0 at w_a = w, s = w^2: a_p s (x - k p) = eta_p p; on the root, x - k p = eta / p.
    s_of_p = sp.solve(sp.Eq(alpha_p * s * (x - (x + xp) * p), eta_p * p), s)[0]
    s_plus, s_minus = (sp.simplify(s_of_p.subs(p, r)) for r in (p_plus, p_minus))
    disc = sp.discriminant((x + xp) * p**2 - x * p + eta, p)
    eta_c = sp.solve(sp.Eq(disc, 0), eta)[0]
    return {"p_plus": p_plus, "p_minus": p_minus, "s_plus": s_plus, "s_minus": s_minus, "eta_c": eta_c}


def point(which: str) -> dict[sp.Symbol, sp.Expr]:
    """State (p, w, w_a) at 'plus', 'minus' (w = w_a = sqrt(s), tau = 1) or 'origin'."""
    if which == "origin":
        return {p: 0, w: 0, wa: 0}
    fp = fixed_points()
    ws = sp.sqrt(fp[f"s_{which}"])
    return {p: fp[f"p_{which}"], w: ws, wa: ws}


def jacobian_eigenvalues(which: str, values: dict | None = None, digits: int = 30) -> list:
    """Eigenvalues of the Jacobian at a fixed point: exact symbolic without ``values`` (closed
    form at the origin; Cardano radicals at p+-), else, after substituting ``values`` ({symbol or name:
    number}), the eigenvalues of the Jacobian evaluated to ``digits`` digits (mpmath.eig) as complex."""
    J = jacobian().subs(point(which))
    if values is None:
        return list(sp.simplify(J).eigenvals(multiple=True))
    by_name = {str(k): k for k in PARAMS}
    sub = {(by_name[k] if isinstance(k, str) else k): sp.Float(v, digits) for k, v in values.items()}
    with mpmath.workdps(digits):
        Jn = mpmath.matrix([[sp.N(J[i, j].subs(sub), digits) for j in range(3)] for i in range(3)])
        eig = mpmath.eig(Jn, left=False, right=False)
    return [complex(e) for e in eig]


@functools.lru_cache(maxsize=None)
def lambdified() -> dict:
    """numpy callables: fixed_points(x, x', eta, eta_p, a_p) -> (p+, p-, s+, s-), eta_c(x, x'),
    jacobian(p, w, w_a, x, x', eta, eta_p, a_p, beta) -> 3x3 array, field(...) -> (dp, dw, dw_a)."""
    fp = fixed_points()
    args5 = (x, xp, eta, eta_p, alpha_p)
    return {
        "fixed_points": sp.lambdify(args5, [fp["p_plus"], fp["p_minus"], fp["s_plus"], fp["s_minus"]], "numpy"),
        "eta_c": sp.lambdify((x, xp), fp["eta_c"], "numpy"),
        "jacobian": sp.lambdify(STATE + PARAMS, jacobian(), "numpy"),
        "field": sp.lambdify(STATE + PARAMS, list(field()), "numpy"),
    }
