"""The static (compile-time) choices of a vector field: predictor rule and stop-gradient."""
from __future__ import annotations

from typing import NamedTuple

import jax.numpy as jnp


class Variant(NamedTuple):
    """BYOL/SimSiam variants as settings of one field (hashable, so usable as a jit static argument).

    predictor: 'grad' (Lemma 1 gradient), 'symmetric' (symmetrised gradient, i.e. Wp kept symmetric),
    'identity' (predictor removed, Wp = I). stop_grad: False lets the gradient flow through the target.
    BYOL vs SimSiam is not a variant: it is beta (inf = SimSiam), a traced parameter.
    """

    predictor: str = "grad"
    stop_grad: bool = True


def ema_parts(beta):
    """Return (is_simsiam, finite_beta): beta = inf means Wa == W (SimSiam; docs/theory_dynamics.md)."""
    simsiam = jnp.isinf(beta)
    return simsiam, jnp.where(simsiam, 0.0, beta)
