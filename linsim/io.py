"""Safe file output: atomic writes, output folders that only ever hold linsim's own files, locks, clean-up.

The guarantees every writing command relies on (docs/outputs_and_errors.md):

- **Atomic files.** :func:`atomic_write_bytes` (and the ``atomic_write_*`` / :func:`atomic_savez` /
  :func:`atomic_savefig` wrappers) write to a temporary sibling ``.<name>.linsim-tmp-<pid>-<random>`` and
  ``os.replace`` it onto the target: a reader, a crash or a full disk leaves the old file or the new one,
  never half a file.
- **Atomic run folders.** :func:`atomic_dir` yields an empty temporary folder; when the block ends without
  an exception its files become ``out``'s contents (a new folder is renamed into place in one step; an
  existing one has each file replaced atomically, and stale outputs of the previous run removed). On an
  exception nothing of the new run is left behind.
- **No foreign file is touched.** Every run folder records the files linsim wrote in a manifest
  :data:`MANIFEST` (``.linsim-outputs.json``). ``force`` replaces those files only: a folder holding
  anything else is refused (:func:`prepare_out`), never emptied.
- **Locks.** :func:`lock_dir` holds an exclusive ``fcntl.flock`` on ``<folder>/.linsim.lock`` while a
  process writes the folder (sweeps, replacements); a second writer waits (or is refused with a clear
  message), it never interleaves.
- **Leftovers.** Temporary names (``.<name>.linsim-tmp-<pid>-<random>``) carry the writer's pid;
  :func:`clean_stale_tmp` removes those of processes that no longer run (a ``kill -9`` mid-write), and
  :func:`prepare_out` calls it for ``out`` and its parent.

Adopting these in a new command (the pattern of ``linsim simulate``)::

    out = out or default_out("bridge")              # linsim.cli._app.default_out
    prepare_out(out, force, command="bridge")       # before computing: exit 2 on an unusable --out
    ...compute...
    with atomic_dir(out, force=force, command="bridge") as tmp:
        atomic_write_json(tmp / "summary.json", summary)

OSErrors raised while writing (disk full, read-only file system) propagate unchanged; the CLI wrapper
``linsim.cli._app.cli_command`` turns them into one line and exit status 5.
"""
from __future__ import annotations

import contextlib
import dataclasses
import errno
import io
import json
import math
import os
import re
import shutil
import sys
import tempfile
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator

import numpy as np

from linsim.errors import LinsimError

#: Name of the manifest that marks a folder as linsim's and lists the files linsim wrote there.
MANIFEST = ".linsim-outputs.json"
#: Name of the lock file of a folder being written (see :func:`lock_dir`).
LOCK = ".linsim.lock"
#: Entries linsim keeps in its folders besides the outputs themselves.
BOOKKEEPING = (MANIFEST, LOCK)

# ``.<name>.linsim-tmp-<pid>-<random>``: temporary files and folders of a writing process
_TMP_RE = re.compile(r"^\..*\.linsim-tmp-(\d+)-.*$")


