"""Plots of a sweep, chosen by the number of swept axes (the figure goes to PNG atomically).

1 axis: line plots of collapsed, final p (with p+), final s, time to 1% of p+ and the balance residual.
2 axes: heatmaps of collapsed, final p and time to 1% with analytic overlays where they apply:
eta_c = 1/(4(1+sigma2)) on an eta axis (docs/theory_dynamics.md), and for (p0, s0) sweeps the exact eta = 0, tau = 1
basin boundary s0 = p0^2/alpha_p (p0 < 0) and s0 = (p0^2 - k^-2)/alpha_p (p0 > 1/k) (docs/theory_dynamics.md), or the
saddle (p-, s-) when eta > 0. 3+ axes: small multiples of the collapse map over the third axis (further
axes averaged: the panel then shows the collapse fraction).
"""
from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from linsim.dynamics.modes import fixed_points

from linsim.io import atomic_savefig

LABELS = {"eta": "η (weight decay)", "eta_p": "η_p", "beta": "β (EMA rate)", "alpha_p": "α_p",
          "sigma2": "σ²", "p0": "p₀", "s0": "s₀"}


def _axis(values: np.ndarray):
    """(coordinates to plot at, scale, tick labels or None): numeric for linear/geometric grids, else categorical."""
    v = np.asarray(values, float)
    if v.size >= 3 and np.all(np.isfinite(v)):
        d = np.diff(v)
        if np.allclose(d, d[0], rtol=1e-6, atol=1e-12 * max(1.0, np.abs(v).max())) and d[0] != 0:
            return v, "linear", None
        if np.all(v > 0):
            r = np.diff(np.log(v))
            if np.allclose(r, r[0], rtol=1e-6) and r[0] != 0:
                return v, "log", None
    labels = ["∞" if math.isinf(x) else f"{x:g}" for x in v]
    return np.arange(v.size, dtype=float), "cat", labels


def _to_coord(values: np.ndarray, x):
    """Map parameter values onto a categorical axis by interpolation (None if the axis is not monotone)."""
    v = np.asarray(values, float)
    if not np.all(np.isfinite(v)) or not (np.all(np.diff(v) > 0)):
        return None
    return np.interp(x, v, np.arange(v.size), left=np.nan, right=np.nan)


def _fixed(result, name, default=None, extra=None):
    f = dict(result.spec.fixed)
    f.update(extra or {})
    return f.get(name, default)


def _edges(c: np.ndarray, scale: str) -> np.ndarray:
    if c.size == 1:
        return np.array([c[0] - 0.5, c[0] + 0.5]) if scale != "log" else np.array([c[0] / 1.5, c[0] * 1.5])
    if scale == "log":
        lc = np.log(c)
        mid = (lc[1:] + lc[:-1]) / 2
        return np.exp(np.concatenate([[lc[0] - (mid[0] - lc[0])], mid, [lc[-1] + (lc[-1] - mid[-1])]]))
    mid = (c[1:] + c[:-1]) / 2
    return np.concatenate([[c[0] - (mid[0] - c[0])], mid, [c[-1] + (c[-1] - mid[-1])]])


def _setup(ax, which: str, name: str, values: np.ndarray):
    c, scale, labels = _axis(values)
    set_label = ax.set_xlabel if which == "x" else ax.set_ylabel
    set_label(LABELS.get(name, name))
    if scale == "log":
        (ax.set_xscale if which == "x" else ax.set_yscale)("log")
    if labels is not None:
        (ax.set_xticks if which == "x" else ax.set_yticks)(c)
        (ax.set_xticklabels if which == "x" else ax.set_yticklabels)(labels)
    return c, scale


def _heat(ax, fig, result, arr, dims, title, cmap, vmin=None, vmax=None, log=False, overlays=True, extra=None):
    import matplotlib.colors as mcolors

    (xn, xv), (yn, yv) = dims
    xc, xs = _setup(ax, "x", xn, xv)
    yc, ys = _setup(ax, "y", yn, yv)
    data = np.ma.masked_invalid(np.asarray(arr, float).T)
    norm = None
    if log and data.count() and np.nanmin(data) > 0:
        norm = mcolors.LogNorm(vmin=np.nanmin(data), vmax=np.nanmax(data))
        vmin = vmax = None
    m = ax.pcolormesh(_edges(xc, xs), _edges(yc, ys), data, cmap=cmap, vmin=vmin, vmax=vmax, norm=norm,
                      shading="flat")
    fig.colorbar(m, ax=ax)
    ax.set_title(title, fontsize=10)
    if overlays:
        _overlays(ax, result, (xn, xv, xs), (yn, yv, ys), extra)


