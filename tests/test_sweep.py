"""Phase-diagram sweeps (linsim.sweep): grid parsing, agreement with single runs, the basin
table and time-to-1% references of docs/theory_dynamics.md, resume bit-identity, spec guarding and the Dask path.

Tolerances. Collapse fractions on the 13 x 13 grid of the basin table (Tian, Chen & Ganguli 2021 dynamics;
docs/theory_dynamics.md) are counts out of 169 points, and the table's values are rounded to 3 decimals
(+-0.0005). For eta = 0.01 and beta = inf they match the table to the rounding. Finite beta may move one
grid point: the corner (p0, s0) = (-0.5, 0.5) with beta = 0.01 and alpha_p = 0.5 passes within s ~ 1e-8 of
the collapse manifold before deciding, so its label follows the integration error (eta = 0.04: rtol 1e-10
tsit5 and 1e-13 dopri8 solves say survival, a 1e-12 dopri8 solve says collapse; eta = 0.01: rtol 1e-8 and
1e-11 solves say survival, s(1000) = 0.848). So finite-beta fractions get one point (1/169 = 0.0059) plus
the rounding. The critical p0 of the table is bracketed by adjacent grid points (spacing 0.005), so we
assert the reference lies between the last collapsing and the first surviving p0 of our grid.
"""
from __future__ import annotations

import json
import math

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from linsim.config import Config, Hyper, Solver, Stats
from linsim.errors import LinsimError
from linsim.solve import simulate
from linsim.sweep import SweepResult, SweepSpec, parse_grid, run_sweep

CHUNK = 512  # one compiled chunk shape for most tests (compilation dominates their cost)
BASIN = {"p0": "-0.5:1:13", "s0": "0.01:0.5:13"}

# ---------------------------------------------------------------------------------------- grid parsing

finite = st.floats(-1e3, 1e3, allow_nan=False, allow_infinity=False)
positive = st.floats(1e-6, 1e6, allow_nan=False, allow_infinity=False)


@given(finite, finite, st.integers(1, 60))
def test_linspace_spec(a, b, num):
    np.testing.assert_array_equal(parse_grid(f"{a!r}:{b!r}:{num}"), np.linspace(a, b, num))


@given(positive, positive, st.integers(1, 60))
def test_log_spec(a, b, num):
    g = parse_grid(f"log:{a!r}:{b!r}:{num}")
    np.testing.assert_array_equal(g, np.geomspace(a, b, num))
    assert g[0] == pytest.approx(a, rel=1e-12) and (num == 1 or g[-1] == pytest.approx(b, rel=1e-12))
    if num > 2:
        r = np.diff(np.log(g))
        np.testing.assert_allclose(r, r[0], atol=1e-9)


@given(st.lists(st.floats(allow_nan=False), min_size=1, max_size=12))
def test_list_spec_roundtrip(values):
    text = ",".join(repr(v) for v in values)
    np.testing.assert_array_equal(parse_grid(text), np.array(values))


@given(st.text(max_size=20))
def test_any_text_parses_or_raises_linsim_error(text):
    try:
        g = parse_grid(text)
    except LinsimError:
        return
    assert g.ndim == 1 and g.size >= 1 and not np.any(np.isnan(g))


@pytest.mark.parametrize("bad", ["", " ", "1:2", "1:2:3:4", "0:1:0", "0:1:-3", "0:1:2.5", "0:inf:3", "a,b", "1,,2",
                                 ",", "nan", "1,nan", "log:0:1:5", "log:-1:1:5", "log:1:2", "log:1:inf:3", "0:1:x"])
def test_malformed_specs(bad):
    with pytest.raises(LinsimError, match="grid spec|empty"):
        parse_grid(bad)


def test_spec_validation():
    with pytest.raises(LinsimError, match="eta"):
        SweepSpec(axes={"eta": "-0.1,0.1"})
    with pytest.raises(LinsimError, match="beta"):
        SweepSpec(axes={"beta": "0,1"})
    with pytest.raises(LinsimError, match="cannot sweep"):
        SweepSpec(axes={"p0": "0,1"}, model="matrix")
    with pytest.raises(LinsimError, match="cannot sweep"):
        SweepSpec(axes={"gamma": "0,1"})
    with pytest.raises(LinsimError, match="both swept and fixed"):
        SweepSpec(axes={"eta": "0,1"}, fixed={"eta": 0.1})
    spec = SweepSpec(axes={"eta": "0:0.1:3", "beta": "1,inf"})
    assert spec.shape == (3, 2) and spec.dims == ("eta", "beta")
    assert SweepSpec.from_json(json.loads(json.dumps(spec.to_json()))) == spec
    assert spec.hash(8) == SweepSpec.from_json(spec.to_json()).hash(8) != spec.hash(16)


# ---------------------------------------------------------------------------------------- correctness


