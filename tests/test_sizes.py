"""Size limits (docs/outputs_and_errors.md): memory is estimated before anything large is allocated and a run
that would not fit is refused with exit 2, naming the estimate, the limit and the option; the per-mode
model's cost is linear in n (no n x n matrix is ever built)."""
from __future__ import annotations

import numpy as np
import pytest
from typer.testing import CliRunner

import linsim as ls
from linsim.cli import app
from linsim.errors import LinsimError
from linsim.limits import fmt_bytes, memory_limit, simulation_terms

runner = CliRunner()


def invoke(*args):
    return runner.invoke(app, [str(a) for a in args])


@pytest.mark.parametrize("args,option", [
    (["--n-save", 1_000_000_000], "--n-save"),
    (["--noise", "sgd", "--seeds", 10_000_000], "--n-save, --seeds"),
    (["--noise", "sgd", "--batch", 1_000_000_000], "--batch"),
    (["--model", "matrix", "--n", 100_000, "--t-max", 1], "--n"),
    (["--noise", "sde", "--model", "matrix", "--n", 3000, "--seeds", 64, "--t-max", 1, "--n-save", 2], "--seeds or --n"),
])
def test_too_large_simulations_are_refused_with_the_limit_and_the_option(tmp_path, args, option):
    res = invoke("simulate", *args, "--out", tmp_path / "r")
    assert res.exit_code == 2, res.output
    line = res.output.strip()
    assert line.count("\n") == 0 and "more than the limit of" in line and f"lower {option}" in line
    assert "LINSIM_MEMORY_LIMIT" in line
    assert list(tmp_path.iterdir()) == []


def test_spectral_sizes_are_refused_before_building_anything(tmp_path):
    res = invoke("spectral", "vicreg", "--n-per-class", 1_000_000, "--out", tmp_path / "r")
    assert res.exit_code == 2 and "N x N graph" in res.output and "--n-per-class" in res.output
    res = invoke("spectral", "vicreg", "--input-dim", 100_000, "--out", tmp_path / "r")
    assert res.exit_code == 2 and "D x D" in res.output and "--input-dim" in res.output
    assert list(tmp_path.iterdir()) == []


def test_memory_limit_from_the_environment(monkeypatch):
    monkeypatch.setenv("LINSIM_MEMORY_LIMIT", "2M")
    assert memory_limit()[0] == 2 * 1024**2
    cfg = ls.Config(stats=ls.Stats.isotropic(2000, 0.5))  # ~14 MB of saved states
    with pytest.raises(LinsimError, match=r"limit of 2.0 MiB \(LINSIM_MEMORY_LIMIT=2M\)"):
        ls.simulate(cfg)
    monkeypatch.setenv("LINSIM_MEMORY_LIMIT", "lots")
    with pytest.raises(LinsimError, match="not a size"):
        memory_limit()
    assert fmt_bytes(80 * 1024**3) == "80.0 GiB"


def test_per_mode_cost_is_linear_in_n():
    # The per-mode model never builds an n x n matrix: statistics are kept as diagonals, the estimate is
    # linear in n, and a run of 50 000 modes allocates nothing quadratic (dense X alone would be 20 GB).
    small, big = (sum(b for b, _ in simulation_terms(ls.Config(stats=ls.Stats.isotropic(n, 0.5))).values())
                  for n in (1000, 2000))
    assert big == pytest.approx(2 * small, rel=1e-12)
    cfg = ls.Config(stats=ls.Stats.isotropic(50_000, 0.5), solver=ls.Solver(t_max=0.5, n_save=2))
    traj = ls.simulate(cfg)
    assert traj.p.shape == (2, 50_000)
    assert cfg.stats._X is None and cfg.stats._Xp is None  # never materialised
    assert ls.Stats.isotropic(3, 0.5).X.tolist() == np.eye(3).tolist()  # still built on demand (matrix model)
