"""Collapse metrics of learned representations: Li et al. CEV-AUC, RankMe, participation ratio, alpha-ReQ.

Every function is pure numpy and accepts numpy or JAX arrays (converted to float64). Functions that take
``z_or_sv`` accept either embeddings ``Z`` of shape ``(N, d)`` (one row per sample) or, with
``singular_values=True``, a 1-D spectrum of singular values (sorted into descending order here).

Spectra: "centred spectrum" means the singular values of ``Z - mean_rows(Z)`` (optionally after row L2
normalisation, Li et al.'s ``--normalize``); it has ``min(N, d)`` entries, as ``torch.svd(R).S`` in the
reference code. RankMe instead uses the singular values of the raw ``Z`` (no centring), as its reference
implementations do.

References
----------
- Li, Efros & Pathak, "Understanding Collapse in Non-Contrastive Siamese Representation Learning",
  ECCV 2022, arXiv 2209.15007, Eq. 2; code github.com/alexlioralexli/noncontrastive-ssl
  (``plot_collapse.ipynb``, ``save_reprs_clean.py``).
- Garrido, Balestriero, Najman & LeCun, "RankMe", ICML 2023, arXiv 2210.02885, Eq. 1.
- Agrawal et al., "alpha-ReQ", NeurIPS 2022; fit routine of Stringer & Pachitariu 2018 as used in
  github.com/kumarkrishna/fastssl ``fastssl/utils/powerlaw.py`` (fit) and
  ``scripts/train_model.py`` (fitting range k = 4..100).
- Participation ratio: Gao, Trautmann, Yu, Santhanam, Ryu, Shenoy & Ganguli 2017, "A theory of
  multineuronal dimensionality, dynamics and measurement" (bioRxiv 214262), Eq. 2;
  Recanatesi et al. 2019.
- std of l2-normalised outputs: Chen & He, "Exploring Simple Siamese Representation Learning"
  (SimSiam), CVPR 2021, Sec. 4.1 / Fig. 2; Jing, Vincent, LeCun & Tian, ICLR 2022.
"""
from __future__ import annotations

from typing import Any, NamedTuple

import numpy as np

from linsim.errors import LinsimError

__all__ = [
    "ALPHA_REQ_K_RANGE",
    "AlphaReQ",
    "alpha_req",
    "cev_auc",
    "cev_curve",
    "check_embeddings",
    "check_spectrum",
    "parse_k_range",
    "participation_ratio",
    "rankme",
    "singular_values",
    "std_normalized",
    "summarize",
]

#: Li et al.'s row-normalisation offset: ``r_i / (||r_i||_2 + 1e-6)`` (``save_reprs_clean.py``).
LI_NORMALIZE_EPS = 1e-6
#: RankMe's epsilon (float32 machine-epsilon order), as in the paper and its reference implementations.
RANKME_EPS = 1e-7
#: ``torch.nn.functional.normalize``'s floor on the row norm, used by SimSiam's std monitor.
TORCH_NORMALIZE_EPS = 1e-12


# --------------------------------------------------------------------------------------------------
# validation


def _to_float_array(x: Any, what: str) -> np.ndarray:
    try:
        arr = np.asarray(x)
    except Exception as err:  # noqa: BLE001  (anything unconvertible is bad input)
        raise LinsimError(f"{what} could not be converted to an array: {err}") from None
    if arr.dtype == object or not (np.issubdtype(arr.dtype, np.number) or arr.dtype == np.bool_):
        raise LinsimError(f"{what} must be numeric, found dtype {arr.dtype}")
    if np.issubdtype(arr.dtype, np.complexfloating):
        raise LinsimError(f"{what} must be real, found dtype {arr.dtype}")
    arr = arr.astype(np.float64)
    if arr.size == 0:
        raise LinsimError(f"{what} is empty (shape {arr.shape})")
    if not np.all(np.isfinite(arr)):
        bad = int(np.size(arr) - np.count_nonzero(np.isfinite(arr)))
        raise LinsimError(f"{what} contains {bad} non-finite value(s) (NaN or inf)")
    return arr


