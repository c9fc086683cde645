"""Map a training configuration in the usual PyTorch/optax conventions onto the linear theory's parameters,
and back.

The theory (Tian, Chen & Ganguli, "Understanding Self-supervised Learning Dynamics without Contrastive
Pairs", ICML 2021, Lemma 1 / Eq. 2) integrates the loss J = 1/2 E ||Wp W x1 - StopGrad(Wa x2)||^2 in a time t
measured in units of the online learning rate:

    dWp/dt = alpha_p (-grad_Wp J) - eta_p Wp,   dW/dt = -grad_W J - eta W,   dWa/dt = beta (W - Wa).

A trainer instead minimises a loss L whose expected gradient is ``g`` times that of J, where ``g`` (the
*gradient scale*, :meth:`LossConvention.gradient_scale`) collects the reduction conventions:

    g = (1 if the loss has a 1/2 in front else 2)     ||e||^2 instead of 1/2 ||e||^2 doubles the gradient
      x (1/d if the loss is averaged over the d output elements, e.g. torch MSELoss / F.mse_loss)
      x (B if the loss is summed, not averaged, over a batch of B samples)
      x (2 if the two view orders are summed, BYOL's loss(v1, v2) + loss(v2, v1); averaging them, as
         SimSiam's D(p1, z2)/2 + D(p2, z1)/2 does, keeps the factor 1).

One torch.optim.SGD step (dampening 0, no Nesterov; ``optax.chain(add_decayed_weights(wd), sgd(lr, mu))``
is the same) with learning rate lr, weight decay wd, momentum mu per parameter block, followed by the
target EMA Wa <- m Wa + (1 - m) W, is exactly linsim's discrete step (``linsim.dynamics.discrete``, with
``Solver.dt`` = alpha, ``Noise.momentum`` = mu and ``Hyper.beta`` = beta_ode below) with

    alpha   = g lr                       ODE time per SGD step (the theory's learning rate)
    eta     = wd / g                     weight decay of W per unit ODE time
    alpha_p = lr_p / lr                  predictor learning-rate ratio
    eta_p   = alpha_p wd_p / g           weight decay of Wp per unit ODE time (linsim's field decays Wp by
                                         eta_p, not alpha_p eta_p)
    beta    = (1 - m) / alpha            EMA rate per unit ODE time (m = 0 is SimSiam, beta = inf)
    mu      = momentum                   (kept: linsim simulates heavy-ball momentum itself)

and the momentum buffers correspond as buf_W(torch) = -g buf_W(linsim), buf_Wp(torch) = -(g/alpha_p)
buf_Wp(linsim). The inverse is lr = alpha/g, wd = g eta, lr_p = alpha_p lr, wd_p = g eta_p / alpha_p,
m = 1 - alpha beta. Both directions are exact algebra; the test suite checks a hand-written torch-style
step against linsim's to float precision.

Momentum. Heavy-ball momentum mu is not in the ODE. For small steps its buffer settles at the gradient
times 1/(1 - mu), so training follows the ODE with the *effective* step alpha/(1 - mu) per SGD step:
``TheoryParams.time_per_step`` = alpha/(1 - mu), and in that time the EMA rate is
``TheoryParams.beta_ode`` = (1 - m)(1 - mu)/alpha = beta (1 - mu) (eta, eta_p and alpha_p are unchanged,
since torch's weight decay enters the buffer with the gradient). linsim's discrete simulator counts time
the same way (every rate of ``Hyper`` per unit ODE time), so ``Hyper.beta`` = beta_ode there, and the run
approximates the ODE of that same ``Hyper`` to first order in alpha (the test suite measures the error
ratio as alpha halves). Without momentum beta_ode = beta. Example: the official BYOL-on-STL10 recipe (lr 0.03,
momentum 0.9, m = 0.996, wd 4e-4) with the theory's 1/2-sum loss has alpha = 0.03, effective step 0.3 per
SGD step and beta_ode = 0.0133.

What this does not cover: BYOL's l2-normalised (cosine) loss, whose gradient is not a constant multiple of
J's (its time scale depends on the norms of the outputs); adaptive optimisers (Adam, LARS); learning-rate
schedules (a schedule is a chain of runs, each with its own alpha). See docs/mapping.md.
"""
from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass

