"""Shared test setup: float64 JAX (via importing linsim), a modest hypothesis profile, matplotlib off-screen."""
import os

os.environ.setdefault("MPLBACKEND", "Agg")

import linsim  # noqa: E402,F401  (enables jax float64)
from hypothesis import HealthCheck, settings  # noqa: E402

# JAX compiles once per shape, so examples are cheap after the first; keep counts modest so the whole
# suite stays within a few minutes on 2 cores. No deadline: the first example of a test pays compilation.
settings.register_profile(
    "linsim",
    max_examples=15,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    derandomize=True,
)
settings.load_profile("linsim")
