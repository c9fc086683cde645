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


def test_failing_recipes_are_reported_and_the_rest_still_run(tmp_path):
    exps = tmp_path / "exps"
    exps.mkdir()
    (exps / "a_bad.py").write_text('"""Broken."""\ndef make(out):\n    raise ValueError("boom")\n')
    (exps / "b_nodata.py").write_text('"""No data."""\ndef make(out):\n    raise SystemExit("error: data.npz not found")\n')
    (exps / "c_good.py").write_text(
        '"""Good."""\nfrom pathlib import Path\ndef make(out):\n    p = Path(out) / "c.txt"\n    p.write_text("ok")\n    return [p]\n'
    )
    res = runner.invoke(app, ["figures", "--experiments", str(exps), "--out", str(tmp_path / "f")])
    # the two failures are named with their reasons, the good recipe after them still ran, and the status says so
    assert res.exit_code == 1, res.output
    assert "figure recipe a_bad failed: ValueError: boom" in res.output
    assert "figure recipe b_nodata failed: data.npz not found" in res.output
    assert (tmp_path / "f" / "c.txt").read_text() == "ok"
    assert "1 of 3 recipes written" in res.output and "2 recipe(s) failed: a_bad, b_nodata" in res.output


def test_all_good_exits_0_with_per_recipe_and_total_time(tmp_path):
    exps = tmp_path / "exps"
    exps.mkdir()
    for name in ("one", "two"):
        (exps / f"{name}.py").write_text(
            f'"""{name}."""\nfrom pathlib import Path\ndef make(out):\n    p = Path(out) / "{name}.txt"\n'
            '    p.write_text("x")\n    return [p]\n'
        )
    res = runner.invoke(app, ["figures", "--experiments", str(exps), "--out", str(tmp_path / "f")])
    assert res.exit_code == 0, res.output
    assert res.output.count("s CPU -> ") == 2 and "2 of 2 recipes written" in res.output
    assert "s wall clock" in res.output


def test_unwritable_out_exits_2_before_running(tmp_path):
    (tmp_path / "file").write_text("not a folder")
    res = runner.invoke(app, ["figures", "readme_run", "--experiments", str(REPO / "experiments"),
                              "--out", str(tmp_path / "file" / "sub")])
    assert res.exit_code == 2 and "cannot create output folder" in res.output


def test_recipe_names_are_not_figure_numbers():
    # names, not "Figure N" numbers that clash with the papers' own figure numbers
    res = runner.invoke(app, ["figures", "--list", "--experiments", str(REPO / "experiments")])
    assert res.exit_code == 0
    assert not any(line.split(None, 1)[-1].startswith("Figure ") for line in res.output.splitlines())