def check_embeddings(z: Any) -> np.ndarray:
    """Validate embeddings: a finite, real, 2-D ``(N, d)`` array with N >= 2; returns it as float64."""
    out = _to_float_array(z, "embeddings")
    if out.ndim != 2:
        hint = " (pass singular_values=True if it is a spectrum)" if out.ndim == 1 else ""
        raise LinsimError(f"embeddings must be a 2-D (N, d) array, found {out.ndim}-D with shape {out.shape}{hint}")
    if out.shape[0] < 2:
        raise LinsimError(f"embeddings need at least 2 rows (samples), found shape {out.shape}")
    return out


def check_spectrum(sv: Any) -> np.ndarray:
    """Validate singular values: finite, real, 1-D, non-negative, not all zero; returns them descending."""
    out = _to_float_array(sv, "singular values")
    if out.ndim != 1:
        raise LinsimError(f"singular values must be a 1-D array, found shape {out.shape}")
    if np.any(out < 0):
        raise LinsimError(f"singular values must be non-negative, found minimum {out.min():.6g}")
    if not np.any(out > 0):
        raise LinsimError(
            "all singular values are zero (the representation is constant): the collapse metrics are undefined"
        )
    return np.sort(out)[::-1]


# --------------------------------------------------------------------------------------------------
# spectra


def _row_normalize(r: np.ndarray) -> np.ndarray:
    """``r_i / (||r_i||_2 + 1e-6)`` without overflow for huge rows (each row is scaled by its max first)."""
    m = np.max(np.abs(r), axis=1, keepdims=True)
    safe = np.where(m > 0, m, 1.0)
    rn = r / safe
    return rn / (np.linalg.norm(rn, axis=1, keepdims=True) + LI_NORMALIZE_EPS / safe)


def _unit_spectrum(r: np.ndarray, center: bool, normalize: bool) -> tuple[np.ndarray, float]:
    """(singular values of the prepared Z divided by ``scale``, ``scale``): Z is divided by max |Z| *before*
    centring and the SVD, so finite embeddings of any magnitude (|Z| ~ 1e307 or 1e-300) neither overflow nor
    underflow. Every metric here is scale-invariant and uses the scaled spectrum."""
    if normalize:
        r = _row_normalize(r)
    scale = float(np.max(np.abs(r)))
    if scale > 0:
        r = r / scale
    else:
        scale = 1.0
    if center:
        r = r - r.mean(axis=0, keepdims=True)
    return np.linalg.svd(r, compute_uv=False), scale


def _tame(s: np.ndarray) -> np.ndarray:
    """A given spectrum (descending), divided by its largest value if that is extreme (> 1e150 or < 1e-150),
    so sums of sigma or sigma^2 cannot overflow or underflow; the metrics are scale-invariant."""
    return s / s[0] if (s[0] > 1e150 or s[0] < 1e-150) else s


def singular_values(z: Any, center: bool = True, normalize: bool = False) -> np.ndarray:
    """Singular values of embeddings, descending (Li et al. 2022, Eq. 2 and their code: [row L2-normalise] -> centre -> SVD).

    ``normalize=True`` first maps each row to ``r_i / (||r_i||_2 + 1e-6)`` (the authors' ``--normalize``
    flag, off in their README); ``center=True`` then subtracts the row mean. Returns ``min(N, d)`` values.
    Computed on Z / max|Z| and scaled back (values beyond the float range come back as inf; the metrics
    below never scale back, so they stay exact for any finite Z).
    """
    sv, scale = _unit_spectrum(check_embeddings(z), center, normalize)
    with np.errstate(over="ignore"):
        return sv * scale


