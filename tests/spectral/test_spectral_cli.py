"""`linsim spectral`: happy paths, JSON schema, and bad input -> exit 2 with nothing written."""
import json

import numpy as np
import pytest
from typer.testing import CliRunner

from linsim.cli import app

runner = CliRunner()
SMALL = ["--n-per-class", "12", "--classes", "3", "--input-dim", "5", "--dim", "2", "--gd-starts", "2"]
KEYS = {"method", "graph", "N", "D", "K", "closed_form", "closed_form_loss", "gd_loss", "gd_losses",
        "gap_gd_minus_closed", "rank", "rankme", "probe_accuracy", "lda_subspace_distance", "out",
        "closed_form_valid", "reason", "optimum_loss", "optimum_kind", "optimum_detail", "optimum_spread",
        "certified", "gap_gd_minus_optimum"}


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
    assert s["lda_subspace_distance"] < 1e-8  # exact in theory (linear VICReg on the label graph = LDA); observed ~1e-14
    # beta = 100 is finite: the closed form is its beta -> infinity limit, beaten by the certified optimum
    assert not s["closed_form_valid"] and "beta = 100" in s["reason"]
    assert s["optimum_loss"] < s["closed_form_loss"] and s["gap_gd_minus_optimum"] >= 0
    # the run records how to rerun it: every option, the seed and the version
    cfg = json.loads((out / "config.json").read_text())
    assert cfg == s["config"] and cfg["method"] == "vicreg" and cfg["seed"] == 0 and cfg["linsim_version"]


@pytest.mark.parametrize("method, graph", [("barlow", "knn"), ("spectral-contrastive", "two-view"),
                                           ("simclr", "label"), ("vicreg", "nuisance")])
def test_json_schema_and_closed_form_not_beaten(tmp_path, method, graph):
    s = _json(["spectral", method, *SMALL, "--graph", graph, "--json", "--out", str(tmp_path / "o")])
    assert set(s) >= KEYS and s["method"] == method and s["graph"] == graph
    assert 0.0 <= s["probe_accuracy"] <= 1.0 and s["rank"] <= 2
    assert s["certified"] and s["gap_gd_minus_optimum"] >= 0  # never a negative gap reported as a success
    if s["closed_form_valid"]:
        assert s["reason"] is None and s["gap_gd_minus_closed"] >= 0
    else:
        assert s["reason"] and s["optimum_loss"] <= s["closed_form_loss"]


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
    np.savez(tmp_path / "X.npz", X=np.zeros((6, 3)))
    (tmp_path / "zip.npy").write_bytes((tmp_path / "X.npz").read_bytes())
    np.savetxt(tmp_path / "X.csv", np.ones((6, 3)), delimiter=",")
    np.save(tmp_path / "obj.npy", np.array([{"a": 1}] * 2, dtype=object), allow_pickle=True)
    np.save(tmp_path / "ystr.npy", np.array(["cat", "dog", "cat", "dog", "cat", "dog"]))
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
        # issue 10 item 7: each a one-line error before any computation
        (["spectral", "vicreg", "--data", str(tmp_path / "X.npz")], "expected a .npy file"),
        (["spectral", "vicreg", "--data", str(tmp_path / "X.csv")], "expected a .npy file"),
        (["spectral", "vicreg", "--data", str(tmp_path / "zip.npy")], "is a .npz archive"),
        (["spectral", "vicreg", "--data", str(tmp_path / "obj.npy")], "pickled Python objects"),
        (["spectral", "vicreg", "--data", str(tmp_path / "ok.npy"), "--labels", str(tmp_path / "ystr.npy")],
         "numeric class ids, found strings"),
        (["spectral", "vicreg", "--seed", "-1"], "--seed must be >= 0"),
    ]


def test_bad_input_exits_2_and_writes_nothing(tmp_path):
    for i, (args, msg) in enumerate(_bad_inputs(tmp_path)):
        out = tmp_path / f"out{i}"
        res = runner.invoke(app, [*args, "--out", str(out)])
        assert res.exit_code == 2, (args, res.output)
        assert msg in res.output, (msg, res.output)
        assert "Traceback" not in res.output and len(res.output.strip().splitlines()) == 1
        assert not out.exists()


