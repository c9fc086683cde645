"""``TrainConfig``: the frozen, validated configuration of one BYOL/SimSiam training run.

Defaults are the small CPU run (``resnet-tiny`` on the built-in set, a few minutes on 2 cores); the
original recipe (Tian, Chen & Ganguli, ICML 2021, Sec. 6 and their code facebookresearch/luckmatters
``ssl/real-dataset``; Grill et al., NeurIPS 2020, Sec. 3.2) is ``--arch resnet18 --batch-size 128 --lr 0.03
--momentum 0.9 --wd 4e-4 --ema 0.996 --epochs 100`` on CIFAR-10 or STL-10 (see ``docs/bridge.md``).
Every mistake raises :class:`linsim.errors.LinsimError` with one line (the CLI exits with code 2).
"""
from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Any

from linsim.errors import LinsimError

#: Projector RankMe below this counts as collapse, in training and in evaluation alike: fewer than about one and
#: a half effective dimensions (complete collapse to one direction has RankMe 1; a balanced rank-2 spectrum 2).
COLLAPSE_RANKME = 1.5

ARCHS = ("resnet-tiny", "resnet18")
PREDICTORS = ("linear", "symmetric", "directpred", "directcopy", "mlp", "none")
#: predictors that are one d x d matrix Wp (q = Wp z): the ones whose spectra are logged
LINEAR_PREDICTORS = ("linear", "symmetric", "directpred", "directcopy")
OPTIMIZERS = ("sgd", "lars")
SCHEDULES = ("constant", "cosine")
PRECISIONS = ("auto", "f32", "bf16")
DATASETS = ("builtin", "cifar10", "stl10", "npz", "digits")

#: per-architecture defaults of (width multiplier, projector hidden size, projector output size d)
ARCH_DEFAULTS = {"resnet-tiny": (0.125, 128, 32), "resnet18": (1.0, 512, 128)}
#: default epsilon of each closed-form predictor rule (DirectPred: the official command's dyn_eps = 0.01;
#: DirectCopy: Wang, Chen, Du & Tian, arXiv 2110.04947, CIFAR-10 setting eps = 0.3)
RULE_EPS = {"directpred": 0.01, "directcopy": 0.3}


def _num(name: str, value: Any, *, lo: float | None = None, hi: float | None = None, lo_open: bool = False,
         hi_open: bool = False) -> float:
    try:
        x = float(value)
    except (TypeError, ValueError):
        raise LinsimError(f"{name} must be a number, got {value!r}") from None
    if not math.isfinite(x):
        raise LinsimError(f"{name} must be finite, got {value!r}")
    if lo is not None and (x < lo or (lo_open and x == lo)):
        raise LinsimError(f"{name} must be {'>' if lo_open else '>='} {lo:g}, got {x:g}")
    if hi is not None and (x > hi or (hi_open and x == hi)):
        raise LinsimError(f"{name} must be {'<' if hi_open else '<='} {hi:g}, got {x:g}")
    return x


