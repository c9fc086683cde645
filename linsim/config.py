"""Frozen, validated configuration dataclasses: Hyper, Stats, Init, Solver and the Config that holds them.

Every constructor validates its input and raises :class:`linsim.errors.LinsimError` with one message per
mistake, so the CLI can print it on one line and exit with code 2.
"""
from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from linsim.errors import LinsimError

PREDICTORS = ("grad", "symmetric", "identity", "directpred", "directcopy")
MODELS = ("modes", "matrix")
SOLVERS = ("tsit5", "dopri5", "dopri8", "kvaerno5", "euler")


def _finite(name: str, value: float) -> float:
    try:
        value = float(value)
    except (TypeError, ValueError):
        raise LinsimError(f"{name} must be a number, got {value!r}") from None
    if math.isnan(value):
        raise LinsimError(f"{name} must be a number, got NaN")
    return value


@dataclass(frozen=True)
class Hyper:
    """Hyperparameters of the two-layer linear BYOL/SimSiam model (Tian, Chen & Ganguli, ICML 2021, Lemma 1;
    docs/theory_dynamics.md).

    eta: weight decay of W; eta_p: weight decay of Wp (None means eta); beta: EMA rate relative to the
    learning rate (inf means SimSiam, Wa = W); alpha_p: relative predictor learning rate; stop_grad: keep
    the stop-gradient on the target branch; predictor: 'grad' (Lemma 1), 'symmetric' (projected gradient),
    'identity' (no predictor, Wp = I), 'directpred' or 'directcopy' (closed-form predictors).
    """

    eta: float = 0.04
    eta_p: float | None = None
    beta: float = 0.5
    alpha_p: float = 1.0
    stop_grad: bool = True
    predictor: str = "grad"

    def __post_init__(self) -> None:
        eta = _finite("eta", self.eta)
        if eta < 0:
            raise LinsimError(f"eta (weight decay) must be >= 0, got {eta:g}")
        if self.eta_p is not None:
            eta_p = _finite("eta_p", self.eta_p)
            if not (eta_p >= 0 and math.isfinite(eta_p)):
                raise LinsimError(f"eta_p (predictor weight decay) must be finite and >= 0, got {eta_p:g}")
        beta = _finite("beta", self.beta)
        if not beta > 0:
            raise LinsimError(f"beta (EMA rate) must be > 0 (use inf for SimSiam), got {beta:g}")
        alpha_p = _finite("alpha_p", self.alpha_p)
        if not (alpha_p > 0 and math.isfinite(alpha_p)):
            raise LinsimError(f"alpha_p (relative predictor learning rate) must be finite and > 0, got {alpha_p:g}")
        if not math.isfinite(eta):
            raise LinsimError("eta must be finite")
        if self.predictor not in PREDICTORS:
            raise LinsimError(f"unknown predictor {self.predictor!r}; choose one of {', '.join(PREDICTORS)}")
        if not self.stop_grad and not math.isinf(beta):
            raise LinsimError("removing the stop-gradient is defined for the target Wa = W (Tian et al. 2021, Theorem 2): use beta = inf")

    @property
    def eta_p_value(self) -> float:
        """The predictor weight decay actually used (eta_p, or eta when unset)."""
        return float(self.eta if self.eta_p is None else self.eta_p)

    @property
    def simsiam(self) -> bool:
        return math.isinf(self.beta)


def _real_array(name: str, m: Any) -> np.ndarray:
    """``m`` as a float array, or a LinsimError saying why it is not one (text, complex, ragged)."""
    if np.iscomplexobj(m):
        raise LinsimError(f"{name} must be real, got complex values")
    try:
        return np.asarray(m, dtype=float)
    except (TypeError, ValueError):
        raise LinsimError(f"{name} must hold real numbers, got {np.asarray(m).dtype} data") from None


