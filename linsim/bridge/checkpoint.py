"""Atomic checkpoints of a training state: ``NAME.eqx`` (equinox leaf serialisation) + ``NAME.json`` sidecar.

The arrays are serialised to bytes with ``eqx.tree_serialise_leaves`` and written with
:func:`linsim.io.atomic_write_bytes`, then the sidecar (epoch, step, keys, time, and the SHA-256 of the
``.eqx`` bytes) is written atomically. Loading checks the hash, so a process killed between the two writes
is detected instead of resuming from a mismatched pair. See ``docs/outputs_and_errors.md``.
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


def save(folder: str | Path, name: str, tree: Any, meta: dict[str, Any]) -> Path:
    """Write ``folder/name.eqx`` and ``folder/name.json`` (``meta`` plus the hash) atomically."""
    folder = Path(folder)
    data = to_bytes(tree)
    path = atomic_write_bytes(folder / f"{name}.eqx", data)
    atomic_write_json(folder / f"{name}.json", {**meta, "sha256": hashlib.sha256(data).hexdigest()})
    return path


def load(folder: str | Path, name: str, like: Any) -> tuple[Any, dict[str, Any]]:
    """(tree, meta) of checkpoint ``name`` in ``folder``; LinsimError naming the file if missing or corrupt."""
    folder = Path(folder)
    path, side = folder / f"{name}.eqx", folder / f"{name}.json"
    try:
        data = path.read_bytes()
        meta = json.loads(side.read_text())
    except FileNotFoundError as err:
        raise LinsimError(f"checkpoint file {err.filename} not found") from None
    except (OSError, ValueError) as err:
        raise LinsimError(f"checkpoint {side} could not be read: {err}") from None
    if not isinstance(meta, dict) or meta.get("sha256") != hashlib.sha256(data).hexdigest():
        raise LinsimError(f"checkpoint {path} does not match its sidecar {side.name} (interrupted write or "
                          "edited file)")
    try:
        tree = from_bytes(data, like)
    except Exception as err:  # equinox raises various errors on a shape/structure mismatch
        raise LinsimError(f"checkpoint {path} does not fit this configuration: {err}") from None
    return tree, meta