def _spectrum(z_or_sv: Any, singular_values_in: bool, center: bool = True, normalize: bool = False) -> np.ndarray:
    if singular_values_in:
        return _tame(check_spectrum(z_or_sv))
    return check_spectrum(_unit_spectrum(check_embeddings(z_or_sv), center, normalize)[0])


# --------------------------------------------------------------------------------------------------
# Li, Efros & Pathak 2022


def cev_curve(
    z_or_sv: Any, singular_values: bool = False, center: bool = True, normalize: bool = False
) -> np.ndarray:
    """Cumulative explained variance CEV_k = sum_{i<=k} sigma_i / sum_i sigma_i (Li et al. 2022, Eq. 2; sigma, not sigma^2)."""
    s = _spectrum(z_or_sv, singular_values, center, normalize)
    return np.cumsum(s) / np.sum(s)


def cev_auc(z_or_sv: Any, singular_values: bool = False, center: bool = True, normalize: bool = False) -> float:
    """Li et al. 2022 collapse metric (Eq. 2): AUC = (1/d) sum_k CEV_k, in [(d+1)/(2d), 1]; higher = more collapsed."""
    return float(np.mean(cev_curve(z_or_sv, singular_values=singular_values, center=center, normalize=normalize)))


# --------------------------------------------------------------------------------------------------
# RankMe


def rankme(z_or_sv: Any, eps: float = RANKME_EPS, singular_values: bool = False) -> float:
    """RankMe (Garrido et al. 2023, Eq. 1): exp(-sum p_k log p_k), p_k = sigma_k / sum sigma + eps; Z not centred.

    The ``eps`` floor (1e-7, as the paper) biases the value upward by at most about
    ``eps * (r ln r + 17 (q - r))`` relative for r equal singular values out of q (docs/metrics.md).
    """
    if not (np.isfinite(eps) and eps >= 0):
        raise LinsimError(f"eps must be a finite number >= 0, found {eps}")
    if singular_values:
        s = _tame(check_spectrum(z_or_sv))
    else:  # raw Z (not centred), scaled by max |Z| first
        s = check_spectrum(_unit_spectrum(check_embeddings(z_or_sv), center=False, normalize=False)[0])
    p = s / np.sum(s) + eps
    # 0 log 0 = 0 (only reachable with eps = 0)
    plogp = np.where(p > 0, p * np.log(np.where(p > 0, p, 1.0)), 0.0)
    return float(np.exp(-np.sum(plogp)))


# --------------------------------------------------------------------------------------------------
# participation ratio, std of normalised embeddings


def participation_ratio(
    z_or_sv: Any, singular_values: bool = False, center: bool = True, normalize: bool = False
) -> float:
    """Participation ratio (Gao et al. 2017, Eq. 2): (sum lambda)^2 / sum lambda^2 with lambda = sigma^2 the covariance eigenvalues.

    For embeddings, sigma is the centred spectrum (so lambda is proportional to the eigenvalues of the
    covariance; PR is scale-free, the 1/N drops out). ``1 <= PR <= rank``, with equality on the right for
    equal non-zero eigenvalues.
    """
    sv = _spectrum(z_or_sv, singular_values, center, normalize)
    lam = (sv / sv.max()) ** 2  # scale-free; dividing before squaring avoids over/underflow of sigma^2
    return float(np.sum(lam) ** 2 / np.sum(lam**2))


def std_normalized(z: Any) -> float:
    """Mean over dims of the std of l2-normalised embeddings (SimSiam, Chen & He 2021, Sec. 4.1; Jing et al. 2022).

    Rows are mapped to ``z_i / max(||z_i||, 1e-12)`` (``torch.nn.functional.normalize``), then the
    per-dimension standard deviation over samples (ddof=1, as ``torch.std``) is averaged over the d dims.
    About ``1/sqrt(d)`` for isotropic Gaussian embeddings; 0 for complete collapse.
    """
    x = check_embeddings(z)
    m = np.max(np.abs(x), axis=1, keepdims=True)
    norm = m * np.linalg.norm(x / np.where(m > 0, m, 1.0), axis=1, keepdims=True)  # no overflow for huge rows
    x = x / np.maximum(norm, TORCH_NORMALIZE_EPS)
    return float(np.mean(np.std(x, axis=0, ddof=1)))


