"""Sweeps shard chunks over all local JAX devices: with 2 (forced host) devices the results are bitwise those
of 1 device. Runs in subprocesses because the device count is fixed when JAX starts."""
from __future__ import annotations

import os
import subprocess
import sys

import numpy as np

SCRIPT = r"""
import sys, jax, numpy as np
import linsim
from linsim.sweep import SweepSpec, run_sweep
assert len(jax.local_devices()) == int(sys.argv[2]), jax.local_devices()
spec = SweepSpec(axes={"eta": "0:0.2:12", "alpha_p": "0.5,2"}, fixed={"sigma2": 0.5}, t_max=200.0, n_save=101)
res = run_sweep(spec, sys.argv[1], chunk_size=6, progress=False)
np.savez(sys.argv[1] + "/check.npz", p=res["p_final"], s=res["s_final"], c=res["collapsed"])
"""


def _run(tmp_path, n_dev: int) -> dict:
    out = tmp_path / f"dev{n_dev}"
    env = dict(os.environ, XLA_FLAGS=f"--xla_force_host_platform_device_count={n_dev}", JAX_PLATFORMS="cpu")
    subprocess.run([sys.executable, "-c", SCRIPT, str(out), str(n_dev)], check=True, env=env, timeout=300)
    with np.load(out / "check.npz") as z:
        return {k: z[k] for k in z.files}


def test_two_devices_bitwise_equal_one(tmp_path):
    one, two = _run(tmp_path, 1), _run(tmp_path, 2)
    for k in one:
        np.testing.assert_array_equal(one[k], two[k])
    assert one["c"].any() and not one["c"].all()  # the grid straddles the collapse boundary