import numpy as np

from linsim.errors import LinsimError

OUTPUT_REDUCTIONS = ("sum", "mean")
BATCH_REDUCTIONS = ("mean", "sum")
SYMMETRISED = ("no", "sum", "mean")


def _number(name: str, v, *, lo: float | None = None, lo_open: bool = False, hi: float | None = None,
            hi_open: bool = False, allow_inf: bool = False) -> float:
    try:
        v = float(v)
    except (TypeError, ValueError):
        raise LinsimError(f"{name} must be a number, got {v!r}") from None
    if math.isnan(v) or (math.isinf(v) and not allow_inf):
        raise LinsimError(f"{name} must be a finite number, got {v!r}")
    if lo is not None and (v < lo or (lo_open and v == lo)):
        raise LinsimError(f"{name} must be {'>' if lo_open else '>='} {lo:g}, got {v:g}")
    if hi is not None and (v > hi or (hi_open and v == hi)):
        raise LinsimError(f"{name} must be {'<' if hi_open else '<='} {hi:g}, got {v:g}")
    return v


@dataclass(frozen=True)
class LossConvention:
    """How the training loss is reduced, relative to the theory's J = 1/2 E ||Wp W x1 - Wa x2||^2.

    output: 'sum' (||e||^2 over the d output elements) or 'mean' (averaged over them, as torch's MSELoss);
    out_dim: d, the predictor's output dimension (needed for 'mean'); batch: 'mean' or 'sum' over the batch;
    batch_size: B (needed for 'sum'); half: the loss has a 1/2 in front (1/2 ||e||^2); symmetrised: 'no',
    'sum' (both view orders added, as BYOL's code) or 'mean' (both orders averaged, as SimSiam's).
    """

    output: str = "sum"
    out_dim: int | None = None
    batch: str = "mean"
    batch_size: int | None = None
    half: bool = False
    symmetrised: str = "no"

    def __post_init__(self) -> None:
        if self.output not in OUTPUT_REDUCTIONS:
            raise LinsimError(f"loss output reduction must be one of {', '.join(OUTPUT_REDUCTIONS)}, got {self.output!r}")
        if self.batch not in BATCH_REDUCTIONS:
            raise LinsimError(f"loss batch reduction must be one of {', '.join(BATCH_REDUCTIONS)}, got {self.batch!r}")
        if self.symmetrised not in SYMMETRISED:
            raise LinsimError(f"symmetrised must be one of {', '.join(SYMMETRISED)}, got {self.symmetrised!r}")
        for name, v, needed in (("out_dim", self.out_dim, self.output == "mean"),
                                ("batch_size", self.batch_size, self.batch == "sum")):
            if v is None:
                if needed:
                    flag = "--out-dim" if name == "out_dim" else "--batch-size"
                    raise LinsimError(f"a loss {'averaged over outputs' if name == 'out_dim' else 'summed over the batch'} "
                                      f"needs {name} ({flag})")
                continue
            if isinstance(v, bool) or int(v) != v or v < 1:
                raise LinsimError(f"{name} must be a positive integer, got {v!r}")

    def gradient_scale(self) -> float:
        """g: the expected gradient of the training loss is g times the gradient of J (module docstring)."""
        g = 1.0 if self.half else 2.0
        if self.output == "mean":
            g /= int(self.out_dim)
        if self.batch == "sum":
            g *= int(self.batch_size)
        if self.symmetrised == "sum":
            g *= 2.0
        return g


