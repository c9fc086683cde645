"""linsim.mapping: the algebra of training conventions -> theory parameters, checked against a hand-written
PyTorch-style SGD step (numpy), round trips, and the `linsim map` command."""
from __future__ import annotations

import json
import math

import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from typer.testing import CliRunner

import linsim as ls
from linsim.cli import app
from linsim.config import Noise
from linsim.dynamics.discrete import simulate_discrete
from linsim.errors import LinsimError
from linsim.mapping import (
    LossConvention,
    TheoryParams,
    TrainingConventions,
    buffers_to_training,
    mode_fates,
    to_theory,
    to_training,
)

from torch_reference import exact_views, psd, torch_style_run

N, N1, STEPS = 4, 3, 3  # one fixed shape: the discrete simulator compiles once


losses = st.builds(
    LossConvention,
    output=st.sampled_from(["sum", "mean"]),
    out_dim=st.just(N1),
    batch=st.sampled_from(["mean", "sum"]),
    batch_size=st.just(2 * N),
    half=st.booleans(),
    symmetrised=st.sampled_from(["no", "sum", "mean"]),
)


@given(
    seed=st.integers(0, 2**31 - 1),
    alpha=st.floats(1e-3, 0.2),
    mu=st.sampled_from([0.0, 0.5, 0.9]),
    ema=st.sampled_from([0.0, 0.9, 0.99]),
    wd=st.floats(0.0, 0.05),
    pred=st.sampled_from(["same", "own"]),
    loss=losses,
)
def test_torch_step_equals_linsim_step(seed, alpha, mu, ema, wd, pred, loss):
    """A mapped PyTorch-style run (3 steps: momentum buffers, per-block lr and weight decay, EMA after the
    step) equals linsim's discrete step with the mapped parameters, weights and buffers.

    Tolerance 1e-11 relative: both sides are O(1) numbers after 3 steps; the only difference is rounding
    in the sample moments (2n samples, ~1e-15 relative) amplified by at most ~g * lr * ||S|| per step."""
    rng = np.random.default_rng(seed)
    X, Xp = psd(rng, N, 0.2), psd(rng, N, 0.05)
    x1, x2 = exact_views(X, Xp)
    W = rng.standard_normal((N1, N)) / 2
    Wp = rng.standard_normal((N1, N1)) / 2
    Wa = W.copy() if ema == 0 else rng.standard_normal((N1, N)) / 2
    g_hand = (1.0 if loss.half else 2.0) / (N1 if loss.output == "mean" else 1) * (
        2 * N if loss.batch == "sum" else 1) * (2 if loss.symmetrised == "sum" else 1)
    lr = alpha / g_hand
    own = pred == "own"
    tc = TrainingConventions(lr=lr, momentum=mu, ema=ema, weight_decay=wd, loss=loss,
                             pred_lr=3.0 * lr if own else None, pred_weight_decay=0.02 if own else None)
    tp = to_theory(tc)
    cfg = ls.Config(model="matrix", n1=N1, hyper=ls.Hyper(eta=tp.eta, eta_p=tp.eta_p, beta=tp.beta_ode, alpha_p=tp.alpha_p),
                    stats=ls.Stats.matrices(X, Xp),
                    solver=ls.Solver(t_max=STEPS * tp.time_per_step, n_save=STEPS + 1, method="euler", dt=tp.alpha),
                    noise=Noise(momentum=tp.momentum))
    traj = simulate_discrete(cfg, y0={"W": W, "Wp": Wp, "Wa": Wa})
    assert traj.steps == STEPS
    ref = torch_style_run(W, Wp, Wa, x1, x2, tc, STEPS)
    for k, (Wk, Wpk, Wak, bW, bP) in enumerate(ref, start=1):
        for name, want in (("W", Wk), ("Wp", Wpk), ("Wa", Wak)):
            np.testing.assert_allclose(traj.states[name][k], want, rtol=1e-11, atol=1e-12, err_msg=name)
        tW, tP = buffers_to_training(traj.extras["buf_W"][k], traj.extras["buf_Wp"][k], tp, loss)
        np.testing.assert_allclose(tW, bW, rtol=1e-10, atol=1e-11 * max(1.0, np.abs(bW).max()))
        np.testing.assert_allclose(tP, bP, rtol=1e-10, atol=1e-11 * max(1.0, np.abs(bP).max()))


