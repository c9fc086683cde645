"""The Python API and the simulate CLI's inputs: stochastic configs are not silently run as ODEs, the SGD/SDE
entry points are exported, explicit initial states are checked key by key, ``--init`` starts from given
weights, Wp's own (complex) eigenvalues are reported, the s conventions of the two models agree, and a mode
still moving at t_max is not called settled."""
from __future__ import annotations

import json

import numpy as np
import pytest
from typer.testing import CliRunner

import linsim as ls
from linsim.cli import app
from linsim.errors import LinsimError

runner = CliRunner()


def invoke(*args):
    return runner.invoke(app, [str(a) for a in args])


def test_simulate_refuses_a_stochastic_config_and_the_entry_points_are_exported():
    cfg = ls.Config(noise=ls.Noise(kind="sgd", batch=8), solver=ls.Solver(method="euler", t_max=1.0, n_save=3))
    with pytest.raises(LinsimError, match=r"simulate_sgd\(cfg\)"):
        ls.simulate(cfg)
    ens = ls.simulate_sgd(cfg)
    assert isinstance(ens, ls.Ensemble) and ens.kind == "sgd"
    assert ls.simulate_sde is not None and ls.simulate_ensemble is not None and ls.Predictor().rho == 0.3


MATRIX = ls.Config(model="matrix", n1=3, stats=ls.Stats.isotropic(4, 0.5), solver=ls.Solver(t_max=1.0, n_save=3))
GOOD = {"W": np.ones((3, 4)) * 0.1, "Wp": np.eye(3) * 0.5, "Wa": np.ones((3, 4)) * 0.1}


@pytest.mark.parametrize("change,needle", [
    (lambda y: y.pop("Wa"), r"missing 'Wa' \(expected shape \(3, 4\)"),
    (lambda y: y.__setitem__("W", y["W"].T), r"y0\['W'\] has shape \(4, 3\), expected \(3, 4\).*transposed"),
    (lambda y: y.__setitem__("Wq", np.eye(3)), r"unknown key 'Wq'.*W \(3, 4\), Wp \(3, 3\), Wa \(3, 4\)"),
    (lambda y: y.__setitem__("Wp", np.array([["a", "b"]])), r"y0\['Wp'\] must hold real numbers of shape \(3, 3\)"),
    (lambda y: y.__setitem__("Wp", np.full((3, 3), np.nan)), "not finite"),
])
def test_bad_initial_states_are_one_linsim_error(change, needle):
    y0 = {k: v.copy() for k, v in GOOD.items()}
    change(y0)
    with pytest.raises(LinsimError, match=needle):
        ls.simulate(MATRIX, y0=y0)


def test_simsiam_initial_state_may_omit_the_target():
    cfg = ls.Config(hyper=ls.Hyper(beta=float("inf")), stats=ls.Stats.isotropic(2, 0.5),
                    solver=ls.Solver(t_max=1.0, n_save=2))
    traj = ls.simulate(cfg, y0={"p": [0.3, 0.5], "w": [0.2, 0.4]})
    np.testing.assert_allclose(traj.states["wa"][0], [0.2, 0.4])


def test_cli_init_starts_from_given_weights(tmp_path):
    np.savez(tmp_path / "init.npz", p=np.array([0.3, -0.2]), w=np.array([0.5, 0.1]), wa=np.array([0.5, 0.1]))
    res = invoke("simulate", "--n", 2, "--init", tmp_path / "init.npz", "--t-max", 1, "--n-save", 3, "--no-plot",
                 "--out", tmp_path / "r")
    assert res.exit_code == 0, res.output
    with np.load(tmp_path / "r" / "trajectory.npz") as z:
        np.testing.assert_array_equal(z["state_p"][0], [0.3, -0.2])
        np.testing.assert_array_equal(z["state_w"][0], [0.5, 0.1])
    np.savez(tmp_path / "bad.npz", p=np.ones(3), w=np.ones(3))
    res = invoke("simulate", "--n", 2, "--init", tmp_path / "bad.npz", "--out", tmp_path / "r2")
    assert res.exit_code == 2 and res.output.count("\n") == 1 and "y0['p'] has shape (3,), expected (2,)" in res.output
    res = invoke("simulate", "--init", tmp_path / "missing.npz", "--out", tmp_path / "r3")
    assert res.exit_code == 2 and "does not exist" in res.output
    assert not (tmp_path / "r2").exists() and not (tmp_path / "r3").exists()


