"""Memory estimates made before anything large is allocated (docs/outputs_and_errors.md, size limits).

A run whose estimate exceeds the limit is refused with a LinsimError (exit 2) that names the estimate, the
limit and the option to lower. The limit is ``LINSIM_MEMORY_LIMIT`` (bytes, or a number with a K/M/G/T
suffix, e.g. ``64G``) if set, else half of this machine's physical memory. Estimates are deliberately
rough upper bounds (a few copies of every array a run keeps), not measurements.
"""
from __future__ import annotations

import os
import re

from linsim.errors import LinsimError

ENV = "LINSIM_MEMORY_LIMIT"
_UNITS = {"": 1, "K": 1024, "M": 1024**2, "G": 1024**3, "T": 1024**4}


def fmt_bytes(n: float) -> str:
    """Human-readable size in binary units (``74.5 GiB``)."""
    for unit in ("B", "KiB", "MiB", "GiB", "TiB", "PiB"):
        if abs(n) < 1024 or unit == "PiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} PiB"  # pragma: no cover


def memory_limit() -> tuple[float, str]:
    """(limit in bytes, where it comes from): ``LINSIM_MEMORY_LIMIT`` or half the physical memory."""
    text = os.environ.get(ENV, "").strip()
    if text:
        m = re.fullmatch(r"(\d+(?:\.\d+)?)\s*([KMGT]?)(?:i?B)?", text, flags=re.IGNORECASE)
        if not m:
            raise LinsimError(f"{ENV}={text!r} is not a size (bytes, or a number with K/M/G/T, e.g. 64G)")
        return float(m.group(1)) * _UNITS[m.group(2).upper()], f"{ENV}={text}"
    try:
        total = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):  # pragma: no cover - not POSIX
        total = 16 * 1024**3
    return total / 2, f"half of this machine's memory; set {ENV} to change it"


def check_memory(terms: dict[str, tuple[float, str]], what: str) -> None:
    """Refuse (LinsimError) if the summed estimate exceeds :func:`memory_limit`.

    ``terms``: name -> (bytes, the options that set it); the message names the largest term's options.
    """
    need = sum(b for b, _ in terms.values())
    limit, source = memory_limit()
    if need > limit:
        name, (_, options) = max(terms.items(), key=lambda kv: kv[1][0])
        raise LinsimError(f"{what} would need about {fmt_bytes(need)} of memory (mostly {name}), more than the "
                          f"limit of {fmt_bytes(limit)} ({source}): lower {options}")


def simulation_terms(cfg) -> dict[str, tuple[float, str]]:
    """Memory estimate of one ``simulate`` / ``simulate_sgd`` / ``simulate_sde`` run of ``cfg``, by term."""
    s, nz = cfg.solver, cfg.noise
    n, n1 = cfg.stats.n, cfg.out_dim
    matrix = cfg.model == "matrix"
    discrete = s.method == "euler" or nz.kind != "none" or cfg.hyper.predictor in ("directpred", "directcopy")
    n_save = s.n_save
    if discrete:  # saves fall on steps: at most one per step
        n_save = min(n_save, max(1, int(round(s.t_max / s.dt))) + 1)
    seeds = nz.seeds if nz.kind != "none" else 1
    state = (2 * n1 * n + n1 * n1) if matrix else 3 * n
    derived = (3 * n1 + 4 * n1 * n1) if matrix else 3 * n  # p, s, tau (+ F, eigenvectors, F_hat per save)
    per_save = 8.0 * (4 * state + 2 * derived)  # the solver's buffer, numpy copies, the saved file
    terms = {"saved states": (per_save * n_save * seeds, "--n-save" + (", --seeds" if seeds > 1 else "") + ", --n")}
    if matrix:
        terms["statistics"] = (8.0 * 8 * n * n, "--n")
    if nz.kind == "sgd":
        terms["minibatches"] = (8.0 * 10 * seeds * nz.batch * max(n, n1), "--batch or --seeds")
    if nz.kind == "sde":
        terms["noise matrices"] = (8.0 * 10 * seeds * (4 * n * n + state), "--seeds or --n")
    return terms


def check_simulation(cfg) -> None:
    """Refuse a simulation whose memory estimate exceeds the limit (see the module docstring)."""
    check_memory(simulation_terms(cfg), "this run")