def test_naive_lr_without_mapping_differs():
    """Sanity of the check above: feeding the raw lr as alpha (no 2/d factor) does NOT reproduce the step."""
    rng = np.random.default_rng(0)
    X, Xp = psd(rng, N, 0.2), psd(rng, N, 0.05)
    x1, x2 = exact_views(X, Xp)
    W, Wp = rng.standard_normal((N1, N)) / 2, rng.standard_normal((N1, N1)) / 2
    tc = TrainingConventions(lr=0.05, loss=LossConvention(output="mean", out_dim=N1))
    ref = torch_style_run(W, Wp, W.copy(), x1, x2, tc, 1)[0][0]
    cfg = ls.Config(model="matrix", n1=N1, hyper=ls.Hyper(eta=0.0, beta=math.inf), stats=ls.Stats.matrices(X, Xp),
                    solver=ls.Solver(t_max=0.05, n_save=2, method="euler", dt=0.05))
    naive = simulate_discrete(cfg, y0={"W": W, "Wp": Wp, "Wa": W.copy()}).states["W"][1]
    assert np.max(np.abs(naive - ref)) > 1e-3


# ---------------------------------------------------------------- round trips


@given(
    lr=st.floats(1e-4, 1.0), mu=st.floats(0.0, 0.99), ema=st.one_of(st.just(0.0), st.floats(0.5, 0.9999)),
    wd=st.floats(0.0, 0.1), pred_lr=st.floats(1e-4, 1.0), pred_wd=st.floats(0.0, 0.1), loss=losses,
)
def test_round_trip_training_theory_training(lr, mu, ema, wd, pred_lr, pred_wd, loss):
    """to_training(to_theory(tc)) == tc (rtol 1e-12: a few float multiplications and divisions)."""
    tc = TrainingConventions(lr=lr, momentum=mu, ema=ema, weight_decay=wd, pred_lr=pred_lr,
                             pred_weight_decay=pred_wd, loss=loss)
    back = to_training(to_theory(tc), loss)
    for f in ("lr", "momentum", "weight_decay", "pred_lr", "pred_weight_decay"):
        assert getattr(back, f) == pytest.approx(getattr(tc, f), rel=1e-12, abs=1e-15), f
    assert back.ema == pytest.approx(tc.ema, rel=1e-12, abs=1e-12)


@given(
    alpha=st.floats(1e-4, 1.0), beta=st.one_of(st.just(math.inf), st.floats(0.01, 1.0)), eta=st.floats(0, 0.2),
    eta_p=st.floats(0, 0.2), alpha_p=st.floats(0.1, 10.0), mu=st.floats(0.0, 0.99), loss=losses,
)
def test_round_trip_theory_training_theory(alpha, beta, eta, eta_p, alpha_p, mu, loss):
    """to_theory(to_training(tp)) == tp (rtol 1e-9 for beta: 1 - (1 - alpha beta) loses digits when
    alpha beta ~ 1e-4; 1e-12 for the rest)."""
    tp = TheoryParams(alpha=alpha, beta=beta, eta=eta, eta_p=eta_p, alpha_p=alpha_p, momentum=mu)
    back = to_theory(to_training(tp, loss))
    for f in ("alpha", "eta", "alpha_p", "momentum"):
        assert getattr(back, f) == pytest.approx(getattr(tp, f), rel=1e-12, abs=1e-15), f
    assert back.eta_p_value == pytest.approx(eta_p, rel=1e-12, abs=1e-15)
    assert back.beta == pytest.approx(beta, rel=1e-9) if math.isfinite(beta) else math.isinf(back.beta)


def test_gradient_scale_cases():
    """g for the common conventions: theory 1/2-sum = 1; torch MSELoss over d = 2/d; BYOL's summed two
    view orders of a sum loss = 4; a batch-summed loss of B samples = 2B."""
    assert LossConvention(half=True).gradient_scale() == 1.0
    assert LossConvention(output="mean", out_dim=128).gradient_scale() == 2 / 128
    assert LossConvention(symmetrised="sum").gradient_scale() == 4.0
    assert LossConvention(symmetrised="mean").gradient_scale() == 2.0
    assert LossConvention(batch="sum", batch_size=256).gradient_scale() == 512.0


@pytest.mark.parametrize("kw, msg", [
    (dict(output="mean"), "out_dim"), (dict(batch="sum"), "batch_size"), (dict(output="avg"), "output"),
    (dict(symmetrised="yes"), "symmetrised"), (dict(out_dim=0), "out_dim"),
])
def test_bad_loss_convention(kw, msg):
    with pytest.raises(LinsimError, match=msg):
        LossConvention(**kw)


