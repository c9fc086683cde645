"""`linsim bridge train` / `linsim bridge show`: a tiny end-to-end run, resume and force, bad input (exit 2,
one line, nothing written), a diverging run (exit 3)."""
from __future__ import annotations

import json

import numpy as np
import pytest
from typer.testing import CliRunner

from linsim.bridge import data as D
from linsim.cli import app

from conftest import TINY

runner = CliRunner()
TINY_ARGS = ["--batch-size", TINY["batch_size"], "--image-size", TINY["image_size"], "--width", TINY["width"],
             "--proj-hidden", TINY["proj_hidden"], "--proj-dim", TINY["proj_dim"], "--eval-size", TINY["eval_size"],
             "--quiet"]


def invoke(*args):
    return runner.invoke(app, ["bridge", *map(str, args)])


@pytest.fixture(scope="module")
def npz(tmp_path_factory):
    """320 labelled built-in images: a deterministic per-class 260 / 60 train / test split (260 = the tiny runs' size)."""
    path = tmp_path_factory.mktemp("data") / "shapes.npz"
    d = D.builtin_dataset(seed=0, n_train=320, n_test=1)
    np.savez(path, images=d.train_images, labels=d.train_labels)
    return path


@pytest.fixture(scope="module")
def cli_run(tmp_path_factory, npz):
    out = tmp_path_factory.mktemp("cli") / "run"
    res = invoke("train", "--dataset", "npz", "--data-dir", npz, "--epochs", 1, *TINY_ARGS, "--out", out)
    return out, res


def test_train_writes_a_run_and_prints_one_final_line(cli_run, npz):
    out, res = cli_run
    assert res.exit_code == 0, res.output
    assert res.stdout.strip().count("\n") == 0 and str(out) in res.stdout and "1 epochs" in res.stdout
    cfg = json.loads((out / "config.json").read_text())
    assert cfg["train"]["dataset"] == "npz" and cfg["train"]["data_dir"] == str(npz)
    assert cfg["dataset"]["source"] == str(npz.resolve())
    assert [json.loads(line)["epoch"] for line in (out / "metrics.jsonl").read_text().splitlines()] == [0, 1]


def test_resume_continues_and_force_restarts(cli_run, npz):
    out, _ = cli_run
    res = invoke("train", "--resume", "--out", out, "--epochs", 2, "--quiet")  # options come from config.json
    assert res.exit_code == 0, res.output
    assert [json.loads(line)["epoch"] for line in (out / "metrics.jsonl").read_text().splitlines()] == [0, 1, 2]
    res = invoke("train", "--resume", "--out", out, "--epochs", 3, "--lr", 0.5, "--quiet")
    assert res.exit_code == 2 and "keeps its configuration" in res.output
    (out / "notes.txt").write_text("mine")
    (out / "checkpoints" / "best.eqx").write_text("mine too")  # a user's file among the checkpoints
    res = invoke("train", "--dataset", "npz", "--data-dir", npz, "--epochs", 1, *TINY_ARGS, "--out", out, "--force")
    assert res.exit_code == 0, res.output
    assert [json.loads(line)["epoch"] for line in (out / "metrics.jsonl").read_text().splitlines()] == [0, 1]
    assert (out / "notes.txt").read_text() == "mine"  # --force removes only linsim's own files
    assert (out / "checkpoints" / "best.eqx").read_text() == "mine too"
    assert json.loads((out / "checkpoints" / "last.json").read_text())["epoch"] == 1