def _as_psd(name: str, m: Any, n: int | None = None) -> np.ndarray:
    a = _real_array(name, m)
    if a.ndim != 2 or a.shape[0] != a.shape[1] or a.shape[0] < 1:
        raise LinsimError(f"{name} must be a non-empty square matrix, got shape {a.shape}")
    if n is not None and a.shape[0] != n:
        raise LinsimError(f"{name} must be {n}x{n}, got {a.shape[0]}x{a.shape[1]}")
    if not np.all(np.isfinite(a)):
        raise LinsimError(f"{name} contains NaN or inf")
    scale = max(1.0, float(np.max(np.abs(a))))
    if np.max(np.abs(a - a.T)) > 1e-10 * scale:
        raise LinsimError(f"{name} must be symmetric (max |A - A^T| = {np.max(np.abs(a - a.T)):.3g})")
    lam = np.linalg.eigvalsh((a + a.T) / 2)
    if lam[0] < -1e-10 * scale:
        raise LinsimError(f"{name} must be positive semi-definite (smallest eigenvalue {lam[0]:.3g})")
    return (a + a.T) / 2


class Stats:
    """Data and augmentation second moments X = E[xbar xbar^T] and X' = E[Var(x'|x)] (Tian, Chen & Ganguli,
    ICML 2021; docs/theory_dynamics.md, the model).

    Build with :meth:`isotropic` (X = I, X' = sigma2 I), :meth:`diagonal` (commuting spectra),
    :meth:`matrices` (explicit PSD matrices) or :meth:`from_views` (estimated from paired views).
    ``x`` and ``xp`` hold the diagonal spectra. Isotropic and diagonal statistics are stored as their
    diagonals only: the per-mode model never builds an n x n matrix (its cost is linear in n); ``X`` and
    ``Xp`` are built on first use (by the matrix model). Immutable.
    """

    def __init__(self, X: Any, Xp: Any, kind: str = "isotropic") -> None:
        X = _as_psd("X", X)
        Xp = _as_psd("X'", Xp, X.shape[0])
        self._set(kind=kind, _X=X, _Xp=Xp, _x=None, _xp=None)

    def _set(self, **kw: Any) -> None:
        for k, v in kw.items():
            object.__setattr__(self, k, v)

    def __setattr__(self, name: str, value: Any) -> None:
        raise dataclasses.FrozenInstanceError(f"cannot assign to field {name!r}")

    def __reduce__(self):
        return (_stats_from_state, (self.kind, self._X, self._Xp, self._x, self._xp))

    def __repr__(self) -> str:
        return f"Stats(kind={self.kind!r}, n={self.n})"

    @classmethod
    def _from_diagonals(cls, x: np.ndarray, xp: np.ndarray, kind: str) -> "Stats":
        obj = cls.__new__(cls)
        obj._set(kind=kind, _X=None, _Xp=None, _x=x, _xp=xp)
        return obj

    @classmethod
    def isotropic(cls, n: int, sigma2: float = 0.5) -> "Stats":
        sigma2 = _finite("sigma2", sigma2)
        if not (sigma2 >= 0 and math.isfinite(sigma2)):
            raise LinsimError(f"sigma2 (augmentation variance) must be finite and >= 0, got {sigma2:g}")
        n = _dim("n", n)
        return cls._from_diagonals(np.ones(n), np.full(n, sigma2), "isotropic")

    @classmethod
    def diagonal(cls, x: Any, xp: Any) -> "Stats":
        x = np.atleast_1d(_real_array("data spectrum x", x))
        xp = np.atleast_1d(_real_array("augmentation spectrum xp", xp))
        if x.ndim != 1 or xp.shape != x.shape or x.size < 1:
            raise LinsimError(f"data and augmentation spectra must be non-empty, 1-D and of equal length, got {x.shape} and {xp.shape}")
        if np.any(~np.isfinite(x)) or np.any(~np.isfinite(xp)):
            raise LinsimError("spectra contain NaN or inf")
        if np.any(x < 0) or np.any(xp < 0):
            raise LinsimError("data and augmentation variances must be >= 0 (X, X' must be PSD)")
        return cls._from_diagonals(x.copy(), xp.copy(), "diagonal")

    @classmethod
    def matrices(cls, X: Any, Xp: Any) -> "Stats":
        return cls(_real_array("X", X), _real_array("X'", Xp), "matrix")

    @classmethod
    def from_views(cls, x1: Any, x2: Any) -> "Stats":
        """Estimate X = sym E[x1 x2^T] and X' = (E[x1 x1^T] + E[x2 x2^T])/2 - X from paired views (N x n)."""
        x1 = _real_array("views x1", x1)
        x2 = _real_array("views x2", x2)
        if x1.ndim != 2 or x1.shape != x2.shape or x1.shape[0] < 2 or x1.shape[1] < 1:
            raise LinsimError(f"paired views must be two N x n arrays of equal shape with N >= 2, n >= 1, got {x1.shape} and {x2.shape}")
        if not (np.all(np.isfinite(x1)) and np.all(np.isfinite(x2))):
            raise LinsimError("views contain NaN or inf")
        N = x1.shape[0]
        cross = x1.T @ x2 / N
        X = (cross + cross.T) / 2
        Xp = (x1.T @ x1 + x2.T @ x2) / (2 * N) - X
        # Sampling noise can leave tiny negative eigenvalues: clip them to the PSD cone.
        X, Xp = _clip_psd(X), _clip_psd(Xp)
        return cls(X, Xp, "samples")

    @property
    def X(self) -> np.ndarray:
        """The n x n data moment (built on first use for diagonal statistics)."""
        if self._X is None:
            object.__setattr__(self, "_X", np.diag(self._x))
        return self._X

    @property
    def Xp(self) -> np.ndarray:
        """The n x n augmentation moment (built on first use for diagonal statistics)."""
        if self._Xp is None:
            object.__setattr__(self, "_Xp", np.diag(self._xp))
        return self._Xp

    @property
    def n(self) -> int:
        return int(self._x.shape[0] if self._x is not None else self._X.shape[0])

    @property
    def is_diagonal(self) -> bool:
        if self._x is not None:
            return True
        off = lambda a: np.max(np.abs(a - np.diag(np.diag(a)))) if a.size > 1 else 0.0  # noqa: E731
        return bool(off(self._X) == 0 and off(self._Xp) == 0)

    @property
    def x(self) -> np.ndarray:
        return (self._x if self._x is not None else np.diag(self._X)).copy()

    @property
    def xp(self) -> np.ndarray:
        return (self._xp if self._xp is not None else np.diag(self._Xp)).copy()

    def to_json(self) -> dict:
        if self.kind == "isotropic":
            return {"kind": "isotropic", "n": self.n, "sigma2": float(self.xp[0])}
        if self.is_diagonal:
            return {"kind": "diagonal", "x": self.x, "xp": self.xp}
        return {"kind": self.kind, "X": self.X, "Xp": self.Xp}

    @classmethod
    def from_json(cls, d: dict) -> "Stats":
        if d["kind"] == "isotropic":
            return cls.isotropic(d["n"], d["sigma2"])
        if d["kind"] == "diagonal":
            return cls.diagonal(d["x"], d["xp"])
        return cls(np.asarray(d["X"]), np.asarray(d["Xp"]), d["kind"])


