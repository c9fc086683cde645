"""Messages: accepted inputs print no warnings, refused ones one line; huge finite embeddings give the right
collapse metrics (the data are scaled before any sum or SVD)."""
from __future__ import annotations

import warnings

import numpy as np
import pytest
from typer.testing import CliRunner

import linsim.metrics as M
from linsim.cli import app

runner = CliRunner()


def invoke(*args):
    return runner.invoke(app, [str(a) for a in args])


@pytest.mark.parametrize("args,code", [
    (["--eta", 0.3, "--t-max", 400], 0),                          # every mode collapses: s -> 1e-30 in the plot
    (["--init-scale", 100, "--t-max", 5], 4),                     # stops at max_steps before its first save
    (["--solver", "euler", "--dt", 1, "--t-max", 50, "--init-scale", 3], 3),   # Euler blows up
    (["--model", "matrix", "--n", 3, "--eta", 0.3, "--t-max", 200], 0),
    (["--predictor", "directcopy", "--form", "code", "--t-max", 50], 0),
])
def test_accepted_inputs_print_no_warning(tmp_path, args, code):
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # any RuntimeWarning / UserWarning would fail the command
        res = invoke("simulate", *args, "--out", tmp_path / "r")
    assert res.exit_code == code, res.output
    assert "Warning" not in res.output and "Traceback" not in res.output
    if code == 4:
        assert "incomplete: the solver stopped at max_steps" in res.output


@pytest.mark.parametrize("value", ["inf", "nan", "-1"])
def test_sigma2_must_be_finite(tmp_path, value):
    res = invoke("simulate", "--sigma2", value, "--out", tmp_path / "r")
    assert res.exit_code == 2 and res.output.startswith("error: sigma2") and res.output.count("\n") == 1


def test_choices_are_listed_in_help():
    text = " ".join(invoke("simulate", "--help").output.split())
    for listed in ("[choices: modes, matrix]", "[choices: grad, symmetric, identity, directpred, directcopy]",
                   "[choices: none, sgd, sde]", "[choices: copy, independent]", "[choices: code, theory]"):
        assert listed in text


@pytest.mark.parametrize("scale", [1e307, 1e-300, 1.0])
def test_huge_and_tiny_embeddings_give_the_metrics_of_the_unit_scale(scale):
    z = np.random.default_rng(0).normal(size=(50, 8))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        got = M.summarize(z * scale)
    ref = M.summarize(z)
    for key in ("cev_auc", "rankme", "participation_ratio", "alpha_req"):
        assert got[key] == pytest.approx(ref[key], rel=1e-12), key  # scale-invariant up to rounding
    assert M.cev_auc(z * scale) == pytest.approx(M.cev_auc(z), rel=1e-12) and M.rankme(z * scale) > 7
    sv = M.singular_values(z) * 1e307  # a given spectrum that overflows when summed
    assert M.cev_auc(sv, singular_values=True) == pytest.approx(M.cev_auc(z), rel=1e-12)
    assert M.rankme(sv, singular_values=True) == pytest.approx(M.rankme(M.singular_values(z), singular_values=True),
                                                                rel=1e-12)
