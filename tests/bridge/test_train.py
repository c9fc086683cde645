"""The BYOL/SimSiam trainer on a tiny ResNet and a slice of the built-in set (CPU, float32).

Runs are shared through module fixtures (each distinct configuration compiles its step once; runs that
differ only in epochs or run-time hyperparameters reuse the compiled step).
"""
from __future__ import annotations

import json
import math

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from linsim.bridge import augment as A
from linsim.bridge import checkpoint as C
from linsim.bridge import train as T
from linsim.dynamics import predictors as P
from linsim.errors import DivergenceError, LinsimError

from conftest import tiny_cfg

D_PROJ = 16  # the tiny configuration's projector output size d
WALL_CLOCK = {"time_s", "images_per_s"}  # the only logged values that depend on the machine, not the maths


def _records(run):
    return [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]


def _leaves(state):
    return [np.asarray(x) for x in jax.tree_util.tree_leaves(eqx.filter(state, eqx.is_array))]


@pytest.fixture(scope="module")
def byol_runs(tmp_path_factory, tiny_data):
    """Run A: 2 epochs straight. Run B: 1 epoch, then resumed to 2 (as after a kill at epoch 1)."""
    root = tmp_path_factory.mktemp("byol")
    cfg = tiny_cfg(epochs=2)
    T.train(cfg, root / "A", data=tiny_data, progress=False)
    T.train(cfg.replace(epochs=1), root / "B", data=tiny_data, progress=False)
    mid = _records(root / "B")
    T.train(cfg, root / "B", resume=True, data=tiny_data, progress=False)
    return root / "A", root / "B", mid


def test_loss_finite_and_decreasing(byol_runs):
    recs = [r for r in _records(byol_runs[0]) if r["kind"] == "epoch"]
    assert [r["epoch"] for r in recs] == [0, 1, 2]
    losses = [r["loss"] for r in recs]
    # 2 - 2cos in [0, 4] per direction, 2 directions summed: [0, 8] (at init cos ~ 0, so ~4 either side)
    assert all(math.isfinite(x) and 0.0 <= x <= 8.0 for x in losses)
    # at init q and z' are unrelated (loss near 2 + 2 = 4); training aligns them
    assert losses[2] < losses[0] - 0.5


def test_every_logged_quantity_present_and_sane(byol_runs):
    recs = _records(byol_runs[0])
    cfg, _ = T.read_config(byol_runs[0])
    for r in recs:
        for key in ("epoch", "step", "kind", "loss", "images_per_s", "lr", "time_s", "wp_eig_real", "wp_eig_imag",
                    "wp_sym_eig", "f_eig", "asymmetry", "commutator", "alignment", "balance", "backbone_cev_auc",
                    "backbone_rankme", "proj_cev_auc", "proj_rankme", "knn_acc", "probe_acc", "collapsed"):
            assert key in r, key
        assert r["lr"] == pytest.approx(cfg.lr, rel=1e-6)  # constant schedule (float32)
        for key in ("wp_eig_real", "wp_eig_imag", "wp_sym_eig", "f_eig", "alignment"):
            assert len(r[key]) == D_PROJ
        assert r["wp_sym_eig"] == sorted(r["wp_sym_eig"], reverse=True)
        # F is an EMA of batch means of z z^T: positive semi-definite up to float32 round-off
        assert min(r["f_eig"]) >= -1e-5 * max(r["f_eig"]) and max(r["f_eig"]) > 0
        assert r["asymmetry"] >= 0 and 0 <= r["commutator"] <= 2 and r["balance"] >= 0
        assert all(-1e-9 <= a <= 1 + 1e-9 for a in r["alignment"])
        for p in ("backbone", "proj"):
            assert 0.0 <= r[f"{p}_cev_auc"] <= 1.0
        assert 1.0 <= r["proj_rankme"] <= D_PROJ and 1.0 <= r["backbone_rankme"] <= 32
        assert 0.0 <= r["knn_acc"] <= 1.0 and 0.0 <= r["probe_acc"] <= 1.0
        assert isinstance(r["collapsed"], bool)
    assert recs[0]["images_per_s"] is None and all(r["images_per_s"] > 0 for r in recs[1:])
    assert [r["step"] for r in recs] == [0, 8, 16]  # 260 images // batch 32 = 8 steps per epoch (last partial batch dropped)
    # a randomly initialised linear predictor is not symmetric: complex eigenvalues are logged as such
    assert recs[0]["asymmetry"] > 0.5 and max(map(abs, recs[0]["wp_eig_imag"])) > 0.01
    summary = json.loads((byol_runs[0] / "summary.json").read_text())
    assert summary["status"] in ("finished", "collapsed") and summary["epochs_done"] == 2 and summary["steps"] == 16
    assert summary["final"]["loss"] == recs[-1]["loss"]