# --------------------------------------------------------------------------------------------------
# alpha-ReQ


def _input_eps(x: Any) -> float:
    dtype = getattr(x, "dtype", None)
    if dtype is not None and np.issubdtype(np.dtype(dtype), np.floating):
        return float(np.finfo(np.dtype(dtype)).eps)
    return float(np.finfo(np.float64).eps)


#: The reference code's fitting range: ``stringer_get_powerlaw(eigen, trange=np.arange(3, 100))`` in
#: github.com/kumarkrishna/fastssl ``scripts/train_model.py`` (0-based indices 3..99), i.e. ranks k = 4..100.
ALPHA_REQ_K_RANGE = (4, 100)


class AlphaReQ(NamedTuple):
    """Result of :func:`alpha_req`: the power-law exponent, the R^2 of the log-log fit, and the ranks fitted."""

    alpha: float
    r2: float
    k_min: int
    k_max: int


def parse_k_range(text: str) -> tuple[int, int]:
    """Parse a fitting range ``"K_MIN:K_MAX"`` (1-based ranks, inclusive), e.g. ``"4:100"``."""
    try:
        lo, hi = (int(t) for t in str(text).split(":"))
    except ValueError:
        raise LinsimError(f"a fitting range must be K_MIN:K_MAX (two integers, e.g. 4:100), found {text!r}") from None
    if not 1 <= lo < hi:
        raise LinsimError(f"a fitting range K_MIN:K_MAX needs 1 <= K_MIN < K_MAX, found {text!r}")
    return lo, hi


def alpha_req(
    z_or_sv: Any,
    singular_values: bool = False,
    k_range: tuple[int, int] | None = ALPHA_REQ_K_RANGE,
    center: bool = True,
    normalize: bool = False,
) -> AlphaReQ:
    """alpha-ReQ (Agrawal et al. 2022; Stringer & Pachitariu 2018 fit): lambda_k ~ k^-alpha by LS on log-log, weights 1/k.

    lambda = sigma^2 / sum sigma^2 (PCA explained-variance ratio of the centred features). The fit uses the
    1-based ranks k = k_min..k_max (inclusive) of ``k_range``. The default is the reference code's range
    k = 4..100 (``ALPHA_REQ_K_RANGE``); the exponent depends strongly on this choice (docs/metrics.md).
    k_max is clipped to the numerical rank (sigma_k > sigma_1 * max(N, d) * eps, numpy's ``matrix_rank``
    rule, eps the machine epsilon of the input's dtype: float32 spectra such as Li et al.'s have a round-off
    floor near 1e-7 sigma_1), because log(0) is undefined and round-off is not a power law; ``k_range=None``
    fits every rank 1..rank. R^2 is the unweighted coefficient of determination of log lambda over the SAME
    ranks as the fit (the reference code takes it over k = 5..min(500, n-10) instead); it is 1.0 when the
    fitted log-values are all equal, which a constant, alpha = 0, fits exactly. The ranks actually fitted are
    returned as ``k_min``, ``k_max``.
    """
    s = _spectrum(z_or_sv, singular_values, center, normalize)
    lam = (s / s[0]) ** 2  # divide before squaring: no over/underflow for extreme scales
    lam = lam / np.sum(lam)
    n_rows = 0 if singular_values else int(np.shape(z_or_sv)[0])
    tol = s[0] * max(n_rows, s.size) * _input_eps(z_or_sv)
    rank = int(np.count_nonzero(s > tol))
    if k_range is None:
        k_min, k_max = 1, rank
    else:
        try:
            k_min, k_max = (int(k) for k in k_range)
        except (TypeError, ValueError):
            raise LinsimError(f"k_range must be two integers (k_min, k_max), found {k_range!r}") from None
        if not 1 <= k_min < k_max:
            raise LinsimError(f"k_range must satisfy 1 <= k_min < k_max, found {k_range!r}")
        k_max = min(k_max, rank)
    if k_max - k_min + 1 < 2:
        raise LinsimError(
            f"alpha-ReQ needs at least 2 non-zero eigenvalues in its fitting range k = {k_min}..; the spectrum "
            f"has {rank} (pass a range that starts lower, e.g. 1:{max(rank, 2)})"
        )
    k = np.arange(k_min, k_max + 1, dtype=np.float64)
    y = lam[k_min - 1 : k_max]
    logy = np.log(y)
    x = np.stack([-np.log(k), np.ones_like(k)], axis=1)
    w = 1.0 / k
    coef = np.linalg.solve(x.T @ (x * w[:, None]), (x * w[:, None]).T @ logy)
    resid = logy - x @ coef
    ss_res = float(np.sum(resid**2))
    ss_tot = float(np.sum((logy - logy.mean()) ** 2))
    r2 = 1.0 if ss_tot <= 1e-24 * k.size else 1.0 - ss_res / ss_tot
    return AlphaReQ(alpha=float(coef[0]), r2=float(r2), k_min=int(k_min), k_max=int(k_max))