def test_agrees_with_single_runs(tmp_path):
    spec = SweepSpec(axes={"eta": "0.01,0.04,0.2", "beta": "inf,0.5", "p0": "-0.4,0.3"}, fixed={"s0": 0.05, "alpha_p": 2.0},
                     t_max=500.0)
    r = run_sweep(spec, tmp_path / "s", chunk_size=CHUNK, progress=False)
    for i, eta in enumerate(spec.coords["eta"]):
        for j, beta in enumerate(spec.coords["beta"]):
            for k, p0 in enumerate(spec.coords["p0"]):
                cfg = Config(model="modes", hyper=Hyper(eta=eta, beta=beta, alpha_p=2.0), stats=Stats.isotropic(1, 0.5),
                             solver=Solver(t_max=500.0, n_save=51, rtol=1e-10, atol=1e-14))
                w = math.sqrt(0.05)
                tr = simulate(cfg, y0={"p": np.array([p0]), "w": np.array([w]), "wa": np.array([w])})
                assert bool(r["collapsed"][i, j, k]) == bool(tr.collapsed[0])
                assert r["p_final"][i, j, k] == pytest.approx(tr.p[-1, 0], abs=1e-6)
    assert np.all(r["collapsed"][2])  # eta = 0.2 > eta_c = 1/6: everything collapses (docs/theory_dynamics.md)
    assert np.nanmax(r["balance_residual"]) < 1e-7


def test_time_to_one_percent_slows_with_ema(tmp_path):
    """docs/theory_dynamics.md: t(1% of p+) = 9.0, 13.8, 62.9, 688 for beta = inf, 1, 0.1, 0.01 (sigma2 0.5, eta 0.01)."""
    spec = SweepSpec(axes={"beta": "inf,1,0.1,0.01"}, fixed={"eta": 0.01, "alpha_p": 1.0, "p0": 0.1, "s0": 0.1})
    t = run_sweep(spec, tmp_path / "t", chunk_size=CHUNK, progress=False)["t_1pct"]
    np.testing.assert_allclose(t, [9.0, 13.8, 62.9, 688], rtol=0.01)
    assert np.all(np.diff(t) > 0)


@pytest.mark.parametrize("eta", [0.01, 0.04])
def test_basin_table_fractions(tmp_path, eta):
    spec = SweepSpec(axes={"alpha_p": "0.5,1,2,10", "beta": "inf,1,0.1,0.01", **BASIN}, fixed={"eta": eta})
    r = run_sweep(spec, tmp_path / "b", chunk_size=CHUNK, progress=False)
    frac = r["collapsed"].mean(axis=(2, 3))  # (alpha_p, beta)
    assert np.all(np.diff(frac, axis=0) <= 0), frac  # non-increasing in alpha_p, for every beta (docs/theory_dynamics.md)
    assert np.ptp(frac, axis=1).max() <= 4 / 169 + 1e-12  # nearly unchanged by beta (the reference values' own spread)
    one_point = 1 / 169 + 0.0005  # one borderline grid point plus the table's rounding (see the docstring)
    if eta == 0.01:
        np.testing.assert_allclose(frac[:, 0], [0.142, 0.077, 0.036, 0.012], atol=0.0005)
        np.testing.assert_allclose(frac[:, 1:], np.repeat(frac[:, :1], 3, axis=1), atol=one_point)
    else:
        np.testing.assert_allclose(frac[0], [0.160, 0.154, 0.142, 0.136], atol=one_point)


# eta, alpha_p -> critical p0 at s0 = 0.001, 0.01, 0.1 (basin table of docs/theory_dynamics.md, tau = 1, sigma2 = 0.5)
CRIT = {(0.01, 1.0): [-0.0215, -0.0959, -0.3148], (0.01, 10.0): [-0.0959, -0.3148, -0.9995],
        (0.04, 1.0): [0.0693, -0.0505, -0.2967], (0.04, 10.0): [-0.0505, -0.2967, -0.9934]}


def test_critical_p0_table(tmp_path):
    spec = SweepSpec(axes={"eta": "0.01,0.04", "alpha_p": "1,10", "s0": "0.001,0.01,0.1", "p0": "-1.1:0.2:261"})
    r = run_sweep(spec, tmp_path / "c", chunk_size=CHUNK, progress=False)
    p0 = r.coords["p0"]
    for (eta, a), refs in CRIT.items():
        i, j = list(r.coords["eta"]).index(eta), list(r.coords["alpha_p"]).index(a)
        for k, ref in enumerate(refs):
            c = r["collapsed"][i, j, k]
            last = np.flatnonzero(c).max()
            assert np.all(c[: last + 1]) and not np.any(c[last + 1:])  # one boundary: collapse iff p0 < crit
            assert p0[last] <= ref <= p0[last + 1], (eta, a, k, p0[last], ref)


# ---------------------------------------------------------------------------------------- resume and guard

SMALL = dict(axes={"eta": "0.01,0.04", "beta": "inf,0.5", **BASIN})