def test_run_folder_and_config(byol_runs):
    run = byol_runs[0]
    names = sorted(p.name for p in run.iterdir())
    assert names == ["checkpoints", "config.json", "metrics.jsonl", "summary.json"]
    assert sorted(p.name for p in (run / "checkpoints").iterdir()) == ["init.eqx", "init.json", "last.eqx", "last.json"]
    blob = json.loads((run / "config.json").read_text())
    assert blob["kind"] == T.RUN_KIND and blob["linsim_version"] and blob["dataset"]["source"].startswith("generated")
    assert blob["resolved"]["proj_dim"] == D_PROJ and blob["resolved"]["steps_per_epoch"] == 8
    assert T.read_config(run)[0] == tiny_cfg(epochs=2)
    meta = json.loads((run / "checkpoints" / "last.json").read_text())
    assert meta["epoch"] == 2 and meta["step"] == 16


def test_resume_equals_uninterrupted_run_bitwise(byol_runs):
    run_a, run_b, mid = byol_runs
    assert [r["epoch"] for r in mid] == [0, 1]
    ra, rb = _records(run_a), _records(run_b)
    strip = [{k: v for k, v in r.items() if k not in WALL_CLOCK} for r in ra]
    assert strip == [{k: v for k, v in r.items() if k not in WALL_CLOCK} for r in rb]
    for which in ("last", "init"):
        la, lb = _leaves(T.load_run(run_a, which)[1]), _leaves(T.load_run(run_b, which)[1])
        assert len(la) == len(lb) and all(np.array_equal(x, y) for x, y in zip(la, lb))
    # and training moved the parameters (the equality above is not trivial)
    assert not np.array_equal(_leaves(T.load_run(run_a, "init")[1])[0], _leaves(T.load_run(run_a, "last")[1])[0])


def test_load_run_features(byol_runs, tiny_data):
    cfg, state = T.load_run(byol_runs[0])
    imgs = tiny_data.pretrain[:64]  # two full chunks of batch_size 32: one compiled shape
    z = T.predictor_inputs(state, cfg, imgs, jax.random.PRNGKey(0), views=2)
    assert z.shape == (2, 64, D_PROJ) and z.dtype == np.float32 and np.all(np.isfinite(z))
    h = T.backbone_features(state, cfg, imgs)
    assert h.shape == (64, 32) and h.dtype == np.float32
    # deterministic, and the two views differ (independent augmentations)
    assert np.array_equal(z, T.predictor_inputs(state, cfg, imgs, jax.random.PRNGKey(0), views=2))
    assert not np.allclose(z[0], z[1])


def test_checkpoint_detects_mismatched_sidecar(byol_runs, tmp_path):
    _, state = T.load_run(byol_runs[0])
    C.save(tmp_path, "x", state, {"epoch": 1})
    data = bytearray((tmp_path / "x.eqx").read_bytes())
    data[-1] ^= 1
    (tmp_path / "x.eqx").write_bytes(bytes(data))
    with pytest.raises(LinsimError, match="does not match"):
        C.load(tmp_path, "x", state)


