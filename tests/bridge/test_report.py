"""linsim.bridge.report: reading metrics.jsonl, the per-epoch table and the run's plots."""
from __future__ import annotations

import json

import numpy as np
import pytest

from linsim.bridge import evaluate as ev
from linsim.bridge import report
from linsim.errors import LinsimError
from linsim.io import to_jsonable

D = 6  # predictor width of the synthetic run


def _record(epoch, rng, *, predictor=True, labels=True, kind="epoch", step=None):
    """One metrics.jsonl record as the trainer writes it, from evaluate's own functions."""
    rec = {"epoch": epoch, "step": step if step is not None else 10 * epoch, "kind": kind,
           "loss": None if epoch == 0 else -1.0 + 0.5 / epoch, "images_per_s": 1000.0 + epoch, "lr": 0.03,
           "time_s": 2.0 * epoch}
    if kind == "step":
        return rec
    if predictor:
        F = rng.standard_normal((D, 20))
        Wp = rng.standard_normal((D, D))
        Wp = Wp + epoch * Wp.T  # the symmetric part grows with the epoch
        rec.update(ev.predictor_report(Wp, F @ F.T, rng.standard_normal((D, 4)), alpha_p=1.0))
    rec.update(ev.representation_report(rng.standard_normal((50, 8)), prefix="backbone"))
    proj = rng.standard_normal((50, D)) if epoch < 3 else np.ones((50, D))
    rec.update(ev.representation_report(proj, prefix="proj"))
    rec["knn_acc"] = 0.1 * epoch if labels else None
    rec["probe_acc"] = 0.12 * epoch if labels else None
    rec["collapsed"] = ev.is_collapsed(rec["proj_rankme"], D)
    return rec


def _write_run(tmp_path, records, name="run"):
    run = tmp_path / name
    run.mkdir()
    (run / "metrics.jsonl").write_text("".join(json.dumps(to_jsonable(r), allow_nan=False) + "\n" for r in records))
    return run


@pytest.fixture
def full_run(tmp_path):
    rng = np.random.default_rng(0)
    recs = [_record(e, rng) for e in range(4)]
    recs.insert(2, _record(1, rng, kind="step", step=15))
    return _write_run(tmp_path, recs)


def test_read_metrics_and_table(full_run):
    recs = report.read_metrics(full_run)
    assert len(recs) == 5 and [r["epoch"] for r in recs] == [0, 1, 1, 2, 3]
    text = report.table(recs)
    lines = text.splitlines()
    header = lines[0].split()
    assert header[0] == "epoch" and "asym" in header and "probe" in header and "pj rank" in lines[0]
    # one row per epoch record (the step record is not a row), epochs in order
    assert [ln.split()[0] for ln in lines[1:5]] == ["0", "1", "2", "3"]
    assert lines[5] == ""
    # epoch 0 has no loss yet: a dash, not "nan"; the constant projector of epoch 3 is flagged
    assert lines[1].split()[1] == "-" and "nan" not in text
    assert lines[4].endswith("COLLAPSED") and not lines[3].endswith("COLLAPSED")
    # the table shows the logged values: epoch 2's probe accuracy is 0.24
    assert f"{0.24:.3f}" in lines[3].split()


def test_table_without_predictor_or_labels(tmp_path):
    rng = np.random.default_rng(1)
    run = _write_run(tmp_path, [_record(e, rng, predictor=False, labels=False) for e in range(3)])
    text = report.table(report.read_metrics(run))
    assert "asym" not in text and "F1" not in text and "kNN" not in text.splitlines()[0]
    assert "bb AUC" in text and len(text.splitlines()[0].split()) >= 5


def test_plot_run_writes_non_empty_pngs(full_run):
    recs = report.read_metrics(full_run)
    paths = report.plot_run(full_run, recs)
    assert [p.name for p in paths] == list(report.PLOT_FILES)
    for p in paths:
        data = p.read_bytes()
        assert p.parent == full_run and len(data) > 5000 and data[:8] == b"\x89PNG\r\n\x1a\n"
    # written atomically: no temporary files left behind
    assert not [p for p in full_run.iterdir() if p.name.startswith(".")]