def test_show_prints_table_and_writes_plots(cli_run):
    out, _ = cli_run
    res = invoke("show", out)
    assert res.exit_code == 0, res.output
    assert "epoch" in res.stdout
    pngs = sorted(out.glob("*.png"))
    assert pngs and all(p.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" for p in pngs)


def test_diverging_run_exits_3(tmp_path, npz):
    out = tmp_path / "nan"
    res = invoke("train", "--dataset", "npz", "--data-dir", npz, "--epochs", 1, *TINY_ARGS, "--lr", 1e10,
                 "--out", out)
    assert res.exit_code == 3, res.output
    assert "diverged" in res.output and "smaller --lr" in res.output
    assert json.loads((out / "summary.json").read_text())["status"] == "nan"


BAD = [
    (["--predictor", "nope"], "unknown predictor"),
    (["--arch", "resnet50"], "unknown arch"),
    (["--lr", -1], "lr must be"),
    (["--views", 1], "views must be"),
    (["--ema", 1.5], "ema must be"),
    (["--no-stop-grad"], "needs the SimSiam target"),
    (["--dataset", "cifar10"], "needs --data-dir"),
    (["--dataset", "npz", "--data-dir", "missing.npz"], "missing.npz"),
    (["--resume"], "--resume needs --out"),
    (["--optimizer", "adam"], "unknown optimizer"),
]


@pytest.mark.parametrize("args,needle", BAD)
def test_bad_input_exits_2_one_line_nothing_written(tmp_path, monkeypatch, args, needle):
    monkeypatch.chdir(tmp_path)
    res = invoke("train", *args, "--quiet")
    assert res.exit_code == 2, res.output
    assert needle in res.output
    assert res.output.strip().count("\n") == 0  # exactly one line
    assert list(tmp_path.iterdir()) == []  # no runs/ folder either


def test_refuses_foreign_or_existing_folders(tmp_path):
    foreign = tmp_path / "foreign"
    foreign.mkdir()
    (foreign / "thesis.tex").write_text("x")
    for extra in ([], ["--force"], ["--resume"]):
        res = invoke("train", "--out", foreign, *extra, "--quiet")
        assert res.exit_code == 2 and str(foreign) in res.output, res.output
    assert [p.name for p in foreign.iterdir()] == ["thesis.tex"]


def test_refuses_existing_run_without_resume_or_force(cli_run):
    out, _ = cli_run
    res = invoke("train", "--out", out, "--quiet")
    assert res.exit_code == 2 and "--resume" in res.output and "--force" in res.output


def test_show_bad_folder_exits_2(tmp_path):
    res = invoke("show", tmp_path / "nothing")
    assert res.exit_code == 2 and res.output.strip().count("\n") == 0


def test_non_numeric_flag_exits_2():
    res = invoke("train", "--epochs", "many")
    assert res.exit_code == 2


def test_cli_flags_reach_the_config(tmp_path, monkeypatch):
    """--probe-train/--probe-test/--collapse-rankme reach TrainConfig, and stl10 defaults to its native 96 px."""
    import linsim.bridge.train as T

    seen = {}

    def fake_train(cfg, out, **kw):
        seen["cfg"] = cfg
        raise KeyboardInterrupt  # stop before any work; the CLI turns this into exit 130

    monkeypatch.setattr(T, "train", fake_train)
    monkeypatch.chdir(tmp_path)
    res = invoke("train", "--probe-train", 100, "--probe-test", 50, "--collapse-rankme", 2.5, "--quiet")
    assert res.exit_code == 130, res.output
    cfg = seen["cfg"]
    assert (cfg.probe_train, cfg.probe_test, cfg.collapse_rankme, cfg.image_size) == (100, 50, 2.5, 32)
    (tmp_path / "stl").mkdir()
    res = invoke("train", "--dataset", "stl10", "--data-dir", tmp_path / "stl", "--quiet")
    assert res.exit_code == 130 and seen["cfg"].image_size == 96
    res = invoke("train", "--dataset", "stl10", "--data-dir", tmp_path / "stl", "--image-size", 64, "--quiet")
    assert res.exit_code == 130 and seen["cfg"].image_size == 64


def test_unwritable_out_is_refused_before_training(tmp_path, monkeypatch):
    """--out under a regular file: one line, exit 2, before any compute (the writability check every command makes)."""
    import linsim.bridge.train as T

    monkeypatch.setattr(T, "_write_config", lambda *a, **k: pytest.fail("training started"))
    (tmp_path / "f").write_text("not a folder")
    res = invoke("train", "--out", tmp_path / "f" / "sub", "--quiet")
    assert res.exit_code == 2, res.output
    assert "is a file, not a folder" in res.output and res.output.strip().count("\n") == 0
    assert (tmp_path / "f").read_text() == "not a folder"