def test_n1_with_the_modes_model_is_refused(tmp_path):
    res = invoke("simulate", "--n1", 8, "--out", tmp_path / "r")
    assert res.exit_code == 2 and "--n1 applies to --model matrix only" in res.output


def test_wp_eigenvalues_of_wp_itself_are_reported_complex():
    # A rotation-like Wp has complex eigenvalues a +- ib; sym(Wp) has the real a, a. Both must be reported.
    Wp = np.array([[0.5, 0.4, 0.0], [-0.4, 0.5, 0.0], [0.0, 0.0, 0.2]])
    y0 = {"W": np.eye(3, 4) * 0.3, "Wp": Wp, "Wa": np.eye(3, 4) * 0.3}
    traj = ls.simulate(MATRIX, y0=y0)
    lam = np.linalg.eigvals(traj.states["Wp"])
    for t in (0, -1):
        got = traj.extras["wp_eig_real"][t] + 1j * traj.extras["wp_eig_imag"][t]
        np.testing.assert_allclose(np.sort_complex(got), np.sort_complex(lam[t]), atol=1e-12)
    np.testing.assert_allclose(traj.extras["wp_eig_imag"][0], [0.4, -0.4, 0.0], atol=1e-12)
    np.testing.assert_allclose(traj.extras["wp_eig"][0], [0.5, 0.5, 0.2], atol=1e-12)  # sym(Wp): real
    ev = traj.summary()["wp_eigenvalues"]
    assert set(ev) == {"symmetric_part", "real", "imag"} and max(abs(v) for v in ev["imag"]) > 0.1


def test_s_convention_matrix_eig_of_wxwt_vs_per_mode_w_squared():
    # Diagonal X = diag(x): the matrix model started diagonal stays diagonal, and its s_j = eig(W X W^T)
    # = x_j w_j^2, while the per-mode model reports s_j = w_j^2 (both documented in Trajectory).
    x, xp = np.array([2.0, 0.5]), np.array([0.3, 0.3])
    w0, p0 = np.array([0.6, 0.4]), np.array([0.5, 0.3])
    solver = ls.Solver(t_max=5.0, n_save=6, rtol=1e-11, atol=1e-13)
    modes = ls.simulate(ls.Config(stats=ls.Stats.diagonal(x, xp), solver=solver), y0={"p": p0, "w": w0, "wa": w0})
    mat = ls.simulate(ls.Config(model="matrix", stats=ls.Stats.diagonal(x, xp), solver=solver),
                      y0={"W": np.diag(w0), "Wp": np.diag(p0), "Wa": np.diag(w0)})
    f_modes = x * modes.s  # eigenvalues of F from the per-mode amplitudes
    order = np.argsort(-f_modes[-1])
    np.testing.assert_allclose(mat.s, f_modes[:, order], rtol=1e-8)  # solver tolerance 1e-11, 5 time units
    np.testing.assert_allclose(mat.p, modes.p[:, order], rtol=1e-8)


def test_a_mode_still_moving_at_t_max_is_not_settled(tmp_path):
    y0 = {"p": np.array([0.1, 0.2]), "w": np.array([0.5, 0.8]), "wa": np.array([0.5, 0.8])}  # far from p+, s+
    cfg = ls.Config(stats=ls.Stats.isotropic(2, 0.5), solver=ls.Solver(t_max=3.0, n_save=31))
    short = ls.simulate(cfg, y0=y0)
    assert not short.settled.any() and not short.collapsed.any()
    summary = short.summary()
    assert all(not m["settled"] and m["settle_time"] is None for m in summary["modes"] if not m["collapsed"])
    full = ls.simulate(ls.Config())
    assert full.settled.sum() == 7 and not full.settled[full.collapsed].any()
    np.savez(tmp_path / "init.npz", **y0)
    res = invoke("simulate", "--n", 2, "--init", tmp_path / "init.npz", "--t-max", 3, "--n-save", 31, "--no-plot",
                 "--out", tmp_path / "r")
    assert res.exit_code == 0 and "still moving at t_max" in res.output and "settled" not in res.output


def test_fixed_points_shares_simulates_defaults():
    d = json.loads(invoke("fixed-points", "--json").output)
    h = ls.Hyper()
    assert (d["eta"], d["beta"], d["alpha_p"], d["eta_p"], d["sigma2"]) == (h.eta, h.beta, h.alpha_p, h.eta, 0.5)
    d2 = json.loads(invoke("fixed-points", "--json", "--eta-p", 0.08).output)
    assert d2["s_plus"] == pytest.approx(2 * d["s_plus"], rel=1e-12)  # s = (eta_p/eta) p^2/alpha_p