def test_plot_run_without_predictor_skips_predictor_figures(tmp_path):
    rng = np.random.default_rng(2)
    run = _write_run(tmp_path, [_record(e, rng, predictor=False, labels=False) for e in range(3)])
    paths = report.plot_run(run, report.read_metrics(run))
    assert [p.name for p in paths] == ["collapse.png", "accuracy.png"]
    assert all(p.stat().st_size > 0 for p in paths)


def test_plot_run_with_collapsed_F_and_missing_values(tmp_path):
    rng = np.random.default_rng(3)
    recs = [_record(e, rng) for e in range(3)]
    for r in recs:
        r["f_eig"] = [0.0] * D  # F collapsed to zero: no positive eigenvalue for the log axis
        r["loss"] = r["knn_acc"] = None
    run = _write_run(tmp_path, recs)
    paths = report.plot_run(run, report.read_metrics(run))
    assert [p.name for p in paths] == list(report.PLOT_FILES) and all(p.stat().st_size > 0 for p in paths)
    assert "kNN" not in report.table(recs).splitlines()[0]


def test_aligned_fraction_weights_by_F():
    rec = {"alignment": [1.0, 0.0, 0.5], "f_eig": [3.0, 1.0, -1e-9]}
    assert report.aligned_fraction(rec) == pytest.approx(3 / 4)
    assert np.isnan(report.aligned_fraction({"alignment": None}))


def test_bad_run_folders(tmp_path):
    with pytest.raises(LinsimError, match="is not a folder"):
        report.read_metrics(tmp_path / "missing")
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(LinsimError, match=r"not a bridge run: .*metrics\.jsonl not found"):
        report.read_metrics(empty)
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "metrics.jsonl").write_text('{"epoch": 0, "loss": 1.0}\n{"epoch": 1, "loss": \n')
    with pytest.raises(LinsimError, match=r"metrics\.jsonl line 2 is not valid JSON"):
        report.read_metrics(bad)
    (bad / "metrics.jsonl").write_text('{"epoch": 0}\n[1, 2]\n')
    with pytest.raises(LinsimError, match="line 2 is not a JSON object"):
        report.read_metrics(bad)
    (bad / "metrics.jsonl").write_text('{"loss": 1.0}\n')
    with pytest.raises(LinsimError, match="line 1 has no valid 'epoch'"):
        report.read_metrics(bad)
    (bad / "metrics.jsonl").write_text("\n")
    with pytest.raises(LinsimError, match="holds no records"):
        report.read_metrics(bad)
    (bad / "metrics.jsonl").write_bytes(b"\xff\xfe\x00")
    with pytest.raises(LinsimError, match="could not be read"):
        report.read_metrics(bad)


def _write_config(run, **train):
    blob = {"kind": "linsim bridge train", "train": train, "resolved": {"proj_dim": train.get("proj_dim", D)}}
    (run / "config.json").write_text(json.dumps(blob))


def test_collapse_threshold_is_the_runs_own(tmp_path):
    rng = np.random.default_rng(4)
    run = _write_run(tmp_path, [_record(e, rng) for e in range(2)])
    # no config.json: the evaluation default
    assert report.collapse_threshold(run) == ev.COLLAPSE_RANKME
    # the trainer's threshold (1.5 by default) is what the run flagged against, not the evaluation default 2
    _write_config(run, collapse_rankme=1.5, proj_dim=32)
    assert report.collapse_threshold(run) == 1.5
    # capped at 1 + (d - 1)/2 like is_collapsed: d = 3 caps 5.0 at 2.0
    _write_config(run, collapse_rankme=5.0, proj_dim=3)
    assert report.collapse_threshold(run) == 2.0 == 1.0 + (3 - 1) / 2
    (run / "config.json").write_text("{not json")
    assert report.collapse_threshold(run) == ev.COLLAPSE_RANKME


def test_collapse_plot_draws_the_runs_threshold(tmp_path):
    import matplotlib.pyplot as plt

    rng = np.random.default_rng(5)
    recs = [_record(e, rng) for e in range(3)]
    fig = report._collapse_figure(recs, np.arange(3.0), 1.5)
    try:
        lines = [ln for ln in fig.axes[1].get_lines() if ln.get_label().startswith("collapse threshold")]
        assert len(lines) == 1 and set(np.asarray(lines[0].get_ydata(), float)) == {1.5}
        assert lines[0].get_label() == "collapse threshold (1.5)"
    finally:
        plt.close(fig)