def _same(a: SweepResult, b: SweepResult) -> None:
    assert set(a.data) == set(b.data)
    for k in a.data:
        np.testing.assert_array_equal(a.data[k], b.data[k], err_msg=k)  # bitwise (NaN == NaN)


class Kill(Exception):
    pass


def test_resume_is_bitwise_identical(tmp_path):
    spec = SweepSpec(**SMALL)
    full = run_sweep(spec, tmp_path / "full", chunk_size=128, progress=False)
    assert full.info["n_chunks"] == 6

    def killer(done, total):
        if done == 2:
            raise Kill

    with pytest.raises(Kill):
        run_sweep(spec, tmp_path / "killed", chunk_size=128, progress=False, on_chunk=killer)
    assert len(list((tmp_path / "killed" / "chunks").glob("chunk_*.npz"))) == 2
    assert not (tmp_path / "killed" / "sweep.npz").exists()
    resumed = run_sweep(spec, tmp_path / "killed", chunk_size=128, progress=False)
    assert resumed.info["chunks_resumed"] == 2
    _same(full, resumed)
    # deleting chunk files of a finished sweep recomputes just those
    for f in sorted((tmp_path / "full" / "chunks").glob("chunk_*.npz"))[1::2]:
        f.unlink()
    again = run_sweep(spec, tmp_path / "full", chunk_size=128, progress=False)
    assert again.info["chunks_resumed"] == 3
    _same(full, again)
    _same(full, SweepResult.load(tmp_path / "full"))


def test_refuses_a_different_spec(tmp_path):
    spec = SweepSpec(**SMALL)
    run_sweep(spec, tmp_path / "o", chunk_size=128, progress=False)
    before = sorted(p.name for p in (tmp_path / "o" / "chunks").iterdir())
    other = SweepSpec(axes=SMALL["axes"], fixed={"alpha_p": 2.0})
    with pytest.raises(LinsimError, match="different spec"):
        run_sweep(other, tmp_path / "o", chunk_size=128, progress=False)
    with pytest.raises(LinsimError, match="different spec"):
        run_sweep(spec, tmp_path / "o", chunk_size=64, progress=False)  # another chunk layout
    assert sorted(p.name for p in (tmp_path / "o" / "chunks").iterdir()) == before
    (tmp_path / "x").mkdir()
    (tmp_path / "x" / "notes.txt").write_text("mine")
    with pytest.raises(LinsimError, match="not a sweep folder"):
        run_sweep(spec, tmp_path / "x", chunk_size=128, progress=False)
    r = run_sweep(other, tmp_path / "o", chunk_size=128, progress=False, force=True)
    assert r.info["chunks_resumed"] == 0


def test_dask_matches_local(tmp_path):
    import distributed  # in the dev extra, so this test always runs (no skip)
    spec = SweepSpec(**SMALL)
    local = run_sweep(spec, tmp_path / "local", chunk_size=128, progress=False)
    with distributed.LocalCluster(processes=False, n_workers=1, threads_per_worker=1, dashboard_address=None) as cluster:
        with distributed.Client(cluster) as client:
            remote = run_sweep(spec, tmp_path / "dask", chunk_size=128, progress=False, scheduler=client)
    _same(local, remote)


def test_matrix_model_small(tmp_path):
    spec = SweepSpec(axes={"eta": "0.02,0.3"}, fixed={"beta": 0.5}, model="matrix", n=3, t_max=300.0, n_save=101)
    r = run_sweep(spec, tmp_path / "m", chunk_size=2, progress=False)
    assert not r["collapsed"][0] and r["collapsed"][1]  # 0.3 > eta_c = 1/6: total collapse
    assert r["p_final"][0] == pytest.approx(r["p_plus"][0], rel=1e-3)
    assert r["balance_residual"][0] < 1e-6


def test_dask_missing_names_the_extra(tmp_path, monkeypatch):
    monkeypatch.setitem(__import__("sys").modules, "distributed", None)  # import distributed -> ImportError
    with pytest.raises(LinsimError, match=r"pip install linsim\[dask\]"):
        run_sweep(SweepSpec(**SMALL), tmp_path / "d", chunk_size=128, progress=False, scheduler="tcp://127.0.0.1:1")
    assert not (tmp_path / "d").exists()


def test_axis_order_is_part_of_the_identity(tmp_path):
    # The same axes in another order lay the grid out differently: resuming one into the other would
    # transpose results, so the hashes must differ and the second sweep must be refused.
    a = SweepSpec(axes={"p0": [0.05, 0.3], "eta_p": [0.0, 0.1]}, t_max=50.0, n_save=11)
    b = SweepSpec(axes={"eta_p": [0.0, 0.1], "p0": [0.05, 0.3]}, t_max=50.0, n_save=11)
    assert a.hash(4) != b.hash(4)
    run_sweep(a, tmp_path / "s", chunk_size=4, progress=False)
    with pytest.raises(LinsimError, match="different spec"):
        run_sweep(b, tmp_path / "s", chunk_size=4, progress=False)