@dataclass(frozen=True)
class TrainingConventions:
    """A training configuration as PyTorch/optax write it.

    lr: SGD learning rate of the online network W; momentum: heavy-ball momentum mu (torch SGD, dampening
    0, applied to gradient + weight decay); ema: the target's EMA momentum m (Wa <- m Wa + (1 - m) W after
    each step; 0 = SimSiam, the target is the online network); weight_decay: torch ``weight_decay`` of W;
    pred_lr / pred_weight_decay: the predictor's (None = same as W's); loss: the loss reduction.
    """

    lr: float
    momentum: float = 0.0
    ema: float = 0.0
    weight_decay: float = 0.0
    pred_lr: float | None = None
    pred_weight_decay: float | None = None
    loss: LossConvention = dataclasses.field(default_factory=LossConvention)

    def __post_init__(self) -> None:
        _number("lr", self.lr, lo=0, lo_open=True)
        _number("momentum", self.momentum, lo=0, hi=1, hi_open=True)
        _number("ema", self.ema, lo=0, hi=1, hi_open=True)
        _number("weight_decay", self.weight_decay, lo=0)
        if self.pred_lr is not None:
            _number("pred_lr", self.pred_lr, lo=0, lo_open=True)
        if self.pred_weight_decay is not None:
            _number("pred_weight_decay", self.pred_weight_decay, lo=0)
        if not isinstance(self.loss, LossConvention):
            raise LinsimError(f"loss must be a LossConvention, got {type(self.loss).__name__}")

    @property
    def pred_lr_value(self) -> float:
        return float(self.lr if self.pred_lr is None else self.pred_lr)

    @property
    def pred_weight_decay_value(self) -> float:
        return float(self.weight_decay if self.pred_weight_decay is None else self.pred_weight_decay)


@dataclass(frozen=True)
class TheoryParams:
    """The theory's parameters for one SGD step (module docstring).

    alpha: ODE time per SGD step without momentum (linsim's ``Solver.dt`` for a discrete run); beta: EMA
    rate per alpha of time, (1 - m)/alpha (inf = SimSiam; linsim's ``Hyper.beta`` is ``beta_ode``, which
    equals beta without momentum); eta, eta_p: weight decays per
    unit ODE time; alpha_p: predictor learning-rate ratio; momentum: heavy-ball mu (``Noise.momentum``).
    """

    alpha: float
    beta: float = math.inf
    eta: float = 0.0
    eta_p: float | None = None
    alpha_p: float = 1.0
    momentum: float = 0.0

    def __post_init__(self) -> None:
        _number("alpha", self.alpha, lo=0, lo_open=True)
        beta = _number("beta", self.beta, lo=0, lo_open=True, allow_inf=True)
        _number("eta", self.eta, lo=0)
        if self.eta_p is not None:
            _number("eta_p", self.eta_p, lo=0)
        _number("alpha_p", self.alpha_p, lo=0, lo_open=True)
        _number("momentum", self.momentum, lo=0, hi=1, hi_open=True)
        if math.isfinite(beta) and self.alpha * beta > 1 + 1e-12:
            raise LinsimError(f"alpha * beta = {self.alpha * beta:g} > 1: the EMA momentum m = 1 - alpha beta "
                              "would be negative")

    @property
    def eta_p_value(self) -> float:
        return float(self.eta if self.eta_p is None else self.eta_p)

    @property
    def time_per_step(self) -> float:
        """ODE time per SGD step: alpha / (1 - mu), the momentum-effective step (exact for mu = 0)."""
        return float(self.alpha / (1.0 - self.momentum))

    @property
    def beta_ode(self) -> float:
        """The EMA rate in the momentum-rescaled ODE time: beta (1 - mu) = (1 - m)(1 - mu) / alpha."""
        return float(self.beta * (1.0 - self.momentum))

    def hyper(self, **kw):
        """A ``linsim.Hyper`` for the ODE that a run with these parameters follows (beta -> ``beta_ode``)."""
        from linsim.config import Hyper

        return Hyper(eta=self.eta, eta_p=self.eta_p_value, beta=self.beta_ode, alpha_p=self.alpha_p, **kw)

    def to_json(self) -> dict:
        return {"alpha": self.alpha, "beta": self.beta, "eta": self.eta, "eta_p": self.eta_p_value,
                "alpha_p": self.alpha_p, "momentum": self.momentum, "time_per_step": self.time_per_step,
                "beta_ode": self.beta_ode}


