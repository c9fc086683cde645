"""What a real run is measured by: the predictor's spectra and invariants, collapse metrics, kNN and probe accuracy.

Pure numpy (float64) on host, outside the jitted training step; inputs may be numpy or JAX arrays of any
float dtype. Every function returns plain Python floats, lists and bools, ready for ``metrics.jsonl``.

Non-finite inputs mean the run diverged and raise :class:`linsim.errors.DivergenceError` (exit 3); inputs
of the wrong shape raise :class:`linsim.errors.LinsimError` (exit 2).

References
----------
- Tian, Chen & Ganguli, "Understanding Self-supervised Learning Dynamics without Contrastive Pairs",
  ICML 2021 (arXiv 2102.06810): Theorem 1 (balance of the predictor and the layer before it), the
  eigenspace alignment of Wp and F, DirectPred's F as an EMA of the predictor input's correlation.
  See docs/bridge.md and docs/theory_dynamics.md.
- Li, Efros & Pathak, "Understanding Collapse in Non-Contrastive Siamese Representation Learning",
  ECCV 2022, Eq. 2 (CEV-AUC); Garrido et al., "RankMe", ICML 2023, Eq. 1; both via :mod:`linsim.metrics`
  (docs/metrics.md).
- Wu, Xiong, Yu & Lin, "Unsupervised Feature Learning via Non-Parametric Instance Discrimination"
  (InstDisc), CVPR 2018, Sec. 3.4: the weighted kNN classifier, also SimSiam's kNN monitor (Chen & He,
  CVPR 2021, code ``knn_predict`` with temperature 0.1).
"""
from __future__ import annotations

from typing import Any

import numpy as np
import scipy.optimize

from linsim import metrics
from linsim.bridge.config import COLLAPSE_RANKME
from linsim.errors import DivergenceError, LinsimError
from linsim.theory import invariants as inv

__all__ = [
    "COLLAPSE_RANKME",
    "CONSTANT_REL",
    "KNN_TEMPERATURE",
    "PROBE_L2",
    "is_collapsed",
    "knn_accuracy",
    "linear_probe_accuracy",
    "predictor_report",
    "representation_report",
]

#: Features whose centred spread (top centred singular value) is below this fraction of their size (top
#: raw singular value) count as constant. float32 round-off of a constant map is ~1e-7 relative.
CONSTANT_REL = 1e-6
#: Temperature of the kNN vote weights exp(cos / T) (InstDisc; SimSiam's monitor uses 0.1).
KNN_TEMPERATURE = 0.1
#: L2 penalty (l2/2) ||W||^2 of the linear probe, added to the mean cross-entropy (the reference probe used
#: weight decay 1e-3).
PROBE_L2 = 1e-3


# --------------------------------------------------------------------------------------------------
# input checks


def _array(x: Any, what: str, ndim: int) -> np.ndarray:
    try:
        a = np.asarray(x, dtype=np.float64)
    except (TypeError, ValueError) as err:
        raise LinsimError(f"{what} must be a real numeric array: {err}") from None
    if a.ndim != ndim:
        raise LinsimError(f"{what} must be a {ndim}-D array, found shape {a.shape}")
    if a.size == 0:
        raise LinsimError(f"{what} is empty (shape {a.shape})")
    bad = a.size - int(np.count_nonzero(np.isfinite(a)))
    if bad:
        raise DivergenceError(f"{what} contains {bad} non-finite value(s) (NaN or inf): the run diverged")
    return a


def _labels(y: Any, n: int, what: str) -> np.ndarray:
    a = np.asarray(y)
    if a.shape != (n,):
        raise LinsimError(f"{what} must have shape ({n},) to match the features, found {a.shape}")
    if not np.issubdtype(a.dtype, np.integer):
        if not (np.issubdtype(a.dtype, np.floating) and np.all(a == np.round(a))):
            raise LinsimError(f"{what} must be integer class indices, found dtype {a.dtype}")
        a = a.astype(np.int64)
    if a.min() < 0:
        raise LinsimError(f"{what} must be class indices >= 0, found {int(a.min())}")
    return a.astype(np.int64)


