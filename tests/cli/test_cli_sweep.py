"""`linsim sweep`: happy path with files and plot, the --json schema, resume, and bad input (exit 2, nothing written)."""
from __future__ import annotations

import json

import numpy as np
import pytest
from typer.testing import CliRunner

import linsim.cli.sweep  # noqa: F401  (registers the command)
from linsim.cli._app import app

runner = CliRunner()
ARGS = ["sweep", "--eta", "0:0.2:9", "--alpha-p", "0.5,10", "--sigma2", "0.5", "--chunk-size", "512", "--no-progress"]


def test_happy_path_json_and_resume(tmp_path):
    out = tmp_path / "sw"
    res = runner.invoke(app, [*ARGS, "--out", str(out), "--json"])
    assert res.exit_code == 0, res.output
    summ = json.loads(res.stdout)
    assert summ["grid_shape"] == [9, 2] and summ["dims"] == ["eta", "alpha_p"] and summ["n_points"] == 18
    for key in ("fraction_collapsed", "fraction_converged", "fraction_unresolved"):
        assert 0.0 <= summ[key] <= 1.0
    assert summ["fraction_collapsed"] > 0  # eta = 0.175, 0.2 > eta_c = 1/6
    names = {p.split("/")[-1] for p in summ["files"]}
    assert {"sweep.npz", "sweep.json", "sweep.png"} <= names
    for f in summ["files"]:
        assert (tmp_path / f).exists() or __import__("pathlib").Path(f).exists()
    with np.load(out / "sweep.npz") as z:
        assert z["collapsed"].shape == (9, 2) and list(z["dims"]) == ["eta", "alpha_p"]
        np.testing.assert_array_equal(z["axis_eta"], np.linspace(0, 0.2, 9))
        first = z["p_final"].copy()
    meta = json.loads((out / "sweep.json").read_text())
    assert meta["grid"]["shape"] == [9, 2] and meta["summary"]["n_points"] == 18
    # the same command again resumes from the finished chunk and gives the same numbers
    res = runner.invoke(app, [*ARGS, "--out", str(out), "--json"])
    assert res.exit_code == 0, res.output
    assert json.loads(res.stdout)["chunks_resumed"] == 1
    with np.load(out / "sweep.npz") as z:
        np.testing.assert_array_equal(z["p_final"], first)
    # a different spec into the same folder is refused (exit 2) unless --force
    res = runner.invoke(app, [*ARGS, "--sigma2", "0.3", "--out", str(out)])  # the last --sigma2 wins
    assert res.exit_code == 2 and "different spec" in res.output
    res = runner.invoke(app, [*ARGS, "--sigma2", "0.3", "--out", str(out), "--force", "--json", "--no-plot"])
    assert res.exit_code == 0 and json.loads(res.stdout)["chunks_resumed"] == 0


def test_human_summary(tmp_path):
    res = runner.invoke(app, ["sweep", "--p0", "-0.5:1:5", "--s0", "0.01:0.5:4", "--eta", "0", "--no-progress",
                              "--chunk-size", "512", "--out", str(tmp_path / "b")])
    assert res.exit_code == 0, res.output
    assert "5 p0 x 4 s0 = 20 points" in res.output and "collapsed" in res.output
    assert (tmp_path / "b" / "sweep.png").stat().st_size > 0


@pytest.mark.parametrize("bad", [
    ["--eta", "0:0.2"],                    # malformed grid
    ["--eta", "0:0.2:x"],
    ["--beta", "0,1"],                     # beta must be > 0
    ["--eta", "-1,0.1"],                   # negative weight decay
    ["--eta", "0.1"],                      # nothing swept
    ["--eta", "0,0.1", "--model", "cube"],
    ["--eta", "0,0.1", "--model", "matrix", "--p0", "0.2"],
    ["--eta", "0,0.1", "--chunk-size", "0"],
])
def test_bad_input_exits_2_and_writes_nothing(tmp_path, bad):
    out = tmp_path / "never"
    res = runner.invoke(app, ["sweep", *bad, "--out", str(out), "--no-progress"])
    assert res.exit_code == 2, res.output
    assert res.output.strip().startswith("error:") and len(res.output.strip().splitlines()) == 1
    assert not out.exists()
    assert list(tmp_path.iterdir()) == []
