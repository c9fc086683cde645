"""One exit-status convention for every command (linsim.cli._app, docs/outputs_and_errors.md): 0 ok (collapse
is a result), 2 bad input, 3 diverged, 4 stopped at max_steps, 5 output not written; simulate and sweep alike,
and a sweep's fractions add up to 100%."""
from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from linsim.cli import app
from linsim.cli._app import EXIT_BAD_INPUT, EXIT_DIVERGED, EXIT_INCOMPLETE, EXIT_OK

runner = CliRunner()
SWEEP = ["sweep", "--eta", "0,0.1", "--t-max", "5", "--no-progress", "--no-plot", "--json"]


def invoke(*args):
    return runner.invoke(app, [str(a) for a in args])


def fractions_add_up(summary):
    keys = ("fraction_collapsed", "fraction_converged", "fraction_unresolved", "fraction_diverged", "fraction_max_steps")
    assert sum(summary[k] for k in keys) == pytest.approx(1.0, abs=1e-12)


def test_sweep_with_diverged_points_exits_3_and_reports_every_fraction(tmp_path):
    res = invoke(*SWEEP, "--s0", "0.1,1e13", "--out", tmp_path / "d")  # w0 = 3e6 > the divergence bound 1e6
    assert res.exit_code == EXIT_DIVERGED, res.output
    summary = json.loads(res.stdout)
    assert summary["n_diverged"] == 2 and summary["fraction_diverged"] == 0.5
    fractions_add_up(summary)
    assert "diverged: 2 of 4 grid points" in res.stderr and (tmp_path / "d" / "sweep.npz").exists()


def test_sweep_stopped_at_max_steps_exits_4_like_simulate(tmp_path):
    res = invoke(*SWEEP, "--p0", "900", "--s0", "1e5", "--out", tmp_path / "m")  # stiff: 200 000 steps are not enough
    assert res.exit_code == EXIT_INCOMPLETE, res.output
    summary = json.loads(res.stdout)
    assert summary["fraction_max_steps"] == 1.0
    fractions_add_up(summary)
    assert res.stderr.startswith("incomplete: 2 of 2 grid points stopped at max_steps")
    # simulate's exit 4 for the same condition: tests/test_messages.py (--init-scale 100)


@pytest.mark.parametrize("args,code", [
    (["--eta", 0.3, "--t-max", 400], EXIT_OK),                                          # all collapse: a result
    (["--solver", "euler", "--dt", 1, "--t-max", 50, "--init-scale", 3], EXIT_DIVERGED),
    (["--noise", "sgd", "--seeds", 3, "--batch", 4, "--lr", 0.5, "--t-max", 20, "--init-scale", 2], EXIT_DIVERGED),
    (["--eta", -1], EXIT_BAD_INPUT),
])
def test_simulate_statuses(tmp_path, args, code):
    res = invoke("simulate", *args, "--no-plot", "--out", tmp_path / "r")
    assert res.exit_code == code, res.output
    if code == EXIT_DIVERGED:
        assert "diverged:" in res.output and (tmp_path / "r" / "summary.json").exists()
