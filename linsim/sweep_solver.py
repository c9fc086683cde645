"""The per-mode sweep solver: every grid point its own adaptive IMEX solve, with the sweep's outputs
(collapse, time to 1% of p+, balance residual) computed on the fly inside one jitted loop.

Method. In the variables (p, w, d = w_a - w) the per-mode field of Tian, Chen & Ganguli (ICML 2021,
eq. 15; see docs/theory_dynamics.md) reads

    dp/dt = f_p(p, w, w + d),   dw/dt = f_w(p, w, w + d),   dd/dt = -beta d - f_w(p, w, w + d).

(p, w) are advanced with the explicit tableau and d with the implicit (ESDIRK, L-stable, stiffly accurate)
tableau of Kennedy & Carpenter's additive Runge-Kutta pair ARK5(4)8L[2]SA ("Additive Runge-Kutta schemes for
convection-diffusion-reaction equations", Appl. Numer. Math. 44, 2003, Tables 5-6), order 5 with an embedded
order-4 error estimate. The field is affine in w_a (f = f|_{w_a = w} + (df/dw_a) d), so each implicit stage
is one division, no Newton iteration. The EMA rate beta enters only through the implicit part: as beta grows,
d = O(1/beta) at every stage and the scheme tends to the explicit method applied to SimSiam (w_a = w), so the
step is set by accuracy, not by beta (beta = 100 takes about as many steps as beta = 1; an explicit method
needs beta h < ~3). Splitting the forcing -f_w of d into the implicit part is what keeps the full order as
beta -> inf: with -f_w explicit, the limit of the scheme is the low-order explicit stage 8 and the step
count grows with beta.

Accuracy. Each point has its own step size, controlled in the max norm over (p, w, w_a) with
|err_i| <= atol + rtol max(|y_i(t)|, |y_i(t + h)|): every point meets rtol/atol on its own, as strictly as a
solo solve with a max norm (diffrax's default RMS norm is looser). Step sizes follow an I controller,
h <- h * clip(0.9 err^(-1/4), 0.2, 10) (a rejected step is retried with the smaller h).

Throughput. A chunk is processed by a fixed number of slots; whenever an eighth of them have finished their
point, their results are stored and they take the next points of the chunk, so the loop runs for about the
mean number of steps per point, not the maximum. Points are independent: a point's numbers do not depend on
the chunk or slot it is solved in.

Outputs per point (all computed inside the jit): the final state, status (0 ok, 1 diverged: non-finite or
|y| > bound, 2 max_steps), attempted steps, the max over accepted steps of the balance-law residual
|c(t) - e^{-2 eta t} c(0)| / (p0^2/alpha_p + s0), c = p^2/alpha_p - s (docs/theory_dynamics.md), and the time
after which |p - p+| <= 1% |p+| holds: the last crossing into the band is located by Newton iteration on the
cubic Hermite interpolant of p over the step where it happens.
"""
from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np

from linsim.dynamics.modes import modes_field
from linsim.dynamics.variant import Variant

# ---------------------------------------------------------------------------------- ARK5(4)8L[2]SA tableau
# Kennedy & Carpenter (2003), Tables 5 (explicit) and 6 (implicit); common b, b_hat and c.
GAMMA = 41 / 200
C = np.array([0.0, 41 / 100, 2935347310677 / 11292855782101, 1426016391358 / 7196633302097, 92 / 100, 24 / 100,
              3 / 5, 1.0])
B = np.array([-872700587467 / 9133579230613, 0, 0, 22348218063261 / 9555858737531,
              -1143369518992 / 8141816002931, -39379526789629 / 19018526304540, 32727382324388 / 42900044865799,
              GAMMA])
B_HAT = np.array([-975461918565 / 9796059967033, 0, 0, 78070527104295 / 32432590147079,
                  -548382580838 / 3424219808633, -33438840321285 / 15594753105479, 3629800801594 / 4656183773603,
                  4035322873751 / 18575991585200])
