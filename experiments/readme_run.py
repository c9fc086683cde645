"""The README's run: the default `linsim simulate` configuration (8 modes, eta = 0.04, beta = 0.5, sigma2 = 0.5).

Saved at 600 log-spaced times so that the fast early motion is drawn as curves, not chords; one of the eight
modes starts in the collapse basin and is drawn dashed (visible on the log-s panels).
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

import linsim as ls
from _common import log_times, save
from linsim.plots import plot_run


def make(out: Path) -> list[Path]:
    cfg = ls.Config()
    traj = ls.simulate(cfg, ts=log_times(cfg.solver.t_max, 600, 1e-2))
    return save(plot_run(traj), out, "readme_run", ts=traj.ts, p=traj.p, s=traj.s, collapsed=traj.collapsed)


if __name__ == "__main__":
    print(make(Path(__file__).resolve().parents[1] / "figures"))