def _int(name: str, value: Any, lo: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise LinsimError(f"{name} must be an integer, got {value!r}")
    if value < lo:
        raise LinsimError(f"{name} must be >= {lo}, got {value}")
    return value


def _choice(name: str, value: Any, choices: tuple[str, ...]) -> str:
    if value not in choices:
        raise LinsimError(f"unknown {name} {value!r}; choose one of {', '.join(choices)}")
    return value


@dataclass(frozen=True)
class TrainConfig:
    """One BYOL/SimSiam run. Learning rates and decays follow the PyTorch/optax conventions.

    ema: the target's EMA momentum m (target <- m target + (1 - m) online after every step); 0 means
    SimSiam (target = online with stop-gradient). pred_lr_ratio: predictor lr / lr (the theory's alpha_p).
    wd / pred_wd: coupled (torch-style) weight decay of backbone+projector / predictor. rho, freq, eps: the
    correlation EMA F_hat <- rho F_hat + (1 - rho) E[z z^T] and the reset period / epsilon of the
    DirectPred/DirectCopy rules (Tian et al., ICML 2021, Eqs. 18-19). width, proj_hidden, proj_dim: None
    means the architecture's default (``ARCH_DEFAULTS``). collapse_rankme: the projector output counts as
    collapsed when its RankMe falls below this value (``docs/bridge.md``).
    """

    dataset: str = "builtin"
    data_dir: str | None = None
    epochs: int = 8
    batch_size: int = 64
    lr: float = 0.05
    momentum: float = 0.9
    wd: float = 4e-4
    pred_wd: float | None = None
    ema: float = 0.99
    pred_lr_ratio: float = 1.0
    predictor: str = "linear"
    arch: str = "resnet-tiny"
    width: float | None = None
    proj_hidden: int | None = None
    proj_dim: int | None = None
    pred_hidden: int = 512
    views: int = 2
    image_size: int = 32
    seed: int = 0
    optimizer: str = "sgd"
    schedule: str = "constant"
    stop_grad: bool = True
    rho: float = 0.3
    freq: int = 1
    eps: float | None = None
    eval_size: int = 512
    probe_train: int = 2000
    probe_test: int = 1000
    log_every: int = 0
    precision: str = "auto"
    collapse_rankme: float = COLLAPSE_RANKME
    stop_on_collapse: bool = False

    def __post_init__(self) -> None:
        _choice("dataset", self.dataset, DATASETS)
        _choice("arch", self.arch, ARCHS)
        _choice("predictor", self.predictor, PREDICTORS)
        _choice("optimizer", self.optimizer, OPTIMIZERS)
        _choice("schedule", self.schedule, SCHEDULES)
        _choice("precision", self.precision, PRECISIONS)
        if self.data_dir is not None and not isinstance(self.data_dir, str):
            raise LinsimError(f"data_dir must be a path string, got {self.data_dir!r}")
        if self.dataset in ("cifar10", "stl10", "npz") and not self.data_dir:
            raise LinsimError(f"dataset {self.dataset} needs --data-dir (nothing is downloaded)")
        _int("epochs", self.epochs, 1)
        _int("batch_size", self.batch_size, 2)
        _num("lr", self.lr, lo=0, lo_open=True)
        _num("momentum", self.momentum, lo=0, hi=1, hi_open=True)
        _num("wd", self.wd, lo=0)
        if self.pred_wd is not None:
            _num("pred_wd", self.pred_wd, lo=0)
        _num("ema", self.ema, lo=0, hi=1, hi_open=True)
        _num("pred_lr_ratio", self.pred_lr_ratio, lo=0, lo_open=True)
        if self.width is not None:
            _num("width", self.width, lo=0, lo_open=True, hi=8)
            if round(64 * self.width) < 1:
                raise LinsimError(f"width {self.width:g} leaves the first stage with no channels (64 x width < 1)")
        for name in ("proj_hidden", "proj_dim"):
            if getattr(self, name) is not None:
                _int(name, getattr(self, name), 1)
        _int("pred_hidden", self.pred_hidden, 1)
        _int("views", self.views, 2)
        _int("image_size", self.image_size, 8)
        _int("seed", self.seed, 0)
        if not isinstance(self.stop_grad, bool) or not isinstance(self.stop_on_collapse, bool):
            raise LinsimError("stop_grad and stop_on_collapse must be true or false")
        if not self.stop_grad and self.ema != 0:
            raise LinsimError("removing the stop-gradient needs the SimSiam target (--ema 0): with an EMA target "
                              "there is no gradient path through the target branch")
        _num("rho", self.rho, lo=0, hi=1, hi_open=True)
        _int("freq", self.freq, 1)
        if self.eps is not None:
            _num("eps", self.eps, lo=0)
        _int("eval_size", self.eval_size, 16)
        _int("probe_train", self.probe_train, 0)
        _int("probe_test", self.probe_test, 0)
        _int("log_every", self.log_every, 0)
        _num("collapse_rankme", self.collapse_rankme, lo=1)

    # ---------------------------------------------------------------- resolved values

    @property
    def width_value(self) -> float:
        return ARCH_DEFAULTS[self.arch][0] if self.width is None else float(self.width)

    @property
    def proj_hidden_value(self) -> int:
        return ARCH_DEFAULTS[self.arch][1] if self.proj_hidden is None else self.proj_hidden

    @property
    def proj_dim_value(self) -> int:
        """d: the projector's output size, i.e. the predictor's input and output size."""
        return ARCH_DEFAULTS[self.arch][2] if self.proj_dim is None else self.proj_dim

    @property
    def pred_wd_value(self) -> float:
        return float(self.wd if self.pred_wd is None else self.pred_wd)

    @property
    def eps_value(self) -> float:
        return float(RULE_EPS.get(self.predictor, 0.0) if self.eps is None else self.eps)

    @property
    def simsiam(self) -> bool:
        return self.ema == 0

    @property
    def linear_predictor(self) -> bool:
        return self.predictor in LINEAR_PREDICTORS

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "TrainConfig":
        """Rebuild from ``config.json``'s ``train`` block (unknown keys are an error)."""
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(d) - names)
        if unknown:
            raise LinsimError(f"unknown training option(s) {', '.join(unknown)} in the run's config")
        return cls(**d)

    def replace(self, **changes: Any) -> "TrainConfig":
        return dataclasses.replace(self, **changes)
