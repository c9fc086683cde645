"""The Li, Efros & Pathak (ECCV 2022) spectra the tests use: the copy shipped in the package (linsim/data/li2022)."""
from __future__ import annotations

from importlib import resources
from pathlib import Path

from linsim.data import LI2022_FILE, LI2022_PERCENTS

LI_FILE = LI2022_FILE
LI_KEYS = [f"percent_{p}" for p in LI2022_PERCENTS]
# CEV-AUC and RankMe of the six released spectra, recomputed from the authors' released .pt files with their
# notebook's AUC (Li et al. 2022, Eq. 2) and RankMe (Garrido et al., ICML 2023, Eq. 1).
LI_AUC = [0.6098, 0.7480, 0.8449, 0.8787, 0.8714, 0.8578]
LI_RANKME = [465.3, 323.6, 186.6, 140.1, 161.4, 165.6]

LI_PATH = Path(str(resources.files("linsim.data").joinpath("li2022", LI2022_FILE)))
assert LI_PATH.is_file(), f"the shipped data file {LI_PATH} is missing: reinstall linsim"

