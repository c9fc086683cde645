"""Atomic checkpoints of a training state: ``NAME.eqx`` (equinox leaf serialisation) + ``NAME.json`` sidecar.

The arrays are serialised with ``eqx.tree_serialise_leaves``. A save writes the sidecar first (epoch, step, keys,
time, the SHA-256 of the new ``.eqx`` bytes, and the metadata of the checkpoint it replaces under "previous"),
then the ``.eqx``, each atomically (:func:`linsim.io.atomic_write_bytes`). Loading picks the metadata whose hash
matches the ``.eqx`` on disk: a process killed between the two writes resumes from the previous checkpoint
instead of being refused, and a file that matches neither (edited, corrupt) is an error naming it.
See ``docs/bridge.md``.
"""
from __future__ import annotations

import hashlib
import io
import json
from pathlib import Path
from typing import Any

import equinox as eqx

from linsim.errors import LinsimError
from linsim.io import atomic_write_bytes, atomic_write_json


def to_bytes(tree: Any) -> bytes:
    """The leaves of ``tree`` serialised by equinox (arrays in numpy format)."""
    buf = io.BytesIO()
    eqx.tree_serialise_leaves(buf, tree)
    return buf.getvalue()


def from_bytes(data: bytes, like: Any) -> Any:
    """A pytree shaped like ``like`` with the leaves serialised in ``data``."""
    return eqx.tree_deserialise_leaves(io.BytesIO(data), like)


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _read(folder: Path, name: str) -> tuple[bytes, dict[str, Any]]:
    path, side = folder / f"{name}.eqx", folder / f"{name}.json"
    try:
        data = path.read_bytes()
        meta = json.loads(side.read_text())
    except FileNotFoundError as err:
        raise LinsimError(f"checkpoint file {err.filename} not found") from None
    except (OSError, ValueError) as err:
        raise LinsimError(f"checkpoint {side} could not be read: {err}") from None
    if not isinstance(meta, dict):
        raise LinsimError(f"checkpoint {side} is not a JSON object")
    return data, meta


def _matching(data: bytes, meta: dict[str, Any]) -> dict[str, Any] | None:
    """The metadata (the sidecar's own, or its "previous") whose hash is that of ``data``; None if neither."""
    digest = _sha(data)
    if meta.get("sha256") == digest:
        return {k: v for k, v in meta.items() if k != "previous"}
    prev = meta.get("previous")
    if isinstance(prev, dict) and prev.get("sha256") == digest:
        return {**prev, "recovered": True}
    return None


def save(folder: str | Path, name: str, tree: Any, meta: dict[str, Any]) -> Path:
    """Write ``folder/name.json`` (``meta``, the hash, the replaced checkpoint's metadata) then ``folder/name.eqx``."""
    folder = Path(folder)
    data = to_bytes(tree)
    new = {**meta, "sha256": _sha(data)}
    try:
        current = _matching(*_read(folder, name))
    except LinsimError:  # no checkpoint yet, or an unusable one: nothing to fall back on
        current = None
    if current is not None:
        current.pop("recovered", None)
        new["previous"] = current
    atomic_write_json(folder / f"{name}.json", new)
    return atomic_write_bytes(folder / f"{name}.eqx", data)


def load(folder: str | Path, name: str, like: Any) -> tuple[Any, dict[str, Any]]:
    """(tree, meta) of checkpoint ``name`` in ``folder``; meta has "recovered": True when the last save was
    interrupted and the previous checkpoint was loaded. LinsimError naming the file if missing or corrupt."""
    folder = Path(folder)
    data, side_meta = _read(folder, name)
    meta = _matching(data, side_meta)
    path = folder / f"{name}.eqx"
    if meta is None:
        raise LinsimError(f"checkpoint {path} does not match its sidecar {name}.json (edited or corrupt file)")
    try:
        tree = from_bytes(data, like)
    except Exception as err:  # equinox raises various errors on a shape/structure mismatch
        raise LinsimError(f"checkpoint {path} does not fit this configuration: {err}") from None
    return tree, meta
