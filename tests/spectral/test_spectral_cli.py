"""`linsim spectral`: happy paths, JSON schema, and bad input -> exit 2 with nothing written."""
import json

import numpy as np
import pytest
from typer.testing import CliRunner

from linsim.cli import app

runner = CliRunner()
SMALL = ["--n-per-class", "12", "--classes", "3", "--input-dim", "5", "--dim", "2", "--gd-starts", "2"]
KEYS = {"method", "graph", "N", "D", "K", "closed_form", "closed_form_loss", "gd_loss", "gd_losses",
        "gap_gd_minus_closed", "rank", "rankme", "probe_accuracy", "lda_subspace_distance", "out"}


def _json(args):
    res = runner.invoke(app, args)
    assert res.exit_code == 0, res.output
    return json.loads(res.stdout)


def test_vicreg_label_graph_recovers_lda(tmp_path):
    out = tmp_path / "run"
    res = runner.invoke(app, ["spectral", "vicreg", *SMALL, "--out", str(out)])
    assert res.exit_code == 0, res.output
    assert "subspace distance to Fisher LDA" in res.stdout
    assert (out / "spectral.png").is_file() and (out / "summary.json").is_file()
    s = json.loads((out / "summary.json").read_text())
    assert s["lda_subspace_distance"] < 1e-8  # exact in theory (A-W1 + I4); observed ~1e-14
    assert s["gd_loss"] >= s["closed_form_loss"] - 1e-6
    # the run records how to rerun it: every option, the seed and the version
    cfg = json.loads((out / "config.json").read_text())
    assert cfg == s["config"] and cfg["method"] == "vicreg" and cfg["seed"] == 0 and cfg["linsim_version"]


@pytest.mark.parametrize("method, graph", [("barlow", "knn"), ("spectral-contrastive", "two-view"),
                                           ("simclr", "label"), ("vicreg", "nuisance")])
def test_json_schema_and_closed_form_not_beaten(tmp_path, method, graph):
    s = _json(["spectral", method, *SMALL, "--graph", graph, "--json", "--out", str(tmp_path / "o")])
    assert set(s) >= KEYS and s["method"] == method and s["graph"] == graph
    assert 0.0 <= s["probe_accuracy"] <= 1.0 and s["rank"] <= 2
    if s["closed_form_loss"] is not None:
        assert s["gap_gd_minus_closed"] >= -1e-6  # GD never beats the closed form (observed ≥ -1e-15)


def test_user_data(tmp_path):
    rng = np.random.default_rng(0)
    X = rng.standard_normal((30, 4))
    y = np.repeat(np.arange(3), 10)
    np.save(tmp_path / "X.npy", X)
    np.save(tmp_path / "y.npy", y)
    s = _json(["spectral", "vicreg", "--data", str(tmp_path / "X.npy"), "--labels", str(tmp_path / "y.npy"),
               "--dim", "2", "--gd-starts", "1", "--json", "--out", str(tmp_path / "o")])
    assert s["N"] == 30 and s["D"] == 4


def _bad_inputs(tmp_path):
    np.save(tmp_path / "nan.npy", np.array([[0.0, np.nan], [1.0, 2.0]]))
    np.save(tmp_path / "ok.npy", np.zeros((6, 3)))
    np.save(tmp_path / "y5.npy", np.zeros(5))
    np.save(tmp_path / "vec.npy", np.zeros(6))
    return [
        (["spectral", "pca"], "unknown method"),
        (["spectral", "vicreg", "--graph", "ring"], "unknown graph"),
        (["spectral", "vicreg", "--data", str(tmp_path / "missing.npy")], "does not exist"),
        (["spectral", "vicreg", "--data", str(tmp_path / "nan.npy")], "non-finite"),
        (["spectral", "vicreg", "--data", str(tmp_path / "vec.npy")], "2-D"),
        (["spectral", "vicreg", "--data", str(tmp_path / "ok.npy"), "--labels", str(tmp_path / "y5.npy")],
         "one entry per row"),
        (["spectral", "vicreg", "--data", str(tmp_path / "ok.npy")], "needs --labels"),
        (["spectral", "vicreg", "--dim", "0"], "--dim must be"),
        (["spectral", "vicreg", "--gamma", "-1"], "--gamma must be"),
    ]


def test_bad_input_exits_2_and_writes_nothing(tmp_path):
    for i, (args, msg) in enumerate(_bad_inputs(tmp_path)):
        out = tmp_path / f"out{i}"
        res = runner.invoke(app, [*args, "--out", str(out)])
        assert res.exit_code == 2, (args, res.output)
        assert msg in res.output, (msg, res.output)
        assert not out.exists()
