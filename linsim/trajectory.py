"""Trajectory: saved times and states of one run, the derived per-mode series, a summary, save/load."""
from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from linsim.config import Config
from linsim.io import atomic_savez, atomic_write_json
from linsim.theory import invariants as inv


def _first_bad(states: dict[str, np.ndarray], bound: float) -> int | None:
    """Index of the first saved time whose state is non-finite or exceeds ``bound`` (None if none)."""
    bad = None
    for v in states.values():
        flat = v.reshape(v.shape[0], -1)
        rows = ~np.all(np.isfinite(flat), axis=1) | np.any(np.abs(np.nan_to_num(flat, nan=np.inf)) > bound, axis=1)
        idx = np.flatnonzero(rows)
        if idx.size:
            bad = int(idx[0]) if bad is None else min(bad, int(idx[0]))
    return bad


def _settle_time(ts: np.ndarray, x: np.ndarray, tol: np.ndarray) -> np.ndarray:
    """Per column, the first saved time after which |x(t) - x(T)| <= tol stays true (NaN if never)."""
    ok = np.abs(x - x[-1]) <= tol
    out = np.full(x.shape[1], np.nan)
    for j in range(x.shape[1]):
        bad = np.flatnonzero(~ok[:, j])
        k = 0 if bad.size == 0 else bad[-1] + 1
        if k < len(ts):
            out[j] = ts[k]
    return out


SETTLE_WINDOW = 0.1  # a settled mode held its final values over at least this fraction of the run


def _matrix_series(W, Wp, Wa, X, block: int = 4):
    """Per-saved-state mode view and alignment diagnostics of the matrix model (docs/theory_dynamics.md),
    ``block`` saved states at a time so the temporaries (F, eigenvectors) stay small. Wp's own (complex)
    eigenvalues: where Wp is exactly symmetric they are sym(Wp)'s, already computed; the general eigensolver
    runs only on the other states. Returns (s, p, tau, extras)."""
    parts = []
    for i in range(0, W.shape[0], block):
        w, wp, wa = W[i:i + block], Wp[i:i + block], Wa[i:i + block]
        s, p, tau, wp_eig, F, align = inv.matrix_modes(w, wp, wa, X)
        asym = inv.asymmetry(wp)
        lam = wp_eig.astype(complex)
        gen = ~(asym == 0)
        if np.any(gen):
            lg = np.linalg.eigvals(np.nan_to_num(np.asarray(wp[gen], dtype=float)))
            lam[gen] = np.take_along_axis(lg, np.argsort(-lg.real, axis=-1, kind="stable"), axis=-1)
        parts.append((s, p, tau, {"wp_eig": wp_eig, "wp_eig_real": lam.real, "wp_eig_imag": lam.imag,
                                  "asymmetry": asym, "commutator": inv.commutator_norm(F, wp), "alignment": align}))
    cat = lambda xs: np.concatenate(xs, axis=0)  # noqa: E731
    extras = {k: cat([q[3][k] for q in parts]) for k in parts[0][3]}
    return cat([q[0] for q in parts]), cat([q[1] for q in parts]), cat([q[2] for q in parts]), extras


