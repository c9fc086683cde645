"""DirectCopy's theory form Wp = F + eps I: its per-mode fixed point (p = p+-, f = p - eps), the default run
converges to it, and the paper's normalised form F/||F|| + eps I lets s grow without bound in the toy."""
from __future__ import annotations

import json

import jax.numpy as jnp
import numpy as np
import pytest
from typer.testing import CliRunner

import linsim as ls
from linsim.cli import app
from linsim.dynamics.predictors import directcopy, directcopy_eigs, directcopy_fixed_points

runner = CliRunner()


def test_the_two_forms():
    F = jnp.array([[2.0, 1.0], [1.0, 3.0]])
    np.testing.assert_allclose(directcopy(F, eps=0.1, form="theory"), F + 0.1 * jnp.eye(2))
    np.testing.assert_allclose(directcopy(F, eps=0.1, form="code"), F / jnp.linalg.norm(F) + 0.1 * jnp.eye(2))
    np.testing.assert_allclose(directcopy_eigs(jnp.array([2.0, 3.0]), eps=0.1, form="theory"), [2.1, 3.1])
    with pytest.raises(ls.LinsimError, match="DirectCopy form"):
        directcopy(F, form="other")


def test_fixed_points():
    fp = directcopy_fixed_points(0.04, sigma2=0.5, eps=0.01)
    grad = ls.fixed_points(0.04, 1.0, 0.5)
    assert fp.exists and fp.p_plus == grad.p_plus and fp.s_plus == pytest.approx(grad.p_plus - 0.01, abs=1e-15)
    assert fp.s_minus == pytest.approx(grad.p_minus - 0.01, abs=1e-15)
    assert not directcopy_fixed_points(0.2, 0.5, 0.01).exists  # eta > eta_c = 1/6
    assert directcopy_fixed_points(0.04, 0.5, eps=0.7).exists is False  # p+ = 0.624 < eps: no f > 0


def test_default_directcopy_run_converges_to_its_fixed_point(tmp_path):
    res = runner.invoke(app, ["simulate", "--predictor", "directcopy", "--json", "--no-plot", "--out", str(tmp_path / "r")])
    assert res.exit_code == 0, res.output
    summary = json.loads(res.output)
    fp = directcopy_fixed_points(0.04, 0.5, 0.01)
    survivors = [m for m in summary["modes"] if not m["collapsed"]]
    assert summary["status"] == "ok" and len(survivors) >= 4
    for m in survivors:  # Euler with dt = 0.01 to t = 300: converged to the discrete map's fixed point
        assert m["settled"] and abs(m["p"] - fp.p_plus) < 1e-6 and abs(m["s"] - fp.s_plus) < 1e-6
    assert "p+ = 0.623927" in runner.invoke(app, ["simulate", "--predictor", "directcopy", "--no-plot", "--t-max", "5",
                                                   "--out", str(tmp_path / "r2")]).output


def test_matrix_model_directcopy_theory_reaches_p_plus():
    cfg = ls.Config(model="matrix", stats=ls.Stats.isotropic(3, 0.5), hyper=ls.Hyper(predictor="directcopy"),
                    init=ls.Init(scale=1.0), solver=ls.Solver(method="euler", dt=0.05, t_max=200.0, n_save=3))
    traj = ls.simulate(cfg)
    fp = directcopy_fixed_points(0.04, 0.5, 0.01)
    alive = ~traj.collapsed
    assert alive.sum() >= 2
    np.testing.assert_allclose(traj.p[-1, alive], fp.p_plus, atol=1e-6)
    np.testing.assert_allclose(traj.s[-1, alive], fp.s_plus, atol=1e-6)  # matrix s = eig(F) = f


def test_code_form_grows_without_bound_in_the_toy():
    cfg = ls.Config(hyper=ls.Hyper(predictor="directcopy"), predictor=ls.Predictor(form="code"),
                    solver=ls.Solver(method="euler", t_max=100.0, n_save=3))
    traj = ls.simulate(cfg)
    assert traj.status == "diverged" or np.nanmax(traj.s[-1]) > 1e3