def to_jsonable(obj: Any) -> Any:
    """Convert numpy/jax scalars and arrays, dataclasses and non-finite floats into plain JSON values.

    ``inf`` becomes the string ``"inf"`` (beta = inf means SimSiam) and NaN becomes ``None``.
    """
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return {f.name: to_jsonable(getattr(obj, f.name)) for f in dataclasses.fields(obj)}
    if isinstance(obj, dict):
        return {str(k): to_jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [to_jsonable(v) for v in obj]
    if isinstance(obj, Path):
        return str(obj)
    if hasattr(obj, "__array__") and not isinstance(obj, (str, bytes)):
        arr = np.asarray(obj)
        if arr.ndim == 0:
            return to_jsonable(arr.item())
        return [to_jsonable(v) for v in arr.tolist()]
    if isinstance(obj, (bool, np.bool_)):
        return bool(obj)
    if isinstance(obj, (int, np.integer)):
        return int(obj)
    if isinstance(obj, (float, np.floating)):
        x = float(obj)
        if math.isnan(x):
            return None
        if math.isinf(x):
            return "inf" if x > 0 else "-inf"
        return x
    return obj


def dumps(obj: Any) -> str:
    """JSON text of ``obj`` after :func:`to_jsonable` (strict JSON: no NaN/Infinity tokens)."""
    return json.dumps(to_jsonable(obj), indent=2, allow_nan=False)


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def tmp_prefix(name: str) -> str:
    """Prefix of a temporary entry standing in for ``name``: ``.<name>.linsim-tmp-<pid>-`` (see clean_stale_tmp)."""
    return f".{name}.linsim-tmp-{os.getpid()}-"


def _write_all(fh: Any, data: bytes) -> None:
    """Write ``data`` to the open file (one place to inject a failure in tests)."""
    fh.write(data)


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> Path:
    """Write ``data`` to ``path`` via a temporary file in the same folder and ``os.replace``.

    The temporary file is ``.<name>.linsim-tmp-<pid>-<random>``; on any failure (including OSError: disk full,
    read-only file system) it is removed and ``path`` keeps its previous content. The file gets the usual
    permissions (0666 minus the umask), not mkstemp's private 0600.
    """
    return _atomic_write(path, lambda fh: _write_all(fh, data))


def _atomic_write(path: str | os.PathLike, write: Callable[[Any], None]) -> Path:
    """``write(file)`` into a temporary file next to ``path``, then ``os.replace`` (``atomic_write_bytes``)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=tmp_prefix(path.name), dir=path.parent)
    try:
        os.fchmod(fd, 0o666 & ~_umask())
        with os.fdopen(fd, "wb") as fh:
            write(fh)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException as err:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        if isinstance(err, OSError) and err.errno is not None:  # name the target, not the temporary file
            raise OSError(err.errno, err.strerror, str(path)) from None
        raise
    return path


def atomic_write_text(path: str | os.PathLike, text: str) -> Path:
    return atomic_write_bytes(path, text.encode())


def atomic_write_json(path: str | os.PathLike, obj: Any) -> Path:
    return atomic_write_text(path, dumps(obj) + "\n")


def atomic_savez(path: str | os.PathLike, **arrays: Any) -> Path:
    """``np.savez`` written atomically (uncompressed: float trajectories compress by ~4% at 30x the time), streamed
    into the temporary file: building it in memory first held two extra copies (160 MB at n = 256)."""
    arrays = {k: np.asarray(v) for k, v in arrays.items()}
    return _atomic_write(path, lambda fh: np.savez(_Through(fh), **arrays))


class _Through:
    """A file whose writes go through ``_write_all`` (so a failure injected there hits streamed writes too)."""

    def __init__(self, fh: Any) -> None:
        self._fh = fh

    def write(self, data: Any) -> int:
        _write_all(self._fh, data)
        return len(data)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._fh, name)


def atomic_savefig(fig: Any, path: str | os.PathLike, **kwargs: Any) -> Path:
    """Save a matplotlib figure atomically (format from the suffix)."""
    import warnings

    path = Path(path)
    buf = io.BytesIO()
    with warnings.catch_warnings():  # a layout hint about a crowded figure is not the user's business
        warnings.filterwarnings("ignore", message="constrained_layout not applied", category=UserWarning)
        fig.savefig(buf, format=path.suffix.lstrip(".") or "png", **kwargs)
    return atomic_write_bytes(path, buf.getvalue())


# ---------------------------------------------------------------------------------------- leftovers


def pid_alive(pid: int) -> bool:
    """Whether a process with this pid runs on this machine (``os.kill(pid, 0)``)."""
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # it exists, owned by someone else
        return True
    return True


def is_stale_tmp(name: str) -> bool:
    """``name`` is a linsim temporary entry (``.<x>.linsim-tmp-<pid>-...``) of a process that is gone."""
    m = _TMP_RE.match(name)
    return bool(m) and int(m.group(1)) != os.getpid() and not pid_alive(int(m.group(1)))


def clean_stale_tmp(folder: str | os.PathLike) -> list[Path]:
    """Remove the temporary files and folders that dead linsim processes left in ``folder``; returns them.

    Only names of the form ``.<name>.linsim-tmp-<pid>-<random>`` whose pid no longer runs on this machine
    are removed; everything else, and the temporaries of live processes, is left alone. A missing
    or unreadable folder is ignored.
    """
    folder = Path(folder)
    removed: list[Path] = []
    try:
        entries = list(folder.iterdir())
    except OSError:
        return removed
    for entry in entries:
        if not is_stale_tmp(entry.name):
            continue
        try:
            if entry.is_dir() and not entry.is_symlink():
                shutil.rmtree(entry)
            else:
                entry.unlink()
            removed.append(entry)
        except OSError:
            pass
    return removed


# ---------------------------------------------------------------------------------------- folders


def read_manifest(folder: str | os.PathLike) -> dict | None:
    """The manifest of a linsim folder (``{"command", "files", "linsim_version"}``), or None if absent or unreadable."""
    try:
        d = json.loads((Path(folder) / MANIFEST).read_text())
    except (OSError, ValueError):
        return None
    if not isinstance(d, dict) or not isinstance(d.get("files"), list):
        return None
    return d


def write_manifest(folder: str | os.PathLike, command: str, files: Iterable[str]) -> Path:
    """Write the manifest: ``folder`` is linsim's and ``files`` (names inside it) are the outputs linsim wrote."""
    from linsim import __version__

    return atomic_write_json(Path(folder) / MANIFEST, {"command": command, "files": sorted(set(files)),
                                                         "linsim_version": __version__})


def owned_entries(folder: str | os.PathLike, owned: Iterable[str] = ()) -> set[str]:
    """Names in ``folder`` that linsim may replace: those in its manifest (or, for a folder written before
    manifests existed, the given ``owned`` names), the bookkeeping files and stale temporaries."""
    man = read_manifest(folder)
    names = set(man["files"]) if man is not None else set(owned)
    return names | set(BOOKKEEPING)


def foreign_entries(folder: str | os.PathLike, owned: Iterable[str] = ()) -> list[str]:
    """Sorted names in ``folder`` that linsim did not write (see :func:`owned_entries`)."""
    mine = owned_entries(folder, owned)
    return sorted(p.name for p in Path(folder).iterdir() if p.name not in mine and not is_stale_tmp(p.name))


def _nearest_existing(path: Path) -> Path:
    p = path.absolute()
    while not (p.exists() or p.is_symlink()):
        if p.parent == p:
            break
        p = p.parent
    return p


def check_writable(path: str | os.PathLike) -> None:
    """Raise LinsimError unless a folder ``path`` exists or can be created, and files can be written in it.

    Checks the nearest existing ancestor: it must be a folder (not a regular file) in which a probe file
    can be created and removed (which catches read-only file systems and permissions, also for root).
    Nothing is left behind.
    """
    path = Path(path)
    anc = _nearest_existing(path)
    if not anc.is_dir():
        what = "is not a folder" if anc == path.absolute() else f"cannot be created: {anc} is a file, not a folder"
        raise LinsimError(f"output path {path} {what}")
    try:
        fd, probe = tempfile.mkstemp(prefix=tmp_prefix("linsim-probe"), dir=anc)
        os.close(fd)
        os.unlink(probe)
    except OSError as err:
        raise LinsimError(f"cannot write the output {path}: {anc} is not writable ({err.strerror or err})") from None


def prepare_out(out: str | os.PathLike, force: bool = False, command: str = "run", owned: Iterable[str] = ()) -> Path:
    """Check, before computing, that run folder ``out`` can take this command's outputs (LinsimError if not).

    - ``out`` must be a folder or not exist; no ancestor may be a regular file; it must be writable
      (:func:`check_writable`).
    - An existing non-empty ``out`` needs ``force``, and even then every entry must be linsim's own
      (:func:`owned_entries`: the files of its manifest, or ``owned`` for folders without one): a folder
      holding anything else is refused, naming what it holds, and left untouched.
    - Stale temporaries of dead processes in ``out`` and its parent are removed (:func:`clean_stale_tmp`).

    Writes nothing else. Returns ``Path(out)``.
    """
    out = Path(out)
    if (out.exists() or out.is_symlink()) and not out.is_dir():
        raise LinsimError(f"output path {out} exists and is not a folder; choose another --out")
    check_writable(out)
    clean_stale_tmp(out.absolute().parent)
    if out.is_dir():
        clean_stale_tmp(out)
        entries = [p.name for p in out.iterdir() if p.name != LOCK]
        if entries:
            foreign = foreign_entries(out, owned)
            if foreign:
                shown = ", ".join(foreign[:3]) + (f" and {len(foreign) - 3} more" if len(foreign) > 3 else "")
                raise LinsimError(f"output folder {out} holds files linsim did not write ({shown}); "
                                  "linsim never replaces them: choose another --out")
            if not force:
                raise LinsimError(f"output folder {out} already holds linsim outputs; pass --force to replace them")
    return out


_HELD: dict[str, int] = {}  # folders locked by this process (re-entrant locks)


@contextlib.contextmanager
def lock_dir(folder: str | os.PathLike, wait: bool = True, what: str = "linsim") -> Iterator[Path]:
    """Hold an exclusive lock on ``folder`` (an ``fcntl.flock`` on ``folder/.linsim.lock``) while writing it.

    The folder is created if needed. If another process holds the lock: with ``wait`` a line goes to stderr
    and the call blocks until it is released; without, LinsimError names the holder's pid. Re-entrant within
    one process. The lock file stays (it is bookkeeping, see :data:`BOOKKEEPING`); the lock itself ends with
    the process, so a killed writer never leaves the folder locked.
    """
    import fcntl

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    key = os.path.realpath(folder)
    if _HELD.get(key):
        _HELD[key] += 1
        try:
            yield folder
        finally:
            _HELD[key] -= 1
        return
    fd = os.open(folder / LOCK, os.O_RDWR | os.O_CREAT, 0o666 & ~_umask())
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 32, 0).decode(errors="replace").strip() or "?"
            if not wait:
                raise LinsimError(f"{folder} is being written by another {what} process (pid {holder}); "
                                  "wait for it to finish or choose another --out") from None
            print(f"waiting for another {what} process (pid {holder}) to finish writing {folder} ...",
                  file=sys.stderr, flush=True)
            fcntl.flock(fd, fcntl.LOCK_EX)
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        _HELD[key] = 1
        try:
            yield folder
        finally:
            _HELD.pop(key, None)
    finally:
        os.close(fd)


