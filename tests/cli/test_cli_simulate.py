"""`linsim simulate` and `linsim fixed-points`: happy path, JSON schema, the issue's acceptance runs, bad input."""
from __future__ import annotations

import json

import numpy as np
import pytest
from typer.testing import CliRunner

from linsim.cli import app
from linsim.io import output_names

runner = CliRunner()


def invoke(*args):
    return runner.invoke(app, [str(a) for a in args])


def test_simulate_default_writes_all_files(tmp_path):
    out = tmp_path / "run"
    res = invoke("simulate", "--out", out)
    assert res.exit_code == 0, res.output
    assert set(output_names(out)) == {"trajectory.npz", "config.json", "summary.json", "run.png"}
    assert "modes collapsed" in res.output and "p+ = 0.623927" in res.output
    cfg = json.loads((out / "config.json").read_text())
    assert cfg["hyper"]["eta"] == 0.04 and cfg["linsim_version"]
    with np.load(out / "trajectory.npz") as z:
        assert z["p"].shape == z["s"].shape == (301, 8)


def test_simulate_json_schema_and_acceptance_p_plus(tmp_path):
    # Issue 2: every surviving mode ends within 1e-3 of p+ = 0.6239 for eta=0.04, beta=0.5, sigma2=0.5.
    res = invoke("simulate", "--eta", 0.04, "--beta", 0.5, "--sigma2", 0.5, "--out", tmp_path / "r", "--json")
    assert res.exit_code == 0, res.output
    summary = json.loads(res.output)
    assert set(summary) >= {"modes", "invariants", "config", "status", "n_collapsed"}
    assert summary["invariants"]["balance_residual"] < 1e-7
    modes = summary["modes"]
    assert len(modes) == 8
    for m in modes:
        assert set(m) >= {"p", "s", "tau", "collapsed"}
        assert isinstance(m["collapsed"], bool)
    survivors = [m for m in modes if not m["collapsed"]]
    assert survivors, "the default init should leave some modes alive"
    p_plus = (1 + np.sqrt(1 - 4 * 0.04 * 1.5)) / 3
    assert abs(p_plus - 0.6239) < 1e-4
    for m in survivors:
        assert abs(m["p"] - p_plus) < 1e-3
        assert abs(m["tau"] - 1) < 1e-3
    # summary is sorted by s, descending
    s = [m["s"] for m in modes]
    assert s == sorted(s, reverse=True)
    assert json.loads((tmp_path / "r" / "summary.json").read_text())["modes"] == modes


def test_simulate_above_eta_c_collapses_everything(tmp_path):
    res = invoke("simulate", "--eta", 0.3, "--sigma2", 0.5, "--out", tmp_path / "r", "--json")
    assert res.exit_code == 0, res.output
    summary = json.loads(res.output)
    assert summary["n_collapsed"] == summary["n_modes"] == 8
    assert all(m["collapsed"] and m["collapse_time"] is not None for m in summary["modes"])


def test_eta_zero_balance_residual_below_1e8(tmp_path):
    # eta = 0: Wp^T Wp - alpha_p W W^T is conserved exactly (Tian et al. 2021, Theorem 1); rtol 1e-10 keeps the drift < 1e-8.
    res = invoke("simulate", "--eta", 0, "--alpha-p", 2, "--model", "matrix", "--n", 5, "--n1", 4, "--t-max", 50,
                 "--rtol", 1e-11, "--atol", 1e-13, "--out", tmp_path / "r", "--json", "--no-plot")
    assert res.exit_code == 0, res.output
    assert json.loads(res.output)["invariants"]["balance_residual"] < 1e-8


def test_fixed_points_json():
    res = invoke("fixed-points", "--eta", 0.04, "--sigma2", 0.5, "--alpha-p", 1, "--json")
    assert res.exit_code == 0, res.output
    d = json.loads(res.output)
    assert abs(d["p_plus"] - 0.6239266) < 1e-6 and abs(d["p_minus"] - 0.0427401) < 1e-6
    assert abs(d["eta_c"] - 1 / 6) < 1e-12
    assert abs(d["s_plus"] - d["p_plus"] ** 2) < 1e-12
    assert d["stability"]["p_plus"]["stability"] == "stable"
    assert d["stability"]["p_minus"]["stability"] == "saddle"
    assert d["stability"]["origin"]["stability"] == "stable"


