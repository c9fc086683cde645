"""Atomic output: a failure mid-write leaves no partial file or folder; JSON is strict."""
from __future__ import annotations

import json
import math

import numpy as np
import pytest

from linsim.io import atomic_dir, atomic_savez, atomic_write_json, dumps, to_jsonable


def test_atomic_dir_failure_leaves_nothing(tmp_path):
    out = tmp_path / "run"
    with pytest.raises(RuntimeError):
        with atomic_dir(out) as tmp:
            (tmp / "half.txt").write_text("partial")
            raise RuntimeError("killed")
    assert not out.exists()
    assert list(tmp_path.iterdir()) == []


def test_atomic_dir_failure_keeps_previous_result(tmp_path):
    out = tmp_path / "run"
    with atomic_dir(out) as tmp:
        (tmp / "a.txt").write_text("v1")
    with pytest.raises(KeyboardInterrupt):
        with atomic_dir(out, force=True) as tmp:
            (tmp / "a.txt").write_text("v2-partial")
            raise KeyboardInterrupt
    assert (out / "a.txt").read_text() == "v1"
    assert [p.name for p in tmp_path.iterdir()] == ["run"]


def test_atomic_file_writes_replace_whole_file(tmp_path):
    path = tmp_path / "x.json"
    atomic_write_json(path, {"a": 1})
    atomic_write_json(path, {"a": [1, 2]})
    assert json.loads(path.read_text()) == {"a": [1, 2]}
    atomic_savez(tmp_path / "y.npz", z=np.arange(3))
    with np.load(tmp_path / "y.npz") as z:
        np.testing.assert_array_equal(z["z"], np.arange(3))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["x.json", "y.npz"]


def test_json_is_strict_and_maps_non_finite():
    obj = {"inf": math.inf, "nan": float("nan"), "arr": np.array([1.5, np.inf]), "i": np.int64(3), "b": np.bool_(True)}
    assert to_jsonable(obj) == {"inf": "inf", "nan": None, "arr": [1.5, "inf"], "i": 3, "b": True}
    json.loads(dumps(obj))  # strict JSON: no NaN/Infinity tokens


def test_outputs_get_normal_permissions(tmp_path):
    # mkstemp/mkdtemp create private 0600/0700 entries; results must end up with the umask's usual modes.
    import os

    mask = os.umask(0)
    os.umask(mask)
    with atomic_dir(tmp_path / "run") as tmp:
        atomic_write_json(tmp / "a.json", {"x": 1})
    assert (tmp_path / "run").stat().st_mode & 0o777 == 0o777 & ~mask
    assert (tmp_path / "run" / "a.json").stat().st_mode & 0o777 == 0o666 & ~mask


def test_atomic_savez_streams_the_same_archive(tmp_path):
    """The npz is streamed into the temporary file (no in-memory copy) and reads back exactly, every array and dtype."""
    rng = np.random.default_rng(0)
    arrays = {"a": rng.standard_normal((5, 7, 7)), "b": np.arange(4, dtype=np.int64), "c": np.array(["x", "yz"]),
              "d": np.zeros((0, 3))}
    atomic_savez(tmp_path / "t.npz", **arrays)
    with np.load(tmp_path / "t.npz") as z:
        assert sorted(z.files) == sorted(arrays)
        for k, v in arrays.items():
            assert z[k].dtype == v.dtype and np.array_equal(z[k], v)
    assert [p.name for p in tmp_path.iterdir()] == ["t.npz"]  # no temporary left
