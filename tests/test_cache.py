"""Cold start: the persistent compilation cache stores the compiled solvers (equinox's runtime checks made
cache-friendly), the cache folder follows the environment, and the checks diffrax would have made on save
times are made on the host instead. Subprocesses, because the cache and EQX_ON_ERROR are set at import."""
from __future__ import annotations

import os
import subprocess
import sys

import pytest

import linsim as ls
from linsim import _cache

SCRIPT = r"""
import os, sys
import linsim as ls
import jax
print(os.environ.get("EQX_ON_ERROR"), jax.config.jax_compilation_cache_dir, jax.config.jax_enable_x64)
ls.simulate(ls.Config(stats=ls.Stats.isotropic(2, 0.5), solver=ls.Solver(t_max=5.0, n_save=3)))
"""


def _run(env_extra: dict) -> str:
    drop = ("EQX_ON_ERROR", "LINSIM_CACHE_DIR", "JAX_COMPILATION_CACHE_DIR", "JAX_ENABLE_X64")
    env = {k: v for k, v in os.environ.items() if k not in drop}
    env.update(env_extra, JAX_PLATFORMS="cpu")
    out = subprocess.run([sys.executable, "-c", SCRIPT], env=env, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    return out.stdout.split("\n")[0]


def test_the_solver_is_written_to_the_cache(tmp_path):
    folder = tmp_path / "cache"
    line = _run({"LINSIM_CACHE_DIR": str(folder)})
    assert line == f"nan {folder} True"
    names = [p.name for p in folder.iterdir()]
    # with equinox's default host-callback checks JAX refuses to write this entry
    assert any(n.startswith("jit_solve_adaptive") for n in names), names


def test_user_settings_win(tmp_path):
    assert _run({"LINSIM_CACHE_DIR": "off", "EQX_ON_ERROR": "raise"}) == "raise None True"


def test_cache_dir_follows_the_environment(tmp_path, monkeypatch):
    monkeypatch.setenv("LINSIM_CACHE_DIR", str(tmp_path / "c"))
    assert _cache.cache_dir() == tmp_path / "c"
    monkeypatch.setenv("LINSIM_CACHE_DIR", "off")
    assert _cache.cache_dir() is None
    monkeypatch.delenv("LINSIM_CACHE_DIR")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert _cache.cache_dir() == tmp_path / "xdg" / "linsim" / "jax"


@pytest.mark.parametrize("ts", [[0.0, 2.0, 1.0], [0.0], [0.0, float("nan")], [[0.0, 1.0]], ["a", "b"]])
def test_bad_save_times_are_refused_on_the_host(ts):
    with pytest.raises(ls.LinsimError, match="ts must"):
        ls.simulate(ls.Config(stats=ls.Stats.isotropic(2, 0.5)), ts=ts)


def test_import_linsim_is_light_and_help_needs_no_jax():
    # ``import linsim`` and ``linsim --help`` must not load JAX (cold start); float64 is still on once it is
    code = ("import sys, linsim, linsim.cli; assert 'jax' not in sys.modules, 'jax imported';"
            "import jax.numpy as jnp; assert jnp.ones(1).dtype == jnp.float64; print('ok')")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0 and out.stdout.strip() == "ok", out.stderr