def test_checkpoint_killed_between_its_two_writes_falls_back(byol_runs, tmp_path, monkeypatch):
    """The sidecar is written first with the replaced checkpoint's metadata: a kill before the .eqx lands leaves the
    previous .eqx, which loads with its own metadata (epoch 1, not 2) and the flag "recovered"."""
    _, state = T.load_run(byol_runs[0])
    C.save(tmp_path, "x", state, {"epoch": 1})
    C.save(tmp_path, "x", state, {"epoch": 2})  # clean: the sidecar remembers epoch 1
    assert json.loads((tmp_path / "x.json").read_text())["previous"]["epoch"] == 1
    assert C.load(tmp_path, "x", state)[1]["epoch"] == 2
    newer = jax.tree_util.tree_map(lambda a: a + 1 if eqx.is_inexact_array(a) else a, state)

    def killed(*a, **k):
        raise KeyboardInterrupt

    monkeypatch.setattr(C, "atomic_write_bytes", killed)
    with pytest.raises(KeyboardInterrupt):
        C.save(tmp_path, "x", newer, {"epoch": 3})
    tree, meta = C.load(tmp_path, "x", state)
    assert meta["epoch"] == 2 and meta["recovered"] is True and "previous" not in meta
    assert all(np.array_equal(a, b) for a, b in zip(jax.tree_util.tree_leaves(eqx.filter(tree, eqx.is_array)),
                                                    jax.tree_util.tree_leaves(eqx.filter(state, eqx.is_array))))


def test_resume_refuses_config_change(byol_runs, tiny_data):
    with pytest.raises(LinsimError, match="keeps its configuration"):
        T.train(tiny_cfg(epochs=3, lr=0.1), byol_runs[0], resume=True, data=tiny_data, progress=False)
    with pytest.raises(LinsimError, match="already has 2 epochs"):
        T.train(tiny_cfg(epochs=2), byol_runs[0], resume=True, data=tiny_data, progress=False)


def test_nan_loss_stops_with_divergence(tmp_path, tiny_data):
    # lr 1e10 with weight decay: |1 - lr wd| ~ 4e6 per step overflows float32 within a few steps.
    # Same compiled step as the runs above (lr is a run-time argument).
    with pytest.raises(DivergenceError, match="smaller --lr"):
        T.train(tiny_cfg(epochs=2, lr=1e10), tmp_path / "nan", data=tiny_data, progress=False)
    summary = json.loads((tmp_path / "nan" / "summary.json").read_text())
    assert summary["status"] == "nan"
    assert json.loads((tmp_path / "nan" / "checkpoints" / "last.json").read_text())["epoch"] == 0


def test_directpred_predictor_is_symmetric_and_commutes_with_F(tmp_path, tiny_data):
    cfg = tiny_cfg(epochs=1, predictor="directpred")
    T.train(cfg, tmp_path / "dp", data=tiny_data, progress=False)
    _, state = T.load_run(tmp_path / "dp")
    Wp, F = np.asarray(state.online.predictor.Wp, np.float64), np.asarray(state.F_hat, np.float64)
    # with freq 1 the last step reset Wp = U diag(sqrt(s / s_max) + eps) U^T from the final F_hat
    np.testing.assert_allclose(Wp, np.asarray(P.directpred(jnp.asarray(F), eps=0.01)), atol=1e-4)
    scale = np.linalg.norm(Wp) * np.linalg.norm(F)
    assert np.linalg.norm(Wp - Wp.T) <= 1e-6 * np.linalg.norm(Wp)  # float32 eigh output, symmetrised
    assert np.linalg.norm(F @ Wp - Wp @ F) <= 1e-4 * scale  # float32 eigendecomposition of a 16 x 16 F
    last = _records(tmp_path / "dp")[-1]
    assert max(map(abs, last["wp_eig_imag"])) <= 1e-6  # eigenvalues real for a symmetric Wp
    assert last["asymmetry"] <= 1e-6 and last["commutator"] <= 1e-4
    assert max(last["wp_eig_real"]) == pytest.approx(1.01, abs=1e-4)  # top mode sqrt(1) + eps


