"""Outputs, errors and reproducibility (docs/outputs_and_errors.md): unusable output paths are refused before
computing, write failures give one line and leave nothing half-written, --force never touches a file linsim
did not write, sweep folders are locked, stale temporaries of dead processes are cleaned up, tampered sweep
folders are reported in one line."""
from __future__ import annotations

import errno
import fcntl
import json
import os
import subprocess
import threading

import numpy as np
import pytest
from typer.testing import CliRunner

import linsim.io as lio
from linsim.cli import app
from linsim.errors import LinsimError
from linsim.io import LOCK, MANIFEST, atomic_write_bytes, lock_dir, output_names

runner = CliRunner()
QUICK = ["--t-max", "2", "--n-save", "3", "--no-plot"]  # a tiny simulate run


def invoke(*args):
    return runner.invoke(app, [str(a) for a in args])


def one_line_error(res, code):
    """The command failed with ``code`` and printed exactly one line, no traceback."""
    assert res.exit_code == code, (res.exit_code, res.output)
    assert res.output.startswith("error: ") and res.output.count("\n") == 1, res.output
    assert "Traceback" not in res.output
    return res.output


def dead_pid() -> int:
    p = subprocess.Popen(["true"])
    p.wait()
    return p.pid


@pytest.fixture
def no_compute(monkeypatch):
    """Any simulation reached means the path was checked too late."""
    import linsim.solve

    def boom(*a, **k):
        raise AssertionError("computed before checking the output path")

    monkeypatch.setattr(linsim.solve, "simulate", boom)


def _read_only(monkeypatch):
    """Make every new file fail with EROFS, as on a read-only file system (root ignores chmod)."""
    real = lio.tempfile.mkstemp

    def mkstemp(*a, **k):
        raise OSError(errno.EROFS, "Read-only file system")

    monkeypatch.setattr(lio.tempfile, "mkstemp", mkstemp)
    return real


# ---------------------------------------------------------------------------------------- item 1: paths


@pytest.mark.parametrize("cmd", [["simulate", *QUICK], ["metrics", "EMB", "--no-plot"], ["spectral", "vicreg", "--gd-starts", "1"],
                                 ["sweep", "--eta", "0,0.1", "--t-max", "5", "--no-progress", "--no-plot"]])
def test_out_under_a_regular_file_is_refused_before_computing(tmp_path, cmd, no_compute):
    np.save(tmp_path / "emb.npy", np.random.default_rng(0).normal(size=(10, 3)))
    cmd = [str(tmp_path / "emb.npy") if c == "EMB" else c for c in cmd]
    (tmp_path / "f").write_text("a file")
    out = one_line_error(invoke(*cmd, "--out", tmp_path / "f" / "sub"), 2)
    assert "is a file" in out
    out = one_line_error(invoke(*cmd, "--out", tmp_path / "f"), 2)  # the target itself is a file
    assert "not a folder" in out
    out = one_line_error(invoke(*cmd, "--out", tmp_path / "f", "--force"), 2)  # --force never replaces a file
    assert sorted(p.name for p in tmp_path.iterdir()) == ["emb.npy", "f"]  # no .f.old-PID, no temp folder
    assert (tmp_path / "f").read_text() == "a file"


def test_read_only_target_and_default_runs_are_refused_before_computing(tmp_path, monkeypatch, no_compute):
    _read_only(monkeypatch)
    out = one_line_error(invoke("simulate", *QUICK, "--out", tmp_path / "r"), 2)
    assert "not writable" in out and "Read-only file system" in out
    monkeypatch.chdir(tmp_path)  # the default runs/ in a read-only working directory
    one_line_error(invoke("simulate", *QUICK), 2)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("where", ["new", "existing"])