_AE_ROWS = (
    [41 / 100],
    [367902744464 / 2072280473677, 677623207551 / 8224143866563],
    [1268023523408 / 10340822734521, 0, 1029933939417 / 13636558850479],
    [14463281900351 / 6315353703477, 0, 66114435211212 / 5879490589093, -54053170152839 / 4284798021562],
    [14090043504691 / 34967701212078, 0, 15191511035443 / 11219624916014, -18461159152457 / 12425892160975,
     -281667163811 / 9011619295870],
    [19230459214898 / 13134317526959, 0, 21275331358303 / 2942455364971, -38145345988419 / 4862620318723,
     -1 / 8, -1 / 8],
    [-19977161125411 / 11928030595625, 0, -40795976796054 / 6384907823539, 177454434618887 / 12078138498510,
     782672205425 / 8267701900261, -69563011059811 / 9646580694205, 7356628210526 / 4942186776405],
)
_AI_ROWS = (
    [GAMMA],
    [41 / 400, -567603406766 / 11931857230679],
    [683785636431 / 9252920307686, 0, -110385047103 / 1367015193373],
    [3016520224154 / 10081342136671, 0, 30586259806659 / 12414158314087, -22760509404356 / 11113319521817],
    [218866479029 / 1489978393911, 0, 638256894668 / 5436446318841, -1179710474555 / 5321154724896,
     -60928119172 / 8023461067671],
    [1020004230633 / 5715676835656, 0, 25762820946817 / 25263940353407, -2161375909145 / 9755907335909,
     -211217309593 / 5846859502534, -4269925059573 / 7827059040719],
    list(B[:7]),
)


def _lower(rows) -> np.ndarray:
    a = np.zeros((8, 8))
    for i, row in enumerate(rows):
        a[i + 1, : len(row)] = row
    return a


A_EXPLICIT = _lower(_AE_ROWS)
A_IMPLICIT = _lower(_AI_ROWS) + GAMMA * np.diag([0.0] + [1.0] * 7)

# quantities scattered to the outputs when a point finishes (rows of the result array)
_OUT = ("t", "p", "w", "d", "bal", "cr_t", "cr_h", "cr_p0", "cr_dp0", "cr_p1", "cr_w1", "cr_d1",
        "bad", "ever_bad", "status", "steps")
_PARAMS = ("eta", "eta_p", "beta", "alpha_p", "x", "xp")


def p_plus(eta, x, xp):
    """p+ = [x + sqrt(x^2 - 4 eta (x+x'))] / (2 (x+x')), NaN beyond eta_c (docs/theory_dynamics.md, fixed points)."""
    k = x + xp
    disc = x * x - 4.0 * eta * k
    return jnp.where(disc >= 0, (x + jnp.sqrt(jnp.maximum(disc, 0.0))) / (2.0 * k), jnp.nan)


def _field_affine(p, w, par):
    """(f_p, f_w) at w_a = w and their derivatives in w_a (the field is affine in w_a), one jvp of modes_field."""
    def f(wa):
        d = modes_field(0.0, {"p": p, "w": w, "wa": wa}, par, Variant())
        return d["p"], d["w"]

    (fp, fw), (gp, gw) = jax.jvp(f, (w,), (jnp.ones_like(w),))
    return fp, fw, gp, gw


def _ark_step(p, w, d, h, par):
    """One ARK5(4)8L[2]SA step of (p, w) explicit, d implicit; returns (y_new, err, f_p(y_n)).

    Each stage's values (p_i, w_i, d_i) and derivatives (f_p, f_w, f_d), and the new state, are stacked behind
    an optimization barrier, so that XLA computes each once in one kernel instead of re-deriving every earlier
    stage inside each consumer fusion: 3-4x fewer flops and fewer kernels per step on CPU.
    """
    simsiam = jnp.isinf(par["beta"])
    beta = jnp.where(simsiam, 0.0, par["beta"])
    hg = h * GAMMA
    KP, KW, G = [], [], []
    fp0 = None
    for i in range(8):
        pi = p + h * sum(A_EXPLICIT[i, j] * KP[j] for j in range(i) if A_EXPLICIT[i, j] != 0) if i else p
        wi = w + h * sum(A_EXPLICIT[i, j] * KW[j] for j in range(i) if A_EXPLICIT[i, j] != 0) if i else w
        fp, fw, gp, gw = _field_affine(pi, wi, par)
        if i == 0:
            di = d
        else:  # d_i = R_i + h gamma (-beta d_i - f_w(d_i)), f_w(d_i) = fw + gw d_i: one division
            ri = d + h * sum(A_IMPLICIT[i, j] * G[j] for j in range(i) if A_IMPLICIT[i, j] != 0)
            di = jnp.where(simsiam, 0.0, (ri - hg * fw) / (1.0 + hg * (beta + gw)))
            S = jax.lax.optimization_barrier(jnp.stack([pi, wi, di]))  # stage values, computed once (docstring)
            pi, wi, di = S[0], S[1], S[2]
            fp, fw, gp, gw = _field_affine(pi, wi, par)
        kp, kw = fp + gp * di, fw + gw * di
        gi = jnp.where(simsiam, 0.0, -beta * di - kw)
        K = jax.lax.optimization_barrier(jnp.stack([kp, kw, gi]))  # stage derivatives, computed once
        if i == 0:
            fp0 = K[0]
        KP.append(K[0])
        KW.append(K[1])
        G.append(K[2])

    def comb(K, b):
        return h * sum(b[j] * K[j] for j in range(8) if b[j] != 0)

    E = B - B_HAT
    new = jax.lax.optimization_barrier(jnp.stack([p + comb(KP, B), w + comb(KW, B), d + comb(G, B)]))
    ep, ew, ed = comb(KP, E), comb(KW, E), comb(G, E)
    return (new[0], new[1], new[2]), (ep, ew, ew + ed), fp0