@pytest.mark.slow
def test_simsiam_without_predictor_collapses(tmp_path, tiny_data):
    # no predictor, stop-gradient, SimSiam target: the representation loses rank (Chen & He 2021, Sec. 4.2)
    cfg = tiny_cfg(epochs=3, predictor="none", ema=0.0, lr=0.1, stop_on_collapse=True)
    summary = T.train(cfg, tmp_path / "ss", data=tiny_data, progress=False)
    recs = [r for r in _records(tmp_path / "ss") if r["kind"] == "epoch"]
    assert recs[-1]["proj_rankme"] < 0.5 * recs[0]["proj_rankme"]
    assert recs[-1]["proj_cev_auc"] > recs[0]["proj_cev_auc"]
    assert recs[-1]["loss"] < 0.5 * recs[0]["loss"]  # the trivial solution drives the loss to 0
    assert "wp_eig_real" not in recs[0]  # no linear predictor: no predictor spectra
    # the flag follows the documented threshold, and --stop-on-collapse stops at the first collapsed epoch
    assert [r["collapsed"] for r in recs] == [r["proj_rankme"] < cfg.collapse_rankme for r in recs]
    first = next((r["epoch"] for r in recs if r["collapsed"]), None)
    assert summary["collapsed_at_epoch"] == first
    if first is not None:
        assert summary["status"] == "collapsed" and summary["epochs_done"] == first == recs[-1]["epoch"]


def test_log_every_adds_step_records(tmp_path, tiny_data):
    T.train(tiny_cfg(epochs=1, log_every=3), tmp_path / "le", data=tiny_data, progress=False)
    recs = _records(tmp_path / "le")
    assert [(r["kind"], r["step"]) for r in recs] == [("epoch", 0), ("step", 3), ("step", 6), ("epoch", 8)]
    step_rec = recs[1]
    assert step_rec["epoch"] == 1 and step_rec["knn_acc"] is None and step_rec["probe_acc"] is None
    assert len(step_rec["wp_eig_real"]) == D_PROJ and 1.0 <= step_rec["proj_rankme"] <= D_PROJ


def _f64_equations(jaxpr) -> list[str]:
    """Equations (recursively through sub-jaxprs) that produce a float64 value."""
    bad = []
    for eqn in jaxpr.eqns:
        for v in eqn.outvars:
            if getattr(v.aval, "dtype", None) == jnp.float64:
                bad.append(str(eqn)[:200])
        for p in eqn.params.values():
            for j in (p if isinstance(p, (list, tuple)) else [p]):
                inner = getattr(j, "jaxpr", None)
                if inner is not None and hasattr(inner, "eqns"):
                    bad += _f64_equations(inner)
                elif hasattr(j, "eqns"):
                    bad += _f64_equations(j)
    return bad


def test_f64_scan_finds_float64_inside_nested_jit():
    inner = jax.jit(lambda x: jnp.sin(x.astype(jnp.float64)).astype(jnp.float32))
    assert _f64_equations(jax.make_jaxpr(lambda x: inner(x) + 1)(jnp.ones(3, jnp.float32)).jaxpr)


@pytest.mark.parametrize("kw", [
    dict(),
    dict(predictor="directpred", optimizer="lars", schedule="cosine"),
    dict(predictor="directcopy", views=3),
    dict(predictor="mlp", ema=0.0, precision="bf16"),
    dict(predictor="symmetric", ema=0.0, stop_grad=False),
])
def test_no_float64_in_the_training_step(kw):
    """linsim enables float64 at import; the step must still compute in float32 (bf16) only.

    Float64 may appear only as Python-literal constants converted to float32 at trace time (e.g. optax's
    ``jnp.where(x > 0, y, 0.0)``); no equation may output a float64 value."""
    cfg = tiny_cfg(**kw)
    st = T.init_state(cfg, 10)
    arrays = eqx.partition(st, eqx.is_array)[0]
    images, idx = jnp.zeros((64, 32, 32, 3), jnp.uint8), jnp.arange(32, dtype=jnp.int32)
    closed = jax.make_jaxpr(T.step_fn(cfg, A.recipe("builtin", 16), st, 10))(arrays, images, idx, T.hyper_of(cfg))
    assert _f64_equations(closed.jaxpr) == []
    assert all(v.aval.dtype != jnp.float64 for v in closed.jaxpr.outvars)
    # the scan is not vacuous: it does see the float32 equations of the network
    assert any(getattr(v.aval, "dtype", None) == jnp.float32 for e in closed.jaxpr.eqns for v in e.outvars)