@dataclass
class Trajectory:
    """States at saved times plus derived per-mode series p, s, tau (shape (T, m), modes sorted as saved).

    The meaning of s differs between the two models. Matrix model: the modes are the eigenvectors u_j of
    F = W X W^T (descending s_j) with s_j the eigenvalues of F, p_j = u_j^T Wp u_j and
    tau_j = u_j^T Wa X W^T u_j / s_j. Per-mode model: s_j = w_j^2, the squared amplitude of mode j, which is
    the eigenvalue of W W^T; the matching eigenvalue of F is x_j w_j^2. The two agree for X = I (the
    isotropic case, where the fixed points p+, s+ are quoted), and differ by the factor x_j otherwise
    (docs/theory_dynamics.md). ``extras`` (matrix model) holds the eigenvalues of sym(Wp) (``wp_eig``,
    descending), the eigenvalues of Wp itself (``wp_eig_real`` / ``wp_eig_imag``, complex in general because
    Wp need not be symmetric; ordered by descending real part), the asymmetry of Wp, the commutator [F, Wp]
    and the eigenvector alignment.

    A mode is *settled* if it did not collapse and both p_j (within 1% of its final value, at least 1e-5)
    and s_j (within 1% of its final value) stayed put over at least the last ``SETTLE_WINDOW`` = 10% of the
    run; a mode still moving at t_max is not settled.
    """

    config: Config
    ts: np.ndarray
    states: dict[str, np.ndarray]
    p: np.ndarray
    s: np.ndarray
    tau: np.ndarray
    balance: np.ndarray | None
    extras: dict[str, np.ndarray] = field(default_factory=dict)
    status: str = "ok"
    t_end: float = math.nan
    steps: int = 0
    diverged_modes: np.ndarray | None = None

    @classmethod
    def from_states(cls, cfg: Config, ts, states, status: str = "ok", t_end: float | None = None, steps: int = 0,
                    y_end: dict[str, np.ndarray] | None = None):
        """Build from saved states; ``y_end`` is the state where the solver stopped (used to tell which
        modes blew up when a per-mode run diverged)."""
        ts = np.asarray(ts, dtype=float)
        bound = cfg.solver.divergence_bound
        bad = _first_bad(states, bound)
        if status == "max_steps":  # saves past the stop are unset (inf) placeholders, not a blow-up
            keep = len(ts) if bad is None else max(bad, 1)
            ts, states = ts[:keep], {k: v[:keep] for k, v in states.items()}
            if t_end is None or not np.isfinite(t_end):
                t_end = float(ts[-1])  # the last time the solver is known to have reached
            bad = None
        if bad is not None:  # keep the finite prefix; the run diverged after its last kept time
            status = "diverged"
            if t_end is None or not np.isfinite(t_end):
                t_end = float(ts[bad])
            if y_end is None:
                y_end = {k: v[bad] for k, v in states.items()}
            keep = max(bad, 1)
            ts = ts[:keep]
            states = {k: v[:keep] for k, v in states.items()}
        diverged_modes = None
        if status == "diverged" and cfg.model == "modes" and y_end is not None:
            diverged_modes = np.zeros(np.shape(y_end["p"]), dtype=bool)
            for v in y_end.values():
                diverged_modes |= ~np.isfinite(v) | (np.abs(np.nan_to_num(v, nan=np.inf)) > bound)
        t_end = float(ts[-1]) if t_end is None else float(t_end)
        h = cfg.hyper
        law_holds = h.predictor == "grad" and h.stop_grad and h.eta_p_value == h.eta
        extras: dict[str, np.ndarray] = {}
        if cfg.model == "modes":
            p, w, wa = states["p"], states["w"], states["wa"]
            s = w**2
            wa_eff = w if h.simsiam else wa
            with np.errstate(divide="ignore", invalid="ignore"):
                tau = np.where(w != 0, wa_eff / np.where(w != 0, w, 1.0), np.nan)
            balance = inv.balance_residual_modes(ts, p, s, h.alpha_p, h.eta) if law_holds else None
        else:
            W, Wp, Wa = states["W"], states["Wp"], states["Wa"]
            if h.simsiam:
                Wa = W
            X = cfg.stats.x if cfg.stats.is_diagonal else cfg.stats.X  # diagonal X: column scalings
            s, p, tau, extras = _matrix_series(W, Wp, Wa, X)
            balance = inv.balance_residual_matrix(ts, W, Wp, h.alpha_p, h.eta) if law_holds else None
        return cls(cfg, ts, states, p, s, tau, balance, extras, status, t_end, steps, diverged_modes)

    # ------------------------------------------------------------------ per-mode results

    @property
    def collapse_floor(self) -> np.ndarray:
        """The s below which a mode counts as collapsed: threshold * max(1, s(0)) (docs/theory_dynamics.md, numerical method)."""
        thr = self.config.solver.collapse_threshold
        s0 = self.s[0] if self.config.model == "modes" else np.full(self.s.shape[1], self.s[0].max())
        return thr * np.maximum(1.0, s0)

    @property
    def collapsed(self) -> np.ndarray:
        return self.s[-1] < self.collapse_floor

    @property
    def collapse_time(self) -> np.ndarray:
        """First saved time after which s stays below the collapse floor (NaN for surviving modes)."""
        below = self.s < self.collapse_floor
        out = np.full(self.s.shape[1], np.nan)
        for j in np.flatnonzero(below[-1]):
            above = np.flatnonzero(~below[:, j])
            out[j] = self.ts[0 if above.size == 0 else above[-1] + 1]
        return out

    @property
    def settle_time(self) -> np.ndarray:
        """First saved time after which p and s stay within 1% of their final values (collapse time if
        collapsed)."""
        tol_p = 0.01 * np.maximum(np.abs(self.p[-1]), 1e-3)
        with np.errstate(invalid="ignore"):
            t = np.fmax(_settle_time(self.ts, self.p, tol_p), _settle_time(self.ts, self.s, 0.01 * np.abs(self.s[-1])))
        return np.where(self.collapsed, self.collapse_time, t)

    @property
    def settled(self) -> np.ndarray:
        """Per mode: not collapsed, and p and s stayed within 1% of their final values over at least the last
        ``SETTLE_WINDOW`` of the run (a mode still moving at t_max is not settled)."""
        t0, t1 = float(self.ts[0]), float(self.ts[-1])
        t = self.settle_time
        with np.errstate(invalid="ignore"):
            return ~self.collapsed & np.isfinite(t) & (t <= t1 - SETTLE_WINDOW * (t1 - t0))

    def summary(self) -> dict[str, Any]:
        """Final per-mode values sorted by s (descending), invariants and status; JSON-ready."""
        order = np.argsort(-self.s[-1], kind="stable")
        coll, tcoll, tset, settled = self.collapsed, self.collapse_time, self.settle_time, self.settled
        div = self.diverged_modes
        if div is None:  # matrix model (or a run that did not diverge): divergence is global
            div = np.full(self.s.shape[1], self.status == "diverged")
        modes = []
        for j in order:
            tau = float(self.tau[-1, j])
            modes.append(
                {
                    "diverged": bool(div[j]),
                    "divergence_time": self.t_end if div[j] else None,
                    "p": float(self.p[-1, j]),
                    "s": float(self.s[-1, j]),
                    "tau": None if (coll[j] or not np.isfinite(tau)) else tau,
                    "collapsed": bool(coll[j]),
                    "collapse_time": None if np.isnan(tcoll[j]) else float(tcoll[j]),
                    "settled": bool(settled[j]) and not bool(div[j]),
                    "settle_time": float(tset[j]) if settled[j] and not div[j] else None,
                }
            )
        invariants: dict[str, Any] = {
            "balance_residual": None if self.balance is None else float(np.max(self.balance)),
        }
        if self.balance is None:
            invariants["balance_note"] = "the weight-decay balance law holds only for the gradient predictor with stop-gradient and eta_p = eta"
        for key in ("asymmetry", "commutator"):
            if key in self.extras:
                invariants[f"{key}_final"] = float(self.extras[key][-1])
        out_extra: dict[str, Any] = {}
        if "wp_eig" in self.extras:  # the predictor's spectrum at the end: sym(Wp) and Wp itself (complex)
            out_extra["wp_eigenvalues"] = {
                "symmetric_part": [float(v) for v in self.extras["wp_eig"][-1]],
                "real": [float(v) for v in self.extras["wp_eig_real"][-1]] if "wp_eig_real" in self.extras else None,
                "imag": [float(v) for v in self.extras["wp_eig_imag"][-1]] if "wp_eig_imag" in self.extras else None,
            }
        return {
            "status": self.status,
            "diverged": self.status == "diverged",
            "t_end": self.t_end,
            "steps": self.steps,
            "n_modes": int(self.s.shape[1]),
            "n_collapsed": int(coll.sum()),
            "n_diverged": int(div.sum()),
            "modes": modes,
            "invariants": invariants,
            **out_extra,
        }

    # ------------------------------------------------------------------ files

    def arrays(self) -> dict[str, np.ndarray]:
        out = {"ts": self.ts, "p": self.p, "s": self.s, "tau": self.tau}
        out.update({f"state_{k}": v for k, v in self.states.items()})
        out.update({f"extra_{k}": v for k, v in self.extras.items()})
        if self.balance is not None:
            out["balance_residual"] = self.balance
        if self.diverged_modes is not None:
            out["diverged_modes"] = self.diverged_modes
        return out

    def save(self, folder: str | Path) -> None:
        """Write trajectory.npz, config.json and summary.json into ``folder`` (each file atomically)."""
        folder = Path(folder)
        atomic_savez(folder / "trajectory.npz", **self.arrays())
        atomic_write_json(folder / "config.json", self.config.to_json())
        atomic_write_json(folder / "summary.json", {"config": self.config.to_json(), **self.summary()})

    @classmethod
    def load(cls, folder: str | Path) -> "Trajectory":
        folder = Path(folder)
        cfg = Config.from_json(json.loads((folder / "config.json").read_text()))
        summ = json.loads((folder / "summary.json").read_text())
        with np.load(folder / "trajectory.npz") as z:
            states = {k[len("state_"):]: z[k] for k in z.files if k.startswith("state_")}
            extras = {k[len("extra_"):]: z[k] for k in z.files if k.startswith("extra_")}
            bal = z["balance_residual"] if "balance_residual" in z.files else None
            div = z["diverged_modes"] if "diverged_modes" in z.files else None
            return cls(cfg, z["ts"], states, z["p"], z["s"], z["tau"], bal, extras,
                       summ["status"], float(summ["t_end"]), int(summ["steps"]), div)