def _stats_from_state(kind, X, Xp, x, xp) -> Stats:
    """Unpickle a Stats (no re-validation: it was validated when built)."""
    obj = Stats.__new__(Stats)
    obj._set(kind=kind, _X=X, _Xp=Xp, _x=x, _xp=xp)
    return obj


def _clip_psd(a: np.ndarray) -> np.ndarray:
    lam, U = np.linalg.eigh((a + a.T) / 2)
    return (U * np.clip(lam, 0, None)) @ U.T


def _dim(name: str, v: Any) -> int:
    try:
        iv = int(v)
    except (TypeError, ValueError):
        raise LinsimError(f"{name} must be a positive integer, got {v!r}") from None
    if iv != v or iv < 1:
        raise LinsimError(f"{name} must be a positive integer, got {v!r}")
    return iv


@dataclass(frozen=True)
class Init:
    """Initialisation: scale, seed, balanced predictor (Wp^T Wp = alpha_p W W^T, docs/theory_dynamics.md) and target.

    Matrix model: W ~ N(0, scale^2/n), Wp ~ N(0, scale^2/n1) (or the balanced choice); modes model:
    p_j ~ N(0, scale^2), w_j = scale |N(0, 1)| (or p_j = sqrt(alpha_p) w_j when balanced).
    ``target``: 'copy' sets Wa(0) = W(0); 'independent' draws it like W (the official code's quirk).
    """

    scale: float = 0.5
    seed: int = 0
    balanced: bool = False
    target: str = "copy"

    def __post_init__(self) -> None:
        scale = _finite("init scale", self.scale)
        if not scale > 0 or not math.isfinite(scale):
            raise LinsimError(f"init scale must be finite and > 0, got {scale:g}")
        if self.target not in ("copy", "independent"):
            raise LinsimError(f"init target must be 'copy' or 'independent', got {self.target!r}")
        if int(self.seed) != self.seed or self.seed < 0:
            raise LinsimError(f"seed must be a non-negative integer, got {self.seed!r}")