def _np_cos_loss(q, z):
    qn = q / np.linalg.norm(q, axis=1, keepdims=True)
    zn = z / np.linalg.norm(z, axis=1, keepdims=True)
    return np.mean(2 - 2 * np.sum(qn * zn, axis=1))


def test_pair_loss_against_numpy_reference():
    rng = np.random.default_rng(0)
    q, z = rng.standard_normal((3, 7, 5)).astype(np.float32), rng.standard_normal((3, 7, 5)).astype(np.float32)
    # two views: BYOL's symmetrised loss, both directions summed (float32 vs float64 reference)
    two = float(T.pair_loss(jnp.asarray(q[:2]), jnp.asarray(z[:2])))
    assert two == pytest.approx(_np_cos_loss(q[0], z[1]) + _np_cos_loss(q[1], z[0]), rel=1e-5)
    # m views: every ordered pair i != j, scaled by 2 / (m (m - 1))
    three = float(T.pair_loss(jnp.asarray(q), jnp.asarray(z)))
    ref = sum(_np_cos_loss(q[i], z[j]) for i in range(3) for j in range(3) if i != j) * 2 / 6
    assert three == pytest.approx(ref, rel=1e-5)
    perm = [2, 0, 1]  # relabelling the views (the same way in q and z) leaves the loss unchanged
    assert float(T.pair_loss(jnp.asarray(q[perm]), jnp.asarray(z[perm]))) == pytest.approx(three, rel=1e-6)
    corr = np.asarray(T.batch_correlation(jnp.asarray(z)))
    flat = z.reshape(-1, 5).astype(np.float64)
    np.testing.assert_allclose(corr, flat.T @ flat / flat.shape[0], rtol=1e-5)
    assert corr.dtype == np.float32


@pytest.mark.parametrize("predictor", ["symmetric", "directpred", "directcopy", "linear"])
def test_predictor_rules_come_from_linsim_dynamics(predictor):
    cfg = tiny_cfg(predictor=predictor, freq=2)
    st = T.init_state(cfg)
    rng = np.random.default_rng(1)
    A_ = rng.standard_normal((16, 16)).astype(np.float32)
    F = jnp.asarray(A_ @ A_.T / 16)
    Wp0 = np.asarray(st.online.predictor.Wp)
    out0 = np.asarray(T.apply_predictor_rule(cfg, st.online, F, jnp.asarray(0, jnp.int32), 0.1).predictor.Wp)
    out1 = np.asarray(T.apply_predictor_rule(cfg, st.online, F, jnp.asarray(1, jnp.int32), 0.1).predictor.Wp)
    if predictor == "symmetric":  # projected every step
        np.testing.assert_array_equal(out0, (Wp0 + Wp0.T) / 2)
        np.testing.assert_array_equal(out1, out0)
    elif predictor == "linear":
        np.testing.assert_array_equal(out0, Wp0)
    else:  # reset at steps divisible by freq, from F_hat, by linsim.dynamics.predictors
        rule = P.directpred(F, eps=0.1) if predictor == "directpred" else P.directcopy(F, eps=0.1)
        np.testing.assert_allclose(out0, np.asarray(rule), rtol=1e-6, atol=1e-7)
        np.testing.assert_array_equal(out1, Wp0)
    assert out0.dtype == np.float32