def to_theory(tc: TrainingConventions) -> TheoryParams:
    """alpha = g lr, eta = wd/g, alpha_p = lr_p/lr, eta_p = alpha_p wd_p/g, beta = (1-m)/alpha (module docstring)."""
    g = tc.loss.gradient_scale()
    alpha = g * float(tc.lr)
    alpha_p = tc.pred_lr_value / float(tc.lr)
    beta = math.inf if tc.ema == 0 else (1.0 - float(tc.ema)) / alpha
    return TheoryParams(alpha=alpha, beta=beta, eta=float(tc.weight_decay) / g,
                        eta_p=alpha_p * tc.pred_weight_decay_value / g, alpha_p=alpha_p, momentum=float(tc.momentum))


def to_training(tp: TheoryParams, loss: LossConvention | None = None) -> TrainingConventions:
    """lr = alpha/g, wd = g eta, lr_p = alpha_p lr, wd_p = g eta_p/alpha_p, m = 1 - alpha beta (inverse of ``to_theory``)."""
    loss = LossConvention() if loss is None else loss
    g = loss.gradient_scale()
    lr = tp.alpha / g
    ema = 0.0 if math.isinf(tp.beta) else max(0.0, 1.0 - tp.alpha * tp.beta)
    return TrainingConventions(lr=lr, momentum=tp.momentum, ema=ema, weight_decay=g * tp.eta,
                               pred_lr=tp.alpha_p * lr, pred_weight_decay=g * tp.eta_p_value / tp.alpha_p, loss=loss)


def buffers_to_theory(buf_W, buf_Wp, tc: TrainingConventions) -> tuple[np.ndarray, np.ndarray]:
    """Torch momentum buffers -> linsim's: buf_W = -buf_W(torch)/g, buf_Wp = -alpha_p buf_Wp(torch)/g."""
    g = tc.loss.gradient_scale()
    alpha_p = tc.pred_lr_value / float(tc.lr)
    return -np.asarray(buf_W) / g, -alpha_p * np.asarray(buf_Wp) / g


def buffers_to_training(buf_W, buf_Wp, tp: TheoryParams, loss: LossConvention | None = None):
    """linsim's momentum buffers -> torch's (inverse of ``buffers_to_theory``)."""
    g = (LossConvention() if loss is None else loss).gradient_scale()
    return -g * np.asarray(buf_W), -g * np.asarray(buf_Wp) / tp.alpha_p


# ---------------------------------------------------------------- the fate of each mode


