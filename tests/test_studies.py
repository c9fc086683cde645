"""The bridge studies in experiments/studies/: every file imports, builds valid training configurations at every
size, varies the knob it claims to vary at a fixed budget, and one study runs end to end at its smallest size."""
from __future__ import annotations

import csv
import importlib
import inspect
import json
import sys
from pathlib import Path

import numpy as np
import pytest

from linsim.bridge.config import TrainConfig
from linsim.errors import LinsimError

STUDIES_DIR = Path(__file__).resolve().parents[1] / "experiments" / "studies"
NAMES = ("weight_decay", "ema", "pred_lr", "predictors", "data_schedules", "views")


@pytest.fixture(scope="module")
def studies():
    sys.path.insert(0, str(STUDIES_DIR))
    try:
        yield {n: importlib.import_module(f"study_{n}") for n in NAMES}
    finally:
        sys.path.remove(str(STUDIES_DIR))


def test_every_study_file_is_listed():
    found = sorted(p.stem.removeprefix("study_") for p in STUDIES_DIR.glob("study_*.py"))
    assert found == sorted(NAMES)


@pytest.mark.parametrize("name", NAMES)
def test_make_signature_and_docstring(studies, name):
    mod = studies[name]
    sig = inspect.signature(mod.make)
    assert list(sig.parameters)[:2] == ["out", "size"]
    assert sig.parameters["size"].default == "small"
    assert {"data_dir", "runs"} <= set(sig.parameters)
    assert mod.NAME == name
    assert mod.__doc__.splitlines()[0].startswith("Study (")


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("size", ["tiny", "small"])
def test_plans_are_valid_configs(studies, name, size):
    runs = studies[name].plan(size)
    assert len(runs) >= 2
    assert len({r.name for r in runs}) == len(runs)  # one folder per run
    assert all(isinstance(r.cfg, TrainConfig) for r in runs)
    assert all(r.cfg.dataset == "builtin" and r.cfg.arch == "resnet-tiny" for r in runs)
    assert len({r.value for r in runs}) == len(runs)  # the knob takes a different value in every run
    if size == "tiny":
        assert all(r.cfg.epochs <= 2 for r in runs)


@pytest.mark.parametrize("name", NAMES)
def test_full_size_needs_cifar10(studies, name):
    with pytest.raises(LinsimError, match="--data-dir"):
        studies[name].plan("full")
    runs = studies[name].plan("full", data_dir="/data/cifar")
    assert all(r.cfg.arch == "resnet18" and r.cfg.dataset == "cifar10" and r.cfg.data_dir == "/data/cifar"
               for r in runs)


@pytest.mark.parametrize("name", NAMES)
def test_unknown_size(studies, name):
    with pytest.raises(LinsimError, match="unknown study size"):
        studies[name].plan("huge")


def test_knobs(studies):
    """Each study varies its own knob and holds the rest of the configuration fixed."""
    for name, field in (("weight_decay", "wd"), ("ema", "ema"), ("pred_lr", "pred_lr_ratio"),
                        ("predictors", "predictor")):
        runs = studies[name].plan("small")
        assert [getattr(r.cfg, field) for r in runs] == [r.value for r in runs]
        rest = [{k: v for k, v in r.cfg.to_dict().items() if k != field} for r in runs]
        assert all(x == rest[0] for x in rest)
    assert studies["weight_decay"].plan("small")[0].cfg.wd == 0.0  # the eta = 0 control is there
    assert "none" in [r.value for r in studies["predictors"].plan("small")]


