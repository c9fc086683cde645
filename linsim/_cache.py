"""Cold start: a persistent JAX compilation cache in the user's cache directory, and equinox's runtime checks
in a form that lets compiled solvers be cached.

Cache. Compiled XLA executables are stored under ``$LINSIM_CACHE_DIR`` (default
``$XDG_CACHE_HOME/linsim/jax``, i.e. ``~/.cache/linsim/jax``), so a second run with the same shapes skips
compilation (tracing still runs). ``LINSIM_CACHE_DIR=off`` turns it off; a cache directory the user already
gave JAX (``JAX_COMPILATION_CACHE_DIR`` or ``jax_compilation_cache_dir``) is left alone; an unwritable
directory just means no cache. ``import linsim`` does not import JAX: when JAX is not imported yet, float64
and the cache are set through JAX's environment variables (``JAX_ENABLE_X64``, ``JAX_COMPILATION_CACHE_DIR``),
which JAX reads when it is imported; otherwise through ``jax.config``.

Runtime checks. JAX does not write a persistent cache entry for a program with host callbacks, and equinox's
runtime checks (``eqx.error_if``, used by diffrax to check its arguments) are host callbacks under the
default ``EQX_ON_ERROR=raise``. linsim sets ``EQX_ON_ERROR=nan`` (unless the user set it) before equinox is
imported: a failed check then makes the checked values NaN instead of raising. No error detection is lost:
the checks in linsim's compiled solvers are diffrax's argument checks (dt0 sign, save times increasing and
inside [t0, t1]), which linsim validates on the host first (:class:`linsim.config.Solver`,
:func:`linsim.solve.simulate`), and solver failures come back as result codes (``throw=False``) that linsim
turns into a run status; a NaN from a check that still fired would be reported as a non-finite (diverged)
run, never as a result.
"""
from __future__ import annotations

import os
import sys
from pathlib import Path

_OFF = ("", "0", "off", "none", "false")


def cache_dir() -> Path | None:
    """The cache folder: $LINSIM_CACHE_DIR, else $XDG_CACHE_HOME/linsim/jax or ~/.cache/linsim/jax; None if off."""
    value = os.environ.get("LINSIM_CACHE_DIR")
    if value is not None:
        return None if value.strip().lower() in _OFF else Path(value).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "linsim" / "jax"


def quiet_runtime_checks() -> None:
    """Make equinox's runtime checks NaN-producing instead of host callbacks (call before importing equinox)."""
    os.environ.setdefault("EQX_ON_ERROR", "nan")


def enable(jax) -> Path | None:
    """Point JAX's persistent compilation cache at :func:`cache_dir` (unless off or already configured)."""
    folder = cache_dir()
    if folder is None or jax.config.jax_compilation_cache_dir:
        return None
    try:
        folder.mkdir(parents=True, exist_ok=True)
        if not os.access(folder, os.W_OK):
            return None
    except OSError:
        return None
    jax.config.update("jax_compilation_cache_dir", str(folder))
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.05)  # every solver, not trivia
    return folder


def configure_jax() -> None:
    """float64 and the compilation cache for JAX, without importing it: through JAX's environment variables
    (read when jax is imported) if it is not imported yet, else through ``jax.config``."""
    jax = sys.modules.get("jax")
    if jax is not None and hasattr(jax, "config"):
        jax.config.update("jax_enable_x64", True)
        enable(jax)
        return
    os.environ["JAX_ENABLE_X64"] = "1"
    folder = cache_dir()
    if folder is None or os.environ.get("JAX_COMPILATION_CACHE_DIR"):
        return
    try:
        folder.mkdir(parents=True, exist_ok=True)
        if not os.access(folder, os.W_OK):
            return
    except OSError:
        return
    os.environ["JAX_COMPILATION_CACHE_DIR"] = str(folder)
    os.environ.setdefault("JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS", "0.05")
