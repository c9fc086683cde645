"""Where the tests find the project's shared real data (``../shared/data`` beside the repo, or $LINSIM_SHARED)."""
from __future__ import annotations

import os
from pathlib import Path

import pytest

LI_FILE = "li2022_resnet18_imagenet_train_sv.npz"
LI_KEYS = ["percent_1", "percent_5", "percent_10", "percent_20", "percent_50", "percent_100"]
# §3.3 / §8 item 12 reference values (recomputed from the authors' released .pt files)
LI_AUC = [0.6098, 0.7480, 0.8449, 0.8787, 0.8714, 0.8578]
LI_RANKME = [465.3, 323.6, 186.6, 140.1, 161.4, 165.6]


def _li2022_file() -> Path | None:
    candidates = [Path(__file__).resolve().parents[1] / ".." / "shared" / "data" / "li2022" / LI_FILE]
    if os.environ.get("LINSIM_SHARED"):
        shared = Path(os.environ["LINSIM_SHARED"])
        candidates += [shared / "data" / "li2022" / LI_FILE, shared / "li2022" / LI_FILE, shared / LI_FILE]
    return next((p.resolve() for p in candidates if p.is_file()), None)


LI_PATH = _li2022_file()
needs_li = pytest.mark.skipif(
    LI_PATH is None, reason=f"{LI_FILE} not found under ../shared/data/li2022 nor $LINSIM_SHARED"
)
