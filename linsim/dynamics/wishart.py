"""The batch second moment of Gaussian data, sampled exactly without the samples: the Bartlett factor of a Wishart
matrix (Bartlett 1933; e.g. Anderson, An Introduction to Multivariate Statistical Analysis, Thm. 7.2.1).

If zeta_1..zeta_B ~ N(0, I_p) are iid, sum_b zeta_b zeta_b^T ~ Wishart_p(I, B), and for B >= p it has the law of
A A^T with A lower triangular, A_ii = sqrt(chi2(B - i)) (i = 0..p-1), A_ij ~ N(0, 1) below the diagonal, all
independent. A un-normalised minibatch gradient depends on the batch only through that sum, so one step needs
p (p - 1) / 2 normals and p chi-squares instead of the B p normals of the samples.
"""
from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np


def bartlett(key, p: int, batch: int, lead: tuple = (), dtype=jnp.float64):
    """Lower-triangular A (lead + (p, p)) with A A^T ~ Wishart_p(I, batch), batch >= p (module docstring)."""
    if batch < p:
        raise ValueError(f"the Bartlett factor needs batch >= p, got batch={batch}, p={p}")
    kn, kc = jax.random.split(key)
    rows, cols = np.tril_indices(p, -1)
    z = jax.random.normal(kn, lead + (rows.size,), dtype)
    A = jnp.zeros(lead + (p, p), dtype).at[..., rows, cols].set(z)
    df = jnp.broadcast_to(jnp.asarray(batch - np.arange(p), dtype), lead + (p,))
    return A.at[..., np.arange(p), np.arange(p)].set(jnp.sqrt(jax.random.chisquare(kc, df, dtype=dtype)))
