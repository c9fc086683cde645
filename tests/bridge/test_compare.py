"""linsim.bridge.compare: the pieces (mapping of a run, p vs sqrt(s), collapsed modes, verdict logic) and
`linsim bridge compare` end to end on a tiny CPU run."""
from __future__ import annotations

import json
import math

import numpy as np
import pytest
from typer.testing import CliRunner

from linsim.bridge import compare as C
from linsim.bridge import train as T
from linsim.bridge.config import TrainConfig
from linsim.cli import app
from linsim.errors import LinsimError

#: the shapes of tests/bridge/conftest.py's tiny network (d = 16), no probes, 2 epochs of 8 steps
TINY = dict(batch_size=32, image_size=16, width=0.0625, proj_hidden=32, proj_dim=16, eval_size=128,
            probe_train=0, probe_test=0, epochs=2, wd=5e-3)


def test_theory_of_run_mapping():
    """The trainer's loss sums BYOL's normalised loss over the two view orders, linsim's SGD averages them:
    g = 2. lr 0.05, wd 4e-4, pred_wd 1e-3, ratio 10, m = 0.99, momentum 0.9 give by hand alpha = 0.1,
    eta = 2e-4, alpha_p = 10, eta_p = 10 * 1e-3 / 2 = 5e-3, beta = 0.01 / 0.1 = 0.1, time/step = 1."""
    tp = C.theory_of_run(TrainConfig(lr=0.05, wd=4e-4, pred_wd=1e-3, pred_lr_ratio=10.0, ema=0.99, momentum=0.9))
    for k, v in dict(alpha=0.1, eta=2e-4, alpha_p=10.0, eta_p=5e-3, beta=0.1, time_per_step=1.0).items():
        assert getattr(tp, k) == pytest.approx(v, rel=1e-12), k
    assert math.isinf(C.theory_of_run(TrainConfig(ema=0.0)).beta)  # SimSiam
    with pytest.raises(LinsimError, match="SGD"):
        C.theory_of_run(TrainConfig(optimizer="lars"))


def test_p_vs_sqrt_s_and_collapsed_modes():
    """Wp = U diag(c sqrt(s)) U^T (DirectPred's relation) gives Spearman 1 and ratio spread 0 (to rounding);
    reversing the order of p gives Spearman -1; s_j below 1e-3 max s are collapsed and left out."""
    rng = np.random.default_rng(0)
    U, _ = np.linalg.qr(rng.standard_normal((6, 6)))
    s = np.array([4.0, 2.0, 1.0, 0.5, 0.2, 1e-5])
    F = (U * s) @ U.T
    pq = C.p_vs_sqrt_s((U * (0.7 * np.sqrt(s))) @ U.T, F)
    assert pq["live"] == 5 and pq["spearman"] == pytest.approx(1.0) and pq["ratio_spread"] < 1e-10
    assert C.p_vs_sqrt_s((U * np.sqrt(s)[::-1]) @ U.T, F)["spearman"] == pytest.approx(-1.0)
    assert C.n_collapsed(s) == 1 and C.n_collapsed([1.0, 0.0, 0.0]) == 2


def _rec(asym, comm, bal, f):
    return {"asymmetry": asym, "commutator": comm, "balance": bal, "f_eig": f, "wp_sym_eig": [1.0, 0.5, 0.1],
            "n_collapsed": C.n_collapsed(f)}


def test_verdict_logic():
    """A decay verdict holds when the real run does what the linear model did in the same budget: both decay
    -> held; the model decays but the real run does not -> not held. Collapsed-mode counts within max(1, 10%)."""
    from linsim.mapping import TheoryParams

    tp = TheoryParams(alpha=0.1, beta=0.1, eta=0.01, momentum=0.9)
    sim = [_rec(1.0, 0.5, 0.4, [1, 0.5, 0.1]), _rec(0.1, 0.1, 0.1, [1, 0.5, 0.1])]
    real = [_rec(1.0, 0.5, 0.4, [1, 0.5, 0.1]), _rec(0.2, 0.4, 0.1, [1, 1e-5, 1e-6])]
    pq = {"spearman": 0.9, "ratio_spread": 0.1, "live": 3}
    v = {x["name"]: x for x in C.verdicts(real, sim, tp, pq, pq, 3, t_total=100.0)}
    assert v["symmetry"]["held"] is True and v["alignment"]["held"] is False and v["balance"]["held"] is True
    assert v["collapsed_modes"]["real"] == 2 and v["collapsed_modes"]["held"] is False
    assert v["p_vs_sqrt_s"]["held"] is True and v["wp_spectrum"]["held"] is True
    assert "0.135" in v["balance"]["prediction"]  # exp(-2 * 0.01 * 100)