def _scaled_error(err, old, new, rtol, atol):
    """max over (p, w, w_a) of |err| / (atol + rtol max(|old|, |new|))."""
    e, a, b = jnp.stack(err), jnp.stack(old), jnp.stack(new)
    return jnp.max(jnp.abs(e) / (atol + rtol * jnp.maximum(jnp.abs(a), jnp.abs(b))), axis=0)


def _band(p, pp):
    """True where p is outside the 1% band around p+ (NaN counts as outside)."""
    return ~(jnp.abs(p - pp) - 0.01 * jnp.abs(pp) <= 0)


def _hermite_crossing(t0, h, p0, m0, p1, m1, target):
    """Time in [t0, t0 + h] where the cubic Hermite interpolant of p reaches ``target`` (Newton, clipped)."""
    den = p0 - p1
    th = jnp.clip(jnp.where(den != 0, (p0 - target) / jnp.where(den != 0, den, 1.0), 1.0), 0.0, 1.0)
    for _ in range(8):
        t2, t3 = th * th, th * th * th
        H = (2 * t3 - 3 * t2 + 1) * p0 + (t3 - 2 * t2 + th) * h * m0 + (-2 * t3 + 3 * t2) * p1 + (t3 - t2) * h * m1
        dH = (6 * t2 - 6 * th) * (p0 - p1) + (3 * t2 - 4 * th + 1) * h * m0 + (3 * t2 - 2 * th) * h * m1
        step = jnp.where(dH != 0, (H - target) / jnp.where(dH != 0, dH, 1.0), 0.0)
        th = jnp.clip(th - step, 0.0, 1.0)
    return t0 + th * h