def mode_fates(tp: TheoryParams, x, xp, *, steps_per_epoch: int | None = None) -> list[dict]:
    """Per eigenmode j with data variance x_j and augmentation variance x'_j (commuting X, X'), what the
    theory predicts at these parameters (Tian et al. 2021, Sec. 4-5; docs/theory_dynamics.md):

    eta_c,j = x_j^2 / (4 (x_j + x'_j)); if eta >= eta_c,j the mode collapses from any start; else the
    fixed points p+- (s+- = (eta_p/eta) p^2/alpha_p) exist, p+ is stable and p- is the saddle bounding the
    collapse basin, and the mode relaxes to p+ with the slowest rate lambda_min of the Jacobian at p+
    (ODE-time constant 1/lambda_min, i.e. that many / time_per_step SGD steps). ``step_stable`` checks the
    discrete heavy-ball step at p+: alpha |lambda| < 2 (1 + mu) for the fastest real eigenvalue.
    """
    import jax.numpy as jnp

    from linsim.dynamics.modes import eta_critical, fixed_points, stability

    x = np.atleast_1d(np.asarray(x, float))
    xp = np.atleast_1d(np.asarray(xp, float))
    if x.shape != xp.shape or x.ndim != 1:
        raise LinsimError(f"data and augmentation spectra must be 1-D of equal length, got {x.shape} and {xp.shape}")
    out = []
    for j, (xj, xpj) in enumerate(zip(x, xp)):
        eta_c = float(eta_critical(xj, xpj)) if xj + xpj > 0 else 0.0
        rec = {"mode": j, "x": float(xj), "xp": float(xpj), "eta": tp.eta, "eta_c": eta_c,
               "p_plus": None, "p_minus": None, "s_plus": None, "s_minus": None,
               "relax_time": None, "relax_steps": None, "relax_epochs": None, "step_stable": None}
        if xj <= 0:
            rec["fate"] = "collapses (no signal: x = 0)"
            out.append(rec)
            continue
        fp = fixed_points(tp.eta, tp.alpha_p, sigma2=float(xpj), x=float(xj), eta_p=tp.eta_p_value)
        if not fp.exists:
            rec["fate"] = ("collapses (eta >= eta_c)" if tp.eta >= eta_c
                           else "no non-trivial fixed point (exactly one of eta, eta_p is zero)")
            out.append(rec)
            continue
        rec.update(p_plus=fp.p_plus, p_minus=fp.p_minus, s_plus=fp.s_plus, s_minus=fp.s_minus)
        args = {k: jnp.asarray(v, jnp.float64) for k, v in dict(
            eta=tp.eta, eta_p=tp.eta_p_value, beta=tp.beta_ode, alpha_p=tp.alpha_p, x=float(xj), xp=float(xpj)).items()}
        eig, kind = stability(fp.p_plus, fp.s_plus, args)
        re = -np.real(np.asarray(eig))
        no_decay = tp.eta == 0 and tp.eta_p_value == 0  # a line of fixed points: one zero eigenvalue
        if kind == "stable" or (no_decay and kind == "marginal" and np.all(re > -1e-12)):
            lam = float(np.min(re[re > 1e-12]))  # the slowest decaying direction
            rec["relax_time"] = 1.0 / lam
            rec["relax_steps"] = rec["relax_time"] / tp.time_per_step
            if steps_per_epoch:
                rec["relax_epochs"] = rec["relax_steps"] / int(steps_per_epoch)
            rec["step_stable"] = bool(tp.alpha * float(np.max(re)) < 2.0 * (1.0 + tp.momentum))
            rec["fate"] = ("survives if it starts above p- (else collapses)" if not no_decay else
                           "survives outside the eta = 0 collapse basin; p -> x/(x+x'), the imbalance is conserved")
        else:
            rec["fate"] = f"p+ is {kind} at these parameters"
        out.append(rec)
    return out


def spectra_from_stats(stats) -> tuple[np.ndarray, np.ndarray, str | None]:
    """Per-mode (x_j, x'_j) from a ``linsim.Stats``: the diagonals if X, X' are diagonal, else X's eigenvalues
    and X' in X's eigenbasis (u_j^T X' u_j), with a note saying how far X and X' are from commuting."""
    if stats.is_diagonal:
        return stats.x, stats.xp, None
    lam, U = np.linalg.eigh(stats.X)
    order = np.argsort(-lam)
    lam, U = lam[order], U[:, order]
    Xp_rot = U.T @ stats.Xp @ U
    off = float(np.linalg.norm(Xp_rot - np.diag(np.diag(Xp_rot))) / max(np.linalg.norm(Xp_rot), 1e-300))
    note = (f"X and X' do not commute (off-diagonal part of X' in X's eigenbasis: {off:.3g} relative); "
            "modes are X's eigenvectors with x'_j = u_j^T X' u_j") if off > 1e-8 else None
    return np.clip(lam, 0, None), np.clip(np.diag(Xp_rot), 0, None), note
