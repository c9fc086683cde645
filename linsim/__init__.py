"""linsim: the theory of non-contrastive self-supervised learning, executable.

``import linsim as ls`` gives the public API; float64 is switched on for JAX on import because the
theory's invariants are checked to 1e-8 and beyond.

>>> import linsim as ls
>>> traj = ls.simulate(ls.Config(hyper=ls.Hyper(eta=0.04, beta=0.5), stats=ls.Stats.isotropic(8, 0.5)))
>>> round(ls.fixed_points(0.04, alpha_p=1.0, sigma2=0.5).p_plus, 4)
0.6239
"""
from linsim import _cache

_cache.quiet_runtime_checks()  # before equinox is imported: compiled solvers become cacheable (see _cache)
import jax as _jax  # noqa: E402

_jax.config.update("jax_enable_x64", True)
_cache.enable(_jax)  # persistent compilation cache in the user's cache directory

__version__ = "0.1.0"

from linsim.config import Config, Hyper, Init, Noise, Predictor, Solver, Stats  # noqa: E402
from linsim.dynamics.matrix import matrix_field  # noqa: E402
from linsim.dynamics.modes import (  # noqa: E402
    collapses_eta0,
    eta_critical,
    fixed_points,
    modes_field,
    stability,
    tau_ema,
    time_between,
)
from linsim.dynamics.variant import Variant  # noqa: E402
from linsim.errors import DivergenceError, LinsimError  # noqa: E402
from linsim.dynamics.stochastic import Ensemble, simulate_ensemble, simulate_sde, simulate_sgd  # noqa: E402
from linsim.solve import simulate  # noqa: E402
from linsim.trajectory import Trajectory  # noqa: E402

__all__ = [
    "Config", "Hyper", "Init", "Solver", "Stats", "Noise", "Predictor", "Variant", "Trajectory", "Ensemble",
    "LinsimError", "DivergenceError", "simulate", "simulate_sgd", "simulate_sde", "simulate_ensemble", "matrix_field", "modes_field", "fixed_points", "eta_critical", "stability", "collapses_eta0",
    "time_between", "tau_ema",
]