def _features_pair(train_feats, train_labels, test_feats, test_labels):
    xtr = _array(train_feats, "train features", 2)
    xte = _array(test_feats, "test features", 2)
    if xtr.shape[1] != xte.shape[1]:
        raise LinsimError(f"train and test features must have the same width, found {xtr.shape} and {xte.shape}")
    ytr = _labels(train_labels, xtr.shape[0], "train labels")
    yte = _labels(test_labels, xte.shape[0], "test labels")
    return xtr, ytr, xte, yte


# --------------------------------------------------------------------------------------------------
# the linear predictor


def predictor_report(Wp: Any, F: Any, W_before: Any = None, *, alpha_p: float = 1.0) -> dict[str, Any]:
    """Spectra and invariants of a linear predictor q = Wp z with input correlation F = E[z z^T] (Tian et al. 2021).

    Keys:
    - ``wp_eig_real``, ``wp_eig_imag``: eigenvalues of Wp itself (complex for a non-symmetric Wp), sorted by
      real part, descending (ties: imaginary part descending);
    - ``wp_sym_eig``: eigenvalues of (Wp + Wp^T)/2, descending; ``f_eig``: eigenvalues of sym(F), descending;
    - ``asymmetry``: ||Wp - Wp^T||_F / ||Wp||_F;
    - ``commutator``: ||[F, Wp]||_F / (||F||_F ||Wp||_F), 0 once the eigenspaces align;
    - ``alignment``: |u_{Wp,j} . u_{F,j}| per eigenvector, both bases of the symmetric parts sorted by eigenvalue
      descending (ill-defined within degenerate eigenvalues: read the commutator there);
    - ``balance``: ||C||_F / (||Wp^T Wp||_F / alpha_p + ||W W^T||_F) with C = Wp^T Wp / alpha_p - W W^T,
      the quantity of Theorem 1 that decays like e^{-2 eta t} under weight decay eta; W = ``W_before`` (d, h)
      is the last linear layer before the predictor (its output is z). None when ``W_before`` is None.
      The law assumes the gradient predictor, stop-gradient and equal weight decay on both layers; in a real
      network (biases, batch-norm, momentum, finite steps) it holds only approximately.
    """
    Wp = _array(Wp, "Wp", 2)
    d = Wp.shape[0]
    if Wp.shape != (d, d):
        raise LinsimError(f"Wp must be square (d, d), found shape {Wp.shape}")
    F = _array(F, "F", 2)
    if F.shape != (d, d):
        raise LinsimError(f"F must have the predictor's shape ({d}, {d}), found {F.shape}")
    if not (np.isfinite(alpha_p) and alpha_p > 0):
        raise LinsimError(f"alpha_p must be a finite number > 0, found {alpha_p}")
    Fs = (F + F.T) / 2
    ev = np.linalg.eigvals(Wp)
    order = np.lexsort((-ev.imag, -ev.real))
    ev = ev[order]
    balance = None
    if W_before is not None:
        W = _array(W_before, "W_before", 2)
        if W.shape[0] != d:
            raise LinsimError(
                f"W_before must be (d, h) with d = {d} (its output is the predictor's input), found {W.shape}"
            )
        balance = float(inv.balance_residual(W, Wp, alpha_p))
    return {
        "wp_eig_real": ev.real.tolist(),
        "wp_eig_imag": ev.imag.tolist(),
        "wp_sym_eig": np.linalg.eigvalsh((Wp + Wp.T) / 2)[::-1].tolist(),
        "f_eig": np.linalg.eigvalsh(Fs)[::-1].tolist(),
        "asymmetry": float(inv.asymmetry(Wp)),
        "commutator": float(inv.commutator_norm(Fs, Wp)),
        "alignment": inv.alignment(Fs, Wp).tolist(),
        "balance": balance,
    }


# --------------------------------------------------------------------------------------------------
# collapse metrics