def test_fixed_points_above_eta_c_has_none():
    res = invoke("fixed-points", "--eta", 0.2, "--sigma2", 0.5, "--json")
    d = json.loads(res.output)
    assert res.exit_code == 0 and d["exists"] is False and d["p_plus"] is None


def test_diverging_run_exits_3(tmp_path):
    # Euler with a step far beyond stability blows up: reported as diverged with exit code 3.
    res = invoke("simulate", "--solver", "euler", "--dt", 5, "--init-scale", 3, "--t-max", 200,
                 "--out", tmp_path / "r", "--no-plot")
    assert res.exit_code == 3, res.output
    assert "diverged" in res.output
    assert "diverged (t = " in res.output  # the table marks the modes that blew up
    assert json.loads((tmp_path / "r" / "summary.json").read_text())["diverged"] is True


def _write_stats(path, **arrays):
    np.savez(path, **arrays)
    return path


BAD = [
    (["--eta", -0.1], "eta"),
    (["--eta-p", -1], "eta_p"),
    (["--beta", 0], "beta"),
    (["--beta", -1], "beta"),
    (["--alpha-p", 0], "alpha_p"),
    (["--sigma2", -0.5], "sigma2"),
    (["--model", "bogus"], "model"),
    (["--model", "matrix", "--n", 3, "--n1", 4], "n1"),
    (["--predictor", "nope"], "predictor"),
    (["--solver", "rk99"], "solver"),
    (["--t-max", 0], "t_max"),
    (["--init-scale", 0], "init scale"),
    (["--n", 0], "n must be"),
    (["--stats", "missing.npz"], "does not exist"),
]


@pytest.mark.parametrize("args,needle", BAD)
def test_bad_input_exits_2_and_writes_nothing(tmp_path, args, needle):
    out = tmp_path / "r"
    res = invoke("simulate", *args, "--out", out)
    assert res.exit_code == 2, res.output
    assert needle in res.output
    assert res.output.strip().count("\n") == 0  # exactly one line
    assert not out.exists() and list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(
    "arrays,needle",
    [
        (dict(X=np.array([[1.0, 2.0], [2.0, 1.0]]), Xp=np.eye(2)), "positive semi-definite"),
        (dict(X=np.array([[1.0, 0.5], [0.0, 1.0]]), Xp=np.eye(2)), "symmetric"),
        (dict(X=np.eye(2), Xp=np.eye(3)), "2x2"),
        (dict(x=np.ones(3), xp=-np.ones(3)), ">= 0"),
        (dict(foo=np.ones(3)), "must hold arrays"),
    ],
)
def test_bad_stats_file_exits_2(tmp_path, arrays, needle):
    path = _write_stats(tmp_path / "stats.npz", **arrays)
    res = invoke("simulate", "--stats", path, "--model", "matrix", "--out", tmp_path / "r")
    assert res.exit_code == 2, res.output
    assert needle in res.output
    assert not (tmp_path / "r").exists()


def test_stats_file_matrix_model(tmp_path):
    rng = np.random.default_rng(1)
    A = rng.standard_normal((4, 4))
    path = _write_stats(tmp_path / "stats.npz", X=A @ A.T / 4 + np.eye(4), Xp=0.3 * np.eye(4))
    res = invoke("simulate", "--stats", path, "--model", "matrix", "--t-max", 20, "--out", tmp_path / "r", "--json", "--no-plot")
    assert res.exit_code == 0, res.output
    assert json.loads(res.output)["config"]["stats"]["kind"] == "matrix"


def test_existing_output_needs_force(tmp_path):
    out = tmp_path / "r"
    out.mkdir()
    (out / "keep.txt").write_text("x")
    res = invoke("simulate", "--out", out, "--no-plot")
    assert res.exit_code == 2 and "keep.txt" in res.output
    assert (out / "keep.txt").exists()
    # --force never deletes what linsim did not write: refused, the folder untouched
    res = invoke("simulate", "--out", out, "--no-plot", "--force")
    assert res.exit_code == 2 and "did not write" in res.output
    assert [p.name for p in out.iterdir()] == ["keep.txt"]
    # linsim's own run folder: refused without --force, replaced with it
    mine = tmp_path / "mine"
    assert invoke("simulate", "--out", mine, "--no-plot", "--t-max", 5).exit_code == 0
    res = invoke("simulate", "--out", mine, "--no-plot", "--t-max", 5)
    assert res.exit_code == 2 and "--force" in res.output
    res = invoke("simulate", "--out", mine, "--no-plot", "--t-max", 5, "--force")
    assert res.exit_code == 0 and set(output_names(mine)) == {"config.json", "summary.json", "trajectory.npz"}


