"""Data shipped with linsim: the Li, Efros & Pathak (ECCV 2022) singular-value spectra (MIT licence).

>>> from linsim.data import li2022_spectra
>>> sorted(li2022_spectra(), key=int)
['1', '5', '10', '20', '50', '100']
"""
from __future__ import annotations

from contextlib import contextmanager
from importlib import resources
from pathlib import Path
from typing import Iterator

import numpy as np

LI2022_FILE = "li2022_resnet18_imagenet_train_sv.npz"
LI2022_PERCENTS = (1, 5, 10, 20, 50, 100)


@contextmanager
def li2022_path() -> Iterator[Path]:
    """A filesystem path to the shipped ``li2022_resnet18_imagenet_train_sv.npz`` (valid inside the ``with``)."""
    with resources.as_file(resources.files("linsim.data").joinpath("li2022", LI2022_FILE)) as path:
        yield Path(path)


def li2022_file() -> Path:
    """The path of the shipped npz when the package is installed as files (pip install, editable or not)."""
    path = Path(str(resources.files("linsim.data").joinpath("li2022", LI2022_FILE)))
    if not path.is_file():
        from linsim.errors import LinsimError

        raise LinsimError(f"the shipped data file {path} is not a plain file here; use linsim.data.li2022_path()")
    return path


def li2022_spectra() -> dict[str, np.ndarray]:
    """Singular values (descending, float32, length 512) per pretraining-data percentage, keyed '1'...'100'.

    Li, Efros & Pathak, "Understanding Collapse in Non-Contrastive Siamese Representation Learning", ECCV 2022:
    ResNet-18 SimSiam backbones pretrained on 1-100% of ImageNet, spectra of centred ImageNet-train features.
    """
    with li2022_path() as path, np.load(path) as npz:
        return {str(p): np.asarray(npz[f"percent_{p}"]) for p in LI2022_PERCENTS}
