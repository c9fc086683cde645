"""linsim: the theory of non-contrastive self-supervised learning, executable.

``import linsim as ls`` gives the whole public API; float64 is switched on for JAX on import because the
theory's invariants are checked to 1e-8 and beyond.
"""
import jax as _jax

_jax.config.update("jax_enable_x64", True)

__version__ = "0.1.0"