@dataclass(frozen=True)
class Solver:
    """Solver settings: adaptive diffrax solver (float64, PID control) or fixed-step Euler = SGD steps.

    ``dt`` is the Euler step (the SGD learning rate alpha) and the initial step of adaptive solvers.
    ``collapse_threshold``: a mode whose s = w^2 falls below threshold * max(1, s(0)) counts as collapsed.
    ``divergence_bound``: a state entry above this magnitude (or non-finite) stops the run as diverged.
    """

    t_max: float = 300.0
    n_save: int = 301
    method: str = "tsit5"
    rtol: float = 1e-9
    atol: float = 1e-12
    dt: float = 0.01
    max_steps: int = 1_000_000
    collapse_threshold: float = 1e-6
    divergence_bound: float = 1e6

    def __post_init__(self) -> None:
        t_max = _finite("t_max", self.t_max)
        if not (t_max > 0 and math.isfinite(t_max)):
            raise LinsimError(f"t_max must be finite and > 0, got {t_max:g}")
        _dim("n_save", self.n_save)
        if self.n_save < 2:
            raise LinsimError("n_save must be >= 2")
        if self.method not in SOLVERS:
            raise LinsimError(f"unknown solver {self.method!r}; choose one of {', '.join(SOLVERS)}")
        for name in ("rtol", "atol", "dt", "collapse_threshold", "divergence_bound"):
            v = _finite(name, getattr(self, name))
            if not (v > 0 and math.isfinite(v)):
                raise LinsimError(f"{name} must be finite and > 0, got {v:g}")
        if self.rtol > 1e-2:
            raise LinsimError(f"rtol must be <= 1e-2 (the theory's invariants need accurate solves), got {self.rtol:g}")
        if self.method == "euler" and self.dt > t_max:
            raise LinsimError(f"Euler step dt={self.dt:g} is larger than t_max={t_max:g}")


# ---------------------------------------------------------------- predictor rules and stochastic dynamics

DIRECTPRED_FORMS = ("code", "theory")
DIRECTCOPY_NORMS = ("fro", "spectral")
NOISE_KINDS = ("none", "sgd", "sde")
SAMPLERS = ("auto", "moments", "samples")


@dataclass(frozen=True)
class Predictor:
    """Parameters of the closed-form predictor rules DirectPred / DirectCopy (docs/predictors_and_noise.md).

    rho: EMA rate of the correlation estimate, F_hat <- rho F_hat + (1 - rho) d (code ``dyn_lambda``);
    eps: added to the eigenvalues (DirectPred, ``dyn_eps``) or to the diagonal (DirectCopy);
    freq: Wp is reset every ``freq`` SGD steps (gradient-trained in between; code ``predictor_freq``);
    form: which form of the rule. DirectPred: 'theory' p_j = sqrt(alpha_p s_j) + eps (reproduces the gradient
    predictor's p+- in the toy) or 'code' p_j = max(sqrt(max(s_j, 0)/s_max) + eps, 1e-4) (``boost_scale`` of the
    official code of Tian, Chen & Ganguli, ICML 2021, Eq. 18). DirectCopy: 'theory' Wp = F_hat + eps I (per-mode
    fixed point p = p+-, f = p - eps; ``linsim.dynamics.predictors.directcopy_fixed_points``) or 'code'
    Wp = F_hat/||F_hat|| + eps I (Wang, Chen, Du & Tian, arXiv 2110.04947, 2021), which in the un-normalised
    toy lets s grow without bound. norm: the 'code' DirectCopy's ||F_hat||, 'fro' or 'spectral'. Defaults:
    the official DirectPred command (rho = 0.3, eps = 0.01, freq = 1) and the 'theory' forms, which converge
    in the toy (docs/predictors_and_noise.md).
    """

    rho: float = 0.3
    eps: float = 0.01
    freq: int = 1
    form: str = "theory"
    norm: str = "fro"

    def __post_init__(self) -> None:
        rho = _finite("rho", self.rho)
        if not 0 <= rho < 1:
            raise LinsimError(f"rho (EMA rate of the correlation estimate) must be in [0, 1), got {rho:g}")
        eps = _finite("eps", self.eps)
        if not (eps >= 0 and math.isfinite(eps)):
            raise LinsimError(f"eps must be finite and >= 0, got {eps:g}")
        _dim("freq", self.freq)
        if self.form not in DIRECTPRED_FORMS:
            raise LinsimError(f"unknown DirectPred form {self.form!r}; choose one of {', '.join(DIRECTPRED_FORMS)}")
        if self.norm not in DIRECTCOPY_NORMS:
            raise LinsimError(f"unknown DirectCopy norm {self.norm!r}; choose one of {', '.join(DIRECTCOPY_NORMS)}")


