"""The public API: `import linsim as ls` exposes the documented names; the package docstring example holds."""
import doctest

import linsim


def test_public_names_exist():
    for name in linsim.__all__:
        assert hasattr(linsim, name), name


def test_package_doctest():
    failed, attempted = doctest.testmod(linsim, verbose=False)
    assert attempted >= 2 and failed == 0


def test_float64_enabled():
    import jax.numpy as jnp

    assert jnp.asarray(1.0).dtype == jnp.float64
