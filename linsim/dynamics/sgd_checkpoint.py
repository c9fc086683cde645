"""Checkpoints of an unfinished SGD ensemble, so that a killed `linsim simulate --noise sgd` can be rerun and finish.

``simulate_sgd`` runs an ensemble in equal compiled calls; after a call it can hand over everything saved so far.
``save`` writes that, with the run's full config, atomically to one ``.npz``; ``load`` gives it back (as
``simulate_sgd``'s ``partial``) only for the same config, so a continued run equals an uninterrupted one bit for bit.
"""
from __future__ import annotations

import json
import zipfile
from pathlib import Path
from typing import Any

import numpy as np

from linsim.config import Config
from linsim.errors import LinsimError
from linsim.io import atomic_savez, dumps

KIND = "linsim sgd partial"


def path_for(out: str | Path) -> Path:
    """The checkpoint of a run writing ``out``: a hidden file beside it (``out`` itself is written only at the end)."""
    out = Path(out).absolute()
    return out.parent / f".{out.name}.linsim-sgd-partial.npz"


def save(path: str | Path, cfg: Config, calls_done: int, calls: int, saved: tuple) -> Path:
    """Write the states, momentum buffers and F_hat saved after ``calls_done`` of ``calls`` calls (atomically)."""
    ys, bufs, Fs = saved
    arrays = {f"y_{k}": v for k, v in ys.items()}
    arrays.update(buf_0=bufs[0], buf_1=bufs[1], F_hat=Fs)
    meta = {"kind": KIND, "config": cfg.to_json(), "calls_done": int(calls_done), "calls": int(calls)}
    return atomic_savez(path, meta=np.array(dumps(meta)), **arrays)


def load(path: str | Path, cfg: Config) -> dict[str, Any] | None:
    """``simulate_sgd``'s ``partial`` from ``path``, or None if it holds another config (LinsimError if unreadable)."""
    try:
        with np.load(path) as z:
            meta = json.loads(str(z["meta"]))
            if not isinstance(meta, dict) or meta.get("kind") != KIND:
                raise ValueError("not a linsim SGD checkpoint")
            if dumps(meta["config"]) != dumps(cfg.to_json()):
                return None
            ys = {k[2:]: z[k] for k in z.files if k.startswith("y_")}
            return {"calls_done": meta["calls_done"], "calls": meta["calls"], "ys": ys,
                    "bufs": (z["buf_0"], z["buf_1"]), "Fs": z["F_hat"]}
    except (OSError, ValueError, KeyError, zipfile.BadZipFile) as err:
        raise LinsimError(f"the unfinished-run checkpoint {path} could not be read ({err}); delete it to start over") from None