def representation_report(feats: Any, *, prefix: str) -> dict[str, Any]:
    """Collapse metrics of features (N, d) via :mod:`linsim.metrics`, keys prefixed ``f"{prefix}_"`` (docs/metrics.md).

    - ``cev_auc``: Li et al. 2022 Eq. 2 on the centred spectrum, in [(d'+1)/(2d'), 1] (d' = min(N, d)); higher
      is more collapsed;
    - ``rankme``: Garrido et al. 2023 Eq. 1 on the raw (uncentred) spectrum, in [1, min(N, d)];
    - ``eff_rank``: participation ratio (sum lambda)^2 / sum lambda^2 of the covariance eigenvalues (Gao et al.
      2017, Eq. 2);
    - ``std``: mean per-dimension std of the l2-normalised features (SimSiam's monitor; ~1/sqrt(d) when
      isotropic, 0 when collapsed);
    - ``constant``: True when the features are constant up to round-off (centred spread < ``CONSTANT_REL``
      times their size). Constant features are complete collapse and get cev_auc = 1, eff_rank = 1,
      rankme = 1 (also for all-zero features, which have no spectrum), std = 0: never NaN.
    """
    if not prefix or not isinstance(prefix, str):
        raise LinsimError(f"prefix must be a non-empty string, found {prefix!r}")
    z = _array(feats, f"{prefix} features", 2)
    if z.shape[0] < 2:
        raise LinsimError(f"{prefix} features need at least 2 rows (samples), found shape {z.shape}")
    s_raw = np.linalg.svd(z, compute_uv=False)
    s_cen = np.linalg.svd(z - z.mean(axis=0, keepdims=True), compute_uv=False)
    constant = bool(s_raw[0] == 0 or s_cen[0] <= CONSTANT_REL * s_raw[0])
    if constant:
        auc, pr = 1.0, 1.0
    else:
        auc = metrics.cev_auc(s_cen, singular_values=True)
        pr = metrics.participation_ratio(s_cen, singular_values=True)
    rk = 1.0 if s_raw[0] == 0 else metrics.rankme(s_raw, singular_values=True)
    return {
        f"{prefix}_cev_auc": float(auc),
        f"{prefix}_rankme": float(rk),
        f"{prefix}_eff_rank": float(pr),
        f"{prefix}_std": 0.0 if constant else metrics.std_normalized(z),
        f"{prefix}_constant": constant,
    }


def is_collapsed(rankme: float, dim: int | None = None, *, threshold: float = COLLAPSE_RANKME) -> bool:
    """Complete collapse: RankMe (Garrido et al. 2023) below ``threshold`` (default ``COLLAPSE_RANKME`` = 1.5, the trainer's).

    With ``dim`` (the representation's width) the bar is capped at 1 + (dim - 1)/2, so a 1-D or 2-D
    representation is not flagged for its size alone.
    """
    r = float(rankme)
    if not np.isfinite(r):
        raise DivergenceError(f"RankMe is {r}: the run diverged")
    bar = float(threshold)
    if dim is not None:
        if int(dim) < 1:
            raise LinsimError(f"dim must be >= 1, found {dim}")
        bar = min(bar, 1.0 + (int(dim) - 1) / 2)
    return r < bar


# --------------------------------------------------------------------------------------------------
# kNN and linear probe


def _unit_rows(x: np.ndarray) -> np.ndarray:
    return x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)