@dataclass(frozen=True)
class Noise:
    """Stochastic dynamics (docs/predictors_and_noise.md): 'none' (ODE / full-batch Euler), 'sgd' (finite-batch SGD
    on sampled Gaussian data and views, step alpha = ``Solver.dt``) or 'sde' (drift = ODE, diffusion = the
    minibatch gradient covariance at batch B and step alpha).

    batch: minibatch size B; seeds: ensemble size K (noise seeds derived from ``Init.seed``; the initial
    state is shared); momentum: heavy-ball SGD momentum mu (torch convention, on gradient + weight decay;
    'sgd', or 'none' with the euler solver = full-batch SGD with momentum); normalized: BYOL's
    l2-normalised loss 2 - 2 cos(y, z) instead of the un-normalised one ('sgd' only); symmetric: average the
    loss over both view orders; sde_dt: Euler-Maruyama step of the SDE (None = alpha); sampler: how 'sgd'
    draws a batch: 'samples' (B pairs of views), 'moments' (their exact second moment, a Wishart draw: the
    un-normalised loss only, B >= 2n) or 'auto' (moments where exact and cheaper).
    """

    kind: str = "none"
    batch: int = 256
    seeds: int = 1
    momentum: float = 0.0
    normalized: bool = False
    symmetric: bool = False
    sde_dt: float | None = None
    sampler: str = "auto"

    def __post_init__(self) -> None:
        if self.sampler not in SAMPLERS:
            raise LinsimError(f"unknown sampler {self.sampler!r}; choose one of {', '.join(SAMPLERS)}")
        if self.kind not in NOISE_KINDS:
            raise LinsimError(f"unknown noise {self.kind!r}; choose one of {', '.join(NOISE_KINDS)}")
        _dim("batch", self.batch)
        _dim("seeds", self.seeds)
        mu = _finite("momentum", self.momentum)
        if not 0 <= mu < 1:
            raise LinsimError(f"momentum must be in [0, 1), got {mu:g}")
        if self.sde_dt is not None:
            h = _finite("sde_dt", self.sde_dt)
            if not (h > 0 and math.isfinite(h)):
                raise LinsimError(f"sde_dt must be finite and > 0, got {h:g}")
        if self.sampler != "auto" and self.kind != "sgd":
            raise LinsimError(f"sampler {self.sampler!r} applies to --noise sgd only (this run has noise {self.kind!r})")
        if self.kind == "sde" and (self.momentum or self.normalized):
            raise LinsimError("the SDE models plain SGD on the un-normalised loss: momentum and normalized need --noise sgd")


