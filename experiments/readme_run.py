"""The README's picture: the default `linsim simulate` run (8 modes, eta = 0.04, beta = 0.5, sigma2 = 0.5)."""
from __future__ import annotations

from pathlib import Path

import linsim as ls
from _common import save
from linsim.plots import plot_run


def make(out: Path) -> list[Path]:
    traj = ls.simulate(ls.Config())
    return save(plot_run(traj), out, "readme_run")


if __name__ == "__main__":
    print(make(Path(__file__).resolve().parents[1] / "figures"))
