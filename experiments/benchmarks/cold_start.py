"""Benchmark: cold start of the CLI, sides interleaved (each a fresh process).

  help        ``linsim --help`` vs ``python -c "import jax"`` (goal: under half);
  arg error   ``linsim sweep --eta 0:0.2`` (a malformed grid, exit 2) vs ``import jax``;
  simulate    ``linsim simulate --no-plot`` with an empty compilation cache vs the same command again with the
              cache it filled (goal: the second run skips compiling the solver);
  fixed-points the number of XLA compilations of ``linsim fixed-points`` (JAX_LOG_COMPILES).
Medians over ``--rounds``; prints the ratios, the core count and the load average.

Rerun: ``python experiments/benchmarks/cold_start.py [--rounds 5]``. Result: see docs/benchmarks.md.
"""
from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time

import numpy as np

from linsim.host import cores


def _time(cmd: list[str], env: dict | None = None) -> float:
    t0 = time.perf_counter()
    subprocess.run(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=600)
    return time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=5)
    a = ap.parse_args()
    linsim = shutil.which("linsim") or "linsim"
    py = sys.executable
    tmp = tempfile.mkdtemp()
    print(f"{cores()} cores available, load average {os.getloadavg()[0]:.1f}")
    t = {k: [] for k in ("help", "jax", "argerr", "sim_cold", "sim_warm")}
    for r in range(a.rounds):
        t["help"].append(_time([linsim, "--help"]))
        t["jax"].append(_time([py, "-c", "import jax"]))
        t["argerr"].append(_time([linsim, "sweep", "--eta", "0:0.2"]))
        cache = os.path.join(tmp, f"cache{r}")
        env = dict(os.environ, LINSIM_CACHE_DIR=cache)
        env.pop("JAX_COMPILATION_CACHE_DIR", None)
        out = os.path.join(tmp, f"run{r}")
        cmd = [linsim, "simulate", "--no-plot", "--force", "--out", out]
        t["sim_cold"].append(_time(cmd, env))
        t["sim_warm"].append(_time(cmd, env))
    med = {k: float(np.median(v)) for k, v in t.items()}
    env = dict(os.environ, JAX_LOG_COMPILES="1")
    log = subprocess.run([linsim, "fixed-points"], env=env, capture_output=True, text=True, timeout=600).stderr
    n_comp = sum(1 for line in log.splitlines() if line.startswith("Compiling "))
    shutil.rmtree(tmp, ignore_errors=True)
    print(f"linsim --help              {med['help']:.2f} s   vs import jax {med['jax']:.2f} s: ratio "
          f"{med['help'] / med['jax']:.2f} (goal < 0.5)")
    print(f"linsim sweep --eta 0:0.2   {med['argerr']:.2f} s   ratio to import jax {med['argerr'] / med['jax']:.2f}")
    print(f"linsim simulate --no-plot  {med['sim_cold']:.2f} s with an empty cache, {med['sim_warm']:.2f} s with it "
          f"filled: ratio {med['sim_warm'] / med['sim_cold']:.2f}")
    print(f"linsim fixed-points: {n_comp} XLA compilations; load now {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