# --------------------------------------------------------------------------------------------------
# all at once


def summarize(
    z_or_sv: Any,
    singular_values: bool = False,
    center: bool = True,
    normalize: bool = False,
    alpha_range: tuple[int, int] | None = ALPHA_REQ_K_RANGE,
) -> dict[str, Any]:
    """All collapse metrics of one representation or spectrum as a dict (see the functions above for sources).

    Keys: ``cev_auc``, ``rankme``, ``participation_ratio``, ``alpha_req``, ``alpha_req_r2``, ``alpha_req_range``
    (the ranks [k_min, k_max] fitted, from ``alpha_range`` clipped to the numerical rank),
    ``std_normalized`` (None for spectra), ``dim`` (embedding dim d, or the spectrum's length), ``n`` (rows;
    None for spectra).
    ``normalize`` applies to the centred spectrum (CEV-AUC, PR, alpha-ReQ) only; RankMe always uses the raw
    ``Z`` and ``std_normalized`` always normalises. ``alpha_req`` is None when fewer than 2 eigenvalues are
    non-zero in the fitting range (a rank-1 representation has no power law to fit).
    """
    if singular_values:
        s = check_spectrum(z_or_sv)
        z = None
        s_raw = s
    else:
        z = check_embeddings(z_or_sv)
        s = check_spectrum(_unit_spectrum(z, center, normalize)[0])
        s_raw = check_spectrum(_unit_spectrum(z, center=False, normalize=False)[0])
    try:
        fit: AlphaReQ | None = (
            alpha_req(z_or_sv, singular_values=True, k_range=alpha_range)
            if z is None
            else alpha_req(z_or_sv, k_range=alpha_range, center=center, normalize=normalize)
        )
    except LinsimError:
        fit = None
    return {
        "cev_auc": cev_auc(s, singular_values=True),
        "rankme": rankme(s_raw, singular_values=True),
        "participation_ratio": participation_ratio(s, singular_values=True),
        "alpha_req": None if fit is None else fit.alpha,
        "alpha_req_r2": None if fit is None else fit.r2,
        "alpha_req_range": None if fit is None else [fit.k_min, fit.k_max],
        "std_normalized": None if z is None else std_normalized(z),
        "dim": int(s.size) if z is None else int(z.shape[1]),
        "n": None if z is None else int(z.shape[0]),
    }


singular_values_fn = singular_values  # the name `singular_values` is shadowed by keyword arguments above