def test_same_seed_same_numbers(tmp_path):
    a = invoke("simulate", "--seed", 3, "--out", tmp_path / "a", "--no-plot", "--json")
    b = invoke("simulate", "--seed", 3, "--out", tmp_path / "b", "--no-plot", "--json")
    with np.load(tmp_path / "a" / "trajectory.npz") as za, np.load(tmp_path / "b" / "trajectory.npz") as zb:
        for k in za.files:
            np.testing.assert_array_equal(za[k], zb[k])
    assert json.loads(a.output)["modes"] == json.loads(b.output)["modes"]


def test_help_keeps_literal_brackets():
    res = invoke("simulate", "--help")
    assert res.exit_code == 0 and "[default: eta]" in " ".join(res.output.split())


def test_killed_sgd_ensemble_finishes_when_rerun(tmp_path, monkeypatch):
    """`simulate --noise sgd` checkpoints after its calls; killed right after a checkpoint (here: an exception in
    the 7th save), the same command continues from it and writes what an uninterrupted run writes, bit for bit;
    the checkpoint is then removed. Another configuration for the same --out is refused (exit 2) unless --force."""
    import linsim.cli.simulate as cs
    from linsim.dynamics import sgd_checkpoint

    monkeypatch.setattr(cs, "CHECKPOINT_SECONDS", 0.0)
    args = ["simulate", "--model", "matrix", "--n", 3, "--noise", "sgd", "--batch", 8, "--seeds", 2, "--lr", 0.05,
            "--t-max", 4, "--momentum", 0.5, "--no-plot"]
    whole = invoke(*args, "--out", tmp_path / "whole")
    assert whole.exit_code == 0, whole.output
    real_save = sgd_checkpoint.save

    def killed_after_7(path, cfg, done, calls, saved):
        real_save(path, cfg, done, calls, saved)
        if done == 7:
            raise KeyboardInterrupt

    out = tmp_path / "cut"
    monkeypatch.setattr(sgd_checkpoint, "save", killed_after_7)
    res = invoke(*args, "--out", out)
    assert res.exit_code == 130 and not out.exists()  # interrupted: nothing written to --out
    ckpt = sgd_checkpoint.path_for(out)
    assert ckpt.is_file()
    monkeypatch.setattr(sgd_checkpoint, "save", real_save)
    other = invoke(*args[:-1], "--seeds", 3, "--no-plot", "--out", out)  # another config, same --out
    assert other.exit_code == 2 and "unfinished SGD run of another configuration" in other.output and ckpt.is_file()
    from linsim.dynamics import stochastic as sto

    calls, real_calls = [], sto._over_seed_groups
    monkeypatch.setattr(sto, "_over_seed_groups", lambda *a: calls.append(1) or real_calls(*a))
    res = invoke(*args, "--out", out)
    assert res.exit_code == 0, res.output
    assert "after call 7 of 20" in res.output and not ckpt.exists()
    assert len(calls) == 13  # only the calls after the checkpoint ran again
    with np.load(tmp_path / "whole" / "ensemble.npz") as a, np.load(out / "ensemble.npz") as b:
        assert sorted(a.files) == sorted(b.files)
        for k in a.files:
            np.testing.assert_array_equal(a[k], b[k], err_msg=k)


def test_unreadable_sgd_checkpoint_is_a_clear_error(tmp_path):
    from linsim.dynamics import sgd_checkpoint

    out = tmp_path / "r"
    sgd_checkpoint.path_for(out).write_bytes(b"not an npz")
    res = invoke("simulate", "--noise", "sgd", "--batch", 8, "--t-max", 0.5, "--no-plot", "--out", out)
    assert res.exit_code == 2 and "could not be read" in res.output and "delete it" in res.output
    assert res.output.count("\n") == 1 and not out.exists()
