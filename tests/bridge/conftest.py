"""Shared fixtures of the trainer tests: a small slice of the built-in set and a tiny network.

Everything runs on CPU in float32 with few fixed shapes: every distinct configuration compiles its
training step once (tens of seconds on a loaded 2-core machine), and compiled steps are reused across
runs in one process (``linsim.bridge.train`` caches them), so the tests share configurations.
"""
from __future__ import annotations

import pytest

from linsim.bridge import data as D
from linsim.bridge.config import TrainConfig

#: 260 pre-training / probe-train images and 128 test images at 32 x 32, trained at 16 x 16 in batches of
#: 32 (8 steps per epoch); channels 4-8-16-32, projector 32 -> 16: d = 16. 260 is also the training split of
#: the CLI tests' 320-image npz (26 of 32 per class), so both share one compiled step.
TINY = dict(batch_size=32, image_size=16, width=0.0625, proj_hidden=32, proj_dim=16, eval_size=128,
            probe_train=256, probe_test=128)


def tiny_cfg(**kw) -> TrainConfig:
    return TrainConfig(**{**TINY, **kw})


@pytest.fixture(scope="session")
def tiny_data() -> D.ImageData:
    return D.builtin_dataset(seed=0, n_train=260, n_test=128)