@functools.partial(jax.jit, static_argnames=("slots", "max_steps"))
def solve_modes_points(params, p0, s0, t_max, rtol, atol, bound, collapse_threshold, *, slots=256,
                       max_steps=200_000):
    """Solve M independent per-mode points (arrays of shape (M,)) from (p0, w = w_a = sqrt(s0)) to t_max.

    ``params``: eta, eta_p, beta (inf = SimSiam), alpha_p, x, xp, each (M,). Returns (M,) arrays: the sweep's
    quantities (collapsed, converged, p_final, s_final, tau_final, p_plus, t_1pct, balance_residual, status
    0 ok / 1 diverged / 2 max_steps, steps = attempted steps) and the final w, w_a. t_1pct is 0 if p never
    leaves the 1% band of p+, NaN unless the point converged; balance_residual is NaN where eta_p != eta.
    """
    M = p0.shape[0]
    N = min(slots, M)
    # Start the slowest points first (fewer idle slots at the end): decreasing eta (near and beyond eta_c a
    # point needs the most steps), then decreasing beta. Points are independent, so only speed depends on it.
    order = jnp.lexsort((-jnp.where(jnp.isinf(params["beta"]), 0.0, params["beta"]), -params["eta"]))
    params = {k: v[order] for k, v in params.items()}
    p0, s0 = p0[order], s0[order]
    pp_all = p_plus(params["eta"], params["x"], params["xp"])
    # per point, read-only: the field's parameters, p+, c(0) and the residual's scale (rows of one array)
    fixed = jnp.stack([*(params[k] for k in _PARAMS), pp_all, p0 * p0 / params["alpha_p"] - s0,
                       jnp.maximum(p0 * p0 / params["alpha_p"] + s0, jnp.finfo(jnp.float64).tiny)])
    start = jnp.stack([jnp.zeros(M), p0, jnp.sqrt(s0), jnp.zeros(M), jnp.zeros(M)])  # t, p, w, d, bal
    bad_start = _band(p0, pp_all)

    # Slot state (few arrays, so a step updates it in few kernels): y = (t, p, w, d, bal, h) floats; k = (steps,
    # status, active, held = finished but not stored, bad, ever_bad) ints; cr = the last band entry's step
    # (t, h, p, dp, p1, w1, d1); fixed = the point's read-only values; idx = the point.
    STEPS, STATUS, ACTIVE, HELD, BAD, EVER_BAD = range(6)
    start = jnp.concatenate([start, jnp.full((1, M), jnp.minimum(0.01, t_max))])  # h0 = 0.01

    def store(out, c):
        """Write the results of the slots whose point has finished (and is not yet stored) to the outputs."""
        k = c["k"].astype(jnp.float64)
        rows = jnp.concatenate([c["y"][:5], c["cr"], k[jnp.array([BAD, EVER_BAD, STATUS, STEPS])]])
        return out.at[:, jnp.where(c["k"][HELD] != 0, c["idx"], M)].set(rows, mode="drop")

    def load(c, ptr):
        """Give every free slot the next point of the chunk (if any); returns (slots, new ptr)."""
        free = c["k"][ACTIVE] == 0
        new_idx = ptr + jnp.cumsum(free) - 1
        take = free & (new_idx < M)
        gi = jnp.where(take, new_idx, 0)
        k = c["k"]
        bad0 = bad_start[gi].astype(jnp.int32)
        new_k = jnp.stack([jnp.zeros_like(bad0), jnp.zeros_like(bad0), jnp.ones_like(bad0), jnp.zeros_like(bad0),
                           bad0, bad0])
        kept = k.at[HELD].set(k[HELD] * k[ACTIVE])  # stored points are no longer held
        n = {"idx": jnp.where(take, new_idx, c["idx"]), "k": jnp.where(take, new_k, kept),
             "fixed": jnp.where(take, fixed[:, gi], c["fixed"]), "y": jnp.where(take, start[:, gi], c["y"]),
             "cr": jnp.where(take, jnp.nan, c["cr"])}
        return n, jnp.minimum(ptr + jnp.sum(free), M)

    def step(c):
        fx = c["fixed"]
        par = dict(zip(_PARAMS, fx[:6]))
        pp, c0, sc = fx[6], fx[7], fx[8]
        k = c["k"]
        act = k[ACTIVE] != 0
        t, p, w, d, bal, h = c["y"]
        h = jnp.minimum(h, t_max - t)
        (pn, wn, dn), err, fp0 = _ark_step(p, w, d, h, par)
        e = _scaled_error(err, (p, w, w + d), (pn, wn, wn + dn), rtol, atol)
        acc = act & (e <= 1.0)
        # step-size factor 0.9 e^(-1/4) in [0.2, 10] (an I controller; e^(-1/4) by two square roots)
        fac = jnp.where(jnp.isfinite(e), jnp.clip(0.9 * jax.lax.rsqrt(jnp.sqrt(jnp.maximum(e, 1e-12))), 0.2, 10.0), 0.2)
        last = h >= t_max - t
        tn = jnp.where(last, t_max, t + h)
        # on-the-fly outputs: the last entry into the 1% band of p+, and the balance-law residual
        res = jnp.abs(pn * pn / par["alpha_p"] - wn * wn - jnp.exp(-2.0 * par["eta"] * tn) * c0) / sc
        y = jnp.stack([jnp.where(acc, tn, t), jnp.where(acc, pn, p), jnp.where(acc, wn, w), jnp.where(acc, dn, d),
                       jnp.where(acc, jnp.maximum(bal, res), bal), jnp.where(act, h * fac, c["y"][5])])
        bad = k[BAD] != 0
        bad_new = _band(pn, pp)
        cross = acc & bad & ~bad_new
        cr = jnp.where(cross, jnp.stack([t, h, p, fp0, pn, wn, dn]), c["cr"])
        # finished points: reached t_max, diverged, or out of steps
        steps = k[STEPS] + act
        yabs = jnp.maximum(jnp.maximum(jnp.abs(pn), jnp.abs(wn)), jnp.abs(wn + dn))
        diverged = acc & ~(yabs <= bound)
        out_of_steps = act & ~(acc & last) & ~diverged & (steps >= max_steps)
        fin = act & (diverged | out_of_steps | (acc & last))
        k = jnp.stack([steps, jnp.where(diverged, 1, jnp.where(out_of_steps, 2, k[STATUS])), act & ~fin,
                       (k[HELD] != 0) | fin, jnp.where(acc, bad_new, bad), (k[EVER_BAD] != 0) | (acc & bad_new)],
                      ).astype(jnp.int32)
        return {"idx": c["idx"], "fixed": fx, "y": y, "cr": cr, "k": k}

    # Outer loop: store finished points and refill free slots; inner loop: step until a batch of slots
    # (1/8) is free, or, once every point has started, until all are done.
    batch = max(1, N // 8)

    def inner_cond(c, ptr):
        n_active = jnp.sum(c["k"][ACTIVE])
        return jnp.where(ptr < M, N - n_active < batch, n_active > 0)

    def outer(carry):
        c, out, ptr = carry
        c = jax.lax.while_loop(lambda q: inner_cond(q, ptr), step, c)
        out = store(out, c)
        c, ptr = load(c, ptr)
        return c, out, ptr

    c = {"y": jnp.zeros((6, N)), "cr": jnp.zeros((7, N)), "k": jnp.zeros((6, N), jnp.int32),
         "fixed": jnp.ones((fixed.shape[0], N)), "idx": jnp.zeros(N, jnp.int32)}
    c, ptr = load(c, jnp.asarray(0, jnp.int32))
    out = jnp.full((len(_OUT), M), jnp.nan)
    c, out, ptr = jax.lax.while_loop(lambda q: jnp.any(q[0]["k"][ACTIVE] != 0), outer, (c, out, ptr))
    o = dict(zip(_OUT, out))
    # time to 1%: the last entry into the band, from the cubic Hermite interpolant of that step
    par1 = {k: params[k] for k in _PARAMS}
    fp1, _, gp1, _ = _field_affine(o["cr_p1"], o["cr_w1"], par1)
    m1 = fp1 + gp1 * o["cr_d1"]
    pp = pp_all
    target = pp + jnp.sign(o["cr_p0"] - pp) * 0.01 * jnp.abs(pp)
    t_cross = _hermite_crossing(o["cr_t"], o["cr_h"], o["cr_p0"], o["cr_dp0"], o["cr_p1"], m1, target)
    # the sweep's quantities (docs/theory_dynamics.md: collapse threshold, fixed point p+, balance law)
    status = o["status"].astype(jnp.int32)
    good = status == 0
    p, w, wa = o["p"], o["w"], o["w"] + o["d"]
    s = w * w
    collapsed = good & (s < collapse_threshold * jnp.maximum(1.0, s0))
    t1 = jnp.where(o["bad"] == 0, jnp.where(o["ever_bad"] != 0, t_cross, 0.0), jnp.nan)
    converged = good & ~collapsed & jnp.isfinite(t1)
    tau = jnp.where(jnp.isinf(params["beta"]), 1.0, wa / jnp.where(w == 0, 1.0, w))
    law = good & (params["eta_p"] == params["eta"])
    result = {
        "collapsed": collapsed, "converged": converged,
        "p_final": jnp.where(good, p, jnp.nan), "s_final": jnp.where(good, s, jnp.nan),
        "tau_final": jnp.where(good & ~collapsed & (w != 0), tau, jnp.nan), "p_plus": pp,
        "t_1pct": jnp.where(converged, t1, jnp.nan), "balance_residual": jnp.where(law, o["bal"], jnp.nan),
        "status": status.astype(jnp.int8), "steps": o["steps"].astype(jnp.int32), "w_final": w, "wa_final": wa,
    }
    back = jnp.argsort(order)  # to the caller's order
    return {k: v[back] for k, v in result.items()}