def test_compare_options_validated():
    with pytest.raises(LinsimError, match="images"):
        C.CompareOptions(images=2)


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory, tiny_data):
    run = tmp_path_factory.mktemp("cmp") / "run"
    T.train(TrainConfig(**TINY), run, data=tiny_data, progress=False)
    return run


@pytest.mark.slow
def test_compare_end_to_end(tiny_run):
    """A 2-epoch tiny run (16 steps, d = 16): `linsim bridge compare` prints the mapping and one verdict per
    prediction and writes comparison.json / comparison.png into the run; the simulation has one record per
    epoch and starts from F = X + X' (W(0) = I), whose top eigenvalue is at least X's."""
    r = CliRunner().invoke(app, ["bridge", "compare", str(tiny_run), "--images", "64", "--seeds", "2"])
    assert r.exit_code == 0, r.output
    assert "mapped: alpha = 0.1," in r.output and "held" in r.output
    res = json.loads((tiny_run / "comparison.json").read_text())
    assert res["theory"]["alpha"] == pytest.approx(2 * 0.05) and res["simulation"]["steps_per_epoch"] == 256 // 32
    assert len(res["sim"]) == len(res["real"]) == 3
    names = [v["name"] for v in res["verdicts"]]
    assert names == ["symmetry", "alignment", "balance", "p_vs_sqrt_s", "collapsed_modes", "wp_spectrum", "f_spectrum"]
    assert res["held"] + res["not_held"] + res["undecided"] == 7
    assert sum(line.startswith(tuple(names)) for line in r.output.splitlines()) == 7
    assert res["sim"][0]["f_eig"][0] >= res["stats"]["x_eig"][0] - 1e-9
    assert (tiny_run / "comparison.png").stat().st_size > 1000


def test_compare_out_folder_is_checked_first_and_never_overwrites_foreign_files(tiny_run, tmp_path):
    """A separate --out is a linsim output folder: one holding a user's comparison.png is refused (exit 2) before
    any compute and left byte for byte; a new one gets both files and a manifest; rerunning needs --force;
    --out equal to the run folder writes into the run as the default does."""
    args = ["bridge", "compare", str(tiny_run), "--images", "64", "--seeds", "2"]
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "comparison.png").write_bytes(b"my own figure")
    r = CliRunner().invoke(app, [*args, "--out", str(mine), "--force"])
    assert r.exit_code == 2 and "did not write" in r.output
    assert (mine / "comparison.png").read_bytes() == b"my own figure" and sorted(p.name for p in mine.iterdir()) == ["comparison.png"]
    new = tmp_path / "new"
    r = CliRunner().invoke(app, [*args, "--out", str(new)])
    assert r.exit_code == 0, r.output
    assert {"comparison.json", "comparison.png", ".linsim-outputs.json"} <= {p.name for p in new.iterdir()}
    again = CliRunner().invoke(app, [*args, "--out", str(new)])
    assert again.exit_code == 2 and "--force" in again.output
    assert CliRunner().invoke(app, [*args, "--out", str(new), "--force"]).exit_code == 0
    assert CliRunner().invoke(app, [*args, "--out", str(tiny_run)]).exit_code == 0


def test_compare_refuses_mlp_predictor_and_missing_run(tmp_path):
    with pytest.raises(LinsimError, match="linear predictor"):
        C.simulate_run(TrainConfig(predictor="mlp"), None, np.eye(2), None, steps_per_epoch=1, epochs=1, seeds=1, seed=0)
    r = CliRunner().invoke(app, ["bridge", "compare", str(tmp_path / "nope")])
    assert r.exit_code == 2 and "not found" in r.output


def test_simulate_run_cosine_schedule_chains_epochs():
    """A cosine schedule runs as one SGD segment per epoch at the mid-epoch lr (resuming buffers and
    weights): one saved state per epoch, all finite, and the last epoch (lr ~ 0.15 x base) moves Wp less
    than the first (lr ~ 0.85 x base) for this small, slowly-moving model."""
    import linsim as ls

    cfg = TrainConfig(schedule="cosine", lr=0.02, momentum=0.5, ema=0.9, batch_size=16, proj_dim=3)
    stats = ls.Stats.matrices(np.diag([1.0, 0.5, 0.2]), 0.3 * np.eye(3))
    Wp0 = np.array([[0.5, 0.1, 0.0], [0.0, 0.4, 0.2], [0.1, 0.0, 0.3]])
    st = C.simulate_run(cfg, stats, Wp0, C.theory_of_run(cfg), steps_per_epoch=4, epochs=2, seeds=2, seed=0)
    assert st["Wp"].shape == (2, 3, 3, 3) and np.all(np.isfinite(st["Wp"]))
    step = np.linalg.norm(np.diff(st["Wp"], axis=1), axis=(-2, -1)).mean(axis=0)
    assert step[1] < step[0]