def _retarget(err: OSError, tmp: Path, out: Path) -> OSError:
    """The same OSError naming the output path instead of the temporary folder it was written in."""
    name = err.filename
    if err.errno is None or name is None:
        return err
    try:
        rel = Path(name).relative_to(tmp)
    except ValueError:
        return err
    return OSError(err.errno, err.strerror, str(out / rel))


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    elif path.exists() or path.is_symlink():
        path.unlink()


@contextlib.contextmanager
def atomic_dir(out: str | os.PathLike, force: bool = False, command: str = "run",
               owned: Iterable[str] = ()) -> Iterator[Path]:
    """Yield an empty temporary folder; when the block succeeds its entries become ``out``'s outputs.

    ``out`` is checked first (:func:`prepare_out`: refuses a file, an unwritable place, a non-empty folder
    without ``force`` and any folder holding files linsim did not write). A new ``out`` is the temporary
    folder renamed in one step. An existing ``out`` (e.g. ``--out .``) is locked (:func:`lock_dir`), each new
    file replaces its namesake atomically, and outputs of the previous run that the new one did not write
    are removed; nothing else in the folder is touched. The manifest (:data:`MANIFEST`) lists the new files.
    On any exception the temporary folder is removed and ``out`` is left as it was.
    """
    out = prepare_out(out, force, command, owned)
    if out.is_dir():
        with lock_dir(out, what=f"linsim {command}"):
            prepare_out(out, force, command, owned)  # the folder may have changed while we waited
            tmp = Path(tempfile.mkdtemp(prefix=tmp_prefix("run"), dir=out))
            try:
                try:
                    yield tmp
                except OSError as err:
                    raise _retarget(err, tmp, out) from None
                new = sorted(p.name for p in tmp.iterdir())
                old = read_manifest(out)
                stale = (set(old["files"]) if old else set(owned)) - set(new)
                for name in new:
                    target = out / name
                    if (tmp / name).is_dir() and target.exists():
                        _remove(target)
                    os.replace(tmp / name, target)
                for name in stale:
                    _remove(out / name)
                write_manifest(out, command, new)
            finally:
                shutil.rmtree(tmp, ignore_errors=True)
        return
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=tmp_prefix(out.name), dir=out.parent))
    os.chmod(tmp, 0o777 & ~_umask())  # a normal folder once renamed, not mkdtemp's private 0700
    try:
        try:
            yield tmp
        except OSError as err:
            raise _retarget(err, tmp, out) from None
        write_manifest(tmp, command, (p.name for p in tmp.iterdir()))
        try:
            os.rename(tmp, out)
        except OSError as err:
            if err.errno in (errno.EEXIST, errno.ENOTEMPTY):
                raise LinsimError(f"output folder {out} was created by someone else while this run computed; "
                                  "its results were not written: rerun with another --out") from None
            raise
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def output_names(folder: str | os.PathLike) -> list[str]:
    """The outputs in a run folder, sorted, without linsim's bookkeeping and hidden entries."""
    return sorted(p.name for p in Path(folder).iterdir() if not p.name.startswith("."))
