"""The fixed-step loop every discrete simulator shares: ``step`` many times, saving every ``save_every`` steps."""
from __future__ import annotations

from typing import Any, Callable

import jax
import jax.numpy as jnp


def scan_saving(step: Callable[[Any], Any], carry: Any, n_blocks: int, save_every: int,
                save: Callable[[Any], Any] = lambda c: c, with_initial: bool = True) -> Any:
    """Apply ``step`` (carry -> carry) ``n_blocks * save_every`` times with ``lax.scan`` and return the stacked
    ``save(carry)`` after each block of ``save_every`` steps, preceded by ``save`` of the initial carry unless
    ``with_initial`` is False. Traceable: use inside ``jax.jit``."""

    def block(c, _):
        c, _ = jax.lax.scan(lambda c, _: (step(c), None), c, None, length=save_every)
        return c, save(c)

    _, saved = jax.lax.scan(block, carry, None, length=n_blocks)
    if not with_initial:
        return saved
    return jax.tree_util.tree_map(lambda a, b: jnp.concatenate([a[None], b]), save(carry), saved)
