"""`linsim metrics FILE`: happy paths (Li et al. npz, .npy embeddings, .csv) and bad input (exit 2, nothing written)."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from linsim import metrics as M
from linsim.cli import app
from linsim.io import output_names

from shared_data import LI_AUC, LI_FILE, LI_KEYS, LI_PATH, LI_RANKME  # noqa: F401

runner = CliRunner()


def _run(*args: str):
    return runner.invoke(app, ["metrics", *map(str, args)])


def test_li2022_json_schema_and_values(tmp_path):
    out = tmp_path / "out"
    res = _run(LI_PATH, "--singular-values", "--json", "--out", out)
    assert res.exit_code == 0, res.output
    rows = json.loads(res.stdout)["results"]
    assert [r["name"] for r in rows] == LI_KEYS
    for row, auc in zip(rows, LI_AUC):
        assert {"name", "cev_auc", "rankme", "participation_ratio", "alpha_req", "dim", "n"} <= set(row)
        assert row["dim"] == 512 and row["n"] is None and row["std_normalized"] is None
        assert abs(row["cev_auc"] - auc) <= 1e-4  # table rounded to 4 decimals (docs/metrics.md)
        assert isinstance(row["rankme"], float) and isinstance(row["participation_ratio"], float)
    assert output_names(out) == ["metrics.json", "spectra.png"]
    record = json.loads((out / "metrics.json").read_text())
    assert record["results"] == rows and record["singular_values"] is True and record["normalize"] is False
    assert (out / "spectra.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_li2022_table(tmp_path):
    res = _run(LI_PATH, "--singular-values", "--no-plot", "--out", tmp_path / "o")
    assert res.exit_code == 0, res.output
    lines = res.stdout.strip().splitlines()
    assert lines[0].split()[:4] == ["name", "dim", "n", "CEV-AUC"]
    assert lines[1].split()[0] == "percent_1" and "0.6098" in lines[1]
    assert len(lines) == 7
    assert output_names(tmp_path / "o") == ["metrics.json"]


def test_npy_embeddings(tmp_path):
    z = np.random.default_rng(0).normal(size=(200, 8)).astype(np.float32)
    np.save(tmp_path / "emb.npy", z)
    res = _run(tmp_path / "emb.npy", "--json", "--out", tmp_path / "o")
    assert res.exit_code == 0, res.output
    (row,) = json.loads(res.stdout)["results"]
    assert row["name"] == "emb" and (row["n"], row["dim"]) == (200, 8)
    assert row["cev_auc"] == pytest.approx(M.cev_auc(z), rel=1e-12)
    assert row["rankme"] == pytest.approx(M.rankme(z), rel=1e-12)
    assert row["std_normalized"] == pytest.approx(M.std_normalized(z), rel=1e-12)
    normed = json.loads(_run(tmp_path / "emb.npy", "--json", "--normalize", "--out", tmp_path / "o2").stdout)["results"][0]
    assert normed["cev_auc"] == pytest.approx(M.cev_auc(z, normalize=True), rel=1e-12)


def test_csv_embeddings_with_header_and_csv_spectrum(tmp_path):
    z = np.random.default_rng(1).normal(size=(30, 3))
    (tmp_path / "emb.csv").write_text("a,b,c\n" + "\n".join(",".join(f"{v:.17g}" for v in r) for r in z) + "\n")
    res = _run(tmp_path / "emb.csv", "--json", "--out", tmp_path / "o1")
    assert res.exit_code == 0, res.output
    assert json.loads(res.stdout)["results"][0]["cev_auc"] == pytest.approx(M.cev_auc(z), rel=1e-12)
    (tmp_path / "sv.csv").write_text("3\n2\n1\n")  # one column = one spectrum
    res = _run(tmp_path / "sv.csv", "--singular-values", "--json", "--out", tmp_path / "o2")
    assert res.exit_code == 0, res.output
    assert json.loads(res.stdout)["results"][0]["cev_auc"] == pytest.approx((0.5 + 5 / 6 + 1) / 3, rel=1e-14)


def test_2d_singular_values_means_one_spectrum_per_row(tmp_path):
    np.savez(tmp_path / "s.npz", spectra=np.array([[2.0, 1.0], [1.0, 1.0]]))
    res = _run(tmp_path / "s.npz", "--singular-values", "--json", "--out", tmp_path / "o")
    assert res.exit_code == 0, res.output
    rows = json.loads(res.stdout)["results"]
    assert [r["name"] for r in rows] == ["spectra[0]", "spectra[1]"]
    assert rows[1]["cev_auc"] == pytest.approx(0.75, rel=1e-15)  # (d+1)/(2d) for equal sigma, d = 2


def test_default_out_folder(tmp_path, monkeypatch):
    np.save(tmp_path / "emb.npy", np.random.default_rng(2).normal(size=(20, 4)))
    monkeypatch.chdir(tmp_path)
    res = _run("emb.npy", "--no-plot")
    assert res.exit_code == 0, res.output
    (folder,) = (tmp_path / "runs").iterdir()
    assert folder.name.startswith("metrics-") and (folder / "metrics.json").is_file()


def _garbage(tmp_path: Path) -> dict[str, tuple[list[str], str]]:
    """name -> (arguments, expected fragment of the error message)."""
    rng = np.random.default_rng(3)
    np.save(tmp_path / "vec.npy", rng.normal(size=5))
    np.save(tmp_path / "cube.npy", rng.normal(size=(3, 4, 5)))
    np.save(tmp_path / "nan.npy", np.array([[1.0, np.nan], [0.0, 1.0]]))
    np.save(tmp_path / "empty.npy", np.zeros((0, 4)))
    np.save(tmp_path / "onerow.npy", np.ones((1, 4)))
    np.save(tmp_path / "neg.npy", np.array([1.0, -1.0]))
    np.save(tmp_path / "strings.npy", np.array([["a", "b"], ["c", "d"]]))
    np.save(tmp_path / "const.npy", np.ones((5, 3)))
    np.savez(tmp_path / "mixed.npz", good=rng.normal(size=(10, 3)), bad=rng.normal(size=4))
    (tmp_path / "junk.npy").write_bytes(b"this is not numpy")
    (tmp_path / "junk.npz").write_bytes(b"PK\x03\x04garbage")
    (tmp_path / "text.csv").write_text("1,2\n3,x\n")
    (tmp_path / "ragged.csv").write_text("1,2\n3\n")
    (tmp_path / "blank.csv").write_text("\n\n")
    (tmp_path / "data.txt").write_text("1,2\n3,4\n")
    np.save(tmp_path / "ok.npy", rng.normal(size=(10, 3)))
    return {
        "1-D without --singular-values": (["vec.npy"], "--singular-values"),
        "3-D": (["cube.npy"], "expected 2-D"),
        "3-D spectra": (["cube.npy", "--singular-values"], "one spectrum per row"),
        "NaN": (["nan.npy"], "non-finite"),
        "empty": (["empty.npy"], "empty"),
        "one row": (["onerow.npy"], "at least 2 rows"),
        "negative singular values": (["neg.npy", "--singular-values"], "non-negative"),
        "non-numeric": (["strings.npy"], "not numeric"),
        "constant embeddings": (["const.npy"], "all singular values are zero"),
        "one bad array in an npz": (["mixed.npz"], "'bad'"),
        "garbage .npy": (["junk.npy"], "not a NumPy"),
        "garbage .npz": (["junk.npz"], "junk.npz"),
        "non-numeric csv": (["text.csv"], "line 2"),
        "ragged csv": (["ragged.csv"], "columns"),
        "blank csv": (["blank.csv"], "empty"),
        "unsupported suffix": (["data.txt"], "unsupported file type"),
        "missing file": (["missing.npy"], "no such file"),
        "--normalize with spectra": (["ok.npy", "--singular-values", "--normalize"], "--normalize"),
    }


def test_garbage_exits_2_and_writes_nothing(tmp_path, monkeypatch):
    cases = _garbage(tmp_path)
    monkeypatch.chdir(tmp_path)
    before = sorted(p.name for p in tmp_path.iterdir())
    for label, (args, fragment) in cases.items():
        res = _run(*args, "--out", tmp_path / "out")
        assert res.exit_code == 2, (label, res.output)
        assert res.stderr.startswith("error: ") and res.stderr.count("\n") == 1, (label, res.stderr)
        assert fragment in res.stderr, (label, res.stderr)
        assert res.stdout == "", label
        res = _run(*args)  # default output folder: must not be created either
        assert res.exit_code == 2, label
        assert sorted(p.name for p in tmp_path.iterdir()) == before, label  # no out/, runs/ or temp folders


def test_refuses_to_overwrite_without_force(tmp_path):
    np.save(tmp_path / "emb.npy", np.random.default_rng(4).normal(size=(20, 4)))
    out = tmp_path / "out"
    out.mkdir()
    (out / "keep.txt").write_text("x")
    res = _run(tmp_path / "emb.npy", "--out", out)
    assert res.exit_code == 2 and "keep.txt" in res.stderr and "--force" not in res.stderr
    assert [p.name for p in out.iterdir()] == ["keep.txt"]
    # --force never deletes a file linsim did not write: the folder is refused, untouched
    res = _run(tmp_path / "emb.npy", "--out", out, "--force", "--no-plot")
    assert res.exit_code == 2 and "did not write" in res.stderr
    assert [p.name for p in out.iterdir()] == ["keep.txt"]
    # a folder of linsim's own outputs is replaced with --force (and refused without)
    res = _run(tmp_path / "emb.npy", "--out", tmp_path / "mine")
    assert res.exit_code == 0 and output_names(tmp_path / "mine") == ["metrics.json", "spectra.png"]
    res = _run(tmp_path / "emb.npy", "--out", tmp_path / "mine", "--no-plot")
    assert res.exit_code == 2 and "--force" in res.stderr
    res = _run(tmp_path / "emb.npy", "--out", tmp_path / "mine", "--no-plot", "--force")
    assert res.exit_code == 0 and output_names(tmp_path / "mine") == ["metrics.json"]  # the stale plot went too