def knn_accuracy(
    train_feats: Any,
    train_labels: Any,
    test_feats: Any,
    test_labels: Any,
    k: int = 20,
    *,
    temperature: float = KNN_TEMPERATURE,
    memory: int = 2**24,
) -> float:
    """Weighted kNN accuracy on cosine similarity (InstDisc, Wu et al. 2018 Sec. 3.4; SimSiam's kNN monitor).

    Each test point takes its k most cosine-similar training points; each votes for its class with weight
    exp(cos / temperature) (temperature 0.1 as SimSiam's monitor); the class with the largest total wins
    (ties: the smaller class index). Deterministic. Returns the fraction of test points classified right.
    Test points are processed in blocks of about ``memory`` similarity entries (128 MiB of float64).
    """
    xtr, ytr, xte, yte = _features_pair(train_feats, train_labels, test_feats, test_labels)
    if int(k) < 1:
        raise LinsimError(f"k must be >= 1, found {k}")
    if not (np.isfinite(temperature) and temperature > 0):
        raise LinsimError(f"temperature must be > 0, found {temperature}")
    k = min(int(k), xtr.shape[0])
    n_cls = int(max(ytr.max(), yte.max())) + 1
    a, b = _unit_rows(xtr), _unit_rows(xte)
    correct = 0
    chunk = max(1, int(memory) // a.shape[0])
    for start in range(0, b.shape[0], chunk):
        sim = b[start : start + chunk] @ a.T
        idx = np.argpartition(-sim, k - 1, axis=1)[:, :k]
        top = np.take_along_axis(sim, idx, axis=1)
        w = np.exp((top - 1.0) / temperature)  # shifted by the maximum possible cosine: no overflow
        votes = np.zeros((sim.shape[0], n_cls))
        np.add.at(votes, (np.arange(sim.shape[0])[:, None], ytr[idx]), w)
        correct += int(np.sum(np.argmax(votes, axis=1) == yte[start : start + chunk]))
    return correct / xte.shape[0]


def _standardise(xtr: np.ndarray, xte: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    mu = xtr.mean(axis=0)
    sd = xtr.std(axis=0)
    sd = np.where(sd > 0, sd, 1.0)  # constant columns carry no information: leave them at 0
    return (xtr - mu) / sd, (xte - mu) / sd


def linear_probe_accuracy(
    train_feats: Any,
    train_labels: Any,
    test_feats: Any,
    test_labels: Any,
    *,
    steps: int = 200,
    l2: float = PROBE_L2,
    seed: int = 0,
) -> float:
    """Test accuracy of a multinomial logistic regression on standardised frozen features (linear evaluation).

    Features are standardised with the training split's mean and std (as sklearn's StandardScaler in the
    reference code); the probe minimises mean cross-entropy + (l2/2)||W||^2 (bias unpenalised) by full-batch
    L-BFGS for at most ``steps`` iterations from zero weights, so it is deterministic (``seed`` is accepted
    for interface stability and unused). The accuracy on the test split at the end is returned; the
    DirectPred reference code instead reported the best test accuracy over its 50 training epochs, which is
    optimistic (it selects on the test set).
    """
    del seed
    xtr, ytr, xte, yte = _features_pair(train_feats, train_labels, test_feats, test_labels)
    if int(steps) < 1:
        raise LinsimError(f"steps must be >= 1, found {steps}")
    if not (np.isfinite(l2) and l2 >= 0):
        raise LinsimError(f"l2 must be a finite number >= 0, found {l2}")
    xtr, xte = _standardise(xtr, xte)
    n, d = xtr.shape
    n_cls = int(max(ytr.max(), yte.max())) + 1
    onehot = np.zeros((n, n_cls))
    onehot[np.arange(n), ytr] = 1.0

    def loss_grad(theta: np.ndarray) -> tuple[float, np.ndarray]:
        W = theta[: d * n_cls].reshape(d, n_cls)
        b = theta[d * n_cls :]
        logits = xtr @ W + b
        logits -= logits.max(axis=1, keepdims=True)
        lse = np.log(np.sum(np.exp(logits), axis=1))
        loss = float(np.mean(lse - np.sum(logits * onehot, axis=1)) + 0.5 * l2 * np.sum(W * W))
        g = (np.exp(logits - lse[:, None]) - onehot) / n
        gW = xtr.T @ g + l2 * W
        return loss, np.concatenate([gW.ravel(), g.sum(axis=0)])

    res = scipy.optimize.minimize(
        loss_grad,
        np.zeros(d * n_cls + n_cls),
        jac=True,
        method="L-BFGS-B",
        options={"maxiter": int(steps)},
    )
    W = res.x[: d * n_cls].reshape(d, n_cls)
    b = res.x[d * n_cls :]
    pred = np.argmax(xte @ W + b, axis=1)
    return float(np.mean(pred == yte))