@pytest.mark.parametrize("kw, msg", [
    (dict(lr=0.0), "lr"), (dict(lr=0.1, momentum=1.0), "momentum"), (dict(lr=0.1, ema=1.0), "ema"),
    (dict(lr=0.1, weight_decay=-1e-4), "weight_decay"), (dict(lr=float("nan")), "lr"),
])
def test_bad_training_conventions(kw, msg):
    with pytest.raises(LinsimError, match=msg):
        TrainingConventions(**kw)


def test_bad_theory_params():
    with pytest.raises(LinsimError, match="alpha \\* beta"):
        TheoryParams(alpha=0.5, beta=3.0)


# ---------------------------------------------------------------- fates and the CLI


def test_mode_fates_match_fixed_points():
    """Per-mode fates: eta >= eta_c,j collapses; otherwise p+- are linsim's fixed points, the relaxation time
    is 1/|slowest Jacobian eigenvalue| and relax_steps = relax_time / (alpha/(1-mu))."""
    tp = TheoryParams(alpha=0.01, beta=1.0, eta=0.04, alpha_p=1.0, momentum=0.9)
    x, xp = np.array([1.0, 1.0, 0.3]), np.array([0.5, 2.0, 0.5])
    fates = mode_fates(tp, x, xp)
    fp = ls.fixed_points(0.04, 1.0, 0.5)
    assert fates[0]["p_plus"] == pytest.approx(fp.p_plus, rel=1e-14)
    assert fates[0]["relax_time"] > 0 and fates[0]["relax_steps"] == pytest.approx(fates[0]["relax_time"] / 0.1)
    assert fates[0]["step_stable"] is True
    assert fates[1]["eta_c"] == pytest.approx(1 / 12) and fates[1]["fate"].startswith("survives")
    assert fates[2]["eta_c"] == pytest.approx(0.09 / 3.2) and fates[2]["fate"].startswith("collapses")
    big = mode_fates(TheoryParams(alpha=50.0, beta=math.inf, eta=0.04), [1.0], [0.5])[0]
    assert big["step_stable"] is False
    free = mode_fates(TheoryParams(alpha=0.01, eta=0.0), [1.0], [0.5], steps_per_epoch=10)[0]
    assert free["p_plus"] == pytest.approx(1 / 1.5) and free["fate"].startswith("survives outside the eta = 0")
    assert free["relax_epochs"] == pytest.approx(free["relax_time"] / 0.01 / 10)


runner = CliRunner()


def test_cli_map_pytorch_config():
    """Done-when check. PyTorch-style: torch.nn.MSELoss (mean over d = 10 outputs and over the batch),
    lr 0.05, momentum 0.9, EMA m = 0.99, weight decay 1e-3, predictor lr 0.1 (same weight decay).
    By hand: g = 2/d = 0.2; alpha = g lr = 0.01; eta = wd/g = 5e-3; alpha_p = 0.1/0.05 = 2;
    eta_p = alpha_p wd/g = 0.01; beta = (1 - m)/alpha = 1.0; momentum-effective time per step
    alpha/(1 - mu) = 0.1; EMA rate in that time beta (1 - mu) = 0.1."""
    r = runner.invoke(app, ["map", "--lr", "0.05", "--momentum", "0.9", "--ema", "0.99", "--wd", "1e-3",
                            "--pred-lr", "0.1", "--loss", "mean", "--out-dim", "10", "--json"])
    assert r.exit_code == 0, r.output
    d = json.loads(r.output)["theory"]
    want = dict(alpha=0.01, eta=5e-3, alpha_p=2.0, eta_p=0.01, beta=1.0, momentum=0.9, time_per_step=0.1, beta_ode=0.1)
    for k, v in want.items():
        assert d[k] == pytest.approx(v, rel=1e-12), k
    assert json.loads(r.output)["gradient_scale"] == pytest.approx(0.2)


def test_cli_map_table_and_stats(tmp_path):
    """With --stats the table lists each mode's fate; a mode with eta >= eta_c is predicted to collapse."""
    f = tmp_path / "s.npz"
    np.savez(f, x=np.array([1.0, 0.2]), xp=np.array([0.5, 0.5]))
    r = runner.invoke(app, ["map", "--lr", "0.03", "--momentum", "0.9", "--ema", "0.996", "--wd", "0.05",
                            "--stats", str(f)])
    assert r.exit_code == 0, r.output
    assert "alpha" in r.output and "collapses" in r.output and "survives" in r.output
    r = runner.invoke(app, ["map", "--lr", "0.03", "--wd", "0.05", "--stats", str(f), "--json"])
    modes = json.loads(r.output)["modes"]
    assert modes[0]["fate"].startswith("survives") and modes[1]["fate"].startswith("collapses")