def test_disk_full_while_writing_gives_one_line_and_nothing_half_written(tmp_path, monkeypatch, where):
    out = tmp_path / "r"
    if where == "existing":
        assert invoke("simulate", *QUICK, "--out", out).exit_code == 0
        before = {p.name: p.read_bytes() for p in out.iterdir()}
    calls = []

    def full(fh, data):
        calls.append(1)
        if len(calls) == 2:  # the second file: the run folder holds one new file when the disk fills up
            fh.write(data[: len(data) // 2])
            raise OSError(errno.ENOSPC, "No space left on device")
        fh.write(data)

    monkeypatch.setattr(lio, "_write_all", full)
    res = invoke("simulate", *QUICK, "--seed", 1, "--out", out, "--force")
    msg = one_line_error(res, 5)
    assert "No space left on device" in msg and "linsim-tmp" not in msg
    if where == "new":
        assert list(tmp_path.iterdir()) == []
    else:
        after = {p.name: p.read_bytes() for p in out.iterdir() if p.name != LOCK}  # the lock file is bookkeeping
        assert after == before  # the old run, byte for byte


def test_atomic_write_bytes_failure_mid_write_keeps_the_old_file(tmp_path, monkeypatch):
    path = tmp_path / "x.bin"
    atomic_write_bytes(path, b"old content")

    def half(fh, data):
        fh.write(data[:3])
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(lio, "_write_all", half)
    with pytest.raises(OSError) as info:
        atomic_write_bytes(path, b"new content")
    assert info.value.errno == errno.ENOSPC and info.value.filename == str(path)
    assert path.read_bytes() == b"old content"
    assert [p.name for p in tmp_path.iterdir()] == ["x.bin"]


# ---------------------------------------------------------------------------------------- item 2: --force


def test_force_replaces_only_linsims_outputs_and_works_for_dot(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert invoke("simulate", *QUICK, "--out", ".").exit_code == 0  # an empty cwd is a fine run folder
    assert set(output_names(".")) == {"config.json", "summary.json", "trajectory.npz"}
    res = invoke("simulate", *QUICK, "--out", ".", "--force", "--seed", 3, "--json")
    assert res.exit_code == 0, res.output
    assert json.loads(res.output)["out"] == "."
    assert json.loads((tmp_path / "summary.json").read_text())["config"]["init"]["seed"] == 3
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(["config.json", "summary.json", "trajectory.npz", MANIFEST, LOCK])
    (tmp_path / "thesis.tex").write_text("years of work")
    res = invoke("simulate", *QUICK, "--out", ".", "--force")
    assert "thesis.tex" in one_line_error(res, 2) and "--force" not in res.output
    assert (tmp_path / "thesis.tex").read_text() == "years of work"


def test_manifest_lists_what_linsim_wrote(tmp_path):
    assert invoke("simulate", "--t-max", 2, "--n-save", 3, "--out", tmp_path / "r").exit_code == 0
    man = json.loads((tmp_path / "r" / MANIFEST).read_text())
    assert man["command"] == "simulate" and man["files"] == ["config.json", "run.png", "summary.json", "trajectory.npz"]


# ---------------------------------------------------------------------------------------- item 3: locks


def test_lock_refuses_or_waits_for_another_writer(tmp_path):
    folder = tmp_path / "f"
    folder.mkdir()
    fd = os.open(folder / LOCK, os.O_RDWR | os.O_CREAT)
    fcntl.flock(fd, fcntl.LOCK_EX)  # another open file description: conflicts like another process
    os.pwrite(fd, b"4242\n", 0)
    try:
        with pytest.raises(LinsimError, match=r"pid 4242.*another --out"):
            with lock_dir(folder, wait=False):
                pass
        entered = threading.Event()

        def writer():
            with lock_dir(folder):
                entered.set()

        t = threading.Thread(target=writer)
        t.start()
        assert not entered.wait(0.3)  # blocked behind the lock
    finally:
        os.close(fd)
    t.join(10)
    assert entered.is_set()
    assert (folder / LOCK).read_text().strip() == str(os.getpid())


def test_second_sweep_waits_for_the_first_then_resumes(tmp_path, capsys):
    from linsim.sweep import SweepSpec, run_sweep

    out = tmp_path / "sw"
    out.mkdir()
    fd = os.open(out / LOCK, os.O_RDWR | os.O_CREAT)
    fcntl.flock(fd, fcntl.LOCK_EX)  # a first sweep is writing
    spec = SweepSpec(axes={"eta": [0.01, 0.3]}, t_max=20.0, n_save=11)
    done = {}
    t = threading.Thread(target=lambda: done.setdefault("r", run_sweep(spec, out, chunk_size=2, progress=False)))
    t.start()
    t.join(0.5)
    try:
        assert t.is_alive() and not (out / "spec.json").exists()  # waiting, nothing written
    finally:
        os.close(fd)
    t.join(120)
    assert done["r"]["status"].tolist() == [0, 0] and done["r"].info["chunks_resumed"] == 0
    assert "waiting for another linsim sweep" in capsys.readouterr().err
    again = run_sweep(spec, out, chunk_size=2, progress=False)  # the same spec again: resumed, not recomputed
    assert again.info["chunks_resumed"] == 1


# ---------------------------------------------------------------------------------------- item 4: leftovers


def test_stale_temporaries_of_dead_processes_are_removed(tmp_path):
    pid = dead_pid()
    stale_dir = tmp_path / f".r.linsim-tmp-{pid}-abc"
    stale_dir.mkdir()
    (stale_dir / "trajectory.npz").write_bytes(b"x" * 1000)
    (tmp_path / f".x.json.linsim-tmp-{pid}-q1").write_text("{")
    live = tmp_path / ".y.linsim-tmp-1-zz"  # pid 1 runs: not stale
    live.write_text("")
    mine = tmp_path / "notes.tmp-123"  # not linsim's pattern
    mine.write_text("")
    assert invoke("simulate", *QUICK, "--out", tmp_path / "r").exit_code == 0
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([".y.linsim-tmp-1-zz", "notes.tmp-123", "r"])


def test_stale_chunk_temporaries_and_tampered_sweeps(tmp_path):
    from linsim.sweep import SweepSpec, run_sweep

    spec = SweepSpec(axes={"eta": [0.01, 0.3]}, t_max=20.0, n_save=11)
    out = tmp_path / "sw"
    run_sweep(spec, out, chunk_size=1, progress=False)
    stale = out / "chunks" / f".chunk_00000.npz.linsim-tmp-{dead_pid()}-x"
    stale.write_bytes(b"y" * 100)
    assert run_sweep(spec, out, chunk_size=1, progress=False).info["chunks_resumed"] == 2
    assert not stale.exists()
    # a chunk of the wrong dtype: a clear error naming the file, not a traceback
    chunk = out / "chunks" / "chunk_00001.npz"
    with np.load(chunk) as z:
        arrays = {k: z[k] for k in z.files}
    arrays["status"] = arrays["status"].astype(float)
    np.savez(chunk, **arrays)
    with pytest.raises(LinsimError, match=r"chunk_00001.npz is damaged \(status has dtype float64"):
        run_sweep(spec, out, chunk_size=1, progress=False)
    chunk.write_bytes(b"garbage")
    with pytest.raises(LinsimError, match="chunk_00001.npz is damaged"):
        run_sweep(spec, out, chunk_size=1, progress=False)
    chunk.unlink()  # the advice works: that chunk alone is recomputed
    assert run_sweep(spec, out, chunk_size=1, progress=False).info["chunks_resumed"] == 1
    # spec.json a folder: refused without --force (which is then the right advice), replaced with it
    (out / "spec.json").unlink()
    (out / "spec.json").mkdir()
    with pytest.raises(LinsimError, match="damaged sweep.*--force"):
        run_sweep(spec, out, chunk_size=1, progress=False)
    r = run_sweep(spec, out, chunk_size=1, progress=False, force=True)
    assert r.info["chunks_resumed"] == 0 and (out / "spec.json").is_file()
    # chunks/ replaced by a file: the same spec does not resume into it
    import shutil

    shutil.rmtree(out / "chunks")
    (out / "chunks").write_text("not a folder")
    with pytest.raises(LinsimError, match="damaged sweep \\(chunks is not a folder\\)"):
        run_sweep(spec, out, chunk_size=1, progress=False)
    assert run_sweep(spec, out, chunk_size=1, progress=False, force=True).info["chunks_resumed"] == 0


def test_sweep_cli_tampered_folder_is_one_line(tmp_path):
    out = tmp_path / "sw"
    out.mkdir()
    (out / "spec.json").mkdir()
    (out / "mine.txt").write_text("keep")
    res = invoke("sweep", "--eta", "0,0.1", "--t-max", "5", "--no-progress", "--out", out, "--force")
    msg = one_line_error(res, 2)
    assert "damaged" in msg and "--force to" not in msg  # --force would not help: the folder holds mine.txt
    assert (out / "mine.txt").read_text() == "keep"
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "thesis.tex").write_text("x")
    res = invoke("sweep", "--eta", "0,0.1", "--t-max", "5", "--no-progress", "--out", tmp_path / "other")
    assert "not a sweep folder" in one_line_error(res, 2) and "--force" not in res.output


def _disk_full_after(monkeypatch, n_ok: int):
    """The (n_ok + 1)-th file written hits a full disk halfway."""
    calls = []

    def full(fh, data):
        calls.append(1)
        if len(calls) == n_ok + 1:
            fh.write(data[: len(data) // 2])
            raise OSError(errno.ENOSPC, "No space left on device")
        fh.write(data)

    monkeypatch.setattr(lio, "_write_all", full)


def test_disk_full_in_metrics_and_sweep_is_one_line_and_resumable(tmp_path, monkeypatch):
    np.save(tmp_path / "emb.npy", np.random.default_rng(0).normal(size=(10, 3)))
    _disk_full_after(monkeypatch, 0)
    msg = one_line_error(invoke("metrics", tmp_path / "emb.npy", "--out", tmp_path / "m"), 5)
    assert "No space left on device" in msg and not (tmp_path / "m").exists()
    _disk_full_after(monkeypatch, 2)  # spec.json and the manifest are written, the first chunk is not
    args = ["sweep", "--eta", "0,0.1", "--t-max", "5", "--no-progress", "--no-plot", "--chunk-size", "1",
            "--out", tmp_path / "s"]
    msg = one_line_error(invoke(*args), 5)
    assert "/chunks/chunk_0000" in msg
    left = list((tmp_path / "s" / "chunks").iterdir())  # chunks run in threads: one may have finished first
    assert len(left) <= 1 and all(p.name.startswith("chunk_") for p in left)  # no half chunk, no temporary
    for p in left:
        np.load(p)["status"]  # a complete chunk
    monkeypatch.setattr(lio, "_write_all", lambda fh, data: fh.write(data))
    res = invoke(*args)  # the disk has room again: the same command finishes the sweep
    assert res.exit_code == 0, res.output
    assert sorted(p.name for p in (tmp_path / "s" / "chunks").iterdir()) == ["chunk_00000.npz", "chunk_00001.npz"]


def test_kill_9_mid_write_leaves_no_file_and_the_next_run_cleans_up(tmp_path):
    import signal
    import sys

    child = f"""
import time, linsim.io as lio
def slow(fh, data):
    fh.write(data[:10]); fh.flush(); print("ready", flush=True); time.sleep(60)
lio._write_all = slow
lio.atomic_write_bytes({str(tmp_path / "r" / "trajectory.npz")!r}, b"x" * 1000)
"""
    (tmp_path / "r").mkdir()
    proc = subprocess.Popen([sys.executable, "-c", child], stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout.readline().strip() == "ready"
    finally:
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
    (left,) = (tmp_path / "r").iterdir()
    assert left.name.startswith(f".trajectory.npz.linsim-tmp-{proc.pid}-")  # the target was never created
    lio.prepare_out(tmp_path / "r", force=False, command="simulate")  # the next run into it
    assert list((tmp_path / "r").iterdir()) == []
