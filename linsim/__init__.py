"""linsim: the theory of non-contrastive self-supervised learning, executable.

``import linsim as ls`` gives the public API; float64 is switched on for JAX on import because the
theory's invariants are checked to 1e-8 and beyond.

>>> import linsim as ls
>>> traj = ls.simulate(ls.Config(hyper=ls.Hyper(eta=0.04, beta=0.5), stats=ls.Stats.isotropic(8, 0.5)))
>>> round(ls.fixed_points(0.04, alpha_p=1.0, sigma2=0.5).p_plus, 4)
0.6239
"""
import importlib as _importlib

from linsim import _cache

__version__ = "0.1.0"

# Before JAX or equinox is imported (by whichever linsim module needs them): equinox's runtime checks in a
# cacheable form, float64 and the persistent compilation cache (see linsim._cache). ``import linsim`` itself
# stays cheap: the public names below are imported on first use, so ``linsim --help`` never loads JAX.
_cache.quiet_runtime_checks()
_cache.configure_jax()

_API = {
    "linsim.config": ("Config", "Hyper", "Init", "Noise", "Predictor", "Solver", "Stats"),
    "linsim.dynamics.matrix": ("matrix_field",),
    "linsim.dynamics.modes": ("collapses_eta0", "eta_critical", "fixed_points", "modes_field", "stability",
                              "tau_ema", "time_between"),
    "linsim.dynamics.variant": ("Variant",),
    "linsim.errors": ("DivergenceError", "LinsimError"),
    "linsim.dynamics.stochastic": ("Ensemble", "simulate_ensemble", "simulate_sde", "simulate_sgd"),
    "linsim.solve": ("simulate",),
    "linsim.trajectory": ("Trajectory",),
}
_WHERE = {name: module for module, names in _API.items() for name in names}


def __getattr__(name: str):
    """The public API, imported on first use (PEP 562)."""
    module = _WHERE.get(name)
    if module is None:
        raise AttributeError(f"module 'linsim' has no attribute {name!r}")
    value = getattr(_importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__():
    return sorted([*globals(), *_WHERE])


__all__ = [
    "Config", "Hyper", "Init", "Solver", "Stats", "Noise", "Predictor", "Variant", "Trajectory", "Ensemble",
    "LinsimError", "DivergenceError", "simulate", "simulate_sgd", "simulate_sde", "simulate_ensemble", "matrix_field", "modes_field", "fixed_points", "eta_critical", "stability", "collapses_eta0",
    "time_between", "tau_ema",
]