def test_cli_map_bad_input():
    r = runner.invoke(app, ["map", "--lr", "0.05", "--loss", "mean"])
    assert r.exit_code == 2 and "out_dim" in r.output
    r = runner.invoke(app, ["map", "--lr", "-1"])
    assert r.exit_code == 2 and "lr" in r.output


def _views_of(key, cfg, sampler):
    """The minibatch (x1, x2) linsim's SGD step k uses: its samples, or (moments) a batch with exactly the second
    moment linsim drew, sum_b zeta_b zeta_b^T = A A^T, built as the rows of Q A^T with Q orthonormal columns."""
    from linsim.dynamics import stochastic as sto
    from linsim.dynamics.wishart import bartlett

    B = cfg.noise.batch
    Ru, Rv, diag = sto.view_roots(cfg)
    if sampler == "samples":
        return (np.asarray(v) for v in sto._sample_views(key, B, jnp.asarray(Ru), jnp.asarray(Rv), diag))
    A = np.asarray(bartlett(key, 2 * N, B))
    Q, _ = np.linalg.qr(np.random.default_rng(0).standard_normal((B, 2 * N)))
    zeta = Q @ A.T
    u, v = sto._times(zeta[:, :N], Ru, diag), sto._times(zeta[:, N:], Rv, diag)
    return u + v, u - v


@pytest.mark.parametrize("sampler", ["samples", "moments"])
@pytest.mark.parametrize("loss", [LossConvention(output="mean", out_dim=N1, symmetrised="sum"),
                                  LossConvention(batch="sum", batch_size=16, half=True)])
def test_torch_minibatch_steps_equal_linsim_sgd_steps(loss, sampler):
    """The same check for linsim's finite-batch SGD ensemble (un-normalised loss): regenerate its minibatches
    (same keys; for the moment sampler, a batch with the drawn second moment), run the hand-written torch loop on
    them, compare after 3 steps. Per batch (not only in expectation) the torch loss is g times linsim's, so the
    agreement is to rounding (rtol 1e-11); a wrong factor loss or view construction is off at O(1)."""
    import jax

    from linsim.dynamics import stochastic as sto

    rng = np.random.default_rng(5)
    X, Xp = psd(rng, N, 0.2), psd(rng, N, 0.05)
    W, Wp, Wa = rng.standard_normal((N1, N)) / 2, rng.standard_normal((N1, N1)) / 2, rng.standard_normal((N1, N)) / 2
    tc = TrainingConventions(lr=0.02 / loss.gradient_scale(), momentum=0.9, ema=0.99, weight_decay=0.01,
                             pred_lr=0.05 / loss.gradient_scale(), pred_weight_decay=0.02, loss=loss)
    tp = to_theory(tc)
    cfg = ls.Config(model="matrix", n1=N1, hyper=ls.Hyper(eta=tp.eta, eta_p=tp.eta_p, beta=tp.beta_ode, alpha_p=tp.alpha_p),
                    stats=ls.Stats.matrices(X, Xp), init=ls.Init(seed=7),
                    solver=ls.Solver(t_max=STEPS * tp.time_per_step, n_save=STEPS + 1, method="euler", dt=tp.alpha),
                    noise=Noise(kind="sgd", batch=16, seeds=1, momentum=tp.momentum, symmetric=loss.symmetrised != "no",
                                sampler=sampler))
    ens = sto.simulate_sgd(cfg, y0={"W": W, "Wp": Wp, "Wa": Wa})
    assert ens.extras["sampler"] == sampler
    key = sto._keys(cfg, 1)[0]
    state, bW, bP = (W, Wp, Wa), None, None
    for k in range(STEPS):
        x1, x2 = _views_of(jax.random.fold_in(key, k), cfg, sampler)
        *state, bW, bP = torch_style_run(*state, x1, x2, tc, 1, bW, bP)[-1]
        for name, want in zip(("W", "Wp", "Wa"), state):
            np.testing.assert_allclose(ens.states[name][0, k + 1], want, rtol=1e-11, atol=1e-12, err_msg=f"{name} step {k}")
