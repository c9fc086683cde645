"""Read arrays for the collapse metrics from .npy, .npz or .csv files (used by ``linsim metrics``).

Every failure (missing file, unknown suffix, unreadable or non-numeric content) raises
:class:`~linsim.errors.LinsimError` naming the file and what was wrong.
"""
from __future__ import annotations

import zipfile
from pathlib import Path

import numpy as np

from linsim.errors import LinsimError

__all__ = ["SUFFIXES", "load_arrays"]

SUFFIXES = (".npy", ".npz", ".csv")


def _numeric(arr: np.ndarray, path: Path, name: str) -> np.ndarray:
    if arr.dtype == object or not (np.issubdtype(arr.dtype, np.number) or arr.dtype == np.bool_):
        raise LinsimError(f"{path}: array {name!r} is not numeric (dtype {arr.dtype})")
    if np.issubdtype(arr.dtype, np.complexfloating):
        raise LinsimError(f"{path}: array {name!r} is complex; real values expected")
    return arr


def _read_csv(path: Path) -> np.ndarray:
    try:
        text = path.read_text()
    except UnicodeDecodeError:
        raise LinsimError(f"{path}: not a text CSV file (undecodable bytes)") from None
    lines = [(i + 1, ln.strip()) for i, ln in enumerate(text.splitlines())]
    lines = [(i, ln) for i, ln in lines if ln]
    if not lines:
        raise LinsimError(f"{path}: the CSV file is empty")

    def parse(lineno: int, line: str) -> list[float]:
        try:
            return [float(cell) for cell in line.split(",")]
        except ValueError:
            raise LinsimError(f"{path}: line {lineno} is not comma-separated numbers: {line[:60]!r}") from None

    try:
        parse(*lines[0])
    except LinsimError:
        lines = lines[1:]  # a non-numeric first line is a header
        if not lines:
            raise LinsimError(f"{path}: the CSV file has a header but no data rows") from None
    rows = [parse(i, ln) for i, ln in lines]
    widths = {len(r) for r in rows}
    if len(widths) != 1:
        raise LinsimError(f"{path}: rows have different numbers of columns {sorted(widths)}")
    arr = np.asarray(rows, dtype=np.float64)
    if arr.shape[0] == 1 or arr.shape[1] == 1:
        arr = arr.reshape(-1)  # a single row or a single column is one 1-D array (e.g. a spectrum)
    return arr


def load_arrays(path: str | Path) -> dict[str, np.ndarray]:
    """Arrays in ``path``: .npy -> {stem: array}; .npz -> {key: array} for every array; .csv -> {stem: array}.

    A CSV holds comma-separated numbers, one sample (or one spectrum) per line; a first line that is not
    numeric is skipped as a header; a CSV with a single row or a single column is read as a 1-D array.
    Pickled (object) arrays are refused. Values are returned unchanged (validation of shape and
    finiteness is left to :mod:`linsim.metrics`).
    """
    path = Path(path)
    if not path.exists():
        raise LinsimError(f"{path}: no such file")
    if not path.is_file():
        raise LinsimError(f"{path}: not a regular file")
    suffix = path.suffix.lower()
    if suffix not in SUFFIXES:
        raise LinsimError(f"{path}: unsupported file type {path.suffix or '(none)'!r}; expected .npy, .npz or .csv")
    if suffix == ".csv":
        return {path.stem: _read_csv(path)}
    with path.open("rb") as fh:
        magic = fh.read(6)
    if magic[:2] != b"PK" and magic != b"\x93NUMPY":
        kind = "NumPy .npz archive" if suffix == ".npz" else "NumPy .npy file"
        raise LinsimError(f"{path}: not a {kind} (unrecognised header {magic!r})")
    try:
        loaded = np.load(path, allow_pickle=False)
    except ValueError as err:
        msg = str(err)
        if "pickle" in msg.lower():
            msg = "holds pickled objects, which are not loaded"
        raise LinsimError(f"{path}: cannot read as {suffix}: {msg}") from None
    except (OSError, EOFError, zipfile.BadZipFile) as err:
        raise LinsimError(f"{path}: cannot read as {suffix}: {err}") from None
    if isinstance(loaded, np.lib.npyio.NpzFile):
        if suffix != ".npz":
            loaded.close()
            raise LinsimError(f"{path}: is an .npz archive but named {suffix}")
        try:
            with loaded:
                arrays = {key: loaded[key] for key in loaded.files}
        except (ValueError, OSError, EOFError, zipfile.BadZipFile) as err:
            msg = "holds pickled objects, which are not loaded" if "pickle" in str(err).lower() else str(err)
            raise LinsimError(f"{path}: cannot read the archive: {msg}") from None
        if not arrays:
            raise LinsimError(f"{path}: the .npz archive holds no arrays")
    else:
        if suffix != ".npy":
            raise LinsimError(f"{path}: is a .npy array but named {suffix}")
        arrays = {path.stem: loaded}
    return {name: _numeric(np.asarray(arr), path, name) for name, arr in arrays.items()}