def _overlays(ax, result, xinfo, yinfo, extra=None):
    """Analytic lines where they apply (fixed points and the eta = 0 basin, docs/theory_dynamics.md)."""
    (xn, xv, xs), (yn, yv, ys) = xinfo, yinfo

    def coord(name, values, scale, x):
        return np.asarray(x, float) if scale != "cat" else _to_coord(values, x)

    names = {xn, yn}
    if "eta" in names:
        other, ov, osc = (yn, yv, ys) if xn == "eta" else (xn, xv, xs)
        ev, esc = (xv, xs) if xn == "eta" else (yv, ys)
        if other == "sigma2":
            s2 = np.linspace(np.min(ov), np.max(ov), 200)
            e = coord("eta", ev, esc, 1 / (4 * (1 + s2)))
            o = coord(other, ov, osc, s2)
            if e is not None and o is not None:
                (ax.plot(e, o) if xn == "eta" else ax.plot(o, e))[0].set(color="tab:red", ls="--", lw=1.5, label="η_c")
        else:
            s2 = _fixed(result, "sigma2", 0.5, extra)
            ec = coord("eta", ev, esc, 1 / (4 * (1 + s2)))
            if ec is not None and np.isfinite(ec):
                (ax.axvline if xn == "eta" else ax.axhline)(float(ec), color="tab:red", ls="--", lw=1.5, label="η_c")
    if names == {"p0", "s0"}:
        eta, beta = _fixed(result, "eta", 0.04, extra), _fixed(result, "beta", math.inf, extra)
        a, s2 = _fixed(result, "alpha_p", 1.0, extra), _fixed(result, "sigma2", 0.5, extra)
        if None in (eta, a, s2):
            return
        eta_p = _fixed(result, "eta_p", None, extra)
        eta_p = eta if eta_p is None else eta_p
        pv = xv if xn == "p0" else yv
        k = 1 + s2
        fp = fixed_points(eta, a, s2, eta_p=eta_p)
        if eta == 0 and eta_p == 0 and beta is not None and math.isinf(beta):
            p = np.linspace(np.min(pv), np.max(pv), 400)
            s = np.where(p < 0, p**2 / a, np.where(p > 1 / k, (p**2 - k**-2) / a, np.nan))
            P = coord("p0", pv, xs if xn == "p0" else ys, p)
            S = coord("s0", yv if xn == "p0" else xv, ys if xn == "p0" else xs, s)
            if P is not None and S is not None:
                (ax.plot(P, S) if xn == "p0" else ax.plot(S, P))[0].set(color="tab:red", ls="--", lw=1.5,
                                                                         label="η=0 basin boundary")
        elif eta > 0 and fp.exists:
            P = coord("p0", pv, xs if xn == "p0" else ys, fp.p_minus)
            S = coord("s0", yv if xn == "p0" else xv, ys if xn == "p0" else xs, fp.s_minus)
            if P is not None and S is not None:
                xy = (P, S) if xn == "p0" else (S, P)
                ax.plot(*xy, marker="x", color="tab:red", ms=8, ls="none", label="saddle (p⁻, s⁻)")
    if ax.get_legend_handles_labels()[0]:
        ax.legend(loc="upper right", fontsize=7, framealpha=0.5)  # a fixed spot: "best" searches the heatmap (slow)


def _title(result) -> str:
    fx = ", ".join(f"{k}={'η' if v is None else ('∞' if math.isinf(v) else f'{v:g}')}" for k, v in result.spec.fixed)
    return f"linsim sweep ({result.spec.model} model, t = {result.spec.t_max:g}); fixed: {fx}"


def plot_sweep(result, path: str | Path) -> Path:
    """Draw the sweep (layout by the number of axes) and save it atomically as PNG; returns the path."""
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    d = result.data
    dims = [(n, result.coords[n]) for n in result.dims]
    nd = len(dims)
    if nd == 1:
        name, vals = dims[0]
        qs = [("collapsed", "collapsed"), ("p_final", "final p"), ("s_final", "final s"),
              ("t_1pct", "time to 1% of p⁺"), ("balance_residual", "balance residual")]
        fig, axes = plt.subplots(1, len(qs), figsize=(4 * len(qs), 3.4), constrained_layout=True)
        for ax, (q, lab) in zip(axes, qs):
            c, scale = _setup(ax, "x", name, vals)
            y = np.asarray(d[q], float)
            ax.plot(c, y, "o-", ms=3)
            if q == "p_final":
                ax.plot(c, d["p_plus"], "k--", lw=1, label="p⁺")
                ax.legend(loc="upper right", fontsize=7)
            if q in ("t_1pct", "balance_residual", "s_final") and np.any(np.asarray(y) > 0):
                ax.set_yscale("log")
            ax.set_title(lab, fontsize=10)
            if q == "collapsed":
                ax.set_ylim(-0.05, 1.05)
            if name == "eta":
                ec = 1 / (4 * (1 + _fixed(result, "sigma2", 0.5)))
                x = ec if scale != "cat" else _to_coord(vals, ec)
                if x is not None and np.isfinite(x):
                    ax.axvline(float(x), color="r", ls=":", lw=1)
    elif nd == 2:
        fig, axes = plt.subplots(1, 3, figsize=(16, 4.6), constrained_layout=True)
        _heat(axes[0], fig, result, d["collapsed"], dims, "collapsed (1 = s → 0)", "Greys", 0, 1)
        _heat(axes[1], fig, result, d["p_final"], dims, "final p", "viridis")
        _heat(axes[2], fig, result, d["t_1pct"], dims, "time to 1% of p⁺ (blank: never)", "magma", log=True)
    else:
        third_name, third_vals = dims[2]
        coll = np.asarray(d["collapsed"], float)
        if nd > 3:
            coll = coll.mean(axis=tuple(range(3, nd)))
        ncol = min(4, len(third_vals))
        nrow = -(-len(third_vals) // ncol)
        fig, axes = plt.subplots(nrow, ncol, figsize=(4.2 * ncol, 3.6 * nrow), constrained_layout=True,
                                 squeeze=False)
        lab = "collapsed" if nd == 3 else f"collapse fraction over {', '.join(n for n, _ in dims[3:])}"
        for i, v in enumerate(third_vals):
            ax = axes[i // ncol][i % ncol]
            vs = "∞" if math.isinf(v) else f"{v:g}"
            _heat(ax, fig, result, coll[:, :, i], dims[:2], f"{lab}, {third_name} = {vs}", "Greys", 0, 1,
                  overlays=nd == 3, extra={third_name: float(v)})
        for j in range(len(third_vals), nrow * ncol):
            axes[j // ncol][j % ncol].axis("off")
    fig.suptitle(_title(result), fontsize=10)
    path = Path(path)
    atomic_savefig(fig, path, dpi=110)
    plt.close(fig)
    return path