# --------------------------------------------------------------------------------------------------
# the three settings of issue 11, at small size: outside the closed form's domain, said in one line and in the
# JSON, with a certified optimum that gradient descent does not beat


def _run_text_and_json(tmp_path, args):
    """One run: its text output and its summary.json (the same fields as --json, plus the config)."""
    res = runner.invoke(app, [*args, "--out", str(tmp_path / "t")])
    assert res.exit_code == 0, res.output
    return res.stdout, json.loads((tmp_path / "t" / "summary.json").read_text())


def test_barlow_irregular_knn_zero_loss_outside_span(tmp_path):
    # built-in data, 3 x 12 points in D = 5, k-NN graph: rho_1 = 1.057, h = 1.0008 > 1
    text, s = _run_text_and_json(tmp_path, ["spectral", "barlow", "--graph", "knn", "--n-per-class", "12",
                                            "--classes", "3", "--input-dim", "5", "--dim", "2", "--gd-starts", "2",
                                            "--lambd", "1"])
    assert "outside the closed form's domain: canonical correlation rho_1" in text
    assert not s["closed_form_valid"] and "rho_1" in s["reason"]
    assert s["optimum_kind"] == "exact" and s["optimum_loss"] < 1e-20 < s["closed_form_loss"]
    assert s["certified"] and s["gap_gd_minus_optimum"] >= 0


def test_barlow_irregular_knn_certified_numerics(tmp_path):
    # seed 2: rho_1 = 1.007 > 1 but h = 0.84 < 1: no closed form, no zero loss -> certified multi-start
    _, s = _run_text_and_json(tmp_path, ["spectral", "barlow", "--graph", "knn", "--n-per-class", "12",
                                         "--classes", "3", "--input-dim", "5", "--dim", "2", "--gd-starts", "2",
                                         "--seed", "2"])
    assert not s["closed_form_valid"] and s["optimum_kind"] == "certified numerical"
    sp = s["optimum_spread"]
    assert sp["restarts"] >= 4 and sp["n_at_best"] >= 2 and sp["best"] == pytest.approx(s["optimum_loss"], rel=1e-12)
    assert s["optimum_loss"] <= s["closed_form_loss"] and s["gap_gd_minus_optimum"] >= 0


def test_vicreg_finite_beta_knn(tmp_path):
    text, s = _run_text_and_json(tmp_path, ["spectral", "vicreg", "--graph", "knn", *SMALL, "--gamma", "200"])
    assert "outside the closed form's domain: beta = 100 is finite" in text
    assert not s["closed_form_valid"] and s["optimum_kind"] == "certified numerical"
    assert s["closed_form_loss"] - s["optimum_loss"] > 1e-4  # the beta -> infinity form is clearly beaten
    assert s["certified"] and s["gap_gd_minus_optimum"] >= 0


def test_simclr_unequal_classes_issue_reproducer(tmp_path):
    r = np.random.default_rng(0)
    y = np.repeat(np.arange(4), [3, 5, 9, 15])
    np.save(tmp_path / "X.npy", r.normal(size=(32, 6)) + 3 * np.eye(4, 6)[y])
    np.save(tmp_path / "y.npy", y)
    text, s = _run_text_and_json(tmp_path, ["spectral", "simclr", "--data", str(tmp_path / "X.npy"), "--labels",
                                            str(tmp_path / "y.npy"), "--dim", "3", "--tau", "0.5",
                                            "--gd-starts", "2"])
    assert "outside the closed form's domain: class sizes differ (3 to 15)" in text
    assert s["optimum_kind"] == "certified numerical" and s["rank"] == 3  # still collapsed to C - 1 = 3 dims
    assert s["closed_form_loss"] - s["optimum_loss"] > 1e-3  # the simplex is beaten by 0.0086
    lo, hi = s["centre_cosines"]
    assert -0.5 < lo < hi < -0.05 and hi - lo > 0.3  # not a regular simplex (all -1/3)
    assert s["certified"] and s["gap_gd_minus_optimum"] >= 0
