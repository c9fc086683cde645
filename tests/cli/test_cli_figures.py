"""`linsim figures`: lists the recipes, rejects unknown names with exit 2, and regenerates a figure."""
from pathlib import Path

from typer.testing import CliRunner

from linsim.cli import app

REPO = Path(__file__).resolve().parents[2]
runner = CliRunner()


def test_list_names_every_recipe():
    res = runner.invoke(app, ["figures", "--list", "--experiments", str(REPO / "experiments")])
    assert res.exit_code == 0, res.output
    for name in ("phase_portrait", "ema_convergence", "fixed_points_eta", "matrix_alignment", "li2022_collapse",
                 "spectral_closed_forms",
                 "stepwise_bt",
                 "multiview_kernel"):
        assert name in res.output


def test_unknown_recipe_exits_2(tmp_path):
    res = runner.invoke(app, ["figures", "nope", "--experiments", str(REPO / "experiments"), "--out", str(tmp_path)])
    assert res.exit_code == 2 and "unknown figure recipe" in res.output
    assert list(tmp_path.iterdir()) == []


def test_missing_experiments_folder_exits_2(tmp_path):
    res = runner.invoke(app, ["figures", "--experiments", str(tmp_path / "none")])
    assert res.exit_code == 2


def test_regenerates_readme_figure(tmp_path):
    res = runner.invoke(app, ["figures", "readme_run", "--experiments", str(REPO / "experiments"), "--out", str(tmp_path)])
    assert res.exit_code == 0, res.output
    png = tmp_path / "readme_run.png"
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_broken_or_data_less_recipes_report_one_line(tmp_path):
    exps = tmp_path / "exps"
    exps.mkdir()
    (exps / "bad.py").write_text('"""Broken."""\ndef make(out):\n    raise ValueError("boom")\n')
    (exps / "nodata.py").write_text('"""No data."""\ndef make(out):\n    raise SystemExit("error: data.npz not found")\n')
    res = runner.invoke(app, ["figures", "bad", "--experiments", str(exps), "--out", str(tmp_path / "f")])
    assert res.exit_code == 1 and "figure recipe bad failed: ValueError: boom" in res.output
    res = runner.invoke(app, ["figures", "nodata", "--experiments", str(exps), "--out", str(tmp_path / "f")])
    assert res.exit_code == 2 and "figure recipe nodata: data.npz not found" in res.output