@pytest.mark.parametrize("size", ["tiny", "small", "full"])
def test_views_fixed_view_evaluations(studies, size):
    """m views x batch is the same for every run, and so is the number of steps (the same pool of images)."""
    runs = studies["views"].plan(size, data_dir="/d")
    per_step = {r.cfg.views * r.cfg.batch_size for r in runs}
    assert len(per_step) == 1
    n = 256 if size == "small" else 32 if size == "tiny" else 50000
    steps = [(n // r.cfg.batch_size) * r.cfg.epochs for r in runs]
    # exact at the CPU sizes; at full size n // batch rounds down (50000 // 64 * 25 = 19525 vs 19500): 0.2%
    assert max(steps) - min(steps) <= (0 if size != "full" else 0.002 * min(steps))


def test_schedule_indices(studies):
    ds = studies["data_schedules"]
    n, stages = 256, 4
    chunks = np.array_split(np.arange(n), stages)
    for sched in ds.SCHEDULES:
        for k in range(stages):
            idx = ds.stage_indices(sched, k, stages, n)
            assert idx.shape == (n,) and idx.min() >= 0 and idx.max() < n  # every stage runs the same steps
            uniq = set(np.unique(idx).tolist())
            if sched == "iid" or (sched == "hybrid" and k >= stages // 2):
                assert uniq == set(range(n))
            elif sched in ("single_pass", "hybrid"):
                assert uniq == set(chunks[k].tolist())
            elif sched == "fixed_subset":
                assert uniq == set(chunks[0].tolist())
            else:  # cumulative: every chunk seen so far, nothing later
                assert uniq == set(np.concatenate(chunks[: k + 1]).tolist())
    # resampling to n keeps the stage's images balanced: counts differ by at most one
    counts = np.bincount(ds.stage_indices("cumulative", 2, stages, n), minlength=n)[: 3 * 64]
    assert counts.max() - counts.min() <= 1
    with pytest.raises(ValueError):
        ds.stage_indices("shuffled", 0, stages, n)


def test_main_parses_arguments(studies, monkeypatch, tmp_path):
    """The argparse front end passes --size/--out/--data-dir/--runs to make() and refuses full without data."""
    import _studies as S

    seen = {}

    def fake_make(out, size="small", *, data_dir=None, runs=None):
        seen.update(out=out, size=size, data_dir=data_dir, runs=runs)
        return [out / "x.png"]

    monkeypatch.setattr(S, "cpu_speedups", lambda size, runs: None)  # the backend is already up in tests
    monkeypatch.setattr(sys, "argv", ["study", "--size", "tiny", "--out", str(tmp_path), "--runs", str(tmp_path / "r")])
    S.main(fake_make, "doc")
    assert seen == {"out": tmp_path, "size": "tiny", "data_dir": None, "runs": tmp_path / "r"}
    monkeypatch.setattr(sys, "argv", ["study", "--size", "full"])
    with pytest.raises(SystemExit) as err:
        S.main(fake_make, "doc")
    assert err.value.code == 2


def test_helpers(studies):
    import _studies as S

    assert S.spearman([1, 2, 3, 4], [8, 6, 4, 1]) == pytest.approx(-1.0)
    assert S.spearman([1, 2], [1, 2]) is None  # fewer than 3 points
    assert S.spearman([1, 1, 1], [1, 2, 3]) is None  # constant input has no ranks
    text = S.csv_text([{"a": 1, "b": 0.5}, {"a": 2, "c": None}])
    assert text.splitlines() == ["a,b,c", "1,0.5,", "2,,"]
    ema = studies["ema"]
    curves = [[[0.0], [1.0], [2.0], [4.0]], [[0.0], [0.5], [1.0], [1.5]]]
    assert ema.common_target(curves) == 2.0  # half the largest distance travelled (4)
    assert ema.common_target(curves, 0.9) == pytest.approx(3.6)
    assert ema.reach_step([0, 1, 2, 3], curves[0], 2.0) == 2.0
    assert ema.reach_step([0, 1, 2, 3], curves[1], 2.0) is None  # never travels that far


@pytest.mark.slow
def test_weight_decay_study_end_to_end(studies, monkeypatch, tmp_path):
    """One study at its smallest size (one run: 2 SGD steps on 32 images): table, figure and report agree with
    the run's own metrics."""
    mod = studies["weight_decay"]
    monkeypatch.setitem(mod.WDS, "tiny", (0.1,))
    runs = tmp_path / "runs"
    paths = mod.make(tmp_path / "out", size="tiny", runs=runs)
    assert sorted(p.name for p in paths) == ["study_weight_decay.csv", "study_weight_decay.json",
                                             "study_weight_decay.png"]
    rows = list(csv.DictReader((tmp_path / "out" / "study_weight_decay.csv").open()))
    assert len(rows) == 1 and float(rows[0]["wd"]) == 0.1
    assert float(rows[0]["eta"]) == pytest.approx(0.05)  # the trainer's loss has g = 2: eta = wd / 2
    recs = [json.loads(line) for line in (runs / "wd0.1" / "metrics.jsonl").read_text().splitlines()]
    assert float(rows[0]["asym_final"]) == pytest.approx(recs[-1]["asymmetry"], rel=1e-3)  # 4 significant digits
    assert int(rows[0]["modes"]) == 8
    rep = json.loads((tmp_path / "out" / "study_weight_decay.json").read_text())
    assert rep["size"] == "tiny" and rep["prediction"] and rep["verdict"] and len(rep["eta_c"]) == 8
    assert (tmp_path / "out" / "study_weight_decay.png").stat().st_size > 10_000


@pytest.mark.parametrize("name", NAMES)
def test_committed_outputs(name):
    """figures/ holds every study's figure, table and report (written at small size), and they agree."""
    fig = STUDIES_DIR.parents[1] / "figures"
    assert (fig / f"study_{name}.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    rows = list(csv.DictReader((fig / f"study_{name}.csv").open()))
    rep = json.loads((fig / f"study_{name}.json").read_text())
    assert rep["study"] == name and rep["size"] == "small"
    assert rep["prediction"] and rep["outcome"] and rep["verdict"]
    assert len(rows) == len(rep["table"]) >= 2
    first = next(iter(rows[0]))  # the knob's column: the same values in the same order
    for r, t in zip(rows, rep["table"]):
        if isinstance(t[first], str):
            assert r[first] == t[first]
        else:  # the CSV rounds to 4 significant digits
            assert float(r[first]) == pytest.approx(t[first], rel=1e-3)
