"""The data behind every figure in figures/ says what its figure says (tested on the data, not the pixels).

Each figure's recipe (experiments/<name>.py) writes <name>.npz (or .csv) beside <name>.png; these tests read the
committed data and check the claim each figure makes, so a regenerated figure that stops supporting its own
caption fails here. One cheap recipe is also rerun end to end (li2022_collapse), to tie the data to the code.
"""
from __future__ import annotations

import csv
import importlib.util
import sys
from pathlib import Path

import numpy as np
import pytest

import linsim as ls
from linsim.dynamics.modes import in_collapse_basin

REPO = Path(__file__).resolve().parents[1]
FIG = REPO / "figures"
RECIPES = sorted(p.stem for p in (REPO / "experiments").glob("*.py") if not p.name.startswith("_"))


def load(name: str) -> dict[str, np.ndarray]:
    with np.load(FIG / f"{name}.npz", allow_pickle=False) as d:
        return {k: d[k] for k in d.files}


def recipe(name: str):
    """Import experiments/<name>.py as a module (recipes import their helpers from experiments/)."""
    folder = str(REPO / "experiments")
    if folder not in sys.path:
        sys.path.insert(0, folder)
    spec = importlib.util.spec_from_file_location(f"recipe_{name}", REPO / "experiments" / f"{name}.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_every_recipe_has_its_png_and_data():
    for name in RECIPES:
        assert (FIG / f"{name}.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", name
        assert (FIG / f"{name}.npz").is_file() or (FIG / f"{name}.csv").is_file(), name


def test_phase_portrait_shading_is_the_simulated_basin():
    d = load("phase_portrait")
    for eta in ("0", "0.04"):
        collapsed, predicted = d[f"collapsed_eta{eta}"], d[f"predicted_eta{eta}"]
        # the analytic basin (exact at eta = 0, the saddle's stable manifold at eta > 0) is what the simulated
        # 60 x 60 grid does, up to a few points within one grid step of the edge (slow there): <= 0.2%
        assert np.mean(collapsed != predicted) <= 0.002
        assert 0.05 < predicted.mean() < 0.5  # both fates are drawn
    # trajectories are dense curves: 1501 saves, log-spaced
    assert d["sample_p_eta0.04"].shape[0] >= 1000
    # a collapsed sample trajectory is drawn at eta > 0 (the zoom panel shows it)
    assert d["sample_collapsed_eta0.04"].any() and not d["sample_collapsed_eta0.04"].all()


def test_readme_run_has_a_collapsed_mode_and_dense_early_saves():
    d = load("readme_run")
    assert d["collapsed"].sum() == 1
    assert np.sum(d["ts"] < 1.0) >= 100  # the fast early motion (t < 1) is sampled densely


def test_directpred_toy_outcomes():
    d = load("directpred_toy")
    fp = ls.fixed_points(0.04, 1.0, 0.5)
    # theory form p = sqrt(alpha_p s): all 6 alive at p+ (full-batch Euler, alpha = 0.05: O(alpha) from p+)
    assert d["alive_dp_theory"] == 6
    np.testing.assert_allclose(d["p_dp_theory"][-1], fp.p_plus, atol=1e-2)
    # code form in the un-normalised toy: every mode dies, although p_j -> 1.01 looks healthy
    assert d["alive_dp_code"] == 0 and np.all(d["s_dp_code"][-1] < 1e-12)
    assert np.all(d["p_dp_code"][-1] > 0.99)
    # code form with the normalised loss: no mode dies
    assert d["alive_dp_code_normalised"] == 6 and np.all(d["s_dp_code_normalised"][-1] > 1e-3)


def test_multiview_fixed_budget_and_fixed_n():
    d = load("multiview_kernel")
    views = list(d["views"])
    # at fixed n*m the error stays at the two-view baseline up to m = 4, and is worse at m = 16
    assert d["matches_two_view"][:, : views.index(4) + 1].all()
    mean = d["kernel_error"].mean(-1)
    assert np.all(mean[:, -1] > mean[:, 0])
    # at fixed n more views always help
    mean_n = d["kernel_error_fixed_n"].mean(-1)
    assert np.all(mean_n[:, -1] < mean_n[:, 0])


def test_spectral_closed_forms_are_never_beaten_and_titles_hold():
    d = load("spectral_closed_forms")
    # the bars: gradient descent's excess over the closed form is >= 0 (relative 1e-12 round-off allowed)
    assert np.all(d["relative_excess_best"] >= -1e-12)
    acc = d["probe_accuracy"]
    # panel (b): aligned graph separates the classes, misaligned one is near chance
    assert np.all(acc[0] >= 0.99) and np.all(acc[1] <= d["majority_fraction"] + 0.15)
    assert d["lda_subspace_distance"][0, 0] < 1e-8  # VICReg's span is LDA's


def test_li2022_auc_peaks_at_20_percent():
    with open(FIG / "li2022_collapse.csv") as f:
        rows = list(csv.DictReader(f))
    pct = [int(r["data_percent"]) for r in rows]
    auc = [float(r["cev_auc"]) for r in rows]
    rme = [float(r["rankme"]) for r in rows]
    assert pct[int(np.argmax(auc))] == 20 and pct[int(np.argmin(rme))] == 20
    np.testing.assert_allclose(auc, [0.6098, 0.7480, 0.8449, 0.8787, 0.8714, 0.8578], atol=1e-4)


def test_li2022_recipe_runs_from_the_shipped_data(tmp_path):
    written = recipe("li2022_collapse").make(tmp_path)
    assert {p.name for p in written} == {"li2022_collapse.png", "li2022_collapse.csv"}
    with open(tmp_path / "li2022_collapse.csv") as f:
        assert [r["data_percent"] for r in csv.DictReader(f)] == ["1", "5", "10", "20", "50", "100"]


def test_matrix_alignment_decays_only_with_weight_decay():
    d = load("matrix_alignment")
    assert d["commutator_eta0.02"][-1] < 1e-6 and d["asymmetry_eta0.02"][-1] < 1e-5
    assert d["commutator_eta0"][-1] > 1e-3 and d["asymmetry_eta0"][-1] > 1e-2


def test_fixed_points_eta_simulations_sit_on_the_branches():
    d = load("fixed_points_eta")
    for sigma2 in (0.0, 0.5, 1.0):
        etas, p_end = d[f"eta_sigma2_{sigma2:g}"], d[f"p_end_sigma2_{sigma2:g}"]
        eta_c = ls.eta_critical(1.0, sigma2)
        below = etas < 0.98 * eta_c
        p_plus = np.array([ls.fixed_points(e, 1.0, sigma2).p_plus for e in etas[below]])
        np.testing.assert_allclose(p_end[below], p_plus, atol=1e-3)
        assert np.all(np.abs(p_end[etas > 1.02 * eta_c]) < 1e-3)


def test_basin_alpha_p_shrinks_and_matches_the_edge():
    d = load("basin_alpha_p")
    frac = d["collapsed"].mean((0, 1))
    assert np.all(np.diff(frac) < 0)
    P, S = np.meshgrid(d["p0"], d["s0"], indexing="ij")
    for i, a in enumerate(d["alpha_p"]):
        predicted = in_collapse_basin(P, S, 0.04, float(a), 0.5)
        assert np.mean(predicted != d["collapsed"][:, :, i]) <= 0.01  # edge cells only


def test_collapse_eta_beta_phase_diagram():
    d = load("collapse_eta_beta")
    etas, frac = d["etas"], d["frac_collapsed"]
    decided = d["frac_undecided"] == 0
    # above eta_c every initial condition collapses
    assert np.all(frac[(etas > d["eta_c"])[:, None] & decided] == 1.0)
    # below eta_c the simulated fraction at the largest beta follows the analytic tau = 1 fraction
    analytic = np.interp(etas, d["eta_fine"], d["analytic_fraction"])
    below = (etas > 0) & (etas < 0.95 * d["eta_c"])
    assert np.max(np.abs(frac[below, -1] - analytic[below])) <= 0.05
    # EMA slows convergence: the median time to 1% of p+ at beta = 0.01 exceeds that at beta = 100
    t = d["median_t_1pct"]
    ok = np.isfinite(t[:, 0]) & np.isfinite(t[:, -1])
    assert np.all(t[ok, 0] > 5 * t[ok, -1])


def test_collapse_alphap_beta_phase_diagram():
    d = load("collapse_alphap_beta")
    frac = d["frac_collapsed"]
    # a larger alpha_p shrinks the basin at every beta (non-increasing along alpha_p, strictly overall)
    assert np.all(np.diff(frac, axis=0) <= 1e-12) and np.all(frac[0] > frac[-1])
    analytic = np.interp(np.log(d["alphas"]), np.log(d["alpha_fine"]), d["analytic_fraction"])
    assert np.max(np.abs(frac[:, -1] - analytic)) <= 0.05


def test_ablations_outcomes():
    d = load("ablations")
    for key in ("no_predictor", "no_stop_grad"):
        assert d[f"alive_{key}"][-1] == 0
    for key in ("byol", "no_ema", "symmetric"):
        assert d[f"alive_{key}"][-1] >= 5
    # without a predictor tr F decays at twice the analytic rate (measured between t = 20 and t = 100)
    ts, tr = d["ts_no_predictor"], d["trace_no_predictor"]
    i, j = np.searchsorted(ts, [20.0, 100.0])
    rate = np.log(tr[j] / tr[i]) / (ts[j] - ts[i])
    np.testing.assert_allclose(rate, 2 * d["no_predictor_rate"], rtol=0.02)


def test_metrics_on_simulation_reach_the_analytic_end_state():
    d = load("metrics_on_simulation")
    mod = recipe("metrics_on_simulation")
    auc_end, rme_end = mod.metrics_of(d["end_s_eta0.03"])
    # eta = 0.03 has converged by t = 2000: metrics of the simulated weights equal those of the fixed point
    np.testing.assert_allclose(d["cev_auc_eta0.03"][-1], auc_end, atol=1e-4)
    np.testing.assert_allclose(d["rankme_eta0.03"][-1], rme_end, atol=1e-2)
    # more weight decay: more collapse (higher AUC, lower RankMe) at the end
    aucs = [d[f"cev_auc_eta{e}"][-1] for e in ("0.002", "0.01", "0.03")]
    rmes = [d[f"rankme_eta{e}"][-1] for e in ("0.002", "0.01", "0.03")]
    assert aucs == sorted(aucs) and rmes == sorted(rmes, reverse=True)


@pytest.mark.parametrize("name", RECIPES)
def test_recipe_docstring_names_its_source(name):
    text = (REPO / "experiments" / f"{name}.py").read_text()
    first = text.split('"""')[1].strip().splitlines()[0]
    assert first and not first.startswith("Figure ")


def test_sweep_eta_beta_collapses_exactly_beyond_the_critical_region():
    d = load("sweep_eta_beta")
    eta_c = ls.eta_critical(1.0, 0.5)
    # from (0.1, 0.1) nothing collapses well below eta_c, everything beyond it (up to the slow beta = 0.01 edge)
    assert not d["collapsed"][d["eta"] < 0.15].any()
    assert d["collapsed"][d["eta"] > eta_c + 0.01].all()
    # converged points end at p+
    conv = d["converged"]
    np.testing.assert_allclose(d["p_final"][conv], d["p_plus"][conv], rtol=0.01)