@dataclass(frozen=True)
class Config:
    """Everything a run needs: model kind ('modes' or 'matrix'), n1 (matrix output dim) and the four parts."""

    model: str = "modes"
    n1: int | None = None
    hyper: Hyper = field(default_factory=Hyper)
    stats: Stats = field(default_factory=lambda: Stats.isotropic(8, 0.5))
    init: Init = field(default_factory=Init)
    solver: Solver = field(default_factory=Solver)
    predictor: Predictor = field(default_factory=Predictor)  # DirectPred/DirectCopy parameters
    noise: Noise = field(default_factory=Noise)  # finite-batch SGD / SDE

    def __post_init__(self) -> None:
        if self.model not in MODELS:
            raise LinsimError(f"unknown model {self.model!r}; choose one of {', '.join(MODELS)}")
        if self.n1 is not None:
            _dim("n1", self.n1)
        if self.model == "modes":
            if not self.stats.is_diagonal:
                raise LinsimError("the per-mode model needs commuting (diagonal) X and X'; use --model matrix")
            if self.n1 is not None and self.n1 != self.stats.n:
                raise LinsimError(f"the per-mode model has one mode per dimension: n1 must equal n={self.stats.n}, got {self.n1}")
        elif self.n1 is not None and self.n1 > self.stats.n:
            raise LinsimError(f"n1={self.n1} > n={self.stats.n}: the online network W (n1 x n) would be rank deficient by construction")
        reset = self.hyper.predictor in ("directpred", "directcopy")
        if reset and self.noise.kind == "sde":
            raise LinsimError("the SDE has no predictor resets: use --noise sgd with directpred/directcopy")
        if self.noise.normalized and self.model == "modes":
            raise LinsimError("the l2-normalised loss needs --model matrix (a scalar mode has |cos| = 1)")
        if reset and self.solver.method != "euler":
            raise LinsimError(f"predictor {self.hyper.predictor} is a reset between discrete SGD steps: use the euler solver")
        if self.noise.kind == "none" and self.noise.momentum and self.solver.method != "euler":
            raise LinsimError("momentum is a property of discrete SGD steps: use the euler solver (or --noise sgd)")
        if self.solver.method == "euler" or reset or self.noise.kind != "none":  # fixed steps of size dt
            if self.solver.dt > self.solver.t_max:
                raise LinsimError(f"the step dt={self.solver.dt:g} is larger than t_max={self.solver.t_max:g}")
            if self.solver.t_max / self.solver.dt > self.solver.max_steps:
                raise LinsimError(f"t_max/dt = {self.solver.t_max / self.solver.dt:.3g} steps exceeds max_steps="
                                  f"{self.solver.max_steps}; raise dt or max_steps")

    @property
    def out_dim(self) -> int:
        return int(self.stats.n if self.n1 is None else self.n1)

    def to_json(self) -> dict:
        from linsim import __version__

        return {
            "linsim_version": __version__,
            "model": self.model,
            "n1": self.n1,
            "hyper": dataclasses.asdict(self.hyper),
            "stats": self.stats.to_json(),
            "init": dataclasses.asdict(self.init),
            "solver": dataclasses.asdict(self.solver),
            "predictor": dataclasses.asdict(self.predictor),
            "noise": dataclasses.asdict(self.noise),
        }

    @classmethod
    def from_json(cls, d: dict) -> "Config":
        def num(v: Any) -> Any:
            return float(v) if isinstance(v, str) and v in ("inf", "-inf") else v

        hyper = {k: num(v) for k, v in d["hyper"].items()}
        return cls(
            model=d["model"],
            n1=d.get("n1"),
            hyper=Hyper(**hyper),
            stats=Stats.from_json(d["stats"]),
            init=Init(**d["init"]),
            solver=Solver(**d["solver"]),
            predictor=Predictor(**d.get("predictor", {})),
            noise=Noise(**d.get("noise", {})),
        )


MATRIX_SAVE_BUDGET = 64 << 20  # bytes of saved float64 states that a default matrix-model run keeps


def default_n_save(model: str, n: int, n1: int | None = None) -> int:
    """Saved times when none are asked for: 301, or for the matrix model as many as fit
    :data:`MATRIX_SAVE_BUDGET` (W, Wa: n1 x n, Wp: n1 x n1 per save), between 51 and 301.

    >>> default_n_save("modes", 256), default_n_save("matrix", 64), default_n_save("matrix", 256)
    (301, 301, 51)
    """
    if model != "matrix":
        return 301
    m = n if n1 is None else n1
    per_save = 8 * m * (2 * n + m)
    return int(min(301, max(51, MATRIX_SAVE_BUDGET // per_save)))
