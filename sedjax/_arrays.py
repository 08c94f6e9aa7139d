"""Small array helpers shared by the mechanism's pure functions."""

from __future__ import annotations

import jax
import jax.numpy as jnp


def as_float(x) -> jax.Array:
    """``x`` as an array with a floating dtype (integer apple counts become the default float)."""
    x = jnp.asarray(x)
    if not jnp.issubdtype(x.dtype, jnp.floating):
        x = x.astype(jnp.result_type(float))
    return x
